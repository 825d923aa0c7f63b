/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln-vmm's seccomp filters as the build generates them (vmm/seccomp.h,
 * vmm/gen/seccomp_gen.c): each kind's BPF in the table is the one
 * libseccomp makes from today's rules, once our pid is put in; a thread
 * that loads it may make its syscalls and dies by SIGSYS at another.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/seccomp.h"
#include "tap.h"

static const struct seccomp_list *const lists[] = {
	&vmm_seccomp,
	&vcpu_seccomp,
	&api_seccomp,
};

static const struct seccomp_bpf *built(const struct seccomp_list *l)
{
	for (const struct seccomp_bpf *b = vmm_seccomp_bpf; b->list != NULL;
	     b++)
		if (b->list == l)
			return b;
	return NULL;
}

static void test_same_as_libseccomp(void)
{
	struct kiln_error err = { 0 };
	uint32_t pid = (uint32_t)getpid();

	ok(vmm_seccomp_bpf != NULL, "the generated table is linked in");
	for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
		const struct seccomp_list *l = lists[k];
		const struct seccomp_bpf *b = built(l);
		static struct sock_filter want[BPF_MAXINSNS], got[BPF_MAXINSNS];
		int fd = memfd_create("bpf", MFD_CLOEXEC);
		ssize_t n = -1;
		unsigned int patched = 0;

		if (fd >= 0 && vmm_seccomp_export(l, pid, fd, &err) == 0)
			n = pread(fd, want, sizeof(want), 0);
		close(fd);
		ok(b != NULL && n > 0, "%s: in the table, and exported: %s",
		   l->kind, err.msg);
		if (b == NULL || n <= 0)
			continue;
		memcpy(got, b->insns, b->len * sizeof(got[0]));
		for (unsigned int i = 0; i < b->len; i++)
			if (got[i].code == (BPF_JMP | BPF_JEQ | BPF_K) &&
			    got[i].k == SECCOMP_SELF_STANDIN) {
				got[i].k = pid;
				patched++;
			}
		ok(patched > 0, "%s: the pid stand-in is there (%u)", l->kind,
		   patched);
		ok((size_t)n == b->len * sizeof(got[0]) &&
			   memcmp(want, got, (size_t)n) == 0,
		   "%s: %u instructions, the same as libseccomp's today",
		   l->kind, b->len);
	}
}

/* A child locks down as a vCPU thread, then makes syscall nr. */
static int child_status(long nr)
{
	pid_t pid = fork();
	int status = -1;

	if (pid == 0) {
		struct kiln_error err = { 0 };

		if (vmm_seccomp_setup(SECCOMP_KILL, &err) < 0 ||
		    vmm_lockdown(&vcpu_seccomp, &err) < 0)
			syscall(SYS_exit_group, 3);
		if (nr == SYS_socket)
			syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
		else if (nr == SYS_tgkill)
			syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), 0);
		else
			syscall(nr);
		syscall(SYS_exit_group, 0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static void test_loaded(void)
{
	int st = child_status(SYS_getpid);

	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "loaded: an allowed syscall runs (status %#x)", st);
	/* only with our own pid put into the filter: abort() needs it */
	st = child_status(SYS_tgkill);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "loaded: tgkill of our own pid runs (status %#x)", st);
	st = child_status(SYS_socket);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
	   "loaded: a forbidden one kills by SIGSYS (status %#x)", st);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	test_same_as_libseccomp();
	test_loaded();
	return tap_done();
}
