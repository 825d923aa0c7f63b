/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the unsealers of sealed snapshots
 * (vmm/snapshot_seal.c), which see a file before anything has vouched
 * for it. A fixed key (bytes 0..31, test_snapshot_seal's key_a).
 *
 * Input: the first byte chooses; even: the rest is a sealed state file
 * for seal_state_open(); odd: the rest is a sealed memory file, put in a
 * memfd, opened by seal_memory_read() for the RAM size and snapshot id its
 * own header states (capped at 8 MiB), so mutations reach the chunk loop.
 *
 * Checks beyond ASan/UBSan: every refusal says why and hands nothing out;
 * an accepted state file hands out exactly the bytes the header's size
 * says, and sealing them again under the same id opens to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/snapshot_seal.h"

static struct seal_key key;
static int memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	for (unsigned int i = 0; i < SEAL_KEY_LEN; i++)
		key.bytes[i] = (uint8_t)i;
	memfd = memfd_create("fuzz-seal", MFD_CLOEXEC);
	if (memfd < 0)
		abort();
	return 0;
}

static void fuzz_state(const uint8_t *data, size_t size)
{
	struct kiln_error err = { 0 };
	uint8_t id[SEAL_ID_LEN], *out = NULL, *again = NULL, *back = NULL;
	size_t len = 0, alen = 0, blen = 0;

	if (seal_state_open(&key, data, size, &out, &len, id, &err) < 0) {
		if (err.msg[0] == '\0' || out != NULL)
			abort();
		return;
	}
	if (len + sizeof(struct seal_header) + SEAL_TAG_LEN != size)
		abort();
	if (seal_state(&key, id, out, len, &again, &alen, &err) < 0 ||
	    seal_state_open(&key, again, alen, &back, &blen, id, &err) < 0 ||
	    blen != len || memcmp(back, out, len) != 0)
		abort();
	free(out);
	free(again);
	free(back);
}

static void fuzz_memory(const uint8_t *data, size_t size)
{
	struct kiln_error err = { 0 };
	struct seal_header h = { 0 };
	uint64_t ram = 4096;
	uint8_t *dst;

	if (size >= sizeof(h))
		memcpy(&h, data, sizeof(h));
	if (h.plain_size > 0 && h.plain_size <= (8ULL << 20))
		ram = h.plain_size;
	if (ftruncate(memfd, 0) < 0 ||
	    (size > 0 && pwrite(memfd, data, size, 0) != (ssize_t)size))
		abort();
	dst = calloc(1, ram);
	if (dst == NULL)
		abort();
	if (seal_memory_read(&key, h.id, memfd, dst, ram, &err) < 0 &&
	    err.msg[0] == '\0')
		abort();
	free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_memory(data + 1, size - 1);
	else
		fuzz_state(data + 1, size - 1);
	return 0;
}
