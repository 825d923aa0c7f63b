/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-balloon (device id 5): what other parts of the VMM (the HTTP
 * API's PATCH /balloon and GET /balloon/statistics) may call. Every
 * function takes d->lock; callable from any thread.
 */
#ifndef KILN_VMM_VIRTIO_BALLOON_H
#define KILN_VMM_VIRTIO_BALLOON_H

#include <stdint.h>

#include "../../lib/error.h"
#include "virtio.h"

struct vm;

/* statistics tags (virtio 1.x section 5.5.6.3, and Linux's later ones) */
#define BALLOON_S_SWAP_IN	 0
#define BALLOON_S_SWAP_OUT	 1
#define BALLOON_S_MAJFLT	 2
#define BALLOON_S_MINFLT	 3
#define BALLOON_S_MEMFREE	 4
#define BALLOON_S_MEMTOT	 5
#define BALLOON_S_AVAIL		 6
#define BALLOON_S_CACHES	 7
#define BALLOON_S_HTLB_PGALLOC	 8
#define BALLOON_S_HTLB_PGFAIL	 9
#define BALLOON_S_OOM_KILL	 10
#define BALLOON_S_ALLOC_STALL	 11
#define BALLOON_S_ASYNC_SCAN	 12
#define BALLOON_S_DIRECT_SCAN	 13
#define BALLOON_S_ASYNC_RECLAIM	 14
#define BALLOON_S_DIRECT_RECLAIM 15
#define BALLOON_S_NR		 16

/* A copy of the balloon's sizes and the guest's last statistics. */
struct balloon_stats {
	uint32_t target_pages; /* 4 KiB pages */
	uint32_t actual_pages;
	uint32_t target_mib;
	uint32_t actual_mib;
	uint64_t freed_bytes; /* given back to the host since boot */
	uint64_t updated_ns;  /* CLOCK_MONOTONIC of the last report, 0: none */
	uint32_t present;     /* bit tag: values[tag] was in the last report */
	uint64_t values[BALLOON_S_NR];
};

/* "swap-in", ... for a tag < BALLOON_S_NR (Firecracker's JSON names). */
const char *balloon_stat_name(unsigned int tag);

/* The balloon device of vm, or NULL when it has none. */
struct virtio_dev *balloon_lookup(struct vm *vm);

/*
 * New target size: config num_pages and a config-change interrupt. -1
 * with err (nothing changed) when larger than guest RAM.
 */
int balloon_set_target(struct virtio_dev *d, uint32_t amount_mib,
		       struct kiln_error *err);

/* The balloon size the guest reports (config actual), in MiB. */
uint32_t balloon_actual_mib(struct virtio_dev *d);

/* Sizes and last statistics; -1 with ENOTSUP when stats polling is off. */
int balloon_get_stats(struct virtio_dev *d, struct balloon_stats *out,
		      struct kiln_error *err);

/*
 * A new statistics polling interval (PATCH /balloon/statistics): only
 * while statistics are on, and not to 0 (they were enabled at boot).
 */
int balloon_set_stats_interval(struct virtio_dev *d, uint32_t seconds,
			       struct kiln_error *err);

/*
 * Ask for fresh statistics now: give the held stats buffer back to the
 * driver, which refills it. What the stats_interval_s timer does.
 */
void balloon_poll_stats(struct virtio_dev *d);

#endif
