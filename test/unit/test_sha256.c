/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/sha256: FIPS 180-2's example digests (one block, two blocks, a
 * million bytes), and the same digests as OpenSSL's for every length
 * from 0 to 300 bytes (each padding case) fed whole and a byte at a time.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/sha256.h"
#include "tap.h"

static void hex(const uint8_t *d, char out[2 * SHA256_LEN + 1])
{
	for (int i = 0; i < SHA256_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void digest(const void *data, size_t len, char out[2 * SHA256_LEN + 1])
{
	struct sha256 s;
	uint8_t d[SHA256_LEN];

	sha256_init(&s);
	sha256_update(&s, data, len);
	sha256_final(&s, d);
	hex(d, out);
}

static void test_vectors(void)
{
	static char million[1000000];
	char got[2 * SHA256_LEN + 1];
	struct sha256 s;
	uint8_t d[SHA256_LEN];

	digest("", 0, got);
	ok(strcmp(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991"
		       "b"
		       "7852b855") == 0,
	   "empty: %s", got);
	digest("abc", 3, got);
	ok(strcmp(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff6"
		       "1"
		       "f20015ad") == 0,
	   "abc: %s", got);
	digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	       got);
	ok(strcmp(got, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd"
		       "4"
		       "19db06c1") == 0,
	   "two blocks: %s", got);
	memset(million, 'a', sizeof(million));
	sha256_init(&s);
	for (size_t i = 0; i < sizeof(million); i += 1000)
		sha256_update(&s, million + i, 1000);
	sha256_final(&s, d);
	hex(d, got);
	ok(strcmp(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39c"
		       "c"
		       "c7112cd0") == 0,
	   "a million 'a' in pieces of 1000: %s", got);
}

static void test_openssl(void)
{
	uint8_t buf[300], want[EVP_MAX_MD_SIZE], whole[SHA256_LEN],
		bytewise[SHA256_LEN];
	unsigned int wlen = 0;
	int bad = 0;

	srand(13);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (size_t len = 0; len <= sizeof(buf); len++) {
		struct sha256 s;

		if (EVP_Digest(buf, len, want, &wlen, EVP_sha256(), NULL) !=
			    1 ||
		    wlen != SHA256_LEN) {
			bad++;
			continue;
		}
		sha256_init(&s);
		sha256_update(&s, buf, len);
		sha256_final(&s, whole);
		sha256_init(&s);
		for (size_t i = 0; i < len; i++)
			sha256_update(&s, buf + i, 1);
		sha256_final(&s, bytewise);
		if (memcmp(whole, want, SHA256_LEN) != 0 ||
		    memcmp(bytewise, want, SHA256_LEN) != 0) {
			printf("# differs from OpenSSL at %zu bytes\n", len);
			bad++;
		}
	}
	is_int(bad, 0, "OpenSSL's digest for 0..300 bytes, whole and bytewise");
}

int main(void)
{
	test_vectors();
	test_openssl();
	return tap_done();
}
