/* SPDX-License-Identifier: Apache-2.0 */
/* oci/container.c: state.json, liveness by pid and start time. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/json.h"
#include "../../oci/container.h"
#include "../../oci/state.h"
#include "tap.h"

static char *keys[] = { "io.kubernetes.cri.sandbox-id", NULL };
static char *vals[] = { "abc\"quoted\"", NULL };

static void fill(struct container_state *s)
{
	static char created[40];

	rfc3339_now(created);
	*s = (struct container_state){
		.id = "c1",
		.bundle = "/b",
		.rootfs = "/b/rootfs",
		.created = created,
		.owner = "",
		.status = CONTAINER_RUNNING,
		.pid = getpid(),
		.pid_start = proc_start_time(getpid()),
		.vmm_pid = 42,
		.vmm_start = 7,
		.annotation_keys = keys,
		.annotation_values = vals,
		.n_annotations = 1,
	};
}

static void test_roundtrip(void)
{
	struct container_state s, r;
	struct kiln_error err = { 0 };
	char *text;

	fill(&s);
	text = container_state_to_json(&s, &err);
	if (!ok(text != NULL, "state.json written"))
		return;
	if (!ok(container_state_from_json(&r, text, strlen(text), &err) == 0,
		"and read back (%s)", err.msg))
		goto out;
	ok(strcmp(r.id, "c1") == 0 && strcmp(r.bundle, "/b") == 0 &&
		   strcmp(r.rootfs, "/b/rootfs") == 0 &&
		   strcmp(r.created, s.created) == 0 && r.owner[0] == '\0',
	   "strings survive");
	ok(r.status == CONTAINER_RUNNING && r.pid == s.pid &&
		   r.pid_start == s.pid_start && r.vmm_pid == 42 &&
		   r.vmm_start == 7 && !r.has_exit_status,
	   "numbers survive");
	ok(r.n_annotations == 1 && strcmp(r.annotation_values[0], "abc\"quoted"
								  "\"") == 0,
	   "annotations survive, quotes escaped");
	container_state_clear(&r);
	ok(strlen(s.created) == 30 && s.created[10] == 'T' &&
		   s.created[29] == 'Z',
	   "created is RFC 3339 with nanoseconds: %s", s.created);
out:
	free(text);
	ok(container_state_from_json(&r, "{\"id\":\"x\",\"status\":\"odd\"}",
				     25, &err) < 0 &&
		   strstr(err.msg, "unknown \"odd\"") != NULL,
	   "an unknown status is refused: %s", err.msg);
	ok(container_state_from_json(&r, "{\"status\":\"created\"}", 20, &err) <
		   0,
	   "a state without id is refused");
}

static void test_liveness(void)
{
	struct container_state s;
	uint64_t start;
	pid_t child;
	int status;

	fill(&s);
	ok(container_status_now(&s) == CONTAINER_RUNNING, "a live pid process: "
							  "its recorded "
							  "status");
	s.pid_start++;
	ok(container_status_now(&s) == CONTAINER_STOPPED, "the same pid with "
							  "another start time "
							  "(reused): stopped");
	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	start = proc_start_time(child);
	ok(start != 0 && proc_alive(child, start), "a child is alive");
	kill(child, SIGKILL);
	/* a zombie is dead already, before it is reaped */
	for (int i = 0; i < 1000 && proc_alive(child, start); i++)
		usleep(1000);
	ok(!proc_alive(child, start), "a killed child, not yet reaped: dead");
	waitpid(child, &status, 0);
	ok(!proc_alive(child, start) && proc_start_time(child) == 0, "a reaped "
								     "child: "
								     "gone");
	s.pid = child;
	s.pid_start = start;
	ok(container_status_now(&s) == CONTAINER_STOPPED, "a container whose "
							  "pid process died "
							  "reads stopped");
	s.pid = 0;
	s.status = CONTAINER_CREATING;
	ok(container_status_now(&s) == CONTAINER_CREATING, "no pid process "
							   "yet: creating");
}

static void test_oci_state(void)
{
	struct container_state s;
	struct kiln_error err = { 0 };
	char *text;
	yajl_val v;

	fill(&s);
	text = oci_state_json(&s, &err);
	v = text ? json_parse(text, strlen(text), &err) : NULL;
	ok(v != NULL && strstr(text, "\n  \"id\": \"c1\"") != NULL,
	   "kiln state prints runc's shape, two-space indent");
	ok(YAJL_IS_INTEGER(json_get(v, "pid")) &&
		   YAJL_GET_INTEGER(json_get(v, "pid")) == getpid() &&
		   strcmp(json_get(v, "status")->u.string, "running") == 0 &&
		   strcmp(json_get(v, "ociVersion")->u.string, "1.0.2") == 0,
	   "pid, status and ociVersion");
	ok(json_get(v, "vmm_pid") == NULL && json_get(v, "pid_start") == NULL,
	   "our own fields stay in state.json");
	yajl_tree_free(v);
	free(text);
	s.status = CONTAINER_STOPPED;
	text = oci_state_json(&s, &err);
	v = json_parse(text, strlen(text), &err);
	ok(YAJL_GET_INTEGER(json_get(v, "pid")) == 0 &&
		   strcmp(json_get(v, "status")->u.string, "stopped") == 0,
	   "stopped: pid 0");
	yajl_tree_free(v);
	free(text);
}

static void test_save_load(void)
{
	char root[] = "/tmp/kiln-cstate-XXXXXX";
	struct container_state s, r;
	struct kiln_error err = { 0 };
	int fd;

	fill(&s);
	mkdtemp(root);
	fd = oci_state_dir_create(root, "c1", &err);
	ok(fd >= 0 && container_state_save(fd, &s, &err) == 0, "saved into the "
							       "state dir");
	ok(container_state_load(fd, &r, &err) == 0 && strcmp(r.id, "c1") == 0,
	   "loaded back (%s)", err.msg);
	container_state_clear(&r);
	close(fd);
	oci_state_dir_remove(root, "c1", &err);
	rmdir(root);
}

int main(void)
{
	test_roundtrip();
	test_liveness();
	test_oci_state();
	test_save_load();
	return tap_done();
}
