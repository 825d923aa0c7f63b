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

#include "../lib/error.h"

struct vm;

enum vmm_device_level {
	DEVICE_LEVEL_LEGACY = 10, /* serial, i8042, cmos, boot timer */
	DEVICE_LEVEL_VIRTIO = 20, /* virtio-mmio devices */
};

struct vmm_device {
	const char *name;
	int level;
	/* Create the device for vm; *state is passed back to exit. */
	int (*init)(struct vm *vm, void **state, struct kiln_error *err);
	void (*exit)(struct vm *vm, void *state);
};

#define VMM_DEVICE(_name, _level, _init, _exit)                               \
	static const struct vmm_device vmm_device_##_name                     \
		__attribute__((used, section("vmm_devices"), aligned(8))) = { \
			.name = #_name,                                       \
			.level = (_level),                                    \
			.init = (_init),                                      \
			.exit = (_exit),                                      \
		}

extern const struct vmm_device __start_vmm_devices[];
extern const struct vmm_device __stop_vmm_devices[];

#endif
