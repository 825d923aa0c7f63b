/* SPDX-License-Identifier: Apache-2.0 */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"

int oci_id_check(const char *id, struct kiln_error *err)
{
	size_t len = strlen(id);

	if (len == 0)
		return kiln_error_set(err, EINVAL, "container id: empty");
	if (len > OCI_ID_MAX)
		return kiln_error_set(err, EINVAL,
				      "container id: longer than %d bytes",
				      OCI_ID_MAX);
	if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return kiln_error_set(err, EINVAL, "container id `%s`: invalid",
				      id);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("_.+-", c) != NULL)
			continue;
		/* the id comes from anyone: never echo a control byte */
		if (c < 0x20 || c >= 0x7f)
			return kiln_error_set(err, EINVAL,
					      "container id: invalid byte "
					      "0x%02x "
					      "at %zu (allowed: letters, "
					      "digits, "
					      "_ . + -)",
					      c, i);
		return kiln_error_set(err, EINVAL,
				      "container id: invalid character '%c' at "
				      "%zu (allowed: letters, digits, _ . + -)",
				      c, i);
	}
	return 0;
}

int oci_write_atomic(int dirfd, const char *name, const void *buf, size_t len,
		     unsigned int mode, struct kiln_error *err)
{
	char tmp[NAME_MAX + 1];
	cleanup_close int fd = -1;
	const char *p = buf;

	if (snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= (int)sizeof(tmp))
		return kiln_error_set(err, ENAMETOOLONG, "`%s`", name);
	/* a leftover of a writer that was killed is simply replaced */
	fd = openat(dirfd, tmp,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    mode);
	if (fd < 0)
		return kiln_error_set(err, errno, "create `%s`", tmp);
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kiln_error_set(err, errno, "write `%s`", tmp);
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		kiln_error_set(err, errno, "fsync `%s`", tmp);
		goto fail;
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		kiln_error_set(err, errno, "rename `%s` to `%s`", tmp, name);
		goto fail;
	}
	/* the rename itself must survive a crash of the machine */
	fsync(dirfd);
	return 0;
fail:
	unlinkat(dirfd, tmp, 0);
	return -1;
}

static int mkdir_parents(const char *path, struct kiln_error *err)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return kiln_error_set(err, ENAMETOOLONG, "`%s`", path);
	for (char *s = buf + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return kiln_error_set(err, errno, "mkdir `%s`", buf);
		*s = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return kiln_error_set(err, errno, "mkdir `%s`", buf);
	return 0;
}

int oci_state_dir_create(const char *root, const char *id,
			 struct kiln_error *err)
{
	cleanup_close int rootfd = -1;
	int fd;

	if (oci_id_check(id, err) < 0 || mkdir_parents(root, err) < 0)
		return -1;
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return kiln_error_set(err, errno, "open `%s`", root);
	if (mkdirat(rootfd, id, 0700) < 0) {
		if (errno == EEXIST)
			return kiln_error_set(err, EEXIST,
					      "container `%s` already exists",
					      id);
		return kiln_error_set(err, errno, "mkdir `%s/%s`", root, id);
	}
	fd = openat(rootfd, id,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return kiln_error_set(err, errno, "open `%s/%s`", root, id);
	return fd;
}

int oci_state_dir_open(const char *root, const char *id, struct kiln_error *err)
{
	char path[PATH_MAX];
	int fd;

	if (oci_id_check(id, err) < 0)
		return -1;
	if (snprintf(path, sizeof(path), "%s/%s", root, id) >=
	    (int)sizeof(path))
		return kiln_error_set(err, ENAMETOOLONG, "`%s`", root);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return kiln_error_set(err, ENOENT,
				      "container `%s` does not exist", id);
	if (fd < 0)
		return kiln_error_set(err, errno, "open `%s`", path);
	return fd;
}

int oci_state_dir_remove(const char *root, const char *id,
			 struct kiln_error *err)
{
	cleanup_close int rootfd = -1;
	int fd = oci_state_dir_open(root, id, err);
	struct dirent *d;
	DIR *dir;

	if (fd < 0)
		return -1;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return kiln_error_set(err, errno, "read `%s/%s`", root, id);
	}
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(dir), d->d_name, 0) < 0 && errno != ENOENT) {
			kiln_error_set(err, errno, "remove `%s/%s/%s`", root,
				       id, d->d_name);
			closedir(dir);
			return -1;
		}
	}
	closedir(dir);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return kiln_error_set(err, errno, "open `%s`", root);
	if (unlinkat(rootfd, id, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return kiln_error_set(err, errno, "remove `%s/%s`", root, id);
	return 0;
}
