/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host-side confinement a config asks of the container's process
 * (process.oomScoreAdj, apparmorProfile, selinuxLabel), given to the host
 * process that stands for the container: kiln-vmm, which holds its memory
 * and is what a guest escape would land in. The container's own processes
 * run in the guest, whose kernel has no such modules; the VM is their
 * confinement.
 *
 * A profile or label on a host without AppArmor or SELinux is refused,
 * as runc refuses it: the config asks for a confinement we cannot give.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"
#include "kiln.h"

bool confine_apparmor_enabled(void)
{
	char c = 0;
	int fd = open("/sys/module/apparmor/parameters/enabled",
		      O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c == 'Y';
}

bool confine_selinux_enabled(void)
{
	return access("/sys/fs/selinux/enforce", F_OK) == 0;
}

int confine_plan(const struct oci_process *p, struct confine *c,
		 struct kiln_error *err)
{
	*c = (struct confine){ 0 };
	if (p == NULL)
		return 0;
	if (p->apparmor_profile != NULL && p->apparmor_profile[0] != '\0') {
		if (!confine_apparmor_enabled())
			return kiln_error_set(err, 0,
					      "process.apparmorProfile \"%s\": "
					      "AppArmor is not enabled on this "
					      "host",
					      p->apparmor_profile);
		c->apparmor = p->apparmor_profile;
	}
	if (p->selinux_label != NULL && p->selinux_label[0] != '\0') {
		if (!confine_selinux_enabled())
			return kiln_error_set(err, 0,
					      "process.selinuxLabel \"%s\": "
					      "SELinux is not enabled on this "
					      "host",
					      p->selinux_label);
		c->selinux = p->selinux_label;
	}
	c->has_oom_score_adj = p->has_oom_score_adj;
	c->oom_score_adj = p->oom_score_adj;
	return 0;
}

static int write_attr(const char *path, const char *fmt, const char *arg)
{
	char buf[4096];
	int n = snprintf(buf, sizeof(buf), fmt, arg);
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (n < 0 || (size_t)n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (fd < 0)
		return -1;
	return util_write_all(fd, buf, (size_t)n);
}

/*
 * In the forked child, just before it execs: async-signal-safe enough
 * (open, write, snprintf of strings). Reports on stderr, the VMM's log.
 */
int confine_apply(const struct confine *c)
{
	char num[16];

	if (c->has_oom_score_adj) {
		snprintf(num, sizeof(num), "%d", (int)c->oom_score_adj);
		if (write_attr("/proc/self/oom_score_adj", "%s", num) < 0) {
			dprintf(2, "kiln: oom_score_adj %s: %s\n", num,
				strerror(errno));
			return -1;
		}
	}
	/* both take effect at the exec that follows */
	if (c->apparmor != NULL &&
	    write_attr("/proc/self/attr/apparmor/exec", "exec %s",
		       c->apparmor) < 0 &&
	    write_attr("/proc/self/attr/exec", "exec %s", c->apparmor) < 0) {
		dprintf(2, "kiln: AppArmor profile \"%s\": %s\n", c->apparmor,
			strerror(errno));
		return -1;
	}
	if (c->selinux != NULL &&
	    write_attr("/proc/self/attr/exec", "%s", c->selinux) < 0) {
		dprintf(2, "kiln: SELinux label \"%s\": %s\n", c->selinux,
			strerror(errno));
		return -1;
	}
	return 0;
}
