/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Devices register themselves in one line (kvmtool's virtio_dev_init,
 * Solo5's DECLARE_MODULE): VMM_DEVICE(name, level, init, exit) places a
 * descriptor in the "vmm_devices" section; vm_run() creates them in level
 * order and destroys them in reverse. Adding a device is one new file and
 * one Makefile line.
 */
#ifndef KILN_VMM_DEVICE_H
#define KILN_VMM_DEVICE_H

#include <stddef.h>

#include "../lib/error.h"

struct vm;

enum vmm_device_level {
	DEVICE_LEVEL_LEGACY = 10, /* serial, i8042, cmos, boot timer */
	DEVICE_LEVEL_VIRTIO = 20, /* virtio-mmio devices */
};

/*
 * A device with state of its own in a snapshot (vmm/snapshot.h). The
 * virtio-mmio devices need none: the snapshot saves every virtio-mmio
 * window through its transport. All three run on the VMM thread with the
 * vCPUs paused (save) or not started yet (restore).
 */
struct vmm_device_snap {
	/* bytes of state for state (0: nothing to save, e.g. absent) */
	size_t (*size)(void *state);
	int (*save)(void *state, void *buf, size_t len, struct kiln_error *err);
	/* untrusted bytes: check all, change nothing on failure */
	int (*restore)(void *state, const void *buf, size_t len,
		       struct kiln_error *err);
};

struct vmm_device {
	const char *name;
	int level;
	/* Create the device for vm; *state is passed back to exit. */
	int (*init)(struct vm *vm, void **state, struct kiln_error *err);
	void (*exit)(struct vm *vm, void *state);
	const struct vmm_device_snap *snap; /* NULL: nothing to save */
};

#define VMM_DEVICE_SNAP(_name, _level, _init, _exit, _snap)                   \
	static const struct vmm_device vmm_device_##_name                     \
		__attribute__((used, section("vmm_devices"), aligned(8))) = { \
			.name = #_name,                                       \
			.level = (_level),                                    \
			.init = (_init),                                      \
			.exit = (_exit),                                      \
			.snap = (_snap),                                      \
		}
#define VMM_DEVICE(_name, _level, _init, _exit) \
	VMM_DEVICE_SNAP(_name, _level, _init, _exit, NULL)

extern const struct vmm_device __start_vmm_devices[];
extern const struct vmm_device __stop_vmm_devices[];

#endif
