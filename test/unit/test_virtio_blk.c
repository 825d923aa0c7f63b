/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk driven through the MMIO transport as a vCPU would (no KVM,
 * vm_fd -1), over temporary image files: read/write/flush/get-id/
 * discard/write-zeroes round trips, read-only refusal, range checks,
 * split headers, malformed chains, backing replacement (and its mode) and
 * snapshots.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/virtio/blk.h"
#include "../lib/vblk.h"
#include "tap.h"

#define MEM_SIZE (16ULL << 20)
#define DESC	 0x1000ULL
#define AVAIL	 0x2000ULL
#define USED	 0x3000ULL
#define HDR	 0x10000ULL
#define DATA	 0x100000ULL
#define STATUS	 0x20000ULL
#define QSIZE	 16
#define SECTORS	 64 /* image size of the tests */

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK
#define S_NRS VIRTIO_CONFIG_S_NEEDS_RESET

#define T_OUT	1
#define T_FLUSH 4
#define T_GETID 8
#define T_DISC	11
#define T_WZ	13

#define F_RO	       (1U << 5)
#define F_FLUSH	       (1U << 9)
#define F_DISCARD      (1U << 13)
#define F_WRITE_ZEROES (1U << 14)

static char dir[] = "/tmp/kiln-blk-test.XXXXXX";

/* A file of n bytes, byte i = (i * 7 + seed) & 0xff. */
static char *mkimage(const char *name, size_t n, int seed)
{
	char *p;
	uint8_t *buf = malloc(n + 1);
	FILE *f;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		exit(1);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(i * 7 + seed);
	f = fopen(p, "w");
	fwrite(buf, 1, n, f);
	fclose(f);
	free(buf);
	return p;
}

/* Drives given as "id=...,path=..." specs; NULL spec ends the list. */
static const struct vblk_layout layout = {
	.mem_size = MEM_SIZE,
	.desc = DESC,
	.avail = AVAIL,
	.used = USED,
	.qsize = QSIZE,
};

#define tvm_try(err, ...) \
	vblk_new(&layout, (const char *const[]){ __VA_ARGS__ }, (err))

#define tvm_new(...)                                               \
	({                                                         \
		struct kiln_error _e = { 0 };                      \
		struct vdrv *_t = tvm_try(&_e, __VA_ARGS__, NULL); \
		if (_t == NULL) {                                  \
			printf("Bail out! %s\n", _e.msg);          \
			exit(1);                                   \
		}                                                  \
		_t;                                                \
	})

#define tvm_free vblk_free

static uint64_t cfg64(struct vdrv *t, uint32_t off)
{
	uint64_t v = 0;

	vdrv_access(t, VIRTIO_MMIO_CONFIG + off, &v, 8, false);
	return v;
}

static uint32_t features_lo(struct vdrv *t)
{
	vdrv_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	return vdrv_rd(t, VIRTIO_MMIO_DEVICE_FEATURES);
}

struct seg {
	uint64_t addr;
	uint32_t len;
	bool write;
};

/* Post one chain of n segments and kick; returns the used length. */
/* Offer the chain at descriptor 0 and kick; its used length, or ~0. */
static uint32_t offer_head0(struct vdrv *t)
{
	uint16_t before = vdrv_used(t, 0)->idx;

	vdrv_offer(t, 0, 0);
	if (vdrv_used(t, 0)->idx == before)
		return 0xffffffff;
	return vdrv_used(t, 0)
		->ring[(uint16_t)(vdrv_used(t, 0)->idx - 1) % QSIZE]
		.len;
}

static uint32_t submit(struct vdrv *t, const struct seg *s, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		vdrv_set_desc(t, 0, i, s[i].addr, s[i].len,
			      (uint16_t)((s[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					 (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			      (uint16_t)(i + 1));
	return offer_head0(t);
}

static uint8_t *status_byte(struct vdrv *t)
{
	return vdrv_gp(t, STATUS, 1);
}

static void set_hdr(struct vdrv *t, uint32_t type, uint64_t sector)
{
	uint8_t *h = vdrv_gp(t, HDR, 16);

	memset(h, 0, 16);
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
	*status_byte(t) = 0xee;
}

/* A plain request: header, data (len bytes at DATA), status. */
static uint8_t req(struct vdrv *t, uint32_t type, uint64_t sector, uint32_t len,
		   bool data_write, uint32_t *used_len)
{
	struct seg s[3] = { { HDR, 16, false },
			    { DATA, len, data_write },
			    { STATUS, 1, true } };
	uint32_t u;

	set_hdr(t, type, sector);
	if (len == 0) {
		s[1] = s[2];
		u = submit(t, s, 2);
	} else {
		u = submit(t, s, 3);
	}
	if (used_len != NULL)
		*used_len = u;
	return *status_byte(t);
}

static int file_read(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = pread(fd, buf, len, off);

	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static bool all_byte(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* ---- tests ---- */

static void test_glue(void)
{
	char *a = mkimage("a.img", SECTORS * 512, 0);
	char *b = mkimage("b.img", SECTORS * 512 + 100, 1);
	char spec_a[256], spec_b[256], spec_bad[256];
	struct kiln_error err = { 0 };
	struct vdrv *t;

	snprintf(spec_a, sizeof(spec_a), "id=data,path=%s", a);
	snprintf(spec_b, sizeof(spec_b), "id=sys,path=%s,ro,root", b);
	snprintf(spec_bad, sizeof(spec_bad), "id=gone,path=%s/missing.img",
		 dir);

	t = tvm_try(&err, NULL);
	ok(t != NULL && t->state == NULL && t->vm.cmdline_extra == NULL,
	   "no drives: no device, nothing on the command line");
	tvm_free(t);

	t = tvm_new(spec_a, spec_b);
	ok(t->vm.cmdline_extra != NULL &&
		   strstr(t->vm.cmdline_extra, "virtio_mmio.device=4K@"
					       "0xd0000000:5 "
					       "virtio_mmio.device=4K@"
					       "0xd0001000:6 "
					       "root=/dev/vdb ro") != NULL,
	   "two drives declared in order, second is root ro:%s",
	   t->vm.cmdline_extra);
	is_int(vdrv_rd(t, VIRTIO_MMIO_DEVICE_ID), 2, "device id 2");
	is_int(cfg64(t, 0), SECTORS, "capacity = size / 512");
	ok((features_lo(t) & (F_FLUSH | F_WRITE_ZEROES)) ==
			   (F_FLUSH | F_WRITE_ZEROES) &&
		   !(features_lo(t) & F_RO),
	   "rw drive: FLUSH, WRITE_ZEROES, not RO (0x%x)", features_lo(t));
	vdrv_use(t, blk_lookup(&t->vm, "sys"));
	is_int(cfg64(t, 0), SECTORS, "odd size: capacity rounded down");
	ok((features_lo(t) & F_RO) &&
		   !(features_lo(t) & (F_DISCARD | F_WRITE_ZEROES)),
	   "ro drive: RO, no DISCARD or WRITE_ZEROES (0x%x)", features_lo(t));
	ok(blk_lookup(&t->vm, "nope") == NULL, "lookup of an unknown id");
	tvm_free(t);

	t = tvm_try(&err, spec_a, spec_bad, NULL);
	ok(t == NULL && strstr(err.msg, "missing.img") != NULL &&
		   err.errnum == ENOENT,
	   "missing image: init fails naming the path: %s", err.msg);
	free(a);
	free(b);
}

static void test_io(void)
{
	char *a = mkimage("io.img", SECTORS * 512, 3);
	char spec[256];
	struct vdrv *t;
	uint8_t *data, buf[4096];
	uint32_t u, lo;

	snprintf(spec, sizeof(spec), "id=data,path=%s", a);
	t = tvm_new(spec);
	lo = features_lo(t);
	vdrv_handshake(t, lo, 1, true);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK,
	       "handshake with all features (0x%x)", lo);
	data = vdrv_gp(t, DATA, 1 << 20);

	/* read sectors 2..3 */
	is_int(req(t, 0, 2, 1024, true, &u), 0, "IN: status OK");
	is_int(u, 1025, "IN: used length = data + status");
	file_read(a, buf, 1024, 1024);
	ok(memcmp(buf, data, 1024) == 0, "IN: the file's bytes");

	/* write sector 5, read it back */
	memset(data, 0x5a, 512);
	is_int(req(t, T_OUT, 5, 512, false, &u), 0, "OUT: status OK");
	is_int(u, 1, "OUT: used length 1");
	file_read(a, buf, 512, 5 * 512);
	ok(all_byte(buf, 512, 0x5a), "OUT: the file has the data");
	memset(data, 0, 512);
	req(t, 0, 5, 512, true, NULL);
	ok(all_byte(data, 512, 0x5a), "OUT then IN: round trip");

	/* flush and get id */
	is_int(req(t, T_FLUSH, 0, 0, false, &u), 0, "FLUSH: OK");
	memset(data, 0xff, 32);
	is_int(req(t, T_GETID, 0, 20, true, &u), 0, "GET_ID: OK");
	is_int(u, 21, "GET_ID: 20 bytes + status");
	ok(memcmp(data, "data", 5) == 0 && all_byte(data + 5, 15, 0) &&
		   data[20] == 0xff,
	   "GET_ID: the drive id, NUL padded to 20 bytes");

	/* unsupported and malformed requests answer, no crash */
	is_int(req(t, 99, 0, 512, true, NULL), 2, "unknown type: UNSUPP");
	is_int(req(t, 0, SECTORS, 512, true, NULL), 1,
	       "IN past the end: IOERR");
	is_int(req(t, 0, SECTORS - 1, 1024, true, NULL), 1,
	       "IN running over the end: IOERR");
	is_int(req(t, T_OUT, UINT64_MAX / 512 + 1, 512, false, NULL), 1,
	       "OUT with an overflowing sector: IOERR");
	is_int(req(t, T_OUT, UINT64_MAX, 512, false, NULL), 1,
	       "OUT at sector 2^64-1: IOERR");
	is_int(req(t, 0, 0, 100, true, NULL), 1, "IN of 100 bytes: IOERR");
	is_int(req(t, T_OUT, 0, 513, false, NULL), 1,
	       "OUT of 513 bytes: IOERR");
	is_int(req(t, 0, 0, 512, false, NULL), 1,
	       "IN with a readable data buffer: IOERR");
	is_int(req(t, 0, SECTORS - 1, 512, true, NULL), 0,
	       "IN of the last sector: OK");
	is_int(req(t, 0, 3, 0, true, NULL), 0, "IN of 0 bytes: OK");
	ok(!t->dev->broken, "none of these broke the device");

	/* header split 3 + 13 bytes, data split 100 + 412 + status */
	{
		struct seg s[5] = { { HDR, 3, false },
				    { HDR + 3, 13, false },
				    { DATA + 0x10000, 100, false },
				    { DATA + 0x20000, 412, false },
				    { STATUS, 1, true } };

		set_hdr(t, T_OUT, 7);
		memset(vdrv_gp(t, DATA + 0x10000, 100), 0x11, 100);
		memset(vdrv_gp(t, DATA + 0x20000, 412), 0x22, 412);
		submit(t, s, 5);
		is_int(*status_byte(t), 0, "split header and data: OUT OK");
		file_read(a, buf, 512, 7 * 512);
		ok(all_byte(buf, 100, 0x11) && all_byte(buf + 100, 412, 0x22),
		   "split data landed in order");
	}
	/* IN into three segments whose last carries data and status */
	{
		struct seg s[4] = { { HDR, 16, false },
				    { DATA, 200, true },
				    { DATA + 0x1000, 300, true },
				    { DATA + 0x2000, 13, true } };

		set_hdr(t, 0, 7);
		u = submit(t, s, 4);
		is_int(u, 513, "IN over split buffers: 512 + status");
		ok(all_byte(data, 100, 0x11) &&
			   all_byte(data + 100, 100, 0x22) &&
			   all_byte(data + 0x1000, 300, 0x22) &&
			   all_byte(data + 0x2000, 12, 0x22),
		   "IN: data across segments");
		is_int(data[0x2000 + 12], 0, "IN: status the last byte");
	}
	/* a header of 8 readable bytes: IOERR, device fine */
	{
		struct seg s[2] = { { HDR, 8, false }, { STATUS, 1, true } };

		set_hdr(t, 0, 0);
		submit(t, s, 2);
		is_int(*status_byte(t), 1, "8-byte header: IOERR");
		ok(!t->dev->broken, "8-byte header: device not broken");
	}

	/* write zeroes and discard */
	{
		struct {
			uint64_t sector;
			uint32_t num, flags;
		} *r = (void *)data;

		r[0] = (typeof(r[0])){ 8, 8, 0 };
		r[1] = (typeof(r[1])){ 20, 1, 1 };
		is_int(req(t, T_WZ, 0, 32, false, NULL), 0,
		       "WRITE_ZEROES of two ranges: OK");
		file_read(a, buf, 4096, 8 * 512);
		ok(all_byte(buf, 4096, 0), "WRITE_ZEROES: range reads zeros");
		file_read(a, buf, 512, 20 * 512);
		ok(all_byte(buf, 512, 0), "WRITE_ZEROES unmap: zeros");
		file_read(a, buf, 512, 16 * 512);
		ok(!all_byte(buf, 512, 0), "WRITE_ZEROES: neighbours intact");
		r[0] = (typeof(r[0])){ SECTORS - 1, 2, 0 };
		is_int(req(t, T_WZ, 0, 16, false, NULL), 1,
		       "WRITE_ZEROES past the end: IOERR");
		r[0] = (typeof(r[0])){ 8, 8, 4 };
		is_int(req(t, T_WZ, 0, 16, false, NULL), 2,
		       "WRITE_ZEROES with reserved flags: UNSUPP");
		is_int(req(t, T_WZ, 0, 20, false, NULL), 1,
		       "WRITE_ZEROES of 20 bytes: IOERR");
		if (lo & F_DISCARD) {
			r[0] = (typeof(r[0])){ 24, 16, 0 };
			is_int(req(t, T_DISC, 0, 16, false, NULL), 0,
			       "DISCARD: OK");
			file_read(a, buf, 4096, 24 * 512);
			ok(all_byte(buf, 4096, 0), "DISCARD: punched range "
						   "reads zeros");
			r[0] = (typeof(r[0])){ 24, 16, 1 };
			is_int(req(t, T_DISC, 0, 16, false, NULL), 2,
			       "DISCARD with unmap flag: UNSUPP");
		} else {
			for (int k = 0; k < 3; k++)
				tap_skip("DISCARD: no hole punching in %s",
					 dir);
		}
		struct stat st;
		stat(a, &st);
		is_int(st.st_size, SECTORS * 512, "the image kept its size");
	}

	/* features not negotiated: UNSUPP */
	vdrv_handshake(t, lo & ~(F_FLUSH | F_WRITE_ZEROES | F_DISCARD), 1,
		       true);
	is_int(req(t, T_FLUSH, 0, 0, false, NULL), 2,
	       "FLUSH not negotiated: UNSUPP");
	is_int(req(t, T_WZ, 0, 16, false, NULL), 2,
	       "WRITE_ZEROES not negotiated: UNSUPP");

	/* malformed chains */
	vdrv_handshake(t, lo, 1, true);
	{
		struct seg s[2] = { { HDR, 16, false }, { DATA, 512, false } };

		set_hdr(t, 0, 0);
		is_int(submit(t, s, 2), 0xffffffff,
		       "no writable byte: nothing used");
		ok(t->dev->broken && (vdrv_rd(t, VIRTIO_MMIO_STATUS) & S_NRS),
		   "no status byte: device broken, NEEDS_RESET");
		ok(vdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_ISR_CONFIG,
		   "broken: config interrupt");
	}
	vdrv_handshake(t, lo, 1, true);
	is_int(req(t, 0, 0, 512, true, NULL), 0, "reset: working again");
	{
		struct seg s[1] = { { STATUS, 0, true } };

		set_hdr(t, 0, 0);
		submit(t, s, 1);
		ok(t->dev->broken, "a single empty writable descriptor: "
				   "broken");
	}
	tvm_free(t);
	free(a);
}

static void test_ro(void)
{
	char *a = mkimage("ro.img", SECTORS * 512, 9);
	char spec[256];
	struct vdrv *t;
	uint8_t *data, buf[512], before[512];

	chmod(a, 0444);
	snprintf(spec, sizeof(spec), "id=ro,path=%s,ro", a);
	t = tvm_new(spec);
	vdrv_handshake(t, features_lo(t), 1, true);
	data = vdrv_gp(t, DATA, 4096);
	file_read(a, before, 512, 0);
	memset(data, 0x77, 512);
	is_int(req(t, T_OUT, 0, 512, false, NULL), 1, "RO: OUT is IOERR");
	file_read(a, buf, 512, 0);
	ok(memcmp(buf, before, 512) == 0, "RO: the file is unchanged");
	is_int(req(t, 0, 0, 512, true, NULL), 0, "RO: IN works");
	ok(memcmp(data, before, 512) == 0, "RO: and reads the file");
	is_int(req(t, T_FLUSH, 0, 0, false, NULL), 0, "RO: FLUSH OK");
	is_int(req(t, T_WZ, 0, 16, false, NULL), 2,
	       "RO: WRITE_ZEROES (not offered) UNSUPP");
	tvm_free(t);
	free(a);
}

static void test_replace(void)
{
	char *a = mkimage("r1.img", SECTORS * 512, 1);
	char *b = mkimage("r2.img", 4 * SECTORS * 512, 2);
	char spec[256], missing[256];
	struct kiln_error err = { 0 };
	struct vdrv *t;
	uint8_t *data, buf[512];
	uint32_t gen;

	snprintf(spec, sizeof(spec), "id=data,path=%s", a);
	snprintf(missing, sizeof(missing), "%s/none.img", dir);
	t = tvm_new(spec);
	vdrv_handshake(t, features_lo(t), 1, true);
	data = vdrv_gp(t, DATA, 4096);
	gen = vdrv_rd(t, VIRTIO_MMIO_CONFIG_GENERATION);
	is_int(blk_replace_backing(t->dev, missing, -1, &err), -1,
	       "replace with a missing file fails: %s", err.msg);
	ok(strstr(err.msg, "none.img") != NULL, "and names the path");
	is_int(cfg64(t, 0), SECTORS, "failed replace: capacity unchanged");
	is_int(req(t, 0, SECTORS - 1, 512, true, NULL), 0,
	       "failed replace: old image still served");
	is_int(req(t, 0, SECTORS, 512, true, NULL), 1,
	       "old image: sector 64 out of range");
	memset(&err, 0, sizeof(err));
	is_int(blk_replace_backing(t->dev, b, -1, &err), 0, "replace: %s",
	       err.msg);
	is_int(cfg64(t, 0), 4 * SECTORS, "replace: new capacity in config");
	is_int(blk_capacity(t->dev), 4 * SECTORS, "blk_capacity");
	ok(vdrv_rd(t, VIRTIO_MMIO_CONFIG_GENERATION) != gen, "replace: config "
							     "generation "
							     "changed");
	ok(vdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_ISR_CONFIG, "repla"
									 "ce: "
									 "confi"
									 "g-"
									 "chang"
									 "e "
									 "inter"
									 "rup"
									 "t");
	is_int(req(t, 0, 2 * SECTORS, 512, true, NULL), 0,
	       "replace: sector 128 now readable");
	file_read(b, buf, 512, 2 * SECTORS * 512);
	ok(memcmp(buf, data, 512) == 0, "replace: from the new file");
	tvm_free(t);
	free(a);
	free(b);
}

/*
 * The mode of a replaced backing file (PATCH /drives is_read_only): a
 * fork's slot the template's guest negotiated read-write, over a
 * placeholder the fork opened read-only, gets a writable image.
 */
static void test_replace_mode(void)
{
	char *tpl = mkimage("m-tpl.img", SECTORS * 512, 1);
	char *ph = mkimage("m-ph.img", SECTORS * 512, 2);
	char *rw = mkimage("m-rw.img", SECTORS * 512, 3);
	char *ro = mkimage("m-ro.img", SECTORS * 512, 4);
	char spec[256];
	struct kiln_error err = { 0 };
	struct vdrv *x, *y, *z;
	size_t size;
	uint8_t *s, *data, buf[512], before[512];

	chmod(ph, 0444);
	chmod(ro, 0444);
	snprintf(spec, sizeof(spec), "id=slot,path=%s", tpl);
	x = tvm_new(spec);
	snprintf(spec, sizeof(spec), "id=slot,path=%s,ro", ph);
	y = tvm_new(spec);
	vdrv_handshake(x, features_lo(x), 1, true);
	size = virtio_mmio_state_size(x->dev);
	s = malloc(size);
	is_int(virtio_mmio_save(x->dev, s, size, &err), 0, "template: save");
	memcpy(vdrv_gp(y, 0, 0x200000), vdrv_gp(x, 0, 0x200000), 0x200000);
	y->dev->fork = true;
	is_int(virtio_mmio_restore(y->dev, s, size, &err), 0,
	       "fork of a read-write slot over a read-only file: %s", err.msg);
	y->q[0].next_avail = x->q[0].next_avail;
	ok(!(features_lo(y) & F_RO), "the guest was not offered RO");
	data = vdrv_gp(y, DATA, 4096);
	memset(data, 0x3c, 512);
	is_int(req(y, T_OUT, 4, 512, false, NULL), 1,
	       "placeholder read-only on the host: OUT is IOERR");

	is_int(blk_replace_backing(y->dev, rw, 0, &err), 0,
	       "replace read-write: %s", err.msg);
	is_int(req(y, T_OUT, 4, 512, false, NULL), 0,
	       "read-write now: OUT is OK");
	file_read(rw, buf, 512, 4 * 512);
	ok(all_byte(buf, 512, 0x3c), "and the data is in the new file");
	file_read(ph, buf, 512, 4 * 512);
	ok(!all_byte(buf, 512, 0x3c), "not in the placeholder");

	file_read(ro, before, 512, 4 * 512);
	is_int(blk_replace_backing(y->dev, ro, 1, &err), 0,
	       "replace read-only under a read-write guest: %s", err.msg);
	memset(data, 0x5d, 512);
	is_int(req(y, T_OUT, 4, 512, false, NULL), 1,
	       "read-only again: OUT is IOERR");
	is_int(req(y, T_WZ, 0, 16, false, NULL), 1,
	       "and WRITE_ZEROES (negotiated) is IOERR");
	file_read(ro, buf, 512, 4 * 512);
	ok(memcmp(buf, before, 512) == 0, "the read-only file is unchanged");
	is_int(req(y, 0, 4, 512, true, NULL), 0, "IN still works");
	ok(memcmp(data, before, 512) == 0, "and reads the new file");
	is_int(blk_replace_backing(y->dev, rw, -1, &err), 0,
	       "replace in the drive's mode: %s", err.msg);
	memset(data, 0x6e, 512);
	is_int(req(y, T_OUT, 4, 512, false, NULL), 1,
	       "the drive's mode is read-only now: OUT is IOERR");
	file_read(rw, buf, 512, 4 * 512);
	ok(all_byte(buf, 512, 0x3c), "the writable file was opened read-only");

	/* a guest offered RO never writes: read-write is refused */
	snprintf(spec, sizeof(spec), "id=d3,path=%s,ro", ph);
	z = tvm_new(spec);
	vdrv_handshake(z, features_lo(z), 1, true);
	is_int(blk_replace_backing(z->dev, rw, 0, &err), -1,
	       "RO offered: replace read-write refused");
	ok(strstr(err.msg, "drive `d3`: the guest has it read-only; it "
			   "cannot become read-write") != NULL,
	   "  saying why: %s", err.msg);
	data = vdrv_gp(z, DATA, 4096);
	file_read(ph, before, 512, 0);
	is_int(req(z, 0, 0, 512, true, NULL), 0, "the old file still served");
	ok(memcmp(data, before, 512) == 0, "  its bytes");
	memset(&err, 0, sizeof(err));
	is_int(blk_replace_backing(z->dev, rw, 1, &err), 0,
	       "RO offered: replace read-only is fine: %s", err.msg);
	free(s);
	tvm_free(x);
	tvm_free(y);
	tvm_free(z);
	free(tpl);
	free(ph);
	free(rw);
	free(ro);
}

static void test_snapshot(void)
{
	char *a = mkimage("s.img", SECTORS * 512, 4);
	char *b = mkimage("s2.img", 2 * SECTORS * 512, 4);
	char spec[256], spec2[256];
	struct kiln_error err = { 0 };
	struct vdrv *x, *y, *z;
	size_t size;
	uint8_t *s, *s2, *bad;
	struct virtio_mmio_state *h;
	uint8_t *ds;
	unsigned int survived = 0;

	snprintf(spec, sizeof(spec), "id=data,path=%s", a);
	snprintf(spec2, sizeof(spec2), "id=data,path=%s", b);
	x = tvm_new(spec);
	y = tvm_new(spec);
	z = tvm_new(spec2);
	size = virtio_mmio_state_size(x->dev);
	s = malloc(size);
	s2 = malloc(size);
	bad = malloc(size);
	h = (struct virtio_mmio_state *)bad;
	ds = bad + sizeof(*h);
	vdrv_handshake(x, features_lo(x), 1, true);
	req(x, 0, 1, 512, true, NULL);
	is_int(virtio_mmio_save(x->dev, s, size, &err), 0, "save");
	memcpy(vdrv_gp(y, 0, 0x200000), vdrv_gp(x, 0, 0x200000), 0x200000);
	is_int(virtio_mmio_restore(y->dev, s, size, &err), 0, "restore: %s",
	       err.msg);
	virtio_mmio_save(y->dev, s2, size, &err);
	ok(memcmp(s, s2, size) == 0, "restore: saved again, same bytes");
	y->q[0].next_avail = x->q[0].next_avail;
	is_int(req(y, 0, 2, 512, true, NULL), 0, "restore: queue carries on");
	is_int(vdrv_used(y, 0)->idx, 2, "restore: second request used");
	virtio_mmio_save(y->dev, s2, size, &err);

	ok(virtio_mmio_restore(z->dev, s, size, &err) < 0,
	   "restore over an image of another size refused: %s", err.msg);
#define REFUSED(what, mutate)                                        \
	do {                                                         \
		memcpy(bad, s, size);                                \
		mutate;                                              \
		ok(virtio_mmio_restore(y->dev, bad, size, &err) < 0, \
		   "restore refused: %s (%s)", what, err.msg);       \
	} while (0)
	REFUSED("blk version", ((uint32_t *)ds)[0] = 9);
	REFUSED("ro flag", ((uint32_t *)ds)[1] ^= 1);
	REFUSED("capacity", ((uint64_t *)ds)[1] += 1);
	REFUSED("features", ((uint64_t *)ds)[2] ^= 1ULL << 5);
	REFUSED("drive id", ds[40] = 'X');
	REFUSED("reserved", ds[60] = 1);
	REFUSED("a feature never offered", h->dev.driver_features |= 1ULL << 7);
	virtio_mmio_save(y->dev, bad, size, &err);
	ok(memcmp(bad, s2, size) == 0, "refused restores changed nothing");
	for (size_t i = 0; i < size; i++) {
		memcpy(bad, s, size);
		bad[i] ^= 0xff;
		if (virtio_mmio_restore(y->dev, bad, size, &err) == 0)
			survived++;
	}
	ok(survived < size, "byte flips: %u of %zu accepted, no crash",
	   survived, size);
	free(s);
	free(s2);
	free(bad);
	tvm_free(x);
	tvm_free(y);
	tvm_free(z);
	free(a);
	free(b);
}

/* ---- limits and bounded work (issue 9, item 3) ---- */

#define BIG_SECTORS (8 * 2048) /* an 8 MiB image */
#define MIB	    (1U << 20)
#define IND	    0xe00000ULL /* an indirect table */
#define BUF(i)	    (0x400000ULL + (uint64_t)(i) * (MIB + 4096))

/* Check len bytes at gpa against the image's bytes at sector. */
static bool matches_image(struct vdrv *t, const char *img, uint64_t gpa,
			  uint64_t sector, size_t len)
{
	uint8_t *want = malloc(len);
	bool same = want != NULL &&
		    file_read(img, want, len, (off_t)(sector * 512)) == 0 &&
		    memcmp(vdrv_gp(t, gpa, len), want, len) == 0;

	free(want);
	return same;
}

/* One chain through an indirect table of n segments; returns used len. */
static uint32_t submit_indirect(struct vdrv *t, const struct seg *s,
				unsigned int n)
{
	struct virtq_desc *d = vdrv_gp(t, IND, 16ULL * n);

	for (unsigned int i = 0; i < n; i++)
		d[i] = (struct virtq_desc){
			.addr = s[i].addr,
			.len = s[i].len,
			.flags =
				(uint16_t)((s[i].write ? VIRTQ_DESC_F_WRITE
						       : 0) |
					   (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			.next = (uint16_t)(i + 1),
		};
	vdrv_set_desc(t, 0, 0, IND, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
	return offer_head0(t);
}

static void test_limits(void)
{
	char *a = mkimage("big.img", (size_t)BIG_SECTORS * 512, 5);
	char spec[256];
	struct vdrv *t;
	struct seg s[258];
	uint32_t u;

	snprintf(spec, sizeof(spec), "id=big,path=%s", a);
	t = tvm_new(spec);
	vdrv_handshake(t, features_lo(t), 1, true);
	is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK,
	       "limits: handshake");
	is_int(cfg64(t, 8) & 0xffffffff, MIB, "config: size_max 1 MiB");
	is_int(cfg64(t, 8) >> 32, 254, "config: seg_max 254");

	/* size_max: one segment of 1 MiB passes, 1 MiB + 512 does not */
	s[0] = (struct seg){ HDR, 16, false };
	s[1] = (struct seg){ BUF(0), MIB, true };
	s[2] = (struct seg){ STATUS, 1, true };
	set_hdr(t, 0, 0);
	is_int(submit(t, s, 3), MIB + 1, "IN of one 1 MiB segment: used");
	is_int(*status_byte(t), 0, "IN of one 1 MiB segment: OK");
	ok(matches_image(t, a, BUF(0), 0, MIB), "and the image's bytes");
	s[1].len = MIB + 512;
	set_hdr(t, 0, 0);
	submit(t, s, 3);
	is_int(*status_byte(t), 1, "IN of a segment over size_max: IOERR");
	s[1].write = false;
	set_hdr(t, T_OUT, 0);
	submit(t, s, 3);
	is_int(*status_byte(t), 1, "OUT of a segment over size_max: IOERR");
	ok(matches_image(t, a, BUF(0), 0, MIB), "the refused OUT wrote "
						"nothing");
	/* the same bytes in two segments are within the limits */
	s[1] = (struct seg){ BUF(0), MIB, true };
	s[2] = (struct seg){ BUF(1), 512, true };
	s[3] = (struct seg){ STATUS, 1, true };
	set_hdr(t, 0, 0);
	submit(t, s, 4);
	is_int(*status_byte(t), 0, "1 MiB + 512 in two segments: OK");

	/* seg_max: 254 data segments pass, 255 do not (header, status) */
	for (unsigned int n = 254; n <= 255; n++) {
		s[0] = (struct seg){ HDR, 16, false };
		for (unsigned int i = 0; i < n; i++)
			s[1 + i] =
				(struct seg){ BUF(0) + 4096ULL * i, 512, true };
		s[1 + n] = (struct seg){ STATUS, 1, true };
		set_hdr(t, 0, 0);
		u = submit_indirect(t, s, n + 2);
		if (n == 254) {
			is_int(u, 254 * 512 + 1, "254 segments: used length");
			is_int(*status_byte(t), 0, "254 data segments: OK");
		} else {
			is_int(u, 1, "255 segments: only the status");
			is_int(*status_byte(t), 1,
			       "255 data segments: IOERR (seg_max 254)");
		}
	}
	ok(!t->dev->broken, "limits: the device is not broken");
	tvm_free(t);
	free(a);
}

/* Request i of a batch: header, then 1 MiB of data and the status in one. */
static void post_read(struct vdrv *t, unsigned int i, uint64_t sector)
{
	uint8_t *h = vdrv_gp(t, HDR + 16ULL * i, 16);

	memset(h, 0, 16);
	memcpy(h + 8, &sector, 8);
	memset(vdrv_gp(t, BUF(i), MIB + 1), 0xee, MIB + 1);
	vdrv_set_desc(t, 0, 2 * i, HDR + 16ULL * i, 16, VIRTQ_DESC_F_NEXT,
		      (uint16_t)(2 * i + 1));
	vdrv_set_desc(t, 0, 2 * i + 1, BUF(i), MIB + 1, VIRTQ_DESC_F_WRITE, 0);
	vdrv_publish(t, 0, (uint16_t)(2 * i));
}

static bool notify_more(struct vdrv *t)
{
	bool more;

	virtio_dev_lock(t->dev);
	more = virtio_dev_notify(t->dev, 0);
	virtio_dev_unlock(t->dev);
	return more;
}

static void test_turns(void)
{
	char *a = mkimage("turns.img", (size_t)BIG_SECTORS * 512, 6);
	char spec[256];
	struct vdrv *t;
	struct seg s[6];
	unsigned int turns = 0;
	bool all = true;
	size_t size;
	uint8_t *st;

	snprintf(spec, sizeof(spec), "id=turns,path=%s", a);
	t = tvm_new(spec);
	vdrv_handshake(t, features_lo(t), 1, true);

	/* a queue full of 1 MiB reads (8 MiB) and one notification */
	for (unsigned int i = 0; i < 8; i++)
		post_read(t, i, 2048ULL * i);
	ok(notify_more(t), "8 MiB queued: the first turn leaves work");
	is_int(vdrv_used(t, 0)->idx, 2,
	       "the first turn answers 2 MiB of requests, no more");
	while (notify_more(t) && turns < 100)
		turns++;
	is_int(vdrv_used(t, 0)->idx, 8, "later turns answer the rest");
	is_int(turns, 3,
	       "in 3 more turns that ask for a next, then an empty one");
	for (unsigned int i = 0; i < 8; i++) {
		all = all && matches_image(t, a, BUF(i), 2048ULL * i, MIB) &&
		      *(uint8_t *)vdrv_gp(t, BUF(i) + MIB, 1) == 0 &&
		      vdrv_used(t, 0)->ring[i].len == MIB + 1;
	}
	ok(all, "every request answered once, in order, with its bytes");
	ok(!notify_more(t), "an empty queue: no more turns");

	/* one 4 MiB request (4 segments of 1 MiB) spans 2 turns */
	vdrv_handshake(t, features_lo(t), 1, true);
	s[0] = (struct seg){ HDR, 16, false };
	for (unsigned int i = 0; i < 4; i++)
		s[1 + i] = (struct seg){ BUF(i), MIB, true };
	s[5] = (struct seg){ STATUS, 1, true };
	set_hdr(t, 0, 100);
	is_int(submit(t, s, 6), 0xffffffff,
	       "4 MiB read: not answered after one turn");
	ok(notify_more(t) && vdrv_used(t, 0)->idx == 1, "the next turn "
							"finishes it");
	ok(!notify_more(t), "then an empty turn ends the batch");
	is_int(*status_byte(t), 0, "4 MiB read: OK");
	all = true;
	for (unsigned int i = 0; i < 4; i++)
		all = all &&
		      matches_image(t, a, BUF(i), 100 + 2048ULL * i, MIB);
	ok(all, "4 MiB read: the image's bytes in all 4 segments");

	/* a reset while a request is half done: it is dropped */
	set_hdr(t, 0, 200);
	submit(t, s, 6);
	is_int(vdrv_used(t, 0)->idx, 1, "second 4 MiB read: in progress");
	vdrv_wr(t, VIRTIO_MMIO_STATUS, 0);
	is_int(vdrv_used(t, 0)->idx, 1,
	       "reset: the half-done request is "
	       "not answered");
	vdrv_handshake(t, features_lo(t), 1, true);
	is_int(req(t, 0, 0, 512, true, NULL), 0, "after the reset: working");
	is_int(vdrv_used(t, 0)->idx, 1, "and only the new request answered");

	/* a snapshot while a request is half done: save finishes it */
	set_hdr(t, 0, 300);
	submit(t, s, 6);
	is_int(vdrv_used(t, 0)->idx, 1, "third 4 MiB read: in progress");
	size = virtio_mmio_state_size(t->dev);
	st = malloc(size);
	is_int(virtio_mmio_save(t->dev, st, size, NULL), 0, "save");
	is_int(vdrv_used(t, 0)->idx, 2, "save answered the request first");
	is_int(*status_byte(t), 0, "with OK");
	ok(matches_image(t, a, BUF(3), 300 + 3 * 2048, MIB), "and all of its "
							     "bytes");
	ok(((struct virtio_mmio_state *)st)->dev.queues[0].used_idx == 2,
	   "the saved queue has it answered");
	ok(!notify_more(t) && vdrv_used(t, 0)->idx == 2, "no second answer on "
							 "the next turn");
	free(st);
	tvm_free(t);
	free(a);
}

/* ---- the device lock during I/O ---- */

#define SLOW_GPA 0x800000ULL /* guest pages whose first touch blocks */

struct slow_req {
	struct vdrv *t;
	uint32_t used;
};

/* The "event loop": post a 512 KiB read into SLOW_GPA and kick. */
static void *slow_reader(void *arg)
{
	struct slow_req *r = arg;
	struct seg s[3] = { { HDR, 16, false },
			    { SLOW_GPA, 512 * 1024, true },
			    { STATUS, 1, true } };

	set_hdr(r->t, 0, 64);
	r->used = submit(r->t, s, 3);
	return NULL;
}

/*
 * A disk that never answers until we say so: the read's destination is
 * guest memory under userfaultfd, so preadv() blocks inside the kernel
 * until this thread fills the pages. Meanwhile a vCPU must get the
 * device lock at once (a register access) instead of waiting for the
 * disk.
 */
static void test_lock_during_io(void)
{
	char *a = mkimage("slow.img", (size_t)BIG_SECTORS * 512, 7);
	char spec[256];
	struct vdrv *t;
	struct slow_req r;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	struct uffdio_zeropage zp;
	struct pollfd pfd;
	pthread_t th;
	void *slow;
	int uffd, locked;

	snprintf(spec, sizeof(spec), "id=slow,path=%s", a);
	t = tvm_new(spec);
	vdrv_handshake(t, features_lo(t), 1, true);
	slow = vdrv_gp(t, SLOW_GPA, MIB);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
		ok(1, "# SKIP userfaultfd: %s", strerror(errno));
		ok(1, "# SKIP");
		ok(1, "# SKIP");
		goto out;
	}
	/* fresh pages, missing until the fault is served */
	if (mmap(slow, MIB, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != slow) {
		printf("Bail out! mmap: %s\n", strerror(errno));
		exit(1);
	}
	reg = (struct uffdio_register){
		.range = { (uintptr_t)slow, MIB },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		printf("Bail out! UFFDIO_REGISTER: %s\n", strerror(errno));
		exit(1);
	}
	r = (struct slow_req){ .t = t };
	pthread_create(&th, NULL, slow_reader, &r);
	/* the reader is inside preadv() once the first fault arrives */
	pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
	is_int(poll(&pfd, 1, 10000), 1, "the read blocks on the slow pages");
	locked = pthread_mutex_trylock(&t->dev->lock);
	is_int(locked, 0, "during the I/O the device lock is free");
	if (locked == 0) {
		pthread_mutex_unlock(&t->dev->lock);
		/* a vCPU's register access goes through meanwhile */
		is_int(vdrv_rd(t, VIRTIO_MMIO_STATUS),
		       S_ACK | S_DRV | S_FOK | S_DOK,
		       "a register read during the I/O answers");
	} else {
		ok(0, "a register read during the I/O answers");
	}
	zp = (struct uffdio_zeropage){ .range = { (uintptr_t)slow, MIB } };
	ioctl(uffd, UFFDIO_ZEROPAGE, &zp);
	pthread_join(th, NULL);
	is_int(r.used, 512 * 1024 + 1, "the read completes afterwards");
	is_int(*status_byte(t), 0, "OK");
	ok(matches_image(t, a, SLOW_GPA, 64, 512 * 1024), "with the image's "
							  "bytes");
	close(uffd);
out:
	tvm_free(t);
	free(a);
}

int main(void)
{
	char cmd[300];
	int rc;

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	test_glue();
	test_io();
	test_ro();
	test_replace();
	test_replace_mode();
	test_snapshot();
	test_limits();
	test_turns();
	test_lock_during_io();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	rc = tap_done();
	if (system(cmd) != 0)
		return 1;
	return rc;
}
