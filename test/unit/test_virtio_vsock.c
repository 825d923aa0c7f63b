/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock driven through the virtio-mmio transport as a guest driver
 * would (this thread is the vCPU and the guest), with a real event loop on
 * its own thread and real Unix sockets in a temp dir: host CONNECT →
 * REQUEST → RESPONSE → "OK", data both ways, credit exhaustion and
 * CREDIT_UPDATE, guest connects to <uds>_<port>, RSTs, shutdowns,
 * malformed packets, a broken rx ring, snapshot restore, nothing leaked.
 *
 * Build: make build/test/test_virtio_vsock
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/virtio/vsock_priv.h"
#include "../lib/vdriver.h"
#include "tap.h"

#define MEM_SIZE (16ULL << 20)
#define QSIZE	 16
#define QBASE(q) (0x10000ULL + 0x4000ULL * (q))
#define RXBUF(i) (0x100000ULL + 0x2000ULL * (i))
#define TXBUF	 0x200000ULL
#define EVBUF	 0x300000ULL
#define RXLEN	 (4096 + 44)
#define CID	 3

struct tvm {
	struct vdrv v;
	pthread_t loop;
	char dir[64], uds[128];
};

static void offer(struct tvm *t, int q, uint16_t desc, uint64_t addr,
		  uint32_t len, uint16_t flags)
{
	vdrv_set_desc(&t->v, q, desc, addr, len, flags, 0);
	vdrv_offer(&t->v, q, desc);
}

static void *loop_thread(void *arg)
{
	struct kiln_error err = { 0 };

	evloop_run(arg, &err);
	return NULL;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static struct tvm *tvm_new(void)
{
	struct kiln_error err = { 0 };
	struct tvm *t = calloc(1, sizeof(*t));
	struct vdrv *v = &t->v;

	strcpy(t->dir, "/tmp/kiln-vsock.XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		exit(1);
	snprintf(t->uds, sizeof(t->uds), "%s/v.sock", t->dir);
	vdrv_init(v);
	v->cfg.vsock = (struct vm_vsock){ true, CID, t->uds };
	for (int q = 0; q < 3; q++)
		vdrv_queue_at(v, q, QBASE(q), QBASE(q) + 0x1000,
			      QBASE(q) + 0x2000, QSIZE);
	v->clear_gpa = QBASE(0);
	v->clear_len = 0xc000;
	if (vdrv_mem_alloc(v, MEM_SIZE, &err) < 0 ||
	    evloop_init(&v->vm.loop, &err) < 0 ||
	    vdrv_attach(v, "virtio_vsock", &err) < 0) {
		printf("Bail out! %s\n", err.msg);
		exit(1);
	}
	vdrv_use(v, v->state);
	pthread_create(&t->loop, NULL, loop_thread, &v->vm.loop);
	return t;
}

static void tvm_free(struct tvm *t)
{
	evloop_stop(&t->v.vm.loop);
	pthread_join(t->loop, NULL);
	vdrv_destroy(&t->v);
	rmdir(t->dir);
	free(t);
}

static void post_rx(struct tvm *t, uint16_t slot)
{
	offer(t, 0, slot, RXBUF(slot), RXLEN, VIRTQ_DESC_F_WRITE);
}

/* The driver's probe: three queues, rx filled, DRIVER_OK. */
static void driver_up(struct tvm *t, bool fill_rx)
{
	vdrv_handshake(&t->v, 0, 1, true);
	if (fill_rx)
		for (uint16_t i = 0; i < QSIZE; i++)
			post_rx(t, i);
}

/*
 * The next packet the device gave the guest, within ms: header into h,
 * payload into data (up to 4096). The buffer goes back to the ring.
 */
static bool rx_get(struct tvm *t, struct vsock_hdr *h, void *data, int ms)
{
	struct virtq_used_elem e;

	for (int i = 0; !vdrv_used_next(&t->v, 0, &e); i++) {
		if (i >= ms)
			return false;
		usleep(1000);
	}
	memcpy(h, vdrv_gp(&t->v, RXBUF(e.id), 44), 44);
	if (data != NULL && h->len <= 4096)
		memcpy(data, vdrv_gp(&t->v, RXBUF(e.id) + 44, h->len), h->len);
	post_rx(t, (uint16_t)e.id);
	return true;
}

/* The guest sends one packet (header + payload in one descriptor). */
static void tx_put(struct tvm *t, const struct vsock_hdr *h, const void *data,
		   uint32_t dlen, uint32_t desc_len)
{
	struct virtq_used *u = vdrv_used(&t->v, 1);
	uint16_t want = t->v.q[1].next_avail + 1;

	memcpy(vdrv_gp(&t->v, TXBUF, 44), h, 44);
	if (dlen > 0)
		memcpy(vdrv_gp(&t->v, TXBUF + 44, dlen), data, dlen);
	offer(t, 1, 0, TXBUF, desc_len, 0);
	for (int i = 0;
	     i < 2000 && __atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) != want;
	     i++)
		usleep(1000);
}

static struct vsock_hdr hdr(uint16_t op, uint32_t sport, uint32_t dport,
			    uint32_t len, uint32_t buf_alloc, uint32_t fwd)
{
	return (struct vsock_hdr){ .src_cid = CID,
				   .dst_cid = 2,
				   .src_port = sport,
				   .dst_port = dport,
				   .len = len,
				   .type = 1,
				   .op = op,
				   .buf_alloc = buf_alloc,
				   .fwd_cnt = fwd };
}

static void send_pkt(struct tvm *t, uint16_t op, uint32_t sport, uint32_t dport,
		     const void *data, uint32_t len, uint32_t buf_alloc,
		     uint32_t fwd)
{
	struct vsock_hdr h = hdr(op, sport, dport, len, buf_alloc, fwd);

	tx_put(t, &h, data, len, 44 + len);
}

static int host_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* read within ms: bytes, 0 at EOF, -1 on timeout */
static ssize_t read_to(int fd, void *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return -1;
	n = recv(fd, buf, len, MSG_DONTWAIT);
	/* a Unix socket closed with unread data resets its peer */
	return n < 0 && errno == ECONNRESET ? 0 : n;
}

/* Consume whatever the device still owes the guest. */
static void drain(struct tvm *t)
{
	struct vsock_hdr h;

	while (rx_get(t, &h, NULL, 200))
		;
}

/* Host CONNECT to guest port 5000, guest accepts: the client fd. */
static int open_host_conn(struct tvm *t, uint32_t *host_port)
{
	struct vsock_hdr h;
	char line[64] = { 0 };
	int fd = host_connect(t->uds);

	if (fd < 0 || write(fd, "CONNECT 5000\n", 13) != 13)
		return -1;
	if (!rx_get(t, &h, NULL, 2000) || h.op != VSOCK_OP_REQUEST ||
	    h.dst_port != 5000)
		return -1;
	*host_port = h.src_port;
	send_pkt(t, VSOCK_OP_RESPONSE, 5000, h.src_port, NULL, 0, 8192, 0);
	if (read_to(fd, line, sizeof(line) - 1, 2000) <= 0)
		return -1;
	return fd;
}

static void test_host_connect(struct tvm *t)
{
	struct vsock_hdr h;
	char line[64] = { 0 }, data[4096], want[32];
	uint32_t hp, got = 0, buf = 8192, fwd = 0;
	int fd = host_connect(t->uds);
	ssize_t n;

	ok(fd >= 0, "host: connect to the uds");
	ok(write(fd, "CONNECT 5000\n", 13) == 13, "host: CONNECT 5000");
	ok(rx_get(t, &h, NULL, 2000), "guest: got a packet");
	ok(h.op == VSOCK_OP_REQUEST && h.dst_port == 5000 && h.src_cid == 2 &&
		   h.dst_cid == CID && h.type == 1 && h.src_port >= (1U << 30),
	   "guest: REQUEST to port 5000 from host port %u (op %u)", h.src_port,
	   h.op);
	hp = h.src_port;
	send_pkt(t, VSOCK_OP_RESPONSE, 5000, hp, NULL, 0, buf, 0);
	n = read_to(fd, line, sizeof(line) - 1, 2000);
	snprintf(want, sizeof(want), "OK %u\n", hp);
	ok(n > 0 && strcmp(line, want) == 0, "host: reads '%s'", want);

	/* guest → host */
	send_pkt(t, VSOCK_OP_RW, 5000, hp, "ping", 4, buf, 0);
	memset(line, 0, sizeof(line));
	n = read_to(fd, line, sizeof(line), 2000);
	ok(n == 4 && memcmp(line, "ping", 4) == 0, "host: reads guest data");

	/* host → guest: 32 KiB against 8 KiB credit */
	memset(data, 'x', sizeof(data));
	for (int i = 0; i < 8; i++)
		(void)!write(fd, data, sizeof(data));
	while (rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_RW)
		got += h.len;
	is_int(got, 8192, "credit: guest got exactly its buf_alloc");
	ok(!rx_get(t, &h, NULL, 200), "credit: nothing more without credit");
	fwd += got;
	send_pkt(t, VSOCK_OP_CREDIT_UPDATE, 5000, hp, NULL, 0, buf, fwd);
	got = 0;
	while (rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_RW)
		got += h.len;
	is_int(got, 8192, "credit: CREDIT_UPDATE resumed for 8 KiB more");
	fwd += got;
	/* a large buf_alloc takes the rest */
	send_pkt(t, VSOCK_OP_CREDIT_UPDATE, 5000, hp, NULL, 0, 1 << 20, fwd);
	got = 0;
	while (rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_RW)
		got += h.len;
	is_int(got, 16384, "credit: the rest after a bigger buf_alloc");

	/* CREDIT_REQUEST is answered */
	send_pkt(t, VSOCK_OP_CREDIT_REQUEST, 5000, hp, NULL, 0, 1 << 20, fwd);
	ok(rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_CREDIT_UPDATE &&
		   h.buf_alloc == VSOCK_BUF && h.fwd_cnt == 4,
	   "credit: CREDIT_REQUEST → CREDIT_UPDATE (fwd_cnt %u)", h.fwd_cnt);

	/* host half-close → SHUTDOWN(SEND); guest shuts too → RST */
	shutdown(fd, SHUT_WR);
	ok(rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_SHUTDOWN &&
		   h.flags == VSOCK_SHUTDOWN_SEND,
	   "host EOF → SHUTDOWN(SEND) (op %u flags %u)", h.op, h.flags);
	h = hdr(VSOCK_OP_SHUTDOWN, 5000, hp, 0, 1 << 20, fwd);
	h.flags = VSOCK_SHUTDOWN_SEND;
	tx_put(t, &h, NULL, 0, 44);
	ok(rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_RST, "both sides done "
							      "→ RST to the "
							      "guest");
	ok(read_to(fd, line, sizeof(line), 1000) == 0, "host: EOF");
	close(fd);
}

static void test_host_rst_cases(struct tvm *t)
{
	struct vsock_hdr h;
	char buf[64];
	uint32_t hp;
	int fd = host_connect(t->uds);

	/* nobody listens in the guest: RST closes the client */
	(void)!write(fd, "CONNECT 7000\n", 13);
	ok(rx_get(t, &h, NULL, 2000) && h.op == VSOCK_OP_REQUEST, "rst: "
								  "REQUEST to "
								  "7000");
	send_pkt(t, VSOCK_OP_RST, 7000, h.src_port, NULL, 0, 0, 0);
	ok(read_to(fd, buf, sizeof(buf), 2000) == 0, "rst: guest RST closes "
						     "the host client");
	close(fd);

	/* a bad CONNECT line closes the client, the guest hears nothing */
	fd = host_connect(t->uds);
	(void)!write(fd, "CONNECT x\n", 10);
	ok(read_to(fd, buf, sizeof(buf), 2000) == 0, "rst: bad line closed");
	close(fd);
	fd = host_connect(t->uds);
	(void)!write(fd, "CONNECT 123456789012345678901234567890", 38);
	ok(read_to(fd, buf, sizeof(buf), 2000) == 0, "rst: long line closed");
	close(fd);
	ok(!rx_get(t, &h, NULL, 200), "rst: guest saw nothing of them");

	/* host client disconnect → SHUTDOWN(RCV|SEND) */
	fd = open_host_conn(t, &hp);
	ok(fd >= 0, "rst: second connection up");
	close(fd);
	ok(rx_get(t, &h, NULL, 2000) && h.op == VSOCK_OP_SHUTDOWN &&
		   h.flags == 3,
	   "client gone → SHUTDOWN(3) (op %u flags %u)", h.op, h.flags);
	send_pkt(t, VSOCK_OP_RST, 5000, hp, NULL, 0, 0, 0);
	/* the connection is gone: data for it gets an RST */
	send_pkt(t, VSOCK_OP_RW, 5000, hp, "x", 1, 8192, 0);
	ok(rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_RST &&
		   h.dst_port == 5000 && h.src_port == hp,
	   "rst: data for a closed connection → RST");

	/* client gone while waiting for the RESPONSE → RST */
	drain(t);
	fd = host_connect(t->uds);
	(void)!write(fd, "CONNECT 5000\n", 13);
	ok(rx_get(t, &h, NULL, 2000) && h.op == VSOCK_OP_REQUEST, "rst: "
								  "REQUEST");
	close(fd);
	hp = h.src_port;
	ok(rx_get(t, &h, NULL, 2000) && h.op == VSOCK_OP_RST &&
		   h.src_port == hp,
	   "rst: client gone before RESPONSE → RST");
}

static struct vsock *vs_of(struct tvm *t)
{
	return (struct vsock *)t->v.state; /* dev is the first member */
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Host clients that never finish "CONNECT <port>\n": all of them are
 * closed, those beyond VSOCK_MAX_HANDSHAKE at once and the rest at the
 * handshake deadline (injected: 1 s), a client trickling bytes included;
 * then their slots serve a real client.
 */
static void test_silent_clients(struct tvm *t)
{
	static const char trickle[] = "CONNECT 5000";
	struct vsock *vs = vs_of(t);
	int fds[VSOCK_MAX_CONNS], nclosed = 0, early = -1, sent = 0;
	bool closed[VSOCK_MAX_CONNS] = { false };
	uint64_t t0, trickle_ms = 0, last_send = 0;
	unsigned int nconns, nhs;
	struct vsock_hdr h;
	char line[64] = { 0 };
	uint32_t hp;
	int fd;

	drain(t);
	virtio_dev_lock(&vs->dev);
	vs->handshake_ms = 1000;
	virtio_dev_unlock(&vs->dev);
	t0 = ms_now();
	for (int i = 0; i < VSOCK_MAX_CONNS; i++)
		fds[i] = host_connect(t->uds);
	while (nclosed < VSOCK_MAX_CONNS && ms_now() - t0 < 4000) {
		/* fds[0] sends a byte every 50 ms: it still has a deadline */
		if (!closed[0] && sent < (int)sizeof(trickle) - 1 &&
		    ms_now() - last_send >= 50) {
			(void)!send(fds[0], trickle + sent, 1, MSG_NOSIGNAL);
			sent++;
			last_send = ms_now();
		}
		for (int i = 0; i < VSOCK_MAX_CONNS; i++) {
			char b;
			ssize_t n;

			if (closed[i] || fds[i] < 0)
				continue;
			n = recv(fds[i], &b, 1, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno == ECONNRESET)) {
				closed[i] = true;
				nclosed++;
				if (i == 0)
					trickle_ms = ms_now() - t0;
			}
		}
		/* deadlines run from accept, after t0: none before 1 s */
		if (early < 0 && ms_now() - t0 >= 900)
			early = nclosed;
		usleep(10000);
	}
	ok(early >= VSOCK_MAX_CONNS - VSOCK_MAX_HANDSHAKE,
	   "clients beyond %d waiting for CONNECT closed at once (%d of %d)",
	   VSOCK_MAX_HANDSHAKE, early, VSOCK_MAX_CONNS);
	is_int(nclosed, VSOCK_MAX_CONNS,
	       "every silent client closed within 4 s");
	ok(closed[0] && trickle_ms >= 900 && trickle_ms < 3000,
	   "a client trickling its CONNECT line closed at the deadline "
	   "(%llu ms, %d bytes sent)",
	   (unsigned long long)trickle_ms, sent);
	virtio_dev_lock(&vs->dev);
	nconns = vs->nconns;
	nhs = vs->nhandshake;
	virtio_dev_unlock(&vs->dev);
	ok(nconns == 0 && nhs == 0,
	   "their slots are free (%u conns, %u "
	   "waiting)",
	   nconns, nhs);
	ok(!rx_get(t, &h, NULL, 100), "the guest heard nothing of them");

	/* a real client gets a slot (theirs are still open on our side),
	 * and keeps it past the deadline */
	fd = open_host_conn(t, &hp);
	ok(fd >= 0, "a real client connects after them");
	for (int i = 0; i < VSOCK_MAX_CONNS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	usleep(1200000);
	send_pkt(t, VSOCK_OP_RW, 5000, hp, "late", 4, 8192, 0);
	ok(read_to(fd, line, sizeof(line), 2000) == 4 &&
		   memcmp(line, "late", 4) == 0,
	   "a connected client is not subject to the CONNECT deadline");
	close(fd);
	ok(rx_get(t, &h, NULL, 2000) && h.op == VSOCK_OP_SHUTDOWN, "its close "
								   "reaches "
								   "the guest");
	send_pkt(t, VSOCK_OP_RST, 5000, hp, NULL, 0, 0, 0);
	drain(t);
	virtio_dev_lock(&vs->dev);
	vs->handshake_ms = VSOCK_HANDSHAKE_MS;
	virtio_dev_unlock(&vs->dev);
}

static void test_guest_connect(struct tvm *t)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vsock_hdr h;
	char path[160], buf[64] = { 0 }, data[4096];
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0), fd;
	uint32_t got = 0;

	snprintf(path, sizeof(path), "%s_6000", t->uds);
	strcpy(sa.sun_path, path);
	bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
	listen(lfd, 8);

	send_pkt(t, VSOCK_OP_REQUEST, 1234, 6000, NULL, 0, 65536, 0);
	ok(rx_get(t, &h, NULL, 2000) && h.op == VSOCK_OP_RESPONSE &&
		   h.src_port == 6000 && h.dst_port == 1234,
	   "guest connect: RESPONSE from <uds>_6000");
	fd = accept(lfd, NULL, NULL);
	ok(fd >= 0, "guest connect: host accepted");
	send_pkt(t, VSOCK_OP_RW, 1234, 6000, "hello", 5, 65536, 0);
	ok(read_to(fd, buf, sizeof(buf), 2000) == 5 &&
		   memcmp(buf, "hello", 5) == 0,
	   "guest connect: host reads hello");
	ok(write(fd, "world", 5) == 5, "host writes world");
	ok(rx_get(t, &h, buf, 2000) && h.op == VSOCK_OP_RW && h.len == 5 &&
		   memcmp(buf, "world", 5) == 0,
	   "guest connect: guest reads world");

	/*
	 * Guest → host beyond the socket's buffer: the device buffers up to
	 * its buf_alloc and the credit it reports stays honest.
	 */
	memset(data, 'y', sizeof(data));
	for (int i = 0; i < 64; i++)
		send_pkt(t, VSOCK_OP_RW, 1234, 6000, data, sizeof(data), 65536,
			 5);
	for (ssize_t n; (n = read_to(fd, data, sizeof(data), 500)) > 0;)
		got += (uint32_t)n;
	is_int(got, 64 * 4096, "guest connect: 256 KiB reached the host");
	{
		uint32_t fwd = 0;

		while (rx_get(t, &h, NULL, 300))
			if (h.op == VSOCK_OP_CREDIT_UPDATE)
				fwd = h.fwd_cnt;
		ok(fwd >= 5 + 3 * 4 * 16384,
		   "guest connect: CREDIT_UPDATEs as the host drains (%u)",
		   fwd);
	}

	/* guest RST closes the host side */
	send_pkt(t, VSOCK_OP_RST, 1234, 6000, NULL, 0, 0, 0);
	ok(read_to(fd, buf, sizeof(buf), 2000) == 0, "guest RST → host EOF");
	close(fd);

	/* a guest beyond its credit is reset */
	send_pkt(t, VSOCK_OP_REQUEST, 1235, 6000, NULL, 0, 65536, 0);
	ok(rx_get(t, &h, NULL, 2000) && h.op == VSOCK_OP_RESPONSE, "overrun: "
								   "connected");
	fd = accept(lfd, NULL, NULL);
	h.op = 0;
	for (int i = 0; i < 200 && h.op != VSOCK_OP_RST; i++) {
		send_pkt(t, VSOCK_OP_RW, 1235, 6000, data, sizeof(data), 65536,
			 0);
		while (rx_get(t, &h, NULL, 0) && h.op != VSOCK_OP_RST)
			;
	}
	while (h.op != VSOCK_OP_RST && rx_get(t, &h, NULL, 1000))
		;
	ok(h.op == VSOCK_OP_RST, "overrun: 800 KiB without credit → RST");
	close(fd);

	drain(t);
	/* nobody listening on <uds>_6001 */
	send_pkt(t, VSOCK_OP_REQUEST, 1236, 6001, NULL, 0, 65536, 0);
	ok(rx_get(t, &h, NULL, 2000) && h.op == VSOCK_OP_RST &&
		   h.src_port == 6001 && h.dst_port == 1236,
	   "guest connect: no listener → RST");
	close(lfd);
	unlink(path);
}

static unsigned int longest_chain(struct vsock *vs)
{
	unsigned int most = 0;

	virtio_dev_lock(&vs->dev);
	for (unsigned int b = 0; b < VSOCK_HASH; b++) {
		unsigned int n = 0;

		for (struct vsock_conn *c = vs->hash[b]; c != NULL;
		     c = c->hnext)
			n++;
		if (n > most)
			most = n;
	}
	virtio_dev_unlock(&vs->dev);
	return most;
}

/* Guest REQUEST from peer to host port 6100: the accepted fd, or -1. */
static int guest_open(struct tvm *t, int lfd, uint32_t peer)
{
	struct vsock_hdr h;

	send_pkt(t, VSOCK_OP_REQUEST, peer, 6100, NULL, 0, 65536, 0);
	if (!rx_get(t, &h, NULL, 2000) || h.dst_port != peer ||
	    h.op != VSOCK_OP_RESPONSE)
		return -1;
	return accept(lfd, NULL, NULL);
}

/* Data from the guest's port peer reaches fd, and nothing else does. */
static bool routes_to(struct tvm *t, uint32_t peer, int fd)
{
	char want[16], got[16] = { 0 };

	snprintf(want, sizeof(want), "%u", peer);
	send_pkt(t, VSOCK_OP_RW, peer, 6100, want, strlen(want), 65536, 0);
	return read_to(fd, got, sizeof(got) - 1, 2000) ==
		       (ssize_t)strlen(want) &&
	       strcmp(got, want) == 0;
}

static void guest_close(struct tvm *t, uint32_t peer, int fd)
{
	char b[16];

	send_pkt(t, VSOCK_OP_RST, peer, 6100, NULL, 0, 0, 0);
	(void)read_to(fd, b, sizeof(b), 1000);
	close(fd);
}

/*
 * Lookup by port pair: ports the guest picks to collide (in the old
 * unkeyed hash, and in the keyed one when it knows the key) leave every
 * bucket short and every packet routed to its own connection.
 */
static void test_lookup(struct tvm *t)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vsock *vs = vs_of(t);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0), fds[200], nopen = 0,
	    nrouted = 0, nfull = 0;
	uint32_t same[VSOCK_HASH_CHAIN_MAX + 1], probe;
	unsigned int n = 0, b;
	struct vsock_hdr h;
	char path[160];

	drain(t);
	snprintf(path, sizeof(path), "%s_6100", t->uds);
	strcpy(sa.sun_path, path);
	bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
	listen(lfd, 256);

	/* 200 peers equal modulo 256: one bucket of the old 256-entry hash */
	for (int i = 0; i < 200; i++)
		nopen += (fds[i] = guest_open(t, lfd, 20000 + 256 * i)) >= 0;
	is_int(nopen, 200, "200 guest connections with colliding ports");
	ok(longest_chain(vs) <= VSOCK_HASH_CHAIN_MAX,
	   "no bucket longer than %d (longest %u)", VSOCK_HASH_CHAIN_MAX,
	   longest_chain(vs));
	for (int i = 0; i < 200; i++)
		nrouted += fds[i] >= 0 && routes_to(t, 20000 + 256 * i, fds[i]);
	is_int(nrouted, 200, "each one's data reaches its own host socket");
	send_pkt(t, VSOCK_OP_RW, 20000 + 256 * 200, 6100, "x", 1, 65536, 0);
	ok(rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_RST &&
		   h.dst_port == 20000 + 256 * 200 && h.src_port == 6100,
	   "data for an unknown port pair among them: RST");
	for (int i = 0; i < 200; i++)
		if (fds[i] >= 0)
			guest_close(t, 20000 + 256 * i, fds[i]);
	drain(t);

	/* a guest that knows the key fills one bucket, and no more */
	b = vsock_hash_of(vs, 6100, 40000);
	for (probe = 40000; n < VSOCK_HASH_CHAIN_MAX + 1; probe++)
		if (vsock_hash_of(vs, 6100, probe) == b)
			same[n++] = probe;
	for (unsigned int i = 0; i < VSOCK_HASH_CHAIN_MAX; i++)
		nfull += (fds[i] = guest_open(t, lfd, same[i])) >= 0;
	is_int(nfull, VSOCK_HASH_CHAIN_MAX, "%d connections in one bucket",
	       VSOCK_HASH_CHAIN_MAX);
	send_pkt(t, VSOCK_OP_REQUEST, same[VSOCK_HASH_CHAIN_MAX], 6100, NULL, 0,
		 65536, 0);
	ok(rx_get(t, &h, NULL, 2000) && h.op == VSOCK_OP_RST &&
		   h.dst_port == same[VSOCK_HASH_CHAIN_MAX],
	   "one more in that bucket: RST");
	nrouted = 0;
	for (unsigned int i = 0; i < VSOCK_HASH_CHAIN_MAX; i++)
		nrouted += fds[i] >= 0 && routes_to(t, same[i], fds[i]);
	is_int(nrouted, VSOCK_HASH_CHAIN_MAX,
	       "lookups in the full bucket find each connection");
	send_pkt(t, VSOCK_OP_RW, same[VSOCK_HASH_CHAIN_MAX], 6100, "x", 1,
		 65536, 0);
	ok(rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_RST &&
		   h.dst_port == same[VSOCK_HASH_CHAIN_MAX],
	   "data for an unknown pair in the full bucket: RST");
	guest_close(t, same[0], fds[0]);
	fds[0] = guest_open(t, lfd, same[VSOCK_HASH_CHAIN_MAX]);
	ok(fds[0] >= 0 && routes_to(t, same[VSOCK_HASH_CHAIN_MAX], fds[0]),
	   "a freed place in the bucket is taken again");
	guest_close(t, same[VSOCK_HASH_CHAIN_MAX], fds[0]);
	for (unsigned int i = 1; i < VSOCK_HASH_CHAIN_MAX; i++)
		if (fds[i] >= 0)
			guest_close(t, same[i], fds[i]);
	drain(t);
	virtio_dev_lock(&vs->dev);
	n = vs->nconns;
	virtio_dev_unlock(&vs->dev);
	is_int((int)n, 0, "lookup: every connection gone");
	close(lfd);
	unlink(path);
}

static void test_malformed(struct tvm *t)
{
	struct vsock_hdr h = hdr(VSOCK_OP_REQUEST, 1, 6000, 0, 0, 0);

	drain(t);
	h.src_cid = 7;
	tx_put(t, &h, NULL, 0, 44);
	h = hdr(VSOCK_OP_REQUEST, 1, 6000, 0, 0, 0);
	h.dst_cid = 9;
	tx_put(t, &h, NULL, 0, 44);
	ok(!rx_get(t, &h, NULL, 200), "bad cid: dropped without reply");

	h = hdr(VSOCK_OP_REQUEST, 1, 6000, 0, 0, 0);
	h.type = 2;
	tx_put(t, &h, NULL, 0, 44);
	ok(rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_RST, "seqpacket → "
							      "RST");
	h = hdr(99, 1, 6000, 0, 0, 0);
	tx_put(t, &h, NULL, 0, 44);
	ok(rx_get(t, &h, NULL, 1000) && h.op == VSOCK_OP_RST, "unknown op, "
							      "unknown "
							      "connection → "
							      "RST");
	h = hdr(VSOCK_OP_RST, 1, 6000, 0, 0, 0);
	tx_put(t, &h, NULL, 0, 44);
	ok(!rx_get(t, &h, NULL, 200), "RST is never answered");

	h = hdr(VSOCK_OP_RW, 1, 6000, 100, 0, 0);
	tx_put(t, &h, NULL, 0, 60);
	h = hdr(VSOCK_OP_RW, 1, 6000, 70000, 0, 0);
	tx_put(t, &h, NULL, 0, 70044);
	h = hdr(VSOCK_OP_RW, 1, 6000, 0, 0, 0);
	tx_put(t, &h, NULL, 0, 20);
	ok(!rx_get(t, &h, NULL, 200), "len beyond the chain, > 64 KiB, short "
				      "header: dropped");
	ok(!(vdrv_rd(&t->v, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET),
	   "malformed packets do not break the device");

	/* many RSTs owed while rx is empty: tx waits, nothing lost */
	vdrv_wr(&t->v, VIRTIO_MMIO_STATUS, 0);
	driver_up(t, false);
	for (int i = 0; i < 80; i++) {
		/* a driver never has more than QSIZE chains out */
		for (int w = 0;
		     w < 2000 && i >= QSIZE &&
		     (uint16_t)(i - vdrv_used(&t->v, 1)->idx) >= QSIZE;
		     w++)
			usleep(1000);
		if (i >= QSIZE &&
		    (uint16_t)(i - vdrv_used(&t->v, 1)->idx) >= QSIZE)
			break;
		h = hdr(VSOCK_OP_RW, 100 + i, 6000, 0, 0, 0);
		memcpy(vdrv_gp(&t->v, TXBUF + 64ULL * i, 44), &h, 44);
		offer(t, 1, i % QSIZE, TXBUF + 64ULL * i, 44, 0);
	}
	usleep(100000);
	ok(vdrv_used(&t->v, 1)->idx == 64, "64 RSTs owed: tx waits (%u)",
	   vdrv_used(&t->v, 1)->idx);
	for (uint16_t i = 0; i < QSIZE; i++)
		post_rx(t, i);
	{
		int n = 0;

		while (rx_get(t, &h, NULL, 500) && h.op == VSOCK_OP_RST)
			n++;
		is_int(n, 80, "80 RSTs all delivered through a 16-entry rx");
	}

	/* an rx buffer too small for a header breaks the device */
	driver_up(t, false);
	offer(t, 0, 0, RXBUF(0), 16, VIRTQ_DESC_F_WRITE);
	h = hdr(VSOCK_OP_RW, 1, 6000, 0, 0, 0);
	tx_put(t, &h, NULL, 0, 44);
	usleep(100000);
	ok(vdrv_rd(&t->v, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
	   "rx buffer "
	   "of 16 "
	   "bytes → "
	   "device "
	   "broken");
}

static void test_config_and_restore(struct tvm *t)
{
	struct kiln_error err = { 0 };
	size_t size = virtio_mmio_state_size(t->v.dev);
	uint8_t *s = malloc(size);
	uint32_t hp, ev = 0xffffffff;
	char buf[16];
	int fd;

	driver_up(t, true);
	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_DEVICE_ID), 19, "device id 19");
	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_CONFIG), CID,
	       "config: guest_cid low");
	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_CONFIG + 4), 0,
	       "config: guest_cid high");
	fd = open_host_conn(t, &hp);
	ok(fd >= 0, "restore: a connection up");
	offer(t, 2, 0, EVBUF, 4, VIRTQ_DESC_F_WRITE);
	memcpy(vdrv_gp(&t->v, EVBUF, 4), &ev, 4);
	ok(virtio_mmio_save(t->v.dev, s, size, &err) == 0, "save: %s", err.msg);
	ok(virtio_mmio_restore(t->v.dev, s, size, &err) == 0, "restore: %s",
	   err.msg);
	ok(read_to(fd, buf, sizeof(buf), 2000) == 0, "restore: host "
						     "connections reset");
	close(fd);
	for (int i = 0; i < 1000 && vdrv_used(&t->v, 2)->idx == 0; i++)
		usleep(1000);
	memcpy(&ev, vdrv_gp(&t->v, EVBUF, 4), 4);
	ok(vdrv_used(&t->v, 2)->idx == 1 && ev == 0, "restore: TRANSPORT_RESET "
						     "event to "
						     "the guest");
	/* a corrupt device state is refused */
	memset(s + size - 16, 0xff, 4);
	ok(virtio_mmio_restore(t->v.dev, s, size, &err) < 0, "restore: bad "
							     "version refused");
	free(s);
}

/*
 * A snapshot while the device holds a popped rx buffer (it popped one for
 * a connection that had nothing to send after all): the restored device
 * uses that buffer first, the guest loses none.
 */
static void test_restore_held_rx(struct tvm *t)
{
	struct kiln_error err = { 0 };
	size_t size = virtio_mmio_state_size(t->v.dev);
	uint8_t *s = malloc(size);
	struct vsock *vs = t->v.dev->priv;
	struct virtq_used_elem e = { .id = 0xffff };
	bool held;
	int fd;

	driver_up(t, false);
	post_rx(t, 0);
	post_rx(t, 1);
	offer(t, 2, 0, EVBUF, 4, VIRTQ_DESC_F_WRITE);
	/* what vsock_rx_run leaves when a pending connection had nothing */
	virtio_dev_lock(t->v.dev);
	held = virtq_pop(&t->v.dev->queues[VSOCK_RXQ], &vs->rx_chain) == 1 &&
	       vs->rx_chain.head == 0;
	vs->rx_held = held;
	virtio_dev_unlock(t->v.dev);
	ok(held, "held rx: buffer 0 popped and held");
	ok(virtio_mmio_save(t->v.dev, s, size, &err) == 0 &&
		   virtio_mmio_restore(t->v.dev, s, size, &err) == 0,
	   "held rx: save and restore: %s", err.msg);
	fd = host_connect(t->uds);
	ok(fd >= 0 && write(fd, "CONNECT 5000\n", 13) == 13, "held rx: a host "
							     "connection after "
							     "the restore");
	/* its REQUEST waits until the guest has taken the TRANSPORT_RESET
	 * (it refills its event queue then), or the reset would drop it */
	for (int i = 0; i < 2000 && vdrv_used(&t->v, 2)->idx == 0; i++)
		usleep(1000);
	is_int(vdrv_used(&t->v, 2)->idx, 1, "held rx: the reset is given");
	usleep(200 * 1000);
	ok(!vdrv_used_next(&t->v, 0, &e), "held rx: no REQUEST before the "
					  "guest took the reset");
	offer(t, 2, 1, EVBUF + 4, 4, VIRTQ_DESC_F_WRITE);
	for (int i = 0; i < 2000 && !vdrv_used_next(&t->v, 0, &e); i++) {
		e.id = 0xffff;
		usleep(1000);
	}
	is_int(e.id, 0, "held rx: its REQUEST lands in buffer 0, the one held");
	if (fd >= 0)
		close(fd);
	free(s);
}

static void test_bind(void)
{
	struct kiln_error err = { 0 };
	struct vm vm = { 0 };
	struct vm_config cfg = { 0 };
	char dir[] = "/tmp/kiln-vsock.XXXXXX", path[128];
	void *st = NULL;
	int fd;

	mkdtemp(dir);
	snprintf(path, sizeof(path), "%s/nodir/v.sock", dir);
	cfg.vsock = (struct vm_vsock){ true, CID, path };
	vm.cfg = &cfg;
	vm.kvm_fd = vm.vm_fd = vm.signal_fd = -1;
	vm.loop.epfd = vm.loop.stop_efd = -1;
	guest_mem_init(&vm.mem, MEM_SIZE, &err);
	ok(vdrv_find("virtio_vsock")->init(&vm, &st, &err) < 0 &&
		   strstr(err.msg, path) != NULL,
	   "bind: error names the path: %s", err.msg);

	/* a stale socket (nobody listening) is replaced */
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		strcpy(sa.sun_path, path);
		bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
	}
	ok(vdrv_find("virtio_vsock")->init(&vm, &st, &err) == 0,
	   "bind: stale socket replaced: %s", err.msg);
	/* a live one is not */
	{
		void *st2 = NULL;

		ok(vdrv_find("virtio_vsock")->init(&vm, &st2, &err) < 0 &&
			   strstr(err.msg, path) != NULL,
		   "bind: live socket refused: %s", err.msg);
	}
	vdrv_find("virtio_vsock")->exit(&vm, st);
	ok(access(path, F_OK) < 0, "exit: socket unlinked");
	/* a regular file is never removed */
	close(creat(path, 0600));
	ok(vdrv_find("virtio_vsock")->init(&vm, &st, &err) < 0 &&
		   access(path, F_OK) == 0,
	   "bind: a regular file at the path is refused and kept");
	unlink(path);
	rmdir(dir);
	trap_table_destroy(&vm.traps);
	guest_mem_destroy(&vm.mem);
	free(vm.cmdline_extra);
}

int main(void)
{
	int fds;
	struct tvm *t;
	char uds[128];

	log_set_level(LOG_ERROR);
	fds = count_fds();
	t = tvm_new();
	strcpy(uds, t->uds);
	driver_up(t, true);
	test_host_connect(t);
	test_host_rst_cases(t);
	test_silent_clients(t);
	test_guest_connect(t);
	test_lookup(t);
	test_malformed(t);
	test_config_and_restore(t);
	test_restore_held_rx(t);
	{
		/* a connection left open at exit is closed */
		uint32_t hp;
		int fd;

		driver_up(t, true);
		fd = open_host_conn(t, &hp);
		tvm_free(t);
		ok(fd >= 0 && read_to(fd, uds + 100, 1, 1000) == 0, "exit: "
								    "open "
								    "connection"
								    "s closed");
		close(fd);
	}
	ok(access(uds, F_OK) < 0, "exit: uds unlinked");
	is_int(count_fds(), fds, "exit: no fd leaked");
	test_bind();
	return tap_done();
}
