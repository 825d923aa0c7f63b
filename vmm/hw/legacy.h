/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The small legacy devices of an x86 microVM: i8042 (reset line), CMOS/RTC,
 * boot timer and a sink for diagnostic ports. Each core is usable without
 * KVM so unit tests can drive it; the VMM_DEVICE glue in each file wires it
 * to a struct vm. Handlers are trap_fns and safe from any vCPU thread.
 */
#ifndef KILN_VMM_HW_LEGACY_H
#define KILN_VMM_HW_LEGACY_H

#include <stdbool.h>
#include <stdint.h>

#include "../../lib/error.h"

/*
 * i8042: offset 0 is the data port (0x60), offset 4 the status/command port
 * (0x64). reset is called, outside the device lock, when the guest pulses
 * the CPU reset line; irq_fd (-1: none) is written on each rising edge of
 * IRQ 1. irq_fd is not owned.
 */
#define I8042_OFF_DATA 0
#define I8042_OFF_CMD  4
#define I8042_PORT_LEN 5

struct i8042;

struct i8042 *i8042_new(int irq_fd, void (*reset)(void *opaque),
			void *reset_opaque, struct kiln_error *err);
void i8042_free(struct i8042 *k);
void i8042_io(void *k, uint64_t off, uint8_t *data, uint32_t len,
	      bool is_write);
/* Queue the Ctrl+Alt+Del key presses and raise IRQ 1 (any thread). */
int i8042_ctrl_alt_del(struct i8042 *k, struct kiln_error *err);
/* The i8042 of a running vm, or NULL. */
struct vm;
struct i8042 *i8042_lookup(struct vm *vm);

/* CMOS/RTC: offset 0 is the index port (0x70), offset 1 the data port. */
#define CMOS_PORT_LEN 2

struct cmos;

struct cmos *cmos_new(struct kiln_error *err);
void cmos_free(struct cmos *c);
void cmos_io(void *c, uint64_t off, uint8_t *data, uint32_t len, bool is_write);

/*
 * Boot timer: the guest's init writes LAYOUT_BOOT_TIMER_MAGIC once it runs.
 * start_ns is the util_now_ns() the measure starts from.
 */
struct boot_timer {
	uint64_t start_ns;
	_Atomic uint64_t ready_ns; /* start to magic write; 0: not yet */
};

void boot_timer_io(void *t, uint64_t off, uint8_t *data, uint32_t len,
		   bool is_write);
/* Nanoseconds from start to the guest's magic write, 0 before it. */
uint64_t boot_timer_ns(void *state);

/* Ports a Linux guest pokes while booting and nobody answers: ignored. */
void isa_sink_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		 bool is_write);

#endif
