/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Addresses and routes, v4 and v6: read them (nl.h). The parsers read
 * what the kernel sent, and are fuzzed (test/fuzz/fuzz_nl_parse.c): no
 * attribute is trusted for its length.
 */
#include "nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
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

struct tb {
	const struct nlattr
		*a[RTA_MAX + 1 > IFA_MAX + 1 ? RTA_MAX + 1 : IFA_MAX + 1];
	uint16_t max;
};

static int tb_cb(const struct nlattr *a, void *data)
{
	struct tb *t = data;

	if (mnl_attr_type_valid(a, t->max) > 0)
		t->a[mnl_attr_get_type(a)] = a;
	return MNL_CB_OK;
}

/* An address attribute of exactly len bytes into out. */
static int attr_addr(const struct nlattr *a, unsigned int len, uint8_t *out)
{
	if (mnl_attr_get_payload_len(a) != len)
		return -1;
	memcpy(out, mnl_attr_get_payload(a), len);
	return 0;
}

int nl_addr_parse(const struct nlmsghdr *h, struct nl_addr *a)
{
	struct tb t = { .max = IFA_MAX };
	const struct ifaddrmsg *ifa;
	const struct nlattr *at;
	unsigned int len;

	if (h->nlmsg_type != RTM_NEWADDR)
		return 0;
	if (h->nlmsg_len < mnl_nlmsg_size(sizeof(*ifa)))
		return -1;
	ifa = mnl_nlmsg_get_payload(h);
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
	if (mnl_attr_parse(h, sizeof(*ifa), tb_cb, &t) < 0)
		return -1;
	/* IFA_LOCAL is the address itself on a point-to-point link, where
	 * IFA_ADDRESS is the peer's; elsewhere they are the same */
	at = t.a[IFA_LOCAL] != NULL ? t.a[IFA_LOCAL] : t.a[IFA_ADDRESS];
	if (at == NULL || attr_addr(at, len, a->addr) < 0)
		return -1;
	if (t.a[IFA_FLAGS] != NULL) {
		if (mnl_attr_validate(t.a[IFA_FLAGS], MNL_TYPE_U32) < 0)
			return -1;
		a->flags = mnl_attr_get_u32(t.a[IFA_FLAGS]);
	}
	return 1;
}

int nl_route_parse(const struct nlmsghdr *h, struct nl_route *r)
{
	struct tb t = { .max = RTA_MAX };
	const struct rtmsg *rtm;
	unsigned int len;

	if (h->nlmsg_type != RTM_NEWROUTE)
		return 0;
	if (h->nlmsg_len < mnl_nlmsg_size(sizeof(*rtm)))
		return -1;
	rtm = mnl_nlmsg_get_payload(h);
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
	if (mnl_attr_parse(h, sizeof(*rtm), tb_cb, &t) < 0)
		return -1;
	if (t.a[RTA_TABLE] != NULL) {
		uint32_t table;

		if (mnl_attr_validate(t.a[RTA_TABLE], MNL_TYPE_U32) < 0)
			return -1;
		table = mnl_attr_get_u32(t.a[RTA_TABLE]);
		r->table = table > 255 ? RT_TABLE_UNSPEC : (uint8_t)table;
	}
	if (t.a[RTA_DST] != NULL && attr_addr(t.a[RTA_DST], len, r->dst) < 0)
		return -1;
	if (t.a[RTA_GATEWAY] != NULL) {
		if (attr_addr(t.a[RTA_GATEWAY], len, r->gw) < 0)
			return -1;
		r->has_gw = true;
	}
	if (t.a[RTA_OIF] != NULL) {
		if (mnl_attr_validate(t.a[RTA_OIF], MNL_TYPE_U32) < 0)
			return -1;
		r->oif = (int)mnl_attr_get_u32(t.a[RTA_OIF]);
	}
	if (t.a[RTA_PRIORITY] != NULL) {
		if (mnl_attr_validate(t.a[RTA_PRIORITY], MNL_TYPE_U32) < 0)
			return -1;
		r->metric = mnl_attr_get_u32(t.a[RTA_PRIORITY]);
	}
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
		return MNL_CB_ERROR;
	}
	if (r == 0)
		return MNL_CB_OK;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		void *v;

		if (cap > ENTRIES_MAX) {
			errno = E2BIG;
			return MNL_CB_ERROR;
		}
		v = realloc(l->v, cap * l->size);
		if (v == NULL)
			return MNL_CB_ERROR;
		l->v = v;
		l->cap = cap;
	}
	memcpy((char *)l->v + l->n++ * l->size, one, l->size);
	return MNL_CB_OK;
}

int nl_addr_list(struct nl *nl, int family, struct nl_addr **out, size_t *n,
		 struct kiln_error *err)
{
	char buf[NL_BUF_SIZE];
	struct nlmsghdr *h = nl_msg(nl, buf, RTM_GETADDR, 0);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
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
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(h, sizeof(*rtm));
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
