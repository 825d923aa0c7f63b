/* SPDX-License-Identifier: Apache-2.0 */
/*
 * linux.resources from config.json, `kiln update`'s flags and its -r JSON
 * (runtime/resources.c) to the agent's Resources, and from there to cgroup
 * v2 files (agent/resources.c's res_plan), as runc maps them.
 */
#include <stdio.h>
#include <string.h>

#include "../../agent/agent.h"
#include "../../oci/spec.h"
#include "../../runtime/kiln.h"
#include "tap.h"

#define GIB (1ull << 30)

struct plan {
	struct res_write w[RES_WRITES_MAX];
	size_t n;
	int64_t memory;
	int res;
	struct kiln_error err;
};

static void plan(struct plan *p, const Kiln__Agent__V1__Resources *r,
		 int64_t cur_memory, uint64_t mem_total)
{
	memset(p, 0, sizeof(*p));
	p->res = res_plan(r, cur_memory, mem_total, p->w, &p->n, &p->memory,
			  &p->err);
}

/* the value planned for file, or NULL */
static const char *val(const struct plan *p, const char *file)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->w[i].file, file) == 0)
			return p->w[i].value;
	return NULL;
}

static bool is_val(const struct plan *p, const char *file, const char *want)
{
	const char *got = val(p, file);

	if (got != NULL && strcmp(got, want) == 0)
		return true;
	printf("#   %s: got %s, want %s\n", file, got ? got : "(none)", want);
	return false;
}

static void test_plan_mapping(void)
{
	Kiln__Agent__V1__Resources r = KILN__AGENT__V1__RESOURCES__INIT;
	struct plan p;

	plan(&p, NULL, -1, GIB);
	ok(p.res == 0 && p.n == 0, "no resources: nothing written");
	plan(&p, &r, -1, GIB);
	ok(p.res == 0 && p.n == 0, "empty resources: nothing written");

	r.has_memory_limit = true;
	r.memory_limit = 64 << 20;
	r.has_memory_reservation = true;
	r.memory_reservation = 32 << 20;
	r.has_memory_swap = true;
	r.memory_swap = 128 << 20;
	r.has_cpu_shares = true;
	r.cpu_shares = 1024;
	r.has_cpu_quota = true;
	r.cpu_quota = 50000;
	r.has_cpu_period = true;
	r.cpu_period = 100000;
	r.cpuset_cpus = "0-1";
	r.cpuset_mems = "0";
	r.has_pids_limit = true;
	r.pids_limit = 100;
	r.blkio_weight = 500;
	plan(&p, &r, -1, GIB);
	ok(p.res == 0, "every field: planned (%s)", p.err.msg);
	ok(is_val(&p, "memory.max", "67108864"), "memory.limit -> memory.max");
	ok(is_val(&p, "memory.low", "33554432"), "reservation -> memory.low");
	/* OCI swap is memory+swap; swap.max is swap - memory */
	ok(is_val(&p, "memory.swap.max", "67108864"), "swap -> swap.max");
	/* runc: 1 + ((1024 - 2) * 9999) / 262142 = 39 */
	ok(is_val(&p, "cpu.weight", "39"), "cpu.shares 1024 -> cpu.weight 39");
	ok(is_val(&p, "cpu.max", "50000 100000"), "quota period -> cpu.max");
	ok(is_val(&p, "cpuset.cpus", "0-1") && is_val(&p, "cpuset.mems", "0"),
	   "cpuset");
	ok(is_val(&p, "pids.max", "100"), "pids.limit -> pids.max");
	/* runc: 1 + ((500 - 10) * 9999) / 990 = 4950 */
	ok(is_val(&p, "io.weight", "4950"), "blkio weight -> io.weight");
	is_int(p.memory, 64 << 20, "the memory limit in force afterwards");
	ok(p.n <= RES_WRITES_MAX, "within RES_WRITES_MAX");
	for (size_t i = 0; i < p.n; i++)
		if (p.w[i].field == NULL || p.w[i].field[0] == '\0')
			ok(0, "%s has no OCI field name", p.w[i].file);

	/* the extremes of runc's conversions */
	r = (Kiln__Agent__V1__Resources)KILN__AGENT__V1__RESOURCES__INIT;
	r.has_cpu_shares = true;
	r.cpu_shares = 2;
	plan(&p, &r, -1, GIB);
	ok(is_val(&p, "cpu.weight", "1"), "shares 2 -> weight 1");
	r.cpu_shares = 262144;
	plan(&p, &r, -1, GIB);
	ok(is_val(&p, "cpu.weight", "10000"), "shares 262144 -> weight 10000");
	r = (Kiln__Agent__V1__Resources)KILN__AGENT__V1__RESOURCES__INIT;
	r.blkio_weight = 10;
	plan(&p, &r, -1, GIB);
	ok(is_val(&p, "io.weight", "1"), "blkio 10 -> io.weight 1");
	r.blkio_weight = 1000;
	plan(&p, &r, -1, GIB);
	ok(is_val(&p, "io.weight", "10000"), "blkio 1000 -> io.weight 10000");
}

static void test_plan_limits_lifted(void)
{
	Kiln__Agent__V1__Resources r = KILN__AGENT__V1__RESOURCES__INIT;
	struct plan p;

	r.has_memory_limit = true;
	r.memory_limit = -1;
	r.has_memory_swap = true;
	r.memory_swap = -1;
	r.has_pids_limit = true;
	r.pids_limit = -1;
	r.has_cpu_quota = true;
	r.cpu_quota = -1;
	plan(&p, &r, 64 << 20, GIB);
	ok(p.res == 0, "-1 everywhere: planned (%s)", p.err.msg);
	ok(is_val(&p, "memory.max", "max") &&
		   is_val(&p, "memory.swap.max", "max") &&
		   is_val(&p, "pids.max", "max") &&
		   is_val(&p, "cpu.max", "max"),
	   "-1 -> max");
	is_int(p.memory, -1, "no memory limit afterwards");

	/* a period alone keeps the quota: "max PERIOD" as runc writes it */
	r = (Kiln__Agent__V1__Resources)KILN__AGENT__V1__RESOURCES__INIT;
	r.has_cpu_period = true;
	r.cpu_period = 50000;
	plan(&p, &r, -1, GIB);
	ok(is_val(&p, "cpu.max", "max 50000"), "period alone");
}

static void test_plan_swap_alone(void)
{
	Kiln__Agent__V1__Resources r = KILN__AGENT__V1__RESOURCES__INIT;
	struct plan p;

	/* an update of the swap alone is relative to the limit in force */
	r.has_memory_swap = true;
	r.memory_swap = 96 << 20;
	plan(&p, &r, 64 << 20, GIB);
	ok(p.res == 0 && is_val(&p, "memory.swap.max", "33554432"),
	   "swap alone: against the memory limit in force");
	plan(&p, &r, -1, GIB);
	ok(p.res < 0 && strstr(p.err.msg, "memory.swap") &&
		   strstr(p.err.msg, "needs a memory limit"),
	   "swap without any memory limit: refused by name (%s)", p.err.msg);
	r.memory_swap = 32 << 20;
	plan(&p, &r, 64 << 20, GIB);
	ok(p.res < 0 && strstr(p.err.msg, "memory.swap"),
	   "memory+swap below memory: refused (%s)", p.err.msg);
}

/* bad value number i into r; its OCI field name */
static const char *bad_case(size_t i, Kiln__Agent__V1__Resources *r)
{
	switch (i) {
	case 0:
		r->has_memory_limit = true;
		r->memory_limit = -2;
		return "memory.limit";
	case 1:
		r->has_memory_reservation = true;
		r->memory_reservation = -5;
		return "memory.reservation";
	case 2:
		r->has_cpu_shares = true;
		r->cpu_shares = 1;
		return "cpu.shares";
	case 3:
		r->has_cpu_shares = true;
		r->cpu_shares = 262145;
		return "cpu.shares";
	case 4:
		r->has_cpu_quota = true;
		r->cpu_quota = -3;
		return "cpu.quota";
	case 5:
		r->has_cpu_period = true;
		r->cpu_period = 999;
		return "cpu.period";
	case 6:
		r->has_cpu_period = true;
		r->cpu_period = 1000001;
		return "cpu.period";
	case 7:
		r->cpuset_cpus = "0-1\nx";
		return "cpu.cpus";
	case 8:
		r->cpuset_mems = "../a";
		return "cpu.mems";
	case 9:
		r->has_pids_limit = true;
		r->pids_limit = -7;
		return "pids.limit";
	case 10:
		r->blkio_weight = 9;
		return "blockIO.weight";
	case 11:
		r->blkio_weight = 1001;
		return "blockIO.weight";
	case 12:
		r->has_memory_swap = true;
		r->memory_swap = -4;
		return "memory.swap";
	}
	return NULL;
}

static void test_plan_refused(void)
{
	const char *field;

	for (size_t i = 0;; i++) {
		Kiln__Agent__V1__Resources r = KILN__AGENT__V1__RESOURCES__INIT;
		struct plan p;
		char want[64];

		field = bad_case(i, &r);
		if (field == NULL)
			break;
		plan(&p, &r, 64 << 20, GIB);
		snprintf(want, sizeof(want), "linux.resources.%s:", field);
		ok(p.res == -TTRPC_INVALID_ARGUMENT && p.n == 0 &&
			   strstr(p.err.msg, want) != NULL,
		   "bad %s refused by name (%s)", field, p.err.msg);
	}
}

static void test_plan_vm_memory(void)
{
	Kiln__Agent__V1__Resources r = KILN__AGENT__V1__RESOURCES__INIT;
	struct plan p;

	r.has_memory_limit = true;
	r.memory_limit = 256 << 20;
	plan(&p, &r, 64 << 20, 120 << 20);
	ok(p.res == -TTRPC_FAILED_PRECONDITION && p.n == 0 &&
		   strstr(p.err.msg, "linux.resources.memory.limit") &&
		   strstr(p.err.msg, "VM's memory (120 MiB)") &&
		   strstr(p.err.msg, "cannot grow"),
	   "memory beyond the VM's: refused, naming its size (%s)", p.err.msg);
	is_int(p.memory, 64 << 20, "the limit in force is unchanged");
	r.memory_limit = 96 << 20;
	plan(&p, &r, 64 << 20, 120 << 20);
	ok(p.res == 0 && is_val(&p, "memory.max", "100663296"), "96M fits");
}

static void test_from_oci(void)
{
	static const char json[] =
		"{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [\"sh\"], "
		"\"cwd\": \"/\"}, \"root\": {\"path\": \"rootfs\"}, "
		"\"linux\": {\"resources\": {\"memory\": {\"limit\": 67108864, "
		"\"swap\": 134217728}, \"cpu\": {\"shares\": 512, \"quota\": "
		"50000, \"period\": 100000, \"cpus\": \"0\"}, \"pids\": "
		"{\"limit\": 64}, \"blockIO\": {\"weight\": 300}}}}";
	struct kiln_error err = { 0 };
	struct oci_spec *s = oci_spec_parse(json, strlen(json), &err);
	Kiln__Agent__V1__Resources r;

	ok(s != NULL, "config.json with resources parses (%s)", err.msg);
	if (s == NULL)
		return;
	ok(resources_from_oci(&s->linux_->resources, &r, &err) == 0,
	   "from config.json (%s)", err.msg);
	ok(r.has_memory_limit && r.memory_limit == 64 << 20 &&
		   r.has_memory_swap && r.memory_swap == 128 << 20 &&
		   !r.has_memory_reservation,
	   "memory carried, reservation absent");
	ok(r.has_cpu_shares && r.cpu_shares == 512 && r.has_cpu_quota &&
		   r.cpu_quota == 50000 && r.has_cpu_period &&
		   r.cpu_period == 100000 && strcmp(r.cpuset_cpus, "0") == 0 &&
		   r.cpuset_mems[0] == '\0',
	   "cpu carried");
	ok(r.has_pids_limit && r.pids_limit == 64, "pids carried");
	is_int(r.blkio_weight, 300, "blockIO.weight carried");
	resources_clear(&r);
	oci_spec_free(s);

	/* nothing set: nothing to apply */
	{
		static const char none[] =
			"{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": "
			"[\"sh\"], \"cwd\": \"/\"}, \"root\": {\"path\": "
			"\"rootfs\"}, \"linux\": {\"resources\": {\"devices\": "
			"[{\"allow\": false, \"access\": \"rwm\"}]}}}";

		s = oci_spec_parse(none, strlen(none), &err);
		ok(s != NULL &&
			   resources_from_oci(&s->linux_->resources, &r,
					      &err) == 0 &&
			   resources_empty(&r),
		   "only devices: nothing for the cgroup files");
		oci_spec_free(s);
	}
}

static void test_flags_and_json(void)
{
	Kiln__Agent__V1__Resources r;
	struct kiln_error err = { 0 };
	int64_t v = 0;

	ok(resources_parse_bytes("96M", &v, &err) == 0 && v == 96 << 20, "96M");
	ok(resources_parse_bytes("64m", &v, &err) == 0 && v == 64 << 20, "64m");
	ok(resources_parse_bytes("1.5g", &v, &err) == 0 &&
		   v == (int64_t)(3ull << 29),
	   "1.5g");
	ok(resources_parse_bytes("512KiB", &v, &err) == 0 && v == 512 << 10,
	   "512KiB");
	ok(resources_parse_bytes("1024", &v, &err) == 0 && v == 1024, "1024");
	ok(resources_parse_bytes("-1", &v, &err) == 0 && v == -1, "-1");
	ok(resources_parse_bytes("12x", &v, &err) < 0 &&
		   resources_parse_bytes("", &v, &err) < 0 &&
		   resources_parse_bytes("-5", &v, &err) < 0,
	   "not sizes refused");

	resources_init(&r);
	ok(resources_flag("memory", "96M", &r, &err) == 0 &&
		   r.has_memory_limit && r.memory_limit == 96 << 20,
	   "--memory 96M");
	ok(resources_flag("memory-swap", "-1", &r, &err) == 0 &&
		   r.has_memory_swap && r.memory_swap == -1,
	   "--memory-swap -1");
	ok(resources_flag("memory-reservation", "0", &r, &err) == 0 &&
		   !r.has_memory_reservation,
	   "--memory-reservation 0 leaves it");
	ok(resources_flag("cpu-quota", "-1", &r, &err) == 0 &&
		   r.has_cpu_quota && r.cpu_quota == -1,
	   "--cpu-quota -1");
	ok(resources_flag("pids-limit", "50", &r, &err) == 0 &&
		   r.has_pids_limit && r.pids_limit == 50,
	   "--pids-limit 50");
	ok(resources_flag("cpuset-cpus", "0", &r, &err) == 0 &&
		   strcmp(r.cpuset_cpus, "0") == 0,
	   "--cpuset-cpus 0");
	ok(resources_flag("blkio-weight", "2000", &r, &err) < 0, "weight 2000");
	ok(resources_flag("cpu-rt-runtime", "950000", &r, &err) < 0 &&
		   strstr(err.msg, "real-time"),
	   "--cpu-rt-runtime refused by name (%s)", err.msg);
	ok(resources_flag("mem-bw-schema", "MB:0=20", &r, &err) < 0, "no RDT");
	/* runc ignores it on cgroup v2 */
	ok(resources_flag("kernel-memory", "10m", &r, &err) == 0, "kmem: "
								  "no-op");
	ok(resources_flag("no-such", "1", &r, &err) == 1, "not our flag: 1");
	resources_clear(&r);

	{
		static const char j[] =
			"{\"memory\": {\"limit\": 100663296, \"swap\": -1, "
			"\"reservation\": 0}, \"cpu\": {\"shares\": 256, "
			"\"cpus\": \"0-1\", \"mems\": \"\"}, \"pids\": "
			"{\"limit\": 20}, \"blockIO\": {\"weight\": 100}}";

		resources_init(&r);
		ok(resources_from_json(j, strlen(j), &r, &err) == 0,
		   "-r JSON parses (%s)", err.msg);
		ok(r.has_memory_limit && r.memory_limit == 96 << 20 &&
			   r.has_memory_swap && r.memory_swap == -1 &&
			   !r.has_memory_reservation,
		   "-r memory: 0 leaves, -1 lifts");
		ok(r.has_cpu_shares && r.cpu_shares == 256 &&
			   strcmp(r.cpuset_cpus, "0-1") == 0 &&
			   r.cpuset_mems[0] == '\0' && !r.has_cpu_quota,
		   "-r cpu");
		ok(r.has_pids_limit && r.pids_limit == 20 &&
			   r.blkio_weight == 100,
		   "-r pids and blockIO");
		resources_clear(&r);
	}
	resources_init(&r);
	ok(resources_from_json("{\"memory\": 5}", 13, &r, &err) < 0 &&
		   strstr(err.msg, "memory"),
	   "-r with a bad memory member: refused by name (%s)", err.msg);
	ok(resources_from_json("{\"cpu\": {\"realtimeRuntime\": 5}}", 31, &r,
			       &err) < 0 &&
		   strstr(err.msg, "realtimeRuntime"),
	   "-r realtime refused by name (%s)", err.msg);
	ok(resources_from_json("[1]", 3, &r, &err) < 0, "-r not an object");
	resources_clear(&r);
}

int main(void)
{
	test_plan_mapping();
	test_plan_limits_lifted();
	test_plan_swap_alone();
	test_plan_refused();
	test_plan_vm_memory();
	test_from_oci();
	test_flags_and_json();
	return tap_done();
}
