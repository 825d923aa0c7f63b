/* SPDX-License-Identifier: Apache-2.0 */
/*
 * linux.cgroupsPath on the host: the pid process joins it before it
 * starts kiln-vmm, so the VM (its guest RAM, its vCPU threads) is charged
 * there and the engines' own stats (docker stats, ctr task metrics, which
 * read the cgroup of the pid they were given) see the container's usage.
 * The limits themselves are enforced in the guest, on the container's
 * cgroup there, and by the VM's size.
 *
 * cgroupfs paths ("/docker/ID", or relative to our own cgroup) and, with
 * --systemd-cgroup, "slice:prefix:name" as runc maps it
 * (/system.slice/prefix-name.scope). cgroup v2, or each v1 hierarchy of a
 * v1/hybrid host.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
	if (strstr(out, "/../") != NULL || strstr(out, "/./") != NULL)
		return kiln_error_set(err, 0,
				      "linux.cgroupsPath `%s`: no . or ..", cg);
	return 0;
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

static int join_one(const char *hier, const char *rel, struct kiln_error *err)
{
	char path[4096], procs[4200], pid[16];
	int fd, n;

	snprintf(path, sizeof(path), "%s%s", hier, rel);
	if (mkdir_p(path) < 0)
		return kiln_error_set(err, errno, "cgroup `%s`", path);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	n = snprintf(pid, sizeof(pid), "%d", getpid());
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, pid, (size_t)n) != n) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return kiln_error_set(err, e, "join cgroup `%s`", path);
	}
	close(fd);
	return 0;
}

static bool is_v2(void)
{
	struct statfs fs;

	return statfs(CGROUP_ROOT, &fs) == 0 &&
	       fs.f_type == (typeof(fs.f_type))CGROUP2_SUPER_MAGIC;
}

/* Calls fn for each hierarchy to use: the v2 root, or each v1 one. */
static int each_hierarchy(const char *rel, bool join, struct kiln_error *err)
{
	DIR *d;
	struct dirent *e;
	int res = 0;

	if (is_v2())
		return join ? join_one(CGROUP_ROOT, rel, err) : 0;
	d = opendir(CGROUP_ROOT);
	if (d == NULL)
		return 0; /* no cgroups mounted: nothing to join */
	while ((e = readdir(d)) != NULL && res == 0) {
		char hier[512];
		struct stat st;

		if (e->d_name[0] == '.' || strcmp(e->d_name, "unified") == 0)
			continue;
		snprintf(hier, sizeof(hier), CGROUP_ROOT "/%s", e->d_name);
		/* a controller's mount, not a symlink to one (cpu,cpuacct) */
		if (lstat(hier, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (join)
			res = join_one(hier, rel, err);
		else {
			char path[4096];

			snprintf(path, sizeof(path), "%s%s", hier, rel);
			rmdir(path);
		}
	}
	closedir(d);
	return res;
}

int cgroup_join(const struct oci_spec *spec, bool systemd,
		struct kiln_error *err)
{
	char rel[1024];

	if (spec->linux_ == NULL || spec->linux_->cgroups_path == NULL ||
	    spec->linux_->cgroups_path[0] == '\0')
		return 0;
	if (rel_path(spec->linux_->cgroups_path, systemd, rel, sizeof(rel),
		     err) < 0)
		return -1;
	return each_hierarchy(rel, true, err);
}

int cgroup_join_path(const char *rel, struct kiln_error *err)
{
	return each_hierarchy(rel, true, err);
}

void cgroup_remove(const struct oci_spec *spec, bool systemd)
{
	struct kiln_error err = { 0 };
	char rel[1024], path[1200];

	if (spec->linux_ == NULL || spec->linux_->cgroups_path == NULL ||
	    spec->linux_->cgroups_path[0] == '\0' ||
	    rel_path(spec->linux_->cgroups_path, systemd, rel, sizeof(rel),
		     &err) < 0)
		return;
	if (is_v2()) {
		snprintf(path, sizeof(path), CGROUP_ROOT "%s", rel);
		if (rmdir(path) < 0 && errno != ENOENT)
			log_warn("remove cgroup %s: %m", path);
		return;
	}
	each_hierarchy(rel, false, &err);
}
