/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container's rootfs and carried-in files, in the agent, before its
 * init is cloned; see mount.h. Under the container's directory
 * (/run/kiln/c/<id>):
 *   rootfs/  what the init pivots into: the device itself, or overlayfs
 *   lower/   a read-only device under a tmpfs overlay
 *   l<i>/    image layer i, read-only (layers[0] is the top)
 *   rw/      the overlay's writable layer, upper/ and work/ inside: a
 *            tmpfs, or the ext4 upper_device that outlives the VM
 *   files/   a tmpfs with the files the request carried in
 * Each mount is recorded in struct ctr as soon as it is made, so that
 * mount_rootfs_remove (which a failed create runs too) undoes exactly
 * what was done.
 */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"

/* overlayfs takes its options in one page, NUL included */
#define OVERLAY_DATA_MAX 4096

#define WAIT_STEP_MS 1
#define WAIT_POLLS   2000 /* 2 s in steps of WAIT_STEP_MS */

static void wait_step(void)
{
	nanosleep(&(struct timespec){ 0, WAIT_STEP_MS * 1000 * 1000 }, NULL);
}

int mount_size_wait(const char *what, const char *dev, uint64_t want,
		    unsigned int polls,
		    int (*size_of)(void *arg, uint64_t *bytes), void *arg,
		    struct kiln_error *err)
{
	uint64_t seen = 0;

	/* client-controlled: want is only compared, never computed with;
	 * the wait is polls steps whatever it is */
	for (unsigned int i = 1;; i++) {
		if (size_of(arg, &seen) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "size of %s `%s`", what, dev);
		if (seen == want)
			return 0;
		if (i >= polls)
			break;
		wait_step();
	}
	return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
			  "%s `%s` has %" PRIu64 " bytes in the guest, not "
			  "the %" PRIu64 " the request gives it (waited %u ms)",
			  what, dev, seen, want,
			  (polls > 0 ? polls - 1 : 0) * WAIT_STEP_MS);
}

static int blk_size(void *arg, uint64_t *bytes)
{
	return ioctl(*(const int *)arg, BLKGETSIZE64, bytes);
}

int mount_device_wait(const char *what, const char *dev, uint64_t size,
		      struct kiln_error *err)
{
	cleanup_close int fd = -1;
	struct stat st;
	unsigned int i;
	int res;

	/* hot-plugged drives appear through devtmpfs a little later */
	for (i = 0; stat(dev, &st) < 0; i++) {
		if (i + 1 >= WAIT_POLLS)
			return AGENT_FAIL(err, TTRPC_NOT_FOUND, 0,
					  "%s `%s` did not appear in 2 s", what,
					  dev);
		wait_step();
	}
	if (!S_ISBLK(st.st_mode))
		return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
				  "%s `%s` is not a block device", what, dev);
	fd = open(dev, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "open %s `%s`",
				  what, dev);
	/*
	 * A drive whose backing file the host has just swapped: the VMM
	 * raised a config change, but the guest kernel reads the new
	 * capacity in a work item of its own, a little later. Mounted
	 * before, the file system would be checked against the old size.
	 * The 2 s above are for both waits: what is left of them.
	 */
	if (size != 0) {
		res = mount_size_wait(what, dev, size, WAIT_POLLS - i, blk_size,
				      &fd, err);
		if (res < 0)
			return res;
	}
	/*
	 * Then drop what the guest cached of dev. In a fork of a template
	 * the drive held the template's blank placeholder when the kernel
	 * probed it: the sectors its partition scan read are cached, and a
	 * file system mounted now would read its superblock from them.
	 */
	if (ioctl(fd, BLKFLSBUF, 0) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "flush the cache of `%s`", dev);
	return 0;
}

static int mkdir_in(const char *dir, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", dir, name);
	if (mkdir(out, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * upper/ and work/ in the writable layer: made when missing; what is
 * there must be a directory (a link would take the overlay elsewhere).
 */
static int upper_dirs(const char *rw, char *upper, char *work, size_t len,
		      struct kiln_error *err)
{
	char *const out[] = { upper, work };
	static const char *const names[] = { "upper", "work" };
	struct stat st;

	for (size_t i = 0; i < 2; i++) {
		if (mkdir_in(rw, names[i], out[i], len) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "mkdir `%s`", out[i]);
		if (lstat(out[i], &st) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "stat `%s`", out[i]);
		if (!S_ISDIR(st.st_mode))
			return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
					  "`%s` is not a directory", out[i]);
	}
	return 0;
}

/* One device at <dir>/rootfs, or read-only under a tmpfs overlay. */
static int mount_device(struct ctr *c, const Kiln__Agent__V1__Rootfs *r,
			const struct spec_mount_opts *o, const char *root,
			struct kiln_error *err)
{
	char lower[160], rw[160], upper[200], work[200];
	char data[3 * 200 + 64];
	int res;

	res = mount_device_wait("rootfs.device", r->device, r->size, err);
	if (res < 0)
		return res;
	if (!r->readonly) {
		if (mount(r->device, root, r->fstype, o->flags,
			  o->data[0] ? o->data : NULL) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "mount %s (%s) on %s", r->device,
					  r->fstype, root);
		return 0;
	}
	if (mkdir_in(c->dir, "lower", lower, sizeof(lower)) < 0 ||
	    mkdir_in(c->dir, "rw", rw, sizeof(rw)) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir in `%s`",
				  c->dir);
	if (mount(r->device, lower, r->fstype, o->flags | MS_RDONLY,
		  o->data[0] ? o->data : NULL) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "mount %s (%s) read-only on %s", r->device,
				  r->fstype, lower);
	if (mount("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "mount tmpfs on %s", rw);
	c->overlay = true;
	res = upper_dirs(rw, upper, work, sizeof(upper), err);
	if (res < 0)
		return res;
	snprintf(data, sizeof(data), "lowerdir=%s,upperdir=%s,workdir=%s",
		 lower, upper, work);
	if (mount("overlay", root, "overlay", 0, data) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "mount overlay on %s", root);
	return 0;
}

/*
 * overlayfs's options: the layers' own paths when they fit in a page
 * (readable in /proc/mounts); else, with many layers under a long id,
 * descriptors of them (fds[] then holds them for the caller to close).
 */
static int overlay_data(struct ctr *c, const char *upper, const char *work,
			char *data, int *fds, struct kiln_error *err)
{
	if (mount_overlay_data(data, OVERLAY_DATA_MAX, c->dir, c->nlayers, NULL,
			       upper, work) == 0)
		return 0;
	for (size_t i = 0; i < c->nlayers; i++) {
		char path[160];

		snprintf(path, sizeof(path), "%s/l%zu", c->dir, i);
		fds[i] = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fds[i] < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "open `%s`", path);
	}
	if (mount_overlay_data(data, OVERLAY_DATA_MAX, c->dir, c->nlayers, fds,
			       upper, work) == 0)
		return 0;
	return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
			  "rootfs.layers: the overlay's options exceed %d "
			  "bytes",
			  OVERLAY_DATA_MAX);
}

/* Image layers, read-only, under the writable layer at <dir>/rw. */
static int mount_layers(struct ctr *c, const Kiln__Agent__V1__Rootfs *r,
			const char *root, struct kiln_error *err)
{
	int fds[MOUNT_LAYERS_MAX];
	char rw[160], upper[200], work[200], data[OVERLAY_DATA_MAX];
	bool upper_dev = r->upper_device[0] != '\0';
	int res = 0;

	/* every device there before anything is mounted */
	for (size_t i = 0; i < r->n_layers; i++) {
		char what[48];

		snprintf(what, sizeof(what), "rootfs.layers[%zu].device", i);
		res = mount_device_wait(what, r->layers[i]->device,
					r->layers[i]->size, err);
		if (res < 0)
			return res;
	}
	if (upper_dev) {
		res = mount_device_wait("rootfs.upper_device", r->upper_device,
					r->upper_size, err);
		if (res < 0)
			return res;
	}
	for (size_t i = 0; i < r->n_layers; i++) {
		const Kiln__Agent__V1__Layer *l = r->layers[i];
		char name[24], path[160];

		snprintf(name, sizeof(name), "l%zu", i);
		if (mkdir_in(c->dir, name, path, sizeof(path)) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "mkdir `%s`", path);
		c->nlayers = i + 1;
		if (mount(l->device, path, l->fstype, MS_RDONLY, NULL) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "mount rootfs.layers[%zu] %s (%s) "
					  "read-only on %s",
					  i, l->device, l->fstype, path);
	}
	if (mkdir_in(c->dir, "rw", rw, sizeof(rw)) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir `%s`", rw);
	if (upper_dev) {
		if (mount(r->upper_device, rw, "ext4", 0, NULL) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "mount rootfs.upper_device %s "
					  "(ext4) on %s",
					  r->upper_device, rw);
		c->upper_dev = true;
	} else {
		if (mount("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV,
			  "mode=0755") < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "mount tmpfs on %s", rw);
		c->overlay = true;
	}
	res = upper_dirs(rw, upper, work, sizeof(upper), err);
	if (res < 0)
		return res;
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		fds[i] = -1;
	res = overlay_data(c, upper, work, data, fds, err);
	if (res == 0 && mount("overlay", root, "overlay", 0, data) < 0)
		res = AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				 "mount overlay of %zu layers on %s",
				 c->nlayers, root);
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return res;
}

int mount_rootfs(struct ctr *c, const Kiln__Agent__V1__Rootfs *r,
		 struct kiln_error *err)
{
	struct spec_mount_opts o;
	char root[160];
	int res;

	res = mount_rootfs_check(r, &o, err);
	if (res < 0)
		return res;
	if (mkdir_in(c->dir, "rootfs", root, sizeof(root)) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir `%s`",
				  root);
	if (r->n_layers != 0)
		return mount_layers(c, r, root, err);
	return mount_device(c, r, &o, root, err);
}

/* ---- carried-in files --------------------------------------------------- */

static int write_file(const struct mount_one *m, struct kiln_error *err)
{
	cleanup_close int fd = open(
		m->file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		0600);
	size_t off = 0;

	if (fd < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "create `%s`",
				  m->file);
	while (off < m->len) {
		ssize_t n = write(fd, m->data + off, m->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL,
					  n < 0 ? errno : ENOSPC,
					  "write the file for mount %s",
					  m->destination);
		off += (size_t)n;
	}
	/* the mode as asked, whatever the agent's umask */
	if (fchmod(fd, m->mode) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "chmod `%s`",
				  m->file);
	return 0;
}

/* the mounts' devices, in the agent: the init child mounts them by path */
static int wait_mount_devices(const struct mount_plan *plan,
			      struct kiln_error *err)
{
	for (size_t i = 0; i < plan->nmounts; i++) {
		const struct mount_one *m = &plan->mounts[i];
		char what[48];
		int res;

		if (m->device_size == 0)
			continue;
		snprintf(what, sizeof(what), "mounts[%zu].source", i);
		res = mount_device_wait(what, m->source, m->device_size, err);
		if (res < 0)
			return res;
	}
	return 0;
}

int mount_files_write(struct ctr *c, struct mount_plan *plan,
		      struct kiln_error *err)
{
	char dir[160], data[64];
	int res;

	res = wait_mount_devices(plan, err);
	if (res == 0)
		res = mount_podfs_ensure(plan, err);
	if (res < 0)
		return res;
	if (plan->nfiles == 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s/files", c->dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir `%s`",
				  dir);
	/* room for the bytes, each file rounded up to a page */
	snprintf(data, sizeof(data), "mode=0700,size=%zuk,nr_inodes=%zu",
		 (plan->files_size + (plan->nfiles + 1) * 4096) / 1024,
		 plan->nfiles + 16);
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  data) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "mount tmpfs on %s", dir);
	c->files = true;
	for (size_t i = 0; i < plan->nmounts; i++)
		if (plan->mounts[i].data != NULL &&
		    write_file(&plan->mounts[i], err) < 0)
			return -TTRPC_INTERNAL;
	return 0;
}

/* ---- removal ------------------------------------------------------------ */

static void rm_dir(const char *dir, const char *name)
{
	char path[200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		log_warn("umount %s: %m", path);
	if (rmdir(path) < 0 && errno != ENOENT)
		log_warn("rmdir %s: %m", path);
}

/*
 * The writes of a container whose root or upper layer is a device: on
 * the device now, before the lazy unmounts below, which may leave the
 * file system mounted until the container's mount namespace is gone.
 * Remove's caller may then kill the VM at once (the runtime does).
 */
static void sync_dir(const char *dir, const char *name)
{
	char path[200];
	cleanup_close int fd = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if ((fd < 0 && errno != ENOENT) || (fd >= 0 && syncfs(fd) < 0))
		log_warn("sync %s: %m", path);
}

void mount_rootfs_remove(struct ctr *c)
{
	char rw[200];

	snprintf(rw, sizeof(rw), "%s/rw", c->dir);
	if (c->upper_dev)
		sync_dir(c->dir, "rw");
	else if (!c->overlay) /* a device mounted as it is, maybe writable */
		sync_dir(c->dir, "rootfs");
	/* the overlay first, then what it stacks, then the files */
	rm_dir(c->dir, "rootfs");
	for (size_t i = 0; i < c->nlayers; i++) {
		char name[24];

		snprintf(name, sizeof(name), "l%zu", i);
		rm_dir(c->dir, name);
	}
	c->nlayers = 0;
	rm_dir(c->dir, "lower");
	if (c->overlay || c->upper_dev) {
		if (umount2(rw, MNT_DETACH) < 0 && errno != EINVAL)
			log_warn("umount %s: %m", rw);
		c->overlay = c->upper_dev = false;
	}
	rm_dir(c->dir, "rw");
	rm_dir(c->dir, "files");
	c->files = false;
	if (rmdir(c->dir) < 0 && errno != ENOENT)
		log_warn("rmdir %s: %m", c->dir);
}
