/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ConfigureNetwork: the guest's interfaces as the host's namespace has
 * them. Each is found by its MAC, gets its MTU, addresses and routes and
 * goes up. The agent is static and libmnl has no static library: raw
 * rtnetlink here, one request and its ACK at a time, and ioctls for what
 * they do simply (MAC, MTU, flags).
 */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/cleanup.h"

#define NET_IFACES_MAX 16
#define NET_ADDRS_MAX  64
#define NET_ROUTES_MAX 64
#define NET_MTU_MIN    68
#define NET_MTU_MAX    65535

struct nlreq {
	struct nlmsghdr h;
	union {
		struct ifaddrmsg ifa;
		struct rtmsg rtm;
	};
	char attrs[128];
};

static void put_attr(struct nlreq *r, uint16_t type, const void *data,
		     size_t len)
{
	struct rtattr *a = (void *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));

	/* callers put at most 4 attributes of 16 bytes: attrs holds them */
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Send r, wait for its ACK: 0 or -errno. */
static int nl_ack(int fd, struct nlreq *r)
{
	static uint32_t seq;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char buf[1024] __attribute__((aligned(4)));
	ssize_t n;

	r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	r->h.nlmsg_seq = ++seq;
	if (sendto(fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&sa,
		   sizeof(sa)) < 0)
		return -errno;
	for (;;) {
		struct nlmsghdr *h = (void *)buf;

		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0)
			return errno == EINTR ? -EINTR : -errno;
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			const struct nlmsgerr *e = NLMSG_DATA(h);

			if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
				continue;
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				return -EPROTO;
			return e->error;
		}
	}
}

static const char *addr_str(const uint8_t *a, size_t len, char *buf,
			    size_t size)
{
	if (len == 0 ||
	    !inet_ntop(len == 4 ? AF_INET : AF_INET6, a, buf, (socklen_t)size))
		snprintf(buf, size, "default");
	return buf;
}

static int add_addr(int fd, int index, const char *ifname,
		    const Kiln__Agent__V1__NetAddress *a,
		    struct kiln_error *err)
{
	struct nlreq r = { 0 };
	int family = a->address.len == 4 ? AF_INET : AF_INET6;
	char s[INET6_ADDRSTRLEN];
	int e;

	r.h.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifa));
	r.h.nlmsg_type = RTM_NEWADDR;
	r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	r.ifa.ifa_family = (uint8_t)family;
	r.ifa.ifa_prefixlen = (uint8_t)a->prefix_len;
	r.ifa.ifa_index = (uint32_t)index;
	/* the host has checked it is unique on its link */
	r.ifa.ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	put_attr(&r, IFA_LOCAL, a->address.data, a->address.len);
	put_attr(&r, IFA_ADDRESS, a->address.data, a->address.len);
	e = nl_ack(fd, &r);
	if (e < 0)
		return AGENT_FAIL(
			err, TTRPC_INTERNAL, -e, "RTM_NEWADDR %s/%u on %s",
			addr_str(a->address.data, a->address.len, s, sizeof(s)),
			a->prefix_len, ifname);
	return 0;
}

static int add_route(int fd, int index, const char *ifname,
		     const Kiln__Agent__V1__NetRoute *rt,
		     struct kiln_error *err)
{
	struct nlreq r = { 0 };
	size_t len = rt->gateway.len ? rt->gateway.len : rt->dst.len;
	char s[INET6_ADDRSTRLEN], g[INET6_ADDRSTRLEN];
	uint32_t oif = (uint32_t)index;
	int e;

	r.h.nlmsg_len = NLMSG_LENGTH(sizeof(r.rtm));
	r.h.nlmsg_type = RTM_NEWROUTE;
	r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	r.rtm.rtm_family = len == 4 ? AF_INET : AF_INET6;
	r.rtm.rtm_dst_len = (uint8_t)rt->dst_len;
	r.rtm.rtm_table = RT_TABLE_MAIN;
	r.rtm.rtm_protocol = RTPROT_BOOT;
	r.rtm.rtm_type = RTN_UNICAST;
	r.rtm.rtm_scope = rt->gateway.len ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	if (rt->dst.len)
		put_attr(&r, RTA_DST, rt->dst.data, rt->dst.len);
	if (rt->gateway.len)
		put_attr(&r, RTA_GATEWAY, rt->gateway.data, rt->gateway.len);
	put_attr(&r, RTA_OIF, &oif, sizeof(oif));
	if (rt->metric)
		put_attr(&r, RTA_PRIORITY, &rt->metric, sizeof(rt->metric));
	e = nl_ack(fd, &r);
	/* the kernel made the prefix routes of the addresses already */
	if (e < 0 && e != -EEXIST)
		return AGENT_FAIL(
			err, TTRPC_INTERNAL, -e,
			"RTM_NEWROUTE %s/%u via %s on %s",
			addr_str(rt->dst.data, rt->dst.len, s, sizeof(s)),
			rt->dst_len,
			rt->gateway.len
				? addr_str(rt->gateway.data, rt->gateway.len, g,
					   sizeof(g))
				: "link",
			ifname);
	return 0;
}

/* The host's request, checked whole before any of it is applied: a bad
 * one changes nothing. */
static int check(const Kiln__Agent__V1__ConfigureNetworkRequest *req,
		 struct kiln_error *err)
{
	if (req->n_interfaces > NET_IFACES_MAX)
		return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
				  "%zu interfaces: at most %d",
				  req->n_interfaces, NET_IFACES_MAX);
	for (size_t i = 0; i < req->n_interfaces; i++) {
		const Kiln__Agent__V1__NetInterface *in = req->interfaces[i];

		if (in->mac.len != 6 ||
		    (in->current_mac.len != 0 && in->current_mac.len != 6))
			return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
					  "interfaces[%zu]: a MAC of %zu "
					  "bytes",
					  i,
					  in->mac.len != 6
						  ? in->mac.len
						  : in->current_mac.len);
		if (in->mtu < NET_MTU_MIN || in->mtu > NET_MTU_MAX)
			return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
					  "interfaces[%zu]: MTU %u: the guest "
					  "takes %d to %d",
					  i, in->mtu, NET_MTU_MIN, NET_MTU_MAX);
		if (in->n_addresses > NET_ADDRS_MAX ||
		    in->n_routes > NET_ROUTES_MAX)
			return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
					  "interfaces[%zu]: more than %d "
					  "addresses or routes",
					  i, NET_ADDRS_MAX);
		for (size_t j = 0; j < in->n_addresses; j++) {
			const Kiln__Agent__V1__NetAddress *a = in->addresses[j];

			if ((a->address.len != 4 && a->address.len != 16) ||
			    a->prefix_len > a->address.len * 8)
				return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT,
						  0,
						  "interfaces[%zu].addresses["
						  "%zu]: bad length",
						  i, j);
		}
		for (size_t j = 0; j < in->n_routes; j++) {
			const Kiln__Agent__V1__NetRoute *r = in->routes[j];
			size_t len = r->gateway.len ? r->gateway.len
						    : r->dst.len;

			if ((len != 4 && len != 16) ||
			    (r->dst.len != 0 && r->dst.len != len) ||
			    (r->gateway.len != 0 && r->gateway.len != len) ||
			    r->dst_len > (r->dst.len ? r->dst.len * 8 : 0))
				return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT,
						  0,
						  "interfaces[%zu].routes[%zu]"
						  ": bad length",
						  i, j);
		}
	}
	return 0;
}

/* The interface whose MAC is mac: its index and name; 0 when none. */
static int find_by_mac(int sk, const uint8_t *mac, char name[IFNAMSIZ])
{
	struct if_nameindex *all = if_nameindex(), *p;
	int index = 0;

	for (p = all; p != NULL && p->if_index != 0; p++) {
		struct ifreq ifr = { 0 };

		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", p->if_name);
		if (ioctl(sk, SIOCGIFHWADDR, &ifr) == 0 &&
		    ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER &&
		    memcmp(ifr.ifr_hwaddr.sa_data, mac, 6) == 0) {
			index = (int)p->if_index;
			snprintf(name, IFNAMSIZ, "%s", p->if_name);
			break;
		}
	}
	if (all != NULL)
		if_freenameindex(all);
	return index;
}

static int configure_one(int nl, int sk,
			 const Kiln__Agent__V1__NetInterface *in,
			 struct kiln_error *err)
{
	struct ifreq ifr = { 0 };
	char name[IFNAMSIZ];
	const uint8_t *now = in->current_mac.len == 6 ? in->current_mac.data
						      : in->mac.data;
	int index = find_by_mac(sk, now, name);
	int res;

	if (index == 0)
		return AGENT_FAIL(err, TTRPC_NOT_FOUND, 0,
				  "no interface with the MAC of %s "
				  "(%02x:%02x:%02x:%02x:%02x:%02x)",
				  in->name, now[0], now[1], now[2], now[3],
				  now[4], now[5]);
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (now != in->mac.data) {
		ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		memcpy(ifr.ifr_hwaddr.sa_data, in->mac.data, 6);
		if (ioctl(sk, SIOCSIFHWADDR, &ifr) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "%s (%s): set its MAC", name,
					  in->name);
	}
	ifr.ifr_mtu = (int)in->mtu;
	if (ioctl(sk, SIOCSIFMTU, &ifr) < 0)
		return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, errno,
				  "%s (%s): MTU %u", name, in->name, in->mtu);
	for (size_t j = 0; j < in->n_addresses; j++)
		if ((res = add_addr(nl, index, name, in->addresses[j], err)) <
		    0)
			return res;
	if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "%s: flags",
				  name);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "%s: up", name);
	for (size_t j = 0; j < in->n_routes; j++)
		if ((res = add_route(nl, index, name, in->routes[j], err)) < 0)
			return res;
	return 0;
}

int net_configure(const Kiln__Agent__V1__ConfigureNetworkRequest *req,
		  struct kiln_error *err)
{
	cleanup_close int nl = -1, sk = -1;
	int res = check(req, err);

	if (res < 0)
		return res;
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (nl < 0 || sk < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "sockets");
	setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO,
		   &(struct timeval){ .tv_sec = 5 }, sizeof(struct timeval));
	for (size_t i = 0; i < req->n_interfaces; i++)
		if ((res = configure_one(nl, sk, req->interfaces[i], err)) < 0)
			return res;
	return 0;
}
