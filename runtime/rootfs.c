/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bundle's rootfs as the guest's block devices.
 *
 *  - A block device or an image file (ext4 or erofs) is attached as it
 *    is, no copy: read-write unless root.readonly.
 *  - A directory (a plain rootfs, or the overlay an engine mounted) is
 *    made into a cached erofs image (oci/layer.c: built once while the
 *    tree is unchanged) and stacked under a writable layer in the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../oci/layer.h"
#include "kiln.h"

/* "ext4", "erofs" or NULL, from the superblock's magic */
static const char *image_fstype(int fd)
{
	uint8_t b[4];

	if (pread(fd, b, 4, 1024) == 4 &&
	    (b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24) == 0xE0F5E1E2u)
		return "erofs";
	if (pread(fd, b, 2, 1080) == 2 && (b[0] | b[1] << 8) == 0xEF53)
		return "ext4";
	return NULL;
}

char *rootfs_path(const struct oci_spec *spec, const char *bundle,
		  struct kiln_error *err)
{
	char *p = NULL;

	if (spec->root_path == NULL) {
		kiln_error_set(err, 0, "root.path: missing");
		return NULL;
	}
	if (spec->root_path[0] == '/')
		p = strdup(spec->root_path);
	else if (asprintf(&p, "%s/%s", bundle, spec->root_path) < 0)
		p = NULL;
	if (p == NULL)
		kiln_error_set(err, ENOMEM, "root.path");
	return p;
}

int rootfs_plan(struct agent_request *r, const struct oci_spec *spec,
		const char *rootfs, struct vm_plan *plan,
		const char *cache_dir, Kiln__Agent__V1__Rootfs *out,
		struct kiln_error *err)
{
	cleanup_close int fd = open(rootfs, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	cleanup_free char *image = NULL;
	char dev[16], *devp;
	struct stat st;
	bool built = false;
	uint64_t t0 = util_now_ns();

	kiln__agent__v1__rootfs__init(out);
	if (fd < 0 || fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "root.path `%s`", rootfs);
	vm_drive_name(plan->n_drives, dev);
	devp = strdup(dev);
	if (devp == NULL || r->n_owned >= REQUEST_OWNED_MAX) {
		free(devp);
		return kiln_error_set(err, ENOMEM, "rootfs");
	}
	r->owned[r->n_owned++] = devp;
	out->device = devp;
	if (S_ISBLK(st.st_mode) || S_ISREG(st.st_mode)) {
		const char *type = image_fstype(fd);

		if (type == NULL)
			return kiln_error_set(err, 0,
					      "root.path `%s`: neither a "
					      "directory nor an ext4 or erofs "
					      "image",
					      rootfs);
		out->fstype = (char *)type;
		/* erofs cannot be written: a writable layer goes on top */
		out->readonly = spec->root_readonly || strcmp(type, "erofs") == 0;
		return vm_plan_drive(plan, rootfs, out->readonly, err);
	}
	if (!S_ISDIR(st.st_mode))
		return kiln_error_set(err, 0,
				      "root.path `%s`: not a directory, "
				      "block device or image file",
				      rootfs);
	image = layer_image(cache_dir, rootfs, LAYER_MUTABLE, &built, err);
	if (image == NULL)
		return kiln_error_wrap(err, "root.path `%s`", rootfs);
	log_debug("rootfs image %s (%s) in %llu ms", image,
		  built ? "built" : "cached",
		  (unsigned long long)((util_now_ns() - t0) / 1000000));
	out->fstype = "erofs";
	out->readonly = true;
	return vm_plan_drive(plan, image, true, err);
}
