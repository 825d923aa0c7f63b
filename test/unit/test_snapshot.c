/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshot state files without KVM: the writer and the loader round trip;
 * every flipped byte, a truncation, a wrong magic, version or shape, and
 * sections out of order are refused with a message that says so; the
 * memory file check refuses a wrong size or content; the serial port's
 * state round trips and bad states are refused.
 *
 * KILN_SNAPSHOT_SEED=path writes the valid state file there (the fuzz
 * corpus's seed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/hw/serial.h"
#include "../../vmm/snapshot.h"
#include "tap.h"

#define MEM (32ULL << 20)

static const char config[] = "{\"boot-source\": {\"kernel_image_path\": "
			     "\"/k\"},"
			     " \"machine-config\": {\"vcpu_count\": 2, "
			     "\"mem_size_mib\": 32}}";

/* A valid state file of 2 vCPUs, 32 MiB, with nmsrs MSRs each. */
static uint8_t *build(size_t *len, uint32_t vcpus, uint64_t mem,
		      const char *cfg, uint32_t mem_crc)
{
	struct snap_writer w = { 0 };
	struct snap_vm vm = { 0 };
	struct kiln_error err = { 0 };
	struct snap_vcpu *v = calloc(1, sizeof(*v));
	struct kvm_msr_entry msrs[3] = { { .index = 0x10, .data = 1 },
					 { .index = 0x174 },
					 { .index = 0xc0000080,
					   .data = 0xd01 } };
	char name[SNAP_NAME_LEN] = "serial";
	uint8_t dev[40] = { 1 };
	uint8_t *out = NULL;

	vm.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	vm.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	vm.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	snap_add(&w, SNAP_SEC_CONFIG, 0, cfg, strlen(cfg));
	snap_add(&w, SNAP_SEC_VM, 0, &vm, sizeof(vm));
	for (uint32_t i = 0; i < vcpus; i++) {
		v->id = i;
		v->nmsrs = 3;
		v->flags = SNAP_VCPU_XSAVE;
		v->regs.rip = 0x1000 + i;
		snap_add2(&w, SNAP_SEC_VCPU, i, v, sizeof(*v), msrs,
			  sizeof(msrs));
	}
	snap_add2(&w, SNAP_SEC_DEVICE, 0, name, sizeof(name), dev, sizeof(dev));
	snap_add(&w, SNAP_SEC_VIRTIO, 2, dev, 13);
	snap_add(&w, SNAP_SEC_VIRTIO, 5, dev, 24);
	if (snap_finish(&w, vcpus, mem, mem_crc, &out, len, &err) < 0) {
		printf("Bail out! %s\n", err.msg);
		exit(1);
	}
	free(v);
	return out;
}

static void refix_crc(uint8_t *buf, size_t len)
{
	struct snap_header h;

	memcpy(&h, buf, sizeof(h));
	h.crc32c = 0;
	memcpy(buf, &h, sizeof(h));
	h.crc32c = snap_crc32c(0, buf, len);
	memcpy(buf, &h, sizeof(h));
}

static bool refused(const uint8_t *buf, size_t len, const char *want)
{
	struct snap_image *img = malloc(sizeof(*img));
	struct kiln_error err = { 0 };
	bool r = snap_parse(buf, len, img, &err) < 0 &&
		 (want == NULL || strstr(err.msg, want) != NULL);

	if (!r)
		printf("#   got `%s`\n", err.msg);
	free(img);
	return r;
}

static void test_crc(void)
{
	/* the check value of CRC-32C (RFC 3720) */
	is_int(snap_crc32c(0, "123456789", 9), 0xe3069283, "CRC32C check");
	is_int(snap_crc32c(snap_crc32c(0, "1234", 4), "56789", 5), 0xe3069283,
	       "CRC32C continues across calls");
}

static void test_round_trip(void)
{
	struct snap_image *img = malloc(sizeof(*img));
	struct kiln_error err = { 0 };
	struct vm_config cfg;
	struct snap_vcpu v;
	const void *msrs;
	struct kvm_msr_entry e;
	size_t len;
	uint8_t *buf = build(&len, 2, MEM, config, 0x1234);
	const char *seed = getenv("KILN_SNAPSHOT_SEED");

	if (seed != NULL) {
		FILE *f = fopen(seed, "w");

		if (f != NULL) {
			fwrite(buf, 1, len, f);
			fclose(f);
		}
	}
	ok(snap_parse(buf, len, img, &err) == 0, "a written state parses: %s",
	   err.msg);
	is_int(img->hdr.vcpu_count, 2, "  2 vCPUs");
	ok(img->hdr.mem_size == MEM && img->hdr.mem_crc32c == 0x1234, "  "
								      "memory "
								      "size "
								      "and "
								      "checksu"
								      "m");
	ok(img->nvcpus == 2 && img->ndevices == 1 && img->nvirtio == 2 &&
		   img->virtio[0].index == 2 && img->virtio[1].index == 5 &&
		   img->virtio[0].size == 13,
	   "  sections indexed");
	ok(snap_vcpu_get(&img->vcpus[1], &v, &msrs, &err) == 0 && v.id == 1 &&
		   v.nmsrs == 3 && v.regs.rip == 0x1001,
	   "  vCPU 1 state: %s", err.msg);
	memcpy(&e, (const uint8_t *)msrs + 2 * sizeof(e), sizeof(e));
	ok(e.index == 0xc0000080 && e.data == 0xd01, "  its MSRs follow it");
	vm_config_init(&cfg);
	ok(snap_parse_config(img, &cfg, &err) == 0 && cfg.vcpu_count == 2,
	   "  its config parses: %s", err.msg);
	vm_config_destroy(&cfg);
	free(buf);
	free(img);
}

static void test_every_byte(void)
{
	size_t len, bad = 0;
	uint8_t *buf = build(&len, 2, MEM, config, 0);

	/* no single flipped bit anywhere gets through */
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x10;
		if (!refused(buf, len, NULL))
			bad++;
		buf[i] ^= 0x10;
	}
	is_int(bad, 0, "every one of %zu flipped bytes is refused", len);
	buf[len / 2] ^= 1;
	ok(refused(buf, len, "checksum"), "  a flipped byte: `checksum`");
	buf[len / 2] ^= 1;
	for (size_t cut = 0; cut < len; cut += len / 7 + 1)
		ok(refused(buf, cut, NULL), "truncated to %zu bytes: refused",
		   cut);
	ok(refused(buf, len - 8, "truncated"), "  says truncated");
	free(buf);
}

static void test_header(void)
{
	size_t len;
	uint8_t *buf = build(&len, 2, MEM, config, 0);
	struct snap_header h;

	memcpy(&h, buf, sizeof(h));
	h.version = 2;
	memcpy(buf, &h, sizeof(h));
	refix_crc(buf, len);
	ok(refused(buf, len, "version 2"), "another version is refused");
	h.version = SNAP_VERSION;
	h.magic[0] = 'X';
	memcpy(buf, &h, sizeof(h));
	refix_crc(buf, len);
	ok(refused(buf, len, "magic"), "another magic is refused");
	h.magic[0] = 'K';
	h.mem_size = MEM + 1;
	memcpy(buf, &h, sizeof(h));
	refix_crc(buf, len);
	ok(refused(buf, len, "memory size"), "a memory size not in pages");
	h.mem_size = MEM;
	h.vcpu_count = 3;
	memcpy(buf, &h, sizeof(h));
	refix_crc(buf, len);
	ok(refused(buf, len, "device section 0: out of order"), "fewer vCPU "
								"sections than "
								"the header "
								"says");
	h.vcpu_count = 0;
	memcpy(buf, &h, sizeof(h));
	refix_crc(buf, len);
	ok(refused(buf, len, "0 vCPUs"), "0 vCPUs");
	h.vcpu_count = 2;
	h.nsections = 1u << 30;
	memcpy(buf, &h, sizeof(h));
	refix_crc(buf, len);
	ok(refused(buf, len, "sections"), "a huge section count");
	free(buf);
}

static void test_shape(void)
{
	struct snap_image *img = malloc(sizeof(*img));
	struct kiln_error err = { 0 };
	struct vm_config cfg;
	size_t len;
	/* the header says 1 vCPU, the config 2 */
	uint8_t *buf = build(&len, 1, MEM, config, 0);

	vm_config_init(&cfg);
	ok(snap_parse(buf, len, img, &err) == 0, "1-vCPU state parses");
	ok(snap_parse_config(img, &cfg, &err) < 0 && strstr(err.msg, "does not "
								     "match"),
	   "  its 2-vCPU config is refused: %s", err.msg);
	vm_config_destroy(&cfg);
	free(buf);

	vm_config_init(&cfg);
	buf = build(&len, 2, MEM, "{\"machine-config\": 7}", 0);
	ok(snap_parse(buf, len, img, &err) == 0 &&
		   snap_parse_config(img, &cfg, &err) < 0 &&
		   strstr(err.msg, "snapshot config"),
	   "a bad config is refused: %s", err.msg);
	vm_config_destroy(&cfg);
	free(buf);
	free(img);
}

/* A section's header rewritten, the CRC fixed: the loader's own checks. */
static void test_sections(void)
{
	size_t len;
	uint8_t *buf = build(&len, 2, MEM, config, 0);
	size_t off = sizeof(struct snap_header);
	struct snap_section s;

	memcpy(&s, buf + off, sizeof(s));
	s.type = SNAP_SEC_VM; /* the config section turned into a VM one */
	memcpy(buf + off, &s, sizeof(s));
	refix_crc(buf, len);
	ok(refused(buf, len, "VM section"), "a VM section before the config");
	s.type = 99;
	memcpy(buf + off, &s, sizeof(s));
	refix_crc(buf, len);
	ok(refused(buf, len, "unknown type 99"), "an unknown section type");
	s.type = SNAP_SEC_CONFIG;
	s.size = len;
	memcpy(buf + off, &s, sizeof(s));
	refix_crc(buf, len);
	ok(refused(buf, len, "past the end"), "a section past the end");
	s.size = (uint64_t)-1;
	memcpy(buf + off, &s, sizeof(s));
	refix_crc(buf, len);
	ok(refused(buf, len, "past the end"), "a section of 2^64-1 bytes");
	free(buf);
}

static void test_vcpu_blob(void)
{
	struct snap_vcpu *v = calloc(1, sizeof(*v));
	uint8_t *raw = calloc(1, sizeof(*v) + 16);
	struct snap_blob b = { .data = raw, .size = sizeof(*v), .index = 0 };
	struct kiln_error err = { 0 };
	struct snap_vcpu out;
	const void *msrs;

	memcpy(raw, v, sizeof(*v));
	ok(snap_vcpu_get(&b, &out, &msrs, &err) == 0, "a plain vCPU state");
	v->nmsrs = 1;
	memcpy(raw, v, sizeof(*v));
	ok(snap_vcpu_get(&b, &out, &msrs, &err) < 0,
	   "an MSR count the size does not hold: %s", err.msg);
	v->nmsrs = 0;
	v->mp_state.mp_state = 77;
	memcpy(raw, v, sizeof(*v));
	ok(snap_vcpu_get(&b, &out, &msrs, &err) < 0, "mp_state 77: %s",
	   err.msg);
	v->mp_state.mp_state = 0;
	v->xcrs.nr_xcrs = KVM_MAX_XCRS + 1;
	memcpy(raw, v, sizeof(*v));
	ok(snap_vcpu_get(&b, &out, &msrs, &err) < 0, "too many XCRs: %s",
	   err.msg);
	v->xcrs.nr_xcrs = 0;
	v->id = 3;
	memcpy(raw, v, sizeof(*v));
	ok(snap_vcpu_get(&b, &out, &msrs, &err) < 0, "another vCPU's id: %s",
	   err.msg);
	free(raw);
	free(v);
}

/* The memory file check: size and content against the state's CRC. */
static void test_memory_file(void)
{
	char path[] = "/tmp/kiln-snap-mem-XXXXXX";
	struct snap_image *img = calloc(1, sizeof(*img));
	struct kiln_error err = { 0 };
	uint8_t page[4096];
	uint32_t crc = 0;
	int fd = mkstemp(path), rfd;

	if (fd < 0 || ftruncate(fd, (off_t)MEM) < 0)
		exit(1);
	memset(page, 0xab, sizeof(page));
	if (pwrite(fd, page, sizeof(page), 5 << 20) != sizeof(page))
		exit(1);
	for (uint64_t off = 0; off < MEM; off += sizeof(page)) {
		if (pread(fd, page, sizeof(page), (off_t)off) != sizeof(page))
			exit(1);
		crc = snap_crc32c(crc, page, sizeof(page));
	}
	img->hdr.mem_size = MEM;
	img->hdr.mem_crc32c = crc;
	rfd = snapshot_open_memory(img, path, &err);
	ok(rfd >= 0, "a sparse memory file that matches opens: %s", err.msg);
	if (rfd >= 0)
		close(rfd);
	page[0] = 0xac;
	if (pwrite(fd, page, 1, (5 << 20) + 100) != 1)
		exit(1);
	ok(snapshot_open_memory(img, path, &err) < 0 && strstr(err.msg, "does "
									"not "
									"matc"
									"h"),
	   "a flipped byte is refused: %s", err.msg);
	page[0] = 0;
	if (pwrite(fd, page, 1, (20 << 20)) != 1) /* a hole turned data */
		exit(1);
	if (pwrite(fd, (uint8_t[]){ 0xab }, 1, (5 << 20) + 100) != 1)
		exit(1);
	ok(snapshot_open_memory(img, path, &err) >= 0, "zeros written into a "
						       "hole change nothing");
	if (ftruncate(fd, (off_t)(MEM - 4096)) < 0)
		exit(1);
	ok(snapshot_open_memory(img, path, &err) < 0 && strstr(err.msg, "bytes,"
									" the "
									"snapsh"
									"ot's "
									"VM "
									"has"),
	   "a truncated memory file is refused: %s", err.msg);
	img->hdr.mem_size = MEM - 4096;
	ok(snapshot_open_memory(img, path, &err) < 0 && strstr(err.msg, "does "
									"not "
									"matc"
									"h"),
	   "  even when the sizes agree, its checksum does not");
	unlink(path);
	if (mkfifo(path, 0600) == 0) {
		uint8_t *sb = NULL;
		size_t sl = 0;

		ok(snapshot_open_memory(img, path, &err) < 0 &&
			   strstr(err.msg, "bytes, the snapshot's VM has"),
		   "a FIFO as memory file is refused, not waited on: %s",
		   err.msg);
		ok(snapshot_read(path, &sb, &sl, &err) < 0 &&
			   strstr(err.msg, "not a regular file"),
		   "a FIFO as state file too: %s", err.msg);
		free(sb);
	}
	ok(snapshot_open_memory(img, "/nonexistent/m", &err) < 0 &&
		   strstr(err.msg, "/nonexistent/m"),
	   "a missing memory file is named: %s", err.msg);
	close(fd);
	unlink(path);
	free(img);
}

static void test_serial(void)
{
	struct kiln_error err = { 0 };
	struct serial *a = serial_new(-1, -1, &err);
	struct serial *b = serial_new(-1, -1, &err);
	struct serial_state sa, sb, bad;
	uint8_t v;

	/* LCR with DLAB, divisor 3, IER, scratch, two bytes of input */
	v = 0x80;
	serial_io(a, 3, &v, 1, true);
	v = 3;
	serial_io(a, 0, &v, 1, true);
	v = 0x03;
	serial_io(a, 3, &v, 1, true);
	v = 0x05;
	serial_io(a, 1, &v, 1, true);
	v = 0x42;
	serial_io(a, 7, &v, 1, true);
	serial_input(a, (const uint8_t *)"hi", 2);
	serial_save(a, &sa);
	ok(serial_restore(b, &sa, &err) == 0, "serial state restores: %s",
	   err.msg);
	serial_save(b, &sb);
	ok(memcmp(&sa, &sb, sizeof(sa)) == 0, "  and saves back the same");
	serial_io(b, 0, &v, 1, false);
	ok(v == 'h', "  the pending input comes out first");
	bad = sa;
	bad.rx_count = SERIAL_RX_FIFO + 1;
	ok(serial_restore(b, &bad, &err) < 0, "an rx count past the FIFO: %s",
	   err.msg);
	bad = sa;
	bad.version = 9;
	ok(serial_restore(b, &bad, &err) < 0, "another version");
	bad = sa;
	bad.ier = 0xf0;
	ok(serial_restore(b, &bad, &err) < 0, "IER bits that do not exist");
	serial_free(a);
	serial_free(b);
}

/* A diff's data lands on its base at the same offsets; holes change nothing. */
static void test_rebase(void)
{
	char dir[] = "/tmp/kiln-rebase-XXXXXX", base[64], diff[64], small[64];
	struct kiln_error err = { 0 };
	uint8_t *b = calloc(1, 1 << 20), *want = calloc(1, 1 << 20);
	uint8_t got[4096];
	int fd;

	if (mkdtemp(dir) == NULL || b == NULL || want == NULL) {
		ok(0, "rebase setup");
		return;
	}
	snprintf(base, sizeof(base), "%s/base", dir);
	snprintf(diff, sizeof(diff), "%s/diff", dir);
	snprintf(small, sizeof(small), "%s/small", dir);
	memset(b, 0xbb, 1 << 20);
	memcpy(want, b, 1 << 20);
	fd = open(base, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0 && write(fd, b, 1 << 20) == 1 << 20, "base written");
	close(fd);
	/* the diff: pages 3 and 200 (a zero page: data, not a hole) */
	fd = open(diff, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "diff sized");
	memset(got, 0xdd, sizeof(got));
	ok(pwrite(fd, got, 4096, 3 * 4096) == 4096, "diff page 3");
	memset(got, 0, sizeof(got));
	ok(pwrite(fd, got, 4096, 200 * 4096) == 4096, "diff page 200");
	close(fd);
	memset(want + 3 * 4096, 0xdd, 4096);
	memset(want + 200 * 4096, 0, 4096);
	ok(snapshot_rebase(base, diff, &err) == 0, "rebase: %s", err.msg);
	fd = open(base, O_RDONLY);
	ok(fd >= 0 && read(fd, b, 1 << 20) == 1 << 20 &&
		   memcmp(b, want, 1 << 20) == 0,
	   "  the base has the diff's two pages, the rest as it was");
	close(fd);
	fd = open(small, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0 && ftruncate(fd, 4096) == 0, "a small file");
	close(fd);
	ok(snapshot_rebase(base, small, &err) < 0 &&
		   strstr(err.msg, "memory size") != NULL,
	   "a diff of another size is refused: %s", err.msg);
	ok(snapshot_rebase(base, "/nonexistent/diff", &err) < 0 &&
		   strstr(err.msg, "/nonexistent/diff") != NULL,
	   "a missing diff is named: %s", err.msg);
	ok(snapshot_rebase(base, base, &err) < 0 &&
		   strstr(err.msg, "the same file") != NULL,
	   "a file onto itself is refused: %s", err.msg);
	unlink(base);
	unlink(diff);
	unlink(small);
	rmdir(dir);
	free(b);
	free(want);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	test_crc();
	test_round_trip();
	test_every_byte();
	test_header();
	test_shape();
	test_sections();
	test_vcpu_blob();
	test_memory_file();
	test_serial();
	test_rebase();
	return tap_done();
}
