/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pods: the containers of one Kubernetes pod share one VM, their
 * sandbox's. containerd's CRI plugin marks the sandbox (the pause
 * container) io.kubernetes.cri.container-type=sandbox, and each other
 * container of the pod "container", with io.kubernetes.cri.sandbox-id.
 *
 * The sandbox's pid process boots its VM with an API socket and keeps
 * the drive slots its own rootfs leaves free, each holding a placeholder.
 * A later container's pid process (a member) asks it for slots over its
 * control socket, swaps its own images into them (PATCH /drives) and
 * creates its container in the guest through the sandbox's agent, under
 * its own id: its own rootfs and mount, pid, uts and ipc namespaces, the
 * guest's network (the pod's). When the member's container has left the
 * guest, the sandbox puts the placeholder back into its slots.
 *
 * The slot table is the sandbox pid process's, touched by its main
 * thread only (its control socket is served there).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/agent_client.h"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../oci/container.h"
#include "../oci/state.h"
#include "kiln.h"

#define POD_TYPE    "io.kubernetes.cri.container-type"
#define POD_SANDBOX "io.kubernetes.cri.sandbox-id"

const char *pod_sandbox_id(const struct oci_spec *spec)
{
	const char *type = oci_spec_annotation(spec, POD_TYPE);
	const char *sandbox = oci_spec_annotation(spec, POD_SANDBOX);

	if (type == NULL || strcmp(type, "container") != 0 || sandbox == NULL ||
	    sandbox[0] == '\0')
		return NULL;
	return sandbox;
}

bool pod_is_sandbox(const struct oci_spec *spec)
{
	const char *type = oci_spec_annotation(spec, POD_TYPE);

	return type != NULL && strcmp(type, "sandbox") == 0;
}

/* ---- the sandbox's side ------------------------------------------------- */

void pod_slots_init(struct pod_slots *ps, const struct vm_plan *plan)
{
	memset(ps, 0, sizeof(*ps));
	ps->first = plan->n_drives;
	if (plan->template_dir != NULL) {
		snprintf(ps->placeholder, sizeof(ps->placeholder), "%s/%s",
			 plan->template_dir, VM_SLOT);
		ps->placeholder_ro = true;
	} else {
		snprintf(ps->placeholder, sizeof(ps->placeholder), "%s",
			 VM_SLOT);
	}
}

/* A JSON string of s, quotes included, into out; -1 when it does not fit. */
static int json_quote(const char *s, char *out, size_t len)
{
	size_t n = 0;

	if (len < 3)
		return -1;
	out[n++] = '"';
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (n + 8 >= len)
			return -1;
		if (c == '"' || c == '\\')
			n += (size_t)snprintf(out + n, len - n, "\\%c", c);
		else if (c < 0x20)
			n += (size_t)snprintf(out + n, len - n, "\\u%04x", c);
		else
			out[n++] = (char)c;
	}
	out[n++] = '"';
	out[n] = '\0';
	return 0;
}

/*
 * The file goes over the API socket as an open fd (SCM_RIGHTS, our
 * extension of PATCH /drives: docs/api.md), opened here as root in the
 * drive's mode: the sandbox's kiln-vmm is jailed (docs/jail.md), and
 * neither sees the path nor may open it as its uid. path_on_host only
 * names it (GET /vm/config, kiln-vmm's log).
 */
int pod_drive_swap(const char *api, size_t slot, const char *path, bool ro,
		   struct kiln_error *err)
{
	char quoted[2 * PATH_MAX], url[32], body[2 * PATH_MAX + 128];
	char abs[PATH_MAX];
	cleanup_close int fd =
		open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return kiln_error_set(err, errno, "drive `%s`", path);
	if (realpath(path, abs) == NULL)
		snprintf(abs, sizeof(abs), "%s", path);
	if (json_quote(abs, quoted, sizeof(quoted)) < 0)
		return kiln_error_set(err, ENAMETOOLONG, "drive `%s`", path);
	snprintf(url, sizeof(url), "/drives/d%zu", slot);
	snprintf(body, sizeof(body),
		 "{\"drive_id\": \"d%zu\", \"path_on_host\": %s, "
		 "\"is_read_only\": %s}",
		 slot, quoted, ro ? "true" : "false");
	return vm_api_call_fd(api, "PATCH", url, body, fd, err);
}

static void release(struct pod_slots *ps, const char *id)
{
	struct kiln_error err = { 0 };

	for (size_t i = ps->first; i < VM_DRIVES_MAX; i++) {
		if (strcmp(ps->owner[i], id) != 0)
			continue;
		/* the placeholder back, so that kiln-vmm lets go of the
		 * file; if it did not, the slot's next user swaps anyway */
		if (pod_drive_swap(VM_API, i, ps->placeholder,
				   ps->placeholder_ro, &err) < 0)
			log_warn("slot %zu of %s: %s", i, id, err.msg);
		ps->owner[i][0] = '\0';
	}
}

static int reserve(struct pod_slots *ps, size_t want, const char *id,
		   char *reply, size_t len, struct kiln_error *err)
{
	size_t n = 0, got = 0, free_slots = 0;

	release(ps, id); /* a create again after one that failed */
	for (size_t i = ps->first; i < VM_DRIVES_MAX; i++)
		free_slots += ps->owner[i][0] == '\0';
	if (want == 0 || want > free_slots)
		return kiln_error_set(err, 0,
				      "the pod's VM has %zu free drive "
				      "slots of %d; `%s` needs %zu",
				      free_slots, VM_DRIVES_MAX, id, want);
	n += (size_t)snprintf(reply, len, "ok");
	for (size_t i = ps->first; i < VM_DRIVES_MAX && got < want; i++) {
		if (ps->owner[i][0] != '\0')
			continue;
		snprintf(ps->owner[i], sizeof(ps->owner[i]), "%.*s", POD_ID_MAX,
			 id);
		n += (size_t)snprintf(reply + n, len - n, " %zu", i);
		got++;
	}
	snprintf(reply + n, len - n, "\n");
	return 0;
}

int pod_ctl(struct pod_slots *ps, const char *line, char *reply, size_t len,
	    struct kiln_error *err)
{
	char id[POD_ID_MAX + 2];
	size_t want;

	if (sscanf(line, "slots %zu %65s", &want, id) == 2) {
		if (strlen(id) > POD_ID_MAX)
			return kiln_error_set(err, 0, "id too long");
		return reserve(ps, want, id, reply, len, err) < 0 ? -1 : 1;
	}
	if (sscanf(line, "release %65s", id) == 1) {
		release(ps, id);
		snprintf(reply, len, "ok\n");
		return 1;
	}
	return 0;
}

/* ---- a member's side ------------------------------------------------------ */

/* The state directory of sandbox beside ours (dirfd), O_PATH; -1 with
 * errno (EINVAL: not a container id). */
static int sandbox_dir(int dirfd, const char *sandbox)
{
	struct kiln_error err = { 0 };
	char rel[POD_ID_MAX + 8];

	if (oci_id_check(sandbox, &err) < 0 || strlen(sandbox) > POD_ID_MAX) {
		errno = EINVAL;
		return -1;
	}
	snprintf(rel, sizeof(rel), "../%s", sandbox);
	return openat(dirfd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* The sandbox's state directory, checked: a pod sandbox of kiln's whose
 * VM runs. */
static int sandbox_open(int dirfd, const char *sandbox, struct kiln_error *err)
{
	struct container_state st;
	enum container_status now;
	int fd = sandbox_dir(dirfd, sandbox), bad = 0;

	if (fd < 0 && errno == EINVAL)
		return kiln_error_set(err, 0,
				      "annotations: %s `%.80s`: not a "
				      "container id",
				      POD_SANDBOX, sandbox);
	if (fd < 0 || container_state_load(fd, &st, err) < 0) {
		if (fd >= 0)
			close(fd);
		return kiln_error_set(err, 0,
				      "annotations: %s `%s`: no such "
				      "container",
				      POD_SANDBOX, sandbox);
	}
	now = container_status_now(&st);
	if (st.sandbox != NULL || faccessat(fd, VM_API, F_OK, 0) < 0)
		bad = kiln_error_set(err, 0,
				     "annotations: %s `%s`: not a pod "
				     "sandbox (its annotations lack %s="
				     "sandbox)",
				     POD_SANDBOX, sandbox, POD_TYPE);
	else if (now != CONTAINER_CREATED && now != CONTAINER_RUNNING)
		bad = kiln_error_set(err, 0, "annotations: %s `%s` is %s",
				     POD_SANDBOX, sandbox,
				     container_status_names[now]);
	container_state_clear(&st);
	if (bad < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int pod_join(struct vm_plan *plan, const char *sandbox, const char *id,
	     int dirfd, struct kiln_error *err)
{
	cleanup_close int sb = -1;
	char req[CTL_LINE_MAX], reply[256], link[POD_ID_MAX + 32], api[64];
	size_t slots[VM_DRIVES_MAX], n = 0;
	char *p;

	if (strlen(id) > POD_ID_MAX)
		return kiln_error_set(err, 0,
				      "a pod's container id has at most %d "
				      "characters",
				      POD_ID_MAX);
	sb = sandbox_open(dirfd, sandbox, err);
	if (sb < 0)
		return -1;
	/* the pod's agent, where every verb looks for its container's */
	snprintf(link, sizeof(link), "../%s/%s", sandbox, VM_VSOCK);
	unlinkat(dirfd, VM_VSOCK, 0);
	if (symlinkat(link, dirfd, VM_VSOCK) < 0)
		return kiln_error_set(err, errno, "link %s", VM_VSOCK);
	if (plan->n_drives == 0)
		return 0;
	snprintf(req, sizeof(req), "slots %zu %s", plan->n_drives, id);
	if (ctl_call(sb, req, reply, sizeof(reply), err) < 0)
		return kiln_error_wrap(err, "pod sandbox `%s`", sandbox);
	for (p = reply + 2; n < plan->n_drives; n++) {
		char *end;
		unsigned long v = strtoul(p, &end, 10);

		if (end == p || v >= VM_DRIVES_MAX)
			break;
		slots[n] = v;
		p = end;
	}
	if (n != plan->n_drives) {
		pod_leave(dirfd, sandbox, id);
		return kiln_error_set(err, EPROTO, "pod sandbox `%s`: `%s`",
				      sandbox, reply);
	}
	vm_plan_move(plan, slots);
	snprintf(api, sizeof(api), "/proc/self/fd/%d/%s", sb, VM_API);
	for (size_t i = 0; i < n; i++)
		if (pod_drive_swap(api, slots[i], plan->drive_path[i],
				   plan->drive_ro[i], err) < 0) {
			pod_leave(dirfd, sandbox, id);
			return kiln_error_wrap(err, "pod sandbox `%s`",
					       sandbox);
		}
	return 0;
}

void pod_leave(int dirfd, const char *sandbox, const char *id)
{
	struct kiln_error err = { 0 };
	cleanup_close int sb = sandbox_dir(dirfd, sandbox);
	char req[CTL_LINE_MAX], reply[64];

	snprintf(req, sizeof(req), "release %s", id);
	/* a sandbox that has ended took its VM and slots along */
	if (sb >= 0 && ctl_call(sb, req, reply, sizeof(reply), &err) < 0)
		log_debug("release the slots of %s: %s", id, err.msg);
}

/* Whether the sandbox beside us (dirfd) still has its pid process. */
static bool sandbox_running(int dirfd, const char *sandbox)
{
	struct container_state st;
	struct kiln_error err = { 0 };
	cleanup_close int fd = sandbox_dir(dirfd, sandbox);
	bool up;

	if (fd < 0 || container_state_load(fd, &st, &err) < 0)
		return false;
	up = container_status_now(&st) != CONTAINER_STOPPED;
	container_state_clear(&st);
	return up;
}

void pod_remove(const struct container_state *s, int dirfd)
{
	struct kiln_error err = { 0 };
	struct agent_client *c;
	char path[64];

	/* what a pid process killed with -9 left in the pod's guest, if the
	 * pod's VM still runs */
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, VM_VSOCK);
	c = sandbox_running(dirfd, s->sandbox)
		    ? agent_client_connect(path, agent_deadline_ms(2000),
					   5ull * 1000000000, &err)
		    : NULL;
	if (c != NULL && agent_remove(c, s->id, &err) < 0 &&
	    err.errnum != ENOENT)
		log_debug("remove %s from its pod's guest: %s", s->id, err.msg);
	agent_client_free(c);
	pod_leave(dirfd, s->sandbox, s->id);
	/* its host directories' binds in the pod's folder (podfs.c) */
	podfs_unbind_member(dirfd, s->sandbox, s->id);
}
