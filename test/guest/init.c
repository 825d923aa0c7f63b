/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * init for kiln test guests: PID 1 of a minimal Linux guest booted from an
 * initramfs (hack/mkinitramfs.sh). It reports to the VMM's boot timer, mounts
 * the pseudo filesystems, prints what the guest sees in lines that the
 * integration tests match on the console, and ends the VM by rebooting.
 *
 * Not PID 1, it is a small multi-tool for test scripts, like crun's
 * tests/init.c: `init cpus`, `init meminfo`, `init ram4g`, `init uptime`,
 * `init ports`, or the same names through a symlink.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#define HAVE_PORT_IO 1
#endif

/*
 * The VMM's boot-timer device: a write of the magic value to this port marks
 * "init reached", the end of the boot it measures (Firecracker's boot timer
 * uses the same magic byte on MMIO).
 */
#define BOOT_TIMER_PORT	 0x440
#define BOOT_TIMER_MAGIC 123

static bool is_pid1;

/* Console lines are flushed one by one: the VMM may be killed right after. */
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void warn_errno(const char *what)
{
	int saved = errno;

	fprintf(is_pid1 ? stdout : stderr, "%s: %s: %s\n",
		is_pid1 ? "KILN-INIT-ERROR" : "init", what, strerror(saved));
	fflush(is_pid1 ? stdout : stderr);
}

static void boot_timer_signal(void)
{
#ifdef HAVE_PORT_IO
	/* No error print: the console may not be open yet, and the boot
	 * must go on without a boot timer (e.g. under QEMU). */
	if (ioperm(BOOT_TIMER_PORT, 1, 1) == 0)
		outb(BOOT_TIMER_MAGIC, BOOT_TIMER_PORT);
#endif
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, size - 1);

	if (n < 0)
		warn_errno(path);
	if (fd >= 0)
		close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return n < 0 ? -1 : 0;
}

/* sysfs lists online CPUs as ranges, e.g. "0-3,6". */
static int print_cpus(void)
{
	char buf[256], *p = buf, *end;
	long n = 0, a, b;

	if (read_file("/sys/devices/system/cpu/online", buf, sizeof(buf)) < 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	while (*p >= '0' && *p <= '9') {
		a = b = strtol(p, &end, 10);
		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		n += b - a + 1;
		p = *end == ',' ? end + 1 : end;
	}
	if (n <= 0)
		return 1;
	say("cpus=%ld", n);
	return 0;
}

static int print_meminfo(void)
{
	char buf[4096], *p;

	if (read_file("/proc/meminfo", buf, sizeof(buf)) < 0)
		return 1;
	p = strstr(buf, "MemTotal:");
	if (!p)
		return 1;
	say("mem_kib=%lu", strtoul(p + strlen("MemTotal:"), NULL, 10));
	return 0;
}

/*
 * The RAM above 4 GiB as the guest kernel took it from the e820 map: the
 * KiB of the top-level "System RAM" ranges of /proc/iomem past 4 GiB.
 */
static int print_ram_above_4g(void)
{
	static char buf[16384];
	unsigned long long a, b, kib = 0;
	const unsigned long long g4 = 1ULL << 32;
	char *line, *save;
	int n;

	if (read_file("/proc/iomem", buf, sizeof(buf)) < 0)
		return 1;
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		/* nested ranges are indented: only the top level counts */
		if (sscanf(line, "%llx-%llx : %n", &a, &b, &n) != 2 ||
		    line[0] == ' ' || strcmp(line + n, "System RAM") || b < g4)
			continue;
		kib += (b + 1 - (a > g4 ? a : g4)) / 1024;
	}
	say("ram_above_4g_kib=%llu", kib);
	return 0;
}

static int print_uptime(void)
{
	char buf[128];

	if (read_file("/proc/uptime", buf, sizeof(buf)) < 0)
		return 1;
	buf[strcspn(buf, " \n")] = '\0';
	say("uptime=%s", buf);
	return 0;
}

/*
 * Touch I/O ports no device claims, plus the PCI config and fw_cfg ports that
 * a microVM does not have: the VMM must log and ignore them, and the guest
 * must come back with reads of all ones or whatever the VMM answers.
 */
static int probe_ports(void)
{
#ifdef HAVE_PORT_IO
	if (iopl(3) < 0) {
		warn_errno("iopl");
		return 1;
	}
	outb(0x5a, 0x1234);
	outw(0xa55a, 0x2f0);
	outl(0x80000000u, 0xcf8);
	outw(0x0000, 0x510);
	say("ports=1234:%02x,2f0:%04x,cf8:%08x,cfc:%08x,511:%02x", inb(0x1234),
	    inw(0x2f0), inl(0xcf8), inl(0xcfc), inb(0x511));
#endif
	say("KILN-PORTS-OK");
	return 0;
}

static void mount_one(const char *src, const char *dir, const char *type,
		      unsigned long flags, const char *data)
{
	char what[64];

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		warn_errno(dir);
	/* EBUSY: the kernel already mounted devtmpfs (DEVTMPFS_MOUNT). */
	if (mount(src, dir, type, flags, data) < 0 && errno != EBUSY) {
		snprintf(what, sizeof(what), "mount %s", dir);
		warn_errno(what);
	}
}

/*
 * The kernel opens /dev/console for init only if the initramfs has the node;
 * without it fds 0-2 are closed and would be taken by the first open().
 */
static void open_console(void)
{
	int fd, i;

	for (i = 0; i < 3; i++) {
		if (fcntl(i, F_GETFD) >= 0)
			continue;
		fd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (fd < 0)
			return;
		if (fd != i) {
			dup2(fd, i);
			close(fd);
		}
	}
}

/* Wait for pid, reaping every orphan the kernel hands to PID 1 meanwhile. */
static int wait_child(pid_t pid)
{
	pid_t got;
	int status;

	for (;;) {
		got = waitpid(-1, &status, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			warn_errno("waitpid");
			return -1;
		}
		if (got != pid)
			continue;
		if (WIFSIGNALED(status))
			return 128 + WTERMSIG(status);
		return WEXITSTATUS(status);
	}
}

static void run_script(const char *script)
{
	pid_t pid;
	int rc = 127;

	if (access(script, R_OK) < 0) {
		warn_errno(script);
	} else {
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			setsid();
			execl("/bin/sh", "sh", script, (char *)NULL);
			warn_errno("exec /bin/sh");
			_exit(127);
		}
		if (pid < 0)
			warn_errno("fork");
		else
			rc = wait_child(pid);
	}
	say("KILN-SCRIPT-RC=%d", rc);
}

static void reap_forever(void)
{
	for (;;)
		if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
			sleep(1);
}

/* "key=value" → value, or NULL if tok is another option. */
static char *option(char *tok, const char *key)
{
	size_t len = strlen(key);

	if (strncmp(tok, key, len) || tok[len] != '=')
		return NULL;
	return tok + len + 1;
}

/* PID 1 must never return: an exiting init panics the kernel. */
static void __attribute__((noreturn)) pid1_main(void)
{
	static char cmdline[4096];
	const char *script = NULL, *end = "reboot";
	unsigned long hold_ms = 0;
	bool ports = false;
	const unsigned long nodev = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	char *tok, *save, *val;

	boot_timer_signal();

	mount_one("proc", "/proc", "proc", nodev, NULL);
	mount_one("sysfs", "/sys", "sysfs", nodev, NULL);
	mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	open_console();
	setvbuf(stdout, NULL, _IOLBF, 0);
	mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "mode=0620,ptmxmode=0666");
	mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	setenv("PATH", "/bin:/sbin", 1);
	setenv("HOME", "/root", 1);

	say("KILN-INIT-OK");
	print_cpus();
	print_meminfo();
	print_ram_above_4g();
	print_uptime();

	/* The kernel takes dotted options for module parameters and never
	 * passes them to init's argv or environment. */
	if (read_file("/proc/cmdline", cmdline, sizeof(cmdline)) == 0) {
		for (tok = strtok_r(cmdline, " \t\n", &save); tok;
		     tok = strtok_r(NULL, " \t\n", &save)) {
			if ((val = option(tok, "kiln.hold")))
				hold_ms = strtoul(val, NULL, 10);
			else if ((val = option(tok, "kiln.ports")))
				ports = !strcmp(val, "1");
			else if ((val = option(tok, "kiln.sh")) && !script)
				script = strcmp(val, "1") ? NULL : "/test.sh";
			else if ((val = option(tok, "kiln.script")))
				script = val;
			else if ((val = option(tok, "kiln.end")))
				end = val;
		}
	}

	if (ports)
		probe_ports();
	if (script)
		run_script(script);
	if (hold_ms) {
		struct timespec ts = { .tv_sec = hold_ms / 1000,
				       .tv_nsec = hold_ms % 1000 * 1000000 };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}

	say("KILN-INIT-END");
	sync();
	if (!strcmp(end, "none"))
		reap_forever();
	if (reboot(!strcmp(end, "halt") ? RB_HALT_SYSTEM : RB_AUTOBOOT) < 0)
		warn_errno("reboot");
	reap_forever();
	__builtin_unreachable();
}

static const struct tool {
	const char *name;
	int (*run)(void);
} tools[] = {
	{ "cpus", print_cpus },		 { "meminfo", print_meminfo },
	{ "ram4g", print_ram_above_4g }, { "uptime", print_uptime },
	{ "ports", probe_ports },
};

int main(int argc, char **argv)
{
	const char *self = argc > 0 ? argv[0] : "init";
	const char *base = strrchr(self, '/') ? strrchr(self, '/') + 1 : self;
	size_t i;

	is_pid1 = getpid() == 1;
	if (is_pid1)
		pid1_main();

	/* busybox style: the tool is the name we were called by, or argv[1] */
	for (i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (!strcmp(base, tools[i].name) ||
		    (argc > 1 && !strcmp(argv[1], tools[i].name)))
			return tools[i].run();
	fprintf(stderr, "usage: init cpus|meminfo|ram4g|uptime|ports\n");
	return 2;
}
