/* SPDX-License-Identifier: Apache-2.0 */
#include "iov.h"

#include <string.h>

bool iov_to_buf(const struct iovec *iov, unsigned int n, size_t skip, void *buf,
		size_t len)
{
	uint8_t *p = buf;

	for (unsigned int i = 0; i < n && len > 0; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len ? l - skip : len;
		memcpy(p, (uint8_t *)iov[i].iov_base + skip, c);
		p += c;
		len -= c;
		skip = 0;
	}
	return len == 0;
}

size_t iov_from_buf(const struct iovec *iov, unsigned int n, size_t skip,
		    const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len - done ? l - skip : len - done;
		memcpy((uint8_t *)iov[i].iov_base + skip, p + done, c);
		done += c;
		skip = 0;
	}
	return done;
}

unsigned int iov_slice(struct iovec *dst, const struct iovec *iov,
		       unsigned int n, size_t skip, size_t len)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < n && len > 0; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		dst[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		dst[k].iov_len = l - skip < len ? l - skip : len;
		len -= dst[k].iov_len;
		skip = 0;
		if (dst[k].iov_len > 0)
			k++;
	}
	return k;
}
