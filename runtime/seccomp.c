/* SPDX-License-Identifier: Apache-2.0 */
/*
 * linux.seccomp, field for field, as the agent's Seccomp message: the
 * agent compiles and installs it in the guest (agent/seccomp.c). A few
 * blocks are allocated whatever the profile's size (docker's default
 * has ~30 rules), so that a profile never exhausts the request's
 * REQUEST_OWNED_MAX slots.
 */
#include "seccomp.h"

#include <errno.h>
#include <stdlib.h>

static void *owned_calloc(struct agent_request *r, size_t n, size_t size)
{
	void *p;

	if (r->n_owned >= REQUEST_OWNED_MAX)
		return NULL;
	p = calloc(n ? n : 1, size);
	if (p != NULL)
		r->owned[r->n_owned++] = p;
	return p;
}

int request_seccomp(struct agent_request *r, const struct oci_seccomp *s,
		    Kiln__Agent__V1__Process *out, struct kiln_error *err)
{
	Kiln__Agent__V1__Seccomp *m;
	Kiln__Agent__V1__SeccompRule *rules, **rulev;
	Kiln__Agent__V1__SeccompArg *args, **argv;
	size_t nargs = 0, a = 0;

	out->seccomp = NULL;
	if (s == NULL)
		return 0;
	if (s->listener_path != NULL && s->listener_path[0] != '\0')
		return kiln_error_set(err, 0,
				      "linux.seccomp.listenerPath: seccomp "
				      "notification (SCMP_ACT_NOTIFY) is not "
				      "supported");
	for (size_t i = 0; i < s->n_syscalls; i++)
		nargs += s->syscalls[i].n_args;
	m = owned_calloc(r, 1, sizeof(*m));
	rules = owned_calloc(r, s->n_syscalls, sizeof(*rules));
	rulev = owned_calloc(r, s->n_syscalls, sizeof(*rulev));
	args = owned_calloc(r, nargs, sizeof(*args));
	argv = owned_calloc(r, nargs, sizeof(*argv));
	if (m == NULL || rules == NULL || rulev == NULL || args == NULL ||
	    argv == NULL)
		return kiln_error_set(err, ENOMEM, "linux.seccomp");
	kiln__agent__v1__seccomp__init(m);
	m->default_action = s->default_action;
	m->has_default_errno_ret = s->has_default_errno_ret;
	m->default_errno_ret = s->default_errno_ret;
	m->architectures = s->architectures;
	m->n_architectures = s->n_architectures;
	m->flags = s->flags;
	m->n_flags = s->n_flags;
	for (size_t i = 0; i < s->n_syscalls; i++) {
		const struct oci_seccomp_rule *o = &s->syscalls[i];
		Kiln__Agent__V1__SeccompRule *q = &rules[i];

		kiln__agent__v1__seccomp_rule__init(q);
		q->names = o->names;
		q->n_names = o->n_names;
		q->action = o->action;
		q->has_errno_ret = o->has_errno_ret;
		q->errno_ret = o->errno_ret;
		q->args = &argv[a];
		q->n_args = o->n_args;
		for (size_t j = 0; j < o->n_args; j++, a++) {
			kiln__agent__v1__seccomp_arg__init(&args[a]);
			args[a].index = o->args[j].index;
			args[a].value = o->args[j].value;
			args[a].value_two = o->args[j].value_two;
			args[a].op = o->args[j].op;
			argv[a] = &args[a];
		}
		rulev[i] = q;
	}
	m->syscalls = rulev;
	m->n_syscalls = s->n_syscalls;
	out->seccomp = m;
	return 0;
}
