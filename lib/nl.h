/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rtnetlink over libmnl, for the host side (the runtime and the shim):
 * one socket per caller, one request at a time. Each file does one
 * concern: nl.c the socket, a request and its ACK, a dump; nl_link.c
 * links and TAPs; nl_addr.c addresses and routes; nl_tc.c the ingress
 * qdisc and the mirred redirect between an interface and its TAP.
 *
 * Errors name the request and the interface:
 * "RTM_NEWQDISC ingress on eth0: Operation not permitted".
 *
 * Not thread-safe: a struct nl belongs to the thread that opened it.
 */
#ifndef KILN_LIB_NL_H
#define KILN_LIB_NL_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct mnl_socket;
struct nlmsghdr;

struct nl {
	struct mnl_socket *sk;
	uint32_t portid, seq;
};

/* NETLINK_ROUTE in the caller's network namespace. */
int nl_open(struct nl *nl, struct kiln_error *err);
void nl_close(struct nl *nl);

/* A request header (type, NLM_F_REQUEST|NLM_F_ACK|flags, seq) in buf,
 * which holds at least NL_BUF_SIZE bytes. */
#define NL_BUF_SIZE 8192
struct nlmsghdr *nl_msg(struct nl *nl, void *buf, uint16_t type,
			uint16_t flags);

/*
 * Send h and wait for its ACK. what names it in an error
 * ("RTM_NEWLINK up on eth0"); the kernel's errno is err->errnum and the
 * return value's negation is not used: -1.
 */
int nl_talk(struct nl *nl, struct nlmsghdr *h, const char *what,
	    struct kiln_error *err);

/* A dump: cb(h, data) for each answer message; cb returns MNL_CB_OK,
 * or MNL_CB_ERROR with errno set to stop. */
typedef int (*nl_cb)(const struct nlmsghdr *h, void *data);
int nl_dump(struct nl *nl, struct nlmsghdr *h, nl_cb cb, void *data,
	    const char *what, struct kiln_error *err);

/* ---- links (nl_link.c) ------------------------------------------------- */

struct nl_link {
	int index;
	char name[IFNAMSIZ];
	uint8_t mac[6];
	bool has_mac; /* a 6-byte IFLA_ADDRESS */
	uint32_t mtu;
	uint32_t flags; /* IFF_* */
	uint16_t type;	/* ARPHRD_* */
	char kind[16];	/* IFLA_INFO_KIND: "veth", "tun"...; "" unknown */
};

/* An RTM_NEWLINK message into l: 1, 0 when it is not one, -1 malformed. */
int nl_link_parse(const struct nlmsghdr *h, struct nl_link *l);
/* Every link: *out (free()) and *n. */
int nl_link_list(struct nl *nl, struct nl_link **out, size_t *n,
		 struct kiln_error *err);
int nl_link_set_up(struct nl *nl, int index, const char *name,
		   struct kiln_error *err);
int nl_link_set_mtu(struct nl *nl, int index, const char *name, uint32_t mtu,
		    struct kiln_error *err);
/* Remove a link by name; one that is not there is not an error. */
int nl_link_del(struct nl *nl, const char *name, struct kiln_error *err);
/*
 * A persistent TAP (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR) named name, which
 * must not exist yet (EEXIST: a name clash), with no fd attached: the
 * VMM attaches to it by name. With multi_queue it is IFF_MULTI_QUEUE:
 * the VMM attaches once per virtio-net queue pair. Its index in *index.
 */
int nl_tap_create(const char *name, bool multi_queue, int *index,
		  struct kiln_error *err);

/* ---- addresses and routes (nl_addr.c) ---------------------------------- */

struct nl_addr {
	int family; /* AF_INET, AF_INET6 */
	int index;
	uint8_t prefix_len;
	uint8_t scope; /* RT_SCOPE_* */
	uint32_t flags;
	uint8_t addr[16];
};

struct nl_route {
	int family;
	int oif;
	uint8_t table, type, scope, protocol;
	uint8_t dst_len;
	bool has_gw;
	uint32_t metric;
	uint8_t dst[16], gw[16];
};

/* An RTM_NEWADDR / RTM_NEWROUTE message: 1, 0 not one, -1 malformed. */
int nl_addr_parse(const struct nlmsghdr *h, struct nl_addr *a);
int nl_route_parse(const struct nlmsghdr *h, struct nl_route *r);
/* Every address / route of family (AF_UNSPEC: both) in the main table. */
int nl_addr_list(struct nl *nl, int family, struct nl_addr **out, size_t *n,
		 struct kiln_error *err);
int nl_route_list(struct nl *nl, int family, struct nl_route **out, size_t *n,
		  struct kiln_error *err);
/* "10.0.0.1/24" */
const char *nl_addr_str(int family, const uint8_t *addr, unsigned int len,
			char *buf, size_t size);

/* ---- traffic control (nl_tc.c) ----------------------------------------- */

/* An ingress qdisc on index (EEXIST when one is there already). */
int nl_tc_ingress_add(struct nl *nl, int index, const char *name,
		      struct kiln_error *err);
/* Whether index has an ingress qdisc (a dump: the kernel lists every
 * interface's; we keep index's). */
int nl_tc_ingress_has(struct nl *nl, int index, const char *name, bool *has,
		      struct kiln_error *err);
/* Its removal, with every filter under it; none there is not an error. */
int nl_tc_ingress_del(struct nl *nl, int index, const char *name,
		      struct kiln_error *err);
/* A matchall filter on from's ingress: mirred egress redirect to `to`. */
int nl_tc_redirect(struct nl *nl, int from, const char *from_name, int to,
		   const char *to_name, struct kiln_error *err);

#endif
