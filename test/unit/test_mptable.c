/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest's view of its CPUs: the MP table (checksums, one processor
 * entry per vCPU, the IOAPIC, IRQ routing, LINT0/LINT1) and the per-vCPU
 * CPUID patch from x86.c, which must give each vCPU the APIC id the MP
 * table lists for it. No /dev/kvm needed: the CPUID table is made up here.
 */
#include <linux/kvm.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/config.h"
#include "../../vmm/layout.h"
#include "../../vmm/memory.h"
#include "../../vmm/mptable.h"
#include "../../vmm/x86.h"
#include "tap.h"

static_assert(VM_MAX_VCPUS == 32, "test messages say 32 and 33");

static struct guest_mem mem;
static struct kiln_error err;

static uint8_t sum_bytes(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* What the parsed table says, for the assertions. */
struct mp_seen {
	unsigned int cpus, bsp, buses, ioapics, intsrc, lint;
	unsigned int bad_entry; /* unknown type or runs past the end */
	uint8_t apic_ids[VM_MAX_VCPUS];
	struct mp_ioapic ioapic;
	struct mp_irq intsrcs[LAYOUT_IRQ_MAX + 1];
	struct mp_irq lints[2];
	char bus_type[7];
};

/* Walk the entries the way Linux's smp_read_mpc() does. */
static void mp_parse(const uint8_t *t, const struct mp_config *c,
		     struct mp_seen *s)
{
	size_t pos = sizeof(*c);

	memset(s, 0, sizeof(*s));
	for (unsigned int i = 0; i < c->entry_count; i++) {
		size_t len = t[pos] == MP_PROCESSOR ? sizeof(struct mp_cpu) : 8;

		if (pos + len > c->length || t[pos] > MP_LINTSRC) {
			s->bad_entry++;
			return;
		}
		switch (t[pos]) {
		case MP_PROCESSOR: {
			struct mp_cpu cpu;

			memcpy(&cpu, t + pos, sizeof(cpu));
			if (s->cpus < VM_MAX_VCPUS)
				s->apic_ids[s->cpus] = cpu.apic_id;
			if (cpu.flags & MP_CPU_BSP)
				s->bsp += 1 + cpu.apic_id * 100;
			if (cpu.flags & MP_CPU_ENABLED)
				s->cpus++;
			break;
		}
		case MP_BUS:
			memcpy(s->bus_type, t + pos + 2, 6);
			s->buses++;
			break;
		case MP_IOAPIC:
			memcpy(&s->ioapic, t + pos, sizeof(s->ioapic));
			s->ioapics++;
			break;
		case MP_INTSRC:
			if (s->intsrc <= LAYOUT_IRQ_MAX)
				memcpy(&s->intsrcs[s->intsrc], t + pos, 8);
			s->intsrc++;
			break;
		case MP_LINTSRC:
			if (s->lint < 2)
				memcpy(&s->lints[s->lint], t + pos, 8);
			s->lint++;
			break;
		}
		pos += len;
	}
	if (pos != c->length)
		s->bad_entry++;
}

static void test_mptable(unsigned int n)
{
	const struct mp_floating *f;
	const struct mp_config *c;
	const uint8_t *t;
	struct mp_seen s;
	unsigned int i, routed = 0;
	int ids_ok = 1;

	memset(guest_mem_ptr(&mem, LAYOUT_EBDA, 0x400), 0xee, 0x400);
	is_int(mptable_write(&mem, n, &err), 0, "%u vCPUs: MP table written",
	       n);
	f = guest_mem_ptr(&mem, LAYOUT_EBDA, sizeof(*f));
	ok(memcmp(f->signature, "_MP_", 4) == 0 && f->length == 1 &&
		   f->spec_rev == 4 && f->feature[0] == 0,
	   "%u: floating pointer \"_MP_\", 16 bytes, spec 1.4", n);
	is_int(sum_bytes((const uint8_t *)f, 16), 0,
	       "%u: floating pointer checksum", n);
	is_int(f->physptr, LAYOUT_EBDA + 16, "%u: config table follows", n);
	c = guest_mem_ptr(&mem, f->physptr, sizeof(*c));
	t = (const uint8_t *)c;
	ok(memcmp(c->signature, "PCMP", 4) == 0 && c->spec_rev == 4 &&
		   c->lapic_addr == LAYOUT_LAPIC,
	   "%u: config table \"PCMP\", LAPIC at 0xfee00000", n);
	ok(guest_mem_ptr(&mem, f->physptr, c->length) != NULL &&
		   f->physptr + c->length <= 0xa0000,
	   "%u: table of %u bytes ends below 640 KiB", n, c->length);
	is_int(sum_bytes(t, c->length), 0, "%u: config table checksum", n);
	is_int(16 + c->length, mptable_size(n), "%u: mptable_size() agrees", n);
	is_int(c->entry_count, n + 2 + (LAYOUT_IRQ_MAX + 1) + 2,
	       "%u: entry count", n);

	mp_parse(t, c, &s);
	is_int(s.bad_entry, 0, "%u: every entry well-formed", n);
	is_int(s.cpus, n, "%u: one enabled processor per vCPU", n);
	for (i = 0; i < n && i < VM_MAX_VCPUS; i++)
		ids_ok &= s.apic_ids[i] == i;
	ok(ids_ok, "%u: APIC ids 0..%u", n, n - 1);
	is_int(s.bsp, 1, "%u: vCPU 0 and only it is the BSP", n);
	ok(s.buses == 1 && strcmp(s.bus_type, "ISA   ") == 0, "%u: one ISA bus",
	   n);
	ok(s.ioapics == 1 && s.ioapic.apic_id == n &&
		   s.ioapic.addr == LAYOUT_IOAPIC &&
		   (s.ioapic.flags & MP_IOAPIC_USABLE),
	   "%u: IOAPIC id %u at 0xfec00000, usable", n, n);
	is_int(s.intsrc, LAYOUT_IRQ_MAX + 1, "%u: 24 interrupt sources", n);
	for (i = 0; i <= LAYOUT_IRQ_MAX; i++) {
		const struct mp_irq *q = &s.intsrcs[i];

		routed += q->irq_type == MP_INT && q->src_bus == 0 &&
			  q->src_irq == i && q->dst_apic == n &&
			  q->dst_pin == i;
	}
	is_int(routed, LAYOUT_IRQ_MAX + 1, "%u: IRQ n -> IOAPIC pin n", n);
	ok(s.lint == 2 && s.lints[0].irq_type == MP_EXTINT &&
		   s.lints[0].dst_pin == 0 && s.lints[1].irq_type == MP_NMI &&
		   s.lints[1].dst_apic == 0xff && s.lints[1].dst_pin == 1,
	   "%u: ExtINT on LINT0, NMI on every LINT1", n);
}

/* ---- CPUID -------------------------------------------------------------- */

#define CPUID_CAP 64

static struct kvm_cpuid2 *cpuid;

static struct kvm_cpuid_entry2 *cpuid_add(uint32_t fn, uint32_t index,
					  uint32_t eax, uint32_t ebx,
					  uint32_t ecx, uint32_t edx)
{
	struct kvm_cpuid_entry2 *e = &cpuid->entries[cpuid->nent++];

	*e = (struct kvm_cpuid_entry2){ .function = fn,
					.index = index,
					.eax = eax,
					.ebx = ebx,
					.ecx = ecx,
					.edx = edx };
	if (fn == 4 || fn == 0xb || fn == 0x1f || fn == 0x8000001d)
		e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	return e;
}

static const struct kvm_cpuid_entry2 *cpuid_get(uint32_t fn, uint32_t index)
{
	for (uint32_t i = 0; i < cpuid->nent; i++)
		if (cpuid->entries[i].function == fn &&
		    cpuid->entries[i].index == index)
			return &cpuid->entries[i];
	return NULL;
}

/* What KVM_GET_SUPPORTED_CPUID might say on a 2-core Intel host. */
static void cpuid_host(int amd)
{
	memset(cpuid, 0,
	       sizeof(*cpuid) + CPUID_CAP * sizeof(cpuid->entries[0]));
	if (amd) {
		cpuid_add(0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65);
	} else {
		cpuid_add(0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69);
	}
	/* host APIC id 3, 16 logical, PDCM on, no hypervisor or TSC deadline */
	cpuid_add(1, 0, 0x806c1, 0x03100800, 0x76fafbff, 0xbfebfbff);
	cpuid_add(4, 0, 0x1c004121, 0, 0, 0); /* L1d, 2 cores */
	cpuid_add(4, 1, 0x1c004122, 0, 0, 0); /* L1i */
	cpuid_add(4, 2, 0x1c004143, 0, 0, 0); /* L2 */
	cpuid_add(4, 3, 0x1c03c163, 0, 0, 0); /* L3 shared by 16 */
	cpuid_add(4, 4, 0, 0, 0, 0);	      /* end */
	cpuid_add(0xb, 0, 1, 2, 0x100, 3);
	cpuid_add(0xb, 1, 4, 16, 0x201, 3);
	cpuid_add(0x1f, 0, 1, 2, 0x100, 3);
	cpuid_add(0x1f, 1, 4, 16, 0x201, 3);
	cpuid_add(0x1f, 2, 0, 0, 2, 3);
	cpuid_add(0x80000000, 0, 0x8000001f, 0, 0, 0);
	cpuid_add(0x80000008, 0, 0x3030, 0, 0x700f, 0);
	cpuid_add(0x8000001e, 0, 7, 0x103, 0x300, 0);
}

static void test_cpuid_intel(unsigned int id, unsigned int n)
{
	const struct kvm_cpuid_entry2 *e;
	unsigned int order = 0, fn;

	while ((1U << order) < n)
		order++;
	cpuid_host(0);
	is_int(x86_cpuid_patch(cpuid, CPUID_CAP, id, n, true, &err), 0,
	       "Intel vCPU %u of %u: CPUID patched", id, n);
	e = cpuid_get(1, 0);
	ok(e->ebx >> 24 == id && ((e->ebx >> 16) & 0xff) == n &&
		   ((e->ebx >> 8) & 0xff) == 8,
	   "leaf 1: APIC id %u, %u logical CPUs, CLFLUSH 64", id, n);
	ok((e->ecx & (1U << 31)) && !(e->ecx & (1U << 15)) &&
		   (e->ecx & (1U << 24)),
	   "leaf 1: hypervisor and TSC deadline on, PDCM off");
	ok(!!(e->edx & (1U << 28)) == (n > 1), "leaf 1: HTT iff %u > 1", n);
	e = cpuid_get(4, 0);
	ok(((e->eax >> 26) & 0x3f) == n - 1 && ((e->eax >> 14) & 0xfff) == 0,
	   "leaf 4 L1: %u cores, not shared", n);
	e = cpuid_get(4, 3);
	ok(((e->eax >> 26) & 0x3f) == n - 1 &&
		   ((e->eax >> 14) & 0xfff) == n - 1 &&
		   (e->eax & 0x3fff) == 0x163,
	   "leaf 4 L3: shared by all %u, type/level kept", n);
	is_int(cpuid_get(4, 4)->eax, 0, "leaf 4 terminator untouched");
	for (fn = 0xb; fn <= 0x1f; fn += 0x1f - 0xb) {
		const struct kvm_cpuid_entry2 *l0 = cpuid_get(fn, 0),
					      *l1 = cpuid_get(fn, 1),
					      *l2 = cpuid_get(fn, 2);

		ok(l0 && l1 && l2 && l0->eax == 0 && l0->ebx == 1 &&
			   l0->ecx == 0x100 && l0->edx == id,
		   "leaf %#x.0: SMT level of 1 thread, x2APIC id %u", fn, id);
		ok(l1 && l1->eax == order && l1->ebx == n && l1->ecx == 0x201 &&
			   l1->edx == id,
		   "leaf %#x.1: core level of %u, shift %u", fn, n, order);
		ok(l2 && l2->ebx == 0 && (l2->ecx & 0xff00) == 0 &&
			   (l2->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
		   "leaf %#x.2: end of levels", fn);
		ok(cpuid_get(fn, 3) == NULL, "leaf %#x: host levels gone", fn);
	}
	is_int(cpuid_get(0x8000001e, 0)->eax, 7,
	       "AMD leaf 0x8000001e untouched on Intel");
}

static void test_cpuid(void)
{
	const struct kvm_cpuid_entry2 *e;

	cpuid = calloc(1,
		       sizeof(*cpuid) + CPUID_CAP * sizeof(cpuid->entries[0]));
	test_cpuid_intel(0, 1);
	test_cpuid_intel(5, 8);
	test_cpuid_intel(31, 32);

	cpuid_host(1);
	is_int(x86_cpuid_patch(cpuid, CPUID_CAP, 2, 3, false, &err), 0,
	       "AMD vCPU 2 of 3: CPUID patched");
	e = cpuid_get(1, 0);
	/* no KVM_CAP_TSC_DEADLINE_TIMER: the bit stays clear */
	ok(e->ebx >> 24 == 2 && !(e->ecx & (1U << 24)), "AMD leaf 1");
	e = cpuid_get(0x80000008, 0);
	ok((e->ecx & 0xff) == 2 && ((e->ecx >> 12) & 0xf) == 2 &&
		   (e->ecx & ~0xf0ffU) == 0,
	   "AMD leaf 0x80000008: 3 cores, 2 APIC id bits");
	e = cpuid_get(0x8000001e, 0);
	/* extended APIC id 2, core 2, node 0 */
	ok(e->eax == 2 && e->ebx == 2 && e->ecx == 0, "AMD leaf 0x8000001e");
	is_int(cpuid_get(4, 3)->eax, 0x1c03c163,
	       "Intel leaf 4 untouched on AMD");

	cpuid_host(0);
	is_int(x86_cpuid_patch(cpuid, cpuid->nent, 0, 2, false, &err), -1,
	       "no spare entries: refused");
	ok(strstr(err.msg, "CPUID table full") != NULL, "says: %s", err.msg);
	cpuid_host(0);
	is_int(x86_cpuid_patch(cpuid, CPUID_CAP, 2, 2, false, &err), -1,
	       "vCPU id past the count refused");
	is_int(x86_cpuid_patch(cpuid, CPUID_CAP, 0, VM_MAX_VCPUS + 1, false,
			       &err),
	       -1, "more than VM_MAX_VCPUS refused");
	cpuid->nent = 0;
	is_int(x86_cpuid_patch(cpuid, CPUID_CAP, 0, 1, false, &err), -1,
	       "empty CPUID table refused");
}

/* Each vCPU's CPUID APIC id is the one the MP table gives it. */
static void test_agree(unsigned int n)
{
	const struct mp_config *c;
	struct mp_seen s;
	int agree = 1;

	mptable_write(&mem, n, &err);
	c = guest_mem_ptr(&mem, LAYOUT_EBDA + 16, sizeof(*c));
	mp_parse((const uint8_t *)c, c, &s);
	for (unsigned int i = 0; i < n; i++) {
		cpuid_host(0);
		x86_cpuid_patch(cpuid, CPUID_CAP, i, n, false, &err);
		agree &= cpuid_get(1, 0)->ebx >> 24 == s.apic_ids[i] &&
			 cpuid_get(0xb, 0)->edx == s.apic_ids[i] &&
			 s.ioapic.apic_id != s.apic_ids[i];
	}
	ok(agree,
	   "%u vCPUs: CPUID APIC ids match the MP table, none is the "
	   "IOAPIC's",
	   n);
}

/*
 * The IOAPIC a cold boot starts with: pin 0 in ExtINT and unmasked (the
 * 8259 through the IOAPIC), every other pin as KVM made it.
 */
static void test_ioapic_virtual_wire(void)
{
	struct kvm_ioapic_state io;
	int others = 1;

	memset(&io, 0, sizeof(io));
	io.base_address = LAYOUT_IOAPIC;
	for (unsigned int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		io.redirtbl[i].bits = 1ULL << 16;    /* KVM's reset: masked */
	io.redirtbl[5].bits = 0x0100000000008031ULL; /* a used pin */
	x86_ioapic_virtual_wire(&io);
	is_int(io.redirtbl[0].bits, 0x700,
	       "pin 0: ExtINT (delivery mode 7), unmasked, nothing else");
	is_int(io.redirtbl[0].fields.delivery_mode, 7, "pin 0 ExtINT field");
	is_int(io.redirtbl[0].fields.mask, 0, "pin 0 unmasked field");
	for (unsigned int i = 1; i < KVM_IOAPIC_NUM_PINS; i++)
		others &= io.redirtbl[i].bits ==
			  (i == 5 ? 0x0100000000008031ULL : 1ULL << 16);
	ok(others, "pins 1-23 untouched");
	is_int(io.base_address, LAYOUT_IOAPIC, "base address untouched");
}

int main(void)
{
	struct guest_mem none = { .fd = -1 };

	if (guest_mem_init(&mem, 16ULL << 20, &err) < 0) {
		printf("Bail out! %s\n", err.msg);
		return 1;
	}
	test_ioapic_virtual_wire();
	test_mptable(1);
	test_mptable(2);
	test_mptable(VM_MAX_VCPUS);

	is_int(mptable_write(&mem, 0, &err), -1, "0 vCPUs refused");
	ok(strstr(err.msg, "0 vCPUs") != NULL, "says: %s", err.msg);
	is_int(mptable_write(&mem, VM_MAX_VCPUS + 1, &err), -1,
	       "33 vCPUs refused");
	is_int(mptable_write(&none, 1, &err), -1, "no RAM at the EBDA");
	ok(strstr(err.msg, "MP table") != NULL, "says: %s", err.msg);

	test_cpuid();
	test_agree(4);
	test_agree(VM_MAX_VCPUS);
	free(cpuid);
	guest_mem_destroy(&mem);
	return tap_done();
}
