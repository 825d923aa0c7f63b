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
#include <stdarg.h>
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

#define PROG "kiln-agentctl"
#define DEFAULT_PATH \
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define EXIT_FAIL	    1
#define EXIT_USAGE	    2
#define DEFAULT_TIMEOUT_SEC 30

struct ctl {
	const char *uds;
	uint64_t timeout_ns;
	struct agent_client *c;
	struct kiln_error err;
};

/* Every command's options: for run and exec a Process and its container. */
struct proc_opts {
	const char *id, *exec_id, *rootfs, *fstype, *hostname, *cwd;
	bool ro, readonly_rootfs, tty, detach, keep, no_stdin, all, have_sec;
	bool no_new_privs;
	uint32_t rows, cols, count, bytes;
	int64_t sec, nsec;
	Kiln__Agent__V1__Process proc;
	Kiln__Agent__V1__User user;
	Kiln__Agent__V1__Capabilities caps;
	bool have_caps;
	Kiln__Agent__V1__Rlimit *rlimit_store;
	char **env, **caplist;
	uint32_t *groups;
};

static struct termios saved_tio;
static bool raw_mode;

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see %s --help)\n", PROG);
	return EXIT_USAGE;
}

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
		   "  bench-exec --id ID [--count N] -- ARGS   "
		   "ExecProcess+Wait "
		   "round trips\n");
}

static int parse_u32(const char *s, uint32_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 ||
	    v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (strcmp(s, "unlimited") == 0 || strcmp(s, "-1") == 0) {
		*out = UINT64_MAX;
		return 0;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0)
		return -1;
	*out = v;
	return 0;
}

/* "TERM", "SIGTERM" or "15" */
static int parse_signal(const char *s, uint32_t *sig)
{
	int i;

	if (parse_u32(s, sig) == 0)
		return *sig > 0 && *sig < (uint32_t)NSIG ? 0 : -1;
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (i = 1; i < NSIG; i++) {
		const char *name = sigabbrev_np(i);

		if (name != NULL && strcmp(name, s) == 0) {
			*sig = (uint32_t)i;
			return 0;
		}
	}
	return -1;
}

/* Every command may race the guest's boot: wait for the agent. */
static int ctl_connect(struct ctl *ctl)
{
	ctl->c = agent_client_connect(ctl->uds,
				      agent_now_ns() + ctl->timeout_ns,
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

/* option values: letters, though only the long names are accepted */

#define ARG(name, v)                             \
	{                                        \
		name, required_argument, NULL, v \
	}
#define FLAG(name, v)                      \
	{                                  \
		name, no_argument, NULL, v \
	}
static const struct option proc_longopts[] = {
	ARG("id", 'i'),	      ARG("exec-id", 'e'),	 ARG("rootfs", 'r'),
	ARG("fstype", 'f'),   FLAG("ro", 'o'),		 FLAG("read-only", 'R'),
	FLAG("tty", 't'),     ARG("rows", 'y'),		 ARG("cols", 'x'),
	ARG("user", 'u'),     ARG("groups", 'g'),	 ARG("cwd", 'c'),
	ARG("env", 'E'),      ARG("rlimit", 'l'),	 ARG("cap", 'C'),
	FLAG("no-caps", 'N'), FLAG("no-new-privs", 'P'), ARG("hostname", 'h'),
	FLAG("detach", 'd'),  FLAG("keep", 'k'),	 FLAG("no-stdin", 'I'),
	FLAG("all", 'a'),     ARG("sec", 's'),		 ARG("nsec", 'n'),
	ARG("bytes", 'b'),    ARG("count", 'm'),	 { NULL, 0, NULL, 0 },
};

/* "NOFILE=1024:2048" or "RLIMIT_NOFILE=..." */
static int parse_rlimit(const char *s, Kiln__Agent__V1__Rlimit *rl)
{
	const char *eq = strchr(s, '=');
	char *name, *colon, *val;

	if (eq == NULL || eq == s)
		return -1;
	if (asprintf(&name, "%s%.*s", strncmp(s, "RLIMIT_", 7) ? "RLIMIT_" : "",
		     (int)(eq - s), s) < 0)
		return -1;
	val = strdup(eq + 1);
	if (val == NULL)
		return -1;
	colon = strchr(val, ':');
	if (colon == NULL)
		return -1;
	*colon = '\0';
	kiln__agent__v1__rlimit__init(rl);
	rl->type = name;
	if (parse_u64(val, &rl->soft) < 0 ||
	    parse_u64(colon + 1, &rl->hard) < 0)
		return -1;
	free(val);
	return 0;
}

static int parse_user(const char *s, struct proc_opts *o)
{
	const char *colon = strchr(s, ':');
	char uid[32];

	if (s[0] < '0' || s[0] > '9') {
		o->user.username = (char *)s;
		return 0;
	}
	if (colon == NULL || (size_t)(colon - s) >= sizeof(uid))
		return -1;
	memcpy(uid, s, (size_t)(colon - s));
	uid[colon - s] = '\0';
	return parse_u32(uid, &o->user.uid) < 0 ||
			       parse_u32(colon + 1, &o->user.gid) < 0
		       ? -1
		       : 0;
}

static int parse_groups(char *s, struct proc_opts *o)
{
	char *tok, *save = NULL;
	size_t n = 1;

	for (const char *p = s; *p != '\0'; p++)
		n += *p == ',';
	o->groups = calloc(n, sizeof(*o->groups));
	if (o->groups == NULL)
		return -1;
	for (tok = strtok_r(s, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save))
		if (parse_u32(tok, &o->groups[o->user.n_additional_gids++]) < 0)
			return -1;
	o->user.additional_gids = o->groups;
	return 0;
}

/* the options that only keep their argument or set a flag */
#define STR_OPT(v, f)                                  \
	{                                              \
		v, offsetof(struct proc_opts, f), true \
	}
#define BOOL_OPT(v, f)                                  \
	{                                               \
		v, offsetof(struct proc_opts, f), false \
	}
static const struct {
	int val;
	size_t off;
	bool is_str;
} plain_opts[] = {
	STR_OPT('i', id),	  STR_OPT('e', exec_id),
	STR_OPT('r', rootfs),	  STR_OPT('f', fstype),
	STR_OPT('h', hostname),	  STR_OPT('c', cwd),
	BOOL_OPT('o', ro),	  BOOL_OPT('R', readonly_rootfs),
	BOOL_OPT('t', tty),	  BOOL_OPT('d', detach),
	BOOL_OPT('k', keep),	  BOOL_OPT('I', no_stdin),
	BOOL_OPT('a', all),	  BOOL_OPT('P', no_new_privs),
	BOOL_OPT('N', have_caps),
};

/*
 * Options into o; ARGS after them (after "--" or the first non-option).
 * Returns 0 or an exit status for a usage error.
 */
static int parse_proc_opts(int argc, char **argv, struct proc_opts *o)
{
	bool have_path = false;
	size_t i;
	int opt;

	kiln__agent__v1__process__init(&o->proc);
	kiln__agent__v1__user__init(&o->user);
	kiln__agent__v1__capabilities__init(&o->caps);
	o->proc.user = &o->user;
	o->cwd = "/";
	o->fstype = "ext4";
	/* every option takes at most one slot */
	o->env = calloc((size_t)argc + 2, sizeof(*o->env));
	o->caplist = calloc((size_t)argc + 1, sizeof(*o->caplist));
	o->rlimit_store = calloc((size_t)argc + 1, sizeof(*o->rlimit_store));
	o->proc.rlimits = calloc((size_t)argc + 1, sizeof(*o->proc.rlimits));
	if (o->env == NULL || o->caplist == NULL || o->rlimit_store == NULL ||
	    o->proc.rlimits == NULL)
		return usage_error("out of memory");
	o->proc.env = o->env;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", proc_longopts, NULL)) !=
	       -1) {
		for (i = 0; i < ARRAY_SIZE(plain_opts); i++)
			if (plain_opts[i].val == opt)
				break;
		if (i < ARRAY_SIZE(plain_opts)) {
			char *field = (char *)o + plain_opts[i].off;

			if (plain_opts[i].is_str)
				*(const char **)field = optarg;
			else
				*(bool *)field = true;
			continue;
		}
		switch (opt) {
		case 'y':
		case 'x':
			if (parse_u32(optarg,
				      opt == 'y' ? &o->rows : &o->cols) < 0)
				return usage_error("bad size `%s`", optarg);
			break;
		case 'u':
			if (parse_user(optarg, o) < 0)
				return usage_error("--user `%s`: want UID:GID "
						   "or a name",
						   optarg);
			break;
		case 'g':
			if (parse_groups(optarg, o) < 0)
				return usage_error("bad --groups");
			break;
		case 'E':
			have_path |= strncmp(optarg, "PATH=", 5) == 0;
			o->env[o->proc.n_env++] = optarg;
			break;
		case 'l': {
			Kiln__Agent__V1__Rlimit *rl =
				&o->rlimit_store[o->proc.n_rlimits];

			if (parse_rlimit(optarg, rl) < 0)
				return usage_error("--rlimit `%s`: want "
						   "NAME=SOFT:HARD",
						   optarg);
			o->proc.rlimits[o->proc.n_rlimits++] = rl;
			break;
		}
		case 'C':
			o->caplist[o->caps.n_bounding++] = optarg;
			o->have_caps = true;
			break;
		case 'm':
			if (parse_u32(optarg, &o->count) < 0 || o->count == 0)
				return usage_error("bad --count `%s`", optarg);
			break;
		case 'b':
			if (parse_u32(optarg, &o->bytes) < 0)
				return usage_error("bad --bytes `%s`", optarg);
			break;
		case 's':
		case 'n': {
			uint64_t v;

			if (parse_u64(optarg, &v) < 0 || v > INT64_MAX)
				return usage_error("bad number `%s`", optarg);
			*(opt == 's' ? &o->sec : &o->nsec) = (int64_t)v;
			o->have_sec |= opt == 's';
			break;
		}
		default:
			return usage_error("unknown option");
		}
	}
	if (!have_path)
		o->env[o->proc.n_env++] = DEFAULT_PATH;
	o->proc.cwd = (char *)o->cwd;
	o->proc.no_new_privileges = o->no_new_privs;
	if (o->have_caps) {
		/* one list for every set but inheritable and ambient */
		o->caps.bounding = o->caps.effective = o->caps.permitted =
			o->caplist;
		o->caps.n_effective = o->caps.n_permitted = o->caps.n_bounding;
		o->proc.capabilities = &o->caps;
	}
	/* what is left, possibly nothing: the agent judges empty args */
	o->proc.args = argv + optind;
	o->proc.n_args = (size_t)(argc - optind);
	o->proc.terminal = o->tty;
	if (o->tty) {
		struct winsize ws;

		if (isatty(STDIN_FILENO) &&
		    ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
			o->rows = o->rows ? o->rows : ws.ws_row;
			o->cols = o->cols ? o->cols : ws.ws_col;
		}
		o->proc.console_height = o->rows;
		o->proc.console_width = o->cols;
	}
	o->proc.stdin = !o->detach && !o->no_stdin;
	o->proc.stdout = !o->detach;
	o->proc.stderr = !o->detach && !o->tty;
	return 0;
}

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

	r = parse_proc_opts(argc, argv, &o);
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
	if (o.rootfs != NULL) {
		rootfs.device = (char *)o.rootfs;
		rootfs.fstype = (char *)o.fstype;
		rootfs.readonly = o.ro;
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

	r = parse_proc_opts(argc, argv, &o);
	if (r != 0)
		return r;
	if (o.id == NULL)
		return usage_error("exec needs --id");
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

	r = parse_proc_opts(argc, argv, &o);
	if (r != 0)
		return r;
	if (o.id == NULL)
		return usage_error("bench-exec needs --id");
	if (ctl_connect(ctl) < 0)
		return -1;
	o.proc.stdin = o.proc.stdout = o.proc.stderr = false;
	for (i = 0; i < o.count; i++) {
		struct agent_exit ex;
		char eid[32];
		uint64_t t0;

		snprintf(eid, sizeof(eid), "bench-%d-%u", (int)getpid(), i);
		t0 = agent_now_ns();
		if (agent_exec(ctl->c, o.id, eid, &o.proc, NULL, &ctl->err) <
			    0 ||
		    agent_wait(ctl->c, o.id, eid, &ex, &ctl->err) < 0)
			return -1;
		printf("exec_us=%.1f status=%d\n",
		       (double)(agent_now_ns() - t0) / 1e3, ex.status);
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
		strcmp(cmd, "shutdown") != 0 && strcmp(cmd, "check") != 0;
	struct agent_client *c;
	uint32_t sig = 0;
	int r;

	r = parse_proc_opts(argc, argv, &s);
	if (r != 0)
		return r;
	if (need_id && s.id == NULL)
		return usage_error("%s needs --id", cmd);
	if (strcmp(cmd, "kill") == 0) {
		if (s.proc.n_args != 1 ||
		    parse_signal(s.proc.args[0], &sig) < 0)
			return usage_error("kill wants one SIGNAL");
	} else if (s.proc.n_args != 0) {
		return usage_error("%s: unexpected argument `%s`", cmd,
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
			return usage_error("resize needs --rows and --cols");
		return agent_resize(c, s.id, s.exec_id, s.cols, s.rows, err);
	} else if (strcmp(cmd, "close-stdin") == 0) {
		return agent_close_stdin(c, s.id, s.exec_id, err);
	} else if (strcmp(cmd, "remove") == 0) {
		return agent_remove(c, s.id, err);
	} else if (strcmp(cmd, "shutdown") == 0) {
		return agent_shutdown(c, err);
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
		return usage_error("unknown command `%s`", cmd);
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
				return usage_error("bad --timeout `%s`",
						   optarg);
			ctl.timeout_ns = (uint64_t)(d * 1e9);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return usage_error("unknown option");
		}
	}
	if (ctl.uds == NULL)
		return usage_error("--uds PATH is required");
	if (optind >= argc)
		return usage_error("no command");
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	signal(SIGPIPE, SIG_IGN);

	if (strcmp(cmd, "wait-ready") == 0) {
		t0 = agent_now_ns();
		r = ctl_connect(&ctl);
		/* CLOCK_MONOTONIC, as Python's time.monotonic(), for the
		 * benchmark */
		if (r == 0)
			printf("ready_mono_ns=%llu\nwaited_ms=%.1f\n",
			       (unsigned long long)agent_now_ns(),
			       (double)(agent_now_ns() - t0) / 1e6);
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
