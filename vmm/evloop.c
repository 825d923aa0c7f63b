/* SPDX-License-Identifier: Apache-2.0 */
#include "evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct evloop_entry {
	int fd;
	bool dead; /* deleted: freed once the current batch is done */
	evloop_fn fn;
	void *opaque;
	struct evloop_entry *next;
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
	evloop_free_list(l->entries);
	evloop_free_list(l->dead);
	l->entries = l->dead = NULL;
	if (l->stop_efd >= 0)
		close(l->stop_efd);
	if (l->epfd >= 0)
		close(l->epfd);
	l->stop_efd = l->epfd = -1;
}

int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn,
	       void *opaque, struct kiln_error *err)
{
	struct evloop_entry *e = calloc(1, sizeof(*e));
	struct epoll_event ev = { .events = events };

	if (e == NULL)
		return kiln_error_set(err, ENOMEM, "event loop entry");
	e->fd = fd;
	e->fn = fn;
	e->opaque = opaque;
	ev.data.ptr = e;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(e);
		return kiln_error_set(err, errno, "add fd %d to the event loop",
				      fd);
	}
	e->next = l->entries;
	l->entries = e;
	return 0;
}

static struct evloop_entry *evloop_find(struct evloop *l, int fd,
					struct evloop_entry ***link)
{
	struct evloop_entry **p;

	for (p = &l->entries; *p != NULL; p = &(*p)->next) {
		if ((*p)->fd == fd) {
			if (link != NULL)
				*link = p;
			return *p;
		}
	}
	return NULL;
}

int evloop_mod(struct evloop *l, int fd, uint32_t events,
	       struct kiln_error *err)
{
	struct evloop_entry *e = evloop_find(l, fd, NULL);
	struct epoll_event ev = { .events = events, .data.ptr = e };

	if (e == NULL)
		return kiln_error_set(err, ENOENT,
				      "fd %d is not in the event loop", fd);
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return kiln_error_set(err, errno,
				      "modify fd %d in the event loop", fd);
	return 0;
}

void evloop_del(struct evloop *l, int fd)
{
	struct evloop_entry **link, *e = evloop_find(l, fd, &link);

	if (e == NULL)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	*link = e->next;
	/*
	 * Events already returned by epoll_wait may still point at e: keep
	 * it, marked dead, until evloop_run() finishes the batch, so a
	 * callback may delete any fd, its own included, and no new entry can
	 * take e's address within the batch.
	 */
	e->dead = true;
	e->next = l->dead;
	l->dead = e;
}

int evloop_run(struct evloop *l, struct kiln_error *err)
{
	struct epoll_event evs[16];

	while (!l->stopping) {
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
			} else if (!e->dead) {
				e->fn(e->opaque, evs[i].events);
			}
		}
		evloop_free_list(l->dead);
		l->dead = NULL;
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
