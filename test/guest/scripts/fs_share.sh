#!/bin/sh
# virtio-fs: mount the host directory tagged "hostshare", read the file the
# host wrote, write one for the host to check, then tick until the host
# ends the VM (it kills the backend meanwhile: the guest must keep going).
set -e
mkdir -p /mnt
mount -t virtiofs hostshare /mnt
echo "FS-MOUNTED $(grep -c ' /mnt virtiofs ' /proc/mounts)"
echo "FS-HOST-SAYS $(cat /mnt/from_host.txt)"
seq 1 5000 >/mnt/from_guest.txt
printf 'written by the guest\n' >/mnt/note.txt
chmod 640 /mnt/note.txt
sync
echo "FS-WRITTEN"
set +e
i=0
while :; do
	echo "TICK $i"
	i=$((i + 1))
	sleep 0.1
done
