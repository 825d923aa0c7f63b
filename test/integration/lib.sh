# Helpers for integration tests: sourced by run.sh and every test file.
# Each test is a shell function named test_*; it returns 0 to pass.

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=$TOP/build
VMM=${KILN_TEST_VMM:-$B/kiln-vmm}
GUEST=$B/guest
T=${T:-$(mktemp -d /tmp/kiln-it.XXXXXX)}
# Every process the suite starts inherits this mark: the suite finds its
# own kiln-vmm by it (own_vmms) and never touches another one (a real-KVM
# host may run other kiln-vmm of its own).
export KILN_IT_RUN=$T

# Fail the current test with a message (the caller returns 1).
fail() {
	echo "    FAIL: $*"
	return 1
}

# Run kiln-vmm with a time limit; stdout in $T/out, stderr in $T/err,
# status in $rc. Every test boots through here, so no VMM outlives a test.
vmm() {
	rc=0
	timeout -k 5 "${VMM_TIMEOUT:-120}" "$VMM" "$@" >"$T/out" 2>"$T/err" || rc=$?
	crlf "$T/out"
}

# A guest tty ends lines with \r\n; compare lines without the \r.
crlf() {
	[ -f "$1" ] && sed -i 's/\r$//' "$1"
	return 0
}

# The host side of a TCP transfer test (stream_server.py) in network
# namespace NS: ADDR:5001 takes uploads ("bytes sha256" lines in $T/ups),
# ADDR:5002 sends $T/down; N streams each way, then it ends (0: any
# number, until killed); SECONDS at most. Its pid in STREAM_SRV, its
# output in $T/srv.log.
stream_server() { # NS ADDR N SECONDS
	rm -f "$T/ready" "$T/ups"
	ip netns exec "$1" timeout "$4" python3 "$TOP/test/integration/stream_server.py" \
		"$T" "$2" "$3" >"$T/srv.log" 2>&1 &
	STREAM_SRV=$!
	for _ in $(seq 100); do
		[ -f "$T/ready" ] && return 0
		sleep 0.1
	done
	fail "transfer server did not start: $(cat "$T/srv.log")"
}

# Wait for a line in a file still being written: $2 * 10 polls 0.1 s
# apart, so $2 seconds on an idle host and more on a loaded one (each poll
# also costs a tr and a grep). The waits were sized by that count.
wait_line() { # LINE SECONDS FILE
	for _ in $(seq $(($2 * 10))); do
		tr -d '\r' <"$3" 2>/dev/null | grep -qxF -- "$1" && return 0
		sleep 0.1
	done
	return 1
}

# A ticking guest (tests/api_tick.sh) that did not reach its tick: say so,
# show the console's end and where kiln-vmm PID is. In the emulated test
# bed a 2-vCPU guest now and then stops for good with both vCPU threads in
# kvm_vcpu_block and no CPU used: halted, with no interrupt coming.
never_ticked() { # WHAT PID
	fail "$1 never ticked"
	tail -n 5 "$T/out" "$T/err"
	vmm_where "$2"
	return 1
}

# Each thread of kiln-vmm PID: name, state, kernel wait channel and the
# CPU ticks it used, twice 1 s apart (a busy guest's vCPU ticks move).
vmm_where() { # PID
	[ -n "$1" ] && [ -d "/proc/$1" ] || { echo "    (no kiln-vmm '$1')"; return 0; }
	for pass in 1 2; do
		[ "$pass" = 2 ] && sleep 1
		for t in /proc/"$1"/task/*; do
			awk -v w="$(cat "$t/wchan" 2>/dev/null)" -v c="$(cat "$t/comm" 2>/dev/null)" \
				'{ printf "    | %s %s wchan=%s cpu=%d\n", c, $3, w, $14 + $15 }' \
				"$t/stat" 2>/dev/null
		done
	done
}

# The guest's console must contain each given line (exactly, as a line).
console_has() {
	for want in "$@"; do
		grep -qxF -- "$want" "$T/out" || {
			fail "console lacks line '$want'"
			sed 's/^/    | /' "$T/out" | tail -n 20
			sed 's/^/    ! /' "$T/err" | tail -n 10
			return 1
		}
	done
}

# stderr must be exactly one line that contains the given text
one_error_line() {
	n=$(wc -l <"$T/err")
	[ "$n" -eq 1 ] || { fail "want 1 line on stderr, got $n:"; sed 's/^/    ! /' "$T/err"; return 1; }
	grep -qF -- "$1" "$T/err" || { fail "stderr lacks '$1': $(cat "$T/err")"; return 1; }
}

expect_rc() {
	[ "$rc" -eq "$1" ] || { fail "exit status $rc, want $1"; sed 's/^/    ! /' "$T/err" | tail -n 10; return 1; }
}

expect_failure() {
	[ "$rc" -ne 0 ] && [ "$rc" -lt 124 ] ||
		{ fail "exit status $rc, want a plain failure"; return 1; }
}

# This test cannot run here (or not all of it): say why, then return 0.
# The run counts it as skipped, not passed; under CI=true a skip must be
# allowed by KILN_ALLOW_SKIP (patterns on "test_name: reason").
skip() { # REASON
	echo "    SKIP: $*"
	echo "$*" >>"$T/skips"
}

# The pids of the kiln-vmm processes this run started (and that still run):
# their command is kiln-vmm and their environment holds our KILN_IT_RUN.
# Warm templates (KILN_TEMPLATE=1, runtime/template.c) outlive the
# containers that had them built: listed with `own_vmms all` only.
own_vmms() {
	for d in /proc/[0-9]*; do
		[ "$(cat "$d/comm" 2>/dev/null)" = kiln-vmm ] || continue
		vmm_is_waiter "${d#/proc/}" && continue
		env=$(tr '\0' '\n' <"$d/environ" 2>/dev/null)
		printf '%s\n' "$env" | grep -qxF "KILN_IT_RUN=$KILN_IT_RUN" || continue
		[ "${1:-}" = all ] || ! printf '%s\n' "$env" | grep -qxF KILN_TEMPLATE=1 ||
			continue
		echo "${d#/proc/}"
	done
}

# A jailed kiln-vmm is two processes of that name (docs/jail.md): the
# waiter the caller started, and the VMM, its child. Is PID a waiter?
vmm_is_waiter() { # PID
	[ -n "$(pgrep -P "$1" -x kiln-vmm)" ]
}

# PID's parent
ppid_of() { # PID
	awk '/^PPid:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# A jailed kiln-vmm's waiter (its parent, also named kiln-vmm), or nothing
vmm_waiter_of() { # PID
	pp=$(ppid_of "$1")
	if [ -n "$pp" ] && [ "$(cat "/proc/$pp/comm" 2>/dev/null)" = kiln-vmm ]; then
		echo "$pp"
	fi
}

# The process that started kiln-vmm PID: its parent, or for a jailed
# VMM its waiter's parent.
vmm_starter() { # PID
	w=$(vmm_waiter_of "$1")
	ppid_of "${w:-$1}"
}

# The folder a container's kiln-vmm PID was started in (its state
# directory): a jailed VMM's cwd is in its jail, its waiter's is the
# state directory's vm/ folder.
vmm_state_dir() { # PID
	w=$(vmm_waiter_of "$1")
	if [ -n "$w" ]; then
		d=$(readlink "/proc/$w/cwd" 2>/dev/null)
		echo "${d%/vm}"
	else
		readlink "/proc/$1/cwd" 2>/dev/null
	fi
}

# SIGKILL this run's kiln-vmm processes, by pid; true if there were any.
# With `all`, templates too.
kill_own_vmms() {
	pids=$(own_vmms "${1:-}")
	[ -n "$pids" ] || return 1
	# shellcheck disable=SC2086 # one pid per word
	kill -9 $pids 2>/dev/null
	# gone once they are no longer listed (reaped, or zombies)
	for _ in $(seq 50); do
		[ -n "$(own_vmms "${1:-}")" ] || break
		sleep 0.1
	done
	return 0
}

# No kiln-vmm of ours may be left running after a test.
no_leftovers() {
	if kill_own_vmms; then
		fail "a kiln-vmm process was left running"
		return 1
	fi
}

# ---- a jailed kiln-vmm (docs/jail.md): t_kiln_jail.sh, the pod tests ----

KJ_BASE=2000000000
KJ_COUNT=65536

# The jailed VMM of container ID: the kiln-vmm under its waiter, the
# kiln-vmm under the pid process. Sets kj_waiter and kj_vmm.
kj_find() { # ID
	kj_waiter='' kj_vmm=''
	pid=$(timeout 30 "$KILN" --root "$KROOT" state "$1" 2>/dev/null </dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)
	[ -n "$pid" ] || { fail "no pid for $1"; return 1; }
	for _ in $(seq 100); do
		kj_waiter=$(pgrep -P "$pid" -x kiln-vmm | head -n 1)
		[ -n "$kj_waiter" ] && kj_vmm=$(pgrep -P "$kj_waiter" -x kiln-vmm | head -n 1)
		[ -n "$kj_vmm" ] && return 0
		sleep 0.1
	done
	fail "no jailed kiln-vmm (a kiln-vmm under a kiln-vmm) under pid process $pid of $1"
}

kj_field() { # STATUS-FILE FIELD
	awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); print; exit }' "$1"
}

# The uid kj_vmm runs as, all four ids the same and in the range; in kj_uid.
kj_check_uid() {
	read -r r e s f <<EOF
$(kj_field "/proc/$kj_vmm/status" Uid)
EOF
	[ -n "$r" ] && [ "$r" = "$e" ] && [ "$r" = "$s" ] && [ "$r" = "$f" ] ||
		{ fail "kiln-vmm's uids: $r $e $s $f"; return 1; }
	[ "$r" -ge $KJ_BASE ] && [ "$r" -lt $((KJ_BASE + KJ_COUNT)) ] ||
		{ fail "kiln-vmm's uid $r is outside $KJ_BASE + $KJ_COUNT"; return 1; }
	g=$(kj_field "/proc/$kj_vmm/status" Gid | awk '{ print $1 }')
	[ "$g" = "$r" ] || { fail "kiln-vmm's gid $g, uid $r"; return 1; }
	kj_uid=$r
}

# Every thread of kj_vmm: no capability, no_new_privs, a seccomp filter;
# the process: a mount namespace other than ours.
kj_check_confined() {
	n=0
	for t in /proc/"$kj_vmm"/task/*; do
		ts=$t/status
		[ -r "$ts" ] || continue
		n=$((n + 1))
		for f in CapEff CapPrm CapAmb; do
			[ "$(kj_field "$ts" $f)" = 0000000000000000 ] ||
				{ fail "thread $(cat "$t/comm") $f $(kj_field "$ts" $f)"; return 1; }
		done
		[ "$(kj_field "$ts" NoNewPrivs)" = 1 ] || { fail "thread $(cat "$t/comm") NoNewPrivs"; return 1; }
		[ "$(kj_field "$ts" Seccomp)" = 2 ] ||
			{ fail "thread $(cat "$t/comm") Seccomp $(kj_field "$ts" Seccomp)"; return 1; }
	done
	[ "$n" -ge 2 ] || { fail "only $n threads in kiln-vmm $kj_vmm (event loop, vCPU)"; return 1; }
	[ "$(readlink "/proc/$kj_vmm/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] ||
		{ fail "kiln-vmm is in the host's mount namespace"; return 1; }
	[ "$(readlink "/proc/$kj_vmm/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] ||
		{ fail "kiln-vmm is in the host's pid namespace"; return 1; }
	echo "    kiln-vmm $kj_vmm: uid $kj_uid, $n threads, CapEff 0, NoNewPrivs 1, Seccomp 2 each"
}

# Is uid's kiln-vmm lock held?
kj_lock_held() { # UID
	[ -e "/run/kiln/jail/$1.lock" ] || return 1
	! flock -n "/run/kiln/jail/$1.lock" true
}
