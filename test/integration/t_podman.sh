# Podman (Debian's podman, conmon) runs kiln through
# contrib/podman/containers.conf as written (CONTAINERS_CONF names it):
# storage in a tmpfs of its own, an image imported from a local busybox
# rootfs, no network (--network none: no CNI set-up in the test bed).
# Podman calls the runtime without --root: kiln's state is in /run/kiln.

. "$TOP/test/integration/daemons.sh"

PODMAN=/usr/bin/podman
PM_STEPS=${KILN_PODMAN_STEPS:-image output uname env_cwd user stdin tty \
exec kill stop rm readonly_rootfs ro_bind rw_bind named_volume keep_writes}

# The snippet makes kiln podman's default runtime: kiln needs no flag (and
# podman refuses to start at all while the default runtime is missing).
pm_rt() {
	dm_kiln || echo "--runtime $DM_RUNTIME"
}

pm() {
	# shellcheck disable=SC2046 # no flag or two words
	CONTAINERS_CONF=$TOP/contrib/podman/containers.conf TMPDIR=$DM_DIR/tmp \
		KILN_DM_RUN=$DM_DIR timeout -k 5 "$DM_LIMIT" "$PODMAN" \
		--root "$DM_DIR/storage" --runroot "$DM_DIR/run" --tmpdir "$DM_DIR/libpod" \
		--storage-driver overlay --cgroup-manager cgroupfs --events-backend file \
		$(pm_rt) "$@"
}

pmr() {
	pm run --network none "$@"
}

pm_state() { # NAME FIELD
	pm inspect -f "{{.State.$2}}" "$1" 2>/dev/null
}

pm_until_exited() { # NAME SECONDS
	dm_until "$2" "[ \"\$(pm_state $1 Running)\" = false ]"
}

# ---- steps -----------------------------------------------------------------

pm_image() {
	dm_layer_tar "$T/pm-layer.tar" || { fail "cannot build the rootfs tar"; return 1; }
	drun pm import "$T/pm-layer.tar" "$DM_IMAGE"
	rm -f "$T/pm-layer.tar"
	dm_expect_rc 0
}

pm_output() {
	drun pmr --rm "$DM_IMAGE" sh -c 'echo hi; echo oops >&2; exit 3'
	dm_expect_rc 3 && dm_out_is hi || return 1
	grep -qxF oops "$T/dm.err" || dm_fail "stderr lacks 'oops'"
}

pm_uname() {
	dm_kiln_only "the guest kernel" || return 0
	drun pmr --rm "$DM_IMAGE" uname -r
	dm_expect_rc 0 || return 1
	[ -s "$T/dm.out" ] || { dm_fail "uname -r printed nothing"; return 1; }
	[ "$(cat "$T/dm.out")" != "$(uname -r)" ] ||
		dm_fail "uname -r inside is the host's ($(uname -r)): no guest kernel"
}

pm_env_cwd() {
	drun pmr --rm -e FOO=bar -e 'SPACED=a b' -w /tmp "$DM_IMAGE" \
		sh -c 'echo "$FOO"; echo "$SPACED"; pwd'
	dm_expect_rc 0 && dm_out_is bar "a b" /tmp
}

pm_user() {
	drun pmr --rm -u 1000:1000 "$DM_IMAGE" sh -c 'id -u; id -g; touch /root/x'
	[ "$drc" -ne 0 ] || { dm_fail "user 1000 could write /root (0755 root)"; return 1; }
	dm_out_has 1000 || return 1
	[ "$(sed -n 2p "$T/dm.out")" = 1000 ] || dm_fail "gid is not 1000"
}

pm_stdin() {
	printf 'data\nmore data\n' >"$T/pm.in"
	DM_IN=$T/pm.in drun pmr --rm -i "$DM_IMAGE" cat
	dm_expect_rc 0 && dm_out_is data "more data"
}

# -t under script: the client's terminal is 33x111, the container's too
# (conmon passes the pty from --console-socket).
pm_tty() {
	drun script -qec "stty rows 33 cols 111; CONTAINERS_CONF=$TOP/contrib/podman/containers.conf \
TMPDIR=$DM_DIR/tmp KILN_DM_RUN=$DM_DIR timeout --foreground -k 5 $DM_LIMIT $PODMAN --root $DM_DIR/storage --runroot $DM_DIR/run \
--tmpdir $DM_DIR/libpod --storage-driver overlay --cgroup-manager cgroupfs --events-backend file \
$(pm_rt) run --network none --rm -t $DM_IMAGE \
sh -c '$DM_TTY_CHECK'" /dev/null
	dm_expect_rc 5
}

pm_exec() {
	pm rm -f ex >/dev/null 2>&1
	drun pmr -d --name ex "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	drun pm exec ex sh -c 'echo in; echo err >&2; exit 4'
	r=0
	{ dm_expect_rc 4 && dm_out_is in; } || r=1
	printf 'to exec\n' >"$T/pm.in"
	DM_IN=$T/pm.in drun pm exec -i -e E=v -w /tmp ex sh -c 'cat; echo "$E"; pwd'
	{ dm_expect_rc 0 && dm_out_is "to exec" v /tmp; } || r=1
	pm rm -f ex >/dev/null 2>&1
	return $r
}

pm_kill() {
	pm rm -f kl >/dev/null 2>&1
	drun pmr -d --name kl "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	drun pm kill kl
	dm_expect_rc 0 || { pm rm -f kl >/dev/null 2>&1; return 1; }
	ok=
	pm_until_exited kl 30 && ok=1
	code=$(pm_state kl ExitCode)
	pm rm -f kl >/dev/null 2>&1
	[ -n "$ok" ] || { fail "still running 30 s after podman kill"; return 1; }
	[ "$code" = 137 ] || fail "exit code $code after podman kill, want 137"
}

# sleep as init ignores SIGTERM: stop waits its 2 s, then kills.
pm_stop() {
	pm rm -f st >/dev/null 2>&1
	drun pmr -d --name st "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	dm_until 60 '[ "$(pm_state st Running)" = true ]'
	t0=$(date +%s.%N)
	drun pm stop -t 2 st
	secs=$(echo "$(date +%s.%N) - $t0" | bc)
	code=$(pm_state st ExitCode)
	running=$(pm_state st Running)
	pm rm -f st >/dev/null 2>&1
	dm_expect_rc 0 || return 1
	echo "      podman stop -t 2 took $secs s"
	[ "$running" = false ] || { fail "still running after podman stop"; return 1; }
	[ "$code" = 137 ] || { fail "exit code $code after stop, want 137 (KILL after the timeout)"; return 1; }
	[ "$(echo "$secs >= 2" | bc)" = 1 ] || { fail "stop took $secs s: it did not wait for SIGTERM"; return 1; }
	[ "$(echo "$secs < 20" | bc)" = 1 ] || fail "stop took $secs s with -t 2"
}

pm_rm() {
	pm rm -f gone >/dev/null 2>&1
	# the image's layers in kiln's cache first (when rm runs alone)
	pmr --rm "$DM_IMAGE" true >/dev/null 2>&1
	DM_CACHE_BEFORE=$(dm_cache_list)
	drun pmr -d --name gone "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	id=$(pm inspect -f '{{.Id}}' gone)
	[ -n "$id" ] || { fail "no id for the container"; return 1; }
	if dm_kiln; then
		dm_until 60 '[ -n "$(dm_vmm_of "$id")" ]' || {
			fail "no kiln-vmm while the container runs"
			pm rm -f gone >/dev/null 2>&1
			return 1
		}
	fi
	drun pm rm -f gone
	dm_expect_rc 0 || return 1
	pm inspect gone >/dev/null 2>&1 && { fail "podman still lists it"; return 1; }
	dm_until 30 '[ -z "$(dm_vmm_of "$id")" ]'
	# podman makes mount points in each container's upper dir, so each
	# has an image of its own, dropped once podman removed the dir (at
	# the cache's next build: three more containers leave one)
	for _ in 1 2 3; do
		drun pmr --rm "$DM_IMAGE" true
		dm_expect_rc 0 || return 1
	done
	DM_CACHE_SLACK=1 dm_nothing_left "$id" "$DM_DIR/run"
}

pm_readonly_rootfs() {
	drun pmr --rm --read-only "$DM_IMAGE" sh -c 'cat /etc/passwd >/dev/null && touch /new'
	[ "$drc" -ne 0 ] && [ "$drc" -lt 125 ] ||
		{ dm_fail "a write to a --read-only rootfs: status $drc"; return 1; }
	grep -qi 'read-only' "$T/dm.err" || dm_fail "no read-only error"
}

pm_ro_bind() {
	mkdir -p "$DM_DIR/ro"
	echo hello >"$DM_DIR/ro/f"
	drun pmr --rm -v "$DM_DIR/ro:/x:ro" "$DM_IMAGE" sh -c 'cat /x/f; touch /x/g'
	[ "$drc" -ne 0 ] || { dm_fail "a write to a read-only bind mount succeeded"; return 1; }
	dm_out_has hello || return 1
	[ ! -e "$DM_DIR/ro/g" ] || fail "the host file appeared through a :ro mount"
}

pm_rw_bind() {
	dm_rw_bind_prepare
	drun pmr --rm -v "$DM_DIR/rw:/rwmnt" "$DM_IMAGE" sh -c "$DM_RW_CMD"
	dm_rw_bind_check
}

# A `podman volume create` volume in two containers at once (kiln: one
# virtiofsd each, over the same folder): A writes a line and waits for
# B's; B, started while A runs, reads A's line and appends its own; the
# volume's folder on the host (Mountpoint) has both lines.
# shellcheck disable=SC2016 # the containers' shell expands it
PM_VOL_WAIT='i=0; while ! grep -q "$1" /vol/shared 2>/dev/null && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done'
pm_named_volume() {
	pm rm -f va >/dev/null 2>&1
	pm volume rm -f kvol >/dev/null 2>&1
	drun pm volume create kvol
	dm_expect_rc 0 || return 1
	drun pmr -d --name va -v kvol:/vol "$DM_IMAGE" sh -c \
		"echo from-a >/vol/shared; $PM_VOL_WAIT; grep -qx from-b /vol/shared" sh from-b
	dm_expect_rc 0 || { pm volume rm -f kvol >/dev/null 2>&1; return 1; }
	drun pmr --rm -v kvol:/vol "$DM_IMAGE" sh -c "$PM_VOL_WAIT; cat /vol/shared; echo from-b >>/vol/shared" sh from-a
	r=0
	{ dm_expect_rc 0 && dm_out_is from-a; } || r=1
	pm_until_exited va 120 || { dm_fail "container A still runs 120 s after B appended"; r=1; }
	code=$(pm_state va ExitCode)
	mp=$(pm volume inspect -f '{{.Mountpoint}}' kvol 2>/dev/null)
	got=$(cat "$mp/shared" 2>/dev/null)
	pm rm -f va >/dev/null 2>&1
	pm volume rm -f kvol >/dev/null 2>&1
	[ -n "$mp" ] || { fail "podman volume inspect gave no Mountpoint"; return 1; }
	[ "$code" = 0 ] || { fail "container A did not see B's append (exit code $code)"; r=1; }
	[ "$got" = "from-a
from-b" ] || { fail "the volume's folder on the host ($mp) has '$got'"; r=1; }
	return $r
}

pm_keep_writes() {
	pm rm -f kw >/dev/null 2>&1
	drun pmr --name kw "$DM_IMAGE" sh -c 'cat /data 2>/dev/null || echo none; echo kept >/data'
	{ dm_expect_rc 0 && dm_out_is none; } || { pm rm -f kw >/dev/null 2>&1; return 1; }
	drun pm start -a kw
	pm rm -f kw >/dev/null 2>&1
	dm_expect_rc 0 && dm_out_is kept
}

# ---- the test --------------------------------------------------------------

pm_cleanup() {
	if [ -n "$DM_DIR" ] && [ -d "$DM_DIR/storage" ]; then
		DM_LIMIT=60 pm rm -af -t 0 >/dev/null 2>&1
	fi
	dm_stop 5
	# podman's kiln has no --root: its warm templates are in /run/kiln
	"$DM_KILN" templates --rm >/dev/null 2>&1
}

test_podman_runs_kiln() {
	dm_need "$PODMAN" /usr/bin/conmon /usr/bin/script || return 1
	dm_install || return 1
	dm_mkdir podman || return 1
	trap pm_cleanup EXIT
	r=0
	DM_FATAL=image dm_steps pm $PM_STEPS || r=1
	pm_cleanup
	trap - EXIT
	return $r
}
