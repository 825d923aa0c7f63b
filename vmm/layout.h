/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest-physical address map of an x86_64 kiln microVM. Everything the
 * loader, the MP table and the devices place in guest memory is named here.
 */
#ifndef KILN_VMM_LAYOUT_H
#define KILN_VMM_LAYOUT_H

/* low memory: boot structures the VMM writes before the first instruction */
#define LAYOUT_GDT	   0x500ULL  /* boot GDT, 4 entries */
#define LAYOUT_IDT	   0x520ULL  /* empty IDT */
#define LAYOUT_PVH_INFO	   0x6000ULL /* struct hvm_start_info */
#define LAYOUT_PVH_MODLIST 0x6040ULL /* one hvm_modlist_entry: the initrd */
#define LAYOUT_PVH_MEMMAP  0x6100ULL /* hvm_memmap_table_entry[] */
#define LAYOUT_ZERO_PAGE   0x7000ULL /* Linux struct boot_params */
#define LAYOUT_BOOT_STACK  0x8ff0ULL
#define LAYOUT_PML4	   0x9000ULL /* identity page tables: PML4, */
#define LAYOUT_PDPT	   0xa000ULL /* one PDPT, */
#define LAYOUT_PD	   0xb000ULL /* four PDs of 2 MiB pages (4 GiB) */
#define LAYOUT_CMDLINE	   0x20000ULL
#define LAYOUT_CMDLINE_MAX 2048ULL     /* Linux x86 COMMAND_LINE_SIZE */
#define LAYOUT_EBDA	   0x9fc00ULL  /* MP floating pointer + table */
#define LAYOUT_HIMEM	   0x100000ULL /* kernels load at 1 MiB */

/*
 * RAM is one memfd; below 4 GiB it stops at LAYOUT_MMIO_GAP and resumes
 * above 4 GiB, leaving a 1 GiB hole for the APICs and virtio-mmio devices.
 */
#define LAYOUT_MMIO_GAP		0xc0000000ULL
#define LAYOUT_MMIO_GAP_END	0x100000000ULL
#define LAYOUT_VIRTIO_MMIO	0xd0000000ULL /* one 4 KiB window per device */
#define LAYOUT_VIRTIO_MMIO_SIZE 0x1000ULL
#define LAYOUT_IOAPIC		0xfec00000ULL
#define LAYOUT_LAPIC		0xfee00000ULL

/* legacy I/O ports and IRQs */
#define LAYOUT_COM1_PORT	0x3f8
#define LAYOUT_COM1_IRQ		4
#define LAYOUT_I8042_PORT	0x60 /* data 0x60, command/status 0x64 */
#define LAYOUT_I8042_IRQ	1
#define LAYOUT_CMOS_PORT	0x70  /* index 0x70, data 0x71 */
#define LAYOUT_BOOT_TIMER_PORT	0x440 /* guest init writes BOOT_TIMER_MAGIC */
#define LAYOUT_BOOT_TIMER_MAGIC 123
#define LAYOUT_VIRTIO_IRQ_BASE	5 /* virtio devices take IRQs 5..23 */
#define LAYOUT_IRQ_MAX		23

#endif
