/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API router over the fake ops: every endpoint's success path, the
 * error shape for bad requests on each, pre-/post-boot rules, and the
 * whole pre-boot configuration by API read back as GET /vm/config.
 */
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "../../lib/log.h"
#include "../../vmm/api/api.h"
#include "../../vmm/api/vm_ops.h"
#include "../lib/api_fake.h"
#include "tap.h"

struct t {
	struct vm_config cfg;
	struct api_ctx ctx;
	struct api_fake fake;
	struct api_response resp;
};

static void t_init(struct t *t)
{
	vm_config_init(&t->cfg);
	api_fake_init(&t->fake, &t->ctx, &t->cfg);
	t->resp.body = NULL;
}

static void t_fini(struct t *t)
{
	free(t->resp.body);
	t->resp.body = NULL;
	vm_config_destroy(&t->cfg);
}

static int call(struct t *t, const char *method, const char *path,
		const char *body)
{
	struct api_request req = { 0 };

	snprintf(req.method, sizeof(req.method), "%s", method);
	snprintf(req.path, sizeof(req.path), "%s", path);
	req.body = (char *)(body ? body : "");
	req.body_len = strlen(req.body);
	free(t->resp.body);
	api_dispatch(&t->ctx, &req, &t->resp);
	return t->resp.status;
}

/* 204 and no body */
static void done(struct t *t, const char *method, const char *path,
		 const char *body)
{
	int st = call(t, method, path, body);

	is_int(st, 204, "%s %s %s", method, path, body ? body : "");
	if (st != 204)
		printf("#   body %s\n", t->resp.body ? t->resp.body : "(none)");
	ok(t->resp.body == NULL, "  no body");
}

/*
 * 400 whose body is a JSON object with exactly one key, fault_message,
 * a non-empty string holding want.
 */
static bool fault_shape(const struct api_response *r, const char *want)
{
	char errbuf[128];
	yajl_val v, m;
	bool good;

	if (r->status != 400 || r->body == NULL)
		return false;
	v = yajl_tree_parse(r->body, errbuf, sizeof(errbuf));
	if (v == NULL)
		return false;
	m = YAJL_IS_OBJECT(v) && v->u.object.len == 1 &&
			    strcmp(v->u.object.keys[0], "fault_message") == 0
		    ? v->u.object.values[0]
		    : NULL;
	good = m != NULL && YAJL_IS_STRING(m) && m->u.string[0] != '\0' &&
	       strstr(m->u.string, want) != NULL;
	yajl_tree_free(v);
	return good;
}

static void refused(struct t *t, const char *method, const char *path,
		    const char *body, const char *want)
{
	call(t, method, path, body);
	if (!ok(fault_shape(&t->resp, want), "%s %s %s -> 400 `%s`", method,
		path, body ? body : "", want))
		printf("#   got %d %s\n", t->resp.status,
		       t->resp.body ? t->resp.body : "(none)");
}

/* GET path: 200 and a body holding each of the NULL-ended wants */
static void got(struct t *t, const char *path, ...)
{
	va_list ap;
	const char *w;
	int st = call(t, "GET", path, NULL);

	is_int(st, 200, "GET %s", path);
	va_start(ap, path);
	while ((w = va_arg(ap, const char *)) != NULL)
		if (!ok(t->resp.body && strstr(t->resp.body, w), "  has %s", w))
			printf("#   body %s\n",
			       t->resp.body ? t->resp.body : "(none)");
	va_end(ap);
}

#define KERNEL \
	"{\"kernel_image_path\": \"/k\", \"boot_args\": \"console=ttyS0\"}"

/* A config by API, as a client would send it. */
static void configure(struct t *t)
{
	call(t, "PUT", "/boot-source", KERNEL);
	call(t, "PUT", "/machine-config",
	     "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
	call(t, "PUT", "/drives/rootfs",
	     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r.img\","
	     " \"is_root_device\": true, \"is_read_only\": false}");
	call(t, "PUT", "/network-interfaces/eth0",
	     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\","
	     " \"guest_mac\": \"AA:FC:00:00:00:01\"}");
	call(t, "PUT", "/balloon",
	     "{\"amount_mib\": 128, \"deflate_on_oom\": true,"
	     " \"stats_polling_interval_s\": 1}");
	call(t, "PUT", "/vsock",
	     "{\"guest_cid\": 3, \"uds_path\": \"/v.sock\"}");
}

static void boot(struct t *t)
{
	configure(t);
	call(t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
}

enum when {
	PRE,
	RUN,
	PAUSED,
};

static const struct bad {
	enum when when;
	const char *method, *path, *body, *want;
} bads[] = {
	/* routing and bodies */
	{ PRE, "GET", "/nope", NULL,
	  "Invalid request method and/or path: GET /nope" },
	{ PRE, "DELETE", "/drives/rootfs", NULL, "Invalid request method" },
	{ PRE, "POST", "/actions", "{}", "Invalid request method" },
	{ PRE, "GET", "/drives/rootfs", NULL, "Invalid request method" },
	{ PRE, "PUT", "/version", "{}", "Invalid request method" },
	{ PRE, "GET", "/a/b/c/d/e", NULL, "Invalid request method" },
	{ PRE, "GET", "/", "{}", "GET request cannot have a body" },
	{ PRE, "PUT", "/boot-source", NULL, "Empty PUT request" },
	{ PRE, "PUT", "/nope", NULL, "Empty PUT request" },
	{ RUN, "PATCH", "/vm", NULL, "Empty PATCH request" },
	{ PRE, "PUT", "/drives", "{}", "The ID cannot be empty" },
	{ PRE, "PUT", "/drives/a-b", "{\"drive_id\": \"a-b\"}",
	  "alphanumeric characters and underscores" },
	{ PRE, "PUT", "/boot-source",
	  "{\"kernel_image_path\": ", "invalid JSON" },
	{ PRE, "PUT", "/boot-source", "[1]", "must be a JSON object" },
	{ PRE, "PUT", "/boot-source", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]",
	  "nested deeper" },
	/* actions */
	{ PRE, "PUT", "/actions", "{\"action_type\": \"Reboot\"}",
	  "`actions.action_type` \"Reboot\"" },
	{ PRE, "PUT", "/actions", "{\"action_type\": 1}", "must be a string" },
	{ PRE, "PUT", "/actions", "{\"payload\": 1}",
	  "unknown key `actions.payload`" },
	{ PRE, "PUT", "/actions", "{}", "`actions.action_type` is missing" },
	{ PRE, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}",
	  "not supported before starting" },
	{ PRE, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}",
	  "not supported before starting" },
	{ RUN, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
	  "not supported after starting" },
	/* boot-source */
	{ PRE, "PUT", "/boot-source", "{\"kernel_image_path\": 5}",
	  "`kernel_image_path` must be a string" },
	{ PRE, "PUT", "/boot-source", "{\"kernel\": \"/k\"}",
	  "unknown key `boot-source.kernel`" },
	{ PRE, "PUT", "/boot-source", "{\"boot_args\": \"x\"}",
	  "kernel_image_path` is missing" },
	{ RUN, "PUT", "/boot-source", KERNEL, "not supported after starting" },
	{ PRE, "PUT", "/boot-source",
	  "{\"kernel_image_path\": \"/k\", \"boot_args\": \"a\\u0007b\"}",
	  "command line is invalid: byte 0x07 at 1" },
	/* machine-config */
	{ PRE, "PUT", "/machine-config", "{\"vcpu_count\": 2}",
	  "`machine-config.mem_size_mib` is missing" },
	{ PRE, "PUT", "/machine-config",
	  "{\"vcpu_count\": 33, \"mem_size_mib\": 128}",
	  "33 vCPUs: must be 1 to 32" },
	{ PRE, "PATCH", "/machine-config", "{\"mem_size_mib\": 8}",
	  "8 MiB of memory: must be at least 16" },
	{ PRE, "PATCH", "/machine-config", "{\"vcpu_count\": \"2\"}",
	  "`vcpu_count` must be an integer" },
	{ PRE, "PATCH", "/machine-config", "{\"vcpu_count\": -1}",
	  "out of range" },
	{ PRE, "PATCH", "/machine-config", "{\"smt\": true}",
	  "`machine-config.smt` true is not supported" },
	{ PRE, "PATCH", "/machine-config", "{\"huge_pages\": \"2M\"}",
	  "only \"None\"" },
	{ PRE, "PATCH", "/machine-config", "{}", "Empty PATCH request." },
	{ PRE, "PATCH", "/machine-config", "{\"cpus\": 2}",
	  "unknown key `machine-config.cpus`" },
	{ PRE, "PATCH", "/machine-config", "{\"mem_size_mib\": 100}",
	  "less than the 128 MiB balloon" },
	{ RUN, "PATCH", "/machine-config", "{\"vcpu_count\": 1}",
	  "not supported after starting" },
	/* drives */
	{ PRE, "PUT", "/drives/data",
	  "{\"drive_id\": \"other\", \"path_on_host\": \"/d\","
	  " \"is_root_device\": false}",
	  "path [data] does not match the id from the body [other]" },
	{ PRE, "PUT", "/drives/data",
	  "{\"path_on_host\": \"/d\", \"is_root_device\": false}",
	  "`drive_id` is missing" },
	{ PRE, "PUT", "/drives/data",
	  "{\"drive_id\": \"data\", \"is_root_device\": false}",
	  "drive `data` needs a path_on_host" },
	{ PRE, "PUT", "/drives/data",
	  "{\"drive_id\": \"data\", \"path_on_host\": \"/d\"}",
	  "`drives[].is_root_device` is missing" },
	{ PRE, "PUT", "/drives/data",
	  "{\"drive_id\": \"data\", \"path_on_host\": \"/d\", \"speed\": 1}",
	  "unknown key `drives[].speed`" },
	{ PRE, "PUT", "/drives/data",
	  "{\"drive_id\": \"data\", \"path_on_host\": \"/d\","
	  " \"is_read_only\": \"yes\"}",
	  "`is_read_only` must be a boolean" },
	{ PRE, "PUT", "/drives/data",
	  "{\"drive_id\": \"data\", \"path_on_host\": \"/d\","
	  " \"is_root_device\": true}",
	  "drive `rootfs` is already the root device" },
	{ PRE, "PUT", "/drives/data",
	  "{\"drive_id\": \"data\", \"path_on_host\": \"/d\","
	  " \"rate_limiter\": {}}",
	  "`drives[].rate_limiter` is not supported yet" },
	{ RUN, "PUT", "/drives/data",
	  "{\"drive_id\": \"data\", \"path_on_host\": \"/d\"}",
	  "not supported after starting" },
	{ PRE, "PATCH", "/drives/rootfs",
	  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/n\"}",
	  "not supported before starting" },
	{ RUN, "PATCH", "/drives/rootfs",
	  "{\"drive_id\": \"rootfs\", \"rate_limiter\": {\"ops\": {}}}",
	  "rate limiters are not supported" },
	{ RUN, "PATCH", "/drives/rootfs",
	  "{\"drive_id\": \"x\", \"path_on_host\": \"/n\"}",
	  "does not match the id from the body [x]" },
	{ RUN, "PATCH", "/drives/nosuch",
	  "{\"drive_id\": \"nosuch\", \"path_on_host\": \"/n\"}",
	  "no drive `nosuch`" },
	{ RUN, "PATCH", "/drives/rootfs",
	  "{\"drive_id\": \"rootfs\", \"is_read_only\": true}",
	  "`drives.is_read_only` needs `drives.path_on_host`" },
	{ RUN, "PATCH", "/drives/rootfs",
	  "{\"drive_id\": \"rootfs\", \"is_read_only\": false,"
	  " \"path_on_host\": null}",
	  "`drives.is_read_only` needs `drives.path_on_host`" },
	{ RUN, "PATCH", "/drives/rootfs",
	  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/n\","
	  " \"is_read_only\": \"true\"}",
	  "`drives.is_read_only` must be a boolean" },
	{ RUN, "PATCH", "/drives/rootfs",
	  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/n\","
	  " \"is_read_only\": 1}",
	  "`drives.is_read_only` must be a boolean" },
	{ RUN, "PATCH", "/drives/rootfs",
	  "{\"drive_id\": \"rootfs\", \"path_on_host\": 7}",
	  "`drives.path_on_host` must be a string" },
	/* network interfaces */
	{ PRE, "PUT", "/network-interfaces/eth1",
	  "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap0\"}",
	  "host_dev_name `tap0` is already used by interface `eth0`" },
	{ PRE, "PUT", "/network-interfaces/eth1",
	  "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\","
	  " \"guest_mac\": \"aa:fc:00:00:00:01\"}",
	  "guest_mac is already used by interface `eth0`" },
	{ PRE, "PUT", "/network-interfaces/eth1",
	  "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\","
	  " \"guest_mac\": \"zz\"}",
	  "MAC `zz`" },
	{ PRE, "PUT", "/network-interfaces/eth1",
	  "{\"iface_id\": \"eth1\", \"host_dev_name\": "
	  "\"a-very-long-tap-name\"}",
	  "longer than 15 characters" },
	{ PRE, "PUT", "/network-interfaces/eth1", "{\"iface_id\": \"eth2\"}",
	  "does not match" },
	{ RUN, "PUT", "/network-interfaces/eth1",
	  "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\"}",
	  "not supported after starting" },
	{ PRE, "PATCH", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\"}",
	  "not supported before starting" },
	{ RUN, "PATCH", "/network-interfaces/eth0",
	  "{\"iface_id\": \"eth0\", \"rx_rate_limiter\": {}}",
	  "rate limiters are not supported" },
	{ RUN, "PATCH", "/network-interfaces/eth9", "{\"iface_id\": \"eth9\"}",
	  "no network interface `eth9`" },
	{ RUN, "PATCH", "/network-interfaces/eth0",
	  "{\"iface_id\": \"eth0\", \"host_dev_name\": \"x\"}",
	  "unknown key `network-interfaces.host_dev_name`" },
	/* vsock */
	{ PRE, "PUT", "/vsock", "{\"guest_cid\": 2, \"uds_path\": \"/v\"}",
	  "vsock guest CID 2" },
	{ PRE, "PUT", "/vsock", "{\"guest_cid\": 3}",
	  "`vsock.uds_path` is missing" },
	{ PRE, "PUT", "/vsock",
	  "{\"guest_cid\": 3, \"uds_path\": \"/v\", "
	  "\"port\": 1}",
	  "unknown key `vsock.port`" },
	{ PRE, "PUT", "/vsock", "{\"guest_cid\": 1e3, \"uds_path\": \"/v\"}",
	  "`guest_cid` must be an integer" },
	{ RUN, "PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/v\"}",
	  "not supported after starting" },
	/* balloon */
	{ PRE, "PUT", "/balloon",
	  "{\"amount_mib\": 300, \"deflate_on_oom\": "
	  "false}",
	  "balloon of 300 MiB is larger than the 256 MiB" },
	{ PRE, "PUT", "/balloon", "{\"amount_mib\": 1}",
	  "`balloon.deflate_on_oom` is missing" },
	{ PRE, "PUT", "/balloon",
	  "{\"amount_mib\": 1, \"deflate_on_oom\": false,"
	  " \"stats_polling_interval_s\": 65536}",
	  "out of range 0..65535" },
	{ PRE, "PUT", "/balloon",
	  "{\"amount_mib\": -1, \"deflate_on_oom\": "
	  "false}",
	  "out of range" },
	{ PRE, "PUT", "/balloon",
	  "{\"amount_mib\": 1, \"deflate_on_oom\": "
	  "false, \"size\": 1}",
	  "unknown key `balloon.size`" },
	{ RUN, "PUT", "/balloon",
	  "{\"amount_mib\": 1, \"deflate_on_oom\": "
	  "false}",
	  "not supported after starting" },
	{ PRE, "PATCH", "/balloon", "{\"amount_mib\": 1}",
	  "not supported before starting" },
	{ RUN, "PATCH", "/balloon", "{\"amount_mib\": 257}",
	  "257 MiB is larger than the 256 MiB" },
	{ RUN, "PATCH", "/balloon", "{\"amount_mib\": true}",
	  "`balloon.amount_mib` must be an integer" },
	{ RUN, "PATCH", "/balloon", "{\"deflate_on_oom\": true}",
	  "unknown key `balloon.deflate_on_oom`" },
	{ RUN, "PATCH", "/balloon", "{}", "`balloon.amount_mib` is missing" },
	{ PRE, "GET", "/balloon/statistics", NULL,
	  "not supported before starting" },
	{ RUN, "PATCH", "/balloon/statistics",
	  "{\"stats_polling_interval_s\": 0}",
	  "Cannot enable/disable the statistics" },
	{ RUN, "PATCH", "/balloon/statistics", "{\"interval\": 1}",
	  "unknown key `balloon/statistics.interval`" },
	{ RUN, "PATCH", "/balloon/statistics",
	  "{\"stats_polling_interval_s\": 4294967296}", "out of range" },
	{ RUN, "PATCH", "/balloon/statistics",
	  "{\"stats_polling_interval_s\": 65536}", "out of range 0..65535" },
	{ PRE, "PATCH", "/balloon/statistics",
	  "{\"stats_polling_interval_s\": 2}", "not supported before" },
	/* entropy, logger, metrics */
	{ PRE, "PUT", "/entropy", "{\"rate_limiter\": {\"ops\": {}}}",
	  "`entropy.rate_limiter` is not supported yet" },
	{ PRE, "PUT", "/entropy", "{\"bits\": 1}",
	  "unknown key `entropy.bits`" },
	{ RUN, "PUT", "/entropy", "{}", "not supported after starting" },
	{ PRE, "PUT", "/logger", "{\"module\": \"api_server\"}",
	  "module filter not supported" },
	{ PRE, "PUT", "/logger", "{\"level\": \"Loud\"}",
	  "`logger.level` \"Loud\": want Error" },
	{ PRE, "PUT", "/logger", "{\"show_level\": 1}",
	  "`show_level` must be a boolean" },
	{ PRE, "PUT", "/logger", "{\"path\": \"/l\"}",
	  "unknown key `logger.path`" },
	{ RUN, "PUT", "/logger", "{\"level\": \"Info\"}",
	  "not supported after starting" },
	{ PRE, "PUT", "/metrics", "{}", "`metrics.metrics_path` is missing" },
	{ PRE, "PUT", "/metrics", "{\"metrics_path\": null}",
	  "must be a string" },
	{ PRE, "PUT", "/metrics", "{\"metrics_path\": \"/m\", \"x\": 1}",
	  "unknown key `metrics.x`" },
	{ RUN, "PUT", "/metrics", "{\"metrics_path\": \"/m\"}",
	  "not supported after starting" },
	/* vm */
	{ PRE, "PATCH", "/vm", "{\"state\": \"Paused\"}",
	  "not supported before starting" },
	{ RUN, "PATCH", "/vm", "{\"state\": \"Stopped\"}",
	  "`vm.state` \"Stopped\": want Paused or Resumed" },
	{ RUN, "PATCH", "/vm", "{\"state\": 1}", "must be a string" },
	{ RUN, "PATCH", "/vm", "{\"state\": \"Paused\", \"now\": true}",
	  "unknown key `vm.now`" },
	{ RUN, "PATCH", "/vm", "{}", "`vm.state` is missing" },
	/* snapshots */
	{ PRE, "PUT", "/snapshot/create",
	  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
	  "not supported before starting" },
	{ RUN, "PUT", "/snapshot/create",
	  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
	  "pause it first" },
	{ PAUSED, "PUT", "/snapshot/create", "{\"snapshot_path\": \"/s\"}",
	  "`snapshot.mem_file_path` is missing" },
	{ PAUSED, "PUT", "/snapshot/create",
	  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/s\"}",
	  "are the same file" },
	{ PAUSED, "PUT", "/snapshot/create",
	  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
	  " \"snapshot_type\": \"Diff\", \"encryption_key_path\": \"/k\"}",
	  "a diff snapshot cannot be sealed" },
	{ PAUSED, "PUT", "/snapshot/create",
	  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
	  " \"snapshot_type\": \"Half\"}",
	  "want Full or Diff" },
	{ PAUSED, "PUT", "/snapshot/create",
	  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"x\": 1}",
	  "unknown key `snapshot.x`" },
	{ PRE, "PUT", "/snapshot/load",
	  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
	  "after configuring boot-specific resources" },
	{ RUN, "PUT", "/snapshot/load",
	  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
	  "not supported after starting" },
	/* what kiln-vmm does not have yet */
	{ PRE, "PUT", "/mmds", "{\"latest\": {}}",
	  "MMDS is not supported yet" },
	{ PRE, "GET", "/mmds", NULL, "MMDS is not supported yet" },
	{ RUN, "PATCH", "/mmds", "{}", "MMDS is not supported yet" },
	{ PRE, "PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}",
	  "MMDS is not supported yet" },
	{ PRE, "PUT", "/cpu-config", "{}",
	  "cpu-config) are not supported yet" },
	{ PRE, "PUT", "/pmem/p0", "{}", "pmem devices are not supported yet" },
	{ PRE, "PUT", "/serial", "{}", "not supported yet" },
	{ PRE, "GET", "/hotplug/memory", NULL, "memory hotplug is not" },
	{ RUN, "PATCH", "/balloon/hinting/stop", NULL,
	  "free page hinting is not supported yet" },
};

static void check_bads(void)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		struct t t;
		char *before, *after;

		t_init(&t);
		if (b->when == PRE)
			configure(&t);
		else
			boot(&t);
		if (b->when == PAUSED)
			call(&t, "PATCH", "/vm", "{\"state\": \"Paused\"}");
		before = vm_config_to_json(&t.cfg);
		refused(&t, b->method, b->path, b->body, b->want);
		after = vm_config_to_json(&t.cfg);
		if (!ok(before && after && strcmp(before, after) == 0, "  "
								       "config "
								       "unchang"
								       "ed"))
			printf("#   before %s\n#   after  %s\n", before, after);
		free(before);
		free(after);
		t_fini(&t);
	}
}

static void check_ops_fail(void)
{
	static const struct {
		const char *op, *method, *path, *body;
		enum when when;
	} cases[] = {
		{ "boot", "PUT", "/actions",
		  "{\"action_type\": \"InstanceStart\"}", PRE },
		{ "ctrl_alt_del", "PUT", "/actions",
		  "{\"action_type\": \"SendCtrlAltDel\"}", RUN },
		{ "metrics_flush", "PUT", "/actions",
		  "{\"action_type\": \"FlushMetrics\"}", RUN },
		{ "pause", "PATCH", "/vm", "{\"state\": \"Paused\"}", RUN },
		{ "resume", "PATCH", "/vm", "{\"state\": \"Resumed\"}",
		  PAUSED },
		{ "drive_replace", "PATCH", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/n\"}", RUN },
		{ "drive_replace", "PATCH", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/n\","
		  " \"is_read_only\": true}",
		  RUN },
		{ "balloon_set_target", "PATCH", "/balloon",
		  "{\"amount_mib\": 8}", RUN },
		{ "balloon_stats", "GET", "/balloon/statistics", NULL, RUN },
		{ "balloon_set_interval", "PATCH", "/balloon/statistics",
		  "{\"stats_polling_interval_s\": 3}", RUN },
		{ "logger", "PUT", "/logger", "{\"log_path\": \"/l\"}", PRE },
		{ "metrics_open", "PUT", "/metrics",
		  "{\"metrics_path\": \"/m\"}", PRE },
		{ "check_boot_source", "PUT", "/boot-source",
		  "{\"kernel_image_path\": \"/k2\"}", PRE },
		{ "check_drive", "PUT", "/drives/data",
		  "{\"drive_id\": \"data\", \"path_on_host\": \"/d\","
		  " \"is_root_device\": false}",
		  PRE },
		{ "check_drive", "PUT", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r2\","
		  " \"is_root_device\": true}",
		  PRE },
		{ "check_net", "PUT", "/network-interfaces/eth1",
		  "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\"}",
		  PRE },
		{ "check_vsock", "PUT", "/vsock",
		  "{\"guest_cid\": 4, \"uds_path\": \"/w.sock\"}", PRE },
		{ "snapshot_create", "PUT", "/snapshot/create",
		  "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
		  PAUSED },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct t t;
		char *before, *after;
		enum api_vm_state state;

		t_init(&t);
		if (cases[i].when == PRE)
			configure(&t);
		else
			boot(&t);
		if (cases[i].when == PAUSED)
			call(&t, "PATCH", "/vm", "{\"state\": \"Paused\"}");
		state = t.ctx.state;
		before = vm_config_to_json(&t.cfg);
		api_fake_fail(&t.fake, cases[i].op, "the fake says no");
		refused(&t, cases[i].method, cases[i].path, cases[i].body,
			"the fake says no");
		after = vm_config_to_json(&t.cfg);
		ok(before && after && strcmp(before, after) == 0 &&
			   t.ctx.state == state,
		   "  %s failing changes neither config nor state",
		   cases[i].op);
		free(before);
		free(after);
		t_fini(&t);
	}
}

static void check_success(void)
{
	struct t t;

	t_init(&t);
	got(&t, "/", "\"id\":\"anonymous-instance\"",
	    "\"state\":\"Not started\"", "\"vmm_version\":\"",
	    "\"app_name\":\"kiln-vmm\"", NULL);
	got(&t, "/version", "{\"firecracker_version\":\"", NULL);
	got(&t, "/machine-config",
	    "{\"vcpu_count\":1,\"mem_size_mib\":128,\"smt\":false,"
	    "\"track_dirty_pages\":false,\"huge_pages\":\"None\"}",
	    NULL);
	refused(&t, "GET", "/balloon", NULL, "No balloon device found");
	refused(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
		"no kernel");
	is_int(t.fake.ncalls, 0, "  boot not called without a kernel");

	api_fake_clear(&t.fake);
	done(&t, "PUT", "/boot-source", KERNEL);
	ok(strcmp(t.fake.log, "check_boot_source(/k,-);") == 0,
	   "  the kernel is checked at the request: %s", t.fake.log);
	ok(strcmp(t.cfg.kernel_path, "/k") == 0 &&
		   strcmp(t.cfg.cmdline, "console=ttyS0") == 0,
	   "  boot source set");
	done(&t, "PUT", "/boot-source",
	     "{\"kernel_image_path\": \"/k2\", \"initrd_path\": \"/i\"}");
	ok(strcmp(t.fake.last, "check_boot_source(/k2,/i)") == 0,
	   "  and the initrd: %s", t.fake.last);
	ok(strcmp(t.cfg.kernel_path, "/k2") == 0 && t.cfg.cmdline == NULL &&
		   strcmp(t.cfg.initrd_path, "/i") == 0,
	   "  a second PUT replaces the whole boot source");
	done(&t, "PUT", "/machine-config",
	     "{\"vcpu_count\": 2, \"mem_size_mib\": 512, \"smt\": false,"
	     " \"track_dirty_pages\": true, \"huge_pages\": \"None\"}");
	ok(t.cfg.track_dirty_pages, "  track_dirty_pages set");
	got(&t, "/machine-config", "\"track_dirty_pages\":true", NULL);
	done(&t, "PATCH", "/machine-config", "{\"mem_size_mib\": 256}");
	ok(t.cfg.vcpu_count == 2 && t.cfg.mem_mib == 256, "  PATCH merges: 2 "
							  "vCPUs kept, memory "
							  "changed");
	refused(&t, "PATCH", "/machine-config", "{}", "Empty PATCH request.");
	done(&t, "PUT", "/drives/rootfs",
	     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\","
	     " \"is_root_device\": true, \"is_read_only\": true,"
	     " \"cache_type\": \"Unsafe\", \"io_engine\": \"Sync\","
	     " \"partuuid\": null, \"rate_limiter\": null}");
	done(&t, "PUT", "/drives/data_1",
	     "{\"drive_id\": \"data_1\", \"path_on_host\": \"/d\","
	     " \"is_root_device\": false, \"is_read_only\": false}");
	done(&t, "PUT", "/drives/rootfs",
	     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r2\","
	     " \"is_root_device\": true, \"is_read_only\": false}");
	ok(strcmp(t.fake.last, "check_drive(rootfs,/r2,rw)") == 0,
	   "  the drive's file is checked in its mode: %s", t.fake.last);
	ok(t.cfg.ndrives == 2 && strcmp(t.cfg.drives[0].path, "/r2") == 0 &&
		   !t.cfg.drives[0].read_only,
	   "  the same drive id again replaces it in place");
	for (int i = 2; i < VM_MAX_DRIVES; i++) {
		char path[32], body[96];

		snprintf(path, sizeof(path), "/drives/d%d", i);
		snprintf(body, sizeof(body),
			 "{\"drive_id\": \"d%d\", \"path_on_host\": \"/d\","
			 " \"is_root_device\": false}",
			 i);
		call(&t, "PUT", path, body);
	}
	is_int(t.cfg.ndrives, VM_MAX_DRIVES, "  %d drives", VM_MAX_DRIVES);
	refused(&t, "PUT", "/drives/one_more",
		"{\"drive_id\": \"one_more\", \"path_on_host\": \"/d\","
		" \"is_root_device\": false}",
		"already 8 drives");
	done(&t, "PUT", "/network-interfaces/eth0",
	     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\","
	     " \"guest_mac\": \"AA:FC:00:00:00:01\", \"rx_rate_limiter\": "
	     "null}");
	done(&t, "PUT", "/network-interfaces/eth0",
	     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap1\"}");
	ok(strcmp(t.fake.last, "check_net(eth0,tap1)") == 0,
	   "  the TAP is checked: %s", t.fake.last);
	ok(t.cfg.nnets == 1 && strcmp(t.cfg.nets[0].tap, "tap1") == 0 &&
		   !t.cfg.nets[0].has_mac,
	   "  the same interface id again replaces it");
	done(&t, "PUT", "/vsock",
	     "{\"guest_cid\": 3, \"uds_path\": \"/v.sock\", \"vsock_id\": "
	     "\"vsock0\"}");
	done(&t, "PUT", "/vsock", "{\"guest_cid\": 9, \"uds_path\": \"/w\"}");
	ok(strcmp(t.fake.last, "check_vsock(9,/w)") == 0,
	   "  the socket path is checked: %s", t.fake.last);
	ok(t.cfg.vsock.enabled && t.cfg.vsock.cid == 9 &&
		   strcmp(t.cfg.vsock.uds_path, "/w") == 0,
	   "  vsock replaced");
	done(&t, "PUT", "/balloon",
	     "{\"amount_mib\": 64, \"deflate_on_oom\": true,"
	     " \"stats_polling_interval_s\": 5}");
	got(&t, "/balloon",
	    "{\"amount_mib\":64,\"deflate_on_oom\":true,"
	    "\"stats_polling_interval_s\":5}",
	    NULL);
	done(&t, "PUT", "/entropy", "{}");
	ok(t.cfg.entropy, "  entropy on");
	done(&t, "PUT", "/logger",
	     "{\"log_path\": \"/l.log\", \"level\": \"debug\","
	     " \"show_level\": true, \"show_log_origin\": false}");
	ok(strcmp(t.fake.last, "logger(/l.log,4,1,0)") == 0,
	   "  ops->logger called: %s", t.fake.last);
	done(&t, "PUT", "/logger", "{\"level\": \"Warning\"}");
	ok(strcmp(t.fake.last, "logger(-,2,1,0)") == 0,
	   "  a second PUT keeps the path and flags: %s", t.fake.last);
	ok(strcmp(t.cfg.log_path, "/l.log") == 0 &&
		   t.cfg.log_level == LOG_WARN && t.cfg.show_level &&
		   !t.cfg.show_origin,
	   "  logger config kept");
	done(&t, "PUT", "/metrics", "{\"metrics_path\": \"/m.json\"}");
	ok(strcmp(t.fake.last, "metrics_open(/m.json)") == 0 &&
		   strcmp(t.cfg.metrics_path, "/m.json") == 0,
	   "  ops->metrics_open called");
	refused(&t, "PUT", "/metrics", "{\"metrics_path\": \"/n.json\"}",
		"Reinitialization of metrics not allowed");

	api_fake_clear(&t.fake);
	done(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	ok(strcmp(t.fake.log, "boot;") == 0 && t.ctx.state == API_RUNNING,
	   "  InstanceStart boots: %s", t.fake.log);
	got(&t, "/", "\"state\":\"Running\"", NULL);
	got(&t, "/machine-config", "\"vcpu_count\":2", NULL);
	done(&t, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
	ok(strcmp(t.fake.last, "ctrl_alt_del") == 0, "  ops->ctrl_alt_del");
	done(&t, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
	ok(strcmp(t.fake.last, "metrics_flush") == 0, "  ops->metrics_flush");

	done(&t, "PATCH", "/drives/rootfs",
	     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/new.img\"}");
	ok(strcmp(t.fake.last, "drive_replace(rootfs,/new.img)") == 0,
	   "  ops->drive_replace: %s", t.fake.last);
	got(&t, "/vm/config", "\"path_on_host\":\"/new.img\"", NULL);
	/* ours: is_read_only reopens the new file in that mode, kept */
	done(&t, "PATCH", "/drives/rootfs",
	     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/ro.img\","
	     " \"is_read_only\": true}");
	ok(strcmp(t.fake.last, "drive_replace(rootfs,/ro.img,ro)") == 0,
	   "  ops->drive_replace read-only: %s", t.fake.last);
	got(&t, "/vm/config",
	    "\"path_on_host\":\"/ro.img\",\"is_root_device\":true,"
	    "\"is_read_only\":true",
	    NULL);
	done(&t, "PATCH", "/drives/rootfs",
	     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/same.img\"}");
	ok(strcmp(t.fake.last, "drive_replace(rootfs,/same.img)") == 0 &&
		   t.cfg.drives[0].read_only,
	   "  without is_read_only: the drive's mode: %s", t.fake.last);
	done(&t, "PATCH", "/drives/rootfs",
	     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/rw.img\","
	     " \"is_read_only\": false}");
	ok(strcmp(t.fake.last, "drive_replace(rootfs,/rw.img,rw)") == 0,
	   "  ops->drive_replace read-write: %s", t.fake.last);
	got(&t, "/vm/config",
	    "\"path_on_host\":\"/rw.img\",\"is_root_device\":true,"
	    "\"is_read_only\":false",
	    NULL);
	api_fake_clear(&t.fake);
	done(&t, "PATCH", "/drives/rootfs",
	     "{\"drive_id\": \"rootfs\", \"rate_limiter\": null}");
	is_int(t.fake.ncalls, 0, "  a PATCH without a path changes nothing");
	done(&t, "PATCH", "/network-interfaces/eth0",
	     "{\"iface_id\": \"eth0\"}");

	t.fake.stats.target_pages = 16384;
	t.fake.stats.target_mib = 64;
	t.fake.stats.actual_pages = 256;
	t.fake.stats.actual_mib = 1;
	t.fake.stats.present = 1U << BALLOON_S_MEMFREE |
			       1U << BALLOON_S_SWAP_IN |
			       1U << BALLOON_S_DIRECT_RECLAIM;
	t.fake.stats.values[BALLOON_S_MEMFREE] = 123456789012ULL;
	t.fake.stats.values[BALLOON_S_SWAP_IN] = UINT64_MAX;
	t.fake.stats.values[BALLOON_S_MEMTOT] = 5; /* not present */
	got(&t, "/balloon/statistics",
	    "{\"target_pages\":16384,\"actual_pages\":256,\"target_mib\":64,"
	    "\"actual_mib\":1,\"swap_in\":18446744073709551615,"
	    "\"free_memory\":123456789012,\"direct_reclaim\":0}",
	    NULL);
	ok(strstr(t.resp.body, "total_memory") == NULL, "  stats the guest did "
							"not report are left "
							"out");
	done(&t, "PATCH", "/balloon", "{\"amount_mib\": 100}");
	ok(strcmp(t.fake.last, "balloon_set_target(100)") == 0 &&
		   t.cfg.balloon.amount_mib == 100,
	   "  ops->balloon_set_target");
	t.fake.stats.target_mib = 100;
	got(&t, "/balloon", "\"amount_mib\":100", NULL);
	done(&t, "PATCH", "/balloon/statistics",
	     "{\"stats_polling_interval_s\": 7}");
	ok(strcmp(t.fake.last, "balloon_set_interval(7)") == 0 &&
		   t.cfg.balloon.stats_interval_s == 7,
	   "  ops->balloon_set_interval");

	api_fake_clear(&t.fake);
	done(&t, "PATCH", "/vm", "{\"state\": \"Paused\"}");
	got(&t, "/", "\"state\":\"Paused\"", NULL);
	done(&t, "PATCH", "/vm", "{\"state\": \"Paused\"}");
	done(&t, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
	done(&t, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
	ok(strcmp(t.fake.log, "pause;resume;") == 0,
	   "  pause and resume once each: %s", t.fake.log);
	refused(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
		"not supported after starting");
	/* odd but harmless paths */
	is_int(call(&t, "GET", "//version/", NULL), 200, "GET //version/");
	t_fini(&t);

	/* statistics that were not enabled at boot */
	t_init(&t);
	call(&t, "PUT", "/boot-source", KERNEL);
	call(&t, "PUT", "/balloon",
	     "{\"amount_mib\": 0, \"deflate_on_oom\": false}");
	call(&t, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	refused(&t, "GET", "/balloon/statistics", NULL,
		"Statistics for the balloon device are not enabled");
	refused(&t, "PATCH", "/balloon/statistics",
		"{\"stats_polling_interval_s\": 1}",
		"Statistics for the balloon device are not enabled");
	t_fini(&t);
}

/* The whole pre-boot config by API, read back, is --config-file's. */
static void check_full_config(void)
{
	static const char file[] =
		"{\"boot-source\": {\"kernel_image_path\": \"/k\","
		" \"initrd_path\": \"/i\", \"boot_args\": \"console=ttyS0\"},"
		" \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": "
		"256},"
		" \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": "
		"\"/r\", \"is_root_device\": true, \"is_read_only\": true},"
		" {\"drive_id\": \"data\", \"path_on_host\": \"/d\","
		" \"is_root_device\": false, \"is_read_only\": false}],"
		" \"network-interfaces\": [{\"iface_id\": \"eth0\","
		" \"host_dev_name\": \"tap0\", \"guest_mac\": "
		"\"aa:fc:00:00:00:01\"}],"
		" \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/v.sock\"},"
		" \"balloon\": {\"amount_mib\": 16, \"deflate_on_oom\": true,"
		" \"stats_polling_interval_s\": 1},"
		" \"entropy\": {},"
		" \"logger\": {\"log_path\": \"/l\", \"level\": \"Info\","
		" \"show_level\": true, \"show_log_origin\": true},"
		" \"metrics\": {\"metrics_path\": \"/m\"}}";
	struct kiln_error err = { 0 };
	struct vm_config from_file, from_api;
	char *want, *again;
	struct t t;

	t_init(&t);
	done(&t, "PUT", "/logger",
	     "{\"log_path\": \"/l\", \"level\": \"Info\", \"show_level\": true,"
	     " \"show_log_origin\": true}");
	done(&t, "PUT", "/metrics", "{\"metrics_path\": \"/m\"}");
	done(&t, "PUT", "/boot-source",
	     "{\"kernel_image_path\": \"/k\", \"initrd_path\": \"/i\","
	     " \"boot_args\": \"console=ttyS0\"}");
	done(&t, "PUT", "/machine-config",
	     "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
	done(&t, "PUT", "/drives/rootfs",
	     "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\","
	     " \"is_root_device\": true, \"is_read_only\": true}");
	done(&t, "PUT", "/drives/data",
	     "{\"drive_id\": \"data\", \"path_on_host\": \"/d\","
	     " \"is_root_device\": false, \"is_read_only\": false}");
	done(&t, "PUT", "/network-interfaces/eth0",
	     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\","
	     " \"guest_mac\": \"AA:FC:00:00:00:01\"}");
	done(&t, "PUT", "/vsock",
	     "{\"guest_cid\": 3, \"uds_path\": \"/v.sock\"}");
	done(&t, "PUT", "/balloon",
	     "{\"amount_mib\": 16, \"deflate_on_oom\": true,"
	     " \"stats_polling_interval_s\": 1}");
	done(&t, "PUT", "/entropy", "{}");
	is_int(call(&t, "GET", "/vm/config", NULL), 200, "GET /vm/config");

	vm_config_init(&from_file);
	vm_config_init(&from_api);
	is_int(vm_config_parse_json(&from_file, file, strlen(file), &err), 0,
	       "the same as a --config-file parses: %s", err.msg);
	is_int(vm_config_parse_json(&from_api, t.resp.body, strlen(t.resp.body),
				    &err),
	       0, "GET /vm/config parses as a --config-file: %s", err.msg);
	want = vm_config_to_json(&from_file);
	again = vm_config_to_json(&from_api);
	if (!ok(want && again && strcmp(want, again) == 0 &&
			strcmp(want, t.resp.body) == 0,
		"GET /vm/config equals the --config-file's config"))
		printf("#   file %s\n#   api  %s\n", want, t.resp.body);
	is_int(vm_config_validate(&from_api, &err), 0, "and it is valid: %s",
	       err.msg);
	free(want);
	free(again);
	vm_config_destroy(&from_file);
	vm_config_destroy(&from_api);
	t_fini(&t);
}

/*
 * The host checks of a real VMM (vm_api_ops.check_*, which need no VM)
 * behind the router: a pre-boot PUT naming a file that is not there is
 * refused at that request, with the words --config-file gives.
 */
static void check_host_at_request(void)
{
	char dir[] = "/tmp/kiln-test-api-XXXXXX";
	char kernel[64], missing[64], fifo[64], body[800], want[600];
	struct api_ops ops = api_fake_ops;
	struct kiln_error err = { 0 };
	struct vm_config file;
	struct t t;
	int fd;

	ops.check_boot_source = vm_api_ops.check_boot_source;
	ops.check_drive = vm_api_ops.check_drive;
	ops.check_net = vm_api_ops.check_net;
	ops.check_vsock = vm_api_ops.check_vsock;
	if (!ok(mkdtemp(dir) != NULL, "temp dir"))
		return;
	snprintf(kernel, sizeof(kernel), "%s/vmlinux", dir);
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	fd = open(kernel, O_CREAT | O_WRONLY, 0600);
	ok(fd >= 0 && write(fd,
			    "\x7f"
			    "ELF",
			    4) == 4,
	   "a kernel file");
	close(fd);
	ok(mkfifo(fifo, 0600) == 0, "a FIFO");

	t_init(&t);
	t.ctx.ops = &ops;
	snprintf(body, sizeof(body), "{\"kernel_image_path\": \"%s\"}",
		 missing);
	snprintf(want, sizeof(want),
		 "open kernel `%s`: No such file or directory", missing);
	refused(&t, "PUT", "/boot-source", body, want);
	ok(t.cfg.kernel_path == NULL, "  no boot source kept");
	snprintf(body, sizeof(body), "{\"kernel_image_path\": \"%s\"}", fifo);
	refused(&t, "PUT", "/boot-source", body, "is not a file");
	snprintf(body, sizeof(body),
		 "{\"kernel_image_path\": \"%s\", \"initrd_path\": \"%s\"}",
		 kernel, missing);
	refused(&t, "PUT", "/boot-source", body, "open initrd `");
	snprintf(body, sizeof(body), "{\"kernel_image_path\": \"%s\"}", kernel);
	done(&t, "PUT", "/boot-source", body);

	snprintf(body, sizeof(body),
		 "{\"drive_id\": \"data\", \"path_on_host\": \"%s\","
		 " \"is_root_device\": false}",
		 missing);
	snprintf(want, sizeof(want),
		 "drive data: open `%s`: No such file or directory", missing);
	refused(&t, "PUT", "/drives/data", body, want);
	is_int(t.cfg.ndrives, 0, "  no drive kept");
	snprintf(body, sizeof(body),
		 "{\"drive_id\": \"data\", \"path_on_host\": \"%s\","
		 " \"is_root_device\": false}",
		 fifo);
	refused(&t, "PUT", "/drives/data", body, "not a file or block device");
	snprintf(body, sizeof(body),
		 "{\"drive_id\": \"data\", \"path_on_host\": \"%s\","
		 " \"is_root_device\": false, \"is_read_only\": true}",
		 kernel);
	done(&t, "PUT", "/drives/data", body);
	is_int(t.cfg.ndrives, 1, "  the drive is kept");

	refused(&t, "PUT", "/network-interfaces/eth0",
		"{\"iface_id\": \"eth0\", \"host_dev_name\": \"kilnnotap0\"}",
		"TAP `kilnnotap0` does not exist");
	is_int(t.cfg.nnets, 0, "  no interface kept");

	snprintf(body, sizeof(body),
		 "{\"guest_cid\": 3, \"uds_path\": \"%s/no/v.sock\"}", dir);
	refused(&t, "PUT", "/vsock", body, "No such file or directory");
	snprintf(body, sizeof(body), "{\"guest_cid\": 3, \"uds_path\": \"%s\"}",
		 kernel);
	refused(&t, "PUT", "/vsock", body, "exists and is not a socket");
	ok(!t.cfg.vsock.enabled, "  no vsock kept");
	snprintf(body, sizeof(body),
		 "{\"guest_cid\": 3, \"uds_path\": \"%s/v.sock\"}", dir);
	done(&t, "PUT", "/vsock", body);

	/* --config-file with the same missing drive: the same message */
	vm_config_init(&file);
	snprintf(body, sizeof(body),
		 "{\"boot-source\": {\"kernel_image_path\": \"%s\"},"
		 " \"drives\": [{\"drive_id\": \"data\", \"path_on_host\":"
		 " \"%s\", \"is_root_device\": false}]}",
		 kernel, missing);
	is_int(vm_config_parse_json(&file, body, strlen(body), &err), 0,
	       "the config file parses");
	is_int(vm_config_check_host(&file, &err), -1, "  its check fails");
	kiln_error_str(&err, want, sizeof(want));
	snprintf(body, sizeof(body),
		 "{\"drive_id\": \"data\", \"path_on_host\": \"%s\","
		 " \"is_root_device\": false}",
		 missing);
	call(&t, "PUT", "/drives/data", body);
	snprintf(body, sizeof(body), "{\"fault_message\":\"%s\"}", want);
	ok(t.resp.body != NULL && strcmp(t.resp.body, body) == 0,
	   "  with the API's words: %s", want);
	vm_config_destroy(&file);
	t_fini(&t);

	unlink(kernel);
	unlink(fifo);
	rmdir(dir);
}

/* PUT /snapshot/load on a fresh VMM, as Firecracker takes it. */
static void check_snapshot_load(void)
{
	static const char *const bad[][2] = {
		{ "{\"snapshot_path\": \"/s\"}", "exactly one of" },
		{ "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
		  " \"mem_backend\": {\"backend_path\": \"/m\","
		  " \"backend_type\": \"File\"}}",
		  "exactly one of" },
		{ "{\"snapshot_path\": \"/s\", \"mem_backend\":"
		  " {\"backend_path\": \"/m\", \"backend_type\": \"Uffd\"}}",
		  "only File is supported" },
		{ "{\"snapshot_path\": \"/s\", \"mem_backend\":"
		  " {\"backend_path\": \"/m\"}}",
		  "`mem_backend.backend_type` is missing" },
		{ "{\"snapshot_path\": \"/s\", \"mem_backend\": 3}", "must be "
								     "an "
								     "object" },
		{ "{\"mem_file_path\": \"/m\"}", "`snapshot.snapshot_path` is "
						 "missing" },
		{ "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
		  " \"enable_diff_snapshots\": 1}",
		  "must be a boolean" },
		{ "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
		  " \"resume_vm\": \"yes\"}",
		  "must be a boolean" },
	};
	struct t t;

	t_init(&t);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused(&t, "PUT", "/snapshot/load", bad[i][0], bad[i][1]);
	is_int(t.fake.ncalls, 0, "  no op called for a bad load");
	api_fake_fail(&t.fake, "snapshot_load", "the fake says no");
	refused(&t, "PUT", "/snapshot/load",
		"{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
		"the fake says no");
	ok(t.ctx.state == API_NOT_STARTED, "  a failed load leaves the VMM "
					   "not started");
	api_fake_fail(&t.fake, NULL, "");
	api_fake_clear(&t.fake);
	done(&t, "PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"/s\", \"mem_backend\":"
	     " {\"backend_path\": \"/m\", \"backend_type\": \"File\"},"
	     " \"enable_diff_snapshots\": false}");
	ok(strcmp(t.fake.log, "snapshot_load(/s,/m);") == 0 &&
		   t.ctx.state == API_PAUSED,
	   "  loaded, paused: %s", t.fake.log);
	refused(&t, "PUT", "/snapshot/load",
		"{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
		"not supported after starting");
	api_fake_clear(&t.fake);
	done(&t, "PUT", "/snapshot/create",
	     "{\"snapshot_path\": \"/s2\", \"mem_file_path\": \"/m2\","
	     " \"snapshot_type\": \"Full\"}");
	ok(strcmp(t.fake.log, "snapshot_create(/s2,/m2);") == 0,
	   "  a loaded VM snapshots again: %s", t.fake.log);
	t_fini(&t);

	t_init(&t);
	done(&t, "PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
	     " \"resume_vm\": true}");
	ok(strcmp(t.fake.log, "snapshot_load(/s,/m);resume;") == 0 &&
		   t.ctx.state == API_RUNNING,
	   "  resume_vm: loaded and running: %s", t.fake.log);
	got(&t, "/", "\"state\":\"Running\"", NULL);
	t_fini(&t);

	/* ours: the key of a sealed snapshot goes to both ops */
	t_init(&t);
	refused(&t, "PUT", "/snapshot/load",
		"{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
		" \"encryption_key_path\": \"\"}",
		"`snapshot.encryption_key_path` is empty");
	refused(&t, "PUT", "/snapshot/load",
		"{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
		" \"encryption_key_path\": 3}",
		"encryption_key_path");
	is_int(t.fake.ncalls, 0, "  no op called for a bad key path");
	done(&t, "PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
	     " \"encryption_key_path\": \"/k\"}");
	ok(strcmp(t.fake.log, "snapshot_load(/s,/m,key=/k);") == 0,
	   "  load with a key: %s", t.fake.log);
	api_fake_clear(&t.fake);
	done(&t, "PUT", "/snapshot/create",
	     "{\"snapshot_path\": \"/s2\", \"mem_file_path\": \"/m2\","
	     " \"encryption_key_path\": \"/k2\"}");
	ok(strcmp(t.fake.log, "snapshot_create(/s2,/m2,key=/k2);") == 0,
	   "  create with a key: %s", t.fake.log);
	t_fini(&t);

	/* diff snapshots: the type reaches the op, and tracking the load */
	t_init(&t);
	done(&t, "PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
	     " \"track_dirty_pages\": true}");
	ok(strcmp(t.fake.log, "snapshot_load(/s,/m,dirty);") == 0,
	   "  load tracking dirty pages: %s", t.fake.log);
	api_fake_clear(&t.fake);
	done(&t, "PUT", "/snapshot/create",
	     "{\"snapshot_path\": \"/s2\", \"mem_file_path\": \"/m2\","
	     " \"snapshot_type\": \"Diff\"}");
	ok(strcmp(t.fake.log, "snapshot_create(/s2,/m2,diff);") == 0,
	   "  a diff snapshot: %s", t.fake.log);
	t_fini(&t);
	t_init(&t);
	done(&t, "PUT", "/snapshot/load",
	     "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\","
	     " \"enable_diff_snapshots\": true}");
	ok(strcmp(t.fake.log, "snapshot_load(/s,/m,dirty);") == 0,
	   "  enable_diff_snapshots, the old name, asks the same: %s",
	   t.fake.log);
	t_fini(&t);
}

/* Ours: PUT /snapshot/template of a paused VM, PUT /snapshot/fork. */
static void check_fork_routes(void)
{
	struct t t;

	t_init(&t);
	t.ctx.state = API_RUNNING;
	refused(&t, "PUT", "/snapshot/template", "{\"socket_path\": \"/t\"}",
		"pause it first");
	t.ctx.state = API_PAUSED;
	refused(&t, "PUT", "/snapshot/template", "{\"socket_path\": \"\"}",
		"`template.socket_path` is missing");
	refused(&t, "PUT", "/snapshot/template",
		"{\"socket_path\": \"/t\", \"x\": 1}",
		"unknown key `template.x`");
	refused(&t, "PUT", "/snapshot/template",
		"{\"socket_path\": \"/t\", \"max_forks\": 0}",
		"`template.max_forks` 0: 1 to 960");
	refused(&t, "PUT", "/snapshot/template",
		"{\"socket_path\": \"/t\", \"max_forks\": 961}",
		"`template.max_forks` 961: 1 to 960");
	refused(&t, "PUT", "/snapshot/template",
		"{\"socket_path\": \"/t\", \"max_forks\": \"9\"}",
		"`template.max_forks` must be an integer");
	is_int(t.fake.ncalls, 0, "  no op called for a bad template");
	api_fake_fail(&t.fake, "template_make", "the fake says no");
	refused(&t, "PUT", "/snapshot/template", "{\"socket_path\": \"/t\"}",
		"the fake says no");
	ok(t.ctx.state == API_PAUSED, "  a failed template stays paused");
	api_fake_fail(&t.fake, NULL, "");
	api_fake_clear(&t.fake);
	done(&t, "PUT", "/snapshot/template", "{\"socket_path\": \"/t\"}");
	ok(strcmp(t.fake.log, "template(/t,0);") == 0 &&
		   t.ctx.state == API_TEMPLATE,
	   "  a template: %s", t.fake.log);
	got(&t, "/", "\"state\":\"Template\"", NULL);
	t_fini(&t);

	t_init(&t);
	t.ctx.state = API_PAUSED;
	done(&t, "PUT", "/snapshot/template",
	     "{\"socket_path\": \"/t\", \"max_forks\": 7}");
	ok(strcmp(t.fake.log, "template(/t,7);") == 0,
	   "  max_forks goes to the template: %s", t.fake.log);
	refused(&t, "PATCH", "/vm", "{\"state\": \"Resumed\"}",
		"This microVM is a template");
	refused(&t, "PUT", "/snapshot/create",
		"{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}",
		"This microVM is a template");
	refused(&t, "PUT", "/snapshot/template", "{\"socket_path\": \"/t\"}",
		"This microVM is a template");
	t_fini(&t);

	t_init(&t);
	refused(&t, "PUT", "/snapshot/fork", "{\"resume_vm\": true}",
		"`fork.template_socket` is missing");
	refused(&t, "PUT", "/snapshot/fork",
		"{\"template_socket\": \"/t\", \"resume_vm\": 1}",
		"must be a boolean");
	done(&t, "PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}");
	refused(&t, "PUT", "/snapshot/fork", "{\"template_socket\": \"/t\"}",
		"a fork runs its template's kernel");
	t_fini(&t);

	t_init(&t);
	done(&t, "PUT", "/machine-config",
	     "{\"vcpu_count\": 2, \"mem_size_mib\": 128}");
	api_fake_clear(&t.fake);
	done(&t, "PUT", "/snapshot/fork",
	     "{\"template_socket\": \"/t\", \"resume_vm\": true}");
	ok(strcmp(t.fake.log, "fork(/t,2 vCPU);resume;") == 0 &&
		   t.ctx.state == API_RUNNING,
	   "  forked and running: %s", t.fake.log);
	refused(&t, "PUT", "/snapshot/fork", "{\"template_socket\": \"/t\"}",
		"not supported after starting");
	t_fini(&t);
}

int main(void)
{
	check_success();
	check_bads();
	check_ops_fail();
	check_snapshot_load();
	check_fork_routes();
	check_full_config();
	check_host_at_request();
	return tap_done();
}
