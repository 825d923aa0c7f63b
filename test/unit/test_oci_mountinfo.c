/* SPDX-License-Identifier: Apache-2.0 */
/* oci/mountinfo.c: finding the image layers under a rootfs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/file.h"
#include "../../oci/mountinfo.h"
#include "tap.h"

/* As docker 20.10's overlay2 leaves it, with a mount on top elsewhere. */
static const char *docker_mi =
	"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"90 22 0:50 / /var/lib/docker/overlay2/abc/merged rw,relatime "
	"shared:40 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/"
	"AAA:/var/lib/docker/overlay2/l/BBB,upperdir=/var/lib/docker/overlay2/"
	"abc/diff,workdir=/var/lib/docker/overlay2/abc/work,xino=off\n"
	"91 90 0:51 / /var/lib/docker/overlay2/abc/merged/proc rw - proc proc "
	"rw\n";

static void test_docker(void)
{
	struct kiln_error err = { 0 };
	struct overlay_layers l;

	is_int(overlay_layers_parse(docker_mi,
				    "/var/lib/docker/overlay2/abc/merged", &l,
				    &err),
	       0, "docker's merged dir is an overlay");
	ok(l.n_lower == 2 &&
		   strcmp(l.lower[0], "/var/lib/docker/overlay2/l/AAA") == 0 &&
		   strcmp(l.lower[1], "/var/lib/docker/overlay2/l/BBB") == 0,
	   "its two layers, top first");
	ok(l.upper != NULL &&
		   strcmp(l.upper, "/var/lib/docker/overlay2/abc/diff") == 0 &&
		   strcmp(l.work, "/var/lib/docker/overlay2/abc/work") == 0,
	   "upperdir and workdir");
	overlay_layers_free(&l);
	is_int(overlay_layers_parse(docker_mi, "/", &l, &err), 1,
	       "an ext4 mount is not an overlay");
	is_int(overlay_layers_parse(docker_mi, "/var/lib/docker", &l, &err), 1,
	       "a plain directory is no mount point");
	is_int(overlay_layers_parse(docker_mi,
				    "/var/lib/docker/overlay2/abc/merged/proc",
				    &l, &err),
	       1, "proc under the rootfs is not the rootfs");
}

static void test_escapes_and_stacking(void)
{
	/* a space, a comma and a colon in layer paths; a tmpfs on top */
	static const char *mi = "1 0 0:1 / /r\\040x rw - overlay overlay "
				"rw,lowerdir=/a\\040b:"
				"/c\\134:d:/e\\054f,upperdir=/u\n"
				"2 0 0:2 / /s rw - overlay overlay "
				"rw,lowerdir=/x\n"
				"3 0 0:3 / /s rw - tmpfs tmpfs rw\n";
	struct kiln_error err = { 0 };
	struct overlay_layers l;

	is_int(overlay_layers_parse(mi, "/r x", &l, &err), 0,
	       "a mount point with an escaped space");
	ok(l.n_lower == 3 && strcmp(l.lower[0], "/a b") == 0 &&
		   strcmp(l.lower[1], "/c:d") == 0 &&
		   strcmp(l.lower[2], "/e,f") == 0,
	   "escaped space, colon and comma in layer paths");
	ok(l.work == NULL && strcmp(l.upper, "/u") == 0, "no workdir");
	overlay_layers_free(&l);
	is_int(overlay_layers_parse(mi, "/s", &l, &err), 1,
	       "the topmost mount counts: a tmpfs over an overlay");
}

static void test_unusable(void)
{
	static const char *rel = "1 0 0:1 / /m rw - overlay overlay "
				 "rw,lowerdir=l/A:l/B,"
				 "upperdir=abc/diff,workdir=abc/work\n";
	static const char *nolower = "1 0 0:1 / /m rw - overlay overlay rw\n";
	static const char *garbage = "x\n\n1 2 3\n1 0 0:1 / /m rw shared:1\n";
	struct kiln_error err = { 0 };
	struct overlay_layers l;

	is_int(overlay_layers_parse(rel, "/m", &l, &err), -1,
	       "relative layer paths cannot be used");
	ok(strstr(err.msg, "relative") != NULL && l.lower == NULL,
	   "  and say so: %s", err.msg);
	is_int(overlay_layers_parse(nolower, "/m", &l, &err), -1,
	       "an overlay without lowerdir");
	is_int(overlay_layers_parse(garbage, "/m", &l, &err), 1,
	       "malformed lines are skipped");
}

static void test_proc(void)
{
	struct kiln_error err = { 0 };
	struct overlay_layers l;
	size_t len = 0;
	char *t = file_read("/proc/self/mountinfo", 1u << 20, &len, &err);

	ok(t != NULL && len > 0 && strstr(t, " / ") != NULL, "file_read reads "
							     "/proc files, "
							     "whose size stat "
							     "does not tell");
	free(t);
	ok(overlay_layers_at("/proc", &l, &err) == 1, "this process's /proc is "
						      "no overlay");
	t = file_read("/proc/self/mountinfo", 8, &len, &err);
	ok(t == NULL && err.errnum == EFBIG, "a file over max: EFBIG");
}

int main(void)
{
	test_docker();
	test_escapes_and_stacking();
	test_unusable();
	test_proc();
	return tap_done();
}
