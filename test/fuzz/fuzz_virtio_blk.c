/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: virtio-blk over the virtio-mmio transport, with
 * fuzz-filled guest memory (Cloud Hypervisor's fuzz_targets/block.rs
 * idea), over a small raw image in /tmp whose size is fixed: every request
 * type, range, chain shape and snapshot round trip the input can make.
 * No KVM, no event loop: a QueueNotify runs the device at once.
 *
 * Input: the shape of fuzz_virtio_mmio's: uint16_t memory length, that
 * many bytes of guest memory, then struct fuzz_op records. Extra op:
 * OP_REPLACE points the drive at the other image (64 or 32 KiB).
 * Invariant checked after each input: the images kept their sizes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/device.h"
#include "../../vmm/virtio/blk.h"
#include "../../vmm/virtio/mmio.h"
#include "../../vmm/vm.h"

#define MEM_SIZE 0x10000ULL
#define MAX_OPS	 512
#define IMG_A	 (64 * 1024)
#define IMG_B	 (32 * 1024)

enum fuzz_kind {
	OP_WRITE,    /* register or config write */
	OP_READ,     /* register or config read */
	OP_POKE,     /* the driver writes 8 bytes of guest memory */
	OP_SNAPSHOT, /* save, flip one byte, restore */
	OP_REPLACE,  /* blk_replace_backing to image A or B */
	OP_KINDS,
};

struct fuzz_op {
	uint8_t kind;	 /* enum fuzz_kind, mod OP_KINDS */
	uint8_t size;	 /* bit 7 set: 1 << (size & 3) bytes, else 4 */
	uint16_t offset; /* in the window (& 0x1fff: some fall outside) */
	uint64_t value;
} __attribute__((packed));

static uint8_t host[MEM_SIZE] __attribute__((aligned(4096)));
static const struct vmm_device *blk_desc;
static char img_a[64], img_b[64], drive_id[] = "fuzz";

/* vm.c needs KVM; weak so that linking it instead changes nothing */
__attribute__((weak)) int vm_irqfd(struct vm *vm, unsigned int gsi,
				   struct kiln_error *err)
{
	return kiln_error_set(err, ENOSYS, "no KVM");
}

__attribute__((weak)) int
vm_cmdline_append(struct vm *vm, struct kiln_error *err, const char *fmt, ...)
{
	return 0;
}

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
	for (const struct vmm_device *d = __start_vmm_devices;
	     d < __stop_vmm_devices; d++)
		if (strcmp(d->name, "virtio_blk") == 0)
			blk_desc = d;
	if (blk_desc == NULL)
		abort();
	mkimage(img_a, IMG_A, "a");
	mkimage(img_b, IMG_B, "b");
	atexit(cleanup);
	return 0;
}

static void snapshot(struct virtio_dev *d, uint64_t value)
{
	static uint8_t
		buf[sizeof(struct virtio_mmio_state) + VIRTIO_DEV_STATE_MAX];
	size_t size = virtio_mmio_state_size(d);
	struct kiln_error err = { 0 };

	if (size > sizeof(buf) || virtio_mmio_save(d, buf, size, &err) < 0)
		abort();
	buf[value % size] ^= (uint8_t)(value >> 32);
	/* refused or accepted: either way the device must stay sound */
	virtio_mmio_restore(d, buf, size, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_config cfg;
	struct kiln_error err = { 0 };
	struct vm vm;
	struct virtio_dev *d;
	void *state = NULL;
	uint16_t memlen;
	uint64_t base;
	unsigned int n = 0;

	if (size < 2)
		return 0;
	memcpy(&memlen, data, 2);
	data += 2;
	size -= 2;
	if (memlen > size)
		memlen = (uint16_t)size;
	memset(host, 0, sizeof(host));
	memcpy(host, data, memlen);
	data += memlen;
	size -= memlen;

	/* no config.c here (it pulls in yajl): the drive by hand */
	memset(&cfg, 0, sizeof(cfg));
	cfg.ndrives = 1;
	cfg.drives[0] = (struct vm_drive){ .id = drive_id, .path = img_a };
	memset(&vm, 0, sizeof(vm));
	vm.cfg = &cfg;
	vm.kvm_fd = vm.vm_fd = vm.signal_fd = -1;
	vm.loop.epfd = vm.loop.stop_efd = -1;
	vm.mem.host = host;
	vm.mem.size = MEM_SIZE;
	vm.mem.fd = -1;
	vm.mem.nregions = 1;
	vm.mem.regions[0] = (struct guest_region){ 0, MEM_SIZE, 0 };
	if (blk_desc->init(&vm, &state, &err) < 0 || state == NULL)
		abort();
	vm.devices[0] = (struct vm_device_state){ blk_desc, state };
	vm.ndevices = 1;
	d = blk_lookup(&vm, "fuzz");
	if (d == NULL)
		abort();
	base = virtio_mmio_base(d);

	while (size >= sizeof(struct fuzz_op) && n++ < MAX_OPS) {
		struct fuzz_op op;
		uint8_t buf[8];
		uint32_t len;

		memcpy(&op, data, sizeof(op));
		data += sizeof(op);
		size -= sizeof(op);
		len = (op.size & 0x80) ? 1u << (op.size & 3) : 4;
		switch (op.kind % OP_KINDS) {
		case OP_WRITE:
			memcpy(buf, &op.value, 8);
			trap_dispatch(&vm.traps, TRAP_MMIO,
				      base + (op.offset & 0x1fff), buf, len,
				      true);
			break;
		case OP_READ:
			trap_dispatch(&vm.traps, TRAP_MMIO,
				      base + (op.offset & 0x1fff), buf, len,
				      false);
			break;
		case OP_POKE:
			memcpy(host + (op.offset % (MEM_SIZE / 8)) * 8,
			       &op.value, 8);
			break;
		case OP_SNAPSHOT:
			snapshot(d, op.value);
			break;
		case OP_REPLACE:
			if (blk_replace_backing(d, op.value & 1 ? img_b : img_a,
						&err) < 0)
				abort();
			break;
		}
	}
	blk_desc->exit(&vm, state);
	trap_table_destroy(&vm.traps);
	/* no request may grow or shrink an image */
	if (file_size(img_a) != IMG_A || file_size(img_b) != IMG_B)
		abort();
	return 0;
}
