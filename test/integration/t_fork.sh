# Templates and copy-on-write forks (kiln-vmm's own API, docs/api.md): a
# booted guest with its agent up is paused and made a template (PUT
# /snapshot/template); new kiln-vmm processes start from it with
# --fork-from, each with its own drive file and vsock socket, and run
# commands through their own agents.
#
# Uses api, api_ok, api_fault, api_start, api_wait, json_get (t_api.sh),
# snap_api (t_snapshot.sh) and the agent helpers (t_agent.sh).

FORK_N=${KILN_FORK_N:-50}

# Boot the template VM ($T/tmpl.*): VCPUS, MEM MiB, the agent-only
# initramfs, one blank drive slot "rootfs" (a sparse placeholder larger
# than any fork's image), vsock; then make it a template on $T/tmpl.fork
# (with at most MAX_FORKS alive, if given).
fork_template() { # VCPUS MEM [MAX_FORKS]
	rm -f "$T"/tmpl.*
	truncate -s 4G "$T/tmpl.slot"
	AG_UDS=$T/tmpl.vsock
	api_start || return 1
	api_ok 204 PUT /boot-source "{\"kernel_image_path\": \"$GUEST/vmlinux\",
		\"initrd_path\": \"$GUEST/agent.cpio\",
		\"boot_args\": \"console=ttyS0 reboot=k panic=1 quiet rdinit=/sbin/kiln-agent\"}" &&
		api_ok 204 PUT /machine-config "{\"vcpu_count\": $1, \"mem_size_mib\": $2}" &&
		api_ok 204 PUT /drives/rootfs "{\"drive_id\": \"rootfs\",
			\"path_on_host\": \"$T/tmpl.slot\", \"is_root_device\": false,
			\"is_read_only\": false}" &&
		api_ok 204 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$AG_UDS\"}" &&
		api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	agrun wait-ready && ag_expect_rc 0 || { tail "$T/err"; return 1; }
	api_fault "pause it first" PUT /snapshot/template \
		"{\"socket_path\": \"$T/tmpl.fork\"}" || return 1
	api_ok 204 PATCH /vm '{"state": "Paused"}' || return 1
	snap_api 204 PUT /snapshot/template "{\"socket_path\": \"$T/tmpl.fork\"
		${3:+, \"max_forks\": $3}}" || return 1
	api_ok 200 GET / && [ "$(json_get state)" = Template ] ||
		{ fail "state of the template: $body"; return 1; }
	[ -S "$T/tmpl.fork" ] || { fail "no template socket"; return 1; }
	tmpl_vmm=$(pgrep -P "$api_pid" -x kiln-vmm)
}

# The checksum of the template's RAM, read through its memfd.
tmpl_ram_sum() {
	fd=$(ls -l "/proc/$tmpl_vmm/fd" | awk '/kiln-guest-ram/ {print $9}')
	[ -n "$fd" ] || { fail "no RAM memfd in the template"; return 1; }
	md5sum <"/proc/$tmpl_vmm/fd/$fd" | cut -d' ' -f1
}

# Start fork I in the background: its own copy of the rootfs image.
fork_start() { # I VCPUS MEM [EXTRA ARGS]
	i=$1 vc=$2 mem=$3
	shift 3
	cp --sparse=always "$T/fork.ext4" "$T/f$i.ext4"
	rm -f "$T/f$i.vsock"
	timeout -k 5 600 "$VMM" --fork-from "$T/tmpl.fork" --vcpus "$vc" --mem "$mem" \
		--drive "id=rootfs,path=$T/f$i.ext4" --vsock "cid=3,uds=$T/f$i.vsock" \
		--console "$T/f$i.out" "$@" >"$T/f$i.log" 2>&1 &
	eval "fork_pid_$i=$!"
}

# The fork's agent, first reseeded and its clock set, as the runtime does.
fork_ready() { # I
	AG_UDS=$T/f$1.vsock
	agrun wait-ready && ag_expect_rc 0 &&
		agrun reseed --bytes 64 && ag_expect_rc 0 &&
		agrun set-time && ag_expect_rc 0 ||
		{ fail "fork $1's agent"; cat "$T/f$1.log"; return 1; }
}

fork_stop_all() {
	for p in $(pgrep -f -- "--fork-from $T/tmpl.fork"); do
		kill -KILL "$p" 2>/dev/null
	done
	wait_forks
}

wait_forks() {
	for v in $(compgen -v fork_pid_); do
		{ wait "${!v}"; } 2>/dev/null
		unset "$v"
	done
}

# The template's RAM in 2 MiB pages where a run is all there (the guest
# kernel's code, at least), and a fork (pid $1) maps such runs whole: its
# guest RAM starts at a 2 MiB boundary and has PMD-mapped shmem. Linux
# 6.1's MADV_COLLAPSE, which the test bed's kernel has.
fork_huge_pages() { # PID
	line=$(grep -o "template: [0-9]* of [0-9]* full 2 MiB runs[^,]*" "$T/err")
	set -- "$1" $(echo "$line" | awk '{print $2, $4}')
	[ -n "${2:-}" ] && [ "$2" -gt 0 ] && [ "$2" = "${3:-}" ] ||
		{ fail "template's huge pages: '$line'"; return 1; }
	awk '/^[0-9a-f]+-[0-9a-f]+ / {ram = /kiln-guest-ram/; if (ram) start = $1}
		ram && /^ShmemPmdMapped:/ {pmd = $2}
		END {split(start, a, "-"); print a[1], pmd + 0}' "/proc/$1/smaps" >"$T/huge"
	read -r start pmd <"$T/huge"
	printf '    template: %s; fork 2: %s kB of RAM mapped in 2 MiB pages\n' \
		"${line#template: }" "$pmd"
	[ -n "$start" ] && [ $((0x$start % 0x200000)) -eq 0 ] && [ "$pmd" -ge 2048 ] ||
		{ fail "fork's RAM at 0x$start, $pmd kB PMD-mapped"; return 1; }
}

# FORK_N forks of one template, each starting from the template's booted
# guest: each runs a command through its own agent and answers its own
# output (a file it writes is on its own drive); reseeded, no two draw
# the same random bytes; the template's RAM is byte for byte what it was
# after all of them ran (their writes went to their own pages), and it
# serves a new fork after another died.
test_fork_many() {
	"$TOP/test/integration/mkrootfs.sh" "$T/fork.ext4" >/dev/null 2>&1 ||
		{ fail "mkrootfs.sh failed"; return 1; }
	fork_template 1 128 || return 1
	ram_sum=$(tmpl_ram_sum) || return 1
	t0=$(date +%s.%N)
	for i in $(seq "$FORK_N"); do
		fork_start "$i" 1 128
	done
	for i in $(seq "$FORK_N"); do
		fork_ready "$i" || { fork_stop_all; return 1; }
	done
	printf '    %d forks answering their agents: %.1f s\n' "$FORK_N" \
		"$(echo "$(date +%s.%N) - $t0" | bc)"
	for i in $(seq "$FORK_N"); do
		AG_UDS=$T/f$i.vsock
		agrun run --id c$i --rootfs /dev/vda -- sh -c \
			"echo fork $i; echo $i >/mine; ls /mine* | wc -l; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' '"
		ag_expect_rc 0 || { fork_stop_all; return 1; }
		[ "$(sed -n 1p "$T/ag.out")" = "fork $i" ] &&
			[ "$(sed -n 2p "$T/ag.out")" = 1 ] ||
			{ ag_fail "fork $i answered"; fork_stop_all; return 1; }
		sed -n 3p "$T/ag.out" >"$T/f$i.rand"
	done
	# the guest's RNG: every fork drew its own bytes
	dup=$(cat "$T"/f*.rand | sort | uniq -d | head -n 1)
	[ -z "$dup" ] && [ "$(cat "$T"/f*.rand | sort -u | wc -l)" -eq "$FORK_N" ] ||
		{ fail "forks drew the same random bytes: $dup"; fork_stop_all; return 1; }
	# the template still serves after every fork (and a fork's death:
	# its kiln-vmm, the child of its timeout)
	pkill -KILL -P "$fork_pid_1" -x kiln-vmm ||
		{ fail "no kiln-vmm under fork 1"; fork_stop_all; return 1; }
	{ wait "$fork_pid_1"; } 2>/dev/null
	unset fork_pid_1
	fork_start new 1 128
	fork_ready new || { fork_stop_all; return 1; }
	AG_UDS=$T/fnew.vsock
	agrun run --id cn --rootfs /dev/vda -- sh -c 'cat /mine 2>/dev/null; echo fresh'
	ag_expect_rc 0 && ag_out_is fresh || { fork_stop_all; return 1; }
	api_ok 200 GET / && [ "$(json_get state)" = Template ] || { fork_stop_all; return 1; }
	# forks are plain processes: RSS of one idle fork against the guest size
	p=$(pgrep -f -- "^$VMM --fork-from .*uds=$T/f2.vsock" | head -n 1)
	[ -n "$p" ] && awk '/^Pss:|^Private_Dirty:/ {printf "    fork 2: %s %s kB\n", $1, $2}' \
		"/proc/$p/smaps_rollup"
	fork_huge_pages "$p" || { fork_stop_all; return 1; }
	fork_stop_all
	# every fork wrote its own pages: the template's RAM is as it was
	[ "$(tmpl_ram_sum)" = "$ram_sum" ] ||
		{ fail "the forks changed their template's RAM"; return 1; }
	kill -TERM "$tmpl_vmm"
	api_wait
	expect_rc 143 || return 1
	[ ! -e "$T/tmpl.fork" ] || { fail "the template left its socket"; return 1; }
	no_leftovers
}

# A fork must match its template: other vCPU or memory sizes, another
# drive id, a kernel given, a template socket that is not one: each
# refused by name, before any vCPU runs, and nothing is left. The API
# route does the same as the flag, and a template refuses to run again.
# A template counts its forks alive: with max_forks 2 and two forks
# running, a third fails at once, naming the limit, and the template
# stays; once a fork is killed, its place serves a new one.
test_fork_live_limit() {
	"$TOP/test/integration/mkrootfs.sh" "$T/fork.ext4" >/dev/null 2>&1 ||
		{ fail "mkrootfs.sh failed"; return 1; }
	fork_template 1 128 2 || return 1
	grep -q "at most 2 alive" "$T/err" || { fail "no limit in the template's log"; tail -3 "$T/err"; return 1; }
	for i in 1 2; do
		fork_start "$i" 1 128
	done
	for i in 1 2; do
		fork_ready "$i" || { fork_stop_all; return 1; }
	done
	fork_start 3 1 128
	{ wait "$fork_pid_3"; rc3=$?; } 2>/dev/null
	unset fork_pid_3
	[ "$rc3" -ne 0 ] && grep -q "2 of its forks are alive, its limit (max_forks)" "$T/f3.log" ||
		{ fail "a third fork (status $rc3) was not refused by the limit"; cat "$T/f3.log"; fork_stop_all; return 1; }
	echo "    third fork: $(grep -o 'template .*max_forks)' "$T/f3.log")"
	grep -q "a fork refused, 2 forks are alive" "$T/err" ||
		{ fail "the template did not log the refusal"; tail -3 "$T/err"; fork_stop_all; return 1; }
	# fork 1's kiln-vmm (the child of its timeout)
	pkill -KILL -P "$fork_pid_1" -x kiln-vmm ||
		{ fail "no kiln-vmm under fork 1"; fork_stop_all; return 1; }
	{ wait "$fork_pid_1"; } 2>/dev/null
	unset fork_pid_1
	fork_start 4 1 128
	fork_ready 4 || { fork_stop_all; return 1; }
	AG_UDS=$T/f4.vsock
	agrun run --id c4 --rootfs /dev/vda -- echo four
	ag_expect_rc 0 && ag_out_is four || { fork_stop_all; return 1; }
	fork_stop_all
	kill -TERM "$tmpl_vmm"
	api_wait
	expect_rc 143 && no_leftovers
}

test_fork_refused() {
	"$TOP/test/integration/mkrootfs.sh" "$T/fork.ext4" >/dev/null 2>&1 ||
		{ fail "mkrootfs.sh failed"; return 1; }
	fork_template 2 128 || return 1
	api_fault "template" PATCH /vm '{"state": "Resumed"}' || return 1
	api_fault "template" PUT /snapshot/create \
		"{\"snapshot_path\": \"$T/x.state\", \"mem_file_path\": \"$T/x.mem\"}" || return 1
	cp --sparse=always "$T/fork.ext4" "$T/fbad.ext4"
	try() { # WANT ARGS...
		want=$1
		shift
		out=$(timeout 60 "$VMM" "$@" --console /dev/null 2>&1) && {
			fail "kiln-vmm $*: started"
			return 1
		}
		case $out in *"$want"*) ;; *)
			fail "kiln-vmm $*: $out, want $want"
			return 1
			;;
		esac
	}
	try "the template has 2 vCPUs and 128 MiB, the fork 1 and 128" \
		--fork-from "$T/tmpl.fork" --vcpus 1 --mem 128 \
		--drive "id=rootfs,path=$T/fbad.ext4" --vsock "cid=3,uds=$T/fbad.vsock" || return 1
	try "the template has 2 vCPUs and 128 MiB, the fork 2 and 256" \
		--fork-from "$T/tmpl.fork" --vcpus 2 --mem 256 \
		--drive "id=rootfs,path=$T/fbad.ext4" --vsock "cid=3,uds=$T/fbad.vsock" || return 1
	try "is \`rootfs\` in the template, \`other\` in the fork" \
		--fork-from "$T/tmpl.fork" --vcpus 2 --mem 128 \
		--drive "id=other,path=$T/fbad.ext4" --vsock "cid=3,uds=$T/fbad.vsock" || return 1
	try "a fork runs its template's kernel" --fork-from "$T/tmpl.fork" \
		--kernel "$GUEST/vmlinux" --vcpus 2 --mem 128 || return 1
	: >"$T/notasock"
	try "$T/notasock" --fork-from "$T/notasock" --vcpus 2 --mem 128 \
		--drive "id=rootfs,path=$T/fbad.ext4" --vsock "cid=3,uds=$T/fbad.vsock" || return 1
	# the API's route: devices first, then the fork; 2 vCPUs run
	tmpl_api=$api_pid
	mv "$T/api.sock" "$T/tmpl.api"
	api_start || return 1
	AG_UDS=$T/fapi.vsock
	rm -f "$AG_UDS"
	api_ok 204 PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 128}' &&
		api_ok 204 PUT /drives/rootfs "{\"drive_id\": \"rootfs\",
			\"path_on_host\": \"$T/fbad.ext4\", \"is_root_device\": false,
			\"is_read_only\": true}" &&
		api_ok 204 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$AG_UDS\"}" &&
		api_ok 204 PUT /snapshot/fork "{\"template_socket\": \"$T/tmpl.fork\", \"resume_vm\": true}" ||
		return 1
	api_ok 200 GET / && [ "$(json_get state)" = Running ] || { fail "fork state: $body"; return 1; }
	agrun wait-ready && ag_expect_rc 0 || return 1
	# a read-only file in a read-write slot: mounted read-only, unchanged
	agrun run --id c --rootfs /dev/vda --fstype ext4 --ro -- sh -c \
		'grep -c ^processor /proc/cpuinfo; echo end'
	ag_expect_rc 0 && ag_out_is 2 end || return 1
	cmp -s "$T/fork.ext4" "$T/fbad.ext4" ||
		{ fail "a read-only fork drive was written"; return 1; }
	ag shutdown >/dev/null 2>&1
	api_wait
	kill -TERM "$(pgrep -P "$tmpl_api" -x kiln-vmm)"
	wait "$tmpl_api"
	no_leftovers
}
