/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VMM event loop: one epoll set, run by the VMM thread. Devices add the
 * fds they serve (stdin for the console, eventfds for queue notifications,
 * backend sockets); callbacks run on that thread only.
 */
#ifndef KILN_VMM_EVLOOP_H
#define KILN_VMM_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "../lib/error.h"

typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop_entry;

struct evloop {
	int epfd;
	int stop_efd; /* eventfd: evloop_stop() from any thread */
	bool stopping;
	struct evloop_entry *entries;
	struct evloop_entry *dead; /* deleted during a batch, freed after it */
};

int evloop_init(struct evloop *l, struct kiln_error *err);
void evloop_destroy(struct evloop *l);
/* events are EPOLLIN/EPOLLOUT/...; the callback gets what fired. */
int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn,
	       void *opaque, struct kiln_error *err);
int evloop_mod(struct evloop *l, int fd, uint32_t events,
	       struct kiln_error *err);
void evloop_del(struct evloop *l, int fd);
/* Run until evloop_stop(); returns -1 with err on an epoll failure. */
int evloop_run(struct evloop *l, struct kiln_error *err);
/* Safe from any thread and from a signal handler. */
void evloop_stop(struct evloop *l);

#endif
