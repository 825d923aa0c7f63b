#!/bin/bash
# `make demo`: one container in a microVM with kiln, as docker would run
# it: a busybox bundle (kiln spec's config.json), `kiln run`, and what the
# container sees. Run inside hack/testbed where there is no /dev/kvm.
# usage: hack/demo.sh [COMMAND...]   (default: a few lines about itself)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
kiln=$top/build/kiln
work=$(mktemp -d /tmp/kiln-demo.XXXXXX)
trap '"$kiln" --root "$work/state" delete --force demo >/dev/null 2>&1 || :; "$kiln" --root "$work/state" templates --rm >/dev/null 2>&1 || :; rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/tmp"
cp /bin/busybox "$work/bundle/rootfs/bin/"
"$work/bundle/rootfs/bin/busybox" --list | while read -r a; do
	[ "$a" = busybox ] || ln -s busybox "$work/bundle/rootfs/bin/$a"
done
cd "$work/bundle"
"$kiln" spec
if [ $# -eq 0 ]; then
	set -- sh -c 'echo "hello from a container in a kiln microVM"
echo "kernel: $(uname -r) (the host runs '"$(uname -r)"')"
echo "cpus: $(nproc), memory: $(free -m | awk "/Mem/{print \$2}") MiB"
echo "pid 1: $(cat /proc/1/comm)"'
fi
python3 - "$@" <<'PY'
import json, sys
c = json.load(open("config.json"))
c["process"]["args"] = sys.argv[1:]
c["process"]["terminal"] = False
json.dump(c, open("config.json", "w"), indent=2)
PY
start=$(date +%s%N)
rc=0
"$kiln" --root "$work/state" run --bundle "$work/bundle" demo </dev/null || rc=$?
echo "(kiln run: exit status $rc, $((($(date +%s%N) - start) / 1000000)) ms under $([ -c /dev/kvm ] && grep -qw hypervisor /proc/cpuinfo && echo "the test bed's emulated KVM" || echo KVM))"
exit "$rc"
