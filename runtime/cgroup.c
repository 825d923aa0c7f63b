/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The container's cgroup on the host: linux.cgroupsPath, or /kiln/ID when
 * config.json names none (runc makes one per container too; ours is not
 * below the caller's cgroup, which on cgroup v2 holds processes and could
 * not give its children controllers). Before it starts kiln-vmm the pid
 * process records the path in the state directory, makes the cgroup,
 * writes the VM's limits there (cgroup_limits.c; all or none) and joins
 * it, so the VM (its guest RAM, its vCPU threads, virtiofsd) is charged
 * and held there, and the engines' own stats (docker stats, ctr task
 * metrics) see the container's usage. The CPU quota follows once the
 * guest is up, before the container's process exists: a cold boot runs
 * our kernel and agent only, and at a 20% quota it would take five times
 * as long. The container is also limited inside its guest, on its own
 * cgroup there (agent/resources.c).
 *
 * delete kills whatever is left in the cgroup (after a kill -9 of the pid
 * process: kiln-vmm, virtiofsd) and removes it, as runc does.
 *
 * cgroupfs paths ("/docker/ID"; a relative one goes below /kiln) and, with
 * --systemd-cgroup, "slice:prefix:name" as runc maps it
 * (/system.slice/prefix-name.scope). cgroup v2, or each v1 hierarchy of a
 * v1/hybrid host (whose limits go to the cpu, memory and pids ones).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../lib/log.h"
#include "kiln.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static char cg_root[512] = CGROUP_ROOT;
static int cg_v2 = -1; /* -1: ask statfs */

void cgroup_set_root(const char *root, int v2)
{
	snprintf(cg_root, sizeof(cg_root), "%s",
		 root != NULL ? root : CGROUP_ROOT);
	cg_v2 = root != NULL ? v2 : -1;
}

/* No "." or ".." component: the path stays below the root. */
static bool path_clean(const char *p)
{
	while (*p != '\0') {
		size_t len;

		p += strspn(p, "/");
		len = strcspn(p, "/");
		if ((len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += len;
	}
	return true;
}

/* cgroupsPath as a path below a hierarchy's root, into out. */
static int rel_path(const char *cg, bool systemd, char *out, size_t len,
		    struct kiln_error *err)
{
	if (systemd) {
		char slice[256], prefix[256], name[256];

		if (sscanf(cg, "%255[^:]:%255[^:]:%255s", slice, prefix,
			   name) != 3)
			return kiln_error_set(err, 0,
					      "linux.cgroupsPath `%s`: want "
					      "slice:prefix:name with "
					      "--systemd-cgroup",
					      cg);
		snprintf(out, len, "/%s/%s-%s.scope", slice, prefix, name);
	} else {
		snprintf(out, len, "%s%s", cg[0] == '/' ? "" : "/kiln/", cg);
	}
	if (!path_clean(out))
		return kiln_error_set(err, 0,
				      "linux.cgroupsPath `%s`: no . or ..", cg);
	return 0;
}

int cgroup_rel(const struct oci_spec *spec, bool systemd, const char *id,
	       char *out, size_t len, struct kiln_error *err)
{
	if (spec->linux_ == NULL || spec->linux_->cgroups_path == NULL ||
	    spec->linux_->cgroups_path[0] == '\0') {
		snprintf(out, len, "/kiln/%s", id);
		if (!path_clean(out))
			return kiln_error_set(err, 0, "container id `%s`", id);
		return 0;
	}
	return rel_path(spec->linux_->cgroups_path, systemd, out, len, err);
}

static int mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* The first line of path into buf ("" on error); -1 with errno. */
static int read_line(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* One write(2) of value: a cgroup file takes or refuses it whole (O_TRUNC
 * as runc: a cgroup file ignores it, a plain one in the tests needs it). */
static int write_str(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	size_t len = strlen(value);
	ssize_t n;
	int e;

	if (fd < 0)
		return -1;
	n = write(fd, value, len);
	e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)len ? 0 : -1;
}

/*
 * v1's cpuset hierarchy: a new cgroup has no CPUs and no memory nodes, and
 * a task cannot join it (ENOSPC) until it has: each level made gets its
 * parent's, as runc does.
 */
static void cpuset_fill(const char *hier, const char *rel)
{
	char path[4096], parent[4096];
	size_t at = strlen(hier);

	snprintf(path, sizeof(path), "%s%s", hier, rel);
	for (size_t i = at + 1; i <= strlen(path); i++) {
		static const char *const files[] = { "cpuset.cpus", "cpuset."
								    "mems" };

		if (path[i] != '/' && path[i] != '\0')
			continue;
		for (size_t f = 0; f < 2; f++) {
			char p[4200], v[4096];

			snprintf(p, sizeof(p), "%.*s/%s", (int)i, path,
				 files[f]);
			if (read_line(p, v, sizeof(v)) < 0 || v[0] != '\0')
				continue;
			/* the parent's: cut the last component */
			snprintf(parent, sizeof(parent), "%.*s", (int)i, path);
			*strrchr(parent, '/') = '\0';
			snprintf(p, sizeof(p), "%s/%s", parent, files[f]);
			if (read_line(p, v, sizeof(v)) < 0 || v[0] == '\0')
				continue;
			snprintf(p, sizeof(p), "%.*s/%s", (int)i, path,
				 files[f]);
			write_str(p, v);
		}
	}
}

static int join_one(const char *hier, const char *rel, struct kiln_error *err)
{
	char path[4096], procs[4200], pid[16];

	snprintf(path, sizeof(path), "%s%s", hier, rel);
	if (mkdir_p(path) < 0)
		return kiln_error_set(err, errno, "cgroup `%s`", path);
	cpuset_fill(hier, rel);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (write_str(procs, pid) < 0)
		return kiln_error_set(err, errno, "join cgroup `%s`", path);
	return 0;
}

static bool is_v2(void)
{
	struct statfs fs;

	if (cg_v2 >= 0)
		return cg_v2 != 0;
	return statfs(cg_root, &fs) == 0 &&
	       fs.f_type == (typeof(fs.f_type))CGROUP2_SUPER_MAGIC;
}

enum cg_op {
	CG_MKDIR,
	CG_JOIN,
	CG_RMDIR,
	CG_KILL
};

static void kill_procs(const char *path)
{
	char procs[4200];
	FILE *f;
	int pid;

	snprintf(procs, sizeof(procs), "%s/cgroup.kill", path);
	if (is_v2() && write_str(procs, "1") == 0)
		return;
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	f = fopen(procs, "re");
	if (f == NULL)
		return;
	while (fscanf(f, "%d", &pid) == 1)
		if (pid > 0 && pid != getpid())
			kill(pid, SIGKILL);
	fclose(f);
}

/* op on cgroup rel of one hierarchy. */
static int op_one(const char *hier, const char *rel, enum cg_op op,
		  struct kiln_error *err)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s%s", hier, rel);
	switch (op) {
	case CG_MKDIR:
		if (mkdir_p(path) < 0)
			return kiln_error_set(err, errno, "cgroup `%s`", path);
		cpuset_fill(hier, rel);
		return 0;
	case CG_JOIN:
		return join_one(hier, rel, err);
	case CG_KILL:
		kill_procs(path);
		return 0;
	case CG_RMDIR:
		/*
		 * Its tasks may take a moment to exit after SIGKILL, and a
		 * VMM whose uid lock is free (vm_jail_wait_free) has closed
		 * its files but may not have left its cgroup yet: usually
		 * a millisecond or two, so look again each millisecond (2 s
		 * in all)
		 */
		for (int i = 0; i < 2000; i++) {
			if (rmdir(path) == 0 || errno == ENOENT)
				return 0;
			if (errno != EBUSY)
				break;
			usleep(1000);
		}
		log_warn("remove cgroup %s: %m", path);
		return 0;
	}
	return 0;
}

/* op on cgroup rel of each hierarchy to use: the v2 root, or each v1 one. */
static int each_hierarchy(const char *rel, enum cg_op op,
			  struct kiln_error *err)
{
	DIR *d;
	struct dirent *e;
	int res = 0;

	if (is_v2())
		return op_one(cg_root, rel, op, err);
	d = opendir(cg_root);
	if (d == NULL)
		return 0; /* no cgroups mounted: nothing to join */
	while ((e = readdir(d)) != NULL && res == 0) {
		char hier[1024];
		struct stat st;

		if (e->d_name[0] == '.' || strcmp(e->d_name, "unified") == 0)
			continue;
		snprintf(hier, sizeof(hier), "%s/%s", cg_root, e->d_name);
		/* a controller's mount, not a symlink to one (cpu,cpuacct) */
		if (lstat(hier, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		res = op_one(hier, rel, op, err);
	}
	closedir(d);
	return res;
}

int cgroup_join_path(const char *rel, struct kiln_error *err)
{
	return each_hierarchy(rel, CG_JOIN, err);
}

static bool has_word(const char *list, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = list; (p = strstr(p, word)) != NULL; p += len)
		if ((p == list || p[-1] == ' ') &&
		    (p[len] == ' ' || p[len] == '\0'))
			return true;
	return false;
}

/*
 * cgroup v2: a controller's files exist in a cgroup only when its parent
 * hands the controller down (cgroup.subtree_control), at every level from
 * the root (runc's fs2 does the same). cpu, memory and pids always, where
 * the kernel has them, so that a later `kiln update` finds its files and
 * the engines their statistics; one that w needs and is missing is an
 * error.
 */
static int enable_ctrls(const char *rel, const struct cgroup_write *w, size_t n,
			struct kiln_error *err)
{
	char dir[4096];
	size_t root_len = strlen(cg_root);

	snprintf(dir, sizeof(dir), "%s%s", cg_root, rel);
	for (size_t i = root_len; dir[i] != '\0'; i++) {
		char have[512], on[512], path[4200];

		if (i != root_len && dir[i] != '/')
			continue;
		if (i + 1 >= strlen(dir))
			break;
		snprintf(path, sizeof(path), "%.*s/cgroup.controllers", (int)i,
			 dir);
		if (read_line(path, have, sizeof(have)) < 0)
			continue; /* not a cgroup file system (the tests') */
		snprintf(path, sizeof(path), "%.*s/cgroup.subtree_control",
			 (int)i, dir);
		read_line(path, on, sizeof(on));
		for (size_t c = 0; c < 3; c++) {
			static const char *const ctrls[] = { "cpu", "memory",
							     "pids" };
			const char *needed = NULL;
			char plus[32];

			for (size_t k = 0; k < n && needed == NULL; k++)
				if (strcmp(w[k].ctrl, ctrls[c]) == 0)
					needed = w[k].file;
			if (has_word(on, ctrls[c]))
				continue;
			if (!has_word(have, ctrls[c])) {
				if (needed == NULL)
					continue;
				return kiln_error_set(err, 0,
						      "cgroup `%.*s` has no %s "
						      "controller (for %s)",
						      (int)i, dir, ctrls[c],
						      needed);
			}
			snprintf(plus, sizeof(plus), "+%s", ctrls[c]);
			if (write_str(path, plus) < 0)
				return kiln_error_set(err, errno,
						      "write `%s` to `%s`",
						      plus, path);
		}
	}
	return 0;
}

static void file_path(const char *rel, const struct cgroup_write *w, char *out,
		      size_t len)
{
	if (is_v2())
		snprintf(out, len, "%s%s/%s", cg_root, rel, w->file);
	else
		snprintf(out, len, "%s/%s%s/%s", cg_root, w->ctrl, rel,
			 w->file);
}

static void undo(const char *rel, const struct cgroup_write *w, size_t n)
{
	while (n-- > 0) {
		char path[4400];

		if (w[n].old[0] == '\0')
			continue;
		file_path(rel, &w[n], path, sizeof(path));
		if (write_str(path, w[n].old) < 0)
			log_warn("put back `%s` in %s: %m", w[n].old, path);
	}
}

/* Every write of w, or none: what was done is put back on a refusal. */
static int apply(const char *rel, struct cgroup_write *w, size_t n,
		 struct kiln_error *err)
{
	for (size_t i = 0; i < n; i++) {
		char path[4400];

		file_path(rel, &w[i], path, sizeof(path));
		read_line(path, w[i].old, sizeof(w[i].old));
		if (write_str(path, w[i].value) < 0) {
			int e = errno;

			w[i].old[0] = '\0';
			undo(rel, w, i);
			return kiln_error_set(err, e,
					      "host cgroup: write `%s` to `%s`",
					      w[i].value, path);
		}
	}
	return 0;
}

static int record_write(int dirfd, const char *rel, struct kiln_error *err)
{
	int fd = openat(dirfd, CGROUP_RECORD,
			O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int res = 0;

	if (fd < 0 || dprintf(fd, "%s\n", rel) < 0)
		res = kiln_error_set(err, errno, "write the state's cgroup");
	if (fd >= 0)
		close(fd);
	return res;
}

/* The recorded path into rel; -1 when there is none. */
static int record_read(int dirfd, char *rel, size_t len)
{
	int fd = openat(dirfd, CGROUP_RECORD, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, rel, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	rel[n] = '\0';
	rel[strcspn(rel, "\n")] = '\0';
	/* the state dir is ours (0700), but a path leaves the root never */
	return rel[0] == '/' && path_clean(rel) ? 0 : -1;
}

static int open_cgroup(const char *rel)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s%s", cg_root, rel);
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static bool cgroup_exists(const char *rel)
{
	char path[4096];

	if (is_v2())
		snprintf(path, sizeof(path), "%s%s", cg_root, rel);
	else
		snprintf(path, sizeof(path), "%s/pids%s", cg_root, rel);
	return access(path, F_OK) == 0;
}

static int make(int dirfd, const char *rel, const struct cgroup_limits *l,
		bool join, struct kiln_error *err)
{
	struct cgroup_write w[CGROUP_WRITES_MAX];
	size_t n = cgroup_plan(l, is_v2(), w);
	bool existed = cgroup_exists(rel);
	struct kiln_error ignored = { 0 };

	if (record_write(dirfd, rel, err) < 0)
		return -1;
	if (each_hierarchy(rel, CG_MKDIR, err) < 0 ||
	    (is_v2() && enable_ctrls(rel, w, n, err) < 0) ||
	    apply(rel, w, n, err) < 0)
		goto fail;
	if (join && each_hierarchy(rel, CG_JOIN, err) < 0) {
		undo(rel, w, n);
		goto fail;
	}
	return 0;
fail:
	if (!existed)
		each_hierarchy(rel, CG_RMDIR, &ignored);
	return -1;
}

int cgroup_enter(int dirfd, const char *rel, const struct cgroup_limits *l,
		 struct kiln_error *err)
{
	return make(dirfd, rel, l, true, err);
}

int cgroup_make(int dirfd, const char *rel, const struct cgroup_limits *l,
		struct kiln_error *err)
{
	int fd;

	if (!is_v2())
		return -1;
	if (make(dirfd, rel, l, false, err) < 0)
		return -2;
	fd = open_cgroup(rel);
	if (fd < 0) {
		struct kiln_error ignored = { 0 };

		kiln_error_set(err, errno, "open cgroup `%s%s`", cg_root, rel);
		each_hierarchy(rel, CG_RMDIR, &ignored);
		return -2;
	}
	return fd;
}

int cgroup_limit(int dirfd, const struct cgroup_limits *l,
		 struct cgroup_write *w, size_t *n, struct kiln_error *err)
{
	char rel[1024];

	*n = 0;
	if (record_read(dirfd, rel, sizeof(rel)) < 0)
		return 0; /* made before kiln kept one: nothing to limit */
	*n = cgroup_plan(l, is_v2(), w);
	if ((is_v2() && enable_ctrls(rel, w, *n, err) < 0) ||
	    apply(rel, w, *n, err) < 0) {
		*n = 0;
		return -1;
	}
	return 0;
}

void cgroup_undo(int dirfd, const struct cgroup_write *w, size_t n)
{
	char rel[1024];

	if (n > 0 && record_read(dirfd, rel, sizeof(rel)) == 0)
		undo(rel, w, n);
}

void cgroup_remove(int dirfd, const struct oci_spec *spec, bool systemd)
{
	struct kiln_error err = { 0 };
	char rel[1024];

	if (record_read(dirfd, rel, sizeof(rel)) < 0) {
		if (spec == NULL || spec->linux_ == NULL ||
		    spec->linux_->cgroups_path == NULL ||
		    spec->linux_->cgroups_path[0] == '\0' ||
		    rel_path(spec->linux_->cgroups_path, systemd, rel,
			     sizeof(rel), &err) < 0)
			return;
	}
	/* after a kill -9 of the pid process: kiln-vmm, virtiofsd */
	each_hierarchy(rel, CG_KILL, &err);
	each_hierarchy(rel, CG_RMDIR, &err);
}
