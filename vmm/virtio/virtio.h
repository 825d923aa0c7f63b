/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device side of virtio 1.x, shared by every device and transport.
 *
 * A device is one file with one static const struct virtio_ops; it embeds
 * a struct virtio_dev in its own struct (kvmtool's virtio/blk.c) and knows
 * nothing of its transport. The transport (mmio.c) owns the registers and
 * calls into the core (status state machine, feature negotiation, queue
 * enable, snapshots) and the ops.
 *
 * Threads and locks. vCPU threads run register accesses (so activate and
 * reset run there); the event-loop thread runs queue notifications and
 * device backends. Both take d->lock, and every ops callback is called
 * with it held. Lock order: d->lock is the outermost lock of a device;
 * under it a device may take its own private locks, never another
 * device's d->lock. The event loop's lock is innermost: evloop_add, _mod
 * and _del may be called from either thread with d->lock held, on the
 * handle evloop_add returned; what a callback may rely on after a delete
 * from another thread is in evloop.h (the loop's threading rule).
 * Interrupt raising (d->interrupt) takes no lock.
 *
 * A misbehaving driver never crashes, hangs or makes the VMM read out of
 * bounds: the device is marked broken (status NEEDS_RESET, a config-change
 * interrupt, one rate-limited log line) and stops until the driver resets.
 */
#ifndef KILN_VMM_VIRTIO_H
#define KILN_VMM_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../lib/error.h"
#include "../memory.h"
#include "queue.h"

/* device ids (virtio 1.x section 5) */
#define VIRTIO_ID_NET	  1
#define VIRTIO_ID_BLOCK	  2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG	  4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_VSOCK	  19
#define VIRTIO_ID_FS	  26

/* device status bits (section 2.1) */
#define VIRTIO_CONFIG_S_ACKNOWLEDGE 0x01
#define VIRTIO_CONFIG_S_DRIVER	    0x02
#define VIRTIO_CONFIG_S_DRIVER_OK   0x04
#define VIRTIO_CONFIG_S_FEATURES_OK 0x08
#define VIRTIO_CONFIG_S_NEEDS_RESET 0x40
#define VIRTIO_CONFIG_S_FAILED	    0x80

/* reserved feature bits (section 6), as bit numbers */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX	    29
#define VIRTIO_F_VERSION_1	    32
#define VIRTIO_BIT(n)		    (1ULL << (n))

/* what every device offers on top of ops->features: queue.c implements it */
#define VIRTIO_CORE_FEATURES                       \
	(VIRTIO_BIT(VIRTIO_F_VERSION_1) |          \
	 VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | \
	 VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX))

/* interrupt causes (the MMIO InterruptStatus / PCI ISR bits) */
#define VIRTIO_ISR_VRING  0x1
#define VIRTIO_ISR_CONFIG 0x2

#define VIRTIO_MAX_QUEUES 8
/* largest device state struct a device may declare (ops->state_size) */
#define VIRTIO_DEV_STATE_MAX 4096

struct virtio_dev;

struct virtio_ops {
	const char *name;	 /* "rng": for log lines */
	uint32_t device_id;	 /* VIRTIO_ID_* */
	unsigned int num_queues; /* 1..VIRTIO_MAX_QUEUES */
	uint16_t queue_max_size; /* power of 2, <= VIRTQ_MAX_SIZE */
	uint64_t features;	 /* device-specific bits offered */
	uint32_t config_size;	 /* bytes of device config space, <= 0xf00 */
	/*
	 * The rings are served by another process (vhost-user): the
	 * transport gives each queue a kick eventfd that KVM's ioeventfd
	 * signals and that it never reads itself, and the interrupt is a
	 * KVM irqfd the backend writes, so InterruptStatus always shows
	 * VIRTIO_ISR_VRING (nobody here sees the backend's interrupts).
	 * ops->notify is then called only without a kick eventfd.
	 */
	bool vhost;

	/*
	 * Config space access: the transport has checked len is 1, 2, 4 or
	 * 8 and offset + len <= config_size. NULL when config_size is 0.
	 */
	void (*config_read)(struct virtio_dev *d, uint32_t offset, void *data,
			    uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t offset,
			     const void *data, uint32_t len);
	/* DRIVER_OK was set; failure marks the device broken. May be NULL. */
	int (*activate)(struct virtio_dev *d, struct kiln_error *err);
	/*
	 * The driver made buffers available in queue (index < num_queues,
	 * the queue is ready, DRIVER_OK set, device not broken). Called on
	 * the event-loop thread, or on a vCPU thread when there is no event
	 * loop (unit tests, fuzzers). Required. A device may drop d->lock
	 * around I/O that can block (blk does, see blk_req.c): it takes
	 * it back before it returns and then trusts none of what it read
	 * before, since a reset may have run meanwhile.
	 */
	void (*notify)(struct virtio_dev *d, unsigned int queue);
	/* The driver reset the device: drop in-flight state. May be NULL. */
	void (*reset)(struct virtio_dev *d);

	/*
	 * Snapshots: the device's own plain fixed-size state struct
	 * (Firecracker's persist.rs). save fills state_size bytes; restore
	 * reads untrusted bytes, validates all of them and changes nothing
	 * when it fails. Required when state_size > 0.
	 */
	size_t state_size;
	void (*save)(struct virtio_dev *d, void *state);
	/*
	 * Snapshots: how many chains of queue the device has popped and
	 * holds unused (rx buffers waiting for data). They are the last
	 * ones popped; the saved ring index is rewound before them, so the
	 * restored device, which holds nothing, pops them again: a restore
	 * drops what the device held, never the guest's buffers. The live
	 * device is not changed. NULL: never holds any.
	 */
	uint16_t (*held)(struct virtio_dev *d, unsigned int queue);
	int (*restore)(struct virtio_dev *d, const void *state,
		       struct kiln_error *err);
	/*
	 * Forks (d->fork): instead of restore. The state is the template's
	 * device: what its guest saw (features, sizes) is taken from it,
	 * what the host holds (files, their mode) stays the fork's own.
	 * Validates all of the state; may change the offered features (the
	 * restore checks the negotiated ones against them next). NULL: the
	 * device restores as usual.
	 */
	int (*fork_adopt)(struct virtio_dev *d, const void *state,
			  struct kiln_error *err);
};

struct virtio_dev {
	const struct virtio_ops *ops;
	void *priv; /* the device's own struct */
	const struct guest_mem *mem;
	pthread_mutex_t lock; /* see the top of this file */

	/* all below under lock */
	uint64_t driver_features; /* acked; negotiated once FEATURES_OK */
	uint32_t status;	  /* VIRTIO_CONFIG_S_* */
	uint32_t config_generation;
	bool broken;
	bool fork; /* being restored from a template's state: fork_adopt */
	struct virtq queues[VIRTIO_MAX_QUEUES];

	/* set by the transport */
	void (*interrupt)(struct virtio_dev *d, uint32_t isr_bits);
	void *transport;
};

/* The snapshot of the transport-independent part of a device. */
struct virtio_dev_state {
	uint32_t device_id;
	uint32_t num_queues;
	uint64_t driver_features;
	uint32_t status;
	uint32_t config_generation;
	uint8_t broken;
	uint8_t pad[7]; /* zero */
	struct virtq_state queues[VIRTIO_MAX_QUEUES];
};

/* Check ops and set d up, status 0. mem must outlive d. */
int virtio_dev_init(struct virtio_dev *d, const struct virtio_ops *ops,
		    void *priv, const struct guest_mem *mem,
		    struct kiln_error *err);
void virtio_dev_destroy(struct virtio_dev *d);

static inline void virtio_dev_lock(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
}

static inline void virtio_dev_unlock(struct virtio_dev *d)
{
	pthread_mutex_unlock(&d->lock);
}

/* Feature bits offered: ops->features | VIRTIO_CORE_FEATURES. */
uint64_t virtio_dev_offered(const struct virtio_dev *d);
/* Negotiated (FEATURES_OK accepted) feature bit number `bit`. */
bool virtio_dev_has(const struct virtio_dev *d, unsigned int bit);
/* DRIVER_OK, not FAILED, not broken: queues may be processed. */
bool virtio_dev_running(const struct virtio_dev *d);

/*
 * Transports call this for a guest kick of queue index (lock held): one
 * batch of ops->notify, at most the queue's size in chains. true when
 * buffers remain: the transport must schedule another batch later (on
 * the event loop, after other work), not loop here.
 */
bool virtio_dev_notify(struct virtio_dev *d, unsigned int index);

/*
 * After pushing used buffers to q: interrupt the driver if it wants one
 * (VIRTIO_RING_F_EVENT_IDX or VIRTQ_AVAIL_F_NO_INTERRUPT). Lock held.
 */
void virtio_dev_used(struct virtio_dev *d, struct virtq *q);
/* The device changed its config space: new generation, interrupt. */
void virtio_dev_config_changed(struct virtio_dev *d);
/*
 * The driver broke the protocol: status NEEDS_RESET, a config-change
 * interrupt when DRIVER_OK, one rate-limited log line; the device does
 * nothing more until it is reset. Lock held.
 */
void virtio_dev_set_broken(struct virtio_dev *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Status 0: ops->reset, all queues and negotiated features cleared. */
void virtio_dev_reset(struct virtio_dev *d);

enum virtio_status_result {
	VIRTIO_STATUS_IGNORED,	 /* wrong state or bad bits: logged */
	VIRTIO_STATUS_SET,	 /* accepted (FEATURES_OK may be refused) */
	VIRTIO_STATUS_RESET,	 /* 0 was written: the device was reset */
	VIRTIO_STATUS_ACTIVATED, /* DRIVER_OK accepted and activate ran */
};

/*
 * A status write by the driver (guest-controlled), with the state machine
 * of section 3.1.1: bits only added in order ACKNOWLEDGE, DRIVER,
 * FEATURES_OK, DRIVER_OK; FEATURES_OK is refused (left clear) when the
 * driver acked features not offered or omitted VIRTIO_F_VERSION_1; 0
 * resets. Lock held.
 */
enum virtio_status_result virtio_dev_write_status(struct virtio_dev *d,
						  uint32_t status);

/*
 * Driver feature writes are accepted only between DRIVER and FEATURES_OK;
 * false (and a log line) otherwise. Lock held.
 */
bool virtio_dev_write_features(struct virtio_dev *d, unsigned int sel,
			       uint32_t value);

/*
 * May the driver configure queues now (FEATURES_OK set, DRIVER_OK not)?
 */
bool virtio_dev_queue_config_allowed(const struct virtio_dev *d);

/* QueueReady = 1: validate and enable queue index. Lock held. */
int virtio_dev_queue_enable(struct virtio_dev *d, unsigned int index,
			    struct kiln_error *err);

/*
 * Snapshots, lock held. restore validates s and the device's dev_state
 * (ops->state_size bytes, untrusted) against d's ops and guest memory and
 * changes nothing when it fails; on success it calls ops->activate again
 * when the state says DRIVER_OK.
 */
void virtio_dev_save(struct virtio_dev *d, struct virtio_dev_state *s,
		     void *dev_state);
int virtio_dev_restore(struct virtio_dev *d, const struct virtio_dev_state *s,
		       const void *dev_state, struct kiln_error *err);

#endif
