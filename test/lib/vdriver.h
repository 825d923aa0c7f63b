/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test-side virtio-mmio driver: a struct vm without KVM, the device
 * under test found by name in the device table, register accesses through
 * the trap table as a vCPU makes them, and split rings laid out in guest
 * memory as a guest driver would. Shared by the virtio unit tests and the
 * fuzz harnesses, so that each of them only says what is particular to
 * its device.
 */
#ifndef KILN_TEST_VDRIVER_H
#define KILN_TEST_VDRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../vmm/device.h"
#include "../../vmm/virtio/mmio.h"
#include "../../vmm/vm.h"

#define VDRV_MAX_QUEUES 8

/* Where the driver put one queue's rings, and its own view of them. */
struct vdrv_queue {
	uint64_t desc, avail, used;
	uint16_t size;
	uint16_t next_avail; /* the driver's shadow avail idx */
	uint16_t seen;	     /* used entries consumed */
};

struct vdrv {
	struct vm vm;
	struct vm_config cfg;
	const struct vmm_device *desc;
	void *state;		/* what desc->init gave */
	struct virtio_dev *dev; /* the device under test */
	uint64_t base;		/* its MMIO window */
	bool own_mem;		/* guest memory from guest_mem_init */
	unsigned int nqueues;
	struct vdrv_queue q[VDRV_MAX_QUEUES];
	/* guest memory the handshake zeroes after the reset: the rings */
	uint64_t clear_gpa, clear_len;
};

const struct vmm_device *vdrv_find(const char *name);

/* A VM with no KVM and no event loop (all fds -1), cfg wired in. */
void vdrv_init(struct vdrv *v);
/* Guest memory: allocated (freed by vdrv_destroy) or the caller's. */
int vdrv_mem_alloc(struct vdrv *v, uint64_t size, struct kiln_error *err);
void vdrv_mem_static(struct vdrv *v, void *host, uint64_t size);
/* Guest memory mapped MAP_PRIVATE from fd (taken), as a restore does. */
int vdrv_mem_private(struct vdrv *v, int fd, uint64_t size,
		     struct kiln_error *err);
/* Run the named device's init; v->dev stays for the caller to pick. */
int vdrv_attach(struct vdrv *v, const char *name, struct kiln_error *err);
/* Point the driver at another device's window. */
void vdrv_use(struct vdrv *v, struct virtio_dev *d);
/* Device exit, loop, traps, memory (if ours), command line. */
void vdrv_destroy(struct vdrv *v);

/* Registers: 0xffffffff when the access is nobody's. */
uint32_t vdrv_rd(struct vdrv *v, uint64_t off);
void vdrv_wr(struct vdrv *v, uint64_t off, uint32_t val);
bool vdrv_access(struct vdrv *v, uint64_t off, void *buf, uint32_t len,
		 bool write);
void *vdrv_gp(struct vdrv *v, uint64_t gpa, uint64_t len);

/* Rings of queue q at these guest addresses, size entries. */
void vdrv_queue_at(struct vdrv *v, unsigned int q, uint64_t desc,
		   uint64_t avail, uint64_t used, uint16_t size);
/*
 * What Linux's virtio_mmio + virtio core do at probe: reset (forgetting
 * the driver's ring state and zeroing clear_gpa/clear_len), ACKNOWLEDGE,
 * DRIVER, the feature words, FEATURES_OK, every queue, then DRIVER_OK if
 * asked.
 */
void vdrv_handshake(struct vdrv *v, uint32_t features_lo, uint32_t features_hi,
		    bool driver_ok);

struct virtq_used *vdrv_used(struct vdrv *v, unsigned int q);
/* Descriptor i (mod the queue size) of queue q. */
void vdrv_set_desc(struct vdrv *v, unsigned int q, unsigned int i,
		   uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
/*
 * Append head at the avail idx found in guest memory, no kick: for tests
 * that zero or rewrite the ring behind the driver's back.
 */
void vdrv_publish(struct vdrv *v, unsigned int q, uint16_t head);
/*
 * Append head at the driver's shadow idx, as a real driver does (guest
 * memory may have been scribbled on), and kick.
 */
void vdrv_offer(struct vdrv *v, unsigned int q, uint16_t head);
void vdrv_kick(struct vdrv *v, unsigned int q);
/* The next used entry not yet consumed, if any. */
bool vdrv_used_next(struct vdrv *v, unsigned int q, struct virtq_used_elem *e);

/*
 * Save, xor one byte at (at mod size) with x, restore (may be refused);
 * with the top bit of at set, restore as a fork's device does.
 */
void vdrv_snapshot_flip(struct virtio_dev *d, uint64_t at, uint8_t x);

/* ---- the fuzz input shared by the register-level harnesses ---- */

/* The first op kinds of every such harness; its own follow from here. */
enum vdrv_fuzz_kind {
	VDRV_FUZZ_WRITE, /* register or config write */
	VDRV_FUZZ_READ,	 /* register or config read */
	VDRV_FUZZ_POKE,	 /* the driver writes 8 bytes of guest memory */
	VDRV_FUZZ_OWN,	 /* the harness's first own kind */
};

struct vdrv_fuzz_op {
	uint8_t kind;	 /* mod the harness's number of kinds */
	uint8_t size;	 /* bit 7 set: 1 << (size & 3) bytes, else 4 */
	uint16_t offset; /* in the window (& 0x1fff: some fall outside) */
	uint64_t value;
} __attribute__((packed));

/*
 * Input: uint16_t memory length, that many bytes of guest memory (host
 * is zeroed first), then ops. Returns the memory length, or -1 if the
 * input is too short.
 */
int vdrv_fuzz_load(uint8_t *host, size_t host_size, const uint8_t **data,
		   size_t *size);
/*
 * Run up to max ops: the shared kinds here, the others (kind mod nkinds
 * >= VDRV_FUZZ_OWN) through own.
 */
void vdrv_fuzz_run(struct vdrv *v, const uint8_t *data, size_t size,
		   unsigned int max, unsigned int nkinds,
		   void (*own)(struct vdrv *v, unsigned int kind,
			       const struct vdrv_fuzz_op *op));

#endif
