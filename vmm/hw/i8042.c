/* SPDX-License-Identifier: Apache-2.0 */
/*
 * i8042 keyboard controller, as much as a Linux guest needs: the CPU reset
 * line (reboot=k writes 0xfe to port 0x64), the controller commands of its
 * probe and reboot paths, and a keyboard that acknowledges everything
 * (Firecracker's devices/legacy/i8042.rs does the same).
 *
 * Every command Linux expects an answer to gets one at once: its driver
 * waits 500 ms for each missing byte, in the boot path. There is no AUX
 * (mouse) port, and the answers say so early (see 0xa9 below).
 */
#include "legacy.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../device.h"
#include "../layout.h"
#include "../metrics.h"
#include "../trap.h"
#include "../vm.h"

/* status register */
#define STS_OBF	     0x01 /* a byte waits at port 0x60 */
#define STS_SYS	     0x04 /* system flag, mirrors CTR bit 2 */
#define STS_CMD	     0x08 /* last write went to port 0x64 */
#define STS_UNLOCKED 0x10 /* keyboard not inhibited */

/* controller command byte (CTR), RAM byte 0 */
#define CTR_KBDINT 0x01
#define CTR_SYS	   0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20

/* output port */
#define OUTP_RESET 0x01 /* CPU reset line, active low */
#define OUTP_A20   0x02

#define CMD_READ_RAM	0x20 /* 0x20-0x3f: read RAM byte (0: CTR) */
#define CMD_WRITE_RAM	0x60 /* 0x60-0x7f: write RAM byte */
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE	0xa8
#define CMD_AUX_TEST	0xa9
#define CMD_SELF_TEST	0xaa
#define CMD_KBD_TEST	0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE	0xae
#define CMD_READ_OUTP	0xd0
#define CMD_WRITE_OUTP	0xd1
#define CMD_KBD_LOOP	0xd2 /* next data byte comes back from the kbd */
#define CMD_AUX_SEND	0xd4
#define CMD_PULSE	0xf0 /* 0xf0-0xff: pulse output lines 0-3 */

#define KBD_ACK		0xfa
#define SELF_TEST_OK	0x55
#define AUX_CLOCK_STUCK 0x02

#define I8042_RAM 32
#define I8042_BUF 16

struct i8042 {
	pthread_mutex_t lock;
	int irq_fd;
	void (*reset)(void *opaque);
	void *reset_opaque;

	uint8_t ram[I8042_RAM]; /* byte 0 is the CTR */
	uint8_t outp;
	uint8_t cmd;   /* command waiting for its data byte, or 0 */
	bool last_cmd; /* STS_CMD */
	bool irq_line; /* IRQ 1 level after the last access */

	uint8_t buf[I8042_BUF];
	unsigned int head;
	unsigned int count;
};

static void i8042_push(struct i8042 *k, uint8_t v)
{
	if (k->count == I8042_BUF)
		return;
	k->buf[(k->head + k->count) % I8042_BUF] = v;
	k->count++;
}

/* A command's answer replaces whatever the guest did not read. */
static void i8042_reply(struct i8042 *k, uint8_t v)
{
	k->head = 0;
	k->count = 0;
	i8042_push(k, v);
}

static uint8_t i8042_pop(struct i8042 *k)
{
	uint8_t v;

	if (k->count == 0)
		return 0;
	v = k->buf[k->head];
	k->head = (k->head + 1) % I8042_BUF;
	k->count--;
	return v;
}

static void i8042_update_irq(struct i8042 *k)
{
	bool line = k->count > 0 && (k->ram[0] & CTR_KBDINT);
	uint64_t one = 1;

	if (line && !k->irq_line && k->irq_fd >= 0 &&
	    write(k->irq_fd, &one, sizeof(one)) < 0 && log_ratelimit())
		log_warn("i8042: irqfd write: %s", strerror(errno));
	k->irq_line = line;
}

static uint8_t i8042_status(const struct i8042 *k)
{
	uint8_t v = STS_UNLOCKED;

	if (k->count > 0)
		v |= STS_OBF;
	if (k->ram[0] & CTR_SYS)
		v |= STS_SYS;
	if (k->last_cmd)
		v |= STS_CMD;
	return v;
}

/* Returns true when the guest pulsed the reset line. */
static bool i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->cmd = 0;
	if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + I8042_RAM) {
		i8042_reply(k, k->ram[cmd - CMD_READ_RAM]);
		return false;
	}
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + I8042_RAM) {
		k->cmd = cmd;
		return false;
	}
	if (cmd >= CMD_PULSE) /* a clear bit 0 pulses the reset line */
		return !(cmd & OUTP_RESET);

	switch (cmd) {
	case CMD_AUX_DISABLE:
		k->ram[0] |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->ram[0] &= ~CTR_AUXDIS;
		break;
	case CMD_AUX_TEST:
		/*
		 * No AUX port. Linux's i8042_check_aux() tries AUX_LOOP first;
		 * our keyboard acknowledges the byte without the AUX status
		 * bit, which fails that test at once, and this "clock line
		 * stuck" answer then ends the AUX probe without the 250 ms
		 * IRQ test a clean answer would lead to.
		 */
		i8042_reply(k, AUX_CLOCK_STUCK);
		break;
	case CMD_SELF_TEST:
		k->ram[0] |= CTR_SYS;
		i8042_reply(k, SELF_TEST_OK);
		break;
	case CMD_KBD_TEST:
		i8042_reply(k, 0);
		break;
	case CMD_KBD_DISABLE:
		k->ram[0] |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->ram[0] &= ~CTR_KBDDIS;
		break;
	case CMD_READ_OUTP:
		i8042_reply(k, k->outp);
		break;
	case CMD_WRITE_OUTP:
	case CMD_KBD_LOOP:
	case CMD_AUX_SEND:
		k->cmd = cmd;
		break;
	default:
		/* anything else (0xd3 AUX_LOOP among them) is ignored */
		if (log_ratelimit())
			log_debug("i8042: ignored command %#x", cmd);
		break;
	}
	return false;
}

static bool i8042_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->cmd;

	k->cmd = 0;
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + I8042_RAM) {
		k->ram[cmd - CMD_WRITE_RAM] = v;
		return false;
	}
	switch (cmd) {
	case CMD_WRITE_OUTP:
		k->outp = v;
		return !(v & OUTP_RESET);
	case CMD_KBD_LOOP:
		i8042_reply(k, v);
		return false;
	case CMD_AUX_SEND:
		return false; /* nothing on the AUX port to hear it */
	default:
		/* a byte for the keyboard, which agrees to everything */
		i8042_reply(k, KBD_ACK);
		return false;
	}
}

void i8042_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
	      bool is_write)
{
	struct i8042 *k = opaque;
	bool reset = false;

	/* guest-controlled: off and len; both ports are one byte wide */
	if (len != 1 || (off != I8042_OFF_DATA && off != I8042_OFF_CMD)) {
		metrics_inc(&metrics_i8042, I8042_M_MISSED);
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	metrics_inc(&metrics_i8042, is_write ? I8042_M_WRITE : I8042_M_READ);
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		k->last_cmd = off == I8042_OFF_CMD;
		if (k->last_cmd)
			reset = i8042_command(k, data[0]);
		else
			reset = i8042_data(k, data[0]);
	} else if (off == I8042_OFF_CMD) {
		data[0] = i8042_status(k);
	} else {
		data[0] = i8042_pop(k);
		/* OBF drops, then rises again for the next queued byte */
		k->irq_line = false;
	}
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);

	/* outside the lock: the callback may stop the whole VM */
	if (reset)
		metrics_inc(&metrics_i8042, I8042_M_RESET);
	if (reset && k->reset != NULL)
		k->reset(k->reset_opaque);
}

struct i8042 *i8042_new(int irq_fd, void (*reset)(void *opaque),
			void *reset_opaque, struct kiln_error *err)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int ret;

	if (k == NULL) {
		kiln_error_set(err, ENOMEM, "i8042: allocate state");
		return NULL;
	}
	ret = pthread_mutex_init(&k->lock, NULL);
	if (ret != 0) {
		free(k);
		kiln_error_set(err, ret, "i8042: init lock");
		return NULL;
	}
	k->irq_fd = irq_fd;
	k->reset = reset;
	k->reset_opaque = reset_opaque;
	k->ram[0] = CTR_KBDINT | CTR_SYS; /* as a BIOS leaves it */
	k->outp = OUTP_RESET | OUTP_A20;
	return k;
}

void i8042_free(struct i8042 *k)
{
	if (k == NULL)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/*
 * Ctrl+Alt+Del as key presses in scan code set 2 (what Firecracker's
 * SendCtrlAltDel sends; the guest's atkbd runs the keyboard untranslated):
 * Ctrl 0x14, Alt 0x11, Del 0xe0 0x71. No releases: the guest acts on the
 * press of Del with Ctrl and Alt held.
 */
int i8042_ctrl_alt_del(struct i8042 *k, struct kiln_error *err)
{
	static const uint8_t keys[] = { 0x14, 0x11, 0xe0, 0x71 };

	pthread_mutex_lock(&k->lock);
	if (k->count + sizeof(keys) > I8042_BUF) {
		pthread_mutex_unlock(&k->lock);
		return kiln_error_set(err, EBUSY,
				      "i8042: the guest is not reading its "
				      "keyboard buffer");
	}
	for (size_t i = 0; i < sizeof(keys); i++)
		i8042_push(k, keys[i]);
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

/* ---- ports 0x60 and 0x64 of a struct vm ---- */

struct i8042_dev {
	struct i8042 *k;
	int irq_fd;
};

static void i8042_dev_reset(void *opaque)
{
	vm_request_exit(opaque, VM_EXIT_RESET, "guest reboot (i8042 reset)");
}

static void i8042_dev_free(struct i8042_dev *d)
{
	i8042_free(d->k);
	if (d->irq_fd >= 0)
		close(d->irq_fd);
	free(d);
}

static int i8042_dev_init(struct vm *vm, void **state, struct kiln_error *err)
{
	struct i8042_dev *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return kiln_error_set(err, ENOMEM, "i8042: allocate device");
	d->irq_fd = vm_irqfd(vm, LAYOUT_I8042_IRQ, err);
	if (d->irq_fd < 0) {
		kiln_error_wrap(err, "i8042: IRQ %d", LAYOUT_I8042_IRQ);
		goto fail;
	}
	d->k = i8042_new(d->irq_fd, i8042_dev_reset, vm, err);
	if (d->k == NULL)
		goto fail;
	/*
	 * One window 0x60-0x64 (a trap cannot be unregistered, so one call
	 * that either works or not). Of the ports between, 0x61 (port B) is
	 * served inside KVM by its PIT; 0x62 and 0x63 read as a floating bus.
	 */
	if (trap_register(&vm->traps, TRAP_PIO, LAYOUT_I8042_PORT,
			  I8042_PORT_LEN, i8042_io, d->k, err) < 0) {
		kiln_error_wrap(err, "i8042: ports %#x-%#x", LAYOUT_I8042_PORT,
				LAYOUT_I8042_PORT + I8042_PORT_LEN - 1);
		goto fail;
	}
	*state = d;
	return 0;
fail:
	i8042_dev_free(d);
	return -1;
}

static void i8042_dev_exit(struct vm *vm, void *state)
{
	(void)vm;
	i8042_dev_free(state);
}

struct i8042 *i8042_lookup(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->ndevices; i++)
		if (vm->devices[i].desc->init == i8042_dev_init &&
		    vm->devices[i].state != NULL)
			return ((struct i8042_dev *)vm->devices[i].state)->k;
	return NULL;
}

VMM_DEVICE(i8042, DEVICE_LEVEL_LEGACY, i8042_dev_init, i8042_dev_exit);
