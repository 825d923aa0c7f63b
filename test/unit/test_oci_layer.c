/* SPDX-License-Identifier: Apache-2.0 */
/* oci/layer.c: erofs images of directories, cached by key. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../oci/layer.h"
#include "tap.h"

static char top[] = "/tmp/kiln-layer-XXXXXX";

static void put(const char *rel, const char *content)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	f = fopen(path, "w");
	fputs(content, f);
	fclose(f);
}

static int sh(const char *fmt, const char *a, const char *b)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), fmt, a, b);
	return system(cmd);
}

static void test_keys(void)
{
	char src[256], k1[LAYER_KEY_LEN + 1], k2[LAYER_KEY_LEN + 1];
	char k3[LAYER_KEY_LEN + 1];
	struct kiln_error err = { 0 };

	snprintf(src, sizeof(src), "%s/src", top);
	ok(layer_key(src, LAYER_MUTABLE, k1, &err) == 0 &&
		   strlen(k1) == LAYER_KEY_LEN,
	   "a tree's key is 64 hex digits (%s)", err.msg);
	ok(layer_key(src, LAYER_MUTABLE, k2, &err) == 0 && strcmp(k1, k2) == 0,
	   "an unchanged tree keeps its key");
	layer_key(src, LAYER_IMMUTABLE, k3, &err);
	ok(strcmp(k1, k3) != 0, "identity and fingerprint keys differ");
	put("src/sub/f", "changed");
	ok(layer_key(src, LAYER_MUTABLE, k2, &err) == 0 && strcmp(k1, k2) != 0,
	   "a file's new content changes the tree's key");
	layer_key(src, LAYER_MUTABLE, k1, &err);
	sh("chmod 0600 %s/src/sub/f%s", top, "");
	layer_key(src, LAYER_MUTABLE, k2, &err);
	ok(strcmp(k1, k2) != 0, "a mode change changes the tree's key");
	layer_key(src, LAYER_IMMUTABLE, k2, &err);
	ok(strcmp(k3, k2) == 0, "an image layer's key is its identity, not its "
				"content");
	ok(layer_key("/nonexistent/x", LAYER_MUTABLE, k1, &err) < 0 &&
		   err.errnum == ENOENT,
	   "a missing directory: %s", err.msg);
	snprintf(src, sizeof(src), "%s/src/a", top);
	ok(layer_key(src, LAYER_MUTABLE, k1, &err) < 0 && err.errnum == ENOTDIR,
	   "a file is no layer: %s", err.msg);
}

static void test_images(void)
{
	char src[256], cache[256], out[256];
	struct kiln_error err = { 0 };
	bool built = false;
	char *img, *img2;
	struct stat st;

	snprintf(src, sizeof(src), "%s/src", top);
	snprintf(cache, sizeof(cache), "%s/cache/layers", top);
	img = layer_image(cache, src, LAYER_MUTABLE, &built, &err);
	if (!ok(img != NULL && built, "first use builds the image (%s)",
		err.msg))
		return;
	ok(stat(img, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0,
	   "the image is a file in the cache");
	img2 = layer_image(cache, src, LAYER_MUTABLE, &built, &err);
	ok(img2 != NULL && !built && strcmp(img, img2) == 0, "second use finds "
							     "it, builds "
							     "nothing");
	free(img2);
	/* what the image holds: extract it with erofs-utils' own checker */
	snprintf(out, sizeof(out), "%s/out", top);
	ok(sh("fsck.erofs --extract=%s %s >/dev/null 2>&1", out, img) == 0,
	   "fsck.erofs finds the image sound");
	ok(sh("cmp -s %s/a %s/../src/a", out, out) == 0 &&
		   sh("cmp -s %s/sub/f %s/../src/sub/f", out, out) == 0,
	   "file contents survive");
	ok(sh("test \"$(readlink %s/link)\" = target%s", out, "") == 0,
	   "a symlink survives unfollowed");
	ok(sh("test \"$(stat -c %%a:%%u:%%g %s/sub/f)\" = 600:1234:5678%s", out,
	      "") == 0,
	   "mode and owner survive");

	ok(sh("test -f %s/$(basename %s .erofs).src", cache, img) == 0, "the "
									"image "
									"has "
									"its "
									"recor"
									"d");
	put("src/a", "new");
	img2 = layer_image(cache, src, LAYER_MUTABLE, &built, &err);
	ok(img2 != NULL && built, "a changed tree builds a new image");
	ok(access(img, F_OK) < 0 && access(img2, F_OK) == 0, "the tree's older "
							     "image is "
							     "dropped");
	free(img);
	free(img2);
	ok(sh("test \"$(ls -A %s | grep -v '[.]erofs$' | grep -v '[.]src$')\" "
	      "= .lock%s",
	      cache, "") == 0,
	   "only images, their records and the cache's lock in the cache");
}

static int count(const char *cache, const char *suffix)
{
	char cmd[512];
	int n = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls -A %s | grep -c '[.]%s$'", cache,
		 suffix);
	p = popen(cmd, "r");
	if (p == NULL || fscanf(p, "%d", &n) != 1)
		n = -1;
	if (p != NULL)
		pclose(p);
	return n;
}

/* Layers that come and go (docker's -init layer of each container):
 * the cache keeps one image per live directory, not one per use. */
static void test_collection(void)
{
	char cache[256], dir[256], kept[256];
	struct kiln_error err = { 0 };
	bool built;
	char *img, *keep;

	snprintf(cache, sizeof(cache), "%s/cache4", top);
	snprintf(kept, sizeof(kept), "%s/kept", top);
	sh("mkdir -p %s && echo kept >%s/f", kept, kept);
	keep = layer_image(cache, kept, LAYER_IMMUTABLE, &built, &err);
	for (int i = 0; i < 5; i++) {
		snprintf(dir, sizeof(dir), "%s/c%d-init", top, i);
		sh("mkdir -p %s && date +%%N >%s/hosts", dir, dir);
		img = layer_image(cache, dir, LAYER_IMMUTABLE, &built, &err);
		ok(img != NULL && built, "container %d's layer built (%s)", i,
		   err.msg);
		free(img);
		sh("rm -rf %s%s", dir, "");
	}
	is_int(count(cache, "erofs"), 2,
	       "five layers removed in turn: one image left, and the live one");
	is_int(count(cache, "src"), 2, "as many records as images");
	ok(keep != NULL && access(keep, F_OK) == 0, "a live directory's image "
						    "is kept");
	free(keep);
	/* a directory replaced under the same path is another layer */
	snprintf(dir, sizeof(dir), "%s/c9", top);
	sh("mkdir -p %s && echo one >%s/f", dir, dir);
	img = layer_image(cache, dir, LAYER_IMMUTABLE, &built, &err);
	sh("rm -rf %s && mkdir -p %s", dir, dir);
	sh("echo two >%s/f%s", dir, "");
	keep = layer_image(cache, dir, LAYER_IMMUTABLE, &built, &err);
	ok(img != NULL && keep != NULL && built && strcmp(img, keep) != 0 &&
		   access(img, F_OK) < 0,
	   "a replaced directory's old image is dropped");
	free(img);
	free(keep);
}

static void test_failures(void)
{
	char src[256], cache[256];
	struct kiln_error err = { 0 };
	bool built;
	char *img;

	snprintf(src, sizeof(src), "%s/src", top);
	snprintf(cache, sizeof(cache), "%s/cache2", top);
	layer_mkfs_erofs = "/bin/false";
	img = layer_image(cache, src, LAYER_IMMUTABLE, &built, &err);
	ok(img == NULL && strstr(err.msg, "/bin/false") != NULL,
	   "a failing build is an error naming the tool: %s", err.msg);
	layer_mkfs_erofs = "/nonexistent/mkfs";
	img = layer_image(cache, src, LAYER_IMMUTABLE, &built, &err);
	ok(img == NULL && strstr(err.msg, "cannot run") != NULL,
	   "a missing tool: %s", err.msg);
	ok(sh("test \"$(ls -A %s)\" = .lock%s", cache, "") == 0, "failed "
								 "builds leave "
								 "nothing but "
								 "the cache's "
								 "lock");
	layer_mkfs_erofs = "mkfs.erofs";
}

/* Four creates of one layer at once: one builds, all get the image. */
static void test_concurrent(void)
{
	char src[256], cache[256];
	int builds = 0, oks = 0;

	snprintf(src, sizeof(src), "%s/src", top);
	snprintf(cache, sizeof(cache), "%s/cache3", top);
	for (int i = 0; i < 4; i++) {
		if (fork() == 0) {
			struct kiln_error err = { 0 };
			bool built = false;
			char *img = layer_image(cache, src, LAYER_IMMUTABLE,
						&built, &err);

			_exit(img == NULL ? 2 : built ? 1 : 0);
		}
	}
	for (int i = 0; i < 4; i++) {
		int status;

		wait(&status);
		if (WIFEXITED(status) && WEXITSTATUS(status) < 2)
			oks++;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
			builds++;
	}
	is_int(oks, 4, "four concurrent users all get the image");
	is_int(builds, 1, "exactly one of them built it");
}

int main(void)
{
	char path[256];

	if (mkdtemp(top) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/src/sub", top);
	sh("mkdir -p %s%s", path, "");
	put("src/a", "alpha\n");
	put("src/sub/f", "file in a subdirectory\n");
	sh("ln -s target %s/src/link%s", top, "");
	sh("chown 1234:5678 %s/src/sub/f%s", top, "");
	test_keys();
	test_images();
	test_failures();
	test_concurrent();
	test_collection();
	sh("rm -rf %s%s", top, "");
	return tap_done();
}
