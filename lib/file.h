/* SPDX-License-Identifier: Apache-2.0 */
/* Whole files in and out. */
#ifndef KILN_FILE_H
#define KILN_FILE_H

#include <stddef.h>

#include "error.h"

/*
 * Read the regular file at path, at most max bytes, into a NUL-terminated
 * buffer (*len bytes before the NUL). It is opened without blocking and
 * refused unless regular, so a FIFO or device put there by someone else
 * cannot hold the caller; files whose size stat cannot tell (/proc) are
 * read to their end. EFBIG past max.
 */
char *file_read(const char *path, size_t max, size_t *len,
		struct kiln_error *err);

#endif
