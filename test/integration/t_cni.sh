# containerd with CNI plugins (Debian's containernetworking-plugins:
# bridge + host-local in /usr/lib/cni), as a CNI-using engine does it:
# the test makes a network namespace, runs the bridge plugin on it
# (CNI_COMMAND=ADD, the config on stdin), and has ctr run the container
# in it (--with-ns network:...); CNI_COMMAND=DEL after the container
# went. ctr's own --cni is no use here: it reads /etc/cni/net.d and
# /opt/cni/bin only, and it runs CNI after the task's create, when kiln
# has wired the namespace's interfaces (none yet) into the VM.
# The bridge lives in a second namespace made here (the "host" side),
# the plugin's IPAM state in the test's tmpfs: nothing touches the
# machine's own namespace.
# Uses t_containerd.sh's containerd helpers (cd_up, cdctl, cdr, cd_image,
# cd_cleanup) and t_podman_net.sh's TCP-with-checksums ones (pn_server,
# pn_tcp_script, pn_tcp_judge, pn_leftovers); run.sh sources every t_*.sh.

. "$TOP/test/integration/daemons.sh"

CNI_BIN=/usr/lib/cni
CNI_H=
CNI_C=
CNI_NET=10.99.3
CNI_GW=$CNI_NET.1
CNI_BR=kcni0
CNI_STEPS=${KILN_CNI_STEPS:-image kiln_shim runc_shim}

# The bridge plugin, in the host-side namespace, on container ID's
# namespace $CNI_C; its result (or error) in $T/cni.json.
cni_plugin() { # ADD|DEL ID
	CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$CNI_C CNI_IFNAME=eth0 \
		CNI_PATH=$CNI_BIN nsenter --net="/run/netns/$CNI_H" "$CNI_BIN/bridge" \
		<"$DM_DIR/cni.conf" >"$T/cni.json" 2>&1
}

cni_conf() {
	cat >"$DM_DIR/cni.conf" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kiln-cni",
  "type": "bridge",
  "bridge": "$CNI_BR",
  "isGateway": true,
  "ipMasq": false,
  "ipam": {
    "type": "host-local",
    "ranges": [[{ "subnet": "$CNI_NET.0/24", "rangeStart": "$CNI_NET.50",
                  "rangeEnd": "$CNI_NET.60", "gateway": "$CNI_GW" }]],
    "routes": [{ "dst": "0.0.0.0/0" }],
    "dataDir": "$DM_DIR/ipam"
  }
}
EOF
}

cni_links() { # NETNS
	ip -n "$1" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | paste -sd' '
}

cni_del_ns() {
	[ -n "$CNI_C" ] && ip netns del "$CNI_C" 2>/dev/null
	CNI_C=
}

# A container of ctr run $CD_RT (ID) in a namespace the CNI bridge
# plugin set up: its eth0 has the address host-local gave (in the
# configured range), its default route is the bridge's gateway, TCP with
# checksums both ways with a server on the host side. Once the container
# went: no kiln-vmm, no TAP or ingress qdisc in the namespace (only the
# plugin's veth, and lo); after DEL, lo alone and the address released.
cni_run() { # ID
	id=$1
	CNI_C=kiln-cni-$id-$$
	ip netns add "$CNI_C" && ip -n "$CNI_C" link set lo up || { fail "ip netns add $CNI_C"; return 1; }
	cni_plugin ADD "$id" || { fail "CNI ADD: $(cat "$T/cni.json")"; cni_del_ns; return 1; }
	addr=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ips"][0]["address"])' "$T/cni.json")
	ip=${addr%/*}
	case "$ip" in
	"$CNI_NET".5[0-9] | "$CNI_NET".60) ;;
	*) fail "host-local gave '$addr', not one of $CNI_NET.50-60"; cni_plugin DEL "$id"; cni_del_ns; return 1 ;;
	esac
	[ -f "$DM_DIR/ipam/kiln-cni/$ip" ] || { fail "no lease $DM_DIR/ipam/kiln-cni/$ip"; cni_plugin DEL "$id"; cni_del_ns; return 1; }
	r=0
	pn_server "/run/netns/$CNI_H" || { cni_plugin DEL "$id"; cni_del_ns; return 1; }
	drun cdr --rm --with-ns "network:/run/netns/$CNI_C" "$CD_IMG" "$id" sh -c "$(pn_tcp_script "$CNI_GW")"
	pn_tcp_judge "${addr//./\\.}" "$CNI_GW" || r=1
	# ctr run --rm removed the container: nothing of kiln's is left
	dm_until 30 '[ -z "$(dm_vmms)" ]' || { fail "kiln-vmm still running: $(dm_vmms)"; r=1; }
	left=$(pn_leftovers "/run/netns/$CNI_C")
	[ -z "$left" ] || { fail "left in the container's namespace: $(echo "$left" | paste -sd' ')"; r=1; }
	[ "$(cni_links "$CNI_C")" = "eth0 lo" ] || { fail "the container's namespace has: $(cni_links "$CNI_C"), want eth0 lo"; r=1; }
	left=$(pn_leftovers "/run/netns/$CNI_H")
	[ -z "$left" ] || { fail "left in the host side's namespace: $(echo "$left" | paste -sd' ')"; r=1; }
	cni_plugin DEL "$id" || { fail "CNI DEL: $(cat "$T/cni.json")"; r=1; }
	[ "$(cni_links "$CNI_C")" = lo ] || { fail "after DEL the container's namespace has: $(cni_links "$CNI_C")"; r=1; }
	[ ! -e "$DM_DIR/ipam/kiln-cni/$ip" ] || { fail "the lease of $ip outlived DEL"; r=1; }
	cni_del_ns
	return $r
}

# ---- steps -----------------------------------------------------------------

cni_image() {
	cd_image
}

cni_kiln_shim() {
	dm_kiln_only "kiln's shim" || return 0
	CD_RT="--runtime io.containerd.kiln.v2"
	cni_run ks
}

cni_runc_shim() {
	CD_RT="--runtime io.containerd.runc.v2 --runc-binary $(cd_binary)"
	cni_run rs
}

# ---- the test --------------------------------------------------------------

cni_cleanup() {
	cni_del_ns
	# the runc shim's kiln root: its warm templates (cd_cleanup ends the
	# kiln shim's)
	! dm_kiln || "$DM_KILN" --root "/run/containerd/runc/$CD_NS" templates --rm >/dev/null 2>&1
	rm -rf "/run/containerd/runc/$CD_NS" 2>/dev/null
	CD_RTSTATE=/run/kiln/shim/$CD_NS
	cd_cleanup
	[ -n "$CNI_H" ] && ip netns del "$CNI_H" 2>/dev/null
	CNI_H=
}

test_cni_containerd() {
	dm_need "$CONTAINERD" "$CTR" /usr/bin/containerd-shim-runc-v2 /usr/bin/nsenter \
		"$CNI_BIN/bridge" "$CNI_BIN/host-local" || return 1
	dm_install || return 1
	CNI_H=kiln-cni-h-$$
	ip netns add "$CNI_H" && ip -n "$CNI_H" link set lo up || { fail "ip netns add"; return 1; }
	dm_mkdir cni || { cni_cleanup; return 1; }
	trap cni_cleanup EXIT
	cni_conf
	r=0
	if cd_up; then
		# shellcheck disable=SC2086 # one step a word
		DM_FATAL=image dm_steps cni $CNI_STEPS || r=1
	else
		r=1
	fi
	[ "$r" -eq 0 ] || dm_log_tail 15
	cni_cleanup
	trap - EXIT
	return $r
}
