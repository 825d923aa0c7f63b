/* SPDX-License-Identifier: Apache-2.0 */
/* rtnetlink: the socket, one request and its ACK, a dump (nl.h). */
#include "nl.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <string.h>
#include <time.h>

int nl_open(struct nl *nl, struct kiln_error *err)
{
	nl->sk = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (nl->sk == NULL)
		return kiln_error_set(err, errno,
				      "netlink: open NETLINK_ROUTE");
	if (mnl_socket_bind(nl->sk, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;

		mnl_socket_close(nl->sk);
		nl->sk = NULL;
		return kiln_error_set(err, e, "netlink: bind");
	}
	nl->portid = mnl_socket_get_portid(nl->sk);
	nl->seq = (uint32_t)time(NULL);
	return 0;
}

void nl_close(struct nl *nl)
{
	if (nl->sk != NULL)
		mnl_socket_close(nl->sk);
	nl->sk = NULL;
}

struct nlmsghdr *nl_msg(struct nl *nl, void *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *h = mnl_nlmsg_put_header(buf);

	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | flags;
	h->nlmsg_seq = ++nl->seq;
	return h;
}

/* Answers to h until the ACK or NLMSG_DONE; cb for each other message. */
static int run(struct nl *nl, struct nlmsghdr *h, nl_cb cb, void *data,
	       const char *what, struct kiln_error *err)
{
	char buf[NL_BUF_SIZE * 4];
	int res;

	if (mnl_socket_sendto(nl->sk, h, h->nlmsg_len) < 0)
		return kiln_error_set(err, errno, "%s: send", what);
	do {
		ssize_t n = mnl_socket_recvfrom(nl->sk, buf, sizeof(buf));

		if (n < 0)
			return kiln_error_set(err, errno, "%s: receive", what);
		errno = 0;
		res = mnl_cb_run(buf, (size_t)n, h->nlmsg_seq, nl->portid, cb,
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
