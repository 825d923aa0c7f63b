/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event loop under the threads a running VM has: one VM with a
 * virtio-net (over a real TAP in a fresh network namespace: needs root)
 * and a virtio-vsock on one event loop that runs on its own thread, while
 *
 * - a "vCPU" thread toggles net's status through the MMIO transport: every
 *   reset and every DRIVER_OK changes the TAP's events in the loop
 *   (net_poll → evloop_mod) from that thread;
 * - a host thread opens and closes Unix connections to the vsock socket,
 *   some left open for a while: the loop accepts each (evloop_add), and
 *   deletes and frees it when the client goes (evloop_del, end of batch);
 * - a second "vCPU" thread resets the vsock device, so the loop also drops
 *   every open connection at once.
 *
 * Bounded: a fixed number of iterations per thread. Built with
 * ThreadSanitizer (make check-tsan) a loop that lets another thread walk
 * its list while it changes it is reported; with ASan the walk can read a
 * freed entry. After the run the state must add up: net's last probe
 * stands and its reset still reaches the loop, no connection is left, the
 * loop holds exactly the devices' own entries, no fd leaked.
 *
 * Build: make build/test/test_evloop_stress
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/virtio/vsock_priv.h"
#include "../lib/vdriver.h"
#include "tap.h"

#define TAPNAME	 "kstress0"
#define MEM_SIZE (16ULL << 20)
#define QSIZE	 16
#define CID	 3

/* iterations: each thread's own, all of them run concurrently */
#define NET_TOGGLES  1500
#define HOST_CONNS   1500
#define VSOCK_RESETS (HOST_CONNS / 5) /* one per 5 connections */
#define HELD	     8		      /* host connections kept open at once */

struct stress {
	struct vdrv v; /* the VM; its driver drives the net */
	void *vsock_state;
	struct vsock *vs;
	uint64_t vsock_base;
	char dir[64], uds[96];
	int net_done, resets_done, conns_done; /* each by its thread */
	int conns_tried; /* atomic: the reset thread follows it */
};

static void *loop_thread(void *arg)
{
	struct kiln_error err = { 0 };

	evloop_run(arg, &err);
	return NULL;
}

/* vCPU 0: the net driver probes and resets, over and over. */
static void *net_thread(void *arg)
{
	struct stress *s = arg;

	for (int i = 0; i < NET_TOGGLES; i++) {
		/* reset (poll off), then the whole probe to DRIVER_OK (on) */
		vdrv_handshake(&s->v, 0, 1, true);
		s->net_done++;
	}
	return NULL;
}

/* The vsock driver resets its device: the loop drops every connection. */
static void vsock_reset(struct stress *s)
{
	uint32_t v = 0;

	trap_dispatch(&s->v.vm.traps, TRAP_MMIO,
		      s->vsock_base + VIRTIO_MMIO_STATUS, (uint8_t *)&v, 4,
		      true);
}

/* vCPU 1: a vsock reset per 5 host connections, for as long as they come. */
static void *vsock_reset_thread(void *arg)
{
	struct stress *s = arg;

	for (int i = 0; i < VSOCK_RESETS; i++) {
		while (__atomic_load_n(&s->conns_tried, __ATOMIC_RELAXED) <
		       (i + 1) * 5)
			sched_yield();
		vsock_reset(s);
		s->resets_done++;
	}
	return NULL;
}

static int host_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The host: clients come and go, a few stay a while. */
static void *host_thread(void *arg)
{
	static const char req[] = "CONNECT 1024\n";
	struct stress *s = arg;
	int held[HELD];

	for (int i = 0; i < HELD; i++)
		held[i] = -1;
	for (int i = 0; i < HOST_CONNS; i++) {
		int fd = host_connect(s->uds);

		__atomic_fetch_add(&s->conns_tried, 1, __ATOMIC_RELAXED);
		if (fd < 0)
			continue;
		/* half of them ask for a guest port, half never say a word */
		if (i % 2 == 0 &&
		    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0) {
			/* the VMM may have dropped it already (a reset) */
		}
		if (held[i % HELD] >= 0)
			close(held[i % HELD]);
		held[i % HELD] = fd;
		s->conns_done++;
	}
	for (int i = 0; i < HELD; i++)
		if (held[i] >= 0)
			close(held[i]);
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

/* The events the loop waits for on the TAP fd (fdinfo), or -1. */
static long tap_events(struct stress *s)
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
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", s->v.vm.loop.epfd);
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

/*
 * A persistent TAP, up, in a network namespace of our own with IPv6 off:
 * nothing sends on it (a TAP that is down fails reads, and net stops
 * polling it).
 */
static int netns_setup(void)
{
	struct ifreq ifr = { 0 };
	int fd;

	if (unshare(CLONE_NEWNET) < 0)
		return -1;
	fd = open("/proc/sys/net/ipv6/conf/default/disable_ipv6", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0) {
			/* no IPv6 at all: nothing to turn off */
		}
		close(fd);
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	strcpy(ifr.ifr_name, TAPNAME);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, TAPNAME);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return -1;
	close(fd);
	return 0;
}

/*
 * After the clients: connections still open once the loop has accepted
 * the whole backlog and a reset dropped them. A connection that asked for
 * a guest port waits for the guest to take its RST, which this driver
 * never does; a reset (the guest's next probe) drops it. The loop accepts
 * in order, so once a last client is closed by the VMM, every client
 * before it was accepted (or refused).
 */
static unsigned int vsock_conns_settled(struct stress *s)
{
	unsigned int n = 0;
	int fd = host_connect(s->uds);

	for (int i = 0; i < 400 && fd >= 0; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		vsock_reset(s);
		if (poll(&p, 1, 10) == 1) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0) {
		close(fd);
		return UINT32_MAX; /* never accepted */
	}
	vsock_reset(s);
	for (int i = 0; i < 5000; i++) {
		virtio_dev_lock(&s->vs->dev);
		n = s->vs->nconns;
		virtio_dev_unlock(&s->vs->dev);
		if (n == 0)
			break;
		usleep(1000);
	}
	return n;
}

int main(void)
{
	struct kiln_error err = { 0 };
	struct stress *s = calloc(1, sizeof(*s));
	struct vdrv *v = &s->v;
	const struct vmm_device *vsock_desc = vdrv_find("virtio_vsock");
	pthread_t loop, th[3];
	unsigned int before, after;
	int fds_before;

	log_set_level(LOG_ERROR);
	if (netns_setup() < 0) {
		printf("Bail out! network namespace and TAP (needs root): %s\n",
		       strerror(errno));
		return 1;
	}
	fds_before = count_fds();
	strcpy(s->dir, "/tmp/kiln-stress.XXXXXX");
	if (mkdtemp(s->dir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(s->uds, sizeof(s->uds), "%s/v.sock", s->dir);

	vdrv_init(v);
	v->cfg.nnets = 1;
	v->cfg.nets[0] = (struct vm_net){ .id = "eth0", .tap = TAPNAME };
	v->cfg.vsock = (struct vm_vsock){ true, CID, s->uds };
	vdrv_queue_at(v, 0, 0x1000, 0x2000, 0x3000, QSIZE);
	vdrv_queue_at(v, 1, 0x5000, 0x6000, 0x7000, QSIZE);
	v->clear_gpa = 0;
	v->clear_len = 0x8000;
	if (vdrv_mem_alloc(v, MEM_SIZE, &err) < 0 ||
	    evloop_init(&v->vm.loop, &err) < 0 ||
	    vdrv_attach(v, "virtio_net", &err) < 0 || v->state == NULL ||
	    vsock_desc->init(&v->vm, &s->vsock_state, &err) < 0) {
		printf("Bail out! %s\n", err.msg);
		return 1;
	}
	/* the set's first member: struct net_set { count; nets[] } */
	vdrv_use(v, *(struct virtio_dev **)((char *)v->state + 8));
	s->vs = ((struct virtio_dev *)s->vsock_state)->priv;
	s->vsock_base = virtio_mmio_base(s->vsock_state);
	before = evloop_count(&v->vm.loop);

	pthread_create(&loop, NULL, loop_thread, &v->vm.loop);
	pthread_create(&th[0], NULL, net_thread, s);
	pthread_create(&th[1], NULL, host_thread, s);
	pthread_create(&th[2], NULL, vsock_reset_thread, s);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);

	is_int(s->net_done, NET_TOGGLES, "net: every status toggle done");
	is_int(s->resets_done, VSOCK_RESETS, "vsock: every reset done");
	is_int(s->conns_done, HOST_CONNS, "host: every connect succeeded");
	is_int(vsock_conns_settled(s), 0,
	       "vsock: no connection left after the clients and a reset");
	evloop_stop(&v->vm.loop);
	pthread_join(loop, NULL);

	is_int(vdrv_rd(v, VIRTIO_MMIO_STATUS),
	       VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK,
	       "net: the last probe reached DRIVER_OK, nothing broke");
	vdrv_wr(v, VIRTIO_MMIO_STATUS, 0);
	ok((tap_events(s) & (EPOLLIN | EPOLLET)) == EPOLLET,
	   "net: after a reset the loop no longer polls the TAP (0x%lx)",
	   tap_events(s));
	after = evloop_count(&v->vm.loop);
	is_int(after, before,
	       "loop: only the devices' own entries are left (%u)", before);

	vsock_desc->exit(&v->vm, s->vsock_state);
	vdrv_destroy(v);
	rmdir(s->dir);
	free(s);
	is_int(count_fds(), fds_before, "no fd leaked");
	return tap_done();
}
