/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vhost-user frontend against a fake backend on the other end of a
 * socketpair: the test writes the backend's replies first (they wait in
 * the socket buffer), makes the call, then reads and checks what the
 * frontend sent, file descriptors included. Bad replies (wrong code,
 * flags, size, fds, ring index), a refusal, a dead backend and a silent
 * one each fail the call; only a refusal leaves the connection usable.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "../../vmm/vhost_user.h"
#include "tap.h"

#define BIT(n) (1ULL << (n))

struct pair {
	struct vhost_user vu;
	int peer; /* the fake backend's end */
};

static void pair_open(struct pair *p, unsigned int timeout_ms)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		printf("Bail out! socketpair: %s\n", strerror(errno));
		exit(1);
	}
	vhost_user_init(&p->vu, sv[0], timeout_ms, "test");
	p->peer = sv[1];
}

static void pair_close(struct pair *p)
{
	vhost_user_close(&p->vu);
	if (p->peer >= 0)
		close(p->peer);
}

/* The backend writes a reply: header, payload, optionally one fd. */
static void reply(struct pair *p, uint32_t req, uint32_t flags, uint32_t size,
		  const void *payload, size_t len, int fd)
{
	uint8_t buf[512];
	struct vhost_user_hdr h = { .request = req,
				    .flags = flags,
				    .size = size };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	if (util_send_fds(p->peer, buf, sizeof(h) + len, &fd, fd >= 0 ? 1 : 0,
			  0) != (ssize_t)(sizeof(h) + len)) {
		printf("Bail out! fake backend sendmsg\n");
		exit(1);
	}
}

static void reply_u64(struct pair *p, uint32_t req, uint64_t v)
{
	reply(p, req, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY, 8, &v, 8, -1);
}

/* A message the frontend sent, as the backend reads it. */
struct msg {
	struct vhost_user_hdr h;
	uint8_t payload[VHOST_USER_PAYLOAD_MAX];
	int fds[8];
	int nfds;
};

static int take(struct pair *p, struct msg *out)
{
	union {
		struct cmsghdr a;
		char b[CMSG_SPACE(8 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = &out->h, .iov_len = sizeof(out->h) };
	struct msghdr m = { .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.b,
			    .msg_controllen = sizeof(ctl.b) };
	struct cmsghdr *c;

	memset(out, 0, sizeof(*out));
	if (recvmsg(p->peer, &m, MSG_DONTWAIT) != sizeof(out->h))
		return -1;
	for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_type == SCM_RIGHTS) {
			out->nfds = (int)((c->cmsg_len - CMSG_LEN(0)) /
					  sizeof(int));
			memcpy(out->fds, CMSG_DATA(c), out->nfds * sizeof(int));
		}
	if (out->h.size > sizeof(out->payload))
		return -1;
	if (out->h.size > 0 && recv(p->peer, out->payload, out->h.size,
				    MSG_DONTWAIT) != (ssize_t)out->h.size)
		return -1;
	return 0;
}

static void msg_close_fds(struct msg *m)
{
	for (int i = 0; i < m->nfds; i++)
		close(m->fds[i]);
}

static int count_fds(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		struct stat st;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (lstat(path, &st) == 0)
			n++;
	}
	return n;
}

/* ---- tests ---- */

static void test_handshake(void)
{
	struct kiln_error err = { 0 };
	struct pair p;
	struct msg m;
	uint64_t v;

	pair_open(&p, 1000);
	reply_u64(&p, VHOST_USER_GET_FEATURES,
		  BIT(32) | BIT(28) | BIT(29) | BIT(30));
	/* MQ (0) and REPLY_ACK (3): we take REPLY_ACK only */
	reply_u64(&p, VHOST_USER_GET_PROTOCOL_FEATURES, BIT(0) | BIT(3));
	ok(vhost_user_handshake(&p.vu, &err) == 0, "handshake: %s", err.msg);
	is_int(p.vu.features, BIT(32) | BIT(28) | BIT(29) | BIT(30),
	       "the backend's features are kept");
	is_int(p.vu.protocol, BIT(3), "REPLY_ACK is the one protocol feature");

	ok(take(&p, &m) == 0 && m.h.request == VHOST_USER_SET_OWNER &&
		   m.h.flags == VHOST_USER_VERSION && m.h.size == 0 &&
		   m.nfds == 0,
	   "SET_OWNER first, version 1, no payload, no ack asked yet");
	ok(take(&p, &m) == 0 && m.h.request == VHOST_USER_GET_FEATURES &&
		   m.h.size == 0,
	   "then GET_FEATURES");
	ok(take(&p, &m) == 0 && m.h.request == VHOST_USER_GET_PROTOCOL_FEATURES,
	   "then GET_PROTOCOL_FEATURES");
	ok(take(&p, &m) == 0 &&
		   m.h.request == VHOST_USER_SET_PROTOCOL_FEATURES &&
		   m.h.size == 8 && m.h.flags == VHOST_USER_VERSION,
	   "then SET_PROTOCOL_FEATURES, 8 bytes");
	memcpy(&v, m.payload, 8);
	is_int(v, BIT(3), "SET_PROTOCOL_FEATURES carries REPLY_ACK only");

	/* SET_FEATURES adds bit 30 and now asks for the ack */
	reply_u64(&p, VHOST_USER_SET_FEATURES, 0);
	ok(vhost_user_set_features(&p.vu, BIT(32) | BIT(29), &err) == 0,
	   "SET_FEATURES acked: %s", err.msg);
	ok(take(&p, &m) == 0 && m.h.request == VHOST_USER_SET_FEATURES &&
		   (m.h.flags & VHOST_USER_FLAG_NEED_REPLY),
	   "SET_FEATURES asks for the ack");
	memcpy(&v, m.payload, 8);
	is_int(v, BIT(32) | BIT(29) | BIT(30),
	       "SET_FEATURES adds VHOST_USER_F_PROTOCOL_FEATURES");
	pair_close(&p);
}

static void test_no_protocol_features(void)
{
	struct kiln_error err = { 0 };
	struct pair p;
	struct msg m;

	pair_open(&p, 1000);
	reply_u64(&p, VHOST_USER_GET_FEATURES, BIT(32));
	ok(vhost_user_handshake(&p.vu, &err) == 0, "handshake without bit 30");
	is_int(p.vu.protocol, 0, "no protocol features");
	take(&p, &m);
	take(&p, &m);
	ok(take(&p, &m) < 0, "no GET_PROTOCOL_FEATURES when not offered");
	/* no ack then: SET_VRING_NUM returns at once with nothing to read */
	ok(vhost_user_set_vring_num(&p.vu, 1, 128, &err) == 0, "SET_VRING_NUM "
							       "without "
							       "REPLY_ACK");
	ok(take(&p, &m) == 0 && m.h.request == VHOST_USER_SET_VRING_NUM &&
		   m.h.flags == VHOST_USER_VERSION && m.h.size == 8,
	   "SET_VRING_NUM sent without NEED_REPLY");
	pair_close(&p);
}

static void test_mem_table_fds(void)
{
	struct kiln_error err = { 0 };
	struct vhost_user_region r[2];
	struct pair p;
	struct msg m;
	uint64_t words[4];
	int a = eventfd(0, EFD_CLOEXEC), b = eventfd(0, EFD_CLOEXEC);
	uint32_t n;

	pair_open(&p, 1000);
	p.vu.protocol = BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	r[0] = (struct vhost_user_region){ .gpa = 0,
					   .size = 0x1000000,
					   .uaddr = 0x7f0000000000,
					   .mmap_offset = 0,
					   .fd = a };
	r[1] = (struct vhost_user_region){ .gpa = 0x100000000,
					   .size = 0x2000000,
					   .uaddr = 0x7f0001000000,
					   .mmap_offset = 0x1000000,
					   .fd = b };
	reply_u64(&p, VHOST_USER_SET_MEM_TABLE, 0);
	ok(vhost_user_set_mem_table(&p.vu, r, 2, &err) == 0,
	   "SET_MEM_TABLE of 2 regions acked: %s", err.msg);
	ok(take(&p, &m) == 0 && m.h.request == VHOST_USER_SET_MEM_TABLE, "SET_"
									 "MEM_"
									 "TABLE"
									 " sen"
									 "t");
	is_int(m.h.size, 8 + 2 * 32, "payload: count, padding, 2 regions");
	is_int(m.nfds, 2, "one fd per region, over SCM_RIGHTS");
	ok(m.h.flags & VHOST_USER_FLAG_NEED_REPLY, "the ack is asked for");
	memcpy(&n, m.payload, 4);
	is_int(n, 2, "nregions");
	memcpy(words, m.payload + 8 + 32, sizeof(words));
	ok(words[0] == 0x100000000 && words[1] == 0x2000000 &&
		   words[2] == 0x7f0001000000 && words[3] == 0x1000000,
	   "region 1: gpa, size, uaddr, mmap_offset");
	msg_close_fds(&m);

	r[1].fd = -1;
	ok(vhost_user_set_mem_table(&p.vu, r, 2, &err) < 0 &&
		   err.errnum == EBADF,
	   "a region without an fd is refused before sending");
	ok(vhost_user_set_mem_table(&p.vu, r, 0, &err) < 0, "no region at all "
							    "is refused");
	ok(take(&p, &m) < 0, "nothing was sent for either");

	/* a refusal: an error, but the stream is still in step */
	reply_u64(&p, VHOST_USER_SET_MEM_TABLE, 1);
	r[1].fd = b;
	ok(vhost_user_set_mem_table(&p.vu, r, 2, &err) < 0 &&
		   strstr(err.msg, "refused") != NULL,
	   "a non-zero ack fails the call: %s", err.msg);
	ok(!p.vu.down, "a refusal keeps the connection");
	take(&p, &m);
	msg_close_fds(&m);
	close(a);
	close(b);
	pair_close(&p);
}

/* One bad reply to GET_FEATURES: the call fails and the connection is down. */
static void bad_reply(const char *what, uint32_t req, uint32_t flags,
		      uint32_t size, size_t len, int fd)
{
	struct kiln_error err = { 0 };
	uint8_t payload[16] = { 0 };
	struct pair p;
	uint64_t v;
	int before = count_fds();

	pair_open(&p, 500);
	reply(&p, req, flags, size, payload, len, fd);
	ok(vhost_user_handshake(&p.vu, &err) < 0 && p.vu.down,
	   "%s: refused, connection down: %s", what, err.msg);
	ok(vhost_user_get_vring_base(&p.vu, 0, (uint32_t *)&v, &err) < 0 &&
		   err.errnum == ENOTCONN,
	   "%s: the next call fails at once", what);
	pair_close(&p);
	if (fd >= 0)
		close(fd);
	/* the test closed its own fd: the received copy must be gone too */
	is_int(count_fds(), before - (fd >= 0), "%s: no fd leaked", what);
}

static void test_bad_replies(void)
{
	const uint32_t ok_flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;

	bad_reply("wrong request code", VHOST_USER_GET_PROTOCOL_FEATURES,
		  ok_flags, 8, 8, -1);
	bad_reply("no REPLY flag", VHOST_USER_GET_FEATURES, VHOST_USER_VERSION,
		  8, 8, -1);
	bad_reply("version 2", VHOST_USER_GET_FEATURES,
		  0x2 | VHOST_USER_FLAG_REPLY, 8, 8, -1);
	bad_reply("NEED_REPLY in a reply", VHOST_USER_GET_FEATURES,
		  ok_flags | VHOST_USER_FLAG_NEED_REPLY, 8, 8, -1);
	bad_reply("4-byte payload", VHOST_USER_GET_FEATURES, ok_flags, 4, 4,
		  -1);
	bad_reply("16-byte payload", VHOST_USER_GET_FEATURES, ok_flags, 16, 16,
		  -1);
	bad_reply("size 0xffffffff", VHOST_USER_GET_FEATURES, ok_flags,
		  0xffffffff, 8, -1);
	bad_reply("a reply with an fd", VHOST_USER_GET_FEATURES, ok_flags, 8, 8,
		  eventfd(0, EFD_CLOEXEC));
	/* payload promised but never sent: a timeout, not a hang */
	bad_reply("short payload", VHOST_USER_GET_FEATURES, ok_flags, 8, 3, -1);
}

static void test_vring_base(void)
{
	struct kiln_error err = { 0 };
	struct vhost_user_vring_state s;
	struct pair p;
	struct msg m;
	uint32_t base = 0;
	const uint32_t f = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;

	pair_open(&p, 500);
	/* REPLY_ACK on: GET_VRING_BASE still has its own reply, no ack */
	p.vu.protocol = BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	s = (struct vhost_user_vring_state){ .index = 1, .num = 77 };
	reply(&p, VHOST_USER_GET_VRING_BASE, f, 8, &s, 8, -1);
	ok(vhost_user_get_vring_base(&p.vu, 1, &base, &err) == 0 && base == 77,
	   "GET_VRING_BASE: ring 1 stopped at 77 (%s)", err.msg);
	ok(take(&p, &m) == 0 && m.h.flags == VHOST_USER_VERSION &&
		   m.h.size == 8,
	   "GET_VRING_BASE never asks for an ack");

	s = (struct vhost_user_vring_state){ .index = 0, .num = 5 };
	reply(&p, VHOST_USER_GET_VRING_BASE, f, 8, &s, 8, -1);
	ok(vhost_user_get_vring_base(&p.vu, 1, &base, &err) < 0 && p.vu.down,
	   "the state of another ring is refused: %s", err.msg);
	pair_close(&p);

	pair_open(&p, 500);
	s = (struct vhost_user_vring_state){ .index = 0, .num = 70000 };
	reply(&p, VHOST_USER_GET_VRING_BASE, f, 8, &s, 8, -1);
	ok(vhost_user_get_vring_base(&p.vu, 0, &base, &err) < 0,
	   "a base past 16 bits is refused: %s", err.msg);
	pair_close(&p);
}

static void test_vring_fds(void)
{
	struct kiln_error err = { 0 };
	struct vhost_user_vring_addr a = {
		.index = 2, .desc = 0x1000, .used = 0x3000, .avail = 0x2000
	};
	struct pair p;
	struct msg m;
	uint64_t v;
	int efd = eventfd(0, EFD_CLOEXEC);

	pair_open(&p, 500);
	ok(vhost_user_set_vring_kick(&p.vu, 3, efd, &err) == 0, "kick fd");
	ok(take(&p, &m) == 0 && m.h.request == VHOST_USER_SET_VRING_KICK &&
		   m.nfds == 1 && m.h.size == 8,
	   "SET_VRING_KICK carries one fd");
	memcpy(&v, m.payload, 8);
	is_int(v, 3, "index 3, no NOFD bit");
	msg_close_fds(&m);
	ok(vhost_user_set_vring_call(&p.vu, 1, -1, &err) == 0, "no call fd");
	ok(take(&p, &m) == 0 && m.h.request == VHOST_USER_SET_VRING_CALL &&
		   m.nfds == 0,
	   "SET_VRING_CALL without an fd");
	memcpy(&v, m.payload, 8);
	is_int(v, 1 | VHOST_USER_VRING_NOFD, "index 1 with the NOFD bit");
	ok(vhost_user_set_vring_kick(&p.vu, 256, efd, &err) < 0, "ring 256 "
								 "does not fit "
								 "the index "
								 "field");
	ok(vhost_user_set_vring_addr(&p.vu, &a, &err) == 0 &&
		   take(&p, &m) == 0 && m.h.size == 40,
	   "SET_VRING_ADDR: 40 bytes");
	ok(memcmp(m.payload, &a, 40) == 0, "desc, used, avail in the "
					   "protocol's order");
	ok(vhost_user_set_vring_enable(&p.vu, 2, true, &err) == 0 &&
		   take(&p, &m) == 0 &&
		   m.h.request == VHOST_USER_SET_VRING_ENABLE,
	   "SET_VRING_ENABLE");
	close(efd);
	pair_close(&p);
}

static void test_dead_backend(void)
{
	struct kiln_error err = { 0 };
	struct pair p;
	uint64_t t0;

	pair_open(&p, 2000);
	close(p.peer);
	p.peer = -1;
	t0 = util_now_ns();
	ok(vhost_user_handshake(&p.vu, &err) < 0,
	   "a dead backend fails the call (no SIGPIPE): %s", err.msg);
	ok(util_now_ns() - t0 < 1000000000ULL, "at once, not at the timeout");
	ok(p.vu.down, "the connection is down");
	pair_close(&p);

	/* the backend dies after the request, before the reply */
	pair_open(&p, 2000);
	shutdown(p.peer, SHUT_WR);
	ok(vhost_user_get_vring_base(&p.vu, 0, (uint32_t *)&t0, &err) < 0 &&
		   err.errnum == ECONNRESET,
	   "end of stream instead of a reply: %s", err.msg);
	pair_close(&p);
}

static void test_silent_backend(void)
{
	struct kiln_error err = { 0 };
	struct pair p;
	uint64_t t0, ms;

	pair_open(&p, 300);
	t0 = util_now_ns();
	ok(vhost_user_handshake(&p.vu, &err) < 0 && err.errnum == ETIMEDOUT,
	   "a backend that never answers times out: %s", err.msg);
	ms = (util_now_ns() - t0) / 1000000;
	ok(ms >= 250 && ms < 3000, "after about the timeout (%llu ms)",
	   (unsigned long long)ms);
	ok(p.vu.down, "and is dropped");
	pair_close(&p);
}

static void test_connect(void)
{
	struct kiln_error err = { 0 };
	struct vhost_user vu;
	char path[200];

	ok(vhost_user_connect(&vu, "/nonexistent/vu.sock", 100, "t", &err) <
			   0 &&
		   strstr(err.msg, "/nonexistent/vu.sock") != NULL,
	   "connect to a missing socket names it: %s", err.msg);
	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	ok(vhost_user_connect(&vu, path, 100, "t", &err) < 0 &&
		   err.errnum == ENAMETOOLONG,
	   "a path too long for sun_path is refused");
}

int main(void)
{
	signal(SIGPIPE, SIG_DFL); /* a send must never raise it */
	test_handshake();
	test_no_protocol_features();
	test_mem_table_fds();
	test_bad_replies();
	test_vring_base();
	test_vring_fds();
	test_dead_backend();
	test_silent_backend();
	test_connect();
	return tap_done();
}
