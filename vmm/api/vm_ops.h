/* SPDX-License-Identifier: Apache-2.0 */
/* The API's operations on a real VM: api_ctx.ops with api_ctx.vmm a vm. */
#ifndef KILN_VMM_API_VM_OPS_H
#define KILN_VMM_API_VM_OPS_H

#include <stdbool.h>

#include "api.h"

extern const struct api_ops vm_api_ops;

/* PUT /logger and --config-file's "logger": NULL path, level < 0 keep. */
int vm_ops_apply_logger(const char *path, int level, bool show_level,
			bool show_origin, struct kiln_error *err);

/* At exit: a template stops serving (its socket is removed). */
void vm_ops_stop(void);

#endif
