/* SPDX-License-Identifier: Apache-2.0 */
/* The state file format: writer, CRC32C and the untrusted-input loader. */
#include "snapshot.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"

#define SNAP_ALIGN 8

static_assert(sizeof(struct snap_header) == 64, "header layout");
static_assert(sizeof(struct snap_section) == 16, "section layout");
static_assert(sizeof(struct snap_vcpu) % 8 == 0, "vcpu layout");

/* ---- CRC32C ------------------------------------------------------------ */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78U : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
				(crc_table[t - 1][i] >> 8) ^
				crc_table[0][crc_table[t - 1][i] & 0xff];
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t c, const uint8_t *p, size_t len)
{
	uint64_t c64 = c;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
	}
	c = (uint32_t)c64;
	for (; len > 0; p++, len--)
		c = __builtin_ia32_crc32qi(c, *p);
	return c;
}
#endif

/* slicing by 8: the fallback where SSE 4.2 is missing */
static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t len)
{
	pthread_once(&crc_once, crc_init);
	for (; len >= 8; p += 8, len -= 8) {
		uint32_t lo, hi;

		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
		lo ^= c;
		c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		    crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		    crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		    crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
	}
	for (; len > 0; p++, len--)
		c = (c >> 8) ^ crc_table[0][(c ^ *p) & 0xff];
	return c;
}

uint32_t snap_crc32c(uint32_t crc, const void *buf, size_t len)
{
	uint32_t c = ~crc;

#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc_hw(c, buf, len);
#endif
	return ~crc_sw(c, buf, len);
}

/* ---- writer -------------------------------------------------------------- */

static void *snap_room(struct snap_writer *w, size_t n)
{
	size_t need;
	uint8_t *p;

	if (w->failed)
		return NULL;
	if (w->len == 0)
		n += sizeof(struct snap_header);
	if (__builtin_add_overflow(w->len, n, &need)) {
		w->failed = true;
		return NULL;
	}
	if (need > w->cap) {
		size_t cap = w->cap ? w->cap : 64 * 1024;

		while (cap < need)
			cap *= 2;
		p = realloc(w->buf, cap);
		if (p == NULL) {
			w->failed = true;
			return NULL;
		}
		w->buf = p;
		w->cap = cap;
	}
	if (w->len == 0) {
		memset(w->buf, 0, sizeof(struct snap_header));
		w->len = sizeof(struct snap_header);
		n -= sizeof(struct snap_header);
	}
	p = w->buf + w->len;
	memset(p, 0, n);
	w->len += n;
	return p;
}

void *snap_add2(struct snap_writer *w, uint32_t type, uint32_t index,
		const void *a, size_t alen, const void *b, size_t blen)
{
	size_t size = alen + blen;
	size_t padded = (size + SNAP_ALIGN - 1) & ~(size_t)(SNAP_ALIGN - 1);
	struct snap_section sec = { .type = type,
				    .index = index,
				    .size = size };
	uint8_t *p = snap_room(w, sizeof(sec) + padded);

	if (p == NULL)
		return NULL;
	memcpy(p, &sec, sizeof(sec));
	if (a != NULL)
		memcpy(p + sizeof(sec), a, alen);
	if (b != NULL)
		memcpy(p + sizeof(sec) + alen, b, blen);
	w->nsections++;
	return p + sizeof(sec);
}

void *snap_add(struct snap_writer *w, uint32_t type, uint32_t index,
	       const void *data, size_t size)
{
	return snap_add2(w, type, index, data, size, NULL, 0);
}

int snap_finish(struct snap_writer *w, uint32_t vcpu_count, uint64_t mem_size,
		uint32_t mem_crc32c, uint8_t **out, size_t *outlen,
		struct kiln_error *err)
{
	struct snap_header h = {
		.version = SNAP_VERSION,
		.header_size = sizeof(h),
		.nsections = w->nsections,
		.vcpu_count = vcpu_count,
		.mem_crc32c = mem_crc32c,
		.mem_size = mem_size,
	};

	if (w->failed || w->len == 0)
		return kiln_error_set(err, ENOMEM, "snapshot state");
	memcpy(h.magic, SNAP_MAGIC, sizeof(h.magic));
	h.file_size = w->len;
	memcpy(w->buf, &h, sizeof(h));
	h.crc32c = snap_crc32c(0, w->buf, w->len);
	memcpy(w->buf, &h, sizeof(h));
	*out = w->buf;
	*outlen = w->len;
	*w = (struct snap_writer){ 0 };
	return 0;
}

void snap_writer_destroy(struct snap_writer *w)
{
	free(w->buf);
	*w = (struct snap_writer){ 0 };
}

/* ---- loader (file-controlled input throughout) --------------------------- */

static bool zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static int snap_check_header(const struct snap_header *h, size_t len,
			     struct kiln_error *err)
{
	if (memcmp(h->magic, SNAP_MAGIC, sizeof(h->magic)) != 0)
		return kiln_error_set(err, EINVAL,
				      "not a kiln snapshot state file (bad "
				      "magic)");
	if (h->version != SNAP_VERSION)
		return kiln_error_set(err, EINVAL,
				      "snapshot state version %u, this "
				      "kiln-vmm reads version %u",
				      h->version, SNAP_VERSION);
	if (h->header_size != sizeof(*h) ||
	    !zero(h->reserved, sizeof(h->reserved)))
		return kiln_error_set(err, EINVAL,
				      "snapshot state header is malformed");
	if (h->file_size != len)
		return kiln_error_set(err, EINVAL,
				      "snapshot state file is %zu bytes, its "
				      "header says %llu (truncated?)",
				      len, (unsigned long long)h->file_size);
	if (h->vcpu_count == 0 || h->vcpu_count > VM_MAX_VCPUS)
		return kiln_error_set(err, EINVAL,
				      "snapshot of %u vCPUs: want 1..%d",
				      h->vcpu_count, VM_MAX_VCPUS);
	if (h->mem_size < ((uint64_t)VM_MIN_MEM_MIB << 20) ||
	    h->mem_size % 4096 != 0 || h->mem_size > (1ULL << 48))
		return kiln_error_set(err, EINVAL,
				      "snapshot memory size %llu bytes is "
				      "not a VM's",
				      (unsigned long long)h->mem_size);
	if (h->nsections > 3 + VM_MAX_VCPUS + 2 * SNAP_MAX_DEVICES)
		return kiln_error_set(err, EINVAL, "snapshot of %u sections",
				      h->nsections);
	return 0;
}

static int snap_take(struct snap_image *img, const struct snap_section *s,
		     const uint8_t *payload, struct kiln_error *err)
{
	struct snap_blob b = { .data = payload,
			       .size = s->size,
			       .index = s->index };

	switch (s->type) {
	case SNAP_SEC_CONFIG:
		if (img->config.data != NULL || s->index != 0 || s->size == 0 ||
		    s->size > SNAP_MAX_CONFIG)
			return kiln_error_set(err, EINVAL,
					      "snapshot config section: "
					      "repeated or of %llu bytes",
					      (unsigned long long)s->size);
		img->config = b;
		return 0;
	case SNAP_SEC_VM:
		if (img->config.data == NULL || img->have_vm || s->index != 0 ||
		    s->size != sizeof(img->vm))
			return kiln_error_set(err, EINVAL,
					      "snapshot VM section: out of "
					      "order, repeated or of %llu "
					      "bytes",
					      (unsigned long long)s->size);
		memcpy(&img->vm, payload, sizeof(img->vm));
		img->have_vm = true;
		return 0;
	case SNAP_SEC_VCPU:
		if (!img->have_vm || img->ndevices > 0 || img->nvirtio > 0 ||
		    s->index != img->nvcpus ||
		    img->nvcpus >= img->hdr.vcpu_count ||
		    s->size < sizeof(struct snap_vcpu) ||
		    s->size > sizeof(struct snap_vcpu) +
				      SNAP_MAX_MSRS *
					      sizeof(struct kvm_msr_entry))
			return kiln_error_set(err, EINVAL,
					      "snapshot vCPU section %u: out "
					      "of order or of %llu bytes",
					      s->index,
					      (unsigned long long)s->size);
		img->vcpus[img->nvcpus++] = b;
		return 0;
	case SNAP_SEC_DEVICE:
		if (img->nvcpus != img->hdr.vcpu_count || img->nvirtio > 0 ||
		    s->index != img->ndevices ||
		    img->ndevices >= SNAP_MAX_DEVICES ||
		    s->size <= SNAP_NAME_LEN ||
		    s->size > SNAP_NAME_LEN + SNAP_MAX_DEVICE_SIZE ||
		    memchr(payload, '\0', SNAP_NAME_LEN) == NULL)
			return kiln_error_set(err, EINVAL,
					      "snapshot device section %u: "
					      "out of order, unnamed or of "
					      "%llu bytes",
					      s->index,
					      (unsigned long long)s->size);
		img->devices[img->ndevices++] = b;
		return 0;
	case SNAP_SEC_VIRTIO:
		if (img->nvcpus != img->hdr.vcpu_count ||
		    img->nvirtio >= SNAP_MAX_DEVICES ||
		    (img->nvirtio > 0 &&
		     s->index <= img->virtio[img->nvirtio - 1].index) ||
		    s->size == 0 || s->size > SNAP_MAX_DEVICE_SIZE)
			return kiln_error_set(err, EINVAL,
					      "snapshot virtio section %u: "
					      "out of order or of %llu bytes",
					      s->index,
					      (unsigned long long)s->size);
		img->virtio[img->nvirtio++] = b;
		return 0;
	default:
		return kiln_error_set(err, EINVAL,
				      "snapshot section of unknown type %u",
				      s->type);
	}
}

int snap_parse(const void *buf, size_t len, struct snap_image *img,
	       struct kiln_error *err)
{
	const uint8_t *p = buf;
	struct snap_header h;
	size_t off;
	uint32_t crc;

	memset(img, 0, sizeof(*img));
	if (len < sizeof(h))
		return kiln_error_set(err, EINVAL,
				      "snapshot state file of %zu bytes is "
				      "too short",
				      len);
	if (len > SNAP_MAX_FILE)
		return kiln_error_set(err, EFBIG,
				      "snapshot state file of %zu bytes is "
				      "too large",
				      len);
	memcpy(&h, p, sizeof(h));
	if (snap_check_header(&h, len, err) < 0)
		return -1;
	crc = h.crc32c;
	h.crc32c = 0;
	{
		uint32_t c = snap_crc32c(0, &h, sizeof(h));

		c = snap_crc32c(c, p + sizeof(h), len - sizeof(h));
		if (c != crc)
			return kiln_error_set(err, EBADMSG,
					      "snapshot state file is corrupt "
					      "(checksum 0x%08x, want 0x%08x)",
					      c, crc);
	}
	h.crc32c = crc;
	img->hdr = h;
	off = sizeof(h);
	for (uint32_t i = 0; i < h.nsections; i++) {
		struct snap_section s;
		uint64_t padded;

		if (len - off < sizeof(s))
			return kiln_error_set(err, EINVAL,
					      "snapshot section %u is past the "
					      "end",
					      i);
		memcpy(&s, p + off, sizeof(s));
		off += sizeof(s);
		if (s.size > len - off)
			return kiln_error_set(err, EINVAL,
					      "snapshot section %u of %llu "
					      "bytes is past the end",
					      i, (unsigned long long)s.size);
		padded = (s.size + SNAP_ALIGN - 1) &
			 ~(uint64_t)(SNAP_ALIGN - 1);
		if (padded > len - off ||
		    !zero(p + off + s.size, padded - s.size))
			return kiln_error_set(err, EINVAL,
					      "snapshot section %u: bad "
					      "padding",
					      i);
		if (snap_take(img, &s, p + off, err) < 0)
			return -1;
		off += padded;
	}
	if (off != len)
		return kiln_error_set(err, EINVAL,
				      "snapshot state has %zu bytes after its "
				      "last section",
				      len - off);
	if (img->config.data == NULL || !img->have_vm ||
	    img->nvcpus != h.vcpu_count)
		return kiln_error_set(err, EINVAL,
				      "snapshot state lacks its config, VM or "
				      "vCPU sections (%u of %u vCPUs)",
				      img->nvcpus, h.vcpu_count);
	return 0;
}

int snap_parse_config(const struct snap_image *img, struct vm_config *cfg,
		      struct kiln_error *err)
{
	if (vm_config_parse_json(cfg, img->config.data, img->config.size, err) <
	    0)
		return kiln_error_wrap(err, "snapshot config");
	if (vm_config_validate_machine(cfg, err) < 0)
		return kiln_error_wrap(err, "snapshot config");
	if (cfg->vcpu_count != img->hdr.vcpu_count ||
	    cfg->mem_mib << 20 != img->hdr.mem_size)
		return kiln_error_set(err, EINVAL,
				      "snapshot config of %u vCPUs and %llu "
				      "MiB does not match its header's %u "
				      "vCPUs and %llu bytes",
				      cfg->vcpu_count,
				      (unsigned long long)cfg->mem_mib,
				      img->hdr.vcpu_count,
				      (unsigned long long)img->hdr.mem_size);
	return 0;
}

int snap_vcpu_get(const struct snap_blob *b, struct snap_vcpu *v,
		  const void **msrs, struct kiln_error *err)
{
	if (b->size < sizeof(*v))
		return kiln_error_set(err, EINVAL, "vCPU state too short");
	memcpy(v, b->data, sizeof(*v));
	if (v->id != b->index || v->flags & ~(uint32_t)SNAP_VCPU_FLAGS ||
	    v->pad != 0 || v->nmsrs > SNAP_MAX_MSRS ||
	    b->size != sizeof(*v) + v->nmsrs * sizeof(struct kvm_msr_entry))
		return kiln_error_set(err, EINVAL,
				      "vCPU %u state: id %u, flags 0x%x, %u "
				      "MSRs in %zu bytes",
				      b->index, v->id, v->flags, v->nmsrs,
				      b->size);
	if (v->mp_state.mp_state > KVM_MP_STATE_SUSPENDED ||
	    v->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return kiln_error_set(err, EINVAL,
				      "vCPU %u state: mp_state %u, %u XCRs",
				      b->index, v->mp_state.mp_state,
				      v->xcrs.nr_xcrs);
	*msrs = (const uint8_t *)b->data + sizeof(*v);
	return 0;
}
