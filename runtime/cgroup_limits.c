/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host limits of a container's VM, as files of its cgroup: what
 * config.json's linux.resources asks for the whole VM, mapped as runc maps
 * it (libcontainer/cgroups/fs2 and fs), and kept pure so that the unit
 * tests check it. cgroup.c writes them.
 *
 * - CPU: the container's quota and period (cpu.max; v1 cpu.cfs_quota_us
 *   and cpu.cfs_period_us) and its shares (v1 cpu.shares; v2 cpu.weight
 *   by runc 1.1's formula, the one the guest agent uses too): the VM's
 *   vCPUs and its device emulation together get no more host CPU time
 *   than the container asked for, plus KILN_HOST_CPU_OVERHEAD_PCT of one
 *   CPU. The guest holds the container to its quota too, measured in the
 *   guest's time; without that margin the container's processes would
 *   take all the time the vCPU gets and leave the guest's agent none
 *   (seen in the test bed: an exec in a busy container at 20% timed out).
 * - Memory: with a memory limit, memory.max (v1 memory.limit_in_bytes) is
 *   the VM's RAM as vmconf.c sizes it (the limit plus the guest's own
 *   KILN_MEM_OVERHEAD_MIB) plus KILN_HOST_MEM_OVERHEAD_MIB for kiln-vmm,
 *   the pid process and virtiofsd. The guest's RAM is charged to this
 *   cgroup as it touches it, so a guest that touched all of it still
 *   leaves the allowance to the VMM; the container itself is held to its
 *   limit by the guest's cgroup (its OOM kills in the guest).
 * - pids: pids.max bounds the VM's own tasks on the host (see
 *   cgroup_vm_pids_max), not the container's processes, which live in the
 *   guest and are held by its pids limit there: a guest's fork cannot make
 *   a host task, and a limit of 50 on the host would starve the VMM.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kiln.h"

uint64_t cgroup_shares_to_weight(uint64_t shares)
{
	if (shares == 0)
		return 0;
	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	return 1 + ((shares - 2) * 9999) / 262142;
}

void cgroup_cpu_max(int64_t quota, uint64_t period, char *out, size_t len)
{
	char q[24] = "max";

	if (quota > 0)
		snprintf(q, sizeof(q), "%" PRId64, quota);
	if (period != 0)
		snprintf(out, len, "%s %" PRIu64, q, period);
	else
		snprintf(out, len, "%s", q);
}

int64_t cgroup_host_quota(int64_t quota, uint64_t period)
{
	if (quota <= 0)
		return quota;
	if (period == 0)
		period = 100000;
	return quota + (int64_t)(period * KILN_HOST_CPU_OVERHEAD_PCT / 100);
}

int64_t cgroup_vm_memory_max(uint32_t memory_mib)
{
	return ((int64_t)memory_mib + KILN_HOST_MEM_OVERHEAD_MIB) << 20;
}

int64_t cgroup_vm_pids_max(uint32_t vcpus)
{
	return KILN_HOST_PIDS_BASE + (int64_t)vcpus +
	       (int64_t)VM_FS_MAX * KILN_HOST_PIDS_PER_FS;
}

static int check_cpu(uint64_t shares, uint64_t period, int64_t quota,
		     struct kiln_error *err)
{
	if (shares != 0 && (shares < 2 || shares > 262144))
		return kiln_error_set(err, 0,
				      "linux.resources.cpu.shares: %" PRIu64
				      " is not 2 to 262144",
				      shares);
	if (period != 0 && (period < 1000 || period > 1000000))
		return kiln_error_set(err, 0,
				      "linux.resources.cpu.period: %" PRIu64
				      " is not 1000 to 1000000 µs",
				      period);
	if (quota < -1)
		return kiln_error_set(err, 0,
				      "linux.resources.cpu.quota: %" PRId64
				      " is not more than 0, or -1",
				      quota);
	return 0;
}

int cgroup_limits_vm(const struct oci_spec *spec, const struct vm_config *c,
		     struct cgroup_limits *l, struct kiln_error *err)
{
	const struct oci_resources *r =
		spec->linux_ != NULL && spec->linux_->has_resources
			? &spec->linux_->resources
			: NULL;

	memset(l, 0, sizeof(*l));
	l->pids_max = cgroup_vm_pids_max(c->vcpus);
	if (r == NULL)
		return 0;
	if (check_cpu(r->cpu_shares, r->cpu_period, r->cpu_quota, err) < 0)
		return -1;
	/* a new cgroup has no quota: -1 has nothing to lift */
	l->cpu_quota = r->cpu_quota > 0
			       ? cgroup_host_quota(r->cpu_quota, r->cpu_period)
			       : 0;
	l->cpu_period = r->cpu_period;
	l->cpu_shares = r->cpu_shares;
	if (r->memory_limit > 0)
		l->memory_max = cgroup_vm_memory_max(c->memory_mib);
	return 0;
}

int cgroup_limits_update(const Kiln__Agent__V1__Resources *r,
			 struct cgroup_limits *l, struct kiln_error *err)
{
	memset(l, 0, sizeof(*l));
	if (check_cpu(r->has_cpu_shares ? r->cpu_shares : 0,
		      r->has_cpu_period ? r->cpu_period : 0,
		      r->has_cpu_quota ? r->cpu_quota : 0, err) < 0)
		return -1;
	/* a quota without a period: the margin is taken of the default
	 * period (the one in force is not known here) */
	if (r->has_cpu_quota)
		l->cpu_quota = cgroup_host_quota(
			r->cpu_quota, r->has_cpu_period ? r->cpu_period : 0);
	if (r->has_cpu_period)
		l->cpu_period = r->cpu_period;
	if (r->has_cpu_shares)
		l->cpu_shares = r->cpu_shares;
	return 0;
}

static void add(struct cgroup_write *w, size_t *n, const char *ctrl,
		const char *file, const char *value)
{
	w[*n].ctrl = ctrl;
	w[*n].file = file;
	snprintf(w[*n].value, sizeof(w[*n].value), "%s", value);
	w[*n].old[0] = '\0';
	(*n)++;
}

size_t cgroup_plan(const struct cgroup_limits *l, bool v2,
		   struct cgroup_write *w)
{
	char v[32];
	size_t n = 0;

	if (l->cpu_shares != 0) {
		snprintf(v, sizeof(v), "%" PRIu64,
			 v2 ? cgroup_shares_to_weight(l->cpu_shares)
			    : l->cpu_shares);
		add(w, &n, "cpu", v2 ? "cpu.weight" : "cpu.shares", v);
	}
	if (v2 && (l->cpu_quota != 0 || l->cpu_period != 0)) {
		cgroup_cpu_max(l->cpu_quota, l->cpu_period, v, sizeof(v));
		add(w, &n, "cpu", "cpu.max", v);
	}
	/* v1: the period first, so that the quota is taken against it */
	if (!v2 && l->cpu_period != 0) {
		snprintf(v, sizeof(v), "%" PRIu64, l->cpu_period);
		add(w, &n, "cpu", "cpu.cfs_period_us", v);
	}
	if (!v2 && l->cpu_quota != 0) {
		snprintf(v, sizeof(v), "%" PRId64,
			 l->cpu_quota > 0 ? l->cpu_quota : -1);
		add(w, &n, "cpu", "cpu.cfs_quota_us", v);
	}
	if (l->memory_max != 0) {
		if (l->memory_max > 0)
			snprintf(v, sizeof(v), "%" PRId64, l->memory_max);
		else
			snprintf(v, sizeof(v), "%s", v2 ? "max" : "-1");
		add(w, &n, "memory",
		    v2 ? "memory.max" : "memory.limit_in_bytes", v);
	}
	if (l->pids_max != 0) {
		if (l->pids_max > 0)
			snprintf(v, sizeof(v), "%" PRId64, l->pids_max);
		else
			snprintf(v, sizeof(v), "max");
		add(w, &n, "pids", "pids.max", v);
	}
	return n;
}
