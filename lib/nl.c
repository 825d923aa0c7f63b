/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rtnetlink: the socket, one request and its ACK, a dump; building and
 * reading messages (nl.h). Raw netlink, as the agent's: Debian ships
 * libmnl without a static library, and kiln is static (Makefile).
 */
#include "nl.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int nl_open(struct nl *nl, struct kiln_error *err)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return kiln_error_set(err, errno,
				      "netlink: open NETLINK_ROUTE");
	/* nl_pid 0: the kernel picks our port id */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		int e = errno;

		close(fd);
		return kiln_error_set(err, e, "netlink: bind");
	}
	nl->fd = fd;
	nl->open = true;
	nl->portid = sa.nl_pid;
	nl->seq = (uint32_t)time(NULL);
	return 0;
}

void nl_close(struct nl *nl)
{
	if (nl->open)
		close(nl->fd);
	nl->open = false;
	nl->fd = -1;
}

struct nlmsghdr *nl_msg(struct nl *nl, void *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *h = buf;

	memset(h, 0, sizeof(*h));
	h->nlmsg_len = NLMSG_HDRLEN;
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | flags;
	h->nlmsg_seq = ++nl->seq;
	return h;
}

/* ---- building ------------------------------------------------------------ */

static void *tail(struct nlmsghdr *h)
{
	return (char *)h + NLMSG_ALIGN(h->nlmsg_len);
}

void *nl_put_header(struct nlmsghdr *h, size_t size)
{
	void *p = tail(h);

	memset(p, 0, NLMSG_ALIGN(size));
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLMSG_ALIGN(size);
	return p;
}

void nl_put(struct nlmsghdr *h, uint16_t type, size_t len, const void *data)
{
	struct nlattr *a = tail(h);
	size_t total = NLA_HDRLEN + len;

	a->nla_type = type;
	a->nla_len = (uint16_t)total;
	memcpy((char *)a + NLA_HDRLEN, data, len);
	/* the padding is zeros: the kernel checks nothing there, but a
	 * message is all ours to the last byte */
	memset((char *)a + total, 0, NLA_ALIGN(total) - total);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLA_ALIGN(total);
}

void nl_put_u16(struct nlmsghdr *h, uint16_t type, uint16_t v)
{
	nl_put(h, type, sizeof(v), &v);
}

void nl_put_u32(struct nlmsghdr *h, uint16_t type, uint32_t v)
{
	nl_put(h, type, sizeof(v), &v);
}

void nl_put_str(struct nlmsghdr *h, uint16_t type, const char *s)
{
	nl_put(h, type, strlen(s) + 1, s);
}

struct nlattr *nl_nest_start(struct nlmsghdr *h, uint16_t type)
{
	struct nlattr *nest = tail(h);

	nest->nla_type = type;
	nest->nla_len = NLA_HDRLEN;
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLA_HDRLEN;
	return nest;
}

void nl_nest_end(struct nlmsghdr *h, struct nlattr *nest)
{
	nest->nla_len = (uint16_t)((char *)tail(h) - (char *)nest);
}

/* ---- reading ------------------------------------------------------------- */

void *nl_payload(const struct nlmsghdr *h)
{
	return (char *)h + NLMSG_HDRLEN;
}

size_t nl_payload_len(const struct nlmsghdr *h)
{
	return h->nlmsg_len < NLMSG_HDRLEN ? 0 : h->nlmsg_len - NLMSG_HDRLEN;
}

/* The attributes in [p, p + len): each whole one whose type is at most
 * max into tb; the walk ends at the first that would pass the end. */
static void walk(const char *p, size_t len, const struct nlattr **tb,
		 unsigned int max)
{
	while (len >= NLA_HDRLEN) {
		const struct nlattr *a = (const void *)p;
		size_t step;

		if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
			return;
		if ((a->nla_type & NLA_TYPE_MASK) <= max)
			tb[a->nla_type & NLA_TYPE_MASK] = a;
		step = NLA_ALIGN(a->nla_len);
		if (step >= len)
			return;
		p += step;
		len -= step;
	}
}

int nl_attrs(const struct nlmsghdr *h, size_t hdr, const struct nlattr **tb,
	     unsigned int max)
{
	size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(hdr);

	if (h->nlmsg_len < NLMSG_HDRLEN + hdr)
		return -1;
	if (h->nlmsg_len > off)
		walk((const char *)h + off, h->nlmsg_len - off, tb, max);
	return 0;
}

void nl_attrs_nested(const struct nlattr *nest, const struct nlattr **tb,
		     unsigned int max)
{
	walk(nl_attr_data(nest), nl_attr_len(nest), tb, max);
}

const void *nl_attr_data(const struct nlattr *a)
{
	return (const char *)a + NLA_HDRLEN;
}

size_t nl_attr_len(const struct nlattr *a)
{
	return a->nla_len - NLA_HDRLEN;
}

int nl_attr_u32(const struct nlattr *a, uint32_t *v)
{
	if (nl_attr_len(a) < sizeof(*v))
		return -1;
	memcpy(v, nl_attr_data(a), sizeof(*v));
	return 0;
}

/* ---- a request and its answers ------------------------------------------- */

/*
 * One datagram of answers to request seq: 1 to read on, 0 at its end (the
 * ACK, NLMSG_DONE), -1 with errno (the kernel's error, or cb's). Answers
 * to an earlier request (a dump cut short by an error) are passed over.
 */
static int answers(const char *buf, size_t len, uint32_t seq, uint32_t portid,
		   nl_cb cb, void *data)
{
	while (len >= NLMSG_HDRLEN) {
		const struct nlmsghdr *h = (const void *)buf;
		size_t step;

		if (h->nlmsg_len < NLMSG_HDRLEN || h->nlmsg_len > len) {
			errno = EBADMSG;
			return -1;
		}
		if (h->nlmsg_seq == seq &&
		    (h->nlmsg_pid == 0 || h->nlmsg_pid == portid)) {
			const int32_t *code = nl_payload(h);

			if (h->nlmsg_flags & NLM_F_DUMP_INTR) {
				errno = EINTR; /* changed while dumped */
				return -1;
			}
			switch (h->nlmsg_type) {
			case NLMSG_DONE:
			case NLMSG_ERROR:
				/* an ACK is an error 0; a dump's DONE may
				 * carry its error */
				if (nl_payload_len(h) < sizeof(*code)) {
					if (h->nlmsg_type == NLMSG_DONE)
						return 0;
					errno = EBADMSG;
					return -1;
				}
				if (*code == 0)
					return 0;
				errno = *code < 0 && *code > -4096 ? -*code
								   : EPROTO;
				return -1;
			default:
				/* NLMSG_OVERRUN and the other control
				 * types carry no answer */
				if (h->nlmsg_type >= NLMSG_MIN_TYPE &&
				    cb != NULL && cb(h, data) < 0)
					return -1;
			}
		}
		step = NLMSG_ALIGN(h->nlmsg_len);
		if (step >= len)
			break;
		buf += step;
		len -= step;
	}
	return 1;
}

/* Answers to h until the ACK or NLMSG_DONE; cb for each other message. */
static int run(struct nl *nl, struct nlmsghdr *h, nl_cb cb, void *data,
	       const char *what, struct kiln_error *err)
{
	char buf[NL_BUF_SIZE * 4] __attribute__((aligned(4)));
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int res = 1;

	if (sendto(nl->fd, h, h->nlmsg_len, 0, (struct sockaddr *)&kernel,
		   sizeof(kernel)) < 0)
		return kiln_error_set(err, errno, "%s: send", what);
	do {
		struct sockaddr_nl from;
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr m = { .msg_name = &from,
				    .msg_namelen = sizeof(from),
				    .msg_iov = &iov,
				    .msg_iovlen = 1 };
		ssize_t n = recvmsg(nl->fd, &m, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kiln_error_set(err, errno, "%s: receive", what);
		if (m.msg_flags & MSG_TRUNC)
			return kiln_error_set(err, ENOSPC,
					      "%s: an answer past %zu bytes",
					      what, sizeof(buf));
		/* only the kernel's: another process may send to our port */
		if (m.msg_namelen != sizeof(from) || from.nl_pid != 0)
			continue;
		errno = 0;
		res = answers(buf, (size_t)n, h->nlmsg_seq, nl->portid, cb,
			      data);
	} while (res > 0);
	if (res < 0)
		return kiln_error_set(err, errno ? errno : EPROTO, "%s", what);
	return 0;
}

int nl_talk(struct nl *nl, struct nlmsghdr *h, const char *what,
	    struct kiln_error *err)
{
	h->nlmsg_flags |= NLM_F_ACK;
	return run(nl, h, NULL, NULL, what, err);
}

int nl_dump(struct nl *nl, struct nlmsghdr *h, nl_cb cb, void *data,
	    const char *what, struct kiln_error *err)
{
	h->nlmsg_flags |= NLM_F_DUMP;
	return run(nl, h, cb, data, what, err);
}
