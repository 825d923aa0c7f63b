/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's operations on a real VM (struct api_ops over struct vm). They
 * run on the VMM thread, between event-loop callbacks.
 */
#include "vm_ops.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/cleanup.h"
#include "../../lib/log.h"
#include "../hw/legacy.h"
#include "../metrics.h"
#include "../fork.h"
#include "../snapshot.h"
#include "../snapshot_seal.h"
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

static int op_check_fs(void *vmm, const struct vm_fs *f, struct kiln_error *err)
{
	(void)vmm;
	return vm_config_check_fs_socket(f, err);
}

static int op_drive_replace(void *vmm, const char *id, const char *path,
			    int read_only, struct kiln_error *err)
{
	struct virtio_dev *d = blk_lookup(vmm, id);

	if (d == NULL)
		return kiln_error_set(err, 0, "no drive `%s`", id);
	return blk_replace_backing(d, path, read_only, err);
}

static int op_drive_replace_fd(void *vmm, const char *id, int fd,
			       const char *path, int read_only,
			       struct kiln_error *err)
{
	struct virtio_dev *d = blk_lookup(vmm, id);

	if (d == NULL)
		return kiln_error_set(err, 0, "no drive `%s`", id);
	return blk_replace_backing_fd(d, fd, path, read_only, err);
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

static int op_snapshot_create(void *vmm, const char *state_path,
			      const char *mem_path, const char *key_path,
			      bool diff, struct kiln_error *err)
{
	struct seal_key key;
	int ret;

	if (key_path == NULL)
		return snapshot_create(vmm, state_path, mem_path, NULL, diff,
				       err);
	if (seal_key_read(key_path, &key, err) < 0)
		return -1;
	ret = snapshot_create(vmm, state_path, mem_path, &key, diff, err);
	seal_key_wipe(&key);
	return ret;
}

/* Trade the machine and device sections of a and b (not logger, console). */
static void swap_vm_shape(struct vm_config *a, struct vm_config *b)
{
	struct vm_config t = *a;

	a->kernel_path = b->kernel_path;
	a->initrd_path = b->initrd_path;
	a->cmdline = b->cmdline;
	a->vcpu_count = b->vcpu_count;
	a->mem_mib = b->mem_mib;
	a->entropy = b->entropy;
	a->ndrives = b->ndrives;
	memcpy(a->drives, b->drives, sizeof(a->drives));
	a->nnets = b->nnets;
	memcpy(a->nets, b->nets, sizeof(a->nets));
	a->vsock = b->vsock;
	a->balloon = b->balloon;

	b->kernel_path = t.kernel_path;
	b->initrd_path = t.initrd_path;
	b->cmdline = t.cmdline;
	b->vcpu_count = t.vcpu_count;
	b->mem_mib = t.mem_mib;
	b->entropy = t.entropy;
	b->ndrives = t.ndrives;
	memcpy(b->drives, t.drives, sizeof(b->drives));
	b->nnets = t.nnets;
	memcpy(b->nets, t.nets, sizeof(b->nets));
	b->vsock = t.vsock;
	b->balloon = t.balloon;
}

/* The host side of the snapshot's devices; its kernel is not needed. */
static int check_devices(const struct vm_config *c, struct kiln_error *err)
{
	for (unsigned int i = 0; i < c->ndrives; i++)
		if (vm_config_check_drive_file(&c->drives[i], err) < 0)
			return -1;
	for (unsigned int i = 0; i < c->nnets; i++)
		if (vm_config_check_tap(&c->nets[i], err) < 0)
			return -1;
	if (c->vsock.enabled && vm_config_check_vsock_path(&c->vsock, err) < 0)
		return -1;
	return 0;
}

/*
 * Everything about the files is checked before the VM is built (state
 * file, its config, the memory file's size and checksum); vm_restore then
 * checks the state against the VM it built. No vCPU runs before all of
 * it passed; on failure cfg is as it was.
 */
static int op_snapshot_load(void *vmm, struct vm_config *cfg,
			    const char *state_path, const char *mem_path,
			    const char *key_path, bool track_dirty,
			    struct kiln_error *err)
{
	struct vm *vm = vmm;
	cleanup_free uint8_t *buf = NULL;
	cleanup_free struct snap_image *img = calloc(1, sizeof(*img));
	struct vm_config snap;
	struct seal_key key;
	uint8_t id[SEAL_ID_LEN];
	size_t len = 0;
	int fd, ret = -1;

	if (img == NULL)
		return kiln_error_set(err, ENOMEM, "snapshot");
	if (vm->cfg != cfg)
		return kiln_error_set(err, EINVAL, "not this VM's config");
	if (key_path != NULL && seal_key_read(key_path, &key, err) < 0)
		return -1;
	vm_config_init(&snap);
	/* a sealed state file is authenticated before snap_parse reads it */
	if (snapshot_read_state(state_path, key_path ? &key : NULL, &buf, &len,
				id, err) < 0 ||
	    snap_parse(buf, len, img, err) < 0 ||
	    snap_parse_config(img, &snap, err) < 0 ||
	    check_devices(&snap, err) < 0)
		goto out;
	fd = key_path != NULL
		     ? snapshot_open_sealed_memory(img, mem_path, &key, id, err)
		     : snapshot_open_memory(img, mem_path, err);
	if (fd < 0)
		goto out;
	swap_vm_shape(cfg, &snap);
	snap.track_dirty_pages = cfg->track_dirty_pages;
	cfg->track_dirty_pages = track_dirty;
	if (vm_restore(vm, img, fd, err) < 0) {
		swap_vm_shape(cfg, &snap);
		cfg->track_dirty_pages = snap.track_dirty_pages;
		goto out;
	}
	ret = 0;
out:
	if (key_path != NULL)
		seal_key_wipe(&key);
	vm_config_destroy(&snap);
	return ret;
}

/* One template per VMM, for its life; the VMM thread's, as every op. */
static struct fork_template *template;

static int op_template_make(void *vmm, const char *sock, unsigned int max_forks,
			    struct kiln_error *err)
{
	if (template != NULL)
		return kiln_error_set(err, EALREADY, "already a template");
	return fork_template_make(vmm, sock, max_forks, &template, err);
}

static int op_fork(void *vmm, struct vm_config *cfg, const char *sock,
		   struct kiln_error *err)
{
	if (check_devices(cfg, err) < 0)
		return -1;
	return fork_load(vmm, cfg, sock, err);
}

void vm_ops_stop(void)
{
	fork_template_stop(template);
	template = NULL;
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
	.check_fs = op_check_fs,
	.drive_replace = op_drive_replace,
	.drive_replace_fd = op_drive_replace_fd,
	.balloon_set_target = op_balloon_set_target,
	.balloon_stats = op_balloon_stats,
	.balloon_set_interval = op_balloon_set_interval,
	.snapshot_create = op_snapshot_create,
	.snapshot_load = op_snapshot_load,
	.template_make = op_template_make,
	.fork = op_fork,
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
