#!/bin/sh
# virtio-rng: the guest's hwrng is ours and gives random bytes.
set -e
cur=$(cat /sys/class/misc/hw_random/rng_current)
echo "rng_current=$cur"
case "$cur" in virtio_rng.*) ;; *) exit 1 ;; esac
head -c 65536 /dev/hwrng >/tmp/r
n=$(wc -c </tmp/r)
echo "hwrng_bytes=$n"
[ "$n" -eq 65536 ]
# 64 KiB of real randomness does not compress: gzip output stays large
z=$(gzip -c /tmp/r | wc -c)
echo "gzip_bytes=$z"
[ "$z" -gt 60000 ]
