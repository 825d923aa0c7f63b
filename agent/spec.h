/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pure parts of kiln-agent: validation and parsing of what the host
 * sends (ids, names, mount options, the stdio attach line) and of files a
 * container image supplies (/etc/passwd, /etc/group). No system calls, so
 * the unit tests drive them directly.
 */
#ifndef KILN_AGENT_SPEC_H
#define KILN_AGENT_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/error.h"

#define SPEC_ID_MAX	    64
#define SPEC_GROUPS_MAX	    64
#define SPEC_MOUNT_DATA_MAX 1024
/* every string a client sends is bounded; paths are PATH_MAX */
#define SPEC_STR_MAX  4096
#define SPEC_ARGS_MAX 4096
#define SPEC_ENV_MAX  4096
/* "<container_id> <exec_id|-> <stream>\n" */
#define SPEC_STREAM_LINE_MAX (2 * SPEC_ID_MAX + 16)

/* [A-Za-z0-9][A-Za-z0-9_.-]*, at most SPEC_ID_MAX bytes */
bool spec_id_valid(const char *id);
/* The same, as an error naming `what`; allow_empty for exec_id "". */
int spec_check_id(const char *what, const char *id, bool allow_empty,
		  struct kiln_error *err);
/* A string field: at most max bytes, no control characters when !ctl. */
int spec_check_str(const char *what, const char *s, size_t max, bool ctl,
		   struct kiln_error *err);
/* absolute, bounded, no "." or ".." component */
int spec_check_path(const char *what, const char *path, struct kiln_error *err);

/* "RLIMIT_NOFILE" -> RLIMIT_NOFILE, or -1 */
int spec_rlimit_from_name(const char *name);
/* "CAP_NET_ADMIN" -> CAP_NET_ADMIN (through libcap), or -1 */
int spec_cap_from_name(const char *name);
/* names to a bit mask; -1 with err naming the first unknown one */
int spec_caps_mask(char **names, size_t n, uint64_t *mask,
		   struct kiln_error *err);
/* OCI's default set (runc's spec): CHOWN DAC_OVERRIDE FSETID ... */
uint64_t spec_cap_default_mask(void);

/*
 * guest-controlled: /etc/passwd and /etc/group come from the container
 * image. name is a user name or a decimal uid. Returns 0 with *uid, *gid;
 * -1 with err (errnum 0) when the user is unknown.
 */
int spec_passwd_lookup(const char *buf, size_t len, const char *name,
		       uint32_t *uid, uint32_t *gid, struct kiln_error *err);
/* Supplementary groups listing user `name` (at most max; 0 when none). */
size_t spec_group_lookup(const char *buf, size_t len, const char *name,
			 uint32_t *gids, size_t max);

/* OCI mount options split into mount(2) flags and the data string */
struct spec_mount_opts {
	unsigned long flags;	   /* MS_RDONLY, MS_NOSUID, ... */
	unsigned long propagation; /* MS_PRIVATE, MS_SHARED, ... (| MS_REC) */
	bool bind;		   /* "bind" or "rbind" */
	bool recursive;		   /* "rbind" */
	char data[SPEC_MOUNT_DATA_MAX];
};
int spec_mount_opts_parse(char *const *opts, size_t n,
			  struct spec_mount_opts *out, struct kiln_error *err);

enum spec_stream {
	SPEC_STDIN = 0,
	SPEC_STDOUT = 1,
	SPEC_STDERR = 2,
};
struct spec_stream_hdr {
	char container_id[SPEC_ID_MAX + 1];
	char exec_id[SPEC_ID_MAX + 1]; /* "" for the init ("-" on the wire) */
	enum spec_stream stream;
};
/* guest-side view of a host line, without its '\n'. */
int spec_stream_header_parse(const char *line, size_t len,
			     struct spec_stream_hdr *h, struct kiln_error *err);

/* "net.ipv4.ip_forward" -> "/proc/sys/net/ipv4/ip_forward" */
int spec_sysctl_path(const char *key, char *buf, size_t len,
		     struct kiln_error *err);
/* RFC 1123 labels, at most 64 bytes */
bool spec_hostname_valid(const char *name);

/*
 * cgroup and /proc file parsing for stats. "key value" lines: 0 and *v
 * when key is found, -1 otherwise.
 */
int spec_kv_get(const char *buf, const char *key, uint64_t *v);
/* io.stat: the sum of rbytes= and wbytes= over every device line */
void spec_io_stat_sum(const char *buf, uint64_t *rbytes, uint64_t *wbytes);
/* /proc/net/dev: rx and tx bytes summed over the interfaces but lo */
void spec_net_dev_sum(const char *buf, uint64_t *rx, uint64_t *tx);
/* "max\n" -> 0, else the number */
uint64_t spec_parse_limit(const char *buf);

#endif
