/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"

#define CONFIG_FILE_MAX (1 << 20)

void vm_config_init(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->vcpu_count = 1;
	c->mem_mib = 128;
	c->log_level = -1;
}

void vm_config_destroy(struct vm_config *c)
{
	free(c->kernel_path);
	free(c->initrd_path);
	free(c->cmdline);
	free(c->console_path);
	for (unsigned int i = 0; i < c->ndrives; i++) {
		free(c->drives[i].id);
		free(c->drives[i].path);
	}
	for (unsigned int i = 0; i < c->nnets; i++) {
		free(c->nets[i].id);
		free(c->nets[i].tap);
	}
	free(c->vsock.uds_path);
	for (unsigned int i = 0; i < c->nfs; i++) {
		free(c->fs[i].id);
		free(c->fs[i].tag);
		free(c->fs[i].socket_path);
	}
	free(c->log_path);
	free(c->metrics_path);
	memset(c, 0, sizeof(*c));
}

int vm_config_parse_mac(const char *s, uint8_t mac[6], struct kiln_error *err)
{
	unsigned int b[6];
	char end;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
		   &b[4], &b[5], &end) != 6 ||
	    strlen(s) != 17)
		return kiln_error_set(err, 0,
				      "MAC `%s`: want XX:XX:XX:XX:XX:XX", s);
	if (b[0] & 1)
		return kiln_error_set(err, 0, "MAC `%s` is a multicast address",
				      s);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

int vm_config_load_file(struct vm_config *c, const char *path,
			struct kiln_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	cleanup_free char *buf = NULL;
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return kiln_error_set(err, errno, "open config `%s`", path);
	if (fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "stat config `%s`", path);
	if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX)
		return kiln_error_set(err, 0,
				      "config `%s`: not a regular file of at "
				      "most 1 MiB",
				      path);
	buf = malloc(st.st_size + 1);
	if (buf == NULL)
		return kiln_error_set(err, ENOMEM, "read config `%s`", path);
	n = read(fd, buf, st.st_size);
	if (n < 0)
		return kiln_error_set(err, errno, "read config `%s`", path);
	if (vm_config_parse_json(c, buf, (size_t)n, err) < 0)
		return kiln_error_wrap(err, "`%s`", path);
	return 0;
}

/*
 * Walk "k=v,k2,k3=v3": calls fn(key, value-or-NULL) for each item.
 * Values cannot hold commas; paths with commas go through --config-file.
 */
static int spec_walk(const char *spec, const char *what,
		     int (*fn)(void *ctx, const char *k, const char *v,
			       struct kiln_error *err),
		     void *ctx, struct kiln_error *err)
{
	cleanup_free char *copy = strdup(spec);
	char *save = NULL, *item;

	if (copy == NULL)
		return kiln_error_set(err, ENOMEM, "%s", what);
	for (item = strtok_r(copy, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');

		if (eq != NULL)
			*eq++ = '\0';
		if (fn(ctx, item, eq, err) < 0)
			return kiln_error_wrap(err, "%s `%s`", what, spec);
	}
	return 0;
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF); NULL counts as valid. */
static bool utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (s != NULL && *s != '\0') {
		unsigned int n, cp;

		if (*s < 0x80) {
			s++;
			continue;
		}
		if (*s >= 0xc2 && *s <= 0xdf)
			n = 1, cp = *s & 0x1f;
		else if (*s >= 0xe0 && *s <= 0xef)
			n = 2, cp = *s & 0x0f;
		else if (*s >= 0xf0 && *s <= 0xf4)
			n = 3, cp = *s & 0x07;
		else
			return false;
		for (unsigned int i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if ((n == 2 &&
		     (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		s += n + 1;
	}
	return true;
}

/*
 * The config is written as JSON (GET /vm/config), which holds UTF-8 only:
 * a string from the command line that is not UTF-8 is refused, as it
 * could not come through a --config-file or the API either.
 */
static int need_utf8(const char *what, const char *v, struct kiln_error *err)
{
	if (!utf8_valid(v))
		return kiln_error_set(err, EINVAL, "%s is not valid UTF-8",
				      what);
	return 0;
}

static int need_value(const char *k, const char *v, struct kiln_error *err)
{
	if (v == NULL || *v == '\0')
		return kiln_error_set(err, 0, "`%s` needs a value", k);
	if (need_utf8(k, v, err) < 0)
		return -1;
	return 0;
}

static int dup_value(char **dst, const char *k, const char *v,
		     struct kiln_error *err)
{
	if (need_value(k, v, err) < 0)
		return -1;
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : kiln_error_set(err, ENOMEM, "copy `%s`", k);
}

static int num_value(uint64_t *out, uint64_t max, const char *k, const char *v,
		     struct kiln_error *err)
{
	char *end;

	if (need_value(k, v, err) < 0)
		return -1;
	errno = 0;
	*out = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || v[0] < '0' || v[0] > '9' ||
	    *out > max)
		return kiln_error_set(err, 0,
				      "`%s=%s`: not a number up to %llu", k, v,
				      (unsigned long long)max);
	return 0;
}

static int drive_kv(void *ctx, const char *k, const char *v,
		    struct kiln_error *err)
{
	struct vm_drive *d = ctx;

	if (strcmp(k, "id") == 0)
		return dup_value(&d->id, k, v, err);
	if (strcmp(k, "path") == 0)
		return dup_value(&d->path, k, v, err);
	if (strcmp(k, "ro") == 0 && v == NULL)
		return d->read_only = true, 0;
	if (strcmp(k, "root") == 0 && v == NULL)
		return d->root = true, 0;
	return kiln_error_set(err, 0, "unknown drive option `%s`", k);
}

int vm_config_add_drive(struct vm_config *c, const char *spec,
			struct kiln_error *err)
{
	if (c->ndrives == VM_MAX_DRIVES)
		return kiln_error_set(err, 0, "more than %d drives",
				      VM_MAX_DRIVES);
	return spec_walk(spec, "--drive", drive_kv, &c->drives[c->ndrives++],
			 err);
}

static int net_kv(void *ctx, const char *k, const char *v,
		  struct kiln_error *err)
{
	struct vm_net *n = ctx;

	if (strcmp(k, "id") == 0)
		return dup_value(&n->id, k, v, err);
	if (strcmp(k, "tap") == 0)
		return dup_value(&n->tap, k, v, err);
	if (strcmp(k, "mac") == 0) {
		if (need_value(k, v, err) < 0 ||
		    vm_config_parse_mac(v, n->mac, err) < 0)
			return -1;
		n->has_mac = true;
		return 0;
	}
	if (strcmp(k, "queue_pairs") == 0) {
		uint64_t v64;

		if (num_value(&v64, VM_MAX_NET_QUEUE_PAIRS, k, v, err) < 0)
			return -1;
		if (v64 == 0)
			return kiln_error_set(err, 0,
					      "`queue_pairs=0`: 1 to %d",
					      VM_MAX_NET_QUEUE_PAIRS);
		n->queue_pairs = v64 > 1 ? (unsigned int)v64 : 0;
		return 0;
	}
	return kiln_error_set(err, 0, "unknown net option `%s`", k);
}

int vm_config_add_net(struct vm_config *c, const char *spec,
		      struct kiln_error *err)
{
	if (c->nnets == VM_MAX_NETS)
		return kiln_error_set(err, 0, "more than %d network interfaces",
				      VM_MAX_NETS);
	return spec_walk(spec, "--net", net_kv, &c->nets[c->nnets++], err);
}

static int vsock_kv(void *ctx, const char *k, const char *v,
		    struct kiln_error *err)
{
	struct vm_vsock *vs = ctx;
	uint64_t n;

	if (strcmp(k, "cid") == 0) {
		if (num_value(&n, UINT32_MAX, k, v, err) < 0)
			return -1;
		vs->cid = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "uds") == 0)
		return dup_value(&vs->uds_path, k, v, err);
	return kiln_error_set(err, 0, "unknown vsock option `%s`", k);
}

int vm_config_set_vsock(struct vm_config *c, const char *spec,
			struct kiln_error *err)
{
	c->vsock.enabled = true;
	return spec_walk(spec, "--vsock", vsock_kv, &c->vsock, err);
}

static int balloon_kv(void *ctx, const char *k, const char *v,
		      struct kiln_error *err)
{
	struct vm_balloon *b = ctx;
	uint64_t n;

	if (strcmp(k, "amount") == 0) {
		if (num_value(&n, UINT32_MAX, k, v, err) < 0)
			return -1;
		b->amount_mib = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "stats") == 0) {
		if (num_value(&n, UINT16_MAX, k, v, err) < 0)
			return -1;
		b->stats_interval_s = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "deflate-on-oom") == 0 && v == NULL)
		return b->deflate_on_oom = true, 0;
	return kiln_error_set(err, 0, "unknown balloon option `%s`", k);
}

int vm_config_set_balloon(struct vm_config *c, const char *spec,
			  struct kiln_error *err)
{
	c->balloon.enabled = true;
	return spec_walk(spec, "--balloon", balloon_kv, &c->balloon, err);
}

static int fs_kv(void *ctx, const char *k, const char *v,
		 struct kiln_error *err)
{
	struct vm_fs *f = ctx;
	uint64_t n;

	if (strcmp(k, "id") == 0)
		return dup_value(&f->id, k, v, err);
	if (strcmp(k, "tag") == 0)
		return dup_value(&f->tag, k, v, err);
	if (strcmp(k, "socket") == 0)
		return dup_value(&f->socket_path, k, v, err);
	if (strcmp(k, "queues") == 0) {
		if (num_value(&n, UINT32_MAX, k, v, err) < 0)
			return -1;
		f->num_queues = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "queue-size") == 0) {
		if (num_value(&n, UINT32_MAX, k, v, err) < 0)
			return -1;
		f->queue_size = (uint32_t)n;
		return 0;
	}
	return kiln_error_set(err, 0, "unknown fs option `%s`", k);
}

void vm_config_fs_defaults(struct vm_fs *f)
{
	f->num_queues = 1;
	f->queue_size = VM_FS_DEFAULT_QSIZE;
}

int vm_config_add_fs(struct vm_config *c, const char *spec,
		     struct kiln_error *err)
{
	if (c->nfs == VM_MAX_FS)
		return kiln_error_set(err, 0, "more than %d fs devices",
				      VM_MAX_FS);
	vm_config_fs_defaults(&c->fs[c->nfs]);
	return spec_walk(spec, "--fs", fs_kv, &c->fs[c->nfs++], err);
}

int vm_config_validate_machine(const struct vm_config *c,
			       struct kiln_error *err)
{
	if (c->vcpu_count < 1 || c->vcpu_count > VM_MAX_VCPUS)
		return kiln_error_set(err, 0, "%u vCPUs: must be 1 to %d",
				      c->vcpu_count, VM_MAX_VCPUS);
	if (c->mem_mib < VM_MIN_MEM_MIB)
		return kiln_error_set(err, 0,
				      "%llu MiB of memory: must be at least %d",
				      (unsigned long long)c->mem_mib,
				      VM_MIN_MEM_MIB);
	/* above this the gap arithmetic and KVM slots would overflow */
	if (c->mem_mib > (1ULL << 20))
		return kiln_error_set(err, 0,
				      "%llu MiB of memory: at most 1 TiB",
				      (unsigned long long)c->mem_mib);
	return 0;
}

int vm_config_validate_drive(const struct vm_drive *d, struct kiln_error *err)
{
	if (d->id == NULL || d->id[0] == '\0')
		return kiln_error_set(err, 0, "a drive needs a drive_id");
	if (d->path == NULL || d->path[0] == '\0')
		return kiln_error_set(err, 0, "drive `%s` needs a path_on_host",
				      d->id);
	return 0;
}

int vm_config_validate_net(const struct vm_net *n, struct kiln_error *err)
{
	if (n->id == NULL || n->id[0] == '\0')
		return kiln_error_set(err, 0,
				      "a network interface needs an iface_id");
	if (n->tap == NULL || n->tap[0] == '\0')
		return kiln_error_set(err, 0,
				      "network interface `%s` needs a "
				      "host_dev_name",
				      n->id);
	if (strlen(n->tap) >= 16)
		return kiln_error_set(err, 0,
				      "tap name `%s` is longer than 15 "
				      "characters",
				      n->tap);
	if (n->queue_pairs > VM_MAX_NET_QUEUE_PAIRS)
		return kiln_error_set(err, 0,
				      "network interface `%s`: %u queue pairs, "
				      "at most %d",
				      n->id, n->queue_pairs,
				      VM_MAX_NET_QUEUE_PAIRS);
	return 0;
}

int vm_config_validate_vsock(const struct vm_vsock *v, struct kiln_error *err)
{
	/* 0-2 are reserved (hypervisor, local, host); -1 is VMADDR_CID_ANY */
	if (v->cid < 3 || v->cid == UINT32_MAX)
		return kiln_error_set(err, 0,
				      "vsock guest CID %u: must be 3 to "
				      "4294967294",
				      v->cid);
	if (v->uds_path == NULL || v->uds_path[0] == '\0')
		return kiln_error_set(err, 0, "vsock needs a uds_path");
	/* sun_path is 108 bytes; guest ports add "_4294967295" */
	if (strlen(v->uds_path) + 11 >= 108)
		return kiln_error_set(err, 0,
				      "vsock uds_path `%s` is too long for a "
				      "Unix socket",
				      v->uds_path);
	return 0;
}

int vm_config_validate_fs(const struct vm_fs *f, struct kiln_error *err)
{
	if (f->id == NULL || f->id[0] == '\0')
		return kiln_error_set(err, 0, "an fs device needs an fs_id");
	if (f->tag == NULL || f->tag[0] == '\0' ||
	    strlen(f->tag) > VM_FS_TAG_MAX)
		return kiln_error_set(err, 0,
				      "fs `%s`: the tag must be 1 to %d bytes",
				      f->id, VM_FS_TAG_MAX);
	if (f->socket_path == NULL || f->socket_path[0] == '\0')
		return kiln_error_set(err, 0, "fs `%s` needs a socket_path",
				      f->id);
	if (strlen(f->socket_path) >= 108)
		return kiln_error_set(err, 0,
				      "fs `%s`: socket_path `%s` is too long "
				      "for a Unix socket",
				      f->id, f->socket_path);
	if (f->num_queues < 1 || f->num_queues > VM_FS_MAX_QUEUES)
		return kiln_error_set(err, 0,
				      "fs `%s`: %u request queues, must be 1 "
				      "to %d",
				      f->id, f->num_queues, VM_FS_MAX_QUEUES);
	if (f->queue_size < 2 || f->queue_size > VM_FS_MAX_QSIZE ||
	    (f->queue_size & (f->queue_size - 1)) != 0)
		return kiln_error_set(err, 0,
				      "fs `%s`: queue_size %u is not a power "
				      "of 2 from 2 to %d",
				      f->id, f->queue_size, VM_FS_MAX_QSIZE);
	return 0;
}

int vm_config_validate_boot_args(const char *args, struct kiln_error *err)
{
	size_t len = strlen(args);

	/* linux-loader's Cmdline, which Firecracker builds at the request */
	if (len > VM_MAX_BOOT_ARGS)
		return kiln_error_set(err, 0,
				      "the kernel command line is invalid: %zu "
				      "bytes, at most %d",
				      len, VM_MAX_BOOT_ARGS);
	for (size_t i = 0; i < len; i++)
		if (args[i] < ' ' || args[i] > '~')
			return kiln_error_set(err, 0,
					      "the kernel command line is "
					      "invalid: byte 0x%02x at %zu is "
					      "not printable ASCII",
					      (unsigned char)args[i], i);
	return 0;
}

static int validate_devices(const struct vm_config *c, struct kiln_error *err)
{
	unsigned int roots = 0;

	for (unsigned int i = 0; i < c->ndrives; i++) {
		const struct vm_drive *d = &c->drives[i];

		if (vm_config_validate_drive(d, err) < 0)
			return -1;
		roots += d->root;
		for (unsigned int j = 0; j < i; j++)
			if (strcmp(c->drives[j].id, d->id) == 0)
				return kiln_error_set(err, 0,
						      "drive id `%s` is used "
						      "twice",
						      d->id);
	}
	if (roots > 1)
		return kiln_error_set(err, 0, "more than one root drive");
	for (unsigned int i = 0; i < c->nnets; i++) {
		const struct vm_net *n = &c->nets[i];

		if (vm_config_validate_net(n, err) < 0)
			return -1;
		for (unsigned int j = 0; j < i; j++)
			if (strcmp(c->nets[j].id, n->id) == 0)
				return kiln_error_set(err, 0,
						      "network interface id "
						      "`%s` is used twice",
						      n->id);
	}
	if (c->vsock.enabled && vm_config_validate_vsock(&c->vsock, err) < 0)
		return -1;
	for (unsigned int i = 0; i < c->nfs; i++) {
		const struct vm_fs *f = &c->fs[i];

		if (vm_config_validate_fs(f, err) < 0)
			return -1;
		for (unsigned int j = 0; j < i; j++)
			if (strcmp(c->fs[j].id, f->id) == 0 ||
			    strcmp(c->fs[j].tag, f->tag) == 0)
				return kiln_error_set(err, 0,
						      "fs `%s` and `%s`: the "
						      "same id or tag",
						      c->fs[j].id, f->id);
	}
	if (c->balloon.enabled && c->balloon.amount_mib > c->mem_mib)
		return kiln_error_set(err, 0,
				      "balloon of %u MiB is larger than the "
				      "%llu MiB of memory",
				      c->balloon.amount_mib,
				      (unsigned long long)c->mem_mib);
	return 0;
}

/* Every string that vm_config_to_json writes. */
static int validate_strings(const struct vm_config *c, struct kiln_error *err)
{
	if (need_utf8("the kernel path", c->kernel_path, err) < 0 ||
	    need_utf8("the initrd path", c->initrd_path, err) < 0 ||
	    need_utf8("the kernel command line", c->cmdline, err) < 0 ||
	    need_utf8("the log path", c->log_path, err) < 0 ||
	    need_utf8("the metrics path", c->metrics_path, err) < 0 ||
	    need_utf8("the vsock uds_path", c->vsock.uds_path, err) < 0)
		return -1;
	for (unsigned int i = 0; i < c->ndrives; i++)
		if (need_utf8("a drive_id", c->drives[i].id, err) < 0 ||
		    need_utf8("a path_on_host", c->drives[i].path, err) < 0)
			return -1;
	for (unsigned int i = 0; i < c->nnets; i++)
		if (need_utf8("an iface_id", c->nets[i].id, err) < 0 ||
		    need_utf8("a host_dev_name", c->nets[i].tap, err) < 0)
			return -1;
	for (unsigned int i = 0; i < c->nfs; i++)
		if (need_utf8("an fs_id", c->fs[i].id, err) < 0 ||
		    need_utf8("an fs tag", c->fs[i].tag, err) < 0 ||
		    need_utf8("an fs socket_path", c->fs[i].socket_path, err) <
			    0)
			return -1;
	return 0;
}

static int validate(const struct vm_config *c, bool need_kernel,
		    struct kiln_error *err)
{
	if (validate_strings(c, err) < 0)
		return -1;
	if (need_kernel && c->kernel_path == NULL)
		return kiln_error_set(err, 0,
				      "no kernel: set the boot source "
				      "(--kernel, "
				      "--config-file or PUT /boot-source)");
	if (c->cmdline != NULL &&
	    vm_config_validate_boot_args(c->cmdline, err) < 0)
		return -1;
	if (vm_config_validate_machine(c, err) < 0)
		return -1;
	return validate_devices(c, err);
}

int vm_config_validate(const struct vm_config *c, struct kiln_error *err)
{
	return validate(c, true, err);
}

int vm_config_validate_fork(const struct vm_config *c, struct kiln_error *err)
{
	if (c->kernel_path != NULL || c->initrd_path != NULL ||
	    c->cmdline != NULL)
		return kiln_error_set(err, 0,
				      "a fork runs its template's kernel: no "
				      "boot source");
	return validate(c, false, err);
}
