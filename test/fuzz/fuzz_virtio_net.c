/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: virtio-net through the virtio-mmio transport, with
 * fuzz-filled guest memory, register accesses, memory pokes, frames from
 * the "TAP" and snapshot round trips. The TAP is faked: this file
 * provides tap_open() & co (tap.c is not linked) over a nonblocking
 * AF_UNIX datagram socketpair, so frames keep their boundaries like a TAP
 * and no privileges are needed. No KVM and no event loop: QueueNotify
 * runs the device at once, and an rx kick reads the fake TAP.
 *
 * Input: uint16_t memory length, that many bytes of guest memory, then
 * struct vdrv_fuzz_op records until the input ends (test/lib/vdriver.h).
 */
#include <errno.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/virtio/tap.h"
#include "../lib/vdriver.h"

#define MEM_SIZE  0x10000ULL
#define MAX_OPS	  512
#define FRAME_MAX 65600 /* a little over what the device accepts */

enum fuzz_kind {
	OP_FRAME = VDRV_FUZZ_OWN, /* a frame arrives on the TAP */
	OP_DRAIN,		  /* the host reads what the guest sent */
	OP_SNAPSHOT,		  /* save, flip one byte, restore */
	OP_KINDS,
};

static uint8_t host[MEM_SIZE] __attribute__((aligned(4096)));
static uint8_t frame[FRAME_MAX];
static int peer = -1; /* the host's end of the fake TAP */

/* ---- the fake TAP (replaces tap.c) ---- */

int tap_open(struct tap *t, const char *name, struct kiln_error *err)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv) < 0)
		return kiln_error_set(err, errno, "socketpair");
	t->fd = sv[0];
	peer = sv[1];
	strcpy(t->name, "fuzz0");
	t->offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO;
	return 0;
}

int tap_set_offload(struct tap *t, unsigned int flags, struct kiln_error *err)
{
	return 0;
}

void tap_close(struct tap *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (peer >= 0)
		close(peer);
	peer = -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_ERROR);
	if (vdrv_find("virtio_net") == NULL)
		abort();
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 7);
	return 0;
}

static void inject(uint64_t value)
{
	/* mostly small frames, sometimes up to and past the limit */
	size_t len = (value & 0x10000) ? (value >> 20) % FRAME_MAX
				       : (value >> 20) % 2048;

	memcpy(frame, &value, 8);
	if (send(peer, frame, len, MSG_DONTWAIT) < 0) {
		/* full: the kernel would drop it on the TAP too */
	}
}

static void drain(void)
{
	static uint8_t sink[FRAME_MAX];

	while (recv(peer, sink, sizeof(sink), MSG_DONTWAIT) >= 0) {
	}
}

static void own_op(struct vdrv *v, unsigned int kind,
		   const struct vdrv_fuzz_op *op)
{
	switch (kind) {
	case OP_FRAME:
		inject(op->value);
		break;
	case OP_DRAIN:
		drain();
		break;
	case OP_SNAPSHOT:
		vdrv_snapshot_flip(v->dev, op->value,
				   (uint8_t)(op->value >> 32));
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_error err = { 0 };
	struct vdrv v;
	int memlen = vdrv_fuzz_load(host, sizeof(host), &data, &size);

	if (memlen < 0)
		return 0;
	vdrv_init(&v);
	v.cfg.nnets = 1;
	v.cfg.nets[0] = (struct vm_net){ .id = "eth0",
					 .tap = "fuzz0",
					 .mac = { 2, 0, 0, 0, 0, 1 },
					 .has_mac = memlen & 1 };
	vdrv_mem_static(&v, host, MEM_SIZE);
	if (vdrv_attach(&v, "virtio_net", &err) < 0 || v.state == NULL)
		abort();
	/* struct net_set: unsigned int count, then the device pointers */
	vdrv_use(&v, *(struct virtio_dev **)((char *)v.state + 8));
	vdrv_fuzz_run(&v, data, size, MAX_OPS, OP_KINDS, own_op);
	vdrv_destroy(&v);
	return 0;
}
