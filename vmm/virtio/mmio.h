/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-mmio transport, version 2 (virtio 1.x section 4.2.2): one
 * 4 KiB register window and one IRQ per device, declared to the guest
 * kernel as virtio_mmio.device=4K@0x<base>:<irq>. Interrupts go through a
 * KVM irqfd, queue notifications through a KVM ioeventfd served by the
 * event loop; without KVM (vm->vm_fd < 0: unit tests, fuzzers) the trap
 * handler serves QueueNotify itself.
 */
#ifndef KILN_VMM_VIRTIO_MMIO_H
#define KILN_VMM_VIRTIO_MMIO_H

#include <stddef.h>
#include <stdint.h>

#include "../../lib/error.h"
#include "../layout.h"
#include "virtio.h"

struct vm;

/* register offsets */
#define VIRTIO_MMIO_MAGIC_VALUE		0x000
#define VIRTIO_MMIO_VERSION		0x004
#define VIRTIO_MMIO_DEVICE_ID		0x008
#define VIRTIO_MMIO_VENDOR_ID		0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES	0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES	0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL		0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX	0x034
#define VIRTIO_MMIO_QUEUE_NUM		0x038
#define VIRTIO_MMIO_QUEUE_READY		0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY	0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS	0x060
#define VIRTIO_MMIO_INTERRUPT_ACK	0x064
#define VIRTIO_MMIO_STATUS		0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW	0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH	0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW	0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH	0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW	0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH	0x0a4
#define VIRTIO_MMIO_SHM_SEL		0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW		0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH	0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW	0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH	0x0bc
#define VIRTIO_MMIO_QUEUE_RESET		0x0c0
#define VIRTIO_MMIO_CONFIG_GENERATION	0x0fc
#define VIRTIO_MMIO_CONFIG		0x100

#define VIRTIO_MMIO_MAGIC     0x74726976 /* "virt" */
#define VIRTIO_MMIO_VERSION_2 2
#define VIRTIO_MMIO_VENDOR    0x4e4c494b /* "KILN" */

#define VIRTIO_MMIO_STATE_MAGIC	  0x4f494d4b /* "KMIO" */
#define VIRTIO_MMIO_STATE_VERSION 1

/*
 * A device's snapshot: this header, then ops->state_size bytes of the
 * device's own state struct. The snapshot file adds its own checksum.
 */
struct virtio_mmio_state {
	uint32_t magic;	  /* VIRTIO_MMIO_STATE_MAGIC */
	uint32_t version; /* VIRTIO_MMIO_STATE_VERSION */
	uint32_t size;	  /* sizeof(this) + dev_state_size */
	uint32_t dev_state_size;
	uint64_t base; /* must match the restoring device's window */
	uint32_t irq;  /* and IRQ: the same devices, same order */
	uint32_t isr;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	uint32_t pad; /* zero */
	struct virtio_dev_state dev;
};

/*
 * Put d on the next free window from LAYOUT_VIRTIO_MMIO with the next IRQ
 * from LAYOUT_VIRTIO_IRQ_BASE, register its trap, declare it on the
 * kernel command line, create its irqfd and notification eventfds. Call
 * from a VMM_DEVICE init, before the vCPUs start. d must be initialised.
 */
int virtio_mmio_add(struct vm *vm, struct virtio_dev *d,
		    struct kiln_error *err);
/*
 * Undo virtio_mmio_add(): ioeventfds, loop entries and fds. The window
 * stays registered (the trap table is fixed once vCPUs ran), so call it
 * only when no vCPU runs any more, as VMM_DEVICE exits are.
 */
void virtio_mmio_del(struct virtio_dev *d);

/*
 * A vhost device's (ops->vhost) queue q: *kick is the eventfd a guest kick
 * signals, *call the irqfd that raises the device's interrupt (-1 without
 * KVM). Both stay the transport's: the device passes them on (a backend
 * gets its own copies over SCM_RIGHTS), never closes them.
 */
int virtio_mmio_vhost_fds(const struct virtio_dev *d, unsigned int q, int *kick,
			  int *call, struct kiln_error *err);

/* Slots: windows from LAYOUT_VIRTIO_MMIO, one per IRQ from the base. */
#define VIRTIO_MMIO_SLOTS (LAYOUT_IRQ_MAX - LAYOUT_VIRTIO_IRQ_BASE + 1)
/*
 * The device in window slot (0, 1, ... in the order devices were added,
 * which the config decides), or NULL. The VMM thread, devices alive.
 */
struct virtio_dev *virtio_mmio_slot_dev(const struct vm *vm, unsigned int slot);
uint64_t virtio_mmio_base(const struct virtio_dev *d);
unsigned int virtio_mmio_irq(const struct virtio_dev *d);

/* Bytes virtio_mmio_save() writes for d. */
size_t virtio_mmio_state_size(const struct virtio_dev *d);
/* With the VM paused; buf holds at least virtio_mmio_state_size(d). */
int virtio_mmio_save(struct virtio_dev *d, void *buf, size_t len,
		     struct kiln_error *err);
/*
 * Load untrusted bytes (any alignment) into a device created like the
 * saved one, before its vCPUs run. Refused, device unchanged, unless len,
 * header, window and every field check out.
 */
int virtio_mmio_restore(struct virtio_dev *d, const void *buf, size_t len,
			struct kiln_error *err);

#endif
