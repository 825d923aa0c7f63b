/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ExecProcess: a process in a running container. A helper joins the
 * init's cgroup and its ipc, uts, pid and mnt namespaces, then forks with
 * CLONE_PARENT so that the process, the first one inside the pid
 * namespace, is the agent's own child; it waits until the agent has its
 * pid in the table, applies its spec and execs.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/major.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"
#include "mount.h"

struct exec_args {
	struct proc_spec *spec;
	int child[3];
	int report, pid_w, go, cgroup; /* cgroup: its folder */
	int ns[5];
	bool born; /* in it already (util_clone_into) */
};

static const char *const ns_names[5] = { "ipc", "uts", "pid", "mnt", "cgroup" };

__attribute__((noreturn)) static void exec_child(struct exec_args *a)
{
	int keep[] = { a->report, a->pid_w,    a->go,	    a->cgroup,
		       a->ns[0],  a->ns[1],    a->ns[2],    a->ns[3],
		       a->ns[4],  a->child[0], a->child[1], a->child[2] };
	pid_t pid;

	proc_close_fds_except(keep, ARRAY_SIZE(keep));
	if (!a->born && proc_join_cgroup(a->cgroup) < 0) {
		proc_report(a->report, TTRPC_INTERNAL, errno,
			    "join the container's cgroup");
		_exit(127);
	}
	for (int i = 0; i < 5; i++)
		if (setns(a->ns[i], 0) < 0) {
			proc_report(a->report, TTRPC_FAILED_PRECONDITION, errno,
				    "enter the container's %s namespace",
				    ns_names[i]);
			_exit(127);
		}
	/* a pid namespace takes effect for children only; CLONE_PARENT makes
	 * that child the agent's, so the agent reaps it */
	pid = util_clone(CLONE_PARENT | SIGCHLD);
	if (pid < 0) {
		proc_report(a->report, TTRPC_INTERNAL, errno,
			    "fork in the container");
		_exit(127);
	}
	if (pid > 0) {
		if (write(a->pid_w, &pid, sizeof(pid)) < 0)
			kill(pid, SIGKILL);
		_exit(0);
	}
	close(a->pid_w);
	close(a->cgroup);
	for (int i = 0; i < 5; i++)
		close(a->ns[i]);
	/* wait until the agent has the pid in its table */
	for (char b; read(a->go, &b, 1) != 0;)
		if (errno != EINTR)
			break;
	close(a->go);
	proc_child_exec(a->spec, a->child, a->report);
}

static int open_ns(pid_t init, int ns[5], struct kiln_error *err)
{
	char path[64];

	for (int i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", init,
			 ns_names[i]);
		ns[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (ns[i] < 0)
			return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, errno,
					  "open `%s`", path);
	}
	return 0;
}

/*
 * A pty master from the container's own devpts. Its /dev/pts is the
 * container's to change (a privileged one can unmount it and leave a
 * FIFO, a link out of its root or another device in its place): only
 * the ptmx device itself, found inside its root, is opened.
 */
static int open_ptmx(pid_t init, struct kiln_error *err)
{
	cleanup_close int root = -1;
	char path[64];
	int m;

	snprintf(path, sizeof(path), "/proc/%d/root", init);
	root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, errno,
				  "open `%s`", path);
	m = mount_open_in_root(root, "dev/pts/ptmx", O_RDWR, S_IFCHR,
			       makedev(TTYAUX_MAJOR, 2), NULL, err);
	if (m < 0) {
		kiln_error_wrap(err, "a terminal for the process");
		return -TTRPC_FAILED_PRECONDITION;
	}
	return m;
}

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/*
 * Fork, join and exec. p is linked into c once its pid is known; until
 * then it is ours, and freed here on failure.
 */
static int spawn_exec(struct ctr *c, struct proc *p, struct proc_spec *s,
		      pid_t init, struct kiln_error *err)
{
	int ns[5] = { -1, -1, -1, -1, -1 }, child[3] = { -1, -1, -1 };
	int rep[2] = { -1, -1 }, pp[2] = { -1, -1 }, go[2] = { -1, -1 };
	cleanup_close int cg = -1, ptmx = -1;
	struct child_report r;
	struct exec_args a;
	pid_t mid, pid = -1;
	int res;

	bool linked = false;

	cg = ctr_open_cgroup(c, err);
	if (cg < 0) {
		proc_free(p);
		return cg;
	}
	res = open_ns(init, ns, err);
	if (res == 0 && s->terminal) {
		res = open_ptmx(init, err);
		if (res >= 0) {
			ptmx = res;
			res = 0;
		}
	}
	if (res == 0) {
		res = proc_stdio_open(s, p, ptmx, child, err);
		ptmx = -1; /* taken over */
	}
	if (res == 0 && (pipe2(rep, O_CLOEXEC) < 0 ||
			 pipe2(pp, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0))
		res = AGENT_FAIL(err, TTRPC_INTERNAL, errno, "pipe");
	if (res < 0)
		goto out;
	a = (struct exec_args){
		s,  { child[0], child[1], child[2] },	   rep[1], pp[1], go[0],
		cg, { ns[0], ns[1], ns[2], ns[3], ns[4] }, false
	};
	mid = util_clone_into(SIGCHLD, cg, &a.born);
	if (mid == 0)
		exec_child(&a);
	if (mid < 0) {
		res = AGENT_FAIL(err, TTRPC_INTERNAL, errno, "fork");
		goto out;
	}
	close_all(&rep[1], 1);
	close_all(&pp[1], 1);
	close_all(&go[0], 1);
	proc_close3(child);
	if (read(pp[0], &pid, sizeof(pid)) != sizeof(pid) || pid <= 0) {
		pid = -1;
		if (proc_read_report(rep[0], &r) == 1)
			res = AGENT_FAIL(err, r.code, r.errnum, "%s", r.msg);
		else
			res = AGENT_FAIL(err, TTRPC_INTERNAL, 0,
					 "exec: the child died while it joined "
					 "the container");
		goto out;
	}
	pthread_mutex_lock(&ctr_lock);
	p->pid = pid;
	p->state = PROC_RUNNING;
	p->next = c->init->next;
	c->init->next = p;
	c->nprocs++;
	linked = true;
	pthread_mutex_unlock(&ctr_lock);
	close_all(&go[1], 1);
	res = proc_read_report(rep[0], &r);
	if (res == 1) {
		/* it exits 127; the exec_id may be used again */
		res = AGENT_FAIL(err, r.code ? r.code : TTRPC_INTERNAL,
				 r.errnum, "%s", r.msg);
		pthread_mutex_lock(&ctr_lock);
		p->exec_id[0] = '\0';
		p->pid = -1;
		pthread_mutex_unlock(&ctr_lock);
	} else {
		res = 0;
	}
out:
	close_all(ns, 5);
	close_all(rep, 2);
	close_all(pp, 2);
	close_all(go, 2);
	proc_close3(child);
	if (!linked)
		proc_free(p);
	return res;
}

int ctr_exec(const Kiln__Agent__V1__ExecProcessRequest *req, pid_t *pid,
	     struct kiln_error *err)
{
	struct proc_spec spec = { 0 };
	cleanup_close int root = -1;
	struct proc *p;
	struct ctr *c;
	char path[64];
	pid_t init = -1;
	int res = 0;

	if (spec_check_id("exec_id", req->exec_id, false, err) < 0)
		return -TTRPC_INVALID_ARGUMENT;
	c = ctr_get(req->container_id, err);
	if (c == NULL)
		return -TTRPC_NOT_FOUND;
	pthread_mutex_lock(&c->op);
	res = proc_spec_from_msg(req->process, &spec, err);
	if (res < 0)
		goto out;
	pthread_mutex_lock(&ctr_lock);
	if (c->removed || c->state != CTR_RUNNING ||
	    c->init->state != PROC_RUNNING)
		res = AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
				 "container `%s` is not running", c->id);
	else if (c->nprocs >= AGENT_EXECS_MAX)
		res = AGENT_FAIL(err, TTRPC_RESOURCE_EXHAUSTED, 0,
				 "more than %d processes", AGENT_EXECS_MAX);
	for (struct proc *q = c->procs; q && res == 0; q = q->next)
		if (strcmp(q->exec_id, req->exec_id) == 0)
			res = AGENT_FAIL(err, TTRPC_ALREADY_EXISTS, 0,
					 "exec `%s` already exists in `%s`",
					 req->exec_id, c->id);
	init = c->init->pid;
	pthread_mutex_unlock(&ctr_lock);
	if (res < 0)
		goto out;
	if (spec.username != NULL) {
		snprintf(path, sizeof(path), "/proc/%d/root", init);
		root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (root < 0) {
			res = AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, errno,
					 "open `%s`", path);
			goto out;
		}
		res = proc_spec_resolve_user(&spec, root, err);
		if (res < 0)
			goto out;
	}
	p = proc_new(c, req->exec_id);
	if (p == NULL) {
		res = AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "process");
		goto out;
	}
	res = spawn_exec(c, p, &spec, init, err);
	if (res == 0)
		*pid = p->pid;
out:
	proc_spec_free(&spec);
	pthread_mutex_unlock(&c->op);
	ctr_put(c);
	return res;
}
