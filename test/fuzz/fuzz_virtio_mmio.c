/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the virtio-mmio transport with the rng device (Cloud
 * Hypervisor's fuzz/fuzz_targets style: a device with fuzz-filled guest
 * memory). The input is guest memory contents, then a sequence of
 * register accesses, guest memory pokes and snapshot round trips, run
 * through the trap table as vCPUs would. No KVM, no event loop: a
 * QueueNotify runs the device at once.
 *
 * Input: uint16_t memory length, that many bytes of guest memory, then
 * struct vdrv_fuzz_op records until the input ends (test/lib/vdriver.h);
 * kinds mod OP_KINDS.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../lib/log.h"
#include "../lib/vdriver.h"

#define MEM_SIZE 0x10000ULL
#define MAX_OPS	 512

enum fuzz_kind {
	OP_SNAPSHOT = VDRV_FUZZ_OWN, /* save, flip one byte, restore */
	OP_KINDS,
};

static uint8_t host[MEM_SIZE] __attribute__((aligned(4096)));

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_ERROR);
	if (vdrv_find("virtio_rng") == NULL)
		abort();
	return 0;
}

static void own_op(struct vdrv *v, unsigned int kind,
		   const struct vdrv_fuzz_op *op)
{
	if (kind == OP_SNAPSHOT)
		vdrv_snapshot_flip(v->dev, op->value,
				   (uint8_t)(op->value >> 32));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_error err = { 0 };
	struct vdrv v;

	if (vdrv_fuzz_load(host, sizeof(host), &data, &size) < 0)
		return 0;
	vdrv_init(&v);
	v.cfg.entropy = true;
	vdrv_mem_static(&v, host, MEM_SIZE);
	if (vdrv_attach(&v, "virtio_rng", &err) < 0 || v.state == NULL)
		abort();
	vdrv_use(&v, v.state);
	vdrv_fuzz_run(&v, data, size, MAX_OPS, OP_KINDS, own_op);
	vdrv_destroy(&v);
	return 0;
}
