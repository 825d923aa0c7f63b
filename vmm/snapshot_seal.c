/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed snapshot files (see snapshot_seal.h): AES-256-GCM from OpenSSL's
 * libcrypto, nothing of our own but the framing. Pure code over buffers
 * and fds, no KVM: the unit tests and a fuzzer drive it.
 */
#include "snapshot_seal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/util.h"
#include "../lib/cleanup.h"

#define SEAL_PAGE 4096U

static_assert(sizeof(struct seal_header) == 56, "the clear header's layout");
static_assert(SEAL_CHUNK % SEAL_PAGE == 0, "chunks are whole pages");

static const uint8_t seal_zeros[SEAL_PAGE];

int seal_key_read(const char *path, struct seal_key *key,
		  struct kiln_error *err)
{
	/* O_NONBLOCK: a FIFO in the path must not hang the VMM thread */
	cleanup_close int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	size_t got = 0;

	if (fd < 0)
		return kiln_error_set(err, errno, "open key file `%s`", path);
	if (fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "stat key file `%s`", path);
	if (!S_ISREG(st.st_mode) || st.st_size != SEAL_KEY_LEN)
		return kiln_error_set(err, EINVAL,
				      "key file `%s`: want a regular file of "
				      "exactly %u raw bytes",
				      path, SEAL_KEY_LEN);
	while (got < SEAL_KEY_LEN) {
		ssize_t n = read(fd, key->bytes + got, SEAL_KEY_LEN - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			seal_key_wipe(key);
			return kiln_error_set(err, n < 0 ? errno : EIO,
					      "read key file `%s`", path);
		}
		got += (size_t)n;
	}
	return 0;
}

void seal_key_wipe(struct seal_key *key)
{
	OPENSSL_cleanse(key->bytes, sizeof(key->bytes));
}

bool seal_is_sealed(const void *buf, size_t len)
{
	return len >= 8 && memcmp(buf, SEAL_MAGIC, 8) == 0;
}

/*
 * n random bytes from the kernel's CSPRNG (getrandom), not OpenSSL's
 * DRBG: no generator state of our own to seed, and a VMM whose seccomp
 * filter is loaded needs no more than getrandom for it. (RAND_bytes, in
 * the static kiln-vmm under its filters, failed now and then in the bed.)
 */
static int seal_random(void *buf, size_t n, struct kiln_error *err)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom((uint8_t *)buf + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return kiln_error_set(err, r < 0 ? errno : EIO,
					      "getrandom");
		got += (size_t)r;
	}
	return 0;
}

int seal_new_id(uint8_t id[SEAL_ID_LEN], struct kiln_error *err)
{
	return seal_random(id, SEAL_ID_LEN, err);
}

static void seal_ctx_free(EVP_CIPHER_CTX **c)
{
	EVP_CIPHER_CTX_free(*c);
}

/*
 * One AES-256-GCM operation: in (len bytes) to out, AAD = aad then (if
 * idx) the chunk index. Encrypting writes tag; decrypting checks it.
 */
static int seal_gcm(bool enc, const struct seal_key *key,
		    const uint8_t nonce[SEAL_NONCE_LEN],
		    const struct seal_header *aad, const uint64_t *idx,
		    const uint8_t *in, size_t len, uint8_t *out,
		    uint8_t tag[SEAL_TAG_LEN], struct kiln_error *err)
{
	__attribute__((cleanup(seal_ctx_free)))
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, ok;

	if (c == NULL)
		return kiln_error_set(err, ENOMEM, "EVP_CIPHER_CTX_new");
	ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL,
			       enc ? 1 : 0) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN,
				 NULL) == 1 &&
	     EVP_CipherInit_ex(c, NULL, NULL, key->bytes, nonce, -1) == 1 &&
	     EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)aad,
			      sizeof(*aad)) == 1 &&
	     (idx == NULL || EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)idx,
					      sizeof(*idx)) == 1);
	/* EVP takes int lengths: feed at most a chunk at a time */
	for (size_t off = 0; ok && off < len;) {
		size_t step = len - off < SEAL_CHUNK ? len - off : SEAL_CHUNK;

		ok = EVP_CipherUpdate(c, out + off, &n, in + off, (int)step) ==
			     1 &&
		     (size_t)n == step;
		off += step;
	}
	if (!ok)
		return kiln_error_set(err, EIO, "AES-256-GCM");
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN,
					tag) != 1)
		return kiln_error_set(err, EIO, "AES-256-GCM tag");
	if (EVP_CipherFinal_ex(c, out + len, &n) != 1)
		return kiln_error_set(err, EBADMSG,
				      "authentication failed: wrong key, or "
				      "the file was modified");
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN,
				       tag) != 1)
		return kiln_error_set(err, EIO, "AES-256-GCM tag");
	return 0;
}

static int seal_header_init(struct seal_header *h, uint32_t kind,
			    const uint8_t id[SEAL_ID_LEN], uint64_t size,
			    struct kiln_error *err)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, SEAL_MAGIC, sizeof(h->magic));
	h->version = SEAL_VERSION;
	h->kind = kind;
	memcpy(h->id, id, SEAL_ID_LEN);
	h->plain_size = size;
	return seal_random(h->nonce, SEAL_NONCE_LEN, err);
}

/* file-controlled: the clear header, before it is authenticated */
static int seal_header_check(const struct seal_header *h, uint32_t kind,
			     const char *what, struct kiln_error *err)
{
	if (memcmp(h->magic, SEAL_MAGIC, sizeof(h->magic)) != 0)
		return kiln_error_set(err, EINVAL,
				      "%s is not sealed (no %s magic)", what,
				      SEAL_MAGIC);
	if (h->version != SEAL_VERSION)
		return kiln_error_set(err, EINVAL,
				      "sealed %s of version %u, want %u", what,
				      h->version, SEAL_VERSION);
	if (h->kind != kind || h->reserved != 0)
		return kiln_error_set(err, EINVAL,
				      "sealed %s: kind %u, want %u", what,
				      h->kind, kind);
	return 0;
}

int seal_state(const struct seal_key *key, const uint8_t id[SEAL_ID_LEN],
	       const void *plain, size_t len, uint8_t **out, size_t *outlen,
	       struct kiln_error *err)
{
	struct seal_header h;
	cleanup_free uint8_t *buf = NULL;
	size_t total = sizeof(h) + len + SEAL_TAG_LEN;

	if (seal_header_init(&h, SEAL_STATE, id, len, err) < 0)
		return -1;
	buf = malloc(total);
	if (buf == NULL)
		return kiln_error_set(err, ENOMEM, "sealed state file");
	memcpy(buf, &h, sizeof(h));
	if (seal_gcm(true, key, h.nonce, &h, NULL, plain, len, buf + sizeof(h),
		     buf + sizeof(h) + len, err) < 0)
		return kiln_error_wrap(err, "seal the state file");
	*out = steal_ptr(&buf);
	*outlen = total;
	return 0;
}

int seal_state_open(const struct seal_key *key, const void *buf, size_t len,
		    uint8_t **plain, size_t *plainlen, uint8_t id[SEAL_ID_LEN],
		    struct kiln_error *err)
{
	const uint8_t *p = buf;
	cleanup_free uint8_t *out = NULL;
	uint8_t tag[SEAL_TAG_LEN];
	struct seal_header h;

	if (len < sizeof(h) + SEAL_TAG_LEN)
		return kiln_error_set(err, EINVAL,
				      "sealed state file of %zu bytes: too "
				      "short",
				      len);
	memcpy(&h, p, sizeof(h));
	if (seal_header_check(&h, SEAL_STATE, "state file", err) < 0)
		return -1;
	/* file-controlled: plain_size must account for the file exactly */
	if (h.plain_size != len - sizeof(h) - SEAL_TAG_LEN)
		return kiln_error_set(err, EINVAL,
				      "sealed state file of %zu bytes says "
				      "%llu of state: truncated or extended",
				      len, (unsigned long long)h.plain_size);
	out = malloc(h.plain_size > 0 ? h.plain_size : 1);
	if (out == NULL)
		return kiln_error_set(err, ENOMEM, "open the state file");
	memcpy(tag, p + len - SEAL_TAG_LEN, SEAL_TAG_LEN);
	if (seal_gcm(false, key, h.nonce, &h, NULL, p + sizeof(h), h.plain_size,
		     out, tag, err) < 0) {
		OPENSSL_cleanse(out, h.plain_size);
		return kiln_error_wrap(err, "sealed state file");
	}
	memcpy(id, h.id, SEAL_ID_LEN);
	*plain = steal_ptr(&out);
	*plainlen = h.plain_size;
	return 0;
}

static void seal_chunk_nonce(const uint8_t base[SEAL_NONCE_LEN], uint64_t i,
			     uint8_t out[SEAL_NONCE_LEN])
{
	memcpy(out, base, SEAL_NONCE_LEN);
	for (unsigned int b = 0; b < 8; b++)
		out[SEAL_NONCE_LEN - 1 - b] ^= (uint8_t)(i >> (8 * b));
}

static uint64_t seal_memory_file_size(uint64_t size)
{
	uint64_t nchunks = (size + SEAL_CHUNK - 1) / SEAL_CHUNK;

	return sizeof(struct seal_header) + size + nchunks * SEAL_TAG_LEN;
}

/* Is [off, off + len) of the memfd a hole (never written)? */
static bool seal_is_hole(int fd, uint64_t off, uint64_t len)
{
	off_t d;

	if (fd < 0)
		return false;
	d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0)
		return errno == ENXIO; /* no data from off to the end */
	return (uint64_t)d >= off + len;
}

int seal_memory_write(const struct seal_key *key, const uint8_t id[SEAL_ID_LEN],
		      const uint8_t *mem, uint64_t size, int hole_fd, int fd,
		      struct kiln_error *err)
{
	cleanup_free uint8_t *zeros = NULL;
	cleanup_free uint8_t *buf = malloc(SEAL_CHUNK + SEAL_TAG_LEN);
	struct seal_header h;
	uint64_t pos = sizeof(h);

	if (buf == NULL)
		return kiln_error_set(err, ENOMEM, "seal memory");
	if (seal_header_init(&h, SEAL_MEMORY, id, size, err) < 0)
		return -1;
	if (util_pwrite_all(fd, (const uint8_t *)&h, sizeof(h), 0) < 0)
		return kiln_error_set(err, errno, "write memory file");
	for (uint64_t i = 0, off = 0; off < size; i++, off += SEAL_CHUNK) {
		size_t len = size - off < SEAL_CHUNK ? size - off : SEAL_CHUNK;
		const uint8_t *src = mem + off;
		uint8_t nonce[SEAL_NONCE_LEN];

		if (seal_is_hole(hole_fd, off, len)) {
			if (zeros == NULL &&
			    (zeros = calloc(1, SEAL_CHUNK)) == NULL)
				return kiln_error_set(err, ENOMEM,
						      "seal memory");
			src = zeros;
		}
		seal_chunk_nonce(h.nonce, i, nonce);
		if (seal_gcm(true, key, nonce, &h, &i, src, len, buf, buf + len,
			     err) < 0)
			return kiln_error_wrap(err, "seal memory chunk %llu",
					       (unsigned long long)i);
		if (util_pwrite_all(fd, buf, len + SEAL_TAG_LEN, pos) < 0)
			return kiln_error_set(err, errno, "write memory file");
		pos += len + SEAL_TAG_LEN;
	}
	return 0;
}

int seal_memory_read(const struct seal_key *key, const uint8_t id[SEAL_ID_LEN],
		     int fd, uint8_t *dst, uint64_t size,
		     struct kiln_error *err)
{
	cleanup_free uint8_t *ct = malloc(SEAL_CHUNK + SEAL_TAG_LEN);
	cleanup_free uint8_t *pt = malloc(SEAL_CHUNK);
	struct seal_header h;
	uint64_t pos = sizeof(h), want = seal_memory_file_size(size);
	struct stat st;

	if (ct == NULL || pt == NULL)
		return kiln_error_set(err, ENOMEM, "open memory");
	if (fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "stat memory file");
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != want)
		return kiln_error_set(err, EINVAL,
				      "sealed memory file is %llu bytes, the "
				      "snapshot's %llu bytes of RAM make %llu",
				      (unsigned long long)st.st_size,
				      (unsigned long long)size,
				      (unsigned long long)want);
	if (util_pread_all(fd, (uint8_t *)&h, sizeof(h), 0) < 0)
		return kiln_error_set(err, errno, "read memory file");
	if (seal_header_check(&h, SEAL_MEMORY, "memory file", err) < 0)
		return -1;
	if (h.plain_size != size)
		return kiln_error_set(err, EINVAL,
				      "sealed memory file of %llu bytes of "
				      "RAM, the snapshot has %llu",
				      (unsigned long long)h.plain_size,
				      (unsigned long long)size);
	/* the AEAD binds the id too, but say so plainly */
	if (memcmp(h.id, id, SEAL_ID_LEN) != 0)
		return kiln_error_set(err, EINVAL,
				      "the memory file belongs to another "
				      "snapshot (its id differs)");
	for (uint64_t i = 0, off = 0; off < size; i++, off += SEAL_CHUNK) {
		size_t len = size - off < SEAL_CHUNK ? size - off : SEAL_CHUNK;
		uint8_t nonce[SEAL_NONCE_LEN];

		if (util_pread_all(fd, ct, len + SEAL_TAG_LEN, pos) < 0)
			return kiln_error_set(err, errno, "read memory file");
		seal_chunk_nonce(h.nonce, i, nonce);
		if (seal_gcm(false, key, nonce, &h, &i, ct, len, pt, ct + len,
			     err) < 0)
			return kiln_error_wrap(err,
					       "sealed memory file, chunk %llu",
					       (unsigned long long)i);
		/* zero pages stay untouched: the memfd keeps its holes */
		for (size_t p = 0; p < len; p += SEAL_PAGE) {
			size_t n = len - p < SEAL_PAGE ? len - p : SEAL_PAGE;

			if (memcmp(pt + p, seal_zeros, n) != 0)
				memcpy(dst + off + p, pt + p, n);
		}
		pos += len + SEAL_TAG_LEN;
	}
	OPENSSL_cleanse(pt, SEAL_CHUNK);
	return 0;
}
