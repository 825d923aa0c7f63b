# Guest RAM's backing (vmm/memory_host.c, docs/memory.md): each backing the
# host may offer boots to init, with one log line saying what the VM got,
# and the RAM really has the pages that line names (smaps of kiln-vmm).

# Boot to init with kiln.hold, read kiln-vmm's smaps while the guest
# holds, then let it reboot. Fields of the guest-RAM mapping (128 MiB: the
# only mapping of that size) go to $T/ram: "Rss AnonHugePages Hugetlb" in
# KiB. Arguments: a command that runs kiln-vmm (a wrapper), or none.
mem_boot() { # [WRAPPER...]
	rc=0
	timeout -k 5 300 "$@" "$VMM" --kernel "$GUEST/vmlinux" --initrd "$GUEST/initramfs" \
		--vcpus 1 --mem 128 \
		--cmdline "console=ttyS0 reboot=k panic=1 quiet kiln.hold=3000" \
		>"$T/out" 2>"$T/err" &
	pid=$!
	wait_line KILN-INIT-OK 200 "$T/out" ||
		{ kill -9 $pid; wait $pid; fail "guest never reached init"; tail "$T/err"; return 1; }
	vmm_pid=$(pgrep -n -x kiln-vmm -P "$pid" || echo "$pid")
	awk '/^[0-9a-f]+-[0-9a-f]+ / { ram = 0 }
		/^Size: +131072 kB/ { ram = 1 }
		ram && /^Rss:/ { rss = $2 }
		ram && /^AnonHugePages:/ { anon = $2 }
		ram && /^(Shared|Private)_Hugetlb:/ { huge += $2 }
		END { print rss + 0, anon + 0, huge + 0 }' "/proc/$vmm_pid/smaps" >"$T/ram"
	wait $pid || rc=$?
	crlf "$T/out"
	expect_rc 0 && console_has KILN-INIT-OK KILN-INIT-END || return 1
	n=$(grep -c 'guest memory: ' "$T/err")
	[ "$n" = 1 ] || { fail "want one 'guest memory:' log line, got $n"; cat "$T/err"; return 1; }
	read -r ram_rss ram_anon_huge ram_hugetlb <"$T/ram"
	echo "    $(grep -o 'guest memory: .*' "$T/err"); RAM Rss ${ram_rss} KiB, AnonHugePages ${ram_anon_huge} KiB, hugetlb ${ram_hugetlb} KiB"
}

thp_mode() {
	sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled
}

# THP on (the test bed's kernel: always): anonymous RAM, and the guest's
# memory really sits in 2 MiB pages.
test_mem_thp_boots_with_huge_pages() {
	case $(thp_mode) in
	always | madvise) ;;
	*) skip "transparent huge pages are $(thp_mode) on this host"; return 0 ;;
	esac
	[ "$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)" -lt 64 ] ||
		{ fail "hugetlb pages are free here: this test wants none"; return 1; }
	mem_boot || return 1
	grep -qF 'guest memory: 128 MiB, anonymous, transparent huge pages' "$T/err" ||
		{ fail "log line: $(grep 'guest memory' "$T/err")"; return 1; }
	# the guest's ~30 MiB at init: most of it in huge pages
	[ "$ram_anon_huge" -ge 8192 ] && [ "$ram_anon_huge" -ge $((ram_rss / 2)) ] ||
		{ fail "AnonHugePages $ram_anon_huge KiB of Rss $ram_rss KiB"; return 1; }
}

# THP switched off for the process (PR_SET_THP_DISABLE, inherited through
# exec, as a service manager may set it): a memfd of 4 KiB pages, one line
# saying so, and the boot is the same.
test_mem_thp_disabled_falls_back() {
	mem_boot python3 -c 'import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_THP_DISABLE) failed")
os.execv(sys.argv[1], sys.argv[1:])' || return 1
	grep -qF 'guest memory: 128 MiB, memfd, 4 KiB pages (no hugetlb pages free; THP disabled for this process (PR_SET_THP_DISABLE))' "$T/err" ||
		{ fail "log line: $(grep 'guest memory' "$T/err")"; return 1; }
	[ "$ram_anon_huge" = 0 ] && [ "$ram_hugetlb" = 0 ] && [ "$ram_rss" -gt 8192 ] ||
		{ fail "Rss $ram_rss KiB, AnonHugePages $ram_anon_huge, hugetlb $ram_hugetlb"; return 1; }
}

# Reserve hugetlb pages for the test (root only), then put the pool back.
hugetlb_reserve() { # PAGES
	hugetlb_old=$(cat /proc/sys/vm/nr_hugepages)
	echo "$1" >/proc/sys/vm/nr_hugepages 2>/dev/null || return 1
	[ "$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)" -ge "$1" ]
}
hugetlb_restore() {
	echo "$hugetlb_old" >/proc/sys/vm/nr_hugepages
}

# A pool with room for all of RAM: a hugetlbfs memfd.
test_mem_hugetlb_when_reserved() {
	[ "$(id -u)" = 0 ] || { skip "reserving hugetlb pages needs root"; return 0; }
	[ "$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)" = 2048 ] ||
		{ skip "hugetlb page size is not 2 MiB here"; return 0; }
	hugetlb_reserve 64 || { hugetlb_restore; fail "could not reserve 64 hugetlb pages"; return 1; }
	mem_boot
	r=$?
	hugetlb_restore
	[ $r = 0 ] || return 1
	grep -qF 'guest memory: 128 MiB, hugetlbfs memfd, 2048 KiB pages' "$T/err" ||
		{ fail "log line: $(grep 'guest memory' "$T/err")"; return 1; }
	[ "$ram_hugetlb" -ge 8192 ] ||
		{ fail "hugetlb $ram_hugetlb KiB in the RAM mapping"; return 1; }
}

# A pool too small for RAM is not used: the next backing, one line saying why.
test_mem_hugetlb_too_few_falls_back() {
	[ "$(id -u)" = 0 ] || { skip "reserving hugetlb pages needs root"; return 0; }
	hugetlb_reserve 16 || { hugetlb_restore; fail "could not reserve 16 hugetlb pages"; return 1; }
	mem_boot python3 -c 'import ctypes, os, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)
os.execv(sys.argv[1], sys.argv[1:])'
	r=$?
	hugetlb_restore
	[ $r = 0 ] || return 1
	grep -qF 'guest memory: 128 MiB, memfd, 4 KiB pages (too few hugetlb pages free;' "$T/err" ||
		{ fail "log line: $(grep 'guest memory' "$T/err")"; return 1; }
	[ "$ram_hugetlb" = 0 ] || { fail "hugetlb pages used: $ram_hugetlb KiB"; return 1; }
}

# Fields of a process's guest-RAM mapping (the only one of MEM MiB) in KiB.
ram_field() { # PID MEM_MIB FIELD
	awk -v size="$2" -v f="$3:" '/^[0-9a-f]+-[0-9a-f]+ / { ram = 0 }
		$1 == "Size:" && $2 == size * 1024 { ram = 1 }
		ram && $1 == f { v = $2 }
		END { print v + 0 }' "/proc/$1/smaps"
}

# A template booted on huge pages (anonymous THP) still gives its forks
# 4 KiB copy-on-write: its RAM is copied into a memfd when it becomes a
# template, so no fork copies a 2 MiB page (it may map the template's
# shared 2 MiB pages for reading: ShmemPmdMapped, fork.c's template_huge),
# and one agent round trip in a fork (a few pages written: vsock buffers,
# the agent's stack) adds tens of KiB, where 2 MiB copies would add MiBs.
# Uses t_fork.sh's helpers (fork_template, fork_start, fork_ready).
test_mem_fork_of_thp_template_copies_4k() {
	case $(thp_mode) in
	always | madvise) ;;
	*) skip "transparent huge pages are $(thp_mode) on this host"; return 0 ;;
	esac
	"$TOP/test/integration/mkrootfs.sh" "$T/fork.ext4" >/dev/null 2>&1 ||
		{ fail "mkrootfs.sh failed"; return 1; }
	fork_template 1 128 || return 1
	grep -qF 'guest memory: 128 MiB, anonymous, transparent huge pages' "$T/err" ||
		{ fail "template's RAM: $(grep 'guest memory' "$T/err")"; return 1; }
	tmpl_ram_sum >/dev/null || return 1
	fork_start 1 1 128
	fork_ready 1 || { fork_stop_all; return 1; }
	p=$fork_pid_1
	p=$(pgrep -n -x kiln-vmm -P "$p" || echo "$p")
	# warm the agent's path once, then count one more round trip; the
	# guest's own background work (its timers fire after set-time) may
	# write pages between two counts, so the least of three is judged.
	# The fork's copies are its Anonymous pages: Private_Dirty also
	# counts the template's pages no other process maps, 2 MiB at a time
	# where the fork maps a huge page.
	agrun check && ag_expect_rc 0 || { fork_stop_all; return 1; }
	ready=$(ram_field "$p" 128 Anonymous)
	least='' deltas=''
	for _ in 1 2 3; do
		before=$(ram_field "$p" 128 Anonymous)
		agrun check && ag_expect_rc 0 || { fork_stop_all; return 1; }
		after=$(ram_field "$p" 128 Anonymous)
		d=$((after - before))
		deltas="$deltas +$d"
		[ -n "$least" ] && [ "$least" -le "$d" ] || least=$d
	done
	huge=$(ram_field "$p" 128 AnonHugePages)
	shared=$(ram_field "$p" 128 ShmemPmdMapped)
	echo "    fork RAM: copies (Anonymous) $ready KiB after ready, KiB per agent round trip:$deltas; 2 MiB pages copied: $huge KiB, the template's mapped: $shared KiB"
	fork_stop_all
	[ "$huge" = 0 ] || { fail "the fork copied $huge KiB in 2 MiB pages"; return 1; }
	[ "$ready" -gt 0 ] && [ "$ready" -lt 16384 ] ||
		{ fail "fork's copies of RAM after ready: $ready KiB"; return 1; }
	[ "$least" -le 256 ] ||
		{ fail "each of three agent round trips added private RAM:$deltas KiB"; return 1; }
	kill -TERM "$tmpl_vmm"
	api_wait
	expect_rc 143
}
