/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The transport-independent half of a virtio device: feature negotiation,
 * the status state machine, broken-device handling and snapshots.
 */
#include "virtio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../../lib/log.h"
#include "../../lib/util.h"

/* status bits the driver may set; NEEDS_RESET belongs to the device */
#define VIRTIO_DRIVER_STATUS                                       \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |    \
	 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK | \
	 VIRTIO_CONFIG_S_FAILED)

/* the most config space a 4 KiB MMIO window (config at 0x100) can hold */
#define VIRTIO_CONFIG_MAX 0xf00

int virtio_dev_init(struct virtio_dev *d, const struct virtio_ops *ops,
		    void *priv, const struct guest_mem *mem,
		    struct kiln_error *err)
{
	const char *name = ops->name ? ops->name : "?";

	if (ops->notify == NULL || ops->num_queues == 0 ||
	    ops->num_queues > VIRTIO_MAX_QUEUES ||
	    !util_is_pow2(ops->queue_max_size) ||
	    ops->queue_max_size > VIRTQ_MAX_SIZE ||
	    ops->config_size > VIRTIO_CONFIG_MAX ||
	    (ops->config_size > 0 && ops->config_read == NULL) ||
	    ops->state_size > VIRTIO_DEV_STATE_MAX ||
	    (ops->state_size > 0 &&
	     (ops->save == NULL || ops->restore == NULL)))
		return kiln_error_set(err, EINVAL, "virtio-%s: bad ops table",
				      name);
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->mem = mem;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq_init(&d->queues[i], d, i,
			   i < ops->num_queues ? ops->queue_max_size : 0);
	errno = pthread_mutex_init(&d->lock, NULL);
	if (errno != 0)
		return kiln_error_set(err, errno, "virtio-%s: mutex", name);
	return 0;
}

void virtio_dev_destroy(struct virtio_dev *d)
{
	pthread_mutex_destroy(&d->lock);
}

uint64_t virtio_dev_offered(const struct virtio_dev *d)
{
	return d->ops->features | VIRTIO_CORE_FEATURES;
}

bool virtio_dev_has(const struct virtio_dev *d, unsigned int bit)
{
	return bit < 64 && (d->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
	       (d->driver_features & VIRTIO_BIT(bit));
}

bool virtio_dev_running(const struct virtio_dev *d)
{
	return (d->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(d->status & VIRTIO_CONFIG_S_FAILED) && !d->broken;
}

static void virtio_dev_interrupt(struct virtio_dev *d, uint32_t bits)
{
	if (d->interrupt != NULL)
		d->interrupt(d, bits);
}

bool virtio_dev_notify(struct virtio_dev *d, unsigned int index)
{
	struct virtq *q;
	bool more;

	if (index >= d->ops->num_queues)
		return false;
	q = &d->queues[index];
	if (!virtio_dev_running(d) || !q->ready)
		return false;
	virtq_set_budget(q, q->size);
	d->ops->notify(d, index);
	more = q->starved && virtio_dev_running(d) && q->ready;
	virtq_set_budget(q, VIRTQ_UNLIMITED);
	return more;
}

void virtio_dev_used(struct virtio_dev *d, struct virtq *q)
{
	if (virtq_should_signal(q))
		virtio_dev_interrupt(d, VIRTIO_ISR_VRING);
}

void virtio_dev_config_changed(struct virtio_dev *d)
{
	d->config_generation++;
	if (d->status & VIRTIO_CONFIG_S_DRIVER_OK)
		virtio_dev_interrupt(d, VIRTIO_ISR_CONFIG);
}

void virtio_dev_set_broken(struct virtio_dev *d, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	if (d->broken)
		return;
	d->broken = true;
	d->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (log_ratelimit())
		log_warn("virtio-%s: device needs reset: %s", d->ops->name,
			 why);
	/* section 2.1.2: tell a running driver through a config change */
	if (d->status & VIRTIO_CONFIG_S_DRIVER_OK)
		virtio_dev_interrupt(d, VIRTIO_ISR_CONFIG);
}

void virtio_dev_reset(struct virtio_dev *d)
{
	if (d->ops->reset != NULL)
		d->ops->reset(d);
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq_reset(&d->queues[i]);
	d->driver_features = 0;
	d->status = 0;
	d->broken = false;
}

/* Would FEATURES_OK be accepted for these acked features? */
static bool virtio_features_ok(const struct virtio_dev *d, uint64_t features)
{
	return !(features & ~virtio_dev_offered(d)) &&
	       (features & VIRTIO_BIT(VIRTIO_F_VERSION_1));
}

static enum virtio_status_result
virtio_status_ignored(struct virtio_dev *d, uint32_t status, const char *why)
{
	if (log_ratelimit())
		log_warn("virtio-%s: status 0x%x over 0x%x ignored: %s",
			 d->ops->name, status, d->status, why);
	return VIRTIO_STATUS_IGNORED;
}

enum virtio_status_result virtio_dev_write_status(struct virtio_dev *d,
						  uint32_t status)
{
	uint32_t old = d->status & VIRTIO_DRIVER_STATUS, val, add;
	struct kiln_error err = { 0 };

	/* guest-controlled: any 32-bit value, in any order */
	if (status == 0) {
		virtio_dev_reset(d);
		return VIRTIO_STATUS_RESET;
	}
	if (status & ~(VIRTIO_DRIVER_STATUS | VIRTIO_CONFIG_S_NEEDS_RESET))
		return virtio_status_ignored(d, status, "unknown bits");
	/* drivers write status back read-modify-write: NEEDS_RESET too */
	val = status & VIRTIO_DRIVER_STATUS;
	if ((val & old) != old)
		return virtio_status_ignored(d, status,
					     "bits cleared without a reset");
	add = val & ~old;
	if (add == 0)
		return VIRTIO_STATUS_SET;
	if (old & VIRTIO_CONFIG_S_FAILED)
		return virtio_status_ignored(d, status, "device FAILED");
	if (add & VIRTIO_CONFIG_S_FAILED) {
		/* the driver gave up: stop, keep the rest for the reset */
		d->status |= VIRTIO_CONFIG_S_FAILED;
		return VIRTIO_STATUS_SET;
	}
	if ((add & VIRTIO_CONFIG_S_DRIVER) &&
	    !(val & VIRTIO_CONFIG_S_ACKNOWLEDGE))
		return virtio_status_ignored(d, status,
					     "DRIVER before ACKNOWLEDGE");
	if ((add & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !(val & VIRTIO_CONFIG_S_DRIVER))
		return virtio_status_ignored(d, status,
					     "FEATURES_OK before DRIVER");
	if ((add & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    !(old & VIRTIO_CONFIG_S_FEATURES_OK))
		return virtio_status_ignored(d, status,
					     "DRIVER_OK before FEATURES_OK");
	if ((add & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !virtio_features_ok(d, d->driver_features)) {
		/* section 3.1.1: the driver re-reads status and gives up */
		if (log_ratelimit())
			log_warn("virtio-%s: features 0x%llx refused (offered "
				 "0x%llx, VERSION_1 required)",
				 d->ops->name,
				 (unsigned long long)d->driver_features,
				 (unsigned long long)virtio_dev_offered(d));
		val &= ~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	d->status = (d->status & VIRTIO_CONFIG_S_NEEDS_RESET) | val;
	if (!(add & VIRTIO_CONFIG_S_DRIVER_OK) || d->broken)
		return VIRTIO_STATUS_SET;
	if (d->ops->activate != NULL && d->ops->activate(d, &err) < 0) {
		virtio_dev_set_broken(d, "activate: %s", err.msg);
		return VIRTIO_STATUS_SET;
	}
	return VIRTIO_STATUS_ACTIVATED;
}

bool virtio_dev_write_features(struct virtio_dev *d, unsigned int sel,
			       uint32_t value)
{
	/* guest-controlled: sel and value come from registers */
	if (!(d->status & VIRTIO_CONFIG_S_DRIVER) ||
	    (d->status & VIRTIO_CONFIG_S_FEATURES_OK) || sel > 1) {
		if (log_ratelimit())
			log_warn("virtio-%s: driver features[%u] = 0x%x in "
				 "status 0x%x ignored",
				 d->ops->name, sel, value, d->status);
		return false;
	}
	if (sel == 0)
		d->driver_features = (d->driver_features & ~0xffffffffULL) |
				     value;
	else
		d->driver_features = (d->driver_features & 0xffffffffULL) |
				     ((uint64_t)value << 32);
	return true;
}

bool virtio_dev_queue_config_allowed(const struct virtio_dev *d)
{
	return (d->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
	       !(d->status &
		 (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)) &&
	       !d->broken;
}

int virtio_dev_queue_enable(struct virtio_dev *d, unsigned int index,
			    struct kiln_error *err)
{
	if (index >= d->ops->num_queues)
		return kiln_error_set(err, EINVAL, "no queue %u", index);
	return virtq_enable(&d->queues[index], d->mem,
			    virtio_dev_has(d, VIRTIO_RING_F_EVENT_IDX),
			    virtio_dev_has(d, VIRTIO_RING_F_INDIRECT_DESC),
			    err);
}

void virtio_dev_save(struct virtio_dev *d, struct virtio_dev_state *s,
		     void *dev_state)
{
	/*
	 * The device first: it may finish work in progress (blk answers a
	 * request spread over several turns), which moves its queues.
	 */
	if (d->ops->state_size > 0) {
		memset(dev_state, 0, d->ops->state_size);
		d->ops->save(d, dev_state);
	}
	memset(s, 0, sizeof(*s));
	s->device_id = d->ops->device_id;
	s->num_queues = d->ops->num_queues;
	s->driver_features = d->driver_features;
	s->status = d->status;
	s->config_generation = d->config_generation;
	s->broken = d->broken;
	for (unsigned int i = 0; i < d->ops->num_queues; i++) {
		virtq_save(&d->queues[i], &s->queues[i]);
		if (d->ops->held != NULL && d->queues[i].ready)
			s->queues[i].last_avail -= d->ops->held(d, i);
	}
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != 0)
			return false;
	return true;
}

/* The checks virtio_dev_write_status() makes, on a whole saved status. */
static int virtio_check_status(const struct virtio_dev *d,
			       const struct virtio_dev_state *s,
			       struct kiln_error *err)
{
	uint32_t st = s->status;

	if (st & ~(VIRTIO_DRIVER_STATUS | VIRTIO_CONFIG_S_NEEDS_RESET))
		return kiln_error_set(err, EINVAL, "status 0x%x: unknown bits",
				      st);
	if (!!(st & VIRTIO_CONFIG_S_NEEDS_RESET) != !!s->broken)
		return kiln_error_set(err, EINVAL,
				      "status 0x%x does not match broken %u",
				      st, s->broken);
	if (((st & VIRTIO_CONFIG_S_DRIVER) &&
	     !(st & VIRTIO_CONFIG_S_ACKNOWLEDGE)) ||
	    ((st & VIRTIO_CONFIG_S_FEATURES_OK) &&
	     !(st & VIRTIO_CONFIG_S_DRIVER)) ||
	    ((st & VIRTIO_CONFIG_S_DRIVER_OK) &&
	     !(st & VIRTIO_CONFIG_S_FEATURES_OK)))
		return kiln_error_set(err, EINVAL,
				      "status 0x%x: impossible order", st);
	if ((st & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !virtio_features_ok(d, s->driver_features))
		return kiln_error_set(err, EINVAL,
				      "features 0x%llx were never offered",
				      (unsigned long long)s->driver_features);
	return 0;
}

int virtio_dev_restore(struct virtio_dev *d, const struct virtio_dev_state *s,
		       const void *dev_state, struct kiln_error *err)
{
	const struct virtio_ops *ops = d->ops;
	struct virtq qs[VIRTIO_MAX_QUEUES];
	struct kiln_error aerr = { 0 };
	bool features_ok, event_idx, indirect;

	/* a snapshot file is untrusted: check everything, then commit */
	if (s->device_id != ops->device_id || s->num_queues != ops->num_queues)
		return kiln_error_set(err, EINVAL,
				      "virtio-%s: state of device %u with %u "
				      "queues",
				      ops->name, s->device_id, s->num_queues);
	if (!all_zero(s->pad, sizeof(s->pad)) || s->broken > 1)
		return kiln_error_set(err, EINVAL, "virtio-%s: bad state",
				      ops->name);
	/* a fork's device first takes the features its template offered */
	if (d->fork && ops->fork_adopt != NULL &&
	    ops->fork_adopt(d, dev_state, err) < 0)
		return kiln_error_wrap(err, "virtio-%s", ops->name);
	if (virtio_check_status(d, s, err) < 0)
		return kiln_error_wrap(err, "virtio-%s", ops->name);
	features_ok = s->status & VIRTIO_CONFIG_S_FEATURES_OK;
	event_idx = features_ok &&
		    (s->driver_features & VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX));
	indirect = features_ok && (s->driver_features &
				   VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC));
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		const struct virtq_state *qs_in = &s->queues[i];

		if (i >= ops->num_queues) {
			if (!all_zero(qs_in, sizeof(*qs_in)))
				return kiln_error_set(err, EINVAL,
						      "virtio-%s: state for "
						      "queue %u",
						      ops->name, i);
			continue;
		}
		qs[i] = d->queues[i];
		if (virtq_restore(&qs[i], qs_in, d->mem, err) < 0)
			return kiln_error_wrap(err, "virtio-%s", ops->name);
		if (qs[i].ready &&
		    (!features_ok || qs[i].event_idx != event_idx ||
		     qs[i].indirect != indirect ||
		     (qs[i].broken && !s->broken)))
			return kiln_error_set(err, EINVAL,
					      "virtio-%s: queue %u does not "
					      "match the features",
					      ops->name, i);
	}
	if (ops->state_size > 0 && !(d->fork && ops->fork_adopt != NULL) &&
	    ops->restore(d, dev_state, err) < 0)
		return kiln_error_wrap(err, "virtio-%s", ops->name);

	memcpy(d->queues, qs, ops->num_queues * sizeof(qs[0]));
	d->driver_features = s->driver_features;
	d->status = s->status;
	d->config_generation = s->config_generation;
	d->broken = s->broken;
	if (virtio_dev_running(d) && ops->activate != NULL &&
	    ops->activate(d, &aerr) < 0) {
		virtio_dev_set_broken(d, "activate: %s", aerr.msg);
		return kiln_error_set(err, aerr.errnum,
				      "virtio-%s: activate: %s", ops->name,
				      aerr.msg);
	}
	return 0;
}
