/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Firecracker's API routed to its resources: a table of method + path,
 * Firecracker's body and pre-/post-boot rules, its error shape
 * ({"fault_message": ...}, 400) and wording where clients match on it.
 * The pre-boot configuration resources live in routes_config.c.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/cleanup.h"
#include "../../lib/json.h"
#include "routes.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

#define ROUTE_MAX_SEGS 4

/* ---- JSON helpers ------------------------------------------------------ */

yajl_gen route_gen(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);

	/* client text echoed back (paths, ids) must not break the JSON */
	if (g != NULL)
		yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	return g;
}

static void gen_key(yajl_gen g, const char *k)
{
	yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

void route_gen_str(yajl_gen g, const char *k, const char *v)
{
	gen_key(g, k);
	yajl_gen_string(g, (const unsigned char *)v, strlen(v));
}

void route_gen_uint(yajl_gen g, const char *k, uint64_t v)
{
	char num[24];

	/* yajl_gen_integer is signed: a u64 goes as its decimal digits */
	gen_key(g, k);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	yajl_gen_number(g, num, strlen(num));
}

void route_gen_bool(yajl_gen g, const char *k, bool v)
{
	gen_key(g, k);
	yajl_gen_bool(g, v);
}

int route_json(struct api_response *resp, yajl_gen g, struct kiln_error *err)
{
	const unsigned char *buf;
	char *body = NULL;
	size_t len;

	if (g == NULL)
		return kiln_error_set(err, 0, "out of memory"), -2;
	if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
		body = strndup((const char *)buf, len);
	yajl_gen_free(g);
	if (body == NULL)
		return kiln_error_set(err, 0, "cannot write the answer"), -2;
	free(resp->body);
	resp->body = body;
	resp->status = 200;
	return 0;
}

static void fault(struct api_response *resp, int status, const char *msg)
{
	yajl_gen g = route_gen();
	const unsigned char *buf;
	size_t len;

	free(resp->body);
	resp->body = NULL;
	resp->status = status;
	if (g == NULL)
		return;
	yajl_gen_map_open(g);
	gen_key(g, "fault_message");
	if (yajl_gen_string(g, (const unsigned char *)msg, strlen(msg)) !=
	    yajl_gen_status_ok) {
		/* not UTF-8 (client bytes in it): say so in ASCII */
		static const char ascii[] = "(a message that is not UTF-8)";

		yajl_gen_string(g, (const unsigned char *)ascii,
				sizeof(ascii) - 1);
	}
	yajl_gen_map_close(g);
	if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
		resp->body = strndup((const char *)buf, len);
	yajl_gen_free(g);
}

static void __attribute__((format(printf, 3, 4)))
faultf(struct api_response *resp, int status, const char *fmt, ...)
{
	char msg[KILN_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fault(resp, status, msg);
}

yajl_val route_member(yajl_val obj, const char *k)
{
	if (!YAJL_IS_OBJECT(obj))
		return NULL;
	for (size_t i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], k) == 0)
			return obj->u.object.values[i];
	return NULL;
}

int route_only_keys(yajl_val obj, const char *what, const char *const *keys,
		    struct kiln_error *err)
{
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		size_t j;

		for (j = 0; keys[j] != NULL; j++)
			if (strcmp(keys[j], k) == 0)
				break;
		if (keys[j] == NULL)
			return kiln_error_set(err, 0, "unknown key `%s.%s`",
					      what, k);
	}
	return 0;
}

int route_need_keys(yajl_val obj, const char *what, const char *const *keys,
		    struct kiln_error *err)
{
	for (size_t j = 0; keys[j] != NULL; j++)
		if (route_member(obj, keys[j]) == NULL)
			return kiln_error_set(err, 0, "`%s.%s` is missing",
					      what, keys[j]);
	return 0;
}

int route_get_str(yajl_val obj, const char *what, const char *k,
		  const char **out, struct kiln_error *err)
{
	yajl_val v = route_member(obj, k);

	*out = NULL;
	if (v == NULL || YAJL_IS_NULL(v))
		return 0;
	if (!YAJL_IS_STRING(v))
		return kiln_error_set(err, 0, "`%s.%s` must be a string", what,
				      k);
	*out = v->u.string;
	return 0;
}

int route_get_u32(yajl_val obj, const char *what, const char *k, uint32_t *out,
		  struct kiln_error *err)
{
	yajl_val v = route_member(obj, k);
	long long n;

	if (v == NULL)
		return kiln_error_set(err, 0, "`%s.%s` is missing", what, k);
	if (!YAJL_IS_INTEGER(v))
		return kiln_error_set(err, 0, "`%s.%s` must be an integer",
				      what, k);
	n = YAJL_GET_INTEGER(v);
	if (n < 0 || n > UINT32_MAX)
		return kiln_error_set(err, 0,
				      "`%s.%s` %lld is out of range 0..%u",
				      what, k, n, UINT32_MAX);
	*out = (uint32_t)n;
	return 0;
}

/* ---- runtime resources ------------------------------------------------- */

static const char *state_name(enum api_vm_state s)
{
	switch (s) {
	case API_RUNNING:
		return "Running";
	case API_PAUSED:
		return "Paused";
	case API_TEMPLATE:
		return "Template";
	default:
		return "Not started";
	}
}

static int get_root(struct api_ctx *ctx, const char *id, yajl_val body,
		    struct api_response *resp, struct kiln_error *err)
{
	yajl_gen g = route_gen();

	if (g != NULL) {
		yajl_gen_map_open(g);
		route_gen_str(g, "id",
			      ctx->instance_id ? ctx->instance_id
					       : "anonymous-instance");
		route_gen_str(g, "state", state_name(ctx->state));
		route_gen_str(g, "vmm_version", KILN_VERSION);
		route_gen_str(g, "app_name", "kiln-vmm");
		yajl_gen_map_close(g);
	}
	return route_json(resp, g, err);
}

static int get_version(struct api_ctx *ctx, const char *id, yajl_val body,
		       struct api_response *resp, struct kiln_error *err)
{
	yajl_gen g = route_gen();

	if (g != NULL) {
		yajl_gen_map_open(g);
		route_gen_str(g, "firecracker_version", KILN_VERSION);
		yajl_gen_map_close(g);
	}
	return route_json(resp, g, err);
}

static int put_actions(struct api_ctx *ctx, const char *id, yajl_val body,
		       struct api_response *resp, struct kiln_error *err)
{
	static const char *const keys[] = { "action_type", NULL };
	const char *type;

	if (route_only_keys(body, "actions", keys, err) < 0 ||
	    route_get_str(body, "actions", "action_type", &type, err) < 0)
		return -1;
	if (type == NULL)
		return kiln_error_set(err, 0,
				      "`actions.action_type` is missing");
	if (strcmp(type, "InstanceStart") == 0) {
		if (ctx->state != API_NOT_STARTED)
			return kiln_error_set(err, 0, ROUTE_POST_BOOT);
		if (vm_config_validate(ctx->cfg, err) < 0 ||
		    OP(ctx, boot, err) < 0 || ctx->ops->boot(ctx->vmm, err) < 0)
			return -1;
		ctx->state = API_RUNNING;
		return 0;
	}
	if (strcmp(type, "SendCtrlAltDel") == 0) {
		if (ctx->state == API_NOT_STARTED)
			return kiln_error_set(err, 0, ROUTE_PRE_BOOT);
		if (OP(ctx, ctrl_alt_del, err) < 0)
			return -1;
		return ctx->ops->ctrl_alt_del(ctx->vmm, err);
	}
	if (strcmp(type, "FlushMetrics") == 0) {
		if (ctx->state == API_NOT_STARTED)
			return kiln_error_set(err, 0, ROUTE_PRE_BOOT);
		if (OP(ctx, metrics_flush, err) < 0)
			return -1;
		return ctx->ops->metrics_flush(ctx->vmm, err);
	}
	return kiln_error_set(err, 0,
			      "`actions.action_type` \"%s\": want "
			      "InstanceStart, SendCtrlAltDel or FlushMetrics",
			      type);
}

static int get_machine(struct api_ctx *ctx, const char *id, yajl_val body,
		       struct api_response *resp, struct kiln_error *err)
{
	yajl_gen g = route_gen();

	if (g != NULL) {
		yajl_gen_map_open(g);
		route_gen_uint(g, "vcpu_count", ctx->cfg->vcpu_count);
		route_gen_uint(g, "mem_size_mib", ctx->cfg->mem_mib);
		route_gen_bool(g, "smt", false);
		route_gen_bool(g, "track_dirty_pages",
			       ctx->cfg->track_dirty_pages);
		route_gen_str(g, "huge_pages", "None");
		yajl_gen_map_close(g);
	}
	return route_json(resp, g, err);
}

static int patch_vm(struct api_ctx *ctx, const char *id, yajl_val body,
		    struct api_response *resp, struct kiln_error *err)
{
	static const char *const keys[] = { "state", NULL };
	const char *want;

	if (route_only_keys(body, "vm", keys, err) < 0 ||
	    route_get_str(body, "vm", "state", &want, err) < 0)
		return -1;
	if (want == NULL)
		return kiln_error_set(err, 0, "`vm.state` is missing");
	if (strcmp(want, "Paused") == 0) {
		if (ctx->state == API_PAUSED) /* already: nothing to do */
			return 0;
		if (OP(ctx, pause, err) < 0 ||
		    ctx->ops->pause(ctx->vmm, err) < 0)
			return -1;
		ctx->state = API_PAUSED;
		return 0;
	}
	if (strcmp(want, "Resumed") == 0) {
		if (ctx->state == API_RUNNING)
			return 0;
		if (OP(ctx, resume, err) < 0 ||
		    ctx->ops->resume(ctx->vmm, err) < 0)
			return -1;
		ctx->state = API_RUNNING;
		return 0;
	}
	return kiln_error_set(
		err, 0, "`vm.state` \"%s\": want Paused or Resumed", want);
}

static int get_vm_config(struct api_ctx *ctx, const char *id, yajl_val body,
			 struct api_response *resp, struct kiln_error *err)
{
	char *json = vm_config_to_json(ctx->cfg);

	if (json == NULL)
		return kiln_error_set(err, 0, "cannot write the configuration"),
		       -2;
	free(resp->body);
	resp->body = json;
	resp->status = 200;
	return 0;
}

/* ---- the table ---------------------------------------------------------- */

enum route_when {
	ANY,
	PRE_BOOT,  /* refused once the VM started */
	POST_BOOT, /* refused before */
};

struct route {
	const char *method;
	const char *path; /* without the leading '/'; "*" is an id */
	enum route_when when;
	route_fn fn;
	const char *unsupported; /* fn == NULL: the fault_message */
};

#define NOT_YET(m, p, what)                                \
	{                                                  \
		m, p, ANY, NULL, what " not supported yet" \
	}

static const struct route routes[] = {
	{ "GET", "", ANY, get_root, NULL },
	{ "GET", "version", ANY, get_version, NULL },
	{ "PUT", "actions", ANY, put_actions, NULL },
	{ "PUT", "boot-source", PRE_BOOT, route_put_boot_source, NULL },
	{ "GET", "machine-config", ANY, get_machine, NULL },
	{ "PUT", "machine-config", PRE_BOOT, route_put_machine, NULL },
	{ "PATCH", "machine-config", PRE_BOOT, route_patch_machine, NULL },
	{ "PUT", "drives/*", PRE_BOOT, route_put_drive, NULL },
	{ "PATCH", "drives/*", POST_BOOT, route_patch_drive, NULL },
	{ "PUT", "network-interfaces/*", PRE_BOOT, route_put_net, NULL },
	{ "PATCH", "network-interfaces/*", POST_BOOT, route_patch_net, NULL },
	{ "PUT", "vsock", PRE_BOOT, route_put_vsock, NULL },
	{ "PUT", "fs/*", PRE_BOOT, route_put_fs, NULL }, /* kiln's own */
	{ "GET", "balloon", ANY, route_get_balloon, NULL },
	{ "PUT", "balloon", PRE_BOOT, route_put_balloon, NULL },
	{ "PATCH", "balloon", POST_BOOT, route_patch_balloon, NULL },
	{ "GET", "balloon/statistics", POST_BOOT, route_get_balloon_stats,
	  NULL },
	{ "PATCH", "balloon/statistics", POST_BOOT, route_patch_balloon_stats,
	  NULL },
	{ "PUT", "entropy", PRE_BOOT, route_put_entropy, NULL },
	{ "PUT", "logger", PRE_BOOT, route_put_logger, NULL },
	{ "PUT", "metrics", PRE_BOOT, route_put_metrics, NULL },
	{ "PATCH", "vm", POST_BOOT, patch_vm, NULL },
	{ "GET", "vm/config", ANY, get_vm_config, NULL },
	{ "PUT", "snapshot/create", POST_BOOT, route_put_snapshot_create,
	  NULL },
	{ "PUT", "snapshot/load", PRE_BOOT, route_put_snapshot_load, NULL },
	{ "PUT", "snapshot/template", POST_BOOT, route_put_snapshot_template,
	  NULL },
	{ "PUT", "snapshot/fork", PRE_BOOT, route_put_snapshot_fork, NULL },
	NOT_YET("GET", "mmds", "MMDS is"),
	NOT_YET("PUT", "mmds", "MMDS is"),
	NOT_YET("PATCH", "mmds", "MMDS is"),
	NOT_YET("PUT", "mmds/config", "MMDS is"),
	NOT_YET("PUT", "cpu-config", "custom CPU templates (cpu-config) are"),
	NOT_YET("PUT", "pmem/*", "pmem devices are"),
	NOT_YET("PATCH", "pmem/*", "pmem devices are"),
	NOT_YET("PUT", "serial", "serial device settings are"),
	NOT_YET("GET", "hotplug/memory", "memory hotplug is"),
	NOT_YET("PUT", "hotplug/memory", "memory hotplug is"),
	NOT_YET("PATCH", "hotplug/memory", "memory hotplug is"),
	NOT_YET("GET", "balloon/hinting/status", "free page hinting is"),
	NOT_YET("PATCH", "balloon/hinting/start", "free page hinting is"),
	NOT_YET("PATCH", "balloon/hinting/stop", "free page hinting is"),
};

/*
 * Split path ("/a/b/c", one trailing '/' allowed) in place into at most
 * ROUTE_MAX_SEGS non-empty parts; -1 when it has more or an empty one.
 */
static int split_path(char *p, char **segs)
{
	size_t len;
	int n = 0;

	while (*p == '/')
		p++;
	len = strlen(p);
	if (len > 0 && p[len - 1] == '/')
		p[len - 1] = '\0';
	if (*p == '\0')
		return 0;
	for (char *save = NULL, *s = strtok_r(p, "/", &save); s != NULL;
	     s = strtok_r(NULL, "/", &save)) {
		if (n == ROUTE_MAX_SEGS)
			return -1;
		segs[n++] = s;
	}
	return n;
}

/* Does pattern match the n segs? *id gets the "*" part. */
static bool path_match(const char *pattern, char **segs, int n, const char **id)
{
	char buf[64];
	char *pats[ROUTE_MAX_SEGS];
	int m;

	snprintf(buf, sizeof(buf), "%s", pattern);
	m = split_path(buf, pats);
	if (m != n)
		return false;
	for (int i = 0; i < n; i++) {
		if (strcmp(pats[i], "*") == 0)
			*id = segs[i];
		else if (strcmp(pats[i], segs[i]) != 0)
			return false;
	}
	return true;
}

/* Firecracker's checked_id: ids are [A-Za-z0-9_]+ */
static bool id_ok(const char *id)
{
	for (const char *p = id; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return *id != '\0';
}

static const struct route *route_find(const char *method, char **segs, int n,
				      const char **id, bool *id_missing)
{
	char *more[ROUTE_MAX_SEGS + 1];

	for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
		if (strcmp(routes[i].method, method) == 0 &&
		    path_match(routes[i].path, segs, n, id))
			return &routes[i];
	/* "PUT /drives": a route with its id left out */
	if (n < ROUTE_MAX_SEGS) {
		memcpy(more, segs, sizeof(*segs) * n);
		more[n] = "*";
		for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
			const char *unused;
			size_t len = strlen(routes[i].path);

			if (strcmp(routes[i].method, method) == 0 && len >= 2 &&
			    strcmp(routes[i].path + len - 2, "/*") == 0 &&
			    path_match(routes[i].path, more, n + 1, &unused))
				*id_missing = true;
		}
	}
	return NULL;
}

static void respond(struct api_ctx *ctx, const struct route *r, const char *id,
		    const struct api_request *req, struct api_response *resp)
{
	struct kiln_error err = { 0 };
	char msg[KILN_ERROR_MSG_MAX + 64];
	yajl_val body = NULL;
	int ret;

	if (req->body_len > 0) {
		/* client-controlled: bounded by the HTTP layer, NUL-checked */
		body = json_parse(req->body, req->body_len, &err);
		if (body == NULL)
			return fault(resp, 400, err.msg);
		if (!YAJL_IS_OBJECT(body)) {
			yajl_tree_free(body);
			return fault(resp, 400,
				     "the request body must be a JSON object");
		}
	}
	/* a template has no VM left: it is only looked at */
	if (ctx->state == API_TEMPLATE && strcmp(r->method, "GET") != 0)
		ret = kiln_error_set(&err, 0,
				     "This microVM is a template: it serves "
				     "forks and runs no more.");
	else if (r->when == PRE_BOOT && ctx->state != API_NOT_STARTED)
		ret = kiln_error_set(&err, 0, ROUTE_POST_BOOT);
	else if (r->when == POST_BOOT && ctx->state == API_NOT_STARTED)
		ret = kiln_error_set(&err, 0, ROUTE_PRE_BOOT);
	else {
		/* the request's, closed once it is answered (http.h) */
		ctx->fd = req->nfds == 1 ? req->fds[0] : -1;
		ret = r->fn(ctx, id, body, resp, &err);
		ctx->fd = -1;
	}
	yajl_tree_free(body);
	/* with errno's words: "open kernel `/k`: No such file or directory" */
	if (ret < 0 && err.msg[0] != '\0')
		kiln_error_str(&err, msg, sizeof(msg));
	if (ret == -2)
		fault(resp, 500, err.msg[0] ? msg : "internal error");
	else if (ret < 0)
		fault(resp, 400, err.msg[0] ? msg : "bad request");
	else if (resp->status == 0)
		resp->status = 204;
}

void api_dispatch(struct api_ctx *ctx, const struct api_request *req,
		  struct api_response *resp)
{
	char path[HTTP_MAX_PATH], method[sizeof(req->method)];
	char *segs[ROUTE_MAX_SEGS];
	const struct route *r = NULL;
	const char *id = NULL;
	bool id_missing = false, takes_fd;
	int n;

	resp->status = 0;
	resp->body = NULL;
	/* client-controlled: the HTTP layer bounds both; we do it again */
	snprintf(path, sizeof(path), "%.*s", (int)sizeof(path) - 1, req->path);
	snprintf(method, sizeof(method), "%.*s", (int)sizeof(method) - 1,
		 req->method);
	n = split_path(path, segs);
	if (n >= 0)
		r = route_find(method, segs, n, &id, &id_missing);
	if (r != NULL && r->fn == NULL)
		return fault(resp, 400, r->unsupported);
	if (strcmp(method, "GET") == 0 && req->body_len > 0)
		return fault(resp, 400, "GET request cannot have a body.");
	if (strcmp(method, "PUT") == 0 && req->body_len == 0)
		return fault(resp, 400, "Empty PUT request.");
	if (strcmp(method, "PATCH") == 0 && req->body_len == 0)
		return fault(resp, 400, "Empty PATCH request.");
	if (id_missing)
		return fault(resp, 400, "The ID cannot be empty.");
	if (r == NULL)
		return faultf(resp, 400,
			      "Invalid request method and/or path: %s %.*s",
			      method, HTTP_MAX_PATH - 1, req->path);
	if (id != NULL && !id_ok(id))
		return faultf(resp, 400,
			      "API Resource IDs can only contain alphanumeric "
			      "characters and underscores: `%s`",
			      id);
	/* client-controlled: a file descriptor only where one is read
	 * (ours: PATCH /drives/{id}, docs/api.md) */
	takes_fd = r->fn == route_patch_drive;
	if (req->nfds > (takes_fd ? 1u : 0u))
		return faultf(resp, 400,
			      "%s %.*s takes %s file descriptor (%zu came "
			      "with the request)",
			      method, HTTP_MAX_PATH - 1, req->path,
			      takes_fd ? "one" : "no", req->nfds);
	respond(ctx, r, id, req, resp);
}
