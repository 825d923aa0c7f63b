/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln: runc's command line over kiln's library. Global flags first
 * (docker: `--root R --log F --log-format json create ...`), then a verb.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "kiln.h"

static const struct {
	const char *name;
	kiln_verb_fn fn;
	const char *summary;
} verbs[] = {
	{ "create", verb_create, "create a container (its VM boots)" },
	{ "delete", verb_delete, "delete a container and all it holds" },
	{ "exec", verb_exec, "run another process in a running container" },
	{ "features", verb_features, "print what kiln supports as JSON" },
	{ "kill", verb_kill, "send a signal to a container's init" },
	{ "list", verb_list, "list containers started with this --root" },
	{ "pause", verb_pause, "stop a container's VM whole" },
	{ "ps", verb_ps, "list a container's processes on the host" },
	{ "resume", verb_resume, "run a paused container's VM again" },
	{ "run", verb_run, "create and start a container" },
	{ "spec", verb_spec, "write a default config.json into a bundle" },
	{ "start", verb_start, "start a created container's process" },
	{ "state", verb_state, "print a container's OCI state as JSON" },
	{ "templates", verb_templates,
	  "list the warm templates (--rm: remove them)" },
	{ "update", verb_update, "change a running container's limits" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kiln [global flags] COMMAND [flags] [ID]\n\n"
		   "Global flags (as runc's):\n"
		   "  --root DIR          state directories "
		   "(default " KILN_DEFAULT_ROOT ")\n"
		   "  --log FILE          log to FILE (default: stderr)\n"
		   "  --log-format text|json\n"
		   "  --debug             log debug messages\n"
		   "  --systemd-cgroup    cgroupsPath is slice:prefix:name\n"
		   "  --no-jail           kiln-vmm unjailed (debugging; "
		   "docs/jail.md)\n"
		   "  --version, --help\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
}

/* runc's global flags; the index of the verb, or -1 with err. */
static int parse_globals(struct kiln_cli *cli, int argc, char **argv,
			 struct kiln_error *err)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *fmt = NULL, *ignored = NULL;
		int r;

		if ((r = cli_flag(argc, argv, &i, "root", &cli->root, err)) ||
		    (r = cli_flag(argc, argv, &i, "log", &cli->log, err)) ||
		    (r = cli_flag(argc, argv, &i, "criu", &ignored, err)) ||
		    (r = cli_flag(argc, argv, &i, "rootless", &ignored, err))) {
			if (r < 0)
				return -1;
			continue;
		}
		r = cli_flag(argc, argv, &i, "log-format", &fmt, err);
		if (r < 0)
			return -1;
		if (r > 0) {
			if (strcmp(fmt, "json") != 0 &&
			    strcmp(fmt, "text") != 0)
				return kiln_error_set(err, 0,
						      "--log-format: \"%s\" is "
						      "neither text nor json",
						      fmt);
			cli->log_json = strcmp(fmt, "json") == 0;
			continue;
		}
		if (cli_bool(argv, i, "debug", &cli->debug) ||
		    cli_bool(argv, i, "systemd-cgroup", &cli->systemd_cgroup) ||
		    cli_bool(argv, i, "no-jail", &cli->no_jail))
			continue;
		return kiln_error_set(err, 0, "unknown global flag %s",
				      argv[i]);
	}
	return i;
}

int main(int argc, char **argv)
{
	struct kiln_cli cli = { .root = KILN_DEFAULT_ROOT,
				.main_ns = util_now_ns() };
	struct kiln_error err = { 0 };
	char msg[KILN_ERROR_MSG_MAX + 128];
	int v, status = 1;

	log_set_prog("kiln");
	log_set_show_level(false);
	if (argc > 1 &&
	    (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0 ||
	     strcmp(argv[1], "version") == 0)) {
		printf("kiln version %s\nspec: 1.0.2\n", KILN_VERSION);
		return 0;
	}
	if (argc > 1 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	     strcmp(argv[1], "help") == 0)) {
		usage(stdout);
		return 0;
	}
	v = parse_globals(&cli, argc, argv, &err);
	if (v >= 0 && cli.log != NULL && log_open(cli.log) < 0) {
		/* the caller reads this file for our errors: say it here */
		fprintf(stderr, "kiln: open log `%s`: %m\n", cli.log);
		return 1;
	}
	log_set_json(cli.log_json);
	log_set_level(cli.debug ? LOG_DEBUG : LOG_INFO);
	if (v >= 0 && v >= argc) {
		usage(stderr);
		return 1;
	}
	if (v >= 0) {
		size_t i;

		for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
			if (strcmp(argv[v], verbs[i].name) == 0)
				break;
		if (i < sizeof(verbs) / sizeof(verbs[0]))
			status = verbs[i].fn(&cli, argc - v, argv + v, &err);
		else
			kiln_error_set(&err, 0, "unknown command `%s`",
				       argv[v]);
	}
	if (status != 0 && err.msg[0] != '\0') {
		kiln_error_str(&err, msg, sizeof(msg));
		/* the log (docker and containerd read it) and the terminal */
		if (cli.log != NULL)
			log_error("%s", msg);
		fprintf(stderr, "kiln: %s\n", msg);
	}
	return status;
}
