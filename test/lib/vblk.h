/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A virtio-blk device under the test driver (vdriver.h), with queue 0 at
 * the given rings: what the blk and metrics unit tests both set up. Not
 * in vdriver.c, which the fuzz harnesses of other devices link without
 * virtio-blk.
 */
#ifndef KILN_TEST_VBLK_H
#define KILN_TEST_VBLK_H

#include "vdriver.h"

struct vblk_layout {
	uint64_t mem_size;
	uint64_t desc, avail, used;
	uint16_t qsize;
};

/*
 * A struct vm with one blk device for the drives specs (NULL-terminated,
 * --drive syntax), the first drive's device in use. A bad spec or no
 * memory bails out of the test; a device that refuses to start gives NULL
 * with err.
 */
struct vdrv *vblk_new(const struct vblk_layout *l, const char *const *specs,
		      struct kiln_error *err);
void vblk_free(struct vdrv *t);

#endif
