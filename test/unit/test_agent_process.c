/* SPDX-License-Identifier: Apache-2.0 */
/* kiln-agent's checks of a Process and of a container's mounts, before
 * anything is cloned: what is refused, with which code and message. */
#include <linux/capability.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

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

int main(void)
{
	test_args_env_cwd();
	test_user();
	test_rlimits_caps();
	test_mounts();
	return tap_done();
}
