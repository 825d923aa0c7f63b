#!/bin/sh
# Install everything kiln needs to build, test and benchmark (Debian 12).
# Idempotent: apt-get skips what is already there; the test-bed kernel .deb
# is downloaded once into the cache folder.
set -eu

PKGS="build-essential pkg-config clang lld libclang-rt-14-dev clang-format
libyajl-dev libseccomp-dev libcap-dev libprotobuf-c-dev protobuf-c-compiler
libhttp-parser-dev nettle-dev erofs-utils
libprotobuf-dev golang-github-containerd-containerd-dev
qemu-system-x86 qemu-system-common busybox-static e2fsprogs cpio kmod xz-utils gzip python3 curl iproute2
procps util-linux
docker.io podman containerd runc
linux-source-6.1 flex bison libelf-dev bc libssl-dev dwarves rsync"

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "install-deps: installing$missing"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The test bed's L1 kernel: Debian's current amd64 kernel, unpacked (not
# installed: this machine boots its own kernel). hack/testbed-setup.sh turns it
# into a bootable test bed.
CACHE=${KILN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}
mkdir -p "$CACHE/debs"
abi=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -n 1)
[ -n "$abi" ] || { echo "install-deps: cannot resolve linux-image-amd64's kernel" >&2; exit 1; }
if ! ls "$CACHE/debs/linux-image-$abi"_*.deb >/dev/null 2>&1; then
	echo "install-deps: downloading linux-image-$abi"
	(cd "$CACHE/debs" && apt-get download -qq "linux-image-$abi")
fi
echo "install-deps: ok (test-bed kernel $abi)"
