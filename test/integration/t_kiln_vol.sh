# Writable host directories bound into a container: served over virtio-fs
# by a virtiofsd the pid process starts (runtime/vm.c), mounted by the
# agent at the destination. Uses t_kiln.sh's helpers.

# virtiofsd processes of this run (the env the pid process passed on).
own_virtiofsds() {
	for d in /proc/[0-9]*; do
		[ "$(cat "$d/comm" 2>/dev/null)" = virtiofsd ] || continue
		tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qxF "KILN_IT_RUN=$KILN_IT_RUN" || continue
		echo "${d#/proc/}"
	done
}

# A bundle at $T/b binding $T/vol writable at /data and $T/rovol read-only
# at /ro; its init runs $1 as root with CAP_CHOWN and CAP_FOWNER (`kiln
# spec`'s root has neither).
kiln_vol_bundle() { # COMMAND
	KB_EDIT='c["mounts"].append({"destination": "/data", "type": "bind", "source": "'"$T/vol"'", "options": ["rbind", "rw", "nosuid"]})
c["mounts"].append({"destination": "/ro", "type": "bind", "source": "'"$T/rovol"'", "options": ["rbind", "ro"]})
for k in ("bounding", "effective", "permitted"):
    c["process"]["capabilities"][k] += ["CAP_CHOWN", "CAP_FOWNER"]' \
	kiln_bundle "$T/b" "$1" || return 1
	for a in chmod chown mkdir mv ln stat rm; do
		ln -s busybox "$T/b/rootfs/bin/$a"
	done
}

test_kiln_vol_writable_bind() {
	[ -x /usr/lib/qemu/virtiofsd ] || { skip "no /usr/lib/qemu/virtiofsd"; return 0; }
	kiln_reset
	rm -rf "$T/vol" "$T/rovol"
	mkdir -p "$T/vol/sub" "$T/rovol"
	echo "written by the host" >"$T/vol/from_host"
	echo ro-content >"$T/rovol/file"
	# shellcheck disable=SC2016 # expanded by the container's shell
	kiln_vol_bundle 'cat /data/from_host >/data/echo &&
echo "written by the guest" >/data/from_guest.tmp &&
chmod 640 /data/from_guest.tmp && chown 1234:5678 /data/from_guest.tmp &&
mv /data/from_guest.tmp /data/sub/from_guest &&
ln /data/sub/from_guest /data/hardlink &&
cat /ro/file >/data/ro_read &&
{ touch /ro/x 2>/dev/null && echo ro-writable >/data/ro_result || echo ro-refused >/data/ro_result; } &&
echo ready >/data/ready
i=0; while [ ! -e /data/later ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;
cat /data/later >/data/seen' || return 1
	kiln run --detach --bundle "$T/b" --pid-file "$T/pid" vol1
	[ "$krc" = 0 ] || { kiln_fail "run --detach with a writable bind failed"; return 1; }
	pid=$(cat "$T/pid")
	[ -n "$(own_virtiofsds)" ] || { kiln_fail "no virtiofsd runs for the writable bind"; return 1; }
	for _ in $(seq 600); do [ -e "$T/vol/ready" ] && break; sleep 0.1; done
	[ -e "$T/vol/ready" ] || { kiln_fail "the container never wrote /data/ready: $(ls "$T/vol")"; return 1; }
	# virtiofsd's pid file is named after its socket path (runtime/vm.c):
	# unique to the container while it runs, gone after
	pidf=$(echo "$KROOT/vol1/fs0.sock.pid" | tr / .)
	[ -e "/var/run/virtiofsd/$pidf" ] ||
		{ kiln_fail "no /var/run/virtiofsd/$pidf: $(ls /var/run/virtiofsd)"; return 1; }
	[ "$(cat "$T/vol/echo")" = "written by the host" ] ||
		{ kiln_fail "the container read '$(cat "$T/vol/echo")' of the host's file"; return 1; }
	f=$T/vol/sub/from_guest
	[ "$(cat "$f")" = "written by the guest" ] ||
		{ kiln_fail "the host reads '$(cat "$f")' of the container's file"; return 1; }
	[ "$(stat -c '%u:%g %a' "$f")" = "1234:5678 640" ] ||
		{ kiln_fail "owner and mode on the host: $(stat -c '%u:%g %a' "$f"), want 1234:5678 640"; return 1; }
	[ "$(stat -c %i "$f")" = "$(stat -c %i "$T/vol/hardlink")" ] ||
		{ kiln_fail "the hard link is not the same file on the host"; return 1; }
	[ "$(cat "$T/vol/ro_read")" = ro-content ] || { kiln_fail "the read-only bind's file: $(cat "$T/vol/ro_read")"; return 1; }
	[ "$(cat "$T/vol/ro_result")" = ro-refused ] || { kiln_fail "a read-only bind took a write"; return 1; }
	# a file the host writes while the container runs
	echo "late news" >"$T/vol/later"
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	[ "$(cat "$T/vol/seen" 2>/dev/null)" = "late news" ] ||
		{ kiln_fail "the container did not see the host's later file: '$(cat "$T/vol/seen" 2>/dev/null)'"; return 1; }
	kill -0 "$pid" 2>/dev/null && { kiln_fail "the container did not end"; return 1; }
	[ -z "$(own_virtiofsds)" ] || { kiln_fail "virtiofsd outlives its VM: $(own_virtiofsds)"; return 1; }
	[ ! -e "/var/run/virtiofsd/$pidf" ] || { kiln_fail "virtiofsd's pid file is left: $pidf"; return 1; }
	kiln delete vol1
	[ "$krc" = 0 ] || { kiln_fail "delete"; return 1; }
	kiln_nothing_left
}

test_kiln_vol_bad_dir_and_kill9() {
	[ -x /usr/lib/qemu/virtiofsd ] || { skip "no /usr/lib/qemu/virtiofsd"; return 0; }
	kiln_reset
	rm -rf "$T/vol" "$T/rovol"
	mkdir -p "$T/rovol"
	# a host directory that is not there: one error at create, nothing left
	kiln_vol_bundle 'true' || return 1
	kiln create --bundle "$T/b" vol2
	[ "$krc" != 0 ] && grep -q "$T/vol" "$T/kerr" ||
		{ kiln_fail "a missing host directory was not refused by name"; return 1; }
	[ "$(wc -l <"$T/kerr")" = 1 ] || { kiln_fail "want one error line"; return 1; }
	kiln_nothing_left || return 1
	[ -z "$(own_virtiofsds)" ] || { kiln_fail "virtiofsd left after a failed create"; return 1; }
	mkdir -p "$T/vol"
	kiln_vol_bundle 'exec sleep 1000' || return 1
	for victim in pid vmm; do
		kiln run --detach --bundle "$T/b" --pid-file "$T/pid" vol3
		[ "$krc" = 0 ] || { kiln_fail "run --detach failed"; return 1; }
		pid=$(cat "$T/pid")
		vmm=$(pgrep -P "$pid" -x kiln-vmm)
		[ -n "$vmm" ] && [ -n "$(own_virtiofsds)" ] ||
			{ kiln_fail "no kiln-vmm or no virtiofsd under the pid process"; return 1; }
		if [ $victim = pid ]; then kill -9 "$pid"; else kill -9 "$vmm"; fi
		for _ in $(seq 100); do
			[ -z "$(own_virtiofsds)" ] && ! kill -0 "$pid" 2>/dev/null && break
			sleep 0.1
		done
		[ -z "$(own_virtiofsds)" ] || { kiln_fail "virtiofsd lives on after kill -9 of $victim"; return 1; }
		kiln delete --force vol3
		[ "$krc" = 0 ] || { kiln_fail "delete --force after kill -9 of $victim failed"; return 1; }
		kiln_nothing_left || return 1
		# a killed pid process never ran fs_stop: delete took the pid file
		pidf=$(echo "$KROOT/vol3/fs0.sock.pid" | tr / .)
		[ ! -e "/var/run/virtiofsd/$pidf" ] ||
			{ kiln_fail "virtiofsd's pid file is left after kill -9 of $victim: $pidf"; return 1; }
		[ -z "$(find "$T/vol" -mindepth 1)" ] || { kiln_fail "left in the host directory: $(ls -A "$T/vol")"; return 1; }
		grep -q " $T/vol " /proc/mounts && { kiln_fail "a mount of the host directory is left"; return 1; }
	done
	return 0
}

# mmap and flock on the writable bind: a MAP_SHARED write (msync) the host
# reads; an flock one process of the container holds makes another's
# LOCK_NB fail and another's waiting LOCK_EX wait until the holder lets go.
# Locks do not cross the host boundary (virtiofsd's no_flock, runtime/vm.c
# says why): that is printed, not asserted. build/bench/fsops does the
# guest side.
test_kiln_vol_mmap_flock() {
	[ -x /usr/lib/qemu/virtiofsd ] || { skip "no /usr/lib/qemu/virtiofsd"; return 0; }
	command -v flock >/dev/null || { skip "no flock(1) on the host (util-linux)"; return 0; }
	[ -x "$B/bench/fsops" ] || { kiln_fail "no $B/bench/fsops (make)"; return 1; }
	kiln_reset
	rm -rf "$T/vol" "$T/rovol"
	mkdir -p "$T/vol" "$T/rovol"
	# shellcheck disable=SC2016 # expanded by the container's shell
	kiln_vol_bundle 'waitfor() { i=0; while ! grep -q "$2" "$1" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; }
fsops mmap /data/mapped "bytes through a shared mapping" >/data/mmap_result 2>&1
fsops lock /data/inguest /data/release >/data/holder 2>&1 &
waitfor /data/holder locked
fsops trylock /data/inguest >/data/try_held 2>&1
fsops lock /data/inguest /data/release2 >/data/waiter 2>&1 &
sleep 2; cat /data/waiter >/data/waiter_before
touch /data/release
waitfor /data/waiter locked
touch /data/release2; wait
fsops trylock /data/inguest >/data/try_released 2>&1
fsops lock /data/guestlock /data/host_checked >/data/guest_holds 2>&1 &
waitfor /data/guest_holds locked
echo ready >/data/ready
waitfor /data/host_locked yes
fsops trylock /data/hostlock >/data/try_host 2>&1
echo done >/data/done; wait' || return 1
	cp "$B/bench/fsops" "$T/b/rootfs/bin/" || return 1
	kiln run --detach --bundle "$T/b" --pid-file "$T/pid" vol4
	[ "$krc" = 0 ] || { kiln_fail "run --detach with a writable bind failed"; return 1; }
	pid=$(cat "$T/pid")
	for _ in $(seq 900); do [ -e "$T/vol/ready" ] && break; sleep 0.1; done
	[ -e "$T/vol/ready" ] || { kiln_fail "the container never wrote /data/ready: $(ls "$T/vol")"; return 1; }
	[ "$(cat "$T/vol/mmap_result")" = "mmap ok" ] ||
		{ kiln_fail "mmap in the container: $(cat "$T/vol/mmap_result")"; return 1; }
	[ "$(cat "$T/vol/mapped")" = "bytes through a shared mapping" ] ||
		{ kiln_fail "the host reads '$(cat "$T/vol/mapped")' of the shared mapping"; return 1; }
	[ "$(cat "$T/vol/holder")" = locked ] ||
		{ kiln_fail "flock LOCK_EX in the container: '$(cat "$T/vol/holder")'"; return 1; }
	[ "$(cat "$T/vol/try_held")" = busy ] ||
		{ kiln_fail "flock -n in the container while another process of it holds the lock: '$(cat "$T/vol/try_held")', want busy"; return 1; }
	[ -z "$(cat "$T/vol/waiter_before")" ] ||
		{ kiln_fail "a waiting LOCK_EX got the lock another process holds: '$(cat "$T/vol/waiter_before")'"; return 1; }
	[ "$(cat "$T/vol/waiter")" = locked ] ||
		{ kiln_fail "the waiting LOCK_EX after the holder let go: '$(cat "$T/vol/waiter")'"; return 1; }
	[ "$(cat "$T/vol/try_released")" = free ] ||
		{ kiln_fail "flock -n after both holders ended: '$(cat "$T/vol/try_released")', want free"; return 1; }
	# across the boundary: printed, not asserted
	if flock -n -x "$T/vol/guestlock" true; then seen_host="not seen"; else seen_host=seen; fi
	touch "$T/vol/host_checked"
	# shellcheck disable=SC2016 # expanded by that shell
	flock -x "$T/vol/hostlock" sh -c 'echo yes >"$1/host_locked"; i=0
while [ ! -e "$1/done" ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done' sh "$T/vol" &
	hold=$!
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	wait "$hold"
	kill -0 "$pid" 2>/dev/null && { kiln_fail "the container did not end"; return 1; }
	case $(cat "$T/vol/try_host" 2>/dev/null) in
	busy) seen_guest=seen ;;
	free) seen_guest="not seen" ;;
	*) kiln_fail "flock -n in the container: '$(cat "$T/vol/try_host" 2>/dev/null)'"; return 1 ;;
	esac
	echo "      note: the container's flock $seen_host by the host, the host's $seen_guest in the container"
	[ -z "$(own_virtiofsds)" ] || { kiln_fail "virtiofsd outlives its VM: $(own_virtiofsds)"; return 1; }
	kiln delete vol4
	[ "$krc" = 0 ] || { kiln_fail "delete"; return 1; }
	kiln_nothing_left
}

# Coherence as runc gives it, in three rounds: the container first looks
# at what the host then changes (so a guest cache would hold the old
# view), hands over through the volume (a rename: the host sees the
# container's file complete at once), then the host rewrites a file in
# place with a longer text, renames another and makes a third, and says
# "go" on the container's stdin (a pipe, not the volume: no file-system
# cache between). The container reads all three at once. virtiofsd's
# cache=auto keeps names and attributes for 1 s: a stale size, a name
# still under its old name or a file not there fail this test
# (runtime/vm.c fs_start says what kiln chose and why).
test_kiln_vol_coherence() {
	[ -x /usr/lib/qemu/virtiofsd ] || { skip "no /usr/lib/qemu/virtiofsd"; return 0; }
	kiln_reset
	rm -rf "$T/vol" "$T/rovol"
	mkdir -p "$T/vol" "$T/rovol"
	for r in 1 2 3; do
		echo v1 >"$T/vol/f$r"
		echo moved >"$T/vol/old$r"
	done
	# shellcheck disable=SC2016 # expanded by the container's shell
	kiln_vol_bundle 'has() { if [ -e "$1" ]; then echo yes; else echo no; fi; }
for r in 1 2 3; do
	cat /data/f$r >/dev/null; has /data/old$r >/dev/null; has /data/new$r >/dev/null; has /data/made$r >/dev/null
	echo "guest-$r" >/data/g$r.tmp && mv /data/g$r.tmp /data/g$r
	read -r go || exit 9
	echo "r$r f=$(cat /data/f$r) old=$(has /data/old$r) new=$(cat /data/new$r 2>/dev/null) made=$(has /data/made$r)"
done' || return 1
	rm -f "$T/go"
	mkfifo "$T/go" || return 1
	timeout -k 5 300 "$KILN" --root "$KROOT" run --bundle "$T/b" vol5 <"$T/go" >"$T/kout" 2>"$T/kerr" &
	run=$!
	exec 7>"$T/go"
	ok=1
	for r in 1 2 3; do
		for _ in $(seq 900); do [ -e "$T/vol/g$r" ] && break; sleep 0.05; done
		[ -e "$T/vol/g$r" ] || { ok=; kiln_fail "round $r: the container's g$r never came: $(ls "$T/vol")"; break; }
		[ "$(cat "$T/vol/g$r")" = "guest-$r" ] ||
			{ ok=; kiln_fail "round $r: the host reads '$(cat "$T/vol/g$r")' of the container's file at once"; break; }
		echo "v2, longer than v1" >"$T/vol/f$r"
		mv "$T/vol/old$r" "$T/vol/new$r"
		touch "$T/vol/made$r"
		echo go >&7
	done
	exec 7>&-
	wait "$run"
	rc=$?
	[ -n "$ok" ] || { kiln delete --force vol5; return 1; }
	[ "$rc" = 0 ] || { kiln_fail "run exited $rc"; kiln delete --force vol5; return 1; }
	want=
	for r in 1 2 3; do
		want="${want}r$r f=v2, longer than v1 old=no new=moved made=yes
"
	done
	[ "$(cat "$T/kout")" = "${want%
}" ] || { kiln_fail "the container's view right after the host's changes (want f=v2..., old=no new=moved made=yes each round)"; return 1; }
	[ -z "$(own_virtiofsds)" ] || { kiln_fail "virtiofsd outlives its VM: $(own_virtiofsds)"; return 1; }
	kiln_nothing_left
}

# kill -9 of the virtiofsd under a running container: the container's
# next access to the volume must end in an error or the container must
# end, within a minute, never hang; `kiln delete --force` then leaves
# nothing. The container reads the volume in a loop and prints what it
# sees on its stdout.
test_kiln_vol_virtiofsd_killed() {
	[ -x /usr/lib/qemu/virtiofsd ] || { skip "no /usr/lib/qemu/virtiofsd"; return 0; }
	kiln_reset
	rm -rf "$T/vol" "$T/rovol"
	mkdir -p "$T/vol" "$T/rovol"
	echo alive >"$T/vol/f"
	# shellcheck disable=SC2016 # expanded by the container's shell
	kiln_vol_bundle 'cat /data/f
while out=$(cat /data/f 2>&1); do sleep 0.1; done
echo "error: $out"; exit 7' || return 1
	timeout -k 5 300 "$KILN" --root "$KROOT" run --bundle "$T/b" vol6 </dev/null >"$T/kout" 2>"$T/kerr" &
	run=$!
	for _ in $(seq 900); do grep -qx alive "$T/kout" 2>/dev/null && break; sleep 0.1; done
	grep -qx alive "$T/kout" || { kiln_fail "the container never read the volume"; kill "$run"; kiln delete --force vol6; return 1; }
	fsd=$(own_virtiofsds)
	[ -n "$fsd" ] || { kiln_fail "no virtiofsd"; kill "$run"; kiln delete --force vol6; return 1; }
	# shellcheck disable=SC2086 # one pid or more
	kill -9 $fsd
	ended=
	for _ in $(seq 600); do kill -0 "$run" 2>/dev/null || { ended=1; break; }; sleep 0.1; done
	if [ -z "$ended" ]; then
		kiln_fail "the container still runs 60 s after its virtiofsd was killed: it hangs (out: $(tr '\n' ' ' <"$T/kout"))"
		kill "$run" 2>/dev/null
	fi
	wait "$run"
	rc=$?
	echo "      after kill -9 of virtiofsd: run exited $rc; the container printed: $(tr '\n' ' ' <"$T/kout")"
	[ -n "$ended" ] || { kiln delete --force vol6; return 1; }
	[ "$rc" != 0 ] || { kiln_fail "run exited 0 after the container lost its volume"; return 1; }
	kiln delete --force vol6
	[ "$krc" = 0 ] || { kiln_fail "delete --force after virtiofsd was killed"; return 1; }
	kiln_nothing_left || return 1
	grep -q " $T/vol " /proc/mounts && { kiln_fail "a mount of the host directory is left"; return 1; }
	return 0
}
