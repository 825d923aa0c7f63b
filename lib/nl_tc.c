/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Traffic control: an ingress qdisc on an interface and a matchall
 * filter whose mirred action redirects every frame that arrives there to
 * another interface's egress (nl.h). Two of them, one each way, join a
 * veth and a TAP without a bridge. Removing the ingress qdisc removes
 * its filters with it.
 */
#include "nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <stdio.h>
#include <string.h>

#define INGRESS_HANDLE TC_H_MAKE(TC_H_INGRESS, 0) /* ffff: */
#define FILTER_PRIO    1

static struct nlmsghdr *tc_msg(struct nl *nl, void *buf, uint16_t type,
			       uint16_t flags, int index, uint32_t parent)
{
	struct nlmsghdr *h = nl_msg(nl, buf, type, flags);
	struct tcmsg *tcm = nl_put_header(h, sizeof(*tcm));

	tcm->tcm_family = AF_UNSPEC;
	tcm->tcm_ifindex = index;
	tcm->tcm_parent = parent;
	return h;
}

int nl_tc_ingress_add(struct nl *nl, int index, const char *name,
		      struct kiln_error *err)
{
	char buf[NL_BUF_SIZE], what[64];
	struct nlmsghdr *h = tc_msg(nl, buf, RTM_NEWQDISC,
				    NLM_F_CREATE | NLM_F_EXCL, index,
				    TC_H_INGRESS);
	struct tcmsg *tcm = nl_payload(h);

	tcm->tcm_handle = INGRESS_HANDLE;
	nl_put_str(h, TCA_KIND, "ingress");
	snprintf(what, sizeof(what), "RTM_NEWQDISC ingress on %s", name);
	return nl_talk(nl, h, what, err);
}

struct ingress_find {
	int index;
	bool found;
};

static int ingress_cb(const struct nlmsghdr *h, void *data)
{
	struct ingress_find *f = data;
	const struct tcmsg *tcm;

	if (h->nlmsg_type != RTM_NEWQDISC || nl_payload_len(h) < sizeof(*tcm))
		return NL_CB_OK;
	tcm = nl_payload(h);
	if (tcm->tcm_ifindex == f->index && tcm->tcm_parent == TC_H_INGRESS)
		f->found = true;
	return NL_CB_OK;
}

int nl_tc_ingress_has(struct nl *nl, int index, const char *name, bool *has,
		      struct kiln_error *err)
{
	char buf[NL_BUF_SIZE], what[64];
	struct nlmsghdr *h = tc_msg(nl, buf, RTM_GETQDISC, 0, index, 0);
	struct ingress_find f = { .index = index };

	snprintf(what, sizeof(what), "RTM_GETQDISC on %s", name);
	if (nl_dump(nl, h, ingress_cb, &f, what, err) < 0)
		return -1;
	*has = f.found;
	return 0;
}

int nl_tc_ingress_del(struct nl *nl, int index, const char *name,
		      struct kiln_error *err)
{
	char buf[NL_BUF_SIZE], what[64];
	struct nlmsghdr *h =
		tc_msg(nl, buf, RTM_DELQDISC, 0, index, TC_H_INGRESS);
	struct tcmsg *tcm = nl_payload(h);

	tcm->tcm_handle = INGRESS_HANDLE;
	snprintf(what, sizeof(what), "RTM_DELQDISC ingress on %s", name);
	if (nl_talk(nl, h, what, err) < 0)
		/* none there: EINVAL ("cannot find"), ENOENT; no link: ENODEV */
		return err->errnum == EINVAL || err->errnum == ENOENT ||
				       err->errnum == ENODEV
			       ? 0
			       : -1;
	return 0;
}

/* The mirred action, as the first of the list nest `type` */
static void put_mirred(struct nlmsghdr *h, uint16_t type, int to)
{
	struct tc_mirred m = {
		.action = TC_ACT_STOLEN,
		.eaction = TCA_EGRESS_REDIR,
		.ifindex = (uint32_t)to,
	};
	struct nlattr *acts = nl_nest_start(h, type);
	struct nlattr *act = nl_nest_start(h, 1);
	struct nlattr *opts;

	nl_put_str(h, TCA_ACT_KIND, "mirred");
	opts = nl_nest_start(h, TCA_ACT_OPTIONS);
	nl_put(h, TCA_MIRRED_PARMS, sizeof(m), &m);
	nl_nest_end(h, opts);
	nl_nest_end(h, act);
	nl_nest_end(h, acts);
}

static int redirect(struct nl *nl, bool matchall, int from,
		    const char *from_name, int to, const char *to_name,
		    struct kiln_error *err)
{
	char buf[NL_BUF_SIZE], what[96];
	struct nlmsghdr *h = tc_msg(nl, buf, RTM_NEWTFILTER,
				    NLM_F_CREATE | NLM_F_EXCL, from,
				    INGRESS_HANDLE);
	struct tcmsg *tcm = nl_payload(h);
	struct nlattr *opts;

	tcm->tcm_info =
		TC_H_MAKE((uint32_t)FILTER_PRIO << 16, htons(ETH_P_ALL));
	nl_put_str(h, TCA_KIND, matchall ? "matchall" : "u32");
	opts = nl_nest_start(h, TCA_OPTIONS);
	if (matchall) {
		tcm->tcm_handle = 1;
		put_mirred(h, TCA_MATCHALL_ACT, to);
	} else {
		/* one key that every frame matches: 0 under mask 0 */
		struct {
			struct tc_u32_sel sel;
			struct tc_u32_key key;
		} sel = { .sel = { .flags = TC_U32_TERMINAL, .nkeys = 1 } };

		nl_put(h, TCA_U32_SEL, sizeof(sel), &sel);
		put_mirred(h, TCA_U32_ACT, to);
	}
	nl_nest_end(h, opts);
	snprintf(what, sizeof(what), "RTM_NEWTFILTER %s mirred %s -> %s",
		 matchall ? "matchall" : "u32", from_name, to_name);
	return nl_talk(nl, h, what, err);
}

int nl_tc_redirect(struct nl *nl, int from, const char *from_name, int to,
		   const char *to_name, struct kiln_error *err)
{
	if (redirect(nl, true, from, from_name, to, to_name, err) == 0)
		return 0;
	/* a kernel without cls_matchall (before 4.8, or not built) */
	if (err->errnum != ENOENT && err->errnum != EOPNOTSUPP)
		return -1;
	return redirect(nl, false, from, from_name, to, to_name, err);
}
