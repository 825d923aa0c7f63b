/* SPDX-License-Identifier: Apache-2.0 */
/* kiln kill [--all] ID [SIGNAL]: to the container's init (or all). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../oci/container.h"
#include "kiln.h"

static const struct {
	const char *name;
	int sig;
} names[] = {
	{ "HUP", SIGHUP },   { "INT", SIGINT },	      { "QUIT", SIGQUIT },
	{ "ILL", SIGILL },   { "TRAP", SIGTRAP },     { "ABRT", SIGABRT },
	{ "IOT", SIGIOT },   { "BUS", SIGBUS },	      { "FPE", SIGFPE },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 },     { "SEGV", SIGSEGV },
	{ "USR2", SIGUSR2 }, { "PIPE", SIGPIPE },     { "ALRM", SIGALRM },
	{ "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD },
	{ "CONT", SIGCONT }, { "STOP", SIGSTOP },     { "TSTP", SIGTSTP },
	{ "TTIN", SIGTTIN }, { "TTOU", SIGTTOU },     { "URG", SIGURG },
	{ "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },     { "VTALRM", SIGVTALRM },
	{ "PROF", SIGPROF }, { "WINCH", SIGWINCH },   { "IO", SIGIO },
	{ "PWR", SIGPWR },   { "SYS", SIGSYS },
};

int cli_signal(const char *s, struct kiln_error *err)
{
	const char *n = strncmp(s, "SIG", 3) == 0 ? s + 3 : s;
	char *end;
	long v;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(n, names[i].name) == 0)
			return names[i].sig;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == 0 && end != s && *end == '\0' && v > 0 && v < NSIG)
		return (int)v;
	return kiln_error_set(err, 0, "unknown signal `%s`", s);
}

int verb_kill(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err)
{
	struct container_state s;
	char req[64], reply[CTL_LINE_MAX];
	cleanup_close int fd = -1;
	enum container_status st;
	bool all = false;
	int i = 1, sig = SIGTERM;
	pid_t pid;
	uint64_t start;

	for (; i < argc && argv[i][0] == '-'; i++)
		if (!cli_bool(argv, i, "all", &all) &&
		    !cli_bool(argv, i, "a", &all))
			return kiln_error_set(err, 0, "kill: unknown flag %s",
					      argv[i]),
			       1;
	if (argc - i < 1 || argc - i > 2)
		return kiln_error_set(err, 0,
				      "usage: kiln kill [--all] ID [SIGNAL]"),
		       1;
	if (argc - i == 2 && (sig = cli_signal(argv[i + 1], err)) < 0)
		return 1;
	fd = container_open(cli, argv[i], &s, err);
	if (fd < 0)
		return 1;
	st = container_status_now(&s);
	pid = s.pid;
	start = s.pid_start;
	container_state_clear(&s);
	if (st != CONTAINER_CREATED && st != CONTAINER_RUNNING &&
	    st != CONTAINER_PAUSED)
		return kiln_error_set(err, 0,
				      "container `%s` is %s: nothing "
				      "to signal",
				      argv[i], container_status_names[st]),
		       1;
	snprintf(req, sizeof(req), "kill %d %d", sig, all ? 1 : 0);
	if (ctl_call(fd, req, reply, sizeof(reply), err) == 0)
		return 0;
	/* a pid process that cannot answer still ends with its VM */
	if (sig == SIGKILL && proc_alive(pid, start) && kill(pid, SIGKILL) == 0)
		return 0;
	return 1;
}
