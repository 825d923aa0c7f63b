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

#endif
