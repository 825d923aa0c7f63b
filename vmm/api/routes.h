/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the router: what routes.c (dispatch, runtime resources) and
 * routes_config.c (pre-boot configuration) share. Not for other users:
 * they call api_dispatch().
 */
#ifndef KILN_VMM_API_ROUTES_H
#define KILN_VMM_API_ROUTES_H

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "api.h"

/* Firecracker's words, which clients match on */
#define ROUTE_POST_BOOT                                                \
	"The requested operation is not supported after starting the " \
	"microVM."
#define ROUTE_PRE_BOOT                                                  \
	"The requested operation is not supported before starting the " \
	"microVM."

/*
 * A resource handler. id is the path's third part ("/drives/{id}") or
 * NULL; body is the request's JSON object, or NULL for a GET. Returns 0
 * (204 unless the handler filled resp: route_json), -1 with err for a
 * 400, or -2 with err for a 500.
 */
typedef int (*route_fn)(struct api_ctx *ctx, const char *id, yajl_val body,
			struct api_response *resp, struct kiln_error *err);

/* yajl_gen for a JSON answer; NULL when out of memory */
yajl_gen route_gen(void);
/* 200 with g's text as the body (frees g); -2 with err when it fails */
int route_json(struct api_response *resp, yajl_gen g, struct kiln_error *err);
void route_gen_str(yajl_gen g, const char *k, const char *v);
void route_gen_uint(yajl_gen g, const char *k, uint64_t v);
void route_gen_bool(yajl_gen g, const char *k, bool v);

/* The member k of obj, or NULL. */
yajl_val route_member(yajl_val obj, const char *k);
/* -1 with err naming the first key of obj not in keys (NULL-ended). */
int route_only_keys(yajl_val obj, const char *what, const char *const *keys,
		    struct kiln_error *err);
/* -1 with "`what.k` is missing" unless obj has each of keys. */
int route_need_keys(yajl_val obj, const char *what, const char *const *keys,
		    struct kiln_error *err);

/* The op, or -1 with err when the VMM did not provide it. */
#define OP(ctx, name, err)                                                   \
	((ctx)->ops != NULL && (ctx)->ops->name != NULL                      \
		 ? 0                                                         \
		 : kiln_error_set(err, 0, "%s is not available in this VMM", \
				  #name))

/* A string member, NULL when absent or null; -1 with err if not a string */
int route_get_str(yajl_val obj, const char *what, const char *k,
		  const char **out, struct kiln_error *err);
/* A required member in 0..UINT32_MAX. */
int route_get_u32(yajl_val obj, const char *what, const char *k, uint32_t *out,
		  struct kiln_error *err);

/* Pre-boot configuration (routes_config.c). */
int route_put_boot_source(struct api_ctx *ctx, const char *id, yajl_val body,
			  struct api_response *resp, struct kiln_error *err);
int route_put_machine(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err);
int route_patch_machine(struct api_ctx *ctx, const char *id, yajl_val body,
			struct api_response *resp, struct kiln_error *err);
int route_put_drive(struct api_ctx *ctx, const char *id, yajl_val body,
		    struct api_response *resp, struct kiln_error *err);
int route_put_net(struct api_ctx *ctx, const char *id, yajl_val body,
		  struct api_response *resp, struct kiln_error *err);
int route_put_vsock(struct api_ctx *ctx, const char *id, yajl_val body,
		    struct api_response *resp, struct kiln_error *err);
int route_put_fs(struct api_ctx *ctx, const char *id, yajl_val body,
		 struct api_response *resp, struct kiln_error *err);
int route_put_balloon(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err);
int route_put_entropy(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err);
int route_put_logger(struct api_ctx *ctx, const char *id, yajl_val body,
		     struct api_response *resp, struct kiln_error *err);
int route_put_metrics(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err);

/* A running VM's devices (routes_devices.c). */
int route_patch_drive(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err);
int route_patch_net(struct api_ctx *ctx, const char *id, yajl_val body,
		    struct api_response *resp, struct kiln_error *err);
int route_get_balloon(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err);
int route_patch_balloon(struct api_ctx *ctx, const char *id, yajl_val body,
			struct api_response *resp, struct kiln_error *err);
int route_get_balloon_stats(struct api_ctx *ctx, const char *id, yajl_val body,
			    struct api_response *resp, struct kiln_error *err);
int route_patch_balloon_stats(struct api_ctx *ctx, const char *id,
			      yajl_val body, struct api_response *resp,
			      struct kiln_error *err);

/* Snapshots (routes_snapshot.c). */
int route_put_snapshot_create(struct api_ctx *ctx, const char *id,
			      yajl_val body, struct api_response *resp,
			      struct kiln_error *err);
int route_put_snapshot_load(struct api_ctx *ctx, const char *id, yajl_val body,
			    struct api_response *resp, struct kiln_error *err);
int route_put_snapshot_template(struct api_ctx *ctx, const char *id,
				yajl_val body, struct api_response *resp,
				struct kiln_error *err);
int route_put_snapshot_fork(struct api_ctx *ctx, const char *id, yajl_val body,
			    struct api_response *resp, struct kiln_error *err);

#endif
