/* SPDX-License-Identifier: Apache-2.0 */
/* kiln-vmm's --jail mode: see jail.h and docs/jail.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "config.h"
#include "jail.h"

#define THP_DIR "/sys/kernel/mm/transparent_hugepage"

/* ---- the option ---------------------------------------------------------- */

static int parse_id(const char *s, const char *what, unsigned int *out,
		    struct kiln_error *err)
{
	unsigned long v;
	char *end;

	errno = 0;
	if (s[0] < '0' || s[0] > '9')
		return kiln_error_set(err, 0, "--jail %s=%s: not a number",
				      what, s);
	v = strtoul(s, &end, 10);
	/* (uid_t)-1 means "unchanged" to setresuid: never a jail's id */
	if (errno != 0 || *end != '\0' || v >= UINT32_MAX)
		return kiln_error_set(err, 0, "--jail %s=%s: not a number",
				      what, s);
	if (v == 0)
		return kiln_error_set(err, 0,
				      "--jail %s=0: the jail runs as an "
				      "unprivileged id, not root",
				      what);
	*out = (unsigned int)v;
	return 0;
}

static int parse_keep_fds(struct jail_opts *j, const char *s,
			  struct kiln_error *err)
{
	cleanup_free char *copy = strdup(s);
	char *save = NULL;

	if (copy == NULL)
		return kiln_error_set(err, ENOMEM, "--jail keep-fds");
	for (char *t = strtok_r(copy, ":", &save); t != NULL;
	     t = strtok_r(NULL, ":", &save)) {
		unsigned int fd;

		if (parse_id(t, "keep-fds", &fd, err) < 0)
			return -1;
		if (fd > INT_MAX)
			return kiln_error_set(err, 0,
					      "--jail keep-fds: fd %s out of "
					      "range",
					      t);
		if (j->nkeep == JAIL_MAX_KEEP_FDS)
			return kiln_error_set(err, 0,
					      "--jail keep-fds: at most %d fds",
					      JAIL_MAX_KEEP_FDS);
		j->keep_fds[j->nkeep++] = (int)fd;
	}
	return 0;
}

int jail_parse(struct jail_opts *j, const char *spec, struct kiln_error *err)
{
	cleanup_free char *copy = strdup(spec);
	bool has_uid = false, has_gid = false;
	char *save = NULL;

	if (copy == NULL)
		return kiln_error_set(err, ENOMEM, "--jail");
	jail_opts_destroy(j);
	for (char *kv = strtok_r(copy, ",", &save); kv != NULL;
	     kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		unsigned int n;

		if (v == NULL)
			return kiln_error_set(
				err, 0, "--jail: `%s` is not key=value", kv);
		*v++ = '\0';
		if (strcmp(kv, "root") == 0) {
			if (v[0] == '\0')
				return kiln_error_set(err, 0,
						      "--jail root= is empty");
			free(j->root);
			j->root = strdup(v);
			if (j->root == NULL)
				return kiln_error_set(err, ENOMEM, "--jail");
		} else if (strcmp(kv, "uid") == 0) {
			if (parse_id(v, "uid", &n, err) < 0)
				return -1;
			j->uid = n;
			has_uid = true;
		} else if (strcmp(kv, "gid") == 0) {
			if (parse_id(v, "gid", &n, err) < 0)
				return -1;
			j->gid = n;
			has_gid = true;
		} else if (strcmp(kv, "keep-fds") == 0) {
			if (parse_keep_fds(j, v, err) < 0)
				return -1;
		} else {
			return kiln_error_set(err, 0,
					      "--jail: unknown key `%s` (root, "
					      "uid, gid, keep-fds)",
					      kv);
		}
	}
	if (j->root == NULL || !has_uid || !has_gid)
		return kiln_error_set(err, 0,
				      "--jail needs root=DIR,uid=N,gid=N");
	j->enabled = true;
	return 0;
}

void jail_opts_destroy(struct jail_opts *j)
{
	free(j->root);
	memset(j, 0, sizeof(*j));
}

/* ---- the plan: which paths are bound, how --------------------------------- */

/* Drop empty and `.` components and trailing slashes; "/" stays "/". */
static void normalise(char *path)
{
	char *w = path;

	for (const char *r = path; *r != '\0';) {
		if (*r == '/') {
			r++;
			continue;
		}
		if (r[0] == '.' && (r[1] == '/' || r[1] == '\0')) {
			r++;
			continue;
		}
		*w++ = '/';
		while (*r != '\0' && *r != '/')
			*w++ = *r++;
	}
	if (w == path)
		*w++ = '/';
	*w = '\0';
}

int jail_plan_add(struct jail_plan *p, const char *path, const char *cwd,
		  enum jail_bind_kind kind, const char *what,
		  struct kiln_error *err)
{
	struct jail_bind *v;
	char *abs;

	if (path == NULL)
		return 0;
	if (path[0] == '\0')
		return kiln_error_set(err, 0, "--jail: the %s path is empty",
				      what);
	/* `..` would be resolved in the tmpfs, not as the host resolves it */
	for (const char *s = path; (s = strstr(s, "..")) != NULL; s += 2)
		if ((s == path || s[-1] == '/') &&
		    (s[2] == '\0' || s[2] == '/'))
			return kiln_error_set(err, 0,
					      "--jail: %s `%s`: a path with a "
					      "`..` component cannot be bound",
					      what, path);
	if (path[0] == '/')
		abs = strdup(path);
	else if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		abs = NULL;
	if (abs == NULL)
		return kiln_error_set(err, ENOMEM, "--jail");
	normalise(abs);
	v = realloc(p->v, (p->n + 1) * sizeof(*v));
	if (v == NULL) {
		free(abs);
		return kiln_error_set(err, ENOMEM, "--jail");
	}
	p->v = v;
	p->v[p->n++] =
		(struct jail_bind){ .path = abs, .kind = kind, .what = what };
	return 0;
}

/* The folder a socket or file named by path is made in. */
static int plan_add_folder(struct jail_plan *p, const char *path,
			   const char *cwd, const char *what,
			   struct kiln_error *err)
{
	cleanup_free char *dir = NULL;
	char *slash;

	if (path == NULL)
		return 0;
	dir = strdup(path);
	if (dir == NULL)
		return kiln_error_set(err, ENOMEM, "--jail");
	slash = strrchr(dir, '/');
	if (slash == NULL)
		return jail_plan_add(p, ".", cwd, JAIL_DIR_RW, what, err);
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return jail_plan_add(p, dir, cwd, JAIL_DIR_RW, what, err);
}

int jail_plan_config(struct jail_plan *p, const struct vm_config *cfg,
		     const char *api_sock, const char *fork_from,
		     const char *cwd, struct kiln_error *err)
{
	if (jail_plan_add(p, cfg->kernel_path, cwd, JAIL_FILE_RO, "kernel",
			  err) < 0 ||
	    jail_plan_add(p, cfg->initrd_path, cwd, JAIL_FILE_RO, "initramfs",
			  err) < 0 ||
	    plan_add_folder(p, api_sock, cwd, "API socket folder", err) < 0 ||
	    jail_plan_add(p, fork_from, cwd, JAIL_FILE_RW, "template socket",
			  err) < 0 ||
	    jail_plan_add(p, cfg->console_path, cwd, JAIL_OUTPUT, "console",
			  err) < 0 ||
	    jail_plan_add(p, cfg->metrics_path, cwd, JAIL_OUTPUT, "metrics",
			  err) < 0 ||
	    jail_plan_add(p, cfg->log_path, cwd, JAIL_OUTPUT, "log", err) < 0)
		return -1;
	for (unsigned int i = 0; i < cfg->ndrives; i++)
		if (jail_plan_add(p, cfg->drives[i].path, cwd,
				  cfg->drives[i].read_only ? JAIL_FILE_RO
							   : JAIL_FILE_RW,
				  "drive", err) < 0)
			return -1;
	for (unsigned int i = 0; i < cfg->nfs; i++)
		if (jail_plan_add(p, cfg->fs[i].socket_path, cwd, JAIL_FILE_RW,
				  "virtio-fs socket", err) < 0)
			return -1;
	/* the host side listens there and connects to its _PORT sockets */
	if (cfg->vsock.enabled &&
	    plan_add_folder(p, cfg->vsock.uds_path, cwd, "vsock socket folder",
			    err) < 0)
		return -1;
	return 0;
}

/* Is path inside folder dir (or dir itself)? Both absolute, normalised. */
static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

static int bind_cmp(const void *a, const void *b)
{
	const struct jail_bind *x = a, *y = b;
	size_t lx = strlen(x->path), ly = strlen(y->path);

	if (lx != ly)
		return lx < ly ? -1 : 1;
	/* the same path named twice: a folder first, then rw before ro */
	if (x->kind != y->kind)
		return (int)y->kind - (int)x->kind;
	return strcmp(x->path, y->path);
}

void jail_plan_finish(struct jail_plan *p)
{
	if (p->n > 1)
		qsort(p->v, p->n, sizeof(*p->v), bind_cmp);
	for (size_t i = 0; i < p->n; i++) {
		p->v[i].skip = false;
		for (size_t k = 0; k < i && !p->v[i].skip; k++) {
			bool dir = p->v[k].kind == JAIL_DIR_RW ||
				   p->v[k].kind == JAIL_DIR_RO;

			if (p->v[k].skip)
				continue;
			if (strcmp(p->v[k].path, p->v[i].path) == 0 ||
			    (dir && path_under(p->v[i].path, p->v[k].path)))
				p->v[i].skip = true;
		}
	}
}

void jail_plan_destroy(struct jail_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].path);
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

/* ---- checks before anything is made ---------------------------------------- */

/*
 * Could uid/gid (no supplementary groups) do `want` (R_OK, W_OK, X_OK
 * bits) to the file st describes? As the kernel's generic_permission,
 * without ACLs: the caller is root here, so access(2) would not tell.
 */
static bool jail_may(const struct stat *st, uid_t uid, gid_t gid, int want)
{
	int bits = st->st_mode & 07;

	if (st->st_uid == uid)
		bits = (st->st_mode >> 6) & 07;
	else if (st->st_gid == gid)
		bits = (st->st_mode >> 3) & 07;
	return (bits & want) == want;
}

/*
 * Every path of the plan exists (a JAIL_OUTPUT's folder at least) and
 * the jail's uid may use it: one clear error now, not an EACCES when the
 * guest is half booted. A JAIL_OUTPUT becomes a file or a folder bind.
 */
static int plan_resolve(struct jail_plan *p, const struct jail_opts *j,
			struct kiln_error *err)
{
	for (size_t i = 0; i < p->n; i++) {
		struct jail_bind *b = &p->v[i];
		const char *need = "read";
		struct stat st;
		int want = R_OK;

		if (b->kind == JAIL_OUTPUT) {
			char *slash;

			if (stat(b->path, &st) == 0 && !S_ISREG(st.st_mode) &&
			    !S_ISDIR(st.st_mode)) {
				b->kind = JAIL_FILE_RW;
			} else {
				slash = strrchr(b->path, '/');
				if (slash == b->path)
					slash[1] = '\0';
				else
					*slash = '\0';
				b->kind = JAIL_DIR_RW;
			}
		}
		if (b->kind == JAIL_DIR_RW && strcmp(b->path, "/") == 0)
			return kiln_error_set(err, 0,
					      "--jail: the %s is `/`: put it "
					      "in a folder of its own",
					      b->what);
		if (stat(b->path, &st) < 0) {
			if (b->kind == JAIL_DIR_RO && errno == ENOENT) {
				b->skip = true; /* optional host facts */
				continue;
			}
			return kiln_error_set(err, errno, "--jail: %s `%s`",
					      b->what, b->path);
		}
		switch (b->kind) {
		case JAIL_DIR_RW:
			want = W_OK | X_OK;
			need = "create files in";
			/* fallthrough */
		case JAIL_DIR_RO:
			if (!S_ISDIR(st.st_mode))
				return kiln_error_set(err, ENOTDIR,
						      "--jail: %s `%s`",
						      b->what, b->path);
			if (b->kind == JAIL_DIR_RO)
				want = R_OK | X_OK;
			break;
		case JAIL_FILE_RW:
			want = S_ISSOCK(st.st_mode) ? W_OK : R_OK | W_OK;
			need = S_ISSOCK(st.st_mode) ? "connect to" : "write";
			/* fallthrough */
		default:
			if (S_ISDIR(st.st_mode))
				return kiln_error_set(err, EISDIR,
						      "--jail: %s `%s`",
						      b->what, b->path);
			break;
		}
		if (!jail_may(&st, j->uid, j->gid, want))
			return kiln_error_set(err, EACCES,
					      "--jail: uid %u gid %u cannot "
					      "%s the %s `%s` (owner %u:%u, "
					      "mode %o): chown or chmod it",
					      (unsigned)j->uid,
					      (unsigned)j->gid, need, b->what,
					      b->path, (unsigned)st.st_uid,
					      (unsigned)st.st_gid,
					      (unsigned)(st.st_mode & 07777));
	}
	return 0;
}

/* Is the folder at fd empty? */
static int dir_empty(int fd, const char *path, struct kiln_error *err)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;
	int ret = 0;

	if (d == NULL) {
		close(fd);
		return kiln_error_set(err, errno, "--jail: root `%s`", path);
	}
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0) {
			ret = kiln_error_set(err, 0,
					     "--jail: root `%s` is not empty "
					     "(`%s` in it)",
					     path, e->d_name);
			break;
		}
	closedir(d);
	return ret;
}

/* The jail root: made when missing; an empty folder, never a symlink. */
static int check_root(const char *root, bool *made, struct kiln_error *err)
{
	struct stat st;
	int fd;

	*made = false;
	if (lstat(root, &st) < 0) {
		if (errno != ENOENT)
			return kiln_error_set(err, errno, "--jail: root `%s`",
					      root);
		if (mkdir(root, 0755) < 0)
			return kiln_error_set(err, errno,
					      "--jail: make root `%s`", root);
		*made = true;
		return 0;
	}
	if (S_ISLNK(st.st_mode))
		return kiln_error_set(err, 0,
				      "--jail: root `%s` is a symlink: name "
				      "the folder itself",
				      root);
	if (!S_ISDIR(st.st_mode))
		return kiln_error_set(
			err, 0, "--jail: root `%s` is not a folder", root);
	fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kiln_error_set(err, errno, "--jail: root `%s`", root);
	return dir_empty(fd, root, err);
}

/* One kiln-vmm per jail uid, for the process's life: fd of the lock. */
static int lock_uid(uid_t uid, struct kiln_error *err)
{
	char path[64];
	int fd;

	if ((mkdir("/run/kiln", 0755) < 0 && errno != EEXIST) ||
	    (mkdir(JAIL_LOCK_DIR, 0700) < 0 && errno != EEXIST))
		return kiln_error_set(err, errno, "--jail: make %s",
				      JAIL_LOCK_DIR);
	snprintf(path, sizeof(path), JAIL_LOCK_DIR "/%u.lock", (unsigned)uid);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return kiln_error_set(err, errno, "--jail: open `%s`", path);
	/*
	 * The runtime tests whether a uid is taken by taking this lock for
	 * an instant (runtime/jail.c): a few tries over 50 ms tell such a
	 * look from a kiln-vmm that holds it.
	 */
	for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; i++) {
		int e = errno;

		if (e == EWOULDBLOCK && i < 50) {
			usleep(1000);
			continue;
		}
		close(fd);
		if (e == EWOULDBLOCK)
			return kiln_error_set(err, 0,
					      "--jail: uid %u is in use by "
					      "another jailed kiln-vmm (%s "
					      "is locked)",
					      (unsigned)uid, path);
		return kiln_error_set(err, e, "--jail: lock `%s`", path);
	}
	return fd;
}

/* The host's character device at path, or a clear refusal. */
static int host_dev(const char *path, dev_t *rdev, struct kiln_error *err)
{
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISCHR(st.st_mode))
		return kiln_error_set(err, 0,
				      "--jail: the host has no %s device node "
				      "to make in the jail",
				      path);
	*rdev = st.st_rdev;
	return 0;
}

/* ---- inside the new mount namespace ----------------------------------------- */

/* mkdir -p of the folders above path (path itself not made). */
static int mkdir_parents(char *path, struct kiln_error *err)
{
	for (char *s = strchr(path + 1, '/'); s != NULL;
	     s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			kiln_error_set(err, errno, "--jail: mkdir `%s`", path);
			*s = '/';
			return -1;
		}
		*s = '/';
	}
	return 0;
}

static int make_dev(const char *root, const char *name, dev_t rdev,
		    const struct jail_opts *j, struct kiln_error *err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s%s", root, name);
	if (mkdir_parents(path, err) < 0)
		return -1;
	if (mknod(path, S_IFCHR | 0600, rdev) < 0 ||
	    chown(path, j->uid, j->gid) < 0)
		return kiln_error_set(err, errno, "--jail: make %s", name);
	return 0;
}

static int bind_one(const char *root, const struct jail_bind *b,
		    struct kiln_error *err)
{
	unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV;
	bool dir = b->kind == JAIL_DIR_RW || b->kind == JAIL_DIR_RO;
	char dst[PATH_MAX];
	int fd;

	if (snprintf(dst, sizeof(dst), "%s%s", root, b->path) >=
	    (int)sizeof(dst))
		return kiln_error_set(err, ENAMETOOLONG, "--jail: %s `%s`",
				      b->what, b->path);
	if (mkdir_parents(dst, err) < 0)
		return -1;
	if (dir) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			return kiln_error_set(err, errno, "--jail: mkdir `%s`",
					      dst);
	} else {
		fd = open(dst, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			  0600);
		if (fd < 0)
			return kiln_error_set(err, errno, "--jail: make `%s`",
					      dst);
		close(fd);
	}
	/* not MS_REC: what is mounted below a bound folder stays out */
	if (mount(b->path, dst, NULL, MS_BIND, NULL) < 0)
		return kiln_error_set(err, errno, "--jail: bind %s `%s`",
				      b->what, b->path);
	if (b->kind == JAIL_FILE_RO || b->kind == JAIL_DIR_RO)
		flags |= MS_RDONLY;
	/*
	 * An output that is a character device (a console pty, /dev/null:
	 * plan_resolve made it a JAIL_FILE_RW) is opened as such: nodev
	 * would refuse it. Only the node the configuration names, checked
	 * writable by the jail's ids; the VMM cannot make others (no
	 * CAP_MKNOD, and the root is read-only).
	 */
	{
		struct stat st;

		if (b->kind == JAIL_FILE_RW && stat(b->path, &st) == 0 &&
		    S_ISCHR(st.st_mode))
			flags &= ~(unsigned long)MS_NODEV;
	}
	if (mount(NULL, dst, NULL, flags, NULL) < 0)
		return kiln_error_set(err, errno, "--jail: remount %s `%s`",
				      b->what, b->path);
	return 0;
}

/* Mounts, device nodes, pivot_root: the child, in its new namespaces. */
static int build_root(const struct jail_opts *j, const struct jail_plan *p,
		      dev_t kvm, dev_t tun, bool has_tun, const char *cwd,
		      struct kiln_error *err)
{
	const char *root = j->root;

	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
		return kiln_error_set(err, errno,
				      "--jail: unshare mount, ipc and uts "
				      "namespaces");
	/* nothing mounted from here on reaches the host, nor back */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return kiln_error_set(err, errno,
				      "--jail: make mounts private");
	if (sethostname("kiln-vmm", 8) < 0)
		return kiln_error_set(err, errno, "--jail: sethostname");
	if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NOEXEC,
		  "size=1m,nr_inodes=256,mode=0755") < 0)
		return kiln_error_set(err, errno,
				      "--jail: mount a tmpfs on `%s`", root);
	if (make_dev(root, "/dev/kvm", kvm, j, err) < 0 ||
	    (has_tun && make_dev(root, "/dev/net/tun", tun, j, err) < 0))
		return -1;
	for (size_t i = 0; i < p->n; i++)
		if (!p->v[i].skip && bind_one(root, &p->v[i], err) < 0)
			return -1;
	/*
	 * This pid namespace's own /proc: /proc/self/fd/N paths (fds
	 * passed on purpose, the serial console's own stdout) and
	 * /proc/meminfo; the host's processes are not in it.
	 */
	{
		char proc[PATH_MAX];

		snprintf(proc, sizeof(proc), "%s/proc", root);
		if (mkdir(proc, 0555) < 0 ||
		    mount("proc", proc, "proc",
			  MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
			  NULL) < 0)
			return kiln_error_set(err, errno,
					      "--jail: mount /proc");
	}
	if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return kiln_error_set(err, errno,
				      "--jail: pivot_root into `%s`", root);
	/* the VMM makes nothing in the jail's own tmpfs */
	if (mount(NULL, "/", NULL,
		  MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
		return kiln_error_set(err, errno,
				      "--jail: remount the root read-only");
	/* relative paths (the runtime's sockets) keep meaning the same */
	if (chdir(cwd) < 0 && chdir("/") < 0)
		return kiln_error_set(err, errno, "--jail: chdir");
	return 0;
}

/* Every capability out of the bounding set, then the jail's ids. */
static int drop_ids(const struct jail_opts *j, struct kiln_error *err)
{
	for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return kiln_error_set(err, errno,
					      "--jail: drop capability %d from "
					      "the bounding set",
					      c);
	if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() < 0)
		return kiln_error_set(err, errno,
				      "--jail: clear ambient capabilities");
	if (setgroups(0, NULL) < 0 || setresgid(j->gid, j->gid, j->gid) < 0 ||
	    setresuid(j->uid, j->uid, j->uid) < 0)
		return kiln_error_set(err, errno,
				      "--jail: become uid %u gid %u",
				      (unsigned)j->uid, (unsigned)j->gid);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return kiln_error_set(err, errno, "--jail: no_new_privs");
	return 0;
}

static int int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* close_range around the fds in keep (sorted here); 0-2 always stay. */
static int close_except(int *keep, unsigned int n, struct kiln_error *err)
{
	unsigned int lo = 3;

	qsort(keep, n, sizeof(keep[0]), int_cmp);
	for (unsigned int i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if (keep[i] > (int)lo &&
		    syscall(SYS_close_range, lo, keep[i] - 1, 0) < 0)
			return kiln_error_set(err, errno, "--jail: close fds");
		lo = (unsigned int)keep[i] + 1;
	}
	if (syscall(SYS_close_range, lo, ~0U, 0) < 0)
		return kiln_error_set(err, errno, "--jail: close fds");
	return 0;
}

/*
 * Close every fd but 0-2, the log's, the lock's and those kept on
 * purpose. A kept folder fd would be a way out of the jail (openat).
 */
static int close_fds(const struct jail_opts *j, int lock_fd,
		     struct kiln_error *err)
{
	int keep[JAIL_MAX_KEEP_FDS + 2];
	unsigned int n = 0;

	for (unsigned int i = 0; i < j->nkeep; i++) {
		struct stat st;

		if (fstat(j->keep_fds[i], &st) < 0)
			return kiln_error_set(err, errno,
					      "--jail keep-fds: fd %d",
					      j->keep_fds[i]);
		if (S_ISDIR(st.st_mode))
			return kiln_error_set(err, 0,
					      "--jail keep-fds: fd %d is a "
					      "folder (a way out of the jail)",
					      j->keep_fds[i]);
		keep[n++] = j->keep_fds[i];
	}
	keep[n++] = lock_fd;
	keep[n++] = log_fileno();
	return close_except(keep, n, err);
}

/* ---- the waiter outside -------------------------------------------------- */

static const int forwarded[] = { SIGTERM, SIGINT,  SIGHUP,
				 SIGQUIT, SIGUSR1, SIGUSR2 };

/*
 * The process the runtime started stays outside the namespaces and waits:
 * signals go on to the VMM, its status comes back as ours. The jail
 * folder goes as soon as the VMM has pivoted away from it (its end of
 * `built` closes then, or when it dies): from then on nothing is mounted
 * on it in any namespace, so even a kill -9 of this waiter leaves none.
 */
static __attribute__((noreturn)) void wait_vmm(pid_t child, const char *root,
					       int built, const sigset_t *set)
{
	int sfd = signalfd(-1, set, SFD_CLOEXEC);
	int status = 0, code;

	if (sfd < 0) {
		/* cannot wait on both: still forward nothing but reap */
		waitpid(child, &status, 0);
		goto out;
	}
	for (;;) {
		struct pollfd pf[2] = { { .fd = sfd, .events = POLLIN },
					{ .fd = built, .events = POLLIN } };
		struct signalfd_siginfo si;
		char c;

		if (poll(pf, built >= 0 ? 2 : 1, -1) < 0)
			continue;
		if (built >= 0 && pf[1].revents != 0 &&
		    read(built, &c, 1) <= 0) {
			close(built);
			built = -1;
			rmdir(root);
		}
		if (!(pf[0].revents & POLLIN) ||
		    read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			kill(child, (int)si.ssi_signo);
			continue;
		}
		if (waitpid(child, &status, WNOHANG) == child)
			break;
	}
out:
	if (rmdir(root) < 0 && errno != ENOENT)
		fprintf(stderr, "kiln-vmm: --jail: remove `%s`: %s\n", root,
			strerror(errno));
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	_exit(code);
}

/*
 * SIGKILL when the waiter dies; -1 if it is gone already (then its end
 * of the pipe is closed: the signal would never come).
 */
static int die_with_waiter(int alive, struct kiln_error *err)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return kiln_error_set(err, errno, "--jail: PR_SET_PDEATHSIG");
	if (poll(&(struct pollfd){ .fd = alive, .events = POLLIN }, 1, 0) != 0)
		return kiln_error_set(err, 0, "--jail: the waiter is gone");
	return 0;
}

int jail_enter(const struct jail_opts *j, const struct vm_config *cfg,
	       const char *api_sock, const char *fork_from,
	       struct kiln_error *err)
{
	struct jail_plan plan = { 0 };
	char cwd[PATH_MAX];
	sigset_t set, old;
	dev_t kvm = 0, tun = 0;
	bool has_tun, made = false;
	int lock_fd = -1, alive[2] = { -1, -1 }, built[2] = { -1, -1 };
	pid_t child;

	if (geteuid() != 0)
		return kiln_error_set(err, 0,
				      "--jail: kiln-vmm must be "
				      "started as root");
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return kiln_error_set(err, errno, "--jail: getcwd");
	if (host_dev("/dev/kvm", &kvm, err) < 0)
		return -1;
	has_tun = host_dev("/dev/net/tun", &tun, err) == 0;
	if (!has_tun && cfg->nnets > 0)
		return -1;
	if (jail_plan_config(&plan, cfg, api_sock, fork_from, cwd, err) < 0 ||
	    jail_plan_add(&plan, THP_DIR, cwd, JAIL_DIR_RO, "THP settings",
			  err) < 0 ||
	    plan_resolve(&plan, j, err) < 0)
		goto fail;
	jail_plan_finish(&plan);
	lock_fd = lock_uid(j->uid, err);
	if (lock_fd < 0 || check_root(j->root, &made, err) < 0)
		goto fail;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	/* blocked before the fork: none is lost between fork and the wait */
	if (pipe2(alive, O_CLOEXEC) < 0 || pipe2(built, O_CLOEXEC) < 0 ||
	    sigprocmask(SIG_BLOCK, &set, &old) < 0) {
		kiln_error_set(err, errno, "--jail: pipe");
		goto fail;
	}
	if (unshare(CLONE_NEWPID) < 0) {
		kiln_error_set(err, errno, "--jail: unshare the pid namespace");
		goto fail_mask;
	}
	fflush(NULL);
	child = fork();
	if (child < 0) {
		kiln_error_set(err, errno, "--jail: fork");
		goto fail_mask;
	}
	if (child > 0) {
		int keep[] = { lock_fd, alive[1], built[0] };

		/* the waiter holds the uid's lock too, and nothing else */
		close_except(keep, 3, err);
		jail_plan_destroy(&plan);
		wait_vmm(child, j->root, built[0], &set);
	}
	/*
	 * The VMM, pid 1 of its namespace. It dies with the waiter (kill -9
	 * of the pid the runtime knows); had the waiter died before the
	 * prctl, its end of the pipe is closed already.
	 */
	close(alive[1]);
	close(built[0]); /* built[1] goes with the other fds: close_fds */
	if (die_with_waiter(alive[0], err) < 0)
		_exit(1);
	/*
	 * As pid 1 the VMM ignores a signal it neither handles nor blocks:
	 * those its signalfd takes (vm.c) stay blocked, so that one sent
	 * before the VMM reads them waits for it.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_SETMASK, &old, NULL);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* new credentials clear the parent-death signal: set it again */
	if (build_root(j, &plan, kvm, tun, has_tun, cwd, err) < 0 ||
	    drop_ids(j, err) < 0 || die_with_waiter(alive[0], err) < 0 ||
	    close_fds(j, lock_fd, err) < 0) {
		jail_plan_destroy(&plan);
		return -1;
	}
	jail_plan_destroy(&plan);
	log_info("jailed in `%s` as uid %u gid %u", j->root, (unsigned)j->uid,
		 (unsigned)j->gid);
	return 0;
fail_mask:
	sigprocmask(SIG_SETMASK, &old, NULL);
fail:
	if (made)
		rmdir(j->root);
	if (lock_fd >= 0)
		close(lock_fd);
	for (int i = 0; i < 2; i++) {
		if (alive[i] >= 0)
			close(alive[i]);
		if (built[i] >= 0)
			close(built[i]);
	}
	jail_plan_destroy(&plan);
	return -1;
}
