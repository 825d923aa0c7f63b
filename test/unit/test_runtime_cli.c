/* SPDX-License-Identifier: Apache-2.0 */
/* kiln's verbs that need no VM: spec, state, list; runc's flag syntax. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/file.h"
#include "../../oci/container.h"
#include "../../oci/spec.h"
#include "../../oci/state.h"
#include "../../runtime/kiln.h"
#include "tap.h"

static char top[] = "/tmp/kiln-cli-XXXXXX";
static char out_path[300];

/* Run a verb with its stdout in a file; the file's text in *out. */
static int run(const struct kiln_cli *cli, kiln_verb_fn fn, char **out,
	       struct kiln_error *err, int argc, ...)
{
	char *argv[16];
	va_list ap;
	int saved, fd, rc;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	fflush(stdout);
	saved = dup(1);
	fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 1);
	close(fd);
	memset(err, 0, sizeof(*err));
	rc = fn(cli, argc, argv, err);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	*out = file_read(out_path, 1 << 20, NULL, err);
	return rc;
}

static void test_flags(void)
{
	char *argv[] = { "x",	       "--root",  "/r",
			 "-log=/l",    "--debug", "--systemd-cgroup=false",
			 "--pid-file", NULL };
	struct kiln_error err = { 0 };
	const char *v = NULL;
	bool b = false;
	int i = 1;

	ok(cli_flag(7, argv, &i, "root", &v, &err) == 1 && i == 2 &&
		   strcmp(v, "/r") == 0,
	   "--root VALUE");
	i = 3;
	ok(cli_flag(7, argv, &i, "log", &v, &err) == 1 && i == 3 &&
		   strcmp(v, "/l") == 0,
	   "-log=VALUE");
	i = 3;
	ok(cli_flag(7, argv, &i, "lo", &v, &err) == 0, "a prefix is not the "
						       "flag");
	ok(cli_bool(argv, 4, "debug", &b) && b, "--debug");
	b = true;
	ok(cli_bool(argv, 5, "systemd-cgroup", &b) && !b, "--systemd-cgroup="
							  "false");
	i = 6;
	ok(cli_flag(7, argv, &i, "pid-file", &v, &err) == -1 &&
		   strstr(err.msg, "needs a value") != NULL,
	   "a value flag at the end: %s", err.msg);
}

static void test_spec(void)
{
	struct kiln_cli cli = { .root = top };
	struct kiln_error err;
	struct oci_spec *s;
	char *out = NULL;

	ok(run(&cli, verb_spec, &out, &err, 3, "spec", "--bundle", top) == 0,
	   "spec writes config.json (%s)", err.msg);
	free(out);
	s = oci_spec_load(top, &err);
	ok(s != NULL && s->process->terminal && s->root_readonly &&
		   strcmp(s->process->args[0], "sh") == 0 &&
		   s->linux_->n_namespaces == 6 && s->n_mounts == 7,
	   "and it parses as the default spec (%s)", err.msg);
	oci_spec_free(s);
	ok(run(&cli, verb_spec, &out, &err, 3, "spec", "-b", top) == 1 &&
		   strstr(err.msg, "exists: remove it first") != NULL,
	   "a second spec refuses to overwrite: %s", err.msg);
	free(out);
	ok(run(&cli, verb_spec, &out, &err, 2, "spec", "--rootless") == 1 &&
		   strstr(err.msg, "runs as root") != NULL,
	   "spec --rootless refused: %s", err.msg);
	free(out);
}

static void put_state(const char *root, const char *id,
		      enum container_status st, pid_t pid)
{
	struct kiln_error err = { 0 };
	struct container_state s = {
		.id = (char *)id,
		.bundle = "/b",
		.rootfs = "/b/rootfs",
		.created = "2026-12-02T00:00:00.000000000Z",
		.owner = "",
		.status = st,
		.pid = pid,
		.pid_start = proc_start_time(pid),
	};
	int fd = oci_state_dir_create(root, id, &err);

	container_state_save(fd, &s, &err);
	close(fd);
}

static void test_state_list(void)
{
	char root[320];
	struct kiln_cli cli = { .root = root };
	struct kiln_error err;
	char *out = NULL;

	snprintf(root, sizeof(root), "%s/run", top);
	ok(run(&cli, verb_list, &out, &err, 1, "list") == 0 && out != NULL &&
		   strncmp(out, "ID          PID         STATUS", 30) == 0 &&
		   strchr(out, '\n') == out + strlen(out) - 1,
	   "list with no root yet: the header alone");
	free(out);
	ok(run(&cli, verb_list, &out, &err, 3, "list", "--format", "json") ==
			   0 &&
		   strcmp(out, "null\n") == 0,
	   "list --format json with none: null");
	free(out);
	put_state(root, "alive", CONTAINER_RUNNING, getpid());
	/* a pid that no process has: its pid process died with kill -9 */
	put_state(root, "dead", CONTAINER_RUNNING, 0x3ffffff);
	ok(run(&cli, verb_state, &out, &err, 2, "state", "alive") == 0 &&
		   strstr(out, "\"status\": \"running\"") != NULL,
	   "state of a live container: running");
	free(out);
	ok(run(&cli, verb_state, &out, &err, 2, "state", "dead") == 0 &&
		   strstr(out, "\"status\": \"stopped\"") != NULL &&
		   strstr(out, "\"pid\": 0") != NULL,
	   "state of one whose pid process died: stopped, pid 0");
	free(out);
	ok(run(&cli, verb_state, &out, &err, 2, "state", "nope") == 1 &&
		   strstr(err.msg, "container `nope` does not exist") != NULL,
	   "state of an unknown id: %s", err.msg);
	free(out);
	ok(run(&cli, verb_state, &out, &err, 2, "state", "../x") == 1 &&
		   err.errnum == EINVAL,
	   "state of an unsafe id: %s", err.msg);
	free(out);
	ok(run(&cli, verb_list, &out, &err, 2, "list", "-q") == 0 &&
		   strcmp(out, "alive\ndead\n") == 0,
	   "list -q: ids in order");
	free(out);
	ok(run(&cli, verb_list, &out, &err, 1, "list") == 0 &&
		   strstr(out, "\nalive ") != NULL &&
		   strstr(out, " running ") != NULL &&
		   strstr(out, " stopped ") != NULL,
	   "list: a row each, with its status");
	free(out);
	ok(run(&cli, verb_list, &out, &err, 2, "list", "--format=json") == 0 &&
		   out[0] == '[' && strstr(out, "\"id\": \"dead\"") != NULL,
	   "list --format=json: an array of states");
	free(out);
	ok(run(&cli, verb_list, &out, &err, 3, "list", "-f", "yaml") == 1 &&
		   strstr(err.msg, "neither table nor json") != NULL,
	   "list -f yaml refused");
	free(out);
}

int main(void)
{
	char cmd[64];

	if (mkdtemp(top) == NULL)
		return 1;
	snprintf(out_path, sizeof(out_path), "%s/stdout", top);
	test_flags();
	test_spec();
	test_state_list();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
