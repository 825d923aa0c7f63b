/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-mmio version 2. Every register access runs on a vCPU thread with
 * the device lock held, but InterruptStatus and InterruptACK, which touch
 * only the atomic isr: the guest's interrupt handler reads one and writes
 * the other on every interrupt, and must not wait for the event loop to
 * finish a backend's work (a TAP write, a disk request) under the lock.
 * Notifications run on the event-loop thread with the lock held (see
 * virtio.h for the lock order).
 *
 * Notification path: at QueueReady a KVM ioeventfd on QueueNotify (4
 * bytes, datamatch = queue index) makes a guest kick signal an eventfd
 * without an exit to us; the event loop reads it and calls ops->notify. A
 * QueueNotify that still reaches the trap (no KVM, or before the ioeventfd
 * exists) is forwarded to the same eventfd, or, with no event loop at all,
 * served at once.
 */
#include "mmio.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "../layout.h"
#include "../vm.h"

#define MMIO_SLOTS VIRTIO_MMIO_SLOTS

struct mmio_notify {
	struct virtio_mmio *m;
	unsigned int queue;
	int fd;			 /* eventfd in the loop, -1 without a loop */
	struct evloop_entry *ev; /* fd's entry in vm->loop */
	bool assigned;		 /* a KVM ioeventfd signals fd */
};

struct virtio_mmio {
	struct virtio_dev *dev;
	struct vm *vm;
	uint64_t base;
	unsigned int irq;
	int irq_fd;   /* KVM irqfd, -1 without KVM */
	uint32_t isr; /* InterruptStatus: atomic, no lock needed */
	/* selectors: any value, checked when used (under the device lock) */
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	struct mmio_notify notify[VIRTIO_MAX_QUEUES];
};

/* guest-triggered: rate-limited per call site */
#define mmio_log(m, fmt, ...)                                   \
	do {                                                    \
		if (log_ratelimit())                            \
			log_warn("virtio-%s@0x%llx: " fmt,      \
				 (m)->dev->ops->name,           \
				 (unsigned long long)(m)->base, \
				 ##__VA_ARGS__);                \
	} while (0)

static void mmio_interrupt(struct virtio_dev *d, uint32_t bits)
{
	struct virtio_mmio *m = d->transport;
	uint64_t one = 1;

	__atomic_fetch_or(&m->isr, bits, __ATOMIC_SEQ_CST);
	/*
	 * Every cause is an edge: the driver reads InterruptStatus, acks
	 * what it saw, then looks at its rings, so nothing is lost when a
	 * cause arrives while the bit is still set.
	 *
	 * With KVM the edge is a KVM_IRQ_LINE pulse from this thread, which
	 * is what KVM does for an irqfd too, but for an IOAPIC pin it does
	 * so later, from a kworker (only MSIs are injected at once): one
	 * more thread to schedule before the guest hears of it. In the test
	 * bed (one loaded L1 CPU, test/bench/io tcp rows) the time from here
	 * to the guest's InterruptStatus read was 6.8 ms (median) through
	 * the irqfd and 0.64 ms with KVM_IRQ_LINE, and the guest's TCP,
	 * which waits for tx completions, sent at that pace.
	 */
	if (m->vm != NULL && m->vm->vm_fd >= 0) {
		struct kvm_irq_level up = { .irq = m->irq, .level = 1 };
		struct kvm_irq_level down = { .irq = m->irq, .level = 0 };

		if (ioctl(m->vm->vm_fd, KVM_IRQ_LINE, &up) < 0 ||
		    ioctl(m->vm->vm_fd, KVM_IRQ_LINE, &down) < 0)
			mmio_log(m, "KVM_IRQ_LINE %u: %s", m->irq,
				 strerror(errno));
		return;
	}
	/* fails only when the counter would overflow: one is pending */
	if (m->irq_fd >= 0 && write(m->irq_fd, &one, sizeof(one)) < 0)
		mmio_log(m, "irqfd write: %s", strerror(errno));
}

static int mmio_ioeventfd(struct virtio_mmio *m, unsigned int q, bool assign)
{
	struct kvm_ioeventfd io = {
		.datamatch = q,
		.addr = m->base + VIRTIO_MMIO_QUEUE_NOTIFY,
		.len = 4,
		.fd = m->notify[q].fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(m->vm->vm_fd, KVM_IOEVENTFD, &io);
}

static void mmio_assign(struct virtio_mmio *m, unsigned int q)
{
	struct mmio_notify *n = &m->notify[q];

	if (m->vm->vm_fd < 0 || n->fd < 0 || n->assigned)
		return;
	/* on failure kicks still reach the trap, which forwards them */
	if (mmio_ioeventfd(m, q, true) < 0)
		mmio_log(m, "KVM_IOEVENTFD queue %u: %s", q, strerror(errno));
	else
		n->assigned = true;
}

static void mmio_deassign(struct virtio_mmio *m, unsigned int q)
{
	struct mmio_notify *n = &m->notify[q];

	if (!n->assigned)
		return;
	if (mmio_ioeventfd(m, q, false) < 0)
		mmio_log(m, "KVM_IOEVENTFD deassign queue %u: %s", q,
			 strerror(errno));
	n->assigned = false;
}

/* Have ops->notify run for queue q: on the loop if there is one. */
static void mmio_kick(struct virtio_mmio *m, unsigned int q)
{
	struct virtio_dev *d = m->dev;
	uint64_t one = 1;

	if (!virtio_dev_running(d) || !d->queues[q].ready)
		return;
	if (m->notify[q].fd < 0) {
		/* no loop to come back on: the rest waits for the next kick */
		virtio_dev_notify(d, q);
		return;
	}
	if (write(m->notify[q].fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		mmio_log(m, "notify eventfd: %s", strerror(errno));
}

/* Event loop: the guest kicked queue n->queue. */
static void mmio_on_notify(void *opaque, uint32_t events)
{
	struct mmio_notify *n = opaque;
	struct virtio_dev *d = n->m->dev;
	uint64_t count, one = 1;

	(void)events;
	if (read(n->fd, &count, sizeof(count)) < 0)
		return; /* EAGAIN: nothing pending */
	virtio_dev_lock(d);
	/* budget spent: let other fds have the loop, then carry on */
	if (virtio_dev_notify(d, n->queue) &&
	    write(n->fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		mmio_log(n->m, "notify eventfd: %s", strerror(errno));
	virtio_dev_unlock(d);
}

static void mmio_reset(struct virtio_mmio *m)
{
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		mmio_deassign(m, i);
	__atomic_store_n(&m->isr, 0, __ATOMIC_SEQ_CST);
	m->device_features_sel = 0;
	m->driver_features_sel = 0;
	m->queue_sel = 0;
}

/* The selected queue, when the driver may configure it now; else NULL. */
static struct virtq *mmio_config_queue(struct virtio_mmio *m, uint64_t reg)
{
	struct virtio_dev *d = m->dev;

	if (m->queue_sel >= d->ops->num_queues) {
		mmio_log(m, "register 0x%llx: no queue %u",
			 (unsigned long long)reg, m->queue_sel);
		return NULL;
	}
	if (!virtio_dev_queue_config_allowed(d)) {
		mmio_log(m,
			 "register 0x%llx: queue setup in status 0x%x ignored",
			 (unsigned long long)reg, d->status);
		return NULL;
	}
	if (d->queues[m->queue_sel].ready) {
		mmio_log(m, "register 0x%llx: queue %u is ready, ignored",
			 (unsigned long long)reg, m->queue_sel);
		return NULL;
	}
	return &d->queues[m->queue_sel];
}

static void mmio_set_half(uint64_t *addr, bool high, uint32_t v)
{
	if (high)
		*addr = (*addr & 0xffffffffULL) | ((uint64_t)v << 32);
	else
		*addr = (*addr & ~0xffffffffULL) | v;
}

static void mmio_queue_ready(struct virtio_mmio *m, uint32_t v)
{
	struct virtio_dev *d = m->dev;
	struct kiln_error err = { 0 };
	struct virtq *q;

	if (v == 0 && m->queue_sel < d->ops->num_queues &&
	    !d->queues[m->queue_sel].ready)
		return; /* Linux does this after a reset: nothing to do */
	if (v > 1) {
		mmio_log(m, "QueueReady = %u ignored", v);
		return;
	}
	if (v == 0) {
		/* only during setup: we do not offer VIRTIO_F_RING_RESET */
		if (m->queue_sel < d->ops->num_queues &&
		    virtio_dev_queue_config_allowed(d)) {
			mmio_deassign(m, m->queue_sel);
			d->queues[m->queue_sel].ready = false;
		} else {
			mmio_log(m, "QueueReady = 0 in status 0x%x ignored",
				 d->status);
		}
		return;
	}
	q = mmio_config_queue(m, VIRTIO_MMIO_QUEUE_READY);
	if (q == NULL)
		return;
	if (virtio_dev_queue_enable(d, m->queue_sel, &err) < 0) {
		mmio_log(m, "queue %u refused: %s", m->queue_sel, err.msg);
		return;
	}
	mmio_assign(m, m->queue_sel);
}

static void mmio_status(struct virtio_mmio *m, uint32_t v)
{
	switch (virtio_dev_write_status(m->dev, v)) {
	case VIRTIO_STATUS_RESET:
		mmio_reset(m);
		break;
	case VIRTIO_STATUS_ACTIVATED:
		/* buffers the driver added before DRIVER_OK */
		for (unsigned int i = 0; i < m->dev->ops->num_queues; i++)
			mmio_kick(m, i);
		break;
	default:
		break;
	}
}

static void mmio_write(struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	struct virtio_dev *d = m->dev;
	struct virtq *q;

	/* guest-controlled: off and v */
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		m->device_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		virtio_dev_write_features(d, m->driver_features_sel, v);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		m->driver_features_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		m->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		q = mmio_config_queue(m, off);
		if (q == NULL)
			break;
		if (v == 0 || v > q->max_size || !util_is_pow2(v))
			mmio_log(m, "QueueNum %u: not a power of 2 in 1..%u", v,
				 q->max_size);
		else
			q->size = (uint16_t)v;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		mmio_queue_ready(m, v);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (v >= d->ops->num_queues)
			mmio_log(m, "notify of queue %u", v);
		else
			mmio_kick(m, v);
		break;
	case VIRTIO_MMIO_STATUS:
		mmio_status(m, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		q = mmio_config_queue(m, off);
		if (q != NULL)
			mmio_set_half(&q->desc_addr,
				      off == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		q = mmio_config_queue(m, off);
		if (q != NULL)
			mmio_set_half(&q->avail_addr,
				      off == VIRTIO_MMIO_QUEUE_DRIVER_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		q = mmio_config_queue(m, off);
		if (q != NULL)
			mmio_set_half(&q->used_addr,
				      off == VIRTIO_MMIO_QUEUE_DEVICE_HIGH, v);
		break;
	case VIRTIO_MMIO_SHM_SEL:
		break; /* no shared memory regions: every one reads as absent */
	default:
		mmio_log(m, "write 0x%x to register 0x%llx ignored", v,
			 (unsigned long long)off);
		break;
	}
}

static uint32_t mmio_read(struct virtio_mmio *m, uint64_t off)
{
	struct virtio_dev *d = m->dev;
	const struct virtq *q = m->queue_sel < d->ops->num_queues
					? &d->queues[m->queue_sel]
					: NULL;
	uint64_t features = virtio_dev_offered(d);

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return VIRTIO_MMIO_VERSION_2;
	case VIRTIO_MMIO_DEVICE_ID:
		return d->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (m->device_features_sel > 1)
			return 0;
		return (uint32_t)(features >> (32 * m->device_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? q->max_size : 0;
	case VIRTIO_MMIO_QUEUE_NUM:
		return q ? q->size : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return q ? q->ready : 0;
	case VIRTIO_MMIO_STATUS:
		return d->status;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		return q ? (uint32_t)q->desc_addr : 0;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		return q ? (uint32_t)(q->desc_addr >> 32) : 0;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
		return q ? (uint32_t)q->avail_addr : 0;
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		return q ? (uint32_t)(q->avail_addr >> 32) : 0;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
		return q ? (uint32_t)q->used_addr : 0;
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		return q ? (uint32_t)(q->used_addr >> 32) : 0;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return 0xffffffff; /* section 4.2.2: no such region */
	case VIRTIO_MMIO_QUEUE_RESET:
		return 0;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return d->config_generation;
	default:
		mmio_log(m, "read of register 0x%llx", (unsigned long long)off);
		return 0;
	}
}

static void mmio_config(struct virtio_mmio *m, uint64_t off, uint8_t *data,
			uint32_t len, bool is_write)
{
	struct virtio_dev *d = m->dev;
	const struct virtio_ops *ops = d->ops;

	/* guest-controlled: off and len; the trap kept us in the window */
	if ((len != 1 && len != 2 && len != 4 && len != 8) ||
	    off >= ops->config_size || len > ops->config_size - off) {
		mmio_log(m, "config %s of %u bytes at 0x%llx outside its %u",
			 is_write ? "write" : "read", len,
			 (unsigned long long)off, ops->config_size);
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	if (!is_write) {
		memset(data, 0, len);
		ops->config_read(d, (uint32_t)off, data, len);
	} else if (ops->config_write != NULL) {
		ops->config_write(d, (uint32_t)off, data, len);
	} else {
		mmio_log(m, "config write at 0x%llx: read-only",
			 (unsigned long long)off);
	}
}

/* trap_fn: a vCPU accessed the window. */
static void mmio_trap(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		      bool is_write)
{
	struct virtio_mmio *m = opaque;
	uint32_t v;

	/* the interrupt path: no lock (see the top of this file) */
	if (len == 4 && off == VIRTIO_MMIO_INTERRUPT_STATUS && !is_write) {
		v = __atomic_load_n(&m->isr, __ATOMIC_SEQ_CST);
		/* a vhost backend raises the irqfd without telling us */
		if (m->dev->ops->vhost)
			v |= VIRTIO_ISR_VRING;
		memcpy(data, &v, 4);
		return;
	}
	if (len == 4 && off == VIRTIO_MMIO_INTERRUPT_ACK && is_write) {
		memcpy(&v, data, 4);
		__atomic_fetch_and(&m->isr, ~v, __ATOMIC_SEQ_CST);
		return;
	}
	virtio_dev_lock(m->dev);
	if (off >= VIRTIO_MMIO_CONFIG) {
		mmio_config(m, off - VIRTIO_MMIO_CONFIG, data, len, is_write);
	} else if (len != 4 || off % 4 != 0) {
		/* guest-controlled: registers are 32-bit, aligned */
		mmio_log(m, "%u-byte %s at 0x%llx ignored", len,
			 is_write ? "write" : "read", (unsigned long long)off);
		if (!is_write)
			memset(data, 0, len);
	} else if (is_write) {
		memcpy(&v, data, 4);
		mmio_write(m, off, v);
	} else {
		v = mmio_read(m, off);
		memcpy(data, &v, 4);
	}
	virtio_dev_unlock(m->dev);
}

/* The first window in the virtio range that no trap covers yet. */
static int mmio_find_slot(const struct trap_table *t)
{
	const struct trap *a = t->traps[TRAP_MMIO];

	for (int i = 0; i < MMIO_SLOTS; i++) {
		uint64_t base =
			LAYOUT_VIRTIO_MMIO + i * LAYOUT_VIRTIO_MMIO_SIZE;
		bool used = false;

		for (unsigned int j = 0; j < t->count[TRAP_MMIO] && !used; j++)
			used = a[j].base < base + LAYOUT_VIRTIO_MMIO_SIZE &&
			       base < a[j].base + a[j].len;
		if (!used)
			return i;
	}
	return -1;
}

static void mmio_free(struct virtio_mmio *m)
{
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		struct mmio_notify *n = &m->notify[i];

		mmio_deassign(m, i);
		if (n->ev != NULL)
			evloop_del(&m->vm->loop, n->ev);
		if (n->fd >= 0)
			close(n->fd);
	}
	if (m->irq_fd >= 0)
		close(m->irq_fd);
	free(m);
}

int virtio_mmio_add(struct vm *vm, struct virtio_dev *d, struct kiln_error *err)
{
	const char *name = d->ops->name;
	struct virtio_mmio *m;
	int slot = mmio_find_slot(&vm->traps);

	if (slot < 0)
		return kiln_error_set(err, ENOSPC,
				      "virtio-%s: all %d virtio-mmio slots are "
				      "taken",
				      name, MMIO_SLOTS);
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-%s", name);
	m->dev = d;
	m->vm = vm;
	m->base = LAYOUT_VIRTIO_MMIO + slot * LAYOUT_VIRTIO_MMIO_SIZE;
	m->irq = LAYOUT_VIRTIO_IRQ_BASE + slot;
	m->irq_fd = -1;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		m->notify[i] =
			(struct mmio_notify){ .m = m, .queue = i, .fd = -1 };

	if (vm->vm_fd >= 0) {
		m->irq_fd = vm_irqfd(vm, m->irq, err);
		if (m->irq_fd < 0)
			goto fail;
	}
	for (unsigned int i = 0;
	     (vm->loop.epfd >= 0 || d->ops->vhost) && i < d->ops->num_queues;
	     i++) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd < 0) {
			kiln_error_set(err, errno, "eventfd");
			goto fail;
		}
		if (d->ops->vhost) {
			/* the backend reads it, never the loop */
			m->notify[i].fd = fd;
			continue;
		}
		m->notify[i].ev = evloop_add(&vm->loop, fd, EPOLLIN,
					     mmio_on_notify, &m->notify[i],
					     err);
		if (m->notify[i].ev == NULL) {
			close(fd);
			goto fail;
		}
		m->notify[i].fd = fd;
	}
	if (vm_cmdline_append(vm, err, "virtio_mmio.device=4K@0x%llx:%u",
			      (unsigned long long)m->base, m->irq) < 0)
		goto fail;
	d->transport = m;
	d->interrupt = mmio_interrupt;
	/* last: once registered, the trap table holds m until the VM ends */
	if (trap_register(&vm->traps, TRAP_MMIO, m->base,
			  LAYOUT_VIRTIO_MMIO_SIZE, mmio_trap, m, err) < 0) {
		d->transport = NULL;
		d->interrupt = NULL;
		goto fail;
	}
	return 0;
fail:
	mmio_free(m);
	return kiln_error_wrap(err, "virtio-%s", name);
}

void virtio_mmio_del(struct virtio_dev *d)
{
	struct virtio_mmio *m = d->transport;

	if (m == NULL)
		return;
	virtio_dev_lock(d);
	d->transport = NULL;
	d->interrupt = NULL;
	virtio_dev_unlock(d);
	mmio_free(m);
}

struct virtio_dev *virtio_mmio_slot_dev(const struct vm *vm, unsigned int slot)
{
	const struct trap_table *t = &vm->traps;
	uint64_t base =
		LAYOUT_VIRTIO_MMIO + (uint64_t)slot * LAYOUT_VIRTIO_MMIO_SIZE;

	if (slot >= MMIO_SLOTS)
		return NULL;
	for (unsigned int j = 0; j < t->count[TRAP_MMIO]; j++) {
		const struct trap *tr = &t->traps[TRAP_MMIO][j];

		if (tr->base == base && tr->fn == mmio_trap)
			return ((struct virtio_mmio *)tr->opaque)->dev;
	}
	return NULL;
}

int virtio_mmio_vhost_fds(const struct virtio_dev *d, unsigned int q, int *kick,
			  int *call, struct kiln_error *err)
{
	const struct virtio_mmio *m = d->transport;

	if (m == NULL || !d->ops->vhost || q >= d->ops->num_queues ||
	    m->notify[q].fd < 0)
		return kiln_error_set(err, EINVAL,
				      "virtio-%s: no vhost queue %u",
				      d->ops->name, q);
	*kick = m->notify[q].fd;
	*call = m->irq_fd;
	return 0;
}

uint64_t virtio_mmio_base(const struct virtio_dev *d)
{
	const struct virtio_mmio *m = d->transport;

	return m ? m->base : 0;
}

unsigned int virtio_mmio_irq(const struct virtio_dev *d)
{
	const struct virtio_mmio *m = d->transport;

	return m ? m->irq : 0;
}

size_t virtio_mmio_state_size(const struct virtio_dev *d)
{
	return sizeof(struct virtio_mmio_state) + d->ops->state_size;
}

int virtio_mmio_save(struct virtio_dev *d, void *buf, size_t len,
		     struct kiln_error *err)
{
	struct virtio_mmio *m = d->transport;
	size_t size = virtio_mmio_state_size(d);
	_Alignas(16) uint8_t dev_state[VIRTIO_DEV_STATE_MAX];
	struct virtio_mmio_state s;

	if (m == NULL || len < size)
		return kiln_error_set(err, EINVAL,
				      "virtio-%s: state needs %zu bytes",
				      d->ops->name, size);
	memset(&s, 0, sizeof(s));
	s.magic = VIRTIO_MMIO_STATE_MAGIC;
	s.version = VIRTIO_MMIO_STATE_VERSION;
	s.size = (uint32_t)size;
	s.dev_state_size = (uint32_t)d->ops->state_size;
	s.base = m->base;
	s.irq = m->irq;
	virtio_dev_lock(d);
	s.isr = __atomic_load_n(&m->isr, __ATOMIC_SEQ_CST);
	s.device_features_sel = m->device_features_sel;
	s.driver_features_sel = m->driver_features_sel;
	s.queue_sel = m->queue_sel;
	virtio_dev_save(d, &s.dev, dev_state);
	virtio_dev_unlock(d);
	memcpy(buf, &s, sizeof(s));
	memcpy((uint8_t *)buf + sizeof(s), dev_state, d->ops->state_size);
	return 0;
}

int virtio_mmio_restore(struct virtio_dev *d, const void *buf, size_t len,
			struct kiln_error *err)
{
	struct virtio_mmio *m = d->transport;
	size_t size = virtio_mmio_state_size(d);
	_Alignas(16) uint8_t dev_state[VIRTIO_DEV_STATE_MAX];
	struct virtio_mmio_state s;
	uint64_t one = 1;

	/* file-controlled: copy out first, the buffer may be misaligned */
	if (m == NULL || len != size)
		return kiln_error_set(err, EINVAL,
				      "virtio-%s: state of %zu bytes, want %zu",
				      d->ops->name, len, size);
	memcpy(&s, buf, sizeof(s));
	memcpy(dev_state, (const uint8_t *)buf + sizeof(s), d->ops->state_size);
	if (s.magic != VIRTIO_MMIO_STATE_MAGIC ||
	    s.version != VIRTIO_MMIO_STATE_VERSION || s.size != size ||
	    s.dev_state_size != d->ops->state_size || s.pad != 0)
		return kiln_error_set(err, EINVAL,
				      "virtio-%s: not a version %u state",
				      d->ops->name, VIRTIO_MMIO_STATE_VERSION);
	if (s.base != m->base || s.irq != m->irq)
		return kiln_error_set(err, EINVAL,
				      "virtio-%s: state of the device at "
				      "0x%llx irq %u, this one is at 0x%llx "
				      "irq %u",
				      d->ops->name, (unsigned long long)s.base,
				      s.irq, (unsigned long long)m->base,
				      m->irq);
	if (s.isr & ~(uint32_t)(VIRTIO_ISR_VRING | VIRTIO_ISR_CONFIG))
		return kiln_error_set(err, EINVAL,
				      "virtio-%s: interrupt status 0x%x",
				      d->ops->name, s.isr);
	virtio_dev_lock(d);
	if (virtio_dev_restore(d, &s.dev, dev_state, err) < 0) {
		virtio_dev_unlock(d);
		return -1;
	}
	m->device_features_sel = s.device_features_sel;
	m->driver_features_sel = s.driver_features_sel;
	m->queue_sel = s.queue_sel;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		mmio_deassign(m, i);
		if (d->queues[i].ready)
			mmio_assign(m, i);
	}
	__atomic_store_n(&m->isr, s.isr, __ATOMIC_SEQ_CST);
	/* a cause the driver had not acked yet: make sure it looks again */
	if (s.isr != 0 && m->irq_fd >= 0 &&
	    write(m->irq_fd, &one, sizeof(one)) < 0)
		mmio_log(m, "irqfd write: %s", strerror(errno));
	virtio_dev_unlock(d);
	return 0;
}
