/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net over a real TAP, driven through the virtio-mmio trap table as
 * a vCPU would, with the VMM event loop run in short slices. The test
 * enters a fresh network namespace (unshare(CLONE_NEWNET), needs root),
 * creates a persistent TAP there and watches its far side with an
 * AF_PACKET socket: what the guest sends appears on it, what we send on
 * it lands in guest rx buffers. No KVM: vm_fd is -1. A second, multi-queue
 * TAP serves a device of two queue pairs: the control queue, which pair
 * a frame lands in, and the snapshot of that device.
 *
 * Build: make build/test/test_virtio_net
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/log.h"
#include "../../vmm/virtio/net_priv.h"
#include "../lib/vdriver.h"
#include "tap.h"

#define TAPNAME	 "ktest0"
#define MQNAME	 "ktestmq0" /* multi-queue */
#define ETHTYPE	 0x88b5	    /* local experimental: nothing else sends it */
#define MEM_SIZE (16ULL << 20)
#define QSIZE	 16
#define RXDESC	 0x1000ULL
#define RXAVAIL	 0x2000ULL
#define RXUSED	 0x3000ULL
#define TXDESC	 0x5000ULL
#define TXAVAIL	 0x6000ULL
#define TXUSED	 0x7000ULL
#define RXBUF	 0x100000ULL
#define TXBUF	 0x400000ULL

#define F_MAC	 (1u << 5)
#define F_MRG	 (1u << 15)
#define F_STATUS (1u << 16)
#define F_EVIDX	 (1u << 29) /* VIRTIO_RING_F_EVENT_IDX */
#define S_ACK	 VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV	 VIRTIO_CONFIG_S_DRIVER
#define S_FOK	 VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK	 VIRTIO_CONFIG_S_DRIVER_OK
#define S_NRS	 VIRTIO_CONFIG_S_NEEDS_RESET

static const uint8_t MAC[6] = { 0x02, 0x4b, 0x49, 0x4c, 0x4e, 0x01 };

struct tvm {
	struct vdrv v;
	int timer; /* stops the loop: see spin() */
	struct evloop_entry *timer_ev;
};

static int pkt = -1; /* AF_PACKET on the TAP's far side */
static int ifindex;
static int mqpkt = -1, mqindex; /* the same for MQNAME */

static void on_timer(void *opaque, uint32_t events)
{
	struct tvm *t = opaque;
	uint64_t v;

	if (read(t->timer, &v, sizeof(v)) < 0) {
		/* nonblocking: nothing */
	}
	evloop_stop(&t->v.vm.loop);
}

/* Run the VMM event loop for ms milliseconds. */
static void spin(struct tvm *t, int ms)
{
	struct itimerspec it = { .it_value = { 0, ms * 1000000L } };
	struct kiln_error err;

	timerfd_settime(t->timer, 0, &it, NULL);
	t->v.vm.loop.stopping = false;
	evloop_run(&t->v.vm.loop, &err);
}

/*
 * Run the loop until cond holds, at most max_ms: frames written to the
 * TAP reach it when the host's network stack gets to them, which on a
 * loaded machine can take longer than any fixed spin.
 */
#define SPIN_UNTIL(t, cond, max_ms)                                  \
	for (int spun_ = 0; !(cond) && spun_ < (max_ms); spun_ += 5) \
	spin(t, 5)

static int tvm_init_pairs(struct tvm *t, const char *tap, unsigned int pairs,
			  struct kiln_error *err);

static int tvm_init(struct tvm *t, const char *tap, struct kiln_error *err)
{
	return tvm_init_pairs(t, tap, 1, err);
}

/* Queue q of an MQ device: rings at MQRING(q), buffers in MQ* below. */
#define MQRING(q)  (0x10000ULL + 0x4000ULL * (q))
#define MQRX(p, k) (0x100000ULL + 0x100000ULL * (p) + 0x1000ULL * (k))
#define MQTX	   0x600000ULL
#define MQCTRL	   0x700000ULL

static int tvm_init_pairs(struct tvm *t, const char *tap, unsigned int pairs,
			  struct kiln_error *err)
{
	struct vdrv *v = &t->v;

	vdrv_init(v);
	t->timer = -1;
	t->timer_ev = NULL;
	v->cfg.nnets = 1;
	v->cfg.nets[0] = (struct vm_net){ .id = "eth0",
					  .tap = (char *)tap,
					  .has_mac = true,
					  .queue_pairs = pairs };
	memcpy(v->cfg.nets[0].mac, MAC, 6);
	if (pairs > 1) {
		for (unsigned int q = 0; q < 2 * pairs + 1; q++)
			vdrv_queue_at(v, q, MQRING(q), MQRING(q) + 0x1000,
				      MQRING(q) + 0x2000, QSIZE);
		v->clear_gpa = MQRING(0);
		v->clear_len = MQRING(2 * pairs + 1) - MQRING(0);
	} else {
		vdrv_queue_at(v, 0, RXDESC, RXAVAIL, RXUSED, QSIZE);
		vdrv_queue_at(v, 1, TXDESC, TXAVAIL, TXUSED, QSIZE);
		v->clear_gpa = 0;
		v->clear_len = 0x8000;
	}
	if (vdrv_mem_alloc(v, MEM_SIZE, err) < 0 ||
	    evloop_init(&v->vm.loop, err) < 0)
		return -1;
	t->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	t->timer_ev =
		evloop_add(&v->vm.loop, t->timer, EPOLLIN, on_timer, t, err);
	if (t->timer_ev == NULL)
		return -1;
	return vdrv_attach(v, "virtio_net", err);
}

static void tvm_free(struct tvm *t)
{
	evloop_del(&t->v.vm.loop, t->timer_ev);
	close(t->timer);
	vdrv_destroy(&t->v);
}

static struct tvm *tvm_new_pairs(const char *tap, unsigned int pairs)
{
	struct kiln_error err = { 0 };
	struct tvm *t = malloc(sizeof(*t));

	if (tvm_init_pairs(t, tap, pairs, &err) < 0 || t->v.state == NULL) {
		printf("Bail out! %s\n", err.msg);
		exit(1);
	}
	/* the set's first member: struct net_set { count; nets[] } */
	vdrv_use(&t->v, *(struct virtio_dev **)((char *)t->v.state + 8));
	return t;
}

static struct tvm *tvm_new(void)
{
	return tvm_new_pairs(TAPNAME, 1);
}

static size_t make_frame(uint8_t *f, size_t len, uint8_t seed)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, MAC, 6);
	f[12] = ETHTYPE >> 8;
	f[13] = ETHTYPE & 0xff;
	for (size_t i = 14; i < len; i++)
		f[i] = (uint8_t)(seed + i);
	return len;
}

/* Send a frame into the TAP from the host side: the guest receives it. */
static void host_send(const uint8_t *f, size_t len)
{
	struct sockaddr_ll sa = { .sll_family = AF_PACKET,
				  .sll_ifindex = ifindex,
				  .sll_halen = 6 };

	if (sendto(pkt, f, len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		printf("# sendto: %s\n", strerror(errno));
}

/* The next frame of ours the guest sent on the TAP of sock, or -1. */
static ssize_t host_recv_on(int sock, uint8_t *f, size_t len)
{
	for (int i = 0; i < 100; i++) {
		struct sockaddr_ll sa;
		socklen_t sl = sizeof(sa);
		ssize_t n = recvfrom(sock, f, len, MSG_DONTWAIT,
				     (struct sockaddr *)&sa, &sl);

		if (n < 0)
			return -1;
		if (sa.sll_pkttype != PACKET_OUTGOING && n >= 14 &&
		    f[12] == (ETHTYPE >> 8) && f[13] == (ETHTYPE & 0xff))
			return n;
	}
	return -1;
}

static ssize_t host_recv(uint8_t *f, size_t len)
{
	return host_recv_on(pkt, f, len);
}

/* The epoll events the loop waits for on the TAP fd (fdinfo), or -1. */
static long tap_events(struct tvm *t)
{
	char path[300], line[256], link[64];
	int tapfd = -1;
	long ev = -1;
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	FILE *f;

	while (d != NULL && (e = readdir(d)) != NULL) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0 && (link[n] = 0, strcmp(link, "/dev/net/tun") == 0))
			tapfd = atoi(e->d_name);
	}
	if (d != NULL)
		closedir(d);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", t->v.vm.loop.epfd);
	f = fopen(path, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		int fd;
		unsigned int events;

		if (sscanf(line, "tfd: %d events: %x", &fd, &events) == 2 &&
		    fd == tapfd)
			ev = events;
	}
	if (f != NULL)
		fclose(f);
	return ev;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	int r = fd >= 0 && write(fd, s, strlen(s)) > 0 ? 0 : -1;

	if (fd >= 0)
		close(fd);
	return r;
}

/* A persistent TAP, up, and an AF_PACKET socket bound to it. */
static int tap_make(const char *name, bool multi_queue, int *index, int *sock)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_ll sa = { .sll_family = AF_PACKET,
				  .sll_protocol = htons(ETH_P_ALL) };
	int fd, s;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	strcpy(ifr.ifr_name, name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (multi_queue)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0)
		return -1;
	close(fd);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, name);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return -1;
	close(s);
	*index = (int)if_nametoindex(name);
	*sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	sa.sll_ifindex = *index;
	if (*sock < 0 || bind(*sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return 0;
}

static int netns_setup(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		return -1;
	write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	if (tap_make(TAPNAME, false, &ifindex, &pkt) < 0 ||
	    tap_make(MQNAME, true, &mqindex, &mqpkt) < 0)
		return -1;
	return 0;
}

/* ---- tests ---- */

static void test_glue(void)
{
	struct kiln_error err = { 0 };
	struct tvm t;

	ok(vdrv_find("virtio_net")->level == DEVICE_LEVEL_VIRTIO, "glue: "
								  "virtio_net "
								  "registered "
								  "at the "
								  "virtio "
								  "level");
	is_int(tvm_init(&t, "nosuch0", &err), -1, "missing TAP: init fails");
	ok(strstr(err.msg, "TAP `nosuch0` does not exist") &&
		   strstr(err.msg, "eth0"),
	   "missing TAP: error names it: %s", err.msg);
	ok(t.v.state == NULL, "missing TAP: no device left");
	tvm_free(&t);
	memset(&err, 0, sizeof(err));
	is_int(tvm_init(&t, "lo", &err), -1, "not a TAP: init fails");
	ok(strstr(err.msg, "`lo`") != NULL, "not a TAP: named: %s", err.msg);
	tvm_free(&t);
}

static void test_config(struct tvm *t)
{
	uint8_t mac[6];
	uint32_t f;

	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_DEVICE_ID), 1, "device id 1: net");
	vdrv_wr(&t->v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f = vdrv_rd(&t->v, VIRTIO_MMIO_DEVICE_FEATURES);
	ok((f & (F_MAC | F_MRG | F_STATUS)) == (F_MAC | F_MRG | F_STATUS),
	   "features: MAC, MRG_RXBUF, STATUS offered (0x%x)", f);
	ok((f & 0x3) == 0x3 && (f & (3u << 7)) && (f & (3u << 11)),
	   "features: TAP offloads probed and offered (0x%x)", f);
	ok(!(f & (1u << 17)), "features: no control queue");
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)vdrv_rd(&t->v, VIRTIO_MMIO_CONFIG + i);
	ok(memcmp(mac, MAC, 6) == 0, "config: MAC from the config");
	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_CONFIG + 6) & 0xffff, 1,
	       "config: link up");
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_SEL, 2);
	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "two queues only");
}

static void test_tx(struct tvm *t)
{
	uint8_t f[1600], got[2000];
	ssize_t n;

	vdrv_handshake(&t->v, F_MAC, 1, true);
	memset(vdrv_gp(&t->v, TXBUF, 12), 0, 12);
	make_frame(vdrv_gp(&t->v, TXBUF + 12, 1000), 1000, 7);
	/* header and the frame split over three descriptors */
	vdrv_set_desc(&t->v, 1, 0, TXBUF, 12, VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(&t->v, 1, 1, TXBUF + 12, 300, VIRTQ_DESC_F_NEXT, 2);
	vdrv_set_desc(&t->v, 1, 2, TXBUF + 312, 700, 0, 0);
	vdrv_publish(&t->v, 1, 0);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	spin(t, 50);
	is_int(vdrv_used(&t->v, 1)->idx, 1, "tx: chain used");
	n = host_recv(got, sizeof(got));
	make_frame(f, 1000, 7);
	ok(n == 1000 && memcmp(got, f, 1000) == 0,
	   "tx: the frame appears on the TAP (%zd bytes)", n);
}

static void rx_buffers(struct tvm *t, unsigned int first, unsigned int count,
		       uint32_t size)
{
	for (unsigned int i = first; i < first + count; i++) {
		vdrv_set_desc(&t->v, 0, i % QSIZE,
			      RXBUF + 0x10000ULL * (i % QSIZE), size,
			      VIRTQ_DESC_F_WRITE, 0);
		vdrv_publish(&t->v, 0, i % QSIZE);
	}
}

static void test_rx(struct tvm *t)
{
	uint8_t f[1600];
	uint8_t *b = vdrv_gp(&t->v, RXBUF, 2048);

	vdrv_handshake(&t->v, F_MAC, 1, true);
	rx_buffers(t, 0, 2, 2048);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	spin(t, 20);
	ok(tap_events(t) & EPOLLIN, "rx: polling while buffers are there");
	host_send(f, make_frame(f, 600, 3));
	spin(t, 50);
	is_int(vdrv_used(&t->v, 0)->idx, 1, "rx: one buffer used");
	is_int(vdrv_used(&t->v, 0)->ring[0].len, 12 + 600,
	       "rx: header + frame");
	ok(b[10] == 1 && b[11] == 0, "rx: num_buffers 1");
	ok(memcmp(b + 12, f, 600) == 0, "rx: the frame in the buffer");
}

static void test_rx_mergeable(struct tvm *t)
{
	uint8_t f[1600];
	struct virtq_used *u;
	int ok_data = 1;
	uint32_t off = 0;

	vdrv_handshake(&t->v, F_MAC | F_MRG, 1, true);
	rx_buffers(t, 0, 8, 64);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	spin(t, 20);
	host_send(f, make_frame(f, 200, 9));
	spin(t, 50);
	u = vdrv_used(&t->v, 0);
	is_int(u->idx, 4, "mrg: 212 bytes over four 64-byte buffers");
	is_int(((uint8_t *)vdrv_gp(&t->v, RXBUF, 12))[10], 4,
	       "mrg: num_buffers 4");
	for (unsigned int i = 0; i < 4 && i < u->idx; i++) {
		uint8_t *p =
			vdrv_gp(&t->v, RXBUF + 0x10000ULL * u->ring[i].id, 64);
		uint32_t skip = i == 0 ? 12 : 0;

		if (memcmp(p + skip, f + off, u->ring[i].len - skip) != 0)
			ok_data = 0;
		off += u->ring[i].len - skip;
	}
	ok(ok_data && off == 200, "mrg: the frame spread in order");
}

static void test_rx_no_buffers(struct tvm *t)
{
	uint8_t f[1600], *b;

	vdrv_handshake(&t->v, F_MAC, 1, true);
	rx_buffers(t, 0, 1, 2048);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	spin(t, 20);
	host_send(f, make_frame(f, 100, 1));
	host_send(f, make_frame(f, 120, 2));
	spin(t, 50);
	is_int(vdrv_used(&t->v, 0)->idx, 1,
	       "no buffers: the first frame delivered");
	ok(!(tap_events(t) & EPOLLIN),
	   "no buffers: the TAP is not polled (events 0x%lx)", tap_events(t));
	spin(t, 50);
	is_int(vdrv_used(&t->v, 0)->idx, 1,
	       "no buffers: nothing more, no spinning");
	rx_buffers(t, 1, 1, 2048);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	spin(t, 50);
	is_int(vdrv_used(&t->v, 0)->idx, 2,
	       "no buffers: kick delivers the pending frame");
	b = vdrv_gp(&t->v, RXBUF + 0x10000, 2048);
	ok(vdrv_used(&t->v, 0)->ring[1].len == 132 &&
		   memcmp(b + 12, f, 120) == 0,
	   "no buffers: it is the second frame, intact");
	ok(tap_events(t) & EPOLLIN, "no buffers: polling resumed");
}

/*
 * More frames wait on the TAP than one wakeup takes (NET_RX_BATCH, 64)
 * while the ring was dry: the kick that brings buffers must not be the
 * last thing that reads the TAP. The driver here, like Linux with
 * EVENT_IDX, kicks once (its avail index crossed avail_event) and then
 * only adds buffers; every frame must still arrive.
 */
#define BIGQ   128
#define NFRAME 100
static void test_rx_more_than_a_batch(struct tvm *t)
{
	uint8_t f[1600];
	int intact = 1;

	vdrv_queue_at(&t->v, 0, RXDESC, RXAVAIL, RXUSED, BIGQ);
	vdrv_handshake(&t->v, F_MAC | F_EVIDX, 1, true);
	spin(t, 20);
	for (unsigned int i = 0; i < NFRAME; i++)
		host_send(f, make_frame(f, 100, (uint8_t)i));
	spin(t, 50);
	is_int(vdrv_used(&t->v, 0)->idx, 0, "batch: no buffers, nothing used");
	ok(!(tap_events(t) & EPOLLIN), "batch: the dry ring stops polling");
	for (unsigned int i = 0; i < BIGQ; i++) {
		vdrv_set_desc(&t->v, 0, i, RXBUF + 0x800ULL * i, 2048,
			      VIRTQ_DESC_F_WRITE, 0);
		vdrv_publish(&t->v, 0, (uint16_t)i);
	}
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	spin(t, 200);
	is_int(vdrv_used(&t->v, 0)->idx, NFRAME,
	       "batch: all %d frames delivered after one kick", NFRAME);
	for (unsigned int i = 0; i < NFRAME && i < vdrv_used(&t->v, 0)->idx;
	     i++) {
		const struct virtq_used_elem *e = &vdrv_used(&t->v, 0)->ring[i];
		uint8_t *b = vdrv_gp(&t->v, RXBUF + 0x800ULL * e->id, 2048);

		make_frame(f, 100, (uint8_t)i);
		if (e->len != 112 || memcmp(b + 12, f, 100) != 0)
			intact = 0;
	}
	ok(intact, "batch: in order and intact");
	ok(tap_events(t) & EPOLLIN, "batch: buffers left, the TAP is polled");
	vdrv_queue_at(&t->v, 0, RXDESC, RXAVAIL, RXUSED, QSIZE);
}

/* ---- when interrupts are raised ---- */

static struct tvm *irq_tvm;
static unsigned int irq_queue, nirq;
static uint16_t irq_used[8]; /* the queue's used idx at each interrupt */
static void (*irq_real)(struct virtio_dev *d, uint32_t bits);

static void irq_record(struct virtio_dev *d, uint32_t bits)
{
	if (nirq < 8)
		irq_used[nirq] = vdrv_used(&irq_tvm->v, irq_queue)->idx;
	nirq++;
	irq_real(d, bits);
}

static void irq_watch(struct tvm *t, unsigned int queue)
{
	irq_tvm = t;
	irq_queue = queue;
	nirq = 0;
	irq_real = t->v.dev->interrupt;
	t->v.dev->interrupt = irq_record;
}

static void irq_unwatch(struct tvm *t)
{
	t->v.dev->interrupt = irq_real;
}

/* The driver's used_event of queue q (the avail ring's last field). */
static uint16_t *used_event(struct tvm *t, unsigned int q)
{
	return vdrv_gp(&t->v, (q == 0 ? RXAVAIL : TXAVAIL) + 4 + 2 * QSIZE, 2);
}

/* Offer tx frame i (header + 200 bytes) in one descriptor, no kick. */
static void tx_frame(struct tvm *t, unsigned int i)
{
	uint64_t a = TXBUF + 0x1000ULL * (i % QSIZE);

	memset(vdrv_gp(&t->v, a, 12), 0, 12);
	make_frame(vdrv_gp(&t->v, a + 12, 200), 200, (uint8_t)i);
	vdrv_set_desc(&t->v, 1, i % QSIZE, a, 212, 0, 0);
	vdrv_publish(&t->v, 1, i % QSIZE);
}

/*
 * With EVENT_IDX the driver names the used entry it wants an interrupt
 * for; Linux's virtio-net asks for the next tx completion when its TCP
 * waits on one (TCP small queues). The device must raise it when that
 * entry is used, not after the rest of the batch went through the TAP
 * (each write runs the host's receive path first).
 */
static void test_tx_interrupts(struct tvm *t)
{
	uint8_t got[2000];
	int n = 0;

	vdrv_handshake(&t->v, F_MAC | F_EVIDX, 1, true);
	irq_watch(t, 1);
	tx_frame(t, 0);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	spin(t, 50);
	is_int(nirq, 1, "tx irq: the first completion interrupts");
	*used_event(t, 1) = 1; /* "when used idx passes 1" */
	nirq = 0;
	for (unsigned int i = 1; i <= 3; i++)
		tx_frame(t, i);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	spin(t, 50);
	is_int(vdrv_used(&t->v, 1)->idx, 4, "tx irq: one kick sends all three");
	is_int(nirq, 1, "tx irq: one interrupt for them");
	is_int(irq_used[0], 2,
	       "tx irq: raised as the frame used_event names is used, before "
	       "the rest of the batch");
	*used_event(t, 1) = 100;
	nirq = 0;
	tx_frame(t, 4);
	tx_frame(t, 5);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	spin(t, 50);
	is_int(vdrv_used(&t->v, 1)->idx, 6, "tx irq: two more sent");
	is_int(nirq, 0, "tx irq: none before used_event is reached");
	irq_unwatch(t);
	while (host_recv(got, sizeof(got)) > 0)
		n++;
	is_int(n, 6, "tx irq: six frames on the TAP");
}

/* The same on rx: Linux's NAPI asks for the next buffer used. */
static void test_rx_interrupts(struct tvm *t)
{
	uint8_t f[200];

	vdrv_handshake(&t->v, F_MAC | F_EVIDX, 1, true);
	irq_watch(t, 0);
	rx_buffers(t, 0, 8, 2048);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	spin(t, 20);
	host_send(f, make_frame(f, 100, 1));
	spin(t, 50);
	is_int(nirq, 1, "rx irq: the first frame interrupts");
	*used_event(t, 0) = 1;
	nirq = 0;
	for (uint8_t i = 2; i <= 4; i++)
		host_send(f, make_frame(f, 100, i));
	spin(t, 50);
	is_int(vdrv_used(&t->v, 0)->idx, 4, "rx irq: three more delivered");
	is_int(nirq, 1, "rx irq: one interrupt for them");
	is_int(irq_used[0], 2,
	       "rx irq: raised as the buffer used_event names is used, before "
	       "the rest of the batch");
	irq_unwatch(t);
}

static void expect_broken(struct tvm *t, const char *what)
{
	spin(t, 20);
	ok(vdrv_rd(&t->v, VIRTIO_MMIO_STATUS) & S_NRS,
	   "malformed: %s → NEEDS_RESET", what);
}

static void test_malformed(struct tvm *t)
{
	vdrv_handshake(&t->v, F_MAC, 1, true);
	vdrv_set_desc(&t->v, 1, 0, TXBUF, 4, 0, 0);
	vdrv_publish(&t->v, 1, 0);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	expect_broken(t, "tx chain shorter than the header");

	vdrv_handshake(&t->v, F_MAC, 1, true);
	vdrv_set_desc(&t->v, 1, 0, TXBUF, 100, VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(&t->v, 1, 1, TXBUF + 100, 100, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(&t->v, 1, 0);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	expect_broken(t, "tx chain with a writable descriptor");

	vdrv_handshake(&t->v, F_MAC, 1, true);
	vdrv_set_desc(&t->v, 1, 0, TXBUF, 40000, VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(&t->v, 1, 1, TXBUF + 40000, 40000, 0, 0);
	vdrv_publish(&t->v, 1, 0);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	expect_broken(t, "tx frame over 65562 bytes");

	vdrv_handshake(&t->v, F_MAC, 1, true);
	vdrv_set_desc(&t->v, 0, 0, RXBUF, 100, VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(&t->v, 0, 1, RXBUF + 100, 2000, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(&t->v, 0, 0);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	{
		uint8_t f[200];

		host_send(f, make_frame(f, 100, 4));
	}
	expect_broken(t, "rx chain with a readable descriptor");

	vdrv_handshake(&t->v, F_MAC | F_MRG, 1, true);
	rx_buffers(t, 0, 1, 8);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	{
		uint8_t f[200];

		host_send(f, make_frame(f, 100, 5));
	}
	expect_broken(t, "mergeable rx buffer smaller than the header");

	vdrv_handshake(&t->v, F_MAC, 1, true);
	rx_buffers(t, 0, 1, 50);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	{
		uint8_t f[200];

		host_send(f, make_frame(f, 100, 6));
	}
	spin(t, 50);
	ok(!(vdrv_rd(&t->v, VIRTIO_MMIO_STATUS) & S_NRS) &&
		   vdrv_used(&t->v, 0)->idx == 1 &&
		   vdrv_used(&t->v, 0)->ring[0].len == 0,
	   "small rx buffer without MRG: frame dropped, buffer returned");
}

static void test_snapshot(struct tvm *t)
{
	static uint8_t s[8192], bad[8192];
	struct kiln_error err = { 0 };
	size_t size = virtio_mmio_state_size(t->v.dev);
	size_t dev_off = sizeof(struct virtio_mmio_state);

	vdrv_handshake(&t->v, F_MAC | F_MRG, 1, true);
	is_int(size - dev_off, 40,
	       "one pair: 40 bytes of net state, as before queue pairs");
	ok(size <= sizeof(s) && virtio_mmio_save(t->v.dev, s, size, &err) == 0,
	   "save: %s", err.msg);
	is_int(s[dev_off], 1, "one pair: net state version 1");
	is_int(virtio_mmio_restore(t->v.dev, s, size, &err), 0, "restore: %s",
	       err.msg);
	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_STATUS),
	       S_ACK | S_DRV | S_FOK | S_DOK, "restore: running");
	memcpy(bad, s, size);
	bad[dev_off] ^= 1; /* version */
	ok(virtio_mmio_restore(t->v.dev, bad, size, &err) < 0,
	   "restore refused: version (%s)", err.msg);
	memcpy(bad, s, size);
	memset(bad + dev_off + 12, 'x', IFNAMSIZ); /* tap name */
	ok(virtio_mmio_restore(t->v.dev, bad, size, &err) < 0,
	   "restore refused: unterminated TAP name (%s)", err.msg);
	memcpy(bad, s, size);
	bad[dev_off + 10] = 0; /* has_mac */
	ok(virtio_mmio_restore(t->v.dev, bad, size, &err) < 0,
	   "restore refused: MAC presence differs (%s)", err.msg);
	memcpy(bad, s, size);
	bad[dev_off + 28 + 7] |= 0x80; /* acked feature bit 63 */
	ok(virtio_mmio_restore(t->v.dev, bad, size, &err) < 0,
	   "restore refused: features not offered (%s)", err.msg);
}

/*
 * A snapshot taken while a frame is half given (MRG_RXBUF, the ring ran
 * dry): the held buffers are neither used nor lost. The restored device
 * drops the frame and fills the same buffers, in order, with the next.
 */
static void test_snapshot_held_rx(struct tvm *t)
{
	static uint8_t s[8192];
	uint8_t f[1600], g[1600];
	struct kiln_error err = { 0 };
	size_t size = virtio_mmio_state_size(t->v.dev);
	struct virtq_used *u;

	vdrv_handshake(&t->v, F_MAC | F_MRG, 1, true);
	rx_buffers(t, 0, 2, 64);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	spin(t, 20);
	host_send(f, make_frame(f, 200, 5)); /* 212 bytes: 4 buffers */
	spin(t, 50);
	u = vdrv_used(&t->v, 0);
	is_int(u->idx, 0, "held: two buffers hold part of a frame, none used");
	ok(size <= sizeof(s) && virtio_mmio_save(t->v.dev, s, size, &err) == 0,
	   "held: save: %s", err.msg);
	is_int(virtio_mmio_restore(t->v.dev, s, size, &err), 0,
	       "held: restore: %s", err.msg);
	rx_buffers(t, 2, 1, 64);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	spin(t, 20);
	host_send(g, make_frame(g, 100, 6)); /* 112 bytes: 2 buffers */
	spin(t, 50);
	is_int(u->idx, 2, "held: the next frame is used after the restore");
	ok(u->idx >= 2 && u->ring[0].id == 0 && u->ring[1].id == 1,
	   "held: in the buffers held at the snapshot (ids %u %u, want 0 1)",
	   u->ring[0].id, u->ring[1].id);
	ok(memcmp(vdrv_gp(&t->v, RXBUF, 64) + 12, g, 52) == 0, "held: the new "
							       "frame, not the "
							       "dropped one, "
							       "is in them");
}

/* ---- several queue pairs (a multi-queue TAP) ---- */

#define F_CTRL_VQ (1u << 17)
#define F_MQ	  (1u << 22)
#define NET_OK	  0
#define NET_ERR	  1

static struct net *net_of(struct tvm *t)
{
	return t->v.dev->priv;
}

/* An IPv4/UDP frame to the guest from source port sport: flows the
 * kernel's TAP spreads over its queues by hash. */
static size_t udp_frame(uint8_t *f, uint16_t sport)
{
	static const uint8_t ip[20] = { 0x45, 0, 0,  48, 0, 0, 0x40, 0, 64, 17,
					0,    0, 10, 0,	 0, 1, 10,   0, 0,  2 };

	memcpy(f, MAC, 6);
	memcpy(f + 6, "\x02\x00\x00\x00\x00\x09", 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memcpy(f + 14, ip, 20);
	f[34] = (uint8_t)(sport >> 8);
	f[35] = (uint8_t)sport;
	f[36] = 0x13;
	f[37] = 0x89; /* port 5001 */
	f[38] = 0;
	f[39] = 28;
	memset(f + 40, 0, 22);
	return 62;
}

/*
 * Is the TAP's link up? It goes up when the device attaches a queue, but
 * the kernel activates its transmit queue later, in a work item
 * (linkwatch): a frame sent before that is dropped, not delayed.
 */
static bool tap_running(const char *name)
{
	struct ifreq ifr = { 0 };
	cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	strcpy(ifr.ifr_name, name);
	return s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0 &&
	       (ifr.ifr_flags & IFF_RUNNING);
}

static void mq_send(const uint8_t *f, size_t len)
{
	struct sockaddr_ll sa = { .sll_family = AF_PACKET,
				  .sll_ifindex = mqindex,
				  .sll_halen = 6 };

	if (sendto(mqpkt, f, len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		printf("# sendto: %s\n", strerror(errno));
}

/* count rx buffers of pair p, 2048 bytes each, from buffer first on */
static void mq_rx_buffers(struct tvm *t, unsigned int p, unsigned int first,
			  unsigned int count)
{
	for (unsigned int i = first; i < first + count; i++) {
		vdrv_set_desc(&t->v, 2 * p, i % QSIZE, MQRX(p, i % QSIZE), 2048,
			      VIRTQ_DESC_F_WRITE, 0);
		vdrv_publish(&t->v, 2 * p, i % QSIZE);
	}
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 2 * p);
}

/*
 * A command on queue q: header (class, command) of hlen bytes, data of
 * dlen bytes (none when 0), an ack byte (none when !ack). Returns the
 * ack the device wrote, or -1 when it used nothing.
 */
static int mq_cmd(struct tvm *t, unsigned int q, uint8_t cls, uint8_t cmd,
		  uint16_t pairs, uint32_t hlen, uint32_t dlen, bool ack)
{
	uint8_t *b = vdrv_gp(&t->v, MQCTRL, 0x100);
	struct virtq_used *u = vdrv_used(&t->v, q);
	uint16_t before = u->idx;
	unsigned int i = 0;

	b[0] = cls;
	b[1] = cmd;
	b[0x10] = (uint8_t)pairs;
	b[0x11] = (uint8_t)(pairs >> 8);
	b[0x20] = 0xee;
	vdrv_set_desc(&t->v, q, i, MQCTRL, hlen, VIRTQ_DESC_F_NEXT, i + 1);
	i++;
	if (dlen > 0) {
		vdrv_set_desc(&t->v, q, i, MQCTRL + 0x10, dlen,
			      ack ? VIRTQ_DESC_F_NEXT : 0, i + 1);
		i++;
	}
	if (ack)
		vdrv_set_desc(&t->v, q, i, MQCTRL + 0x20, 1, VIRTQ_DESC_F_WRITE,
			      0);
	else /* end the chain at the last readable descriptor */
		vdrv_set_desc(&t->v, q, i - 1, i == 1 ? MQCTRL : MQCTRL + 0x10,
			      i == 1 ? hlen : dlen, 0, 0);
	vdrv_publish(&t->v, q, 0);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, q);
	SPIN_UNTIL(t, u->idx != before, 2000);
	if (u->idx == before)
		return -1;
	if (u->ring[before % QSIZE].len != 1)
		return -2;
	return b[0x20];
}

static int pairs_set(struct tvm *t, uint16_t pairs)
{
	return mq_cmd(t, 4, 4, 0, pairs, 2, 2, true);
}

static void test_mq_config(struct tvm *t)
{
	uint32_t f;

	vdrv_wr(&t->v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f = vdrv_rd(&t->v, VIRTIO_MMIO_DEVICE_FEATURES);
	ok((f & (F_CTRL_VQ | F_MQ)) == (F_CTRL_VQ | F_MQ),
	   "mq: CTRL_VQ and MQ offered (0x%x)", f);
	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_CONFIG + 8) & 0xffff, 2,
	       "mq: max_virtqueue_pairs 2");
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_SEL, 4);
	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_QUEUE_NUM_MAX), 256,
	       "mq: queue 4, the control queue, exists");
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_SEL, 5);
	is_int(vdrv_rd(&t->v, VIRTIO_MMIO_QUEUE_NUM_MAX), 0,
	       "mq: five queues, no more");
	ok(!net_of(t)->pairs[0].detached && net_of(t)->pairs[1].detached,
	   "mq: before the driver, TAP queue 1 is detached");
}

/* Which rx queue each of n frames of distinct flows lands in. */
static void mq_spread(struct tvm *t, unsigned int n, unsigned int got[2])
{
	uint8_t f[128];
	uint16_t u0 = vdrv_used(&t->v, 0)->idx, u1 = vdrv_used(&t->v, 2)->idx;

	for (unsigned int i = 0; i < n; i++)
		mq_send(f, udp_frame(f, (uint16_t)(40000 + i * 7)));
	SPIN_UNTIL(t,
		   (uint16_t)(vdrv_used(&t->v, 0)->idx - u0) +
				   (uint16_t)(vdrv_used(&t->v, 2)->idx - u1) >=
			   n,
		   5000);
	got[0] = (uint16_t)(vdrv_used(&t->v, 0)->idx - u0);
	got[1] = (uint16_t)(vdrv_used(&t->v, 2)->idx - u1);
}

static void test_mq_steering(struct tvm *t)
{
	unsigned int got[2] = { 0, 0 };
	uint8_t f[128], out[2000];
	struct metrics_group *m1;

	vdrv_handshake(&t->v, F_MAC | F_CTRL_VQ | F_MQ, 1, true);
	is_int(net_of(t)->curr_pairs, 1, "mq: one pair after the handshake");
	mq_rx_buffers(t, 0, 0, QSIZE);
	mq_rx_buffers(t, 1, 0, QSIZE);
	SPIN_UNTIL(t, tap_running(MQNAME), 5000);
	spin(t, 10);
	for (unsigned int i = 0; i < 8; i++)
		mq_send(f, udp_frame(f, (uint16_t)(1000 + i)));
	SPIN_UNTIL(t, vdrv_used(&t->v, 0)->idx == 8, 5000);
	spin(t, 20); /* nothing more comes, on rx 1 either */
	ok(vdrv_used(&t->v, 0)->idx == 8 && vdrv_used(&t->v, 2)->idx == 0,
	   "mq: before VQ_PAIRS_SET every frame lands in rx 0 (%u, %u)",
	   vdrv_used(&t->v, 0)->idx, vdrv_used(&t->v, 2)->idx);
	/* a tx kick of the idle pair is not served */
	memset(vdrv_gp(&t->v, MQTX, 12), 0, 12);
	make_frame(vdrv_gp(&t->v, MQTX + 12, 100), 100, 3);
	vdrv_set_desc(&t->v, 3, 0, MQTX, 112, 0, 0);
	vdrv_publish(&t->v, 3, 0);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 3);
	spin(t, 20);
	is_int(vdrv_used(&t->v, 3)->idx, 0, "mq: tx of an idle pair waits");

	is_int(pairs_set(t, 2), NET_OK, "mq: VQ_PAIRS_SET 2 acked OK");
	ok(net_of(t)->curr_pairs == 2 && !net_of(t)->pairs[1].detached,
	   "mq: two pairs, TAP queue 1 attached");
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 3);
	SPIN_UNTIL(t, vdrv_used(&t->v, 3)->idx == 1, 2000);
	is_int(vdrv_used(&t->v, 3)->idx, 1, "mq: tx 1 sent once enabled");
	ok(host_recv_on(mqpkt, out, sizeof(out)) == 100, "mq: the frame from "
							 "tx 1 is on the TAP");

	/* 16 buffers on each rx queue: room for 16 frames wherever they go
	 * (the flow hash is seeded at boot: all on one queue is 2^-15) */
	mq_rx_buffers(t, 0, QSIZE, 8);
	mq_spread(t, 16, got);
	ok(got[0] > 0 && got[1] > 0 && got[0] + got[1] == 16,
	   "mq: 16 flows spread over both rx queues (%u + %u)", got[0], got[1]);
	m1 = net_of(t)->pairs[1].metrics;
	ok(m1 != NULL && strstr(m1->name, "eth0_q1") != NULL &&
		   m1->val[NET_M_RX_PACKETS] == got[1] &&
		   m1->val[NET_M_TX_PACKETS] == 1,
	   "mq: pair 1's own metrics group counts its frames");
}

static void test_mq_ctrl_bad(struct tvm *t)
{
	/* each refused command leaves two pairs running */
	is_int(pairs_set(t, 0), NET_ERR, "ctrl: 0 pairs → ERR");
	is_int(pairs_set(t, 3), NET_ERR, "ctrl: 3 pairs of 2 → ERR");
	is_int(pairs_set(t, 0x8000), NET_ERR, "ctrl: 0x8000 pairs → ERR");
	is_int(mq_cmd(t, 4, 0, 0, 1, 2, 1, true), NET_ERR,
	       "ctrl: rx mode (CTRL_RX not offered) → ERR");
	is_int(mq_cmd(t, 4, 1, 1, 0, 2, 6, true), NET_ERR,
	       "ctrl: MAC_ADDR_SET (not offered) → ERR");
	is_int(mq_cmd(t, 4, 4, 1, 2, 2, 2, true), NET_ERR,
	       "ctrl: MQ_RSS_CONFIG (not offered) → ERR");
	is_int(mq_cmd(t, 4, 4, 0, 2, 2, 1, true), NET_ERR,
	       "ctrl: a 1-byte pairs payload → ERR");
	is_int(mq_cmd(t, 4, 4, 0, 2, 2, 3, true), NET_ERR,
	       "ctrl: a 3-byte pairs payload → ERR");
	is_int(mq_cmd(t, 4, 4, 0, 2, 1, 0, true), NET_ERR,
	       "ctrl: a 1-byte header → ERR");
	is_int(net_of(t)->curr_pairs, 2, "ctrl: still two pairs");
	is_int(pairs_set(t, 1), NET_OK, "ctrl: back to one pair");
	ok(net_of(t)->curr_pairs == 1 && net_of(t)->pairs[1].detached,
	   "ctrl: TAP queue 1 detached again");
	is_int(mq_cmd(t, 4, 4, 0, 2, 2, 2, false), -1,
	       "ctrl: a command with no ack byte is not answered");
	ok(vdrv_rd(&t->v, VIRTIO_MMIO_STATUS) & S_NRS, "ctrl: → NEEDS_RESET");

	vdrv_handshake(&t->v, F_MAC | F_CTRL_VQ | F_MQ, 1, true);
	vdrv_set_desc(&t->v, 4, 0, MQCTRL, 2, VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(&t->v, 4, 1, MQCTRL + 0x20, 0, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(&t->v, 4, 0);
	vdrv_wr(&t->v, VIRTIO_MMIO_QUEUE_NOTIFY, 4);
	spin(t, 10);
	ok(vdrv_rd(&t->v, VIRTIO_MMIO_STATUS) & S_NRS, "ctrl: a 0-byte ack "
						       "buffer → NEEDS_RESET");

	/* CTRL_VQ without MQ: the control queue is queue 2, no MQ command */
	vdrv_handshake(&t->v, F_MAC | F_CTRL_VQ, 1, true);
	is_int(mq_cmd(t, 2, 4, 0, 2, 2, 2, true), NET_ERR,
	       "ctrl: without MQ the control queue is 2; VQ_PAIRS_SET → ERR");
	is_int(net_of(t)->curr_pairs, 1, "ctrl: without MQ one pair");

	/* MQ needs CTRL_VQ: the device refuses to run */
	vdrv_handshake(&t->v, F_MAC | F_MQ, 1, true);
	ok(vdrv_rd(&t->v, VIRTIO_MMIO_STATUS) & S_NRS, "ctrl: MQ acked without "
						       "CTRL_VQ → NEEDS_RESET");

	vdrv_handshake(&t->v, F_MAC | F_CTRL_VQ | F_MQ, 1, true);
	is_int(pairs_set(t, 2), NET_OK, "reset: two pairs again");
	vdrv_wr(&t->v, VIRTIO_MMIO_STATUS, 0);
	ok(net_of(t)->curr_pairs == 1 && net_of(t)->pairs[1].detached,
	   "reset: one pair, TAP queue 1 detached");
}

static void test_mq_snapshot(struct tvm *t)
{
	static uint8_t s[8192], bad[8192];
	struct kiln_error err = { 0 };
	size_t size = virtio_mmio_state_size(t->v.dev);
	size_t dev_off = sizeof(struct virtio_mmio_state);
	uint32_t version;

	vdrv_handshake(&t->v, F_MAC | F_CTRL_VQ | F_MQ, 1, true);
	is_int(pairs_set(t, 2), NET_OK, "mq snapshot: two pairs");
	is_int(size - dev_off, 48, "mq snapshot: 48 bytes of net state");
	ok(size <= sizeof(s) && virtio_mmio_save(t->v.dev, s, size, &err) == 0,
	   "mq snapshot: save: %s", err.msg);
	memcpy(&version, s + dev_off, 4);
	is_int(version, 2, "mq snapshot: net state version 2");
	is_int(pairs_set(t, 1), NET_OK, "mq snapshot: one pair, then restore");
	is_int(virtio_mmio_restore(t->v.dev, s, size, &err), 0,
	       "mq snapshot: restore: %s", err.msg);
	ok(net_of(t)->curr_pairs == 2 && !net_of(t)->pairs[1].detached,
	   "mq snapshot: two pairs and TAP queues again");
	memcpy(bad, s, size);
	bad[dev_off + 40] = 3; /* max_pairs */
	ok(virtio_mmio_restore(t->v.dev, bad, size, &err) < 0 &&
		   strstr(err.msg, "3 queue pairs in the snapshot, 2"),
	   "mq snapshot: refused: other max pairs (%s)", err.msg);
	memcpy(bad, s, size);
	bad[dev_off + 42] = 3; /* curr_pairs */
	ok(virtio_mmio_restore(t->v.dev, bad, size, &err) < 0,
	   "mq snapshot: refused: 3 pairs in use of 2 (%s)", err.msg);
	memcpy(bad, s, size);
	bad[dev_off + 42] = 0;
	ok(virtio_mmio_restore(t->v.dev, bad, size, &err) < 0,
	   "mq snapshot: refused: 0 pairs in use (%s)", err.msg);
	memcpy(bad, s, size);
	bad[dev_off + 44] = 1; /* pad */
	ok(virtio_mmio_restore(t->v.dev, bad, size, &err) < 0,
	   "mq snapshot: refused: pad (%s)", err.msg);
	memcpy(bad, s, size);
	bad[dev_off] = 1; /* version 1: a one-pair state */
	ok(virtio_mmio_restore(t->v.dev, bad, size, &err) < 0,
	   "mq snapshot: refused: version 1 (%s)", err.msg);
	ok(virtio_mmio_restore(t->v.dev, s, size - 8, &err) < 0,
	   "mq snapshot: refused: a one-pair sized state (%s)", err.msg);
	is_int(net_of(t)->curr_pairs, 2,
	       "mq snapshot: refusals changed nothing");
}

/*
 * VQ_PAIRS_SET delivers what waits for the pairs it enables: here a frame
 * pending on pair 0 (its ring ran dry) whose new buffer the event loop has
 * not seen yet (the driver's rx kick comes after the command). The command
 * still gets its own ack, and the frame lands whole in the rx buffer.
 */
static void test_mq_ctrl_pump(struct tvm *t)
{
	uint8_t f[128], *b = vdrv_gp(&t->v, MQRX(0, 0), 2048);
	struct virtq_used *u0 = vdrv_used(&t->v, 0);

	vdrv_handshake(&t->v, F_MAC | F_CTRL_VQ | F_MQ, 1, true);
	spin(t, 10);
	udp_frame(f, 4242);
	mq_send(f, 62);
	spin(t, 20);
	ok(net_of(t)->pairs[0].rx_len > 0 && !net_of(t)->pairs[0].polling,
	   "ctrl+rx: a frame pending, no rx buffer");
	memset(b, 0x55, 2048);
	/* head 5: not the control chain's head 0 */
	vdrv_set_desc(&t->v, 0, 5, MQRX(0, 0), 2048, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(&t->v, 0, 5);
	is_int(pairs_set(t, 2), NET_OK, "ctrl+rx: VQ_PAIRS_SET acked OK");
	is_int(vdrv_used(&t->v, 4)->ring[0].id, 0,
	       "ctrl+rx: the control queue used its own chain");
	ok(u0->idx == 1 && u0->ring[0].len == 12 + 62 && b[0] == 0 &&
		   b[10] == 1 && memcmp(b + 12, f, 62) == 0,
	   "ctrl+rx: the pending frame delivered, header intact");
}

static void test_mq(void)
{
	struct kiln_error err = { 0 };
	struct tvm t0;
	struct tvm *t;

	is_int(tvm_init_pairs(&t0, TAPNAME, 2, &err), -1,
	       "mq: two pairs over a single-queue TAP fail");
	ok(strstr(err.msg, "multi-queue") && strstr(err.msg, TAPNAME),
	   "mq: the error says so: %s", err.msg);
	tvm_free(&t0);
	t = tvm_new_pairs(MQNAME, 2);
	test_mq_config(t);
	test_mq_steering(t);
	test_mq_ctrl_bad(t);
	test_mq_snapshot(t);
	test_mq_ctrl_pump(t);
	tvm_free(t);
	free(t);
}

int main(void)
{
	struct tvm *t;

	log_set_level(LOG_ERROR);
	if (netns_setup() < 0)
		return tap_skip_all("no network namespace with a TAP here: %s",
				    strerror(errno));
	test_glue();
	t = tvm_new();
	test_config(t);
	test_tx(t);
	test_rx(t);
	test_rx_mergeable(t);
	test_rx_no_buffers(t);
	test_rx_more_than_a_batch(t);
	test_tx_interrupts(t);
	test_rx_interrupts(t);
	test_malformed(t);
	test_snapshot(t);
	test_snapshot_held_rx(t);
	tvm_free(t);
	free(t);
	test_mq();
	return tap_done();
}
