/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock internals shared by vsock.c (device, queues, packets) and
 * vsock_conn.c (connections and their host Unix sockets). Not an API.
 *
 * Every function here runs with dev.lock held. Connections are created,
 * changed and freed on the event-loop thread only, so evloop_del of a
 * connection's fd always happens there and its callback (conn_event) is
 * never called for a freed connection (evloop.h: the rule for deleting).
 * A reset from a vCPU thread only marks reset_pending and wakes the loop,
 * which tears the connections down (see vsock_apply_reset).
 */
#ifndef KILN_VMM_VIRTIO_VSOCK_PRIV_H
#define KILN_VMM_VIRTIO_VSOCK_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../../lib/log.h"
#include "../evloop.h"
#include "iov.h"
#include "virtio.h"

#define VSOCK_RXQ 0
#define VSOCK_TXQ 1
#define VSOCK_EVQ 2

#define VSOCK_HOST_CID	  2
#define VSOCK_TYPE_STREAM 1

enum vsock_op {
	VSOCK_OP_INVALID,
	VSOCK_OP_REQUEST,
	VSOCK_OP_RESPONSE,
	VSOCK_OP_RST,
	VSOCK_OP_SHUTDOWN,
	VSOCK_OP_RW,
	VSOCK_OP_CREDIT_UPDATE,
	VSOCK_OP_CREDIT_REQUEST,
};

#define VSOCK_SHUTDOWN_RCV  1
#define VSOCK_SHUTDOWN_SEND 2

/* virtio 1.x section 5.10.6, little-endian (x86_64 only) */
struct vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));

#define VSOCK_HDR_SIZE ((uint32_t)sizeof(struct vsock_hdr)) /* 44 */

/* largest payload of one packet, either way (Linux's and Firecracker's) */
#define VSOCK_MAX_PKT (64 * 1024)
/*
 * Our receive buffer per connection, advertised as buf_alloc: bytes the
 * guest may send that the host socket has not taken yet. Allocated only
 * while something is buffered.
 */
#define VSOCK_BUF (256 * 1024)
/* send a CREDIT_UPDATE once this much was forwarded since the last one */
#define VSOCK_CREDIT_THRESHOLD (VSOCK_BUF / 4)
/* connections at once (both directions): bounds memory at ~64 MiB */
#define VSOCK_MAX_CONNS 256
/* RSTs owed to the guest for packets without a connection */
#define VSOCK_RST_MAX 64
/*
 * Connection lookup by (local port, peer port): a hash table of
 * VSOCK_HASH buckets (a power of two, twice VSOCK_MAX_CONNS), keyed with
 * a secret per device. guest-controlled: both ports of a guest-initiated
 * connection, so a bucket never holds more than VSOCK_HASH_CHAIN_MAX
 * connections; a guest REQUEST that would go beyond is answered RST. A
 * lookup visits at most that many entries, whatever the guest picks.
 */
#define VSOCK_HASH	     512
#define VSOCK_HASH_CHAIN_MAX 8
/*
 * host-controlled: a host client must send its "CONNECT <port>\n" within
 * VSOCK_HANDSHAKE_MS of being accepted, or it is closed; at most
 * VSOCK_MAX_HANDSHAKE clients wait for theirs at once (more are closed at
 * accept), so silent clients cannot take the VSOCK_MAX_CONNS slots.
 */
#define VSOCK_HANDSHAKE_MS  5000
#define VSOCK_MAX_HANDSHAKE 32
/* first host-side port for host-initiated connections (Firecracker's) */
#define VSOCK_LOCAL_PORT_BASE (1U << 30)

enum vsock_conn_state {
	CONN_HANDSHAKE, /* host client connected, reading "CONNECT <port>\n" */
	CONN_REQUEST,	/* REQUEST owed or sent, waiting for RESPONSE */
	CONN_CONNECTED, /* streaming */
	CONN_KILLED,	/* host fd closed, an RST still owed to the guest */
};

/* control packets owed to the guest (conn->pend) */
#define PEND_REQUEST  0x01
#define PEND_RESPONSE 0x02
#define PEND_SHUTDOWN 0x04
#define PEND_CREDIT   0x08
#define PEND_RST      0x10

struct vsock;

struct vsock_conn {
	struct vsock *vs;
	int fd;
	enum vsock_conn_state state;
	uint32_t local_port; /* ours (the host's) */
	uint32_t peer_port;  /* the guest's */
	bool hashed;
	struct evloop_entry *ev; /* fd in vs->loop, or NULL */
	bool pending;		 /* on vs's rx work list */
	bool readable;		 /* the host fd may have data (EPOLLIN seen) */
	bool host_eof;		 /* read returned 0 */
	bool host_hup;		 /* the host peer closed both ways */
	bool shut_wr;		 /* we did shutdown(fd, SHUT_WR) */
	uint32_t events;	 /* what the loop watches */
	uint8_t pend;		 /* PEND_* */
	uint32_t shutdown_flags; /* for PEND_SHUTDOWN */
	uint32_t guest_shut;	 /* VSOCK_SHUTDOWN_* received */

	/* guest's credit, guest-controlled */
	uint32_t peer_buf_alloc;
	uint32_t peer_fwd_cnt;
	uint32_t rx_cnt; /* payload bytes we sent the guest */

	/* our credit */
	uint32_t fwd_cnt;	/* guest bytes written to the host socket */
	uint32_t last_fwd_sent; /* fwd_cnt in our last packet */

	/* guest → host bytes the socket has not taken: a ring of VSOCK_BUF */
	uint8_t *buf;
	uint32_t buf_head;
	uint32_t buf_len;

	char line[24]; /* CONNECT line, CONN_HANDSHAKE */
	unsigned int line_len;
	uint64_t deadline_ns; /* CONN_HANDSHAKE: closed at this time */

	struct vsock_conn *prev, *next; /* vs->conns */
	struct vsock_conn *hnext;	/* hash bucket */
	struct vsock_conn *pnext;	/* rx work list */
};

struct vsock {
	struct virtio_dev dev; /* first: the VMM_DEVICE state is &dev */
	struct evloop *loop;   /* NULL without an event loop (fuzzers) */
	uint64_t cid;
	char *uds;
	int listen_fd;
	struct evloop_entry *listen_ev; /* in loop, or NULL */
	dev_t uds_dev;
	ino_t uds_ino;
	int wake_fd; /* eventfd: more work on the loop thread */
	struct evloop_entry *wake_ev; /* in loop, or NULL */

	bool reset_pending;   /* connections to drop on the loop thread */
	bool tx_stalled;      /* rst ring full: tx waits for rx */
	bool rx_held;	      /* rx_chain popped, not yet pushed */
	bool event_pending;   /* TRANSPORT_RESET owed (after restore) */
	bool reset_unacked;   /* given, and the guest has not refilled its
			     * event queue since: it may not have seen it */
	uint16_t reset_avail; /* the event queue's avail idx when given */
	bool requests_held;   /* a host REQUEST waits for the reset's end */

	struct {
		uint32_t guest_port, host_port;
	} rst[VSOCK_RST_MAX];
	unsigned int rst_head, rst_len;

	struct vsock_conn *conns;
	unsigned int nconns;
	unsigned int nhandshake; /* conns in CONN_HANDSHAKE */
	uint64_t hash_key;	 /* secret: the guest cannot aim at a bucket */
	struct vsock_conn *hash[VSOCK_HASH];
	/* timerfd for handshake deadlines (-1 without an event loop) */
	int timer_fd;
	struct evloop_entry *timer_ev; /* in loop, or NULL */
	uint64_t timer_at; /* CLOCK_MONOTONIC ns it is armed for; 0: not */
	unsigned int handshake_ms; /* VSOCK_HANDSHAKE_MS; tests shorten it */
	struct vsock_conn *pend_head, *pend_tail;
	uint32_t next_port;

	struct virtq_chain rx_chain, tx_chain, ev_chain;
	struct iovec iov[VIRTQ_CHAIN_MAX];
};

/* guest-triggered: rate-limited per call site */
#define vsock_log(fmt, ...)                                            \
	do {                                                           \
		if (log_ratelimit())                                   \
			log_warn("virtio-vsock: " fmt, ##__VA_ARGS__); \
	} while (0)

/*
 * A host client's REQUEST waits while a TRANSPORT_RESET is owed or not yet
 * handled: a guest that accepted it first would reset it right after
 * (the client's first connection after a restore or fork would fail).
 * The guest's driver refills its event queue (and kicks it) once it has
 * handled the event: a new buffer there ends the wait.
 */
static inline bool vsock_requests_wait(const struct vsock *vs)
{
	return vs->event_pending || vs->reset_unacked;
}

/* vsock.c */
void vsock_wake(struct vsock *vs);
void vsock_rx_run(struct vsock *vs);

/* vsock_conn.c */
/* The bucket of (local, peer) in vs->hash. */
unsigned int vsock_hash_of(const struct vsock *vs, uint32_t local,
			   uint32_t peer);
struct vsock_conn *vsock_conn_find(struct vsock *vs, uint32_t local,
				   uint32_t peer);
void vsock_conn_free(struct vsock_conn *c);
void vsock_conn_kill(struct vsock_conn *c);
void vsock_conn_free_all(struct vsock *vs);
bool vsock_conn_has_work(const struct vsock_conn *c);
void vsock_pending_add(struct vsock_conn *c);
void vsock_conn_update_events(struct vsock_conn *c);
/* guest REQUEST to <uds>_<port>: false when an RST must answer it */
bool vsock_conn_guest_connect(struct vsock *vs, const struct vsock_hdr *h);
/* a packet from the guest for connection c (not KILLED) */
void vsock_conn_tx(struct vsock_conn *c, const struct vsock_hdr *h,
		   const struct virtq_chain *chain);
/* fill the rx chain for c: bytes written, 0 if c had nothing after all */
uint32_t vsock_conn_rx(struct vsock_conn *c, const struct virtq_chain *chain);
void vsock_on_listen(void *opaque, uint32_t events);
/* the timer_fd: close host clients past their handshake deadline */
void vsock_on_timer(void *opaque, uint32_t events);
uint32_t vsock_credit(const struct vsock_conn *c);

#endif
