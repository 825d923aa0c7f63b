/* SPDX-License-Identifier: Apache-2.0 */
#include <stdint.h>
#include <string.h>

#include "../../vmm/layout.h"
#include "../../vmm/memory.h"
#include "tap.h"

int main(void)
{
	struct kiln_error err = { 0 };
	struct guest_mem m;
	uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, back[8];
	uint64_t size = 64ULL << 20;

	is_int(guest_mem_init(&m, 15ULL << 20, &err), -1,
	       "under 16 MiB refused");
	is_int(guest_mem_init(&m, (16ULL << 20) + 1, &err), -1,
	       "size not a page multiple refused");

	is_int(guest_mem_init(&m, size, &err), 0, "64 MiB of guest RAM");
	is_int(m.nregions, 1, "one region below the MMIO gap");
	ok(guest_mem_ptr(&m, 0, size) == m.host, "whole RAM is addressable");
	ok(guest_mem_ptr(&m, size - 8, 8) == m.host + size - 8, "last 8 bytes");
	ok(guest_mem_ptr(&m, size - 8, 9) == NULL, "one byte past the end");
	ok(guest_mem_ptr(&m, size, 0) == NULL, "start past the end");
	ok(guest_mem_ptr(&m, UINT64_MAX - 3, 8) == NULL, "gpa + len wraps");
	ok(guest_mem_ptr(&m, 8, UINT64_MAX) == NULL, "huge len");
	ok(guest_mem_ptr(&m, LAYOUT_MMIO_GAP, 1) == NULL, "the gap is not RAM");
	is_int(guest_mem_write(&m, 0x1000, buf, 8, &err), 0, "write");
	is_int(guest_mem_read(&m, 0x1000, back, 8, &err), 0, "read");
	ok(memcmp(buf, back, 8) == 0, "read back what was written");
	is_int(guest_mem_write(&m, size - 4, buf, 8, &err), -1,
	       "write across the end refused");
	ok(strstr(err.msg, "is not RAM") != NULL, "error names it: %s",
	   err.msg);
	is_int(guest_mem_end(&m), size, "end of RAM");
	guest_mem_destroy(&m);

	/* above the gap: RAM resumes at 4 GiB; nothing is touched, so cheap */
	size = LAYOUT_MMIO_GAP + (64ULL << 20);
	is_int(guest_mem_init(&m, size, &err), 0, "3 GiB + 64 MiB of RAM");
	is_int(m.nregions, 2, "split around the gap");
	ok(guest_mem_ptr(&m, LAYOUT_MMIO_GAP - 4, 4) != NULL, "top of low RAM");
	ok(guest_mem_ptr(&m, LAYOUT_MMIO_GAP - 4, 8) == NULL, "a range "
							      "spanning the "
							      "gap is refused");
	ok(guest_mem_ptr(&m, LAYOUT_MMIO_GAP_END, 8) ==
		   m.host + LAYOUT_MMIO_GAP,
	   "4 GiB maps to the memfd right after low RAM");
	ok(guest_mem_ptr(&m, LAYOUT_MMIO_GAP_END + (64ULL << 20) - 1, 1) !=
		   NULL,
	   "last byte above 4 GiB");
	ok(guest_mem_ptr(&m, LAYOUT_MMIO_GAP_END + (64ULL << 20), 1) == NULL,
	   "past the end above 4 GiB");
	is_int(guest_mem_end(&m), LAYOUT_MMIO_GAP_END + (64ULL << 20),
	       "end of RAM above the gap");
	guest_mem_destroy(&m);
	return tap_done();
}
