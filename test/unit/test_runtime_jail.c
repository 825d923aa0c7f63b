/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/jail.c: jail uids picked and held, the VM's folder, drives. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../runtime/kiln.h"
#include "../../vmm/jail.h"
#include "tap.h"

static char top[] = "/tmp/kiln-rtjail-XXXXXX";

/* What kiln-vmm --jail does for uid: its lock, held; the fd. */
static int vmm_lock(const char *dir, uid_t uid)
{
	char p[512];
	int fd;

	snprintf(p, sizeof(p), "%s/%u.lock", dir, (unsigned)uid);
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_reserve(const char *locks)
{
	struct vm_jail a, b, c, d;
	struct kiln_error err = { 0 };
	int held, r;

	vm_jail_set_lock_dir(locks);
	r = vm_jail_reserve(&a, &err);
	ok(r == 0 && a.uid == JAIL_UID_BASE,
	   "the first uid is the range's first (%u)", (unsigned)a.uid);
	r = vm_jail_reserve(&b, &err);
	ok(r == 0 && b.uid == JAIL_UID_BASE + 1,
	   "a second reservation (another kiln) takes the next (%u)",
	   (unsigned)b.uid);
	held = vmm_lock(locks, JAIL_UID_BASE + 2);
	ok(held >= 0 && vm_jail_uid_busy(JAIL_UID_BASE + 2), "a kiln-vmm's "
							     "lock is seen as "
							     "busy");
	r = vm_jail_reserve(&c, &err);
	ok(r == 0 && c.uid == JAIL_UID_BASE + 3,
	   "a uid whose kiln-vmm runs is skipped (%u)", (unsigned)c.uid);
	ok(vm_jail_wait_free(JAIL_UID_BASE + 2, 50) < 0, "wait_free times out "
							 "while the kiln-vmm "
							 "holds it");
	close(held);
	ok(vm_jail_wait_free(JAIL_UID_BASE + 2, 50) == 0, "and is free once it "
							  "let go");
	vm_jail_release(&a);
	r = vm_jail_reserve(&d, &err);
	ok(r == 0 && d.uid == JAIL_UID_BASE,
	   "a released uid is taken again (%u)", (unsigned)d.uid);
	ok(!vm_jail_uid_busy(JAIL_UID_BASE + 40), "a uid never used is not "
						  "busy");
	vm_jail_release(&b);
	vm_jail_release(&c);
	vm_jail_release(&d);
	ok(d.uid == 0 && d.lock_fd == -1, "release forgets the uid");
	vm_jail_set_lock_dir(NULL);
}

static void test_dir(const char *state)
{
	struct vm_jail j = { .uid = 0, .lock_fd = -1 };
	struct kiln_error err = { 0 };
	char buf[64];
	struct stat st;
	int fd = open(state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ssize_t n;

	n = vm_jail_dir(&j, fd, &err);
	ok(n == 0, "unjailed: the VM's folder (%s)", err.msg);
	n = readlinkat(fd, VM_VSOCK, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	ok(strcmp(buf, VM_DIR "/" VM_VSOCK) == 0, "%s -> %s", VM_VSOCK, buf);
	n = readlinkat(fd, VM_API, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	ok(strcmp(buf, VM_DIR "/" VM_API) == 0, "%s -> %s", VM_API, buf);
	ok(faccessat(fd, "jail.uid", F_OK, AT_SYMLINK_NOFOLLOW) < 0, "unjailed:"
								     " no uid "
								     "record");
	if (geteuid() != 0) {
		tap_skip("not root: the jail uid's folder and drives");
		tap_skip("not root");
		tap_skip("not root");
		tap_skip("not root");
		tap_skip("not root");
		close(fd);
		return;
	}
	j.uid = JAIL_UID_BASE + 7;
	ok(vm_jail_dir(&j, fd, &err) == 0 &&
		   fstatat(fd, VM_DIR, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		   st.st_uid == j.uid && st.st_gid == j.uid &&
		   (st.st_mode & 0777) == 0700,
	   "jailed: %s is the uid's, 0700", VM_DIR);
	{
		int r = openat(fd, "jail.uid", O_RDONLY | O_CLOEXEC);

		n = r >= 0 ? read(r, buf, sizeof(buf) - 1) : -1;
		buf[n > 0 ? n : 0] = '\0';
		if (r >= 0)
			close(r);
		buf[strcspn(buf, "\n")] = '\0';
		ok(strtoul(buf, NULL, 10) == j.uid, "the uid recorded: %s",
		   buf);
	}
	{
		char rw[256], ro[256];
		int f;

		snprintf(rw, sizeof(rw), "%s/rw.img", state);
		snprintf(ro, sizeof(ro), "%s/ro.img", state);
		f = open(rw, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		close(f);
		f = open(ro, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		close(f);
		ok(vm_jail_drive(&j, rw, false, &err) == 0 &&
			   stat(rw, &st) == 0 && st.st_uid == j.uid &&
			   (st.st_mode & 0777) == 0600,
		   "a writable drive becomes the uid's");
		n = vm_jail_drive(&j, ro, true, &err);
		n = n == 0 ? stat(ro, &st) : -1;
		ok(n == 0 && st.st_uid == 0 && (st.st_mode & 0777) == 0604,
		   "a read-only drive stays root's, readable by others (%o)",
		   (unsigned)(st.st_mode & 0777));
		unlink(rw);
		unlink(ro);
	}
	/* a socket the VMM made, and delete's cleanup */
	{
		int f = openat(fd, VM_DIR "/" VM_VSOCK, O_WRONLY | O_CREAT,
			       0600);

		close(f);
	}
	vm_jail_remove(fd);
	ok(faccessat(fd, VM_DIR, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
		   faccessat(fd, "jail.uid", F_OK, AT_SYMLINK_NOFOLLOW) < 0,
	   "remove: the folder and the record are gone");
	close(fd);
}

/* "jail" in the config; the VM's files by their real paths (the jail
 * refuses a `..`, which the installed defaults have) */
static void test_config(void)
{
	char conf[256], k[256], body[700];
	struct vm_config c;
	struct kiln_error err = { 0 };
	FILE *f;
	int r;

	snprintf(k, sizeof(k), "%s/vmlinux", top);
	snprintf(conf, sizeof(conf), "%s/none.json", top);
	setenv("KILN_CONFIG", conf, 1);
	r = vm_config_load(&c, &err);
	ok(r == 0 && c.jail, "jail on by default");
	vm_config_clear(&c);
	f = fopen(k, "w");
	if (f != NULL)
		fclose(f);
	snprintf(conf, sizeof(conf), "%s/conf.json", top);
	snprintf(body, sizeof(body),
		 "{\"jail\": false, \"kernel\": \"%s/state/../vmlinux\"}", top);
	f = fopen(conf, "w");
	if (f != NULL) {
		fputs(body, f);
		fclose(f);
	}
	setenv("KILN_CONFIG", conf, 1);
	r = vm_config_load(&c, &err);
	ok(r == 0 && !c.jail, "\"jail\": false turns it off (%s)", err.msg);
	ok(r == 0 && strcmp(c.kernel, k) == 0,
	   "the kernel by its real path: %s", r == 0 ? c.kernel : "");
	vm_config_clear(&c);
	unsetenv("KILN_CONFIG");
}

static void test_vmm_pid(void)
{
	pid_t child = fork();

	if (child == 0) {
		pause();
		_exit(0);
	}
	ok(vm_jail_vmm_pid(getpid()) == child, "the VMM is found as the "
					       "waiter's child");
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	ok(vm_jail_vmm_pid(getpid()) == -1, "none once it is gone");
}

int main(void)
{
	char locks[128], state[128], cmd[200];

	if (mkdtemp(top) == NULL)
		return 1;
	snprintf(locks, sizeof(locks), "%s/locks", top);
	snprintf(state, sizeof(state), "%s/state", top);
	mkdir(state, 0700);
	test_reserve(locks);
	test_dir(state);
	test_vmm_pid();
	test_config();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	if (system(cmd) != 0)
		ok(0, "clean up %s", top);
	return tap_done();
}
