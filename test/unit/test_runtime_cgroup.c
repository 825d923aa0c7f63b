/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM's host cgroup: runc's mapping of linux.resources to cgroup v2 and
 * v1 files (shares to weight, quota and period to cpu.max), the memory
 * and pids a VM is given, where the cgroup is, and writing its limits all
 * or none, on a plain folder laid out as cgroup v2 or v1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../oci/spec.h"
#include "../../runtime/kiln.h"
#include "tap.h"

static char top[] = "/tmp/kiln-cgroup-XXXXXX";

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return;
	fputs(text, f);
	fclose(f);
}

static const char *get(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	size_t n;

	buf[0] = '\0';
	if (f == NULL)
		return "(none)";
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static int is_str(const char *got, const char *want, const char *what)
{
	int r = ok(strcmp(got, want) == 0, "%s", what);

	if (!r)
		printf("#   got `%s`, want `%s`\n", got, want);
	return r;
}

static struct oci_spec *parse(const char *json)
{
	struct kiln_error err = { 0 };
	struct oci_spec *s = oci_spec_parse(json, strlen(json), &err);

	if (s == NULL)
		printf("# parse: %s\n", err.msg);
	return s;
}

static void test_mapping(void)
{
	char v[32];

	is_int(cgroup_shares_to_weight(0), 0, "shares 0: no weight");
	is_int(cgroup_shares_to_weight(2), 1, "shares 2: weight 1");
	is_int(cgroup_shares_to_weight(1024), 39,
	       "shares 1024: weight 39 (runc 1.1, as the guest agent)");
	is_int(cgroup_shares_to_weight(100), 4, "shares 100: weight 4");
	is_int(cgroup_shares_to_weight(262144), 10000,
	       "shares 262144: weight 10000");
	cgroup_cpu_max(20000, 100000, v, sizeof(v));
	is_str(v, "20000 100000", "cpu.max of quota 20000, period 100000");
	cgroup_cpu_max(-1, 100000, v, sizeof(v));
	is_str(v, "max 100000", "cpu.max of no quota, period 100000");
	cgroup_cpu_max(50000, 0, v, sizeof(v));
	is_str(v, "50000", "cpu.max of a quota alone keeps the period");
	cgroup_cpu_max(-1, 0, v, sizeof(v));
	is_str(v, "max", "cpu.max of a lifted quota");
	is_int(cgroup_host_quota(20000, 100000), 25000,
	       "host quota: 20000 + 5%% of the 100 ms period");
	is_int(cgroup_host_quota(20000, 0), 25000,
	       "host quota without a period: 5%% of the default");
	is_int(cgroup_host_quota(50000, 200000), 60000,
	       "host quota: 50000 + 5%% of 200 ms");
	is_int(cgroup_host_quota(-1, 100000), -1, "no quota stays none");
	is_int(cgroup_vm_memory_max(128), (128 + 64) << 20,
	       "memory.max: the VM's 128 MiB + 64 MiB for the VMM");
	is_int(cgroup_vm_pids_max(2), 128 + 2 + 4 * 80,
	       "pids.max: 128 + a vCPU each + 80 per virtiofsd");
}

static void test_limits_from_spec(void)
{
	struct kiln_error err = { 0 };
	struct vm_config c = { .vcpus = 1, .memory_mib = 256 };
	struct cgroup_limits l;
	struct cgroup_write w[CGROUP_WRITES_MAX];
	struct oci_spec *s;
	size_t n;

	s = parse("{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": "
		  "[\"sh\"], \"cwd\": \"/\"}, \"root\": {\"path\": \"r\"}, "
		  "\"linux\": {\"resources\": {\"memory\": {\"limit\": "
		  "67108864}, \"pids\": {\"limit\": 50}, \"cpu\": "
		  "{\"quota\": 20000, \"period\": 100000, \"shares\": "
		  "1024}}}}");
	ok(s != NULL && vm_config_size(&c, s, &err) == 0, "a spec with memory, "
							  "pids and CPU limits "
							  "sizes its VM");
	is_int(c.memory_mib, 128, "VM of 64 MiB + 64 MiB for the guest");
	ok(s != NULL && cgroup_limits_vm(s, &c, &l, &err) == 0, "its host "
								"limits");
	is_int(l.memory_max, 192 << 20, "memory.max 192 MiB");
	is_int(l.pids_max, cgroup_vm_pids_max(1),
	       "pids.max the VM's, not the container's 50");
	is_int(l.cpu_quota, 25000, "quota + 5%% of a CPU");
	is_int(l.cpu_period, 100000, "period");
	n = cgroup_plan(&l, true, w);
	is_int(n, 4, "v2: four files");
	if (n == 4) {
		is_str(w[0].file, "cpu.weight", "v2 cpu.weight");
		is_str(w[0].value, "39", "v2 cpu.weight 39");
		is_str(w[1].value, "25000 100000", "v2 cpu.max");
		is_str(w[2].file, "memory.max", "v2 memory.max");
		is_str(w[2].value, "201326592", "v2 memory.max value");
		is_str(w[3].file, "pids.max", "v2 pids.max");
	}
	n = cgroup_plan(&l, false, w);
	is_int(n, 5, "v1: five files");
	if (n == 5) {
		is_str(w[0].file, "cpu.shares", "v1 cpu.shares");
		is_str(w[0].value, "1024", "v1 shares as they are");
		is_str(w[1].file, "cpu.cfs_period_us", "v1: the period first");
		is_str(w[2].file, "cpu.cfs_quota_us", "v1: then the quota");
		is_str(w[3].file, "memory.limit_in_bytes", "v1 memory");
		is_str(w[3].ctrl, "memory", "v1 memory hierarchy");
		is_str(w[4].ctrl, "pids", "v1 pids hierarchy");
	}
	oci_spec_free(s);

	/* no limits asked: the VM's pids alone, memory left alone */
	s = parse("{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": "
		  "[\"sh\"], \"cwd\": \"/\"}, \"root\": {\"path\": \"r\"}}");
	ok(s != NULL && cgroup_limits_vm(s, &c, &l, &err) == 0, "a spec "
								"without "
								"resources");
	n = cgroup_plan(&l, true, w);
	ok(n == 1 && strcmp(w[0].file, "pids.max") == 0, "without resources: "
							 "pids.max only");
	oci_spec_free(s);

	s = parse("{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": "
		  "[\"sh\"], \"cwd\": \"/\"}, \"root\": {\"path\": \"r\"}, "
		  "\"linux\": {\"resources\": {\"cpu\": {\"shares\": 1}}}}");
	ok(s != NULL && cgroup_limits_vm(s, &c, &l, &err) < 0 &&
		   strstr(err.msg, "cpu.shares") != NULL,
	   "shares 1 refused by name: %s", err.msg);
	oci_spec_free(s);
}

static void test_update(void)
{
	struct kiln_error err = { 0 };
	Kiln__Agent__V1__Resources r;
	struct cgroup_limits l;
	struct cgroup_write w[CGROUP_WRITES_MAX];

	resources_init(&r);
	r.has_memory_limit = true;
	r.memory_limit = 100 << 20;
	r.has_cpu_quota = true;
	r.cpu_quota = -1;
	ok(cgroup_limits_update(&r, &l, &err) == 0, "update's host limits");
	ok(cgroup_plan(&l, true, w) == 1 && strcmp(w[0].value, "max") == 0,
	   "update: quota -1 lifts cpu.max, memory stays the VM's");
	r.has_cpu_period = true;
	r.cpu_period = 10;
	ok(cgroup_limits_update(&r, &l, &err) < 0 &&
		   strstr(err.msg, "cpu.period") != NULL,
	   "update: a period of 10 µs refused by name");
}

static void test_rel(void)
{
	struct kiln_error err = { 0 };
	struct oci_spec *s;
	char rel[256];

	s = parse("{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": "
		  "[\"sh\"], \"cwd\": \"/\"}, \"root\": {\"path\": \"r\"}}");
	ok(s != NULL && cgroup_rel(s, false, "c1", rel, sizeof(rel), &err) == 0,
	   "no cgroupsPath");
	is_str(rel, "/kiln/c1", "no cgroupsPath: kiln makes /kiln/ID");
	oci_spec_free(s);
	s = parse("{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": "
		  "[\"sh\"], \"cwd\": \"/\"}, \"root\": {\"path\": \"r\"}, "
		  "\"linux\": {\"cgroupsPath\": \"system.slice:docker:ab\"}}");
	ok(s != NULL && cgroup_rel(s, true, "c1", rel, sizeof(rel), &err) == 0,
	   "systemd cgroupsPath");
	is_str(rel, "/system.slice/docker-ab.scope", "as runc maps it");
	oci_spec_free(s);
	s = parse("{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": "
		  "[\"sh\"], \"cwd\": \"/\"}, \"root\": {\"path\": \"r\"}, "
		  "\"linux\": {\"cgroupsPath\": \"/docker/..\"}}");
	ok(s != NULL && cgroup_rel(s, false, "c1", rel, sizeof(rel), &err) < 0,
	   "a cgroupsPath ending in .. refused");
	oci_spec_free(s);
}

/* A cgroup of a fake v2 tree with the files a real one has. */
static void fake_v2(const char *rel, const char *weight)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/v2%s", top, rel);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/v2%s/cpu.weight", top, rel);
	put(p, weight);
	snprintf(p, sizeof(p), "%s/v2%s/cpu.max", top, rel);
	put(p, "max 100000\n");
	snprintf(p, sizeof(p), "%s/v2%s/pids.max", top, rel);
	put(p, "max\n");
	snprintf(p, sizeof(p), "%s/v2%s/cgroup.procs", top, rel);
	put(p, "");
}

static void test_write_v2(int dirfd)
{
	struct kiln_error err = { 0 };
	struct cgroup_limits l = { .cpu_shares = 1024,
				   .memory_max = 192 << 20,
				   .pids_max = 449 };
	struct cgroup_limits q = { .cpu_quota = 20000, .cpu_period = 100000 };
	struct cgroup_write w[CGROUP_WRITES_MAX];
	char p[512];
	size_t n;

	snprintf(p, sizeof(p), "%s/v2", top);
	mkdir(p, 0755);
	cgroup_set_root(p, 1);
	snprintf(p, sizeof(p), "%s/v2/kiln", top);
	mkdir(p, 0755);

	/* a refusal half way: memory.max cannot be written (a folder) */
	fake_v2("/kiln/a", "100\n");
	snprintf(p, sizeof(p), "%s/v2/kiln/a/memory.max", top);
	mkdir(p, 0755);
	ok(cgroup_enter(dirfd, "/kiln/a", &l, &err) < 0 &&
		   strstr(err.msg, "memory.max") != NULL &&
		   strstr(err.msg, "201326592") != NULL,
	   "a refused memory.max: one error naming file and value: %s",
	   err.msg);
	snprintf(p, sizeof(p), "%s/v2/kiln/a/cpu.weight", top);
	is_str(get(p), "100", "and cpu.weight, written before, put back");
	snprintf(p, sizeof(p), "%s/v2/kiln/a/cgroup.procs", top);
	is_str(get(p), "", "and nobody joined");

	/* a cgroup that cannot be made is not left half made */
	memset(&err, 0, sizeof(err));
	ok(cgroup_enter(dirfd, "/kiln/new", &l, &err) < 0, "a cgroup without "
							   "the files refused");
	snprintf(p, sizeof(p), "%s/v2/kiln/new", top);
	ok(access(p, F_OK) < 0 && errno == ENOENT, "and the folder kiln made "
						   "for it removed");

	fake_v2("/kiln/b", "100\n");
	snprintf(p, sizeof(p), "%s/v2/kiln/b/memory.max", top);
	put(p, "max\n");
	memset(&err, 0, sizeof(err));
	ok(cgroup_enter(dirfd, "/kiln/b", &l, &err) == 0, "enter: %s", err.msg);
	snprintf(p, sizeof(p), "%s/v2/kiln/b/cpu.weight", top);
	is_str(get(p), "39", "cpu.weight written");
	snprintf(p, sizeof(p), "%s/v2/kiln/b/memory.max", top);
	is_str(get(p), "201326592", "memory.max written");
	snprintf(p, sizeof(p), "%s/v2/kiln/b/pids.max", top);
	is_str(get(p), "449", "pids.max written");
	snprintf(p, sizeof(p), "%s/v2/kiln/b/cgroup.procs", top);
	is_int(atoi(get(p)), getpid(), "and the caller joined");
	snprintf(p, sizeof(p), "%s/state/" CGROUP_RECORD, top);
	is_str(get(p), "/kiln/b", "the path recorded in the state");

	ok(cgroup_limit(dirfd, &q, w, &n, &err) == 0 && n == 1, "the quota "
								"later");
	snprintf(p, sizeof(p), "%s/v2/kiln/b/cpu.max", top);
	is_str(get(p), "20000 100000", "cpu.max written");
	cgroup_undo(dirfd, w, n);
	is_str(get(p), "max 100000", "and put back by undo");

	/* made for a process to be born in: written, nobody moved in */
	{
		struct stat a, b;
		int fd;

		fake_v2("/kiln/c", "100\n");
		snprintf(p, sizeof(p), "%s/v2/kiln/c/memory.max", top);
		put(p, "max\n");
		memset(&err, 0, sizeof(err));
		fd = cgroup_make(dirfd, "/kiln/c", &l, &err);
		snprintf(p, sizeof(p), "%s/v2/kiln/c", top);
		ok(fd >= 0 && fstat(fd, &a) == 0 && stat(p, &b) == 0 &&
			   a.st_ino == b.st_ino,
		   "make: the cgroup's folder, open: %s", err.msg);
		if (fd >= 0)
			close(fd);
		snprintf(p, sizeof(p), "%s/v2/kiln/c/pids.max", top);
		is_str(get(p), "449", "make: pids.max written");
		snprintf(p, sizeof(p), "%s/v2/kiln/c/cgroup.procs", top);
		is_str(get(p), "", "make: nobody joined");
		snprintf(p, sizeof(p), "%s/state/" CGROUP_RECORD, top);
		is_str(get(p), "/kiln/c", "make: the path recorded");
		memset(&err, 0, sizeof(err));
		ok(cgroup_make(dirfd, "/kiln/new", &l, &err) == -2 &&
			   err.msg[0] != '\0',
		   "make: refused with an error: %s", err.msg);
		snprintf(p, sizeof(p), "%s/v2/kiln/new", top);
		ok(access(p, F_OK) < 0 && errno == ENOENT, "make: and nothing "
							   "left");
	}
	cgroup_set_root(NULL, 0);
}

static void test_write_v1(int dirfd)
{
	static const char *const dirs[] = { "v1",	 "v1/cpu",
					    "v1/memory", "v1/pids",
					    "v1/cpu/x",	 "v1/memory/x",
					    "v1/pids/x" };
	struct kiln_error err = { 0 };
	struct cgroup_limits l = { .cpu_shares = 512,
				   .memory_max = 192 << 20,
				   .pids_max = 449 };
	struct cgroup_limits q = { .cpu_quota = 20000, .cpu_period = 100000 };
	struct cgroup_write w[CGROUP_WRITES_MAX];
	char p[512];
	size_t n;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", top, dirs[i]);
		mkdir(p, 0755);
	}
	snprintf(p, sizeof(p), "%s/v1/cpu/x/cpu.shares", top);
	put(p, "1024\n");
	snprintf(p, sizeof(p), "%s/v1/cpu/x/cpu.cfs_quota_us", top);
	put(p, "-1\n");
	snprintf(p, sizeof(p), "%s/v1/cpu/x/cpu.cfs_period_us", top);
	put(p, "100000\n");
	snprintf(p, sizeof(p), "%s/v1/memory/x/memory.limit_in_bytes", top);
	put(p, "9223372036854771712\n");
	snprintf(p, sizeof(p), "%s/v1/pids/x/pids.max", top);
	put(p, "max\n");
	for (int i = 0; i < 3; i++) {
		static const char *const h[] = { "cpu", "memory", "pids" };

		snprintf(p, sizeof(p), "%s/v1/%s/x/cgroup.procs", top, h[i]);
		put(p, "");
	}
	snprintf(p, sizeof(p), "%s/v1", top);
	cgroup_set_root(p, 0);
	is_int(cgroup_make(dirfd, "/x", &l, &err), -1,
	       "v1: make does nothing, enter moves the caller");
	ok(cgroup_enter(dirfd, "/x", &l, &err) == 0, "v1 enter: %s", err.msg);
	snprintf(p, sizeof(p), "%s/v1/cpu/x/cpu.shares", top);
	is_str(get(p), "512", "v1 cpu.shares in the cpu hierarchy");
	snprintf(p, sizeof(p), "%s/v1/memory/x/memory.limit_in_bytes", top);
	is_str(get(p), "201326592", "v1 memory.limit_in_bytes");
	snprintf(p, sizeof(p), "%s/v1/pids/x/pids.max", top);
	is_str(get(p), "449", "v1 pids.max");
	snprintf(p, sizeof(p), "%s/v1/memory/x/cgroup.procs", top);
	is_int(atoi(get(p)), getpid(), "joined in each hierarchy");
	ok(cgroup_limit(dirfd, &q, w, &n, &err) == 0 && n == 2, "v1 quota and "
								"period");
	snprintf(p, sizeof(p), "%s/v1/cpu/x/cpu.cfs_quota_us", top);
	is_str(get(p), "20000", "v1 cpu.cfs_quota_us");
	cgroup_set_root(NULL, 0);
}

int main(void)
{
	char p[512];
	int dirfd;

	test_mapping();
	test_limits_from_spec();
	test_update();
	test_rel();
	if (mkdtemp(top) == NULL)
		return 1;
	snprintf(p, sizeof(p), "%s/state", top);
	mkdir(p, 0700);
	dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	test_write_v2(dirfd);
	test_write_v1(dirfd);
	close(dirfd);
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", top);
	}
	return tap_done();
}
