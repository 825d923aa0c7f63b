/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent/seccomp.c: a Seccomp message compiled to BPF, what is refused
 * (with the field named), and what the program does once a child has
 * installed it: the filter runs here on the host kernel, in a forked
 * child with no_new_privs, as it will in the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../agent/agent.h"
#include "tap.h"

static char *mkdir_names[] = { "mkdir", "mkdirat" };

static void rule_init(Kiln__Agent__V1__SeccompRule *r, char **names, size_t n,
		      const char *action)
{
	kiln__agent__v1__seccomp_rule__init(r);
	r->names = names;
	r->n_names = n;
	r->action = (char *)action;
}

/* default ALLOW; mkdir and mkdirat fail with errno 1 (EPERM) */
struct profile {
	Kiln__Agent__V1__Seccomp m;
	Kiln__Agent__V1__SeccompRule rule, *rulev[1];
	Kiln__Agent__V1__SeccompArg arg, *argv[1];
};

static void profile_init(struct profile *p)
{
	kiln__agent__v1__seccomp__init(&p->m);
	p->m.default_action = "SCMP_ACT_ALLOW";
	rule_init(&p->rule, mkdir_names, 2, "SCMP_ACT_ERRNO");
	p->rule.has_errno_ret = true;
	p->rule.errno_ret = 1;
	p->rulev[0] = &p->rule;
	p->m.syscalls = p->rulev;
	p->m.n_syscalls = 1;
	kiln__agent__v1__seccomp_arg__init(&p->arg);
	p->argv[0] = &p->arg;
}

static int build(const Kiln__Agent__V1__Seccomp *m, struct seccomp_prog *prog,
		 struct kiln_error *err)
{
	memset(err, 0, sizeof(*err));
	return seccomp_prog_build(m, prog, err);
}

/*
 * In a child: install prog, then mkdir dir/<name> with each mode and
 * create dir/file. Exit status: bit i set when mkdir i failed with
 * EPERM, 0x40 when the file could not be made, 0x80 when the install
 * failed.
 */
static int run_child(const struct seccomp_prog *prog, const char *dir,
		     const mode_t *modes, size_t n)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		char path[256];
		int code = 0, fd;

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    seccomp_prog_install(prog) < 0)
			_exit(0x80);
		for (size_t i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "%s/d%zu", dir, i);
			if (mkdir(path, modes[i]) < 0 && errno == EPERM)
				code |= 1 << i;
		}
		snprintf(path, sizeof(path), "%s/file", dir);
		fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			code |= 0x40;
		_exit(code);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void test_mkdir_denied(void)
{
	char dir[] = "/tmp/kiln-seccomp-XXXXXX";
	struct profile p;
	struct seccomp_prog prog;
	struct kiln_error err;
	mode_t mode = 0755;
	struct stat st;
	char path[64];

	profile_init(&p);
	is_int(build(&p.m, &prog, &err), 0, "profile builds: %s", err.msg);
	ok(prog.insns != NULL && prog.len > 0, "a BPF program (%u insns)",
	   prog.len);
	is_int(prog.n_skipped, 0, "every name known");
	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	is_int(run_child(&prog, dir, &mode, 1), 0x01,
	       "mkdir fails with EPERM, creating a file works");
	snprintf(path, sizeof(path), "%s/d0", dir);
	ok(stat(path, &st) < 0 && errno == ENOENT, "no directory made");
	snprintf(path, sizeof(path), "%s/file", dir);
	ok(stat(path, &st) == 0, "the file was made");
	unlink(path);
	rmdir(dir);
	seccomp_prog_free(&prog);
	ok(prog.insns == NULL && prog.len == 0, "freed");
}

/* one condition: mode == 0700; MASKED_EQ: (mode & 070) == 070 */
static void test_args(void)
{
	char dir[] = "/tmp/kiln-seccomp-XXXXXX";
	mode_t modes[] = { 0700, 0755, 0770, 0777 };
	struct profile p;
	struct seccomp_prog prog;
	struct kiln_error err;

	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	profile_init(&p);
	p.rule.names = mkdir_names; /* mode is mkdir's arg 1 */
	p.rule.n_names = 1;
	p.rule.args = p.argv;
	p.rule.n_args = 1;
	p.arg.index = 1;
	p.arg.value = 0700;
	p.arg.op = "SCMP_CMP_EQ";
	is_int(build(&p.m, &prog, &err), 0, "EQ builds: %s", err.msg);
	is_int(run_child(&prog, dir, modes, 4), 0x01,
	       "EQ: only mkdir with mode 0700 is refused");
	seccomp_prog_free(&prog);
	for (int i = 0; i < 4; i++) {
		char path[64];

		snprintf(path, sizeof(path), "%s/d%d", dir, i);
		rmdir(path);
	}
	p.arg.op = "SCMP_CMP_MASKED_EQ";
	p.arg.value = 070; /* the mask */
	p.arg.value_two = 070;
	is_int(build(&p.m, &prog, &err), 0, "MASKED_EQ builds: %s", err.msg);
	is_int(run_child(&prog, dir, modes, 4), 0x0c,
	       "MASKED_EQ: modes with group rwx are refused");
	seccomp_prog_free(&prog);
	for (int i = 0; i < 4; i++) {
		char path[64];

		snprintf(path, sizeof(path), "%s/d%d", dir, i);
		rmdir(path);
	}
	{
		char path[64];

		snprintf(path, sizeof(path), "%s/file", dir);
		unlink(path);
	}
	rmdir(dir);
}

static void test_unknown_syscall_skipped(void)
{
	char *names[] = { "mkdir", "kiln_no_such_syscall", "mkdirat" };
	struct profile p;
	struct seccomp_prog prog;
	struct kiln_error err;

	profile_init(&p);
	p.rule.names = names;
	p.rule.n_names = 3;
	is_int(build(&p.m, &prog, &err), 0, "builds: %s", err.msg);
	is_int(prog.n_skipped, 1, "the unknown name is skipped");
	ok(prog.insns != NULL, "the others make a program");
	seccomp_prog_free(&prog);
}

/* the call's code and whether its message has want */
static void refused(struct profile *p, int code, const char *want,
		    const char *what)
{
	struct seccomp_prog prog;
	struct kiln_error err;
	int r = build(&p->m, &prog, &err);

	is_int(r, -code, "%s: refused", what);
	ok(strstr(err.msg, want) != NULL, "%s: message `%s` has `%s`", what,
	   err.msg, want);
	ok(prog.insns == NULL, "%s: no program left", what);
	seccomp_prog_free(&prog);
}

static void test_refused(void)
{
	struct profile p;
	char *arch_bad[] = { "SCMP_ARCH_VAX" };
	char *flag_bad[] = { "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FLAG_X" };
	char *flag_notify[] = { "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" };
	Kiln__Agent__V1__SeccompArg args[7], *argv[7];

	profile_init(&p);
	p.m.default_action = "SCMP_ACT_MAYBE";
	refused(&p, TTRPC_INVALID_ARGUMENT,
		"seccomp.default_action: unknown action `SCMP_ACT_MAYBE`",
		"bad default action");
	p.m.default_action = "";
	refused(&p, TTRPC_INVALID_ARGUMENT, "seccomp.default_action: missing",
		"no default action");

	profile_init(&p);
	p.rule.action = "SCMP_ACT_EPERM";
	refused(&p, TTRPC_INVALID_ARGUMENT,
		"seccomp.syscalls[0].action: unknown action `SCMP_ACT_EPERM`",
		"bad rule action");
	p.rule.action = "SCMP_ACT_NOTIFY";
	refused(&p, TTRPC_FAILED_PRECONDITION,
		"seccomp.syscalls[0].action: SCMP_ACT_NOTIFY",
		"notify refused by name");
	p.rule.action = "SCMP_ACT_ERRNO";
	p.rule.errno_ret = 4096;
	refused(&p, TTRPC_INVALID_ARGUMENT,
		"seccomp.syscalls[0].action: errno 4096", "errno above 4095");

	profile_init(&p);
	p.rule.args = p.argv;
	p.rule.n_args = 1;
	p.arg.op = "SCMP_CMP_ALMOST";
	refused(&p, TTRPC_INVALID_ARGUMENT,
		"seccomp.syscalls[0].args[0]: unknown op `SCMP_CMP_ALMOST`",
		"bad op");
	p.arg.op = "SCMP_CMP_EQ";
	p.arg.index = 6;
	refused(&p, TTRPC_INVALID_ARGUMENT,
		"seccomp.syscalls[0].args[0].index: 6", "arg index 6");
	for (int i = 0; i < 7; i++) {
		kiln__agent__v1__seccomp_arg__init(&args[i]);
		args[i].op = "SCMP_CMP_EQ";
		argv[i] = &args[i];
	}
	p.rule.args = argv;
	p.rule.n_args = 7;
	refused(&p, TTRPC_INVALID_ARGUMENT,
		"seccomp.syscalls[0].args: more than 6", "seven args");

	profile_init(&p);
	p.m.architectures = arch_bad;
	p.m.n_architectures = 1;
	refused(&p, TTRPC_INVALID_ARGUMENT,
		"seccomp.architectures[0]: unknown architecture "
		"`SCMP_ARCH_VAX`",
		"unknown architecture");
	profile_init(&p);
	p.m.flags = flag_bad;
	p.m.n_flags = 2;
	refused(&p, TTRPC_INVALID_ARGUMENT,
		"seccomp.flags[1]: unknown flag `SECCOMP_FLAG_X`",
		"unknown flag");
	p.m.flags = flag_notify;
	p.m.n_flags = 1;
	refused(&p, TTRPC_FAILED_PRECONDITION,
		"seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
		"a notify flag");
}

static void test_bounds(void)
{
	size_t n = SECCOMP_NAMES_MAX + 1;
	char **names = calloc(n, sizeof(*names));
	struct profile p;

	for (size_t i = 0; i < n; i++)
		names[i] = "getpid";
	profile_init(&p);
	p.rule.names = names;
	p.rule.n_names = n;
	refused(&p, TTRPC_INVALID_ARGUMENT,
		"seccomp.syscalls: more than 4096 syscall names", "4097 names");
	free(names);
}

/* docker's shape: default ERRNO, several arches, ALLOW lists, LOG flag */
static void test_docker_shape(void)
{
	char *arches[] = { "SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
			   "SCMP_ARCH_X32" };
	char *flags[] = { "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_"
						     "ALLOW" };
	char *allow[] = { "read",
			  "write",
			  "execve",
			  "exit_group",
			  "mkdir",
			  "socketcall",
			  "kiln_future_syscall" };
	char *clone_names[] = { "clone" };
	char *pers[] = { "personality" };
	Kiln__Agent__V1__SeccompRule r[3], *rv[3];
	Kiln__Agent__V1__SeccompArg a[2], *av[2];
	Kiln__Agent__V1__Seccomp m;
	struct seccomp_prog prog;
	struct kiln_error err;

	kiln__agent__v1__seccomp__init(&m);
	m.default_action = "SCMP_ACT_ERRNO";
	m.architectures = arches;
	m.n_architectures = 3;
	m.flags = flags;
	m.n_flags = 2;
	rule_init(&r[0], allow, 7, "SCMP_ACT_ALLOW");
	rule_init(&r[1], clone_names, 1, "SCMP_ACT_ALLOW");
	rule_init(&r[2], pers, 1, "SCMP_ACT_ALLOW");
	for (int i = 0; i < 2; i++) {
		kiln__agent__v1__seccomp_arg__init(&a[i]);
		av[i] = &a[i];
	}
	/* docker: clone without namespace flags */
	a[0].index = 0;
	a[0].value = 2114060288;
	a[0].op = "SCMP_CMP_MASKED_EQ";
	/* two values of one arg: either may match (two rules) */
	a[1].index = 0;
	a[1].value = 8;
	a[1].op = "SCMP_CMP_EQ";
	r[1].args = &av[0];
	r[1].n_args = 1;
	r[2].args = av;
	r[2].n_args = 2;
	a[0].index = 0;
	for (int i = 0; i < 3; i++)
		rv[i] = &r[i];
	m.syscalls = rv;
	m.n_syscalls = 3;
	is_int(build(&m, &prog, &err), 0, "docker's shape builds: %s", err.msg);
	is_int(prog.flags,
	       SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	       "flags for seccomp(2)");
	is_int(prog.n_skipped, 1, "a name this kernel lacks is skipped");
	seccomp_prog_free(&prog);
	/* a rule with the default's own action is left out, as runc does */
	r[0].action = "SCMP_ACT_ERRNO";
	is_int(build(&m, &prog, &err), 0, "a rule as the default: %s", err.msg);
	seccomp_prog_free(&prog);
}

/* proc_spec_from_msg builds it, proc_spec_free frees it */
static void test_process(void)
{
	char *args[] = { "true" };
	Kiln__Agent__V1__Process m;
	struct profile p;
	struct proc_spec s;
	struct kiln_error err = { 0 };

	kiln__agent__v1__process__init(&m);
	m.args = args;
	m.n_args = 1;
	is_int(proc_spec_from_msg(&m, &s, &err), 0, "no seccomp: %s", err.msg);
	ok(s.seccomp.insns == NULL, "no seccomp: no program");
	proc_spec_free(&s);
	profile_init(&p);
	m.seccomp = &p.m;
	is_int(proc_spec_from_msg(&m, &s, &err), 0, "seccomp: %s", err.msg);
	ok(s.seccomp.insns != NULL, "seccomp: a program in the spec");
	proc_spec_free(&s);
	p.rule.action = "SCMP_ACT_NOTIFY";
	is_int(proc_spec_from_msg(&m, &s, &err), -TTRPC_FAILED_PRECONDITION,
	       "notify fails the process: %s", err.msg);
	proc_spec_free(&s);
}

/*
 * The whole child side (proc_child_exec) with mkdir denied, as root
 * turning into uid 1000 with the default capabilities: without
 * no_new_privs the filter goes in before the user change, which it must
 * let through; with it, last. Either way mkdir(1) fails with EPERM and
 * nothing is made.
 */
static void child_exec(bool nnp)
{
	char dir[] = "/tmp/kiln-seccomp-XXXXXX", target[64], *args[3];
	Kiln__Agent__V1__Process m;
	Kiln__Agent__V1__User u;
	struct profile p;
	struct proc_spec s;
	struct kiln_error err = { 0 };
	struct child_report rep;
	int report[2], nul, st, got;
	const char *how = nnp ? "no_new_privs" : "no no_new_privs";
	struct stat sb;
	pid_t pid;

	if (mkdtemp(dir) == NULL || chmod(dir, 0777) < 0) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(target, sizeof(target), "%s/d", dir);
	args[0] = "/bin/mkdir";
	args[1] = target;
	kiln__agent__v1__process__init(&m);
	kiln__agent__v1__user__init(&u);
	u.uid = u.gid = 1000;
	m.user = &u;
	m.args = args;
	m.n_args = 2;
	m.no_new_privileges = nnp;
	profile_init(&p);
	m.seccomp = &p.m;
	is_int(proc_spec_from_msg(&m, &s, &err), 0, "%s: spec: %s", how,
	       err.msg);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0 || pipe2(report, O_CLOEXEC) < 0) {
		ok(0, "pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0) {
		int child[3] = { nul, nul, nul };

		close(report[0]);
		proc_child_exec(&s, child, report[1]);
	}
	close(report[1]);
	close(nul);
	got = proc_read_report(report[0], &rep);
	close(report[0]);
	is_int(got, 0, "%s: the child reached execve%s%s", how,
	       got > 0 ? ": " : "", got > 0 ? rep.msg : "");
	ok(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) != 0,
	   "%s: mkdir(1) failed", how);
	ok(stat(target, &sb) < 0 && errno == ENOENT, "%s: no directory made",
	   how);
	rmdir(target);
	rmdir(dir);
	proc_spec_free(&s);
}

static void test_child_exec(void)
{
	if (geteuid() != 0 || access("/bin/mkdir", X_OK) < 0) {
		tap_skip("not root, or no /bin/mkdir: no user change here");
		return;
	}
	child_exec(false);
	child_exec(true);
}

int main(void)
{
	test_mkdir_denied();
	test_args();
	test_unknown_syscall_skipped();
	test_refused();
	test_bounds();
	test_docker_shape();
	test_process();
	test_child_exec();
	return tap_done();
}
