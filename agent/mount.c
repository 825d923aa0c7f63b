/* SPDX-License-Identifier: Apache-2.0 */
/* A container's rootfs and mounts; see mount.h. */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
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

/*
 * Paths under the container's root are the image's to shape: a symlink
 * such as /data -> /etc or /a -> ../../.. must not lead a lookup made
 * before pivot_root into the guest's own root. Every destination is
 * therefore resolved by openat2(2) with RESOLVE_IN_ROOT from a descriptor
 * of the root (absolute links and ".." stop at it, as after chroot), and
 * RESOLVE_NO_MAGICLINKS, because once the container's /proc is mounted a
 * link to /proc/self/root would jump anywhere.
 */
static int open_in_root(int rootfd, const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd = -1;

	/* EAGAIN: a rename raced with a ".." step; the kernel asks us to
	 * retry rather than risk an escape */
	for (int i = 0; i < 16; i++) {
		fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		if (fd >= 0 || errno != EAGAIN)
			break;
	}
	return fd;
}

static const char *type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "regular file";
	case S_IFDIR:
		return "directory";
	case S_IFCHR:
		return "character device";
	case S_IFBLK:
		return "block device";
	case S_IFIFO:
		return "FIFO";
	case S_IFSOCK:
		return "socket";
	case S_IFLNK:
		return "symlink";
	}
	return "file of unknown type";
}

int mount_open_in_root(int rootfd, const char *path, int flags, mode_t type,
		       dev_t rdev, struct stat *st, struct kiln_error *err)
{
	cleanup_close int pfd = -1;
	struct stat sb;
	char proc[64];
	int fd;

	/* guest-controlled: the whole tree under rootfd. O_PATH opens
	 * nothing: no FIFO to wait on, no device driver's open to run */
	pfd = open_in_root(rootfd, path);
	if (pfd < 0)
		return kiln_error_set(err, errno, "open the container's %s",
				      path);
	if (fstat(pfd, &sb) < 0)
		return kiln_error_set(err, errno, "stat the container's %s",
				      path);
	if ((sb.st_mode & S_IFMT) != type)
		return kiln_error_set(err, 0,
				      "the container's %s is a %s, not a %s",
				      path, type_name(sb.st_mode),
				      type_name(type));
	if ((type == S_IFCHR || type == S_IFBLK) && sb.st_rdev != rdev)
		return kiln_error_set(err, 0,
				      "the container's %s is the device %u:%u, "
				      "not %u:%u",
				      path, major(sb.st_rdev),
				      minor(sb.st_rdev), major(rdev),
				      minor(rdev));
	/* the very inode checked above: the magic link is not a lookup by
	 * name, so a rename since cannot swap another file in */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, flags | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return kiln_error_set(err, errno, "open the container's %s",
				      path);
	if (st != NULL)
		*st = sb;
	return fd;
}

/*
 * One component just made (or found) in dir, which is inside the root:
 * no symlink is followed here, so a link planted where we expected a
 * directory fails with ELOOP instead of being taken.
 */
static int open_component(int dir, const char *name)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
	};

	return (int)syscall(SYS_openat2, dir, name, &how, sizeof(how));
}

int mount_resolve(int rootfd, const char *path, enum mount_create create)
{
	char buf[PATH_MAX];
	size_t len = strlen(path), end = len;
	int fd, saved;
	char *p;

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open_in_root(rootfd, path);
	if (fd >= 0 || errno != ENOENT || create == MOUNT_OPEN)
		return fd;
	memcpy(buf, path, len + 1);
	/* the longest prefix that exists, resolved in the root */
	for (;;) {
		while (end > 0 && buf[end - 1] == '/')
			end--;
		while (end > 0 && buf[end - 1] != '/')
			end--;
		if (end == 0) {
			fd = open_in_root(rootfd, "/");
		} else {
			char c = buf[end];

			buf[end] = '\0';
			fd = open_in_root(rootfd, buf);
			buf[end] = c;
		}
		if (fd >= 0)
			break;
		if (errno != ENOENT || end == 0)
			return -1;
	}
	/* then one component at a time, relative to what is resolved so far */
	for (p = buf + end;;) {
		char *name, *next;
		bool last;
		int r, sub;

		while (*p == '/')
			p++;
		if (*p == '\0')
			return fd;
		name = p;
		next = name + strcspn(name, "/");
		p = next;
		while (*p == '/')
			p++;
		last = *p == '\0';
		*next = '\0';
		if (last && create == MOUNT_MKFILE)
			r = mknodat(fd, name, S_IFREG | 0644, 0);
		else
			r = mkdirat(fd, name, 0755);
		if (r < 0 && errno != EEXIST)
			goto fail;
		sub = open_component(fd, name);
		if (sub < 0)
			goto fail;
		close(fd);
		fd = sub;
	}
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/*
 * mount(2) on "/proc/self/fd/N" follows the magic link to the very inode
 * that was resolved in the root, so the image's links are never walked
 * again through a string (runc mounts the same way). The child is in a
 * new mount namespace that still holds the guest's /proc, which the agent
 * mounted at boot (mount_setup_child checks it); /proc/self works there
 * although the child is in a new pid namespace: it is visible from the
 * guest's. The fd-based API (open_tree, move_mount) would spare /proc but
 * not the flag translation for every file system type's data string.
 */
static void fd_path(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

static int mount_at(int rootfd, const char *src, const char *dst,
		    const char *type, unsigned long flags, const char *data,
		    int report)
{
	cleanup_close int fd = mount_resolve(rootfd, dst, MOUNT_MKDIR);
	char path[32];

	if (fd < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "mount destination %s: resolve in the rootfs", dst);
		return -1;
	}
	fd_path(path, sizeof(path), fd);
	if (mount(src, path, type, flags, data) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "mount %s (%s) on %s", src, type, dst);
		return -1;
	}
	return 0;
}

static int dev_links(int rootfd, int report)
{
	static const char *const links[][2] = {
		{ "ptmx", "pts/ptmx" },
		{ "fd", "/proc/self/fd" },
		{ "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" },
		{ "stderr", "/proc/self/fd/2" },
	};
	/* after the tmpfs went on /dev: this is its root */
	cleanup_close int dev = mount_resolve(rootfd, "/dev", MOUNT_OPEN);

	if (dev < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "mount destination /dev: resolve in the rootfs");
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(links); i++)
		if (symlinkat(links[i][1], dev, links[i][0]) < 0 &&
		    errno != EEXIST) {
			proc_report(report, TTRPC_INTERNAL, errno,
				    "symlink /dev/%s", links[i][0]);
			return -1;
		}
	return 0;
}

static int mount_defaults(int rootfd, int report)
{
	static const char *const devs[] = { "null",   "zero",	 "full",
					    "random", "urandom", "tty" };
	const unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;

	if (mount_at(rootfd, "proc", "/proc", "proc", nse, NULL, report) < 0 ||
	    mount_at(rootfd, "sysfs", "/sys", "sysfs", nse | MS_RDONLY, NULL,
		     report) < 0 ||
	    mount_at(rootfd, "tmpfs", "/dev", "tmpfs",
		     MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k",
		     report) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++) {
		char src[32], path[32];
		cleanup_close int fd = -1;

		snprintf(src, sizeof(src), "/dev/%s", devs[i]);
		fd = mount_resolve(rootfd, src, MOUNT_MKFILE);
		if (fd >= 0)
			fd_path(path, sizeof(path), fd);
		if (fd < 0 || mount(src, path, NULL, MS_BIND, NULL) < 0) {
			proc_report(report, TTRPC_INTERNAL, errno,
				    "bind %s into the container", src);
			return -1;
		}
	}
	if (mount_at(rootfd, "devpts", "/dev/pts", "devpts",
		     MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5", report) < 0 ||
	    mount_at(rootfd, "shm", "/dev/shm", "tmpfs", nse,
		     "mode=1777,size=65536k", report) < 0 ||
	    mount_at(rootfd, "mqueue", "/dev/mqueue", "mqueue", nse, NULL,
		     report) < 0)
		return -1;
	return dev_links(rootfd, report);
}

/*
 * A change to the bind mount just made: resolved again, because the
 * descriptor used to mount names the inode under the new mount, and only
 * a fresh lookup crosses onto it.
 */
static int bind_change(int rootfd, const struct mount_one *m,
		       unsigned long flags, const char *what, int report)
{
	cleanup_close int fd =
		mount_resolve(rootfd, m->destination, MOUNT_OPEN);
	char path[32];

	if (fd >= 0)
		fd_path(path, sizeof(path), fd);
	if (fd < 0 || mount(NULL, path, NULL, flags, NULL) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "%s %s", what,
			    m->destination);
		return -1;
	}
	return 0;
}

static int mount_request(int rootfd, const struct mount_one *m, int report)
{
	const struct spec_mount_opts *o = &m->opts;
	cleanup_close int fd = -1;
	char path[32];
	struct stat st;

	if (!o->bind)
		return mount_at(rootfd, m->source[0] ? m->source : m->type,
				m->destination, m->type, o->flags,
				o->data[0] ? o->data : NULL, report);
	/* the source is the guest's (a volume the client placed), not the
	 * image's: looked up as usual */
	if (stat(m->source, &st) < 0) {
		proc_report(report, TTRPC_INVALID_ARGUMENT, errno,
			    "bind mount source `%s`", m->source);
		return -1;
	}
	fd = mount_resolve(rootfd, m->destination,
			   S_ISDIR(st.st_mode) ? MOUNT_MKDIR : MOUNT_MKFILE);
	if (fd < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "mount destination %s: resolve in the rootfs",
			    m->destination);
		return -1;
	}
	fd_path(path, sizeof(path), fd);
	if (mount(m->source, path, NULL, MS_BIND | (o->recursive ? MS_REC : 0),
		  NULL) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "bind %s on %s",
			    m->source, m->destination);
		return -1;
	}
	/* a bind mount takes its flags only from a remount */
	if ((o->flags & ~MS_REC) != 0 &&
	    bind_change(rootfd, m, MS_BIND | MS_REMOUNT | o->flags,
			"remount with its options", report) < 0)
		return -1;
	if (o->propagation && bind_change(rootfd, m, o->propagation,
					  "set propagation of", report) < 0)
		return -1;
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

static int mount_all(const struct mount_plan *plan, int report)
{
	/* opened after the bind onto itself: mounts go on that mount */
	cleanup_close int rootfd =
		open(plan->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct statfs sf = { .f_type = PROC_SUPER_MAGIC };

	if (rootfd < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "open %s",
			    plan->root);
		return -1;
	}
	if (statfs("/proc/self/fd", &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC) {
		proc_report(report, TTRPC_INTERNAL,
			    sf.f_type == PROC_SUPER_MAGIC ? errno : 0,
			    "the guest's /proc is not mounted: mounts in the "
			    "rootfs go through /proc/self/fd");
		return -1;
	}
	if (mount_defaults(rootfd, report) < 0)
		return -1;
	for (size_t i = 0; i < plan->nmounts; i++)
		if (mount_request(rootfd, &plan->mounts[i], report) < 0)
			return -1;
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
	if (mount_all(plan, report) < 0)
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
