/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest RAM: one mapping in the VMM, backed as the VM's role and the host
 * allow (guest_mem_choose, docs/memory.md): a cold boot takes anonymous
 * memory with transparent huge pages, or a hugetlbfs memfd when enough huge
 * pages are reserved, so that one host fault maps 2 MiB; a VM whose RAM
 * another process maps (vhost-user) takes an fd mapped MAP_SHARED; a
 * restored snapshot or a fork maps a file MAP_PRIVATE, copy-on-write in
 * 4 KiB pages. A template's RAM is always a memfd (guest_mem_share_fd),
 * never hugetlbfs; its runs of 2 MiB with no hole are made huge pages
 * (fork.c), which its forks map whole for reading. Every translation of a
 * guest address goes through guest_mem_ptr(), which checks the whole
 * range.
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

/* What backs guest RAM. */
enum guest_mem_backing {
	GUEST_MEM_MEMFD = 0,	/* memfd, MAP_SHARED (4 KiB, or shmem THP) */
	GUEST_MEM_HUGETLB,	/* memfd on hugetlbfs, MAP_SHARED */
	GUEST_MEM_ANON,		/* anonymous, MAP_PRIVATE: fd is -1 */
	GUEST_MEM_FILE_PRIVATE, /* a file mapped MAP_PRIVATE (private_map) */
};

/*
 * Owner: the VMM thread sets it up and tears it down; vCPUs and devices
 * only read and write guest RAM through host.
 */
struct guest_mem {
	uint8_t *host;	  /* mapping of the whole RAM */
	uint64_t size;	  /* total RAM bytes */
	int fd;		  /* the memfd or file, -1 when none (anonymous) */
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
	bool thp; /* transparent huge pages advised (MADV_HUGEPAGE) */
	/* what guest_mem_init_backed gave and why, logged once the boot is
	 * sure to go on (a bad kernel's error stays the only line) */
	char desc[256];
	enum guest_mem_backing backing;
	unsigned int nregions;
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
};

/* Create size bytes of RAM (a multiple of 4 KiB, at least 16 MiB): a
 * memfd of 4 KiB pages, whatever the host offers. */
int guest_mem_init(struct guest_mem *m, uint64_t size, struct kiln_error *err);

/* guest_mem_init_backed flags */
/*
 * Another process maps this RAM (a vhost-user back-end such as virtiofsd):
 * it must be an fd mapped MAP_SHARED (memfd or hugetlbfs memfd), never
 * anonymous memory.
 */
#define GUEST_MEM_SHARED (1U << 0)

/* THP modes, as /sys/kernel/mm/transparent_hugepage/{enabled,shmem_enabled} */
enum guest_thp_mode {
	GUEST_THP_NEVER = 0, /* never, deny, or unknown */
	GUEST_THP_ADVISE, /* madvise (enabled) or advise/within_size (shmem) */
	GUEST_THP_ALWAYS, /* always, force */
};

/* What the host offers for guest RAM; guest_mem_host_probe fills it. */
struct guest_mem_host {
	enum guest_thp_mode thp;       /* anonymous memory */
	enum guest_thp_mode shmem_thp; /* memfd (shmem) */
	bool thp_disabled;     /* prctl(PR_SET_THP_DISABLE) on this process */
	uint64_t hugetlb_free; /* bytes of free default-size hugetlb pages */
	uint64_t hugetlb_page; /* the default hugetlb page size, 0: none */
};

struct guest_mem_choice {
	enum guest_mem_backing backing; /* MEMFD, HUGETLB or ANON */
	bool thp;			/* madvise(MADV_HUGEPAGE) the mapping */
	char why[160]; /* what the VM got and why, for the log */
};

/* The mode in brackets of a THP sysfs file ("always [madvise] never"). */
enum guest_thp_mode guest_mem_thp_parse(const char *text);
/* The bytes of HugePages_Free x Hugepagesize in /proc/meminfo text. */
void guest_mem_hugetlb_parse(const char *meminfo, uint64_t *free_bytes,
			     uint64_t *page_size);
/* Read the host's THP knobs, this process's THP switch and hugetlb pool. */
void guest_mem_host_probe(struct guest_mem_host *h);
/* The backing for size bytes of RAM on host h with flags. */
void guest_mem_choose(const struct guest_mem_host *h, uint64_t size,
		      unsigned int flags, struct guest_mem_choice *c);

/* RAM of size bytes backed as c says (no fallback, no log line). */
int guest_mem_init_choice(struct guest_mem *m, uint64_t size,
			  const struct guest_mem_choice *c,
			  struct kiln_error *err);
/*
 * RAM of size bytes backed as the host allows (guest_mem_choose), with one
 * log line saying what the VM got; a huge-page backing the host then
 * refuses (quota, a race for the pool) falls back to the next one.
 */
int guest_mem_init_backed(struct guest_mem *m, uint64_t size,
			  unsigned int flags, struct kiln_error *err);

/*
 * An fd of RAM's contents for others to map MAP_PRIVATE (a template): the
 * memfd itself (dup'ed) when RAM is a 4 KiB memfd, else a new memfd of
 * 4 KiB pages holding RAM's non-zero pages (zero pages stay holes), so
 * that a fork's copy-on-write costs 4 KiB per written page. RAM must not
 * change meanwhile (a paused VM). Not for a private mapping.
 */
int guest_mem_share_fd(const struct guest_mem *m, struct kiln_error *err);
/*
 * size bytes of fd (-1 with MAP_ANONYMOUS) mapped with prot and flags at a
 * 2 MiB-aligned address, a PROT_NONE page below it; MAP_FAILED with errno.
 * Undone by guest_mem_unmap_huge(p, size).
 */
void *guest_mem_map_huge(int fd, uint64_t size, int prot, int flags);
void guest_mem_unmap_huge(void *p, uint64_t size);
/*
 * RAM of size bytes from fd (a snapshot's memory file, a template's
 * memfd), mapped MAP_PRIVATE at a 2 MiB-aligned address (a template's
 * huge pages map whole, fork_template_make): copy-on-write, fd never
 * written. Takes fd, also on failure.
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
