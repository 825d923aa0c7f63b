/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the runtime keeps of a container between its commands: ROOT/ID/
 * state.json, written by `create` and by the container's pid process
 * (the supervisor that owns the VM), read by every other verb.
 *
 * Whether the container still runs is never taken from the file alone:
 * the pid process is checked by pid and start time (/proc/PID/stat field
 * 22), so a pid reused by another process after a crash or `kill -9`
 * reads as stopped, as runc does.
 */
#ifndef KILN_OCI_CONTAINER_H
#define KILN_OCI_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/error.h"

enum container_status {
	CONTAINER_CREATING, /* create has not finished */
	CONTAINER_CREATED,  /* the VM runs, the process waits for start */
	CONTAINER_RUNNING,
	CONTAINER_PAUSED,
	CONTAINER_STOPPED,
};

extern const char *const container_status_names[];

struct container_state {
	char *id;
	char *bundle;		      /* absolute */
	char *rootfs;		      /* absolute */
	char *created;		      /* RFC 3339 with nanoseconds, UTC */
	char *owner;		      /* "" as runc without rootless */
	enum container_status status; /* as last written */
	pid_t pid;		      /* the pid process; 0 before it runs */
	uint64_t pid_start;	      /* its start time, clock ticks */
	pid_t vmm_pid;		      /* kiln-vmm */
	uint64_t vmm_start;
	bool has_exit_status;
	int exit_status; /* 128+N when killed by signal N */
	char **annotation_keys, **annotation_values;
	size_t n_annotations;
	/* the pod sandbox whose VM this container runs in; NULL: its own */
	char *sandbox;
};

/* The id of the container of a VM of its own, inside its guest. */
#define KILN_GUEST_ID "ctr"

/* The container's id inside its guest: a pod's other containers have
 * their own ids there, beside the sandbox's KILN_GUEST_ID. */
const char *container_guest_id(const struct container_state *s);

/* state.json text (what `kiln state` prints is oci_state_json()). */
char *container_state_to_json(const struct container_state *s,
			      struct kiln_error *err);
int container_state_from_json(struct container_state *s, const char *text,
			      size_t len, struct kiln_error *err);
void container_state_clear(struct container_state *s);

/* Write ROOT/ID/state.json atomically (dirfd: the container's dir). */
int container_state_save(int dirfd, const struct container_state *s,
			 struct kiln_error *err);
int container_state_load(int dirfd, struct container_state *s,
			 struct kiln_error *err);

/* A process's start time (clock ticks since boot); 0 when it is gone. */
uint64_t proc_start_time(pid_t pid);
/* Whether pid still is the process that started at start. */
bool proc_alive(pid_t pid, uint64_t start);

/*
 * The status to report now: the recorded one while the pid process is
 * alive, else stopped (a container whose pid process died reads as
 * stopped, whatever the file said).
 */
enum container_status container_status_now(const struct container_state *s);

/*
 * The OCI state document that `kiln state` prints (runc's shape:
 * ociVersion, id, pid, status, bundle, rootfs, created, owner,
 * annotations), pretty-printed. pid is 0 once stopped.
 */
char *oci_state_json(const struct container_state *s, struct kiln_error *err);

/* Now as RFC 3339 with nanoseconds in UTC, into buf[40]. */
void rfc3339_now(char buf[40]);

#endif
