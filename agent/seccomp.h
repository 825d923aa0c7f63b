/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A process's OCI seccomp profile (the Seccomp message) turned into a
 * classic BPF program with libseccomp in the agent, before the clone;
 * the child only hands the finished program to seccomp(2), which takes
 * no malloc and no lock.
 */
#ifndef KILN_AGENT_SECCOMP_H
#define KILN_AGENT_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/proto/agent.pb-c.h"
#include "../lib/error.h"

/* bounds on what the host sends (client-controlled, as every field) */
#define SECCOMP_NAMES_MAX 4096 /* syscall names over every rule */
#define SECCOMP_ARGS_MAX  6    /* a system call has six arguments */

struct seccomp_prog {
	void *insns; /* struct sock_filter[len]; NULL: no filter */
	uint16_t len;
	unsigned int flags; /* SECCOMP_FILTER_FLAG_* for seccomp(2) */
	/* names in the profile this kernel does not know, left out */
	size_t n_skipped;
};

/*
 * Build the program for m (NULL: none, *out zeroed). Fails with
 * INVALID_ARGUMENT naming the field (process.seccomp.syscalls[2].action)
 * for an unknown action, op, architecture or flag, an errno above 4095,
 * too many names or args; FAILED_PRECONDITION for SCMP_ACT_NOTIFY and
 * flags that only go with it.
 */
int seccomp_prog_build(const Kiln__Agent__V1__Seccomp *m,
		       struct seccomp_prog *out, struct kiln_error *err);
void seccomp_prog_free(struct seccomp_prog *p);
/*
 * In a child (no malloc): install p with seccomp(2). 0 with no program;
 * -1 with errno.
 */
int seccomp_prog_install(const struct seccomp_prog *p);

#endif
