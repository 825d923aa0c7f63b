/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel loader and boot state: synthetic ELF and bzImage images built in
 * memory, each broken in one way at a time, plus the real guest kernel when
 * one has been built (skipped otherwise). Also the boot GDT, page tables and
 * boot vCPU registers from x86.c, which need no /dev/kvm.
 */
#include <elf.h>
#include <glob.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../vmm/layout.h"
#include "../../vmm/loader.h"
#include "../../vmm/memory.h"
#include "../../vmm/x86.h"
#include "tap.h"

#define MIB	 (1ULL << 20)
#define RAM_SIZE (64 * MIB)

static struct guest_mem mem;
static struct kiln_error err;

static void mem_fresh(uint64_t size)
{
	guest_mem_destroy(&mem);
	if (guest_mem_init(&mem, size, &err) < 0) {
		printf("Bail out! guest_mem_init: %s\n", err.msg);
		exit(1);
	}
}

static void *gpa(uint64_t a, uint64_t len)
{
	void *p = guest_mem_ptr(&mem, a, len);

	if (p == NULL) {
		printf("Bail out! %#llx+%#llx not in RAM\n",
		       (unsigned long long)a, (unsigned long long)len);
		exit(1);
	}
	return p;
}

static int cmdline_is(const char *cmd)
{
	return strcmp(gpa(LAYOUT_CMDLINE, strlen(cmd) + 1), cmd) == 0;
}

/* Expect rc -1 and msg in err.msg. */
static void is_err(int rc, const char *msg, const char *what)
{
	ok(rc == -1 && strstr(err.msg, msg) != NULL, "%s: \"%s\"", what,
	   rc == -1 ? err.msg : "(accepted)");
}

/* ---- synthetic ELF ------------------------------------------------------ */

#define ELF_SIZE      0x4000
#define ELF_SEG0      0x1000000ULL /* 16 MiB, where vmlinux goes */
#define ELF_SEG1      0x1400000ULL
#define ELF_PVH_ENTRY 0x1000100ULL
#define ELF_NOTE_OFF  0x3800

struct test_elf {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[3];
	uint8_t body[ELF_SIZE - sizeof(Elf64_Ehdr) - 3 * sizeof(Elf64_Phdr)];
};

static uint8_t *elf_at(struct test_elf *e, size_t off)
{
	return (uint8_t *)e + off;
}

/* Where elf_build() puts the note fields: a GNU note, then Xen's. */
#define NOTE_GNU_NAMESZ ELF_NOTE_OFF
#define NOTE_GNU_DESCSZ (ELF_NOTE_OFF + 4)
#define NOTE_XEN	(ELF_NOTE_OFF + 12 + 4 + 20)
#define NOTE_XEN_DESCSZ (NOTE_XEN + 4)
#define NOTE_XEN_VALUE	(NOTE_XEN + 12 + 4)

/* Store a little-endian value of len bytes at file offset off. */
static void elf_put(struct test_elf *e, size_t off, uint64_t v, size_t len)
{
	memcpy(elf_at(e, off), &v, len);
}

/* Append a note at *off; returns a pointer to its value. */
static uint8_t *elf_note(struct test_elf *e, size_t *off, const char *name,
			 uint32_t type, uint32_t descsz)
{
	Elf64_Nhdr nh = { (uint32_t)strlen(name) + 1, descsz, type };
	uint8_t *p = elf_at(e, *off);

	memcpy(p, &nh, sizeof(nh));
	memcpy(p + sizeof(nh), name, nh.n_namesz);
	*off += sizeof(nh) + ((nh.n_namesz + 3) & ~3U) + ((descsz + 3) & ~3U);
	return p + sizeof(nh) + ((nh.n_namesz + 3) & ~3U);
}

/*
 * Two PT_LOAD segments (the first with 0x1000 of bss) and, with pvh, a
 * PT_NOTE holding a GNU note then the Xen PVH entry note; pvh 2 adds a
 * "Linux" note after them, as a vmlinux has.
 */
static void elf_build(struct test_elf *e, int pvh)
{
	size_t off = ELF_NOTE_OFF;

	memset(e, 0, sizeof(*e));
	memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
	e->eh.e_ident[EI_CLASS] = ELFCLASS64;
	e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	e->eh.e_ident[EI_VERSION] = EV_CURRENT;
	e->eh.e_type = ET_EXEC;
	e->eh.e_machine = EM_X86_64;
	e->eh.e_version = EV_CURRENT;
	e->eh.e_entry = ELF_SEG0;
	e->eh.e_phoff = offsetof(struct test_elf, ph);
	e->eh.e_ehsize = sizeof(Elf64_Ehdr);
	e->eh.e_phentsize = sizeof(Elf64_Phdr);
	e->eh.e_phnum = pvh ? 3 : 2;
	e->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD,
				 .p_offset = 0x1000,
				 .p_paddr = ELF_SEG0,
				 .p_filesz = 0x2000,
				 .p_memsz = 0x3000,
				 .p_align = 0x1000 };
	e->ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD,
				 .p_offset = 0x3000,
				 .p_paddr = ELF_SEG1,
				 .p_filesz = 0x800,
				 .p_memsz = 0x800,
				 .p_align = 0x1000 };
	for (size_t i = 0x1000; i < 0x3800; i++)
		*elf_at(e, i) = (uint8_t)(i * 7 + 1);
	if (pvh) {
		uint64_t entry = ELF_PVH_ENTRY;

		memset(elf_note(e, &off, "GNU", 3, 20), 0x11, 20);
		memcpy(elf_note(e, &off, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, 8),
		       &entry, 8);
		if (pvh == 2) /* LINUX_ELFNOTE_BUILD_SALT */
			memset(elf_note(e, &off, "Linux", 0x100, 4), 0x22, 4);
		e->ph[2] = (Elf64_Phdr){ .p_type = PT_NOTE,
					 .p_offset = ELF_NOTE_OFF,
					 .p_filesz = off - ELF_NOTE_OFF,
					 .p_align = 4 };
	}
}

static int elf_load(struct test_elf *e, size_t len, const char *cmdline,
		    const uint8_t *initrd, size_t ilen, struct boot_entry *b)
{
	memset(&err, 0, sizeof(err));
	return loader_load_buf(&mem, (const uint8_t *)e, len, initrd, ilen,
			       cmdline, b, &err);
}

static void check_e820(const struct boot_e820_entry *e, unsigned int n,
		       uint64_t low_end, const char *what)
{
	is_int(n, 3, "%s: 3 e820 entries", what);
	ok(e[0].addr == 0 && e[0].size == LAYOUT_EBDA && e[0].type == E820_RAM,
	   "%s: e820 [0, EBDA) RAM", what);
	ok(e[1].addr == LAYOUT_EBDA &&
		   e[1].size == LAYOUT_HIMEM - LAYOUT_EBDA &&
		   e[1].type == E820_RESERVED,
	   "%s: e820 [EBDA, 1 MiB) reserved", what);
	ok(e[2].addr == LAYOUT_HIMEM && e[2].size == low_end - LAYOUT_HIMEM &&
		   e[2].type == E820_RAM,
	   "%s: e820 [1 MiB, end) RAM", what);
}

static void test_elf_pvh(void)
{
	static struct test_elf e;
	static uint8_t initrd[10000];
	const char *cmd = "console=ttyS0 reboot=k";
	struct hvm_start_info *si;
	struct hvm_modlist_entry *mod;
	struct hvm_memmap_table_entry *mm;
	struct boot_entry b;
	uint64_t want;

	mem_fresh(RAM_SIZE);
	/* dirty the bss so that the test sees it zeroed */
	memset(gpa(ELF_SEG0, 0x3000), 0xaa, 0x3000);
	memset(initrd, 0x5a, sizeof(initrd));
	elf_build(&e, 1);
	is_int(elf_load(&e, sizeof(e), cmd, initrd, sizeof(initrd), &b), 0,
	       "PVH ELF loads");
	is_int(b.mode, BOOT_PVH, "PVH note: PVH boot");
	is_int(b.entry, ELF_PVH_ENTRY, "entry from the note");
	is_int(b.arg, LAYOUT_PVH_INFO, "EBX = start_info");
	ok(memcmp(gpa(ELF_SEG0, 0x2000), elf_at(&e, 0x1000), 0x2000) == 0,
	   "segment 0 file bytes at p_paddr");
	ok(memcmp(gpa(ELF_SEG1, 0x800), elf_at(&e, 0x3000), 0x800) == 0,
	   "segment 1 file bytes at p_paddr");
	ok(*(uint8_t *)gpa(ELF_SEG0 + 0x2000, 1) == 0 &&
		   *(uint8_t *)gpa(ELF_SEG0 + 0x2fff, 1) == 0,
	   "bss zeroed");
	ok(cmdline_is(cmd), "command line at LAYOUT_CMDLINE");

	si = gpa(LAYOUT_PVH_INFO, sizeof(*si));
	is_int(si->magic, HVM_START_MAGIC, "start_info magic");
	is_int(si->version, 1, "start_info version 1");
	is_int(si->cmdline_paddr, LAYOUT_CMDLINE, "start_info cmdline");
	is_int(si->nr_modules, 1, "one module: the initrd");
	is_int(si->modlist_paddr, LAYOUT_PVH_MODLIST, "modlist address");
	is_int(si->memmap_paddr, LAYOUT_PVH_MEMMAP, "memmap address");
	is_int(si->memmap_entries, 3, "memmap: 3 entries under 3 GiB");
	mm = gpa(LAYOUT_PVH_MEMMAP, 3 * sizeof(*mm));
	ok(mm[0].addr == 0 && mm[0].size == LAYOUT_EBDA &&
		   mm[0].type == HVM_MEMMAP_TYPE_RAM,
	   "memmap [0, EBDA) RAM");
	ok(mm[1].addr == LAYOUT_EBDA && mm[1].type == HVM_MEMMAP_TYPE_RESERVED,
	   "memmap EBDA reserved");
	ok(mm[2].addr == LAYOUT_HIMEM &&
		   mm[2].size == RAM_SIZE - LAYOUT_HIMEM &&
		   mm[2].type == HVM_MEMMAP_TYPE_RAM,
	   "memmap [1 MiB, end) RAM");

	mod = gpa(LAYOUT_PVH_MODLIST, sizeof(*mod));
	want = (RAM_SIZE - sizeof(initrd)) & ~0xfffULL;
	is_int(mod->paddr, want, "initrd page aligned at the top of RAM");
	is_int(mod->size, sizeof(initrd), "initrd size");
	ok(memcmp(gpa(mod->paddr, sizeof(initrd)), initrd, sizeof(initrd)) == 0,
	   "initrd bytes");

	/* a 4-byte note value, as some kernels have */
	elf_build(&e, 1);
	{
		size_t off = ELF_NOTE_OFF;
		uint32_t v = ELF_PVH_ENTRY + 0x10;

		memcpy(elf_note(&e, &off, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, 4),
		       &v, 4);
		e.ph[2].p_filesz = off - ELF_NOTE_OFF;
	}
	mem_fresh(RAM_SIZE);
	ok(elf_load(&e, sizeof(e), "", NULL, 0, &b) == 0 &&
		   b.entry == ELF_PVH_ENTRY + 0x10,
	   "PVH note with a 32-bit value");
	si = gpa(LAYOUT_PVH_INFO, sizeof(*si));
	ok(si->nr_modules == 0 && si->modlist_paddr == 0, "no module");
}

/* A vmlinux with both notes enters at e_entry: 64-bit boot protocol. */
static void test_elf_linux_note(void)
{
	static struct test_elf e;
	struct boot_params *bp;
	struct boot_entry b;

	mem_fresh(RAM_SIZE);
	elf_build(&e, 2);
	is_int(elf_load(&e, sizeof(e), "quiet", NULL, 0, &b), 0,
	       "ELF with PVH and Linux notes loads");
	is_int(b.mode, BOOT_LINUX64, "Linux note: 64-bit boot protocol");
	is_int(b.entry, ELF_SEG0, "entry is e_entry, not the PVH note's");
	is_int(b.arg, LAYOUT_ZERO_PAGE, "RSI = zero page");
	bp = gpa(LAYOUT_ZERO_PAGE, sizeof(*bp));
	is_int(bp->hdr.header, BOOT_HDR_MAGIC, "zero page HdrS");
	is_int(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE, "cmd_line_ptr");

	/* e_entry outside the kernel: the PVH note is the way in */
	mem_fresh(RAM_SIZE);
	elf_build(&e, 2);
	e.eh.e_entry = 0x2000000;
	is_int(elf_load(&e, sizeof(e), "quiet", NULL, 0, &b), 0,
	       "Linux ELF with a stray e_entry loads");
	is_int(b.mode, BOOT_PVH, "stray e_entry: PVH");
	is_int(b.entry, ELF_PVH_ENTRY, "entry from the PVH note");

	/* a malformed note after the PVH one is still refused */
	elf_build(&e, 2);
	elf_put(&e, NOTE_XEN + 24 + 4, 0x7fffffff, 4); /* Linux's descsz */
	is_err(elf_load(&e, sizeof(e), "quiet", NULL, 0, &b),
	       "runs past the end of segment 2",
	       "a bad note after the PVH note");
}

static void test_elf_linux64(void)
{
	static struct test_elf e;
	static uint8_t initrd[5000];
	const char *cmd = "root=/dev/vda";
	struct boot_params *bp;
	struct boot_entry b;

	mem_fresh(RAM_SIZE);
	elf_build(&e, 0);
	is_int(elf_load(&e, sizeof(e), cmd, initrd, sizeof(initrd), &b), 0,
	       "ELF without PVH note loads");
	is_int(b.mode, BOOT_LINUX64, "no PVH note: 64-bit boot protocol");
	is_int(b.entry, ELF_SEG0, "entry is e_entry");
	is_int(b.arg, LAYOUT_ZERO_PAGE, "RSI = zero page");
	bp = gpa(LAYOUT_ZERO_PAGE, sizeof(*bp));
	is_int(bp->hdr.boot_flag, BOOT_FLAG_MAGIC, "zero page boot_flag");
	is_int(bp->hdr.header, BOOT_HDR_MAGIC, "zero page HdrS");
	is_int(bp->hdr.type_of_loader, 0xff, "type_of_loader 0xff");
	is_int(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE, "cmd_line_ptr");
	is_int(bp->hdr.ramdisk_image, (RAM_SIZE - sizeof(initrd)) & ~0xfffULL,
	       "ramdisk_image at the top of RAM");
	is_int(bp->hdr.ramdisk_size, sizeof(initrd), "ramdisk_size");
	check_e820(bp->e820_table, bp->e820_entries, RAM_SIZE, "ELF");
}

/* Each broken in one way; the message must name the problem. */
static void test_elf_bad(void)
{
	static struct test_elf e;
	struct boot_entry b;

	mem_fresh(RAM_SIZE);
#define BAD(setup, msg, what)                                                \
	do {                                                                 \
		elf_build(&e, 1);                                            \
		setup;                                                       \
		is_err(elf_load(&e, sizeof(e), "", NULL, 0, &b), msg, what); \
	} while (0)

	BAD(e.eh.e_ident[EI_CLASS] = ELFCLASS32, "not a 64-bit ELF", "ELF32");
	BAD(e.eh.e_ident[EI_DATA] = ELFDATA2MSB, "not little-endian",
	    "big-endian ELF");
	BAD(e.eh.e_machine = EM_AARCH64, "is not x86_64", "arm64 ELF");
	BAD(e.eh.e_type = ET_DYN, "not an executable", "ET_DYN");
	BAD(e.eh.e_phentsize = 32, "program header size", "bad e_phentsize");
	BAD(e.eh.e_phnum = 0, "no program headers", "no program headers");
	BAD(e.eh.e_phnum = 65, "too many program headers", "65 phdrs");
	BAD(e.eh.e_phnum = 0xffff, "too many program headers", "PN_XNUM");
	BAD(e.eh.e_phoff = ELF_SIZE - 8, "run past the end of the file",
	    "phdrs past EOF");
	BAD(e.eh.e_phoff = UINT64_MAX - 8, "run past the end of the file",
	    "e_phoff + table wraps");
	BAD(e.ph[1].p_filesz = 0x900, "larger than p_memsz",
	    "p_filesz > p_memsz");
	BAD(e.ph[1].p_offset = ELF_SIZE + 1, "runs past the end of the file",
	    "p_offset past EOF");
	BAD(e.ph[1].p_filesz = e.ph[1].p_memsz = ELF_SIZE,
	    "runs past the end of the file", "p_offset + p_filesz past EOF");
	BAD(e.ph[1].p_offset = UINT64_MAX - 0x10,
	    "runs past the end of the file", "p_offset + p_filesz wraps");
	BAD(e.ph[2].p_offset = ELF_SIZE - 4, "runs past the end of the file",
	    "note segment past EOF");
	BAD(e.ph[1].p_paddr = UINT64_MAX - 0x100, "overflows",
	    "p_paddr + p_memsz wraps");
	BAD((e.ph[0].p_memsz = 1ULL << 63, e.ph[1].p_memsz = 1ULL << 63,
	     e.ph[0].p_paddr = 0, e.ph[1].p_paddr = 0),
	    "segment sizes overflow", "sum of p_memsz wraps");
	BAD(e.ph[0].p_memsz = 256 * MIB, "bigger than",
	    "kernel bigger than RAM");
	BAD(e.ph[1].p_paddr = ELF_SEG0 + 0x2800, "overlap",
	    "segment over another's bss");
	BAD(e.ph[1].p_paddr = ELF_SEG0 - 0x400, "overlap",
	    "segment over another's start");
	BAD(e.ph[1].p_paddr = 0x8000, "below 1 MiB", "segment on boot data");
	BAD(e.ph[1].p_paddr = LAYOUT_EBDA, "below 1 MiB",
	    "segment on the MP table");
	BAD(e.ph[1].p_paddr = LAYOUT_MMIO_GAP - 0x400, "MMIO gap",
	    "segment across the gap start");
	BAD(e.ph[1].p_paddr = LAYOUT_IOAPIC, "MMIO gap", "segment in the gap");
	BAD(e.ph[1].p_paddr = RAM_SIZE - 0x400, "outside guest RAM",
	    "segment past the end of RAM");
	BAD(e.ph[1].p_paddr = 8ULL << 30, "outside guest RAM",
	    "segment above 4 GiB");
	BAD((e.ph[0].p_type = PT_NULL, e.ph[1].p_type = PT_NULL), "no loadable",
	    "no PT_LOAD");
	BAD(elf_put(&e, NOTE_GNU_NAMESZ, 0xfffffff0, 4),
	    "runs past the end of segment", "note namesz wraps");
	BAD(elf_put(&e, NOTE_GNU_DESCSZ, 0xffffffff, 4),
	    "runs past the end of segment", "note descsz wraps");
	BAD(elf_put(&e, NOTE_XEN_DESCSZ, 5, 4), "5-byte value",
	    "PVH note of 5 bytes");
	BAD(elf_put(&e, NOTE_XEN_VALUE, 0x100001000ULL, 8), "above 4 GiB",
	    "PVH entry above 4 GiB");
	BAD(elf_put(&e, NOTE_XEN_VALUE, 0x2000000, 8),
	    "not inside any loaded segment", "PVH entry outside the kernel");
	BAD((e.eh.e_phnum = 2, e.eh.e_entry = 0x3000000),
	    "not inside any loaded segment", "e_entry outside the kernel");
#undef BAD
	elf_build(&e, 1);
	is_err(elf_load(&e, 40, "", NULL, 0, &b), "shorter than an ELF header",
	       "truncated ELF header");
	is_err(elf_load(&e, 3, "", NULL, 0, &b), "not a Linux kernel",
	       "3 bytes");
	is_err(elf_load(&e, 0, "", NULL, 0, &b), "empty", "empty image");
}

/* ---- synthetic bzImage -------------------------------------------------- */

#define BZ_SETUP_SECTS 3
#define BZ_SETUP_SIZE  ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_KERNEL_SIZE 0x3000
#define BZ_SIZE	       (BZ_SETUP_SIZE + BZ_KERNEL_SIZE)

static uint8_t bz[BZ_SIZE];

/* What a current x86_64 kernel's header says (Debian's 6.1, trimmed). */
static void bz_default(struct setup_header *h)
{
	memset(h, 0, sizeof(*h));
	h->setup_sects = BZ_SETUP_SECTS;
	h->syssize = BZ_KERNEL_SIZE / 16;
	h->boot_flag = BOOT_FLAG_MAGIC;
	h->jump = 0x6aeb; /* jmp over the header: ends at 0x26c */
	h->header = BOOT_HDR_MAGIC;
	h->version = 0x20f;
	h->loadflags = BOOT_LOADED_HIGH;
	h->code32_start = 0x100000;
	h->initrd_addr_max = 0x7fffffff;
	h->kernel_alignment = 0x200000;
	h->relocatable_kernel = 1;
	h->xloadflags = 0x7f;
	h->cmdline_size = 2047;
	h->pref_address = 0x1000000;
	h->init_size = 8 * MIB;
}

static void bz_build(const struct setup_header *h)
{
	memset(bz, 0, sizeof(bz));
	memcpy(bz + BOOT_HDR_OFFSET, h, sizeof(*h));
	for (size_t i = BZ_SETUP_SIZE; i < BZ_SIZE; i++)
		bz[i] = (uint8_t)(i * 13 + 5);
}

static int bz_load(size_t len, const char *cmdline, const uint8_t *initrd,
		   size_t ilen, struct boot_entry *b)
{
	memset(&err, 0, sizeof(err));
	return loader_load_buf(&mem, bz, len, initrd, ilen, cmdline, b, &err);
}

static void test_bzimage(void)
{
	static uint8_t initrd[20000];
	const char *cmd = "console=ttyS0 panic=-1";
	struct setup_header h;
	struct boot_params *bp;
	struct boot_entry b;

	mem_fresh(RAM_SIZE);
	bz_default(&h);
	bz_build(&h);
	is_int(bz_load(BZ_SIZE, cmd, initrd, sizeof(initrd), &b), 0,
	       "bzImage loads");
	is_int(b.mode, BOOT_LINUX64, "bzImage: 64-bit boot protocol");
	is_int(b.entry, LAYOUT_HIMEM + 0x200,
	       "entry: startup_64 at 1 MiB + 0x200");
	is_int(b.arg, LAYOUT_ZERO_PAGE, "RSI = zero page");
	ok(memcmp(gpa(LAYOUT_HIMEM, BZ_KERNEL_SIZE), bz + BZ_SETUP_SIZE,
		  BZ_KERNEL_SIZE) == 0,
	   "protected-mode kernel at 1 MiB");
	bp = gpa(LAYOUT_ZERO_PAGE, sizeof(*bp));
	ok(memcmp(&bp->hdr.jump, &h.jump, 0x210 - 0x200) == 0 &&
		   memcmp(&bp->hdr.initrd_addr_max, &h.initrd_addr_max,
			  0x26c - 0x22c) == 0,
	   "setup header copied into the zero page");
	is_int(bp->hdr.setup_sects, BZ_SETUP_SECTS, "setup_sects copied");
	is_int(bp->hdr.version, 0x20f, "version copied");
	is_int(bp->hdr.type_of_loader, 0xff, "type_of_loader 0xff");
	is_int(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE, "cmd_line_ptr");
	is_int(bp->hdr.ramdisk_image, (RAM_SIZE - sizeof(initrd)) & ~0xfffULL,
	       "initrd at the top of RAM");
	is_int(bp->hdr.ramdisk_size, sizeof(initrd), "ramdisk_size");
	is_int(bp->ext_ramdisk_image, 0, "ext_ramdisk_image 0");
	is_int(bp->ext_cmd_line_ptr, 0, "ext_cmd_line_ptr 0");
	ok(cmdline_is(cmd), "command line bytes");
	check_e820(bp->e820_table, bp->e820_entries, RAM_SIZE, "bzImage");

	/* initrd_addr_max caps the initrd below the top of RAM */
	mem_fresh(RAM_SIZE);
	h.initrd_addr_max = 48 * MIB - 1;
	bz_build(&h);
	is_int(bz_load(BZ_SIZE, "", initrd, sizeof(initrd), &b), 0,
	       "bzImage with initrd_addr_max 48 MiB");
	bp = gpa(LAYOUT_ZERO_PAGE, sizeof(*bp));
	ok(bp->hdr.ramdisk_image == ((48 * MIB - sizeof(initrd)) & ~0xfffULL),
	   "initrd ends below initrd_addr_max");

	/* setup_sects 0 means 4 */
	mem_fresh(RAM_SIZE);
	bz_default(&h);
	h.setup_sects = 0;
	h.syssize = (BZ_SIZE - 5 * 512) / 16;
	bz_build(&h);
	ok(bz_load(BZ_SIZE, "", NULL, 0, &b) == 0 &&
		   memcmp(gpa(LAYOUT_HIMEM, 16), bz + 5 * 512, 16) == 0,
	   "setup_sects 0 is read as 4");

	/* the initrd stays above the decompressor's init_size */
	mem_fresh(RAM_SIZE);
	bz_default(&h);
	h.init_size = 40 * MIB;
	bz_build(&h);
	{
		size_t ilen = RAM_SIZE - 42 * MIB - 0x1000;
		uint8_t *big = calloc(1, ilen + 0x2000);

		ok(big != NULL && bz_load(BZ_SIZE, "", big, ilen, &b) == 0,
		   "initrd right above init_size fits");
		is_err(bz_load(BZ_SIZE, "", big, ilen + 0x2000, &b),
		       "does not fit", "initrd over init_size");
		free(big);
	}
}

static void test_bzimage_bad(void)
{
	struct setup_header h;
	struct boot_entry b;
	uint8_t *garbage;

	mem_fresh(RAM_SIZE);
#define BAD(setup, len, msg, what)                                \
	do {                                                      \
		bz_default(&h);                                   \
		setup;                                            \
		bz_build(&h);                                     \
		is_err(bz_load(len, "", NULL, 0, &b), msg, what); \
	} while (0)

	BAD(h.version = 0x205, BZ_SIZE, "too old", "protocol 2.05");
	BAD(h.xloadflags = 0, BZ_SIZE, "not 64-bit capable",
	    "no XLF_KERNEL_64");
	BAD(h.loadflags = 0, BZ_SIZE, "zImage", "zImage");
	BAD(h.boot_flag = 0, BZ_SIZE, "boot_flag", "no 0xaa55");
	BAD(h.syssize++, BZ_SIZE, "truncated bzImage: header says",
	    "syssize past EOF");
	BAD(h.syssize = 0xffffffff, BZ_SIZE, "truncated bzImage: header says",
	    "syssize huge");
	BAD(, BZ_SETUP_SIZE, "setup sectors", "file ends after the setup");
	BAD(, 1024, "setup sectors", "file ends inside the setup");
	BAD(h.setup_sects = 255, BZ_SIZE, "setup sectors",
	    "setup_sects past EOF");
	BAD(, 0x210, "past the end of the file", "file ends in the header");
	BAD(h.jump = 0x30eb, BZ_SIZE, "too short for boot protocol",
	    "header shorter than its version");
	BAD(h.kernel_alignment = 0x3000, BZ_SIZE, "not a power of two",
	    "kernel_alignment 0x3000");
	BAD(h.kernel_alignment = 0, BZ_SIZE, "not a power of two",
	    "kernel_alignment 0");
	BAD(h.init_size = 0xffffffff, BZ_SIZE, "kernel needs guest RAM up to",
	    "init_size beyond RAM");
	BAD((h.relocatable_kernel = 0, h.pref_address = 0x1000), BZ_SIZE,
	    "below 1 MiB", "non-relocatable at 4 KiB");
	BAD((h.relocatable_kernel = 0, h.pref_address = UINT64_MAX - 0x10),
	    BZ_SIZE, "overflows", "pref_address + init_size wraps");
	BAD((h.relocatable_kernel = 0, h.pref_address = 0xc0000000), BZ_SIZE,
	    "kernel needs guest RAM up to", "non-relocatable in the gap");
	BAD(h.header = 0x12345678, BZ_SIZE, "not a Linux kernel", "no HdrS");
#undef BAD

	/* command line limits: the kernel's own and kiln's */
	bz_default(&h);
	h.cmdline_size = 16;
	bz_build(&h);
	is_err(bz_load(BZ_SIZE, "console=ttyS0 quiet", NULL, 0, &b),
	       "this kernel takes at most 16", "cmdline over cmdline_size");
	is_int(bz_load(BZ_SIZE, "console=ttyS0 q", NULL, 0, &b), 0,
	       "cmdline of cmdline_size - 1 bytes");
	is_int(bz_load(BZ_SIZE, "console=ttyS0 qq", NULL, 0, &b), 0,
	       "cmdline of exactly cmdline_size bytes");

	/* a kernel bigger than RAM, in the smallest guest */
	mem_fresh(16 * MIB);
	garbage = calloc(1, 16 * MIB);
	bz_default(&h);
	h.syssize = 0;
	memcpy(garbage + BOOT_HDR_OFFSET, &h, sizeof(h));
	memset(&err, 0, sizeof(err));
	is_err(loader_load_buf(&mem, garbage, 16 * MIB, NULL, 0, "", &b, &err),
	       "bigger than", "bzImage bigger than RAM");

	/* random bytes */
	srand(1);
	for (size_t i = 0; i < 4096; i++)
		garbage[i] = (uint8_t)rand();
	is_err(loader_load_buf(&mem, garbage, 4096, NULL, 0, "", &b, &err),
	       "not a Linux kernel", "4 KiB of random bytes");
	free(garbage);
}

static void test_cmdline_initrd_limits(void)
{
	static struct test_elf e;
	char cmd[LAYOUT_CMDLINE_MAX + 1];
	struct boot_entry b;
	uint8_t *big, one = 1;

	mem_fresh(RAM_SIZE);
	elf_build(&e, 1);
	memset(cmd, 'x', sizeof(cmd));
	cmd[LAYOUT_CMDLINE_MAX - 1] = '\0';
	is_int(elf_load(&e, sizeof(e), cmd, NULL, 0, &b), 0,
	       "command line of LAYOUT_CMDLINE_MAX - 1 bytes");
	ok(*(char *)gpa(LAYOUT_CMDLINE + LAYOUT_CMDLINE_MAX - 1, 1) == '\0',
	   "command line NUL-terminated inside its area");
	cmd[LAYOUT_CMDLINE_MAX - 1] = 'x';
	cmd[LAYOUT_CMDLINE_MAX] = '\0';
	is_err(elf_load(&e, sizeof(e), cmd, NULL, 0, &b),
	       "kiln takes at most 2047", "command line of 2048 bytes");

	is_err(elf_load(&e, sizeof(e), "", &one, 0, &b), "initrd is empty",
	       "empty initrd");
	big = calloc(1, RAM_SIZE);
	is_err(elf_load(&e, sizeof(e), "", big, RAM_SIZE, &b), "does not fit",
	       "initrd as big as RAM");
	/* the kernel ends at 0x1400800, 20 MiB + 2 KiB */
	is_err(elf_load(&e, sizeof(e), "", big, RAM_SIZE - 20 * MIB, &b),
	       "does not fit", "initrd down over the kernel");
	ok(elf_load(&e, sizeof(e), "", big, RAM_SIZE - 21 * MIB, &b) == 0,
	   "initrd just above the kernel");
	free(big);

	/* RAM above 4 GiB: a fourth e820 entry; the initrd stays low */
	mem_fresh(LAYOUT_MMIO_GAP + 64 * MIB);
	elf_build(&e, 1);
	is_int(elf_load(&e, sizeof(e), "", &one, 1, &b), 0,
	       "load into 3 GiB + 64 MiB");
	{
		struct hvm_start_info *si = gpa(LAYOUT_PVH_INFO, sizeof(*si));
		struct hvm_memmap_table_entry *mm =
			gpa(LAYOUT_PVH_MEMMAP, 4 * sizeof(*mm));
		struct hvm_modlist_entry *mod =
			gpa(LAYOUT_PVH_MODLIST, sizeof(*mod));

		is_int(si->memmap_entries, 4, "memmap: 4 entries");
		ok(mm[2].size == LAYOUT_MMIO_GAP - LAYOUT_HIMEM &&
			   mm[3].addr == LAYOUT_MMIO_GAP_END &&
			   mm[3].size == 64 * MIB &&
			   mm[3].type == HVM_MEMMAP_TYPE_RAM,
		   "memmap: RAM up to the gap, RAM above 4 GiB");
		is_int(mod->paddr, LAYOUT_MMIO_GAP - 0x1000,
		       "initrd below the gap");
	}
}

/* ---- files --------------------------------------------------------------- */

static void test_files(void)
{
	static struct test_elf e;
	char kpath[] = "/tmp/kiln-test-kernel-XXXXXX";
	char ipath[] = "/tmp/kiln-test-initrd-XXXXXX";
	int kfd = mkstemp(kpath), ifd = mkstemp(ipath);
	struct boot_entry b;

	mem_fresh(RAM_SIZE);
	elf_build(&e, 1);
	ok(kfd >= 0 && ifd >= 0 && write(kfd, &e, sizeof(e)) == sizeof(e) &&
		   write(ifd, "initrd", 6) == 6,
	   "temporary kernel and initrd files");
	is_int(loader_load(&mem, kpath, ipath, "quiet", &b, &err), 0,
	       "loader_load from files");
	ok(b.mode == BOOT_PVH &&
		   memcmp(gpa((RAM_SIZE - 6) & ~0xfffULL, 6), "initrd", 6) == 0,
	   "file contents loaded");
	is_err(loader_load(&mem, "/nonexistent/vmlinux", NULL, "", &b, &err),
	       "open kernel `/nonexistent/vmlinux`", "missing kernel");
	is_err(loader_load(&mem, kpath, "/nonexistent/initrd", "", &b, &err),
	       "open initrd `/nonexistent/initrd`", "missing initrd");
	is_err(loader_load(&mem, "/tmp", NULL, "", &b, &err), "is not a file",
	       "a directory as kernel");
	ok(ftruncate(ifd, 0) == 0, "empty the initrd file");
	is_err(loader_load(&mem, kpath, ipath, "", &b, &err), "is empty",
	       "empty initrd file");
	ok(ftruncate(kfd, 50) == 0, "truncate the kernel file");
	is_err(loader_load(&mem, kpath, NULL, "", &b, &err),
	       "shorter than an ELF header", "truncated kernel file");
	ok(strstr(err.msg, kpath) != NULL, "error names the file: %s", err.msg);
	ok(ftruncate(kfd, 0) == 0, "empty the kernel file");
	is_err(loader_load(&mem, kpath, NULL, "", &b, &err), "is empty",
	       "empty kernel file");
	close(kfd);
	close(ifd);
	unlink(kpath);
	unlink(ipath);
}

/* ---- boot state from x86.c ---------------------------------------------- */

static void test_boot_state(void)
{
	struct boot_entry pvh = { BOOT_PVH, 0x1000850, LAYOUT_PVH_INFO };
	struct boot_entry l64 = { BOOT_LINUX64, 0x100200, LAYOUT_ZERO_PAGE };
	uint64_t gdt[X86_GDT_ENTRIES], *pt;
	struct kvm_sregs s;
	struct kvm_regs r;

	mem_fresh(RAM_SIZE);
	is_int(x86_setup_boot_memory(&mem, &l64, &err), 0,
	       "64-bit boot memory");
	x86_gdt_build(BOOT_LINUX64, gdt);
	ok(!memcmp(gpa(LAYOUT_GDT, sizeof(gdt)), gdt, sizeof(gdt)), "GDT");
	is_int(*(uint64_t *)gpa(LAYOUT_IDT, 8), 0, "empty IDT");
	pt = gpa(LAYOUT_PML4, 8);
	is_int(*pt, LAYOUT_PDPT | 3, "PML4[0] -> PDPT");
	pt = gpa(LAYOUT_PDPT, 32);
	ok(pt[0] == (LAYOUT_PD | 3) && pt[3] == ((LAYOUT_PD + 0x3000) | 3),
	   "PDPT[0..3] -> 4 PDs");
	pt = gpa(LAYOUT_PD, 0x4000);
	ok(pt[0] == 0x83 && pt[1] == ((2 * MIB) | 0x83) &&
		   pt[2047] == ((4096 * MIB - 2 * MIB) | 0x83),
	   "PDs map 4 GiB in 2 MiB pages");

	memset(&s, 0, sizeof(s));
	s.apic_base = 0xfee00900;
	x86_boot_sregs(&l64, &s);
	ok(s.cs.selector == 0x10 && s.cs.l == 1 && s.cs.db == 0 &&
		   s.cs.present && s.cs.s && s.cs.type == 0xb,
	   "64-bit: CS 0x10 is 64-bit code");
	ok(s.ds.selector == 0x18 && s.ss.selector == 0x18 && s.ds.type == 3 &&
		   s.ds.limit == 0xffffffff && s.ds.base == 0 && s.ds.g,
	   "64-bit: flat data 0x18");
	ok(s.tr.type == 0xb && s.tr.present && !s.tr.s, "TR is a busy TSS");
	ok(s.cr0 == 0x80000011 && s.cr3 == LAYOUT_PML4 && s.cr4 == 0x20 &&
		   s.efer == 0x500,
	   "64-bit: PE|PG, PAE, LME|LMA, CR3 = PML4");
	ok(s.gdt.base == LAYOUT_GDT && s.gdt.limit == 31 &&
		   s.idt.base == LAYOUT_IDT,
	   "GDTR/IDTR");
	is_int(s.apic_base, 0xfee00900, "apic_base left alone");
	x86_boot_regs(&l64, &r);
	ok(r.rip == 0x100200 && r.rsi == LAYOUT_ZERO_PAGE &&
		   r.rsp == LAYOUT_BOOT_STACK && r.rbp == LAYOUT_BOOT_STACK &&
		   r.rflags == 2,
	   "64-bit: RIP, RSI, RSP, RFLAGS");

	x86_boot_sregs(&pvh, &s);
	ok(s.cs.selector == 0x10 && s.cs.l == 0 && s.cs.db == 1 &&
		   s.cs.limit == 0xffffffff,
	   "PVH: CS is flat 32-bit code");
	ok(s.cr0 == 0x11 && s.cr4 == 0 && s.efer == 0, "PVH: paging off");
	x86_boot_regs(&pvh, &r);
	ok(r.rip == 0x1000850 && r.rbx == LAYOUT_PVH_INFO && r.rflags == 2,
	   "PVH: EIP, EBX = start_info");
}

/* ---- real kernels, when present ---------------------------------------- */

static void test_real_kernel(const char *path)
{
	struct boot_entry b;
	int rc;

	mem_fresh(256 * MIB);
	memset(&err, 0, sizeof(err));
	rc = loader_load(&mem, path, NULL, "console=ttyS0", &b, &err);
	ok(rc == 0, "real kernel %s loads%s%s", path, rc ? ": " : "",
	   rc ? err.msg : "");
	/* a vmlinux has a "Linux" note: startup_64, not its PVH entry */
	if (rc == 0 && strstr(path, "vmlinux") != NULL)
		is_int(b.mode, BOOT_LINUX64, "%s: 64-bit boot protocol", path);
	if (rc == 0 && b.mode == BOOT_LINUX64) {
		struct boot_params *bp = gpa(LAYOUT_ZERO_PAGE, sizeof(*bp));

		ok(bp->hdr.header == BOOT_HDR_MAGIC &&
			   bp->hdr.cmd_line_ptr == LAYOUT_CMDLINE,
		   "%s: 64-bit entry %#llx, zero page filled", path,
		   (unsigned long long)b.entry);
	} else if (rc == 0) {
		struct hvm_start_info *si = gpa(LAYOUT_PVH_INFO, sizeof(*si));

		ok(si->magic == HVM_START_MAGIC && b.entry >= LAYOUT_HIMEM,
		   "%s: PVH entry %#llx, start_info filled", path,
		   (unsigned long long)b.entry);
	}
}

static void test_real_kernels(void)
{
	const char *cache = getenv("KILN_CACHE"), *xdg, *home, *extra;
	char dir[512], pat[600];
	unsigned int found = 0;
	glob_t g;

	xdg = getenv("XDG_CACHE_HOME");
	home = getenv("HOME");
	if (cache != NULL)
		snprintf(dir, sizeof(dir), "%s", cache);
	else if (xdg != NULL)
		snprintf(dir, sizeof(dir), "%s/kiln", xdg);
	else
		snprintf(dir, sizeof(dir), "%s/.cache/kiln", home ? home : "");
	snprintf(pat, sizeof(pat), "%s/guest-kernel/*/{vmlinux,bzImage}", dir);
	if (glob(pat, GLOB_BRACE, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++, found++)
			test_real_kernel(g.gl_pathv[i]);
		globfree(&g);
	}
	/* any other kernel to try: KILN_TEST_KERNEL=path */
	extra = getenv("KILN_TEST_KERNEL");
	if (extra != NULL && *extra != '\0') {
		test_real_kernel(extra);
		found++;
	}
	if (found == 0)
		tap_skip("no guest kernel under %s/guest-kernel", dir);
}

int main(void)
{
	mem.fd = -1;
	test_elf_pvh();
	test_elf_linux_note();
	test_elf_linux64();
	test_elf_bad();
	test_bzimage();
	test_bzimage_bad();
	test_cmdline_initrd_limits();
	test_files();
	test_boot_state();
	test_real_kernels();
	guest_mem_destroy(&mem);
	return tap_done();
}
