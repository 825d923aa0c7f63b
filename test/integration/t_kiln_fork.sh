# kiln's warm templates (runtime/template.c): the first container of a VM
# shape boots cold and has a template built in the background; the next
# ones fork it (kiln-vmm --fork-from). Uses t_kiln.sh's helpers.

# Wait up to $1 s for `kiln templates` to show a ready template.
kiln_template_ready() { # SECONDS
	for _ in $(seq $(($1 * 2))); do
		"$KILN" --root "$KROOT" templates 2>/dev/null | grep -q ' ready ' && return 0
		sleep 0.5
	done
	"$KILN" --root "$KROOT" templates
	return 1
}

# create + start + wait for the pid process; the container's output in
# $T/ID.out; whether its VM was a fork in $forked (its vmm.log says), and
# how many pages it copied ahead from its template's prefault list in
# $prefaulted (empty: it had no list).
kiln_run_logged() { # ID
	krc=0
	timeout -k 5 180 "$KILN" --root "$KROOT" create --bundle "$T/b" --pid-file "$T/$1.pid" "$1" \
		</dev/null >"$T/$1.out" 2>&1 || krc=$?
	[ "$krc" = 0 ] || { kiln_fail "create $1: $(cat "$T/$1.out")"; return 1; }
	forked=no
	grep -q "forked from" "$KROOT/$1/vmm.log" && forked=yes
	prefaulted=$(sed -n 's/.*prefaulted \([0-9]*\) of [0-9]* listed pages.*/\1/p' "$KROOT/$1/vmm.log")
	kiln start "$1"
	[ "$krc" = 0 ] || { kiln_fail "start $1"; return 1; }
	pid=$(cat "$T/$1.pid")
	for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kiln delete "$1"
	[ "$krc" = 0 ] || { kiln_fail "delete $1"; return 1; }
}

# The first container boots cold and leaves a template; the next two fork
# it: each runs from its own rootfs, with the host's time, drawing its own
# random bytes; their writes are their own. The first fork records the
# template's prefault list (the pages it wrote up to its container's
# create); the second copies those pages before its guest runs. `kiln templates` shows it,
# `--rm` ends it. A template killed with -9: the next create boots cold
# (the fork fails, no error reaches the user) and a new template is built.
test_kiln_fork_from_template() {
	kiln_reset
	"$KILN" --root "$KROOT" templates --rm
	kiln_bundle "$T/b" 'echo ran; date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d " "; cat /mark 2>/dev/null; echo $$ >/mark' ||
		return 1
	for a in date head od tr; do ln -s busybox "$T/b/rootfs/bin/$a"; done
	kiln_run_logged f0 || return 1
	[ "$forked" = no ] || { kiln_fail "the first container forked: no template yet"; return 1; }
	kiln_template_ready 300 || { fail "no template was built"; return 1; }
	for id in f1 f2; do
		kiln_run_logged "$id" || return 1
		[ "$forked" = yes ] || { kiln_fail "$id did not fork: $(cat "$KROOT/$id/vmm.log" 2>/dev/null)"; return 1; }
		pf=$(echo "$KROOT"/templates/*/prefault)
		if [ "$id" = f1 ]; then
			[ -z "$prefaulted" ] || { fail "the template's first fork copied $prefaulted pages ahead: no list yet"; return 1; }
			[ -f "$pf" ] || { fail "f1 recorded no prefault list: $(ls "$KROOT"/templates/*)"; return 1; }
			# the magic and at least a page, at most 4096 of them
			n=$((($(stat -c %s "$pf") - 8) / 4))
			[ "$(head -c 8 "$pf")" = KILNPF01 ] && [ "$n" -ge 1 ] && [ "$n" -le 4096 ] ||
				{ fail "prefault list: $(stat -c %s "$pf") bytes, $(head -c 8 "$pf" | od -c | head -1)"; return 1; }
		else
			[ "$prefaulted" = "$n" ] ||
				{ kiln_fail "f2 copied '$prefaulted' pages ahead, the list has $n: $(cat "$KROOT/f2/vmm.log")"; return 1; }
		fi
		[ "$(sed -n 1p "$T/$id.out")" = ran ] || { kiln_fail "$id: $(cat "$T/$id.out")"; return 1; }
		t=$(sed -n 2p "$T/$id.out")
		[ $(($(date +%s) - t)) -lt 60 ] || { kiln_fail "$id's clock says $t, the host's $(date +%s)"; return 1; }
		sed -n 3p "$T/$id.out" >"$T/$id.rand"
	done
	cmp -s "$T/f1.rand" "$T/f2.rand" && { fail "two forks drew the same random bytes"; return 1; }
	"$KILN" --root "$KROOT" templates >"$T/tl"
	grep -q "vcpus=1" "$T/tl" && [ "$(grep -c ' ready ' "$T/tl")" = 1 ] ||
		{ fail "kiln templates: $(cat "$T/tl")"; return 1; }
	# a template that died: the fork fails, the container boots cold
	tp=$(own_vmms all)
	[ -n "$tp" ] || { fail "no template kiln-vmm"; return 1; }
	kill -9 $tp
	kiln_run_logged f3 || return 1
	[ "$forked" = no ] && [ "$(sed -n 1p "$T/f3.out")" = ran ] ||
		{ kiln_fail "after its template died f3: forked=$forked $(cat "$T/f3.out")"; return 1; }
	kiln_template_ready 300 || { fail "no new template was built"; return 1; }
	kiln_run_logged f4 || return 1
	[ "$forked" = yes ] || { kiln_fail "f4 did not fork the new template"; return 1; }
	# the new template's first fork: the old template's list went with it
	[ -z "$prefaulted" ] || { fail "f4 copied $prefaulted pages of the dead template's list"; return 1; }
	"$KILN" --root "$KROOT" templates --rm
	[ -z "$(own_vmms all)" ] || { fail "templates --rm left $(own_vmms all)"; return 1; }
	[ ! -e "$KROOT/templates" ] || { fail "templates --rm left $(ls "$KROOT/templates")"; return 1; }
	kiln_nothing_left
}

# A template's drive slots are part of its shape: a container of one
# drive forks from a template of two slots; one of three drives (its
# rootfs and two read-only volumes) does not fit there, boots cold and has
# a template of 8 built, which the next such container forks.
test_kiln_fork_slot_classes() {
	kiln_reset
	"$KILN" --root "$KROOT" templates --rm
	kiln_bundle "$T/b" 'echo ran' || return 1
	kiln_run_logged s1 || return 1
	kiln_template_ready 300 || { fail "no template was built"; return 1; }
	kiln_run_logged s2 || return 1
	[ "$forked" = yes ] || { kiln_fail "s2 (one drive) did not fork"; return 1; }
	"$KILN" --root "$KROOT" templates >"$T/tl"
	grep -qx "  drives=2" "$T/tl" || { fail "the template of a one-drive container: $(cat "$T/tl")"; return 1; }
	mkdir -p "$T/v1" "$T/v2" && echo one >"$T/v1/f" && echo two >"$T/v2/f"
	KB_EDIT="c['mounts'] += [{'destination': '/v1', 'type': 'bind', 'source': '$T/v1', 'options': ['rbind', 'ro']},
	{'destination': '/v2', 'type': 'bind', 'source': '$T/v2', 'options': ['rbind', 'ro']}]" \
		kiln_bundle "$T/b" 'cat /v1/f /v2/f' || return 1
	for id in s3 s4; do
		kiln_run_logged $id || return 1
		[ "$(tr '\n' ' ' <"$T/$id.out")" = "one two " ] || { kiln_fail "$id: $(cat "$T/$id.out")"; return 1; }
		if [ $id = s3 ]; then
			[ "$forked" = no ] || { kiln_fail "s3 (three drives) forked a template of two slots"; return 1; }
			for _ in $(seq 600); do
				[ "$("$KILN" --root "$KROOT" templates | grep -c ' ready ')" = 2 ] && break
				sleep 0.5
			done
		else
			[ "$forked" = yes ] || { kiln_fail "s4 (three drives) did not fork: $(cat "$KROOT/s4/vmm.log" 2>/dev/null)"; return 1; }
		fi
	done
	"$KILN" --root "$KROOT" templates >"$T/tl"
	grep -qx "  drives=2" "$T/tl" && grep -qx "  drives=8" "$T/tl" &&
		[ "$(grep -c ' ready ' "$T/tl")" = 2 ] || { fail "kiln templates: $(cat "$T/tl")"; return 1; }
	"$KILN" --root "$KROOT" templates --rm
	kiln_nothing_left
}
