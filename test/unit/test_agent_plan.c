/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What CreateContainer checks before it mounts anything: the rootfs
 * (one device, or image layers with an upper device) through
 * mount_rootfs_check, and the mounts with carried-in files or a
 * device's size and the masked and read-only paths through
 * mount_plan_init. Pure: nothing is
 * mounted or opened.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "../../agent/mount.h"
#include "tap.h"

#define DIR "/run/kiln/c/box"

static Kiln__Agent__V1__Layer layer_store[MOUNT_LAYERS_MAX + 1];
static Kiln__Agent__V1__Layer *layer_ptrs[MOUNT_LAYERS_MAX + 1];

static void layers_init(Kiln__Agent__V1__Rootfs *r, size_t n,
			const char *const *devs, const char *fstype)
{
	kiln__agent__v1__rootfs__init(r);
	r->device = "";
	r->fstype = "";
	r->upper_device = "";
	for (size_t i = 0; i < n; i++) {
		kiln__agent__v1__layer__init(&layer_store[i]);
		layer_store[i].device = (char *)(devs ? devs[i] : "/dev/vdc");
		layer_store[i].fstype = (char *)fstype;
		layer_ptrs[i] = &layer_store[i];
	}
	r->layers = layer_ptrs;
	r->n_layers = n;
}

/* fails with INVALID_ARGUMENT and a message holding want */
static void refused(const Kiln__Agent__V1__Rootfs *r, const char *want,
		    const char *what)
{
	struct spec_mount_opts o;
	struct kiln_error err = { 0 };
	int res = mount_rootfs_check(r, &o, &err);

	is_int(res, -TTRPC_INVALID_ARGUMENT, "%s: refused", what);
	ok(strstr(err.msg, want) != NULL, "... naming `%s`: %s", want, err.msg);
}

static void accepted(const Kiln__Agent__V1__Rootfs *r, const char *what)
{
	struct spec_mount_opts o;
	struct kiln_error err = { 0 };
	int res = mount_rootfs_check(r, &o, &err);

	if (!is_int(res, 0, "%s: accepted", what))
		printf("#   %s\n", err.msg);
}

static void test_rootfs_device(void)
{
	Kiln__Agent__V1__Rootfs r;
	char *opts[] = { "noatime", "bind" };

	refused(NULL, "rootfs is missing", "no rootfs");
	layers_init(&r, 0, NULL, "");
	r.device = "/dev/vda";
	r.fstype = "ext4";
	accepted(&r, "one device");
	r.fstype = "btrfs";
	refused(&r, "rootfs.fstype", "unknown fstype");
	r.fstype = "ext4";
	r.device = "/tmp/img";
	refused(&r, "rootfs.device `/tmp/img` is not under /dev",
		"device outside /dev");
	r.device = "/dev/../etc/passwd";
	refused(&r, "rootfs.device", "device with ..");
	r.device = "/dev/vda";
	r.options = opts;
	r.n_options = 2;
	refused(&r, "rootfs.options: no bind", "bind option");
	r.n_options = 1;
	accepted(&r, "noatime");
	r.n_options = 0;
	r.upper_device = "/dev/vdb";
	refused(&r, "rootfs.upper_device needs rootfs.layers",
		"upper without layers");
}

static void test_rootfs_layers(void)
{
	static const char *const two[] = { "/dev/vdd", "/dev/vdc" };
	static const char *const bad[] = { "/dev/vdd", "vdc" };
	static const char *const out[] = { "/dev/vdd", "/etc/shadow" };
	Kiln__Agent__V1__Rootfs r;
	char *opts[] = { "noatime" };
	char name[64];

	layers_init(&r, 2, two, "erofs");
	accepted(&r, "two erofs layers, tmpfs upper");
	r.upper_device = "/dev/vde";
	accepted(&r, "two layers and an upper device");
	layer_store[1].fstype = "ext4";
	accepted(&r, "an ext4 layer");
	layer_store[1].fstype = "squashfs";
	refused(&r, "rootfs.layers[1].fstype must be erofs or ext4",
		"a layer of another fstype");
	layer_store[1].fstype = "";
	refused(&r, "rootfs.layers[1].fstype", "a layer without fstype");

	layers_init(&r, 2, two, "erofs");
	r.device = "/dev/vda";
	r.fstype = "ext4";
	refused(&r, "rootfs.device must be empty when rootfs.layers is set",
		"device and layers");
	layers_init(&r, 2, two, "erofs");
	r.options = opts;
	r.n_options = 1;
	refused(&r, "rootfs.options: not with rootfs.layers",
		"options and layers");

	layers_init(&r, 2, bad, "erofs");
	refused(&r, "rootfs.layers[1].device `vdc` is not absolute",
		"a relative layer device");
	layers_init(&r, 2, out, "erofs");
	refused(&r, "rootfs.layers[1].device `/etc/shadow` is not under /dev",
		"a layer device outside /dev");
	layers_init(&r, 1, NULL, "erofs");
	layer_store[0].device = "";
	refused(&r, "rootfs.layers[0].device", "an empty layer device");
	layer_store[0].device = "/dev/vd\nc";
	refused(&r, "rootfs.layers[0].device has a control character",
		"a layer device with a newline");

	layers_init(&r, 2, two, "erofs");
	r.upper_device = "/dev/vdc";
	refused(&r, "rootfs.upper_device `/dev/vdc` is also rootfs.layers[1]",
		"upper device that is a layer");
	r.upper_device = "/run/upper.img";
	refused(&r, "rootfs.upper_device `/run/upper.img` is not under /dev",
		"upper device outside /dev");

	layers_init(&r, MOUNT_LAYERS_MAX, NULL, "erofs");
	accepted(&r, "64 layers");
	layers_init(&r, MOUNT_LAYERS_MAX + 1, NULL, "erofs");
	snprintf(name, sizeof(name), "more than %d", MOUNT_LAYERS_MAX);
	refused(&r, name, "65 layers");
}

/* ---- mount_plan_init ---------------------------------------------------- */

static Kiln__Agent__V1__Mount mount_store[MOUNTS_MAX];
static Kiln__Agent__V1__Mount *mount_ptrs[MOUNTS_MAX];

static Kiln__Agent__V1__Mount *
add_file(Kiln__Agent__V1__CreateContainerRequest *req, const char *dest,
	 const uint8_t *data, size_t len, uint32_t mode)
{
	Kiln__Agent__V1__Mount *m = &mount_store[req->n_mounts];

	kiln__agent__v1__mount__init(m);
	m->destination = (char *)dest;
	m->type = "bind";
	m->source = "";
	m->has_data = true;
	m->data.data = (uint8_t *)data;
	m->data.len = len;
	m->file_mode = mode;
	mount_ptrs[req->n_mounts++] = m;
	req->mounts = mount_ptrs;
	return m;
}

static int plan(const Kiln__Agent__V1__CreateContainerRequest *req,
		struct mount_plan *p, struct kiln_error *err)
{
	memset(err, 0, sizeof(*err));
	return mount_plan_init(p, DIR, req, err);
}

static void plan_refused(const Kiln__Agent__V1__CreateContainerRequest *req,
			 const char *want, const char *what)
{
	struct mount_plan p;
	struct kiln_error err;

	is_int(plan(req, &p, &err), -TTRPC_INVALID_ARGUMENT, "%s: refused",
	       what);
	ok(strstr(err.msg, want) != NULL, "... naming `%s`: %s", want, err.msg);
	mount_plan_free(&p);
}

static void test_files(void)
{
	Kiln__Agent__V1__CreateContainerRequest req =
		KILN__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	static const uint8_t hosts[] = "127.0.0.1 localhost\n";
	uint8_t *big = calloc(1, MOUNT_FILE_MAX + 1);
	char *ro[] = { "ro", "nosuid" };
	Kiln__Agent__V1__Mount *m;
	struct mount_plan p;
	struct kiln_error err;

	if (big == NULL) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	m = add_file(&req, "/etc/hosts", hosts, sizeof(hosts) - 1, 0);
	m->options = ro;
	m->n_options = 2;
	add_file(&req, "/etc/hostname", (const uint8_t *)"box\n", 4, 0100755);
	add_file(&req, "/run/.containerenv", NULL, 0, 0);
	if (is_int(plan(&req, &p, &err), 0, "three files: accepted")) {
		is_int(p.nfiles, 3, "... three files");
		is_int(p.files_size, sizeof(hosts) - 1 + 4, "... their bytes");
		ok(strcmp(p.mounts[0].source, DIR "/files/0") == 0,
		   "the bind's source is the agent's file: %s",
		   p.mounts[0].source);
		ok(strcmp(p.mounts[1].file, DIR "/files/1") == 0,
		   "one file per mount: %s", p.mounts[1].file);
		ok(p.mounts[0].opts.bind &&
			   (p.mounts[0].opts.flags & MS_RDONLY) &&
			   (p.mounts[0].opts.flags & MS_NOSUID),
		   "... with the mount's options");
		is_int(p.mounts[0].mode, 0644, "mode 0 is 0644");
		is_int(p.mounts[1].mode, 0755, "a mode is masked to 07777");
		is_int(p.mounts[0].len, sizeof(hosts) - 1, "the data's length");
		ok(p.mounts[2].data != NULL && p.mounts[2].len == 0, "an empty "
								     "file is "
								     "a file "
								     "too");
	} else {
		printf("#   %s\n", err.msg);
	}
	mount_plan_free(&p);

	/* data on anything but a bind */
	req.n_mounts = 0;
	m = add_file(&req, "/etc/hosts", hosts, 4, 0);
	m->type = "tmpfs";
	plan_refused(&req, "mount /etc/hosts: data needs a bind mount",
		     "data on a tmpfs");
	/* a bind option is a bind too, whatever the type */
	m->type = "none";
	m->options = (char *[]){ "rbind" };
	m->n_options = 1;
	is_int(plan(&req, &p, &err), 0, "data with an rbind option: accepted");
	mount_plan_free(&p);

	/* one file over 1 MiB; exactly 1 MiB is fine */
	req.n_mounts = 0;
	add_file(&req, "/etc/big", big, MOUNT_FILE_MAX + 1, 0);
	plan_refused(&req, "mount /etc/big: data of 1048577 bytes",
		     "a file over 1 MiB");
	req.n_mounts = 0;
	add_file(&req, "/etc/big", big, MOUNT_FILE_MAX, 0);
	is_int(plan(&req, &p, &err), 0, "a file of 1 MiB: accepted");
	mount_plan_free(&p);

	/* more than the total, named by the file that crosses it */
	req.n_mounts = 0;
	for (size_t i = 0; i < MOUNT_FILES_TOTAL_MAX / MOUNT_FILE_MAX; i++)
		add_file(&req, "/etc/f", big, MOUNT_FILE_MAX, 0);
	is_int(plan(&req, &p, &err), 0, "files of 3 MiB in all: accepted");
	mount_plan_free(&p);
	add_file(&req, "/etc/one-too-many", big, 1, 0);
	plan_refused(&req, "mount /etc/one-too-many: the request's files",
		     "one byte past the total");

	/* without data a bind still needs an absolute source */
	req.n_mounts = 0;
	m = add_file(&req, "/etc/hosts", NULL, 0, 0);
	m->has_data = false;
	plan_refused(&req, "bind mount /etc/hosts: source is not absolute",
		     "a bind without data or source");
	free(big);
}

/* a directory's image on a drive: waited for by its size, never a bind */
static void test_device_size(void)
{
	Kiln__Agent__V1__CreateContainerRequest req =
		KILN__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	char *ro[] = { "ro" };
	Kiln__Agent__V1__Mount *m;
	struct mount_plan p;
	struct kiln_error err;

	m = add_file(&req, "/share", NULL, 0, 0);
	m->has_data = false;
	m->type = "erofs";
	m->source = "/dev/vda";
	m->options = ro;
	m->n_options = 1;
	m->device_size = UINT64_MAX;
	if (is_int(plan(&req, &p, &err), 0, "a device with its size: accepted"))
		ok(p.mounts[0].device_size == UINT64_MAX &&
			   strcmp(p.mounts[0].source, "/dev/vda") == 0,
		   "... the size kept for the wait, whatever it is");
	else
		printf("#   %s\n", err.msg);
	mount_plan_free(&p);
	m->device_size = 0;
	m->source = "/srv/share.img";
	is_int(plan(&req, &p, &err), 0, "no size: any source, as before");
	mount_plan_free(&p);
	m->device_size = 4096;
	plan_refused(&req,
		     "mount /share: mount source `/srv/share.img` is "
		     "not under /dev",
		     "a size on a source outside /dev");
	m->source = "/dev/../etc/shadow";
	plan_refused(&req, "mount /share: mount source", "a source with ..");
	m->source = "/dev/vda";
	m->type = "bind";
	plan_refused(&req, "mount /share: device_size is not for a bind",
		     "a size on a bind");
	m->type = "erofs";
	m->has_data = true;
	m->options = (char *[]){ "rbind" };
	plan_refused(&req, "device_size is not for a bind",
		     "a size on a carried-in file");
}

/* a pod's shared volume: a plain name under AGENT_VOLUMES_DIR */
static void test_volume(void)
{
	Kiln__Agent__V1__CreateContainerRequest req =
		KILN__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	Kiln__Agent__V1__Mount *m;
	struct mount_plan p;
	struct kiln_error err;

	m = add_file(&req, "/cache", NULL, 0, 0);
	m->has_data = false;
	m->source = AGENT_VOLUMES_DIR "/cache-1";
	m->options = (char *[]){ "rbind", "rw" };
	m->n_options = 2;
	if (is_int(plan(&req, &p, &err), 0, "a volume's bind: accepted"))
		ok(p.mounts[0].volume && p.mounts[0].opts.bind, "... made on "
								"first use");
	else
		printf("#   %s\n", err.msg);
	mount_plan_free(&p);
	m->source = "/srv/data";
	if (is_int(plan(&req, &p, &err), 0, "another guest path"))
		ok(!p.mounts[0].volume, "... is not made");
	mount_plan_free(&p);
	m->source = AGENT_VOLUMES_DIR "/../c";
	plan_refused(&req, "not a name", "a volume of `..`");
	m->source = AGENT_VOLUMES_DIR "/a/b";
	plan_refused(&req, "not a name", "a volume in a volume");
	m->source = AGENT_VOLUMES_DIR "/";
	plan_refused(&req, "not a name", "a volume without a name");
}

/* a pod's share: "<id>/<n>" under AGENT_PODFS_DIR, nothing else of it */
static void test_podfs(void)
{
	Kiln__Agent__V1__CreateContainerRequest req =
		KILN__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	Kiln__Agent__V1__Mount *m;
	struct mount_plan p;
	struct kiln_error err;
	static const char *const bad[] = {
		"/../c/0", "/a/b/0", "/a/",   "/a",	  "/",
		"/a/1x",   "/.a/1",  "/a/-1", "/a/12345", "/a/1/",
	};

	m = add_file(&req, "/data", NULL, 0, 0);
	m->has_data = false;
	m->source = AGENT_PODFS_DIR "/m1/12";
	m->options = (char *[]){ "rbind", "ro" };
	m->n_options = 2;
	if (is_int(plan(&req, &p, &err), 0, "a pod volume's bind: accepted"))
		ok(p.mounts[0].podfs && p.mounts[0].opts.bind &&
			   !p.mounts[0].volume &&
			   (p.mounts[0].opts.flags & MS_RDONLY),
		   "... binds from the pod's share, read-only");
	else
		printf("#   %s\n", err.msg);
	mount_plan_free(&p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char src[64];

		snprintf(src, sizeof(src), AGENT_PODFS_DIR "%s", bad[i]);
		m->source = src;
		plan_refused(&req, "not a pod volume", src);
	}
	m->source = "/srv/podfs/m1/0";
	if (is_int(plan(&req, &p, &err), 0, "another guest path"))
		ok(!p.mounts[0].podfs, "... is not the pod's share");
	mount_plan_free(&p);
	ok(mount_podfs_path_ok("c1/0") && !mount_podfs_path_ok("c1/0/x") &&
		   !mount_podfs_path_ok("../0"),
	   "the path check on its own");
}

static void test_paths(void)
{
	Kiln__Agent__V1__CreateContainerRequest req =
		KILN__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	char *masked[] = { "/proc/kcore", "/proc/keys", "/sys/firmware" };
	char *ro[] = { "/proc/bus", "/proc/sys" };
	char *bad[] = { "/proc/kcore", "proc/keys" };
	char *dots[] = { "/proc/../etc" };
	char *ctl[] = { "/proc/\x01" };
	static char *many[MOUNT_PATHS_MAX + 1];
	static char longp[PATH_MAX + 8];
	char *longv[] = { longp };
	struct mount_plan p;
	struct kiln_error err;

	req.masked_paths = masked;
	req.n_masked_paths = 3;
	req.readonly_paths = ro;
	req.n_readonly_paths = 2;
	if (is_int(plan(&req, &p, &err), 0, "docker's paths: accepted")) {
		is_int(p.nmasked, 3, "... three masked");
		is_int(p.nro_paths, 2, "... two read-only");
		ok(p.masked[2] == masked[2] && p.ro_paths[1] == ro[1], "... as "
								       "given");
	}
	mount_plan_free(&p);

	req.masked_paths = bad;
	req.n_masked_paths = 2;
	plan_refused(&req, "masked_paths[1] `proc/keys` is not absolute",
		     "a relative masked path");
	req.masked_paths = masked;
	req.n_masked_paths = 3;
	req.readonly_paths = dots;
	req.n_readonly_paths = 1;
	plan_refused(&req, "readonly_paths[0] `/proc/../etc` has a . or ..",
		     "a read-only path with ..");
	req.readonly_paths = ctl;
	plan_refused(&req, "readonly_paths[0] has a control character",
		     "a read-only path with a control character");
	req.n_readonly_paths = 0;
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	req.masked_paths = longv;
	req.n_masked_paths = 1;
	plan_refused(&req, "masked_paths[0] is longer than",
		     "a masked path over PATH_MAX");
	longp[PATH_MAX - 10] = '\0';
	plan_refused(&req, "masked_paths[0] too long",
		     "a masked path too long under the root");
	for (size_t i = 0; i < MOUNT_PATHS_MAX + 1; i++)
		many[i] = "/proc/kcore";
	req.masked_paths = many;
	req.n_masked_paths = MOUNT_PATHS_MAX;
	is_int(plan(&req, &p, &err), 0, "%d masked paths: accepted",
	       MOUNT_PATHS_MAX);
	mount_plan_free(&p);
	req.n_masked_paths = MOUNT_PATHS_MAX + 1;
	plan_refused(&req, "more than 128 masked_paths", "129 masked paths");
	req.n_masked_paths = 0;
	req.readonly_paths = many;
	req.n_readonly_paths = MOUNT_PATHS_MAX + 1;
	plan_refused(&req, "more than 128 readonly_paths",
		     "129 read-only paths");
}

/* overlayfs's options: paths while they fit in a page, else descriptors */
static void test_overlay_data(void)
{
	static const char id64[] = "0123456789abcdef0123456789abcdef0123456789a"
				   "bcdef0123456789abcdef";
	char data[4096], dir[128], want[256];
	int fds[MOUNT_LAYERS_MAX];

	is_int(mount_overlay_data(data, sizeof(data), DIR, 2, NULL, "/u", "/w"),
	       0, "two layers by path");
	ok(strcmp(data, "lowerdir=" DIR "/l0:" DIR "/l1,upperdir=/u,"
			"workdir=/w") == 0,
	   "... top first: %s", data);
	fds[0] = 7;
	is_int(mount_overlay_data(data, sizeof(data), DIR, 1, fds, "/u", "/w"),
	       0, "one layer by descriptor");
	ok(strcmp(data, "lowerdir=/proc/self/fd/7,upperdir=/u,workdir=/w") == 0,
	   "... through /proc/self/fd: %s", data);
	/* 64 layers under a 64-byte id: about 5 KiB of paths */
	snprintf(dir, sizeof(dir), "/run/kiln/c/%s", id64);
	is_int(mount_overlay_data(data, sizeof(data), dir, MOUNT_LAYERS_MAX,
				  NULL, dir, dir),
	       -1, "64 layers by path do not fit in a page");
	for (int i = 0; i < MOUNT_LAYERS_MAX; i++)
		fds[i] = 1000 + i;
	is_int(mount_overlay_data(data, sizeof(data), dir, MOUNT_LAYERS_MAX,
				  fds, dir, dir),
	       0, "... by descriptor they do");
	snprintf(want, sizeof(want), ":/proc/self/fd/1063,upperdir=%s,", dir);
	ok(strstr(data, "lowerdir=/proc/self/fd/1000:/proc/self/fd/1001:") ==
			   data &&
		   strstr(data, want) != NULL,
	   "... every one, in order");
	/* exactly full, one byte short */
	is_int(mount_overlay_data(data, 38, "/d", 1, NULL, "/u", "/w"), 0,
	       "37 bytes fit in 38");
	is_int(mount_overlay_data(data, 37, "/d", 1, NULL, "/u", "/w"), -1,
	       "... not in 37");
	is_int(mount_overlay_data(data, 8, "/d", 1, NULL, "/u", "/w"), -1,
	       "nor in 8");
}

int main(void)
{
	test_overlay_data();
	test_rootfs_device();
	test_rootfs_layers();
	test_files();
	test_device_size();
	test_volume();
	test_podfs();
	test_paths();
	return tap_done();
}
