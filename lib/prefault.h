/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A template's prefault list: the pages of guest RAM its forks go on to
 * write, copied by each fork before its vCPUs run (kiln-vmm
 * --fork-prefault, vmm/fork.c) instead of one nested page fault or more
 * each. The runtime records it once per template, from the template's
 * first fork, up to the moment its container is created, before any of
 * the container's code runs (runtime/template.c); docs/memory.md.
 *
 * The file: PREFAULT_MAGIC (8 bytes), then page indexes (the page's
 * offset in guest RAM / 4 KiB) as little-endian uint32, strictly
 * ascending, at most PREFAULT_MAX_PAGES of them. Only page numbers: no
 * byte of any guest's memory is in it.
 */
#ifndef KILN_PREFAULT_H
#define KILN_PREFAULT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define PREFAULT_MAGIC	   "KILNPF01"
#define PREFAULT_MAGIC_LEN 8
/* 16 MiB copied at most per fork */
#define PREFAULT_MAX_PAGES 4096
#define PREFAULT_FILE_MAX  (PREFAULT_MAGIC_LEN + 4 * PREFAULT_MAX_PAGES)

/*
 * Writing a list into a buffer of PREFAULT_FILE_MAX bytes: its magic
 * first (returns its length), then each page index, ascending, after the
 * len bytes so far (returns the new length; at most PREFAULT_MAX_PAGES).
 */
size_t prefault_begin(uint8_t *buf);
size_t prefault_add(uint8_t *buf, size_t len, uint32_t page);

/*
 * Check the list of len bytes at buf: its page indexes into *pages
 * (malloc'd, *n of them; NULL and 0 for an empty list), or -1 with err.
 */
int prefault_parse(const void *buf, size_t len, uint32_t **pages, size_t *n,
		   struct kiln_error *err);

#endif
