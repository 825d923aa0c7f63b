# The VM's host cgroup (runtime/cgroup.c): a CPU-hungry guest held to its
# quota on the host, a memory-hungry one OOM-killed in its guest while
# kiln-vmm lives within the host memory.max, pids.max, update (and one the
# host refuses), and the cgroup gone after delete (also after a kill -9 of
# the pid process). A refused create is in test/unit/test_runtime_cgroup.c. Uses
# t_kiln.sh's and t_kiln_res.sh's helpers, which run.sh sources first.
# The bed's /sys/fs/cgroup is cgroup v2; config.json names no cgroupsPath,
# so kiln makes /kiln/ID.

kcg_dir() { echo "/sys/fs/cgroup/kiln/$1"; }

# No warm templates here: a template built in the background would take
# CPU from the busy guest being measured (and cost as much as a boot).
kcg_reset() {
	kiln_reset
	KILN_CONFIG=$T/kcg-conf.json
	echo '{"templates": false}' >"$KILN_CONFIG"
	export KILN_CONFIG
}

kcg_done() {
	unset KILN_CONFIG
	kiln_nothing_left
}

# kiln-vmm's pid in the container's host cgroup, or nothing.
kcg_vmm() { # ID
	while read -r p; do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = kiln-vmm ] && { echo "$p"; return 0; }
	done <"$(kcg_dir "$1")/cgroup.procs"
	return 1
}

# Host CPU time of the cgroup over SECONDS of wall time, in % of one CPU.
kcg_cpu_pct() { # ID SECONDS
	f="$(kcg_dir "$1")/cpu.stat"
	u0=$(sed -n 's/^usage_usec //p' "$f"); t0=$(date +%s%N)
	sleep "$2"
	u1=$(sed -n 's/^usage_usec //p' "$f"); t1=$(date +%s%N)
	[ -n "$u0" ] && [ -n "$u1" ] || return 1
	echo $(((u1 - u0) * 100000 / (t1 - t0)))
}

# A busy guest, detached, and its host CPU share once the loop runs.
kcg_busy() { # ID RESOURCES-JSON
	kres_bundle "$T/b$1" 'while :; do :; done' "$2" || return 1
	kiln run --detach --bundle "$T/b$1" "$1"
	[ "$krc" = 0 ] || { kiln_fail "run --detach $1 failed"; return 1; }
	kcg_vmm "$1" >/dev/null || { kiln_fail "no kiln-vmm in $(kcg_dir "$1")"; return 1; }
	sleep 1
	pct=$(kcg_cpu_pct "$1" 5) || { kiln_fail "no cpu.stat in $(kcg_dir "$1")"; return 1; }
}

test_kiln_cgroup_cpu_quota_holds_a_busy_guest() {
	kcg_reset
	kcg_busy q1 '{"cpu": {"quota": 20000, "period": 100000, "shares": 512}}' || return 1
	held=$pct
	d=$(kcg_dir q1)
	# the container's quota + 5% of a CPU for the guest's kernel and
	# agent and kiln-vmm's device work
	[ "$(cat "$d/cpu.max")" = "25000 100000" ] ||
		{ kiln_fail "host cpu.max is '$(cat "$d/cpu.max")', want '25000 100000'"; return 1; }
	[ "$(cat "$d/cpu.weight")" = 20 ] ||
		{ kiln_fail "host cpu.weight is '$(cat "$d/cpu.weight")', want 20 (shares 512)"; return 1; }
	# the host's quota bites (not only the guest's own)
	throttled=$(sed -n 's/^nr_throttled //p' "$d/cpu.stat")
	[ "$throttled" -gt 0 ] || { kiln_fail "host cpu.stat nr_throttled is '$throttled'"; return 1; }
	# a quota the host refuses (beyond the kernel's 2^44 µs): one error
	# naming file and value, and neither the host's nor the guest's
	# limit changed
	kiln update --cpu-quota 20000000000000 q1
	[ "$krc" != 0 ] && grep -q "write \`20000000005000\` to \`$d/cpu.max\`" "$T/kerr" ||
		{ kiln_fail "update --cpu-quota 20000000000000 was not refused by name"; return 1; }
	echo "    $(tail -n 1 "$T/kerr")"
	[ "$(cat "$d/cpu.max")" = "25000 100000" ] && [ "$(kres_read q1 cpu.max)" = "20000 100000" ] ||
		{ kiln_fail "a refused update changed cpu.max: host '$(cat "$d/cpu.max")', guest '$(cat "$T/kout")'"; return 1; }
	# update changes the host's quota with the guest's
	kiln update --cpu-quota 50000 q1
	[ "$krc" = 0 ] && [ "$(cat "$d/cpu.max")" = "55000 100000" ] ||
		{ kiln_fail "after update --cpu-quota 50000 host cpu.max is '$(cat "$d/cpu.max")'"; return 1; }
	kiln delete --force q1
	[ ! -e "$d" ] || { kiln_fail "$d is left after delete"; return 1; }
	# the control: the same loop without a quota
	kcg_busy c1 '{}' || return 1
	free=$pct
	kiln delete --force c1
	echo "    busy guest, 5 s: quota 20000/100000 (host 25000) ${held}% of a CPU (host nr_throttled $throttled), no quota ${free}%"
	[ "$held" -le 30 ] || { kiln_fail "a 20% quota let the VM use ${held}% of a CPU"; return 1; }
	# above the bound, and twice the held figure (the bed's one CPU may be
	# shared with another test stream)
	[ "$free" -gt 30 ] && [ "$free" -ge $((held * 2)) ] ||
		{ kiln_fail "without a quota the busy guest used only ${free}% (with: ${held}%): the test cannot tell"; return 1; }
	kcg_done
}

test_kiln_cgroup_memory_pids_and_kill9() {
	kcg_reset
	kres_bundle "$T/b" 'exec sleep 1000' '{"memory": {"limit": 67108864}, "pids": {"limit": 50}}' || return 1
	kiln run --detach --bundle "$T/b" m1
	[ "$krc" = 0 ] || { kiln_fail "run --detach failed"; return 1; }
	d=$(kcg_dir m1)
	vmm=$(kcg_vmm m1) || { kiln_fail "no kiln-vmm in $d"; return 1; }
	vcpus=$(tr '\0' '\n' <"/proc/$vmm/cmdline" | sed -n '/^--vcpus$/{n;p}')
	mib=$(tr '\0' '\n' <"/proc/$vmm/cmdline" | sed -n '/^--mem$/{n;p}')
	[ "$mib" = 128 ] || { kiln_fail "the VM has '$mib' MiB, want 64 + 64"; return 1; }
	# the VM's RAM + 64 MiB for kiln-vmm, the pid process, virtiofsd
	want=$(((128 + 64) * 1048576))
	[ "$(cat "$d/memory.max")" = "$want" ] ||
		{ kiln_fail "host memory.max is '$(cat "$d/memory.max")', want $want"; return 1; }
	# the VM's tasks, not the container's 50
	[ "$(cat "$d/pids.max")" = $((128 + vcpus + 4 * 80)) ] ||
		{ kiln_fail "host pids.max is '$(cat "$d/pids.max")', want $((128 + vcpus + 320))"; return 1; }
	kiln exec m1 memhog 200
	[ "$krc" = 137 ] || { kiln_fail "memhog 200 MiB under a 64 MiB limit exited $krc, want 137"; return 1; }
	[ "$(kcg_vmm m1)" = "$vmm" ] || { kiln_fail "kiln-vmm $vmm is gone after the guest's OOM"; return 1; }
	kills=$(sed -n 's/^oom_kill //p' "$d/memory.events")
	[ "$kills" = 0 ] || { kiln_fail "host memory.events: oom_kill $kills"; return 1; }
	kiln exec m1 echo alive
	[ "$(cat "$T/kout")" = alive ] || { kiln_fail "no exec after the OOM"; return 1; }
	peak=$(cat "$d/memory.peak" 2>/dev/null || echo '?')
	echo "    host memory.max $want (VM 128 MiB + 64), peak $peak, pids.max $(cat "$d/pids.max"), current $(cat "$d/pids.current"); guest OOM 137, host oom_kill 0"
	# kill -9 of the pid process, then delete --force: kiln-vmm is
	# killed with what else is left in the cgroup, which goes
	pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$KROOT/m1/state.json")
	kill -9 "$pid"
	kiln delete --force m1
	[ "$krc" = 0 ] || { kiln_fail "delete --force after kill -9 failed"; return 1; }
	[ ! -e "$d" ] || { kiln_fail "$d is left after kill -9 and delete --force ($(cat "$d/cgroup.procs"))"; return 1; }
	kill -0 "$vmm" 2>/dev/null && { kiln_fail "kiln-vmm $vmm outlived delete"; return 1; }
	kcg_done
}
