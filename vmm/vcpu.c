/* SPDX-License-Identifier: Apache-2.0 */
#include "vcpu.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../lib/log.h"
#include "metrics.h"
#include "seccomp.h"
#include "vm.h"

/* The signal that kicks a vCPU thread out of KVM_RUN. */
#define VCPU_KICK_SIGNAL (SIGRTMIN + 0)

static void vcpu_kick_handler(int sig)
{
	(void)sig;
}

int vcpu_signals_init(struct kiln_error *err)
{
	/* no SA_RESTART: KVM_RUN must come back with EINTR */
	struct sigaction sa = { .sa_handler = vcpu_kick_handler };

	sigemptyset(&sa.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return kiln_error_set(err, errno,
				      "install the vCPU kick handler");
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *v, unsigned int id,
		struct kiln_error *err)
{
	int size;

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = -1;
	v->state = v->want = VCPU_PAUSED;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);

	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return kiln_error_set(err, errno, "KVM_CREATE_VCPU %u", id);
	size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return kiln_error_set(err, errno, "KVM_GET_VCPU_MMAP_SIZE");
	v->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return kiln_error_set(err, errno, "map kvm_run of vCPU %u", id);
	}
	v->run_size = size;
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run != NULL)
		munmap(v->run, v->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
}

static void vcpu_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;

	metrics_inc(&metrics_vcpu,
		    out ? VCPU_M_EXIT_IO_OUT : VCPU_M_EXIT_IO_IN);
	/* string I/O (rep outsb...) arrives as count back-to-back items */
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (trap_dispatch(&v->vm->traps, TRAP_PIO, run->io.port, data,
				  run->io.size, out))
			continue;
		if (!out)
			memset(data, 0xff, run->io.size);
		if (log_ratelimit())
			log_debug("vcpu %u: unhandled port %s 0x%x size %u",
				  v->id, out ? "write" : "read", run->io.port,
				  run->io.size);
	}
}

static void vcpu_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint32_t len = run->mmio.len;

	/* guest-controlled: KVM caps len at 8, the size of data[] */
	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	metrics_inc(&metrics_vcpu, run->mmio.is_write ? VCPU_M_EXIT_MMIO_WRITE
						      : VCPU_M_EXIT_MMIO_READ);
	if (trap_dispatch(&v->vm->traps, TRAP_MMIO, run->mmio.phys_addr,
			  run->mmio.data, len, run->mmio.is_write))
		return;
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
	if (log_ratelimit())
		log_warn("vcpu %u: unhandled mmio %s 0x%llx len %u", v->id,
			 run->mmio.is_write ? "write" : "read",
			 (unsigned long long)run->mmio.phys_addr, len);
}

/* Handle one exit; false when the VM must end. */
static bool vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vm *vm = v->vm;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_io(v);
		return true;
	case KVM_EXIT_MMIO:
		vcpu_mmio(v);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN:
		/* a triple fault resets a real PC: the VM ends like a reboot */
		vm_request_exit(vm, VM_EXIT_RESET,
				"guest reset (triple fault on vcpu %u)", v->id);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		vm_request_exit(vm, VM_EXIT_RESET,
				"guest system event %u on vcpu %u",
				run->system_event.type, v->id);
		return false;
	case KVM_EXIT_HLT:
		/* only without an in-kernel LAPIC: nothing can wake it */
		vm_request_exit(vm, VM_EXIT_RESET, "guest halted on vcpu %u",
				v->id);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		metrics_inc(&metrics_vcpu, VCPU_M_FAILURES);
		vm_request_exit(vm, VM_EXIT_ERROR,
				"vcpu %u: KVM entry failed, hardware reason "
				"0x%llx",
				v->id,
				(unsigned long long)run->fail_entry
					.hardware_entry_failure_reason);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		metrics_inc(&metrics_vcpu, VCPU_M_FAILURES);
		vm_request_exit(vm, VM_EXIT_ERROR,
				"vcpu %u: KVM internal error, suberror %u",
				v->id, run->internal.suberror);
		return false;
	default:
		metrics_inc(&metrics_vcpu, VCPU_M_FAILURES);
		vm_request_exit(vm, VM_EXIT_ERROR,
				"vcpu %u: unexpected KVM exit reason %u", v->id,
				run->exit_reason);
		return false;
	}
}

static enum vcpu_state vcpu_wanted(struct vcpu *v)
{
	return __atomic_load_n(&v->want, __ATOMIC_ACQUIRE);
}

static void vcpu_enter(struct vcpu *v, enum vcpu_state s)
{
	v->state = s;
	pthread_cond_broadcast(&v->cond);
}

/*
 * What a vCPU thread may do (vmm_lockdown() adds the common rules): run
 * its vCPU, and what the exits it handles itself need: legacy devices'
 * interrupt lines, and a virtio device's activation and reset, which run
 * on the vCPU that wrote the status register (queue notifications, the
 * TAP's offloads, the device's fds in the event loop, vsock's connections
 * dropped). No open, no socket, no other ioctl.
 */
/* clang-format off */
static const struct seccomp_rule vcpu_rules[] = {
	SC_IOCTL(KVM_RUN),
	SC_IOCTL(KVM_IRQ_LINE),
	SC_IOCTL(KVM_IOEVENTFD),
	SC_IOCTL(TUNSETOFFLOAD),
	SC_IOCTL(TUNSETQUEUE),
	SC_ALLOW(epoll_ctl),
	/* virtio-fs: the rings handed to its vhost-user back-end */
	SC_ALLOW(sendmsg),
	SC_ALLOW(recvmsg),
	SC_ALLOW(poll),
	SC_ALLOW(ppoll),
	SC_ALLOW(read),
	SC_ALLOW(shutdown),
	SC_ALLOW(close),
};
/* clang-format on */
const struct seccomp_list vcpu_seccomp = SECCOMP_LIST("vcpu", vcpu_rules);

static void *vcpu_thread(void *arg)
{
	struct kiln_error err = { 0 };
	struct vcpu *v = arg;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	/* before the guest runs a single instruction on this thread */
	if (vmm_lockdown(&vcpu_seccomp, &err) < 0) {
		char buf[KILN_ERROR_MSG_MAX + 64];

		vm_request_exit(v->vm, VM_EXIT_ERROR, "vcpu %u: %s", v->id,
				kiln_error_str(&err, buf, sizeof(buf)));
		pthread_mutex_lock(&v->lock);
		vcpu_enter(v, VCPU_EXITED);
		pthread_mutex_unlock(&v->lock);
		return NULL;
	}

	pthread_mutex_lock(&v->lock);
	for (;;) {
		while (v->want == VCPU_PAUSED) {
			if (v->state != VCPU_PAUSED)
				vcpu_enter(v, VCPU_PAUSED);
			pthread_cond_wait(&v->cond, &v->lock);
		}
		if (v->want == VCPU_EXITED)
			break;
		vcpu_enter(v, VCPU_RUNNING);
		pthread_mutex_unlock(&v->lock);

		/* nor once the VM is ending (an exit of ours may have asked
		 * for it: a reset ends the guest at the write, not later) */
		while (vcpu_wanted(v) == VCPU_RUNNING &&
		       atomic_load(&v->vm->exit_reason) == VM_RUNNING) {
			int ret = ioctl(v->fd, KVM_RUN, 0);

			v->exits++;
			metrics_inc(&metrics_vcpu, VCPU_M_KVM_RUN);
			if (ret < 0) {
				if (errno == EINTR || errno == EAGAIN) {
					__atomic_store_n(
						&v->run->immediate_exit, 0,
						__ATOMIC_RELAXED);
					continue;
				}
				metrics_inc(&metrics_vcpu, VCPU_M_FAILURES);
				vm_request_exit(v->vm, VM_EXIT_ERROR,
						"vcpu %u: KVM_RUN: %s", v->id,
						strerror(errno));
				break;
			}
			if (!vcpu_handle_exit(v))
				break;
		}
		pthread_mutex_lock(&v->lock);
		if (vcpu_wanted(v) == VCPU_RUNNING)
			break; /* the VM is ending: wait here for no one */
	}
	vcpu_enter(v, VCPU_EXITED);
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int vcpu_spawn(struct vcpu *v, struct kiln_error *err)
{
	sigset_t all, old;
	int ret;

	/*
	 * The thread blocks every signal but the kick: SIGTERM and friends
	 * belong to the VMM thread's signalfd.
	 */
	sigfillset(&all);
	sigdelset(&all, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&v->thread, NULL, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0)
		return kiln_error_set(err, ret, "start vcpu %u thread", v->id);
	v->thread_started = true;
	return 0;
}

void vcpu_set_state(struct vcpu *v, enum vcpu_state want)
{
	pthread_mutex_lock(&v->lock);
	if (v->state == VCPU_EXITED) {
		pthread_mutex_unlock(&v->lock);
		return;
	}
	__atomic_store_n(&v->want, want, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&v->cond);
	if (v->state == VCPU_RUNNING && want != VCPU_RUNNING) {
		/*
		 * immediate_exit closes the race with a thread about to enter
		 * KVM_RUN: it returns EINTR at once instead of missing the
		 * signal.
		 */
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
		pthread_kill(v->thread, VCPU_KICK_SIGNAL);
	}
	while (v->state != want && v->state != VCPU_EXITED)
		pthread_cond_wait(&v->cond, &v->lock);
	pthread_mutex_unlock(&v->lock);
}

void vcpu_join(struct vcpu *v)
{
	if (!v->thread_started)
		return;
	vcpu_set_state(v, VCPU_EXITED);
	pthread_join(v->thread, NULL);
	v->thread_started = false;
}
