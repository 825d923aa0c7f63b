/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net's own parts, shared by net.c (the device, rx and tx) and
 * net_ctrl.c (the control queue and which queue pairs run).
 *
 * Queue pairs. An interface has max_pairs (1..VM_MAX_NET_QUEUE_PAIRS,
 * the config's queue_pairs) pairs, each with its own queue fd of the
 * TAP: pair i is receiveq i (queue 2i) and transmitq i (queue 2i + 1),
 * fed by and written to TAP queue i. With one pair the device is what it
 * always was: two queues, no control queue, no VIRTIO_NET_F_MQ, state
 * version 1. With more it offers VIRTIO_NET_F_MQ and VIRTIO_NET_F_CTRL_VQ,
 * max_virtqueue_pairs in config space and the control queue last (queue
 * 2 * max_pairs; queue 2 when the driver took CTRL_VQ without MQ, as the
 * spec numbers it). The driver runs curr_pairs of them: 1 after a reset
 * (virtio 1.x 5.1.6.5.5: multiqueue is off until VQ_PAIRS_SET). The
 * TAP queues of the other pairs are detached, so the kernel steers no
 * frame to a queue nobody reads, and their virtqueues are left idle.
 */
#ifndef KILN_VMM_VIRTIO_NET_PRIV_H
#define KILN_VMM_VIRTIO_NET_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "../config.h"
#include "../metrics.h"
#include "../vm.h"
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
#define VIRTIO_NET_F_CTRL_VQ	17
#define VIRTIO_NET_F_MQ		22

#define VIRTIO_NET_S_LINK_UP 1

#define NET_QUEUE_SIZE 256
#define NET_HDR_LEN    TAP_VNET_HDR_LEN
#define NET_FRAME_MAX  65562 /* header + the largest (GSO) frame */
#define NET_MAX_PAIRS  VM_MAX_NET_QUEUE_PAIRS
#define NET_NO_QUEUE   (~0u)

_Static_assert(2 * NET_MAX_PAIRS + 1 <= VIRTIO_MAX_QUEUES, "rx and tx of every "
							   "pair and the "
							   "control queue");

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

struct net;

/* One rx/tx pair and its TAP queue. */
struct net_pair {
	struct net *n;
	unsigned int index;
	struct tap tap;
	struct evloop_entry *tap_ev; /* tap.fd in vm->loop, or NULL */
	bool polling;		     /* ... with EPOLLIN */
	bool detached;		     /* the TAP queue (TUNSETQUEUE) */
	/* net_<iface id>_q<index>, only with several pairs: which queue
	 * carried the traffic, seen from the host */
	struct metrics_group *metrics;

	/* all below under dev.lock */
	uint32_t rx_len;  /* bytes of the pending frame in rx_buf, 0: none */
	uint32_t rx_done; /* bytes of it already copied to held chains */
	unsigned int rx_nheld;
	uint8_t *rx_nbuf[2]; /* num_buffers bytes in the first held chain */
	struct net_held rx_held[NET_QUEUE_SIZE];
	uint8_t rx_buf[NET_FRAME_MAX + 1]; /* +1: a longer read is too long */
};

struct net {
	struct virtio_dev dev; /* first */
	/*
	 * Our own copy of the ops: the offered offloads depend on what this
	 * TAP accepts, MAC and MQ on the config, so features (and with MQ
	 * the number of queues and the state's size) vary per device.
	 */
	struct virtio_ops ops;
	struct vm *vm;
	char id[32];
	struct net_config config;
	unsigned int max_pairs;
	unsigned int curr_pairs; /* under dev.lock: pairs the driver runs */

	struct metrics_group *metrics; /* net_<iface id>: all pairs */

	struct virtq_chain chain; /* scratch of rx and tx, under dev.lock */
	/*
	 * The control queue's own: a command (VQ_PAIRS_SET) pumps rx, which
	 * pops into chain, while the command's chain still waits for its
	 * ack. Under dev.lock.
	 */
	struct virtq_chain ctrl_chain;
	struct net_pair pairs[NET_MAX_PAIRS];
};

/* count into the interface's group and the pair's own */
static inline void net_count(struct net_pair *p, unsigned int i, uint64_t v)
{
	metrics_add(p->n->metrics, i, v);
	metrics_add(p->metrics, i, v);
}

/* net.c */
void net_poll(struct net_pair *p, bool on);
void net_rx_pump(struct net_pair *p);
/* drop the pending frame of p (counted), forget its held chains */
void net_rx_drop(struct net_pair *p);

/* net_ctrl.c */
/* The control queue's index under the negotiated features, or NET_NO_QUEUE. */
unsigned int net_ctrl_queue(const struct net *n);
/* Serve the control queue (lock held). */
void net_ctrl(struct net *n);
/*
 * Use `pairs` pairs (1..max_pairs) from now on: attach their TAP queues
 * and detach the others', which stop polling and drop what they held.
 * Polling the used ones is the caller's. On failure the TAP queues are
 * as before and err says why.
 */
int net_pairs_use(struct net *n, unsigned int pairs, struct kiln_error *err);

#endif
