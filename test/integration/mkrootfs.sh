#!/bin/sh
# A container root filesystem for agent tests: a static busybox with one
# symlink per applet, /etc/passwd and /etc/group with root and a user
# `kiln` (uid 1000), the usual empty mount points and a sticky /tmp.
#
# usage: test/integration/mkrootfs.sh OUT.ext4 [OUT.erofs]
#   OUT.ext4   always built (mke2fs -d: no loop device, no mount)
#   OUT.erofs  built when mkfs.erofs exists (package erofs-utils);
#              exit status 3 when it does not, after OUT.ext4 is built
#   BUSYBOX    environment: the static busybox (default /bin/busybox,
#              from Debian's busybox-static)
#   MKROOTFS_LINKS  environment, optional: "NAME=TARGET ..." symlinks made
#              at the top of the image last (an empty directory NAME is
#              replaced): hostile images for the agent's mount tests
set -eu

fail() {
	echo "mkrootfs: $*" >&2
	exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: mkrootfs.sh OUT.ext4 [OUT.erofs]" >&2; exit 2; }
ext4=$1
erofs=${2:-}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || fail "no \`$busybox\` (apt-get install busybox-static)"
# a dynamic busybox would find no libc in the container
! ldd "$busybox" >/dev/null 2>&1 || fail "\`$busybox\` is not static"
command -v mke2fs >/dev/null || fail "no mke2fs (apt-get install e2fsprogs)"

umask 022
stage=$(mktemp -d "${TMPDIR:-/tmp}/mkrootfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
trap 'exit 1' HUP INT TERM

for d in bin dev etc proc sys tmp run root home home/kiln var var/tmp usr mnt; do
	mkdir "$stage/$d"
done
chmod 1777 "$stage/tmp" "$stage/var/tmp"
chmod 0700 "$stage/root"
ln -s bin "$stage/sbin"
ln -s ../bin "$stage/usr/bin"
ln -s ../bin "$stage/usr/sbin"
cp "$busybox" "$stage/bin/busybox"
chmod 0755 "$stage/bin/busybox"
for applet in $("$busybox" --list); do
	case $applet in
	busybox | */*) continue ;;
	esac
	ln -s busybox "$stage/bin/$applet"
done

cat >"$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
kiln:x:1000:1000:kiln test user:/home/kiln:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$stage/etc/group" <<'EOF'
root:x:0:
wheel:x:10:kiln
kiln:x:1000:
extra:x:1001:kiln
nogroup:x:65534:
EOF
echo kiln-rootfs >"$stage/etc/hostname"
echo "kiln agent test rootfs" >"$stage/etc/motd"
for link in ${MKROOTFS_LINKS:-}; do
	name=${link%%=*}
	case $name in
	"" | */* | . | .. | "$link") fail "MKROOTFS_LINKS: bad entry \`$link\`" ;;
	esac
	[ ! -d "$stage/$name" ] || rmdir "$stage/$name"
	ln -s "${link#*=}" "$stage/$name"
done
# owned by the user only when we may chown (the test bed runs as root)
chown 1000:1000 "$stage/home/kiln" 2>/dev/null || true

mkdir -p "$(dirname "$ext4")"
rm -f "$ext4"
mke2fs -q -F -t ext4 -L kiln-rootfs -d "$stage" "$ext4" 32M >/dev/null ||
	fail "mke2fs -d $ext4 failed"

[ -n "$erofs" ] || exit 0
command -v mkfs.erofs >/dev/null || exit 3
rm -f "$erofs"
mkfs.erofs -q "$erofs" "$stage" >/dev/null 2>&1 || mkfs.erofs "$erofs" "$stage" >/dev/null ||
	fail "mkfs.erofs $erofs failed"
