/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Take guest memory, static, for guest test scripts (crun's tests/init.c
 * memhog):
 *
 *   memhog MIB [HOLD_S [AFTER_S]]
 *
 * Maps MIB MiB of anonymous memory and writes every 4 KiB page (non-zero,
 * so no page stays the shared zero page), prints "memhog touched MIB MiB",
 * holds it HOLD_S seconds (default 0), unmaps it, prints "memhog freed MIB
 * MiB" and sleeps AFTER_S seconds (default 0) before exiting 0. Killed by
 * the OOM killer when the guest cannot give it the memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned long arg(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s) {
		fprintf(stderr, "memhog: %s `%s`: not a number\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	unsigned long mib, hold = 0, after = 0;
	size_t len;
	char *p;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: memhog MIB [HOLD_S [AFTER_S]]\n");
		return 2;
	}
	mib = arg(argv[1], "MIB");
	if (argc > 2)
		hold = arg(argv[2], "HOLD_S");
	if (argc > 3)
		after = arg(argv[3], "AFTER_S");
	len = (size_t)mib << 20;
	p = mmap(NULL, len ? len : 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "memhog: mmap %lu MiB: %s\n", mib,
			strerror(errno));
		return 1;
	}
	for (size_t off = 0; off < len; off += 4096)
		p[off] = (char)(1 + (off >> 12) % 255);
	printf("memhog touched %lu MiB\n", mib);
	fflush(stdout);
	if (hold > 0)
		sleep((unsigned int)hold);
	munmap(p, len ? len : 4096);
	printf("memhog freed %lu MiB\n", mib);
	fflush(stdout);
	if (after > 0)
		sleep((unsigned int)after);
	return 0;
}
