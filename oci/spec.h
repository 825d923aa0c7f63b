/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An OCI bundle's config.json (runtime-spec 1.0 to 1.2) as C structs.
 *
 * oci_spec_parse() reads every field that changes what a container may do
 * and checks its type and range; errors name the field by its JSON path
 * ("process.args: empty", "linux.namespaces[2].type: unknown \"foo\"").
 * Members the spec does not define are ignored, as the spec requires of a
 * runtime. Whether kiln honours a field, maps it to its VM meaning or
 * refuses it is decided by oci_spec_check_support() (oci/support.c), not
 * here: this file only reads.
 *
 * Vectors of strings are NULL-terminated with their length beside them.
 */
#ifndef KILN_OCI_SPEC_H
#define KILN_OCI_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/error.h"

#define OCI_CONFIG_MAX (4u << 20) /* bytes of config.json we read */

struct oci_user {
	uint32_t uid, gid;
	bool has_umask;
	uint32_t umask;
	uint32_t *additional_gids;
	size_t n_additional_gids;
	char *username; /* Windows' field; refused on Linux */
};

struct oci_rlimit {
	char *type; /* "RLIMIT_NOFILE" */
	uint64_t soft, hard;
};

struct oci_capabilities {
	char **bounding, **effective, **inheritable, **permitted, **ambient;
	size_t n_bounding, n_effective, n_inheritable, n_permitted, n_ambient;
};

struct oci_process {
	bool terminal;
	bool has_console_size;
	uint32_t console_width, console_height;
	struct oci_user user;
	char **args;
	size_t n_args;
	char *command_line; /* Windows' field; refused on Linux */
	char **env;
	size_t n_env;
	char *cwd;
	struct oci_capabilities *capabilities; /* NULL: absent */
	struct oci_rlimit *rlimits;
	size_t n_rlimits;
	bool no_new_privileges;
	char *apparmor_profile;
	bool has_oom_score_adj;
	int32_t oom_score_adj;
	char *selinux_label;
	bool has_io_priority;
	bool has_scheduler;
};

struct oci_mount {
	char *destination;
	char *type; /* may be NULL: a bind mount by options */
	char *source;
	char **options;
	size_t n_options;
	bool has_id_mappings;
};

struct oci_hook {
	char *path;
	char **args;
	size_t n_args;
	char **env;
	size_t n_env;
	bool has_timeout;
	int64_t timeout; /* seconds, > 0 */
};

enum oci_hook_kind {
	OCI_HOOK_PRESTART,
	OCI_HOOK_CREATE_RUNTIME,
	OCI_HOOK_CREATE_CONTAINER,
	OCI_HOOK_START_CONTAINER,
	OCI_HOOK_POSTSTART,
	OCI_HOOK_POSTSTOP,
	OCI_HOOK_KINDS
};

extern const char *const oci_hook_names[OCI_HOOK_KINDS];

enum oci_ns_type {
	OCI_NS_PID,
	OCI_NS_NETWORK,
	OCI_NS_MOUNT,
	OCI_NS_IPC,
	OCI_NS_UTS,
	OCI_NS_USER,
	OCI_NS_CGROUP,
	OCI_NS_TIME,
	OCI_NS_TYPES
};

extern const char *const oci_ns_names[OCI_NS_TYPES];

struct oci_namespace {
	enum oci_ns_type type;
	char *path; /* NULL: a new namespace */
};

struct oci_id_mapping {
	uint32_t container_id, host_id, size;
};

struct oci_device {
	char *path;
	char type; /* 'c', 'b', 'u' or 'p' */
	int64_t major, minor;
	bool has_file_mode, has_uid, has_gid;
	uint32_t file_mode, uid, gid;
};

struct oci_device_cgroup {
	bool allow;
	char type;	      /* 'a', 'c' or 'b'; 'a' when absent */
	int64_t major, minor; /* -1: any */
	char *access;	      /* "rwm" or a subset; NULL: all */
};

/* Absent numbers are -1 (limits) or 0 (shares, period) as noted. */
struct oci_resources {
	int64_t memory_limit;	    /* bytes, -1: none */
	int64_t memory_reservation; /* bytes, -1: none */
	int64_t memory_swap;	    /* bytes incl. memory, -1: none */
	bool has_swappiness, disable_oom_killer;
	uint64_t cpu_shares;   /* 0: absent */
	int64_t cpu_quota;     /* µs per period, -1: none */
	uint64_t cpu_period;   /* µs, 0: absent */
	char *cpu_cpus;	       /* cpuset "0-3,6" */
	char *cpu_mems;	       /* cpuset mems */
	bool has_cpu_realtime; /* realtimeRuntime/realtimePeriod */
	int64_t pids_limit;    /* -1: none */
	uint64_t blkio_weight; /* blockIO.weight, 0: absent */
	struct oci_device_cgroup *devices;
	size_t n_devices;
	bool has_block_io, has_hugepage_limits, has_network, has_rdma;
	bool has_unified;
	char **unified_keys, **unified_values; /* cgroup v2 files */
	size_t n_unified;
};

struct oci_seccomp_arg {
	uint32_t index;
	uint64_t value, value_two;
	char *op; /* "SCMP_CMP_EQ" */
};

struct oci_seccomp_rule {
	char **names;
	size_t n_names;
	char *action; /* "SCMP_ACT_ERRNO" */
	bool has_errno_ret;
	uint32_t errno_ret;
	struct oci_seccomp_arg *args;
	size_t n_args;
};

struct oci_seccomp {
	char *default_action;
	bool has_default_errno_ret;
	uint32_t default_errno_ret;
	char **architectures;
	size_t n_architectures;
	char **flags;
	size_t n_flags;
	char *listener_path;
	struct oci_seccomp_rule *syscalls;
	size_t n_syscalls;
};

struct oci_linux {
	struct oci_namespace *namespaces;
	size_t n_namespaces;
	struct oci_id_mapping *uid_mappings, *gid_mappings;
	size_t n_uid_mappings, n_gid_mappings;
	struct oci_device *devices;
	size_t n_devices;
	char *cgroups_path;
	struct oci_resources resources;
	bool has_resources;
	char **sysctl_keys, **sysctl_values;
	size_t n_sysctl;
	struct oci_seccomp *seccomp; /* NULL: none */
	char *rootfs_propagation;
	char **masked_paths;
	size_t n_masked_paths;
	char **readonly_paths;
	size_t n_readonly_paths;
	char *mount_label;
	bool has_intel_rdt, has_personality;
};

struct oci_spec {
	char *oci_version;
	char *root_path; /* as written: relative to the bundle, or absolute */
	bool root_readonly;
	struct oci_process *process; /* NULL: absent (create refuses it) */
	char *hostname;
	char *domainname;
	struct oci_mount *mounts;
	size_t n_mounts;
	struct oci_hook *hooks[OCI_HOOK_KINDS];
	size_t n_hooks[OCI_HOOK_KINDS];
	char **annotation_keys, **annotation_values;
	size_t n_annotations;
	struct oci_linux *linux_; /* NULL: absent */
	bool has_windows, has_solaris, has_vm;
};

/* Parse config.json text; NULL with err naming the field on bad input. */
struct oci_spec *oci_spec_parse(const char *text, size_t len,
				struct kiln_error *err);
/* Read and parse BUNDLE/config.json. */
struct oci_spec *oci_spec_load(const char *bundle, struct kiln_error *err);
void oci_spec_free(struct oci_spec *s);
/* An annotation's value, or NULL. */
const char *oci_spec_annotation(const struct oci_spec *s, const char *key);

/* Parse a process.json (exec --process): the same rules as "process". */
struct oci_process *oci_process_parse(const char *text, size_t len,
				      struct kiln_error *err);
void oci_process_free(struct oci_process *p);

#endif
