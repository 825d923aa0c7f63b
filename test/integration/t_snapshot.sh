# Snapshots through the Firecracker-compatible API: a paused VM is saved
# (PUT /snapshot/create), its VMM killed, and a new kiln-vmm loads it (PUT
# /snapshot/load, resume_vm): the guest carries on where it stopped. Bad
# state and memory files are refused with a clear message before any
# vCPU runs, and the same VMM then still loads the good ones.
#
# Uses api, api_ok, api_fault, api_start, api_wait, json_get from
# t_api.sh and the agent helpers from t_agent.sh (run.sh sources all).

# Snapshot requests read and write all of guest RAM: under emulation that
# takes seconds, longer than api()'s 10 s bound on a loaded test bed.
snap_api() { # WANT METHOD PATH JSON
	code=$(curl -s -m 300 -o "$T/api.body" -w '%{http_code}' \
		--unix-socket "$T/api.sock" -X "$2" \
		-H 'Content-Type: application/json' -d "$4" \
		"http://localhost$3") || code=000
	body=$(cat "$T/api.body" 2>/dev/null)
	[ "$code" = "$1" ] || {
		fail "$2 $3: status $code, want $1: $body"
		# no answer: the VMM's last words
		[ "$code" != 000 ] || tail -n 40 "$T/err" | sed 's/^/    ! /'
		return 1
	}
}

# Pause the API VM, snapshot it into $1.state and $1.mem.
snap_save() { # PREFIX
	api_ok 204 PATCH /vm '{"state": "Paused"}' || return 1
	t0=$(date +%s.%N)
	snap_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$1.state\",
		\"mem_file_path\": \"$1.mem\", \"snapshot_type\": \"Full\"}" || return 1
	printf '    snapshot: %.1f s, state %s bytes, memory %s bytes (%s KiB on disk)\n' \
		"$(echo "$(date +%s.%N) - $t0" | bc)" "$(stat -c %s "$1.state")" \
		"$(stat -c %s "$1.mem")" "$(du -k "$1.mem" | cut -f1)"
}

# SIGKILL the API VM.
snap_kill() {
	pid=$(pgrep -P "$api_pid" -x kiln-vmm)
	[ -n "$pid" ] || { fail "no kiln-vmm under $api_pid"; return 1; }
	kill -KILL "$pid"
	api_wait
}

snap_save_and_kill() { # PREFIX
	snap_save "$1" && snap_kill
}

# The last complete TICK number in a console file (still being written:
# read it as is, \r and all; crlf's sed -i would take the VMM's file away).
last_tick() { # FILE
	tr -d '\r' <"$1" | grep -E '^TICK [0-9]+$' | tail -n 1 | cut -d' ' -f2
}

first_tick() { # FILE
	tr -d '\r' <"$1" | grep -E '^TICK [0-9]+$' | head -n 1 | cut -d' ' -f2
}

# After a load the counter goes on from $last: it reaches last + AHEAD,
# and its first line is past $last by at most 2 (a line the guest had
# half sent when paused ends on the new console). STEP names the load.
counts_on() { # STEP AHEAD
	wait_line "TICK $((last + $2))" 90 "$T/out" ||
		{ fail "$1: no TICK $((last + $2)) (last before: $last)"; tail "$T/out"; tail "$T/err"; return 1; }
	first=$(first_tick "$T/out")
	echo "    $1: last TICK $last; after the load: first TICK $first"
	[ "$first" -gt "$last" ] && [ "$first" -le $((last + 2)) ] ||
		{ fail "$1: the counter went from $last to $first"; return 1; }
}

# A counter (one TICK line every 0.1 s) is saved (and runs on), killed,
# loaded in a new VMM and counts on from where it was saved, not from 0. Before the good load,
# the new VMM refuses a truncated, a flipped-byte and a too-large memory
# file, a flipped-byte, a truncated and a wrong-version state file, each
# with a message that says what is wrong, and stays "Not started".
test_snapshot_counter_continues() {
	s=$T/snap
	rm -f "$s".* "$T/snap-v.sock"
	api_start || return 1
	api_configure api_tick || return 1
	api_ok 204 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$T/snap-v.sock\"}" ||
		return 1
	api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	wait_line "TICK 20" 90 "$T/out" || { never_ticked "the guest" "$(api_vmm)"; return 1; }
	api_fault "pause it first" PUT /snapshot/create \
		"{\"snapshot_path\": \"$s.state\", \"mem_file_path\": \"$s.mem\"}" || return 1
	snap_save "$s" || return 1
	last=$(last_tick "$T/out")
	# the snapshotted VM itself runs on
	api_ok 204 PATCH /vm '{"state": "Resumed"}' || return 1
	wait_line "TICK $((last + 5))" 60 "$T/out" ||
		{ fail "the VM did not run on after its snapshot"; return 1; }
	snap_kill || return 1
	[ "$(stat -c %s "$s.mem")" -eq $((128 << 20)) ] ||
		{ fail "memory file of $(stat -c %s "$s.mem") bytes, want 128 MiB"; return 1; }

	# bad copies of both files
	head -c $(((128 << 20) - 4096)) "$s.mem" >"$s.trunc.mem"
	cp --sparse=always "$s.mem" "$s.flip.mem"
	python3 - "$s.flip.mem" "$s.state" "$s.flip.state" "$s.v2.state" <<'PY' || { fail "making bad copies"; return 1; }
import struct, sys, zlib
mem, state, flip, v2 = sys.argv[1:]
with open(mem, "r+b") as f:          # one bit of guest RAM, 1 MiB in
    f.seek(1 << 20); b = f.read(1); f.seek(1 << 20); f.write(bytes([b[0] ^ 1]))
data = bytearray(open(state, "rb").read())
d = bytearray(data); d[len(d) // 2] ^= 0x40
open(flip, "wb").write(d)
d = bytearray(data); d[8:12] = struct.pack("<I", 2)   # version 2
open(v2, "wb").write(d)
PY
	cp --sparse=always "$s.mem" "$s.big.mem"
	truncate -s +4096 "$s.big.mem"
	head -c 100 "$s.state" >"$s.trunc.state"

	api_start || return 1
	load() { # STATE MEM
		echo "{\"snapshot_path\": \"$1\", \"mem_backend\": {\"backend_path\": \"$2\", \"backend_type\": \"File\"}, \"resume_vm\": true}"
	}
	api_fault "bytes, the snapshot's VM has" PUT /snapshot/load \
		"$(load "$s.state" "$s.trunc.mem")" || return 1
	api_fault "bytes, the snapshot's VM has" PUT /snapshot/load \
		"$(load "$s.state" "$s.big.mem")" || return 1
	api_fault "does not match the snapshot" PUT /snapshot/load \
		"$(load "$s.state" "$s.flip.mem")" || return 1
	api_fault "corrupt" PUT /snapshot/load "$(load "$s.flip.state" "$s.mem")" ||
		return 1
	api_fault "truncated" PUT /snapshot/load "$(load "$s.trunc.state" "$s.mem")" ||
		return 1
	api_fault "version 2" PUT /snapshot/load "$(load "$s.v2.state" "$s.mem")" ||
		return 1
	api_fault "no-such" PUT /snapshot/load "$(load "$T/no-such.state" "$s.mem")" ||
		return 1
	api_ok 200 GET / && [ "$(json_get state)" = "Not started" ] ||
		{ fail "state after refused loads: $body"; return 1; }
	grep -q '^TICK' "$T/out" && { fail "a refused load ran the guest"; return 1; }

	t0=$(date +%s.%N)
	snap_api 204 PUT /snapshot/load "$(load "$s.state" "$s.mem")" || return 1
	printf '    load + resume: %.1f s\n' "$(echo "$(date +%s.%N) - $t0" | bc)"
	api_ok 200 GET / && [ "$(json_get state)" = Running ] ||
		{ fail "state after load: $body"; return 1; }
	counts_on "load" 20 || return 1

	# a loaded VM (RAM mapped private over s.mem) is snapshotted again,
	# and that snapshot loads too; s.mem is left as it was
	sum=$(md5sum <"$s.mem")
	snap_save "$s.2" || return 1
	last=$(last_tick "$T/out")
	snap_kill || return 1
	[ "$(md5sum <"$s.mem")" = "$sum" ] ||
		{ fail "the loaded VM wrote into its memory file"; return 1; }
	api_start || return 1
	snap_api 204 PUT /snapshot/load "$(load "$s.2.state" "$s.2.mem")" || return 1
	counts_on "second snapshot" 10 || return 1
	pid=$(pgrep -P "$api_pid" -x kiln-vmm)
	kill -TERM "$pid"
	api_wait
	expect_rc 143 && no_leftovers
}

# Diff snapshots (track_dirty_pages): a full snapshot, then a diff of
# what the guest and the devices wrote after it. The diff alone is refused
# (its state's checksum is over the merged RAM); copied onto the full one
# with kiln-vmm --rebase-snap it loads and the counter carries on. A
# loaded VM (RAM private over its file) takes a diff of its own too, and
# a VM without tracking refuses one.
test_snapshot_diff() {
	s=$T/diff
	rm -f "$s".*
	api_start || return 1
	api_configure api_tick || return 1
	api_ok 204 PATCH /machine-config '{"track_dirty_pages": true}' || return 1
	api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	wait_line "TICK 20" 90 "$T/out" || { never_ticked "the guest" "$(api_vmm)"; return 1; }
	snap_save "$s.base" || return 1
	api_ok 204 PATCH /vm '{"state": "Resumed"}' || return 1
	last=$(last_tick "$T/out")
	wait_line "TICK $((last + 10))" 60 "$T/out" || { fail "no ticks after the full snapshot"; return 1; }
	diff_save() { # PREFIX
		api_ok 204 PATCH /vm '{"state": "Paused"}' || return 1
		snap_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$1.state\",
			\"mem_file_path\": \"$1.mem\", \"snapshot_type\": \"Diff\"}" || return 1
		echo "    diff snapshot: memory $(stat -c %s "$1.mem") bytes, $(du -k "$1.mem" | cut -f1) KiB on disk"
	}
	diff_save "$s.d1" || return 1
	last=$(last_tick "$T/out")
	snap_kill || return 1
	grep -q "diff snapshot: .* pages written since the last snapshot" "$T/err" ||
		{ fail "no diff log line"; tail -5 "$T/err"; return 1; }
	[ "$(stat -c %s "$s.d1.mem")" -eq $((128 << 20)) ] ||
		{ fail "diff memory file of $(stat -c %s "$s.d1.mem") bytes"; return 1; }
	kb_full=$(du -k "$s.base.mem" | cut -f1)
	kb_diff=$(du -k "$s.d1.mem" | cut -f1)
	[ "$kb_diff" -gt 0 ] && [ "$kb_diff" -lt $((kb_full / 4)) ] ||
		{ fail "diff of $kb_diff KiB against the full $kb_full KiB"; return 1; }

	load() { # STATE MEM [TRACK]
		echo "{\"snapshot_path\": \"$1\", \"mem_file_path\": \"$2\",
			\"track_dirty_pages\": ${3:-false}, \"resume_vm\": true}"
	}
	api_start || return 1
	api_fault "does not match the snapshot" PUT /snapshot/load \
		"$(load "$s.d1.state" "$s.d1.mem")" || return 1
	cp --sparse=always "$s.base.mem" "$s.m1.mem"
	"$VMM" --rebase-snap "$s.m1.mem" "$s.d1.mem" || { fail "rebase-snap failed"; return 1; }
	snap_api 204 PUT /snapshot/load "$(load "$s.d1.state" "$s.m1.mem" true)" || return 1
	counts_on "base + diff" 10 || return 1

	# the loaded VM's own diff, over m1 (which it never writes)
	diff_save "$s.d2" || return 1
	last=$(last_tick "$T/out")
	snap_kill || return 1
	cp --sparse=always "$s.m1.mem" "$s.m2.mem"
	"$VMM" --rebase-snap "$s.m2.mem" "$s.d2.mem" || { fail "second rebase-snap failed"; return 1; }
	api_start || return 1
	snap_api 204 PUT /snapshot/load "$(load "$s.d2.state" "$s.m2.mem")" || return 1
	counts_on "second diff" 10 || return 1
	# loaded without tracking: no diff
	api_ok 204 PATCH /vm '{"state": "Paused"}' || return 1
	api_fault "dirty pages are not tracked" PUT /snapshot/create \
		"{\"snapshot_path\": \"$s.d3.state\", \"mem_file_path\": \"$s.d3.mem\", \"snapshot_type\": \"Diff\"}" ||
		return 1
	pid=$(pgrep -P "$api_pid" -x kiln-vmm)
	kill -TERM "$pid"
	api_wait
	expect_rc 143 && no_leftovers
}

# kiln-agent as PID 1 on 2 vCPUs: a container runs before the snapshot;
# a load whose drive file is gone is refused naming it; after the load,
# the agent answers a new vsock connection and runs another container
# from the same block device, on both vCPUs.
test_snapshot_agent_answers() {
	s=$T/snapag
	rm -f "$s".*
	"$TOP/test/integration/mkrootfs.sh" "$s.root.ext4" >/dev/null 2>&1 ||
		{ fail "mkrootfs.sh failed"; return 1; }
	AG_UDS=$T/snapag.sock
	rm -f "$AG_UDS"
	api_start || return 1
	api_ok 204 PUT /boot-source "{\"kernel_image_path\": \"$GUEST/vmlinux\",
		\"initrd_path\": \"$GUEST/initramfs\",
		\"boot_args\": \"console=ttyS0 reboot=k panic=1 quiet rdinit=/sbin/kiln-agent\"}" &&
		api_ok 204 PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256}' &&
		api_ok 204 PUT /drives/rootfs "{\"drive_id\": \"rootfs\",
			\"path_on_host\": \"$s.root.ext4\", \"is_root_device\": false,
			\"is_read_only\": false}" &&
		api_ok 204 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$AG_UDS\"}" &&
		api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	agrun wait-ready && ag_expect_rc 0 || return 1
	agrun run --id c1 --rootfs /dev/vda -- sh -c 'echo before > /kept; cat /kept'
	ag_expect_rc 0 && ag_out_is before || return 1
	snap_save_and_kill "$s" || return 1

	api_start || return 1
	# the snapshot's devices must be there again: a missing drive is named
	mv "$s.root.ext4" "$s.away.ext4"
	api_fault "$s.root.ext4" PUT /snapshot/load "{\"snapshot_path\": \"$s.state\",
		\"mem_file_path\": \"$s.mem\", \"resume_vm\": true}" || return 1
	mv "$s.away.ext4" "$s.root.ext4"
	snap_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$s.state\",
		\"mem_file_path\": \"$s.mem\", \"resume_vm\": true}" || return 1
	agrun wait-ready && ag_expect_rc 0 || { tail "$T/out"; tail "$T/err"; return 1; }
	agrun run --id c2 --rootfs /dev/vda -- sh -c \
		'echo after; grep -c ^processor /proc/cpuinfo'
	ag_expect_rc 0 && ag_out_is after 2 || return 1
	ag shutdown >/dev/null 2>&1
	api_wait
	expect_rc 0 && no_leftovers
}

# A snapshot sealed with a key (encryption_key_path, ours): its memory
# file does not show a marker the guest's RAM holds (kernel command line),
# which an unsealed one of the same VM does; a new VMM refuses it with
# another key, without a key, after one flipped byte of either file and
# with the memory file of another sealed snapshot, and stays "Not
# started"; with its key it loads and the counter counts on.
test_snapshot_sealed() {
	s=$T/seal
	marker=kiln.sealmark=7f3a9c41e2
	rm -f "$s".*
	head -c 32 /dev/urandom >"$s.key"
	head -c 32 /dev/urandom >"$s.key2"
	head -c 31 /dev/urandom >"$s.short"
	mkfifo "$s.fifo"
	api_start || return 1
	api_ok 204 PUT /boot-source "{\"kernel_image_path\": \"$GUEST/vmlinux\",
		\"initrd_path\": \"$GUEST/initramfs\",
		\"boot_args\": \"$API_CMDLINE kiln.script=/tests/api_tick.sh $marker\"}" &&
		api_ok 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 128}' &&
		api_ok 204 PUT /actions '{"action_type": "InstanceStart"}' || return 1
	wait_line "TICK 20" 90 "$T/out" || { never_ticked "the guest" "$(api_vmm)"; return 1; }
	snap_save "$s.plain" || return 1
	create() { # PREFIX KEY
		echo "{\"snapshot_path\": \"$1.state\", \"mem_file_path\": \"$1.mem\",
			\"encryption_key_path\": \"$2\"}"
	}
	api_fault "exactly 32" PUT /snapshot/create "$(create "$s.x" "$s.short")" || return 1
	api_fault "regular file" PUT /snapshot/create "$(create "$s.x" "$s.fifo")" || return 1
	t0=$(date +%s.%N)
	snap_api 204 PUT /snapshot/create "$(create "$s" "$s.key")" || return 1
	printf '    sealed snapshot: %.1f s, state %s bytes, memory %s bytes\n' \
		"$(echo "$(date +%s.%N) - $t0" | bc)" "$(stat -c %s "$s.state")" \
		"$(stat -c %s "$s.mem")"
	# a second sealed snapshot of the same VM: its memory file is not ours
	snap_api 204 PUT /snapshot/create "$(create "$s.other" "$s.key")" || return 1
	last=$(last_tick "$T/out")
	snap_kill || return 1
	grep -aqF "$marker" "$s.plain.mem" ||
		{ fail "the marker is not in the unsealed memory file"; return 1; }
	grep -aqF "$marker" "$s.plain.state" ||
		{ fail "the marker is not in the unsealed state file"; return 1; }
	for f in "$s.mem" "$s.state" "$s.other.mem"; do
		! grep -aqF "$marker" "$f" || { fail "the marker is in sealed $f"; return 1; }
		! grep -aqF "TICK " "$f" || { fail "console text is in sealed $f"; return 1; }
	done
	head -c 8 "$s.mem" | grep -q KILNSEAL && head -c 8 "$s.state" | grep -q KILNSEAL ||
		{ fail "the sealed files lack their KILNSEAL header"; return 1; }
	cp "$s.mem" "$s.flip.mem"
	python3 - "$s.flip.mem" "$s.state" "$s.flip.state" <<'PY' || { fail "making bad copies"; return 1; }
import sys
mem, state, flip = sys.argv[1:]
with open(mem, "r+b") as f:          # one bit, in the second chunk
    f.seek((1 << 20) + 4096); b = f.read(1)
    f.seek((1 << 20) + 4096); f.write(bytes([b[0] ^ 1]))
d = bytearray(open(state, "rb").read()); d[len(d) // 2] ^= 0x01
open(flip, "wb").write(d)
PY

	# the key that loads reaches kiln-vmm as an inherited descriptor of
	# a file no longer on disk: /proc/self/fd/7 (docs/api.md)
	cp "$s.key" "$s.fdkey"
	exec 7<"$s.fdkey"
	rm -f "$s.fdkey"
	api_start
	rc=$?
	exec 7<&-
	[ "$rc" = 0 ] || return 1
	load() { # STATE MEM [KEY]
		echo "{\"snapshot_path\": \"$1\", \"mem_file_path\": \"$2\", \"resume_vm\": true${3:+, \"encryption_key_path\": \"$3\"}}"
	}
	api_fault "authentication failed" PUT /snapshot/load \
		"$(load "$s.state" "$s.mem" "$s.key2")" || return 1
	api_fault "is sealed" PUT /snapshot/load "$(load "$s.state" "$s.mem")" || return 1
	api_fault "authentication failed" PUT /snapshot/load \
		"$(load "$s.flip.state" "$s.mem" "$s.key")" || return 1
	snap_api 400 PUT /snapshot/load "$(load "$s.state" "$s.flip.mem" "$s.key")" || return 1
	printf '%s' "$body" | grep -q "chunk 1: authentication failed" ||
		{ fail "flipped memory: $body"; return 1; }
	api_fault "another snapshot" PUT /snapshot/load \
		"$(load "$s.state" "$s.other.mem" "$s.key")" || return 1
	api_fault "not sealed" PUT /snapshot/load \
		"$(load "$s.plain.state" "$s.plain.mem" "$s.key")" || return 1
	api_fault "regular file" PUT /snapshot/load \
		"$(load "$s.state" "$s.mem" "$s.fifo")" || return 1
	api_ok 200 GET / && [ "$(json_get state)" = "Not started" ] ||
		{ fail "state after refused loads: $body"; return 1; }
	grep -q '^TICK' "$T/out" && { fail "a refused load ran the guest"; return 1; }

	t0=$(date +%s.%N)
	snap_api 204 PUT /snapshot/load "$(load "$s.state" "$s.mem" /proc/self/fd/7)" || return 1
	printf '    sealed load + resume: %.1f s\n' "$(echo "$(date +%s.%N) - $t0" | bc)"
	counts_on "sealed" 20 || return 1
	pid=$(pgrep -P "$api_pid" -x kiln-vmm)
	kill -TERM "$pid"
	api_wait
	expect_rc 143 && no_leftovers
}
