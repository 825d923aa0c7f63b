/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln exec [flags] ID [COMMAND [ARG...]]: another process in a running
 * container's guest. Like runc, the process starts from the container's
 * own process (env, cwd, user, capabilities) with what the flags or
 * --process change.
 *
 * The caller waits on a host process of ours as on the exec'd process:
 * kiln exec itself, or with --detach a child that --pid-file names. It
 * relays the process's stdio, forwards the signals it gets and exits with
 * the process's status. Threads as in supervisor.c: main owns the agent
 * connection and the signals, a wait thread its own connection, the
 * stdio relays their fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/agent_client.h"
#include "../lib/cleanup.h"
#include "../lib/file.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../oci/container.h"
#include "kiln.h"
#include "seccomp.h"

#define EXEC_ENV_MAX 256
#define CALL_TIMEOUT (30ull * 1000000000)
#define LOST_EXIT    137

struct exec_opts {
	const char *process, *pid_file, *console_socket, *cwd, *user;
	const char *apparmor, *label, *preserve_fds;
	const char *env[EXEC_ENV_MAX];
	size_t n_env;
	bool tty, detach;
	int first_arg; /* argv index of COMMAND, or argc */
	const char *id;
};

struct exec_run {
	char exec_id[AGENT_ID_MAX + 1];
	char guest_id[AGENT_ID_MAX + 1]; /* the container's, in its guest */
	struct agent_client *agent;
	struct stdio_set io;
	int exit_pipe[2];
};

static int parse(int argc, char **argv, struct exec_opts *o,
		 struct kiln_error *err)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *v = NULL;
		bool flag = false;
		int r;

		if (strcmp(argv[i], "--") == 0)
			break;
		if ((r = cli_flag(argc, argv, &i, "process", &o->process,
				  err)) ||
		    (r = cli_flag(argc, argv, &i, "p", &o->process, err)) ||
		    (r = cli_flag(argc, argv, &i, "pid-file", &o->pid_file,
				  err)) ||
		    (r = cli_flag(argc, argv, &i, "console-socket",
				  &o->console_socket, err)) ||
		    (r = cli_flag(argc, argv, &i, "cwd", &o->cwd, err)) ||
		    (r = cli_flag(argc, argv, &i, "user", &o->user, err)) ||
		    (r = cli_flag(argc, argv, &i, "u", &o->user, err)) ||
		    (r = cli_flag(argc, argv, &i, "preserve-fds",
				  &o->preserve_fds, err)) ||
		    (r = cli_flag(argc, argv, &i, "process-label", &o->label,
				  err)) ||
		    (r = cli_flag(argc, argv, &i, "apparmor", &o->apparmor,
				  err))) {
			if (r < 0)
				return -1;
			continue;
		}
		if ((r = cli_flag(argc, argv, &i, "env", &v, err)) ||
		    (r = cli_flag(argc, argv, &i, "e", &v, err))) {
			if (r < 0)
				return -1;
			if (o->n_env == EXEC_ENV_MAX)
				return kiln_error_set(err, 0,
						      "more than %d --env",
						      EXEC_ENV_MAX);
			o->env[o->n_env++] = v;
			continue;
		}
		if (cli_bool(argv, i, "tty", &o->tty) ||
		    cli_bool(argv, i, "t", &o->tty) ||
		    cli_bool(argv, i, "detach", &o->detach) ||
		    cli_bool(argv, i, "d", &o->detach) ||
		    cli_bool(argv, i, "no-new-privs", &flag))
			continue;
		return kiln_error_set(err, 0, "exec: unknown flag %s", argv[i]);
	}
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (i >= argc)
		return kiln_error_set(err, 0,
				      "usage: kiln exec [flags] ID [COMMAND]");
	o->id = argv[i];
	o->first_arg = i + 1;
	/* a host file descriptor cannot cross into the guest */
	if (o->preserve_fds != NULL && strcmp(o->preserve_fds, "0") != 0)
		return kiln_error_set(err, 0,
				      "exec --preserve-fds %s: file "
				      "descriptors cannot be passed into the "
				      "container's VM",
				      o->preserve_fds);
	if (o->process == NULL && o->first_arg >= argc)
		return kiln_error_set(err, 0,
				      "exec: a COMMAND or --process is needed");
	return 0;
}

/*
 * The process to run: --process (*owned, the caller frees it), or a
 * shallow copy in *local of the container's (*spec keeps what it points
 * into) with the flags' changes; *env the vector with --env added.
 */
static struct oci_process *
build(const struct exec_opts *o, int argc, char **argv, const char *bundle,
      struct oci_spec **spec, struct oci_process **owned,
      struct oci_process *local, char ***env, struct kiln_error *err)
{
	struct oci_process *p = local;

	if (o->process != NULL) {
		cleanup_free char *text = NULL;
		size_t len = 0;

		text = file_read(o->process, OCI_CONFIG_MAX, &len, err);
		if (text == NULL)
			return NULL;
		*owned = oci_process_parse(text, len, err);
		if (*owned == NULL)
			kiln_error_wrap(err, "--process `%s`", o->process);
		return *owned;
	}
	*spec = oci_spec_load(bundle, err);
	if (*spec == NULL)
		return NULL;
	if ((*spec)->process == NULL) {
		kiln_error_set(err, 0, "process: missing");
		return NULL;
	}
	*p = *(*spec)->process;
	p->args = argv + o->first_arg;
	p->n_args = (size_t)(argc - o->first_arg);
	p->terminal = o->tty;
	p->has_console_size = false;
	if (o->cwd != NULL)
		p->cwd = (char *)o->cwd;
	if (o->user != NULL) {
		unsigned int uid, gid = 0;

		if (sscanf(o->user, "%u:%u", &uid, &gid) < 1) {
			kiln_error_set(err, 0, "--user `%s`: want UID[:GID]",
				       o->user);
			return NULL;
		}
		p->user.uid = uid;
		p->user.gid = gid;
		p->user.n_additional_gids = 0;
	}
	if (o->apparmor != NULL)
		p->apparmor_profile = (char *)o->apparmor;
	if (o->label != NULL)
		p->selinux_label = (char *)o->label;
	if (o->n_env > 0) {
		*env = calloc(p->n_env + o->n_env + 1, sizeof(**env));
		if (*env == NULL) {
			kiln_error_set(err, ENOMEM, "env");
			return NULL;
		}
		memcpy(*env, p->env, p->n_env * sizeof(**env));
		memcpy(*env + p->n_env, o->env, o->n_env * sizeof(**env));
		p->env = *env;
		p->n_env += o->n_env;
	}
	return p;
}

static void *wait_main(void *arg)
{
	struct exec_run *x = arg;
	struct kiln_error err = { 0 };
	struct agent_client *c;
	struct agent_exit ex = { 0 };
	int32_t status = LOST_EXIT;

	c = agent_client_connect(VM_VSOCK, agent_deadline_ms(30000),
				 CALL_TIMEOUT, &err);
	if (c != NULL && agent_wait(c, x->guest_id, x->exec_id, &ex, &err) == 0)
		status = ex.status;
	else
		log_error("wait for exec %s: %s", x->exec_id, err.msg);
	agent_client_free(c);
	util_write_all(x->exit_pipe[1], &status, sizeof(status));
	return NULL;
}

/* Start the process; -1 with err when it did not start. */
static int exec_start(struct exec_run *x, const struct oci_process *proc,
		      const struct oci_seccomp *seccomp, int console_fd,
		      struct kiln_error *err)
{
	Kiln__Agent__V1__Process ap;
	struct agent_request r = { 0 };
	uint32_t pid = 0;
	pthread_t t;
	int res, e;

	if (stdio_init(&x->io, err) < 0 || pipe2(x->exit_pipe, O_CLOEXEC) < 0)
		return kiln_error_set(err, errno, "pipe");
	if (console_fd >= 0 && stdio_pty_open(&x->io, console_fd, err) < 0)
		return -1;
	x->agent = agent_client_connect(VM_VSOCK, agent_deadline_ms(10000),
					CALL_TIMEOUT, err);
	if (x->agent == NULL)
		return kiln_error_wrap(err, "reach the container's guest");
	res = request_process(&r, proc, &ap, err);
	stdio_request(&x->io, proc->terminal, &ap);
	/* runc gives an exec the container's seccomp profile */
	if (res == 0)
		res = request_seccomp(&r, seccomp, &ap, err);
	if (res == 0) {
		stdio_preconnect(&x->io, x->agent);
		res = agent_exec(x->agent, x->guest_id, x->exec_id, &ap, &pid,
				 err);
	}
	agent_request_free(&r);
	if (res < 0)
		return -1;
	if (stdio_attach(&x->io, x->agent, x->guest_id, x->exec_id, err) < 0)
		return -1;
	stdio_resize(&x->io, x->agent, x->guest_id, x->exec_id);
	e = pthread_create(&t, NULL, wait_main, x);
	if (e != 0)
		return kiln_error_set(err, e, "wait thread");
	pthread_detach(t);
	return 0;
}

/* Until the process exits: forward signals, follow resizes. */
static int exec_loop(struct exec_run *x, int sig_fd)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = x->exit_pipe[0], .events = POLLIN },
			{ .fd = sig_fd, .events = POLLIN },
		};
		struct signalfd_siginfo si;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return LOST_EXIT;
		if (p[0].revents) {
			int32_t status = LOST_EXIT;

			if (read(x->exit_pipe[0], &status, sizeof(status)) !=
			    sizeof(status))
				status = LOST_EXIT;
			stdio_drain(&x->io, 5000);
			return status & 0xff;
		}
		while (p[1].revents &&
		       read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
			struct kiln_error err = { 0 };

			if (si.ssi_signo == SIGWINCH)
				stdio_resize(&x->io, x->agent, x->guest_id,
					     x->exec_id);
			else if (si.ssi_signo != SIGCHLD &&
				 agent_signal(x->agent, x->guest_id, x->exec_id,
					      si.ssi_signo, false, &err) < 0)
				log_warn("forward signal %u: %s", si.ssi_signo,
					 err.msg);
		}
	}
}

int verb_exec(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err)
{
	struct exec_opts o = { 0 };
	struct exec_run x = { .exit_pipe = { -1, -1 } };
	struct container_state s;
	struct oci_spec *spec = NULL;
	struct oci_process *proc = NULL, *owned = NULL, local;
	const struct oci_seccomp *seccomp = NULL;
	cleanup_free char **env = NULL;
	cleanup_close int fd = -1;
	cleanup_close int console_fd = -1;
	int ready[2] = { -1, -1 }, sig_fd, status = 1;
	sigset_t all;
	pid_t child = 0;

	if (parse(argc, argv, &o, err) < 0)
		return 1;
	fd = container_open(cli, o.id, &s, err);
	if (fd < 0)
		return 1;
	if (container_status_now(&s) != CONTAINER_RUNNING) {
		kiln_error_set(
			err, 0, "cannot exec in container `%s`: it is %s", o.id,
			container_status_names[container_status_now(&s)]);
		container_state_clear(&s);
		return 1;
	}
	snprintf(x.guest_id, sizeof(x.guest_id), "%s", container_guest_id(&s));
	proc = build(&o, argc, argv, s.bundle, &spec, &owned, &local, &env,
		     err);
	if (proc != NULL && spec == NULL)
		spec = oci_spec_load(s.bundle, err);
	container_state_clear(&s);
	if (proc == NULL || spec == NULL)
		goto out;
	/*
	 * A profile or label asked for the exec'd process: it runs in the
	 * VM, inside kiln-vmm's confinement (the container's); refused
	 * where the host has no such module, as for create.
	 */
	{
		struct confine c;

		if (confine_plan(proc, &c, err) < 0)
			goto out;
	}
	seccomp = spec->linux_ != NULL ? spec->linux_->seccomp : NULL;
	if (proc->terminal && o.console_socket == NULL && o.detach) {
		kiln_error_set(err, 0,
			       "exec --tty --detach needs "
			       "--console-socket");
		goto out;
	}
	if (proc->terminal && o.console_socket != NULL &&
	    (console_fd = stdio_console_connect(o.console_socket, err)) < 0)
		goto out;
	snprintf(x.exec_id, sizeof(x.exec_id), "exec-%d-%llx", getpid(),
		 (unsigned long long)(util_now_ns() & 0xffffffffffull));
	if (fchdir(fd) < 0) {
		kiln_error_set(err, errno, "chdir to the state dir");
		goto out;
	}
	if (o.detach) {
		if (pipe2(ready, O_CLOEXEC) < 0) {
			kiln_error_set(err, errno, "pipe");
			goto out;
		}
		child = fork();
		if (child < 0) {
			kiln_error_set(err, errno, "fork");
			goto out;
		}
		if (child > 0) {
			char line[KILN_ERROR_MSG_MAX + 8] = "";
			ssize_t n;

			close(ready[1]);
			n = read(ready[0], line, sizeof(line) - 1);
			close(ready[0]);
			line[n > 0 ? n : 0] = '\0';
			if (strcmp(line, "ok") != 0) {
				kiln_error_set(err, 0, "%s",
					       n > 0 ? line
						     : "the exec's pid process "
						       "ended");
				waitpid(child, NULL, 0);
				goto out;
			}
			status = 0;
			if (o.pid_file != NULL) {
				FILE *f = fopen(o.pid_file, "we");

				if (f == NULL || fprintf(f, "%d", child) < 0 ||
				    fclose(f) != 0) {
					kiln_error_set(err, errno,
						       "--pid-file `%s`",
						       o.pid_file);
					kill(child, SIGKILL);
					status = 1;
				}
			}
			goto out;
		}
		close(ready[0]);
		setsid();
	}
	signal(SIGPIPE, SIG_IGN);
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGPIPE);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sig_fd = signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0 ||
	    exec_start(&x, proc, seccomp, steal_fd(&console_fd), err) < 0) {
		if (sig_fd < 0)
			kiln_error_set(err, errno, "signalfd");
		if (o.detach) {
			dprintf(ready[1], "%s", err->msg);
			_exit(1);
		}
		goto out;
	}
	if (o.detach) {
		util_write_all(ready[1], "ok", 2);
		close(ready[1]);
	}
	status = exec_loop(&x, sig_fd);
	if (o.detach)
		_exit(status);
out:
	oci_spec_free(spec);
	oci_process_free(owned);
	return status;
}
