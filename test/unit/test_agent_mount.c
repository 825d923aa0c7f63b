/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mount_resolve: the lookup the init child makes for every mount
 * destination before pivot_root. It needs no privilege, so it runs here
 * on a temporary tree full of hostile symlinks; nothing is mounted. Each
 * answer must be inside the tree or a clean failure, and nothing may be
 * created outside it.
 *
 * mount_device_wait: the agent's wait for a drive whose backing file the
 * host has just swapped, on a loop device (root only) that a thread
 * resizes as the guest kernel would; mount_size_wait's bound and
 * messages with a size read from a table.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
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

/* ---- mount_size_wait, mount_device_wait -------------------------------- */

struct sizes {
	const uint64_t *v; /* what each read gives; the last one repeats */
	size_t n, reads;
	int fail; /* every read fails with it; 0: none */
};

static int table_size(void *arg, uint64_t *bytes)
{
	struct sizes *s = arg;

	if (s->fail != 0) {
		errno = s->fail;
		return -1;
	}
	*bytes = s->v[s->reads < s->n ? s->reads : s->n - 1];
	s->reads++;
	return 0;
}

static int size_wait(struct sizes *s, uint64_t want, unsigned int polls,
		     struct kiln_error *err)
{
	memset(err, 0, sizeof(*err));
	s->reads = 0;
	return mount_size_wait("rootfs.layers[1].device", "/dev/vdc", want,
			       polls, table_size, s, err);
}

static void test_size_wait(void)
{
	static const uint64_t grows[] = { 512, 512, 4096 };
	static const uint64_t big[] = { 8192 }, max[] = { UINT64_MAX };
	struct sizes s = { grows, 3, 0, 0 };
	struct kiln_error err;

	is_int(size_wait(&s, 512, 200, &err), 0, "the size already right");
	is_int(s.reads, 1, "... read once, no wait");
	is_int(size_wait(&s, 4096, 200, &err), 0,
	       "the new size on the third read");
	is_int(s.reads, 3, "... then no more reads");
	is_int(size_wait(&s, 4096, 2, &err), -TTRPC_FAILED_PRECONDITION,
	       "not within two reads: refused");
	is_int(s.reads, 2, "... after two reads, no more");
	ok(strstr(err.msg, "rootfs.layers[1].device `/dev/vdc` has 512 bytes "
			   "in the guest, not the 4096") != NULL,
	   "... naming the device and both sizes: %s", err.msg);
	s = (struct sizes){ big, 1, 0, 0 };
	is_int(size_wait(&s, 4096, 3, &err), -TTRPC_FAILED_PRECONDITION,
	       "larger is not enough: exactly the size");
	s = (struct sizes){ max, 1, 0, 0 };
	is_int(size_wait(&s, UINT64_MAX, 3, &err), 0,
	       "UINT64_MAX bytes is only a number");
	is_int(size_wait(&s, 0, 0, &err), -TTRPC_FAILED_PRECONDITION,
	       "0 polls: still read once");
	is_int(s.reads, 1, "... once");
	ok(strstr(err.msg, "has 18446744073709551615 bytes") != NULL,
	   "... the whole size in the message: %s", err.msg);
	s.fail = ENOTTY;
	is_int(size_wait(&s, 4096, 200, &err), -TTRPC_INTERNAL,
	       "a failed read fails at once");
	ok(err.errnum == ENOTTY && strstr(err.msg, "`/dev/vdc`") != NULL,
	   "... with its errno, naming the device: %s", err.msg);
}

/* the host's swap as the guest sees it: the new capacity, a bit later */
struct grow {
	int file, loop;
	off_t to;
	int res; /* errno, 0: done */
};

static void *grow_later(void *arg)
{
	struct grow *g = arg;

	nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	if (ftruncate(g->file, g->to) < 0 ||
	    ioctl(g->loop, LOOP_SET_CAPACITY, 0) < 0)
		g->res = errno;
	return NULL;
}

/* a free loop device over file: its fd and path, or -1 */
static int loop_attach(int file, char *path, size_t len)
{
	cleanup_close int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);

	/* another test may take the free one first: EBUSY, ask again */
	for (int i = 0; ctl >= 0 && i < 16; i++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE), fd;

		if (n < 0)
			return -1;
		snprintf(path, len, "/dev/loop%d", n);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -1;
		if (ioctl(fd, LOOP_SET_FD, file) == 0)
			return fd;
		close(fd);
		if (errno != EBUSY)
			return -1;
	}
	return -1;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void test_device_wait(void)
{
	char img[PATH_MAX + 16], dev[32];
	cleanup_close int file = -1;
	struct grow g = { .to = 2 << 20 };
	struct kiln_error err = { 0 };
	struct timespec t0;
	uint64_t bytes = 0;
	pthread_t th;
	int loop;

	is_int(mount_device_wait("rootfs.device", "/dev/null", 0, &err),
	       -TTRPC_INVALID_ARGUMENT, "a character device is refused");
	ok(strstr(err.msg, "rootfs.device `/dev/null` is not a block device"),
	   "... by name: %s", err.msg);
	snprintf(img, sizeof(img), "%s/disk.img", root);
	file = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (file < 0 || ftruncate(file, 1 << 20) < 0)
		printf("# setup %s: %s\n", img, strerror(errno));
	is_int(mount_device_wait("rootfs.device", img, 1 << 20, &err),
	       -TTRPC_INVALID_ARGUMENT, "a regular file too, even of the size");
	loop = geteuid() == 0 && file >= 0 ? loop_attach(file, dev, sizeof(dev))
					   : -1;
	if (loop < 0) {
		tap_skip("no loop device (root, /dev/loop-control): %s",
			 strerror(errno));
		return;
	}
	is_int(mount_device_wait("rootfs.device", dev, 0, &err), 0,
	       "%s, size 0: no size wait, cache dropped", dev);
	is_int(mount_device_wait("rootfs.device", dev, 1 << 20, &err), 0,
	       "... of the size the request gives");
	g.file = file;
	g.loop = loop;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pthread_create(&th, NULL, grow_later, &g) != 0) {
		printf("Bail out! pthread_create\n");
		exit(1);
	}
	if (!is_int(mount_device_wait("rootfs.layers[0].device", dev, 2 << 20,
				      &err),
		    0, "grown to 2 MiB 100 ms later: waited for"))
		printf("#   %s\n", err.msg);
	ok(ms_since(&t0) >= 90, "... until it grew (%.0f ms)", ms_since(&t0));
	pthread_join(th, NULL);
	is_int(g.res, 0, "... the resize itself worked");
	if (ioctl(loop, BLKGETSIZE64, &bytes) < 0)
		printf("# BLKGETSIZE64 %s: %s\n", dev, strerror(errno));
	is_int(bytes, 2 << 20, "... and the device has the size waited for");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	is_int(mount_device_wait("rootfs.upper_device", dev, 3 << 20, &err),
	       -TTRPC_FAILED_PRECONDITION, "3 MiB never comes: refused");
	ok(ms_since(&t0) >= 1900 && ms_since(&t0) < 10000,
	   "... after the 2 s bound (%.0f ms)", ms_since(&t0));
	ok(strstr(err.msg, "2097152 bytes in the guest, not the 3145728") &&
		   strstr(err.msg, dev) != NULL,
	   "... naming it, what it has and what was expected: %s", err.msg);
	if (ioctl(loop, LOOP_CLR_FD, 0) < 0)
		printf("# detach %s: %s\n", dev, strerror(errno));
	close(loop);
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
	test_size_wait();
	test_device_wait();
	close(rootfd);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
