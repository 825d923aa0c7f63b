/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a container's VM comes from: kiln-vmm, the guest kernel and the
 * agent's initramfs, and the VM's size.
 *
 * Defaults follow the install layout (`make install`): kiln-vmm beside
 * kiln, the guest in ../share/kiln; a build tree (build/kiln,
 * build/guest/) works too. /etc/kiln/config.json (or $KILN_CONFIG)
 * overrides them:
 *   { "vmm": PATH, "kernel": PATH, "initramfs": PATH, "cache_dir": PATH,
 *     "vcpus": N, "memory_mib": N, "boot_timeout_s": N,
 *     "templates": BOOL (default true: fork from warm templates),
 *     "template_dir": PATH (default <--root>/templates),
 *     "jail": BOOL (default true: kiln-vmm --jail, docs/jail.md),
 *     "virtiofsd": PATH (default /usr/lib/qemu/virtiofsd, Debian's),
 *     "pod_volumes": BOOL (default false: a pod's VM shares host
 *                    directories over virtio-fs and boots cold, podfs.c) }
 * and a container's annotations io.kiln.vcpus / io.kiln.memory_mib size
 * its own VM. linux.resources sizes it first: the memory limit plus
 * KILN_MEM_OVERHEAD_MIB for the guest kernel and agent, a CPU quota
 * rounded up to whole vCPUs.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/file.h"
#include "../lib/json.h"
#include "kiln.h"

#define CONFIG_MAX (64u << 10)

void vm_config_clear(struct vm_config *c)
{
	free(c->vmm);
	free(c->kernel);
	free(c->initramfs);
	free(c->cache_dir);
	free(c->template_dir);
	free(c->virtiofsd);
	memset(c, 0, sizeof(*c));
}

/* dir/rel if it exists, else NULL */
static char *existing(const char *dir, const char *rel)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, rel) < 0)
		return NULL;
	if (access(p, F_OK) == 0)
		return p;
	free(p);
	return NULL;
}

static char *first_existing(const char *dir, const char *a, const char *b)
{
	char *p = existing(dir, a);
	char *q = NULL;

	if (p != NULL)
		return p;
	p = existing(dir, b);
	if (p != NULL)
		return p;
	/* neither: name the install path in the error create gives */
	if (asprintf(&q, "%s/%s", dir, a) < 0)
		return NULL;
	return q;
}

static int defaults(struct vm_config *c, struct kiln_error *err)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n < 0)
		return kiln_error_set(err, errno, "readlink /proc/self/exe");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash != NULL)
		*slash = '\0';
	c->vmm = first_existing(exe, "kiln-vmm", "kiln-vmm");
	c->kernel =
		first_existing(exe, "../share/kiln/vmlinux", "guest/vmlinux");
	c->initramfs = first_existing(exe, "../share/kiln/initramfs",
				      "guest/agent.cpio");
	c->cache_dir = strdup(KILN_DEFAULT_CACHE);
	c->virtiofsd = strdup(KILN_DEFAULT_VIRTIOFSD);
	c->vcpus = 1;
	c->memory_mib = KILN_DEFAULT_MEM_MIB;
	c->boot_timeout_s = 120;
	c->templates = true;
	c->jail = true;
	if (c->vmm == NULL || c->kernel == NULL || c->initramfs == NULL ||
	    c->cache_dir == NULL || c->virtiofsd == NULL)
		return kiln_error_set(err, ENOMEM, "vm config");
	return 0;
}

static int set_path(yajl_val root, const char *key, char **out,
		    struct kiln_error *err)
{
	char *v = NULL;

	if (json_string(json_get(root, key), key, &v, err) < 0)
		return -1;
	if (v == NULL)
		return 0;
	if (v[0] != '/') {
		free(v);
		return kiln_error_set(err, 0, "%s: must be an absolute path",
				      key);
	}
	free(*out);
	*out = v;
	return 0;
}

static int set_uint(yajl_val root, const char *key, uint64_t max, uint32_t *out,
		    struct kiln_error *err)
{
	uint64_t v = *out;

	if (json_uint(json_get(root, key), key, max, &v, err) < 0)
		return -1;
	if (v == 0)
		return kiln_error_set(err, 0, "%s: must be at least 1", key);
	*out = (uint32_t)v;
	return 0;
}

static int config_read(struct vm_config *c, struct kiln_error *err)
{
	const char *path = getenv("KILN_CONFIG");
	cleanup_free char *text = NULL;
	size_t len = 0;
	yajl_val root;
	int res = 0;

	memset(c, 0, sizeof(*c));
	if (defaults(c, err) < 0)
		return -1;
	if (path == NULL || path[0] == '\0')
		path = KILN_CONFIG_PATH;
	text = file_read(path, CONFIG_MAX, &len, err);
	if (text == NULL) {
		if (err->errnum == ENOENT) {
			memset(err, 0, sizeof(*err));
			return 0;
		}
		return -1;
	}
	root = json_parse(text, len, err);
	if (root == NULL)
		return kiln_error_wrap(err, "%s", path);
	if (json_want_object(root, "config", err) < 0 ||
	    set_path(root, "vmm", &c->vmm, err) < 0 ||
	    set_path(root, "kernel", &c->kernel, err) < 0 ||
	    set_path(root, "initramfs", &c->initramfs, err) < 0 ||
	    set_path(root, "cache_dir", &c->cache_dir, err) < 0 ||
	    set_uint(root, "vcpus", KILN_MAX_VCPUS, &c->vcpus, err) < 0 ||
	    set_uint(root, "memory_mib", KILN_MAX_MEM_MIB, &c->memory_mib,
		     err) < 0 ||
	    set_uint(root, "boot_timeout_s", 3600, &c->boot_timeout_s, err) <
		    0 ||
	    json_bool(json_get(root, "templates"), "templates", &c->templates,
		      err) < 0 ||
	    json_bool(json_get(root, "jail"), "jail", &c->jail, err) < 0 ||
	    json_bool(json_get(root, "pod_volumes"), "pod_volumes",
		      &c->pod_volumes, err) < 0 ||
	    set_path(root, "template_dir", &c->template_dir, err) < 0 ||
	    set_path(root, "virtiofsd", &c->virtiofsd, err) < 0)
		res = kiln_error_wrap(err, "%s", path);
	yajl_tree_free(root);
	return res;
}

/*
 * The VMM, kernel and initramfs by their real paths: kiln-vmm's jail
 * binds each at the path it is given, and refuses one with `..` (the
 * installed default is <bindir>/../share/kiln/...) or a symlink's name.
 */
static void config_real_paths(struct vm_config *c)
{
	char **v[] = { &c->vmm, &c->kernel, &c->initramfs };

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *r = *v[i] != NULL ? realpath(*v[i], NULL) : NULL;

		if (r != NULL) {
			free(*v[i]);
			*v[i] = r;
		}
	}
}

int vm_config_load(struct vm_config *c, struct kiln_error *err)
{
	if (config_read(c, err) < 0)
		return -1;
	config_real_paths(c);
	return 0;
}

/* An annotation of a whole number, or 0 when absent; -1 with err. */
static int annotation_u64(const struct oci_spec *spec, const char *key,
			  uint64_t *out, struct kiln_error *err)
{
	const char *v = oci_spec_annotation(spec, key);
	unsigned long long n;
	char *end;

	*out = 0;
	if (v == NULL)
		return 0;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
		return kiln_error_set(err, 0,
				      "annotations.%s: \"%s\" is not a "
				      "number",
				      key, v);
	*out = n;
	return 0;
}

/* The same, from 1 to max, left alone when absent. */
static int annotation_uint(const struct oci_spec *spec, const char *key,
			   uint32_t max, uint32_t *out, struct kiln_error *err)
{
	uint64_t n;

	if (annotation_u64(spec, key, &n, err) < 0 || n > max ||
	    (n == 0 && oci_spec_annotation(spec, key) != NULL))
		return kiln_error_set(err, 0,
				      "annotations.%s: \"%s\" is not a "
				      "number from 1 to %u",
				      key, oci_spec_annotation(spec, key), max);
	if (n > 0)
		*out = (uint32_t)n;
	return 0;
}

/* The highest CPU a cpuset list ("0-3,6") names; -1 with err. */
static long cpuset_highest(const char *list, struct kiln_error *err)
{
	const char *p = list;
	long high = -1;

	while (*p != '\0') {
		char *end;
		long a, b;

		errno = 0;
		a = strtol(p, &end, 10);
		b = a;
		if (end != p && *end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
		}
		if (errno != 0 || end == p || a < 0 || b < a ||
		    (*end != ',' && *end != '\0'))
			return kiln_error_set(err, 0,
					      "linux.resources.cpu.cpus: "
					      "\"%s\" "
					      "is not a CPU list",
					      list);
		if (b > high)
			high = b;
		p = *end == ',' ? end + 1 : end;
	}
	return high;
}

/*
 * A pod's sandbox: its VM holds all the pod's containers, whose summed
 * limits the CRI plugin gives it (containerd 1.6 with kubelet 1.23 and
 * later); the VM is at least that big.
 */
static int pod_size(struct vm_config *c, const struct oci_spec *spec,
		    struct kiln_error *err)
{
	uint64_t mem, quota, period;

	if (!pod_is_sandbox(spec) ||
	    annotation_u64(spec, "io.kubernetes.cri.sandbox-memory", &mem,
			   err) < 0 ||
	    annotation_u64(spec, "io.kubernetes.cri.sandbox-cpu-quota", &quota,
			   err) < 0 ||
	    annotation_u64(spec, "io.kubernetes.cri.sandbox-cpu-period",
			   &period, err) < 0)
		return pod_is_sandbox(spec) ? -1 : 0;
	if (mem > 0) {
		uint64_t mib =
			((mem + (1 << 20) - 1) >> 20) + KILN_MEM_OVERHEAD_MIB;

		if (mib > KILN_MAX_MEM_MIB)
			return kiln_error_set(err, 0,
					      "annotations.io.kubernetes.cri."
					      "sandbox-memory: %llu bytes is "
					      "more than a VM of %u MiB",
					      (unsigned long long)mem,
					      KILN_MAX_MEM_MIB);
		if (mib > c->memory_mib)
			c->memory_mib = (uint32_t)mib;
	}
	if (quota > 0) {
		uint64_t n = (quota + (period ? period : 100000) - 1) /
			     (period ? period : 100000);

		if (n > KILN_MAX_VCPUS)
			n = KILN_MAX_VCPUS;
		if (n > c->vcpus)
			c->vcpus = (uint32_t)n;
	}
	return 0;
}

int vm_config_size(struct vm_config *c, const struct oci_spec *spec,
		   struct kiln_error *err)
{
	const struct oci_resources *r =
		spec->linux_ != NULL && spec->linux_->has_resources
			? &spec->linux_->resources
			: NULL;

	if (r != NULL && r->memory_limit > 0) {
		uint64_t mib = ((uint64_t)r->memory_limit + (1 << 20) - 1) >>
			       20;

		mib += KILN_MEM_OVERHEAD_MIB;
		if (mib > KILN_MAX_MEM_MIB)
			return kiln_error_set(err, 0,
					      "linux.resources.memory.limit: "
					      "%lld bytes is more than a VM "
					      "of %u MiB",
					      (long long)r->memory_limit,
					      KILN_MAX_MEM_MIB);
		c->memory_mib = (uint32_t)mib;
	}
	if (r != NULL && r->cpu_quota > 0) {
		uint64_t period = r->cpu_period ? r->cpu_period : 100000;
		uint64_t n = ((uint64_t)r->cpu_quota + period - 1) / period;

		c->vcpus = (uint32_t)(n > KILN_MAX_VCPUS ? KILN_MAX_VCPUS : n);
	}
	/* the guest applies the cpuset (agent/resources.c): every CPU it
	 * names must exist there */
	if (r != NULL && r->cpu_cpus != NULL && r->cpu_cpus[0] != '\0') {
		long high = cpuset_highest(r->cpu_cpus, err);

		if (high < 0)
			return -1;
		if (high >= KILN_MAX_VCPUS)
			return kiln_error_set(err, 0,
					      "linux.resources.cpu.cpus: CPU "
					      "%ld is beyond a VM's %d vCPUs",
					      high, KILN_MAX_VCPUS);
		if ((uint32_t)high + 1 > c->vcpus)
			c->vcpus = (uint32_t)high + 1;
	}
	if (pod_size(c, spec, err) < 0 ||
	    annotation_uint(spec, "io.kiln.vcpus", KILN_MAX_VCPUS, &c->vcpus,
			    err) < 0 ||
	    annotation_uint(spec, "io.kiln.memory_mib", KILN_MAX_MEM_MIB,
			    &c->memory_mib, err) < 0)
		return -1;
	return 0;
}

int vm_config_check(const struct vm_config *c, struct kiln_error *err)
{
	const struct {
		const char *what, *path;
		int mode;
	} need[] = {
		{ "kiln-vmm", c->vmm, X_OK },
		{ "guest kernel", c->kernel, R_OK },
		{ "guest initramfs", c->initramfs, R_OK },
	};

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (access(need[i].path, need[i].mode) < 0)
			return kiln_error_set(err, errno,
					      "%s `%s` (set it in %s)",
					      need[i].what, need[i].path,
					      KILN_CONFIG_PATH);
	return 0;
}
