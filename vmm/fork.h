/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Templates and copy-on-write forks.
 *
 * A template is a booted, paused VM made into two sealed memfds: its state
 * file (snapshot.h's format, built in memory) and its RAM. Making it ends
 * the template's own VM for good (vCPUs, devices, the KVM VM, its mapping
 * of RAM), then seals the RAM against writes (F_SEAL_WRITE): no fork, and
 * nobody who gets hold of the fd, can change what the next fork starts
 * from. The template's process then only serves forks: each connection to
 * its Unix socket (SOCK_SEQPACKET, from its own uid or root) gets one
 * message, a struct fork_hello and both fds.
 *
 * A fork keeps its connection open for its life, so the template knows
 * how many of its forks are alive (the kernel closes a dead fork's end):
 * at max_forks alive it answers with a hello without fds (state_size 0),
 * and the fork fails, naming the limit, instead of the host running into
 * its memory or the OOM killer later.
 *
 * A fork is a new kiln-vmm with a config of its own (the host side of its
 * devices: drive files, TAPs, the vsock socket) in the template's shape:
 * vCPUs, memory, and the same devices with the same ids in the same order.
 * fork_load fetches the fds, checks them (sealed memfds of the sizes
 * announced), parses the state as any state file (snap_parse: it is input
 * from another process), checks the shape, and restores the VM over the
 * template's RAM mapped MAP_PRIVATE: pages are shared until written.
 * Devices take the template's guest-visible state and keep their own host
 * side (virtio_ops.fork_adopt): a drive may bring a file of another size
 * (the driver is told) or a read-only one (the host refuses writes).
 *
 * Everything here runs on the VMM thread.
 */
#ifndef KILN_VMM_FORK_H
#define KILN_VMM_FORK_H

#include <stdint.h>

#include "../lib/error.h"
#include "config.h"

#define FORK_MAGIC   "KILNFORK"
#define FORK_VERSION 2

/* forks alive at once per template: the default, and the most (each holds
 * one of the template's 1024 files: RLIMIT_NOFILE, main.c) */
#define FORK_MAX_LIVE_DEFAULT 512
#define FORK_MAX_LIVE	      960

/*
 * The one message a template sends, with the state and RAM fds; or, when
 * max_live forks are alive, alone with state_size 0 (a refusal).
 */
struct fork_hello {
	char magic[8];	     /* FORK_MAGIC, no NUL */
	uint32_t version;    /* FORK_VERSION */
	uint32_t max_live;   /* the template's limit of forks alive */
	uint64_t state_size; /* bytes of the state memfd; 0: refused */
	uint64_t mem_size;   /* bytes of the RAM memfd */
	uint64_t forks;	     /* forks served before this one */
};

struct vm;
struct fork_template;

/*
 * Make vm (booted, paused) a template served on sock_path (created; an
 * existing socket there is replaced), with at most max_live forks alive
 * at once (1 to FORK_MAX_LIVE; 0: FORK_MAX_LIVE_DEFAULT). On success the
 * VM is gone and *out serves forks on vm's event loop until
 * fork_template_stop; on failure the VM is as it was.
 */
int fork_template_make(struct vm *vm, const char *sock_path,
		       unsigned int max_live, struct fork_template **out,
		       struct kiln_error *err);
/* How many forks it served, and how many of them are alive. */
uint64_t fork_template_count(const struct fork_template *t);
unsigned int fork_template_live(const struct fork_template *t);
/* Stop serving: the socket is removed, the fds (forks' too) closed. */
void fork_template_stop(struct fork_template *t);

/*
 * Restore vm (not booted; vm->cfg is cfg, already validated with
 * vm_config_validate_fork) as a fork of the template serving sock_path.
 * The vCPUs are left paused, as vm_restore leaves them. cfg takes the
 * template's boot source (shown by GET /vm/config).
 */
int fork_load(struct vm *vm, struct vm_config *cfg, const char *sock_path,
	      struct kiln_error *err);
/*
 * Connect to the template serving sock_path and receive its answer (the
 * hello and both fds) now, for fork_load to use later: a jailed fork
 * does this as root before its jail is built, so that it needs no path
 * to the template (whose socket its uid may not reach) and the template
 * sees a root peer. Nothing received is parsed here (it is what a
 * template's guest may have shaped): fork_load checks it, jailed. The
 * three fds (connection, state, RAM) go into fds, to be kept open
 * through the jail. main()'s thread, before any other.
 */
int fork_connect(const char *sock_path, int fds[3], struct kiln_error *err);
/*
 * The prefault list at path (lib/prefault.h), read now (main()'s thread,
 * before the jail: the file is the runtime's), for fork_load to copy
 * those pages of the template's RAM before the vCPUs run. It only saves
 * faults: a list that cannot be read or is not well formed is logged
 * and the fork goes on without it.
 */
void fork_prefault_read(const char *path);

#endif
