/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln update [flags] ID, or kiln update -r FILE|- ID: new limits on a
 * running (or created) container's cgroup in its guest, as runc update
 * (containerd's runc shim sends -r - with a LinuxResources object on
 * stdin). The agent rewrites the cgroup files (UpdateContainer). Memory
 * cannot grow past the VM's, which is sized at create: the agent says so.
 * The CPU's quota, period and shares change on the VM's host cgroup too,
 * first, and are put back if the guest refuses; its host memory.max and
 * pids.max follow the VM's size, which does not change.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/agent_client.h"
#include "../lib/cleanup.h"
#include "../lib/file.h"
#include "../oci/container.h"
#include "kiln.h"

#define UPDATE_JSON_MAX (64u << 10)
#define CALL_TIMEOUT	(30ull * 1000000000)

static const char *const value_flags[] = {
	"memory",	 "memory-reservation", "memory-swap",
	"kernel-memory", "kernel-memory-tcp",  "cpu-shares",
	"cpu-quota",	 "cpu-period",	       "cpuset-cpus",
	"cpuset-mems",	 "pids-limit",	       "blkio-weight",
	"cpu-rt-period", "cpu-rt-runtime",     "l3-cache-schema",
	"mem-bw-schema",
};

static char *read_stdin(size_t *len, struct kiln_error *err)
{
	cleanup_free char *buf = malloc(UPDATE_JSON_MAX + 1);
	size_t n = 0;

	if (buf == NULL)
		return kiln_error_set(err, ENOMEM, "stdin"), NULL;
	for (;;) {
		ssize_t r =
			read(STDIN_FILENO, buf + n, UPDATE_JSON_MAX + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return kiln_error_set(err, errno, "read stdin"), NULL;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > UPDATE_JSON_MAX)
			return kiln_error_set(err, EFBIG,
					      "stdin: more than %u bytes",
					      UPDATE_JSON_MAX),
			       NULL;
	}
	buf[n] = '\0';
	*len = n;
	return steal_ptr(&buf);
}

/* The flags into r (or -r's file); the index of ID, or -1 with err. */
static int parse(int argc, char **argv, Kiln__Agent__V1__Resources *r,
		 struct kiln_error *err)
{
	const char *file = NULL;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *v = NULL;
		size_t k;
		int res;

		if ((res = cli_flag(argc, argv, &i, "resources", &file, err)) ||
		    (res = cli_flag(argc, argv, &i, "r", &file, err))) {
			if (res < 0)
				return -1;
			continue;
		}
		for (k = 0; k < ARRAY_SIZE(value_flags); k++) {
			res = cli_flag(argc, argv, &i, value_flags[k], &v, err);
			if (res != 0)
				break;
		}
		if (res < 0)
			return -1;
		if (res == 0)
			return kiln_error_set(err, 0, "update: unknown flag %s",
					      argv[i]);
		if (resources_flag(value_flags[k], v, r, err) < 0)
			return -1;
	}
	if (i != argc - 1)
		return kiln_error_set(err, 0,
				      "usage: kiln update [flags] ID, or "
				      "kiln update -r FILE|- ID");
	if (file != NULL) {
		bool in = strcmp(file, "-") == 0;
		cleanup_free char *text = NULL;
		size_t len = 0;

		/* as runc: with -r, the other flags are ignored */
		resources_clear(r);
		text = in ? read_stdin(&len, err)
			  : file_read(file, UPDATE_JSON_MAX, &len, err);
		if (text == NULL || resources_from_json(text, len, r, err) < 0)
			return kiln_error_wrap(err, "-r %s", in ? "-" : file);
	}
	return i;
}

int verb_update(const struct kiln_cli *cli, int argc, char **argv,
		struct kiln_error *err)
{
	Kiln__Agent__V1__Resources r;
	struct container_state s;
	struct agent_client *c = NULL;
	struct cgroup_limits host;
	struct cgroup_write w[CGROUP_WRITES_MAX];
	size_t n = 0;
	bool member;
	cleanup_free char *guest = NULL;
	cleanup_close int fd = -1;
	enum container_status st;
	int i, status = 1;

	resources_init(&r);
	i = parse(argc, argv, &r, err);
	if (i < 0)
		goto out;
	fd = container_open(cli, argv[i], &s, err);
	if (fd < 0)
		goto out;
	st = container_status_now(&s);
	guest = strdup(container_guest_id(&s));
	member = s.sandbox != NULL;
	container_state_clear(&s);
	if (guest == NULL) {
		kiln_error_set(err, ENOMEM, "update");
		goto out;
	}
	/* a paused VM is stopped whole: its agent cannot answer */
	if (st != CONTAINER_CREATED && st != CONTAINER_RUNNING) {
		kiln_error_set(
			err, 0, "cannot update container `%s`: it is %s%s",
			argv[i], container_status_names[st],
			st == CONTAINER_PAUSED ? " (resume it first)" : "");
		goto out;
	}
	if (resources_empty(&r)) {
		status = 0; /* nothing to change, as runc */
		goto out;
	}
	/* the VM's vsock socket is in the state directory */
	if (fchdir(fd) < 0) {
		kiln_error_set(err, errno, "chdir to the state dir");
		goto out;
	}
	/* a pod's container: the sandbox's cgroup holds the VM */
	if (!member && (cgroup_limits_update(&r, &host, err) < 0 ||
			cgroup_limit(fd, &host, w, &n, err) < 0)) {
		kiln_error_wrap(err, "update container `%s`", argv[i]);
		goto out;
	}
	c = agent_client_connect(VM_VSOCK, agent_deadline_ms(10000),
				 CALL_TIMEOUT, err);
	if (c == NULL || agent_update(c, guest, &r, err) < 0) {
		cgroup_undo(fd, w, n);
		kiln_error_wrap(err, "update container `%s`", argv[i]);
		goto out;
	}
	status = 0;
out:
	agent_client_free(c);
	resources_clear(&r);
	return status;
}
