/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mount_resolve: the lookup the init child makes for every mount
 * destination before pivot_root. It needs no privilege, so it runs here
 * on a temporary tree full of hostile symlinks; nothing is mounted. Each
 * answer must be inside the tree or a clean failure, and nothing may be
 * created outside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../agent/mount.h"
#include "../../lib/cleanup.h"
#include "tap.h"

static char root[PATH_MAX]; /* realpath of the tree */
static char tag[64];	    /* a name unique to this run */
static int rootfd = -1;

static void mk(const char *rel, const char *link_to)
{
	char p[PATH_MAX * 2];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	if (link_to != NULL ? symlink(link_to, p) : mkdir(p, 0755))
		printf("# setup %s: %s\n", p, strerror(errno));
}

static void mkfile(const char *rel)
{
	char p[PATH_MAX * 2];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		printf("# setup %s: %s\n", p, strerror(errno));
	else
		close(fd);
}

/* where fd points, from the kernel's own record */
static bool fd_inside(int fd)
{
	char link[64], got[PATH_MAX];
	size_t rl = strlen(root);
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, got, sizeof(got) - 1);
	if (n < 0)
		return false;
	got[n] = '\0';
	if (strncmp(got, root, rl) != 0 ||
	    (got[rl] != '\0' && got[rl] != '/')) {
		printf("#   resolved to %s, outside %s\n", got, root);
		return false;
	}
	return true;
}

/* fd is the tree's rel (same inode) */
static bool fd_is(int fd, const char *rel)
{
	char p[PATH_MAX * 2];
	struct stat a, b;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	if (fstat(fd, &a) < 0 || lstat(p, &b) < 0)
		return false;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static bool exists_in(const char *rel, mode_t type)
{
	char p[PATH_MAX * 2];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	return lstat(p, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

/* a path outside the tree must still not exist; removed if it does so
 * that a regression leaves no litter on the host */
static bool absent(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT;
	printf("#   %s was created outside the root\n", path);
	if (S_ISDIR(st.st_mode))
		rmdir(path);
	else
		unlink(path);
	return false;
}

static void resolves_inside(const char *path, enum mount_create c,
			    const char *want_rel)
{
	cleanup_close int fd = mount_resolve(rootfd, path, c);

	if (!ok(fd >= 0, "%.60s resolves (mode %d)", path, (int)c)) {
		printf("#   %s\n", strerror(errno));
		return;
	}
	ok(fd_inside(fd), "%.60s stays inside the root", path);
	if (want_rel != NULL)
		ok(fd_is(fd, want_rel), "%.60s is the root's %s", path,
		   want_rel);
}

static void fails_cleanly(const char *path, enum mount_create c)
{
	cleanup_close int fd = mount_resolve(rootfd, path, c);
	int e = errno;

	ok(fd < 0 && e != 0, "%.60s fails (mode %d): %s", path, (int)c,
	   fd < 0 ? strerror(e) : "resolved");
	if (fd >= 0)
		ok(fd_inside(fd), "... but at least inside the root");
}

static void test_links_out(void)
{
	char out[PATH_MAX], rel[PATH_MAX];

	/* /data -> /etc: the tree's etc, never the host's */
	resolves_inside("/data", MOUNT_OPEN, "etc");
	resolves_inside("/data", MOUNT_MKDIR, "etc");
	snprintf(rel, sizeof(rel), "/data/%s/sub", tag);
	resolves_inside(rel, MOUNT_MKDIR, NULL);
	snprintf(rel, sizeof(rel), "etc/%s/sub", tag);
	ok(exists_in(rel, S_IFDIR), "missing components made in the root");
	snprintf(out, sizeof(out), "/etc/%s", tag);
	ok(absent(out), "nothing made in the host's /etc");
	snprintf(rel, sizeof(rel), "/data/%s-file", tag);
	resolves_inside(rel, MOUNT_MKFILE, NULL);
	snprintf(rel, sizeof(rel), "etc/%s-file", tag);
	ok(exists_in(rel, S_IFREG), "a file's bind target made in the root");
	snprintf(out, sizeof(out), "/etc/%s-file", tag);
	ok(absent(out), "no file made in the host's /etc");

	/* .. past the top stays at the top, as after chroot */
	resolves_inside("/a", MOUNT_OPEN, ".");
	resolves_inside("/a/etc", MOUNT_OPEN, "etc");
	snprintf(rel, sizeof(rel), "/a/%s", tag);
	resolves_inside(rel, MOUNT_MKDIR, tag);
	snprintf(out, sizeof(out), "/%s", tag);
	ok(absent(out), "nothing made in the host's /");
	resolves_inside("/dir/up/etc", MOUNT_OPEN, "etc");

	/* nested: n1 -> n2 -> /dir/../n3 -> a -> ../../.. */
	resolves_inside("/n1", MOUNT_OPEN, ".");
	resolves_inside("/n1/data/", MOUNT_OPEN, "etc");
	resolves_inside("//n1///dir//", MOUNT_OPEN, "dir");
	snprintf(rel, sizeof(rel), "/n1/n2/n3/data/%s-nested/x", tag);
	resolves_inside(rel, MOUNT_MKDIR, NULL);
	snprintf(out, sizeof(out), "/etc/%s-nested", tag);
	ok(absent(out), "nested links make nothing outside");

	resolves_inside("/", MOUNT_OPEN, ".");
	resolves_inside("/", MOUNT_MKDIR, ".");
	resolves_inside("/dir", MOUNT_MKDIR, "dir");
}

static void test_hostile(void)
{
	char out[PATH_MAX];

	/* a magic link: in the root the tree's /proc, absent here */
	fails_cleanly("/b", MOUNT_OPEN);
	fails_cleanly("/b/etc", MOUNT_MKDIR);
	ok(!exists_in("proc", S_IFDIR), "a link's missing target is not made");
	/* a dangling link is not followed to create its target */
	snprintf(out, sizeof(out), "/etc/%s-dangling", tag);
	fails_cleanly("/dangling", MOUNT_MKDIR);
	fails_cleanly("/dangling", MOUNT_MKFILE);
	fails_cleanly("/dangling/x", MOUNT_MKDIR);
	ok(absent(out), "a dangling link's target is made nowhere");
	ok(!exists_in("etc/missing", S_IFDIR) &&
		   !exists_in("etc/missing", S_IFREG),
	   "... not even inside");
	/* loops */
	fails_cleanly("/l1", MOUNT_OPEN);
	fails_cleanly("/l1/x", MOUNT_MKDIR);
	/* a file where a directory is needed */
	fails_cleanly("/file/x", MOUNT_MKDIR);
	fails_cleanly("/file/x", MOUNT_MKFILE);
	fails_cleanly("/data/../file/x", MOUNT_OPEN);
	/* the file itself is fine: a file's bind mount goes there */
	resolves_inside("/file", MOUNT_MKFILE, "file");
	/* without create, missing stays missing */
	fails_cleanly("/nothere", MOUNT_OPEN);
	ok(!exists_in("nothere", S_IFDIR), "MOUNT_OPEN creates nothing");
}

static void test_magic_root(void)
{
	/*
	 * A procfs directory as the root: "root" and "cwd" are magic links
	 * to the host's /, which RESOLVE_NO_MAGICLINKS must refuse.
	 */
	int saved = rootfd;
	cleanup_close int self = open("/proc/self", O_PATH | O_DIRECTORY);
	cleanup_close int fd = -1;

	rootfd = self;
	fails_cleanly("/root/etc", MOUNT_OPEN);
	fails_cleanly("/cwd", MOUNT_OPEN);
	fd = mount_resolve(self, "/root/etc/kiln-never", MOUNT_MKDIR);
	ok(fd < 0, "no directory made through a magic link");
	ok(absent("/etc/kiln-never"), "... on the host either");
	rootfd = saved;
}

static void test_long(void)
{
	static char path[PATH_MAX + 64];
	char name[300];
	size_t n = 0;

	/* longer than PATH_MAX: refused before any lookup */
	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	errno = 0;
	is_int(mount_resolve(rootfd, path, MOUNT_MKDIR), -1,
	       "a path over PATH_MAX fails");
	is_int(errno, ENAMETOOLONG, "... with ENAMETOOLONG");
	/* one component over NAME_MAX */
	memset(name, 'y', sizeof(name) - 1);
	name[0] = '/';
	name[sizeof(name) - 1] = '\0';
	fails_cleanly(name, MOUNT_MKDIR);
	/* deep: some 680 components made one at a time, all inside */
	while (n + 4 < PATH_MAX / 2) {
		memcpy(path + n, "/d1", 3);
		n += 3;
	}
	path[n] = '\0';
	resolves_inside(path, MOUNT_MKDIR, NULL);
	/* the same through a link at each of its first levels */
	memcpy(path, "/dl", 3);
	resolves_inside(path, MOUNT_OPEN, NULL);
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

int main(void)
{
	char tmpl[] = "/tmp/kiln-test-mount.XXXXXX";

	snprintf(tag, sizeof(tag), "kiln-test-mount-%d", (int)getpid());
	if (mkdtemp(tmpl) == NULL || realpath(tmpl, root) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	mk("etc", NULL);
	mk("dir", NULL);
	mk("data", "/etc");
	mk("a", "../../../..");
	mk("dir/up", "../../../../../../..");
	mk("b", "/proc/self/root");
	mk("n1", "n2");
	mk("n2", "/dir/../n3");
	mk("n3", "a");
	mk("dangling", "/etc/missing");
	mk("l1", "l2");
	mk("l2", "/l1");
	mk("dl", "d1");
	mkfile("file");
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		printf("Bail out! open %s: %s\n", root, strerror(errno));
		return 1;
	}
	test_links_out();
	test_hostile();
	test_magic_root();
	test_long();
	close(rootfd);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
