/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: kiln-agent's own checks of what the host sends, once
 * ttrpc has decoded it (fuzz_ttrpc covers the framing), and of the files a
 * container image supplies. Only the pure parts of agent/ run: nothing
 * mounts, clones or opens a file outside the input.
 *
 * Input: one byte picks a mode (mod 6), the rest is its payload.
 *   0  Process: a u16 (little-endian) length and a packed Process, then,
 *      when bytes remain, a u16 length and /etc/passwd, the rest
 *      /etc/group: proc_spec_from_msg, then proc_spec_resolve_user reading
 *      those files through the sandbox_read_file below.
 *   1  CreateContainerRequest: what ctr_create and mount_rootfs check
 *      before they touch the system (id, process, mount plan with its
 *      carried-in files and masked and read-only paths, rootfs with its
 *      layers and upper device).
 *   2  the stdio attach line, raw.
 *   3  a user name up to the first NUL, then a file searched both as
 *      /etc/passwd and as /etc/group.
 *   4  the payload as a C string through every text parser and name check
 *      (cgroup and /proc stats files, sysctl names, host names, ids).
 *   5  CreateSandboxRequest: its host name and sysctls as sandbox_create
 *      checks them.
 * Whatever a function accepts is checked against what its header
 * promises (valid ids, absolute paths without . or .., bounded sizes and
 * counts); a broken promise aborts.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "../../agent/agent.h"
#include "../../agent/mount.h"
#include "../../agent/spec.h"
#include "../../lib/log.h"

#define CHECK(cond)                                                    \
	do {                                                           \
		if (!(cond)) {                                         \
			fprintf(stderr, "%s:%d: broken promise: %s\n", \
				__FILE__, __LINE__, #cond);            \
			abort();                                       \
		}                                                      \
	} while (0)

/* what proc_spec_resolve_user gets as the container's root */
#define FUZZ_ROOTFD 1000

/* the image's /etc/passwd and /etc/group, when the input has them */
static struct {
	const uint8_t *data;
	size_t len;
	bool present;
} files[2];

/*
 * Stands in for agent/sandbox.c's (whose other functions mount, set the
 * clock and power off): serves the input's files to
 * proc_spec_resolve_user, as the real one would, with a NUL after them.
 */
char *sandbox_read_file(int dirfd, const char *path, size_t max, size_t *len,
			struct kiln_error *err)
{
	int i = strcmp(path, "etc/passwd") == 0	 ? 0
		: strcmp(path, "etc/group") == 0 ? 1
						 : -1;
	char *buf;

	/* only ever relative to the container's root */
	CHECK(dirfd == FUZZ_ROOTFD && i >= 0);
	if (!files[i].present) {
		kiln_error_set(err, ENOENT, "open `%s`", path);
		return NULL;
	}
	if (files[i].len > max) {
		kiln_error_set(err, EFBIG, "read `%s`", path);
		return NULL;
	}
	buf = malloc(files[i].len + 1);
	if (buf == NULL)
		abort();
	memcpy(buf, files[i].data, files[i].len);
	buf[files[i].len] = '\0';
	*len = files[i].len;
	return buf;
}

static bool no_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* spec_check_path's promise, written out again */
static bool path_ok(const char *p)
{
	size_t n = strlen(p);

	if (p[0] != '/' || n >= PATH_MAX || !no_ctl(p))
		return false;
	for (const char *c = p; *c;) {
		size_t l;

		while (*c == '/')
			c++;
		l = strcspn(c, "/");
		if ((l == 1 && c[0] == '.') ||
		    (l == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c += l;
	}
	return true;
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > SPEC_ID_MAX || !isalnum((unsigned char)id[0]))
		return false;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789_.-") == n;
}

static void check_id(const char *id)
{
	struct kiln_error err;

	CHECK(spec_id_valid(id) == id_ok(id));
	CHECK((spec_check_id("id", id, false, &err) == 0) == id_ok(id));
	CHECK((spec_check_id("id", id, true, &err) == 0) ==
	      (id_ok(id) || id[0] == '\0'));
}

static void check_path(const char *p)
{
	struct kiln_error err;

	CHECK((spec_check_path("path", p, &err) == 0) == path_ok(p));
}

static uint64_t cap_all(int cap_last)
{
	return cap_last >= 63 ? ~0ull : (2ull << cap_last) - 1;
}

static void check_proc_spec(const Kiln__Agent__V1__Process *m,
			    const struct proc_spec *s)
{
	uint64_t all = cap_all(s->cap_last);
	size_t n = 0;

	CHECK(s->argv != NULL && s->envp != NULL && s->cwd != NULL);
	CHECK(s->path != NULL);
	for (; s->argv[n] != NULL; n++)
		;
	CHECK(n == m->n_args && n > 0 && s->argv[0][0] != '\0');
	for (char **e = s->envp; *e != NULL; e++)
		CHECK(strchr(*e, '=') != NULL && (*e)[0] != '=');
	CHECK(path_ok(s->cwd));
	CHECK(s->ngroups <= SPEC_GROUPS_MAX);
	CHECK(!s->has_umask || s->umask <= 0777);
	CHECK(s->nrlimits <= AGENT_RLIMITS_MAX);
	for (size_t i = 0; i < s->nrlimits; i++) {
		CHECK(s->rlimits[i].resource >= 0 &&
		      s->rlimits[i].resource < RLIM_NLIMITS);
		CHECK(s->rlimits[i].rl.rlim_cur <= s->rlimits[i].rl.rlim_max);
	}
	CHECK(s->cap_last >= 0 && s->cap_last <= 63);
	/* a filter exactly when asked, within the kernel's bound */
	CHECK((m->seccomp == NULL) == (s->seccomp.insns == NULL));
	CHECK(s->seccomp.insns == NULL ||
	      (s->seccomp.len > 0 && s->seccomp.len <= 4096));
	CHECK((s->cap_bounding & ~all) == 0 && (s->cap_effective & ~all) == 0 &&
	      (s->cap_permitted & ~all) == 0 &&
	      (s->cap_inheritable & ~all) == 0 && (s->cap_ambient & ~all) == 0);
	if (s->username != NULL)
		CHECK(s->username[0] != '\0' && strlen(s->username) <= 256 &&
		      strchr(s->username, ':') == NULL && no_ctl(s->username));
}

static const unsigned long known_flags =
	MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS |
	MS_DIRSYNC | MS_MANDLOCK | MS_NOATIME | MS_NODIRATIME | MS_RELATIME |
	MS_STRICTATIME | MS_LAZYTIME | MS_SILENT;

static void check_mount_opts(const struct spec_mount_opts *o)
{
	unsigned long prop = o->propagation & ~MS_REC;
	size_t n = strnlen(o->data, sizeof(o->data));

	CHECK((o->flags & ~known_flags) == 0);
	CHECK(prop == 0 || prop == MS_PRIVATE || prop == MS_SHARED ||
	      prop == MS_SLAVE || prop == MS_UNBINDABLE);
	CHECK(!o->recursive || o->bind);
	/* options joined by single commas, each one printable */
	CHECK(n < sizeof(o->data) && no_ctl(o->data));
	CHECK(n == 0 || (o->data[0] != ',' && o->data[n - 1] != ','));
	CHECK(strstr(o->data, ",,") == NULL);
}

static void mount_opts(char **opts, size_t n)
{
	struct spec_mount_opts o;
	struct kiln_error err;

	if (spec_mount_opts_parse(opts, n, &o, &err) == 0)
		check_mount_opts(&o);
}

static void proc_spec(const Kiln__Agent__V1__Process *m, bool resolve)
{
	struct proc_spec s;
	struct kiln_error err;

	if (proc_spec_from_msg(m, &s, &err) == 0) {
		check_proc_spec(m, &s);
		if (resolve &&
		    proc_spec_resolve_user(&s, FUZZ_ROOTFD, &err) == 0) {
			CHECK(s.ngroups <= SPEC_GROUPS_MAX);
			CHECK(s.username == NULL || s.username[0] != '\0');
		}
	}
	proc_spec_free(&s);
}

static uint16_t get_u16(const uint8_t **p, size_t *len)
{
	uint16_t v;

	if (*len < 2) {
		*len = 0;
		return 0;
	}
	v = (uint16_t)((*p)[0] | (*p)[1] << 8);
	*p += 2;
	*len -= 2;
	return v;
}

static void fuzz_process(const uint8_t *p, size_t len)
{
	Kiln__Agent__V1__Process *m;
	size_t n = get_u16(&p, &len);

	if (n > len)
		n = len;
	m = kiln__agent__v1__process__unpack(NULL, n, p);
	p += n;
	len -= n;
	memset(files, 0, sizeof(files));
	if (len > 0) {
		size_t pl = get_u16(&p, &len);

		if (pl > len)
			pl = len;
		files[0] = (typeof(files[0])){ p, pl, true };
		files[1] = (typeof(files[1])){ p + pl, len - pl, true };
	}
	if (m != NULL)
		proc_spec(m, true);
	kiln__agent__v1__process__free_unpacked(m, NULL);
}

static void check_plan(const Kiln__Agent__V1__CreateContainerRequest *req,
		       const struct mount_plan *plan)
{
	size_t files_size = 0, nfiles = 0;

	CHECK(plan->nmounts == req->n_mounts && plan->nmounts <= MOUNTS_MAX);
	CHECK(plan->hostname == NULL || spec_hostname_valid(plan->hostname));
	CHECK(strnlen(plan->root, sizeof(plan->root)) < sizeof(plan->root));
	for (size_t i = 0; i < plan->nmounts; i++) {
		const struct mount_one *o = &plan->mounts[i];

		CHECK(path_ok(o->destination));
		CHECK(strlen(plan->root) + strlen(o->destination) < PATH_MAX);
		CHECK(strlen(o->type) <= 64 && no_ctl(o->type));
		CHECK(strlen(o->source) < PATH_MAX && no_ctl(o->source));
		CHECK(o->opts.bind || o->type[0] != '\0');
		CHECK(!o->opts.bind || o->source[0] == '/');
		check_mount_opts(&o->opts);
		/* a carried-in file: a bind of the agent's own, bounded */
		CHECK((o->data != NULL) == req->mounts[i]->has_data);
		if (o->data != NULL) {
			CHECK(o->opts.bind && o->source == o->file);
			CHECK(strncmp(o->file, AGENT_RUN_DIR "/", 12) == 0);
			CHECK(o->len <= MOUNT_FILE_MAX);
			CHECK((o->mode & ~07777u) == 0 && o->mode != 0);
			files_size += o->len;
			nfiles++;
		}
	}
	CHECK(nfiles == plan->nfiles && files_size == plan->files_size);
	CHECK(files_size <= MOUNT_FILES_TOTAL_MAX);
	CHECK(plan->nmasked <= MOUNT_PATHS_MAX &&
	      plan->nro_paths <= MOUNT_PATHS_MAX);
	for (size_t i = 0; i < plan->nmasked; i++)
		CHECK(path_ok(plan->masked[i]));
	for (size_t i = 0; i < plan->nro_paths; i++)
		CHECK(path_ok(plan->ro_paths[i]));
}

/* mount_rootfs's checks: what it accepts is one device or layers */
static void check_rootfs(const Kiln__Agent__V1__Rootfs *r)
{
	struct spec_mount_opts o;
	struct kiln_error err;

	check_path(r->device);
	check_path(r->upper_device);
	for (size_t i = 0; i < r->n_layers; i++)
		check_path(r->layers[i]->device);
	if (mount_rootfs_check(r, &o, &err) < 0)
		return;
	check_mount_opts(&o);
	if (r->n_layers == 0) {
		CHECK(path_ok(r->device) &&
		      strncmp(r->device, "/dev/", 5) == 0);
		CHECK(r->upper_device[0] == '\0');
		return;
	}
	CHECK(r->n_layers <= MOUNT_LAYERS_MAX && r->device[0] == '\0');
	CHECK(r->n_options == 0);
	for (size_t i = 0; i < r->n_layers; i++) {
		const Kiln__Agent__V1__Layer *l = r->layers[i];

		CHECK(path_ok(l->device) &&
		      strncmp(l->device, "/dev/", 5) == 0);
		CHECK(strcmp(l->fstype, "erofs") == 0 ||
		      strcmp(l->fstype, "ext4") == 0);
		CHECK(strcmp(l->device, r->upper_device) != 0);
	}
	CHECK(r->upper_device[0] == '\0' ||
	      (path_ok(r->upper_device) &&
	       strncmp(r->upper_device, "/dev/", 5) == 0));
}

static void fuzz_create(const uint8_t *p, size_t len)
{
	Kiln__Agent__V1__CreateContainerRequest *req =
		kiln__agent__v1__create_container_request__unpack(NULL, len, p);
	struct mount_plan plan;
	struct kiln_error err;
	char dir[128];

	if (req == NULL)
		return;
	check_id(req->container_id);
	snprintf(dir, sizeof(dir), "%s/%s", AGENT_RUN_DIR,
		 spec_id_valid(req->container_id) ? req->container_id : "x");
	memset(files, 0, sizeof(files));
	if (req->process != NULL)
		proc_spec(req->process, false);
	if (mount_plan_init(&plan, dir, req, &err) == 0)
		check_plan(req, &plan);
	mount_plan_free(&plan);
	for (size_t i = 0; i < req->n_mounts; i++) {
		check_path(req->mounts[i]->destination);
		check_path(req->mounts[i]->source);
	}
	/* mount_rootfs's checks before it waits for a device */
	if (req->rootfs != NULL) {
		check_rootfs(req->rootfs);
		mount_opts(req->rootfs->options, req->rootfs->n_options);
	}
	kiln__agent__v1__create_container_request__free_unpacked(req, NULL);
}

static void fuzz_stream(const uint8_t *p, size_t len)
{
	struct spec_stream_hdr h;
	struct kiln_error err;

	if (spec_stream_header_parse((const char *)p, len, &h, &err) < 0)
		return;
	CHECK(len <= SPEC_STREAM_LINE_MAX && memchr(p, '\0', len) == NULL);
	CHECK(id_ok(h.container_id));
	CHECK(h.exec_id[0] == '\0' || id_ok(h.exec_id));
	CHECK(h.stream == SPEC_STDIN || h.stream == SPEC_STDOUT ||
	      h.stream == SPEC_STDERR);
}

/* does some line of buf start with "name:"? */
static bool has_user(const char *buf, size_t len, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < len;) {
		const char *e = memchr(buf + i, '\n', len - i);
		size_t ll = e ? (size_t)(e - (buf + i)) : len - i;

		if (ll > nl && memcmp(buf + i, name, nl) == 0 &&
		    buf[i + nl] == ':')
			return true;
		i += ll + 1;
	}
	return false;
}

static void fuzz_passwd(const uint8_t *p, size_t len)
{
	const uint8_t *nul = memchr(p, '\0', len);
	size_t nl = nul ? (size_t)(nul - p) : len;
	const char *buf = nul ? (const char *)nul + 1 : "";
	size_t blen = nul ? len - nl - 1 : 0;
	char name[300];
	uint32_t uid, gid, gids[SPEC_GROUPS_MAX];
	struct kiln_error err;
	bool numeric;
	size_t n;

	if (nl >= sizeof(name))
		nl = sizeof(name) - 1;
	memcpy(name, p, nl);
	name[nl] = '\0';
	/* strtoull saturates at ULLONG_MAX */
	numeric = nl > 0 && strspn(name, "0123456789") == nl &&
		  strtoull(name, NULL, 10) <= UINT32_MAX;
	/* buf ends where the input does: ASan sees any read past len */
	if (spec_passwd_lookup(buf, blen, name, &uid, &gid, &err) == 0)
		CHECK(numeric || has_user(buf, blen, name));
	else
		CHECK(!numeric);
	n = spec_group_lookup(buf, blen, name, gids, SPEC_GROUPS_MAX);
	CHECK(n <= SPEC_GROUPS_MAX);
	n = spec_group_lookup(buf, blen, name, gids, 2);
	CHECK(n <= 2);
}

static void check_sysctl(const char *key, size_t len)
{
	char path[300];
	struct kiln_error err;

	if (spec_sysctl_path(key, path, len, &err) < 0)
		return;
	CHECK(strlen(path) < len && strncmp(path, "/proc/sys/", 10) == 0);
	CHECK(path[10] != '\0' && path_ok(path));
	CHECK(strstr(path, "//") == NULL && path[strlen(path) - 1] != '/');
	CHECK(strspn(path + 10, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
				"stuvwxyz0123456789._-/") == strlen(path + 10));
}

/* RFC 1123: labels of 1-63 letters, digits and inner hyphens */
static bool hostname_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (const char *l = s;; l++) {
		size_t ll = strspn(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
				      "op"
				      "qrstuvwxyz0123456789-");

		if (ll == 0 || ll > 63 || l[0] == '-' || l[ll - 1] == '-')
			return false;
		l += ll;
		if (*l == '\0')
			return true;
		if (*l != '.')
			return false;
	}
}

static void fuzz_text(const uint8_t *p, size_t len)
{
	static const char *const keys[] = { "usage_usec", "user_usec",
					    "system_usec", "oom_kill", "" };
	char *s = malloc(len + 1);
	struct kiln_error err;
	uint64_t a, b;

	if (s == NULL)
		abort();
	memcpy(s, p, len);
	s[len] = '\0';
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		spec_kv_get(s, keys[i], &a);
	spec_io_stat_sum(s, &a, &b);
	spec_net_dev_sum(s, &a, &b);
	spec_parse_limit(s);
	check_sysctl(s, 300);
	check_sysctl(s, 24);
	CHECK(spec_hostname_valid(s) == hostname_ok(s));
	check_id(s);
	check_path(s);
	if (spec_check_str("str", s, 16, false, &err) == 0)
		CHECK(strlen(s) <= 16 && no_ctl(s));
	if (spec_rlimit_from_name(s) >= 0)
		CHECK(strncmp(s, "RLIMIT_", 7) == 0);
	if (spec_cap_from_name(s) >= 0)
		CHECK(strncmp(s, "CAP_", 4) == 0 && strlen(s) <= 32);
	free(s);
}

static void fuzz_sandbox(const uint8_t *p, size_t len)
{
	Kiln__Agent__V1__CreateSandboxRequest *req =
		kiln__agent__v1__create_sandbox_request__unpack(NULL, len, p);
	struct kiln_error err;

	if (req == NULL)
		return;
	CHECK(spec_hostname_valid(req->hostname) == hostname_ok(req->hostname));
	for (size_t i = 0; i < req->n_sysctls; i++) {
		check_sysctl(req->sysctls[i]->key, 300);
		spec_check_str("sysctl value", req->sysctls[i]->value, 4096,
			       false, &err);
	}
	kiln__agent__v1__create_sandbox_request__free_unpacked(req, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 6) {
	case 0:
		fuzz_process(data + 1, size - 1);
		break;
	case 1:
		fuzz_create(data + 1, size - 1);
		break;
	case 2:
		fuzz_stream(data + 1, size - 1);
		break;
	case 3:
		fuzz_passwd(data + 1, size - 1);
		break;
	case 4:
		fuzz_text(data + 1, size - 1);
		break;
	default:
		fuzz_sandbox(data + 1, size - 1);
		break;
	}
	return 0;
}
