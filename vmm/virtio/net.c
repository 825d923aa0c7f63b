/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net (device id 1) over a TAP (tap.h), one device per "--net" /
 * "network-interfaces" entry. With one queue pair (the default) two
 * queues, rx (0) and tx (1), and no control queue (no rx mode or VLAN
 * commands: the TAP sees every frame anyway). With queue_pairs > 1 the
 * pairs of a multi-queue TAP and a control queue for
 * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (net_priv.h, net_ctrl.c); what follows
 * holds for each pair.
 *
 * Every buffer starts with the 12-byte virtio_net_hdr_v1 (VIRTIO_F_VERSION_1
 * is mandatory here), which is also the TAP's vnet header, so it passes
 * through untouched both ways and the guest's checksum and segmentation
 * offloads reach the host kernel. We offer only the offloads the TAP
 * accepted when probed and set TUNSETOFFLOAD from what the driver acked.
 *
 * RX: the event loop polls the TAP while the guest has rx buffers. A frame
 * is read into rx_buf, then copied into one chain (or, with MRG_RXBUF,
 * spread over several, num_buffers set in the first). When the ring runs
 * dry the frame stays pending, polling stops (the kernel queues or drops
 * further frames on the TAP's own counters), and the next rx kick
 * delivers it and resumes polling. One turn takes at most NET_RX_BATCH
 * frames; with buffers left it ends polling, whoever ran it (the TAP's
 * callback or a kick), so the rest comes on the loop's next turn: a kick
 * cannot be counted on to come back (net_rx_pump). Frames we must drop
 * are counted.
 *
 * TX: each chain is one frame, header first, handed to the TAP with one
 * writev().
 *
 * Interrupts: the decision (virtio_dev_used, which honours the driver's
 * used_event or NO_INTERRUPT) is taken after every frame, as QEMU does,
 * not once per batch. A TAP write runs the host's whole receive path
 * before it returns (and may let the receiving process run), so a batch
 * can take long; a guest whose TCP waits for tx completions (TCP small
 * queues with Linux's napi_tx) or for the peer's ACKs must hear of the
 * first frame when it asked to, not after the last.
 */
#include <errno.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../device.h"
#include "../metrics.h"
#include "../vm.h"
#include "iov.h"
#include "mmio.h"
#include "net_priv.h"

#define NET_NUM_BUFFERS	     10 /* offset of num_buffers in the header */
#define NET_RX_BATCH	     64 /* frames per TAP wakeup, then yield */
#define NET_STATE_VERSION    1	/* one pair */
#define NET_STATE_VERSION_MQ 2	/* several: struct net_state_mq */

/* All the nets of a VM: the VMM_DEVICE state. */
struct net_set {
	unsigned int count;
	struct net *nets[VM_MAX_NETS];
};

/* The snapshot of a net (Firecracker's persist.rs shape). */
struct net_state {
	uint32_t version; /* NET_STATE_VERSION */
	uint8_t mac[6];
	uint8_t has_mac;    /* 0 or 1 */
	uint8_t pad;	    /* zero */
	char tap[IFNAMSIZ]; /* NUL-terminated */
	uint64_t acked_features;
};

/* With several queue pairs: version NET_STATE_VERSION_MQ. */
struct net_state_mq {
	struct net_state base;
	uint16_t max_pairs;  /* the config's: must match */
	uint16_t curr_pairs; /* the driver's VQ_PAIRS_SET */
	uint32_t pad;	     /* zero */
};

void net_poll(struct net_pair *p, bool on)
{
	struct kiln_error err = { 0 };

	if (p->tap_ev == NULL || p->polling == on)
		return;
	/*
	 * Off is edge-triggered: epoll always reports EPOLLERR/EPOLLHUP, and
	 * a TAP whose interface was deleted (or a detached TAP queue) would
	 * otherwise spin the loop. Called on a vCPU thread too (activate,
	 * reset): evloop_mod on the handle is safe from any thread
	 * (evloop.h).
	 */
	if (evloop_mod(&p->n->vm->loop, p->tap_ev, on ? EPOLLIN : EPOLLET,
		       &err) < 0) {
		log_warn("virtio-net %s: %s", p->n->id, err.msg);
		return;
	}
	p->polling = on;
}

static void net_rx_clear(struct net_pair *p)
{
	p->rx_len = p->rx_done = 0;
	p->rx_nheld = 0;
	p->rx_nbuf[0] = p->rx_nbuf[1] = NULL;
}

void net_rx_drop(struct net_pair *p)
{
	if (p->rx_len > 0)
		net_count(p, NET_M_RX_DROPPED, 1);
	net_rx_clear(p);
}

/* Host pointer to byte off of c's writable part (off < write_len). */
static uint8_t *net_chain_byte(const struct virtq_chain *c, uint32_t off)
{
	for (unsigned int i = c->nread; i < c->nread + c->nwrite; i++) {
		if (off < c->iov[i].iov_len)
			return (uint8_t *)c->iov[i].iov_base + off;
		off -= (uint32_t)c->iov[i].iov_len;
	}
	return NULL;
}

/*
 * Hand the pending frame to the guest. true when it is done with (given
 * or dropped), false when it waits for rx buffers (or the device broke).
 */
static bool net_rx_deliver(struct net_pair *p)
{
	struct net *n = p->n;
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->queues[2 * p->index];
	struct virtq_chain *c = &n->chain;
	bool mrg = virtio_dev_has(d, VIRTIO_NET_F_MRG_RXBUF);

	while (p->rx_done < p->rx_len) {
		uint32_t k;

		if (p->rx_nheld == q->size) {
			/*
			 * guest-controlled: buffers so small that the whole
			 * ring holds less than one frame: give what fits and
			 * count it, rather than wait for ever.
			 */
			net_count(p, NET_M_RX_DROPPED, 1);
			break;
		}
		if (virtq_pop(q, c) != 1)
			return false;
		/* guest-controlled: rx buffers are device-writable only */
		if (c->nread != 0) {
			virtio_dev_set_broken(d,
					      "rx chain with %u readable "
					      "descriptors",
					      c->nread);
			return false;
		}
		if (!mrg && c->write_len < p->rx_len) {
			/* guest-controlled: without MRG_RXBUF one chain must
			 * hold any frame we may receive */
			virtq_push(q, c->head, 0);
			virtio_dev_used(d, q);
			net_count(p, NET_M_RX_DROPPED, 1);
			net_rx_clear(p);
			return true;
		}
		if (p->rx_nheld == 0) {
			/* guest-controlled: the header sits in the first */
			if (c->write_len < NET_HDR_LEN) {
				virtio_dev_set_broken(d,
						      "rx buffer of %u bytes "
						      "holds no header",
						      c->write_len);
				return false;
			}
			p->rx_nbuf[0] = net_chain_byte(c, NET_NUM_BUFFERS);
			p->rx_nbuf[1] = net_chain_byte(c, NET_NUM_BUFFERS + 1);
		}
		k = (uint32_t)virtq_chain_write(c, 0, p->rx_buf + p->rx_done,
						p->rx_len - p->rx_done);
		p->rx_held[p->rx_nheld++] = (struct net_held){ c->head, k };
		p->rx_done += k;
	}
	/* the little-endian num_buffers, before any used entry is seen */
	*p->rx_nbuf[0] = (uint8_t)p->rx_nheld;
	*p->rx_nbuf[1] = (uint8_t)(p->rx_nheld >> 8);
	/* one publish: the driver must see the whole frame or none of it */
	for (unsigned int i = 0; i < p->rx_nheld; i++)
		virtq_add_used(q, p->rx_held[i].head, p->rx_held[i].len);
	virtq_publish(q);
	virtio_dev_used(d, q);
	if (p->rx_done == p->rx_len) {
		net_count(p, NET_M_RX_PACKETS, 1);
		net_count(p, NET_M_RX_BYTES, p->rx_len - NET_HDR_LEN);
	}
	net_rx_clear(p);
	return true;
}

/*
 * Move frames from the pair's TAP queue to its rx queue: the pending one
 * first, then up to NET_RX_BATCH more. Polling stays on only while
 * buffers remain and the driver runs the pair.
 */
void net_rx_pump(struct net_pair *p)
{
	struct virtio_dev *d = &p->n->dev;
	struct virtq *q = &d->queues[2 * p->index];

	if (!virtio_dev_running(d) || !q->ready ||
	    p->index >= p->n->curr_pairs) {
		net_poll(p, false);
		return;
	}
	if (p->rx_len > 0 && !net_rx_deliver(p)) {
		net_poll(p, false);
		return;
	}
	for (unsigned int i = 0;; i++) {
		ssize_t r;

		if (i == NET_RX_BATCH) {
			/*
			 * Batch spent, buffers left: let other fds have the
			 * loop, and come back through EPOLLIN. Not through
			 * the kick that may have brought us here: with
			 * EVENT_IDX the driver kicks again only once we
			 * found the ring empty, and frames may wait on the
			 * TAP while it only adds buffers (a stall for good).
			 */
			net_poll(p, true);
			break;
		}
		r = read(p->tap.fd, p->rx_buf, sizeof(p->rx_buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			net_poll(p, true);
			break;
		}
		if (r < 0) {
			/* the interface went away (EBADFD) or worse */
			if (log_ratelimit())
				log_warn("virtio-net %s: read TAP `%s`: %s",
					 p->n->id, p->tap.name,
					 strerror(errno));
			net_count(p, NET_M_TAP_READ_FAILS, 1);
			net_poll(p, false);
			break;
		}
		if (r < NET_HDR_LEN || r > NET_FRAME_MAX) {
			net_count(p, NET_M_RX_DROPPED, 1);
			continue;
		}
		p->rx_len = (uint32_t)r;
		p->rx_done = 0;
		/* without MRG_RXBUF num_buffers is 1 (section 5.1.6.4) */
		p->rx_buf[NET_NUM_BUFFERS] = 1;
		p->rx_buf[NET_NUM_BUFFERS + 1] = 0;
		if (!net_rx_deliver(p)) {
			net_poll(p, false);
			break;
		}
	}
}

/* Event loop: a TAP queue is readable (or in error). */
static void net_on_tap(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;

	(void)events;
	virtio_dev_lock(&p->n->dev);
	net_rx_pump(p);
	virtio_dev_unlock(&p->n->dev);
}

static void net_tx(struct net_pair *p)
{
	struct virtio_dev *d = &p->n->dev;
	struct virtq *q = &d->queues[2 * p->index + 1];
	struct virtq_chain *c = &p->n->chain;

	while (virtq_pop(q, c) == 1) {
		ssize_t r;

		/* guest-controlled: one readable frame, header included,
		 * at most NET_FRAME_MAX bytes, nothing for us to write */
		if (c->nwrite != 0 || c->read_len < NET_HDR_LEN ||
		    c->read_len > NET_FRAME_MAX) {
			virtio_dev_set_broken(d,
					      "tx chain of %u readable bytes "
					      "and %u writable descriptors",
					      c->read_len, c->nwrite);
			break;
		}
		do
			r = writev(p->tap.fd, c->iov, (int)c->nread);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			/* EAGAIN: the TAP queue is full; EINVAL: the
			 * kernel refused the guest's GSO header */
			if (errno != EAGAIN && log_ratelimit())
				log_warn("virtio-net %s: write TAP `%s`: %s",
					 p->n->id, p->tap.name,
					 strerror(errno));
			if (errno == EAGAIN)
				net_count(p, NET_M_TX_DROPPED, 1);
			else
				net_count(p, NET_M_TAP_WRITE_FAILS, 1);
		} else {
			net_count(p, NET_M_TX_PACKETS, 1);
			net_count(p, NET_M_TX_BYTES, c->read_len - NET_HDR_LEN);
		}
		virtq_push(q, c->head, 0);
		/* now, not after the batch: see "Interrupts" above */
		virtio_dev_used(d, q);
	}
}

static void net_notify(struct virtio_dev *d, unsigned int queue)
{
	struct net *n = d->priv;
	struct net_pair *p;

	if (queue == net_ctrl_queue(n)) {
		net_ctrl(n);
		return;
	}
	/* guest-controlled: a kick of a pair the driver did not enable
	 * (or of queues past the control queue without MQ) is ignored */
	if (queue / 2 >= n->curr_pairs)
		return;
	p = &n->pairs[queue / 2];
	if (queue % 2 == 0)
		net_rx_pump(p); /* new buffers: the pending frame, polling */
	else
		net_tx(p);
}

static void net_config_read(struct virtio_dev *d, uint32_t offset, void *data,
			    uint32_t len)
{
	const struct net *n = d->priv;

	memcpy(data, (const uint8_t *)&n->config + offset, len);
}

static void net_config_write(struct virtio_dev *d, uint32_t offset,
			     const void *data, uint32_t len)
{
	const struct net *n = d->priv;

	(void)data;
	(void)len;
	/* guest-controlled: read-only for a VERSION_1 driver */
	if (log_ratelimit())
		log_warn("virtio-net %s: config write at %u ignored", n->id,
			 offset);
}

static unsigned int net_offloads(const struct virtio_dev *d)
{
	unsigned int f = 0;

	/* the TAP refuses TSO/UFO without CSUM */
	if (!virtio_dev_has(d, VIRTIO_NET_F_GUEST_CSUM))
		return 0;
	f |= TUN_F_CSUM;
	if (virtio_dev_has(d, VIRTIO_NET_F_GUEST_TSO4))
		f |= TUN_F_TSO4;
	if (virtio_dev_has(d, VIRTIO_NET_F_GUEST_TSO6))
		f |= TUN_F_TSO6;
	if (virtio_dev_has(d, VIRTIO_NET_F_GUEST_UFO))
		f |= TUN_F_UFO;
	return f;
}

static int net_activate(struct virtio_dev *d, struct kiln_error *err)
{
	struct net *n = d->priv;

	/* guest-controlled: MQ depends on CTRL_VQ (section 5.1.3.1) */
	if (virtio_dev_has(d, VIRTIO_NET_F_MQ) &&
	    !virtio_dev_has(d, VIRTIO_NET_F_CTRL_VQ))
		return kiln_error_set(err, EINVAL,
				      "VIRTIO_NET_F_MQ acked without "
				      "VIRTIO_NET_F_CTRL_VQ");
	/* the offloads are the TAP's, set through any attached queue:
	 * pair 0's never detaches */
	if (tap_set_offload(&n->pairs[0].tap, net_offloads(d), err) < 0)
		return -1;
	for (unsigned int i = 0; i < n->curr_pairs; i++) {
		net_rx_clear(&n->pairs[i]);
		net_poll(&n->pairs[i], true);
	}
	return 0;
}

static void net_reset(struct virtio_dev *d)
{
	struct net *n = d->priv;
	struct kiln_error err = { 0 };

	for (unsigned int i = 0; i < n->max_pairs; i++) {
		net_rx_drop(&n->pairs[i]);
		net_poll(&n->pairs[i], false);
	}
	/* multiqueue is off again until the next VQ_PAIRS_SET */
	if (net_pairs_use(n, 1, &err) < 0)
		log_warn("virtio-net %s: %s", n->id, err.msg);
}

static void net_save(struct virtio_dev *d, void *state)
{
	const struct net *n = d->priv;
	struct net_state *s = state;

	memset(s, 0, d->ops->state_size);
	s->version = n->max_pairs > 1 ? NET_STATE_VERSION_MQ
				      : NET_STATE_VERSION;
	memcpy(s->mac, n->config.mac, 6);
	s->has_mac = virtio_dev_offered(d) & VIRTIO_BIT(VIRTIO_NET_F_MAC) ? 1
									  : 0;
	memcpy(s->tap, n->pairs[0].tap.name, IFNAMSIZ);
	s->acked_features = d->driver_features;
	if (n->max_pairs > 1) {
		struct net_state_mq *m = state;

		m->max_pairs = (uint16_t)n->max_pairs;
		m->curr_pairs = (uint16_t)n->curr_pairs;
	}
}

/* rx chains given part of a pending frame (MRG_RXBUF), not yet used */
static uint16_t net_held(struct virtio_dev *d, unsigned int queue)
{
	const struct net *n = d->priv;

	if (queue % 2 != 0 || queue / 2 >= n->max_pairs ||
	    queue == net_ctrl_queue(n))
		return 0;
	return (uint16_t)n->pairs[queue / 2].rx_nheld;
}

/* The multi-queue part of a state of version NET_STATE_VERSION_MQ. */
static int net_restore_mq(const struct net *n, const struct net_state_mq *m,
			  struct kiln_error *err)
{
	/* file-controlled */
	if (m->pad != 0 || m->max_pairs != n->max_pairs)
		return kiln_error_set(err, EINVAL,
				      "net state: %u queue pairs in the "
				      "snapshot, %u in the config (pad %u)",
				      m->max_pairs, n->max_pairs, m->pad);
	if (m->curr_pairs < 1 || m->curr_pairs > m->max_pairs ||
	    (m->curr_pairs > 1 &&
	     !(m->base.acked_features & VIRTIO_BIT(VIRTIO_NET_F_MQ))))
		return kiln_error_set(err, EINVAL,
				      "net state: %u of %u queue pairs in use",
				      m->curr_pairs, m->max_pairs);
	return 0;
}

static int net_restore(struct virtio_dev *d, const void *state,
		       struct kiln_error *err)
{
	struct net *n = d->priv;
	const struct net_state *s = state;
	bool has_mac = virtio_dev_offered(d) & VIRTIO_BIT(VIRTIO_NET_F_MAC);
	uint32_t want = n->max_pairs > 1 ? NET_STATE_VERSION_MQ
					 : NET_STATE_VERSION;
	unsigned int pairs = 1;

	/* file-controlled */
	if (s->version != want || s->pad != 0 || s->has_mac > 1)
		return kiln_error_set(err, EINVAL,
				      "net state version %u pad %u has_mac %u, "
				      "want version %u",
				      s->version, s->pad, s->has_mac, want);
	if (memchr(s->tap, '\0', IFNAMSIZ) == NULL)
		return kiln_error_set(err, EINVAL,
				      "net state: TAP name not terminated");
	if (s->has_mac != has_mac)
		return kiln_error_set(err, EINVAL,
				      "net state: MAC %s in the snapshot but "
				      "%s in the config",
				      s->has_mac ? "set" : "unset",
				      has_mac ? "set" : "unset");
	if (s->acked_features & ~virtio_dev_offered(d))
		return kiln_error_set(
			err, EINVAL,
			"net state: features 0x%llx not offered "
			"by TAP `%s` (0x%llx)",
			(unsigned long long)s->acked_features,
			n->pairs[0].tap.name,
			(unsigned long long)virtio_dev_offered(d));
	if (n->max_pairs > 1) {
		const struct net_state_mq *m = state;

		if (net_restore_mq(n, m, err) < 0)
			return -1;
		pairs = m->curr_pairs;
	}
	/* the fork's TAP queues; nothing changed when this fails. No
	 * polling until activate, under the restored queues */
	if (net_pairs_use(n, pairs, err) < 0)
		return kiln_error_wrap(err, "net state");
	/* a fork may use another TAP; the guest keeps the MAC it read */
	if (strcmp(s->tap, n->pairs[0].tap.name) != 0)
		log_info("virtio-net %s: restored from TAP `%s` onto `%s`",
			 n->id, s->tap, n->pairs[0].tap.name);
	if (has_mac)
		memcpy(n->config.mac, s->mac, 6);
	for (unsigned int i = 0; i < n->max_pairs; i++) {
		net_poll(&n->pairs[i], false);
		net_rx_drop(&n->pairs[i]);
	}
	return 0;
}

static const struct virtio_ops net_ops = {
	.name = "net",
	.device_id = VIRTIO_ID_NET,
	.num_queues = 2,
	.queue_max_size = NET_QUEUE_SIZE,
	.features = VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) |
		    VIRTIO_BIT(VIRTIO_NET_F_STATUS),
	.config_size = sizeof(struct net_config),
	.config_read = net_config_read,
	.config_write = net_config_write,
	.activate = net_activate,
	.notify = net_notify,
	.reset = net_reset,
	.state_size = sizeof(struct net_state),
	.save = net_save,
	.held = net_held,
	.restore = net_restore,
};

/* Device bits for what the TAP accepted (tap->offloads, TUN_F_*). */
static uint64_t net_offload_features(unsigned int tun)
{
	uint64_t f = 0;

	if (!(tun & TUN_F_CSUM))
		return 0;
	/* the TAP takes partial checksums and any GSO type from us */
	f |= VIRTIO_BIT(VIRTIO_NET_F_CSUM) |
	     VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM);
	if (tun & TUN_F_TSO4)
		f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
		     VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4);
	if (tun & TUN_F_TSO6)
		f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) |
		     VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6);
	if (tun & TUN_F_UFO)
		f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO) |
		     VIRTIO_BIT(VIRTIO_NET_F_HOST_UFO);
	return f;
}

static void net_free(struct net *n)
{
	for (unsigned int i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		evloop_del(&n->vm->loop, p->tap_ev);
		tap_close(&p->tap);
		metrics_unregister(p->metrics);
	}
	metrics_unregister(n->metrics);
	free(n);
}

/* Pair i: its TAP queue (detached but the first), metrics, loop entry. */
static int net_pair_open(struct net *n, const struct vm_net *c, unsigned int i,
			 struct kiln_error *err)
{
	struct net_pair *p = &n->pairs[i];
	bool mq = n->max_pairs > 1;

	if (tap_open(&p->tap, c->tap, mq, err) < 0)
		return kiln_error_wrap(err, "network interface `%s`", n->id);
	/* until the driver asks for more, frames go to the first queue */
	if (i > 0) {
		if (tap_set_queue(&p->tap, false, err) < 0)
			return kiln_error_wrap(err, "network interface `%s`",
					       n->id);
		p->detached = true;
	}
	if (mq) {
		char id[48];

		snprintf(id, sizeof(id), "%s_q%u", n->id, i);
		p->metrics = metrics_register("net", id, metrics_net_defs,
					      NET_M_COUNT, err);
		if (p->metrics == NULL)
			return -1;
	}
	/* no EPOLLIN until the driver is ready */
	if (n->vm->loop.epfd >= 0) {
		p->tap_ev = evloop_add(&n->vm->loop, p->tap.fd, EPOLLET,
				       net_on_tap, p, err);
		if (p->tap_ev == NULL)
			return -1;
	}
	return 0;
}

static int net_create(struct vm *vm, const struct vm_net *c, struct net **out,
		      struct kiln_error *err)
{
	struct net *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-net");
	n->vm = vm;
	snprintf(n->id, sizeof(n->id), "%s", c->id ? c->id : "?");
	n->max_pairs = c->queue_pairs > 1 ? c->queue_pairs : 1;
	if (n->max_pairs > NET_MAX_PAIRS) {
		kiln_error_set(err, EINVAL,
			       "network interface `%s`: %u queue pairs, at "
			       "most %d",
			       n->id, n->max_pairs, NET_MAX_PAIRS);
		free(n);
		return -1;
	}
	n->curr_pairs = 1;
	for (unsigned int i = 0; i < n->max_pairs; i++) {
		n->pairs[i].n = n;
		n->pairs[i].index = i;
		n->pairs[i].tap.fd = -1;
	}
	n->metrics = metrics_register("net", n->id, metrics_net_defs,
				      NET_M_COUNT, err);
	if (n->metrics == NULL) {
		net_free(n);
		return -1;
	}
	for (unsigned int i = 0; i < n->max_pairs; i++)
		if (net_pair_open(n, c, i, err) < 0) {
			net_free(n);
			return -1;
		}
	n->ops = net_ops;
	n->ops.features |= net_offload_features(n->pairs[0].tap.offloads);
	if (c->has_mac) {
		n->ops.features |= VIRTIO_BIT(VIRTIO_NET_F_MAC);
		memcpy(n->config.mac, c->mac, 6);
	}
	if (n->max_pairs > 1) {
		n->ops.features |= VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) |
				   VIRTIO_BIT(VIRTIO_NET_F_MQ);
		n->ops.num_queues = 2 * n->max_pairs + 1;
		n->ops.state_size = sizeof(struct net_state_mq);
	}
	n->config.status = VIRTIO_NET_S_LINK_UP;
	n->config.max_virtqueue_pairs = (uint16_t)n->max_pairs;
	n->config.mtu = 1500;
	if (virtio_dev_init(&n->dev, &n->ops, n, &vm->mem, err) < 0) {
		net_free(n);
		return -1;
	}
	if (virtio_mmio_add(vm, &n->dev, err) < 0) {
		virtio_dev_destroy(&n->dev);
		net_free(n);
		return -1;
	}
	*out = n;
	return 0;
}

static void net_dev_exit(struct vm *vm, void *state)
{
	struct net_set *s = state;

	(void)vm;
	if (s == NULL)
		return;
	for (unsigned int i = 0; i < s->count; i++) {
		virtio_mmio_del(&s->nets[i]->dev);
		virtio_dev_destroy(&s->nets[i]->dev);
		net_free(s->nets[i]);
	}
	free(s);
}

static int net_dev_init(struct vm *vm, void **state, struct kiln_error *err)
{
	struct net_set *s;

	*state = NULL;
	if (vm->cfg->nnets == 0)
		return 0;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-net");
	for (unsigned int i = 0; i < vm->cfg->nnets && i < VM_MAX_NETS; i++) {
		if (net_create(vm, &vm->cfg->nets[i], &s->nets[i], err) < 0) {
			net_dev_exit(vm, s);
			return -1;
		}
		s->count++;
	}
	*state = s;
	return 0;
}

VMM_DEVICE(virtio_net, DEVICE_LEVEL_VIRTIO, net_dev_init, net_dev_exit);
