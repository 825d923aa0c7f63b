/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshots of a struct vm: the KVM state of the VM and its vCPUs, every
 * device's state, the memory file; and the restore into a VM that
 * vm_restore() builds from the snapshot's config.
 *
 * Threads: everything here runs on the VMM thread (the API's requests are
 * served there, between event-loop callbacks, so no device back-end runs
 * meanwhile). A save needs every vCPU PAUSED: each vCPU thread is parked
 * on its condition variable, outside KVM_RUN, so the vCPU ioctls here
 * cannot race with it (and KVM serialises vCPU ioctls anyway). A restore
 * runs before vcpu_spawn(): no vCPU thread exists yet.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/util.h"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "device.h"
#include "snapshot_seal.h"
#include "virtio/mmio.h"
#include "vm.h"
#include "x86.h"

#define SNAP_IO_CHUNK (1U << 20)
#define SNAP_PAGE     4096U

#define MSR_IA32_TSC_DEADLINE 0x6e0

static const uint8_t snap_zeros[64 * 1024];

/* ---- vCPUs --------------------------------------------------------------- */

/* The MSRs KVM saves and restores (KVM_GET_MSR_INDEX_LIST). */
static int snap_msr_list(int kvm_fd, struct kvm_msr_list **out,
			 struct kiln_error *err)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *l;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) == 0 ||
	    errno != E2BIG)
		return kiln_error_set(err, errno, "KVM_GET_MSR_INDEX_LIST");
	if (probe.nmsrs > SNAP_MAX_MSRS)
		probe.nmsrs = SNAP_MAX_MSRS;
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (l == NULL)
		return kiln_error_set(err, ENOMEM, "MSR list");
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return kiln_error_set(err, errno, "KVM_GET_MSR_INDEX_LIST");
	}
	*out = l;
	return 0;
}

/*
 * Read every MSR of list that this vCPU has into out (room for
 * list->nmsrs): KVM_GET_MSRS stops at the first it refuses, which is
 * skipped. Returns how many were read.
 */
static int snap_get_msrs(int vcpu_fd, const struct kvm_msr_list *list,
			 struct kvm_msr_entry *out, struct kiln_error *err)
{
	cleanup_free struct kvm_msrs *m =
		calloc(1, sizeof(*m) + list->nmsrs * sizeof(m->entries[0]));
	uint32_t n = 0, from = 0;

	if (m == NULL)
		return kiln_error_set(err, ENOMEM, "MSRs");
	while (from < list->nmsrs) {
		int got;

		m->nmsrs = list->nmsrs - from;
		for (uint32_t i = 0; i < m->nmsrs; i++)
			m->entries[i] = (struct kvm_msr_entry){
				.index = list->indices[from + i],
			};
		got = ioctl(vcpu_fd, KVM_GET_MSRS, m);
		if (got < 0)
			return kiln_error_set(err, errno, "KVM_GET_MSRS");
		memcpy(out + n, m->entries, (size_t)got * sizeof(*out));
		n += (uint32_t)got;
		from += (uint32_t)got + 1; /* skip the refused one */
	}
	return (int)n;
}

static int snap_save_vcpu(struct vm *vm, struct vcpu *v,
			  const struct kvm_msr_list *list, bool xsave,
			  bool xcrs, struct snap_writer *w,
			  struct kiln_error *err)
{
	cleanup_free struct kvm_msr_entry *msrs =
		calloc(list->nmsrs + 1, sizeof(*msrs));
	cleanup_free struct snap_vcpu *s = calloc(1, sizeof(*s));
	int fd = v->fd, khz, n;

	if (s == NULL || msrs == NULL)
		return kiln_error_set(err, ENOMEM, "vCPU %u state", v->id);
	s->id = v->id;
	if (ioctl(fd, KVM_GET_MP_STATE, &s->mp_state) < 0)
		return kiln_error_set(err, errno, "KVM_GET_MP_STATE (vCPU %u)",
				      v->id);
	if (ioctl(fd, KVM_GET_REGS, &s->regs) < 0 ||
	    ioctl(fd, KVM_GET_SREGS, &s->sregs) < 0)
		return kiln_error_set(err, errno, "KVM_GET_(S)REGS (vCPU %u)",
				      v->id);
	if (xsave) {
		s->flags |= SNAP_VCPU_XSAVE;
		if (ioctl(fd, KVM_GET_XSAVE, s->xsave) < 0)
			return kiln_error_set(err, errno,
					      "KVM_GET_XSAVE (vCPU %u)", v->id);
		if (xcrs && ioctl(fd, KVM_GET_XCRS, &s->xcrs) < 0)
			return kiln_error_set(err, errno,
					      "KVM_GET_XCRS (vCPU %u)", v->id);
	} else if (ioctl(fd, KVM_GET_FPU, &s->fpu) < 0) {
		return kiln_error_set(err, errno, "KVM_GET_FPU (vCPU %u)",
				      v->id);
	}
	if (ioctl(fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0 ||
	    ioctl(fd, KVM_GET_LAPIC, &s->lapic) < 0 ||
	    ioctl(fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
		return kiln_error_set(err, errno,
				      "KVM_GET_DEBUGREGS/LAPIC/VCPU_EVENTS "
				      "(vCPU %u)",
				      v->id);
	n = snap_get_msrs(fd, list, msrs, err);
	if (n < 0)
		return kiln_error_wrap(err, "vCPU %u", v->id);
	s->nmsrs = (uint32_t)n;
	khz = ioctl(fd, KVM_GET_TSC_KHZ, 0);
	s->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	(void)vm;
	if (snap_add2(w, SNAP_SEC_VCPU, v->id, s, sizeof(*s), msrs,
		      s->nmsrs * sizeof(*msrs)) == NULL)
		return kiln_error_set(err, ENOMEM, "vCPU %u state", v->id);
	return 0;
}

/* KVM_SET_MSRS, skipping (with a warning) what this host's KVM refuses. */
static int snap_set_msrs(int fd, unsigned int id, const void *entries,
			 uint32_t n, struct kiln_error *err)
{
	cleanup_free struct kvm_msrs *m =
		calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	uint32_t from = 0;

	if (m == NULL)
		return kiln_error_set(err, ENOMEM, "MSRs");
	while (from < n) {
		int got;

		m->nmsrs = n - from;
		memcpy(m->entries,
		       (const uint8_t *)entries + from * sizeof(m->entries[0]),
		       m->nmsrs * sizeof(m->entries[0]));
		got = ioctl(fd, KVM_SET_MSRS, m);
		if (got < 0)
			return kiln_error_set(err, errno,
					      "KVM_SET_MSRS (vCPU %u)", id);
		from += (uint32_t)got;
		if (from < n) {
			log_warn("vCPU %u: KVM refuses MSR %#x = %#llx from "
				 "the snapshot: skipped",
				 id, m->entries[got].index,
				 (unsigned long long)m->entries[got].data);
			from++;
		}
	}
	return 0;
}

/*
 * KVM ignores a TSC deadline written while the LAPIC timer is not in
 * TSC-deadline mode, which a new vCPU's is not: with the MSRs set before
 * the LAPIC, the guest's armed timer would be lost and it would sleep for
 * ever. So the deadline goes in again once the LAPIC is restored (QEMU
 * does the same with kvm_put_tscdeadline_msr).
 */
static int snap_set_tsc_deadline(int fd, unsigned int id, const void *entries,
				 uint32_t n, struct kiln_error *err)
{
	_Alignas(16) uint8_t buf[sizeof(struct kvm_msrs) +
				 sizeof(struct kvm_msr_entry)] = { 0 };
	struct kvm_msrs *m = (struct kvm_msrs *)buf;

	m->nmsrs = 1;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(&m->entries[0],
		       (const uint8_t *)entries + i * sizeof(m->entries[0]),
		       sizeof(m->entries[0]));
		if (m->entries[0].index != MSR_IA32_TSC_DEADLINE)
			continue;
		if (ioctl(fd, KVM_SET_MSRS, m) != 1)
			return kiln_error_set(err, errno,
					      "KVM_SET_MSRS TSC deadline "
					      "(vCPU %u)",
					      id);
		return 0;
	}
	return 0;
}

static int snap_restore_vcpu(struct vm *vm, struct vcpu *v,
			     const struct snap_blob *b, struct kiln_error *err)
{
	cleanup_free struct snap_vcpu *s = calloc(1, sizeof(*s));
	const void *msrs;
	int fd = v->fd, khz;

	if (s == NULL)
		return kiln_error_set(err, ENOMEM, "vCPU %u state", v->id);
	if (snap_vcpu_get(b, s, &msrs, err) < 0)
		return -1;
	/* CPUID first: KVM checks MSR and XSAVE state against it */
	if (x86_setup_cpuid(vm->kvm_fd, fd, v->id, vm->vcpu_count, err) < 0)
		return -1;
	khz = ioctl(fd, KVM_GET_TSC_KHZ, 0);
	if (s->tsc_khz != 0 && khz > 0 && (uint32_t)khz != s->tsc_khz &&
	    ioctl(fd, KVM_SET_TSC_KHZ, s->tsc_khz) < 0)
		log_warn("vCPU %u: TSC at %d kHz, saved at %u kHz: the guest's "
			 "clock may drift",
			 v->id, khz, s->tsc_khz);
	/* the order QEMU uses: sregs before MSRs, LAPIC after MP state */
	if (ioctl(fd, KVM_SET_REGS, &s->regs) < 0)
		return kiln_error_set(err, errno, "KVM_SET_REGS (vCPU %u)",
				      v->id);
	if (s->flags & SNAP_VCPU_XSAVE) {
		if (ioctl(fd, KVM_SET_XSAVE, s->xsave) < 0)
			return kiln_error_set(err, errno,
					      "KVM_SET_XSAVE (vCPU %u)", v->id);
		if (s->xcrs.nr_xcrs > 0 &&
		    ioctl(fd, KVM_SET_XCRS, &s->xcrs) < 0)
			return kiln_error_set(err, errno,
					      "KVM_SET_XCRS (vCPU %u)", v->id);
	} else if (ioctl(fd, KVM_SET_FPU, &s->fpu) < 0) {
		return kiln_error_set(err, errno, "KVM_SET_FPU (vCPU %u)",
				      v->id);
	}
	if (ioctl(fd, KVM_SET_SREGS, &s->sregs) < 0)
		return kiln_error_set(err, errno, "KVM_SET_SREGS (vCPU %u)",
				      v->id);
	if (snap_set_msrs(fd, v->id, msrs, s->nmsrs, err) < 0)
		return -1;
	if (ioctl(fd, KVM_SET_MP_STATE, &s->mp_state) < 0)
		return kiln_error_set(err, errno, "KVM_SET_MP_STATE (vCPU %u)",
				      v->id);
	if (ioctl(fd, KVM_SET_LAPIC, &s->lapic) < 0)
		return kiln_error_set(err, errno, "KVM_SET_LAPIC (vCPU %u)",
				      v->id);
	if (snap_set_tsc_deadline(fd, v->id, msrs, s->nmsrs, err) < 0)
		return -1;
	if (ioctl(fd, KVM_SET_VCPU_EVENTS, &s->events) < 0)
		return kiln_error_set(err, errno,
				      "KVM_SET_VCPU_EVENTS (vCPU %u)", v->id);
	if (ioctl(fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0)
		return kiln_error_set(err, errno, "KVM_SET_DEBUGREGS (vCPU %u)",
				      v->id);
	return 0;
}

/* ---- the VM -------------------------------------------------------------- */

static int snap_save_vm(struct vm *vm, struct snap_vm *s,
			struct kiln_error *err)
{
	memset(s, 0, sizeof(*s));
	s->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	s->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->pic_master) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->pic_slave) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->ioapic) < 0)
		return kiln_error_set(err, errno, "KVM_GET_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &s->pit) < 0)
		return kiln_error_set(err, errno, "KVM_GET_PIT2");
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &s->clock) < 0)
		return kiln_error_set(err, errno, "KVM_GET_CLOCK");
	return 0;
}

static int snap_restore_vm(struct vm *vm, const struct snap_vm *in,
			   struct kiln_error *err)
{
	struct snap_vm s = *in;

	/* file-controlled: KVM checks the contents; we check which chip */
	if (s.pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER ||
	    s.pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
	    s.ioapic.chip_id != KVM_IRQCHIP_IOAPIC)
		return kiln_error_set(err, EINVAL,
				      "snapshot irqchip ids %u %u %u",
				      s.pic_master.chip_id, s.pic_slave.chip_id,
				      s.ioapic.chip_id);
	/* only the clock value is ours to set: the flags say what KVM has */
	s.clock.flags = 0;
	memset(s.clock.pad, 0, sizeof(s.clock.pad));
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &s.clock) < 0)
		return kiln_error_set(err, errno, "KVM_SET_CLOCK");
	if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &s.pic_master) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &s.pic_slave) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &s.ioapic) < 0)
		return kiln_error_set(err, errno, "KVM_SET_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &s.pit) < 0)
		return kiln_error_set(err, errno, "KVM_SET_PIT2");
	return 0;
}

/* ---- devices ------------------------------------------------------------- */

static int snap_save_devices(struct vm *vm, struct snap_writer *w,
			     struct kiln_error *err)
{
	uint32_t n = 0;

	for (unsigned int i = 0; i < vm->ndevices; i++) {
		const struct vm_device_state *d = &vm->devices[i];
		char name[SNAP_NAME_LEN] = { 0 };
		size_t size;
		uint8_t *p;

		if (d->desc->snap == NULL || d->state == NULL ||
		    (size = d->desc->snap->size(d->state)) == 0)
			continue;
		strncpy(name, d->desc->name, sizeof(name) - 1);
		p = snap_add2(w, SNAP_SEC_DEVICE, n++, name, sizeof(name), NULL,
			      size);
		if (p == NULL)
			return kiln_error_set(err, ENOMEM, "device state");
		if (d->desc->snap->save(d->state, p + SNAP_NAME_LEN, size,
					err) < 0)
			return kiln_error_wrap(err, "device %s", d->desc->name);
	}
	for (unsigned int slot = 0; slot < VIRTIO_MMIO_SLOTS; slot++) {
		struct virtio_dev *d = virtio_mmio_slot_dev(vm, slot);
		size_t size;
		void *p;

		if (d == NULL)
			continue;
		size = virtio_mmio_state_size(d);
		p = snap_add(w, SNAP_SEC_VIRTIO, slot, NULL, size);
		if (p == NULL)
			return kiln_error_set(err, ENOMEM, "device state");
		if (virtio_mmio_save(d, p, size, err) < 0)
			return -1;
	}
	return 0;
}

/* Every device the restored VM has must match one saved, in order. */
static int snap_restore_devices(struct vm *vm, const struct snap_image *img,
				struct kiln_error *err)
{
	unsigned int n = 0, nv = 0;

	for (unsigned int i = 0; i < vm->ndevices; i++) {
		const struct vm_device_state *d = &vm->devices[i];
		const struct snap_blob *b;
		char name[SNAP_NAME_LEN];

		if (d->desc->snap == NULL || d->state == NULL ||
		    d->desc->snap->size(d->state) == 0)
			continue;
		if (n >= img->ndevices)
			return kiln_error_set(err, EINVAL,
					      "the snapshot has no state for "
					      "device %s",
					      d->desc->name);
		b = &img->devices[n++];
		memcpy(name, b->data, sizeof(name));
		if (strcmp(name, d->desc->name) != 0)
			return kiln_error_set(err, EINVAL,
					      "snapshot device %u is `%.*s`, "
					      "this VM's is %s",
					      n - 1, SNAP_NAME_LEN, name,
					      d->desc->name);
		if (d->desc->snap->restore(
			    d->state, (const uint8_t *)b->data + SNAP_NAME_LEN,
			    b->size - SNAP_NAME_LEN, err) < 0)
			return kiln_error_wrap(err, "device %s", d->desc->name);
	}
	if (n != img->ndevices)
		return kiln_error_set(err, EINVAL,
				      "the snapshot has %u legacy device "
				      "states, this VM %u",
				      img->ndevices, n);
	for (unsigned int slot = 0; slot < VIRTIO_MMIO_SLOTS; slot++) {
		struct virtio_dev *d = virtio_mmio_slot_dev(vm, slot);
		const struct snap_blob *b;

		if (d == NULL)
			continue;
		if (nv >= img->nvirtio || img->virtio[nv].index != slot)
			return kiln_error_set(err, EINVAL,
					      "the snapshot has no state for "
					      "virtio-%s in slot %u",
					      d->ops->name, slot);
		b = &img->virtio[nv++];
		d->fork = vm->fork;
		if (virtio_mmio_restore(d, b->data, b->size, err) < 0)
			return -1;
	}
	if (nv != img->nvirtio)
		return kiln_error_set(err, EINVAL,
				      "the snapshot has %u virtio devices, "
				      "this VM %u",
				      img->nvirtio, nv);
	return 0;
}

int snapshot_restore_state(struct vm *vm, const struct snap_image *img,
			   struct kiln_error *err)
{
	if (img->nvcpus != vm->vcpu_count)
		return kiln_error_set(err, EINVAL,
				      "snapshot of %u vCPUs into a VM of %u",
				      img->nvcpus, vm->vcpu_count);
	if (snap_restore_vm(vm, &img->vm, err) < 0 ||
	    snap_restore_devices(vm, img, err) < 0)
		return kiln_error_wrap(err, "restore");
	for (unsigned int i = 0; i < vm->vcpu_count; i++)
		if (snap_restore_vcpu(vm, &vm->vcpus[i], &img->vcpus[i], err) <
		    0)
			return kiln_error_wrap(err, "restore");
	return 0;
}

/* ---- files --------------------------------------------------------------- */

static uint32_t snap_crc_zeros(uint32_t c, uint64_t len)
{
	while (len > 0) {
		size_t n = len < sizeof(snap_zeros) ? len : sizeof(snap_zeros);

		c = snap_crc32c(c, snap_zeros, n);
		len -= n;
	}
	return c;
}

static bool page_zero(const uint8_t *p)
{
	return memcmp(p, snap_zeros, SNAP_PAGE) == 0;
}

/*
 * [off, end) of RAM into fd, zero pages left as holes; CRC over all. fd -1:
 * the CRC alone.
 */
static int snap_write_range(const struct guest_mem *m, int fd, uint64_t off,
			    uint64_t end, uint32_t *crc)
{
	while (off < end) {
		uint64_t run = off;

		*crc = snap_crc32c(*crc, m->host + off, SNAP_PAGE);
		if (page_zero(m->host + off)) {
			off += SNAP_PAGE;
			continue;
		}
		for (off += SNAP_PAGE; off < end && off - run < SNAP_IO_CHUNK &&
				       !page_zero(m->host + off);
		     off += SNAP_PAGE)
			*crc = snap_crc32c(*crc, m->host + off, SNAP_PAGE);
		if (fd >= 0 &&
		    util_pwrite_all(fd, m->host + run, off - run, run) < 0)
			return -1;
	}
	return 0;
}

static bool page_dirty(const struct guest_mem *m, uint64_t off)
{
	uint64_t pg = off / SNAP_PAGE;

	return __atomic_load_n(&m->dirty[pg / 64], __ATOMIC_RELAXED) &
	       (1ULL << (pg % 64));
}

/*
 * The pages m->dirty names into fd, at their offsets, zero ones too: in a
 * diff a hole means "as in the base", not "zero".
 */
static int snap_write_dirty(const struct guest_mem *m, int fd)
{
	uint64_t off = 0;

	while (off < m->size) {
		uint64_t run;

		if (!page_dirty(m, off)) {
			off += SNAP_PAGE;
			continue;
		}
		for (run = off; off < m->size && off - run < SNAP_IO_CHUNK &&
				page_dirty(m, off);
		     off += SNAP_PAGE)
			;
		if (util_pwrite_all(fd, m->host + run, off - run, run) < 0)
			return -1;
	}
	return 0;
}

/*
 * The memory file: all of RAM (sparse), or (diff) the dirty pages alone.
 * *crc is over all of RAM either way: a diff merged onto its base is the
 * RAM the state file describes.
 */
static int snap_write_memory(const struct guest_mem *m, const char *path,
			     bool diff, uint32_t *crc, struct kiln_error *err)
{
	cleanup_close int fd = -1;
	uint64_t off = 0, size = m->size;
	uint32_t c = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return kiln_error_set(err, errno, "create memory file `%s`",
				      path);
	if (ftruncate(fd, (off_t)size) < 0)
		return kiln_error_set(err, errno, "size memory file `%s`",
				      path);
	while (off < size) {
		uint64_t data = off, hole = size;

		/*
		 * A memfd's holes are pages the guest never touched: skip
		 * them without reading through the mapping, which would
		 * allocate them. A private or anonymous mapping has no
		 * such map.
		 */
		if (m->fd >= 0 && !m->private_map) {
			off_t d = lseek(m->fd, (off_t)off, SEEK_DATA);
			off_t h;

			data = d < 0 ? size : (uint64_t)d;
			if (data > size)
				data = size;
			h = data < size ? lseek(m->fd, (off_t)data, SEEK_HOLE)
					: (off_t)size;
			hole = h < 0 || (uint64_t)h > size ? size : (uint64_t)h;
		}
		c = snap_crc_zeros(c, data - off);
		if (snap_write_range(m, diff ? -1 : fd, data, hole, &c) < 0)
			return kiln_error_set(err, errno,
					      "write memory file `%s`", path);
		off = hole;
	}
	if (diff && snap_write_dirty(m, fd) < 0)
		return kiln_error_set(err, errno, "write memory file `%s`",
				      path);
	if (fsync(fd) < 0 || close(steal_fd(&fd)) < 0)
		return kiln_error_set(err, errno, "write memory file `%s`",
				      path);
	*crc = c;
	return 0;
}

static int snap_write_file(const char *path, const uint8_t *buf, size_t len,
			   struct kiln_error *err)
{
	cleanup_free char *tmp = NULL;
	cleanup_close int fd = -1;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return kiln_error_set(err, ENOMEM, "state file name");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return kiln_error_set(err, errno, "create state file `%s`",
				      tmp);
	if (util_pwrite_all(fd, buf, len, 0) < 0 || fsync(fd) < 0 ||
	    close(steal_fd(&fd)) < 0) {
		kiln_error_set(err, errno, "write state file `%s`", tmp);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		kiln_error_set(err, errno, "rename `%s` to `%s`", tmp, path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* The RAM sealed into path: every chunk, holes too (they read as zeros). */
static int snap_write_sealed_memory(const struct guest_mem *m,
				    const struct seal_key *key,
				    const uint8_t id[SEAL_ID_LEN],
				    const char *path, struct kiln_error *err)
{
	cleanup_close int fd = -1;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return kiln_error_set(err, errno, "create memory file `%s`",
				      path);
	if (seal_memory_write(key, id, m->host, m->size,
			      m->private_map ? -1 : m->fd, fd, err) < 0)
		return kiln_error_wrap(err, "memory file `%s`", path);
	if (fsync(fd) < 0 || close(steal_fd(&fd)) < 0)
		return kiln_error_set(err, errno, "write memory file `%s`",
				      path);
	return 0;
}

/* Every section of vm's state file but the header: config, VM, vCPUs, devices. */
static int snap_build(struct vm *vm, struct snap_writer *w,
		      struct kiln_error *err)
{
	cleanup_free struct kvm_msr_list *list = NULL;
	cleanup_free char *json = NULL;
	struct snap_vm vs;
	bool xsave, xcrs;

	if (!vm->booted || !vm->paused)
		return kiln_error_set(err, 0,
				      "snapshots are of a paused VM: PATCH "
				      "/vm {\"state\": \"Paused\"} first");
	/* virtiofsd's open files and ring positions are not ours to save */
	if (vm->cfg->nfs > 0)
		return kiln_error_set(err, ENOTSUP,
				      "snapshots and fork templates of a VM "
				      "with a virtio-fs device (fs `%s`) are "
				      "not supported",
				      vm->cfg->fs[0].id);
	json = vm_config_to_json(vm->cfg);
	if (json == NULL)
		return kiln_error_set(err, ENOMEM, "snapshot config");
	xsave = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
	xcrs = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
	if (snap_msr_list(vm->kvm_fd, &list, err) < 0 ||
	    snap_save_vm(vm, &vs, err) < 0)
		return -1;
	if (snap_add(w, SNAP_SEC_CONFIG, 0, json, strlen(json)) == NULL ||
	    snap_add(w, SNAP_SEC_VM, 0, &vs, sizeof(vs)) == NULL)
		return kiln_error_set(err, ENOMEM, "snapshot state");
	for (unsigned int i = 0; i < vm->vcpu_count; i++)
		if (snap_save_vcpu(vm, &vm->vcpus[i], list, xsave, xcrs, w,
				   err) < 0)
			return -1;
	/* devices before memory: a device may finish work into RAM */
	return snap_save_devices(vm, w, err);
}

int snapshot_state(struct vm *vm, uint8_t **out, size_t *outlen,
		   struct kiln_error *err)
{
	struct snap_writer w = { 0 };
	int ret = -1;

	if (snap_build(vm, &w, err) == 0 &&
	    snap_finish(&w, vm->vcpu_count, vm->mem.size, 0, out, outlen,
			err) == 0)
		ret = 0;
	snap_writer_destroy(&w);
	return ret;
}

/* How many pages were written since the last snapshot. */
static uint64_t snap_count_dirty(const struct guest_mem *m)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < (m->size / SNAP_PAGE + 63) / 64; w++)
		n += (uint64_t)__builtin_popcountll(
			__atomic_load_n(&m->dirty[w], __ATOMIC_RELAXED));
	return n;
}

int snapshot_create(struct vm *vm, const char *state_path, const char *mem_path,
		    const struct seal_key *key, bool diff,
		    struct kiln_error *err)
{
	uint8_t id[SEAL_ID_LEN];
	cleanup_free uint8_t *sealed = NULL;
	struct snap_writer w = { 0 };
	cleanup_free uint8_t *out = NULL;
	uint32_t mem_crc = 0;
	size_t outlen = 0;
	int ret = -1;

	if (diff && key != NULL) {
		kiln_error_set(err, 0, "a diff snapshot cannot be sealed");
		goto out;
	}
	/* the guest's writes up to the pause, the devices' as they finish */
	if (snap_build(vm, &w, err) < 0 ||
	    ((diff || vm->mem.dirty != NULL) && vm_collect_dirty(vm, err) < 0))
		goto out;
	if (key == NULL) {
		if (snap_write_memory(&vm->mem, mem_path, diff, &mem_crc, err) <
			    0 ||
		    snap_finish(&w, vm->vcpu_count, vm->mem.size, mem_crc, &out,
				&outlen, err) < 0 ||
		    snap_write_file(state_path, out, outlen, err) < 0)
			goto out;
	} else {
		/* sealed: the AEAD vouches for memory, no CRC to compute */
		if (seal_new_id(id, err) < 0 ||
		    snap_write_sealed_memory(&vm->mem, key, id, mem_path, err) <
			    0 ||
		    snap_finish(&w, vm->vcpu_count, vm->mem.size, 0, &out,
				&outlen, err) < 0 ||
		    seal_state(key, id, out, outlen, &sealed, &outlen, err) <
			    0 ||
		    snap_write_file(state_path, sealed, outlen, err) < 0)
			goto out;
	}
	if (diff)
		log_info("diff snapshot: %zu bytes of state in `%s`, %llu "
			 "pages written since the last snapshot in `%s`",
			 outlen, state_path,
			 (unsigned long long)snap_count_dirty(&vm->mem),
			 mem_path);
	else
		log_info("snapshot%s: %zu bytes of state in `%s`, %llu MiB "
			 "of memory in `%s`",
			 key != NULL ? " (sealed)" : "", outlen, state_path,
			 (unsigned long long)(vm->mem.size >> 20), mem_path);
	/* the next diff starts here */
	for (uint64_t i = 0;
	     vm->mem.dirty != NULL && i < (vm->mem.size / SNAP_PAGE + 63) / 64;
	     i++)
		__atomic_store_n(&vm->mem.dirty[i], 0, __ATOMIC_RELAXED);
	ret = 0;
out:
	snap_writer_destroy(&w);
	return ret;
}

int snapshot_rebase(const char *base_path, const char *diff_path,
		    struct kiln_error *err)
{
	cleanup_close int base = -1, diff = -1;
	struct stat bs, ds;
	off_t off = 0;

	diff = open(diff_path, O_RDONLY | O_CLOEXEC);
	if (diff < 0)
		return kiln_error_set(err, errno, "diff memory file `%s`",
				      diff_path);
	base = open(base_path, O_WRONLY | O_CLOEXEC);
	if (base < 0)
		return kiln_error_set(err, errno, "base memory file `%s`",
				      base_path);
	if (fstat(base, &bs) < 0 || fstat(diff, &ds) < 0)
		return kiln_error_set(err, errno, "fstat");
	if (!S_ISREG(bs.st_mode) || !S_ISREG(ds.st_mode) ||
	    bs.st_size != ds.st_size)
		return kiln_error_set(err, EINVAL,
				      "`%s` (%lld bytes) and `%s` (%lld "
				      "bytes): want two regular files of one "
				      "VM's memory size",
				      base_path, (long long)bs.st_size,
				      diff_path, (long long)ds.st_size);
	if (bs.st_dev == ds.st_dev && bs.st_ino == ds.st_ino)
		return kiln_error_set(err, EINVAL,
				      "`%s` and `%s` are the same file: the "
				      "diff goes onto a copy of its base",
				      base_path, diff_path);
	while (off < ds.st_size) {
		off_t data = lseek(diff, off, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0)
			return kiln_error_set(err, errno, "`%s`: SEEK_DATA",
					      diff_path);
		hole = lseek(diff, data, SEEK_HOLE);
		if (hole < 0)
			return kiln_error_set(err, errno, "`%s`: SEEK_HOLE",
					      diff_path);
		for (off = data; off < hole;) {
			loff_t in = off, out = off;
			ssize_t n = copy_file_range(diff, &in, base, &out,
						    (size_t)(hole - off), 0);

			if (n <= 0)
				return kiln_error_set(err, n < 0 ? errno : EIO,
						      "copy `%s` onto `%s`",
						      diff_path, base_path);
			off += n;
		}
	}
	if (fsync(base) < 0 || close(steal_fd(&base)) < 0)
		return kiln_error_set(err, errno, "write `%s`", base_path);
	return 0;
}

int snapshot_read(const char *path, uint8_t **buf, size_t *len,
		  struct kiln_error *err)
{
	/* O_NONBLOCK: a FIFO in the path must not hang the VMM thread */
	cleanup_close int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	cleanup_free uint8_t *p = NULL;
	struct stat st;
	size_t got = 0;

	if (fd < 0)
		return kiln_error_set(err, errno, "open state file `%s`", path);
	if (fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "stat `%s`", path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > SNAP_MAX_FILE)
		return kiln_error_set(err, EINVAL,
				      "state file `%s`: not a regular file of "
				      "at most %llu bytes",
				      path, (unsigned long long)SNAP_MAX_FILE);
	p = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (p == NULL)
		return kiln_error_set(err, ENOMEM, "read `%s`", path);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, p + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kiln_error_set(err, errno, "read `%s`", path);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*buf = steal_ptr(&p);
	*len = got;
	return 0;
}

int snapshot_open_memory(const struct snap_image *img, const char *path,
			 struct kiln_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	cleanup_free uint8_t *buf = NULL;
	uint64_t size = img->hdr.mem_size, off = 0;
	struct stat st;
	uint32_t c = 0;

	if (fd < 0)
		return kiln_error_set(err, errno, "open memory file `%s`",
				      path);
	if (fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "stat `%s`", path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return kiln_error_set(err, EINVAL,
				      "memory file `%s` is %llu bytes, the "
				      "snapshot's VM has %llu",
				      path, (unsigned long long)st.st_size,
				      (unsigned long long)size);
	buf = malloc(SNAP_IO_CHUNK);
	if (buf == NULL)
		return kiln_error_set(err, ENOMEM, "read `%s`", path);
	/* the whole file once: its holes read as zeros, cheaply */
	while (off < size) {
		off_t d = lseek(fd, (off_t)off, SEEK_DATA);
		uint64_t data = d < 0 ? size : (uint64_t)d, end;

		if (data > size)
			data = size;
		c = snap_crc_zeros(c, data - off);
		off = data;
		end = off + SNAP_IO_CHUNK < size ? off + SNAP_IO_CHUNK : size;
		while (off < end) {
			ssize_t n = pread(fd, buf, end - off, (off_t)off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return kiln_error_set(err, n < 0 ? errno : EIO,
						      "read memory file `%s`",
						      path);
			c = snap_crc32c(c, buf, (size_t)n);
			off += (uint64_t)n;
		}
	}
	if (c != img->hdr.mem_crc32c)
		return kiln_error_set(err, EBADMSG,
				      "memory file `%s` does not match the "
				      "snapshot (checksum 0x%08x, want 0x%08x)",
				      path, c, img->hdr.mem_crc32c);
	return steal_fd(&fd);
}

int snapshot_read_state(const char *path, const struct seal_key *key,
			uint8_t **buf, size_t *len, uint8_t id[SEAL_ID_LEN],
			struct kiln_error *err)
{
	cleanup_free uint8_t *raw = NULL;
	size_t rawlen = 0;

	if (snapshot_read(path, &raw, &rawlen, err) < 0)
		return -1;
	if (seal_is_sealed(raw, rawlen) && key == NULL)
		return kiln_error_set(err, EINVAL,
				      "state file `%s` is sealed: load it "
				      "with its `encryption_key_path`",
				      path);
	if (key == NULL) {
		*buf = steal_ptr(&raw);
		*len = rawlen;
		return 0;
	}
	if (!seal_is_sealed(raw, rawlen))
		return kiln_error_set(err, EINVAL,
				      "state file `%s` is not sealed, but a "
				      "key was given",
				      path);
	if (seal_state_open(key, raw, rawlen, buf, len, id, err) < 0)
		return kiln_error_wrap(err, "`%s`", path);
	return 0;
}

int snapshot_open_sealed_memory(const struct snap_image *img, const char *path,
				const struct seal_key *key,
				const uint8_t id[SEAL_ID_LEN],
				struct kiln_error *err)
{
	cleanup_close int in = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	cleanup_close int fd = -1;
	uint64_t size = img->hdr.mem_size;
	void *p;
	int ret;

	if (in < 0)
		return kiln_error_set(err, errno, "open memory file `%s`",
				      path);
	fd = memfd_create("kiln-snapshot-ram", MFD_CLOEXEC);
	if (fd < 0)
		return kiln_error_set(err, errno, "memfd_create");
	if (ftruncate(fd, (off_t)size) < 0)
		return kiln_error_set(err, errno, "size the RAM memfd");
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		 fd, 0);
	if (p == MAP_FAILED)
		return kiln_error_set(err, errno, "map the RAM memfd");
	ret = seal_memory_read(key, id, in, p, size, err);
	munmap(p, size);
	if (ret < 0)
		return kiln_error_wrap(err, "`%s`", path);
	return steal_fd(&fd);
}
