/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: virtio-balloon over the virtio-mmio transport, with
 * fuzz-filled guest memory that is a real memfd mapped MAP_SHARED, so
 * inflate and free page reports really punch holes: PFN arrays, report
 * ranges, stats buffers, queue roles that move with the negotiated
 * features, target changes and snapshot round trips. No KVM, no event
 * loop: a QueueNotify runs the device at once.
 *
 * Input: one byte of device config (bit 0 deflate-on-oom, bit 1 stats
 * polling, bits 2-7 the target in MiB, refused above RAM), then the shape
 * of fuzz_virtio_mmio's: uint16_t memory length, that many bytes of guest
 * memory, then struct vdrv_fuzz_op records.
 * Invariant checked after each input: the memfd kept its size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/virtio/balloon.h"
#include "../lib/vdriver.h"

#define MEM_SIZE (1ULL << 20)
#define MAX_OPS	 512

enum fuzz_kind {
	OP_SNAPSHOT = VDRV_FUZZ_OWN, /* save, flip one byte, restore */
	OP_TARGET,		     /* balloon_set_target(value % 4 MiB) */
	OP_POLL,		     /* the stats timer fires */
	OP_STATS,		     /* balloon_get_stats, balloon_actual_mib */
	OP_KINDS,
};

static uint8_t *host;
static int memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_ERROR);
	if (vdrv_find("virtio_balloon") == NULL)
		abort();
	memfd = memfd_create("fuzz-balloon-ram", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, (off_t)MEM_SIZE) < 0)
		abort();
	host = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd,
		    0);
	if (host == MAP_FAILED)
		abort();
	return 0;
}

static void own_op(struct vdrv *v, unsigned int kind,
		   const struct vdrv_fuzz_op *op)
{
	struct kiln_error err = { 0 };
	struct balloon_stats s;

	switch (kind) {
	case OP_SNAPSHOT:
		vdrv_snapshot_flip(v->dev, op->value,
				   (uint8_t)(op->value >> 32));
		break;
	case OP_TARGET:
		balloon_set_target(v->dev, (uint32_t)(op->value % 4), &err);
		break;
	case OP_POLL:
		balloon_poll_stats(v->dev);
		break;
	case OP_STATS:
		if (balloon_get_stats(v->dev, &s, &err) == 0 &&
		    (s.target_pages > MEM_SIZE / 4096 ||
		     (s.present >> BALLOON_S_NR) != 0))
			abort();
		(void)balloon_actual_mib(v->dev);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_error err = { 0 };
	struct vdrv v;
	struct stat st;
	uint8_t c;

	if (size < 1)
		return 0;
	c = data[0];
	data++;
	size--;
	if (vdrv_fuzz_load(host, MEM_SIZE, &data, &size) < 0)
		return 0;
	vdrv_init(&v);
	v.cfg.mem_mib = MEM_SIZE >> 20;
	v.cfg.balloon = (struct vm_balloon){
		.enabled = true,
		.amount_mib = (c >> 2) % 2,
		.deflate_on_oom = c & 1,
		.stats_interval_s = (c & 2) ? 1 : 0,
	};
	vdrv_mem_static(&v, host, MEM_SIZE);
	v.vm.mem.fd = memfd; /* holes are punched for real */
	if (vdrv_attach(&v, "virtio_balloon", &err) < 0 || v.state == NULL)
		abort();
	v.vm.devices[0] = (struct vm_device_state){ v.desc, v.state };
	v.vm.ndevices = 1;
	vdrv_use(&v, balloon_lookup(&v.vm));
	if (v.dev == NULL)
		abort();
	vdrv_fuzz_run(&v, data, size, MAX_OPS, OP_KINDS, own_op);
	vdrv_destroy(&v);
	/* KEEP_SIZE: no request may grow or shrink guest RAM */
	if (fstat(memfd, &st) < 0 || (uint64_t)st.st_size != MEM_SIZE)
		abort();
	return 0;
}
