/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Split virtqueue, device side. Firecracker's queue.rs is the model for the
 * checks (a ttl against cycles, indexes against the size, an avail index
 * that runs too far ahead); kvmtool's virt_queue__get_head_iov, which has
 * none, is not.
 *
 * Memory ordering. The driver runs on other CPUs and shares the rings
 * with us, so every ring field is read or written exactly once with an
 * __atomic access (descriptors are copied once, see virtq_read_desc), and:
 *  - pop: avail->idx is loaded with acquire, so the ring entry and the
 *    descriptors it names are read after it (the driver's wmb before its
 *    idx store pairs with this; kvmtool's rmb() in virt_queue__pop);
 *  - push: the used element and the buffer data are written before
 *    used->idx, which is stored with release (pairs with the driver's rmb
 *    after reading used->idx);
 *  - notification decisions: a full fence sits between our store (used
 *    idx, avail_event) and our load of the driver's field (used_event,
 *    avail->idx, avail flags). Both sides store then load; without the
 *    fence each could miss the other's store and the queue would stall.
 */
#include "queue.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "virtio.h"

void virtq_init(struct virtq *q, struct virtio_dev *dev, unsigned int index,
		uint16_t max_size)
{
	memset(q, 0, sizeof(*q));
	q->dev = dev;
	q->index = index;
	q->max_size = max_size;
	q->size = max_size;
	q->budget = VIRTQ_UNLIMITED;
}

void virtq_set_budget(struct virtq *q, uint32_t n)
{
	q->budget = n;
	q->starved = false;
}

void virtq_reset(struct virtq *q)
{
	virtq_init(q, q->dev, q->index, q->max_size);
}

/* The queue and its device stop until reset; -1 for the caller to return. */
static int __attribute__((format(printf, 2, 3)))
virtq_fail(struct virtq *q, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	q->broken = true;
	if (q->dev != NULL)
		virtio_dev_set_broken(q->dev, "queue %u: %s", q->index, why);
	else if (log_ratelimit())
		log_warn("virtqueue %u broken: %s", q->index, why);
	return -1;
}

/* Check ring placement for a queue of q->size entries; host pointers out. */
static int virtq_map(struct virtq *q, const struct guest_mem *mem,
		     struct kiln_error *err)
{
	uint16_t n = q->size;
	void *desc, *avail, *used;

	if (n == 0 || n > q->max_size || !util_is_pow2(n))
		return kiln_error_set(err, EINVAL,
				      "queue size %u: not a power of 2 in "
				      "1..%u",
				      n, q->max_size);
	if (q->desc_addr % VIRTQ_DESC_ALIGN ||
	    q->avail_addr % VIRTQ_AVAIL_ALIGN ||
	    q->used_addr % VIRTQ_USED_ALIGN)
		return kiln_error_set(err, EINVAL,
				      "misaligned rings: desc 0x%llx avail "
				      "0x%llx used 0x%llx",
				      (unsigned long long)q->desc_addr,
				      (unsigned long long)q->avail_addr,
				      (unsigned long long)q->used_addr);
	/* guest-controlled: all three come from queue registers */
	desc = guest_mem_ptr(mem, q->desc_addr, VIRTQ_DESC_BYTES(n));
	avail = guest_mem_ptr(mem, q->avail_addr, VIRTQ_AVAIL_BYTES(n));
	used = guest_mem_ptr(mem, q->used_addr, VIRTQ_USED_BYTES(n));
	if (desc == NULL || avail == NULL || used == NULL)
		return kiln_error_set(err, EFAULT,
				      "rings outside RAM: desc 0x%llx avail "
				      "0x%llx used 0x%llx (size %u)",
				      (unsigned long long)q->desc_addr,
				      (unsigned long long)q->avail_addr,
				      (unsigned long long)q->used_addr, n);
	q->mem = mem;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	return 0;
}

int virtq_enable(struct virtq *q, const struct guest_mem *mem, bool event_idx,
		 bool indirect, struct kiln_error *err)
{
	struct virtq t = *q;

	if (virtq_map(&t, mem, err) < 0)
		return -1;
	t.ready = true;
	t.broken = false;
	t.event_idx = event_idx;
	t.indirect = indirect;
	t.last_avail = 0;
	t.used_idx = 0;
	t.signalled_valid = false;
	t.budget = VIRTQ_UNLIMITED;
	t.starved = false;
	*q = t;
	return 0;
}

static uint16_t *virtq_used_event(struct virtq *q)
{
	return &q->avail->ring[q->size];
}

static uint16_t *virtq_avail_event(struct virtq *q)
{
	return (uint16_t *)&q->used->ring[q->size];
}

uint16_t virtq_avail_idx(const struct virtq *q)
{
	return q->ready ? __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE) : 0;
}

uint16_t virtq_notify_next(struct virtq *q)
{
	uint16_t idx = virtq_avail_idx(q);

	if (!q->event_idx || !q->ready)
		return idx;
	__atomic_store_n(virtq_avail_event(q), idx, __ATOMIC_RELAXED);
	guest_mem_mark_dirty(q->mem, virtq_avail_event(q), 2);
	/* as in virtq_next_head: the caller looks at the idx again */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return idx;
}

/*
 * Copy a descriptor out of guest memory once. The compiler barrier makes
 * the copy the only read: without it the compiler could read the guest's
 * memory again where d is used, after we checked it (a double fetch).
 * memcpy because an indirect table has no alignment guarantee.
 */
static void virtq_read_desc(const struct virtq_desc *p, struct virtq_desc *d)
{
	memcpy(d, p, sizeof(*d));
	__asm__ volatile("" ::: "memory");
}

/*
 * The head of the next available chain: 1 and *head, 0 when the ring is
 * empty or the batch budget is spent, -1 when the queue broke.
 */
static int virtq_next_head(struct virtq *q, uint16_t *head)
{
	uint16_t avail_idx;

	if (q->broken || (q->dev != NULL && q->dev->broken))
		return -1;
	if (!q->ready)
		return 0;

	/* acquire: ring entries and descriptors are read after the index */
	avail_idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
	if (avail_idx == q->last_avail) {
		if (!q->event_idx)
			return 0;
		/*
		 * Ask for a notification at the next buffer, then look again:
		 * the driver may have added one after our load and before it
		 * could see our avail_event.
		 */
		__atomic_store_n(virtq_avail_event(q), q->last_avail,
				 __ATOMIC_RELAXED);
		guest_mem_mark_dirty(q->mem, virtq_avail_event(q), 2);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
		if (avail_idx == q->last_avail)
			return 0;
	}
	/* guest-controlled: at most size buffers can be outstanding */
	if ((uint16_t)(avail_idx - q->last_avail) > q->size)
		return virtq_fail(q, "avail index %u runs %u ahead of %u",
				  avail_idx,
				  (uint16_t)(avail_idx - q->last_avail),
				  q->last_avail);

	if (q->budget == 0) {
		q->starved = true;
		return 0;
	}

	*head = __atomic_load_n(&q->avail->ring[q->last_avail % q->size],
				__ATOMIC_RELAXED);
	/* guest-controlled: head, every descriptor and indirect table */
	if (*head >= q->size)
		return virtq_fail(q, "head %u >= size %u", *head, q->size);
	return 1;
}

/* Append the buffer of descriptor d to c. 0, or -1 (queue broken). */
static int virtq_chain_add(struct virtq *q, struct virtq_chain *c,
			   const struct virtq_desc *d)
{
	uint32_t *total;
	void *p;

	if (c->nread + c->nwrite == VIRTQ_CHAIN_MAX)
		return virtq_fail(q, "chain longer than %u segments",
				  VIRTQ_CHAIN_MAX);
	p = guest_mem_ptr(q->mem, d->addr, d->len);
	if (p == NULL)
		return virtq_fail(q, "buffer 0x%llx+%u outside RAM",
				  (unsigned long long)d->addr, d->len);
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		/* the device may write it: a diff snapshot must take it */
		guest_mem_mark_dirty(q->mem, p, d->len);
		total = &c->write_len;
		c->nwrite++;
	} else {
		if (c->nwrite > 0)
			return virtq_fail(q, "readable after writable");
		total = &c->read_len;
		c->nread++;
	}
	if (__builtin_add_overflow(*total, d->len, total))
		return virtq_fail(q, "chain length overflows");
	c->iov[c->nread + c->nwrite - 1] =
		(struct iovec){ .iov_base = p, .iov_len = d->len };
	return 0;
}

static int virtq_walk(struct virtq *q, struct virtq_chain *c,
		      const struct virtq_desc *table, uint32_t table_size,
		      uint16_t head, bool in_indirect);

/*
 * Descriptor d names an indirect table: its chain, from entry 0, ends
 * the chain (d has no NEXT). Tables do not nest.
 */
static int virtq_walk_indirect(struct virtq *q, struct virtq_chain *c,
			       const struct virtq_desc *d, uint16_t head,
			       bool in_indirect)
{
	void *p;

	if (!q->indirect)
		return virtq_fail(q, "indirect not negotiated");
	if (in_indirect)
		return virtq_fail(q, "nested indirect table");
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return virtq_fail(q, "indirect with NEXT");
	if (d->len == 0 || d->len % sizeof(struct virtq_desc) ||
	    d->len / sizeof(struct virtq_desc) > VIRTQ_CHAIN_MAX)
		return virtq_fail(q, "indirect table of %u bytes", d->len);
	p = guest_mem_ptr(q->mem, d->addr, d->len);
	if (p == NULL)
		return virtq_fail(q, "indirect table 0x%llx+%u not RAM",
				  (unsigned long long)d->addr, d->len);
	return virtq_walk(q, c, p, d->len / sizeof(struct virtq_desc), head,
			  true);
}

/*
 * Follow a chain through table (the ring's descriptor table from head, or
 * an indirect table from 0) into c. 0, or -1 (queue broken).
 */
static int virtq_walk(struct virtq *q, struct virtq_chain *c,
		      const struct virtq_desc *table, uint32_t table_size,
		      uint16_t head, bool in_indirect)
{
	/* each table is walked at most once per entry: no cycle survives */
	uint32_t ttl = table_size;
	uint16_t i = in_indirect ? 0 : head;

	for (;;) {
		struct virtq_desc d;

		if (ttl-- == 0)
			return virtq_fail(q, "chain from head %u loops", head);
		virtq_read_desc(&table[i], &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return virtq_walk_indirect(q, c, &d, head, in_indirect);
		if (virtq_chain_add(q, c, &d) < 0)
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= table_size)
			return virtq_fail(q, "next %u >= table size %u", d.next,
					  table_size);
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	uint16_t head = 0;
	int ret = virtq_next_head(q, &head);

	if (ret <= 0)
		return ret;
	memset(c, 0, offsetof(struct virtq_chain, iov));
	c->head = head;
	if (virtq_walk(q, c, q->desc, q->size, head, false) < 0)
		return -1;
	q->last_avail++;
	if (q->budget != VIRTQ_UNLIMITED)
		q->budget--;
	return 1;
}

void virtq_add_used(struct virtq *q, uint16_t head, uint32_t len)
{
	struct virtq_used_elem *e;

	if (!q->ready || q->broken)
		return;
	e = &q->used->ring[q->used_idx % q->size];
	__atomic_store_n(&e->id, (uint32_t)head, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
	guest_mem_mark_dirty(q->mem, e, sizeof(*e));
	q->used_idx++;
}

void virtq_publish(struct virtq *q)
{
	if (!q->ready || q->broken)
		return;
	/* release: the elements and the buffer contents before the index */
	__atomic_store_n(&q->used->idx, q->used_idx, __ATOMIC_RELEASE);
	guest_mem_mark_dirty(q->mem, &q->used->idx, sizeof(q->used->idx));
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	virtq_add_used(q, head, len);
	virtq_publish(q);
}

bool virtq_should_signal(struct virtq *q)
{
	uint16_t old = q->signalled_used, now = q->used_idx, event;
	bool valid = q->signalled_valid;

	if (!q->ready || q->broken)
		return false;
	/* our used->idx store before the driver's used_event or flags */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(__atomic_load_n(&q->avail->flags, __ATOMIC_RELAXED) &
			 VIRTQ_AVAIL_F_NO_INTERRUPT);
	q->signalled_used = now;
	q->signalled_valid = true;
	if (!valid)
		return true;
	/* guest-controlled: any used_event value is a valid request */
	event = __atomic_load_n(virtq_used_event(q), __ATOMIC_RELAXED);
	/* vring_need_event(): did used idx cross event since we last looked? */
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

void virtq_save(const struct virtq *q, struct virtq_state *s)
{
	memset(s, 0, sizeof(*s));
	s->desc_addr = q->desc_addr;
	s->avail_addr = q->avail_addr;
	s->used_addr = q->used_addr;
	s->size = q->size;
	s->last_avail = q->last_avail;
	s->used_idx = q->used_idx;
	s->signalled_used = q->signalled_used;
	s->ready = q->ready;
	s->signalled_valid = q->signalled_valid;
	s->event_idx = q->event_idx;
	s->indirect = q->indirect;
	s->broken = q->broken;
}

int virtq_restore(struct virtq *q, const struct virtq_state *s,
		  const struct guest_mem *mem, struct kiln_error *err)
{
	struct virtq t;

	/* guest- and file-controlled: a snapshot is untrusted input */
	for (size_t i = 0; i < sizeof(s->pad); i++)
		if (s->pad[i] != 0)
			return kiln_error_set(err, EINVAL,
					      "queue %u: padding not zero",
					      q->index);
	if (s->ready > 1 || s->signalled_valid > 1 || s->event_idx > 1 ||
	    s->indirect > 1 || s->broken > 1)
		return kiln_error_set(err, EINVAL, "queue %u: bad flag",
				      q->index);
	if (s->size == 0 || s->size > q->max_size || !util_is_pow2(s->size))
		return kiln_error_set(err, EINVAL,
				      "queue %u: size %u not a power of 2 in "
				      "1..%u",
				      q->index, s->size, q->max_size);
	virtq_init(&t, q->dev, q->index, q->max_size);
	t.size = s->size;
	t.desc_addr = s->desc_addr;
	t.avail_addr = s->avail_addr;
	t.used_addr = s->used_addr;
	if (s->ready &&
	    virtq_enable(&t, mem, s->event_idx, s->indirect, err) < 0)
		return kiln_error_wrap(err, "queue %u", q->index);
	if (!s->ready &&
	    (s->last_avail || s->used_idx || s->signalled_used ||
	     s->signalled_valid || s->event_idx || s->indirect || s->broken))
		return kiln_error_set(err, EINVAL,
				      "queue %u: state of a queue not ready",
				      q->index);
	t.last_avail = s->last_avail;
	t.used_idx = s->used_idx;
	t.signalled_used = s->signalled_used;
	t.signalled_valid = s->signalled_valid;
	t.broken = s->broken;
	*q = t;
	return 0;
}
