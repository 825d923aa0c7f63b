/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln, the OCI runtime CLI: what every verb shares. main.c parses runc's
 * global flags into a struct kiln_cli and calls the verb, one file each.
 */
#ifndef KILN_RUNTIME_KILN_H
#define KILN_RUNTIME_KILN_H

#include <stdbool.h>

#include "../lib/error.h"

#define KILN_DEFAULT_ROOT "/run/kiln"

struct kiln_cli {
	const char *root; /* --root: state directories */
	const char *log;  /* --log FILE, or NULL */
	bool log_json;	  /* --log-format json */
	bool debug;
	bool systemd_cgroup;
};

/*
 * A verb: argv[0] is its name, argv[1..] its own flags and arguments.
 * Returns the process's exit status; errors go into err (status 1).
 */
typedef int (*kiln_verb_fn)(const struct kiln_cli *cli, int argc, char **argv,
			    struct kiln_error *err);

int verb_list(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err);
int verb_spec(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err);
/* The config.json `kiln spec` writes (runc's example, hostname kiln). */
const char *kiln_default_spec(void);
int verb_state(const struct kiln_cli *cli, int argc, char **argv,
	       struct kiln_error *err);

/*
 * runc's flag syntax (urfave/cli): -name and --name, the value as the next
 * argument or after '='. Matches argv[*i] against name; a flag with a
 * value stores it in *value and steps *i past it. 1 when matched, 0 when
 * not, -1 with err when the value is missing.
 */
int cli_flag(int argc, char **argv, int *i, const char *name,
	     const char **value, struct kiln_error *err);
/* The same for a boolean flag (no value; "--name=true|false" accepted). */
int cli_bool(char **argv, int i, const char *name, bool *out);

#endif
