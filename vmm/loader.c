/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel loader. The kernel image and the initrd are untrusted input: a
 * kiln-vmm may be handed any file as "the kernel", and a fuzzer hands it
 * worse. Every offset, size and address read from an image is checked, with
 * overflow, before it is used, and every byte reaches the guest through
 * guest_mem_ptr()/guest_mem_write(), which check the whole range again.
 */
#include "loader.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "layout.h"

#define LOADER_PAGE		 4096ULL
#define LOADER_MAX_PHDRS	 64	    /* a vmlinux has about 5 */
#define LOADER_ELF_ALIGNMENT	 0x1000000U /* what a vmlinux is linked for */
#define LOADER_ZERO_PAGE_VERSION 0x020c /* boot protocol 2.12, as PVH uses */

/* bzImage setup header fields the protocol versions add (image offsets) */
#define BZ_HDR_END_206	       0x23cU /* through cmdline_size */
#define BZ_HDR_END_210	       0x264U /* through init_size */
#define BZ_HDR_END_MAX	       (BOOT_HDR_OFFSET + sizeof(struct setup_header))
#define BZ_MIN_LEN	       0x206U /* enough to read the "HdrS" magic */
#define BZ_DEFAULT_SETUP_SECTS 4      /* what setup_sects 0 means */

/* The boot structures must not overlap each other or the EBDA. */
#define LOADER_MEMMAP_SIZE \
	(LOADER_E820_MAX * sizeof(struct hvm_memmap_table_entry))
static_assert(LAYOUT_PVH_INFO + sizeof(struct hvm_start_info) <=
		      LAYOUT_PVH_MODLIST,
	      "start_info overlaps the module list");
static_assert(LAYOUT_PVH_MODLIST + sizeof(struct hvm_modlist_entry) <=
		      LAYOUT_PVH_MEMMAP,
	      "module list overlaps the memory map");
static_assert(LAYOUT_PVH_MEMMAP + LOADER_MEMMAP_SIZE <= LAYOUT_ZERO_PAGE,
	      "PVH memory map overlaps the zero page");
static_assert(LAYOUT_ZERO_PAGE + sizeof(struct boot_params) <=
		      LAYOUT_BOOT_STACK,
	      "zero page overlaps the boot stack");
static_assert(LAYOUT_CMDLINE + LAYOUT_CMDLINE_MAX <= LAYOUT_EBDA, "cmdline");
/* low RAM, the EBDA hole, RAM up to the gap, then each region above it */
static_assert(3 + GUEST_MEM_MAX_REGIONS - 1 <= LOADER_E820_MAX, "e820");

/* What one load learns about the kernel, for the steps after it. */
struct loader_state {
	struct guest_mem *m;
	uint64_t low_end;      /* end of RAM below the MMIO gap */
	uint64_t kernel_end;   /* above all the kernel occupies or needs */
	uint64_t initrd_limit; /* the initrd must end at or below this */
	uint64_t cmdline_max;  /* longest command line the kernel takes */
	uint64_t initrd_addr;
	uint64_t initrd_size; /* 0: no initrd */
	bool bzimage;
	struct setup_header hdr; /* bzImage: the image's own setup header */
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* for printf's %llx */
static unsigned long long ull(uint64_t v)
{
	return v;
}

/* ---- ELF vmlinux ------------------------------------------------------- */

/* untrusted: kernel image */
static int elf_read_headers(const uint8_t *k, size_t klen, Elf64_Ehdr *eh,
			    Elf64_Phdr *ph, struct kiln_error *err)
{
	uint64_t table_len, table_end;

	if (klen < sizeof(*eh))
		return kiln_error_set(err, EINVAL,
				      "ELF: %zu bytes, shorter than an ELF "
				      "header",
				      klen);
	/* copied out: the image is a byte buffer with no alignment */
	memcpy(eh, k, sizeof(*eh));
	if (eh->e_ident[EI_CLASS] != ELFCLASS64)
		return kiln_error_set(err, EINVAL,
				      "ELF: not a 64-bit ELF (class %u)",
				      eh->e_ident[EI_CLASS]);
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return kiln_error_set(err, EINVAL, "ELF: not little-endian");
	if (eh->e_machine != EM_X86_64)
		return kiln_error_set(err, EINVAL,
				      "ELF: machine %u is not x86_64",
				      eh->e_machine);
	if (eh->e_type != ET_EXEC)
		return kiln_error_set(err, EINVAL,
				      "ELF: type %u is not an executable",
				      eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return kiln_error_set(err, EINVAL,
				      "ELF: program header size %u, want %zu",
				      eh->e_phentsize, sizeof(Elf64_Phdr));
	if (eh->e_phnum == 0)
		return kiln_error_set(err, EINVAL, "ELF: no program headers");
	if (eh->e_phnum > LOADER_MAX_PHDRS)
		return kiln_error_set(err, EINVAL,
				      "ELF: too many program headers (%u, "
				      "at most %u)",
				      eh->e_phnum, LOADER_MAX_PHDRS);
	table_len = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
	if (__builtin_add_overflow(eh->e_phoff, table_len, &table_end) ||
	    table_end > klen)
		return kiln_error_set(err, EINVAL,
				      "ELF: program headers at offset %#llx "
				      "run past the end of the file",
				      ull(eh->e_phoff));
	memcpy(ph, k + eh->e_phoff, table_len);
	return 0;
}

/* One program header against the file: data inside it, sizes sane. */
static int elf_check_phdr(const Elf64_Phdr *p, unsigned int i, size_t klen,
			  struct kiln_error *err)
{
	uint64_t end;

	if (p->p_offset > klen || p->p_filesz > klen - p->p_offset)
		return kiln_error_set(err, EINVAL,
				      "ELF: segment %u (%#llx bytes at %#llx) "
				      "runs past the end of the file",
				      i, ull(p->p_filesz), ull(p->p_offset));
	if (p->p_type != PT_LOAD)
		return 0;
	if (p->p_filesz > p->p_memsz)
		return kiln_error_set(err, EINVAL,
				      "ELF: segment %u: p_filesz %#llx is "
				      "larger than p_memsz %#llx",
				      i, ull(p->p_filesz), ull(p->p_memsz));
	if (__builtin_add_overflow(p->p_paddr, p->p_memsz, &end))
		return kiln_error_set(err, EINVAL,
				      "ELF: segment %u: address %#llx + "
				      "size %#llx overflows",
				      i, ull(p->p_paddr), ull(p->p_memsz));
	return 0;
}

/* Where PT_LOAD segment i lands: RAM above the boot data, not shared. */
static int elf_check_place(const struct loader_state *s, const Elf64_Phdr *ph,
			   unsigned int i, struct kiln_error *err)
{
	uint64_t start = ph[i].p_paddr, end = start + ph[i].p_memsz;

	if (start < LAYOUT_HIMEM)
		return kiln_error_set(err, EINVAL,
				      "ELF: segment %u at %#llx is below "
				      "1 MiB, where the boot structures live",
				      i, ull(start));
	if (start < LAYOUT_MMIO_GAP_END && end > LAYOUT_MMIO_GAP)
		return kiln_error_set(err, EINVAL,
				      "ELF: segment %u [%#llx, %#llx) "
				      "overlaps the MMIO gap",
				      i, ull(start), ull(end));
	if (end > s->low_end)
		return kiln_error_set(err, EINVAL,
				      "ELF: segment %u [%#llx, %#llx) is "
				      "outside guest RAM, which ends at "
				      "%#llx below the MMIO gap",
				      i, ull(start), ull(end), ull(s->low_end));
	for (unsigned int j = 0; j < i; j++) {
		const Elf64_Phdr *q = &ph[j];

		if (q->p_type == PT_LOAD && q->p_memsz != 0 &&
		    start < q->p_paddr + q->p_memsz && q->p_paddr < end)
			return kiln_error_set(err, EINVAL,
					      "ELF: segments %u and %u overlap",
					      j, i);
	}
	return 0;
}

/*
 * Check the segments against the file first, then against guest RAM and
 * each other, so that a broken file is reported as such and not as a memory
 * problem. Sets s->kernel_end.
 */
static int elf_check_segments(struct loader_state *s, const Elf64_Phdr *ph,
			      unsigned int n, size_t klen,
			      struct kiln_error *err)
{
	uint64_t total = 0, ram = s->low_end - LAYOUT_HIMEM;
	unsigned int i, nload = 0;

	for (i = 0; i < n; i++) {
		if (ph[i].p_type != PT_LOAD && ph[i].p_type != PT_NOTE)
			continue;
		if (elf_check_phdr(&ph[i], i, klen, err) < 0)
			return -1;
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (__builtin_add_overflow(total, ph[i].p_memsz, &total))
			return kiln_error_set(err, EINVAL,
					      "ELF: segment sizes overflow");
		nload++;
	}
	if (nload == 0)
		return kiln_error_set(err, EINVAL,
				      "ELF: no loadable (PT_LOAD) segment");
	if (total > ram)
		return kiln_error_set(err, E2BIG,
				      "ELF: kernel of %llu KiB is bigger than "
				      "the %llu KiB of guest RAM between 1 MiB "
				      "and the MMIO gap",
				      ull(total >> 10), ull(ram >> 10));

	s->kernel_end = LAYOUT_HIMEM;
	for (i = 0; i < n; i++) {
		if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
			continue;
		if (elf_check_place(s, ph, i, err) < 0)
			return -1;
		if (ph[i].p_paddr + ph[i].p_memsz > s->kernel_end)
			s->kernel_end = ph[i].p_paddr + ph[i].p_memsz;
	}
	return 0;
}

/* What the ELF notes say about how the kernel wants to be entered. */
struct elf_notes {
	bool pvh;	    /* XEN_ELFNOTE_PHYS32_ENTRY seen: pvh_entry set */
	bool is_linux;	    /* a "Linux" note: the image is a Linux vmlinux */
	uint64_t pvh_entry; /* from the first PVH note */
};

/*
 * The notes of one PT_NOTE segment (len bytes at p, padded to a), added to
 * *out; -1 when a note is malformed.
 */
static int elf_scan_notes(const uint8_t *p, uint64_t len, uint64_t a,
			  unsigned int seg, struct elf_notes *out,
			  struct kiln_error *err)
{
	uint64_t pos = 0, name_len, desc_len;
	const uint8_t *desc;
	Elf64_Nhdr nh;
	uint32_t v32;

	while (len - pos >= sizeof(nh)) {
		memcpy(&nh, p + pos, sizeof(nh));
		pos += sizeof(nh);
		/* 64-bit sums: a 32-bit size near 4 GiB must not wrap */
		name_len = align_up(nh.n_namesz, a);
		desc_len = align_up(nh.n_descsz, a);
		if (name_len > len - pos || desc_len > len - pos - name_len)
			return kiln_error_set(err, EINVAL,
					      "ELF: a note runs past the end "
					      "of segment %u",
					      seg);
		desc = p + pos + name_len;
		if (nh.n_namesz == 6 && memcmp(p + pos, "Linux", 6) == 0)
			out->is_linux = true;
		pos += name_len + desc_len;
		if (out->pvh || nh.n_type != XEN_ELFNOTE_PHYS32_ENTRY ||
		    nh.n_namesz != 4 || memcmp(desc - name_len, "Xen", 4) != 0)
			continue;
		if (nh.n_descsz == 4) {
			memcpy(&v32, desc, 4);
			out->pvh_entry = v32;
		} else if (nh.n_descsz == 8) {
			memcpy(&out->pvh_entry, desc, 8);
		} else {
			return kiln_error_set(err, EINVAL,
					      "ELF: PVH entry note has a "
					      "%u-byte "
					      "value, want 4 or 8",
					      nh.n_descsz);
		}
		out->pvh = true;
	}
	return 0;
}

/* The notes of every PT_NOTE segment; the PVH entry is the first one's. */
static int elf_find_notes(const uint8_t *k, const Elf64_Phdr *ph,
			  unsigned int n, struct elf_notes *out,
			  struct kiln_error *err)
{
	for (unsigned int i = 0; i < n; i++) {
		if (ph[i].p_type != PT_NOTE)
			continue;
		/* untrusted: kernel image, bounds checked by elf_check_phdr */
		if (elf_scan_notes(k + ph[i].p_offset, ph[i].p_filesz,
				   ph[i].p_align == 8 ? 8 : 4, i, out, err) < 0)
			return -1;
	}
	return 0;
}

static bool elf_addr_loaded(const Elf64_Phdr *ph, unsigned int n, uint64_t a)
{
	for (unsigned int i = 0; i < n; i++)
		if (ph[i].p_type == PT_LOAD && a >= ph[i].p_paddr &&
		    a - ph[i].p_paddr < ph[i].p_memsz)
			return true;
	return false;
}

static int elf_load(struct loader_state *s, const uint8_t *k, size_t klen,
		    struct boot_entry *out, struct kiln_error *err)
{
	Elf64_Phdr ph[LOADER_MAX_PHDRS];
	struct elf_notes notes = { 0 };
	Elf64_Ehdr eh;
	unsigned int i;
	bool pvh;

	if (elf_read_headers(k, klen, &eh, ph, err) < 0 ||
	    elf_check_segments(s, ph, eh.e_phnum, klen, err) < 0 ||
	    elf_find_notes(k, ph, eh.e_phnum, &notes, err) < 0)
		return -1;
	/*
	 * A Linux vmlinux enters at e_entry (startup_64) through the 64-bit
	 * boot protocol even when it has a PVH note, as Firecracker boots
	 * it: Linux's PVH entry (xen_prepare_pvh) looks for Xen's CPUID
	 * leaves at every 0x100 from 0x40000000 up to 0x40010000, 256 CPUID
	 * exits, a fifth of those of a boot that do not grow with its run time.
	 * PVH stays for other ELF kernels that carry the note.
	 */
	pvh = notes.pvh &&
	      !(notes.is_linux && elf_addr_loaded(ph, eh.e_phnum, eh.e_entry));
	if (pvh) {
		/* the PVH entry runs in 32-bit mode: EIP cannot hold more */
		if (notes.pvh_entry > UINT32_MAX)
			return kiln_error_set(err, EINVAL,
					      "ELF: PVH entry point %#llx is "
					      "above 4 GiB",
					      ull(notes.pvh_entry));
		*out = (struct boot_entry){ BOOT_PVH, notes.pvh_entry,
					    LAYOUT_PVH_INFO };
	} else {
		*out = (struct boot_entry){ BOOT_LINUX64, eh.e_entry,
					    LAYOUT_ZERO_PAGE };
	}
	if (!elf_addr_loaded(ph, eh.e_phnum, out->entry))
		return kiln_error_set(err, EINVAL,
				      "ELF: %s entry point %#llx is not inside "
				      "any loaded segment",
				      pvh ? "PVH" : "kernel", ull(out->entry));

	for (i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		uint8_t *dst;

		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		dst = guest_mem_ptr(s->m, p->p_paddr, p->p_memsz);
		if (dst == NULL)
			return kiln_error_set(err, EFAULT,
					      "ELF: segment %u is not RAM", i);
		memcpy(dst, k + p->p_offset, p->p_filesz);
		/* memory may be reused: the bss must read as zero */
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
	}
	s->initrd_limit = s->low_end;
	s->cmdline_max = LAYOUT_CMDLINE_MAX - 1;
	return 0;
}

/* ---- bzImage ------------------------------------------------------------- */

/*
 * Where the decompressor runs: the load address aligned up to
 * kernel_alignment when relocatable, pref_address when not (boot.rst).
 */
static int bzimage_run_addr(const struct setup_header *h, uint64_t load,
			    uint64_t *run, struct kiln_error *err)
{
	uint32_t a = h->kernel_alignment;

	if (h->relocatable_kernel) {
		if (a == 0 || (a & (a - 1)) != 0)
			return kiln_error_set(err, EINVAL,
					      "bzImage: kernel_alignment %#x "
					      "is not a power of two",
					      a);
		*run = align_up(load, a);
		return 0;
	}
	*run = load;
	if (h->version >= 0x20a && h->pref_address != 0)
		*run = h->pref_address;
	if (*run < LAYOUT_HIMEM)
		return kiln_error_set(err, EINVAL,
				      "bzImage: non-relocatable kernel wants "
				      "to run at %#llx, below 1 MiB",
				      ull(*run));
	return 0;
}

/* untrusted: kernel image; klen >= BZ_MIN_LEN and "HdrS" checked by caller */
static int bzimage_load(struct loader_state *s, const uint8_t *k, size_t klen,
			struct boot_entry *out, struct kiln_error *err)
{
	const uint64_t load = LAYOUT_HIMEM;
	struct setup_header *h = &s->hdr;
	uint64_t ksize, ram, run = 0, init_end, need_end, init_size = 0;
	size_t hdr_end, need, setup_size;
	unsigned int sects;

	/* the header's own length: its jump instruction skips over it */
	hdr_end = 0x202 + (size_t)k[0x201];
	if (hdr_end > klen)
		return kiln_error_set(err, EINVAL,
				      "truncated bzImage: setup header ends "
				      "at %#zx, past the end of the file (%zu "
				      "bytes)",
				      hdr_end, klen);
	memset(h, 0, sizeof(*h));
	memcpy(h, k + BOOT_HDR_OFFSET,
	       (hdr_end < BZ_HDR_END_MAX ? hdr_end : BZ_HDR_END_MAX) -
		       BOOT_HDR_OFFSET);
	if (h->version < 0x206)
		return kiln_error_set(err, EINVAL,
				      "bzImage: boot protocol %u.%02u is too "
				      "old, need 2.06 or later",
				      h->version >> 8, h->version & 0xff);
	need = h->version >= 0x20a ? BZ_HDR_END_210 : BZ_HDR_END_206;
	if (hdr_end < need)
		return kiln_error_set(err, EINVAL,
				      "bzImage: setup header ends at %#zx, too "
				      "short for boot protocol %u.%02u",
				      hdr_end, h->version >> 8,
				      h->version & 0xff);
	if (h->boot_flag != BOOT_FLAG_MAGIC)
		return kiln_error_set(err, EINVAL,
				      "bzImage: boot_flag is %#x, not 0xaa55",
				      h->boot_flag);
	if (!(h->loadflags & BOOT_LOADED_HIGH))
		return kiln_error_set(err, EINVAL,
				      "bzImage: a zImage (LOADED_HIGH not set) "
				      "cannot be booted");
	if (!(h->xloadflags & BOOT_XLF_KERNEL_64))
		return kiln_error_set(err, EINVAL,
				      "bzImage: kernel is not 64-bit capable "
				      "(XLF_KERNEL_64 not set in xloadflags)");

	sects = h->setup_sects ? h->setup_sects : BZ_DEFAULT_SETUP_SECTS;
	setup_size = ((size_t)sects + 1) * 512;
	if (setup_size >= klen)
		return kiln_error_set(err, EINVAL,
				      "truncated bzImage: %u setup sectors "
				      "(%zu bytes) but the file has %zu bytes",
				      sects, setup_size, klen);
	ksize = klen - setup_size;
	if ((uint64_t)h->syssize * 16 > ksize)
		return kiln_error_set(err, EINVAL,
				      "truncated bzImage: header says %llu "
				      "bytes of kernel, the file has %llu",
				      ull((uint64_t)h->syssize * 16),
				      ull(ksize));
	ram = s->low_end - load;
	if (ksize > ram)
		return kiln_error_set(err, E2BIG,
				      "bzImage: kernel of %llu KiB is bigger "
				      "than the %llu KiB of guest RAM between "
				      "1 MiB and the MMIO gap",
				      ull(ksize >> 10), ull(ram >> 10));

	/*
	 * We load at 1 MiB as QEMU and kvmtool do. The decompressor then
	 * needs init_size bytes from where it runs; all of that must be RAM,
	 * and the initrd must stay above it.
	 */
	if (bzimage_run_addr(h, load, &run, err) < 0)
		return -1;
	if (h->version >= 0x20a)
		init_size = h->init_size;
	if (__builtin_add_overflow(run, init_size, &init_end))
		return kiln_error_set(err, EINVAL,
				      "bzImage: run address %#llx + init_size "
				      "%#llx overflows",
				      ull(run), ull(init_size));
	need_end = load + ksize > init_end ? load + ksize : init_end;
	if (need_end > s->low_end)
		return kiln_error_set(err, E2BIG,
				      "bzImage: kernel needs guest RAM up to "
				      "%#llx (init_size %#llx from %#llx) but "
				      "RAM below the MMIO gap ends at %#llx",
				      ull(need_end), ull(init_size), ull(run),
				      ull(s->low_end));
	if (guest_mem_write(s->m, load, k + setup_size, ksize, err) < 0)
		return -1;

	s->bzimage = true;
	s->kernel_end = need_end;
	/* initrd_addr_max is the last byte the initrd may occupy */
	s->initrd_limit = min_u64((uint64_t)h->initrd_addr_max + 1, s->low_end);
	s->cmdline_max = min_u64(h->cmdline_size, LAYOUT_CMDLINE_MAX - 1);
	*out = (struct boot_entry){ BOOT_LINUX64,
				    load + BOOT_64BIT_ENTRY_OFFSET,
				    LAYOUT_ZERO_PAGE };
	return 0;
}

/* ---- initrd, command line, memory map ---------------------------------- */

/* As high as the kernel allows, page aligned, above all the kernel needs. */
static int loader_place_initrd(struct loader_state *s, const uint8_t *initrd,
			       size_t ilen, struct kiln_error *err)
{
	uint64_t lo = align_up(s->kernel_end, LOADER_PAGE), addr;

	if (ilen == 0)
		return kiln_error_set(err, EINVAL, "initrd is empty");
	if (ilen > s->initrd_limit ||
	    (addr = align_down(s->initrd_limit - ilen, LOADER_PAGE)) < lo)
		return kiln_error_set(err, E2BIG,
				      "initrd of %zu bytes does not fit in "
				      "guest RAM between the kernel's end "
				      "(%#llx) and %#llx",
				      ilen, ull(lo), ull(s->initrd_limit));
	if (guest_mem_write(s->m, addr, initrd, ilen, err) < 0)
		return -1;
	s->initrd_addr = addr;
	s->initrd_size = ilen;
	return 0;
}

static int loader_write_cmdline(struct loader_state *s, const char *cmdline,
				struct kiln_error *err)
{
	size_t len = strlen(cmdline);

	if (len > s->cmdline_max)
		return kiln_error_set(err, E2BIG,
				      "kernel command line of %zu bytes is too "
				      "long: %s takes at most %llu",
				      len,
				      s->cmdline_max < LAYOUT_CMDLINE_MAX - 1
					      ? "this kernel"
					      : "kiln",
				      ull(s->cmdline_max));
	return guest_mem_write(s->m, LAYOUT_CMDLINE, cmdline, len + 1, err);
}

/* Firecracker's shape: low RAM, the EBDA..1 MiB hole, RAM, RAM above 4 GiB. */
static unsigned int loader_e820(const struct loader_state *s,
				struct boot_e820_entry *e)
{
	unsigned int n = 0;

	e[n++] = (struct boot_e820_entry){ 0, LAYOUT_EBDA, E820_RAM };
	e[n++] = (struct boot_e820_entry){ LAYOUT_EBDA,
					   LAYOUT_HIMEM - LAYOUT_EBDA,
					   E820_RESERVED };
	e[n++] = (struct boot_e820_entry){ LAYOUT_HIMEM,
					   s->low_end - LAYOUT_HIMEM,
					   E820_RAM };
	for (unsigned int i = 1; i < s->m->nregions; i++)
		e[n++] = (struct boot_e820_entry){ s->m->regions[i].gpa,
						   s->m->regions[i].size,
						   E820_RAM };
	return n;
}

static int loader_write_zero_page(const struct loader_state *s,
				  struct kiln_error *err)
{
	struct boot_params *bp;
	unsigned int n;

	bp = guest_mem_ptr(s->m, LAYOUT_ZERO_PAGE, sizeof(*bp));
	if (bp == NULL)
		return kiln_error_set(err, EFAULT, "zero page is not in RAM");
	/* everything we do not set must be zero (boot.rst, "sentinel") */
	memset(bp, 0, sizeof(*bp));
	if (s->bzimage) {
		bp->hdr = s->hdr;
		/* ours to fill, and we pass no setup_data list */
		bp->hdr.setup_data = 0;
	} else {
		/* a vmlinux has no header: give the fields Linux looks at */
		bp->hdr.boot_flag = BOOT_FLAG_MAGIC;
		bp->hdr.header = BOOT_HDR_MAGIC;
		bp->hdr.version = LOADER_ZERO_PAGE_VERSION;
		bp->hdr.kernel_alignment = LOADER_ELF_ALIGNMENT;
		bp->hdr.cmdline_size = LAYOUT_CMDLINE_MAX - 1;
	}
	bp->hdr.type_of_loader = BOOT_LOADER_UNDEFINED;
	bp->hdr.cmd_line_ptr = LAYOUT_CMDLINE;
	/* both below 4 GiB: the ext_ high halves stay zero */
	bp->hdr.ramdisk_image = (uint32_t)s->initrd_addr;
	bp->hdr.ramdisk_size = (uint32_t)s->initrd_size;
	n = loader_e820(s, bp->e820_table);
	bp->e820_entries = (uint8_t)n;
	return 0;
}

static int loader_write_pvh(const struct loader_state *s,
			    struct kiln_error *err)
{
	struct hvm_memmap_table_entry mm[LOADER_E820_MAX] = { 0 };
	struct boot_e820_entry e[LOADER_E820_MAX];
	struct hvm_modlist_entry mod = { 0 };
	struct hvm_start_info si = { 0 };
	unsigned int i, n = loader_e820(s, e);

	for (i = 0; i < n; i++) {
		mm[i].addr = e[i].addr;
		mm[i].size = e[i].size;
		mm[i].type = e[i].type == E820_RAM ? HVM_MEMMAP_TYPE_RAM
						   : HVM_MEMMAP_TYPE_RESERVED;
	}
	si.magic = HVM_START_MAGIC;
	si.version = HVM_START_VERSION;
	si.cmdline_paddr = LAYOUT_CMDLINE;
	si.memmap_paddr = LAYOUT_PVH_MEMMAP;
	si.memmap_entries = n;
	if (s->initrd_size != 0) {
		/* Linux takes the first module as its initrd */
		mod.paddr = s->initrd_addr;
		mod.size = s->initrd_size;
		si.nr_modules = 1;
		si.modlist_paddr = LAYOUT_PVH_MODLIST;
	}
	if (guest_mem_write(s->m, LAYOUT_PVH_MODLIST, &mod, sizeof(mod), err))
		return -1;
	if (guest_mem_write(s->m, LAYOUT_PVH_MEMMAP, mm, n * sizeof(mm[0]),
			    err))
		return -1;
	return guest_mem_write(s->m, LAYOUT_PVH_INFO, &si, sizeof(si), err);
}

/* ---- entry points -------------------------------------------------------- */

int loader_load_buf(struct guest_mem *m, const uint8_t *kernel, size_t klen,
		    const uint8_t *initrd, size_t ilen, const char *cmdline,
		    struct boot_entry *out, struct kiln_error *err)
{
	struct loader_state s = { .m = m };
	struct boot_entry entry;
	uint32_t magic = 0;
	int ret;

	if (m->nregions == 0 || m->regions[0].gpa != 0 ||
	    m->regions[0].size <= LAYOUT_HIMEM)
		return kiln_error_set(err, EINVAL,
				      "guest RAM must start at 0 and reach "
				      "past 1 MiB");
	s.low_end = m->regions[0].size;

	/* untrusted: kernel image; told apart by content, not by name */
	if (klen >= BZ_MIN_LEN)
		memcpy(&magic, kernel + 0x202, sizeof(magic));
	if (klen == 0)
		ret = kiln_error_set(err, EINVAL, "kernel image is empty");
	else if (klen >= SELFMAG && memcmp(kernel, ELFMAG, SELFMAG) == 0)
		ret = elf_load(&s, kernel, klen, &entry, err);
	else if (magic == BOOT_HDR_MAGIC)
		ret = bzimage_load(&s, kernel, klen, &entry, err);
	else
		ret = kiln_error_set(err, EINVAL,
				     "not a Linux kernel: neither an ELF "
				     "vmlinux nor a bzImage (no \"HdrS\" at "
				     "0x202)");
	if (ret < 0)
		return ret;

	if (initrd != NULL && loader_place_initrd(&s, initrd, ilen, err) < 0)
		return -1;
	if (loader_write_cmdline(&s, cmdline ? cmdline : "", err) < 0)
		return -1;
	ret = entry.mode == BOOT_PVH ? loader_write_pvh(&s, err)
				     : loader_write_zero_page(&s, err);
	if (ret < 0)
		return ret;
	log_debug("kernel: %s entry %#llx, kernel end %#llx, initrd "
		  "%#llx+%#llx",
		  entry.mode == BOOT_PVH ? "PVH" : "64-bit", ull(entry.entry),
		  ull(s.kernel_end), ull(s.initrd_addr), ull(s.initrd_size));
	*out = entry;
	return 0;
}

struct loader_map {
	void *p;
	size_t len;
};

static void loader_unmapp(struct loader_map *f)
{
	if (f->p != NULL)
		munmap(f->p, f->len);
}

#define cleanup_unmap __attribute__((cleanup(loader_unmapp)))

/*
 * Map a file read-only rather than read it: a vmlinux with debug info is
 * hundreds of MiB of which only the segments are touched.
 */
static int loader_map_file(const char *what, const char *path,
			   struct loader_map *f, struct kiln_error *err)
{
	cleanup_close int fd = -1;
	struct stat st;
	void *p;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kiln_error_set(err, errno, "open %s `%s`", what, path);
	if (fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "stat %s `%s`", what, path);
	if (!S_ISREG(st.st_mode))
		return kiln_error_set(err, EINVAL, "%s `%s` is not a file",
				      what, path);
	if (st.st_size == 0)
		return kiln_error_set(err, EINVAL, "%s `%s` is empty", what,
				      path);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return kiln_error_set(err, errno, "map %s `%s`", what, path);
	f->p = p;
	f->len = (size_t)st.st_size;
	return 0;
}

int loader_load(struct guest_mem *m, const char *kernel_path,
		const char *initrd_path, const char *cmdline,
		struct boot_entry *out, struct kiln_error *err)
{
	cleanup_unmap struct loader_map kernel = { 0 };
	cleanup_unmap struct loader_map initrd = { 0 };

	if (loader_map_file("kernel", kernel_path, &kernel, err) < 0)
		return -1;
	if (initrd_path != NULL &&
	    loader_map_file("initrd", initrd_path, &initrd, err) < 0)
		return -1;
	if (loader_load_buf(m, kernel.p, kernel.len, initrd.p, initrd.len,
			    cmdline, out, err) < 0)
		return kiln_error_wrap(err, "load `%s`", kernel_path);
	return 0;
}
