/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container's id and the files that hold its state under the runtime's
 * root (runc's --root): ROOT/ID/ is a 0700 directory, and each file in it
 * is written whole or not at all (a temporary file, fsync, rename), so a
 * reader never sees half of one, whatever was killed when.
 */
#ifndef KILN_OCI_STATE_H
#define KILN_OCI_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/error.h"

/* runc's limit is the file name's; ours leaves room for suffixes */
#define OCI_ID_MAX 200

/*
 * A container id as runc accepts it: [A-Za-z0-9_.+-]+ but not "." or
 * "..", at most OCI_ID_MAX bytes; so never one with '/'.
 */
int oci_id_check(const char *id, struct kiln_error *err);

/*
 * Write len bytes as the file name in the directory dirfd: a temporary
 * file beside it, fsync'd, then renamed over name, then the directory
 * fsync'd. mode as for open(2).
 */
int oci_write_atomic(int dirfd, const char *name, const void *buf, size_t len,
		     unsigned int mode, struct kiln_error *err);

/*
 * Create ROOT (0700, with parents) if needed and ROOT/ID as a new 0700
 * directory; an open O_DIRECTORY fd of it. EEXIST when the id is taken.
 */
int oci_state_dir_create(const char *root, const char *id,
			 struct kiln_error *err);
/* Open ROOT/ID; ENOENT (with a message naming the id) when it is not there. */
int oci_state_dir_open(const char *root, const char *id,
		       struct kiln_error *err);
/* Remove ROOT/ID and every file in it (it holds no subdirectories). */
int oci_state_dir_remove(const char *root, const char *id,
			 struct kiln_error *err);

#endif
