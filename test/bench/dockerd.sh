#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# test/bench/dockerd.sh: a private dockerd for test/bench/start, started and
# stopped the way test/integration/t_docker.sh does it, through the same
# daemons.sh: Debian's dockerd with all of its state in a tmpfs of its own,
# kiln registered by contrib/docker/daemon.json as written (so kiln is
# installed under /usr/local first), a busybox image imported from a rootfs
# tar built here (no registry is reachable).
#
# usage: test/bench/dockerd.sh <&PIPE
# Once dockerd answers and the image is in, one line on stdout:
#   DIR IMAGE
# the daemon's folder (socket DIR/docker.sock, client config DIR/cli) and
# the image's name. Then it waits for the end of its stdin (the bench
# closes it, or dies) and removes every container, the warm templates of
# the daemon's kiln, the daemon and whatever it left, and its folder; the
# same on SIGINT, SIGTERM, SIGHUP or a failed start. Messages go to stderr.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
# what daemons.sh takes from test/integration/lib.sh
# shellcheck disable=SC2034 # used by daemons.sh
B=$TOP/build VMM=$TOP/build/kiln-vmm GUEST=$TOP/build/guest
T=
fail() {
	echo "dockerd.sh: $*" >&2
	return 1
}
# shellcheck disable=SC2317 # called from daemons.sh
skip() { echo "dockerd.sh: $*" >&2; }
# shellcheck source=/dev/null
. "$TOP/test/integration/daemons.sh"

# shellcheck disable=SC2317 # called from the trap
cleanup() {
	trap - EXIT INT TERM HUP
	if [ -n "$DM_DIR" ] && [ -S "$DM_DIR/docker.sock" ]; then
		# stop what still runs while dockerd can still tell the runtime
		c=$(dk ps -aq 2>/dev/null)
		# shellcheck disable=SC2086 # one id per word
		[ -z "$c" ] || DM_LIMIT=60 dk rm -f $c >/dev/null 2>&1
		# the runtime's --root is under the exec-root; templates outlive
		# containers
		find "$DM_DIR/exec" -maxdepth 5 -type d -name templates 2>/dev/null |
			while read -r t; do
				"$DM_KILN" --root "${t%/templates}" templates --rm >/dev/null 2>&1
			done
	fi
	dm_stop 30 >&2
}
trap cleanup EXIT
trap 'exit 143' INT TERM HUP

dm_need "$DOCKER" "$DOCKERD" /usr/bin/containerd || exit 1
dm_mkdir bench-docker || exit 1
T=$DM_DIR/t
mkdir -p "$T"
dm_install || exit 1
dm_dockerd >&2 || exit 1
dm_layer_tar "$T/layer.tar" || { fail "cannot build the rootfs tar"; exit 1; }
dk import "$T/layer.tar" "$DM_IMAGE" >/dev/null || { fail "docker import failed"; exit 1; }
rm -f "$T/layer.tar"
echo "$DM_DIR $DM_IMAGE"
# read, not cat: a trapped signal interrupts it
while read -r _; do :; done
exit 0
