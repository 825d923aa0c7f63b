/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the kernel loader (vmm/loader.c) over arbitrary bytes
 * as the kernel image (ELF vmlinux or bzImage, told apart by content), with
 * an initrd and a command line, into a fake guest memory: one host buffer
 * behind a struct guest_mem with RAM from 0 and, if the input asks, a
 * second region at 4 GiB (as a guest with more than 3 GiB has).
 *
 * Input: a 5-byte header, then the kernel image.
 *   byte 0: bit 0 adds the region above 4 GiB; bit 1 passes an initrd;
 *           bits 2-3 pick the RAM below the gap: 64, 17, 24 or 32 MiB
 *   bytes 1-2: the initrd's length in 64-byte units (little-endian)
 *   bytes 3-4: the command line's length, low 12 bits (little-endian)
 *
 * Checks beyond ASan/UBSan, when the loader accepts the image: the entry
 * point is RAM (below 4 GiB for PVH) and inside what was loaded; every
 * loaded byte of the kernel is in guest memory where the image put it (so
 * neither the initrd nor a boot structure overwrote it); the initrd sits
 * page-aligned in low RAM above 1 MiB with its bytes intact; the command
 * line reads back; the boot structure of the chosen protocol names them
 * and holds a memory map of RAM the guest has.
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/log.h"
#include "../../vmm/layout.h"
#include "../../vmm/loader.h"
#include "../../vmm/memory.h"

#define MIB	     (1ULL << 20)
#define LOW_MAX	     (64 * MIB)
#define HIGH_SIZE    (2 * MIB)
#define HDR_LEN	     5
#define INITRD_UNIT  64
#define INITRD_MAX   (0xffffU * INITRD_UNIT)
#define CMDLINE_MASK 0xfffU

static uint8_t *host;	/* LOW_MAX + HIGH_SIZE bytes of "guest RAM" */
static uint8_t *initrd; /* INITRD_MAX bytes of a pattern */
static char cmdline[CMDLINE_MASK + 1];

static const uint64_t low_sizes[4] = { 64 * MIB, 17 * MIB, 24 * MIB, 32 * MIB };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	host = malloc(LOW_MAX + HIGH_SIZE);
	initrd = malloc(INITRD_MAX);
	if (host == NULL || initrd == NULL)
		abort();
	for (size_t i = 0; i < INITRD_MAX; i++)
		initrd[i] = (uint8_t)(i * 31 + 7);
	return 0;
}

/* Guest bytes at [gpa, gpa + len), or abort: the loader said they exist. */
static const uint8_t *at(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	const uint8_t *p = guest_mem_ptr(m, gpa, len);

	if (p == NULL)
		abort();
	return p;
}

/* A memory map names RAM this guest has, low RAM first. */
static void check_map(const struct guest_mem *m, uint64_t n,
		      const uint64_t *addr, const uint64_t *size,
		      const uint32_t *ram)
{
	if (n < 3 || n > LOADER_E820_MAX)
		abort();
	for (uint64_t i = 0; i < n; i++) {
		if (ram[i] && guest_mem_ptr(m, addr[i], size[i]) == NULL)
			abort();
	}
	if (addr[2] != LAYOUT_HIMEM || addr[2] + size[2] != m->regions[0].size)
		abort();
}

/* The kernel's loaded bytes are where the image said, bss zero. */
static void check_elf(const struct guest_mem *m, const uint8_t *k,
		      const struct boot_entry *b)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	bool in = false;

	memcpy(&eh, k, sizeof(eh));
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		memcpy(&ph, k + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		const uint8_t *g = at(m, ph.p_paddr, ph.p_memsz);

		if (memcmp(g, k + ph.p_offset, ph.p_filesz) != 0)
			abort();
		for (uint64_t j = ph.p_filesz; j < ph.p_memsz; j++)
			if (g[j] != 0)
				abort();
		if (b->entry >= ph.p_paddr &&
		    b->entry - ph.p_paddr < ph.p_memsz)
			in = true;
	}
	if (!in)
		abort();
}

static void check_bzimage(const struct guest_mem *m, const uint8_t *k,
			  size_t klen, const struct boot_entry *b)
{
	unsigned int sects = k[BOOT_HDR_OFFSET] ? k[BOOT_HDR_OFFSET] : 4;
	size_t setup = ((size_t)sects + 1) * 512;

	if (b->mode != BOOT_LINUX64 || b->entry != LAYOUT_HIMEM + 0x200 ||
	    setup >= klen)
		abort();
	if (memcmp(at(m, LAYOUT_HIMEM, klen - setup), k + setup,
		   klen - setup) != 0)
		abort();
}

/*
 * The end of what a bzImage needs above 1 MiB (boot.rst): its protected-mode
 * code, and init_size from where it runs: the load address aligned up to
 * kernel_alignment if relocatable, else pref_address (2.10+) or 1 MiB.
 */
static uint64_t bz_end(const uint8_t *k, size_t klen)
{
	struct setup_header h;
	unsigned int sects = k[BOOT_HDR_OFFSET] ? k[BOOT_HDR_OFFSET] : 4;
	uint64_t end = LAYOUT_HIMEM + klen - ((size_t)sects + 1) * 512, run;

	memcpy(&h, k + BOOT_HDR_OFFSET, sizeof(h)); /* accepted: klen > 0x26c */
	run = LAYOUT_HIMEM;
	if (h.relocatable_kernel)
		run = (run + h.kernel_alignment - 1) &
		      ~(uint64_t)(h.kernel_alignment - 1);
	else if (h.version >= 0x20a && h.pref_address != 0)
		run = h.pref_address;
	if (h.version >= 0x20a && run + h.init_size > end)
		end = run + h.init_size;
	return end;
}

/* The last byte a bzImage's initrd may occupy: initrd_addr_max (2.03+). */
static uint64_t bz_initrd_max(const uint8_t *k)
{
	uint32_t v;

	memcpy(&v, k + 0x22c, sizeof(v));
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_mem m = { .host = host, .fd = -1 };
	struct kiln_error err = { 0 };
	struct boot_entry b = { 0 };
	const uint8_t *k = data + HDR_LEN;
	size_t klen, ilen, clen;
	uint64_t ird_addr, ird_size;
	bool elf, with_initrd;
	int ret;

	if (size < HDR_LEN)
		return -1;
	klen = size - HDR_LEN;
	with_initrd = data[0] & 2;
	ilen = (size_t)(data[1] | data[2] << 8) * INITRD_UNIT;
	clen = (size_t)(data[3] | data[4] << 8) & CMDLINE_MASK;
	m.regions[0] =
		(struct guest_region){ 0, low_sizes[(data[0] >> 2) & 3], 0 };
	m.nregions = 1;
	if (data[0] & 1) {
		m.regions[1] = (struct guest_region){ LAYOUT_MMIO_GAP_END,
						      HIGH_SIZE, LOW_MAX };
		m.nregions = 2;
	}
	m.size = m.regions[0].size + (m.nregions > 1 ? HIGH_SIZE : 0);
	memset(cmdline, 'c', clen);
	cmdline[clen] = '\0';
	/* libFuzzer's data is an exact-size heap copy: over-reads show */
	elf = klen >= SELFMAG && memcmp(k, ELFMAG, SELFMAG) == 0;

	ret = loader_load_buf(&m, klen ? k : NULL, klen,
			      with_initrd ? initrd : NULL, ilen, cmdline, &b,
			      &err);
#ifdef FUZZ_LOADER_VERBOSE
	fprintf(stderr, "%s\n", ret < 0 ? err.msg : "loaded");
#endif
	if (ret < 0) {
		if (err.msg[0] == '\0')
			abort(); /* every refusal says why */
		return 0;
	}
	if (ret != 0 || klen == 0)
		abort();

	/* entry: RAM, 32-bit for PVH, inside what was loaded */
	if (guest_mem_ptr(&m, b.entry, 1) == NULL)
		abort();
	if (elf)
		check_elf(&m, k, &b);
	else
		check_bzimage(&m, k, klen, &b);
	if (strcmp((const char *)at(&m, LAYOUT_CMDLINE, clen + 1), cmdline))
		abort();

	if (b.mode == BOOT_PVH) {
		const struct hvm_start_info *si;
		struct hvm_memmap_table_entry mm[LOADER_E820_MAX];
		struct hvm_modlist_entry mod;
		uint64_t a[LOADER_E820_MAX], s[LOADER_E820_MAX];
		uint32_t r[LOADER_E820_MAX];

		if (!elf || b.entry > UINT32_MAX || b.arg != LAYOUT_PVH_INFO)
			abort();
		si = (const void *)at(&m, LAYOUT_PVH_INFO, sizeof(*si));
		if (si->magic != HVM_START_MAGIC ||
		    si->cmdline_paddr != LAYOUT_CMDLINE ||
		    si->nr_modules != (with_initrd ? 1 : 0) ||
		    si->memmap_entries > LOADER_E820_MAX)
			abort();
		memcpy(mm,
		       at(&m, si->memmap_paddr,
			  si->memmap_entries * sizeof(mm[0])),
		       si->memmap_entries * sizeof(mm[0]));
		for (unsigned int i = 0; i < si->memmap_entries; i++) {
			a[i] = mm[i].addr;
			s[i] = mm[i].size;
			r[i] = mm[i].type == HVM_MEMMAP_TYPE_RAM;
		}
		check_map(&m, si->memmap_entries, a, s, r);
		memcpy(&mod, at(&m, LAYOUT_PVH_MODLIST, sizeof(mod)),
		       sizeof(mod));
		ird_addr = si->nr_modules ? mod.paddr : 0;
		ird_size = si->nr_modules ? mod.size : 0;
	} else {
		const struct boot_params *bp;
		uint64_t a[E820_MAX_ZERO_PAGE], s[E820_MAX_ZERO_PAGE];
		uint32_t r[E820_MAX_ZERO_PAGE];

		if (b.arg != LAYOUT_ZERO_PAGE)
			abort();
		bp = (const void *)at(&m, LAYOUT_ZERO_PAGE, sizeof(*bp));
		if (bp->hdr.cmd_line_ptr != LAYOUT_CMDLINE ||
		    bp->hdr.boot_flag != BOOT_FLAG_MAGIC ||
		    bp->hdr.header != BOOT_HDR_MAGIC ||
		    bp->hdr.setup_data != 0 ||
		    bp->e820_entries > LOADER_E820_MAX)
			abort();
		for (unsigned int i = 0; i < bp->e820_entries; i++) {
			a[i] = bp->e820_table[i].addr;
			s[i] = bp->e820_table[i].size;
			r[i] = bp->e820_table[i].type == E820_RAM;
		}
		check_map(&m, bp->e820_entries, a, s, r);
		ird_addr = bp->hdr.ramdisk_image;
		ird_size = bp->hdr.ramdisk_size;
		if (bp->ext_ramdisk_image || bp->ext_ramdisk_size)
			abort();
	}

	/* the initrd: whole, page aligned, in low RAM above the kernel's 1 MiB */
	if (ird_size != (with_initrd ? ilen : 0))
		abort();
	if (with_initrd) {
		if (ird_addr % 4096 || ird_addr < LAYOUT_HIMEM ||
		    ird_addr + ird_size > m.regions[0].size ||
		    memcmp(at(&m, ird_addr, ird_size), initrd, ird_size) != 0)
			abort();
		if (!elf && ird_addr < bz_end(k, klen))
			abort(); /* where the decompressor will write */
		if (!elf && ird_addr + ird_size - 1 > bz_initrd_max(k))
			abort(); /* higher than the kernel can reach */
	}
	return 0;
}
