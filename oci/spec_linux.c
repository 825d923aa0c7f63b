/* SPDX-License-Identifier: Apache-2.0 */
/* config.json's "linux" section: namespaces, devices, resources, seccomp. */
#include "spec_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *const oci_ns_names[OCI_NS_TYPES] = {
	[OCI_NS_PID] = "pid",	    [OCI_NS_NETWORK] = "network",
	[OCI_NS_MOUNT] = "mount",   [OCI_NS_IPC] = "ipc",
	[OCI_NS_UTS] = "uts",	    [OCI_NS_USER] = "user",
	[OCI_NS_CGROUP] = "cgroup", [OCI_NS_TIME] = "time",
};

static int parse_namespaces(struct oci_linux *l, yajl_val v,
			    struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	int n = json_array_len(v, "linux.namespaces", OCI_NS_TYPES, err);

	if (n < 0)
		return -1;
	l->namespaces = oci_alloc_array((size_t)n, sizeof(*l->namespaces),
					"linux.namespaces", err);
	if (l->namespaces == NULL)
		return -1;
	l->n_namespaces = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct oci_namespace *ns = &l->namespaces[i];
		yajl_val e = v->u.array.values[i];
		cleanup_free char *type = NULL;
		int t;

		if (json_want_object(e, SUBPATH(p, "linux.namespaces[%d]", i),
				     err) < 0 ||
		    json_string(json_get(e, "type"),
				SUBPATH(p, "linux.namespaces[%d].type", i),
				&type, err) < 0 ||
		    json_string(json_get(e, "path"),
				SUBPATH(p, "linux.namespaces[%d].path", i),
				&ns->path, err) < 0)
			return -1;
		if (type == NULL)
			return kiln_error_set(err, 0,
					      "linux.namespaces[%d].type: "
					      "missing",
					      i);
		for (t = 0; t < OCI_NS_TYPES; t++)
			if (strcmp(type, oci_ns_names[t]) == 0)
				break;
		if (t == OCI_NS_TYPES)
			return kiln_error_set(err, 0,
					      "linux.namespaces[%d].type: "
					      "unknown \"%s\"",
					      i, type);
		for (int j = 0; j < i; j++)
			if (l->namespaces[j].type == (enum oci_ns_type)t)
				return kiln_error_set(err, 0,
						      "linux.namespaces[%d]."
						      "type: \"%s\" given "
						      "twice",
						      i, type);
		ns->type = (enum oci_ns_type)t;
		if (ns->path != NULL && ns->path[0] != '/')
			return kiln_error_set(err, 0,
					      "linux.namespaces[%d].path: "
					      "\"%s\" is not an absolute path",
					      i, ns->path);
	}
	return 0;
}

static int parse_id_mappings(struct oci_id_mapping **out, size_t *count,
			     yajl_val v, const char *path,
			     struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	int n = json_array_len(v, path, OCI_ARRAY_MAX, err);

	if (n < 0)
		return -1;
	*out = oci_alloc_array((size_t)n, sizeof(**out), path, err);
	if (*out == NULL)
		return -1;
	*count = (size_t)n;
	for (int i = 0; i < n; i++) {
		yajl_val e = v->u.array.values[i];
		uint64_t c = 0, h = 0, s = 0;

		if (json_want_object(e, SUBPATH(p, "%s[%d]", path, i), err) <
			    0 ||
		    json_uint(json_get(e, "containerID"),
			      SUBPATH(p, "%s[%d].containerID", path, i),
			      UINT32_MAX, &c, err) < 0 ||
		    json_uint(json_get(e, "hostID"),
			      SUBPATH(p, "%s[%d].hostID", path, i), UINT32_MAX,
			      &h, err) < 0 ||
		    json_uint(json_get(e, "size"),
			      SUBPATH(p, "%s[%d].size", path, i), UINT32_MAX,
			      &s, err) < 0)
			return -1;
		(*out)[i] = (struct oci_id_mapping){ (uint32_t)c, (uint32_t)h,
						     (uint32_t)s };
	}
	return 0;
}

/* "c", "b", "u", "p" (devices) or "a", "c", "b" (the cgroup's list) */
static int parse_dev_type(yajl_val v, const char *path, const char *allowed,
			  char *out, struct kiln_error *err)
{
	cleanup_free char *s = NULL;

	if (json_string(v, path, &s, err) < 0)
		return -1;
	if (s == NULL)
		return 0;
	if (strlen(s) != 1 || strchr(allowed, s[0]) == NULL)
		return kiln_error_set(err, 0, "%s: unknown \"%s\"", path, s);
	*out = s[0];
	return 0;
}

static int parse_devices(struct oci_linux *l, yajl_val v,
			 struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	int n = json_array_len(v, "linux.devices", OCI_ARRAY_MAX, err);

	if (n < 0)
		return -1;
	l->devices = oci_alloc_array((size_t)n, sizeof(*l->devices),
				     "linux.devices", err);
	if (l->devices == NULL)
		return -1;
	l->n_devices = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct oci_device *d = &l->devices[i];
		yajl_val e = v->u.array.values[i];
		uint64_t u = 0;

		if (json_want_object(e, SUBPATH(p, "linux.devices[%d]", i),
				     err) < 0 ||
		    json_string(json_get(e, "path"),
				SUBPATH(p, "linux.devices[%d].path", i),
				&d->path, err) < 0 ||
		    parse_dev_type(json_get(e, "type"),
				   SUBPATH(p, "linux.devices[%d].type", i),
				   "cbup", &d->type, err) < 0 ||
		    json_int(json_get(e, "major"),
			     SUBPATH(p, "linux.devices[%d].major", i), 0,
			     UINT32_MAX, &d->major, err) < 0 ||
		    json_int(json_get(e, "minor"),
			     SUBPATH(p, "linux.devices[%d].minor", i), 0,
			     UINT32_MAX, &d->minor, err) < 0)
			return -1;
		if (d->path == NULL || d->path[0] != '/')
			return kiln_error_set(err, 0,
					      "linux.devices[%d].path: must be "
					      "an absolute path",
					      i);
		if (d->type == 0)
			return kiln_error_set(
				err, 0, "linux.devices[%d].type: missing", i);
		if ((d->has_file_mode = json_get(e, "fileMode") != NULL)) {
			if (json_uint(json_get(e, "fileMode"),
				      SUBPATH(p, "linux.devices[%d].fileMode",
					      i),
				      07777, &u, err) < 0)
				return -1;
			d->file_mode = (uint32_t)u;
		}
		if ((d->has_uid = json_get(e, "uid") != NULL)) {
			if (json_uint(json_get(e, "uid"),
				      SUBPATH(p, "linux.devices[%d].uid", i),
				      UINT32_MAX, &u, err) < 0)
				return -1;
			d->uid = (uint32_t)u;
		}
		if ((d->has_gid = json_get(e, "gid") != NULL)) {
			if (json_uint(json_get(e, "gid"),
				      SUBPATH(p, "linux.devices[%d].gid", i),
				      UINT32_MAX, &u, err) < 0)
				return -1;
			d->gid = (uint32_t)u;
		}
	}
	return 0;
}

static int parse_cgroup_devices(struct oci_resources *r, yajl_val v,
				struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	int n = json_array_len(v, "linux.resources.devices", OCI_ARRAY_MAX,
			       err);

	if (n < 0)
		return -1;
	r->devices = oci_alloc_array((size_t)n, sizeof(*r->devices),
				     "linux.resources.devices", err);
	if (r->devices == NULL)
		return -1;
	r->n_devices = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct oci_device_cgroup *d = &r->devices[i];
		yajl_val e = v->u.array.values[i];

		d->type = 'a';
		d->major = d->minor = -1;
		if (json_want_object(
			    e, SUBPATH(p, "linux.resources.devices[%d]", i),
			    err) < 0 ||
		    json_bool(json_get(e, "allow"),
			      SUBPATH(p, "linux.resources.devices[%d].allow",
				      i),
			      &d->allow, err) < 0 ||
		    parse_dev_type(
			    json_get(e, "type"),
			    SUBPATH(p, "linux.resources.devices[%d].type", i),
			    "acb", &d->type, err) < 0 ||
		    json_int(json_get(e, "major"),
			     SUBPATH(p, "linux.resources.devices[%d].major", i),
			     -1, UINT32_MAX, &d->major, err) < 0 ||
		    json_int(json_get(e, "minor"),
			     SUBPATH(p, "linux.resources.devices[%d].minor", i),
			     -1, UINT32_MAX, &d->minor, err) < 0 ||
		    json_string(json_get(e, "access"),
				SUBPATH(p, "linux.resources.devices[%d].access",
					i),
				&d->access, err) < 0)
			return -1;
		if (json_get(e, "allow") == NULL)
			return kiln_error_set(err, 0,
					      "linux.resources.devices[%d]."
					      "allow: missing",
					      i);
		if (d->access != NULL &&
		    (d->access[strspn(d->access, "rwm")] != '\0'))
			return kiln_error_set(err, 0,
					      "linux.resources.devices[%d]."
					      "access: \"%s\" is not a subset "
					      "of \"rwm\"",
					      i, d->access);
	}
	return 0;
}

static int parse_memory(struct oci_resources *r, yajl_val v,
			struct kiln_error *err)
{
	const char *P = "linux.resources.memory";
	char p[OCI_PATH_MAX];

	if (json_want_object(v, P, err) < 0 ||
	    json_int(json_get(v, "limit"), SUBPATH(p, "%s.limit", P), -1,
		     INT64_MAX, &r->memory_limit, err) < 0 ||
	    json_int(json_get(v, "reservation"),
		     SUBPATH(p, "%s.reservation", P), -1, INT64_MAX,
		     &r->memory_reservation, err) < 0 ||
	    json_int(json_get(v, "swap"), SUBPATH(p, "%s.swap", P), -1,
		     INT64_MAX, &r->memory_swap, err) < 0 ||
	    json_bool(json_get(v, "disableOOMKiller"),
		      SUBPATH(p, "%s.disableOOMKiller", P),
		      &r->disable_oom_killer, err) < 0)
		return -1;
	/* a limit of 0 would mean no memory at all: runc takes it as none */
	if (r->memory_limit == 0)
		r->memory_limit = -1;
	r->has_swappiness = json_get(v, "swappiness") != NULL;
	return 0;
}

static int parse_cpu(struct oci_resources *r, yajl_val v,
		     struct kiln_error *err)
{
	const char *P = "linux.resources.cpu";
	char p[OCI_PATH_MAX];

	if (json_want_object(v, P, err) < 0 ||
	    json_uint(json_get(v, "shares"), SUBPATH(p, "%s.shares", P),
		      UINT64_MAX, &r->cpu_shares, err) < 0 ||
	    json_int(json_get(v, "quota"), SUBPATH(p, "%s.quota", P), -1,
		     INT64_MAX, &r->cpu_quota, err) < 0 ||
	    json_uint(json_get(v, "period"), SUBPATH(p, "%s.period", P),
		      UINT64_MAX, &r->cpu_period, err) < 0 ||
	    json_string(json_get(v, "cpus"), SUBPATH(p, "%s.cpus", P),
			&r->cpu_cpus, err) < 0 ||
	    json_string(json_get(v, "mems"), SUBPATH(p, "%s.mems", P),
			&r->cpu_mems, err) < 0)
		return -1;
	if (r->cpu_quota == 0)
		r->cpu_quota = -1;
	r->has_cpu_realtime = json_get(v, "realtimeRuntime") != NULL ||
			      json_get(v, "realtimePeriod") != NULL;
	return 0;
}

static int parse_resources(struct oci_resources *r, yajl_val v,
			   struct kiln_error *err)
{
	yajl_val pids = json_get(v, "pids");

	r->memory_limit = r->memory_reservation = r->memory_swap = -1;
	r->cpu_quota = r->pids_limit = -1;
	if (json_want_object(v, "linux.resources", err) < 0 ||
	    parse_memory(r, json_get(v, "memory"), err) < 0 ||
	    parse_cpu(r, json_get(v, "cpu"), err) < 0 ||
	    json_want_object(pids, "linux.resources.pids", err) < 0 ||
	    json_int(json_get(pids, "limit"), "linux.resources.pids.limit",
		     INT64_MIN, INT64_MAX, &r->pids_limit, err) < 0 ||
	    parse_cgroup_devices(r, json_get(v, "devices"), err) < 0 ||
	    json_want_object(json_get(v, "blockIO"), "linux.resources.blockIO",
			     err) < 0 ||
	    json_uint(json_get(json_get(v, "blockIO"), "weight"),
		      "linux.resources.blockIO.weight", 1000, &r->blkio_weight,
		      err) < 0 ||
	    json_strmap(json_get(v, "unified"), "linux.resources.unified",
			&r->unified_keys, &r->unified_values, &r->n_unified,
			err) < 0)
		return -1;
	/* runc: zero or less is no limit */
	if (r->pids_limit <= 0)
		r->pids_limit = -1;
	r->has_block_io = json_get(v, "blockIO") != NULL;
	r->has_hugepage_limits = json_get(v, "hugepageLimits") != NULL;
	r->has_network = json_get(v, "network") != NULL;
	r->has_rdma = json_get(v, "rdma") != NULL;
	r->has_unified = r->n_unified > 0;
	return 0;
}

static int parse_seccomp_args(struct oci_seccomp_rule *rule, yajl_val v,
			      const char *path, struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	int n = json_array_len(v, path, 6, err); /* a syscall has 6 args */

	if (n < 0)
		return -1;
	rule->args = oci_alloc_array((size_t)n, sizeof(*rule->args), path, err);
	if (rule->args == NULL)
		return -1;
	rule->n_args = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct oci_seccomp_arg *a = &rule->args[i];
		yajl_val e = v->u.array.values[i];
		uint64_t idx = 0;

		if (json_want_object(e, SUBPATH(p, "%s[%d]", path, i), err) <
			    0 ||
		    json_uint(json_get(e, "index"),
			      SUBPATH(p, "%s[%d].index", path, i), 5, &idx,
			      err) < 0 ||
		    json_uint(json_get(e, "value"),
			      SUBPATH(p, "%s[%d].value", path, i), UINT64_MAX,
			      &a->value, err) < 0 ||
		    json_uint(json_get(e, "valueTwo"),
			      SUBPATH(p, "%s[%d].valueTwo", path, i),
			      UINT64_MAX, &a->value_two, err) < 0 ||
		    json_string(json_get(e, "op"),
				SUBPATH(p, "%s[%d].op", path, i), &a->op,
				err) < 0)
			return -1;
		a->index = (uint32_t)idx;
		if (a->op == NULL)
			return kiln_error_set(err, 0, "%s[%d].op: missing",
					      path, i);
	}
	return 0;
}

static int parse_seccomp_rules(struct oci_seccomp *sc, yajl_val v,
			       struct kiln_error *err)
{
	const char *P = "linux.seccomp.syscalls";
	char p[OCI_PATH_MAX];
	int n = json_array_len(v, P, OCI_ARRAY_MAX, err);

	if (n < 0)
		return -1;
	sc->syscalls =
		oci_alloc_array((size_t)n, sizeof(*sc->syscalls), P, err);
	if (sc->syscalls == NULL)
		return -1;
	sc->n_syscalls = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct oci_seccomp_rule *r = &sc->syscalls[i];
		yajl_val e = v->u.array.values[i];
		uint64_t eno = 0;

		if (json_want_object(e, SUBPATH(p, "%s[%d]", P, i), err) < 0 ||
		    json_strv(json_get(e, "names"),
			      SUBPATH(p, "%s[%d].names", P, i), &r->names,
			      &r->n_names, err) < 0 ||
		    json_string(json_get(e, "action"),
				SUBPATH(p, "%s[%d].action", P, i), &r->action,
				err) < 0 ||
		    json_uint(json_get(e, "errnoRet"),
			      SUBPATH(p, "%s[%d].errnoRet", P, i), 4095, &eno,
			      err) < 0 ||
		    parse_seccomp_args(r, json_get(e, "args"),
				       SUBPATH(p, "%s[%d].args", P, i),
				       err) < 0)
			return -1;
		if (r->action == NULL)
			return kiln_error_set(err, 0, "%s[%d].action: missing",
					      P, i);
		if (r->n_names == 0)
			return kiln_error_set(err, 0, "%s[%d].names: empty", P,
					      i);
		r->has_errno_ret = json_get(e, "errnoRet") != NULL;
		r->errno_ret = (uint32_t)eno;
	}
	return 0;
}

static int parse_seccomp(struct oci_linux *l, yajl_val v,
			 struct kiln_error *err)
{
	struct oci_seccomp *sc;
	uint64_t eno = 0;

	if (v == NULL)
		return 0;
	if (json_want_object(v, "linux.seccomp", err) < 0)
		return -1;
	sc = l->seccomp = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return kiln_error_set(err, ENOMEM, "linux.seccomp");
	if (json_string(json_get(v, "defaultAction"),
			"linux.seccomp.defaultAction", &sc->default_action,
			err) < 0 ||
	    json_uint(json_get(v, "defaultErrnoRet"),
		      "linux.seccomp.defaultErrnoRet", 4095, &eno, err) < 0 ||
	    json_strv(json_get(v, "architectures"),
		      "linux.seccomp.architectures", &sc->architectures,
		      &sc->n_architectures, err) < 0 ||
	    json_strv(json_get(v, "flags"), "linux.seccomp.flags", &sc->flags,
		      &sc->n_flags, err) < 0 ||
	    json_string(json_get(v, "listenerPath"),
			"linux.seccomp.listenerPath", &sc->listener_path,
			err) < 0 ||
	    parse_seccomp_rules(sc, json_get(v, "syscalls"), err) < 0)
		return -1;
	if (sc->default_action == NULL)
		return kiln_error_set(err, 0,
				      "linux.seccomp.defaultAction: missing");
	sc->has_default_errno_ret = json_get(v, "defaultErrnoRet") != NULL;
	sc->default_errno_ret = (uint32_t)eno;
	return 0;
}

int oci_parse_linux(struct oci_linux *l, yajl_val v, struct kiln_error *err)
{
	yajl_val res = json_get(v, "resources");

	if (json_want_object(v, "linux", err) < 0 ||
	    parse_namespaces(l, json_get(v, "namespaces"), err) < 0 ||
	    parse_id_mappings(&l->uid_mappings, &l->n_uid_mappings,
			      json_get(v, "uidMappings"), "linux.uidMappings",
			      err) < 0 ||
	    parse_id_mappings(&l->gid_mappings, &l->n_gid_mappings,
			      json_get(v, "gidMappings"), "linux.gidMappings",
			      err) < 0 ||
	    parse_devices(l, json_get(v, "devices"), err) < 0 ||
	    json_string(json_get(v, "cgroupsPath"), "linux.cgroupsPath",
			&l->cgroups_path, err) < 0 ||
	    json_strmap(json_get(v, "sysctl"), "linux.sysctl", &l->sysctl_keys,
			&l->sysctl_values, &l->n_sysctl, err) < 0 ||
	    parse_seccomp(l, json_get(v, "seccomp"), err) < 0 ||
	    json_string(json_get(v, "rootfsPropagation"),
			"linux.rootfsPropagation", &l->rootfs_propagation,
			err) < 0 ||
	    json_strv(json_get(v, "maskedPaths"), "linux.maskedPaths",
		      &l->masked_paths, &l->n_masked_paths, err) < 0 ||
	    json_strv(json_get(v, "readonlyPaths"), "linux.readonlyPaths",
		      &l->readonly_paths, &l->n_readonly_paths, err) < 0 ||
	    json_string(json_get(v, "mountLabel"), "linux.mountLabel",
			&l->mount_label, err) < 0)
		return -1;
	l->has_resources = res != NULL;
	if (parse_resources(&l->resources, res, err) < 0)
		return -1;
	l->has_intel_rdt = json_get(v, "intelRdt") != NULL;
	l->has_personality = json_get(v, "personality") != NULL;
	return 0;
}

void oci_linux_free(struct oci_linux *l)
{
	struct oci_resources *r = &l->resources;

	for (size_t i = 0; i < l->n_namespaces; i++)
		free(l->namespaces[i].path);
	free(l->namespaces);
	free(l->uid_mappings);
	free(l->gid_mappings);
	for (size_t i = 0; i < l->n_devices; i++)
		free(l->devices[i].path);
	free(l->devices);
	free(l->cgroups_path);
	free(r->cpu_cpus);
	free(r->cpu_mems);
	for (size_t i = 0; i < r->n_devices; i++)
		free(r->devices[i].access);
	free(r->devices);
	json_strv_free(r->unified_keys);
	json_strv_free(r->unified_values);
	json_strv_free(l->sysctl_keys);
	json_strv_free(l->sysctl_values);
	if (l->seccomp != NULL) {
		struct oci_seccomp *sc = l->seccomp;

		free(sc->default_action);
		json_strv_free(sc->architectures);
		json_strv_free(sc->flags);
		free(sc->listener_path);
		for (size_t i = 0; i < sc->n_syscalls; i++) {
			struct oci_seccomp_rule *rule = &sc->syscalls[i];

			json_strv_free(rule->names);
			free(rule->action);
			for (size_t j = 0; j < rule->n_args; j++)
				free(rule->args[j].op);
			free(rule->args);
		}
		free(sc->syscalls);
		free(sc);
	}
	free(l->rootfs_propagation);
	json_strv_free(l->masked_paths);
	json_strv_free(l->readonly_paths);
	free(l->mount_label);
}
