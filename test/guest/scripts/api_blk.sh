#!/bin/sh
# Drive hot-swap: print the first line of /dev/vda whenever it changes,
# until it reads NEW; the host swaps the backing file through the API.
# blockdev --flushbufs drops the cached blocks so each read reaches the
# device.
last=
for _ in $(seq 600); do
	blockdev --flushbufs /dev/vda 2>/dev/null
	cur=$(head -n 1 /dev/vda)
	if [ "$cur" != "$last" ]; then
		echo "BLK-READ $cur size=$(cat /sys/block/vda/size)"
		last=$cur
	fi
	[ "$cur" = NEW ] && exit 0
	sleep 0.1
done
echo "never saw NEW"
exit 1
