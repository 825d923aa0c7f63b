#!/bin/sh
# Run each unit test binary; print its TAP, then one summary line.
# usage: [LABEL=name] test/run-unit.sh BIN...
LABEL=${LABEL:-unit}
passed=0 failed=0 bad=
for t in "$@"; do
	echo "# $t"
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | grep -c '^ok ')
	f=$(printf '%s\n' "$out" | grep -c '^not ok ')
	passed=$((passed + p))
	failed=$((failed + f))
	# a crash or sanitizer report with no failed assertion is still a failure
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		failed=$((failed + 1))
		bad="$bad $t(exit $rc)"
	fi
done
[ -z "$bad" ] || echo "# failed to run cleanly:$bad"
echo "$LABEL: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
