/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-fs (device id 26, virtio 1.2 section 5.11) with its rings served
 * by a vhost-user backend, Debian's virtiofsd: kiln-vmm owns the register
 * window, the config space (tag, request queues) and the connection; the
 * FUSE requests go from the guest's rings to the backend and back through
 * a KVM ioeventfd (kick) and irqfd (call) per queue, never through us.
 *
 * Guest RAM must be the shared memfd (vm_config_needs_shared_mem): the
 * backend maps it from the fds of SET_MEM_TABLE. A snapshot, a fork or a
 * restore of a VM with such a device is refused: the backend's state (open
 * files, ring positions) is not ours to save.
 *
 * When the backend goes away (it exits, is killed, breaks the protocol or
 * stays silent past the timeout) the device is marked broken, the guest's
 * requests wait for ever, and the VM and the other devices run on. No
 * reconnect yet.
 */
#ifndef KILN_VMM_VIRTIO_FS_H
#define KILN_VMM_VIRTIO_FS_H

#include <stdint.h>

#include "../../lib/error.h"
#include "virtio.h"

struct vm;
struct vm_fs;

/* the device's config space (virtio 1.2 section 5.11.4) */
struct virtio_fs_config {
	uint8_t tag[36]; /* UTF-8, NUL-padded, not NUL-terminated at 36 */
	uint32_t num_request_queues;
} __attribute__((packed));

/* how long one vhost-user exchange may take before the backend is dropped */
#define FS_BACKEND_TIMEOUT_MS 5000

/*
 * One device for cfg on vm: connect to the backend, handshake, hand it
 * the memory table, add the virtio-mmio window. timeout_ms 0: the
 * default. For the VMM_DEVICE and for tests (vm->vm_fd < 0 is fine).
 */
int fs_create(struct vm *vm, const struct vm_fs *cfg, unsigned int timeout_ms,
	      struct virtio_dev **out, struct kiln_error *err);
void fs_destroy(struct virtio_dev *d);
/* Is the backend connection still up? (tests, logs) Lock held or not. */
bool fs_connected(struct virtio_dev *d);

/* Device i of the VMM_DEVICE's state (what its init gave), or NULL. */
struct virtio_dev *fs_set_dev(void *state, unsigned int i);

#endif
