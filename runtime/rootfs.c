/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bundle's rootfs as the guest's block devices.
 *
 *  - A block device or an image file (ext4 or erofs) is attached as it
 *    is, no copy: read-write unless root.readonly.
 *  - A directory (a plain rootfs, or the overlay an engine mounted) is
 *    made into a cached erofs image (oci/layer.c: built once while the
 *    tree is unchanged) and stacked under a writable layer in the guest.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../oci/layer.h"
#include "../oci/mountinfo.h"
#include "kiln.h"

/* "ext4", "erofs" or NULL, from the superblock's magic */
static const char *image_fstype(int fd)
{
	uint8_t b[4];

	if (pread(fd, b, 4, 1024) == 4 && (b[0] | b[1] << 8 | b[2] << 16 |
					   (uint32_t)b[3] << 24) == 0xE0F5E1E2u)
		return "erofs";
	if (pread(fd, b, 2, 1080) == 2 && (b[0] | b[1] << 8) == 0xEF53)
		return "ext4";
	return NULL;
}

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (d == NULL)
		return true;
	while (empty && (e = readdir(d)) != NULL)
		empty = strcmp(e->d_name, ".") == 0 ||
			strcmp(e->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/* One read-only layer: dir's cached image on the next drive. */
static int add_layer(struct agent_request *r, const char *dir,
		     enum layer_kind kind, struct vm_plan *plan,
		     const char *cache_dir, Kiln__Agent__V1__Layer *l,
		     struct kiln_error *err)
{
	cleanup_free char *image = NULL;
	bool built = false;
	uint64_t t0 = util_now_ns();

	image = layer_image(cache_dir, dir, kind, &built, err);
	if (image == NULL)
		return kiln_error_wrap(err, "layer `%s`", dir);
	log_debug("layer %s: image %s %s in %llu ms", dir, image,
		  built ? "built" : "cached",
		  (unsigned long long)((util_now_ns() - t0) / 1000000));
	kiln__agent__v1__layer__init(l);
	l->device = vm_plan_drive(plan, r, image, true, err);
	l->fstype = "erofs";
	if (l->device == NULL)
		return -1;
	l->size = plan->drive_bytes[plan->n_drives - 1];
	return 0;
}

/*
 * The container's own writable layer, beside the engine's upper dir so
 * that it lives as long as the container does with runc: kept across
 * stop and start (a new create over the same upper dir finds it), gone
 * when the engine removes the container's layer directory. A sparse ext4
 * image, made on first use.
 */
static char *upper_image(const char *engine_upper, struct kiln_error *err)
{
	cleanup_free char *dir = strdup(engine_upper);
	char *slash, *path = NULL, size[32];
	struct stat st;
	pid_t pid;
	int status;

	if (dir == NULL || (slash = strrchr(dir, '/')) == NULL)
		return kiln_error_set(err, ENOMEM, "upper"), NULL;
	*slash = '\0';
	if (asprintf(&path, "%s/%s", dir[0] ? dir : "/", KILN_UPPER_NAME) < 0)
		return kiln_error_set(err, ENOMEM, "upper"), NULL;
	if (stat(path, &st) == 0)
		return path;
	snprintf(size, sizeof(size), "%um", KILN_UPPER_MIB);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		execlp("mkfs.ext4", "mkfs.ext4", "-q", "-F", "-m", "0", "-E",
		       "lazy_itable_init=1,lazy_journal_init=1", path, size,
		       (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		kiln_error_set(err, 0, "mkfs.ext4 `%s` failed (e2fsprogs)",
			       path);
		unlink(path);
		free(path);
		return NULL;
	}
	return path;
}

/*
 * A directory. An overlay of image layers (docker, podman, containerd):
 * each lower dir its cached image, the engine's upper dir one too when
 * it holds anything, and our ext4 upper beside it. Anything else, or an
 * overlay of more layers than a VM has drives for: one image of the
 * whole tree, under a tmpfs upper (a plain directory's writes stay in
 * the VM, as no host directory can take them back yet).
 */
static int dir_plan(struct agent_request *r, const struct oci_spec *spec,
		    const char *rootfs, struct vm_plan *plan,
		    const char *cache_dir, Kiln__Agent__V1__Rootfs *out,
		    struct kiln_error *err)
{
	struct overlay_layers ov = { 0 };
	struct kiln_error why = { 0 };
	Kiln__Agent__V1__Layer *ls, **lv;
	size_t n = 0, want;
	bool upper_layer, flatten;
	int res = -1;

	out->device = "";
	out->fstype = "";
	if (overlay_layers_at(rootfs, &ov, &why) != 0) {
		if (why.msg[0])
			log_debug("%s: %s", rootfs, why.msg);
		ov.n_lower = 0;
	}
	upper_layer = ov.upper != NULL && !dir_empty(ov.upper);
	want = ov.n_lower + upper_layer;
	/* a pod's container takes as few of its sandbox's slots as it can */
	flatten = ov.n_lower == 0 || want + 1 > VM_ROOTFS_DRIVES_MAX ||
		  (plan->member && want > 1);
	if (flatten)
		want = 1;
	ls = calloc(want, sizeof(*ls));
	lv = calloc(want, sizeof(*lv));
	if (ls == NULL || lv == NULL || r->n_owned + 2 > REQUEST_OWNED_MAX) {
		free(ls);
		free(lv);
		kiln_error_set(err, ENOMEM, "layers");
		goto out;
	}
	r->owned[r->n_owned++] = ls;
	r->owned[r->n_owned++] = lv;
	if (flatten && add_layer(r, rootfs, LAYER_MUTABLE, plan, cache_dir,
				 &ls[n++], err) < 0)
		goto out;
	if (!flatten && upper_layer &&
	    add_layer(r, ov.upper, LAYER_MUTABLE, plan, cache_dir, &ls[n++],
		      err) < 0)
		goto out;
	for (size_t i = 0; !flatten && i < ov.n_lower; i++)
		if (add_layer(r, ov.lower[i], LAYER_IMMUTABLE, plan, cache_dir,
			      &ls[n++], err) < 0)
			goto out;
	for (size_t i = 0; i < n; i++)
		lv[i] = &ls[i];
	out->layers = lv;
	out->n_layers = n;
	if (ov.upper != NULL && !spec->root_readonly) {
		cleanup_free char *img = upper_image(ov.upper, err);

		if (img == NULL)
			goto out;
		out->upper_device = vm_plan_drive(plan, r, img, false, err);
		if (out->upper_device == NULL)
			goto out;
		out->upper_size = plan->drive_bytes[plan->n_drives - 1];
	}
	res = 0;
out:
	overlay_layers_free(&ov);
	return res;
}

char *rootfs_path(const struct oci_spec *spec, const char *bundle,
		  struct kiln_error *err)
{
	char *p = NULL;

	if (spec->root_path == NULL) {
		kiln_error_set(err, 0, "root.path: missing");
		return NULL;
	}
	if (spec->root_path[0] == '/')
		p = strdup(spec->root_path);
	else if (asprintf(&p, "%s/%s", bundle, spec->root_path) < 0)
		p = NULL;
	if (p == NULL)
		kiln_error_set(err, ENOMEM, "root.path");
	return p;
}

int rootfs_plan(struct agent_request *r, const struct oci_spec *spec,
		const char *rootfs, struct vm_plan *plan, const char *cache_dir,
		Kiln__Agent__V1__Rootfs *out, struct kiln_error *err)
{
	cleanup_close int fd = open(rootfs, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;

	kiln__agent__v1__rootfs__init(out);
	out->device = "";
	if (fd < 0 || fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "root.path `%s`", rootfs);
	if (S_ISBLK(st.st_mode) || S_ISREG(st.st_mode)) {
		const char *type = image_fstype(fd);

		if (type == NULL)
			return kiln_error_set(err, 0,
					      "root.path `%s`: neither a "
					      "directory nor an ext4 or erofs "
					      "image",
					      rootfs);
		out->fstype = (char *)type;
		/* erofs cannot be written: a writable layer goes on top */
		out->readonly = spec->root_readonly ||
				strcmp(type, "erofs") == 0;
		out->device =
			vm_plan_drive(plan, r, rootfs, out->readonly, err);
		if (out->device == NULL)
			return -1;
		out->size = plan->drive_bytes[plan->n_drives - 1];
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return kiln_error_set(err, 0,
				      "root.path `%s`: not a directory, "
				      "block device or image file",
				      rootfs);
	return dir_plan(r, spec, rootfs, plan, cache_dir, out, err);
}
