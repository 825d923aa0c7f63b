# virtio-fs over vhost-user: kiln-vmm as the frontend, Debian's virtiofsd
# serving a host directory. The guest mounts it, reads what the host wrote,
# writes what the host then reads; kill -9 of virtiofsd leaves the VM and
# its API running.

VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}

# Start virtiofsd on $T/vfs.sock serving $1; its pid in $vfs_pid.
vfs_start() { # DIR
	rm -f "$T/vfs.sock"
	"$VIRTIOFSD" --socket-path="$T/vfs.sock" -o source="$1" -o cache=none \
		>"$T/vfs.log" 2>&1 &
	vfs_pid=$!
	for _ in $(seq 100); do
		[ -S "$T/vfs.sock" ] && return 0
		sleep 0.1
	done
	fail "virtiofsd never made its socket: $(tail -n 5 "$T/vfs.log")"
	return 1
}

# The running guest's console (lines end in \r\n) has this line.
fs_out_has() { # LINE
	tr -d '\r' <"$T/out" | grep -qxF -- "$1"
}

test_fs_virtiofsd_share() {
	[ -x "$VIRTIOFSD" ] || { skip "no $VIRTIOFSD"; return 0; }
	rm -rf "$T/share"
	mkdir -p "$T/share"
	echo "hello from the host" >"$T/share/from_host.txt"
	vfs_start "$T/share" || return 1
	api_start || { kill -9 "$vfs_pid"; return 1; }
	api_configure fs_share || return 1
	# bad input first: each refused, nothing configured
	api_fault "socket" PUT /fs/nosock "{\"fs_id\": \"nosock\", \"tag\": \"x\",
		\"socket_path\": \"$T/no-such.sock\"}" || return 1
	api_fault "tag" PUT /fs/long "{\"fs_id\": \"long\",
		\"tag\": \"0123456789012345678901234567890123456\",
		\"socket_path\": \"$T/vfs.sock\"}" || return 1
	api_fault "queue_size" PUT /fs/qs "{\"fs_id\": \"qs\", \"tag\": \"q\",
		\"socket_path\": \"$T/vfs.sock\", \"queue_size\": 100}" || return 1
	api_ok 204 PUT /fs/share "{\"fs_id\": \"share\", \"tag\": \"hostshare\",
		\"socket_path\": \"$T/vfs.sock\", \"num_queues\": 1,
		\"queue_size\": 256}" || return 1
	api_ok 200 GET /vm/config || return 1
	printf '%s' "$body" | grep -q '"tag":"hostshare"' ||
		{ fail "GET /vm/config lacks the fs entry: $body"; return 1; }
	api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	wait_line "FS-WRITTEN" 120 "$T/out" ||
		{ fail "the guest never wrote"; tail -n 20 "$T/out"; tail "$T/err"; kill -9 "$vfs_pid"; return 1; }
	fs_out_has "FS-MOUNTED 1" ||
		{ fail "no virtiofs mount in the guest: $(grep FS- "$T/out")"; return 1; }
	fs_out_has "FS-HOST-SAYS hello from the host" ||
		{ fail "the guest read something else: $(grep FS-HOST "$T/out")"; return 1; }
	seq 1 5000 | cmp -s - "$T/share/from_guest.txt" ||
		{ fail "from_guest.txt on the host differs"; kill -9 "$vfs_pid"; return 1; }
	[ "$(cat "$T/share/note.txt")" = "written by the guest" ] ||
		{ fail "note.txt: $(cat "$T/share/note.txt")"; return 1; }
	[ "$(stat -c %a "$T/share/note.txt")" = 640 ] ||
		{ fail "note.txt mode $(stat -c %a "$T/share/note.txt"), want 640"; return 1; }
	# the backend dies: the VM, its console and its API go on
	kill -9 "$vfs_pid"
	wait "$vfs_pid" 2>/dev/null
	t0=$(ticks)
	wait_line "TICK $((t0 + 20))" 60 "$T/out" ||
		{ fail "the guest stopped after the backend died"; tail "$T/err"; return 1; }
	api_ok 200 GET / && [ "$(json_get state)" = Running ] ||
		{ fail "state after the backend died: $body"; return 1; }
	grep -q "backend lost" "$T/err" ||
		{ fail "kiln-vmm did not report the lost backend: $(tail -n 5 "$T/err")"; return 1; }
	# a snapshot of it is refused by name
	api_ok 204 PATCH /vm '{"state": "Paused"}' || return 1
	api_fault "virtio-fs" PUT /snapshot/create "{\"snapshot_path\": \"$T/snap\",
		\"mem_file_path\": \"$T/snap.mem\"}" || return 1
	kill -TERM "$(pgrep -P "$api_pid" -x kiln-vmm)"
	api_wait
	expect_rc 143
}

# A backend socket that nobody serves: InstanceStart fails with one clear
# error, the VMM does not hang.
test_fs_backend_gone_at_start() {
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/dead.sock"
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--fs "id=dead,tag=dead,socket=$T/dead.sock" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet"
	expect_failure && grep -q "dead.sock" "$T/err" ||
		{ fail "want an error naming the socket: $(cat "$T/err")"; return 1; }
}
