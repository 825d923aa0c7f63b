/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The 16550A core through its trap_fn, with a pipe as the console and an
 * eventfd as the irqfd; the input pump on a real event loop; the COM1 glue
 * through the device table as far as it goes without /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/device.h"
#include "../../vmm/evloop.h"
#include "../../vmm/hw/serial.h"
#include "../../vmm/layout.h"
#include "../../vmm/metrics.h"
#include "../../vmm/vm.h"
#include "../lib/util.h"
#include "../lib/vdriver.h"
#include "tap.h"

/* ---- helpers ---- */

static uint8_t rd(struct serial *s, unsigned int off)
{
	uint8_t v = 0;

	serial_io(s, off, &v, 1, false);
	return v;
}

static void wr(struct serial *s, unsigned int off, uint8_t v)
{
	serial_io(s, off, &v, 1, true);
}

static ssize_t drain(int fd, char *buf, size_t len)
{
	ssize_t n = read(fd, buf, len);

	return n < 0 ? 0 : n;
}

struct fixture {
	struct serial *s;
	int out[2];
	int irq;
};

static void fixture_open(struct fixture *f)
{
	struct kiln_error err = { 0 };

	if (pipe(f->out) < 0 || fcntl(f->out[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(f->out[1], F_SETFL, O_NONBLOCK) < 0)
		abort();
	f->irq = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	f->s = serial_new(f->out[1], f->irq, &err);
	if (f->s == NULL || f->irq < 0)
		abort();
}

/* What the drain side writes now, as the pipe's reader sees it. */
static ssize_t out(struct fixture *f, char *buf, size_t len)
{
	serial_out_drain(f->s);
	return drain(f->out[0], buf, len);
}

static void fixture_close(struct fixture *f)
{
	serial_free(f->s);
	close(f->out[0]);
	close(f->out[1]);
	close(f->irq);
}

/* ---- core tests ---- */

static void test_output(void)
{
	struct fixture f;
	char buf[600];
	ssize_t n;
	uint64_t v;
	int i, wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	fixture_open(&f);
	serial_set_out_wake(f.s, wake);
	wr(f.s, 0, 'h');
	wr(f.s, 0, 'i');
	is_int(read(wake, &v, sizeof(v)), -1, "output: no wake-up mid-line");
	is_int(out(&f, buf, sizeof(buf)), 0, "output: held until a newline");
	wr(f.s, 0, '\n');
	wr(f.s, 0, 'o');
	wr(f.s, 0, '\n');
	ok(read(wake, &v, sizeof(v)) == sizeof(v) && v == 1, "output: one "
							     "wake-up for two "
							     "lines not yet "
							     "drained");
	n = out(&f, buf, sizeof(buf));
	ok(n == 5 && memcmp(buf, "hi\no\n", 5) == 0, "output: newlines make it "
						     "ready");
	wr(f.s, 0, '\n');
	ok(read(wake, &v, sizeof(v)) == sizeof(v) && v == 1, "output: a "
							     "wake-up again "
							     "once drained");
	out(&f, buf, sizeof(buf));

	wr(f.s, 0, '$');
	serial_flush(f.s);
	n = drain(f.out[0], buf, sizeof(buf));
	ok(n == 1 && buf[0] == '$', "output: serial_flush writes a prompt");

	for (i = 0; i < 300; i++)
		wr(f.s, 0, 'x');
	n = out(&f, buf, sizeof(buf));
	is_int(n, 256, "output: 256 bytes go without a newline");
	serial_free(f.s);
	f.s = NULL;
	n = drain(f.out[0], buf, sizeof(buf));
	is_int(n, 44, "output: serial_free flushes the rest");
	fixture_close(&f);
	close(wake);

	fixture_open(&f);
	wr(f.s, 1, 0x02); /* ETBEI: Linux starting to transmit */
	wr(f.s, 0, '#');
	wr(f.s, 0, ' ');
	wr(f.s, 1, 0x00); /* ... and stopping: end of the burst */
	n = out(&f, buf, sizeof(buf));
	ok(n == 2 && memcmp(buf, "# ", 2) == 0, "output: clearing ETBEI "
						"flushes a prompt");
	fixture_close(&f);
}

static void test_registers(void)
{
	struct fixture f;
	uint8_t c;

	fixture_open(&f);
	is_int(rd(f.s, 5), 0x60, "LSR: THRE|TEMT, no data");
	is_int(rd(f.s, 2), 0x01, "IIR: no interrupt at reset");
	is_int(rd(f.s, 3), 0x03, "LCR: 8N1 at reset");
	is_int(rd(f.s, 6), 0xb0, "MSR: DCD|DSR|CTS, no deltas");

	wr(f.s, 7, 0x5a);
	is_int(rd(f.s, 7), 0x5a, "SCR keeps a write");

	wr(f.s, 1, 0xff);
	is_int(rd(f.s, 1), 0x0f, "IER: bits 4-7 read 0");
	wr(f.s, 1, 0);

	wr(f.s, 3, 0x83); /* DLAB */
	wr(f.s, 0, 0x01);
	wr(f.s, 1, 0x02);
	is_int(rd(f.s, 0), 0x01, "DLAB: DLL reads back");
	is_int(rd(f.s, 1), 0x02, "DLAB: DLM reads back");
	wr(f.s, 3, 0x03);
	is_int(rd(f.s, 1), 0x00, "DLAB off: offset 1 is IER again");
	is_int(out(&f, (char *)&c, 1), 0, "DLAB: a DLL write is not output");

	wr(f.s, 2, 0x01); /* FCR: FIFO on */
	is_int(rd(f.s, 2), 0xc1, "IIR: bits 7:6 set with the FIFO on");
	wr(f.s, 2, 0x00);
	is_int(rd(f.s, 2), 0x01, "IIR: bits 7:6 clear with the FIFO off");

	c = 'a';
	serial_input(f.s, &c, 1);
	is_int(rd(f.s, 5), 0x61, "LSR: DR with input queued");
	is_int(rd(f.s, 0), 'a', "RBR: the input byte");
	is_int(rd(f.s, 5), 0x60, "LSR: DR clear once read");
	fixture_close(&f);
}

static void test_loopback(void)
{
	struct fixture f;
	char buf[8];
	int i;

	fixture_open(&f);
	wr(f.s, 4, 0x10 | 0x0a); /* LOOP | OUT2 | RTS, as Linux probes */
	is_int(rd(f.s, 6) & 0xf0, 0x90, "loopback: MSR = DCD|CTS from MCR");
	is_int(rd(f.s, 6), 0x90, "loopback: MSR deltas clear once read");
	wr(f.s, 4, 0x10 | 0x0f);
	is_int(rd(f.s, 6), 0xf0 | 0x02,
	       "loopback: DTR, OUT1 show as DSR, RI; DDSR set");
	wr(f.s, 4, 0x10 | 0x0b);
	is_int(rd(f.s, 6), 0xb0 | 0x04, "loopback: RI falling sets TERI");

	wr(f.s, 0, 'L');
	is_int(out(&f, buf, sizeof(buf)), 0, "loopback: THR is not output");
	serial_flush(f.s);
	is_int(drain(f.out[0], buf, sizeof(buf)), 0,
	       "loopback: nothing buffered for output either");
	is_int(rd(f.s, 5) & 0x01, 0x01, "loopback: DR set");
	is_int(rd(f.s, 0), 'L', "loopback: the byte comes back");

	for (i = 0; i < SERIAL_RX_FIFO + 1; i++)
		wr(f.s, 0, i);
	is_int(rd(f.s, 5), 0x63, "loopback: a 65th byte sets OE");
	is_int(rd(f.s, 5), 0x61, "loopback: OE clears when LSR is read");
	is_int(rd(f.s, 0), 0, "loopback: the FIFO kept the first byte");

	wr(f.s, 4, 0x08);
	is_int(rd(f.s, 6), 0xb0, "loopback off: lines back to DCD|DSR|CTS");
	wr(f.s, 0, 'o');
	wr(f.s, 0, '\n');
	ok(out(&f, buf, sizeof(buf)) == 2 && buf[0] == 'o', "loopback "
							    "off: THR "
							    "is output "
							    "again");
	fixture_close(&f);
}

static void test_interrupts(void)
{
	struct fixture f;
	uint8_t c = 'a';
	int i;

	fixture_open(&f);
	wr(f.s, 2, 0x01);
	wr(f.s, 0, 'x');
	is_int(irqs(f.irq), 0, "irq: none while IER is 0");

	wr(f.s, 1, 0x02); /* ETBEI */
	is_int(irqs(f.irq), 1, "irq: enabling ETBEI with THR empty raises");
	is_int(rd(f.s, 2), 0xc2, "IIR: THRE");
	is_int(rd(f.s, 2), 0xc1, "IIR: reading it cleared THRE");
	is_int(irqs(f.irq), 0, "irq: none from reading IIR");

	wr(f.s, 0, 'y');
	is_int(irqs(f.irq), 1, "irq: a THR write raises THRE again");
	wr(f.s, 0, 'z');
	is_int(irqs(f.irq), 0, "irq: no second edge while the line is high");
	is_int(rd(f.s, 2), 0xc2, "IIR: THRE once for the burst");

	/* Linux's UART_BUG_THRE probe: disable, re-enable, see THRE again */
	wr(f.s, 1, 0x00);
	wr(f.s, 1, 0x02);
	is_int(rd(f.s, 2), 0xc2, "IIR: THRE re-asserted after IER toggle");
	is_int(irqs(f.irq), 1, "irq: the toggle raised once");

	wr(f.s, 1, 0x00);
	wr(f.s, 1, 0x03); /* ERBFI | ETBEI: THRE pending, line high */
	is_int(irqs(f.irq), 1, "irq: THRE with ERBFI|ETBEI");
	serial_input(f.s, &c, 1);
	is_int(irqs(f.irq), 0, "irq: data while the line is high: no edge");
	is_int(rd(f.s, 2), 0xc4, "IIR: received data outranks THRE");
	is_int(rd(f.s, 2), 0xc4, "IIR: reading does not clear RDA");
	rd(f.s, 0);
	is_int(rd(f.s, 2), 0xc2, "IIR: THRE still pending behind RDA");
	is_int(rd(f.s, 2), 0xc1, "IIR: then nothing");

	serial_input(f.s, &c, 1);
	is_int(irqs(f.irq), 1, "irq: input with the line low raises");
	rd(f.s, 0);
	is_int(rd(f.s, 2), 0xc1, "IIR: reading RBR cleared RDA");

	wr(f.s, 1, 0x00);
	serial_input(f.s, &c, 1);
	is_int(irqs(f.irq), 0, "irq: none for input with ERBFI off");
	wr(f.s, 1, 0x01);
	is_int(irqs(f.irq), 1, "irq: enabling ERBFI with data raises");
	rd(f.s, 0);

	/* line status outranks received data */
	wr(f.s, 1, 0x05); /* ELSI | ERBFI */
	wr(f.s, 4, 0x18);
	irqs(f.irq);
	for (i = 0; i < SERIAL_RX_FIFO + 1; i++)
		wr(f.s, 0, i);
	is_int(rd(f.s, 2), 0xc6, "IIR: overrun (line status) first");
	rd(f.s, 5);
	is_int(rd(f.s, 2), 0xc4, "IIR: then received data");
	wr(f.s, 2, 0x03); /* clear the receive FIFO */
	is_int(rd(f.s, 2), 0xc1, "IIR: FCR cleared the FIFO");

	/* modem status, lowest priority */
	wr(f.s, 1, 0x08);
	rd(f.s, 6);
	irqs(f.irq);
	wr(f.s, 4, 0x1a);
	is_int(irqs(f.irq), 1, "irq: a modem line change with EDSSI raises");
	is_int(rd(f.s, 2), 0xc0, "IIR: modem status");
	rd(f.s, 6);
	is_int(rd(f.s, 2), 0xc1, "IIR: reading MSR cleared it");
	fixture_close(&f);
}

static void test_fifo(void)
{
	struct fixture f;
	uint8_t in[100];
	uint64_t v;
	int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int i, bad = 0;

	fixture_open(&f);
	serial_set_rx_wake(f.s, wake);
	for (i = 0; i < 100; i++)
		in[i] = i;
	is_int(serial_input(f.s, in, 100), SERIAL_RX_FIFO,
	       "fifo: takes 64 bytes of 100");
	is_int(serial_input(f.s, in + 64, 36), 0, "fifo: full, refuses");
	is_int(serial_rx_room(f.s), 0, "fifo: no room");
	for (i = 0; i < 31; i++)
		bad |= rd(f.s, 0) != i;
	is_int(read(wake, &v, sizeof(v)), -1, "fifo: no wake above half");
	bad |= rd(f.s, 0) != 31;
	ok(read(wake, &v, sizeof(v)) == sizeof(v) && v == 1, "fifo: wake once "
							     "drained to half");
	is_int(serial_input(f.s, in + 64, 36), 32, "fifo: takes 32 more");
	for (i = 32; i < 96; i++)
		bad |= rd(f.s, 0) != i;
	ok(!bad, "fifo: bytes come out in order");
	is_int(rd(f.s, 5) & 0x01, 0, "fifo: empty again");
	is_int(serial_rx_room(f.s), SERIAL_RX_FIFO, "fifo: all room back");
	fixture_close(&f);
	close(wake);
}

static void test_odd_access(void)
{
	struct fixture f;
	uint8_t c = 'q', buf[8];
	uint32_t v32 = 0;

	fixture_open(&f);
	serial_input(f.s, &c, 1);
	wr(f.s, 7, 0x11);
	memset(buf, 0, sizeof(buf));
	serial_io(f.s, 0, buf, 2, false);
	ok(buf[0] == 0xff && buf[1] == 0xff, "odd: a 2-byte read floats");
	is_int(rd(f.s, 5) & 0x01, 0x01, "odd: and did not pop the FIFO");
	v32 = 0xdeadbeef;
	serial_io(f.s, 7, (uint8_t *)&v32, 4, true);
	is_int(rd(f.s, 7), 0x11, "odd: a 4-byte write changed nothing");
	serial_io(f.s, 8, buf, 1, false);
	is_int(buf[0], 0xff, "odd: offset 8 reads as a floating bus");
	memset(buf, 'x', sizeof(buf));
	serial_io(f.s, UINT64_MAX, buf, 8, true);
	serial_io(f.s, UINT64_MAX, buf, 1, true);
	is_int(rd(f.s, 7), 0x11, "odd: offset ~0 writes changed nothing");
	is_int(rd(f.s, 5) & 0x01, 0x01, "odd: the byte still waits");
	is_int(rd(f.s, 0), 'q', "odd: and reads back as it came");
	is_int(drain(f.out[0], (char *)buf, sizeof(buf)), 0,
	       "odd: and nothing reached the output");
	fixture_close(&f);
}

static void test_epipe(const char *logpath)
{
	struct fixture f;
	int i;

	fixture_open(&f);
	close(f.out[0]);
	f.out[0] = open("/dev/null", O_RDONLY);
	for (i = 0; i < 5; i++) {
		wr(f.s, 0, 'x');
		wr(f.s, 0, '\n');
		is_int(serial_out_drain(f.s), i == 0 ? -1 : 0,
		       "EPIPE: the drain fails once, then has nothing to do");
	}
	is_int(rd(f.s, 5), 0x60, "EPIPE: the UART keeps working");
	is_int(count_in_file(logpath, "console output failed"), 1,
	       "EPIPE: logged once");
	fixture_close(&f);
}

/* ---- the input pump, on a real event loop in its own thread ---- */

static void *loop_thread(void *opaque)
{
	struct kiln_error err = { 0 };

	evloop_run(opaque, &err);
	return NULL;
}

static uint64_t thread_cpu_ns(pthread_t t)
{
	struct timespec ts;
	clockid_t id;

	if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* What the guest reads within ms milliseconds, polling LSR.DR. */
static int guest_read(struct serial *s, uint8_t *buf, int max, long ms)
{
	int n = 0;

	for (long waited = 0; n < max && waited < ms;) {
		if (rd(s, 5) & 0x01) {
			buf[n++] = rd(s, 0);
			continue;
		}
		nap_ms(1);
		waited++;
	}
	return n;
}

/* Wait up to 2 s for the loop thread to fill the FIFO. */
static bool fifo_fills(struct serial *s)
{
	for (int i = 0; i < 2000; i++) {
		if (serial_rx_room(s) == 0)
			return true;
		nap_ms(1);
	}
	return false;
}

static void test_pump(void)
{
	struct kiln_error err = { 0 };
	struct evloop loop;
	struct fixture f;
	struct serial_pump *pump;
	uint8_t data[100], got[100];
	uint64_t cpu;
	pthread_t th;
	int p[2], i, n, bad = 0;

	fixture_open(&f);
	if (pipe(p) < 0 || evloop_init(&loop, &err) < 0)
		abort();
	pump = serial_pump_start(f.s, &loop, p[0], &err);
	ok(pump != NULL, "pump: starts on a pipe");
	if (pump == NULL)
		return;
	for (i = 0; i < 100; i++)
		data[i] = i + 1;
	if (write(p[1], data, 100) != 100 ||
	    pthread_create(&th, NULL, loop_thread, &loop) != 0)
		abort();

	ok(fifo_fills(f.s), "pump: filled the FIFO");
	cpu = thread_cpu_ns(th);
	nap_ms(100);
	ok(thread_cpu_ns(th) - cpu < 20000000ULL, "pump: the loop sleeps while "
						  "the FIFO is full");
	n = guest_read(f.s, got, 100, 2000);
	ok(n == 100 && memcmp(got, data, 100) == 0,
	   "pump: all 100 bytes reached the guest, in order (%d)", n);

	/* a hang-up while the FIFO is full must not spin the loop */
	if (write(p[1], data, 70) != 70)
		abort();
	close(p[1]);
	ok(fifo_fills(f.s), "pump: FIFO full again, writer gone");
	nap_ms(20);
	cpu = thread_cpu_ns(th);
	nap_ms(100);
	ok(thread_cpu_ns(th) - cpu < 20000000ULL, "pump: a hang-up with a full "
						  "FIFO does not spin the "
						  "loop");
	n = guest_read(f.s, got, 70, 2000);
	for (i = 0; i < n; i++)
		bad |= got[i] != data[i];
	ok(n == 70 && !bad, "pump: the 70 bytes written before the hang-up");
	nap_ms(50);
	cpu = thread_cpu_ns(th);
	nap_ms(100);
	ok(thread_cpu_ns(th) - cpu < 20000000ULL, "pump: end of input leaves "
						  "the loop idle");

	evloop_stop(&loop);
	pthread_join(th, NULL);
	serial_pump_stop(pump);
	close(p[0]);
	evloop_destroy(&loop);
	fixture_close(&f);
}

/* ---- output to a console nobody reads ---- */

#define STALL_BYTES (512 * 1024)

struct vcpu_writer {
	struct serial *s;
	const char *data;
	size_t len;
	uint64_t ns; /* how long the THR writes took */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void *vcpu_write(void *opaque)
{
	struct vcpu_writer *w = opaque;
	uint64_t t0 = now_ns();

	for (size_t i = 0; i < w->len; i++)
		wr(w->s, 0, (uint8_t)w->data[i]);
	w->ns = now_ns() - t0;
	return NULL;
}

/* Run w on a thread of its own; false if it is not done within 10 s. */
static bool vcpu_write_within(struct vcpu_writer *w)
{
	struct timespec dl;
	pthread_t th;

	if (pthread_create(&th, NULL, vcpu_write, w) != 0)
		abort();
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	if (pthread_timedjoin_np(th, NULL, &dl) == 0)
		return true;
	/* the write path blocked: nothing sane is left to test */
	ok(0, "stall: the vCPU side is still writing after 10 s");
	exit(tap_done());
}

/* Read fd until want bytes came or 5 s pass without any. */
static size_t read_all(int fd, char *buf, size_t want)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;

	while (got < want && poll(&pfd, 1, 5000) > 0) {
		n = read(fd, buf + got, want - got);
		if (n <= 0 && errno != EAGAIN)
			break;
		if (n > 0)
			got += n;
	}
	return got;
}

static void test_stall(void)
{
	struct kiln_error err = { 0 };
	struct vcpu_writer w = { 0 };
	struct serial_drain *d;
	struct evloop loop;
	struct fixture f;
	char *sent = malloc(STALL_BYTES + 1), *got = malloc(STALL_BYTES);
	uint64_t missed0, missed, t0;
	size_t i, len, filler, mid, tail;
	const char *at;
	pthread_t th;

	for (i = 0; i < STALL_BYTES; i += 8)
		snprintf(sent + i, 9, "%07zu\n", i / 8);
	fixture_open(&f);
	if (evloop_init(&loop, &err) < 0)
		abort();
	d = serial_drain_start(f.s, &loop, f.out[1], &err);
	ok(d != NULL, "stall: the drain starts on a pipe");
	if (d == NULL || pthread_create(&th, NULL, loop_thread, &loop) != 0)
		abort();

	/*
	 * Nobody reads f.out[0], and the pipe is full from the start, so
	 * that what arrives later does not depend on how far the loop got
	 * while the vCPU was writing.
	 */
	memset(got, 'F', 4096);
	for (filler = 0; write(f.out[1], got, 4096) == 4096;)
		filler += 4096;
	for (; write(f.out[1], got, 1) == 1;)
		filler++;
	missed0 = metrics_get(&metrics_uart, UART_M_MISSED_WRITE);
	w.s = f.s;
	w.data = sent;
	w.len = STALL_BYTES;
	ok(vcpu_write_within(&w), "stall: the vCPU side wrote %d KiB",
	   STALL_BYTES / 1024);
	printf("# stall: %d KiB of THR writes took %llu ms\n",
	       STALL_BYTES / 1024, (unsigned long long)(w.ns / 1000000));
	ok(w.ns < 2000000000ULL, "stall: the vCPU side never waits for the "
				 "reader");
	missed = metrics_get(&metrics_uart, UART_M_MISSED_WRITE) - missed0;
	ok(missed > STALL_BYTES / 2,
	   "stall: missed_write_count counts the "
	   "dropped bytes (%llu)",
	   (unsigned long long)missed);
	is_int(rd(f.s, 5), 0x60, "stall: LSR says the transmitter is empty");

	/* the reader comes back: the loop drains the rest on EPOLLOUT */
	len = read_all(f.out[0], got, filler + STALL_BYTES - missed);
	is_int(len, filler + STALL_BYTES - missed,
	       "stall: every byte not counted as dropped arrives");
	for (i = 0; i < filler && i < len && got[i] == 'F'; i++)
		;
	is_int(i, filler, "stall: first what the pipe held");
	/* then at most a chunk the loop took before the pipe was full... */
	for (tail = 0; tail < len - filler &&
		       got[len - 1 - tail] == sent[STALL_BYTES - 1 - tail];
	     tail++)
		;
	mid = len - filler - tail;
	at = mid == 0 ? sent
		      : memmem(sent, STALL_BYTES - tail, got + filler, mid);
	ok(at != NULL && mid <= 4096,
	   "stall: then %zu bytes the loop had "
	   "taken, in order",
	   mid);
	/* ... and the newest, the ring's worth */
	ok(tail >= 64 * 1024, "stall: then the newest %zu bytes, in order",
	   tail);

	/* stalled again at exit: serial_free gives up after about 1 s */
	missed0 = metrics_get(&metrics_uart, UART_M_MISSED_WRITE);
	w.len = 256 * 1024;
	ok(vcpu_write_within(&w), "stall: 256 KiB more, still nobody reading");
	evloop_stop(&loop);
	pthread_join(th, NULL);
	serial_drain_stop(d);
	evloop_destroy(&loop);
	t0 = now_ns();
	serial_free(f.s);
	f.s = NULL;
	t0 = now_ns() - t0;
	ok(t0 < 3000000000ULL, "stall: the flush at exit gives up (%llu ms)",
	   (unsigned long long)(t0 / 1000000));
	missed = metrics_get(&metrics_uart, UART_M_MISSED_WRITE) - missed0;
	len = read_all(f.out[0], got, 256 * 1024 - missed);
	is_int(len + missed, 256 * 1024,
	       "stall: every byte at exit was written or counted");
	fixture_close(&f);
	free(sent);
	free(got);
}

/* The reader goes away while the output is idle: no spin, said once. */
static void test_drain_hangup(const char *logpath)
{
	struct kiln_error err = { 0 };
	struct serial_drain *d;
	struct evloop loop;
	struct fixture f;
	uint64_t cpu, missed0;
	pthread_t th;
	int logged = count_in_file(logpath, "console output failed");

	fixture_open(&f);
	if (evloop_init(&loop, &err) < 0)
		abort();
	d = serial_drain_start(f.s, &loop, f.out[1], &err);
	if (d == NULL || pthread_create(&th, NULL, loop_thread, &loop) != 0)
		abort();
	close(f.out[0]);
	f.out[0] = open("/dev/null", O_RDONLY);
	nap_ms(50);
	/* a spinning loop gets a good part of a busy 2-core machine too */
	cpu = thread_cpu_ns(th);
	nap_ms(300);
	ok(thread_cpu_ns(th) - cpu < 5000000ULL, "hang-up: the loop does not "
						 "spin on EPOLLERR");
	is_int(count_in_file(logpath, "console output failed"), logged + 1,
	       "hang-up: logged once");
	missed0 = metrics_get(&metrics_uart, UART_M_MISSED_WRITE);
	wr(f.s, 0, 'x');
	wr(f.s, 0, '\n');
	is_int(metrics_get(&metrics_uart, UART_M_MISSED_WRITE) - missed0, 2,
	       "hang-up: later output is counted as missed");
	evloop_stop(&loop);
	pthread_join(th, NULL);
	serial_drain_stop(d);
	evloop_destroy(&loop);
	fixture_close(&f);
}

static void test_pump_eperm(void)
{
	struct kiln_error err = { 0 };
	struct evloop loop;
	struct fixture f;
	int fd = open("/dev/null", O_RDONLY);

	fixture_open(&f);
	if (evloop_init(&loop, &err) < 0)
		abort();
	ok(serial_pump_start(f.s, &loop, fd, &err) == NULL &&
		   err.errnum == EPERM,
	   "pump: /dev/null is refused with EPERM");
	evloop_destroy(&loop);
	fixture_close(&f);
	close(fd);
}

/* ---- the glue, through the device table ---- */

static void test_glue(void)
{
	const struct vmm_device *dev = vdrv_find("serial");
	struct vm_config cfg = { 0 };
	struct vm *vm = calloc(1, sizeof(*vm));
	struct kiln_error err = { 0 };
	char path[] = "/tmp/kiln-serial-XXXXXX";
	void *state = NULL;
	int fd;

	ok(dev != NULL && dev->level == DEVICE_LEVEL_LEGACY, "glue: serial is "
							     "in the device "
							     "table at the "
							     "legacy level");
	if (dev == NULL)
		return;
	vm->cfg = &cfg;
	vm->vm_fd = -1;

	cfg.console_path = "/nonexistent-kiln-dir/console.log";
	is_int(dev->init(vm, &state, &err), -1, "glue: bad console path fails");
	ok(strstr(err.msg, cfg.console_path) != NULL && err.errnum == ENOENT,
	   "glue: the error names the path (%s)", err.msg);

	/* without /dev/kvm the irqfd fails: the error says which IRQ */
	fd = mkstemp(path);
	close(fd);
	cfg.console_path = path;
	memset(&err, 0, sizeof(err));
	is_int(dev->init(vm, &state, &err), -1, "glue: no VM, no irqfd");
	ok(strncmp(err.msg, "serial: IRQ 4", 13) == 0,
	   "glue: the error names IRQ 4 (%s)", err.msg);
	is_int(vm->traps.count[TRAP_PIO], 0, "glue: no trap left behind");
	unlink(path);
	free(vm);
}

int main(void)
{
	char logpath[] = "/tmp/kiln-serial-log-XXXXXX";
	int fd = mkstemp(logpath);

	/* the VMM's main ignores SIGPIPE too: EPIPE is handled in-line */
	signal(SIGPIPE, SIG_IGN);
	close(fd);
	log_set_level(LOG_DEBUG);
	log_open(logpath);

	test_output();
	test_registers();
	test_loopback();
	test_interrupts();
	test_fifo();
	test_odd_access();
	test_epipe(logpath);
	test_pump();
	test_stall();
	test_drain_hangup(logpath);
	test_pump_eperm();
	test_glue();
	unlink(logpath);
	return tap_done();
}
