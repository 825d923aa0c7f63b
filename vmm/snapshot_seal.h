/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed snapshots: a state file and a memory file encrypted and
 * authenticated with AES-256-GCM (OpenSSL's EVP) under a 32-byte key the
 * caller passes in a file.
 *
 * Both files start with a clear header (struct seal_header: magic
 * "KILNSEAL", version, kind, a random snapshot id shared by the two
 * files, a random nonce, the plaintext's size).
 *
 *   state file   header, ciphertext of the whole KILNSNAP file, tag;
 *                AAD = the header
 *   memory file  header, then the RAM in SEAL_CHUNK pieces, each its
 *                ciphertext and tag; chunk i's nonce is the header's with
 *                i XORed into its last 8 bytes, its AAD the header and i,
 *                so chunks cannot be swapped, dropped or moved, and a
 *                memory file of another snapshot (another id) is refused
 *
 * Everything is authenticated before anyone uses a byte of it: the state
 * file before snap_parse() sees it, every chunk of memory before the VM
 * is built. A sealed memory file cannot be mapped lazily: its plaintext
 * goes into a memfd at load.
 */
#ifndef KILN_VMM_SNAPSHOT_SEAL_H
#define KILN_VMM_SNAPSHOT_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/error.h"

#define SEAL_MAGIC     "KILNSEAL"
#define SEAL_VERSION   1
#define SEAL_KEY_LEN   32
#define SEAL_ID_LEN    16
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN   16
#define SEAL_CHUNK     (1U << 20)

enum seal_kind {
	SEAL_STATE = 1,
	SEAL_MEMORY = 2,
};

struct seal_header {
	char magic[8]; /* SEAL_MAGIC, no NUL */
	uint32_t version;
	uint32_t kind; /* enum seal_kind */
	uint8_t id[SEAL_ID_LEN];
	uint8_t nonce[SEAL_NONCE_LEN];
	uint32_t reserved; /* zero */
	uint64_t plain_size;
};

struct seal_key {
	uint8_t bytes[SEAL_KEY_LEN];
};

/*
 * Read a key file: a regular file of exactly SEAL_KEY_LEN bytes (a FIFO,
 * a directory, another size: refused).
 */
int seal_key_read(const char *path, struct seal_key *key,
		  struct kiln_error *err);
/* Wipe a key (OPENSSL_cleanse). */
void seal_key_wipe(struct seal_key *key);

/* Does buf (len bytes) start with SEAL_MAGIC? */
bool seal_is_sealed(const void *buf, size_t len);

/* A fresh random snapshot id. */
int seal_new_id(uint8_t id[SEAL_ID_LEN], struct kiln_error *err);

/* Seal a state file: *out (malloc'd), *outlen bytes. */
int seal_state(const struct seal_key *key, const uint8_t id[SEAL_ID_LEN],
	       const void *plain, size_t len, uint8_t **out, size_t *outlen,
	       struct kiln_error *err);
/*
 * Check and open a sealed state file (untrusted): *plain (malloc'd) of
 * *plainlen bytes, and its snapshot id. Nothing is handed out unless the
 * whole file is authentic.
 */
int seal_state_open(const struct seal_key *key, const void *buf, size_t len,
		    uint8_t **plain, size_t *plainlen, uint8_t id[SEAL_ID_LEN],
		    struct kiln_error *err);

/*
 * Write size bytes of RAM at mem, sealed, to fd (from offset 0). If
 * hole_fd >= 0, it is the memfd behind mem: chunks that are holes in it
 * are sealed from zeros rather than read through mem, which would
 * allocate them.
 */
int seal_memory_write(const struct seal_key *key, const uint8_t id[SEAL_ID_LEN],
		      const uint8_t *mem, uint64_t size, int hole_fd, int fd,
		      struct kiln_error *err);
/*
 * Check and open a sealed memory file (fd, untrusted) of a snapshot id
 * with size bytes of RAM, into dst (size bytes, zeroed by the caller:
 * all-zero pages are not written, so a memfd stays sparse). On failure
 * dst holds garbage the caller must drop.
 */
int seal_memory_read(const struct seal_key *key, const uint8_t id[SEAL_ID_LEN],
		     int fd, uint8_t *dst, uint64_t size,
		     struct kiln_error *err);

#endif
