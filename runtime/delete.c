/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln delete [--force] ID. A stopped or created container goes (runc
 * deletes a created one too); a running one only with --force. Whatever
 * is left of it (its pid process, its VM after a kill -9 of either) is
 * killed first: nothing outlives its state directory.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"
#include "../oci/container.h"
#include "../oci/state.h"
#include "kiln.h"

/* SIGKILL pid if it still is the process that started at start, and
 * wait (up to 10 s) until it is gone: it need not be our child. */
static void kill_gone(pid_t pid, uint64_t start)
{
	if (pid <= 0 || !proc_alive(pid, start))
		return;
	kill(pid, SIGKILL);
	for (int i = 0; i < 1000 && proc_alive(pid, start); i++)
		usleep(10000);
}

/* The host cgroup (what is left in it killed), then the bundle's
 * poststop hooks if it still has the config that names them. */
static void poststop(const struct kiln_cli *cli, int fd,
		     struct container_state *s)
{
	struct kiln_error err = { 0 };
	struct oci_spec *spec = oci_spec_load(s->bundle, &err);
	char *state;

	cgroup_remove(fd, spec, cli->systemd_cgroup);
	if (spec == NULL || spec->n_hooks[OCI_HOOK_POSTSTOP] == 0) {
		oci_spec_free(spec);
		return;
	}
	s->status = CONTAINER_STOPPED;
	state = oci_state_json(s, &err);
	if (state != NULL)
		hooks_run(spec, OCI_HOOK_POSTSTOP, state, -1, &err);
	free(state);
	oci_spec_free(spec);
}

int container_remove(const struct kiln_cli *cli, const char *id, bool force,
		     struct kiln_error *err)
{
	struct container_state s;
	struct kiln_error missing = { 0 };
	enum container_status st;
	int fd;

	fd = container_open(cli, id, &s, &missing);
	if (fd < 0) {
		/* runc: --force on a container that is not there is done */
		if (force && missing.errnum == ENOENT)
			return 0;
		*err = missing;
		return -1;
	}
	st = container_status_now(&s);
	if ((st == CONTAINER_RUNNING || st == CONTAINER_PAUSED) && !force) {
		kiln_error_set(err, 0,
			       "cannot delete container `%s` that is %s "
			       "(use --force)",
			       id, container_status_names[st]);
		container_state_clear(&s);
		close(fd);
		return -1;
	}
	kill_gone(s.pid, s.pid_start);
	kill_gone(s.vmm_pid, s.vmm_start);
	/* a pod's container: what its pid process did not take out of the
	 * pod's guest (after a kill -9; else this finds nothing left) */
	if (s.sandbox != NULL)
		pod_remove(&s, fd);
	/* after a kill -9 of the pid process its TAPs and qdiscs are left,
	 * and its virtiofsd daemons' pid files */
	net_remove(fd);
	/* the VM's socket folder; a jailed VM's uid free again */
	vm_jail_remove(fd);
	{
		char dir[PATH_MAX];

		if (snprintf(dir, sizeof(dir), "%s/%s", cli->root, id) <
		    (int)sizeof(dir))
			vm_fs_leftovers_remove(dir);
	}
	poststop(cli, fd, &s);
	close(fd);
	container_state_clear(&s);
	return oci_state_dir_remove(cli->root, id, err);
}

int verb_delete(const struct kiln_cli *cli, int argc, char **argv,
		struct kiln_error *err)
{
	bool force = false;
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++)
		if (!cli_bool(argv, i, "force", &force) &&
		    !cli_bool(argv, i, "f", &force))
			return kiln_error_set(err, 0, "delete: unknown flag %s",
					      argv[i]),
			       1;
	if (argc - i != 1)
		return kiln_error_set(err, 0,
				      "usage: kiln delete [--force] ID"),
		       1;
	return container_remove(cli, argv[i], force, err) < 0 ? 1 : 0;
}
