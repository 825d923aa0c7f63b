#!/bin/sh
# Prepare the KVM test bed's L1 kernel from Debian's linux-image .deb (which
# hack/install-deps.sh downloads) and print where its parts are:
#   TB_KERNEL=<vmlinux>  TB_INITRD=<initramfs>  TB_MODDIR=<module tree>
# one per line on stdout; progress goes to stderr. hack/testbed calls it
# before each run: when everything is up to date it only hashes a few files.
#
# usage: hack/testbed-setup.sh [linux-image-*.deb]
#   default: the newest linux-image-<abi>-amd64_*.deb in $CACHE/debs
#
# Layout, in $CACHE/testbed/<abi>/ (CACHE=${KILN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}):
#   deb                 name of the .deb the folder was made from (its stamp)
#   kernel/             the unpacked .deb, depmod'ed (~400 MB)
#   vmlinux             the kernel decompressed: QEMU boots it through its PVH
#                       note, which saves the seconds TCG needs to run the
#                       bzImage's own decompressor
#   initrd-<key>.gz     the L1 initramfs; <key> hashes the .deb name, this
#                       script, hack/testbed.d/ and busybox, so a change to
#                       any of them makes a new one
# Every part is built under a temporary name and renamed into place, with a
# lock held, so concurrent and interrupted runs never leave a half-made part.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${KILN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}

deb=${1:-}
if [ -z "$deb" ]; then
	# -amd64_ leaves out -dbg and -unsigned; sort -V puts the newest ABI last.
	deb=$(find "$cache/debs" -maxdepth 1 -name 'linux-image-*-amd64_*.deb' 2>/dev/null | sort -V | tail -n 1)
	[ -n "$deb" ] || { echo "testbed-setup: no linux-image .deb in $cache/debs (run hack/install-deps.sh)" >&2; exit 1; }
fi
[ -f "$deb" ] || { echo "testbed-setup: no such file: $deb" >&2; exit 1; }
debname=$(basename "$deb")
abi=${debname%%_*}
abi=${abi#linux-image-}
dir=$cache/testbed/$abi

bb=${TB_BUSYBOX:-/bin/busybox}
key=$({
	echo "$debname"
	stat -Lc '%s %Y' "$bb"
	cat "$0" "$here"/testbed.d/*
} | sha256sum | cut -c1-16)
initrd=$dir/initrd-$key.gz

ready() { [ "$(cat "$dir/deb" 2>/dev/null)" = "$debname" ] && [ -f "$initrd" ]; }

report() {
	kver=$(cat "$dir/kver")
	kernel=$dir/vmlinux
	[ -f "$kernel" ] || kernel=$dir/kernel/boot/vmlinuz-$kver
	echo "TB_KERNEL=$kernel"
	echo "TB_INITRD=$initrd"
	echo "TB_MODDIR=$dir/kernel/lib/modules/$kver"
}

if ready; then
	report
	exit 0
fi

mkdir -p "$cache/testbed"
exec 9>"$cache/testbed/.lock"
flock 9
# Whoever held the lock may have built it meanwhile; what is left of a run that
# died while holding it is ours to remove.
if ready; then
	report
	exit 0
fi
rm -rf "$cache/testbed"/.tmp-*
tmp=$(mktemp -d "$cache/testbed/.tmp-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [ "$(cat "$dir/deb" 2>/dev/null)" != "$debname" ]; then
	echo "testbed-setup: unpacking $debname into $dir" >&2
	new=$tmp/dir
	mkdir -p "$new"
	dpkg-deb -x "$deb" "$new/kernel"
	kver=$(ls "$new/kernel/lib/modules")
	[ -f "$new/kernel/boot/vmlinuz-$kver" ] || { echo "testbed-setup: $debname holds no single kernel" >&2; exit 1; }
	# The .deb ships no modules.dep: the package's postinst would run depmod.
	depmod -b "$new/kernel" "$kver"
	# Decompress the kernel: find the first xz/zstd/gzip stream in the bzImage
	# (as the kernel's scripts/extract-vmlinux does) and keep it if it is ELF.
	# Without it the test bed still works, booting vmlinuz, some 3 s slower.
	vmlinuz=$new/kernel/boot/vmlinuz-$kver
	for fmt in '\xfd7zXZ\x00:xz -dc --single-stream' '\x28\xb5\x2f\xfd:zstd -dcq' '\x1f\x8b\x08:gzip -dc'; do
		off=$(LC_ALL=C grep -obUaP "${fmt%%:*}" "$vmlinuz" | head -n 1 | cut -d: -f1)
		[ -n "$off" ] || continue
		tail -c +$((off + 1)) "$vmlinuz" | ${fmt#*:} >"$new/vmlinux" 2>/dev/null || true
		[ "$(head -c 4 "$new/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] && break
		rm -f "$new/vmlinux"
	done
	[ -f "$new/vmlinux" ] || echo "testbed-setup: warning: could not decompress $vmlinuz, booting it as is" >&2
	echo "$kver" >"$new/kver"
	echo "$debname" >"$new/deb"
	# A folder cannot be renamed over another: move the old one aside first.
	# Only a .deb with the same ABI but a new build gets here with an old one.
	[ ! -e "$dir" ] || mv "$dir" "$tmp/old"
	mv "$new" "$dir"
fi

echo "testbed-setup: building $(basename "$initrd")" >&2
TB_BUSYBOX=$bb "$here/testbed.d/mkinitramfs.sh" "$dir/kernel" "$(cat "$dir/kver")" "$tmp/initrd.gz"
mv "$tmp/initrd.gz" "$initrd"
# Old initramfs versions: keep a day's worth for other checkouts still using them.
find "$dir" -maxdepth 1 -name 'initrd-*.gz' ! -name "$(basename "$initrd")" -mmin +1440 -delete
# Test beds of kernels whose .deb install-deps has replaced.
for d in "$cache"/testbed/*/; do
	[ -f "$d/deb" ] && [ ! -f "$cache/debs/$(cat "$d/deb")" ] && [ "${d%/}" != "$dir" ] && rm -rf "$d"
done
report
