# virtio-vsock with Firecracker's host side: host CONNECT clients echoed
# by the guest, a guest connection to <uds>_6000, concurrent and large.

VSOCK_CLIENTS=${VSOCK_CLIENTS:-16}
VSOCK_BYTES=${VSOCK_BYTES:-8388608}

test_vsock_streams_both_ways() {
	uds=$T/v.sock
	rm -f "$uds" "${uds}_6000"
	python3 "$TOP/test/integration/vsock_host.py" serve "${uds}_6000" \
		>"$T/serve.log" 2>&1 &
	spid=$!
	for _ in $(seq 300); do [ -S "${uds}_6000" ] && break; sleep 0.1; done
	[ -S "${uds}_6000" ] || { kill $spid; fail "host listener never came up"; return 1; }
	timeout -k 5 "${VMM_TIMEOUT:-300}" "$VMM" --kernel "$GUEST/vmlinux" \
		--initrd "$GUEST/initramfs" --mem 256 --vsock "cid=3,uds=$uds" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet kiln.script=/tests/vsock.sh" \
		>"$T/out" 2>"$T/err" &
	vpid=$!
	crc=1
	if wait_line KILN-VSOCK-READY 120 "$T/out"; then
		crc=0
		python3 "$TOP/test/integration/vsock_host.py" clients "$uds" 5000 \
			"$VSOCK_CLIENTS" "$VSOCK_BYTES" 5001 >"$T/clients.log" 2>&1 || crc=$?
	fi
	rc=0
	wait $vpid || rc=$?
	crlf "$T/out"
	kill $spid 2>/dev/null
	wait $spid 2>/dev/null
	sed 's/^/    host: /' "$T/serve.log" "$T/clients.log" 2>/dev/null
	grep -E '^(guest-to-host|host verdict)' "$T/out" | sed 's/^/    guest: /'
	[ "$crc" -eq 0 ] || { fail "host clients failed"; tail -n 20 "$T/out" | sed 's/^/    | /'; return 1; }
	expect_rc 0 && console_has KILN-SCRIPT-RC=0 KILN-INIT-END || return 1
	[ ! -e "$uds" ] || { fail "$uds left behind"; return 1; }
}

# The VMM refuses to start when the uds path cannot be bound, naming it.
test_vsock_bad_uds_path() {
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--vsock "cid=3,uds=$T/no/such/dir/v.sock" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet"
	expect_failure && one_error_line "$T/no/such/dir/v.sock"
}
