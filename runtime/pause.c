/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln pause ID, kiln resume ID: runc's verbs. The pid process stops
 * kiln-vmm whole (every vCPU and device thread: the guest does not run
 * at all) and starts it again; runc freezes the container's cgroup to the
 * same end. While paused, only SIGKILL reaches the container (it resumes
 * the VM first); `delete --force` works as ever.
 */
#include <stdio.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../oci/container.h"
#include "kiln.h"

static int pause_resume(const struct kiln_cli *cli, int argc, char **argv,
			bool pause, struct kiln_error *err)
{
	struct container_state s;
	char reply[CTL_LINE_MAX];
	cleanup_close int fd = -1;
	enum container_status st;

	if (argc != 2)
		return kiln_error_set(err, 0, "usage: kiln %s ID", argv[0]), 1;
	fd = container_open(cli, argv[1], &s, err);
	if (fd < 0)
		return 1;
	st = container_status_now(&s);
	container_state_clear(&s);
	if (st != (pause ? CONTAINER_RUNNING : CONTAINER_PAUSED))
		return kiln_error_set(err, 0, "container `%s` is %s, not %s",
				      argv[1], container_status_names[st],
				      pause ? "running" : "paused"),
		       1;
	if (ctl_call(fd, pause ? "pause" : "resume", reply, sizeof(reply),
		     err) < 0)
		return 1;
	return 0;
}

int verb_pause(const struct kiln_cli *cli, int argc, char **argv,
	       struct kiln_error *err)
{
	return pause_resume(cli, argc, argv, true, err);
}

int verb_resume(const struct kiln_cli *cli, int argc, char **argv,
		struct kiln_error *err)
{
	return pause_resume(cli, argc, argv, false, err);
}
