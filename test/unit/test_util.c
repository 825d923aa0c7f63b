/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared helpers: lib/util.h (clock, is_pow2, write_all, send_fds,
 * clone_into) and the
 * scatter-gather copies of vmm/virtio/iov.h, at segment boundaries.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "../../vmm/virtio/iov.h"
#include "tap.h"

static void test_util(void)
{
	uint64_t t0 = util_now_ns(), t1 = util_now_ns();
	char big[256 * 1024], out[sizeof(big)];
	int p[2], sv[2], status = -1;
	size_t got = 0;
	pid_t pid;

	ok(t1 >= t0, "util_now_ns does not go back");
	ok(util_is_pow2(1) && util_is_pow2(1024) && util_is_pow2(1ULL << 63),
	   "powers of 2");
	ok(!util_is_pow2(0) && !util_is_pow2(3) && !util_is_pow2(1025), "not "
									"powers"
									" of "
									"2");

	/* more than a pipe holds: short writes are retried */
	memset(big, 'x', sizeof(big));
	if (pipe(p) < 0)
		return;
	pid = fork();
	if (pid == 0)
		_exit(util_write_all(p[1], big, sizeof(big)) == 0 ? 0 : 1);
	close(p[1]);
	for (ssize_t n; (n = read(p[0], out + got, sizeof(out) - got)) > 0;)
		got += (size_t)n;
	close(p[0]);
	waitpid(pid, &status, 0);
	ok(got == sizeof(big) && WIFEXITED(status) &&
		   WEXITSTATUS(status) == 0 && memcmp(big, out, got) == 0,
	   "write_all to a pipe: every byte (%zu)", got);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return;
	/* a closed socket peer: EPIPE, no SIGPIPE kills us */
	close(sv[1]);
	ok(util_write_all(sv[0], "a", 1) < 0 && errno == EPIPE, "write_all to "
								"a closed "
								"socket: "
								"EPIPE, not a "
								"signal");
	close(sv[0]);
}

static void test_iov(void)
{
	uint8_t a[3], b[0], c[5], buf[16];
	struct iovec iov[3] = { { a, 3 }, { b, 0 }, { c, 5 } }, dst[3];
	struct virtq_chain ch = { .nread = 1, .nwrite = 2 };

	memcpy(a, "abc", 3);
	memcpy(c, "defgh", 5);
	ok(iov_to_buf(iov, 3, 2, buf, 4) && memcmp(buf, "cdef", 4) == 0,
	   "to_buf across segments and an empty one");
	ok(!iov_to_buf(iov, 3, 5, buf, 4), "to_buf past the end: short");
	is_int(iov_from_buf(iov, 3, 1, "XYZW", 4), 4, "from_buf: 4 bytes");
	ok(memcmp(a, "aXY", 3) == 0 && memcmp(c, "ZWfgh", 5) == 0, "from_buf: "
								   "placed "
								   "across "
								   "segments");
	is_int(iov_from_buf(iov, 3, 6, "1234", 4), 2, "from_buf: cut at end");
	is_int(iov_slice(dst, iov, 3, 2, 3), 2, "slice: two segments");
	ok(dst[0].iov_base == a + 2 && dst[0].iov_len == 1 &&
		   dst[1].iov_base == c && dst[1].iov_len == 2,
	   "slice: bounds");
	is_int(iov_slice(dst, iov, 3, 8, 4), 0, "slice past the end: empty");

	ch.iov[0] = iov[0];
	ch.iov[1] = iov[1];
	ch.iov[2] = iov[2];
	is_int(virtq_chain_write(&ch, 0, "pqrstu", 6), 5,
	       "chain write: only the writable part");
	ok(memcmp(a, "aXY", 3) == 0 && memcmp(c, "pqrst", 5) == 0, "chain "
								   "write: "
								   "readable "
								   "part "
								   "untouched");
	ok(virtq_chain_read(&ch, 1, buf, 2) && memcmp(buf, "XY", 2) == 0,
	   "chain read: the readable part");
	ok(!virtq_chain_read(&ch, 1, buf, 3), "chain read: not past it");
}

/* Two descriptors ride with the bytes and arrive as working copies. */
static void test_send_fds(void)
{
	int sv[2], pfd[2], fds[2], got[2] = { -1, -1 }, many[9] = { 0 };
	char data[4] = { 0 }, c = 0;
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
	struct msghdr m = { .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe(pfd) < 0) {
		ok(0, "socketpair/pipe: %s", strerror(errno));
		return;
	}
	fds[0] = pfd[0];
	fds[1] = pfd[1];
	ok(util_send_fds(sv[0], "abcd", 4, fds, 2, MSG_NOSIGNAL) == 4, "send_"
								       "fds: "
								       "the "
								       "bytes "
								       "go");
	ok(recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC) == 4 &&
		   memcmp(data, "abcd", 4) == 0,
	   "send_fds: the bytes arrive");
	cm = CMSG_FIRSTHDR(&m);
	ok(cm != NULL && cm->cmsg_type == SCM_RIGHTS &&
		   cm->cmsg_len == CMSG_LEN(2 * sizeof(int)),
	   "send_fds: two descriptors arrive");
	if (cm != NULL)
		memcpy(got, CMSG_DATA(cm), sizeof(got));
	ok(got[1] >= 0 && write(got[1], "z", 1) == 1 &&
		   read(pfd[0], &c, 1) == 1 && c == 'z',
	   "send_fds: in order, and they work");
	ok(util_send_fds(sv[0], "x", 1, NULL, 0, 0) == 1, "send_fds: no "
							  "descriptors");
	errno = 0;
	ok(util_send_fds(sv[0], "x", 1, many, 9, 0) < 0 && errno == EINVAL,
	   "send_fds: more than %d descriptors refused", UTIL_MAX_SEND_FDS);
	for (int i = 0; i < 2; i++)
		if (got[i] >= 0)
			close(got[i]);
	close(pfd[0]);
	close(pfd[1]);
	close(sv[0]);
	close(sv[1]);
}

/* The child says where it was born through its exit status: 0 in the
 * cgroup it was asked for (*born true), 1 where we are (*born false). */
static int clone_into(int cgroup_dir, bool *born_seen)
{
	bool born = false;
	int status = -1;
	pid_t pid = util_clone_into(SIGCHLD, cgroup_dir, &born);

	if (pid == 0)
		_exit(born ? 0 : 1);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	*born_seen = born;
	return WEXITSTATUS(status);
}

/* Our own cgroup (v2), where a birth works if cgroupfs lets us write:
 * whichever way it went, parent and child agree on it. */
static void own_cgroup(void)
{
	char line[PATH_MAX] = "", path[PATH_MAX + 32];
	FILE *f = fopen("/proc/self/cgroup", "re");
	bool born = false;
	int fd, r;

	if (f == NULL)
		return;
	/* v2 only: the line "0::/PATH" */
	while (fgets(line, sizeof(line), f) != NULL &&
	       strncmp(line, "0::", 3) != 0)
		;
	fclose(f);
	if (strncmp(line, "0::", 3) != 0)
		return;
	line[strcspn(line, "\n")] = '\0';
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s", line + 3);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	r = clone_into(fd, &born);
	ok(r == (born ? 0 : 1),
	   "clone_into our own cgroup: parent and child "
	   "agree (%s)",
	   born ? "born there" : "cgroupfs refused, born where we are");
	close(fd);
}

static void test_clone_into(void)
{
	char dir[] = "/tmp/kiln-util-XXXXXX";
	bool born = true;
	int fd;

	ok(clone_into(-1, &born) == 1 && !born, "clone_into without a cgroup: "
						"a child born where we are");
	/* a folder that is no cgroup: clone3 refuses it (EBADF), and the
	 * child is born where we are, to join by cgroup.procs (which then
	 * names the error) */
	if (mkdtemp(dir) == NULL)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	born = true;
	ok(fd >= 0 && clone_into(fd, &born) == 1 && !born, "clone_into a "
							   "folder that is no "
							   "cgroup: born where "
							   "we are, "
							   "*born false in "
							   "parent and child");
	if (fd >= 0)
		close(fd);
	rmdir(dir);
	own_cgroup();
}

int main(void)
{
	signal(SIGPIPE, SIG_DFL);
	test_util();
	test_iov();
	test_send_fds();
	test_clone_into();
	return tap_done();
}
