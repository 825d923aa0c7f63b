/* SPDX-License-Identifier: Apache-2.0 */
/*
 * iobench: guest side of test/bench/io, static. Each mode prints one line
 *
 *   IOBENCH <mode> <bytes> <ns> <ops> [<median-ns>]
 *
 * on stdout (ns: CLOCK_MONOTONIC wall time of the whole workload) and exits
 * 0, or exits 1 with a message on stderr.
 *
 *   iobench seq-read|seq-write DEV MIB     1 MiB O_DIRECT requests, from 0
 *   iobench rand-read|rand-write DEV SECS  4 KiB O_DIRECT requests at random
 *                                          4 KiB-aligned offsets (xorshift64,
 *                                          fixed seed) for SECS seconds
 *   iobench tcp-send|vsock-send HOST PORT MIB
 *                 connect, send MIB MiB, shut down writing, wait for the
 *                 peer's EOF (it closes once it has read everything)
 *   iobench tcp-recv|vsock-recv HOST PORT  connect, read to EOF
 *   iobench vsock-rtt HOST PORT COUNT      COUNT 64-byte ping-pongs with an
 *                                          echo server; 6th field: median
 * HOST is an IPv4 address for tcp-*, a CID for vsock-*.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BS	(1 << 20)
#define RAND_BS 4096
#define NET_BS	(64 << 10)
#define RTT_BS	64
#define RTT_MAX (1 << 16)

static char *buf;
static uint64_t rtt[RTT_MAX]; /* vsock-rtt: ns per round trip */

static int fail(const char *what)
{
	fprintf(stderr, "iobench: %s: %s\n", what, strerror(errno));
	return 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* MEDIAN: 0 for none */
static void report(const char *mode, uint64_t bytes, uint64_t ns, uint64_t ops,
		   uint64_t median)
{
	printf(median ? "IOBENCH %s %llu %llu %llu %llu\n"
		      : "IOBENCH %s %llu %llu %llu\n",
	       mode, (unsigned long long)bytes, (unsigned long long)ns,
	       (unsigned long long)ops, (unsigned long long)median);
}

/* One whole request at OFF; O_DIRECT transfers are never short here. */
static int blk_io(int fd, int wr, size_t len, off_t off)
{
	ssize_t n = wr ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);

	if (n >= 0 && n != (ssize_t)len)
		errno = EIO; /* past the end */
	return n == (ssize_t)len ? 0 : -1;
}

static int blk(const char *mode, const char *dev, unsigned long arg)
{
	int wr = strstr(mode, "write") != NULL, rnd = !strncmp(mode, "rand", 4);
	uint64_t size, ops = 0, bytes = 0, t0, end, x = 0x9e3779b97f4a7c15ull;
	int fd = open(dev, (wr ? O_RDWR : O_RDONLY) | O_DIRECT);

	if (fd < 0)
		return fail(dev);
	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		return fail("BLKGETSIZE64");
	memset(buf, 0xa5, SEQ_BS);
	t0 = now_ns();
	if (!rnd) {
		for (; ops < arg; ops++, bytes += SEQ_BS)
			if (blk_io(fd, wr, SEQ_BS, (off_t)bytes) < 0)
				return fail(mode);
	} else {
		end = t0 + (uint64_t)arg * 1000000000u;
		/* the clock is read every 16 requests */
		for (; (ops & 15) || now_ns() < end; ops++, bytes += RAND_BS) {
			/* xorshift64: the same offsets on every run */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (blk_io(fd, wr, RAND_BS,
				   (off_t)(x % (size / RAND_BS) * RAND_BS)) < 0)
				return fail(mode);
		}
	}
	report(mode, bytes, now_ns() - t0, ops, 0);
	close(fd);
	return 0;
}

static int dial(int vsock, const char *host, const char *port)
{
	struct sockaddr_vm vm = { .svm_family = AF_VSOCK };
	struct sockaddr_in in = { .sin_family = AF_INET };
	int s = socket(vsock ? AF_VSOCK : AF_INET, SOCK_STREAM, 0);

	if (vsock) {
		vm.svm_cid = (unsigned int)strtoul(host, NULL, 10);
		vm.svm_port = (unsigned int)strtoul(port, NULL, 10);
	} else {
		in.sin_port = htons((uint16_t)strtoul(port, NULL, 10));
		if (inet_pton(AF_INET, host, &in.sin_addr) != 1) {
			errno = EINVAL;
			return -1;
		}
	}
	if (s < 0 ||
	    connect(s, vsock ? (struct sockaddr *)&vm : (struct sockaddr *)&in,
		    vsock ? sizeof(vm) : sizeof(in)) < 0)
		return -1;
	return s;
}

/* Reads to EOF; returns the bytes read, or -1. */
static int64_t drain(int s)
{
	int64_t total = 0;
	ssize_t n;

	while ((n = read(s, buf, NET_BS)) > 0)
		total += n;
	return n < 0 ? -1 : total;
}

static int write_all(int s, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(s, p, n); /* no signal handlers: no EINTR */

		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int stream(const char *mode, const char *host, const char *port,
		  unsigned long arg)
{
	int vsock = !strncmp(mode, "vsock", 5);
	uint64_t t0 = now_ns(), ops = 0, bytes = 0;
	int64_t got;
	int s = dial(vsock, host, port);

	if (s < 0)
		return fail("connect");
	memset(buf, 0x5a, NET_BS);
	if (strstr(mode, "send")) {
		for (; bytes < (uint64_t)arg << 20; bytes += NET_BS, ops++)
			if (write_all(s, buf, NET_BS) < 0)
				return fail("write");
		shutdown(s, SHUT_WR);
		if (drain(s) < 0)
			return fail("read");
	} else if (strstr(mode, "recv")) {
		if ((got = drain(s)) < 0)
			return fail("read");
		bytes = (uint64_t)got;
		ops = 1;
	} else {
		if (arg == 0 || arg > RTT_MAX) {
			errno = EINVAL;
			return fail("vsock-rtt COUNT");
		}
		for (; ops < arg; ops++, bytes += RTT_BS) {
			uint64_t t = now_ns();
			size_t have = 0;
			ssize_t n;

			if (write_all(s, buf, RTT_BS) < 0)
				return fail("write");
			for (; have < RTT_BS; have += (size_t)n) {
				n = read(s, buf + have, RTT_BS - have);
				if (n <= 0)
					return fail(n ? "read" : "early EOF");
			}
			rtt[ops] = now_ns() - t;
		}
		shutdown(s, SHUT_WR);
		qsort(rtt, ops, sizeof(*rtt), cmp_u64);
	}
	report(mode, bytes, now_ns() - t0, ops,
	       strstr(mode, "rtt") ? rtt[ops / 2] : 0);
	close(s);
	return 0;
}

/* Is M one of the words of LIST (" a b c ")? */
static int in(const char *m, const char *list)
{
	char key[32];

	snprintf(key, sizeof(key), " %s ", m);
	return strstr(list, key) != NULL;
}

int main(int argc, char **argv)
{
	const char *m = argc > 1 ? argv[1] : "";
	char *end;
	unsigned long arg = argc > 3 ? strtoul(argv[argc - 1], &end, 10) : 0;

	buf = aligned_alloc(4096, SEQ_BS);
	if (!buf)
		return fail("aligned_alloc");
	if (argc == 4 && in(m, " seq-read seq-write rand-read rand-write ") &&
	    !*end && arg > 0)
		return blk(m, argv[2], arg);
	if (argc == 4 && in(m, " tcp-recv vsock-recv "))
		return stream(m, argv[2], argv[3], 0);
	if (argc == 5 && in(m, " tcp-send vsock-send vsock-rtt "))
		return stream(m, argv[2], argv[3], arg);
	fprintf(stderr, "usage: see the comment atop iobench.c\n");
	return 2;
}
