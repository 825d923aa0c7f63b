/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A vCPU is a thread and a small state machine (Firecracker's vstate/vcpu):
 * PAUSED <-> RUNNING -> EXITED. Pause, snapshot and fork only ever look at
 * a paused vCPU; the thread parks on a condition variable while paused, so
 * a paused VM burns no host CPU.
 */
#ifndef KILN_VMM_VCPU_H
#define KILN_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../lib/error.h"

struct vm;

enum vcpu_state {
	VCPU_PAUSED,
	VCPU_RUNNING,
	VCPU_EXITED
};

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vcpu_state state; /* what the thread is doing, under lock */
	enum vcpu_state want;  /* what it was asked to do, under lock */
	uint64_t exits;	       /* KVM_RUN returns, for metrics */
};

int vcpu_create(struct vm *vm, struct vcpu *v, unsigned int id,
		struct kiln_error *err);
void vcpu_destroy(struct vcpu *v);

/* Start the thread in PAUSED state. */
int vcpu_spawn(struct vcpu *v, struct kiln_error *err);
/* Ask for a state and wait until the thread is in it (or EXITED). */
void vcpu_set_state(struct vcpu *v, enum vcpu_state want);
/* Ask the thread to stop and join it. */
void vcpu_join(struct vcpu *v);

/* Install the no-op signal handler used to kick a vCPU out of KVM_RUN. */
int vcpu_signals_init(struct kiln_error *err);

#endif
