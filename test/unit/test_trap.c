/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "../../vmm/trap.h"
#include "tap.h"

struct seen {
	uint64_t off;
	uint32_t len;
	bool write;
	int calls;
};

static void handler(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct seen *s = opaque;

	s->off = off;
	s->len = len;
	s->write = is_write;
	s->calls++;
	if (!is_write)
		memset(data, 0xab, len);
}

int main(void)
{
	struct trap_table t = { 0 };
	struct kiln_error err = { 0 };
	struct seen a = { 0 }, b = { 0 }, c = { 0 };
	uint8_t data[8] = { 0 };

	is_int(trap_register(&t, TRAP_PIO, 0x3f8, 8, handler, &a, &err), 0,
	       "register serial ports");
	is_int(trap_register(&t, TRAP_PIO, 0x60, 1, handler, &b, &err), 0,
	       "register a port below it");
	is_int(trap_register(&t, TRAP_PIO, 0x64, 1, handler, &b, &err), 0,
	       "register another");
	is_int(trap_register(&t, TRAP_MMIO, 0xd0000000, 0x1000, handler, &c,
			     &err),
	       0, "MMIO space is separate");
	is_int(trap_register(&t, TRAP_PIO, 0x3fc, 8, handler, &c, &err), -1,
	       "overlap at the end refused");
	is_int(trap_register(&t, TRAP_PIO, 0x3f0, 9, handler, &c, &err), -1,
	       "overlap at the start refused");
	is_int(trap_register(&t, TRAP_PIO, 0x5f, 2, handler, &c, &err), -1,
	       "overlap of a one-port trap refused");
	is_int(trap_register(&t, TRAP_PIO, 0x10, 0, handler, &c, &err), -1,
	       "empty range refused");
	is_int(trap_register(&t, TRAP_MMIO, UINT64_MAX - 1, 4, handler, &c,
			     &err),
	       -1, "wrapping range refused");
	is_int(trap_register(&t, TRAP_PIO, 0x400, 8, handler, &c, &err), 0,
	       "adjacent range is fine");

	ok(trap_dispatch(&t, TRAP_PIO, 0x3fd, data, 1, false), "read "
							       "dispatched");
	ok(a.calls == 1 && a.off == 5 && !a.write && data[0] == 0xab,
	   "handler sees the offset from its base");
	ok(trap_dispatch(&t, TRAP_PIO, 0x64, data, 1, true) && b.write, "write "
									"dispat"
									"ched");
	ok(!trap_dispatch(&t, TRAP_PIO, 0x61, data, 1, false), "a hole misses");
	ok(!trap_dispatch(&t, TRAP_PIO, 0x3ff, data, 2, false), "an access "
								"running past "
								"the window "
								"misses");
	ok(!trap_dispatch(&t, TRAP_PIO, 0x0, data, 1, false), "below every "
							      "trap misses");
	ok(!trap_dispatch(&t, TRAP_PIO, 0xffff, data, 4, false), "above every "
								 "trap misses");
	ok(trap_dispatch(&t, TRAP_MMIO, 0xd0000ffc, data, 4, false) &&
		   c.off == 0xffc,
	   "last word of an MMIO window");
	ok(!trap_dispatch(&t, TRAP_MMIO, 0xd0000ffc, data, 8, false), "8 bytes "
								      "at its "
								      "last "
								      "word "
								      "miss");
	trap_table_destroy(&t);
	return tap_done();
}
