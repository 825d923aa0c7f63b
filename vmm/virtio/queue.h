/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Split virtqueues (virtio 1.x section 2.7), device side.
 *
 * The driver gives three guest addresses (descriptor table, available
 * ring, used ring); virtq_enable() checks them once against guest RAM and
 * keeps host pointers, which stay valid because RAM never moves or shrinks.
 * Everything read from the rings is guest-controlled and re-checked on
 * every use: a bad chain makes the queue (and its device) broken, never a
 * crash, a hang or an out-of-bounds access.
 *
 * Rings are little-endian (virtio 1.x); kiln runs on x86_64 only.
 */
#ifndef KILN_VMM_VIRTIO_QUEUE_H
#define KILN_VMM_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../../lib/error.h"
#include "../memory.h"

#define VIRTQ_MAX_SIZE 1024 /* largest QueueNumMax any device offers */
/* most segments in one chain: IOV_MAX, so a chain fits one preadv() */
#define VIRTQ_CHAIN_MAX 1024

#define VIRTQ_UNLIMITED UINT32_MAX /* no batch budget */

#define VIRTQ_DESC_F_NEXT	   1
#define VIRTQ_DESC_F_WRITE	   2
#define VIRTQ_DESC_F_INDIRECT	   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

/* the ring layouts of section 2.7, for tests that build rings by hand */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* [size], then uint16_t used_event */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* [size], then uint16_t avail_event */
};

/* bytes of each part for a queue of size n, and their alignments */
#define VIRTQ_DESC_BYTES(n)  (16ULL * (n))
#define VIRTQ_AVAIL_BYTES(n) (6ULL + 2ULL * (n))
#define VIRTQ_USED_BYTES(n)  (6ULL + 8ULL * (n))
#define VIRTQ_DESC_ALIGN     16
#define VIRTQ_AVAIL_ALIGN    2
#define VIRTQ_USED_ALIGN     4

struct virtio_dev;

struct virtq {
	struct virtio_dev *dev; /* marked broken with the queue; may be NULL */
	unsigned int index;
	uint16_t max_size; /* QueueNumMax */

	/* written by the driver through the transport (guest-controlled) */
	uint16_t size; /* QueueNum, a power of 2 <= max_size */
	bool ready;
	uint64_t desc_addr;
	uint64_t avail_addr;
	uint64_t used_addr;

	/* device side */
	uint16_t last_avail;	 /* next available ring entry to pop */
	uint16_t used_idx;	 /* our used->idx */
	uint16_t signalled_used; /* used_idx when we last decided to signal */
	bool signalled_valid;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool broken;
	/*
	 * Pops left in this batch (VIRTQ_UNLIMITED outside one). A guest can
	 * make a ring refill itself (a used ring or a device-written buffer
	 * over avail->idx), so one batch must not run forever: when the
	 * budget is spent virtq_pop() says "empty" and sets starved, and
	 * whoever runs the batch schedules another one later.
	 */
	uint32_t budget;
	bool starved;

	/* host pointers, valid while ready */
	const struct guest_mem *mem;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
};

/*
 * One descriptor chain, as checked host segments: iov[0, nread) are
 * device-readable, iov[nread, nread + nwrite) device-writable.
 */
struct virtq_chain {
	uint16_t head; /* pass back to virtq_push() */
	unsigned int nread;
	unsigned int nwrite;
	uint32_t read_len;  /* total bytes of the readable part */
	uint32_t write_len; /* total bytes of the writable part */
	struct iovec iov[VIRTQ_CHAIN_MAX];
};

/* The snapshot of one queue. */
struct virtq_state {
	uint64_t desc_addr;
	uint64_t avail_addr;
	uint64_t used_addr;
	uint16_t size;
	uint16_t last_avail;
	uint16_t used_idx;
	uint16_t signalled_used;
	uint8_t ready;
	uint8_t signalled_valid;
	uint8_t event_idx;
	uint8_t indirect;
	uint8_t broken;
	uint8_t pad[3]; /* zero */
};

/* A fresh queue: not ready, size = max_size (power of 2). */
void virtq_init(struct virtq *q, struct virtio_dev *dev, unsigned int index,
		uint16_t max_size);
/* Back to the state of virtq_init (the driver reset the device). */
void virtq_reset(struct virtq *q);

/*
 * QueueReady = 1 (guest-controlled): size a power of 2 <= max_size, each
 * ring aligned and wholly in RAM. -1 with err (queue unchanged) if not.
 */
int virtq_enable(struct virtq *q, const struct guest_mem *mem, bool event_idx,
		 bool indirect, struct kiln_error *err);

/*
 * The next available chain: 1 and *c filled, 0 when the ring is empty
 * (or the batch budget is spent: q->starved), -1 when the queue is (or
 * just became) broken. With EVENT_IDX, an empty
 * ring publishes avail_event so the driver's next buffer notifies us.
 */
int virtq_pop(struct virtq *q, struct virtq_chain *c);

/*
 * Start a batch of at most n pops (VIRTQ_UNLIMITED: none). The transport
 * does this around ops->notify; a device that pops from elsewhere (a
 * backend becoming readable) sets its own budget and reschedules itself
 * when q->starved.
 */
void virtq_set_budget(struct virtq *q, uint32_t n);

/* The driver's avail idx as it is now (guest-controlled: compare it). */
uint16_t virtq_avail_idx(const struct virtq *q);

/*
 * Have the driver notify us at its next new buffer though the ring is not
 * empty: with EVENT_IDX it notifies otherwise only past the avail_event a
 * pop of an empty ring published (without, at every buffer). Returns the
 * avail idx it notifies past; a driver that added a buffer meanwhile may
 * not notify for it (virtq_avail_idx tells).
 */
uint16_t virtq_notify_next(struct virtq *q);

/* Give chain head back with len bytes written into its writable part. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);

/*
 * virtq_push() in two halves, for a reply spread over several chains (a
 * merged rx frame): add each used element, then publish them all with one
 * store of used->idx, so the driver never sees part of the reply.
 */
void virtq_add_used(struct virtq *q, uint16_t head, uint32_t len);
void virtq_publish(struct virtq *q);

/*
 * After one or more pushes: does the driver want an interrupt? Updates
 * the event-idx bookkeeping, so call it once per batch.
 */
bool virtq_should_signal(struct virtq *q);

void virtq_save(const struct virtq *q, struct virtq_state *s);
/*
 * Load an untrusted state: the same checks as the driver's writes and
 * virtq_enable(). q is unchanged when it fails.
 */
int virtq_restore(struct virtq *q, const struct virtq_state *s,
		  const struct guest_mem *mem, struct kiln_error *err);

#endif
