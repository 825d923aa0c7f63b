/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: virtio-net through the virtio-mmio transport, with
 * fuzz-filled guest memory, register accesses, memory pokes, frames from
 * the "TAP" and snapshot round trips. The TAP is faked: this file
 * provides tap_open() & co (tap.c is not linked) over a nonblocking
 * AF_UNIX datagram socketpair per queue, so frames keep their boundaries
 * like a TAP and no privileges are needed. No KVM and no event loop:
 * QueueNotify runs the device at once, and an rx kick reads the fake TAP.
 *
 * Bits 1-2 of the memory length pick 1, 2 or 3 queue pairs: with more
 * than one the device has a control queue, which OP_UP (a driver bring-up
 * with all queues, MQ and CTRL_VQ among the features it may ack) and
 * OP_CTRL (a command chain of fuzzed shape, class, command and payload)
 * reach without the fuzzer having to find the rings' registers itself.
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
	OP_UP,			  /* handshake, every queue's rings placed */
	OP_CTRL,		  /* a control command chain, kicked */
	OP_KINDS,
};

#define PAIRS_MAX 3
#define QSIZE	  8
#define RINGS	  0x8000ULL /* queue q's rings at RINGS + 0x400 * q */
#define CTRLBUF	  0xc000ULL /* the command's buffers */

static uint8_t host[MEM_SIZE] __attribute__((aligned(4096)));
static uint8_t frame[FRAME_MAX];
/* the host's ends of the fake TAP's queues */
static int peers[PAIRS_MAX] = { -1, -1, -1 };
static unsigned int npeers;

/* ---- the fake TAP (replaces tap.c) ---- */

int tap_open(struct tap *t, const char *name, bool multi_queue,
	     struct kiln_error *err)
{
	int sv[2];

	(void)name;
	(void)multi_queue;
	if (npeers == PAIRS_MAX)
		return kiln_error_set(err, EMFILE, "fake TAP: queues");
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv) < 0)
		return kiln_error_set(err, errno, "socketpair");
	t->fd = sv[0];
	peers[npeers++] = sv[1];
	strcpy(t->name, "fuzz0");
	t->offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO;
	return 0;
}

int tap_set_offload(struct tap *t, unsigned int flags, struct kiln_error *err)
{
	(void)t;
	(void)flags;
	(void)err;
	return 0;
}

int tap_set_queue(struct tap *t, bool attach, struct kiln_error *err)
{
	(void)t;
	(void)attach;
	(void)err;
	return 0;
}

void tap_close(struct tap *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	/* the device closes its queues together, at its end */
	for (unsigned int i = 0; i < npeers; i++) {
		if (peers[i] >= 0)
			close(peers[i]);
		peers[i] = -1;
	}
	npeers = 0;
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
	int peer = npeers > 0 ? peers[(value >> 8) % npeers] : -1;
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

	for (unsigned int i = 0; i < npeers; i++)
		while (recv(peers[i], sink, sizeof(sink), MSG_DONTWAIT) >= 0) {
		}
}

/* The driver comes up with features from value, every queue placed. */
static void up(struct vdrv *v, uint64_t value)
{
	/* MRG_RXBUF, MAC, CTRL_VQ, MQ and the offloads, as value says */
	uint32_t lo = (uint32_t)value &
		      ((1u << 15) | (1u << 5) | (1u << 17) | (1u << 22) | 0x3);

	/* as a driver does, only what is offered; bit 41: anything */
	vdrv_wr(v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	if (!(value & (1ULL << 41)))
		lo &= vdrv_rd(v, VIRTIO_MMIO_DEVICE_FEATURES);

	v->clear_gpa = RINGS;
	v->clear_len = 0x400ULL * VDRV_MAX_QUEUES;
	for (unsigned int q = 0; q < 2 * PAIRS_MAX + 1; q++)
		vdrv_queue_at(v, q, RINGS + 0x400ULL * q,
			      RINGS + 0x400ULL * q + 0x100,
			      RINGS + 0x400ULL * q + 0x200, QSIZE);
	vdrv_handshake(v, lo | (uint32_t)(value >> 32 & (1u << 29)), 1,
		       !(value & (1ULL << 40)));
}

/*
 * A command chain on queue op->offset % 7: header (class, command),
 * payload, ack, each descriptor's length and direction from value.
 */
static void ctrl(struct vdrv *v, const struct vdrv_fuzz_op *op)
{
	uint64_t x = op->value;
	unsigned int q = op->offset % (2 * PAIRS_MAX + 1);
	uint8_t *b = vdrv_gp(v, CTRLBUF, 0x100);
	uint16_t flags_hdr = VIRTQ_DESC_F_NEXT, flags_data = VIRTQ_DESC_F_NEXT;
	uint16_t flags_ack = VIRTQ_DESC_F_WRITE;

	if (q >= v->nqueues)
		return;
	b[0] = (uint8_t)x;	      /* class */
	b[1] = (uint8_t)(x >> 8);     /* command */
	b[0x10] = (uint8_t)(x >> 16); /* payload: pairs, le16 */
	b[0x11] = (uint8_t)(x >> 24) & 0x3;
	if (x & (1ULL << 32))
		flags_hdr |= VIRTQ_DESC_F_WRITE;
	if (x & (1ULL << 33))
		flags_data |= VIRTQ_DESC_F_WRITE;
	if (x & (1ULL << 34))
		flags_ack = 0;
	vdrv_set_desc(v, q, 0, CTRLBUF, (uint32_t)(x >> 36 & 3), flags_hdr, 1);
	vdrv_set_desc(v, q, 1, CTRLBUF + 0x10, (uint32_t)(x >> 38 & 7),
		      (x & (1ULL << 35)) ? 0 : flags_data, 2);
	vdrv_set_desc(v, q, 2, CTRLBUF + 0x20, (uint32_t)(x >> 41 & 3),
		      flags_ack, 0);
	vdrv_offer(v, q, 0);
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
	case OP_UP:
		up(v, op->value);
		break;
	case OP_CTRL:
		ctrl(v, op);
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
					 .has_mac = memlen & 1,
					 .queue_pairs = 1 + ((memlen >> 1) &
							     3) % PAIRS_MAX };
	vdrv_mem_static(&v, host, MEM_SIZE);
	if (vdrv_attach(&v, "virtio_net", &err) < 0 || v.state == NULL)
		abort();
	/* struct net_set: unsigned int count, then the device pointers */
	vdrv_use(&v, *(struct virtio_dev **)((char *)v.state + 8));
	vdrv_fuzz_run(&v, data, size, MAX_OPS, OP_KINDS, own_op);
	vdrv_destroy(&v);
	return 0;
}
