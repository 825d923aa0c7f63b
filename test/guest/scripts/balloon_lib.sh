#!/bin/sh
# Helpers for the balloon scripts (sourced, not run by a test).

# "Key: N kB" of /proc/meminfo, in KiB
mem_kb() {
	awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo
}

# The balloon driver works in the background: wait (at most $1 seconds)
# until MemTotal and MemFree stay within 1 MiB for 3 seconds in a row.
balloon_settle() {
	last=
	same=0
	i=0
	while [ "$i" -lt "$1" ]; do
		now="$(mem_kb MemTotal) $(mem_kb MemFree)"
		if [ -n "$last" ]; then
			set -- "$1" $last $now
			dt=$(($2 - $4))
			df=$(($3 - $5))
			if [ "${dt#-}" -lt 1024 ] && [ "${df#-}" -lt 1024 ]; then
				same=$((same + 1))
			else
				same=0
			fi
			[ "$same" -ge 3 ] && break
		fi
		last=$now
		sleep 1
		i=$((i + 1))
	done
	echo "balloon settled after ${i}s"
}

mem_report() {
	echo "memtotal_kb=$(mem_kb MemTotal)"
	echo "memfree_kb=$(mem_kb MemFree)"
	echo "memavail_kb=$(mem_kb MemAvailable)"
	b=$(mem_kb Balloon)
	[ -z "$b" ] || echo "balloon_kb=$b"
}
