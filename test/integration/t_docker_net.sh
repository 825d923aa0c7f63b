# Docker's own networking with kiln: one dockerd with its default bridge
# and its iptables rules, in a network namespace made here (docker0, its
# NAT and docker-proxy live there, nowhere else), then one step per
# behaviour. Shares t_docker.sh's helpers (dk, dkr, dm_*).

. "$TOP/test/integration/daemons.sh"

DKN_NS=
DKN_STEPS=${KILN_DOCKER_NET_STEPS:-image bridge_tcp fork none publish dns}

# In dockerd's namespace (the "host" the containers see).
dkn_host() {
	nsenter --net="/run/netns/$DKN_NS" "$@"
}

dkn_image() {
	dk_image
}

# A container on the default bridge has a 172.17/16 address and a
# default route via docker0; TCP both ways with checksums.
dkn_bridge_tcp() {
	gw=$(dkn_host ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
	[ -n "$gw" ] || { dm_fail "docker0 has no address"; return 1; }
	cat >"$T/dkn-srv.py" <<'PY'
import hashlib, socket, sys, threading
t, addr = sys.argv[1], sys.argv[2]
def listener(port):
    s = socket.socket()
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
    open(t + "/dkn-up", "w").write("%d %s\n" % (n, h.hexdigest()))
    c.close()
def down(s):
    c, _ = s.accept()
    c.sendall(open(t + "/dkn-down", "rb").read())
    c.shutdown(socket.SHUT_WR)
    while c.recv(1 << 16):
        pass
    c.close()
a, b = listener(5001), listener(5002)
open(t + "/dkn-ready", "w").write("1\n")
th = [threading.Thread(target=up, args=(a,)), threading.Thread(target=down, args=(b,))]
for x in th: x.start()
for x in th: x.join()
PY
	rm -f "$T/dkn-ready" "$T/dkn-up"
	head -c 2000000 /dev/urandom >"$T/dkn-down"
	dkn_host timeout 200 python3 "$T/dkn-srv.py" "$T" "$gw" >"$T/dkn-srv.log" 2>&1 &
	srv=$!
	# python's start alone takes seconds in a loaded bed
	dm_until 120 '[ -f "$T/dkn-ready" ]' || { dm_fail "server did not start: $(cat "$T/dkn-srv.log")"; return 1; }
	drun dkr --rm "$DM_IMAGE" sh -c "set -e; ip -o -4 addr show eth0; ip route
dd if=/dev/urandom of=/tmp/up bs=1024 count=1024 2>/dev/null
echo up \$(sha256sum /tmp/up)
nc $gw 5001 </tmp/up
nc $gw 5002 </dev/null >/tmp/down
echo down \$(sha256sum /tmp/down)"
	wait "$srv"
	dm_expect_rc 0 || return 1
	grep -q 'inet 172\.17\.[0-9]*\.[0-9]*/16' "$T/dm.out" ||
		{ dm_fail "no 172.17/16 address on the guest's eth0"; return 1; }
	grep -q "^default via $gw" "$T/dm.out" || { dm_fail "no default route via $gw"; return 1; }
	[ "$(awk '/^up /{print $2}' "$T/dm.out")" = "$(awk '{print $2}' "$T/dkn-up" 2>/dev/null)" ] ||
		{ dm_fail "container->host checksum differs: '$(cat "$T/dkn-up" 2>/dev/null)'"; return 1; }
	[ "$(awk '/^down /{print $2}' "$T/dm.out")" = "$(sha256sum "$T/dkn-down" | cut -d' ' -f1)" ] ||
		{ dm_fail "host->container checksum differs"; return 1; }
}

# After bridge_tcp a template with one interface exists: a container on
# the bridge forks it; its eth0 has docker's MAC for it (not the
# template's), and it reaches the bridge's gateway.
dkn_fork() {
	dm_kiln || return 0
	gw=$(dkn_host ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
	dk_fork_start fkn || return 1
	mac=$(dk inspect -f '{{.NetworkSettings.MacAddress}}' fkn)
	drun dk exec fkn sh -c "cat /sys/class/net/eth0/address; ping -c 1 -W 10 $gw >/dev/null && echo reached"
	dk rm -f fkn >/dev/null 2>&1
	dm_expect_rc 0 && dm_out_is "$mac" reached
}

# --network none: lo only (and the guest kernel's sit0): no Ethernet.
dkn_none() {
	drun dkr --rm --network none "$DM_IMAGE" sh -c 'ip -o link show | grep -c link/ether; ip -o link show'
	dm_out_has 0 || return 1
	[ "$(sed -n 1p "$T/dm.out")" = 0 ] || dm_fail "an Ethernet interface with --network none"
	grep -q ': lo: <LOOPBACK,UP' "$T/dm.out" || dm_fail "lo is not up"
}

# -p: docker's DNAT and docker-proxy reach the guest's listener. busybox
# httpd serves every connection (an nc -l loop served one per turn, and a
# client that gave up on a slow answer left the port closed for the
# turn's length: the cause of the step's earlier failures in loaded beds).
dkn_publish() {
	drun dkr -d --name web -p 8080:80 "$DM_IMAGE" sh -c \
		'mkdir -p /www && echo hello-from-kiln >/www/index.html && exec httpd -f -p 80 -h /www'
	dm_expect_rc 0 || return 1
	gw=$(dkn_host ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
	got=
	end=$(($(date +%s) + 180))
	while [ "$(date +%s)" -lt "$end" ]; do
		got=$(dkn_host timeout 30 python3 -c '
import sys, urllib.request
print(urllib.request.urlopen("http://%s:8080/" % sys.argv[1], timeout=25).read().decode().strip())' "$gw" 2>/dev/null)
		[ "$got" = hello-from-kiln ] && break
		sleep 1
	done
	dk rm -f web >/dev/null 2>&1
	[ "$got" = hello-from-kiln ] || dm_fail "port 8080 did not answer with the container's page (got '$got')"
}

# A user-defined network: docker's embedded DNS (127.0.0.11, answered in
# each container's namespace on the host) reached from the guests through
# the agent's relay and the pid process's; two kiln containers find each
# other by name and talk over TCP.
dkn_dns() {
	dk network create kiln-user >/dev/null 2>&1 || { dm_fail "docker network create"; return 1; }
	drun dkr -d --name srv --network kiln-user "$DM_IMAGE" sh -c \
		'mkdir -p /www && echo hello-from-srv >/www/index.html && exec httpd -f -p 80 -h /www'
	dm_expect_rc 0 || { dkn_dns_clean; return 1; }
	drun dkr -d --name cli --network kiln-user "$DM_IMAGE" sleep 600
	dm_expect_rc 0 || { dkn_dns_clean; return 1; }
	srv=$(dk inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' srv)
	cli=$(dk inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' cli)
	# busybox's nslookup asks 127.0.0.11 itself (static glibc's resolver,
	# under wget's or nc's names, has no NSS here: nc gets the address)
	drun dk exec cli sh -c 'grep nameserver /etc/resolv.conf
a=$(nslookup srv 2>&1 | sed -n "s/^Address: *\([0-9.]*\)$/\1/p" | tail -n 1)
echo "srv is $a"
printf "GET / HTTP/1.0\r\n\r\n" | nc "$a" 80 | tr -d "\r"'
	dm_expect_rc 0 || { dkn_dns_clean; return 1; }
	dm_out_has "nameserver 127.0.0.11" || { dkn_dns_clean; return 1; }
	dm_out_has "srv is $srv" || { dkn_dns_clean; return 1; }
	dm_out_has hello-from-srv || { dkn_dns_clean; return 1; }
	drun dk exec srv sh -c 'nslookup cli 2>&1 | sed -n "s/^Address: *\([0-9.]*\)$/cli is \1/p"; nslookup no-such-name.invalid >/dev/null 2>&1 || echo unknown refused'
	dkn_dns_clean
	dm_expect_rc 0 && dm_out_has "cli is $cli" && dm_out_has "unknown refused"
}

dkn_dns_clean() {
	dk rm -f srv cli >/dev/null 2>&1
	dk network rm kiln-user >/dev/null 2>&1
}

dkn_cleanup() {
	dk_cleanup
	[ -n "$DKN_NS" ] && ip netns del "$DKN_NS" 2>/dev/null
	DKN_NS=
}

test_docker_net_default_bridge() {
	dm_need "$DOCKER" "$DOCKERD" /usr/bin/containerd /usr/bin/nsenter || return 1
	dm_install || return 1
	DKN_NS=kiln-dkn-$$
	ip netns add "$DKN_NS" && ip -n "$DKN_NS" link set lo up ||
		{ fail "ip netns add"; return 1; }
	dm_mkdir dockernet || { dkn_cleanup; return 1; }
	trap dkn_cleanup EXIT
	mkdir -p "$DM_DIR/cli"
	dm_spawn nsenter --net="/run/netns/$DKN_NS" "$DOCKERD" \
		--config-file "$TOP/contrib/docker/daemon.json" \
		--data-root "$DM_DIR/data" --exec-root "$DM_DIR/exec" \
		--pidfile "$DM_DIR/dockerd.pid" -H "unix://$DM_DIR/docker.sock" \
		--storage-driver overlay2
	if ! dm_until 120 'dk version'; then
		fail "dockerd did not answer within 120 s"
		dm_log_tail 20
		dkn_cleanup
		return 1
	fi
	r=0
	DM_FATAL=image dm_steps dkn $DKN_STEPS || r=1
	[ "$r" -eq 0 ] || dm_log_tail 15
	dkn_cleanup
	trap - EXIT
	return $r
}
