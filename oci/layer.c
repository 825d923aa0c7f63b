/* SPDX-License-Identifier: Apache-2.0 */
#include "layer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cleanup.h"

const char *layer_mkfs_erofs = "mkfs.erofs";

/* What one entry contributes to a fingerprint: fixed-size, no padding. */
struct layer_entry_sum {
	uint64_t ino, size, rdev;
	int64_t mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
	uint32_t mode, uid, gid, pathlen;
};

/* nftw has no argument for its callback: one walk at a time per thread */
static __thread struct sha256_ctx *walk_md;
static __thread size_t walk_root_len;

static int walk_entry(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	const char *rel = path + walk_root_len;
	struct layer_entry_sum e = {
		.ino = st->st_ino,
		.size = (uint64_t)st->st_size,
		.rdev = st->st_rdev,
		.mtime_sec = st->st_mtim.tv_sec,
		.mtime_nsec = st->st_mtim.tv_nsec,
		/* ctime: no one can set it, so every change moves it */
		.ctime_sec = st->st_ctim.tv_sec,
		.ctime_nsec = st->st_ctim.tv_nsec,
		.mode = st->st_mode,
		.uid = st->st_uid,
		.gid = st->st_gid,
		.pathlen = (uint32_t)strlen(rel),
	};

	(void)ftw;
	if (type == FTW_NS || type == FTW_DNR)
		return -1; /* unreadable: no fingerprint can stand for it */
	sha256_update(walk_md, sizeof(e), (const uint8_t *)&e);
	sha256_update(walk_md, e.pathlen, (const uint8_t *)rel);
	return 0;
}

static void hex(const unsigned char *d, unsigned int n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned int i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/*
 * SHA-256 from nettle, not OpenSSL: libcrypto loads its config and
 * providers on the first digest, about 50 ms of every container start in
 * the test bed for this one hash (8 ms natively).
 */
int layer_key(const char *dir, enum layer_kind kind,
	      char key[LAYER_KEY_LEN + 1], struct kiln_error *err)
{
	char real[PATH_MAX];
	uint8_t digest[SHA256_DIGEST_SIZE];
	struct sha256_ctx md;
	struct stat st;
	int ret = -1;

	if (realpath(dir, real) == NULL)
		return kiln_error_set(err, errno, "layer `%s`", dir);
	if (stat(real, &st) < 0)
		return kiln_error_set(err, errno, "layer `%s`", dir);
	if (!S_ISDIR(st.st_mode))
		return kiln_error_set(err, ENOTDIR,
				      "layer `%s` is not a directory", dir);
	sha256_init(&md);
	if (kind == LAYER_IMMUTABLE) {
		struct layer_entry_sum id = {
			.ino = st.st_ino,
			.rdev = st.st_dev,
			.ctime_sec = st.st_ctim.tv_sec,
			.ctime_nsec = st.st_ctim.tv_nsec,
			.pathlen = (uint32_t)strlen(real),
		};

		sha256_update(&md, 10, (const uint8_t *)"immutable");
		sha256_update(&md, sizeof(id), (const uint8_t *)&id);
		sha256_update(&md, id.pathlen, (const uint8_t *)real);
	} else {
		sha256_update(&md, 5, (const uint8_t *)"tree");
		walk_md = &md;
		walk_root_len = strlen(real);
		/* FTW_PHYS: a symlink is an entry, never followed */
		if (nftw(real, walk_entry, 32, FTW_PHYS | FTW_MOUNT) != 0) {
			kiln_error_set(err, errno,
				       "layer `%s`: fingerprint of the tree",
				       dir);
			goto out;
		}
	}
	sha256_digest(&md, SHA256_DIGEST_SIZE, digest);
	hex(digest, SHA256_DIGEST_SIZE, key);
	ret = 0;
out:
	walk_md = NULL;
	return ret;
}

/* Run mkfs.erofs IMAGE DIR; its last output line goes into err. */
static int run_mkfs(const char *image, const char *dir, struct kiln_error *err)
{
	char out[512] = "";
	int pipefd[2], status;
	ssize_t n, total = 0;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return kiln_error_set(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return kiln_error_set(err, errno, "fork");
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		/* keep every owner, mode, xattr and time the layer has */
		execlp(layer_mkfs_erofs, layer_mkfs_erofs, "--quiet",
		       "--preserve-mtime", image, dir, (char *)NULL);
		dprintf(2, "cannot run %s: %s\n", layer_mkfs_erofs,
			strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	/* keep the tail: the last line says what went wrong */
	while ((n = read(pipefd[0], out + total,
			 sizeof(out) - 1 - (size_t)total)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		total += n;
		if ((size_t)total == sizeof(out) - 1) {
			memmove(out, out + total / 2,
				(size_t)(total - total / 2));
			total -= total / 2;
		}
	}
	out[total] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return kiln_error_set(err, errno,
					      "wait for mkfs.erofs");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	while (total > 0 && out[total - 1] == '\n')
		out[--total] = '\0';
	{
		char *last = strrchr(out, '\n');

		return kiln_error_set(
			err, 0, "%s `%s`: %s", layer_mkfs_erofs, dir,
			last ? last + 1 : (out[0] ? out : "failed"));
	}
}

static int mkdir_p(const char *path, struct kiln_error *err)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return kiln_error_set(err, ENAMETOOLONG, "`%s`", path);
	for (char *s = buf + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return kiln_error_set(err, errno, "mkdir `%s`", buf);
		if (c == '\0')
			return 0;
		*s = c;
	}
}

/*
 * The cache's collection. Each image has a record beside it, KEY.src:
 * its kind and the real path of the directory it was built from. Every
 * build (the only time the cache grows) first drops, under the lock,
 * the images no create can ask for again:
 *  - the directory is gone (an engine removed the layer or the
 *    container: docker's per-container -init layer, a removed image);
 *  - an image layer's directory is another one now (its identity key
 *    differs);
 *  - an older fingerprint of the directory being built anew (a tree
 *    that changed: only its newest image can be asked for).
 * A running VM keeps the image it opened; unlinking takes nothing from
 * it. So the cache holds at most one image per live directory, plus
 * the one being built.
 */
static void drop_image(const char *cache_dir, const char *key)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s.erofs", cache_dir, key);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s.src", cache_dir, key);
	unlink(path);
}

/* A record's kind and path; false if it is not one of ours. */
static bool read_record(const char *path, enum layer_kind *kind,
			char src[PATH_MAX])
{
	char buf[PATH_MAX + 16];
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	char *nl;

	if (n <= 0)
		return false;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl == NULL || nl[1] != '/' || strchr(nl + 1, '\n') == NULL)
		return false;
	*strchr(nl + 1, '\n') = '\0';
	*nl = '\0';
	if (strcmp(buf, "immutable") == 0)
		*kind = LAYER_IMMUTABLE;
	else if (strcmp(buf, "mutable") == 0)
		*kind = LAYER_MUTABLE;
	else
		return false;
	snprintf(src, PATH_MAX, "%s", nl + 1);
	return true;
}

static bool stale(const char *key, enum layer_kind kind, const char *src,
		  const char *building)
{
	char now[LAYER_KEY_LEN + 1];
	struct kiln_error ignored = { 0 };
	struct stat st;

	if (lstat(src, &st) < 0 || !S_ISDIR(st.st_mode))
		return errno != EACCES; /* gone, or no directory now */
	if (kind == LAYER_MUTABLE)
		return strcmp(src, building) == 0;
	return layer_key(src, LAYER_IMMUTABLE, now, &ignored) < 0 ||
	       strcmp(now, key) != 0;
}

/* Under the cache's lock, before building key from the directory real. */
static void collect(const char *cache_dir, const char *key, const char *real)
{
	DIR *d = opendir(cache_dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX], src[PATH_MAX], other[LAYER_KEY_LEN + 1];
		size_t len = strlen(e->d_name);
		enum layer_kind kind;

		if (len != LAYER_KEY_LEN + 4 ||
		    strcmp(e->d_name + LAYER_KEY_LEN, ".src") != 0)
			continue;
		memcpy(other, e->d_name, LAYER_KEY_LEN);
		other[LAYER_KEY_LEN] = '\0';
		if (strcmp(other, key) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", cache_dir, e->d_name);
		if (read_record(path, &kind, src) &&
		    stale(other, kind, src, real))
			drop_image(cache_dir, other);
	}
	closedir(d);
}

static int write_record(const char *cache_dir, const char *key,
			enum layer_kind kind, const char *real,
			struct kiln_error *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	cleanup_close int fd = -1;

	snprintf(path, sizeof(path), "%s/%s.src", cache_dir, key);
	snprintf(tmp, sizeof(tmp), "%s/.%s.%d.src.tmp", cache_dir, key,
		 (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 ||
	    dprintf(fd, "%s\n%s\n",
		    kind == LAYER_IMMUTABLE ? "immutable" : "mutable",
		    real) < 0 ||
	    rename(tmp, path) < 0) {
		kiln_error_set(err, errno, "store `%s`", path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

char *layer_image(const char *cache_dir, const char *dir, enum layer_kind kind,
		  bool *built, struct kiln_error *err)
{
	char real[PATH_MAX];
	char key[LAYER_KEY_LEN + 1], lock[PATH_MAX], tmp[PATH_MAX];
	cleanup_free char *image = NULL;
	cleanup_close int lockfd = -1;

	*built = false;
	if (layer_key(dir, kind, key, err) < 0 || mkdir_p(cache_dir, err) < 0)
		return NULL;
	if (asprintf(&image, "%s/%s.erofs", cache_dir, key) < 0) {
		image = NULL;
		kiln_error_set(err, ENOMEM, "layer path");
		return NULL;
	}
	if (access(image, F_OK) == 0)
		return steal_ptr(&image);
	/*
	 * One lock for the whole cache, never removed: builds of different
	 * layers wait for each other, but a lock file per key could only be
	 * removed by racing a waiter that holds it.
	 */
	snprintf(lock, sizeof(lock), "%s/.lock", cache_dir);
	lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0) {
		kiln_error_set(err, errno, "open `%s`", lock);
		return NULL;
	}
	while (flock(lockfd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			kiln_error_set(err, errno, "lock `%s`", lock);
			return NULL;
		}
	}
	/* whoever held the lock before us may have built it */
	if (access(image, F_OK) == 0)
		return steal_ptr(&image);
	if (realpath(dir, real) == NULL) {
		kiln_error_set(err, errno, "layer `%s`", dir);
		return NULL;
	}
	collect(cache_dir, key, real);
	/* a build that was killed left its temporary file: ours now */
	snprintf(tmp, sizeof(tmp), "%s/.%s.*.tmp", cache_dir, key);
	{
		glob_t g;

		if (glob(tmp, GLOB_NOSORT, NULL, &g) == 0)
			for (size_t i = 0; i < g.gl_pathc; i++)
				unlink(g.gl_pathv[i]);
		globfree(&g);
	}
	snprintf(tmp, sizeof(tmp), "%s/.%s.%d.tmp", cache_dir, key,
		 (int)getpid());
	if (run_mkfs(tmp, dir, err) < 0) {
		unlink(tmp);
		return NULL;
	}
	{
		cleanup_close int fd = open(tmp, O_RDONLY | O_CLOEXEC);

		/* the record first: an image never lacks one */
		if (write_record(cache_dir, key, kind, real, err) < 0) {
			unlink(tmp);
			return NULL;
		}
		if (fd < 0 || fsync(fd) < 0 || rename(tmp, image) < 0) {
			kiln_error_set(err, errno, "store `%s`", image);
			unlink(tmp);
			return NULL;
		}
	}
	*built = true;
	return steal_ptr(&image);
}
