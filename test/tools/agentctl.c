/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln-agentctl: drive a guest's kiln-agent by hand, from tests and
 * benchmarks, through lib/agent_client.c alone.
 *
 *   kiln-agentctl --uds PATH [--timeout S] CMD [OPTIONS] [-- ARGS...]
 *
 * `run` and `exec` relay this program's stdin/stdout/stderr to the process
 * and exit with its status (128+N when killed by signal N); other failures
 * exit 1 (2 for usage) with one line on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/agent_client.h"
#include "../../lib/cleanup.h"
#include "../../lib/error.h"
#include "../../lib/util.h"
#include "agentctl.h"

#define DEFAULT_TIMEOUT_SEC 30

struct ctl {
	const char *uds;
	uint64_t timeout_ns;
	struct agent_client *c;
	struct kiln_error err;
};

static struct termios saved_tio;
static bool raw_mode;

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " --uds PATH [--timeout S] CMD [OPTIONS]\n"
		   "  wait-ready              wait until the agent answers "
		   "Check\n"
		   "  check                   version and guest times\n"
		   "  run [--id ID] [--rootfs DEV --fstype ext4|erofs [--ro]]\n"
		   "      [--read-only] [--tty [--rows R --cols C]]\n"
		   "      [--user UID:GID|NAME] [--groups G,G] [--cwd DIR]\n"
		   "      [--env K=V]... [--rlimit NAME=SOFT:HARD]... [--cap "
		   "CAP]...\n"
		   "      [--no-caps] [--no-new-privs] [--hostname H] "
		   "[--no-stdin]\n"
		   "      [--seccomp NAME[,NAME...]:ERRNO] (those fail "
		   "with ERRNO)\n"
		   "      [--mount TYPE:SOURCE:DEST[:OPT,OPT...]]...\n"
		   "      [--layer DEV[:FSTYPE]]... [--upper DEV] (top layer "
		   "first)\n"
		   "      [--file SRC:DEST[:ro]]... [--mask P]... [--ro-path "
		   "P]...\n"
		   "      [--detach] [--keep] -- ARGS...\n"
		   "  exec --id ID [--exec-id E] [process options] -- ARGS...\n"
		   "  kill --id ID [--exec-id E] [--all] SIGNAL\n"
		   "  wait --id ID [--exec-id E]   exits with the process's "
		   "status\n"
		   "  ps --id ID | stats --id ID | remove --id ID\n"
		   "  resize --id ID [--exec-id E] --rows R --cols C\n"
		   "  close-stdin --id ID [--exec-id E]\n"
		   "  set-time [--sec S [--nsec N]] | reseed [--bytes N] | "
		   "shutdown\n"
		   "  oom-wait                     the next container with an "
		   "OOM kill\n"
		   "  bench-exec --id ID [--count N] -- ARGS   "
		   "ExecProcess+Wait "
		   "round trips\n");
}

/* Every command may race the guest's boot: wait for the agent. */
static int ctl_connect(struct ctl *ctl)
{
	ctl->c = agent_client_connect(ctl->uds, util_now_ns() + ctl->timeout_ns,
				      ctl->timeout_ns, &ctl->err);
	return ctl->c != NULL ? 0 : -1;
}

/* ---- relaying stdio ---------------------------------------------------- */

struct pump {
	int from, to;
	bool to_stream; /* half-close `to` at EOF of `from` */
	pthread_t thread;
	bool started;
};

static void *pump_run(void *arg)
{
	struct pump *p = arg;
	char buf[65536];

	for (;;) {
		ssize_t n = read(p->from, buf, sizeof(buf)), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		while (off < n) {
			ssize_t w = send(p->to, buf + off, (size_t)(n - off),
					 MSG_NOSIGNAL);

			if (w < 0 && errno == ENOTSOCK)
				w = write(p->to, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				goto out;
			off += w;
		}
	}
out:
	if (p->to_stream)
		shutdown(p->to, SHUT_WR);
	return NULL;
}

static int pump_start(struct pump *p, int from, int to, bool to_stream,
		      struct kiln_error *err)
{
	int r;

	p->from = from;
	p->to = to;
	p->to_stream = to_stream;
	r = pthread_create(&p->thread, NULL, pump_run, p);
	if (r != 0)
		return kiln_error_set(err, r, "pthread_create");
	p->started = true;
	return 0;
}

static void pump_join(struct pump *p)
{
	if (p->started)
		pthread_join(p->thread, NULL);
	p->started = false;
}

static void restore_tty(void)
{
	if (raw_mode)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
}

/* Only a real local terminal goes raw: the tests drive --tty from pipes. */
static void make_raw(void)
{
	struct termios tio;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return;
	tio = saved_tio;
	cfmakeraw(&tio);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) == 0) {
		raw_mode = true;
		atexit(restore_tty);
	}
}

struct winch {
	struct ctl *ctl;
	const char *id, *exec_id;
	sigset_t set;
};

static void *winch_run(void *arg)
{
	struct winch *w = arg;
	struct kiln_error err;
	struct winsize ws;
	int sig;

	while (sigwait(&w->set, &sig) == 0) {
		if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 &&
		    agent_resize(w->ctl->c, w->id, w->exec_id, ws.ws_col,
				 ws.ws_row, &err) < 0)
			kiln_error_print(&err, PROG);
	}
	return NULL;
}

/* SIGWINCH relay, for a local terminal only (see make_raw). */
static void winch_start(struct ctl *ctl, const char *id, const char *exec_id)
{
	static struct winch w;
	pthread_t t;

	if (!raw_mode)
		return;
	w = (struct winch){ .ctl = ctl, .id = id, .exec_id = exec_id };
	sigemptyset(&w.set);
	sigaddset(&w.set, SIGWINCH);
	pthread_sigmask(SIG_BLOCK, &w.set, NULL);
	if (pthread_create(&t, NULL, winch_run, &w) == 0)
		pthread_detach(t);
}

/*
 * Attach the process's streams, start it (start() may be NULL when it
 * runs already), relay until it exits and its output has drained.
 * Returns its status, or -1 with ctl->err.
 */
static int relay(struct ctl *ctl, struct proc_opts *o, const char *exec_id,
		 int (*start)(struct ctl *, struct proc_opts *))
{
	struct pump in = { 0 }, out = { 0 }, errp = { 0 };
	cleanup_close int fin = -1, fout = -1, ferr = -1;
	struct agent_exit ex;

	if (o->proc.stdin &&
	    (fin = agent_attach_stream(ctl->c, o->id, exec_id, "stdin",
				       &ctl->err)) < 0)
		return -1;
	if ((fout = agent_attach_stream(ctl->c, o->id, exec_id, "stdout",
					&ctl->err)) < 0)
		return -1;
	if (!o->tty && (ferr = agent_attach_stream(ctl->c, o->id, exec_id,
						   "stderr", &ctl->err)) < 0)
		return -1;
	if (start != NULL && start(ctl, o) < 0)
		return -1;
	if (o->tty) {
		make_raw();
		winch_start(ctl, o->id, exec_id);
	}
	if (pump_start(&out, fout, STDOUT_FILENO, false, &ctl->err) < 0 ||
	    (ferr >= 0 &&
	     pump_start(&errp, ferr, STDERR_FILENO, false, &ctl->err) < 0) ||
	    (fin >= 0 &&
	     pump_start(&in, STDIN_FILENO, fin, true, &ctl->err) < 0))
		return -1;
	if (agent_wait(ctl->c, o->id, exec_id, &ex, &ctl->err) < 0)
		return -1;
	/* every byte the process wrote, before its status */
	pump_join(&out);
	pump_join(&errp);
	/* `in` may sit in a read of our stdin forever: left to exit() */
	restore_tty();
	raw_mode = false;
	return ex.status & 0xff;
}

/* ---- run and exec ------------------------------------------------------ */

static int start_container(struct ctl *ctl, struct proc_opts *o)
{
	uint32_t pid;

	if (agent_start(ctl->c, o->id, &pid, &ctl->err) < 0)
		return -1;
	if (o->detach)
		printf("pid=%u\n", pid);
	return 0;
}

static int cmd_run(struct ctl *ctl, int argc, char **argv)
{
	Kiln__Agent__V1__CreateContainerRequest req =
		KILN__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	Kiln__Agent__V1__Rootfs rootfs = KILN__AGENT__V1__ROOTFS__INIT;
	struct proc_opts o = { 0 };
	static char idbuf[32];
	int r;

	r = opts_parse(argc, argv, &o);
	if (r != 0)
		return r;
	if (o.id == NULL) {
		snprintf(idbuf, sizeof(idbuf), "run-%d", (int)getpid());
		o.id = idbuf;
	}
	req.container_id = (char *)o.id;
	req.process = &o.proc;
	req.hostname = (char *)(o.hostname != NULL ? o.hostname : "");
	req.readonly_rootfs = o.readonly_rootfs;
	req.mounts = o.mounts;
	req.n_mounts = o.n_mounts;
	req.masked_paths = o.masked;
	req.n_masked_paths = o.n_masked;
	req.readonly_paths = o.ro_paths;
	req.n_readonly_paths = o.n_ro_paths;
	if (o.rootfs != NULL || o.n_layers != 0 || o.upper != NULL) {
		/* whatever was given: the agent judges the mix */
		rootfs.device = (char *)(o.rootfs != NULL ? o.rootfs : "");
		rootfs.fstype = (char *)o.fstype;
		rootfs.readonly = o.ro;
		rootfs.layers = o.layers;
		rootfs.n_layers = o.n_layers;
		rootfs.upper_device = (char *)(o.upper != NULL ? o.upper : "");
		req.rootfs = &rootfs;
	}
	if (ctl_connect(ctl) < 0 ||
	    agent_create_container(ctl->c, &req, &ctl->err) < 0)
		return -1;
	if (o.detach)
		r = start_container(ctl, &o);
	else
		r = relay(ctl, &o, NULL, start_container);
	if (r < 0 && !o.keep) {
		/* leave the guest as it was; the first error is the one */
		struct kiln_error ignored;

		agent_remove(ctl->c, o.id, &ignored);
		return -1;
	}
	if (r >= 0 && !o.detach && !o.keep &&
	    agent_remove(ctl->c, o.id, &ctl->err) < 0)
		return -1;
	return r;
}

static int cmd_exec(struct ctl *ctl, int argc, char **argv)
{
	struct proc_opts o = { 0 };
	static char idbuf[32];
	uint32_t pid;
	int r;

	r = opts_parse(argc, argv, &o);
	if (r != 0)
		return r;
	if (o.id == NULL)
		return opts_usage_error("exec needs --id");
	if (o.n_mounts != 0 || o.n_layers != 0 || o.upper != NULL ||
	    o.n_masked != 0 || o.n_ro_paths != 0)
		return opts_usage_error("--mount, --file, --layer, --upper, "
					"--mask, --ro-path: only run creates "
					"a container");
	if (o.exec_id == NULL) {
		snprintf(idbuf, sizeof(idbuf), "exec-%d", (int)getpid());
		o.exec_id = idbuf;
	}
	if (ctl_connect(ctl) < 0)
		return -1;
	if (agent_exec(ctl->c, o.id, o.exec_id, &o.proc, &pid, &ctl->err) < 0)
		return -1;
	if (o.detach) {
		printf("pid=%u\n", pid);
		return 0;
	}
	return relay(ctl, &o, o.exec_id, NULL);
}

/* ExecProcess+Wait round trips, one line of microseconds each. */
static int cmd_bench_exec(struct ctl *ctl, int argc, char **argv)
{
	struct proc_opts o = { .count = 20 };
	uint32_t i;
	int r;

	r = opts_parse(argc, argv, &o);
	if (r != 0)
		return r;
	if (o.id == NULL)
		return opts_usage_error("bench-exec needs --id");
	if (ctl_connect(ctl) < 0)
		return -1;
	o.proc.stdin = o.proc.stdout = o.proc.stderr = false;
	for (i = 0; i < o.count; i++) {
		struct agent_exit ex;
		char eid[32];
		uint64_t t0;

		snprintf(eid, sizeof(eid), "bench-%d-%u", (int)getpid(), i);
		t0 = util_now_ns();
		if (agent_exec(ctl->c, o.id, eid, &o.proc, NULL, &ctl->err) <
			    0 ||
		    agent_wait(ctl->c, o.id, eid, &ex, &ctl->err) < 0)
			return -1;
		printf("exec_us=%.1f status=%d\n",
		       (double)(util_now_ns() - t0) / 1e3, ex.status);
	}
	return 0;
}

/* ---- the small verbs --------------------------------------------------- */

static int cmd_small(struct ctl *ctl, const char *cmd, int argc, char **argv)
{
	struct kiln_error *err = &ctl->err;
	struct proc_opts s = { .bytes = 64 };
	bool need_id =
		strcmp(cmd, "set-time") != 0 && strcmp(cmd, "reseed") != 0 &&
		strcmp(cmd, "shutdown") != 0 && strcmp(cmd, "check") != 0 &&
		strcmp(cmd, "oom-wait") != 0;
	struct agent_client *c;
	uint32_t sig = 0;
	int r;

	r = opts_parse(argc, argv, &s);
	if (r != 0)
		return r;
	if (need_id && s.id == NULL)
		return opts_usage_error("%s needs --id", cmd);
	if (strcmp(cmd, "kill") == 0) {
		if (s.proc.n_args != 1 ||
		    opts_parse_signal(s.proc.args[0], &sig) < 0)
			return opts_usage_error("kill wants one SIGNAL");
	} else if (s.proc.n_args != 0) {
		return opts_usage_error("%s: unexpected argument `%s`", cmd,
					s.proc.args[0]);
	}
	if (ctl_connect(ctl) < 0)
		return -1;
	c = ctl->c;
	if (strcmp(cmd, "kill") == 0)
		return agent_signal(c, s.id, s.exec_id, sig, s.all, err);
	if (strcmp(cmd, "check") == 0) {
		struct agent_check_info info;

		if (agent_check(c, &info, err) < 0)
			return -1;
		printf("version=%s\nuptime_ns=%llu\nready_ns=%llu\n",
		       info.version, (unsigned long long)info.uptime_ns,
		       (unsigned long long)info.ready_ns);
	} else if (strcmp(cmd, "wait") == 0) {
		struct agent_exit ex;

		if (agent_wait(c, s.id, s.exec_id, &ex, err) < 0)
			return -1;
		printf("status=%d\nsignaled=%d\nexit_code=%u\nsignal=%u\n",
		       ex.status, ex.signaled, ex.exit_code, ex.signal);
		return ex.status & 0xff;
	} else if (strcmp(cmd, "ps") == 0) {
		cleanup_free uint32_t *pids = NULL;
		size_t n, i;

		if (agent_ps(c, s.id, &pids, &n, err) < 0)
			return -1;
		for (i = 0; i < n; i++)
			printf("%u\n", pids[i]);
	} else if (strcmp(cmd, "stats") == 0) {
		struct agent_stats st;

		if (agent_stats(c, s.id, &st, err) < 0)
			return -1;
#define P(f) printf(#f "=%llu\n", (unsigned long long)st.f)
		P(cpu_usage_usec);
		P(cpu_user_usec);
		P(cpu_system_usec);
		P(memory_usage_bytes);
		P(memory_limit_bytes);
		P(memory_oom_kills);
		P(pids_current);
		P(pids_limit);
		P(blkio_read_bytes);
		P(blkio_write_bytes);
		P(net_rx_bytes);
		P(net_tx_bytes);
#undef P
	} else if (strcmp(cmd, "resize") == 0) {
		if (s.rows == 0 || s.cols == 0)
			return opts_usage_error("resize needs --rows and "
						"--cols");
		return agent_resize(c, s.id, s.exec_id, s.cols, s.rows, err);
	} else if (strcmp(cmd, "close-stdin") == 0) {
		return agent_close_stdin(c, s.id, s.exec_id, err);
	} else if (strcmp(cmd, "remove") == 0) {
		return agent_remove(c, s.id, err);
	} else if (strcmp(cmd, "shutdown") == 0) {
		return agent_shutdown(c, err);
	} else if (strcmp(cmd, "oom-wait") == 0) {
		cleanup_free char *id = NULL;

		if (agent_oom_event(c, &id, err) < 0)
			return -1;
		printf("container_id=%s\n", id);
	} else if (strcmp(cmd, "set-time") == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		if (s.have_sec) {
			ts.tv_sec = s.sec;
			ts.tv_nsec = s.nsec;
		}
		return agent_set_time(c, ts.tv_sec, ts.tv_nsec, err);
	} else if (strcmp(cmd, "reseed") == 0) {
		cleanup_free uint8_t *buf = malloc(s.bytes ? s.bytes : 1);

		if (buf == NULL)
			return kiln_error_set(err, ENOMEM, "reseed");
		for (uint32_t got = 0; got < s.bytes;) {
			ssize_t n = getrandom(buf + got, s.bytes - got, 0);

			if (n < 0)
				return kiln_error_set(err, errno, "getrandom");
			got += (uint32_t)n;
		}
		return agent_reseed(c, buf, s.bytes, err);
	} else {
		return opts_usage_error("unknown command `%s`", cmd);
	}
	return 0;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "uds", required_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl ctl = { .timeout_ns = DEFAULT_TIMEOUT_SEC * 1000000000ull };
	const char *cmd;
	uint64_t t0;
	int opt, r;
	double d;

	while ((opt = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			ctl.uds = optarg;
			break;
		case 't':
			if (sscanf(optarg, "%lf", &d) != 1 || !(d > 0) ||
			    d > 86400)
				return opts_usage_error("bad --timeout `%s`",
							optarg);
			ctl.timeout_ns = (uint64_t)(d * 1e9);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return opts_usage_error("unknown option");
		}
	}
	if (ctl.uds == NULL)
		return opts_usage_error("--uds PATH is required");
	if (optind >= argc)
		return opts_usage_error("no command");
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	signal(SIGPIPE, SIG_IGN);

	if (strcmp(cmd, "wait-ready") == 0) {
		t0 = util_now_ns();
		r = ctl_connect(&ctl);
		/* CLOCK_MONOTONIC, as Python's time.monotonic(), for the
		 * benchmark */
		if (r == 0)
			printf("ready_mono_ns=%llu\nwaited_ms=%.1f\n",
			       (unsigned long long)util_now_ns(),
			       (double)(util_now_ns() - t0) / 1e6);
	} else if (strcmp(cmd, "run") == 0) {
		r = cmd_run(&ctl, argc, argv);
	} else if (strcmp(cmd, "exec") == 0) {
		r = cmd_exec(&ctl, argc, argv);
	} else if (strcmp(cmd, "bench-exec") == 0) {
		r = cmd_bench_exec(&ctl, argc, argv);
	} else {
		r = cmd_small(&ctl, cmd, argc, argv);
	}
	fflush(stdout);
	if (r < 0) {
		restore_tty();
		kiln_error_print(&ctl.err, PROG);
		r = EXIT_FAIL;
	}
	/* a relay thread may still block on our stdin: no free, just go */
	_exit(r);
}
