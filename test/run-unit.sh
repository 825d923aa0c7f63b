#!/bin/sh
# Run each unit test binary; print its TAP, then one summary line:
#   ${LABEL:-unit}: N passed, N failed, N skipped
# usage: [LABEL=name] test/run-unit.sh BIN...
#
# A skip is not a pass. "ok N # SKIP why" counts one skipped test and
# "1..0 # SKIP why" (a whole program that cannot run here) counts one.
# Under CI=true every skip must be expected: KILN_ALLOW_SKIP holds
# shell patterns, separated by white space, matched against
# "PROGRAM: why" (e.g. KILN_ALLOW_SKIP='test_loader:*'); any other skip
# counts as a failure. A program that exits non-zero with no failed
# assertion, or whose plan does not match its tests, fails too.
label=${LABEL:-unit}
passed=0 failed=0 skipped=0 bad=

# "PROGRAM: why" is allowed to skip
allowed() {
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

for t in "$@"; do
	name=${t##*/}
	echo "# $t"
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	# first line: pass, fail and skip counts, the plan's count ("-" if
	# none) and the tests seen; then the reason of each skip
	tap=$(printf '%s\n' "$out" | awk '
		function why() { r = $0; sub(/^.*# *[Ss][Kk][Ii][Pp][^ ]* */, "", r)
				 reasons = reasons r "\n"; s++ }
		/^not ok / { f++; n++; next }
		/^ok / { n++; if ($0 ~ /# *[Ss][Kk][Ii][Pp]/) why(); else p++; next }
		/^1\.\.[0-9]+/ { plan = $1; sub(/^1\.\./, "", plan)
				 if (plan == 0 && $0 ~ /# *[Ss][Kk][Ii][Pp]/) why() }
		END { printf "%d %d %d %s %d\n%s", p, f, s,
			     plan == "" ? "-" : plan, n, reasons }')
	# shellcheck disable=SC2046 # five numbers, split into $1..$5
	set -- $(printf '%s\n' "$tap" | head -n 1)
	p=$1 f=$2 s=$3 plan=$4 n=$5 asserts_failed=$2
	reasons=$(printf '%s\n' "$tap" | tail -n +2)
	if [ "$s" -gt 0 ]; then
		# one line per skip, so one verdict per skip
		while IFS= read -r why; do
			id="$name: $why"
			if [ "${CI:-}" = true ] && ! allowed "$id"; then
				echo "# unexpected skip (CI=true, not in KILN_ALLOW_SKIP): $id"
				s=$((s - 1))
				f=$((f + 1))
			else
				echo "# skipped: $id"
			fi
		done <<EOF
$reasons
EOF
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	# a crash or sanitizer report with no failed assertion is still a failure
	if [ $rc -ne 0 ] && [ "$asserts_failed" -eq 0 ]; then
		failed=$((failed + 1))
		bad="$bad $name(exit $rc)"
	elif [ "$plan" = - ] || [ "$plan" -ne "$n" ]; then
		# no plan, or fewer tests than it promised: it stopped early
		failed=$((failed + 1))
		bad="$bad $name(plan $plan, ran $n)"
	fi
done
[ -z "$bad" ] || echo "# failed to run cleanly:$bad"
echo "$label: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
