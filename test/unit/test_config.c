/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../lib/log.h"

#include "../../vmm/config.h"
#include "tap.h"

static int parse(struct vm_config *c, const char *json, struct kiln_error *err)
{
	vm_config_destroy(c);
	vm_config_init(c);
	return vm_config_parse_json(c, json, strlen(json), err);
}

static void bad(const char *json, const char *want)
{
	struct kiln_error err = { 0 };
	struct vm_config c;

	vm_config_init(&c);
	is_int(vm_config_parse_json(&c, json, strlen(json), &err), -1,
	       "rejected: %s", json);
	ok(strstr(err.msg, want) != NULL, "  message `%s` has `%s`", err.msg,
	   want);
	vm_config_destroy(&c);
}

static bool str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Field by field, so a writer that drops a field cannot hide it. */
static bool config_eq(const struct vm_config *a, const struct vm_config *b)
{
	if (!str_eq(a->kernel_path, b->kernel_path) ||
	    !str_eq(a->initrd_path, b->initrd_path) ||
	    !str_eq(a->cmdline, b->cmdline) || a->vcpu_count != b->vcpu_count ||
	    a->mem_mib != b->mem_mib || a->entropy != b->entropy ||
	    a->ndrives != b->ndrives || a->nnets != b->nnets ||
	    a->vsock.enabled != b->vsock.enabled ||
	    a->vsock.cid != b->vsock.cid ||
	    !str_eq(a->vsock.uds_path, b->vsock.uds_path) ||
	    memcmp(&a->balloon, &b->balloon, sizeof(a->balloon)) != 0 ||
	    !str_eq(a->log_path, b->log_path) || a->log_level != b->log_level ||
	    a->show_level != b->show_level ||
	    a->show_origin != b->show_origin ||
	    !str_eq(a->metrics_path, b->metrics_path))
		return false;
	for (unsigned int i = 0; i < a->ndrives; i++)
		if (!str_eq(a->drives[i].id, b->drives[i].id) ||
		    !str_eq(a->drives[i].path, b->drives[i].path) ||
		    a->drives[i].read_only != b->drives[i].read_only ||
		    a->drives[i].root != b->drives[i].root)
			return false;
	for (unsigned int i = 0; i < a->nnets; i++)
		if (!str_eq(a->nets[i].id, b->nets[i].id) ||
		    !str_eq(a->nets[i].tap, b->nets[i].tap) ||
		    a->nets[i].has_mac != b->nets[i].has_mac ||
		    a->nets[i].queue_pairs != b->nets[i].queue_pairs ||
		    memcmp(a->nets[i].mac, b->nets[i].mac, 6) != 0)
			return false;
	if (a->nfs != b->nfs)
		return false;
	for (unsigned int i = 0; i < a->nfs; i++)
		if (!str_eq(a->fs[i].id, b->fs[i].id) ||
		    !str_eq(a->fs[i].tag, b->fs[i].tag) ||
		    !str_eq(a->fs[i].socket_path, b->fs[i].socket_path) ||
		    a->fs[i].num_queues != b->fs[i].num_queues ||
		    a->fs[i].queue_size != b->fs[i].queue_size)
			return false;
	return true;
}

/* JSON -> config -> JSON -> config: both configs and both texts equal. */
static void round_trip(const char *json, const char *what)
{
	struct kiln_error err = { 0 };
	struct vm_config a, b;
	char *ja = NULL, *jb = NULL;

	vm_config_init(&a);
	vm_config_init(&b);
	is_int(vm_config_parse_json(&a, json, strlen(json), &err), 0,
	       "round trip %s: parses: %s", what, err.msg);
	ja = vm_config_to_json(&a);
	ok(ja != NULL, "  written");
	is_int(vm_config_parse_json(&b, ja ? ja : "", ja ? strlen(ja) : 0,
				    &err),
	       0, "  read back: %s", err.msg);
	jb = vm_config_to_json(&b);
	ok(config_eq(&a, &b), "  same config");
	if (!ok(ja && jb && strcmp(ja, jb) == 0, "  same JSON"))
		printf("#   %s\n#   %s\n", ja, jb);
	free(ja);
	free(jb);
	vm_config_destroy(&a);
	vm_config_destroy(&b);
}

/* boot_args as Firecracker's linux-loader Cmdline takes them */
static void check_boot_args(void)
{
	struct kiln_error err = { 0 };
	char args[VM_MAX_BOOT_ARGS + 2];
	struct vm_config c;

	memset(args, 'x', sizeof(args));
	args[VM_MAX_BOOT_ARGS] = '\0';
	is_int(vm_config_validate_boot_args(args, &err), 0,
	       "%d bytes of "
	       "boot_args",
	       VM_MAX_BOOT_ARGS);
	args[VM_MAX_BOOT_ARGS] = 'x';
	args[VM_MAX_BOOT_ARGS + 1] = '\0';
	is_int(vm_config_validate_boot_args(args, &err), -1, "%d refused",
	       VM_MAX_BOOT_ARGS + 1);
	ok(strstr(err.msg, "command line is invalid: 2048 bytes, at most "
			   "2047") != NULL,
	   "  says so: %s", err.msg);
	is_int(vm_config_validate_boot_args("console=ttyS0\tquiet", &err), -1,
	       "a tab refused");
	ok(strstr(err.msg, "byte 0x09 at 13 is not printable ASCII") != NULL,
	   "  says where: %s", err.msg);
	is_int(vm_config_validate_boot_args("caf\xc3\xa9", &err), -1,
	       "non-ASCII refused");
	is_int(vm_config_validate_boot_args("", &err), 0, "empty is fine");

	/* flags and --config-file get it from vm_config_validate */
	vm_config_init(&c);
	c.kernel_path = strdup("/k");
	c.cmdline = strdup("a\nb");
	is_int(vm_config_validate(&c, &err), -1, "validate checks boot_args");
	ok(strstr(err.msg, "command line is invalid") != NULL, "  %s", err.msg);
	vm_config_destroy(&c);
}

/* The host side, checked when configured (config_host.c). */
static void check_host(void)
{
	char dir[] = "/tmp/kiln-test-host-XXXXXX";
	char p[8][96];
	struct kiln_error err = { 0 };
	struct vm_drive d = { .id = "data" };
	struct vm_net n = { .id = "eth0", .tap = "kilnnotap0" };
	struct vm_vsock v = { .enabled = true, .cid = 3 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vm_config c;
	int fd, lfd;
	char *json;

	if (!ok(mkdtemp(dir) != NULL, "temp dir"))
		return;
	for (int i = 0; i < 8; i++)
		snprintf(p[i], sizeof(p[i]), "%s/%d", dir, i);
	/* 0: a kernel, 1: empty, 2: a FIFO, 3: missing, 4: a directory */
	fd = open(p[0], O_CREAT | O_WRONLY, 0600);
	ok(fd >= 0 && write(fd, "kernel", 6) == 6, "a file");
	close(fd);
	close(open(p[1], O_CREAT | O_WRONLY, 0600));
	ok(mkfifo(p[2], 0600) == 0, "a FIFO");
	ok(mkdir(p[4], 0700) == 0, "a directory");

	is_int(vm_config_check_boot_source(p[0], NULL, &err), 0,
	       "kernel "
	       "opens");
	is_int(vm_config_check_boot_source(p[0], p[0], &err), 0,
	       "kernel and initrd open");
	is_int(vm_config_check_boot_source(p[3], NULL, &err), -1,
	       "a missing kernel");
	ok(strstr(err.msg, "open kernel `") && strstr(err.msg, p[3]) &&
		   err.errnum == ENOENT,
	   "  names it, ENOENT: %s", err.msg);
	is_int(vm_config_check_boot_source(p[0], p[3], &err), -1,
	       "a missing initrd");
	ok(strstr(err.msg, "open initrd `") && strstr(err.msg, p[3]),
	   "  names it: %s", err.msg);
	is_int(vm_config_check_boot_source(p[1], NULL, &err), -1,
	       "an empty kernel");
	ok(strstr(err.msg, "is empty") != NULL, "  says so: %s", err.msg);
	/* a FIFO nobody writes would block a plain open(O_RDONLY) */
	is_int(vm_config_check_boot_source(p[2], NULL, &err), -1,
	       "a FIFO as kernel, without blocking");
	ok(strstr(err.msg, "is not a file") != NULL, "  says so: %s", err.msg);
	is_int(vm_config_check_boot_source(p[4], NULL, &err), -1,
	       "a directory as kernel");

	d.path = p[0];
	is_int(vm_config_check_drive_file(&d, &err), 0, "a drive file opens");
	d.read_only = true;
	is_int(vm_config_check_drive_file(&d, &err), 0, "  read-only too");
	d.path = p[3];
	is_int(vm_config_check_drive_file(&d, &err), -1, "a missing drive");
	ok(strstr(err.msg, "drive data: open `") && strstr(err.msg, p[3]) &&
		   err.errnum == ENOENT,
	   "  names it: %s", err.msg);
	d.path = p[2];
	is_int(vm_config_check_drive_file(&d, &err), -1,
	       "a FIFO as drive, without blocking");
	ok(strstr(err.msg, "not a file or block device") != NULL,
	   "  says so: %s", err.msg);
	d.path = p[4];
	is_int(vm_config_check_drive_file(&d, &err), -1,
	       "a directory as "
	       "drive");
	d.path = "/dev/null";
	is_int(vm_config_check_drive_file(&d, &err), -1,
	       "a character device is refused before it is opened");

	is_int(vm_config_check_tap(&n, &err), -1, "a TAP that does not exist");
	ok(strstr(err.msg, "network interface eth0: TAP `kilnnotap0` does "
			   "not exist") != NULL,
	   "  names it: %s", err.msg);

	v.uds_path = p[5];
	is_int(vm_config_check_vsock_path(&v, &err), 0, "a free socket path");
	v.uds_path = p[0];
	is_int(vm_config_check_vsock_path(&v, &err), -1, "a file in the way");
	ok(strstr(err.msg, "exists and is not a socket") != NULL,
	   "  says so: %s", err.msg);
	snprintf(p[6], sizeof(p[6]), "%s/no/v.sock", dir);
	v.uds_path = p[6];
	is_int(vm_config_check_vsock_path(&v, &err), -1, "no such directory");
	ok(strstr(err.msg, "directory `") && err.errnum == ENOENT,
	   "  says so: %s", err.msg);
	/* a live socket is another VMM's; a stale one is replaced at boot */
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p[7]);
	ok(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		   listen(lfd, 1) == 0,
	   "a listening socket");
	v.uds_path = p[7];
	is_int(vm_config_check_vsock_path(&v, &err), -1, "  is in use");
	ok(strstr(err.msg, "another process listens there") != NULL,
	   "  says so: %s", err.msg);
	close(lfd);
	is_int(vm_config_check_vsock_path(&v, &err), 0,
	       "  once closed, stale: replaced at InstanceStart");

	/* --config-file: the same checks, the same words */
	vm_config_init(&c);
	if (asprintf(&json,
		     "{\"boot-source\": {\"kernel_image_path\": \"%s\"},"
		     " \"drives\": [{\"drive_id\": \"data\", \"path_on_host\":"
		     " \"%s\", \"is_root_device\": false}]}",
		     p[0], p[3]) < 0)
		json = NULL;
	is_int(vm_config_parse_json(&c, json, strlen(json), &err), 0,
	       "a config file with a missing drive parses");
	is_int(vm_config_check_host(&c, &err), -1, "  and fails its check");
	ok(strstr(err.msg, "drive data: open `") && strstr(err.msg, p[3]),
	   "  naming the drive: %s", err.msg);
	free(c.drives[0].path);
	c.drives[0].path = strdup(p[0]);
	is_int(vm_config_check_host(&c, &err), 0, "  fixed, it passes");
	vm_config_destroy(&c);
	free(json);

	for (int i = 0; i < 8; i++)
		if (i == 4)
			rmdir(p[i]);
		else
			unlink(p[i]);
	rmdir(dir);
}

/* kiln's own "fs" section, its flag and its checks. */
static void check_fs(void)
{
	struct kiln_error err = { 0 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vm_config c;
	char dir[] = "/tmp/kiln-fs-XXXXXX", sock[64], file[64];
	int lfd;

	vm_config_init(&c);
	is_int(parse(&c,
		     "{\"boot-source\": {\"kernel_image_path\": \"/k\"},"
		     " \"fs\": [{\"fs_id\": \"a\", \"tag\": \"data\","
		     " \"socket_path\": \"/run/a.sock\"},"
		     " {\"fs_id\": \"b\", \"tag\": \"more\","
		     " \"socket_path\": \"/run/b.sock\", \"num_queues\": 2,"
		     " \"queue_size\": 1024}]}",
		     &err),
	       0, "an fs section parses: %s", err.msg);
	is_int(c.nfs, 2, "  two devices");
	ok(str_eq(c.fs[0].tag, "data") && c.fs[0].num_queues == 1 &&
		   c.fs[0].queue_size == VM_FS_DEFAULT_QSIZE,
	   "  defaults: 1 request queue of %d", VM_FS_DEFAULT_QSIZE);
	ok(c.fs[1].num_queues == 2 && c.fs[1].queue_size == 1024, "  given: 2 "
								  "queues of "
								  "1024");
	is_int(vm_config_validate(&c, &err), 0, "  valid");
	ok(vm_config_needs_shared_mem(&c), "  needs shared guest memory");
	free(c.fs[1].tag);
	c.fs[1].tag = strdup("data");
	is_int(vm_config_validate(&c, &err), -1, "the same tag twice");
	vm_config_destroy(&c);
	vm_config_init(&c);
	ok(!vm_config_needs_shared_mem(&c), "no fs: any memory will do");

	round_trip("{\"boot-source\": {\"kernel_image_path\": \"/k\"},"
		   " \"fs\": [{\"fs_id\": \"a\", \"tag\": \"t\","
		   " \"socket_path\": \"/s\", \"num_queues\": 3,"
		   " \"queue_size\": 64}]}",
		   "an fs entry");

	bad("{\"fs\": [{\"fs_id\": \"a\", \"cache\": \"auto\"}]}", "unknown "
								   "key "
								   "`fs[]."
								   "cache`");
	bad("{\"fs\": {\"fs_id\": \"a\"}}", "`fs` must be an array");
	bad("{\"fs\": [{\"fs_id\": \"a\", \"num_queues\": -1}]}", "out of "
								  "range");

	/* the checks of one entry */
	is_int(vm_config_add_fs(&c,
				"id=x,tag=0123456789012345678901234567"
				"890123456,socket=/s",
				&err),
	       0, "--fs parses");
	is_int(vm_config_validate_fs(&c.fs[0], &err), -1,
	       "a 37-byte tag is refused");
	ok(strstr(err.msg, "tag") != NULL, "  says so: %s", err.msg);
	c.fs[0].tag[36] = '\0';
	is_int(vm_config_validate_fs(&c.fs[0], &err), 0, "36 bytes is fine");
	c.fs[0].queue_size = 100;
	is_int(vm_config_validate_fs(&c.fs[0], &err), -1,
	       "queue_size 100 is refused");
	c.fs[0].queue_size = 2048;
	is_int(vm_config_validate_fs(&c.fs[0], &err), -1,
	       "queue_size 2048 is refused");
	c.fs[0].queue_size = 2;
	c.fs[0].num_queues = 0;
	is_int(vm_config_validate_fs(&c.fs[0], &err), -1, "0 queues refused");
	c.fs[0].num_queues = VM_FS_MAX_QUEUES + 1;
	is_int(vm_config_validate_fs(&c.fs[0], &err), -1, "%d queues refused",
	       VM_FS_MAX_QUEUES + 1);
	c.fs[0].num_queues = VM_FS_MAX_QUEUES;
	is_int(vm_config_validate_fs(&c.fs[0], &err), 0, "%d queues fine",
	       VM_FS_MAX_QUEUES);
	is_int(vm_config_add_fs(&c,
				"id=y,tag=t,socket=/s,queues=2,"
				"queue-size=256",
				&err),
	       0, "--fs with queues and queue-size");
	ok(c.fs[1].num_queues == 2 && c.fs[1].queue_size == 256, "  both "
								 "taken");
	is_int(vm_config_add_fs(&c, "id=z,cache=auto", &err), -1,
	       "--fs with an unknown option");
	vm_config_destroy(&c);

	/* the host check: a socket, never connected to */
	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(sock, sizeof(sock), "%s/fs.sock", dir);
	snprintf(file, sizeof(file), "%s/file", dir);
	close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	vm_config_init(&c);
	vm_config_add_fs(&c, "id=f,tag=t,socket=/nonexistent/fs.sock", &err);
	is_int(vm_config_check_fs_socket(&c.fs[0], &err), -1,
	       "a missing socket");
	ok(strstr(err.msg, "/nonexistent/fs.sock") && err.errnum == ENOENT,
	   "  names it: %s", err.msg);
	free(c.fs[0].socket_path);
	c.fs[0].socket_path = strdup(file);
	is_int(vm_config_check_fs_socket(&c.fs[0], &err), -1, "a regular file");
	ok(strstr(err.msg, "is not a socket") != NULL, "  says so: %s",
	   err.msg);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	ok(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		   listen(lfd, 1) == 0,
	   "a listening socket");
	free(c.fs[0].socket_path);
	c.fs[0].socket_path = strdup(sock);
	is_int(vm_config_check_fs_socket(&c.fs[0], &err), 0, "  passes");
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	is_int(accept(lfd, NULL, NULL), -1,
	       "  and the check did not connect to it");
	is_int(vm_config_check_host(&c, &err), 0, "check_host takes it");
	vm_config_destroy(&c);
	close(lfd);
	unlink(sock);
	unlink(file);
	rmdir(dir);
}

int main(void)
{
	struct kiln_error err = { 0 };
	struct vm_config c;

	vm_config_init(&c);
	is_int(parse(&c,
		     "{\"boot-source\": {\"kernel_image_path\": \"/k\","
		     " \"boot_args\": \"console=ttyS0\", \"initrd_path\": "
		     "\"/i\"},"
		     " \"machine-config\": {\"vcpu_count\": 2, "
		     "\"mem_size_mib\": 256,"
		     " \"smt\": false}, \"drives\": []}",
		     &err),
	       0, "Firecracker's shape parses");
	ok(c.kernel_path && strcmp(c.kernel_path, "/k") == 0, "kernel path");
	ok(c.initrd_path && strcmp(c.initrd_path, "/i") == 0, "initrd path");
	ok(c.cmdline && strcmp(c.cmdline, "console=ttyS0") == 0, "boot args");
	is_int(c.vcpu_count, 2, "vcpu_count");
	is_int(c.mem_mib, 256, "mem_size_mib");
	is_int(vm_config_validate(&c, &err), 0, "valid");

	c.vcpu_count = 0;
	is_int(vm_config_validate(&c, &err), -1, "0 vCPUs invalid");
	c.vcpu_count = VM_MAX_VCPUS + 1;
	is_int(vm_config_validate(&c, &err), -1, "too many vCPUs invalid");
	c.vcpu_count = 1;
	c.mem_mib = 8;
	is_int(vm_config_validate(&c, &err), -1, "8 MiB invalid");
	vm_config_destroy(&c);
	vm_config_init(&c);
	is_int(vm_config_validate(&c, &err), -1, "no kernel invalid");
	ok(strstr(err.msg, "no kernel") != NULL, "  says so: %s", err.msg);
	vm_config_destroy(&c);

	bad("{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"bogus\": 1}",
	    "unknown key `bogus`");
	bad("{\"boot-source\": {\"kernel_image_path\": \"/k\", \"x\": 1}}",
	    "unknown key `boot-source.x`");
	bad("{\"machine-config\": {\"vcpu_count\": \"2\"}}", "must be an "
							     "integer");
	bad("{\"machine-config\": {\"vcpu_count\": -1}}", "out of range");
	bad("{\"machine-config\": {\"mem_size_mib\": 1.5}}", "must be an "
							     "integer");
	bad("{\"machine-config\": {\"smt\": true}}", "not supported");
	bad("{\"boot-source\": {}}", "kernel_image_path` is missing");
	bad("{\"boot-source\": {\"kernel_image_path\": 5}}", "must be a "
							     "string");
	bad("{\"drives\": [{\"drive_id\": \"r\", \"partuuid\": \"x\"}]}", "not "
									  "supp"
									  "orte"
									  "d "
									  "ye"
									  "t");
	bad("{\"drives\": [{\"drive_id\": \"r\", \"is_read_only\": 1}]}", "must"
									  " be "
									  "a "
									  "bool"
									  "ea"
									  "n");
	bad("{\"drives\": {}}", "must be an array");
	/* Firecracker's required fields and ranges */
	bad("{\"drives\": [{\"drive_id\": \"r\", \"path_on_host\": \"/r\"}]}",
	    "`drives[].is_root_device` is missing");
	bad("{\"balloon\": {\"amount_mib\": 1, \"deflate_on_oom\": true,"
	    " \"stats_polling_interval_s\": 65536}}",
	    "out of range 0..65535");
	bad("{\"network-interfaces\": [{\"guest_mac\": \"aa:bb\"}]}", "want "
								      "XX:XX");
	bad("{\"vsock\": {\"guest_cid\": 3, \"uds\": \"/x\"}}", "unknown key "
								"`vsock.uds`");
	bad("{\"balloon\": {\"amount_mib\": -4}}", "out of range");
	bad("{\"entropy\": {\"rate_limiter\": {}}}", "not supported yet");
	bad("{\"entropy\": 1}", "must be an object");
	is_int(parse(&c, "{\"entropy\": {}}", &err), 0, "entropy {} parses");
	ok(c.entropy, "entropy enables virtio-rng");
	vm_config_destroy(&c);
	bad("{\"boot-source\": ", "invalid JSON");
	bad("[1, 2]", "top level must be an object");
	bad("", "invalid JSON");
	bad("{\"boot-source\": {\"kernel_image_path\": \"/k\"}} trailing", "inv"
									   "ali"
									   "d "
									   "JSO"
									   "N");
	{
		const char nul[] = "{\"a\":\0 1}";

		vm_config_init(&c);
		is_int(vm_config_parse_json(&c, nul, sizeof(nul) - 1, &err), -1,
		       "NUL byte refused");
		vm_config_destroy(&c);
	}
	/* devices, in Firecracker's JSON shape */
	is_int(parse(&c,
		     "{\"boot-source\": {\"kernel_image_path\": \"/k\"},"
		     " \"drives\": [{\"drive_id\": \"rootfs\", "
		     "\"path_on_host\": \"/r\","
		     " \"is_root_device\": true, \"is_read_only\": true},"
		     " {\"drive_id\": \"data\", \"path_on_host\": \"/d\","
		     " \"is_root_device\": false, \"is_read_only\": false,"
		     " \"cache_type\": \"Unsafe\", \"io_engine\": \"Sync\","
		     " \"rate_limiter\": null}],"
		     " \"network-interfaces\": [{\"iface_id\": \"eth0\","
		     " \"host_dev_name\": \"tap0\", \"guest_mac\": "
		     "\"AA:FC:00:00:00:01\"}],"
		     " \"vsock\": {\"guest_cid\": 3, \"uds_path\": "
		     "\"/tmp/v.sock\"},"
		     " \"balloon\": {\"amount_mib\": 16, \"deflate_on_oom\": "
		     "true,"
		     " \"stats_polling_interval_s\": 1}}",
		     &err),
	       0, "drives, interfaces, vsock and balloon parse");
	is_int(c.ndrives, 2, "two drives");
	ok(c.drives[0].root && c.drives[0].read_only && !c.drives[1].root,
	   "root and read-only flags");
	ok(strcmp(c.drives[1].path, "/d") == 0, "drive path");
	is_int(c.nnets, 1, "one interface");
	ok(strcmp(c.nets[0].tap, "tap0") == 0 && c.nets[0].has_mac &&
		   c.nets[0].mac[0] == 0xaa && c.nets[0].mac[5] == 1,
	   "tap name and MAC");
	ok(c.vsock.enabled && c.vsock.cid == 3 &&
		   strcmp(c.vsock.uds_path, "/tmp/v.sock") == 0,
	   "vsock");
	ok(c.balloon.enabled && c.balloon.amount_mib == 16 &&
		   c.balloon.deflate_on_oom && c.balloon.stats_interval_s == 1,
	   "balloon");
	is_int(vm_config_validate(&c, &err), 0, "valid: %s", err.msg);
	c.drives[1].root = true;
	is_int(vm_config_validate(&c, &err), -1, "two root drives invalid");
	c.drives[1].root = false;
	c.vsock.cid = 2;
	is_int(vm_config_validate(&c, &err), -1, "vsock CID 2 invalid");
	c.vsock.cid = 3;
	c.balloon.amount_mib = 129;
	is_int(vm_config_validate(&c, &err), -1,
	       "balloon above memory invalid");
	vm_config_destroy(&c);

	/* the same from command-line specs */
	vm_config_init(&c);
	c.kernel_path = strdup("/k");
	is_int(vm_config_add_drive(&c, "id=rootfs,path=/r,ro,root", &err), 0,
	       "--drive spec");
	ok(c.drives[0].read_only && c.drives[0].root &&
		   strcmp(c.drives[0].path, "/r") == 0,
	   "--drive fields");
	is_int(vm_config_add_drive(&c, "id=rootfs,path=/s", &err), 0,
	       "second --drive");
	is_int(vm_config_validate(&c, &err), -1, "duplicate drive id invalid");
	ok(strstr(err.msg, "used twice") != NULL, "  says so: %s", err.msg);
	is_int(vm_config_add_drive(&c, "id=x,path", &err), -1,
	       "path without value");
	is_int(vm_config_add_drive(&c, "id=x,ro=1", &err), -1,
	       "ro takes no value");
	/* GET /vm/config writes JSON, which holds UTF-8 only */
	is_int(vm_config_add_drive(&c, "id=x,path=/a\xff\xfe", &err), -1,
	       "--drive path that is not UTF-8 refused");
	ok(strstr(err.msg, "not valid UTF-8") != NULL, "  says so: %s",
	   err.msg);
	c.ndrives--; /* the refused entry; kiln-vmm stops there */
	free(c.drives[c.ndrives].id);
	free(c.drives[c.ndrives].path);
	memset(&c.drives[c.ndrives], 0, sizeof(c.drives[0]));
	is_int(vm_config_add_drive(&c, "id=u,path=/d \xc3\xa9", &err), 0,
	       "--drive path in UTF-8 taken");
	c.ndrives--;
	free(c.drives[c.ndrives].id);
	free(c.drives[c.ndrives].path);
	memset(&c.drives[c.ndrives], 0, sizeof(c.drives[0]));
	{
		static const char *const bad_utf8[] = {
			"/k\xc0\xaf",	      /* overlong '/' */
			"/k\xed\xa0\x80",     /* a surrogate */
			"/k\xf4\x90\x80\x80", /* past U+10FFFF */
			"/k\xe2\x82",	      /* cut short */
		};
		char *kp = c.kernel_path;

		for (size_t i = 0; i < 4; i++) {
			c.kernel_path = (char *)bad_utf8[i];
			ok(vm_config_validate(&c, &err) == -1 &&
				   strstr(err.msg, "UTF-8") != NULL,
			   "kernel path %zu not UTF-8: invalid (%s)", i,
			   err.msg);
		}
		c.kernel_path = kp;
	}
	is_int(vm_config_add_net(&c, "id=eth0,tap=tap0,mac=aa:fc:00:00:00:02",
				 &err),
	       0, "--net spec");
	is_int(vm_config_add_net(&c, "id=e,tap=a-very-long-tap-name0", &err), 0,
	       "--net with a long name parses");
	is_int(c.nets[0].queue_pairs, 0, "--net: one pair unless asked");
	ok(vm_config_add_net(&c, "id=q,tap=tq,queue_pairs=3", &err) == 0 &&
		   c.nets[2].queue_pairs == 3,
	   "--net queue_pairs=3");
	ok(vm_config_add_net(&c, "id=q0,tap=tq0,queue_pairs=0", &err) == -1 &&
		   strstr(err.msg, "queue_pairs=0"),
	   "--net queue_pairs=0 refused: %s", err.msg);
	ok(vm_config_add_net(&c, "id=q4,tap=tq4,queue_pairs=4", &err) == -1 &&
		   strstr(err.msg, "queue_pairs=4"),
	   "--net queue_pairs=4 refused: %s", err.msg);
	is_int(vm_config_set_vsock(&c, "cid=7,uds=/tmp/x", &err), 0,
	       "--vsock spec");
	is_int(c.vsock.cid, 7, "vsock cid");
	is_int(vm_config_set_vsock(&c, "cid=seven", &err), -1, "bad cid");
	is_int(vm_config_set_balloon(&c, "amount=8,deflate-on-oom,stats=2",
				     &err),
	       0, "--balloon spec");
	ok(c.balloon.amount_mib == 8 && c.balloon.deflate_on_oom &&
		   c.balloon.stats_interval_s == 2,
	   "balloon fields");
	vm_config_destroy(&c);

	/* logger and metrics */
	is_int(parse(&c,
		     "{\"logger\": {\"log_path\": \"/l\", \"level\": "
		     "\"warning\", \"show_level\": true, \"show_log_origin\": "
		     "false, \"module\": null},"
		     " \"metrics\": {\"metrics_path\": \"/m\"}}",
		     &err),
	       0, "logger and metrics parse: %s", err.msg);
	ok(strcmp(c.log_path, "/l") == 0 && c.log_level == LOG_WARN &&
		   c.show_level && !c.show_origin,
	   "logger fields");
	ok(strcmp(c.metrics_path, "/m") == 0, "metrics_path");
	vm_config_destroy(&c);
	vm_config_init(&c);
	is_int(c.log_level, -1, "no level by default");
	vm_config_destroy(&c);
	bad("{\"logger\": {\"module\": \"vmm\"}}", "module filter not "
						   "supported");
	bad("{\"logger\": {\"level\": \"Chatty\"}}", "want Error");
	bad("{\"logger\": {\"colour\": true}}", "unknown key `logger.colour`");
	bad("{\"metrics\": {}}", "`metrics.metrics_path` is missing");
	bad("{\"metrics\": []}", "must be an object");
	bad("{\"mmds-config\": {\"network_interfaces\": []}}", "not supported "
							       "yet");
	bad("{\"drive\": {}}", "unknown key `drive`");
	bad("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
	    "]]",
	    "nested deeper");
	/* yajl takes comments: a quote in one must not hide the nesting */
	bad("/* \" */ [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	    "nested deeper");
	bad("// \"\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	    "nested deeper");
	is_int(parse(&c,
		     "/* [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ \" */ {} // [[[[",
		     &err),
	       0, "brackets in comments do not count");
	vm_config_destroy(&c);
	vm_config_init(&c);

	/* JSON both ways */
	round_trip("{}", "an empty config");
	round_trip("{\"boot-source\": {\"kernel_image_path\": \"/k\"}}", "a "
									 "kerne"
									 "l "
									 "alon"
									 "e");
	round_trip("{\"boot-source\": {\"kernel_image_path\": \"/k\", "
		   "\"initrd_path\": \"/i\", \"boot_args\": \"console=ttyS0 "
		   "quiet \\\"x\\\"\"},"
		   " \"machine-config\": {\"vcpu_count\": 4, \"mem_size_mib\": "
		   "4096, \"smt\": false},"
		   " \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": "
		   "\"/r\", \"is_root_device\": true, \"is_read_only\": true},"
		   " {\"drive_id\": \"d\", \"path_on_host\": \"/d \\u00e9\","
		   " \"is_root_device\": false}],"
		   " \"network-interfaces\": [{\"iface_id\": \"eth0\", "
		   "\"host_dev_name\": \"tap0\", \"guest_mac\": "
		   "\"AA:FC:00:00:00:01\"}, {\"iface_id\": \"eth1\", "
		   "\"host_dev_name\": \"tap1\"}],"
		   " \"vsock\": {\"guest_cid\": 4294967294, \"uds_path\": "
		   "\"/v\"},"
		   " \"balloon\": {\"amount_mib\": 64, \"deflate_on_oom\": "
		   "false,"
		   " \"stats_polling_interval_s\": 0},"
		   " \"entropy\": {}, \"logger\": {\"level\": \"Trace\"},"
		   " \"metrics\": {\"metrics_path\": \"/m\"},"
		   " \"mmds-config\": null, \"cpu-config\": null}",
		   "every section");
	round_trip("{\"network-interfaces\": [{\"iface_id\": \"eth0\", "
		   "\"host_dev_name\": \"tap0\", \"queue_pairs\": 2}, "
		   "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", "
		   "\"queue_pairs\": 1}]}",
		   "queue_pairs (ours)");
	bad("{\"network-interfaces\": [{\"iface_id\": \"e\", "
	    "\"host_dev_name\": \"t\", \"queue_pairs\": 4}]}",
	    "`queue_pairs` 4 is out of range");
	bad("{\"network-interfaces\": [{\"iface_id\": \"e\", "
	    "\"host_dev_name\": \"t\", \"queue_pairs\": 0}]}",
	    "queue_pairs` must be 1 to 3");
	bad("{\"network-interfaces\": [{\"iface_id\": \"e\", "
	    "\"host_dev_name\": \"t\", \"queue_pairs\": \"2\"}]}",
	    "must be an integer");
	{
		struct vm_config w;
		char *j;

		vm_config_init(&w);
		vm_config_add_net(&w, "id=a,tap=ta", &err);
		vm_config_add_net(&w, "id=b,tap=tb,queue_pairs=1", &err);
		j = vm_config_to_json(&w);
		ok(j && strstr(j, "queue_pairs") == NULL,
		   "one pair: Firecracker's shape, no queue_pairs key: %s", j);
		free(j);
		vm_config_destroy(&w);
		vm_config_init(&w);
		j = vm_config_to_json(&w);
		ok(j && strstr(j, "\"boot-source\":null") &&
			   strstr(j, "\"drives\":[]") &&
			   strstr(j, "\"vsock\":null") &&
			   strstr(j, "\"balloon\":null") &&
			   strstr(j, "\"logger\":null") &&
			   strstr(j, "\"metrics\":null") &&
			   strstr(j, "\"entropy\":null"),
		   "absent sections are null, as Firecracker writes them: %s",
		   j);
		free(j);
		vm_config_destroy(&w);
	}

	check_boot_args();
	check_host();
	check_fs();

	vm_config_init(&c);
	is_int(vm_config_load_file(&c, "/nonexistent.json", &err), -1,
	       "missing file");
	ok(strstr(err.msg, "/nonexistent.json") != NULL, "  names it: %s",
	   err.msg);
	is_int(vm_config_load_file(&c, "/dev/null", &err), -1,
	       "not a regular file");
	vm_config_destroy(&c);
	return tap_done();
}
