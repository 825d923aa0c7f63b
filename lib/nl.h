/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rtnetlink for the host side (the runtime and the shim): one socket per
 * caller, one request at a time. Each file does one concern: nl.c the
 * socket, a request and its ACK, a dump, and building and reading
 * messages; nl_link.c links and TAPs; nl_addr.c addresses and routes;
 * nl_tc.c the ingress qdisc and the mirred redirect between an interface
 * and its TAP.
 *
 * Errors name the request and the interface:
 * "RTM_NEWQDISC ingress on eth0: Operation not permitted".
 *
 * Not thread-safe: a struct nl belongs to the thread that opened it.
 */
#ifndef KILN_LIB_NL_H
#define KILN_LIB_NL_H

#include <linux/netlink.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct nl {
	int fd;
	bool open;
	uint32_t portid, seq;
};

/* NETLINK_ROUTE in the caller's network namespace. */
int nl_open(struct nl *nl, struct kiln_error *err);
void nl_close(struct nl *nl);

/* A request header (type, NLM_F_REQUEST|NLM_F_ACK|flags, seq) in buf,
 * which holds at least NL_BUF_SIZE bytes, 4-aligned. */
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

/* A dump: cb(h, data) for each answer message; cb returns NL_CB_OK, or
 * NL_CB_ERROR with errno set to stop. */
#define NL_CB_OK    1
#define NL_CB_ERROR (-1)
typedef int (*nl_cb)(const struct nlmsghdr *h, void *data);
int nl_dump(struct nl *nl, struct nlmsghdr *h, nl_cb cb, void *data,
	    const char *what, struct kiln_error *err);

/* ---- building a request (nl.c) ------------------------------------------ */

/*
 * At the end of h, in its NL_BUF_SIZE buffer (the requests are small: no
 * check): the family's header of size bytes, zeroed; an attribute; a
 * nest, whose nl_nest_end counts what was put after its start.
 */
void *nl_put_header(struct nlmsghdr *h, size_t size);
void nl_put(struct nlmsghdr *h, uint16_t type, size_t len, const void *data);
void nl_put_u16(struct nlmsghdr *h, uint16_t type, uint16_t v);
void nl_put_u32(struct nlmsghdr *h, uint16_t type, uint32_t v);
void nl_put_str(struct nlmsghdr *h, uint16_t type, const char *s); /* +NUL */
struct nlattr *nl_nest_start(struct nlmsghdr *h, uint16_t type);
void nl_nest_end(struct nlmsghdr *h, struct nlattr *nest);

/* ---- reading an answer (nl.c) ------------------------------------------- */

/*
 * What the kernel sent, no length trusted. h's family header, and its
 * length (0 when h is shorter than its own header).
 */
void *nl_payload(const struct nlmsghdr *h);
size_t nl_payload_len(const struct nlmsghdr *h);
/*
 * The attributes after h's family header of hdr bytes (or in nest) into
 * tb[type] (zeroed by the caller, max + 1 of them): the last of a type is
 * kept, types past max (the kernel's newer ones) are passed over, and the
 * walk ends at the first attribute that would pass the message's end.
 * nl_attrs: -1 when h is shorter than hdr.
 */
int nl_attrs(const struct nlmsghdr *h, size_t hdr, const struct nlattr **tb,
	     unsigned int max);
void nl_attrs_nested(const struct nlattr *nest, const struct nlattr **tb,
		     unsigned int max);
/* An attribute's payload and its length; a u32's value (-1: shorter). */
const void *nl_attr_data(const struct nlattr *a);
size_t nl_attr_len(const struct nlattr *a);
int nl_attr_u32(const struct nlattr *a, uint32_t *v);

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
