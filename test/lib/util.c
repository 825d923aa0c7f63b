/* SPDX-License-Identifier: Apache-2.0 */
#include "util.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int count_in_file(const char *path, const char *needle)
{
	char buf[8192];
	int fd = open(path, O_RDONLY), n = 0;
	ssize_t len;
	const char *p;

	if (fd < 0)
		return -1;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len < 0)
		return -1;
	buf[len] = '\0';
	for (p = buf; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

uint64_t irqs(int efd)
{
	uint64_t n = 0;

	if (read(efd, &n, sizeof(n)) < 0)
		return 0;
	return n;
}
