/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's Unix socket and its thread ("kiln-api"), and the bridge that
 * hands each request to the VMM thread.
 *
 * The API thread runs its own epoll loop over the listening socket, an
 * eventfd for stop, and up to HTTP_MAX_CONNS nonblocking connections.
 * A request is answered synchronously inside http_conn_feed() (the bridge
 * waits for the VMM thread), so one request is served at a time; other
 * clients only wait, and the VMM thread never waits on a client.
 *
 * Backpressure: a connection is read only while none of its output is
 * pending; with output pending it waits for EPOLLOUT instead, so a client
 * that pipelines but never reads costs at most HTTP_MAX_OUTPUT plus one
 * read. A connection that holds part of a request, or unsent output, and
 * makes no progress for the idle timeout is closed; a request not complete
 * within the request timeout of its first byte is answered 408 and its
 * connection closed, so a client that trickles a byte now and then cannot
 * keep a slot either (see struct http_timeouts). An idle keep-alive
 * connection may stay.
 */
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/log.h"
#include "../../lib/util.h"
#include "../evloop.h"
#include "../metrics.h"
#include "../seccomp.h"
#include "api.h"
#include "http.h"

#define HTTP_READ_CHUNK	    16384
#define HTTP_READS_PER_WAKE 16 /* then let other connections run */

struct srv_conn {
	int fd;
	uint32_t events;
	uint64_t last_ns; /* last progress, for the idle timeout */
	/* first byte of the request being received; 0 between requests */
	uint64_t req_start_ns;
	unsigned long answered; /* http_conn_answered() at req_start_ns */
	struct http_conn *h;
	struct srv_conn *prev, *next;
};

struct http_server {
	int lfd, epfd, stop_efd;
	bool stopping;
	uint64_t idle_ns, request_ns; /* struct http_timeouts */
	uint64_t listen_paused_until; /* ns; 0 when accepting */
	pthread_t thread;
	bool thread_started;
	http_request_fn fn;
	void *opaque;
	struct srv_conn *conns;
	unsigned int nconns;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char rbuf[HTTP_READ_CHUNK];
};

static void conn_free(struct http_server *s, struct srv_conn *c)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	http_conn_free(c->h);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	free(c);
}

/* Send what the client takes; -1 when it is gone. */
static int conn_flush(struct srv_conn *c)
{
	size_t len;
	const char *out = http_conn_output(c->h, &len);

	while (len > 0) {
		ssize_t n = send(c->fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		http_conn_consume(c->h, (size_t)n);
		c->last_ns = util_now_ns();
		out = http_conn_output(c->h, &len);
	}
	return 0;
}

/*
 * Start or stop the request clock: it starts when part of a request is in
 * (bytes parsed into a request, or kept while the output is full) and
 * restarts when a request is answered with the next one already begun.
 * Called after each turn of conn_serve(), so a request's clock starts at
 * most one turn late. (Firecracker's micro_http has no timeout at all: its
 * epoll waits forever and a silent client keeps one of its 10 slots.)
 */
static void conn_track(struct srv_conn *c)
{
	unsigned long answered = http_conn_answered(c->h);

	if (!http_conn_partial(c->h))
		c->req_start_ns = 0;
	else if (c->req_start_ns == 0 || answered != c->answered)
		c->req_start_ns = util_now_ns();
	c->answered = answered;
}

/*
 * Read into s->rbuf; file descriptors that came along (SCM_RIGHTS, ours:
 * PATCH /drives, docs/api.md) go to the connection, close-on-exec, for
 * the request these bytes complete. client-controlled: at most
 * HTTP_MAX_FDS; the kernel drops (closes) what does not fit the control
 * buffer and says MSG_CTRUNC, and the connection is then refused.
 */
static ssize_t conn_recv(struct http_server *s, struct srv_conn *c)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * HTTP_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = s->rbuf, .iov_len = sizeof(s->rbuf) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	int fds[HTTP_MAX_FDS];
	size_t nfds;
	bool extra;
	ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0)
		return n;
	nfds = util_recv_rights(&mh, fds, HTTP_MAX_FDS, &extra);
	http_conn_add_fds(c->h, fds, nfds,
			  extra || (mh.msg_flags & MSG_CTRUNC) != 0);
	return n;
}

/*
 * Serve c until it would block: flush, resume input kept while the output
 * was full, read and feed. Returns -1 when c is done (closed by the
 * client, an error, or closing with every answer sent).
 */
static int conn_serve(struct http_server *s, struct srv_conn *c)
{
	size_t pending;
	uint32_t want;

	for (int reads = 0;;) {
		ssize_t n;

		if (conn_flush(c) < 0)
			return -1;
		http_conn_output(c->h, &pending);
		if (pending > 0)
			break; /* read nothing more until the client reads */
		if (http_conn_feed(c->h, NULL, 0, s->fn, s->opaque) == 1) {
			http_conn_output(c->h, &pending);
			if (pending == 0)
				return -1;
			continue;
		}
		http_conn_output(c->h, &pending);
		if (pending > 0)
			continue;
		if (reads++ == HTTP_READS_PER_WAKE)
			break; /* level-triggered: we come back */
		n = conn_recv(s, c);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return -1; /* EOF or error, with every answer sent */
		c->last_ns = util_now_ns();
		http_conn_feed(c->h, s->rbuf, (size_t)n, s->fn, s->opaque);
	}
	conn_track(c);
	want = pending > 0 ? EPOLLOUT : EPOLLIN;
	if (want != c->events) {
		struct epoll_event ev = { .events = want, .data.ptr = c };

		if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			return -1;
		c->events = want;
	}
	return 0;
}

/* Over HTTP_MAX_CONNS: say so, best effort, and hang up. */
static void conn_refuse(int fd)
{
	static const char body[] = "{\"fault_message\": \"too many API "
				   "connections open\"}";
	char busy[256];
	int n = snprintf(busy, sizeof(busy),
			 "HTTP/1.1 503 %s\r\nServer: kiln-vmm\r\n"
			 "Content-Length: %zu\r\n"
			 "Content-Type: application/json\r\n"
			 "Connection: close\r\n\r\n%s",
			 http_reason(503), sizeof(body) - 1, body);

	if (send(fd, busy, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client is gone or not reading: closing is all we do */
	}
	close(fd);
}

static void server_accept(struct http_server *s)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN };
		struct srv_conn *c;
		int fd = accept4(s->lfd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/*
			 * EMFILE and friends: the connection stays queued and
			 * a level-triggered loop would spin on it; look again
			 * in a while.
			 */
			if (log_ratelimit())
				log_warn("API socket: accept: %s",
					 strerror(errno));
			ev.events = 0;
			ev.data.ptr = s;
			epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->lfd, &ev);
			s->listen_paused_until = util_now_ns() + 100000000ULL;
			return;
		}
		if (s->nconns >= HTTP_MAX_CONNS) {
			conn_refuse(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c != NULL)
			c->h = http_conn_new();
		ev.data.ptr = c;
		if (c == NULL || c->h == NULL ||
		    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			if (c != NULL)
				http_conn_free(c->h);
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->events = EPOLLIN;
		c->last_ns = util_now_ns();
		c->next = s->conns;
		if (s->conns != NULL)
			s->conns->prev = c;
		s->conns = c;
		s->nconns++;
	}
}

static bool conn_stalled(const struct srv_conn *c)
{
	size_t pending;

	http_conn_output(c->h, &pending);
	return pending > 0 || http_conn_partial(c->h);
}

/*
 * Ready for what it waits for: the client moved while a long request kept
 * this thread busy, and epoll has not told us yet.
 */
static bool conn_ready(const struct srv_conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = (short)c->events };

	return poll(&p, 1, 0) == 1 && p.revents != 0;
}

/* Give up on c: 408 for a partial request (best effort), then close. */
static void conn_expire(struct http_server *s, struct srv_conn *c,
			const char *why)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "%s: connection closed", why);
	if (log_ratelimit())
		log_warn("API connection: %s", msg);
	if (http_conn_timeout(c->h, msg) && conn_flush(c) < 0) {
		/* the client is gone: closing is all that is left */
	}
	conn_free(s, c);
}

/*
 * When c's next timeout falls due (UINT64_MAX: none), and which it is.
 */
static uint64_t conn_deadline(const struct http_server *s,
			      const struct srv_conn *c, const char **why)
{
	uint64_t at = UINT64_MAX;

	if (conn_stalled(c)) {
		at = c->last_ns + s->idle_ns;
		*why = "no progress within the idle timeout";
	}
	if (c->req_start_ns != 0 && c->req_start_ns + s->request_ns < at) {
		at = c->req_start_ns + s->request_ns;
		*why = "request not complete within the request timeout";
	}
	return at;
}

/* Close stalled connections; returns the epoll timeout (ms) until the
 * next deadline, or -1 for none. */
static int server_expire(struct http_server *s)
{
	uint64_t now = util_now_ns(), next = UINT64_MAX;
	struct srv_conn *c, *nc;

	if (s->listen_paused_until != 0) {
		if (now >= s->listen_paused_until) {
			struct epoll_event ev = { .events = EPOLLIN,
						  .data.ptr = s };

			s->listen_paused_until = 0;
			epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->lfd, &ev);
		} else {
			next = s->listen_paused_until;
		}
	}
	for (c = s->conns; c != NULL; c = nc) {
		const char *why = NULL;
		uint64_t at = conn_deadline(s, c, &why);

		nc = c->next;
		if (at <= now && conn_ready(c)) {
			/*
			 * The client moved while this thread was busy: take
			 * what it sent before judging it (at most once here,
			 * so a steady trickle cannot keep it alive).
			 */
			if (conn_serve(s, c) < 0) {
				conn_free(s, c);
				continue;
			}
			now = util_now_ns();
			at = conn_deadline(s, c, &why);
		}
		if (at <= now)
			conn_expire(s, c, why);
		else if (at < next)
			next = at;
	}
	if (next == UINT64_MAX)
		return -1;
	if (next <= now)
		return 0; /* now moved on while serving a late connection */
	/* round up: waking a little late is fine, spinning early is not */
	return (int)((next - now + 999999) / 1000000);
}

/*
 * What the API thread may do once it serves (vmm_lockdown() adds the
 * common rules): its epoll loop over the listening socket and its clients
 * (accept, recvmsg, send, close), and the bridge's eventfd write and futex
 * waits. Requests run on the VMM thread, never here: no open, no ioctl,
 * no socket of its own (the listening socket is bound before it starts).
 */
/* clang-format off */
static const struct seccomp_rule api_rules[] = {
	SC_ALLOW(epoll_wait),
	SC_ALLOW(epoll_ctl),
	SC_ALLOW(accept4),
	SC_ALLOW(recvmsg), /* with a client's fd (PATCH /drives) */
	SC_ALLOW(sendto),
	SC_ALLOW(poll),
	SC_ALLOW(close),
};
/* clang-format on */
const struct seccomp_list api_seccomp = SECCOMP_LIST("api", api_rules);

static void *server_thread(void *arg)
{
	struct http_server *s = arg;
	struct epoll_event evs[HTTP_MAX_CONNS + 2];

	struct kiln_error err = { 0 };

	pthread_setname_np(pthread_self(), "kiln-api");
	if (vmm_lockdown(&api_seccomp, &err) < 0) {
		char buf[KILN_ERROR_MSG_MAX + 64];

		/* a thread that cannot be confined must not serve a client */
		log_error("API thread: %s",
			  kiln_error_str(&err, buf, sizeof(buf)));
		_exit(1);
	}
	while (!s->stopping) {
		int n = epoll_wait(s->epfd, evs, ARRAY_SIZE(evs),
				   server_expire(s));

		if (n < 0 && errno != EINTR) {
			log_error("API thread: epoll_wait: %s",
				  strerror(errno));
			break;
		}
		for (int i = 0; i < n && !s->stopping; i++) {
			void *p = evs[i].data.ptr;

			if (p == NULL)
				s->stopping = true;
			else if (p == s)
				server_accept(s);
			else if (conn_serve(s, p) < 0)
				conn_free(s, p);
		}
	}
	while (s->conns != NULL)
		conn_free(s, s->conns);
	return NULL;
}

static int server_listen(struct http_server *s, const char *path,
			 struct kiln_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(addr.sun_path))
		return kiln_error_set(err, ENAMETOOLONG,
				      "API socket path `%s`: %zu bytes, at "
				      "most %zu fit in a Unix socket address",
				      path, len, sizeof(addr.sun_path) - 1);
	memcpy(addr.sun_path, path, len + 1);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->lfd < 0)
		return kiln_error_set(err, errno, "API socket");
	if (bind(s->lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (errno == EADDRINUSE)
			return kiln_error_set(err, 0, "API socket `%s` exists",
					      path);
		return kiln_error_set(err, errno, "bind API socket `%s`", path);
	}
	memcpy(s->path, path, len + 1);
	if (listen(s->lfd, 128) < 0)
		return kiln_error_set(err, errno, "listen on API socket `%s`",
				      path);
	return 0;
}

void http_server_stop(struct http_server *s)
{
	if (s == NULL)
		return;
	if (s->thread_started) {
		uint64_t one = 1;

		if (write(s->stop_efd, &one, sizeof(one)) < 0) {
			/* the counter is already non-zero: the thread wakes */
		}
		pthread_join(s->thread, NULL);
	}
	if (s->path[0] != '\0')
		unlink(s->path);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->stop_efd >= 0)
		close(s->stop_efd);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s);
}

int http_server_start(struct http_server **out, const char *path,
		      http_request_fn fn, void *opaque, struct kiln_error *err)
{
	return http_server_start_timeouts(out, path, fn, opaque, NULL, err);
}

int http_server_start_timeouts(struct http_server **out, const char *path,
			       http_request_fn fn, void *opaque,
			       const struct http_timeouts *t,
			       struct kiln_error *err)
{
	struct http_server *s = calloc(1, sizeof(*s));
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t all, old;
	int ret;

	if (s == NULL)
		return kiln_error_set(err, ENOMEM, "API server");
	s->idle_ns = (t ? t->idle_ms : HTTP_IDLE_TIMEOUT_MS) * 1000000ULL;
	s->request_ns =
		(t ? t->request_ms : HTTP_REQUEST_TIMEOUT_MS) * 1000000ULL;
	s->lfd = s->stop_efd = -1;
	s->fn = fn;
	s->opaque = opaque;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		kiln_error_set(err, errno, "API server epoll");
		goto fail;
	}
	s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ev.data.ptr = NULL;
	if (s->stop_efd < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stop_efd, &ev) < 0) {
		kiln_error_set(err, errno, "API server eventfd");
		goto fail;
	}
	if (server_listen(s, path, err) < 0)
		goto fail;
	ev.data.ptr = s;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) < 0) {
		kiln_error_set(err, errno, "API server epoll");
		goto fail;
	}
	/* signals belong to the VMM thread's signalfd, as for the vCPUs */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&s->thread, NULL, server_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		kiln_error_set(err, ret, "start the API thread");
		goto fail;
	}
	s->thread_started = true;
	*out = s;
	return 0;
fail:
	http_server_stop(s);
	return -1;
}

/* ---- the bridge: API thread → VMM thread ------------------------------- */

/* A request waiting for the VMM thread; lives on the API thread's stack. */
struct api_job {
	const struct api_request *req;
	struct api_response *resp;
	bool done; /* under lock: the API thread may return, job is gone */
	struct api_job *next;
};

struct api_server {
	struct http_server *http;
	struct evloop *loop;
	struct api_ctx *ctx;
	api_dispatch_fn dispatch;
	int efd; /* API thread → VMM thread: jobs queued */
	struct evloop_entry *efd_ev; /* efd in loop, or NULL */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct api_job *head, **tail;
	bool stopping;
};

static void answer_shutdown(struct api_response *resp)
{
	resp->status = 503;
	resp->body = strdup("{\"fault_message\": \"the VMM is shutting "
			    "down\"}");
}

/* API thread: hand the request over and wait for its answer. */
static void bridge_request(void *opaque, const struct api_request *req,
			   struct api_response *resp)
{
	struct api_server *a = opaque;
	struct api_job job = { .req = req, .resp = resp };
	uint64_t t0 = util_now_ns(), one = 1;

	pthread_mutex_lock(&a->lock);
	if (a->stopping) {
		pthread_mutex_unlock(&a->lock);
		answer_shutdown(resp);
	} else {
		*a->tail = &job;
		a->tail = &job.next;
		pthread_mutex_unlock(&a->lock);
		if (write(a->efd, &one, sizeof(one)) < 0) {
			/* only at a counter near 2^64: the loop wakes anyway */
		}
		pthread_mutex_lock(&a->lock);
		while (!job.done)
			pthread_cond_wait(&a->cond, &a->lock);
		pthread_mutex_unlock(&a->lock);
	}
	metrics_api_request(req->method, resp->status, util_now_ns() - t0);
}

/* VMM thread: answer everything queued. */
static void bridge_on_event(void *opaque, uint32_t events)
{
	struct api_server *a = opaque;
	struct api_job *job, *next;
	uint64_t v;

	if (read(a->efd, &v, sizeof(v)) < 0) {
		/* nonblocking: already drained */
	}
	pthread_mutex_lock(&a->lock);
	job = a->head;
	a->head = NULL;
	a->tail = &a->head;
	pthread_mutex_unlock(&a->lock);
	for (; job != NULL; job = next) {
		next = job->next;
		a->dispatch(a->ctx, job->req, job->resp);
		pthread_mutex_lock(&a->lock);
		job->done = true;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
	}
}

void api_server_stop(struct api_server *a)
{
	struct api_job *job;

	if (a == NULL)
		return;
	/*
	 * The VMM thread may no longer run the loop: answer what waits, and
	 * whatever comes later, here, or the API thread would wait forever
	 * and the join below with it.
	 */
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	for (job = a->head; job != NULL; job = job->next) {
		answer_shutdown(job->resp);
		job->done = true;
	}
	a->head = NULL;
	a->tail = &a->head;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	http_server_stop(a->http);
	evloop_del(a->loop, a->efd_ev);
	if (a->efd >= 0)
		close(a->efd);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

int api_server_start_with(struct api_server **out, const char *sock_path,
			  struct evloop *loop, struct api_ctx *ctx,
			  api_dispatch_fn dispatch, struct kiln_error *err)
{
	struct api_server *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return kiln_error_set(err, ENOMEM, "API server");
	a->loop = loop;
	a->ctx = ctx;
	a->dispatch = dispatch;
	a->tail = &a->head;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->efd < 0) {
		kiln_error_set(err, errno, "API eventfd");
		goto fail;
	}
	a->efd_ev = evloop_add(loop, a->efd, EPOLLIN, bridge_on_event, a, err);
	if (a->efd_ev == NULL)
		goto fail;
	if (http_server_start(&a->http, sock_path, bridge_request, a, err) < 0)
		goto fail;
	*out = a;
	return 0;
fail:
	api_server_stop(a);
	return -1;
}

int api_server_start(struct api_server **out, const char *sock_path,
		     struct evloop *loop, struct api_ctx *ctx,
		     struct kiln_error *err)
{
	return api_server_start_with(out, sock_path, loop, ctx, api_dispatch,
				     err);
}
