/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln create [--bundle DIR] [--pid-file F] [--console-socket S] ID, and
 * kiln run, which is create + start (+ wait unless --detach).
 *
 * Everything that can be refused is checked before anything is made; the
 * pid process then boots the VM and creates the container in it, and
 * create returns once it says the container is created (or why not).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../oci/container.h"
#include "../oci/state.h"
#include "kiln.h"

struct create_opts {
	const char *bundle, *pid_file, *console_socket, *id;
	bool detach;
};

static int parse(int argc, char **argv, bool run, struct create_opts *o,
		 struct kiln_error *err)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *ignored = NULL;
		bool flag = false;
		int r;

		if ((r = cli_flag(argc, argv, &i, "bundle", &o->bundle, err)) ||
		    (r = cli_flag(argc, argv, &i, "b", &o->bundle, err)) ||
		    (r = cli_flag(argc, argv, &i, "pid-file", &o->pid_file,
				  err)) ||
		    (r = cli_flag(argc, argv, &i, "console-socket",
				  &o->console_socket, err)) ||
		    (r = cli_flag(argc, argv, &i, "preserve-fds", &ignored,
				  err))) {
			if (r < 0)
				return -1;
			continue;
		}
		if (cli_bool(argv, i, "no-pivot", &flag) ||
		    cli_bool(argv, i, "no-new-keyring", &flag))
			continue;
		if (run && (cli_bool(argv, i, "detach", &o->detach) ||
			    cli_bool(argv, i, "d", &o->detach)))
			continue;
		return kiln_error_set(err, 0, "%s: unknown flag %s", argv[0],
				      argv[i]);
	}
	if (i != argc - 1)
		return kiln_error_set(err, 0, "usage: kiln %s [flags] ID",
				      argv[0]);
	o->id = argv[i];
	return 0;
}

/* runc writes the pid file whole, through a temporary file */
static int write_pid_file(const char *path, pid_t pid, struct kiln_error *err)
{
	cleanup_free char *tmp = NULL;
	char buf[16];
	int fd, n = snprintf(buf, sizeof(buf), "%d", pid);

	if (asprintf(&tmp, "%s.kiln-tmp", path) < 0) {
		tmp = NULL;
		return kiln_error_set(err, ENOMEM, "pid file");
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return kiln_error_set(err, errno, "--pid-file `%s`", path);
	if (write(fd, buf, (size_t)n) != n || close(fd) < 0 ||
	    rename(tmp, path) < 0) {
		unlink(tmp);
		return kiln_error_set(err, errno, "--pid-file `%s`", path);
	}
	return 0;
}

/*
 * kiln run passes the signals it gets on to the pid process, which passes
 * them on to the container (runc's signal proxy). Until that exists they
 * are blocked, not lost: killed then, kiln would leave the container to
 * start and run with nobody waiting for it to end and delete it. The pid
 * process is born with them blocked too; it reads them from a signalfd.
 */
static pid_t run_child;
static sigset_t run_forwarded;

static void forward(int sig)
{
	if (run_child > 0)
		kill(run_child, sig);
}

static void forward_block(void)
{
	sigemptyset(&run_forwarded);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD &&
		    s != SIGSEGV && s != SIGBUS && s != SIGILL && s != SIGFPE &&
		    s != SIGWINCH && s != SIGTTIN && s != SIGTTOU &&
		    s != SIGTSTP && s != SIGCONT && s != SIGPIPE)
			sigaddset(&run_forwarded, s);
	sigprocmask(SIG_BLOCK, &run_forwarded, NULL);
}

/* a.spawned: what came meanwhile goes to the pid process at once */
static void forward_start(pid_t pid)
{
	struct sigaction sa = { .sa_handler = forward };

	run_child = pid;
	sigemptyset(&sa.sa_mask);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&run_forwarded, s) == 1)
			sigaction(s, &sa, NULL);
	sigprocmask(SIG_UNBLOCK, &run_forwarded, NULL);
}

/* create; the pid process's pid, or -1 with err and nothing left behind */
static pid_t do_create(const struct kiln_cli *cli, struct create_opts *o,
		       bool foreground, bool start, int *dirfd_out,
		       struct kiln_error *err)
{
	char bundle[PATH_MAX];
	struct oci_spec *spec = NULL;
	struct vm_config conf = { 0 };
	cleanup_free char *rootfs = NULL;
	struct sup_args a = { .cli = cli, .console_fd = -1 };
	struct stat st;
	int dirfd = -1;
	pid_t pid = -1;

	if (oci_id_check(o->id, err) < 0)
		return -1;
	if (realpath(o->bundle != NULL ? o->bundle : ".", bundle) == NULL)
		return kiln_error_set(err, errno, "bundle `%s`",
				      o->bundle != NULL ? o->bundle : ".");
	spec = oci_spec_load(bundle, err);
	if (spec == NULL)
		return -1;
	if (spec->process == NULL) {
		kiln_error_set(err, 0, "process: missing");
		goto out;
	}
	rootfs = rootfs_path(spec, bundle, err);
	if (rootfs == NULL)
		goto out;
	if (stat(rootfs, &st) < 0) {
		kiln_error_set(err, errno, "root.path `%s`", rootfs);
		goto out;
	}
	if (vm_config_load(&conf, err) < 0 ||
	    vm_config_size(&conf, spec, err) < 0 ||
	    vm_config_check(&conf, err) < 0)
		goto out;
	if (spec->process->terminal && o->console_socket == NULL &&
	    !foreground) {
		kiln_error_set(err, 0,
			       "process.terminal needs --console-socket "
			       "when the container runs detached");
		goto out;
	}
	if (spec->process->terminal && o->console_socket != NULL) {
		a.console_fd = stdio_console_connect(o->console_socket, err);
		if (a.console_fd < 0)
			goto out;
	}
	dirfd = oci_state_dir_create(cli->root, o->id, err);
	if (dirfd < 0) {
		if (err->errnum == EEXIST)
			kiln_error_set(err, EEXIST,
				       "container `%s` already exists", o->id);
		goto out;
	}
	a.id = o->id;
	a.bundle = bundle;
	a.rootfs = rootfs;
	a.spec = spec;
	a.conf = &conf;
	a.dirfd = dirfd;
	a.foreground = foreground;
	a.start = start;
	a.spawned = foreground && start ? forward_start : NULL;
	pid = supervisor_spawn(&a, err);
	if (pid > 0 && o->pid_file != NULL &&
	    write_pid_file(o->pid_file, pid, err) < 0) {
		kill(pid, SIGKILL);
		pid = -1;
	}
	if (pid < 0) {
		struct kiln_error ignored = { 0 };

		/* the pid process's cgroup, and what it left there */
		cgroup_remove(dirfd, NULL, false);
		vm_jail_remove(dirfd);
		close(dirfd);
		dirfd = -1;
		oci_state_dir_remove(cli->root, o->id, &ignored);
	}
out:
	if (a.console_fd >= 0)
		close(a.console_fd);
	vm_config_clear(&conf);
	oci_spec_free(spec);
	if (dirfd_out != NULL)
		*dirfd_out = dirfd;
	else if (dirfd >= 0)
		close(dirfd);
	return pid;
}

int verb_create(const struct kiln_cli *cli, int argc, char **argv,
		struct kiln_error *err)
{
	struct create_opts o = { 0 };

	if (parse(argc, argv, false, &o, err) < 0)
		return 1;
	return do_create(cli, &o, false, false, NULL, err) < 0 ? 1 : 0;
}

int verb_run(const struct kiln_cli *cli, int argc, char **argv,
	     struct kiln_error *err)
{
	struct create_opts o = { 0 };
	int status;
	pid_t pid;

	if (parse(argc, argv, true, &o, err) < 0)
		return 1;
	if (!o.detach)
		forward_block();
	/* created and started by the pid process, which says so once */
	pid = do_create(cli, &o, !o.detach, true, NULL, err);
	if (pid < 0)
		return 1;
	if (o.detach)
		return 0;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return kiln_error_set(err, errno, "wait"), 1;
	/* the container is gone: its state with it, as runc run does */
	{
		struct kiln_error ignored = { 0 };

		container_remove(cli, o.id, true, &ignored);
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
