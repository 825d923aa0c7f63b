/* SPDX-License-Identifier: Apache-2.0 */
/* vmm/jail.c: the --jail option and the bind plan (the pure parts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/config.h"
#include "../../vmm/jail.h"
#include "tap.h"

static void bad(const char *spec, const char *want)
{
	struct kiln_error err = { 0 };
	struct jail_opts j = { 0 };

	is_int(jail_parse(&j, spec, &err), -1, "refused: --jail %s", spec);
	ok(strstr(err.msg, want) != NULL, "  message `%s` has `%s`", err.msg,
	   want);
	ok(!j.enabled, "  not enabled");
	jail_opts_destroy(&j);
}

static void check_parse(void)
{
	struct kiln_error err = { 0 };
	struct jail_opts j = { 0 };

	is_int(jail_parse(&j,
			  "root=/srv/jail/vm1,uid=2000000001,gid=2000000002",
			  &err),
	       0, "root, uid and gid");
	ok(j.enabled && strcmp(j.root, "/srv/jail/vm1") == 0 &&
		   j.uid == 2000000001u && j.gid == 2000000002u && j.nkeep == 0,
	   "  parsed");
	is_int(jail_parse(&j, "uid=5,keep-fds=7:9,gid=6,root=r", &err), 0,
	       "any order, keep-fds");
	ok(j.nkeep == 2 && j.keep_fds[0] == 7 && j.keep_fds[1] == 9 &&
		   strcmp(j.root, "r") == 0 && j.uid == 5 && j.gid == 6,
	   "  parsed, a second --jail replaces the first");
	jail_opts_destroy(&j);

	bad("root=/j,uid=5", "needs root=DIR,uid=N,gid=N");
	bad("uid=5,gid=5", "needs root=DIR");
	bad("root=/j,uid=0,gid=5", "not root");
	bad("root=/j,uid=5,gid=0", "not root");
	bad("root=/j,uid=-1,gid=5", "not a number");
	bad("root=/j,uid=4294967295,gid=5", "not a number");
	bad("root=/j,uid=5x,gid=5", "not a number");
	bad("root=,uid=5,gid=5", "empty");
	bad("root=/j,uid=5,gid=5,user=x", "unknown key `user`");
	bad("root=/j,uid=5,gid=5,ro", "not key=value");
	bad("root=/j,uid=5,gid=5,keep-fds=3:x", "not a number");
	bad("root=/j,uid=5,gid=5,keep-fds=1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:"
	    "16:17",
	    "at most 16");
}

static const struct jail_bind *find(const struct jail_plan *p, const char *path)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].path, path) == 0)
			return &p->v[i];
	return NULL;
}

static void check_plan(void)
{
	struct kiln_error err = { 0 };
	struct jail_plan p = { 0 };
	struct vm_config c;
	const struct jail_bind *b;

	vm_config_init(&c);
	c.kernel_path = strdup("/images/vmlinux");
	c.initrd_path = strdup("initramfs");
	c.ndrives = 2;
	c.drives[0] = (struct vm_drive){ .id = strdup("root"),
					 .path = strdup("/images//"
							"rootfs.ext4/"),
					 .read_only = true };
	c.drives[1] = (struct vm_drive){ .id = strdup("data"),
					 .path = strdup("./vm/data.img") };
	c.vsock = (struct vm_vsock){ .enabled = true,
				     .cid = 3,
				     .uds_path = strdup("/run/vm/v.sock") };
	c.nfs = 1;
	c.fs[0] = (struct vm_fs){ .id = strdup("f"),
				  .tag = strdup("t"),
				  .socket_path = strdup("/run/vm/fs.sock") };
	is_int(jail_plan_config(&p, &c, "api.sock", "/run/tpl/api.sock",
				"/work/x", &err),
	       0, "a whole configuration");
	jail_plan_finish(&p);
	b = find(&p, "/images/vmlinux");
	ok(b && b->kind == JAIL_FILE_RO && !b->skip, "kernel: a read-only "
						     "file");
	b = find(&p, "/work/x/initramfs");
	/* relative: the cwd, which the API socket's folder binds whole */
	ok(b && b->kind == JAIL_FILE_RO && b->skip, "a relative initramfs");
	b = find(&p, "/images/rootfs.ext4");
	ok(b && b->kind == JAIL_FILE_RO, "a read-only drive, path normalised");
	b = find(&p, "/work/x/vm/data.img");
	ok(b && b->kind == JAIL_FILE_RW && b->skip, "a drive under the API "
						    "socket's folder: seen "
						    "through it");
	b = find(&p, "/work/x");
	ok(b && b->kind == JAIL_DIR_RW && !b->skip, "the API socket's folder "
						    "(relative: the cwd)");
	b = find(&p, "/run/vm");
	ok(b && b->kind == JAIL_DIR_RW && !b->skip, "the vsock folder");
	b = find(&p, "/run/vm/fs.sock");
	ok(b && b->skip, "a virtio-fs socket in the vsock folder: skipped");
	b = find(&p, "/run/tpl/api.sock");
	ok(b && b->kind == JAIL_FILE_RW && !b->skip, "the template socket");
	for (size_t i = 1; i < p.n; i++)
		ok(strlen(p.v[i - 1].path) <= strlen(p.v[i].path),
		   "shortest first: %s, %s", p.v[i - 1].path, p.v[i].path);
	jail_plan_destroy(&p);

	is_int(jail_plan_add(&p, "/a/../etc/shadow", "/", JAIL_FILE_RO, "drive",
			     &err),
	       -1, "a `..` component is refused");
	ok(strstr(err.msg, "`..`") != NULL, "  says so: %s", err.msg);
	is_int(jail_plan_add(&p, "..", "/w", JAIL_FILE_RO, "drive", &err), -1,
	       "`..` alone too");
	is_int(jail_plan_add(&p, "a..b/./c/.", "/w", JAIL_FILE_RO, "drive",
			     &err),
	       0, "`..` inside a name is a name");
	ok(p.n == 1 && strcmp(p.v[0].path, "/w/a..b/c") == 0,
	   "  normalised: %s", p.n ? p.v[0].path : "");
	is_int(jail_plan_add(&p, "/x", "/w", JAIL_FILE_RO, "drive", &err), 0,
	       "the same path");
	is_int(jail_plan_add(&p, "/x", "/w", JAIL_DIR_RW, "folder", &err), 0,
	       "named as a folder too");
	is_int(jail_plan_add(&p, "/", "/w", JAIL_DIR_RO, "root", &err), 0, "/");
	jail_plan_finish(&p);
	ok(strcmp(p.v[0].path, "/") == 0 && !p.v[0].skip, "`/` stays `/` and "
							  "comes first");
	for (size_t i = 1; i < p.n; i++)
		ok(p.v[i].skip, "  everything else is under it: %s",
		   p.v[i].path);
	jail_plan_destroy(&p);
	is_int(jail_plan_add(&p, "/x", "/w", JAIL_FILE_RO, "drive", &err), 0,
	       "the same path again");
	is_int(jail_plan_add(&p, "/x/", "/w", JAIL_DIR_RW, "folder", &err), 0,
	       "as a folder");
	jail_plan_finish(&p);
	ok(p.n == 2 && p.v[0].kind == JAIL_DIR_RW && !p.v[0].skip &&
		   p.v[1].skip,
	   "the folder is bound, the file skipped");
	jail_plan_destroy(&p);
	is_int(jail_plan_add(&p, "", "/w", JAIL_FILE_RO, "kernel", &err), -1,
	       "an empty path");
	vm_config_destroy(&c);
}

int main(void)
{
	check_parse();
	check_plan();
	return tap_done();
}
