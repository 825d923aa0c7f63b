/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: virtio-vsock behind the virtio-mmio transport, with a
 * real event loop pumped on this thread and real Unix sockets in a temp
 * dir (the device's uds, and a host listener at <uds>_6000). The harness
 * brings the driver up (three queues at fixed addresses); the input then
 * drives guest tx packets (header fields, payload, descriptor splits), rx
 * buffers, raw guest memory pokes, register writes, host clients (CONNECT
 * lines, data, half and full closes), loop turns and snapshot round trips.
 *
 * Input: struct fuzz_op records until the input ends.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/virtio/vsock_priv.h"
#include "../lib/vdriver.h"

#define MEM_SIZE 0x80000ULL
#define QSIZE	 16
#define QBASE(q) (0x4000ULL * (q))
#define TXBUF	 0x10000ULL
#define RXBUF(i) (0x30000ULL + 0x1100ULL * (i))
#define MAX_OPS	 256
#define MAX_HOST 8

enum fuzz_kind {
	OP_TX,	     /* a guest packet on the tx queue */
	OP_RX,	     /* an rx buffer */
	OP_POKE,     /* 8 bytes of guest memory */
	OP_REG,	     /* a register write */
	OP_HOST,     /* a host client action */
	OP_PUMP,     /* event loop turns */
	OP_SNAPSHOT, /* save, flip a byte, restore */
	OP_REINIT,   /* reset and bring the driver up again */
	OP_KINDS,
};

struct fuzz_op {
	uint8_t kind;
	uint8_t a;
	uint16_t b;
	uint32_t c;
	uint64_t d;
} __attribute__((packed));

static uint8_t host[MEM_SIZE] __attribute__((aligned(4096)));
static char uds[108], uds6000[116];
static int listen6000 = -1;

static char dir[64];

static void cleanup(void)
{
	unlink(uds6000);
	unlink(uds);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	log_set_level(LOG_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/fuzz-vsock.%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(uds, sizeof(uds), "%s/v", dir);
	snprintf(uds6000, sizeof(uds6000), "%s_6000", uds);
	unlink(uds6000);
	listen6000 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	strcpy(sa.sun_path, uds6000);
	if (vdrv_find("virtio_vsock") == NULL ||
	    bind(listen6000, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(listen6000, 64) < 0)
		abort();
	atexit(cleanup);
	return 0;
}

struct fz {
	struct vdrv v;
	int fds[MAX_HOST];
};

static void driver_up(struct fz *f, uint32_t features)
{
	vdrv_handshake(&f->v, features & 0x30000000, 1, true);
}

/* One turn of the loop: stop is queued first, so run ends after a batch. */
static void pump(struct fz *f)
{
	struct kiln_error err;

	for (int i = 0; i < 3; i++) {
		f->v.vm.loop.stopping = false;
		evloop_stop(&f->v.vm.loop);
		evloop_run(&f->v.vm.loop, &err);
	}
	f->v.vm.loop.stopping = false;
}

static const uint32_t ports[8] = { 6000, 5000, 1U << 30,   (1U << 30) + 1,
				   6001, 0,    UINT32_MAX, 1024 };

static void op_tx(struct fz *f, const struct fuzz_op *op)
{
	struct vsock_hdr h = {
		.src_cid = (op->a & 0x80) ? op->d : 3,
		.dst_cid = (op->a & 0x40) ? op->d >> 8 : 2,
		.src_port = op->b % 4,
		.dst_port = ports[(op->b >> 2) % 8],
		.len = (op->b & 0x8000) ? (uint32_t)op->d : (op->c & 0x1fff),
		.type = (op->a & 0x20) ? (uint16_t)(op->d >> 16) : 1,
		.op = op->a % 9,
		.flags = (op->c >> 13) & 7,
		.buf_alloc = (op->b & 0x4000) ? (uint32_t)(op->d >> 32)
					      : 0x40000,
		.fwd_cnt = (op->b & 0x2000) ? (uint32_t)op->d : 0,
	};
	uint32_t total = VSOCK_HDR_SIZE + (op->c & 0x1fff);
	uint32_t split = (op->c >> 16) % (total + 1);
	uint16_t head = f->v.q[1].next_avail % QSIZE;

	memcpy(host + TXBUF, &h, sizeof(h));
	memset(host + TXBUF + sizeof(h), op->a, op->c & 0x1fff);
	if (op->b & 0x1000) {
		/* a wrong-length chain: short header, or longer than data */
		total = (op->c >> 16) & 0xffff;
	}
	if (split > 0 && split < total) {
		vdrv_set_desc(&f->v, 1, head, TXBUF, split, VIRTQ_DESC_F_NEXT,
			      (head + 1) % QSIZE);
		vdrv_set_desc(&f->v, 1, head + 1, TXBUF + split, total - split,
			      0, 0);
	} else {
		vdrv_set_desc(&f->v, 1, head, TXBUF, total, 0, 0);
	}
	vdrv_offer(&f->v, 1, head);
}

static void op_rx(struct fz *f, const struct fuzz_op *op)
{
	for (unsigned int i = 0; i <= (op->a & 7); i++) {
		uint16_t slot = f->v.q[0].next_avail % QSIZE;
		uint32_t len = (op->b & 0x8000) ? op->c % 0x1100 : 0x1100;

		vdrv_set_desc(&f->v, 0, slot, RXBUF(slot), len,
			      VIRTQ_DESC_F_WRITE, 0);
		vdrv_offer(&f->v, 0, slot);
	}
}

static void op_host(struct fz *f, const struct fuzz_op *op)
{
	int *fd = &f->fds[op->b % MAX_HOST];
	char line[64];
	int n;

	switch (op->a % 8) {
	case 0: { /* a client: CONNECT port */
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		if (*fd >= 0)
			close(*fd);
		*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		strcpy(sa.sun_path, uds);
		connect(*fd, (struct sockaddr *)&sa, sizeof(sa));
		n = (op->c & 1) ? snprintf(line, sizeof(line), "CONNECT %u\n",
					   ports[(op->c >> 1) % 8])
				: snprintf(line, sizeof(line), "%.8s\n",
					   (const char *)&op->d);
		send(*fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
		break;
	}
	case 1: /* accept a guest connection to <uds>_6000 */
		if (*fd >= 0)
			close(*fd);
		*fd = accept4(listen6000, NULL, NULL, SOCK_NONBLOCK);
		break;
	case 2: { /* write */
		static uint8_t buf[65536];

		memset(buf, (int)op->d, sizeof(buf));
		if (*fd >= 0)
			send(*fd, buf, op->c % sizeof(buf),
			     MSG_NOSIGNAL | MSG_DONTWAIT);
		break;
	}
	case 3: { /* read */
		static uint8_t buf[65536];

		if (*fd >= 0)
			recv(*fd, buf, op->c % sizeof(buf), MSG_DONTWAIT);
		break;
	}
	case 4:
		if (*fd >= 0)
			shutdown(*fd, SHUT_WR);
		break;
	default:
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_error err = { 0 };
	struct fz *f = calloc(1, sizeof(*f));
	struct vdrv *v = &f->v;
	unsigned int n = 0;

	memset(host, 0, sizeof(host));
	for (int i = 0; i < MAX_HOST; i++)
		f->fds[i] = -1;
	vdrv_init(v);
	v->cfg.vsock = (struct vm_vsock){ true, 3, uds };
	vdrv_mem_static(v, host, MEM_SIZE);
	for (int q = 0; q < 3; q++)
		vdrv_queue_at(v, q, QBASE(q), QBASE(q) + 0x1000,
			      QBASE(q) + 0x2000, QSIZE);
	v->clear_gpa = 0;
	v->clear_len = 0xc000;
	if (evloop_init(&v->vm.loop, &err) < 0 ||
	    vdrv_attach(v, "virtio_vsock", &err) < 0 || v->state == NULL)
		abort();
	vdrv_use(v, v->state);
	driver_up(f, 0x30000000);

	while (size >= sizeof(struct fuzz_op) && n++ < MAX_OPS) {
		struct fuzz_op op;

		memcpy(&op, data, sizeof(op));
		data += sizeof(op);
		size -= sizeof(op);
		switch (op.kind % OP_KINDS) {
		case OP_TX:
			op_tx(f, &op);
			break;
		case OP_RX:
			op_rx(f, &op);
			break;
		case OP_POKE:
			memcpy(host + (op.c % (MEM_SIZE / 8)) * 8, &op.d, 8);
			break;
		case OP_REG:
			vdrv_wr(v, op.b & 0xff, (uint32_t)op.d);
			break;
		case OP_HOST:
			op_host(f, &op);
			break;
		case OP_PUMP:
			break;
		case OP_SNAPSHOT:
			/* odd values flip a byte, even ones round-trip */
			vdrv_snapshot_flip(v->dev, op.d >> 8,
					   (op.d & 1) ? (uint8_t)(op.d >> 32)
						      : 0);
			break;
		case OP_REINIT:
			driver_up(f, (uint32_t)op.d);
			break;
		}
		pump(f);
	}
	for (int i = 0; i < MAX_HOST; i++)
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	/* guest connections the harness never accepted */
	for (int fd; (fd = accept4(listen6000, NULL, NULL, 0)) >= 0;)
		close(fd);
	vdrv_destroy(v);
	free(f);
	return 0;
}
