#!/bin/bash
# `make check-integration`: the integration suite in several test-bed
# sessions side by side, each QEMU emulating one CPU, split by test name
# (a grep pattern per group, the last group: every test no other group
# takes). Each group's output is printed whole when all have ended, with
# its own "integration: N passed, N failed, N skipped" line.
# usage: test/integration/parallel.sh PATTERN... (the groups but the last)
set -u
cd "$(dirname "$0")/../.." || exit 2
logs=$(mktemp -d /tmp/kiln-it-par.XXXXXX)
trap 'rm -rf "$logs"' EXIT
all=$(printf '%s\n' "$@" | paste -sd'|' -)
pids=() i=0
for filter in "$@" "!$all"; do
	i=$((i + 1))
	echo "integration group $i: ${filter}"
	TB_PASS_CI="${CI:-}" TB_MEM=${TB_MEM:-4608} TB_TIMEOUT=${TB_TIMEOUT:-3000} \
		hack/testbed test/integration/run.sh "$filter" >"$logs/$i" 2>&1 &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do
	wait "$p" || rc=1
done
for f in $(seq "$i"); do
	echo "---- integration group $f"
	cat "$logs/$f"
	# a group that died before its summary (the test bed's time limit)
	grep -q '^integration: [0-9]* passed' "$logs/$f" ||
		{ echo "integration: 0 passed, 1 failed, 0 skipped"; rc=1; }
done
exit "$rc"
