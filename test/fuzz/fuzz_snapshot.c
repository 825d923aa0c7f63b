/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the snapshot state-file loader (vmm/snapshot.c), the
 * code a PUT /snapshot/load feeds a file to before any VM exists.
 *
 * Input: a state file. When its first byte is odd, the rest is the file
 * with its header's size and CRC32C fixed up first, so that mutations
 * reach the section walk and not only the checksum test; when even, the
 * rest is taken as is.
 *
 * Checks beyond ASan/UBSan: every refusal says why; an accepted file
 * indexes sections that lie inside it, in the order the format fixes
 * (config, VM, vCPUs in id order, legacy devices, virtio slots rising),
 * and writing those sections again (snap_writer) gives back the very same
 * bytes; each vCPU blob, and the config, are checked as the restore does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/log.h"
#include "../../vmm/snapshot.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return 0;
}

static void refused(const struct kiln_error *err)
{
	if (err->msg[0] == '\0')
		abort();
}

static void inside(const uint8_t *buf, size_t len, const struct snap_blob *b)
{
	const uint8_t *p = b->data;

	if (p < buf || b->size > len || p - buf > (ptrdiff_t)(len - b->size))
		abort();
}

static void check(const uint8_t *buf, size_t len, struct snap_image *img)
{
	struct snap_writer w = { 0 };
	struct kiln_error err = { 0 };
	struct vm_config cfg;
	uint8_t *out = NULL;
	size_t outlen = 0;

	inside(buf, len, &img->config);
	snap_add(&w, SNAP_SEC_CONFIG, 0, img->config.data, img->config.size);
	snap_add(&w, SNAP_SEC_VM, 0, &img->vm, sizeof(img->vm));
	for (unsigned int i = 0; i < img->nvcpus; i++) {
		struct snap_vcpu v;
		const void *msrs;

		inside(buf, len, &img->vcpus[i]);
		if (img->vcpus[i].index != i)
			abort();
		if (snap_vcpu_get(&img->vcpus[i], &v, &msrs, &err) < 0)
			refused(&err);
		snap_add(&w, SNAP_SEC_VCPU, i, img->vcpus[i].data,
			 img->vcpus[i].size);
	}
	for (unsigned int i = 0; i < img->ndevices; i++) {
		inside(buf, len, &img->devices[i]);
		if (img->devices[i].size <= SNAP_NAME_LEN ||
		    memchr(img->devices[i].data, 0, SNAP_NAME_LEN) == NULL)
			abort();
		snap_add(&w, SNAP_SEC_DEVICE, i, img->devices[i].data,
			 img->devices[i].size);
	}
	for (unsigned int i = 0; i < img->nvirtio; i++) {
		inside(buf, len, &img->virtio[i]);
		if (i > 0 && img->virtio[i].index <= img->virtio[i - 1].index)
			abort();
		snap_add(&w, SNAP_SEC_VIRTIO, img->virtio[i].index,
			 img->virtio[i].data, img->virtio[i].size);
	}
	if (snap_finish(&w, img->hdr.vcpu_count, img->hdr.mem_size,
			img->hdr.mem_crc32c, &out, &outlen, &err) < 0)
		abort();
	if (outlen != len || memcmp(out, buf, len) != 0) {
		fprintf(stderr, "an accepted state file does not write back "
				"the same\n");
		abort();
	}
	free(out);
	vm_config_init(&cfg);
	if (snap_parse_config(img, &cfg, &err) < 0)
		refused(&err);
	vm_config_destroy(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_image *img;
	struct kiln_error err = { 0 };
	uint8_t *buf;
	size_t len;

	if (size < 1)
		return 0;
	len = size - 1;
	buf = malloc(len ? len : 1);
	img = malloc(sizeof(*img));
	if (buf == NULL || img == NULL)
		abort();
	memcpy(buf, data + 1, len);
	if ((data[0] & 1) && len >= sizeof(struct snap_header)) {
		struct snap_header h;

		memcpy(&h, buf, sizeof(h));
		h.file_size = len;
		h.crc32c = 0;
		memcpy(buf, &h, sizeof(h));
		h.crc32c = snap_crc32c(0, buf, len);
		memcpy(buf, &h, sizeof(h));
	}
	if (snap_parse(buf, len, img, &err) < 0)
		refused(&err);
	else
		check(buf, len, img);
	free(img);
	free(buf);
	return 0;
}
