# Shared by t_docker.sh, t_podman.sh and t_containerd.sh: start and stop a
# container engine with all of its state in a temporary folder (a tmpfs of
# its own: the test bed's root is an overlay, where overlay-based storage
# cannot keep its layers), build a busybox image locally (no registry
# here), and run kiln through the engine's own snippet in contrib/ as
# written (they name /usr/local/bin/kiln, so kiln is installed there first).
#
# KILN_DAEMON_RUNTIME=runc runs the same steps with runc instead of kiln,
# to debug the harness where kiln cannot run; the steps that only kiln can
# pass (a guest kernel, no kiln-vmm left) are then
# skipped, so such a run never counts as passed.
#
# Every daemon and every process it starts carries KILN_DM_RUN=<its folder>
# in its environment: dm_stop kills, by pid, whatever still carries it.

DM_RUNTIME=${KILN_DAEMON_RUNTIME:-kiln}
DM_PREFIX=/usr/local
DM_KILN=$DM_PREFIX/bin/kiln
DM_IMAGE=kiln-busybox:latest
# one engine command (a docker run boots a VM under emulation)
DM_LIMIT=${KILN_DM_LIMIT:-120}
DM_DIR=
DM_PID=
DM_FAILED=

dm_kiln() { [ "$DM_RUNTIME" = kiln ]; }

# A step that only kiln can pass: false (and a skip) under runc.
dm_kiln_only() { # WHAT
	dm_kiln && return 0
	skip "$DM_RUNTIME as the runtime: $1 not checked"
	return 1
}

# The engines' binaries are Debian's, by full path (/usr/local/bin/docker
# on this image is not Debian's client).
dm_need() { # FILE...
	for f in "$@"; do
		[ -x "$f" ] || { fail "$f missing (hack/install-deps.sh installs it)"; return 1; }
	done
}

# kiln, kiln's shim, kiln-vmm and the guest where the contrib snippets
# look for them.
# Inside the test bed the root is a throw-away overlay; elsewhere this is
# `make install` as a user would run it.
dm_install() {
	dm_kiln || return 0
	[ -x "$B/kiln" ] || { fail "$B/kiln missing (make all)"; return 1; }
	if ! cmp -s "$B/kiln" "$DM_KILN" || ! cmp -s "$VMM" "$DM_PREFIX/bin/kiln-vmm" ||
		! cmp -s "$B/containerd-shim-kiln-v2" "$DM_PREFIX/bin/containerd-shim-kiln-v2" ||
		! cmp -s "$GUEST/agent.cpio" "$DM_PREFIX/share/kiln/initramfs"; then
		make -s -C "$TOP" install PREFIX="$DM_PREFIX" >"$T/install.log" 2>&1 || {
			fail "make install PREFIX=$DM_PREFIX failed"
			tail -n 10 "$T/install.log" | sed 's/^/    ! /'
			return 1
		}
	fi
}

# A fresh folder on a tmpfs of its own for one daemon's whole state.
dm_mkdir() { # NAME
	DM_DIR=$(mktemp -d "/tmp/kiln-$1.XXXXXX") || return 1
	mount -t tmpfs -o size="${KILN_DM_TMPFS:-1g}",mode=0755 "kiln-$1" "$DM_DIR" || {
		rmdir "$DM_DIR"
		DM_DIR=
		fail "cannot mount a tmpfs for $1"
		return 1
	}
	mkdir -p "$DM_DIR/tmp"
}

# Run a daemon in the background with its log in $DM_DIR/daemon.log.
dm_spawn() { # CMD...
	env KILN_DM_RUN="$DM_DIR" TMPDIR="$DM_DIR/tmp" "$@" \
		</dev/null >"$DM_DIR/daemon.log" 2>&1 &
	DM_PID=$!
}

DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd

# docker against the dockerd of $DM_DIR
dk() {
	DOCKER_CONFIG=$DM_DIR/cli timeout -k 5 "$DM_LIMIT" "$DOCKER" \
		-H "unix://$DM_DIR/docker.sock" "$@"
}

# dockerd with contrib/docker/daemon.json as written, its state in
# $DM_DIR, no network of its own; up to its answer, or 1 with its log.
dm_dockerd() {
	mkdir -p "$DM_DIR/cli"
	dm_spawn "$DOCKERD" --config-file "$TOP/contrib/docker/daemon.json" \
		--data-root "$DM_DIR/data" --exec-root "$DM_DIR/exec" \
		--pidfile "$DM_DIR/dockerd.pid" -H "unix://$DM_DIR/docker.sock" \
		--iptables=false --ip-masq=false --bridge=none --userland-proxy=false \
		--storage-driver overlay2
	dm_until 120 'dk version' && return 0
	fail "dockerd did not answer within 120 s"
	dm_log_tail 20
	return 1
}

# Poll shell CODE (evaluated anew each time) until it succeeds, for up to
# $1 seconds of wall time (one poll may itself take seconds in the bed).
dm_until() { # SECONDS CODE
	local end=$((SECONDS + $1))
	while :; do
		eval "$2" >/dev/null 2>&1 && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# The pids of processes still carrying this daemon's mark, or working in
# its folder (a warm template of conmon's runtime has no mark).
dm_marked() {
	[ -n "$DM_DIR" ] || return 0
	for d in /proc/[0-9]*; do
		[ "${d#/proc/}" = "$BASHPID" ] && continue
		if grep -qzxF "KILN_DM_RUN=$DM_DIR" "$d/environ" 2>/dev/null; then
			echo "${d#/proc/}"
			continue
		fi
		case "$(readlink "$d/cwd" 2>/dev/null)" in
		"$DM_DIR"/*) echo "${d#/proc/}" ;;
		esac
	done
}

# kiln-vmm processes of this run: lib.sh's mark or this daemon's; warm
# templates (KILN_TEMPLATE=1: they outlive containers) only with `all`.
dm_vmms() { # [all]
	for p in $(pgrep -x kiln-vmm); do
		vmm_is_waiter "$p" && continue
		grep -qzxF -e "KILN_IT_RUN=$KILN_IT_RUN" -e "KILN_DM_RUN=$DM_DIR" \
			"/proc/$p/environ" 2>/dev/null || continue
		[ "${1:-}" = all ] || ! grep -qzxF KILN_TEMPLATE=1 "/proc/$p/environ" ||
			continue
		echo "$p"
	done
}

# The kiln-vmm of container ID, found by its working directory (its
# state directory, named after the id), where no mark reaches it:
# conmon starts the runtime with an environment of its own.
dm_vmm_of() { # ID
	for p in $(pgrep -x kiln-vmm); do
		vmm_is_waiter "$p" && continue
		case "$(vmm_state_dir "$p")" in
		*/"$1") echo "$p" ;;
		esac
	done
}

# Stop the daemon (TERM, then KILL after $1 s), kill whatever it left
# (shims, conmon, pid processes, VMMs), unmount everything under its
# folder and remove it. Safe to call twice, and from an EXIT trap.
dm_stop() { # [SECONDS]
	[ -n "$DM_DIR" ] || return 0
	if [ -n "$DM_PID" ]; then
		kill -TERM "$DM_PID" 2>/dev/null
		dm_until "${1:-30}" '! kill -0 "$DM_PID"'
		kill -KILL "$DM_PID" 2>/dev/null
		wait "$DM_PID" 2>/dev/null
		DM_PID=
	fi
	left=$(dm_marked)
	if [ -n "$left" ]; then
		echo "    cleanup: killing what the daemon left: $(for p in $left; do
			cat "/proc/$p/comm" 2>/dev/null
		done | sort | uniq -c | tr -s ' \n' ' ')"
		# shellcheck disable=SC2086 # one pid per word
		kill -KILL $left 2>/dev/null
		dm_until 10 '[ -z "$(dm_marked)" ]'
	fi
	# deepest mount first; a busy one goes lazily
	awk -v d="$DM_DIR" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	rm -rf "$DM_DIR" 2>/dev/null
	rmdir "$DM_DIR" 2>/dev/null
	DM_DIR=
}

# ---- the image -------------------------------------------------------------

# A rootfs of busybox-static: every applet, /etc/passwd and /etc/group with
# root and a user 1000, the directories an engine mounts over.
dm_rootfs() { # DIR
	r=$1
	mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/root" "$r/home/u"
	chmod 1777 "$r/tmp"
	cp /bin/busybox "$r/bin/busybox" || return 1
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\n' >"$r/etc/passwd"
	printf 'root:x:0:\nu:x:1000:\n' >"$r/etc/group"
	chown 1000:1000 "$r/home/u"
}

# The rootfs as one uncompressed layer tar, owned by root.
dm_layer_tar() { # OUT
	rm -rf "$T/dm-rootfs"
	dm_rootfs "$T/dm-rootfs" || return 1
	tar --numeric-owner -C "$T/dm-rootfs" -cf "$1" . || return 1
	rm -rf "$T/dm-rootfs"
}

dm_sha() { sha256sum "$1" | cut -d' ' -f1; }

# The same rootfs as an OCI image layout archive (for ctr images import),
# named docker.io/library/$DM_IMAGE.
dm_oci_archive() { # OUT
	o=$T/dm-oci
	rm -rf "$o"
	mkdir -p "$o/blobs/sha256"
	dm_layer_tar "$o/layer.tar" || return 1
	ld=$(dm_sha "$o/layer.tar")
	ls=$(stat -c %s "$o/layer.tar")
	mv "$o/layer.tar" "$o/blobs/sha256/$ld"
	printf '%s' "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$ld\"]}}" >"$o/config"
	cd=$(dm_sha "$o/config")
	cs=$(stat -c %s "$o/config")
	mv "$o/config" "$o/blobs/sha256/$cd"
	printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd\",\"size\":$cs},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$ld\",\"size\":$ls}]}" >"$o/manifest"
	md=$(dm_sha "$o/manifest")
	ms=$(stat -c %s "$o/manifest")
	mv "$o/manifest" "$o/blobs/sha256/$md"
	printf '%s' "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":$ms,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},\"annotations\":{\"io.containerd.image.name\":\"docker.io/library/$DM_IMAGE\",\"org.opencontainers.image.ref.name\":\"${DM_IMAGE#*:}\"}}]}" >"$o/index.json"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$o/oci-layout"
	tar -C "$o" -cf "$1" oci-layout index.json blobs || return 1
	rm -rf "$o"
}

# ---- checks shared by the engines -----------------------------------------

# Shell for a -t container, judged by its exit status alone: terminal
# output through `script` loses a line now and then (runc too: a line
# missing between two that arrived). 5: stdin and stdout are a terminal
# of 33 rows and 111 columns; 6: the size never became that within 10 s
# (an engine may set it just after the process started); 7: not a
# terminal.
DM_TTY_CHECK='test -t 0 && test -t 1 || exit 7; i=0; until [ "$(stty size 2>/dev/null)" = "33 111" ]; do [ $i -lt 50 ] || { stty size; exit 6; }; sleep 0.2; i=$((i + 1)); done; exit 5'

# Run an engine command (a shell function or a binary) with a time limit;
# stdout in $T/dm.out and stderr in $T/dm.err (terminal \r removed), status
# in $drc. Stdin from $DM_IN (default /dev/null). Every \r at a line's end
# goes: a terminal under `script` ends lines with \r\r\n (two ptys).
drun() {
	drc=0
	"$@" <"${DM_IN:-/dev/null}" >"$T/dm.out" 2>"$T/dm.err" || drc=$?
	sed -i 's/\r*$//' "$T/dm.out" "$T/dm.err"
}

dm_show() {
	sed 's/^/      out| /' "$T/dm.out" | tail -n 15
	sed 's/^/      err| /' "$T/dm.err" | tail -n 8
}

dm_fail() {
	fail "$*"
	dm_show
	return 1
}

dm_expect_rc() { # WANT
	[ "$drc" -eq "$1" ] || dm_fail "exit status $drc, want $1"
}

# stdout must be exactly the given lines
dm_out_is() {
	printf '%s\n' "$@" | cmp -s - "$T/dm.out" || dm_fail "stdout is not: $*"
}

dm_out_has() {
	for want in "$@"; do
		grep -qxF -- "$want" "$T/dm.out" ||
			{ dm_fail "stdout lacks line '$want'"; return 1; }
	done
}

# A writable host-directory bind as runc gives it: the container, with
# $DM_DIR/rw bound at /rwmnt, runs $DM_RW_CMD: it reads the host's file and
# writes one the host then sees with its content, owner and mode (kiln:
# over virtio-fs, runtime/vm.c).
# shellcheck disable=SC2016 # the container's shell expands it
DM_RW_CMD='cat /rwmnt/in && echo from-the-container >/rwmnt/out && chmod 640 /rwmnt/out && chown 1234:5678 /rwmnt/out'
dm_rw_bind_prepare() {
	rm -rf "$DM_DIR/rw"
	mkdir -p "$DM_DIR/rw"
	echo from-the-host >"$DM_DIR/rw/in"
}
dm_rw_bind_check() {
	{ dm_expect_rc 0 && dm_out_is from-the-host; } || return 1
	[ "$(cat "$DM_DIR/rw/out" 2>/dev/null)" = from-the-container ] ||
		{ dm_fail "the host does not see the container's file"; return 1; }
	[ "$(stat -c '%u:%g %a' "$DM_DIR/rw/out")" = "1234:5678 640" ] ||
		dm_fail "owner and mode on the host: $(stat -c '%u:%g %a' "$DM_DIR/rw/out")"
}

# A failure that names $1 on stderr (an engine may add lines of its own).
dm_error_names() { # TEXT
	[ "$drc" -ne 0 ] || { dm_fail "it succeeded; want a failure naming '$1'"; return 1; }
	# timeout's own statuses (docker says 125 for a runtime's error)
	[ "$drc" -ne 124 ] && [ "$drc" -ne 137 ] ||
		{ dm_fail "exit status $drc (a timeout?)"; return 1; }
	grep -qF -- "$1" "$T/dm.err" || dm_fail "stderr does not name '$1'"
}

# kiln's image cache (runtime/kiln.h's default): one image per layer,
# shared by the containers that use it.
DM_CACHE=${KILN_DM_CACHE:-/var/lib/kiln/images}

dm_cache_list() {
	find "$DM_CACHE" -mindepth 1 -maxdepth 1 2>/dev/null | sort
}

# Nothing of one container left: no kiln-vmm of ours, no runtime state
# named after its id under the given folders (kiln's default root too),
# and kiln's image cache holds no more images than $DM_CACHE_BEFORE (a
# list taken before the container ran: its image's layers were cached by
# earlier steps), but for $DM_CACHE_SLACK new ones (the cache collects
# images of removed directories when it next builds one).
dm_nothing_left() { # ID DIR...
	id=$1
	shift
	extra=$(dm_cache_list | comm -13 <(printf '%s\n' "${DM_CACHE_BEFORE:-}" | sed '/^$/d') - |
		grep '[.]erofs$')
	[ "$(printf '%s' "$extra" | grep -c .)" -le "${DM_CACHE_SLACK:-0}" ] ||
		{ fail "kiln's image cache kept, after rm: $(echo "$extra" | paste -sd' ')"; return 1; }
	v="$(dm_vmms) $(dm_vmm_of "$id")"
	[ -z "${v// /}" ] || { fail "kiln-vmm still running after rm: $v"; return 1; }
	for d in "$@" /run/kiln; do
		[ -d "$d" ] || continue
		f=$(find "$d" -name "$id*" 2>/dev/null | head -n 3)
		[ -z "$f" ] || { fail "left behind under $d: $f"; return 1; }
	done
}

# Run the named steps (functions PREFIX_STEP) in order; a failing step is
# named and the others still run, except after a failed step listed in
# $DM_FATAL (nothing can pass without it).
dm_steps() { # PREFIX STEP...
	p=$1
	shift
	DM_FAILED=
	for step in "$@"; do
		start=$(date +%s.%N)
		if ("${p}_$step"); then
			printf '    ok   %-20s %5.1fs\n' "$step" "$(echo "$(date +%s.%N) - $start" | bc)"
		else
			echo "    FAIL $step"
			DM_FAILED="$DM_FAILED $step"
			case " ${DM_FATAL:-} " in *" $step "*) break ;; esac
		fi
	done
	[ -z "$DM_FAILED" ] || {
		echo "    failed steps:$DM_FAILED"
		return 1
	}
}

# The last lines of the daemon's log, on failure.
dm_log_tail() {
	[ -n "$DM_DIR" ] && [ -f "$DM_DIR/daemon.log" ] || return 0
	tail -n "${1:-15}" "$DM_DIR/daemon.log" | sed 's/^/    daemon| /'
}

# A warm template (runtime/template.c) is ready somewhere under $1 (an
# engine's runtime --root): kiln templates says so.
dm_template_ready() { # DIR
	for t in $(find "$1" -maxdepth 5 -type d -name templates 2>/dev/null); do
		"$DM_KILN" --root "${t%/templates}" templates 2>/dev/null | grep -q ' ready ' &&
			return 0
	done
	return 1
}

# Container ID's VM was forked from a template: its kiln-vmm said so.
dm_forked() { # ID
	v=$(dm_vmm_of "$1" | head -n 1)
	[ -n "$v" ] && grep -q "forked from" "$(vmm_state_dir "$v")/vmm.log" 2>/dev/null
}
