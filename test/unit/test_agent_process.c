/* SPDX-License-Identifier: Apache-2.0 */
/* kiln-agent's checks of a Process and of a container's mounts, before
 * anything is cloned: what is refused, with which code and message. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../../agent/agent.h"
#include "../../agent/mount.h"
#include "tap.h"

static char *sh_args[] = { "sh", "-c", "true" };

static void proc_init(Kiln__Agent__V1__Process *p)
{
	kiln__agent__v1__process__init(p);
	p->n_args = 3;
	p->args = sh_args;
}

/* from_msg's result code and message */
static int check(const Kiln__Agent__V1__Process *p, struct proc_spec *s,
		 struct kiln_error *err)
{
	int r;

	memset(err, 0, sizeof(*err));
	r = proc_spec_from_msg(p, s, err);
	return r;
}

static void test_args_env_cwd(void)
{
	Kiln__Agent__V1__Process p;
	struct proc_spec s;
	struct kiln_error err;
	char *env[] = { "A=1", "PATH=/opt/bin:/bin", "EMPTY=" };
	char *bad_env[] = { "NOEQUALS" };
	char *empty0[] = { "" };

	proc_init(&p);
	is_int(check(NULL, &s, &err), -TTRPC_INVALID_ARGUMENT, "no process");
	proc_spec_free(&s);
	p.n_args = 0;
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "no args");
	ok(strcmp(err.msg, "process.args is empty") == 0, "message: %s",
	   err.msg);
	proc_spec_free(&s);
	p.n_args = 1;
	p.args = empty0;
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "args[0] empty");
	proc_spec_free(&s);

	proc_init(&p);
	p.n_env = 3;
	p.env = env;
	is_int(check(&p, &s, &err), 0, "args and env");
	ok(s.argv[3] == NULL && strcmp(s.argv[2], "true") == 0, "argv "
								"NULL-"
								"terminated");
	ok(s.envp[3] == NULL && strcmp(s.envp[2], "EMPTY=") == 0, "envp "
								  "exactly as "
								  "given");
	ok(strcmp(s.path, "/opt/bin:/bin") == 0, "PATH from env: %s", s.path);
	ok(strcmp(s.cwd, "/") == 0, "cwd defaults to /");
	proc_spec_free(&s);

	proc_init(&p);
	is_int(check(&p, &s, &err), 0, "no env");
	ok(strstr(s.path, "/usr/bin") != NULL, "default PATH");
	proc_spec_free(&s);

	p.n_env = 1;
	p.env = bad_env;
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "env without =");
	proc_spec_free(&s);

	proc_init(&p);
	p.cwd = "relative/dir";
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "relative cwd");
	ok(strstr(err.msg, "relative/dir") != NULL, "names it: %s", err.msg);
	proc_spec_free(&s);
	p.cwd = "/srv/../etc";
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "cwd with ..");
	proc_spec_free(&s);
}

static void test_user(void)
{
	Kiln__Agent__V1__Process p;
	Kiln__Agent__V1__User u;
	struct proc_spec s;
	struct kiln_error err;
	uint32_t gids[SPEC_GROUPS_MAX];

	for (size_t i = 0; i < SPEC_GROUPS_MAX; i++)
		gids[i] = (uint32_t)i;
	proc_init(&p);
	kiln__agent__v1__user__init(&u);
	p.user = &u;
	u.uid = 1000;
	u.gid = 1001;
	u.n_additional_gids = 2;
	u.additional_gids = gids + 10;
	u.has_umask = true;
	u.umask = 027;
	is_int(check(&p, &s, &err), 0, "uid, gid, groups, umask");
	ok(s.uid == 1000 && s.gid == 1001 && s.ngroups == 2 &&
		   s.groups[0] == 10 && s.groups[1] == 11,
	   "ids and groups kept");
	ok(s.has_umask && s.umask == 027, "umask kept");
	ok(s.username == NULL, "no user name");
	proc_spec_free(&s);
	u.umask = 01000;
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "umask > 0777");
	proc_spec_free(&s);
	u.umask = 022;
	u.n_additional_gids = SPEC_GROUPS_MAX;
	u.additional_gids = gids;
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "too many groups");
	proc_spec_free(&s);
	u.n_additional_gids = 0;
	u.username = "alice";
	is_int(check(&p, &s, &err), 0, "a user name");
	ok(s.username != NULL && strcmp(s.username, "alice") == 0, "kept");
	proc_spec_free(&s);
	u.username = "al:ice";
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "name with :");
	proc_spec_free(&s);
}

static void test_rlimits_caps(void)
{
	Kiln__Agent__V1__Process p;
	Kiln__Agent__V1__Rlimit rl, *rls[1] = { &rl };
	Kiln__Agent__V1__Capabilities caps;
	struct proc_spec s;
	struct kiln_error err;
	char *bnd[] = { "CAP_CHOWN", "CAP_KILL" }, *bad[] = { "CAP_BOGUS" };

	proc_init(&p);
	kiln__agent__v1__rlimit__init(&rl);
	p.n_rlimits = 1;
	p.rlimits = rls;
	rl.type = "RLIMIT_NOFILE";
	rl.soft = 123;
	rl.hard = 456;
	is_int(check(&p, &s, &err), 0, "RLIMIT_NOFILE");
	ok(s.nrlimits == 1 && s.rlimits[0].resource == RLIMIT_NOFILE &&
		   s.rlimits[0].rl.rlim_cur == 123 &&
		   s.rlimits[0].rl.rlim_max == 456,
	   "its values");
	proc_spec_free(&s);
	rl.soft = 457;
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "soft > hard");
	ok(strstr(err.msg, "RLIMIT_NOFILE") != NULL, "names it: %s", err.msg);
	proc_spec_free(&s);
	rl.type = "RLIMIT_BOGUS";
	rl.soft = 1;
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "unknown rlimit");
	ok(strstr(err.msg, "RLIMIT_BOGUS") != NULL, "names it: %s", err.msg);
	proc_spec_free(&s);

	proc_init(&p);
	is_int(check(&p, &s, &err), 0, "no capabilities");
	ok(s.cap_bounding == spec_cap_default_mask() &&
		   s.cap_effective == s.cap_bounding &&
		   s.cap_permitted == s.cap_bounding && s.cap_ambient == 0,
	   "the OCI default set");
	proc_spec_free(&s);
	kiln__agent__v1__capabilities__init(&caps);
	p.capabilities = &caps;
	caps.n_bounding = caps.n_effective = caps.n_permitted = 2;
	caps.bounding = caps.effective = caps.permitted = bnd;
	is_int(check(&p, &s, &err), 0, "two capabilities");
	ok(s.cap_bounding == ((1ull << CAP_CHOWN) | (1ull << CAP_KILL)) &&
		   s.cap_inheritable == 0,
	   "exactly those");
	proc_spec_free(&s);
	caps.n_ambient = 1;
	caps.ambient = bad;
	is_int(check(&p, &s, &err), -TTRPC_INVALID_ARGUMENT, "unknown cap");
	ok(strstr(err.msg, "CAP_BOGUS") != NULL, "names it: %s", err.msg);
	proc_spec_free(&s);
}

static void test_mounts(void)
{
	Kiln__Agent__V1__CreateContainerRequest req;
	Kiln__Agent__V1__Mount m, *ms[1] = { &m };
	char *opts[] = { "rbind", "ro" };
	struct mount_plan plan;
	struct kiln_error err = { 0 };

	kiln__agent__v1__create_container_request__init(&req);
	kiln__agent__v1__mount__init(&m);
	req.n_mounts = 1;
	req.mounts = ms;
	m.destination = "/data";
	m.type = "bind";
	m.source = "/run/x";
	m.n_options = 2;
	m.options = opts;
	is_int(mount_plan_init(&plan, "/run/kiln/c/a", &req, &err), 0,
	       "a bind mount");
	ok(strcmp(plan.root, "/run/kiln/c/a/rootfs") == 0, "root %s",
	   plan.root);
	ok(plan.nmounts == 1 && plan.mounts[0].opts.bind &&
		   plan.mounts[0].opts.recursive &&
		   plan.mounts[0].opts.flags == MS_RDONLY,
	   "rbind, ro");
	mount_plan_free(&plan);
	m.source = "relative";
	is_int(mount_plan_init(&plan, "/d", &req, &err),
	       -TTRPC_INVALID_ARGUMENT, "relative bind source");
	mount_plan_free(&plan);
	m.source = "/x";
	m.destination = "data";
	is_int(mount_plan_init(&plan, "/d", &req, &err),
	       -TTRPC_INVALID_ARGUMENT, "relative destination");
	mount_plan_free(&plan);
	m.destination = "/data";
	m.type = "";
	m.n_options = 0;
	is_int(mount_plan_init(&plan, "/d", &req, &err),
	       -TTRPC_INVALID_ARGUMENT, "no type");
	mount_plan_free(&plan);
	req.n_mounts = MOUNTS_MAX + 1;
	is_int(mount_plan_init(&plan, "/d", &req, &err),
	       -TTRPC_INVALID_ARGUMENT, "too many mounts");
	mount_plan_free(&plan);
	req.n_mounts = 0;
	req.hostname = "bad host";
	is_int(mount_plan_init(&plan, "/d", &req, &err),
	       -TTRPC_INVALID_ARGUMENT, "bad hostname");
	mount_plan_free(&plan);
	req.hostname = "box1";
	is_int(mount_plan_init(&plan, "/d", &req, &err), 0, "hostname");
	ok(plan.hostname != NULL && strcmp(plan.hostname, "box1") == 0, "kept");
	mount_plan_free(&plan);
}

/* ---- the image's /etc/passwd and /etc/group ---------------------------- */

static char uroot[PATH_MAX];   /* a container root of our own */
static char outside[PATH_MAX]; /* a passwd outside it */

/* An open of a FIFO that blocks is the bug: fail, never hang. */
static void on_alarm(int sig)
{
	static const char msg[] = "not ok - the lookup blocked for 10 s (a "
				  "FIFO opened without O_NONBLOCK?)\n";

	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(1);
}

static void uwrite(const char *rel, const char *text)
{
	char p[PATH_MAX * 2];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", uroot, rel);
	unlink(p);
	f = fopen(p, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		printf("# setup %s: %s\n", p, strerror(errno));
}

static void uclear(const char *rel)
{
	char p[PATH_MAX * 2];

	snprintf(p, sizeof(p), "%s/%s", uroot, rel);
	if (unlink(p) < 0 && errno == EISDIR)
		rmdir(p);
	rmdir(p);
}

/* resolve user name against uroot; the code, err filled */
static int resolve(const char *name, struct proc_spec *s,
		   struct kiln_error *err)
{
	Kiln__Agent__V1__Process p;
	Kiln__Agent__V1__User u;
	int fd, r;

	proc_init(&p);
	kiln__agent__v1__user__init(&u);
	p.user = &u;
	u.username = (char *)name;
	memset(err, 0, sizeof(*err));
	r = proc_spec_from_msg(&p, s, err);
	if (r < 0)
		return r;
	fd = open(uroot, O_PATH | O_DIRECTORY | O_CLOEXEC);
	alarm(10);
	r = proc_spec_resolve_user(s, fd, err);
	alarm(0);
	close(fd);
	return r;
}

static void test_user_files(void)
{
	struct proc_spec s;
	struct kiln_error err;
	char p[PATH_MAX * 2], rel[PATH_MAX * 2];
	int fd;

	signal(SIGALRM, on_alarm);
	snprintf(uroot, sizeof(uroot), "/tmp/kiln-test-root-%d", (int)getpid());
	snprintf(outside, sizeof(outside), "/tmp/kiln-test-passwd-%d",
		 (int)getpid());
	mkdir(uroot, 0755);
	snprintf(p, sizeof(p), "%s/etc", uroot);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/lib", uroot);
	mkdir(p, 0755);

	uwrite("etc/passwd", "root:x:0:0::/root:/bin/sh\n"
			     "alice:x:1000:1001::/home/alice:/bin/sh\n");
	uwrite("etc/group", "wheel:x:10:alice\nusers:x:100:bob,alice\n");
	is_int(resolve("alice", &s, &err), 0, "alice from passwd and group");
	ok(s.uid == 1000 && s.gid == 1001 && s.ngroups == 2 &&
		   s.groups[0] == 10 && s.groups[1] == 100,
	   "uid %u gid %u, %zu groups", s.uid, s.gid, s.ngroups);
	proc_spec_free(&s);

	/* a FIFO: an open without O_NONBLOCK waits for a writer forever */
	uclear("etc/group");
	snprintf(p, sizeof(p), "%s/etc/group", uroot);
	mkfifo(p, 0644);
	is_int(resolve("alice", &s, &err), -TTRPC_FAILED_PRECONDITION,
	       "etc/group a FIFO: refused at once");
	ok(strstr(err.msg, "etc/group is a FIFO, not a regular file") &&
		   strstr(err.msg, "alice"),
	   "names it: %s", err.msg);
	proc_spec_free(&s);
	uwrite("etc/group", "wheel:x:10:alice\n");
	uclear("etc/passwd");
	snprintf(p, sizeof(p), "%s/etc/passwd", uroot);
	mkfifo(p, 0644);
	is_int(resolve("alice", &s, &err), -TTRPC_FAILED_PRECONDITION,
	       "etc/passwd a FIFO: refused at once");
	ok(strstr(err.msg, "etc/passwd is a FIFO, not a regular file") != NULL,
	   "names it: %s", err.msg);
	proc_spec_free(&s);
	is_int(resolve("1000", &s, &err), -TTRPC_FAILED_PRECONDITION,
	       "a numeric name too: the file is there, but not a file");
	proc_spec_free(&s);

	/* a directory */
	uclear("etc/passwd");
	snprintf(p, sizeof(p), "%s/etc/passwd", uroot);
	mkdir(p, 0755);
	is_int(resolve("alice", &s, &err), -TTRPC_FAILED_PRECONDITION,
	       "etc/passwd a directory");
	ok(strstr(err.msg, "is a directory, not a regular file") != NULL,
	   "names it: %s", err.msg);
	proc_spec_free(&s);
	uclear("etc/passwd");

	/* too large: alice comes first, the rest pads it past the limit */
	uwrite("etc/passwd", "alice:x:1000:1001::/home/alice:/bin/sh\n");
	snprintf(p, sizeof(p), "%s/etc/passwd", uroot);
	if (truncate(p, PROC_USER_FILE_MAX + 1) < 0)
		printf("# setup truncate: %s\n", strerror(errno));
	is_int(resolve("alice", &s, &err), -TTRPC_FAILED_PRECONDITION,
	       "etc/passwd of %u bytes refused", PROC_USER_FILE_MAX + 1);
	ok(strstr(err.msg, "over 1048576") != NULL && err.errnum == EFBIG,
	   "names the limit: %s", err.msg);
	proc_spec_free(&s);
	if (truncate(p, PROC_USER_FILE_MAX - 1) < 0)
		printf("# setup truncate: %s\n", strerror(errno));
	is_int(resolve("alice", &s, &err), 0, "1 MiB - 1 is read");
	ok(s.uid == 1000, "alice found: %u", s.uid);
	proc_spec_free(&s);

	/* a link out of the root stays inside it: no such file there */
	uwrite("lib/passwd.real", "carol:x:1002:1002::/:/bin/sh\n");
	uclear("etc/passwd");
	snprintf(p, sizeof(p), "%s/etc/passwd", uroot);
	if (symlink("/lib/passwd.real", p) < 0)
		printf("# setup symlink: %s\n", strerror(errno));
	is_int(resolve("carol", &s, &err), 0,
	       "a link inside the image is followed inside it");
	ok(s.uid == 1002, "carol is %u", s.uid);
	proc_spec_free(&s);
	fd = open(outside, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "mallory:x:4242:4242::/:/bin/sh\n", 31) != 31)
		printf("# setup %s: %s\n", outside, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(p);
	if (symlink(outside, p) < 0)
		printf("# setup symlink: %s\n", strerror(errno));
	is_int(resolve("mallory", &s, &err), -TTRPC_INVALID_ARGUMENT,
	       "an absolute link to a host file is not followed out");
	ok(s.uid != 4242 && strstr(err.msg, "no /etc/passwd") != NULL,
	   "the container has no such file: %s", err.msg);
	proc_spec_free(&s);
	unlink(p);
	snprintf(rel, sizeof(rel), "../../../../../../../..%s", outside);
	if (symlink(rel, p) < 0)
		printf("# setup symlink: %s\n", strerror(errno));
	is_int(resolve("mallory", &s, &err), -TTRPC_INVALID_ARGUMENT,
	       "nor a run of .. to it");
	proc_spec_free(&s);

	/* missing: a numeric user needs none */
	uclear("etc/passwd");
	is_int(resolve("1234", &s, &err), 0, "no passwd: a numeric name");
	ok(s.uid == 1234, "uid %u", s.uid);
	proc_spec_free(&s);

	uclear("etc/group");
	uclear("lib/passwd.real");
	uclear("lib");
	uclear("etc");
	rmdir(uroot);
	unlink(outside);
}

/* the same rule for the exec's terminal: only the ptmx device */
static void test_open_in_root(void)
{
	struct kiln_error err = { 0 };
	int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int fd;

	fd = mount_open_in_root(root, "dev/null", O_RDWR, S_IFCHR,
				makedev(5, 2), NULL, &err);
	ok(fd < 0 && strstr(err.msg, "is the device 1:3, not 5:2") != NULL,
	   "another device is refused before it is opened: %s", err.msg);
	fd = mount_open_in_root(root, "dev", O_RDONLY, S_IFCHR, makedev(5, 2),
				NULL, &err);
	ok(fd < 0 && strstr(err.msg, "is a directory, not a character "
				     "device") != NULL,
	   "a directory: %s", err.msg);
	fd = mount_open_in_root(root, "dev/null", O_RDWR, S_IFCHR,
				makedev(1, 3), NULL, &err);
	ok(fd >= 0, "the device asked for opens: %s", fd >= 0 ? "ok" : err.msg);
	if (fd >= 0)
		close(fd);
	close(root);
}

int main(void)
{
	test_args_env_cwd();
	test_user();
	test_rlimits_caps();
	test_mounts();
	test_user_files();
	test_open_in_root();
	return tap_done();
}
