/* SPDX-License-Identifier: Apache-2.0 */
/* Logging: one line per event, to stderr unless log_open() names a file. */
#ifndef KILN_LOG_H
#define KILN_LOG_H

enum log_level {
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG
};

void log_set_level(enum log_level level);
void log_set_prog(const char *prog);
/* Redirect to a file opened for append; returns -1 with errno on failure. */
int log_open(const char *path);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * Rate limit for messages a guest can trigger at will (unknown ports, bad
 * descriptors): true for the first few calls at a site, then false, so a
 * hostile guest cannot flood the host's log.
 */
#define log_ratelimit()                                             \
	({                                                          \
		static unsigned int _n;                             \
		__atomic_add_fetch(&_n, 1, __ATOMIC_RELAXED) <= 10; \
	})

#endif
