/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "../lib/cleanup.h"

#define CONFIG_FILE_MAX (1 << 20)

void vm_config_init(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->vcpu_count = 1;
	c->mem_mib = 128;
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
	memset(c, 0, sizeof(*c));
}

static int set_str(char **dst, yajl_val v, const char *key,
		   struct kiln_error *err)
{
	char *s;

	if (!YAJL_IS_STRING(v))
		return kiln_error_set(err, 0, "`%s` must be a string", key);
	s = strdup(v->u.string);
	if (s == NULL)
		return kiln_error_set(err, ENOMEM, "copy `%s`", key);
	free(*dst);
	*dst = s;
	return 0;
}

static int get_uint(yajl_val v, const char *key, uint64_t max, uint64_t *out,
		    struct kiln_error *err)
{
	long long n;

	if (!YAJL_IS_INTEGER(v))
		return kiln_error_set(err, 0, "`%s` must be an integer", key);
	n = YAJL_GET_INTEGER(v);
	if (n < 0 || (uint64_t)n > max)
		return kiln_error_set(err, 0,
				      "`%s` %lld is out of range 0..%llu", key,
				      n, (unsigned long long)max);
	*out = (uint64_t)n;
	return 0;
}

static int parse_boot_source(struct vm_config *c, yajl_val obj,
			     struct kiln_error *err)
{
	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0,
				      "`boot-source` must be an object");
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		yajl_val v = obj->u.object.values[i];
		int ret;

		if (strcmp(k, "kernel_image_path") == 0)
			ret = set_str(&c->kernel_path, v, k, err);
		else if (strcmp(k, "boot_args") == 0)
			ret = set_str(&c->cmdline, v, k, err);
		else if (strcmp(k, "initrd_path") == 0)
			ret = YAJL_IS_NULL(v)
				      ? 0
				      : set_str(&c->initrd_path, v, k, err);
		else
			ret = kiln_error_set(err, 0,
					     "unknown key `boot-source.%s`", k);
		if (ret < 0)
			return ret;
	}
	if (c->kernel_path == NULL)
		return kiln_error_set(err, 0,
				      "`boot-source.kernel_image_path` is "
				      "missing");
	return 0;
}

static int parse_machine_config(struct vm_config *c, yajl_val obj,
				struct kiln_error *err)
{
	uint64_t n;

	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0,
				      "`machine-config` must be an object");
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		yajl_val v = obj->u.object.values[i];

		if (strcmp(k, "vcpu_count") == 0) {
			if (get_uint(v, k, UINT32_MAX, &n, err) < 0)
				return -1;
			c->vcpu_count = (unsigned int)n;
		} else if (strcmp(k, "mem_size_mib") == 0) {
			if (get_uint(v, k, UINT64_MAX >> 20, &n, err) < 0)
				return -1;
			c->mem_mib = n;
		} else if (strcmp(k, "smt") == 0 || strcmp(k, "track_dirty_"
							      "pages") == 0) {
			/* accepted when off, which is what kiln-vmm does */
			if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
				return kiln_error_set(
					err, 0, "`%s` must be a boolean", k);
			if (YAJL_IS_TRUE(v))
				return kiln_error_set(err, 0,
						      "`machine-config.%s` "
						      "true is not supported",
						      k);
		} else if (strcmp(k, "huge_pages") == 0) {
			if (!YAJL_IS_STRING(v) ||
			    strcmp(v->u.string, "None") != 0)
				return kiln_error_set(err, 0,
						      "`machine-config.huge_"
						      "pages`: only \"None\" "
						      "is supported");
		} else {
			return kiln_error_set(
				err, 0, "unknown key `machine-config.%s`", k);
		}
	}
	return 0;
}

/* Firecracker's "entropy": {} adds a virtio-rng device. */
static int parse_entropy(struct vm_config *c, yajl_val obj,
			 struct kiln_error *err)
{
	if (YAJL_IS_NULL(obj))
		return 0;
	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0, "`entropy` must be an object");
	if (obj->u.object.len > 0)
		return kiln_error_set(err, 0,
				      "`entropy.%s` is not supported yet",
				      obj->u.object.keys[0]);
	c->entropy = true;
	return 0;
}

static bool get_bool(yajl_val v, const char *key, bool *out,
		     struct kiln_error *err)
{
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
		kiln_error_set(err, 0, "`%s` must be a boolean", key);
		return false;
	}
	*out = YAJL_IS_TRUE(v);
	return true;
}

static int parse_mac(const char *s, uint8_t mac[6], struct kiln_error *err)
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

static int parse_drive(struct vm_config *c, yajl_val obj,
		       struct kiln_error *err)
{
	struct vm_drive *d;

	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0,
				      "a `drives` entry must be an object");
	if (c->ndrives == VM_MAX_DRIVES)
		return kiln_error_set(err, 0, "more than %d drives",
				      VM_MAX_DRIVES);
	d = &c->drives[c->ndrives++];
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		yajl_val v = obj->u.object.values[i];

		if (strcmp(k, "drive_id") == 0) {
			if (set_str(&d->id, v, k, err) < 0)
				return -1;
		} else if (strcmp(k, "path_on_host") == 0) {
			if (set_str(&d->path, v, k, err) < 0)
				return -1;
		} else if (strcmp(k, "is_read_only") == 0) {
			if (!get_bool(v, k, &d->read_only, err))
				return -1;
		} else if (strcmp(k, "is_root_device") == 0) {
			if (!get_bool(v, k, &d->root, err))
				return -1;
		} else if (strcmp(k, "cache_type") == 0 ||
			   strcmp(k, "io_engine") == 0) {
			/* both of Firecracker's values behave alike here */
			if (!YAJL_IS_STRING(v))
				return kiln_error_set(
					err, 0, "`%s` must be a string", k);
		} else if (strcmp(k, "partuuid") == 0 ||
			   strcmp(k, "rate_limiter") == 0 ||
			   strcmp(k, "socket") == 0) {
			if (!YAJL_IS_NULL(v))
				return kiln_error_set(err, 0,
						      "`drives[].%s` is not "
						      "supported yet",
						      k);
		} else {
			return kiln_error_set(err, 0,
					      "unknown key `drives[].%s`", k);
		}
	}
	return 0;
}

static int parse_net(struct vm_config *c, yajl_val obj, struct kiln_error *err)
{
	struct vm_net *n;

	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0,
				      "a `network-interfaces` entry must be an "
				      "object");
	if (c->nnets == VM_MAX_NETS)
		return kiln_error_set(err, 0, "more than %d network interfaces",
				      VM_MAX_NETS);
	n = &c->nets[c->nnets++];
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		yajl_val v = obj->u.object.values[i];

		if (strcmp(k, "iface_id") == 0) {
			if (set_str(&n->id, v, k, err) < 0)
				return -1;
		} else if (strcmp(k, "host_dev_name") == 0) {
			if (set_str(&n->tap, v, k, err) < 0)
				return -1;
		} else if (strcmp(k, "guest_mac") == 0) {
			if (!YAJL_IS_STRING(v))
				return kiln_error_set(
					err, 0, "`%s` must be a string", k);
			if (parse_mac(v->u.string, n->mac, err) < 0)
				return -1;
			n->has_mac = true;
		} else if (strcmp(k, "rx_rate_limiter") == 0 ||
			   strcmp(k, "tx_rate_limiter") == 0) {
			if (!YAJL_IS_NULL(v))
				return kiln_error_set(err, 0,
						      "`network-interfaces[].%"
						      "s` is not supported yet",
						      k);
		} else {
			return kiln_error_set(err, 0,
					      "unknown key "
					      "`network-interfaces[].%s`",
					      k);
		}
	}
	return 0;
}

static int parse_array(struct vm_config *c, yajl_val arr, const char *key,
		       int (*each)(struct vm_config *, yajl_val,
				   struct kiln_error *),
		       struct kiln_error *err)
{
	if (YAJL_IS_NULL(arr))
		return 0;
	if (!YAJL_IS_ARRAY(arr))
		return kiln_error_set(err, 0, "`%s` must be an array", key);
	for (size_t i = 0; i < arr->u.array.len; i++)
		if (each(c, arr->u.array.values[i], err) < 0)
			return -1;
	return 0;
}

static int parse_vsock(struct vm_config *c, yajl_val obj,
		       struct kiln_error *err)
{
	uint64_t n;

	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0, "`vsock` must be an object");
	c->vsock.enabled = true;
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		yajl_val v = obj->u.object.values[i];

		if (strcmp(k, "guest_cid") == 0) {
			if (get_uint(v, k, UINT32_MAX, &n, err) < 0)
				return -1;
			c->vsock.cid = (uint32_t)n;
		} else if (strcmp(k, "uds_path") == 0) {
			if (set_str(&c->vsock.uds_path, v, k, err) < 0)
				return -1;
		} else if (strcmp(k, "vsock_id") == 0) {
			/* deprecated in Firecracker, accepted and unused */
			if (!YAJL_IS_STRING(v))
				return kiln_error_set(
					err, 0, "`%s` must be a string", k);
		} else {
			return kiln_error_set(err, 0, "unknown key `vsock.%s`",
					      k);
		}
	}
	return 0;
}

static int parse_balloon(struct vm_config *c, yajl_val obj,
			 struct kiln_error *err)
{
	uint64_t n;

	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0, "`balloon` must be an object");
	c->balloon.enabled = true;
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		yajl_val v = obj->u.object.values[i];

		if (strcmp(k, "amount_mib") == 0) {
			if (get_uint(v, k, UINT32_MAX, &n, err) < 0)
				return -1;
			c->balloon.amount_mib = (uint32_t)n;
		} else if (strcmp(k, "deflate_on_oom") == 0) {
			if (!get_bool(v, k, &c->balloon.deflate_on_oom, err))
				return -1;
		} else if (strcmp(k, "stats_polling_interval_s") == 0) {
			if (get_uint(v, k, UINT32_MAX, &n, err) < 0)
				return -1;
			c->balloon.stats_interval_s = (uint32_t)n;
		} else {
			return kiln_error_set(err, 0,
					      "unknown key `balloon.%s`", k);
		}
	}
	return 0;
}

/* Firecracker sections kiln-vmm does not implement yet: empty is fine. */
static int parse_unsupported(const char *k, yajl_val v, struct kiln_error *err)
{
	if (YAJL_IS_NULL(v) || (YAJL_IS_ARRAY(v) && v->u.array.len == 0))
		return 0;
	return kiln_error_set(err, 0, "`%s` is not supported yet", k);
}

int vm_config_parse_json(struct vm_config *c, const char *json, size_t len,
			 struct kiln_error *err)
{
	static const char *const later[] = {
		"drives",      "network-interfaces",
		"vsock",       "balloon",
		"logger",      "metrics",
		"mmds-config", "cpu-config",
	};
	cleanup_free char *buf = NULL;
	char errbuf[256] = "";
	yajl_val root;
	int ret = 0;

	/* yajl wants a NUL-terminated string; the input may hold a NUL */
	if (memchr(json, '\0', len) != NULL)
		return kiln_error_set(err, 0, "config: NUL byte in JSON");
	buf = strndup(json, len);
	if (buf == NULL)
		return kiln_error_set(err, ENOMEM, "config: copy");
	root = yajl_tree_parse(buf, errbuf, sizeof(errbuf));
	if (root == NULL) {
		errbuf[strcspn(errbuf, "\n")] = '\0';
		return kiln_error_set(err, 0, "config: invalid JSON: %s",
				      errbuf[0] ? errbuf : "parse error");
	}
	if (!YAJL_IS_OBJECT(root)) {
		ret = kiln_error_set(err, 0,
				     "config: top level must be an object");
		goto out;
	}
	for (size_t i = 0; i < root->u.object.len && ret == 0; i++) {
		const char *k = root->u.object.keys[i];
		yajl_val v = root->u.object.values[i];
		size_t j;

		if (strcmp(k, "boot-source") == 0) {
			ret = parse_boot_source(c, v, err);
			continue;
		}
		if (strcmp(k, "machine-config") == 0) {
			ret = parse_machine_config(c, v, err);
			continue;
		}
		if (strcmp(k, "entropy") == 0) {
			ret = parse_entropy(c, v, err);
			continue;
		}
		if (strcmp(k, "drives") == 0) {
			ret = parse_array(c, v, k, parse_drive, err);
			continue;
		}
		if (strcmp(k, "network-interfaces") == 0) {
			ret = parse_array(c, v, k, parse_net, err);
			continue;
		}
		if (strcmp(k, "vsock") == 0) {
			ret = YAJL_IS_NULL(v) ? 0 : parse_vsock(c, v, err);
			continue;
		}
		if (strcmp(k, "balloon") == 0) {
			ret = YAJL_IS_NULL(v) ? 0 : parse_balloon(c, v, err);
			continue;
		}
		for (j = 0; j < sizeof(later) / sizeof(later[0]); j++)
			if (strcmp(k, later[j]) == 0)
				break;
		if (j < sizeof(later) / sizeof(later[0]))
			ret = parse_unsupported(k, v, err);
		else
			ret = kiln_error_set(err, 0, "unknown key `%s`", k);
	}
	if (ret < 0)
		kiln_error_wrap(err, "config");
out:
	yajl_tree_free(root);
	return ret;
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

static int need_value(const char *k, const char *v, struct kiln_error *err)
{
	if (v == NULL || *v == '\0')
		return kiln_error_set(err, 0, "`%s` needs a value", k);
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
		if (need_value(k, v, err) < 0 || parse_mac(v, n->mac, err) < 0)
			return -1;
		n->has_mac = true;
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
		if (num_value(&n, UINT32_MAX, k, v, err) < 0)
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

static int validate_devices(const struct vm_config *c, struct kiln_error *err)
{
	unsigned int roots = 0;

	for (unsigned int i = 0; i < c->ndrives; i++) {
		const struct vm_drive *d = &c->drives[i];

		if (d->id == NULL || d->path == NULL)
			return kiln_error_set(
				err, 0, "drive %u: needs an id and a path", i);
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

		if (n->id == NULL || n->tap == NULL)
			return kiln_error_set(err, 0,
					      "network interface %u: needs an "
					      "id and a tap",
					      i);
		if (strlen(n->tap) >= 16)
			return kiln_error_set(err, 0,
					      "tap name `%s` is longer than 15 "
					      "characters",
					      n->tap);
		for (unsigned int j = 0; j < i; j++)
			if (strcmp(c->nets[j].id, n->id) == 0)
				return kiln_error_set(err, 0,
						      "network interface id "
						      "`%s` is used twice",
						      n->id);
	}
	if (c->vsock.enabled) {
		/* 0-2 are reserved (hypervisor, local, host); -1 is VMADDR_CID_ANY */
		if (c->vsock.cid < 3 || c->vsock.cid == UINT32_MAX)
			return kiln_error_set(err, 0,
					      "vsock guest CID %u: must be 3 "
					      "to 4294967294",
					      c->vsock.cid);
		if (c->vsock.uds_path == NULL || c->vsock.uds_path[0] == '\0')
			return kiln_error_set(err, 0, "vsock needs a uds_path");
		/* sun_path is 108 bytes; guest ports add "_4294967295" */
		if (strlen(c->vsock.uds_path) + 11 >= 108)
			return kiln_error_set(err, 0,
					      "vsock uds_path `%s` is too long "
					      "for a Unix socket",
					      c->vsock.uds_path);
	}
	if (c->balloon.enabled && c->balloon.amount_mib > c->mem_mib)
		return kiln_error_set(err, 0,
				      "balloon of %u MiB is larger than the "
				      "%llu MiB of memory",
				      c->balloon.amount_mib,
				      (unsigned long long)c->mem_mib);
	return 0;
}

int vm_config_validate(const struct vm_config *c, struct kiln_error *err)
{
	if (c->kernel_path == NULL)
		return kiln_error_set(err, 0,
				      "no kernel: give --kernel or "
				      "--config-file");
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
	return validate_devices(c, err);
}
