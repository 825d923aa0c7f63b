/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln-agentctl's command options (agentctl_opts.c), shared by its verbs
 * (agentctl.c).
 */
#ifndef KILN_AGENTCTL_H
#define KILN_AGENTCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/proto/agent.pb-c.h"

#define PROG	   "kiln-agentctl"
#define EXIT_FAIL  1
#define EXIT_USAGE 2

/* Every command's options: for run and exec a Process and its container. */
struct proc_opts {
	const char *id, *exec_id, *rootfs, *fstype, *hostname, *cwd;
	bool ro, readonly_rootfs, tty, detach, keep, no_stdin, all, have_sec;
	bool no_new_privs;
	uint32_t rows, cols, count, bytes;
	int64_t sec, nsec;
	Kiln__Agent__V1__Process proc;
	Kiln__Agent__V1__User user;
	Kiln__Agent__V1__Capabilities caps;
	bool have_caps;
	Kiln__Agent__V1__Rlimit *rlimit_store;
	char **env, **caplist;
	uint32_t *groups;
	/* --mount and --file, for CreateContainerRequest.mounts */
	Kiln__Agent__V1__Mount *mount_store, **mounts;
	size_t n_mounts;
	/* --layer and --upper, for Rootfs.layers and upper_device */
	Kiln__Agent__V1__Layer *layer_store, **layers;
	size_t n_layers;
	const char *upper;
	/* --mask and --ro-path */
	char **masked, **ro_paths;
	size_t n_masked, n_ro_paths;
	/* --seccomp, for Process.seccomp */
	Kiln__Agent__V1__Seccomp seccomp;
	Kiln__Agent__V1__SeccompRule seccomp_rule, *seccomp_rulev[1];
	char *seccomp_names[16];
};

/* One line on stderr; returns EXIT_USAGE. */
int opts_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * Options into o; ARGS after them (after "--" or the first non-option).
 * Returns 0 or an exit status for a usage error.
 */
int opts_parse(int argc, char **argv, struct proc_opts *o);

/* "TERM", "SIGTERM" or "15" */
int opts_parse_signal(const char *s, uint32_t *sig);

#endif
