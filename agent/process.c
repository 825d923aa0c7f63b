/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container process: the OCI-like spec checked and flattened in the
 * agent, its stdio, and the child side that applies the spec and execs.
 *
 * Children are made with a raw clone(2) from a multi-threaded agent: the
 * child has one thread and a copy of every lock as it was, so it must not
 * malloc, use stdio streams or take any lock. Everything it needs is
 * prepared here, before the clone; it reports failures on a CLOEXEC pipe
 * so that Start and Exec fail with the real reason.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "../lib/cleanup.h"

#define DEFAULT_PATH \
	"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* the sum of args and env: Linux's own limit is near this */
#define SPEC_ARGV_BYTES_MAX (1u << 20)

static int cap_last_cap(void)
{
	static int last = -1;
	char buf[16] = "";
	int fd, v;

	if (__atomic_load_n(&last, __ATOMIC_RELAXED) >= 0)
		return last;
	fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	v = 40; /* Linux 6.1's CAP_CHECKPOINT_RESTORE */
	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			v = atoi(buf);
		close(fd);
	}
	if (v < 0 || v > 63)
		v = 40;
	__atomic_store_n(&last, v, __ATOMIC_RELAXED);
	return v;
}

static char **strv_dup(char **in, size_t n, size_t *bytes)
{
	char **out = calloc(n + 1, sizeof(*out));

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(in[i]);
		if (out[i] == NULL) {
			for (size_t j = 0; j < i; j++)
				free(out[j]);
			free(out);
			return NULL;
		}
		*bytes += strlen(in[i]) + 1;
	}
	return out;
}

static void strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void proc_spec_free(struct proc_spec *s)
{
	strv_free(s->argv);
	strv_free(s->envp);
	seccomp_prog_free(&s->seccomp);
	free(s->cwd);
	free(s->username);
	memset(s, 0, sizeof(*s));
}

#define INVALID(...) AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0, __VA_ARGS__)

static int spec_user(const Kiln__Agent__V1__User *u, struct proc_spec *s,
		     struct kiln_error *err)
{
	if (u == NULL)
		return 0;
	s->uid = u->uid;
	s->gid = u->gid;
	if (u->n_additional_gids > SPEC_GROUPS_MAX / 2)
		return INVALID("process.user.additional_gids: more than %d",
			       SPEC_GROUPS_MAX / 2);
	for (size_t i = 0; i < u->n_additional_gids; i++)
		s->groups[s->ngroups++] = u->additional_gids[i];
	if (u->has_umask) {
		if (u->umask > 0777)
			return INVALID("process.user.umask %#o is not a "
				       "permission mask",
				       u->umask);
		s->has_umask = true;
		s->umask = u->umask;
	}
	if (u->username != NULL && u->username[0] != '\0') {
		if (spec_check_str("process.user.username", u->username, 256,
				   false, err) < 0 ||
		    strchr(u->username, ':') != NULL)
			return INVALID("process.user.username is not a user "
				       "name");
		s->username = strdup(u->username);
		if (s->username == NULL)
			return AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "spec");
	}
	return 0;
}

static int spec_rlimits(const Kiln__Agent__V1__Process *m, struct proc_spec *s,
			struct kiln_error *err)
{
	if (m->n_rlimits > AGENT_RLIMITS_MAX)
		return INVALID("process.rlimits: more than %d",
			       AGENT_RLIMITS_MAX);
	for (size_t i = 0; i < m->n_rlimits; i++) {
		const Kiln__Agent__V1__Rlimit *r = m->rlimits[i];
		int res = spec_rlimit_from_name(r->type);

		if (res < 0) {
			if (spec_check_str("rlimit", r->type, 32, false, NULL) <
			    0)
				return INVALID("unknown rlimit type");
			return INVALID("unknown rlimit type `%s`", r->type);
		}
		if (r->soft > r->hard)
			return INVALID("rlimit %s: soft limit %llu is above "
				       "the hard limit %llu",
				       r->type, (unsigned long long)r->soft,
				       (unsigned long long)r->hard);
		s->rlimits[s->nrlimits].resource = res;
		s->rlimits[s->nrlimits].rl.rlim_cur = r->soft;
		s->rlimits[s->nrlimits].rl.rlim_max = r->hard;
		s->nrlimits++;
	}
	return 0;
}

static int spec_caps(const Kiln__Agent__V1__Capabilities *c,
		     struct proc_spec *s, struct kiln_error *err)
{
	uint64_t all = s->cap_last >= 63 ? ~0ull : (2ull << s->cap_last) - 1;

	if (c == NULL) {
		s->cap_bounding = s->cap_effective = s->cap_permitted =
			spec_cap_default_mask() & all;
		return 0;
	}
	if (spec_caps_mask(c->bounding, c->n_bounding, &s->cap_bounding, err) <
		    0 ||
	    spec_caps_mask(c->effective, c->n_effective, &s->cap_effective,
			   err) < 0 ||
	    spec_caps_mask(c->inheritable, c->n_inheritable,
			   &s->cap_inheritable, err) < 0 ||
	    spec_caps_mask(c->permitted, c->n_permitted, &s->cap_permitted,
			   err) < 0 ||
	    spec_caps_mask(c->ambient, c->n_ambient, &s->cap_ambient, err) < 0)
		return -TTRPC_INVALID_ARGUMENT;
	/* names libcap knows but this kernel does not: nothing to grant */
	s->cap_bounding &= all;
	s->cap_effective &= all;
	s->cap_inheritable &= all;
	s->cap_permitted &= all;
	s->cap_ambient &= all;
	return 0;
}

int proc_spec_from_msg(const Kiln__Agent__V1__Process *m, struct proc_spec *s,
		       struct kiln_error *err)
{
	size_t bytes = 0;
	int r;

	memset(s, 0, sizeof(*s));
	s->cap_last = cap_last_cap();
	if (m == NULL)
		return INVALID("process is missing");
	/* client-controlled: every list and string is bounded */
	if (m->n_args == 0)
		return INVALID("process.args is empty");
	if (m->n_args > SPEC_ARGS_MAX || m->n_env > SPEC_ENV_MAX)
		return INVALID("process: more than %d args or env entries",
			       SPEC_ARGS_MAX);
	if (m->args[0][0] == '\0')
		return INVALID("process.args[0] is empty");
	for (size_t i = 0; i < m->n_env; i++) {
		const char *eq = strchr(m->env[i], '=');

		if (eq == NULL || eq == m->env[i])
			return INVALID("process.env[%zu] is not KEY=value", i);
	}
	s->argv = strv_dup(m->args, m->n_args, &bytes);
	s->envp = strv_dup(m->env, m->n_env, &bytes);
	if (s->argv == NULL || s->envp == NULL)
		return AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "spec");
	if (bytes > SPEC_ARGV_BYTES_MAX)
		return INVALID("process: args and env exceed %u bytes",
			       SPEC_ARGV_BYTES_MAX);
	if (m->cwd != NULL && m->cwd[0] != '\0') {
		if (spec_check_path("process.cwd", m->cwd, err) < 0)
			return -TTRPC_INVALID_ARGUMENT;
		s->cwd = strdup(m->cwd);
	} else {
		s->cwd = strdup("/");
	}
	if (s->cwd == NULL)
		return AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "spec");
	s->path = DEFAULT_PATH;
	for (char **e = s->envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			s->path = *e + 5;
	r = spec_user(m->user, s, err);
	if (r < 0)
		return r;
	r = spec_rlimits(m, s, err);
	if (r < 0)
		return r;
	r = spec_caps(m->capabilities, s, err);
	if (r < 0)
		return r;
	s->no_new_privileges = m->no_new_privileges;
	r = seccomp_prog_build(m->seccomp, &s->seccomp, err);
	if (r < 0)
		return r;
	s->terminal = m->terminal;
	s->cols = m->console_width > 0xffff ? 0xffff : m->console_width;
	s->rows = m->console_height > 0xffff ? 0xffff : m->console_height;
	s->want[0] = m->stdin;
	s->want[1] = m->stdout;
	s->want[2] = m->stderr;
	return 0;
}

int proc_spec_resolve_user(struct proc_spec *s, int rootfd,
			   struct kiln_error *err)
{
	cleanup_free char *pw = NULL, *gr = NULL;
	size_t len = 0, glen = 0, n;
	struct kiln_error e2;

	if (s->username == NULL)
		return 0;
	/* guest-controlled: the image's files, read inside its root. A
	 * missing file is an image without users; any other failure (a
	 * FIFO, a directory, a file over the limit) is the container's
	 * doing and fails the call rather than being taken as missing */
	pw = sandbox_read_file(rootfd, "etc/passwd", PROC_USER_FILE_MAX, &len,
			       &e2);
	if (pw == NULL && e2.errnum != ENOENT)
		return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, e2.errnum,
				  "user `%s`: %s", s->username, e2.msg);
	if (pw == NULL &&
	    strspn(s->username, "0123456789") != strlen(s->username))
		return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
				  "unknown user `%s`: no /etc/passwd in the "
				  "container",
				  s->username);
	if (spec_passwd_lookup(pw ? pw : "", len, s->username, &s->uid, &s->gid,
			       err) < 0)
		return -TTRPC_INVALID_ARGUMENT;
	gr = sandbox_read_file(rootfd, "etc/group", PROC_USER_FILE_MAX, &glen,
			       &e2);
	if (gr == NULL && e2.errnum != ENOENT)
		return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, e2.errnum,
				  "user `%s`: %s", s->username, e2.msg);
	if (gr != NULL) {
		n = spec_group_lookup(gr, glen, s->username,
				      s->groups + s->ngroups,
				      SPEC_GROUPS_MAX - s->ngroups);
		s->ngroups += n;
	}
	return 0;
}

void proc_close3(int fd[3])
{
	for (int i = 0; i < 3; i++) {
		if (fd[i] < 0)
			continue;
		for (int j = i + 1; j < 3; j++)
			if (fd[j] == fd[i])
				fd[j] = -1;
		close(fd[i]);
		fd[i] = -1;
	}
}

int proc_pty_open(const char *ptmx, uint16_t rows, uint16_t cols, int *slave)
{
	/* no malloc: the init child calls this */
	int m = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (m < 0)
		return -1;
	return proc_pty_setup(m, rows, cols, slave);
}

int proc_pty_setup(int m, uint16_t rows, uint16_t cols, int *slave)
{
	struct winsize ws = { .ws_row = rows, .ws_col = cols };
	int unlock = 0, sl, e;

	if (ioctl(m, TIOCSPTLCK, &unlock) < 0 ||
	    (rows && cols && ioctl(m, TIOCSWINSZ, &ws) < 0))
		goto fail;
	/* the slave without a path lookup: /dev/pts of the container is
	 * not the agent's */
	sl = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (sl < 0)
		goto fail;
	*slave = sl;
	return m;
fail:
	e = errno;
	close(m);
	errno = e;
	return -1;
}

int proc_stdio_open(const struct proc_spec *s, struct proc *p, int ptmx,
		    int child[3], struct kiln_error *err)
{
	int r;

	child[0] = child[1] = child[2] = -1;
	if (s->terminal) {
		p->terminal = true;
		if (!s->want[0])
			p->stdin_closed = true;
		if (ptmx < 0)
			return 0; /* the init opens it once it has /dev/pts */
		p->pty_master = proc_pty_setup(ptmx, s->rows, s->cols, &r);
		if (p->pty_master < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "set up a pty in the container");
		child[0] = child[1] = child[2] = r;
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		int pfd[2];

		if (!s->want[i]) {
			child[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (child[i] < 0)
				goto fail;
			if (i == 0)
				p->stdin_closed = true;
			continue;
		}
		if (pipe2(pfd, O_CLOEXEC) < 0)
			goto fail;
		/* stdin: the process reads pfd[0]; out/err: it writes pfd[1] */
		child[i] = i == 0 ? pfd[0] : pfd[1];
		p->fd[i] = i == 0 ? pfd[1] : pfd[0];
	}
	return 0;
fail:
	r = errno;
	proc_close3(child);
	proc_close3(p->fd);
	return AGENT_FAIL(err, TTRPC_INTERNAL, r, "stdio pipes");
}

/* ---- the child side: no malloc, no locks ----------------------------- */

int proc_join_cgroup(int cgroup_dir)
{
	int fd = openat(cgroup_dir, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	int r = fd >= 0 && write(fd, "0", 1) == 1 ? 0 : -1;
	int e = errno;

	if (fd >= 0)
		close(fd);
	errno = e;
	return r;
}

void proc_report(int fd, int code, int errnum, const char *fmt, ...)
{
	struct child_report r = { .code = code, .errnum = errnum };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.msg, sizeof(r.msg), fmt, ap);
	va_end(ap);
	/* one write under PIPE_BUF: atomic */
	if (write(fd, &r, sizeof(r)) < 0) {
		/* the agent is gone: nothing to tell */
	}
}

int proc_read_report(int fd, struct child_report *r)
{
	size_t got = 0;

	while (got < sizeof(*r)) {
		ssize_t n = read(fd, (char *)r + got, sizeof(*r) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return got == 0 ? 0 : -1;
		got += n;
	}
	r->msg[sizeof(r->msg) - 1] = '\0';
	return 1;
}

void proc_close_fds_except(const int *keep, size_t n)
{
	int sorted[16], lo = 3;
	size_t m = 0;

	for (size_t i = 0; i < n && m < ARRAY_SIZE(sorted); i++) {
		size_t j = m++;

		if (keep[i] < 3) {
			m--;
			continue;
		}
		while (j > 0 && sorted[j - 1] > keep[i]) {
			sorted[j] = sorted[j - 1];
			j--;
		}
		sorted[j] = keep[i];
	}
	for (size_t i = 0; i < m; i++) {
		if (sorted[i] > lo)
			syscall(SYS_close_range, lo, sorted[i] - 1, 0);
		if (sorted[i] + 1 > lo)
			lo = sorted[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0u, 0);
}

/* while still root with every capability: it takes CAP_SETPCAP */
static int bounding_apply(const struct proc_spec *s, int report)
{
	for (int c = 0; c <= s->cap_last; c++)
		if (!(s->cap_bounding & (1ull << c)) &&
		    prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
			proc_report(report, TTRPC_INTERNAL, errno,
				    "drop capability %d from the bounding set",
				    c);
			return -1;
		}
	return 0;
}

/* after the user change, which kept permitted (PR_SET_KEEPCAPS) */
static int caps_apply(const struct proc_spec *s, int report)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	d[0].effective = (uint32_t)s->cap_effective;
	d[1].effective = (uint32_t)(s->cap_effective >> 32);
	d[0].permitted = (uint32_t)s->cap_permitted;
	d[1].permitted = (uint32_t)(s->cap_permitted >> 32);
	d[0].inheritable = (uint32_t)s->cap_inheritable;
	d[1].inheritable = (uint32_t)(s->cap_inheritable >> 32);
	if (syscall(SYS_capset, &h, d) < 0) {
		proc_report(report, TTRPC_INVALID_ARGUMENT, errno,
			    "set capabilities");
		return -1;
	}
	/* like runc: an ambient capability outside permitted and
	 * inheritable cannot be raised, and is left out */
	for (int c = 0; c <= s->cap_last; c++)
		if (s->cap_ambient & (1ull << c))
			prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
	return 0;
}

static int user_apply(const struct proc_spec *s, int report)
{
	gid_t groups[SPEC_GROUPS_MAX];

	for (size_t i = 0; i < s->ngroups; i++)
		groups[i] = s->groups[i];
	/* raw system calls: glibc's wrappers would signal every thread of
	 * the agent to change its ids too, and wait for threads that do not
	 * exist in this child */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_setgroups, s->ngroups, groups) < 0 ||
	    syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0 ||
	    syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "set user %u:%u and %zu groups", s->uid, s->gid,
			    s->ngroups);
		return -1;
	}
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	return 0;
}

static void exec_lookup(const struct proc_spec *s, int report)
{
	const char *arg0 = s->argv[0], *p = s->path;
	char buf[PATH_MAX];
	int saved = ENOENT;

	if (strchr(arg0, '/') != NULL) {
		execve(arg0, s->argv, s->envp);
		saved = errno;
	} else {
		while (*p != '\0') {
			size_t n = strcspn(p, ":");
			int len = snprintf(buf, sizeof(buf), "%.*s%s%s", (int)n,
					   p, n ? "/" : "", arg0);

			if (len > 0 && (size_t)len < sizeof(buf)) {
				execve(buf, s->argv, s->envp);
				if (errno == EACCES)
					saved = EACCES;
				else if (errno != ENOENT && errno != ENOTDIR) {
					saved = errno;
					break;
				}
			}
			p += n;
			if (*p == ':')
				p++;
		}
	}
	if (saved == ENOENT)
		proc_report(report, TTRPC_INVALID_ARGUMENT, 0,
			    "executable `%s` not found%s", arg0,
			    strchr(arg0, '/') ? "" : " in $PATH");
	else
		proc_report(report, TTRPC_INVALID_ARGUMENT, saved, "exec `%s`",
			    arg0);
}

static int seccomp_apply(const struct proc_spec *s, int report)
{
	if (seccomp_prog_install(&s->seccomp) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "install the seccomp filter");
		return -1;
	}
	return 0;
}

void proc_child_exec(const struct proc_spec *s, const int child[3], int report)
{
	sigset_t none;
	bool early;

	/* the agent blocks SIGCHLD and ignores SIGPIPE: neither is ours */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	setsid();
	if (s->terminal && ioctl(child[0], TIOCSCTTY, 0) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "make the pty the controlling terminal");
		_exit(127);
	}
	for (int i = 0; i < 3; i++)
		if (dup2(child[i], i) < 0) {
			proc_report(report, TTRPC_INTERNAL, errno, "dup2");
			_exit(127);
		}
	for (int i = 0; i < 3; i++) {
		bool seen = child[i] <= 2;

		for (int j = 0; j < i; j++)
			seen = seen || child[j] == child[i];
		if (!seen)
			close(child[i]);
	}
	for (size_t i = 0; i < s->nrlimits; i++)
		if (setrlimit(s->rlimits[i].resource, &s->rlimits[i].rl) < 0) {
			proc_report(report, TTRPC_INVALID_ARGUMENT, errno,
				    "setrlimit %d", s->rlimits[i].resource);
			_exit(127);
		}
	if (chdir(s->cwd) < 0) {
		proc_report(report, TTRPC_INVALID_ARGUMENT, errno,
			    "process.cwd `%s`", s->cwd);
		_exit(127);
	}
	if (s->has_umask)
		umask(s->umask);
	else
		umask(022);
	if (bounding_apply(s, report) < 0)
		_exit(127);
	/*
	 * seccomp(2) takes no_new_privs or CAP_SYS_ADMIN. With neither
	 * after the change of user and capabilities, the filter goes in
	 * now, while we still have every capability (runc does the same),
	 * and must allow what is left below: prctl, setgroups, setresgid,
	 * setresuid, capset, execve, write and exit_group.
	 */
	early = !s->no_new_privileges &&
		!(s->cap_effective & (1ull << CAP_SYS_ADMIN));
	if (early && seccomp_apply(s, report) < 0)
		_exit(127);
	if (user_apply(s, report) < 0 || caps_apply(s, report) < 0)
		_exit(127);
	if (s->no_new_privileges &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "no_new_privileges");
		_exit(127);
	}
	/* last, so that the filter sees as little of ours as it can:
	 * execve (once per $PATH entry), a write on report, exit_group */
	if (!early && seccomp_apply(s, report) < 0)
		_exit(127);
	exec_lookup(s, report);
	_exit(127);
}
