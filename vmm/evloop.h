/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VMM event loop: one epoll set, run by the VMM thread. Devices add the
 * fds they serve (stdin for the console, eventfds for queue notifications,
 * backend sockets); callbacks run on that thread only.
 *
 * The threading rule (every device follows it):
 *
 * - The loop thread (the one in evloop_run) owns the callbacks: only it
 *   calls them, one at a time.
 * - evloop_add, evloop_mod and evloop_del are safe from any thread (vCPU
 *   threads in an MMIO trap, the API thread, the loop thread inside a
 *   callback) at any time between evloop_init and evloop_destroy.
 *   evloop_add returns the entry as a handle; the device keeps it and
 *   passes it back, so no operation searches the loop's list. The list
 *   (for evloop_destroy) and the dead list are changed under l->lock;
 *   evloop_mod is one epoll_ctl, under l->lock only to refuse an entry
 *   already deleted.
 * - A handle is valid from evloop_add until the device's evloop_del on it;
 *   after that the device must forget it (evloop_mod and evloop_del of a
 *   deleted handle are refused or ignored only until the loop frees it).
 *   The loop frees a deleted entry after the batch of events in which it
 *   was deleted, never during one, so an event already fetched for it is
 *   dropped, not delivered through freed memory.
 *
 * What a device may rely on once evloop_del(l, e) has returned:
 *
 * - called on the loop thread (in any callback, its own included) or while
 *   no thread runs the loop: e's callback is never called again, not even
 *   for an event fetched in the current batch.
 * - called on another thread: the loop may be inside e's callback, or
 *   about to enter it for an event fetched before the delete; it will not
 *   enter it after that. So the callback must find out from the device's
 *   own state, under the device's lock, that its work is gone, and its
 *   opaque must stay valid until the loop has stopped: free it on the
 *   loop thread, or after evloop_run returned. (No device in the tree
 *   deletes from another thread while the loop runs: they delete on the
 *   loop thread or at exit; vCPU threads only call evloop_mod.)
 *
 * evloop_del never waits for a callback to return, so a device may call
 * it (and add and mod) with its own lock held, the lock its callbacks
 * take: l->lock is always the innermost lock and no callback runs under
 * it.
 */
#ifndef KILN_VMM_EVLOOP_H
#define KILN_VMM_EVLOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../lib/error.h"

typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop_entry;

/* Owner: the loop thread runs it; fields below lock are under lock. */
struct evloop {
	int epfd;
	int stop_efd;  /* eventfd: evloop_stop() from any thread */
	bool stopping; /* the loop thread's (or set while it is not running) */
	pthread_mutex_t lock;
	struct evloop_entry *entries; /* live: for evloop_destroy */
	struct evloop_entry *dead;    /* deleted, freed after the batch */
};

int evloop_init(struct evloop *l, struct kiln_error *err);
/* Frees every entry; call when no thread runs the loop. */
void evloop_destroy(struct evloop *l);
/*
 * events are EPOLLIN/EPOLLOUT/...; the callback gets what fired. Returns
 * the entry (the handle for evloop_mod/del), or NULL with err.
 */
struct evloop_entry *evloop_add(struct evloop *l, int fd, uint32_t events,
				evloop_fn fn, void *opaque,
				struct kiln_error *err);
/* Change the events waited for; -1 with err (ENOENT: e was deleted). */
int evloop_mod(struct evloop *l, struct evloop_entry *e, uint32_t events,
	       struct kiln_error *err);
/* Take e out of the loop (NULL: nothing); the fd stays open. */
void evloop_del(struct evloop *l, struct evloop_entry *e);
/* Entries added and not deleted (for tests and leak checks). */
unsigned int evloop_count(struct evloop *l);
/* Run until evloop_stop(); returns -1 with err on an epoll failure. */
int evloop_run(struct evloop *l, struct kiln_error *err);
/* Safe from any thread and from a signal handler. */
void evloop_stop(struct evloop *l);

#endif
