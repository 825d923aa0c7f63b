/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd-shim-kiln-v2: containerd's runtime v2 shim for kiln.
 *
 * containerd runs `containerd-shim-kiln-v2 ... start` in the bundle, which
 * starts the server (this binary again, its socket as fd 3), prints the
 * socket's address and exits; containerd then calls the Task service over
 * ttrpc. Each task is a kiln container: the server drives the `kiln` CLI
 * beside it (create, start, kill, exec, update, delete) as containerd's
 * runc shim drives runc, and waits on kiln's pid processes, which live
 * exactly as long as the guest's processes and exit with their status.
 * The server is their subreaper.
 *
 * Threads: main accepts connections; ttrpc runs each request on its own
 * thread (task.c); one reaper thread (proc.c) collects every child's
 * exit; one events thread (events.c) forwards events to containerd in
 * order. All task and process state is under shim_mu (task.c), which
 * nobody holds while waiting for a child or for containerd.
 */
#ifndef KILN_SHIM_H
#define KILN_SHIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/error.h"
#include "../lib/ttrpc.h"

#define SHIM_SOCKET_DIR	  "/run/containerd/s"
#define SHIM_DEFAULT_ROOT "/run/kiln/shim"
#define SHIM_ADDRESS_MAX  128

/* containerd's flags, as its shims take them (Go's flag syntax) */
struct shim_opts {
	const char *ns, *address, *publish_binary, *id, *bundle;
	const char *action; /* "start", "delete", or NULL: serve */
	bool debug, version;
};

int shim_parse_args(int argc, char **argv, struct shim_opts *o,
		    struct kiln_error *err);
/*
 * containerd's socket address for a shim serving group (an id, or a pod's
 * sandbox id): "unix:///run/containerd/s/" + hex sha256 of
 * "<address>/<ns>/<group>" (filepath.Join, as containerd's shims).
 */
int shim_socket_address(const char *address, const char *ns, const char *group,
			char out[SHIM_ADDRESS_MAX], struct kiln_error *err);
/* kiln's --root for namespace ns: $KILN_SHIM_ROOT or SHIM_DEFAULT_ROOT,
 * then ns; malloc'd */
char *shim_root(const char *ns);

/* ---- children (proc.c) ------------------------------------------------- */

/* Start the reaper thread. SIGCHLD must be blocked in every thread. */
int reaper_start(struct kiln_error *err);
/*
 * An exit the reaper saw for pid and no task claimed (see task_claim), or
 * wait for it: its status (an exit code, or 128+N after signal N).
 */
int reaper_wait(pid_t pid);
/* Take a recorded exit of pid without waiting: 1 (status, time set) or 0.
 * Called with shim_mu held. */
int reaper_take(pid_t pid, int *status, uint64_t *at_ns);

/* The `kiln` next to this binary (or on PATH), with --root root. */
void kiln_init(const char *root);
const char *kiln_root_dir(void);
/*
 * Run `kiln --root R --log LOG --log-format json ARGS...` with stdio
 * in/out/errfd (-1: /dev/null) and wait for it. Not 0: -1 with err
 * holding kiln's own error message (its last JSON log line).
 */
int kiln_run(const char *log, const char *const *args, int in, int out,
	     int errfd, struct kiln_error *err);

/* ---- stdio of a process (io.c) ----------------------------------------- */

/*
 * containerd's FIFOs for a process, turned into what kiln is given: fds
 * 0-2 for the child, or a console socket whose pty master then copies to
 * and from the FIFOs.
 */
struct shim_io {
	char *stdin_path, *stdout_path, *stderr_path;
	bool terminal;
	int child[3];	    /* for kiln: stdin pipe's read end, out, err */
	int stdin_w;	    /* our end of that pipe: CloseIO closes it */
	int in_dst;	    /* the stdin copier's: stdin_w, or master */
	int in_wake[2];	    /* tells the stdin copier to stop */
	int out_wake[2];    /* ... the pty's output copier */
	char console[108];  /* the console socket's path (terminal) */
	int console_listen; /* ...its listening fd */
	int master;	    /* the pty master (terminal) */
	pthread_t in_thread, out_thread;
	bool in_started, out_started;
};

/* Empty, every fd -1: the caller then sets the paths and terminal. */
void io_init(struct shim_io *io);
/* Open the FIFOs (and the console socket in dir); before kiln runs. */
int io_prepare(struct shim_io *io, const char *dir, const char *name,
	       struct kiln_error *err);
/* After kiln ran: close the child's ends; take the pty master; start the
 * copiers. */
int io_started(struct shim_io *io, struct kiln_error *err);
/* kiln failed: let go of the FIFOs (containerd's readers see EOF). */
void io_abandon(struct shim_io *io);
/* CloseIO: the process's stdin ends. */
void io_close_stdin(struct shim_io *io);
int io_resize(struct shim_io *io, uint32_t width, uint32_t height,
	      struct kiln_error *err);
/* Stop the copiers, close everything and free the paths. */
void io_destroy(struct shim_io *io);

/* ---- events (events.c) ------------------------------------------------- */

/*
 * Forward to containerd (ttrpc Events.Forward at $TTRPC_ADDRESS, else
 * `publish_binary publish`), in the order queued, retried while containerd
 * does not answer. msg is packed at once: the caller keeps it.
 */
int events_start(const struct shim_opts *o, struct kiln_error *err);
void events_publish(const char *topic, const char *type_name,
		    const ProtobufCMessage *msg);
/* Until everything queued was sent or given up on (at most timeout_ms). */
void events_flush(unsigned int timeout_ms);

/* ---- the guest's agent: stats, OOM (stats.c) -------------------------- */

/* The guest's cgroup figures for task id: a StatsResponse in *resp. */
int shim_stats(const char *id, ProtobufCMessage **resp, struct kiln_error *err);
/* TaskOOM for each OOM kill in task id's guest, until its VM ends. */
void shim_watch_oom(const char *id);

/* ---- the Task service (task.c) ----------------------------------------- */

extern const struct ttrpc_server task_server;
/* An exit the reaper saw: 1 when it was one of our processes (shim_mu
 * held by the caller). */
int task_claim(pid_t pid, int status, uint64_t at_ns);
extern pthread_mutex_t shim_mu;
/* true once Shutdown found no task left: main stops serving */
bool task_shutdown_requested(void);
/* the fd main accepts on, which Shutdown shuts down */
void task_set_listener(int fd);
void task_set_opts(const struct shim_opts *o);

#endif
