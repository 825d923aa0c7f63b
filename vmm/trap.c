/* SPDX-License-Identifier: Apache-2.0 */
#include "trap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int trap_register(struct trap_table *t, enum trap_space space, uint64_t base,
		  uint64_t len, trap_fn fn, void *opaque,
		  struct kiln_error *err)
{
	const char *name = space == TRAP_PIO ? "port" : "mmio";
	unsigned int n = t->count[space], i;
	uint64_t end;
	struct trap *a;

	if (len == 0 || __builtin_add_overflow(base, len, &end))
		return kiln_error_set(err, EINVAL,
				      "%s trap 0x%llx+0x%llx: bad range", name,
				      (unsigned long long)base,
				      (unsigned long long)len);
	a = t->traps[space];
	for (i = 0; i < n && a[i].base < base; i++)
		;
	/* neighbours must not overlap the new range */
	if ((i > 0 && a[i - 1].base + a[i - 1].len > base) ||
	    (i < n && a[i].base < end))
		return kiln_error_set(err, EEXIST,
				      "%s trap 0x%llx+0x%llx overlaps another "
				      "device",
				      name, (unsigned long long)base,
				      (unsigned long long)len);
	a = realloc(a, (n + 1) * sizeof(*a));
	if (a == NULL)
		return kiln_error_set(err, ENOMEM, "register %s trap", name);
	memmove(&a[i + 1], &a[i], (n - i) * sizeof(*a));
	a[i] = (struct trap){
		.base = base, .len = len, .fn = fn, .opaque = opaque
	};
	t->traps[space] = a;
	t->count[space] = n + 1;
	return 0;
}

bool trap_dispatch(const struct trap_table *t, enum trap_space space,
		   uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	const struct trap *a = t->traps[space];
	unsigned int lo = 0, hi = t->count[space];

	/* binary search for the last trap with base <= addr */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (a[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	a = &a[lo - 1];
	/* guest-controlled: the whole access must fall inside the window */
	if (addr - a->base >= a->len || len > a->len - (addr - a->base))
		return false;
	a->fn(a->opaque, addr - a->base, data, len, is_write);
	return true;
}

void trap_table_destroy(struct trap_table *t)
{
	for (unsigned int s = 0; s < 2; s++) {
		free(t->traps[s]);
		t->traps[s] = NULL;
		t->count[s] = 0;
	}
}
