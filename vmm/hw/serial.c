/* SPDX-License-Identifier: Apache-2.0 */
/*
 * 8250/16550A UART on COM1: the guest console.
 *
 * The transmitter is always empty (LSR THRE|TEMT) and a THR write makes
 * the THR-empty interrupt pending again at once: output goes into a ring
 * (SERIAL_OUT_RING) and the vCPU is done. The vCPU never writes to the
 * console fd: whoever reads it (a pipe to a shim, a log driver, a terminal
 * stopped with ^S) may stall, and a vCPU must never wait on a host process.
 * The event loop drains the ring when the fd is writable; while it is not,
 * the ring keeps the newest bytes and drops the oldest, counted in the uart
 * group's missed_write_count.
 *
 * Input comes from the host's stdin through a 64-byte receive FIFO;
 * the FIFO is always on whatever FCR says (as in Firecracker's vm-superio),
 * FCR only decides what IIR bits 7:6 report. Line errors never happen
 * except an overrun in loopback mode.
 *
 * The interrupt is an edge on an irqfd, as on an ISA bus: we compute the
 * level the chip's INTR pin would have after every access and write the
 * eventfd only when it rises. A guest handler loops until IIR says "no
 * interrupt", so an edge is never lost.
 */
#include "serial.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "../device.h"
#include "../evloop.h"
#include "../layout.h"
#include "../metrics.h"
#include "../trap.h"
#include "../vm.h"

/* register offsets */
#define UART_RBR 0 /* read, DLAB=0: receive buffer */
#define UART_THR 0 /* write, DLAB=0: transmit holding */
#define UART_DLL 0 /* DLAB=1: divisor latch, low byte */
#define UART_IER 1 /* DLAB=0: interrupt enable */
#define UART_DLM 1 /* DLAB=1: divisor latch, high byte */
#define UART_IIR 2 /* read: interrupt identification */
#define UART_FCR 2 /* write: FIFO control */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmit holding register empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK  0x0f /* bits 4-7 read 0: Linux probes them */

#define IIR_NONE 0x01
#define IIR_MSR	 0x00
#define IIR_THRE 0x02
#define IIR_RDA	 0x04
#define IIR_RLS	 0x06
#define IIR_FIFO 0xc0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02

#define LCR_DLAB 0x80

#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR	 0x01
#define LSR_OE	 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS	 0x10
#define MSR_DSR	 0x20
#define MSR_RI	 0x40
#define MSR_DCD	 0x80

/*
 * Guest output held for a console that does not keep up. 64 KiB: a whole
 * boot log at the default loglevel (30-60 KiB) survives a reader that is
 * late by seconds, as much again as a default pipe holds, and small enough
 * for a host running thousands of VMs. Once full, each new byte drops the
 * oldest: after a stall the reader sees what the guest printed last.
 */
#define SERIAL_OUT_RING (64 * 1024)
/* Bytes held back without a newline before they go out anyway. */
#define SERIAL_OUT_BATCH 256
/* Taken from the ring per write(): the lock is held for the copy only. */
#define SERIAL_OUT_CHUNK 4096
/* How long serial_flush() (at exit) waits for a stalled console. */
#define SERIAL_FLUSH_MS 1000

struct serial {
	/*
	 * vCPU threads and the drain side (the event loop, or the caller of
	 * serial_flush() once the loop has stopped). Held for register
	 * accesses and ring copies, never across a write() to out_fd.
	 */
	pthread_mutex_t lock;
	int out_fd;
	bool out_sock; /* out_fd is a socket: send() with MSG_DONTWAIT */
	int irq_fd;
	int wake_fd;
	int out_wake_fd; /* eventfd to the drain side: output is ready */

	uint8_t ier;
	uint8_t lcr;
	uint8_t mcr;
	uint8_t scr;
	uint8_t dll;
	uint8_t dlm;
	uint8_t msr_delta; /* MSR bits 0-3, cleared by reading MSR */
	bool fifo_on;	   /* FCR bit 0, only reported in IIR */
	bool thre_pending; /* THR-empty interrupt not yet acknowledged */
	bool overrun;	   /* LSR OE until LSR is read */
	bool irq_line;	   /* INTR level after the last access */
	bool rx_wait;	   /* input was refused: wake when drained */
	bool out_dead;	   /* output failed once: drop from now on */
	bool out_kicked;   /* out_wake_fd written, not yet drained to empty */

	uint8_t rx[SERIAL_RX_FIFO];
	unsigned int rx_head;
	unsigned int rx_count;

	/* output ring: out_len bytes from out_head, the first out_ready of
	 * them may be written (the rest wait for a newline or a batch) */
	size_t out_head;
	size_t out_len;
	size_t out_ready;
	uint64_t out_dropped; /* oldest bytes dropped, not yet logged */
	uint8_t out[SERIAL_OUT_RING];

	/* drain side only, no lock: bytes taken from the ring, not written */
	size_t tx_off;
	size_t tx_len;
	uint8_t tx[SERIAL_OUT_CHUNK];
};

static void serial_kick(int fd)
{
	uint64_t one = 1;

	/*
	 * EAGAIN means the counter is about to overflow because nobody reads
	 * it: the event is pending anyway.
	 */
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN &&
	    log_ratelimit())
		log_warn("serial: eventfd write: %s", strerror(errno));
}

/* The source IIR reports, in the chip's priority order. */
static uint8_t serial_irq_source(const struct serial *s)
{
	if ((s->ier & IER_ELSI) && s->overrun)
		return IIR_RLS;
	if ((s->ier & IER_ERBFI) && s->rx_count > 0)
		return IIR_RDA;
	if ((s->ier & IER_ETBEI) && s->thre_pending)
		return IIR_THRE;
	if ((s->ier & IER_EDSSI) && s->msr_delta)
		return IIR_MSR;
	return IIR_NONE;
}

static void serial_update_irq(struct serial *s)
{
	bool line = serial_irq_source(s) != IIR_NONE;

	if (line && !s->irq_line)
		serial_kick(s->irq_fd);
	s->irq_line = line;
}

/* The vCPU side: what is held may be written now; wake the drain side. */
static void serial_out_ready(struct serial *s)
{
	s->out_ready = s->out_len;
	if (s->out_ready > 0 && !s->out_kicked) {
		s->out_kicked = true;
		serial_kick(s->out_wake_fd);
	}
}

static void serial_putc(struct serial *s, uint8_t c)
{
	metrics_inc(&metrics_uart, UART_M_WRITE);
	if (s->out_dead)
		metrics_inc(&metrics_uart, UART_M_MISSED_WRITE);
	if (s->out_dead || s->out_fd < 0)
		return;
	if (s->out_len == SERIAL_OUT_RING) {
		/* the console is not keeping up: drop the oldest byte */
		s->out_head = (s->out_head + 1) % SERIAL_OUT_RING;
		s->out_len--;
		if (s->out_ready > 0)
			s->out_ready--;
		s->out_dropped++;
		metrics_inc(&metrics_uart, UART_M_MISSED_WRITE);
	}
	s->out[(s->out_head + s->out_len) % SERIAL_OUT_RING] = c;
	s->out_len++;
	if (c == '\n' || s->out_len - s->out_ready >= SERIAL_OUT_BATCH)
		serial_out_ready(s);
}

/*
 * The drain side: move up to SERIAL_OUT_CHUNK ready bytes from the ring to
 * tx. Finding none re-arms the wake-up, in the same critical section as
 * the vCPU side tests it, so no ready byte is left without one.
 */
static size_t serial_out_take(struct serial *s)
{
	size_t n, first;
	uint64_t dropped;

	pthread_mutex_lock(&s->lock);
	n = s->out_ready < SERIAL_OUT_CHUNK ? s->out_ready : SERIAL_OUT_CHUNK;
	first = SERIAL_OUT_RING - s->out_head;
	if (first > n)
		first = n;
	memcpy(s->tx, s->out + s->out_head, first);
	memcpy(s->tx + first, s->out, n - first);
	s->out_head = (s->out_head + n) % SERIAL_OUT_RING;
	s->out_len -= n;
	s->out_ready -= n;
	if (n == 0)
		s->out_kicked = false;
	dropped = s->out_dropped;
	s->out_dropped = 0;
	pthread_mutex_unlock(&s->lock);
	s->tx_off = 0;
	s->tx_len = n;
	if (dropped > 0 && log_ratelimit())
		log_warn("serial: console output stalled, dropped the oldest "
			 "%llu bytes",
			 (unsigned long long)dropped);
	return n;
}

/* Drop everything buffered, counting it; with reason, stop for good. */
static void serial_out_discard(struct serial *s, const char *reason)
{
	uint64_t lost = s->tx_len - s->tx_off;
	bool was_dead;

	pthread_mutex_lock(&s->lock);
	lost += s->out_len;
	s->out_head = s->out_len = s->out_ready = 0;
	s->out_kicked = false;
	was_dead = s->out_dead;
	if (reason != NULL)
		s->out_dead = true;
	pthread_mutex_unlock(&s->lock);
	s->tx_off = s->tx_len = 0;
	metrics_add(&metrics_uart, UART_M_MISSED_WRITE, lost);
	if (reason != NULL && !was_dead) {
		/* the console is gone, the guest is not: keep it running */
		metrics_inc(&metrics_uart, UART_M_ERROR);
		log_warn("serial: console output failed, dropping it from now "
			 "on: %s",
			 reason);
	}
}

static ssize_t serial_out_write(struct serial *s, const uint8_t *buf,
				size_t len)
{
	if (s->out_sock)
		return send(s->out_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	return write(s->out_fd, buf, len);
}

int serial_out_drain(struct serial *s)
{
	ssize_t n;

	if (s->out_fd < 0)
		return 0;
	for (;;) {
		if (s->tx_off == s->tx_len && serial_out_take(s) == 0)
			return 0;
		n = serial_out_write(s, s->tx + s->tx_off,
				     s->tx_len - s->tx_off);
		if (n > 0) {
			s->tx_off += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		serial_out_discard(s, n < 0 ? strerror(errno) : "short write");
		return -1;
	}
}

void serial_out_fail(struct serial *s, const char *reason)
{
	serial_out_discard(s, reason);
}

static bool serial_rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_count == SERIAL_RX_FIFO)
		return false;
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = c;
	s->rx_count++;
	return true;
}

/*
 * Resume the host's input once the guest has made real room, not at every
 * byte it reads, so a paste does not cost one wakeup per byte.
 */
static void serial_rx_drained(struct serial *s)
{
	if (s->rx_wait && s->rx_count <= SERIAL_RX_FIFO / 2) {
		s->rx_wait = false;
		serial_kick(s->wake_fd);
	}
}

static uint8_t serial_rx_pop(struct serial *s)
{
	uint8_t c;

	if (s->rx_count == 0)
		return 0;
	metrics_inc(&metrics_uart, UART_M_READ);
	c = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
	s->rx_count--;
	serial_rx_drained(s);
	return c;
}

/* MSR bits 4-7: a connected terminal, or MCR wired back in loopback. */
static uint8_t serial_msr_lines(const struct serial *s)
{
	uint8_t m = s->mcr, v = 0;

	if (!(m & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	if (m & MCR_DTR)
		v |= MSR_DSR;
	if (m & MCR_RTS)
		v |= MSR_CTS;
	if (m & MCR_OUT1)
		v |= MSR_RI;
	if (m & MCR_OUT2)
		v |= MSR_DCD;
	return v;
}

static void serial_write_mcr(struct serial *s, uint8_t v)
{
	uint8_t old = serial_msr_lines(s), now, changed;

	s->mcr = v & MCR_MASK;
	now = serial_msr_lines(s);
	changed = old ^ now;
	if (changed & MSR_CTS)
		s->msr_delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		s->msr_delta |= MSR_DDSR;
	if (changed & MSR_DCD)
		s->msr_delta |= MSR_DDCD;
	if ((old & MSR_RI) && !(now & MSR_RI)) /* trailing edge only */
		s->msr_delta |= MSR_TERI;
}

static void serial_write_ier(struct serial *s, uint8_t v)
{
	uint8_t old = s->ier;

	s->ier = v & IER_MASK;
	/*
	 * Enabling ETBEI with the THR empty raises THRE at once, and again
	 * after a disable/enable: Linux tests exactly that at startup and
	 * falls back to polling (UART_BUG_THRE) if it does not happen.
	 */
	if ((s->ier & IER_ETBEI) && !(old & IER_ETBEI))
		s->thre_pending = true;
	/*
	 * Linux clears ETBEI when its transmit queue runs dry: the end of a
	 * burst, so a prompt without a newline shows up now.
	 */
	if (!(s->ier & IER_ETBEI) && (old & IER_ETBEI))
		serial_out_ready(s);
}

static void serial_write_fcr(struct serial *s, uint8_t v)
{
	bool on = v & FCR_ENABLE;

	/* the chip empties its FIFOs whenever they are switched on or off */
	if ((v & FCR_CLEAR_RX) || on != s->fifo_on) {
		s->rx_count = 0;
		s->rx_head = 0;
		serial_rx_drained(s);
	}
	s->fifo_on = on;
}

static void serial_write(struct serial *s, unsigned int off, uint8_t v)
{
	bool dlab = s->lcr & LCR_DLAB;

	switch (off) {
	case UART_THR:
		if (dlab) {
			s->dll = v;
			break;
		}
		if (s->mcr & MCR_LOOP) {
			if (!serial_rx_push(s, v)) {
				s->overrun = true;
				metrics_inc(&metrics_uart, UART_M_MISSED_READ);
			}
		} else {
			serial_putc(s, v);
		}
		s->thre_pending = true; /* the THR empties at once */
		break;
	case UART_IER:
		if (dlab)
			s->dlm = v;
		else
			serial_write_ier(s, v);
		break;
	case UART_FCR:
		serial_write_fcr(s, v);
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		serial_write_mcr(s, v);
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default:
		/* LSR and MSR writes are a factory test mode: ignore them */
		break;
	}
}

static uint8_t serial_read(struct serial *s, unsigned int off)
{
	bool dlab = s->lcr & LCR_DLAB;
	uint8_t v;

	switch (off) {
	case UART_RBR:
		return dlab ? s->dll : serial_rx_pop(s);
	case UART_IER:
		return dlab ? s->dlm : s->ier;
	case UART_IIR:
		v = serial_irq_source(s);
		/* reading IIR acknowledges THRE when it is the one reported */
		if (v == IIR_THRE)
			s->thre_pending = false;
		return v | (s->fifo_on ? IIR_FIFO : 0);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		v = LSR_THRE | LSR_TEMT;
		if (s->rx_count > 0)
			v |= LSR_DR;
		if (s->overrun)
			v |= LSR_OE;
		s->overrun = false;
		return v;
	case UART_MSR:
		v = serial_msr_lines(s) | s->msr_delta;
		s->msr_delta = 0;
		return v;
	case UART_SCR:
		return s->scr;
	default:
		return 0xff;
	}
}

void serial_save(struct serial *s, struct serial_state *st)
{
	memset(st, 0, sizeof(*st));
	st->version = SERIAL_STATE_VERSION;
	pthread_mutex_lock(&s->lock);
	st->ier = s->ier;
	st->lcr = s->lcr;
	st->mcr = s->mcr;
	st->scr = s->scr;
	st->dll = s->dll;
	st->dlm = s->dlm;
	st->msr_delta = s->msr_delta;
	st->fifo_on = s->fifo_on;
	st->thre_pending = s->thre_pending;
	st->overrun = s->overrun;
	st->rx_count = (uint8_t)s->rx_count;
	for (unsigned int i = 0; i < s->rx_count; i++)
		st->rx[i] = s->rx[(s->rx_head + i) % SERIAL_RX_FIFO];
	pthread_mutex_unlock(&s->lock);
}

int serial_restore(struct serial *s, const struct serial_state *st,
		   struct kiln_error *err)
{
	/* file-controlled: every field in range before any is used */
	if (st->version != SERIAL_STATE_VERSION || st->pad != 0 ||
	    st->ier & ~IER_MASK || st->mcr & ~MCR_MASK || st->msr_delta > 0xf ||
	    st->fifo_on > 1 || st->thre_pending > 1 || st->overrun > 1 ||
	    st->rx_count > SERIAL_RX_FIFO)
		return kiln_error_set(err, EINVAL,
				      "serial state: version %u or a field "
				      "out of range",
				      st->version);
	pthread_mutex_lock(&s->lock);
	s->ier = st->ier;
	s->lcr = st->lcr;
	s->mcr = st->mcr;
	s->scr = st->scr;
	s->dll = st->dll;
	s->dlm = st->dlm;
	s->msr_delta = st->msr_delta;
	s->fifo_on = st->fifo_on;
	s->thre_pending = st->thre_pending;
	s->overrun = st->overrun;
	s->rx_head = 0;
	s->rx_count = st->rx_count;
	memcpy(s->rx, st->rx, st->rx_count);
	/* the line was high in the saved VM: raise the edge again */
	s->irq_line = false;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void serial_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
	       bool is_write)
{
	struct serial *s = opaque;

	/*
	 * guest-controlled: off and len. Every register is one byte; a wider
	 * or out-of-window access is dropped, and reads as a floating bus.
	 */
	if (len != 1 || off >= SERIAL_PORT_LEN) {
		if (!is_write)
			memset(data, 0xff, len);
		if (log_ratelimit())
			log_debug("serial: ignored %u-byte %s at +%llu", len,
				  is_write ? "write" : "read",
				  (unsigned long long)off);
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (is_write)
		serial_write(s, off, data[0]);
	else
		data[0] = serial_read(s, off);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

size_t serial_input(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	while (n < len && serial_rx_push(s, buf[n]))
		n++;
	if (n < len)
		s->rx_wait = true;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_rx_room(struct serial *s)
{
	size_t room;

	pthread_mutex_lock(&s->lock);
	room = SERIAL_RX_FIFO - s->rx_count;
	if (room == 0)
		s->rx_wait = true;
	pthread_mutex_unlock(&s->lock);
	return room;
}

void serial_set_rx_wake(struct serial *s, int fd)
{
	pthread_mutex_lock(&s->lock);
	s->wake_fd = fd;
	pthread_mutex_unlock(&s->lock);
}

void serial_set_out_wake(struct serial *s, int fd)
{
	pthread_mutex_lock(&s->lock);
	s->out_wake_fd = fd;
	/* output held before there was anyone to wake */
	s->out_kicked = false;
	if (s->out_ready > 0)
		serial_out_ready(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_flush(struct serial *s)
{
	struct pollfd pfd = { .fd = s->out_fd, .events = POLLOUT };
	uint64_t end = util_now_ns() + SERIAL_FLUSH_MS * 1000000ULL, lost;
	int64_t left;

	pthread_mutex_lock(&s->lock);
	s->out_ready = s->out_len;
	pthread_mutex_unlock(&s->lock);
	while (serial_out_drain(s) > 0) {
		left = ((int64_t)(end - util_now_ns())) / 1000000;
		if (left > 0 &&
		    (poll(&pfd, 1, (int)left) >= 0 || errno == EINTR))
			continue;
		pthread_mutex_lock(&s->lock);
		lost = s->out_len + s->tx_len - s->tx_off;
		pthread_mutex_unlock(&s->lock);
		log_warn("serial: console output still stalled after %d ms, "
			 "dropped the last %llu bytes",
			 SERIAL_FLUSH_MS, (unsigned long long)lost);
		serial_out_discard(s, NULL);
		return;
	}
}

struct serial *serial_new(int out_fd, int irq_fd, struct kiln_error *err)
{
	struct serial *s = calloc(1, sizeof(*s));
	struct stat st;
	int ret;

	if (s == NULL) {
		kiln_error_set(err, ENOMEM, "serial: allocate state");
		return NULL;
	}
	ret = pthread_mutex_init(&s->lock, NULL);
	if (ret != 0) {
		free(s);
		kiln_error_set(err, ret, "serial: init lock");
		return NULL;
	}
	s->out_fd = out_fd;
	s->out_sock = out_fd >= 0 && fstat(out_fd, &st) == 0 &&
		      S_ISSOCK(st.st_mode);
	s->irq_fd = irq_fd;
	s->wake_fd = -1;
	s->out_wake_fd = -1;
	s->lcr = 0x03; /* 8N1 */
	s->mcr = MCR_OUT2;
	s->dll = 12; /* 9600 baud; the guest sets its own */
	return s;
}

void serial_free(struct serial *s)
{
	if (s == NULL)
		return;
	serial_flush(s);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- host input: an fd pumped into the receive FIFO by the event loop ---- */

enum serial_in {
	SERIAL_IN_OFF,	   /* the input ended */
	SERIAL_IN_READING, /* in the loop for EPOLLIN */
	SERIAL_IN_PAUSED,  /* in the loop with no events: FIFO full */
	SERIAL_IN_PARKED,  /* out of the loop until the FIFO drains */
};

struct serial_pump {
	struct serial *s;
	struct evloop *loop;
	int in_fd;
	int wake_fd; /* written by the core when the FIFO drains */
	struct evloop_entry *in_ev, *wake_ev; /* in loop, or NULL */
	enum serial_in state;
};

static void serial_pump_in_stop(struct serial_pump *p, enum serial_in next)
{
	evloop_del(p->loop, p->in_ev);
	p->in_ev = NULL;
	p->state = next;
}

static void serial_pump_pause(struct serial_pump *p, uint32_t events)
{
	struct kiln_error err = { 0 };

	/*
	 * epoll reports HUP and ERR even with an empty event mask, so a
	 * hung-up input left in the loop would spin it until the guest
	 * reads: take it out instead.
	 */
	if (events & (EPOLLHUP | EPOLLERR)) {
		serial_pump_in_stop(p, SERIAL_IN_PARKED);
		return;
	}
	if (evloop_mod(p->loop, p->in_ev, 0, &err) < 0) {
		log_debug("serial: pause input: %s", err.msg);
		serial_pump_in_stop(p, SERIAL_IN_PARKED);
		return;
	}
	p->state = SERIAL_IN_PAUSED;
}

static void serial_pump_in_ready(void *opaque, uint32_t events)
{
	struct serial_pump *p = opaque;
	uint8_t buf[SERIAL_RX_FIFO];
	size_t room = serial_rx_room(p->s);
	ssize_t n;

	if (room == 0) {
		serial_pump_pause(p, events);
		return;
	}
	/* only what fits: the rest waits in the host's pipe or tty */
	n = read(p->in_fd, buf, room);
	if (n > 0) {
		serial_input(p->s, buf, n);
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0)
		log_warn("serial: read console input: %s; input stopped",
			 strerror(errno));
	else
		log_debug("serial: end of console input");
	serial_pump_in_stop(p, SERIAL_IN_OFF);
}

static void serial_pump_wake(void *opaque, uint32_t events)
{
	struct serial_pump *p = opaque;
	struct kiln_error err = { 0 };
	uint64_t v;
	int ret;

	(void)events;
	if (read(p->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("serial: read wake eventfd: %s", strerror(errno));
	if (p->state == SERIAL_IN_PAUSED) {
		ret = evloop_mod(p->loop, p->in_ev, EPOLLIN, &err);
	} else if (p->state == SERIAL_IN_PARKED) {
		p->in_ev = evloop_add(p->loop, p->in_fd, EPOLLIN,
				      serial_pump_in_ready, p, &err);
		ret = p->in_ev != NULL ? 0 : -1;
	} else {
		return;
	}
	if (ret < 0) {
		log_warn("serial: resume console input: %s; input stopped",
			 err.msg);
		evloop_del(p->loop, p->in_ev);
		p->in_ev = NULL;
		p->state = SERIAL_IN_OFF;
		return;
	}
	p->state = SERIAL_IN_READING;
}

struct serial_pump *serial_pump_start(struct serial *s, struct evloop *loop,
				      int in_fd, struct kiln_error *err)
{
	struct serial_pump *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		kiln_error_set(err, ENOMEM, "serial: allocate input");
		return NULL;
	}
	p->s = s;
	p->loop = loop;
	p->in_fd = in_fd;
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_fd < 0) {
		kiln_error_set(err, errno, "serial: eventfd");
		goto fail;
	}
	p->wake_ev =
		evloop_add(loop, p->wake_fd, EPOLLIN, serial_pump_wake, p, err);
	if (p->wake_ev == NULL)
		goto fail_wake;
	p->in_ev =
		evloop_add(loop, in_fd, EPOLLIN, serial_pump_in_ready, p, err);
	if (p->in_ev == NULL) {
		evloop_del(loop, p->wake_ev);
		goto fail_wake;
	}
	serial_set_rx_wake(s, p->wake_fd);
	p->state = SERIAL_IN_READING;
	return p;
fail_wake:
	close(p->wake_fd);
fail:
	free(p);
	return NULL;
}

void serial_pump_stop(struct serial_pump *p)
{
	if (p == NULL)
		return;
	evloop_del(p->loop, p->in_ev); /* NULL unless READING or PAUSED */
	serial_set_rx_wake(p->s, -1);
	evloop_del(p->loop, p->wake_ev);
	close(p->wake_fd);
	free(p);
}

/* ---- output: the ring drained by the event loop ---- */

struct serial_drain {
	/* all of it owned by the loop thread */
	struct serial *s;
	struct evloop *loop;
	int out_fd;
	int wake_fd; /* written by the core when output is ready */
	struct evloop_entry *wake_ev;
	struct evloop_entry *out_ev; /* out_fd in the loop, or NULL */
	bool waiting;		     /* out_fd polled for EPOLLOUT */
};

static void serial_drain_unpoll(struct serial_drain *d)
{
	evloop_del(d->loop, d->out_ev);
	d->out_ev = NULL;
	d->waiting = false;
}

static void serial_drain_run(struct serial_drain *d)
{
	struct kiln_error err = { 0 };
	int ret = serial_out_drain(d->s);
	bool want = ret > 0;

	if (ret > 0 && d->out_ev == NULL) {
		/* nothing to wait on: a regular file should never do this */
		serial_out_fail(d->s, "output would block and cannot be "
				      "polled");
		return;
	}
	if (want == d->waiting || d->out_ev == NULL)
		return;
	if (evloop_mod(d->loop, d->out_ev, want ? EPOLLOUT : 0, &err) < 0) {
		serial_out_fail(d->s, err.msg);
		serial_drain_unpoll(d);
		return;
	}
	d->waiting = want;
}

static void serial_drain_wake(void *opaque, uint32_t events)
{
	struct serial_drain *d = opaque;
	uint64_t v;

	(void)events;
	if (read(d->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("serial: read output eventfd: %s", strerror(errno));
	if (!d->waiting)
		serial_drain_run(d);
}

static void serial_drain_writable(void *opaque, uint32_t events)
{
	struct serial_drain *d = opaque;

	serial_drain_run(d);
	/*
	 * epoll reports ERR and HUP even with an empty mask: a console whose
	 * reader is gone would spin the loop. Writes to it fail from now on
	 * anyway (EPIPE, EIO), so the output ends here.
	 */
	if (events & (EPOLLERR | EPOLLHUP)) {
		serial_drain_unpoll(d);
		serial_out_fail(d->s, "the console hung up");
	}
}

struct serial_drain *serial_drain_start(struct serial *s, struct evloop *loop,
					int out_fd, struct kiln_error *err)
{
	struct serial_drain *d = calloc(1, sizeof(*d));
	struct kiln_error perr = { 0 };

	if (d == NULL) {
		kiln_error_set(err, ENOMEM, "serial: allocate output");
		return NULL;
	}
	d->s = s;
	d->loop = loop;
	d->out_fd = out_fd;
	d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->wake_fd < 0) {
		kiln_error_set(err, errno, "serial: eventfd");
		free(d);
		return NULL;
	}
	d->wake_ev = evloop_add(loop, d->wake_fd, EPOLLIN, serial_drain_wake, d,
				err);
	if (d->wake_ev == NULL) {
		close(d->wake_fd);
		free(d);
		return NULL;
	}
	/* EPERM: a regular file or /dev/null, never waits for a reader */
	d->out_ev =
		evloop_add(loop, out_fd, 0, serial_drain_writable, d, &perr);
	if (d->out_ev == NULL && perr.errnum != EPERM)
		log_warn("serial: console output not polled: %s", perr.msg);
	serial_set_out_wake(s, d->wake_fd);
	return d;
}

void serial_drain_stop(struct serial_drain *d)
{
	if (d == NULL)
		return;
	serial_set_out_wake(d->s, -1);
	serial_drain_unpoll(d);
	evloop_del(d->loop, d->wake_ev);
	close(d->wake_fd);
	free(d);
}

/* ---- COM1 of a struct vm: ports, irqfd, console file, stdin ---- */

struct serial_dev {
	struct serial *s;
	struct serial_pump *pump;   /* stdin, when cfg->console_in */
	struct serial_drain *drain; /* the loop's side of the output */
	int out_fd;	    /* ours: the console file, stdout reopened */
	int shared_fd;	    /* stdout used as is (-1: not used) */
	int shared_flags;   /* its file status flags, to restore */
	bool restore_flags; /* we set O_NONBLOCK on shared_fd */
	int irq_fd;
};

static void serial_dev_free(struct serial_dev *d)
{
	serial_drain_stop(d->drain);
	serial_pump_stop(d->pump);
	serial_free(d->s); /* flushes, waiting at most SERIAL_FLUSH_MS */
	if (d->restore_flags &&
	    fcntl(d->shared_fd, F_SETFL, d->shared_flags) < 0)
		log_warn("serial: restore stdout's flags: %s", strerror(errno));
	if (d->irq_fd >= 0)
		close(d->irq_fd);
	if (d->out_fd >= 0)
		close(d->out_fd);
	free(d);
}

/*
 * Make the console fd non-blocking without changing it for anyone else.
 * O_NONBLOCK belongs to the open file description, which stdout shares
 * with whoever gave it to us: the shell's terminal, the shim's pipe, and
 * often our own stderr (2>&1). Setting it there would make their writes
 * fail with EAGAIN, and a kill -9 would leave it set. So:
 *  - a regular file or block device never waits for a reader: used as is;
 *  - a socket is written with send(MSG_DONTWAIT), per call: used as is;
 *  - a pipe, FIFO or terminal is reopened through /proc/self/fd/1, which
 *    gives a description of our own on the same pipe or tty;
 *  - if that fails (no /proc in a jail, a pipe made by another user), we
 *    set O_NONBLOCK on the shared description after all and restore the
 *    flags at exit: better than a VM that stops with its console.
 */
static int serial_dev_stdout(struct serial_dev *d, struct kiln_error *err)
{
	char path[32];
	struct stat st, st2;
	int fd, flags;

	if (fstat(STDOUT_FILENO, &st) < 0) {
		log_warn("serial: no stdout (%s): console output discarded",
			 strerror(errno));
		return 0;
	}
	d->shared_fd = STDOUT_FILENO;
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISSOCK(st.st_mode))
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", STDOUT_FILENO);
	fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st2) == 0 && st2.st_dev == st.st_dev &&
	    st2.st_ino == st.st_ino && st2.st_rdev == st.st_rdev) {
		d->out_fd = fd;
		d->shared_fd = -1;
		return 0;
	}
	if (fd >= 0)
		close(fd);
	log_debug("serial: cannot reopen stdout (%s): making it non-blocking",
		  fd < 0 ? strerror(errno) : "another file");
	flags = fcntl(STDOUT_FILENO, F_GETFL);
	if (flags < 0 ||
	    (!(flags & O_NONBLOCK) &&
	     fcntl(STDOUT_FILENO, F_SETFL, flags | O_NONBLOCK) < 0))
		return kiln_error_set(err, errno,
				      "serial: make stdout non-blocking");
	d->shared_flags = flags;
	d->restore_flags = !(flags & O_NONBLOCK);
	return 0;
}

static int serial_dev_output(struct serial_dev *d, const struct vm_config *cfg,
			     struct kiln_error *err)
{
	int flags;

	if (cfg->console_path == NULL)
		return serial_dev_stdout(d, err);
	/*
	 * Opened blocking, so a FIFO waits for its reader as it always did;
	 * the description is ours, so O_NONBLOCK on it is nobody else's.
	 */
	d->out_fd = open(cfg->console_path,
			 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (d->out_fd < 0)
		return kiln_error_set(err, errno,
				      "serial: open console output `%s`",
				      cfg->console_path);
	flags = fcntl(d->out_fd, F_GETFL);
	if (flags < 0 || fcntl(d->out_fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return kiln_error_set(err, errno,
				      "serial: make `%s` non-blocking",
				      cfg->console_path);
	return 0;
}

static int serial_dev_init(struct vm *vm, void **state, struct kiln_error *err)
{
	const struct vm_config *cfg = vm->cfg;
	struct serial_dev *d;
	int out_fd;

	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return kiln_error_set(err, ENOMEM, "serial: allocate device");
	d->out_fd = d->irq_fd = d->shared_fd = -1;
	if (serial_dev_output(d, cfg, err) < 0)
		goto fail;
	out_fd = d->out_fd >= 0 ? d->out_fd : d->shared_fd;
	d->irq_fd = vm_irqfd(vm, LAYOUT_COM1_IRQ, err);
	if (d->irq_fd < 0) {
		kiln_error_wrap(err, "serial: IRQ %d", LAYOUT_COM1_IRQ);
		goto fail;
	}
	d->s = serial_new(out_fd, d->irq_fd, err);
	if (d->s == NULL)
		goto fail;
	if (out_fd >= 0) {
		d->drain = serial_drain_start(d->s, &vm->loop, out_fd, err);
		if (d->drain == NULL) {
			kiln_error_wrap(err, "serial: console output");
			goto fail;
		}
	}
	if (cfg->console_in) {
		d->pump = serial_pump_start(d->s, &vm->loop, STDIN_FILENO, err);
		if (d->pump == NULL && err != NULL && err->errnum == EPERM) {
			/* a regular file or /dev/null: epoll refuses those */
			log_warn("serial: stdin cannot be polled, console "
				 "input off");
		} else if (d->pump == NULL) {
			kiln_error_wrap(err, "serial: console input");
			goto fail;
		}
	}
	/* last: a trap cannot be unregistered */
	if (trap_register(&vm->traps, TRAP_PIO, LAYOUT_COM1_PORT,
			  SERIAL_PORT_LEN, serial_io, d->s, err) < 0) {
		kiln_error_wrap(err, "serial: ports %#x-%#x", LAYOUT_COM1_PORT,
				LAYOUT_COM1_PORT + SERIAL_PORT_LEN - 1);
		goto fail;
	}
	*state = d;
	return 0;
fail:
	serial_dev_free(d);
	return -1;
}

static void serial_dev_exit(struct vm *vm, void *state)
{
	(void)vm;
	serial_dev_free(state);
}

static size_t serial_dev_state_size(void *state)
{
	(void)state;
	return sizeof(struct serial_state);
}

static int serial_dev_save(void *state, void *buf, size_t len,
			   struct kiln_error *err)
{
	struct serial_dev *d = state;
	struct serial_state st;

	if (len != sizeof(st))
		return kiln_error_set(err, EINVAL, "serial state size");
	serial_save(d->s, &st);
	memcpy(buf, &st, sizeof(st));
	return 0;
}

static int serial_dev_restore(void *state, const void *buf, size_t len,
			      struct kiln_error *err)
{
	struct serial_dev *d = state;
	struct serial_state st;

	if (len != sizeof(st))
		return kiln_error_set(err, EINVAL,
				      "serial state of %zu bytes, want %zu",
				      len, sizeof(st));
	memcpy(&st, buf, sizeof(st));
	return serial_restore(d->s, &st, err);
}

static const struct vmm_device_snap serial_snap = {
	.size = serial_dev_state_size,
	.save = serial_dev_save,
	.restore = serial_dev_restore,
};

VMM_DEVICE_SNAP(serial, DEVICE_LEVEL_LEGACY, serial_dev_init, serial_dev_exit,
		&serial_snap);
