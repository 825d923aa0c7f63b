/* SPDX-License-Identifier: Apache-2.0 */
/* The mount plan, rootfs checks and the init child's mounts; see mount.h. */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"

#define INVALID(...) AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0, __VA_ARGS__)

/* masked_paths or readonly_paths: bounded, each absolute and inside */
static int check_paths(const char *what, char *const *paths, size_t n,
		       const char *root, struct kiln_error *err)
{
	if (n > MOUNT_PATHS_MAX)
		return INVALID("more than %d %s", MOUNT_PATHS_MAX, what);
	for (size_t i = 0; i < n; i++) {
		char name[48];

		snprintf(name, sizeof(name), "%s[%zu]", what, i);
		if (spec_check_path(name, paths[i], err) < 0)
			return -TTRPC_INVALID_ARGUMENT;
		if (strlen(root) + strlen(paths[i]) >= PATH_MAX)
			return INVALID("%s too long", name);
	}
	return 0;
}

static int check_device(const char *what, const char *dev,
			struct kiln_error *err)
{
	if (spec_check_path(what, dev, err) < 0)
		return -TTRPC_INVALID_ARGUMENT;
	if (strncmp(dev, "/dev/", 5) != 0)
		return INVALID("%s `%s` is not under /dev", what, dev);
	return 0;
}

/* A file carried in: bounded, then the bind of a file of our own. */
static int plan_file(struct mount_plan *plan, const char *dir, size_t i,
		     const Kiln__Agent__V1__Mount *m, struct kiln_error *err)
{
	struct mount_one *o = &plan->mounts[i];

	/* client-controlled: sizes bounded per file and per request */
	if (!o->opts.bind)
		return INVALID("mount %s: data needs a bind mount",
			       m->destination);
	if (m->data.len > MOUNT_FILE_MAX)
		return INVALID("mount %s: data of %zu bytes, more than %u",
			       m->destination, m->data.len, MOUNT_FILE_MAX);
	if (m->data.len > MOUNT_FILES_TOTAL_MAX - plan->files_size)
		return INVALID("mount %s: the request's files come to more "
			       "than %u bytes",
			       m->destination, MOUNT_FILES_TOTAL_MAX);
	plan->files_size += m->data.len;
	plan->nfiles++;
	o->data = m->data.data != NULL ? m->data.data : (const uint8_t *)"";
	o->len = m->data.len;
	o->mode = m->file_mode != 0 ? (mode_t)(m->file_mode & 07777) : 0644;
	snprintf(o->file, sizeof(o->file), "%s/files/%zu", dir, i);
	o->source = o->file;
	return 0;
}

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
	if (check_paths("masked_paths", req->masked_paths, req->n_masked_paths,
			plan->root, err) < 0 ||
	    check_paths("readonly_paths", req->readonly_paths,
			req->n_readonly_paths, plan->root, err) < 0)
		return -TTRPC_INVALID_ARGUMENT;
	plan->masked = req->masked_paths;
	plan->nmasked = req->n_masked_paths;
	plan->ro_paths = req->readonly_paths;
	plan->nro_paths = req->n_readonly_paths;
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
		o->source = m->source;
		o->destination = m->destination;
		o->type = m->type;
		if (m->device_size != 0) {
			/* the agent opens it before the clone: a device */
			if (m->has_data || o->opts.bind)
				return INVALID("mount %s: device_size is not "
					       "for a bind",
					       m->destination);
			if (check_device("mount source", m->source, err) < 0)
				return kiln_error_wrap(err, "mount %s",
						       m->destination),
				       -TTRPC_INVALID_ARGUMENT;
			o->device_size = m->device_size;
		}
		if (m->has_data) {
			if (plan_file(plan, dir, i, m, err) < 0)
				return -TTRPC_INVALID_ARGUMENT;
		} else if (o->opts.bind && m->source[0] != '/') {
			return INVALID("bind mount %s: source is not absolute",
				       m->destination);
		} else if (o->opts.bind &&
			   strncmp(m->source, AGENT_VOLUMES_DIR "/",
				   sizeof(AGENT_VOLUMES_DIR)) == 0) {
			const char *name =
				m->source + sizeof(AGENT_VOLUMES_DIR);

			/* one plain name: nothing but a directory of it */
			if (name[0] == '\0' || name[0] == '.' ||
			    strchr(name, '/') != NULL ||
			    strlen(name) > SPEC_ID_MAX)
				return INVALID("bind mount %s: volume `%s`: "
					       "not a name",
					       m->destination, m->source);
			o->volume = true;
		} else if (o->opts.bind &&
			   strncmp(m->source, AGENT_PODFS_DIR "/",
				   sizeof(AGENT_PODFS_DIR)) == 0) {
			if (!mount_podfs_path_ok(m->source +
						 sizeof(AGENT_PODFS_DIR)))
				return INVALID("bind mount %s: `%s` is not a "
					       "pod volume",
					       m->destination, m->source);
			o->podfs = true;
		}
		plan->nmounts++;
	}
	return 0;
}

/* client-controlled: one plain name, a slash, a number; nothing else
 * of the share (no "..", no other container's folder by a detour) */
bool mount_podfs_path_ok(const char *rel)
{
	const char *slash = strchr(rel, '/');
	size_t name = slash != NULL ? (size_t)(slash - rel) : 0;
	const char *n = slash != NULL ? slash + 1 : NULL;

	if (name == 0 || name > SPEC_ID_MAX || rel[0] == '.' || n == NULL ||
	    n[0] == '\0' || strlen(n) > 4)
		return false;
	for (; *n != '\0'; n++)
		if (*n < '0' || *n > '9')
			return false;
	return true;
}

int mount_podfs_ensure(const struct mount_plan *plan, struct kiln_error *err)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static bool mounted;
	bool want = false;
	int res = 0;

	for (size_t i = 0; i < plan->nmounts; i++)
		want = want || plan->mounts[i].podfs;
	if (!want)
		return 0;
	/* two creates at once: one mounts, the other finds it done */
	pthread_mutex_lock(&lock);
	if (!mounted) {
		if (mkdir(AGENT_PODFS_DIR, 0700) < 0 && errno != EEXIST)
			res = AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					 "mkdir " AGENT_PODFS_DIR);
		else if (mount(AGENT_PODFS_TAG, AGENT_PODFS_DIR, "virtiofs",
			       MS_NOSUID | MS_NODEV, NULL) < 0)
			res = AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, errno,
					 "mount the pod's share (virtio-fs "
					 "tag " AGENT_PODFS_TAG
					 ") on " AGENT_PODFS_DIR);
		else
			mounted = true;
	}
	pthread_mutex_unlock(&lock);
	return res;
}

void mount_plan_free(struct mount_plan *plan)
{
	free(plan->mounts);
	plan->mounts = NULL;
}

/* ---- the rootfs: what mount_rootfs checks first ----------------------- */

static bool one_of(const char *s, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return true;
	return false;
}

static int check_layers(const Kiln__Agent__V1__Rootfs *r,
			struct kiln_error *err)
{
	static const char *const types[] = { "erofs", "ext4" };
	const char *upper = r->upper_device;

	if (r->device != NULL && r->device[0] != '\0')
		return INVALID("rootfs.device must be empty when "
			       "rootfs.layers is set");
	if (r->n_options != 0)
		return INVALID("rootfs.options: not with rootfs.layers");
	if (r->n_layers > MOUNT_LAYERS_MAX)
		return INVALID("rootfs.layers: more than %d", MOUNT_LAYERS_MAX);
	for (size_t i = 0; i < r->n_layers; i++) {
		const Kiln__Agent__V1__Layer *l = r->layers[i];
		char what[48];

		snprintf(what, sizeof(what), "rootfs.layers[%zu].device", i);
		if (check_device(what, l->device, err) < 0)
			return -TTRPC_INVALID_ARGUMENT;
		if (!one_of(l->fstype, types, ARRAY_SIZE(types)))
			return INVALID("rootfs.layers[%zu].fstype must be "
				       "erofs or ext4",
				       i);
		/* the writable layer is never also a read-only one */
		if (upper != NULL && strcmp(upper, l->device) == 0)
			return INVALID("rootfs.upper_device `%s` is also "
				       "rootfs.layers[%zu]",
				       l->device, i);
	}
	if (upper != NULL && upper[0] != '\0' &&
	    check_device("rootfs.upper_device", upper, err) < 0)
		return -TTRPC_INVALID_ARGUMENT;
	return 0;
}

int mount_rootfs_check(const Kiln__Agent__V1__Rootfs *r,
		       struct spec_mount_opts *o, struct kiln_error *err)
{
	static const char *const types[] = { "ext4", "erofs", "ext2", "ext3",
					     "squashfs" };

	memset(o, 0, sizeof(*o));
	/* client-controlled: every field bounded before any is used */
	if (r == NULL)
		return INVALID("rootfs is missing");
	if (r->n_layers != 0)
		return check_layers(r, err);
	if (r->upper_device != NULL && r->upper_device[0] != '\0')
		return INVALID("rootfs.upper_device needs rootfs.layers");
	if (check_device("rootfs.device", r->device, err) < 0)
		return -TTRPC_INVALID_ARGUMENT;
	if (!one_of(r->fstype, types, ARRAY_SIZE(types)))
		return INVALID("rootfs.fstype must be ext4 or erofs");
	if (spec_mount_opts_parse(r->options, r->n_options, o, err) < 0)
		return kiln_error_wrap(err, "rootfs"), -TTRPC_INVALID_ARGUMENT;
	if (o->bind)
		return INVALID("rootfs.options: no bind");
	return 0;
}

int mount_overlay_data(char *data, size_t size, const char *dir, size_t n,
		       const int *fds, const char *upper, const char *work)
{
	size_t used = 0;
	int w = snprintf(data, size, "lowerdir=");

	for (size_t i = 0;; i++) {
		if (w < 0 || (used += (size_t)w) >= size)
			return -1;
		if (i == n)
			break;
		if (fds != NULL)
			w = snprintf(data + used, size - used,
				     "%s/proc/self/fd/%d", i ? ":" : "",
				     fds[i]);
		else
			w = snprintf(data + used, size - used, "%s%s/l%zu",
				     i ? ":" : "", dir, i);
	}
	w = snprintf(data + used, size - used, ",upperdir=%s,workdir=%s", upper,
		     work);
	return w < 0 || used + (size_t)w >= size ? -1 : 0;
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
	/* a shared volume's first user makes it, open to all (emptyDir) */
	if (m->volume && mkdir(m->source, 0777) == 0)
		chmod(m->source, 0777);
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

/* a path the runtime names that the image lacks is not an error (runc) */
static bool path_missing(int e)
{
	return e == ENOENT || e == ENOTDIR;
}

/* what a read-only remount of a bind must keep: the flags it had */
static unsigned long statfs_mount_flags(unsigned long f)
{
	static const struct {
		unsigned long st, ms;
	} map[] = {
		{ ST_NOSUID, MS_NOSUID },	  { ST_NODEV, MS_NODEV },
		{ ST_NOEXEC, MS_NOEXEC },	  { ST_NOATIME, MS_NOATIME },
		{ ST_NODIRATIME, MS_NODIRATIME }, { ST_RELATIME, MS_RELATIME },
	};
	unsigned long ms = 0;

	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (f & map[i].st)
			ms |= map[i].ms;
	return ms;
}

/* readonlyPaths: bound onto itself, then that bind made read-only */
static int path_readonly(int rootfd, const char *p, int report)
{
	cleanup_close int fd = mount_resolve(rootfd, p, MOUNT_OPEN);
	cleanup_close int top = -1;
	char path[32];
	struct statfs sf;

	if (fd < 0 && path_missing(errno))
		return 0;
	if (fd < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "readonly path %s: resolve in the rootfs", p);
		return -1;
	}
	fd_path(path, sizeof(path), fd);
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "readonly path %s: bind onto itself", p);
		return -1;
	}
	/* a fresh lookup crosses onto the bind just made */
	top = mount_resolve(rootfd, p, MOUNT_OPEN);
	if (top >= 0 && fstatfs(top, &sf) == 0) {
		fd_path(path, sizeof(path), top);
		if (mount(NULL, path, NULL,
			  MS_BIND | MS_REMOUNT | MS_RDONLY |
				  statfs_mount_flags(sf.f_flags),
			  NULL) == 0)
			return 0;
	}
	proc_report(report, TTRPC_INTERNAL, errno,
		    "readonly path %s: make it read-only", p);
	return -1;
}

/* maskedPaths: /dev/null over a file, an empty read-only tmpfs over a
 * directory */
static int path_mask(int rootfd, const char *p, int report)
{
	cleanup_close int fd = mount_resolve(rootfd, p, MOUNT_OPEN);
	char path[32];
	struct stat st;
	int r;

	if (fd < 0 && path_missing(errno))
		return 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		proc_report(report, TTRPC_INTERNAL, errno,
			    "masked path %s: resolve in the rootfs", p);
		return -1;
	}
	fd_path(path, sizeof(path), fd);
	if (S_ISDIR(st.st_mode))
		r = mount("tmpfs", path, "tmpfs",
			  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  "size=4k,mode=0755");
	else
		r = mount("/dev/null", path, NULL, MS_BIND, NULL);
	if (r < 0) {
		proc_report(report, TTRPC_INTERNAL, errno, "mask %s", p);
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
	/* after the mounts, read-only before masked, as runc does */
	for (size_t i = 0; i < plan->nro_paths; i++)
		if (path_readonly(rootfd, plan->ro_paths[i], report) < 0)
			return -1;
	for (size_t i = 0; i < plan->nmasked; i++)
		if (path_mask(rootfd, plan->masked[i], report) < 0)
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
