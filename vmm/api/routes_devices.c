/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Devices of a running VM through Firecracker's API: a drive's backing
 * file swapped (ours: and its read-only mode with it), network interface
 * updates (of which kiln-vmm takes none but the no-op), and the balloon's
 * target and statistics.
 */
#include <stdlib.h>
#include <string.h>

#include "../virtio/balloon.h"
#include "routes.h"

/* By path, as Firecracker; ours: the file came with the request as an
 * fd (docs/api.md), which path only names. */
static int drive_replace(struct api_ctx *ctx, const char *id, const char *path,
			 int read_only, struct kiln_error *err)
{
	if (ctx->fd < 0)
		return OP(ctx, drive_replace, err) < 0
			       ? -1
			       : ctx->ops->drive_replace(ctx->vmm, id, path,
							 read_only, err);
	return OP(ctx, drive_replace_fd, err) < 0
		       ? -1
		       : ctx->ops->drive_replace_fd(ctx->vmm, id, ctx->fd, path,
						    read_only, err);
}

int route_patch_drive(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err)
{
	static const char *const keys[] = { "drive_id", "path_on_host",
					    "rate_limiter", "is_read_only",
					    NULL };
	struct vm_drive *d = NULL;
	const char *body_id, *path;
	yajl_val rl = route_member(body, "rate_limiter");
	yajl_val ro = route_member(body, "is_read_only");
	int read_only = -1; /* the drive's mode */
	char *copy;

	if (route_only_keys(body, "drives", keys, err) < 0 ||
	    route_get_str(body, "drives", "drive_id", &body_id, err) < 0 ||
	    route_get_str(body, "drives", "path_on_host", &path, err) < 0)
		return -1;
	if (body_id == NULL)
		return kiln_error_set(err, 0, "`drives.drive_id` is missing");
	if (strcmp(body_id, id) != 0)
		return kiln_error_set(err, 0,
				      "the id from the path [%s] does not "
				      "match the id from the body [%s]",
				      id, body_id);
	if (rl != NULL && !YAJL_IS_NULL(rl))
		return kiln_error_set(err, 0,
				      "`drives.rate_limiter`: rate limiters "
				      "are not supported");
	/* ours: the mode changes only with the file, which is opened in it */
	if (ro != NULL && !YAJL_IS_NULL(ro)) {
		if (!YAJL_IS_TRUE(ro) && !YAJL_IS_FALSE(ro))
			return kiln_error_set(err, 0,
					      "`drives.is_read_only` must be a "
					      "boolean");
		if (path == NULL)
			return kiln_error_set(err, 0,
					      "`drives.is_read_only` needs "
					      "`drives.path_on_host`");
		read_only = YAJL_IS_TRUE(ro);
	}
	for (unsigned int i = 0; i < ctx->cfg->ndrives; i++)
		if (strcmp(ctx->cfg->drives[i].id, id) == 0)
			d = &ctx->cfg->drives[i];
	if (d == NULL)
		return kiln_error_set(err, 0, "no drive `%s`", id);
	if (path == NULL && ctx->fd >= 0)
		return kiln_error_set(err, 0,
				      "`drives.path_on_host` must name the "
				      "file descriptor's file");
	if (path == NULL) /* nothing we can change but the path */
		return 0;
	if (path[0] == '\0')
		return kiln_error_set(err, 0, "`drives.path_on_host` is empty");
	copy = strdup(path);
	if (copy == NULL)
		return kiln_error_set(err, 0, "out of memory"), -2;
	if (drive_replace(ctx, id, path, read_only, err) < 0) {
		free(copy);
		return -1;
	}
	/* GET /vm/config shows the file the drive now reads, and its mode */
	free(d->path);
	d->path = copy;
	if (read_only >= 0)
		d->read_only = read_only;
	return 0;
}

int route_patch_net(struct api_ctx *ctx, const char *id, yajl_val body,
		    struct api_response *resp, struct kiln_error *err)
{
	static const char *const keys[] = { "iface_id", "rx_rate_limiter",
					    "tx_rate_limiter", NULL };
	const char *body_id;
	bool found = false;

	if (route_only_keys(body, "network-interfaces", keys, err) < 0 ||
	    route_get_str(body, "network-interfaces", "iface_id", &body_id,
			  err) < 0)
		return -1;
	if (body_id == NULL)
		return kiln_error_set(err, 0,
				      "`network-interfaces.iface_id` is "
				      "missing");
	if (strcmp(body_id, id) != 0)
		return kiln_error_set(err, 0,
				      "the id from the path [%s] does not "
				      "match the id from the body [%s]",
				      id, body_id);
	for (unsigned int i = 0; i < ctx->cfg->nnets; i++)
		found |= strcmp(ctx->cfg->nets[i].id, id) == 0;
	if (!found)
		return kiln_error_set(err, 0, "no network interface `%s`", id);
	for (const char *const *k = &keys[1]; *k != NULL; k++) {
		yajl_val v = route_member(body, *k);

		if (v != NULL && !YAJL_IS_NULL(v))
			return kiln_error_set(err, 0,
					      "`network-interfaces.%s`: rate "
					      "limiters are not supported",
					      *k);
	}
	return 0;
}

static int need_balloon(struct api_ctx *ctx, struct kiln_error *err)
{
	if (!ctx->cfg->balloon.enabled)
		return kiln_error_set(err, 0, "No balloon device found.");
	return 0;
}

int route_get_balloon(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err)
{
	const struct vm_balloon *b = &ctx->cfg->balloon;
	uint32_t amount = b->amount_mib;
	struct balloon_stats st;
	struct kiln_error ignored;
	yajl_gen g;

	if (need_balloon(ctx, err) < 0)
		return -1;
	/* the device's own target when it can tell; else what we set */
	if (ctx->state != API_NOT_STARTED && ctx->ops != NULL &&
	    ctx->ops->balloon_stats != NULL &&
	    ctx->ops->balloon_stats(ctx->vmm, &st, &ignored) == 0)
		amount = st.target_mib;
	g = route_gen();
	if (g != NULL) {
		yajl_gen_map_open(g);
		route_gen_uint(g, "amount_mib", amount);
		route_gen_bool(g, "deflate_on_oom", b->deflate_on_oom);
		route_gen_uint(g, "stats_polling_interval_s",
			       b->stats_interval_s);
		yajl_gen_map_close(g);
	}
	return route_json(resp, g, err);
}

int route_patch_balloon(struct api_ctx *ctx, const char *id, yajl_val body,
			struct api_response *resp, struct kiln_error *err)
{
	static const char *const keys[] = { "amount_mib", NULL };
	uint32_t mib;

	if (route_only_keys(body, "balloon", keys, err) < 0 ||
	    route_get_u32(body, "balloon", "amount_mib", &mib, err) < 0 ||
	    need_balloon(ctx, err) < 0)
		return -1;
	if (mib > ctx->cfg->mem_mib)
		return kiln_error_set(err, 0,
				      "balloon of %u MiB is larger than the "
				      "%llu MiB of memory",
				      mib,
				      (unsigned long long)ctx->cfg->mem_mib);
	if (OP(ctx, balloon_set_target, err) < 0 ||
	    ctx->ops->balloon_set_target(ctx->vmm, mib, err) < 0)
		return -1;
	ctx->cfg->balloon.amount_mib = mib;
	return 0;
}

static int need_stats(struct api_ctx *ctx, struct kiln_error *err)
{
	if (need_balloon(ctx, err) < 0)
		return -1;
	if (ctx->cfg->balloon.stats_interval_s == 0)
		return kiln_error_set(err, 0,
				      "Statistics for the balloon device are "
				      "not enabled: set "
				      "stats_polling_interval_s before boot");
	return 0;
}

/* Firecracker's BalloonStats names, by virtio tag */
static const char *const stat_json[BALLOON_S_NR] = {
	[BALLOON_S_SWAP_IN] = "swap_in",
	[BALLOON_S_SWAP_OUT] = "swap_out",
	[BALLOON_S_MAJFLT] = "major_faults",
	[BALLOON_S_MINFLT] = "minor_faults",
	[BALLOON_S_MEMFREE] = "free_memory",
	[BALLOON_S_MEMTOT] = "total_memory",
	[BALLOON_S_AVAIL] = "available_memory",
	[BALLOON_S_CACHES] = "disk_caches",
	[BALLOON_S_HTLB_PGALLOC] = "hugetlb_allocations",
	[BALLOON_S_HTLB_PGFAIL] = "hugetlb_failures",
	[BALLOON_S_OOM_KILL] = "oom_kill",
	[BALLOON_S_ALLOC_STALL] = "alloc_stall",
	[BALLOON_S_ASYNC_SCAN] = "async_scan",
	[BALLOON_S_DIRECT_SCAN] = "direct_scan",
	[BALLOON_S_ASYNC_RECLAIM] = "async_reclaim",
	[BALLOON_S_DIRECT_RECLAIM] = "direct_reclaim",
};

int route_get_balloon_stats(struct api_ctx *ctx, const char *id, yajl_val body,
			    struct api_response *resp, struct kiln_error *err)
{
	struct balloon_stats st;
	yajl_gen g;

	memset(&st, 0, sizeof(st));
	if (need_stats(ctx, err) < 0 || OP(ctx, balloon_stats, err) < 0 ||
	    ctx->ops->balloon_stats(ctx->vmm, &st, err) < 0)
		return -1;
	g = route_gen();
	if (g != NULL) {
		yajl_gen_map_open(g);
		route_gen_uint(g, "target_pages", st.target_pages);
		route_gen_uint(g, "actual_pages", st.actual_pages);
		route_gen_uint(g, "target_mib", st.target_mib);
		route_gen_uint(g, "actual_mib", st.actual_mib);
		/* guest-controlled: only the tags the guest reported */
		for (unsigned int t = 0; t < BALLOON_S_NR; t++)
			if (st.present & (1U << t))
				route_gen_uint(g, stat_json[t], st.values[t]);
		yajl_gen_map_close(g);
	}
	return route_json(resp, g, err);
}

int route_patch_balloon_stats(struct api_ctx *ctx, const char *id,
			      yajl_val body, struct api_response *resp,
			      struct kiln_error *err)
{
	static const char *const keys[] = { "stats_polling_interval_s", NULL };
	uint32_t s;

	if (route_only_keys(body, "balloon/statistics", keys, err) < 0 ||
	    route_get_u32(body, "balloon/statistics",
			  "stats_polling_interval_s", &s, err) < 0)
		return -1;
	/* a u16 in Firecracker */
	if (s > UINT16_MAX)
		return kiln_error_set(err, 0,
				      "`balloon/statistics.stats_polling_"
				      "interval_s` %u is out of range 0..%u",
				      s, UINT16_MAX);
	if (need_stats(ctx, err) < 0)
		return -1;
	/* the statistics queue exists or not from boot on */
	if (s == 0)
		return kiln_error_set(err, 0,
				      "Cannot enable/disable the statistics "
				      "after boot: stats_polling_interval_s "
				      "must stay above 0");
	if (OP(ctx, balloon_set_interval, err) < 0 ||
	    ctx->ops->balloon_set_interval(ctx->vmm, s, err) < 0)
		return -1;
	ctx->cfg->balloon.stats_interval_s = s;
	return 0;
}
