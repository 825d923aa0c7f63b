/* SPDX-License-Identifier: Apache-2.0 */
#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <linux/sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int util_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	bool sock = true;

	while (len > 0) {
		ssize_t n = sock ? send(fd, p, len, MSG_NOSIGNAL)
				 : write(fd, p, len);

		if (n < 0 && sock && errno == ENOTSOCK) {
			sock = false;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* pwrite or pread all of len bytes at off; a short end is EIO. */
static int pio_all(int fd, uint8_t *p, size_t len, uint64_t off, bool write)
{
	while (len > 0) {
		ssize_t n = write ? pwrite(fd, p, len, (off_t)off)
				  : pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int util_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	/* pio_all only reads from p when writing */
	return pio_all(fd, (uint8_t *)buf, len, off, true);
}

int util_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	return pio_all(fd, buf, len, off, false);
}

ssize_t util_send_fds(int sock, const void *buf, size_t len, const int *fds,
		      size_t nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(UTIL_MAX_SEND_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > UTIL_MAX_SEND_FDS) {
		errno = EINVAL;
		return -1;
	}
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &m, flags);
}

size_t util_recv_rights(struct msghdr *m, int *fds, size_t max, bool *extra)
{
	size_t n = 0;

	*extra = false;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL;
	     c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		for (size_t i = 0;
		     i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (n < max) {
				fds[n++] = fd;
			} else {
				close(fd);
				*extra = true;
			}
		}
	}
	return n;
}

pid_t util_clone(unsigned long flags)
{
	/* x86-64 argument order: flags, stack, parent_tid, child_tid, tls.
	 * A NULL stack: the child runs on a copy of ours, as after fork. */
	return (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
}

pid_t util_clone_into(unsigned long flags, int cgroup_dir, bool *born)
{
	struct clone_args ca = { .flags = (flags & ~(unsigned long)CSIGNAL) |
					  CLONE_INTO_CGROUP,
				 .exit_signal = flags & CSIGNAL,
				 .cgroup = (uint64_t)cgroup_dir };
	pid_t pid;

	/* the child reads *born: true before it can exist */
	*born = cgroup_dir >= 0;
	if (*born) {
		/* no stack: the child runs on a copy of ours, as after fork */
		pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
		if (pid >= 0)
			return pid;
		*born = false;
	}
	return util_clone(flags);
}
