#!/bin/sh
# virtio-blk, first boot: /dev/vda is an ext4 image made on the host with a
# SHA256SUMS file; check every file, then write new.txt and sync.
set -e
echo "cmdline=$(cat /proc/cmdline)"
[ -b /dev/vda ]
echo "vda_sectors=$(cat /sys/block/vda/size) ro=$(cat /sys/block/vda/ro)"
[ "$(cat /sys/block/vda/ro)" = 0 ]
mkdir -p /mnt
mount -t ext4 /dev/vda /mnt
(cd /mnt && sha256sum -c SHA256SUMS)
seq 1 20000 >/mnt/new.txt
sync
umount /mnt
echo "blk_write done"
