#!/bin/sh
# A guest that shows it is making progress: one TICK line every 0.1 s,
# until the host ends the VM (the API tests pause, resume, then stop it).
i=0
while :; do
	echo "TICK $i"
	i=$((i + 1))
	sleep 0.1
done
