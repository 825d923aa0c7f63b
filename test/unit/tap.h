/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal TAP producer for unit tests. Each test program prints TAP
 * lines and ends with tap_done(), which prints the plan and a summary line
 * "N passed, N failed" and returns the exit status for main().
 */
#ifndef KILN_TEST_TAP_H
#define KILN_TEST_TAP_H

#include <stdarg.h>
#include <stdio.h>

static unsigned int tap_n, tap_failed;

static inline __attribute__((format(printf, 4, 5))) int
tap_ok_at(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("%s %u - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok_at(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* Compare two integers and show both on failure. */
#define is_int(got, want, ...)                                           \
	({                                                               \
		long long _g = (long long)(got), _w = (long long)(want); \
		int _r = ok(_g == _w, __VA_ARGS__);                      \
		if (!_r)                                                 \
			printf("#   got %lld, want %lld\n", _g, _w);     \
		_r;                                                      \
	})

static inline int tap_done(void)
{
	printf("1..%u\n", tap_n);
	printf("# %u passed, %u failed\n", tap_n - tap_failed, tap_failed);
	return tap_failed ? 1 : 0;
}

#endif
