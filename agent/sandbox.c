/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest as a whole: PID 1's mounts and loopback, the sandbox's
 * hostname, DNS and sysctls, the clock, the entropy pool, power-off.
 */
#include "agent.h"
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/random.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"

#define RESOLV_MAX  (64 * 1024)
#define SYSCTLS_MAX 256
#define RESEED_MAX  4096
#define DNS_MAX	    32

uint64_t sandbox_boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

uint64_t sandbox_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

char *sandbox_read_file(int dirfd, const char *path, size_t max, size_t *len,
			struct kiln_error *err)
{
	cleanup_close int fd = -1;
	cleanup_free char *buf = NULL;
	size_t got = 0, cap = max < 4096 ? max : 4096;
	const char *in = dirfd >= 0 ? "the container's " : "";
	struct stat st;

	if (dirfd >= 0) {
		/* guest-controlled: a container's file, looked up inside its
		 * root and opened only once known to be a regular file */
		fd = mount_open_in_root(dirfd, path, O_RDONLY | O_NONBLOCK,
					S_IFREG, 0, &st, err);
		if (fd < 0)
			return NULL;
	} else {
		fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			kiln_error_set(err, errno, "open `%s`", path);
			return NULL;
		}
		if (!S_ISREG(st.st_mode)) {
			kiln_error_set(err, 0, "`%s` is not a regular file",
				       path);
			return NULL;
		}
	}
	/* st_size is 0 for /proc and cgroup files: the read below is
	 * bounded too */
	if ((uint64_t)st.st_size > max) {
		kiln_error_set(err, EFBIG, "%s%s is %lld bytes, over %zu", in,
			       path, (long long)st.st_size, max);
		return NULL;
	}
	buf = malloc(cap + 1);
	for (;;) {
		ssize_t n;

		if (buf == NULL) {
			kiln_error_set(err, ENOMEM, "read `%s`", path);
			return NULL;
		}
		if (got == cap) {
			char *nb;

			if (cap >= max) {
				kiln_error_set(err, EFBIG,
					       "%s%s is over %zu bytes", in,
					       path, max);
				return NULL;
			}
			cap = cap * 2 > max ? max : cap * 2;
			nb = realloc(buf, cap + 1);
			if (nb == NULL)
				free(buf);
			buf = nb;
			continue;
		}
		n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kiln_error_set(err, errno, "read `%s`", path);
			return NULL;
		}
		if (n == 0)
			break;
		got += n;
	}
	buf[got] = '\0';
	*len = got;
	return steal_ptr(&buf);
}

int sandbox_write_file(const char *path, const char *data,
		       struct kiln_error *err)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(data);

	if (fd < 0)
		return kiln_error_set(err, errno, "open `%s`", path);
	if (write(fd, data, len) != (ssize_t)len)
		return kiln_error_set(err, errno, "write `%s`", path);
	return 0;
}

/* ---- PID 1 ------------------------------------------------------------- */

static void mount_log(const char *src, const char *dir, const char *type,
		      unsigned long flags, const char *data)
{
	mkdir(dir, 0755);
	if (mount(src, dir, type, flags, data) < 0 && errno != EBUSY)
		log_error("mount %s on %s: %m", type, dir);
}

/*
 * The initramfs is the kernel's rootfs, which pivot_root cannot leave.
 * Move a bind mount of it over / (as switch_root does) so that "/" is an
 * ordinary mount and every container can pivot_root away from it.
 */
static int leave_rootfs(struct kiln_error *err)
{
	if (mount("/", "/mnt", NULL, MS_BIND, NULL) < 0)
		return kiln_error_set(err, errno, "bind / on /mnt");
	if (chdir("/mnt") < 0 || mount("/mnt", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0)
		return kiln_error_set(err, errno, "move the root mount");
	return 0;
}

static void cgroup_enable(const char *dir)
{
	static const char *const ctl[] = { "+cpu", "+cpuset", "+memory",
					   "+pids", "+io" };
	char path[128];

	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	for (size_t i = 0; i < ARRAY_SIZE(ctl); i++)
		if (sandbox_write_file(path, ctl[i], NULL) < 0)
			log_warn("%s: enable %s: %m", path, ctl[i] + 1);
}

static void loopback_up(void)
{
	struct ifreq ifr = { 0 };
	cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		log_error("lo: %m");
		return;
	}
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		log_error("lo up: %m");
}

int sandbox_setup_guest(struct kiln_error *err)
{
	const unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	struct kiln_error e2;

	if (leave_rootfs(&e2) < 0)
		log_error("%s: %s; containers will chroot instead of "
			  "pivot_root",
			  e2.msg, strerror(e2.errnum));
	mount_log("proc", "/proc", "proc", nse, NULL);
	mount_log("sysfs", "/sys", "sysfs", nse, NULL);
	mount_log("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mount_log("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "mode=0620,gid=5,ptmxmode=0666");
	mount_log("shm", "/dev/shm", "tmpfs", nse, "mode=1777");
	mount_log("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	mount_log("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_log("cgroup2", "/sys/fs/cgroup", "cgroup2", nse, NULL);
	cgroup_enable("/sys/fs/cgroup");
	if (mkdir(AGENT_CGROUP_DIR, 0755) < 0 && errno != EEXIST)
		log_error("mkdir %s: %m", AGENT_CGROUP_DIR);
	cgroup_enable(AGENT_CGROUP_DIR);
	if (mkdir("/run/kiln", 0700) < 0 && errno != EEXIST)
		return kiln_error_set(err, errno, "mkdir /run/kiln");
	if (mkdir(AGENT_RUN_DIR, 0700) < 0 && errno != EEXIST)
		return kiln_error_set(err, errno, "mkdir %s", AGENT_RUN_DIR);
	if (mkdir(AGENT_VOLUMES_DIR, 0700) < 0 && errno != EEXIST)
		return kiln_error_set(err, errno, "mkdir %s",
				      AGENT_VOLUMES_DIR);
	loopback_up();
	return 0;
}

/* ---- CreateSandbox ----------------------------------------------------- */

static int write_resolv(const Kiln__Agent__V1__CreateSandboxRequest *req,
			struct kiln_error *err)
{
	cleanup_free char *buf = malloc(RESOLV_MAX);
	size_t n = 0;
	int fd;

	if (buf == NULL)
		return AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "resolv.conf");
	if (req->n_dns_servers > DNS_MAX || req->n_dns_search > DNS_MAX)
		return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
				  "more than %d DNS servers or domains",
				  DNS_MAX);
	for (size_t i = 0; i < req->n_dns_servers; i++) {
		/* client-controlled: one token per line */
		if (spec_check_str("dns server", req->dns_servers[i], 64, false,
				   err) < 0 ||
		    strchr(req->dns_servers[i], ' ') ||
		    req->dns_servers[i][0] == '\0')
			return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
					  "dns_servers[%zu] is not an address",
					  i);
		n += snprintf(buf + n, RESOLV_MAX - n, "nameserver %s\n",
			      req->dns_servers[i]);
	}
	if (req->n_dns_search > 0) {
		n += snprintf(buf + n, RESOLV_MAX - n, "search");
		for (size_t i = 0; i < req->n_dns_search; i++) {
			if (spec_check_str("dns search", req->dns_search[i],
					   253, false, err) < 0 ||
			    strchr(req->dns_search[i], ' '))
				return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT,
						  0,
						  "dns_search[%zu] is not a "
						  "domain",
						  i);
			n += snprintf(buf + n, RESOLV_MAX - n, " %s",
				      req->dns_search[i]);
		}
		n += snprintf(buf + n, RESOLV_MAX - n, "\n");
	}
	fd = open("/etc/resolv.conf.tmp",
		  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "open /etc/resolv.conf.tmp");
	if (write(fd, buf, n) != (ssize_t)n) {
		int e = errno;

		close(fd);
		return AGENT_FAIL(err, TTRPC_INTERNAL, e, "write resolv.conf");
	}
	close(fd);
	if (rename("/etc/resolv.conf.tmp", "/etc/resolv.conf") < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "rename resolv.conf");
	return 0;
}

int sandbox_create(const Kiln__Agent__V1__CreateSandboxRequest *req,
		   struct kiln_error *err)
{
	char path[300];
	int r;

	if (req->hostname != NULL && req->hostname[0] != '\0') {
		if (!spec_hostname_valid(req->hostname))
			return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
					  "hostname is not a host name of at "
					  "most 64 bytes");
		if (sethostname(req->hostname, strlen(req->hostname)) < 0)
			return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
					  "sethostname");
	}
	if (req->n_dns_servers > 0 || req->n_dns_search > 0) {
		r = write_resolv(req, err);
		if (r < 0)
			return r;
	}
	if (req->n_sysctls > SYSCTLS_MAX)
		return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
				  "more than %d sysctls", SYSCTLS_MAX);
	for (size_t i = 0; i < req->n_sysctls; i++) {
		const char *k = req->sysctls[i]->key,
			   *v = req->sysctls[i]->value;

		if (spec_sysctl_path(k, path, sizeof(path), err) < 0 ||
		    spec_check_str("sysctl value", v, 4096, false, err) < 0)
			return -TTRPC_INVALID_ARGUMENT;
		if (sandbox_write_file(path, v, err) < 0)
			return kiln_error_wrap(err, "sysctl %s", k),
			       -(errno == ENOENT ? TTRPC_INVALID_ARGUMENT
						 : TTRPC_INTERNAL);
	}
	return 0;
}

int sandbox_set_time(int64_t sec, int64_t nsec, struct kiln_error *err)
{
	struct timespec ts = { .tv_sec = sec, .tv_nsec = nsec };

	if (sec < 0 || nsec < 0 || nsec >= 1000000000)
		return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
				  "time %lld.%09lld is out of range",
				  (long long)sec, (long long)nsec);
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		return AGENT_FAIL(err,
				  errno == EINVAL ? TTRPC_INVALID_ARGUMENT
						  : TTRPC_INTERNAL,
				  errno, "clock_settime");
	return 0;
}

int sandbox_reseed(const uint8_t *data, size_t len, struct kiln_error *err)
{
	cleanup_free struct rand_pool_info *info = NULL;
	cleanup_close int fd = -1;

	if (len == 0)
		return 0;
	if (len > RESEED_MAX)
		return AGENT_FAIL(err, TTRPC_INVALID_ARGUMENT, 0,
				  "more than %d bytes of seed", RESEED_MAX);
	info = malloc(sizeof(*info) + len);
	if (info == NULL)
		return AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM, "seed");
	info->entropy_count = (int)(len * 8);
	info->buf_size = (int)len;
	memcpy(info->buf, data, len);
	fd = open("/dev/random", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "open /dev/random");
	if (ioctl(fd, RNDADDENTROPY, info) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "RNDADDENTROPY");
	/*
	 * Credited bytes only reach the output at the next reseed (a minute
	 * away once the pool is ready): force it now, so that forks of one
	 * template, whose per-CPU generators start equal, part at once.
	 */
	if (ioctl(fd, RNDRESEEDCRNG) < 0)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno, "RNDRESEEDCRNG");
	return 0;
}

/* ---- power off --------------------------------------------------------- */

void sandbox_power_off(void)
{
	char ids[AGENT_CONTAINERS_MAX][SPEC_ID_MAX + 1];
	size_t n = ctr_list(ids, AGENT_CONTAINERS_MAX);
	struct kiln_error err;

	size_t running = ctr_running();

	log_info("shutting down: %zu containers, %zu running", n, running);
	/*
	 * SIGTERM to everything but us first, so that processes that can
	 * end cleanly do; Remove then kills what is left. Once every init
	 * has exited, its pid namespace took its processes along: no grace
	 * (the usual end, after the container's init exited).
	 */
	kill(-1, SIGTERM);
	if (running > 0)
		nanosleep(&(struct timespec){ 0, 300 * 1000 * 1000 }, NULL);
	for (size_t i = 0; i < n; i++)
		if (ctr_remove(ids[i], &err) < 0)
			log_warn("remove %s: %s", ids[i], err.msg);
	kill(-1, SIGKILL);
	sync();
	umount2("/sys/fs/cgroup", MNT_DETACH);
	umount2("/run", MNT_DETACH);
	sync();
	/*
	 * Without ACPI the kernel cannot power off: RB_POWER_OFF becomes a
	 * halt (kernel_can_power_off() is false) and the VM would sit in
	 * hlt forever. A restart goes through reboot=k, which ends kiln-vmm.
	 */
	reboot(RB_AUTOBOOT);
	log_error("reboot: %m");
	for (;;)
		pause();
}
