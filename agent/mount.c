/* SPDX-License-Identifier: Apache-2.0 */
/* A container's rootfs and mounts; see mount.h. */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"

#define INVALID(...) AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0, __VA_ARGS__)

int mount_plan_init(struct mount_plan *plan, const char *dir,
		    const Kiln__Agent__V1__CreateContainerRequest *req,
		    struct kiln_error *err)
{
	memset(plan, 0, sizeof(*plan));
	snprintf(plan->root, sizeof(plan->root), "%s/rootfs", dir);
	plan->readonly = req->readonly_rootfs;
	if (req->hostname != NULL && req->hostname[0] != '\0') {
		if (!spec_hostname_valid(req->hostname))
			return INVALID("hostname is not a host name of at "
				       "most 64 bytes");
		plan->hostname = req->hostname;
	}
	/* client-controlled: counts, paths and types bounded */
	if (req->n_mounts > MOUNTS_MAX)
		return INVALID("more than %d mounts", MOUNTS_MAX);
	if (req->n_mounts == 0)
		return 0;
	plan->mounts = calloc(req->n_mounts, sizeof(*plan->mounts));
	if (plan->mounts == NULL)
		return AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "mounts");
	for (size_t i = 0; i < req->n_mounts; i++) {
		const Kiln__Agent__V1__Mount *m = req->mounts[i];
		struct mount_one *o = &plan->mounts[i];

		if (spec_check_path("mount destination", m->destination, err) <
			    0 ||
		    spec_check_str("mount type", m->type, 64, false, err) < 0 ||
		    spec_check_str("mount source", m->source, PATH_MAX - 1,
				   false, err) < 0)
			return -TTRPC_INVALID_ARGUMENT;
		if (strlen(plan->root) + strlen(m->destination) >= PATH_MAX)
			return INVALID("mount destination too long");
		if (spec_mount_opts_parse(m->options, m->n_options, &o->opts,
					  err) < 0)
			return kiln_error_wrap(err, "mount %s", m->destination),
			       -TTRPC_INVALID_ARGUMENT;
		if (strcmp(m->type, "bind") == 0)
			o->opts.bind = true;
		if (!o->opts.bind && m->type[0] == '\0')
			return INVALID("mount %s: no type", m->destination);
		if (o->opts.bind && m->source[0] != '/')
			return INVALID("bind mount %s: source is not absolute",
				       m->destination);
		o->source = m->source;
		o->destination = m->destination;
		o->type = m->type;
		plan->nmounts++;
	}
	return 0;
}

void mount_plan_free(struct mount_plan *plan)
{
	free(plan->mounts);
	plan->mounts = NULL;
}

/* ---- the rootfs, in the agent ----------------------------------------- */

static int wait_device(const char *dev, struct kiln_error *err)
{
	struct stat st;

	/* hot-plugged drives appear through devtmpfs a little later */
	for (int i = 0; i < 200; i++) {
		if (stat(dev, &st) == 0) {
			if (!S_ISBLK(st.st_mode))
				return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT,
						  0,
						  "rootfs device `%s` is not a "
						  "block device",
						  dev);
			return 0;
		}
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	return AGENT_FAIL(err, TTRPC_NOT_FOUND, 0,
			  "rootfs device `%s` did not appear in 2 s", dev);
}

static int mkdir_in(const char *dir, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", dir, name);
	if (mkdir(out, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int mount_rootfs(struct ctr *c, const Kiln__Agent__V1__Rootfs *r,
		 struct kiln_error *err)
{
	static const char *const types[] = { "ext4", "erofs", "ext2", "ext3",
					     "squashfs" };
	struct spec_mount_opts o;
	char root[160], lower[160], rw[160], upper[200], work[200];
	char data[3 * 200 + 64];
	bool known = false;
	int res;

	if (r == NULL)
		return INVALID("rootfs is missing");
	if (spec_check_path("rootfs.device", r->device, err) < 0)
		return -TTRPC_INVALID_ARGUMENT;
	if (strncmp(r->device, "/dev/", 5) != 0)
		return INVALID("rootfs.device `%s` is not under /dev",
			       r->device);
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		known = known || strcmp(r->fstype, types[i]) == 0;
	if (!known)
		return INVALID("rootfs.fstype must be ext4 or erofs");
	if (spec_mount_opts_parse(r->options, r->n_options, &o, err) < 0)
		return kiln_error_wrap(err, "rootfs"), -TTRPC_INVALID_ARGUMENT;
	if (o.bind)
		return INVALID("rootfs.options: no bind");
	res = wait_device(r->device, err);
	if (res < 0)
		return res;
	if (mkdir_in(c->dir, "rootfs", root, sizeof(root)) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir `%s`",
				  root);
	if (!r->readonly) {
		if (mount(r->device, root, r->fstype, o.flags,
			  o.data[0] ? o.data : NULL) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "mount %s (%s) on %s", r->device,
					  r->fstype, root);
		return 0;
	}
	if (mkdir_in(c->dir, "lower", lower, sizeof(lower)) < 0 ||
	    mkdir_in(c->dir, "rw", rw, sizeof(rw)) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir in `%s`",
				  c->dir);
	if (mount(r->device, lower, r->fstype, o.flags | MS_RDONLY,
		  o.data[0] ? o.data : NULL) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "mount %s (%s) read-only on %s", r->device,
				  r->fstype, lower);
	if (mount("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") <
	    0) {
		res = errno;
		umount2(lower, MNT_DETACH);
		return AGENT_FAIL(err, TTRPC_INTERNAL, res, "mount tmpfs on %s",
				  rw);
	}
	c->overlay = true;
	if (mkdir_in(rw, "upper", upper, sizeof(upper)) < 0 ||
	    mkdir_in(rw, "work", work, sizeof(work)) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir in `%s`",
				  rw);
	snprintf(data, sizeof(data), "lowerdir=%s,upperdir=%s,workdir=%s",
		 lower, upper, work);
	if (mount("overlay", root, "overlay", 0, data) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "mount overlay on %s", root);
	return 0;
}

static void rm_dir(const char *dir, const char *name)
{
	char path[200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		log_warn("umount %s: %m", path);
	if (rmdir(path) < 0 && errno != ENOENT)
		log_warn("rmdir %s: %m", path);
}

void mount_rootfs_remove(struct ctr *c)
{
	rm_dir(c->dir, "rootfs");
	rm_dir(c->dir, "lower");
	if (c->overlay) {
		char rw[200];

		snprintf(rw, sizeof(rw), "%s/rw", c->dir);
		if (umount2(rw, MNT_DETACH) < 0 && errno != EINVAL)
			log_warn("umount %s: %m", rw);
	}
	rm_dir(c->dir, "rw");
	if (rmdir(c->dir) < 0 && errno != ENOENT)
		log_warn("rmdir %s: %m", c->dir);
}

/* ---- in the init child: no malloc ------------------------------------- */

/* mkdir -p of root + path, the last component a file when file */
static int mkpath(const char *root, const char *path, bool file)
{
	char buf[PATH_MAX];
	size_t rl = strlen(root);
	int n = snprintf(buf, sizeof(buf), "%s%s", root, path);

	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	for (char *p = buf + rl + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (file) {
		int fd = open(buf, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

		if (fd < 0 && errno != EISDIR)
			return -1;
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int mount_at(const struct mount_plan *plan, const char *src,
		    const char *dst, const char *type, unsigned long flags,
		    const char *data, int report)
{
	char path[PATH_MAX];

	if (mkpath(plan->root, dst, false) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "mkdir %s in the rootfs", dst);
		return -1;
	}
	snprintf(path, sizeof(path), "%s%s", plan->root, dst);
	if (mount(src, path, type, flags, data) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "mount %s (%s) on %s", src, type, dst);
		return -1;
	}
	return 0;
}

static int mount_defaults(const struct mount_plan *plan, int report)
{
	static const char *const devs[] = { "null",   "zero",	 "full",
					    "random", "urandom", "tty" };
	static const char *const links[][2] = {
		{ "/dev/ptmx", "pts/ptmx" },
		{ "/dev/fd", "/proc/self/fd" },
		{ "/dev/stdin", "/proc/self/fd/0" },
		{ "/dev/stdout", "/proc/self/fd/1" },
		{ "/dev/stderr", "/proc/self/fd/2" },
	};
	const unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	char path[PATH_MAX];

	if (mount_at(plan, "proc", "/proc", "proc", nse, NULL, report) < 0 ||
	    mount_at(plan, "sysfs", "/sys", "sysfs", nse | MS_RDONLY, NULL,
		     report) < 0 ||
	    mount_at(plan, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME,
		     "mode=755,size=65536k", report) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++) {
		char src[32], dst[32];

		snprintf(src, sizeof(src), "/dev/%s", devs[i]);
		snprintf(dst, sizeof(dst), "/dev/%s", devs[i]);
		snprintf(path, sizeof(path), "%s%s", plan->root, dst);
		if (mkpath(plan->root, dst, true) < 0 ||
		    mount(src, path, NULL, MS_BIND, NULL) < 0) {
			proc_report(report, TTRPC_INTERNAL, errno,
				    "bind %s into the container", src);
			return -1;
		}
	}
	if (mount_at(plan, "devpts", "/dev/pts", "devpts",
		     MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5", report) < 0 ||
	    mount_at(plan, "shm", "/dev/shm", "tmpfs", nse,
		     "mode=1777,size=65536k", report) < 0 ||
	    mount_at(plan, "mqueue", "/dev/mqueue", "mqueue", nse, NULL,
		     report) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		snprintf(path, sizeof(path), "%s%s", plan->root, links[i][0]);
		if (symlink(links[i][1], path) < 0 && errno != EEXIST) {
			proc_report(report, TTRPC_INTERNAL, errno, "symlink %s",
				    links[i][0]);
			return -1;
		}
	}
	return 0;
}

static int mount_request(const struct mount_plan *plan,
			 const struct mount_one *m, int report)
{
	const struct spec_mount_opts *o = &m->opts;
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s", plan->root, m->destination);
	if (!o->bind)
		return mount_at(plan, m->source[0] ? m->source : m->type,
				m->destination, m->type, o->flags,
				o->data[0] ? o->data : NULL, report);
	if (stat(m->source, &st) < 0) {
		proc_report(report, TTRPC_INVALID_ARGUMENT, errno,
			    "bind mount source `%s`", m->source);
		return -1;
	}
	if (mkpath(plan->root, m->destination, !S_ISDIR(st.st_mode)) < 0 ||
	    mount(m->source, path, NULL, MS_BIND | (o->recursive ? MS_REC : 0),
		  NULL) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "bind %s on %s",
			    m->source, m->destination);
		return -1;
	}
	/* a bind mount takes its flags only from a remount */
	if ((o->flags & ~MS_REC) != 0 &&
	    mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | o->flags, NULL) <
		    0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "remount %s with its options", m->destination);
		return -1;
	}
	if (o->propagation &&
	    mount(NULL, path, NULL, o->propagation, NULL) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "set propagation of %s", m->destination);
		return -1;
	}
	return 0;
}

static int enter_root(const struct mount_plan *plan, int report)
{
	if (chdir(plan->root) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "chdir %s",
			    plan->root);
		return -1;
	}
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		/* the old root now sits on top of the new: detach it */
		if (umount2(".", MNT_DETACH) < 0) {
			proc_report(report, TTRPC_INTERNAL, errno,
				    "detach the old root");
			return -1;
		}
	} else if (mount(plan->root, "/", NULL, MS_MOVE, NULL) < 0 ||
		   chroot(".") < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "pivot_root into %s",
			    plan->root);
		return -1;
	}
	if (chdir("/") < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "chdir /");
		return -1;
	}
	return 0;
}

int mount_setup_child(const struct mount_plan *plan, int report)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "make the mounts private");
		return -1;
	}
	/* pivot_root needs the new root to be a mount point of its own */
	if (mount(plan->root, plan->root, NULL, MS_BIND | MS_REC, NULL) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "bind %s",
			    plan->root);
		return -1;
	}
	if (mount_defaults(plan, report) < 0)
		return -1;
	for (size_t i = 0; i < plan->nmounts; i++)
		if (mount_request(plan, &plan->mounts[i], report) < 0)
			return -1;
	if (plan->readonly &&
	    mount(NULL, plan->root, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY,
		  NULL) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "make the rootfs read-only");
		return -1;
	}
	if (enter_root(plan, report) < 0)
		return -1;
	if (plan->hostname != NULL &&
	    sethostname(plan->hostname, strlen(plan->hostname)) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "sethostname");
		return -1;
	}
	return 0;
}
