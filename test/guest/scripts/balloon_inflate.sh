#!/bin/sh
# virtio-balloon inflated at boot: wait for the balloon to settle and show
# what the guest has left; the host compares with a boot without balloon.
set -e
. /tests/balloon_lib.sh
balloon_settle 90
mem_report
echo "balloon_inflate done"
