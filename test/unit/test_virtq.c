/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Split virtqueues (vmm/virtio/queue.c) with rings built by hand in guest
 * memory: simple, multi-descriptor and indirect chains, 16-bit index
 * wrap-around, event-idx suppression, and every hostile chain marking the
 * device broken instead of crashing.
 *
 * Build: cc -std=gnu11 -D_GNU_SOURCE test/unit/test_virtq.c vmm/virtio/{virtio,queue,mmio,rng}.c
 *        vmm/memory.c vmm/trap.c vmm/evloop.c lib/error.c lib/log.c -lpthread
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/log.h"
#include "../../vmm/layout.h"
#include "../../vmm/virtio/virtio.h"
#include "../../vmm/vm.h"
#include "tap.h"

/*
 * vm.c needs KVM; mmio.c and rng.c (linked with every virtio file) call
 * these. Weak, so that a build linking vm.c uses the real ones.
 */
__attribute__((weak)) int vm_irqfd(struct vm *vm, unsigned int gsi,
				   struct kiln_error *err)
{
	return kiln_error_set(err, ENOSYS, "no KVM in unit tests");
}

__attribute__((weak)) int
vm_cmdline_append(struct vm *vm, struct kiln_error *err, const char *fmt, ...)
{
	return 0;
}

#define MEM_SIZE (16ULL << 20)
#define DESC	 0x1000ULL
#define AVAIL	 0x2000ULL
#define USED	 0x3000ULL
#define ITABLE	 0x8000ULL   /* indirect tables */
#define BUF	 0x100000ULL /* data buffers */
#define QSIZE	 16

static struct guest_mem mem;
static unsigned int irq_vring, irq_config;
static struct virtq_chain chain;

static void noop_notify(struct virtio_dev *d, unsigned int queue)
{
}

static const struct virtio_ops test_ops = {
	.name = "test",
	.device_id = 99,
	.num_queues = 1,
	.queue_max_size = 256,
	.notify = noop_notify,
};

static void count_interrupt(struct virtio_dev *d, uint32_t bits)
{
	if (bits & VIRTIO_ISR_VRING)
		irq_vring++;
	if (bits & VIRTIO_ISR_CONFIG)
		irq_config++;
}

static void *gp(uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&mem, gpa, len);
}

static struct virtq_desc *desc_at(uint64_t table, unsigned int i)
{
	return gp(table + 16ULL * i, 16);
}

static void set_desc(uint64_t table, unsigned int i, uint64_t addr,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	*desc_at(table, i) = (struct virtq_desc){ addr, len, flags, next };
}

static struct virtq_avail *avail(void)
{
	return gp(AVAIL, 6 + 2 * 256);
}

static struct virtq_used *used(void)
{
	return gp(USED, 6 + 8 * 256);
}

/* The driver makes head available in a queue of size n. */
static void offer(uint16_t n, uint16_t head)
{
	struct virtq_avail *a = avail();

	a->ring[a->idx % n] = head;
	a->idx++;
}

/*
 * A device through the whole handshake, its queue 0 of size n ready;
 * features: VERSION_1 plus the given ring features.
 */
static void setup(struct virtio_dev *d, uint16_t n, uint64_t ring_features)
{
	struct kiln_error err = { 0 };
	uint64_t f = VIRTIO_BIT(VIRTIO_F_VERSION_1) | ring_features;

	memset(mem.host, 0, 0x200000);
	irq_vring = irq_config = 0;
	if (virtio_dev_init(d, &test_ops, NULL, &mem, &err) < 0)
		abort();
	d->interrupt = count_interrupt;
	virtio_dev_write_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	virtio_dev_write_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE |
					   VIRTIO_CONFIG_S_DRIVER);
	virtio_dev_write_features(d, 0, (uint32_t)f);
	virtio_dev_write_features(d, 1, (uint32_t)(f >> 32));
	virtio_dev_write_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE |
					   VIRTIO_CONFIG_S_DRIVER |
					   VIRTIO_CONFIG_S_FEATURES_OK);
	d->queues[0].size = n;
	d->queues[0].desc_addr = DESC;
	d->queues[0].avail_addr = AVAIL;
	d->queues[0].used_addr = USED;
	if (virtio_dev_queue_enable(d, 0, &err) < 0) {
		printf("# setup: %s\n", err.msg);
		abort();
	}
	virtio_dev_write_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE |
					   VIRTIO_CONFIG_S_DRIVER |
					   VIRTIO_CONFIG_S_FEATURES_OK |
					   VIRTIO_CONFIG_S_DRIVER_OK);
}

static bool is_broken(const struct virtio_dev *d)
{
	return d->broken && (d->status & VIRTIO_CONFIG_S_NEEDS_RESET) &&
	       irq_config == 1;
}

static void test_simple(void)
{
	struct virtio_dev d;
	struct virtq *q = &d.queues[0];

	setup(&d, QSIZE, 0);
	ok(virtio_dev_running(&d), "simple: handshake: device running");
	is_int(virtq_pop(q, &chain), 0, "simple: empty ring pops nothing");
	set_desc(DESC, 3, BUF, 100, 0, 0);
	offer(QSIZE, 3);
	is_int(virtq_pop(q, &chain), 1, "simple: one chain");
	ok(chain.head == 3 && chain.nread == 1 && chain.nwrite == 0 &&
		   chain.read_len == 100 && chain.write_len == 0,
	   "simple: one readable segment of 100 bytes");
	ok(chain.iov[0].iov_base == gp(BUF, 100) && chain.iov[0].iov_len == 100,
	   "simple: segment is the checked host address");
	is_int(virtq_pop(q, &chain), 0, "simple: then empty");
	virtq_push(q, 3, 0);
	is_int(used()->idx, 1, "simple: used idx published");
	is_int(used()->ring[0].id, 3, "simple: used element id");
	is_int(used()->ring[0].len, 0, "simple: used element len");
	virtio_dev_used(&d, q);
	is_int(irq_vring, 1, "simple: used buffer interrupt");
	avail()->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	set_desc(DESC, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(QSIZE, 0);
	is_int(virtq_pop(q, &chain), 1, "simple: second chain");
	virtq_push(q, 0, 8);
	virtio_dev_used(&d, q);
	is_int(irq_vring, 1, "simple: NO_INTERRUPT suppresses it");
	ok(!d.broken, "simple: device not broken");
	virtio_dev_destroy(&d);
}

static void test_multi(void)
{
	struct virtio_dev d;
	struct virtq *q = &d.queues[0];

	setup(&d, QSIZE, 0);
	/* out of order in the table: 5 -> 2 -> 9 -> 1 */
	set_desc(DESC, 5, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(DESC, 2, BUF + 0x1000, 512, VIRTQ_DESC_F_NEXT, 9);
	set_desc(DESC, 9, BUF + 0x2000, 1,
		 VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(DESC, 1, BUF + 0x3000, 4096, VIRTQ_DESC_F_WRITE, 0);
	offer(QSIZE, 5);
	is_int(virtq_pop(q, &chain), 1, "multi: chain popped");
	is_int(chain.nread, 2, "multi: 2 readable segments");
	is_int(chain.nwrite, 2, "multi: 2 writable segments");
	is_int(chain.read_len, 528, "multi: 528 bytes readable");
	is_int(chain.write_len, 4097, "multi: 4097 bytes writable");
	ok(chain.iov[0].iov_base == gp(BUF, 1) &&
		   chain.iov[1].iov_base == gp(BUF + 0x1000, 1) &&
		   chain.iov[2].iov_base == gp(BUF + 0x2000, 1) &&
		   chain.iov[3].iov_base == gp(BUF + 0x3000, 1),
	   "multi: segments in chain order");
	virtq_push(q, 5, 4097);
	ok(used()->idx == 1 && used()->ring[0].id == 5 &&
		   used()->ring[0].len == 4097,
	   "multi: used element carries the written length");
	virtio_dev_destroy(&d);
}

static void test_indirect(void)
{
	struct virtio_dev d;
	struct virtq *q = &d.queues[0];

	setup(&d, QSIZE, VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC));
	set_desc(ITABLE, 0, BUF, 10, VIRTQ_DESC_F_NEXT, 2);
	set_desc(ITABLE, 2, BUF + 0x100, 20,
		 VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(ITABLE, 1, BUF + 0x200, 30, VIRTQ_DESC_F_WRITE, 0);
	set_desc(DESC, 7, ITABLE, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(QSIZE, 7);
	is_int(virtq_pop(q, &chain), 1, "indirect: chain popped");
	ok(chain.head == 7 && chain.nread == 1 && chain.nwrite == 2 &&
		   chain.read_len == 10 && chain.write_len == 50,
	   "indirect: the table's 3 segments");
	ok(chain.iov[2].iov_base == gp(BUF + 0x200, 1), "indirect: next");

	/* a direct descriptor, then the indirect table, is allowed too */
	set_desc(DESC, 4, BUF + 0x300, 5, VIRTQ_DESC_F_NEXT, 6);
	set_desc(DESC, 6, ITABLE, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(QSIZE, 4);
	is_int(virtq_pop(q, &chain), 1, "indirect: after a direct one");
	ok(chain.nread == 2 && chain.nwrite == 2 && chain.read_len == 15,
	   "indirect: direct and table segments together");
	ok(!d.broken, "indirect: not broken");
	virtio_dev_destroy(&d);
}

static void test_wrap(void)
{
	struct virtio_dev d;
	struct virtq *q = &d.queues[0];
	int popped = 0;

	setup(&d, 4, 0);
	/* as if 65534 buffers had gone round already */
	q->last_avail = q->used_idx = 65534;
	avail()->idx = 65534;
	used()->idx = 65534;
	for (uint16_t i = 0; i < 4; i++) {
		set_desc(DESC, i, BUF + i * 0x100, 0x100, VIRTQ_DESC_F_WRITE,
			 0);
		offer(4, i);
	}
	is_int(avail()->idx, 2, "wrap: avail idx wrapped to 2");
	while (virtq_pop(q, &chain) == 1) {
		virtq_push(q, chain.head, popped);
		popped++;
	}
	is_int(popped, 4, "wrap: all 4 popped across the wrap");
	is_int(used()->idx, 2, "wrap: used idx wrapped to 2");
	ok(used()->ring[65534 % 4].id == 0 && used()->ring[65535 % 4].id == 1 &&
		   used()->ring[0].id == 2 && used()->ring[1].id == 3,
	   "wrap: used elements at idx mod size");
	ok(!d.broken, "wrap: not broken");
	virtio_dev_destroy(&d);
}

static uint16_t *used_event(uint16_t n)
{
	return &avail()->ring[n];
}

static uint16_t *avail_event(uint16_t n)
{
	return (uint16_t *)&used()->ring[n];
}

static void test_event_idx(void)
{
	struct virtio_dev d;
	struct virtq *q = &d.queues[0];

	setup(&d, QSIZE, VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX));
	ok(q->event_idx, "event idx: negotiated onto the queue");
	for (uint16_t i = 0; i < QSIZE; i++)
		set_desc(DESC, i, BUF, 4, VIRTQ_DESC_F_WRITE, 0);
	*avail_event(QSIZE) = 0xffff;
	is_int(virtq_pop(q, &chain), 0, "event idx: empty");
	is_int(*avail_event(QSIZE), 0,
	       "event idx: an empty ring publishes avail_event = last_avail");

	offer(QSIZE, 0);
	is_int(virtq_pop(q, &chain), 1, "event idx: pop");
	virtq_push(q, 0, 4);
	ok(virtq_should_signal(q), "event idx: first decision signals");

	/* the driver wants an interrupt only when used idx passes 3 */
	*used_event(QSIZE) = 3;
	offer(QSIZE, 1);
	virtq_pop(q, &chain);
	virtq_push(q, 1, 4); /* used idx 2: not past 3 */
	ok(!virtq_should_signal(q), "event idx: suppressed before used_event");
	offer(QSIZE, 2);
	offer(QSIZE, 3);
	virtq_pop(q, &chain);
	virtq_push(q, 2, 4);
	virtq_pop(q, &chain);
	virtq_push(q, 3, 4); /* used idx 4: crossed 3 */
	ok(virtq_should_signal(q), "event idx: signals once it is crossed");
	ok(!virtq_should_signal(q), "event idx: not twice for the same idx");
	is_int(virtq_pop(q, &chain), 0, "event idx: empty again");
	is_int(*avail_event(QSIZE), 4, "event idx: avail_event follows");

	/* a device that wants the driver's next buffer though some wait:
	 * avail_event at the avail idx, so a driver following the rule
	 * (notify when the new idx passes avail_event) notifies */
	offer(QSIZE, 5);
	offer(QSIZE, 6);
	is_int(virtq_notify_next(q), 6, "notify next: past the avail idx");
	is_int(*avail_event(QSIZE), 6,
	       "notify next: avail_event at the avail idx, not last_avail");
	virtq_pop(q, &chain);
	virtq_push(q, 5, 4);
	virtq_pop(q, &chain);
	virtq_push(q, 6, 4);

	/* NO_INTERRUPT is ignored with event idx */
	avail()->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	*used_event(QSIZE) = 6;
	offer(QSIZE, 4);
	virtq_pop(q, &chain);
	virtq_push(q, 4, 4);
	irq_vring = 0;
	virtio_dev_used(&d, q);
	is_int(irq_vring, 1, "event idx: used_event rules, not flags");
	virtio_dev_destroy(&d);
}

/* Each hostile chain: the device is broken, the next pop fails at once. */
static void expect_broken(struct virtio_dev *d, const char *what)
{
	struct virtq *q = &d->queues[0];
	uint16_t used_before = used()->idx;

	is_int(virtq_pop(q, &chain), -1, "hostile: %s: pop fails", what);
	ok(is_broken(d), "hostile: %s: NEEDS_RESET and one config interrupt",
	   what);
	is_int(virtq_pop(q, &chain), -1, "hostile: %s: stays broken", what);
	virtq_push(q, 0, 0);
	is_int(used()->idx, used_before, "hostile: %s: push is a no-op", what);
	is_int(irq_config, 1, "hostile: %s: no second interrupt", what);
	virtio_dev_destroy(d);
}

static void test_hostile(void)
{
	struct virtio_dev d;
	struct kiln_error err = { 0 };
	uint64_t ind = VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);

	setup(&d, QSIZE, 0);
	set_desc(DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "cycle 0 -> 1 -> 0");

	setup(&d, QSIZE, 0);
	set_desc(DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "self loop");

	setup(&d, QSIZE, 0);
	offer(QSIZE, QSIZE);
	expect_broken(&d, "head index == size");

	setup(&d, QSIZE, 0);
	set_desc(DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 200);
	offer(QSIZE, 0);
	expect_broken(&d, "next index >= size");

	setup(&d, QSIZE, 0);
	avail()->idx = QSIZE + 1;
	expect_broken(&d, "avail idx runs ahead by size + 1");

	setup(&d, QSIZE, 0);
	set_desc(DESC, 0, UINT64_MAX - 10, 100, 0, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "addr + len overflows");

	setup(&d, QSIZE, 0);
	set_desc(DESC, 0, MEM_SIZE - 10, 100, 0, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "buffer runs past the end of RAM");

	setup(&d, QSIZE, 0);
	set_desc(DESC, 0, LAYOUT_MMIO_GAP, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "buffer in the MMIO gap");

	setup(&d, QSIZE, 0);
	set_desc(DESC, 0, BUF, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF, 1, 0, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "readable after writable");

	/* 256 descriptors of 16 MiB: the total reaches 2^32 */
	setup(&d, 256, 0);
	for (unsigned int i = 0; i < 256; i++)
		set_desc(DESC, i, 0, (uint32_t)MEM_SIZE,
			 VIRTQ_DESC_F_WRITE | (i < 255 ? VIRTQ_DESC_F_NEXT : 0),
			 (uint16_t)(i + 1));
	offer(256, 0);
	expect_broken(&d, "lengths overflow uint32");

	setup(&d, QSIZE, 0);
	set_desc(DESC, 0, ITABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(ITABLE, 0, BUF, 1, 0, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "indirect not negotiated");

	setup(&d, QSIZE, ind);
	set_desc(DESC, 0, ITABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(ITABLE, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	set_desc(ITABLE, 1, ITABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "nested indirect");

	setup(&d, QSIZE, ind);
	set_desc(DESC, 0, ITABLE, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT,
		 1);
	offer(QSIZE, 0);
	expect_broken(&d, "indirect with NEXT");

	setup(&d, QSIZE, ind);
	set_desc(DESC, 0, ITABLE, 24, VIRTQ_DESC_F_INDIRECT, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "indirect length not a multiple of 16");

	setup(&d, QSIZE, ind);
	set_desc(DESC, 0, ITABLE, 0, VIRTQ_DESC_F_INDIRECT, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "empty indirect table");

	setup(&d, QSIZE, ind);
	set_desc(DESC, 0, MEM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "indirect table outside RAM");

	setup(&d, QSIZE, ind);
	set_desc(DESC, 0, ITABLE, 16 * (VIRTQ_CHAIN_MAX + 1),
		 VIRTQ_DESC_F_INDIRECT, 0);
	offer(QSIZE, 0);
	expect_broken(&d, "indirect table over VIRTQ_CHAIN_MAX entries");

	setup(&d, QSIZE, ind);
	set_desc(DESC, 0, ITABLE, 64, VIRTQ_DESC_F_INDIRECT, 0);
	for (unsigned int i = 0; i < 4; i++)
		set_desc(ITABLE, i, BUF, 1, VIRTQ_DESC_F_NEXT, (i + 1) % 4);
	offer(QSIZE, 0);
	expect_broken(&d, "cycle inside an indirect table");

	setup(&d, QSIZE, ind);
	set_desc(DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, ITABLE, 16 * VIRTQ_CHAIN_MAX, VIRTQ_DESC_F_INDIRECT,
		 0);
	for (unsigned int i = 0; i < VIRTQ_CHAIN_MAX; i++)
		set_desc(ITABLE, i, BUF, 1,
			 i + 1 < VIRTQ_CHAIN_MAX ? VIRTQ_DESC_F_NEXT : 0,
			 (uint16_t)(i + 1));
	offer(QSIZE, 0);
	expect_broken(&d, "chain over VIRTQ_CHAIN_MAX segments");

	setup(&d, QSIZE, ind);
	set_desc(DESC, 0, ITABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(ITABLE, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	offer(QSIZE, 0);
	expect_broken(&d, "next past the indirect table");

	/* a reset brings a broken device back */
	setup(&d, QSIZE, 0);
	offer(QSIZE, QSIZE);
	virtq_pop(&d.queues[0], &chain);
	ok(d.broken, "reset: broken first");
	virtio_dev_write_status(&d, 0);
	ok(!d.broken && d.status == 0, "reset: status 0 clears broken");
	ok(!d.queues[0].ready, "reset: and the queues");
	virtio_dev_destroy(&d);

	/* QueueReady checks */
	setup(&d, QSIZE, 0);
	virtio_dev_write_status(&d, 0);
	virtio_dev_write_status(&d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	virtio_dev_write_status(&d, VIRTIO_CONFIG_S_ACKNOWLEDGE |
					    VIRTIO_CONFIG_S_DRIVER);
	virtio_dev_write_features(&d, 1, 1);
	virtio_dev_write_status(&d, VIRTIO_CONFIG_S_ACKNOWLEDGE |
					    VIRTIO_CONFIG_S_DRIVER |
					    VIRTIO_CONFIG_S_FEATURES_OK);
	{
		struct virtq *q = &d.queues[0];
		static const struct {
			uint64_t desc, avail, used;
			uint16_t size;
			const char *what;
		} bad[] = {
			{ DESC + 8, AVAIL, USED, QSIZE,
			  "descriptor table misaligned" },
			{ DESC, AVAIL + 1, USED, QSIZE,
			  "avail ring misaligned" },
			{ DESC, AVAIL, USED + 2, QSIZE,
			  "used ring misaligned" },
			{ MEM_SIZE - 16, AVAIL, USED, QSIZE, "table past RAM" },
			{ DESC, MEM_SIZE - 6, USED, QSIZE, "avail past RAM" },
			{ DESC, AVAIL, MEM_SIZE - 8, QSIZE, "used past RAM" },
			{ DESC, AVAIL, LAYOUT_MMIO_GAP, QSIZE,
			  "used in the gap" },
			{ DESC, AVAIL, USED, 12, "size not a power of 2" },
			{ DESC, AVAIL, USED, 512, "size over the maximum" },
			{ DESC, AVAIL, USED, 0, "size 0" },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			q->desc_addr = bad[i].desc;
			q->avail_addr = bad[i].avail;
			q->used_addr = bad[i].used;
			q->size = bad[i].size;
			ok(virtio_dev_queue_enable(&d, 0, &err) < 0 &&
				   !q->ready,
			   "queue ready refused: %s (%s)", bad[i].what,
			   err.msg);
		}
		is_int(virtio_dev_queue_enable(&d, 1, &err), -1,
		       "queue ready refused: no such queue");
	}
	ok(!d.broken, "refused queues do not break the device");
	virtio_dev_destroy(&d);
}

/* A device that serves everything it can pop. */
static unsigned int served;

static void drain_notify(struct virtio_dev *d, unsigned int queue)
{
	struct virtq *q = &d->queues[queue];

	while (virtq_pop(q, &chain) == 1) {
		virtq_push(q, chain.head, 0);
		served++;
	}
}

static const struct virtio_ops drain_ops = {
	.name = "drain",
	.device_id = 98,
	.num_queues = 1,
	.queue_max_size = 256,
	.notify = drain_notify,
};

/*
 * The used ring laid over the avail ring: each push moves avail->idx too,
 * so the ring refills itself forever. One batch must still end.
 */
static void test_budget(void)
{
	struct kiln_error err = { 0 };
	struct virtio_dev d;
	struct virtq *q = &d.queues[0];

	memset(mem.host, 0, 0x200000);
	irq_vring = irq_config = 0;
	virtio_dev_init(&d, &drain_ops, NULL, &mem, &err);
	d.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	virtio_dev_write_features(&d, 1, 1);
	virtio_dev_write_status(&d, d.status | VIRTIO_CONFIG_S_FEATURES_OK);
	q->size = QSIZE;
	q->desc_addr = DESC;
	q->avail_addr = AVAIL;
	q->used_addr = AVAIL;
	is_int(virtio_dev_queue_enable(&d, 0, &err), 0,
	       "budget: overlapping rings are not refused");
	virtio_dev_write_status(&d, d.status | VIRTIO_CONFIG_S_DRIVER_OK);
	for (uint16_t i = 0; i < QSIZE; i++)
		set_desc(DESC, i, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	q->used_idx = 5; /* the used idx the guest arranged */
	avail()->idx = 1;
	served = 0;
	ok(virtio_dev_notify(&d, 0), "budget: a batch ends with more to do");
	is_int(served, QSIZE, "budget: after exactly the queue size");
	ok(virtio_dev_notify(&d, 0), "budget: the next batch too");
	is_int(served, 2 * QSIZE, "budget: and again the queue size");
	is_int(q->budget, VIRTQ_UNLIMITED, "budget: none outside a batch");
	ok(!virtio_dev_notify(&d, 1), "budget: no queue 1, nothing to do");
	virtio_dev_destroy(&d);
}

int main(void)
{
	struct kiln_error err = { 0 };

	log_set_level(LOG_ERROR);
	if (guest_mem_init(&mem, MEM_SIZE, &err) < 0) {
		printf("Bail out! %s\n", err.msg);
		return 1;
	}
	test_simple();
	test_multi();
	test_indirect();
	test_wrap();
	test_event_idx();
	test_hostile();
	test_budget();
	guest_mem_destroy(&mem);
	return tap_done();
}
