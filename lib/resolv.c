/* SPDX-License-Identifier: Apache-2.0 */
#include "resolv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* One line, without its newline: a loopback nameserver's address in *a. */
static int loopback_ns(const char *line, size_t len, struct in_addr *a)
{
	static const char key[] = "nameserver";
	char addr[INET_ADDRSTRLEN];
	size_t i = sizeof(key) - 1, start;

	if (len <= i || memcmp(line, key, i) != 0 ||
	    (line[i] != ' ' && line[i] != '\t'))
		return -1;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	start = i;
	while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '#' &&
	       line[i] != ';' && line[i] != '\r')
		i++;
	if (i - start >= sizeof(addr))
		return -1;
	memcpy(addr, line + start, i - start);
	addr[i - start] = '\0';
	if (inet_pton(AF_INET, addr, a) != 1 || (ntohl(a->s_addr) >> 24) != 127)
		return -1;
	return 0;
}

size_t resolv_loopback_ns(const char *data, size_t len, struct in_addr *out,
			  size_t max)
{
	size_t n = 0, pos = 0;

	if (max > RESOLV_NS_MAX)
		max = RESOLV_NS_MAX;
	while (pos < len && n < max) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - data) : len;
		struct in_addr a;
		size_t k;

		if (loopback_ns(data + pos, end - pos, &a) == 0) {
			for (k = 0; k < n && out[k].s_addr != a.s_addr; k++)
				;
			if (k == n)
				out[n++] = a;
		}
		pos = end + 1;
	}
	return n;
}

void resolv_relay(int a, int b, int idle_ms)
{
	struct pollfd p[2] = { { .fd = a, .events = POLLIN },
			       { .fd = b, .events = POLLIN } };
	char buf[16384];

	while (p[0].fd >= 0 || p[1].fd >= 0) {
		int n = poll(p, 2, idle_ms);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (int i = 0; i < 2; i++) {
			int to = i == 0 ? b : a;
			ssize_t got;

			if (p[i].fd < 0 || p[i].revents == 0)
				continue;
			got = read(p[i].fd, buf, sizeof(buf));
			if (got < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (got < 0)
				return;
			if (got == 0) {
				shutdown(to, SHUT_WR);
				p[i].fd = -1; /* poll skips it */
				continue;
			}
			if (util_write_all(to, buf, (size_t)got) < 0)
				return;
		}
	}
}
