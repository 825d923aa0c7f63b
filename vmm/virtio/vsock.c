/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock (device id 19) served inside kiln-vmm, no vhost, with
 * Firecracker's host side: a listening Unix socket at vsock.uds_path where
 * a host client writes "CONNECT <port>\n" and reads "OK <host port>\n"
 * once the guest accepts; guest connections to host port P go to the Unix
 * socket "<uds_path>_P". Three queues: rx (device → guest packets), tx
 * (guest → device), event (TRANSPORT_RESET after a restore). Config space
 * is the guest's CID (le64).
 *
 * This file: the device, its queues and packet checks. vsock_conn.c: the
 * connections and their nonblocking host sockets on the event loop.
 *
 * A host client has VSOCK_HANDSHAKE_MS from its accept to finish its
 * CONNECT line, and at most VSOCK_MAX_HANDSHAKE wait at once: a timerfd on
 * the loop closes the late ones (vsock_on_timer), so clients that connect
 * and say nothing cannot hold the VSOCK_MAX_CONNS slots.
 *
 * The listening socket: a stale socket at the path (nobody accepts on it)
 * is unlinked and replaced; a live one, or any other file, is an init
 * error naming the path. It is closed and unlinked at VM exit.
 *
 * Snapshots: connections are not saved. A restore drops them all (host
 * clients see their socket closed) and sends the guest a TRANSPORT_RESET
 * event, as Firecracker does; the transport and queue state are kept.
 * Host clients that connect meanwhile wait until the guest has handled
 * the event (vsock_requests_wait), so the first connection to a restored
 * or forked guest works.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "../device.h"
#include "../metrics.h"
#include "../vm.h"
#include "mmio.h"
#include "vsock_priv.h"

#define VSOCK_QUEUE_SIZE	    256
#define VSOCK_STATE_VERSION	    1
#define VSOCK_EVENT_TRANSPORT_RESET 0

/* The snapshot of a vsock device: no connections (see the top). */
struct vsock_state {
	uint32_t version;  /* VSOCK_STATE_VERSION */
	uint32_t reserved; /* zero */
	uint64_t guest_cid;
};

void vsock_wake(struct vsock *vs)
{
	uint64_t one = 1;

	if (vs->wake_fd >= 0 && write(vs->wake_fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		vsock_log("wake eventfd: %s", strerror(errno));
}

static void rst_reply(struct vsock *vs, const struct vsock_hdr *h)
{
	unsigned int i;

	if (h->op == VSOCK_OP_RST)
		return; /* never answer an RST: no ping-pong */
	/* tx_run keeps a free slot for every packet it pops */
	if (vs->rst_len >= VSOCK_RST_MAX)
		return;
	i = (vs->rst_head + vs->rst_len++) % VSOCK_RST_MAX;
	vs->rst[i].guest_port = h->src_port;
	vs->rst[i].host_port = h->dst_port;
}

/* The connections go; the rings and the device status stay. */
static void vsock_apply_reset(struct vsock *vs)
{
	vsock_conn_free_all(vs);
	vs->reset_pending = false;
}

static bool rx_has_work(const struct vsock *vs)
{
	return vs->rst_len > 0 || vs->pend_head != NULL;
}

/* One packet into the held rx chain: bytes written, 0 if none was due. */
static uint32_t rx_fill_one(struct vsock *vs, const struct virtq_chain *c)
{
	struct vsock_conn *conn;
	uint32_t n;

	if (vs->rst_len > 0) {
		struct vsock_hdr h = {
			.src_cid = VSOCK_HOST_CID,
			.dst_cid = vs->cid,
			.src_port = vs->rst[vs->rst_head].host_port,
			.dst_port = vs->rst[vs->rst_head].guest_port,
			.type = VSOCK_TYPE_STREAM,
			.op = VSOCK_OP_RST,
		};

		vs->rst_head = (vs->rst_head + 1) % VSOCK_RST_MAX;
		vs->rst_len--;
		virtq_chain_write(c, 0, &h, sizeof(h));
		return VSOCK_HDR_SIZE;
	}
	conn = vs->pend_head;
	vs->pend_head = conn->pnext;
	if (vs->pend_head == NULL)
		vs->pend_tail = NULL;
	conn->pnext = NULL;
	conn->pending = false;
	/* may free conn; otherwise it goes to the tail while it has work */
	n = vsock_conn_rx(conn, c);
	return n;
}

/* The REQUESTs that waited for the guest to handle a reset go out. */
static void requests_release(struct vsock *vs)
{
	vs->requests_held = false;
	for (struct vsock_conn *c = vs->conns; c != NULL; c = c->next)
		if (c->pend & PEND_REQUEST)
			vsock_pending_add(c);
}

void vsock_rx_run(struct vsock *vs)
{
	struct virtio_dev *d = &vs->dev;
	struct virtq *q = &d->queues[VSOCK_RXQ];
	bool own = q->budget == VIRTQ_UNLIMITED, pushed = false;

	if (!virtio_dev_running(d) || !q->ready)
		return;
	if (vs->requests_held && !vsock_requests_wait(vs))
		requests_release(vs);
	if (own)
		virtq_set_budget(q, q->size);
	while (rx_has_work(vs)) {
		uint32_t n;

		if (!vs->rx_held) {
			int r = virtq_pop(q, &vs->rx_chain);

			if (r <= 0) {
				if (r == 0 && q->starved && own)
					vsock_wake(vs);
				break;
			}
			/* guest-controlled: room for a header and data */
			if (vs->rx_chain.write_len <= VSOCK_HDR_SIZE) {
				virtio_dev_set_broken(d,
						      "vsock rx buffer of %u "
						      "bytes",
						      vs->rx_chain.write_len);
				break;
			}
			vs->rx_held = true;
		}
		n = rx_fill_one(vs, &vs->rx_chain);
		if (n == 0)
			continue; /* that connection had nothing after all */
		virtq_push(q, vs->rx_chain.head, n);
		metrics_inc(&metrics_vsock, VSOCK_M_RX_PACKETS);
		metrics_add(&metrics_vsock, VSOCK_M_RX_BYTES,
			    n - VSOCK_HDR_SIZE);
		vs->rx_held = false;
		pushed = true;
	}
	if (pushed)
		virtio_dev_used(d, q);
	if (own)
		virtq_set_budget(q, VIRTQ_UNLIMITED);
	if (vs->tx_stalled && vs->rst_len < VSOCK_RST_MAX)
		vsock_wake(vs);
}

/* One packet from the guest. */
static void tx_one(struct vsock *vs, const struct virtq_chain *c)
{
	struct vsock_conn *conn;
	struct vsock_hdr h;

	/* guest-controlled: the whole header must be readable */
	if (c->read_len < VSOCK_HDR_SIZE) {
		vsock_log("tx packet of %u bytes, no header", c->read_len);
		metrics_inc(&metrics_vsock, VSOCK_M_TX_INVALID);
		return;
	}
	virtq_chain_read(c, 0, &h, sizeof(h));
	/* guest-controlled: len within the chain and the packet maximum */
	if (h.len > VSOCK_MAX_PKT || h.len > c->read_len - VSOCK_HDR_SIZE) {
		vsock_log("tx packet len %u, chain %u", h.len, c->read_len);
		metrics_inc(&metrics_vsock, VSOCK_M_TX_INVALID);
		return;
	}
	/* guest-controlled: addresses; a wrong source gets no answer */
	if (h.src_cid != vs->cid || h.dst_cid != VSOCK_HOST_CID) {
		vsock_log("tx packet from cid %llu to cid %llu dropped",
			  (unsigned long long)h.src_cid,
			  (unsigned long long)h.dst_cid);
		metrics_inc(&metrics_vsock, VSOCK_M_TX_INVALID);
		return;
	}
	metrics_inc(&metrics_vsock, VSOCK_M_TX_PACKETS);
	metrics_add(&metrics_vsock, VSOCK_M_TX_BYTES, h.len);
	/* guest-controlled: only streams */
	if (h.type != VSOCK_TYPE_STREAM) {
		rst_reply(vs, &h);
		return;
	}
	conn = vsock_conn_find(vs, h.dst_port, h.src_port);
	if (conn == NULL) {
		if (h.op != VSOCK_OP_REQUEST ||
		    !vsock_conn_guest_connect(vs, &h))
			rst_reply(vs, &h);
		return;
	}
	if (conn->state == CONN_KILLED) {
		/* our RST is on its way; the guest's RST ends it now */
		if (h.op == VSOCK_OP_RST)
			vsock_conn_free(conn);
		return;
	}
	vsock_conn_tx(conn, &h, c);
}

static void tx_run(struct vsock *vs)
{
	struct virtio_dev *d = &vs->dev;
	struct virtq *q = &d->queues[VSOCK_TXQ];
	bool own = q->budget == VIRTQ_UNLIMITED, pushed = false;

	if (!virtio_dev_running(d) || !q->ready)
		return;
	if (own)
		virtq_set_budget(q, q->size);
	vs->tx_stalled = false;
	for (;;) {
		int r;

		/* every packet may owe an RST: keep room (rx frees it) */
		if (vs->rst_len >= VSOCK_RST_MAX) {
			vs->tx_stalled = true;
			break;
		}
		r = virtq_pop(q, &vs->tx_chain);
		if (r <= 0) {
			if (r == 0 && q->starved && own)
				vsock_wake(vs);
			break;
		}
		tx_one(vs, &vs->tx_chain);
		virtq_push(q, vs->tx_chain.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_dev_used(d, q);
	if (own)
		virtq_set_budget(q, VIRTQ_UNLIMITED);
	vsock_rx_run(vs);
}

static void event_run(struct vsock *vs)
{
	struct virtio_dev *d = &vs->dev;
	struct virtq *q = &d->queues[VSOCK_EVQ];
	uint32_t id = VSOCK_EVENT_TRANSPORT_RESET;

	if (!vs->event_pending || !virtio_dev_running(d) || !q->ready)
		return;
	if (virtq_pop(q, &vs->ev_chain) != 1)
		return;
	/* guest-controlled: a too small buffer gets a short write */
	virtq_chain_write(&vs->ev_chain, 0, &id,
			  vs->ev_chain.write_len < sizeof(id)
				  ? vs->ev_chain.write_len
				  : sizeof(id));
	virtq_push(q, vs->ev_chain.head,
		   vs->ev_chain.write_len < sizeof(id) ? vs->ev_chain.write_len
						       : sizeof(id));
	vs->event_pending = false;
	/* until the driver's refill (vsock_requests_wait) */
	vs->reset_avail = virtq_notify_next(q);
	vs->reset_unacked = virtq_avail_idx(q) == vs->reset_avail;
	virtio_dev_used(d, q);
}

/* Event loop: work scheduled by ourselves (reset, budgets, stalls). */
static void vsock_on_wake(void *opaque, uint32_t events)
{
	struct vsock *vs = opaque;
	uint64_t v;

	(void)events;
	if (read(vs->wake_fd, &v, sizeof(v)) < 0)
		return;
	virtio_dev_lock(&vs->dev);
	if (vs->reset_pending)
		vsock_apply_reset(vs);
	event_run(vs);
	tx_run(vs);
	vsock_rx_run(vs);
	virtio_dev_unlock(&vs->dev);
}

static void vsock_notify(struct virtio_dev *d, unsigned int queue)
{
	struct vsock *vs = d->priv;

	if (vs->reset_pending)
		vsock_apply_reset(vs);
	if (queue == VSOCK_TXQ) {
		tx_run(vs);
	} else if (queue == VSOCK_RXQ) {
		vsock_rx_run(vs);
	} else {
		/* a buffer since the reset: the driver has handled it */
		if (virtq_avail_idx(&d->queues[VSOCK_EVQ]) != vs->reset_avail)
			vs->reset_unacked = false;
		event_run(vs);
		vsock_rx_run(vs);
	}
}

static int vsock_activate(struct virtio_dev *d, struct kiln_error *err)
{
	struct vsock *vs = d->priv;

	(void)err;
	/* host clients may have connected before the driver was ready */
	if (vs->loop != NULL)
		vsock_wake(vs);
	return 0;
}

/* Drop all connections, on the loop thread when there is one. */
static void vsock_drop_all(struct vsock *vs)
{
	vs->rst_head = vs->rst_len = 0;
	vs->rx_held = false;
	vs->tx_stalled = false;
	if (vs->loop == NULL) {
		vsock_apply_reset(vs);
		return;
	}
	vs->reset_pending = true;
	vsock_wake(vs);
}

static void vsock_reset(struct virtio_dev *d)
{
	struct vsock *vs = d->priv;

	vs->event_pending = false;
	vs->reset_unacked = false;
	vsock_drop_all(vs);
}

static void vsock_config_read(struct virtio_dev *d, uint32_t offset, void *data,
			      uint32_t len)
{
	const struct vsock *vs = d->priv;
	uint64_t cid = vs->cid; /* le64 */

	memcpy(data, (const uint8_t *)&cid + offset, len);
}

static void vsock_config_write(struct virtio_dev *d, uint32_t offset,
			       const void *data, uint32_t len)
{
	/* guest-controlled: the CID is read-only */
	(void)d;
	vsock_log("config write at %u (%u bytes) ignored", offset, len);
	(void)data;
}

static void vsock_save(struct virtio_dev *d, void *state)
{
	const struct vsock *vs = d->priv;
	struct vsock_state *s = state;

	s->version = VSOCK_STATE_VERSION;
	s->reserved = 0;
	s->guest_cid = vs->cid;
}

/* the rx chain popped for a packet that turned out not to be due */
static uint16_t vsock_held(struct virtio_dev *d, unsigned int queue)
{
	const struct vsock *vs = d->priv;

	return queue == VSOCK_RXQ && vs->rx_held ? 1 : 0;
}

static int vsock_restore(struct virtio_dev *d, const void *state,
			 struct kiln_error *err)
{
	struct vsock *vs = d->priv;
	const struct vsock_state *s = state;

	/* file-controlled */
	if (s->version != VSOCK_STATE_VERSION || s->reserved != 0)
		return kiln_error_set(err, EINVAL,
				      "vsock state version %u reserved %u, "
				      "want version %u reserved 0",
				      s->version, s->reserved,
				      VSOCK_STATE_VERSION);
	if (s->guest_cid < 3 || s->guest_cid >= UINT32_MAX)
		return kiln_error_set(err, EINVAL, "vsock state cid %llu",
				      (unsigned long long)s->guest_cid);
	/*
	 * The CID stays the configured one (a fork gets its own); the
	 * guest drops its connections on TRANSPORT_RESET, we drop ours.
	 */
	vs->event_pending = true;
	vsock_drop_all(vs);
	return 0;
}

static const struct virtio_ops vsock_ops = {
	.name = "vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.num_queues = 3,
	.queue_max_size = VSOCK_QUEUE_SIZE,
	.features = 0, /* stream only: no feature bit needed */
	.config_size = 8,
	.config_read = vsock_config_read,
	.config_write = vsock_config_write,
	.activate = vsock_activate,
	.notify = vsock_notify,
	.reset = vsock_reset,
	.state_size = sizeof(struct vsock_state),
	.save = vsock_save,
	.held = vsock_held,
	.restore = vsock_restore,
};

/* Is someone accepting on the socket at path? */
static bool uds_alive(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return true; /* cannot tell: do not unlink */
	alive = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
		errno != ECONNREFUSED;
	close(fd);
	return alive;
}

static int vsock_listen(struct vsock *vs, struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(vs->uds) >= sizeof(sa.sun_path))
		return kiln_error_set(err, ENAMETOOLONG,
				      "vsock socket `%s`: path too long",
				      vs->uds);
	strcpy(sa.sun_path, vs->uds);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kiln_error_set(err, errno, "vsock socket `%s`", vs->uds);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		/* only a stale socket is replaced: its VMM is gone */
		if (e != EADDRINUSE || lstat(vs->uds, &st) < 0 ||
		    !S_ISSOCK(st.st_mode) || uds_alive(&sa)) {
			errno = e;
			goto fail;
		}
		unlink(vs->uds);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			goto fail;
	}
	if (listen(fd, 128) < 0 || stat(vs->uds, &st) < 0)
		goto fail;
	vs->uds_dev = st.st_dev;
	vs->uds_ino = st.st_ino;
	vs->listen_fd = fd;
	return 0;
fail:
	kiln_error_set(err, errno, "vsock: cannot listen on `%s`", vs->uds);
	close(fd);
	return -1;
}

static void vsock_free(struct vm *vm, struct vsock *vs)
{
	struct stat st;

	vsock_conn_free_all(vs);
	if (vs->listen_fd >= 0) {
		if (vs->loop != NULL)
			evloop_del(vs->loop, vs->listen_ev);
		close(vs->listen_fd);
		/* only our own socket: another VMM may have replaced it */
		if (stat(vs->uds, &st) == 0 && st.st_dev == vs->uds_dev &&
		    st.st_ino == vs->uds_ino)
			unlink(vs->uds);
	}
	if (vs->wake_fd >= 0) {
		if (vs->loop != NULL)
			evloop_del(vs->loop, vs->wake_ev);
		close(vs->wake_fd);
	}
	if (vs->timer_fd >= 0) {
		evloop_del(vs->loop, vs->timer_ev);
		close(vs->timer_fd);
	}
	free(vs->uds);
	free(vs);
	(void)vm;
}

static int vsock_dev_init(struct vm *vm, void **state, struct kiln_error *err)
{
	const struct vm_vsock *cfg = &vm->cfg->vsock;
	struct vsock *vs;

	*state = NULL;
	if (!cfg->enabled)
		return 0;
	if (cfg->uds_path == NULL || cfg->cid < 3 || cfg->cid == UINT32_MAX)
		return kiln_error_set(err, EINVAL,
				      "vsock: need cid >= 3 and a uds path");
	vs = calloc(1, sizeof(*vs));
	if (vs == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-vsock");
	vs->listen_fd = vs->wake_fd = vs->timer_fd = -1;
	vs->cid = cfg->cid;
	vs->next_port = VSOCK_LOCAL_PORT_BASE;
	vs->handshake_ms = VSOCK_HANDSHAKE_MS;
	/* the hash key only needs to be unknown to the guest */
	if (getrandom(&vs->hash_key, sizeof(vs->hash_key), GRND_NONBLOCK) !=
	    sizeof(vs->hash_key))
		vs->hash_key = (uint64_t)(uintptr_t)vs * 0x9e3779b97f4a7c15ULL;
	vs->loop = vm->loop.epfd >= 0 ? &vm->loop : NULL;
	vs->uds = strdup(cfg->uds_path);
	if (vs->uds == NULL) {
		free(vs);
		return kiln_error_set(err, ENOMEM, "virtio-vsock");
	}
	if (virtio_dev_init(&vs->dev, &vsock_ops, vs, &vm->mem, err) < 0) {
		free(vs->uds);
		free(vs);
		return -1;
	}
	if (vsock_listen(vs, err) < 0)
		goto fail;
	if (vs->loop != NULL) {
		vs->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vs->wake_fd < 0) {
			kiln_error_set(err, errno, "virtio-vsock: eventfd");
			goto fail;
		}
		vs->wake_ev = evloop_add(vs->loop, vs->wake_fd, EPOLLIN,
					 vsock_on_wake, vs, err);
		if (vs->wake_ev == NULL) {
			close(vs->wake_fd);
			vs->wake_fd = -1;
			goto fail;
		}
		vs->listen_ev = evloop_add(vs->loop, vs->listen_fd, EPOLLIN,
					   vsock_on_listen, vs, err);
		if (vs->listen_ev == NULL) {
			evloop_del(vs->loop, vs->wake_ev);
			close(vs->wake_fd);
			vs->wake_fd = -1;
			goto fail;
		}
		vs->timer_fd = timerfd_create(CLOCK_MONOTONIC,
					      TFD_NONBLOCK | TFD_CLOEXEC);
		if (vs->timer_fd < 0) {
			kiln_error_set(err, errno, "virtio-vsock: timerfd");
			goto fail;
		}
		vs->timer_ev = evloop_add(vs->loop, vs->timer_fd, EPOLLIN,
					  vsock_on_timer, vs, err);
		if (vs->timer_ev == NULL) {
			close(vs->timer_fd);
			vs->timer_fd = -1;
			goto fail;
		}
	}
	if (virtio_mmio_add(vm, &vs->dev, err) < 0)
		goto fail;
	*state = &vs->dev;
	return 0;
fail:
	virtio_dev_destroy(&vs->dev);
	vsock_free(vm, vs);
	return -1;
}

static void vsock_dev_exit(struct vm *vm, void *state)
{
	struct virtio_dev *d = state;

	if (d == NULL)
		return;
	virtio_mmio_del(d);
	virtio_dev_destroy(d);
	vsock_free(vm, d->priv);
}

VMM_DEVICE(virtio_vsock, DEVICE_LEVEL_VIRTIO, vsock_dev_init, vsock_dev_exit);
