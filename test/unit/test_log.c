/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The logger: the default line format (integration tests grep it), level
 * filtering, show_level / show_origin, level names, and log_open() while
 * other threads log: every line whole, in one file or the other.
 */
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "tap.h"

#define THREADS 2
#define LINES	2000

static char dir[] = "/tmp/kiln-log-test.XXXXXX";

/* The file's lines from line number *seen on, matched against re. */
static int lines_since(const char *path, int *seen, const char *re, char *last,
		       size_t last_len)
{
	char buf[2048];
	regex_t rx;
	int n = 0, i = 0, bad = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return -1;
	regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
	while (fgets(buf, sizeof(buf), f) != NULL) {
		if (i++ < *seen)
			continue;
		n++;
		if (regexec(&rx, buf, 0, NULL, 0) != 0) {
			bad++;
			printf("# unexpected line: %s", buf);
		}
		if (last != NULL)
			snprintf(last, last_len, "%.*s",
				 (int)strcspn(buf, "\n"), buf);
	}
	*seen = i;
	regfree(&rx);
	fclose(f);
	return bad ? -bad : n;
}

static void test_format(const char *path)
{
	int seen = 0, line;
	char last[2048];

	log_set_prog("kiln-vmm");
	log_set_level(LOG_INFO);
	log_error("disk `%s` is %d bytes", "a.img", 42);
	is_int(lines_since(path, &seen,
			   "^kiln-vmm: \\[[0-9]+\\.[0-9]{6}\\] ERROR: disk "
			   "`a.img` is 42 bytes\n$",
			   last, sizeof(last)),
	       1, "default format unchanged: %s", last);
	log_warn("w");
	log_info("i");
	is_int(lines_since(path, &seen,
			   "^kiln-vmm: \\[[0-9.]+\\] (WARN: w|INFO: i)\n$",
			   NULL, 0),
	       2, "WARN and INFO names");

	log_debug("not shown");
	is_int(lines_since(path, &seen, ".", NULL, 0), 0,
	       "INFO level: debug filtered");
	log_set_level(LOG_WARN);
	log_info("not shown");
	log_warn("shown");
	is_int(lines_since(path, &seen, "WARN: shown", NULL, 0), 1,
	       "WARN level: info filtered, warn shown");
	log_set_level(LOG_DEBUG);
	log_debug("dbg");
	is_int(lines_since(path, &seen, "DEBUG: dbg\n$", NULL, 0), 1,
	       "DEBUG level: debug shown");
	log_set_level(LOG_OFF);
	log_error("not shown");
	is_int(lines_since(path, &seen, ".", NULL, 0), 0,
	       "OFF: not even errors");
	log_set_level(LOG_INFO);

	log_set_show_level(false);
	log_error("bare");
	is_int(lines_since(path, &seen, "^kiln-vmm: \\[[0-9.]+\\] bare\n$",
			   last, sizeof(last)),
	       1, "show_level off: no level: %s", last);
	log_set_show_origin(true);
	line = __LINE__ + 1;
	log_error("here");
	is_int(lines_since(path, &seen,
			   "^kiln-vmm: \\[[0-9.]+\\] test_log\\.c:[0-9]+: "
			   "here\n$",
			   last, sizeof(last)),
	       1, "show_origin: short file name and line: %s", last);
	ok(strstr(last, "test_log.c:") != NULL &&
		   atoi(strstr(last, "test_log.c:") + 11) == line,
	   "the origin is the caller's line %d", line);
	log_set_show_level(true);
	log_warn("both");
	is_int(lines_since(path, &seen,
			   "^kiln-vmm: \\[[0-9.]+\\] WARN: "
			   "test_log\\.c:[0-9]+: "
			   "both\n$",
			   last, sizeof(last)),
	       1, "show_level and show_origin: %s", last);
	log_set_show_origin(false);
	log_info("back");
	is_int(lines_since(path, &seen,
			   "^kiln-vmm: \\[[0-9.]+\\] INFO: back\n$", NULL, 0),
	       1, "both options back to default: default format");
}

static void test_parse(void)
{
	is_int(log_level_parse("Error"), LOG_ERROR, "Error");
	is_int(log_level_parse("Warning"), LOG_WARN, "Warning");
	is_int(log_level_parse("warn"), LOG_WARN, "warn");
	is_int(log_level_parse("INFO"), LOG_INFO, "INFO");
	is_int(log_level_parse("Debug"), LOG_DEBUG, "Debug");
	is_int(log_level_parse("Trace"), LOG_DEBUG, "Trace is Debug");
	is_int(log_level_parse("Off"), LOG_OFF, "Off");
	is_int(log_level_parse("Verbose"), -1, "unknown: -1");
	is_int(log_level_parse(""), -1, "empty: -1");
	is_int(log_level_parse(NULL), -1, "NULL: -1");
}

static void *log_thread(void *arg)
{
	long id = (long)arg;

	for (int i = 0; i < LINES; i++)
		log_info("thread %ld line %d", id, i);
	return NULL;
}

static void test_reopen(const char *a, const char *b)
{
	const char *re = "^kiln-vmm: \\[[0-9.]+\\] INFO: thread [0-9] line "
			 "[0-9]+\n$";
	pthread_t th[THREADS];
	int sa = 0, sb = 0, na, nb;

	lines_since(a, &sa, ".", NULL, 0);
	for (long i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, log_thread, (void *)i);
	/* switch files half way: some lines in each */
	for (int i = 0, seen = sa; i < 2000; i++) {
		int s = seen;

		lines_since(a, &s, ".", NULL, 0);
		if (s - sa >= LINES / 2)
			break;
		usleep(1000);
	}
	ok(log_open(b) == 0, "log_open while %d threads log", THREADS);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	na = lines_since(a, &sa, re, NULL, 0);
	nb = lines_since(b, &sb, re, NULL, 0);
	ok(na >= 0 && nb >= 0,
	   "every line whole (%d in the old file, %d in "
	   "the new)",
	   na, nb);
	is_int(na + nb, THREADS * LINES, "no line lost");
	ok(log_open(a) == 0, "and back");
	log_info("last");
	is_int(lines_since(a, &sa, "INFO: last", NULL, 0), 1,
	       "a third open logs to the new file");
}

/* runc's JSON lines: what containerd's shims read back for the error. */
static void test_json(const char *path)
{
	int seen = 0;
	char last[2048];

	log_open(path);
	lines_since(path, &seen, ".", NULL, 0);
	log_set_level(LOG_INFO);
	log_set_json(true);
	log_error("create `%s`: \"quoted\"\tand\\back\nslash", "c1");
	log_debug("filtered");
	log_set_json(false);
	is_int(lines_since(path, &seen,
			   "^\\{\"level\":\"error\",\"msg\":\"[^\n]*\","
			   "\"time\":"
			   "\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{9}"
			   "Z\"\\}\n",
			   last, sizeof(last)),
	       1, "one JSON line with level, msg and time, filtered by level");
	ok(strstr(last, "create `c1`: \\\"quoted\\\"\\u0009and\\\\back\\u000a"
			"slash") != NULL,
	   "quotes, backslashes and control bytes escaped: %s", last);
}

int main(void)
{
	char a[300], b[300], cmd[300];
	int rc;

	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	snprintf(a, sizeof(a), "%s/a.log", dir);
	snprintf(b, sizeof(b), "%s/b.log", dir);
	if (log_open(a) < 0) {
		printf("Bail out! log_open\n");
		return 1;
	}
	test_format(a);
	test_parse();
	test_reopen(a, b);
	test_json(b);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	rc = tap_done();
	if (system(cmd) != 0)
		return 1;
	return rc;
}
