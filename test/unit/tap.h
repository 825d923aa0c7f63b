/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal TAP producer for unit tests. Each test program prints TAP
 * lines and ends with tap_done(), which prints the plan and a summary line
 * "N passed, N failed, N skipped" and returns the exit status for main().
 *
 * A test that cannot run here says so with tap_skip() (one TAP "ok N # SKIP
 * reason" line) or, for the whole program, returns tap_skip_all(). A skip
 * is never a pass: test/run-unit.sh counts it apart, and under CI=true a
 * skip not listed in KILN_ALLOW_SKIP fails the run.
 */
#ifndef KILN_TEST_TAP_H
#define KILN_TEST_TAP_H

#include <stdarg.h>
#include <stdio.h>

static unsigned int tap_n, tap_failed, tap_skipped;

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

/* One test that does not run here, and why (no "-": TAP's directive). */
static inline __attribute__((format(printf, 1, 2))) void
tap_skip(const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	tap_skipped++;
	printf("ok %u # SKIP ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* The whole program cannot run here: "1..0 # SKIP why"; main returns it. */
static inline __attribute__((format(printf, 1, 2))) int
tap_skip_all(const char *fmt, ...)
{
	va_list ap;

	printf("1..0 # SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return 0;
}

static inline int tap_done(void)
{
	printf("1..%u\n", tap_n);
	printf("# %u passed, %u failed, %u skipped\n",
	       tap_n - tap_failed - tap_skipped, tap_failed, tap_skipped);
	return tap_failed ? 1 : 0;
}

#endif
