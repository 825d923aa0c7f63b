/* SPDX-License-Identifier: Apache-2.0 */
#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "../lib/cleanup.h"
#include "../lib/file.h"
#include "../lib/json.h"
#include "state.h"

#define STATE_FILE  "state.json"
#define STATE_MAX   (1u << 20)
#define OCI_VERSION "1.0.2"

const char *const container_status_names[] = {
	[CONTAINER_CREATING] = "creating", [CONTAINER_CREATED] = "created",
	[CONTAINER_RUNNING] = "running",   [CONTAINER_PAUSED] = "paused",
	[CONTAINER_STOPPED] = "stopped",
};

static void gen_free(yajl_gen *g)
{
	if (*g != NULL)
		yajl_gen_free(*g);
}

#define cleanup_gen __attribute__((cleanup(gen_free)))

static void put_str(yajl_gen g, const char *s)
{
	s = s ? s : "";
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void put_kv(yajl_gen g, const char *k, const char *v)
{
	put_str(g, k);
	put_str(g, v);
}

static void put_ki(yajl_gen g, const char *k, long long v)
{
	put_str(g, k);
	yajl_gen_integer(g, v);
}

static void put_annotations(yajl_gen g, const struct container_state *s)
{
	put_str(g, "annotations");
	yajl_gen_map_open(g);
	for (size_t i = 0; i < s->n_annotations; i++)
		put_kv(g, s->annotation_keys[i], s->annotation_values[i]);
	yajl_gen_map_close(g);
}

static char *gen_take(yajl_gen g, struct kiln_error *err)
{
	const unsigned char *buf;
	size_t len;
	char *out;

	if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
		kiln_error_set(err, 0, "write JSON");
		return NULL;
	}
	out = strndup((const char *)buf, len);
	if (out == NULL)
		kiln_error_set(err, ENOMEM, "write JSON");
	return out;
}

char *container_state_to_json(const struct container_state *s,
			      struct kiln_error *err)
{
	cleanup_gen yajl_gen g = yajl_gen_alloc(NULL);

	if (g == NULL) {
		kiln_error_set(err, ENOMEM, "write JSON");
		return NULL;
	}
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	yajl_gen_map_open(g);
	put_kv(g, "id", s->id);
	put_kv(g, "bundle", s->bundle);
	put_kv(g, "rootfs", s->rootfs);
	put_kv(g, "created", s->created);
	put_kv(g, "owner", s->owner);
	put_kv(g, "status", container_status_names[s->status]);
	put_ki(g, "pid", s->pid);
	put_ki(g, "pid_start", (long long)s->pid_start);
	put_ki(g, "vmm_pid", s->vmm_pid);
	put_ki(g, "vmm_start", (long long)s->vmm_start);
	if (s->has_exit_status)
		put_ki(g, "exit_status", s->exit_status);
	if (s->sandbox != NULL)
		put_kv(g, "sandbox", s->sandbox);
	put_annotations(g, s);
	yajl_gen_map_close(g);
	return gen_take(g, err);
}

static int parse_status(const char *name, enum container_status *out,
			struct kiln_error *err)
{
	for (int i = 0; i <= CONTAINER_STOPPED; i++) {
		if (strcmp(name, container_status_names[i]) == 0) {
			*out = (enum container_status)i;
			return 0;
		}
	}
	return kiln_error_set(err, 0, "state.json status: unknown \"%s\"",
			      name);
}

int container_state_from_json(struct container_state *s, const char *text,
			      size_t len, struct kiln_error *err)
{
	yajl_val root = json_parse(text, len, err);
	cleanup_free char *status = NULL;
	int64_t pid = 0, vmm = 0, exit_status = 0;
	uint64_t ps = 0, vs = 0;
	int ret = -1;

	memset(s, 0, sizeof(*s));
	if (root == NULL)
		return -1;
	if (!YAJL_IS_OBJECT(root)) {
		kiln_error_set(err, 0, "state.json: not an object");
		goto out;
	}
	if (json_string(json_get(root, "id"), "id", &s->id, err) < 0 ||
	    json_string(json_get(root, "bundle"), "bundle", &s->bundle, err) <
		    0 ||
	    json_string(json_get(root, "rootfs"), "rootfs", &s->rootfs, err) <
		    0 ||
	    json_string(json_get(root, "created"), "created", &s->created,
			err) < 0 ||
	    json_string(json_get(root, "owner"), "owner", &s->owner, err) < 0 ||
	    json_string(json_get(root, "status"), "status", &status, err) < 0 ||
	    json_string(json_get(root, "sandbox"), "sandbox", &s->sandbox,
			err) < 0 ||
	    json_int(json_get(root, "pid"), "pid", 0, INT32_MAX, &pid, err) <
		    0 ||
	    json_uint(json_get(root, "pid_start"), "pid_start", UINT64_MAX, &ps,
		      err) < 0 ||
	    json_int(json_get(root, "vmm_pid"), "vmm_pid", 0, INT32_MAX, &vmm,
		     err) < 0 ||
	    json_uint(json_get(root, "vmm_start"), "vmm_start", UINT64_MAX, &vs,
		      err) < 0 ||
	    json_int(json_get(root, "exit_status"), "exit_status", 0, 255,
		     &exit_status, err) < 0 ||
	    json_strmap(json_get(root, "annotations"), "annotations",
			&s->annotation_keys, &s->annotation_values,
			&s->n_annotations, err) < 0)
		goto out;
	if (s->id == NULL || status == NULL ||
	    parse_status(status, &s->status, err) < 0) {
		if (s->id == NULL || status == NULL)
			kiln_error_set(err, 0,
				       "state.json: id or status "
				       "missing");
		goto out;
	}
	s->pid = (pid_t)pid;
	s->pid_start = ps;
	s->vmm_pid = (pid_t)vmm;
	s->vmm_start = vs;
	s->has_exit_status = json_get(root, "exit_status") != NULL;
	s->exit_status = (int)exit_status;
	ret = 0;
out:
	yajl_tree_free(root);
	if (ret < 0)
		container_state_clear(s);
	return ret;
}

const char *container_guest_id(const struct container_state *s)
{
	return s->sandbox != NULL ? s->id : KILN_GUEST_ID;
}

void container_state_clear(struct container_state *s)
{
	free(s->id);
	free(s->bundle);
	free(s->rootfs);
	free(s->created);
	free(s->owner);
	free(s->sandbox);
	json_strv_free(s->annotation_keys);
	json_strv_free(s->annotation_values);
	memset(s, 0, sizeof(*s));
}

int container_state_save(int dirfd, const struct container_state *s,
			 struct kiln_error *err)
{
	cleanup_free char *text = container_state_to_json(s, err);

	if (text == NULL)
		return -1;
	return oci_write_atomic(dirfd, STATE_FILE, text, strlen(text), 0600,
				err);
}

int container_state_load(int dirfd, struct container_state *s,
			 struct kiln_error *err)
{
	char path[64];
	cleanup_free char *text = NULL;
	size_t len = 0;

	/* through /proc: file_read takes a path, the directory is an fd */
	snprintf(path, sizeof(path), "/proc/self/fd/%d/" STATE_FILE, dirfd);
	text = file_read(path, STATE_MAX, &len, err);
	if (text == NULL)
		return -1;
	return container_state_from_json(s, text, len, err);
}

uint64_t proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long start = 0;
	cleanup_close int fd = -1;
	ssize_t n;
	char *p;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may hold spaces and ')': fields start after the last ')' */
	p = strrchr(buf, ')');
	if (p == NULL)
		return 0;
	/* after ")": state is field 3, starttime field 22 */
	if (sscanf(p + 1,
		   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d "
		   "%*d %*d %*d %*d %*d %llu",
		   &start) != 1)
		return 0;
	/* a zombie has exited: it only waits to be reaped */
	if (p[1] == ' ' && p[2] == 'Z')
		return 0;
	return start;
}

bool proc_alive(pid_t pid, uint64_t start)
{
	return pid > 0 && start != 0 && proc_start_time(pid) == start;
}

enum container_status container_status_now(const struct container_state *s)
{
	if (s->status == CONTAINER_STOPPED)
		return CONTAINER_STOPPED;
	if (s->pid == 0)
		return s->status; /* creating: no pid process yet */
	return proc_alive(s->pid, s->pid_start) ? s->status : CONTAINER_STOPPED;
}

char *oci_state_json(const struct container_state *s, struct kiln_error *err)
{
	cleanup_gen yajl_gen g = yajl_gen_alloc(NULL);
	enum container_status now = container_status_now(s);

	if (g == NULL) {
		kiln_error_set(err, ENOMEM, "write JSON");
		return NULL;
	}
	yajl_gen_config(g, yajl_gen_beautify, 1);
	yajl_gen_config(g, yajl_gen_indent_string, "  ");
	yajl_gen_map_open(g);
	put_kv(g, "ociVersion", OCI_VERSION);
	put_kv(g, "id", s->id);
	put_ki(g, "pid", now == CONTAINER_STOPPED ? 0 : s->pid);
	put_kv(g, "status", container_status_names[now]);
	put_kv(g, "bundle", s->bundle);
	put_kv(g, "rootfs", s->rootfs);
	put_kv(g, "created", s->created);
	put_kv(g, "owner", s->owner);
	/* runtime-spec's State: annotations,omitempty */
	if (s->n_annotations > 0)
		put_annotations(g, s);
	yajl_gen_map_close(g);
	return gen_take(g, err);
}

void rfc3339_now(char buf[40])
{
	char date[32];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	/* 19 + 1 + 9 + 1 bytes for any year up to 9999 */
	snprintf(buf, 40, "%.19s.%09dZ", date, (int)(ts.tv_nsec % 1000000000));
}
