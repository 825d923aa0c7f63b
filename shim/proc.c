/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shim's children: the reaper, and runs of the kiln CLI.
 *
 * The server is a subreaper, so kiln's pid processes (daemonised by
 * `kiln create` and `kiln exec --detach`) become its children. One thread
 * reaps every child: an exit that belongs to a task's process goes to the
 * task (task_claim); any other is recorded for whoever waits for that pid
 * (a kiln command, or a task that learns its pid after the process died).
 * Orphans that nobody ever claims (a template builder's intermediate
 * process) push the oldest record out.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "shim.h"

#define EXITS_MAX 256

struct exit_rec {
	pid_t pid;
	int status;
	uint64_t at_ns;
};

/* under shim_mu */
static struct exit_rec exits[EXITS_MAX];
static size_t n_exits;
static pthread_cond_t exit_cv = PTHREAD_COND_INITIALIZER;

static bool reaping; /* set before any thread: reaper_start */
static char kiln_path[PATH_MAX];
static const char *kiln_root;

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int wait_code(int st)
{
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static void record(pid_t pid, int status, uint64_t at)
{
	if (n_exits == EXITS_MAX) {
		memmove(exits, exits + 1, sizeof(exits[0]) * (EXITS_MAX - 1));
		n_exits--;
	}
	exits[n_exits++] = (struct exit_rec){ pid, status, at };
}

int reaper_take(pid_t pid, int *status, uint64_t *at_ns)
{
	for (size_t i = 0; i < n_exits; i++) {
		if (exits[i].pid != pid)
			continue;
		*status = exits[i].status;
		if (at_ns)
			*at_ns = exits[i].at_ns;
		memmove(exits + i, exits + i + 1,
			sizeof(exits[0]) * (n_exits - i - 1));
		n_exits--;
		return 1;
	}
	return 0;
}

int reaper_wait(pid_t pid)
{
	int status;

	pthread_mutex_lock(&shim_mu);
	while (!reaper_take(pid, &status, NULL))
		pthread_cond_wait(&exit_cv, &shim_mu);
	pthread_mutex_unlock(&shim_mu);
	return status;
}

static void *reaper_main(void *arg)
{
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		int sig, st;
		pid_t pid;

		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			uint64_t at = realtime_ns();
			int code = wait_code(st);

			pthread_mutex_lock(&shim_mu);
			if (!task_claim(pid, code, at))
				record(pid, code, at);
			pthread_cond_broadcast(&exit_cv);
			pthread_mutex_unlock(&shim_mu);
		}
		/* SIGCHLD is blocked everywhere: a child that ended between
		 * the waitpid and here is still pending */
		if (sigwait(&set, &sig) != 0)
			usleep(10000);
	}
	return NULL;
}

int reaper_start(struct kiln_error *err)
{
	pthread_t t;
	int r = pthread_create(&t, NULL, reaper_main, NULL);

	if (r)
		return kiln_error_set(err, r, "start the reaper");
	reaping = true;
	pthread_detach(t);
	return 0;
}

void kiln_init(const char *root)
{
	char self[PATH_MAX - 8];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	kiln_root = root;
	snprintf(kiln_path, sizeof(kiln_path), "kiln");
	if (n <= 0)
		return;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(kiln_path, sizeof(kiln_path), "%s/kiln", self);
	if (access(kiln_path, X_OK) < 0)
		snprintf(kiln_path, sizeof(kiln_path), "kiln");
}

const char *kiln_root_dir(void)
{
	return kiln_root;
}

/*
 * kiln's error: the "msg" of the last JSON line it appended to log after
 * offset from (runc's --log-format json, which kiln writes too).
 */
static void last_error(const char *log, off_t from, char *out, size_t len)
{
	cleanup_close int fd = open(log, O_RDONLY | O_CLOEXEC);
	char buf[8192];
	ssize_t n;
	char *line, *m;

	out[0] = '\0';
	if (fd < 0)
		return;
	if (lseek(fd, from, SEEK_SET) < 0)
		return;
	/* the last 8 KiB it wrote hold its last line */
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size - from > (off_t)sizeof(buf) - 1)
		lseek(fd, st.st_size - (off_t)sizeof(buf) + 1, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	m = strstr(line, "\"msg\":\"");
	if (!m) {
		size_t l = strnlen(line, len - 1);

		memcpy(out, line, l);
		out[l] = '\0';
		return;
	}
	m += 7;
	size_t o = 0;
	for (; *m && *m != '"' && o + 1 < len; m++) {
		if (*m == '\\' && m[1]) {
			m++;
			out[o++] = *m == 'n' ? ' ' : *m == 't' ? ' ' : *m;
		} else {
			out[o++] = *m;
		}
	}
	out[o] = '\0';
}

int kiln_run(const char *log, const char *const *args, int in, int out,
	     int errfd, struct kiln_error *err)
{
	const char *argv[64];
	size_t n = 0;
	struct stat st;
	off_t from = stat(log, &st) == 0 ? st.st_size : 0;
	char msg[KILN_ERROR_MSG_MAX - 64];
	pid_t pid;
	int code;

	argv[n++] = kiln_path;
	argv[n++] = "--root";
	argv[n++] = kiln_root;
	argv[n++] = "--log";
	argv[n++] = log;
	argv[n++] = "--log-format";
	argv[n++] = "json";
	for (size_t i = 0; args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid < 0)
		return kiln_error_set(err, errno, "fork");
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		int fds[3] = { in, out, errfd };
		sigset_t none;

		/* above 2 first, so that dup2 never overwrites a source */
		for (int i = 0; i < 3; i++) {
			int f = fds[i] < 0 ? null : fds[i];

			fds[i] = fcntl(f, F_DUPFD_CLOEXEC, 3);
		}
		for (int i = 0; i < 3; i++)
			dup2(fds[i], i);
		syscall(SYS_close_range, 3, ~0u, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], (char **)argv);
		_exit(127);
	}
	if (reaping) {
		code = reaper_wait(pid);
	} else {
		int ws = 0;

		while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
			;
		code = wait_code(ws);
	}
	if (code == 0)
		return 0;
	last_error(log, from, msg, sizeof(msg));
	if (code == 127 && !msg[0])
		return kiln_error_set(err, 0, "cannot run %s", kiln_path);
	if (!msg[0])
		snprintf(msg, sizeof(msg), "exit status %d", code);
	return kiln_error_set(err, 0, "kiln %s: %s", args[0], msg);
}
