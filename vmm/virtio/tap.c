/* SPDX-License-Identifier: Apache-2.0 */
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int tap_open(struct tap *t, const char *name, bool multi_queue,
	     struct kiln_error *err)
{
	static const unsigned int probes[] = {
		TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO,
		TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
		TUN_F_CSUM,
	};
	struct ifreq ifr = { 0 };
	int hdr = TAP_VNET_HDR_LEN;

	t->fd = -1;
	t->offloads = 0;
	if (name == NULL || name[0] == '\0' || strlen(name) >= IFNAMSIZ)
		return kiln_error_set(err, EINVAL,
				      "TAP name `%s`: 1 to %d characters",
				      name ? name : "", IFNAMSIZ - 1);
	strcpy(t->name, name);
	/* TUNSETIFF would create a missing TAP when we may: we never do */
	if (if_nametoindex(name) == 0)
		return kiln_error_set(err, ENODEV, "TAP `%s` does not exist",
				      name);
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0)
		return kiln_error_set(err, errno, "TAP `%s`: open /dev/net/tun",
				      name);
	strcpy(ifr.ifr_name, name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (multi_queue)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		kiln_error_set(err, errno,
			       "TAP `%s`: attach (TUNSETIFF; is it a %s TAP, "
			       "free, and ours to use?)",
			       name,
			       multi_queue ? "multi-queue" : "single-queue");
		goto fail;
	}
	/* it vanished between the two checks and TUNSETIFF made a new one */
	if (ioctl(t->fd, TUNGETIFF, &ifr) < 0 ||
	    !(ifr.ifr_flags & IFF_PERSIST)) {
		kiln_error_set(err, ENODEV, "TAP `%s` does not exist", name);
		goto fail;
	}
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		kiln_error_set(err, errno, "TAP `%s`: TUNSETVNETHDRSZ %d", name,
			       hdr);
		goto fail;
	}
	for (unsigned int i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)probes[i]) ==
		    0) {
			t->offloads = probes[i];
			break;
		}
	}
	if (ioctl(t->fd, TUNSETOFFLOAD, 0UL) < 0) {
		kiln_error_set(err, errno, "TAP `%s`: TUNSETOFFLOAD 0", name);
		goto fail;
	}
	return 0;
fail:
	close(t->fd);
	t->fd = -1;
	return -1;
}

int tap_set_offload(struct tap *t, unsigned int flags, struct kiln_error *err)
{
	if (ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)flags) < 0)
		return kiln_error_set(err, errno,
				      "TAP `%s`: TUNSETOFFLOAD 0x%x", t->name,
				      flags);
	return 0;
}

int tap_set_queue(struct tap *t, bool attach, struct kiln_error *err)
{
	struct ifreq ifr = { 0 };

	ifr.ifr_flags = attach ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	if (ioctl(t->fd, TUNSETQUEUE, &ifr) < 0)
		return kiln_error_set(err, errno, "TAP `%s`: %s a queue",
				      t->name, attach ? "attach" : "detach");
	return 0;
}

void tap_close(struct tap *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
