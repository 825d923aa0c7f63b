/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk inside: the drive struct shared by blk.c (the device: config
 * space, snapshots, drives and backing files) and blk_req.c (requests:
 * parsing, validation and the I/O on the backing file).
 */
#ifndef KILN_VMM_VIRTIO_BLK_PRIV_H
#define KILN_VMM_VIRTIO_BLK_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../metrics.h"
#include "virtio.h"

/* feature bits (section 5.2.3) */
#define VIRTIO_BLK_F_SIZE_MAX	  1
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define BLK_SECTOR     512ULL
#define BLK_ID_BYTES   20
#define BLK_QUEUE_SIZE 256
/*
 * size_max and seg_max (section 5.2.4): the most bytes in any one segment
 * and the most segments of data in one request, header and status not
 * counted (Linux adds 2 to seg_max for them). kiln refuses (IOERR) a read
 * or write past either; so a request moves at most BLK_SEG_MAX *
 * BLK_SIZE_MAX bytes (254 MiB). The spec sets no other limit on the total,
 * and Linux sets none (max_hw_sectors is unlimited, max_sectors_kb may be
 * raised by the guest up to it): kiln takes every request within the two
 * limits and spreads a large one over several turns of the loop.
 */
#define BLK_SEG_MAX	    (BLK_QUEUE_SIZE - 2)
#define BLK_SIZE_MAX	    (1U << 20)
#define BLK_DWZ_SEG_MAX	    16	       /* ranges in one discard request */
#define BLK_DWZ_SECTORS_MAX (1U << 22) /* 2 GiB per range */
#define BLK_DISCARD_ALIGN   8	       /* sectors: one 4 KiB fs block */
/*
 * Data bytes one notification moves at most before it hands the loop to
 * the other fds (and the rest of the queue, or of a large request, waits
 * for the next turn). 2 MiB: a default Linux request (max_sectors_kb
 * 1280) fits in one turn; a disk at 100 MB/s holds the loop 20 ms.
 */
#define BLK_TURN_BYTES (2U << 20)

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,
	BLK_OP_WRITE_ZEROES,
};

/*
 * The request in progress: parsed and checked under dev.lock, its file
 * I/O done under io_lock alone, maybe over several turns of the loop.
 */
struct blk_xfer {
	bool active;
	enum blk_op op;
	uint8_t status;	  /* VIRTIO_BLK_S_*, once over */
	bool io_error;	  /* the backing file failed (not the request) */
	unsigned int n;	  /* READ/WRITE: b->data[0, n) is the data */
	uint64_t sector;  /* READ/WRITE: first sector */
	uint64_t len;	  /* READ/WRITE: data bytes */
	uint64_t done;	  /* READ/WRITE: data bytes moved so far */
	uint32_t written; /* used length before the status byte */
};

/*
 * One drive. Owner: the event loop runs requests (blk_req.c); vCPU
 * threads (register accesses, reset) and the API thread (replace) reach
 * it under dev.lock. Requests do their file I/O without dev.lock, under
 * io_lock only, so a vCPU touching the device never waits for the disk;
 * lock order dev.lock, then io_lock.
 */
struct blk {
	struct virtio_dev dev;	   /* first */
	struct virtio_ops ops;	   /* blk_ops with this drive's features */
	char id[BLK_ID_BYTES + 1]; /* GET_ID answer, NUL padded */
	char *drive_id;		   /* the whole id, for blk_lookup */
	char *path;
	bool fork_resized; /* a fork's file differs in size from the slot's */
	struct metrics_group *metrics; /* block_<drive id> */

	pthread_mutex_t io_lock;
	/* under dev.lock and io_lock both: either one suffices to read */
	int fd;
	/*
	 * fd's open mode, whatever the guest was offered (a read-write slot
	 * may hold a read-only file: a fork's, or after PATCH /drives)
	 */
	bool read_only;
	bool discard;	   /* the backend punches holes */
	uint64_t capacity; /* sectors */
	dev_t st_dev;	   /* identity of the open file, for snapshots */
	ino_t st_ino;
	/*
	 * Bumped (under both locks) when the request in progress is taken
	 * away from the loop: a reset dropped it, a snapshot finished it. A
	 * loop thread back from I/O without dev.lock checks it first.
	 */
	uint64_t epoch;
	/*
	 * The request in progress: set up under dev.lock while not active,
	 * then moved on under io_lock; active changes under both.
	 */
	struct blk_xfer xfer;
	struct virtq_chain chain;	     /* its chain */
	struct iovec data[VIRTQ_CHAIN_MAX];  /* its data segments */
	struct iovec chunk[VIRTQ_CHAIN_MAX]; /* the part of them this turn */
	bool busy; /* blk_notify is running (dev.lock) */
};

/* blk_req.c: the ops of the request path (dev.lock held) */
void blk_notify(struct virtio_dev *d, unsigned int queue);
void blk_reset(struct virtio_dev *d);
/* A snapshot: finish the request in progress, so none is half done. */
void blk_quiesce(struct blk *b);

#endif
