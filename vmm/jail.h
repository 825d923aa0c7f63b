/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln-vmm's --jail mode (docs/jail.md): before any guest byte is read,
 * the process enters new mount, pid, ipc and uts namespaces (the network
 * namespace stays the one it was started in), pivot_roots into a tmpfs
 * that holds /dev/kvm, /dev/net/tun and bind mounts of the paths its
 * configuration names (at the same paths as outside), takes a uid and gid
 * of its own with an empty bounding set, and closes every fd it was not
 * given on purpose. Capabilities, no_new_privs and seccomp stay the
 * threads' work (seccomp.h); rlimits are main()'s.
 *
 * Runs in main() before any thread: everything here is the main thread's.
 */
#ifndef KILN_VMM_JAIL_H
#define KILN_VMM_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../lib/error.h"

struct vm_config;

/* Where the per-uid lock files live: one kiln-vmm per jail uid. */
#define JAIL_LOCK_DIR	  "/run/kiln/jail"
#define JAIL_MAX_KEEP_FDS 16
/* The range kiln's runtime allocates jail uids (= gids) from. */
#define JAIL_UID_BASE  2000000000u
#define JAIL_UID_COUNT 65536u

/* --jail root=DIR,uid=N,gid=N[,keep-fds=N:M...] */
struct jail_opts {
	bool enabled;
	char *root; /* must not exist, or be an empty folder */
	uid_t uid;
	gid_t gid;
	unsigned int nkeep;
	int keep_fds[JAIL_MAX_KEEP_FDS]; /* beyond 0, 1, 2 and the log */
};

int jail_parse(struct jail_opts *j, const char *spec, struct kiln_error *err);
void jail_opts_destroy(struct jail_opts *j);

/* What one path the configuration names becomes in the jail. */
enum jail_bind_kind {
	JAIL_FILE_RO, /* kernel, initramfs, a read-only drive */
	JAIL_FILE_RW, /* a writable drive, a socket kiln-vmm connects to */
	JAIL_DIR_RO,  /* host facts read (THP settings) */
	JAIL_DIR_RW,  /* the folder a socket or file is created in */
	JAIL_OUTPUT,  /* a file written: itself if it is not a regular
			   file (a tty, /dev/null), else its folder */
};

struct jail_bind {
	char *path; /* absolute, as named: bound at the same path inside */
	enum jail_bind_kind kind;
	const char *what; /* for error messages: "kernel", "API socket" */
	bool skip;	  /* already visible through a folder bound above */
};

struct jail_plan {
	struct jail_bind *v;
	size_t n;
};

/*
 * The binds a configuration needs (pure: no file is looked at). Relative
 * paths are taken against cwd; a path with a `..` component is refused.
 */
int jail_plan_add(struct jail_plan *p, const char *path, const char *cwd,
		  enum jail_bind_kind kind, const char *what,
		  struct kiln_error *err);
int jail_plan_config(struct jail_plan *p, const struct vm_config *cfg,
		     const char *api_sock, const char *fork_from,
		     const char *cwd, struct kiln_error *err);
/*
 * Order the binds shortest path first and mark those under a folder bound
 * before as skipped, so that no mount point is ever made inside a host
 * folder. Pure; call after every JAIL_OUTPUT has been resolved.
 */
void jail_plan_finish(struct jail_plan *p);
void jail_plan_destroy(struct jail_plan *p);

/*
 * Build the jail and enter it. Returns 0 in the jailed process, which
 * goes on as the VMM; the process that called it stays outside as a
 * waiter and never returns (it exits with the VMM's status). -1 with err
 * before anything is mounted, or in the VMM when a later step fails.
 */
int jail_enter(const struct jail_opts *j, const struct vm_config *cfg,
	       const char *api_sock, const char *fork_from,
	       struct kiln_error *err);

#endif
