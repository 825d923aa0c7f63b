/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One error convention for all of kiln: a fallible function takes a
 * struct kiln_error *, returns a negative value (or NULL) and fills the
 * struct with errno and a message. Only main() prints it.
 */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#include <stddef.h>

#define KILN_ERROR_MSG_MAX 512

struct kiln_error {
	int errnum; /* errno value, 0 when it does not apply */
	char msg[KILN_ERROR_MSG_MAX]; /* "open `x`" or "ctx: inner message" */
};

/*
 * Fill err (which may be NULL) and return -1. The message is formatted with
 * printf rules; errnum is kept apart so the caller can test it and main()
 * can append strerror().
 */
int kiln_error_set(struct kiln_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the message already in err with context: "ctx: old". Returns -1. */
int kiln_error_wrap(struct kiln_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "msg: strerror(errnum)", or "msg" when errnum is 0, into buf. */
const char *kiln_error_str(const struct kiln_error *err, char *buf, size_t len);

/* Print "prog: msg[: strerror]\n" to stderr. */
void kiln_error_print(const struct kiln_error *err, const char *prog);

#endif
