/* SPDX-License-Identifier: Apache-2.0 */
#include "memory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layout.h"

#define GUEST_MEM_MIN (16ULL << 20)
#define GUEST_PAGE    4096ULL

static void guest_mem_layout(struct guest_mem *m);

int guest_mem_init(struct guest_mem *m, uint64_t size, struct kiln_error *err)
{
	void *p;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (size < GUEST_MEM_MIN || size % GUEST_PAGE != 0)
		return kiln_error_set(err, EINVAL,
				      "guest memory of %llu bytes: must be a "
				      "multiple of 4 KiB and at least 16 MiB",
				      (unsigned long long)size);
	m->fd = memfd_create("kiln-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (m->fd < 0)
		return kiln_error_set(err, errno, "memfd_create");
	if (ftruncate(m->fd, (off_t)size) < 0) {
		kiln_error_set(err, errno, "size guest memory to %llu MiB",
			       (unsigned long long)(size >> 20));
		goto fail;
	}
	/* the size is fixed from here on: a shrink would fault the VMM */
	if (fcntl(m->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		kiln_error_set(err, errno, "seal guest memory");
		goto fail;
	}
	/*
	 * MAP_NORESERVE: RAM is populated on first touch, so a VM costs the
	 * host only what the guest uses.
	 */
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		 m->fd, 0);
	if (p == MAP_FAILED) {
		kiln_error_set(err, errno, "map %llu MiB of guest memory",
			       (unsigned long long)(size >> 20));
		goto fail;
	}
	madvise(p, size, MADV_DONTDUMP);
	m->host = p;
	m->size = size;
	guest_mem_layout(m);
	return 0;
fail:
	close(m->fd);
	m->fd = -1;
	return -1;
}

int guest_mem_init_private(struct guest_mem *m, int fd, uint64_t size,
			   struct kiln_error *err)
{
	void *p;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (size < GUEST_MEM_MIN || size % GUEST_PAGE != 0) {
		close(fd);
		return kiln_error_set(err, EINVAL,
				      "guest memory of %llu bytes: must be a "
				      "multiple of 4 KiB and at least 16 MiB",
				      (unsigned long long)size);
	}
	/*
	 * MAP_PRIVATE: pages are read from fd on first touch and copied on
	 * first write; fd is never written, so a template (or a snapshot's
	 * memory file) serves any number of VMs.
	 */
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_NORESERVE, fd, 0);
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
	if (m->host != NULL)
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
