/* SPDX-License-Identifier: Apache-2.0 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../vmm/layout.h"
#include "../../vmm/memory.h"
#include "tap.h"

/* The permissions of the mapping holding addr ("" when none). */
static void perms_at(const void *addr, char out[5])
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long lo, hi;
	char line[512];

	out[0] = '\0';
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, out) == 3 &&
		    (uintptr_t)addr >= lo && (uintptr_t)addr < hi)
			break;
		else
			out[0] = '\0';
	if (f != NULL)
		fclose(f);
}

/* A fork's RAM: a memfd mapped private at a 2 MiB boundary, a guard
 * page below, copy-on-write, all of it unmapped at the end. */
static void test_private(void)
{
	struct kiln_error err = { 0 };
	struct guest_mem m;
	uint64_t size = 32ULL << 20;
	int fd = memfd_create("t", MFD_CLOEXEC);
	uint8_t b = 0, *host;
	char p[5];

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    pwrite(fd, "x", 1, 3 << 20) != 1) {
		ok(0, "memfd: %m");
		return;
	}
	is_int(guest_mem_init_private(&m, fd, size, &err), 0,
	       "32 MiB mapped private");
	ok(((uintptr_t)m.host & ((2u << 20) - 1)) == 0,
	   "at a 2 MiB boundary: %p", (void *)m.host);
	perms_at(m.host - 4096, p);
	ok(strcmp(p, "---p") == 0, "a PROT_NONE page below it: %s", p);
	perms_at(m.host + size - 1, p);
	ok(strcmp(p, "rw-p") == 0, "its last byte mapped private: %s", p);
	perms_at(m.host + size, p);
	ok(strcmp(p, "rw-p") != 0, "nothing of it past the end");
	ok(m.host[3 << 20] == 'x', "the file's bytes read through it");
	m.host[3 << 20] = 'y';
	ok(pread(m.fd, &b, 1, 3 << 20) == 1 && b == 'x', "a write is the "
							 "mapping's own, not "
							 "the file's");
	host = m.host;
	guest_mem_destroy(&m);
	perms_at(host - 4096, p);
	ok(p[0] == '\0', "its guard page unmapped at the end: %s", p);
	perms_at(host, p);
	ok(p[0] == '\0', "its RAM unmapped at the end: %s", p);
}

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
	test_private();
	return tap_done();
}
