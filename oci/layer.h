/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Read-only block images of directories, built once and shared.
 *
 * Each read-only layer of a container's rootfs reaches the guest as an
 * erofs image on virtio-blk. Building one costs a read of every file, so
 * images are cached under CACHE/ by a key that changes whenever what the
 * image holds could differ:
 *  - an image layer (docker's overlay2 diff dirs, containers/storage's,
 *    containerd's snapshots) never changes once written: its key is the
 *    directory's identity (real path, device, inode, change time);
 *  - any other directory (a plain rootfs, an overlay's upper dir) may
 *    change: its key is a fingerprint of every entry's path, type, mode,
 *    owner, size, times and link target (one lstat per entry, no file is
 *    read), so an unchanged tree is reused and any change builds anew.
 * Keys are SHA-256 (lib/sha256.c), so a tree cannot be made to collide with
 * another's key and be handed someone else's image.
 *
 * Images are built by mkfs.erofs from erofs-utils (no mount needed) into
 * a temporary file and renamed into place, under the cache's lock, so
 * concurrent creates build a layer once and a killed build leaves no half
 * image that a later create could take.
 */
#ifndef KILN_OCI_LAYER_H
#define KILN_OCI_LAYER_H

#include <stdbool.h>

#include "../lib/error.h"

#define LAYER_KEY_LEN 64 /* hex digits of SHA-256 */

enum layer_kind {
	LAYER_IMMUTABLE, /* an image layer: keyed by identity */
	LAYER_MUTABLE,	 /* anything else: keyed by a fingerprint */
};

/* The cache key of dir as hex, into key[LAYER_KEY_LEN + 1]. */
int layer_key(const char *dir, enum layer_kind kind,
	      char key[LAYER_KEY_LEN + 1], struct kiln_error *err);

/*
 * The path of dir's image in cache_dir, built there first unless it is
 * already. *built tells which (for the caller's timings). The returned
 * string is the caller's to free.
 */
char *layer_image(const char *cache_dir, const char *dir, enum layer_kind kind,
		  bool *built, struct kiln_error *err);

/* The program that builds images; tests point it elsewhere. */
extern const char *layer_mkfs_erofs;

#endif
