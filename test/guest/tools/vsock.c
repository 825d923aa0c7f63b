/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny socat for AF_VSOCK streams, static, for guest test scripts:
 *
 *   vsock listen PORT       accept one connection, then pump
 *   vsock connect CID PORT  connect, then pump
 *   vsock echo PORT         serve forever: each connection (a child)
 *                           gets back what it sends, then EOF
 *
 * Pump: stdin → socket and socket → stdout; EOF on stdin shuts the
 * socket's write side; the tool ends at the socket's EOF. Status 0, or 1
 * with a message on stderr.
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[64 * 1024];

static int fail(const char *what)
{
	fprintf(stderr, "vsock: %s: %s\n", what, strerror(errno));
	return 1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int pump(int s)
{
	struct pollfd p[2] = { { .fd = 0, .events = POLLIN },
			       { .fd = s, .events = POLLIN } };

	for (;;) {
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return fail("poll");
		}
		if (p[0].revents) {
			n = read(0, buf, sizeof(buf));
			if (n < 0)
				return fail("read stdin");
			if (n == 0) {
				shutdown(s, SHUT_WR);
				p[0].fd = -1;
			} else if (write_all(s, buf, (size_t)n) < 0) {
				return fail("write socket");
			}
		}
		if (p[1].revents) {
			n = read(s, buf, sizeof(buf));
			if (n < 0)
				return fail("read socket");
			if (n == 0)
				return 0;
			if (write_all(1, buf, (size_t)n) < 0)
				return fail("write stdout");
		}
	}
}

static int echo(int s)
{
	for (;;) {
		ssize_t n = read(s, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("read socket");
		if (n == 0)
			break;
		if (write_all(s, buf, (size_t)n) < 0)
			return fail("write socket");
	}
	shutdown(s, SHUT_WR);
	/* wait for the peer's close so nothing in flight is lost */
	while (read(s, buf, sizeof(buf)) > 0)
		;
	return 0;
}

static int listener(unsigned int port)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK,
				  .svm_cid = VMADDR_CID_ANY,
				  .svm_port = port };
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s, 64) < 0)
		return -1;
	return s;
}

int main(int argc, char **argv)
{
	int s, c;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && strcmp(argv[1], "listen") == 0) {
		s = listener((unsigned int)strtoul(argv[2], NULL, 10));
		if (s < 0)
			return fail("listen");
		c = accept(s, NULL, NULL);
		if (c < 0)
			return fail("accept");
		close(s);
		return pump(c);
	}
	if (argc == 4 && strcmp(argv[1], "connect") == 0) {
		struct sockaddr_vm sa = {
			.svm_family = AF_VSOCK,
			.svm_cid = (unsigned int)strtoul(argv[2], NULL, 10),
			.svm_port = (unsigned int)strtoul(argv[3], NULL, 10),
		};

		s = socket(AF_VSOCK, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return fail("connect");
		return pump(s);
	}
	if (argc == 3 && strcmp(argv[1], "echo") == 0) {
		signal(SIGCHLD, SIG_IGN); /* no zombies */
		s = listener((unsigned int)strtoul(argv[2], NULL, 10));
		if (s < 0)
			return fail("listen");
		for (;;) {
			c = accept(s, NULL, NULL);
			if (c < 0) {
				if (errno == EINTR)
					continue;
				return fail("accept");
			}
			if (fork() == 0) {
				close(s);
				_exit(echo(c));
			}
			close(c);
		}
	}
	fprintf(stderr, "usage: vsock listen PORT | connect CID PORT | "
			"echo PORT\n");
	return 2;
}
