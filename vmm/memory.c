/* SPDX-License-Identifier: Apache-2.0 */
#include "memory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "layout.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA	     0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

#define GUEST_MEM_MIN (16ULL << 20)
#define GUEST_PAGE    4096ULL
#define GUEST_HUGE    (2ULL << 20)
/* a template's copy is written in runs of at most this */
#define GUEST_COPY_RUN (1ULL << 20)

static void guest_mem_layout(struct guest_mem *m);

static int guest_mem_check_size(uint64_t size, struct kiln_error *err)
{
	if (size < GUEST_MEM_MIN || size % GUEST_PAGE != 0)
		return kiln_error_set(err, EINVAL,
				      "guest memory of %llu bytes: must be a "
				      "multiple of 4 KiB and at least 16 MiB",
				      (unsigned long long)size);
	return 0;
}

/* A sealed memfd of size bytes; hugetlb: on hugetlbfs. */
static int guest_memfd(uint64_t size, bool hugetlb, struct kiln_error *err)
{
	unsigned int flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
	int fd;

	if (hugetlb)
		flags |= MFD_HUGETLB;
	fd = memfd_create("kiln-guest-ram", flags);
	if (fd < 0)
		return kiln_error_set(err, errno, "memfd_create%s",
				      hugetlb ? " (hugetlb)" : "");
	if (ftruncate(fd, (off_t)size) < 0) {
		kiln_error_set(err, errno, "size guest memory to %llu MiB",
			       (unsigned long long)(size >> 20));
		close(fd);
		return -1;
	}
	/* the size is fixed from here on: a shrink would fault the VMM */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		kiln_error_set(err, errno, "seal guest memory");
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * size bytes of fd (anonymous with -1) mapped with prot and flags at a
 * 2 MiB-aligned address: a huge page maps only where host and guest
 * addresses agree in their low 21 bits, and guest RAM starts at
 * guest-physical 0 (a template's huge pages too, fork_template_make). One
 * PROT_NONE page is kept just below it: the next mapping the kernel places
 * below RAM (a thread's stack) then does not end at a 2 MiB boundary,
 * where THP "always" would give the top of that stack a 2 MiB page
 * (measured: +2 MiB of VMM RSS). Unmapped with guest_mem_unmap_huge.
 */
void *guest_mem_map_huge(int fd, uint64_t size, int prot, int flags)
{
	uint64_t span = size + GUEST_HUGE + GUEST_PAGE, head;
	uint8_t *p = mmap(NULL, span, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return p;
	/* RAM at the first 2 MiB boundary at least one page in */
	head = (GUEST_HUGE - ((uintptr_t)(p + GUEST_PAGE) & (GUEST_HUGE - 1))) &
	       (GUEST_HUGE - 1);
	head += GUEST_PAGE;
	if (mmap(p + head, size, prot, flags | MAP_FIXED, fd, 0) ==
	    MAP_FAILED) {
		int e = errno;

		munmap(p, span);
		errno = e;
		return MAP_FAILED;
	}
	if (head > GUEST_PAGE)
		munmap(p, head - GUEST_PAGE);
	munmap(p + head + size, span - head - size);
	return p + head;
}

void guest_mem_unmap_huge(void *p, uint64_t size)
{
	munmap((uint8_t *)p - GUEST_PAGE, size + GUEST_PAGE);
}

int guest_mem_init_choice(struct guest_mem *m, uint64_t size,
			  const struct guest_mem_choice *c,
			  struct kiln_error *err)
{
	void *p;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (guest_mem_check_size(size, err) < 0)
		return -1;
	if (c->backing == GUEST_MEM_ANON) {
		p = guest_mem_map_huge(-1, size, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS |
					       MAP_NORESERVE);
	} else {
		m->fd = guest_memfd(size, c->backing == GUEST_MEM_HUGETLB, err);
		if (m->fd < 0)
			return -1;
		/*
		 * MAP_NORESERVE: RAM is populated on first touch, so a VM
		 * costs the host only what the guest uses. Not for hugetlb:
		 * there the mmap reserves the pages, so a pool that is too
		 * small fails here, not with a SIGBUS in the guest's fault.
		 */
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | (c->backing == GUEST_MEM_HUGETLB
					       ? 0
					       : MAP_NORESERVE),
			 m->fd, 0);
	}
	if (p == MAP_FAILED) {
		kiln_error_set(err, errno, "map %llu MiB of guest memory",
			       (unsigned long long)(size >> 20));
		if (m->fd >= 0)
			close(m->fd);
		m->fd = -1;
		return -1;
	}
	madvise(p, size, MADV_DONTDUMP);
	/* THP for this mapping only; refused where THP is not built in */
	if (c->thp && madvise(p, size, MADV_HUGEPAGE) == 0)
		m->thp = true;
	if (c->backing == GUEST_MEM_ANON)
		/* "[anon:kiln-guest-ram]" in smaps; kernels without it: no name */
		prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p,
		      (unsigned long)size, (unsigned long)"kiln-guest-ram");
	m->host = p;
	m->size = size;
	m->backing = c->backing;
	guest_mem_layout(m);
	return 0;
}

int guest_mem_init(struct guest_mem *m, uint64_t size, struct kiln_error *err)
{
	const struct guest_mem_choice c = { .backing = GUEST_MEM_MEMFD };

	return guest_mem_init_choice(m, size, &c, err);
}

int guest_mem_init_private(struct guest_mem *m, int fd, uint64_t size,
			   struct kiln_error *err)
{
	void *p;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (guest_mem_check_size(size, err) < 0) {
		close(fd);
		return -1;
	}
	/*
	 * MAP_PRIVATE: pages are read from fd on first touch and copied on
	 * first write; fd is never written, so a template (or a snapshot's
	 * memory file) serves any number of VMs.
	 */
	p = guest_mem_map_huge(fd, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_NORESERVE);
	if (p == MAP_FAILED) {
		kiln_error_set(err, errno, "map %llu MiB of guest memory",
			       (unsigned long long)(size >> 20));
		close(fd);
		return -1;
	}
	madvise(p, size, MADV_DONTDUMP);
	m->fd = fd;
	m->host = p;
	m->size = size;
	m->private_map = true;
	m->backing = GUEST_MEM_FILE_PRIVATE;
	guest_mem_layout(m);
	return 0;
}

/* The guest-physical layout of m->size bytes: RAM below and above the gap. */
static void guest_mem_layout(struct guest_mem *m)
{
	uint64_t size = m->size, low;

	low = size < LAYOUT_MMIO_GAP ? size : LAYOUT_MMIO_GAP;
	m->regions[0] =
		(struct guest_region){ .gpa = 0, .size = low, .offset = 0 };
	m->nregions = 1;
	if (size > low) {
		m->regions[1] = (struct guest_region){
			.gpa = LAYOUT_MMIO_GAP_END,
			.size = size - low,
			.offset = low,
		};
		m->nregions = 2;
	}
}

void guest_mem_destroy(struct guest_mem *m)
{
	if (m->host != NULL && (m->backing == GUEST_MEM_ANON ||
				m->backing == GUEST_MEM_FILE_PRIVATE))
		guest_mem_unmap_huge(m->host, m->size);
	else if (m->host != NULL)
		munmap(m->host, m->size);
	if (m->fd >= 0)
		close(m->fd);
	free(m->dirty);
	m->dirty = NULL;
	m->host = NULL;
	m->fd = -1;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t end;

	/* guest-controlled: gpa and len come from descriptors and registers */
	if (__builtin_add_overflow(gpa, len, &end))
		return NULL;
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct guest_region *r = &m->regions[i];

		if (gpa >= r->gpa && gpa < r->gpa + r->size &&
		    end <= r->gpa + r->size)
			return m->host + r->offset + (gpa - r->gpa);
	}
	return NULL;
}

int guest_mem_write(struct guest_mem *m, uint64_t gpa, const void *src,
		    uint64_t len, struct kiln_error *err)
{
	void *p = guest_mem_ptr(m, gpa, len);

	if (p == NULL)
		return kiln_error_set(err, EFAULT,
				      "guest range 0x%llx+0x%llx is not RAM",
				      (unsigned long long)gpa,
				      (unsigned long long)len);
	memcpy(p, src, len);
	guest_mem_mark_dirty(m, p, len);
	return 0;
}

int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst,
		   uint64_t len, struct kiln_error *err)
{
	const void *p = guest_mem_ptr(m, gpa, len);

	if (p == NULL)
		return kiln_error_set(err, EFAULT,
				      "guest range 0x%llx+0x%llx is not RAM",
				      (unsigned long long)gpa,
				      (unsigned long long)len);
	memcpy(dst, p, len);
	return 0;
}

uint64_t guest_mem_end(const struct guest_mem *m)
{
	const struct guest_region *r = &m->regions[m->nregions - 1];

	return r->gpa + r->size;
}

int guest_mem_track_dirty(struct guest_mem *m, struct kiln_error *err)
{
	uint64_t pages = m->size / GUEST_PAGE;

	if (m->dirty != NULL)
		return 0;
	m->dirty = calloc((pages + 63) / 64, sizeof(uint64_t));
	if (m->dirty == NULL)
		return kiln_error_set(err, ENOMEM, "dirty page bitmap");
	return 0;
}

void guest_mem_mark_written(struct guest_mem *m)
{
	uint64_t off = 0;

	if (m->dirty == NULL)
		return;
	if (m->backing == GUEST_MEM_ANON) {
		/* anonymous RAM never touched is not resident, and zero */
		for (uint64_t base = 0; base < m->size;
		     base += GUEST_COPY_RUN) {
			unsigned char vec[GUEST_COPY_RUN / GUEST_PAGE];
			uint64_t len = m->size - base < GUEST_COPY_RUN
					       ? m->size - base
					       : GUEST_COPY_RUN;

			if (mincore(m->host + base, len, vec) < 0) {
				guest_mem_mark_dirty(m, m->host + base, len);
				continue;
			}
			for (uint64_t i = 0; i < len / GUEST_PAGE; i++)
				if (vec[i] & 1)
					guest_mem_mark_dirty(
						m,
						m->host + base + i * GUEST_PAGE,
						GUEST_PAGE);
		}
		return;
	}
	if (m->fd < 0 || m->private_map) {
		guest_mem_mark_dirty(m, m->host, m->size);
		return;
	}
	while (off < m->size) {
		off_t d = lseek(m->fd, (off_t)off, SEEK_DATA), h;

		if (d < 0 && errno != ENXIO) {
			/* no map of the file: take all the rest */
			guest_mem_mark_dirty(m, m->host + off, m->size - off);
			break;
		}
		if (d < 0 || (uint64_t)d >= m->size)
			break;
		h = lseek(m->fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > m->size)
			h = (off_t)m->size;
		guest_mem_mark_dirty(m, m->host + d, (uint64_t)(h - d));
		off = (uint64_t)h;
	}
}

/* Not lib/util's: the fuzz targets link this file with little else. */
static int guest_pwrite_all(int fd, const uint8_t *buf, uint64_t len,
			    uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static bool guest_page_zero(const uint8_t *p)
{
	static const uint8_t zeros[GUEST_PAGE];

	return memcmp(p, zeros, GUEST_PAGE) == 0;
}

/* RAM's non-zero pages into fd, at their offsets; pages mincore says are
 * not resident are zero (anonymous, hugetlb) and not read. */
static int guest_mem_copy(const struct guest_mem *m, int fd)
{
	unsigned char vec[GUEST_COPY_RUN / GUEST_PAGE];

	for (uint64_t base = 0; base < m->size; base += GUEST_COPY_RUN) {
		uint64_t len = m->size - base < GUEST_COPY_RUN ? m->size - base
							       : GUEST_COPY_RUN;
		uint64_t n = len / GUEST_PAGE, i = 0;

		if (mincore(m->host + base, len, vec) < 0)
			memset(vec, 1, sizeof(vec));
		while (i < n) {
			uint64_t run;

			if (!(vec[i] & 1) ||
			    guest_page_zero(m->host + base + i * GUEST_PAGE)) {
				i++;
				continue;
			}
			for (run = i + 1; run < n && (vec[run] & 1) &&
					  !guest_page_zero(m->host + base +
							   run * GUEST_PAGE);
			     run++)
				;
			if (guest_pwrite_all(fd,
					     m->host + base + i * GUEST_PAGE,
					     (run - i) * GUEST_PAGE,
					     base + i * GUEST_PAGE) < 0)
				return -1;
			i = run;
		}
	}
	return 0;
}

int guest_mem_share_fd(const struct guest_mem *m, struct kiln_error *err)
{
	cleanup_close int fd = -1;

	if (m->private_map || m->host == NULL)
		return kiln_error_set(err, EINVAL,
				      "RAM mapped private from a file cannot "
				      "be shared");
	if (m->backing == GUEST_MEM_MEMFD) {
		fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return kiln_error_set(err, errno, "dup the RAM memfd");
		return steal_fd(&fd);
	}
	fd = guest_memfd(m->size, false, err);
	if (fd < 0)
		return -1;
	if (guest_mem_copy(m, fd) < 0)
		return kiln_error_set(err, errno,
				      "copy %llu MiB of RAM into a memfd",
				      (unsigned long long)(m->size >> 20));
	return steal_fd(&fd);
}
