/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Warm templates: a container's VM forked from a booted guest instead of
 * booted cold (kiln-vmm's templates and forks: vmm/fork.h).
 *
 * A template is one kiln-vmm per VM shape (kiln-vmm, kernel and
 * initramfs files, vCPUs, memory, network interfaces), in
 * <template_dir>/<hash of the shape>/:
 *   key        the shape, as text (kiln templates shows it)
 *   lock       held by the builder while it builds
 *   slot.img   a sparse placeholder: every drive slot of the template
 *              (the template's jail uid's, readable by its forks')
 *   vm/        the template VMM's cwd (its jail uid's, docs/jail.md):
 *     api.sock   its API; vsock.sock its agent while built
 *     fork.sock  once built: forks start here (they connect as root,
 *                before their own jail)
 *   jail       its --jail root, gone once it pivoted
 *   pid        the template VMM's pid (jailed: its waiter's) and start
 *   vmm.log
 * It has template_slots() drive slots, all read-write (their count is
 * part of the shape), and one interface per network interface of the
 * shape (TAPs of its own network namespace, MACs TEMPLATE_MAC(i)); a fork
 * fills the slots it needs with its container's files and the rest with
 * the placeholder, read-only.
 *
 * The pid process of a container whose shape has no template boots cold,
 * then starts a builder (template_spawn), a daemon of its own: out of the
 * container's cgroup, network namespace and session, so the template
 * outlives the container. The builder boots the template VM, waits for
 * its agent, pauses it and makes it a template, then exits; the template
 * VMM stays until `kiln templates --rm` or a signal. A template that died
 * leaves a socket nobody serves: the fork fails, the container boots
 * cold and a new template is built.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/agent_client.h"
#include "../lib/cleanup.h"
#include "../lib/file.h"
#include "../lib/log.h"
#include "../lib/nl.h"
#include "../lib/prefault.h"
#include "../lib/util.h"
#include "../oci/container.h"
#include "kiln.h"

#define TEMPLATE_SLOT_BYTES (64ULL << 30)
/* the VMM's names, in its cwd VM_DIR; ours, in the template's folder */
#define VMM_SOCK	"fork.sock"
#define VMM_API		"api.sock"
#define VMM_VSOCK	"vsock.sock"
#define TEMPLATE_SOCK	VM_DIR "/" VMM_SOCK
#define TEMPLATE_API	VM_DIR "/" VMM_API
#define TEMPLATE_VSOCK	VM_DIR "/" VMM_VSOCK
#define TEMPLATE_SLOT	VM_SLOT
#define TEMPLATE_CGROUP "/kiln-templates"

static void file_id(const char *path, char *out, size_t len)
{
	struct stat st;

	if (stat(path, &st) < 0)
		snprintf(out, len, "%s:missing", path);
	else
		snprintf(out, len, "%s:%llu:%lld.%09ld:%llu", path,
			 (unsigned long long)st.st_ino,
			 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			 (unsigned long long)st.st_size);
}

/*
 * Every drive slot is a virtio-blk device that each fork makes and tears
 * down, used or not: a container of one or two drives (a rootfs image,
 * and its writable layer or a read-only volume) forks from a template of
 * two; more drives (an image per volume, per layer), and a pod's sandbox
 * (its members' rootfs go into its free slots), from one of
 * VM_DRIVES_MAX. Measured in the test bed, A/B over 20 runs each: a
 * container of one drive started 10 ms sooner from two slots than from
 * eight (boot 175 -> 168 ms, kiln run 601 -> 591 ms, medians).
 */
#define TEMPLATE_FEW_SLOTS 2

size_t template_slots(const struct vm_plan *p)
{
	return p->pod || p->n_drives > TEMPLATE_FEW_SLOTS ? VM_DRIVES_MAX
							  : TEMPLATE_FEW_SLOTS;
}

/* The shape of plan's VM as text, and its directory. */
static int template_key(const struct vm_plan *p, const char *root, char *key,
			size_t keylen, char *dir, size_t dirlen)
{
	const struct vm_config *c = p->conf;
	char vmm[PATH_MAX + 64], kernel[PATH_MAX + 64], initrd[PATH_MAX + 64];
	const char *base = c->template_dir;
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	int n;

	file_id(c->vmm, vmm, sizeof(vmm));
	file_id(c->kernel, kernel, sizeof(kernel));
	file_id(c->initramfs, initrd, sizeof(initrd));
	n = snprintf(key, keylen,
		     "vmm=%s\nkernel=%s\ninitramfs=%s\ncmdline=%s\n"
		     "vcpus=%u\nmemory_mib=%u\nnets=%zu\ndrives=%zu\n",
		     vmm, kernel, initrd, VM_GUEST_CMDLINE, c->vcpus,
		     c->memory_mib, p->n_nets, template_slots(p));
	if (n < 0 || (size_t)n >= keylen)
		return -1;
	for (const char *k = key; *k != '\0'; k++)
		h = (h ^ (uint8_t)*k) * 1099511628211ULL;
	if (base != NULL)
		n = snprintf(dir, dirlen, "%s/%016" PRIx64, base, h);
	else
		n = snprintf(dir, dirlen, "%s/templates/%016" PRIx64, root, h);
	/* fork.sock must fit a Unix socket address */
	if (n < 0 || (size_t)n + sizeof("/" TEMPLATE_SOCK) > 108 ||
	    (size_t)n + sizeof("/" TEMPLATE_SLOT) > PATH_MAX)
		return -1;
	return 0;
}

static pid_t template_pid(int dirfd);
static void remove_one(int dirfd, pid_t pid);

int template_pick(struct vm_plan *p, const char *root)
{
	char key[4 * PATH_MAX], dir[PATH_MAX], sock[PATH_MAX + 16];
	struct stat st;

	/* a fork has its template's devices only: no virtio-fs */
	if (p->n_fs > 0 || !p->conf->templates || p->n_drives > VM_DRIVES_MAX ||
	    template_key(p, root, key, sizeof(key), dir, sizeof(dir)) < 0)
		return -1;
	snprintf(sock, sizeof(sock), "%s/" TEMPLATE_SOCK, dir);
	if (stat(sock, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -1;
	free(p->template_dir);
	p->template_dir = strdup(dir);
	p->template_dev = st.st_dev;
	p->template_ino = st.st_ino;
	snprintf(sock, sizeof(sock), "%s/" VM_PREFAULT, dir);
	p->prefault = access(sock, F_OK) == 0;
	return p->template_dir != NULL ? 0 : -1;
}

void template_forget(struct vm_plan *p)
{
	int fd;

	if (p->template_dir == NULL)
		return;
	/* it did not serve: it goes, a builder may make a new one */
	fd = open(p->template_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		remove_one(fd, template_pid(fd));
		close(fd);
	}
	free(p->template_dir);
	p->template_dir = NULL;
}

/* Where vmm maps guest RAM (the template's memfd, MAP_PRIVATE): 0 if not
 * found. */
static uint64_t ram_start(pid_t vmm, uint64_t size)
{
	char path[64];
	cleanup_free char *maps = NULL;
	struct kiln_error err = { 0 };
	size_t len = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)vmm);
	maps = file_read(path, 1 << 20, &len, &err);
	for (char *l = maps, *next; l != NULL && *l != '\0'; l = next) {
		unsigned long long a, b;

		next = strchr(l, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strstr(l, "/memfd:kiln-guest-ram") != NULL &&
		    sscanf(l, "%llx-%llx", &a, &b) == 2 && b - a == size)
			return a;
	}
	return 0;
}

/* Is the template p forked from still the one in its folder? */
static bool same_template(const struct vm_plan *p)
{
	char sock[PATH_MAX + 16];
	struct stat st;

	snprintf(sock, sizeof(sock), "%s/" TEMPLATE_SOCK, p->template_dir);
	return stat(sock, &st) == 0 && st.st_dev == p->template_dev &&
	       st.st_ino == p->template_ino;
}

/* pagemap bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ULL << 63)
#define PM_FILE	   (1ULL << 61) /* a file page or shared: not a private copy */
#define PM_CHUNK   4096

void template_prefault_record(const struct vm_plan *p, pid_t vmm)
{
	uint64_t size = (uint64_t)p->conf->memory_mib << 20, start;
	uint64_t t0 = util_now_ns(), pages = size >> 12, map[PM_CHUNK];
	uint8_t out[PREFAULT_FILE_MAX];
	size_t n = 0, len = prefault_begin(out);
	cleanup_close int pm = -1, fd = -1;
	char path[PATH_MAX + 32], tmp[PATH_MAX + 32];
	bool full = false;
	pid_t inner;

	/* jailed, vmm is the waiter and kiln-vmm its one child */
	if ((inner = vm_jail_vmm_pid(vmm)) > 0)
		vmm = inner;
	start = ram_start(vmm, size);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)vmm);
	if (start == 0 || (pm = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		log_warn("prefault list: guest RAM of kiln-vmm %d not found",
			 (int)vmm);
		return;
	}
	for (uint64_t i = 0; i < pages && !full; i += PM_CHUNK) {
		size_t k = pages - i < PM_CHUNK ? pages - i : PM_CHUNK;

		if (util_pread_all(pm, map, k * sizeof(map[0]),
				   ((start >> 12) + i) * sizeof(map[0])) < 0) {
			log_warn("prefault list: read %s: %m", path);
			return;
		}
		for (size_t j = 0; j < k; j++) {
			uint32_t pg = (uint32_t)(i + j);

			if ((map[j] & (PM_PRESENT | PM_FILE)) != PM_PRESENT)
				continue;
			if (n == PREFAULT_MAX_PAGES) {
				full = true;
				break;
			}
			len = prefault_add(out, len, pg);
			n++;
		}
	}
	/* named once whole; the first list linked in stays (a temporary
	 * that a kill left is swept with the template) */
	snprintf(tmp, sizeof(tmp), "%s/" VM_PREFAULT ".%d", p->template_dir,
		 (int)getpid());
	snprintf(path, sizeof(path), "%s/" VM_PREFAULT, p->template_dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0 || util_write_all(fd, out, len) < 0 || link(tmp, path) < 0) {
		if (errno != EEXIST)
			log_warn("prefault list %s: %m", path);
		unlink(tmp);
		return;
	}
	unlink(tmp);
	/* a template rebuilt meanwhile has a socket of its own: the list is
	 * not its, and goes (its builder may have swept before the link),
	 * unless it is gone already */
	if (!same_template(p)) {
		struct stat ours, there;

		if (fstat(fd, &ours) == 0 && stat(path, &there) == 0 &&
		    ours.st_ino == there.st_ino && ours.st_dev == there.st_dev)
			unlink(path);
		return;
	}
	log_info("prefault list: %zu pages written by the fork%s, %.1f ms", n,
		 full ? " (the most listed)" : "",
		 (double)(util_now_ns() - t0) / 1e6);
}

void template_mac(size_t i, uint8_t mac[6])
{
	static const uint8_t base[6] = { 0x02, 0x6b, 0x69, 0x6c, 0x6e, 0x00 };

	memcpy(mac, base, 6);
	mac[5] = (uint8_t)i;
}

/* ---- the builder ----------------------------------------------------- */

/* Leave the container's cgroup, network namespace and session. */
static int detach(int host_netns, struct kiln_error *err)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (host_netns >= 0 && setns(host_netns, CLONE_NEWNET) < 0)
		return kiln_error_set(err, errno, "back to the host's network");
	/* the template's TAPs are its own: they go with its namespace */
	if (unshare(CLONE_NEWNET) < 0)
		return kiln_error_set(err, errno, "network namespace");
	/* out of the container's cgroup, which its engine removes */
	if (cgroup_join_path(TEMPLATE_CGROUP, err) < 0)
		return -1;
	return 0;
}

static int make_dirs(const char *dir, struct kiln_error *err)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return kiln_error_set(err, errno, "mkdir `%s`", p);
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return kiln_error_set(err, errno, "mkdir `%s`", p);
	return 0;
}

/* In the template's folder (cwd): kiln-vmm's, jailed as uid (0: not). */
static pid_t spawn_vmm(const struct vm_plan *p, uid_t uid,
		       struct kiln_error *err)
{
	char drives[VM_DRIVES_MAX][PATH_MAX + 32], nets[VM_NETS_MAX][96];
	char qp[24], cwd[PATH_MAX], jail[PATH_MAX + 64];
	unsigned int pairs = net_queue_pairs(p->conf->vcpus);
	struct vm_argv_buf buf;
	char *argv[64];
	size_t n = 0;
	int log_fd;
	pid_t pid;

	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return kiln_error_set(err, errno, "getcwd");
	argv[n++] = p->conf->vmm;
	if (uid != 0) {
		snprintf(jail, sizeof(jail),
			 "root=%s/" VM_JAIL_ROOT ",uid=%u,gid=%u", cwd,
			 (unsigned)uid, (unsigned)uid);
		argv[n++] = "--jail";
		argv[n++] = jail;
	}
	argv[n++] = "--api-sock";
	argv[n++] = VMM_API;
	n += vm_argv_source(p->conf, NULL, &buf, argv + n);
	snprintf(qp, sizeof(qp), ",queue_pairs=%u", pairs);
	for (int i = 0; i < VM_DRIVES_MAX && (size_t)i < template_slots(p);
	     i++) {
		/* in full: the VMM's cwd is VM_DIR (template_key checked the
		 * length) */
		snprintf(drives[i], sizeof(drives[i]),
			 "id=d%d,path=%s/" TEMPLATE_SLOT, i, cwd);
		argv[n++] = "--drive";
		argv[n++] = drives[i];
	}
	for (size_t i = 0; i < p->n_nets; i++) {
		char tap[16];
		uint8_t m[6];
		int index;

		snprintf(tap, sizeof(tap), "ktmpl%u", (unsigned int)i % 10);
		/* the forks' queue pairs (net_setup), or they are refused */
		if (nl_tap_create(tap, pairs > 1, &index, err) < 0 ||
		    net_tap_own(tap, pairs > 1, uid, err) < 0)
			return -1;
		template_mac(i, m);
		snprintf(nets[i], sizeof(nets[i]),
			 "id=net%zu,tap=%s,mac=%02x:%02x:%02x:%02x:%02x:%02x%s",
			 i, tap, m[0], m[1], m[2], m[3], m[4], m[5],
			 pairs > 1 ? qp : "");
		argv[n++] = "--net";
		argv[n++] = nets[i];
	}
	argv[n++] = "--vsock";
	argv[n++] = "cid=3,uds=" VMM_VSOCK;
	argv[n++] = "--console";
	argv[n++] = "/dev/null";
	argv[n] = NULL;
	log_fd = open(VM_LOG, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return kiln_error_set(err, errno, "open " VM_LOG);
	pid = fork();
	if (pid < 0) {
		close(log_fd);
		return kiln_error_set(err, errno, "fork kiln-vmm");
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null < 0 || dup2(null, 0) < 0 || dup2(log_fd, 1) < 0 ||
		    dup2(log_fd, 2) < 0)
			_exit(127);
		/* marks it for kiln templates and the tests */
		setenv("KILN_TEMPLATE", "1", 1);
		if (chdir(VM_DIR) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	close(log_fd);
	return pid;
}

static int write_pid(pid_t pid, struct kiln_error *err)
{
	cleanup_fclose FILE *f = fopen("pid.tmp", "we");

	if (f == NULL ||
	    fprintf(f, "%d %llu\n", (int)pid,
		    (unsigned long long)proc_start_time(pid)) < 0 ||
	    fflush(f) != 0 || rename("pid.tmp", "pid") < 0)
		return kiln_error_set(err, errno, "template pid file");
	return 0;
}

static int write_key(const char *key, struct kiln_error *err)
{
	cleanup_fclose FILE *f = fopen("key", "we");

	if (f == NULL || fputs(key, f) < 0 || fflush(f) != 0)
		return kiln_error_set(err, errno, "template key file");
	return 0;
}

/*
 * In the template's directory, lock held: boot it, make it a template.
 * Jailed (like the container whose shape it has) as a uid of its own,
 * which we hold until its VMM holds it.
 */
static int build(const struct vm_plan *p, const char *key,
		 struct kiln_error *err)
{
	cleanup_close int fd = -1;
	struct vm_jail j = { .uid = 0, .lock_fd = -1 };
	struct agent_client *c;
	pid_t pid;

	vm_dir_remove(AT_FDCWD, VM_DIR);
	rmdir(VM_JAIL_ROOT);
	unlink("pid");
	/* recorded from the template this one replaces */
	unlink(VM_PREFAULT);
	vm_dir_unlink(AT_FDCWD, ".", VM_PREFAULT ".");
	if (write_key(key, err) < 0)
		return -1;
	if (p->jail.uid != 0 && vm_jail_reserve(&j, err) < 0)
		return -1;
	if (mkdir(VM_DIR, 0700) < 0 ||
	    (j.uid != 0 && chown(VM_DIR, j.uid, j.uid) < 0))
		return kiln_error_set(err, errno, "template " VM_DIR);
	fd = open(TEMPLATE_SLOT, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)TEMPLATE_SLOT_BYTES) < 0)
		return kiln_error_set(err, errno, "template slot");
	/* the template writes it; its forks, jailed as other uids, read it */
	if ((j.uid != 0 && fchown(fd, j.uid, j.uid) < 0) ||
	    fchmod(fd, 0644) < 0)
		return kiln_error_set(err, errno, "template slot");
	pid = spawn_vmm(p, j.uid, err);
	if (pid < 0)
		return -1;
	if (write_pid(pid, err) < 0 ||
	    vm_api_call(TEMPLATE_API, "PUT", "/actions",
			"{\"action_type\": \"InstanceStart\"}", err) < 0)
		goto fail;
	c = agent_client_connect(
		TEMPLATE_VSOCK,
		agent_deadline_ms((uint64_t)p->conf->boot_timeout_s * 1000),
		30ull * 1000000000, err);
	if (c == NULL)
		goto fail;
	agent_client_free(c);
	if (vm_api_call(TEMPLATE_API, "PATCH", "/vm", "{\"state\": \"Paused\"}",
			err) < 0 ||
	    vm_api_call(TEMPLATE_API, "PUT", "/snapshot/template",
			"{\"socket_path\": \"" VMM_SOCK "\"}", err) < 0)
		goto fail;
	return 0;
fail:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink("pid");
	return -1;
}

void template_spawn(const struct vm_plan *p, const char *root, int host_netns)
{
	char key[4 * PATH_MAX], dir[PATH_MAX];
	struct kiln_error err = { 0 };
	cleanup_close int lock = -1;
	pid_t pid;
	int null, lfd;

	if (!p->conf->templates ||
	    template_key(p, root, key, sizeof(key), dir, sizeof(dir)) < 0)
		return;
	pid = fork();
	if (pid < 0)
		return;
	if (pid > 0) {
		waitpid(pid, NULL, 0);
		return;
	}
	/* the intermediate child: a new session, and gone at once */
	setsid();
	if (fork() != 0)
		_exit(0);
	prctl(PR_SET_NAME, "kiln-template");
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	if (detach(host_netns, &err) < 0)
		goto out;
	/*
	 * Nothing of the container's stays open in the builder or the
	 * template: an engine waits for the end of the container's stdio.
	 */
	lfd = log_fileno();
	if (lfd > 3)
		close_range(3, (unsigned int)lfd - 1, 0);
	close_range(lfd >= 3 ? (unsigned int)lfd + 1 : 3, ~0U, 0);
	if (make_dirs(dir, &err) < 0 || chdir(dir) < 0 ||
	    log_open(VM_LOG_SUP) < 0)
		goto out;
	lock = open("lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	/* another builder has it, or it is built: nothing to do */
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0 ||
	    access(TEMPLATE_SOCK, F_OK) == 0)
		_exit(0);
	if (build(p, key, &err) == 0) {
		log_info("template built in %s", dir);
		_exit(0);
	}
out:
	log_error("template for %s: %s", dir, err.msg);
	_exit(1);
}

/* ---- kiln templates [--rm] ------------------------------------------- */

static pid_t template_pid(int dirfd)
{
	int fd = openat(dirfd, "pid", O_RDONLY | O_CLOEXEC);
	cleanup_fclose FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	unsigned long long start;
	int pid;

	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (fscanf(f, "%d %llu", &pid, &start) != 2 || pid <= 0 ||
	    proc_start_time(pid) != start)
		return 0;
	return pid;
}

static void show(int dirfd, const char *name, pid_t pid)
{
	int fd = openat(dirfd, "key", O_RDONLY | O_CLOEXEC);
	char buf[4 * PATH_MAX];
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	bool served = faccessat(dirfd, TEMPLATE_SOCK, F_OK, 0) == 0;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	printf("%s %s pid=%d\n", name,
	       pid > 0 && served ? "ready"
	       : pid > 0	 ? "building"
				 : "dead",
	       (int)pid);
	for (char *l = strtok(buf, "\n"); l != NULL; l = strtok(NULL, "\n"))
		printf("  %s\n", l);
}

static void remove_one(int dirfd, pid_t pid)
{
	static const char *const files[] = {
		TEMPLATE_SLOT, "pid",	    "key",  VM_LOG,
		VM_LOG_SUP,    VM_PREFAULT, "lock", NULL,
	};

	/* jailed, pid is the waiter: its VMM dies with it */
	if (pid > 0) {
		kill(pid, SIGKILL);
		for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
			usleep(10000);
	}
	vm_dir_remove(dirfd, VM_DIR);
	unlinkat(dirfd, VM_JAIL_ROOT, AT_REMOVEDIR);
	for (size_t i = 0; files[i] != NULL; i++)
		unlinkat(dirfd, files[i], 0);
	/* temporaries of prefault lists whose recorders were killed */
	vm_dir_unlink(dirfd, ".", VM_PREFAULT ".");
}

int verb_templates(const struct kiln_cli *cli, int argc, char **argv,
		   struct kiln_error *err)
{
	struct vm_config conf;
	char base[PATH_MAX];
	bool rm = false;
	DIR *d;
	struct dirent *e;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rm") == 0)
			rm = true;
		else
			return kiln_error_set(err, 0,
					      "templates: unknown argument "
					      "`%s` (want --rm)",
					      argv[i]);
	}
	if (vm_config_load(&conf, err) < 0)
		return 1;
	if (conf.template_dir != NULL)
		snprintf(base, sizeof(base), "%s", conf.template_dir);
	else
		snprintf(base, sizeof(base), "%s/templates", cli->root);
	vm_config_clear(&conf);
	d = opendir(base);
	if (d == NULL)
		return errno == ENOENT
			       ? 0
			       : (kiln_error_set(err, errno, "`%s`", base), 1);
	while ((e = readdir(d)) != NULL) {
		int fd;
		pid_t pid;

		if (e->d_name[0] == '.')
			continue;
		fd = openat(dirfd(d), e->d_name,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		pid = template_pid(fd);
		if (rm) {
			remove_one(fd, pid);
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
		} else {
			show(fd, e->d_name, pid);
		}
		close(fd);
	}
	closedir(d);
	if (rm)
		rmdir(base);
	return 0;
}
