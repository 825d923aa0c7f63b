/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prefault lists (lib/prefault.h): the parser takes a well-formed list
 * and refuses a wrong magic, a torn index, indexes out of order or
 * repeated, and more than PREFAULT_MAX_PAGES; the runtime's recorder
 * (template_prefault_record), run on this process's own guest-RAM-named
 * private mapping of a memfd, lists exactly the pages written (not those
 * only read), stops at the most, keeps the first list it linked in, and
 * leaves no temporary behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../lib/file.h"
#include "../../lib/log.h"
#include "../../lib/prefault.h"
#include "../../runtime/kiln.h"
#include "tap.h"

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* A list of n indexes from idx, in a buffer of its own. */
static uint8_t *list(const uint32_t *idx, size_t n, size_t *len)
{
	uint8_t *b = calloc(1, PREFAULT_MAGIC_LEN + 4 * n + 1);

	memcpy(b, PREFAULT_MAGIC, PREFAULT_MAGIC_LEN);
	for (size_t i = 0; i < n; i++)
		put32(b + PREFAULT_MAGIC_LEN + 4 * i, idx[i]);
	*len = PREFAULT_MAGIC_LEN + 4 * n;
	return b;
}

/* The encoder writes the format the parser reads, byte for byte. */
static void test_encode(void)
{
	static const uint32_t idx[] = { 1, 0x102, 0x30405, 0xfffffffe };
	static uint8_t out[PREFAULT_FILE_MAX];
	size_t len = prefault_begin(out), want_len;
	uint8_t *want = list(idx, 4, &want_len);

	for (size_t i = 0; i < 4; i++)
		len = prefault_add(out, len, idx[i]);
	ok(len == want_len && memcmp(out, want, len) == 0, "the encoder writes "
							   "the magic and 4 "
							   "little-endian "
							   "indexes");
	free(want);
}

static void test_parse(void)
{
	static const uint32_t good[] = { 0, 7, 8, 0x12345, 0xfffffffe };
	static const uint32_t down[] = { 4, 9, 3 };
	static const uint32_t twice[] = { 4, 9, 9 };
	struct kiln_error err = { 0 };
	uint32_t *pages = NULL, *many;
	size_t n = 0, len;
	uint8_t *b = list(good, 5, &len);

	ok(prefault_parse(b, len, &pages, &n, &err) == 0 && n == 5 &&
		   memcmp(pages, good, sizeof(good)) == 0,
	   "a list of 5 pages parses to its indexes: %s", err.msg);
	free(pages);
	ok(prefault_parse(b, PREFAULT_MAGIC_LEN, &pages, &n, &err) == 0 &&
		   n == 0 && pages == NULL,
	   "the magic alone is an empty list");
	ok(prefault_parse(b, len - 1, &pages, &n, &err) < 0 &&
		   strstr(err.msg, "not whole page indexes") != NULL &&
		   pages == NULL && n == 0,
	   "a torn last index is refused: %s", err.msg);
	ok(prefault_parse(b, 3, &pages, &n, &err) < 0 &&
		   strstr(err.msg, "not a prefault list") != NULL,
	   "a file shorter than the magic is refused: %s", err.msg);
	b[0] ^= 1;
	ok(prefault_parse(b, len, &pages, &n, &err) < 0 &&
		   strstr(err.msg, "not a prefault list") != NULL,
	   "a wrong magic is refused: %s", err.msg);
	free(b);
	b = list(down, 3, &len);
	ok(prefault_parse(b, len, &pages, &n, &err) < 0 &&
		   strstr(err.msg, "page 2 (3) not above") != NULL &&
		   pages == NULL,
	   "an index below the one before is refused: %s", err.msg);
	free(b);
	b = list(twice, 3, &len);
	ok(prefault_parse(b, len, &pages, &n, &err) < 0 &&
		   strstr(err.msg, "not above") != NULL,
	   "a repeated index is refused: %s", err.msg);
	free(b);
	many = malloc((PREFAULT_MAX_PAGES + 1) * sizeof(*many));
	for (uint32_t i = 0; i <= PREFAULT_MAX_PAGES; i++)
		many[i] = 2 * i;
	b = list(many, PREFAULT_MAX_PAGES, &len);
	ok(prefault_parse(b, len, &pages, &n, &err) == 0 &&
		   n == PREFAULT_MAX_PAGES &&
		   pages[PREFAULT_MAX_PAGES - 1] ==
			   2 * (PREFAULT_MAX_PAGES - 1),
	   "a list of the most pages (%d) parses", PREFAULT_MAX_PAGES);
	free(pages);
	free(b);
	b = list(many, PREFAULT_MAX_PAGES + 1, &len);
	ok(prefault_parse(b, len, &pages, &n, &err) < 0 && err.errnum == E2BIG,
	   "one page more is refused: %s", err.msg);
	free(b);
	free(many);
}

/* The list file at dir/prefault, parsed; -1 when absent or bad. */
static int read_list(const char *dir, uint32_t **pages, size_t *n)
{
	char path[256];
	struct kiln_error err = { 0 };
	size_t len = 0;
	char *buf;
	int r;

	snprintf(path, sizeof(path), "%s/" VM_PREFAULT, dir);
	buf = file_read(path, PREFAULT_FILE_MAX, &len, &err);
	if (buf == NULL)
		return -1;
	r = prefault_parse(buf, len, pages, n, &err);
	free(buf);
	return r;
}

/* Entries of dir other than ., .. and the template's VM_DIR */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d != NULL && (e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 &&
		     strcmp(e->d_name, "..") != 0 &&
		     strcmp(e->d_name, VM_DIR) != 0;
	if (d != NULL)
		closedir(d);
	return n;
}

/*
 * A template's fork socket at dir/vm/fork.sock, made under another name
 * and renamed over the last (so that it is another inode), and p as
 * template_pick leaves it: 0, or -1.
 */
static int fork_sock(const char *dir, struct vm_plan *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[256];
	struct stat st;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int r;

	snprintf(path, sizeof(path), "%s/" VM_DIR, dir);
	mkdir(path, 0700);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" VM_DIR "/new.sock",
		 dir);
	unlink(sa.sun_path);
	snprintf(path, sizeof(path), "%s/" VM_DIR "/fork.sock", dir);
	r = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
			    rename(sa.sun_path, path) == 0 &&
			    stat(path, &st) == 0
		    ? 0
		    : -1;
	if (fd >= 0)
		close(fd);
	if (r == 0) {
		p->template_dev = st.st_dev;
		p->template_ino = st.st_ino;
	}
	return r;
}

static void fork_sock_remove(const char *dir)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/" VM_DIR "/fork.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/" VM_DIR, dir);
	rmdir(path);
}

static void test_record(void)
{
	static const uint32_t written[] = { 0, 3, 4, 5, 100, 8191 };
	char dir[] = "/tmp/kiln-prefault-XXXXXX";
	struct vm_config conf = { .memory_mib = 32 };
	struct vm_plan p = { .conf = &conf };
	uint64_t size = 32ULL << 20;
	uint32_t *pages = NULL;
	volatile uint8_t sink = 0;
	size_t n = 0;
	uint8_t *ram;
	int fd, r;

	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	p.template_dir = dir;
	if (fork_sock(dir, &p) < 0) {
		ok(0, "the template's fork socket: %s", strerror(errno));
		return;
	}
	/* as a fork maps its template's RAM: the memfd's name, private */
	fd = memfd_create("kiln-guest-ram", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		ok(0, "memfd: %s", strerror(errno));
		return;
	}
	ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (ram == MAP_FAILED) {
		ok(0, "mmap: %s", strerror(errno));
		return;
	}
	/* read only: mapped from the memfd, not copied, not listed */
	for (uint64_t off = 0; off < size; off += 3 * 4096)
		sink += ram[off + 1];
	for (size_t i = 0; i < sizeof(written) / sizeof(written[0]); i++)
		ram[(uint64_t)written[i] * 4096 + 17] = 1;

	template_prefault_record(&p, getpid());
	r = read_list(dir, &pages, &n);
	ok(r == 0 && n == sizeof(written) / sizeof(written[0]) &&
		   memcmp(pages, written, sizeof(written)) == 0,
	   "the pages written, and only those, are listed (%zu)", n);
	free(pages);
	ok(entries(dir) == 1, "the list alone is left in the template's "
			      "folder, no temporary");

	/* a second recorder (two first forks at once) keeps the first */
	ram[77 * 4096] = 1;
	template_prefault_record(&p, getpid());
	r = read_list(dir, &pages, &n);
	ok(r == 0 && n == sizeof(written) / sizeof(written[0]),
	   "a second record leaves the first list (%zu pages)", n);
	free(pages);
	ok(entries(dir) == 1, "and no temporary");

	/* more written than the most: the lowest PREFAULT_MAX_PAGES */
	memset(ram, 2, size);
	unlink(strcat(strcpy((char[256]){ 0 }, dir), "/" VM_PREFAULT));
	template_prefault_record(&p, getpid());
	r = read_list(dir, &pages, &n);
	ok(r == 0 && n == PREFAULT_MAX_PAGES && pages[0] == 0 &&
		   pages[n - 1] == PREFAULT_MAX_PAGES - 1,
	   "8192 pages written: the first %d listed", PREFAULT_MAX_PAGES);
	free(pages);

	/* a template rebuilt while its first fork recorded: another socket
	 * there, and the list is not the new template's */
	unlink(strcat(strcpy((char[256]){ 0 }, dir), "/" VM_PREFAULT));
	{
		struct vm_plan rebuilt = p;

		fork_sock(dir, &rebuilt);
	}
	template_prefault_record(&p, getpid());
	ok(entries(dir) == 0, "a list recorded from a template rebuilt "
			      "meanwhile is dropped");
	fork_sock(dir, &p);

	/* no guest RAM of that size: nothing written */
	unlink(strcat(strcpy((char[256]){ 0 }, dir), "/" VM_PREFAULT));
	conf.memory_mib = 64;
	template_prefault_record(&p, getpid());
	ok(entries(dir) == 0, "without a mapping of the VM's size, no list");

	munmap(ram, size);
	close(fd);
	fork_sock_remove(dir);
	rmdir(dir);
	(void)sink;
}

int main(void)
{
	log_set_level(LOG_OFF);
	test_encode();
	test_parse();
	test_record();
	return tap_done();
}
