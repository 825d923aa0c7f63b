/* SPDX-License-Identifier: Apache-2.0 */
/* A KVM virtual machine: memory, vCPUs, devices, event loop. */
#ifndef KILN_VMM_VM_H
#define KILN_VMM_VM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../lib/error.h"
#include "config.h"
#include "evloop.h"
#include "memory.h"
#include "trap.h"
#include "vcpu.h"

#define VM_MAX_DEVICES 32

/* Why the VM ended: decides the VMM's exit status. */
enum vm_exit_reason {
	VM_RUNNING = 0,
	VM_EXIT_RESET,	/* guest reboot: i8042 reset or triple fault */
	VM_EXIT_ERROR,	/* KVM or VMM failure while running */
	VM_EXIT_SIGNAL, /* the VMM was told to stop */
};

struct vm_device_state {
	const struct vmm_device *desc;
	void *state;
};

struct vm {
	const struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;
	struct guest_mem mem;
	struct trap_table traps;
	struct evloop loop;
	unsigned int vcpu_count;
	struct vcpu *vcpus;
	unsigned int ndevices;
	struct vm_device_state devices[VM_MAX_DEVICES];
	int signal_fd;	     /* SIGINT/SIGTERM/SIGHUP, on the event loop */
	int exit_signal;     /* the signal that ended the VM, if any */
	char *cmdline_extra; /* what devices add to the kernel command line */
	uint64_t start_ns;   /* CLOCK_MONOTONIC when the VMM started */
	bool booted;	     /* vm_boot succeeded: KVM VM, devices, vCPUs */
	bool paused;	     /* every vCPU parked by vm_pause */
	bool locked_down;    /* the VMM thread's seccomp filter is loaded */
	bool fork;	     /* restored from a template (fork.h) */
	_Atomic int exit_reason; /* enum vm_exit_reason, first one wins */
	char exit_msg[256];
};

/*
 * A VM's life: vm_init (event loop and signals, no KVM yet: the API serves
 * from here), vm_boot (KVM VM, guest memory, devices, kernel, vCPUs
 * running; on failure everything it made is undone and vm_boot may be
 * called again), vm_run (the VMM thread's loop until the guest or a
 * signal ends it), vm_destroy (also after a failed vm_init). cfg must
 * outlive the VM; it is read by vm_boot.
 */
int vm_init(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns,
	    struct kiln_error *err);
int vm_boot(struct vm *vm, struct kiln_error *err);
int vm_run(struct vm *vm, struct kiln_error *err);

/*
 * vm_boot's counterpart for a snapshot: the KVM VM, guest RAM mapped
 * MAP_PRIVATE from mem_fd (taken), vCPUs and devices as vm->cfg (the
 * snapshot's config) says, then img's state; the vCPU threads start
 * paused. On failure everything it made is undone.
 */
struct snap_image;
int vm_restore(struct vm *vm, const struct snap_image *img, int mem_fd,
	       struct kiln_error *err);
void vm_destroy(struct vm *vm);
/*
 * End a booted VM but keep the VMM (event loop, signals): vCPUs joined,
 * devices gone, KVM VM closed, RAM unmapped. A template's end (fork.h).
 */
void vm_end(struct vm *vm);

/* Park every vCPU (a paused guest uses no host CPU), or run them again. */
int vm_pause(struct vm *vm, struct kiln_error *err);
int vm_resume(struct vm *vm, struct kiln_error *err);

/*
 * End the VM (from any thread): records the first reason and message,
 * stops the event loop, which then stops every vCPU.
 */
void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));

/*
 * Append " <text>" to the guest kernel command line (a device declaring
 * itself, e.g. virtio_mmio.device=4K@0xd0000000:5). Devices are created
 * before the kernel is loaded, so this is for their init functions.
 */
int vm_cmdline_append(struct vm *vm, struct kiln_error *err, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));

/*
 * An eventfd that raises guest interrupt gsi when written (KVM irqfd).
 * Edge-triggered: each write is one interrupt.
 */
int vm_irqfd(struct vm *vm, unsigned int gsi, struct kiln_error *err);
/*
 * KVM's dirty log of every memory slot (the guest's writes since the last
 * call) OR'ed into vm->mem.dirty; the VMM thread's, vCPUs paused. An
 * error when dirty pages are not tracked.
 */
int vm_collect_dirty(struct vm *vm, struct kiln_error *err);

/* Set a level-triggered interrupt line (KVM_IRQ_LINE). */
int vm_irq_line(struct vm *vm, unsigned int gsi, int level,
		struct kiln_error *err);

#endif
