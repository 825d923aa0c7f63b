/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/seccomp.c: config.json's linux.seccomp as Process.seccomp,
 * field for field, through protobuf's wire format and into the agent's
 * compiler, which must accept what docker sends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/seccomp.h"
#include "../../oci/spec.h"
#include "../../runtime/seccomp.h"
#include "tap.h"

#define CONFIG(seccomp)                                                      \
	"{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"sh\"],"          \
	"\"cwd\":\"/"                                                        \
	"\"},\"root\":{\"path\":\"rootfs\"},\"linux\":{\"seccomp\":" seccomp \
	"}}"

/* docker's default profile's shape (trimmed) */
static const char *docker =
	CONFIG("{\"defaultAction\":\"SCMP_ACT_ERRNO\","
	       "\"defaultErrnoRet\":1,"
	       "\"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\","
	       "\"SCMP_ARCH_X32\"],"
	       "\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\"],"
	       "\"syscalls\":[{\"names\":[\"accept\",\"read\",\"write\","
	       "\"execve\",\"exit_group\",\"kiln_new_syscall\"],"
	       "\"action\":\"SCMP_ACT_ALLOW\"},"
	       "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\","
	       "\"args\":[{\"index\":0,\"value\":0,\"op\":\"SCMP_CMP_EQ\"},"
	       "{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"}]},"
	       "{\"names\":[\"clone\"],\"action\":\"SCMP_ACT_ALLOW\","
	       "\"args\":[{\"index\":0,\"value\":2114060288,"
	       "\"valueTwo\":0,\"op\":\"SCMP_CMP_MASKED_EQ\"}]},"
	       "{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\","
	       "\"errnoRet\":13}]}");

static struct oci_spec *parse(const char *text)
{
	struct kiln_error err = { 0 };
	struct oci_spec *s = oci_spec_parse(text, strlen(text), &err);

	if (s == NULL)
		printf("# parse: %s\n", err.msg);
	return s;
}

static void test_docker_profile(void)
{
	struct oci_spec *s = parse(docker);
	struct agent_request r = { .n_owned = 0 };
	Kiln__Agent__V1__Process p, *back;
	const Kiln__Agent__V1__Seccomp *m;
	struct seccomp_prog prog;
	struct kiln_error err = { 0 };
	uint8_t *buf;
	size_t len;

	if (!ok(s != NULL && s->linux_ != NULL, "docker's shape parses"))
		return;
	kiln__agent__v1__process__init(&p);
	is_int(request_seccomp(&r, s->linux_->seccomp, &p, &err), 0,
	       "converted: %s", err.msg);
	ok(r.n_owned <= 5, "a few blocks whatever the size (%zu)", r.n_owned);
	m = p.seccomp;
	if (!ok(m != NULL, "Process.seccomp set"))
		goto out;
	ok(strcmp(m->default_action, "SCMP_ACT_ERRNO") == 0 &&
		   m->has_default_errno_ret && m->default_errno_ret == 1,
	   "default action and errno");
	ok(m->n_architectures == 3 && strcmp(m->architectures[1], "SCMP_ARCH_"
								  "X86") == 0,
	   "architectures");
	ok(m->n_flags == 1 &&
		   strcmp(m->flags[0], "SECCOMP_FILTER_FLAG_LOG") == 0,
	   "flags");
	is_int(m->n_syscalls, 4, "four rules");
	ok(m->syscalls[0]->n_names == 6 &&
		   strcmp(m->syscalls[0]->names[5], "kiln_new_syscall") == 0 &&
		   strcmp(m->syscalls[0]->action, "SCMP_ACT_ALLOW") == 0 &&
		   !m->syscalls[0]->has_errno_ret &&
		   m->syscalls[0]->n_args == 0,
	   "rule 0: names, action, no args");
	ok(m->syscalls[1]->n_args == 2 && m->syscalls[1]->args[1]->index == 0 &&
		   m->syscalls[1]->args[1]->value == 8 &&
		   strcmp(m->syscalls[1]->args[1]->op, "SCMP_CMP_EQ") == 0,
	   "rule 1: its own two args");
	ok(m->syscalls[2]->n_args == 1 &&
		   m->syscalls[2]->args[0]->value == 2114060288 &&
		   strcmp(m->syscalls[2]->args[0]->op, "SCMP_CMP_MASKED_EQ") ==
			   0,
	   "rule 2: its own arg");
	ok(m->syscalls[3]->has_errno_ret && m->syscalls[3]->errno_ret == 13 &&
		   m->syscalls[3]->n_args == 0,
	   "rule 3: errnoRet");

	/* what the agent receives */
	len = kiln__agent__v1__process__get_packed_size(&p);
	buf = malloc(len);
	kiln__agent__v1__process__pack(&p, buf);
	back = kiln__agent__v1__process__unpack(NULL, len, buf);
	free(buf);
	if (!ok(back != NULL && back->seccomp != NULL, "round trip"))
		goto out;
	is_int(back->seccomp->n_syscalls, 4, "round trip: four rules");
	ok(back->seccomp->syscalls[2]->args[0]->value == 2114060288, "round "
								     "trip: "
								     "the "
								     "clone "
								     "mask");
	is_int(seccomp_prog_build(back->seccomp, &prog, &err), 0,
	       "the agent compiles it: %s", err.msg);
	ok(prog.insns != NULL, "a BPF program of %u instructions", prog.len);
	is_int(prog.n_skipped, 1, "the unknown name is skipped");
	seccomp_prog_free(&prog);
	kiln__agent__v1__process__free_unpacked(back, NULL);
out:
	agent_request_free(&r);
	oci_spec_free(s);
}

static void test_none_and_refused(void)
{
	struct oci_spec *s = parse(CONFIG("{\"defaultAction\":\"SCMP_ACT_"
					  "ALLOW\","
					  "\"listenerPath\":\"/run/"
					  "seccomp-agent.sock\","
					  "\"syscalls\":[{\"names\":[\"mkdir\"]"
					  ","
					  "\"action\":\"SCMP_ACT_NOTIFY\"}]}"));
	struct agent_request r = { .n_owned = 0 };
	Kiln__Agent__V1__Process p;
	struct kiln_error err = { 0 };

	kiln__agent__v1__process__init(&p);
	is_int(request_seccomp(&r, NULL, &p, &err), 0, "no seccomp");
	ok(p.seccomp == NULL, "no seccomp: left unset");
	if (!ok(s != NULL, "a notify profile parses"))
		return;
	ok(request_seccomp(&r, s->linux_->seccomp, &p, &err) < 0 &&
		   strstr(err.msg, "linux.seccomp.listenerPath") != NULL,
	   "listenerPath refused by name: %s", err.msg);
	ok(p.seccomp == NULL, "refused: left unset");
	agent_request_free(&r);
	oci_spec_free(s);
}

int main(void)
{
	test_docker_profile();
	test_none_and_refused();
	return tap_done();
}
