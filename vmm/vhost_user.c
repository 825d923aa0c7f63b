/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost-user frontend: framing, one request at a time, strict replies.
 *
 * A message is a 12-byte header (request, flags, payload size, all
 * little-endian, which is the host's order on x86) and its payload; file
 * descriptors ride on the header's sendmsg as SCM_RIGHTS. A reply carries
 * the request's code, flags = version | REPLY, and exactly the payload
 * size the request calls for, never a file descriptor: anything else is a
 * protocol error, after which the connection is shut down (we cannot know
 * where the next message starts) and every later call fails at once.
 */
#include "vhost_user.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/util.h"

#define VU_MAX_FDS VHOST_USER_MAX_REGIONS
static_assert(VU_MAX_FDS <= UTIL_MAX_SEND_FDS, "util_send_fds takes them all");
#define VU_BIT(n) (1ULL << (n))

/* one bounded exchange */
struct vu_deadline {
	uint64_t end_ns;
};

static struct vu_deadline vu_deadline(const struct vhost_user *vu)
{
	return (struct vu_deadline){ util_now_ns() +
				     (uint64_t)vu->timeout_ms * 1000000ULL };
}

/* Milliseconds left (at least 1 while any remains), 0 when past. */
static int vu_left_ms(struct vu_deadline d)
{
	uint64_t now = util_now_ns();

	if (now >= d.end_ns)
		return 0;
	return (int)((d.end_ns - now + 999999) / 1000000);
}

static const char *vu_req_name(uint32_t req)
{
	switch (req) {
	case VHOST_USER_GET_FEATURES:
		return "GET_FEATURES";
	case VHOST_USER_SET_FEATURES:
		return "SET_FEATURES";
	case VHOST_USER_SET_OWNER:
		return "SET_OWNER";
	case VHOST_USER_RESET_OWNER:
		return "RESET_OWNER";
	case VHOST_USER_SET_MEM_TABLE:
		return "SET_MEM_TABLE";
	case VHOST_USER_SET_VRING_NUM:
		return "SET_VRING_NUM";
	case VHOST_USER_SET_VRING_ADDR:
		return "SET_VRING_ADDR";
	case VHOST_USER_SET_VRING_BASE:
		return "SET_VRING_BASE";
	case VHOST_USER_GET_VRING_BASE:
		return "GET_VRING_BASE";
	case VHOST_USER_SET_VRING_KICK:
		return "SET_VRING_KICK";
	case VHOST_USER_SET_VRING_CALL:
		return "SET_VRING_CALL";
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		return "GET_PROTOCOL_FEATURES";
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		return "SET_PROTOCOL_FEATURES";
	case VHOST_USER_SET_VRING_ENABLE:
		return "SET_VRING_ENABLE";
	default:
		return "?";
	}
}

void vhost_user_init(struct vhost_user *vu, int fd, unsigned int timeout_ms,
		     const char *what)
{
	memset(vu, 0, sizeof(*vu));
	vu->fd = fd;
	vu->timeout_ms = timeout_ms;
	snprintf(vu->what, sizeof(vu->what), "%s", what);
}

int vhost_user_connect(struct vhost_user *vu, const char *path,
		       unsigned int timeout_ms, const char *what,
		       struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };
	int fd;

	vhost_user_init(vu, -1, timeout_ms, what);
	if (strlen(path) >= sizeof(sa.sun_path))
		return kiln_error_set(err, ENAMETOOLONG,
				      "%s: socket path `%s` is too long", what,
				      path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kiln_error_set(err, errno, "%s: socket", what);
	/* a backend whose backlog is full must not hold us past the timeout */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		kiln_error_set(err, errno, "%s: connect to backend `%s`", what,
			       path);
		close(fd);
		return -1;
	}
	vu->fd = fd;
	return 0;
}

void vhost_user_close(struct vhost_user *vu)
{
	if (vu->fd >= 0)
		close(vu->fd);
	vu->fd = -1;
	vu->down = true;
}

void vhost_user_shutdown(struct vhost_user *vu)
{
	if (vu->fd >= 0 && !vu->down)
		shutdown(vu->fd, SHUT_RDWR);
	vu->down = true;
}

/* A protocol or I/O failure: the stream is lost, shut it down. */
static int vu_fail(struct vhost_user *vu, uint32_t req, struct kiln_error *err,
		   int errnum, const char *why)
{
	vhost_user_shutdown(vu);
	return kiln_error_set(err, errnum, "%s: vhost-user %s: %s", vu->what,
			      vu_req_name(req), why);
}

static int vu_wait(struct vhost_user *vu, short events, struct vu_deadline d)
{
	struct pollfd p = { .fd = vu->fd, .events = events };
	int left, n;

	for (;;) {
		left = vu_left_ms(d);
		if (left == 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 0;
	}
}

static int vu_send(struct vhost_user *vu, uint32_t req, uint32_t flags,
		   const void *payload, uint32_t size, const int *fds,
		   unsigned int nfds, struct vu_deadline d,
		   struct kiln_error *err)
{
	uint8_t buf[sizeof(struct vhost_user_hdr) + VHOST_USER_PAYLOAD_MAX];
	struct vhost_user_hdr h = { .request = req,
				    .flags = VHOST_USER_VERSION | flags,
				    .size = size };
	size_t len = sizeof(h) + size, off = 0;

	if (vu->down || vu->fd < 0)
		return kiln_error_set(err, ENOTCONN,
				      "%s: vhost-user %s: the backend is "
				      "disconnected",
				      vu->what, vu_req_name(req));
	if (size > VHOST_USER_PAYLOAD_MAX || nfds > VU_MAX_FDS)
		return kiln_error_set(err, EINVAL, "%s: vhost-user %s: too big",
				      vu->what, vu_req_name(req));
	memcpy(buf, &h, sizeof(h));
	if (size > 0)
		memcpy(buf + sizeof(h), payload, size);
	while (off < len) {
		ssize_t n;
		int w;

		/* the fds go with the first byte, once */
		n = util_send_fds(vu->fd, buf + off, len - off, fds,
				  off == 0 ? nfds : 0,
				  MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return vu_fail(vu, req, err, errno, "send");
		w = vu_wait(vu, POLLOUT, d);
		if (w < 0)
			return vu_fail(vu, req, err, -w,
				       w == -ETIMEDOUT ? "send timed out"
						       : "send");
	}
	return 0;
}

/*
 * Read exactly len bytes. Any file descriptor that comes along is closed
 * and fails the exchange: no reply of ours carries one.
 */
static int vu_read(struct vhost_user *vu, uint32_t req, void *buf, size_t len,
		   struct vu_deadline d, struct kiln_error *err)
{
	size_t off = 0;

	while (off < len) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		} ctl;
		struct iovec iov = { .iov_base = (uint8_t *)buf + off,
				     .iov_len = len - off };
		struct msghdr m = { .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf) };
		ssize_t n;
		int w;

		n = recvmsg(vu->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return vu_fail(vu, req, err, errno, "receive");
		if (n >= 0) {
			/* backend-controlled: close whatever fds it sent */
			int fds[UTIL_MAX_SEND_FDS];
			bool extra;
			size_t k = util_recv_rights(&m, fds, UTIL_MAX_SEND_FDS,
						    &extra);

			for (size_t i = 0; i < k; i++)
				close(fds[i]);
			if (k > 0 || extra || (m.msg_flags & MSG_CTRUNC))
				return vu_fail(vu, req, err, EPROTO,
					       "the reply carried file "
					       "descriptors");
			if (n == 0)
				return vu_fail(vu, req, err, ECONNRESET,
					       "the backend closed the "
					       "connection");
			off += (size_t)n;
			continue;
		}
		w = vu_wait(vu, POLLIN, d);
		if (w < 0)
			return vu_fail(vu, req, err, -w,
				       w == -ETIMEDOUT ? "no reply in time"
						       : "receive");
	}
	return 0;
}

/* Read the reply to req: exactly size bytes of payload into payload. */
static int vu_reply(struct vhost_user *vu, uint32_t req, void *payload,
		    uint32_t size, struct vu_deadline d, struct kiln_error *err)
{
	struct vhost_user_hdr h;
	char why[128];

	if (vu_read(vu, req, &h, sizeof(h), d, err) < 0)
		return -1;
	/* backend-controlled: all three fields */
	if (h.request != req) {
		snprintf(why, sizeof(why), "reply to request %u", h.request);
		return vu_fail(vu, req, err, EPROTO, why);
	}
	if (h.flags != (VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY)) {
		snprintf(why, sizeof(why), "reply flags 0x%x", h.flags);
		return vu_fail(vu, req, err, EPROTO, why);
	}
	if (h.size != size) {
		snprintf(why, sizeof(why), "reply of %u bytes, want %u", h.size,
			 size);
		return vu_fail(vu, req, err, EPROTO, why);
	}
	return vu_read(vu, req, payload, size, d, err);
}

/* A request that answers a u64 (GET_FEATURES, GET_PROTOCOL_FEATURES). */
static int vu_get_u64(struct vhost_user *vu, uint32_t req, uint64_t *out,
		      struct kiln_error *err)
{
	struct vu_deadline d = vu_deadline(vu);

	if (vu_send(vu, req, 0, NULL, 0, NULL, 0, d, err) < 0)
		return -1;
	return vu_reply(vu, req, out, sizeof(*out), d, err);
}

/*
 * A request with no reply of its own: with REPLY_ACK we ask for the ack
 * and check it, so a refusal is seen here rather than never.
 */
static int vu_set(struct vhost_user *vu, uint32_t req, const void *payload,
		  uint32_t size, const int *fds, unsigned int nfds,
		  struct kiln_error *err)
{
	struct vu_deadline d = vu_deadline(vu);
	bool ack = vu->protocol & VU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	uint64_t status;
	char why[64];

	if (vu_send(vu, req, ack ? VHOST_USER_FLAG_NEED_REPLY : 0, payload,
		    size, fds, nfds, d, err) < 0)
		return -1;
	if (!ack)
		return 0;
	if (vu_reply(vu, req, &status, sizeof(status), d, err) < 0)
		return -1;
	if (status != 0) {
		/* a refusal, but the stream is still in step */
		snprintf(why, sizeof(why), "refused (status %llu)",
			 (unsigned long long)status);
		return kiln_error_set(err, EPROTO, "%s: vhost-user %s: %s",
				      vu->what, vu_req_name(req), why);
	}
	return 0;
}

int vhost_user_handshake(struct vhost_user *vu, struct kiln_error *err)
{
	uint64_t proto = 0;

	vu->protocol = 0;
	if (vu_set(vu, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, err) < 0 ||
	    vu_get_u64(vu, VHOST_USER_GET_FEATURES, &vu->features, err) < 0)
		return -1;
	if (!(vu->features & VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		return 0;
	if (vu_get_u64(vu, VHOST_USER_GET_PROTOCOL_FEATURES, &proto, err) < 0)
		return -1;
	proto &= VU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	/* the ack of this one would already be asked for: set it after */
	if (vu_set(vu, VHOST_USER_SET_PROTOCOL_FEATURES, &proto, sizeof(proto),
		   NULL, 0, err) < 0)
		return -1;
	vu->protocol = proto;
	return 0;
}

int vhost_user_set_features(struct vhost_user *vu, uint64_t features,
			    struct kiln_error *err)
{
	if (vu->features & VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES))
		features |= VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	return vu_set(vu, VHOST_USER_SET_FEATURES, &features, sizeof(features),
		      NULL, 0, err);
}

int vhost_user_set_mem_table(struct vhost_user *vu,
			     const struct vhost_user_region *r, unsigned int n,
			     struct kiln_error *err)
{
	struct {
		uint32_t nregions;
		uint32_t padding;
		struct {
			uint64_t gpa, size, uaddr, mmap_offset;
		} regions[VHOST_USER_MAX_REGIONS];
	} msg;
	int fds[VHOST_USER_MAX_REGIONS];

	if (n == 0 || n > VHOST_USER_MAX_REGIONS)
		return kiln_error_set(err, EINVAL,
				      "%s: %u memory regions, want 1..%d",
				      vu->what, n, VHOST_USER_MAX_REGIONS);
	memset(&msg, 0, sizeof(msg));
	msg.nregions = n;
	for (unsigned int i = 0; i < n; i++) {
		if (r[i].fd < 0)
			return kiln_error_set(err, EBADF,
					      "%s: memory region %u has no fd",
					      vu->what, i);
		msg.regions[i].gpa = r[i].gpa;
		msg.regions[i].size = r[i].size;
		msg.regions[i].uaddr = r[i].uaddr;
		msg.regions[i].mmap_offset = r[i].mmap_offset;
		fds[i] = r[i].fd;
	}
	/* as QEMU sends it: only the regions in use */
	return vu_set(vu, VHOST_USER_SET_MEM_TABLE, &msg,
		      (uint32_t)(8 + n * sizeof(msg.regions[0])), fds, n, err);
}

static int vu_vring_state(struct vhost_user *vu, uint32_t req,
			  unsigned int index, unsigned int num,
			  struct kiln_error *err)
{
	struct vhost_user_vring_state s = { .index = index, .num = num };

	return vu_set(vu, req, &s, sizeof(s), NULL, 0, err);
}

int vhost_user_set_vring_num(struct vhost_user *vu, unsigned int index,
			     unsigned int num, struct kiln_error *err)
{
	return vu_vring_state(vu, VHOST_USER_SET_VRING_NUM, index, num, err);
}

int vhost_user_set_vring_addr(struct vhost_user *vu,
			      const struct vhost_user_vring_addr *a,
			      struct kiln_error *err)
{
	return vu_set(vu, VHOST_USER_SET_VRING_ADDR, a, sizeof(*a), NULL, 0,
		      err);
}

int vhost_user_set_vring_base(struct vhost_user *vu, unsigned int index,
			      unsigned int base, struct kiln_error *err)
{
	return vu_vring_state(vu, VHOST_USER_SET_VRING_BASE, index, base, err);
}

int vhost_user_get_vring_base(struct vhost_user *vu, unsigned int index,
			      uint32_t *base, struct kiln_error *err)
{
	struct vhost_user_vring_state s = { .index = index }, r;
	struct vu_deadline d = vu_deadline(vu);
	char why[64];

	/* it has a reply of its own: never NEED_REPLY */
	if (vu_send(vu, VHOST_USER_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0, d,
		    err) < 0 ||
	    vu_reply(vu, VHOST_USER_GET_VRING_BASE, &r, sizeof(r), d, err) < 0)
		return -1;
	if (r.index != index) {
		snprintf(why, sizeof(why), "state of ring %u, asked for %u",
			 r.index, index);
		return vu_fail(vu, VHOST_USER_GET_VRING_BASE, err, EPROTO, why);
	}
	/* backend-controlled: a ring index is 16 bits */
	if (r.num > UINT16_MAX) {
		snprintf(why, sizeof(why), "ring base %u", r.num);
		return vu_fail(vu, VHOST_USER_GET_VRING_BASE, err, EPROTO, why);
	}
	*base = r.num;
	return 0;
}

static int vu_vring_fd(struct vhost_user *vu, uint32_t req, unsigned int index,
		       int fd, struct kiln_error *err)
{
	uint64_t v = index & VHOST_USER_VRING_IDX_MASK;

	if (index > VHOST_USER_VRING_IDX_MASK)
		return kiln_error_set(err, EINVAL, "%s: no ring %u", vu->what,
				      index);
	if (fd < 0)
		v |= VHOST_USER_VRING_NOFD;
	return vu_set(vu, req, &v, sizeof(v), fd < 0 ? NULL : &fd,
		      fd < 0 ? 0 : 1, err);
}

int vhost_user_set_vring_kick(struct vhost_user *vu, unsigned int index, int fd,
			      struct kiln_error *err)
{
	return vu_vring_fd(vu, VHOST_USER_SET_VRING_KICK, index, fd, err);
}

int vhost_user_set_vring_call(struct vhost_user *vu, unsigned int index, int fd,
			      struct kiln_error *err)
{
	return vu_vring_fd(vu, VHOST_USER_SET_VRING_CALL, index, fd, err);
}

int vhost_user_set_vring_enable(struct vhost_user *vu, unsigned int index,
				bool enable, struct kiln_error *err)
{
	return vu_vring_state(vu, VHOST_USER_SET_VRING_ENABLE, index, enable,
			      err);
}
