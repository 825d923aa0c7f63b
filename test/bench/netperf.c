// SPDX-License-Identifier: Apache-2.0
/*
 * netperf: the measuring end of test/bench/net. Static (it runs inside a
 * busybox-static container rootfs as well as on the host).
 *
 *   netperf server ADDR PORT
 *       Serves connections one at a time until a client sends "quit".
 *       Prints "listening ADDR PORT" once it accepts.
 *   netperf client [-w SECONDS] ADDR PORT TEST...
 *       Runs each TEST in order on fresh connections and prints one line
 *       of figures per test. The first connection is retried for up to
 *       SECONDS (default 60) while it is refused or unreachable.
 *       TEST is one of
 *         up:MIB      the client sends MIB MiB; the server acknowledges the
 *                     count it received; MiB/s over request..ack
 *         down:MIB    the server sends MIB MiB; MiB/s over request..last byte
 *         rr:K[:S]    K round trips of S bytes (default 1) over one
 *                     connection; p50/p99/mean/max in microseconds
 *         crr:N       N times connect, send 1 byte, wait for the server's
 *                     close, close; connections per second
 *         quit        the server exits 0
 *
 * Wire format: each connection begins with a 16-byte request (mode byte,
 * 3 bytes zero, u32 size, u64 count; little-endian, both ends the same
 * build). A crr connection sends the mode byte alone.
 *
 * Every socket has 60 s send and receive timeouts: a stalled path fails
 * with a message and exit status 1, never hangs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_S   60
#define BUF_SIZE       (256u << 10)
#define RR_MAX_SIZE    (64u << 10)
#define RR_MAX_ITERS   10000000u
#define STREAM_MAX_MIB (1u << 20)

enum {
	M_UP = 'U',
	M_DOWN = 'D',
	M_RR = 'R',
	M_CRR = 'C',
	M_QUIT = 'Q'
};

struct req {
	uint8_t mode;
	uint8_t pad[3];
	uint32_t size;
	uint64_t count;
};

static uint8_t buf[BUF_SIZE];

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("netperf: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
};

static void parse_addr(const char *host, const char *port, struct addr *a)
{
	char *end;
	unsigned long p = strtoul(port, &end, 10);

	if (*port == '\0' || *end != '\0' || p == 0 || p > 65535)
		die("bad port `%s`", port);
	memset(a, 0, sizeof(*a));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p);
		a->len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p);
		a->len = sizeof(*v6);
	} else {
		die("bad address `%s` (numeric IPv4 or IPv6)", host);
	}
	a->family = a->ss.ss_family;
}

static void sock_setup(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die("setsockopt: %s", strerror(errno));
}

/* All of len bytes, or die naming what. */
static void write_all(int fd, const void *p, size_t len, const char *what)
{
	const uint8_t *b = p;

	while (len > 0) {
		ssize_t r = send(fd, b, len, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("%s: send: %s", what,
			    errno == EAGAIN ? "timed out" : strerror(errno));
		b += r;
		len -= (size_t)r;
	}
}

/* len bytes; 0 at end of file before the first byte, else all or die. */
static int read_full(int fd, void *p, size_t len, const char *what)
{
	uint8_t *b = p;
	size_t got = 0;

	while (got < len) {
		ssize_t r = recv(fd, b + got, len - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("%s: recv: %s", what,
			    errno == EAGAIN ? "timed out" : strerror(errno));
		if (r == 0) {
			if (got == 0)
				return 0;
			die("%s: connection closed after %zu of %zu bytes",
			    what, got, len);
		}
		got += (size_t)r;
	}
	return 1;
}

static void wait_eof(int fd, const char *what)
{
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r == 0)
			return;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("%s: recv: %s", what,
			    errno == EAGAIN ? "timed out" : strerror(errno));
		die("%s: %zd unexpected bytes", what, r);
	}
}

/* ---- server -------------------------------------------------------- */

static void serve_one(int c, int *quit)
{
	struct req q;
	uint8_t mode;

	sock_setup(c);
	if (!read_full(c, &mode, 1, "server: request"))
		return; /* a probe that connected and went */
	if (mode == M_CRR) {
		/* connect, 1 byte, close: the server closes first */
		return;
	}
	q.mode = mode;
	if (!read_full(c, (uint8_t *)&q + 1, sizeof(q) - 1, "server: request"))
		die("server: short request");
	switch (q.mode) {
	case M_UP: {
		uint64_t want = q.count, got = 0;
		if (want > (uint64_t)STREAM_MAX_MIB << 20)
			die("server: up of %llu bytes",
			    (unsigned long long)want);
		while (got < want) {
			size_t n = want - got < BUF_SIZE ? (size_t)(want - got)
							 : BUF_SIZE;
			ssize_t r = recv(c, buf, n, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				die("server: up: recv: %s", strerror(errno));
			if (r == 0)
				break;
			got += (uint64_t)r;
		}
		write_all(c, &got, sizeof(got), "server: up ack");
		break;
	}
	case M_DOWN: {
		uint64_t left = q.count;
		if (left > (uint64_t)STREAM_MAX_MIB << 20)
			die("server: down of %llu bytes",
			    (unsigned long long)left);
		while (left > 0) {
			size_t n = left < BUF_SIZE ? (size_t)left : BUF_SIZE;
			write_all(c, buf, n, "server: down");
			left -= n;
		}
		break;
	}
	case M_RR:
		if (q.size == 0 || q.size > RR_MAX_SIZE ||
		    q.count > RR_MAX_ITERS)
			die("server: rr of %llu x %u bytes",
			    (unsigned long long)q.count, q.size);
		for (uint64_t i = 0; i < q.count; i++) {
			if (!read_full(c, buf, q.size, "server: rr"))
				die("server: rr: closed after %llu of %llu",
				    (unsigned long long)i,
				    (unsigned long long)q.count);
			write_all(c, buf, q.size, "server: rr");
		}
		break;
	case M_QUIT:
		*quit = 1;
		write_all(c, "q", 1, "server: quit");
		break;
	default:
		die("server: unknown request 0x%02x", q.mode);
	}
}

static int server(const char *host, const char *port)
{
	struct addr a;
	int one = 1, quit = 0;

	parse_addr(host, port, &a);
	int l = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		die("socket: %s", strerror(errno));
	if (setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		die("SO_REUSEADDR: %s", strerror(errno));
	if (bind(l, (struct sockaddr *)&a.ss, a.len) < 0)
		die("bind %s port %s: %s", host, port, strerror(errno));
	if (listen(l, 128) < 0)
		die("listen: %s", strerror(errno));
	printf("listening %s %s\n", host, port);
	fflush(stdout);
	while (!quit) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (c < 0)
			die("accept: %s", strerror(errno));
		serve_one(c, &quit);
		close(c);
	}
	close(l);
	return 0;
}

/* ---- client -------------------------------------------------------- */

static int dial(const struct addr *a, const char *what)
{
	int fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("%s: socket: %s", what, strerror(errno));
	sock_setup(fd);
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		die("%s: connect: %s", what, strerror(errno));
	return fd;
}

/* The server may still be starting (in a container): retry refusals. */
static void wait_server(const struct addr *a, double wait)
{
	double t0 = now_s();

	for (;;) {
		int fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		sock_setup(fd);
		if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0) {
			close(fd); /* the server sees a probe: EOF at once */
			return;
		}
		int e = errno;
		close(fd);
		if (e != ECONNREFUSED && e != ENETUNREACH &&
		    e != EHOSTUNREACH && e != ETIMEDOUT && e != EADDRNOTAVAIL)
			die("connect: %s", strerror(e));
		if (now_s() - t0 > wait)
			die("no server after %.0f s: %s", wait, strerror(e));
		usleep(20000);
	}
}

static void send_req(int fd, uint8_t mode, uint32_t size, uint64_t count)
{
	struct req q = { .mode = mode, .size = size, .count = count };
	write_all(fd, &q, sizeof(q), "request");
}

static void t_up(const struct addr *a, uint64_t mib)
{
	uint64_t want = mib << 20, left = want, got = 0;
	int fd = dial(a, "up");

	memset(buf, 0x5a, sizeof(buf));
	double t0 = now_s();
	send_req(fd, M_UP, 0, want);
	while (left > 0) {
		size_t n = left < BUF_SIZE ? (size_t)left : BUF_SIZE;
		write_all(fd, buf, n, "up");
		left -= n;
	}
	if (!read_full(fd, &got, sizeof(got), "up ack"))
		die("up: no acknowledgement");
	double dt = now_s() - t0;
	close(fd);
	if (got != want)
		die("up: the server received %llu of %llu bytes",
		    (unsigned long long)got, (unsigned long long)want);
	printf("up bytes=%llu secs=%.6f mibps=%.2f\n", (unsigned long long)want,
	       dt, (double)want / (1 << 20) / dt);
}

static void t_down(const struct addr *a, uint64_t mib)
{
	uint64_t want = mib << 20, got = 0;
	int fd = dial(a, "down");

	double t0 = now_s();
	send_req(fd, M_DOWN, 0, want);
	while (got < want) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("down: recv: %s",
			    errno == EAGAIN ? "timed out" : strerror(errno));
		if (r == 0)
			die("down: closed after %llu of %llu bytes",
			    (unsigned long long)got, (unsigned long long)want);
		got += (uint64_t)r;
	}
	double dt = now_s() - t0;
	wait_eof(fd, "down");
	close(fd);
	printf("down bytes=%llu secs=%.6f mibps=%.2f\n",
	       (unsigned long long)want, dt, (double)want / (1 << 20) / dt);
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

/* nearest-rank percentile of n sorted values */
static double pct(const double *v, size_t n, double p)
{
	size_t k = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static void t_rr(const struct addr *a, uint64_t iters, uint32_t size)
{
	double *lat = calloc(iters, sizeof(*lat)), sum = 0;
	int fd = dial(a, "rr");

	if (lat == NULL)
		die("rr: out of memory");
	memset(buf, 0x33, size);
	send_req(fd, M_RR, size, iters);
	double t0 = now_s();
	for (uint64_t i = 0; i < iters; i++) {
		double s = now_s();
		write_all(fd, buf, size, "rr");
		if (!read_full(fd, buf, size, "rr"))
			die("rr: closed after %llu round trips",
			    (unsigned long long)i);
		lat[i] = (now_s() - s) * 1e6;
		sum += lat[i];
	}
	double dt = now_s() - t0;
	wait_eof(fd, "rr");
	close(fd);
	qsort(lat, iters, sizeof(*lat), cmp_double);
	printf("rr iters=%llu size=%u p50_us=%.1f p99_us=%.1f mean_us=%.1f "
	       "max_us=%.1f per_s=%.1f\n",
	       (unsigned long long)iters, size, pct(lat, iters, 50),
	       pct(lat, iters, 99), sum / (double)iters, lat[iters - 1],
	       (double)iters / dt);
	free(lat);
}

static void t_crr(const struct addr *a, uint64_t n)
{
	uint8_t m = M_CRR;
	double t0 = now_s();

	for (uint64_t i = 0; i < n; i++) {
		int fd = dial(a, "crr");
		write_all(fd, &m, 1, "crr");
		wait_eof(fd, "crr");
		close(fd);
	}
	double dt = now_s() - t0;
	printf("crr conns=%llu secs=%.6f per_s=%.1f\n", (unsigned long long)n,
	       dt, (double)n / dt);
}

static void t_quit(const struct addr *a)
{
	uint8_t ack;
	int fd = dial(a, "quit");

	send_req(fd, M_QUIT, 0, 0);
	if (!read_full(fd, &ack, 1, "quit") || ack != 'q')
		die("quit: no acknowledgement");
	close(fd);
	printf("quit\n");
}

static uint64_t num(const char *s, const char *test, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);

	if (*s == '\0' || (*end != '\0' && *end != ':') || errno || v == 0 ||
	    v > max)
		die("`%s`: want a number from 1 to %llu", test,
		    (unsigned long long)max);
	return v;
}

/* Checks test t; runs it too when run is set. */
static void run_test(const struct addr *a, const char *t, int run)
{
	const char *arg = strchr(t, ':');
	size_t nlen = arg ? (size_t)(arg - t) : strlen(t);

	if (arg)
		arg++;
	/* only rr takes a second argument */
	if (arg && strchr(arg, ':') && !(nlen == 2 && !strncmp(t, "rr", 2)))
		die("`%s`: one argument", t);
	if (nlen == 2 && !strncmp(t, "up", 2) && arg) {
		uint64_t mib = num(arg, t, STREAM_MAX_MIB);
		if (run)
			t_up(a, mib);
	} else if (nlen == 4 && !strncmp(t, "down", 4) && arg) {
		uint64_t mib = num(arg, t, STREAM_MAX_MIB);
		if (run)
			t_down(a, mib);
	} else if (nlen == 2 && !strncmp(t, "rr", 2) && arg) {
		const char *sz = strchr(arg, ':');
		uint64_t k = num(arg, t, RR_MAX_ITERS);
		uint32_t size = sz ? (uint32_t)num(sz + 1, t, RR_MAX_SIZE) : 1;
		if (sz && strchr(sz + 1, ':'))
			die("`%s`: rr:K[:S]", t);
		if (run)
			t_rr(a, k, size);
	} else if (nlen == 3 && !strncmp(t, "crr", 3) && arg) {
		uint64_t n = num(arg, t, RR_MAX_ITERS);
		if (run)
			t_crr(a, n);
	} else if (!strcmp(t, "quit")) {
		if (run)
			t_quit(a);
	} else {
		die("unknown test `%s` (up:MIB down:MIB rr:K[:S] crr:N quit)",
		    t);
	}
	fflush(stdout);
}

static int client(int argc, char **argv)
{
	double wait = 60;
	int i = 0;
	struct addr a;

	if (argc >= 2 && !strcmp(argv[0], "-w")) {
		char *end;
		wait = strtod(argv[1], &end);
		if (*argv[1] == '\0' || *end != '\0' || wait < 0)
			die("-w takes seconds");
		i = 2;
	}
	if (argc - i < 3)
		die("usage: netperf client [-w S] ADDR PORT TEST...");
	parse_addr(argv[i], argv[i + 1], &a);
	/* every test's argument is checked before the first one runs */
	for (int k = i + 2; k < argc; k++)
		run_test(&a, argv[k], 0);
	wait_server(&a, wait);
	for (int k = i + 2; k < argc; k++)
		run_test(&a, argv[k], 1);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && !strcmp(argv[1], "server"))
		return server(argv[2], argv[3]);
	if (argc >= 2 && !strcmp(argv[1], "client"))
		return client(argc - 2, argv + 2);
	fprintf(stderr, "usage: netperf server ADDR PORT\n"
			"       netperf client [-w SECONDS] ADDR PORT TEST...\n"
			"       TEST: up:MIB down:MIB rr:K[:S] crr:N quit\n");
	return 2;
}
