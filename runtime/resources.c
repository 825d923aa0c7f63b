/* SPDX-License-Identifier: Apache-2.0 */
/*
 * linux.resources as the agent takes them (agent.proto's Resources): from
 * config.json at create, from `kiln update`'s flags or its -r JSON (an OCI
 * LinuxResources object) later. As with runc's update, 0 or an absent
 * field leaves a value as it is and -1 lifts a limit. What the guest
 * cannot do at all (real-time CPU time, Intel RDT) is refused here by
 * name; what its kernel refuses comes back from the agent by name.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/json.h"
#include "kiln.h"

void resources_init(Kiln__Agent__V1__Resources *out)
{
	*out = (Kiln__Agent__V1__Resources)KILN__AGENT__V1__RESOURCES__INIT;
}

bool resources_empty(const Kiln__Agent__V1__Resources *r)
{
	return !r->has_memory_limit && !r->has_memory_reservation &&
	       !r->has_memory_swap && !r->has_cpu_shares && !r->has_cpu_quota &&
	       !r->has_cpu_period && r->cpuset_cpus[0] == '\0' &&
	       r->cpuset_mems[0] == '\0' && !r->has_pids_limit &&
	       r->blkio_weight == 0;
}

void resources_clear(Kiln__Agent__V1__Resources *r)
{
	if (r->cpuset_cpus != protobuf_c_empty_string)
		free(r->cpuset_cpus);
	if (r->cpuset_mems != protobuf_c_empty_string)
		free(r->cpuset_mems);
	resources_init(r);
}

static int set_str(char **dst, const char *v, struct kiln_error *err)
{
	char *s = strdup(v);

	if (s == NULL)
		return kiln_error_set(err, ENOMEM, "resources");
	if (*dst != protobuf_c_empty_string)
		free(*dst);
	*dst = s;
	return 0;
}

int resources_from_oci(const struct oci_resources *o,
		       Kiln__Agent__V1__Resources *out, struct kiln_error *err)
{
	resources_init(out);
	if (o->has_cpu_realtime)
		return kiln_error_set(err, 0,
				      "linux.resources.cpu.realtimeRuntime: "
				      "the guest kernel has no real-time "
				      "group scheduling");
	/* create: only what is set; the cgroup starts without limits */
	out->has_memory_limit = o->memory_limit > 0;
	out->memory_limit = o->memory_limit;
	out->has_memory_reservation = o->memory_reservation > 0;
	out->memory_reservation = o->memory_reservation;
	out->has_memory_swap = o->memory_swap > 0 || o->memory_swap == -1;
	out->memory_swap = o->memory_swap;
	/* a swap limit without a memory limit: runc ignores it */
	if (out->has_memory_swap && !out->has_memory_limit)
		out->has_memory_swap = false;
	out->has_cpu_shares = o->cpu_shares != 0;
	out->cpu_shares = o->cpu_shares;
	out->has_cpu_quota = o->cpu_quota > 0;
	out->cpu_quota = o->cpu_quota;
	out->has_cpu_period = o->cpu_period != 0;
	out->cpu_period = o->cpu_period;
	if ((o->cpu_cpus != NULL && o->cpu_cpus[0] != '\0' &&
	     set_str(&out->cpuset_cpus, o->cpu_cpus, err) < 0) ||
	    (o->cpu_mems != NULL && o->cpu_mems[0] != '\0' &&
	     set_str(&out->cpuset_mems, o->cpu_mems, err) < 0)) {
		resources_clear(out);
		return -1;
	}
	out->has_pids_limit = o->pids_limit > 0;
	out->pids_limit = o->pids_limit;
	out->blkio_weight = (uint32_t)o->blkio_weight;
	return 0;
}

int resources_parse_bytes(const char *s, int64_t *out, struct kiln_error *err)
{
	static const char units[] = "kmgtp";
	const char *p = s;
	double v, mult = 1;
	char *end;

	/* docker's units.RAMInBytes: "64m", "1.5g", "96MiB", "1024" */
	if (strcmp(s, "-1") == 0) {
		*out = -1;
		return 0;
	}
	if (!isdigit((unsigned char)*p))
		goto bad;
	errno = 0;
	v = strtod(p, &end);
	if (errno != 0 || end == p)
		goto bad;
	p = end;
	if (*p == ' ')
		p++;
	if (*p != '\0') {
		const char *u = strchr(units, tolower((unsigned char)*p));

		if (u == NULL)
			goto bad;
		for (long i = 0; i <= u - units; i++)
			mult *= 1024;
		p++;
		if (*p == 'i' || *p == 'I')
			p++;
	}
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p != '\0' || v * mult >= 9.2e18)
		goto bad;
	*out = (int64_t)(v * mult);
	return 0;
bad:
	return kiln_error_set(err, 0, "`%s` is not a size (1024, 64m, 1.5g)",
			      s);
}

static int parse_int(const char *flag, const char *s, int64_t min, int64_t *out,
		     struct kiln_error *err)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min)
		return kiln_error_set(err, 0, "--%s: `%s` is not a number%s",
				      flag, s, min >= 0 ? " (0 or more)" : "");
	*out = v;
	return 0;
}

static const char *const kmem[] = { "kernel-memory", "kernel-memory-tcp",
				    NULL };
static const char *const rdt[] = { "l3-cache-schema", "mem-bw-schema", NULL };

static bool in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

int resources_flag(const char *flag, const char *value,
		   Kiln__Agent__V1__Resources *r, struct kiln_error *err)
{
	int64_t v = 0;

	if (strcmp(flag, "memory") == 0 ||
	    strcmp(flag, "memory-reservation") == 0 ||
	    strcmp(flag, "memory-swap") == 0) {
		if (resources_parse_bytes(value, &v, err) < 0)
			return kiln_error_wrap(err, "--%s", flag);
		if (v == 0) /* runc: 0 leaves it */
			return 0;
		if (strcmp(flag, "memory") == 0) {
			r->has_memory_limit = true;
			r->memory_limit = v;
		} else if (strcmp(flag, "memory-reservation") == 0) {
			r->has_memory_reservation = true;
			r->memory_reservation = v;
		} else {
			r->has_memory_swap = true;
			r->memory_swap = v;
		}
		return 0;
	}
	/* runc ignores them too: cgroup v2 has no such */
	if (in_list(flag, kmem))
		return 0;
	if (strcmp(flag, "cpu-shares") == 0) {
		if (parse_int(flag, value, 0, &v, err) < 0)
			return -1;
		r->has_cpu_shares = v != 0;
		r->cpu_shares = (uint64_t)v;
		return 0;
	}
	if (strcmp(flag, "cpu-quota") == 0) {
		if (parse_int(flag, value, -1, &v, err) < 0)
			return -1;
		r->has_cpu_quota = v != 0;
		r->cpu_quota = v;
		return 0;
	}
	if (strcmp(flag, "cpu-period") == 0) {
		if (parse_int(flag, value, 0, &v, err) < 0)
			return -1;
		r->has_cpu_period = v != 0;
		r->cpu_period = (uint64_t)v;
		return 0;
	}
	if (strcmp(flag, "cpuset-cpus") == 0)
		return value[0] != '\0' ? set_str(&r->cpuset_cpus, value, err)
					: 0;
	if (strcmp(flag, "cpuset-mems") == 0)
		return value[0] != '\0' ? set_str(&r->cpuset_mems, value, err)
					: 0;
	if (strcmp(flag, "pids-limit") == 0) {
		if (parse_int(flag, value, -1, &v, err) < 0)
			return -1;
		r->has_pids_limit = v != 0;
		r->pids_limit = v;
		return 0;
	}
	if (strcmp(flag, "blkio-weight") == 0) {
		if (parse_int(flag, value, 0, &v, err) < 0)
			return -1;
		if (v > 1000)
			return kiln_error_set(err, 0,
					      "--blkio-weight: %s is more "
					      "than 1000",
					      value);
		r->blkio_weight = (uint32_t)v;
		return 0;
	}
	if (strcmp(flag, "cpu-rt-period") == 0 ||
	    strcmp(flag, "cpu-rt-runtime") == 0) {
		if (parse_int(flag, value, 0, &v, err) < 0)
			return -1;
		if (v != 0)
			return kiln_error_set(err, 0,
					      "--%s: the guest kernel has no "
					      "real-time group scheduling",
					      flag);
		return 0;
	}
	if (in_list(flag, rdt))
		return kiln_error_set(err, 0,
				      "--%s: a kiln VM has no Intel RDT", flag);
	return 1; /* not ours */
}

/* An integer member: 0 or absent leaves the value (runc update). */
static int jint(yajl_val obj, const char *key, const char *path, int64_t min,
		protobuf_c_boolean *has, int64_t *out, struct kiln_error *err)
{
	int64_t v = 0;

	if (json_int(json_get(obj, key), path, min, INT64_MAX, &v, err) < 0)
		return -1;
	if (v != 0) {
		*has = true;
		*out = v;
	}
	return 0;
}

static int juint(yajl_val obj, const char *key, const char *path, uint64_t max,
		 protobuf_c_boolean *has, uint64_t *out, struct kiln_error *err)
{
	uint64_t v = 0;

	if (json_uint(json_get(obj, key), path, max, &v, err) < 0)
		return -1;
	if (v != 0) {
		*has = true;
		*out = v;
	}
	return 0;
}

static int jstr(yajl_val obj, const char *key, const char *path, char **out,
		struct kiln_error *err)
{
	char *v = NULL;
	int res = 0;

	if (json_string(json_get(obj, key), path, &v, err) < 0)
		return -1;
	if (v != NULL && v[0] != '\0')
		res = set_str(out, v, err);
	free(v);
	return res;
}

int resources_from_json(const char *text, size_t len,
			Kiln__Agent__V1__Resources *r, struct kiln_error *err)
{
	yajl_val root = json_parse(text, len, err), mem, cpu, pids, bio;
	int64_t rt = 0, rtp = 0;
	uint64_t w = 0;
	protobuf_c_boolean has_w = false, ignored = false;
	int res = -1;

	if (root == NULL)
		return -1;
	mem = json_get(root, "memory");
	cpu = json_get(root, "cpu");
	pids = json_get(root, "pids");
	bio = json_get(root, "blockIO");
	if (json_want_object(root, "resources", err) < 0 ||
	    json_want_object(mem, "memory", err) < 0 ||
	    json_want_object(cpu, "cpu", err) < 0 ||
	    json_want_object(pids, "pids", err) < 0 ||
	    json_want_object(bio, "blockIO", err) < 0 ||
	    jint(mem, "limit", "memory.limit", -1, &r->has_memory_limit,
		 &r->memory_limit, err) < 0 ||
	    jint(mem, "reservation", "memory.reservation", -1,
		 &r->has_memory_reservation, &r->memory_reservation, err) < 0 ||
	    jint(mem, "swap", "memory.swap", -1, &r->has_memory_swap,
		 &r->memory_swap, err) < 0 ||
	    juint(cpu, "shares", "cpu.shares", UINT64_MAX, &r->has_cpu_shares,
		  &r->cpu_shares, err) < 0 ||
	    jint(cpu, "quota", "cpu.quota", -1, &r->has_cpu_quota,
		 &r->cpu_quota, err) < 0 ||
	    juint(cpu, "period", "cpu.period", UINT64_MAX, &r->has_cpu_period,
		  &r->cpu_period, err) < 0 ||
	    jstr(cpu, "cpus", "cpu.cpus", &r->cpuset_cpus, err) < 0 ||
	    jstr(cpu, "mems", "cpu.mems", &r->cpuset_mems, err) < 0 ||
	    jint(cpu, "realtimeRuntime", "cpu.realtimeRuntime", INT64_MIN,
		 &ignored, &rt, err) < 0 ||
	    jint(cpu, "realtimePeriod", "cpu.realtimePeriod", INT64_MIN,
		 &ignored, &rtp, err) < 0 ||
	    jint(pids, "limit", "pids.limit", -1, &r->has_pids_limit,
		 &r->pids_limit, err) < 0 ||
	    juint(bio, "weight", "blockIO.weight", 1000, &has_w, &w, err) < 0)
		goto out;
	if (rt != 0 || rtp != 0) {
		kiln_error_set(err, 0,
			       "cpu.realtimeRuntime: the guest kernel has no "
			       "real-time group scheduling");
		goto out;
	}
	r->blkio_weight = (uint32_t)w;
	res = 0;
out:
	yajl_tree_free(root);
	return res;
}
