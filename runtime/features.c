/* SPDX-License-Identifier: Apache-2.0 */
/* kiln features: what this runtime supports, as runtime-spec's
 * features.md shapes it (runc features prints the same document). */
#include <stdio.h>

#include "kiln.h"

int verb_features(const struct kiln_cli *cli, int argc, char **argv,
		  struct kiln_error *err)
{
	(void)cli;
	(void)argv;
	if (argc != 1)
		return kiln_error_set(err, 0, "usage: kiln features"), 1;
	printf("{\n"
	       "    \"ociVersionMin\": \"1.0.0\",\n"
	       "    \"ociVersionMax\": \"1.2.0\",\n"
	       "    \"hooks\": [\"prestart\", \"createRuntime\", "
	       "\"createContainer\", \"startContainer\", \"poststart\", "
	       "\"poststop\"],\n"
	       "    \"mountOptions\": [\"ro\", \"rw\", \"bind\", \"rbind\", "
	       "\"nosuid\", \"suid\", \"nodev\", \"dev\", \"noexec\", "
	       "\"exec\", \"private\", \"rprivate\", \"shared\", "
	       "\"rshared\", \"slave\", \"rslave\"],\n"
	       "    \"linux\": {\n"
	       "        \"namespaces\": [\"network\", \"mount\", \"pid\", "
	       "\"ipc\", \"uts\", \"cgroup\"],\n"
	       "        \"cgroup\": {\"v1\": true, \"v2\": true, "
	       "\"systemd\": false, \"systemdUser\": false},\n"
	       "        \"seccomp\": {\"enabled\": true},\n"
	       "        \"apparmor\": {\"enabled\": %s},\n"
	       "        \"selinux\": {\"enabled\": %s}\n"
	       "    },\n"
	       "    \"annotations\": {\n"
	       "        \"io.kiln.vm\": \"true\"\n"
	       "    }\n"
	       "}\n",
	       confine_apparmor_enabled() ? "true" : "false",
	       confine_selinux_enabled() ? "true" : "false");
	return 0;
}
