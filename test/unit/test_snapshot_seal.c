/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed snapshots (vmm/snapshot_seal.c) without KVM: state and memory
 * files round trip under their key; another key, every flipped byte of a
 * small sealed state file, bytes flipped in every part of a memory file,
 * every truncation, swapped or dropped chunks and the memory file of
 * another snapshot are refused; key files of the wrong size, a FIFO or a
 * directory are refused; a sealed state file without a key and an
 * unsealed one with a key are refused with a message that says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/snapshot.h"
#include "../../vmm/snapshot_seal.h"
#include "tap.h"

/* two chunks and a half: the last one short */
#define MEM  (2 * SEAL_CHUNK + SEAL_CHUNK / 2)
#define HDR  sizeof(struct seal_header)
#define CHK  (SEAL_CHUNK + SEAL_TAG_LEN)
#define MEMF (HDR + MEM + 3 * SEAL_TAG_LEN)

static struct seal_key key_a, key_b;
static char dir[] = "/tmp/kiln-seal-XXXXXX";

static bool refused(int ret, const struct kiln_error *err, const char *want)
{
	return ret < 0 && strstr(err->msg, want) != NULL;
}

static void test_state_round_trip(void)
{
	struct kiln_error err = { 0 };
	uint8_t plain[1000], id[SEAL_ID_LEN], got_id[SEAL_ID_LEN];
	uint8_t *sealed = NULL, *out = NULL, *again = NULL;
	size_t slen = 0, olen = 0, alen = 0;

	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)(i * 7 + 3);
	ok(seal_new_id(id, &err) == 0, "a random id");
	ok(seal_state(&key_a, id, plain, sizeof(plain), &sealed, &slen, &err) ==
		   0,
	   "seal a state file: %s", err.msg);
	is_int(slen, HDR + sizeof(plain) + SEAL_TAG_LEN,
	       "  header + ciphertext + tag");
	ok(seal_is_sealed(sealed, slen), "  it says it is sealed");
	ok(memmem(sealed, slen, plain + 100, 16) == NULL, "  no plaintext in "
							  "the sealed file");
	ok(seal_state_open(&key_a, sealed, slen, &out, &olen, got_id, &err) ==
			   0 &&
		   olen == sizeof(plain) && memcmp(out, plain, olen) == 0 &&
		   memcmp(got_id, id, SEAL_ID_LEN) == 0,
	   "  opens with its key, the same bytes and id: %s", err.msg);
	ok(refused(seal_state_open(&key_b, sealed, slen, &again, &alen, got_id,
				   &err),
		   &err, "authentication failed") &&
		   again == NULL,
	   "  another key: refused (%s)", err.msg);
	free(sealed);
	free(out);
	sealed = NULL;
	ok(seal_state(&key_a, id, plain, sizeof(plain), &sealed, &slen, &err) ==
			   0 &&
		   memcmp(sealed + HDR, plain, 16) != 0,
	   "a second seal of the same state");
	free(sealed);
}

/* Every byte of a small sealed state file flipped, every truncation. */
static void test_state_tamper(void)
{
	struct kiln_error err = { 0 };
	uint8_t plain[200], id[SEAL_ID_LEN] = { 1, 2, 3 };
	uint8_t *sealed = NULL, *out = NULL;
	size_t slen = 0, olen = 0, nflip = 0, ntrunc = 0;

	memset(plain, 'x', sizeof(plain));
	if (seal_state(&key_a, id, plain, sizeof(plain), &sealed, &slen, &err) <
	    0) {
		ok(0, "seal: %s", err.msg);
		return;
	}
	for (size_t i = 0; i < slen; i++)
		for (unsigned int bit = 0; bit < 8; bit += 7) {
			uint8_t *c = malloc(slen);

			memcpy(c, sealed, slen);
			c[i] ^= (uint8_t)(1U << bit);
			memset(&err, 0, sizeof(err));
			out = NULL;
			if (seal_state_open(&key_a, c, slen, &out, &olen, id,
					    &err) < 0 &&
			    err.msg[0] != '\0' && out == NULL)
				nflip++;
			else
				printf("# flip of byte %zu bit %u accepted\n",
				       i, bit);
			free(out);
			free(c);
		}
	is_int(nflip, slen * 2,
	       "every one of %zu bytes flipped (bits 0 and 7): refused", slen);
	for (size_t len = 0; len < slen; len++) {
		out = NULL;
		if (seal_state_open(&key_a, sealed, len, &out, &olen, id,
				    &err) < 0 &&
		    out == NULL)
			ntrunc++;
		free(out);
	}
	is_int(ntrunc, slen, "every truncation refused");
	{
		uint8_t *c = calloc(1, slen + 1);

		memcpy(c, sealed, slen);
		ok(refused(seal_state_open(&key_a, c, slen + 1, &out, &olen, id,
					   &err),
			   &err, "truncated or extended"),
		   "a byte appended: refused (%s)", err.msg);
		free(c);
	}
	free(sealed);
}

static int tmpfile_in(const char *name, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", dir, name);
	return open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

static uint8_t *pattern(void)
{
	uint8_t *m = calloc(1, MEM);

	/* data, zero pages between, a chunk-straddling run and a short end */
	for (size_t i = 0; i < MEM; i++)
		if ((i / 4096) % 3 != 1)
			m[i] = (uint8_t)((i * 31) ^ (i >> 12));
	memcpy(m + 12345, "KILN-MARKER-SECRET", 18);
	return m;
}

static int read_into(const struct seal_key *k, const uint8_t *id, int fd,
		     uint8_t **dst, struct kiln_error *err)
{
	*dst = calloc(1, MEM);
	return seal_memory_read(k, id, fd, *dst, MEM, err);
}

static void copy_file(int from, int to, size_t len)
{
	uint8_t *b = malloc(len);

	if (pread(from, b, len, 0) != (ssize_t)len || ftruncate(to, 0) < 0 ||
	    pwrite(to, b, len, 0) != (ssize_t)len)
		printf("# copy failed\n");
	free(b);
}

static void flip_at(int fd, off_t off)
{
	uint8_t b;

	if (pread(fd, &b, 1, off) != 1)
		return;
	b ^= 0x20;
	if (pwrite(fd, &b, 1, off) != 1)
		printf("# flip failed\n");
}

static void test_memory(void)
{
	struct kiln_error err = { 0 };
	uint8_t id[SEAL_ID_LEN], id2[SEAL_ID_LEN];
	uint8_t *mem = pattern(), *dst = NULL, *marker;
	char path[256], path2[256], path3[256];
	int fd = tmpfile_in("mem", path, sizeof(path));
	int fd2 = tmpfile_in("mem2", path2, sizeof(path2));
	int work = tmpfile_in("work", path3, sizeof(path3));
	struct stat st;
	size_t nflip = 0, nwant = 0;
	uint8_t *file = malloc(MEMF);

	seal_new_id(id, &err);
	seal_new_id(id2, &err);
	ok(seal_memory_write(&key_a, id, mem, MEM, -1, fd, &err) == 0,
	   "seal %u bytes of RAM: %s", MEM, err.msg);
	ok(fstat(fd, &st) == 0 && (uint64_t)st.st_size == MEMF, "  header + "
								"RAM + a tag "
								"per chunk");
	ok(pread(fd, file, MEMF, 0) == (ssize_t)MEMF &&
		   memmem(file, MEMF, "KILN-MARKER-SECRET", 18) == NULL,
	   "  the marker is not in the sealed file");
	marker = memmem(mem, MEM, "KILN-MARKER-SECRET", 18);
	ok(marker != NULL, "  (it is in the RAM)");
	ok(read_into(&key_a, id, fd, &dst, &err) == 0 &&
		   memcmp(dst, mem, MEM) == 0,
	   "  opens with its key into the same RAM: %s", err.msg);
	free(dst);
	ok(refused(read_into(&key_b, id, fd, &dst, &err), &err,
		   "authentication failed"),
	   "  another key: refused (%s)", err.msg);
	free(dst);
	ok(refused(read_into(&key_a, id2, fd, &dst, &err), &err,
		   "another snapshot"),
	   "  for another snapshot's state file: refused (%s)", err.msg);
	free(dst);

	/* another snapshot's memory, its id patched to ours: the AAD says no */
	ok(seal_memory_write(&key_a, id2, mem, MEM, -1, fd2, &err) == 0,
	   "seal the same RAM as another snapshot");
	copy_file(fd2, work, MEMF);
	if (pwrite(work, id, SEAL_ID_LEN, offsetof(struct seal_header, id)) !=
	    SEAL_ID_LEN)
		printf("# patch failed\n");
	ok(refused(read_into(&key_a, id, work, &dst, &err), &err,
		   "authentication failed"),
	   "  its memory file, id patched to the first's: refused (%s)",
	   err.msg);
	free(dst);
	/* the first's chunk 1 spliced into the second's file */
	copy_file(fd2, work, MEMF);
	if (pwrite(work, file + HDR + CHK, CHK, HDR + CHK) != (ssize_t)CHK)
		printf("# splice failed\n");
	ok(refused(read_into(&key_a, id2, work, &dst, &err), &err, "chunk 1"),
	   "  a chunk of another snapshot spliced in: refused (%s)", err.msg);
	free(dst);

	/* chunks 0 and 1 swapped */
	copy_file(fd, work, MEMF);
	if (pwrite(work, file + HDR + CHK, CHK, HDR) != (ssize_t)CHK ||
	    pwrite(work, file + HDR, CHK, HDR + CHK) != (ssize_t)CHK)
		printf("# swap failed\n");
	ok(refused(read_into(&key_a, id, work, &dst, &err), &err, "chunk 0"),
	   "chunks 0 and 1 swapped: refused (%s)", err.msg);
	free(dst);

	/* truncations: a byte, the last chunk, all but the header */
	{
		const size_t lens[] = { MEMF - 1, HDR + 2 * CHK, HDR, 10, 0 };

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			copy_file(fd, work, MEMF);
			if (ftruncate(work, (off_t)lens[i]) < 0)
				printf("# truncate failed\n");
			ok(refused(read_into(&key_a, id, work, &dst, &err),
				   &err, "bytes"),
			   "truncated to %zu bytes: refused (%s)", lens[i],
			   err.msg);
			free(dst);
		}
		copy_file(fd, work, MEMF);
		if (pwrite(work, "", 1, MEMF) != 1)
			printf("# extend failed\n");
		ok(refused(read_into(&key_a, id, work, &dst, &err), &err,
			   "bytes"),
		   "a byte appended: refused (%s)", err.msg);
		free(dst);
	}

	/* flips: every header byte, the ends of every chunk and tag */
	{
		size_t offs[HDR + 16];
		size_t n = 0;

		for (size_t i = 0; i < HDR; i++)
			offs[n++] = i;
		for (size_t c = 0; c < 3; c++) {
			size_t start = HDR + c * CHK;
			size_t len = c < 2 ? SEAL_CHUNK : SEAL_CHUNK / 2;

			offs[n++] = start;
			offs[n++] = start + 12345 % len;
			offs[n++] = start + len - 1;
			offs[n++] = start + len;		    /* tag */
			offs[n++] = start + len + SEAL_TAG_LEN - 1; /* tag */
		}
		for (size_t i = 0; i < n; i++) {
			copy_file(fd, work, MEMF);
			flip_at(work, (off_t)offs[i]);
			nwant++;
			memset(&err, 0, sizeof(err));
			if (read_into(&key_a, id, work, &dst, &err) < 0 &&
			    err.msg[0] != '\0')
				nflip++;
			else
				printf("# flip at %zu accepted\n", offs[i]);
			free(dst);
		}
		is_int(nflip, nwant,
		       "every header byte, and the first, a middle and last "
		       "byte and tag of each chunk, flipped: refused");
	}
	close(fd);
	close(fd2);
	close(work);
	unlink(path);
	unlink(path2);
	unlink(path3);
	free(file);
	free(mem);
}

/* A memfd's holes are sealed from zeros; the reader keeps zero pages out. */
static void test_memory_holes(void)
{
	struct kiln_error err = { 0 };
	uint8_t id[SEAL_ID_LEN] = { 9 };
	char path[256];
	int mfd = memfd_create("ram", MFD_CLOEXEC);
	int fd = tmpfile_in("holes", path, sizeof(path));
	uint8_t *ram, *dst, *back;
	struct stat st;

	if (mfd < 0 || ftruncate(mfd, MEM) < 0) {
		ok(0, "memfd");
		return;
	}
	ram = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	memcpy(ram + SEAL_CHUNK + 4096, "only data", 9);
	ok(seal_memory_write(&key_a, id, ram, MEM, mfd, fd, &err) == 0,
	   "seal a sparse memfd: %s", err.msg);
	if (fstat(mfd, &st) < 0)
		st.st_blocks = -1;
	ok(st.st_blocks >= 0 && st.st_blocks * 512 <= SEAL_CHUNK,
	   "  its hole chunks were not read through the mapping (%lld "
	   "blocks)",
	   (long long)st.st_blocks);
	back = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED,
		    (mfd = memfd_create("back", MFD_CLOEXEC),
		     ftruncate(mfd, MEM), mfd),
		    0);
	dst = back;
	ok(seal_memory_read(&key_a, id, fd, dst, MEM, &err) == 0, "  opens: %s",
	   err.msg);
	/* before the comparison below reads every page */
	if (fstat(mfd, &st) < 0)
		st.st_blocks = -1;
	ok(st.st_blocks >= 0 && st.st_blocks * 512 <= 2 * 4096,
	   "  zero pages were not written into the new memfd (%lld blocks)",
	   (long long)st.st_blocks);
	ok(memcmp(dst, ram, MEM) == 0, "  into the same RAM");
	munmap(ram, MEM);
	munmap(back, MEM);
	close(mfd);
	close(fd);
	unlink(path);
}

static void write_file(const char *path, const void *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, b, n) != (ssize_t)n)
		printf("# write %s failed\n", path);
	close(fd);
}

static void test_key_file(void)
{
	struct kiln_error err = { 0 };
	struct seal_key k;
	char path[256];
	uint8_t bytes[40];

	memset(bytes, 0xa5, sizeof(bytes));
	snprintf(path, sizeof(path), "%s/key", dir);
	write_file(path, bytes, 32);
	ok(seal_key_read(path, &k, &err) == 0 &&
		   memcmp(k.bytes, bytes, 32) == 0,
	   "a 32-byte key file: read (%s)", err.msg);
	write_file(path, bytes, 31);
	ok(refused(seal_key_read(path, &k, &err), &err, "exactly 32"),
	   "31 bytes: refused (%s)", err.msg);
	write_file(path, bytes, 33);
	ok(refused(seal_key_read(path, &k, &err), &err, "exactly 32"),
	   "33 bytes: refused (%s)", err.msg);
	unlink(path);
	ok(refused(seal_key_read(path, &k, &err), &err, "open key file"),
	   "missing: refused (%s)", err.msg);
	ok(refused(seal_key_read(dir, &k, &err), &err, "regular file"),
	   "a directory: refused (%s)", err.msg);
	if (mkfifo(path, 0600) == 0) {
		ok(refused(seal_key_read(path, &k, &err), &err, "regular file"),
		   "a FIFO: refused at once (%s)", err.msg);
		unlink(path);
	} else {
		ok(0, "mkfifo: %s", strerror(errno));
	}
}

/* snapshot_read_state: sealed or not against key or not. */
static void test_read_state(void)
{
	struct kiln_error err = { 0 };
	uint8_t plain[300], id[SEAL_ID_LEN] = { 7 }, got[SEAL_ID_LEN];
	uint8_t *sealed = NULL, *buf = NULL;
	size_t slen = 0, len = 0;
	char sp[256], pp[256];

	memset(plain, 'p', sizeof(plain));
	memcpy(plain, SNAP_MAGIC, 8);
	snprintf(sp, sizeof(sp), "%s/state.sealed", dir);
	snprintf(pp, sizeof(pp), "%s/state.plain", dir);
	seal_state(&key_a, id, plain, sizeof(plain), &sealed, &slen, &err);
	write_file(sp, sealed, slen);
	write_file(pp, plain, sizeof(plain));
	ok(snapshot_read_state(sp, &key_a, &buf, &len, got, &err) == 0 &&
		   len == sizeof(plain) && memcmp(buf, plain, len) == 0 &&
		   memcmp(got, id, SEAL_ID_LEN) == 0,
	   "a sealed state file with its key: the plain state (%s)", err.msg);
	free(buf);
	buf = NULL;
	ok(refused(snapshot_read_state(sp, NULL, &buf, &len, got, &err), &err,
		   "is sealed") &&
		   buf == NULL,
	   "a sealed state file without a key: refused (%s)", err.msg);
	ok(refused(snapshot_read_state(sp, &key_b, &buf, &len, got, &err), &err,
		   "authentication failed") &&
		   buf == NULL,
	   "a sealed state file with another key: refused (%s)", err.msg);
	ok(refused(snapshot_read_state(pp, &key_a, &buf, &len, got, &err), &err,
		   "not sealed") &&
		   buf == NULL,
	   "an unsealed state file with a key: refused (%s)", err.msg);
	ok(snapshot_read_state(pp, NULL, &buf, &len, got, &err) == 0 &&
		   len == sizeof(plain),
	   "an unsealed state file without a key: as is");
	free(buf);
	free(sealed);
	unlink(sp);
	unlink(pp);
}

/*
 * fuzz_snapshot_seal's seeds in the directory path: a sealed state file
 * (first byte 0) and a sealed memory file of 3 pages (first byte 1).
 */
static void write_seeds(const char *path)
{
	struct kiln_error err = { 0 };
	uint8_t id[SEAL_ID_LEN] = { 0 }, *s = NULL, *b;
	uint8_t ram[3 * 4096] = { 0 };
	char name[512];
	size_t n = 0;
	int fd = memfd_create("seed", MFD_CLOEXEC);
	struct stat st;

	seal_state(&key_a, id, "KILNSNAP-seed", 13, &s, &n, &err);
	b = malloc(n + 1);
	b[0] = 0;
	memcpy(b + 1, s, n);
	snprintf(name, sizeof(name), "%s/state", path);
	write_file(name, b, n + 1);
	free(b);
	free(s);
	memcpy(ram + 4096, "seed", 4);
	seal_memory_write(&key_a, id, ram, sizeof(ram), -1, fd, &err);
	fstat(fd, &st);
	b = malloc((size_t)st.st_size + 1);
	b[0] = 1;
	if (pread(fd, b + 1, (size_t)st.st_size, 0) == st.st_size) {
		snprintf(name, sizeof(name), "%s/memory", path);
		write_file(name, b, (size_t)st.st_size + 1);
	}
	free(b);
	close(fd);
}

int main(void)
{
	const char *seed = getenv("KILN_SNAPSHOT_SEAL_SEED");

	log_set_level(LOG_ERROR);
	for (unsigned int i = 0; i < SEAL_KEY_LEN; i++)
		key_a.bytes[i] = key_b.bytes[i] = (uint8_t)i;
	key_b.bytes[31] ^= 1;
	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return tap_done();
	}
	test_state_round_trip();
	test_state_tamper();
	test_memory();
	test_memory_holes();
	test_key_file();
	test_read_state();
	if (seed != NULL)
		write_seeds(seed);
	rmdir(dir);
	return tap_done();
}
