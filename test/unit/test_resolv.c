/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DNS relay's host parts: lib/resolv.c (which nameservers are
 * relayed, the stream splice) and runtime/dns.c end to end, with a TCP
 * echo server on loopback in place of docker's resolver and a Unix
 * client in place of kiln-vmm's vsock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../lib/resolv.h"
#include "../../lib/util.h"
#include "../../runtime/kiln.h"
#include "tap.h"

static size_t parse(const char *text, struct in_addr *ns)
{
	return resolv_loopback_ns(text, strlen(text), ns, RESOLV_NS_MAX);
}

static void test_parse(void)
{
	struct in_addr ns[RESOLV_NS_MAX];

	is_int(parse("nameserver 127.0.0.11\noptions ndots:0\n", ns), 1,
	       "docker's embedded DNS");
	ok(ns[0].s_addr == htonl(0x7f00000b), "its address");
	is_int(parse("nameserver 8.8.8.8\nnameserver 10.0.0.1\n", ns), 0,
	       "no loopback nameserver: nothing to relay");
	is_int(parse("# nameserver 127.0.0.1\n;nameserver 127.0.0.2\n"
		     "nameservers 127.0.0.3\nnameserver127.0.0.4\n",
		     ns),
	       0, "comments and other keys are not nameservers");
	is_int(parse("nameserver\t127.1.2.3 # here\r\nnameserver 1.1.1.1\n"
		     "nameserver 127.1.2.3\nnameserver 127.0.0.53;x",
		     ns),
	       2, "tabs, comments, CRLF, a repeat once, no newline at the end");
	ok(ns[0].s_addr == htonl(0x7f010203) &&
		   ns[1].s_addr == htonl(0x7f000035),
	   "in order");
	is_int(parse("nameserver ::1\nnameserver 127.0.0.256\n"
		     "nameserver 127.0.0.1.1\nnameserver "
		     "127.000000000000000000000000000000000001\n",
		     ns),
	       0, "IPv6, bad and overlong addresses are skipped");
	is_int(resolv_loopback_ns("nameserver 127.0.0.1\nnameserver 127.0.0.2"
				  "\nnameserver 127.0.0.3\nnameserver "
				  "127.0.0.4\n",
				  70, ns, 9),
	       3, "at most RESOLV_NS_MAX, and not past len");
	is_int(resolv_loopback_ns("nameserver 127.0.0.1", 0, ns, 3), 0,
	       "empty");
}

/* The resolver's stand-in: echoes one connection back, then ends. */
static void *echo_main(void *arg)
{
	int l = (int)(intptr_t)arg, c = accept(l, NULL, NULL);
	char buf[4096];
	ssize_t n;

	while (c >= 0 && (n = read(c, buf, sizeof(buf))) > 0)
		util_write_all(c, buf, (size_t)n);
	if (c >= 0)
		close(c);
	return NULL;
}

static void test_host_relay(void)
{
	char dir[] = "/tmp/kiln-test-resolv.XXXXXX", conf[64], uds[64];
	struct oci_mount mnt = { .destination = "/etc/resolv.conf",
				 .type = "bind" };
	struct oci_spec spec = { .mounts = &mnt, .n_mounts = 1 };
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct kiln_error err = { 0 };
	socklen_t al = sizeof(a);
	char big[100000], back[sizeof(big)];
	size_t got = 0;
	pthread_t t;
	FILE *f;
	int l, c;

	if (mkdtemp(dir) == NULL)
		return;
	snprintf(conf, sizeof(conf), "%s/resolv.conf", dir);
	snprintf(uds, sizeof(uds), "%s/vsock.sock", dir);
	mnt.source = conf;
	f = fopen(conf, "w");
	fputs("search example\nnameserver 10.1.1.1\n", f);
	fclose(f);
	is_int(dns_host_relay(&spec, uds, 53, &err), 0,
	       "no loopback nameserver: no relay, no error");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", uds,
		 RESOLV_RELAY_PORT);
	ok(access(sa.sun_path, F_OK) < 0, "and no socket");

	l = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0) {
		ok(0, "echo server: %s", strerror(errno));
		return;
	}
	pthread_create(&t, NULL, echo_main, (void *)(intptr_t)l);
	f = fopen(conf, "w");
	fputs("nameserver 127.0.0.1\noptions ndots:0\n", f);
	fclose(f);
	is_int(dns_host_relay(&spec, uds, ntohs(a.sin_port), &err), 0,
	       "a loopback nameserver: relayed (%s)", err.msg);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	ok(connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	   "the guest's stream reaches <uds>_%u", RESOLV_RELAY_PORT);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + i / 251);
	/* more than a socket buffer each way: the relay copies both ways */
	ok(util_write_all(c, big, sizeof(big)) == 0, "query bytes out");
	shutdown(c, SHUT_WR);
	while (got < sizeof(back)) {
		ssize_t n = read(c, back + got, sizeof(back) - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	ok(got == sizeof(big) && memcmp(big, back, got) == 0,
	   "the resolver's bytes come back whole (%zu)", got);
	ok(read(c, back, 1) == 0, "and the end is passed on");
	close(c);
	pthread_join(t, NULL);
	close(l);
	unlink(conf);
	unlink(sa.sun_path);
	rmdir(dir);
}

int main(void)
{
	test_parse();
	test_host_relay();
	return tap_done();
}
