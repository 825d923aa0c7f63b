# Podman's own networking with kiln: podman 4 on Debian 12 sets networks
# up with CNI (the plugins in /usr/lib/cni). Podman runs as t_podman.sh
# runs it (storage in a tmpfs, contrib/podman/containers.conf), but in a
# network namespace made here, with its network config dir in that tmpfs:
# its cni-podman0 bridge, its iptables rules and its containers'
# namespaces hang off that namespace, and go with it. One step per
# behaviour. Uses t_podman.sh's PODMAN and pm_rt (run.sh sources every
# t_*.sh before it runs a test).

. "$TOP/test/integration/daemons.sh"

PN_NS=
PN_CL=
PN_STEPS=${KILN_PODMAN_NET_STEPS:-image bridge_tcp publish user_net rm kill9}

# Podman in the test's namespace (the "host" its containers see), its
# networks' files in $DM_DIR/cni.
pn() {
	# shellcheck disable=SC2046 # no flag or two words
	CONTAINERS_CONF=$TOP/contrib/podman/containers.conf TMPDIR=$DM_DIR/tmp \
		KILN_DM_RUN=$DM_DIR timeout -k 5 "$DM_LIMIT" \
		nsenter --net="/run/netns/$PN_NS" "$PODMAN" \
		--root "$DM_DIR/storage" --runroot "$DM_DIR/run" --tmpdir "$DM_DIR/libpod" \
		--storage-driver overlay --cgroup-manager cgroupfs --events-backend file \
		--network-config-dir "$DM_DIR/cni" $(pm_rt) "$@"
}

pn_host() {
	nsenter --net="/run/netns/$PN_NS" "$@"
}

# An interface's IPv4 address in the test's namespace
pn_addr_of() { # IFACE
	pn_host ip -4 -o addr show "$1" 2>/dev/null | awk '{print $4}' | cut -d/ -f1
}

# What kiln leaves in a namespace if it does not clean up: its TAPs
# (kt<hash>n<i>) and ingress qdiscs (the mirred redirects hang off them).
pn_leftovers() { # NETNS-FILE
	nsenter --net="$1" ip -o link show | grep -o ' kt[0-9a-f]*n[0-9]*' | tr -d ' '
	nsenter --net="$1" ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' |
		while read -r l; do
			nsenter --net="$1" tc qdisc show dev "$l" ingress 2>/dev/null |
				grep -q ingress && echo "ingress on $l"
		done
}

# Keep container NAME's network namespace alive past podman's removal
# (a bind mount of it in $DM_DIR): whatever kiln left in it can be seen.
pn_pin() { # NAME
	key=$(pn inspect -f '{{.NetworkSettings.SandboxKey}}' "$1")
	[ -n "$key" ] && [ -e "$key" ] || { fail "no network namespace for $1 ('$key')"; return 1; }
	touch "$DM_DIR/pin-$1" && mount --bind "$key" "$DM_DIR/pin-$1" ||
		{ fail "cannot pin $key"; return 1; }
}

pn_unpin() { # NAME
	umount "$DM_DIR/pin-$1" 2>/dev/null
	rm -f "$DM_DIR/pin-$1"
}

# After container NAME's removal: its namespace (pinned) holds lo alone
# (the CNI plugin took its veth, kiln its TAP and qdisc), the test's
# namespace no TAP or ingress qdisc, and no kiln-vmm of it runs.
pn_clean_after() { # NAME ID
	r=0
	left=$(pn_leftovers "$DM_DIR/pin-$1")
	[ -z "$left" ] || { fail "left in $1's namespace: $(echo "$left" | paste -sd' ')"; r=1; }
	links=$(nsenter --net="$DM_DIR/pin-$1" ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | paste -sd' ')
	[ "$links" = lo ] || { fail "$1's namespace still has: $links"; r=1; }
	left=$(pn_leftovers "/run/netns/$PN_NS")
	[ -z "$left" ] || { fail "left in podman's namespace: $(echo "$left" | paste -sd' ')"; r=1; }
	pn_id=$2
	dm_until 30 '[ -z "$(dm_vmm_of "$pn_id")" ]' || { fail "kiln-vmm of $1 still running"; r=1; }
	pn_unpin "$1"
	return $r
}

# ---- steps -----------------------------------------------------------------

pn_image() {
	dm_layer_tar "$T/pn-layer.tar" || { fail "cannot build the rootfs tar"; return 1; }
	drun pn import "$T/pn-layer.tar" "$DM_IMAGE"
	rm -f "$T/pn-layer.tar"
	dm_expect_rc 0
}

# TCP with checksums both ways, shared with t_cni.sh: pn_server, a
# container running pn_tcp_script, pn_tcp_judge.
# A server in namespace $1 (on every address: a network's bridge may
# appear with its first container): 5001 takes an upload
# to its end and writes "bytes sha256" to $T/pn-up; 5002 sends
# $T/pn-down; then it connects to the peer it saw, port 5003, and sends
# $T/pn-in (the container is reached, not only reaching).
pn_server() { # NETNS-FILE
	cat >"$T/pn-srv.py" <<'PY'
import hashlib, socket, sys, threading, time
t, addr = sys.argv[1], "0.0.0.0"
peer = []
def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    s.settimeout(200)
    return s
def up(s):
    c, p = s.accept()
    peer.append(p[0])
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
        n += len(b)
    open(t + "/pn-up", "w").write("%d %s\n" % (n, h.hexdigest()))
    c.close()
def down(s):
    c, _ = s.accept()
    c.sendall(open(t + "/pn-down", "rb").read())
    c.shutdown(socket.SHUT_WR)
    while c.recv(1 << 16):
        pass
    c.close()
a, b = listener(5001), listener(5002)
open(t + "/pn-ready", "w").write("1\n")
th = [threading.Thread(target=up, args=(a,)), threading.Thread(target=down, args=(b,))]
for x in th: x.start()
for x in th: x.join()
end = time.time() + 120
while True:
    try:
        c = socket.create_connection((peer[0], 5003), timeout=10)
        break
    except OSError:
        if time.time() > end:
            raise
        time.sleep(0.5)
c.sendall(open(t + "/pn-in", "rb").read())
c.shutdown(socket.SHUT_WR)
while c.recv(1 << 16):
    pass
c.close()
open(t + "/pn-pushed", "w").write(peer[0] + "\n")
PY
	rm -f "$T/pn-ready" "$T/pn-up" "$T/pn-pushed"
	head -c 2000000 /dev/urandom >"$T/pn-down"
	head -c 1500000 /dev/urandom >"$T/pn-in"
	nsenter --net="$1" timeout 240 python3 "$T/pn-srv.py" "$T" >"$T/pn-srv.log" 2>&1 &
	PN_SRV=$!
	# python's start alone takes seconds in a loaded bed
	dm_until 120 '[ -f "$T/pn-ready" ]' || { dm_fail "server did not start: $(cat "$T/pn-srv.log")"; return 1; }
}

# The container's side: its address and routes, an upload to and a
# download from the server at GW, then a listener the server pushes to.
pn_tcp_script() { # GW
	gw=$1
	echo "set -e; ip -o -4 addr show eth0; ip route
dd if=/dev/urandom of=/tmp/up bs=1024 count=1024 2>/dev/null
echo up \$(sha256sum /tmp/up)
nc $gw 5001 </tmp/up
nc $gw 5002 </dev/null >/tmp/down
echo down \$(sha256sum /tmp/down)
mkfifo /tmp/f; sleep 300 >/tmp/f & s=\$!
nc -l -p 5003 </tmp/f >/tmp/in; kill \$s
echo in \$(sha256sum /tmp/in)"
}

# After the container ran (drun: $T/dm.out, $drc): it had an address
# matching ADDR-ERE (address/prefix) on eth0, a default route via GW,
# and the three checksums agree with the server's.
pn_tcp_judge() { # ADDR-ERE GW
	gw=$2
	# a container that failed never connects: the server would wait 200 s
	[ "$drc" = 0 ] || kill "$PN_SRV" 2>/dev/null
	wait "$PN_SRV"
	dm_expect_rc 0 || { sed 's/^/      srv| /' "$T/pn-srv.log" | tail -n 5; return 1; }
	grep -qE "inet $1 " "$T/dm.out" ||
		{ dm_fail "no address like $1 on the guest's eth0"; return 1; }
	grep -q "^default via $gw " "$T/dm.out" || { dm_fail "no default route via $gw"; return 1; }
	[ "$(awk '/^up /{print $2}' "$T/dm.out")" = "$(awk '{print $2}' "$T/pn-up" 2>/dev/null)" ] ||
		{ dm_fail "container->host checksum differs: '$(cat "$T/pn-up" 2>/dev/null)'"; return 1; }
	[ "$(awk '/^down /{print $2}' "$T/dm.out")" = "$(dm_sha "$T/pn-down")" ] ||
		{ dm_fail "host->container (download) checksum differs"; return 1; }
	[ "$(awk '/^in /{print $2}' "$T/dm.out")" = "$(dm_sha "$T/pn-in")" ] ||
		{ dm_fail "host->container (the host's connection) checksum differs"; return 1; }
	echo "      $(grep -oE "inet $1" "$T/dm.out"), gateway $gw: 1 MiB up, 2 MB down, 1.5 MB pushed to $(cat "$T/pn-pushed")"
}

# A container on network $1 (podman's --network) has an address in
# $2 and a default route via the network's gateway, the address of its
# bridge in the test's namespace; TCP both ways with the server there.
pn_tcp() { # NETWORK ADDR-ERE
	gw=$(pn network inspect -f '{{range .Subnets}}{{.Gateway}}{{end}}' "$1")
	br=$(pn network inspect -f '{{.NetworkInterface}}' "$1")
	[ -n "$gw" ] && [ -n "$br" ] || { fail "network $1: gateway '$gw', bridge '$br'"; return 1; }
	pn_server "/run/netns/$PN_NS" || return 1
	drun pn run --rm --network "$1" "$DM_IMAGE" sh -c "$(pn_tcp_script "$gw")"
	pn_tcp_judge "$2" "$gw" || return 1
	[ "$(pn_addr_of "$br")" = "$gw" ] || fail "bridge $br has '$(pn_addr_of "$br")', not $gw"
}

# Podman's default network: CNI's bridge cni-podman0, 10.88/16.
pn_bridge_tcp() {
	pn_tcp podman '10\.88\.[0-9]+\.[0-9]+/16' || return 1
	[ "$gw" = 10.88.0.1 ] && [ "$br" = cni-podman0 ] || fail "podman's default network: gateway $gw on $br"
}

# Ask ADDR:PORT from namespace NETNS, in one python for up to 120 s:
# "LINE TRIES" once a connection gave a line (refused ones are retried).
pn_ask() { # NETNS ADDR PORT
	nsenter --net="$1" timeout 150 python3 -c '
import socket, sys, time
end, tries = time.time() + 120, 0
while time.time() < end:
    tries += 1
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
        s.settimeout(20)
        b = b""
        while not b.endswith(b"\n"):
            x = s.recv(100)
            if not x:
                break
            b += x
        s.close()
        if b.strip():
            print(b.decode().strip(), tries)
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
print("-", tries)' "$2" "$3" 2>&1
}

# -p 8080:80: the portmap plugin's DNAT reaches the guest's listener,
# from the test's namespace (OUTPUT, to the bridge's address) and from a
# client namespace beside it (PREROUTING, forwarded to the bridge).
# The listener serves one connection per nc (busybox nc -l closes once
# its stdin ended): a client that gave up early cannot take it away.
pn_publish() {
	pn rm -f web >/dev/null 2>&1
	PN_CL=kiln-pn-cl-$$
	ip netns add "$PN_CL" && ip -n "$PN_CL" link set lo up &&
		ip link add kpnh netns "$PN_NS" type veth peer name kpnc netns "$PN_CL" &&
		ip -n "$PN_NS" addr add 10.98.0.1/30 dev kpnh && ip -n "$PN_CL" addr add 10.98.0.2/30 dev kpnc &&
		ip -n "$PN_NS" link set kpnh up && ip -n "$PN_CL" link set kpnc up &&
		ip -n "$PN_CL" route add default via 10.98.0.1 || { fail "the client's namespace"; pn_publish_down; return 1; }
	drun pn run -d --name web -p 8080:80 "$DM_IMAGE" sh -c \
		'while :; do echo hello-from-kiln | nc -l -p 80; done'
	dm_expect_rc 0 || { pn_publish_down; return 1; }
	gw=$(pn_addr_of cni-podman0)
	r=0
	got=$(pn_ask "/run/netns/$PN_NS" "$gw" 8080)
	[ "${got% *}" = hello-from-kiln ] || { fail "$gw:8080 from podman's namespace: got '$got' (line, tries)"; r=1; }
	echo "      $gw:8080 from podman's namespace: '$got' (line, tries)"
	got=$(pn_ask "/run/netns/$PN_CL" 10.98.0.1 8080)
	[ "${got% *}" = hello-from-kiln ] || { fail "10.98.0.1:8080 from a client namespace: got '$got' (line, tries)"; r=1; }
	echo "      10.98.0.1:8080 from a client namespace: '$got' (line, tries)"
	# podman reserves the port with a listening socket that conmon and
	# its runtime inherit: not kiln-vmm, the process the guest talks to
	holders=$(pn_host ss -Hltnp 'sport = :8080' | grep -o '"[^"]*"' | tr -d '"' | sort -u | paste -sd' ')
	echo "      port 8080 held by: $holders"
	case " $holders " in *" kiln-vmm "*) fail "kiln-vmm holds podman's socket of port 8080"; r=1 ;; esac
	pn_publish_down
	return $r
}

pn_publish_down() {
	pn rm -f -t 0 web >/dev/null 2>&1
	ip netns del "$PN_CL" 2>/dev/null
	PN_CL=
}

# A network of podman network create (a conflist written to the config
# dir): its own bridge and subnet.
pn_user_net() {
	drun pn network create --subnet 10.89.7.0/24 kn1
	dm_expect_rc 0 || return 1
	[ -f "$DM_DIR/cni/kn1.conflist" ] || { fail "no kn1.conflist in $DM_DIR/cni: $(ls "$DM_DIR/cni" | paste -sd' ')"; return 1; }
	r=0
	pn_tcp kn1 '10\.89\.7\.[0-9]+/24' || r=1
	pn network rm kn1 >/dev/null 2>&1
	return $r
}

# podman rm -f of a running container: nothing of kiln's is left in its
# namespace or in podman's.
pn_rm() {
	pn rm -f gone >/dev/null 2>&1
	drun pn run -d --name gone "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	id=$(pn inspect -f '{{.Id}}' gone)
	pn_pin gone || { pn rm -f gone >/dev/null 2>&1; return 1; }
	if dm_kiln; then
		dm_until 60 '[ -n "$(dm_vmm_of "$id")" ]' ||
			{ fail "no kiln-vmm while the container runs"; pn rm -f gone >/dev/null 2>&1; pn_unpin gone; return 1; }
		t=$(pn_leftovers "$DM_DIR/pin-gone" | grep -c '^kt')
		[ "$t" = 1 ] || { fail "want kiln's TAP in the container's namespace, have $t"; pn rm -f gone >/dev/null 2>&1; pn_unpin gone; return 1; }
	fi
	drun pn rm -f gone
	dm_expect_rc 0 || { pn_unpin gone; return 1; }
	pn_clean_after gone "$id"
}

# kill -9 of kiln's pid process (podman's State.Pid), then podman rm -f:
# kiln delete finds what the pid process could not remove.
pn_kill9() {
	dm_kiln_only "kiln's pid process" || return 0
	pn rm -f k9 >/dev/null 2>&1
	drun pn run -d --name k9 "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	id=$(pn inspect -f '{{.Id}}' k9)
	pid=$(pn inspect -f '{{.State.Pid}}' k9)
	pn_pin k9 || { pn rm -f k9 >/dev/null 2>&1; return 1; }
	dm_until 60 '[ -n "$(dm_vmm_of "$id")" ]' ||
		{ fail "no kiln-vmm while the container runs"; pn rm -f k9 >/dev/null 2>&1; pn_unpin k9; return 1; }
	vmm=$(dm_vmm_of "$id" | head -n 1)
	[ -n "$pid" ] && [ "$(vmm_starter "$vmm")" = "$pid" ] ||
		{ fail "State.Pid '$pid' did not start kiln-vmm $vmm (kiln's pid process)"; pn rm -f k9 >/dev/null 2>&1; pn_unpin k9; return 1; }
	kill -9 "$pid"
	dm_until 60 "[ \"\$(pn inspect -f '{{.State.Running}}' k9 2>/dev/null)\" = false ]" ||
		echo "      (podman still says running 60 s after the kill)"
	drun pn rm -f k9
	dm_expect_rc 0 || { pn_unpin k9; return 1; }
	pn_clean_after k9 "$id"
}

# ---- the test --------------------------------------------------------------

pn_cleanup() {
	if [ -n "$DM_DIR" ] && [ -d "$DM_DIR/storage" ]; then
		DM_LIMIT=60 pn rm -af -t 0 >/dev/null 2>&1
	fi
	dm_stop 5
	"$DM_KILN" templates --rm >/dev/null 2>&1
	[ -n "$PN_CL" ] && ip netns del "$PN_CL" 2>/dev/null
	[ -n "$PN_NS" ] && ip netns del "$PN_NS" 2>/dev/null
	PN_NS= PN_CL=
}

test_podman_net_cni() {
	dm_need "$PODMAN" /usr/bin/conmon /usr/bin/nsenter /usr/lib/cni/bridge /usr/lib/cni/host-local \
		/usr/lib/cni/portmap || return 1
	dm_install || return 1
	PN_NS=kiln-pn-$$
	ip netns add "$PN_NS" && ip -n "$PN_NS" link set lo up || { fail "ip netns add"; return 1; }
	dm_mkdir podnet || { pn_cleanup; return 1; }
	mkdir -p "$DM_DIR/cni"
	trap pn_cleanup EXIT
	r=0
	# shellcheck disable=SC2086 # one step a word
	DM_FATAL=image dm_steps pn $PN_STEPS || r=1
	pn_cleanup
	trap - EXIT
	return $r
}
