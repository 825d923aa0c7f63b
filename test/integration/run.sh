#!/bin/bash
# Run every integration test (test/integration/t_*.sh) in this one session.
# They boot real guests, so they need /dev/kvm: `make check-integration`
# runs this script inside hack/testbed. Prints one summary line.
# usage: test/integration/run.sh [NAME-FILTER]
set -u
cd "$(dirname "$0")/../.." || exit 2
TOP=$PWD
export TOP
T=$(mktemp -d /tmp/kiln-it.XXXXXX)
trap 'rm -rf "$T"' EXIT
. test/integration/lib.sh

if [ ! -c /dev/kvm ] || ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "integration: no usable /dev/kvm here: run under hack/testbed" >&2
	echo "integration: 0 passed, 1 failed"
	exit 1
fi
for f in "$VMM" "$GUEST/vmlinux" "$GUEST/bzImage" "$GUEST/initramfs"; do
	[ -e "$f" ] || { echo "integration: $f missing (make all guest)"; echo "integration: 0 passed, 1 failed"; exit 1; }
done

for f in test/integration/t_*.sh; do
	. "$f"
done
passed=0 failed=0 failures=
for t in $(declare -F | awk '{print $3}' | grep '^test_' | grep -- "${1:-}"); do
	start=$(date +%s.%N)
	ok=0
	if ( set -u; "$t" ); then
		( no_leftovers ) && ok=1
	else
		# a failed test may leave its VMM behind: not the next test's fault
		pkill -9 -x kiln-vmm 2>/dev/null
	fi
	if [ "$ok" = 1 ]; then
		passed=$((passed + 1))
		printf 'ok   %-44s %5.1fs\n' "$t" "$(echo "$(date +%s.%N) - $start" | bc)"
	else
		failed=$((failed + 1))
		failures="$failures $t"
		printf 'FAIL %-44s\n' "$t"
	fi
	rm -f "$T"/out "$T"/err
done
[ -z "$failures" ] || echo "failed:$failures"
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
