# Bad input: one clear error line naming the problem, a non-zero status,
# no core dump, nothing left running.

bad_vmm() { # EXPECTED-TEXT ARGS...
	want=$1
	shift
	vmm "$@"
	expect_failure && one_error_line "$want" || return 1
	ls core* 2>/dev/null | grep -q . && { fail "core dump left"; return 1; }
	return 0
}

test_bad_missing_kernel() {
	bad_vmm "/nonexistent/vmlinux" --kernel /nonexistent/vmlinux
}

test_bad_no_kernel() {
	bad_vmm "no kernel"
}

test_bad_garbage_kernel() {
	head -c 3000000 /dev/urandom >"$T/garbage"
	bad_vmm "$T/garbage" --kernel "$T/garbage" --initrd "$GUEST/initramfs"
}

test_bad_empty_kernel() {
	: >"$T/empty"
	bad_vmm "$T/empty" --kernel "$T/empty"
}

test_bad_truncated_bzimage() {
	head -c 200000 "$GUEST/bzImage" >"$T/trunc"
	bad_vmm "$T/trunc" --kernel "$T/trunc"
}

test_bad_truncated_vmlinux() {
	head -c 1000000 "$GUEST/vmlinux" >"$T/trunc"
	bad_vmm "$T/trunc" --kernel "$T/trunc"
}

# an ELF whose PT_LOAD segment lies beyond the end of guest RAM
test_bad_elf_outside_ram() {
	python3 "$TOP/test/integration/mkelf.py" outside "$T/bad.elf"
	bad_vmm "RAM" --kernel "$T/bad.elf" --mem 64
}

test_bad_elf_overlapping_segments() {
	python3 "$TOP/test/integration/mkelf.py" overlap "$T/bad.elf"
	bad_vmm "overlap" --kernel "$T/bad.elf"
}

test_bad_missing_initrd() {
	bad_vmm "/nonexistent/initrd" --kernel "$GUEST/vmlinux" --initrd /nonexistent/initrd
}

test_bad_zero_vcpus() {
	bad_vmm "vCPUs" --kernel "$GUEST/vmlinux" --vcpus 0
}

test_bad_too_many_vcpus() {
	bad_vmm "--vcpus 33" --kernel "$GUEST/vmlinux" --vcpus 33
}

test_bad_vcpus_not_a_number() {
	bad_vmm "not a number" --kernel "$GUEST/vmlinux" --vcpus two
}

test_bad_memory_larger_than_host() {
	bad_vmm "exceeds the host" --kernel "$GUEST/vmlinux" --mem 500000
}

test_bad_memory_too_small() {
	bad_vmm "at least 16" --kernel "$GUEST/vmlinux" --mem 4
}

test_bad_unknown_config_key() {
	echo '{"boot-source": {"kernel_image_path": "/k"}, "machine-confg": {}}' >"$T/vm.json"
	bad_vmm "unknown key \`machine-confg\`" --config-file "$T/vm.json"
}

# --config-file is checked as the API checks each request: the same words
test_bad_config_missing_drive() {
	printf '{"boot-source": {"kernel_image_path": "%s"}, "drives": [{"drive_id":
		"data", "path_on_host": "%s", "is_root_device": false}]}' \
		"$GUEST/vmlinux" "$T/no.img" >"$T/vm.json"
	bad_vmm "drive data: open \`$T/no.img\`: No such file or directory" \
		--config-file "$T/vm.json"
}

test_bad_config_missing_kernel() {
	printf '{"boot-source": {"kernel_image_path": "%s"}}' "$T/no-vmlinux" >"$T/vm.json"
	bad_vmm "open kernel \`$T/no-vmlinux\`: No such file or directory" \
		--config-file "$T/vm.json"
}

test_bad_config_not_json() {
	echo '{"boot-source": ' >"$T/vm.json"
	bad_vmm "invalid JSON" --config-file "$T/vm.json"
}

test_bad_unknown_flag() {
	bad_vmm "--bogus" --kernel "$GUEST/vmlinux" --bogus
}

test_bad_cmdline_too_long() {
	bad_vmm "command line" --kernel "$GUEST/vmlinux" --cmdline "$(head -c 3000 /dev/zero | tr '\0' x)"
}
