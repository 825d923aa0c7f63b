/* SPDX-License-Identifier: Apache-2.0 */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "device.h"
#include "loader.h"
#include "mptable.h"
#include "seccomp.h"
#include "snapshot.h"
#include "x86.h"

/* Where KVM on Intel keeps its real-mode TSS and identity map: in the gap. */
#define VM_TSS_ADDR	     0xfffbd000ULL
#define VM_IDENTITY_MAP_ADDR 0xfffbc000ULL

void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, const char *fmt,
		     ...)
{
	int expected = VM_RUNNING;
	va_list ap;

	/* the first reason wins; later ones are consequences of it */
	if (atomic_compare_exchange_strong(&vm->exit_reason, &expected,
					   reason)) {
		va_start(ap, fmt);
		vsnprintf(vm->exit_msg, sizeof(vm->exit_msg), fmt, ap);
		va_end(ap);
	}
	evloop_stop(&vm->loop);
}

int vm_cmdline_append(struct vm *vm, struct kiln_error *err, const char *fmt,
		      ...)
{
	size_t old = vm->cmdline_extra ? strlen(vm->cmdline_extra) : 0;
	char *add = NULL, *s;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&add, fmt, ap);
	va_end(ap);
	if (n < 0)
		return kiln_error_set(err, ENOMEM, "kernel command line");
	s = realloc(vm->cmdline_extra, old + n + 2);
	if (s == NULL) {
		free(add);
		return kiln_error_set(err, ENOMEM, "kernel command line");
	}
	s[old] = ' ';
	memcpy(s + old + 1, add, n + 1);
	vm->cmdline_extra = s;
	free(add);
	return 0;
}

static int kvm_check_caps(int kvm_fd, struct kiln_error *err)
{
	static const struct {
		int cap;
		const char *name;
	} caps[] = {
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
		{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
		{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(caps); i++)
		if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0)
			return kiln_error_set(err, ENOTSUP, "KVM lacks %s",
					      caps[i].name);
	return 0;
}

/* Refuse more guest RAM than the host has: it would be overcommitted. */
static int vm_check_mem(uint64_t bytes, struct kiln_error *err)
{
	struct sysinfo si;
	uint64_t host;

	if (sysinfo(&si) < 0)
		return kiln_error_set(err, errno, "sysinfo");
	host = (uint64_t)si.totalram * si.mem_unit;
	if (bytes > host)
		return kiln_error_set(err, 0,
				      "guest memory of %llu MiB exceeds the "
				      "host's %llu MiB",
				      (unsigned long long)(bytes >> 20),
				      (unsigned long long)(host >> 20));
	return 0;
}

static int vm_setup_kvm(struct vm *vm, struct kiln_error *err)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	int ret, max;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return kiln_error_set(err, errno,
				      "open /dev/kvm (kiln-vmm needs KVM; "
				      "hack/testbed provides it where the "
				      "machine has none)");
	ret = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ret != KVM_API_VERSION)
		return kiln_error_set(err, ENOTSUP,
				      "KVM API version %d, want %d", ret,
				      KVM_API_VERSION);
	if (kvm_check_caps(vm->kvm_fd, err) < 0)
		return -1;
	max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max > 0 && vm->cfg->vcpu_count > (unsigned int)max)
		return kiln_error_set(err, 0,
				      "%u vCPUs: this host's KVM allows %d",
				      vm->cfg->vcpu_count, max);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return kiln_error_set(err, errno, "KVM_CREATE_VM");
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, VM_TSS_ADDR) < 0)
		return kiln_error_set(err, errno, "KVM_SET_TSS_ADDR");
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR,
		  &(uint64_t){ VM_IDENTITY_MAP_ADDR }) < 0)
		return kiln_error_set(err, errno, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return kiln_error_set(err, errno, "KVM_CREATE_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return kiln_error_set(err, errno, "KVM_CREATE_PIT2");
	return 0;
}

/*
 * Guest RAM: new, backed as the host allows (memory.h), or (mem_fd >= 0,
 * taken) a file mapped private. A device whose back-end maps guest RAM
 * (vhost-user) needs GUEST_MEM_SHARED in mem_flags.
 */
static int vm_setup_memory(struct vm *vm, int mem_fd, struct kiln_error *err)
{
	uint64_t size = vm->cfg->mem_mib << 20;
	/* a vhost-user backend maps RAM from the fds we send it */
	unsigned int mem_flags =
		vm_config_needs_shared_mem(vm->cfg) ? GUEST_MEM_SHARED : 0;

	if ((mem_fd >= 0 ? guest_mem_init_private(&vm->mem, mem_fd, size, err)
			 : guest_mem_init_backed(&vm->mem, size, mem_flags,
						 err)) < 0)
		return -1;
	if (vm->cfg->track_dirty_pages &&
	    guest_mem_track_dirty(&vm->mem, err) < 0)
		return -1;
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		const struct guest_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr =
				(uint64_t)(uintptr_t)(vm->mem.host + r->offset),
			.flags = vm->mem.dirty != NULL ? KVM_MEM_LOG_DIRTY_PAGES
						       : 0,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return kiln_error_set(
				err, errno, "KVM_SET_USER_MEMORY_REGION %u", i);
	}
	return 0;
}

int vm_collect_dirty(struct vm *vm, struct kiln_error *err)
{
	struct guest_mem *m = &vm->mem;

	if (m->dirty == NULL)
		return kiln_error_set(err, 0,
				      "dirty pages are not tracked: set "
				      "`track_dirty_pages` in machine-config "
				      "before boot, or in snapshot/load");
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct guest_region *r = &m->regions[i];
		uint64_t pages = r->size / 4096, base = r->offset / 4096;
		cleanup_free uint64_t *log = calloc((pages + 63) / 64, 8);
		struct kvm_dirty_log dl = { .slot = i };

		if (log == NULL)
			return kiln_error_set(err, ENOMEM, "dirty log");
		dl.dirty_bitmap = log;
		/* returns the slot's log and clears it */
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &dl) < 0)
			return kiln_error_set(err, errno,
					      "KVM_GET_DIRTY_LOG %u", i);
		for (uint64_t w = 0; w < (pages + 63) / 64; w++)
			for (uint64_t b = log[w]; b != 0; b &= b - 1) {
				uint64_t pg = base + w * 64 +
					      (uint64_t)__builtin_ctzll(b);

				__atomic_fetch_or(&m->dirty[pg / 64],
						  1ULL << (pg % 64),
						  __ATOMIC_RELAXED);
			}
	}
	return 0;
}

int vm_irqfd(struct vm *vm, unsigned int gsi, struct kiln_error *err)
{
	struct kvm_irqfd irqfd = { .gsi = gsi };
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		return kiln_error_set(err, errno, "eventfd for IRQ %u", gsi);
	irqfd.fd = fd;
	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
		kiln_error_set(err, errno, "KVM_IRQFD for IRQ %u", gsi);
		close(fd);
		return -1;
	}
	return fd;
}

int vm_irq_line(struct vm *vm, unsigned int gsi, int level,
		struct kiln_error *err)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		return kiln_error_set(err, errno, "KVM_IRQ_LINE %u", gsi);
	return 0;
}

static int device_cmp(const void *a, const void *b)
{
	const struct vm_device_state *x = a, *y = b;

	if (x->desc->level != y->desc->level)
		return x->desc->level - y->desc->level;
	return strcmp(x->desc->name, y->desc->name);
}

static int vm_init_devices(struct vm *vm, struct kiln_error *err)
{
	const struct vmm_device *d;
	struct vm_device_state all[VM_MAX_DEVICES];
	unsigned int n = 0;

	for (d = __start_vmm_devices; d < __stop_vmm_devices; d++) {
		if (n == VM_MAX_DEVICES)
			return kiln_error_set(err, E2BIG,
					      "too many device types");
		all[n++] = (struct vm_device_state){ .desc = d };
	}
	qsort(all, n, sizeof(all[0]), device_cmp);
	for (unsigned int i = 0; i < n; i++) {
		if (all[i].desc->init(vm, &all[i].state, err) < 0)
			return kiln_error_wrap(err, "device %s",
					       all[i].desc->name);
		vm->devices[vm->ndevices++] = all[i];
	}
	return 0;
}

static void vm_exit_devices(struct vm *vm)
{
	while (vm->ndevices > 0) {
		struct vm_device_state *d = &vm->devices[--vm->ndevices];

		if (d->desc->exit != NULL)
			d->desc->exit(vm, d->state);
	}
}

static void vm_on_signal(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo si;
	int fd = vm->signal_fd;

	(void)events;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	vm->exit_signal = (int)si.ssi_signo;
	vm_request_exit(vm, VM_EXIT_SIGNAL, "stopped by signal %d (%s)",
			(int)si.ssi_signo, strsignal((int)si.ssi_signo));
}

/* SIGINT, SIGTERM and SIGHUP end the VM through the event loop. */
static int vm_setup_signals(struct vm *vm, struct kiln_error *err)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return kiln_error_set(err, errno, "block signals");
	vm->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (vm->signal_fd < 0)
		return kiln_error_set(err, errno, "signalfd");
	/* in the loop until evloop_destroy: the handle is not kept */
	return evloop_add(&vm->loop, vm->signal_fd, EPOLLIN, vm_on_signal, vm,
			  err) != NULL
		       ? 0
		       : -1;
}

static int vm_load(struct vm *vm, struct boot_entry *boot,
		   struct kiln_error *err)
{
	const struct vm_config *cfg = vm->cfg;
	const char *base = cfg->cmdline ? cfg->cmdline : VM_DEFAULT_CMDLINE;
	cleanup_free char *cmdline = NULL;

	if (asprintf(&cmdline, "%s%s", base,
		     vm->cmdline_extra ? vm->cmdline_extra : "") < 0)
		return kiln_error_set(err, ENOMEM, "kernel command line");
	if (loader_load(&vm->mem, cfg->kernel_path, cfg->initrd_path, cmdline,
			boot, err) < 0)
		return -1;
	if (mptable_write(&vm->mem, vm->vcpu_count, err) < 0)
		return -1;
	return x86_setup_boot_memory(&vm->mem, boot, err);
}

int vm_init(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns,
	    struct kiln_error *err)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->kvm_fd = vm->vm_fd = vm->signal_fd = -1;
	vm->mem.fd = -1;
	vm->loop.epfd = vm->loop.stop_efd = -1;
	vm->start_ns = start_ns;
	atomic_init(&vm->exit_reason, VM_RUNNING);
	if (evloop_init(&vm->loop, err) < 0 || vcpu_signals_init(err) < 0 ||
	    vm_setup_signals(vm, err) < 0)
		return -1;
	return 0;
}

/* Undo vm_boot, back to what vm_init left: the loop and signals stay. */
static void vm_unboot(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->vcpu_count; i++) {
		vcpu_join(&vm->vcpus[i]);
		vcpu_destroy(&vm->vcpus[i]);
	}
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->vcpu_count = 0;
	vm_exit_devices(vm);
	free(vm->cmdline_extra);
	vm->cmdline_extra = NULL;
	trap_table_destroy(&vm->traps);
	guest_mem_destroy(&vm->mem);
	vm->mem.fd = -1;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
	vm->booted = false;
	vm->paused = false;
}

void vm_end(struct vm *vm)
{
	vm_unboot(vm);
}

/*
 * The VMM thread confines itself before the guest first runs: what only
 * setting up needs (opening /dev/kvm and TAPs, creating the VM, vCPUs and
 * threads) is done by then, and no guest byte has been read. Later
 * threads would inherit the filter: none is started after this.
 */
static int vm_lockdown(struct vm *vm, struct kiln_error *err)
{
	if (vm->locked_down)
		return 0;
	if (vmm_lockdown(&vmm_seccomp, err) < 0)
		return -1;
	vm->locked_down = true;
	return 0;
}

int vm_boot(struct vm *vm, struct kiln_error *err)
{
	const struct vm_config *cfg = vm->cfg;
	struct boot_entry boot;
	unsigned int i;

	if (vm->booted)
		return kiln_error_set(err, EALREADY,
				      "the VM is already running");
	vm->booted = true;
	if (vm_check_mem(cfg->mem_mib << 20, err) < 0 ||
	    vm_setup_kvm(vm, err) < 0 || vm_setup_memory(vm, -1, err) < 0)
		goto fail;
	vm->vcpus = calloc(cfg->vcpu_count, sizeof(*vm->vcpus));
	if (vm->vcpus == NULL) {
		kiln_error_set(err, ENOMEM, "allocate vCPUs");
		goto fail;
	}
	for (i = 0; i < cfg->vcpu_count; i++) {
		vm->vcpu_count = i + 1;
		if (vcpu_create(vm, &vm->vcpus[i], i, err) < 0)
			goto fail;
	}
	/* devices first: they declare themselves on the command line */
	if (vm_init_devices(vm, err) < 0 || vm_load(vm, &boot, err) < 0)
		goto fail;
	/* a diff from a cold boot is over zeros: the loaded pages are in it */
	guest_mem_mark_written(&vm->mem);
	if (vm->mem.desc[0] != '\0')
		log_info("guest memory: %s", vm->mem.desc);
	if (x86_setup_ioapic(vm->vm_fd, err) < 0)
		goto fail;
	for (i = 0; i < vm->vcpu_count; i++)
		if (x86_setup_vcpu(vm->kvm_fd, vm->vcpus[i].fd, i,
				   vm->vcpu_count, &boot, err) < 0 ||
		    vcpu_spawn(&vm->vcpus[i], err) < 0)
			goto fail;
	log_info("booting %s: %u vCPU, %llu MiB", cfg->kernel_path,
		 vm->vcpu_count, (unsigned long long)cfg->mem_mib);
	if (vm_lockdown(vm, err) < 0)
		goto fail;
	for (i = 0; i < vm->vcpu_count; i++)
		vcpu_set_state(&vm->vcpus[i], VCPU_RUNNING);
	return 0;
fail:
	vm_unboot(vm);
	return -1;
}

int vm_restore(struct vm *vm, const struct snap_image *img, int mem_fd,
	       struct kiln_error *err)
{
	const struct vm_config *cfg = vm->cfg;
	unsigned int i;

	if (vm->booted) {
		close(mem_fd);
		return kiln_error_set(err, EALREADY,
				      "the VM is already running");
	}
	vm->booted = true;
	if (vm_check_mem(cfg->mem_mib << 20, err) < 0 ||
	    vm_setup_kvm(vm, err) < 0) {
		close(mem_fd);
		goto fail;
	}
	if (vm_setup_memory(vm, mem_fd, err) < 0)
		goto fail;
	vm->vcpus = calloc(cfg->vcpu_count, sizeof(*vm->vcpus));
	if (vm->vcpus == NULL) {
		kiln_error_set(err, ENOMEM, "allocate vCPUs");
		goto fail;
	}
	for (i = 0; i < cfg->vcpu_count; i++) {
		vm->vcpu_count = i + 1;
		if (vcpu_create(vm, &vm->vcpus[i], i, err) < 0)
			goto fail;
	}
	/* no kernel to load: RAM holds the running guest */
	if (vm_init_devices(vm, err) < 0 ||
	    snapshot_restore_state(vm, img, err) < 0)
		goto fail;
	for (i = 0; i < vm->vcpu_count; i++)
		if (vcpu_spawn(&vm->vcpus[i], err) < 0)
			goto fail;
	vm->paused = true;
	log_info("restored a snapshot: %u vCPU, %llu MiB", vm->vcpu_count,
		 (unsigned long long)cfg->mem_mib);
	return 0;
fail:
	vm_unboot(vm);
	return -1;
}

static int vm_set_vcpus(struct vm *vm, enum vcpu_state want, bool paused,
			struct kiln_error *err)
{
	if (!vm->booted)
		return kiln_error_set(err, 0, "the VM is not running");
	for (unsigned int i = 0; i < vm->vcpu_count; i++) {
		vcpu_set_state(&vm->vcpus[i], want);
		if (vm->vcpus[i].state == VCPU_EXITED)
			return kiln_error_set(err, 0, "vCPU %u has exited", i);
	}
	vm->paused = paused;
	return 0;
}

int vm_pause(struct vm *vm, struct kiln_error *err)
{
	return vm_set_vcpus(vm, VCPU_PAUSED, true, err);
}

int vm_resume(struct vm *vm, struct kiln_error *err)
{
	if (vm->booted && vm_lockdown(vm, err) < 0)
		return -1;
	return vm_set_vcpus(vm, VCPU_RUNNING, false, err);
}

int vm_run(struct vm *vm, struct kiln_error *err)
{
	int ret = -1;

	if (evloop_run(&vm->loop, err) < 0)
		goto out;
	ret = 0;
out:
	for (unsigned int i = 0; i < vm->vcpu_count; i++)
		vcpu_join(&vm->vcpus[i]);
	vm_exit_devices(vm);
	if (ret == 0 && atomic_load(&vm->exit_reason) == VM_EXIT_ERROR)
		ret = kiln_error_set(err, 0, "%s", vm->exit_msg);
	return ret;
}

void vm_destroy(struct vm *vm)
{
	vm_unboot(vm);
	if (vm->signal_fd >= 0)
		close(vm->signal_fd);
	vm->signal_fd = -1;
	evloop_destroy(&vm->loop);
}
