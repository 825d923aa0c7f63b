/* SPDX-License-Identifier: Apache-2.0 */
/* Links: list them, set them up, their MTU, remove one; a TAP (nl.h). */
#include "nl.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cleanup.h"

#define LINKS_MAX 4096

/* A string attribute into out (size bytes): -1 when not a C string. */
static int attr_str(const struct nlattr *a, char *out, size_t size)
{
	const char *s = nl_attr_data(a);
	size_t len = nl_attr_len(a);
	size_t n = strnlen(s, len);

	if (n == len || n >= size)
		return -1;
	memcpy(out, s, n + 1);
	return 0;
}

int nl_link_parse(const struct nlmsghdr *h, struct nl_link *l)
{
	const struct nlattr *tb[IFLA_MAX + 1] = { 0 };
	const struct ifinfomsg *ifi = nl_payload(h);

	if (h->nlmsg_type != RTM_NEWLINK)
		return 0;
	if (nl_attrs(h, sizeof(*ifi), tb, IFLA_MAX) < 0)
		return -1;
	memset(l, 0, sizeof(*l));
	l->index = ifi->ifi_index;
	l->flags = ifi->ifi_flags;
	l->type = ifi->ifi_type;
	if (tb[IFLA_IFNAME] == NULL ||
	    attr_str(tb[IFLA_IFNAME], l->name, sizeof(l->name)) < 0)
		return -1;
	if (tb[IFLA_MTU] != NULL && nl_attr_u32(tb[IFLA_MTU], &l->mtu) < 0)
		return -1;
	if (tb[IFLA_ADDRESS] != NULL && nl_attr_len(tb[IFLA_ADDRESS]) == 6) {
		memcpy(l->mac, nl_attr_data(tb[IFLA_ADDRESS]), 6);
		l->has_mac = true;
	}
	if (tb[IFLA_LINKINFO] != NULL) {
		const struct nlattr *info[IFLA_INFO_MAX + 1] = { 0 };

		nl_attrs_nested(tb[IFLA_LINKINFO], info, IFLA_INFO_MAX);
		if (info[IFLA_INFO_KIND] != NULL &&
		    attr_str(info[IFLA_INFO_KIND], l->kind, sizeof(l->kind)) <
			    0)
			return -1;
	}
	return 1;
}

struct link_list {
	struct nl_link *v;
	size_t n, cap;
};

static int link_cb(const struct nlmsghdr *h, void *data)
{
	struct link_list *ll = data;
	struct nl_link l;
	int r = nl_link_parse(h, &l);

	if (r < 0) {
		errno = EBADMSG;
		return NL_CB_ERROR;
	}
	if (r == 0)
		return NL_CB_OK;
	if (ll->n == ll->cap) {
		size_t cap = ll->cap ? ll->cap * 2 : 8;
		struct nl_link *v;

		if (cap > LINKS_MAX) {
			errno = E2BIG;
			return NL_CB_ERROR;
		}
		v = realloc(ll->v, cap * sizeof(*v));
		if (v == NULL)
			return NL_CB_ERROR;
		ll->v = v;
		ll->cap = cap;
	}
	ll->v[ll->n++] = l;
	return NL_CB_OK;
}

int nl_link_list(struct nl *nl, struct nl_link **out, size_t *n,
		 struct kiln_error *err)
{
	char buf[NL_BUF_SIZE];
	struct nlmsghdr *h = nl_msg(nl, buf, RTM_GETLINK, 0);
	struct link_list ll = { 0 };
	struct ifinfomsg *ifi = nl_put_header(h, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	if (nl_dump(nl, h, link_cb, &ll, "RTM_GETLINK dump", err) < 0) {
		free(ll.v);
		return -1;
	}
	*out = ll.v;
	*n = ll.n;
	return 0;
}

static struct nlmsghdr *link_msg(struct nl *nl, void *buf, int index)
{
	struct nlmsghdr *h = nl_msg(nl, buf, RTM_NEWLINK, 0);
	struct ifinfomsg *ifi = nl_put_header(h, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	return h;
}

int nl_link_set_up(struct nl *nl, int index, const char *name,
		   struct kiln_error *err)
{
	char buf[NL_BUF_SIZE], what[64];
	struct nlmsghdr *h = link_msg(nl, buf, index);
	struct ifinfomsg *ifi = nl_payload(h);

	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	snprintf(what, sizeof(what), "RTM_NEWLINK up on %s", name);
	return nl_talk(nl, h, what, err);
}

int nl_link_set_mtu(struct nl *nl, int index, const char *name, uint32_t mtu,
		    struct kiln_error *err)
{
	char buf[NL_BUF_SIZE], what[64];
	struct nlmsghdr *h = link_msg(nl, buf, index);

	nl_put_u32(h, IFLA_MTU, mtu);
	snprintf(what, sizeof(what), "RTM_NEWLINK mtu %u on %s", mtu, name);
	return nl_talk(nl, h, what, err);
}

int nl_link_del(struct nl *nl, const char *name, struct kiln_error *err)
{
	char buf[NL_BUF_SIZE], what[64];
	struct nlmsghdr *h = nl_msg(nl, buf, RTM_DELLINK, 0);
	struct ifinfomsg *ifi = nl_put_header(h, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	nl_put_str(h, IFLA_IFNAME, name);
	snprintf(what, sizeof(what), "RTM_DELLINK %s", name);
	if (nl_talk(nl, h, what, err) < 0)
		return err->errnum == ENODEV ? 0 : -1;
	return 0;
}

int nl_tap_create(const char *name, bool multi_queue, int *index,
		  struct kiln_error *err)
{
	cleanup_close int fd = -1;
	struct ifreq ifr = { 0 };

	if (name[0] == '\0' || strlen(name) >= IFNAMSIZ)
		return kiln_error_set(err, EINVAL,
				      "TAP name `%s`: 1 to %d characters", name,
				      IFNAMSIZ - 1);
	/* TUNSETIFF would attach to a TAP of that name: never someone's */
	if (if_nametoindex(name) != 0)
		return kiln_error_set(err, EEXIST,
				      "create TAP %s: the name is taken", name);
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return kiln_error_set(err, errno,
				      "create TAP %s: open /dev/net/tun", name);
	strcpy(ifr.ifr_name, name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	/* the mode is the TAP's for good: the VMM attaches in the same */
	if (multi_queue)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return kiln_error_set(err, errno, "create TAP %s: TUNSETIFF",
				      name);
	if (ioctl(fd, TUNSETPERSIST, 1UL) < 0)
		return kiln_error_set(err, errno,
				      "create TAP %s: TUNSETPERSIST", name);
	*index = (int)if_nametoindex(name);
	if (*index == 0) {
		kiln_error_set(err, errno, "create TAP %s: its index", name);
		ioctl(fd, TUNSETPERSIST, 0UL); /* it goes with fd */
		return -1;
	}
	return 0;
}
