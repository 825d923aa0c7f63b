# kiln-agent as the guest's PID 1 (rdinit=/sbin/kiln-agent), driven from the
# host through build/kiln-agentctl alone: stdio, terminals, signals, exec,
# two containers in one guest, the process spec, stats, bad input and
# shutdown. One boot runs every step (a boot costs seconds in the test
# bed); a step that fails is named and the others still run.
#
# Drives: /dev/vda an ext4 rootfs (read-write), /dev/vdb the same tree as
# erofs (read-only, with an overlay) or, without mkfs.erofs, ext4 again;
# image layers over vdb: /dev/vdc (/a, /b) and /dev/vdd (/b again, /c),
# erofs (or ext4), and /dev/vde a blank ext4 for a container's writes.

AGENTCTL=$B/kiln-agentctl
AG_TIMEOUT=${AG_TIMEOUT:-60}
AG_BULK_BYTES=${KILN_AGENT_BULK_BYTES:-104857600}
# a subset, to debug one part (the test bed passes KILN_* through)
AG_STEPS=${KILN_AGENT_STEPS:-ready stdio_exact stdin_bulk tty tty_resize \
sigterm_init sigterm_trap sigterm_exec_sigkill exec_same_fs two_containers \
spec_ids spec_caps_root spec_caps_user spec_username stats_move mounts \
symlink_root bad_input passwd_fifo layers layers_nothing_left files \
masked_ro seccomp oom_event shutdown layers_on_host}

# Every call is bounded: a WaitProcess that never answers must not hang
# the suite.
ag() {
	timeout -k 5 "${AG_LIMIT:-120}" "$AGENTCTL" --uds "$AG_UDS" \
		--timeout "$AG_TIMEOUT" "$@"
}

# kiln-agentctl with stdin from $AG_IN (default /dev/null): stdout in
# $T/ag.out (terminal \r removed), stderr in $T/ag.err, status in $arc.
agrun() {
	arc=0
	ag "$@" <"${AG_IN:-/dev/null}" >"$T/ag.out" 2>"$T/ag.err" || arc=$?
	crlf "$T/ag.out"
}

ag_show() {
	sed 's/^/      out| /' "$T/ag.out" | tail -n 15
	sed 's/^/      err| /' "$T/ag.err" | tail -n 5
}

# FAIL with what the last agrun printed.
ag_fail() {
	fail "$*"
	ag_show
	return 1
}

ag_expect_rc() { # WANT
	[ "$arc" -eq "$1" ] || ag_fail "kiln-agentctl exited $arc, want $1"
}

# stdout must be exactly the given lines
ag_out_is() {
	printf '%s\n' "$@" | cmp -s - "$T/ag.out" ||
		ag_fail "stdout is not: $*"
}

ag_out_has() {
	for want in "$@"; do
		grep -qxF -- "$want" "$T/ag.out" ||
			{ ag_fail "stdout lacks line '$want'"; return 1; }
	done
}

# A failure the user can read: non-zero, not a crash or a timeout, one
# line on stderr that names $1.
ag_clear_error() { # TEXT
	[ "$arc" -ne 0 ] && [ "$arc" -lt 124 ] ||
		{ ag_fail "exit status $arc, want a plain failure"; return 1; }
	[ "$(wc -l <"$T/ag.err")" -eq 1 ] ||
		{ ag_fail "want one line on stderr"; return 1; }
	grep -qF -- "$1" "$T/ag.err" ||
		{ ag_fail "stderr does not name '$1'"; return 1; }
}

# a /proc/self/status field, tabs as spaces, no trailing space
ag_status_field() { # NAME
	sed -n "s/^$1:[[:space:]]*//p" "$T/ag.out" | tr '\t' ' ' | sed 's/ *$//'
}

# Poll CMD... (an agentctl command) until it exits 0, for up to $1 s.
ag_until() { # SECONDS ARGS...
	n=$1
	shift
	for _ in $(seq $((n * 5))); do
		agrun "$@"
		[ "$arc" -eq 0 ] && return 0
		sleep 0.2
	done
	return 1
}

# ---- steps ---------------------------------------------------------------

ag_ready() {
	agrun wait-ready && ag_expect_rc 0 || return 1
	echo "    agent ready after $(sed -n 's/^waited_ms=//p' "$T/ag.out") ms of waiting"
	agrun check && ag_expect_rc 0 || return 1
	grep -q '^version=.' "$T/ag.out" || ag_fail "no version= line"
}

ag_stdio_exact() {
	agrun run --id io --rootfs "$AG_R1" -- sh -c 'echo out; echo err >&2; exit 7'
	ag_expect_rc 7 && ag_out_is out || return 1
	printf 'err\n' | cmp -s - "$T/ag.err" || ag_fail "stderr is not 'err'"
}

ag_stdin_bulk() {
	head -c "$AG_BULK_BYTES" /dev/urandom >"$T/bulk"
	want=$(sha256sum <"$T/bulk")
	start=$(date +%s.%N)
	AG_LIMIT=600 ag run --id bulk --rootfs "$AG_R1" -- cat <"$T/bulk" 2>"$T/ag.err" |
		sha256sum >"$T/bulk.sum"
	rcs=${PIPESTATUS[0]}
	got=$(cat "$T/bulk.sum")
	secs=$(echo "$(date +%s.%N) - $start" | bc)
	rm -f "$T/bulk"
	echo "    $AG_BULK_BYTES bytes through cat in ${secs} s"
	[ "$rcs" -eq 0 ] || { arc=$rcs; ag_fail "kiln-agentctl exited $rcs"; return 1; }
	[ "$got" = "$want" ] || fail "sha256 differs: sent $want, got $got"
}

ag_tty() {
	agrun run --id tty --rootfs "$AG_R1" --tty --rows 33 --cols 111 --no-stdin -- \
		sh -c 'tty || exit 9; test -t 0 && test -t 1 && echo on-a-tty; stty size'
	ag_expect_rc 0 && ag_out_has on-a-tty "33 111" || return 1
	grep -q '^/dev/pts/[0-9]' "$T/ag.out" || { ag_fail "tty is not a /dev/pts"; return 1; }
	# stdin reaches the terminal, and its end ends the input
	AG_IN=$T/tty.in
	printf 'hello\n' >"$AG_IN"
	agrun run --id tty2 --rootfs "$AG_R1" --tty --rows 24 --cols 80 -- \
		sh -c 'read x; echo "got:$x"'
	AG_IN=
	ag_expect_rc 0 && ag_out_has got:hello
}

ag_tty_resize() {
	timeout 120 "$AGENTCTL" --uds "$AG_UDS" run --id rs --rootfs "$AG_R1" --tty \
		--rows 10 --cols 20 --no-stdin -- \
		sh -c 'stty size; while [ "$(stty size)" = "10 20" ]; do sleep 0.2; done; stty size' \
		</dev/null >"$T/rs.out" 2>"$T/rs.err" &
	rpid=$!
	if ! wait_line "10 20" 60 "$T/rs.out"; then
		kill "$rpid" 2>/dev/null
		wait "$rpid"
		cp "$T/rs.out" "$T/ag.out"
		cp "$T/rs.err" "$T/ag.err"
		ag_fail "no first size"
		return 1
	fi
	agrun resize --id rs --rows 40 --cols 100
	ag_expect_rc 0 || { kill "$rpid"; wait "$rpid"; return 1; }
	arc=0
	wait "$rpid" || arc=$?
	cp "$T/rs.out" "$T/ag.out"
	cp "$T/rs.err" "$T/ag.err"
	crlf "$T/ag.out"
	ag_expect_rc 0 && ag_out_has "10 20" "40 100"
}

# wait for a process that was just signalled: 30 s, not the process's own
# lifetime (sleep 1000), so that an ignored signal fails fast
ag_wait_signalled() { # ID [--exec-id E]
	AG_LIMIT=30 agrun wait --id "$@"
	[ "$arc" -ne 124 ] || ag_fail "still running 30 s after the signal"
}

# The container's init is PID 1 of its pid namespace: as under runc, a
# signal it has no handler for is not delivered (Linux drops it, so
# `sleep` ignores SIGTERM; a trap is the init's way to act on it, see
# sigterm_trap); SIGKILL still ends it, with 137.
ag_sigterm_init() {
	agrun run --id sig1 --rootfs "$AG_R1" --detach -- sleep 1000
	ag_expect_rc 0 || return 1
	agrun kill --id sig1 TERM && ag_expect_rc 0 || return 1
	AG_LIMIT=3 agrun wait --id sig1
	[ "$arc" -eq 124 ] || { ag_fail "init without a TERM handler ended: $arc"; return 1; }
	agrun kill --id sig1 KILL && ag_expect_rc 0 || return 1
	ag_wait_signalled sig1 || return 1
	ag_expect_rc 137 && ag_out_has status=137 signaled=1 signal=9 || return 1
	agrun remove --id sig1 && ag_expect_rc 0
}

ag_sigterm_trap() {
	agrun run --id sig2 --rootfs "$AG_R1" --detach -- \
		sh -c 'trap "exit 3" TERM; touch /dev/shm/trap-set; while :; do sleep 0.1; done'
	ag_expect_rc 0 || return 1
	ag_until 30 exec --id sig2 -- test -e /dev/shm/trap-set ||
		{ ag_fail "the trap was never set"; return 1; }
	agrun kill --id sig2 SIGTERM && ag_expect_rc 0 || return 1
	ag_wait_signalled sig2 || return 1
	ag_expect_rc 3 && ag_out_has status=3 signaled=0 || return 1
	agrun remove --id sig2 && ag_expect_rc 0
}

# an exec (not PID 1) by SIGTERM, then the init by SIGKILL
ag_sigterm_exec_sigkill() {
	agrun run --id sig3 --rootfs "$AG_R1" --detach -- sleep 1000
	ag_expect_rc 0 || return 1
	agrun exec --id sig3 --exec-id e1 --detach -- sleep 1000
	ag_expect_rc 0 || return 1
	agrun kill --id sig3 --exec-id e1 15 && ag_expect_rc 0 || return 1
	ag_wait_signalled sig3 --exec-id e1 || return 1
	ag_expect_rc 143 || return 1
	agrun kill --id sig3 KILL && ag_expect_rc 0 || return 1
	ag_wait_signalled sig3 || return 1
	ag_expect_rc 137 && ag_out_has signaled=1 signal=9 || return 1
	agrun remove --id sig3 && ag_expect_rc 0
}

# Container fs (kept for the steps after it) on vda; an exec sees what its
# init wrote, in the rootfs and in its own /dev/shm.
ag_exec_same_fs() {
	agrun run --id fs --rootfs "$AG_R1" --detach -- \
		sh -c 'echo by-init >/tmp/fs-marker; echo by-init >/dev/shm/fs-marker; exec sleep 300'
	ag_expect_rc 0 || return 1
	ag_until 30 exec --id fs -- cat /dev/shm/fs-marker ||
		{ ag_fail "exec never read /dev/shm/fs-marker"; return 1; }
	ag_out_is by-init || return 1
	agrun exec --id fs -- cat /tmp/fs-marker
	ag_expect_rc 0 && ag_out_is by-init
}

ag_two_containers() {
	agrun run --id two --rootfs "$AG_R2" --fstype "$AG_R2FS" --ro --detach -- sleep 301
	ag_expect_rc 0 || return 1
	ag_until 30 exec --id two -- sh -c 'ps | grep -q "[s]leep 301"' ||
		{ ag_fail "two's sleep never showed in its ps"; return 1; }
	agrun exec --id fs -- ps
	ag_expect_rc 0 || return 1
	grep -q 'sleep 300' "$T/ag.out" || { ag_fail "fs does not see its own sleep"; return 1; }
	! grep -q 'sleep 301' "$T/ag.out" || { ag_fail "fs sees two's sleep"; return 1; }
	agrun exec --id two -- ps
	! grep -q 'sleep 300' "$T/ag.out" || { ag_fail "two sees fs's sleep"; return 1; }
	agrun exec --id two -- sh -c 'ls /proc | grep -c "^[0-9]"'
	ag_expect_rc 0 || return 1
	[ "$(cat "$T/ag.out")" -le 6 ] || { ag_fail "two sees too many pids"; return 1; }
	agrun exec --id two -- test -e /dev/shm/fs-marker
	[ "$arc" -eq 1 ] || { ag_fail "two sees fs's /dev/shm"; return 1; }
	# the read-only image with its writable overlay
	agrun exec --id two -- sh -c 'echo w >/etc/written && cat /etc/written /etc/motd'
	ag_expect_rc 0 && ag_out_is w "kiln agent test rootfs" || return 1
	agrun ps --id fs
	sort "$T/ag.out" >"$T/ps.fs"
	agrun ps --id two
	sort "$T/ag.out" >"$T/ps.two"
	[ -s "$T/ps.fs" ] && [ -s "$T/ps.two" ] || { ag_fail "ps of a container is empty"; return 1; }
	[ -z "$(comm -12 "$T/ps.fs" "$T/ps.two")" ] || ag_fail "ps lists a pid in both containers"
}

# every field of /proc/self/status given as NAME=VALUE
ag_status_is() {
	for kv in "$@"; do
		got=$(ag_status_field "${kv%%=*}")
		[ "$got" = "${kv#*=}" ] ||
			{ ag_fail "${kv%%=*}: '$got', want '${kv#*=}'"; return 1; }
	done
}

ag_spec_ids() {
	agrun run --id who --rootfs "$AG_R1" --user 1000:1000 --groups 10,1001 \
		--cwd /tmp --env FOO=bar-baz --rlimit NOFILE=123:456 \
		--no-new-privs --hostname box1 -- \
		sh -c 'cat /proc/self/status; echo "nofile=$(ulimit -n) hard=$(ulimit -Hn)"; echo "cwd=$(pwd)"; echo "host=$(hostname)"; env'
	ag_expect_rc 0 || return 1
	ag_status_is "Uid=1000 1000 1000 1000" "Gid=1000 1000 1000 1000" \
		"Groups=10 1001" "NoNewPrivs=1" || return 1
	ag_out_has "nofile=123 hard=456" cwd=/tmp host=box1 FOO=bar-baz
}

# root keeps the capabilities it is given, and only those
ag_spec_caps_root() {
	agrun run --id capr --rootfs "$AG_R1" --cap CAP_CHOWN --cap CAP_KILL -- \
		cat /proc/self/status
	ag_expect_rc 0 || return 1
	ag_status_is "Uid=0 0 0 0" CapEff=0000000000000021 \
		CapPrm=0000000000000021 CapBnd=0000000000000021 NoNewPrivs=0
}

# a user but root: the bounding set as given; without ambient
# capabilities execve leaves it none effective
ag_spec_caps_user() {
	agrun run --id capu --rootfs "$AG_R1" --user 1000:1000 \
		--cap CAP_CHOWN --cap CAP_KILL -- cat /proc/self/status
	ag_expect_rc 0 || return 1
	ag_status_is "Uid=1000 1000 1000 1000" CapBnd=0000000000000021 \
		CapEff=0000000000000000
}

# a user name: uid, gid and groups from the image's passwd and group
ag_spec_username() {
	agrun run --id byname --rootfs "$AG_R1" --user kiln -- cat /proc/self/status
	ag_expect_rc 0 || return 1
	ag_status_is "Uid=1000 1000 1000 1000" "Gid=1000 1000 1000 1000" || return 1
	groups=" $(ag_status_field Groups) "
	for g in 10 1001; do
		case $groups in
		*" $g "*) ;;
		*) ag_fail "user kiln's groups '$groups' lack $g"; return 1 ;;
		esac
	done
}

ag_stats_move() {
	agrun stats --id fs && ag_expect_rc 0 || return 1
	mem0=$(sed -n 's/^memory_usage_bytes=//p' "$T/ag.out")
	cpu0=$(sed -n 's/^cpu_usage_usec=//p' "$T/ag.out")
	agrun exec --id fs -- dd if=/dev/zero of=/dev/shm/fill bs=1M count=48
	ag_expect_rc 0 || return 1
	agrun exec --id fs -- sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i + 1)); done'
	ag_expect_rc 0 || return 1
	agrun stats --id fs && ag_expect_rc 0 || return 1
	mem1=$(sed -n 's/^memory_usage_bytes=//p' "$T/ag.out")
	cpu1=$(sed -n 's/^cpu_usage_usec=//p' "$T/ag.out")
	echo "    memory_usage_bytes $mem0 -> $mem1, cpu_usage_usec $cpu0 -> $cpu1"
	[ "$mem1" -ge $((mem0 + 32 * 1048576)) ] ||
		{ ag_fail "memory grew by $((mem1 - mem0)), want >= 32 MiB"; return 1; }
	[ "$cpu1" -ge $((cpu0 + 10000)) ] ||
		ag_fail "cpu grew by $((cpu1 - cpu0)) us, want >= 10 ms"
}

# A container that eats the guest's memory is OOM-killed (137), and a
# GetOOMEvent call waiting meanwhile names it.
ag_oom_event() {
	AG_LIMIT=90 ag oom-wait >"$T/oom.out" 2>"$T/oom.err" &
	oom_pid=$!
	sleep 1
	AG_LIMIT=90 agrun run --id hog --rootfs "$AG_R1" -- tail /dev/zero
	ag_expect_rc 137 || { kill "$oom_pid" 2>/dev/null; return 1; }
	orc=0
	wait "$oom_pid" || orc=$?
	[ "$orc" = 0 ] && grep -qx container_id=hog "$T/oom.out" ||
		{ ag_fail "oom-wait: status $orc: $(cat "$T/oom.out" "$T/oom.err")"; return 1; }
	agrun check && ag_expect_rc 0
}

# the /proc/mounts line of $2 in what $1 printed: "type=T" and one "opt=O"
# per option, for ag_out_has
AG_MNT_AWK='$2 == D { n++; print "type=" $3; k = split($4, o, ","); for (i = 1; i <= k; i++) print "opt=" o[i] } END { print "lines=" n + 0 }'

# Mounts the client asks for (CreateContainerRequest.mounts): a tmpfs
# with its options, a read-only bind of the guest's own /sbin (the
# initramfs, where the agent runs), then requests the agent refuses.
ag_mounts() {
	# tmpfs hides its default mode 1777 in /proc/mounts: /private, with
	# an empty SOURCE, shows that a mode and a flag arrive too
	agrun run --id mnt1 --rootfs "$AG_R1" \
		--mount tmpfs:tmpfs:/scratch:size=1m,mode=1777 \
		--mount tmpfs::/private:mode=700,noexec -- sh -c "
		awk -v D=/scratch '$AG_MNT_AWK' /proc/mounts
		echo mode=\$(stat -c %a /scratch)
		awk -v D=/private '$AG_MNT_AWK' /proc/mounts | sed s/^/private-/
		echo private-mode=\$(stat -c %a /private)
		dd if=/dev/zero of=/scratch/big bs=1M count=2 2>&1; echo dd=\$?"
	ag_expect_rc 0 && ag_out_has lines=1 type=tmpfs opt=size=1024k \
		mode=1777 private-lines=1 private-type=tmpfs \
		private-opt=mode=700 private-opt=noexec private-mode=700 || return 1
	grep -q 'No space left on device' "$T/ag.out" ||
		{ ag_fail "writing 2 MiB to a 1 MiB tmpfs did not fail with ENOSPC"; return 1; }
	! grep -qx dd=0 "$T/ag.out" || { ag_fail "dd of 2 MiB succeeded"; return 1; }
	agrun run --id mnt2 --rootfs "$AG_R1" \
		--mount bind:/sbin:/host-sbin:rbind,ro -- sh -c "
		awk -v D=/host-sbin '$AG_MNT_AWK' /proc/mounts
		test -x /host-sbin/kiln-agent && echo agent-visible
		touch /host-sbin/x 2>&1; echo touch=\$?"
	ag_expect_rc 0 && ag_out_has lines=1 opt=ro agent-visible touch=1 || return 1
	grep -q 'Read-only file system' "$T/ag.out" ||
		{ ag_fail "touch did not fail with EROFS"; return 1; }
	# what the agent refuses, each as one line that names it
	agrun run --id mbad1 --rootfs "$AG_R1" --mount bogusfs:none:/x -- true
	ag_clear_error bogusfs || return 1
	agrun run --id mbad2 --rootfs "$AG_R1" --mount tmpfs:tmpfs:scratch -- true
	ag_clear_error "\`scratch\` is not absolute" || return 1
	agrun run --id mbad3 --rootfs "$AG_R1" --mount bind:/no/such:/x -- true
	ag_clear_error /no/such || return 1
	# and what agentctl refuses itself, before it connects
	agrun run --id mbad4 --rootfs "$AG_R1" --mount tmpfs:/scratch -- true
	ag_expect_rc 2 && ag_clear_error "want TYPE:SOURCE:DEST" || return 1
	agrun check && ag_expect_rc 0 || return 1
	# nothing was left under the ids that failed
	agrun run --id mbad1 --rootfs "$AG_R1" -- true
	ag_expect_rc 0
}

# Images whose links point out of the root, in a guest of their own (the
# links break every other step): on vda /dev -> /etc and /sys -> a run of
# .. to /mnt, on vdb /proc -> /proc/self/root. The init child resolves
# each mount destination inside the container's root (openat2
# RESOLVE_IN_ROOT), so the /dev tmpfs with its nodes is the container's
# /etc and sysfs its /mnt. Looked up as plain paths they would land on
# the guest's /etc and /mnt, which pivot_root then hides: no /dev/null.
ag_symlink_root() {
	for img in links:"dev=/etc sys=../../../../../../../../mnt" \
		loop:"proc=/proc/self/root"; do
		MKROOTFS_LINKS=${img#*:} "$TOP/test/integration/mkrootfs.sh" \
			"$T/${img%%:*}.ext4" ||
			{ fail "mkrootfs.sh with ${img#*:} failed"; return 1; }
	done
	main_uds=$AG_UDS
	AG_UDS=$T/links.sock
	rm -f "$AG_UDS"
	timeout -k 5 300 "$VMM" --kernel "$GUEST/vmlinux" \
		--initrd "$GUEST/initramfs" --vcpus 1 --mem 256 \
		--drive "id=rootfs,path=$T/links.ext4" \
		--drive "id=rootfs2,path=$T/loop.ext4" \
		--vsock "cid=3,uds=$AG_UDS" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet rdinit=/sbin/kiln-agent" \
		>"$T/links.out" 2>"$T/links.err" &
	lpid=$!
	rc=0
	ag_symlink_checks || rc=1
	ag shutdown >/dev/null 2>&1
	for _ in $(seq 300); do
		kill -0 "$lpid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$lpid" 2>/dev/null
	wait "$lpid" 2>/dev/null
	AG_UDS=$main_uds
	[ "$rc" -eq 0 ] || sed 's/^/      console| /' "$T/links.out" | tail -n 10
	return "$rc"
}

ag_symlink_checks() {
	agrun wait-ready && ag_expect_rc 0 || return 1
	agrun run --id l1 --rootfs /dev/vda -- sh -c '
		stat -f -c "etc=%T" /etc; stat -f -c "mnt=%T" /mnt
		echo marker >/dev/x && cat /etc/x
		test -c /etc/null && echo >/dev/null && echo null=char
		test -d /mnt/kernel && echo mnt-has-kernel
		test -e /etc/passwd && echo image-etc-visible; true'
	ag_expect_rc 0 && ag_out_has etc=tmpfs mnt=sysfs marker null=char \
		mnt-has-kernel || return 1
	! grep -qx image-etc-visible "$T/ag.out" ||
		{ ag_fail "the image's /etc is not under the /dev tmpfs"; return 1; }
	# the marker lived in l1's tmpfs; the image and the guest kept nothing
	agrun run --id l2 --rootfs /dev/vda -- sh -c \
		'test ! -e /etc/x && stat -f -c %T /etc'
	ag_expect_rc 0 && ag_out_is tmpfs || return 1
	# a link back to itself through a magic link: one clear error
	agrun run --id l3 --rootfs /dev/vdb -- true
	ag_clear_error "mount destination /proc:" || return 1
	agrun check && ag_expect_rc 0
}

ag_bad_input() {
	agrun run --id bad1 --rootfs "$AG_R1" --cwd /no/such/dir -- true
	ag_clear_error /no/such/dir || return 1
	agrun run --id bad2 --rootfs "$AG_R1" --user nosuchuser -- true
	ag_clear_error nosuchuser || return 1
	agrun run --id bad3 --rootfs "$AG_R1" --
	ag_clear_error args || return 1
	agrun run --id bad4 --rootfs "$AG_R1" --rlimit BOGUS=1:2 -- true
	ag_clear_error RLIMIT_BOGUS || return 1
	agrun run --id bad5 --rootfs "$AG_R1" --rlimit NOFILE=10:5 -- true
	ag_clear_error RLIMIT_NOFILE || return 1
	agrun run --id bad6 --rootfs /dev/vdz -- true
	ag_clear_error /dev/vdz || return 1
	agrun run --id bad7 --rootfs "$AG_R1" --cap CAP_BOGUS -- true
	ag_clear_error CAP_BOGUS || return 1
	agrun run --id bad8 --rootfs "$AG_R1" -- /no/such/binary
	ag_clear_error /no/such/binary || return 1
	agrun exec --id nosuch -- true
	ag_clear_error nosuch || return 1
	agrun run --id fs --rootfs "$AG_R1" -- true
	ag_clear_error fs || return 1
	agrun check && ag_expect_rc 0 || return 1
	# nothing was left under the ids that failed
	agrun run --id bad1 --rootfs "$AG_R1" -- true
	ag_expect_rc 0
}

# A container that puts a FIFO where its /etc/passwd was. An exec by user
# name opened it blocking: the call never answered, and it held an agent
# thread and the container's lock for good (128 of them denied the pod).
# Now each fails at once with one line that says why, and the agent and
# the container still serve. Its own overlay on vdb: the image and the
# other containers keep their passwd.
ag_passwd_fifo() {
	agrun run --id fifo --rootfs "$AG_R2" --fstype "$AG_R2FS" --ro --detach -- \
		sh -c 'rm /etc/passwd && mkfifo /etc/passwd && exec sleep 302'
	ag_expect_rc 0 || return 1
	ag_until 30 exec --id fifo -- test -p /etc/passwd ||
		{ ag_fail "/etc/passwd never became a FIFO"; return 1; }
	for _ in 1 2 3; do
		AG_TIMEOUT=20 AG_LIMIT=30 agrun exec --id fifo --user kiln -- true
		ag_clear_error "etc/passwd is a FIFO, not a regular file" || return 1
	done
	agrun exec --id fifo -- echo still-served
	ag_expect_rc 0 && ag_out_is still-served || return 1
	# an exec's terminal: the container's own ptmx, found inside its root
	agrun exec --id fifo --tty --no-stdin -- tty
	ag_expect_rc 0 || return 1
	grep -q '^/dev/pts/[0-9]' "$T/ag.out" || { ag_fail "the exec's tty is not a /dev/pts"; return 1; }
	agrun kill --id fifo KILL && ag_expect_rc 0 || return 1
	ag_wait_signalled fifo || return 1
	agrun remove --id fifo && ag_expect_rc 0 || return 1
	agrun check && ag_expect_rc 0
}

# ---- image layers, carried-in files, masked and read-only paths ----------

# the layers top first: vdd (/b, /c) over vdc (/a, /b) over the test rootfs
ag_layer_args() {
	echo --layer /dev/vdd:"$AG_LFS" --layer /dev/vdc:"$AG_LFS" --layer /dev/vdb:"$AG_R2FS"
}

# Stacked layers with the writable one on vde: the merged tree, then a
# write that a second container on the same upper device sees (the first
# was removed), and which a container without it does not.
ag_layers() {
	# shellcheck disable=SC2046 # one word per option
	agrun run --id lay1 $(ag_layer_args) --upper /dev/vde -- sh -c '
		cat /a /b /c /etc/motd
		echo persisted >/written && mkdir -p /d && echo deep >/d/e
		rm /a
		test -d /sys/fs/erofs/vdc && echo vdc-mounted
		test -d /sys/fs/ext4/vde && echo vde-mounted; true'
	# shellcheck disable=SC2046 # no line when the layers are ext4
	ag_expect_rc 0 && ag_out_is lower-a top-b top-c "kiln agent test rootfs" \
		$([ "$AG_LFS" = erofs ] && echo vdc-mounted) vde-mounted || return 1
	# shellcheck disable=SC2046
	agrun run --id lay2 $(ag_layer_args) --upper /dev/vde -- sh -c '
		cat /written /d/e /b; test -e /a || echo a-deleted'
	ag_expect_rc 0 && ag_out_is persisted deep top-b a-deleted || return 1
	# the tmpfs upper: the device's writes are not there, and the
	# layers are as built
	# shellcheck disable=SC2046
	agrun run --id lay3 $(ag_layer_args) -- sh -c '
		test ! -e /written && cat /a && echo t >/tmpw && cat /tmpw'
	ag_expect_rc 0 && ag_out_is lower-a t || return 1
	# readonly_rootfs over layers
	# shellcheck disable=SC2046
	agrun run --id lay4 $(ag_layer_args) --upper /dev/vde --read-only -- sh -c '
		cat /written; touch /nope 2>&1; echo touch=$?'
	ag_expect_rc 0 && ag_out_has persisted touch=1 || return 1
	grep -q 'Read-only file system' "$T/ag.out" ||
		{ ag_fail "touch on a read-only rootfs did not fail with EROFS"; return 1; }
	# one writable layer, one container at a time
	# shellcheck disable=SC2046
	agrun run --id lay5 $(ag_layer_args) --upper /dev/vde --detach -- sleep 300
	ag_expect_rc 0 || return 1
	# shellcheck disable=SC2046
	agrun run --id lay6 $(ag_layer_args) --upper /dev/vde -- true
	ag_clear_error "rootfs.upper_device \`/dev/vde\` is in use by container \`lay5\`" ||
		return 1
	agrun kill --id lay5 KILL && ag_expect_rc 0 || return 1
	ag_wait_signalled lay5 || return 1
	agrun remove --id lay5 && ag_expect_rc 0 || return 1
	# what the agent refuses, each named
	agrun run --id lbad1 --rootfs /dev/vda --layer /dev/vdc -- true
	ag_clear_error "rootfs.device must be empty" || return 1
	agrun run --id lbad2 --upper /dev/vde -- true
	ag_clear_error "rootfs.upper_device needs rootfs.layers" || return 1
	agrun run --id lbad3 --layer /dev/vdz --upper /dev/vde -- true
	ag_clear_error /dev/vdz || return 1
	agrun run --id lbad4 --layer /etc/passwd -- true
	ag_clear_error "rootfs.layers[0].device \`/etc/passwd\` is not under /dev"
}

# A create that fails half-way (the layers mounted, then the upper device
# is not ext4) and the removals above leave nothing mounted: the layer
# and upper devices' file systems are gone from /sys/fs (the last unmount
# of a lazy detach ends a moment later: polled), and no container
# directory is left in the agent's /run/kiln/c.
ag_layers_nothing_left() {
	agrun run --id lfail --layer /dev/vdc:"$AG_LFS" --layer /dev/vdb:"$AG_R2FS" \
		--upper /dev/vdd -- true
	ag_clear_error "rootfs.upper_device /dev/vdd" || return 1
	ag_until 10 run --id lgone --rootfs "$AG_R1" --mount bind:/run/kiln/c:/kc:rbind,ro -- \
		sh -c 'for f in /sys/fs/erofs/vdc /sys/fs/erofs/vdd /sys/fs/ext4/vdc \
			/sys/fs/ext4/vdd /sys/fs/ext4/vde; do
			test ! -e $f || { echo "still mounted: $f"; exit 1; }; done
			ls /kc' ||
		{ ag_fail "a layer or the upper device is still mounted"; return 1; }
	for id in lay1 lay2 lay3 lay4 lay5 lay6 lfail lbad1 lbad3; do
		! grep -qx "$id" "$T/ag.out" ||
			{ ag_fail "/run/kiln/c/$id left in the guest"; return 1; }
	done
	grep -qx lgone "$T/ag.out" || ag_fail "the check does not see its own directory"
}

# Files carried in with the request: content and mode as sent, ro
# honoured, a missing destination made, the size limits.
ag_files() {
	printf '10.9.8.7 kiln-test-host\n::1 localhost\n' >"$T/hosts"
	printf 'carried-in\n' >"$T/hostname"
	chmod 0640 "$T/hostname"
	: >"$T/empty"
	agrun run --id files1 --rootfs "$AG_R1" --file "$T/hosts:/etc/hosts" \
		--file "$T/hostname:/etc/hostname:ro" --file "$T/empty:/run/.containerenv" -- sh -c '
		cat /etc/hosts /etc/hostname
		echo mode=$(stat -c %a /etc/hostname) env-size=$(stat -c %s /run/.containerenv)
		echo x >>/etc/hostname; echo append-ro=$?
		echo 10.0.0.1 extra >>/etc/hosts && tail -n 1 /etc/hosts'
	ag_expect_rc 0 && ag_out_is "10.9.8.7 kiln-test-host" "::1 localhost" carried-in \
		"mode=640 env-size=0" append-ro=1 "10.0.0.1 extra" || return 1
	grep -q 'Read-only file system' "$T/ag.err" ||
		{ ag_fail "the ro file did not refuse with EROFS"; return 1; }
	# three files of 1 MiB, the most one request carries, arrive whole
	head -c 1048576 /dev/urandom >"$T/big1"
	head -c 1048576 /dev/urandom >"$T/big2"
	head -c 1048576 /dev/urandom >"$T/big3"
	want=$(cat "$T/big1" "$T/big2" "$T/big3" | md5sum | cut -d' ' -f1)
	agrun run --id files3 --rootfs "$AG_R1" --file "$T/big1:/b1" \
		--file "$T/big2:/b2" --file "$T/big3:/b3" -- sh -c 'cat /b1 /b2 /b3 | md5sum'
	ag_expect_rc 0 || return 1
	[ "$(cut -d' ' -f1 "$T/ag.out")" = "$want" ] ||
		{ ag_fail "3 MiB of files arrived as $(cat "$T/ag.out"), want $want"; return 1; }
	# one byte more than a file or a request may carry
	printf x >>"$T/big3"
	agrun run --id fbad1 --rootfs "$AG_R1" --file "$T/big3:/etc/too-big" -- true
	ag_clear_error "mount /etc/too-big: data of 1048577 bytes" || return 1
	agrun run --id fbad2 --rootfs "$AG_R1" --file "$T/big1:/b1" --file "$T/big2:/b2" \
		--file "$T/hostname:/b0" --file "$T/big1:/b3" -- true
	ag_clear_error "mount /b3: the request's files come to more than" || return 1
	rm -f "$T/big1" "$T/big2" "$T/big3"
	agrun check && ag_expect_rc 0
}

# masked_paths and readonly_paths, each against a container without
# them: what the container could do, it no longer can.
ag_masked_ro() {
	agrun run --id mr0 --rootfs "$AG_R1" -- sh -c '
		echo v=$(wc -c </proc/version)
		echo fw=$(ls /sys/firmware | wc -l)
		echo box9 >/proc/sys/kernel/hostname && hostname'
	ag_expect_rc 0 && ag_out_has box9 || return 1
	grep -qx 'v=0' "$T/ag.out" && { ag_fail "/proc/version is empty unmasked"; return 1; }
	agrun run --id mr1 --rootfs "$AG_R1" --mask /proc/kcore --mask /proc/version \
		--mask /sys/firmware --mask /no/such/path --ro-path /proc/sys \
		--ro-path /no/such/dir -- sh -c "
		echo v=\$(wc -c </proc/version)
		echo fw=\$(ls -A /sys/firmware | wc -l)
		touch /sys/firmware/x 2>/dev/null; echo touch-fw=\$?
		awk -v D=/sys/firmware '$AG_MNT_AWK' /proc/mounts | sed s/^/fw-/
		echo box9 >/proc/sys/kernel/hostname; echo write-sys=\$?
		awk -v D=/proc/sys '$AG_MNT_AWK' /proc/mounts | sed s/^/sys-/
		echo host=\$(hostname)"
	ag_expect_rc 0 && ag_out_has v=0 fw=0 touch-fw=1 fw-type=tmpfs fw-opt=ro \
		write-sys=1 sys-lines=1 sys-opt=ro sys-opt=nosuid sys-opt=nodev \
		sys-opt=noexec || return 1
	grep -q 'Read-only file system' "$T/ag.err" ||
		{ ag_fail "writing /proc/sys did not fail with EROFS"; return 1; }
	grep -qx host=box9 "$T/ag.out" && { ag_fail "the hostname changed through /proc/sys"; return 1; }
	# named when malformed
	agrun run --id mr2 --rootfs "$AG_R1" --mask proc/kcore -- true
	ag_clear_error "masked_paths[0] \`proc/kcore\` is not absolute" || return 1
	agrun run --id mr3 --rootfs "$AG_R1" --ro-path /proc/../etc -- true
	ag_clear_error "readonly_paths[0]"
}

# OCI linux.seccomp as Process.seccomp: default allow, mkdir and mkdirat
# fail with errno 1. Seccomp mode 2 in the process's status is the filter.
# The init (default capabilities, no no_new_privs: the filter goes in
# before the user change), an exec with no_new_privs as a user (the
# filter goes in last), and an exec without one, which is not affected.
AG_SC_SH='mkdir /tmp/sc-$1; echo mkdir=$?; touch /tmp/sc-$1-f; echo touch=$?
	test -d /tmp/sc-$1; echo isdir=$?; grep "^Seccomp:" /proc/self/status'
ag_seccomp() {
	agrun run --id sc --rootfs "$AG_R1" --seccomp mkdir,mkdirat:1 -- \
		sh -c "$AG_SC_SH" sh init
	ag_expect_rc 0 && ag_out_has mkdir=1 touch=0 isdir=1 || return 1
	[ "$(ag_status_field Seccomp)" = 2 ] || { ag_fail "no filter on the init"; return 1; }
	grep -q "Operation not permitted" "$T/ag.err" ||
		{ ag_fail "mkdir did not fail with EPERM"; return 1; }
	agrun run --id sc2 --rootfs "$AG_R1" --detach -- sleep 302
	ag_expect_rc 0 || return 1
	ag_until 30 exec --id sc2 --user 1000:1000 --no-new-privs \
		--seccomp mkdir,mkdirat:1 -- sh -c "$AG_SC_SH" sh exec ||
		{ ag_fail "exec in sc2 failed"; return 1; }
	ag_out_has mkdir=1 touch=0 isdir=1 || return 1
	[ "$(ag_status_field Seccomp)" = 2 ] || { ag_fail "no filter on the exec"; return 1; }
	grep -q "Operation not permitted" "$T/ag.err" ||
		{ ag_fail "mkdir in the exec did not fail with EPERM"; return 1; }
	agrun exec --id sc2 -- sh -c "$AG_SC_SH" sh plain
	ag_expect_rc 0 && ag_out_has mkdir=0 isdir=0 || return 1
	[ "$(ag_status_field Seccomp)" = 0 ] || { ag_fail "a filter without one asked"; return 1; }
	agrun remove --id sc2 && ag_expect_rc 0 || return 1
	# refused by name, nothing started
	agrun run --id sc3 --rootfs "$AG_R1" --seccomp mkdir:4096 -- true
	ag_clear_error "seccomp.syscalls[0].action: errno 4096"
}

ag_shutdown() {
	# what is left is Shutdown's to stop; removal is tested above
	ag remove --id fs >/dev/null 2>&1
	ag remove --id two >/dev/null 2>&1
	agrun shutdown && ag_expect_rc 0 || return 1
	for _ in $(seq 600); do
		kill -0 "$AG_VPID" 2>/dev/null || break
		sleep 0.1
	done
	! kill -0 "$AG_VPID" 2>/dev/null || { fail "kiln-vmm still runs 60 s after Shutdown"; return 1; }
	rc=0
	wait "$AG_VPID" || rc=$?
	AG_VPID=
	expect_rc 0 || return 1
	[ ! -e "$AG_UDS" ] || fail "$AG_UDS left behind"
}

# After Shutdown, on the host: the writes of ag_layers are in the upper
# image's upper/ (e2fsck first: it replays what the journal still holds).
ag_layers_on_host() {
	state=$(dumpe2fs -h "$T/upper.ext4" 2>/dev/null | sed -n 's/^Filesystem state: *//p')
	echo "    upper image after shutdown: state '$state'"
	rc=0
	e2fsck -fy "$T/upper.ext4" >"$T/fsck.out" 2>&1 || rc=$?
	[ "$rc" -le 1 ] || { fail "e2fsck of the upper image: $rc"; sed 's/^/      | /' "$T/fsck.out"; return 1; }
	got=$(debugfs -R 'cat /upper/written' "$T/upper.ext4" 2>/dev/null)
	[ "$got" = persisted ] || { fail "upper/written in the image is '$got'"; return 1; }
	got=$(debugfs -R 'cat /upper/d/e' "$T/upper.ext4" 2>/dev/null)
	[ "$got" = deep ] || fail "upper/d/e in the image is '$got'"
}

ag_cleanup() {
	[ -n "${AG_VPID:-}" ] || return 0
	kill "$AG_VPID" 2>/dev/null
	wait "$AG_VPID" 2>/dev/null
	AG_VPID=
}

# The two image layers (erofs, or ext4 without mkfs.erofs) and a blank,
# sparse ext4 for the writable layer.
ag_mk_layers() {
	rm -rf "$T/lower.d" "$T/top.d"
	mkdir "$T/lower.d" "$T/top.d"
	echo lower-a >"$T/lower.d/a"
	echo lower-b >"$T/lower.d/b"
	echo top-b >"$T/top.d/b"
	echo top-c >"$T/top.d/c"
	AG_LFS=erofs
	command -v mkfs.erofs >/dev/null || AG_LFS=ext4
	for l in lower top; do
		rm -f "$T/$l.img"
		if [ "$AG_LFS" = erofs ]; then
			# erofs-utils 1.5 has no -q (mkrootfs.sh tries both)
			mkfs.erofs "$T/$l.img" "$T/$l.d" >/dev/null ||
				{ fail "mkfs.erofs $l"; return 1; }
		else
			mke2fs -q -F -t ext4 -d "$T/$l.d" "$T/$l.img" 4M >/dev/null ||
				{ fail "mke2fs $l"; return 1; }
		fi
	done
	rm -f "$T/upper.ext4"
	truncate -s 64M "$T/upper.ext4"
	mkfs.ext4 -q -F "$T/upper.ext4" >/dev/null || { fail "mkfs.ext4 upper"; return 1; }
}

test_agent_in_guest() {
	for f in "$AGENTCTL" "$GUEST/initramfs"; do
		[ -e "$f" ] || { fail "$f missing (make all guest)"; return 1; }
	done
	cpio -it <"$GUEST/initramfs" 2>/dev/null | grep -qx 'bin/kiln-agent' ||
		{ fail "no /sbin/kiln-agent in the initramfs (make all guest)"; return 1; }
	AG_R1=/dev/vda
	AG_R2=/dev/vdb
	AG_R2FS=erofs
	r2=$T/rootfs.erofs
	src=0
	"$TOP/test/integration/mkrootfs.sh" "$T/rootfs.ext4" "$r2" || src=$?
	if [ "$src" -eq 3 ]; then
		# the rest still runs, but the test counts as skipped
		skip "no mkfs.erofs: the erofs rootfs is untested (the second rootfs is ext4 too)"
		cp "$T/rootfs.ext4" "$T/rootfs2.ext4"
		r2=$T/rootfs2.ext4
		AG_R2FS=ext4
	elif [ "$src" -ne 0 ]; then
		fail "mkrootfs.sh failed"
		return 1
	fi
	ag_mk_layers || return 1
	AG_UDS=$T/agent.sock
	rm -f "$AG_UDS"
	trap ag_cleanup EXIT
	timeout -k 5 "${VMM_TIMEOUT:-900}" "$VMM" --kernel "$GUEST/vmlinux" \
		--initrd "$GUEST/initramfs" --vcpus 2 --mem 512 \
		--drive "id=rootfs,path=$T/rootfs.ext4" --drive "id=rootfs2,path=$r2,ro" \
		--drive "id=lower,path=$T/lower.img,ro" --drive "id=top,path=$T/top.img,ro" \
		--drive "id=upper,path=$T/upper.ext4" \
		--vsock "cid=3,uds=$AG_UDS" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet rdinit=/sbin/kiln-agent" \
		>"$T/out" 2>"$T/err" &
	AG_VPID=$!
	failed=
	for step in $AG_STEPS; do
		start=$(date +%s.%N)
		if "ag_$step"; then
			printf '    ok   %-20s %5.1fs\n' "$step" "$(echo "$(date +%s.%N) - $start" | bc)"
		else
			echo "    FAIL $step"
			failed="$failed $step"
			# without an agent no later step can pass
			[ "$step" = ready ] && break
		fi
	done
	ag_cleanup
	crlf "$T/out"
	if [ -n "$failed" ]; then
		echo "    failed steps:$failed"
		sed 's/^/    console| /' "$T/out" | tail -n 25
		sed 's/^/    vmm| /' "$T/err" | tail -n 10
		return 1
	fi
}
