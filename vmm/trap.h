/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One trap API for port I/O and MMIO (kvmtool's kvm__register_iotrap).
 * Devices register [base, base + len) in one of the two spaces before the
 * vCPUs start; the table is read-only afterwards, so vCPU threads look it
 * up without a lock. Handlers run on the vCPU thread that exited and must
 * do their own locking.
 */
#ifndef KILN_VMM_TRAP_H
#define KILN_VMM_TRAP_H

#include <stdbool.h>
#include <stdint.h>

#include "../lib/error.h"

enum trap_space {
	TRAP_PIO,
	TRAP_MMIO
};

/*
 * offset is relative to the registered base; data has len bytes (1, 2, 4
 * or 8): the handler fills it on a read, consumes it on a write.
 */
typedef void (*trap_fn)(void *opaque, uint64_t offset, uint8_t *data,
			uint32_t len, bool is_write);

struct trap {
	uint64_t base;
	uint64_t len;
	trap_fn fn;
	void *opaque;
};

struct trap_table {
	struct trap *traps[2]; /* sorted by base, one array per space */
	unsigned int count[2];
};

int trap_register(struct trap_table *t, enum trap_space space, uint64_t base,
		  uint64_t len, trap_fn fn, void *opaque,
		  struct kiln_error *err);

/*
 * Call the handler that covers addr. Returns false when none does: the
 * caller logs (rate-limited) and, on a read, answers all ones, as an
 * unpopulated bus would.
 */
bool trap_dispatch(const struct trap_table *t, enum trap_space space,
		   uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

void trap_table_destroy(struct trap_table *t);

#endif
