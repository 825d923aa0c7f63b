// SPDX-License-Identifier: Apache-2.0
/*
 * fsops: file-system probes for the volume test (t_kiln_vol.sh) and the
 * measuring end of test/bench/volumes. Static: it runs inside a
 * busybox-static container rootfs as well as on the host.
 *
 *   fsops mmap FILE TEXT
 *       Writes TEXT into FILE (created or truncated) through a MAP_SHARED
 *       mapping, msync(MS_SYNC), unmaps, then reads the file back with
 *       pread and compares. Prints "mmap ok".
 *   fsops lock FILE UNTIL
 *       Takes flock(LOCK_EX) on FILE (waits for it), prints "locked",
 *       holds it until the path UNTIL exists (at most 120 s), exits 0.
 *   fsops trylock FILE
 *       flock(LOCK_EX | LOCK_NB) on FILE: prints "free" and exits 0 when
 *       it got the lock, "busy" and exits 1 on EWOULDBLOCK, exits 2 on
 *       any other error.
 *   fsops write FILE MIB      sequential 1 MiB writes, then fsync
 *   fsops read FILE           sequential 1 MiB reads to the end
 *   fsops create DIR N        N files of 64 bytes created, then each stat'ed
 *   fsops stat DIR N          stat of DIR/f0 .. DIR/f<N-1>
 *   fsops time CMD [ARG...]   runs CMD, its exit status is ours
 *       Each prints one line "FSOPS NAME key=value ..." with the elapsed
 *       CLOCK_MONOTONIC seconds (secs=) and the rate (mibs= or ops=).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "fsops: %s `%s`: %s\n", what, path, strerror(errno));
	return 2;
}

static int do_mmap(const char *path, const char *text)
{
	size_t len = strlen(text);
	char back[4096];
	char *m;
	int fd;

	if (len == 0 || len > sizeof(back)) {
		fprintf(stderr, "fsops: TEXT must be 1..%zu bytes\n",
			sizeof(back));
		return 2;
	}
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail("open", path);
	if (ftruncate(fd, (off_t)len) < 0)
		return fail("ftruncate", path);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return fail("mmap MAP_SHARED", path);
	memcpy(m, text, len);
	if (msync(m, len, MS_SYNC) < 0)
		return fail("msync", path);
	munmap(m, len);
	if (pread(fd, back, len, 0) != (ssize_t)len)
		return fail("pread", path);
	close(fd);
	if (memcmp(back, text, len) != 0) {
		fprintf(stderr, "fsops: read back differs from the mapping\n");
		return 1;
	}
	puts("mmap ok");
	return 0;
}

static int do_lock(const char *path, const char *until)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return fail("open", path);
	if (flock(fd, LOCK_EX) < 0)
		return fail("flock LOCK_EX", path);
	puts("locked");
	fflush(stdout);
	for (int i = 0; i < 2400 && access(until, F_OK) < 0; i++)
		usleep(50000);
	return 0;
}

static int do_trylock(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return fail("open", path);
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		puts("free");
		return 0;
	}
	if (errno == EWOULDBLOCK) {
		puts("busy");
		return 1;
	}
	return fail("flock LOCK_EX|LOCK_NB", path);
}

static int do_write(const char *path, long mib)
{
	static char buf[MIB];
	double t0;
	int fd;

	memset(buf, 0x5a, sizeof(buf));
	t0 = now();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail("open", path);
	for (long i = 0; i < mib; i++)
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return fail("write", path);
	if (fsync(fd) < 0)
		return fail("fsync", path);
	close(fd);
	t0 = now() - t0;
	printf("FSOPS write mib=%ld secs=%.4f mibs=%.1f\n", mib, t0,
	       (double)mib / t0);
	return 0;
}

static int do_read(const char *path)
{
	static char buf[MIB];
	long long total = 0;
	double t0 = now();
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return fail("open", path);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	if (n < 0)
		return fail("read", path);
	close(fd);
	t0 = now() - t0;
	printf("FSOPS read mib=%.1f secs=%.4f mibs=%.1f\n", (double)total / MIB,
	       t0, (double)total / MIB / t0);
	return 0;
}

static int stat_all(const char *dir, long n)
{
	char p[4096];
	struct stat st;

	for (long i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/f%ld", dir, i);
		if (stat(p, &st) < 0)
			return fail("stat", p);
	}
	return 0;
}

static int do_create(const char *dir, long n)
{
	static const char data[64] = "small file";
	double t0 = now();
	char p[4096];

	for (long i = 0; i < n; i++) {
		int fd;

		snprintf(p, sizeof(p), "%s/f%ld", dir, i);
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return fail("open", p);
		if (write(fd, data, sizeof(data)) != (ssize_t)sizeof(data))
			return fail("write", p);
		close(fd);
	}
	if (stat_all(dir, n) != 0)
		return 2;
	t0 = now() - t0;
	printf("FSOPS create n=%ld secs=%.4f ops=%.1f\n", n, t0,
	       (double)n / t0);
	return 0;
}

static int do_stat(const char *dir, long n)
{
	double t0 = now();

	if (stat_all(dir, n) != 0)
		return 2;
	t0 = now() - t0;
	printf("FSOPS stat n=%ld secs=%.4f ops=%.1f\n", n, t0, (double)n / t0);
	return 0;
}

static int do_time(char **argv)
{
	double t0 = now();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return fail("fork", argv[0]);
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "fsops: exec `%s`: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return fail("waitpid", argv[0]);
	t0 = now() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "fsops: `%s` failed (status 0x%x)\n", argv[0],
			status);
		return 1;
	}
	printf("FSOPS time cmd=%s secs=%.4f\n", argv[0], t0);
	return 0;
}

static long count(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return (*s == '\0' || *end != '\0' || v <= 0 || v > 1000000) ? -1 : v;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "mmap") == 0 && argc == 4)
		return do_mmap(argv[2], argv[3]);
	if (strcmp(cmd, "lock") == 0 && argc == 4)
		return do_lock(argv[2], argv[3]);
	if (strcmp(cmd, "trylock") == 0 && argc == 3)
		return do_trylock(argv[2]);
	if (strcmp(cmd, "write") == 0 && argc == 4 && count(argv[3]) > 0)
		return do_write(argv[2], count(argv[3]));
	if (strcmp(cmd, "read") == 0 && argc == 3)
		return do_read(argv[2]);
	if (strcmp(cmd, "create") == 0 && argc == 4 && count(argv[3]) > 0)
		return do_create(argv[2], count(argv[3]));
	if (strcmp(cmd, "stat") == 0 && argc == 4 && count(argv[3]) > 0)
		return do_stat(argv[2], count(argv[3]));
	if (strcmp(cmd, "time") == 0 && argc >= 3)
		return do_time(argv + 2);
	fprintf(stderr, "usage: fsops mmap FILE TEXT | lock FILE UNTIL | "
			"trylock FILE | write FILE MIB | read FILE |\n"
			"       create DIR N | stat DIR N | time CMD "
			"[ARG...]\n");
	return 2;
}
