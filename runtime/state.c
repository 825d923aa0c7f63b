/* SPDX-License-Identifier: Apache-2.0 */
/* kiln state ID, kiln list: what is under --root, in runc's shapes. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "../lib/cleanup.h"
#include "../oci/container.h"
#include "../oci/state.h"
#include "kiln.h"

static int load(const struct kiln_cli *cli, const char *id,
		struct container_state *s, struct kiln_error *err)
{
	cleanup_close int fd = oci_state_dir_open(cli->root, id, err);

	if (fd < 0)
		return -1;
	if (container_state_load(fd, s, err) < 0)
		return kiln_error_wrap(err, "container `%s`", id);
	return 0;
}

int verb_state(const struct kiln_cli *cli, int argc, char **argv,
	       struct kiln_error *err)
{
	struct container_state s;
	cleanup_free char *text = NULL;

	if (argc != 2)
		return kiln_error_set(err, 0, "usage: kiln state ID"), 1;
	if (load(cli, argv[1], &s, err) < 0)
		return 1;
	text = oci_state_json(&s, err);
	container_state_clear(&s);
	if (text == NULL)
		return 1;
	printf("%s\n", text);
	return 0;
}

/* Every state under root, sorted by id; containers being made or removed
 * right now (no state.json yet, or no longer) are left out, as runc does. */
static int list_states(const char *root, struct container_state **out,
		       size_t *n, struct kiln_error *err)
{
	struct dirent **names = NULL;
	struct container_state *v;
	int count = scandir(root, &names, NULL, alphasort);

	*out = NULL;
	*n = 0;
	if (count < 0)
		return errno == ENOENT
			       ? 0
			       : kiln_error_set(err, errno, "read `%s`", root);
	v = calloc((size_t)count + 1, sizeof(*v));
	for (int i = 0; i < count; i++) {
		struct kiln_error ignored = { 0 };
		const char *id = names[i]->d_name;
		cleanup_close int fd = -1;

		if (v != NULL && oci_id_check(id, &ignored) == 0 &&
		    (fd = oci_state_dir_open(root, id, &ignored)) >= 0 &&
		    container_state_load(fd, &v[*n], &ignored) == 0)
			(*n)++;
		free(names[i]);
	}
	free(names);
	if (v == NULL)
		return kiln_error_set(err, ENOMEM, "list");
	*out = v;
	return 0;
}

static void print_table(const struct container_state *v, size_t n)
{
	/* runc's tabwriter: columns at least 12 wide, padding 1 */
	size_t w[4] = { 2, 3, 6, 6 };
	char pid[16];

	for (size_t i = 0; i < n; i++) {
		enum container_status st = container_status_now(&v[i]);

		snprintf(pid, sizeof(pid), "%d",
			 st == CONTAINER_STOPPED ? 0 : (int)v[i].pid);
		if (strlen(v[i].id) > w[0])
			w[0] = strlen(v[i].id);
		if (strlen(pid) > w[1])
			w[1] = strlen(pid);
		if (strlen(container_status_names[st]) > w[2])
			w[2] = strlen(container_status_names[st]);
		if (strlen(v[i].bundle) > w[3])
			w[3] = strlen(v[i].bundle);
	}
	for (int c = 0; c < 4; c++)
		w[c] = (w[c] + 1 < 12 ? 12 : w[c] + 1);
	printf("%-*s%-*s%-*s%-*s%-*s%s\n", (int)w[0], "ID", (int)w[1], "PID",
	       (int)w[2], "STATUS", (int)w[3], "BUNDLE", 31, "CREATED",
	       "OWNER");
	for (size_t i = 0; i < n; i++) {
		enum container_status st = container_status_now(&v[i]);

		snprintf(pid, sizeof(pid), "%d",
			 st == CONTAINER_STOPPED ? 0 : (int)v[i].pid);
		printf("%-*s%-*s%-*s%-*s%-*s%s\n", (int)w[0], v[i].id,
		       (int)w[1], pid, (int)w[2], container_status_names[st],
		       (int)w[3], v[i].bundle, 31, v[i].created,
		       v[i].owner[0] ? v[i].owner : "root");
	}
}

/* --format json: an array of OCI state documents, or null when empty. */
static int print_json(const struct container_state *v, size_t n,
		      struct kiln_error *err)
{
	if (n == 0) {
		printf("null\n");
		return 0;
	}
	printf("[");
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *one = oci_state_json(&v[i], err);

		if (one == NULL)
			return -1;
		printf("%s%s", i ? "," : "", one);
	}
	printf("]\n");
	return 0;
}

int verb_list(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err)
{
	const char *format = "table";
	struct container_state *v = NULL;
	bool quiet = false;
	size_t n = 0;
	int ret = 0;

	for (int i = 1; i < argc; i++) {
		int r = cli_flag(argc, argv, &i, "format", &format, err);

		if (r == 0)
			r = cli_flag(argc, argv, &i, "f", &format, err);
		if (r < 0)
			return 1;
		if (r > 0)
			continue;
		if (cli_bool(argv, i, "quiet", &quiet) ||
		    cli_bool(argv, i, "q", &quiet))
			continue;
		return kiln_error_set(err, 0, "list: unknown argument `%s`",
				      argv[i]),
		       1;
	}
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
		return kiln_error_set(err, 0,
				      "list: --format \"%s\" is neither table "
				      "nor json",
				      format),
		       1;
	if (list_states(cli->root, &v, &n, err) < 0)
		return 1;
	if (quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", v[i].id);
	} else if (strcmp(format, "json") == 0) {
		ret = print_json(v, n, err) < 0 ? 1 : 0;
	} else {
		print_table(v, n);
	}
	for (size_t i = 0; i < n; i++)
		container_state_clear(&v[i]);
	free(v);
	return ret;
}
