/* SPDX-License-Identifier: Apache-2.0 */
/* kiln start ID: the container's pid process starts its init. */
#include <stdio.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../oci/container.h"
#include "../oci/state.h"
#include "kiln.h"

int container_open(const struct kiln_cli *cli, const char *id,
		   struct container_state *s, struct kiln_error *err)
{
	int fd;

	if (oci_id_check(id, err) < 0)
		return -1;
	fd = oci_state_dir_open(cli->root, id, err);
	if (fd < 0)
		return -1;
	if (container_state_load(fd, s, err) < 0) {
		close(fd);
		return kiln_error_wrap(err, "container `%s`", id);
	}
	return fd;
}

int verb_start(const struct kiln_cli *cli, int argc, char **argv,
	       struct kiln_error *err)
{
	struct container_state s;
	char reply[CTL_LINE_MAX];
	cleanup_close int fd = -1;
	enum container_status st;
	int res;

	if (argc != 2)
		return kiln_error_set(err, 0, "usage: kiln start ID"), 1;
	fd = container_open(cli, argv[1], &s, err);
	if (fd < 0)
		return 1;
	st = container_status_now(&s);
	container_state_clear(&s);
	if (st != CONTAINER_CREATED)
		return kiln_error_set(err, 0,
				      "cannot start a container that is %s",
				      container_status_names[st]),
		       1;
	res = ctl_call(fd, "start", reply, sizeof(reply), err);
	return res < 0 ? 1 : 0;
}
