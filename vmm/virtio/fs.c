/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-fs over vhost-user (see fs.h). The device is mostly plumbing:
 *
 * - create (VMM thread, before the vCPUs run): connect, SET_OWNER,
 *   features, SET_MEM_TABLE with the guest-memory memfd once per region;
 *   the backend must offer every ring feature the transport offers the
 *   guest (VIRTIO_CORE_FEATURES), since it is the backend that walks them.
 * - activate (DRIVER_OK, a vCPU thread, d->lock held): SET_FEATURES with
 *   what the driver acked, then for each ready queue NUM, BASE 0, ADDR
 *   (our mapping of its rings), KICK (the transport's ioeventfd), CALL
 *   (its irqfd), ENABLE: QEMU's order.
 * - reset (a vCPU thread, d->lock held): GET_VRING_BASE for each started
 *   ring, which stops it in the backend.
 * - the backend's end (EPOLLRDHUP on the connection, the event-loop
 *   thread): the device is marked broken and the connection closed.
 *
 * Those exchanges run on a vCPU thread under the device lock, each bounded
 * by FS_BACKEND_TIMEOUT_MS, after which the connection is shut down and
 * every later one fails at once: a silent backend costs the guest one
 * stall of that length on its DRIVER_OK or reset, never a wedged VMM.
 *
 * Owner: struct fs is the event loop's device; every field after dev is
 * under dev.lock, whichever thread takes it.
 */
#include "fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "../../lib/log.h"
#include "../device.h"
#include "../vhost_user.h"
#include "../vm.h"
#include "mmio.h"

struct fs {
	struct virtio_dev dev; /* first: the VMM_DEVICE state holds &dev */
	struct virtio_ops ops; /* per device: queue count and size vary */
	struct vm *vm;
	char name[48];		  /* "virtio-fs `id`" */
	struct vhost_user vu;	  /* the connection to the backend */
	struct evloop_entry *hup; /* watches vu.fd for the backend's end */
	bool started[VIRTIO_MAX_QUEUES]; /* rings the backend serves */
	struct virtio_fs_config config;
};

/* The set of fs devices of one VM: the VMM_DEVICE state. */
struct fs_set {
	unsigned int n;
	struct virtio_dev *devs[VM_MAX_FS];
};

static void fs_config_read(struct virtio_dev *d, uint32_t offset, void *data,
			   uint32_t len)
{
	struct fs *f = d->priv;

	/* the transport checked offset + len <= config_size */
	memcpy(data, (const uint8_t *)&f->config + offset, len);
}

/* The backend is gone or out of step: drop it, the device fails. */
static void fs_backend_lost(struct fs *f, const char *why)
{
	vhost_user_shutdown(&f->vu);
	memset(f->started, 0, sizeof(f->started));
	log_warn("%s: backend lost: %s", f->name, why);
	virtio_dev_set_broken(&f->dev, "backend lost");
}

static int fs_start_queue(struct fs *f, unsigned int i, struct kiln_error *err)
{
	struct virtq *q = &f->dev.queues[i];
	struct vhost_user_vring_addr a = {
		.index = i,
		.desc = (uint64_t)(uintptr_t)q->desc,
		.used = (uint64_t)(uintptr_t)q->used,
		.avail = (uint64_t)(uintptr_t)q->avail,
	};
	int kick, call;

	if (virtio_mmio_vhost_fds(&f->dev, i, &kick, &call, err) < 0)
		return -1;
	/* the driver starts each ring at 0 after a reset */
	if (vhost_user_set_vring_num(&f->vu, i, q->size, err) < 0 ||
	    vhost_user_set_vring_base(&f->vu, i, 0, err) < 0 ||
	    vhost_user_set_vring_addr(&f->vu, &a, err) < 0 ||
	    vhost_user_set_vring_kick(&f->vu, i, kick, err) < 0 ||
	    vhost_user_set_vring_call(&f->vu, i, call, err) < 0)
		return -1;
	f->started[i] = true;
	if ((f->vu.features & VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES)) &&
	    vhost_user_set_vring_enable(&f->vu, i, true, err) < 0)
		return -1;
	return 0;
}

static int fs_activate(struct virtio_dev *d, struct kiln_error *err)
{
	struct fs *f = d->priv;

	if (f->vu.down)
		return kiln_error_set(err, ENOTCONN,
				      "the backend is disconnected");
	if (vhost_user_set_features(&f->vu, d->driver_features, err) < 0)
		goto lost;
	for (unsigned int i = 0; i < f->ops.num_queues; i++) {
		/* guest-controlled: a queue it never made ready stays idle */
		if (!d->queues[i].ready)
			continue;
		if (fs_start_queue(f, i, err) < 0)
			goto lost;
	}
	return 0;
lost:
	/* the caller marks the device broken with err */
	vhost_user_shutdown(&f->vu);
	memset(f->started, 0, sizeof(f->started));
	return -1;
}

static void fs_reset(struct virtio_dev *d)
{
	struct fs *f = d->priv;
	struct kiln_error err = { 0 };
	uint32_t base;

	for (unsigned int i = 0; i < f->ops.num_queues; i++) {
		if (!f->started[i])
			continue;
		f->started[i] = false;
		if (f->vu.down)
			continue;
		if (vhost_user_get_vring_base(&f->vu, i, &base, &err) < 0) {
			/* a reset must succeed: the device fails after it */
			vhost_user_shutdown(&f->vu);
			log_warn("%s: reset: %s", f->name, err.msg);
		}
	}
}

/* The transport never reads a vhost kick eventfd: nothing comes here. */
static void fs_notify(struct virtio_dev *d, unsigned int queue)
{
	(void)d;
	(void)queue;
}

/* Event loop: the connection hung up (the backend exited or we shut it). */
static void fs_on_hup(void *opaque, uint32_t events)
{
	struct fs *f = opaque;

	(void)events;
	virtio_dev_lock(&f->dev);
	if (f->hup != NULL) {
		evloop_del(&f->vm->loop, f->hup);
		f->hup = NULL;
		if (!f->vu.down)
			fs_backend_lost(f, "the connection closed");
		else if (virtio_dev_running(&f->dev))
			virtio_dev_set_broken(&f->dev, "backend lost");
		vhost_user_close(&f->vu);
	}
	virtio_dev_unlock(&f->dev);
}

/* Check the backend's features and give it guest memory. */
static int fs_setup_backend(struct fs *f, struct kiln_error *err)
{
	const struct guest_mem *m = &f->vm->mem;
	struct vhost_user_region r[GUEST_MEM_MAX_REGIONS];
	uint64_t need = VIRTIO_CORE_FEATURES;

	if (vhost_user_handshake(&f->vu, err) < 0)
		return -1;
	if ((f->vu.features & need) != need)
		return kiln_error_set(err, ENOTSUP,
				      "%s: the backend offers features "
				      "0x%llx, without all of 0x%llx",
				      f->name,
				      (unsigned long long)f->vu.features,
				      (unsigned long long)need);
	for (unsigned int i = 0; i < m->nregions; i++)
		r[i] = (struct vhost_user_region){
			.gpa = m->regions[i].gpa,
			.size = m->regions[i].size,
			.uaddr = (uint64_t)(uintptr_t)(m->host +
						       m->regions[i].offset),
			.mmap_offset = m->regions[i].offset,
			.fd = m->fd,
		};
	return vhost_user_set_mem_table(&f->vu, r, m->nregions, err);
}

static void fs_free(struct fs *f)
{
	if (f->hup != NULL)
		evloop_del(&f->vm->loop, f->hup);
	vhost_user_close(&f->vu);
	free(f);
}

int fs_create(struct vm *vm, const struct vm_fs *cfg, unsigned int timeout_ms,
	      struct virtio_dev **out, struct kiln_error *err)
{
	struct fs *f;

	if (vm->fork || vm->mem.private_map)
		return kiln_error_set(err, ENOTSUP,
				      "virtio-fs `%s`: a VM restored from a "
				      "snapshot or forked from a template "
				      "cannot have a virtio-fs device",
				      cfg->id);
	if (vm->mem.fd < 0)
		return kiln_error_set(err, EINVAL,
				      "virtio-fs `%s` needs guest memory in a "
				      "shared memfd, for the backend to map",
				      cfg->id);
	if (strlen(cfg->tag) > sizeof(f->config.tag) || cfg->num_queues < 1 ||
	    cfg->num_queues + 1 > VIRTIO_MAX_QUEUES)
		return kiln_error_set(err, EINVAL, "virtio-fs `%s`: bad config",
				      cfg->id);
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-fs `%s`", cfg->id);
	f->vm = vm;
	f->vu.fd = -1;
	snprintf(f->name, sizeof(f->name), "virtio-fs `%s`", cfg->id);
	memcpy(f->config.tag, cfg->tag, strlen(cfg->tag));
	f->config.num_request_queues = cfg->num_queues;
	f->ops = (struct virtio_ops){
		.name = "fs",
		.device_id = VIRTIO_ID_FS,
		/* queue 0 is the high-priority queue, then the requests */
		.num_queues = 1 + cfg->num_queues,
		.queue_max_size = (uint16_t)cfg->queue_size,
		.config_size = sizeof(struct virtio_fs_config),
		.vhost = true,
		.config_read = fs_config_read,
		.activate = fs_activate,
		.notify = fs_notify,
		.reset = fs_reset,
	};
	if (vhost_user_connect(&f->vu, cfg->socket_path,
			       timeout_ms ? timeout_ms : FS_BACKEND_TIMEOUT_MS,
			       f->name, err) < 0 ||
	    fs_setup_backend(f, err) < 0) {
		fs_free(f);
		return -1;
	}
	if (vm->loop.epfd >= 0) {
		/* EPOLLHUP comes unasked; RDHUP: the backend shut its end */
		f->hup = evloop_add(&vm->loop, f->vu.fd, EPOLLRDHUP, fs_on_hup,
				    f, err);
		if (f->hup == NULL) {
			fs_free(f);
			return kiln_error_wrap(err, "virtio-fs `%s`", cfg->id);
		}
	}
	if (virtio_dev_init(&f->dev, &f->ops, f, &vm->mem, err) < 0) {
		fs_free(f);
		return -1;
	}
	if (virtio_mmio_add(vm, &f->dev, err) < 0) {
		virtio_dev_destroy(&f->dev);
		fs_free(f);
		return -1;
	}
	log_info("%s: tag `%s`, %u request queue(s) of %u, backend `%s`",
		 f->name, cfg->tag, cfg->num_queues, cfg->queue_size,
		 cfg->socket_path);
	*out = &f->dev;
	return 0;
}

void fs_destroy(struct virtio_dev *d)
{
	struct fs *f = d->priv;

	virtio_mmio_del(d);
	virtio_dev_destroy(d);
	fs_free(f);
}

bool fs_connected(struct virtio_dev *d)
{
	struct fs *f = d->priv;
	bool up;

	virtio_dev_lock(d);
	up = !f->vu.down && f->vu.fd >= 0;
	virtio_dev_unlock(d);
	return up;
}

/* ---- the VMM_DEVICE ---- */

static void fs_dev_exit(struct vm *vm, void *state)
{
	struct fs_set *set = state;

	(void)vm;
	if (set == NULL)
		return;
	while (set->n > 0)
		fs_destroy(set->devs[--set->n]);
	free(set);
}

static int fs_dev_init(struct vm *vm, void **state, struct kiln_error *err)
{
	const struct vm_config *cfg = vm->cfg;
	struct fs_set *set;

	*state = NULL;
	if (cfg->nfs == 0)
		return 0;
	set = calloc(1, sizeof(*set));
	if (set == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-fs");
	for (unsigned int i = 0; i < cfg->nfs; i++) {
		if (fs_create(vm, &cfg->fs[i], 0, &set->devs[set->n], err) <
		    0) {
			fs_dev_exit(vm, set);
			return -1;
		}
		set->n++;
	}
	*state = set;
	return 0;
}

struct virtio_dev *fs_set_dev(void *state, unsigned int i)
{
	struct fs_set *set = state;

	return set != NULL && i < set->n ? set->devs[i] : NULL;
}

VMM_DEVICE(virtio_fs, DEVICE_LEVEL_VIRTIO, fs_dev_init, fs_dev_exit);
