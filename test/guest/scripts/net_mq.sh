#!/bin/sh
# virtio-net with two queue pairs in a 2-vCPU guest (test/integration/t_net.sh):
# the driver runs both pairs, and an upload and a download pinned to each
# vCPU cross the link. The guest's send queue is picked per CPU (XPS, which
# virtio-net sets when pairs = CPUs); the host counts which virtqueue
# carried what (kiln-vmm's per-pair metrics) and checks the data.
set -e
echo "mq-cpus=$(grep -c '^processor' /proc/cpuinfo)"
for d in /sys/class/net/eth0/queues/*; do
	echo "mq-queue=${d##*/}"
done
for x in /sys/class/net/eth0/queues/tx-*/xps_cpus; do
	q=${x%/xps_cpus}
	echo "mq-xps-${q##*/}=$(cat "$x")"
done
if command -v ethtool >/dev/null; then
	ethtool -l eth0 | sed 's/^/mq-ethtool: /'
fi
ip addr add 172.30.0.2/30 dev eth0
ip link set eth0 up
ping -c 2 -w 30 172.30.0.1 >/dev/null
head -c 1048576 /dev/urandom >/tmp/out
echo "mq-out-sha=$(sha256sum /tmp/out | cut -d' ' -f1)"
# an upload and a download pinned to each vCPU, one after the other:
# from vCPU i they leave on tx queue i, and the host's TAP sends a flow's
# answers to the queue it came from
bad=0
for cpu in 0 1; do
	# busybox nc half-closes on stdin EOF and exits on the peer's EOF
	timeout 120 taskset -c $cpu nc 172.30.0.1 5001 </tmp/out || bad=$((bad + 1))
	timeout 120 taskset -c $cpu nc 172.30.0.1 5002 </dev/null >/tmp/in$cpu ||
		bad=$((bad + 1))
done
for i in 0 1; do
	echo "mq-in$i=$(wc -c </tmp/in$i) $(sha256sum </tmp/in$i | cut -d' ' -f1)"
done
for f in rx_packets rx_dropped tx_packets tx_dropped; do
	echo "mq-$f=$(cat /sys/class/net/eth0/statistics/$f)"
done
echo "mq-failed=$bad"
# the host flushes kiln-vmm's metrics while the device is there
echo "mq-done"
sleep 5
[ "$bad" = 0 ]
