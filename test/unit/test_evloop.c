/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../../vmm/evloop.h"
#include "tap.h"

struct ctx {
	struct evloop *l;
	int fds[2];
	int calls;
};

static void on_read(void *opaque, uint32_t events)
{
	struct ctx *c = opaque;
	char ch;

	c->calls++;
	if (read(c->fds[0], &ch, 1) == 1 && ch == 'q')
		evloop_del(c->l, c->fds[0]); /* deleting itself is allowed */
	if (c->calls == 3)
		evloop_stop(c->l);
}

/* Two fds ready in one batch; whichever runs first deletes the other. */
struct pair {
	struct evloop *l;
	int a[2], b[2];
	int calls;
};

static void on_pair(void *opaque, uint32_t events)
{
	struct pair *p = opaque;

	p->calls++;
	evloop_del(p->l, p->a[0]);
	evloop_del(p->l, p->b[0]);
	evloop_stop(p->l);
}

static void *stopper(void *arg)
{
	usleep(10000);
	evloop_stop(arg);
	return NULL;
}

int main(void)
{
	struct kiln_error err = { 0 };
	struct evloop l;
	struct ctx c = { .l = &l };
	pthread_t th;

	is_int(evloop_init(&l, &err), 0, "init");
	is_int(pipe(c.fds), 0, "pipe");
	is_int(evloop_add(&l, c.fds[0], EPOLLIN, on_read, &c, &err), 0, "add");
	is_int(evloop_add(&l, c.fds[0], EPOLLIN, on_read, &c, &err), -1,
	       "adding twice fails");
	is_int(evloop_mod(&l, 12345, EPOLLIN, &err), -1, "mod of unknown fd");
	is_int(write(c.fds[1], "abc", 3), 3, "write 3 bytes");
	is_int(evloop_run(&l, &err), 0, "run until the callback stops it");
	is_int(c.calls, 3, "one call per byte (level-triggered)");

	l.stopping = false;
	is_int(write(c.fds[1], "q", 1), 1, "write q");
	pthread_create(&th, NULL, stopper, &l);
	is_int(evloop_run(&l, &err), 0, "stopped from another thread");
	pthread_join(th, NULL);
	is_int(c.calls, 4, "callback deleted itself and ran once");
	{
		struct pair p = { .l = &l };

		l.stopping = false;
		ok(pipe(p.a) == 0 && pipe(p.b) == 0, "two pipes");
		is_int(evloop_add(&l, p.a[0], EPOLLIN, on_pair, &p, &err), 0,
		       "add a");
		is_int(evloop_add(&l, p.b[0], EPOLLIN, on_pair, &p, &err), 0,
		       "add b");
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
	evloop_destroy(&l);
	close(c.fds[0]);
	close(c.fds[1]);
	return tap_done();
}
