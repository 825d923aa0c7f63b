# The Firecracker-compatible API, driven with curl alone: configure,
# start, metrics, pause/resume, drive hot-swap, balloon, Ctrl+Alt+Del,
# bad requests, and GET /vm/config fed back as --config-file.

API_CMDLINE="console=ttyS0 reboot=k panic=1 quiet"

# One request: status code in $code, body in $T/api.body and $body; curl's
# exit status in $curl_rc (7: no one listens, 28: no answer in time).
api() { # METHOD PATH [JSON]
	curl_rc=0
	if [ $# -ge 3 ]; then
		code=$(curl -s -m 10 -o "$T/api.body" -w '%{http_code}' \
			--unix-socket "$T/api.sock" -X "$1" \
			-H 'Content-Type: application/json' -d "$3" \
			"http://localhost$2") || { curl_rc=$?; code=000; }
	else
		code=$(curl -s -m 10 -o "$T/api.body" -w '%{http_code}' \
			--unix-socket "$T/api.sock" -X "$1" \
			"http://localhost$2") || { curl_rc=$?; code=000; }
	fi
	body=$(cat "$T/api.body" 2>/dev/null)
}

# Why a request got no answer at all: a hung VMM and one that is gone (its
# VMM_TIMEOUT ran out: 124) both look like "status 000" to curl.
api_why_none() {
	echo "curl exit $curl_rc"
	if [ -n "${api_pid:-}" ] && kill -0 "$api_pid" 2>/dev/null &&
		[ "$(awk '{ print $3 }' "/proc/$api_pid/stat" 2>/dev/null)" != Z ]; then
		echo "the VMM is still running"
	else
		st=0
		wait "$api_pid" 2>/dev/null || st=$?
		echo "the VMM is gone, status $st (124: killed by VMM_TIMEOUT)"
		tail -n 5 "$T/err" 2>/dev/null
	fi
}

# A request that must answer WANT.
api_ok() { # WANT METHOD PATH [JSON]
	want=$1
	shift
	api "$@"
	[ "$code" = "$want" ] || {
		fail "$1 $2: status $code, want $want: $body"
		[ "$code" != 000 ] || api_why_none
		return 1
	}
}

# A request that must fail with 400 and a fault_message containing TEXT:
# the body is exactly {"fault_message":"..."} with a non-empty message.
api_fault() { # TEXT METHOD PATH [JSON]
	text=$1
	shift
	api "$@"
	[ "$code" = 400 ] ||
		{ fail "$1 $2: status $code, want 400: $body"; return 1; }
	printf '%s' "$body" | grep -qE '^\{ *"fault_message" *: *"([^"\\]|\\.)+" *\}$' ||
		{ fail "$1 $2: not a fault_message body: $body"; return 1; }
	printf '%s' "$body" | grep -qiF -- "$text" ||
		{ fail "$1 $2: fault_message lacks '$text': $body"; return 1; }
}

# A flat value of $body's JSON object: json_get state.
json_get() { # KEY
	printf '%s' "$body" | sed -n 's/.*"'"$1"'" *: *"\{0,1\}\([^",}]*\).*/\1/p'
}

# Start kiln-vmm with --api-sock in the background; wait until it answers.
api_start() { # [KILN-VMM ARGS...]
	rm -f "$T/api.sock" "$T/out" "$T/err"
	# Only a backstop: the tests' own waits catch a hang, and a failed
	# test's VMM is killed. In the nested test bed under load, the start,
	# metrics, pause test reaches its pause 30 to 80 s after the VMM
	# started (its python3 check alone takes 8 to 25 s); 120 s killed
	# the VMM before the pause, which curl saw as "status 000".
	timeout -k 5 "${VMM_TIMEOUT:-600}" "$VMM" --api-sock "$T/api.sock" "$@" \
		>"$T/out" 2>"$T/err" &
	api_pid=$!
	for _ in $(seq 100); do
		api GET /
		[ "$code" = 200 ] && return 0
		sleep 0.05
	done
	fail "the API socket never answered"
	cat "$T/err"
	return 1
}

# The background VMM's pid (api_pid is timeout(1)'s: kiln-vmm is its child).
api_vmm() {
	pgrep -P "$api_pid" -x kiln-vmm
}

# Wait for the background VMM to end: its status in $rc.
api_wait() {
	rc=0
	wait "$api_pid" || rc=$?
	crlf "$T/out"
}

# The pre-boot configuration of a guest running /tests/$1.sh.
api_configure() { # SCRIPT [MEM-MIB]
	api_ok 204 PUT /boot-source "{\"kernel_image_path\": \"$GUEST/vmlinux\",
		\"initrd_path\": \"$GUEST/initramfs\",
		\"boot_args\": \"$API_CMDLINE kiln.script=/tests/$1.sh\"}" &&
		api_ok 204 PUT /machine-config \
			"{\"vcpu_count\": 1, \"mem_size_mib\": ${2:-128}}"
}

ticks() {
	grep -c '^TICK' "$T/out" 2>/dev/null || true
}

# ms of CPU (user + system) the process has used.
cpu_ms() { # PID
	awk '{ print int(($14 + $15) * 1000 / '"$(getconf CLK_TCK)"') }' "/proc/$1/stat"
}

# Configure and start through the API alone; the guest runs; metrics
# flush; pause stops the guest and the VMM's CPU use; resume restarts it.
test_api_start_metrics_pause_resume() {
	api_start || return 1
	api_ok 200 GET / && [ "$(json_get state)" = "Not started" ] ||
		{ fail "state before start: $body"; return 1; }
	api_configure api_tick || return 1
	rm -f "$T/metrics" # $T is the bed's: an earlier test may have left one
	api_ok 204 PUT /metrics "{\"metrics_path\": \"$T/metrics\"}" || return 1
	api_ok 204 PUT /logger "{\"log_path\": \"$T/vmm.log\", \"level\": \"Debug\",
		\"show_level\": true, \"show_log_origin\": true}" || return 1
	api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	api_ok 200 GET / && [ "$(json_get state)" = Running ] ||
		{ fail "state after start: $body"; return 1; }
	grep -qE '^kiln-vmm: \[[0-9.]+\] INFO: vm\.c:[0-9]+: booting ' "$T/vmm.log" ||
		{ fail "the log file lacks the boot line with its origin"; cat "$T/vmm.log"; return 1; }
	wait_line "TICK 20" 60 "$T/out" || { never_ticked "the guest" "$(api_vmm)"; return 1; }
	api_ok 204 PUT /actions '{"action_type": "FlushMetrics"}' || return 1
	python3 - "$T/metrics" <<'PY' || { fail "metrics: $(tail -c 600 "$T/metrics")"; return 1; }
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert lines, "no metrics line"
m = lines[-1]
assert m["utc_timestamp_ms"] > 0
exits = sum(v for k, v in m["vcpu"].items() if k.startswith("exit_"))
assert exits > 0, m["vcpu"]
assert m["api_server"], m
PY
	pid=$(pgrep -P "$api_pid" -x kiln-vmm)
	api_ok 204 PATCH /vm '{"state": "Paused"}' || return 1
	api_ok 200 GET / && [ "$(json_get state)" = Paused ] ||
		{ fail "state after pause: $body"; return 1; }
	sleep 0.5
	t0=$(ticks) c0=$(cpu_ms "$pid")
	sleep 3
	t1=$(ticks) c1=$(cpu_ms "$pid")
	echo "    paused 3 s: $((t1 - t0)) ticks, $((c1 - c0)) ms of VMM CPU"
	[ "$t1" -eq "$t0" ] || { fail "the guest ticked while paused"; return 1; }
	[ $((c1 - c0)) -lt 150 ] || { fail "a paused VMM used $((c1 - c0)) ms CPU"; return 1; }
	api_ok 204 PATCH /vm '{"state": "Resumed"}' || return 1
	wait_line "TICK $((t1 + 10))" 30 "$T/out" || { fail "no ticks after resume"; return 1; }
	kill -TERM "$pid"
	api_wait
	expect_rc 143
}

# PATCH /drives swaps the backing file of a running drive: the guest
# reads the new content and sees the new size.
test_api_drive_hot_swap() {
	{ echo OLD; head -c 1048576 /dev/zero; } >"$T/old.img"
	truncate -s 1M "$T/old.img"
	{ echo NEW; head -c 10 /dev/zero; } >"$T/new.img"
	truncate -s 2M "$T/new.img"
	api_start || return 1
	api_configure api_blk || return 1
	api_ok 204 PUT /drives/data "{\"drive_id\": \"data\",
		\"path_on_host\": \"$T/old.img\", \"is_root_device\": false,
		\"is_read_only\": true}" || return 1
	api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	wait_line "BLK-READ OLD size=2048" 60 "$T/out" ||
		{ fail "the guest never read OLD"; tail "$T/out"; return 1; }
	api_fault "not supported after" PUT /drives/data "{\"drive_id\": \"data\",
		\"path_on_host\": \"$T/new.img\", \"is_root_device\": false,
		\"is_read_only\": true}" || return 1
	api_fault "no-such" PATCH /drives/data \
		"{\"drive_id\": \"data\", \"path_on_host\": \"$T/no-such.img\"}" || return 1
	api_ok 204 PATCH /drives/data \
		"{\"drive_id\": \"data\", \"path_on_host\": \"$T/new.img\"}" || return 1
	api_wait
	expect_rc 0 && console_has "BLK-READ NEW size=4096" KILN-SCRIPT-RC=0
}

# The balloon through the API: a new target reaches the guest, GET
# /balloon and /balloon/statistics report it.
test_api_balloon() {
	api_start || return 1
	api_configure api_tick 256 || return 1
	api_ok 204 PUT /balloon '{"amount_mib": 0, "deflate_on_oom": false,
		"stats_polling_interval_s": 1}' || return 1
	api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	wait_line "TICK 5" 60 "$T/out" || { never_ticked "the guest" "$(api_vmm)"; return 1; }
	api_ok 204 PATCH /balloon '{"amount_mib": 64}' || return 1
	actual=
	for _ in $(seq 100); do
		api_ok 200 GET /balloon/statistics || return 1
		actual=$(json_get actual_mib)
		[ "$actual" = 64 ] && break
		sleep 0.2
	done
	[ "$actual" = 64 ] || { fail "balloon actual_mib $actual, want 64: $body"; return 1; }
	[ "$(json_get target_mib)" = 64 ] || { fail "target_mib: $body"; return 1; }
	[ -n "$(json_get total_memory)" ] ||
		{ fail "no total_memory in the statistics: $body"; return 1; }
	api_ok 200 GET /balloon || return 1
	[ "$(json_get amount_mib)" = 64 ] || { fail "GET /balloon: $body"; return 1; }
	api_ok 204 PATCH /balloon/statistics '{"stats_polling_interval_s": 2}' || return 1
	api_fault "larger than" PATCH /balloon '{"amount_mib": 100000}' || return 1
	kill -TERM "$(pgrep -P "$api_pid" -x kiln-vmm)"
	api_wait
	expect_rc 143
}

# SendCtrlAltDel reaches the guest as the keystroke; Linux reboots through
# the i8042's reset line (reboot=k), and kiln-vmm exits 0 as on any guest
# reboot. The guest's init never ends on its own here (api_tick runs until
# the host stops it), so the reset can only come from the keystroke.
test_api_send_ctrl_alt_del() {
	api_start || return 1
	api_configure api_tick || return 1
	api_fault "before starting" PUT /actions '{"action_type": "SendCtrlAltDel"}' || return 1
	rm -f "$T/metrics" # $T is the bed's: an earlier test may have left one
	api_ok 204 PUT /metrics "{\"metrics_path\": \"$T/metrics\"}" || return 1
	api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	wait_line "TICK 10" 60 "$T/out" || { never_ticked "the guest" "$(api_vmm)"; return 1; }
	api_ok 204 PUT /actions '{"action_type": "FlushMetrics"}' || return 1
	api_ok 204 PUT /actions '{"action_type": "SendCtrlAltDel"}' || return 1
	api_wait
	expect_rc 0 || return 1
	grep -qF 'guest reboot (i8042 reset)' "$T/err" ||
		{ fail "the VMM did not end on the i8042 reset line"; tail -n 5 "$T/err"; return 1; }
	grep -qx KILN-INIT-END "$T/out" &&
		{ fail "init ended on its own: the reboot was not the keystroke's"; return 1; }
	# no reset before the keystroke, one after it (the exit's last line)
	python3 - "$T/metrics" <<'PY' || { fail "i8042 metrics: $(tail -c 600 "$T/metrics")"; return 1; }
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) >= 2, "want the flushed line and the exit's line"
assert lines[0]["i8042"]["reset_count"] == 0, lines[0]["i8042"]
assert sum(m["i8042"]["reset_count"] for m in lines) == 1, [m["i8042"] for m in lines]
PY
}

# Bad requests get a 400 with a fault_message, and the VMM keeps serving;
# bytes that are not HTTP get a 400 too.
test_api_bad_requests_keep_serving() {
	api_start || return 1
	api_fault "InstanceStart" PUT /actions '{"action_type": "Reboot"}' || return 1
	api_fault "kernel" PUT /actions '{"action_type": "InstanceStart"}' || return 1
	api_fault "json" PUT /machine-config '{"vcpu_count": ' || return 1
	api_fault "bogus" PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 128, "bogus": 2}' || return 1
	api_fault "vcpu_count" PUT /machine-config '{"vcpu_count": "two", "mem_size_mib": 128}' || return 1
	api_fault "invalid request" GET /no-such-thing || return 1
	api_fault "before starting" PUT /snapshot/create \
		'{"snapshot_path": "/tmp/s", "mem_file_path": "/tmp/m"}' || return 1
	api_fault "before starting" PATCH /vm '{"state": "Paused"}' || return 1
	# bytes that are not HTTP get a 400; a client that sends half a
	# request and goes away changes nothing
	python3 - "$T/api.sock" <<'PY' || { fail "raw socket checks"; return 1; }
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
s.settimeout(5)
reply = s.recv(4096)
assert reply.startswith(b"HTTP/1.1 400"), reply
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"PUT /machine-config HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
s.close()
PY
	api_ok 200 GET /machine-config || return 1
	[ "$(json_get vcpu_count)" = 1 ] || { fail "machine-config changed: $body"; return 1; }
	kill -TERM "$(pgrep -P "$api_pid" -x kiln-vmm)"
	api_wait
	expect_rc 143 && [ ! -e "$T/api.sock" ] || { fail "the API socket was left behind"; return 1; }
}

# GET /vm/config is what --config-file takes: a VM configured through the
# API boots again from its own description.
test_api_vm_config_round_trip() {
	api_start || return 1
	api_configure api_tick || return 1
	api_ok 204 PUT /entropy '{}' || return 1
	api_ok 200 GET /vm/config || return 1
	printf '%s' "$body" >"$T/vm.json"
	kill -TERM "$(pgrep -P "$api_pid" -x kiln-vmm)"
	api_wait
	sed -i 's#/tests/api_tick.sh#/tests/rng.sh#' "$T/vm.json"
	vmm --config-file "$T/vm.json"
	expect_rc 0 && console_has KILN-SCRIPT-RC=0 KILN-INIT-END
}

# A start that fails half-way (the drive's file went away after its PUT
# checked it: KVM VM, memory and some devices already exist) is undone;
# the VMM keeps serving, and once the drive is back the same process boots.
test_api_failed_start_can_retry() {
	api_start || return 1
	api_configure rng || return 1
	api_ok 204 PUT /entropy '{}' || return 1
	truncate -s 1M "$T/missing.img"
	api_ok 204 PUT /drives/data "{\"drive_id\": \"data\",
		\"path_on_host\": \"$T/missing.img\", \"is_root_device\": false,
		\"is_read_only\": false}" || return 1
	rm "$T/missing.img"
	api_fault "missing.img" PUT /actions '{"action_type": "InstanceStart"}' || return 1
	api_ok 200 GET / && [ "$(json_get state)" = "Not started" ] ||
		{ fail "state after a failed start: $body"; return 1; }
	truncate -s 1M "$T/missing.img"
	api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	api_wait
	expect_rc 0 && console_has KILN-SCRIPT-RC=0 KILN-INIT-END
}

# Firecracker opens what a pre-boot request names while it answers it:
# a missing kernel, initrd, drive file, TAP or socket directory is a 400
# naming it at that request, which then changes nothing.
test_api_checks_at_request() {
	api_start || return 1
	api_fault "open kernel \`$T/no-vmlinux\`: No such file" PUT /boot-source \
		"{\"kernel_image_path\": \"$T/no-vmlinux\"}" || return 1
	api_fault "open initrd \`$T/no-initrd\`" PUT /boot-source \
		"{\"kernel_image_path\": \"$GUEST/vmlinux\",
		\"initrd_path\": \"$T/no-initrd\"}" || return 1
	api_fault "command line is invalid" PUT /boot-source \
		"{\"kernel_image_path\": \"$GUEST/vmlinux\",
		\"boot_args\": \"$(head -c 2048 /dev/zero | tr '\0' x)\"}" || return 1
	api_fault "drive data: open \`$T/no.img\`: No such file" PUT /drives/data \
		"{\"drive_id\": \"data\", \"path_on_host\": \"$T/no.img\",
		\"is_root_device\": false}" || return 1
	api_fault "is_root_device\` is missing" PUT /drives/data \
		"{\"drive_id\": \"data\", \"path_on_host\": \"$GUEST/vmlinux\"}" || return 1
	api_fault 'TAP `kilnnosuch0` does not exist' PUT /network-interfaces/eth0 \
		'{"iface_id": "eth0", "host_dev_name": "kilnnosuch0"}' || return 1
	api_fault "$T/no/dir/v.sock" PUT /vsock \
		"{\"guest_cid\": 3, \"uds_path\": \"$T/no/dir/v.sock\"}" || return 1
	api_fault "0 vCPUs" PUT /machine-config '{"vcpu_count": 0, "mem_size_mib": 128}' || return 1
	api_fault "33 vCPUs" PUT /machine-config '{"vcpu_count": 33, "mem_size_mib": 128}' || return 1
	api_fault "Empty PATCH request" PATCH /machine-config '{}' || return 1
	api_ok 200 GET /vm/config || return 1
	printf '%s' "$body" | grep -q '"boot-source":null,.*"drives":\[\],"network-interfaces":\[\],"vsock":null' ||
		{ fail "refused requests changed the config: $body"; return 1; }
	kill -TERM "$(pgrep -P "$api_pid" -x kiln-vmm)"
	api_wait
	expect_rc 143
}
