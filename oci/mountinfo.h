/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What is mounted at a path, from /proc/self/mountinfo: the runtime asks
 * whether a bundle's rootfs is an overlay of image layers (docker's
 * overlay2, podman's overlay, containerd's overlayfs snapshotter) so that
 * each read-only layer can become one cached block image.
 */
#ifndef KILN_OCI_MOUNTINFO_H
#define KILN_OCI_MOUNTINFO_H

#include <stddef.h>

#include "../lib/error.h"

#define OVERLAY_MAX_LAYERS 500 /* overlayfs' own limit */

struct overlay_layers {
	char **lower; /* top first, as in lowerdir=; absolute paths */
	size_t n_lower;
	char *upper; /* NULL: a read-only overlay */
	char *work;
};

/*
 * The overlay mounted at path (the topmost mount there), read from the
 * mountinfo text. 0 with *out filled; 1 when path is no mount point or
 * not an overlay; -1 when it is one we cannot use (relative layer paths,
 * as docker writes when its mount data is too long), with err saying so:
 * the caller then treats path as a plain directory.
 */
int overlay_layers_parse(const char *mountinfo, const char *path,
			 struct overlay_layers *out, struct kiln_error *err);
/* The same from /proc/self/mountinfo. */
int overlay_layers_at(const char *path, struct overlay_layers *out,
		      struct kiln_error *err);
void overlay_layers_free(struct overlay_layers *l);

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
void mountinfo_unescape(char *s);

#endif
