/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock connections: one per (host port, guest port), each with a
 * nonblocking host Unix socket on the event loop (see vsock.c).
 *
 * Flow control, both ways (virtio 1.x 5.10.6.3):
 * - host → guest: bytes are read from the host socket straight into a
 *   guest rx buffer, never more than the guest's credit
 *   peer_buf_alloc - (rx_cnt - peer_fwd_cnt). Without credit (or rx
 *   buffers) the socket is not read and EPOLLIN is not watched, so the
 *   host writer blocks, not us.
 * - guest → host: we advertise buf_alloc = VSOCK_BUF and fwd_cnt = bytes
 *   the host socket took. Data the socket does not take at once waits in
 *   a per-connection ring of VSOCK_BUF bytes, flushed on EPOLLOUT; a guest
 *   that sends beyond its credit overflows nothing: it gets an RST.
 *   CREDIT_UPDATE goes out every VSOCK_CREDIT_THRESHOLD forwarded bytes
 *   (Linux never asks with CREDIT_REQUEST, it waits).
 *
 * Closing: a host EOF becomes SHUTDOWN(SEND) (both flags when the host
 * closed both ways); a guest SHUTDOWN(SEND) becomes shutdown(SHUT_WR)
 * once our ring is flushed; when neither side will send any more, or on
 * any error, the connection is killed: host fd closed, RST to the guest,
 * freed once that RST is in an rx buffer (or the guest's RST arrives).
 *
 * Lookup: every guest packet finds its connection by (host port, guest
 * port) in vs->hash, a keyed hash whose buckets never exceed
 * VSOCK_HASH_CHAIN_MAX (see vsock_priv.h), so a guest that picks colliding
 * ports makes no lookup longer, it only has its own REQUESTs refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/util.h"

#include "../metrics.h"
#include "vsock_priv.h"

_Static_assert((VSOCK_HASH & (VSOCK_HASH - 1)) == 0, "VSOCK_HASH is a power of "
						     "two: the hash is masked");

unsigned int vsock_hash_of(const struct vsock *vs, uint32_t local,
			   uint32_t peer)
{
	uint64_t x = ((uint64_t)local << 32 | peer) ^ vs->hash_key;

	/* murmur3's 64-bit finalizer: each input bit moves each output bit */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (unsigned int)(x & (VSOCK_HASH - 1));
}

/* At most VSOCK_HASH_CHAIN_MAX steps: hash_add keeps buckets that short. */
struct vsock_conn *vsock_conn_find(struct vsock *vs, uint32_t local,
				   uint32_t peer)
{
	struct vsock_conn *c = vs->hash[vsock_hash_of(vs, local, peer)];

	while (c != NULL && (c->local_port != local || c->peer_port != peer))
		c = c->hnext;
	return c;
}

/* May (local, peer) join its bucket? */
static bool hash_room(struct vsock *vs, uint32_t local, uint32_t peer)
{
	const struct vsock_conn *c = vs->hash[vsock_hash_of(vs, local, peer)];
	unsigned int n = 0;

	for (; c != NULL; c = c->hnext)
		if (++n >= VSOCK_HASH_CHAIN_MAX)
			return false;
	return true;
}

/* Only after hash_room() said yes for c's ports. */
static void hash_add(struct vsock_conn *c)
{
	struct vsock_conn **b =
		&c->vs->hash[vsock_hash_of(c->vs, c->local_port, c->peer_port)];

	c->hnext = *b;
	*b = c;
	c->hashed = true;
}

static void hash_del(struct vsock_conn *c)
{
	struct vsock_conn **p =
		&c->vs->hash[vsock_hash_of(c->vs, c->local_port, c->peer_port)];

	while (*p != NULL && *p != c)
		p = &(*p)->hnext;
	if (*p != NULL)
		*p = c->hnext;
	c->hashed = false;
}

uint32_t vsock_credit(const struct vsock_conn *c)
{
	/* guest-controlled: fwd_cnt may run ahead or far behind */
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0
					      : c->peer_buf_alloc - in_flight;
}

/* Host data may be read for the guest now. */
static bool conn_can_read(const struct vsock_conn *c)
{
	return c->state == CONN_CONNECTED && c->readable && !c->host_eof &&
	       !(c->guest_shut & VSOCK_SHUTDOWN_RCV) && vsock_credit(c) > 0;
}

bool vsock_conn_has_work(const struct vsock_conn *c)
{
	return c->pend != 0 || conn_can_read(c);
}

void vsock_pending_add(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;

	if (c->pending || !vsock_conn_has_work(c))
		return;
	c->pending = true;
	c->pnext = NULL;
	if (vs->pend_tail != NULL)
		vs->pend_tail->pnext = c;
	else
		vs->pend_head = c;
	vs->pend_tail = c;
}

static void pending_del(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;
	struct vsock_conn **p = &vs->pend_head, *prev = NULL;

	if (!c->pending)
		return;
	while (*p != NULL && *p != c) {
		prev = *p;
		p = &(*p)->pnext;
	}
	if (*p != NULL)
		*p = c->pnext;
	if (vs->pend_tail == c)
		vs->pend_tail = prev;
	c->pending = false;
}

static void conn_close_fd(struct vsock_conn *c)
{
	if (c->fd < 0)
		return;
	evloop_del(c->vs->loop, c->ev);
	c->ev = NULL;
	close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->buf_len = c->buf_head = 0;
}

void vsock_conn_free(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;

	conn_close_fd(c);
	if (c->hashed)
		hash_del(c);
	if (c->state == CONN_HANDSHAKE)
		vs->nhandshake--;
	pending_del(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		vs->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	vs->nconns--;
	metrics_inc(&metrics_vsock, VSOCK_M_CONNS_REMOVED);
	free(c);
}

void vsock_conn_free_all(struct vsock *vs)
{
	while (vs->conns != NULL)
		vsock_conn_free(vs->conns);
}

void vsock_conn_kill(struct vsock_conn *c)
{
	metrics_inc(&metrics_vsock, VSOCK_M_CONNS_KILLED);
	if (c->state == CONN_HANDSHAKE) {
		vsock_conn_free(c); /* the guest never heard of it */
		return;
	}
	conn_close_fd(c);
	c->state = CONN_KILLED;
	c->pend = PEND_RST;
	vsock_pending_add(c);
}

void vsock_conn_update_events(struct vsock_conn *c)
{
	uint32_t want = 0;

	if (c->ev == NULL)
		return;
	switch (c->state) {
	case CONN_HANDSHAKE:
		want = EPOLLIN;
		break;
	case CONN_CONNECTED:
		if (!c->readable && !c->host_eof &&
		    !(c->guest_shut & VSOCK_SHUTDOWN_RCV))
			want |= EPOLLIN;
		if (c->buf_len > 0)
			want |= EPOLLOUT;
		break;
	default:
		break; /* EPOLLHUP/ERR still come: a client gone */
	}
	if (want != c->events &&
	    evloop_mod(c->vs->loop, c->ev, want, NULL) == 0)
		c->events = want;
}

static struct vsock_conn *conn_new(struct vsock *vs, int fd,
				   enum vsock_conn_state state)
{
	struct vsock_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->vs = vs;
	c->fd = fd;
	c->state = state;
	c->events = state == CONN_HANDSHAKE ? EPOLLIN : 0;
	return c;
}

static void conn_event(void *opaque, uint32_t events);

/* Link c in and put its fd on the loop; false (c freed, fd not) if not. */
static bool conn_link(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;

	if (vs->loop != NULL) {
		c->ev = evloop_add(vs->loop, c->fd, c->events, conn_event, c,
				   NULL);
		if (c->ev == NULL) {
			free(c);
			return false;
		}
	}
	c->next = vs->conns;
	if (vs->conns != NULL)
		vs->conns->prev = c;
	vs->conns = c;
	vs->nconns++;
	metrics_inc(&metrics_vsock, VSOCK_M_CONNS_ADDED);
	return true;
}

static void credit_check(struct vsock_conn *c)
{
	if (c->fwd_cnt - c->last_fwd_sent >= VSOCK_CREDIT_THRESHOLD) {
		c->pend |= PEND_CREDIT;
		vsock_pending_add(c);
	}
}

/* Neither side sends any more: done (after our ring is flushed). */
static void conn_maybe_finish(struct vsock_conn *c)
{
	if (c->state != CONN_CONNECTED || c->buf_len > 0)
		return;
	if ((c->guest_shut & VSOCK_SHUTDOWN_SEND) && !c->shut_wr) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = true;
	}
	if (c->guest_shut == (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND) ||
	    ((c->guest_shut & VSOCK_SHUTDOWN_SEND) && c->host_eof &&
	     !(c->pend & PEND_SHUTDOWN)))
		vsock_conn_kill(c);
}

/* Write what the ring holds; false when the connection was killed. */
static bool conn_flush(struct vsock_conn *c)
{
	while (c->buf_len > 0) {
		uint32_t first = VSOCK_BUF - c->buf_head;
		struct iovec iov[2];
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 1 };
		ssize_t n;

		if (first > c->buf_len)
			first = c->buf_len;
		iov[0] = (struct iovec){ c->buf + c->buf_head, first };
		if (first < c->buf_len) {
			iov[1] = (struct iovec){ c->buf, c->buf_len - first };
			mh.msg_iovlen = 2;
		}
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			metrics_inc(&metrics_vsock, VSOCK_M_TX_WRITE_FAILS);
			vsock_conn_kill(c);
			return false;
		}
		c->buf_head = (c->buf_head + (uint32_t)n) % VSOCK_BUF;
		c->buf_len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (c->buf_len == 0) {
		free(c->buf); /* idle connections hold no ring */
		c->buf = NULL;
		c->buf_head = 0;
	}
	credit_check(c);
	return true;
}

/* Guest payload [HDR, HDR + len) of chain to the host socket. */
static void conn_write(struct vsock_conn *c, const struct virtq_chain *chain,
		       uint32_t len)
{
	struct vsock *vs = c->vs;
	uint32_t done = 0;

	if (c->buf_len == 0) {
		struct msghdr mh = { .msg_iov = vs->iov };
		ssize_t n;

		mh.msg_iovlen = iov_slice(vs->iov, chain->iov, chain->nread,
					  VSOCK_HDR_SIZE, len);
		do
			n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			metrics_inc(&metrics_vsock, VSOCK_M_TX_WRITE_FAILS);
			vsock_conn_kill(c);
			return;
		}
		if (n > 0) {
			done = (uint32_t)n;
			c->fwd_cnt += done;
		}
	}
	if (done < len) {
		unsigned int k;

		if (c->buf == NULL && (c->buf = malloc(VSOCK_BUF)) == NULL) {
			vsock_conn_kill(c);
			return;
		}
		k = iov_slice(vs->iov, chain->iov, chain->nread,
			      VSOCK_HDR_SIZE + done, len - done);
		/* the credit check in vsock_conn_tx keeps this in bounds */
		for (unsigned int i = 0; i < k; i++) {
			const uint8_t *p = vs->iov[i].iov_base;
			size_t l = vs->iov[i].iov_len;

			while (l > 0) {
				uint32_t tail =
					(c->buf_head + c->buf_len) % VSOCK_BUF;
				size_t m = VSOCK_BUF - tail;

				if (m > l)
					m = l;
				memcpy(c->buf + tail, p, m);
				c->buf_len += (uint32_t)m;
				p += m;
				l -= m;
			}
		}
	}
	credit_check(c);
}

/* A packet for c, which is not KILLED; h has passed vsock.c's checks. */
void vsock_conn_tx(struct vsock_conn *c, const struct vsock_hdr *h,
		   const struct virtq_chain *chain)
{
	char ok[32];
	int n;

	/* guest-controlled: the guest's credit, checked when used */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case VSOCK_OP_RST:
		vsock_conn_free(c);
		return;
	case VSOCK_OP_RESPONSE:
		if (c->state != CONN_REQUEST || (c->pend & PEND_REQUEST)) {
			vsock_conn_kill(c);
			return;
		}
		/* a fresh socket always takes these few bytes */
		n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
		if (send(c->fd, ok, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) !=
		    n) {
			vsock_conn_kill(c);
			return;
		}
		c->state = CONN_CONNECTED;
		vsock_conn_update_events(c);
		break;
	case VSOCK_OP_SHUTDOWN:
		if (c->state != CONN_CONNECTED) {
			vsock_conn_kill(c);
			return;
		}
		/* guest-controlled: unknown flag bits ignored */
		c->guest_shut |= h->flags &
				 (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
		conn_maybe_finish(c);
		if (c->state == CONN_CONNECTED)
			vsock_conn_update_events(c);
		break;
	case VSOCK_OP_RW:
		/* guest-controlled: data only while open, within our credit */
		if (c->state != CONN_CONNECTED ||
		    (c->guest_shut & VSOCK_SHUTDOWN_SEND) ||
		    h->len > VSOCK_BUF - c->buf_len) {
			vsock_log("port %u: data beyond credit or state",
				  c->local_port);
			vsock_conn_kill(c);
			return;
		}
		conn_write(c, chain, h->len);
		if (c->state != CONN_CONNECTED)
			return;
		vsock_conn_update_events(c);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pend |= PEND_CREDIT;
		break;
	default:
		/* guest-controlled: REQUEST on a live connection, unknown op */
		vsock_log("port %u: op %u", c->local_port, h->op);
		vsock_conn_kill(c);
		return;
	}
	vsock_pending_add(c);
}

bool vsock_conn_guest_connect(struct vsock *vs, const struct vsock_hdr *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vsock_conn *c;
	int fd, n;

	if (vs->nconns >= VSOCK_MAX_CONNS)
		return false;
	/* guest-controlled: both ports, perhaps chosen to collide */
	if (!hash_room(vs, h->dst_port, h->src_port)) {
		vsock_log("guest connection %u -> %u: hash bucket full, "
			  "refused",
			  h->src_port, h->dst_port);
		return false;
	}
	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", vs->uds,
		     h->dst_port);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	/* a Unix connect completes at once, or fails (EAGAIN: backlog) */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return false;
	}
	c = conn_new(vs, fd, CONN_CONNECTED);
	if (c == NULL) {
		close(fd);
		return false;
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->events = EPOLLIN;
	if (!conn_link(c)) {
		close(fd);
		return false;
	}
	hash_add(c);
	c->pend = PEND_RESPONSE;
	vsock_pending_add(c);
	return true;
}

static void hdr_to_guest(const struct vsock_conn *c, struct vsock_hdr *h,
			 uint16_t op)
{
	*h = (struct vsock_hdr){
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = c->vs->cid,
		.src_port = c->local_port,
		.dst_port = c->peer_port,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.buf_alloc = VSOCK_BUF,
		.fwd_cnt = c->fwd_cnt,
	};
}

/* Read host data into chain after the header: payload bytes, or -1. */
static ssize_t conn_read(struct vsock_conn *c, const struct virtq_chain *chain)
{
	struct vsock *vs = c->vs;
	uint32_t max = chain->write_len - VSOCK_HDR_SIZE, credit;
	unsigned int k;
	ssize_t n;

	credit = vsock_credit(c);
	if (max > credit)
		max = credit;
	if (max > VSOCK_MAX_PKT)
		max = VSOCK_MAX_PKT;
	if (max == 0) {
		errno = EAGAIN;
		return -1;
	}
	k = iov_slice(vs->iov, chain->iov + chain->nread, chain->nwrite,
		      VSOCK_HDR_SIZE, max);
	do
		n = readv(c->fd, vs->iov, (int)k);
	while (n < 0 && errno == EINTR);
	return n;
}

uint32_t vsock_conn_rx(struct vsock_conn *c, const struct virtq_chain *chain)
{
	struct vsock_hdr h;
	ssize_t n;

	if (c->pend & PEND_RST) {
		hdr_to_guest(c, &h, VSOCK_OP_RST);
		virtq_chain_write(chain, 0, &h, sizeof(h));
		vsock_conn_free(c);
		return VSOCK_HDR_SIZE;
	}
	if ((c->pend & PEND_REQUEST) && vsock_requests_wait(c->vs)) {
		/* off the work list until vsock_rx_run releases it */
		c->vs->requests_held = true;
		return 0;
	}
	if (c->pend & PEND_REQUEST) {
		hdr_to_guest(c, &h, VSOCK_OP_REQUEST);
		c->pend &= ~PEND_REQUEST;
	} else if (c->pend & PEND_RESPONSE) {
		hdr_to_guest(c, &h, VSOCK_OP_RESPONSE);
		c->pend &= ~PEND_RESPONSE;
	} else if (c->pend & PEND_SHUTDOWN) {
		hdr_to_guest(c, &h, VSOCK_OP_SHUTDOWN);
		h.flags = c->shutdown_flags;
		c->pend &= ~PEND_SHUTDOWN;
	} else if (conn_can_read(c)) {
		n = conn_read(c, chain);
		if (n > 0) {
			hdr_to_guest(c, &h, VSOCK_OP_RW);
			h.len = (uint32_t)n;
			c->rx_cnt += (uint32_t)n;
		} else if (n == 0) {
			c->host_eof = true;
			c->readable = false;
			hdr_to_guest(c, &h, VSOCK_OP_SHUTDOWN);
			h.flags = VSOCK_SHUTDOWN_SEND |
				  (c->host_hup ? VSOCK_SHUTDOWN_RCV : 0);
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->readable = false;
			vsock_conn_update_events(c);
			vsock_pending_add(c);
			return 0;
		} else {
			metrics_inc(&metrics_vsock, VSOCK_M_RX_READ_FAILS);
			vsock_conn_kill(c);
			return vsock_conn_rx(c, chain);
		}
	} else if (c->pend & PEND_CREDIT) {
		hdr_to_guest(c, &h, VSOCK_OP_CREDIT_UPDATE);
	} else {
		return 0;
	}
	/* every packet carries our credit */
	c->pend &= ~PEND_CREDIT;
	c->last_fwd_sent = c->fwd_cnt;
	virtq_chain_write(chain, 0, &h, sizeof(h));
	if (h.op == VSOCK_OP_SHUTDOWN && c->host_eof)
		conn_maybe_finish(c);
	if (c->state == CONN_CONNECTED)
		vsock_conn_update_events(c);
	vsock_pending_add(c);
	return VSOCK_HDR_SIZE + h.len;
}

/* "CONNECT <port>\n", a byte at a time: nothing after it is consumed. */
static void conn_handshake(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;
	unsigned long port;
	char *end;

	for (;;) {
		char ch;
		ssize_t n = recv(c->fd, &ch, 1, MSG_DONTWAIT);

		if (n < 0 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			vsock_conn_free(c);
			return;
		}
		if (ch == '\n')
			break;
		/* host-controlled: a bounded line */
		if (c->line_len >= sizeof(c->line) - 1) {
			vsock_conn_free(c);
			return;
		}
		c->line[c->line_len++] = ch;
	}
	c->line[c->line_len] = '\0';
	if (c->line_len > 0 && c->line[c->line_len - 1] == '\r')
		c->line[--c->line_len] = '\0';
	if (strncmp(c->line, "CONNECT ", 8) != 0 || c->line[8] < '0' ||
	    c->line[8] > '9') {
		vsock_conn_free(c);
		return;
	}
	errno = 0;
	port = strtoul(c->line + 8, &end, 10);
	if (errno != 0 || *end != '\0' || port > UINT32_MAX) {
		vsock_conn_free(c);
		return;
	}
	c->peer_port = (uint32_t)port;
	/*
	 * Our port: free, in a bucket with room. The guest fills at most
	 * VSOCK_MAX_CONNS / VSOCK_HASH_CHAIN_MAX of the VSOCK_HASH buckets,
	 * so a few tries find one; give up rather than loop.
	 */
	for (int tries = 0;; tries++) {
		if (tries == 64) {
			vsock_log("no free host port for a host client");
			vsock_conn_free(c);
			return;
		}
		c->local_port = vs->next_port++;
		if (vs->next_port == 0)
			vs->next_port = VSOCK_LOCAL_PORT_BASE;
		if (vsock_conn_find(vs, c->local_port, c->peer_port) == NULL &&
		    hash_room(vs, c->local_port, c->peer_port))
			break;
	}
	vs->nhandshake--;
	c->state = CONN_REQUEST;
	hash_add(c);
	c->pend = PEND_REQUEST;
	vsock_conn_update_events(c);
	vsock_pending_add(c);
}

static void conn_event(void *opaque, uint32_t events)
{
	struct vsock_conn *c = opaque;
	struct vsock *vs = c->vs;

	virtio_dev_lock(&vs->dev);
	if (vs->reset_pending) {
		/* c is among the connections this frees */
		vsock_conn_free_all(vs);
		vs->reset_pending = false;
		goto out;
	}
	if (c->state == CONN_HANDSHAKE) {
		conn_handshake(c);
		goto out;
	}
	if ((events & EPOLLERR) ||
	    (c->state == CONN_REQUEST && (events & EPOLLHUP))) {
		vsock_conn_kill(c);
		goto out;
	}
	if (c->state != CONN_CONNECTED)
		goto out;
	if ((events & EPOLLOUT) && !conn_flush(c))
		goto out;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
		c->readable = true;
	if (events & EPOLLHUP) {
		/* the peer is gone both ways: what it wrote is all there is */
		c->host_hup = true;
		if (c->buf_len > 0) {
			vsock_conn_kill(c);
			goto out;
		}
		evloop_del(vs->loop, c->ev);
		c->ev = NULL;
	}
	conn_maybe_finish(c);
	if (c->state != CONN_CONNECTED)
		goto out;
	vsock_conn_update_events(c);
	vsock_pending_add(c);
out:
	vsock_rx_run(vs);
	virtio_dev_unlock(&vs->dev);
}

/* Arm the handshake timer for at (CLOCK_MONOTONIC ns), or disarm it (0). */
static void timer_arm(struct vsock *vs, uint64_t at)
{
	struct itimerspec its = { 0 };

	vs->timer_at = 0;
	if (vs->timer_fd < 0)
		return;
	if (at != 0) {
		its.it_value.tv_sec = (time_t)(at / 1000000000ULL);
		its.it_value.tv_nsec = (long)(at % 1000000000ULL);
	}
	if (timerfd_settime(vs->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		vsock_log("handshake timer: %s", strerror(errno));
		return;
	}
	vs->timer_at = at;
}

void vsock_on_listen(void *opaque, uint32_t events)
{
	struct vsock *vs = opaque;

	(void)events;
	virtio_dev_lock(&vs->dev);
	if (vs->reset_pending) {
		vsock_conn_free_all(vs);
		vs->reset_pending = false;
	}
	/* a bounded batch: other fds get the loop too */
	for (int i = 0; i < 16; i++) {
		struct vsock_conn *c;
		int fd = accept4(vs->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			break;
		if (vs->nconns >= VSOCK_MAX_CONNS ||
		    vs->nhandshake >= VSOCK_MAX_HANDSHAKE) {
			vsock_log("%u connections, %u without CONNECT: host "
				  "client refused",
				  vs->nconns, vs->nhandshake);
			close(fd);
			continue;
		}
		c = conn_new(vs, fd, CONN_HANDSHAKE);
		if (c == NULL || !conn_link(c)) {
			close(fd);
			continue;
		}
		vs->nhandshake++;
		c->deadline_ns = util_now_ns() + vs->handshake_ms * 1000000ULL;
		if (vs->timer_at == 0 || c->deadline_ns < vs->timer_at)
			timer_arm(vs, c->deadline_ns);
	}
	virtio_dev_unlock(&vs->dev);
}

void vsock_on_timer(void *opaque, uint32_t events)
{
	struct vsock *vs = opaque;
	struct vsock_conn *c, *nc;
	uint64_t ticks, now, next = 0;

	(void)events;
	if (read(vs->timer_fd, &ticks, sizeof(ticks)) < 0) {
		/* nonblocking: a re-arm already took the expiry back */
	}
	virtio_dev_lock(&vs->dev);
	if (vs->reset_pending) {
		vsock_conn_free_all(vs);
		vs->reset_pending = false;
	}
	now = util_now_ns();
	/* at most VSOCK_MAX_CONNS, once per deadline */
	for (c = vs->conns; c != NULL; c = nc) {
		nc = c->next;
		if (c->state != CONN_HANDSHAKE)
			continue;
		if (c->deadline_ns <= now) {
			vsock_log("host client sent no CONNECT line within %u "
				  "ms: closed",
				  vs->handshake_ms);
			metrics_inc(&metrics_vsock, VSOCK_M_CONNS_KILLED);
			vsock_conn_free(c);
		} else if (next == 0 || c->deadline_ns < next) {
			next = c->deadline_ns;
		}
	}
	timer_arm(vs, next);
	virtio_dev_unlock(&vs->dev);
}
