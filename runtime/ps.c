/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln ps [--format table|json] ID. runc lists the host pids of the
 * container's processes; a kiln container's processes run in its guest,
 * and on the host there is its pid process, whose pid is what `ps` gives
 * (docker top then shows that process).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../oci/container.h"
#include "kiln.h"

int verb_ps(const struct kiln_cli *cli, int argc, char **argv,
	    struct kiln_error *err)
{
	struct container_state s;
	const char *format = "table";
	enum container_status st;
	int i = 1, fd;
	pid_t pid;

	for (; i < argc && argv[i][0] == '-'; i++) {
		int r = cli_flag(argc, argv, &i, "format", &format, err);

		if (r == 0)
			r = cli_flag(argc, argv, &i, "f", &format, err);
		if (r < 0)
			return 1;
		if (r == 0)
			return kiln_error_set(err, 0, "ps: unknown flag %s",
					      argv[i]),
			       1;
	}
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
		return kiln_error_set(err, 0, "ps: unknown format `%s`",
				      format),
		       1;
	if (argc - i < 1)
		return kiln_error_set(err, 0, "usage: kiln ps [--format F] ID"),
		       1;
	fd = container_open(cli, argv[i], &s, err);
	if (fd < 0)
		return 1;
	close(fd);
	st = container_status_now(&s);
	pid = s.pid;
	container_state_clear(&s);
	if (st != CONTAINER_RUNNING && st != CONTAINER_PAUSED &&
	    st != CONTAINER_CREATED)
		return kiln_error_set(err, 0, "container `%s` is not running",
				      argv[i]),
		       1;
	if (strcmp(format, "json") == 0)
		printf("[%d]\n", pid);
	else
		printf("PID\tCMD\n%d\tkiln (pid process of %s)\n", pid,
		       argv[i]);
	return 0;
}
