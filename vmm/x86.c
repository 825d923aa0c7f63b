/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x86 vCPU setup, after Firecracker's arch/x86_64/{regs,gdt,interrupts,msr}.rs
 * and its CPUID normalization, and KVM's api.rst for the ioctls.
 */
#include "x86.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../lib/cleanup.h"
#include "config.h"
#include "layout.h"

#define X86_CR0_PE	    (1ULL << 0)
#define X86_CR0_ET	    (1ULL << 4)
#define X86_CR0_PG	    (1ULL << 31)
#define X86_CR4_PAE	    (1ULL << 5)
#define X86_EFER_LME	    (1ULL << 8)
#define X86_EFER_LMA	    (1ULL << 10)
#define X86_RFLAGS_RESERVED (1ULL << 1) /* always 1; IF stays clear */

/* descriptor flags: high nibble G/DB/L/AVL, low byte P/DPL/S/type */
#define X86_DESC_CODE64 0xa09b /* G, L, present, exec/read, accessed */
#define X86_DESC_CODE32 0xc09b /* G, D */
#define X86_DESC_DATA	0xc093 /* G, B, read/write, accessed */
#define X86_DESC_TSS	0x808b /* G, busy TSS (32-bit; 64-bit in long mode) */

#define X86_PAGE     0x1000ULL
#define X86_PD_COUNT 4 /* 4 PDs x 512 x 2 MiB = 4 GiB */

/* LAPIC registers (offsets in struct kvm_lapic_state) and delivery modes */
#define APIC_LVT0      0x350
#define APIC_LVT1      0x360
#define APIC_DM_MASK   0x700
#define APIC_DM_NMI    0x4
#define APIC_DM_EXTINT 0x7

/* IOAPIC redirection entry delivery mode */
#define X86_IOAPIC_DM_EXTINT 0x7

/* MSRs set at boot, as Firecracker's create_boot_msr_entries() */
#define MSR_IA32_TSC		0x10
#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_MTRR_DEF_TYPE	0x2ff
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102
#define MISC_ENABLE_FAST_STRING 1ULL
#define MTRR_ENABLE		(1ULL << 11)
#define MTRR_TYPE_WB		6ULL

/* CPUID bits */
#define CPUID_1_ECX_PDCM	 (1U << 15)
#define CPUID_1_ECX_TSC_DEADLINE (1U << 24)
#define CPUID_1_ECX_HYPERVISOR	 (1U << 31)
#define CPUID_1_EDX_HTT		 (1U << 28)
#define CPUID_TOPO_SMT		 1
#define CPUID_TOPO_CORE		 2
#define CPUID_EBX_INTEL		 0x756e6547 /* "Genu" */
#define CPUID_EBX_AMD		 0x68747541 /* "Auth" */
#define CPUID_EBX_HYGON		 0x6f677948 /* "Hygo": AMD's topology leaves */

/* the boot data below the command line must not overlap */
static_assert(LAYOUT_GDT + X86_GDT_ENTRIES * 8 <= LAYOUT_IDT, "GDT");
static_assert(LAYOUT_BOOT_STACK <= LAYOUT_PML4, "boot stack");
static_assert(LAYOUT_PML4 + X86_PAGE <= LAYOUT_PDPT, "PML4");
static_assert(LAYOUT_PDPT + X86_PAGE <= LAYOUT_PD, "PDPT");
static_assert(LAYOUT_PD + X86_PD_COUNT * X86_PAGE <= LAYOUT_CMDLINE, "PD");

/* ---- descriptors and boot registers (pure, unit-tested) --------------- */

static uint64_t x86_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) |
	       ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0x000f0000) << 32) |
	       ((uint64_t)(base & 0x00ffffff) << 16) | (limit & 0x0000ffff);
}

void x86_gdt_build(enum boot_mode mode, uint64_t gdt[X86_GDT_ENTRIES])
{
	gdt[0] = 0;
	gdt[X86_SEL_TSS >> 3] = x86_gdt_entry(X86_DESC_TSS, 0, 0xfffff);
	gdt[X86_SEL_CODE >> 3] = x86_gdt_entry(
		mode == BOOT_PVH ? X86_DESC_CODE32 : X86_DESC_CODE64, 0,
		0xfffff);
	gdt[X86_SEL_DATA >> 3] = x86_gdt_entry(X86_DESC_DATA, 0, 0xfffff);
}

/* KVM takes segments unpacked, with the limit in bytes. */
static void x86_segment(const uint64_t *gdt, uint16_t sel,
			struct kvm_segment *seg)
{
	uint64_t d = gdt[sel >> 3];
	uint32_t limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));

	memset(seg, 0, sizeof(*seg));
	seg->base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000);
	seg->g = (d >> 55) & 1;
	seg->limit = seg->g ? (limit << 12) | 0xfff : limit;
	seg->selector = sel;
	seg->type = (d >> 40) & 0xf;
	seg->s = (d >> 44) & 1;
	seg->dpl = (d >> 45) & 3;
	seg->present = (d >> 47) & 1;
	seg->avl = (d >> 52) & 1;
	seg->l = (d >> 53) & 1;
	seg->db = (d >> 54) & 1;
	seg->unusable = !seg->present;
}

void x86_boot_sregs(const struct boot_entry *boot, struct kvm_sregs *s)
{
	uint64_t gdt[X86_GDT_ENTRIES];

	x86_gdt_build(boot->mode, gdt);
	s->gdt.base = LAYOUT_GDT;
	s->gdt.limit = sizeof(gdt) - 1;
	s->idt.base = LAYOUT_IDT;
	s->idt.limit = sizeof(uint64_t) - 1;
	x86_segment(gdt, X86_SEL_CODE, &s->cs);
	x86_segment(gdt, X86_SEL_DATA, &s->ds);
	x86_segment(gdt, X86_SEL_DATA, &s->es);
	x86_segment(gdt, X86_SEL_DATA, &s->fs);
	x86_segment(gdt, X86_SEL_DATA, &s->gs);
	x86_segment(gdt, X86_SEL_DATA, &s->ss);
	x86_segment(gdt, X86_SEL_TSS, &s->tr);
	if (boot->mode == BOOT_PVH) {
		/* PVH ABI: protected mode, paging off, caches on */
		s->cr0 = X86_CR0_PE | X86_CR0_ET;
		s->cr3 = 0;
		s->cr4 = 0;
		s->efer = 0;
	} else {
		/* 64-bit boot protocol: long mode on the identity map */
		s->cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
		s->cr3 = LAYOUT_PML4;
		s->cr4 = X86_CR4_PAE;
		s->efer = X86_EFER_LME | X86_EFER_LMA;
	}
}

void x86_boot_regs(const struct boot_entry *boot, struct kvm_regs *r)
{
	memset(r, 0, sizeof(*r));
	r->rflags = X86_RFLAGS_RESERVED;
	r->rip = boot->entry;
	if (boot->mode == BOOT_PVH) {
		r->rbx = boot->arg;
	} else {
		r->rsi = boot->arg;
		r->rsp = LAYOUT_BOOT_STACK;
		r->rbp = LAYOUT_BOOT_STACK;
	}
}

/* ---- boot memory ------------------------------------------------------- */

static void x86_put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static int x86_write_page_tables(struct guest_mem *m, struct kiln_error *err)
{
	uint8_t *pml4 = guest_mem_ptr(m, LAYOUT_PML4, X86_PAGE);
	uint8_t *pdpt = guest_mem_ptr(m, LAYOUT_PDPT, X86_PAGE);
	uint8_t *pd = guest_mem_ptr(m, LAYOUT_PD, X86_PD_COUNT * X86_PAGE);
	unsigned int i;

	if (pml4 == NULL || pdpt == NULL || pd == NULL)
		return kiln_error_set(err, EFAULT,
				      "boot page tables are not in RAM");
	memset(pml4, 0, X86_PAGE);
	memset(pdpt, 0, X86_PAGE);
	x86_put64(pml4, LAYOUT_PDPT | X86_PTE_PRESENT | X86_PTE_RW);
	for (i = 0; i < X86_PD_COUNT; i++)
		x86_put64(pdpt + 8 * i, (LAYOUT_PD + i * X86_PAGE) |
						X86_PTE_PRESENT | X86_PTE_RW);
	/* the gap is mapped too: Linux builds its own tables before MMIO */
	for (i = 0; i < X86_PD_COUNT * 512; i++)
		x86_put64(pd + 8 * i, ((uint64_t)i << 21) | X86_PTE_PRESENT |
					      X86_PTE_RW | X86_PTE_PS);
	return 0;
}

int x86_setup_boot_memory(struct guest_mem *m, const struct boot_entry *boot,
			  struct kiln_error *err)
{
	uint64_t gdt[X86_GDT_ENTRIES], idt = 0;

	if (boot->mode != BOOT_PVH && boot->mode != BOOT_LINUX64)
		return kiln_error_set(err, EINVAL, "unknown boot mode %d",
				      (int)boot->mode);
	x86_gdt_build(boot->mode, gdt);
	if (guest_mem_write(m, LAYOUT_GDT, gdt, sizeof(gdt), err) < 0 ||
	    guest_mem_write(m, LAYOUT_IDT, &idt, sizeof(idt), err) < 0)
		return kiln_error_wrap(err, "write the boot GDT and IDT");
	if (boot->mode == BOOT_LINUX64)
		return x86_write_page_tables(m, err);
	return 0;
}

/* ---- CPUID (pure, unit-tested) ----------------------------------------- */

/* Bits needed to number n things: 1 -> 0, 2 -> 1, 3..4 -> 2, ... */
static uint32_t x86_order(unsigned int n)
{
	uint32_t bits = 0;

	while ((1U << bits) < n)
		bits++;
	return bits;
}

static struct kvm_cpuid_entry2 *x86_cpuid_find(struct kvm_cpuid2 *c,
					       uint32_t fn)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn)
			return &c->entries[i];
	return NULL;
}

/*
 * Replace whatever KVM passed through from the host for an extended
 * topology leaf (0xB or 0x1F) by ours: SMT level of one thread, core level
 * of ncpus, then the invalid level that ends the list.
 */
static int x86_cpuid_topology(struct kvm_cpuid2 *c, unsigned int capacity,
			      uint32_t fn, unsigned int id, unsigned int ncpus,
			      struct kiln_error *err)
{
	const uint32_t level[3][3] = {
		/* eax: shift to the next level's id, ebx: count, ecx: type */
		{ 0, 1, CPUID_TOPO_SMT << 8 },
		{ x86_order(ncpus), ncpus, CPUID_TOPO_CORE << 8 },
		{ 0, 0, 0 },
	};
	uint32_t i, n = 0;

	if (x86_cpuid_find(c, fn) == NULL)
		return 0;
	for (i = 0; i < c->nent; i++)
		if (c->entries[i].function != fn)
			c->entries[n++] = c->entries[i];
	if (n + 3 > capacity)
		return kiln_error_set(err, ENOSPC,
				      "CPUID table full at leaf %#x", fn);
	for (i = 0; i < 3; i++, n++) {
		struct kvm_cpuid_entry2 *e = &c->entries[n];

		memset(e, 0, sizeof(*e));
		e->function = fn;
		e->index = i;
		e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		e->eax = level[i][0];
		e->ebx = level[i][1];
		e->ecx = level[i][2] | i;
		e->edx = id; /* x2APIC id */
	}
	c->nent = n;
	return 0;
}

/* Leaf 4 (Intel) and 0x8000001D (AMD) describe caches and who shares them. */
static void x86_cpuid_caches(struct kvm_cpuid_entry2 *e, unsigned int ncpus,
			     bool cores_field)
{
	uint32_t cache_level = (e->eax >> 5) & 7;

	if ((e->eax & 0x1f) == 0) /* no cache: the end of the list */
		return;
	/* L1 and L2 are per core; L3 is shared by the whole package */
	e->eax &= ~(0xfffU << 14);
	if (cache_level >= 3)
		e->eax |= (ncpus - 1) << 14;
	if (cores_field) {
		e->eax &= ~(0x3fU << 26);
		e->eax |= (ncpus - 1) << 26;
	}
}

int x86_cpuid_patch(struct kvm_cpuid2 *c, unsigned int capacity,
		    unsigned int id, unsigned int ncpus, bool tsc_deadline,
		    struct kiln_error *err)
{
	struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, 0);
	bool intel, amd;
	uint32_t i;

	if (ncpus == 0 || ncpus > VM_MAX_VCPUS || id >= ncpus)
		return kiln_error_set(err, EINVAL, "CPUID for vCPU %u of %u",
				      id, ncpus);
	if (c->nent > capacity || e == NULL)
		return kiln_error_set(err, EINVAL,
				      "CPUID table has no leaf 0 or is larger "
				      "than its capacity");
	intel = e->ebx == CPUID_EBX_INTEL;
	amd = e->ebx == CPUID_EBX_AMD || e->ebx == CPUID_EBX_HYGON;

	e = x86_cpuid_find(c, 1);
	if (e == NULL)
		return kiln_error_set(err, EINVAL, "CPUID table has no leaf 1");
	/* ebx: APIC id, logical processors in the package, CLFLUSH 64 B */
	e->ebx = (e->ebx & 0xff) | (id << 24) | (ncpus << 16) | (8U << 8);
	e->ecx |= CPUID_1_ECX_HYPERVISOR;
	e->ecx &= ~CPUID_1_ECX_PDCM; /* no perf capabilities MSR */
	if (tsc_deadline)
		e->ecx |= CPUID_1_ECX_TSC_DEADLINE;
	if (ncpus > 1)
		e->edx |= CPUID_1_EDX_HTT;
	else
		e->edx &= ~CPUID_1_EDX_HTT;

	for (i = 0; i < c->nent; i++) {
		e = &c->entries[i];
		if (intel && e->function == 4)
			x86_cpuid_caches(e, ncpus, true);
		if (amd && e->function == 0x8000001d)
			x86_cpuid_caches(e, ncpus, false);
		if (amd && e->function == 0x80000008) {
			/* ecx: cores - 1, and the APIC id bits they take */
			e->ecx &= ~0xf0ffU;
			e->ecx |= (x86_order(ncpus) << 12) | (ncpus - 1);
		}
		if (amd && e->function == 0x8000001e) {
			/* extended APIC id; core id; node 0 of 1 */
			e->eax = id;
			e->ebx = id;
			e->ecx = 0;
		}
	}
	if (x86_cpuid_topology(c, capacity, 0xb, id, ncpus, err) < 0 ||
	    x86_cpuid_topology(c, capacity, 0x1f, id, ncpus, err) < 0)
		return -1;
	return 0;
}

/* ---- IOAPIC at power-on (pure, unit-tested) ---------------------------- */

void x86_ioapic_virtual_wire(struct kvm_ioapic_state *io)
{
	/*
	 * Pin 0 in ExtINT, unmasked: the 8259 wired through the IOAPIC, as
	 * firmware leaves it (MP spec 1.4, 3.6.2.2, virtual wire mode B).
	 * Linux's enable_IO_APIC() looks for that pin before it clears the
	 * table, reading every pin until it finds one: four MMIO exits per
	 * pin read, 96 for KVM's 24 masked pins, 4 when pin 0 has it. KVM
	 * delivers nothing through an ExtINT pin (the 8259 reaches the vCPU
	 * through LINT0, mptable.c), and Linux masks the pin right after.
	 */
	io->redirtbl[0].fields.delivery_mode = X86_IOAPIC_DM_EXTINT;
	io->redirtbl[0].fields.mask = 0;
}

/* ---- KVM ioctls (run only under KVM) --------------------------------- */

int x86_setup_ioapic(int vm_fd, struct kiln_error *err)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };

	if (ioctl(vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
		return kiln_error_set(err, errno, "KVM_GET_IRQCHIP (IOAPIC)");
	x86_ioapic_virtual_wire(&chip.chip.ioapic);
	if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
		return kiln_error_set(err, errno, "KVM_SET_IRQCHIP (IOAPIC)");
	return 0;
}

int x86_setup_cpuid(int kvm_fd, int vcpu_fd, unsigned int id,
		    unsigned int ncpus, struct kiln_error *err)
{
	cleanup_free struct kvm_cpuid2 *c = NULL;
	unsigned int n, capacity;
	bool tsc_deadline;

	/* KVM says E2BIG until nent is large enough for every leaf */
	for (n = 128;; n *= 2) {
		capacity = n + X86_CPUID_SPARE;
		c = calloc(1, sizeof(*c) + capacity * sizeof(c->entries[0]));
		if (c == NULL)
			return kiln_error_set(err, ENOMEM,
					      "allocate the CPUID table");
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			break;
		if (errno != E2BIG || n >= 4096)
			return kiln_error_set(err, errno,
					      "KVM_GET_SUPPORTED_CPUID");
		free(c);
		c = NULL;
	}
	/* KVM emulates the TSC deadline timer but does not list it */
	tsc_deadline = ioctl(kvm_fd, KVM_CHECK_EXTENSION,
			     KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	if (x86_cpuid_patch(c, capacity, id, ncpus, tsc_deadline, err) < 0)
		return kiln_error_wrap(err, "vCPU %u", id);
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
		return kiln_error_set(err, errno, "KVM_SET_CPUID2 (vCPU %u)",
				      id);
	return 0;
}

static int x86_setup_msrs(int vcpu_fd, unsigned int id, struct kiln_error *err)
{
	static const struct kvm_msr_entry boot_msrs[] = {
		{ .index = MSR_IA32_SYSENTER_CS },
		{ .index = MSR_IA32_SYSENTER_ESP },
		{ .index = MSR_IA32_SYSENTER_EIP },
		{ .index = MSR_STAR },
		{ .index = MSR_CSTAR },
		{ .index = MSR_KERNEL_GS_BASE },
		{ .index = MSR_SYSCALL_MASK },
		{ .index = MSR_LSTAR },
		{ .index = MSR_IA32_TSC },
		{ .index = MSR_IA32_MISC_ENABLE,
		  .data = MISC_ENABLE_FAST_STRING },
		{ .index = MSR_MTRR_DEF_TYPE,
		  .data = MTRR_ENABLE | MTRR_TYPE_WB },
	};
	const unsigned int n = ARRAY_SIZE(boot_msrs);
	cleanup_free struct kvm_msrs *msrs = NULL;
	int ret;

	msrs = calloc(1, sizeof(*msrs) + sizeof(boot_msrs));
	if (msrs == NULL)
		return kiln_error_set(err, ENOMEM, "allocate the MSR list");
	msrs->nmsrs = n;
	memcpy(msrs->entries, boot_msrs, sizeof(boot_msrs));
	/* KVM_SET_MSRS returns how many it set: it stops at the first refusal */
	ret = ioctl(vcpu_fd, KVM_SET_MSRS, msrs);
	if (ret < 0)
		return kiln_error_set(err, errno, "KVM_SET_MSRS (vCPU %u)", id);
	if ((unsigned int)ret < n)
		return kiln_error_set(err, EINVAL,
				      "KVM_SET_MSRS (vCPU %u): MSR %#x refused",
				      id, boot_msrs[ret].index);
	return 0;
}

static int x86_setup_boot_regs(int vcpu_fd, const struct boot_entry *boot,
			       struct kiln_error *err)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	/* read first: apic_base, LDT and the rest keep KVM's reset values */
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return kiln_error_set(err, errno, "KVM_GET_SREGS (vCPU 0)");
	x86_boot_sregs(boot, &sregs);
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return kiln_error_set(err, errno, "KVM_SET_SREGS (vCPU 0)");
	x86_boot_regs(boot, &regs);
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return kiln_error_set(err, errno, "KVM_SET_REGS (vCPU 0)");
	return 0;
}

static int x86_setup_fpu(int vcpu_fd, unsigned int id, struct kiln_error *err)
{
	/* the FNINIT and power-on values: all exceptions masked */
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };

	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return kiln_error_set(err, errno, "KVM_SET_FPU (vCPU %u)", id);
	return 0;
}

static void x86_lvt_set_mode(struct kvm_lapic_state *l, unsigned int reg,
			     uint32_t mode)
{
	uint32_t v;

	memcpy(&v, &l->regs[reg], sizeof(v));
	v = (v & ~APIC_DM_MASK) | (mode << 8);
	memcpy(&l->regs[reg], &v, sizeof(v));
}

/* Virtual wire: the 8259 through LINT0, NMI through LINT1 (MP table). */
static int x86_setup_lapic(int vcpu_fd, unsigned int id, struct kiln_error *err)
{
	struct kvm_lapic_state lapic;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
		return kiln_error_set(err, errno,
				      "KVM_GET_LAPIC (vCPU %u; no in-kernel "
				      "irqchip?)",
				      id);
	x86_lvt_set_mode(&lapic, APIC_LVT0, APIC_DM_EXTINT);
	x86_lvt_set_mode(&lapic, APIC_LVT1, APIC_DM_NMI);
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
		return kiln_error_set(err, errno, "KVM_SET_LAPIC (vCPU %u)",
				      id);
	return 0;
}

int x86_setup_vcpu(int kvm_fd, int vcpu_fd, unsigned int id, unsigned int ncpus,
		   const struct boot_entry *boot, struct kiln_error *err)
{
	if (ncpus == 0 || ncpus > VM_MAX_VCPUS || id >= ncpus)
		return kiln_error_set(err, EINVAL, "vCPU %u of %u", id, ncpus);
	if (id == 0 && (boot == NULL ||
			(boot->mode != BOOT_PVH && boot->mode != BOOT_LINUX64)))
		return kiln_error_set(err, EINVAL,
				      "vCPU 0 needs a boot entry point");
	/* CPUID first: KVM checks later MSR writes against it */
	if (x86_setup_cpuid(kvm_fd, vcpu_fd, id, ncpus, err) < 0 ||
	    x86_setup_msrs(vcpu_fd, id, err) < 0)
		return -1;
	if (id == 0 && x86_setup_boot_regs(vcpu_fd, boot, err) < 0)
		return -1;
	if (x86_setup_fpu(vcpu_fd, id, err) < 0 ||
	    x86_setup_lapic(vcpu_fd, id, err) < 0)
		return -1;
	return 0;
}
