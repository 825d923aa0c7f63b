/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Containers: the table, and each one's life. CreateContainer mounts the
 * rootfs and clones the init into new mount, pid, uts and ipc namespaces;
 * the init mounts, pivots and then waits on a pipe until StartContainer
 * lets it exec. ExecProcess (exec.c) joins the init's namespaces.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mount.h"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"

pthread_mutex_t ctr_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t ctr_cond = PTHREAD_COND_INITIALIZER;
static struct ctr *ctrs;
static size_t nctrs;

/* ---- the table -------------------------------------------------------- */

struct proc *proc_new(struct ctr *c, const char *exec_id)
{
	struct proc *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->ctr = c;
	snprintf(p->exec_id, sizeof(p->exec_id), "%s", exec_id);
	p->pid = -1;
	p->pty_master = -1;
	p->stdin_wake = -1;
	p->fd[0] = p->fd[1] = p->fd[2] = -1;
	return p;
}

void proc_free(struct proc *p)
{
	proc_close3(p->fd);
	if (p->pty_master >= 0)
		close(p->pty_master);
	if (p->stdin_wake >= 0)
		close(p->stdin_wake);
	free(p);
}

static void ctr_free(struct ctr *c)
{
	struct proc *p, *next;

	for (p = c->procs; p != NULL; p = next) {
		next = p->next;
		proc_free(p);
	}
	if (c->start_fd >= 0)
		close(c->start_fd);
	if (c->status_fd >= 0)
		close(c->status_fd);
	proc_spec_free(&c->spec);
	pthread_mutex_destroy(&c->op);
	free(c->upper_device);
	free(c);
}

/* with ctr_lock held */
static struct ctr *find_locked(const char *id)
{
	for (struct ctr *c = ctrs; c != NULL; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

/*
 * The container whose writable layer is dev (ctr_lock held). Two
 * overlays on one upper directory are undefined behaviour that overlayfs
 * only warns about (without its index option).
 */
static struct ctr *upper_user_locked(const char *dev)
{
	for (struct ctr *c = ctrs; c != NULL && dev != NULL; c = c->next)
		if (c->upper_device != NULL &&
		    strcmp(c->upper_device, dev) == 0)
			return c;
	return NULL;
}

struct ctr *ctr_get(const char *id, struct kiln_error *err)
{
	struct ctr *c;

	if (spec_check_id("container_id", id, false, err) < 0)
		return NULL;
	pthread_mutex_lock(&ctr_lock);
	c = find_locked(id);
	if (c != NULL)
		c->refs++;
	pthread_mutex_unlock(&ctr_lock);
	if (c == NULL)
		kiln_error_set(err, 0, "container `%s` not found", id);
	return c;
}

void ctr_put(struct ctr *c)
{
	bool last;

	pthread_mutex_lock(&ctr_lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&ctr_lock);
	if (last)
		ctr_free(c);
}

struct proc *proc_get(const char *cid, const char *eid, struct kiln_error *err)
{
	struct proc *p = NULL;
	struct ctr *c;

	if (spec_check_id("exec_id", eid, true, err) < 0)
		return NULL;
	c = ctr_get(cid, err);
	if (c == NULL)
		return NULL;
	pthread_mutex_lock(&ctr_lock);
	for (p = c->procs; p != NULL; p = p->next)
		if (strcmp(p->exec_id, eid) == 0 && p->pid > 0)
			break;
	if (p != NULL)
		p->refs++;
	pthread_mutex_unlock(&ctr_lock);
	if (p == NULL) {
		kiln_error_set(err, 0,
			       "process `%s` of container `%s` not found", eid,
			       cid);
		ctr_put(c);
	}
	/* the reference on c now belongs to p, dropped by proc_put */
	return p;
}

void proc_put(struct proc *p)
{
	struct ctr *c = p->ctr;

	pthread_mutex_lock(&ctr_lock);
	p->refs--;
	pthread_mutex_unlock(&ctr_lock);
	ctr_put(c);
}

bool ctr_reap(pid_t pid, int wstatus)
{
	bool found = false;

	pthread_mutex_lock(&ctr_lock);
	for (struct ctr *c = ctrs; c != NULL && !found; c = c->next)
		for (struct proc *p = c->procs; p != NULL; p = p->next) {
			if (p->pid != pid || p->state == PROC_EXITED)
				continue;
			p->state = PROC_EXITED;
			p->wstatus = wstatus;
			p->exited_at_ns = sandbox_realtime_ns();
			if (p == c->init)
				c->state = CTR_STOPPED;
			found = true;
			break;
		}
	if (found)
		pthread_cond_broadcast(&ctr_cond);
	pthread_mutex_unlock(&ctr_lock);
	return found;
}

size_t ctr_list(char (*ids)[SPEC_ID_MAX + 1], size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&ctr_lock);
	for (struct ctr *c = ctrs; c != NULL && n < max; c = c->next)
		memcpy(ids[n++], c->id, sizeof(ids[0]));
	pthread_mutex_unlock(&ctr_lock);
	return n;
}

size_t ctr_running(void)
{
	size_t n = 0;

	pthread_mutex_lock(&ctr_lock);
	for (struct ctr *c = ctrs; c != NULL; c = c->next)
		n += c->state == CTR_RUNNING;
	pthread_mutex_unlock(&ctr_lock);
	return n;
}

int ctr_find_wd(int wd, char id[SPEC_ID_MAX + 1], char *cgroup, size_t len)
{
	int r = -1;

	pthread_mutex_lock(&ctr_lock);
	for (struct ctr *c = ctrs; c != NULL; c = c->next)
		if (c->oom_wd == wd) {
			memcpy(id, c->id, SPEC_ID_MAX + 1);
			snprintf(cgroup, len, "%s", c->cgroup);
			r = 0;
			break;
		}
	pthread_mutex_unlock(&ctr_lock);
	return r;
}

/* Drop c from the table (its table reference goes to the caller). */
static void unlink_ctr(struct ctr *c)
{
	pthread_mutex_lock(&ctr_lock);
	for (struct ctr **pp = &ctrs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			nctrs--;
			break;
		}
	c->removed = true;
	pthread_mutex_unlock(&ctr_lock);
}

/* Wait (ctr_lock held) until p has exited or the deadline passes. */
static bool wait_exit_locked(struct proc *p, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (p->state != PROC_EXITED)
		if (pthread_cond_timedwait(&ctr_cond, &ctr_lock, &ts) ==
		    ETIMEDOUT)
			break;
	return p->state == PROC_EXITED;
}

/* ---- create ----------------------------------------------------------- */

struct init_args {
	struct mount_plan *plan;
	struct proc_spec *spec;
	int child[3];
	int report, start, cgroup; /* cgroup: its folder */
	bool born;		   /* in it already (util_clone_into) */
	int shared[2];		   /* IPC and UTS namespaces to join, or -1 */
};

static const char *const shared_ns[2] = { "ipc", "uts" };

__attribute__((noreturn)) static void init_child(struct init_args *a)
{
	int keep[] = { a->report,   a->start,	 a->cgroup,    a->child[0],
		       a->child[1], a->child[2], a->shared[0], a->shared[1] };
	struct child_start st;
	int master = -1, slave = -1;
	size_t got = 0;

	/* nothing of the agent's but what this process needs: an early
	 * clone must not hold other processes' pipes open */
	proc_close_fds_except(keep, ARRAY_SIZE(keep));
	if (!a->born && proc_join_cgroup(a->cgroup) < 0) {
		proc_report(a->report, TTRPC_INTERNAL, errno,
			    "join the container's cgroup");
		_exit(127);
	}
	close(a->cgroup);
	/* a pod's: its sandbox's IPC and UTS, before /dev/mqueue is mounted */
	for (int i = 0; i < 2 && a->shared[i] >= 0; i++) {
		if (setns(a->shared[i], 0) < 0) {
			proc_report(a->report, TTRPC_INTERNAL, errno,
				    "join the pod's %s namespace",
				    shared_ns[i]);
			_exit(127);
		}
		close(a->shared[i]);
	}
	/* rooted at the container's cgroup, now that it is in it: its
	 * /sys/fs/cgroup shows its own limits, as with runc's cgroupns */
	if (unshare(CLONE_NEWCGROUP) < 0) {
		proc_report(a->report, TTRPC_INTERNAL, errno,
			    "a cgroup namespace for the container");
		_exit(127);
	}
	if (mount_setup_child(a->plan, a->report) < 0)
		_exit(127);
	if (chdir(a->spec->cwd) < 0) {
		proc_report(a->report, TTRPC_INVALID_ARGUMENT, errno,
			    "process.cwd `%s`", a->spec->cwd);
		_exit(127);
	}
	if (a->spec->terminal) {
		/* the agent takes the master with pidfd_getfd; ours closes
		 * at exec */
		master = proc_pty_open("/dev/pts/ptmx", a->spec->rows,
				       a->spec->cols, &slave);
		if (master < 0) {
			proc_report(a->report, TTRPC_INTERNAL, errno,
				    "open a pty in the container");
			_exit(127);
		}
		a->child[0] = a->child[1] = a->child[2] = slave;
	}
	/* errnum carries the master's number for the agent */
	proc_report(a->report, 0, master, "ready");
	while (got < sizeof(st)) {
		ssize_t n = read(a->start, (char *)&st + got, sizeof(st) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0); /* removed before it was started */
		got += n;
	}
	close(a->start);
	a->spec->uid = st.uid;
	a->spec->gid = st.gid;
	a->spec->ngroups = st.ngroups > SPEC_GROUPS_MAX ? SPEC_GROUPS_MAX
							: st.ngroups;
	memcpy(a->spec->groups, st.groups, sizeof(st.groups));
	proc_child_exec(a->spec, a->child, a->report);
}

int ctr_open_cgroup(struct ctr *c, struct kiln_error *err)
{
	int fd;

	if (mkdir(c->cgroup, 0755) < 0 && errno != EEXIST)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir `%s`",
				  c->cgroup);
	fd = open(c->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "open `%s`",
				  c->cgroup);
	return fd;
}

/* The init's pty master, opened in its own /dev/pts, into the agent. */
static int take_master(struct ctr *c, pid_t pid, int fd, struct kiln_error *err)
{
	cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int m;

	if (pidfd < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "pidfd_open %d",
				  pid);
	m = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (m < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "take the init's pty");
	pthread_mutex_lock(&ctr_lock);
	c->init->pty_master = m;
	pthread_mutex_unlock(&ctr_lock);
	return 0;
}

/* The IPC and UTS namespaces of container id's init, opened. */
static int open_shared(const char *id, int fds[2], struct kiln_error *err)
{
	struct ctr *o = ctr_get(id, err);
	char path[64];
	pid_t pid;

	if (o == NULL)
		return kiln_error_wrap(err, "share_ns_of"), -TTRPC_NOT_FOUND;
	pthread_mutex_lock(&ctr_lock);
	pid = o->init != NULL && o->state != CTR_STOPPED ? o->init->pid : -1;
	pthread_mutex_unlock(&ctr_lock);
	ctr_put(o);
	if (pid <= 0)
		return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
				  "share_ns_of: container `%s` has no init",
				  id);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid,
			 shared_ns[i]);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, errno,
					  "share_ns_of: open `%s`", path);
	}
	return 0;
}

/* Clone the init; it reports "ready" once mounted and pivoted. */
static int spawn_init(struct ctr *c, struct mount_plan *plan,
		      const int shared[2], struct kiln_error *err)
{
	cleanup_close int cg = -1;
	int child[3] = { -1, -1, -1 }, rep[2] = { -1, -1 }, st[2] = { -1, -1 };
	struct child_report r;
	struct init_args a;
	pid_t pid;
	int res;

	cg = ctr_open_cgroup(c, err);
	if (cg < 0)
		return cg;
	res = proc_stdio_open(&c->spec, c->init, -1, child, err);
	if (res < 0)
		return res;
	if (pipe2(rep, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0) {
		res = AGENT_FAIL(err, TTRPC_INTERNAL, errno, "pipe");
		goto out;
	}
	a = (struct init_args){
		.plan = plan,
		.spec = &c->spec,
		.child = { child[0], child[1], child[2] },
		.report = rep[1],
		.start = st[0],
		.cgroup = cg,
		.shared = { shared[0], shared[1] },
	};
	/* under ctr_lock: the reaper cannot see the pid before it is ours */
	pthread_mutex_lock(&ctr_lock);
	pid = util_clone_into(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS |
				      CLONE_NEWIPC | SIGCHLD,
			      cg, &a.born);
	if (pid == 0)
		init_child(&a);
	if (pid > 0) {
		c->init->pid = pid;
		c->init->state = PROC_CREATED;
	}
	pthread_mutex_unlock(&ctr_lock);
	if (pid < 0) {
		res = AGENT_FAIL(err, TTRPC_INTERNAL, errno, "clone the init");
		goto out;
	}
	close(rep[1]);
	rep[1] = -1;
	close(st[0]);
	st[0] = -1;
	c->start_fd = steal_fd(&st[1]);
	c->status_fd = steal_fd(&rep[0]);
	res = proc_read_report(c->status_fd, &r);
	if (res == 1 && r.code == 0) {
		res = c->spec.terminal ? take_master(c, pid, r.errnum, err) : 0;
		if (res == 0)
			goto out;
	} else if (res == 1) {
		res = AGENT_FAIL(err, r.code, r.errnum, "%s", r.msg);
	} else {
		res = AGENT_FAIL(err, TTRPC_INTERNAL, 0,
				 "the container's init died while it was set "
				 "up");
	}
	kill(pid, SIGKILL);
	goto out;
out:
	proc_close3(child);
	for (int i = 0; i < 2; i++) {
		if (rep[i] >= 0)
			close(rep[i]);
		if (st[i] >= 0)
			close(st[i]);
	}
	return res;
}

/* Undo a create that failed half-way, or what Remove leaves. */
static void teardown(struct ctr *c)
{
	if (c->init != NULL && c->init->pid > 0) {
		pthread_mutex_lock(&ctr_lock);
		if (c->init->state != PROC_EXITED) {
			kill(c->init->pid, SIGKILL);
			wait_exit_locked(c->init, 5000);
		}
		pthread_mutex_unlock(&ctr_lock);
	}
	stats_oom_unwatch(c);
	mount_rootfs_remove(c);
	for (int i = 0; i < 50; i++) {
		if (rmdir(c->cgroup) == 0 || errno == ENOENT)
			return;
		if (errno != EBUSY)
			break;
		/* killed processes leave the cgroup a moment after exit */
		stats_signal_all(c->cgroup, SIGKILL, NULL);
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}
	log_warn("rmdir %s: %m", c->cgroup);
}

static struct ctr *ctr_alloc(const char *id)
{
	struct ctr *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	snprintf(c->id, sizeof(c->id), "%s", id);
	snprintf(c->dir, sizeof(c->dir), "%s/%s", AGENT_RUN_DIR, id);
	snprintf(c->cgroup, sizeof(c->cgroup), "%s/%s", AGENT_CGROUP_DIR, id);
	pthread_mutex_init(&c->op, NULL);
	c->start_fd = c->status_fd = c->oom_wd = -1;
	c->memory_limit = -1;
	c->refs = 1; /* the table's */
	c->state = CTR_CREATED;
	c->init = proc_new(c, "");
	if (c->init == NULL) {
		free(c);
		return NULL;
	}
	c->procs = c->init;
	c->nprocs = 1;
	return c;
}

/* resolve the init's user inside its root, now that it has pivoted */
static int resolve_init_user(struct ctr *c, struct kiln_error *err)
{
	cleanup_close int root = -1;
	char path[64];

	if (c->spec.username == NULL)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/root", c->init->pid);
	root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "open `%s`",
				  path);
	return proc_spec_resolve_user(&c->spec, root, err);
}

int ctr_create(const Kiln__Agent__V1__CreateContainerRequest *req,
	       struct kiln_error *err)
{
	struct mount_plan plan = { 0 };
	struct ctr *c, *other;
	int res, shared[2] = { -1, -1 };

	if (spec_check_id("container_id", req->container_id, false, err) < 0)
		return -TTRPC_INVALID_ARGUMENT;
	c = ctr_alloc(req->container_id);
	if (c == NULL)
		return AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "container");
	res = proc_spec_from_msg(req->process, &c->spec, err);
	if (res == 0)
		res = mount_plan_init(&plan, c->dir, req, err);
	if (res == 0 && req->rootfs != NULL && req->rootfs->n_layers != 0 &&
	    req->rootfs->upper_device[0] != '\0') {
		c->upper_device = strdup(req->rootfs->upper_device);
		if (c->upper_device == NULL)
			res = AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "rootfs");
	}
	if (res < 0) {
		mount_plan_free(&plan);
		ctr_free(c);
		return res;
	}
	pthread_mutex_lock(&ctr_lock);
	if (find_locked(c->id) != NULL)
		res = AGENT_FAIL(err, TTRPC_ALREADY_EXISTS, 0,
				 "container `%s` already exists", c->id);
	else if (nctrs >= AGENT_CONTAINERS_MAX)
		res = AGENT_FAIL(err, TTRPC_RESOURCE_EXHAUSTED, 0,
				 "more than %d containers",
				 AGENT_CONTAINERS_MAX);
	else if ((other = upper_user_locked(c->upper_device)) != NULL)
		res = AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
				 "rootfs.upper_device `%s` is in use by "
				 "container `%s`",
				 c->upper_device, other->id);
	if (res == 0) {
		/* in the table from here, so a second create of the same id
		 * fails; the op lock keeps other calls out until it is done */
		pthread_mutex_lock(&c->op);
		c->next = ctrs;
		ctrs = c;
		nctrs++;
	}
	pthread_mutex_unlock(&ctr_lock);
	if (res < 0) {
		mount_plan_free(&plan);
		ctr_free(c);
		return res;
	}
	if (mkdir(c->dir, 0700) < 0 && errno != EEXIST)
		res = AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir `%s`",
				 c->dir);
	if (res == 0)
		res = mount_rootfs(c, req->rootfs, err);
	if (res == 0)
		res = mount_files_write(c, &plan, err);
	if (res == 0)
		res = res_apply(c, req->resources, err);
	if (res == 0 && req->share_ns_of != NULL &&
	    req->share_ns_of[0] != '\0') {
		res = open_shared(req->share_ns_of, shared, err);
		plan.hostname = NULL; /* the pod's stays */
	}
	if (res == 0)
		res = spawn_init(c, &plan, shared, err);
	for (int i = 0; i < 2; i++)
		if (shared[i] >= 0)
			close(shared[i]);
	if (res == 0)
		res = resolve_init_user(c, err);
	if (res == 0 && stats_oom_watch(c) < 0)
		log_warn("container %s: no OOM events: %m", c->id);
	mount_plan_free(&plan);
	if (res < 0) {
		teardown(c);
		unlink_ctr(c);
		pthread_mutex_unlock(&c->op);
		ctr_put(c);
		return res;
	}
	pthread_mutex_unlock(&c->op);
	dns_guest_relay(req);
	/*
	 * Debug only, as every line per container: each byte on the
	 * serial console is a VM exit to the VMM (this line and the
	 * removal's cost 163 of them), and the runtime's console is
	 * /dev/null.
	 */
	log_debug("container %s created, init pid %d", c->id, c->init->pid);
	return 0;
}

/* ---- start ------------------------------------------------------------ */

int ctr_start(const char *id, pid_t *pid, struct kiln_error *err)
{
	struct child_start st = { 0 };
	struct child_report r;
	struct ctr *c = ctr_get(id, err);
	int res = 0;

	if (c == NULL)
		return -TTRPC_NOT_FOUND;
	pthread_mutex_lock(&c->op);
	if (c->removed || c->start_fd < 0 || c->state != CTR_CREATED) {
		res = AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
				 "container `%s` is %s", id,
				 c->state == CTR_RUNNING ? "already started"
							 : "not created");
		goto out;
	}
	st.uid = c->spec.uid;
	st.gid = c->spec.gid;
	st.ngroups = c->spec.ngroups;
	memcpy(st.groups, c->spec.groups, sizeof(st.groups));
	if (write(c->start_fd, &st, sizeof(st)) != sizeof(st)) {
		res = AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, errno,
				 "container `%s`: its init is gone", id);
		goto out;
	}
	close(c->start_fd);
	c->start_fd = -1;
	res = proc_read_report(c->status_fd, &r);
	close(c->status_fd);
	c->status_fd = -1;
	if (res == 1) {
		res = AGENT_FAIL(err, r.code ? r.code : TTRPC_INTERNAL,
				 r.errnum, "%s", r.msg);
		goto out;
	}
	res = 0;
	pthread_mutex_lock(&ctr_lock);
	if (c->state == CTR_CREATED)
		c->state = CTR_RUNNING;
	if (c->init->state == PROC_CREATED)
		c->init->state = PROC_RUNNING;
	*pid = c->init->pid;
	pthread_mutex_unlock(&ctr_lock);
	proc_spec_free(&c->spec);
out:
	pthread_mutex_unlock(&c->op);
	ctr_put(c);
	return res;
}

/* ---- remove ----------------------------------------------------------- */

int ctr_remove(const char *id, struct kiln_error *err)
{
	struct ctr *c = ctr_get(id, err);

	if (c == NULL)
		return -TTRPC_NOT_FOUND;
	pthread_mutex_lock(&c->op);
	if (c->removed) {
		pthread_mutex_unlock(&c->op);
		ctr_put(c);
		return AGENT_FAIL(err, TTRPC_NOT_FOUND, 0,
				  "container `%s` not found", id);
	}
	/* a waiting init exits when its start pipe closes */
	if (c->start_fd >= 0) {
		close(c->start_fd);
		c->start_fd = -1;
	}
	stats_signal_all(c->cgroup, SIGKILL, NULL);
	teardown(c);
	unlink_ctr(c);
	pthread_mutex_unlock(&c->op);
	ctr_put(c); /* the table's reference */
	ctr_put(c);
	log_debug("container %s removed", id);
	return 0;
}
