/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MP table, modelled on Firecracker's arch/x86_64/mptable.rs: processors,
 * one ISA bus, one IOAPIC, IRQ n to IOAPIC pin n for every pin (KVM's
 * default GSI routing), ExtINT on LINT0 and NMI on LINT1.
 */
#include "mptable.h"

#include <errno.h>
#include <string.h>

#include "config.h"
#include "layout.h"

#define MP_IOAPIC_PINS	 (LAYOUT_IRQ_MAX + 1)
#define MP_CPU_SIGNATURE 0x600 /* family 6; informational only */
#define MP_CPU_FEATURES	 0x201 /* CPUID 1 EDX: FPU | APIC */
#define MP_TABLE_MAX_SIZE                                                    \
	(sizeof(struct mp_floating) + sizeof(struct mp_config) +             \
	 VM_MAX_VCPUS * sizeof(struct mp_cpu) + sizeof(struct mp_bus) +      \
	 sizeof(struct mp_ioapic) + MP_IOAPIC_PINS * sizeof(struct mp_irq) + \
	 2 * sizeof(struct mp_irq))

/* Linux scans only the last KiB of base memory (and the BIOS ROM). */
static_assert(LAYOUT_EBDA + MP_TABLE_MAX_SIZE <= 0xa0000, "MP table size");
/* APIC ids and the IOAPIC id are 8 bits; the IOAPIC takes id ncpus */
static_assert(VM_MAX_VCPUS < 0xff, "APIC ids are 8 bits");

uint64_t mptable_size(unsigned int ncpus)
{
	return sizeof(struct mp_floating) + sizeof(struct mp_config) +
	       (uint64_t)ncpus * sizeof(struct mp_cpu) + sizeof(struct mp_bus) +
	       sizeof(struct mp_ioapic) +
	       (MP_IOAPIC_PINS + 2) * sizeof(struct mp_irq);
}

/* The byte that makes len bytes at p sum to zero. */
static uint8_t mp_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

/* Append one entry to the table being built; the size was checked. */
static uint8_t *mp_put(uint8_t *pos, const void *entry, size_t len)
{
	memcpy(pos, entry, len);
	return pos + len;
}

static uint8_t *mp_put_irq(uint8_t *pos, uint8_t type, uint8_t irq_type,
			   uint8_t src_irq, uint8_t dst_apic, uint8_t dst_pin)
{
	struct mp_irq e = {
		.type = type,
		.irq_type = irq_type,
		.src_bus = MP_ISA_BUS_ID,
		.src_irq = src_irq,
		.dst_apic = dst_apic,
		.dst_pin = dst_pin,
	};

	return mp_put(pos, &e, sizeof(e));
}

int mptable_write(struct guest_mem *m, unsigned int ncpus,
		  struct kiln_error *err)
{
	const size_t cfg_off = sizeof(struct mp_floating);
	const uint8_t ioapic_id = (uint8_t)ncpus;
	uint8_t buf[MP_TABLE_MAX_SIZE] = { 0 };
	struct mp_floating mpf = { 0 };
	struct mp_config mpc = { 0 };
	struct mp_bus bus = { .type = MP_BUS, .bus_id = MP_ISA_BUS_ID };
	struct mp_ioapic io = {
		.type = MP_IOAPIC,
		.apic_id = ioapic_id,
		.apic_version = MP_APIC_VERSION,
		.flags = MP_IOAPIC_USABLE,
		.addr = (uint32_t)LAYOUT_IOAPIC,
	};
	uint8_t *pos = buf + cfg_off + sizeof(mpc);
	unsigned int i, entries = 0;
	uint64_t size;

	if (ncpus == 0 || ncpus > VM_MAX_VCPUS)
		return kiln_error_set(err, EINVAL,
				      "MP table: %u vCPUs, want 1 to %u", ncpus,
				      VM_MAX_VCPUS);
	size = mptable_size(ncpus);

	for (i = 0; i < ncpus; i++, entries++) {
		struct mp_cpu c = {
			.type = MP_PROCESSOR,
			.apic_id = (uint8_t)i,
			.apic_version = MP_APIC_VERSION,
			.flags = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
			.signature = MP_CPU_SIGNATURE,
			.features = MP_CPU_FEATURES,
		};

		pos = mp_put(pos, &c, sizeof(c));
	}
	memcpy(bus.bus_type, "ISA   ", sizeof(bus.bus_type));
	pos = mp_put(pos, &bus, sizeof(bus));
	pos = mp_put(pos, &io, sizeof(io));
	entries += 2;
	/* KVM routes GSI n to IOAPIC pin n; tell the guest the same */
	for (i = 0; i < MP_IOAPIC_PINS; i++, entries++)
		pos = mp_put_irq(pos, MP_INTSRC, MP_INT, (uint8_t)i, ioapic_id,
				 (uint8_t)i);
	/* the 8259 reaches the BSP through LINT0; NMI goes to every LINT1 */
	pos = mp_put_irq(pos, MP_LINTSRC, MP_EXTINT, 0, 0, 0);
	pos = mp_put_irq(pos, MP_LINTSRC, MP_NMI, 0, MP_ALL_LAPICS, 1);
	entries += 2;
	if ((uint64_t)(pos - buf) != size)
		return kiln_error_set(err, EINVAL,
				      "MP table: built %zu bytes, want %llu",
				      (size_t)(pos - buf),
				      (unsigned long long)size);

	memcpy(mpc.signature, MP_CONFIG_SIGNATURE, sizeof(mpc.signature));
	mpc.length = (uint16_t)(size - cfg_off);
	mpc.spec_rev = MP_SPEC_REV;
	memcpy(mpc.oem, "KILN    ", sizeof(mpc.oem));
	memcpy(mpc.product, "MICROVM     ", sizeof(mpc.product));
	mpc.entry_count = (uint16_t)entries;
	mpc.lapic_addr = (uint32_t)LAYOUT_LAPIC;
	/* the checksum covers the header and every entry after it */
	memcpy(buf + cfg_off, &mpc, sizeof(mpc));
	mpc.checksum = mp_checksum(buf + cfg_off, mpc.length);
	memcpy(buf + cfg_off, &mpc, sizeof(mpc));

	memcpy(mpf.signature, MP_FLOATING_SIGNATURE, sizeof(mpf.signature));
	mpf.physptr = (uint32_t)(LAYOUT_EBDA + cfg_off);
	mpf.length = 1;
	mpf.spec_rev = MP_SPEC_REV;
	mpf.checksum = mp_checksum(&mpf, sizeof(mpf));
	memcpy(buf, &mpf, sizeof(mpf));

	if (guest_mem_write(m, LAYOUT_EBDA, buf, size, err) < 0)
		return kiln_error_wrap(err, "write the MP table");
	return 0;
}
