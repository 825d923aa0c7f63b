/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-rng (device id 4): one queue of device-writable buffers, each
 * filled from getrandom(). Enabled by the "entropy" config key
 * (Firecracker's PUT /entropy).
 *
 * A request is capped at RNG_MAX_REQUEST bytes whatever the chain's size,
 * so a guest cannot make the VMM spend long on one buffer; the kernel's
 * urandom pool never blocks once the host has booted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../../lib/log.h"
#include "../device.h"
#include "../metrics.h"
#include "../vm.h"
#include "mmio.h"
#include "virtio.h"

#define RNG_QUEUE_SIZE	  256
#define RNG_MAX_REQUEST	  (64 * 1024)
#define RNG_STATE_VERSION 1

struct rng {
	struct virtio_dev dev;	  /* first: the VMM_DEVICE state is &dev */
	uint64_t bytes;		  /* served since boot, under dev.lock */
	struct virtq_chain chain; /* scratch for rng_notify, under dev.lock */
};

/* The snapshot of an rng (Firecracker's persist.rs shape). */
struct rng_state {
	uint32_t version;  /* RNG_STATE_VERSION */
	uint32_t reserved; /* zero */
	uint64_t bytes;
};

/* Fill the writable part of c; returns the bytes written. */
static uint32_t rng_fill(const struct virtq_chain *c)
{
	uint32_t done = 0;

	for (unsigned int i = c->nread;
	     i < c->nread + c->nwrite && done < RNG_MAX_REQUEST; i++) {
		uint8_t *p = c->iov[i].iov_base;
		size_t want = c->iov[i].iov_len, got = 0;

		if (want > RNG_MAX_REQUEST - done)
			want = RNG_MAX_REQUEST - done;
		while (got < want) {
			ssize_t n = getrandom(p + got, want - got, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (log_ratelimit())
					log_warn("virtio-rng: getrandom: %s",
						 strerror(errno));
				return done + (uint32_t)got;
			}
			got += (size_t)n;
		}
		done += (uint32_t)got;
	}
	return done;
}

static void rng_notify(struct virtio_dev *d, unsigned int queue)
{
	struct rng *r = d->priv;
	struct virtq *q = &d->queues[queue];
	bool pushed = false;

	/* a readable descriptor is the driver's mistake: we only write */
	while (virtq_pop(q, &r->chain) == 1) {
		uint32_t n = rng_fill(&r->chain);

		virtq_push(q, r->chain.head, n);
		r->bytes += n;
		metrics_inc(&metrics_entropy, ENTROPY_M_EVENTS);
		metrics_add(&metrics_entropy, ENTROPY_M_BYTES, n);
		pushed = true;
	}
	if (pushed)
		virtio_dev_used(d, q);
}

static void rng_save(struct virtio_dev *d, void *state)
{
	const struct rng *r = d->priv;
	struct rng_state *s = state;

	s->version = RNG_STATE_VERSION;
	s->reserved = 0;
	s->bytes = r->bytes;
}

static int rng_restore(struct virtio_dev *d, const void *state,
		       struct kiln_error *err)
{
	struct rng *r = d->priv;
	const struct rng_state *s = state;

	/* file-controlled */
	if (s->version != RNG_STATE_VERSION || s->reserved != 0)
		return kiln_error_set(err, EINVAL,
				      "rng state version %u reserved %u, want "
				      "version %u reserved 0",
				      s->version, s->reserved,
				      RNG_STATE_VERSION);
	r->bytes = s->bytes;
	return 0;
}

static const struct virtio_ops rng_ops = {
	.name = "rng",
	.device_id = VIRTIO_ID_RNG,
	.num_queues = 1,
	.queue_max_size = RNG_QUEUE_SIZE,
	.features = 0,
	.config_size = 0,
	.notify = rng_notify,
	.state_size = sizeof(struct rng_state),
	.save = rng_save,
	.restore = rng_restore,
};

static int rng_dev_init(struct vm *vm, void **state, struct kiln_error *err)
{
	struct rng *r;

	*state = NULL;
	if (!vm->cfg->entropy)
		return 0;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-rng");
	if (virtio_dev_init(&r->dev, &rng_ops, r, &vm->mem, err) < 0) {
		free(r);
		return -1;
	}
	if (virtio_mmio_add(vm, &r->dev, err) < 0) {
		virtio_dev_destroy(&r->dev);
		free(r);
		return -1;
	}
	*state = &r->dev;
	return 0;
}

static void rng_dev_exit(struct vm *vm, void *state)
{
	struct virtio_dev *d = state;

	(void)vm;
	if (d == NULL)
		return;
	virtio_mmio_del(d);
	virtio_dev_destroy(d);
	free(d->priv);
}

VMM_DEVICE(virtio_rng, DEVICE_LEVEL_VIRTIO, rng_dev_init, rng_dev_exit);
