/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-mmio transport with the rng device, driven through the trap
 * table as a vCPU would: the full driver handshake, a request filled with
 * random bytes, reset, wrong-order and odd-sized writes, config window
 * bounds, slot exhaustion, the event-loop notification path, and snapshot
 * save/restore with corrupt states refused. No KVM: vm_fd is -1.
 *
 * Build: cc -std=gnu11 -D_GNU_SOURCE test/unit/test_virtio_mmio.c
 *        vmm/virtio/{virtio,queue,mmio,rng}.c vmm/memory.c vmm/trap.c
 *        vmm/evloop.c lib/error.c lib/log.c test/lib/vdriver.c -lpthread
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/layout.h"
#include "../lib/vdriver.h"
#include "tap.h"

/* ---- a VM without KVM ---- */

#define MEM_SIZE (16ULL << 20)
#define DESC	 0x1000ULL
#define AVAIL	 0x2000ULL
#define USED	 0x3000ULL
#define BUF	 0x100000ULL
#define QSIZE	 16

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK
#define S_NRS VIRTIO_CONFIG_S_NEEDS_RESET

static struct vdrv *tvm_new(bool entropy, bool loop)
{
	struct kiln_error err = { 0 };
	struct vdrv *t = malloc(sizeof(*t));

	vdrv_init(t);
	t->cfg.entropy = entropy;
	vdrv_queue_at(t, 0, DESC, AVAIL, USED, QSIZE);
	if (vdrv_mem_alloc(t, MEM_SIZE, &err) < 0 ||
	    (loop && evloop_init(&t->vm.loop, &err) < 0) ||
	    vdrv_attach(t, "virtio_rng", &err) < 0) {
		printf("Bail out! %s\n", err.msg);
		exit(1);
	}
	vdrv_use(t, t->state);
	return t;
}

static void tvm_free(struct vdrv *t)
{
	vdrv_destroy(t);
	free(t);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* ---- tests ---- */

static void test_glue(void)
{
	struct vdrv *t = tvm_new(false, false);
	const char *cmdline;

	ok(vdrv_find("virtio_rng")->level == DEVICE_LEVEL_VIRTIO, "glue: "
								  "virtio_rng "
								  "registered "
								  "at the "
								  "virtio "
								  "level");
	ok(t->dev == NULL && t->vm.traps.count[TRAP_MMIO] == 0 &&
		   t->vm.cmdline_extra == NULL,
	   "glue: entropy off: no device, no window, no command line");
	tvm_free(t);

	t = tvm_new(true, false);
	ok(t->dev != NULL && t->base == LAYOUT_VIRTIO_MMIO,
	   "glue: entropy on: first window 0x%llx",
	   (unsigned long long)t->base);
	is_int(virtio_mmio_irq(t->dev), LAYOUT_VIRTIO_IRQ_BASE,
	       "glue: first virtio IRQ");
	cmdline = t->vm.cmdline_extra ? t->vm.cmdline_extra : "";
	ok(strstr(cmdline, "virtio_mmio.device=4K@0xd0000000:5") != NULL,
	   "glue: declared on the command line:%s", cmdline);
	tvm_free(t);
}

static void test_handshake(void)
{
	struct vdrv *t = tvm_new(true, false);
	uint8_t *buf = vdrv_gp(t, BUF, 4096);

	is_int(vdrv_rd(t, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976,
	       "magic \"virt\"");
	is_int(vdrv_rd(t, VIRTIO_MMIO_VERSION), 2, "version 2");
	is_int(vdrv_rd(t, VIRTIO_MMIO_DEVICE_ID), 4, "device id 4: rng");
	is_int(vdrv_rd(t, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR,
	       "vendor id");
	vdrv_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	ok(vdrv_rd(t, VIRTIO_MMIO_DEVICE_FEATURES) & 1, "VERSION_1 offered");
	vdrv_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	is_int(vdrv_rd(t, VIRTIO_MMIO_DEVICE_FEATURES),
	       VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
		       VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX),
	       "low features: indirect and event idx");
	vdrv_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 7);
	is_int(vdrv_rd(t, VIRTIO_MMIO_DEVICE_FEATURES), 0,
	       "feature word 7 is 0");
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256, "queue 0 max 256");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_SEL, 1);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0,
	       "queue 1 does not exist");
	is_int(vdrv_rd(t, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff,
	       "no shared memory region");

	vdrv_handshake(t, 0, 1, false);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK,
	       "FEATURES_OK accepted");
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_READY), 1, "queue ready");
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM), QSIZE, "queue num read back");
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_DEVICE_LOW), USED,
	       "used addr read back");

	/* kicked before DRIVER_OK: served only once DRIVER_OK is set */
	vdrv_set_desc(t, 0, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(t, 0, 0);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	is_int(vdrv_used(t, 0)->idx, 0, "no buffer used before DRIVER_OK");
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK,
	       "DRIVER_OK");
	is_int(vdrv_used(t, 0)->idx, 1, "DRIVER_OK served the early buffer");
	is_int(vdrv_used(t, 0)->ring[0].id, 0, "used: head 0");
	is_int(vdrv_used(t, 0)->ring[0].len, 64, "used: 64 bytes");
	ok(!all_zero(buf, 64), "the buffer holds random bytes");
	is_int(vdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_VRING,
	       "InterruptStatus: used buffer");
	vdrv_wr(t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_ISR_VRING);
	is_int(vdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS), 0,
	       "InterruptACK clears it");

	/* two segments of 48 KiB: capped at 64 KiB */
	memset(buf, 0, 4096);
	vdrv_set_desc(t, 0, 1, BUF, 48 << 10,
		      VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	vdrv_set_desc(t, 0, 2, BUF + (48 << 10), 48 << 10, VIRTQ_DESC_F_WRITE,
		      0);
	vdrv_publish(t, 0, 1);
	/* a readable-only chain: nothing to write, len 0 */
	vdrv_set_desc(t, 0, 3, BUF, 16, 0, 0);
	vdrv_publish(t, 0, 3);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	is_int(vdrv_used(t, 0)->idx, 3, "notify: both chains used");
	is_int(vdrv_used(t, 0)->ring[1].len, 64 << 10,
	       "a request is capped at 64 KiB");
	is_int(vdrv_used(t, 0)->ring[2].len, 0,
	       "a readable chain gets 0 bytes");
	ok(all_zero(buf + (64 << 10), 32 << 10), "nothing past the cap");

	/* reset */
	vdrv_wr(t, VIRTIO_MMIO_STATUS, 0);
	ok(vdrv_rd(t, VIRTIO_MMIO_STATUS) == 0 &&
		   vdrv_rd(t, VIRTIO_MMIO_QUEUE_READY) == 0 &&
		   vdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) == 0 &&
		   vdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM) == 256,
	   "reset: status, queue and interrupt cleared");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 0); /* Linux's del_vq after reset */
	memset(vdrv_gp(t, USED, 4096), 0, 4096);
	memset(vdrv_gp(t, AVAIL, 4096), 0, 4096);
	vdrv_handshake(t, 0, 1, true);
	vdrv_set_desc(t, 0, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(t, 0, 0);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	is_int(vdrv_used(t, 0)->idx, 1, "reset: a second handshake works");
	tvm_free(t);
}

static void test_wrong_order(void)
{
	struct vdrv *t = tvm_new(true, false);

	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_DRV);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), 0,
	       "DRIVER before ACKNOWLEDGE ignored");
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK);
	vdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV,
	       "features before DRIVER ignored: FEATURES_OK refused");
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_DOK);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV,
	       "DRIVER_OK before FEATURES_OK ignored");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NUM, 4);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	ok(vdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM) == 256 &&
		   vdrv_rd(t, VIRTIO_MMIO_QUEUE_READY) == 0,
	   "queue setup before FEATURES_OK ignored");
	vdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* bit 0: not offered */
	vdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV,
	       "a feature not offered: FEATURES_OK refused");
	vdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK,
	       "fixed features: FEATURES_OK accepted");
	vdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	ok(!(t->dev->driver_features & 1), "features after FEATURES_OK: no");
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK,
	       "clearing bits without a reset ignored");
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | 0x20);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK,
	       "unknown status bit ignored");

	/* odd sizes and offsets */
	{
		uint8_t b[8] = {
			0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa
		};
		uint16_t h = 0;

		trap_dispatch(&t->vm.traps, TRAP_MMIO, t->base, b, 1, false);
		is_int(b[0], 0, "1-byte read of a register reads 0");
		trap_dispatch(&t->vm.traps, TRAP_MMIO, t->base, b, 8, false);
		ok(all_zero(b, 8), "8-byte read of a register reads 0");
		trap_dispatch(&t->vm.traps, TRAP_MMIO,
			      t->base + VIRTIO_MMIO_STATUS, (uint8_t *)&h, 2,
			      true);
		is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK,
		       "2-byte status write ignored");
		trap_dispatch(&t->vm.traps, TRAP_MMIO,
			      t->base + VIRTIO_MMIO_STATUS + 1, b, 4, true);
		is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK,
		       "misaligned 4-byte write ignored");
		ok(!trap_dispatch(&t->vm.traps, TRAP_MMIO, t->base + 0xffe, b,
				  4, false),
		   "access past the window is not ours");
	}
	vdrv_wr(t, VIRTIO_MMIO_MAGIC_VALUE, 0);
	is_int(vdrv_rd(t, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976,
	       "read-only register write ignored");
	is_int(vdrv_rd(t, 0x0f0), 0, "unknown register reads 0");
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_NOTIFY), 0,
	       "write-only register reads 0");

	/* queue writes checked */
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NUM, 12);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM), 256, "QueueNum 12 ignored");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NUM, 512);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM), 256,
	       "QueueNum over max ignored");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)DESC + 4);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)AVAIL);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)USED);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_READY), 0,
	       "misaligned descriptor table: QueueReady refused");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)DESC);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 1);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_READY), 0,
	       "used ring outside RAM: QueueReady refused");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 2);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_READY), 0, "QueueReady 2 ignored");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_READY), 1, "fixed rings: ready");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_DESC_LOW), DESC,
	       "a ready queue's registers are fixed");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_SEL, 9);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NUM, 4);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_SEL, 0);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM), QSIZE,
	       "writes to a missing queue go nowhere");
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NUM, 4);
	is_int(vdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM), QSIZE,
	       "queue setup after DRIVER_OK ignored");
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0x10000);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	ok(!t->dev->broken, "notify of a missing queue is ignored");

	/* FAILED stops the device until a reset */
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK | 0x80);
	vdrv_set_desc(t, 0, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(t, 0, 0);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	is_int(vdrv_used(t, 0)->idx, 0,
	       "after FAILED status, notifications are ignored");
	tvm_free(t);
}

static void test_broken(void)
{
	struct vdrv *t = tvm_new(true, false);

	vdrv_handshake(t, 0, 1, true);
	vdrv_publish(t, 0, 200); /* head >= size */
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ok(vdrv_rd(t, VIRTIO_MMIO_STATUS) & S_NRS, "broken: status "
						   "NEEDS_RESET");
	is_int(vdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_CONFIG,
	       "broken: config-change interrupt");
	/* drivers write status read-modify-write: keep NEEDS_RESET */
	vdrv_wr(t, VIRTIO_MMIO_STATUS, vdrv_rd(t, VIRTIO_MMIO_STATUS));
	ok(vdrv_rd(t, VIRTIO_MMIO_STATUS) & S_NRS, "broken: write-back keeps "
						   "it");
	vdrv_set_desc(t, 0, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(t, 0, 0);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	is_int(vdrv_used(t, 0)->idx, 0, "broken: nothing processed");
	memset(vdrv_gp(t, AVAIL, 4096), 0, 4096);
	vdrv_handshake(t, 0, 1, true);
	ok(vdrv_rd(t, VIRTIO_MMIO_STATUS) == (S_ACK | S_DRV | S_FOK | S_DOK),
	   "broken: reset and handshake recover");
	vdrv_publish(t, 0, 0);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	is_int(vdrv_used(t, 0)->idx, 1, "broken: processing again");
	tvm_free(t);
}

/* A second device type with a config space, to test the config window. */
static uint8_t cfg_space[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
static unsigned int cfg_calls;

static void cfg_read(struct virtio_dev *d, uint32_t off, void *data,
		     uint32_t len)
{
	cfg_calls++;
	memcpy(data, cfg_space + off, len);
}

static void cfg_write(struct virtio_dev *d, uint32_t off, const void *data,
		      uint32_t len)
{
	cfg_calls++;
	memcpy(cfg_space + off, data, len);
}

static void cfg_notify(struct virtio_dev *d, unsigned int q)
{
}

static const struct virtio_ops cfg_ops = {
	.name = "cfgtest",
	.device_id = 42,
	.num_queues = 2,
	.queue_max_size = 64,
	.features = VIRTIO_BIT(5),
	.config_size = sizeof(cfg_space),
	.config_read = cfg_read,
	.config_write = cfg_write,
	.notify = cfg_notify,
};

static void test_config_and_slots(void)
{
	struct vdrv *t = tvm_new(true, false);
	struct virtio_dev devs[LAYOUT_IRQ_MAX - LAYOUT_VIRTIO_IRQ_BASE + 1];
	struct kiln_error err = { 0 };
	unsigned int n = 0;
	uint64_t base;
	uint8_t b[8];
	int ret = 0;

	while (n < sizeof(devs) / sizeof(devs[0])) {
		virtio_dev_init(&devs[n], &cfg_ops, NULL, &t->vm.mem, &err);
		ret = virtio_mmio_add(&t->vm, &devs[n], &err);
		if (ret < 0)
			break;
		n++;
	}
	is_int(n, LAYOUT_IRQ_MAX - LAYOUT_VIRTIO_IRQ_BASE,
	       "slots: 18 more devices fit beside the rng");
	ok(ret < 0 && err.errnum == ENOSPC, "slots: the next one fails: %s",
	   err.msg);
	if (n < sizeof(devs) / sizeof(devs[0]))
		virtio_dev_destroy(&devs[n]);
	is_int(virtio_mmio_irq(&devs[n - 1]), LAYOUT_IRQ_MAX,
	       "slots: the last one has IRQ %d", LAYOUT_IRQ_MAX);
	ok(strstr(t->vm.cmdline_extra, "4K@0xd0001000:6") != NULL,
	   "slots: the second device is declared at 0xd0001000:6");

	base = virtio_mmio_base(&devs[0]);
	is_int(base, LAYOUT_VIRTIO_MMIO + 0x1000, "slots: next window");
	memset(b, 0, sizeof(b));
	trap_dispatch(&t->vm.traps, TRAP_MMIO, base + VIRTIO_MMIO_CONFIG + 2, b,
		      2, false);
	ok(b[0] == 3 && b[1] == 4, "config: 2-byte read at 2");
	trap_dispatch(&t->vm.traps, TRAP_MMIO, base + VIRTIO_MMIO_CONFIG + 4, b,
		      8, false);
	ok(b[0] == 5 && b[7] == 12, "config: 8-byte read at 4");
	cfg_calls = 0;
	memset(b, 0xaa, sizeof(b));
	trap_dispatch(&t->vm.traps, TRAP_MMIO, base + VIRTIO_MMIO_CONFIG + 8, b,
		      8, false);
	is_int(cfg_calls, 0, "config: read past config_size: device not asked");
	ok(all_zero(b, 8), "config: read past config_size reads 0");
	trap_dispatch(&t->vm.traps, TRAP_MMIO,
		      base + VIRTIO_MMIO_CONFIG + 0x800, b, 4, true);
	trap_dispatch(&t->vm.traps, TRAP_MMIO, base + VIRTIO_MMIO_CONFIG, b, 3,
		      true);
	is_int(cfg_calls, 0, "config: far-out and 3-byte writes ignored");
	b[0] = 0x77;
	trap_dispatch(&t->vm.traps, TRAP_MMIO, base + VIRTIO_MMIO_CONFIG + 11,
		      b, 1, true);
	is_int(cfg_space[11], 0x77, "config: 1-byte write at the last byte");
	trap_dispatch(&t->vm.traps, TRAP_MMIO,
		      base + VIRTIO_MMIO_DEVICE_FEATURES_SEL,
		      (uint8_t *)&(uint32_t){ 0 }, 4, true);
	memset(b, 0, 4);
	trap_dispatch(&t->vm.traps, TRAP_MMIO,
		      base + VIRTIO_MMIO_DEVICE_FEATURES, b, 4, false);
	ok(b[0] & (1 << 5), "device features: the device's own bit 5");

	for (unsigned int i = 0; i < n; i++) {
		virtio_mmio_del(&devs[i]);
		virtio_dev_destroy(&devs[i]);
	}
	tvm_free(t);
}

/* ---- the event loop path: notify runs on the loop thread ---- */

/* evloop_run's status as the thread's result */
static void *loop_thread(void *arg)
{
	struct kiln_error err = { 0 };

	return (void *)(intptr_t)evloop_run(arg, &err);
}

static void test_evloop(void)
{
	struct vdrv *t = tvm_new(true, true);
	struct timespec deadline;
	void *ret = NULL;
	pthread_t th;
	int i;

	ok(t->vm.loop.entries != NULL, "loop: the queue's eventfd is served");
	pthread_create(&th, NULL, loop_thread, &t->vm.loop);
	vdrv_handshake(t, 0, 1, true);
	for (int r = 0; r < 50; r++) {
		vdrv_set_desc(t, 0, r % QSIZE, BUF + 64 * (r % QSIZE), 64,
			      VIRTQ_DESC_F_WRITE, 0);
		vdrv_publish(t, 0, r % QSIZE);
		vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		/* wait for the loop thread, as a driver waits for its IRQ */
		for (i = 0; i < 2000 && __atomic_load_n(&vdrv_used(t, 0)->idx,
							__ATOMIC_ACQUIRE) !=
						(uint16_t)(r + 1);
		     i++)
			usleep(1000);
		if (i == 2000)
			break;
	}
	is_int(vdrv_used(t, 0)->idx, 50,
	       "loop: 50 requests served by the loop thread");
	ok(vdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & 1, "loop: interrupt "
							 "raised");

	/*
	 * A ring that refills itself (used ring over the avail ring): the
	 * loop serves it in batches and still answers evloop_stop().
	 */
	vdrv_wr(t, VIRTIO_MMIO_STATUS, 0);
	memset(vdrv_gp(t, 0, 0x10000), 0, 0x10000);
	vdrv_handshake(t, 0, 1, false);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 0);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)AVAIL);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	for (i = 0; i < QSIZE; i++)
		vdrv_set_desc(t, 0, i, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	virtio_dev_lock(t->dev);
	t->dev->queues[0].used_idx = 5;
	virtio_dev_unlock(t->dev);
	vdrv_wr(t, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
	vdrv_publish(t, 0, 0);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	usleep(50000);
	virtio_dev_lock(t->dev);
	i = t->dev->queues[0].last_avail;
	virtio_dev_unlock(t->dev);
	ok(i > 3 * QSIZE, "loop: a self-refilling ring runs in batches (%d)",
	   i);
	evloop_stop(&t->vm.loop);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	if (!ok(pthread_timedjoin_np(th, &ret, &deadline) == 0, "loop: and the "
								"loop still "
								"stops (within "
								"10 s)"))
		abort(); /* the loop thread still uses t */
	is_int((intptr_t)ret, 0, "loop: evloop_run returns 0 when stopped");
	t->desc->exit(&t->vm, t->state);
	t->state = NULL;
	ok(t->vm.loop.entries == NULL, "loop: device exit removed its entry");
	tvm_free(t);
}

/* A vCPU taking an interrupt: InterruptStatus, then InterruptACK. */
struct irq_taker {
	struct vdrv *t;
	uint32_t isr;
	bool done;
};

static void *irq_taker_thread(void *arg)
{
	struct irq_taker *k = arg;

	k->isr = vdrv_rd(k->t, VIRTIO_MMIO_INTERRUPT_STATUS);
	vdrv_wr(k->t, VIRTIO_MMIO_INTERRUPT_ACK, k->isr);
	__atomic_store_n(&k->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * The guest's interrupt handler must not wait for the device lock: the
 * loop thread holds it through a backend's work (virtio-net's TAP writes
 * run the host's receive path), and a vCPU queued behind it cannot take
 * the tx-completion interrupt that the guest's TCP is waiting for.
 */
static void test_interrupt_unlocked(void)
{
	struct vdrv *t = tvm_new(true, false);
	struct irq_taker k = { .t = t };
	pthread_t th;
	int i;

	vdrv_handshake(t, 0, 1, true);
	vdrv_set_desc(t, 0, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(t, 0, 0);
	vdrv_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	is_int(vdrv_used(t, 0)->idx, 1, "irq: request served");
	/* the backend (the loop thread, say) is busy under the lock */
	virtio_dev_lock(t->dev);
	pthread_create(&th, NULL, irq_taker_thread, &k);
	for (i = 0; i < 5000 && !__atomic_load_n(&k.done, __ATOMIC_ACQUIRE);
	     i++)
		usleep(1000);
	ok(__atomic_load_n(&k.done, __ATOMIC_ACQUIRE), "irq: InterruptStatus "
						       "and InterruptACK "
						       "answered while the "
						       "device "
						       "lock is held");
	virtio_dev_unlock(t->dev);
	pthread_join(th, NULL);
	is_int(k.isr, VIRTIO_ISR_VRING, "irq: status had the vring bit");
	is_int(vdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS), 0,
	       "irq: the ACK cleared it");
	tvm_free(t);
}

/* ---- snapshots ---- */

static void test_snapshot(void)
{
	struct vdrv *a = tvm_new(true, false), *b = tvm_new(true, false);
	struct kiln_error err = { 0 };
	size_t size = virtio_mmio_state_size(a->dev);
	uint8_t *s = malloc(size + 1), *s2 = malloc(size + 1);
	uint8_t *bad = malloc(size + 1);
	struct virtio_mmio_state *h = (struct virtio_mmio_state *)bad;
	unsigned int survived = 0;

	vdrv_handshake(a, 0, 1, true);
	vdrv_set_desc(a, 0, 0, BUF, 32, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(a, 0, 0);
	vdrv_wr(a, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	vdrv_wr(a, VIRTIO_MMIO_QUEUE_SEL, 3);
	is_int(virtio_mmio_save(a->dev, s, size - 1, &err), -1,
	       "save: short buffer refused");
	is_int(virtio_mmio_save(a->dev, s, size, &err), 0, "save");

	/* the restored VM gets the memory file too */
	memcpy(vdrv_gp(b, 0, 0x200000), vdrv_gp(a, 0, 0x200000), 0x200000);
	memset(&err, 0, sizeof(err));
	is_int(virtio_mmio_restore(b->dev, s, size, &err), 0, "restore: %s",
	       err.msg);
	is_int(vdrv_rd(b, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK,
	       "restore: status");
	is_int(vdrv_rd(b, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_VRING,
	       "restore: pending interrupt");
	is_int(vdrv_rd(b, VIRTIO_MMIO_QUEUE_NUM_MAX), 0,
	       "restore: QueueSel 3 (no such queue) kept");
	vdrv_wr(b, VIRTIO_MMIO_QUEUE_SEL, 0);
	ok(vdrv_rd(b, VIRTIO_MMIO_QUEUE_READY) == 1 &&
		   vdrv_rd(b, VIRTIO_MMIO_QUEUE_NUM) == QSIZE &&
		   vdrv_rd(b, VIRTIO_MMIO_QUEUE_DESC_LOW) == DESC,
	   "restore: queue registers");
	vdrv_wr(b, VIRTIO_MMIO_QUEUE_SEL, 3);
	virtio_mmio_save(b->dev, s2, size, &err);
	ok(memcmp(s, s2, size) == 0, "restore: saved again, same bytes");
	vdrv_set_desc(b, 0, 1, BUF + 64, 32, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(b, 0, 1);
	vdrv_wr(b, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	is_int(vdrv_used(b, 0)->idx, 2, "restore: the queue carries on");
	is_int(vdrv_used(b, 0)->ring[1].id, 1, "restore: with the next buffer");

	/* corrupt states: refused, the device unchanged */
	virtio_mmio_save(b->dev, s2, size, &err);
#define REFUSED(what, mutate)                                        \
	do {                                                         \
		memcpy(bad, s, size);                                \
		mutate;                                              \
		ok(virtio_mmio_restore(b->dev, bad, size, &err) < 0, \
		   "restore refused: %s (%s)", what, err.msg);       \
	} while (0)
	is_int(virtio_mmio_restore(b->dev, s, size + 1, &err), -1,
	       "restore refused: oversized state");
	is_int(virtio_mmio_restore(b->dev, s, size - 1, &err), -1,
	       "restore refused: truncated state");
	REFUSED("bad magic", h->magic ^= 1);
	REFUSED("future version", h->version = 2);
	REFUSED("size field", h->size += 8);
	REFUSED("device state size", h->dev_state_size = 4096);
	REFUSED("another window", h->base += 0x1000);
	REFUSED("another IRQ", h->irq = 9);
	REFUSED("interrupt bits", h->isr = 4);
	REFUSED("padding", h->pad = 1);
	REFUSED("device id", h->dev.device_id = 2);
	REFUSED("queue count", h->dev.num_queues = 2);
	REFUSED("DRIVER_OK without FEATURES_OK",
		h->dev.status = S_ACK | S_DRV | S_DOK);
	REFUSED("features never offered", h->dev.driver_features |= 1);
	REFUSED("no VERSION_1", h->dev.driver_features = 0);
	REFUSED("NEEDS_RESET without broken", h->dev.status |= 0x40);
	REFUSED("queue size 3", h->dev.queues[0].size = 3);
	REFUSED("queue size 512", h->dev.queues[0].size = 512);
	REFUSED("misaligned used ring", h->dev.queues[0].used_addr = USED + 2);
	REFUSED("rings outside RAM", h->dev.queues[0].desc_addr = MEM_SIZE);
	REFUSED("event idx not negotiated", h->dev.queues[0].event_idx = 1);
	REFUSED("state for a second queue", h->dev.queues[1].size = 4);
	REFUSED("rng state version", ((uint32_t *)(bad + sizeof(*h)))[0] = 7);
	REFUSED("rng reserved field", ((uint32_t *)(bad + sizeof(*h)))[1] = 1);
	virtio_mmio_save(b->dev, bad, size, &err);
	ok(memcmp(bad, s2, size) == 0, "refused restores changed nothing");

	/* every single-byte corruption: refused or accepted, never a crash */
	for (size_t i = 0; i < size; i++) {
		memcpy(bad, s, size);
		bad[i] ^= 0xff;
		if (virtio_mmio_restore(b->dev, bad, size, &err) == 0)
			survived++;
	}
	ok(survived < size, "byte flips: %u of %zu accepted, no crash",
	   survived, size);
	/* a restore from unaligned bytes */
	memcpy(bad + 1, s, size);
	is_int(virtio_mmio_restore(b->dev, bad + 1, size, &err), 0,
	       "restore from a misaligned buffer");
	free(s);
	free(s2);
	free(bad);
	tvm_free(a);
	tvm_free(b);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	test_glue();
	test_handshake();
	test_wrong_order();
	test_broken();
	test_config_and_slots();
	test_evloop();
	test_interrupt_unlocked();
	test_snapshot();
	return tap_done();
}
