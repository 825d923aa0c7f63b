#!/bin/sh
# virtio-blk: /dev/vda read-write, /dev/vdb read-only and marked root.
# The kernel sees vdb read-only; a read-write mount fails or stays
# read-only; reading works.
set -e
cmdline=$(cat /proc/cmdline)
echo "cmdline=$cmdline"
case "$cmdline" in *"root=/dev/vdb ro"*) ;; *) echo "no root=/dev/vdb ro"; exit 1 ;; esac
echo "vda_ro=$(cat /sys/block/vda/ro) vdb_ro=$(cat /sys/block/vdb/ro)"
[ "$(cat /sys/block/vda/ro)" = 0 ]
[ "$(cat /sys/block/vdb/ro)" = 1 ]
mkdir -p /ro
if mount -t ext4 -o rw /dev/vdb /ro 2>/dev/null; then
	# some mounts fall back to read-only: then writing must fail
	if touch /ro/written 2>/dev/null; then
		echo "wrote to the read-only drive"
		exit 1
	fi
	umount /ro
	echo "rw mount fell back to read-only; write refused"
else
	echo "rw mount refused"
fi
# a raw write to the device must fail too
if dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync 2>/dev/null; then
	echo "raw write to vdb succeeded"
	exit 1
fi
mount -t ext4 -o ro /dev/vdb /ro
(cd /ro && sha256sum -c SHA256SUMS)
umount /ro
echo "blk_ro done"
