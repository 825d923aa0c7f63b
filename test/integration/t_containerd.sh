# containerd runs kiln two ways, each test with a private containerd whose
# config imports contrib/containerd/config.toml as written, with root,
# state and sockets in a tmpfs of its own:
# - test_containerd_runs_kiln: containerd's runc shim (io.containerd.runc.v2)
#   runs kiln, the snippet's CRI runtime "kiln" with BinaryName. ctr does
#   not read CRI's runtimes, so ctr gets the snippet's BinaryName with
#   --runc-binary: the same option the CRI plugin hands the runc shim. The
#   shim's runtime root is its default, /run/containerd/runc/<namespace>.
# - test_containerd_kiln_shim: kiln's own shim, containerd-shim-kiln-v2
#   (io.containerd.kiln.v2, the snippet's runtime "kiln-vm"), which
#   containerd finds on its PATH beside kiln in /usr/local/bin. It keeps
#   kiln's state under /run/kiln/shim/<namespace> (kiln --root).
# The same steps run against both (cdr picks the runtime from $CD_RT);
# the shim's own (events, restart, pods...) only against kiln's shim.

. "$TOP/test/integration/daemons.sh"

CONTAINERD=/usr/bin/containerd
CTR=/usr/bin/ctr
CD_SHIM=containerd-shim-kiln-v2
CD_NS=kiln-it
CD_IMG=docker.io/library/$DM_IMAGE
CD_STEPS=${KILN_CONTAINERD_STEPS:-config image output uname env_cwd stdin tty \
exec kill rm readonly_rootfs ro_bind rw_bind keep_writes metrics pause}
CD_SHIM_STEPS=${KILN_CONTAINERD_SHIM_STEPS:-image output uname env_cwd stdin \
tty exec kill rm readonly_rootfs ro_bind rw_bind keep_writes metrics \
pause pod events exec_events oom shim_gone restart kill9_shim}
# Set by each test: ctr run's runtime options, and the folder where that
# runtime keeps the state of our namespace's containers.
CD_RT=
CD_RTSTATE=

cdctl() {
	timeout -k 5 "$DM_LIMIT" "$CTR" --address "$DM_DIR/containerd.sock" \
		--namespace "$CD_NS" "$@"
}

# The runc-compatible binary: the snippet's BinaryName, or runc.
cd_binary() {
	if dm_kiln; then
		sed -n 's/^[[:space:]]*BinaryName[[:space:]]*=[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p' \
			"$TOP/contrib/containerd/config.toml"
	else
		command -v "$DM_RUNTIME"
	fi
}

# ctr run through the test's runtime
cdr() {
	# shellcheck disable=SC2086 # CD_RT: options, one a word
	cdctl run $CD_RT "$@"
}

# A task's status: RUNNING, STOPPED..., nothing without a task.
cd_status() { # ID
	cdctl task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'
}

# A task's pid as containerd has it
cd_pid() { # ID
	cdctl task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $2 }'
}

cd_gone() { # ID
	cdctl task rm -f "$1" >/dev/null 2>&1
	cdctl container rm "$1" >/dev/null 2>&1
}

# ---- steps -----------------------------------------------------------------

# containerd took the snippet: its CRI runtime "kiln" names kiln through
# the runc shim, and "kiln-vm" is kiln's own shim; the CRI plugin loaded
# with both.
cd_config() {
	grep -F 'Start cri plugin' "$DM_DIR/daemon.log" | grep -qF 'kiln-vm:{Type:io.containerd.kiln.v2' ||
		{ fail "containerd's CRI plugin did not start with the runtime kiln-vm"; grep -F 'io.containerd.grpc.v1.cri' "$DM_DIR/daemon.log" | tail -n 3 | cut -c1-300 | sed 's/^/      | /'; return 1; }
	drun timeout 60 "$CONTAINERD" --config "$DM_DIR/config.toml" config dump
	dm_expect_rc 0 || return 1
	grep -A3 'runtimes\.kiln\.options\]' "$T/dm.out" | grep -qF "BinaryName = \"$DM_KILN\"" ||
		{ dm_fail "containerd's merged config has no kiln runtime with BinaryName $DM_KILN"; return 1; }
	grep -A12 'runtimes\.kiln\]' "$T/dm.out" | grep -qF 'runtime_type = "io.containerd.runc.v2"' ||
		{ dm_fail "the kiln runtime is not the runc shim"; return 1; }
	grep -A12 'runtimes\.kiln-vm\]' "$T/dm.out" | grep -qF 'runtime_type = "io.containerd.kiln.v2"' ||
		{ dm_fail "containerd's merged config has no kiln-vm runtime of type io.containerd.kiln.v2"; return 1; }
	[ "$(cd_binary)" = "$CD_BIN" ] || fail "BinaryName is not $CD_BIN"
}

cd_image() {
	dm_oci_archive "$T/cd-image.tar" || { fail "cannot build the image archive"; return 1; }
	drun cdctl images import "$T/cd-image.tar"
	rm -f "$T/cd-image.tar"
	dm_expect_rc 0 || return 1
	drun cdctl images ls -q
	dm_out_has "$CD_IMG"
}

cd_output() {
	drun cdr --rm "$CD_IMG" out sh -c 'echo hi; echo oops >&2; exit 3'
	dm_expect_rc 3 && dm_out_is hi || return 1
	grep -qxF oops "$T/dm.err" || dm_fail "stderr lacks 'oops'"
}

cd_uname() {
	dm_kiln_only "the guest kernel" || return 0
	drun cdr --rm "$CD_IMG" un uname -r
	dm_expect_rc 0 || return 1
	[ -s "$T/dm.out" ] || { dm_fail "uname -r printed nothing"; return 1; }
	[ "$(cat "$T/dm.out")" != "$(uname -r)" ] ||
		dm_fail "uname -r inside is the host's ($(uname -r)): no guest kernel"
}

cd_env_cwd() {
	drun cdr --rm --env FOO=bar --env 'SPACED=a b' --cwd /tmp "$CD_IMG" ec \
		sh -c 'echo "$FOO"; echo "$SPACED"; pwd'
	dm_expect_rc 0 && dm_out_is bar "a b" /tmp
}

# ctr never closes the task's stdin (its FIFO stays open): read two lines.
cd_stdin() {
	printf 'data\nmore data\n' >"$T/cd.in"
	DM_IN=$T/cd.in drun cdr --rm "$CD_IMG" in head -n 2
	dm_expect_rc 0 && dm_out_is data "more data"
}

# -t under script, bounded: the terminal is 33x111 inside too (see
# DM_TTY_CHECK). script's stdin stays open (a FIFO held by a sleep): at
# its end script would send the terminal an EOF, which ctr passes on.
cd_tty() {
	rm -f "$T/cd.tty"
	mkfifo "$T/cd.tty"
	sleep 120 >"$T/cd.tty" &
	hold=$!
	DM_IN=$T/cd.tty drun script -qec "stty rows 33 cols 111; timeout --foreground -k 5 60 $CTR --address $DM_DIR/containerd.sock \
--namespace $CD_NS run $CD_RT --rm -t $CD_IMG tt \
sh -c '$DM_TTY_CHECK'" /dev/null
	kill "$hold" 2>/dev/null
	wait "$hold" 2>/dev/null
	rm -f "$T/cd.tty"
	cd_gone tt
	dm_expect_rc 5
}

cd_exec() {
	cd_gone ex
	drun cdr -d "$CD_IMG" ex sleep 1000
	dm_expect_rc 0 || return 1
	drun cdctl task exec --exec-id e1 ex sh -c 'echo in; echo err >&2; exit 4'
	r=0
	{ dm_expect_rc 4 && dm_out_is in; } || r=1
	printf 'to exec\n' >"$T/cd.in"
	DM_IN=$T/cd.in drun cdctl task exec --exec-id e2 --cwd /tmp ex sh -c 'cat; pwd'
	{ dm_expect_rc 0 && dm_out_is "to exec" /tmp; } || r=1
	cd_gone ex
	return $r
}

# ctr run's status is the task's: 137 when SIGKILL ends it.
cd_kill() {
	cd_gone kl
	cdr "$CD_IMG" kl sleep 1000 </dev/null >"$T/cd-kl.out" 2>&1 &
	rpid=$!
	dm_until 60 '[ "$(cd_status kl)" = RUNNING ]' || { fail "task kl never ran"; kill "$rpid"; wait "$rpid"; cd_gone kl; return 1; }
	drun cdctl task kill -s SIGKILL kl
	dm_expect_rc 0 || { kill "$rpid"; wait "$rpid"; cd_gone kl; return 1; }
	code=0
	wait "$rpid" || code=$?
	cd_gone kl
	[ "$code" = 137 ] || { fail "ctr run exited $code after SIGKILL, want 137"; sed 's/^/      | /' "$T/cd-kl.out"; return 1; }
}

cd_rm() {
	cd_gone gone
	# the image's layers in kiln's cache first (when rm runs alone)
	cdr --rm "$CD_IMG" warm true >/dev/null 2>&1
	DM_CACHE_BEFORE=$(dm_cache_list)
	drun cdr -d "$CD_IMG" gone sleep 1000
	dm_expect_rc 0 || return 1
	if dm_kiln; then
		dm_until 60 '[ -n "$(dm_vmms)" ]' || { fail "no kiln-vmm while the task runs"; cd_gone gone; return 1; }
	fi
	drun cdctl task rm -f gone
	dm_expect_rc 0 || { cd_gone gone; return 1; }
	drun cdctl container rm gone
	dm_expect_rc 0 || return 1
	cdctl container ls -q | grep -qx gone && { fail "ctr still lists it"; return 1; }
	dm_until 30 '[ -z "$(dm_vmms)" ]'
	dm_nothing_left gone "$CD_RTSTATE" "$DM_DIR/state"
}

cd_readonly_rootfs() {
	drun cdr --rm --read-only "$CD_IMG" ro sh -c 'cat /etc/passwd >/dev/null && touch /new'
	[ "$drc" -ne 0 ] && [ "$drc" -lt 124 ] ||
		{ dm_fail "a write to a --read-only rootfs: status $drc"; return 1; }
	grep -qi 'read-only' "$T/dm.err" || dm_fail "no read-only error"
}

cd_ro_bind() {
	mkdir -p "$DM_DIR/ro"
	echo hello >"$DM_DIR/ro/f"
	drun cdr --rm --mount "type=bind,src=$DM_DIR/ro,dst=/x,options=rbind:ro" "$CD_IMG" rb \
		sh -c 'cat /x/f; touch /x/g'
	[ "$drc" -ne 0 ] || { dm_fail "a write to a read-only bind mount succeeded"; return 1; }
	dm_out_has hello || return 1
	[ ! -e "$DM_DIR/ro/g" ] || fail "the host file appeared through a :ro mount"
}

cd_rw_bind() {
	dm_rw_bind_prepare
	drun cdr --rm --mount "type=bind,src=$DM_DIR/rw,dst=/rwmnt,options=rbind:rw" "$CD_IMG" wb \
		sh -c "$DM_RW_CMD"
	cd_gone wb
	dm_rw_bind_check
}

# The container (and its snapshot) outlives its task when ctr run has no
# --rm: a second task sees the first one's writes.
cd_keep_writes() {
	cd_gone kw
	drun cdr "$CD_IMG" kw sh -c 'cat /data 2>/dev/null || echo none; echo kept >/data'
	{ dm_expect_rc 0 && dm_out_is none; } || { cd_gone kw; return 1; }
	cdctl task rm kw >/dev/null 2>&1
	drun cdctl task start kw
	cd_gone kw
	dm_expect_rc 0 && dm_out_is kept
}

# ctr task metrics sees the VM's memory.
cd_metrics() {
	cd_gone mt
	drun cdr -d "$CD_IMG" mt sh -c 'while :; do :; done'
	dm_expect_rc 0 || return 1
	# the busy loop has run a little
	dm_until 30 '[ "$(cd_status mt)" = RUNNING ]'
	drun cdctl task metrics mt
	cd_gone mt
	dm_expect_rc 0 || return 1
	mem=$(awk '$1 == "memory.usage_in_bytes" || $1 == "memory.usage" { print $2 }' "$T/dm.out" | head -n 1)
	echo "      ctr task metrics: memory $mem"
	[ -n "$mem" ] && [ "$mem" != 0 ] || dm_fail "no non-zero memory usage"
}

# ---- kiln's shim only ------------------------------------------------------

# The shim server of container ID: its command line has -id ID (the
# oldest such process, should it have children of its own).
cd_shim_pid() { # ID
	pgrep -o -f "$CD_SHIM.*-id $1( |\$)"
}

# Shim sockets (containerd puts them there whatever its config says).
cd_sockets() {
	find /run/containerd/s -maxdepth 1 -type s 2>/dev/null | sort
}

# Mount points of container ID (its bundle's rootfs...): none once it is gone.
cd_mounts_of() { # ID
	awk -v id="$1" '$5 ~ "/" id "(/|$)" { print $5 }' /proc/self/mountinfo
}

# ctr events in the background into $T/cd-events (one line per event:
# time, namespace, topic, the event as JSON), ready once it printed an
# event of ours: a namespace label, nothing to do with a task.
cd_events_start() {
	: >"$T/cd-events"
	timeout -k 5 600 "$CTR" --address "$DM_DIR/containerd.sock" --namespace "$CD_NS" \
		events >"$T/cd-events" 2>&1 &
	CD_EVPID=$!
	dm_until 60 'cdctl namespaces label "$CD_NS" kiln-it-sync=$RANDOM && grep -q " /namespaces/update " "$T/cd-events"' ||
		{ fail "ctr events printed no event within 60 s"; cd_events_stop; return 1; }
}

cd_events_stop() {
	kill "$CD_EVPID" 2>/dev/null
	wait "$CD_EVPID" 2>/dev/null
}

# The topics of the events whose line matches PATTERN (grep -E), in order.
cd_topics() { # PATTERN
	grep -E -- "$1" "$T/cd-events" |
		awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\/[a-z]+\//) { print $i; next } }'
}

# Those topics include the given ones in this order (others may come between).
cd_topics_in_order() { # PATTERN TOPIC...
	pat=$1
	shift
	got=" $(cd_topics "$pat" | paste -sd' ') "
	rest=$got
	for want in "$@"; do
		case "$rest" in
		*" $want "*) rest=" ${rest#*" $want "}" ;;
		*)
			fail "events: no $want after the ones before it; want in order: $*; got:$got"
			sed 's/^/      ev| /' "$T/cd-events" | tail -n 20
			return 1
			;;
		esac
	done
	echo "      events:$got"
}

# A task's life as events: create, start, exit with its status, delete.
cd_events() {
	cd_gone ev
	cd_events_start || return 1
	drun cdr --rm "$CD_IMG" ev sh -c 'exit 3'
	# the shim sends its events on their own: they may come after ctr ends
	dm_until 30 'cd_topics "\"container_id\":\"ev\"" | grep -qx /tasks/delete'
	cd_events_stop
	dm_expect_rc 3 || return 1
	cd_topics_in_order '"container_id":"ev"' /tasks/create /tasks/start /tasks/exit /tasks/delete ||
		return 1
	grep -E ' /tasks/exit .*"container_id":"ev"' "$T/cd-events" | grep -qF '"exit_status":3' || {
		fail "no /tasks/exit event of ev with exit_status 3"
		grep -F ' /tasks/' "$T/cd-events" | sed 's/^/      ev| /' | tail -n 10
		return 1
	}
}

# An OOM kill in the guest: the task ends with 137, and /tasks/oom comes
# before its /tasks/exit (the CRI reads it as the reason: OOMKilled).
cd_oom() {
	cd_gone om
	cd_events_start || return 1
	drun cdr --rm --memory-limit 67108864 "$CD_IMG" om sh -c 'tail /dev/zero'
	dm_until 30 'cd_topics "\"container_id\":\"om\"" | grep -qx /tasks/delete'
	cd_events_stop
	dm_expect_rc 137 || return 1
	cd_topics_in_order '"container_id":"om"' /tasks/start /tasks/oom /tasks/exit /tasks/delete
}

# An exec's life as events: added, started, its exit (id: the exec's).
cd_exec_events() {
	cd_gone xe
	drun cdr -d "$CD_IMG" xe sleep 1000
	dm_expect_rc 0 || { cd_gone xe; return 1; }
	cd_events_start || { cd_gone xe; return 1; }
	drun cdctl task exec --exec-id xe1 xe sh -c 'exit 4'
	dm_until 30 'cd_topics "\"(exec_id|id)\":\"xe1\"" | grep -qx /tasks/exit'
	cd_events_stop
	cd_gone xe
	dm_expect_rc 4 || return 1
	cd_topics_in_order '"(exec_id|id)":"xe1"' /tasks/exec-added /tasks/exec-started /tasks/exit ||
		return 1
	grep -E ' /tasks/exit .*"id":"xe1"' "$T/cd-events" | grep -qF '"exit_status":4' || {
		fail "no /tasks/exit event of exec xe1 with exit_status 4"
		grep -F ' /tasks/' "$T/cd-events" | sed 's/^/      ev| /' | tail -n 10
		return 1
	}
	grep -qF '"container_id":"xe"' "$T/cd-events" ||
		fail "the exec's events do not name container xe"
}

# A deleted task leaves no shim behind: no process, no socket, no VMM.
# Its socket: the one new under /run/containerd/s while it runs, and the
# one its bundle's address file names (containerd reads that file to
# reconnect after a restart).
cd_shim_gone() {
	cd_gone sg
	before=$(cd_sockets)
	cdr --rm "$CD_IMG" sg sh -c 'sleep 10' </dev/null >"$T/cd-sg.out" 2>&1 &
	rpid=$!
	r=0
	dm_until 90 '[ "$(cd_status sg)" = RUNNING ]' || { fail "task sg never ran"; r=1; }
	seen=$(cd_shim_pid sg)
	[ -n "$seen" ] || { fail "no $CD_SHIM process with -id sg while its task ran"; r=1; }
	socks=$( (comm -13 <(printf '%s\n' "$before") <(cd_sockets)
		sed -n 's|^unix://||p' "$DM_DIR/state/io.containerd.runtime.v2.task/$CD_NS/sg/address" 2>/dev/null) |
		sed '/^$/d' | sort -u)
	echo "      shim $seen, socket: ${socks:-none found}"
	code=0
	wait "$rpid" || code=$?
	[ "$code" = 0 ] || { fail "ctr run exited $code, want 0"; sed 's/^/      | /' "$T/cd-sg.out"; r=1; }
	[ "$r" = 0 ] || { cd_gone sg; return 1; }
	dm_until 30 '[ -z "$(cd_shim_pid sg)" ]' ||
		{ fail "$CD_SHIM of sg still running after ctr run --rm: $(ps -o pid=,args= -p "$(cd_shim_pid sg)")"; return 1; }
	for sock in $socks; do
		[ ! -e "$sock" ] || { fail "the shim's socket $sock is still there"; return 1; }
	done
	dm_until 30 '[ -z "$(dm_vmms)" ]' || { fail "kiln-vmm still running: $(dm_vmms)"; return 1; }
	[ -z "$(cd_mounts_of sg)" ] || { fail "still mounted: $(cd_mounts_of sg | paste -sd' ')"; return 1; }
	[ ! -e "$CD_RTSTATE/sg" ] || fail "$CD_RTSTATE/sg is still there"
}

# A task outlives containerd: stopped (SIGTERM) and started again on the
# same config and state, it finds the task running, the same pid and
# shim, can exec in it, and gets the shim's events.
cd_restart() {
	cd_gone rs
	drun cdr -d "$CD_IMG" rs sleep 1000
	dm_expect_rc 0 || { cd_gone rs; return 1; }
	dm_until 60 '[ "$(cd_status rs)" = RUNNING ]' || { fail "task rs never ran"; cd_gone rs; return 1; }
	tpid=$(cd_pid rs)
	shim=$(cd_shim_pid rs)
	cd_down 30 || { fail "containerd did not stop within 30 s of SIGTERM"; return 1; }
	[ -n "$(cd_shim_pid rs)" ] || { fail "the shim of rs ended with containerd"; cd_up; cd_gone rs; return 1; }
	cd_up || return 1
	r=0
	st=$(cd_status rs)
	[ "$st" = RUNNING ] || { fail "after containerd's restart, task rs is '$st', want RUNNING"; cdctl task ls | sed 's/^/      | /'; r=1; }
	[ "$(cd_pid rs)" = "$tpid" ] || { fail "task rs had pid $tpid, now '$(cd_pid rs)'"; r=1; }
	[ "$(cd_shim_pid rs)" = "$shim" ] || { fail "the shim of rs was $shim, now '$(cd_shim_pid rs)'"; r=1; }
	# the shim's events reach the new containerd
	cd_events_start || r=1
	drun cdctl task exec --exec-id r1 rs sh -c 'echo alive'
	{ dm_expect_rc 0 && dm_out_is alive; } || r=1
	drun cdctl task kill -s SIGKILL rs
	dm_expect_rc 0 || r=1
	dm_until 60 '[ "$(cd_status rs)" = STOPPED ]' || { fail "task rs not STOPPED after SIGKILL: '$(cd_status rs)'"; r=1; }
	drun cdctl task rm rs
	dm_expect_rc 0 || r=1
	dm_until 30 'cd_topics "\"container_id\":\"rs\"" | grep -qx /tasks/delete'
	cd_events_stop
	cd_gone rs
	cd_topics_in_order '"container_id":"rs"' /tasks/exec-added /tasks/exec-started /tasks/exit \
		/tasks/exit /tasks/delete || r=1
	grep -E ' /tasks/exit .*"id":"rs"' "$T/cd-events" | grep -qF '"exit_status":137' ||
		{ fail "no /tasks/exit event of rs with exit_status 137 after the restart"; r=1; }
	dm_until 30 '[ -z "$(dm_vmms)" ]' || { fail "kiln-vmm still running: $(dm_vmms)"; r=1; }
	return $r
}

# The shim killed (SIGKILL) under a running task: containerd cleans up
# through the shim binary's delete, and nothing of the container is left.
# containerd may have removed the task on its own before ctr task rm -f
# comes: "not found" then is its answer.
cd_kill9_shim() {
	cd_gone k9
	drun cdr -d "$CD_IMG" k9 sleep 1000
	dm_expect_rc 0 || { cd_gone k9; return 1; }
	dm_until 60 '[ "$(cd_status k9)" = RUNNING ]' || { fail "task k9 never ran"; cd_gone k9; return 1; }
	# its image's layers are in kiln's cache by now
	DM_CACHE_BEFORE=$(dm_cache_list)
	shim=$(cd_shim_pid k9)
	[ -n "$shim" ] || { fail "no $CD_SHIM process with -id k9"; cd_gone k9; return 1; }
	if dm_kiln && [ -z "$(dm_vmms)" ]; then
		fail "no kiln-vmm while the task runs"
		cd_gone k9
		return 1
	fi
	kill -9 "$shim"
	drun cdctl task rm -f k9
	[ "$drc" = 0 ] || grep -q 'not found' "$T/dm.err" ||
		{ dm_fail "ctr task rm -f: exit status $drc"; cd_gone k9; return 1; }
	drun cdctl container rm k9
	dm_expect_rc 0 || { cd_gone k9; return 1; }
	dm_until 30 '[ -z "$(dm_vmms)" ]' || { fail "kiln-vmm still running after the shim's SIGKILL and rm: $(dm_vmms)"; return 1; }
	# containerd cleans up after a dead shim on its own time
	dm_until 30 '[ ! -e "$CD_RTSTATE/k9" ]' ||
		{ fail "$CD_RTSTATE/k9 is still there: $(ls -A "$CD_RTSTATE/k9" | paste -sd' ')"; return 1; }
	dm_until 30 '[ -z "$(cd_mounts_of k9)" ]' || { fail "still mounted: $(cd_mounts_of k9 | paste -sd' ')"; return 1; }
	[ -z "$(cd_shim_pid k9)" ] || { fail "a $CD_SHIM with -id k9 is running again"; return 1; }
	dm_nothing_left k9 "$CD_RTSTATE" "$DM_DIR/state"
}

# CPU time (clock ticks) a process has used
cd_cpu() { # PID
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# ctr task pause / resume: the VM stops whole (its kiln-vmm uses no CPU
# time while the guest's busy loop is paused) and runs again;
# /tasks/paused and /tasks/resumed.
cd_pause() {
	cd_gone ps
	drun cdr -d "$CD_IMG" ps sh -c 'while :; do :; done'
	dm_expect_rc 0 || { cd_gone ps; return 1; }
	dm_until 60 '[ "$(cd_status ps)" = RUNNING ]' || { fail "task ps never ran"; cd_gone ps; return 1; }
	vmm=
	if dm_kiln; then
		vmm=$(dm_vmms)
		[ "$(echo "$vmm" | wc -w)" = 1 ] || { fail "want one kiln-vmm, have: $vmm"; cd_gone ps; return 1; }
	fi
	cd_events_start || { cd_gone ps; return 1; }
	r=0
	drun cdctl task pause ps
	dm_expect_rc 0 || r=1
	[ "$(cd_status ps)" = PAUSED ] || { fail "task ps is '$(cd_status ps)' after pause, want PAUSED"; r=1; }
	if [ -n "$vmm" ]; then
		t0=$(cd_cpu "$vmm")
		sleep 3
		t1=$(cd_cpu "$vmm")
		echo "      kiln-vmm: $((t1 - t0)) ticks in 3 s paused"
		[ $((t1 - t0)) -lt 30 ] || { fail "kiln-vmm used $((t1 - t0)) clock ticks in 3 s while paused"; r=1; }
	fi
	drun cdctl task resume ps
	dm_expect_rc 0 || r=1
	[ "$(cd_status ps)" = RUNNING ] || { fail "task ps is '$(cd_status ps)' after resume, want RUNNING"; r=1; }
	if [ -n "$vmm" ]; then
		t0=$(cd_cpu "$vmm")
		sleep 3
		t1=$(cd_cpu "$vmm")
		echo "      kiln-vmm: $((t1 - t0)) ticks in 3 s resumed"
		[ $((t1 - t0)) -ge 30 ] || { fail "kiln-vmm used only $((t1 - t0)) clock ticks in 3 s of a busy loop after resume"; r=1; }
	fi
	drun cdctl task exec --exec-id p1 ps sh -c 'echo awake'
	{ dm_expect_rc 0 && dm_out_is awake; } || r=1
	dm_until 30 'cd_topics "\"container_id\":\"ps\"" | grep -qx /tasks/resumed'
	cd_events_stop
	cd_gone ps
	cd_topics_in_order '"container_id":"ps"' /tasks/paused /tasks/resumed || r=1
	return $r
}

# ---- a pod, as the CRI plugin starts one ------------------------------------

CD_CRI_TYPE=io.kubernetes.cri.container-type
CD_CRI_SANDBOX=io.kubernetes.cri.sandbox-id
# ids with a prefix of their own: dm_nothing_left looks for files by it
CD_POD=pod-sb
CD_POD_MEMBERS="pod-a pod-b pod-x pod-y"

# ctr run -d of the pod's sandbox, with the CRI plugin's annotations.
cd_pod_sandbox() { # CMD...
	drun cdr -d --annotation "$CD_CRI_TYPE=sandbox" --annotation "$CD_CRI_SANDBOX=$CD_POD" \
		"$CD_IMG" "$CD_POD" "$@"
}

# ctr run of a container of the pod (-d, or --rm to wait for it), in the
# sandbox's network namespace as the CRI plugin asks for it: the sandbox
# task's pid's.
cd_pod_member() { # -d|--rm ID CMD...
	how=$1
	id=$2
	shift 2
	drun cdr "$how" --annotation "$CD_CRI_TYPE=container" --annotation "$CD_CRI_SANDBOX=$CD_POD" \
		--with-ns "network:/proc/$(cd_pid "$CD_POD")/ns/net" "$CD_IMG" "$id" "$@"
}

cd_pod_gone() {
	for c in $CD_POD_MEMBERS $CD_POD; do
		cd_gone "$c"
	done
}

# kiln's shim servers of this containerd: not a `start` or `delete` that
# is running, nor their children (kiln and its pid processes).
cd_shims() {
	for p in $(pgrep -f "$CD_SHIM -namespace $CD_NS "); do
		grep -qzxF "KILN_DM_RUN=$DM_DIR" "/proc/$p/environ" 2>/dev/null || continue
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qE ' (start|delete) $' && continue
		echo "$p"
	done
}

# The socket of the shim that serves task ID, from its bundle's address file.
cd_address() { # ID
	cat "$DM_DIR/state/io.containerd.runtime.v2.task/$CD_NS/$1/address" 2>/dev/null
}

# ctr task rm ID: the task's exit status in $CD_EXIT (ctr warns of a
# non-zero one, and exits 0).
cd_task_rm() { # ID
	CD_EXIT=
	drun cdctl task rm "$1"
	dm_expect_rc 0 || return 1
	CD_EXIT=$(sed -n 's/.*task [^ ]* exit with non-zero exit code \([0-9]*\).*/\1/p' "$T/dm.err" | head -n 1)
	CD_EXIT=${CD_EXIT:-0}
}

# The guest's processes as container ID sees them: one command line a line.
cd_ps_in() { # ID EXEC-ID
	drun cdctl task exec --exec-id "$2" "$1" \
		sh -c 'for f in /proc/[0-9]*/cmdline; do tr "\0" " " <"$f"; echo; done'
}

# A pod of three: its sandbox and two containers in one VM and one shim;
# the containers share the pod's network, and neither sees the other's
# processes. A third container exits with its status, and goes (task and
# container) while the pod runs on; a fourth takes its drive slots. KILL
# of the sandbox ends its containers (137); once all is removed, nothing
# is left: shim, socket, kiln-vmm, mounts, kiln's state.
cd_pod() {
	cd_pod_gone
	before=$(cd_sockets)
	cd_pod_sandbox sleep 1000
	dm_expect_rc 0 || { cd_pod_gone; return 1; }
	dm_until 60 '[ "$(cd_status $CD_POD)" = RUNNING ]' || { fail "task $CD_POD never ran"; cd_pod_gone; return 1; }
	cd_pod_member -d pod-a sleep 1001
	dm_expect_rc 0 || { cd_pod_gone; return 1; }
	cd_pod_member -d pod-b sleep 1002
	dm_expect_rc 0 || { cd_pod_gone; return 1; }
	# the image's layers are in kiln's cache by now
	DM_CACHE_BEFORE=$(dm_cache_list)
	r=0
	for c in pod-a pod-b; do
		dm_until 30 '[ "$(cd_status $c)" = RUNNING ]' || { fail "task $c is '$(cd_status $c)', want RUNNING"; r=1; }
	done
	vmms=$(dm_vmms)
	[ "$(echo "$vmms" | wc -w)" = 1 ] || { fail "want one kiln-vmm for the pod, have: ${vmms:-none}"; r=1; }
	shims=$(cd_shims)
	[ "$(echo "$shims" | wc -w)" = 1 ] && [ "$shims" = "$(cd_shim_pid $CD_POD)" ] || {
		fail "want one $CD_SHIM, the sandbox's, for the pod; have: $(for p in $shims; do
			tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-120; echo ';'; done)"
		r=1
	}
	addr=$(cd_address $CD_POD)
	for c in pod-a pod-b; do
		[ -n "$addr" ] && [ "$(cd_address $c)" = "$addr" ] ||
			{ fail "task $c's shim is at '$(cd_address $c)', the sandbox's at '$addr'"; r=1; }
	done
	echo "      pod: kiln-vmm $vmms, shim $shims, $addr"
	[ "$r" = 0 ] || { cd_pod_gone; return 1; }

	# one network; pid namespaces apart
	nets=
	for c in $CD_POD pod-a pod-b; do
		drun cdctl task exec --exec-id n1 "$c" readlink /proc/self/ns/net
		{ dm_expect_rc 0 && [ -s "$T/dm.out" ]; } || { fail "no network namespace in $c"; cd_pod_gone; return 1; }
		nets="$nets $(cat "$T/dm.out")"
	done
	[ "$(echo "$nets" | tr ' ' '\n' | sed '/^$/d' | sort -u | wc -l)" = 1 ] ||
		{ fail "the pod's containers do not share one network: sandbox, pod-a, pod-b:$nets"; r=1; }
	for c in pod-a:1001:1002 pod-b:1002:1001; do
		IFS=: read -r id mine theirs <<<"$c"
		cd_ps_in "$id" p1
		dm_expect_rc 0 || { r=1; continue; }
		grep -q "^sleep $mine " "$T/dm.out" ||
			{ dm_fail "$id does not see its own sleep $mine"; r=1; }
		grep -qE "^sleep ($theirs|1000) " "$T/dm.out" &&
			{ dm_fail "$id sees another container's processes"; r=1; }
	done
	echo "      network $(echo "$nets" | cut -d' ' -f2) shared, processes apart"
	[ "$r" = 0 ] || { cd_pod_gone; return 1; }

	# a container that ends: its status, then rm while the pod runs on
	cd_pod_member -d pod-x sh -c 'exit 7'
	dm_expect_rc 0 || { cd_pod_gone; return 1; }
	dm_until 30 '[ "$(cd_status pod-x)" = STOPPED ]' ||
		{ fail "task pod-x is '$(cd_status pod-x)' after its exit, want STOPPED"; cd_pod_gone; return 1; }
	cd_task_rm pod-x || { cd_pod_gone; return 1; }
	[ "$CD_EXIT" = 7 ] || { dm_fail "pod-x's task ended with $CD_EXIT, want 7"; r=1; }
	drun cdctl container rm pod-x
	dm_expect_rc 0 || r=1
	for c in $CD_POD pod-a pod-b; do
		[ "$(cd_status $c)" = RUNNING ] || { fail "task $c is '$(cd_status $c)' after pod-x went, want RUNNING"; r=1; }
	done
	[ -z "$(cd_mounts_of pod-x)" ] || { fail "still mounted: $(cd_mounts_of pod-x | paste -sd' ')"; r=1; }
	[ ! -e "$CD_RTSTATE/pod-x" ] || { fail "$CD_RTSTATE/pod-x is still there"; r=1; }
	# its drive slots back: one more container fits (3 at a time)
	cd_pod_member --rm pod-y sh -c 'echo in pod; exit 5'
	{ dm_expect_rc 5 && dm_out_is "in pod"; } || r=1
	drun cdctl task exec --exec-id a1 pod-a sh -c 'echo alive'
	{ dm_expect_rc 0 && dm_out_is alive; } || r=1
	[ "$r" = 0 ] || { cd_pod_gone; return 1; }

	# the sandbox's KILL ends the pod
	drun cdctl task kill -s SIGKILL $CD_POD
	dm_expect_rc 0 || { cd_pod_gone; return 1; }
	for c in $CD_POD pod-a pod-b; do
		dm_until 60 '[ "$(cd_status $c)" = STOPPED ]' ||
			{ fail "task $c is '$(cd_status $c)' 60 s after the sandbox's KILL, want STOPPED"; r=1; }
	done
	[ "$r" = 0 ] || { cd_pod_gone; return 1; }
	for c in pod-a pod-b $CD_POD; do
		cd_task_rm $c || { r=1; continue; }
		[ "$CD_EXIT" = 137 ] || { fail "task $c ended with $CD_EXIT, want 137"; r=1; }
		drun cdctl container rm $c
		dm_expect_rc 0 || r=1
	done
	[ "$r" = 0 ] || { cd_pod_gone; return 1; }

	# nothing left
	dm_until 30 '[ -z "$(cd_shims)" ]' ||
		{ fail "$CD_SHIM still running: $(cd_shims | paste -sd' ')"; return 1; }
	[ -z "$addr" ] || [ ! -e "${addr#unix://}" ] || { fail "the shim's socket ${addr#unix://} is still there"; return 1; }
	[ -z "$(comm -13 <(printf '%s\n' "$before") <(cd_sockets))" ] ||
		{ fail "new shim sockets left: $(comm -13 <(printf '%s\n' "$before") <(cd_sockets) | paste -sd' ')"; return 1; }
	dm_until 30 '[ -z "$(dm_vmms)" ]' || { fail "kiln-vmm still running: $(dm_vmms)"; return 1; }
	for c in $CD_POD $CD_POD_MEMBERS; do
		[ -z "$(cd_mounts_of $c)" ] || { fail "still mounted: $(cd_mounts_of $c | paste -sd' ')"; return 1; }
		[ ! -e "$CD_RTSTATE/$c" ] || { fail "$CD_RTSTATE/$c is still there: $(ls -A "$CD_RTSTATE/$c" | paste -sd' ')"; return 1; }
		dm_nothing_left $c "$CD_RTSTATE" "$DM_DIR/state" || return 1
	done
}

# ---- the tests -------------------------------------------------------------

# Start containerd on $DM_DIR/config.toml (written on the first call). Its
# pid goes to $DM_DIR/containerd.pid too: a step that restarts it runs in
# a subshell, and cd_cleanup must stop the new one. A log from before
# is kept as daemon.log.1.
cd_up() {
	[ -f "$DM_DIR/config.toml" ] || cat >"$DM_DIR/config.toml" <<EOF
version = 2
root = "$DM_DIR/root"
state = "$DM_DIR/state"
imports = ["$TOP/contrib/containerd/config.toml"]

[grpc]
  address = "$DM_DIR/containerd.sock"

[ttrpc]
  address = "$DM_DIR/containerd.sock.ttrpc"
EOF
	[ ! -f "$DM_DIR/daemon.log" ] || cat "$DM_DIR/daemon.log" >>"$DM_DIR/daemon.log.1"
	t0=$(date +%s.%N)
	dm_spawn "$CONTAINERD" --config "$DM_DIR/config.toml"
	echo "$DM_PID" >"$DM_DIR/containerd.pid"
	if ! dm_until 60 'cdctl version'; then
		fail "containerd did not answer within 60 s"
		dm_log_tail 20
		return 1
	fi
	echo "    containerd up in $(echo "$(date +%s.%N) - $t0" | bc) s"
}

# gone, or a zombie (its parent may be a shell busy elsewhere)
cd_dead() { # PID
	[ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# Stop containerd alone: SIGTERM, SIGKILL after $1 s (false then). Its
# shims and their tasks stay.
cd_down() { # [SECONDS]
	local pid r=0
	pid=$(cat "$DM_DIR/containerd.pid" 2>/dev/null)
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	if ! dm_until "${1:-30}" "cd_dead $pid"; then
		r=1
		kill -KILL "$pid" 2>/dev/null
		dm_until 10 "cd_dead $pid"
	fi
	wait "$pid" 2>/dev/null
	rm -f "$DM_DIR/containerd.pid"
	DM_PID=
	return $r
}

# KILN_CONTAINERD_LOG=FILE keeps containerd's whole log (the shims' stderr
# is in it), appended to FILE: in the test bed, a file under TESTBED_JOB.
cd_cleanup() {
	if [ -n "$DM_DIR" ] && [ -S "$DM_DIR/containerd.sock" ]; then
		for c in $(DM_LIMIT=30 cdctl container ls -q 2>/dev/null); do
			DM_LIMIT=60 cd_gone "$c"
		done
		DM_LIMIT=30 cdctl images rm "$CD_IMG" >/dev/null 2>&1
	fi
	[ -z "$DM_DIR" ] || cd_down 20
	# kiln's warm templates of the runtime's root outlive the containers
	! dm_kiln || [ -z "$CD_RTSTATE" ] ||
		"$DM_KILN" --root "$CD_RTSTATE" templates --rm >/dev/null 2>&1
	if [ -n "${KILN_CONTAINERD_LOG:-}" ] && [ -n "$DM_DIR" ]; then
		echo "==== $(date -u +%T) ${CD_RT:-}" >>"$KILN_CONTAINERD_LOG"
		cat "$DM_DIR/daemon.log.1" "$DM_DIR/daemon.log" >>"$KILN_CONTAINERD_LOG" 2>/dev/null
	fi
	dm_stop 20
	[ -z "$CD_RTSTATE" ] || rm -rf "$CD_RTSTATE" 2>/dev/null
}

# A private containerd, the steps, cleanup.
cd_test() { # STEP...
	CD_BIN=$(cd_binary)
	[ -n "$CD_BIN" ] || { fail "no BinaryName in contrib/containerd/config.toml"; return 1; }
	dm_mkdir containerd || return 1
	trap cd_cleanup EXIT
	cd_up || { cd_cleanup; return 1; }
	r=0
	DM_FATAL=image dm_steps cd "$@" || r=1
	[ "$r" -eq 0 ] || dm_log_tail 15
	cd_cleanup
	trap - EXIT
	return $r
}

test_containerd_runs_kiln() {
	dm_need "$CONTAINERD" "$CTR" /usr/bin/containerd-shim-runc-v2 /usr/bin/script || return 1
	dm_install || return 1
	CD_RT="--runtime io.containerd.runc.v2 --runc-binary $(cd_binary)"
	CD_RTSTATE=/run/containerd/runc/$CD_NS
	# shellcheck disable=SC2086 # one step a word
	cd_test $CD_STEPS
}

test_containerd_kiln_shim() {
	dm_kiln_only "kiln's shim" || return 0
	dm_need "$CONTAINERD" "$CTR" /usr/bin/script || return 1
	dm_install || return 1
	# containerd looks for containerd-shim-kiln-v2 on its PATH
	s=$(command -v "$CD_SHIM")
	[ "$s" = "$DM_PREFIX/bin/$CD_SHIM" ] ||
		{ fail "$CD_SHIM on PATH is '$s', want $DM_PREFIX/bin/$CD_SHIM (make install; PATH=$PATH)"; return 1; }
	CD_RT="--runtime io.containerd.kiln.v2"
	CD_RTSTATE=/run/kiln/shim/$CD_NS
	# shellcheck disable=SC2086 # one step a word
	cd_test $CD_SHIM_STEPS
}
