/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI linux.resources on a container's cgroup v2: CreateContainer's
 * resources before the init is cloned, UpdateContainer's later. The
 * mapping to cgroup files is runc's (libcontainer/cgroups/fs2), kept in a
 * pure function (res_plan) that the unit tests check; res_apply writes.
 */
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>

#include "../lib/log.h"

#define CPUSET_MAX 256

static int bad(struct kiln_error *err, const char *field, const char *what)
{
	return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
			  "linux.resources.%s: %s", field, what);
}

static void add(struct res_write *w, size_t *n, const char *file,
		const char *field, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void add(struct res_write *w, size_t *n, const char *file,
		const char *field, const char *fmt, ...)
{
	va_list ap;

	w[*n].file = file;
	w[*n].field = field;
	va_start(ap, fmt);
	vsnprintf(w[*n].value, sizeof(w[*n].value), fmt, ap);
	va_end(ap);
	(*n)++;
}

static void add_limit(struct res_write *w, size_t *n, const char *file,
		      const char *field, int64_t v)
{
	if (v < 0)
		add(w, n, file, field, "max");
	else
		add(w, n, file, field, "%" PRId64, v);
}

/* client-controlled: a cpu list as cpuset takes it, "0-3,6" */
static bool cpuset_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > CPUSET_MAX)
		return false;
	return strspn(s, "0123456789,-") == len;
}

int res_plan(const Kiln__Agent__V1__Resources *r, int64_t cur_memory,
	     uint64_t mem_total, struct res_write *w, size_t *n,
	     int64_t *new_memory, struct kiln_error *err)
{
	int64_t memory = cur_memory;

	*n = 0;
	*new_memory = cur_memory;
	if (r == NULL)
		return 0;
	/* client-controlled: every number is checked before a write */
	if (r->has_memory_limit) {
		if (r->memory_limit == 0 || r->memory_limit < -1)
			return bad(err, "memory.limit",
				   "must be more than 0, or -1");
		if (r->memory_limit > 0 &&
		    (uint64_t)r->memory_limit > mem_total) {
			kiln_error_set(err, 0,
				       "linux.resources.memory.limit: %" PRId64
				       " bytes is more than this VM's memory "
				       "(%" PRIu64 " MiB): kiln sizes the VM "
				       "at create (the limit + %d MiB) and "
				       "cannot grow it",
				       r->memory_limit, mem_total >> 20,
				       RES_VM_OVERHEAD_MIB);
			return -TTRPC_FAILED_PRECONDITION;
		}
		memory = r->memory_limit;
		add_limit(w, n, "memory.max", "memory.limit", memory);
	}
	if (r->has_memory_reservation) {
		if (r->memory_reservation < -1)
			return bad(err, "memory.reservation",
				   "must be at least 0, or -1");
		add_limit(w, n, "memory.low", "memory.reservation",
			  r->memory_reservation);
	}
	if (r->has_memory_swap) {
		/* OCI's swap is memory + swap (cgroup v1's memsw); v2's
		 * memory.swap.max is the swap alone */
		if (r->memory_swap == 0 || r->memory_swap < -1)
			return bad(err, "memory.swap",
				   "must be more than 0, or -1");
		if (r->memory_swap == -1) {
			add(w, n, "memory.swap.max", "memory.swap", "max");
		} else if (memory <= 0) {
			return bad(err, "memory.swap",
				   "a swap limit needs a memory limit");
		} else if (r->memory_swap < memory) {
			return bad(err, "memory.swap",
				   "memory+swap must be at least the memory "
				   "limit");
		} else {
			add(w, n, "memory.swap.max", "memory.swap", "%" PRId64,
			    r->memory_swap - memory);
		}
	}
	if (r->has_cpu_shares) {
		if (r->cpu_shares < 2 || r->cpu_shares > 262144)
			return bad(err, "cpu.shares", "must be 2 to 262144");
		add(w, n, "cpu.weight", "cpu.shares", "%" PRIu64,
		    1 + ((r->cpu_shares - 2) * 9999) / 262142);
	}
	if (r->has_cpu_period &&
	    (r->cpu_period < 1000 || r->cpu_period > 1000000))
		return bad(err, "cpu.period", "must be 1000 to 1000000 µs");
	if (r->has_cpu_quota && (r->cpu_quota == 0 || r->cpu_quota < -1))
		return bad(err, "cpu.quota", "must be more than 0, or -1");
	if (r->has_cpu_quota || r->has_cpu_period) {
		/* "max" or the quota, then the period when given (the
		 * kernel keeps the one in force otherwise) */
		char q[24] = "max";

		if (r->has_cpu_quota && r->cpu_quota > 0)
			snprintf(q, sizeof(q), "%" PRId64, r->cpu_quota);
		if (r->has_cpu_period)
			add(w, n, "cpu.max",
			    r->has_cpu_quota ? "cpu.quota" : "cpu.period",
			    "%s %" PRIu64, q, r->cpu_period);
		else
			add(w, n, "cpu.max", "cpu.quota", "%s", q);
	}
	if (r->cpuset_cpus != NULL && r->cpuset_cpus[0] != '\0') {
		if (!cpuset_valid(r->cpuset_cpus))
			return bad(err, "cpu.cpus", "not a cpu list");
		add(w, n, "cpuset.cpus", "cpu.cpus", "%s", r->cpuset_cpus);
	}
	if (r->cpuset_mems != NULL && r->cpuset_mems[0] != '\0') {
		if (!cpuset_valid(r->cpuset_mems))
			return bad(err, "cpu.mems", "not a node list");
		add(w, n, "cpuset.mems", "cpu.mems", "%s", r->cpuset_mems);
	}
	if (r->has_pids_limit) {
		if (r->pids_limit == 0 || r->pids_limit < -1)
			return bad(err, "pids.limit",
				   "must be more than 0, or -1");
		add_limit(w, n, "pids.max", "pids.limit", r->pids_limit);
	}
	if (r->blkio_weight != 0) {
		if (r->blkio_weight < 10 || r->blkio_weight > 1000)
			return bad(err, "blockIO.weight", "must be 10 to 1000");
		add(w, n, "io.weight", "blockIO.weight", "%u",
		    1 + ((r->blkio_weight - 10) * 9999) / 990);
	}
	*new_memory = memory;
	return 0;
}

static uint64_t guest_mem_total(void)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return UINT64_MAX;
	return (uint64_t)si.totalram * si.mem_unit;
}

int res_apply(struct ctr *c, const Kiln__Agent__V1__Resources *r,
	      struct kiln_error *err)
{
	struct res_write w[RES_WRITES_MAX];
	int64_t memory;
	size_t n;
	int res;

	res = res_plan(r, c->memory_limit, guest_mem_total(), w, &n, &memory,
		       err);
	if (res < 0 || n == 0)
		return res;
	if (mkdir(c->cgroup, 0755) < 0 && errno != EEXIST)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "mkdir `%s`",
				  c->cgroup);
	for (size_t i = 0; i < n; i++) {
		char path[200];
		struct kiln_error e = { 0 };

		snprintf(path, sizeof(path), "%s/%s", c->cgroup, w[i].file);
		if (sandbox_write_file(path, w[i].value, &e) == 0)
			continue;
		if (e.errnum == ENOENT)
			return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
					  "linux.resources.%s: the guest "
					  "kernel has no %s",
					  w[i].field, w[i].file);
		return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, e.errnum,
				  "linux.resources.%s: %s `%s`", w[i].field,
				  w[i].file, w[i].value);
	}
	c->memory_limit = memory;
	for (size_t i = 0; i < n; i++)
		log_debug("container %s: %s %s", c->id, w[i].file, w[i].value);
	return 0;
}

int res_update(const Kiln__Agent__V1__UpdateContainerRequest *req,
	       struct kiln_error *err)
{
	struct ctr *c = ctr_get(req->container_id, err);
	bool stopped;
	int res;

	if (c == NULL)
		return -TTRPC_NOT_FOUND;
	pthread_mutex_lock(&c->op);
	pthread_mutex_lock(&ctr_lock);
	stopped = c->state == CTR_STOPPED;
	pthread_mutex_unlock(&ctr_lock);
	if (c->removed)
		res = AGENT_FAIL(err, TTRPC_NOT_FOUND, 0,
				 "container `%s` not found", c->id);
	else if (stopped)
		res = AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
				 "container `%s` is stopped", c->id);
	else
		res = res_apply(c, req->resources, err);
	pthread_mutex_unlock(&c->op);
	ctr_put(c);
	return res;
}
