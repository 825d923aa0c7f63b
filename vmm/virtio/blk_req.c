/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk requests (virtio 1.x section 5.2.6): parse and check a chain
 * under the device lock, do its file I/O without it, answer under it.
 *
 * Why the I/O runs without dev.lock. notify runs on the event-loop thread
 * with dev.lock held; a vCPU reading or writing this device's registers
 * (the interrupt ack of every completion) takes the same lock. A read of
 * a slow image done under it would stop that vCPU for as long as the
 * disk takes. So blk_xfer_step() drops dev.lock around the I/O and holds
 * io_lock instead: what the I/O needs (fd, capacity) changes only under
 * both locks, and a reset or snapshot that runs meanwhile waits for the
 * chunk in flight (io_lock), then takes the request away (epoch), which
 * the loop sees when it has dev.lock again.
 *
 * Why the loop stays responsive. One notification moves at most
 * BLK_TURN_BYTES of data (and the transport's queue-size budget of
 * chains): a large request goes on over several turns, and when the
 * budget is spent notify sets q->starved, so the transport schedules the
 * rest behind the other fds of the loop (mmio.c re-signals the queue's
 * eventfd). Flush, discard and write-zeroes end a turn.
 *
 * The alternative, an I/O thread per drive (or io_uring), would keep the
 * loop free even during one chunk and allow several requests in flight;
 * the split here (parse, step, complete) is what it would need.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "blk_priv.h"
#include "iov.h"

/* request types and status (section 5.2.6) */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK		  0
#define VIRTIO_BLK_S_IOERR	  1
#define VIRTIO_BLK_S_UNSUPP	  2
#define BLK_S_STARTED		  0xff /* not a status: b->xfer runs */

#define BLK_HDR_BYTES 16

struct blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_dwz_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags; /* bit 0: unmap; the rest reserved */
};

#define BLK_DWZ_F_UNMAP 1U

/* ---- the backing file, under io_lock ---- */

/* The whole of iov[0, n) at off, retrying short transfers. 0 or -errno. */
static int blk_rw(int fd, struct iovec *iov, unsigned int n, uint64_t off,
		  bool write)
{
	while (n > 0) {
		ssize_t r = write ? pwritev(fd, iov, (int)n, (off_t)off)
				  : preadv(fd, iov, (int)n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* the file shrank under us */
		off += (uint64_t)r;
		while (n > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* sectors [sector, sector + count) inside the disk? */
static bool blk_in_range(const struct blk *b, uint64_t sector, uint64_t count)
{
	return sector <= b->capacity && count <= b->capacity - sector;
}

/* The backing file failed: IOERR, counted and logged. */
static void blk_io_error(struct blk *b, const char *what, int e)
{
	b->xfer.status = VIRTIO_BLK_S_IOERR;
	b->xfer.io_error = true;
	metrics_inc(b->metrics, BLK_M_EXECUTE_FAILS);
	if (log_ratelimit())
		log_warn("virtio-blk %s: %s: %s", b->id, what, strerror(-e));
}

/* Zero bytes [off, off + len) of the image, reading back as zeros. */
static int blk_zero(struct blk *b, uint64_t off, uint64_t len, bool unmap)
{
	static const uint8_t zeros[64 * 1024];

	if (unmap && b->discard &&
	    fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) == 0)
		return 0;
	if (fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENODEV)
		return -errno;
	while (len > 0) {
		struct iovec v = { (void *)zeros,
				   len < sizeof(zeros) ? len : sizeof(zeros) };
		int ret = blk_rw(b->fd, &v, 1, off, true);

		if (ret < 0)
			return ret;
		off += sizeof(zeros) < len ? sizeof(zeros) : len;
		len -= sizeof(zeros) < len ? sizeof(zeros) : len;
	}
	return 0;
}

/* DISCARD or WRITE_ZEROES: the ranges follow the header in b->chain. */
static void blk_dwz(struct blk *b)
{
	const struct virtq_chain *c = &b->chain;
	uint32_t len = c->read_len - BLK_HDR_BYTES;
	bool wz = b->xfer.op == BLK_OP_WRITE_ZEROES;

	b->xfer.status = VIRTIO_BLK_S_OK;
	/* guest-controlled: a whole number of ranges, at most the maximum */
	if (len == 0 || len % sizeof(struct blk_dwz_seg) != 0 ||
	    len / sizeof(struct blk_dwz_seg) > BLK_DWZ_SEG_MAX) {
		b->xfer.status = VIRTIO_BLK_S_IOERR;
		return;
	}
	for (uint32_t off = 0; off < len; off += sizeof(struct blk_dwz_seg)) {
		struct blk_dwz_seg s;
		int ret;

		virtq_chain_read(c, BLK_HDR_BYTES + off, &s, sizeof(s));
		/* guest-controlled: flags, range size and bounds */
		if ((s.flags & ~BLK_DWZ_F_UNMAP) != 0 ||
		    (!wz && (s.flags & BLK_DWZ_F_UNMAP))) {
			b->xfer.status = VIRTIO_BLK_S_UNSUPP;
			return;
		}
		if (s.num_sectors > BLK_DWZ_SECTORS_MAX ||
		    !blk_in_range(b, s.sector, s.num_sectors)) {
			b->xfer.status = VIRTIO_BLK_S_IOERR;
			return;
		}
		if (s.num_sectors == 0)
			continue;
		if (wz)
			ret = blk_zero(b, s.sector * BLK_SECTOR,
				       s.num_sectors * BLK_SECTOR,
				       s.flags & BLK_DWZ_F_UNMAP);
		else if (!b->discard)
			ret = 0; /* a discard is a hint: nothing to do */
		else if (fallocate(b->fd,
				   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)(s.sector * BLK_SECTOR),
				   (off_t)(s.num_sectors * BLK_SECTOR)) < 0)
			ret = -errno;
		else
			ret = 0;
		if (ret < 0) {
			blk_io_error(b, wz ? "write zeroes" : "discard", ret);
			return;
		}
	}
}

/*
 * The next part of b->xfer, at most max data bytes; io_lock held. Returns
 * the budget it used: the bytes moved, or all of max for the operations
 * that are not split (flush, discard, write zeroes).
 */
static uint64_t blk_xfer_io(struct blk *b, uint64_t max)
{
	struct blk_xfer *x = &b->xfer;
	uint64_t len = x->len - x->done < max ? x->len - x->done : max;
	bool write = x->op == BLK_OP_WRITE;
	unsigned int k;
	int ret;

	switch (x->op) {
	case BLK_OP_FLUSH:
		if (fdatasync(b->fd) < 0)
			blk_io_error(b, "fdatasync", -errno);
		else
			x->status = VIRTIO_BLK_S_OK;
		return max;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		blk_dwz(b);
		return max;
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		break;
	}
	/* the drive may have got a smaller file since the request began */
	if (!blk_in_range(b, x->sector, x->len / BLK_SECTOR)) {
		x->status = VIRTIO_BLK_S_IOERR;
		return len;
	}
	k = iov_slice(b->chunk, b->data, x->n, x->done, len);
	ret = blk_rw(b->fd, b->chunk, k, x->sector * BLK_SECTOR + x->done,
		     write);
	if (ret < 0) {
		blk_io_error(b, write ? "write" : "read", ret);
		return len;
	}
	x->done += len;
	if (x->done == x->len) {
		x->status = VIRTIO_BLK_S_OK;
		x->written = write ? 0 : (uint32_t)x->len;
	}
	return len;
}

/* Is b->xfer over (status set)? */
static bool blk_xfer_over(const struct blk *b)
{
	return b->xfer.status != BLK_S_STARTED;
}

/*
 * Move b->xfer on by at most *budget bytes, without dev.lock (held on
 * entry and on return). false when a reset or a snapshot took the request
 * away meanwhile: the caller must leave the queue alone.
 */
static bool blk_xfer_step(struct blk *b, uint64_t *budget)
{
	uint64_t epoch = b->epoch, used = 0;

	virtio_dev_unlock(&b->dev);
	pthread_mutex_lock(&b->io_lock);
	if (b->epoch == epoch)
		used = blk_xfer_io(b, *budget);
	pthread_mutex_unlock(&b->io_lock);
	virtio_dev_lock(&b->dev);
	*budget -= used;
	return b->epoch == epoch;
}

/* ---- requests, under dev.lock ---- */

/* Start a transfer of op: the caller's status is BLK_S_STARTED. */
static uint8_t blk_start(struct blk *b, enum blk_op op)
{
	pthread_mutex_lock(&b->io_lock);
	b->xfer.active = true;
	b->xfer.op = op;
	b->xfer.status = BLK_S_STARTED;
	b->xfer.io_error = false;
	b->xfer.done = 0;
	b->xfer.written = 0;
	pthread_mutex_unlock(&b->io_lock);
	return BLK_S_STARTED;
}

/* IN or OUT: check the data against the limits, then start it. */
static uint8_t blk_rw_request(struct blk *b, const struct virtq_chain *c,
			      const struct blk_req_hdr *h)
{
	bool in = h->type == VIRTIO_BLK_T_IN;
	/* guest-controlled: everything in c; the status byte is excluded */
	uint64_t len = in ? c->write_len - 1 : c->read_len - BLK_HDR_BYTES;
	unsigned int n;

	if (!in && b->read_only)
		return VIRTIO_BLK_S_IOERR; /* section 5.2.6.2 */
	/* guest-controlled: data on the right side, whole sectors */
	if ((in && c->read_len != BLK_HDR_BYTES) || len % BLK_SECTOR != 0 ||
	    !blk_in_range(b, h->sector, len / BLK_SECTOR))
		return VIRTIO_BLK_S_IOERR;
	if (len == 0)
		return VIRTIO_BLK_S_OK;
	if (in)
		n = iov_slice(b->data, c->iov + c->nread, c->nwrite, 0, len);
	else
		n = iov_slice(b->data, c->iov, c->nread, BLK_HDR_BYTES, len);
	/* guest-controlled: the size_max and seg_max we offered */
	if (n > BLK_SEG_MAX)
		return VIRTIO_BLK_S_IOERR;
	for (unsigned int i = 0; i < n; i++)
		if (b->data[i].iov_len > BLK_SIZE_MAX)
			return VIRTIO_BLK_S_IOERR;
	b->xfer.n = n;
	b->xfer.sector = h->sector;
	b->xfer.len = len;
	return blk_start(b, in ? BLK_OP_READ : BLK_OP_WRITE);
}

/*
 * Parse the request in b->chain: its status, or BLK_S_STARTED when b->xfer
 * now runs it. *written is the bytes put in the writable part before the
 * status byte. The chain has at least one writable byte (the status).
 */
static uint8_t blk_request(struct blk *b, uint32_t *written)
{
	struct virtio_dev *d = &b->dev;
	const struct virtq_chain *c = &b->chain;
	struct blk_req_hdr h;
	uint64_t len;

	*written = 0;
	/* guest-controlled: the header is 16 readable bytes, maybe split */
	if (c->read_len < BLK_HDR_BYTES ||
	    !virtq_chain_read(c, 0, &h, sizeof(h)))
		return VIRTIO_BLK_S_IOERR;

	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return blk_rw_request(b, c, &h);
	case VIRTIO_BLK_T_FLUSH:
		if (!virtio_dev_has(d, VIRTIO_BLK_F_FLUSH))
			return VIRTIO_BLK_S_UNSUPP;
		return blk_start(b, BLK_OP_FLUSH);
	case VIRTIO_BLK_T_GET_ID:
		/* guest-controlled: write at most 20 bytes, fewer if short */
		len = c->write_len - 1;
		*written = (uint32_t)virtq_chain_write(
			c, 0, b->id, len < BLK_ID_BYTES ? len : BLK_ID_BYTES);
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (!virtio_dev_has(d, h.type == VIRTIO_BLK_T_DISCARD
					       ? VIRTIO_BLK_F_DISCARD
					       : VIRTIO_BLK_F_WRITE_ZEROES))
			return VIRTIO_BLK_S_UNSUPP;
		if (b->read_only)
			return VIRTIO_BLK_S_IOERR;
		return blk_start(b, h.type == VIRTIO_BLK_T_DISCARD
					    ? BLK_OP_DISCARD
					    : BLK_OP_WRITE_ZEROES);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* Answer the request of b->chain with status. */
static void blk_answer(struct blk *b, struct virtq *q, uint8_t status,
		       uint32_t written, bool io_error)
{
	struct virtq_chain *c = &b->chain;
	struct iovec *last;

	if (status != VIRTIO_BLK_S_OK && !io_error)
		metrics_inc(b->metrics, BLK_M_INVALID_REQS);
	/* guest-controlled: the status is the last writable byte */
	last = &c->iov[c->nread + c->nwrite - 1];
	while (last->iov_len == 0)
		last--; /* write_len > 0: some segment has a byte */
	((uint8_t *)last->iov_base)[last->iov_len - 1] = status;
	virtq_push(q, c->head, written + 1);
}

/* The transfer is over: count it, answer it. dev.lock and io_lock held. */
static void blk_finish(struct blk *b, struct virtq *q)
{
	struct blk_xfer *x = &b->xfer;

	if (x->status == VIRTIO_BLK_S_OK) {
		if (x->op == BLK_OP_FLUSH)
			metrics_inc(b->metrics, BLK_M_FLUSH_COUNT);
		if (x->op == BLK_OP_READ || x->op == BLK_OP_WRITE) {
			bool rd = x->op == BLK_OP_READ;

			metrics_inc(b->metrics,
				    rd ? BLK_M_READ_COUNT : BLK_M_WRITE_COUNT);
			metrics_add(b->metrics,
				    rd ? BLK_M_READ_BYTES : BLK_M_WRITE_BYTES,
				    x->len);
		}
	}
	x->active = false;
	blk_answer(b, q, x->status, x->written, x->io_error);
}

void blk_notify(struct virtio_dev *d, unsigned int queue)
{
	struct blk *b = d->priv;
	struct virtq *q = &d->queues[queue];
	uint64_t budget = BLK_TURN_BYTES;
	bool pushed = false;

	metrics_inc(b->metrics, BLK_M_QUEUE_EVENTS);
	/*
	 * Without an event loop (tests, fuzzers) two vCPUs may kick at
	 * once, and one of them may be in blk_xfer_step without dev.lock:
	 * it serves the queue, this kick has nothing to add.
	 */
	if (b->busy)
		return;
	b->busy = true;
	while (!d->broken) {
		uint32_t written;
		uint8_t status;

		if (budget == 0) {
			/*
			 * The transport comes back. Even when nothing is
			 * left: that turn finds the ring empty, and with
			 * EVENT_IDX only a pop of an empty ring publishes
			 * avail_event, without which the driver's next
			 * buffer would not notify us.
			 */
			q->starved = true;
			break;
		}
		if (b->xfer.active) {
			/*
			 * A reset or a snapshot may take the request away
			 * meanwhile: then the queue is as they left it (not
			 * ready after a reset, answered after a snapshot).
			 */
			if (blk_xfer_step(b, &budget) && blk_xfer_over(b)) {
				pthread_mutex_lock(&b->io_lock);
				blk_finish(b, q);
				pthread_mutex_unlock(&b->io_lock);
				pushed = true;
			}
			continue;
		}
		if (virtq_pop(q, &b->chain) != 1)
			break;
		/* guest-controlled: no writable byte, nowhere to answer */
		if (b->chain.write_len == 0) {
			virtio_dev_set_broken(d,
					      "request %u without a status "
					      "byte",
					      b->chain.head);
			break;
		}
		status = blk_request(b, &written);
		if (status == BLK_S_STARTED)
			continue;
		blk_answer(b, q, status, written, false);
		pushed = true;
	}
	b->busy = false;
	if (pushed)
		virtio_dev_used(d, q);
}

void blk_reset(struct virtio_dev *d)
{
	struct blk *b = d->priv;

	/* waits for the chunk in flight: no I/O into buffers after reset */
	pthread_mutex_lock(&b->io_lock);
	b->xfer.active = false;
	b->epoch++;
	pthread_mutex_unlock(&b->io_lock);
}

void blk_quiesce(struct blk *b)
{
	struct virtq *q = &b->dev.queues[0];

	pthread_mutex_lock(&b->io_lock);
	if (b->xfer.active) {
		while (!blk_xfer_over(b))
			blk_xfer_io(b, BLK_TURN_BYTES);
		blk_finish(b, q);
		virtio_dev_used(&b->dev, q);
		b->epoch++;
	}
	pthread_mutex_unlock(&b->io_lock);
}
