/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What kiln decides before a VM exists: where the VM comes from and its
 * size, signal names, and config.json's process and mounts as the
 * agent's request (each mount mapped or refused by name).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../oci/spec.h"
#include "../../runtime/kiln.h"
#include "tap.h"

static char top[] = "/tmp/kiln-plan-XXXXXX";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

static struct oci_spec *parse(const char *json)
{
	struct kiln_error err = { 0 };
	struct oci_spec *s = oci_spec_parse(json, strlen(json), &err);

	if (s == NULL)
		printf("# parse: %s\n", err.msg);
	return s;
}

static void test_config(void)
{
	struct vm_config c;
	struct kiln_error err = { 0 };
	char path[300], msg[600];

	snprintf(path, sizeof(path), "%s/none.json", top);
	setenv("KILN_CONFIG", path, 1);
	ok(vm_config_load(&c, &err) == 0, "no config file: defaults");
	is_int(c.vcpus, 1, "default 1 vCPU");
	is_int(c.memory_mib, KILN_DEFAULT_MEM_MIB, "default memory");
	ok(strcmp(c.cache_dir, KILN_DEFAULT_CACHE) == 0, "default cache");
	ok(c.templates && c.template_dir == NULL, "templates on by default, "
						  "under --root");
	ok(!c.pod_volumes, "no pod volumes by default: pods fork");
	ok(strcmp(c.virtiofsd, KILN_DEFAULT_VIRTIOFSD) == 0, "Debian's "
							     "virtiofsd by "
							     "default");
	vm_config_clear(&c);

	snprintf(path, sizeof(path), "%s/conf.json", top);
	write_file(path, "{\"vmm\": \"/bin/true\", \"kernel\": \"/k/vmlinux\", "
			 "\"vcpus\": 3, "
			 "\"memory_mib\": 512, \"boot_timeout_s\": 9}");
	setenv("KILN_CONFIG", path, 1);
	ok(vm_config_load(&c, &err) == 0, "a config file: %s", err.msg);
	ok(strcmp(c.kernel, "/k/vmlinux") == 0, "kernel from the file");
	is_int(c.vcpus, 3, "vcpus from the file");
	is_int(c.memory_mib, 512, "memory from the file");
	is_int(c.boot_timeout_s, 9, "boot timeout from the file");
	memset(&err, 0, sizeof(err));
	ok(vm_config_check(&c, &err) < 0 && strstr(err.msg, "/k/vmlinux"),
	   "a missing kernel is one error naming it: %s", err.msg);
	vm_config_clear(&c);

	write_file(path, "{\"templates\": false, \"template_dir\": \"/t\", "
			 "\"virtiofsd\": \"/v/virtiofsd\"}");
	memset(&err, 0, sizeof(err));
	ok(vm_config_load(&c, &err) == 0 && !c.templates &&
		   strcmp(c.template_dir, "/t") == 0 &&
		   strcmp(c.virtiofsd, "/v/virtiofsd") == 0,
	   "templates off, their folder moved, virtiofsd set: %s", err.msg);
	vm_config_clear(&c);
	write_file(path, "{\"pod_volumes\": true}");
	memset(&err, 0, sizeof(err));
	ok(vm_config_load(&c, &err) == 0 && c.pod_volumes, "pod_volumes on: %s",
	   err.msg);
	vm_config_clear(&c);
	write_file(path, "{\"pod_volumes\": 1}");
	memset(&err, 0, sizeof(err));
	ok(vm_config_load(&c, &err) < 0 && strstr(err.msg, "pod_volumes"),
	   "pod_volumes must be a boolean: %s", err.msg);
	vm_config_clear(&c);
	write_file(path, "{\"templates\": \"yes\"}");
	memset(&err, 0, sizeof(err));
	ok(vm_config_load(&c, &err) < 0 && strstr(err.msg, "templates"),
	   "templates must be a boolean: %s", err.msg);
	vm_config_clear(&c);
	write_file(path, "{\"template_dir\": \"t\"}");
	memset(&err, 0, sizeof(err));
	ok(vm_config_load(&c, &err) < 0 && strstr(err.msg, "template_dir"),
	   "a relative template_dir refused: %s", err.msg);
	vm_config_clear(&c);

	write_file(path, "{\"kernel\": \"relative/vmlinux\"}");
	memset(&err, 0, sizeof(err));
	ok(vm_config_load(&c, &err) < 0 && strstr(err.msg, "kernel") &&
		   strstr(err.msg, "absolute"),
	   "a relative path refused: %s",
	   kiln_error_str(&err, msg, sizeof(msg)));
	vm_config_clear(&c);
	write_file(path, "{\"vcpus\": 0}");
	memset(&err, 0, sizeof(err));
	ok(vm_config_load(&c, &err) < 0 && strstr(err.msg, "vcpus"),
	   "0 vCPUs refused: %s", err.msg);
	vm_config_clear(&c);
	write_file(path, "{\"vcpus\": ");
	memset(&err, 0, sizeof(err));
	ok(vm_config_load(&c, &err) < 0 && strstr(err.msg, path),
	   "bad JSON names the file: %s", err.msg);
	vm_config_clear(&c);
	unsetenv("KILN_CONFIG");
}

static void test_size(void)
{
	struct oci_spec *s = parse("{\"ociVersion\": \"1.0.2\", \"root\": "
				   "{\"path\": \"r\"},"
				   " \"annotations\": {\"io.kiln.vcpus\": "
				   "\"2\"},"
				   " \"linux\": {\"resources\": {\"memory\": "
				   "{\"limit\": 104857600},"
				   " \"cpu\": {\"quota\": 150000, \"period\": "
				   "100000}}}}");
	struct vm_config c = { .vcpus = 1, .memory_mib = 256 };
	struct kiln_error err = { 0 };

	ok(s != NULL, "a spec with resources");
	if (s == NULL)
		return;
	ok(vm_config_size(&c, s, &err) == 0, "sized");
	is_int(c.memory_mib, 100 + KILN_MEM_OVERHEAD_MIB,
	       "memory limit plus the guest's overhead");
	is_int(c.vcpus, 2, "the annotation wins over a 1.5-CPU quota (2)");
	oci_spec_free(s);

	s = parse("{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"r\"},"
		  " \"linux\": {\"resources\": {\"cpu\": {\"quota\": "
		  "250000}}}}");
	c.vcpus = 1;
	ok(s != NULL && vm_config_size(&c, s, &err) == 0, "sized by quota");
	is_int(c.vcpus, 3, "a quota of 2.5 CPUs is 3 vCPUs");
	oci_spec_free(s);

	/* a pod's sandbox holds the pod: the CRI plugin's sums size it */
	s = parse("{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"r\"},"
		  " \"annotations\": {"
		  "\"io.kubernetes.cri.container-type\": \"sandbox\","
		  " \"io.kubernetes.cri.sandbox-memory\": \"536870912\","
		  " \"io.kubernetes.cri.sandbox-cpu-quota\": \"350000\","
		  " \"io.kubernetes.cri.sandbox-cpu-period\": \"100000\"}}");
	c.vcpus = 1;
	c.memory_mib = 256;
	ok(s != NULL && vm_config_size(&c, s, &err) == 0, "a pod sandbox: %s",
	   err.msg);
	is_int(c.memory_mib, 512 + KILN_MEM_OVERHEAD_MIB,
	       "the pod's memory plus the guest's overhead");
	is_int(c.vcpus, 4, "the pod's 3.5 CPUs are 4 vCPUs");
	oci_spec_free(s);
	s = parse("{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"r\"},"
		  " \"annotations\": {"
		  "\"io.kubernetes.cri.container-type\": \"sandbox\","
		  " \"io.kubernetes.cri.sandbox-memory\": \"lots\"}}");
	ok(s != NULL && vm_config_size(&c, s, &err) < 0 &&
		   strstr(err.msg, "sandbox-memory"),
	   "a bad pod size is named: %s", err.msg);
	oci_spec_free(s);
	s = parse("{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"r\"},"
		  " \"linux\": {\"resources\": {\"cpu\": {\"quota\": "
		  "100000, \"cpus\": \"0,2-3\"}}}}");
	c.vcpus = 1;
	ok(s != NULL && vm_config_size(&c, s, &err) == 0, "sized by cpuset");
	is_int(c.vcpus, 4, "cpuset 0,2-3 needs CPUs up to 3: 4 vCPUs");
	oci_spec_free(s);
	s = parse("{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"r\"},"
		  " \"linux\": {\"resources\": {\"cpu\": {\"cpus\": "
		  "\"0-x\"}}}}");
	ok(s != NULL && vm_config_size(&c, s, &err) < 0 &&
		   strstr(err.msg, "linux.resources.cpu.cpus"),
	   "a bad cpuset is named: %s", err.msg);
	oci_spec_free(s);
	s = parse("{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"r\"},"
		  " \"linux\": {\"resources\": {\"cpu\": {\"cpus\": "
		  "\"40\"}}}}");
	ok(s != NULL && vm_config_size(&c, s, &err) < 0 &&
		   strstr(err.msg, "beyond"),
	   "a cpuset beyond a VM's vCPUs is named: %s", err.msg);
	oci_spec_free(s);
	s = parse("{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"r\"},"
		  " \"annotations\": {\"io.kiln.memory_mib\": \"lots\"}}");
	memset(&err, 0, sizeof(err));
	ok(s != NULL && vm_config_size(&c, s, &err) < 0 &&
		   strstr(err.msg, "io.kiln.memory_mib"),
	   "a bad annotation is named: %s", err.msg);
	oci_spec_free(s);
}

static void test_signals(void)
{
	struct kiln_error err = { 0 };

	is_int(cli_signal("KILL", &err), SIGKILL, "KILL");
	is_int(cli_signal("SIGTERM", &err), SIGTERM, "SIGTERM");
	is_int(cli_signal("10", &err), 10, "10");
	ok(cli_signal("SIGFOO", &err) < 0 && strstr(err.msg, "SIGFOO"),
	   "unknown signal named: %s", err.msg);
	ok(cli_signal("0", &err) < 0, "0 refused");
	ok(cli_signal("65", &err) < 0, "65 refused");
}

static const char *mount_spec_fmt = "{\"ociVersion\": \"1.0.2\", \"root\": "
				    "{\"path\": \"r\"},"
				    " \"process\": {\"args\": [\"sh\"], "
				    "\"cwd\": \"/\","
				    "  \"user\": {\"uid\": 1, \"gid\": 2}, "
				    "\"terminal\": true},"
				    " \"mounts\": [%s]}";

/* request_mounts over one spec; 0 or -1 with err. */
static int map(const char *mounts, Kiln__Agent__V1__CreateContainerRequest *req,
	       struct agent_request *r, struct vm_plan *plan,
	       struct oci_spec **out, struct kiln_error *err)
{
	char json[4096], cache[300];

	snprintf(json, sizeof(json), mount_spec_fmt, mounts);
	snprintf(cache, sizeof(cache), "%s/cache", top);
	*out = parse(json);
	if (*out == NULL)
		return -2;
	kiln__agent__v1__create_container_request__init(req);
	memset(err, 0, sizeof(*err));
	return request_mounts(r, *out, plan, cache, req, err);
}

/* A writable bind of source. */
static int map_bind(const char *source,
		    Kiln__Agent__V1__CreateContainerRequest *req,
		    struct agent_request *r, struct vm_plan *plan,
		    struct oci_spec **out, struct kiln_error *err)
{
	char m[1024];

	snprintf(m, sizeof(m),
		 "{\"destination\": \"/cache\", \"type\": \"bind\", "
		 "\"source\": \"%s\", \"options\": [\"rbind\", \"rw\"]}",
		 source);
	return map(m, req, r, plan, out, err);
}

#define EMPTY_DIR \
	"/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/cache-vol"

static void test_mounts(void)
{
	Kiln__Agent__V1__CreateContainerRequest req;
	struct agent_request r = { 0 };
	struct vm_plan plan = { 0 };
	struct oci_spec *s = NULL;
	struct kiln_error err;
	char m[2048], hosts[300], dir[300];
	Kiln__Agent__V1__Process p;

	snprintf(hosts, sizeof(hosts), "%s/hosts", top);
	write_file(hosts, "127.0.0.1 localhost\n");
	snprintf(dir, sizeof(dir), "%s/dir", top);
	mkdir(dir, 0755);

	ok(map("{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": "
	       "\"proc\"},"
	       "{\"destination\": \"/dev/shm\", \"type\": \"bind\", "
	       "\"source\": \"/tmp\", \"options\": [\"rbind\"]},"
	       "{\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", "
	       "\"source\": \"cgroup\", \"options\": [\"ro\"]},"
	       "{\"destination\": \"/run\", \"type\": \"tmpfs\", \"source\": "
	       "\"tmpfs\", \"options\": [\"size=1m\", \"tmpcopyup\"]}",
	       &req, &r, &plan, &s, &err) == 0,
	   "defaults, docker's /dev/shm, cgroup, tmpfs: %s", err.msg);
	is_int(req.n_mounts, 2, "the agent's own mounts are left to it");
	if (req.n_mounts == 2) {
		ok(strcmp(req.mounts[0]->type, "cgroup2") == 0, "cgroup "
								"becomes the "
								"guest's "
								"cgroup2");
		ok(strcmp(req.mounts[1]->type, "tmpfs") == 0 &&
			   req.mounts[1]->n_options == 1,
		   "tmpfs passes with its options, less podman's tmpcopyup");
	}
	ok(request_process(&r, s->process, &p, &err) == 0 && p.user->uid == 1 &&
		   p.user->gid == 2 && p.terminal,
	   "process: user and terminal");
	agent_request_free(&r);
	oci_spec_free(s);

	snprintf(m, sizeof(m),
		 "{\"destination\": \"/etc/hosts\", \"type\": \"bind\", "
		 "\"source\": \"%s\", \"options\": [\"rbind\", \"ro\"]}",
		 hosts);
	ok(map(m, &req, &r, &plan, &s, &err) == 0, "a file bind: %s", err.msg);
	ok(req.n_mounts == 1 && req.mounts[0]->has_data &&
		   req.mounts[0]->data.len == 20 &&
		   memcmp(req.mounts[0]->data.data, "127.0.0.1", 9) == 0,
	   "its content travels in the request");
	agent_request_free(&r);
	oci_spec_free(s);

	/* a writable host directory: virtio-fs, one device each */
	snprintf(m, sizeof(m),
		 "{\"destination\": \"/data\", \"type\": \"bind\", "
		 "\"source\": \"%s\", \"options\": [\"rbind\", \"rw\", "
		 "\"nosuid\", \"rprivate\"]},"
		 "{\"destination\": \"/data2\", \"type\": \"bind\", "
		 "\"source\": \"%s\", \"options\": [\"bind\"]}",
		 dir, dir);
	ok(map(m, &req, &r, &plan, &s, &err) == 0,
	   "writable directory binds: %s", err.msg);
	ok(req.n_mounts == 2 && plan.n_fs == 2 && plan.n_drives == 0 &&
		   strcmp(plan.fs_source[0], dir) == 0 &&
		   strcmp(plan.fs_source[1], dir) == 0,
	   "each is a virtio-fs device of the plan, no drive");
	ok(req.n_mounts == 2 && strcmp(req.mounts[0]->type, "virtiofs") == 0 &&
		   strcmp(req.mounts[0]->source, VM_FS_TAG "0") == 0 &&
		   strcmp(req.mounts[0]->destination, "/data") == 0 &&
		   strcmp(req.mounts[1]->source, VM_FS_TAG "1") == 0,
	   "mounted by its tag as virtiofs (%s)",
	   req.n_mounts ? req.mounts[0]->source : "");
	ok(req.n_mounts == 2 && req.mounts[0]->n_options == 3 &&
		   strcmp(req.mounts[0]->options[0], "rw") == 0 &&
		   strcmp(req.mounts[0]->options[1], "nosuid") == 0 &&
		   strcmp(req.mounts[0]->options[2], "rprivate") == 0 &&
		   req.mounts[1]->n_options == 0,
	   "its options less the bind ones");
	agent_request_free(&r);
	oci_spec_free(s);
	ok(template_pick(&plan, top) < 0 && plan.template_dir == NULL,
	   "such a VM is never a fork of a template");
	vm_plan_clear(&plan);
	ok(plan.n_fs == 0, "cleared");
	{
		char many[4096];
		size_t n = 0;

		for (int i = 0; i <= VM_FS_MAX; i++)
			n += (size_t)snprintf(many + n, sizeof(many) - n,
					      "%s{\"destination\": \"/d%d\", "
					      "\"type\": "
					      "\"bind\", \"source\": \"%s\"}",
					      i ? "," : "", i, dir);
		ok(map(many, &req, &r, &plan, &s, &err) < 0 &&
			   strstr(err.msg, "/d4") &&
			   strstr(err.msg, "more than"),
		   "more than %d: refused by name: %s", VM_FS_MAX, err.msg);
		agent_request_free(&r);
		oci_spec_free(s);
		vm_plan_clear(&plan);
	}
	/* a pod's VM is up already: no device to add */
	plan.member = true;
	ok(map(m, &req, &r, &plan, &s, &err) < 0 && strstr(err.msg, "/data") &&
		   strstr(err.msg, "pod") && plan.n_fs == 0,
	   "in a pod: refused by name: %s", err.msg);
	plan.member = false;
	agent_request_free(&r);
	oci_spec_free(s);

	/* a pod's emptyDir: the guest's, shared by the pod's containers */
	plan.member = true;
	ok(map_bind(EMPTY_DIR, &req, &r, &plan, &s, &err) == 0 &&
		   req.n_mounts == 1 &&
		   strcmp(req.mounts[0]->type, "bind") == 0 &&
		   strcmp(req.mounts[0]->source, AGENT_VOLUMES "/cache-vol") ==
			   0 &&
		   plan.n_drives == 0,
	   "a pod's emptyDir is a guest directory: %s",
	   req.n_mounts ? req.mounts[0]->source : err.msg);
	agent_request_free(&r);
	oci_spec_free(s);
	ok(map_bind("/x/kubernetes.io~empty-dir/a/b", &req, &r, &plan, &s,
		    &err) < 0 &&
		   strstr(err.msg, "not a volume name"),
	   "an emptyDir path that is not one volume: refused: %s", err.msg);
	plan.member = false;
	agent_request_free(&r);
	oci_spec_free(s);
	ok(map_bind(EMPTY_DIR, &req, &r, &plan, &s, &err) < 0,
	   "outside a pod, such a path is a host directory as any: %s",
	   err.msg);
	agent_request_free(&r);
	oci_spec_free(s);

	snprintf(m, sizeof(m),
		 "{\"destination\": \"/share\", \"type\": \"bind\", "
		 "\"source\": \"%s\", \"options\": [\"rbind\", \"ro\"]}",
		 dir);
	ok(map(m, &req, &r, &plan, &s, &err) == 0, "a read-only dir bind: %s",
	   err.msg);
	ok(req.n_mounts == 1 && strcmp(req.mounts[0]->type, "erofs") == 0 &&
		   strcmp(req.mounts[0]->source, "/dev/vda") == 0 &&
		   req.mounts[0]->n_options == 1 &&
		   strcmp(req.mounts[0]->options[0], "ro") == 0 &&
		   plan.n_drives == 1,
	   "becomes its image on a drive, mounted read-only, not bound");
	agent_request_free(&r);
	oci_spec_free(s);
	vm_plan_clear(&plan);

	ok(map("{\"destination\": \"/x\", \"type\": \"bind\", \"source\": "
	       "\"/nonexistent-kiln\", \"options\": [\"rbind\"]}",
	       &req, &r, &plan, &s, &err) < 0 &&
		   strstr(err.msg, "/nonexistent-kiln"),
	   "a missing bind source is named: %s", err.msg);
	agent_request_free(&r);
	oci_spec_free(s);

	ok(map("{\"destination\": \"/n\", \"type\": \"bind\", \"source\": "
	       "\"/dev/null\", \"options\": [\"rbind\"]}",
	       &req, &r, &plan, &s, &err) < 0 &&
		   strstr(err.msg, "/dev/null"),
	   "a device bind is refused: %s", err.msg);
	agent_request_free(&r);
	oci_spec_free(s);
	vm_plan_clear(&plan);
}

static void test_rootfs_image(void)
{
	struct oci_spec *s = parse("{\"ociVersion\": \"1.0.2\", \"root\": "
				   "{\"path\": \"img\", \"readonly\": true}}");
	Kiln__Agent__V1__Rootfs rf;
	struct agent_request r = { 0 };
	struct vm_plan plan = { 0 };
	struct kiln_error err = { 0 };
	char img[300], cache[300];
	unsigned char sb[2048] = { 0 };
	int fd;

	snprintf(img, sizeof(img), "%s/img", top);
	snprintf(cache, sizeof(cache), "%s/cache", top);
	fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	sb[1080] = 0x53;
	sb[1081] = 0xEF; /* ext4's magic */
	ok(write(fd, sb, sizeof(sb)) == sizeof(sb), "an image file");
	close(fd);
	ok(rootfs_plan(&r, s, img, &plan, cache, &rf, &err) == 0,
	   "an ext4 image is attached: %s", err.msg);
	ok(strcmp(rf.fstype, "ext4") == 0 && rf.readonly &&
		   plan.n_drives == 1 && plan.drive_ro[0] &&
		   strcmp(plan.drive_path[0], img) == 0,
	   "as it is, read-only for root.readonly");
	ok(strcmp(rf.device, "/dev/vda") == 0 && rf.size == 2048 &&
		   plan.drive_bytes[0] == 2048,
	   "on the first drive, its size told to the guest (%s, %llu)",
	   rf.device, (unsigned long long)rf.size);
	agent_request_free(&r);
	vm_plan_clear(&plan);
	memset(sb, 0, sizeof(sb));
	fd = open(img, O_WRONLY | O_TRUNC);
	ok(write(fd, sb, sizeof(sb)) == sizeof(sb), "a file of zeros");
	close(fd);
	ok(rootfs_plan(&r, s, img, &plan, cache, &rf, &err) < 0 &&
		   strstr(err.msg, "ext4 or erofs"),
	   "neither ext4 nor erofs: refused: %s", err.msg);
	agent_request_free(&r);
	vm_plan_clear(&plan);
	oci_spec_free(s);
}

/* ---- pods ---------------------------------------------------------- */

/* A kiln-vmm API that answers 204 to n requests and keeps them, and
 * the inode of the fd each came with (0: none). */
struct fake_api {
	int fd, n;
	char reqs[8][1024];
	ino_t ino[8];
	int acc[8]; /* the fd's O_ACCMODE */
};

static void *fake_api_main(void *arg)
{
	struct fake_api *f = arg;

	for (int i = 0; i < f->n; i++) {
		int c = accept(f->fd, NULL, NULL);
		ssize_t got = 0, r;

		if (c < 0)
			break;
		/* headers and the body: the request fits one read or two */
		for (;;) {
			union {
				struct cmsghdr h;
				char buf[CMSG_SPACE(sizeof(int))];
			} ctl;
			struct iovec iov = { .iov_base = f->reqs[i] + got,
					     .iov_len = sizeof(f->reqs[i]) - 1 -
							(size_t)got };
			struct msghdr mh = { .msg_iov = &iov,
					     .msg_iovlen = 1,
					     .msg_control = ctl.buf,
					     .msg_controllen =
						     sizeof(ctl.buf) };
			struct cmsghdr *cm;
			struct stat st;
			int fd;

			r = recvmsg(c, &mh, MSG_CMSG_CLOEXEC);
			if (r <= 0)
				break;
			cm = CMSG_FIRSTHDR(&mh);
			if (cm != NULL && cm->cmsg_type == SCM_RIGHTS) {
				memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
				if (fstat(fd, &st) == 0)
					f->ino[i] = st.st_ino;
				f->acc[i] = fcntl(fd, F_GETFL) & O_ACCMODE;
				close(fd);
			}
			got += r;
			f->reqs[i][got] = '\0';
			if (strchr(f->reqs[i], '}') != NULL)
				break;
		}
		(void)!write(c, "HTTP/1.1 204 No Content\r\n\r\n", 27);
		close(c);
	}
	return NULL;
}

static void test_pod(void)
{
	struct oci_spec *sb = parse("{\"ociVersion\": \"1.0.2\", \"root\": "
				    "{\"path\": \"r\"}, \"annotations\": "
				    "{\"io.kubernetes.cri.container-type\": "
				    "\"sandbox\", "
				    "\"io.kubernetes.cri.sandbox-id\": "
				    "\"p1\"}}");
	struct oci_spec *ctr = parse("{\"ociVersion\": \"1.0.2\", \"root\": "
				     "{\"path\": \"r\"}, \"annotations\": "
				     "{\"io.kubernetes.cri.container-type\": "
				     "\"container\", "
				     "\"io.kubernetes.cri.sandbox-id\": "
				     "\"p1\"}}");
	struct oci_spec *plain = parse("{\"ociVersion\": \"1.0.2\", \"root\": "
				       "{\"path\": \"r\"}}");
	struct vm_plan plan = { 0 };
	struct agent_request r = { 0 };
	struct pod_slots ps;
	struct kiln_error err = { 0 };
	struct fake_api f = { .n = 3 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char reply[256], cwd[300], *dev[2];
	size_t slots[2] = { 5, 7 };
	pthread_t t;

	ok(pod_is_sandbox(sb) && pod_sandbox_id(sb) == NULL, "CRI's sandbox: a "
							     "VM of its own, "
							     "slots kept");
	ok(!pod_is_sandbox(ctr) && pod_sandbox_id(ctr) != NULL &&
		   strcmp(pod_sandbox_id(ctr), "p1") == 0,
	   "CRI's container: joins its sandbox's VM");
	ok(!pod_is_sandbox(plain) && pod_sandbox_id(plain) == NULL, "no "
								    "annotation"
								    "s: a VM "
								    "of its "
								    "own");

	/* a member's two drives, moved into slots 5 and 7 */
	dev[0] = vm_plan_drive(&plan, &r, "/etc/hostname", true, &err);
	dev[1] = vm_plan_drive(&plan, &r, "/etc/passwd", false, &err);
	ok(dev[0] && dev[1] && strcmp(dev[1], "/dev/vdb") == 0, "drives are "
								"named in "
								"order");
	vm_plan_move(&plan, slots);
	ok(strcmp(dev[0], "/dev/vdf") == 0 && strcmp(dev[1], "/dev/vdh") == 0,
	   "moved into slots 5 and 7, the request's names follow (%s %s)",
	   dev[0], dev[1]);
	agent_request_free(&r);
	vm_plan_clear(&plan);

	/* the sandbox's table: its own drive is slot 0 */
	plan.n_drives = 1;
	pod_slots_init(&ps, &plan);
	plan.n_drives = 0;
	ok(pod_ctl(&ps, "slots 2 a", reply, sizeof(reply), &err) == 1 &&
		   strcmp(reply, "ok 1 2\n") == 0,
	   "two slots for a: %s", reply);
	ok(pod_ctl(&ps, "slots 6 b", reply, sizeof(reply), &err) < 0 &&
		   strstr(err.msg, "5 free drive slots"),
	   "more than are free: refused by count: %s", err.msg);
	ok(pod_ctl(&ps, "slots 5 b", reply, sizeof(reply), &err) == 1 &&
		   strcmp(reply, "ok 3 4 5 6 7\n") == 0,
	   "the rest for b: %s", reply);
	ok(pod_ctl(&ps, "kill 9 0", reply, sizeof(reply), &err) == 0, "other "
								      "requests"
								      " are "
								      "not the "
								      "pod's");

	/* a's release puts the placeholder back through the API */
	ok(getcwd(cwd, sizeof(cwd)) != NULL && chdir(top) == 0, "in a dir");
	f.fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", VM_API);
	ok(bind(f.fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		   listen(f.fd, 4) == 0 &&
		   pthread_create(&t, NULL, fake_api_main, &f) == 0,
	   "a fake kiln-vmm API");
	/* the files go as fds (the jailed VMM sees no path): they exist */
	close(open(VM_SLOT, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
	close(open("a \"quoted\"\\path", O_RDWR | O_CREAT | O_CLOEXEC, 0600));
	ok(pod_drive_swap(VM_API, 3, "missing.img", true, &err) < 0 &&
		   strstr(err.msg, "missing.img"),
	   "a missing file: refused before any request: %s", err.msg);
	ok(pod_ctl(&ps, "release a", reply, sizeof(reply), &err) == 1, "a "
								       "release"
								       "d");
	ok(pod_drive_swap(VM_API, 3, "a \"quoted\"\\path", false, &err) == 0,
	   "a swap: %s", err.msg);
	pthread_join(t, NULL);
	close(f.fd);
	unlink(VM_API);
	ok(strstr(f.reqs[0], "PATCH /drives/d1 ") &&
		   strstr(f.reqs[0], "/" VM_SLOT "\", ") &&
		   strstr(f.reqs[0], "\"is_read_only\": false") &&
		   strstr(f.reqs[1], "PATCH /drives/d2 "),
	   "each of a's slots back to the placeholder: %s",
	   strstr(f.reqs[0], "{"));
	ok(f.ino[0] != 0 && f.ino[0] == f.ino[1] && f.acc[0] == O_RDWR,
	   "  sent as a read-write fd of the placeholder");
	ok(strstr(f.reqs[2], "/a \\\"quoted\\\"\\\\path\"") &&
		   strstr(f.reqs[2], "\"path_on_host\": \"/") &&
		   strstr(f.reqs[2], "\"is_read_only\": false"),
	   "a path is made absolute and quoted as JSON: %s",
	   strstr(f.reqs[2], "{"));
	ok(f.ino[2] != 0 && f.ino[2] != f.ino[0] && f.acc[2] == O_RDWR,
	   "  and its file sent as a read-write fd");
	ok(pod_ctl(&ps, "slots 2 c", reply, sizeof(reply), &err) == 1 &&
		   strcmp(reply, "ok 1 2\n") == 0,
	   "a's slots serve again: %s", reply);
	ok(chdir(cwd) == 0, "back");
	oci_spec_free(sb);
	oci_spec_free(ctr);
	oci_spec_free(plain);
}

/* ---- pod volumes ----------------------------------------------------- */

static struct oci_spec *pod_spec(const char *type, const char *extra)
{
	char json[1024];

	snprintf(json, sizeof(json),
		 "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"r\"}, "
		 "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"}, "
		 "\"annotations\": {\"io.kubernetes.cri.container-type\": "
		 "\"%s\", \"io.kubernetes.cri.sandbox-id\": \"sb\"%s}}",
		 type, extra);
	return parse(json);
}

/* io.kiln.volume-cache: virtiofsd's cache options per container */
static struct oci_spec *cache_spec(const char *value)
{
	char json[256];

	snprintf(json, sizeof(json),
		 "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": "
		 "\"r\"}%s%s%s}",
		 value ? ", \"annotations\": {\"io.kiln.volume-cache\": \""
		       : "",
		 value ? value : "", value ? "\"}" : "");
	return parse(json);
}

static bool args_are(const char *const *a, const char *want)
{
	char got[128] = "";

	for (size_t i = 0; a[i] != NULL; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s",
			 i ? " " : "", a[i]);
	return strcmp(got, want) == 0;
}

static void test_volume_cache(void)
{
	struct oci_spec *none = cache_spec(NULL), *fast = cache_spec("fast");
	struct oci_spec *coh = cache_spec("coherent"), *bad = cache_spec("Fas"
									 "t");
	struct vm_plan plan = { .fs_fast = true };
	struct kiln_error err = { 0 };

	ok(request_volume_cache(none, &plan, &err) == 0 && !plan.fs_fast,
	   "no annotation: coherent");
	ok(args_are(vm_fs_cache_args(&plan), "-o cache=auto -o timeout=0"),
	   "... virtiofsd keeps no attribute or entry");
	ok(request_volume_cache(fast, &plan, &err) == 0 && plan.fs_fast, "fas"
									 "t");
	ok(args_are(vm_fs_cache_args(&plan), "-o cache=auto"), "... "
							       "cache=auto's "
							       "own timeouts");
	ok(request_volume_cache(coh, &plan, &err) == 0 && !plan.fs_fast, "coher"
									 "ent, "
									 "sai"
									 "d");
	ok(request_volume_cache(bad, &plan, &err) < 0 && !plan.fs_fast &&
		   strstr(err.msg, "io.kiln.volume-cache is `Fast`") != NULL,
	   "anything else is refused by name: %s", err.msg);
	oci_spec_free(none);
	oci_spec_free(fast);
	oci_spec_free(coh);
	oci_spec_free(bad);
}

static void test_podfs_wanted(void)
{
	struct vm_config off = { 0 }, on = { .pod_volumes = true };
	struct oci_spec *sb = pod_spec("sandbox", "");
	struct oci_spec *yes = pod_spec("sandbox", ", \"io.kiln.pod-volumes\": "
						   "\"true\"");
	struct oci_spec *no = pod_spec("sandbox", ", \"io.kiln.pod-volumes\": "
						  "\"false\"");
	struct oci_spec *bad = pod_spec("sandbox", ", \"io.kiln.pod-volumes\": "
						   "\"1\"");
	struct oci_spec *member = pod_spec("container", ", "
							"\"io.kiln.pod-"
							"volumes\": \"true\"");
	struct kiln_error err = { 0 };
	bool w = true;

	ok(podfs_wanted(&off, sb, &w, &err) == 0 && !w, "a sandbox: no pod "
							"volumes by default");
	ok(podfs_wanted(&on, sb, &w, &err) == 0 && w, "... with the config's "
						      "pod_volumes: yes");
	ok(podfs_wanted(&off, yes, &w, &err) == 0 && w, "... or its "
							"annotation");
	ok(podfs_wanted(&on, no, &w, &err) == 0 && !w, "the annotation's false "
						       "wins over the config");
	ok(podfs_wanted(&on, bad, &w, &err) < 0 && strstr(err.msg, "io.kiln."
								   "pod-"
								   "volumes"),
	   "neither true nor false: refused by name: %s", err.msg);
	ok(podfs_wanted(&on, member, &w, &err) == 0 && !w, "a member: never "
							   "(its sandbox's VM "
							   "has the device or "
							   "not)");
	oci_spec_free(sb);
	oci_spec_free(yes);
	oci_spec_free(no);
	oci_spec_free(bad);
	oci_spec_free(member);
}

/* Lines of our mountinfo whose mount point starts with prefix. */
static int mounts_under(const char *prefix)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], point[PATH_MAX];
	int n = 0;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1 &&
		    strncmp(point, prefix, strlen(prefix)) == 0)
			n++;
	if (f != NULL)
		fclose(f);
	return n;
}

/* The mount at point is read-only (its per-mount options). */
static bool mount_ro(const char *point)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], at[PATH_MAX], opts[256];
	bool ro = false;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%*s %*s %*s %*s %4095s %255s", at, opts) ==
			    2 &&
		    strcmp(at, point) == 0)
			ro = strncmp(opts, "ro", 2) == 0 &&
			     (opts[2] == ',' || opts[2] == '\0');
	if (f != NULL)
		fclose(f);
	return ro;
}

/*
 * The host side of pod volumes, in a mount namespace of our own: the
 * sandbox's folder, a member's binds (ro ones read-only on the host too)
 * as the request names them, and nothing left after unbind and remove.
 */
static void test_podfs_mounts(void)
{
	Kiln__Agent__V1__CreateContainerRequest req;
	struct agent_request r = { 0 };
	struct vm_plan sb = { 0 }, mem = { 0 };
	struct oci_spec *s = NULL;
	struct kiln_error err = { 0 };
	char dir[300], sbdir[320], memdir[320], vol[300], ro[300], m[2048];
	char podfs[PATH_MAX], at[PATH_MAX + 64], old[PATH_MAX];
	int memfd;

	if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		tap_skip("not root, or no mount namespace: pod volume mounts");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/podroot", top);
	snprintf(sbdir, sizeof(sbdir), "%s/sb", dir);
	snprintf(memdir, sizeof(memdir), "%s/m1", dir);
	snprintf(vol, sizeof(vol), "%s/vol", top);
	snprintf(ro, sizeof(ro), "%s/cfg", top);
	mkdir(dir, 0700);
	mkdir(sbdir, 0700);
	mkdir(memdir, 0700);
	mkdir(vol, 0755);
	mkdir(ro, 0755);
	snprintf(at, sizeof(at), "%s/f", ro);
	write_file(at, "v1\n");
	if (getcwd(old, sizeof(old)) == NULL || chdir(sbdir) < 0)
		return;
	ok(podfs_prepare(&sb, &err) == 0 && sb.podfs_dev && sb.n_fs == 1 &&
		   strcmp(sb.fs_source[0], sb.podfs) == 0,
	   "the sandbox's folder: its VM's fs 0: %s", err.msg);
	if (chdir(old) < 0 || sb.podfs == NULL)
		return;
	snprintf(podfs, sizeof(podfs), "%s", sb.podfs);
	is_int(mounts_under(podfs), 1, "... a mount of its own");

	memfd = open(memdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ok(podfs_find(&mem, memfd, "sb", &err) == 0 && mem.podfs != NULL &&
		   strcmp(mem.podfs, podfs) == 0,
	   "a member finds its sandbox's folder: %s", err.msg);
	mem.member = true;
	mem.podfs_id = "m1";
	kiln__agent__v1__create_container_request__init(&req);
	snprintf(m, sizeof(m),
		 "{\"destination\": \"/data\", \"type\": \"bind\", "
		 "\"source\": \"%s\", \"options\": [\"rbind\", \"rw\"]},"
		 "{\"destination\": \"/cfg\", \"type\": \"bind\", "
		 "\"source\": \"%s\", \"options\": [\"rbind\", \"ro\"]}",
		 vol, ro);
	ok(map(m, &req, &r, &mem, &s, &err) == 0 && req.n_mounts == 2 &&
		   strcmp(req.mounts[0]->type, "bind") == 0 &&
		   strcmp(req.mounts[0]->source, AGENT_PODFS "/m1/0") == 0 &&
		   strcmp(req.mounts[1]->source, AGENT_PODFS "/m1/1") == 0 &&
		   mem.n_fs == 0 && mem.n_drives == 0,
	   "a member's writable and read-only binds: sub-folders of the "
	   "share, no device, no image: %s",
	   err.msg);
	ok(req.n_mounts == 2 && req.mounts[1]->n_options == 2 &&
		   strcmp(req.mounts[1]->options[1], "ro") == 0,
	   "... the guest binds with the options asked");
	is_int(mounts_under(podfs), 3, "... each a bind under the folder");
	snprintf(at, sizeof(at), "%s/m1/1", podfs);
	ok(mount_ro(at), "... the read-only one read-only on the host too");
	snprintf(at, sizeof(at), "%s/m1/1/f", podfs);
	ok(open(at, O_WRONLY | O_CLOEXEC) < 0 && errno == EROFS, "... a write "
								 "there "
								 "refused "
								 "(EROFS)");
	snprintf(at, sizeof(at), "%s/m1/0", podfs);
	ok(!mount_ro(at), "... the writable one writable");
	agent_request_free(&r);
	oci_spec_free(s);
	/* a create of the same id again: the old binds replaced */
	ok(map(m, &req, &r, &mem, &s, &err) == 0, "mapped again: %s", err.msg);
	is_int(mounts_under(podfs), 3, "... no bind stacked");
	agent_request_free(&r);
	oci_spec_free(s);
	podfs_unbind_member(memfd, "sb", "m1");
	is_int(mounts_under(podfs), 1, "the member's unbind: its binds gone");
	snprintf(at, sizeof(at), "%s/m1", podfs);
	ok(access(at, F_OK) < 0 && errno == ENOENT, "... and its folder");
	snprintf(at, sizeof(at), "%s/f", ro);
	ok(access(at, F_OK) == 0, "... the host's files kept");
	/* another member's binds, left for the sandbox's end */
	mem.podfs_id = "m2";
	ok(map(m, &req, &r, &mem, &s, &err) == 0, "a second member: %s",
	   err.msg);
	agent_request_free(&r);
	oci_spec_free(s);
	podfs_remove(sbdir);
	is_int(mounts_under(podfs), 0, "the sandbox's end: no mount left");
	ok(access(podfs, F_OK) < 0 && errno == ENOENT, "... nor its folder");
	ok(access(at, F_OK) == 0, "... the host's files kept");
	close(memfd);
	vm_plan_clear(&mem);
	vm_plan_clear(&sb);
}

/*
 * The streams of a guest process: a terminal's two, else each of fds
 * 0-2 but /dev/null. The fds are swapped for the call (no output then).
 */
static void test_stdio_request(void)
{
	Kiln__Agent__V1__Process p = KILN__AGENT__V1__PROCESS__INIT;
	struct stdio_set io = { 0 };
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int saved[3], pipe_fds[2];
	bool terminal[3], plain[3], all[3];

	if (null < 0 || pipe(pipe_fds) < 0) {
		ok(false, "stdio: /dev/null and a pipe");
		return;
	}
	fflush(stdout);
	for (int i = 0; i < 3; i++)
		saved[i] = dup(i);
	dup2(null, 0);
	dup2(pipe_fds[1], 1);
	dup2(null, 2);
	stdio_request(&io, false, &p);
	memcpy(plain, io.streams, sizeof(plain));
	plain[0] = plain[0] || p.stdin;
	plain[1] = plain[1] && p.stdout;
	plain[2] = plain[2] || p.stderr;
	stdio_request(&io, true, &p);
	memcpy(terminal, io.streams, sizeof(terminal));
	terminal[0] = terminal[0] && p.stdin;
	terminal[1] = terminal[1] && p.stdout;
	terminal[2] = terminal[2] || p.stderr;
	dup2(pipe_fds[1], 0);
	dup2(pipe_fds[1], 2);
	stdio_request(&io, false, &p);
	for (int i = 0; i < 3; i++) {
		all[i] = io.streams[i];
		dup2(saved[i], i);
		close(saved[i]);
	}
	close(null);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	ok(!plain[0] && plain[1] && !plain[2], "stdio: /dev/null as stdin and "
					       "stderr is no stream, a pipe "
					       "is");
	ok(terminal[0] && terminal[1] && !terminal[2], "stdio: a terminal is "
						       "two streams, whatever "
						       "fds 0-2 are");
	ok(all[0] && all[1] && all[2] && p.stdin && p.stdout && p.stderr,
	   "stdio: pipes are three streams");
}

/* A template's drive slots: two for a container of one or two drives,
 * VM_DRIVES_MAX for more and for a pod's sandbox, whose free slots take
 * its members' rootfs. */
static void test_template_slots(void)
{
	struct vm_plan p = { 0 };

	p.n_drives = 1;
	ok(template_slots(&p) == 2, "one drive: a template of 2 slots");
	p.n_drives = 2;
	ok(template_slots(&p) == 2, "two drives: 2 slots");
	p.n_drives = 3;
	ok(template_slots(&p) == VM_DRIVES_MAX, "three drives: %d slots",
	   VM_DRIVES_MAX);
	p.n_drives = 1;
	p.pod = true;
	ok(template_slots(&p) == VM_DRIVES_MAX,
	   "a pod's sandbox of one drive: %d slots", VM_DRIVES_MAX);
}

int main(void)
{
	char cmd[400];

	if (mkdtemp(top) == NULL)
		return 1;
	test_config();
	test_size();
	test_signals();
	test_mounts();
	test_rootfs_image();
	test_pod();
	test_volume_cache();
	test_podfs_wanted();
	test_podfs_mounts();
	test_stdio_request();
	test_template_slots();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", top);
	return tap_done();
}
