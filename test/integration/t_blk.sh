# virtio-blk, judged by the guest's own tools and by debugfs on the host.

# An ext4 image $1 of 32 MiB with known files and their SHA256SUMS.
blk_mkimage() { # IMAGE TAG
	rm -rf "$T/fs.$2"
	mkdir -p "$T/fs.$2/sub"
	echo "hello from the host ($2)" >"$T/fs.$2/hello.txt"
	head -c 1048576 /dev/urandom >"$T/fs.$2/sub/random.bin"
	seq 1 5000 >"$T/fs.$2/sub/numbers.txt"
	(cd "$T/fs.$2" && sha256sum hello.txt sub/random.bin sub/numbers.txt >SHA256SUMS)
	rm -f "$1"
	mkfs.ext4 -q -F -d "$T/fs.$2" "$1" 32M >/dev/null 2>&1 ||
		{ fail "mkfs.ext4 -d $1"; return 1; }
}

# Write on one boot, read back on the next; check with debugfs on the host.
test_blk_ext4_write_survives_restart() {
	blk_mkimage "$T/data.img" data || return 1
	guest_script blk_write --drive "id=data,path=$T/data.img" || return 1
	grep -q 'blk_write done' "$T/out" || { fail "blk_write did not finish"; return 1; }
	guest_script blk_check --drive "id=data,path=$T/data.img" || return 1
	debugfs -R "dump /new.txt $T/new.txt" "$T/data.img" >/dev/null 2>&1 ||
		{ fail "debugfs dump"; return 1; }
	seq 1 20000 | cmp -s - "$T/new.txt" ||
		{ fail "new.txt on the host differs"; return 1; }
	e2fsck -fn "$T/data.img" >"$T/fsck" 2>&1 ||
		{ fail "e2fsck: $(tail -n 5 "$T/fsck")"; return 1; }
}

# A read-only root drive: refused writes, working reads, image unchanged.
test_blk_read_only_drive() {
	blk_mkimage "$T/data.img" data || return 1
	blk_mkimage "$T/ro.img" ro || return 1
	before=$(sha256sum <"$T/ro.img")
	guest_script blk_ro --drive "id=data,path=$T/data.img" \
		--drive "id=sys,path=$T/ro.img,ro,root" || return 1
	[ "$(sha256sum <"$T/ro.img")" = "$before" ] ||
		{ fail "the read-only image changed"; return 1; }
}

# A missing image: one clear error line naming the path, non-zero status.
test_blk_missing_image_fails() {
	vmm --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--drive "id=gone,path=$T/no-such.img" \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet"
	expect_failure && one_error_line "$T/no-such.img"
}
