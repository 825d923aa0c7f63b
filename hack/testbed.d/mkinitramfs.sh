#!/bin/sh
# Build the test bed's L1 initramfs: static busybox, stage 1 (/init), stage 2,
# and the few modules stage 1 needs before the host root is mounted (virtio-pci,
# 9p, overlay, kvm_amd), each with its dependencies, listed in load order.
# Everything else (tun, veth, ...) is loaded later by the host's modprobe from
# the unpacked kernel tree, which stage 1 bind-mounts at /lib/modules/$(uname -r).
# usage: mkinitramfs.sh KROOT KVER OUT.gz    (KROOT: the unpacked, depmod'ed .deb)
set -eu

kroot=$1 kver=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
moddir=$kroot/lib/modules/$kver

# Static: it runs before any library exists in L1. Debian's busybox-static is
# /bin/busybox; the dynamic "busybox" package would not work here.
bb=${TB_BUSYBOX:-/bin/busybox}
if [ ! -x "$bb" ] || readelf -l "$bb" 2>/dev/null | grep -q INTERP; then
	echo "mkinitramfs: $bb is not a static busybox (install busybox-static)" >&2
	exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/modules"
cp "$bb" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$here/init" "$root/init"
cp "$here/stage2" "$root/stage2"
chmod 755 "$root/init" "$root/stage2"

# Copy a module without its signature (struct module_signature, whose last 4
# bytes are the big-endian signature length, then a 28-byte marker). Checking
# signatures under TCG costs about 0.3 s for kvm.ko alone; the kernel does not
# enforce them, it only marks itself tainted.
marker='~Module signature appended~'
copy_unsigned() {
	if [ "$(tail -c 28 "$1" | head -c 27)" = "$marker" ]; then
		siglen=$(tail -c 32 "$1" | head -c 4 | od -An -tu4 --endian=big | tr -d ' ')
		head -c $(($(stat -c %s "$1") - 28 - 12 - siglen)) "$1" >"$2"
	else
		cp "$1" "$2"
	fi
}

# modules/order: one file name per line, dependencies first, each loaded once.
# insmod in that order needs no modules.dep and no modprobe in the initramfs.
for m in virtio_pci 9pnet_virtio 9p overlay kvm_amd; do
	modprobe -d "$kroot" -S "$kver" --show-depends "$m" ||
		{ echo "mkinitramfs: no module $m in $moddir" >&2; exit 1; }
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r f; do
	copy_unsigned "$f" "$root/modules/${f##*/}"
	echo "${f##*/}" >>"$root/modules/order"
done

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out"
