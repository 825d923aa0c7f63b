#!/bin/sh
# Build the initramfs that test guests boot: /init (our test/guest/init or the
# agent), a static busybox with one symlink per applet in /bin, the mount
# points init uses, a /dev/console node, and extra files.
#
# The archive is newc cpio, uncompressed: the kernel then only copies it into
# its rootfs, while gzip -1 would halve the file (2.7 -> 1.4 MiB) but make
# every boot inflate it. Measured with our guest kernel under TCG, init ran
# at 0.77-0.80 s uptime uncompressed against 0.87-0.92 s with gzip -1; the
# VMM loading 1.3 MiB more costs far less than that.
#
# Output is deterministic (sorted names, mtime 0, uid/gid 0, renumbered
# inodes) so that the same inputs give the same bytes and caches can key on
# them, and atomic (OUT.tmp, then rename).
#
# usage: hack/mkinitramfs.sh OUT INIT [SRC:DEST ...]
#   INIT      the file to put at /init, or - for none (the kernel command
#             line names another with rdinit=)
#   SRC:DEST  copy the host file or directory SRC to DEST (absolute) in the
#             image, e.g. test/integration/boot.sh:/test.sh
#   BUSYBOX   environment: the static busybox to use (default /bin/busybox,
#             from Debian's busybox-static), or none: the runtime's guests
#             run only the agent, and every byte here is copied and
#             unpacked at each boot
set -eu

usage() {
	echo "usage: mkinitramfs.sh OUT INIT [SRC:DEST ...]" >&2
	exit 2
}
fail() {
	echo "mkinitramfs: $*" >&2
	exit 1
}

[ $# -ge 2 ] || usage
out=$1
init=$2
shift 2
busybox=${BUSYBOX:-/bin/busybox}

[ "$init" = - ] || { [ -f "$init" ] && [ -x "$init" ]; } ||
	fail "INIT \`$init\` is not an executable file"
[ "$busybox" = none ] || [ -x "$busybox" ] ||
	fail "no \`$busybox\` (apt-get install busybox-static)"
# The console node needs mknod, hence root (CAP_MKNOD); without it the kernel
# would start init with no stdin/stdout/stderr at all.
[ "$(id -u)" = 0 ] || fail "must run as root to create /dev/console (5,1)"

umask 022
stage=$(mktemp -d "${TMPDIR:-/tmp}/mkinitramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
trap 'exit 1' HUP INT TERM

for d in bin dev dev/pts etc mnt proc run sys tmp root usr; do
	mkdir "$stage/$d"
done
chmod 1777 "$stage/tmp"
chmod 0700 "$stage/root"
ln -s bin "$stage/sbin"
ln -s ../bin "$stage/usr/bin"
ln -s ../bin "$stage/usr/sbin"
mknod -m 0600 "$stage/dev/console" c 5 1 || fail "mknod dev/console failed"

if [ "$init" != - ]; then
	cp "$init" "$stage/init"
	chmod 0755 "$stage/init"
fi
if [ "$busybox" != none ]; then
	cp "$busybox" "$stage/bin/busybox"
	chmod 0755 "$stage/bin/busybox"
	for applet in $("$busybox" --list); do
		case $applet in
		busybox | */*) continue ;;
		esac
		ln -s busybox "$stage/bin/$applet"
	done
fi

for pair in "$@"; do
	src=${pair%:*}
	dest=${pair##*:}
	[ "$src" != "$pair" ] || fail "\`$pair\` is not SRC:DEST"
	case $dest in
	/*) ;;
	*) fail "DEST \`$dest\` must be an absolute path" ;;
	esac
	case /$dest/ in
	*/../*) fail "DEST \`$dest\` must not contain .." ;;
	esac
	[ -e "$src" ] || fail "no such file \`$src\`"
	mkdir -p "$stage$(dirname "$dest")"
	rm -rf "$stage$dest"
	cp -R "$src" "$stage$dest"
done

find "$stage" -exec touch -h -d @0 {} +
mkdir -p "$(dirname "$out")"
# Parents sort before their children, as the kernel's unpacker needs.
if ! (cd "$stage" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort |
	cpio --quiet -o -H newc --reproducible -R 0:0) >"$out.tmp"; then
	rm -f "$out.tmp"
	fail "cpio failed"
fi
mv -f "$out.tmp" "$out"
