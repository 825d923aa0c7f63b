/* SPDX-License-Identifier: Apache-2.0 */
/* kiln spec: a default config.json, as `runc spec` writes one. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../oci/state.h"
#include "kiln.h"

/* runc's example: sh on a terminal, a read-only rootfs/, the usual mounts */
static const char default_spec[] =
	"{\n"
	"\t\"ociVersion\": \"1.0.2\",\n"
	"\t\"process\": {\n"
	"\t\t\"terminal\": true,\n"
	"\t\t\"user\": {\n\t\t\t\"uid\": 0,\n\t\t\t\"gid\": 0\n\t\t},\n"
	"\t\t\"args\": [\n\t\t\t\"sh\"\n\t\t],\n"
	"\t\t\"env\": [\n"
	"\t\t\t\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
	"/sbin:/bin\",\n"
	"\t\t\t\"TERM=xterm\"\n\t\t],\n"
	"\t\t\"cwd\": \"/\",\n"
	"\t\t\"capabilities\": {\n"
	"\t\t\t\"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", "
	"\"CAP_NET_BIND_SERVICE\"],\n"
	"\t\t\t\"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", "
	"\"CAP_NET_BIND_SERVICE\"],\n"
	"\t\t\t\"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", "
	"\"CAP_NET_BIND_SERVICE\"],\n"
	"\t\t\t\"ambient\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", "
	"\"CAP_NET_BIND_SERVICE\"]\n"
	"\t\t},\n"
	"\t\t\"rlimits\": [\n\t\t\t{\n\t\t\t\t\"type\": \"RLIMIT_NOFILE\",\n"
	"\t\t\t\t\"hard\": 1024,\n\t\t\t\t\"soft\": 1024\n\t\t\t}\n\t\t],\n"
	"\t\t\"noNewPrivileges\": true\n"
	"\t},\n"
	"\t\"root\": {\n\t\t\"path\": \"rootfs\",\n\t\t\"readonly\": "
	"true\n\t},\n"
	"\t\"hostname\": \"kiln\",\n"
	"\t\"mounts\": [\n"
	"\t\t{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": "
	"\"proc\"},\n"
	"\t\t{\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": "
	"\"tmpfs\", \"options\": [\"nosuid\", \"strictatime\", \"mode=755\", "
	"\"size=65536k\"]},\n"
	"\t\t{\"destination\": \"/dev/pts\", \"type\": \"devpts\", "
	"\"source\": \"devpts\", \"options\": [\"nosuid\", \"noexec\", "
	"\"newinstance\", \"ptmxmode=0666\", \"mode=0620\", \"gid=5\"]},\n"
	"\t\t{\"destination\": \"/dev/shm\", \"type\": \"tmpfs\", "
	"\"source\": \"shm\", \"options\": [\"nosuid\", \"noexec\", "
	"\"nodev\", \"mode=1777\", \"size=65536k\"]},\n"
	"\t\t{\"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", "
	"\"source\": \"mqueue\", \"options\": [\"nosuid\", \"noexec\", "
	"\"nodev\"]},\n"
	"\t\t{\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": "
	"\"sysfs\", \"options\": [\"nosuid\", \"noexec\", \"nodev\", "
	"\"ro\"]},\n"
	"\t\t{\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", "
	"\"source\": \"cgroup\", \"options\": [\"nosuid\", \"noexec\", "
	"\"nodev\", \"relatime\", \"ro\"]}\n"
	"\t],\n"
	"\t\"linux\": {\n"
	"\t\t\"resources\": {\n\t\t\t\"devices\": [{\"allow\": false, "
	"\"access\": \"rwm\"}]\n\t\t},\n"
	"\t\t\"namespaces\": [\n"
	"\t\t\t{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": "
	"\"ipc\"},\n"
	"\t\t\t{\"type\": \"uts\"}, {\"type\": \"mount\"}, {\"type\": "
	"\"cgroup\"}\n"
	"\t\t],\n"
	"\t\t\"maskedPaths\": [\"/proc/acpi\", \"/proc/asound\", "
	"\"/proc/kcore\", \"/proc/keys\", \"/proc/latency_stats\", "
	"\"/proc/timer_list\", \"/proc/timer_stats\", \"/proc/sched_debug\", "
	"\"/sys/firmware\", \"/proc/scsi\"],\n"
	"\t\t\"readonlyPaths\": [\"/proc/bus\", \"/proc/fs\", \"/proc/irq\", "
	"\"/proc/sys\", \"/proc/sysrq-trigger\"]\n"
	"\t}\n"
	"}\n";

const char *kiln_default_spec(void)
{
	return default_spec;
}

int verb_spec(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err)
{
	const char *bundle = ".";
	cleanup_close int dirfd = -1;
	bool rootless = false;

	for (int i = 1; i < argc; i++) {
		int r = cli_flag(argc, argv, &i, "bundle", &bundle, err);

		if (r == 0)
			r = cli_flag(argc, argv, &i, "b", &bundle, err);
		if (r < 0)
			return 1;
		if (r > 0)
			continue;
		if (cli_bool(argv, i, "rootless", &rootless)) {
			if (rootless)
				return kiln_error_set(err, 0,
						      "spec --rootless: kiln "
						      "runs as root (its VMM "
						      "drops privileges)"),
				       1;
			continue;
		}
		return kiln_error_set(err, 0, "spec: unknown argument `%s`",
				      argv[i]),
		       1;
	}
	dirfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return kiln_error_set(err, errno, "bundle `%s`", bundle), 1;
	if (faccessat(dirfd, "config.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return kiln_error_set(err, EEXIST,
				      "`%s/config.json` exists: remove it "
				      "first",
				      bundle),
		       1;
	if (oci_write_atomic(dirfd, "config.json", default_spec,
			     sizeof(default_spec) - 1, 0666, err) < 0)
		return 1;
	(void)cli;
	return 0;
}
