/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (device id 2, virtio 1.x section 5.2): one device per
 * cfg->drives[] entry, each over a raw image file (or a block device).
 *
 * Drive letters. All drives are created by one VMM_DEVICE init, in
 * cfg->drives[] order, so their virtio_mmio.device= declarations appear on
 * the kernel command line in that order. Linux registers those platform
 * devices in command-line order and virtio_blk names its disks in probe
 * order, so drives[0] is /dev/vda, drives[1] /dev/vdb, and so on, whatever
 * other virtio devices sit between them. A root drive adds
 * "root=/dev/vdX" (and "ro") to the command line.
 *
 * Requests: blk_req.c (parsing, limits, the I/O without the device lock,
 * bounded work per turn of the loop). This file: the backing file, config
 * space, snapshots and the drives.
 *
 * Feature set. Per drive: F_RO for read-only drives; F_FLUSH, F_SEG_MAX,
 * F_SIZE_MAX, F_BLK_SIZE always; F_WRITE_ZEROES for writable drives
 * (ZERO_RANGE, falling back to writing zeros); F_DISCARD for writable
 * drives whose file system punches holes (probed at open). Each device
 * therefore has its own copy of the ops table, filled from blk_ops.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../device.h"
#include "../metrics.h"
#include "../vm.h"
#include "blk.h"
#include "blk_priv.h"
#include "mmio.h"
#include "virtio.h"

#define BLK_STATE_VERSION 1

/* struct virtio_blk_config up to write_zeroes_may_unmap (section 5.2.4) */
struct blk_config {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));

_Static_assert(sizeof(struct blk_config) == 60, "virtio_blk_config layout");

/* The snapshot of a blk (Firecracker's persist.rs shape). */
struct blk_state {
	uint32_t version; /* BLK_STATE_VERSION */
	uint32_t flags;	  /* BLK_STATE_F_* */
	uint64_t capacity;
	uint64_t features; /* the device features this drive offered */
	uint64_t st_dev;   /* identity of the backing file when saved */
	uint64_t st_ino;
	char id[BLK_ID_BYTES];
	uint32_t reserved; /* zero */
	uint32_t pad;	   /* zero */
};

#define BLK_STATE_F_RO	    1U
#define BLK_STATE_F_DISCARD 2U

/* The set of drives of one VM: the VMM_DEVICE state. */
struct blk_set {
	unsigned int n;
	struct blk *drives[VM_MAX_DRIVES];
};

/* ---- the backing file ---- */

struct blk_backing {
	int fd;
	uint64_t capacity;
	bool discard;
	dev_t st_dev;
	ino_t st_ino;
};

/*
 * b from fd (path names it), taken: closed on failure. fd is ours, or one
 * a client handed over (blk_replace_backing_fd checked its mode).
 */
static int blk_backing_of(const char *id, const char *path, int fd,
			  bool read_only, struct blk_backing *b,
			  struct kiln_error *err)
{
	struct stat st;
	uint64_t bytes;

	b->fd = fd;
	if (fstat(b->fd, &st) < 0) {
		kiln_error_set(err, errno, "drive %s: stat `%s`", id, path);
		goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		bytes = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(b->fd, BLKGETSIZE64, &bytes) < 0) {
			kiln_error_set(err, errno, "drive %s: size of `%s`", id,
				       path);
			goto fail;
		}
	} else {
		kiln_error_set(err, EINVAL,
			       "drive %s: `%s` is not a file or block device",
			       id, path);
		goto fail;
	}
	if (bytes % BLK_SECTOR != 0)
		log_warn("drive %s: `%s` is %llu bytes, not a multiple of "
			 "512: the last %llu bytes are not visible",
			 id, path, (unsigned long long)bytes,
			 (unsigned long long)(bytes % BLK_SECTOR));
	b->capacity = bytes / BLK_SECTOR;
	b->st_dev = st.st_dev;
	b->st_ino = st.st_ino;
	/*
	 * Does the file system punch holes? Ask past the end of the file:
	 * it checks support and changes nothing.
	 */
	b->discard =
		!read_only && S_ISREG(st.st_mode) &&
		fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(b->capacity * BLK_SECTOR) + (off_t)BLK_SECTOR,
			  (off_t)BLK_SECTOR) == 0;
	return 0;
fail:
	close(b->fd);
	b->fd = -1;
	return -1;
}

static int blk_open(const char *id, const char *path, bool read_only,
		    struct blk_backing *b, struct kiln_error *err)
{
	int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0)
		return kiln_error_set(err, errno, "drive %s: open `%s`", id,
				      path);
	return blk_backing_of(id, path, fd, read_only, b, err);
}

/*
 * client-controlled: a file descriptor handed over the API. Its open
 * mode must be the drive's (read-only, or read-write): the VMM gets no
 * access it was not meant to have, and a write never meets EBADF. An
 * O_PATH fd (no I/O) or O_APPEND (pwrite would append) is refused; what
 * it is (a regular file or a block device) blk_backing_of checks.
 */
static int blk_fd_check(const char *id, const char *name, int fd, bool ro,
			struct kiln_error *err)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return kiln_error_set(err, errno, "drive %s: `%s`", id, name);
	if (fl & O_PATH)
		return kiln_error_set(err, EBADF,
				      "drive %s: `%s`: an O_PATH file "
				      "descriptor",
				      id, name);
	if ((fl & O_ACCMODE) != (ro ? O_RDONLY : O_RDWR))
		return kiln_error_set(err, EBADF,
				      "drive %s: `%s`: the file descriptor "
				      "must be open %s",
				      id, name,
				      ro ? "read-only" : "read-write");
	if (fl & O_APPEND)
		return kiln_error_set(err, EBADF,
				      "drive %s: `%s`: the file descriptor "
				      "is open O_APPEND",
				      id, name);
	return 0;
}

/* b from a duplicate of a client's fd, checked; fd stays the caller's */
static int blk_adopt(const char *id, const char *path, int fd, bool ro,
		     struct blk_backing *b, struct kiln_error *err)
{
	int own;

	if (blk_fd_check(id, path, fd, ro, err) < 0)
		return -1;
	own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (own < 0)
		return kiln_error_set(err, errno, "drive %s: dup", id);
	return blk_backing_of(id, path, own, ro, b, err);
}

/* ---- config space ---- */

static void blk_config_fill(const struct blk *b, struct blk_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = b->capacity;
	cfg->size_max = BLK_SIZE_MAX;
	cfg->seg_max = BLK_SEG_MAX;
	cfg->blk_size = BLK_SECTOR;
	cfg->num_queues = 1;
	/* what the guest was offered, not the host's mode of the moment */
	if (!(b->ops.features & VIRTIO_BIT(VIRTIO_BLK_F_RO))) {
		cfg->max_discard_sectors = BLK_DWZ_SECTORS_MAX;
		cfg->max_discard_seg = BLK_DWZ_SEG_MAX;
		cfg->discard_sector_alignment = BLK_DISCARD_ALIGN;
		cfg->max_write_zeroes_sectors = BLK_DWZ_SECTORS_MAX;
		cfg->max_write_zeroes_seg = BLK_DWZ_SEG_MAX;
		cfg->write_zeroes_may_unmap = b->discard;
	}
}

static void blk_config_read(struct virtio_dev *d, uint32_t offset, void *data,
			    uint32_t len)
{
	struct blk_config cfg;

	blk_config_fill(d->priv, &cfg);
	memcpy(data, (uint8_t *)&cfg + offset, len);
}

/* Every field is read-only to the driver (no CONFIG_WCE): ignored. */
static void blk_config_write(struct virtio_dev *d, uint32_t offset,
			     const void *data, uint32_t len)
{
	(void)d;
	(void)data;
	(void)len;
	if (log_ratelimit())
		log_debug("virtio-blk: config write at %u ignored", offset);
}

/* ---- snapshots ---- */

static void blk_save(struct virtio_dev *d, void *state)
{
	struct blk *b = d->priv;
	struct blk_state *s = state;

	/* no request half done in the snapshot: the queues are saved next */
	blk_quiesce(b);
	memset(s, 0, sizeof(*s));
	s->version = BLK_STATE_VERSION;
	s->flags = (b->read_only ? BLK_STATE_F_RO : 0) |
		   (b->discard ? BLK_STATE_F_DISCARD : 0);
	s->capacity = b->capacity;
	s->features = b->ops.features;
	s->st_dev = (uint64_t)b->st_dev;
	s->st_ino = (uint64_t)b->st_ino;
	memcpy(s->id, b->id, BLK_ID_BYTES);
}

/*
 * The restoring VMM opened the drives of its own config; the snapshot must
 * describe the same drive: same id, mode, features and size. The file's
 * identity may differ (a copied image, another host): logged only.
 */
static int blk_restore(struct virtio_dev *d, const void *state,
		       struct kiln_error *err)
{
	const struct blk *b = d->priv;
	const struct blk_state *s = state;
	uint32_t flags = (b->read_only ? BLK_STATE_F_RO : 0) |
			 (b->discard ? BLK_STATE_F_DISCARD : 0);

	/* file-controlled: every field */
	if (s->version != BLK_STATE_VERSION || s->reserved != 0 || s->pad != 0)
		return kiln_error_set(err, EINVAL,
				      "blk state version %u reserved %u/%u, "
				      "want version %u, zeros",
				      s->version, s->reserved, s->pad,
				      BLK_STATE_VERSION);
	if (memcmp(s->id, b->id, BLK_ID_BYTES) != 0)
		return kiln_error_set(err, EINVAL,
				      "blk state is for drive `%.20s`, not "
				      "`%s`",
				      s->id, b->id);
	if (s->flags != flags || s->features != b->ops.features)
		return kiln_error_set(err, EINVAL,
				      "drive %s: state flags 0x%x features "
				      "0x%llx, drive has 0x%x 0x%llx",
				      b->id, s->flags,
				      (unsigned long long)s->features, flags,
				      (unsigned long long)b->ops.features);
	if (s->capacity != b->capacity)
		return kiln_error_set(err, EINVAL,
				      "drive %s: state capacity %llu sectors, "
				      "image `%s` has %llu",
				      b->id, (unsigned long long)s->capacity,
				      b->path, (unsigned long long)b->capacity);
	if (s->st_dev != (uint64_t)b->st_dev ||
	    s->st_ino != (uint64_t)b->st_ino)
		log_info("drive %s: restored over another file than saved",
			 b->id);
	return 0;
}

/*
 * A fork's drive: the template's guest probed a placeholder of the same
 * slot (same id, read-write), the fork brings the container's file. The
 * guest keeps the features it negotiated; the host keeps the fork's open
 * mode, so a read-only file stays read-only (writes fail with EBADF: an
 * I/O error in the guest). A new size is announced by blk_fork_resized.
 */
static int blk_fork_adopt(struct virtio_dev *d, const void *state,
			  struct kiln_error *err)
{
	struct blk *b = d->priv;
	const struct blk_state *s = state;
	uint64_t known = VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
			 VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
			 VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
			 VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
			 VIRTIO_BIT(VIRTIO_BLK_F_RO) |
			 VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) |
			 VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);

	if (s->version != BLK_STATE_VERSION || s->reserved != 0 ||
	    s->pad != 0 || (s->flags & ~(BLK_STATE_F_RO | BLK_STATE_F_DISCARD)))
		return kiln_error_set(err, EINVAL,
				      "blk state version %u flags 0x%x "
				      "reserved %u/%u",
				      s->version, s->flags, s->reserved,
				      s->pad);
	if (memcmp(s->id, b->id, BLK_ID_BYTES) != 0)
		return kiln_error_set(err, EINVAL,
				      "the template's drive is `%.20s`, not "
				      "`%s`",
				      s->id, b->id);
	if (s->features & ~known)
		return kiln_error_set(err, EINVAL,
				      "drive %s: template features 0x%llx",
				      b->id, (unsigned long long)s->features);
	b->ops.features = s->features;
	b->discard = b->discard &&
		     (s->features & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
	b->fork_resized = s->capacity != b->capacity;
	return 0;
}

void blk_fork_resized(struct virtio_dev *d)
{
	struct blk *b = d->priv;

	virtio_dev_lock(d);
	if (b->fork_resized)
		virtio_dev_config_changed(d);
	b->fork_resized = false;
	virtio_dev_unlock(d);
}

static const struct virtio_ops blk_ops = {
	.name = "blk",
	.device_id = VIRTIO_ID_BLOCK,
	.num_queues = 1,
	.queue_max_size = BLK_QUEUE_SIZE,
	.features = 0, /* per drive: see blk_new() */
	.config_size = sizeof(struct blk_config),
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.notify = blk_notify,
	.reset = blk_reset,
	.state_size = sizeof(struct blk_state),
	.save = blk_save,
	.restore = blk_restore,
	.fork_adopt = blk_fork_adopt,
};

/* ---- drives ---- */

static void blk_free(struct blk *b)
{
	if (b == NULL)
		return;
	if (b->fd >= 0)
		close(b->fd);
	pthread_mutex_destroy(&b->io_lock);
	metrics_unregister(b->metrics);
	free(b->path);
	free(b->drive_id);
	free(b);
}

static struct blk *blk_new(const struct vm_drive *drv,
			   const struct guest_mem *mem, struct kiln_error *err)
{
	struct blk_backing bk;
	struct blk *b;

	if (blk_open(drv->id, drv->path, drv->read_only, &bk, err) < 0)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (b == NULL || (b->path = strdup(drv->path)) == NULL ||
	    (b->drive_id = strdup(drv->id)) == NULL) {
		close(bk.fd);
		if (b != NULL)
			free(b->path);
		free(b);
		kiln_error_set(err, ENOMEM, "drive %s", drv->id);
		return NULL;
	}
	pthread_mutex_init(&b->io_lock, NULL);
	/* GET_ID: the drive id, NUL padded, cut at 20 bytes */
	strncpy(b->id, drv->id, BLK_ID_BYTES);
	b->fd = bk.fd;
	b->capacity = bk.capacity;
	b->discard = bk.discard;
	b->st_dev = bk.st_dev;
	b->st_ino = bk.st_ino;
	b->read_only = drv->read_only;
	b->ops = blk_ops;
	b->ops.features = VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
			  VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
			  VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
			  VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
	if (b->read_only)
		b->ops.features |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	else
		b->ops.features |= VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	if (b->discard)
		b->ops.features |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
	b->metrics = metrics_register("block", drv->id, metrics_blk_defs,
				      BLK_M_COUNT, err);
	if (b->metrics == NULL ||
	    virtio_dev_init(&b->dev, &b->ops, b, mem, err) < 0) {
		blk_free(b);
		return NULL;
	}
	return b;
}

int blk_replace_backing(struct virtio_dev *d, const char *path, int read_only,
			struct kiln_error *err)
{
	return blk_replace_backing_fd(d, -1, path, read_only, err);
}

int blk_replace_backing_fd(struct virtio_dev *d, int fd, const char *path,
			   int read_only, struct kiln_error *err)
{
	struct blk *b = d->priv;
	struct blk_backing bk;
	bool ro, guest_ro;
	char *p;
	int old;

	if (d->ops->device_id != VIRTIO_ID_BLOCK ||
	    d->ops->notify != blk_notify)
		return kiln_error_set(err, EINVAL, "not a virtio-blk device");
	virtio_dev_lock(d);
	ro = read_only < 0 ? b->read_only : read_only > 0;
	guest_ro = b->ops.features & VIRTIO_BIT(VIRTIO_BLK_F_RO);
	virtio_dev_unlock(d);
	if (read_only == 0 && guest_ro)
		return kiln_error_set(err, 0,
				      "drive `%s`: the guest has it read-only; "
				      "it cannot become read-write",
				      b->drive_id);
	if (fd >= 0 ? blk_adopt(b->id, path, fd, ro, &bk, err) < 0
		    : blk_open(b->id, path, ro, &bk, err) < 0)
		return -1;
	p = strdup(path);
	if (p == NULL) {
		close(bk.fd);
		return kiln_error_set(err, ENOMEM, "drive %s", b->id);
	}
	virtio_dev_lock(d);
	/* waits for the chunk of I/O in flight on the old file */
	pthread_mutex_lock(&b->io_lock);
	/*
	 * Negotiated features cannot change: a new file without hole
	 * punching keeps DISCARD (then a no-op, it is a hint) and
	 * WRITE_ZEROES (then ZERO_RANGE or written zeros). The mode goes
	 * with the fd (a concurrent replace may have changed it since we
	 * read it: the last one wins, mode and file alike). A write already
	 * under way goes on over the new fd: into a read-only one it fails
	 * (EBADF, IOERR); new ones are refused at parse (blk_req.c).
	 */
	old = b->fd;
	b->fd = bk.fd;
	b->read_only = ro;
	b->capacity = bk.capacity;
	b->discard = bk.discard &&
		     (b->ops.features & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
	b->st_dev = bk.st_dev;
	b->st_ino = bk.st_ino;
	free(b->path);
	b->path = p;
	pthread_mutex_unlock(&b->io_lock);
	virtio_dev_config_changed(d);
	virtio_dev_unlock(d);
	close(old);
	metrics_inc(b->metrics, BLK_M_UPDATES);
	log_info("drive %s: now `%s`, %s, %llu sectors", b->id, path,
		 ro ? "read-only" : "read-write",
		 (unsigned long long)bk.capacity);
	return 0;
}

uint64_t blk_capacity(struct virtio_dev *d)
{
	uint64_t c;

	virtio_dev_lock(d);
	c = ((struct blk *)d->priv)->capacity;
	virtio_dev_unlock(d);
	return c;
}

/* ---- the VMM_DEVICE ---- */

static void blk_dev_exit(struct vm *vm, void *state)
{
	struct blk_set *set = state;

	(void)vm;
	if (set == NULL)
		return;
	while (set->n > 0) {
		struct blk *b = set->drives[--set->n];

		virtio_mmio_del(&b->dev);
		virtio_dev_destroy(&b->dev);
		blk_free(b);
	}
	free(set);
}

static int blk_dev_init(struct vm *vm, void **state, struct kiln_error *err)
{
	const struct vm_config *cfg = vm->cfg;
	struct blk_set *set;
	int roots = 0;

	*state = NULL;
	if (cfg->ndrives == 0)
		return 0;
	if (cfg->ndrives > VM_MAX_DRIVES)
		return kiln_error_set(err, E2BIG, "%u drives, at most %d",
				      cfg->ndrives, VM_MAX_DRIVES);
	for (unsigned int i = 0; i < cfg->ndrives; i++)
		roots += cfg->drives[i].root;
	if (roots > 1)
		return kiln_error_set(err, EINVAL,
				      "%d drives are marked root, at most one",
				      roots);
	set = calloc(1, sizeof(*set));
	if (set == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-blk");
	/* in cfg->drives[] order: drives[i] is /dev/vd('a' + i) */
	for (unsigned int i = 0; i < cfg->ndrives; i++) {
		const struct vm_drive *drv = &cfg->drives[i];
		struct blk *b = blk_new(drv, &vm->mem, err);

		if (b == NULL)
			goto fail;
		if (virtio_mmio_add(vm, &b->dev, err) < 0) {
			virtio_dev_destroy(&b->dev);
			blk_free(b);
			kiln_error_wrap(err, "drive %s", drv->id);
			goto fail;
		}
		set->drives[set->n++] = b;
		if (drv->root &&
		    vm_cmdline_append(vm, err, "root=/dev/vd%c%s", 'a' + i,
				      drv->read_only ? " ro" : "") < 0)
			goto fail;
	}
	*state = set;
	return 0;
fail:
	blk_dev_exit(vm, set);
	return -1;
}

struct virtio_dev *blk_lookup(struct vm *vm, const char *id)
{
	for (unsigned int i = 0; i < vm->ndevices; i++) {
		struct blk_set *set = vm->devices[i].state;

		if (vm->devices[i].desc->init != blk_dev_init || set == NULL)
			continue;
		for (unsigned int j = 0; j < set->n; j++)
			if (strcmp(set->drives[j]->drive_id, id) == 0)
				return &set->drives[j]->dev;
	}
	return NULL;
}

VMM_DEVICE(virtio_blk, DEVICE_LEVEL_VIRTIO, blk_dev_init, blk_dev_exit);
