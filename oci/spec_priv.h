/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files that read config.json: paths for error messages. */
#ifndef KILN_OCI_SPEC_PRIV_H
#define KILN_OCI_SPEC_PRIV_H

#include <stdio.h>
#include <yajl/yajl_tree.h>

#include "../lib/cleanup.h"
#include "../lib/json.h"
#include "spec.h"

/* A JSON path such as "linux.resources.memory.limit" */
#define OCI_PATH_MAX 256
/* Format a path into buf (cut to fit: it only ever names a field). */
const char *oci_path(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define SUBPATH(buf, ...) oci_path((buf), sizeof(buf), __VA_ARGS__)

/* Arrays in config.json longer than this are refused by name. */
#define OCI_ARRAY_MAX 4096

int oci_parse_linux(struct oci_linux *l, yajl_val v, struct kiln_error *err);
void oci_linux_free(struct oci_linux *l);

/* calloc(n, size) that also succeeds for n == 0 with a non-NULL pointer. */
void *oci_alloc_array(size_t n, size_t size, const char *path,
		      struct kiln_error *err);

#endif
