#!/bin/bash
# Run every integration test (test/integration/t_*.sh) in this one session.
# They boot real guests, so they need /dev/kvm: `make check-integration`
# runs this script inside hack/testbed. Prints one summary line:
#   integration: N passed, N failed, N skipped
# A test that calls skip (lib.sh) and returns 0 is skipped, not passed;
# under CI=true a skip whose "test_name: reason" matches no pattern of
# KILN_ALLOW_SKIP (shell patterns, white-space separated) fails.
# usage: test/integration/run.sh [--ask] [NAME-FILTER | !NAME-FILTER]
# --ask: after the tests the filter names (none without a filter), ask
# for more, one at a time, through TESTBED_JOB (test/integration/parallel.sh
# answers; an empty answer ends the run).
set -u
cd "$(dirname "$0")/../.." || exit 2
TOP=$PWD
export TOP
T=$(mktemp -d /tmp/kiln-it.XXXXXX)
trap 'kill_own_vmms all || :; rm -rf "$T"' EXIT
. test/integration/lib.sh

if [ ! -c /dev/kvm ] || ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "integration: no usable /dev/kvm here: run under hack/testbed" >&2
	echo "integration: 0 passed, 1 failed, 0 skipped"
	exit 1
fi
for f in "$VMM" "$GUEST/vmlinux" "$GUEST/bzImage" "$GUEST/initramfs" "$GUEST/agent.cpio"; do
	[ -e "$f" ] || { echo "integration: $f missing (make all guest)"; echo "integration: 0 passed, 1 failed, 0 skipped"; exit 1; }
done

for f in test/integration/t_*.sh; do
	. "$f"
done
# "test_name: reason" is allowed to skip
skip_allowed() {
	set -f
	for pat in ${KILN_ALLOW_SKIP:-}; do
		# shellcheck disable=SC2254 # the patterns are globs
		case "$1" in $pat)
			set +f
			return 0
			;;
		esac
	done
	set +f
	return 1
}

# Every process below pid, deepest first.
tree() { # PID
	for c in $(pgrep -P "$1"); do
		tree "$c"
		echo "$c"
	done
}

# A test that hangs fails alone, with what was running, instead of
# taking the test bed's whole time limit with it.
watchdog() { # NAME PID
	sleep "${KILN_TEST_TIMEOUT:-900}" & wait $!
	# the test ended (and we are being stopped): nothing to say
	kill -0 "$2" 2>/dev/null || exit 0
	echo "    FAIL: $1 still running after ${KILN_TEST_TIMEOUT:-900} s; its processes:"
	ps -o pid,ppid,stat,etime,wchan:20,args -p "$( (echo "$2"; tree "$2") | paste -sd, -)" 2>/dev/null |
		cut -c1-160 | sed 's/^/      /'
	# shellcheck disable=SC2046 # one pid per word
	kill -9 "$2" $(tree "$2") 2>/dev/null
}

passed=0 failed=0 skipped=0 failures= skips=
run_test() { # NAME
	t=$1
	start=$(date +%s.%N)
	rm -f "$T/skips"
	ok=0
	( set -u; "$t" ) &
	tpid=$!
	watchdog "$t" "$tpid" &
	wpid=$!
	trc=0
	wait "$tpid" || trc=$?
	# shellcheck disable=SC2046 # the watchdog, then its sleep
	wkids=$(pgrep -P "$wpid")
	kill "$wpid" $wkids 2>/dev/null
	wait "$wpid" 2>/dev/null
	if [ "$trc" -eq 0 ]; then
		( no_leftovers ) && ok=1
	else
		# a failed test may leave its VMM behind: not the next test's fault
		kill_own_vmms
	fi
	# a test that passed with a skip: skipped, or under CI a failure
	if [ "$ok" = 1 ] && [ -s "$T/skips" ]; then
		ok=skip
		while IFS= read -r why; do
			if [ "${CI:-}" = true ] && ! skip_allowed "$t: $why"; then
				echo "    unexpected skip (CI=true, not in KILN_ALLOW_SKIP): $t: $why"
				ok=0
			fi
		done <"$T/skips"
	fi
	secs=$(echo "$(date +%s.%N) - $start" | bc)
	if [ "$ok" = 1 ]; then
		passed=$((passed + 1))
		printf 'ok   %-44s %5.1fs\n' "$t" "$secs"
	elif [ "$ok" = skip ]; then
		skipped=$((skipped + 1))
		skips="$skips $t"
		printf 'SKIP %-44s %5.1fs %s\n' "$t" "$secs" "$(paste -sd';' "$T/skips")"
	else
		failed=$((failed + 1))
		failures="$failures $t"
		printf 'FAIL %-44s\n' "$t"
	fi
	rm -f "$T"/out "$T"/err "$T"/skips
}

# The next test to run, from parallel.sh: we put "ask" in TESTBED_JOB and
# wait for "next" (its name, or nothing when none is left); parallel.sh
# removes "ask" before it writes "next".
ask_next() {
	rm -f "$TESTBED_JOB/next"
	: >"$TESTBED_JOB/ask" || return 1
	until [ -e "$TESTBED_JOB/next" ]; do sleep 0.2; done
	cat "$TESTBED_JOB/next"
	rm -f "$TESTBED_JOB/next"
}

ask=
[ "${1:-}" != --ask ] || { ask=1; shift; }
[ -z "$ask" ] || [ -d "${TESTBED_JOB:-}" ] ||
	{ echo "integration: --ask needs TESTBED_JOB (run under hack/testbed)"; exit 2; }
# NAME-FILTER: an extended grep pattern; "!PATTERN": the tests it does not match
filter=${1:-}
invert=
case "$filter" in "!"*) filter=${filter#!} invert=-v ;; esac
# with --ask and no filter, only the tests asked for
[ -n "$ask" ] && [ $# -eq 0 ] && filter='^$'
for t in $(declare -F | awk '{print $3}' | grep '^test_' | grep -E $invert -- "$filter"); do
	run_test "$t"
done
# what the group kept warm (kiln's templates) is not for the tests asked
# for: they get the bed's memory whole
[ -z "$ask" ] || kill_own_vmms all || :
while [ -n "$ask" ] && t=$(ask_next) && [ -n "$t" ]; do
	if declare -F "$t" >/dev/null && [ "${t#test_}" != "$t" ]; then
		run_test "$t"
	else
		failed=$((failed + 1))
		failures="$failures $t"
		printf 'FAIL %-44s no such test\n' "$t"
	fi
done
[ -z "$skips" ] || echo "skipped:$skips"
[ -z "$failures" ] || echo "failed:$failures"
echo "integration: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
