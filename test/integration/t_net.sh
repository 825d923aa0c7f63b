# virtio-net over a TAP. Each test makes its own network namespace with a
# TAP in it (addresses only inside that namespace), runs kiln-vmm there and
# removes namespace and TAP on the way out, failed or not.

NET_MAC=02:4b:49:4c:4e:01

net_ns_up() {
	NET_NS=kiln-net-$$-$RANDOM
	NET_SRV=
	trap 'net_srv_stop; ip netns del "$NET_NS" 2>/dev/null' EXIT
	ip netns add "$NET_NS" || { fail "ip netns add"; return 1; }
	ip netns exec "$NET_NS" ip link set lo up &&
		ip netns exec "$NET_NS" ip tuntap add dev tap0 mode tap &&
		ip netns exec "$NET_NS" ip addr add 172.30.0.1/30 dev tap0 &&
		ip netns exec "$NET_NS" ip link set tap0 up ||
		{ fail "TAP setup in $NET_NS"; return 1; }
}

# Host side of the transfers: 5001 takes the guest's upload and records
# "bytes sha256 seconds" in $T/up, 5002 sends $T/down and records its time.
net_server() {
	cat >"$T/srv.py" <<'PY'
import hashlib, socket, sys, threading, time
t = sys.argv[1]
def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("172.30.0.1", port))
    s.listen(1)
    s.settimeout(200)
    return s
def up(s):
    c, _ = s.accept()
    h, n, t0 = hashlib.sha256(), 0, time.time()
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
        n += len(b)
    dt = time.time() - t0
    c.close()
    open(t + "/up", "w").write("%d %s %.3f\n" % (n, h.hexdigest(), dt))
def down(s):
    c, _ = s.accept()
    data = open(t + "/down", "rb").read()
    t0 = time.time()
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    while c.recv(1 << 16):
        pass
    dt = time.time() - t0
    c.close()
    open(t + "/downtime", "w").write("%.3f\n" % dt)
a, b = listener(5001), listener(5002)
open(t + "/ready", "w").write("1\n")
th = [threading.Thread(target=up, args=(a,)), threading.Thread(target=down, args=(b,))]
for x in th: x.start()
for x in th: x.join()
PY
	rm -f "$T/ready" "$T/up" "$T/downtime"
	ip netns exec "$NET_NS" timeout 240 python3 "$T/srv.py" "$T" >"$T/srv.log" 2>&1 &
	NET_SRV=$!
	for _ in $(seq 100); do
		[ -f "$T/ready" ] && return 0
		sleep 0.1
	done
	fail "transfer server did not start: $(cat "$T/srv.log")"
}

# Give the server a moment to write its results, then end it.
net_srv_stop() {
	[ -n "${NET_SRV:-}" ] || return 0
	for _ in $(seq 30); do
		kill -0 "$NET_SRV" 2>/dev/null || break
		sleep 0.1
	done
	kill "$NET_SRV" 2>/dev/null
	wait "$NET_SRV" 2>/dev/null
	NET_SRV=
}

mib_s() { # BYTES SECONDS
	echo "$1 $2" | awk '{ if ($2 > 0) printf "%.1f", $1 / 1048576 / $2; else print "?" }'
}

test_net_ping_and_tcp_both_ways() {
	net_ns_up || return 1
	head -c 4194304 /dev/urandom >"$T/down"
	want_down=$(sha256sum "$T/down" | cut -d' ' -f1)
	net_server || return 1
	rc=0
	timeout -k 5 "${VMM_TIMEOUT:-240}" ip netns exec "$NET_NS" "$VMM" \
		--kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" --mem 256 \
		--net "id=eth0,tap=tap0,mac=$NET_MAC" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet kiln.script=/tests/net.sh" \
		>"$T/out" 2>"$T/err" || rc=$?
	crlf "$T/out"
	net_srv_stop
	expect_rc 0 && console_has "net-mac=$NET_MAC" KILN-SCRIPT-RC=0 || return 1
	grep '^net-' "$T/out" | sed 's/^/    /'
	up_sha=$(sed -n 's/^net-out-sha=//p' "$T/out")
	read -r up_n up_got up_s <"$T/up" || { fail "no upload result: $(cat "$T/srv.log")"; return 1; }
	[ "$up_n" = 4194304 ] && [ "$up_got" = "$up_sha" ] ||
		{ fail "guest->host: $up_n bytes sha $up_got, guest sent sha $up_sha"; return 1; }
	console_has "net-in-bytes=4194304" "net-in-sha=$want_down" || return 1
	echo "    throughput: guest->host $(mib_s 4194304 "$up_s") MiB/s," \
		"host->guest $(mib_s 4194304 "$(cat "$T/downtime")") MiB/s"
}

# A TAP that does not exist: one clear line naming it, non-zero exit.
test_net_missing_tap_is_an_error() {
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--net id=eth0,tap=kilnnosuch0
	expect_failure && one_error_line 'TAP `kilnnosuch0` does not exist'
}

# Host side of the multi-queue test: 5001 takes N uploads ("bytes sha256"
# per line in $T/ups), 5002 sends $T/down to N downloads, all at once.
net_server_many() { # N
	stream_server "$NET_NS" 172.30.0.1 "$1" 480
	local rc=$?
	NET_SRV=$STREAM_SRV
	return $rc
}

# "q0 q1" packets of one direction (rx or tx) per pair, summed over the
# metrics lines kiln-vmm wrote (counters are written as changes).
net_mq_counts() { # rx|tx
	python3 - "$T/metrics" "$1" <<'PY'
import json, sys
c = [0, 0]
for line in open(sys.argv[1]):
    m = json.loads(line)
    for q in (0, 1):
        c[q] += m.get("net_eth0_q%d" % q, {}).get(sys.argv[2] + "_packets_count", 0)
print(c[0], c[1])
PY
}

# Two vCPUs, two queue pairs over a multi-queue TAP: the guest sees both
# queues, TCP works both ways from each vCPU (an upload and a download
# pinned to each), and both pairs carry frames each way (kiln-vmm's
# per-pair metrics). Connections one after the other; several at once are
# the stress tests' (test_net_stress_*).
test_net_multiqueue_two_vcpus() {
	NET_NS=kiln-net-$$-$RANDOM
	NET_SRV=
	trap 'net_srv_stop; ip netns del "$NET_NS" 2>/dev/null' EXIT
	ip netns add "$NET_NS" || { fail "ip netns add"; return 1; }
	ip netns exec "$NET_NS" ip link set lo up &&
		ip netns exec "$NET_NS" ip tuntap add dev tap0 mode tap multi_queue &&
		ip netns exec "$NET_NS" ip addr add 172.30.0.1/30 dev tap0 &&
		ip netns exec "$NET_NS" ip link set tap0 up ||
		{ fail "multi-queue TAP setup in $NET_NS"; return 1; }
	head -c 1048576 /dev/urandom >"$T/down"
	want_down=$(sha256sum "$T/down" | cut -d' ' -f1)
	net_server_many 2 || return 1
	rm -f "$T/metrics" "$T/tapq"
	# the host's view: how many TAP queues are attached and how many not
	( for _ in $(seq 1200); do
		q=$(ip -n "$NET_NS" -d link show tap0 2>/dev/null | grep -o 'numqueues [0-9]* numdisabled [0-9]*')
		echo "$q" >>"$T/tapq"
		[ "$q" = "numqueues 2 numdisabled 0" ] && break
		sleep 0.25
	done ) &
	qwatch=$!
	# the config file's shape of --net: queue_pairs in JSON; the API
	# socket to flush the metrics before the guest powers off
	cat >"$T/vm.json" <<JSON
{
  "boot-source": {
    "kernel_image_path": "$GUEST/vmlinux", "initrd_path": "$GUEST/initramfs",
    "boot_args": "console=ttyS0 reboot=k panic=1 quiet kiln.script=/tests/net_mq.sh"
  },
  "machine-config": { "vcpu_count": 2, "mem_size_mib": 256 },
  "network-interfaces": [{ "iface_id": "eth0", "host_dev_name": "tap0",
    "guest_mac": "$NET_MAC", "queue_pairs": 2 }],
  "metrics": { "metrics_path": "$T/metrics" }
}
JSON
	rm -f "$T/api.sock"
	: >"$T/out"
	rc=0
	timeout -k 5 "${VMM_TIMEOUT:-480}" ip netns exec "$NET_NS" "$VMM" \
		--api-sock "$T/api.sock" --config-file "$T/vm.json" \
		>"$T/out" 2>"$T/err" &
	vpid=$!
	flushed=no
	# until the line, or the VMM's end (its timeout): wait_line counts
	# polls, and under a loaded bed 4200 polls outlast the runner's 900 s
	done_seen=no
	while kill -0 "$vpid" 2>/dev/null; do
		tr -d '\r' <"$T/out" | grep -qx mq-done && { done_seen=yes; break; }
		sleep 1
	done
	if [ "$done_seen" = yes ]; then
		code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' --unix-socket "$T/api.sock" \
			-X PUT -H 'Content-Type: application/json' \
			-d '{"action_type": "FlushMetrics"}' http://localhost/actions || true)
		[ "$code" = 204 ] && flushed=yes
	fi
	wait "$vpid" || rc=$?
	crlf "$T/out"
	net_srv_stop
	kill "$qwatch" 2>/dev/null
	wait "$qwatch" 2>/dev/null
	grep '^mq-' "$T/out" | sed 's/^/    /'
	echo "    TAP queues seen: $(sort -u "$T/tapq" | grep . | tr '\n' ';')"
	read -r rx0 rx1 <<EOT
$(net_mq_counts rx)
EOT
	read -r tx0 tx1 <<EOT
$(net_mq_counts tx)
EOT
	echo "    frames per pair: rx $rx0 / $rx1, tx $tx0 / $tx1 (metrics flushed: $flushed)"
	expect_rc 0 && console_has mq-cpus=2 mq-queue=rx-0 mq-queue=rx-1 \
		mq-queue=tx-0 mq-queue=tx-1 KILN-SCRIPT-RC=0 || return 1
	up_sha=$(sed -n 's/^mq-out-sha=//p' "$T/out")
	[ "$(grep -c "^1048576 $up_sha\$" "$T/ups" 2>/dev/null)" = 2 ] ||
		{ fail "guest->host: want 2 x 1048576 bytes sha $up_sha, got: $(cat "$T/ups" 2>/dev/null) $(cat "$T/srv.log")"; return 1; }
	[ "$(grep -c "^mq-in[01]=1048576 $want_down\$" "$T/out")" = 2 ] ||
		{ fail "host->guest: not 2 intact downloads"; return 1; }
	grep -qx "numqueues 1 numdisabled 1" "$T/tapq" &&
		grep -qx "numqueues 2 numdisabled 0" "$T/tapq" ||
		{ fail "the TAP's second queue was not detached, then attached"; return 1; }
	[ "${rx0:-0}" -gt 0 ] && [ "${rx1:-0}" -gt 0 ] ||
		{ fail "host->guest frames not on both rx queues: $rx0 / $rx1"; return 1; }
	[ "${tx0:-0}" -gt 0 ] && [ "${tx1:-0}" -gt 0 ] ||
		{ fail "guest->host frames not on both tx queues: $tx0 / $tx1"; return 1; }
}

# A multi-queue TAP attached as one pair, or two pairs over a single-queue
# TAP: one clear line, non-zero exit.
test_net_multiqueue_mode_mismatch_is_an_error() {
	net_ns_up || return 1
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--net id=eth0,tap=kilnnosuch0,queue_pairs=4
	expect_failure && one_error_line 'queue_pairs=4' || return 1
	rc=0
	timeout -k 5 30 ip netns exec "$NET_NS" "$VMM" \
		--kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--net id=eth0,tap=tap0,queue_pairs=2 >"$T/out" 2>"$T/err" || rc=$?
	expect_failure && one_error_line 'is it a multi-queue TAP'
}

# Host side of the stress test: 5001 takes uploads ("bytes sha256" per
# line in $T/ups), 5002 sends $T/down to each download; any number of
# them, at once, until killed.
net_server_loop() {
	stream_server "$NET_NS" 172.30.0.1 0 900
	local rc=$?
	NET_SRV=$STREAM_SRV
	return $rc
}

# The epoll events kiln-vmm waits for on its TAP fds (hex, one a line).
net_tap_polling() { # PID
	for fd in /proc/"$1"/fd/*; do
		[ "$(readlink "$fd")" = /dev/net/tun ] || continue
		n=${fd##*/}
		for ep in /proc/"$1"/fd/*; do
			[ "$(readlink "$ep")" = 'anon_inode:[eventpoll]' ] || continue
			awk -v fd="$n" '$1 == "tfd:" && $2 == fd { print "tap fd " fd " events " $4 }' \
				/proc/"$1"/fdinfo/"${ep##*/}" 2>/dev/null
		done
	done
}

# Rounds of parallel TCP streams both ways, PAIRS queue pairs, 2 vCPUs
# (NET_STRESS_VCPUS to try others; NET_STRESS_ROUNDS: 3 rounds).
# Every stream must finish with its data intact; on a stall the guest
# prints its side, and we print the TAP's counters, what kiln-vmm polls
# and its per-queue metrics. Before the rx batch fix (net_rx_pump) the
# first round stalled for good, every time.
net_stress() { # PAIRS ROUNDS PAR
	pairs=$1 rounds=$2 par=$3
	NET_NS=kiln-net-$$-$RANDOM
	NET_SRV=
	trap 'net_srv_stop; ip netns del "$NET_NS" 2>/dev/null' EXIT
	mq=
	[ "$pairs" -gt 1 ] && mq=multi_queue
	ip netns add "$NET_NS" || { fail "ip netns add"; return 1; }
	ip netns exec "$NET_NS" ip link set lo up &&
		ip netns exec "$NET_NS" ip tuntap add dev tap0 mode tap $mq &&
		ip netns exec "$NET_NS" ip addr add 172.30.0.1/30 dev tap0 &&
		ip netns exec "$NET_NS" ip link set tap0 up ||
		{ fail "TAP setup in $NET_NS"; return 1; }
	head -c 1048576 /dev/urandom >"$T/down"
	want_down=$(sha256sum "$T/down" | cut -d' ' -f1)
	net_server_loop || return 1
	rm -f "$T/metrics"
	cat >"$T/vm.json" <<JSON
{
  "boot-source": {
    "kernel_image_path": "$GUEST/vmlinux", "initrd_path": "$GUEST/initramfs",
    "boot_args": "console=ttyS0 reboot=k panic=1 quiet kiln.script=/tests/net_stress.sh stress.rounds=$rounds stress.par=$par"
  },
  "machine-config": { "vcpu_count": ${NET_STRESS_VCPUS:-2}, "mem_size_mib": 256 },
  "network-interfaces": [{ "iface_id": "eth0", "host_dev_name": "tap0",
    "guest_mac": "$NET_MAC", "queue_pairs": $pairs }],
  "metrics": { "metrics_path": "$T/metrics" }
}
JSON
	rm -f "$T/api.sock"
	: >"$T/out"
	rc=0
	timeout -k 5 "${VMM_TIMEOUT:-600}" ip netns exec "$NET_NS" "$VMM" \
		--api-sock "$T/api.sock" --config-file "$T/vm.json" \
		>"$T/out" 2>"$T/err" &
	vpid=$!
	done_seen=no
	while kill -0 "$vpid" 2>/dev/null; do
		tr -d '\r' <"$T/out" | grep -qx stress-done && { done_seen=yes; break; }
		sleep 1
	done
	if [ "$done_seen" = yes ]; then
		for p in $(pgrep -f "$T/vm.json"); do
			[ "$(readlink /proc/"$p"/exe)" = "$(readlink -f "$VMM")" ] &&
				net_tap_polling "$p" | sed 's/^/    /'
		done
		ip -n "$NET_NS" -s link show tap0 | sed 's/^/    tap0: /'
		curl -s -o /dev/null -m 10 --unix-socket "$T/api.sock" \
			-X PUT -H 'Content-Type: application/json' \
			-d '{"action_type": "FlushMetrics"}' http://localhost/actions || true
	fi
	wait "$vpid" || rc=$?
	crlf "$T/out"
	net_srv_stop
	grep '^stress-' "$T/out" | grep -v '^stress-in=' | sed 's/^/    /'
	[ -f "$T/metrics" ] && python3 - "$T/metrics" <<'PY' | sed 's/^/    metrics: /'
import json, sys
c = {}
for line in open(sys.argv[1]):
    for g, v in json.loads(line).items():
        if g.startswith("net_") and isinstance(v, dict):
            for k, x in v.items():
                c.setdefault(g, {})[k] = c.get(g, {}).get(k, 0) + x
for g in sorted(c):
    print(g, " ".join("%s=%d" % (k, x) for k, x in sorted(c[g].items()) if x))
PY
	expect_rc 0 && console_has stress-failed=0 KILN-SCRIPT-RC=0 || return 1
	up_sha=$(sed -n 's/^stress-out-sha=//p' "$T/out")
	n=$((rounds * par))
	[ "$(grep -c "^1048576 $up_sha\$" "$T/ups" 2>/dev/null)" = "$n" ] ||
		{ fail "guest->host: want $n x 1048576 bytes sha $up_sha"; return 1; }
	[ "$(grep -c "^stress-in=1048576 $want_down\$" "$T/out")" = "$n" ] ||
		{ fail "host->guest: not $n intact downloads"; return 1; }
	echo "    $rounds rounds of $par uploads + $par downloads at once: all intact"
}

test_net_stress_parallel_streams_two_vcpus() {
	net_stress 1 "${NET_STRESS_ROUNDS:-3}" 4
}

test_net_stress_parallel_streams_two_pairs() {
	net_stress 2 "${NET_STRESS_ROUNDS:-3}" 4
}
