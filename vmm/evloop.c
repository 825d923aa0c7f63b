/* SPDX-License-Identifier: Apache-2.0 */
/* The VMM event loop and its threading rule: see evloop.h. */
#include "evloop.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/fs.h>
#include <linux/kvm.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "seccomp.h"

/*
 * What the VMM thread may do once the guest runs (vm.c loads it before the
 * first vCPU runs; the common rules of seccomp.c come with it): this loop
 * and every callback it runs. Setting up (/dev/kvm, KVM_CREATE_*, the
 * vCPUs' registers, TUNSETIFF, threads) is done by then and not listed.
 */
/* clang-format off */
static const struct seccomp_rule vmm_rules[] = {
	/* the loop, its eventfds and timers (metrics, balloon stats) */
	SC_ALLOW(epoll_wait),
	SC_ALLOW(epoll_ctl),
	SC_ALLOW(eventfd2),
	SC_ALLOW(timerfd_create),
	SC_ALLOW(timerfd_settime),
	SC_ALLOW(nanosleep),
	SC_ALLOW(clock_nanosleep),
	/* disks (preadv/pwritev, flush, discard), TAP, console, files */
	SC_ALLOW(read),
	SC_ALLOW(readv),
	SC_ALLOW(writev),
	SC_ALLOW(preadv),
	SC_ALLOW(pwritev),
	SC_ALLOW(pread64),
	SC_ALLOW(pwrite64),
	SC_ALLOW(fdatasync),
	SC_ALLOW(fsync),
	SC_ALLOW(fallocate), /* discard, write zeroes, balloon's holes */
	SC_ALLOW(lseek), /* SEEK_DATA/SEEK_HOLE of snapshots */
	SC_ALLOW(close),
	/* PATCH /drives, snapshots, metrics and log files by path */
	SC_ALLOW(openat),
	SC_ALLOW(newfstatat),
	SC_ALLOW(fstat),
	SC_ALLOW(access),
	SC_ALLOW(faccessat2),
	SC_ALLOW(ftruncate),
	SC_ALLOW(rename),
	SC_ALLOW(unlink),
	SC_ALLOW(dup3), /* the logger's file moves under its fd */
	/* templates: sealed memfds handed to forks */
	SC_ALLOW(memfd_create),
	SC_ARG(fcntl, 1, F_GETFD),
	SC_ARG(fcntl, 1, F_SETFD),
	SC_ARG(fcntl, 1, F_GETFL),
	SC_ARG(fcntl, 1, F_SETFL),
	SC_ARG(fcntl, 1, F_DUPFD_CLOEXEC),
	SC_ARG(fcntl, 1, F_ADD_SEALS),
	SC_ARG(fcntl, 1, F_GET_SEALS),
	/* vsock's Unix sockets, the template's socket: AF_UNIX only */
	SC_SOCKET(AF_UNIX),
	SC_ALLOW(connect),
	SC_ALLOW(bind),
	SC_ALLOW(listen),
	SC_ALLOW(accept4),
	SC_ALLOW(sendmsg),
	SC_ALLOW(recvmsg),
	SC_ALLOW(sendto),
	SC_ALLOW(recvfrom),
	SC_ALLOW(shutdown),
	SC_ALLOW(getsockopt), /* SO_PEERCRED of a fork */
	SC_ALLOW(geteuid),
	/* interrupts, queue notifications, device activation and reset */
	SC_IOCTL(KVM_IRQ_LINE),
	SC_IOCTL(KVM_IRQFD),
	SC_IOCTL(KVM_IOEVENTFD),
	SC_IOCTL(TUNSETOFFLOAD),
	SC_IOCTL(TUNSETQUEUE), /* a multi-queue TAP's pairs, as the driver sets them */
	SC_IOCTL(BLKGETSIZE64), /* a block device swapped in by PATCH /drives */
	/* snapshots and templates of a paused VM */
	SC_IOCTL(KVM_CHECK_EXTENSION),
	SC_IOCTL(KVM_GET_MSR_INDEX_LIST),
	SC_IOCTL(KVM_GET_TSC_KHZ),
	SC_IOCTL(KVM_GET_CLOCK),
	SC_IOCTL(KVM_GET_IRQCHIP),
	SC_IOCTL(KVM_GET_PIT2),
	SC_IOCTL(KVM_GET_REGS),
	SC_IOCTL(KVM_GET_SREGS),
	SC_IOCTL(KVM_GET_FPU),
	SC_IOCTL(KVM_GET_MSRS),
	SC_IOCTL(KVM_GET_LAPIC),
	SC_IOCTL(KVM_GET_XSAVE),
	SC_IOCTL(KVM_GET_XCRS),
	SC_IOCTL(KVM_GET_VCPU_EVENTS),
	SC_IOCTL(KVM_GET_MP_STATE),
	SC_IOCTL(KVM_GET_DEBUGREGS),
	SC_IOCTL(KVM_GET_DIRTY_LOG), /* diff snapshots */
	SC_ALLOW(mincore), /* a template of anonymous RAM: resident pages */
	/* glibc's qsort (the balloon sorts PFNs) sizes its buffer by RAM */
	SC_ALLOW(sysinfo),
	/* a vhost-user back-end's answers wait with a timeout */
	SC_ALLOW(poll),
	SC_ALLOW(ppoll),
};
/* clang-format on */
const struct seccomp_list vmm_seccomp = SECCOMP_LIST("vmm", vmm_rules);

struct evloop_entry {
	int fd;
	/*
	 * Set under l->lock by evloop_del, read by the loop thread before
	 * each callback without it (atomic): once it is seen set, the
	 * callback is not called.
	 */
	bool dead;
	evloop_fn fn;
	void *opaque;
	struct evloop_entry *prev, *next; /* under l->lock */
};

int evloop_init(struct evloop *l, struct kiln_error *err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	l->entries = l->dead = NULL;
	l->stopping = false;
	l->stop_efd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return kiln_error_set(err, errno, "epoll_create1");
	/* from here on evloop_destroy undoes it all (epfd >= 0) */
	pthread_mutex_init(&l->lock, NULL);
	l->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->stop_efd < 0 ||
	    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stop_efd, &ev) < 0) {
		kiln_error_set(err, errno, "event loop eventfd");
		evloop_destroy(l);
		return -1;
	}
	return 0;
}

static void evloop_free_list(struct evloop_entry *e)
{
	while (e != NULL) {
		struct evloop_entry *next = e->next;

		free(e);
		e = next;
	}
}

void evloop_destroy(struct evloop *l)
{
	if (l->epfd < 0)
		return; /* never initialised, or destroyed already */
	evloop_free_list(l->entries);
	evloop_free_list(l->dead);
	l->entries = l->dead = NULL;
	if (l->stop_efd >= 0)
		close(l->stop_efd);
	close(l->epfd);
	l->stop_efd = l->epfd = -1;
	pthread_mutex_destroy(&l->lock);
}

struct evloop_entry *evloop_add(struct evloop *l, int fd, uint32_t events,
				evloop_fn fn, void *opaque,
				struct kiln_error *err)
{
	struct evloop_entry *e = calloc(1, sizeof(*e));
	struct epoll_event ev = { .events = events };
	int ret, saved;

	if (e == NULL) {
		kiln_error_set(err, ENOMEM, "event loop entry");
		return NULL;
	}
	e->fd = fd;
	e->fn = fn;
	e->opaque = opaque;
	ev.data.ptr = e;
	/* the loop may fire e as soon as it is in the set: e is complete */
	pthread_mutex_lock(&l->lock);
	ret = epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
	saved = errno;
	if (ret == 0) {
		e->next = l->entries;
		if (l->entries != NULL)
			l->entries->prev = e;
		l->entries = e;
	}
	pthread_mutex_unlock(&l->lock);
	if (ret < 0) {
		free(e);
		kiln_error_set(err, saved, "add fd %d to the event loop", fd);
		return NULL;
	}
	return e;
}

int evloop_mod(struct evloop *l, struct evloop_entry *e, uint32_t events,
	       struct kiln_error *err)
{
	struct epoll_event ev = { .events = events, .data.ptr = e };
	int ret = -1, saved = ENOENT;

	/*
	 * Under the lock only to refuse a deleted e: its fd number may
	 * already be another entry's, whose data.ptr a MOD would overwrite.
	 */
	pthread_mutex_lock(&l->lock);
	if (!e->dead) {
		ret = epoll_ctl(l->epfd, EPOLL_CTL_MOD, e->fd, &ev);
		saved = errno;
	}
	pthread_mutex_unlock(&l->lock);
	if (ret < 0)
		return kiln_error_set(err, saved,
				      "modify fd %d in the event loop", e->fd);
	return 0;
}

void evloop_del(struct evloop *l, struct evloop_entry *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	if (e->dead) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, NULL);
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		l->entries = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	/*
	 * Events already returned by epoll_wait may still point at e: keep
	 * it, marked dead, until evloop_run() finishes its batch, so a
	 * callback may delete any entry, its own included, and no new entry
	 * can take e's address while an event may still name it.
	 */
	__atomic_store_n(&e->dead, true, __ATOMIC_RELEASE);
	e->prev = NULL;
	e->next = l->dead;
	l->dead = e;
	pthread_mutex_unlock(&l->lock);
}

unsigned int evloop_count(struct evloop *l)
{
	unsigned int n = 0;

	pthread_mutex_lock(&l->lock);
	for (const struct evloop_entry *e = l->entries; e != NULL; e = e->next)
		n++;
	pthread_mutex_unlock(&l->lock);
	return n;
}

int evloop_run(struct evloop *l, struct kiln_error *err)
{
	struct epoll_event evs[16];

	while (!l->stopping) {
		struct evloop_entry *dead;
		int n = epoll_wait(l->epfd, evs, 16, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kiln_error_set(err, errno, "epoll_wait");
		}
		for (int i = 0; i < n && !l->stopping; i++) {
			struct evloop_entry *e = evs[i].data.ptr;

			if (e == NULL) {
				uint64_t v;

				if (read(l->stop_efd, &v, sizeof(v)) < 0) {
					/* nonblocking: already drained */
				}
				l->stopping = true;
			} else if (!__atomic_load_n(&e->dead,
						    __ATOMIC_ACQUIRE)) {
				e->fn(e->opaque, evs[i].events);
			}
		}
		/*
		 * Every entry on the dead list was taken out of the epoll set
		 * before it was put there, so no later epoll_wait returns it;
		 * the batch that may have fetched it is done.
		 */
		pthread_mutex_lock(&l->lock);
		dead = l->dead;
		l->dead = NULL;
		pthread_mutex_unlock(&l->lock);
		evloop_free_list(dead);
	}
	return 0;
}

void evloop_stop(struct evloop *l)
{
	uint64_t one = 1;

	if (write(l->stop_efd, &one, sizeof(one)) < 0) {
		/* the counter is already non-zero: the loop will wake */
	}
}
