/* SPDX-License-Identifier: Apache-2.0 */
/*
 * 8250/16550A UART, the guest console. The core below knows nothing of KVM
 * or of the event loop: it queues guest output for out_fd in a bounded ring
 * that serial_out_drain() empties, raises its interrupt by writing 1 to
 * irq_fd (an irqfd) and takes host input through serial_input(), so unit
 * tests drive it with pipes and eventfds. The glue at the end of serial.c
 * wires it to COM1 of a struct vm and to the event loop.
 *
 * Threads: serial_io() runs on vCPU threads and never writes to out_fd or
 * waits for anything but the device lock, which no thread holds across I/O.
 * The drain side (serial_out_drain, serial_out_fail, serial_flush) is one
 * thread at a time: the event loop's, or the caller once the loop stopped.
 */
#ifndef KILN_VMM_HW_SERIAL_H
#define KILN_VMM_HW_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../lib/error.h"

#define SERIAL_PORT_LEN 8  /* registers at base + 0 .. base + 7 */
#define SERIAL_RX_FIFO	64 /* bytes of input held for the guest */

struct serial;
struct evloop;

/*
 * out_fd receives guest output (-1: discard it); it should be non-blocking
 * (a socket is written with MSG_DONTWAIT anyway), or the drain side waits
 * for its reader. irq_fd gets one eventfd write per rising edge of the
 * interrupt line (-1: no interrupts). Neither fd is owned: the caller
 * closes them after serial_free().
 */
struct serial *serial_new(int out_fd, int irq_fd, struct kiln_error *err);

/* Flush buffered output, then free. NULL is allowed. */
void serial_free(struct serial *s);

/*
 * Snapshots: the UART's registers and its receive FIFO (guest output not
 * yet written to the console is flushed, not saved). restore takes
 * untrusted bytes, checks them all and changes nothing when it fails; an
 * interrupt that was pending is raised again.
 */
struct serial_state {
	uint32_t version; /* SERIAL_STATE_VERSION */
	uint8_t ier, lcr, mcr, scr, dll, dlm, msr_delta;
	uint8_t fifo_on, thre_pending, overrun; /* 0 or 1 */
	uint8_t rx_count;			/* <= SERIAL_RX_FIFO */
	uint8_t pad;				/* zero */
	uint8_t rx[SERIAL_RX_FIFO];		/* rx_count bytes, in order */
};

#define SERIAL_STATE_VERSION 1

void serial_save(struct serial *s, struct serial_state *st);
int serial_restore(struct serial *s, const struct serial_state *st,
		   struct kiln_error *err);

/* The trap_fn for the 8 ports; safe from any thread. */
void serial_io(void *s, uint64_t off, uint8_t *data, uint32_t len,
	       bool is_write);

/*
 * Queue host input for the guest: takes as many bytes as the receive FIFO
 * has room for and returns that count. When it takes fewer than len, the
 * wake fd (below) is written once the guest has drained the FIFO to half.
 */
size_t serial_input(struct serial *s, const uint8_t *buf, size_t len);

/*
 * Free room in the receive FIFO. A result of 0 arms the wake fd, as a
 * refused serial_input() does, so the caller can stop reading its source
 * and resume when woken.
 */
size_t serial_rx_room(struct serial *s);

/* An eventfd (not owned) written when room comes back; -1 to disarm. */
void serial_set_rx_wake(struct serial *s, int fd);

/*
 * Guest output. The vCPU side makes bytes ready at a newline, every
 * SERIAL_OUT_BATCH bytes without one, and when the guest's driver stops
 * transmitting (IER.ETBEI cleared); it then writes the out wake eventfd
 * (not owned; -1 to disarm) once, until a drain finds nothing ready.
 */
void serial_set_out_wake(struct serial *s, int fd);

/*
 * Write ready output to out_fd without blocking. Returns 0 when all of it
 * is written, 1 when out_fd is full (call again once it is writable), -1
 * when the write failed: output is dropped from then on, and counted.
 */
int serial_out_drain(struct serial *s);

/* The console is gone (reason says why): drop output from now on. */
void serial_out_fail(struct serial *s, const char *reason);

/*
 * Write out everything buffered, a partial line too, waiting for a slow
 * reader at most about a second; what is still left then is dropped and
 * counted. The drain side's thread only (or with the loop stopped).
 */
void serial_flush(struct serial *s);

/*
 * Host input for the guest: the event loop reads in_fd into the receive
 * FIFO, only as much as fits. While the FIFO is full in_fd is not polled,
 * so no byte is lost; it is polled again once the guest has drained half.
 * End of file (or a read error) takes in_fd out of the loop. in_fd is not
 * owned. A NULL return fills err; errnum EPERM means epoll cannot watch
 * in_fd (a regular file, /dev/null).
 */
struct serial_pump;

struct serial_pump *serial_pump_start(struct serial *s, struct evloop *loop,
				      int in_fd, struct kiln_error *err);
/* With the loop stopped, or from the loop's thread. NULL is allowed. */
void serial_pump_stop(struct serial_pump *p);

/*
 * Guest output to the host: the event loop drains the ring into out_fd
 * (the fd given to serial_new(), not owned) when woken by the core, and
 * polls out_fd for EPOLLOUT while it is full. An out_fd epoll refuses (a
 * regular file, /dev/null) is written whenever woken: it never waits for a
 * reader. At setup, or from the loop's thread.
 */
struct serial_drain;

struct serial_drain *serial_drain_start(struct serial *s, struct evloop *loop,
					int out_fd, struct kiln_error *err);
/* With the loop stopped, or from the loop's thread. NULL is allowed. */
void serial_drain_stop(struct serial_drain *d);

#endif
