/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Least privilege per thread: each kind of kiln-vmm thread (API, VMM event
 * loop, vCPU) calls vmm_lockdown() with its own list before its loop. The
 * lists live beside each thread's code (server.c, evloop.c, vcpu.c), so a
 * change to what a thread does shows up next to its filter; this file only
 * builds and loads them with libseccomp, and drops capabilities.
 *
 * A syscall not on the calling thread's list kills the whole process
 * (SECCOMP_RET_KILL_PROCESS; the kernel's audit log, where enabled, names
 * the thread and the syscall number). --seccomp-log traps instead: a SIGSYS
 * handler writes the syscall's name to the log and the process still dies
 * by SIGSYS. --no-seccomp loads no filter (debugging only).
 */
#ifndef KILN_VMM_SECCOMP_H
#define KILN_VMM_SECCOMP_H

#include <linux/filter.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/error.h"

enum seccomp_arg_op {
	SC_ANY,	   /* any arguments */
	SC_EQ,	   /* args[arg] == val */
	SC_MASKED, /* (args[arg] & mask) == val */
	SC_SELF,   /* args[arg] == this process's pid (tgkill) */
};

struct seccomp_rule {
	int nr;	     /* SCMP_SYS(name) */
	uint8_t op;  /* enum seccomp_arg_op */
	uint8_t arg; /* which argument, 0-5 */
	uint64_t mask, val;
};

#define SC_ALLOW(name)                          \
	{                                       \
		SCMP_SYS(name), SC_ANY, 0, 0, 0 \
	}
#define SC_ARG(name, idx, v)                                   \
	{                                                      \
		SCMP_SYS(name), SC_EQ, (idx), 0, (uint64_t)(v) \
	}
#define SC_IOCTL(req)	  SC_ARG(ioctl, 1, req)
#define SC_SOCKET(family) SC_ARG(socket, 0, family)
#define SC_NOT(name, idx, bits)                                       \
	{                                                             \
		SCMP_SYS(name), SC_MASKED, (idx), (uint64_t)(bits), 0 \
	}
#define SC_SELF_PID(name, idx)                       \
	{                                            \
		SCMP_SYS(name), SC_SELF, (idx), 0, 0 \
	}

/* One thread kind's list; kind names it in logs and counts. */
struct seccomp_list {
	const char *kind;
	const struct seccomp_rule *rules;
	size_t n;
};

#define SECCOMP_LIST(k, r)                           \
	{                                            \
		(k), (r), sizeof(r) / sizeof((r)[0]) \
	}

enum seccomp_mode {
	SECCOMP_OFF, /* the default for code that is not kiln-vmm's main() */
	SECCOMP_KILL,
	SECCOMP_LOG, /* trap, log the name, die by SIGSYS */
};

/*
 * kiln-vmm's main(), once, before any thread starts: the mode every later
 * vmm_lockdown() applies (SECCOMP_LOG installs the SIGSYS handler).
 */
int vmm_seccomp_setup(enum seccomp_mode mode, struct kiln_error *err);
enum seccomp_mode vmm_seccomp_mode(void);

/*
 * The calling thread gives up everything it does not need: no_new_privs,
 * every capability (effective, permitted, inheritable, ambient and, where
 * it may, the bounding set), then its seccomp filter: l plus the rules
 * every thread needs (libc, logging). Nothing happens with SECCOMP_OFF.
 * Capabilities are per thread in Linux: each thread drops its own here.
 */
int vmm_lockdown(const struct seccomp_list *l, struct kiln_error *err);

/* How many distinct syscalls l allows together with the common rules. */
unsigned int vmm_seccomp_count(const struct seccomp_list *l);

/* How many values of one argument l allows for syscall nr (ioctl: requests). */
unsigned int vmm_seccomp_count_args(const struct seccomp_list *l, int nr);

/* Every thread kind's list, for --print-seccomp-counts. */
extern const struct seccomp_list api_seccomp, vcpu_seccomp, vmm_seccomp;

/*
 * A kind's filter as BPF, generated at build time (vmm/gen/seccomp_gen.c
 * writes build/gen/vmm_seccomp_bpf.c): libseccomp takes milliseconds to
 * generate a filter at each start (9 ms for the VMM thread's in the test
 * bed), the kernel loads BPF in microseconds. The pid an SC_SELF rule
 * compares with is SECCOMP_SELF_STANDIN there; vmm_lockdown puts the
 * process's own in.
 */
struct seccomp_bpf {
	const struct seccomp_list *list; /* NULL ends the table */
	const struct sock_filter *insns;
	unsigned short len;
};

#define SECCOMP_SELF_STANDIN 0x6b696c6eu

/* The generated table; absent (NULL) where not linked in: then each
 * filter is generated at lockdown, as the generator itself does. */
extern const struct seccomp_bpf vmm_seccomp_bpf[] __attribute__((weak));

/* l's filter (SECCOMP_KILL's, SC_SELF against pid) as BPF, written to fd. */
int vmm_seccomp_export(const struct seccomp_list *l, uint32_t pid, int fd,
		       struct kiln_error *err);

#endif
