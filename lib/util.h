/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers every part of kiln (VMM, agent, runtime, tests) needs and
 * none owns: the monotonic clock, power-of-2 checks, whole writes.
 */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* clk now, in ns. */
static inline uint64_t util_clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC now, in ns: for intervals and deadlines. */
static inline uint64_t util_now_ns(void)
{
	return util_clock_ns(CLOCK_MONOTONIC);
}

static inline bool util_is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/*
 * Write all len bytes of buf to fd, retrying short writes and EINTR. A
 * socket is written with MSG_NOSIGNAL: a closed peer is EPIPE, never a
 * SIGPIPE. 0, or -1 with errno (EIO if the fd took no bytes).
 */
int util_write_all(int fd, const void *buf, size_t len);
/* All len bytes at offset off (pwrite/pread, EINTR retried); -1 with
 * errno, EIO for a short file. */
int util_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int util_pread_all(int fd, void *buf, size_t len, uint64_t off);

#define UTIL_MAX_SEND_FDS 8
/*
 * One sendmsg of len bytes of buf on a Unix socket, with nfds (at most
 * UTIL_MAX_SEND_FDS) descriptors riding along as SCM_RIGHTS; flags as
 * sendmsg's. Returns sendmsg's result (short sends are the caller's).
 */
ssize_t util_send_fds(int sock, const void *buf, size_t len, const int *fds,
		      size_t nfds, int flags);

struct msghdr;
/*
 * The descriptors a received message's SCM_RIGHTS carried, in order: the
 * first max into fds, any more closed (*extra set then). Returns how many
 * are in fds, each the caller's to close.
 */
size_t util_recv_rights(struct msghdr *m, int *fds, size_t max, bool *extra);

/*
 * clone(2) as fork (flags: clone's, the exit signal in CSIGNAL), without
 * glibc's fork handlers: see util_clone_into.
 */
pid_t util_clone(unsigned long flags);
/*
 * The same, the child born in the cgroup whose folder cgroup_dir is: clone3's
 * CLONE_INTO_CGROUP, *born true. Where that cannot be (cgroup_dir -1, a
 * kernel before 5.7, a cgroup that refuses), the child is born where we
 * are, *born false, and joins with a write to cgroup.procs, which names
 * the cgroup's error if it has one. A move waits for an RCU grace period
 * (9-17 ms in the test bed); a birth does not.
 *
 * No glibc fork handlers run and the child's thread descriptor keeps our
 * tid: call it with one thread, or for a child that only execs, and never
 * pthread_kill the child's first thread.
 */
pid_t util_clone_into(unsigned long flags, int cgroup_dir, bool *born);

#endif
