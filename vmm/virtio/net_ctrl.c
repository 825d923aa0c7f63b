/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net's control queue (virtio 1.x section 5.1.6.5) and the switch
 * between queue pairs (net_priv.h).
 *
 * A command is one chain: the device-readable part holds the class and
 * command bytes and then the command's data; the device-writable part
 * holds the one ack byte, VIRTIO_NET_OK or VIRTIO_NET_ERR. We offer no
 * control feature but VIRTIO_NET_F_MQ, so the only command we carry out
 * is VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET; every other class or command (rx
 * mode, MAC, VLAN, announce, RSS, coalescing: features not offered) is
 * answered VIRTIO_NET_ERR and changes nothing. Commands are carried out
 * before the ack is used: once the driver sees the ack, frames arrive
 * only on the pairs it asked for.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "../../lib/log.h"
#include "iov.h"
#include "net_priv.h"

/* classes and commands (section 5.1.6.5) */
#define VIRTIO_NET_CTRL_MQ		4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0
#define VIRTIO_NET_OK			0
#define VIRTIO_NET_ERR			1

unsigned int net_ctrl_queue(const struct net *n)
{
	const struct virtio_dev *d = &n->dev;

	if (!virtio_dev_has(d, VIRTIO_NET_F_CTRL_VQ))
		return NET_NO_QUEUE;
	/* N = 1 without MQ: the control queue follows the first pair */
	return virtio_dev_has(d, VIRTIO_NET_F_MQ) ? 2 * n->max_pairs : 2;
}

static void pair_queue(struct net_pair *p, bool attach)
{
	struct kiln_error err = { 0 };

	if (p->detached == !attach)
		return;
	if (tap_set_queue(&p->tap, attach, &err) < 0) {
		if (log_ratelimit())
			log_warn("virtio-net %s: %s", p->n->id, err.msg);
		return;
	}
	p->detached = !attach;
}

int net_pairs_use(struct net *n, unsigned int pairs, struct kiln_error *err)
{
	if (pairs < 1 || pairs > n->max_pairs)
		return kiln_error_set(err, EINVAL, "%u queue pairs of %u",
				      pairs, n->max_pairs);
	/* attach first: should one fail, the old set still receives */
	for (unsigned int i = 0; i < pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		if (!p->detached)
			continue;
		if (tap_set_queue(&p->tap, true, err) < 0) {
			for (unsigned int j = n->curr_pairs; j < i; j++)
				pair_queue(&n->pairs[j], false);
			return -1;
		}
		p->detached = false;
	}
	for (unsigned int i = pairs; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		pair_queue(p, false);
		net_poll(p, false);
		net_rx_drop(p);
	}
	n->curr_pairs = pairs;
	return 0;
}

/* One command; the ack. c's readable part is at least 2 bytes. */
static uint8_t net_ctrl_cmd(struct net *n, const struct virtq_chain *c)
{
	struct kiln_error err = { 0 };
	uint8_t hdr[2];
	uint16_t pairs;

	if (!virtq_chain_read(c, 0, hdr, sizeof(hdr)))
		return VIRTIO_NET_ERR;
	if (hdr[0] != VIRTIO_NET_CTRL_MQ ||
	    hdr[1] != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ||
	    !virtio_dev_has(&n->dev, VIRTIO_NET_F_MQ)) {
		if (log_ratelimit())
			log_info("virtio-net %s: control class %u command %u "
				 "not supported",
				 n->id, hdr[0], hdr[1]);
		return VIRTIO_NET_ERR;
	}
	/* guest-controlled: exactly one le16, 1..max_virtqueue_pairs */
	if (c->read_len != sizeof(hdr) + sizeof(pairs) ||
	    !virtq_chain_read(c, sizeof(hdr), &pairs, sizeof(pairs)))
		return VIRTIO_NET_ERR;
	if (pairs < 1 || pairs > n->max_pairs) {
		if (log_ratelimit())
			log_info("virtio-net %s: %u queue pairs asked, %u "
				 "offered",
				 n->id, pairs, n->max_pairs);
		return VIRTIO_NET_ERR;
	}
	if (net_pairs_use(n, pairs, &err) < 0) {
		if (log_ratelimit())
			log_warn("virtio-net %s: %s", n->id, err.msg);
		return VIRTIO_NET_ERR;
	}
	/* rx buffers may wait in the pairs just enabled: take what their
	 * TAP queues have and poll them */
	for (unsigned int i = 0; i < pairs; i++)
		if (!n->pairs[i].polling)
			net_rx_pump(&n->pairs[i]);
	return VIRTIO_NET_OK;
}

void net_ctrl(struct net *n)
{
	struct virtio_dev *d = &n->dev;
	unsigned int index = net_ctrl_queue(n);
	struct virtq_chain *c = &n->ctrl_chain;
	struct virtq *q;

	if (index == NET_NO_QUEUE)
		return;
	q = &d->queues[index];
	while (virtio_dev_running(d) && virtq_pop(q, c) == 1) {
		uint8_t ack;

		/* guest-controlled: class and command to read, the ack to
		 * write; without room for the ack there is no answer */
		if (c->nwrite == 0 || c->write_len < 1) {
			virtio_dev_set_broken(d,
					      "control chain with %u writable "
					      "bytes",
					      c->write_len);
			return;
		}
		ack = c->read_len < 2 ? VIRTIO_NET_ERR : net_ctrl_cmd(n, c);
		virtq_chain_write(c, 0, &ack, 1);
		virtq_push(q, c->head, 1);
		virtio_dev_used(d, q);
	}
}
