# A guest boots to our init, which reports what it sees, and reboots;
# kiln-vmm then exits 0. Judged by the guest's own console output.

boot_ok() { # KERNEL VCPUS MEM_MIB
	vmm --kernel "$1" --initrd "$GUEST/initramfs" --vcpus "$2" --mem "$3" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet"
	expect_rc 0 || return 1
	console_has KILN-INIT-OK "cpus=$2" KILN-INIT-END || return 1
	# MemTotal is RAM less what the kernel keeps: between 3/4 and all of it
	kib=$(sed -n 's/^mem_kib=//p' "$T/out")
	[ -n "$kib" ] && [ "$kib" -le $(($3 * 1024)) ] && [ "$kib" -ge $(($3 * 768)) ] ||
		{ fail "mem_kib=$kib for $3 MiB"; return 1; }
	# RAM stops at 3 GiB (the MMIO hole) and the rest lies above 4 GiB:
	# the guest's e820 RAM there (/proc/iomem) must be all of that rest
	high=$(sed -n 's/^ram_above_4g_kib=//p' "$T/out")
	want=$(($3 > 3072 ? ($3 - 3072) * 1024 : 0))
	[ "$high" = "$want" ] ||
		{ fail "RAM above 4 GiB: ${high:-no line} KiB, want $want for $3 MiB"; return 1; }
	grep -q 'guest init reached after [0-9.]* ms' "$T/err" ||
		{ fail "no boot-timer line"; cat "$T/err"; return 1; }
	grep -qF 'guest reboot (i8042 reset)' "$T/err" ||
		{ fail "reboot did not come through the i8042"; return 1; }
}

test_boot_vmlinux_1cpu() { boot_ok "$GUEST/vmlinux" 1 128; }
test_boot_vmlinux_2cpu() { boot_ok "$GUEST/vmlinux" 2 256; }
test_boot_bzimage_1cpu() { boot_ok "$GUEST/bzImage" 1 128; }
test_boot_bzimage_2cpu() { boot_ok "$GUEST/bzImage" 2 256; }
# 4 vCPUs on one emulated core and 3.5 GiB of struct pages: over 120 s
# in a bed that shares the machine's 2 cores with two other beds
test_boot_4cpu_memory_above_4g() { VMM_TIMEOUT=360 boot_ok "$GUEST/vmlinux" 4 3584; }

test_boot_config_file() {
	cat >"$T/vm.json" <<JSON
{
  "boot-source": {
    "kernel_image_path": "$GUEST/bzImage",
    "initrd_path": "$GUEST/initramfs",
    "boot_args": "console=ttyS0 reboot=k panic=1 quiet"
  },
  "machine-config": { "vcpu_count": 2, "mem_size_mib": 192, "smt": false },
  "drives": []
}
JSON
	vmm --no-api --config-file "$T/vm.json"
	expect_rc 0 && console_has KILN-INIT-OK cpus=2 KILN-INIT-END
}

test_console_to_file() {
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--console "$T/console.log" --cmdline "console=ttyS0 reboot=k quiet"
	expect_rc 0 || return 1
	crlf "$T/console.log"
	[ ! -s "$T/out" ] || { fail "console leaked to stdout"; return 1; }
	grep -qx KILN-INIT-OK "$T/console.log" || { fail "console file lacks the marker"; return 1; }
}

# reboot=t makes Linux reboot by triple fault: a real PC resets, we end.
test_guest_triple_fault_ends_vm() {
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--cmdline "console=ttyS0 reboot=t panic=1 quiet"
	expect_rc 0 && console_has KILN-INIT-END || return 1
	grep -q 'triple fault' "$T/err" || { fail "no triple-fault log"; cat "$T/err"; return 1; }
}

# The guest pokes unused ports (PCI config, fw_cfg, ...): it carries on,
# every write is dropped and every read floats to all ones at its width.
test_guest_unknown_ports_continue() {
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--cmdline "console=ttyS0 reboot=k quiet kiln.ports=1"
	expect_rc 0 && console_has KILN-PORTS-OK KILN-INIT-END || return 1
	console_has "ports=1234:ff,2f0:ffff,cf8:ffffffff,cfc:ffffffff,511:ff"
}

# A kernel panic with panic=1 reboots: the VMM ends cleanly.
test_guest_panic_ends_vm() {
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--cmdline "console=ttyS0 reboot=k panic=1 rdinit=/nonexistent init=/nonexistent"
	expect_rc 0 || return 1
	grep -q 'Kernel panic' "$T/out" || { fail "no panic on the console"; return 1; }
}

# SIGTERM while the guest runs: the VMM stops, status 128+15, nothing left.
test_sigterm_stops_vm() {
	timeout -k 5 120 "$VMM" --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--cmdline "console=ttyS0 reboot=k quiet kiln.hold=60000" >"$T/out" 2>"$T/err" &
	pid=$!
	wait_line KILN-INIT-OK 100 "$T/out" || { kill -9 $pid; fail "guest never reached init"; return 1; }
	kill -TERM $pid
	rc=0
	wait $pid || rc=$?
	expect_rc 143 || return 1
	grep -q 'stopped by signal 15' "$T/err" || { fail "no signal log line"; return 1; }
}

# Run a guest-side script from the initramfs (test/guest/scripts/NAME.sh);
# the guest prints KILN-SCRIPT-RC=<status>, which must be 0.
guest_script() { # NAME [KILN-VMM ARGS...]
	name=$1
	shift
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" "$@" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet kiln.script=/tests/$name.sh"
	expect_rc 0 && console_has KILN-SCRIPT-RC=0 KILN-INIT-END
}
