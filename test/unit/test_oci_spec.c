/* SPDX-License-Identifier: Apache-2.0 */
/* oci/spec.c: config.json as docker, podman and containerd write it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../oci/spec.h"
#include "tap.h"

/* The shape docker 20.10 writes (trimmed), every section present. */
static const char *docker_config =
	"{\"ociVersion\":\"1.0.2-dev\","
	"\"process\":{\"terminal\":true,\"consoleSize\":{\"height\":40,"
	"\"width\":120},\"user\":{\"uid\":1000,\"gid\":1000,"
	"\"additionalGids\":[10,20],\"umask\":18},"
	"\"args\":[\"sh\",\"-c\",\"echo hi\"],"
	"\"env\":[\"PATH=/usr/bin:/bin\",\"HOSTNAME=abc\"],\"cwd\":\"/work\","
	"\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_KILL\"],"
	"\"effective\":[\"CAP_CHOWN\"],\"permitted\":[\"CAP_CHOWN\"]},"
	"\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1048576,"
	"\"soft\":1024}],\"apparmorProfile\":\"docker-default\","
	"\"oomScoreAdj\":-500,\"noNewPrivileges\":true},"
	"\"root\":{\"path\":\"/var/lib/docker/overlay2/x/merged\","
	"\"readonly\":true},\"hostname\":\"abc\","
	"\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\","
	"\"source\":\"proc\",\"options\":[\"nosuid\",\"noexec\",\"nodev\"]},"
	"{\"destination\":\"/etc/hosts\",\"type\":\"bind\","
	"\"source\":\"/var/lib/docker/containers/x/hosts\","
	"\"options\":[\"rbind\",\"rprivate\"]}],"
	"\"hooks\":{\"prestart\":[{\"path\":\"/usr/bin/dockerd\","
	"\"args\":[\"libnetwork-setkey\",\"-exec-root=/var/run/docker\"],"
	"\"timeout\":10}]},"
	"\"annotations\":{\"io.kubernetes.cri.container-type\":\"sandbox\"},"
	"\"linux\":{\"resources\":{\"devices\":[{\"allow\":false,"
	"\"access\":\"rwm\"},{\"allow\":true,\"type\":\"c\",\"major\":1,"
	"\"minor\":3,\"access\":\"rwm\"}],\"memory\":{\"limit\":268435456},"
	"\"cpu\":{\"shares\":512,\"quota\":50000,\"period\":100000,"
	"\"cpus\":\"0-1\"},\"pids\":{\"limit\":100}},"
	"\"cgroupsPath\":\"system.slice:docker:abc\","
	"\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"network\","
	"\"path\":\"/var/run/netns/x\"},{\"type\":\"uts\"},{\"type\":\"pid\"},"
	"{\"type\":\"ipc\"}],"
	"\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\","
	"\"defaultErrnoRet\":1,\"architectures\":[\"SCMP_ARCH_X86_64\"],"
	"\"syscalls\":[{\"names\":[\"read\",\"write\"],"
	"\"action\":\"SCMP_ACT_ALLOW\"},{\"names\":[\"personality\"],"
	"\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,"
	"\"value\":18446744073709551615,\"op\":\"SCMP_CMP_EQ\"}]}]},"
	"\"maskedPaths\":[\"/proc/kcore\",\"/proc/keys\"],"
	"\"readonlyPaths\":[\"/proc/sys\"],"
	"\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"}},"
	"\"future\":{\"ignored\":[1,2,3]}}";

static void test_docker_config(void)
{
	struct kiln_error err = { 0 };
	struct oci_spec *s =
		oci_spec_parse(docker_config, strlen(docker_config), &err);
	struct oci_process *p;
	struct oci_linux *l;

	if (!ok(s != NULL, "docker's config.json parses (%s)", err.msg))
		return;
	p = s->process;
	l = s->linux_;
	ok(strcmp(s->oci_version, "1.0.2-dev") == 0, "ociVersion");
	ok(strcmp(s->root_path, "/var/lib/docker/overlay2/x/merged") == 0 &&
		   s->root_readonly,
	   "root path and readonly");
	ok(p->terminal && p->has_console_size && p->console_width == 120 &&
		   p->console_height == 40,
	   "terminal and console size");
	ok(p->user.uid == 1000 && p->user.gid == 1000 && p->user.has_umask &&
		   p->user.umask == 18 && p->user.n_additional_gids == 2 &&
		   p->user.additional_gids[1] == 20,
	   "user");
	ok(p->n_args == 3 && strcmp(p->args[2], "echo hi") == 0 &&
		   p->args[3] == NULL,
	   "args, NULL-terminated");
	ok(p->n_env == 2 && strcmp(p->cwd, "/work") == 0, "env and cwd");
	ok(p->capabilities != NULL && p->capabilities->n_bounding == 2 &&
		   p->capabilities->n_inheritable == 0 &&
		   p->capabilities->inheritable == NULL,
	   "capabilities, an absent set is NULL");
	ok(p->n_rlimits == 1 && p->rlimits[0].soft == 1024 &&
		   p->rlimits[0].hard == 1048576,
	   "rlimits");
	ok(p->no_new_privileges && p->has_oom_score_adj &&
		   p->oom_score_adj == -500,
	   "noNewPrivileges and oomScoreAdj");
	ok(s->n_mounts == 2 && strcmp(s->mounts[1].type, "bind") == 0 &&
		   s->mounts[1].n_options == 2,
	   "mounts");
	ok(s->n_hooks[OCI_HOOK_PRESTART] == 1 &&
		   s->hooks[OCI_HOOK_PRESTART][0].has_timeout &&
		   s->hooks[OCI_HOOK_PRESTART][0].timeout == 10 &&
		   s->n_hooks[OCI_HOOK_POSTSTOP] == 0,
	   "hooks");
	ok(oci_spec_annotation(s, "io.kubernetes.cri.container-type") != NULL &&
		   oci_spec_annotation(s, "nope") == NULL,
	   "annotations");
	if (!ok(l != NULL, "linux section"))
		goto out;
	ok(l->n_namespaces == 5 && l->namespaces[1].type == OCI_NS_NETWORK &&
		   strcmp(l->namespaces[1].path, "/var/run/netns/x") == 0 &&
		   l->namespaces[0].path == NULL,
	   "namespaces");
	ok(l->has_resources && l->resources.memory_limit == 268435456 &&
		   l->resources.memory_swap == -1,
	   "memory limit; absent swap is -1");
	ok(l->resources.cpu_shares == 512 && l->resources.cpu_quota == 50000 &&
		   l->resources.cpu_period == 100000 &&
		   strcmp(l->resources.cpu_cpus, "0-1") == 0,
	   "cpu");
	ok(l->resources.pids_limit == 100, "pids");
	ok(l->resources.n_devices == 2 && !l->resources.devices[0].allow &&
		   l->resources.devices[0].type == 'a' &&
		   l->resources.devices[0].major == -1 &&
		   l->resources.devices[1].type == 'c' &&
		   l->resources.devices[1].minor == 3,
	   "device cgroup rules, absent type is 'a' and numbers -1");
	ok(l->seccomp != NULL && l->seccomp->n_syscalls == 2 &&
		   l->seccomp->has_default_errno_ret &&
		   l->seccomp->syscalls[1].n_args == 1 &&
		   l->seccomp->syscalls[1].args[0].value == UINT64_MAX,
	   "seccomp, with a 64-bit argument value");
	ok(l->n_masked_paths == 2 && l->n_readonly_paths == 1, "masked and "
							       "read-only "
							       "paths");
	ok(l->n_sysctl == 1 && strcmp(l->sysctl_values[0], "1") == 0, "sysctl");
	ok(strcmp(l->cgroups_path, "system.slice:docker:abc") == 0, "cgroupsPat"
								    "h");
out:
	oci_spec_free(s);
}

/* A config with `field` replaced: the error must name the field. */
static void bad(const char *json, const char *want)
{
	struct kiln_error err = { 0 };
	struct oci_spec *s = oci_spec_parse(json, strlen(json), &err);

	ok(s == NULL && strstr(err.msg, want) != NULL,
	   "refused with \"%s\" (got \"%s\")", want, err.msg);
	oci_spec_free(s);
}

#define MIN_HEAD "{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":\"rootfs\"},"
#define MIN_PROC "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"}"

static void test_bad_input(void)
{
	bad("", "invalid JSON");
	bad("[1]", "config.json: must be an object");
	bad("{\"root\":{\"path\":\"r\"}}", "ociVersion: missing");
	bad("{\"ociVersion\":\"2.0.0\",\"root\":{\"path\":\"r\"}}", "ociVersion"
								    ": "
								    "\"2.0.0\" "
								    "is not "
								    "supporte"
								    "d");
	bad("{\"ociVersion\":\"1.0.0\"}", "root: missing");
	bad("{\"ociVersion\":\"1.0.0\",\"root\":{\"path\":1}}", "root.path: "
								"must be a "
								"string");
	bad(MIN_HEAD "\"process\":{\"args\":[],\"cwd\":\"/\"}}", "process.args:"
								 " empty");
	bad(MIN_HEAD "\"process\":{\"args\":[\"a\",7],\"cwd\":\"/\"}}",
	    "process.args[1]: must be a string");
	bad(MIN_HEAD "\"process\":{\"args\":[\"a\"],\"cwd\":\"rel\"}}",
	    "process.cwd: \"rel\" is not an absolute path");
	bad(MIN_HEAD "\"process\":{\"args\":[\"a\"]}}", "process.cwd: missing");
	bad(MIN_HEAD "\"process\":{\"args\":[\"a\"],\"cwd\":\"/\","
		     "\"env\":[\"NOEQUALS\"]}}",
	    "process.env[0]: \"NOEQUALS\" is not KEY=value");
	bad(MIN_HEAD "\"process\":{\"args\":[\"a\"],\"cwd\":\"/\","
		     "\"user\":{\"uid\":-1}}}",
	    "process.user.uid: must be an integer");
	bad(MIN_HEAD "\"process\":{\"args\":[\"a\"],\"cwd\":\"/\","
		     "\"user\":{\"uid\":4294967296}}}",
	    "process.user.uid: 4294967296 is out of range");
	bad(MIN_HEAD "\"process\":{\"args\":[\"a\"],\"cwd\":\"/\","
		     "\"rlimits\":[{\"type\":\"NOFILE\",\"soft\":1,"
		     "\"hard\":1}]}}",
	    "process.rlimits[0].type: must be \"RLIMIT_<name>\"");
	bad(MIN_HEAD "\"process\":{\"args\":[\"a\"],\"cwd\":\"/\","
		     "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1,"
		     "\"hard\":1},{\"type\":\"RLIMIT_NOFILE\",\"soft\":1,"
		     "\"hard\":1}]}}",
	    "process.rlimits[1].type: RLIMIT_NOFILE given twice");
	bad(MIN_HEAD MIN_PROC ",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},"
			      "{\"type\":\"uts\"},{\"type\":\"foo\"}]}}",
	    "linux.namespaces[2].type: unknown \"foo\"");
	bad(MIN_HEAD MIN_PROC ",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},"
			      "{\"type\":\"pid\"}]}}",
	    "linux.namespaces[1].type: \"pid\" given twice");
	bad(MIN_HEAD MIN_PROC ",\"mounts\":[{\"destination\":\"proc\"}]}",
	    "mounts[0].destination: must be an absolute path");
	bad(MIN_HEAD MIN_PROC ",\"hooks\":{\"poststop\":[{\"path\":\"x\"}]}}",
	    "hooks.poststop[0].path: must be an absolute path");
	bad(MIN_HEAD MIN_PROC ",\"hooks\":{\"prestart\":[{\"path\":\"/x\","
			      "\"timeout\":0}]}}",
	    "hooks.prestart[0].timeout: 0 is out of range");
	bad(MIN_HEAD MIN_PROC ",\"linux\":{\"resources\":{\"memory\":"
			      "{\"limit\":\"1G\"}}}}",
	    "linux.resources.memory.limit: must be an integer");
	bad(MIN_HEAD MIN_PROC ",\"linux\":{\"resources\":{\"devices\":"
			      "[{\"allow\":true,\"access\":\"rwx\"}]}}}",
	    "linux.resources.devices[0].access: \"rwx\" is not a subset");
	bad(MIN_HEAD MIN_PROC ",\"linux\":{\"seccomp\":{\"syscalls\":[]}}}",
	    "linux.seccomp.defaultAction: missing");
	bad(MIN_HEAD MIN_PROC ",\"linux\":{\"seccomp\":{\"defaultAction\":"
			      "\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":"
			      "[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
			      "\"args\":[{\"index\":6,\"value\":1,"
			      "\"op\":\"SCMP_CMP_EQ\"}]}]}}}",
	    "linux.seccomp.syscalls[0].args[0].index: 6 is out of range");
	bad(MIN_HEAD MIN_PROC ",\"annotations\":{\"a\":1}}", "annotations.a: "
							     "must be a "
							     "string");
}

static void test_minimal_and_nesting(void)
{
	const char *min = MIN_HEAD MIN_PROC "}";
	struct kiln_error err = { 0 };
	struct oci_spec *s = oci_spec_parse(min, strlen(min), &err);
	char deep[200];

	ok(s != NULL && s->linux_ == NULL && !s->root_readonly &&
		   s->process->capabilities == NULL,
	   "a minimal config parses, absent sections NULL");
	oci_spec_free(s);
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	bad(deep, "nested deeper than");
}

static void test_process_json(void)
{
	const char *js = "{\"args\":[\"ls\"],\"cwd\":\"/tmp\","
			 "\"terminal\":false}";
	struct kiln_error err = { 0 };
	struct oci_process *p = oci_process_parse(js, strlen(js), &err);

	ok(p != NULL && p->n_args == 1 && strcmp(p->cwd, "/tmp") == 0,
	   "exec --process JSON parses (%s)", err.msg);
	oci_process_free(p);
	js = "{\"cwd\":\"/\"}";
	p = oci_process_parse(js, strlen(js), &err);
	ok(p == NULL && strstr(err.msg, "process.args: empty") != NULL,
	   "process JSON without args refused: %s", err.msg);
}

static void test_load(void)
{
	char dir[] = "/tmp/kiln-oci-XXXXXX", path[64];
	struct kiln_error err = { 0 };
	struct oci_spec *s;
	FILE *f;

	if (!ok(mkdtemp(dir) != NULL, "temporary bundle"))
		return;
	s = oci_spec_load(dir, &err);
	ok(s == NULL && strstr(err.msg, "config.json") != NULL &&
		   err.errnum == ENOENT,
	   "a bundle without config.json: %s", err.msg);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	f = fopen(path, "w");
	fputs(MIN_HEAD MIN_PROC "}", f);
	fclose(f);
	s = oci_spec_load(dir, &err);
	ok(s != NULL, "BUNDLE/config.json loads");
	oci_spec_free(s);
	unlink(path);
	mkdir(path, 0700); /* config.json a directory: refused, not read */
	s = oci_spec_load(dir, &err);
	ok(s == NULL && strstr(err.msg, "not a regular file") != NULL,
	   "config.json that is a directory: %s", err.msg);
	rmdir(path);
	rmdir(dir);
}

int main(void)
{
	test_docker_config();
	test_bad_input();
	test_minimal_and_nesting();
	test_process_json();
	test_load();
	return tap_done();
}
