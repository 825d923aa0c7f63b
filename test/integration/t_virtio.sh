# virtio devices, judged by the guest's own tools.

test_virtio_rng_gives_bytes() {
	guest_script rng --entropy
}

# without --entropy there is no virtio-rng and the script must fail
test_virtio_rng_absent_without_entropy() {
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet kiln.script=/tests/rng.sh"
	expect_rc 0 && console_has KILN-INIT-END || return 1
	grep -qx KILN-SCRIPT-RC=0 "$T/out" && { fail "rng.sh passed with no rng device"; return 1; }
	return 0
}
