/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/error.h"
#include "tap.h"

static int fail_open(const char *path, struct kiln_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY);

	if (fd < 0)
		return kiln_error_set(err, errno, "open `%s`", path);
	return 0;
}

static int outer(struct kiln_error *err)
{
	if (fail_open("/nonexistent/kiln", err) < 0)
		return kiln_error_wrap(err, "load config %d", 7);
	return 0;
}

static int closed_fd = -1;

static void use_cleanup_close(void)
{
	cleanup_close int fd = open("/dev/null", O_RDONLY);

	closed_fd = fd;
}

static int steal_keeps_fd(void)
{
	cleanup_close int fd = open("/dev/null", O_RDONLY);

	return steal_fd(&fd);
}

static char *steal_keeps_ptr(void)
{
	cleanup_free char *p = strdup("kept");

	return steal_ptr(&p);
}

int main(void)
{
	struct kiln_error err = { 0 };
	char buf[1024];
	int fd;
	char *p;

	is_int(kiln_error_set(&err, ENOENT, "thing %s", "x"), -1,
	       "kiln_error_set returns -1");
	is_int(err.errnum, ENOENT, "errnum kept");
	ok(strcmp(err.msg, "thing x") == 0, "message formatted: %s", err.msg);
	is_int(kiln_error_set(NULL, EINVAL, "ignored"), -1,
	       "NULL err is allowed");

	is_int(outer(&err), -1, "wrapped error propagates");
	ok(strcmp(err.msg, "load config 7: open `/nonexistent/kiln`") == 0,
	   "wrap prefixes context: %s", err.msg);
	kiln_error_str(&err, buf, sizeof(buf));
	ok(strstr(buf, "No such file or directory") != NULL,
	   "str appends strerror: %s", buf);
	err.errnum = 0;
	kiln_error_str(&err, buf, sizeof(buf));
	ok(strcmp(buf, err.msg) == 0, "no strerror without errnum");

	/* a message longer than the buffer is cut, not overflowed */
	memset(buf, 'a', 900);
	buf[900] = '\0';
	kiln_error_set(&err, 0, "%s", buf);
	is_int(strlen(err.msg), KILN_ERROR_MSG_MAX - 1,
	       "long message truncated");
	kiln_error_wrap(&err, "ctx");
	is_int(strlen(err.msg), KILN_ERROR_MSG_MAX - 1, "long wrap truncated");

	use_cleanup_close();
	ok(closed_fd >= 0 && fcntl(closed_fd, F_GETFD) < 0 && errno == EBADF,
	   "cleanup_close closes at scope exit");
	fd = steal_keeps_fd();
	ok(fd >= 0 && fcntl(fd, F_GETFD) >= 0, "steal_fd keeps the fd open");
	close(fd);
	p = steal_keeps_ptr();
	ok(p != NULL && strcmp(p, "kept") == 0, "steal_ptr keeps the memory");
	free(p);
	return tap_done();
}
