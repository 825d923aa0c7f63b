/* SPDX-License-Identifier: Apache-2.0 */
#include "api_fake.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int __attribute__((format(printf, 3, 4)))
record(void *vmm, const char *op, const char *fmt, ...)
{
	struct api_fake *f = vmm;
	size_t used = strlen(f->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->last, sizeof(f->last), fmt, ap);
	va_end(ap);
	/* a full log keeps its start; the fuzzer makes many calls */
	snprintf(f->log + used, sizeof(f->log) - used, "%s;", f->last);
	f->ncalls++;
	if (f->fail_op != NULL && strcmp(f->fail_op, op) == 0)
		return -1;
	return 0;
}

#define RECORD(op, err, ...)                                          \
	(record(vmm, op, __VA_ARGS__) < 0                             \
		 ? kiln_error_set(err, 0, "%s",                       \
				  ((struct api_fake *)vmm)->fail_msg) \
		 : 0)

static int fake_boot(void *vmm, struct kiln_error *err)
{
	return RECORD("boot", err, "boot");
}

static int fake_pause(void *vmm, struct kiln_error *err)
{
	return RECORD("pause", err, "pause");
}

static int fake_resume(void *vmm, struct kiln_error *err)
{
	return RECORD("resume", err, "resume");
}

static int fake_ctrl_alt_del(void *vmm, struct kiln_error *err)
{
	return RECORD("ctrl_alt_del", err, "ctrl_alt_del");
}

static int fake_logger(void *vmm, const char *path, int level, bool show_level,
		       bool show_origin, struct kiln_error *err)
{
	return RECORD("logger", err, "logger(%s,%d,%d,%d)", path ? path : "-",
		      level, show_level, show_origin);
}

static int fake_metrics_open(void *vmm, const char *path,
			     struct kiln_error *err)
{
	return RECORD("metrics_open", err, "metrics_open(%s)", path);
}

static int fake_metrics_flush(void *vmm, struct kiln_error *err)
{
	return RECORD("metrics_flush", err, "metrics_flush");
}

static int fake_check_boot_source(void *vmm, const char *kernel,
				  const char *initrd, struct kiln_error *err)
{
	return RECORD("check_boot_source", err, "check_boot_source(%s,%s)",
		      kernel, initrd ? initrd : "-");
}

static int fake_check_drive(void *vmm, const struct vm_drive *d,
			    struct kiln_error *err)
{
	return RECORD("check_drive", err, "check_drive(%s,%s,%s)", d->id,
		      d->path, d->read_only ? "ro" : "rw");
}

static int fake_check_net(void *vmm, const struct vm_net *n,
			  struct kiln_error *err)
{
	return RECORD("check_net", err, "check_net(%s,%s)", n->id, n->tap);
}

static int fake_check_vsock(void *vmm, const struct vm_vsock *v,
			    struct kiln_error *err)
{
	return RECORD("check_vsock", err, "check_vsock(%u,%s)", v->cid,
		      v->uds_path);
}

static int fake_drive_replace(void *vmm, const char *id, const char *path,
			      int read_only, struct kiln_error *err)
{
	return RECORD("drive_replace", err, "drive_replace(%s,%s%s)", id, path,
		      read_only < 0 ? ""
		      : read_only   ? ",ro"
				    : ",rw");
}

/* the fd's inode, so a test sees which file came along */
static int fake_drive_replace_fd(void *vmm, const char *id, int fd,
				 const char *path, int read_only,
				 struct kiln_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		st.st_ino = 0;
	return RECORD("drive_replace_fd", err,
		      "drive_replace_fd(%s,%s%s,ino=%llu)", id, path,
		      read_only < 0 ? ""
		      : read_only   ? ",ro"
				    : ",rw",
		      (unsigned long long)st.st_ino);
}

static int fake_balloon_set_target(void *vmm, uint32_t amount_mib,
				   struct kiln_error *err)
{
	return RECORD("balloon_set_target", err, "balloon_set_target(%u)",
		      amount_mib);
}

static int fake_balloon_stats(void *vmm, struct balloon_stats *out,
			      struct kiln_error *err)
{
	if (RECORD("balloon_stats", err, "balloon_stats") < 0)
		return -1;
	*out = ((struct api_fake *)vmm)->stats;
	return 0;
}

static int fake_balloon_set_interval(void *vmm, uint32_t seconds,
				     struct kiln_error *err)
{
	return RECORD("balloon_set_interval", err, "balloon_set_interval(%u)",
		      seconds);
}

static int fake_snapshot_create(void *vmm, const char *state_path,
				const char *mem_path, const char *key_path,
				bool diff, struct kiln_error *err)
{
	return RECORD("snapshot_create", err, "snapshot_create(%s,%s%s%s%s)",
		      state_path, mem_path, key_path ? ",key=" : "",
		      key_path ? key_path : "", diff ? ",diff" : "");
}

static int fake_snapshot_load(void *vmm, struct vm_config *cfg,
			      const char *state_path, const char *mem_path,
			      const char *key_path, bool track_dirty,
			      struct kiln_error *err)
{
	(void)cfg;
	return RECORD("snapshot_load", err, "snapshot_load(%s,%s%s%s%s)",
		      state_path, mem_path, key_path ? ",key=" : "",
		      key_path ? key_path : "", track_dirty ? ",dirty" : "");
}

static int fake_template_make(void *vmm, const char *sock,
			      unsigned int max_forks, struct kiln_error *err)
{
	return RECORD("template_make", err, "template(%s,%u)", sock, max_forks);
}

static int fake_fork(void *vmm, struct vm_config *cfg, const char *sock,
		     struct kiln_error *err)
{
	return RECORD("fork", err, "fork(%s,%u vCPU)", sock, cfg->vcpu_count);
}

const struct api_ops api_fake_ops = {
	.boot = fake_boot,
	.pause = fake_pause,
	.resume = fake_resume,
	.ctrl_alt_del = fake_ctrl_alt_del,
	.logger = fake_logger,
	.metrics_open = fake_metrics_open,
	.metrics_flush = fake_metrics_flush,
	.check_boot_source = fake_check_boot_source,
	.check_drive = fake_check_drive,
	.check_net = fake_check_net,
	.check_vsock = fake_check_vsock,
	.drive_replace = fake_drive_replace,
	.drive_replace_fd = fake_drive_replace_fd,
	.balloon_set_target = fake_balloon_set_target,
	.balloon_stats = fake_balloon_stats,
	.balloon_set_interval = fake_balloon_set_interval,
	.snapshot_create = fake_snapshot_create,
	.snapshot_load = fake_snapshot_load,
	.template_make = fake_template_make,
	.fork = fake_fork,
};

void api_fake_init(struct api_fake *f, struct api_ctx *ctx,
		   struct vm_config *cfg)
{
	memset(f, 0, sizeof(*f));
	if (ctx == NULL)
		return;
	memset(ctx, 0, sizeof(*ctx));
	ctx->cfg = cfg;
	ctx->state = API_NOT_STARTED;
	ctx->ops = &api_fake_ops;
	ctx->vmm = f;
	ctx->instance_id = "anonymous-instance";
}

void api_fake_fail(struct api_fake *f, const char *op, const char *msg)
{
	f->fail_op = op;
	snprintf(f->fail_msg, sizeof(f->fail_msg), "%s", msg ? msg : "");
}

void api_fake_clear(struct api_fake *f)
{
	f->log[0] = '\0';
	f->last[0] = '\0';
	f->ncalls = 0;
}
