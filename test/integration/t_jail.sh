# kiln-vmm --jail (docs/jail.md): namespaces of its own but the network's,
# pivot_root into a folder of only its files, a uid of its own with no
# capability, every thread filtered; a waiter outside that the runtime
# supervises; nothing left mounted or on disk after any exit.

# uids from the top of docs/jail.md's range: no runtime allocates them
JAIL_UID=2000065500
JAIL_UID2=2000065501

# "Field:\tvalue" of a /proc status file.
jail_field() { # FILE FIELD
	sed -n "s/^$2:[[:space:]]*//p" "$1"
}

# A folder for the API socket that the jail's uid may create it in.
jail_prepare() { # UID
	rm -rf "$T/jrun" "$T/jroot"
	mkdir -p "$T/jrun"
	chown "$1:$1" "$T/jrun"
	chmod 0700 "$T/jrun"
}

# curl at the jailed VMM's API socket: $code and $body.
jail_api() { # METHOD PATH [JSON]
	code=$(curl -s -m 120 -o "$T/jail.body" -w '%{http_code}' \
		--unix-socket "$T/jrun/api.sock" -X "$1" ${3:+-H 'Content-Type: application/json' -d "$3"} \
		"http://localhost$2") || code=000
	body=$(cat "$T/jail.body" 2>/dev/null)
}

# Start a jailed kiln-vmm in the background: $jail_pid is timeout(1)'s,
# $jail_outer the waiter (kiln-vmm outside), $jail_vmm the VMM itself.
jail_start() { # UID [KILN-VMM ARGS...]
	juid=$1
	shift
	# fd 9 is a folder outside the jail: the VMM must not keep it; fd 7
	# a file it keeps with JAIL_KEEP=7 (a snapshot key, say)
	echo key >"$T/jkeep"
	timeout -k 5 "${VMM_TIMEOUT:-300}" "$VMM" --api-sock "$T/jrun/api.sock" \
		--jail "root=$T/jroot,uid=$juid,gid=$juid${JAIL_KEEP:+,keep-fds=$JAIL_KEEP}" \
		"$@" >"$T/out" 2>"$T/err" 9<"$T" 7<"$T/jkeep" &
	jail_pid=$!
	for _ in $(seq 200); do
		jail_api GET /
		[ "$code" = 200 ] && break
		sleep 0.05
	done
	[ "$code" = 200 ] || { fail "the jailed API socket never answered"; cat "$T/err"; return 1; }
	jail_outer=$(pgrep -P "$jail_pid" -x kiln-vmm)
	jail_vmm=$(pgrep -P "$jail_outer" -x kiln-vmm)
	[ -n "$jail_outer" ] && [ -n "$jail_vmm" ] ||
		{ fail "no kiln-vmm waiter and VMM under $jail_pid"; return 1; }
}

# Is pid running (not gone, not a zombie)?
jail_alive() { # PID
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ]
}

jail_wait() {
	rc=0
	# (bash's "Killed" notice after a kill -9 is not the test's output)
	{ wait "$jail_pid" || rc=$?; } 2>/dev/null
	crlf "$T/out"
}

# Nothing of the jail on the host: no mount in any process's namespace
# (the jail's died with it), no folder, no kiln-vmm.
jail_nothing_left() { # ROOT
	m=$(grep -lF -- "$1" /proc/[0-9]*/mountinfo 2>/dev/null)
	[ -z "$m" ] || { fail "still mounted, in $m"; return 1; }
	[ ! -e "$1" ] || { fail "$1 is left: $(ls -la "$1")"; return 1; }
	no_leftovers
}

test_jail_confined_boot_and_kill9() {
	jail_prepare "$JAIL_UID"
	cat >"$T/jail.json" <<JSON
{
  "boot-source": {
    "kernel_image_path": "$GUEST/vmlinux",
    "initrd_path": "$GUEST/initramfs",
    "boot_args": "console=ttyS0 reboot=k panic=1 quiet kiln.script=/tests/api_tick.sh"
  },
  "machine-config": { "vcpu_count": 2, "mem_size_mib": 128, "smt": false },
  "drives": [{ "drive_id": "ro", "path_on_host": "$T/jdisk.img",
               "is_root_device": false, "is_read_only": true }]
}
JSON
	truncate -s 1M "$T/jdisk.img"
	chmod 0644 "$T/jdisk.img"
	JAIL_KEEP=7 jail_start "$JAIL_UID" --config-file "$T/jail.json" || return 1
	wait_line "TICK 3" 90 "$T/out" || { never_ticked "the jailed guest" "$jail_vmm"; return 1; }
	s=/proc/$jail_vmm/status
	want="$JAIL_UID	$JAIL_UID	$JAIL_UID	$JAIL_UID"
	[ "$(jail_field "$s" Uid)" = "$want" ] || { fail "Uid: $(jail_field "$s" Uid)"; return 1; }
	[ "$(jail_field "$s" Gid)" = "$want" ] || { fail "Gid: $(jail_field "$s" Gid)"; return 1; }
	[ -z "$(jail_field "$s" Groups)" ] || { fail "Groups: $(jail_field "$s" Groups)"; return 1; }
	kinds=
	for t in /proc/"$jail_vmm"/task/*; do
		ts=$t/status comm=$(cat "$t/comm")
		kinds="$kinds $comm"
		for f in CapEff CapPrm CapBnd CapAmb; do
			[ "$(jail_field "$ts" $f)" = 0000000000000000 ] ||
				{ fail "$comm $f $(jail_field "$ts" $f)"; return 1; }
		done
		[ "$(jail_field "$ts" Seccomp)" = 2 ] || { fail "$comm Seccomp $(jail_field "$ts" Seccomp)"; return 1; }
		[ "$(jail_field "$ts" NoNewPrivs)" = 1 ] || { fail "$comm NoNewPrivs"; return 1; }
	done
	echo "    threads:$kinds"
	for k in kiln-vmm kiln-api vcpu0 vcpu1; do
		case " $kinds " in *" $k "*) ;; *) fail "no $k thread"; return 1 ;; esac
	done
	for ns in mnt pid ipc uts; do
		[ "$(readlink /proc/"$jail_vmm"/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ] ||
			{ fail "the VMM shares our $ns namespace"; return 1; }
	done
	[ "$(readlink /proc/"$jail_vmm"/ns/net)" = "$(readlink /proc/self/ns/net)" ] ||
		{ fail "the VMM left our network namespace"; return 1; }
	# the waiter stays in ours: the runtime supervises it by pid
	[ "$(readlink /proc/"$jail_outer"/ns/mnt)" = "$(readlink /proc/self/ns/mnt)" ] ||
		{ fail "the waiter left our mount namespace"; return 1; }
	# its root: dev (kvm, net/tun), proc, and the top folders of what it
	# was given (the guest's files, $T's folder for the API socket, sys
	# for the THP settings); no /etc, /bin, /usr, no host /dev
	r=/proc/$jail_vmm/root
	top=$(ls -A "$r" | sort | paste -sd' ')
	allowed=" dev proc sys $(echo "$GUEST" | cut -d/ -f2) $(echo "$T" | cut -d/ -f2) "
	for e in $top; do
		case "$allowed" in *" $e "*) ;; *) fail "unexpected /$e in the jail: $top"; return 1 ;; esac
	done
	echo "    jail root: $top; dev: $(cd "$r/dev" && find . -mindepth 1 | sort | paste -sd' ')"
	[ "$(cd "$r/dev" && find . -mindepth 1 | sort | paste -sd' ')" = "./kvm ./net ./net/tun" ] ||
		{ fail "dev holds more than kvm and net/tun"; return 1; }
	[ "$(stat -c %u:%g "$r/dev/kvm")" = "$JAIL_UID:$JAIL_UID" ] || { fail "dev/kvm owner $(stat -c %u:%g "$r/dev/kvm")"; return 1; }
	[ ! -e "$r/etc/passwd" ] && [ ! -e "$r/bin" ] || { fail "host files in the jail"; return 1; }
	[ -z "$(ls -A "$r$(dirname "$GUEST/vmlinux")" | grep -vxE 'vmlinux|initramfs')" ] ||
		{ fail "more than the kernel and initramfs of $(dirname "$GUEST/vmlinux"): $(ls -A "$r$(dirname "$GUEST/vmlinux")")"; return 1; }
	# a read-only drive is bound read-only, the jail's own tmpfs is too
	mi=/proc/$jail_vmm/mountinfo
	case "$(awk -v p="$T/jdisk.img" '$5 == p { print $6 }' "$mi")" in
	ro,*) ;;
	*) fail "the read-only drive's bind: $(grep -F "$T/jdisk.img" "$mi")"; return 1 ;;
	esac
	case "$(awk '$5 == "/" { print $6 }' "$mi")" in
	ro,*) ;;
	*) fail "the jail's root is not read-only: $(awk '$5 == "/"' "$mi")"; return 1 ;;
	esac
	# its processes: itself alone
	[ "$(ls -d "$r"/proc/[0-9]* | wc -l)" = 1 ] || { fail "the jail's /proc lists $(ls -d "$r"/proc/[0-9]*)"; return 1; }
	# no fd to a folder (fd 9 was one), none to the host's files but the log
	for fd in /proc/"$jail_vmm"/fd/*; do
		[ ! -d "$fd" ] || { fail "fd ${fd##*/} is a folder: $(readlink "$fd")"; return 1; }
	done
	[ "$(readlink /proc/"$jail_vmm"/fd/7)" = "$T/jkeep" ] || { fail "fd 7 (keep-fds) is not kept"; return 1; }
	[ "$(readlink /proc/"$jail_outer"/fd/7)" != "$T/jkeep" ] || { fail "the waiter kept fd 7"; return 1; }
	# the jail folder itself is gone from the host once the VMM pivoted
	[ ! -e "$T/jroot" ] || { fail "$T/jroot is still there"; return 1; }
	jail_api GET /machine-config
	[ "$code" = 200 ] && echo "$body" | grep -q '"vcpu_count": *2' ||
		{ fail "GET /machine-config from outside: $code $body"; return 1; }
	[ "$(stat -c %u "$T/jrun/api.sock")" = "$JAIL_UID" ] || { fail "API socket owner"; return 1; }
	# paths given over the API are the jail's: a snapshot into the bound
	# folder lands there on the host, one anywhere else is refused
	jail_api PATCH /vm '{"state": "Paused"}'
	[ "$code" = 204 ] || { fail "pause: $code $body"; return 1; }
	jail_api PUT /snapshot/create "{\"snapshot_path\": \"$T/outside.state\", \"mem_file_path\": \"$T/outside.mem\"}"
	case "$code" in 4* | 5*) ;; *) fail "a snapshot outside the bound folders: $code"; return 1 ;; esac
	[ ! -e "$T/outside.state" ] && [ ! -e "$T/outside.mem" ] ||
		{ fail "a snapshot outside the bound folders: $code $body"; return 1; }
	echo "    snapshot outside the jail's folders: $code $body"
	jail_api PUT /snapshot/create "{\"snapshot_path\": \"$T/jrun/s.state\", \"mem_file_path\": \"$T/jrun/s.mem\"}"
	[ "$code" = 204 ] || { fail "snapshot into the API folder: $code $body"; return 1; }
	[ "$(stat -c %u "$T/jrun/s.mem")" = "$JAIL_UID" ] && [ -s "$T/jrun/s.mem" ] && [ -s "$T/jrun/s.state" ] ||
		{ fail "snapshot files: $(ls -ln "$T/jrun")"; return 1; }
	kill -9 "$jail_outer"
	jail_wait
	# gone, or a zombie its new parent has not reaped yet
	for _ in $(seq 50); do
		jail_alive "$jail_vmm" || break
		sleep 0.1
	done
	! jail_alive "$jail_vmm" || { fail "the VMM outlived kill -9 of its waiter"; return 1; }
	jail_nothing_left "$T/jroot" || return 1
	# and the uid is free again
	[ -e "/run/kiln/jail/$JAIL_UID.lock" ] || { fail "no lock file"; return 1; }
	flock -n "/run/kiln/jail/$JAIL_UID.lock" true || { fail "the uid's lock is still held"; return 1; }
}

# SIGTERM to the pid the runtime knows ends the VM as before (143), and
# a second VMM asking for the same uid is refused while the first runs.
test_jail_sigterm_and_uid_in_use() {
	jail_prepare "$JAIL_UID2"
	jail_start "$JAIL_UID2" || return 1
	rm -rf "$T/jroot2"
	vmm --api-sock "$T/jrun/api2.sock" --jail "root=$T/jroot2,uid=$JAIL_UID2,gid=$JAIL_UID2"
	expect_failure || return 1
	one_error_line "uid $JAIL_UID2 is in use by another jailed kiln-vmm" || return 1
	[ ! -e "$T/jroot2" ] && [ ! -e "$T/jrun/api2.sock" ] || { fail "the refused VMM left files"; return 1; }
	jail_api GET /
	[ "$code" = 200 ] || { fail "the first VMM's API: $code"; return 1; }
	# fd 7 may be the VMM's own by now, just not the file given
	for fd in /proc/"$jail_vmm"/fd/*; do
		[ "$(readlink "$fd")" != "$T/jkeep" ] || { fail "fd ${fd##*/} ($T/jkeep) kept without keep-fds"; return 1; }
	done
	kill -TERM "$jail_outer"
	jail_wait
	expect_rc 143 || return 1
	jail_nothing_left "$T/jroot"
}

test_jail_bad_input() {
	jail_prepare "$JAIL_UID"
	args="--api-sock $T/jrun/api.sock --kernel $GUEST/vmlinux"
	mkdir -p "$T/jfull"
	echo x >"$T/jfull/keep"
	# shellcheck disable=SC2086 # args: words
	vmm $args --jail "root=$T/jfull,uid=$JAIL_UID,gid=$JAIL_UID"
	expect_failure && one_error_line "root \`$T/jfull\` is not empty" || return 1
	[ "$(cat "$T/jfull/keep")" = x ] || { fail "the folder was touched"; return 1; }
	ln -sfn "$T/jempty" "$T/jlink"
	mkdir -p "$T/jempty"
	# shellcheck disable=SC2086
	vmm $args --jail "root=$T/jlink,uid=$JAIL_UID,gid=$JAIL_UID"
	expect_failure && one_error_line "root \`$T/jlink\` is a symlink" || return 1
	[ -d "$T/jempty" ] && [ -L "$T/jlink" ] || { fail "the symlink or its folder changed"; return 1; }
	# shellcheck disable=SC2086
	vmm $args --jail "root=$T/jroot,uid=0,gid=$JAIL_UID"
	expect_failure && one_error_line "not root" || return 1
	# the API socket's folder must be the jail uid's to make the socket in
	chown 0:0 "$T/jrun"
	# shellcheck disable=SC2086
	vmm $args --jail "root=$T/jroot,uid=$JAIL_UID,gid=$JAIL_UID"
	expect_failure && one_error_line "cannot create files in the API socket folder" || return 1
	chown "$JAIL_UID:$JAIL_UID" "$T/jrun"
	# a host without /dev/kvm, in a mount namespace of the test's own
	: >"$T/notadev"
	rc=0
	timeout -k 5 60 unshare -m --propagation private sh -c \
		"mount --bind '$T/notadev' /dev/kvm && exec '$VMM' $args --jail root=$T/jroot,uid=$JAIL_UID,gid=$JAIL_UID" \
		>"$T/out" 2>"$T/err" || rc=$?
	expect_failure && one_error_line "the host has no /dev/kvm device node" || return 1
	# not root
	if command -v setpriv >/dev/null; then
		rc=0
		# shellcheck disable=SC2086
		setpriv --reuid="$JAIL_UID" --regid="$JAIL_UID" --clear-groups \
			"$VMM" $args --jail "root=$T/jroot,uid=$JAIL_UID,gid=$JAIL_UID" \
			>"$T/out" 2>"$T/err" || rc=$?
		expect_failure && one_error_line "must be started as root" || return 1
	fi
	jail_nothing_left "$T/jroot" || return 1
	[ -z "$(ls -A "$T/jrun")" ] || { fail "files left in $T/jrun: $(ls -A "$T/jrun")"; return 1; }
	for d in "$T/jfull" "$T/jempty"; do
		! grep -qF -- "$d" /proc/self/mountinfo || { fail "$d mounted"; return 1; }
	done
}
