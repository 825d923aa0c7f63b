/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container's resolv.conf, as its engine wrote it, read for the one
 * thing kiln must act on: nameservers on loopback addresses. Docker's
 * embedded DNS (127.0.0.11 on user-defined networks) answers in the
 * container's network namespace on the host, which a VM's guest cannot
 * reach: the agent relays such queries over vsock to the pid process,
 * which sits in that namespace (agent/dns.c, runtime/dns.c).
 */
#ifndef KILN_LIB_RESOLV_H
#define KILN_LIB_RESOLV_H

#include <netinet/in.h>
#include <stddef.h>

/* The host vsock port the pid process relays DNS on: guest connections
 * to it reach "<vsock uds>_1053" (kiln-vmm's vsock), each a stream of
 * DNS over TCP (RFC 1035 4.2.2: two bytes of length, then a message). */
#define RESOLV_RELAY_PORT 1053
#define RESOLV_NS_MAX	  3 /* as the resolver reads (MAXNS) */

/*
 * The IPv4 loopback (127/8) nameservers of the resolv.conf text in
 * data[0..len) (not NUL-terminated; "nameserver ADDR" lines, comments
 * after '#' or ';'), in order, without repeats, at most max (up to
 * RESOLV_NS_MAX). The count.
 */
size_t resolv_loopback_ns(const char *data, size_t len, struct in_addr *out,
			  size_t max);

/*
 * Carry bytes both ways between two connected stream sockets a and b
 * until both have ended (an end is passed on with shutdown(SHUT_WR)),
 * either fails, or neither moves for idle_ms. Closes neither.
 */
void resolv_relay(int a, int b, int idle_ms);

#endif
