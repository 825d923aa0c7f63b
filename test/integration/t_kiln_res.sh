# linux.resources enforced inside the guest on the container's cgroup, and
# `kiln update` (runc's flags and -r FILE|-). Uses t_kiln.sh's helpers
# (kiln, kiln_bundle, kiln_reset ...), which run.sh sources first.

# A bundle as kiln_bundle's, with more busybox applets and memhog, and
# linux.resources set to the JSON $3.
kres_bundle() { # DIR COMMAND RESOURCES-JSON
	KB_EDIT="c['linux']['resources'] = json.loads('$3')" kiln_bundle "$1" "$2" || return 1
	for a in '[' seq grep head cut wc; do
		ln -sf busybox "$1/rootfs/bin/$a"
	done
	cp "$GUEST/tools/memhog" "$1/rootfs/bin/memhog"
}

# The container's view of one of its cgroup files, through an exec.
kres_read() { # ID FILE
	kiln exec "$1" cat "/sys/fs/cgroup/$2"
	[ "$krc" = 0 ] || { kiln_fail "exec cat /sys/fs/cgroup/$2 failed"; return 1; }
	cat "$T/kout"
}

test_kiln_res_limits_seen_inside() {
	kiln_reset
	kres_bundle "$T/b" 'cd /sys/fs/cgroup && cat memory.max memory.swap.max pids.max cpu.max cpu.weight' \
		'{"memory": {"limit": 67108864, "swap": 100663296}, "pids": {"limit": 50}, "cpu": {"quota": 50000, "period": 100000, "shares": 1024}}' || return 1
	kiln run --bundle "$T/b" r1
	[ "$krc" = 0 ] || { kiln_fail "run exited $krc"; return 1; }
	want=$(printf '67108864\n33554432\n50\n50000 100000\n39')
	[ "$(cat "$T/kout")" = "$want" ] ||
		{ kiln_fail "the container's cgroup files are '$(tr '\n' '|' <"$T/kout")', want '$(echo "$want" | tr '\n' '|')'"; return 1; }
	echo "    inside: memory.max 67108864, swap.max 32 MiB, pids.max 50, cpu.max 50000 100000, cpu.weight 39"
	kiln_nothing_left
}

test_kiln_res_refused_limit_names_field() {
	kiln_reset
	# no BFQ and no io.cost in the guest kernel: there is no io.weight
	kres_bundle "$T/b" 'true' '{"blockIO": {"weight": 500}}' || return 1
	kiln run --bundle "$T/b" w1
	[ "$krc" != 0 ] || { kiln_fail "a blkio weight the guest cannot apply was accepted"; return 1; }
	grep -q 'linux.resources.blockIO.weight' "$T/kerr" ||
		{ kiln_fail "the error does not name linux.resources.blockIO.weight"; return 1; }
	echo "    $(tail -n 1 "$T/kerr")"
	kiln delete --force w1
	kiln_nothing_left
}

test_kiln_res_pids_limit_stops_fork_bomb() {
	kiln_reset
	kres_bundle "$T/b" 'exec sleep 1000' '{"pids": {"limit": 16}}' || return 1
	kiln run --detach --bundle "$T/b" p1
	[ "$krc" = 0 ] || { kiln_fail "run --detach failed"; return 1; }
	# 40 sleeps where 16 pids are allowed, in a subshell (ash ends at a
	# failed fork); read, kill and echo are builtins: no fork needed at
	# the limit, and kill -1 spares the caller and the container's init
	kiln exec p1 sh -c '(i=0; while [ $i -lt 40 ]; do sleep 1000 & i=$((i+1)); done) 2>/dev/null
		read cur </sys/fs/cgroup/pids.current; read ev </sys/fs/cgroup/pids.events
		kill -9 -1; echo "current=$cur events=$ev"'
	line=$(grep current= "$T/kout")
	[ -n "$line" ] || { kiln_fail "no output from the bomb (exec status $krc)"; return 1; }
	cur=$(echo "$line" | sed -n 's/.*current=\([0-9]*\).*/\1/p')
	max=$(echo "$line" | sed -n 's/.*events=max \([0-9]*\).*/\1/p')
	[ -n "$cur" ] && [ "$cur" -le 16 ] ||
		{ kiln_fail "pids.current under the bomb is '$cur', limit 16 ($line)"; return 1; }
	[ -n "$max" ] && [ "$max" -gt 0 ] ||
		{ kiln_fail "pids.events shows no refused fork ($line)"; return 1; }
	echo "    bomb: pids.current $cur of 16, $max forks refused"
	# the agent still serves, the container still runs
	for _ in $(seq 50); do
		kiln exec p1 echo alive
		[ "$krc" = 0 ] && break
		sleep 0.2 # the killed sleeps leave the cgroup a moment later
	done
	[ "$(cat "$T/kout")" = alive ] || { kiln_fail "no exec after the bomb"; return 1; }
	[ "$(kiln_status p1)" = running ] || { kiln_fail "p1 is not running after the bomb"; return 1; }
	kiln delete --force p1
	kiln_nothing_left
}

test_kiln_res_oom_kills_the_process_not_the_agent() {
	kiln_reset
	kres_bundle "$T/b" 'exec memhog 200' '{"memory": {"limit": 67108864, "swap": 67108864}}' || return 1
	kiln run --bundle "$T/b" o1
	[ "$krc" = 137 ] || { kiln_fail "memhog 200 MiB under a 64 MiB limit exited $krc, want 137"; return 1; }
	# the same in an exec: the container and its agent live on
	kres_bundle "$T/b" 'exec sleep 1000' '{"memory": {"limit": 67108864, "swap": 67108864}}' || return 1
	kiln run --detach --bundle "$T/b" o2
	[ "$krc" = 0 ] || { kiln_fail "run --detach failed"; return 1; }
	kiln exec o2 memhog 200
	[ "$krc" = 137 ] || { kiln_fail "exec memhog 200 exited $krc, want 137"; return 1; }
	kiln exec o2 grep oom_kill /sys/fs/cgroup/memory.events
	kills=$(grep -x 'oom_kill [1-9][0-9]*' "$T/kout") ||
		{ kiln_fail "memory.events has no oom_kill: $(cat "$T/kout")"; return 1; }
	kiln exec o2 memhog 16
	[ "$krc" = 0 ] || { kiln_fail "memhog 16 MiB after the OOM kill exited $krc"; return 1; }
	[ "$(kiln_status o2)" = running ] || { kiln_fail "o2 is not running after the OOM kill"; return 1; }
	echo "    init and exec OOM-killed with 137; memory.events $kills; the agent serves on"
	kiln delete --force o1
	kiln delete --force o2
	kiln_nothing_left
}

test_kiln_res_update() {
	kiln_reset
	kres_bundle "$T/b" 'exec sleep 1000' '{"memory": {"limit": 67108864}, "pids": {"limit": 50}}' || return 1
	kiln run --detach --bundle "$T/b" u1
	[ "$krc" = 0 ] || { kiln_fail "run --detach failed"; return 1; }
	[ "$(kres_read u1 memory.max)" = 67108864 ] || { kiln_fail "memory.max before update"; return 1; }
	kiln update --memory 96M --pids-limit 70 --cpu-quota 20000 --cpu-period 100000 u1
	[ "$krc" = 0 ] || { kiln_fail "update --memory 96M failed"; return 1; }
	[ "$(kres_read u1 memory.max)" = 100663296 ] ||
		{ kiln_fail "memory.max after update --memory 96M is $(cat "$T/kout")"; return 1; }
	[ "$(kres_read u1 pids.max)" = 70 ] && [ "$(kres_read u1 cpu.max)" = "20000 100000" ] ||
		{ kiln_fail "pids.max or cpu.max after update: $(cat "$T/kout")"; return 1; }
	# containerd's runc shim: -r - with a LinuxResources object on stdin
	krc=0
	echo '{"memory": {"limit": 83886080}, "pids": {"limit": 30}, "cpu": {"quota": -1}}' |
		timeout 60 "$KILN" --root "$KROOT" update -r - u1 >"$T/kout" 2>"$T/kerr" || krc=$?
	[ "$krc" = 0 ] || { kiln_fail "update -r - failed"; return 1; }
	[ "$(kres_read u1 memory.max)" = 83886080 ] && [ "$(kres_read u1 pids.max)" = 30 ] &&
		[ "$(kres_read u1 cpu.max)" = "max 100000" ] ||
		{ kiln_fail "after update -r -: $(cat "$T/kout")"; return 1; }
	# beyond the VM (64 MiB + 64 MiB of overhead): refused, nothing changed
	kiln update --memory 1g u1
	[ "$krc" != 0 ] && grep -q "VM's memory" "$T/kerr" ||
		{ kiln_fail "update --memory 1g was not refused for the VM's size"; return 1; }
	echo "    $(tail -n 1 "$T/kerr")"
	[ "$(kres_read u1 memory.max)" = 83886080 ] || { kiln_fail "a refused update changed memory.max"; return 1; }
	kiln update --memory lots u1
	[ "$krc" != 0 ] && grep -q -- "--memory" "$T/kerr" || { kiln_fail "update --memory lots"; return 1; }
	kiln update --memory 96M nosuch
	[ "$krc" != 0 ] || { kiln_fail "update of an unknown id succeeded"; return 1; }
	kiln kill u1 KILL
	kiln_wait_status u1 30 stopped || { kiln_fail "u1 not stopped after KILL"; return 1; }
	kiln update --memory 96M u1
	[ "$krc" != 0 ] && grep -q stopped "$T/kerr" ||
		{ kiln_fail "update of a stopped container did not fail clearly"; return 1; }
	kiln delete u1
	kiln_nothing_left
}
