/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: virtio-net through the virtio-mmio transport, with
 * fuzz-filled guest memory, register accesses, memory pokes, frames from
 * the "TAP" and snapshot round trips. The TAP is faked: this file
 * provides tap_open() & co (tap.c is not linked) over a nonblocking
 * AF_UNIX datagram socketpair, so frames keep their boundaries like a TAP
 * and no privileges are needed. No KVM and no event loop: QueueNotify
 * runs the device at once, and an rx kick reads the fake TAP.
 *
 * Input: uint16_t memory length, that many bytes of guest memory, then
 * struct fuzz_op records until the input ends.
 */
#include <errno.h>
#include <linux/if_tun.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/device.h"
#include "../../vmm/virtio/mmio.h"
#include "../../vmm/virtio/tap.h"
#include "../../vmm/vm.h"

#define MEM_SIZE  0x10000ULL
#define MAX_OPS	  512
#define FRAME_MAX 65600 /* a little over what the device accepts */

enum fuzz_kind {
	OP_WRITE,    /* register or config write */
	OP_READ,     /* register or config read */
	OP_POKE,     /* the driver writes 8 bytes of guest memory */
	OP_FRAME,    /* a frame arrives on the TAP */
	OP_DRAIN,    /* the host reads what the guest sent */
	OP_SNAPSHOT, /* save, flip one byte, restore */
	OP_KINDS,
};

struct fuzz_op {
	uint8_t kind;	 /* enum fuzz_kind, mod OP_KINDS */
	uint8_t size;	 /* bit 7 set: 1 << (size & 3) bytes, else 4 */
	uint16_t offset; /* in the window (& 0x1fff: some fall outside) */
	uint64_t value;
} __attribute__((packed));

static uint8_t host[MEM_SIZE] __attribute__((aligned(4096)));
static uint8_t frame[FRAME_MAX];
static const struct vmm_device *net_desc;
static int peer = -1; /* the host's end of the fake TAP */

/* ---- the fake TAP (replaces tap.c) ---- */

int tap_open(struct tap *t, const char *name, struct kiln_error *err)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv) < 0)
		return kiln_error_set(err, errno, "socketpair");
	t->fd = sv[0];
	peer = sv[1];
	strcpy(t->name, "fuzz0");
	t->offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO;
	return 0;
}

int tap_set_offload(struct tap *t, unsigned int flags, struct kiln_error *err)
{
	return 0;
}

void tap_close(struct tap *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (peer >= 0)
		close(peer);
	peer = -1;
}

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

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_ERROR);
	for (const struct vmm_device *d = __start_vmm_devices;
	     d < __stop_vmm_devices; d++)
		if (strcmp(d->name, "virtio_net") == 0)
			net_desc = d;
	if (net_desc == NULL)
		abort();
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 7);
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

static void inject(uint64_t value)
{
	/* mostly small frames, sometimes up to and past the limit */
	size_t len = (value & 0x10000) ? (value >> 20) % FRAME_MAX
				       : (value >> 20) % 2048;

	memcpy(frame, &value, 8);
	if (send(peer, frame, len, MSG_DONTWAIT) < 0) {
		/* full: the kernel would drop it on the TAP too */
	}
}

static void drain(void)
{
	static uint8_t sink[FRAME_MAX];

	while (recv(peer, sink, sizeof(sink), MSG_DONTWAIT) >= 0) {
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_config cfg = { .nnets = 1 };
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

	cfg.nets[0] = (struct vm_net){ .id = "eth0",
				       .tap = "fuzz0",
				       .mac = { 2, 0, 0, 0, 0, 1 },
				       .has_mac = memlen & 1 };
	memset(&vm, 0, sizeof(vm));
	vm.cfg = &cfg;
	vm.kvm_fd = vm.vm_fd = vm.signal_fd = -1;
	vm.loop.epfd = vm.loop.stop_efd = -1;
	vm.mem.host = host;
	vm.mem.size = MEM_SIZE;
	vm.mem.fd = -1;
	vm.mem.nregions = 1;
	vm.mem.regions[0] = (struct guest_region){ 0, MEM_SIZE, 0 };
	if (net_desc->init(&vm, &state, &err) < 0 || state == NULL)
		abort();
	/* struct net_set: unsigned int count, then the device pointers */
	d = *(struct virtio_dev **)((char *)state + 8);
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
		case OP_FRAME:
			inject(op.value);
			break;
		case OP_DRAIN:
			drain();
			break;
		case OP_SNAPSHOT:
			snapshot(d, op.value);
			break;
		}
	}
	net_desc->exit(&vm, state);
	trap_table_destroy(&vm.traps);
	return 0;
}
