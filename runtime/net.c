/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The container's network: every interface the engine (docker, podman,
 * CNI) left in its network namespace, lo aside, joined to a TAP of ours
 * by two mirred redirects (lib/nl_tc.c), the TAP handed to kiln-vmm's
 * virtio-net with the interface's MAC, and the interface's addresses,
 * routes and MTU given to the guest's agent. No bridge, no iptables.
 *
 * Lifetime. kiln-vmm attaches to a persistent TAP by name, so a TAP does
 * not die with a process: what we make is written down first, in the
 * state directory (NET_RECORD: "INDEX TAP" per interface), and the
 * namespace is bind-mounted there (NET_NS), so that whoever comes last
 * removes it all: the pid process when the container ends (net_teardown)
 * or `kiln delete` after a kill -9 of the pid process (net_remove).
 * Removing the interface's ingress qdisc removes its filter; removing the
 * TAP removes the other.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if_arp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include "../lib/agent_client.h"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/nl.h"
#include "../lib/util.h"
#include "kiln.h"

#define NET_MTU_MIN 68
#define NET_MTU_MAX 65535
#define ADDRS_MAX   64 /* the agent's bounds */
#define ROUTES_MAX  64

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static bool kiln_tap(const struct nl_link *l)
{
	return strncmp(l->name, "kt", 2) == 0 && strcmp(l->kind, "tun") == 0;
}

static bool wired(const struct nl_link *l)
{
	/* lo, tunnels' fallback devices, and kiln's TAPs stay as they are */
	return l->type == ARPHRD_ETHER && l->has_mac &&
	       !(l->flags & IFF_LOOPBACK) && !kiln_tap(l);
}

/*
 * A namespace whose interfaces already feed another kiln VM (docker's
 * --network container:ID names a kiln container's; or a container killed
 * with kill -9 and not yet deleted): its interfaces cannot feed a second
 * VM, and wiring them again would fail half-way, so it is refused before
 * anything is made or removed.
 */
static int check_unwired(const struct nl_link *links, size_t n,
			 struct kiln_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (kiln_tap(&links[i]))
			return kiln_error_set(err, EBUSY,
					      "the network namespace is "
					      "another kiln "
					      "container's (its VM's TAP %s is "
					      "there: "
					      "docker --network "
					      "container:ID?): a VM "
					      "cannot share another VM's "
					      "network stack",
					      links[i].name);
	return 0;
}

static int record(const struct net_iface *f, struct kiln_error *err)
{
	cleanup_close int fd = open(
		NET_RECORD, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	char line[64];

	snprintf(line, sizeof(line), "%d %s\n", f->index, f->tap);
	if (fd < 0 || util_write_all(fd, line, strlen(line)) < 0)
		return kiln_error_set(err, errno, "write " NET_RECORD);
	return 0;
}

/* The namespace, where `kiln delete` finds it after a kill -9. */
static int pin_netns(struct kiln_error *err)
{
	cleanup_close int fd =
		open(NET_NS, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0 ||
	    mount("/proc/self/ns/net", NET_NS, NULL, MS_BIND, NULL) < 0)
		return kiln_error_set(err, errno,
				      "bind the network namespace to " NET_NS);
	return 0;
}

unsigned int net_queue_pairs(uint32_t vcpus)
{
	return vcpus < 2		     ? 1
	       : vcpus > NET_QUEUE_PAIRS_MAX ? NET_QUEUE_PAIRS_MAX
					     : vcpus;
}

int net_tap_own(const char *name, bool multi_queue, uid_t uid,
		struct kiln_error *err)
{
	cleanup_close int fd = -1;
	struct ifreq ifr = { 0 };

	if (uid == 0)
		return 0;
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return kiln_error_set(err, errno, "TAP %s: open /dev/net/tun",
				      name);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	/* attach to the persistent TAP just made, in its mode */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (multi_queue)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
	    ioctl(fd, TUNSETOWNER, (unsigned long)uid) < 0 ||
	    ioctl(fd, TUNSETGROUP, (unsigned long)uid) < 0)
		return kiln_error_set(err, errno, "TAP %s: owner uid %u (jail)",
				      name, (unsigned)uid);
	return 0;
}

static int wire(struct nl *nl, struct net_iface *f, unsigned int pairs,
		uid_t owner, struct kiln_error *err)
{
	bool taken;

	if (f->mtu < NET_MTU_MIN || f->mtu > NET_MTU_MAX)
		return kiln_error_set(err, EINVAL,
				      "%s: MTU %u: the guest takes %d to %d",
				      f->name, f->mtu, NET_MTU_MIN,
				      NET_MTU_MAX);
	/* someone's ingress qdisc: refused before the record, so that
	 * our cleanup never removes what we did not make */
	if (nl_tc_ingress_has(nl, f->index, f->name, &taken, err) < 0)
		return -1;
	if (taken)
		return kiln_error_set(err, EBUSY,
				      "%s: it has an ingress qdisc already, "
				      "which kiln would replace",
				      f->name);
	if (record(f, err) < 0 ||
	    nl_tap_create(f->tap, pairs > 1, &f->tap_index, err) < 0 ||
	    net_tap_own(f->tap, pairs > 1, owner, err) < 0)
		return -1;
	if (nl_link_set_mtu(nl, f->tap_index, f->tap, f->mtu, err) < 0 ||
	    nl_link_set_up(nl, f->tap_index, f->tap, err) < 0 ||
	    nl_tc_ingress_add(nl, f->index, f->name, err) < 0)
		return -1;
	f->has_qdisc = true;
	if (nl_tc_ingress_add(nl, f->tap_index, f->tap, err) < 0 ||
	    nl_tc_redirect(nl, f->index, f->name, f->tap_index, f->tap, err) <
		    0 ||
	    nl_tc_redirect(nl, f->tap_index, f->tap, f->index, f->name, err) <
		    0)
		return -1;
	return 0;
}

/* ---- what the guest is told --------------------------------------------- */

static void *take(struct net_plan *np, size_t size)
{
	void *p = calloc(1, size);

	if (p != NULL && np->n_owned < NET_OWNED_MAX)
		np->owned[np->n_owned++] = p;
	else {
		free(p);
		p = NULL;
	}
	return p;
}

static bool route_wanted(const struct nl_route *r, int index)
{
	static const uint8_t ll[2] = { 0xfe, 0x80 };

	if (r->oif != index || r->table != RT_TABLE_MAIN ||
	    r->type != RTN_UNICAST)
		return false;
	/* the guest's kernel makes its own link-local route */
	return !(r->family == AF_INET6 && r->dst_len >= 10 &&
		 memcmp(r->dst, ll, 2) == 0);
}

static int describe(struct net_plan *np, struct net_iface *f,
		    const struct nl_addr *addrs, size_t na,
		    const struct nl_route *routes, size_t nr,
		    Kiln__Agent__V1__NetInterface *in, struct kiln_error *err)
{
	size_t len;

	kiln__agent__v1__net_interface__init(in);
	in->mac.data = f->mac;
	in->mac.len = 6;
	in->mtu = f->mtu;
	in->name = f->name;
	in->addresses = take(np, ADDRS_MAX * sizeof(*in->addresses));
	in->routes = take(np, ROUTES_MAX * sizeof(*in->routes));
	if (in->addresses == NULL || in->routes == NULL)
		return kiln_error_set(err, ENOMEM, "%s", f->name);
	for (size_t i = 0; i < na; i++) {
		const struct nl_addr *a = &addrs[i];
		Kiln__Agent__V1__NetAddress *o;

		/* the guest makes its own v6 link-local address */
		if (a->index != f->index ||
		    (a->family == AF_INET6 && a->scope == RT_SCOPE_LINK))
			continue;
		if (in->n_addresses == ADDRS_MAX)
			return kiln_error_set(err, E2BIG,
					      "%s: more than %d addresses",
					      f->name, ADDRS_MAX);
		o = take(np, sizeof(*o));
		if (o == NULL)
			return kiln_error_set(err, ENOMEM, "%s", f->name);
		kiln__agent__v1__net_address__init(o);
		o->address.data = (uint8_t *)a->addr;
		o->address.len = a->family == AF_INET ? 4 : 16;
		o->prefix_len = a->prefix_len;
		in->addresses[in->n_addresses++] = o;
	}
	/* on-link routes first: a gateway must be reachable when added */
	for (int gw = 0; gw < 2; gw++)
		for (size_t i = 0; i < nr; i++) {
			const struct nl_route *r = &routes[i];
			Kiln__Agent__V1__NetRoute *o;

			if (!route_wanted(r, f->index) || r->has_gw != gw)
				continue;
			if (in->n_routes == ROUTES_MAX)
				return kiln_error_set(err, E2BIG,
						      "%s: more than %d routes",
						      f->name, ROUTES_MAX);
			o = take(np, sizeof(*o));
			if (o == NULL)
				return kiln_error_set(err, ENOMEM, "%s",
						      f->name);
			kiln__agent__v1__net_route__init(o);
			len = r->family == AF_INET ? 4 : 16;
			if (r->dst_len > 0) {
				o->dst.data = (uint8_t *)r->dst;
				o->dst.len = len;
			}
			o->dst_len = r->dst_len;
			if (r->has_gw) {
				o->gateway.data = (uint8_t *)r->gw;
				o->gateway.len = len;
			} else if (r->dst_len == 0) {
				/* an on-link default route: the agent needs a
				 * family, a zero destination gives it one */
				o->dst.data = (uint8_t *)r->dst;
				o->dst.len = len;
			}
			o->metric = r->metric;
			in->routes[in->n_routes++] = o;
		}
	return 0;
}

/* ---- the pid process ----------------------------------------------------- */

int net_setup(struct net_plan *np, const char *id, struct vm_plan *plan,
	      uint32_t vcpus, struct kiln_error *err)
{
	unsigned int pairs = net_queue_pairs(vcpus);
	char qp[24] = "";
	struct nl nl = { 0 };
	cleanup_free struct nl_link *links = NULL;
	size_t n = 0;
	uint32_t tag = fnv1a(id);
	int res = -1;

	if (nl_open(&nl, err) < 0)
		return -1;
	if (nl_link_list(&nl, &links, &n, err) < 0 ||
	    check_unwired(links, n, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct net_iface *f;

		if (!wired(&links[i]))
			continue;
		if (np->n == NET_IFACES_MAX) {
			kiln_error_set(err, E2BIG,
				       "more than %d network interfaces in the "
				       "container's namespace",
				       NET_IFACES_MAX);
			goto out;
		}
		if (np->n == 0 && pin_netns(err) < 0)
			goto out;
		f = &np->ifs[np->n++];
		memset(f, 0, sizeof(*f));
		f->index = links[i].index;
		memcpy(f->name, links[i].name, sizeof(f->name));
		memcpy(f->mac, links[i].mac, 6);
		f->mtu = links[i].mtu;
		/* unique in the namespace: "kt" + hash of the id + slot */
		snprintf(f->tap, sizeof(f->tap), "kt%08xn%u", tag,
			 (unsigned int)(np->n - 1) % 10);
		if (wire(&nl, f, pairs, plan->jail.uid, err) < 0)
			goto out;
		/* one pair: kiln-vmm's default, the --net of before */
		if (pairs > 1)
			snprintf(qp, sizeof(qp), ",queue_pairs=%u", pairs);
		if (asprintf(&plan->nets[plan->n_nets],
			     "id=net%zu,tap=%s,mac=%02x:%02x:%02x:%02x:%02x:"
			     "%02x%s",
			     np->n - 1, f->tap, f->mac[0], f->mac[1], f->mac[2],
			     f->mac[3], f->mac[4], f->mac[5], qp) < 0) {
			plan->nets[plan->n_nets] = NULL;
			kiln_error_set(err, ENOMEM, "--net");
			goto out;
		}
		plan->n_nets++;
	}
	if (np->n == 0) {
		res = 0;
		goto out;
	}
	/* read after the wiring: an interface that vanished meanwhile made
	 * a request fail above, one that changed is read as it is now */
	if (nl_addr_list(&nl, AF_UNSPEC, &np->addrs, &np->n_addrs, err) < 0 ||
	    nl_route_list(&nl, AF_UNSPEC, &np->routes, &np->n_routes, err) < 0)
		goto out;
	kiln__agent__v1__configure_network_request__init(&np->req);
	np->req.interfaces = take(np, np->n * sizeof(*np->req.interfaces));
	if (np->req.interfaces == NULL) {
		kiln_error_set(err, ENOMEM, "network request");
		goto out;
	}
	for (size_t i = 0; i < np->n; i++) {
		Kiln__Agent__V1__NetInterface *in = take(np, sizeof(*in));

		if (in == NULL) {
			kiln_error_set(err, ENOMEM, "network request");
			goto out;
		}
		if (describe(np, &np->ifs[i], np->addrs, np->n_addrs,
			     np->routes, np->n_routes, in, err) < 0)
			goto out;
		np->req.interfaces[np->req.n_interfaces++] = in;
	}
	res = 0;
out:
	nl_close(&nl);
	if (res < 0)
		net_teardown(np);
	return res;
}

int net_configure_guest(struct net_plan *np, struct agent_client *c,
			bool forked, struct kiln_error *err)
{
	if (np->n == 0)
		return 0;
	for (size_t i = 0; i < np->req.n_interfaces; i++) {
		Kiln__Agent__V1__NetInterface *in = np->req.interfaces[i];

		template_mac(i, np->ifs[i].now_mac);
		in->current_mac.data = forked ? np->ifs[i].now_mac : NULL;
		in->current_mac.len = forked ? 6 : 0;
	}
	return agent_configure_network(c, &np->req, err);
}

/* Remove what the record names, in the current namespace. */
static void remove_recorded(int dirfd)
{
	struct kiln_error err = { 0 };
	struct nl nl = { 0 };
	cleanup_fclose FILE *f = NULL;
	int fd = openat(dirfd, NET_RECORD, O_RDONLY | O_CLOEXEC);
	char tap[IFNAMSIZ + 1];
	int index;

	if (fd < 0)
		return;
	f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return;
	}
	if (nl_open(&nl, &err) < 0) {
		log_warn("network cleanup: %s", err.msg);
		return;
	}
	while (fscanf(f, "%d %15s", &index, tap) == 2) {
		char name[IFNAMSIZ];

		if (!if_indextoname((unsigned int)index, name))
			snprintf(name, sizeof(name), "#%d", index);
		if (nl_tc_ingress_del(&nl, index, name, &err) < 0 ||
		    nl_link_del(&nl, tap, &err) < 0)
			log_warn("network cleanup: %s", err.msg);
	}
	nl_close(&nl);
	unlinkat(dirfd, NET_RECORD, 0);
}

void net_teardown(struct net_plan *np)
{
	remove_recorded(AT_FDCWD);
	if (np->n > 0)
		umount2(NET_NS, MNT_DETACH);
	np->n = 0;
}

void net_plan_free(struct net_plan *np)
{
	for (size_t i = 0; i < np->n_owned; i++)
		free(np->owned[i]);
	np->n_owned = 0;
	free(np->addrs);
	free(np->routes);
	np->addrs = NULL;
	np->routes = NULL;
}

/* ---- kiln delete ----------------------------------------------------------- */

void net_remove(int dirfd)
{
	cleanup_close int ns = openat(dirfd, NET_NS, O_RDONLY | O_CLOEXEC);
	cleanup_close int self = -1;

	if (ns < 0)
		return;
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	/* not a namespace (the pid process unmounted it): nothing left */
	if (self >= 0 && setns(ns, CLONE_NEWNET) == 0) {
		remove_recorded(dirfd);
		if (setns(self, CLONE_NEWNET) < 0)
			log_warn("network cleanup: back to our namespace: %m");
	}
	/* the path relative to dirfd, for umount2 */
	{
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d/" NET_NS, dirfd);
		umount2(path, MNT_DETACH);
	}
}
