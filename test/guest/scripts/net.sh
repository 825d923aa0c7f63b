#!/bin/sh
# virtio-net: eth0 has the MAC from --net, reaches the host end of its TAP
# (172.30.0.1, set up by test/integration/t_net.sh) and moves 4 MiB each way
# over TCP. The host compares the sha256 sums we print with its own.
set -e
mac=$(cat /sys/class/net/eth0/address)
echo "net-mac=$mac"
# negotiated feature bits, bit 0 first
echo "net-features=$(cat /sys/class/net/eth0/device/features)"
[ "$mac" = 02:4b:49:4c:4e:01 ]
ip addr add 172.30.0.2/30 dev eth0
ip link set eth0 up
ping -c 3 -w 30 172.30.0.1
head -c 4194304 /dev/urandom >/tmp/out
echo "net-out-sha=$(sha256sum /tmp/out | cut -d' ' -f1)"
# busybox nc half-closes on stdin EOF and exits on the peer's EOF
nc 172.30.0.1 5001 </tmp/out
nc 172.30.0.1 5002 </dev/null >/tmp/in
echo "net-in-bytes=$(wc -c </tmp/in)"
echo "net-in-sha=$(sha256sum /tmp/in | cut -d' ' -f1)"
for f in rx_packets rx_errors rx_dropped tx_packets tx_errors tx_dropped; do
	echo "net-$f=$(cat /sys/class/net/eth0/statistics/$f)"
done
