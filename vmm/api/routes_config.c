/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pre-boot resources of Firecracker's API: each PUT/PATCH body is
 * parsed by the same section parsers as --config-file, into a scratch
 * config, checked, and only then moved into ctx->cfg, so a refused
 * request changes nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "../../lib/cleanup.h"
#include "routes.h"

#define cleanup_config __attribute__((cleanup(vm_config_destroy)))

/* Parse body as the section name into a fresh config tmp. */
static int scratch(struct vm_config *tmp, const char *name, yajl_val body,
		   struct kiln_error *err)
{
	return vm_config_parse_section(tmp, name, body, err);
}

static void swap_str(char **a, char **b)
{
	char *t = *a;

	*a = *b;
	*b = t;
}

int route_put_boot_source(struct api_ctx *ctx, const char *id, yajl_val body,
			  struct api_response *resp, struct kiln_error *err)
{
	cleanup_config struct vm_config tmp;

	vm_config_init(&tmp);
	if (scratch(&tmp, "boot-source", body, err) < 0 ||
	    (tmp.cmdline != NULL &&
	     vm_config_validate_boot_args(tmp.cmdline, err) < 0))
		return -1;
	/* Firecracker opens both files here, not at InstanceStart */
	if (OP(ctx, check_boot_source, err) < 0 ||
	    ctx->ops->check_boot_source(ctx->vmm, tmp.kernel_path,
					tmp.initrd_path, err) < 0)
		return -1;
	/* a PUT replaces the whole boot source, as Firecracker's does */
	swap_str(&ctx->cfg->kernel_path, &tmp.kernel_path);
	swap_str(&ctx->cfg->initrd_path, &tmp.initrd_path);
	swap_str(&ctx->cfg->cmdline, &tmp.cmdline);
	return 0;
}

static int machine(struct api_ctx *ctx, yajl_val body, bool patch,
		   struct kiln_error *err)
{
	static const char *const need[] = { "vcpu_count", "mem_size_mib",
					    NULL };
	cleanup_config struct vm_config tmp;

	vm_config_init(&tmp);
	if (!patch && route_need_keys(body, "machine-config", need, err) < 0)
		return -1;
	/* Firecracker's words for a PATCH that changes nothing */
	if (patch && body->u.object.len == 0)
		return kiln_error_set(err, 0, "Empty PATCH request.");
	if (patch) {
		tmp.vcpu_count = ctx->cfg->vcpu_count;
		tmp.mem_mib = ctx->cfg->mem_mib;
		tmp.track_dirty_pages = ctx->cfg->track_dirty_pages;
	}
	if (scratch(&tmp, "machine-config", body, err) < 0 ||
	    vm_config_validate_machine(&tmp, err) < 0)
		return -1;
	if (ctx->cfg->balloon.enabled &&
	    ctx->cfg->balloon.amount_mib > tmp.mem_mib)
		return kiln_error_set(err, 0,
				      "%llu MiB of memory is less than the "
				      "%u MiB balloon",
				      (unsigned long long)tmp.mem_mib,
				      ctx->cfg->balloon.amount_mib);
	ctx->cfg->vcpu_count = tmp.vcpu_count;
	ctx->cfg->mem_mib = tmp.mem_mib;
	ctx->cfg->track_dirty_pages = tmp.track_dirty_pages;
	return 0;
}

int route_put_machine(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err)
{
	return machine(ctx, body, false, err);
}

int route_patch_machine(struct api_ctx *ctx, const char *id, yajl_val body,
			struct api_response *resp, struct kiln_error *err)
{
	return machine(ctx, body, true, err);
}

/* The body's id must be the path's (Firecracker checks the same). */
static int same_id(const char *path_id, const char *body_id, const char *key,
		   struct kiln_error *err)
{
	if (body_id == NULL)
		return kiln_error_set(err, 0, "`%s` is missing", key);
	if (strcmp(path_id, body_id) != 0)
		return kiln_error_set(err, 0,
				      "the id from the path [%s] does not "
				      "match the id from the body [%s]",
				      path_id, body_id);
	return 0;
}

int route_put_drive(struct api_ctx *ctx, const char *id, yajl_val body,
		    struct api_response *resp, struct kiln_error *err)
{
	cleanup_config struct vm_config tmp;
	struct vm_config *c = ctx->cfg;
	struct vm_drive *d = &tmp.drives[0];
	unsigned int i, at = c->ndrives;

	vm_config_init(&tmp);
	if (scratch(&tmp, "drive", body, err) < 0 ||
	    same_id(id, d->id, "drive_id", err) < 0 ||
	    vm_config_validate_drive(d, err) < 0)
		return -1;
	for (i = 0; i < c->ndrives; i++) {
		if (strcmp(c->drives[i].id, id) == 0)
			at = i; /* the same id again: an update */
		else if (d->root && c->drives[i].root)
			return kiln_error_set(err, 0,
					      "drive `%s` is already the root "
					      "device",
					      c->drives[i].id);
	}
	if (at == VM_MAX_DRIVES)
		return kiln_error_set(err, 0,
				      "drive `%s`: already %d drives, the most "
				      "kiln-vmm takes",
				      id, VM_MAX_DRIVES);
	/* Firecracker opens the file here, in the drive's mode */
	if (OP(ctx, check_drive, err) < 0 ||
	    ctx->ops->check_drive(ctx->vmm, d, err) < 0)
		return -1;
	if (at == c->ndrives)
		c->ndrives++;
	swap_str(&c->drives[at].id, &d->id);
	swap_str(&c->drives[at].path, &d->path);
	c->drives[at].read_only = d->read_only;
	c->drives[at].root = d->root;
	return 0;
}

int route_put_net(struct api_ctx *ctx, const char *id, yajl_val body,
		  struct api_response *resp, struct kiln_error *err)
{
	cleanup_config struct vm_config tmp;
	struct vm_config *c = ctx->cfg;
	struct vm_net *n = &tmp.nets[0];
	unsigned int i, at = c->nnets;

	vm_config_init(&tmp);
	if (scratch(&tmp, "network-interface", body, err) < 0 ||
	    same_id(id, n->id, "iface_id", err) < 0 ||
	    vm_config_validate_net(n, err) < 0)
		return -1;
	for (i = 0; i < c->nnets; i++) {
		const struct vm_net *o = &c->nets[i];

		if (strcmp(o->id, id) == 0) {
			at = i;
			continue;
		}
		if (strcmp(o->tap, n->tap) == 0)
			return kiln_error_set(err, 0,
					      "host_dev_name `%s` is already "
					      "used by interface `%s`",
					      n->tap, o->id);
		if (n->has_mac && o->has_mac &&
		    memcmp(o->mac, n->mac, sizeof(n->mac)) == 0)
			return kiln_error_set(err, 0,
					      "guest_mac is already used by "
					      "interface `%s`",
					      o->id);
	}
	if (at == VM_MAX_NETS)
		return kiln_error_set(err, 0,
				      "interface `%s`: already %d interfaces, "
				      "the most kiln-vmm takes",
				      id, VM_MAX_NETS);
	/* Firecracker opens the TAP here */
	if (OP(ctx, check_net, err) < 0 ||
	    ctx->ops->check_net(ctx->vmm, n, err) < 0)
		return -1;
	if (at == c->nnets)
		c->nnets++;
	swap_str(&c->nets[at].id, &n->id);
	swap_str(&c->nets[at].tap, &n->tap);
	memcpy(c->nets[at].mac, n->mac, sizeof(n->mac));
	c->nets[at].has_mac = n->has_mac;
	return 0;
}

/* kiln's own PUT /fs/{id}: a virtio-fs device served by a vhost-user
 * backend; the same id again replaces the entry. */
int route_put_fs(struct api_ctx *ctx, const char *id, yajl_val body,
		 struct api_response *resp, struct kiln_error *err)
{
	cleanup_config struct vm_config tmp;
	struct vm_config *c = ctx->cfg;
	struct vm_fs *f = &tmp.fs[0];
	unsigned int i, at = c->nfs;

	vm_config_init(&tmp);
	if (scratch(&tmp, "fs-entry", body, err) < 0 ||
	    same_id(id, f->id, "fs_id", err) < 0 ||
	    vm_config_validate_fs(f, err) < 0)
		return -1;
	for (i = 0; i < c->nfs; i++) {
		if (strcmp(c->fs[i].id, id) == 0)
			at = i;
		else if (strcmp(c->fs[i].tag, f->tag) == 0)
			return kiln_error_set(err, 0,
					      "fs tag `%s` is already used by "
					      "`%s`",
					      f->tag, c->fs[i].id);
	}
	if (at == VM_MAX_FS)
		return kiln_error_set(err, 0,
				      "fs `%s`: already %d fs devices, the "
				      "most kiln-vmm takes",
				      id, VM_MAX_FS);
	if (OP(ctx, check_fs, err) < 0 ||
	    ctx->ops->check_fs(ctx->vmm, f, err) < 0)
		return -1;
	if (at == c->nfs)
		c->nfs++;
	swap_str(&c->fs[at].id, &f->id);
	swap_str(&c->fs[at].tag, &f->tag);
	swap_str(&c->fs[at].socket_path, &f->socket_path);
	c->fs[at].num_queues = f->num_queues;
	c->fs[at].queue_size = f->queue_size;
	return 0;
}

int route_put_vsock(struct api_ctx *ctx, const char *id, yajl_val body,
		    struct api_response *resp, struct kiln_error *err)
{
	static const char *const need[] = { "guest_cid", "uds_path", NULL };
	cleanup_config struct vm_config tmp;

	vm_config_init(&tmp);
	if (route_need_keys(body, "vsock", need, err) < 0 ||
	    scratch(&tmp, "vsock", body, err) < 0 ||
	    vm_config_validate_vsock(&tmp.vsock, err) < 0)
		return -1;
	/* Firecracker binds the socket here; we check that it could */
	if (OP(ctx, check_vsock, err) < 0 ||
	    ctx->ops->check_vsock(ctx->vmm, &tmp.vsock, err) < 0)
		return -1;
	ctx->cfg->vsock.enabled = true;
	ctx->cfg->vsock.cid = tmp.vsock.cid;
	swap_str(&ctx->cfg->vsock.uds_path, &tmp.vsock.uds_path);
	return 0;
}

int route_put_balloon(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err)
{
	static const char *const need[] = { "amount_mib", "deflate_on_oom",
					    NULL };
	cleanup_config struct vm_config tmp;

	vm_config_init(&tmp);
	if (route_need_keys(body, "balloon", need, err) < 0 ||
	    scratch(&tmp, "balloon", body, err) < 0)
		return -1;
	if (tmp.balloon.amount_mib > ctx->cfg->mem_mib)
		return kiln_error_set(err, 0,
				      "balloon of %u MiB is larger than the "
				      "%llu MiB of memory",
				      tmp.balloon.amount_mib,
				      (unsigned long long)ctx->cfg->mem_mib);
	ctx->cfg->balloon = tmp.balloon;
	return 0;
}

int route_put_entropy(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err)
{
	cleanup_config struct vm_config tmp;

	vm_config_init(&tmp);
	if (scratch(&tmp, "entropy", body, err) < 0)
		return -1;
	ctx->cfg->entropy = true;
	return 0;
}

int route_put_logger(struct api_ctx *ctx, const char *id, yajl_val body,
		     struct api_response *resp, struct kiln_error *err)
{
	cleanup_config struct vm_config tmp;
	struct vm_config *c = ctx->cfg;
	bool show_level = c->show_level, show_origin = c->show_origin;

	vm_config_init(&tmp);
	if (scratch(&tmp, "logger", body, err) < 0)
		return -1;
	/* fields left out keep their value, as Firecracker's update does */
	if (route_member(body, "show_level") != NULL)
		show_level = tmp.show_level;
	if (route_member(body, "show_log_origin") != NULL)
		show_origin = tmp.show_origin;
	if (ctx->ops == NULL || ctx->ops->logger == NULL)
		return kiln_error_set(err, 0, "the logger cannot be changed");
	if (ctx->ops->logger(ctx->vmm, tmp.log_path, tmp.log_level, show_level,
			     show_origin, err) < 0)
		return -1;
	if (tmp.log_path != NULL)
		swap_str(&c->log_path, &tmp.log_path);
	if (tmp.log_level >= 0)
		c->log_level = tmp.log_level;
	c->show_level = show_level;
	c->show_origin = show_origin;
	return 0;
}

int route_put_metrics(struct api_ctx *ctx, const char *id, yajl_val body,
		      struct api_response *resp, struct kiln_error *err)
{
	cleanup_config struct vm_config tmp;

	vm_config_init(&tmp);
	if (scratch(&tmp, "metrics", body, err) < 0)
		return -1;
	/* Firecracker's metrics are set once */
	if (ctx->cfg->metrics_path != NULL)
		return kiln_error_set(err, 0,
				      "Reinitialization of metrics not "
				      "allowed: already writing to `%s`",
				      ctx->cfg->metrics_path);
	if (ctx->ops == NULL || ctx->ops->metrics_open == NULL)
		return kiln_error_set(err, 0, "metrics are not available");
	if (ctx->ops->metrics_open(ctx->vmm, tmp.metrics_path, err) < 0)
		return -1;
	swap_str(&ctx->cfg->metrics_path, &tmp.metrics_path);
	return 0;
}
