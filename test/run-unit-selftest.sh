#!/bin/sh
# test/run-unit.sh against made-up TAP programs: a skip is counted as
# skipped (never passed), a program that skips itself is counted, CI=true
# fails an unexpected skip and not an allowed one, and a program that stops
# before its plan or crashes fails. Prints one line; exit status 0 if all
# hold.
cd "$(dirname "$0")/.." || exit 2
d=$(mktemp -d /tmp/kiln-run-unit.XXXXXX)
trap 'rm -rf "$d"' EXIT
bad=0

prog() { # NAME SHELL-BODY
	printf '#!/bin/sh\n%s\n' "$2" >"$d/$1"
	chmod +x "$d/$1"
}
prog t_pass 'echo "ok 1 - a"; echo "ok 2 - b"; echo 1..2'
prog t_skip 'echo "ok 1 - a"; echo "ok 2 # SKIP no widget here"; echo "ok 3 - # SKIP old style"; echo 1..3'
prog t_all 'echo "1..0 # SKIP no netns: EPERM"'
prog t_short 'echo "ok 1 - a"; echo 1..3'
prog t_crash 'echo "ok 1 - a"; echo 1..1; exit 134'
prog t_fail 'echo "not ok 1 - a"; echo 1..1; exit 1'

# expect WANT-LAST-LINE WANT-STATUS CI KILN_ALLOW_SKIP LABEL PROGRAMS...
expect() {
	want=$1 wrc=$2 ci=$3 allow=$4 label=$5
	shift 5
	out=$(CI=$ci KILN_ALLOW_SKIP=$allow LABEL=$label test/run-unit.sh "$@" 2>&1)
	rc=$?
	last=$(printf '%s\n' "$out" | tail -n 1)
	if [ "$last" != "$want" ] || [ "$rc" -ne "$wrc" ]; then
		echo "# CI=$ci KILN_ALLOW_SKIP='$allow' LABEL=$label run-unit.sh $*:"
		echo "#   '$last' status $rc, want '$want' status $wrc"
		bad=1
	fi
}

expect "unit: 2 passed, 0 failed, 0 skipped" 0 "" "" "" "$d/t_pass"
expect "unit: 3 passed, 0 failed, 3 skipped" 0 "" "" "" \
	"$d/t_pass" "$d/t_skip" "$d/t_all"
expect "tsan: 2 passed, 0 failed, 0 skipped" 0 "" "" tsan "$d/t_pass"
expect "unit: 1 passed, 1 failed, 1 skipped" 1 true "t_skip:?old*" "" "$d/t_skip"
expect "unit: 0 passed, 0 failed, 1 skipped" 0 true "t_skip:* t_all:*" "" "$d/t_all"
expect "unit: 0 passed, 1 failed, 0 skipped" 1 true "" "" "$d/t_all"
expect "unit: 1 passed, 1 failed, 0 skipped" 1 "" "" "" "$d/t_short"
expect "unit: 1 passed, 1 failed, 0 skipped" 1 "" "" "" "$d/t_crash"
expect "unit: 0 passed, 1 failed, 0 skipped" 1 "" "" "" "$d/t_fail"

if [ $bad = 0 ]; then
	echo "run-unit.sh self-test: ok"
else
	echo "run-unit.sh self-test: FAILED"
fi
exit $bad
