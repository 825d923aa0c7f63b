/* SPDX-License-Identifier: Apache-2.0 */
/* Prefault lists: see prefault.h. */
#include "prefault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t prefault_begin(uint8_t *buf)
{
	memcpy(buf, PREFAULT_MAGIC, PREFAULT_MAGIC_LEN);
	return PREFAULT_MAGIC_LEN;
}

size_t prefault_add(uint8_t *buf, size_t len, uint32_t page)
{
	buf[len] = (uint8_t)page;
	buf[len + 1] = (uint8_t)(page >> 8);
	buf[len + 2] = (uint8_t)(page >> 16);
	buf[len + 3] = (uint8_t)(page >> 24);
	return len + 4;
}

int prefault_parse(const void *buf, size_t len, uint32_t **pages, size_t *n,
		   struct kiln_error *err)
{
	const uint8_t *b = buf;
	size_t count;
	uint32_t *out;

	*pages = NULL;
	*n = 0;
	if (len < PREFAULT_MAGIC_LEN ||
	    memcmp(b, PREFAULT_MAGIC, PREFAULT_MAGIC_LEN) != 0)
		return kiln_error_set(err, EINVAL, "not a prefault list");
	if ((len - PREFAULT_MAGIC_LEN) % 4 != 0)
		return kiln_error_set(err, EINVAL,
				      "prefault list: %zu bytes after its "
				      "magic, not whole page indexes",
				      len - PREFAULT_MAGIC_LEN);
	count = (len - PREFAULT_MAGIC_LEN) / 4;
	if (count > PREFAULT_MAX_PAGES)
		return kiln_error_set(err, E2BIG,
				      "prefault list: %zu pages, at most %d",
				      count, PREFAULT_MAX_PAGES);
	if (count == 0)
		return 0;
	out = malloc(count * sizeof(*out));
	if (out == NULL)
		return kiln_error_set(err, ENOMEM, "prefault list");
	for (size_t i = 0; i < count; i++) {
		const uint8_t *p = b + PREFAULT_MAGIC_LEN + 4 * i;

		out[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
			 (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
		if (i > 0 && out[i] <= out[i - 1]) {
			uint32_t bad = out[i];

			free(out);
			return kiln_error_set(err, EINVAL,
					      "prefault list: page %zu (%u) "
					      "not above the one before",
					      i, bad);
		}
	}
	*pages = out;
	*n = count;
	return 0;
}
