/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd's Task service (containerd.task.v2.Task) over kiln.
 *
 * A task is a kiln container; its init is kiln's pid process, each exec
 * a `kiln exec --detach` pid process. Their host pids are what containerd
 * sees, and their exits (from the reaper) are the guest processes' exits.
 *
 * Events go out in containerd's order: TaskCreate before anything of the
 * task, TaskStart (TaskExecStarted) before that process's TaskExit, and
 * TaskDelete last. Each is queued under shim_mu together with the state
 * change it reports, and the reaper publishes an exit under shim_mu too;
 * an exit that comes while Start is still running kiln waits for Start to
 * publish TaskStart first.
 *
 * Threads: every request runs on a thread of its own. shim_mu guards the
 * task list and every process's state; a task's op mutex serialises the
 * kiln commands run for it (never held with shim_mu while waiting).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/file.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "shim.h"

#define SVC	      "containerd.task.v2.Task"
#define ID_MAX	      76 /* containerd's identifiers */
#define DELETE_WAIT_S 10

enum pstate {
	P_NEW,
	P_CREATED,
	P_RUNNING,
	P_STOPPED
};

struct proc {
	char *exec_id; /* NULL: the task's init */
	struct shim_io io;
	uint8_t *spec; /* an exec's OCI process, JSON */
	size_t spec_len;
	pid_t pid;
	enum pstate st;
	bool starting;	   /* Start is running kiln for it */
	bool exit_pending; /* it ended during Start: TaskExit not sent */
	int exit_status;
	uint64_t exited_at; /* ns since the epoch */
	struct proc *next;
};

struct task {
	char *id, *bundle;
	struct proc init;
	struct proc *execs;
	bool mounted, gone;
	bool paused; /* its VM is stopped (kiln pause) */
	unsigned int refs;
	pthread_mutex_t op;
	struct task *next;
};

pthread_mutex_t shim_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t task_cv = PTHREAD_COND_INITIALIZER;
static struct task *tasks; /* under shim_mu */
static bool shutdown_requested;
static int listener = -1;
static const struct shim_opts *opts;

void task_set_listener(int fd)
{
	listener = fd;
}

void task_set_opts(const struct shim_opts *o)
{
	opts = o;
}

bool task_shutdown_requested(void)
{
	bool r;

	pthread_mutex_lock(&shim_mu);
	r = shutdown_requested;
	pthread_mutex_unlock(&shim_mu);
	return r;
}

/* ---- helpers ------------------------------------------------------------ */

static bool valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') ||
		      (i > 0 && (c == '_' || c == '.' || c == '-'))))
			return false;
	}
	return true;
}

static Google__Protobuf__Timestamp *timestamp(uint64_t ns)
{
	Google__Protobuf__Timestamp *t =
		(Google__Protobuf__Timestamp *)ttrpc_alloc_msg(
			&google__protobuf__timestamp__descriptor);

	if (t) {
		t->seconds = (int64_t)(ns / 1000000000ull);
		t->nanos = (int32_t)(ns % 1000000000ull);
	}
	return t;
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

/* A task by id with a reference (put_task), or NULL with err NOT_FOUND. */
static struct task *get_task(const char *id, struct kiln_error *err)
{
	struct task *t;

	pthread_mutex_lock(&shim_mu);
	for (t = tasks; t; t = t->next)
		if (!t->gone && strcmp(t->id, id) == 0)
			break;
	if (t)
		t->refs++;
	pthread_mutex_unlock(&shim_mu);
	if (!t)
		kiln_error_set(err, 0, "task %s not found", id);
	return t;
}

static void proc_free(struct proc *p)
{
	io_destroy(&p->io);
	free(p->spec);
	free(p->exec_id);
}

static void put_task(struct task *t)
{
	bool last;

	pthread_mutex_lock(&shim_mu);
	last = --t->refs == 0 && t->gone;
	pthread_mutex_unlock(&shim_mu);
	if (!last)
		return;
	while (t->execs) {
		struct proc *p = t->execs;

		t->execs = p->next;
		proc_free(p);
		free(p);
	}
	proc_free(&t->init);
	pthread_mutex_destroy(&t->op);
	free(t->id);
	free(t->bundle);
	free(t);
}

/* The process exec_id ("" or NULL: init) of t; shim_mu held. */
static struct proc *find_proc(struct task *t, const char *exec_id)
{
	if (!exec_id || !*exec_id)
		return &t->init;
	for (struct proc *p = t->execs; p; p = p->next)
		if (strcmp(p->exec_id, exec_id) == 0)
			return p;
	return NULL;
}

static const char *proc_id(const struct task *t, const struct proc *p)
{
	return p->exec_id ? p->exec_id : t->id;
}

/* shim_mu held */
static void send_exit(struct task *t, struct proc *p)
{
	Containerd__Events__TaskExit e = CONTAINERD__EVENTS__TASK_EXIT__INIT;
	Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	at.seconds = (int64_t)(p->exited_at / 1000000000ull);
	at.nanos = (int32_t)(p->exited_at % 1000000000ull);
	e.container_id = t->id;
	e.id = (char *)proc_id(t, p);
	e.pid = (uint32_t)p->pid;
	e.exit_status = (uint32_t)p->exit_status;
	e.exited_at = &at;
	events_publish("/tasks/exit", "TaskExit", &e.base);
}

/* p ended; shim_mu held */
static void proc_exited(struct task *t, struct proc *p, int status, uint64_t at)
{
	p->st = P_STOPPED;
	p->exit_status = status;
	p->exited_at = at;
	if (p->starting)
		p->exit_pending = true;
	else
		send_exit(t, p);
	pthread_cond_broadcast(&task_cv);
	log_info("%s %s (pid %d) exited with %d", t->id, proc_id(t, p),
		 (int)p->pid, status);
}

int task_claim(pid_t pid, int status, uint64_t at_ns)
{
	for (struct task *t = tasks; t; t = t->next) {
		struct proc *p = &t->init;

		for (; p; p = p == &t->init ? t->execs : p->next) {
			if (p->pid != pid || p->st == P_STOPPED ||
			    p->st == P_NEW)
				continue;
			proc_exited(t, p, status, at_ns);
			return 1;
		}
	}
	return 0;
}

/* p's pid, learned from a pid file after kiln ran; shim_mu held. */
static void proc_got_pid(struct task *t, struct proc *p, pid_t pid)
{
	int status;
	uint64_t at;

	p->pid = pid;
	if (reaper_take(pid, &status, &at))
		proc_exited(t, p, status, at);
}

static int read_pid(const char *path, pid_t *pid, struct kiln_error *err)
{
	cleanup_free char *text = NULL;
	size_t len;
	long v;

	text = file_read(path, 64, &len, err);
	if (!text)
		return -1;
	v = strtol(text, NULL, 10);
	if (v <= 0)
		return kiln_error_set(err, 0, "%s: no pid", path);
	*pid = (pid_t)v;
	return 0;
}

static int path_in(char *out, size_t len, const struct task *t, const char *fmt,
		   const char *name, struct kiln_error *err)
{
	int n = snprintf(out, len, "%s/", t->bundle);

	if (n < 0 || (size_t)n >= len)
		return kiln_error_set(err, ENAMETOOLONG, "%s", t->bundle);
	n = snprintf(out + n, len - (size_t)n, fmt, name);
	if (n < 0 || strlen(out) + 1 >= len)
		return kiln_error_set(err, ENAMETOOLONG, "%s", t->bundle);
	return 0;
}

/*
 * A handler's answer: *resp = out when it was built whole, else out is
 * freed and the call fails with ENOMEM.
 */
static int answer(ProtobufCMessage *out, bool whole, ProtobufCMessage **resp,
		  const char *call, struct kiln_error *err)
{
	if (!out || !whole) {
		if (out)
			protobuf_c_message_free_unpacked(out, NULL);
		return kiln_error_set(err, ENOMEM, "%s", call), TTRPC_INTERNAL;
	}
	*resp = out;
	return TTRPC_OK;
}

/* ---- rootfs ------------------------------------------------------------- */

/*
 * containerd's snapshot mounts (one overlay, or one bind) on
 * bundle/rootfs, where kiln finds the image's layers as with runc.
 */
static int mount_rootfs(struct task *t, Containerd__Types__Mount **m, size_t n,
			struct kiln_error *err)
{
	static const struct {
		const char *name;
		unsigned long set, clear;
	} flags[] = {
		{ "ro", MS_RDONLY, 0 },	      { "rw", 0, MS_RDONLY },
		{ "bind", MS_BIND, 0 },	      { "rbind", MS_BIND | MS_REC, 0 },
		{ "nosuid", MS_NOSUID, 0 },   { "nodev", MS_NODEV, 0 },
		{ "noexec", MS_NOEXEC, 0 },   { "relatime", MS_RELATIME, 0 },
		{ "noatime", MS_NOATIME, 0 }, { "private", MS_PRIVATE, 0 },
	};
	char target[4096], data[4096];
	unsigned long mflags = 0;
	size_t dl = 0;

	if (n == 0)
		return 0;
	if (n > 1)
		return kiln_error_set(
			err, 0, "rootfs: %zu mounts (one is supported)", n);
	if (path_in(target, sizeof(target), t, "%s", "rootfs", err) < 0)
		return -1;
	data[0] = '\0';
	for (size_t i = 0; i < m[0]->n_options; i++) {
		const char *o = m[0]->options[i];
		bool known = false;

		for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
			if (strcmp(o, flags[k].name) != 0)
				continue;
			mflags = (mflags | flags[k].set) & ~flags[k].clear;
			known = true;
		}
		if (known)
			continue;
		if (dl + strlen(o) + 2 > sizeof(data))
			return kiln_error_set(err, E2BIG,
					      "rootfs: mount options too long");
		dl += (size_t)sprintf(data + dl, "%s%s", dl ? "," : "", o);
	}
	if (mkdir(target, 0711) < 0 && errno != EEXIST)
		return kiln_error_set(err, errno, "mkdir %s", target);
	if (mount(m[0]->source, target, m[0]->type,
		  mflags & ~(unsigned long)MS_PRIVATE, dl ? data : NULL) < 0)
		return kiln_error_set(err, errno, "mount the rootfs (%s %s)",
				      m[0]->type, m[0]->source);
	if ((mflags & MS_BIND) && (mflags & MS_RDONLY))
		mount(NULL, target, NULL,
		      MS_BIND | MS_REMOUNT | MS_RDONLY | (mflags & MS_REC),
		      NULL);
	t->mounted = true;
	return 0;
}

static void umount_rootfs(struct task *t)
{
	char target[4096];

	if (!t->mounted ||
	    path_in(target, sizeof(target), t, "%s", "rootfs", NULL) < 0)
		return;
	if (umount2(target, MNT_DETACH) < 0)
		log_warn("umount %s: %s", target, strerror(errno));
	t->mounted = false;
}

/* ---- handlers ----------------------------------------------------------- */

#define REQ(type, name) const type *name = (const type *)msg

static int h_create(void *ctx, const ProtobufCMessage *msg,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__CreateTaskRequest, r);
	Containerd__Task__V2__CreateTaskResponse *out;
	Containerd__Events__TaskCreate ev =
		CONTAINERD__EVENTS__TASK_CREATE__INIT;
	Containerd__Events__TaskIO evio = CONTAINERD__EVENTS__TASK_IO__INIT;
	char log[4096], pidf[4096];
	const char *args[10];
	size_t n = 0;
	struct task *t, *x;
	pid_t pid;

	(void)ctx;
	if (!valid_id(r->id))
		return kiln_error_set(err, 0, "id \"%s\" is not valid", r->id),
		       TTRPC_INVALID_ARGUMENT;
	if (!*r->bundle || r->bundle[0] != '/')
		return kiln_error_set(err, 0, "bundle: not an absolute path"),
		       TTRPC_INVALID_ARGUMENT;
	if (*r->checkpoint)
		return kiln_error_set(err, 0,
				      "restore from a checkpoint: not "
				      "supported by kiln yet"),
		       TTRPC_UNIMPLEMENTED;
	t = calloc(1, sizeof(*t));
	if (!t || !(t->id = strdup(r->id)) ||
	    !(t->bundle = strdup(r->bundle))) {
		if (t)
			free(t->id);
		free(t);
		return kiln_error_set(err, ENOMEM, "create"), TTRPC_INTERNAL;
	}
	pthread_mutex_init(&t->op, NULL);
	t->refs = 1;
	io_init(&t->init.io);
	t->init.io.terminal = r->terminal;
	t->init.io.stdin_path = dup_or_empty(r->stdin);
	t->init.io.stdout_path = dup_or_empty(r->stdout);
	t->init.io.stderr_path = dup_or_empty(r->stderr);
	pthread_mutex_lock(&shim_mu);
	for (x = tasks; x; x = x->next)
		if (!x->gone && strcmp(x->id, r->id) == 0)
			break;
	if (!x) {
		t->next = tasks;
		tasks = t;
	}
	pthread_mutex_unlock(&shim_mu);
	if (x) {
		t->gone = true;
		put_task(t);
		return kiln_error_set(err, 0, "task %s already exists", r->id),
		       TTRPC_ALREADY_EXISTS;
	}
	pthread_mutex_lock(&t->op);
	if (path_in(log, sizeof(log), t, "%s", "log.json", err) < 0 ||
	    path_in(pidf, sizeof(pidf), t, "%s", "init.pid", err) < 0 ||
	    mount_rootfs(t, r->rootfs, r->n_rootfs, err) < 0 ||
	    io_prepare(&t->init.io, t->bundle, "init", err) < 0)
		goto fail;
	args[n++] = "create";
	args[n++] = "--bundle";
	args[n++] = t->bundle;
	args[n++] = "--pid-file";
	args[n++] = pidf;
	if (r->terminal) {
		args[n++] = "--console-socket";
		args[n++] = t->init.io.console;
	}
	args[n++] = t->id;
	args[n] = NULL;
	if (kiln_run(log, args, t->init.io.child[0], t->init.io.child[1],
		     t->init.io.child[2], err) < 0)
		goto fail;
	if (io_started(&t->init.io, err) < 0 || read_pid(pidf, &pid, err) < 0) {
		const char *del[] = { "delete", "--force", t->id, NULL };

		kiln_run(log, del, -1, -1, -1, NULL);
		goto fail;
	}
	pthread_mutex_lock(&shim_mu);
	t->init.st = P_CREATED;
	t->init.pid = pid;
	ev.container_id = t->id;
	ev.bundle = t->bundle;
	ev.n_rootfs = r->n_rootfs;
	ev.rootfs = r->rootfs;
	evio.stdin = r->stdin;
	evio.stdout = r->stdout;
	evio.stderr = r->stderr;
	evio.terminal = r->terminal;
	ev.io = &evio;
	ev.pid = (uint32_t)pid;
	events_publish("/tasks/create", "TaskCreate", &ev.base);
	proc_got_pid(t, &t->init, pid);
	pthread_mutex_unlock(&shim_mu);
	pthread_mutex_unlock(&t->op);
	put_task(t);
	out = (Containerd__Task__V2__CreateTaskResponse *)ttrpc_alloc_msg(
		&containerd__task__v2__create_task_response__descriptor);
	if (!out)
		return kiln_error_set(err, ENOMEM, "create"), TTRPC_INTERNAL;
	out->pid = (uint32_t)pid;
	*resp = &out->base;
	log_info("created %s (pid %d)", t->id, (int)pid);
	return TTRPC_OK;
fail:
	io_destroy(&t->init.io);
	umount_rootfs(t);
	pthread_mutex_lock(&shim_mu);
	t->gone = true;
	for (struct task **pp = &tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	pthread_mutex_unlock(&shim_mu);
	pthread_mutex_unlock(&t->op);
	put_task(t);
	return TTRPC_UNKNOWN;
}

/* Run `kiln exec --detach` for p; its pid in *pid. */
static int start_exec(struct task *t, struct proc *p, pid_t *pid,
		      struct kiln_error *err)
{
	char log[4096], pidf[4096], spec[4096];
	const char *args[12];
	size_t n = 0;
	cleanup_close int fd = -1;

	if (path_in(log, sizeof(log), t, "%s", "log.json", err) < 0 ||
	    path_in(pidf, sizeof(pidf), t, "exec-%s.pid", p->exec_id, err) <
		    0 ||
	    path_in(spec, sizeof(spec), t, "exec-%s.json", p->exec_id, err) < 0)
		return -1;
	fd = open(spec, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || util_write_all(fd, p->spec, p->spec_len) < 0)
		return kiln_error_set(err, errno, "write %s", spec);
	char name[ID_MAX + 8];
	snprintf(name, sizeof(name), "exec-%s", p->exec_id);
	if (io_prepare(&p->io, t->bundle, name, err) < 0)
		return -1;
	args[n++] = "exec";
	args[n++] = "--detach";
	args[n++] = "--pid-file";
	args[n++] = pidf;
	args[n++] = "--process";
	args[n++] = spec;
	if (p->io.terminal) {
		args[n++] = "--tty";
		args[n++] = "--console-socket";
		args[n++] = p->io.console;
	}
	args[n++] = t->id;
	args[n] = NULL;
	if (kiln_run(log, args, p->io.child[0], p->io.child[1], p->io.child[2],
		     err) < 0) {
		io_abandon(&p->io);
		unlink(spec);
		return -1;
	}
	unlink(spec);
	if (io_started(&p->io, err) < 0)
		return -1;
	return read_pid(pidf, pid, err);
}

static int h_start(void *ctx, const ProtobufCMessage *msg,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__StartRequest, r);
	Containerd__Task__V2__StartResponse *out;
	struct task *t = get_task(r->id, err);
	struct proc *p;
	pid_t pid = 0;
	int rc = TTRPC_OK;

	(void)ctx;
	if (!t)
		return TTRPC_NOT_FOUND;
	pthread_mutex_lock(&t->op);
	pthread_mutex_lock(&shim_mu);
	p = find_proc(t, r->exec_id);
	if (!p || p->st != P_CREATED) {
		pthread_mutex_unlock(&shim_mu);
		rc = p ? TTRPC_FAILED_PRECONDITION : TTRPC_NOT_FOUND;
		kiln_error_set(err, 0, p ? "%s is not created" : "%s not found",
			       *r->exec_id ? r->exec_id : r->id);
		goto out;
	}
	if (p->exec_id && t->init.st != P_RUNNING) {
		pthread_mutex_unlock(&shim_mu);
		rc = TTRPC_FAILED_PRECONDITION;
		kiln_error_set(err, 0, "task %s is not running", t->id);
		goto out;
	}
	p->starting = true;
	pid = p->pid;
	pthread_mutex_unlock(&shim_mu);

	if (p->exec_id) {
		rc = start_exec(t, p, &pid, err);
	} else {
		char log[4096];
		const char *args[] = { "start", t->id, NULL };

		rc = path_in(log, sizeof(log), t, "%s", "log.json", err);
		if (rc == 0)
			rc = kiln_run(log, args, -1, -1, -1, err);
	}

	pthread_mutex_lock(&shim_mu);
	p->starting = false;
	if (rc == 0) {
		if (p->exec_id) {
			Containerd__Events__TaskExecStarted ev =
				CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;

			if (p->st == P_CREATED)
				p->st = P_RUNNING;
			ev.container_id = t->id;
			ev.exec_id = p->exec_id;
			ev.pid = (uint32_t)pid;
			events_publish("/tasks/exec-started", "TaskExecStarted",
				       &ev.base);
			proc_got_pid(t, p, pid);
		} else {
			Containerd__Events__TaskStart ev =
				CONTAINERD__EVENTS__TASK_START__INIT;

			if (p->st == P_CREATED)
				p->st = P_RUNNING;
			ev.container_id = t->id;
			ev.pid = (uint32_t)pid;
			events_publish("/tasks/start", "TaskStart", &ev.base);
			shim_watch_oom(t->id);
		}
	} else {
		rc = TTRPC_UNKNOWN;
		if (p->exec_id && p->st == P_CREATED) {
			/* never ran: an exit so that waiters end */
			p->st = P_STOPPED;
			p->exit_status = 255;
			p->exited_at = util_clock_ns(CLOCK_REALTIME);
			pthread_cond_broadcast(&task_cv);
		}
	}
	if (p->exit_pending) {
		p->exit_pending = false;
		send_exit(t, p);
	}
	pthread_mutex_unlock(&shim_mu);
	if (rc == TTRPC_OK) {
		out = (Containerd__Task__V2__StartResponse *)ttrpc_alloc_msg(
			&containerd__task__v2__start_response__descriptor);
		if (!out) {
			rc = TTRPC_INTERNAL;
			kiln_error_set(err, ENOMEM, "start");
			goto out;
		}
		out->pid = (uint32_t)pid;
		*resp = &out->base;
	}
out:
	pthread_mutex_unlock(&t->op);
	put_task(t);
	return rc;
}

static int h_delete(void *ctx, const ProtobufCMessage *msg,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__DeleteRequest, r);
	Containerd__Task__V2__DeleteResponse *out;
	struct task *t = get_task(r->id, err);
	struct proc *p;
	uint32_t pid, status;
	uint64_t at;
	int rc = TTRPC_OK;

	(void)ctx;
	if (!t)
		return TTRPC_NOT_FOUND;
	out = (Containerd__Task__V2__DeleteResponse *)ttrpc_alloc_msg(
		&containerd__task__v2__delete_response__descriptor);
	if (!out) {
		put_task(t);
		return kiln_error_set(err, ENOMEM, "delete"), TTRPC_INTERNAL;
	}
	pthread_mutex_lock(&t->op);
	pthread_mutex_lock(&shim_mu);
	p = find_proc(t, r->exec_id);
	if (!p || p->st == P_RUNNING ||
	    (p->exec_id && p->st == P_CREATED && p->starting)) {
		rc = p ? TTRPC_FAILED_PRECONDITION : TTRPC_NOT_FOUND;
		kiln_error_set(err, 0,
			       p ? "%s is running: kill it first"
				 : "%s not found",
			       *r->exec_id ? r->exec_id : r->id);
		pthread_mutex_unlock(&shim_mu);
		goto fail;
	}
	if (p->exec_id) {
		for (struct proc **pp = &t->execs; *pp; pp = &(*pp)->next)
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		/* a Wait for it ends: NotFound */
		pthread_cond_broadcast(&task_cv);
		pthread_mutex_unlock(&shim_mu);
		pid = (uint32_t)p->pid;
		status = (uint32_t)p->exit_status;
		at = p->exited_at;
		proc_free(p);
		free(p);
	} else {
		char log[4096];
		const char *args[] = { "delete", "--force", t->id, NULL };
		struct kiln_error kerr = { 0 };
		struct timespec until;

		pthread_mutex_unlock(&shim_mu);
		if (path_in(log, sizeof(log), t, "%s", "log.json", err) < 0) {
			rc = TTRPC_INTERNAL;
			goto fail;
		}
		if (kiln_run(log, args, -1, -1, -1, &kerr) < 0)
			log_warn("%s", kerr.msg);
		/* a created task's pid process dies with the delete */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += DELETE_WAIT_S;
		pthread_mutex_lock(&shim_mu);
		while (t->init.st == P_CREATED && t->init.pid > 0)
			if (pthread_cond_timedwait(&task_cv, &shim_mu,
						   &until) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&shim_mu);
		umount_rootfs(t);
		pid = (uint32_t)p->pid;
		status = (uint32_t)p->exit_status;
		at = p->exited_at;
		pthread_mutex_lock(&shim_mu);
		{
			Containerd__Events__TaskDelete ev =
				CONTAINERD__EVENTS__TASK_DELETE__INIT;
			Google__Protobuf__Timestamp ts =
				GOOGLE__PROTOBUF__TIMESTAMP__INIT;

			ts.seconds = (int64_t)(at / 1000000000ull);
			ts.nanos = (int32_t)(at % 1000000000ull);
			ev.container_id = t->id;
			ev.id = t->id;
			ev.pid = pid;
			ev.exit_status = status;
			ev.exited_at = &ts;
			events_publish("/tasks/delete", "TaskDelete", &ev.base);
		}
		t->gone = true;
		for (struct task **pp = &tasks; *pp; pp = &(*pp)->next)
			if (*pp == t) {
				*pp = t->next;
				break;
			}
		t->refs--; /* the list's */
		pthread_cond_broadcast(&task_cv);
		pthread_mutex_unlock(&shim_mu);
		log_info("deleted %s", t->id);
	}
	out->pid = pid;
	out->exit_status = status;
	out->exited_at = timestamp(at);
	*resp = &out->base;
	pthread_mutex_unlock(&t->op);
	put_task(t);
	return TTRPC_OK;
fail:
	pthread_mutex_unlock(&t->op);
	put_task(t);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	return rc;
}

static int h_exec(void *ctx, const ProtobufCMessage *msg,
		  ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__ExecProcessRequest, r);
	Containerd__Events__TaskExecAdded ev =
		CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
	struct task *t = get_task(r->id, err);
	struct proc *p;
	int rc = TTRPC_OK;

	(void)ctx;
	(void)resp;
	if (!t)
		return TTRPC_NOT_FOUND;
	if (!valid_id(r->exec_id)) {
		put_task(t);
		return kiln_error_set(err, 0, "exec id \"%s\" is not valid",
				      r->exec_id),
		       TTRPC_INVALID_ARGUMENT;
	}
	if (!r->spec || !r->spec->value.len) {
		put_task(t);
		return kiln_error_set(err, 0, "exec %s: no process spec",
				      r->exec_id),
		       TTRPC_INVALID_ARGUMENT;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->exec_id = strdup(r->exec_id)) ||
	    !(p->spec = malloc(r->spec->value.len))) {
		if (p)
			free(p->exec_id);
		free(p);
		put_task(t);
		return kiln_error_set(err, ENOMEM, "exec"), TTRPC_INTERNAL;
	}
	memcpy(p->spec, r->spec->value.data, r->spec->value.len);
	p->spec_len = r->spec->value.len;
	io_init(&p->io);
	p->io.terminal = r->terminal;
	p->io.stdin_path = dup_or_empty(r->stdin);
	p->io.stdout_path = dup_or_empty(r->stdout);
	p->io.stderr_path = dup_or_empty(r->stderr);
	p->st = P_CREATED;
	pthread_mutex_lock(&shim_mu);
	if (find_proc(t, r->exec_id)) {
		rc = TTRPC_ALREADY_EXISTS;
		kiln_error_set(err, 0, "exec %s already exists", r->exec_id);
	} else if (t->init.st != P_RUNNING) {
		rc = TTRPC_FAILED_PRECONDITION;
		kiln_error_set(err, 0, "task %s is not running", t->id);
	} else {
		p->next = t->execs;
		t->execs = p;
		ev.container_id = t->id;
		ev.exec_id = p->exec_id;
		events_publish("/tasks/exec-added", "TaskExecAdded", &ev.base);
	}
	pthread_mutex_unlock(&shim_mu);
	if (rc != TTRPC_OK) {
		proc_free(p);
		free(p);
	}
	put_task(t);
	return rc;
}

static int h_kill(void *ctx, const ProtobufCMessage *msg,
		  ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__KillRequest, r);
	struct task *t = get_task(r->id, err);
	struct proc *p;
	enum pstate st;
	pid_t pid;
	int rc = TTRPC_OK;

	(void)ctx;
	(void)resp;
	if (!t)
		return TTRPC_NOT_FOUND;
	if (r->signal == 0 || r->signal >= 65) {
		put_task(t);
		return kiln_error_set(err, 0, "signal %u is not valid",
				      r->signal),
		       TTRPC_INVALID_ARGUMENT;
	}
	pthread_mutex_lock(&shim_mu);
	p = find_proc(t, r->exec_id);
	st = p ? p->st : P_NEW;
	pid = p ? p->pid : 0;
	pthread_mutex_unlock(&shim_mu);
	if (!p) {
		rc = TTRPC_NOT_FOUND;
		kiln_error_set(err, 0, "%s not found", r->exec_id);
	} else if (st == P_STOPPED) {
		rc = TTRPC_NOT_FOUND;
		kiln_error_set(err, 0, "process already finished");
	} else if (p->exec_id) {
		if (st != P_RUNNING || pid <= 0) {
			rc = TTRPC_FAILED_PRECONDITION;
			kiln_error_set(err, 0, "exec %s is not running",
				       p->exec_id);
		} else if (kill(pid, (int)r->signal) < 0 && errno != ESRCH) {
			rc = TTRPC_UNKNOWN;
			kiln_error_set(err, errno, "kill exec %s", p->exec_id);
		}
	} else {
		char log[4096], sig[16];
		const char *args[6];
		size_t n = 0;

		snprintf(sig, sizeof(sig), "%u", r->signal);
		args[n++] = "kill";
		if (r->all)
			args[n++] = "--all";
		args[n++] = t->id;
		args[n++] = sig;
		args[n] = NULL;
		if (path_in(log, sizeof(log), t, "%s", "log.json", err) == 0 &&
		    kiln_run(log, args, -1, -1, -1, err) == 0) {
			/* kiln resumes a paused VM for SIGKILL */
			if (r->signal == SIGKILL) {
				pthread_mutex_lock(&shim_mu);
				t->paused = false;
				pthread_mutex_unlock(&shim_mu);
			}
		} else {
			/* it may have ended meanwhile */
			pthread_mutex_lock(&shim_mu);
			rc = t->init.st == P_STOPPED ? TTRPC_NOT_FOUND
						     : TTRPC_UNKNOWN;
			pthread_mutex_unlock(&shim_mu);
		}
	}
	put_task(t);
	return rc;
}

static int h_wait(void *ctx, const ProtobufCMessage *msg,
		  ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__WaitRequest, r);
	Containerd__Task__V2__WaitResponse *out;
	struct task *t = get_task(r->id, err);
	struct proc *p;
	int status;
	uint64_t at;

	(void)ctx;
	if (!t)
		return TTRPC_NOT_FOUND;
	pthread_mutex_lock(&shim_mu);
	p = find_proc(t, r->exec_id);
	while (p && p->st != P_STOPPED && !t->gone) {
		pthread_cond_wait(&task_cv, &shim_mu);
		p = find_proc(t, r->exec_id);
	}
	status = p ? p->exit_status : 0;
	at = p ? p->exited_at : 0;
	pthread_mutex_unlock(&shim_mu);
	put_task(t);
	if (!p)
		return kiln_error_set(err, 0, "%s not found", r->exec_id),
		       TTRPC_NOT_FOUND;
	out = (Containerd__Task__V2__WaitResponse *)ttrpc_alloc_msg(
		&containerd__task__v2__wait_response__descriptor);
	if (out) {
		out->exit_status = (uint32_t)status;
		out->exited_at = timestamp(at);
	}
	return answer(out ? &out->base : NULL, out && out->exited_at, resp,
		      "wait", err);
}

static int h_state(void *ctx, const ProtobufCMessage *msg,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__StateRequest, r);
	Containerd__Task__V2__StateResponse *out;
	struct task *t = get_task(r->id, err);
	struct proc *p;

	(void)ctx;
	if (!t)
		return TTRPC_NOT_FOUND;
	out = (Containerd__Task__V2__StateResponse *)ttrpc_alloc_msg(
		&containerd__task__v2__state_response__descriptor);
	if (!out) {
		put_task(t);
		return kiln_error_set(err, ENOMEM, "state"), TTRPC_INTERNAL;
	}
	pthread_mutex_lock(&shim_mu);
	p = find_proc(t, r->exec_id);
	/* still being created: not there yet for containerd (runc's shim) */
	if (p && p->st == P_NEW)
		p = NULL;
	if (p) {
		static const Containerd__V1__Types__Status status[] = {
			[P_NEW] = CONTAINERD__V1__TYPES__STATUS__UNKNOWN,
			[P_CREATED] = CONTAINERD__V1__TYPES__STATUS__CREATED,
			[P_RUNNING] = CONTAINERD__V1__TYPES__STATUS__RUNNING,
			[P_STOPPED] = CONTAINERD__V1__TYPES__STATUS__STOPPED,
		};

		out->id = strdup(t->id);
		out->bundle = strdup(t->bundle);
		out->pid = (uint32_t)p->pid;
		out->status = status[p->st];
		if (!p->exec_id && p->st == P_RUNNING && t->paused)
			out->status = CONTAINERD__V1__TYPES__STATUS__PAUSED;
		out->stdin = dup_or_empty(p->io.stdin_path);
		out->stdout = dup_or_empty(p->io.stdout_path);
		out->stderr = dup_or_empty(p->io.stderr_path);
		out->terminal = p->io.terminal;
		out->exit_status = (uint32_t)p->exit_status;
		out->exited_at = timestamp(p->exited_at);
		out->exec_id = dup_or_empty(p->exec_id);
	}
	pthread_mutex_unlock(&shim_mu);
	put_task(t);
	if (!p) {
		protobuf_c_message_free_unpacked(&out->base, NULL);
		return kiln_error_set(err, 0, "%s not found", r->exec_id),
		       TTRPC_NOT_FOUND;
	}
	return answer(&out->base,
		      out->id && out->bundle && out->stdin && out->stdout &&
			      out->stderr && out->exited_at && out->exec_id,
		      resp, "state", err);
}

static int h_pids(void *ctx, const ProtobufCMessage *msg,
		  ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__PidsRequest, r);
	Containerd__Task__V2__PidsResponse *out;
	struct task *t = get_task(r->id, err);
	size_t n = 0;

	(void)ctx;
	if (!t)
		return TTRPC_NOT_FOUND;
	out = (Containerd__Task__V2__PidsResponse *)ttrpc_alloc_msg(
		&containerd__task__v2__pids_response__descriptor);
	pthread_mutex_lock(&shim_mu);
	for (struct proc *p = &t->init; p;
	     p = p == &t->init ? t->execs : p->next)
		n++;
	if (out)
		out->processes = calloc(n, sizeof(*out->processes));
	for (struct proc *p = &t->init; out && out->processes && p;
	     p = p == &t->init ? t->execs : p->next) {
		Containerd__V1__Types__ProcessInfo *pi;

		if (p->pid <= 0 || p->st == P_STOPPED)
			continue;
		pi = (Containerd__V1__Types__ProcessInfo *)ttrpc_alloc_msg(
			&containerd__v1__types__process_info__descriptor);
		if (!pi)
			break;
		pi->pid = (uint32_t)p->pid;
		out->processes[out->n_processes++] = pi;
	}
	pthread_mutex_unlock(&shim_mu);
	put_task(t);
	return answer(out ? &out->base : NULL, out && out->processes, resp,
		      "pids", err);
}

static int h_resize(void *ctx, const ProtobufCMessage *msg,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__ResizePtyRequest, r);
	struct task *t = get_task(r->id, err);
	struct proc *p;
	int rc = TTRPC_OK;

	(void)ctx;
	(void)resp;
	if (!t)
		return TTRPC_NOT_FOUND;
	pthread_mutex_lock(&shim_mu);
	p = find_proc(t, r->exec_id);
	if (!p) {
		rc = TTRPC_NOT_FOUND;
		kiln_error_set(err, 0, "%s not found", r->exec_id);
	} else if (io_resize(&p->io, r->width, r->height, err) < 0) {
		rc = TTRPC_FAILED_PRECONDITION;
	}
	pthread_mutex_unlock(&shim_mu);
	put_task(t);
	return rc;
}

static int h_closeio(void *ctx, const ProtobufCMessage *msg,
		     ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__CloseIORequest, r);
	struct task *t = get_task(r->id, err);
	struct proc *p;

	(void)ctx;
	(void)resp;
	if (!t)
		return TTRPC_NOT_FOUND;
	pthread_mutex_lock(&shim_mu);
	p = find_proc(t, r->exec_id);
	if (p && r->stdin)
		io_close_stdin(&p->io);
	pthread_mutex_unlock(&shim_mu);
	put_task(t);
	if (!p)
		return kiln_error_set(err, 0, "%s not found", r->exec_id),
		       TTRPC_NOT_FOUND;
	return TTRPC_OK;
}

static int h_update(void *ctx, const ProtobufCMessage *msg,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__UpdateTaskRequest, r);
	struct task *t = get_task(r->id, err);
	char log[4096], file[4096];
	const char *args[] = { "update", "-r", file, r->id, NULL };
	cleanup_close int fd = -1;
	int rc = TTRPC_OK;

	(void)ctx;
	(void)resp;
	if (!t)
		return TTRPC_NOT_FOUND;
	if (!r->resources || !r->resources->value.len) {
		put_task(t);
		return TTRPC_OK;
	}
	pthread_mutex_lock(&t->op);
	if (path_in(log, sizeof(log), t, "%s", "log.json", err) < 0 ||
	    path_in(file, sizeof(file), t, "%s", "update.json", err) < 0) {
		rc = TTRPC_INTERNAL;
		goto out;
	}
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || util_write_all(fd, r->resources->value.data,
				     r->resources->value.len) < 0) {
		rc = TTRPC_INTERNAL;
		kiln_error_set(err, errno, "write %s", file);
		goto out;
	}
	if (kiln_run(log, args, -1, -1, -1, err) < 0)
		rc = TTRPC_UNKNOWN;
	unlink(file);
out:
	pthread_mutex_unlock(&t->op);
	put_task(t);
	return rc;
}

static int h_connect(void *ctx, const ProtobufCMessage *msg,
		     ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__ConnectRequest, r);
	Containerd__Task__V2__ConnectResponse *out;
	struct task *t = get_task(r->id, err);

	(void)ctx;
	if (!t)
		return TTRPC_NOT_FOUND;
	out = (Containerd__Task__V2__ConnectResponse *)ttrpc_alloc_msg(
		&containerd__task__v2__connect_response__descriptor);
	if (out) {
		pthread_mutex_lock(&shim_mu);
		out->task_pid = (uint32_t)t->init.pid;
		pthread_mutex_unlock(&shim_mu);
		out->shim_pid = (uint32_t)getpid();
		out->version = strdup(KILN_VERSION);
	}
	put_task(t);
	return answer(out ? &out->base : NULL, out && out->version, resp,
		      "connect", err);
}

static int h_shutdown(void *ctx, const ProtobufCMessage *msg,
		      ProtobufCMessage **resp, struct kiln_error *err)
{
	(void)ctx;
	(void)msg;
	(void)resp;
	(void)err;
	pthread_mutex_lock(&shim_mu);
	if (!tasks && !shutdown_requested) {
		shutdown_requested = true;
		/* main's accept returns */
		shutdown(listener, SHUT_RDWR);
	}
	pthread_mutex_unlock(&shim_mu);
	return TTRPC_OK;
}

static int h_stats(void *ctx, const ProtobufCMessage *msg,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__StatsRequest, r);
	struct task *t = get_task(r->id, err);
	enum pstate st;
	bool paused;

	(void)ctx;
	if (!t)
		return TTRPC_NOT_FOUND;
	pthread_mutex_lock(&shim_mu);
	st = t->init.st;
	paused = t->paused;
	pthread_mutex_unlock(&shim_mu);
	put_task(t);
	/* a stopped VM cannot answer, and no VM is left once it ended */
	if (st != P_RUNNING || paused)
		return kiln_error_set(err, 0, "task %s is not running", r->id),
		       TTRPC_FAILED_PRECONDITION;
	if (shim_stats(r->id, resp, err) < 0)
		return TTRPC_UNKNOWN;
	return TTRPC_OK;
}

/* Pause and Resume: `kiln pause` stops the VM whole */
static int pause_resume(const char *id, bool pause, struct kiln_error *err)
{
	struct task *t = get_task(id, err);
	char log[4096];
	const char *args[] = { pause ? "pause" : "resume", id, NULL };
	int rc = TTRPC_OK;

	if (!t)
		return TTRPC_NOT_FOUND;
	pthread_mutex_lock(&t->op);
	if (path_in(log, sizeof(log), t, "%s", "log.json", err) < 0) {
		rc = TTRPC_INTERNAL;
	} else if (kiln_run(log, args, -1, -1, -1, err) < 0) {
		rc = TTRPC_FAILED_PRECONDITION;
	} else {
		pthread_mutex_lock(&shim_mu);
		t->paused = pause;
		if (pause) {
			Containerd__Events__TaskPaused ev =
				CONTAINERD__EVENTS__TASK_PAUSED__INIT;

			ev.container_id = t->id;
			events_publish("/tasks/paused", "TaskPaused", &ev.base);
		} else {
			Containerd__Events__TaskResumed ev =
				CONTAINERD__EVENTS__TASK_RESUMED__INIT;

			ev.container_id = t->id;
			events_publish("/tasks/resumed", "TaskResumed",
				       &ev.base);
		}
		pthread_mutex_unlock(&shim_mu);
	}
	pthread_mutex_unlock(&t->op);
	put_task(t);
	return rc;
}

static int h_pause(void *ctx, const ProtobufCMessage *msg,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__PauseRequest, r);

	(void)ctx;
	(void)resp;
	return pause_resume(r->id, true, err);
}

static int h_resume(void *ctx, const ProtobufCMessage *msg,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	REQ(Containerd__Task__V2__ResumeRequest, r);

	(void)ctx;
	(void)resp;
	return pause_resume(r->id, false, err);
}

static int h_unimplemented(void *ctx, const ProtobufCMessage *msg,
			   ProtobufCMessage **resp, struct kiln_error *err)
{
	(void)ctx;
	(void)resp;
	const char *name = msg->descriptor->short_name;
	size_t n = strlen(name);

	/* "StatsRequest", "CheckpointTaskRequest": the call's name */
	if (n > 7 && strcmp(name + n - 7, "Request") == 0)
		n -= 7;
	if (n > 4 && strncmp(name + n - 4, "Task", 4) == 0)
		n -= 4;
	return kiln_error_set(err, 0, "%.*s: not supported by kiln yet", (int)n,
			      name),
	       TTRPC_UNIMPLEMENTED;
}

#define M(name, desc, fn)                                    \
	{                                                    \
		SVC, name, &containerd__task__v2__##desc, fn \
	}

static const struct ttrpc_method methods[] = {
	M("State", state_request__descriptor, h_state),
	M("Create", create_task_request__descriptor, h_create),
	M("Start", start_request__descriptor, h_start),
	M("Delete", delete_request__descriptor, h_delete),
	M("Pids", pids_request__descriptor, h_pids),
	M("Pause", pause_request__descriptor, h_pause),
	M("Resume", resume_request__descriptor, h_resume),
	M("Checkpoint", checkpoint_task_request__descriptor, h_unimplemented),
	M("Kill", kill_request__descriptor, h_kill),
	M("Exec", exec_process_request__descriptor, h_exec),
	M("ResizePty", resize_pty_request__descriptor, h_resize),
	M("CloseIO", close_iorequest__descriptor, h_closeio),
	M("Update", update_task_request__descriptor, h_update),
	M("Wait", wait_request__descriptor, h_wait),
	M("Stats", stats_request__descriptor, h_stats),
	M("Connect", connect_request__descriptor, h_connect),
	M("Shutdown", shutdown_request__descriptor, h_shutdown),
};

const struct ttrpc_server task_server = {
	.methods = methods,
	.nmethods = sizeof(methods) / sizeof(methods[0]),
	.ctx = NULL,
};
