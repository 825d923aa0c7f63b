/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "../../vmm/evloop.h"
#include "tap.h"

struct ctx {
	struct evloop *l;
	struct evloop_entry *e;
	int fds[2];
	int calls;
};

static void on_read(void *opaque, uint32_t events)
{
	struct ctx *c = opaque;
	char ch;

	c->calls++;
	if (read(c->fds[0], &ch, 1) == 1 && ch == 'q')
		evloop_del(c->l, c->e); /* deleting itself is allowed */
	if (c->calls == 3)
		evloop_stop(c->l);
}

/* Two fds ready in one batch; whichever runs first deletes the other. */
struct pair {
	struct evloop *l;
	struct evloop_entry *ea, *eb;
	int a[2], b[2];
	int calls;
};

static void on_pair(void *opaque, uint32_t events)
{
	struct pair *p = opaque;

	p->calls++;
	evloop_del(p->l, p->ea);
	evloop_del(p->l, p->eb);
	evloop_stop(p->l);
}

static void *stopper(void *arg)
{
	usleep(10000);
	evloop_stop(arg);
	return NULL;
}

/*
 * Another thread adds, mods and deletes while the loop runs: the entries
 * it adds get their events on the loop thread, its mods take effect, and
 * what it deletes is not called once the loop has seen the delete.
 */
struct remote {
	struct evloop *l;
	pthread_t loop_thread;
	int fds[2];
	int calls;	      /* on the loop thread only */
	int on_loop_thread;   /* calls that ran on loop_thread */
	pthread_mutex_t lock; /* guards seen */
	pthread_cond_t cond;  /* seen changed */
	int seen;	      /* calls, published */
};

static void on_remote(void *opaque, uint32_t events)
{
	struct remote *r = opaque;
	char ch;

	if (read(r->fds[0], &ch, 1) != 1)
		return;
	r->calls++;
	if (pthread_equal(pthread_self(), r->loop_thread))
		r->on_loop_thread++;
	pthread_mutex_lock(&r->lock);
	r->seen = r->calls;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void *run_loop(void *arg)
{
	struct kiln_error err = { 0 };

	evloop_run(arg, &err);
	return NULL;
}

/* Wait (bounded) until the loop has made n calls; the count seen. */
static int remote_wait(struct remote *r, int n)
{
	struct timespec ts;
	int seen;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&r->lock);
	while (r->seen < n &&
	       pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0)
		;
	seen = r->seen;
	pthread_mutex_unlock(&r->lock);
	return seen;
}

static void test_other_thread(void)
{
	struct kiln_error err = { 0 };
	struct evloop l;
	struct remote r = { .l = &l };
	struct evloop_entry *e;
	int seen;

	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	is_int(evloop_init(&l, &err), 0, "remote: init");
	is_int(pipe(r.fds), 0, "remote: pipe");
	pthread_create(&r.loop_thread, NULL, run_loop, &l);

	/* this thread is not the loop's: everything below races it */
	e = evloop_add(&l, r.fds[0], 0, on_remote, &r, &err);
	ok(e != NULL, "remote: add while the loop runs");
	is_int(write(r.fds[1], "a", 1), 1, "remote: one byte");
	is_int(evloop_mod(&l, e, EPOLLIN, &err), 0, "remote: mod to EPOLLIN");
	is_int(remote_wait(&r, 1), 1, "remote: the mod took effect");
	is_int(evloop_mod(&l, e, 0, &err), 0, "remote: mod to nothing");
	is_int(write(r.fds[1], "b", 1), 1, "remote: another byte");
	is_int(evloop_mod(&l, e, EPOLLIN, &err), 0, "remote: mod back");
	is_int(remote_wait(&r, 2), 2, "remote: second byte delivered");
	evloop_del(&l, e);
	is_int(write(r.fds[1], "c", 1), 1, "remote: a byte after the delete");
	/* out of the epoll set: "c" must never reach on_remote */
	evloop_stop(&l);
	pthread_join(r.loop_thread, NULL);
	pthread_mutex_lock(&r.lock);
	seen = r.seen;
	pthread_mutex_unlock(&r.lock);
	is_int(seen, 2, "remote: not called after the delete");
	is_int(r.on_loop_thread, 2, "remote: every call on the loop thread");
	ok(l.dead == NULL && l.entries == NULL, "remote: the loop freed the "
						"deleted entry");
	evloop_destroy(&l);
	close(r.fds[0]);
	close(r.fds[1]);
	pthread_cond_destroy(&r.cond);
	pthread_mutex_destroy(&r.lock);
}

int main(void)
{
	struct kiln_error err = { 0 };
	struct evloop l;
	struct ctx c = { .l = &l };
	pthread_t th;

	is_int(evloop_init(&l, &err), 0, "init");
	is_int(pipe(c.fds), 0, "pipe");
	c.e = evloop_add(&l, c.fds[0], EPOLLIN, on_read, &c, &err);
	ok(c.e != NULL, "add");
	ok(evloop_add(&l, c.fds[0], EPOLLIN, on_read, &c, &err) == NULL, "addin"
									 "g "
									 "twice"
									 " fail"
									 "s");
	is_int(err.errnum, EEXIST, "... with EEXIST");
	is_int(write(c.fds[1], "abc", 3), 3, "write 3 bytes");
	is_int(evloop_run(&l, &err), 0, "run until the callback stops it");
	is_int(c.calls, 3, "one call per byte (level-triggered)");

	l.stopping = false;
	is_int(write(c.fds[1], "q", 1), 1, "write q");
	pthread_create(&th, NULL, stopper, &l);
	is_int(evloop_run(&l, &err), 0, "stopped from another thread");
	pthread_join(th, NULL);
	is_int(c.calls, 4, "callback deleted itself and ran once");
	ok(l.dead == NULL, "the batch's deleted entry was freed after it");
	{
		struct pair p = { .l = &l };

		l.stopping = false;
		ok(pipe(p.a) == 0 && pipe(p.b) == 0, "two pipes");
		p.ea = evloop_add(&l, p.a[0], EPOLLIN, on_pair, &p, &err);
		ok(p.ea != NULL, "add a");
		p.eb = evloop_add(&l, p.b[0], EPOLLIN, on_pair, &p, &err);
		ok(p.eb != NULL, "add b");
		ok(write(p.a[1], "x", 1) == 1 && write(p.b[1], "y", 1) == 1,
		   "both ready");
		is_int(evloop_run(&l, &err), 0, "run one batch");
		is_int(p.calls, 1,
		       "an fd deleted by another callback in the batch is not "
		       "called");
		for (int i = 0; i < 2; i++) {
			close(p.a[i]);
			close(p.b[i]);
		}
	}
	/* the loop is not running: a deleted entry waits for destroy */
	c.e = evloop_add(&l, c.fds[0], EPOLLIN, on_read, &c, &err);
	ok(c.e != NULL, "add again");
	evloop_del(&l, c.e);
	is_int(evloop_mod(&l, c.e, EPOLLIN, &err), -1,
	       "mod of a deleted entry is refused until it is freed");
	is_int(err.errnum, ENOENT, "... with ENOENT");
	evloop_del(&l, c.e); /* a second delete is ignored */
	ok(l.dead == c.e && l.entries == NULL, "deleted once, on the dead "
					       "list");
	evloop_destroy(&l);
	close(c.fds[0]);
	close(c.fds[1]);
	test_other_thread();
	return tap_done();
}
