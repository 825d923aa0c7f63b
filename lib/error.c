/* SPDX-License-Identifier: Apache-2.0 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kiln_error_set(struct kiln_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->errnum = errnum;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int kiln_error_wrap(struct kiln_error *err, const char *fmt, ...)
{
	char inner[KILN_ERROR_MSG_MAX];
	size_t n, m;
	va_list ap;

	if (err == NULL)
		return -1;
	memcpy(inner, err->msg, sizeof(inner));
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	if (inner[0] == '\0' || n + 2 >= sizeof(err->msg))
		return -1;
	/* "ctx: inner", cut to fit: the context matters more than the tail */
	memcpy(err->msg + n, ": ", 2);
	n += 2;
	m = strnlen(inner, sizeof(inner) - 1);
	if (m > sizeof(err->msg) - 1 - n)
		m = sizeof(err->msg) - 1 - n;
	memcpy(err->msg + n, inner, m);
	err->msg[n + m] = '\0';
	return -1;
}

const char *kiln_error_str(const struct kiln_error *err, char *buf, size_t len)
{
	if (err->errnum != 0)
		snprintf(buf, len, "%s: %s", err->msg, strerror(err->errnum));
	else
		snprintf(buf, len, "%s", err->msg);
	return buf;
}

void kiln_error_print(const struct kiln_error *err, const char *prog)
{
	char buf[KILN_ERROR_MSG_MAX + 128];

	fprintf(stderr, "%s: %s\n", prog,
		kiln_error_str(err, buf, sizeof(buf)));
}
