/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_level = LOG_INFO;
static const char *log_prog = "kiln";
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

void log_set_level(enum log_level level)
{
	log_level = level;
}

void log_set_prog(const char *prog)
{
	log_prog = prog;
}

int log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	return 0;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[1024];
	struct timespec ts;
	int saved = errno, n, m;
	va_list ap;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(buf, sizeof(buf), "%s: [%ld.%06ld] %s: ", log_prog,
		     (long)ts.tv_sec, ts.tv_nsec / 1000, level_names[level]);
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	n = (m < 0) ? n
		    : (n + m > (int)sizeof(buf) - 2 ? (int)sizeof(buf) - 2
						    : n + m);
	buf[n++] = '\n';
	/* one write() per line so lines from several threads do not interleave */
	if (write(log_fd, buf, n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}
