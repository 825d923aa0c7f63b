/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-balloon driven through the MMIO transport as a vCPU would (no
 * KVM, vm_fd -1), over a real memfd: inflated and reported pages leave
 * the memfd (st_blocks), PFNs outside RAM are ignored, the target raises
 * a config interrupt, stats buffers are parsed and held, snapshots round
 * trip, and malformed chains break the device, never the VMM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/virtio/balloon.h"
#include "../lib/vdriver.h"
#include "tap.h"

#define MEM_SIZE (32ULL << 20)
#define QSIZE	 16
#define PFNBUF	 0x20000ULL
#define STATBUF	 0x21000ULL
#define AREA	 0x400000ULL /* pages the tests touch and give back */

#define F_STATS	    (1U << 1)
#define F_DOOM	    (1U << 2)
#define F_REPORTING (1U << 5)

#define S_NRS VIRTIO_CONFIG_S_NEEDS_RESET

/* >= 0: the next setup maps RAM MAP_PRIVATE from this file (taken) */
static int private_fd = -1;

static void setup(struct vdrv *v, uint32_t amount, bool doom, uint32_t stats)
{
	struct kiln_error err = { 0 };
	int fd = private_fd;

	vdrv_init(v);
	v->cfg.mem_mib = MEM_SIZE >> 20;
	v->cfg.balloon = (struct vm_balloon){ true, amount, doom, stats };
	private_fd = -1;
	if ((fd >= 0 ? vdrv_mem_private(v, fd, MEM_SIZE, &err)
		     : vdrv_mem_alloc(v, MEM_SIZE, &err)) < 0 ||
	    vdrv_attach(v, "virtio_balloon", &err) < 0 || v->state == NULL) {
		printf("Bail out! %s\n", err.msg);
		exit(1);
	}
	v->vm.devices[0] = (struct vm_device_state){ v->desc, v->state };
	v->vm.ndevices = 1;
	vdrv_use(v, balloon_lookup(&v->vm));
	for (unsigned int q = 0; q < 4; q++)
		vdrv_queue_at(v, q, 0x1000 + q * 0x3000ULL,
			      0x2000 + q * 0x3000ULL, 0x3000 + q * 0x3000ULL,
			      QSIZE);
	v->clear_gpa = 0;
	v->clear_len = 0x10000;
	/* allocate the buffers' pages now: st_blocks counts only the area */
	memset(vdrv_gp(v, PFNBUF, 0x2000), 0xff, 0x2000);
}

/* Only the queues the negotiated features give a role to. */
static void handshake(struct vdrv *v, uint32_t features)
{
	v->nqueues = 2 + !!(features & F_STATS) + !!(features & F_REPORTING);
	vdrv_handshake(v, features, 1, true);
}

static uint64_t blocks(struct vdrv *v)
{
	struct stat st;

	fstat(v->vm.mem.fd, &st);
	return (uint64_t)st.st_blocks;
}

static void touch(struct vdrv *v, uint64_t gpa, uint64_t len)
{
	memset(vdrv_gp(v, gpa, len), 0xa5, len);
}

static bool all_zero(struct vdrv *v, uint64_t gpa, uint64_t len)
{
	const uint8_t *p = vdrv_gp(v, gpa, len);

	for (uint64_t i = 0; i < len; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* One PFN buffer on queue q; true when the device gave it back. */
static bool send_pfns(struct vdrv *v, unsigned int q, const uint32_t *pfns,
		      unsigned int n)
{
	struct virtq_used_elem e;

	memcpy(vdrv_gp(v, PFNBUF, n * 4ULL), pfns, n * 4ULL);
	vdrv_set_desc(v, q, 0, PFNBUF, n * 4, 0, 0);
	vdrv_offer(v, q, 0);
	return vdrv_used_next(v, q, &e);
}

static uint32_t cfg32(struct vdrv *v, uint32_t off)
{
	uint32_t val = 0;

	vdrv_access(v, VIRTIO_MMIO_CONFIG + off, &val, 4, false);
	return val;
}

static struct balloon_stats stats(struct vdrv *v)
{
	struct balloon_stats s;
	struct kiln_error err = { 0 };

	memset(&s, 0xff, sizeof(s));
	if (balloon_get_stats(v->dev, &s, &err) < 0)
		memset(&s, 0, sizeof(s));
	return s;
}

static void test_features(void)
{
	struct vdrv v;

	setup(&v, 0, false, 0);
	vdrv_wr(&v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	is_int(vdrv_rd(&v, VIRTIO_MMIO_DEVICE_ID), 5, "device id 5");
	ok((vdrv_rd(&v, VIRTIO_MMIO_DEVICE_FEATURES) & 0x3f) == F_REPORTING,
	   "plain: only REPORTING offered");
	vdrv_destroy(&v);
	setup(&v, 0, true, 5);
	vdrv_wr(&v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	ok((vdrv_rd(&v, VIRTIO_MMIO_DEVICE_FEATURES) & 0x3f) ==
		   (F_REPORTING | F_STATS | F_DOOM),
	   "deflate-on-oom and stats add their bits");
	vdrv_destroy(&v);
}

static void test_inflate_frees(void)
{
	struct vdrv v;
	uint32_t pfns[256];
	uint64_t before, after;

	setup(&v, 4, false, 0);
	handshake(&v, F_REPORTING);
	touch(&v, AREA, 1 << 20);
	before = blocks(&v);
	/* descending, as Linux often hands them out: still one range */
	for (unsigned int i = 0; i < 256; i++)
		pfns[i] = (uint32_t)(AREA >> 12) + 255 - i;
	ok(send_pfns(&v, 0, pfns, 256), "inflate buffer used");
	after = blocks(&v);
	is_int(before - after, 2048, "1 MiB inflated: 2048 blocks freed");
	ok(all_zero(&v, AREA, 1 << 20), "inflated pages read back as zeros");
	ok(!(vdrv_rd(&v, VIRTIO_MMIO_STATUS) & S_NRS), "device not broken");

	/* deflate: nothing changes on the host, the buffer comes back */
	touch(&v, AREA, 4096);
	before = blocks(&v);
	ok(send_pfns(&v, 1, pfns, 256), "deflate buffer used");
	is_int(blocks(&v), before, "deflate frees nothing");
	vdrv_destroy(&v);
}

/*
 * RAM mapped MAP_PRIVATE over a file other VMs may map (a snapshot's
 * memory, a fork's template): inflating drops our copy of the pages
 * (MADV_DONTNEED) and leaves the file alone.
 */
static void test_inflate_private(void)
{
	struct vdrv v;
	uint32_t pfns[16];
	uint8_t page[4096], want[4096];
	struct stat st0, st1;
	int fd = memfd_create("template", MFD_CLOEXEC), keep;
	bool same = true;

	if (fd < 0 || ftruncate(fd, (off_t)MEM_SIZE) < 0) {
		printf("Bail out! template memfd: %s\n", strerror(errno));
		exit(1);
	}
	memset(want, 0x5a, sizeof(want));
	for (unsigned int i = 0; i < 16; i++)
		if (pwrite(fd, want, sizeof(want),
			   (off_t)(AREA + i * 4096ULL)) !=
		    (ssize_t)sizeof(want))
			exit(1);
	keep = dup(fd);
	private_fd = fd;
	setup(&v, 4, false, 0);
	handshake(&v, F_REPORTING);
	touch(&v, AREA, 16 << 12); /* private copies of 16 pages */
	/* after the setup: faults on a shmem file's holes fill them */
	fstat(keep, &st0);
	for (unsigned int i = 0; i < 16; i++)
		pfns[i] = (uint32_t)(AREA >> 12) + i;
	ok(send_pfns(&v, 0, pfns, 16), "inflate buffer used (private RAM)");
	fstat(keep, &st1);
	is_int(st1.st_blocks, st0.st_blocks,
	       "the template file keeps every block");
	for (unsigned int i = 0; i < 16; i++) {
		if (pread(keep, page, sizeof(page),
			  (off_t)(AREA + i * 4096ULL)) !=
			    (ssize_t)sizeof(page) ||
		    memcmp(page, want, sizeof(page)) != 0)
			same = false;
	}
	ok(same, "the template file's pages are unchanged");
	ok(memcmp(vdrv_gp(&v, AREA, 4096), want, 4096) == 0, "an inflated page "
							     "reads the "
							     "template again: "
							     "our copy was "
							     "dropped");
	ok(!(vdrv_rd(&v, VIRTIO_MMIO_STATUS) & S_NRS), "device not broken");
	vdrv_destroy(&v);
	close(keep);
}

static void test_out_of_ram(void)
{
	struct vdrv v;
	uint32_t pfns[] = { 0xffffffffU, (uint32_t)(MEM_SIZE >> 12), 0xc0000U,
			    (uint32_t)(AREA >> 12) };
	uint64_t before;

	setup(&v, 0, false, 0);
	handshake(&v, F_REPORTING);
	touch(&v, AREA, 2 << 12);
	before = blocks(&v);
	ok(send_pfns(&v, 0, pfns, 4), "buffer with bad PFNs used");
	is_int(before - blocks(&v), 8, "only the one RAM page freed");
	ok(!(vdrv_rd(&v, VIRTIO_MMIO_STATUS) & S_NRS), "bad PFNs do not break "
						       "the device");
	/* a PFN array with a stray byte: the whole PFNs only */
	touch(&v, AREA, 2 << 12);
	before = blocks(&v);
	memcpy(vdrv_gp(&v, PFNBUF, 8), (uint32_t[]){ AREA >> 12, 7 }, 8);
	vdrv_set_desc(&v, 0, 0, PFNBUF, 7, 0, 0);
	vdrv_offer(&v, 0, 0);
	is_int(before - blocks(&v), 8, "7 bytes: one PFN");
	vdrv_destroy(&v);
}

static void test_reporting(void)
{
	struct vdrv v;
	struct virtq_used_elem e;
	uint64_t before;

	/* with stats negotiated reporting is queue 3, without it queue 2 */
	for (int with_stats = 0; with_stats < 2; with_stats++) {
		unsigned int q = with_stats ? 3 : 2;

		setup(&v, 0, false, with_stats ? 1 : 0);
		handshake(&v, F_REPORTING | (with_stats ? F_STATS : 0));
		touch(&v, AREA, 4 << 20);
		before = blocks(&v);
		/* Linux's inbufs: 2 MiB, then an unaligned 8 KiB range */
		vdrv_set_desc(&v, q, 0, AREA, 2 << 20,
			      VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
		vdrv_set_desc(&v, q, 1, AREA + (3 << 20) + 0x800, 0x2000,
			      VIRTQ_DESC_F_WRITE, 0);
		vdrv_offer(&v, q, 0);
		ok(vdrv_used_next(&v, q, &e) && e.len == 0,
		   "report used (queue %u)", q);
		is_int(before - blocks(&v), 4096 + 8,
		       "2 MiB + the one whole page freed (queue %u)", q);
		ok(all_zero(&v, AREA, 2 << 20) &&
			   *(uint8_t *)vdrv_gp(&v, AREA + (3 << 20) + 0x800,
					       1) == 0xa5,
		   "reported range zero, partial page kept");
		vdrv_destroy(&v);
	}
}

static void test_target_and_actual(void)
{
	struct vdrv v;
	struct kiln_error err = { 0 };
	uint32_t gen, val = 300 * 256;

	setup(&v, 8, false, 0);
	handshake(&v, F_REPORTING);
	is_int(cfg32(&v, 0), 8 * 256, "num_pages = amount in 4 KiB pages");
	vdrv_wr(&v, VIRTIO_MMIO_INTERRUPT_ACK, 3);
	gen = vdrv_rd(&v, VIRTIO_MMIO_CONFIG_GENERATION);
	ok(balloon_set_target(v.dev, 20, &err) == 0, "set target 20 MiB");
	is_int(cfg32(&v, 0), 20 * 256, "num_pages follows");
	ok(vdrv_rd(&v, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_ISR_CONFIG,
	   "config-change interrupt");
	ok(vdrv_rd(&v, VIRTIO_MMIO_CONFIG_GENERATION) != gen, "config "
							      "generation "
							      "moved");
	ok(balloon_set_target(v.dev, 33, &err) < 0 && err.errnum == EINVAL,
	   "target larger than RAM refused");
	is_int(cfg32(&v, 0), 20 * 256, "num_pages unchanged");

	vdrv_access(&v, VIRTIO_MMIO_CONFIG + 4, &val, 4, true);
	is_int(balloon_actual_mib(v.dev), 300, "actual written by the driver");
	is_int(cfg32(&v, 4), 300 * 256, "actual reads back");
	val = 0x12345678;
	vdrv_access(&v, VIRTIO_MMIO_CONFIG + 0, &val, 4, true);
	is_int(cfg32(&v, 0), 20 * 256, "num_pages is read-only");
	val = 0;
	vdrv_access(&v, VIRTIO_MMIO_CONFIG + 5, &val, 1, true);
	is_int(cfg32(&v, 4), 300 * 256 & 0xffff00ff, "byte write to actual");
	vdrv_destroy(&v);
}

/* A stats buffer of n entries (tag, value) at STATBUF, plus extra bytes. */
static void send_stats(struct vdrv *v, const uint16_t *tags,
		       const uint64_t *vals, unsigned int n, unsigned int extra)
{
	uint8_t *p = vdrv_gp(v, STATBUF, n * 10ULL + extra);

	for (unsigned int i = 0; i < n; i++) {
		memcpy(p + 10 * i, &tags[i], 2);
		memcpy(p + 10 * i + 2, &vals[i], 8);
	}
	vdrv_set_desc(v, 2, 0, STATBUF, n * 10 + extra, 0, 0);
	vdrv_offer(v, 2, 0);
}

static void test_stats(void)
{
	struct vdrv v;
	struct virtq_used_elem e;
	struct balloon_stats s;
	struct kiln_error err = { 0 };
	uint16_t tags[] = { BALLOON_S_MEMFREE, BALLOON_S_MEMTOT, 999,
			    BALLOON_S_AVAIL };
	uint64_t vals[] = { 100 << 20, 512 << 20, 7, 200 << 20 };

	setup(&v, 0, false, 0);
	ok(balloon_get_stats(v.dev, &s, &err) < 0 && err.errnum == ENOTSUP,
	   "no stats without polling");
	vdrv_destroy(&v);

	setup(&v, 0, false, 1);
	handshake(&v, F_REPORTING | F_STATS);
	send_stats(&v, tags, vals, 4, 3);
	ok(!vdrv_used_next(&v, 2, &e), "stats buffer held by the device");
	s = stats(&v);
	is_int(s.present,
	       (1U << BALLOON_S_MEMFREE) | (1U << BALLOON_S_MEMTOT) |
		       (1U << BALLOON_S_AVAIL),
	       "known tags present, unknown skipped");
	ok(s.values[BALLOON_S_MEMFREE] == 100 << 20 &&
		   s.values[BALLOON_S_MEMTOT] == 512ULL << 20 &&
		   s.values[BALLOON_S_AVAIL] == 200 << 20,
	   "values parsed");
	ok(s.updated_ns != 0, "timestamped");
	balloon_poll_stats(v.dev);
	ok(vdrv_used_next(&v, 2, &e) && e.id == 0 && e.len == 0, "poll gives "
								 "the buffer "
								 "back");
	balloon_poll_stats(v.dev);
	ok(!vdrv_used_next(&v, 2, &e), "nothing held: poll does nothing");
	vals[0] = 50 << 20;
	send_stats(&v, tags, vals, 1, 0);
	s = stats(&v);
	ok(s.present == (1U << BALLOON_S_MEMFREE) &&
		   s.values[BALLOON_S_MEMFREE] == 50 << 20,
	   "refilled buffer replaces the values");
	/* a second buffer while one is held: the first comes back */
	send_stats(&v, tags, vals, 2, 0);
	ok(vdrv_used_next(&v, 2, &e), "extra stats buffer returns the old");
	ok(!(vdrv_rd(&v, VIRTIO_MMIO_STATUS) & S_NRS), "device not broken");
	is_int(strcmp(balloon_stat_name(BALLOON_S_AVAIL), "available-memory"),
	       0, "stat names");
	vdrv_destroy(&v);
}

static void test_snapshot(void)
{
	struct vdrv v;
	struct kiln_error err = { 0 };
	uint8_t buf[sizeof(struct virtio_mmio_state) + VIRTIO_DEV_STATE_MAX];
	size_t n;
	uint32_t val = 5 * 256;
	struct virtq_used_elem e;
	uint16_t tag = BALLOON_S_MEMFREE;
	uint64_t one = 1;

	setup(&v, 10, true, 2);
	handshake(&v, F_REPORTING | F_STATS | F_DOOM);
	vdrv_access(&v, VIRTIO_MMIO_CONFIG + 4, &val, 4, true);
	send_stats(&v, &tag, &one, 1, 0);
	n = virtio_mmio_state_size(v.dev);
	ok(n <= sizeof(buf) && virtio_mmio_save(v.dev, buf, n, &err) == 0, "sav"
									   "e");
	balloon_set_target(v.dev, 20, &err);
	ok(virtio_mmio_restore(v.dev, buf, n, &err) == 0, "restore: %s",
	   err.msg);
	is_int(cfg32(&v, 0), 10 * 256, "target restored");
	is_int(balloon_actual_mib(v.dev), 5, "actual restored");
	balloon_poll_stats(v.dev);
	ok(vdrv_used_next(&v, 2, &e) && e.id == 0, "held stats buffer "
						   "restored");
	/* the device's own state sits at the end: break its version */
	buf[n - 32] ^= 0x40; /* struct balloon_state: 32 bytes */
	balloon_set_target(v.dev, 20, &err);
	ok(virtio_mmio_restore(v.dev, buf, n, &err) < 0, "corrupt state "
							 "refused");
	is_int(cfg32(&v, 0), 20 * 256, "refused restore changed nothing");
	vdrv_destroy(&v);
}

static void test_malformed(void)
{
	struct vdrv v;

	setup(&v, 0, false, 0);
	handshake(&v, F_REPORTING);
	vdrv_set_desc(&v, 0, 0, MEM_SIZE - 8, 64, 0, 0);
	vdrv_offer(&v, 0, 0);
	ok(vdrv_rd(&v, VIRTIO_MMIO_STATUS) & S_NRS, "PFN buffer outside RAM: "
						    "broken");
	handshake(&v, F_REPORTING);
	ok(!(vdrv_rd(&v, VIRTIO_MMIO_STATUS) & S_NRS), "reset repairs it");
	vdrv_set_desc(&v, 2, 0, AREA, 4096, VIRTQ_DESC_F_NEXT, 200);
	vdrv_offer(&v, 2, 0);
	ok(vdrv_rd(&v, VIRTIO_MMIO_STATUS) & S_NRS, "report chain with a bad "
						    "next: broken");
	/* no stats, no reporting negotiated: queue 2 has no role */
	v.nqueues = 3;
	vdrv_handshake(&v, 0, 1, true);
	vdrv_set_desc(&v, 2, 0, AREA, 4096, 0, 0);
	vdrv_offer(&v, 2, 0);
	ok(vdrv_rd(&v, VIRTIO_MMIO_STATUS) & S_NRS, "buffers on a queue "
						    "without a role: broken");
	vdrv_destroy(&v);
}

static void test_too_big(void)
{
	struct vdrv v;
	struct kiln_error err = { 0 };

	vdrv_init(&v);
	v.cfg.balloon = (struct vm_balloon){ true, 64, false, 0 };
	if (vdrv_mem_alloc(&v, MEM_SIZE, &err) < 0)
		exit(1);
	ok(vdrv_attach(&v, "virtio_balloon", &err) < 0 && v.state == NULL,
	   "a balloon larger than RAM is refused: %s", err.msg);
	v.desc = NULL;
	vdrv_destroy(&v);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	test_features();
	test_inflate_frees();
	test_inflate_private();
	test_out_of_ram();
	test_reporting();
	test_target_and_actual();
	test_stats();
	test_snapshot();
	test_malformed();
	test_too_big();
	return tap_done();
}
