/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The other side of the pid process's control socket (ROOT/ID/ctl.sock):
 * one request line, one answer line, "ok" or "err <message>".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"
#include "kiln.h"

int ctl_call(int dirfd, const char *req, char *reply, size_t len,
	     struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* a start waits for the guest's answer */
	struct timeval tv = { .tv_sec = 60 };
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char line[CTL_LINE_MAX];
	size_t got = 0;

	if (fd < 0)
		return kiln_error_set(err, errno, "socket");
	/* through the directory's fd: --root may be longer than sun_path */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dirfd,
		 CTL_SOCK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return kiln_error_set(err, errno,
				      "the container's pid process does not "
				      "answer");
	/* one write: the pid process reads one line and closes */
	snprintf(line, sizeof(line), "%s\n", req);
	if (util_write_all(fd, line, strlen(line)) < 0)
		return kiln_error_set(err, errno, "send `%s`", req);
	while (got + 1 < len) {
		ssize_t n = read(fd, reply + got, len - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kiln_error_set(err, errno, "no answer to `%s`",
					      req);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	reply[got] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	if (strncmp(reply, "err ", 4) == 0)
		return kiln_error_set(err, 0, "%s", reply + 4);
	if (strncmp(reply, "ok", 2) != 0)
		return kiln_error_set(err, 0,
				      "the pid process ended during `%s`", req);
	return 0;
}
