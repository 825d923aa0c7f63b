/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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
	memset(c, 0, sizeof(*c));
}

static int set_str(char **dst, yajl_val v, const char *key,
		   struct kiln_error *err)
{
	char *s;

	if (!YAJL_IS_STRING(v))
		return kiln_error_set(err, EINVAL, "`%s` must be a string",
				      key);
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
		return kiln_error_set(err, EINVAL, "`%s` must be an integer",
				      key);
	n = YAJL_GET_INTEGER(v);
	if (n < 0 || (uint64_t)n > max)
		return kiln_error_set(err, ERANGE,
				      "`%s` %lld is out of range 0..%llu", key,
				      n, (unsigned long long)max);
	*out = (uint64_t)n;
	return 0;
}

static int parse_boot_source(struct vm_config *c, yajl_val obj,
			     struct kiln_error *err)
{
	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, EINVAL,
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
			ret = kiln_error_set(err, EINVAL,
					     "unknown key `boot-source.%s`", k);
		if (ret < 0)
			return ret;
	}
	if (c->kernel_path == NULL)
		return kiln_error_set(err, EINVAL,
				      "`boot-source.kernel_image_path` is "
				      "missing");
	return 0;
}

static int parse_machine_config(struct vm_config *c, yajl_val obj,
				struct kiln_error *err)
{
	uint64_t n;

	if (!YAJL_IS_OBJECT(obj))
		return kiln_error_set(err, EINVAL,
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
				return kiln_error_set(err, EINVAL,
						      "`%s` must be a boolean",
						      k);
			if (YAJL_IS_TRUE(v))
				return kiln_error_set(err, ENOTSUP,
						      "`machine-config.%s` "
						      "true is not supported",
						      k);
		} else if (strcmp(k, "huge_pages") == 0) {
			if (!YAJL_IS_STRING(v) ||
			    strcmp(v->u.string, "None") != 0)
				return kiln_error_set(err, ENOTSUP,
						      "`machine-config.huge_"
						      "pages`: only \"None\" "
						      "is supported");
		} else {
			return kiln_error_set(err, EINVAL,
					      "unknown key `machine-config.%s`",
					      k);
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
		return kiln_error_set(err, EINVAL,
				      "`entropy` must be an object");
	if (obj->u.object.len > 0)
		return kiln_error_set(err, ENOTSUP,
				      "`entropy.%s` is not supported yet",
				      obj->u.object.keys[0]);
	c->entropy = true;
	return 0;
}

/* Firecracker sections kiln-vmm does not implement yet: empty is fine. */
static int parse_unsupported(const char *k, yajl_val v, struct kiln_error *err)
{
	if (YAJL_IS_NULL(v) || (YAJL_IS_ARRAY(v) && v->u.array.len == 0))
		return 0;
	return kiln_error_set(err, ENOTSUP, "`%s` is not supported yet", k);
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
		return kiln_error_set(err, EINVAL, "config: NUL byte in JSON");
	buf = strndup(json, len);
	if (buf == NULL)
		return kiln_error_set(err, ENOMEM, "config: copy");
	root = yajl_tree_parse(buf, errbuf, sizeof(errbuf));
	if (root == NULL) {
		errbuf[strcspn(errbuf, "\n")] = '\0';
		return kiln_error_set(err, EINVAL, "config: invalid JSON: %s",
				      errbuf[0] ? errbuf : "parse error");
	}
	if (!YAJL_IS_OBJECT(root)) {
		ret = kiln_error_set(err, EINVAL,
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
		for (j = 0; j < sizeof(later) / sizeof(later[0]); j++)
			if (strcmp(k, later[j]) == 0)
				break;
		if (j < sizeof(later) / sizeof(later[0]))
			ret = parse_unsupported(k, v, err);
		else
			ret = kiln_error_set(err, EINVAL, "unknown key `%s`",
					     k);
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
		return kiln_error_set(err, EINVAL,
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

int vm_config_validate(const struct vm_config *c, struct kiln_error *err)
{
	if (c->kernel_path == NULL)
		return kiln_error_set(err, EINVAL,
				      "no kernel: give --kernel or "
				      "--config-file");
	if (c->vcpu_count < 1 || c->vcpu_count > VM_MAX_VCPUS)
		return kiln_error_set(err, EINVAL, "%u vCPUs: must be 1 to %d",
				      c->vcpu_count, VM_MAX_VCPUS);
	if (c->mem_mib < VM_MIN_MEM_MIB)
		return kiln_error_set(err, EINVAL,
				      "%llu MiB of memory: must be at least %d",
				      (unsigned long long)c->mem_mib,
				      VM_MIN_MEM_MIB);
	/* above this the gap arithmetic and KVM slots would overflow */
	if (c->mem_mib > (1ULL << 20))
		return kiln_error_set(err, EINVAL,
				      "%llu MiB of memory: at most 1 TiB",
				      (unsigned long long)c->mem_mib);
	return 0;
}
