/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's operations on a real VM (struct api_ops over struct vm). They
 * run on the VMM thread, between event-loop callbacks.
 */
#include "vm_ops.h"

#include <errno.h>
#include <string.h>

#include "../../lib/log.h"
#include "../hw/legacy.h"
#include "../metrics.h"
#include "../virtio/balloon.h"
#include "../virtio/blk.h"
#include "../vm.h"

static int op_boot(void *vmm, struct kiln_error *err)
{
	return vm_boot(vmm, err);
}

static int op_pause(void *vmm, struct kiln_error *err)
{
	return vm_pause(vmm, err);
}

static int op_resume(void *vmm, struct kiln_error *err)
{
	return vm_resume(vmm, err);
}

static int op_ctrl_alt_del(void *vmm, struct kiln_error *err)
{
	struct i8042 *k = i8042_lookup(vmm);

	if (k == NULL)
		return kiln_error_set(err, 0, "the VM has no i8042 keyboard");
	return i8042_ctrl_alt_del(k, err);
}

static int op_logger(void *vmm, const char *path, int level, bool show_level,
		     bool show_origin, struct kiln_error *err)
{
	(void)vmm;
	return vm_ops_apply_logger(path, level, show_level, show_origin, err);
}

static int op_metrics_open(void *vmm, const char *path, struct kiln_error *err)
{
	struct vm *vm = vmm;

	if (metrics_open(path, err) < 0)
		return -1;
	return metrics_start_timer(&vm->loop, err);
}

static int op_metrics_flush(void *vmm, struct kiln_error *err)
{
	(void)vmm;
	return metrics_flush(err);
}

/* The host checks need no VM: the same as --config-file's. */
static int op_check_boot_source(void *vmm, const char *kernel,
				const char *initrd, struct kiln_error *err)
{
	(void)vmm;
	return vm_config_check_boot_source(kernel, initrd, err);
}

static int op_check_drive(void *vmm, const struct vm_drive *d,
			  struct kiln_error *err)
{
	(void)vmm;
	return vm_config_check_drive_file(d, err);
}

static int op_check_net(void *vmm, const struct vm_net *n,
			struct kiln_error *err)
{
	(void)vmm;
	return vm_config_check_tap(n, err);
}

static int op_check_vsock(void *vmm, const struct vm_vsock *v,
			  struct kiln_error *err)
{
	(void)vmm;
	return vm_config_check_vsock_path(v, err);
}

static int op_drive_replace(void *vmm, const char *id, const char *path,
			    struct kiln_error *err)
{
	struct virtio_dev *d = blk_lookup(vmm, id);

	if (d == NULL)
		return kiln_error_set(err, 0, "no drive `%s`", id);
	return blk_replace_backing(d, path, err);
}

static struct virtio_dev *need_balloon(struct vm *vm, struct kiln_error *err)
{
	struct virtio_dev *d = balloon_lookup(vm);

	if (d == NULL)
		kiln_error_set(err, 0, "the VM has no balloon device");
	return d;
}

static int op_balloon_set_target(void *vmm, uint32_t amount_mib,
				 struct kiln_error *err)
{
	struct virtio_dev *d = need_balloon(vmm, err);

	return d == NULL ? -1 : balloon_set_target(d, amount_mib, err);
}

static int op_balloon_stats(void *vmm, struct balloon_stats *out,
			    struct kiln_error *err)
{
	struct virtio_dev *d = need_balloon(vmm, err);
	struct vm *vm = vmm;
	struct kiln_error ignored;

	if (d == NULL)
		return -1;
	if (balloon_get_stats(d, out, &ignored) == 0)
		return 0;
	/* no statistics queue: the sizes are still known */
	memset(out, 0, sizeof(*out));
	out->target_mib = vm->cfg->balloon.amount_mib;
	out->target_pages = out->target_mib << 8;
	out->actual_mib = balloon_actual_mib(d);
	out->actual_pages = out->actual_mib << 8;
	return 0;
}

static int op_balloon_set_interval(void *vmm, uint32_t seconds,
				   struct kiln_error *err)
{
	struct virtio_dev *d = need_balloon(vmm, err);

	return d == NULL ? -1 : balloon_set_stats_interval(d, seconds, err);
}

const struct api_ops vm_api_ops = {
	.boot = op_boot,
	.pause = op_pause,
	.resume = op_resume,
	.ctrl_alt_del = op_ctrl_alt_del,
	.logger = op_logger,
	.metrics_open = op_metrics_open,
	.metrics_flush = op_metrics_flush,
	.check_boot_source = op_check_boot_source,
	.check_drive = op_check_drive,
	.check_net = op_check_net,
	.check_vsock = op_check_vsock,
	.drive_replace = op_drive_replace,
	.balloon_set_target = op_balloon_set_target,
	.balloon_stats = op_balloon_stats,
	.balloon_set_interval = op_balloon_set_interval,
};

int vm_ops_apply_logger(const char *path, int level, bool show_level,
			bool show_origin, struct kiln_error *err)
{
	if (path != NULL && log_open(path) < 0)
		return kiln_error_set(err, errno, "open log file `%s`", path);
	if (level >= 0)
		log_set_level(level);
	log_set_show_level(show_level);
	log_set_show_origin(show_origin);
	return 0;
}
