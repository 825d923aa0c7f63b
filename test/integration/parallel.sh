#!/bin/bash
# `make check-integration`: the integration suite in several test-bed
# sessions side by side, each QEMU emulating one CPU, one per PATTERN (a
# grep pattern of test names; "" for a bed with no group of its own). A
# group is the tests its pattern matches that no earlier pattern took; it
# runs in its own bed, in name order, so its tests share what that bed has
# warmed (kiln's templates, the engines' images). Every test no group takes
# is handed out, one at a time and the longest first, to whichever bed asks
# next (run.sh --ask, through each bed's TESTBED_JOB), so the beds end
# close together however fast this machine is. Each bed's output is printed
# whole when all have ended, with its own "integration: N passed, N failed,
# N skipped" line.
# usage: test/integration/parallel.sh PATTERN...
set -u
cd "$(dirname "$0")/../.." || exit 2
logs=$(mktemp -d /tmp/kiln-it-par.XXXXXX)
trap 'rm -rf "$logs"' EXIT

# The slowest of the handed-out tests (seconds in a CI run's beds), first;
# then the rest in name order.
slow="test_fork_many test_cni_containerd test_net_stress_parallel_streams_two_vcpus
	test_snapshot_sealed test_net_stress_parallel_streams_two_pairs
	test_snapshot_diff test_fork_refused test_fork_live_limit"
pool=$(grep -ho '^test_[a-z0-9_]*' test/integration/t_*.sh | sort -u)
groups=()
for p in "$@"; do
	g=
	[ -z "$p" ] || g=$(grep -E -- "$p" <<<"$pool")
	groups+=("$(paste -sd'|' - <<<"$g")")
	[ -z "$g" ] || pool=$(grep -vxF -- "$g" <<<"$pool")
done
queue=()
for t in $slow; do
	grep -qx -- "$t" <<<"$pool" && queue+=("$t")
done
for t in $pool; do
	case " ${queue[*]} " in *" $t "*) ;; *) queue+=("$t") ;; esac
done

i=0
for g in "${groups[@]}"; do
	i=$((i + 1))
	echo "integration bed $i: $(tr '|' '\n' <<<"$g" | grep -c .) tests of its own, then tests handed out"
	mkdir "$logs/job$i" || exit 2
	# Each bed's exit status goes to a file: bash's `wait PID` can fail
	# with "not a child of this shell" for a job that `jobs` has already
	# reported as ended.
	(
		TB_JOB="$logs/job$i" TB_PASS_CI="${CI:-}" TB_MEM=${TB_MEM:-4608} \
			TB_TIMEOUT=${TB_TIMEOUT:-3600} \
			hack/testbed test/integration/run.sh --ask ${g:+"^($g)\$"} >"$logs/$i" 2>&1
		echo $? >"$logs/rc$i"
	) &
done

# Hand out the queue: a bed that wants a test leaves "ask" in its job
# folder; we take "ask" away, then give "next" (empty: no more).
n=0
while [ -n "$(jobs -rp)" ]; do
	for j in $(seq "$i"); do
		q=$logs/job$j
		[ -e "$q/ask" ] && [ ! -e "$q/next" ] || continue
		rm -f "$q/ask"
		echo "${queue[n]:-}" >"$q/next.new" && mv "$q/next.new" "$q/next"
		[ "$n" -ge "${#queue[@]}" ] || n=$((n + 1))
	done
	sleep 0.2
done

wait
rc=0
for f in $(seq "$i"); do
	echo "---- integration bed $f"
	cat "$logs/$f"
	b=$(cat "$logs/rc$f" 2>/dev/null)
	[ "$b" = 0 ] || { echo "integration bed $f: exit status ${b:-unknown}"; rc=1; }
	# a bed that died before its summary (the test bed's time limit)
	grep -q '^integration: [0-9]* passed' "$logs/$f" ||
		{ echo "integration: 0 passed, 1 failed, 0 skipped"; rc=1; }
done
# tests never handed out (every bed died first) failed too
if [ "$n" -lt "${#queue[@]}" ]; then
	echo "---- never run: ${queue[*]:n}"
	echo "integration: 0 passed, $((${#queue[@]} - n)) failed, 0 skipped"
	rc=1
fi
exit "$rc"
