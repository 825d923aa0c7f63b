/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (device id 2): one device per configured drive. What other
 * parts of the VMM (the HTTP API's PATCH /drives/{id}) may call.
 */
#ifndef KILN_VMM_VIRTIO_BLK_H
#define KILN_VMM_VIRTIO_BLK_H

#include "../../lib/error.h"
#include "virtio.h"

struct vm;

/* The virtio-blk device of drive id in vm, or NULL. */
struct virtio_dev *blk_lookup(struct vm *vm, const char *id);

/*
 * Point a running drive at another raw image, opened read-only when
 * read_only is 1, read-write when 0, in the drive's current mode when -1;
 * the drive keeps that mode. The guest's features never change: read-write
 * is refused when the guest was offered VIRTIO_BLK_F_RO (its driver never
 * writes); read-only under a guest that may write makes its writes fail
 * (IOERR). The new file is opened before the old one is closed, so a
 * failure changes nothing. The capacity follows the new file's size and
 * the driver gets a config-change interrupt. Takes d->lock; callable from
 * any thread.
 */
int blk_replace_backing(struct virtio_dev *d, const char *path, int read_only,
			struct kiln_error *err);
/*
 * The same with the file given as fd (path only names it): fd must be
 * open in the drive's new mode, O_RDONLY or O_RDWR, and be a regular
 * file or a block device. The drive keeps a duplicate: the caller still
 * owns fd, and closes it, success or not.
 */
int blk_replace_backing_fd(struct virtio_dev *d, int fd, const char *path,
			   int read_only, struct kiln_error *err);

/* Capacity in 512-byte sectors (for tests and the API). */
uint64_t blk_capacity(struct virtio_dev *d);

/*
 * After a fork's restore: a drive whose file is not the size of its
 * template's slot tells the driver (a config-change interrupt, taken when
 * the vCPUs run), which then reads the new capacity.
 */
void blk_fork_resized(struct virtio_dev *d);

#endif
