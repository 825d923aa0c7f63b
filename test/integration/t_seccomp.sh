# Least privilege in kiln-vmm: every thread of a running VM has its own
# seccomp filter, no capability and no_new_privs; a forbidden syscall from
# any thread kind kills the process by SIGSYS (and, with --seccomp-log,
# the log names the syscall). vmm/seccomp.h says how.

SELFTEST_VMM=$B/kiln-vmm-selftest

# "Field:\tvalue" of a /proc status file.
status_field() { # FILE FIELD
	sed -n "s/^$2:[[:space:]]*//p" "$1"
}

# A VM from a config file, with the API too, so every thread kind runs;
# without SCRIPT the guest's init reports and reboots at once.
seccomp_config() { # [SCRIPT]
	script=${1:+ kiln.script=/tests/$1.sh}
	cat >"$T/sc.json" <<JSON
{
  "boot-source": {
    "kernel_image_path": "$GUEST/vmlinux",
    "initrd_path": "$GUEST/initramfs",
    "boot_args": "console=ttyS0 reboot=k panic=1 quiet$script"
  },
  "machine-config": { "vcpu_count": 2, "mem_size_mib": 128, "smt": false }
}
JSON
}

# Every thread of pid $1: "comm seccomp nnp capeff capprm capbnd" lines.
thread_table() { # PID
	for t in /proc/"$1"/task/*; do
		s=$t/status
		printf '%s %s %s %s %s %s\n' "$(cat "$t/comm")" \
			"$(status_field "$s" Seccomp)" "$(status_field "$s" NoNewPrivs)" \
			"$(status_field "$s" CapEff)" "$(status_field "$s" CapPrm)" \
			"$(status_field "$s" CapBnd)"
	done
}

# Start a ticking guest with the API; the table of its threads once it ticks.
seccomp_running_table() { # [KILN-VMM ARGS...]
	seccomp_config api_tick
	api_start --config-file "$T/sc.json" "$@" || return 1
	wait_line "TICK 3" 60 "$T/out" || { never_ticked "the guest" "$(api_vmm)"; return 1; }
	# api_pid is timeout(1)'s: kiln-vmm is its child
	pid=$(pgrep -P "$api_pid" -x kiln-vmm)
	[ -n "$pid" ] || { fail "no kiln-vmm under $api_pid"; return 1; }
	thread_table "$pid" >"$T/threads"
	kill -TERM "$pid"
	api_wait
	sed 's/^/    | /' "$T/threads"
}

test_seccomp_every_thread_confined() {
	seccomp_running_table || return 1
	# 143: SIGTERM ends it as before, through the VMM thread's signalfd
	expect_rc 143 || return 1
	for kind in kiln-vmm kiln-api vcpu0 vcpu1; do
		grep -q "^$kind " "$T/threads" || { fail "no $kind thread"; return 1; }
	done
	zero=0000000000000000
	awk -v z=$zero '$2 != 2 || $3 != 1 || $4 != z || $5 != z || $6 != z { bad = 1 }
		END { exit bad }' "$T/threads" ||
		{ fail "a thread without its filter (Seccomp 2), no_new_privs or with a capability"; return 1; }
	# the whole process, as ps and the kernel's audit see it
	no_leftovers
}

# --no-seccomp really turns it off (so the test above can fail).
test_seccomp_off_with_no_seccomp() {
	seccomp_running_table --no-seccomp || return 1
	expect_rc 143 || return 1
	if awk '$2 != 0 { bad = 1 } END { exit bad }' "$T/threads"; then :; else
		fail "--no-seccomp left a thread filtered"
		return 1
	fi
	no_leftovers
}

# The test build's threads each make one forbidden syscall (socket with
# AF_INET: no thread may open one) right after loading their filter.
selftest_run() { # KIND [KILN-VMM ARGS...]
	kind=$1
	shift
	seccomp_config
	rm -f "$T/sc.sock"
	rc=0
	KILN_VMM_SECCOMP_SELFTEST=$kind timeout -k 5 120 "$SELFTEST_VMM" \
		--api-sock "$T/sc.sock" --config-file "$T/sc.json" "$@" \
		>"$T/out" 2>"$T/err" || rc=$?
	crlf "$T/out"
}

test_seccomp_forbidden_syscall_kills_each_thread_kind() {
	[ -x "$SELFTEST_VMM" ] || { fail "$SELFTEST_VMM missing (make)"; return 1; }
	for kind in api vmm vcpu; do
		# default: killed at once, by SIGSYS (128 + 31)
		selftest_run "$kind"
		[ "$rc" -eq 159 ] || { fail "$kind: exit status $rc, want 159 (SIGSYS)"; tail -n 5 "$T/err"; return 1; }
		# --seccomp-log: the same death, and the log names the syscall
		selftest_run "$kind" --seccomp-log
		[ "$rc" -eq 159 ] || { fail "$kind --seccomp-log: exit status $rc, want 159"; tail -n 5 "$T/err"; return 1; }
		grep -qE "^kiln-vmm: seccomp: the $kind thread made a forbidden syscall socket \(41, args 0x2 " "$T/err" ||
			{ fail "$kind: the log does not name socket"; tail -n 5 "$T/err"; return 1; }
	done
	# without the trigger the same build runs the guest
	selftest_run none
	[ "$rc" -eq 0 ] && grep -qx KILN-INIT-OK "$T/out" ||
		{ fail "the selftest build without a trigger: status $rc"; tail -n 5 "$T/err"; return 1; }
}

# A crash inside the filters still reports, and the report resolves:
# kiln-vmm is a static PIE (a new base each run), so its first line gives
# the base; the fault's address minus it names a function, and some frame
# lies in our own sources.
test_seccomp_crash_report_resolves() {
	seccomp_config api_tick
	api_start --config-file "$T/sc.json" || return 1
	wait_line "TICK 3" 60 "$T/out" || { never_ticked "the guest" "$(api_vmm)"; return 1; }
	pid=$(pgrep -P "$api_pid" -x kiln-vmm)
	[ -n "$pid" ] || { fail "no kiln-vmm under $api_pid"; return 1; }
	kill -SEGV "$pid"
	api_wait
	expect_rc 139 || return 1
	line=$(grep -m1 '^kiln-vmm: fatal signal' "$T/err")
	printf '    | %s\n' "$line"
	case $line in
	"kiln-vmm: fatal signal 11, address 0x"*", rip 0x"*", base 0x"*", backtrace:") ;;
	*) fail "no crash line in this form"; tail -n 5 "$T/err"; return 1 ;;
	esac
	base=$(printf '%s\n' "$line" | sed -n 's/.*, base \(0x[0-9a-f]*\),.*/\1/p')
	rip=$(printf '%s\n' "$line" | sed -n 's/.*, rip \(0x[0-9a-f]*\),.*/\1/p')
	# a static PIE is not loaded where a plain static binary is
	[ $((base)) -ne $((0x400000)) ] || { fail "base $base: not a PIE"; return 1; }
	# the return addresses; the fault's own goes first to addr2line
	addrs=$(sed -n 's/^\[\(0x[0-9a-f]*\)\]$/\1/p' "$T/err")
	[ "$(printf '%s\n' "$addrs" | grep -c .)" -ge 3 ] || { fail "fewer than 3 return addresses"; tail -n 12 "$T/err"; return 1; }
	offs=
	for a in $rip $addrs; do
		offs="$offs $(printf '0x%x' $((a - base)))"
	done
	# shellcheck disable=SC2086 # one argument per address
	addr2line -f -e "$B/kiln-vmm" $offs >"$T/where"
	sed 's/^/    | /' "$T/where"
	# the fault lies in a function, and some frame in our own sources
	[ "$(head -n 1 "$T/where")" != "??" ] || { fail "rip - base ($rip - $base) names no function"; return 1; }
	grep -qE '(^|/)(vmm|lib)/[a-z_/]+\.c:[0-9]+' "$T/where" ||
		{ fail "no frame resolves to a file of vmm/ or lib/"; return 1; }
	no_leftovers
}
