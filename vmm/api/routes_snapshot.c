/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Firecracker's snapshot resources: PUT /snapshot/create of a paused VM
 * (full snapshots: a state file and a memory file) and PUT /snapshot/load
 * on a VMM that has neither started nor been configured for a boot, as
 * Firecracker allows it. Ours beside them (fork.h): PUT /snapshot/template
 * makes a paused VM a template serving forks on a Unix socket, PUT
 * /snapshot/fork restores a VMM configured with its own devices (no boot
 * source) from one.
 */
#include <errno.h>
#include <string.h>

#include "../fork.h"
#include "routes.h"

static int get_bool(yajl_val body, const char *what, const char *k, bool *out,
		    struct kiln_error *err)
{
	yajl_val v = route_member(body, k);

	if (v == NULL || YAJL_IS_NULL(v))
		return 0;
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
		return kiln_error_set(err, 0, "`%s.%s` must be a boolean", what,
				      k);
	*out = YAJL_IS_TRUE(v);
	return 0;
}

static int need_path(yajl_val body, const char *what, const char *k,
		     const char **out, struct kiln_error *err)
{
	if (route_get_str(body, what, k, out, err) < 0)
		return -1;
	if (*out == NULL || **out == '\0')
		return kiln_error_set(err, 0, "`%s.%s` is missing", what, k);
	return 0;
}

/* Ours, not Firecracker's: the key file of a sealed snapshot, or none. */
static int get_key_path(yajl_val body, const char **out, struct kiln_error *err)
{
	if (route_get_str(body, "snapshot", "encryption_key_path", out, err) <
	    0)
		return -1;
	if (*out != NULL && **out == '\0')
		return kiln_error_set(err, 0,
				      "`snapshot.encryption_key_path` is "
				      "empty");
	return 0;
}

int route_put_snapshot_create(struct api_ctx *ctx, const char *id,
			      yajl_val body, struct api_response *resp,
			      struct kiln_error *err)
{
	static const char *const keys[] = {
		"snapshot_path", "mem_file_path",	"snapshot_type",
		"version",	 "encryption_key_path", NULL
	};
	const char *state, *mem, *type = NULL, *key = NULL;
	bool diff = false;

	if (route_only_keys(body, "snapshot", keys, err) < 0 ||
	    need_path(body, "snapshot", "snapshot_path", &state, err) < 0 ||
	    need_path(body, "snapshot", "mem_file_path", &mem, err) < 0 ||
	    route_get_str(body, "snapshot", "snapshot_type", &type, err) < 0 ||
	    get_key_path(body, &key, err) < 0)
		return -1;
	if (type != NULL && strcmp(type, "Full") != 0) {
		if (strcmp(type, "Diff") != 0)
			return kiln_error_set(err, 0,
					      "`snapshot.snapshot_type` "
					      "\"%s\": want Full or Diff",
					      type);
		diff = true;
	}
	if (diff && key != NULL)
		return kiln_error_set(err, 0,
				      "a diff snapshot cannot be sealed: "
				      "take a Full one with "
				      "`encryption_key_path`");
	if (strcmp(state, mem) == 0)
		return kiln_error_set(err, 0,
				      "`snapshot_path` and `mem_file_path` "
				      "are the same file");
	if (ctx->state != API_PAUSED)
		return kiln_error_set(err, 0,
				      "Cannot create a snapshot of a running "
				      "microVM: pause it first (PATCH /vm "
				      "{\"state\": \"Paused\"}).");
	if (OP(ctx, snapshot_create, err) < 0)
		return -1;
	return ctx->ops->snapshot_create(ctx->vmm, state, mem, key, diff, err);
}

/* Was anything that shapes a boot configured? Firecracker refuses then. */
static bool configured(const struct vm_config *c)
{
	return c->kernel_path != NULL || c->ndrives > 0 || c->nnets > 0 ||
	       c->vsock.enabled || c->balloon.enabled || c->entropy ||
	       c->nfs > 0;
}

int route_put_snapshot_load(struct api_ctx *ctx, const char *id, yajl_val body,
			    struct api_response *resp, struct kiln_error *err)
{
	static const char *const keys[] = {
		"snapshot_path",       "mem_file_path",
		"mem_backend",	       "enable_diff_snapshots",
		"track_dirty_pages",   "resume_vm",
		"encryption_key_path", NULL
	};
	static const char *const be_keys[] = { "backend_path", "backend_type",
					       NULL };
	const char *state, *mem = NULL, *type = NULL, *key = NULL;
	bool resume = false, diff = false, dirty = false;
	yajl_val be;

	if (route_only_keys(body, "snapshot", keys, err) < 0 ||
	    need_path(body, "snapshot", "snapshot_path", &state, err) < 0 ||
	    route_get_str(body, "snapshot", "mem_file_path", &mem, err) < 0 ||
	    get_bool(body, "snapshot", "resume_vm", &resume, err) < 0 ||
	    get_bool(body, "snapshot", "enable_diff_snapshots", &diff, err) <
		    0 ||
	    get_bool(body, "snapshot", "track_dirty_pages", &dirty, err) < 0 ||
	    get_key_path(body, &key, err) < 0)
		return -1;
	be = route_member(body, "mem_backend");
	if (be != NULL && YAJL_IS_NULL(be))
		be = NULL;
	if ((be == NULL) == (mem == NULL))
		return kiln_error_set(err, 0,
				      "exactly one of `mem_file_path` and "
				      "`mem_backend` is required");
	if (be != NULL) {
		if (!YAJL_IS_OBJECT(be))
			return kiln_error_set(err, 0,
					      "`snapshot.mem_backend` must be "
					      "an object");
		if (route_only_keys(be, "mem_backend", be_keys, err) < 0 ||
		    need_path(be, "mem_backend", "backend_path", &mem, err) <
			    0 ||
		    route_get_str(be, "mem_backend", "backend_type", &type,
				  err) < 0)
			return -1;
		if (type == NULL)
			return kiln_error_set(err, 0,
					      "`mem_backend.backend_type` is "
					      "missing");
		if (strcmp(type, "File") != 0)
			return kiln_error_set(err, 0,
					      "`mem_backend.backend_type` "
					      "\"%s\": only File is supported",
					      type);
	}
	if (configured(ctx->cfg))
		return kiln_error_set(err, 0,
				      "Loading a microVM snapshot not allowed "
				      "after configuring boot-specific "
				      "resources.");
	if (OP(ctx, snapshot_load, err) < 0)
		return -1;
	/* Firecracker's old name and its new one ask for the same */
	if (ctx->ops->snapshot_load(ctx->vmm, ctx->cfg, state, mem, key,
				    diff || dirty, err) < 0)
		return -1;
	ctx->state = API_PAUSED;
	if (!resume)
		return 0;
	if (OP(ctx, resume, err) < 0 || ctx->ops->resume(ctx->vmm, err) < 0)
		return kiln_error_wrap(err, "resume the loaded snapshot");
	ctx->state = API_RUNNING;
	return 0;
}

int route_put_snapshot_template(struct api_ctx *ctx, const char *id,
				yajl_val body, struct api_response *resp,
				struct kiln_error *err)
{
	static const char *const keys[] = { "socket_path", "max_forks", NULL };
	const char *sock;
	uint32_t max_forks = 0;

	if (route_only_keys(body, "template", keys, err) < 0 ||
	    need_path(body, "template", "socket_path", &sock, err) < 0 ||
	    (route_member(body, "max_forks") != NULL &&
	     route_get_u32(body, "template", "max_forks", &max_forks, err) < 0))
		return -1;
	if (route_member(body, "max_forks") != NULL &&
	    (max_forks < 1 || max_forks > FORK_MAX_LIVE))
		return kiln_error_set(err, 0,
				      "`template.max_forks` %u: 1 to %u forks "
				      "alive at once",
				      max_forks, FORK_MAX_LIVE);
	if (ctx->state != API_PAUSED)
		return kiln_error_set(err, 0,
				      "Cannot make a template of a running "
				      "microVM: pause it first.");
	if (OP(ctx, template_make, err) < 0 ||
	    ctx->ops->template_make(ctx->vmm, sock, max_forks, err) < 0)
		return -1;
	ctx->state = API_TEMPLATE;
	return 0;
}

int route_put_snapshot_fork(struct api_ctx *ctx, const char *id, yajl_val body,
			    struct api_response *resp, struct kiln_error *err)
{
	static const char *const keys[] = { "template_socket", "resume_vm",
					    NULL };
	const char *sock;
	bool resume = false;

	if (route_only_keys(body, "fork", keys, err) < 0 ||
	    need_path(body, "fork", "template_socket", &sock, err) < 0 ||
	    get_bool(body, "fork", "resume_vm", &resume, err) < 0 ||
	    vm_config_validate_fork(ctx->cfg, err) < 0)
		return -1;
	if (OP(ctx, fork, err) < 0 ||
	    ctx->ops->fork(ctx->vmm, ctx->cfg, sock, err) < 0)
		return -1;
	ctx->state = API_PAUSED;
	if (!resume)
		return 0;
	if (OP(ctx, resume, err) < 0 || ctx->ops->resume(ctx->vmm, err) < 0)
		return kiln_error_wrap(err, "resume the fork");
	ctx->state = API_RUNNING;
	return 0;
}
