#!/bin/sh
# Numbered lines on the console without a pause, until the host ends the
# VM: t_console.sh stops the console's reader and checks the guest runs on.
i=0
while :; do
	echo "FLOOD $i"
	i=$((i + 1))
done
