/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Firecracker's JSON configuration both ways: each section parsed from a
 * yajl tree (shared by --config-file and the API's request bodies), and
 * the whole config written back in the shape GET /vm/config answers.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "../lib/cleanup.h"
#include "../lib/json.h"
#include "../lib/log.h"

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

static int get_bool(yajl_val v, const char *key, bool *out,
		    struct kiln_error *err)
{
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
		return kiln_error_set(err, 0, "`%s` must be a boolean", key);
	*out = YAJL_IS_TRUE(v);
	return 0;
}

static int parse_boot_source(struct vm_config *c, yajl_val obj,
			     struct kiln_error *err)
{
	if (YAJL_IS_NULL(obj)) /* what GET /vm/config writes for none */
		return 0;
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
			ret = YAJL_IS_NULL(v) ? 0
					      : set_str(&c->cmdline, v, k, err);
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
		bool b = false;

		if (strcmp(k, "vcpu_count") == 0) {
			if (get_uint(v, k, UINT32_MAX, &n, err) < 0)
				return -1;
			c->vcpu_count = (unsigned int)n;
		} else if (strcmp(k, "mem_size_mib") == 0) {
			if (get_uint(v, k, UINT64_MAX >> 20, &n, err) < 0)
				return -1;
			c->mem_mib = n;
		} else if (strcmp(k, "track_dirty_pages") == 0) {
			if (get_bool(v, k, &c->track_dirty_pages, err) < 0)
				return -1;
		} else if (strcmp(k, "smt") == 0) {
			/* accepted when off, which is what kiln-vmm does */
			if (get_bool(v, k, &b, err) < 0)
				return -1;
			if (b)
				return kiln_error_set(err, 0,
						      "`machine-config.%s` "
						      "true is not supported",
						      k);
		} else if (strcmp(k, "huge_pages") == 0 ||
			   strcmp(k, "cpu_template") == 0) {
			if (!YAJL_IS_NULL(v) &&
			    (!YAJL_IS_STRING(v) ||
			     strcmp(v->u.string, "None") != 0))
				return kiln_error_set(err, 0,
						      "`machine-config.%s`: "
						      "only \"None\" is "
						      "supported",
						      k);
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
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];

		if (strcmp(k, "rate_limiter") != 0)
			return kiln_error_set(err, 0,
					      "unknown key `entropy.%s`", k);
		if (!YAJL_IS_NULL(obj->u.object.values[i]))
			return kiln_error_set(err, 0,
					      "`entropy.rate_limiter` is not "
					      "supported yet");
	}
	c->entropy = true;
	return 0;
}

static bool has_key(yajl_val obj, const char *key)
{
	for (size_t i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return true;
	return false;
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
		int ret;

		if (strcmp(k, "drive_id") == 0) {
			ret = set_str(&d->id, v, k, err);
		} else if (strcmp(k, "path_on_host") == 0) {
			ret = set_str(&d->path, v, k, err);
		} else if (strcmp(k, "is_read_only") == 0) {
			ret = get_bool(v, k, &d->read_only, err);
		} else if (strcmp(k, "is_root_device") == 0) {
			ret = get_bool(v, k, &d->root, err);
		} else if (strcmp(k, "cache_type") == 0 ||
			   strcmp(k, "io_engine") == 0) {
			/* both of Firecracker's values behave alike here */
			ret = YAJL_IS_STRING(v) ? 0
						: kiln_error_set(err, 0,
								 "`%s` must be "
								 "a string",
								 k);
		} else if (strcmp(k, "partuuid") == 0 ||
			   strcmp(k, "rate_limiter") == 0 ||
			   strcmp(k, "socket") == 0) {
			ret = YAJL_IS_NULL(v) ? 0
					      : kiln_error_set(err, 0,
							       "`drives[].%s` "
							       "is not "
							       "supported yet",
							       k);
		} else {
			ret = kiln_error_set(err, 0,
					     "unknown key `drives[].%s`", k);
		}
		if (ret < 0)
			return ret;
	}
	/* required by Firecracker (a bool without a default) */
	if (!has_key(obj, "is_root_device"))
		return kiln_error_set(err, 0,
				      "`drives[].is_root_device` is missing");
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
			if (YAJL_IS_NULL(v))
				continue;
			if (!YAJL_IS_STRING(v))
				return kiln_error_set(
					err, 0, "`%s` must be a string", k);
			if (vm_config_parse_mac(v->u.string, n->mac, err) < 0)
				return -1;
			n->has_mac = true;
		} else if (strcmp(k, "queue_pairs") == 0) {
			uint64_t v64;

			/* ours: 1 (or null) is Firecracker's one pair */
			if (YAJL_IS_NULL(v))
				continue;
			if (get_uint(v, k, VM_MAX_NET_QUEUE_PAIRS, &v64, err) <
			    0)
				return -1;
			if (v64 == 0)
				return kiln_error_set(err, 0,
						      "`network-interfaces[]."
						      "queue_pairs` must be 1 "
						      "to %d",
						      VM_MAX_NET_QUEUE_PAIRS);
			/* 1 is the default: GET /vm/config leaves it out */
			n->queue_pairs = v64 > 1 ? (unsigned int)v64 : 0;
		} else if (strcmp(k, "rx_rate_limiter") == 0 ||
			   strcmp(k, "tx_rate_limiter") == 0 ||
			   strcmp(k, "mtu") == 0) {
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

/* kiln's own "fs" entry: a virtio-fs device over vhost-user. */
static int parse_fs_entry(struct vm_config *c, yajl_val obj,
			  struct kiln_error *err)
{
	struct vm_fs *f;
	uint64_t n;

	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0,
				      "an `fs` entry must be an object");
	if (c->nfs == VM_MAX_FS)
		return kiln_error_set(err, 0, "more than %d fs devices",
				      VM_MAX_FS);
	f = &c->fs[c->nfs++];
	vm_config_fs_defaults(f);
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		yajl_val v = obj->u.object.values[i];
		int ret = 0;

		if (strcmp(k, "fs_id") == 0) {
			ret = set_str(&f->id, v, k, err);
		} else if (strcmp(k, "tag") == 0) {
			ret = set_str(&f->tag, v, k, err);
		} else if (strcmp(k, "socket_path") == 0) {
			ret = set_str(&f->socket_path, v, k, err);
		} else if (strcmp(k, "num_queues") == 0) {
			ret = get_uint(v, k, UINT32_MAX, &n, err);
			f->num_queues = (uint32_t)n;
		} else if (strcmp(k, "queue_size") == 0) {
			ret = get_uint(v, k, UINT32_MAX, &n, err);
			f->queue_size = (uint32_t)n;
		} else {
			ret = kiln_error_set(err, 0, "unknown key `fs[].%s`",
					     k);
		}
		if (ret < 0)
			return ret;
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

static int parse_drives(struct vm_config *c, yajl_val v, struct kiln_error *err)
{
	return parse_array(c, v, "drives", parse_drive, err);
}

static int parse_nets(struct vm_config *c, yajl_val v, struct kiln_error *err)
{
	return parse_array(c, v, "network-interfaces", parse_net, err);
}

static int parse_fs(struct vm_config *c, yajl_val v, struct kiln_error *err)
{
	return parse_array(c, v, "fs", parse_fs_entry, err);
}

static int parse_vsock(struct vm_config *c, yajl_val obj,
		       struct kiln_error *err)
{
	uint64_t n;

	if (YAJL_IS_NULL(obj))
		return 0;
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
			if (!YAJL_IS_STRING(v) && !YAJL_IS_NULL(v))
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
	bool b = false;

	if (YAJL_IS_NULL(obj))
		return 0;
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
			if (get_bool(v, k, &c->balloon.deflate_on_oom, err) < 0)
				return -1;
		} else if (strcmp(k, "stats_polling_interval_s") == 0) {
			/* a u16 in Firecracker */
			if (get_uint(v, k, UINT16_MAX, &n, err) < 0)
				return -1;
			c->balloon.stats_interval_s = (uint32_t)n;
		} else if (strcmp(k, "free_page_hinting") == 0) {
			if (get_bool(v, k, &b, err) < 0)
				return -1;
			if (b)
				return kiln_error_set(err, 0,
						      "`balloon.free_page_"
						      "hinting` is not "
						      "supported yet");
		} else {
			return kiln_error_set(err, 0,
					      "unknown key `balloon.%s`", k);
		}
	}
	return 0;
}

static const char *const log_levels[] = {
	[LOG_OFF] = "Off",   [LOG_ERROR] = "Error", [LOG_WARN] = "Warning",
	[LOG_INFO] = "Info", [LOG_DEBUG] = "Debug",
};

int vm_config_log_level(const char *name, struct kiln_error *err)
{
	int level = log_level_parse(name);

	if (level < 0)
		return kiln_error_set(err, 0,
				      "`logger.level` \"%s\": want Error, "
				      "Warning, Info, Debug, Trace or Off",
				      name);
	return level;
}

const char *vm_config_log_level_name(int level)
{
	if (level < 0 || (size_t)level >= ARRAY_SIZE(log_levels))
		return NULL;
	return log_levels[level];
}

static int parse_logger(struct vm_config *c, yajl_val obj,
			struct kiln_error *err)
{
	if (YAJL_IS_NULL(obj))
		return 0;
	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0, "`logger` must be an object");
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		yajl_val v = obj->u.object.values[i];
		int ret = 0;

		if (strcmp(k, "log_path") == 0) {
			ret = set_str(&c->log_path, v, k, err);
		} else if (strcmp(k, "level") == 0) {
			if (!YAJL_IS_STRING(v))
				return kiln_error_set(
					err, 0, "`%s` must be a string", k);
			ret = vm_config_log_level(v->u.string, err);
			if (ret >= 0)
				c->log_level = ret;
		} else if (strcmp(k, "show_level") == 0) {
			ret = get_bool(v, k, &c->show_level, err);
		} else if (strcmp(k, "show_log_origin") == 0) {
			ret = get_bool(v, k, &c->show_origin, err);
		} else if (strcmp(k, "module") == 0) {
			if (!YAJL_IS_NULL(v))
				ret = kiln_error_set(err, 0,
						     "`logger.module`: module "
						     "filter not supported");
		} else {
			ret = kiln_error_set(err, 0, "unknown key `logger.%s`",
					     k);
		}
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int parse_metrics(struct vm_config *c, yajl_val obj,
			 struct kiln_error *err)
{
	cleanup_free char *path = NULL;

	if (YAJL_IS_NULL(obj))
		return 0;
	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, 0, "`metrics` must be an object");
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];

		if (strcmp(k, "metrics_path") != 0)
			return kiln_error_set(err, 0,
					      "unknown key `metrics.%s`", k);
		if (set_str(&path, obj->u.object.values[i], k, err) < 0)
			return -1;
	}
	if (path == NULL)
		return kiln_error_set(err, 0,
				      "`metrics.metrics_path` is missing");
	free(c->metrics_path);
	c->metrics_path = steal_ptr(&path);
	return 0;
}

static const struct section {
	const char *name;
	/* NULL: a Firecracker section kiln-vmm does not implement yet */
	int (*parse)(struct vm_config *c, yajl_val v, struct kiln_error *err);
	bool in_file; /* a key of the whole-config JSON */
} sections[] = {
	{ "boot-source", parse_boot_source, true },
	{ "machine-config", parse_machine_config, true },
	{ "drives", parse_drives, true },
	{ "network-interfaces", parse_nets, true },
	{ "vsock", parse_vsock, true },
	{ "balloon", parse_balloon, true },
	{ "entropy", parse_entropy, true },
	{ "logger", parse_logger, true },
	{ "metrics", parse_metrics, true },
	{ "mmds-config", NULL, true },
	{ "cpu-config", NULL, true },
	{ "drive", parse_drive, false },
	{ "network-interface", parse_net, false },
	{ "fs", parse_fs, true }, /* kiln's own: virtio-fs over vhost-user */
	{ "fs-entry", parse_fs_entry, false },
};

static const struct section *section_find(const char *name, bool in_file)
{
	for (size_t i = 0; i < ARRAY_SIZE(sections); i++)
		if (strcmp(sections[i].name, name) == 0 &&
		    (sections[i].in_file || !in_file))
			return &sections[i];
	return NULL;
}

static int section_parse(const struct section *s, struct vm_config *c,
			 yajl_val v, struct kiln_error *err)
{
	if (s->parse != NULL)
		return s->parse(c, v, err);
	/* what GET /vm/config writes for them: null */
	if (YAJL_IS_NULL(v) || (YAJL_IS_ARRAY(v) && v->u.array.len == 0))
		return 0;
	return kiln_error_set(err, 0, "`%s` is not supported yet", s->name);
}

int vm_config_parse_section(struct vm_config *c, const char *name, yajl_val v,
			    struct kiln_error *err)
{
	const struct section *s = section_find(name, false);

	if (s == NULL)
		return kiln_error_set(err, 0, "unknown section `%s`", name);
	return section_parse(s, c, v, err);
}

int vm_config_parse_json(struct vm_config *c, const char *json, size_t len,
			 struct kiln_error *err)
{
	yajl_val root = json_parse(json, len, err);
	int ret = 0;

	if (root == NULL)
		return kiln_error_wrap(err, "config");
	if (!YAJL_IS_OBJECT(root))
		ret = kiln_error_set(err, 0, "top level must be an object");
	for (size_t i = 0; ret == 0 && i < root->u.object.len; i++) {
		const char *k = root->u.object.keys[i];
		const struct section *s = section_find(k, true);

		if (s == NULL)
			ret = kiln_error_set(err, 0, "unknown key `%s`", k);
		else
			ret = section_parse(s, c, root->u.object.values[i],
					    err);
	}
	yajl_tree_free(root);
	if (ret < 0)
		return kiln_error_wrap(err, "config");
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

static void gen_key(yajl_gen g, const char *k)
{
	yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

static void gen_str(yajl_gen g, const char *k, const char *v)
{
	gen_key(g, k);
	if (v == NULL)
		yajl_gen_null(g);
	else
		yajl_gen_string(g, (const unsigned char *)v, strlen(v));
}

static void gen_uint(yajl_gen g, const char *k, uint64_t v)
{
	char num[24];

	/* yajl_gen_integer is signed: a u64 goes as its decimal digits */
	gen_key(g, k);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	yajl_gen_number(g, num, strlen(num));
}

static void gen_bool(yajl_gen g, const char *k, bool v)
{
	gen_key(g, k);
	yajl_gen_bool(g, v);
}

static void gen_devices(yajl_gen g, const struct vm_config *c)
{
	gen_key(g, "drives");
	yajl_gen_array_open(g);
	for (unsigned int i = 0; i < c->ndrives; i++) {
		const struct vm_drive *d = &c->drives[i];

		yajl_gen_map_open(g);
		gen_str(g, "drive_id", d->id);
		gen_str(g, "path_on_host", d->path);
		gen_bool(g, "is_root_device", d->root);
		gen_bool(g, "is_read_only", d->read_only);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);

	gen_key(g, "network-interfaces");
	yajl_gen_array_open(g);
	for (unsigned int i = 0; i < c->nnets; i++) {
		const struct vm_net *n = &c->nets[i];
		char mac[18];

		yajl_gen_map_open(g);
		gen_str(g, "iface_id", n->id);
		gen_str(g, "host_dev_name", n->tap);
		if (n->has_mac) {
			snprintf(mac, sizeof(mac),
				 "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0],
				 n->mac[1], n->mac[2], n->mac[3], n->mac[4],
				 n->mac[5]);
			gen_str(g, "guest_mac", mac);
		}
		/* only when ours is used: Firecracker's shape otherwise */
		if (n->queue_pairs > 1)
			gen_uint(g, "queue_pairs", n->queue_pairs);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);

	gen_key(g, "vsock");
	if (c->vsock.enabled) {
		yajl_gen_map_open(g);
		gen_uint(g, "guest_cid", c->vsock.cid);
		gen_str(g, "uds_path", c->vsock.uds_path);
		yajl_gen_map_close(g);
	} else {
		yajl_gen_null(g);
	}

	gen_key(g, "balloon");
	if (c->balloon.enabled) {
		yajl_gen_map_open(g);
		gen_uint(g, "amount_mib", c->balloon.amount_mib);
		gen_bool(g, "deflate_on_oom", c->balloon.deflate_on_oom);
		gen_uint(g, "stats_polling_interval_s",
			 c->balloon.stats_interval_s);
		yajl_gen_map_close(g);
	} else {
		yajl_gen_null(g);
	}

	gen_key(g, "entropy");
	if (c->entropy) {
		yajl_gen_map_open(g);
		yajl_gen_map_close(g);
	} else {
		yajl_gen_null(g);
	}

	/* kiln's own section: written only when used, Firecracker has none */
	if (c->nfs == 0)
		return;
	gen_key(g, "fs");
	yajl_gen_array_open(g);
	for (unsigned int i = 0; i < c->nfs; i++) {
		const struct vm_fs *f = &c->fs[i];

		yajl_gen_map_open(g);
		gen_str(g, "fs_id", f->id);
		gen_str(g, "tag", f->tag);
		gen_str(g, "socket_path", f->socket_path);
		gen_uint(g, "num_queues", f->num_queues);
		gen_uint(g, "queue_size", f->queue_size);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

static void gen_config(yajl_gen g, const struct vm_config *c)
{
	yajl_gen_map_open(g);
	gen_key(g, "boot-source");
	if (c->kernel_path != NULL) {
		yajl_gen_map_open(g);
		gen_str(g, "kernel_image_path", c->kernel_path);
		if (c->initrd_path != NULL)
			gen_str(g, "initrd_path", c->initrd_path);
		if (c->cmdline != NULL)
			gen_str(g, "boot_args", c->cmdline);
		yajl_gen_map_close(g);
	} else {
		yajl_gen_null(g);
	}

	gen_key(g, "machine-config");
	yajl_gen_map_open(g);
	gen_uint(g, "vcpu_count", c->vcpu_count);
	gen_uint(g, "mem_size_mib", c->mem_mib);
	gen_bool(g, "smt", false);
	gen_bool(g, "track_dirty_pages", c->track_dirty_pages);
	gen_str(g, "huge_pages", "None");
	yajl_gen_map_close(g);

	gen_devices(g, c);

	gen_key(g, "logger");
	if (c->log_path != NULL || c->log_level >= 0 || c->show_level ||
	    c->show_origin) {
		yajl_gen_map_open(g);
		if (c->log_path != NULL)
			gen_str(g, "log_path", c->log_path);
		if (vm_config_log_level_name(c->log_level) != NULL)
			gen_str(g, "level",
				vm_config_log_level_name(c->log_level));
		gen_bool(g, "show_level", c->show_level);
		gen_bool(g, "show_log_origin", c->show_origin);
		yajl_gen_map_close(g);
	} else {
		yajl_gen_null(g);
	}

	gen_key(g, "metrics");
	if (c->metrics_path != NULL) {
		yajl_gen_map_open(g);
		gen_str(g, "metrics_path", c->metrics_path);
		yajl_gen_map_close(g);
	} else {
		yajl_gen_null(g);
	}

	/* Firecracker's sections that kiln-vmm has none of */
	gen_key(g, "mmds-config");
	yajl_gen_null(g);
	gen_key(g, "cpu-config");
	yajl_gen_null(g);
	yajl_gen_map_close(g);
}

char *vm_config_to_json(const struct vm_config *c)
{
	const unsigned char *buf;
	yajl_gen g = yajl_gen_alloc(NULL);
	char *out = NULL;
	size_t len;

	if (g == NULL)
		return NULL;
	gen_config(g, c);
	if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
		out = strndup((const char *)buf, len);
	yajl_gen_free(g);
	return out;
}
