/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI
 * learns its vCPUs, its IOAPIC and how ISA IRQs reach it. Written once at
 * LAYOUT_EBDA, in the last KiB of base memory, where Linux's
 * find_smp_config() looks for the floating pointer.
 */
#ifndef KILN_VMM_MPTABLE_H
#define KILN_VMM_MPTABLE_H

#include <assert.h>
#include <stdint.h>

#include "../lib/error.h"
#include "memory.h"

#define MP_FLOATING_SIGNATURE "_MP_"
#define MP_CONFIG_SIGNATURE   "PCMP"
#define MP_SPEC_REV	      4	   /* 1.4 */
#define MP_APIC_VERSION	      0x14 /* an integrated local APIC, as KVM's */

/* entry types */
#define MP_PROCESSOR 0
#define MP_BUS	     1
#define MP_IOAPIC    2
#define MP_INTSRC    3
#define MP_LINTSRC   4

#define MP_CPU_ENABLED	 0x01
#define MP_CPU_BSP	 0x02
#define MP_IOAPIC_USABLE 0x01

/* interrupt types */
#define MP_INT	  0
#define MP_NMI	  1
#define MP_EXTINT 3

#define MP_ISA_BUS_ID 0
#define MP_ALL_LAPICS 0xff

/* Points at the configuration table; found by a scan for "_MP_". */
struct mp_floating {
	char signature[4];
	uint32_t physptr; /* the configuration table */
	uint8_t length;	  /* in 16-byte units: 1 */
	uint8_t spec_rev;
	uint8_t checksum;   /* all 16 bytes sum to 0 */
	uint8_t feature[5]; /* 0: a configuration table follows */
} __attribute__((packed));

struct mp_config {
	char signature[4];
	uint16_t length; /* header and all base entries */
	uint8_t spec_rev;
	uint8_t checksum; /* all length bytes sum to 0 */
	char oem[8];
	char product[12];
	uint32_t oem_table;
	uint16_t oem_table_size;
	uint16_t entry_count;
	uint32_t lapic_addr;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mp_cpu {
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_version;
	uint8_t flags;
	uint32_t signature; /* CPUID 1 EAX: family/model/stepping */
	uint32_t features;  /* CPUID 1 EDX */
	uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {
	uint8_t type;
	uint8_t bus_id;
	char bus_type[6];
} __attribute__((packed));

struct mp_ioapic {
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_version;
	uint8_t flags;
	uint32_t addr;
} __attribute__((packed));

/* An interrupt source to an IOAPIC pin (MP_INTSRC) or LAPIC LINTn. */
struct mp_irq {
	uint8_t type;
	uint8_t irq_type;
	uint16_t flags; /* polarity/trigger: 0 = bus default */
	uint8_t src_bus;
	uint8_t src_irq;
	uint8_t dst_apic;
	uint8_t dst_pin; /* IOAPIC pin or LINT number */
} __attribute__((packed));

static_assert(sizeof(struct mp_floating) == 16, "mp_floating");
static_assert(sizeof(struct mp_config) == 44, "mp_config");
static_assert(sizeof(struct mp_cpu) == 20, "mp_cpu");
static_assert(sizeof(struct mp_bus) == 8, "mp_bus");
static_assert(sizeof(struct mp_ioapic) == 8, "mp_ioapic");
static_assert(sizeof(struct mp_irq) == 8, "mp_irq");

/* Bytes the tables take for ncpus vCPUs, floating pointer included. */
uint64_t mptable_size(unsigned int ncpus);

/*
 * Write the floating pointer and configuration table for ncpus (1 ..
 * VM_MAX_VCPUS) vCPUs with APIC ids 0 .. ncpus-1, vCPU 0 the BSP, and one
 * IOAPIC with id ncpus at LAYOUT_IOAPIC.
 */
int mptable_write(struct guest_mem *m, unsigned int ncpus,
		  struct kiln_error *err);

#endif
