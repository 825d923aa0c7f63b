/* SPDX-License-Identifier: Apache-2.0 */
/* The VMM event loop and its threading rule: see evloop.h. */
#include "evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
