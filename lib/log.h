/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging: one line per event, to stderr unless log_open() names a file.
 * A line is "prog: [seconds.micros] LEVEL: file.c:line: message", where
 * the level shows unless log_set_show_level(false) and the origin only
 * after log_set_show_origin(true). Every setter is safe from any thread
 * while others log. libc only: the static guest agent links this too.
 */
#ifndef KILN_LOG_H
#define KILN_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_OFF, /* nothing at all (Firecracker's "Off") */
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG
};

void log_set_level(enum log_level level);
void log_set_prog(const char *prog);
/* Show "LEVEL: " (the default) or not. */
void log_set_show_level(bool show);
/* Show "file.c:line: " (not by default). */
void log_set_show_origin(bool show);
/*
 * Write JSON lines instead, as runc's --log-format json does:
 * {"level":"error","msg":"...","time":"2026-12-02T04:30:00.000000000Z"}.
 */
void log_set_json(bool json);
/*
 * A level by name, any case: "Off", "Error", "Warning" (or "Warn"),
 * "Info", "Debug", "Trace" (as Debug). -1 when unknown.
 */
int log_level_parse(const char *name);
/*
 * Redirect to a file opened for append; returns -1 with errno on failure.
 * Safe while other threads log: each line goes whole to the old file or
 * to the new one.
 */
int log_open(const char *path);
/* The fd log lines go to (2 until log_open), for a caller closing fds. */
int log_fileno(void);
/* Use the log_* macros, which fill in the origin. */
void log_msg(enum log_level level, const char *file, int line, const char *fmt,
	     ...) __attribute__((format(printf, 4, 5)));

#define log_error(...) log_msg(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

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
