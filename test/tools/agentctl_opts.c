/* SPDX-License-Identifier: Apache-2.0 */
/* kiln-agentctl's command options; see agentctl.h. */
#include "agentctl.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/file.h"

#define DEFAULT_PATH \
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int opts_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see %s --help)\n", PROG);
	return EXIT_USAGE;
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

int opts_parse_signal(const char *s, uint32_t *sig)
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
	ARG("bytes", 'b'),    ARG("count", 'm'),	 ARG("mount", 'M'),
	ARG("layer", 'L'),    ARG("upper", 'U'),	 ARG("file", 'F'),
	ARG("mask", 'K'),     ARG("ro-path", 'O'),	 ARG("seccomp", 'Z'),
	{ NULL, 0, NULL, 0 },
};

/* "mkdir,mkdirat:1": those fail with errno 1, every other syscall runs */
static const char *parse_seccomp_deny(const char *s, struct proc_opts *o)
{
	Kiln__Agent__V1__SeccompRule *r = &o->seccomp_rule;
	char *arg = strdup(s), *colon, *save = NULL;

	if (arg == NULL)
		return "out of memory";
	colon = strrchr(arg, ':');
	if (colon == NULL || parse_u32(colon + 1, &r->errno_ret) < 0)
		return "want NAME[,NAME...]:ERRNO";
	*colon = '\0';
	r->names = o->seccomp_names;
	r->n_names = 0;
	for (char *n = strtok_r(arg, ",", &save); n != NULL;
	     n = strtok_r(NULL, ",", &save)) {
		if (r->n_names == ARRAY_SIZE(o->seccomp_names))
			return "too many names";
		r->names[r->n_names++] = n;
	}
	r->action = "SCMP_ACT_ERRNO";
	r->has_errno_ret = true;
	o->seccomp_rulev[0] = r;
	o->seccomp.syscalls = o->seccomp_rulev;
	o->seccomp.n_syscalls = 1;
	o->proc.seccomp = &o->seccomp;
	return NULL;
}

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

/*
 * "TYPE:SOURCE:DEST[:OPT,OPT...]" into m; SOURCE may be empty (the agent
 * then mounts TYPE), and DEST, which the agent judges, holds no colon.
 * Returns NULL or what is wrong.
 */
static const char *parse_mount(const char *s, Kiln__Agent__V1__Mount *m)
{
	char *f[4] = { NULL }, *p, *opt, *save = NULL;
	size_t n = 1;
	int nf = 0;

	kiln__agent__v1__mount__init(m);
	p = strdup(s);
	if (p == NULL)
		return "out of memory";
	/* the options are the rest: they may hold colons themselves */
	f[nf++] = p;
	while (nf < 4 && (p = strchr(p, ':')) != NULL) {
		*p++ = '\0';
		f[nf++] = p;
	}
	if (nf < 3)
		return "want TYPE:SOURCE:DEST[:OPT,OPT...]";
	if (f[0][0] == '\0')
		return "no TYPE";
	if (f[2][0] == '\0')
		return "no DEST";
	m->type = f[0];
	m->source = f[1];
	m->destination = f[2];
	if (f[3] == NULL)
		return NULL;
	for (p = f[3]; *p != '\0'; p++)
		n += *p == ',';
	m->options = calloc(n, sizeof(*m->options));
	if (m->options == NULL)
		return "out of memory";
	/* strtok_r would skip an empty option: a typo, said as one */
	for (opt = f[3]; opt != NULL; opt = save) {
		save = strchr(opt, ',');
		if (save != NULL)
			*save++ = '\0';
		if (opt[0] == '\0')
			return "an empty OPT";
		m->options[m->n_options++] = opt;
	}
	return NULL;
}

/* "DEV[:FSTYPE]", erofs by default */
static void parse_layer(char *s, Kiln__Agent__V1__Layer *l)
{
	char *colon = strchr(s, ':');

	kiln__agent__v1__layer__init(l);
	l->fstype = "erofs";
	if (colon != NULL) {
		*colon = '\0';
		l->fstype = colon + 1;
	}
	l->device = s;
}

/*
 * "SRC:DEST[:ro]": the host file SRC carried in (its bytes and mode) and
 * bound on DEST. Returns NULL or what is wrong.
 */
static const char *parse_file(char *s, Kiln__Agent__V1__Mount *m)
{
	static char *ro[] = { "ro" };
	char *dest = strchr(s, ':'), *opt;
	struct kiln_error err;
	struct stat st;
	size_t len;
	char *buf;

	kiln__agent__v1__mount__init(m);
	if (dest == NULL || dest == s)
		return "want SRC:DEST[:ro]";
	*dest++ = '\0';
	opt = strchr(dest, ':');
	if (opt != NULL) {
		*opt++ = '\0';
		if (strcmp(opt, "ro") != 0)
			return "the only option is ro";
		m->options = ro;
		m->n_options = 1;
	}
	if (stat(s, &st) < 0)
		return strerror(errno);
	/* agentctl sends what it is told, however big: the agent judges */
	buf = file_read(s, 64u << 20, &len, &err);
	if (buf == NULL)
		return "cannot read SRC";
	m->type = "bind";
	m->source = "";
	m->destination = dest;
	m->has_data = true;
	m->data.data = (uint8_t *)buf;
	m->data.len = len;
	m->file_mode = st.st_mode & 07777;
	return NULL;
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

int opts_parse(int argc, char **argv, struct proc_opts *o)
{
	bool have_path = false;
	size_t i;
	int opt;

	kiln__agent__v1__process__init(&o->proc);
	kiln__agent__v1__user__init(&o->user);
	kiln__agent__v1__capabilities__init(&o->caps);
	kiln__agent__v1__seccomp__init(&o->seccomp);
	kiln__agent__v1__seccomp_rule__init(&o->seccomp_rule);
	o->seccomp.default_action = "SCMP_ACT_ALLOW";
	o->proc.user = &o->user;
	o->cwd = "/";
	o->fstype = "ext4";
	/* every option takes at most one slot */
	o->env = calloc((size_t)argc + 2, sizeof(*o->env));
	o->caplist = calloc((size_t)argc + 1, sizeof(*o->caplist));
	o->rlimit_store = calloc((size_t)argc + 1, sizeof(*o->rlimit_store));
	o->proc.rlimits = calloc((size_t)argc + 1, sizeof(*o->proc.rlimits));
	o->mount_store = calloc((size_t)argc + 1, sizeof(*o->mount_store));
	o->mounts = calloc((size_t)argc + 1, sizeof(*o->mounts));
	o->layer_store = calloc((size_t)argc + 1, sizeof(*o->layer_store));
	o->layers = calloc((size_t)argc + 1, sizeof(*o->layers));
	o->masked = calloc((size_t)argc + 1, sizeof(*o->masked));
	o->ro_paths = calloc((size_t)argc + 1, sizeof(*o->ro_paths));
	if (o->env == NULL || o->caplist == NULL || o->rlimit_store == NULL ||
	    o->proc.rlimits == NULL || o->mount_store == NULL ||
	    o->mounts == NULL || o->layer_store == NULL || o->layers == NULL ||
	    o->masked == NULL || o->ro_paths == NULL)
		return opts_usage_error("out of memory");
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
				return opts_usage_error("bad size `%s`",
							optarg);
			break;
		case 'u':
			if (parse_user(optarg, o) < 0)
				return opts_usage_error("--user `%s`: want "
							"UID:GID "
							"or a name",
							optarg);
			break;
		case 'g':
			if (parse_groups(optarg, o) < 0)
				return opts_usage_error("bad --groups");
			break;
		case 'E':
			have_path |= strncmp(optarg, "PATH=", 5) == 0;
			o->env[o->proc.n_env++] = optarg;
			break;
		case 'l': {
			Kiln__Agent__V1__Rlimit *rl =
				&o->rlimit_store[o->proc.n_rlimits];

			if (parse_rlimit(optarg, rl) < 0)
				return opts_usage_error("--rlimit `%s`: want "
							"NAME=SOFT:HARD",
							optarg);
			o->proc.rlimits[o->proc.n_rlimits++] = rl;
			break;
		}
		case 'M': {
			Kiln__Agent__V1__Mount *m =
				&o->mount_store[o->n_mounts];
			const char *why = parse_mount(optarg, m);

			if (why != NULL)
				return opts_usage_error("--mount `%s`: %s",
							optarg, why);
			o->mounts[o->n_mounts++] = m;
			break;
		}
		case 'F': {
			Kiln__Agent__V1__Mount *m =
				&o->mount_store[o->n_mounts];
			char *arg = strdup(optarg);
			const char *why = arg ? parse_file(arg, m)
					      : "out of memory";

			if (why != NULL)
				return opts_usage_error("--file `%s`: %s",
							optarg, why);
			o->mounts[o->n_mounts++] = m;
			break;
		}
		case 'L': {
			Kiln__Agent__V1__Layer *l =
				&o->layer_store[o->n_layers];

			parse_layer(optarg, l);
			o->layers[o->n_layers++] = l;
			break;
		}
		case 'U':
			o->upper = optarg;
			break;
		case 'K':
			o->masked[o->n_masked++] = optarg;
			break;
		case 'O':
			o->ro_paths[o->n_ro_paths++] = optarg;
			break;
		case 'Z': {
			const char *why = parse_seccomp_deny(optarg, o);

			if (why != NULL)
				return opts_usage_error("--seccomp `%s`: %s",
							optarg, why);
			break;
		}
		case 'C':
			o->caplist[o->caps.n_bounding++] = optarg;
			o->have_caps = true;
			break;
		case 'm':
			if (parse_u32(optarg, &o->count) < 0 || o->count == 0)
				return opts_usage_error("bad --count `%s`",
							optarg);
			break;
		case 'b':
			if (parse_u32(optarg, &o->bytes) < 0)
				return opts_usage_error("bad --bytes `%s`",
							optarg);
			break;
		case 's':
		case 'n': {
			uint64_t v;

			if (parse_u64(optarg, &v) < 0 || v > INT64_MAX)
				return opts_usage_error("bad number `%s`",
							optarg);
			*(opt == 's' ? &o->sec : &o->nsec) = (int64_t)v;
			o->have_sec |= opt == 's';
			break;
		}
		default:
			return opts_usage_error("unknown option");
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
