/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which backing guest RAM gets (memory.h): what the host offers, read from
 * sysfs and procfs, and the choice. Huge pages matter because each host
 * page the guest touches first costs a nested page fault exit: a 2 MiB
 * page takes one where 4 KiB pages take 512 (docs/memory.md has the
 * counts). The order:
 *
 *   1. hugetlbfs memfd, when the default pool has free pages for all of
 *      RAM (an administrator reserved them: vm.nr_hugepages);
 *   2. RAM shared with another process (GUEST_MEM_SHARED): a memfd, with
 *      MADV_HUGEPAGE when shmem_enabled allows it;
 *   3. anonymous memory with MADV_HUGEPAGE, when THP is "always" or
 *      "madvise" and not switched off for this process (PR_SET_THP_DISABLE);
 *   4. a memfd (4 KiB pages, or shmem THP when shmem_enabled allows).
 *
 * Everything here runs on the VMM thread, before the VM exists.
 */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "../lib/log.h"
#include "memory.h"

#define THP_ENABLED "/sys/kernel/mm/transparent_hugepage/enabled"
#define THP_SHMEM   "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

enum guest_thp_mode guest_mem_thp_parse(const char *text)
{
	static const struct {
		const char *name;
		enum guest_thp_mode mode;
	} modes[] = {
		{ "always", GUEST_THP_ALWAYS },
		{ "force", GUEST_THP_ALWAYS },
		{ "madvise", GUEST_THP_ADVISE },
		{ "advise", GUEST_THP_ADVISE },
		{ "within_size", GUEST_THP_ADVISE },
	};
	const char *open = strchr(text, '['), *close;
	size_t len;

	if (open == NULL || (close = strchr(open, ']')) == NULL)
		return GUEST_THP_NEVER;
	len = (size_t)(close - open - 1);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strlen(modes[i].name) == len &&
		    strncmp(open + 1, modes[i].name, len) == 0)
			return modes[i].mode;
	return GUEST_THP_NEVER; /* never, deny, anything new */
}

void guest_mem_hugetlb_parse(const char *meminfo, uint64_t *free_bytes,
			     uint64_t *page_size)
{
	unsigned long long nfree = 0, kib = 0;
	const char *p;

	if ((p = strstr(meminfo, "HugePages_Free:")) != NULL)
		sscanf(p, "HugePages_Free: %llu", &nfree);
	if ((p = strstr(meminfo, "Hugepagesize:")) != NULL)
		sscanf(p, "Hugepagesize: %llu kB", &kib);
	/* a page size that is not a power of two of at least 2 MiB: none */
	if (kib < 2048 || (kib & (kib - 1)) != 0 || kib > (1ULL << 30) ||
	    nfree > (UINT64_MAX >> 10) / kib) {
		*free_bytes = *page_size = 0;
		return;
	}
	*page_size = kib << 10;
	*free_bytes = nfree * (kib << 10);
}

/* The first len - 1 bytes of path, NUL-terminated; "" when unreadable. */
static void read_text(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n = 0;

	if (f != NULL) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

void guest_mem_host_probe(struct guest_mem_host *h)
{
	char buf[4096];

	memset(h, 0, sizeof(*h));
	read_text(THP_ENABLED, buf, sizeof(buf));
	h->thp = guest_mem_thp_parse(buf);
	read_text(THP_SHMEM, buf, sizeof(buf));
	h->shmem_thp = guest_mem_thp_parse(buf);
	h->thp_disabled = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) > 0;
	read_text("/proc/meminfo", buf, sizeof(buf));
	guest_mem_hugetlb_parse(buf, &h->hugetlb_free, &h->hugetlb_page);
}

static const char *thp_off_why(const struct guest_mem_host *h)
{
	if (h->thp_disabled)
		return "THP disabled for this process (PR_SET_THP_DISABLE)";
	return "THP off (" THP_ENABLED ": never)";
}

void guest_mem_choose(const struct guest_mem_host *h, uint64_t size,
		      unsigned int flags, struct guest_mem_choice *c)
{
	bool shmem_thp = h->shmem_thp != GUEST_THP_NEVER && !h->thp_disabled;
	const char *pool;

	memset(c, 0, sizeof(*c));
	if (h->hugetlb_page != 0 && size % h->hugetlb_page == 0 &&
	    h->hugetlb_free >= size) {
		c->backing = GUEST_MEM_HUGETLB;
		snprintf(c->why, sizeof(c->why),
			 "hugetlbfs memfd, %llu KiB pages",
			 (unsigned long long)(h->hugetlb_page >> 10));
		return;
	}
	pool = h->hugetlb_page == 0 || h->hugetlb_free == 0 ? "no hugetlb "
							      "pages free"
							    : "too few hugetlb "
							      "pages free";
	if ((flags & GUEST_MEM_SHARED) || h->thp == GUEST_THP_NEVER ||
	    h->thp_disabled) {
		c->backing = GUEST_MEM_MEMFD;
		c->thp = shmem_thp;
		if (shmem_thp)
			snprintf(c->why, sizeof(c->why),
				 "memfd, transparent huge pages (shmem)%s",
				 flags & GUEST_MEM_SHARED ? ", shared" : "");
		else
			snprintf(c->why, sizeof(c->why),
				 "memfd, 4 KiB pages%s (%s; %s)",
				 flags & GUEST_MEM_SHARED ? ", shared" : "",
				 pool,
				 flags & GUEST_MEM_SHARED ? "shmem THP off "
							    "(" THP_SHMEM ")"
							  : thp_off_why(h));
		return;
	}
	c->backing = GUEST_MEM_ANON;
	c->thp = true;
	snprintf(c->why, sizeof(c->why),
		 "anonymous, transparent huge pages (%s)",
		 h->thp == GUEST_THP_ALWAYS ? "always" : "madvise");
}

int guest_mem_init_backed(struct guest_mem *m, uint64_t size,
			  unsigned int flags, struct kiln_error *err)
{
	struct guest_mem_host h;
	struct guest_mem_choice c;

	guest_mem_host_probe(&h);
	guest_mem_choose(&h, size, flags, &c);
	if (guest_mem_init_choice(m, size, &c, err) < 0) {
		if (c.backing != GUEST_MEM_HUGETLB)
			return -1;
		/* a quota, or another process took the pool: next best */
		log_warn("guest memory: hugetlb pages refused (%s); falling "
			 "back",
			 err->msg);
		h.hugetlb_free = 0;
		guest_mem_choose(&h, size, flags, &c);
		if (guest_mem_init_choice(m, size, &c, err) < 0)
			return -1;
	}
	if (c.thp && !m->thp)
		snprintf(m->desc, sizeof(m->desc),
			 "%llu MiB, %s; but MADV_HUGEPAGE was refused: 4 KiB "
			 "pages",
			 (unsigned long long)(size >> 20), c.why);
	else
		snprintf(m->desc, sizeof(m->desc), "%llu MiB, %s",
			 (unsigned long long)(size >> 20), c.why);
	return 0;
}
