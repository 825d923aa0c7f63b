/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI linux.seccomp in the guest. The profile is compiled with libseccomp
 * on the handler's thread and exported as classic BPF into our own
 * buffer; the child of the clone installs that buffer with one seccomp(2)
 * call, as the last step before execve (see proc_child_exec for when it
 * must come earlier). Semantics follow runc: a rule whose action is the
 * default is left out, a syscall name the kernel does not know is
 * skipped, and a rule whose args name one index more than once becomes
 * one rule per arg (any of them matches) instead of one rule with every
 * condition (all of them match).
 */
#include "seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "../lib/cleanup.h"

#define INVALID(...) AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0, __VA_ARGS__)
#define NAME_MAX_LEN 64 /* longer than any action, op, arch or flag name */

static void ctx_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx != NULL)
		seccomp_release(*ctx);
}

/* a name safe to quote in an error, or a placeholder */
static const char *quoted(const char *s)
{
	return spec_check_str("name", s, NAME_MAX_LEN, false, NULL) == 0
		       ? s
		       : "(unprintable)";
}

static int action_from_name(const char *name, bool has_eno, uint32_t eno,
			    const char *field, uint32_t *act,
			    struct kiln_error *err)
{
	static const struct {
		const char *name;
		uint32_t act;
	} plain[] = {
		{ "SCMP_ACT_ALLOW", SCMP_ACT_ALLOW },
		{ "SCMP_ACT_KILL", SCMP_ACT_KILL },
		{ "SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD },
		{ "SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS },
		{ "SCMP_ACT_TRAP", SCMP_ACT_TRAP },
		{ "SCMP_ACT_LOG", SCMP_ACT_LOG },
	};

	if (name == NULL || name[0] == '\0')
		return INVALID("%s: missing", field);
	/* MAX_ERRNO: a larger value would not read as an error return */
	if (has_eno && eno > 4095)
		return INVALID("%s: errno %u is above 4095", field, eno);
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++)
		if (strcmp(name, plain[i].name) == 0) {
			*act = plain[i].act;
			return 0;
		}
	/* as runc: without errnoRet, ERRNO and TRACE return EPERM */
	if (strcmp(name, "SCMP_ACT_ERRNO") == 0) {
		*act = SCMP_ACT_ERRNO(has_eno ? eno : EPERM);
		return 0;
	}
	if (strcmp(name, "SCMP_ACT_TRACE") == 0) {
		*act = SCMP_ACT_TRACE(has_eno ? eno : EPERM);
		return 0;
	}
	if (strcmp(name, "SCMP_ACT_NOTIFY") == 0)
		return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
				  "%s: SCMP_ACT_NOTIFY is not supported (no "
				  "seccomp agent reaches into the VM)",
				  field);
	return INVALID("%s: unknown action `%s`", field, quoted(name));
}

static int op_from_name(const char *name, const char *field,
			enum scmp_compare *op, struct kiln_error *err)
{
	static const struct {
		const char *name;
		enum scmp_compare op;
	} ops[] = {
		{ "SCMP_CMP_NE", SCMP_CMP_NE },
		{ "SCMP_CMP_LT", SCMP_CMP_LT },
		{ "SCMP_CMP_LE", SCMP_CMP_LE },
		{ "SCMP_CMP_EQ", SCMP_CMP_EQ },
		{ "SCMP_CMP_GE", SCMP_CMP_GE },
		{ "SCMP_CMP_GT", SCMP_CMP_GT },
		{ "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
	};

	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (name != NULL && strcmp(name, ops[i].name) == 0) {
			*op = ops[i].op;
			return 0;
		}
	return INVALID("%s: unknown op `%s`", field, quoted(name ? name : ""));
}

static int flags_from_names(const Kiln__Agent__V1__Seccomp *m,
			    unsigned int *flags, struct kiln_error *err)
{
	static const struct {
		const char *name;
		unsigned int flag;
	} known[] = {
		/* the child has one thread: TSYNC changes nothing */
		{ "SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC },
		{ "SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG },
		{ "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
		  SECCOMP_FILTER_FLAG_SPEC_ALLOW },
	};

	*flags = 0;
	for (size_t i = 0; i < m->n_flags; i++) {
		const char *f = m->flags[i];
		size_t k;

		for (k = 0; k < ARRAY_SIZE(known); k++)
			if (strcmp(f, known[k].name) == 0)
				break;
		if (k < ARRAY_SIZE(known)) {
			*flags |= known[k].flag;
			continue;
		}
		if (strcmp(f, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") == 0)
			return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
					  "seccomp.flags[%zu]: %s goes with "
					  "SCMP_ACT_NOTIFY, which is not "
					  "supported",
					  i, f);
		return INVALID("seccomp.flags[%zu]: unknown flag `%s`", i,
			       quoted(f));
	}
	return 0;
}

static int arches_add(scmp_filter_ctx ctx, const Kiln__Agent__V1__Seccomp *m,
		      struct kiln_error *err)
{
	for (size_t i = 0; i < m->n_architectures; i++) {
		const char *a = m->architectures[i];
		char lower[NAME_MAX_LEN + 1];
		size_t n = strlen(a);
		uint32_t token = 0;
		int r;

		/* OCI's SCMP_ARCH_X86_64 is libseccomp's x86_64 */
		if (strncmp(a, "SCMP_ARCH_", 10) == 0 &&
		    n - 10 < sizeof(lower)) {
			for (size_t j = 10; j <= n; j++)
				lower[j - 10] =
					(a[j] >= 'A' && a[j] <= 'Z')
						? (char)(a[j] - 'A' + 'a')
						: a[j];
			token = seccomp_arch_resolve_name(lower);
		}
		if (token == 0)
			return INVALID("seccomp.architectures[%zu]: unknown "
				       "architecture `%s`",
				       i, quoted(a));
		r = seccomp_arch_add(ctx, token);
		if (r < 0 && r != -EEXIST) /* the native one is in already */
			return AGENT_FAIL(err, TTRPC_INTERNAL, -r,
					  "seccomp: add architecture %s", a);
	}
	return 0;
}

static int rule_add(scmp_filter_ctx ctx, const Kiln__Agent__V1__SeccompRule *r,
		    size_t ri, uint32_t def, struct seccomp_prog *out,
		    struct kiln_error *err)
{
	struct scmp_arg_cmp cmp[SECCOMP_ARGS_MAX];
	char field[96];
	bool same_index = false;
	uint32_t act;
	int res;

	snprintf(field, sizeof(field), "seccomp.syscalls[%zu].action", ri);
	res = action_from_name(r->action, r->has_errno_ret, r->errno_ret, field,
			       &act, err);
	if (res < 0)
		return res;
	if (r->n_args > SECCOMP_ARGS_MAX)
		return INVALID("seccomp.syscalls[%zu].args: more than %d", ri,
			       SECCOMP_ARGS_MAX);
	for (size_t i = 0; i < r->n_args; i++) {
		const Kiln__Agent__V1__SeccompArg *a = r->args[i];

		snprintf(field, sizeof(field),
			 "seccomp.syscalls[%zu].args[%zu]", ri, i);
		if (a->index >= SECCOMP_ARGS_MAX)
			return INVALID("%s.index: %u is not 0..5", field,
				       a->index);
		res = op_from_name(a->op, field, &cmp[i].op, err);
		if (res < 0)
			return res;
		cmp[i].arg = a->index;
		/* MASKED_EQ: value is the mask, valueTwo the datum */
		cmp[i].datum_a = a->value;
		cmp[i].datum_b = a->value_two;
		for (size_t j = 0; j < i; j++)
			same_index |= cmp[j].arg == cmp[i].arg;
	}
	/* libseccomp refuses a rule that repeats the default: runc skips it */
	if (act == def)
		return 0;
	for (size_t k = 0; k < r->n_names; k++) {
		int nr = seccomp_syscall_resolve_name(r->names[k]);

		if (nr == __NR_SCMP_ERROR) {
			out->n_skipped++;
			continue;
		}
		if (!same_index)
			res = seccomp_rule_add_array(
				ctx, act, nr, (unsigned int)r->n_args, cmp);
		else
			for (size_t i = 0; i < r->n_args && res >= 0; i++)
				res = seccomp_rule_add_array(ctx, act, nr, 1,
							     &cmp[i]);
		if (res < 0)
			return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, -res,
					  "seccomp.syscalls[%zu]: syscall `%s`",
					  ri, r->names[k]);
	}
	return 0;
}

static int export_bpf(scmp_filter_ctx ctx, struct seccomp_prog *out,
		      struct kiln_error *err)
{
	cleanup_close int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
	struct stat st;
	int r;

	if (fd < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "seccomp: memfd");
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, -r,
				  "seccomp: export the filter");
	if (fstat(fd, &st) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "seccomp: fstat");
	if (st.st_size == 0 ||
	    (size_t)st.st_size % sizeof(struct sock_filter) != 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, 0,
				  "seccomp: exported %lld bytes",
				  (long long)st.st_size);
	if ((size_t)st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return INVALID("seccomp: the profile makes %zu instructions, "
			       "above the kernel's limit of %d",
			       (size_t)st.st_size / sizeof(struct sock_filter),
			       BPF_MAXINSNS);
	out->insns = malloc((size_t)st.st_size);
	if (out->insns == NULL)
		return AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "seccomp");
	if (pread(fd, out->insns, (size_t)st.st_size, 0) != st.st_size)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "seccomp: read the filter back");
	out->len = (uint16_t)((size_t)st.st_size / sizeof(struct sock_filter));
	return 0;
}

int seccomp_prog_build(const Kiln__Agent__V1__Seccomp *m,
		       struct seccomp_prog *out, struct kiln_error *err)
{
	__attribute__((cleanup(ctx_releasep))) scmp_filter_ctx ctx = NULL;
	size_t names = 0;
	uint32_t def;
	int r;

	memset(out, 0, sizeof(*out));
	if (m == NULL)
		return 0;
	/* client-controlled: bounded before any of it is looked at */
	if (m->n_syscalls > SECCOMP_NAMES_MAX)
		return INVALID("seccomp.syscalls: more than %d rules",
			       SECCOMP_NAMES_MAX);
	for (size_t i = 0; i < m->n_syscalls; i++) {
		names += m->syscalls[i]->n_names;
		if (names > SECCOMP_NAMES_MAX)
			return INVALID("seccomp.syscalls: more than %d "
				       "syscall names",
				       SECCOMP_NAMES_MAX);
	}
	r = action_from_name(m->default_action, m->has_default_errno_ret,
			     m->default_errno_ret, "seccomp.default_action",
			     &def, err);
	if (r < 0)
		return r;
	r = flags_from_names(m, &out->flags, err);
	if (r < 0)
		return r;
	ctx = seccomp_init(def);
	if (ctx == NULL)
		return AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
				  "seccomp.default_action: %s is not "
				  "supported by this kernel",
				  m->default_action);
	r = arches_add(ctx, m, err);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < m->n_syscalls; i++) {
		r = rule_add(ctx, m->syscalls[i], i, def, out, err);
		if (r < 0)
			goto fail;
	}
	r = export_bpf(ctx, out, err);
	if (r < 0)
		goto fail;
	return 0;
fail:
	seccomp_prog_free(out);
	return r;
}

void seccomp_prog_free(struct seccomp_prog *p)
{
	free(p->insns);
	memset(p, 0, sizeof(*p));
}

int seccomp_prog_install(const struct seccomp_prog *p)
{
	struct sock_fprog prog = { .len = p->len, .filter = p->insns };

	if (p->insns == NULL)
		return 0;
	/* no_new_privs or CAP_SYS_ADMIN: proc_child_exec sees to it */
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->flags, &prog) <
			       0
		       ? -1
		       : 0;
}
