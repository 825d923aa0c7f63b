/* SPDX-License-Identifier: Apache-2.0 */
/* The test-side virtio-mmio driver: see vdriver.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vdriver.h"

/*
 * vm.c needs KVM; weak so that a build linking it (the unit tests) uses
 * the real ones, and one without (the fuzzers) still links.
 */
__attribute__((weak)) int vm_irqfd(struct vm *vm, unsigned int gsi,
				   struct kiln_error *err)
{
	return kiln_error_set(err, ENOSYS, "no KVM");
}

__attribute__((weak)) int
vm_cmdline_append(struct vm *vm, struct kiln_error *err, const char *fmt, ...)
{
	return 0;
}

const struct vmm_device *vdrv_find(const char *name)
{
	for (const struct vmm_device *d = __start_vmm_devices;
	     d < __stop_vmm_devices; d++)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

void vdrv_init(struct vdrv *v)
{
	memset(v, 0, sizeof(*v));
	v->vm.cfg = &v->cfg;
	v->vm.kvm_fd = v->vm.vm_fd = v->vm.signal_fd = -1;
	v->vm.loop.epfd = v->vm.loop.stop_efd = -1;
	v->vm.mem.fd = -1;
}

#if defined(__SANITIZE_THREAD__)
#define VDRV_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VDRV_TSAN 1
#endif
#endif
#ifdef VDRV_TSAN
/* ThreadSanitizer's dynamic annotation (its runtime defines it) */
void AnnotateBenignRaceSized(const char *file, int line,
			     const volatile void *mem, unsigned long size,
			     const char *desc);
#endif

int vdrv_mem_alloc(struct vdrv *v, uint64_t size, struct kiln_error *err)
{
	int ret = guest_mem_init(&v->vm.mem, size, err);

	v->own_mem = ret == 0;
#ifdef VDRV_TSAN
	/*
	 * Guest memory is shared with a guest that synchronises with the
	 * device only through the virtio protocol (barriers, notifications,
	 * interrupts), never through host locks; here the guest is a host
	 * thread, so TSan would report every ring access. The device treats
	 * this memory as hostile and racy already.
	 */
	if (ret == 0)
		AnnotateBenignRaceSized(__FILE__, __LINE__, v->vm.mem.host,
					size, "guest memory");
#endif
	return ret;
}

int vdrv_mem_private(struct vdrv *v, int fd, uint64_t size,
		     struct kiln_error *err)
{
	int ret = guest_mem_init_private(&v->vm.mem, fd, size, err);

	v->own_mem = ret == 0;
#ifdef VDRV_TSAN
	if (ret == 0)
		AnnotateBenignRaceSized(__FILE__, __LINE__, v->vm.mem.host,
					size, "guest memory");
#endif
	return ret;
}

void vdrv_mem_static(struct vdrv *v, void *host, uint64_t size)
{
	v->vm.mem.host = host;
	v->vm.mem.size = size;
	v->vm.mem.fd = -1;
	v->vm.mem.nregions = 1;
	v->vm.mem.regions[0] = (struct guest_region){ 0, size, 0 };
	v->own_mem = false;
}

int vdrv_attach(struct vdrv *v, const char *name, struct kiln_error *err)
{
	const struct vmm_device *desc = vdrv_find(name);
	int ret;

	if (desc == NULL)
		return kiln_error_set(err, ENOENT, "no device %s", name);
	ret = desc->init(&v->vm, &v->state, err);
	/* only an initialised device gets exit from vdrv_destroy */
	if (ret == 0)
		v->desc = desc;
	return ret;
}

void vdrv_use(struct vdrv *v, struct virtio_dev *d)
{
	v->dev = d;
	v->base = d != NULL ? virtio_mmio_base(d) : 0;
	for (unsigned int q = 0; q < VDRV_MAX_QUEUES; q++)
		v->q[q].next_avail = v->q[q].seen = 0;
}

void vdrv_destroy(struct vdrv *v)
{
	if (v->desc != NULL)
		v->desc->exit(&v->vm, v->state);
	evloop_destroy(&v->vm.loop);
	trap_table_destroy(&v->vm.traps);
	if (v->own_mem)
		guest_mem_destroy(&v->vm.mem);
	free(v->vm.cmdline_extra);
	v->vm.cmdline_extra = NULL;
}

bool vdrv_access(struct vdrv *v, uint64_t off, void *buf, uint32_t len,
		 bool write)
{
	return trap_dispatch(&v->vm.traps, TRAP_MMIO, v->base + off, buf, len,
			     write);
}

uint32_t vdrv_rd(struct vdrv *v, uint64_t off)
{
	uint32_t val = 0xdeadbeef;

	if (!vdrv_access(v, off, &val, 4, false))
		return 0xffffffff;
	return val;
}

void vdrv_wr(struct vdrv *v, uint64_t off, uint32_t val)
{
	vdrv_access(v, off, &val, 4, true);
}

void *vdrv_gp(struct vdrv *v, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&v->vm.mem, gpa, len);
}

void vdrv_queue_at(struct vdrv *v, unsigned int q, uint64_t desc,
		   uint64_t avail, uint64_t used, uint16_t size)
{
	v->q[q] = (struct vdrv_queue){ desc, avail, used, size, 0, 0 };
	if (q >= v->nqueues)
		v->nqueues = q + 1;
}

void vdrv_handshake(struct vdrv *v, uint32_t features_lo, uint32_t features_hi,
		    bool driver_ok)
{
	const uint32_t ack = VIRTIO_CONFIG_S_ACKNOWLEDGE,
		       drv = VIRTIO_CONFIG_S_DRIVER,
		       fok = VIRTIO_CONFIG_S_FEATURES_OK;

	vdrv_wr(v, VIRTIO_MMIO_STATUS, 0);
	/* after the reset: the device no longer reads the rings */
	if (v->clear_len > 0)
		memset(vdrv_gp(v, v->clear_gpa, v->clear_len), 0, v->clear_len);
	for (unsigned int q = 0; q < VDRV_MAX_QUEUES; q++)
		v->q[q].next_avail = v->q[q].seen = 0;
	vdrv_wr(v, VIRTIO_MMIO_STATUS, ack);
	vdrv_wr(v, VIRTIO_MMIO_STATUS, ack | drv);
	vdrv_wr(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vdrv_wr(v, VIRTIO_MMIO_DRIVER_FEATURES, features_hi);
	vdrv_wr(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vdrv_wr(v, VIRTIO_MMIO_DRIVER_FEATURES, features_lo);
	vdrv_wr(v, VIRTIO_MMIO_STATUS, ack | drv | fok);
	for (unsigned int q = 0; q < v->nqueues; q++) {
		const struct vdrv_queue *r = &v->q[q];

		vdrv_wr(v, VIRTIO_MMIO_QUEUE_SEL, q);
		vdrv_wr(v, VIRTIO_MMIO_QUEUE_NUM, r->size);
		vdrv_wr(v, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)r->desc);
		vdrv_wr(v, VIRTIO_MMIO_QUEUE_DESC_HIGH,
			(uint32_t)(r->desc >> 32));
		vdrv_wr(v, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)r->avail);
		vdrv_wr(v, VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
			(uint32_t)(r->avail >> 32));
		vdrv_wr(v, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)r->used);
		vdrv_wr(v, VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
			(uint32_t)(r->used >> 32));
		vdrv_wr(v, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	if (driver_ok)
		vdrv_wr(v, VIRTIO_MMIO_STATUS,
			ack | drv | fok | VIRTIO_CONFIG_S_DRIVER_OK);
}

struct virtq_used *vdrv_used(struct vdrv *v, unsigned int q)
{
	return vdrv_gp(v, v->q[q].used, VIRTQ_USED_BYTES(v->q[q].size));
}

static struct virtq_avail *vdrv_avail(struct vdrv *v, unsigned int q)
{
	return vdrv_gp(v, v->q[q].avail, VIRTQ_AVAIL_BYTES(v->q[q].size));
}

void vdrv_set_desc(struct vdrv *v, unsigned int q, unsigned int i,
		   uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct virtq_desc *d =
		vdrv_gp(v, v->q[q].desc + 16ULL * (i % v->q[q].size), 16);

	*d = (struct virtq_desc){ addr, len, flags, next };
}

void vdrv_publish(struct vdrv *v, unsigned int q, uint16_t head)
{
	struct virtq_avail *a = vdrv_avail(v, q);

	a->ring[a->idx % v->q[q].size] = head;
	/* the ring entry before the idx that publishes it */
	__atomic_store_n(&a->idx, a->idx + 1, __ATOMIC_RELEASE);
}

void vdrv_offer(struct vdrv *v, unsigned int q, uint16_t head)
{
	struct virtq_avail *a = vdrv_avail(v, q);
	struct vdrv_queue *r = &v->q[q];

	a->ring[r->next_avail % r->size] = head;
	r->next_avail++;
	__atomic_store_n(&a->idx, r->next_avail, __ATOMIC_RELEASE);
	vdrv_kick(v, q);
}

void vdrv_kick(struct vdrv *v, unsigned int q)
{
	vdrv_wr(v, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

bool vdrv_used_next(struct vdrv *v, unsigned int q, struct virtq_used_elem *e)
{
	struct virtq_used *u = vdrv_used(v, q);
	struct vdrv_queue *r = &v->q[q];

	/* the device may run on another thread: idx before the entry */
	if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == r->seen)
		return false;
	*e = u->ring[r->seen % r->size];
	r->seen++;
	return true;
}

void vdrv_snapshot_flip(struct virtio_dev *d, uint64_t at, uint8_t x)
{
	static uint8_t
		buf[sizeof(struct virtio_mmio_state) + VIRTIO_DEV_STATE_MAX];
	size_t size = virtio_mmio_state_size(d);
	struct kiln_error err = { 0 };

	if (size > sizeof(buf) || virtio_mmio_save(d, buf, size, &err) < 0)
		abort();
	buf[at % size] ^= x;
	/* the top bit: restored as a fork's device (virtio_ops.fork_adopt) */
	d->fork = at >> 63;
	/* refused or accepted: either way the device must stay sound */
	virtio_mmio_restore(d, buf, size, &err);
	d->fork = false;
}

int vdrv_fuzz_load(uint8_t *host, size_t host_size, const uint8_t **data,
		   size_t *size)
{
	uint16_t memlen;

	if (*size < 2)
		return -1;
	memcpy(&memlen, *data, 2);
	*data += 2;
	*size -= 2;
	if (memlen > *size)
		memlen = (uint16_t)*size;
	if (memlen > host_size)
		memlen = (uint16_t)host_size;
	memset(host, 0, host_size);
	memcpy(host, *data, memlen);
	*data += memlen;
	*size -= memlen;
	return memlen;
}

void vdrv_fuzz_run(struct vdrv *v, const uint8_t *data, size_t size,
		   unsigned int max, unsigned int nkinds,
		   void (*own)(struct vdrv *v, unsigned int kind,
			       const struct vdrv_fuzz_op *op))
{
	unsigned int n = 0;

	while (size >= sizeof(struct vdrv_fuzz_op) && n++ < max) {
		struct vdrv_fuzz_op op;
		uint8_t buf[8];
		uint32_t len;
		unsigned int kind;

		memcpy(&op, data, sizeof(op));
		data += sizeof(op);
		size -= sizeof(op);
		len = (op.size & 0x80) ? 1u << (op.size & 3) : 4;
		kind = op.kind % nkinds;
		switch (kind) {
		case VDRV_FUZZ_WRITE:
			memcpy(buf, &op.value, 8);
			vdrv_access(v, op.offset & 0x1fff, buf, len, true);
			break;
		case VDRV_FUZZ_READ:
			vdrv_access(v, op.offset & 0x1fff, buf, len, false);
			break;
		case VDRV_FUZZ_POKE:
			memcpy(vdrv_gp(v,
				       (op.offset % (v->vm.mem.size / 8)) * 8,
				       8),
			       &op.value, 8);
			break;
		default:
			own(v, kind, &op);
			break;
		}
	}
}
