/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A guest process's stdio on the host, for the pid process of a
 * container and for each exec: the caller's fds 0-2 (pipes, FIFOs, a
 * terminal), or a pty whose master went to --console-socket.
 *
 * One thread per stream copies with blocking I/O, so a reader that
 * stops stalls only its own stream (and, through the agent, the writer
 * in the guest), never the pid process's control loop. Each thread owns
 * its two fds; when its copy ends it writes one byte to done_pipe, which
 * the owner of the stdio_set reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "../lib/agent_client.h"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "kiln.h"

#define RELAY_BUF (64 * 1024)

int stdio_init(struct stdio_set *io, struct kiln_error *err)
{
	memset(io, 0, sizeof(*io));
	io->pty = -1;
	for (int i = 0; i < 3; i++)
		io->pre[i].fd = -1;
	if (pipe2(io->done_pipe, O_CLOEXEC) < 0)
		return kiln_error_set(err, errno, "pipe");
	return 0;
}

static void *relay_main(void *arg)
{
	struct stdio_relay *r = arg;
	char *buf = malloc(RELAY_BUF);

	for (;;) {
		ssize_t n = buf != NULL ? read(r->from, buf, RELAY_BUF) : -1;

		if (n < 0 && errno == EINTR)
			continue;
		/* EIO: the pty's other side closed */
		if (n <= 0 || util_write_all(r->to, buf, (size_t)n) < 0)
			break;
	}
	free(buf);
	if (r->to_guest)
		shutdown(r->to, SHUT_WR);
	/* 'o': an output to the caller ended; 'i': stdin, into the guest */
	util_write_all(r->done_fd, r->to_guest ? "i" : "o", 1);
	return NULL;
}

static int relay_add(struct stdio_set *io, int from, int to, bool to_guest,
		     struct kiln_error *err)
{
	struct stdio_relay *r = &io->relays[io->n_relays];
	pthread_t t;
	int e;

	r->from = from;
	r->to = to;
	r->to_guest = to_guest;
	r->done_fd = io->done_pipe[1];
	e = pthread_create(&t, NULL, relay_main, r);
	if (e != 0)
		return kiln_error_set(err, e, "relay thread");
	pthread_detach(t);
	if (!to_guest)
		io->n_outputs++;
	io->n_relays++;
	return 0;
}

static void *preconnect_main(void *arg)
{
	struct stdio_pre *p = arg;

	p->fd = agent_vsock_connect(p->uds, AGENT_STREAM_PORT,
				    agent_deadline_ms(10000), NULL);
	return NULL;
}

void stdio_preconnect(struct stdio_set *io, struct agent_client *c)
{
	for (int i = 0; i < 3; i++) {
		struct stdio_pre *p = &io->pre[i];

		p->uds = agent_client_uds(c);
		p->running = io->streams[i] &&
			     pthread_create(&p->thread, NULL, preconnect_main,
					    p) == 0;
	}
}

/* Stream i's connection made ahead, its thread joined: or -1. */
static int preconnected(struct stdio_set *io, int i)
{
	struct stdio_pre *p = &io->pre[i];
	int fd;

	if (p->running)
		pthread_join(p->thread, NULL);
	p->running = false;
	fd = p->fd;
	p->fd = -1;
	return fd;
}

/* One stream's attach, on a thread of its own (attach_all). */
struct attach_job {
	struct agent_client *c;
	const char *ctr, *exec_id, *stream;
	int pre; /* its connection made ahead, or -1 */
	int fd;
	struct kiln_error err;
};

static void *attach_main(void *arg)
{
	struct attach_job *j = arg;

	if (j->pre >= 0) {
		j->fd = agent_attach_stream_on(j->c, j->pre, j->ctr, j->exec_id,
					       j->stream, &j->err);
		/* else one the agent gave up waiting on: a new one */
		if (j->fd >= 0)
			return NULL;
	}
	j->fd = agent_attach_stream(j->c, j->ctr, j->exec_id, j->stream,
				    &j->err);
	return NULL;
}

/*
 * The streams' attaches at once: each is a vsock connection and two
 * round trips to the guest, which one after the other made a
 * container's start wait for all six. The threads only read c (its
 * socket path and timeout) and own their job until joined; a failed
 * attach closes the others' fds, and the first failure is the error.
 */
static int attach_all(struct attach_job *jobs, size_t n, struct kiln_error *err)
{
	pthread_t t[3];
	bool here[3] = { false }; /* no thread: run in this one */
	int res = 0;

	for (size_t i = 1; i < n; i++)
		here[i] = pthread_create(&t[i], NULL, attach_main, &jobs[i]) !=
			  0;
	attach_main(&jobs[0]);
	for (size_t i = 1; i < n; i++)
		if (here[i])
			attach_main(&jobs[i]);
		else
			pthread_join(t[i], NULL);
	for (size_t i = 0; i < n; i++)
		if (jobs[i].fd < 0 && res == 0) {
			*err = jobs[i].err;
			res = -1;
		}
	for (size_t i = 0; res < 0 && i < n; i++)
		if (jobs[i].fd >= 0)
			close(jobs[i].fd);
	return res;
}

/* /dev/null (char 1:3): no stream carries anything from or to it */
static bool is_null(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
	       st.st_rdev == makedev(1, 3);
}

void stdio_request(struct stdio_set *io, bool terminal,
		   Kiln__Agent__V1__Process *p)
{
	for (int i = 0; i < 3; i++)
		io->streams[i] = terminal ? i < 2 : !is_null(i);
	p->stdin = io->streams[0];
	p->stdout = io->streams[1];
	p->stderr = io->streams[2];
}

int stdio_attach(struct stdio_set *io, struct agent_client *c, const char *ctr,
		 const char *exec_id, struct kiln_error *err)
{
	static const char *const names[3] = { "stdin", "stdout", "stderr" };
	/* with a pty, it is both ends of the terminal's streams */
	int ours[3] = { io->pty >= 0 ? io->pty : 0, io->pty >= 0 ? io->pty : 1,
			2 };
	struct attach_job j[3];
	size_t n = 0;

	for (int i = 0; i < 3; i++) {
		int pre = preconnected(io, i);

		if (io->streams[i])
			j[n++] = (struct attach_job){ .c = c,
						      .ctr = ctr,
						      .exec_id = exec_id,
						      .stream = names[i],
						      .pre = pre,
						      .fd = -1 };
		else if (pre >= 0)
			close(pre);
	}
	if (n == 0 || attach_all(j, n, err) < 0)
		return n == 0 ? 0 : -1;
	n = 0;
	for (int i = 0; i < 3; i++) {
		int fd;

		if (!io->streams[i])
			continue;
		fd = j[n++].fd;
		if (i == 0 ? relay_add(io, ours[0], fd, true, err) < 0
			   : relay_add(io, fd, ours[i], false, err) < 0)
			return -1;
	}
	return 0;
}

void stdio_drain(struct stdio_set *io, unsigned int ms)
{
	uint64_t deadline = util_now_ns() + (uint64_t)ms * 1000000;

	while (io->n_ended < io->n_outputs) {
		struct pollfd p = { .fd = io->done_pipe[0], .events = POLLIN };
		uint64_t now = util_now_ns();
		char c;

		if (now >= deadline ||
		    poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			break;
		/* the stdin relay ends too (at once from /dev/null): only
		 * the outputs' ends count, or an output is cut short */
		if (read(io->done_pipe[0], &c, 1) == 1 && c == 'o')
			io->n_ended++;
	}
}

int stdio_console_connect(const char *path, struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(sa.sun_path))
		return kiln_error_set(err, ENAMETOOLONG,
				      "--console-socket `%s`", path);
	strcpy(sa.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return kiln_error_set(err, errno, "--console-socket `%s`",
				      path);
	return steal_fd(&fd);
}

int stdio_pty_open(struct stdio_set *io, int console_fd, struct kiln_error *err)
{
	cleanup_close int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	char name[64];
	struct termios t;

	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
	    ptsname_r(master, name, sizeof(name)) != 0)
		return kiln_error_set(err, errno, "open a pty");
	io->pty = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (io->pty < 0)
		return kiln_error_set(err, errno, "open `%s`", name);
	/* the guest's pty does the line discipline: ours passes bytes */
	if (tcgetattr(io->pty, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(io->pty, TCSANOW, &t);
	}
	/* The caller's fds 0-2 are not the container's now: let them go.
	 * containerd's runc shim reads `create`'s output to its end, which
	 * would never come while we held them (runc's init swaps them for
	 * the pty's slave likewise). */
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
		    dup2(null, 2) < 0)
			return kiln_error_set(err, errno, "stdio to /dev/null");
		if (null > 2)
			close(null);
	}
	/* our controlling terminal: a resize of the master is a SIGWINCH */
	if (setsid() < 0 || ioctl(io->pty, TIOCSCTTY, 0) < 0)
		log_warn("make %s the controlling terminal: %m", name);
	/* the name runc sends with it */
	if (util_send_fds(console_fd, "/dev/ptmx", 9, &master, 1,
			  MSG_NOSIGNAL) < 0)
		return kiln_error_set(err, errno,
				      "send the pty to the console socket");
	close(console_fd);
	return 0;
}

void stdio_resize(struct stdio_set *io, struct agent_client *c, const char *ctr,
		  const char *exec_id)
{
	struct kiln_error err = { 0 };
	struct winsize ws;

	if (io->pty < 0 || ioctl(io->pty, TIOCGWINSZ, &ws) < 0 ||
	    ws.ws_col == 0)
		return;
	if (agent_resize(c, ctr, exec_id, ws.ws_col, ws.ws_row, &err) < 0)
		log_warn("resize: %s", err.msg);
}
