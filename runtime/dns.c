/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host's end of the DNS relay (lib/resolv.h says why there is one):
 * when the container's resolv.conf names a loopback nameserver (docker's
 * 127.0.0.11), the pid process listens on "vsock.sock_1053" in its state
 * directory, where kiln-vmm sends the guest's connections to host port
 * RESOLV_RELAY_PORT, and passes each stream on, as it is, to that
 * nameserver's TCP port 53 in the container's network namespace, its
 * own, where the engine's rules lead it to the engine's resolver. The
 * guest reaches nothing else through it: the address is the one the
 * engine wrote, the port 53.
 *
 * Threads: one accept thread for the pid process's life (it owns the
 * listening socket); one per connection, at most DNS_CONNS_MAX alive
 * (beyond, the guest's connection waits in the backlog). Both are
 * created after the pid process joined the container's network
 * namespace, which they inherit.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/resolv.h"
#include "kiln.h"

#define DNS_CONNS_MAX	32
#define DNS_IDLE_MS	30000
#define RESOLV_CONF_MAX (64 * 1024)

struct dns_host {
	int listen_fd;
	struct sockaddr_in ns; /* the nameserver, port included */
	atomic_int conns;
};

struct dns_conn {
	struct dns_host *h;
	int fd;
};

static void *conn_main(void *arg)
{
	struct dns_conn *c = arg;
	cleanup_close int fd = c->fd;
	cleanup_close int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct dns_host *h = c->h;

	free(c);
	if (up >= 0 &&
	    connect(up, (struct sockaddr *)&h->ns, sizeof(h->ns)) == 0)
		resolv_relay(fd, up, DNS_IDLE_MS);
	atomic_fetch_sub(&h->conns, 1);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct dns_host *h = arg;

	for (;;) {
		struct dns_conn *c;
		pthread_attr_t attr;
		pthread_t t;
		int fd;

		while (atomic_load(&h->conns) >= DNS_CONNS_MAX)
			usleep(10000);
		fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(100000); /* out of fds: do not spin */
			continue;
		}
		c = malloc(sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->h = h;
		c->fd = fd;
		atomic_fetch_add(&h->conns, 1);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 128 * 1024);
		if (pthread_create(&t, &attr, conn_main, c) != 0) {
			atomic_fetch_sub(&h->conns, 1);
			close(fd);
			free(c);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

/* The first loopback nameserver of the resolv.conf spec binds in, if any. */
static bool loopback_ns(const struct oci_spec *spec, struct in_addr *ns)
{
	for (size_t i = spec->n_mounts; i-- > 0;) {
		const struct oci_mount *m = &spec->mounts[i];
		char buf[RESOLV_CONF_MAX];
		cleanup_close int fd = -1;
		ssize_t n;

		if (strcmp(m->destination, "/etc/resolv.conf") != 0 ||
		    m->source == NULL)
			continue;
		/* the last mount on a destination is the one seen */
		fd = open(m->source, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return false;
		n = read(fd, buf, sizeof(buf));
		return n > 0 && resolv_loopback_ns(buf, (size_t)n, ns, 1) == 1;
	}
	return false;
}

int dns_host_relay(const struct oci_spec *spec, const char *uds, uint16_t port,
		   struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static struct dns_host h; /* the pid process's, for its life */
	struct in_addr ns;
	pthread_t t;
	int e;

	if (!loopback_ns(spec, &ns))
		return 0;
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", uds,
		     RESOLV_RELAY_PORT) >= (int)sizeof(sa.sun_path))
		return kiln_error_set(err, ENAMETOOLONG, "dns relay socket");
	h.ns.sin_family = AF_INET;
	h.ns.sin_addr = ns;
	h.ns.sin_port = htons(port);
	h.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(sa.sun_path);
	if (h.listen_fd < 0 ||
	    bind(h.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(h.listen_fd, 64) < 0) {
		e = errno;
		goto fail;
	}
	e = pthread_create(&t, NULL, accept_main, &h);
	if (e == 0) {
		pthread_detach(t);
		return 0;
	}
fail:
	if (h.listen_fd >= 0)
		close(h.listen_fd);
	unlink(sa.sun_path);
	return kiln_error_set(err, e, "dns relay: listen on `%s`", sa.sun_path);
}
