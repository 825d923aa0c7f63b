/* SPDX-License-Identifier: Apache-2.0 */
/* oci/state.c: ids, the state directory and atomic writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../oci/state.h"
#include "tap.h"

static void test_ids(void)
{
	static const char *good[] = { "a",     "abc123",  "my_ctr.1+x-y",
				      "_lead", ".hidden", "0" };
	static const char *bad[] = { "",    ".",    "..", "a/b", "../x",
				     "a b", "a\nb", "é",  "x:y" };
	char longest[OCI_ID_MAX + 2];
	struct kiln_error err = { 0 };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(oci_id_check(good[i], &err) == 0, "id `%s` accepted",
		   good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		ok(oci_id_check(bad[i], &err) < 0 && err.errnum == EINVAL &&
			   strstr(err.msg, "container id") != NULL,
		   "id #%zu refused: %s", i, err.msg);
	}
	memset(longest, 'a', OCI_ID_MAX);
	longest[OCI_ID_MAX] = '\0';
	ok(oci_id_check(longest, &err) == 0, "an id of %d bytes accepted",
	   OCI_ID_MAX);
	longest[OCI_ID_MAX] = 'a';
	longest[OCI_ID_MAX + 1] = '\0';
	ok(oci_id_check(longest, &err) < 0 &&
		   strstr(err.msg, "longer than") != NULL,
	   "one byte longer refused");
}

static void test_state_dir(void)
{
	char tmp[] = "/tmp/kiln-state-XXXXXX", root[128], buf[256];
	struct kiln_error err = { 0 };
	struct stat st;
	int fd, fd2;
	ssize_t n;

	if (!ok(mkdtemp(tmp) != NULL, "temporary folder"))
		return;
	/* a root that does not exist yet, two levels deep */
	snprintf(root, sizeof(root), "%s/run/kiln", tmp);
	fd = oci_state_dir_create(root, "c1", &err);
	ok(fd >= 0, "state dir created with its parents (%s)", err.msg);
	ok(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0700, "state dir is "
								"0700");
	fd2 = oci_state_dir_create(root, "c1", &err);
	ok(fd2 < 0 && err.errnum == EEXIST &&
		   strstr(err.msg, "already exists") != NULL,
	   "a second create of the same id: %s", err.msg);
	ok(oci_state_dir_create(root, "../evil", &err) < 0 &&
		   err.errnum == EINVAL,
	   "an unsafe id creates nothing");
	ok(access("/tmp/evil", F_OK) != 0, "nothing outside the root");

	ok(oci_write_atomic(fd, "state.json", "{\"a\":1}", 7, 0600, &err) == 0,
	   "atomic write");
	ok(oci_write_atomic(fd, "state.json", "{}", 2, 0600, &err) == 0, "atomi"
									 "c "
									 "overw"
									 "rit"
									 "e");
	fd2 = openat(fd, "state.json", O_RDONLY);
	n = read(fd2, buf, sizeof(buf));
	ok(n == 2 && memcmp(buf, "{}", 2) == 0, "the newest content, whole");
	close(fd2);
	ok(faccessat(fd, ".state.json.tmp", F_OK, 0) != 0, "no temporary file "
							   "left");
	/* a leftover temporary of a killed writer does not get in the way */
	close(openat(fd, ".x.tmp", O_WRONLY | O_CREAT, 0600));
	ok(oci_write_atomic(fd, "x", "1", 1, 0600, &err) == 0 &&
		   faccessat(fd, ".x.tmp", F_OK, 0) != 0,
	   "a stale temporary is replaced");
	close(fd);

	fd = oci_state_dir_open(root, "c1", &err);
	ok(fd >= 0, "open an existing state dir");
	close(fd);
	ok(oci_state_dir_open(root, "nope", &err) < 0 && err.errnum == ENOENT &&
		   strstr(err.msg, "container `nope` does not exist") != NULL,
	   "open an unknown id: %s", err.msg);
	ok(oci_state_dir_remove(root, "c1", &err) == 0,
	   "remove the state dir and its files (%s)", err.msg);
	snprintf(buf, sizeof(buf), "%s/c1", root);
	ok(access(buf, F_OK) != 0, "it is gone");
	ok(oci_state_dir_remove(root, "c1", &err) < 0 && err.errnum == ENOENT,
	   "removing it again: ENOENT");
	rmdir(root);
	snprintf(root, sizeof(root), "%s/run", tmp);
	rmdir(root);
	rmdir(tmp);
}

int main(void)
{
	test_ids();
	test_state_dir();
	return tap_done();
}
