#!/bin/sh
# virtio-balloon free page reporting: take 300 MiB, hold it while the host
# samples the VMM's RSS, free it, and stay up while the guest reports the
# freed pages and the host samples again.
set -e
grep -q . /sys/bus/virtio/drivers/virtio_balloon/virtio*/features
/tools/memhog 300 10
echo BALLOON-FREED
sleep 30
echo "balloon_report done"
