/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container's VM, started by its pid process with the state directory
 * as working directory, so the sockets kiln-vmm makes there have short
 * relative names whatever --root is (a Unix socket path holds 107 bytes).
 *
 * vm_start() is the one place a VM comes from: a copy-on-write fork of a
 * warm template when the plan names one (template.c; kiln-vmm
 * --fork-from, the agent already up), else a cold boot (kiln-vmm, the
 * guest kernel and the agent as the initramfs's init). Either way the
 * caller gets a process and its vsock socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../oci/container.h"
#include "kiln.h"

#define ARGV_MAX (32 + 4 * VM_DRIVES_MAX + 2 * VM_NETS_MAX)

int vm_plan_drive(struct vm_plan *p, const char *path, bool readonly,
		  struct kiln_error *err)
{
	if (p->n_drives >= VM_DRIVES_MAX)
		return kiln_error_set(err, 0,
				      "more than %d block devices for one VM",
				      VM_DRIVES_MAX);
	if (asprintf(&p->drives[p->n_drives], "id=d%zu,path=%s%s", p->n_drives,
		     path, readonly ? ",ro" : "") < 0) {
		p->drives[p->n_drives] = NULL;
		return kiln_error_set(err, ENOMEM, "drive");
	}
	p->n_drives++;
	return 0;
}

void vm_plan_clear(struct vm_plan *p)
{
	for (size_t i = 0; i < p->n_drives; i++)
		free(p->drives[i]);
	p->n_drives = 0;
	for (size_t i = 0; i < p->n_nets; i++)
		free(p->nets[i]);
	p->n_nets = 0;
	free(p->template_dir);
	p->template_dir = NULL;
}

/* The guest's name for drive i: virtio-mmio devices probe in order. */
void vm_drive_name(size_t i, char out[16])
{
	snprintf(out, 16, "/dev/vd%c", (char)('a' + i));
}

static void child(char **argv, int log_fd, const struct confine *confine)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	sigset_t none;

	/* the VM lives no longer than its pid process, also after kill -9 */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (null < 0 || dup2(null, 0) < 0 || dup2(log_fd, 1) < 0 ||
	    dup2(log_fd, 2) < 0)
		_exit(127);
	if (confine_apply(confine) < 0)
		_exit(127);
	execv(argv[0], argv);
	dprintf(2, "kiln: exec `%s`: %s\n", argv[0], strerror(errno));
	_exit(127);
}

size_t vm_argv_source(const struct vm_config *c, const char *fork_sock,
		      struct vm_argv_buf *b, char **argv)
{
	size_t n = 0;

	snprintf(b->vcpus, sizeof(b->vcpus), "%u", c->vcpus);
	snprintf(b->mem, sizeof(b->mem), "%u", c->memory_mib);
	if (fork_sock != NULL) {
		argv[n++] = "--fork-from";
		argv[n++] = (char *)fork_sock;
	} else {
		argv[n++] = "--kernel";
		argv[n++] = c->kernel;
		argv[n++] = "--initrd";
		argv[n++] = c->initramfs;
		argv[n++] = "--cmdline";
		argv[n++] = VM_GUEST_CMDLINE;
	}
	argv[n++] = "--vcpus";
	argv[n++] = b->vcpus;
	argv[n++] = "--mem";
	argv[n++] = b->mem;
	return n;
}

int vm_start(const struct vm_plan *p, struct vm *vm, struct kiln_error *err)
{
	char sock[PATH_MAX];
	char slots[VM_DRIVES_MAX][PATH_MAX + 32];
	char *argv[ARGV_MAX];
	struct vm_argv_buf buf;
	cleanup_close int log_fd = -1;
	size_t n = 0;
	pid_t pid;

	argv[n++] = p->conf->vmm;
	if (p->template_dir != NULL)
		snprintf(sock, sizeof(sock), "%s/fork.sock", p->template_dir);
	n += vm_argv_source(p->conf, p->template_dir ? sock : NULL, &buf,
			    argv + n);
	for (size_t i = 0; i < p->n_drives; i++) {
		argv[n++] = "--drive";
		argv[n++] = p->drives[i];
	}
	/* a fork fills the template's other slots with its placeholder */
	for (size_t i = p->n_drives;
	     p->template_dir != NULL && i < VM_DRIVES_MAX; i++) {
		snprintf(slots[i], sizeof(slots[i]),
			 "id=d%zu,path=%s/slot.img,ro", i, p->template_dir);
		argv[n++] = "--drive";
		argv[n++] = slots[i];
	}
	for (size_t i = 0; i < p->n_nets; i++) {
		argv[n++] = "--net";
		argv[n++] = p->nets[i];
	}
	argv[n++] = "--vsock";
	argv[n++] = "cid=3,uds=" VM_VSOCK;
	argv[n++] = "--console";
	argv[n++] = p->console != NULL ? (char *)p->console : "/dev/null";
	argv[n] = NULL;

	unlink(VM_VSOCK);
	log_fd = open(VM_LOG, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return kiln_error_set(err, errno, "open " VM_LOG);
	pid = fork();
	if (pid < 0)
		return kiln_error_set(err, errno, "fork kiln-vmm");
	if (pid == 0)
		child(argv, log_fd, &p->confine);
	vm->pid = pid;
	vm->start = proc_start_time(pid);
	return 0;
}

/* The last line kiln-vmm logged, for an error that says why it ended. */
void vm_last_log_line(char *buf, size_t len)
{
	cleanup_fclose FILE *f = fopen(VM_LOG, "re");
	char line[512];

	buf[0] = '\0';
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '\0')
			snprintf(buf, len, "%s", line);
	}
}

int vm_stop(struct vm *vm, unsigned int grace_ms)
{
	int status = 0;

	if (vm->pid <= 0)
		return 0;
	for (unsigned int i = 0; i < grace_ms / 10; i++) {
		pid_t r = waitpid(vm->pid, &status, WNOHANG);

		if (r == vm->pid || (r < 0 && errno == ECHILD)) {
			vm->pid = 0;
			return status;
		}
		usleep(10000);
	}
	kill(vm->pid, SIGKILL);
	while (waitpid(vm->pid, &status, 0) < 0 && errno == EINTR)
		;
	vm->pid = 0;
	return status;
}
