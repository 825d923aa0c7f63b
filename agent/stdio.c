/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stdio streams (vsock port 1025; protocol in agent.proto's header). One
 * thread per attached stream, blocking I/O both ways: a full pipe or a
 * slow host stalls the copy and so the writer, never a buffer in here,
 * and bytes go out in the order they came in.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define RELAY_BUF (64 * 1024)

static void relay_out(int src, int sock, char *buf)
{
	for (;;) {
		ssize_t n = read(src, buf, RELAY_BUF);

		if (n < 0 && errno == EINTR)
			continue;
		/* 0: every writer closed the pipe; EIO: the pty's last
		 * slave is gone */
		if (n <= 0)
			break;
		if (util_write_all(sock, buf, n) < 0)
			break; /* the host went away: the writer gets EPIPE */
	}
	shutdown(sock, SHUT_WR);
}

/* copy what the socket holds now, without waiting for more */
static bool drain_in(int sock, int dst, char *buf)
{
	for (;;) {
		ssize_t n = recv(sock, buf, RELAY_BUF, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		if (util_write_all(dst, buf, n) < 0)
			return false;
	}
}

static void relay_in(int sock, int dst, int wake, char *buf)
{
	struct pollfd pfd[2] = { { .fd = sock, .events = POLLIN },
				 { .fd = wake, .events = POLLIN } };

	for (;;) {
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pfd[1].revents) {
			/* CloseStdin: what arrived so far, then EOF */
			drain_in(sock, dst, buf);
			return;
		}
		n = read(sock, buf, RELAY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the host's half-close */
		if (util_write_all(dst, buf, n) < 0)
			return; /* the reader is gone */
	}
}

/* Take the agent's end of stream s of p; -1 with a reason in err. */
static int take_stream(struct proc *p, enum spec_stream s, int *wake,
		       struct kiln_error *err)
{
	int fd = -1;

	pthread_mutex_lock(&ctr_lock);
	if (p->attached[s]) {
		kiln_error_set(err, 0, "stream already attached");
	} else if (s == SPEC_STDIN && p->stdin_closed) {
		kiln_error_set(err, 0, "stdin is closed or was not asked for");
	} else if (p->terminal) {
		if (s == SPEC_STDERR)
			kiln_error_set(err, 0, "no stderr with a terminal");
		else if ((fd = fcntl(p->pty_master, F_DUPFD_CLOEXEC, 3)) < 0)
			kiln_error_set(err, errno, "dup the pty");
	} else if (p->fd[s] < 0) {
		kiln_error_set(err, 0, "stream was not asked for");
	} else {
		fd = steal_fd(&p->fd[s]);
	}
	if (fd >= 0 && s == SPEC_STDIN) {
		p->stdin_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->stdin_wake < 0) {
			kiln_error_set(err, errno, "eventfd");
			if (p->terminal)
				close(fd);
			else
				p->fd[s] = fd;
			fd = -1;
		} else {
			*wake = p->stdin_wake;
		}
	}
	if (fd >= 0)
		p->attached[s] = true;
	pthread_mutex_unlock(&ctr_lock);
	return fd;
}

static void stdin_done(struct proc *p)
{
	pthread_mutex_lock(&ctr_lock);
	p->stdin_closed = true;
	pthread_mutex_unlock(&ctr_lock);
}

int stdio_close_stdin(struct proc *p, struct kiln_error *err)
{
	uint64_t one = 1;

	pthread_mutex_lock(&ctr_lock);
	if (p->attached[SPEC_STDIN] && !p->stdin_closed) {
		if (write(p->stdin_wake, &one, sizeof(one)) < 0)
			log_warn("wake the stdin relay: %m");
	} else if (!p->terminal && p->fd[SPEC_STDIN] >= 0) {
		close(p->fd[SPEC_STDIN]);
		p->fd[SPEC_STDIN] = -1;
	}
	p->stdin_closed = p->stdin_closed || !p->attached[SPEC_STDIN];
	pthread_mutex_unlock(&ctr_lock);
	return 0;
}

/* the attach line, up to '\n', read a byte at a time: nothing of the
 * stream after it may be consumed here */
static int read_line(int fd, char *line, size_t max, size_t *len)
{
	size_t n = 0;

	while (n < max) {
		ssize_t r = read(fd, line + n, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (line[n] == '\n') {
			*len = n;
			return 0;
		}
		n++;
	}
	return -1;
}

static void answer(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void answer(int fd, const char *fmt, ...)
{
	char buf[300];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[n++] = '\n';
	util_write_all(fd, buf, n);
}

static void *stream_main(void *arg)
{
	int sock = (int)(intptr_t)arg, fd, wake = -1;
	struct timeval tv = { .tv_sec = 10 };
	char line[SPEC_STREAM_LINE_MAX + 1], errbuf[KILN_ERROR_MSG_MAX + 64];
	struct spec_stream_hdr h;
	struct kiln_error err = { 0 };
	cleanup_free char *buf = NULL;
	struct proc *p;
	size_t len;

	/* host-controlled: a silent or endless line must not pin a thread */
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (read_line(sock, line, sizeof(line), &len) < 0) {
		answer(sock, "ERR no attach line");
		close(sock);
		return NULL;
	}
	if (spec_stream_header_parse(line, len, &h, &err) < 0) {
		answer(sock, "ERR %s", kiln_error_str(&err, errbuf, 300));
		close(sock);
		return NULL;
	}
	p = proc_get(h.container_id, h.exec_id, &err);
	buf = malloc(RELAY_BUF);
	fd = p && buf ? take_stream(p, h.stream, &wake, &err) : -1;
	if (fd < 0) {
		if (buf == NULL)
			kiln_error_set(&err, ENOMEM, "relay buffer");
		answer(sock, "ERR %s", kiln_error_str(&err, errbuf, 300));
		close(sock);
		if (p)
			proc_put(p);
		return NULL;
	}
	tv.tv_sec = 0;
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	answer(sock, "OK");
	if (h.stream == SPEC_STDIN) {
		relay_in(sock, fd, wake, buf);
		close(fd);
		stdin_done(p);
	} else {
		relay_out(fd, sock, buf);
		close(fd);
	}
	close(sock);
	proc_put(p);
	return NULL;
}

int stdio_serve_detached(int fd, struct kiln_error *err)
{
	pthread_attr_t attr;
	pthread_t t;
	int r;

	r = pthread_attr_init(&attr);
	if (r == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		r = pthread_create(&t, &attr, stream_main,
				   (void *)(intptr_t)fd);
		pthread_attr_destroy(&attr);
	}
	if (r != 0) {
		close(fd);
		return kiln_error_set(err, r, "start a stream thread");
	}
	return 0;
}
