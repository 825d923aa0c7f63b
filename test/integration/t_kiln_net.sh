# kiln's networking (runtime/net.c, agent/net.c): a container whose
# config.json names a network namespace made here with a veth in it, the
# other end in a second namespace (the "host side"). Nothing outside
# namespaces made by the test.

KNET_C=
KNET_H=

knet_down() {
	[ -n "$KNET_C" ] && ip netns del "$KNET_C" 2>/dev/null
	[ -n "$KNET_H" ] && ip netns del "$KNET_H" 2>/dev/null
	KNET_C= KNET_H=
}

# Namespaces $KNET_H (10.77.0.1/24, fd77::1/64 on veth kvh) and $KNET_C
# (eth0: 10.77.0.2/24, fd77::2/64, MTU 1400, default routes via the
# host side), and $T/b a bundle in $KNET_C running $1.
knet_up() { # COMMAND
	kiln_reset
	knet_down
	KNET_C=knet-c-$$-$RANDOM
	KNET_H=knet-h-$$-$RANDOM
	ip netns add "$KNET_C" && ip netns add "$KNET_H" &&
		ip link add kvh netns "$KNET_H" mtu 1400 type veth peer name eth0 netns "$KNET_C" mtu 1400 &&
		ip -n "$KNET_H" link set lo up && ip -n "$KNET_C" link set lo up &&
		ip -n "$KNET_H" addr add 10.77.0.1/24 dev kvh &&
		ip -n "$KNET_H" addr add fd77::1/64 dev kvh nodad &&
		ip -n "$KNET_C" addr add 10.77.0.2/24 dev eth0 &&
		ip -n "$KNET_C" addr add fd77::2/64 dev eth0 nodad &&
		ip -n "$KNET_H" link set kvh up && ip -n "$KNET_C" link set eth0 up &&
		ip -n "$KNET_C" route add default via 10.77.0.1 &&
		ip -n "$KNET_C" -6 route add default via fd77::1 ||
		{ fail "namespaces and veth"; return 1; }
	KB_EDIT="
for ns in c['linux']['namespaces']:
    if ns['type'] == 'network':
        ns['path'] = '/var/run/netns/$KNET_C'
${KNET_EDIT:-}
" kiln_bundle "$T/b" "$1"
}

# kiln's TAPs and the ingress qdiscs in the container's namespace.
knet_leftovers() {
	ip -n "$KNET_C" -o link show | grep -o ' kt[0-9a-f]*n[0-9]' | tr -d ' '
	ip -n "$KNET_C" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' |
		while read -r l; do
			tc -n "$KNET_C" qdisc show dev "$l" ingress 2>/dev/null |
				grep -q ingress && echo "ingress on $l"
		done
}

# Server in $KNET_H: 5001 takes an upload to EOF and records
# "bytes sha256" in $T/up; 5002 sends $T/down and half-closes.
knet_server() {
	cat >"$T/ksrv.py" <<'PY'
import hashlib, socket, sys, threading
t, addr = sys.argv[1], sys.argv[2]
def listener(port):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    s.settimeout(200)
    return s
def up(s):
    c, _ = s.accept()
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
        n += len(b)
    open(t + "/up", "w").write("%d %s\n" % (n, h.hexdigest()))
    c.close()
def down(s):
    c, _ = s.accept()
    c.sendall(open(t + "/down", "rb").read())
    c.shutdown(socket.SHUT_WR)
    while c.recv(1 << 16):
        pass
    c.close()
a, b = listener(5001), listener(5002)
open(t + "/ready", "w").write("1\n")
th = [threading.Thread(target=up, args=(a,)), threading.Thread(target=down, args=(b,))]
for x in th: x.start()
for x in th: x.join()
PY
	rm -f "$T/ready" "$T/up"
	head -c 3000000 /dev/urandom >"$T/down"
	ip netns exec "$KNET_H" timeout 240 python3 "$T/ksrv.py" "$T" "$1" >"$T/ksrv.log" 2>&1 &
	KNET_SRV=$!
	for _ in $(seq 100); do
		[ -f "$T/ready" ] && return 0
		sleep 0.1
	done
	fail "transfer server did not start: $(cat "$T/ksrv.log")"
}

# The guest uploads 2 MiB of its own and downloads $T/down: both sha256s
# must match on the two sides; its address and routes are the veth's.
knet_transfer() { # SERVER-ADDRESS
	knet_up "set -e
busybox ip -o addr show; busybox ip route show; busybox ip -6 route show
busybox ip -o link show | busybox grep -o 'mtu [0-9]*' | busybox sed 's/^/link /'
busybox dd if=/dev/urandom of=/tmp/up bs=1024 count=2048 2>/dev/null
echo up \$(busybox sha256sum /tmp/up)
busybox nc $1 5001 </tmp/up
busybox nc $1 5002 </dev/null >/tmp/down
echo down \$(busybox sha256sum /tmp/down)" || return 1
	knet_server "$1" || return 1
	rc=0
	timeout -k 5 240 "$KILN" --root "$KROOT" run --bundle "$T/b" n1 \
		</dev/null >"$T/kout" 2>"$T/kerr" || rc=$?
	wait "$KNET_SRV"
	[ "$rc" = 0 ] || { kiln_fail "run exited $rc"; return 1; }
	grep -q 'eth0.*inet 10.77.0.2/24' "$T/kout" &&
		grep -q 'inet6 fd77::2/64' "$T/kout" ||
		{ kiln_fail "the guest lacks the veth's addresses"; return 1; }
	grep -q '^default via 10.77.0.1' "$T/kout" &&
		grep -q '^default via fd77::1' "$T/kout" ||
		{ kiln_fail "the guest lacks the default routes"; return 1; }
	grep -q '^link mtu 1400' "$T/kout" || { kiln_fail "no guest link of MTU 1400"; return 1; }
	want_up=$(awk '/^up /{print $2}' "$T/kout")
	got_up=$(awk '{print $2}' "$T/up" 2>/dev/null)
	[ -n "$want_up" ] && [ "$want_up" = "$got_up" ] &&
		[ "$(awk '{print $1}' "$T/up")" = 2097152 ] ||
		{ kiln_fail "guest->host: sent $want_up, received '$(cat "$T/up" 2>/dev/null)' ($(cat "$T/ksrv.log"))"; return 1; }
	want_down=$(sha256sum "$T/down" | awk '{print $1}')
	got_down=$(awk '/^down /{print $2}' "$T/kout")
	[ "$want_down" = "$got_down" ] ||
		{ kiln_fail "host->guest: sent $want_down, received '$got_down'"; return 1; }
	echo "    guest->host and host->guest over $1: checksums match"
	left=$(knet_leftovers)
	[ -z "$left" ] || { kiln_fail "left after the container ended: $left"; return 1; }
	kiln_nothing_left
}

test_kiln_net_tcp_both_ways_v4() {
	knet_transfer 10.77.0.1
	r=$?
	knet_down
	return $r
}

test_kiln_net_tcp_both_ways_v6() {
	knet_transfer fd77::1
	r=$?
	knet_down
	return $r
}

# kill -9 of the pid process: delete --force removes the TAP and qdiscs.
test_kiln_net_kill9_then_delete_leaves_nothing() {
	knet_up 'exec sleep 1000' || return 1
	kiln create --bundle "$T/b" --pid-file "$T/pid" n2
	[ "$krc" = 0 ] || { kiln_fail "create failed"; knet_down; return 1; }
	left=$(knet_leftovers)
	echo "$left" | grep -q '^kt' && echo "$left" | grep -q 'ingress on eth0' ||
		{ kiln_fail "no TAP or no ingress qdisc while created: '$left'"; knet_down; return 1; }
	kill -9 "$(cat "$T/pid")"
	kiln delete --force n2
	[ "$krc" = 0 ] || { kiln_fail "delete --force failed"; knet_down; return 1; }
	left=$(knet_leftovers)
	[ -z "$left" ] || { kiln_fail "left after kill -9 and delete --force: $left"; knet_down; return 1; }
	grep -q "/n2/netns" /proc/self/mountinfo && { fail "the namespace's bind mount is left"; knet_down; return 1; }
	ip netns del "$KNET_C" && KNET_C= || { fail "the container's namespace cannot go"; knet_down; return 1; }
	knet_down
	kiln_nothing_left
}

# A namespace of its own (no path): no Ethernet interface in the guest,
# lo up, as before networking (the guest kernel's sit0 is always there).
test_kiln_net_new_namespace_only_lo() {
	kiln_reset
	kiln_bundle "$T/b" 'busybox ip -o link show | busybox grep -c link/ether; busybox ip -o link show' || return 1
	rc=0
	timeout -k 5 180 "$KILN" --root "$KROOT" run --bundle "$T/b" n3 \
		</dev/null >"$T/kout" 2>"$T/kerr" || rc=$?
	[ "$(sed -n 1p "$T/kout")" = 0 ] && grep -q ': lo: <LOOPBACK,UP' "$T/kout" ||
		{ kiln_fail "want no Ethernet interface and lo up in the guest (exit $rc)"; return 1; }
	kiln_nothing_left
}

# Bad input: an MTU the guest cannot take (a dummy device takes any) is
# one error naming the interface; what was wired before it is undone.
test_kiln_net_bad_mtu_leaves_nothing() {
	knet_up 'true' || return 1
	ip -n "$KNET_C" link add kdum mtu 70000 type dummy &&
		ip -n "$KNET_C" link set kdum up ||
		{ fail "a dummy of MTU 70000"; knet_down; return 1; }
	kiln run --bundle "$T/b" n4
	[ "$krc" != 0 ] && grep -q 'kdum: MTU 70000' "$T/kerr" ||
		{ kiln_fail "no clear error for MTU 70000"; knet_down; return 1; }
	left=$(knet_leftovers)
	[ -z "$left" ] || { kiln_fail "left after the failed create: $left"; knet_down; return 1; }
	knet_down
	kiln_nothing_left
}

# The host's own network namespace (docker --network host: no network
# namespace in the config, or the path of the host's) is refused in one
# line before anything is wired: handing the host's interfaces to a guest
# would take the host off its network.
test_kiln_net_host_network_refused() {
	kiln_reset
	before=$(ip -o link show | grep -c .)
	for edit in \
		'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]' \
		'[n.update(path="/proc/1/ns/net") for n in c["linux"]["namespaces"] if n["type"] == "network"]'; do
		KB_EDIT=$edit kiln_bundle "$T/b" 'true' || return 1
		kiln run --bundle "$T/b" nh
		[ "$krc" != 0 ] && grep -q "cannot share the host's network stack" "$T/kerr" &&
			[ "$(wc -l <"$T/kerr")" = 1 ] ||
			{ kiln_fail "the host's network namespace was not refused in one line ($edit)"; return 1; }
	done
	[ "$(ip -o link show | grep -c .)" = "$before" ] || { fail "the host's links changed"; return 1; }
	ip -o link show | grep -q ' kt' && { fail "a TAP of kiln's in the host's namespace"; return 1; }
	kiln_nothing_left
}

# A namespace whose interfaces already feed a kiln VM (docker's --network
# container:ID of a kiln container) is refused in one line before anything
# is wired or removed: the first container's TAP and qdiscs stay, and it
# still reaches the host side.
test_kiln_net_shared_namespace_refused() {
	knet_up 'exec sleep 1000' || return 1
	kiln create --bundle "$T/b" n5
	[ "$krc" = 0 ] || { kiln_fail "create of the first failed"; knet_down; return 1; }
	before=$(knet_leftovers)
	kiln run --bundle "$T/b" n6
	[ "$krc" != 0 ] && grep -q "another kiln container's (its VM's TAP kt" "$T/kerr" &&
		[ "$(wc -l <"$T/kerr")" = 1 ] ||
		{ kiln_fail "a second VM on the namespace was not refused in one line"; kiln delete --force n5; knet_down; return 1; }
	[ "$(knet_leftovers)" = "$before" ] ||
		{ kiln_fail "the first container's wiring changed: '$before' -> '$(knet_leftovers)'"; kiln delete --force n5; knet_down; return 1; }
	rm -f "$T/n5got"
	ip netns exec "$KNET_H" timeout 120 python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.1", 5009))
s.listen(1)
c, _ = s.accept()
open(sys.argv[1], "w").write(c.recv(100).decode())' "$T/n5got" &
	srv=$!
	kiln start n5
	# python's start takes seconds in a loaded bed: the guest retries
	kiln exec n5 sh -c 'i=0; while [ $i -lt 90 ]; do
echo reached | busybox nc 10.77.0.1 5009 2>/dev/null && exit 0; sleep 1; i=$((i + 1)); done; exit 1'
	wait "$srv"
	[ "$krc" = 0 ] && grep -qx reached "$T/n5got" ||
		{ kiln_fail "the first container lost its network"; kiln delete --force n5; knet_down; return 1; }
	kiln delete --force n5
	kiln delete --force n6
	left=$(knet_leftovers)
	[ -z "$left" ] || { kiln_fail "left: $left"; knet_down; return 1; }
	knet_down
	kiln_nothing_left
}

# An interface made by a createRuntime hook (as CNI run from a hook makes
# one) in the new namespace the pid process sits in is wired too: the
# guest has an eth0 with the hook's address.
test_kiln_net_hook_made_interface() {
	kiln_reset
	knet_down
	KNET_H=knet-h-$$-$RANDOM
	ip netns add "$KNET_H" && ip -n "$KNET_H" link set lo up || { fail "ip netns add"; return 1; }
	cat >"$T/cni-hook.sh" <<SH
#!/bin/sh
set -e
pid=\$(python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
ip link add khk netns $KNET_H type veth peer name eth0 netns "\$pid"
ip -n $KNET_H addr add 10.78.0.1/24 dev khk
ip -n $KNET_H link set khk up
nsenter --net=/proc/\$pid/ns/net ip addr add 10.78.0.2/24 dev eth0
nsenter --net=/proc/\$pid/ns/net ip link set eth0 up
SH
	chmod +x "$T/cni-hook.sh"
	KB_EDIT='c["hooks"] = {"createRuntime": [{"path": "'"$T/cni-hook.sh"'"}]}' \
		kiln_bundle "$T/b" 'busybox ip -4 -o addr show eth0 | busybox grep -o "inet [0-9./]*"' || return 1
	kiln run --bundle "$T/b" n7
	[ "$krc" = 0 ] && grep -qx 'inet 10.78.0.2/24' "$T/kout" ||
		{ kiln_fail "the hook's interface did not reach the guest"; knet_down; return 1; }
	knet_down
	kiln_nothing_left
}

# kill -9 of kiln-vmm: the pid process ends and takes the TAP and the
# qdiscs with it, before any delete.
test_kiln_net_vmm_kill9_leaves_nothing() {
	knet_up 'exec sleep 1000' || return 1
	kiln run --detach --bundle "$T/b" --pid-file "$T/pid" n8
	[ "$krc" = 0 ] || { kiln_fail "run --detach failed"; knet_down; return 1; }
	pid=$(cat "$T/pid")
	vmm=$(pgrep -P "$pid" -x kiln-vmm)
	[ -n "$vmm" ] || { kiln_fail "no kiln-vmm under the pid process"; knet_down; return 1; }
	kill -9 "$vmm"
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && { kiln_fail "the pid process lives on"; knet_down; return 1; }
	left=$(knet_leftovers)
	[ -z "$left" ] || { kiln_fail "left after kill -9 of kiln-vmm: $left"; knet_down; return 1; }
	kiln delete n8
	[ "$krc" = 0 ] || { kiln_fail "delete failed"; knet_down; return 1; }
	knet_down
	kiln_nothing_left
}

# An interface with someone's ingress qdisc already: refused naming it,
# and that qdisc is still there afterwards (no TAP left either).
test_kiln_net_foreign_qdisc_kept() {
	knet_up 'true' || return 1
	tc -n "$KNET_C" qdisc add dev eth0 ingress || { fail "tc qdisc add"; knet_down; return 1; }
	kiln run --bundle "$T/b" n9
	[ "$krc" != 0 ] && grep -q 'eth0: it has an ingress qdisc already' "$T/kerr" ||
		{ kiln_fail "no clear error for eth0's own ingress qdisc"; knet_down; return 1; }
	[ "$(knet_leftovers)" = "ingress on eth0" ] ||
		{ kiln_fail "want eth0's own qdisc alone left, have: '$(knet_leftovers)'"; knet_down; return 1; }
	knet_down
	kiln_nothing_left
}

# Two vCPUs (io.kiln.vcpus): the runtime makes the TAP multi-queue and asks
# kiln-vmm for two queue pairs; the guest's driver runs both (the TAP has
# two queues attached, none disabled), its eth0 has rx-0 and rx-1, and TCP
# works both ways.
test_kiln_net_two_vcpus_multi_queue() {
	KNET_EDIT="c.setdefault('annotations', {})['io.kiln.vcpus'] = '2'" \
		knet_up 'busybox ls /sys/class/net/eth0/queues
busybox dd if=/dev/urandom of=/tmp/up bs=1024 count=512 2>/dev/null
echo up $(busybox sha256sum /tmp/up)
busybox nc 10.77.0.1 5001 </tmp/up
busybox nc 10.77.0.1 5002 </dev/null >/tmp/down
echo down $(busybox sha256sum /tmp/down)
busybox sleep 3' || return 1
	knet_server 10.77.0.1 || { knet_down; return 1; }
	rc=0
	timeout -k 5 240 "$KILN" --root "$KROOT" run --bundle "$T/b" n10 \
		</dev/null >"$T/kout" 2>"$T/kerr" &
	kpid=$!
	tap=
	for _ in $(seq 600); do
		tap=$(ip -n "$KNET_C" -d link show 2>/dev/null |
			grep -o 'multi_queue numqueues 2 numdisabled 0')
		[ -n "$tap" ] && break
		kill -0 "$kpid" 2>/dev/null || break
		sleep 0.1
	done
	wait "$kpid" || rc=$?
	wait "$KNET_SRV"
	echo "    TAP: ${tap:-not seen with two queues}"
	[ "$rc" = 0 ] || { kiln_fail "run exited $rc"; knet_down; return 1; }
	[ -n "$tap" ] || { kiln_fail "no multi-queue TAP with 2 queues running"; knet_down; return 1; }
	grep -qx rx-1 "$T/kout" && grep -qx tx-1 "$T/kout" ||
		{ kiln_fail "the guest's eth0 lacks rx-1/tx-1"; knet_down; return 1; }
	want_up=$(awk '/^up /{print $2}' "$T/kout")
	[ -n "$want_up" ] && [ "$(cat "$T/up" 2>/dev/null)" = "524288 $want_up" ] ||
		{ kiln_fail "guest->host: sent $want_up, received '$(cat "$T/up" 2>/dev/null)'"; knet_down; return 1; }
	[ "$(awk '/^down /{print $2}' "$T/kout")" = "$(sha256sum "$T/down" | awk '{print $1}')" ] ||
		{ kiln_fail "host->guest: the download differs"; knet_down; return 1; }
	echo "    TCP both ways over the multi-queue TAP: checksums match"
	left=$(knet_leftovers)
	[ -z "$left" ] || { kiln_fail "left after the container ended: $left"; knet_down; return 1; }
	knet_down
	kiln_nothing_left
}

# Server in $KNET_H for N streams each way at once: 5001 takes N uploads
# ("bytes sha256" a line in $T/ups), 5002 sends $T/down to N downloads.
knet_server_par() { # ADDR N
	head -c 1048576 /dev/urandom >"$T/down"
	stream_server "$KNET_H" "$1" "$2" 240
	local rc=$?
	KNET_SRV=$STREAM_SRV
	return $rc
}

# Two vCPUs, two queue pairs, and four uploads then four downloads at
# once from the container: every stream ends with its data intact (the
# rx stall of issue 12 took parallel streams first).
test_kiln_net_two_vcpus_parallel_streams() {
	KNET_EDIT="c.setdefault('annotations', {})['io.kiln.vcpus'] = '2'" \
		knet_up 'busybox dd if=/dev/urandom of=/tmp/up bs=1024 count=1024 2>/dev/null
echo up $(busybox sha256sum /tmp/up)
for i in 1 2 3 4; do busybox nc 10.77.0.1 5001 </tmp/up & done
wait
for i in 1 2 3 4; do busybox nc 10.77.0.1 5002 </dev/null >/tmp/down$i & done
wait
for i in 1 2 3 4; do echo down $(busybox sha256sum /tmp/down$i); done' || return 1
	knet_server_par 10.77.0.1 4 || { knet_down; return 1; }
	rc=0
	timeout -k 5 240 "$KILN" --root "$KROOT" run --bundle "$T/b" n11 \
		</dev/null >"$T/kout" 2>"$T/kerr" || rc=$?
	wait "$KNET_SRV"
	[ "$rc" = 0 ] || { kiln_fail "run exited $rc"; knet_down; return 1; }
	want_up=$(awk '/^up /{print $2}' "$T/kout")
	[ -n "$want_up" ] && [ "$(grep -c "^1048576 $want_up\$" "$T/ups" 2>/dev/null)" = 4 ] ||
		{ kiln_fail "guest->host: want 4 x 1048576 bytes sha $want_up, got: $(cat "$T/ups" 2>/dev/null)"; knet_down; return 1; }
	want_down=$(sha256sum "$T/down" | awk '{print $1}')
	[ "$(awk '$1 == "down" { print $2 }' "$T/kout" | grep -cx "$want_down")" = 4 ] ||
		{ kiln_fail "host->guest: not 4 downloads of sha $want_down: $(grep '^down' "$T/kout" | tr '\n' ';')"; knet_down; return 1; }
	echo "    4 uploads and 4 downloads at once over two queue pairs: checksums match"
	knet_down
	kiln_nothing_left
}
