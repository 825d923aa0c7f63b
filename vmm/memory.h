/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest RAM: one memfd, mapped shared into the VMM, so that it can be
 * snapshotted, and mapped MAP_PRIVATE by forks. Every translation of a guest
 * address goes through guest_mem_ptr(), which checks the whole range.
 */
#ifndef KILN_VMM_MEMORY_H
#define KILN_VMM_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#include "../lib/error.h"

#define GUEST_MEM_MAX_REGIONS 2

struct guest_region {
	uint64_t gpa;	 /* guest-physical start */
	uint64_t size;	 /* bytes */
	uint64_t offset; /* offset in the memfd and in host mapping */
};

struct guest_mem {
	uint8_t *host;	  /* mapping of the whole memfd */
	uint64_t size;	  /* total RAM bytes */
	int fd;		  /* the memfd, -1 when not created */
	bool private_map; /* fd is a file mapped MAP_PRIVATE: never write it */
	/*
	 * Pages written since the last snapshot, for diff snapshots: one bit
	 * per 4 KiB page at its offset in host (NULL: not tracked). The
	 * guest's own writes are in KVM's dirty log; this holds the VMM's
	 * (device buffers, used rings, balloon, loader). Set by any thread
	 * with an atomic OR; read and cleared by the VMM thread while every
	 * vCPU is paused.
	 */
	uint64_t *dirty;
	unsigned int nregions;
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
};

/* Create size bytes of RAM (a multiple of 4 KiB, at least 16 MiB). */
int guest_mem_init(struct guest_mem *m, uint64_t size, struct kiln_error *err);
/*
 * RAM of size bytes from fd (a snapshot's memory file, a template's
 * memfd), mapped MAP_PRIVATE: copy-on-write, fd never written. Takes fd,
 * also on failure.
 */
int guest_mem_init_private(struct guest_mem *m, int fd, uint64_t size,
			   struct kiln_error *err);
void guest_mem_destroy(struct guest_mem *m);

/*
 * Host pointer for [gpa, gpa + len), or NULL if any byte of it is not RAM
 * or the range wraps. len 0 is allowed and checks only gpa. A range that
 * spans the MMIO gap is not contiguous on the host and is refused.
 */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Copy into / out of guest memory; -1 with err if the range is not RAM. */
int guest_mem_write(struct guest_mem *m, uint64_t gpa, const void *src,
		    uint64_t len, struct kiln_error *err);
int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst,
		   uint64_t len, struct kiln_error *err);

/* Start tracking written pages (m->dirty); idempotent. */
int guest_mem_track_dirty(struct guest_mem *m, struct kiln_error *err);

/* Note [host, host + len) as written, when tracking. */
static inline void guest_mem_mark_dirty(const struct guest_mem *m,
					const void *host, uint64_t len)
{
	uint64_t first, last;

	if (m->dirty == NULL || len == 0)
		return;
	first = (uint64_t)((const uint8_t *)host - m->host) / 4096;
	last = ((uint64_t)((const uint8_t *)host - m->host) + len - 1) / 4096;
	for (uint64_t pg = first; pg <= last; pg++)
		__atomic_fetch_or(&m->dirty[pg / 64], 1ULL << (pg % 64),
				  __ATOMIC_RELAXED);
}

/*
 * When tracking: note every page that may hold data as written (after
 * the loader, before any vCPU runs): the pages a memfd has, or all.
 */
void guest_mem_mark_written(struct guest_mem *m);

/* The highest guest-physical address + 1 of RAM. */
uint64_t guest_mem_end(const struct guest_mem *m);

#endif
