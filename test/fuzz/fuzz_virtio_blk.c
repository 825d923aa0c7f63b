/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: virtio-blk over the virtio-mmio transport, with
 * fuzz-filled guest memory (Cloud Hypervisor's fuzz_targets/block.rs
 * idea), over a small raw image in /tmp whose size is fixed: every request
 * type, range, chain shape and snapshot round trip the input can make.
 * No KVM, no event loop: a QueueNotify runs the device at once.
 *
 * Input: the shape of fuzz_virtio_mmio's: uint16_t memory length, that
 * many bytes of guest memory, then struct vdrv_fuzz_op records. Extra op:
 * OP_REPLACE points the drive at the other image (64 or 32 KiB).
 * Invariant checked after each input: the images kept their sizes.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/virtio/blk.h"
#include "../lib/vdriver.h"

#define MEM_SIZE 0x10000ULL
#define MAX_OPS	 512
#define IMG_A	 (64 * 1024)
#define IMG_B	 (32 * 1024)

enum fuzz_kind {
	OP_SNAPSHOT = VDRV_FUZZ_OWN, /* save, flip one byte, restore */
	OP_REPLACE,		     /* blk_replace_backing to image A or B */
	OP_KINDS,
};

static uint8_t host[MEM_SIZE] __attribute__((aligned(4096)));
static char img_a[64], img_b[64], drive_id[] = "fuzz";

static void mkimage(char *path, size_t size, const char *tag)
{
	int fd;

	snprintf(path, 64, "/tmp/fuzz_virtio_blk.%d.%s.img", (int)getpid(),
		 tag);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		abort();
	close(fd);
}

static void cleanup(void)
{
	unlink(img_a);
	unlink(img_b);
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : st.st_size;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_ERROR);
	if (vdrv_find("virtio_blk") == NULL)
		abort();
	mkimage(img_a, IMG_A, "a");
	mkimage(img_b, IMG_B, "b");
	atexit(cleanup);
	return 0;
}

static void own_op(struct vdrv *v, unsigned int kind,
		   const struct vdrv_fuzz_op *op)
{
	struct kiln_error err = { 0 };

	switch (kind) {
	case OP_SNAPSHOT:
		vdrv_snapshot_flip(v->dev, op->value,
				   (uint8_t)(op->value >> 32));
		break;
	case OP_REPLACE:
		if (blk_replace_backing(v->dev, op->value & 1 ? img_b : img_a,
					-1, &err) < 0)
			abort();
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_error err = { 0 };
	struct vdrv v;
	struct virtio_dev *d;

	if (vdrv_fuzz_load(host, sizeof(host), &data, &size) < 0)
		return 0;
	vdrv_init(&v);
	/* no config.c here (it pulls in yajl): the drive by hand */
	v.cfg.ndrives = 1;
	v.cfg.drives[0] = (struct vm_drive){ .id = drive_id, .path = img_a };
	vdrv_mem_static(&v, host, MEM_SIZE);
	if (vdrv_attach(&v, "virtio_blk", &err) < 0 || v.state == NULL)
		abort();
	v.vm.devices[0] = (struct vm_device_state){ v.desc, v.state };
	v.vm.ndevices = 1;
	d = blk_lookup(&v.vm, "fuzz");
	if (d == NULL)
		abort();
	vdrv_use(&v, d);
	vdrv_fuzz_run(&v, data, size, MAX_OPS, OP_KINDS, own_op);
	vdrv_destroy(&v);
	/* no request may grow or shrink an image */
	if (file_size(img_a) != IMG_A || file_size(img_b) != IMG_B)
		abort();
	return 0;
}
