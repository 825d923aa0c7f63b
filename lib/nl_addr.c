/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Addresses and routes, v4 and v6: read them (nl.h). The parsers read
 * what the kernel sent, and are fuzzed (test/fuzz/fuzz_nl_parse.c): no
 * attribute is trusted for its length.
 */
#include "nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRIES_MAX 65536

static unsigned int addr_len(int family)
{
	return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

/* An address attribute of exactly len bytes into out. */
static int attr_addr(const struct nlattr *a, unsigned int len, uint8_t *out)
{
	if (nl_attr_len(a) != len)
		return -1;
	memcpy(out, nl_attr_data(a), len);
	return 0;
}

int nl_addr_parse(const struct nlmsghdr *h, struct nl_addr *a)
{
	const struct nlattr *tb[IFA_MAX + 1] = { 0 };
	const struct ifaddrmsg *ifa = nl_payload(h);
	const struct nlattr *at;
	unsigned int len;

	if (h->nlmsg_type != RTM_NEWADDR)
		return 0;
	if (nl_attrs(h, sizeof(*ifa), tb, IFA_MAX) < 0)
		return -1;
	len = addr_len(ifa->ifa_family);
	if (len == 0)
		return 0;
	if (ifa->ifa_prefixlen > len * 8)
		return -1;
	memset(a, 0, sizeof(*a));
	a->family = ifa->ifa_family;
	a->index = (int)ifa->ifa_index;
	a->prefix_len = ifa->ifa_prefixlen;
	a->scope = ifa->ifa_scope;
	a->flags = ifa->ifa_flags;
	/* IFA_LOCAL is the address itself on a point-to-point link, where
	 * IFA_ADDRESS is the peer's; elsewhere they are the same */
	at = tb[IFA_LOCAL] != NULL ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (at == NULL || attr_addr(at, len, a->addr) < 0)
		return -1;
	if (tb[IFA_FLAGS] != NULL && nl_attr_u32(tb[IFA_FLAGS], &a->flags) < 0)
		return -1;
	return 1;
}

int nl_route_parse(const struct nlmsghdr *h, struct nl_route *r)
{
	const struct nlattr *tb[RTA_MAX + 1] = { 0 };
	const struct rtmsg *rtm = nl_payload(h);
	uint32_t table, oif;
	unsigned int len;

	if (h->nlmsg_type != RTM_NEWROUTE)
		return 0;
	if (nl_attrs(h, sizeof(*rtm), tb, RTA_MAX) < 0)
		return -1;
	len = addr_len(rtm->rtm_family);
	if (len == 0)
		return 0;
	if (rtm->rtm_dst_len > len * 8)
		return -1;
	memset(r, 0, sizeof(*r));
	r->family = rtm->rtm_family;
	r->table = rtm->rtm_table;
	r->type = rtm->rtm_type;
	r->scope = rtm->rtm_scope;
	r->protocol = rtm->rtm_protocol;
	r->dst_len = rtm->rtm_dst_len;
	if (tb[RTA_TABLE] != NULL) {
		if (nl_attr_u32(tb[RTA_TABLE], &table) < 0)
			return -1;
		r->table = table > 255 ? RT_TABLE_UNSPEC : (uint8_t)table;
	}
	if (tb[RTA_DST] != NULL && attr_addr(tb[RTA_DST], len, r->dst) < 0)
		return -1;
	if (tb[RTA_GATEWAY] != NULL) {
		if (attr_addr(tb[RTA_GATEWAY], len, r->gw) < 0)
			return -1;
		r->has_gw = true;
	}
	if (tb[RTA_OIF] != NULL) {
		if (nl_attr_u32(tb[RTA_OIF], &oif) < 0)
			return -1;
		r->oif = (int)oif;
	}
	if (tb[RTA_PRIORITY] != NULL &&
	    nl_attr_u32(tb[RTA_PRIORITY], &r->metric) < 0)
		return -1;
	return 1;
}

struct list {
	void *v;
	size_t n, cap, size;
	int (*parse)(const struct nlmsghdr *h, void *out);
};

static int parse_addr(const struct nlmsghdr *h, void *out)
{
	return nl_addr_parse(h, out);
}

static int parse_route(const struct nlmsghdr *h, void *out)
{
	return nl_route_parse(h, out);
}

static int list_cb(const struct nlmsghdr *h, void *data)
{
	struct list *l = data;
	char one[sizeof(struct nl_route) > sizeof(struct nl_addr)
			 ? sizeof(struct nl_route)
			 : sizeof(struct nl_addr)];
	int r = l->parse(h, one);

	if (r < 0) {
		errno = EBADMSG;
		return NL_CB_ERROR;
	}
	if (r == 0)
		return NL_CB_OK;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		void *v;

		if (cap > ENTRIES_MAX) {
			errno = E2BIG;
			return NL_CB_ERROR;
		}
		v = realloc(l->v, cap * l->size);
		if (v == NULL)
			return NL_CB_ERROR;
		l->v = v;
		l->cap = cap;
	}
	memcpy((char *)l->v + l->n++ * l->size, one, l->size);
	return NL_CB_OK;
}

int nl_addr_list(struct nl *nl, int family, struct nl_addr **out, size_t *n,
		 struct kiln_error *err)
{
	char buf[NL_BUF_SIZE];
	struct nlmsghdr *h = nl_msg(nl, buf, RTM_GETADDR, 0);
	struct ifaddrmsg *ifa = nl_put_header(h, sizeof(*ifa));
	struct list l = { .size = sizeof(struct nl_addr), .parse = parse_addr };

	ifa->ifa_family = (uint8_t)family;
	if (nl_dump(nl, h, list_cb, &l, "RTM_GETADDR dump", err) < 0) {
		free(l.v);
		return -1;
	}
	*out = l.v;
	*n = l.n;
	return 0;
}

int nl_route_list(struct nl *nl, int family, struct nl_route **out, size_t *n,
		  struct kiln_error *err)
{
	char buf[NL_BUF_SIZE];
	struct nlmsghdr *h = nl_msg(nl, buf, RTM_GETROUTE, 0);
	struct rtmsg *rtm = nl_put_header(h, sizeof(*rtm));
	struct list l = { .size = sizeof(struct nl_route),
			  .parse = parse_route };

	rtm->rtm_family = (uint8_t)family;
	if (nl_dump(nl, h, list_cb, &l, "RTM_GETROUTE dump", err) < 0) {
		free(l.v);
		return -1;
	}
	*out = l.v;
	*n = l.n;
	return 0;
}

const char *nl_addr_str(int family, const uint8_t *addr, unsigned int len,
			char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(family, addr, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(buf, size, "%s/%u", a, len);
	return buf;
}
