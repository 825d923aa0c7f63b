/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln-vmm jailed (--jail, docs/jail.md), the runtime's side: a uid per
 * VM, the folder its sockets live in, the files and TAPs it may use.
 *
 * Uids come from JAIL_UID_BASE .. + JAIL_UID_COUNT (uid = gid). kiln-vmm
 * holds JAIL_LOCK_DIR/UID.lock for its life; the runtime holds a lock of
 * its own, UID.kiln, from the moment it picks a uid until it ends (the
 * pid process, or a template's builder until its VMM holds UID.lock), so
 * that two `kiln create`s never pick the same uid: a uid is free when
 * neither is held, and a create that loses the race for UID.kiln takes
 * the next one. A kiln-vmm started by hand with a uid of the range is
 * seen by its UID.lock and skipped.
 *
 * Everything here is the calling process's main thread's (the pid
 * process, a template's builder, `kiln delete`).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"
#include "../vmm/jail.h"
#include "kiln.h"

#define JAIL_RECORD "jail.uid" /* in the state dir: the VM's uid */

static const char *lock_dir = JAIL_LOCK_DIR;

void vm_jail_set_lock_dir(const char *dir)
{
	lock_dir = dir != NULL ? dir : JAIL_LOCK_DIR;
}

/* Is the lock at path held by someone (not us)? */
static bool held(const char *path)
{
	cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return false; /* never made: never held */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK;
	flock(fd, LOCK_UN);
	return false;
}

bool vm_jail_uid_busy(uid_t uid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%u.lock", lock_dir, (unsigned)uid);
	return held(path);
}

int vm_jail_reserve(struct vm_jail *j, struct kiln_error *err)
{
	char path[PATH_MAX];

	j->uid = 0;
	j->lock_fd = -1;
	if ((strcmp(lock_dir, JAIL_LOCK_DIR) == 0 &&
	     mkdir("/run/kiln", 0755) < 0 && errno != EEXIST) ||
	    (mkdir(lock_dir, 0700) < 0 && errno != EEXIST))
		return kiln_error_set(err, errno, "make `%s`", lock_dir);
	for (uint32_t i = 0; i < JAIL_UID_COUNT; i++) {
		uid_t uid = (uid_t)(JAIL_UID_BASE + i);
		int fd;

		snprintf(path, sizeof(path), "%s/%u.kiln", lock_dir,
			 (unsigned)uid);
		fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			  0600);
		if (fd < 0)
			return kiln_error_set(err, errno, "open `%s`", path);
		/* another kiln has it: the next one */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;

			close(fd);
			if (e == EWOULDBLOCK)
				continue;
			return kiln_error_set(err, e, "lock `%s`", path);
		}
		/* a kiln-vmm of it still alive (a template, one by hand) */
		if (vm_jail_uid_busy(uid)) {
			close(fd);
			continue;
		}
		j->uid = uid;
		j->lock_fd = fd;
		return 0;
	}
	return kiln_error_set(err, EAGAIN,
			      "every jail uid (%u from %u) is in use: too many "
			      "VMs",
			      JAIL_UID_COUNT, JAIL_UID_BASE);
}

void vm_jail_release(struct vm_jail *j)
{
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	j->lock_fd = -1;
	j->uid = 0;
}

/*
 * Polled each millisecond: `kiln run` and `kiln delete` end with this
 * wait for the VMM's exit (7-24 ms after its waiter's kill in the test
 * bed), which 10 ms steps rounded up by 5 ms on average.
 */
int vm_jail_wait_free(uid_t uid, unsigned int ms)
{
	for (unsigned int t = 0; t < ms; t++) {
		if (!vm_jail_uid_busy(uid))
			return 0;
		usleep(1000);
	}
	return vm_jail_uid_busy(uid) ? -1 : 0;
}

/* ---- files ---------------------------------------------------------------- */

int vm_jail_dir(const struct vm_jail *j, int dirfd, struct kiln_error *err)
{
	static const char *const links[][2] = {
		{ VM_VSOCK, VM_DIR "/" VM_VSOCK },
		{ VM_API, VM_DIR "/" VM_API },
	};

	if (mkdirat(dirfd, VM_DIR, 0700) < 0 && errno != EEXIST)
		return kiln_error_set(err, errno, "make " VM_DIR);
	if (j->uid != 0 &&
	    fchownat(dirfd, VM_DIR, j->uid, j->uid, AT_SYMLINK_NOFOLLOW) < 0)
		return kiln_error_set(err, errno, "chown " VM_DIR);
	/* where the other kiln commands and the shim look, as before */
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		unlinkat(dirfd, links[i][0], 0);
		if (symlinkat(links[i][1], dirfd, links[i][0]) < 0)
			return kiln_error_set(err, errno, "link %s",
					      links[i][0]);
	}
	if (j->uid != 0) {
		char rec[16];
		int n = snprintf(rec, sizeof(rec), "%u\n", (unsigned)j->uid);
		cleanup_close int fd = openat(dirfd, JAIL_RECORD,
					      O_WRONLY | O_CREAT | O_TRUNC |
						      O_NOFOLLOW | O_CLOEXEC,
					      0600);

		if (fd < 0 || util_write_all(fd, rec, (size_t)n) < 0)
			return kiln_error_set(err, errno, "write " JAIL_RECORD);
	}
	return 0;
}

int vm_jail_own(const struct vm_jail *j, const char *path,
		struct kiln_error *err)
{
	if (j->uid != 0 && lchown(path, j->uid, j->uid) < 0)
		return kiln_error_set(err, errno, "chown `%s`", path);
	return 0;
}

int vm_jail_drive(const struct vm_jail *j, const char *path, bool readonly,
		  struct kiln_error *err)
{
	struct stat st;

	if (j->uid == 0)
		return 0;
	if (stat(path, &st) < 0)
		return kiln_error_set(err, errno, "drive `%s`", path);
	/* a block device stays as it is: kiln-vmm's check says what to do */
	if (!S_ISREG(st.st_mode))
		return 0;
	if (!readonly) {
		if ((st.st_uid != j->uid || st.st_gid != j->uid) &&
		    chown(path, j->uid, j->uid) < 0)
			return kiln_error_set(err, errno, "chown drive `%s`",
					      path);
		return 0;
	}
	/*
	 * A read-only image (a cached layer, shared by every container
	 * that uses it) readable by any uid: a jail sees only the files
	 * bound into it, and the cache folder itself stays root's 0700.
	 */
	if ((st.st_mode & S_IROTH) == 0 &&
	    chmod(path, (st.st_mode & 07777) | S_IROTH) < 0)
		return kiln_error_set(err, errno, "chmod drive `%s`", path);
	return 0;
}

pid_t vm_jail_vmm_pid(pid_t waiter)
{
	char path[64];
	cleanup_fclose FILE *f = NULL;
	int pid;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)waiter,
		 (int)waiter);
	f = fopen(path, "re");
	if (f == NULL || fscanf(f, "%d", &pid) != 1 || pid <= 0)
		return -1;
	return (pid_t)pid;
}

void vm_dir_unlink(int parent, const char *name, const char *prefix)
{
	int fd = openat(parent, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0 &&
		    strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

void vm_dir_remove(int parent, const char *name)
{
	vm_dir_unlink(parent, name, "");
	unlinkat(parent, name, AT_REMOVEDIR);
}

void vm_jail_remove(int dirfd)
{
	char rec[32] = "";
	unsigned long uid;
	int fd = openat(dirfd, JAIL_RECORD, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);

		close(fd);
		rec[n > 0 ? n : 0] = '\0';
		uid = strtoul(rec, NULL, 10);
		/* its VMM dies with its waiter (parent-death signal): wait
		 * until the uid is free, so that nothing of it is left */
		if (uid >= JAIL_UID_BASE &&
		    uid < (unsigned long)JAIL_UID_BASE + JAIL_UID_COUNT)
			vm_jail_wait_free((uid_t)uid, 5000);
		unlinkat(dirfd, JAIL_RECORD, 0);
	}
	vm_dir_remove(dirfd, VM_DIR);
	/* gone when the VMM pivoted; left only by one killed before */
	unlinkat(dirfd, VM_JAIL_ROOT, AT_REMOVEDIR);
}
