# containerd (Debian's containerd, runc shim io.containerd.runc.v2) runs
# kiln: a private containerd whose config imports
# contrib/containerd/config.toml as written (its CRI runtime "kiln" with
# BinaryName), with root, state and socket in a tmpfs of its own. ctr does
# not read CRI's runtimes, so ctr gets the snippet's BinaryName with
# --runc-binary: the same option the CRI plugin hands the runc shim.
# The shim's runtime root is its default, /run/containerd/runc/<namespace>.

. "$TOP/test/integration/daemons.sh"

CONTAINERD=/usr/bin/containerd
CTR=/usr/bin/ctr
CD_NS=kiln-it
CD_IMG=docker.io/library/$DM_IMAGE
CD_STEPS=${KILN_CONTAINERD_STEPS:-config image output uname env_cwd stdin tty \
exec kill rm readonly_rootfs ro_bind rw_bind_refused keep_writes metrics}

cdctl() {
	timeout -k 5 "$DM_LIMIT" "$CTR" --address "$DM_DIR/containerd.sock" \
		--namespace "$CD_NS" "$@"
}

# The runc-compatible binary: the snippet's BinaryName, or runc.
cd_binary() {
	if dm_kiln; then
		sed -n 's/^[[:space:]]*BinaryName[[:space:]]*=[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p' \
			"$TOP/contrib/containerd/config.toml"
	else
		command -v "$DM_RUNTIME"
	fi
}

# ctr run through the runc shim with that binary
cdr() {
	cdctl run --runtime io.containerd.runc.v2 --runc-binary "$CD_BIN" "$@"
}

# A task's status: RUNNING, STOPPED..., nothing without a task.
cd_status() { # ID
	cdctl task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'
}

cd_gone() { # ID
	cdctl task rm -f "$1" >/dev/null 2>&1
	cdctl container rm "$1" >/dev/null 2>&1
}

# ---- steps -----------------------------------------------------------------

# containerd took the snippet: its CRI runtime "kiln" names kiln.
cd_config() {
	drun timeout 60 "$CONTAINERD" --config "$DM_DIR/config.toml" config dump
	dm_expect_rc 0 || return 1
	grep -A3 'runtimes\.kiln\.options\]' "$T/dm.out" | grep -qF "BinaryName = \"$DM_KILN\"" ||
		{ dm_fail "containerd's merged config has no kiln runtime with BinaryName $DM_KILN"; return 1; }
	grep -A12 'runtimes\.kiln\]' "$T/dm.out" | grep -qF 'runtime_type = "io.containerd.runc.v2"' ||
		{ dm_fail "the kiln runtime is not the runc shim"; return 1; }
	[ "$(cd_binary)" = "$CD_BIN" ] || fail "BinaryName is not $CD_BIN"
}

cd_image() {
	dm_oci_archive "$T/cd-image.tar" || { fail "cannot build the image archive"; return 1; }
	drun cdctl images import "$T/cd-image.tar"
	rm -f "$T/cd-image.tar"
	dm_expect_rc 0 || return 1
	drun cdctl images ls -q
	dm_out_has "$CD_IMG"
}

cd_output() {
	drun cdr --rm "$CD_IMG" out sh -c 'echo hi; echo oops >&2; exit 3'
	dm_expect_rc 3 && dm_out_is hi || return 1
	grep -qxF oops "$T/dm.err" || dm_fail "stderr lacks 'oops'"
}

cd_uname() {
	dm_kiln_only "the guest kernel" || return 0
	drun cdr --rm "$CD_IMG" un uname -r
	dm_expect_rc 0 || return 1
	[ -s "$T/dm.out" ] || { dm_fail "uname -r printed nothing"; return 1; }
	[ "$(cat "$T/dm.out")" != "$(uname -r)" ] ||
		dm_fail "uname -r inside is the host's ($(uname -r)): no guest kernel"
}

cd_env_cwd() {
	drun cdr --rm --env FOO=bar --env 'SPACED=a b' --cwd /tmp "$CD_IMG" ec \
		sh -c 'echo "$FOO"; echo "$SPACED"; pwd'
	dm_expect_rc 0 && dm_out_is bar "a b" /tmp
}

# ctr never closes the task's stdin (its FIFO stays open): read two lines.
cd_stdin() {
	printf 'data\nmore data\n' >"$T/cd.in"
	DM_IN=$T/cd.in drun cdr --rm "$CD_IMG" in head -n 2
	dm_expect_rc 0 && dm_out_is data "more data"
}

# -t under script, bounded: the terminal is 33x111 inside too (see
# DM_TTY_CHECK). script's stdin stays open (a FIFO held by a sleep): at
# its end script would send the terminal an EOF, which ctr passes on.
cd_tty() {
	rm -f "$T/cd.tty"
	mkfifo "$T/cd.tty"
	sleep 120 >"$T/cd.tty" &
	hold=$!
	DM_IN=$T/cd.tty drun script -qec "stty rows 33 cols 111; timeout --foreground -k 5 60 $CTR --address $DM_DIR/containerd.sock \
--namespace $CD_NS run --runtime io.containerd.runc.v2 --runc-binary $CD_BIN --rm -t $CD_IMG tt \
sh -c '$DM_TTY_CHECK'" /dev/null
	kill "$hold" 2>/dev/null
	wait "$hold" 2>/dev/null
	rm -f "$T/cd.tty"
	cd_gone tt
	dm_expect_rc 5
}

cd_exec() {
	cd_gone ex
	drun cdr -d "$CD_IMG" ex sleep 1000
	dm_expect_rc 0 || return 1
	drun cdctl task exec --exec-id e1 ex sh -c 'echo in; echo err >&2; exit 4'
	r=0
	{ dm_expect_rc 4 && dm_out_is in; } || r=1
	printf 'to exec\n' >"$T/cd.in"
	DM_IN=$T/cd.in drun cdctl task exec --exec-id e2 --cwd /tmp ex sh -c 'cat; pwd'
	{ dm_expect_rc 0 && dm_out_is "to exec" /tmp; } || r=1
	cd_gone ex
	return $r
}

# ctr run's status is the task's: 137 when SIGKILL ends it.
cd_kill() {
	cd_gone kl
	cdr "$CD_IMG" kl sleep 1000 </dev/null >"$T/cd-kl.out" 2>&1 &
	rpid=$!
	dm_until 60 '[ "$(cd_status kl)" = RUNNING ]' || { fail "task kl never ran"; kill "$rpid"; wait "$rpid"; cd_gone kl; return 1; }
	drun cdctl task kill -s SIGKILL kl
	dm_expect_rc 0 || { kill "$rpid"; wait "$rpid"; cd_gone kl; return 1; }
	code=0
	wait "$rpid" || code=$?
	cd_gone kl
	[ "$code" = 137 ] || { fail "ctr run exited $code after SIGKILL, want 137"; sed 's/^/      | /' "$T/cd-kl.out"; return 1; }
}

cd_rm() {
	cd_gone gone
	# the image's layers in kiln's cache first (when rm runs alone)
	cdr --rm "$CD_IMG" warm true >/dev/null 2>&1
	DM_CACHE_BEFORE=$(dm_cache_list)
	drun cdr -d "$CD_IMG" gone sleep 1000
	dm_expect_rc 0 || return 1
	if dm_kiln; then
		dm_until 60 '[ -n "$(dm_vmms)" ]' || { fail "no kiln-vmm while the task runs"; cd_gone gone; return 1; }
	fi
	drun cdctl task rm -f gone
	dm_expect_rc 0 || { cd_gone gone; return 1; }
	drun cdctl container rm gone
	dm_expect_rc 0 || return 1
	cdctl container ls -q | grep -qx gone && { fail "ctr still lists it"; return 1; }
	dm_until 30 '[ -z "$(dm_vmms)" ]'
	dm_nothing_left gone "/run/containerd/runc/$CD_NS" "$DM_DIR/state"
}

cd_readonly_rootfs() {
	drun cdr --rm --read-only "$CD_IMG" ro sh -c 'cat /etc/passwd >/dev/null && touch /new'
	[ "$drc" -ne 0 ] && [ "$drc" -lt 124 ] ||
		{ dm_fail "a write to a --read-only rootfs: status $drc"; return 1; }
	grep -qi 'read-only' "$T/dm.err" || dm_fail "no read-only error"
}

cd_ro_bind() {
	mkdir -p "$DM_DIR/ro"
	echo hello >"$DM_DIR/ro/f"
	drun cdr --rm --mount "type=bind,src=$DM_DIR/ro,dst=/x,options=rbind:ro" "$CD_IMG" rb \
		sh -c 'cat /x/f; touch /x/g'
	[ "$drc" -ne 0 ] || { dm_fail "a write to a read-only bind mount succeeded"; return 1; }
	dm_out_has hello || return 1
	[ ! -e "$DM_DIR/ro/g" ] || fail "the host file appeared through a :ro mount"
}

cd_rw_bind_refused() {
	dm_kiln_only "the refusal of a writable bind mount" || return 0
	mkdir -p "$DM_DIR/rw"
	drun cdr --rm --mount "type=bind,src=$DM_DIR/rw,dst=/rwmnt,options=rbind:rw" "$CD_IMG" wb \
		sh -c 'echo x >/rwmnt/f'
	cd_gone wb
	dm_error_names /rwmnt || return 1
	dm_until 30 '[ -z "$(dm_vmms)" ]' || fail "a kiln-vmm outlived the refused container"
}

# The container (and its snapshot) outlives its task when ctr run has no
# --rm: a second task sees the first one's writes.
cd_keep_writes() {
	cd_gone kw
	drun cdr "$CD_IMG" kw sh -c 'cat /data 2>/dev/null || echo none; echo kept >/data'
	{ dm_expect_rc 0 && dm_out_is none; } || { cd_gone kw; return 1; }
	cdctl task rm kw >/dev/null 2>&1
	drun cdctl task start kw
	cd_gone kw
	dm_expect_rc 0 && dm_out_is kept
}

# ctr task metrics sees the VM's memory.
cd_metrics() {
	cd_gone mt
	drun cdr -d "$CD_IMG" mt sh -c 'while :; do :; done'
	dm_expect_rc 0 || return 1
	# the busy loop has run a little
	dm_until 30 '[ "$(cd_status mt)" = RUNNING ]'
	drun cdctl task metrics mt
	cd_gone mt
	dm_expect_rc 0 || return 1
	mem=$(awk '$1 == "memory.usage_in_bytes" || $1 == "memory.usage" { print $2 }' "$T/dm.out" | head -n 1)
	echo "      ctr task metrics: memory $mem"
	[ -n "$mem" ] && [ "$mem" != 0 ] || dm_fail "no non-zero memory usage"
}

# ---- the test --------------------------------------------------------------

cd_cleanup() {
	if [ -n "$DM_DIR" ] && [ -S "$DM_DIR/containerd.sock" ]; then
		for c in $(DM_LIMIT=30 cdctl container ls -q 2>/dev/null); do
			DM_LIMIT=60 cd_gone "$c"
		done
		DM_LIMIT=30 cdctl images rm "$CD_IMG" >/dev/null 2>&1
	fi
	dm_stop 20
	rm -rf "/run/containerd/runc/$CD_NS" 2>/dev/null
}

test_containerd_runs_kiln() {
	dm_need "$CONTAINERD" "$CTR" /usr/bin/containerd-shim-runc-v2 /usr/bin/script || return 1
	dm_install || return 1
	CD_BIN=$(cd_binary)
	[ -n "$CD_BIN" ] || { fail "no BinaryName in contrib/containerd/config.toml"; return 1; }
	dm_mkdir containerd || return 1
	trap cd_cleanup EXIT
	cat >"$DM_DIR/config.toml" <<EOF
version = 2
root = "$DM_DIR/root"
state = "$DM_DIR/state"
imports = ["$TOP/contrib/containerd/config.toml"]

[grpc]
  address = "$DM_DIR/containerd.sock"

[ttrpc]
  address = "$DM_DIR/containerd.sock.ttrpc"
EOF
	t0=$(date +%s.%N)
	dm_spawn "$CONTAINERD" --config "$DM_DIR/config.toml"
	if ! dm_until 60 'cdctl version'; then
		fail "containerd did not answer within 60 s"
		dm_log_tail 20
		cd_cleanup
		return 1
	fi
	echo "    containerd up in $(echo "$(date +%s.%N) - $t0" | bc) s"
	r=0
	DM_FATAL=image dm_steps cd $CD_STEPS || r=1
	[ "$r" -eq 0 ] || dm_log_tail 15
	cd_cleanup
	trap - EXIT
	return $r
}
