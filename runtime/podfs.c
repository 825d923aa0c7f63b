/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pod volumes: host directories bound into a pod's containers, which
 * share one VM (pod.c). A virtio-mmio device cannot be added to a VM that
 * runs, so the sandbox's VM gets one virtio-fs device when it boots
 * (tagged VM_PODFS_TAG, served by one virtiofsd: vm.c fs_start) sharing a
 * folder of the sandbox's state directory, POD_FS_DIR. A member's host
 * directory binds, writable and read-only alike, are then bind mounts the
 * runtime makes on the host under that folder, POD_FS_DIR/<id>/<i> (i:
 * the index in config.json's mounts), and the agent binds the matching
 * sub-folder of its virtio-fs mount at the destination.
 *
 * Propagation: virtiofsd sandboxes itself in a mount namespace of its own
 * (a slave of the host's, then pivot_root into the folder). The folder is
 * made a shared mount of its own before virtiofsd starts, so binds made
 * in it later propagate into virtiofsd's namespace, and their unmounts
 * too. A read-only bind is made read-only before it is attached (a
 * detached clone, mount_setattr, move_mount): the copies propagation
 * makes are clones with its flags, so virtiofsd itself cannot write
 * there whatever the guest asks (a remount afterwards would not
 * propagate).
 *
 * The cache is the one of every virtio-fs share (cache=auto, timeout=0):
 * a file the host rewrites, and a kubelet's configMap update (a symlink
 * swap), are seen at the next lookup.
 *
 * Who runs what: the sandbox's pid process makes the folder
 * (podfs_prepare) and takes it down at its end (podfs_remove); a
 * member's pid process binds its directories (podfs_bind) and unbinds
 * them when its container ends (podfs_unbind); `kiln delete` does both
 * again for what a kill -9 left. Each runs on its process's main thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../oci/container.h"
#include "../oci/state.h"
#include "kiln.h"

#define POD_VOLUMES_ANNOTATION "io.kiln.pod-volumes"

int podfs_wanted(const struct vm_config *c, const struct oci_spec *spec,
		 bool *out, struct kiln_error *err)
{
	const char *v = oci_spec_annotation(spec, POD_VOLUMES_ANNOTATION);

	*out = false;
	if (!pod_is_sandbox(spec))
		return 0;
	*out = c->pod_volumes;
	if (v == NULL)
		return 0;
	if (strcmp(v, "true") == 0)
		*out = true;
	else if (strcmp(v, "false") == 0)
		*out = false;
	else
		return kiln_error_set(err, 0,
				      "annotations: " POD_VOLUMES_ANNOTATION
				      " `%.40s`: neither true nor false",
				      v);
	return 0;
}

/* Unmount whatever is stacked on path (a create tried again stacks). */
static void unmount_all(const char *path)
{
	for (int i = 0; i < 16; i++)
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
			if (errno != EINVAL && errno != ENOENT)
				log_warn("umount %s: %m", path);
			return;
		}
}

int podfs_prepare(struct vm_plan *p, struct kiln_error *err)
{
	char real[PATH_MAX];

	podfs_remove(".");
	if (mkdir(POD_FS_DIR, 0700) < 0)
		return kiln_error_set(err, errno, "mkdir " POD_FS_DIR);
	if (realpath(POD_FS_DIR, real) == NULL)
		return kiln_error_set(err, errno, "realpath " POD_FS_DIR);
	/*
	 * A mount of its own, private first so that it joins no peer group
	 * of the state directory's mount (a shared /run), then shared: its
	 * own peer group, which virtiofsd's namespace becomes a slave of.
	 */
	if (mount(real, real, NULL, MS_BIND, NULL) < 0)
		return kiln_error_set(err, errno, "bind %s on itself", real);
	if (mount(NULL, real, NULL, MS_PRIVATE, NULL) < 0 ||
	    mount(NULL, real, NULL, MS_SHARED, NULL) < 0) {
		kiln_error_set(err, errno, "make %s a shared mount", real);
		unmount_all(real);
		return -1;
	}
	/* fs 0, before any other share is planned (their tags count) */
	if (p->n_fs != 0) {
		unmount_all(real);
		return kiln_error_set(err, EINVAL, "pod volumes: planned late");
	}
	p->fs_source[0] = strdup(real);
	p->podfs = strdup(real);
	if (p->fs_source[0] == NULL || p->podfs == NULL) {
		unmount_all(real);
		return kiln_error_set(err, ENOMEM, "pod volumes");
	}
	p->n_fs++;
	p->podfs_dev = true;
	return 0;
}

int podfs_find(struct vm_plan *p, int dirfd, const char *sandbox,
	       struct kiln_error *err)
{
	char rel[POD_ID_MAX + 16], full[POD_ID_MAX + 64], real[PATH_MAX];
	struct kiln_error why = { 0 };
	struct stat st;

	/* pod_join says what is wrong with a bad id */
	if (strlen(sandbox) > POD_ID_MAX || oci_id_check(sandbox, &why) < 0)
		return 0;
	snprintf(rel, sizeof(rel), "../%s/" POD_FS_DIR, sandbox);
	if (fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISDIR(st.st_mode))
		return 0;
	snprintf(full, sizeof(full), "/proc/self/fd/%d/%s", dirfd, rel);
	if (realpath(full, real) == NULL)
		return kiln_error_set(err, errno,
				      "pod sandbox `%s`: " POD_FS_DIR, sandbox);
	p->podfs = strdup(real);
	if (p->podfs == NULL)
		return kiln_error_set(err, ENOMEM, "pod volumes");
	return 0;
}

/* A clone of source (its sub-mounts too when rec), made read-only when
 * ro, attached at target. */
static int bind_at(const char *source, const char *target, bool rec, bool ro,
		   struct kiln_error *err)
{
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
	cleanup_close int fd = open_tree(AT_FDCWD, source,
					 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
						 (rec ? AT_RECURSIVE : 0));

	if (fd < 0)
		return kiln_error_set(err, errno, "bind `%s`", source);
	if (ro &&
	    mount_setattr(fd, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0),
			  &attr, sizeof(attr)) < 0)
		return kiln_error_set(err, errno, "read-only bind of `%s`",
				      source);
	if (move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return kiln_error_set(err, errno, "bind `%s` on %s", source,
				      target);
	return 0;
}

char *podfs_bind(const struct vm_plan *p, size_t i, const char *source,
		 bool rec, bool ro, struct kiln_error *err)
{
	char dir[PATH_MAX], target[PATH_MAX + 32], *guest = NULL;
	struct stat st;

	if (p->podfs == NULL || p->podfs_id == NULL) {
		kiln_error_set(err, EINVAL, "no pod volumes");
		return NULL;
	}
	if (snprintf(dir, sizeof(dir), "%s/%s", p->podfs, p->podfs_id) >=
	    (int)sizeof(dir)) {
		kiln_error_set(err, ENAMETOOLONG, "pod volume folder");
		return NULL;
	}
	snprintf(target, sizeof(target), "%s/%zu", dir, i);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		kiln_error_set(err, errno, "mkdir %s", dir);
		return NULL;
	}
	if (mkdir(target, 0700) < 0 && errno != EEXIST) {
		kiln_error_set(err, errno, "mkdir %s", target);
		return NULL;
	}
	unmount_all(target); /* a create of the same id tried again */
	if (stat(source, &st) < 0 || !S_ISDIR(st.st_mode)) {
		kiln_error_set(err, errno ? errno : ENOTDIR,
			       "host directory `%s`", source);
		return NULL;
	}
	if (bind_at(source, target, rec, ro, err) < 0)
		return NULL;
	if (asprintf(&guest, AGENT_PODFS "/%s/%zu", p->podfs_id, i) < 0) {
		kiln_error_set(err, ENOMEM, "pod volume");
		return NULL;
	}
	return guest;
}

/* Unbind and remove the folders of podfs/name; rmdir only: a folder that
 * is still a bind (or not empty) stays, its files untouched. */
static void unbind_dir(int podfd, const char *name, const char *podfs)
{
	cleanup_close int fd = openat(
		podfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *e;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL)
		return;
	fd = -1;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX];

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s/%s", podfs, name,
			     e->d_name) >= (int)sizeof(path))
			continue;
		unmount_all(path);
		if (rmdir(path) < 0 && errno != ENOENT)
			log_warn("rmdir %s: %m", path);
	}
	closedir(d);
	if (unlinkat(podfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		log_warn("rmdir %s/%s: %m", podfs, name);
}

void podfs_unbind(const char *podfs, const char *id)
{
	cleanup_close int podfd = -1;

	if (podfs == NULL || id == NULL || strchr(id, '/') != NULL ||
	    id[0] == '.' || id[0] == '\0')
		return;
	podfd = open(podfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (podfd >= 0)
		unbind_dir(podfd, id, podfs);
}

void podfs_unbind_member(int dirfd, const char *sandbox, const char *id)
{
	struct vm_plan p = { 0 };
	struct kiln_error err = { 0 };

	if (podfs_find(&p, dirfd, sandbox, &err) == 0 && p.podfs != NULL)
		podfs_unbind(p.podfs, id);
	free(p.podfs);
}

void podfs_remove(const char *state_dir)
{
	char path[PATH_MAX], real[PATH_MAX];
	cleanup_close int podfd = -1;
	DIR *d;
	struct dirent *e;

	if (snprintf(path, sizeof(path), "%s/" POD_FS_DIR, state_dir) >=
		    (int)sizeof(path) ||
	    realpath(path, real) == NULL)
		return;
	/* each member's binds first (their folders go), then the folder's
	 * own mount; what virtiofsd's namespace had goes with them */
	podfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = podfd >= 0 ? fdopendir(dup(podfd)) : NULL;
	while (d != NULL && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			unbind_dir(podfd, e->d_name, real);
	if (d != NULL)
		closedir(d);
	unmount_all(real);
	if (rmdir(real) < 0 && errno != ENOENT)
		log_warn("rmdir %s: %m", real);
}
