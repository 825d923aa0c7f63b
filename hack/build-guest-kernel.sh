#!/bin/sh
# Build the guest kernel from Debian's linux-source package with
# contrib/kernel/kiln-guest.config, and copy vmlinux and bzImage to OUTDIR.
# The result is cached outside the tree, keyed by the hash of the config, the
# source package version and RECIPE, so a rebuild happens only when one of
# them changes; the object folder is kept too, so a config change rebuilds
# only what it touches.
# usage: hack/build-guest-kernel.sh OUTDIR
set -eu

# Bump when a change to this script changes what it builds.
RECIPE=1

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: build-guest-kernel.sh OUTDIR}
frag=$top/contrib/kernel/kiln-guest.config
cache=${KILN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}
tarball=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n 1)
[ -n "$tarball" ] || { echo "build-guest-kernel: no /usr/src/linux-source-*.tar.xz (run hack/install-deps.sh)" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' "$(basename "$tarball" .tar.xz)")
key=$( { cat "$frag"; echo "$srcver recipe $RECIPE"; } | sha256sum | cut -c1-16)
dest=$cache/guest-kernel/$key
src=$cache/src/$(basename "$tarball" .tar.xz)-$srcver
bld=$cache/kbuild/$srcver

built() { [ -f "$dest/bzImage" ] && [ -f "$dest/vmlinux" ]; }

build() {
	if [ ! -f "$src/Makefile" ]; then
		echo "build-guest-kernel: unpacking $(basename "$tarball")"
		rm -rf "$src.tmp" && mkdir -p "$src.tmp"
		tar -xJf "$tarball" -C "$src.tmp" --strip-components=1
		rm -rf "$src" && mv "$src.tmp" "$src"
	fi
	echo "build-guest-kernel: building $key in $bld (a first build takes about 12 minutes on 2 cores)"
	make -s -C "$src" O="$bld" ARCH=x86_64 tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$bld" "$bld/.config" "$frag" >/dev/null
	make -s -C "$src" O="$bld" ARCH=x86_64 olddefconfig >/dev/null
	# every option we asked for must have survived olddefconfig
	grep '^CONFIG_' "$frag" | while read -r line; do
		grep -qx "$line" "$bld/.config" ||
			{ echo "build-guest-kernel: $line did not stick" >&2; exit 1; }
	done
	make -s -C "$src" O="$bld" ARCH=x86_64 -j"$(nproc)" vmlinux bzImage
	rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
	cp "$bld/vmlinux" "$dest.tmp/vmlinux"
	cp "$bld/arch/x86/boot/bzImage" "$dest.tmp/bzImage"
	cp "$bld/.config" "$dest.tmp/config"
	rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

if ! built; then
	mkdir -p "$bld"
	# one build at a time per object folder; the loser finds the result
	exec 9>"$bld.lock"
	flock 9
	built || build
	exec 9>&-
fi
mkdir -p "$out"
for f in vmlinux bzImage config; do
	cmp -s "$dest/$f" "$out/$f" 2>/dev/null || cp "$dest/$f" "$out/$f"
done
echo "build-guest-kernel: $out/vmlinux $out/bzImage (cache $key)"
