/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container's VM, started by its pid process with the state directory
 * as working directory, so the sockets kiln-vmm makes there have short
 * relative names whatever --root is (a Unix socket path holds 107 bytes).
 *
 * vm_start() is the one place a VM comes from: a copy-on-write fork of a
 * warm template when the plan names one (template.c; kiln-vmm
 * --fork-from, the agent already up), else a cold boot (kiln-vmm, the
 * guest kernel and the agent as the initramfs's init). Either way the
 * caller gets a process and its vsock socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"
#include "../oci/container.h"
#include "kiln.h"

#define ARGV_MAX      (32 + 4 * VM_DRIVES_MAX + 2 * VM_NETS_MAX + 2 * VM_FS_MAX)
#define API_TIMEOUT_S 120 /* a snapshot of a large guest takes a while */

/* What the guest will see of the file: whole 512-byte sectors. */
static uint64_t drive_bytes(const char *path)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	uint64_t bytes = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &bytes) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		bytes = (uint64_t)st.st_size;
	return bytes & ~(uint64_t)511;
}

char *vm_plan_drive(struct vm_plan *p, struct agent_request *r,
		    const char *path, bool readonly, struct kiln_error *err)
{
	size_t i = p->n_drives;
	char dev[16];

	if (i >= VM_DRIVES_MAX) {
		kiln_error_set(err, 0, "more than %d block devices for one VM",
			       VM_DRIVES_MAX);
		return NULL;
	}
	if (r->n_owned >= REQUEST_OWNED_MAX) {
		kiln_error_set(err, ENOMEM, "drive");
		return NULL;
	}
	vm_drive_name(i, dev);
	p->drive_path[i] = strdup(path);
	p->drive_dev[i] = strdup(dev);
	if (p->drive_path[i] == NULL || p->drive_dev[i] == NULL) {
		free(p->drive_path[i]);
		free(p->drive_dev[i]);
		kiln_error_set(err, ENOMEM, "drive");
		return NULL;
	}
	r->owned[r->n_owned++] = p->drive_dev[i];
	p->drive_ro[i] = readonly;
	p->drive_bytes[i] = drive_bytes(path);
	p->n_drives++;
	return p->drive_dev[i];
}

char *vm_plan_fs(struct vm_plan *p, struct agent_request *r, const char *dir,
		 struct kiln_error *err)
{
	size_t i = p->n_fs;
	char *tag = NULL;

	if (i >= VM_FS_MAX) {
		kiln_error_set(err, 0,
			       "more than %d writable host directories for "
			       "one VM",
			       VM_FS_MAX);
		return NULL;
	}
	if (r->n_owned >= REQUEST_OWNED_MAX ||
	    asprintf(&tag, VM_FS_TAG "%zu", i) < 0 ||
	    (p->fs_source[i] = strdup(dir)) == NULL) {
		if (tag != NULL)
			free(tag);
		kiln_error_set(err, ENOMEM, "virtio-fs");
		return NULL;
	}
	r->owned[r->n_owned++] = tag;
	p->n_fs++;
	return tag;
}

void vm_plan_move(struct vm_plan *p, const size_t *slots)
{
	/* "/dev/vdX": the same length whatever the slot */
	for (size_t i = 0; i < p->n_drives; i++)
		vm_drive_name(slots[i], p->drive_dev[i]);
}

void vm_plan_clear(struct vm_plan *p)
{
	for (size_t i = 0; i < p->n_drives; i++)
		free(p->drive_path[i]);
	p->n_drives = 0;
	for (size_t i = 0; i < p->n_nets; i++)
		free(p->nets[i]);
	p->n_nets = 0;
	for (size_t i = 0; i < p->n_fs; i++)
		free(p->fs_source[i]);
	p->n_fs = 0;
	free(p->podfs);
	p->podfs = NULL;
	p->podfs_dev = false;
	free(p->template_dir);
	p->template_dir = NULL;
}

/* The guest's name for drive i: virtio-mmio devices probe in order. */
void vm_drive_name(size_t i, char out[16])
{
	snprintf(out, 16, "/dev/vd%c", (char)('a' + i));
}

/* In a forked child: its stdio, its signals, it dies with its parent. */
static void child_setup(int log_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	sigset_t none;

	/* the VM lives no longer than its pid process, also after kill -9 */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (null < 0 || dup2(null, 0) < 0 || dup2(log_fd, 1) < 0 ||
	    dup2(log_fd, 2) < 0)
		_exit(127);
}

static void child(char **argv, int log_fd, const struct confine *confine,
		  bool jailed)
{
	child_setup(log_fd);
	/*
	 * kiln-vmm opens all it needs by path: none of the engine's fds
	 * reaches the process the guest talks to (podman hands its runtime
	 * the listening sockets that reserve a container's published ports).
	 */
	close_range(3, ~0U, 0);
	/* jailed, its sockets' folder is its cwd: the only one of the state
	 * directory it sees, and relative names stay short */
	if (jailed && chdir(VM_DIR) < 0) {
		dprintf(2, "kiln: chdir " VM_DIR ": %s\n", strerror(errno));
		_exit(127);
	}
	if (confine_apply(confine) < 0)
		_exit(127);
	execv(argv[0], argv);
	dprintf(2, "kiln: exec `%s`: %s\n", argv[0], strerror(errno));
	_exit(127);
}

size_t vm_argv_source(const struct vm_config *c, const char *fork_sock,
		      struct vm_argv_buf *b, char **argv)
{
	size_t n = 0;

	snprintf(b->vcpus, sizeof(b->vcpus), "%u", c->vcpus);
	snprintf(b->mem, sizeof(b->mem), "%u", c->memory_mib);
	if (fork_sock != NULL) {
		argv[n++] = "--fork-from";
		argv[n++] = (char *)fork_sock;
	} else {
		argv[n++] = "--kernel";
		argv[n++] = c->kernel;
		argv[n++] = "--initrd";
		argv[n++] = c->initramfs;
		argv[n++] = "--cmdline";
		argv[n++] = VM_GUEST_CMDLINE;
	}
	argv[n++] = "--vcpus";
	argv[n++] = b->vcpus;
	argv[n++] = "--mem";
	argv[n++] = b->mem;
	return n;
}

/* A pod sandbox's placeholder for its spare slots: small, as the guest
 * may write it. */
static int vm_slot_make(struct kiln_error *err)
{
	cleanup_close int fd =
		open(VM_SLOT, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0 || ftruncate(fd, VM_SLOT_BYTES) < 0)
		return kiln_error_set(err, errno, "placeholder " VM_SLOT);
	return 0;
}

/* ---- virtiofsd: one per shared host directory ------------------------- */

/*
 * The socket path virtiofsd i is given. It locks a pid file named after
 * that string, /var/run/virtiofsd/<the path, '/' and '.' as '.'>.pid,
 * and refuses to start when another holds it ("Cannot lock pid file"):
 * the bare "fs0.sock" of two containers collided. So it is the socket's
 * absolute path in the state directory (our cwd) when that fits a Unix
 * socket address, else "../<state dir's name>/fs<i>.sock", the same
 * file by another name, unique per container id. kiln-vmm keeps the
 * short relative name.
 */
static int fs_sock_path_in(const char *cwd, size_t i, char *out, size_t size)
{
	const char *base;
	int n;

	n = snprintf(out, size, "%s/fs%zu.sock", cwd, i);
	if (n > 0 && (size_t)n < size &&
	    (size_t)n < sizeof(((struct sockaddr_un *)0)->sun_path))
		return 0;
	base = strrchr(cwd, '/');
	base = base != NULL && base[1] != '\0' ? base + 1 : cwd;
	n = snprintf(out, size, "../%s/fs%zu.sock", base, i);
	if (n > 0 && (size_t)n < size &&
	    (size_t)n < sizeof(((struct sockaddr_un *)0)->sun_path))
		return 0;
	errno = ENAMETOOLONG;
	return -1;
}

/* fs_sock_path_in the state directory, our cwd */
static int fs_sock_path(size_t i, char *out, size_t size)
{
	char cwd[PATH_MAX];

	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	return fs_sock_path_in(cwd, i, out, size);
}

/* virtiofsd leaves its pid file behind when it ends */
static void fs_pidfile_remove_in(const char *state_dir, size_t i)
{
	char sock[PATH_MAX], pidfile[PATH_MAX + 64];

	if (fs_sock_path_in(state_dir, i, sock, sizeof(sock)) < 0)
		return;
	for (char *c = sock; *c != '\0'; c++)
		if (*c == '/')
			*c = '.';
	snprintf(pidfile, sizeof(pidfile), "/var/run/virtiofsd/%s.pid", sock);
	unlink(pidfile);
}

static void fs_pidfile_remove(size_t i)
{
	char cwd[PATH_MAX];

	if (getcwd(cwd, sizeof(cwd)) != NULL)
		fs_pidfile_remove_in(cwd, i);
}

void vm_fs_leftovers_remove(const char *state_dir)
{
	char real[PATH_MAX];

	/* the pid process named them by its cwd, the real path */
	if (realpath(state_dir, real) == NULL)
		return;
	for (size_t i = 0; i < VM_FS_MAX; i++)
		fs_pidfile_remove_in(real, i);
	/* a pod sandbox's folder and its members' binds (podfs.c) */
	podfs_remove(real);
}

/*
 * Debian's virtiofsd, in the state directory: its socket fs<i>.sock
 * (fs_sock_path says how it is named to it), its log fs<i>.log. It sandboxes
 * itself (its default: new mount, pid and net namespaces, pivot_root
 * into the directory). It dies with the pid process (PDEATHSIG; its
 * sandboxed child has PDEATHSIG on it) and ends when kiln-vmm's
 * connection closes; vm_stop ends it too.
 *
 * Locks stay its default, no_flock and no_posix_lock: the guest kernel
 * keeps flock and fcntl locks to itself, so they work between the
 * container's processes (waiting ones too) but a lock the host holds is
 * not seen in the guest, nor the guest's on the host. -o flock would
 * take each flock on the host file, but this virtiofsd answers a
 * waiting one (FUSE_SETLKW: flock(1), any LOCK_EX without LOCK_NB) with
 * EOPNOTSUPP (seen in t_kiln_vol.sh's mmap_flock test), and
 * -o posix_lock does the same for F_SETLKW: both would break programs
 * that work today.
 *
 * Cache: what reaches virtio-fs is a writable bind or volume, which the
 * host and other containers (other VMs, other virtiofsds) write too, so
 * the container must see their changes at once, as with runc; read-only
 * binds are block images (request.c), Kubernetes emptyDirs guest-local.
 * A pod's share (podfs.c) carries its members' binds, read-only ones
 * too: a configMap the kubelet updates must be seen the same way.
 * Hence cache=auto (no FOPEN_KEEP_CACHE: the guest drops a file's pages
 * at each open) with timeout=0: no attribute or entry kept, every lookup
 * and stat asks the host. With cache=auto's own 1 s timeouts, right after
 * the host rewrote a file longer and renamed another, the container read
 * the file cut at its old size and still found the old name (in all 3
 * rounds of t_kiln_vol.sh's coherence test). cache=always keeps both a
 * day and a file's pages across opens: another container's append would
 * go unseen. cache=none opens files with direct I/O, for which a 6.1
 * guest's FUSE refuses MAP_SHARED mappings (ENODEV until 6.6's
 * FUSE_DIRECT_IO_ALLOW_MMAP), and turns readdirplus off. The price,
 * measured by test/bench/volumes in the test bed (one run, beside other
 * beds): stat, tar x and tar c of many small files 3.5-7 times slower
 * than with the 1 s timeouts (a round trip per lookup and stat), and a
 * second stat of the same files no longer nearly free. A container
 * whose volumes only it writes (a build cache) may ask for speed with the
 * annotation io.kiln.volume-cache=fast: cache=auto's own 1 s timeouts,
 * and the host's changes seen up to a second late. No DAX: neither
 * the guest kernel (no FUSE_DAX), nor kiln-vmm (no shared-memory
 * region), nor Debian's virtiofsd (no mapping requests) has it.
 */
const char *const *vm_fs_cache_args(const struct vm_plan *p)
{
	static const char *const coherent[] = { "-o", "cache=auto", "-o",
						"timeout=0", NULL };
	static const char *const fast[] = { "-o", "cache=auto", NULL };

	return p->fs_fast ? fast : coherent;
}

static int fs_start(const struct vm_plan *p, size_t i, pid_t *out,
		    struct kiln_error *err)
{
	char sock[PATH_MAX + 16], log[64], source[PATH_MAX + 16], last[256];
	const char *const *cache = vm_fs_cache_args(p);
	char *argv[10] = { p->conf->virtiofsd, sock, "-o", source };
	cleanup_close int log_fd = -1;
	struct stat st;
	pid_t pid;
	int status;

	for (size_t k = 0; cache[k] != NULL; k++)
		argv[4 + k] = (char *)cache[k];
	memcpy(sock, "--socket-path=", sizeof("--socket-path=") - 1);
	if (fs_sock_path(i, sock + sizeof("--socket-path=") - 1,
			 sizeof(sock) - (sizeof("--socket-path=") - 1)) < 0)
		return kiln_error_set(err, errno,
				      "the socket path of virtiofsd %zu", i);
	snprintf(log, sizeof(log), "fs%zu.log", i);
	if (snprintf(source, sizeof(source), "source=%s", p->fs_source[i]) >=
	    (int)sizeof(source))
		return kiln_error_set(err, ENAMETOOLONG, "`%s`",
				      p->fs_source[i]);
	/* checked at planning; it may have gone since */
	if (stat(p->fs_source[i], &st) < 0)
		return kiln_error_set(err, errno, "host directory `%s`",
				      p->fs_source[i]);
	if (!S_ISDIR(st.st_mode))
		return kiln_error_set(err, ENOTDIR, "host directory `%s`",
				      p->fs_source[i]);
	if (access(p->conf->virtiofsd, X_OK) < 0)
		return kiln_error_set(err, errno,
				      "virtiofsd `%s` (set \"virtiofsd\" in "
				      "%s)",
				      p->conf->virtiofsd, KILN_CONFIG_PATH);
	unlink(sock + sizeof("--socket-path=") - 1);
	log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return kiln_error_set(err, errno, "open %s", log);
	pid = fork();
	if (pid < 0)
		return kiln_error_set(err, errno, "fork virtiofsd");
	if (pid == 0) {
		child_setup(log_fd);
		close_range(3, ~0U, 0);
		execv(argv[0], argv);
		dprintf(2, "kiln: exec `%s`: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	*out = pid;
	/* it listens before it sandboxes itself; then kiln-vmm may come */
	for (int t = 0; t < 1000; t++) {
		if (stat(sock + sizeof("--socket-path=") - 1, &st) == 0 &&
		    S_ISSOCK(st.st_mode))
			return 0;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			*out = 0;
			break;
		}
		usleep(10000);
	}
	if (*out != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		*out = 0;
	}
	last[0] = '\0';
	{
		cleanup_fclose FILE *f = fopen(log, "re");
		char line[256];

		while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0] != '\0')
				snprintf(last, sizeof(last), "%s", line);
		}
	}
	return kiln_error_set(err, 0, "virtiofsd for `%s` did not start: %s",
			      p->fs_source[i], last[0] ? last : "(no message)");
}

static void fs_stop(struct vm *vm)
{
	for (size_t i = 0; i < vm->n_fs; i++) {
		if (vm->fs_pid[i] <= 0)
			continue;
		kill(vm->fs_pid[i], SIGKILL);
		while (waitpid(vm->fs_pid[i], NULL, 0) < 0 && errno == EINTR)
			;
		vm->fs_pid[i] = 0;
	}
	for (size_t i = 0; i < vm->n_fs; i++)
		fs_pidfile_remove(i);
	vm->n_fs = 0;
}

bool vm_fs_reaped(struct vm *vm, pid_t pid)
{
	for (size_t i = 0; i < vm->n_fs; i++)
		if (pid > 0 && vm->fs_pid[i] == pid) {
			vm->fs_pid[i] = 0;
			return true;
		}
	return false;
}

/* ---- kiln-vmm's API: one request, its status -------------------------- */

int vm_api_call(const char *sock, const char *method, const char *path,
		const char *body, struct kiln_error *err)
{
	return vm_api_call_fd(sock, method, path, body, -1, err);
}

/* The request's bytes, with fd (SCM_RIGHTS) on the first when fd >= 0. */
static int send_fd(int sock, const char *buf, size_t len, int fd)
{
	ssize_t n;

	do
		n = util_send_fds(sock, buf, len, &fd, 1, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	return util_write_all(sock, buf + n, len - (size_t)n);
}

int vm_api_call_fd(const char *sock, const char *method, const char *path,
		   const char *body, int file_fd, struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = API_TIMEOUT_S };
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char req[1024], resp[512];
	size_t got = 0;
	int n, code, c;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return kiln_error_set(err, errno, "kiln-vmm API `%s`", sock);
	/* a kiln-vmm just spawned makes its socket a little later */
	for (int i = 0;
	     (c = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 &&
	     (errno == ENOENT || errno == ECONNREFUSED) && i < 1000;
	     i++)
		usleep(10000);
	if (c < 0)
		return kiln_error_set(err, errno, "kiln-vmm API `%s`", sock);
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\n"
		     "Content-Type: application/json\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		     method, path, strlen(body), body);
	if (n < 0 || (size_t)n >= sizeof(req) ||
	    (file_fd >= 0 ? send_fd(fd, req, (size_t)n, file_fd)
			  : util_write_all(fd, req, (size_t)n)) < 0)
		return kiln_error_set(err, errno, "%s %s", method, path);
	while (got < sizeof(resp) - 1) {
		ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.1 %d", &code) != 1)
		return kiln_error_set(err, EPROTO, "%s %s: no answer", method,
				      path);
	if (code / 100 != 2) {
		char *b = strstr(resp, "\r\n\r\n");

		return kiln_error_set(err, 0, "%s %s: %d %s", method, path,
				      code, b != NULL ? b + 4 : "");
	}
	return 0;
}

/*
 * Jailed: the jail's flag, and what the jail uid must reach made its own
 * (drives; the folder of the sockets is, vm_jail_dir). Its VMM's cwd is
 * VM_DIR, so the state directory (cwd) is named in full here.
 */
static int jail_prepare(const struct vm_plan *p, const char *cwd, char *arg,
			size_t len, struct kiln_error *err)
{
	const struct vm_jail *j = &p->jail;

	if (snprintf(arg, len, "root=%s/" VM_JAIL_ROOT ",uid=%u,gid=%u", cwd,
		     (unsigned)j->uid, (unsigned)j->uid) >= (int)len)
		return kiln_error_set(err, ENAMETOOLONG, "--jail root");
	for (size_t i = 0; i < p->n_drives; i++)
		if (vm_jail_drive(j, p->drive_path[i], p->drive_ro[i], err) < 0)
			return -1;
	/* a VMM of the uid killed just before (a fork that failed) dies
	 * with its waiter, a little after it */
	if (vm_jail_wait_free(j->uid, 3000) < 0)
		return kiln_error_set(err, EBUSY,
				      "jail uid %u: its last kiln-vmm is "
				      "still alive",
				      (unsigned)j->uid);
	return 0;
}

/* virtiofsd i's socket seen from the jailed VMM's cwd: a hard link in
 * VM_DIR to the one it made, connectable by the jail uid. */
static int jail_fs_sock(const struct vm_plan *p, size_t i,
			struct kiln_error *err)
{
	char name[32], link_path[64];

	snprintf(name, sizeof(name), "fs%zu.sock", i);
	snprintf(link_path, sizeof(link_path), VM_DIR "/%s", name);
	unlink(link_path);
	if (link(name, link_path) < 0)
		return kiln_error_set(err, errno, "link %s", link_path);
	return vm_jail_own(&p->jail, link_path, err);
}

int vm_start(const struct vm_plan *p, struct vm *vm, struct kiln_error *err)
{
	char sock[PATH_MAX], cwd[PATH_MAX], jail[PATH_MAX + 64];
	char prefault[PATH_MAX + 16];
	char slots[VM_DRIVES_MAX][2 * PATH_MAX + 32];
	char fs[VM_FS_MAX][128];
	char *argv[ARGV_MAX];
	struct vm_argv_buf buf;
	cleanup_close int log_fd = -1;
	bool jailed = p->jail.uid != 0;
	size_t n = 0;
	pid_t pid;

	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return kiln_error_set(err, errno, "getcwd");
	argv[n++] = p->conf->vmm;
	if (jailed) {
		if (jail_prepare(p, cwd, jail, sizeof(jail), err) < 0)
			return -1;
		argv[n++] = "--jail";
		argv[n++] = jail;
	}
	if (p->template_dir != NULL)
		snprintf(sock, sizeof(sock), "%s/" VM_DIR "/fork.sock",
			 p->template_dir);
	n += vm_argv_source(p->conf, p->template_dir ? sock : NULL, &buf,
			    argv + n);
	if (p->template_dir != NULL && p->prefault) {
		snprintf(prefault, sizeof(prefault), "%s/" VM_PREFAULT,
			 p->template_dir);
		argv[n++] = "--fork-prefault";
		argv[n++] = prefault;
	}
	if (p->pod) {
		argv[n++] = "--api-sock";
		argv[n++] = jailed ? VM_API : VM_DIR "/" VM_API;
		unlink(VM_DIR "/" VM_API);
	}
	for (size_t i = 0; i < p->n_drives; i++) {
		/* jailed, the VMM's cwd is VM_DIR: a relative path in full */
		bool rel = jailed && p->drive_path[i][0] != '/';

		if (snprintf(slots[i], sizeof(slots[i]),
			     "id=d%zu,path=%s%s%s%s", i, rel ? cwd : "",
			     rel ? "/" : "", p->drive_path[i],
			     p->drive_ro[i] ? ",ro" : "") >=
		    (int)sizeof(slots[i]))
			return kiln_error_set(err, ENAMETOOLONG, "drive `%s`",
					      p->drive_path[i]);
		argv[n++] = "--drive";
		argv[n++] = slots[i];
	}
	/*
	 * A fork fills the template's other slots with its placeholder; a
	 * pod's sandbox keeps them for its pod's other containers, each
	 * rootfs swapped in later (pod.c).
	 */
	for (size_t i = p->n_drives;
	     (p->template_dir != NULL || p->pod) &&
	     i < (p->template_dir != NULL ? template_slots(p) : VM_DRIVES_MAX);
	     i++) {
		if (p->template_dir != NULL)
			snprintf(slots[i], sizeof(slots[i]),
				 "id=d%zu,path=%s/" VM_SLOT ",ro", i,
				 p->template_dir);
		else /* jailed, the VMM's cwd is VM_DIR: in full */
			snprintf(slots[i], sizeof(slots[i]),
				 "id=d%zu,path=%s%s" VM_SLOT, i,
				 jailed ? cwd : "", jailed ? "/" : "");
		argv[n++] = "--drive";
		argv[n++] = slots[i];
	}
	/* the jail uid's: the guest may write it */
	if (p->pod && p->template_dir == NULL &&
	    (vm_slot_make(err) < 0 ||
	     vm_jail_drive(&p->jail, VM_SLOT, false, err) < 0))
		return -1;
	for (size_t i = 0; i < p->n_nets; i++) {
		argv[n++] = "--net";
		argv[n++] = p->nets[i];
	}
	for (size_t i = 0; i < p->n_fs; i++) {
		/* a pod's share, its fs 0, has a tag of its own */
		char tag[32];

		snprintf(tag, sizeof(tag), VM_FS_TAG "%zu", i);
		snprintf(fs[i], sizeof(fs[i]),
			 "id=fs%zu,tag=%s,socket=fs%zu.sock", i,
			 i == 0 && p->podfs_dev ? VM_PODFS_TAG : tag, i);
		argv[n++] = "--fs";
		argv[n++] = fs[i];
	}
	argv[n++] = "--vsock";
	argv[n++] = jailed ? "cid=3,uds=" VM_VSOCK
			   : "cid=3,uds=" VM_DIR "/" VM_VSOCK;
	argv[n++] = "--console";
	argv[n++] = p->console != NULL ? (char *)p->console : "/dev/null";
	argv[n] = NULL;

	unlink(VM_DIR "/" VM_VSOCK);
	log_fd = open(VM_LOG, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return kiln_error_set(err, errno, "open " VM_LOG);
	/* a fork takes no device its template lacks (template_pick) */
	if (p->n_fs > 0 && p->template_dir != NULL)
		return kiln_error_set(err, 0, "a fork cannot add virtio-fs");
	fs_stop(vm);
	for (size_t i = 0; i < p->n_fs; i++) {
		vm->n_fs = i + 1;
		if (fs_start(p, i, &vm->fs_pid[i], err) < 0 ||
		    (jailed && jail_fs_sock(p, i, err) < 0)) {
			fs_stop(vm);
			return -1;
		}
	}
	pid = fork();
	if (pid < 0) {
		fs_stop(vm);
		return kiln_error_set(err, errno, "fork kiln-vmm");
	}
	if (pid == 0)
		child(argv, log_fd, &p->confine, jailed);
	vm->pid = pid;
	vm->start = proc_start_time(pid);
	return 0;
}

/* The last line kiln-vmm logged, for an error that says why it ended. */
void vm_last_log_line(char *buf, size_t len)
{
	cleanup_fclose FILE *f = fopen(VM_LOG, "re");
	char line[512];

	buf[0] = '\0';
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '\0')
			snprintf(buf, len, "%s", line);
	}
}

int vm_stop(struct vm *vm, unsigned int grace_ms)
{
	int status = 0;

	if (vm->pid <= 0) {
		fs_stop(vm);
		return 0;
	}
	for (unsigned int i = 0; i < grace_ms / 10; i++) {
		pid_t r = waitpid(vm->pid, &status, WNOHANG);

		if (r == vm->pid || (r < 0 && errno == ECHILD)) {
			vm->pid = 0;
			fs_stop(vm);
			return status;
		}
		usleep(10000);
	}
	kill(vm->pid, SIGKILL);
	while (waitpid(vm->pid, &status, 0) < 0 && errno == EINTR)
		;
	vm->pid = 0;
	fs_stop(vm);
	return status;
}
