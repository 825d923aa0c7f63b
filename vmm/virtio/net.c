/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net (device id 1) over a TAP (tap.h), one device per "--net" /
 * "network-interfaces" entry. Two queues, rx (0) and tx (1); no control
 * queue (no VIRTIO_NET_F_CTRL_VQ: no rx mode, VLAN or MQ commands, the
 * TAP sees every frame anyway).
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
 * delivers it and resumes polling. Frames we must drop are counted.
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
#include "tap.h"
#include "virtio.h"

/* feature bits (virtio 1.x section 5.1.3) */
#define VIRTIO_NET_F_CSUM	0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC	5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_UFO	10
#define VIRTIO_NET_F_HOST_TSO4	11
#define VIRTIO_NET_F_HOST_TSO6	12
#define VIRTIO_NET_F_HOST_UFO	14
#define VIRTIO_NET_F_MRG_RXBUF	15
#define VIRTIO_NET_F_STATUS	16

#define VIRTIO_NET_S_LINK_UP 1

#define NET_RXQ		  0
#define NET_TXQ		  1
#define NET_QUEUE_SIZE	  256
#define NET_HDR_LEN	  TAP_VNET_HDR_LEN
#define NET_NUM_BUFFERS	  10	/* offset of num_buffers in the header */
#define NET_FRAME_MAX	  65562 /* header + the largest (GSO) frame */
#define NET_RX_BATCH	  64	/* frames per TAP wakeup, then yield */
#define NET_STATE_VERSION 1

/* the config space (section 5.1.4): mac, status, max pairs, mtu */
struct net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
} __attribute__((packed));

struct net_held {
	uint16_t head;
	uint32_t len;
};

struct net {
	struct virtio_dev dev; /* first */
	/*
	 * Our own copy of the ops: the offered offloads depend on what this
	 * TAP accepts and MAC on the config, so features vary per device.
	 */
	struct virtio_ops ops;
	struct vm *vm;
	struct tap tap;
	char id[32];
	struct net_config config;
	struct evloop_entry *tap_ev; /* tap.fd in vm->loop, or NULL */
	bool polling;		     /* ... with EPOLLIN */

	/* all below under dev.lock */
	uint32_t rx_len;  /* bytes of the pending frame in rx_buf, 0: none */
	uint32_t rx_done; /* bytes of it already copied to held chains */
	unsigned int rx_nheld;
	uint8_t *rx_nbuf[2]; /* num_buffers bytes in the first held chain */
	struct net_held rx_held[NET_QUEUE_SIZE];

	struct metrics_group *metrics; /* net_<iface id> */

	struct virtq_chain chain;	   /* scratch */
	uint8_t rx_buf[NET_FRAME_MAX + 1]; /* +1: a longer read is too long */
};

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

static void net_poll(struct net *n, bool on)
{
	struct kiln_error err = { 0 };

	if (n->tap_ev == NULL || n->polling == on)
		return;
	/*
	 * Off is edge-triggered: epoll always reports EPOLLERR/EPOLLHUP, and
	 * a TAP whose interface was deleted would otherwise spin the loop.
	 * Called on a vCPU thread too (activate, reset): evloop_mod on the
	 * handle is safe from any thread (evloop.h).
	 */
	if (evloop_mod(&n->vm->loop, n->tap_ev, on ? EPOLLIN : EPOLLET, &err) <
	    0) {
		log_warn("virtio-net %s: %s", n->id, err.msg);
		return;
	}
	n->polling = on;
}

static void net_rx_clear(struct net *n)
{
	n->rx_len = n->rx_done = 0;
	n->rx_nheld = 0;
	n->rx_nbuf[0] = n->rx_nbuf[1] = NULL;
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
static bool net_rx_deliver(struct net *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->queues[NET_RXQ];
	struct virtq_chain *c = &n->chain;
	bool mrg = virtio_dev_has(d, VIRTIO_NET_F_MRG_RXBUF);

	while (n->rx_done < n->rx_len) {
		uint32_t k;

		if (n->rx_nheld == q->size) {
			/*
			 * guest-controlled: buffers so small that the whole
			 * ring holds less than one frame: give what fits and
			 * count it, rather than wait for ever.
			 */
			metrics_inc(n->metrics, NET_M_RX_DROPPED);
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
		if (!mrg && c->write_len < n->rx_len) {
			/* guest-controlled: without MRG_RXBUF one chain must
			 * hold any frame we may receive */
			virtq_push(q, c->head, 0);
			virtio_dev_used(d, q);
			metrics_inc(n->metrics, NET_M_RX_DROPPED);
			net_rx_clear(n);
			return true;
		}
		if (n->rx_nheld == 0) {
			/* guest-controlled: the header sits in the first */
			if (c->write_len < NET_HDR_LEN) {
				virtio_dev_set_broken(d,
						      "rx buffer of %u bytes "
						      "holds no header",
						      c->write_len);
				return false;
			}
			n->rx_nbuf[0] = net_chain_byte(c, NET_NUM_BUFFERS);
			n->rx_nbuf[1] = net_chain_byte(c, NET_NUM_BUFFERS + 1);
		}
		k = (uint32_t)virtq_chain_write(c, 0, n->rx_buf + n->rx_done,
						n->rx_len - n->rx_done);
		n->rx_held[n->rx_nheld++] = (struct net_held){ c->head, k };
		n->rx_done += k;
	}
	/* the little-endian num_buffers, before any used entry is seen */
	*n->rx_nbuf[0] = (uint8_t)n->rx_nheld;
	*n->rx_nbuf[1] = (uint8_t)(n->rx_nheld >> 8);
	/* one publish: the driver must see the whole frame or none of it */
	for (unsigned int i = 0; i < n->rx_nheld; i++)
		virtq_add_used(q, n->rx_held[i].head, n->rx_held[i].len);
	virtq_publish(q);
	virtio_dev_used(d, q);
	if (n->rx_done == n->rx_len) {
		metrics_inc(n->metrics, NET_M_RX_PACKETS);
		metrics_add(n->metrics, NET_M_RX_BYTES,
			    n->rx_len - NET_HDR_LEN);
	}
	net_rx_clear(n);
	return true;
}

/*
 * Move frames from the TAP to the guest: the pending one first, then up
 * to NET_RX_BATCH more. Polling stays on only while buffers remain.
 */
static void net_rx_pump(struct net *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->queues[NET_RXQ];

	if (!virtio_dev_running(d) || !q->ready) {
		net_poll(n, false);
		return;
	}
	if (n->rx_len > 0 && !net_rx_deliver(n)) {
		net_poll(n, false);
		return;
	}
	for (unsigned int i = 0; i < NET_RX_BATCH; i++) {
		ssize_t r = read(n->tap.fd, n->rx_buf, sizeof(n->rx_buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			net_poll(n, true);
			break;
		}
		if (r < 0) {
			/* the interface went away (EBADFD) or worse */
			if (log_ratelimit())
				log_warn("virtio-net %s: read TAP `%s`: %s",
					 n->id, n->tap.name, strerror(errno));
			metrics_inc(n->metrics, NET_M_TAP_READ_FAILS);
			net_poll(n, false);
			break;
		}
		if (r < NET_HDR_LEN || r > NET_FRAME_MAX) {
			metrics_inc(n->metrics, NET_M_RX_DROPPED);
			continue;
		}
		n->rx_len = (uint32_t)r;
		n->rx_done = 0;
		/* without MRG_RXBUF num_buffers is 1 (section 5.1.6.4) */
		n->rx_buf[NET_NUM_BUFFERS] = 1;
		n->rx_buf[NET_NUM_BUFFERS + 1] = 0;
		if (!net_rx_deliver(n)) {
			net_poll(n, false);
			break;
		}
	}
}

/* Event loop: the TAP is readable (or in error). */
static void net_on_tap(void *opaque, uint32_t events)
{
	struct net *n = opaque;

	(void)events;
	virtio_dev_lock(&n->dev);
	net_rx_pump(n);
	virtio_dev_unlock(&n->dev);
}

static void net_tx(struct net *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->queues[NET_TXQ];
	struct virtq_chain *c = &n->chain;

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
			r = writev(n->tap.fd, c->iov, (int)c->nread);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			/* EAGAIN: the TAP queue is full; EINVAL: the
			 * kernel refused the guest's GSO header */
			if (errno != EAGAIN && log_ratelimit())
				log_warn("virtio-net %s: write TAP `%s`: %s",
					 n->id, n->tap.name, strerror(errno));
			if (errno == EAGAIN)
				metrics_inc(n->metrics, NET_M_TX_DROPPED);
			else
				metrics_inc(n->metrics, NET_M_TAP_WRITE_FAILS);
		} else {
			metrics_inc(n->metrics, NET_M_TX_PACKETS);
			metrics_add(n->metrics, NET_M_TX_BYTES,
				    c->read_len - NET_HDR_LEN);
		}
		virtq_push(q, c->head, 0);
		/* now, not after the batch: see "Interrupts" above */
		virtio_dev_used(d, q);
	}
}

static void net_notify(struct virtio_dev *d, unsigned int queue)
{
	struct net *n = d->priv;

	if (queue == NET_RXQ)
		net_rx_pump(n); /* new buffers: the pending frame, polling */
	else
		net_tx(n);
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

	if (tap_set_offload(&n->tap, net_offloads(d), err) < 0)
		return -1;
	net_rx_clear(n);
	net_poll(n, true);
	return 0;
}

static void net_reset(struct virtio_dev *d)
{
	struct net *n = d->priv;

	if (n->rx_len > 0)
		metrics_inc(n->metrics, NET_M_RX_DROPPED);
	net_rx_clear(n);
	net_poll(n, false);
}

static void net_save(struct virtio_dev *d, void *state)
{
	const struct net *n = d->priv;
	struct net_state *s = state;

	memset(s, 0, sizeof(*s));
	s->version = NET_STATE_VERSION;
	memcpy(s->mac, n->config.mac, 6);
	s->has_mac = virtio_dev_offered(d) & VIRTIO_BIT(VIRTIO_NET_F_MAC) ? 1
									  : 0;
	memcpy(s->tap, n->tap.name, IFNAMSIZ);
	s->acked_features = d->driver_features;
}

/* rx chains given part of the pending frame (MRG_RXBUF), not yet used */
static uint16_t net_held(struct virtio_dev *d, unsigned int queue)
{
	const struct net *n = d->priv;

	return queue == NET_RXQ ? (uint16_t)n->rx_nheld : 0;
}

static int net_restore(struct virtio_dev *d, const void *state,
		       struct kiln_error *err)
{
	struct net *n = d->priv;
	const struct net_state *s = state;
	bool has_mac = virtio_dev_offered(d) & VIRTIO_BIT(VIRTIO_NET_F_MAC);

	/* file-controlled */
	if (s->version != NET_STATE_VERSION || s->pad != 0 || s->has_mac > 1)
		return kiln_error_set(err, EINVAL,
				      "net state version %u pad %u has_mac %u, "
				      "want version %u",
				      s->version, s->pad, s->has_mac,
				      NET_STATE_VERSION);
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
			(unsigned long long)s->acked_features, n->tap.name,
			(unsigned long long)virtio_dev_offered(d));
	/* a fork may use another TAP; the guest keeps the MAC it read */
	if (strcmp(s->tap, n->tap.name) != 0)
		log_info("virtio-net %s: restored from TAP `%s` onto `%s`",
			 n->id, s->tap, n->tap.name);
	if (has_mac)
		memcpy(n->config.mac, s->mac, 6);
	if (n->rx_len > 0)
		metrics_inc(n->metrics, NET_M_RX_DROPPED);
	net_rx_clear(n);
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
	evloop_del(&n->vm->loop, n->tap_ev);
	tap_close(&n->tap);
	metrics_unregister(n->metrics);
	free(n);
}

static int net_create(struct vm *vm, const struct vm_net *c, struct net **out,
		      struct kiln_error *err)
{
	struct net *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-net");
	n->vm = vm;
	n->tap.fd = -1;
	snprintf(n->id, sizeof(n->id), "%s", c->id ? c->id : "?");
	if (tap_open(&n->tap, c->tap, err) < 0) {
		kiln_error_wrap(err, "network interface `%s`", n->id);
		free(n);
		return -1;
	}
	n->metrics = metrics_register("net", n->id, metrics_net_defs,
				      NET_M_COUNT, err);
	if (n->metrics == NULL) {
		net_free(n);
		return -1;
	}
	n->ops = net_ops;
	n->ops.features |= net_offload_features(n->tap.offloads);
	if (c->has_mac) {
		n->ops.features |= VIRTIO_BIT(VIRTIO_NET_F_MAC);
		memcpy(n->config.mac, c->mac, 6);
	}
	n->config.status = VIRTIO_NET_S_LINK_UP;
	n->config.max_virtqueue_pairs = 1;
	n->config.mtu = 1500;
	if (virtio_dev_init(&n->dev, &n->ops, n, &vm->mem, err) < 0) {
		net_free(n);
		return -1;
	}
	/* no EPOLLIN until the driver is ready */
	if (vm->loop.epfd >= 0) {
		n->tap_ev = evloop_add(&vm->loop, n->tap.fd, EPOLLET,
				       net_on_tap, n, err);
		if (n->tap_ev == NULL) {
			virtio_dev_destroy(&n->dev);
			net_free(n);
			return -1;
		}
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
