#!/bin/sh
# virtio-blk, second boot of the same image: new.txt written by blk_write.sh
# is there with the right content, and the host's files still check.
set -e
mkdir -p /mnt
mount -t ext4 /dev/vda /mnt
(cd /mnt && sha256sum -c SHA256SUMS)
want=$(seq 1 20000 | sha256sum | cut -d' ' -f1)
got=$(sha256sum </mnt/new.txt | cut -d' ' -f1)
echo "new.txt want=$want got=$got"
[ "$want" = "$got" ]
umount /mnt
echo "blk_check done"
