/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.json's process and mounts as the agent's CreateContainer and
 * ExecProcess requests. The request points into the oci_spec's strings;
 * what is allocated here (vectors of sub-messages, carried file data) is
 * kept in the struct agent_request and freed with it.
 *
 * Every mount is either mapped to what it means in the guest or refused
 * by name (see map_mount); none is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../oci/layer.h"
#include "../oci/state.h"
#include "kiln.h"

/* the agent mounts these itself in every container (agent/mount.c) */
static const char *const agent_defaults[] = {
	"/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
};

static void *keep(struct agent_request *r, void *p)
{
	if (p == NULL || r->n_owned >= REQUEST_OWNED_MAX) {
		free(p);
		return NULL;
	}
	r->owned[r->n_owned++] = p;
	return p;
}

static void *kcalloc(struct agent_request *r, size_t n, size_t size)
{
	return keep(r, calloc(n ? n : 1, size));
}

void agent_request_free(struct agent_request *r)
{
	for (size_t i = 0; i < r->n_owned; i++)
		free(r->owned[i]);
	r->n_owned = 0;
}

int request_process(struct agent_request *r, const struct oci_process *p,
		    Kiln__Agent__V1__Process *out, struct kiln_error *err)
{
	Kiln__Agent__V1__User *u = kcalloc(r, 1, sizeof(*u));
	Kiln__Agent__V1__Capabilities *caps = NULL;

	if (u == NULL)
		return kiln_error_set(err, ENOMEM, "process");
	kiln__agent__v1__process__init(out);
	kiln__agent__v1__user__init(u);
	if (p->n_args == 0)
		return kiln_error_set(err, 0, "process.args: empty");
	if (p->user.username != NULL)
		return kiln_error_set(err, 0,
				      "process.user.username: a Windows field");
	out->args = p->args;
	out->n_args = p->n_args;
	out->env = p->env;
	out->n_env = p->n_env;
	out->cwd = p->cwd != NULL ? p->cwd : "/";
	u->uid = p->user.uid;
	u->gid = p->user.gid;
	u->additional_gids = p->user.additional_gids;
	u->n_additional_gids = p->user.n_additional_gids;
	u->has_umask = p->user.has_umask;
	u->umask = p->user.umask;
	out->user = u;
	out->terminal = p->terminal;
	if (p->has_console_size) {
		out->console_width = p->console_width;
		out->console_height = p->console_height;
	}
	if (p->n_rlimits > 0) {
		Kiln__Agent__V1__Rlimit *rl =
			kcalloc(r, p->n_rlimits, sizeof(*rl));
		Kiln__Agent__V1__Rlimit **v =
			kcalloc(r, p->n_rlimits, sizeof(*v));

		if (rl == NULL || v == NULL)
			return kiln_error_set(err, ENOMEM, "rlimits");
		for (size_t i = 0; i < p->n_rlimits; i++) {
			kiln__agent__v1__rlimit__init(&rl[i]);
			rl[i].type = p->rlimits[i].type;
			rl[i].soft = p->rlimits[i].soft;
			rl[i].hard = p->rlimits[i].hard;
			v[i] = &rl[i];
		}
		out->rlimits = v;
		out->n_rlimits = p->n_rlimits;
	}
	if (p->capabilities != NULL) {
		const struct oci_capabilities *c = p->capabilities;

		caps = kcalloc(r, 1, sizeof(*caps));
		if (caps == NULL)
			return kiln_error_set(err, ENOMEM, "capabilities");
		kiln__agent__v1__capabilities__init(caps);
		caps->bounding = c->bounding;
		caps->n_bounding = c->n_bounding;
		caps->effective = c->effective;
		caps->n_effective = c->n_effective;
		caps->inheritable = c->inheritable;
		caps->n_inheritable = c->n_inheritable;
		caps->permitted = c->permitted;
		caps->n_permitted = c->n_permitted;
		caps->ambient = c->ambient;
		caps->n_ambient = c->n_ambient;
		out->capabilities = caps;
	}
	out->no_new_privileges = p->no_new_privileges;
	/* its streams: stdio_request */
	return 0;
}

static bool has_option(const struct oci_mount *m, const char *opt)
{
	for (size_t i = 0; i < m->n_options; i++)
		if (strcmp(m->options[i], opt) == 0)
			return true;
	return false;
}

static bool is_bind(const struct oci_mount *m)
{
	return (m->type != NULL && strcmp(m->type, "bind") == 0) ||
	       has_option(m, "bind") || has_option(m, "rbind");
}

static bool is_agent_default(const char *dest)
{
	for (size_t i = 0; i < sizeof(agent_defaults) / sizeof(*agent_defaults);
	     i++)
		if (strcmp(dest, agent_defaults[i]) == 0)
			return true;
	return false;
}

static Kiln__Agent__V1__Mount *new_mount(struct agent_request *r,
					 const struct oci_mount *m,
					 const char *type, const char *source)
{
	Kiln__Agent__V1__Mount *am = kcalloc(r, 1, sizeof(*am));

	if (am == NULL)
		return NULL;
	kiln__agent__v1__mount__init(am);
	am->destination = m->destination;
	am->type = (char *)type;
	am->source = (char *)source;
	am->options = m->options;
	am->n_options = m->n_options;
	return am;
}

/* am's options: m's without those named in drop (NULL-terminated). */
static int drop_options(struct agent_request *r, const struct oci_mount *m,
			Kiln__Agent__V1__Mount *am, const char *const *drop)
{
	char **opts = kcalloc(r, m->n_options + 1, sizeof(*opts));

	if (opts == NULL)
		return -1;
	am->n_options = 0;
	for (size_t i = 0; i < m->n_options; i++) {
		bool keep_it = true;

		for (const char *const *d = drop; *d != NULL; d++)
			keep_it = keep_it && strcmp(m->options[i], *d) != 0;
		if (keep_it)
			opts[am->n_options++] = m->options[i];
	}
	am->options = opts;
	return 0;
}

/*
 * A bind the guest makes as a mount of type from source (a drive's
 * image, a virtio-fs tag): the bind options would bind the device
 * itself, so they go; the others stay.
 */
static Kiln__Agent__V1__Mount *
unbind_mount(struct agent_request *r, const struct oci_mount *m,
	     const char *type, const char *source, struct kiln_error *err)
{
	Kiln__Agent__V1__Mount *am = new_mount(r, m, type, source);

	if (am == NULL ||
	    drop_options(r, m, am, (const char *[]){ "bind", "rbind", NULL }) <
		    0) {
		kiln_error_set(err, ENOMEM, "mount");
		return NULL;
	}
	return am;
}

/* A read-only host directory: an image of it on a drive of its own. */
static Kiln__Agent__V1__Mount *
dir_mount(struct agent_request *r, const struct oci_mount *m,
	  struct vm_plan *plan, const char *cache_dir, struct kiln_error *err)
{
	cleanup_free char *image = NULL;
	char *src;
	bool built = false;
	Kiln__Agent__V1__Mount *am;

	image = layer_image(cache_dir, m->source, LAYER_MUTABLE, &built, err);
	if (image == NULL)
		return NULL;
	src = vm_plan_drive(plan, r, image, true, err);
	if (src == NULL)
		return NULL;
	am = unbind_mount(r, m, "erofs", src, err);
	if (am != NULL)
		am->device_size = plan->drive_bytes[plan->n_drives - 1];
	return am;
}

/*
 * A writable host directory: shared over virtio-fs (a virtiofsd started
 * with the VM, vm.c), so the container's writes land in it. The guest
 * mounts the device's tag; bind options would make it a bind.
 */
static Kiln__Agent__V1__Mount *fs_mount(struct agent_request *r, size_t i,
					const struct oci_mount *m,
					struct vm_plan *plan,
					struct kiln_error *err)
{
	char *tag = vm_plan_fs(plan, r, m->source, err);

	if (tag == NULL) {
		kiln_error_wrap(err, "mounts[%zu] (%s)", i, m->destination);
		return NULL;
	}
	return unbind_mount(r, m, "virtiofs", tag, err);
}

/*
 * A host directory of a pod whose VM shares the pod's folder (podfs.c):
 * bound on the host under it, and the guest binds that sub-folder with
 * m's options (ro: read-only, also on the host side).
 */
static Kiln__Agent__V1__Mount *pod_dir_mount(struct agent_request *r, size_t i,
					     const struct oci_mount *m,
					     const struct vm_plan *plan,
					     struct kiln_error *err)
{
	char *src = podfs_bind(plan, i, m->source, has_option(m, "rbind"),
			       has_option(m, "ro"), err);
	Kiln__Agent__V1__Mount *am;

	if (src == NULL) {
		kiln_error_wrap(err, "mounts[%zu] (%s)", i, m->destination);
		return NULL;
	}
	am = keep(r, src) != NULL ? new_mount(r, m, "bind", src) : NULL;
	if (am == NULL)
		kiln_error_set(err, ENOMEM, "mount");
	return am;
}

/*
 * A Kubernetes emptyDir of a pod in one VM: the kubelet's directory
 * (.../volumes/kubernetes.io~empty-dir/NAME) becomes the guest's
 * AGENT_VOLUMES/NAME, which the agent makes on first use and every
 * container of the pod binds: shared by them, as long-lived as the pod's
 * VM, in its memory. 1 with *out, 0 when m is not one, -1 with err.
 */
static int empty_dir(struct agent_request *r, size_t i,
		     const struct oci_mount *m, Kiln__Agent__V1__Mount **out,
		     struct kiln_error *err)
{
	static const char marker[] = "/kubernetes.io~empty-dir/";
	const char *at = m->source ? strstr(m->source, marker) : NULL;
	const char *name = at ? at + sizeof(marker) - 1 : NULL;
	struct kiln_error why = { 0 };
	char *src = NULL;

	if (name == NULL)
		return 0;
	if (strchr(name, '/') != NULL || oci_id_check(name, &why) < 0)
		return kiln_error_set(err, 0,
				      "mounts[%zu] (%s): emptyDir `%s`: not "
				      "a volume name",
				      i, m->destination, m->source);
	if (asprintf(&src, "%s/%s", AGENT_VOLUMES, name) < 0)
		src = NULL;
	*out = keep(r, src) ? new_mount(r, m, "bind", src) : NULL;
	if (*out == NULL)
		return kiln_error_set(err, ENOMEM, "mount");
	return 1;
}

/*
 * One config.json mount as the guest sees it, NULL with *skip when the
 * agent makes it anyway, or NULL with err when kiln cannot honour it.
 */
static Kiln__Agent__V1__Mount *map_mount(struct agent_request *r, size_t i,
					 const struct oci_mount *m,
					 struct vm_plan *plan,
					 const char *cache_dir, bool *skip,
					 struct kiln_error *err)
{
	Kiln__Agent__V1__Mount *am;
	struct stat st;

	*skip = false;
	if (is_bind(m) && (plan->pod || plan->member)) {
		int res = empty_dir(r, i, m, &am, err);

		if (res != 0)
			return res > 0 ? am : NULL;
	}
	if (!is_bind(m)) {
		const char *type = m->type != NULL ? m->type : "";

		if (is_agent_default(m->destination)) {
			*skip = true;
			return NULL;
		}
		/* the guest is cgroup v2 only */
		if (strcmp(type, "cgroup") == 0 || strcmp(type, "cgroup2") == 0)
			return new_mount(r, m, "cgroup2", "cgroup2");
		am = new_mount(r, m, type, m->source != NULL ? m->source : "");
		/* podman's tmpfs: "tmpcopyup" (crun's and runc's extension)
		 * would seed it with the image's files; the guest's starts
		 * empty, as a tmpfs without it does */
		if (am != NULL && strcmp(type, "tmpfs") == 0 &&
		    drop_options(r, m, am,
				 (const char *[]){ "tmpcopyup", "notmpcopyup",
						   NULL }) < 0)
			am = NULL;
		if (am == NULL)
			kiln_error_set(err, ENOMEM, "mount");
		return am;
	}
	if (m->source == NULL || stat(m->source, &st) < 0) {
		kiln_error_set(err, errno, "mounts[%zu] (%s): bind source `%s`",
			       i, m->destination,
			       m->source != NULL ? m->source : "");
		return NULL;
	}
	/* docker binds its own /dev/shm dir: a guest tmpfs means the same to
	 * the container (its IPC namespace is the guest's) */
	if (strcmp(m->destination, "/dev/shm") == 0 && S_ISDIR(st.st_mode)) {
		*skip = true;
		return NULL;
	}
	if (S_ISREG(st.st_mode))
		return request_file_mount(r, i, m, err);
	if (S_ISDIR(st.st_mode)) {
		if ((plan->pod || plan->member) && plan->podfs != NULL)
			return pod_dir_mount(r, i, m, plan, err);
		if (has_option(m, "ro"))
			return dir_mount(r, m, plan, cache_dir, err);
		if (plan->pod || plan->member) {
			/* a pod's VM runs already: it takes no new device */
			kiln_error_set(err, 0,
				       "mounts[%zu] (%s): a writable bind of "
				       "host directory `%s` in a pod's VM "
				       "is not supported yet; mount it "
				       "read-only, or give the pod volumes "
				       "(\"pod_volumes\": true in %s, or "
				       "the sandbox's annotation "
				       "io.kiln.pod-volumes=true)",
				       i, m->destination, m->source,
				       KILN_CONFIG_PATH);
			return NULL;
		}
		return fs_mount(r, i, m, plan, err);
	}
	kiln_error_set(err, 0,
		       "mounts[%zu] (%s): `%s` is neither a file nor a "
		       "directory; a VM cannot bind it",
		       i, m->destination, m->source);
	return NULL;
}

int request_volume_cache(const struct oci_spec *spec, struct vm_plan *plan,
			 struct kiln_error *err)
{
	const char *v = oci_spec_annotation(spec, VOLUME_CACHE_ANNOTATION);

	plan->fs_fast = v != NULL && strcmp(v, "fast") == 0;
	if (v == NULL || plan->fs_fast || strcmp(v, "coherent") == 0)
		return 0;
	return kiln_error_set(err, EINVAL,
			      "annotations: " VOLUME_CACHE_ANNOTATION
			      " is `%.40s`, not `coherent` or `fast`",
			      v);
}

int request_mounts(struct agent_request *r, const struct oci_spec *spec,
		   struct vm_plan *plan, const char *cache_dir,
		   Kiln__Agent__V1__CreateContainerRequest *req,
		   struct kiln_error *err)
{
	Kiln__Agent__V1__Mount **v = kcalloc(r, spec->n_mounts, sizeof(*v));
	size_t n = 0;

	if (v == NULL)
		return kiln_error_set(err, ENOMEM, "mounts");
	if (request_volume_cache(spec, plan, err) < 0)
		return -1;
	for (size_t i = 0; i < spec->n_mounts; i++) {
		bool skip;
		Kiln__Agent__V1__Mount *am = map_mount(
			r, i, &spec->mounts[i], plan, cache_dir, &skip, err);

		if (am == NULL && !skip)
			return -1;
		if (am != NULL)
			v[n++] = am;
	}
	req->mounts = v;
	req->n_mounts = n;
	return 0;
}

/* A host file (docker's /etc/hosts, podman's /run/.containerenv): its
 * content travels in the request and the agent binds a copy. */
Kiln__Agent__V1__Mount *request_file_mount(struct agent_request *r, size_t i,
					   const struct oci_mount *m,
					   struct kiln_error *err)
{
	cleanup_close int fd = open(m->source, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	Kiln__Agent__V1__Mount *am;
	struct stat st;
	uint8_t *data;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		kiln_error_set(err, errno, "mounts[%zu] (%s): open `%s`", i,
			       m->destination, m->source);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > REQUEST_FILE_MAX ||
	    r->file_bytes + (size_t)st.st_size > REQUEST_FILES_MAX) {
		kiln_error_set(err, 0,
			       "mounts[%zu] (%s): `%s` is larger than a VM "
			       "takes in with its request (%u KiB a file, "
			       "%u KiB in all)",
			       i, m->destination, m->source,
			       REQUEST_FILE_MAX >> 10, REQUEST_FILES_MAX >> 10);
		return NULL;
	}
	data = kcalloc(r, (size_t)st.st_size + 1, 1);
	am = new_mount(r, m, "bind", m->source);
	if (data == NULL || am == NULL) {
		kiln_error_set(err, ENOMEM, "mount");
		return NULL;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* shrank meanwhile: what is there */
		got += (size_t)n;
	}
	r->file_bytes += got;
	am->has_data = true;
	am->data.data = data;
	am->data.len = got;
	am->file_mode = st.st_mode & 07777;
	return am;
}

/* linux.resources: enforced in the guest on the container's cgroup (the
 * VM's size comes from them too, vmconf.c) */
int request_resources(struct agent_request *r, const struct oci_spec *spec,
		      Kiln__Agent__V1__CreateContainerRequest *req,
		      struct kiln_error *err)
{
	Kiln__Agent__V1__Resources *res;

	if (spec->linux_ == NULL || !spec->linux_->has_resources)
		return 0;
	res = kcalloc(r, 1, sizeof(*res));
	if (res == NULL)
		return kiln_error_set(err, ENOMEM, "resources");
	if (resources_from_oci(&spec->linux_->resources, res, err) < 0)
		return -1;
	/* the cpuset strings now belong to r */
	if ((res->cpuset_cpus != protobuf_c_empty_string &&
	     keep(r, res->cpuset_cpus) == NULL) ||
	    (res->cpuset_mems != protobuf_c_empty_string &&
	     keep(r, res->cpuset_mems) == NULL))
		return kiln_error_set(err, ENOMEM, "resources");
	if (!resources_empty(res))
		req->resources = res;
	return 0;
}
