/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-fs over vhost-user, against a fake backend thread listening on a
 * Unix socket: the device's creation (handshake, memory table with the
 * guest-memory fd), its config space, the driver's DRIVER_OK (each ready
 * ring handed over with its kick eventfd, QEMU's order), a kick reaching
 * the backend's eventfd without the VMM reading it, InterruptStatus with
 * the VRING bit, reset (GET_VRING_BASE per started ring), and the backend
 * dying (device broken, VMM fine). No KVM: vm_fd is -1, so the call fd is
 * NOFD.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "../../vmm/vhost_user.h"
#include "../../vmm/virtio/fs.h"
#include "../lib/vdriver.h"
#include "tap.h"

#define MEM_SIZE (16ULL << 20)
#define QSIZE	 16
#define BIT(n)	 (1ULL << (n))

/* ---- the fake backend ---- */

#define LOG_MAX 64

struct fake {
	int lfd;
	char path[108];
	pthread_t thread;
	unsigned int die_after; /* exit after answering this many (0: never) */
	bool silent_features;	/* never answer GET_FEATURES */
	pthread_mutex_t lock;
	/* what it got, under lock */
	unsigned int n;
	uint32_t req[LOG_MAX];
	uint32_t flags[LOG_MAX];
	int nfds[LOG_MAX];
	uint64_t arg[LOG_MAX]; /* first 8 payload bytes */
	int kick[8];	       /* kick eventfds it was given, per ring */
	bool done;
};

static void fake_reply(int fd, uint32_t req, const void *p, uint32_t size)
{
	uint8_t buf[64];
	struct vhost_user_hdr h = { req,
				    VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY,
				    size };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), p, size);
	if (write(fd, buf, sizeof(h) + size) < 0)
		return;
}

static void *fake_run(void *arg)
{
	struct fake *f = arg;
	int c = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);

	while (c >= 0) {
		union {
			struct cmsghdr a;
			char b[CMSG_SPACE(8 * sizeof(int))];
		} ctl;
		struct vhost_user_hdr h;
		uint8_t payload[VHOST_USER_PAYLOAD_MAX];
		struct iovec iov = { &h, sizeof(h) };
		struct msghdr m = { .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.b,
				    .msg_controllen = sizeof(ctl.b) };
		int fds[8], nfds = 0;
		uint64_t v = 0;
		unsigned int n;

		if (recvmsg(c, &m, MSG_WAITALL) != sizeof(h) ||
		    h.size > sizeof(payload))
			break;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm != NULL;
		     cm = CMSG_NXTHDR(&m, cm)) {
			nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) /
				     sizeof(int));
			memcpy(fds, CMSG_DATA(cm), nfds * sizeof(int));
		}
		if (h.size > 0 &&
		    recv(c, payload, h.size, MSG_WAITALL) != (ssize_t)h.size)
			break;
		memcpy(&v, payload, h.size < 8 ? h.size : 8);
		pthread_mutex_lock(&f->lock);
		n = f->n;
		if (n < LOG_MAX) {
			f->req[n] = h.request;
			f->flags[n] = h.flags;
			f->nfds[n] = nfds;
			f->arg[n] = v;
			f->n++;
		}
		if (h.request == VHOST_USER_SET_VRING_KICK && nfds == 1 &&
		    (v & 0xff) < 8) {
			f->kick[v & 0xff] = fds[0];
			nfds = 0;
		}
		pthread_mutex_unlock(&f->lock);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (h.request == VHOST_USER_GET_FEATURES) {
			uint64_t feat = BIT(32) | BIT(28) | BIT(29) | BIT(30);

			if (!f->silent_features)
				fake_reply(c, h.request, &feat, 8);
		} else if (h.request == VHOST_USER_GET_PROTOCOL_FEATURES) {
			uint64_t p = BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);

			fake_reply(c, h.request, &p, 8);
		} else if (h.request == VHOST_USER_GET_VRING_BASE) {
			struct vhost_user_vring_state s = { (uint32_t)v, 0 };

			fake_reply(c, h.request, &s, 8);
		} else if (h.flags & VHOST_USER_FLAG_NEED_REPLY) {
			uint64_t zero = 0;

			fake_reply(c, h.request, &zero, 8);
		}
		if (f->die_after && n + 1 >= f->die_after)
			break;
	}
	if (c >= 0)
		close(c);
	pthread_mutex_lock(&f->lock);
	f->done = true;
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

static void fake_start(struct fake *f, const char *dir, unsigned int die_after)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	for (int i = 0; i < 8; i++)
		f->kick[i] = -1;
	f->die_after = die_after;
	snprintf(f->path, sizeof(f->path), "%s/fs.sock", dir);
	unlink(f->path);
	memcpy(sa.sun_path, f->path, sizeof(f->path));
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(f->lfd, 1) ||
	    pthread_create(&f->thread, NULL, fake_run, f) != 0) {
		printf("Bail out! fake backend: %s\n", strerror(errno));
		exit(1);
	}
}

static void fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->lfd);
	for (int i = 0; i < 8; i++)
		if (f->kick[i] >= 0)
			close(f->kick[i]);
	unlink(f->path);
	pthread_mutex_destroy(&f->lock);
}

/* Index of the first logged request req at or after from, or -1. */
static int fake_find(struct fake *f, uint32_t req, unsigned int from)
{
	int at = -1;

	pthread_mutex_lock(&f->lock);
	for (unsigned int i = from; i < f->n && at < 0; i++)
		if (f->req[i] == req)
			at = (int)i;
	pthread_mutex_unlock(&f->lock);
	return at;
}

static unsigned int fake_count(struct fake *f)
{
	unsigned int n;

	pthread_mutex_lock(&f->lock);
	n = f->n;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* ---- a VM without KVM around one fs device ---- */

static int tvm_new(struct vdrv *t, struct fake *f, bool loop,
		   struct kiln_error *err)
{
	vdrv_init(t);
	t->cfg.nfs = 1;
	t->cfg.fs[0] = (struct vm_fs){ .id = "share",
				       .tag = "hostshare",
				       .socket_path = f->path,
				       .num_queues = 1,
				       .queue_size = QSIZE };
	vdrv_queue_at(t, 0, 0x1000, 0x2000, 0x3000, QSIZE);
	vdrv_queue_at(t, 1, 0x4000, 0x5000, 0x6000, QSIZE);
	if (vdrv_mem_alloc(t, MEM_SIZE, err) < 0 ||
	    (loop && evloop_init(&t->vm.loop, err) < 0))
		return -1;
	if (vdrv_attach(t, "virtio_fs", err) < 0)
		return -1;
	return 0;
}

/* vdrv_destroy frees cfg's strings: ours are literals */
static void tvm_free(struct vdrv *t)
{
	t->cfg.nfs = 0;
	vdrv_destroy(t);
}

static struct virtio_dev *fs_of(struct vdrv *t)
{
	return fs_set_dev(t->state, 0);
}

static void test_create_and_run(const char *dir)
{
	struct kiln_error err = { 0 };
	struct vdrv t;
	struct fake f;
	uint8_t tag[36];
	uint32_t nq;
	int i, mt, addr, kick, en;
	uint64_t count = 0;

	fake_start(&f, dir, 0);
	ok(tvm_new(&t, &f, false, &err) == 0, "device created: %s", err.msg);
	vdrv_use(&t, fs_of(&t));
	is_int(vdrv_rd(&t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_FS,
	       "device id 26");
	ok(vdrv_access(&t, VIRTIO_MMIO_CONFIG, tag, 4, false) &&
		   memcmp(tag, "host", 4) == 0,
	   "config: the tag's first bytes");
	memset(tag, 0xff, sizeof(tag));
	for (unsigned int o = 0; o < 36; o += 4)
		vdrv_access(&t, VIRTIO_MMIO_CONFIG + o, tag + o, 4, false);
	ok(memcmp(tag, "hostshare", 9) == 0 && tag[9] == 0 && tag[35] == 0,
	   "config: the tag, NUL-padded to 36 bytes");
	vdrv_access(&t, VIRTIO_MMIO_CONFIG + 36, &nq, 4, false);
	is_int(nq, 1, "config: num_request_queues");
	ok(!vdrv_access(&t, VIRTIO_MMIO_CONFIG + 40, &nq, 4, false) || nq == 0,
	   "config: nothing past 40 bytes");
	vdrv_wr(&t, VIRTIO_MMIO_QUEUE_SEL, 0);
	is_int(vdrv_rd(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), QSIZE,
	       "queue_size is the rings' maximum");

	/* what creation sent */
	ok(fake_find(&f, VHOST_USER_SET_OWNER, 0) == 0, "SET_OWNER first");
	mt = fake_find(&f, VHOST_USER_SET_MEM_TABLE, 0);
	ok(mt > 0 && f.nfds[mt] == (int)t.vm.mem.nregions &&
		   (f.flags[mt] & VHOST_USER_FLAG_NEED_REPLY),
	   "SET_MEM_TABLE with one guest-memory fd per region, acked");

	/* the driver: both queues, DRIVER_OK */
	t.nqueues = 2;
	vdrv_handshake(&t, 0, 1, true); /* VERSION_1 */
	is_int(vdrv_rd(&t, VIRTIO_MMIO_STATUS), 0xf, "DRIVER_OK, not broken");
	i = fake_find(&f, VHOST_USER_SET_FEATURES, 0);
	ok(i > 0 && f.arg[i] == (BIT(32) | BIT(30)), "SET_FEATURES: what the "
						     "driver acked, plus "
						     "protocol features");
	for (unsigned int q = 0; q < 2; q++) {
		int num = fake_find(&f, VHOST_USER_SET_VRING_NUM, (unsigned)i);
		int base = fake_find(&f, VHOST_USER_SET_VRING_BASE, num);

		addr = fake_find(&f, VHOST_USER_SET_VRING_ADDR, base);
		kick = fake_find(&f, VHOST_USER_SET_VRING_KICK, addr);
		int call = fake_find(&f, VHOST_USER_SET_VRING_CALL, kick);

		en = fake_find(&f, VHOST_USER_SET_VRING_ENABLE, call);
		ok(num > 0 && base > num && addr > base && kick > addr &&
			   call > kick && en > call,
		   "ring %u: NUM, BASE, ADDR, KICK, CALL, ENABLE in order", q);
		ok(num > 0 && f.arg[num] == (q | (uint64_t)QSIZE << 32),
		   "ring %u: its size", q);
		ok(kick > 0 && f.nfds[kick] == 1 && f.arg[kick] == q,
		   "ring %u: a kick eventfd", q);
		ok(call > 0 && f.nfds[call] == 0 &&
			   f.arg[call] == (q | VHOST_USER_VRING_NOFD),
		   "ring %u: no call fd without KVM", q);
		i = en;
	}

	/* DRIVER_OK kicked every ring once, for buffers added before it */
	ok(f.kick[1] >= 0 && read(f.kick[1], &count, 8) == 8 && count == 1,
	   "DRIVER_OK kicked ring 1 once");
	/* a kick goes to the backend's eventfd; the VMM does not read it */
	vdrv_wr(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	ok(f.kick[1] >= 0 && read(f.kick[1], &count, 8) == 8 && count == 1,
	   "a kick of ring 1 signals the backend's eventfd");
	ok(vdrv_rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_ISR_VRING,
	   "InterruptStatus always shows VRING (the backend's irqfd)");

	/* reset: each started ring stopped */
	i = (int)fake_count(&f);
	vdrv_wr(&t, VIRTIO_MMIO_STATUS, 0);
	ok(fake_find(&f, VHOST_USER_GET_VRING_BASE, (unsigned)i) >= 0 &&
		   fake_find(&f, VHOST_USER_GET_VRING_BASE, (unsigned)i + 1) >=
			   0,
	   "reset: GET_VRING_BASE for both rings");
	ok(fs_connected(fs_of(&t)), "the backend is still connected");
	/* and again: the same backend serves the new driver */
	vdrv_handshake(&t, 0, 1, true);
	is_int(vdrv_rd(&t, VIRTIO_MMIO_STATUS), 0xf, "DRIVER_OK again");
	tvm_free(&t);
	fake_stop(&f);
}

static void *loop_run(void *l)
{
	struct kiln_error err = { 0 };

	evloop_run(l, &err);
	return NULL;
}

static void test_backend_dies(const char *dir)
{
	struct kiln_error err = { 0 };
	struct vdrv t;
	struct fake f;
	pthread_t loop;
	bool up = true;

	/* it answers the handshake and the memory table, then exits */
	fake_start(&f, dir, 5);
	ok(tvm_new(&t, &f, true, &err) == 0, "device created: %s", err.msg);
	vdrv_use(&t, fs_of(&t));
	pthread_create(&loop, NULL, loop_run, &t.vm.loop);
	for (int i = 0; i < 200 && up; i++) {
		up = fs_connected(fs_of(&t));
		usleep(10000);
	}
	ok(!up, "the event loop saw the backend hang up");
	t.nqueues = 2;
	vdrv_handshake(&t, 0, 1, true);
	ok(vdrv_rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
	   "DRIVER_OK without a backend: the device needs a reset");
	vdrv_wr(&t, VIRTIO_MMIO_STATUS, 0);
	is_int(vdrv_rd(&t, VIRTIO_MMIO_STATUS), 0,
	       "a reset without a backend still resets");
	evloop_stop(&t.vm.loop);
	pthread_join(loop, NULL);
	tvm_free(&t);
	fake_stop(&f);
}

static void test_bad_backends(const char *dir)
{
	struct kiln_error err = { 0 };
	struct vdrv t;
	struct fake f;
	uint64_t t0;

	/* nothing listens */
	vdrv_init(&t);
	t.cfg.nfs = 1;
	t.cfg.fs[0] = (struct vm_fs){ .id = "gone",
				      .tag = "x",
				      .socket_path = "/nonexistent/fs.sock",
				      .num_queues = 1,
				      .queue_size = QSIZE };
	vdrv_mem_alloc(&t, MEM_SIZE, &err);
	ok(vdrv_attach(&t, "virtio_fs", &err) < 0 &&
		   strstr(err.msg, "/nonexistent/fs.sock") != NULL,
	   "no backend: the error names the socket: %s", err.msg);
	tvm_free(&t);

	/* a backend that never answers: fails after the timeout */
	fake_start(&f, dir, 0);
	f.silent_features = true;
	vdrv_init(&t);
	vdrv_mem_alloc(&t, MEM_SIZE, &err);
	t0 = util_now_ns();
	{
		struct vm_fs cfg = { .id = "slow",
				     .tag = "x",
				     .socket_path = f.path,
				     .num_queues = 1,
				     .queue_size = QSIZE };
		struct virtio_dev *d;

		ok(fs_create(&t.vm, &cfg, 200, &d, &err) < 0 &&
			   err.errnum == ETIMEDOUT,
		   "a silent backend: %s", err.msg);
	}
	ok(util_now_ns() - t0 < 3000000000ULL, "within the timeout");
	tvm_free(&t);
	fake_stop(&f);

	/* memory that is not a shared memfd */
	fake_start(&f, dir, 0);
	vdrv_init(&t);
	{
		static uint8_t ram[MEM_SIZE];
		struct vm_fs cfg = { .id = "priv",
				     .tag = "x",
				     .socket_path = f.path,
				     .num_queues = 1,
				     .queue_size = QSIZE };
		struct virtio_dev *d;

		vdrv_mem_static(&t, ram, sizeof(ram));
		ok(fs_create(&t.vm, &cfg, 200, &d, &err) < 0 &&
			   strstr(err.msg, "shared memfd") != NULL,
		   "guest memory without an fd is refused: %s", err.msg);
		t.vm.fork = true;
		ok(fs_create(&t.vm, &cfg, 200, &d, &err) < 0 &&
			   strstr(err.msg, "forked") != NULL,
		   "a fork cannot have one: %s", err.msg);
		t.vm.fork = false;
	}
	tvm_free(&t);
	fake_stop(&f);
}

int main(void)
{
	char dir[] = "/tmp/kiln-vfs-XXXXXX";

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	test_create_and_run(dir);
	test_backend_dies(dir);
	test_bad_backends(dir);
	rmdir(dir);
	return tap_done();
}
