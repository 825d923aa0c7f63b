/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the rtnetlink parsers of lib/nl_link.c and
 * lib/nl_addr.c, which read the kernel's RTM_NEWLINK, RTM_NEWADDR and
 * RTM_NEWROUTE answers.
 *
 * Input: a stream of netlink messages as a recvmsg() would return them.
 * Each message goes to every parser with its own type and once more
 * with the type each parser reads, so that every parser sees every
 * body. Checks beyond ASan/UBSan: what a parser accepts is consistent
 * (a known family, a prefix that fits it, a NUL-terminated name).
 */
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../lib/nl.h"

static void check_all(struct nlmsghdr *h)
{
	struct nl_link l;
	struct nl_addr a;
	struct nl_route r;

	if (nl_link_parse(h, &l) > 0 &&
	    (memchr(l.name, '\0', sizeof(l.name)) == NULL ||
	     memchr(l.kind, '\0', sizeof(l.kind)) == NULL))
		abort();
	if (nl_addr_parse(h, &a) > 0 &&
	    !((a.family == AF_INET && a.prefix_len <= 32) ||
	      (a.family == AF_INET6 && a.prefix_len <= 128)))
		abort();
	if (nl_route_parse(h, &r) > 0 &&
	    !((r.family == AF_INET && r.dst_len <= 32) ||
	      (r.family == AF_INET6 && r.dst_len <= 128)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[] = { RTM_NEWLINK, RTM_NEWADDR,
					  RTM_NEWROUTE };
	/* netlink messages are 4-byte aligned; the fuzzer's data need not be */
	uint32_t *buf;
	struct nlmsghdr *h;
	size_t len = size;

	if (size > 1 << 16)
		return 0;
	buf = malloc(size + 4);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	h = (struct nlmsghdr *)buf;
	/* the parsers' contract: nlmsg_len readable bytes (lib/nl.c's
	 * answers() walks a datagram so) */
	while (len >= NLMSG_HDRLEN && h->nlmsg_len >= NLMSG_HDRLEN &&
	       h->nlmsg_len <= len) {
		uint16_t own = h->nlmsg_type;
		size_t step = NLMSG_ALIGN(h->nlmsg_len);

		check_all(h);
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
			h->nlmsg_type = types[i];
			check_all(h);
		}
		h->nlmsg_type = own;
		if (step >= len)
			break;
		h = (struct nlmsghdr *)((char *)h + step);
		len -= step;
	}
	free(buf);
	return 0;
}
