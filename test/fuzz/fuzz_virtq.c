/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the split virtqueue walk (crosvm's virtqueue_fuzzer).
 * The input sets the queue registers and fills a small guest memory of
 * two regions with a hole between them; the device then pops and pushes
 * until the ring is empty or broken. Every segment handed out must lie in
 * guest memory (ASan checks the touches) and the loop must end.
 *
 * Input: struct fuzz_hdr, then guest memory contents.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/log.h"
#include "../../vmm/virtio/virtio.h"

#define REGION	 0x8000ULL
#define HIGH_GPA 0x100000ULL /* region 1: a hole below it */

struct fuzz_hdr {
	uint8_t size_log2;   /* queue size 1 << (n % 9): 1..256 */
	uint8_t flags;	     /* 1 event idx, 2 indirect, 4 no device */
	uint16_t last_avail; /* as if the queue had run for a while */
	uint16_t used_idx;
	uint16_t used_event_seed;
	uint32_t desc; /* guest addresses, used as given */
	uint32_t avail;
	uint32_t used;
};

static uint8_t host[2 * REGION] __attribute__((aligned(4096)));
static struct guest_mem mem;
static struct virtio_dev dev;
static struct virtq_chain chain;

static void fuzz_notify(struct virtio_dev *d, unsigned int queue)
{
}

static void fuzz_interrupt(struct virtio_dev *d, uint32_t bits)
{
}

static const struct virtio_ops fuzz_ops = {
	.name = "fuzz",
	.device_id = 99,
	.num_queues = 1,
	.queue_max_size = 256,
	.notify = fuzz_notify,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct kiln_error err = { 0 };

	log_set_level(LOG_ERROR);
	mem.host = host;
	mem.size = sizeof(host);
	mem.fd = -1;
	mem.nregions = 2;
	mem.regions[0] = (struct guest_region){ 0, REGION, 0 };
	mem.regions[1] = (struct guest_region){ HIGH_GPA, REGION, REGION };
	if (virtio_dev_init(&dev, &fuzz_ops, NULL, &mem, &err) < 0)
		abort();
	dev.interrupt = fuzz_interrupt;
	return 0;
}

static bool in_guest(const void *p, size_t len)
{
	const uint8_t *b = p;

	return b >= host && len <= sizeof(host) &&
	       (size_t)(b - host) <= sizeof(host) - len;
}

/* Touch every segment like a device would; check what we were given. */
static uint32_t use_chain(const struct virtq_chain *c)
{
	uint64_t rlen = 0, wlen = 0;
	uint8_t sum = 0;

	if (c->nread + c->nwrite > VIRTQ_CHAIN_MAX)
		abort();
	for (unsigned int i = 0; i < c->nread + c->nwrite; i++) {
		const struct iovec *v = &c->iov[i];

		if (!in_guest(v->iov_base, v->iov_len))
			abort();
		if (i < c->nread) {
			for (size_t k = 0; k < v->iov_len; k++)
				sum += ((const uint8_t *)v->iov_base)[k];
			rlen += v->iov_len;
		} else {
			/* a hostile guest's rings may live under buffers */
			memset(v->iov_base, sum, v->iov_len);
			wlen += v->iov_len;
		}
	}
	if (rlen != c->read_len || wlen != c->write_len)
		abort();
	return c->write_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_hdr h;
	struct kiln_error err = { 0 };
	struct virtq *q;
	struct virtq solo;
	uint16_t qsize;
	int rounds = 0;

	if (size < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);
	memset(host, 0, sizeof(host));
	memcpy(host, data, size < sizeof(host) ? size : sizeof(host));

	qsize = (uint16_t)(1u << (h.size_log2 % 9));
	if (h.flags & 4) {
		virtq_init(&solo, NULL, 0, 256);
		q = &solo;
	} else {
		virtio_dev_reset(&dev);
		dev.status =
			VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
		q = &dev.queues[0];
	}
	q->size = qsize;
	q->desc_addr = h.desc;
	q->avail_addr = h.avail;
	q->used_addr = h.used;
	if (virtq_enable(q, &mem, h.flags & 1, h.flags & 2, &err) < 0)
		return 0;
	q->last_avail = h.last_avail;
	q->used_idx = h.used_idx;
	q->signalled_used = h.used_event_seed;
	q->signalled_valid = h.flags & 8;

	/*
	 * One batch, as the transport runs it. Buffers written below (and
	 * the used ring) may lie over the avail ring and refill it: the
	 * budget must still end the batch after qsize chains.
	 */
	virtq_set_budget(q, qsize);
	for (;;) {
		int r = virtq_pop(q, &chain);

		if (r < 0) {
			if (!q->broken)
				abort();
			break;
		}
		if (r == 0)
			break;
		if (++rounds > qsize)
			abort();
		if (chain.head >= qsize)
			abort();
		virtq_push(q, chain.head, use_chain(&chain));
		if (rounds % 3 == 0)
			virtq_should_signal(q);
	}
	virtq_should_signal(q);
	if (q->broken && q->dev != NULL &&
	    !(q->dev->status & VIRTIO_CONFIG_S_NEEDS_RESET))
		abort();
	return 0;
}
