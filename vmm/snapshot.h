/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshot state files: the format and its loader (pure code, no KVM, so
 * unit tests and the fuzzer drive it), and the VM-level save and restore
 * in snapshot_vm.c.
 *
 * A state file is a header, then sections, each a section header and its
 * payload padded to 8 bytes:
 *
 *   header      magic "KILNSNAP", version, sizes, CRC32C over the whole
 *               file (this field as zero), the VM's shape: vCPU count,
 *               RAM bytes, the memory file's CRC32C
 *   CONFIG      the VM's configuration as Firecracker's JSON (GET
 *               /vm/config): which devices, in which order, with which
 *               host files; the loader rebuilds the VM from it
 *   VM          irqchip (PIC master, slave, IOAPIC), PIT2, kvmclock
 *   VCPU x n    one per vCPU, in id order: struct snap_vcpu, then nmsrs
 *               struct kvm_msr_entry
 *   DEVICE      a legacy device's state (index: order among them), its
 *               name first (SNAP_NAME_LEN bytes, NUL-padded)
 *   VIRTIO      a virtio-mmio device's virtio_mmio_save() bytes (index:
 *               its window slot)
 *
 * The memory file is the guest's RAM, flat, RAM offset = file offset
 * (holes where the guest never wrote). A restore maps it MAP_PRIVATE, so
 * pages are read on demand and the file is never written; a fork can map
 * the same file (or the template's memfd) the same way.
 *
 * A state file is untrusted input: snap_parse() checks the size, magic,
 * version, checksum, every section's bounds, counts and order before
 * anyone looks at a payload, and the VM-level restore checks the shape
 * against the VM it builds before any vCPU runs.
 *
 * With a caller's key both files are sealed (snapshot_seal.h): the state
 * file is authenticated and decrypted before snap_parse() sees it, the
 * memory file decrypted into a memfd before the VM is built.
 */
#ifndef KILN_VMM_SNAPSHOT_H
#define KILN_VMM_SNAPSHOT_H

#include <assert.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/error.h"
#include "config.h"

#define SNAP_MAGIC   "KILNSNAP"
#define SNAP_VERSION 1

#define SNAP_NAME_LEN	 32
#define SNAP_MAX_MSRS	 1024
#define SNAP_MAX_DEVICES 64
/* a config, a device state: far above what ours are, far below harm */
#define SNAP_MAX_CONFIG	     (256 * 1024)
#define SNAP_MAX_DEVICE_SIZE (64 * 1024)
/* the largest file snap_parse() accepts */
#define SNAP_MAX_FILE (64ULL << 20)

enum snap_section_type {
	SNAP_SEC_CONFIG = 1,
	SNAP_SEC_VM = 2,
	SNAP_SEC_VCPU = 3,
	SNAP_SEC_DEVICE = 4,
	SNAP_SEC_VIRTIO = 5,
};

struct snap_header {
	char magic[8];	      /* SNAP_MAGIC, no NUL */
	uint32_t version;     /* SNAP_VERSION */
	uint32_t header_size; /* sizeof(struct snap_header) */
	uint64_t file_size;   /* the whole file */
	uint32_t crc32c;      /* of the whole file with this field zero */
	uint32_t nsections;
	uint32_t vcpu_count;  /* 1..VM_MAX_VCPUS */
	uint32_t mem_crc32c;  /* of the memory file's mem_size bytes */
	uint64_t mem_size;    /* guest RAM bytes = the memory file's size */
	uint64_t reserved[2]; /* zero */
};

struct snap_section {
	uint32_t type;	/* enum snap_section_type */
	uint32_t index; /* vCPU id, device order or virtio slot */
	uint64_t size;	/* payload bytes; then zero padding to 8 */
};

/* The VM-wide KVM state. */
struct snap_vm {
	struct kvm_irqchip pic_master;
	struct kvm_irqchip pic_slave;
	struct kvm_irqchip ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

#define SNAP_VCPU_XSAVE 0x1 /* xsave and xcrs hold state, else fpu does */
#define SNAP_VCPU_FLAGS SNAP_VCPU_XSAVE

/* One vCPU's KVM state; nmsrs struct kvm_msr_entry follow it. */
struct snap_vcpu {
	uint32_t id;
	uint32_t nmsrs; /* <= SNAP_MAX_MSRS */
	uint32_t flags; /* SNAP_VCPU_* */
	uint32_t tsc_khz;
	struct kvm_mp_state mp_state;
	uint32_t pad; /* zero */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	uint32_t xsave[1024]; /* struct kvm_xsave: its 4 KiB region */
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
};

static_assert(sizeof(((struct snap_vcpu *)0)->xsave) == 4096, "the xsave "
							      "region "
							      "KVM_GET_XSAVE "
							      "fills");

/* A parsed state file: pointers into the buffer given to snap_parse(). */
struct snap_blob {
	const void *data; /* any alignment: memcpy out */
	size_t size;
	uint32_t index;
};

struct snap_image {
	struct snap_header hdr;
	struct snap_blob config; /* JSON, not NUL-terminated */
	struct snap_vm vm;
	bool have_vm;
	unsigned int nvcpus;
	struct snap_blob vcpus[VM_MAX_VCPUS]; /* struct snap_vcpu + MSRs */
	unsigned int ndevices;
	struct snap_blob devices[SNAP_MAX_DEVICES]; /* name + state */
	unsigned int nvirtio;
	struct snap_blob virtio[SNAP_MAX_DEVICES]; /* index: slot */
};

/* CRC32C (Castagnoli), continuing from crc (0 to start). */
uint32_t snap_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * Check buf (a whole state file, untrusted) and index it into img: every
 * check of the file as such (size, magic, version, CRC, sections' bounds,
 * types, counts, vCPU order, the shape's limits). The config JSON and the
 * payloads' contents are for the restore to check. img points into buf.
 */
int snap_parse(const void *buf, size_t len, struct snap_image *img,
	       struct kiln_error *err);

/*
 * The config of img (vm_config_parse_json), checked against the header's
 * shape: vCPU count and memory size. cfg must be vm_config_init()ed.
 */
int snap_parse_config(const struct snap_image *img, struct vm_config *cfg,
		      struct kiln_error *err);

/* One vCPU blob: the fixed part copied into v (checked), MSRs at *msrs. */
int snap_vcpu_get(const struct snap_blob *b, struct snap_vcpu *v,
		  const void **msrs, struct kiln_error *err);

/* A growing state file, for the writer. */
struct snap_writer {
	uint8_t *buf;
	size_t len;
	size_t cap;
	uint32_t nsections;
	bool failed; /* out of memory: snap_finish says so */
};

/* Append a section; a NULL data with size > 0 reserves zeroed room. */
void *snap_add(struct snap_writer *w, uint32_t type, uint32_t index,
	       const void *data, size_t size);
/* Append a section made of two parts (a header and a payload). */
void *snap_add2(struct snap_writer *w, uint32_t type, uint32_t index,
		const void *a, size_t alen, const void *b, size_t blen);
/*
 * Fill in the header (shape, memory CRC, sizes, CRC) and hand back the
 * file: *out (malloc'd; the writer is emptied) of *outlen bytes.
 */
int snap_finish(struct snap_writer *w, uint32_t vcpu_count, uint64_t mem_size,
		uint32_t mem_crc32c, uint8_t **out, size_t *outlen,
		struct kiln_error *err);
void snap_writer_destroy(struct snap_writer *w);

/* ---- a struct vm's snapshots (snapshot_vm.c), on the VMM thread -------- */
struct vm;

/*
 * Write the state file (to a temporary name, renamed into place) and the
 * memory file (sparse: holes where RAM is zero) of vm, which must be
 * paused. diff: the memory file holds only the pages written since the
 * last snapshot (or the boot or load), at their offsets, to be copied
 * onto the base's memory file (vm->mem.dirty must be tracked; no key).
 */
struct seal_key;
int snapshot_create(struct vm *vm, const char *state_path, const char *mem_path,
		    const struct seal_key *key, bool diff,
		    struct kiln_error *err);
/*
 * Copy the pages a diff snapshot's memory file holds (its data, between
 * holes) onto the memory file of the snapshot it follows, at the same
 * offsets: base_path becomes the memory of the diff's state file, as
 * Firecracker's rebase-snap does.
 */
int snapshot_rebase(const char *base_path, const char *diff_path,
		    struct kiln_error *err);
/*
 * The state file of vm (paused) in memory, for a template: *out
 * (malloc'd), no memory checksum (the template's memfd is sealed).
 */
int snapshot_state(struct vm *vm, uint8_t **out, size_t *outlen,
		   struct kiln_error *err);
/* Read a whole state file (at most SNAP_MAX_FILE bytes) into *buf. */
int snapshot_read(const char *path, uint8_t **buf, size_t *len,
		  struct kiln_error *err);
/*
 * Read a state file for snap_parse(): as is without a key; with one, it
 * must be sealed (snapshot_seal.h) and is authenticated and decrypted
 * into *buf, its snapshot id into id (16 bytes). A sealed file without a
 * key, or a key for an unsealed file: refused.
 */
int snapshot_read_state(const char *path, const struct seal_key *key,
			uint8_t **buf, size_t *len, uint8_t id[16],
			struct kiln_error *err);
/*
 * A sealed memory file of img (snapshot id id): every chunk authenticated
 * and decrypted into a new memfd of img's RAM size, returned. Not lazy:
 * the whole file is read and decrypted here, before any VM exists.
 */
int snapshot_open_sealed_memory(const struct snap_image *img, const char *path,
				const struct seal_key *key,
				const uint8_t id[16], struct kiln_error *err);
/*
 * Open img's memory file read-only, refusing one of the wrong size or
 * whose content does not match the state file's checksum. Returns the fd.
 */
int snapshot_open_memory(const struct snap_image *img, const char *path,
			 struct kiln_error *err);
/*
 * Load img into vm, which vm_restore() has built (KVM VM, memory, vCPUs
 * not started, devices from the snapshot's config): the VM's KVM state,
 * every device, then every vCPU. Any mismatch is refused.
 */
int snapshot_restore_state(struct vm *vm, const struct snap_image *img,
			   struct kiln_error *err);

#endif
