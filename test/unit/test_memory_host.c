/* SPDX-License-Identifier: Apache-2.0 */
/* Guest RAM backings: the host's knobs parsed, the choice, a template's fd. */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../vmm/memory.h"
#include "tap.h"

#define MIB (1ULL << 20)

static void test_thp_parse(void)
{
	static const struct {
		const char *text;
		enum guest_thp_mode want;
	} cases[] = {
		{ "always [madvise] never", GUEST_THP_ADVISE },
		{ "[always] madvise never", GUEST_THP_ALWAYS },
		{ "always madvise [never]", GUEST_THP_NEVER },
		{ "always within_size advise [never] deny force",
		  GUEST_THP_NEVER },
		{ "always [within_size] advise never deny force",
		  GUEST_THP_ADVISE },
		{ "always within_size [advise] never deny force",
		  GUEST_THP_ADVISE },
		{ "always within_size advise never deny [force]",
		  GUEST_THP_ALWAYS },
		{ "always within_size advise never [deny] force",
		  GUEST_THP_NEVER },
		{ "", GUEST_THP_NEVER },
		{ "always [madvise never", GUEST_THP_NEVER },
		{ "[madvisex]", GUEST_THP_NEVER },
		{ "[]", GUEST_THP_NEVER },
		{ "[inherit] always", GUEST_THP_NEVER },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(guest_mem_thp_parse(cases[i].text), cases[i].want,
		       "THP mode of \"%.50s\"", cases[i].text);
}

static void test_hugetlb_parse(void)
{
	uint64_t nfree, page;

	guest_mem_hugetlb_parse("MemTotal: 4000000 kB\nHugePages_Total: 80\n"
				"HugePages_Free: 64\nHugePages_Rsvd: 0\n"
				"Hugepagesize: 2048 kB\n",
				&nfree, &page);
	is_int(page, 2 * MIB, "2 MiB hugetlb pages");
	is_int(nfree, 128 * MIB, "64 free pages are 128 MiB");
	guest_mem_hugetlb_parse("HugePages_Free: 2\nHugepagesize: 1048576 kB\n",
				&nfree, &page);
	is_int(page, 1024 * MIB, "1 GiB pages");
	is_int(nfree, 2048 * MIB, "2 free 1 GiB pages");
	guest_mem_hugetlb_parse("MemTotal: 4000000 kB\n", &nfree, &page);
	ok(nfree == 0 && page == 0, "no hugetlb lines: none");
	guest_mem_hugetlb_parse("HugePages_Free: 5\nHugepagesize: 3000 kB\n",
				&nfree, &page);
	ok(nfree == 0 && page == 0, "a page size not a power of two: none");
	guest_mem_hugetlb_parse("HugePages_Free: 5\nHugepagesize: 4 kB\n",
				&nfree, &page);
	ok(nfree == 0 && page == 0, "4 KiB \"huge\" pages: none");
	guest_mem_hugetlb_parse("HugePages_Free: 18446744073709551615\n"
				"Hugepagesize: 2048 kB\n",
				&nfree, &page);
	ok(nfree == 0 && page == 0, "a count that overflows: none");
}

static void test_choose(void)
{
	struct guest_mem_host h = { .thp = GUEST_THP_ADVISE };
	struct guest_mem_choice c;

	guest_mem_choose(&h, 128 * MIB, 0, &c);
	ok(c.backing == GUEST_MEM_ANON && c.thp, "THP madvise: anonymous, "
						 "advised");
	ok(strcmp(c.why, "anonymous, transparent huge pages (madvise)") == 0,
	   "why: %s", c.why);

	h.hugetlb_page = 2 * MIB;
	h.hugetlb_free = 128 * MIB;
	guest_mem_choose(&h, 128 * MIB, 0, &c);
	ok(c.backing == GUEST_MEM_HUGETLB && !c.thp, "a pool with room for all "
						     "of RAM: hugetlbfs");
	ok(strcmp(c.why, "hugetlbfs memfd, 2048 KiB pages") == 0, "why: %s",
	   c.why);
	guest_mem_choose(&h, 128 * MIB, GUEST_MEM_SHARED, &c);
	ok(c.backing == GUEST_MEM_HUGETLB, "shared RAM takes hugetlbfs too");
	guest_mem_choose(&h, 130 * MIB, 0, &c);
	ok(c.backing == GUEST_MEM_ANON && strstr(c.why, "anonymous") != NULL,
	   "a pool too small: anonymous THP (%s)", c.why);
	guest_mem_choose(&h, 127 * MIB, 0, &c);
	ok(c.backing == GUEST_MEM_ANON, "RAM not a multiple of the huge page: "
					"not hugetlbfs");

	h.thp = GUEST_THP_NEVER;
	guest_mem_choose(&h, 130 * MIB, 0, &c);
	ok(c.backing == GUEST_MEM_MEMFD && !c.thp, "THP never: a 4 KiB memfd");
	ok(strcmp(c.why, "memfd, 4 KiB pages (too few hugetlb pages free; "
			 "THP off (/sys/kernel/mm/transparent_hugepage/"
			 "enabled: never))") == 0,
	   "why: %s", c.why);

	h = (struct guest_mem_host){ .thp = GUEST_THP_ALWAYS,
				     .thp_disabled = true,
				     .shmem_thp = GUEST_THP_ADVISE };
	guest_mem_choose(&h, 128 * MIB, 0, &c);
	ok(c.backing == GUEST_MEM_MEMFD && !c.thp, "THP disabled for the "
						   "process: memfd, no shmem "
						   "THP either");
	ok(strstr(c.why, "no hugetlb pages free") != NULL &&
		   strstr(c.why, "PR_SET_THP_DISABLE") != NULL,
	   "why: %s", c.why);

	h = (struct guest_mem_host){ .thp = GUEST_THP_ALWAYS };
	guest_mem_choose(&h, 128 * MIB, GUEST_MEM_SHARED, &c);
	ok(c.backing == GUEST_MEM_MEMFD && !c.thp, "shared, shmem THP never: a "
						   "4 KiB memfd, never "
						   "anonymous");
	ok(strstr(c.why, "shared") != NULL &&
		   strstr(c.why, "shmem THP off") != NULL,
	   "why: %s", c.why);
	h.shmem_thp = GUEST_THP_ADVISE;
	guest_mem_choose(&h, 128 * MIB, GUEST_MEM_SHARED, &c);
	ok(c.backing == GUEST_MEM_MEMFD && c.thp,
	   "shared, shmem THP advise: memfd with MADV_HUGEPAGE (%s)", c.why);
	h.thp = GUEST_THP_NEVER;
	guest_mem_choose(&h, 128 * MIB, 0, &c);
	ok(c.backing == GUEST_MEM_MEMFD && c.thp, "anonymous THP never, shmem "
						  "advise: memfd with shmem "
						  "THP");
}

/* A template of anonymous RAM: a 4 KiB memfd with the same bytes, sparse. */
static void test_share_fd(void)
{
	const struct guest_mem_choice anon = { .backing = GUEST_MEM_ANON,
					       .thp = true };
	const struct guest_mem_choice memfd = { .backing = GUEST_MEM_MEMFD };
	struct kiln_error err = { 0 };
	struct guest_mem m;
	struct stat st, st2;
	uint64_t size = 32 * MIB;
	uint8_t page[4096], back[4096];
	int fd, seals;

	is_int(guest_mem_init_choice(&m, size, &anon, &err), 0,
	       "32 MiB of anonymous RAM");
	ok(m.backing == GUEST_MEM_ANON && m.fd == -1, "anonymous, no fd");
	ok(((uintptr_t)m.host & (2 * MIB - 1)) == 0, "mapped at a 2 MiB "
						     "boundary");
	memset(page, 0xa5, sizeof(page));
	/* three written pages, one read-only page, one page written zero */
	guest_mem_write(&m, 0, page, sizeof(page), &err);
	guest_mem_write(&m, 5 * MIB + 4096, page, sizeof(page), &err);
	guest_mem_write(&m, size - 4096, "x", 1, &err);
	(void)*(volatile uint8_t *)(m.host + 9 * MIB);
	memset(m.host + 12 * MIB, 0, 4096);

	fd = guest_mem_share_fd(&m, &err);
	ok(fd >= 0, "a memfd of it: %s", fd < 0 ? err.msg : "ok");
	if (fd >= 0) {
		ok(fstat(fd, &st) == 0 && (uint64_t)st.st_size == size, "its "
									"size "
									"is "
									"RAM'"
									"s");
		is_int((uint64_t)st.st_blocks * 512, 3 * 4096,
		       "only the 3 non-zero pages are allocated");
		ok(pread(fd, back, sizeof(back), 5 * MIB + 4096) ==
				   sizeof(back) &&
			   memcmp(back, page, sizeof(back)) == 0,
		   "a page's bytes at its offset");
		ok(pread(fd, back, 1, size - 4096) == 1 && back[0] == 'x', "the"
									   " la"
									   "st "
									   "pag"
									   "e");
		seals = fcntl(fd, F_GET_SEALS);
		ok(seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) ==
					 (F_SEAL_SHRINK | F_SEAL_GROW),
		   "sealed against resizing");
		close(fd);
	}
	guest_mem_destroy(&m);

	is_int(guest_mem_init_choice(&m, size, &memfd, &err), 0,
	       "32 MiB of memfd RAM");
	fd = guest_mem_share_fd(&m, &err);
	ok(fd >= 0 && fd != m.fd && fstat(fd, &st) == 0 &&
		   fstat(m.fd, &st2) == 0 && st.st_ino == st2.st_ino,
	   "a memfd's RAM is shared as itself (dup)");
	if (fd >= 0)
		close(fd);
	fd = dup(m.fd);
	guest_mem_destroy(&m);

	is_int(guest_mem_init_private(&m, fd, size, &err), 0,
	       "that memfd mapped private");
	ok(m.backing == GUEST_MEM_FILE_PRIVATE && m.private_map, "a private "
								 "file "
								 "mapping");
	is_int(guest_mem_share_fd(&m, &err), -1, "is not shared");
	guest_mem_destroy(&m);
}

int main(void)
{
	test_thp_parse();
	test_hugetlb_parse();
	test_choose();
	test_share_fd();
	return tap_done();
}
