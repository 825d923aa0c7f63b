/* SPDX-License-Identifier: Apache-2.0 */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"

char *file_read(const char *path, size_t max, size_t *len,
		struct kiln_error *err)
{
	cleanup_close int fd =
		open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	cleanup_free char *buf = NULL;
	size_t n = 0, cap;
	struct stat st;

	if (fd < 0) {
		kiln_error_set(err, errno, "open `%s`", path);
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		kiln_error_set(err, errno, "stat `%s`", path);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		kiln_error_set(err, 0, "`%s` is not a regular file", path);
		return NULL;
	}
	if ((uint64_t)st.st_size > max)
		goto too_big;
	/* one read past the size: a file that grew, or one of /proc's */
	cap = (size_t)st.st_size + 4096;
	buf = malloc(cap + 1);
	if (buf == NULL)
		goto nomem;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *bigger;

			if (cap >= max + 1)
				goto too_big;
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			bigger = realloc(buf, cap + 1);
			if (bigger == NULL)
				goto nomem;
			buf = bigger;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			kiln_error_set(err, errno, "read `%s`", path);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max)
		goto too_big;
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return steal_ptr(&buf);
too_big:
	kiln_error_set(err, EFBIG, "`%s` is larger than %zu bytes", path, max);
	return NULL;
nomem:
	kiln_error_set(err, ENOMEM, "read `%s`", path);
	return NULL;
}
