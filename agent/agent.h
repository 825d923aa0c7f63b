/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln-agent's shared state: the container table, the processes it
 * tracks, and the calls between its files. One mutex (ctr_lock) guards
 * the table, every state field and every reference count; ctr_cond is
 * broadcast whenever a tracked process exits. Lifecycle calls on one
 * container (create, start, exec, remove) are serialised by its own
 * op mutex so that a slow one never holds ctr_lock.
 *
 * Exported names carry their file's prefix (ctr_, proc_, stdio_,
 * stats_, sandbox_, svc_, dns_): unit tests link these objects next to the
 * host-side agent client, whose names start with agent_.
 */
#ifndef KILN_AGENT_AGENT_H
#define KILN_AGENT_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "agent/proto/agent.pb-c.h"
#include "seccomp.h"
#include "spec.h"
#include "../lib/error.h"
#include "../lib/ttrpc.h"

#define AGENT_RPC_PORT_NUM    1024
#define AGENT_STREAM_PORT_NUM 1025
#define AGENT_RUN_DIR	      "/run/kiln/c"
/* a VM's volumes its containers share (a pod's emptyDirs): a bind mount
 * from a directory here makes it on first use (agent.proto, Mount) */
#define AGENT_VOLUMES_DIR "/run/kiln/volumes"
/* a pod's shared host folder (the runtime's podfs.c): the virtio-fs
 * device tagged AGENT_PODFS_TAG, mounted here on first use; a bind from
 * AGENT_PODFS_DIR/<id>/<n> binds one host directory of a container */
#define AGENT_PODFS_DIR	     "/run/kiln/podfs"
#define AGENT_PODFS_TAG	     "kilnpod"
#define AGENT_CGROUP_DIR     "/sys/fs/cgroup/kiln"
#define AGENT_CONTAINERS_MAX 256
#define AGENT_EXECS_MAX	     1024
#define AGENT_RLIMITS_MAX    16

/*
 * Fill err and return the negated ttrpc code: handlers return the code
 * itself, lower layers pass the negative value up.
 */
#define AGENT_FAIL(err, code, errnum, ...) \
	(kiln_error_set((err), (errnum), __VA_ARGS__), -(code))

/* A process spec checked and flattened for a child that must not malloc. */
struct proc_spec {
	char **argv; /* NULL-terminated */
	char **envp;
	char *cwd;
	const char *path; /* PATH for the args[0] lookup (in envp or static) */
	char *username;	  /* NULL: uid/gid as given */
	uint32_t uid, gid;
	uint32_t groups[SPEC_GROUPS_MAX];
	size_t ngroups;
	bool has_umask;
	mode_t umask;
	struct {
		int resource;
		struct rlimit rl;
	} rlimits[AGENT_RLIMITS_MAX];
	size_t nrlimits;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable,
		cap_ambient;
	int cap_last; /* /proc/sys/kernel/cap_last_cap */
	bool no_new_privileges;
	struct seccomp_prog seccomp; /* built before the clone */
	bool terminal;
	uint16_t cols, rows;
	bool want[3]; /* stdin, stdout, stderr */
};

enum proc_state {
	PROC_CREATED,
	PROC_RUNNING,
	PROC_EXITED,
};

struct ctr;

struct proc {
	struct proc *next;
	struct ctr *ctr;
	char exec_id[SPEC_ID_MAX + 1];
	int refs;
	pid_t pid;
	enum proc_state state;
	int wstatus;
	uint64_t exited_at_ns;
	/* agent-side stdio ends; -1 once handed to a relay or not asked */
	bool terminal;
	int pty_master;
	int fd[3]; /* stdin write end, stdout and stderr read ends */
	bool attached[3];
	bool stdin_closed;
	int stdin_wake; /* eventfd a CloseStdin pokes while stdin is relayed */
};

enum ctr_state {
	CTR_CREATED,
	CTR_RUNNING,
	CTR_STOPPED,
};

struct ctr {
	struct ctr *next;
	char id[SPEC_ID_MAX + 1];
	int refs;
	bool removed;
	enum ctr_state state;
	pthread_mutex_t op;
	struct proc *init;
	struct proc *procs; /* init first, then execs */
	size_t nprocs;
	struct proc_spec spec; /* the init's, until it execs */
	int start_fd;	       /* write end the blocked init reads */
	int status_fd;	       /* the init's CLOEXEC report pipe */
	char dir[128];	       /* /run/kiln/c/<id> */
	char cgroup[128];      /* /sys/fs/cgroup/kiln/<id> */
	int oom_wd;
	uint64_t oom_kills;
	bool overlay;
	char *upper_device; /* Rootfs.upper_device: one container's only */
	/* what mount_rootfs and mount_files_write mounted, for removal */
	size_t nlayers; /* <dir>/l<i> */
	bool upper_dev; /* <dir>/rw is an ext4 device */
	bool files;	/* <dir>/files */
	/* the memory.max in force (-1: none), under op: an update of the
	 * swap alone needs it (resources.c) */
	int64_t memory_limit;
};

extern pthread_mutex_t ctr_lock;
extern pthread_cond_t ctr_cond;

/* ---- container.c and exec.c ---- */
int ctr_create(const Kiln__Agent__V1__CreateContainerRequest *req,
	       struct kiln_error *err);
int ctr_start(const char *id, pid_t *pid, struct kiln_error *err);
int ctr_exec(const Kiln__Agent__V1__ExecProcessRequest *req, pid_t *pid,
	     struct kiln_error *err);
int ctr_remove(const char *id, struct kiln_error *err);
/* Look up (with a reference) or fail with NOT_FOUND. */
struct ctr *ctr_get(const char *id, struct kiln_error *err);
void ctr_put(struct ctr *c);
struct proc *proc_get(const char *cid, const char *eid, struct kiln_error *err);
void proc_put(struct proc *p);
/* a process not yet in the table, and its end */
struct proc *proc_new(struct ctr *c, const char *exec_id);
void proc_free(struct proc *p);
/* create <cgroup>, open its folder */
int ctr_open_cgroup(struct ctr *c, struct kiln_error *err);
/* the reaper: record an exit (false: not a process we track) */
bool ctr_reap(pid_t pid, int wstatus);
/* the container an OOM watch belongs to: its id and cgroup path */
int ctr_find_wd(int wd, char id[SPEC_ID_MAX + 1], char *cgroup, size_t len);
/* every container's id, for shutdown */
size_t ctr_list(char (*ids)[SPEC_ID_MAX + 1], size_t max);
/* How many containers' inits run (under ctr_lock: a snapshot). */
size_t ctr_running(void);

/* ---- process.c ---- */
int proc_spec_from_msg(const Kiln__Agent__V1__Process *m, struct proc_spec *s,
		       struct kiln_error *err);
void proc_spec_free(struct proc_spec *s);
/*
 * username -> uid, gid, groups from etc/passwd and etc/group under root
 * (a dir fd), each a regular file of at most PROC_USER_FILE_MAX bytes
 * (anything else fails with FAILED_PRECONDITION; missing ones are empty).
 */
#define PROC_USER_FILE_MAX (1u << 20)
int proc_spec_resolve_user(struct proc_spec *s, int rootfd,
			   struct kiln_error *err);
/*
 * Pipes or a pty for the streams asked for, /dev/null for the others.
 * child[3]: what the process gets as 0, 1, 2; the agent's ends go to p.
 * A terminal comes from the container's own devpts (ptmx: a master just
 * opened from its ptmx, taken over here), so that the process's tty has
 * a name in /dev/pts; -1 for an init, which opens its own once it has
 * mounted /dev/pts.
 */
int proc_stdio_open(const struct proc_spec *s, struct proc *p, int ptmx,
		    int child[3], struct kiln_error *err);
/*
 * A pty of the devpts instance whose ptmx is given, unlocked and sized.
 * Returns the master and *slave, or -1 with errno. No malloc.
 */
int proc_pty_open(const char *ptmx, uint16_t rows, uint16_t cols, int *slave);
/* The same from a master m already open (closed on failure). */
int proc_pty_setup(int m, uint16_t rows, uint16_t cols, int *slave);
void proc_close3(int fd[3]);

/* what a child reports on its CLOEXEC pipe: nothing at all means exec ran */
struct child_report {
	int32_t code; /* 0: ready (the init, before it waits), else ttrpc code */
	int32_t errnum;
	char msg[240];
};
/* start message: what Start resolved, sent to the waiting init */
struct child_start {
	uint32_t uid, gid;
	uint32_t ngroups;
	uint32_t groups[SPEC_GROUPS_MAX];
};
void proc_report(int fd, int code, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Read a child's report: 1 with r, 0 at EOF (exec happened), -1 error. */
int proc_read_report(int fd, struct child_report *r);
/* In a child: close every descriptor from 3 up but those in keep. */
void proc_close_fds_except(const int *keep, size_t n);
/* In a child: stdio, session, signals, spec; then execve. Never returns. */
__attribute__((noreturn)) void proc_child_exec(const struct proc_spec *s,
					       const int child[3], int report);
/* In a child that util_clone_into could not give birth to in the cgroup
 * whose folder cgroup_dir is: move into it. */
int proc_join_cgroup(int cgroup_dir);

/* ---- stdio.c ---- */
/* serve one stream connection (runs on its own thread; takes fd) */
int stdio_serve_detached(int fd, struct kiln_error *err);
/* CloseStdin */
int stdio_close_stdin(struct proc *p, struct kiln_error *err);

/* ---- stats.c ---- */
int stats_container(struct ctr *c, Kiln__Agent__V1__StatsResponse *r,
		    struct kiln_error *err);
int stats_pids(const char *cgroup, uint32_t **pids, size_t *n,
	       struct kiln_error *err);
/* signal every process of a cgroup (SIGKILL: cgroup.kill) */
int stats_signal_all(const char *cgroup, int sig, struct kiln_error *err);
int stats_oom_start(struct kiln_error *err);
int stats_oom_watch(struct ctr *c);
void stats_oom_unwatch(struct ctr *c);
/* block until an OOM kill; *id filled */
void stats_oom_wait(char id[SPEC_ID_MAX + 1]);

/* ---- sandbox.c ---- */
int sandbox_setup_guest(struct kiln_error *err);
int sandbox_create(const Kiln__Agent__V1__CreateSandboxRequest *req,
		   struct kiln_error *err);
int sandbox_set_time(int64_t sec, int64_t nsec, struct kiln_error *err);
int sandbox_reseed(const uint8_t *data, size_t len, struct kiln_error *err);
/* Stop everything and end the VM; never returns. */
__attribute__((noreturn)) void sandbox_power_off(void);
uint64_t sandbox_boottime_ns(void);
uint64_t sandbox_realtime_ns(void);
/* whole small file (at most max bytes) into a NUL-terminated buffer */
char *sandbox_read_file(int dirfd, const char *path, size_t max, size_t *len,
			struct kiln_error *err);
int sandbox_write_file(const char *path, const char *data,
		       struct kiln_error *err);

/* ---- resources.c ---- */
#define RES_WRITES_MAX	    10
#define RES_VM_OVERHEAD_MIB 64 /* runtime/kiln.h's KILN_MEM_OVERHEAD_MIB */
/* one cgroup file to write, and the OCI field it comes from */
struct res_write {
	const char *file;  /* "memory.max" */
	const char *field; /* "memory.limit", under linux.resources */
	char value[64];
};
/*
 * The cgroup v2 writes for r, as runc maps them (pure). cur_memory: the
 * memory limit in force (-1: none), which a swap limit given alone is
 * relative to; mem_total: the guest's RAM, which no memory limit may
 * exceed. *new_memory: the memory limit once applied.
 */
int res_plan(const Kiln__Agent__V1__Resources *r, int64_t cur_memory,
	     uint64_t mem_total, struct res_write *w, size_t *n,
	     int64_t *new_memory, struct kiln_error *err);
/* Write r into c's cgroup (made if needed); caller holds c->op. */
int res_apply(struct ctr *c, const Kiln__Agent__V1__Resources *r,
	      struct kiln_error *err);
/* UpdateContainer */
int res_update(const Kiln__Agent__V1__UpdateContainerRequest *req,
	       struct kiln_error *err);

/* ---- service.c ---- */
/* net.c: ConfigureNetwork (negative ttrpc code, or 0) */
int net_configure(const Kiln__Agent__V1__ConfigureNetworkRequest *req,
		  struct kiln_error *err);

extern const struct ttrpc_method svc_methods[];
extern const size_t svc_nmethods;
extern uint64_t svc_ready_ns;
/* Shutdown's work on a thread of its own (once); -1 if none started */
int svc_shutdown_async(void);

/* dns.c: relay the loopback nameservers of req's resolv.conf, if any,
 * to the host (lib/resolv.h); once per address for the VM's life. */
void dns_guest_relay(const Kiln__Agent__V1__CreateContainerRequest *req);

#endif
