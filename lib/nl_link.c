/* SPDX-License-Identifier: Apache-2.0 */
/* Links: list them, set them up, their MTU, remove one; a TAP (nl.h). */
#include "nl.h"

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
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

struct attrs {
	const struct nlattr *tb[IFLA_MAX + 1];
};

static int attr_cb(const struct nlattr *a, void *data)
{
	struct attrs *t = data;
	uint16_t type = mnl_attr_get_type(a);

	/* the kernel's newer attributes are not ours to read */
	if (mnl_attr_type_valid(a, IFLA_MAX) > 0)
		t->tb[type] = a;
	return MNL_CB_OK;
}

static int info_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **kind = data;

	if (mnl_attr_get_type(a) == IFLA_INFO_KIND)
		*kind = a;
	return MNL_CB_OK;
}

/* A string attribute into out (size bytes): -1 when not a C string. */
static int attr_str(const struct nlattr *a, char *out, size_t size)
{
	const char *s = mnl_attr_get_payload(a);
	size_t len = mnl_attr_get_payload_len(a);
	size_t n = strnlen(s, len);

	if (n == len || n >= size)
		return -1;
	memcpy(out, s, n + 1);
	return 0;
}

int nl_link_parse(const struct nlmsghdr *h, struct nl_link *l)
{
	struct attrs t = { 0 };
	const struct ifinfomsg *ifi;

	if (h->nlmsg_type != RTM_NEWLINK)
		return 0;
	if (h->nlmsg_len < mnl_nlmsg_size(sizeof(*ifi)))
		return -1;
	ifi = mnl_nlmsg_get_payload(h);
	memset(l, 0, sizeof(*l));
	l->index = ifi->ifi_index;
	l->flags = ifi->ifi_flags;
	l->type = ifi->ifi_type;
	if (mnl_attr_parse(h, sizeof(*ifi), attr_cb, &t) < 0)
		return -1;
	if (t.tb[IFLA_IFNAME] == NULL ||
	    attr_str(t.tb[IFLA_IFNAME], l->name, sizeof(l->name)) < 0)
		return -1;
	if (t.tb[IFLA_MTU] != NULL) {
		if (mnl_attr_validate(t.tb[IFLA_MTU], MNL_TYPE_U32) < 0)
			return -1;
		l->mtu = mnl_attr_get_u32(t.tb[IFLA_MTU]);
	}
	if (t.tb[IFLA_ADDRESS] != NULL &&
	    mnl_attr_get_payload_len(t.tb[IFLA_ADDRESS]) == 6) {
		memcpy(l->mac, mnl_attr_get_payload(t.tb[IFLA_ADDRESS]), 6);
		l->has_mac = true;
	}
	if (t.tb[IFLA_LINKINFO] != NULL) {
		const struct nlattr *kind = NULL;

		if (mnl_attr_parse_nested(t.tb[IFLA_LINKINFO], info_cb, &kind) <
		    0)
			return -1;
		if (kind != NULL &&
		    attr_str(kind, l->kind, sizeof(l->kind)) < 0)
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
		return MNL_CB_ERROR;
	}
	if (r == 0)
		return MNL_CB_OK;
	if (ll->n == ll->cap) {
		size_t cap = ll->cap ? ll->cap * 2 : 8;
		struct nl_link *v;

		if (cap > LINKS_MAX) {
			errno = E2BIG;
			return MNL_CB_ERROR;
		}
		v = realloc(ll->v, cap * sizeof(*v));
		if (v == NULL)
			return MNL_CB_ERROR;
		ll->v = v;
		ll->cap = cap;
	}
	ll->v[ll->n++] = l;
	return MNL_CB_OK;
}

int nl_link_list(struct nl *nl, struct nl_link **out, size_t *n,
		 struct kiln_error *err)
{
	char buf[NL_BUF_SIZE];
	struct nlmsghdr *h = nl_msg(nl, buf, RTM_GETLINK, 0);
	struct link_list ll = { 0 };
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));

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
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	return h;
}

int nl_link_set_up(struct nl *nl, int index, const char *name,
		   struct kiln_error *err)
{
	char buf[NL_BUF_SIZE], what[64];
	struct nlmsghdr *h = link_msg(nl, buf, index);
	struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);

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

	mnl_attr_put_u32(h, IFLA_MTU, mtu);
	snprintf(what, sizeof(what), "RTM_NEWLINK mtu %u on %s", mtu, name);
	return nl_talk(nl, h, what, err);
}

int nl_link_del(struct nl *nl, const char *name, struct kiln_error *err)
{
	char buf[NL_BUF_SIZE], what[64];
	struct nlmsghdr *h = nl_msg(nl, buf, RTM_DELLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, name);
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
