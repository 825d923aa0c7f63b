/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Firecracker's API: routing a request to its resource, with Firecracker's
 * paths, JSON bodies, status codes, error shape ({"fault_message": ...})
 * and pre-boot / post-boot rules. Runs on the VMM thread; everything it
 * does to the VM goes through api_ops, so tests and the fuzzer can route
 * requests without a VM.
 */
#ifndef KILN_VMM_API_API_H
#define KILN_VMM_API_API_H

#include <stdbool.h>
#include <stdint.h>

#include "../../lib/error.h"
#include "../config.h"
#include "http.h"

enum api_vm_state {
	API_NOT_STARTED,
	API_RUNNING,
	API_PAUSED,
	API_TEMPLATE, /* the VM became a template: it serves forks only */
};

struct balloon_stats;

/*
 * What a request may do to the VMM. Each returns 0, or -1 with err (the
 * fault_message). opaque is api_ctx.vmm.
 */
struct api_ops {
	/* InstanceStart: build and start the VM from ctx->cfg */
	int (*boot)(void *vmm, struct kiln_error *err);
	int (*pause)(void *vmm, struct kiln_error *err);
	int (*resume)(void *vmm, struct kiln_error *err);
	int (*ctrl_alt_del)(void *vmm, struct kiln_error *err);
	/* PUT /logger: NULL path keeps the current one; level < 0 keeps it */
	int (*logger)(void *vmm, const char *path, int level, bool show_level,
		      bool show_origin, struct kiln_error *err);
	/* PUT /metrics, and FlushMetrics */
	int (*metrics_open)(void *vmm, const char *path,
			    struct kiln_error *err);
	int (*metrics_flush)(void *vmm, struct kiln_error *err);
	/*
	 * Pre-boot PUTs: what the host must provide, checked before the
	 * request is answered, as Firecracker opens its files then
	 * (vm_config_check_* on a real VMM; a fake records the call).
	 */
	int (*check_boot_source)(void *vmm, const char *kernel,
				 const char *initrd, struct kiln_error *err);
	int (*check_drive)(void *vmm, const struct vm_drive *d,
			   struct kiln_error *err);
	int (*check_net)(void *vmm, const struct vm_net *n,
			 struct kiln_error *err);
	int (*check_vsock)(void *vmm, const struct vm_vsock *v,
			   struct kiln_error *err);
	int (*check_fs)(void *vmm, const struct vm_fs *f,
			struct kiln_error *err);
	/*
	 * PATCH /drives/{id} on a running VM: the new file opened read-only
	 * (read_only 1), read-write (0) or in the drive's mode (-1)
	 */
	int (*drive_replace)(void *vmm, const char *id, const char *path,
			     int read_only, struct kiln_error *err);
	/*
	 * The same with the file handed over as fd (ours, SCM_RIGHTS; path
	 * names it): checked, duplicated; fd stays the caller's
	 */
	int (*drive_replace_fd)(void *vmm, const char *id, int fd,
				const char *path, int read_only,
				struct kiln_error *err);
	/* PATCH /balloon, GET /balloon(/statistics), PATCH /balloon/statistics */
	int (*balloon_set_target)(void *vmm, uint32_t amount_mib,
				  struct kiln_error *err);
	int (*balloon_stats)(void *vmm, struct balloon_stats *out,
			     struct kiln_error *err);
	int (*balloon_set_interval)(void *vmm, uint32_t seconds,
				    struct kiln_error *err);
	/*
	 * PUT /snapshot/create of a paused VM: a full snapshot, or (diff) the
	 * pages written since the last one; sealed with the key in key_path
	 * unless it is NULL
	 */
	int (*snapshot_create)(void *vmm, const char *state_path,
			       const char *mem_path, const char *key_path,
			       bool diff, struct kiln_error *err);
	/*
	 * PUT /snapshot/load before boot: cfg (ctx->cfg) takes the
	 * snapshot's machine and devices; the VM is left paused. key_path
	 * (or NULL): the key of a sealed snapshot. track_dirty: log written
	 * pages from here, for diff snapshots.
	 */
	int (*snapshot_load)(void *vmm, struct vm_config *cfg,
			     const char *state_path, const char *mem_path,
			     const char *key_path, bool track_dirty,
			     struct kiln_error *err);
	/* PUT /snapshot/template of a paused VM (ours, fork.h); max_forks
	 * 0 for the default */
	int (*template_make)(void *vmm, const char *socket_path,
			     unsigned int max_forks, struct kiln_error *err);
	/*
	 * PUT /snapshot/fork before boot (ours): cfg (ctx->cfg, the
	 * devices' host side, the template's shape) restored from the
	 * template on socket_path; left paused.
	 */
	int (*fork)(void *vmm, struct vm_config *cfg, const char *socket_path,
		    struct kiln_error *err);
};

struct api_ctx {
	struct vm_config *cfg;	 /* built by pre-boot requests; read after */
	enum api_vm_state state; /* kept by the router */
	const struct api_ops *ops;
	void *vmm;
	const char *instance_id; /* GET / "id"; "anonymous-instance" */
	/* during a route that takes one (PATCH /drives): the fd that came
	 * with the request, else -1; the request's (api_request.fds) */
	int fd;
};

/* Route one request; always fills resp (status, JSON body or NULL). */
void api_dispatch(struct api_ctx *ctx, const struct api_request *req,
		  struct api_response *resp);

/* ---- the bridge between the API thread and the VMM thread ------------ */
struct evloop;
struct api_server;

/*
 * Serve the API on a Unix socket: the HTTP server's thread hands each
 * request to the VMM thread through a queue and an eventfd watched by
 * loop, where api_dispatch(ctx) answers it; the API thread waits for that
 * answer, so the VMM thread never waits on a client.
 */
int api_server_start(struct api_server **out, const char *sock_path,
		     struct evloop *loop, struct api_ctx *ctx,
		     struct kiln_error *err);
/* The same with another router in place of api_dispatch (tests). */
typedef void (*api_dispatch_fn)(struct api_ctx *ctx,
				const struct api_request *req,
				struct api_response *resp);
int api_server_start_with(struct api_server **out, const char *sock_path,
			  struct evloop *loop, struct api_ctx *ctx,
			  api_dispatch_fn dispatch, struct kiln_error *err);
/*
 * Call from the thread that runs loop, or once nothing runs it: requests
 * still waiting are answered 503.
 */
void api_server_stop(struct api_server *s);

#endif
