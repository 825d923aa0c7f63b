# kiln starts kiln-vmm jailed by default (docs/jail.md, runtime/jail.c): a
# uid of its own per VM from the documented range, no capabilities,
# no_new_privs and seccomp on every thread, its own mount namespace, and
# the container works as unjailed; a kill -9 and a delete leave nothing
# (no held uid lock, no jail folder, no mount, no TAP); pause stops the
# VMM itself, not only its waiter; --no-jail opts out.

# kj_find, kj_check_uid, kj_check_confined, kj_lock_held: lib.sh

test_kiln_jail_run_confined_and_working() {
	kiln_reset
	kiln_bundle "$T/b" 'echo jailed-out; echo jailed-err >&2; exit 7' || return 1
	rc=0
	timeout -k 5 180 "$KILN" --root "$KROOT" run --bundle "$T/b" kj0 \
		</dev/null >"$T/kout" 2>"$T/kerr" || rc=$?
	[ "$rc" = 7 ] || { kiln_fail "run exited $rc, want 7"; return 1; }
	[ "$(cat "$T/kout")" = jailed-out ] && [ "$(cat "$T/kerr")" = jailed-err ] ||
		{ kiln_fail "stdout/stderr of the jailed container"; return 1; }
	kiln_nothing_left || return 1

	kiln_bundle "$T/b" 'exec sleep 1000' || return 1
	kiln run --detach --bundle "$T/b" kj1
	[ "$krc" = 0 ] || { kiln_fail "run --detach failed"; return 1; }
	kj_find kj1 || return 1
	kj_check_uid || return 1
	kj_check_confined || return 1
	[ "$(cat "$KROOT/kj1/jail.uid")" = "$kj_uid" ] || { fail "state's jail record: $(cat "$KROOT/kj1/jail.uid")"; return 1; }
	[ "$(stat -c %u "$KROOT/kj1/vm")" = "$kj_uid" ] || { fail "vm/ is not the jail uid's"; return 1; }
	[ ! -e "$KROOT/kj1/jailroot" ] || { fail "the jail folder is still on the host after the pivot"; return 1; }
	kj_lock_held "$kj_uid" || { fail "uid $kj_uid's lock is not held while its VM runs"; return 1; }
	# the waiter is root and outside; the VMM sees only its jail
	[ "$(kj_field "/proc/$kj_waiter/status" Uid | awk '{ print $1 }')" = 0 ] ||
		{ fail "the waiter is not root"; return 1; }
	kiln exec kj1 sh -c 'echo from-exec; exit 5'
	[ "$krc" = 5 ] && [ "$(cat "$T/kout")" = from-exec ] ||
		{ kiln_fail "exec in the jailed VM: status $krc"; return 1; }
	kiln kill kj1 KILL
	kiln_wait_status kj1 60 stopped || { kiln_fail "not stopped after KILL"; return 1; }
	kiln delete kj1
	[ "$krc" = 0 ] || { kiln_fail "delete failed"; return 1; }
	kj_lock_held "$kj_uid" && { fail "uid $kj_uid's lock still held after delete"; return 1; }
	kiln_nothing_left
}

# kill -9 of the jailed VMM itself (not its waiter), in a container with a
# network interface: the container stops; delete leaves no held lock, no
# jail folder, no mount, no TAP. The TAP was the jail uid's.
test_kiln_jail_kill9_vmm_then_delete_leaves_nothing() {
	KNET_EDIT="
for k in c['process']['capabilities']:
    c['process']['capabilities'][k].append('CAP_NET_RAW')
" knet_up 'exec sleep 1000' || return 1
	ln -s busybox "$T/b/rootfs/bin/ping"
	kiln run --detach --bundle "$T/b" kj2 >/dev/null
	[ "$krc" = 0 ] || { kiln_fail "run --detach failed"; knet_down; return 1; }
	kj_find kj2 || { knet_down; return 1; }
	kj_check_uid || { knet_down; return 1; }
	tap=$(knet_leftovers | grep '^kt' | head -n 1)
	[ -n "$tap" ] || { fail "no TAP in the container's namespace"; knet_down; return 1; }
	owner=$(ip netns exec "$KNET_C" cat "/sys/class/net/$tap/owner")
	group=$(ip netns exec "$KNET_C" cat "/sys/class/net/$tap/group")
	[ "$owner" = "$kj_uid" ] && [ "$group" = "$kj_uid" ] ||
		{ fail "TAP $tap owner $owner group $group, want $kj_uid"; knet_down; return 1; }
	# the guest reached the host side through the TAP the jailed VMM holds
	kiln exec kj2 sh -c 'ping -c 1 -W 5 10.77.0.1 >/dev/null && echo net-ok'
	[ "$(cat "$T/kout")" = net-ok ] || { kiln_fail "no network in the jailed VM"; knet_down; return 1; }
	kill -9 "$kj_vmm"
	kiln_wait_status kj2 60 stopped || { kiln_fail "not stopped after kill -9 of the VMM"; knet_down; return 1; }
	kill -0 "$kj_waiter" 2>/dev/null && { fail "the waiter outlived its VMM"; knet_down; return 1; }
	kiln delete kj2
	[ "$krc" = 0 ] || { kiln_fail "delete after kill -9 failed"; knet_down; return 1; }
	kj_lock_held "$kj_uid" && { fail "uid $kj_uid's lock held after delete"; knet_down; return 1; }
	[ ! -e "$KROOT/kj2" ] || { fail "state (jail folder) left: $(ls -R "$KROOT/kj2")"; knet_down; return 1; }
	grep -qF "$KROOT/kj2" /proc/self/mountinfo && { fail "a mount under kj2's state is left"; knet_down; return 1; }
	left=$(knet_leftovers)
	[ -z "$left" ] || { fail "left in the namespace: $left"; knet_down; return 1; }
	knet_down
	kiln_nothing_left
}

# Two containers at once: two uids; the uid of the first is free again
# once it is deleted, and the next container may take it.
test_kiln_jail_two_containers_two_uids() {
	kiln_reset
	kiln_bundle "$T/b" 'exec sleep 1000' || return 1
	kiln run --detach --bundle "$T/b" kj3
	[ "$krc" = 0 ] || { kiln_fail "run --detach kj3 failed"; return 1; }
	kiln run --detach --bundle "$T/b" kj4
	[ "$krc" = 0 ] || { kiln_fail "run --detach kj4 failed"; return 1; }
	kj_find kj3 && kj_check_uid || return 1
	u3=$kj_uid
	kj_find kj4 && kj_check_uid || return 1
	u4=$kj_uid
	echo "    kj3 uid $u3, kj4 uid $u4"
	[ "$u3" != "$u4" ] || { fail "two VMs with uid $u3"; return 1; }
	kiln delete --force kj3
	kiln delete --force kj4
	kj_lock_held "$u3" && { fail "uid $u3 still locked"; return 1; }
	kj_lock_held "$u4" && { fail "uid $u4 still locked"; return 1; }
	kiln_nothing_left
}

kj_ticks() { # PID: CPU clock ticks it used
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# pause stops the jailed VMM itself (every thread in state T), so a busy
# guest uses no CPU; resume runs it again.
test_kiln_jail_pause_resume_stops_the_vmm() {
	kiln_reset
	kiln_bundle "$T/b" 'while :; do :; done' || return 1
	kiln run --detach --bundle "$T/b" kj5
	[ "$krc" = 0 ] || { kiln_fail "run --detach failed"; return 1; }
	kj_find kj5 || return 1
	kiln pause kj5
	[ "$krc" = 0 ] || { kiln_fail "pause failed"; return 1; }
	for t in /proc/"$kj_vmm"/task/*; do
		st=$(awk '{ print $3 }' "$t/stat")
		[ "$st" = T ] || { fail "thread $(cat "$t/comm") of the paused VMM is in state $st"; return 1; }
	done
	t0=$(kj_ticks "$kj_vmm")
	sleep 3
	t1=$(kj_ticks "$kj_vmm")
	echo "    jailed kiln-vmm: $((t1 - t0)) ticks in 3 s paused"
	[ $((t1 - t0)) -lt 30 ] || { fail "the VMM used $((t1 - t0)) ticks while paused"; return 1; }
	kiln resume kj5
	[ "$krc" = 0 ] || { kiln_fail "resume failed"; return 1; }
	t0=$(kj_ticks "$kj_vmm")
	sleep 3
	t1=$(kj_ticks "$kj_vmm")
	echo "    jailed kiln-vmm: $((t1 - t0)) ticks in 3 s resumed"
	[ $((t1 - t0)) -ge 30 ] || { fail "the VMM used $((t1 - t0)) ticks after resume"; return 1; }
	kiln exec kj5 sh -c 'echo awake'
	[ "$krc" = 0 ] && [ "$(cat "$T/kout")" = awake ] || { kiln_fail "exec after resume"; return 1; }
	kiln delete --force kj5
	[ "$krc" = 0 ] || { kiln_fail "delete --force failed"; return 1; }
	kiln_nothing_left
}

# --no-jail: kiln-vmm is one root process, in our mount namespace.
test_kiln_jail_opt_out() {
	kiln_reset
	kiln_bundle "$T/b" 'exec sleep 1000' || return 1
	krc=0
	timeout -k 5 180 "$KILN" --no-jail --root "$KROOT" run --detach --bundle "$T/b" \
		--pid-file "$T/pid" kj6 </dev/null >"$T/kout" 2>"$T/kerr" || krc=$?
	[ "$krc" = 0 ] || { kiln_fail "--no-jail run --detach failed"; return 1; }
	v=$(pgrep -P "$(cat "$T/pid")" -x kiln-vmm)
	[ -n "$v" ] && [ -z "$(pgrep -P "$v" -x kiln-vmm)" ] ||
		{ fail "--no-jail: want one kiln-vmm, no waiter"; return 1; }
	[ "$(kj_field "/proc/$v/status" Uid | awk '{ print $1 }')" = 0 ] &&
		[ "$(readlink "/proc/$v/ns/mnt")" = "$(readlink /proc/self/ns/mnt)" ] ||
		{ fail "--no-jail: kiln-vmm is not unjailed"; return 1; }
	[ ! -e "$KROOT/kj6/jail.uid" ] || { fail "--no-jail: a jail record"; return 1; }
	kiln delete --force kj6
	kiln_nothing_left
}

# A fork runs as another uid than its template; both jailed.
test_kiln_jail_fork_other_uid() {
	kiln_reset
	kiln_bundle "$T/b" 'exec sleep 1000' || return 1
	kiln run --detach --bundle "$T/b" kj7
	[ "$krc" = 0 ] || { kiln_fail "run --detach kj7 failed"; return 1; }
	for _ in $(seq 180); do
		"$KILN" --root "$KROOT" templates 2>/dev/null | grep -q ' ready ' && break
		sleep 1
	done
	"$KILN" --root "$KROOT" templates 2>/dev/null | grep -q ' ready ' ||
		{ kiln_fail "no template became ready"; return 1; }
	tmpl=
	for p in $(own_vmms all); do
		tr '\0' '\n' <"/proc/$p/environ" | grep -qx KILN_TEMPLATE=1 && tmpl=$p
	done
	[ -n "$tmpl" ] || { fail "no template VMM found"; return 1; }
	tu=$(kj_field "/proc/$tmpl/status" Uid | awk '{ print $1 }')
	kiln run --detach --bundle "$T/b" kj8
	[ "$krc" = 0 ] || { kiln_fail "run --detach kj8 failed"; return 1; }
	grep -q "forked from" "$KROOT/kj8/vmm.log" || { kiln_fail "kj8 did not fork"; return 1; }
	kj_find kj8 && kj_check_uid && kj_check_confined || return 1
	echo "    template uid $tu, fork uid $kj_uid"
	[ "$tu" -ge $KJ_BASE ] && [ "$tu" != "$kj_uid" ] ||
		{ fail "template uid $tu, fork uid $kj_uid"; return 1; }
	kiln exec kj8 sh -c 'echo forked-ok'
	[ "$(cat "$T/kout")" = forked-ok ] || { kiln_fail "exec in the jailed fork"; return 1; }
	kiln delete --force kj7
	kiln delete --force kj8
	kiln_nothing_left
}
