/* SPDX-License-Identifier: Apache-2.0 */
/*
 * i8042, CMOS/RTC, boot timer and the ISA port sink: each core through its
 * trap_fn, then the glue through the device table and a real trap table,
 * as far as it goes without /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "../../vmm/device.h"
#include "../../vmm/hw/legacy.h"
#include "../../vmm/layout.h"
#include "../../vmm/metrics.h"
#include "../../vmm/vm.h"
#include "../lib/util.h"
#include "../lib/vdriver.h"
#include "tap.h"

/* ---- helpers ---- */

static uint8_t rd(trap_fn fn, void *o, uint64_t off)
{
	uint8_t v = 0;

	fn(o, off, &v, 1, false);
	return v;
}

static void wr(trap_fn fn, void *o, uint64_t off, uint8_t v)
{
	fn(o, off, &v, 1, true);
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- i8042 ---- */

static int resets;

static void count_reset(void *opaque)
{
	(void)opaque;
	resets++;
}

#define KDATA I8042_OFF_DATA
#define KCMD  I8042_OFF_CMD

static uint8_t kcmd(struct i8042 *k, uint8_t cmd)
{
	wr(i8042_io, k, KCMD, cmd);
	return rd(i8042_io, k, KDATA);
}

static void test_i8042(void)
{
	struct kiln_error err = { 0 };
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct i8042 *k = i8042_new(efd, count_reset, NULL, &err);
	uint64_t missed;
	uint8_t buf[4];

	is_int(rd(i8042_io, k, KCMD), 0x14, "i8042: status: unlocked, SYS");
	wr(i8042_io, k, KCMD, 0xaa);
	is_int(rd(i8042_io, k, KCMD) & 0x09, 0x09,
	       "i8042: OBF and CMD after a self-test");
	is_int(rd(i8042_io, k, KDATA), 0x55, "i8042: self-test answers 0x55");
	is_int(rd(i8042_io, k, KCMD) & 0x01, 0, "i8042: OBF clear once read");

	is_int(kcmd(k, 0x20), 0x05, "i8042: command byte KBDINT|SYS at reset");
	wr(i8042_io, k, KCMD, 0x60);
	wr(i8042_io, k, KDATA, 0x44);
	is_int(rd(i8042_io, k, KCMD) & 0x09, 0x00,
	       "i8042: a data byte consumed: no OBF, CMD clear");
	is_int(kcmd(k, 0x20), 0x44, "i8042: command byte round trip");
	is_int(kcmd(k, 0xab), 0x00, "i8042: interface test answers 0");
	wr(i8042_io, k, KCMD, 0xa7);
	is_int(kcmd(k, 0x20) & 0x20, 0x20, "i8042: 0xa7 disables AUX");
	wr(i8042_io, k, KCMD, 0xa8);
	is_int(kcmd(k, 0x20) & 0x20, 0x00, "i8042: 0xa8 enables AUX");
	wr(i8042_io, k, KCMD, 0xad);
	is_int(kcmd(k, 0x20) & 0x10, 0x10, "i8042: 0xad disables KBD");
	wr(i8042_io, k, KCMD, 0xae);
	is_int(kcmd(k, 0x20) & 0x10, 0x00, "i8042: 0xae enables KBD");

	/* Linux's AUX probe must fail fast, not time out */
	wr(i8042_io, k, KCMD, 0xd3);
	wr(i8042_io, k, KDATA, 0x5a);
	is_int(rd(i8042_io, k, KCMD) & 0x21, 0x01,
	       "i8042: AUX_LOOP gets a byte, without the AUX bit");
	is_int(rd(i8042_io, k, KDATA), 0xfa, "i8042: ... the keyboard's ACK");
	is_int(kcmd(k, 0xa9), 0x02, "i8042: AUX test reports no AUX port");

	wr(i8042_io, k, KCMD, 0xd1);
	wr(i8042_io, k, KDATA, 0xdf);
	is_int(kcmd(k, 0xd0), 0xdf, "i8042: output port round trip");
	is_int(resets, 0, "i8042: no reset so far");
	wr(i8042_io, k, KCMD, 0xff);
	is_int(resets, 0, "i8042: 0xff pulses nothing");
	wr(i8042_io, k, KCMD, 0xfe);
	is_int(resets, 1, "i8042: 0xfe pulses the reset line");
	wr(i8042_io, k, KCMD, 0xd1);
	wr(i8042_io, k, KDATA, 0xde);
	is_int(resets, 2, "i8042: output port bit 0 low resets");

	/* IRQ 1: only with a byte waiting and KBDINT in the command byte */
	wr(i8042_io, k, KCMD, 0x60);
	wr(i8042_io, k, KDATA, 0x04);
	irqs(efd);
	is_int(kcmd(k, 0x20), 0x04, "i8042: KBDINT off");
	is_int(irqs(efd), 0, "i8042: no IRQ with KBDINT off");
	wr(i8042_io, k, KDATA, 0xf4); /* keyboard: enable scanning */
	is_int(irqs(efd), 0, "i8042: still none for the ACK");
	wr(i8042_io, k, KCMD, 0x60);
	wr(i8042_io, k, KDATA, 0x05);
	is_int(irqs(efd), 1, "i8042: enabling KBDINT with a byte waiting");
	is_int(rd(i8042_io, k, KDATA), 0xfa, "i8042: keyboard ACKs 0xf4");
	is_int(irqs(efd), 0, "i8042: no IRQ once the buffer is empty");
	wr(i8042_io, k, KDATA, 0xf4);
	is_int(irqs(efd), 1, "i8042: IRQ 1 for the ACK with KBDINT on");
	is_int(rd(i8042_io, k, KDATA), 0xfa, "i8042: keyboard ACKs 0xf4");
	is_int(irqs(efd), 0, "i8042: no IRQ once the buffer is empty");
	wr(i8042_io, k, KCMD, 0xd2);
	wr(i8042_io, k, KDATA, 0x77);
	is_int(irqs(efd), 1, "i8042: IRQ 1 for a KBD_LOOP byte");
	is_int(rd(i8042_io, k, KDATA), 0x77, "i8042: KBD_LOOP echoes");

	/* guest-controlled sizes and offsets */
	wr(i8042_io, k, KCMD, 0xaa);
	memset(buf, 0, sizeof(buf));
	i8042_io(k, KDATA, buf, 2, false);
	ok(buf[0] == 0xff && buf[1] == 0xff, "i8042: 2-byte read floats");
	i8042_io(k, KCMD, buf, 4, true);
	is_int(rd(i8042_io, k, 2), 0xff, "i8042: offset 2 floats");
	is_int(resets, 2, "i8042: wide writes do nothing");
	is_int(rd(i8042_io, k, KDATA), 0x55, "i8042: and did not pop");
	missed = metrics_get(&metrics_i8042, I8042_M_MISSED);
	buf[0] = 0xfe; /* the reset pulse, were it taken as a command */
	i8042_io(k, UINT64_MAX, buf, 1, true);
	is_int(metrics_get(&metrics_i8042, I8042_M_MISSED), missed + 1,
	       "i8042: offset ~0 counts as a missed access");
	is_int(resets, 2, "i8042: and pulses nothing");
	is_int(rd(i8042_io, k, KCMD) & 0x01, 0, "i8042: and queued nothing");
	is_int(kcmd(k, 0xaa), 0x55, "i8042: the controller still answers");
	i8042_free(k);
	close(efd);
}

static void test_i8042_glue(void)
{
	const struct vmm_device *dev = vdrv_find("i8042");
	struct vm *vm = calloc(1, sizeof(*vm));
	struct kiln_error err = { 0 };
	void *state = NULL;

	ok(dev != NULL && dev->level == DEVICE_LEVEL_LEGACY, "i8042 glue: in "
							     "the device "
							     "table");
	if (dev == NULL)
		return;
	/* without /dev/kvm the irqfd fails: a clean error, nothing left */
	vm->vm_fd = -1;
	is_int(dev->init(vm, &state, &err), -1, "i8042 glue: no VM, no irqfd");
	ok(strncmp(err.msg, "i8042: IRQ 1", 12) == 0,
	   "i8042 glue: the error names IRQ 1 (%s)", err.msg);
	is_int(vm->traps.count[TRAP_PIO], 0, "i8042 glue: no trap left");
	free(vm);
}

/* ---- CMOS ---- */

static bool bcd_ok(uint8_t v, unsigned int max)
{
	return (v >> 4) <= 9 && (v & 0xf) <= 9 &&
	       (unsigned int)((v >> 4) * 10 + (v & 0xf)) <= max;
}

static unsigned int bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0xf);
}

static uint8_t creg(struct cmos *c, uint8_t idx)
{
	wr(cmos_io, c, 0, idx);
	return rd(cmos_io, c, 1);
}

static void test_cmos(void)
{
	struct kiln_error err = { 0 };
	struct cmos *c = cmos_new(&err);
	uint8_t sec, min, hour, wday, day, mon, year, cent, again;
	struct tm tm;
	time_t t;
	int tries = 0;
	uint8_t buf[2];

	do {
		t = time(NULL);
		sec = creg(c, 0x00);
		min = creg(c, 0x02);
		hour = creg(c, 0x04);
		wday = creg(c, 0x06);
		day = creg(c, 0x07);
		mon = creg(c, 0x08);
		year = creg(c, 0x09);
		cent = creg(c, 0x32);
		again = creg(c, 0x00);
	} while ((again != sec || time(NULL) != t) && ++tries < 5);
	gmtime_r(&t, &tm);
	ok(bcd_ok(sec, 59) && bcd_ok(min, 59) && bcd_ok(hour, 23) &&
		   bcd_ok(wday, 7) && wday >= 1 && bcd_ok(day, 31) &&
		   day >= 1 && bcd_ok(mon, 12) && mon >= 1 &&
		   bcd_ok(year, 99) && bcd_ok(cent, 99),
	   "cmos: time fields are valid BCD");
	ok(bcd(sec) == (unsigned int)tm.tm_sec &&
		   bcd(min) == (unsigned int)tm.tm_min &&
		   bcd(hour) == (unsigned int)tm.tm_hour &&
		   bcd(wday) == (unsigned int)tm.tm_wday + 1 &&
		   bcd(day) == (unsigned int)tm.tm_mday &&
		   bcd(mon) == (unsigned int)tm.tm_mon + 1 &&
		   bcd(cent) * 100 + bcd(year) ==
			   (unsigned int)tm.tm_year + 1900,
	   "cmos: time is the host's UTC (%02x:%02x:%02x %02x-%02x-%02x%02x)",
	   hour, min, sec, day, mon, cent, year);

	is_int(creg(c, 0x0a) & 0x80, 0, "cmos: A: UIP clear");
	wr(cmos_io, c, 1, 0xa6);
	is_int(creg(c, 0x0a), 0x26, "cmos: A: UIP stays clear after a write");
	is_int(creg(c, 0x0b), 0x02, "cmos: B: 24-hour, BCD");
	is_int(creg(c, 0x0c), 0x00, "cmos: C: no interrupt flags");
	is_int(creg(c, 0x0d), 0x80, "cmos: D: valid RAM and time");

	wr(cmos_io, c, 0, 0x40);
	wr(cmos_io, c, 1, 0xa5);
	wr(cmos_io, c, 0, 0x7f);
	wr(cmos_io, c, 1, 0x3c);
	is_int(creg(c, 0x40), 0xa5, "cmos: NVRAM keeps a write");
	is_int(creg(c, 0x7f), 0x3c, "cmos: NVRAM's last byte too");
	is_int(creg(c, 0x80 | 0x40), 0xa5, "cmos: index bit 7 (NMI) ignored");
	is_int(rd(cmos_io, c, 0), 0xff, "cmos: the index port is write-only");

	wr(cmos_io, c, 0, 0x09);
	wr(cmos_io, c, 1, 0x99);
	wr(cmos_io, c, 0, 0x32);
	wr(cmos_io, c, 1, 0x18);
	is_int(creg(c, 0x32), cent, "cmos: the clock ignores writes");
	wr(cmos_io, c, 0, 0x0d);
	wr(cmos_io, c, 1, 0x00);
	is_int(creg(c, 0x0d), 0x80, "cmos: D is read-only");

	wr(cmos_io, c, 0, 0x0b);
	wr(cmos_io, c, 1, 0x06); /* 24-hour, binary */
	tries = 0;
	do {
		t = time(NULL);
		min = creg(c, 0x02);
		cent = creg(c, 0x32);
	} while (time(NULL) != t && ++tries < 5);
	gmtime_r(&t, &tm);
	ok(min == tm.tm_min && cent == (tm.tm_year + 1900) / 100, "cmos: B "
								  "binary "
								  "mode: "
								  "binary "
								  "minutes and "
								  "century");
	wr(cmos_io, c, 0, 0x0b);
	wr(cmos_io, c, 1, 0x00); /* 12-hour, BCD */
	tries = 0;
	do {
		t = time(NULL);
		hour = creg(c, 0x04);
	} while (time(NULL) != t && ++tries < 5);
	gmtime_r(&t, &tm);
	ok(bcd(hour & 0x7f) == (unsigned int)(tm.tm_hour % 12 ? tm.tm_hour % 12
							      : 12) &&
		   !!(hour & 0x80) == (tm.tm_hour >= 12),
	   "cmos: B 12-hour mode: 1-12 with the PM bit (%02x)", hour);

	wr(cmos_io, c, 0, 0x40);
	memset(buf, 0, sizeof(buf));
	cmos_io(c, 1, buf, 2, false);
	ok(buf[0] == 0xff && buf[1] == 0xff, "cmos: 2-byte read floats");
	cmos_io(c, 1, buf, 2, true);
	cmos_io(c, 2, buf, 1, true);
	cmos_io(c, UINT64_MAX, buf, 1, false);
	is_int(creg(c, 0x40), 0xa5, "cmos: odd accesses changed nothing");
	cmos_free(c);
}

static bool port_rd(struct vm *vm, uint16_t port, uint8_t *v)
{
	return trap_dispatch(&vm->traps, TRAP_PIO, port, v, 1, false);
}

static bool port_wr(struct vm *vm, uint16_t port, uint8_t v)
{
	return trap_dispatch(&vm->traps, TRAP_PIO, port, &v, 1, true);
}

static void test_cmos_glue(void)
{
	const struct vmm_device *dev = vdrv_find("cmos");
	struct vm *vm = calloc(1, sizeof(*vm));
	struct kiln_error err = { 0 };
	void *state = NULL, *again = NULL;
	uint8_t v = 0;

	ok(dev != NULL && dev->init(vm, &state, &err) == 0, "cmos glue: init");
	ok(port_wr(vm, 0x70, 0x0d) && port_rd(vm, 0x71, &v) && v == 0x80,
	   "cmos glue: register D through ports 0x70/0x71");
	is_int(dev->init(vm, &again, &err), -1,
	       "cmos glue: a second one does not fit");
	ok(err.errnum == EEXIST && strstr(err.msg, "cmos: ports 0x70-0x71"),
	   "cmos glue: the error names the ports (%s)", err.msg);
	dev->exit(vm, state);
	trap_table_destroy(&vm->traps);
	free(vm);
}

/* ---- boot timer and port sink ---- */

static void test_boot_timer(const char *logpath)
{
	struct boot_timer t = { .start_ns = util_now_ns() - 12345678 };
	uint8_t buf[4] = { 0xaa, 0xaa, 0xaa, 0xaa };
	uint32_t magic4 = LAYOUT_BOOT_TIMER_MAGIC;
	uint64_t ns;
	double ms = 0;
	char line[128];
	int fd;
	ssize_t n;
	const char *p;

	is_int(boot_timer_ns(&t), 0, "boot timer: 0 before the guest writes");
	wr(boot_timer_io, &t, 0, LAYOUT_BOOT_TIMER_MAGIC + 1);
	boot_timer_io(&t, 0, (uint8_t *)&magic4, 4, true);
	is_int(boot_timer_ns(&t), 0,
	       "boot timer: other values and sizes are ignored");
	wr(boot_timer_io, &t, 0, LAYOUT_BOOT_TIMER_MAGIC);
	ns = boot_timer_ns(&t);
	ok(ns >= 12345678 && ns < 12345678 + 1000000000ULL,
	   "boot timer: time since start stored (%llu ns)",
	   (unsigned long long)ns);
	nap_ms(2);
	wr(boot_timer_io, &t, 0, LAYOUT_BOOT_TIMER_MAGIC);
	is_int(boot_timer_ns(&t), ns, "boot timer: the first write wins");
	is_int(count_in_file(logpath, "INFO: guest init reached after "), 1,
	       "boot timer: logged once, at info");
	fd = open(logpath, O_RDONLY);
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	line[n > 0 ? n : 0] = '\0';
	p = strstr(line, "reached after ");
	ok(p && sscanf(p, "reached after %lf ms", &ms) == 1 && ms >= 12.345 &&
		   ms * 1e6 < ns + 1000 && strstr(p, ".") && strstr(p, " ms\n"),
	   "boot timer: \"guest init reached after %%.3f ms\" (%.3f)", ms);
	boot_timer_io(&t, 0, buf, 4, false);
	ok(buf[0] == 0 && buf[3] == 0, "boot timer: reads return 0");
}

static void test_sink(void)
{
	const struct vmm_device *bt = vdrv_find("boot_timer");
	const struct vmm_device *sink = vdrv_find("isa_sink");
	struct vm *vm = calloc(1, sizeof(*vm));
	struct kiln_error err = { 0 };
	uint8_t buf[4] = { 0 }, a = 0, b = 0, c = 0;
	void *state = NULL, *bstate = NULL;
	uint64_t ns;

	isa_sink_io(NULL, 0, buf, 4, false);
	ok(buf[0] == 0xff && buf[3] == 0xff, "sink: reads float");
	isa_sink_io(NULL, 0, buf, 1, true);

	ok(sink != NULL && sink->init(vm, &state, &err) == 0, "sink glue: "
							      "init");
	ok(port_rd(vm, 0x80, &a) && port_rd(vm, 0x87, &b) &&
		   port_rd(vm, 0xed, &c) && port_wr(vm, 0x80, 0x42) &&
		   a == 0xff && b == 0xff && c == 0xff,
	   "sink glue: 0x80, 0x87 and 0xed answered");
	ok(!port_rd(vm, 0x90, &a) && !port_rd(vm, 0x7f, &a) &&
		   !port_rd(vm, 0xee, &a),
	   "sink glue: and nothing around them");
	sink->exit(vm, state);

	vm->start_ns = util_now_ns() - 1000000;
	ok(bt != NULL && bt->init(vm, &bstate, &err) == 0, "boot timer glue: "
							   "init");
	ok(port_wr(vm, LAYOUT_BOOT_TIMER_PORT, LAYOUT_BOOT_TIMER_MAGIC),
	   "boot timer glue: port 0x440 answered");
	ns = boot_timer_ns(bstate);
	ok(ns >= 1000000 && ns < 1000000000ULL,
	   "boot timer glue: measured from vm->start_ns (%llu ns)",
	   (unsigned long long)ns);
	bt->exit(vm, bstate);
	trap_table_destroy(&vm->traps);
	free(vm);
}

int main(void)
{
	char logpath[] = "/tmp/kiln-legacy-log-XXXXXX";
	int fd = mkstemp(logpath);

	close(fd);
	log_open(logpath);

	test_i8042();
	test_i8042_glue();
	test_cmos();
	test_cmos_glue();
	test_boot_timer(logpath);
	test_sink();
	unlink(logpath);
	return tap_done();
}
