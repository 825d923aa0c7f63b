#!/bin/sh
# Guest side of test/bench/io: every workload on /dev/vda, eth0 (host end
# of its TAP: 172.30.0.1) and vsock (host CID 2), one IOBENCH line each, or
# "IOBENCH-FAIL <mode> <status>" / "IOBENCH-SKIP <mode> <reason>". Sizes come
# from the kernel command line (init's environment): iob_mib (sequential
# MiB), iob_secs (random I/O seconds), iob_net_mib, iob_rtt (ping-pongs),
# iob_only (blk, tcp or vsock: only that group; unset: all).
# Host ports: TCP 5001 sink, 5002 source; vsock 6001 sink, 6002 source,
# 6003 echo.
run() { # MODE ARGS...
	/tools/iobench "$@" || echo "IOBENCH-FAIL $1 $?"
}
want() { # GROUP
	[ -z "$iob_only" ] || [ "$iob_only" = "$1" ]
}
if ! want blk; then
	:
elif [ -b /dev/vda ]; then
	run seq-write /dev/vda "$iob_mib"
	run seq-read /dev/vda "$iob_mib"
	run rand-write /dev/vda "$iob_secs"
	run rand-read /dev/vda "$iob_secs"
else
	echo "IOBENCH-FAIL blk no-/dev/vda"
fi

if ! want tcp; then
	:
elif ip addr add 172.30.0.2/30 dev eth0 && ip link set eth0 up &&
	ping -c 1 -w 30 172.30.0.1 >/dev/null; then
	run tcp-send 172.30.0.1 5001 "$iob_net_mib"
	run tcp-recv 172.30.0.1 5002
else
	echo "IOBENCH-FAIL tcp no-link"
fi

if ! want vsock; then
	:
elif [ -e /dev/vsock ]; then
	run vsock-send 2 6001 "$iob_net_mib"
	run vsock-recv 2 6002
	run vsock-rtt 2 6003 "$iob_rtt"
else
	echo "IOBENCH-SKIP vsock no-/dev/vsock"
fi
echo IOBENCH-DONE
