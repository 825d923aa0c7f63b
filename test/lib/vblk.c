/* SPDX-License-Identifier: Apache-2.0 */
#include "vblk.h"

#include <stdio.h>
#include <stdlib.h>

#include "../../vmm/virtio/blk.h"

static void bail(const struct kiln_error *err)
{
	printf("Bail out! %s\n", err->msg);
	exit(1);
}

struct vdrv *vblk_new(const struct vblk_layout *l, const char *const *specs,
		      struct kiln_error *err)
{
	struct vdrv *t = malloc(sizeof(*t));

	if (t == NULL) {
		kiln_error_set(err, 0, "allocate the test driver");
		bail(err);
	}
	vdrv_init(t);
	vdrv_queue_at(t, 0, l->desc, l->avail, l->used, l->qsize);
	t->clear_gpa = 0;
	t->clear_len = 0x10000;
	for (; *specs != NULL; specs++)
		if (vm_config_add_drive(&t->cfg, *specs, err) < 0)
			bail(err);
	if (vdrv_mem_alloc(t, l->mem_size, err) < 0)
		bail(err);
	if (vdrv_attach(t, "virtio_blk", err) < 0) {
		vblk_free(t);
		return NULL;
	}
	t->vm.devices[0] = (struct vm_device_state){ t->desc, t->state };
	t->vm.ndevices = 1;
	if (t->cfg.ndrives > 0)
		vdrv_use(t, blk_lookup(&t->vm, t->cfg.drives[0].id));
	return t;
}

void vblk_free(struct vdrv *t)
{
	vdrv_destroy(t);
	vm_config_destroy(&t->cfg);
	free(t);
}
