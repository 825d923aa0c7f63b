/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest's end of the DNS relay (lib/resolv.h says why there is one).
 * For each loopback nameserver of a container's resolv.conf, the agent
 * listens on ADDR:53, UDP and TCP, in the guest's network namespace (the
 * containers' own), and carries every query to the host's vsock port
 * RESOLV_RELAY_PORT: a TCP client's stream as it is, a UDP query framed
 * as DNS over TCP, its answer sent back as one datagram. The pid process
 * on the other end passes the stream on to ADDR:53 in the container's
 * network namespace, where the engine's resolver answers.
 *
 * Threads: one per listening socket (two per address), for the VM's life;
 * one per query or TCP client, at most DNS_RELAYS_MAX at once (beyond,
 * a UDP query is dropped and its client asks again; a TCP client waits
 * in the backlog). The address list is under dns_lock.
 */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/resolv.h"
#include "../lib/util.h"

#define DNS_PORT	   53
#define DNS_RELAYS_MAX	   64
#define DNS_ADDRS_MAX	   8
#define DNS_MSG_MAX	   65535
#define DNS_QUERY_TIMEOUT  10 /* s: the host's answer to one UDP query */
#define DNS_STREAM_IDLE_MS 30000

static pthread_mutex_t dns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct in_addr dns_addrs[DNS_ADDRS_MAX]; /* relayed already */
static size_t dns_naddrs;
static atomic_int dns_relays; /* query and client threads alive */

struct dns_query {
	int udp; /* the listener's, shared: sendto is atomic */
	struct sockaddr_in from;
	size_t len;
	uint8_t msg[]; /* two bytes of length, then the query */
};

/* The host's relay, or -1 (it is not there, or the VM has no vsock). */
static int host_connect(void)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK,
				 .svm_cid = VMADDR_CID_HOST,
				 .svm_port = RESOLV_RELAY_PORT };
	struct timeval tv = { .tv_sec = DNS_QUERY_TIMEOUT };
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void *query_main(void *arg)
{
	cleanup_free struct dns_query *q = arg;
	cleanup_free uint8_t *answer = malloc(DNS_MSG_MAX);
	cleanup_close int fd = host_connect();
	uint8_t hdr[2];
	size_t len;

	if (answer == NULL || fd < 0 ||
	    util_write_all(fd, q->msg, q->len + 2) < 0 ||
	    read_full(fd, hdr, 2) < 0)
		goto out;
	len = (size_t)hdr[0] << 8 | hdr[1];
	if (len == 0 || read_full(fd, answer, len) < 0)
		goto out;
	sendto(q->udp, answer, len, MSG_NOSIGNAL, (struct sockaddr *)&q->from,
	       sizeof(q->from));
out:
	atomic_fetch_sub(&dns_relays, 1);
	return NULL;
}

static void *client_main(void *arg)
{
	cleanup_close int fd = (int)(intptr_t)arg;
	cleanup_close int host = host_connect();

	if (host >= 0)
		resolv_relay(fd, host, DNS_STREAM_IDLE_MS);
	atomic_fetch_sub(&dns_relays, 1);
	return NULL;
}

/* A detached thread for one query or client, if there is room. */
static bool relay_spawn(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (atomic_fetch_add(&dns_relays, 1) >= DNS_RELAYS_MAX) {
		atomic_fetch_sub(&dns_relays, 1);
		return false;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	r = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		atomic_fetch_sub(&dns_relays, 1);
		return false;
	}
	return true;
}

static void *udp_main(void *arg)
{
	int fd = (int)(intptr_t)arg;

	for (;;) {
		struct dns_query *q = malloc(sizeof(*q) + 2 + DNS_MSG_MAX);
		socklen_t fl = sizeof(q->from);
		ssize_t n;

		if (q == NULL) {
			sleep(1);
			continue;
		}
		q->udp = fd;
		/* guest-controlled: any datagram; only its length is framed */
		n = recvfrom(fd, q->msg + 2, DNS_MSG_MAX, 0,
			     (struct sockaddr *)&q->from, &fl);
		if (n <= 0) {
			free(q);
			continue;
		}
		q->len = (size_t)n;
		q->msg[0] = (uint8_t)(n >> 8);
		q->msg[1] = (uint8_t)n;
		if (!relay_spawn(query_main, q))
			free(q);
	}
	return NULL;
}

static void *tcp_main(void *arg)
{
	int fd = (int)(intptr_t)arg;

	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				sleep(1); /* out of fds: do not spin */
			continue;
		}
		if (!relay_spawn(client_main, (void *)(intptr_t)c))
			close(c);
	}
	return NULL;
}

static int listen_on(struct in_addr addr, int type)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(DNS_PORT),
				 .sin_addr = addr };
	cleanup_close int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 64) < 0))
		return -1;
	return steal_fd(&fd);
}

static int relay_addr(struct in_addr addr)
{
	void *(*fn[2])(void *) = { udp_main, tcp_main };
	int type[2] = { SOCK_DGRAM, SOCK_STREAM };

	for (int i = 0; i < 2; i++) {
		pthread_t t;
		int fd = listen_on(addr, type[i]);

		if (fd < 0)
			return -1;
		if (pthread_create(&t, NULL, fn[i], (void *)(intptr_t)fd) !=
		    0) {
			close(fd);
			errno = EAGAIN;
			return -1;
		}
		pthread_detach(t);
	}
	return 0;
}

void dns_guest_relay(const Kiln__Agent__V1__CreateContainerRequest *req)
{
	for (size_t i = 0; i < req->n_mounts; i++) {
		const Kiln__Agent__V1__Mount *m = req->mounts[i];
		struct in_addr ns[RESOLV_NS_MAX];
		size_t n;

		if (!m->has_data || strcmp(m->destination, "/etc/resolv.conf"))
			continue;
		n = resolv_loopback_ns((const char *)m->data.data, m->data.len,
				       ns, RESOLV_NS_MAX);
		pthread_mutex_lock(&dns_lock);
		for (size_t k = 0; k < n; k++) {
			char s[INET_ADDRSTRLEN];
			size_t j;

			for (j = 0; j < dns_naddrs; j++)
				if (dns_addrs[j].s_addr == ns[k].s_addr)
					break;
			if (j < dns_naddrs || dns_naddrs == DNS_ADDRS_MAX)
				continue;
			inet_ntop(AF_INET, &ns[k], s, sizeof(s));
			if (relay_addr(ns[k]) < 0) {
				log_warn("dns relay on %s:53: %m", s);
				continue;
			}
			dns_addrs[dns_naddrs++] = ns[k];
			log_debug("dns relay on %s:53 to host port %u", s,
				  RESOLV_RELAY_PORT);
		}
		pthread_mutex_unlock(&dns_lock);
	}
}
