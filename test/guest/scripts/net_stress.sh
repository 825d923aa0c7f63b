#!/bin/sh
# virtio-net under parallel TCP streams (test/integration/t_net.sh): rounds
# of K uploads and K downloads at once, each 1 MiB, each under a time
# limit. A stream that does not finish is a stall: we print what the
# guest's side looks like (interrupt counts, eth0 counters, the sockets)
# and "stress-stalled", so the host can read kiln-vmm's metrics while
# the device is still there. Parameters on the kernel command line:
# stress.rounds=R stress.par=K.
set -u
rounds=3
par=4
for a in $(cat /proc/cmdline); do
	case $a in
	stress.rounds=*) rounds=${a#*=} ;;
	stress.par=*) par=${a#*=} ;;
	esac
done
ip addr add 172.30.0.2/30 dev eth0
ip link set eth0 up
ping -c 2 -w 30 172.30.0.1 >/dev/null || { echo "stress-no-ping"; exit 1; }
head -c 1048576 /dev/urandom >/tmp/out
echo "stress-out-sha=$(sha256sum /tmp/out | cut -d' ' -f1)"
bad=0
r=1
while [ "$r" -le "$rounds" ]; do
	pids=
	i=1
	while [ "$i" -le "$par" ]; do
		# busybox nc half-closes on stdin EOF and exits on the peer's EOF
		timeout 90 nc 172.30.0.1 5001 </tmp/out &
		pids="$pids $!"
		timeout 90 nc 172.30.0.1 5002 </dev/null >/tmp/in$i &
		pids="$pids $!"
		i=$((i + 1))
	done
	rb=0
	for p in $pids; do
		wait "$p" || rb=$((rb + 1))
	done
	i=1
	while [ "$i" -le "$par" ]; do
		echo "stress-in=$(wc -c </tmp/in$i) $(sha256sum </tmp/in$i | cut -d' ' -f1)"
		i=$((i + 1))
	done
	echo "stress-round=$r failed=$rb"
	if [ "$rb" -gt 0 ]; then
		grep -i virtio /proc/interrupts | sed 's/^/stress-irq: /'
		for f in rx_packets rx_dropped tx_packets tx_dropped; do
			echo "stress-$f=$(cat /sys/class/net/eth0/statistics/$f)"
		done
		sed 's/^/stress-tcp: /' /proc/net/tcp
		bad=$((bad + rb))
		break
	fi
	r=$((r + 1))
done
echo "stress-failed=$bad"
echo "stress-done"
# the host looks at kiln-vmm (metrics, what it polls) while the device is
# there; longer after a stall, there is more to see
if [ "$bad" = 0 ]; then sleep 5; else sleep 20; fi
[ "$bad" = 0 ]
