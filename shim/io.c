/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A process's stdio: containerd's FIFOs on one side, kiln on the other.
 *
 * stdout and stderr FIFOs are handed to kiln as they are (opened O_RDWR,
 * so the open never waits for containerd's reader and a reader that goes
 * away is no SIGPIPE); the shim keeps no copy, so containerd's reader
 * sees EOF once the process's pid process has gone. stdin goes through a
 * pipe and a copier thread, so that CloseIO can end it while containerd
 * keeps its FIFO open. With a terminal, kiln sends the pty master to a
 * console socket and two copier threads join it to the FIFOs.
 *
 * Threads: the copiers own their fds (the stdin copier closes the pipe's
 * write end when it stops); io_close_stdin and io_destroy only wake them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "shim.h"

#define CONSOLE_WAIT_MS 10000

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int open_out(const char *path, int *fd, struct kiln_error *err)
{
	if (!path || !*path)
		return 0;
	*fd = open(path, O_RDWR | O_CLOEXEC);
	if (*fd < 0)
		return kiln_error_set(err, errno, "open %s", path);
	return 0;
}

void io_init(struct shim_io *io)
{
	memset(io, 0, sizeof(*io));
	io->child[0] = io->child[1] = io->child[2] = -1;
	io->stdin_w = io->in_dst = io->master = io->console_listen = -1;
	io->in_wake[0] = io->in_wake[1] = -1;
	io->out_wake[0] = io->out_wake[1] = -1;
	io->console[0] = '\0';
}

int io_prepare(struct shim_io *io, const char *dir, const char *name,
	       struct kiln_error *err)
{
	if (pipe2(io->in_wake, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(io->out_wake, O_CLOEXEC | O_NONBLOCK) < 0)
		return kiln_error_set(err, errno, "pipe");
	if (io->terminal) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int n = snprintf(io->console, sizeof(io->console),
				 "%s/%s.console", dir, name);

		if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
			return kiln_error_set(err, ENAMETOOLONG,
					      "the console socket in %s", dir);
		strcpy(sa.sun_path, io->console);
		unlink(io->console);
		io->console_listen =
			socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (io->console_listen < 0 ||
		    bind(io->console_listen, (struct sockaddr *)&sa,
			 sizeof(sa)) < 0 ||
		    listen(io->console_listen, 1) < 0)
			return kiln_error_set(err, errno, "console socket %s",
					      io->console);
		return 0;
	}
	if (io->stdin_path && *io->stdin_path) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) < 0)
			return kiln_error_set(err, errno, "pipe");
		io->child[0] = p[0];
		io->stdin_w = p[1];
	}
	if (open_out(io->stdout_path, &io->child[1], err) < 0 ||
	    open_out(io->stderr_path, &io->child[2], err) < 0)
		return -1;
	return 0;
}

/* Write all of buf to a non-blocking fd, or stop when wake is readable. */
static int put(int fd, int wake, const char *buf, size_t len)
{
	while (len > 0) {
		struct pollfd p[2] = { { fd, POLLOUT, 0 },
				       { wake, POLLIN, 0 } };
		ssize_t n = write(fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return -1;
		if (p[1].revents)
			return -1;
	}
	return 0;
}

/*
 * Copy from src to dst until src ends or wake. The stdin FIFO opened
 * without blocking shows no hang-up until a writer has come and gone,
 * so containerd may open its end late.
 */
static void copy(int src, int dst, int wake)
{
	char buf[32768];

	for (;;) {
		struct pollfd p[2] = { { src, POLLIN, 0 },
				       { wake, POLLIN, 0 } };
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p[1].revents)
			return;
		n = read(src, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) /* EOF, or EIO: the pty's last slave closed */
			return;
		if (put(dst, wake, buf, (size_t)n) < 0)
			return;
	}
}

static void *stdin_main(void *arg)
{
	struct shim_io *io = arg;
	int src = open(io->stdin_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	int dst = io->in_dst;

	if (src < 0) {
		log_warn("open %s: %s", io->stdin_path, strerror(errno));
	} else {
		fcntl(dst, F_SETFL, fcntl(dst, F_GETFL) | O_NONBLOCK);
		copy(src, dst, io->in_wake[0]);
		close(src);
	}
	/* the process's stdin ends here (a pty's master stays: output) */
	if (!io->terminal)
		close(dst);
	return NULL;
}

static void *stdout_main(void *arg)
{
	struct shim_io *io = arg;
	int dst = -1;

	if (io->stdout_path && *io->stdout_path)
		dst = open(io->stdout_path, O_RDWR | O_CLOEXEC);
	if (dst < 0)
		dst = open("/dev/null", O_WRONLY | O_CLOEXEC);
	copy(io->master, dst, io->out_wake[0]);
	close(dst);
	return NULL;
}

/* The pty master kiln sent to the console socket. */
static int take_master(struct shim_io *io, struct kiln_error *err)
{
	struct pollfd p = { io->console_listen, POLLIN, 0 };
	char cbuf[CMSG_SPACE(sizeof(int))], byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	cleanup_close int c = -1;
	struct cmsghdr *cm;

	if (poll(&p, 1, CONSOLE_WAIT_MS) <= 0)
		return kiln_error_set(err, ETIMEDOUT, "no terminal from kiln");
	c = accept4(io->console_listen, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return kiln_error_set(err, errno, "accept the console");
	if (recvmsg(c, &m, MSG_CMSG_CLOEXEC) < 0)
		return kiln_error_set(err, errno, "receive the console");
	cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int)))
		return kiln_error_set(err, EPROTO, "no pty in the message");
	memcpy(&io->master, CMSG_DATA(cm), sizeof(int));
	return 0;
}

int io_started(struct shim_io *io, struct kiln_error *err)
{
	int r;

	for (int i = 0; i < 3; i++)
		close_fd(&io->child[i]);
	if (io->terminal) {
		r = take_master(io, err);
		close_fd(&io->console_listen);
		unlink(io->console);
		if (r < 0)
			return -1;
		fcntl(io->master, F_SETFL,
		      fcntl(io->master, F_GETFL) | O_NONBLOCK);
		r = pthread_create(&io->out_thread, NULL, stdout_main, io);
		if (r)
			return kiln_error_set(err, r, "start a copier");
		io->out_started = true;
	}
	if (io->stdin_path && *io->stdin_path) {
		io->in_dst = io->terminal ? io->master : io->stdin_w;
		r = pthread_create(&io->in_thread, NULL, stdin_main, io);
		if (r)
			return kiln_error_set(err, r, "start a copier");
		io->in_started = true;
		/* the copier's now */
		if (!io->terminal)
			io->stdin_w = -1;
	}
	return 0;
}

void io_abandon(struct shim_io *io)
{
	for (int i = 0; i < 3; i++)
		close_fd(&io->child[i]);
	close_fd(&io->stdin_w);
	if (io->console_listen >= 0) {
		close_fd(&io->console_listen);
		unlink(io->console);
	}
}

void io_close_stdin(struct shim_io *io)
{
	if (io->in_wake[1] >= 0)
		(void)!write(io->in_wake[1], "x", 1);
	close_fd(&io->stdin_w);
}

int io_resize(struct shim_io *io, uint32_t width, uint32_t height,
	      struct kiln_error *err)
{
	struct winsize ws = { .ws_row = (unsigned short)height,
			      .ws_col = (unsigned short)width };

	if (io->master < 0)
		return kiln_error_set(err, ENOTTY,
				      "the process has no terminal");
	if (ioctl(io->master, TIOCSWINSZ, &ws) < 0)
		return kiln_error_set(err, errno, "resize the terminal");
	return 0;
}

void io_destroy(struct shim_io *io)
{
	io_close_stdin(io);
	if (io->in_started)
		pthread_join(io->in_thread, NULL);
	if (io->out_started) {
		/* the output first: a process that has ended has said all */
		struct pollfd p = { io->master, POLLIN, 0 };

		for (int i = 0; i < 500 && poll(&p, 1, 0) == 1 &&
				(p.revents & POLLIN) && !(p.revents & POLLHUP);
		     i++)
			usleep(1000);
		(void)!write(io->out_wake[1], "x", 1);
		pthread_join(io->out_thread, NULL);
	}
	io->in_started = io->out_started = false;
	for (int i = 0; i < 3; i++)
		close_fd(&io->child[i]);
	close_fd(&io->master);
	close_fd(&io->in_wake[0]);
	close_fd(&io->in_wake[1]);
	close_fd(&io->out_wake[0]);
	close_fd(&io->out_wake[1]);
	if (io->console_listen >= 0) {
		close_fd(&io->console_listen);
		unlink(io->console);
	}
	free(io->stdin_path);
	free(io->stdout_path);
	free(io->stderr_path);
	io->stdin_path = io->stdout_path = io->stderr_path = NULL;
}
