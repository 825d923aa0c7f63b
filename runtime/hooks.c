/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI hooks, run on the host with the container's state on stdin:
 *  - prestart and createRuntime by the pid process during create, in the
 *    runtime's namespaces, once the pid process sits in the container's
 *    network namespace and before the VM boots (so that what a hook sets
 *    up there, docker's network or a CNI plugin's, is in place for it);
 *  - createContainer just after (the container's namespaces are the
 *    guest's: a host binary cannot run there);
 *  - startContainer and poststart by the pid process around start;
 *  - poststop by delete.
 * A failing hook before start fails that step; poststart and poststop
 * failures are logged, as the spec says.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "kiln.h"

static void hook_child(const struct oci_hook *h, int in, int host_netns)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (host_netns >= 0 && setns(host_netns, CLONE_NEWNET) < 0)
		_exit(126);
	if (dup2(in, 0) < 0)
		_exit(126);
	execve(h->path, h->n_args ? h->args : (char *[]){ h->path, NULL },
	       h->env != NULL ? h->env : (char *[]){ NULL });
	dprintf(2, "kiln: hook `%s`: %s\n", h->path, strerror(errno));
	_exit(127);
}

static int hook_run(const struct oci_hook *h, const char *kind, size_t i,
		    const char *state, int host_netns, struct kiln_error *err)
{
	int fds[2], status = 0;
	uint64_t deadline =
		h->has_timeout
			? util_now_ns() + (uint64_t)h->timeout * 1000000000ull
			: 0;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return kiln_error_set(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return kiln_error_set(err, errno, "fork");
	}
	if (pid == 0)
		hook_child(h, fds[0], host_netns);
	close(fds[0]);
	/* a hook that does not read its stdin still runs */
	util_write_all(fds[1], state, strlen(state));
	close(fds[1]);
	for (;;) {
		pid_t r = waitpid(pid, &status, deadline ? WNOHANG : 0);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return kiln_error_set(err, errno, "wait for hook");
		if (deadline && util_now_ns() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return kiln_error_set(err, ETIMEDOUT,
					      "hooks.%s[%zu] `%s`: timed out "
					      "after %lld s",
					      kind, i, h->path,
					      (long long)h->timeout);
		}
		if (deadline)
			usleep(10000);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	return kiln_error_set(
		err, 0, "hooks.%s[%zu] `%s` failed: %s %d", kind, i, h->path,
		WIFEXITED(status) ? "exit status" : "signal",
		WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

int hooks_run(const struct oci_spec *spec, enum oci_hook_kind kind,
	      const char *state, int host_netns, struct kiln_error *err)
{
	for (size_t i = 0; i < spec->n_hooks[kind]; i++) {
		int res = hook_run(&spec->hooks[kind][i], oci_hook_names[kind],
				   i, state, host_netns, err);

		if (res < 0 &&
		    (kind == OCI_HOOK_POSTSTART || kind == OCI_HOOK_POSTSTOP)) {
			log_warn("%s", err->msg);
			memset(err, 0, sizeof(*err));
			continue;
		}
		if (res < 0)
			return -1;
	}
	return 0;
}
