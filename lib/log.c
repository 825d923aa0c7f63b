/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* read by every logging thread, set by any: relaxed atomics */
static int log_level = LOG_INFO;
static const char *log_prog = "kiln";
static bool log_show_level = true;
static bool log_show_origin;
static bool log_json;
static int log_fd = STDERR_FILENO;
static pthread_mutex_t log_open_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "OFF", "ERROR", "WARN", "INFO",
					   "DEBUG" };

void log_set_level(enum log_level level)
{
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

void log_set_prog(const char *prog)
{
	__atomic_store_n(&log_prog, prog, __ATOMIC_RELAXED);
}

void log_set_show_level(bool show)
{
	__atomic_store_n(&log_show_level, show, __ATOMIC_RELAXED);
}

void log_set_show_origin(bool show)
{
	__atomic_store_n(&log_show_origin, show, __ATOMIC_RELAXED);
}

void log_set_json(bool json)
{
	__atomic_store_n(&log_json, json, __ATOMIC_RELAXED);
}

int log_level_parse(const char *name)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{ "off", LOG_OFF },	 { "error", LOG_ERROR },
		{ "warning", LOG_WARN }, { "warn", LOG_WARN },
		{ "info", LOG_INFO },	 { "debug", LOG_DEBUG },
		{ "trace", LOG_DEBUG },
	};

	if (name == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return (int)names[i].level;
	return -1;
}

int log_fileno(void)
{
	return __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
}

int log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	int cur, ret = 0;

	if (fd < 0)
		return -1;
	pthread_mutex_lock(&log_open_lock);
	cur = __atomic_load_n(&log_fd, __ATOMIC_RELAXED);
	if (cur == STDERR_FILENO) {
		/* stderr stays the process's own: the log moves to a new fd */
		__atomic_store_n(&log_fd, fd, __ATOMIC_RELEASE);
		fd = -1;
	} else if (dup3(fd, cur, O_CLOEXEC) < 0) {
		/*
		 * The number stays and only its file changes, atomically:
		 * closing it instead could let a racing write() land in
		 * whatever file next takes the number.
		 */
		ret = -1;
	}
	pthread_mutex_unlock(&log_open_lock);
	if (fd >= 0) {
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return ret;
}

/* JSON string content: quotes, backslashes and control bytes escaped */
static int json_escape(char *out, int room, const char *in)
{
	int n = 0;

	for (; *in != '\0' && n < room - 7; in++) {
		unsigned char c = (unsigned char)*in;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += snprintf(out + n, (size_t)(room - n), "\\u%04x",
				      c);
		} else {
			out[n++] = (char)c;
		}
	}
	return n;
}

/*
 * The line runc writes with --log-format json, which containerd's shims
 * and docker read back for the error they show: {"level", "msg", "time"}.
 */
static void log_msg_json(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const json_levels[] = { "off", "error", "warning",
						   "info", "debug" };
	char msg[1024], buf[1024 * 6 + 128], when[40];
	struct timespec ts;
	struct tm tm;
	int n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(buf, sizeof(buf), "{\"level\":\"%s\",\"msg\":\"",
		     json_levels[level]);
	n += json_escape(buf + n, (int)sizeof(buf) - n - 64, msg);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n,
		      "\",\"time\":\"%s.%09ldZ\"}\n", when, ts.tv_nsec);
	if (write(__atomic_load_n(&log_fd, __ATOMIC_ACQUIRE), buf, (size_t)n) <
	    0) {
		/* nowhere left to report it */
	}
}

void log_msg(enum log_level level, const char *file, int line, const char *fmt,
	     ...)
{
	char buf[1024];
	struct timespec ts;
	int saved = errno, n, m;
	va_list ap;

	if (level <= LOG_OFF || level > LOG_DEBUG ||
	    (int)level > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
		return;
	if (__atomic_load_n(&log_json, __ATOMIC_RELAXED)) {
		va_start(ap, fmt);
		log_msg_json(level, fmt, ap);
		va_end(ap);
		errno = saved;
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(buf, sizeof(buf), "%s: [%ld.%06ld] ",
		     __atomic_load_n(&log_prog, __ATOMIC_RELAXED),
		     (long)ts.tv_sec, ts.tv_nsec / 1000);
	if (__atomic_load_n(&log_show_level, __ATOMIC_RELAXED))
		n += snprintf(buf + n, sizeof(buf) - n,
			      "%s: ", level_names[level]);
	if (__atomic_load_n(&log_show_origin, __ATOMIC_RELAXED) &&
	    file != NULL) {
		const char *base = strrchr(file, '/');

		n += snprintf(buf + n, sizeof(buf) - n,
			      "%s:%d: ", base != NULL ? base + 1 : file, line);
	}
	/* a long prog or file name: the prefix is cut, the line stays one */
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	n = (m < 0) ? n
		    : (n + m > (int)sizeof(buf) - 2 ? (int)sizeof(buf) - 2
						    : n + m);
	buf[n++] = '\n';
	/* one write() per line so lines from several threads do not interleave */
	if (write(__atomic_load_n(&log_fd, __ATOMIC_ACQUIRE), buf, n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}
