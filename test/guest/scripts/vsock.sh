#!/bin/sh
# virtio-vsock, driven from both ends (test/integration/t_vsock.sh):
# - an echo server on port 5000 for the host's CONNECT 5000 clients;
# - this guest connects to host port 6000 (<uds>_6000) and sends a file,
#   the host answers with its sha256, which must be ours;
# - the host reports its own verdict on port 5001: PASS or FAIL.
set -e
grep -q vsock /proc/devices /proc/misc 2>/dev/null || ls /dev/vsock
/tools/vsock echo 5000 &
head -c "${VSOCK_GUEST_BYTES:-4194304}" /dev/urandom >/tmp/f
want=$(sha256sum /tmp/f | cut -d' ' -f1)
/tools/vsock listen 5001 </dev/null >/tmp/verdict &
verdict=$!
sleep 0.2
echo KILN-VSOCK-READY
got=$(/tools/vsock connect 2 6000 </tmp/f)
echo "guest-to-host: want $want got $got"
[ "$got" = "$want" ]
wait $verdict
echo "host verdict: $(cat /tmp/verdict)"
[ "$(cat /tmp/verdict)" = PASS ]
