/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/nl*.c: the parsers on messages built here (good and malformed), then
 * the requests against the kernel in a network namespace of our own: a
 * TAP, its name clash, MTU, up, the ingress qdisc and the redirect, their
 * removal, and reading lo's addresses and routes back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../lib/nl.h"
#include "tap.h"

static struct nlmsghdr *msg(void *buf, uint16_t type, size_t hdr, void **body)
{
	struct nl nl = { 0 };
	struct nlmsghdr *h = nl_msg(&nl, buf, type, 0);

	*body = nl_put_header(h, hdr);
	return h;
}

static void test_parse_addr(void)
{
	char buf[512] __attribute__((aligned(4)));
	struct ifaddrmsg *ifa;
	struct nlmsghdr *h;
	struct nl_addr a;
	uint8_t v6[16] = { 0xfd, 0, [15] = 2 };
	char s[64];

	h = msg(buf, RTM_NEWADDR, sizeof(*ifa), (void **)&ifa);
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = 16;
	ifa->ifa_index = 7;
	nl_put_u32(h, IFA_ADDRESS, htonl(0xac110002));
	is_int(nl_addr_parse(h, &a), 1, "v4 address parsed");
	ok(a.family == AF_INET && a.index == 7 && a.prefix_len == 16 &&
		   !strcmp(nl_addr_str(AF_INET, a.addr, a.prefix_len, s,
				       sizeof(s)),
			   "172.17.0.2/16"),
	   "v4 address: %s", s);
	/* IFA_LOCAL wins over IFA_ADDRESS (a point-to-point peer) */
	nl_put_u32(h, IFA_LOCAL, htonl(0x0a000001));
	nl_addr_parse(h, &a);
	ok(!strcmp(nl_addr_str(AF_INET, a.addr, a.prefix_len, s, sizeof(s)),
		   "10.0.0.1/16"),
	   "IFA_LOCAL is the address: %s", s);

	h = msg(buf, RTM_NEWADDR, sizeof(*ifa), (void **)&ifa);
	ifa->ifa_family = AF_INET6;
	ifa->ifa_prefixlen = 64;
	nl_put(h, IFA_ADDRESS, 16, v6);
	nl_put_u32(h, IFA_FLAGS, IFA_F_PERMANENT | IFA_F_NODAD);
	is_int(nl_addr_parse(h, &a), 1, "v6 address parsed");
	ok(!strcmp(nl_addr_str(AF_INET6, a.addr, a.prefix_len, s, sizeof(s)),
		   "fd00::2/64") &&
		   (a.flags & IFA_F_NODAD),
	   "v6 address and its 32-bit flags: %s", s);

	ifa->ifa_prefixlen = 129;
	is_int(nl_addr_parse(h, &a), -1, "a v6 prefix past 128 is refused");
	h = msg(buf, RTM_NEWADDR, sizeof(*ifa), (void **)&ifa);
	ifa->ifa_family = AF_INET;
	nl_put(h, IFA_ADDRESS, 3, v6);
	is_int(nl_addr_parse(h, &a), -1, "a 3-byte v4 address is refused");
	h = msg(buf, RTM_NEWADDR, sizeof(*ifa), (void **)&ifa);
	ifa->ifa_family = AF_INET;
	is_int(nl_addr_parse(h, &a), -1, "no address attribute is refused");
	ifa->ifa_family = AF_PACKET;
	is_int(nl_addr_parse(h, &a), 0, "another family is skipped");
	h->nlmsg_len = 20;
	ifa->ifa_family = AF_INET;
	is_int(nl_addr_parse(h, &a), -1, "a short message is refused");
	h->nlmsg_type = RTM_NEWLINK;
	is_int(nl_addr_parse(h, &a), 0, "another type is skipped");
}

static void test_parse_route(void)
{
	char buf[512] __attribute__((aligned(4)));
	struct rtmsg *rtm;
	struct nlmsghdr *h;
	struct nl_route r;
	char s[64];

	h = msg(buf, RTM_NEWROUTE, sizeof(*rtm), (void **)&rtm);
	rtm->rtm_family = AF_INET;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_type = RTN_UNICAST;
	nl_put_u32(h, RTA_GATEWAY, htonl(0xac110001));
	nl_put_u32(h, RTA_OIF, 9);
	nl_put_u32(h, RTA_PRIORITY, 100);
	nl_put_u32(h, RTA_TABLE, RT_TABLE_MAIN);
	is_int(nl_route_parse(h, &r), 1, "default route parsed");
	ok(r.has_gw && r.oif == 9 && r.metric == 100 && r.dst_len == 0 &&
		   r.table == RT_TABLE_MAIN &&
		   !strcmp(nl_addr_str(AF_INET, r.gw, 32, s, sizeof(s)), "172."
									 "17.0."
									 "1/"
									 "32"),
	   "its gateway, oif, metric: %s", s);

	h = msg(buf, RTM_NEWROUTE, sizeof(*rtm), (void **)&rtm);
	rtm->rtm_family = AF_INET;
	rtm->rtm_dst_len = 16;
	nl_put_u32(h, RTA_DST, htonl(0xac110000));
	is_int(nl_route_parse(h, &r), 1, "prefix route parsed");
	ok(!r.has_gw && r.dst_len == 16, "no gateway");
	nl_put_u16(h, RTA_OIF, 1);
	is_int(nl_route_parse(h, &r), -1, "a 16-bit RTA_OIF is refused");
	h = msg(buf, RTM_NEWROUTE, sizeof(*rtm), (void **)&rtm);
	rtm->rtm_family = AF_INET;
	rtm->rtm_dst_len = 33;
	is_int(nl_route_parse(h, &r), -1, "a v4 dst_len past 32 is refused");
	h = msg(buf, RTM_NEWROUTE, sizeof(*rtm), (void **)&rtm);
	rtm->rtm_family = AF_INET6;
	nl_put_u32(h, RTA_GATEWAY, 1);
	is_int(nl_route_parse(h, &r), -1, "a 4-byte v6 gateway is refused");
}

static void test_parse_link(void)
{
	char buf[512] __attribute__((aligned(4)));
	static const uint8_t mac[6] = { 2, 0x42, 0xac, 0x11, 0, 2 };
	struct ifinfomsg *ifi;
	struct nlmsghdr *h;
	struct nlattr *info;
	struct nl_link l;

	h = msg(buf, RTM_NEWLINK, sizeof(*ifi), (void **)&ifi);
	ifi->ifi_index = 5;
	ifi->ifi_flags = IFF_UP;
	nl_put_str(h, IFLA_IFNAME, "eth0");
	nl_put_u32(h, IFLA_MTU, 1450);
	nl_put(h, IFLA_ADDRESS, 6, mac);
	info = nl_nest_start(h, IFLA_LINKINFO);
	nl_put_str(h, IFLA_INFO_KIND, "veth");
	nl_nest_end(h, info);
	is_int(nl_link_parse(h, &l), 1, "link parsed");
	ok(l.index == 5 && !strcmp(l.name, "eth0") && l.mtu == 1450 &&
		   l.has_mac && !memcmp(l.mac, mac, 6) &&
		   !strcmp(l.kind, "veth") && (l.flags & IFF_UP),
	   "name, MTU, MAC, kind, flags");

	h = msg(buf, RTM_NEWLINK, sizeof(*ifi), (void **)&ifi);
	nl_put(h, IFLA_IFNAME, 4, "eth0"); /* no NUL */
	is_int(nl_link_parse(h, &l), -1, "a name without its NUL is refused");
	h = msg(buf, RTM_NEWLINK, sizeof(*ifi), (void **)&ifi);
	nl_put_str(h, IFLA_IFNAME, "a-name-of-16-chr");
	is_int(nl_link_parse(h, &l), -1, "a name of 16 characters is refused");
}

/* What nl.c builds is what the kernel reads; what it reads, it bounds. */
static void test_build_and_walk(void)
{
	char buf[512] __attribute__((aligned(4)));
	const struct nlattr *tb[IFLA_MAX + 1] = { 0 };
	struct ifinfomsg *ifi;
	struct nlmsghdr *h;
	struct nlattr *nest, *a;
	struct nl_link l;
	uint32_t v = 0;
	size_t len;

	memset(buf, 0xaa, sizeof(buf));
	h = msg(buf, RTM_NEWLINK, sizeof(*ifi), (void **)&ifi);
	is_int(h->nlmsg_len, NLMSG_HDRLEN + sizeof(*ifi),
	       "the family header follows the netlink header");
	ok(ifi->ifi_index == 0 && ifi->ifi_flags == 0, "the family header is "
						       "zeroed");
	nl_put_str(h, IFLA_IFNAME, "eth0");
	a = (struct nlattr *)((char *)ifi + sizeof(*ifi));
	ok(a->nla_len == NLA_HDRLEN + 5 && a->nla_type == IFLA_IFNAME &&
		   !memcmp((char *)a + NLA_HDRLEN, "eth0\0\0\0\0", 8),
	   "a string with its NUL, padded with zeros to 4 bytes");
	is_int(h->nlmsg_len, NLMSG_HDRLEN + sizeof(*ifi) + NLA_HDRLEN + 8,
	       "the message grows by the padded attribute");
	nest = nl_nest_start(h, IFLA_LINKINFO);
	nl_put_str(h, IFLA_INFO_KIND, "veth");
	nl_nest_end(h, nest);
	is_int(nest->nla_len, NLA_HDRLEN + NLA_HDRLEN + 8,
	       "a nest counts what was put in it");
	/* a type past IFLA_MAX (a newer kernel's) is passed over */
	nl_put_u32(h, IFLA_MAX + 1, 7);
	nl_put_u32(h, IFLA_MTU, 1500);
	is_int(nl_attrs(h, sizeof(*ifi), tb, IFLA_MAX), 0, "attributes walked");
	ok(tb[IFLA_IFNAME] != NULL && tb[IFLA_LINKINFO] != NULL &&
		   tb[IFLA_MTU] != NULL && nl_attr_u32(tb[IFLA_MTU], &v) == 0 &&
		   v == 1500,
	   "each attribute found, the one after an unknown type too");
	is_int(nl_link_parse(h, &l), 1, "the built link parses");
	ok(!strcmp(l.name, "eth0") && !strcmp(l.kind, "veth") && l.mtu == 1500,
	   "name, kind and MTU read back");

	/* the last attribute says it is longer than the message */
	len = h->nlmsg_len;
	nl_put_u32(h, IFLA_MTU, 9000);
	a = (struct nlattr *)((char *)h + len);
	a->nla_len = 200;
	memset(tb, 0, sizeof(tb));
	is_int(nl_attrs(h, sizeof(*ifi), tb, IFLA_MAX), 0,
	       "an overrunning attribute ends the walk");
	ok(tb[IFLA_MTU] != NULL && nl_attr_u32(tb[IFLA_MTU], &v) == 0 &&
		   v == 1500,
	   "and is not read: the MTU before it stands");
	a->nla_len = 2; /* shorter than its own header */
	memset(tb, 0, sizeof(tb));
	is_int(nl_attrs(h, sizeof(*ifi), tb, IFLA_MAX), 0,
	       "so does one shorter than its header");
	h->nlmsg_len = NLMSG_HDRLEN + sizeof(*ifi) - 1;
	is_int(nl_attrs(h, sizeof(*ifi), tb, IFLA_MAX), -1,
	       "a message shorter than its family header is refused");
	is_int(nl_link_parse(h, &l), -1, "and not parsed as a link");
}

static int find(struct nl_link *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return (int)i;
	return -1;
}

/* Attach to TAP name as a VMM does: fd on success, -1. */
static int tap_attach(const char *name, bool multi_queue)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	strcpy(ifr.ifr_name, name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (multi_queue)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;
	if (fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* A multi-queue TAP takes one attach per queue, and only multi-queue. */
static void test_tap_multi_queue(struct nl *nl)
{
	struct kiln_error err = { 0 };
	int index = 0, q0, q1, single;

	ok(nl_tap_create("ktm", true, &index, &err) == 0 && index > 0,
	   "multi-queue TAP ktm: %s", err.msg);
	q0 = tap_attach("ktm", true);
	q1 = tap_attach("ktm", true);
	ok(q0 >= 0 && q1 >= 0, "ktm: two queues attached");
	single = tap_attach("ktm", false);
	ok(single < 0, "ktm: a single-queue attach is refused");
	if (single >= 0)
		close(single);
	if (q0 >= 0)
		close(q0);
	if (q1 >= 0)
		close(q1);
	single = tap_attach("kta", true);
	ok(single < 0, "kta (single-queue): a multi-queue attach is refused");
	if (single >= 0)
		close(single);
	ok(nl_link_del(nl, "ktm", &err) == 0, "ktm removed: %s", err.msg);
}

static void test_live(void)
{
	struct kiln_error err = { 0 };
	struct nl nl = { 0 };
	struct nl_link *links = NULL;
	struct nl_addr *addrs = NULL;
	struct nl_route *routes = NULL;
	size_t n = 0, na = 0, nr = 0;
	int a = 0, b = 0, lo, i;
	bool v4 = false, v6 = false, has = true;

	if (unshare(CLONE_NEWNET) < 0) {
		tap_skip("no network namespace of our own here: %s",
			 strerror(errno));
		return;
	}
	if (!ok(nl_open(&nl, &err) == 0, "nl_open: %s", err.msg))
		return;
	ok(nl_link_list(&nl, &links, &n, &err) == 0 && n == 1 &&
		   !strcmp(links[0].name, "lo"),
	   "a new namespace has only lo");
	lo = n ? links[0].index : 1;
	free(links);
	if (access("/dev/net/tun", R_OK | W_OK) < 0) {
		tap_skip("no /dev/net/tun");
		nl_close(&nl);
		return;
	}
	ok(nl_tap_create("kta", false, &a, &err) == 0 && a > 0, "TAP kta: %s",
	   err.msg);
	ok(nl_tap_create("ktb", false, &b, &err) == 0 && b > 0, "TAP ktb: %s",
	   err.msg);
	ok(nl_tap_create("kta", false, &i, &err) < 0 && err.errnum == EEXIST &&
		   strstr(err.msg, "kta"),
	   "a name clash is an error naming the TAP: %s", err.msg);
	test_tap_multi_queue(&nl);
	ok(nl_link_set_mtu(&nl, a, "kta", 1400, &err) == 0, "mtu: %s", err.msg);
	ok(nl_link_set_up(&nl, a, "kta", &err) == 0 &&
		   nl_link_set_up(&nl, lo, "lo", &err) == 0,
	   "up: %s", err.msg);
	nl_link_list(&nl, &links, &n, &err);
	i = find(links, n, "kta");
	ok(i >= 0 && links[i].mtu == 1400 && (links[i].flags & IFF_UP) &&
		   links[i].has_mac && !strcmp(links[i].kind, "tun"),
	   "kta listed: its MTU, up, a MAC, kind tun");
	free(links);
	ok(nl_link_set_mtu(&nl, a, "kta", 1u << 20, &err) < 0 &&
		   strstr(err.msg, "RTM_NEWLINK mtu 1048576 on kta"),
	   "a refused MTU names the request and the link: %s", err.msg);

	ok(nl_tc_ingress_has(&nl, a, "kta", &has, &err) == 0 && !has,
	   "no ingress on kta yet: %s", err.msg);
	ok(nl_tc_ingress_add(&nl, a, "kta", &err) == 0, "ingress on kta: %s",
	   err.msg);
	ok(nl_tc_ingress_has(&nl, a, "kta", &has, &err) == 0 && has, "kta has "
								     "it now");
	ok(nl_tc_ingress_has(&nl, b, "ktb", &has, &err) == 0 && !has, "ktb "
								      "does "
								      "not");
	ok(nl_tc_ingress_add(&nl, a, "kta", &err) < 0 && err.errnum == EEXIST &&
		   strstr(err.msg, "RTM_NEWQDISC ingress on kta"),
	   "a second one: %s", err.msg);
	ok(nl_tc_ingress_add(&nl, b, "ktb", &err) == 0, "ingress on ktb: %s",
	   err.msg);
	ok(nl_tc_redirect(&nl, a, "kta", b, "ktb", &err) == 0,
	   "redirect kta -> ktb: %s", err.msg);
	ok(nl_tc_redirect(&nl, b, "ktb", a, "kta", &err) == 0,
	   "redirect ktb -> kta: %s", err.msg);
	ok(nl_tc_redirect(&nl, 9999, "nope", a, "kta", &err) < 0 &&
		   strstr(err.msg, "nope -> kta"),
	   "a missing interface is named: %s", err.msg);
	ok(nl_tc_ingress_del(&nl, a, "kta", &err) == 0 &&
		   nl_tc_ingress_del(&nl, a, "kta", &err) == 0,
	   "ingress removed, twice: %s", err.msg);
	ok(nl_tc_ingress_add(&nl, a, "kta", &err) == 0, "and can be added "
							"again (it was gone)");

	ok(nl_addr_list(&nl, AF_UNSPEC, &addrs, &na, &err) == 0, "addresses");
	for (size_t k = 0; k < na; k++) {
		if (addrs[k].index != lo)
			continue;
		v4 |= addrs[k].family == AF_INET && addrs[k].prefix_len == 8 &&
		      addrs[k].addr[0] == 127;
		v6 |= addrs[k].family == AF_INET6 &&
		      addrs[k].prefix_len == 128 && addrs[k].addr[15] == 1;
	}
	ok(v4 && v6, "lo's 127.0.0.1/8 and ::1/128");
	free(addrs);
	v4 = false;
	ok(nl_route_list(&nl, AF_INET, &routes, &nr, &err) == 0, "routes");
	for (size_t k = 0; k < nr; k++)
		v4 |= routes[k].table == RT_TABLE_LOCAL &&
		      routes[k].type == RTN_LOCAL && routes[k].oif == lo &&
		      routes[k].dst[0] == 127 && routes[k].dst_len == 32;
	ok(v4, "lo's local route 127.0.0.1/32");
	free(routes);

	ok(nl_link_del(&nl, "kta", &err) == 0 &&
		   nl_link_del(&nl, "kta", &err) == 0 &&
		   nl_link_del(&nl, "ktb", &err) == 0,
	   "TAPs removed, twice: %s", err.msg);
	nl_link_list(&nl, &links, &n, &err);
	ok(n == 1, "only lo left");
	free(links);
	nl_close(&nl);
}

int main(void)
{
	test_parse_addr();
	test_parse_route();
	test_parse_link();
	test_build_and_walk();
	test_live();
	return tap_done();
}
