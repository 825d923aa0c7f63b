/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x86 vCPU state before the first instruction: CPUID, MSRs, FPU, LAPIC
 * LINT pins for every vCPU; registers, segments and paging for the boot
 * vCPU; and the GDT, IDT and identity page tables that state refers to.
 *
 * The KVM ioctls live in x86_setup_vcpu(); what they set is computed by
 * the pure x86_boot_*() and x86_cpuid_patch() helpers so that it can be
 * unit-tested on a host without /dev/kvm.
 */
#ifndef KILN_VMM_X86_H
#define KILN_VMM_X86_H

#include <stdbool.h>
#include <stdint.h>

#include "../lib/error.h"
#include "loader.h"
#include "memory.h"

struct kvm_cpuid2;
struct kvm_regs;
struct kvm_ioapic_state;
struct kvm_sregs;

/*
 * The boot GDT at LAYOUT_GDT. Code and data sit where the Linux 64-bit boot
 * protocol wants them (__BOOT_CS 0x10, __BOOT_DS 0x18); PVH uses the same
 * slots with a 32-bit code segment. The TSS takes the one slot left: KVM
 * loads TR from the sregs, and Linux replaces the GDT before it reads it.
 */
#define X86_GDT_ENTRIES 4
#define X86_SEL_TSS	0x08
#define X86_SEL_CODE	0x10
#define X86_SEL_DATA	0x18

/* Page-table entry bits for the boot identity map. */
#define X86_PTE_PRESENT (1ULL << 0)
#define X86_PTE_RW	(1ULL << 1)
#define X86_PTE_PS	(1ULL << 7) /* 2 MiB page in a PD */

/* Free entries x86_cpuid_patch() needs past nent (topology sub-leaves). */
#define X86_CPUID_SPARE 8

/* The four descriptors the boot GDT holds for mode. */
void x86_gdt_build(enum boot_mode mode, uint64_t gdt[X86_GDT_ENTRIES]);

/*
 * Boot vCPU state for boot: segments, descriptor tables, control registers
 * and EFER in s (other fields, such as apic_base, are left as they were),
 * and all of r.
 */
void x86_boot_sregs(const struct boot_entry *boot, struct kvm_sregs *s);
void x86_boot_regs(const struct boot_entry *boot, struct kvm_regs *r);

/*
 * Patch KVM's supported CPUID for vCPU id of ncpus (one package, ncpus
 * cores, one thread each): APIC ids in leaves 1, 0xB, 0x1F and 0x8000001E,
 * counts in 1, 4, 0x8000001D and 0x80000008, the hypervisor bit, and TSC
 * deadline when the host's KVM emulates it. capacity is the number of
 * entries c has room for; it must exceed c->nent by X86_CPUID_SPARE.
 */
int x86_cpuid_patch(struct kvm_cpuid2 *c, unsigned int capacity,
		    unsigned int id, unsigned int ncpus, bool tsc_deadline,
		    struct kiln_error *err);

/* GDT and IDT; for BOOT_LINUX64 also page tables mapping 4 GiB 1:1. */
int x86_setup_boot_memory(struct guest_mem *m, const struct boot_entry *boot,
			  struct kiln_error *err);

/*
 * Everything a vCPU needs before KVM_RUN; boot is used (and required) only
 * for id 0, which starts at boot->entry. The in-kernel irqchip must exist.
 */
int x86_setup_vcpu(int kvm_fd, int vcpu_fd, unsigned int id, unsigned int ncpus,
		   const struct boot_entry *boot, struct kiln_error *err);

/* A cold boot's IOAPIC: pin 0 in ExtINT, unmasked (virtual wire mode B). */
void x86_ioapic_virtual_wire(struct kvm_ioapic_state *io);

/* Read the in-kernel IOAPIC, apply x86_ioapic_virtual_wire(), write it. */
int x86_setup_ioapic(int vm_fd, struct kiln_error *err);

/* KVM's supported CPUID, patched as above, set on vCPU id (restores too). */
int x86_setup_cpuid(int kvm_fd, int vcpu_fd, unsigned int id,
		    unsigned int ncpus, struct kiln_error *err);

#endif
