/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scatter-gather helpers over the host segments of a descriptor chain
 * (struct virtq_chain) or any iovec array. Lengths come from the guest:
 * every helper stops at the end of the segments, never past it.
 */
#ifndef KILN_VMM_VIRTIO_IOV_H
#define KILN_VMM_VIRTIO_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "queue.h"

/* Copy len bytes at offset skip of iov[0, n) to buf; false if short. */
bool iov_to_buf(const struct iovec *iov, unsigned int n, size_t skip, void *buf,
		size_t len);

/*
 * Copy up to len bytes of buf into iov[0, n) from offset skip; returns
 * the bytes copied (fewer when the segments end first).
 */
size_t iov_from_buf(const struct iovec *iov, unsigned int n, size_t skip,
		    const void *buf, size_t len);

/*
 * dst = the bytes [skip, skip + len) of iov[0, n), without empty
 * segments; returns the count (at most n: dst needs room for n).
 */
unsigned int iov_slice(struct iovec *dst, const struct iovec *iov,
		       unsigned int n, size_t skip, size_t len);

/* iov_to_buf on the device-readable part of c. */
static inline bool virtq_chain_read(const struct virtq_chain *c, size_t skip,
				    void *buf, size_t len)
{
	return iov_to_buf(c->iov, c->nread, skip, buf, len);
}

/* iov_from_buf on the device-writable part of c. */
static inline size_t virtq_chain_write(const struct virtq_chain *c, size_t skip,
				       const void *buf, size_t len)
{
	return iov_from_buf(c->iov + c->nread, c->nwrite, skip, buf, len);
}

#endif
