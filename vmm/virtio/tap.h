/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host side of virtio-net: a TAP device opened by name through
 * /dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte vnet
 * header (struct virtio_net_hdr_v1), so the guest's header passes through
 * to the kernel unchanged and checksum/segmentation offloads work.
 *
 * The TAP must already exist (Firecracker's rule): kiln-vmm never creates
 * one, so a typo cannot leave a stray interface behind and the jailed VMM
 * needs no CAP_NET_ADMIN. The runtime (or the test) creates it with
 * `ip tuntap add dev NAME mode tap` or TUNSETPERSIST.
 *
 * Multi-queue (virtio-net with several queue pairs): a TAP created with
 * IFF_MULTI_QUEUE (`ip tuntap add ... multi_queue`) is attached once per
 * queue, each attach (TUNSETIFF with IFF_MULTI_QUEUE, same name) a queue
 * fd of its own. The kernel spreads received frames over the attached
 * queues by flow; TUNSETQUEUE detaches a queue (no frames reach it) and
 * attaches it again. A TAP's mode (single or multi-queue) is fixed when
 * it is created: attaching in the other mode fails.
 */
#ifndef KILN_VMM_VIRTIO_TAP_H
#define KILN_VMM_VIRTIO_TAP_H

#include <net/if.h>
#include <stdbool.h>

#include "../../lib/error.h"

/* sizeof(struct virtio_net_hdr_v1): what the TAP prepends and expects */
#define TAP_VNET_HDR_LEN 12

struct tap {
	int fd; /* nonblocking, close-on-exec; -1 when closed */
	char name[IFNAMSIZ];
	unsigned int offloads; /* TUN_F_* this TAP accepted when probed */
};

/*
 * Attach to the existing TAP `name` (one more queue of it when
 * multi_queue): vnet header of TAP_VNET_HDR_LEN, offloads probed into
 * t->offloads and then switched off until the driver acks them. A
 * missing TAP, or a name that is not a TAP (of that mode), is an error
 * that names it.
 */
int tap_open(struct tap *t, const char *name, bool multi_queue,
	     struct kiln_error *err);
/* TUNSETQUEUE: attach (true) or detach this queue of a multi-queue TAP. */
int tap_set_queue(struct tap *t, bool attach, struct kiln_error *err);
/* TUNSETOFFLOAD: which offloaded frames (TUN_F_*) we may be handed. */
int tap_set_offload(struct tap *t, unsigned int flags, struct kiln_error *err);
void tap_close(struct tap *t);

#endif
