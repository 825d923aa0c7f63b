/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-256 (FIPS 180-4), for the runtime's cache keys (oci/layer.c). Our
 * own rather than OpenSSL's: kiln loaded all of libcrypto, and set up its
 * providers on the first digest, for this one hash on every container
 * start (about 50 ms of the pid process's under the test bed's emulation).
 * No secrets go through it; it need not be constant-time.
 */
#ifndef KILN_SHA256_H
#define KILN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

/* One digest in progress: its caller's, like any local. */
struct sha256 {
	uint32_t h[8];
	uint64_t bytes;	   /* hashed so far */
	uint8_t block[64]; /* a partial block: bytes % 64 of it */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);

#endif
