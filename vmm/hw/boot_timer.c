/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Diagnostic ports: the boot timer (Firecracker's idea and magic value,
 * on an I/O port) and a sink for ports a Linux guest writes while it boots.
 */
#include "legacy.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "../device.h"
#include "../layout.h"
#include "../metrics.h"
#include "../trap.h"
#include "../vm.h"

void boot_timer_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		   bool is_write)
{
	struct boot_timer *t = opaque;
	uint64_t now, ns, zero = 0;

	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	/* guest-controlled: only a 1-byte write of the magic value counts */
	if (off != 0 || len != 1 || data[0] != LAYOUT_BOOT_TIMER_MAGIC)
		return;
	now = util_now_ns();
	ns = now > t->start_ns ? now - t->start_ns : 1;
	/* the first write wins; a guest repeating it cannot flood the log */
	if (atomic_compare_exchange_strong(&t->ready_ns, &zero, ns)) {
		metrics_set(&metrics_vmm, VMM_M_BOOT_TIME_US, ns / 1000);
		log_info("guest init reached after %.3f ms", ns / 1e6);
	}
}

uint64_t boot_timer_ns(void *state)
{
	struct boot_timer *t = state;

	return atomic_load(&t->ready_ns);
}

static int boot_timer_init(struct vm *vm, void **state, struct kiln_error *err)
{
	struct boot_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return kiln_error_set(err, ENOMEM, "boot timer: allocate");
	t->start_ns = vm->start_ns;
	if (trap_register(&vm->traps, TRAP_PIO, LAYOUT_BOOT_TIMER_PORT, 1,
			  boot_timer_io, t, err) < 0) {
		free(t);
		return kiln_error_wrap(err, "boot timer: port %#x",
				       LAYOUT_BOOT_TIMER_PORT);
	}
	*state = t;
	return 0;
}

static void boot_timer_exit(struct vm *vm, void *state)
{
	(void)vm;
	free(state);
}

VMM_DEVICE(boot_timer, DEVICE_LEVEL_LEGACY, boot_timer_init, boot_timer_exit);

/*
 * 0x80-0x8f: the POST code port (Linux's io_delay writes 0x80) and the ISA
 * DMA page registers (0x87 is channel 0's); 0xed: io_delay=0xed. Linux only
 * writes these, so reads come from nobody we know of; they answer all ones,
 * what an empty ISA bus and the unknown-port path answer, so the sink
 * changes nothing a guest can see except that the host log stays quiet.
 */
#define ISA_SINK_DMA_PAGE     0x80
#define ISA_SINK_DMA_PAGE_LEN 16
#define ISA_SINK_IO_DELAY_ALT 0xed

void isa_sink_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		 bool is_write)
{
	(void)opaque;
	(void)off;
	if (!is_write)
		memset(data, 0xff, len);
}

static int isa_sink_init(struct vm *vm, void **state, struct kiln_error *err)
{
	*state = NULL;
	if (trap_register(&vm->traps, TRAP_PIO, ISA_SINK_DMA_PAGE,
			  ISA_SINK_DMA_PAGE_LEN, isa_sink_io, NULL, err) < 0 ||
	    trap_register(&vm->traps, TRAP_PIO, ISA_SINK_IO_DELAY_ALT, 1,
			  isa_sink_io, NULL, err) < 0)
		return kiln_error_wrap(err, "isa sink ports");
	return 0;
}

static void isa_sink_exit(struct vm *vm, void *state)
{
	(void)vm;
	(void)state;
}

VMM_DEVICE(isa_sink, DEVICE_LEVEL_LEGACY, isa_sink_init, isa_sink_exit);
