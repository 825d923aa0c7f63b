# Docker (Debian's docker.io) runs kiln through contrib/docker/daemon.json
# as written: one dockerd with its state in a tmpfs of its own, an image
# imported from a local busybox rootfs, then one step per behaviour a runc
# user relies on. A failing step is named; the others still run.

. "$TOP/test/integration/daemons.sh"

DK_STEPS=${KILN_DOCKER_STEPS:-image output uname env_cwd user stdin tty tty_resize \
exec kill stop rm readonly_rootfs ro_bind rw_bind named_volume keep_writes stats fork}

# docker run with the runtime under test
dkr() {
	dk run --runtime "$DM_RUNTIME" "$@"
}

dk_state() { # NAME FIELD
	dk inspect -f "{{.State.$2}}" "$1" 2>/dev/null
}

# Wait up to $2 s until container $1 is no longer running.
dk_until_exited() { # NAME SECONDS
	dm_until "$2" "[ \"\$(dk_state $1 Running)\" = false ]"
}

# Once a template is ready, start container NAME (sleeping) and check
# that its VM is a fork; it is removed when that fails.
dk_fork_start() { # NAME
	dm_until 300 'dm_template_ready "$DM_DIR/exec"' ||
		{ fail "no template under $DM_DIR/exec"; return 1; }
	dk rm -f "$1" >/dev/null 2>&1
	drun dkr -d --name "$1" "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	dm_forked "$(dk inspect -f '{{.Id}}' "$1")" && return 0
	fail "$1's VM did not fork"
	dk rm -f "$1" >/dev/null 2>&1
	return 1
}

# ---- steps -----------------------------------------------------------------

# The containers of the steps before had a template of their VM shape
# built (the first one booted cold): the next one forks it and runs as
# any, exec included.
dk_fork() {
	dm_kiln || return 0
	dk_fork_start fk || return 1
	drun dk exec fk sh -c 'echo in-a-fork'
	dk rm -f fk >/dev/null 2>&1
	dm_expect_rc 0 && dm_out_is in-a-fork
}

dk_image() {
	dm_layer_tar "$T/dk-layer.tar" || { fail "cannot build the rootfs tar"; return 1; }
	drun dk import "$T/dk-layer.tar" "$DM_IMAGE"
	rm -f "$T/dk-layer.tar"
	dm_expect_rc 0
}

dk_output() {
	drun dkr --rm "$DM_IMAGE" sh -c 'echo hi; echo oops >&2; exit 3'
	dm_expect_rc 3 && dm_out_is hi || return 1
	grep -qxF oops "$T/dm.err" || dm_fail "stderr lacks 'oops'"
}

dk_uname() {
	dm_kiln_only "the guest kernel" || return 0
	drun dkr --rm "$DM_IMAGE" uname -r
	dm_expect_rc 0 || return 1
	[ -s "$T/dm.out" ] || { dm_fail "uname -r printed nothing"; return 1; }
	[ "$(cat "$T/dm.out")" != "$(uname -r)" ] ||
		dm_fail "uname -r inside is the host's ($(uname -r)): no guest kernel"
}

dk_env_cwd() {
	drun dkr --rm -e FOO=bar -e 'SPACED=a b' -w /tmp "$DM_IMAGE" \
		sh -c 'echo "$FOO"; echo "$SPACED"; pwd'
	dm_expect_rc 0 && dm_out_is bar "a b" /tmp
}

dk_user() {
	drun dkr --rm -u 1000:1000 "$DM_IMAGE" sh -c 'id -u; id -g; touch /root/x'
	[ "$drc" -ne 0 ] || { dm_fail "user 1000 could write /root (0755 root)"; return 1; }
	dm_out_has 1000 || return 1
	[ "$(sed -n 2p "$T/dm.out")" = 1000 ] || dm_fail "gid is not 1000"
}

dk_stdin() {
	printf 'data\nmore data\n' >"$T/dk.in"
	DM_IN=$T/dk.in drun dkr --rm -i "$DM_IMAGE" cat
	dm_expect_rc 0 && dm_out_is data "more data"
}

# -t under script: the client's terminal is 33x111, the container's too.
dk_tty() {
	drun script -qec "stty rows 33 cols 111; DOCKER_CONFIG=$DM_DIR/cli timeout --foreground -k 5 $DM_LIMIT $DOCKER \
-H unix://$DM_DIR/docker.sock run --runtime $DM_RUNTIME --rm -t $DM_IMAGE \
sh -c '$DM_TTY_CHECK'" /dev/null
	dm_expect_rc 5
}

# A detached -t container sees a resize sent through docker's API.
dk_tty_resize() {
	dk rm -f rs >/dev/null 2>&1
	drun dkr -d -t --name rs "$DM_IMAGE" sh -c \
		'stty size; while [ "$(stty size)" != "40 100" ]; do sleep 0.2; done; echo resized'
	dm_expect_rc 0 || return 1
	sent=
	dm_until 30 '[ "$(dk_state rs Running)" = true ] &&
		curl -sf --unix-socket "$DM_DIR/docker.sock" -X POST \
			"http://docker/containers/rs/resize?h=40&w=100"' && sent=1
	[ -n "$sent" ] || { dm_fail "the resize request was never accepted"; dk rm -f rs >/dev/null 2>&1; return 1; }
	ok=
	dk_until_exited rs 60 && ok=1
	drun dk logs rs
	dk rm -f rs >/dev/null 2>&1
	[ -n "$ok" ] || { dm_fail "the container never saw 40 100 (60 s)"; return 1; }
	dm_out_has resized
}

dk_exec() {
	dk rm -f ex >/dev/null 2>&1
	drun dkr -d --name ex "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	drun dk exec ex sh -c 'echo in; echo err >&2; exit 4'
	r=0
	{ dm_expect_rc 4 && dm_out_is in; } || r=1
	printf 'to exec\n' >"$T/dk.in"
	DM_IN=$T/dk.in drun dk exec -i -e E=v -w /tmp ex sh -c 'cat; echo "$E"; pwd'
	{ dm_expect_rc 0 && dm_out_is "to exec" v /tmp; } || r=1
	dk rm -f ex >/dev/null 2>&1
	return $r
}

dk_kill() {
	dk rm -f kl >/dev/null 2>&1
	drun dkr -d --name kl "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	drun dk kill kl
	dm_expect_rc 0 || { dk rm -f kl >/dev/null 2>&1; return 1; }
	ok=
	dk_until_exited kl 30 && ok=1
	code=$(dk_state kl ExitCode)
	dk rm -f kl >/dev/null 2>&1
	[ -n "$ok" ] || { fail "still running 30 s after docker kill"; return 1; }
	[ "$code" = 137 ] || fail "exit code $code after docker kill, want 137"
}

# sleep as init ignores SIGTERM: stop waits its 2 s, then kills.
dk_stop() {
	dk rm -f st >/dev/null 2>&1
	drun dkr -d --name st "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	dm_until 60 '[ "$(dk_state st Running)" = true ]'
	t0=$(date +%s.%N)
	drun dk stop -t 2 st
	secs=$(echo "$(date +%s.%N) - $t0" | bc)
	code=$(dk_state st ExitCode)
	running=$(dk_state st Running)
	dk rm -f st >/dev/null 2>&1
	dm_expect_rc 0 || return 1
	echo "      docker stop -t 2 took $secs s"
	[ "$running" = false ] || { fail "still running after docker stop"; return 1; }
	[ "$code" = 137 ] || { fail "exit code $code after stop, want 137 (KILL after the timeout)"; return 1; }
	[ "$(echo "$secs >= 2" | bc)" = 1 ] || { fail "stop took $secs s: it did not wait for SIGTERM"; return 1; }
	[ "$(echo "$secs < 20" | bc)" = 1 ] || fail "stop took $secs s with -t 2"
}

# rm leaves no VMM and no runtime state (docker's exec-root holds the
# runtime's --root), and kiln's image cache does not grow with each
# container: docker gives every container a -init layer of its own, whose
# image the cache drops once docker removed the directory (at its next
# build: three more containers leave one such image, not three).
dk_rm() {
	dk rm -f gone >/dev/null 2>&1
	# the image's layers in kiln's cache first (when rm runs alone)
	dkr --rm "$DM_IMAGE" true >/dev/null 2>&1
	DM_CACHE_BEFORE=$(dm_cache_list)
	drun dkr -d --name gone "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	id=$(dk inspect -f '{{.Id}}' gone)
	[ -n "$id" ] || { fail "no id for the container"; return 1; }
	if dm_kiln; then
		dm_until 60 '[ -n "$(dm_vmms)" ]' || {
			fail "no kiln-vmm while the container runs"
			dk rm -f gone >/dev/null 2>&1
			return 1
		}
	fi
	drun dk rm -f gone
	dm_expect_rc 0 || return 1
	dk inspect gone >/dev/null 2>&1 && { fail "docker still lists it"; return 1; }
	dm_until 30 '[ -z "$(dm_vmms)" ]'
	for _ in 1 2 3; do
		drun dkr --rm "$DM_IMAGE" true
		dm_expect_rc 0 || return 1
	done
	DM_CACHE_SLACK=1 dm_nothing_left "$id" "$DM_DIR/exec"
}

dk_readonly_rootfs() {
	drun dkr --rm --read-only "$DM_IMAGE" sh -c 'cat /etc/passwd >/dev/null && touch /new'
	[ "$drc" -ne 0 ] && [ "$drc" -lt 125 ] ||
		{ dm_fail "a write to a --read-only rootfs: status $drc"; return 1; }
	grep -qi 'read-only' "$T/dm.err" || dm_fail "no read-only error"
}

dk_ro_bind() {
	mkdir -p "$DM_DIR/ro"
	echo hello >"$DM_DIR/ro/f"
	drun dkr --rm -v "$DM_DIR/ro:/x:ro" "$DM_IMAGE" sh -c 'cat /x/f; touch /x/g'
	[ "$drc" -ne 0 ] || { dm_fail "a write to a read-only bind mount succeeded"; return 1; }
	dm_out_has hello || return 1
	[ ! -e "$DM_DIR/ro/g" ] || fail "the host file appeared through a :ro mount"
}

dk_rw_bind() {
	dm_rw_bind_prepare
	drun dkr --rm -v "$DM_DIR/rw:/rwmnt" "$DM_IMAGE" sh -c "$DM_RW_CMD"
	dm_rw_bind_check
}

# A named volume two containers share: A writes, then waits to see B's
# append (kiln: two VMs, each with its virtiofsd on docker's volume
# folder); B reads A's line and appends; the folder on the host
# (Mountpoint) has both lines.
# shellcheck disable=SC2016 # the containers' shell expands it
DK_VOL_WAIT='i=0; while ! grep -q "$1" /vol/shared 2>/dev/null && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done'
dk_named_volume() {
	dk rm -f va >/dev/null 2>&1
	dk volume rm -f kvol >/dev/null 2>&1
	drun dk volume create kvol
	dm_expect_rc 0 || return 1
	drun dkr -d --name va -v kvol:/vol "$DM_IMAGE" sh -c \
		"echo from-a >/vol/shared; $DK_VOL_WAIT; grep -qx from-b /vol/shared" sh from-b
	dm_expect_rc 0 || { dk volume rm -f kvol >/dev/null 2>&1; return 1; }
	drun dkr --rm -v kvol:/vol "$DM_IMAGE" sh -c "$DK_VOL_WAIT; cat /vol/shared; echo from-b >>/vol/shared" sh from-a
	r=0
	{ dm_expect_rc 0 && dm_out_is from-a; } || r=1
	dk_until_exited va 120 || { dm_fail "container A still runs 120 s after B appended"; r=1; }
	code=$(dk_state va ExitCode)
	mp=$(dk volume inspect -f '{{.Mountpoint}}' kvol 2>/dev/null)
	got=$(cat "$mp/shared" 2>/dev/null)
	dk rm -f va >/dev/null 2>&1
	dk volume rm -f kvol >/dev/null 2>&1
	[ "$code" = 0 ] || { fail "container A did not see B's append (exit code $code)"; r=1; }
	[ "$got" = "from-a
from-b" ] || { fail "the volume's folder on the host ($mp) has '$got'"; r=1; }
	return $r
}

# With runc a container's writes survive stop + start and go with rm.
dk_keep_writes() {
	dk rm -f kw >/dev/null 2>&1
	drun dkr --name kw "$DM_IMAGE" sh -c 'cat /data 2>/dev/null || echo none; echo kept >/data'
	{ dm_expect_rc 0 && dm_out_is none; } || { dk rm -f kw >/dev/null 2>&1; return 1; }
	drun dk start -a kw
	dk rm -f kw >/dev/null 2>&1
	dm_expect_rc 0 && dm_out_is kept
}

# docker stats sees the VM's usage: memory non-zero, CPU moving under a
# busy loop.
dk_stats() {
	dk rm -f ld >/dev/null 2>&1
	drun dkr -d --name ld "$DM_IMAGE" sh -c 'while :; do :; done'
	dm_expect_rc 0 || return 1
	dm_until 60 '[ "$(dk_state ld Running)" = true ]'
	ok=
	for _ in 1 2 3 4 5; do
		drun dk stats --no-stream --format '{{.MemUsage}}|{{.CPUPerc}}' ld
		[ "$drc" -eq 0 ] || break
		mem=$(cut -d'|' -f1 "$T/dm.out" | sed 's/ *\/.*//')
		cpu=$(cut -d'|' -f2 "$T/dm.out" | tr -d '%')
		case "$mem" in '' | 0B | 0 | 0.*B) ;; *)
			[ -n "$cpu" ] && [ "$(echo "$cpu > 0" | bc)" = 1 ] && { ok=1; break; } ;;
		esac
		sleep 1
	done
	dk rm -f ld >/dev/null 2>&1
	[ -n "$ok" ] || dm_fail "docker stats shows no memory or no CPU under load"
	echo "      docker stats: $mem, CPU $cpu %"
}

# ---- the test --------------------------------------------------------------

dk_cleanup() {
	if [ -n "$DM_DIR" ] && [ -S "$DM_DIR/docker.sock" ]; then
		# stop what still runs while dockerd can still tell the runtime
		c=$(dk ps -aq 2>/dev/null)
		# shellcheck disable=SC2086 # one id per word
		[ -z "$c" ] || DM_LIMIT=60 dk rm -f $c >/dev/null 2>&1
	fi
	dm_stop 30
}

test_docker_runs_kiln() {
	dm_need "$DOCKER" "$DOCKERD" /usr/bin/containerd /usr/bin/script /usr/bin/curl || return 1
	dm_install || return 1
	dm_mkdir docker || return 1
	trap dk_cleanup EXIT
	t0=$(date +%s.%N)
	if ! dm_dockerd; then
		dk_cleanup
		return 1
	fi
	echo "    dockerd up in $(echo "$(date +%s.%N) - $t0" | bc) s"
	r=0
	DM_FATAL=image dm_steps dk $DK_STEPS || r=1
	[ "$r" -eq 0 ] || dm_log_tail 15
	dk_cleanup
	trap - EXIT
	return $r
}
