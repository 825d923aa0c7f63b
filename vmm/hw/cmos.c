/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CMOS RAM and MC146818 RTC at ports 0x70 (index) and 0x71 (data).
 *
 * The clock is the host's UTC clock, read when the guest reads it; the
 * guest cannot set it (writes to the time registers are dropped). There
 * are no RTC interrupts (IRQ 8): register C always reads 0. Update-in-
 * progress is never set, so a guest never waits for an update cycle (a
 * kernel that sees 0xff there spins about 3 s: notes/nested-kvm.md). The
 * other bytes are plain NVRAM.
 */
#include "legacy.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../lib/util.h"
#include "../device.h"
#include "../layout.h"
#include "../trap.h"
#include "../vm.h"

#define CMOS_SIZE	128
#define CMOS_INDEX_MASK 0x7f /* bit 7 of the index masks NMI: ignored */

#define RTC_SECONDS 0x00
#define RTC_MINUTES 0x02
#define RTC_HOURS   0x04
#define RTC_WEEKDAY 0x06
#define RTC_DAY	    0x07
#define RTC_MONTH   0x08
#define RTC_YEAR    0x09
#define RTC_REG_A   0x0a
#define RTC_REG_B   0x0b
#define RTC_REG_C   0x0c
#define RTC_REG_D   0x0d
#define RTC_CENTURY 0x32

#define REG_A_UIP     0x80
#define REG_A_DEFAULT 0x26 /* 32.768 kHz time base, 1024 Hz rate */
#define REG_B_24H     0x02
#define REG_B_BINARY  0x04
#define REG_D_VRT     0x80 /* RAM and time valid */
#define HOURS_PM      0x80 /* in 12-hour mode */

/*
 * A reader takes the time a register at a time. We latch it when the guest
 * reads register A or the seconds, which every reader starts with, so the
 * fields of one read belong to one second, as the chip guarantees after
 * UIP reads clear. A latch older than this is refreshed by any read.
 */
#define CMOS_LATCH_NS 500000000ULL

struct cmos {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[CMOS_SIZE];
	struct tm now;	     /* latched UTC time */
	uint64_t latched_ns; /* CLOCK_MONOTONIC of the latch, 0: none */
};

static void cmos_latch(struct cmos *c, bool force)
{
	uint64_t mono = util_now_ns();
	time_t t;

	if (!force && c->latched_ns != 0 &&
	    mono - c->latched_ns < CMOS_LATCH_NS)
		return;
	t = time(NULL);
	gmtime_r(&t, &c->now);
	c->latched_ns = mono;
}

/* Encode v (0-99) in the format register B asks for. */
static uint8_t cmos_enc(const struct cmos *c, unsigned int v)
{
	v %= 100;
	if (c->ram[RTC_REG_B] & REG_B_BINARY)
		return v;
	return (v / 10) << 4 | (v % 10);
}

static uint8_t cmos_hours(const struct cmos *c)
{
	unsigned int h = c->now.tm_hour;

	if (c->ram[RTC_REG_B] & REG_B_24H)
		return cmos_enc(c, h);
	/* 12-hour mode: 12 AM is midnight, bit 7 marks PM */
	return cmos_enc(c, h % 12 == 0 ? 12 : h % 12) |
	       (h >= 12 ? HOURS_PM : 0);
}

static uint8_t cmos_read(struct cmos *c, uint8_t idx)
{
	unsigned int year;

	switch (idx) {
	case RTC_SECONDS:
		cmos_latch(c, true);
		return cmos_enc(c, c->now.tm_sec);
	case RTC_REG_A:
		cmos_latch(c, true);
		return c->ram[RTC_REG_A] & ~REG_A_UIP;
	case RTC_REG_C:
		return 0; /* no interrupt flags: we raise no IRQ 8 */
	case RTC_REG_D:
		return REG_D_VRT;
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_WEEKDAY:
	case RTC_DAY:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		break;
	default:
		return c->ram[idx];
	}
	cmos_latch(c, false);
	year = c->now.tm_year + 1900;
	switch (idx) {
	case RTC_MINUTES:
		return cmos_enc(c, c->now.tm_min);
	case RTC_HOURS:
		return cmos_hours(c);
	case RTC_WEEKDAY:
		return cmos_enc(c, c->now.tm_wday + 1); /* Sunday is 1 */
	case RTC_DAY:
		return cmos_enc(c, c->now.tm_mday);
	case RTC_MONTH:
		return cmos_enc(c, c->now.tm_mon + 1);
	case RTC_YEAR:
		return cmos_enc(c, year % 100);
	default:
		return cmos_enc(c, year / 100);
	}
}

static void cmos_write(struct cmos *c, uint8_t idx, uint8_t v)
{
	switch (idx) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_WEEKDAY:
	case RTC_DAY:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
	case RTC_REG_C:
	case RTC_REG_D:
		/* the host's clock is not the guest's to set; C, D read-only */
		break;
	case RTC_REG_A:
		c->ram[idx] = v & ~REG_A_UIP;
		break;
	default:
		/* B too: its 24-hour and binary bits shape what reads return */
		c->ram[idx] = v;
		break;
	}
}

void cmos_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
	     bool is_write)
{
	struct cmos *c = opaque;

	/* guest-controlled: off and len; both ports are one byte wide */
	if (len != 1 || off >= CMOS_PORT_LEN) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (off == 0) {
		/* the index port is write-only on the chip */
		if (is_write)
			c->index = data[0] & CMOS_INDEX_MASK;
		else
			data[0] = 0xff;
	} else if (is_write) {
		cmos_write(c, c->index, data[0]);
	} else {
		data[0] = cmos_read(c, c->index);
	}
	pthread_mutex_unlock(&c->lock);
}

struct cmos *cmos_new(struct kiln_error *err)
{
	struct cmos *c = calloc(1, sizeof(*c));
	int ret;

	if (c == NULL) {
		kiln_error_set(err, ENOMEM, "cmos: allocate state");
		return NULL;
	}
	ret = pthread_mutex_init(&c->lock, NULL);
	if (ret != 0) {
		free(c);
		kiln_error_set(err, ret, "cmos: init lock");
		return NULL;
	}
	c->ram[RTC_REG_A] = REG_A_DEFAULT;
	c->ram[RTC_REG_B] = REG_B_24H;
	return c;
}

void cmos_free(struct cmos *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int cmos_dev_init(struct vm *vm, void **state, struct kiln_error *err)
{
	struct cmos *c = cmos_new(err);

	if (c == NULL)
		return -1;
	if (trap_register(&vm->traps, TRAP_PIO, LAYOUT_CMOS_PORT, CMOS_PORT_LEN,
			  cmos_io, c, err) < 0) {
		cmos_free(c);
		return kiln_error_wrap(err, "cmos: ports %#x-%#x",
				       LAYOUT_CMOS_PORT,
				       LAYOUT_CMOS_PORT + CMOS_PORT_LEN - 1);
	}
	*state = c;
	return 0;
}

static void cmos_dev_exit(struct vm *vm, void *state)
{
	(void)vm;
	cmos_free(state);
}

VMM_DEVICE(cmos, DEVICE_LEVEL_LEGACY, cmos_dev_init, cmos_dev_exit);
