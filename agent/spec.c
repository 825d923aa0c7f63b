/* SPDX-License-Identifier: Apache-2.0 */
/* Validation and parsing for kiln-agent; see spec.h. */
#include "spec.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "../lib/cleanup.h"

bool spec_id_valid(const char *id)
{
	size_t i;

	if (id == NULL || !isalnum((unsigned char)id[0]))
		return false;
	for (i = 0; id[i] != '\0'; i++) {
		unsigned char c = id[i];

		if (i >= SPEC_ID_MAX)
			return false;
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

int spec_check_id(const char *what, const char *id, bool allow_empty,
		  struct kiln_error *err)
{
	if (allow_empty && id != NULL && id[0] == '\0')
		return 0;
	if (spec_id_valid(id))
		return 0;
	if (id == NULL || id[0] == '\0')
		return kiln_error_set(err, 0, "%s is empty", what);
	/* client-controlled: do not echo a long or binary id back */
	return kiln_error_set(err, 0,
			      "%s is not [A-Za-z0-9][A-Za-z0-9_.-]* of at "
			      "most %d bytes",
			      what, SPEC_ID_MAX);
}

int spec_check_str(const char *what, const char *s, size_t max, bool ctl,
		   struct kiln_error *err)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strnlen(s, max + 1);
	if (n > max)
		return kiln_error_set(err, 0, "%s is longer than %zu bytes",
				      what, max);
	if (!ctl)
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				return kiln_error_set(err, 0,
						      "%s has a control "
						      "character",
						      what);
	return 0;
}

int spec_check_path(const char *what, const char *path, struct kiln_error *err)
{
	const char *p;

	if (spec_check_str(what, path, PATH_MAX - 1, false, err) < 0)
		return -1;
	if (path == NULL || path[0] != '/')
		return kiln_error_set(err, 0, "%s `%s` is not absolute", what,
				      path ? path : "");
	for (p = path; *p != '\0';) {
		size_t n;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return kiln_error_set(err, 0,
					      "%s `%s` has a . or .. component",
					      what, path);
		p += n;
	}
	return 0;
}

/* ---- rlimits and capabilities ------------------------------------------ */

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
	{ "RLIMIT_AS", RLIMIT_AS },
	{ "RLIMIT_CORE", RLIMIT_CORE },
	{ "RLIMIT_CPU", RLIMIT_CPU },
	{ "RLIMIT_DATA", RLIMIT_DATA },
	{ "RLIMIT_FSIZE", RLIMIT_FSIZE },
	{ "RLIMIT_LOCKS", RLIMIT_LOCKS },
	{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
	{ "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
	{ "RLIMIT_NICE", RLIMIT_NICE },
	{ "RLIMIT_NOFILE", RLIMIT_NOFILE },
	{ "RLIMIT_NPROC", RLIMIT_NPROC },
	{ "RLIMIT_RSS", RLIMIT_RSS },
	{ "RLIMIT_RTPRIO", RLIMIT_RTPRIO },
	{ "RLIMIT_RTTIME", RLIMIT_RTTIME },
	{ "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
	{ "RLIMIT_STACK", RLIMIT_STACK },
};

int spec_rlimit_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
		if (strcmp(rlimit_names[i].name, name) == 0)
			return rlimit_names[i].resource;
	return -1;
}

int spec_cap_from_name(const char *name)
{
	cap_value_t v;

	/* OCI names only: libcap also takes "12" and "chown" */
	if (name == NULL || strncmp(name, "CAP_", 4) != 0 || strlen(name) > 32)
		return -1;
	for (const char *p = name + 4; *p; p++)
		if (!isupper((unsigned char)*p) && *p != '_')
			return -1;
	if (cap_from_name(name, &v) < 0 || v < 0 || v > 63)
		return -1;
	return v;
}

int spec_caps_mask(char **names, size_t n, uint64_t *mask,
		   struct kiln_error *err)
{
	*mask = 0;
	for (size_t i = 0; i < n; i++) {
		int c = spec_cap_from_name(names[i]);

		if (c < 0) {
			if (spec_check_str("capability", names[i], 32, false,
					   NULL) < 0)
				return kiln_error_set(err, 0,
						      "unknown capability");
			return kiln_error_set(err, 0, "unknown capability `%s`",
					      names[i]);
		}
		*mask |= 1ull << c;
	}
	return 0;
}

uint64_t spec_cap_default_mask(void)
{
	static const int caps[] = {
		CAP_CHOWN,
		CAP_DAC_OVERRIDE,
		CAP_FSETID,
		CAP_FOWNER,
		CAP_MKNOD,
		CAP_NET_RAW,
		CAP_SETGID,
		CAP_SETUID,
		CAP_SETFCAP,
		CAP_SETPCAP,
		CAP_NET_BIND_SERVICE,
		CAP_SYS_CHROOT,
		CAP_KILL,
		CAP_AUDIT_WRITE,
	};
	uint64_t m = 0;

	for (size_t i = 0; i < ARRAY_SIZE(caps); i++)
		m |= 1ull << caps[i];
	return m;
}

/* ---- /etc/passwd and /etc/group ----------------------------------------- */

/*
 * guest-controlled: split one line of buf into at most max ':' fields
 * (pointers into a copy in line, which has room for SPEC_STR_MAX bytes).
 * Returns the number of fields, or -1 for a line too long.
 */
static int split_line(const char *start, size_t n, char *line, char **f,
		      int max)
{
	int nf = 0;
	char *p;

	if (n >= SPEC_STR_MAX)
		return -1;
	memcpy(line, start, n);
	line[n] = '\0';
	p = line;
	while (nf < max) {
		f[nf++] = p;
		p = strchr(p, ':');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	return nf;
}

static bool parse_u32(const char *s, uint32_t *v)
{
	char *end;
	unsigned long long x;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	return true;
}

/* calls fn for every line; stops when fn returns true */
#define for_each_line(buf, len, start, n)                                   \
	for (const char *start = (buf), *_end = (buf) + (len), *_nl;        \
	     start < _end &&                                                \
	     ((_nl = memchr(start, '\n', _end - start)) || (_nl = _end)) && \
	     ((n = _nl - start), 1);                                        \
	     start = _nl + 1)

int spec_passwd_lookup(const char *buf, size_t len, const char *name,
		       uint32_t *uid, uint32_t *gid, struct kiln_error *err)
{
	cleanup_free char *line = malloc(SPEC_STR_MAX);
	bool numeric;
	uint32_t want = 0;
	size_t n;

	if (line == NULL)
		return kiln_error_set(err, ENOMEM, "passwd");
	numeric = parse_u32(name, &want);
	for_each_line(buf, len, start, n)
	{
		char *f[7];
		uint32_t u, g;

		if (split_line(start, n, line, f, 7) < 4)
			continue;
		if (!parse_u32(f[2], &u) || !parse_u32(f[3], &g))
			continue;
		if (strcmp(f[0], name) == 0 || (numeric && u == want)) {
			*uid = u;
			*gid = g;
			return 0;
		}
	}
	if (numeric) {
		/* runc: a numeric user need not be in /etc/passwd */
		*uid = want;
		*gid = 0;
		return 0;
	}
	return kiln_error_set(err, 0, "unknown user `%s`", name);
}

size_t spec_group_lookup(const char *buf, size_t len, const char *name,
			 uint32_t *gids, size_t max)
{
	cleanup_free char *line = malloc(SPEC_STR_MAX);
	size_t ng = 0, n;

	if (line == NULL)
		return 0;
	for_each_line(buf, len, start, n)
	{
		char *f[4], *m, *save = NULL;
		uint32_t g;

		if (ng >= max)
			break;
		if (split_line(start, n, line, f, 4) < 4 ||
		    !parse_u32(f[2], &g))
			continue;
		for (m = strtok_r(f[3], ",", &save); m != NULL;
		     m = strtok_r(NULL, ",", &save)) {
			if (strcmp(m, name) == 0) {
				gids[ng++] = g;
				break;
			}
		}
	}
	return ng;
}

/* ---- mount options ------------------------------------------------------ */

static const struct {
	const char *name;
	unsigned long set, clear;
} mount_flags[] = {
	{ "ro", MS_RDONLY, 0 },
	{ "rw", 0, MS_RDONLY },
	{ "nosuid", MS_NOSUID, 0 },
	{ "suid", 0, MS_NOSUID },
	{ "nodev", MS_NODEV, 0 },
	{ "dev", 0, MS_NODEV },
	{ "noexec", MS_NOEXEC, 0 },
	{ "exec", 0, MS_NOEXEC },
	{ "sync", MS_SYNCHRONOUS, 0 },
	{ "async", 0, MS_SYNCHRONOUS },
	{ "dirsync", MS_DIRSYNC, 0 },
	{ "mand", MS_MANDLOCK, 0 },
	{ "nomand", 0, MS_MANDLOCK },
	{ "atime", 0, MS_NOATIME },
	{ "noatime", MS_NOATIME, 0 },
	{ "diratime", 0, MS_NODIRATIME },
	{ "nodiratime", MS_NODIRATIME, 0 },
	{ "relatime", MS_RELATIME, 0 },
	{ "norelatime", 0, MS_RELATIME },
	{ "strictatime", MS_STRICTATIME, 0 },
	{ "nostrictatime", 0, MS_STRICTATIME },
	{ "lazytime", MS_LAZYTIME, 0 },
	{ "nolazytime", 0, MS_LAZYTIME },
	{ "silent", MS_SILENT, 0 },
	{ "loud", 0, MS_SILENT },
	{ "defaults", 0, 0 },
};

static const struct {
	const char *name;
	unsigned long flags;
} mount_propagation[] = {
	{ "private", MS_PRIVATE },
	{ "rprivate", MS_PRIVATE | MS_REC },
	{ "shared", MS_SHARED },
	{ "rshared", MS_SHARED | MS_REC },
	{ "slave", MS_SLAVE },
	{ "rslave", MS_SLAVE | MS_REC },
	{ "unbindable", MS_UNBINDABLE },
	{ "runbindable", MS_UNBINDABLE | MS_REC },
};

static bool mount_flag(const char *o, struct spec_mount_opts *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(mount_flags); i++)
		if (strcmp(o, mount_flags[i].name) == 0) {
			out->flags |= mount_flags[i].set;
			out->flags &= ~mount_flags[i].clear;
			return true;
		}
	for (size_t i = 0; i < ARRAY_SIZE(mount_propagation); i++)
		if (strcmp(o, mount_propagation[i].name) == 0) {
			out->propagation = mount_propagation[i].flags;
			return true;
		}
	if (strcmp(o, "bind") == 0 || strcmp(o, "rbind") == 0) {
		out->bind = true;
		out->recursive = o[0] == 'r';
		return true;
	}
	return false;
}

int spec_mount_opts_parse(char *const *opts, size_t n,
			  struct spec_mount_opts *out, struct kiln_error *err)
{
	size_t used = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const char *o = opts[i];
		size_t len;

		/* client-controlled */
		if (spec_check_str("mount option", o, SPEC_MOUNT_DATA_MAX - 1,
				   false, err) < 0)
			return -1;
		if (o[0] == '\0')
			continue;
		if (mount_flag(o, out))
			continue;
		if (strchr(o, ',') != NULL)
			return kiln_error_set(
				err, 0, "mount option `%s` has a comma", o);
		len = strlen(o);
		if (used + (used ? 1 : 0) + len >= sizeof(out->data))
			return kiln_error_set(err, 0,
					      "mount options longer than %d "
					      "bytes",
					      SPEC_MOUNT_DATA_MAX - 1);
		if (used)
			out->data[used++] = ',';
		memcpy(out->data + used, o, len);
		used += len;
		out->data[used] = '\0';
	}
	return 0;
}

/* ---- the stdio attach line --------------------------------------------- */

int spec_stream_header_parse(const char *line, size_t len,
			     struct spec_stream_hdr *h, struct kiln_error *err)
{
	static const char *const names[] = { "stdin", "stdout", "stderr" };
	char buf[SPEC_STREAM_LINE_MAX + 1], *f[3], *save = NULL;
	int nf = 0;

	/* guest-side, host-controlled: bounded, printable, three fields */
	if (len > SPEC_STREAM_LINE_MAX)
		return kiln_error_set(err, 0, "attach line too long");
	memcpy(buf, line, len);
	buf[len] = '\0';
	if (strlen(buf) != len)
		return kiln_error_set(err, 0, "attach line has a NUL byte");
	for (char *t = strtok_r(buf, " ", &save); t != NULL;
	     t = strtok_r(NULL, " ", &save)) {
		if (nf == 3)
			return kiln_error_set(err, 0,
					      "attach line has more than 3 "
					      "fields");
		f[nf++] = t;
	}
	if (nf != 3)
		return kiln_error_set(err, 0,
				      "attach line is not `<container_id> "
				      "<exec_id|-> <stream>`");
	if (spec_check_id("container_id", f[0], false, err) < 0)
		return -1;
	if (strcmp(f[1], "-") != 0 &&
	    spec_check_id("exec_id", f[1], false, err) < 0)
		return -1;
	memset(h, 0, sizeof(*h));
	strcpy(h->container_id, f[0]);
	if (strcmp(f[1], "-") != 0)
		strcpy(h->exec_id, f[1]);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(f[2], names[i]) == 0) {
			h->stream = (enum spec_stream)i;
			return 0;
		}
	return kiln_error_set(err, 0, "unknown stream (stdin, stdout, stderr)");
}

/* ---- sandbox ------------------------------------------------------------ */

int spec_sysctl_path(const char *key, char *buf, size_t len,
		     struct kiln_error *err)
{
	size_t n, i;

	/* client-controlled: becomes a path under /proc/sys */
	n = key ? strnlen(key, 256) : 0;
	if (n == 0 || n >= 256)
		return kiln_error_set(err, 0, "sysctl name empty or too long");
	for (i = 0; i < n; i++) {
		unsigned char c = key[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '-' && c != '/')
			return kiln_error_set(err, 0,
					      "sysctl name has a bad "
					      "character");
	}
	if (key[0] == '.' || key[0] == '/' || key[n - 1] == '.' ||
	    key[n - 1] == '/' || strstr(key, "..") || strstr(key, "//") ||
	    strstr(key, "./") || strstr(key, "/."))
		return kiln_error_set(err, 0, "sysctl name `%s` is malformed",
				      key);
	if ((size_t)snprintf(buf, len, "/proc/sys/%s", key) >= len)
		return kiln_error_set(err, 0, "sysctl name too long");
	/* dots separate levels unless the name uses slashes (an interface
	 * name such as eth0.100 in net/ipv4/conf/eth0.100/forwarding) */
	if (strchr(key, '/') == NULL)
		for (char *p = buf + 10; *p; p++)
			if (*p == '.')
				*p = '/';
	return 0;
}

bool spec_hostname_valid(const char *name)
{
	size_t n = name ? strnlen(name, 65) : 0, label = 0;

	if (n == 0 || n > 64)
		return false;
	/* no empty label, none over 63 bytes, none that starts or ends
	 * with '-' */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = name[i];

		if (c == '.') {
			if (label == 0 || name[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-')
			return false;
		if (++label > 63 || (c == '-' && label == 1))
			return false;
	}
	return name[n - 1] != '-' && name[n - 1] != '.';
}

/* ---- stats files --------------------------------------------------------- */

int spec_kv_get(const char *buf, const char *key, uint64_t *v)
{
	size_t kl = strlen(key);

	for (const char *p = buf; p && *p;
	     p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
			*v = strtoull(p + kl + 1, NULL, 10);
			return 0;
		}
	}
	return -1;
}

void spec_io_stat_sum(const char *buf, uint64_t *rbytes, uint64_t *wbytes)
{
	const char *p;

	*rbytes = *wbytes = 0;
	for (p = buf; (p = strstr(p, "bytes=")) != NULL; p += 6) {
		if (p - buf >= 1 && p[-1] == 'r' &&
		    (p - buf == 1 || p[-2] == ' '))
			*rbytes += strtoull(p + 6, NULL, 10);
		else if (p - buf >= 1 && p[-1] == 'w' &&
			 (p - buf == 1 || p[-2] == ' '))
			*wbytes += strtoull(p + 6, NULL, 10);
	}
}

void spec_net_dev_sum(const char *buf, uint64_t *rx, uint64_t *tx)
{
	const char *p;

	*rx = *tx = 0;
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		const char *colon = strchr(p, ':'), *nl = strchr(p, '\n');
		unsigned long long v[9];
		char name[32];
		size_t n;
		const char *s = p;

		if (colon == NULL || (nl && colon > nl))
			continue;
		while (*s == ' ')
			s++;
		n = colon - s;
		if (n == 0 || n >= sizeof(name))
			continue;
		memcpy(name, s, n);
		name[n] = '\0';
		if (strcmp(name, "lo") == 0)
			continue;
		if (sscanf(colon + 1,
			   "%llu %llu %llu %llu %llu %llu %llu %llu %llu",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7], &v[8]) == 9) {
			*rx += v[0];
			*tx += v[8];
		}
	}
}

uint64_t spec_parse_limit(const char *buf)
{
	if (strncmp(buf, "max", 3) == 0)
		return 0;
	return strtoull(buf, NULL, 10);
}
