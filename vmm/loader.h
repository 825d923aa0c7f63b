/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel loader: puts a Linux kernel (ELF vmlinux or bzImage, told apart by
 * content), its initrd and command line into guest memory, and the boot
 * structures the chosen entry protocol wants: the zero page (struct
 * boot_params) of the Linux 64-bit boot protocol for a bzImage and for a
 * Linux vmlinux (one with a "Linux" ELF note), the PVH start_info for
 * another ELF kernel that carries the PVH ELF note.
 *
 * The ABI structs below are defined here from the documents, not from kernel
 * headers: Documentation/x86/boot.rst and zero-page.rst for boot_params, and
 * xen/include/public/arch-x86/hvm/start_info.h for PVH. Every field is
 * little-endian, which is also the host's byte order.
 */
#ifndef KILN_VMM_LOADER_H
#define KILN_VMM_LOADER_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/error.h"
#include "memory.h"

/* the boot structures are written in host byte order */
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian");

enum boot_mode {
	BOOT_PVH,     /* 32-bit protected mode, paging off, EBX = start_info */
	BOOT_LINUX64, /* long mode, identity paging, RSI = boot_params */
};

struct boot_entry {
	enum boot_mode mode;
	uint64_t entry; /* guest-physical address of the first instruction */
	uint64_t arg; /* PVH: start_info gpa (EBX); LINUX64: boot_params (RSI) */
};

/*
 * Load kernel_path (and initrd_path unless NULL) with cmdline into m, which
 * must be fresh or otherwise unused below the end of the kernel. On success
 * *out says how the boot vCPU must start.
 */
int loader_load(struct guest_mem *m, const char *kernel_path,
		const char *initrd_path, const char *cmdline,
		struct boot_entry *out, struct kiln_error *err);

/* The same from memory buffers (unit tests, fuzzing). initrd may be NULL. */
int loader_load_buf(struct guest_mem *m, const uint8_t *kernel, size_t klen,
		    const uint8_t *initrd, size_t ilen, const char *cmdline,
		    struct boot_entry *out, struct kiln_error *err);

/* ---- Linux x86 boot protocol (boot.rst) ---------------------------------- */

#define BOOT_HDR_OFFSET		0x1f1 /* setup header in image and zero page */
#define BOOT_HDR_MAGIC		0x53726448 /* "HdrS" at 0x202 */
#define BOOT_FLAG_MAGIC		0xaa55	   /* boot_flag at 0x1fe */
#define BOOT_LOADER_UNDEFINED	0xff  /* type_of_loader for unlisted loaders */
#define BOOT_64BIT_ENTRY_OFFSET 0x200 /* startup_64 from the load address */
#define BOOT_LOADED_HIGH	(1U << 0) /* loadflags: bzImage, runs at 1 MiB */
#define BOOT_XLF_KERNEL_64	(1U << 0) /* xloadflags: has the 64-bit entry */

#define E820_RAM	   1
#define E820_RESERVED	   2
#define E820_MAX_ZERO_PAGE 128
#define LOADER_E820_MAX	   4 /* what kiln's memory map ever needs */

struct setup_header {
	uint8_t setup_sects; /* 0x1f1 */
	uint16_t root_flags;
	uint32_t syssize; /* protected-mode code, 16-byte units */
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag; /* 0x1fe */
	uint16_t jump;	    /* 0x200 */
	uint32_t header;    /* 0x202 */
	uint16_t version;   /* 0x206 */
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader; /* 0x210 */
	uint8_t loadflags;	/* 0x211 */
	uint16_t setup_move_size;
	uint32_t code32_start;	/* 0x214 */
	uint32_t ramdisk_image; /* 0x218 */
	uint32_t ramdisk_size;	/* 0x21c */
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr;	    /* 0x228 */
	uint32_t initrd_addr_max;   /* 0x22c, 2.03+ */
	uint32_t kernel_alignment;  /* 0x230, 2.05+ */
	uint8_t relocatable_kernel; /* 0x234 */
	uint8_t min_alignment;
	uint16_t xloadflags;   /* 0x236, 2.12+ */
	uint32_t cmdline_size; /* 0x238, 2.06+ */
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address; /* 0x258, 2.10+ */
	uint32_t init_size;    /* 0x260, 2.10+ */
	uint32_t handover_offset;
	uint32_t kernel_info_offset; /* 0x268, 2.15+ */
} __attribute__((packed));

struct boot_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* The zero page: only the fields a loader fills are named. */
struct boot_params {
	uint8_t _pad0[0xc0];
	uint32_t ext_ramdisk_image; /* 0x0c0: high 32 bits */
	uint32_t ext_ramdisk_size;  /* 0x0c4 */
	uint32_t ext_cmd_line_ptr;  /* 0x0c8 */
	uint8_t _pad1[0x1e8 - 0xcc];
	uint8_t e820_entries; /* 0x1e8 */
	uint8_t _pad2[BOOT_HDR_OFFSET - 0x1e9];
	struct setup_header hdr; /* 0x1f1 */
	uint8_t _pad3[0x2d0 - 0x26c];
	struct boot_e820_entry e820_table[E820_MAX_ZERO_PAGE]; /* 0x2d0 */
	uint8_t _pad4[0x1000 - 0xcd0];
} __attribute__((packed));

/* The ABI offsets, from boot.rst and zero-page.rst. */
#define BOOT_ABI_OFFSET(type, field, off) \
	static_assert(offsetof(struct type, field) == (off), #type "." #field)
static_assert(sizeof(struct setup_header) == 0x26c - 0x1f1, "setup_header");
BOOT_ABI_OFFSET(setup_header, header, 0x202 - 0x1f1);
BOOT_ABI_OFFSET(setup_header, xloadflags, 0x236 - 0x1f1);
BOOT_ABI_OFFSET(setup_header, init_size, 0x260 - 0x1f1);
static_assert(sizeof(struct boot_e820_entry) == 20, "boot_e820_entry");
static_assert(sizeof(struct boot_params) == 4096, "boot_params");
BOOT_ABI_OFFSET(boot_params, ext_cmd_line_ptr, 0xc8);
BOOT_ABI_OFFSET(boot_params, e820_entries, 0x1e8);
BOOT_ABI_OFFSET(boot_params, hdr, BOOT_HDR_OFFSET);
BOOT_ABI_OFFSET(boot_params, e820_table, 0x2d0);

/* ---- PVH (Xen's HVM direct boot ABI, as Linux and Firecracker use it) ---- */

#define XEN_ELFNOTE_PHYS32_ENTRY 18	    /* in an ELF note named "Xen" */
#define HVM_START_MAGIC		 0x336ec578 /* "xEn3" with 0x80 set on the E */
#define HVM_START_VERSION	 1	    /* adds the memory map */
#define HVM_MEMMAP_TYPE_RAM	 1
#define HVM_MEMMAP_TYPE_RESERVED 2

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;	 /* version 1 */
	uint32_t memmap_entries; /* version 1 */
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info");
BOOT_ABI_OFFSET(hvm_start_info, memmap_paddr, 40);
static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry");
static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "memmap entry");

#endif
