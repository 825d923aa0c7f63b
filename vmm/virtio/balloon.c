/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-balloon (device id 5, virtio 1.x section 5.5), enabled by the
 * "balloon" config key (Firecracker's PUT /balloon).
 *
 * Queues. inflate (0) and deflate (1) carry arrays of 4 KiB page frame
 * numbers; then, only when negotiated and in this order, stats and
 * reporting. Linux's virtio_mmio numbers only the queues it sets up (a
 * queue whose feature was not negotiated takes no index), so the role of
 * queue 2 and 3 follows the negotiated features, not a fixed table.
 *
 * Freeing. Guest RAM may be a memfd mapped MAP_SHARED (memory.h): a page
 * given back (inflated, or in a free page report) is freed on the host by
 * punching a hole in the memfd at that page's file offset, which unmaps it
 * from the VMM and from KVM (mmu notifiers); a later guest access faults in
 * a zero page. Contiguous pages go to one fallocate(). Deflating needs
 * nothing. A VM whose RAM is mapped MAP_PRIVATE over a file (a restored
 * snapshot, a fork) must not punch the file, which other VMs may map:
 * its private copy of the page is dropped with MADV_DONTNEED instead, as
 * is a page of anonymous RAM (a cold boot's, with transparent huge pages:
 * the huge page is split). hugetlbfs RAM gives nothing back (it punches
 * only whole huge pages).
 *
 * Statistics. The driver posts one stats buffer; the device keeps it and
 * gives it back every stats_interval_s seconds (a timerfd on the event
 * loop), and the driver answers with the same buffer refilled
 * (section 5.5.6.3). The last values are kept for the API.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "../device.h"
#include "../metrics.h"
#include "../vm.h"
#include "balloon.h"
#include "iov.h"
#include "mmio.h"
#include "virtio.h"

/* feature bits (section 5.5.3) */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ	1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3
#define VIRTIO_BALLOON_F_PAGE_POISON	4
#define VIRTIO_BALLOON_F_REPORTING	5

#define BALLOON_PAGE	      4096ULL
#define BALLOON_PAGES_PER_MIB 256U
#define BALLOON_QUEUE_SIZE    256
/*
 * Most PFNs read from one inflate buffer (Linux sends at most 256) and
 * most bytes freed for one report chain (Linux reports 32 ranges of at
 * most 4 MiB): a guest cannot make one buffer cost more than this.
 */
#define BALLOON_PFNS_MAX      4096U
#define BALLOON_REPORT_MAX    (1ULL << 30)
#define BALLOON_PFN_BATCH     256U
#define BALLOON_STAT_BYTES    10 /* le16 tag, le64 value, packed */
#define BALLOON_STATS_MAX     64 /* entries read from one stats buffer */
#define BALLOON_STATE_VERSION 1

enum balloon_role {
	ROLE_INFLATE,
	ROLE_DEFLATE,
	ROLE_STATS,
	ROLE_REPORTING,
	ROLE_NONE,
};

/* struct virtio_balloon_config (section 5.5.4) */
struct balloon_config {
	uint32_t num_pages; /* target, written by the device */
	uint32_t actual;    /* written by the driver */
	uint32_t free_page_hint_cmd_id;
	uint32_t poison_val;
};

_Static_assert(sizeof(struct balloon_config) == 16, "balloon config layout");

struct balloon {
	struct virtio_dev dev; /* first: the VMM_DEVICE state is &dev */
	struct virtio_ops ops; /* balloon_ops with this VM's features/queues */
	struct vm *vm;
	int timer_fd; /* stats polling, -1 without an event loop */
	struct evloop_entry *timer_ev; /* timer_fd in vm->loop */

	/* all below under dev.lock */
	uint32_t target_pages;
	uint32_t actual_pages; /* guest-controlled */
	uint32_t stats_interval_s;
	bool stats_held; /* the driver's stats buffer is with us */
	uint16_t stats_head;
	uint64_t freed_bytes;
	uint64_t stats_ns;
	uint32_t stats_present;
	uint64_t stats[BALLOON_S_NR];
	/* a run of memfd offsets waiting for one fallocate() */
	uint64_t run_off, run_len;
	struct virtq_chain chain; /* scratch */
};

/* The snapshot of a balloon (Firecracker's persist.rs shape). */
struct balloon_state {
	uint32_t version;  /* BALLOON_STATE_VERSION */
	uint32_t reserved; /* zero */
	uint64_t features; /* the device features offered */
	uint32_t target_pages;
	uint32_t actual_pages;
	uint32_t stats_interval_s;
	uint16_t stats_head;
	uint8_t stats_held;
	uint8_t pad; /* zero */
};

static const char *const stat_names[BALLOON_S_NR] = {
	"swap-in",	    "swap-out",	    "major-faults",
	"minor-faults",	    "free-memory",  "total-memory",
	"available-memory", "disk-caches",  "hugetlb-allocations",
	"hugetlb-failures", "oom-kills",    "alloc-stalls",
	"async-scans",	    "direct-scans", "async-reclaims",
	"direct-reclaims",
};

const char *balloon_stat_name(unsigned int tag)
{
	return tag < BALLOON_S_NR ? stat_names[tag] : NULL;
}

static enum balloon_role balloon_role(const struct virtio_dev *d,
				      unsigned int queue)
{
	unsigned int i = 2;

	if (queue < 2)
		return queue == 0 ? ROLE_INFLATE : ROLE_DEFLATE;
	if (virtio_dev_has(d, VIRTIO_BALLOON_F_STATS_VQ) && queue == i++)
		return ROLE_STATS;
	if (virtio_dev_has(d, VIRTIO_BALLOON_F_REPORTING) && queue == i)
		return ROLE_REPORTING;
	return ROLE_NONE;
}

/* ---- giving memory back ---- */

static void balloon_flush(struct balloon *b)
{
	const struct guest_mem *m = b->dev.mem;

	if (b->run_len == 0)
		return;
	/* freed or not, the pages may read differently: a diff takes them */
	guest_mem_mark_dirty(m, m->host + b->run_off, b->run_len);
	if (m->private_map || m->backing == GUEST_MEM_ANON) {
		/*
		 * RAM is a private copy of a file another VM may use (a
		 * snapshot's memory, a fork's template): punching the file
		 * would take the page from under all of them. Dropping our
		 * copy frees it; a later access reads the file's page again.
		 * Anonymous RAM (memory.h) is freed the same way; a huge
		 * page it splits is freed 4 KiB at a time.
		 */
		if (madvise(m->host + b->run_off, b->run_len, MADV_DONTNEED) <
		    0) {
			if (log_ratelimit())
				log_warn("virtio-balloon: drop %llu bytes at "
					 "%llu: %s",
					 (unsigned long long)b->run_len,
					 (unsigned long long)b->run_off,
					 strerror(errno));
		} else {
			b->freed_bytes += b->run_len;
		}
	} else if (m->fd < 0 || m->backing == GUEST_MEM_HUGETLB) {
		/* hugetlbfs punches only whole huge pages: nothing freed */
		if (log_ratelimit())
			log_debug("virtio-balloon: RAM is not a file or "
				  "is hugetlbfs, %llu bytes not freed",
				  (unsigned long long)b->run_len);
	} else if (fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			     (off_t)b->run_off, (off_t)b->run_len) < 0) {
		if (log_ratelimit())
			log_warn("virtio-balloon: punch %llu bytes at %llu: %s",
				 (unsigned long long)b->run_len,
				 (unsigned long long)b->run_off,
				 strerror(errno));
	} else {
		b->freed_bytes += b->run_len;
	}
	b->run_len = 0;
}

/* Free the RAM at host pointer p, len bytes (checked RAM), coalescing. */
static void balloon_free(struct balloon *b, const uint8_t *p, uint64_t len)
{
	uint64_t off = (uint64_t)(p - b->dev.mem->host);

	/* memory.h: the host mapping and the memfd share their offsets */
	if (b->run_len > 0 && b->run_off + b->run_len == off) {
		b->run_len += len;
		return;
	}
	balloon_flush(b);
	b->run_off = off;
	b->run_len = len;
}

static int pfn_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* An inflate buffer: free every page it names. */
static void balloon_inflate(struct balloon *b, const struct virtq_chain *c)
{
	/* guest-controlled: the count comes from the readable length only */
	uint32_t n = c->read_len / 4, bad = 0;
	uint32_t pfns[BALLOON_PFN_BATCH];

	if (n > BALLOON_PFNS_MAX) {
		if (log_ratelimit())
			log_warn("virtio-balloon: inflate buffer of %u pages, "
				 "only the first %u are freed",
				 n, BALLOON_PFNS_MAX);
		n = BALLOON_PFNS_MAX;
	}
	for (uint32_t done = 0; done < n;) {
		uint32_t k = n - done < BALLOON_PFN_BATCH ? n - done
							  : BALLOON_PFN_BATCH;

		virtq_chain_read(c, (uint64_t)done * 4, pfns, (size_t)k * 4);
		/* Linux hands out pages in no useful order: sort to coalesce */
		qsort(pfns, k, sizeof(pfns[0]), pfn_cmp);
		for (uint32_t i = 0; i < k; i++) {
			/* guest-controlled: the PFN may name anything */
			uint8_t *p = guest_mem_ptr(
				b->dev.mem, (uint64_t)pfns[i] * BALLOON_PAGE,
				BALLOON_PAGE);

			if (p == NULL) {
				bad++;
				continue;
			}
			if (i > 0 && pfns[i] == pfns[i - 1])
				continue;
			balloon_free(b, p, BALLOON_PAGE);
		}
		done += k;
	}
	balloon_flush(b);
	if (bad > 0 && log_ratelimit())
		log_warn("virtio-balloon: %u inflated PFNs outside RAM ignored",
			 bad);
}

/* A free page report: each segment is a free range (any direction). */
static void balloon_report(struct balloon *b, const struct virtq_chain *c)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < c->nread + c->nwrite; i++) {
		/* guest-controlled: a checked RAM range, of any alignment */
		uintptr_t s = (uintptr_t)c->iov[i].iov_base;
		uintptr_t e = s + c->iov[i].iov_len;
		uintptr_t host = (uintptr_t)b->dev.mem->host;

		/* only whole pages: the rest of a page may be in use */
		s = host +
		    ((s - host + BALLOON_PAGE - 1) & ~(BALLOON_PAGE - 1));
		e = host + ((e - host) & ~(BALLOON_PAGE - 1));
		if (e <= s)
			continue;
		if (total + (e - s) > BALLOON_REPORT_MAX) {
			if (log_ratelimit())
				log_warn(
					"virtio-balloon: report larger than "
					"%llu bytes cut",
					(unsigned long long)BALLOON_REPORT_MAX);
			break;
		}
		total += e - s;
		balloon_free(b, (const uint8_t *)s, e - s);
	}
	balloon_flush(b);
}

/* ---- statistics ---- */

static void balloon_stats_parse(struct balloon *b, const struct virtq_chain *c)
{
	/* guest-controlled: whole 10-byte entries, at most BALLOON_STATS_MAX */
	uint32_t n = c->read_len / BALLOON_STAT_BYTES;
	char line[1024];
	size_t o = 0;

	metrics_inc(&metrics_balloon, BALLOON_M_STATS_UPDATES);
	if (c->read_len % BALLOON_STAT_BYTES != 0)
		metrics_inc(&metrics_balloon, BALLOON_M_STATS_FAILS);
	if (c->read_len % BALLOON_STAT_BYTES != 0 && log_ratelimit())
		log_warn("virtio-balloon: stats buffer of %u bytes is not "
			 "whole entries",
			 c->read_len);
	if (n > BALLOON_STATS_MAX)
		n = BALLOON_STATS_MAX;
	b->stats_present = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t e[BALLOON_STAT_BYTES];
		uint16_t tag;
		uint64_t val;

		virtq_chain_read(c, (uint64_t)i * BALLOON_STAT_BYTES, e,
				 sizeof(e));
		memcpy(&tag, e, 2);
		memcpy(&val, e + 2, 8);
		/* guest-controlled: unknown tags are skipped (newer drivers) */
		if (tag >= BALLOON_S_NR)
			continue;
		b->stats[tag] = val;
		b->stats_present |= 1U << tag;
		if (o < sizeof(line))
			o += (size_t)snprintf(line + o, sizeof(line) - o,
					      " %s=%llu", stat_names[tag],
					      (unsigned long long)val);
	}
	b->stats_ns = util_now_ns();
	log_debug("virtio-balloon: stats%s", o > 0 ? line : " (none)");
}

static void balloon_stats_notify(struct balloon *b, struct virtq *q)
{
	struct virtio_dev *d = &b->dev;
	bool pushed = false;

	while (virtq_pop(q, &b->chain) == 1) {
		/* guest-controlled: one buffer at a time; give back the old */
		if (b->stats_held) {
			if (log_ratelimit())
				log_warn("virtio-balloon: a second stats "
					 "buffer while one is held");
			virtq_push(q, b->stats_head, 0);
			pushed = true;
		}
		balloon_stats_parse(b, &b->chain);
		b->stats_held = true;
		b->stats_head = b->chain.head;
	}
	if (pushed)
		virtio_dev_used(d, q);
}

/* Lock held. */
static void balloon_stats_request(struct balloon *b)
{
	struct virtio_dev *d = &b->dev;
	struct virtq *q;

	if (!b->stats_held || !virtio_dev_running(d) ||
	    !virtio_dev_has(d, VIRTIO_BALLOON_F_STATS_VQ))
		return;
	q = &d->queues[2];
	if (!q->ready)
		return;
	b->stats_held = false;
	virtq_push(q, b->stats_head, 0);
	virtio_dev_used(d, q);
}

void balloon_poll_stats(struct virtio_dev *d)
{
	virtio_dev_lock(d);
	balloon_stats_request(d->priv);
	virtio_dev_unlock(d);
}

static void balloon_timer(void *opaque, uint32_t events)
{
	struct balloon *b = opaque;
	uint64_t ticks;

	(void)events;
	if (read(b->timer_fd, &ticks, sizeof(ticks)) < 0)
		return; /* EAGAIN: nothing expired */
	balloon_poll_stats(&b->dev);
}

static int balloon_timer_arm(struct balloon *b, struct kiln_error *err)
{
	struct itimerspec its = { 0 };

	if (b->timer_fd < 0)
		return 0;
	its.it_value.tv_sec = b->stats_interval_s;
	its.it_interval.tv_sec = b->stats_interval_s;
	if (timerfd_settime(b->timer_fd, 0, &its, NULL) < 0)
		return kiln_error_set(err, errno, "virtio-balloon: timerfd");
	return 0;
}

/* ---- queues ---- */

static void balloon_notify(struct virtio_dev *d, unsigned int queue)
{
	struct balloon *b = d->priv;
	struct virtq *q = &d->queues[queue];
	enum balloon_role role = balloon_role(d, queue);
	bool pushed = false;

	if (role == ROLE_STATS) {
		balloon_stats_notify(b, q);
		return;
	}
	if (role == ROLE_NONE) {
		virtio_dev_set_broken(d,
				      "buffers on queue %u, which has no "
				      "negotiated role",
				      queue);
		return;
	}
	while (virtq_pop(q, &b->chain) == 1) {
		metrics_inc(&metrics_balloon,
			    role == ROLE_INFLATE     ? BALLOON_M_INFLATE
			    : role == ROLE_REPORTING ? BALLOON_M_REPORT
						     : BALLOON_M_DEFLATE);
		if (role == ROLE_INFLATE)
			balloon_inflate(b, &b->chain);
		else if (role == ROLE_REPORTING)
			balloon_report(b, &b->chain);
		/* deflate: the pages fault back in as zeros, nothing to do */
		virtq_push(q, b->chain.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_dev_used(d, q);
}

static void balloon_reset(struct virtio_dev *d)
{
	struct balloon *b = d->priv;

	/* the driver's balloon is gone with it, and so is its stats buffer */
	b->stats_held = false;
	b->actual_pages = 0;
}

/* ---- config space ---- */

static void balloon_config_fill(const struct balloon *b,
				struct balloon_config *c)
{
	memset(c, 0, sizeof(*c));
	c->num_pages = b->target_pages;
	c->actual = b->actual_pages;
}

static void balloon_config_read(struct virtio_dev *d, uint32_t offset,
				void *data, uint32_t len)
{
	struct balloon_config c;

	balloon_config_fill(d->priv, &c);
	memcpy(data, (uint8_t *)&c + offset, len);
}

static void balloon_config_write(struct virtio_dev *d, uint32_t offset,
				 const void *data, uint32_t len)
{
	struct balloon *b = d->priv;
	struct balloon_config c;
	const uint32_t lo = offsetof(struct balloon_config, actual),
		       hi = lo + sizeof(c.actual);
	uint32_t s = offset > lo ? offset : lo;
	uint32_t e = offset + len < hi ? offset + len : hi;

	/* guest-controlled: only the bytes of actual are the driver's */
	if (s >= e) {
		if (log_ratelimit())
			log_debug("virtio-balloon: config write at %u ignored",
				  offset);
		return;
	}
	balloon_config_fill(b, &c);
	memcpy((uint8_t *)&c + s, (const uint8_t *)data + (s - offset), e - s);
	if (c.actual == b->actual_pages)
		return;
	b->actual_pages = c.actual;
	if (b->actual_pages == b->target_pages)
		log_info("virtio-balloon: actual %u MiB, at target",
			 b->actual_pages / BALLOON_PAGES_PER_MIB);
	else
		log_debug("virtio-balloon: actual %u pages, target %u",
			  b->actual_pages, b->target_pages);
}

/* ---- snapshots ---- */

static void balloon_save(struct virtio_dev *d, void *state)
{
	const struct balloon *b = d->priv;
	struct balloon_state *s = state;

	memset(s, 0, sizeof(*s));
	s->version = BALLOON_STATE_VERSION;
	s->features = b->ops.features;
	s->target_pages = b->target_pages;
	s->actual_pages = b->actual_pages;
	s->stats_interval_s = b->stats_interval_s;
	s->stats_head = b->stats_head;
	s->stats_held = b->stats_held;
}

static int balloon_restore(struct virtio_dev *d, const void *state,
			   struct kiln_error *err)
{
	struct balloon *b = d->priv;
	const struct balloon_state *s = state;
	uint64_t ram_pages = d->mem->size / BALLOON_PAGE;
	bool stats = b->ops.features & VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ);

	/* file-controlled: every field */
	if (s->version != BALLOON_STATE_VERSION || s->reserved != 0 ||
	    s->pad != 0 || s->stats_held > 1)
		return kiln_error_set(err, EINVAL,
				      "balloon state version %u, want %u, "
				      "zeros",
				      s->version, BALLOON_STATE_VERSION);
	if (s->features != b->ops.features)
		return kiln_error_set(err, EINVAL,
				      "balloon state features 0x%llx, device "
				      "has 0x%llx",
				      (unsigned long long)s->features,
				      (unsigned long long)b->ops.features);
	if (s->target_pages > ram_pages ||
	    (stats && (s->stats_interval_s == 0 ||
		       s->stats_head >= BALLOON_QUEUE_SIZE)) ||
	    (!stats && (s->stats_interval_s != 0 || s->stats_held)))
		return kiln_error_set(err, EINVAL,
				      "balloon state target %u pages, stats "
				      "every %u s, head %u: out of range",
				      s->target_pages, s->stats_interval_s,
				      s->stats_head);
	if (s->stats_interval_s != b->stats_interval_s) {
		uint32_t old = b->stats_interval_s;

		b->stats_interval_s = s->stats_interval_s;
		if (balloon_timer_arm(b, err) < 0) {
			b->stats_interval_s = old;
			return -1;
		}
	}
	b->target_pages = s->target_pages;
	b->actual_pages = s->actual_pages;
	b->stats_head = s->stats_head;
	b->stats_held = s->stats_held;
	return 0;
}

static const struct virtio_ops balloon_ops = {
	.name = "balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.num_queues = 3, /* per VM: see balloon_dev_init() */
	.queue_max_size = BALLOON_QUEUE_SIZE,
	.features = 0, /* per VM */
	.config_size = sizeof(struct balloon_config),
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.notify = balloon_notify,
	.reset = balloon_reset,
	.state_size = sizeof(struct balloon_state),
	.save = balloon_save,
	.restore = balloon_restore,
};

/* ---- the API ---- */

static struct balloon *balloon_of(struct virtio_dev *d)
{
	return d->ops->notify == balloon_notify ? d->priv : NULL;
}

int balloon_set_target(struct virtio_dev *d, uint32_t amount_mib,
		       struct kiln_error *err)
{
	struct balloon *b = balloon_of(d);
	uint64_t pages = (uint64_t)amount_mib * BALLOON_PAGES_PER_MIB;

	if (b == NULL)
		return kiln_error_set(err, EINVAL, "not a virtio-balloon");
	if (pages > d->mem->size / BALLOON_PAGE)
		return kiln_error_set(err, EINVAL,
				      "balloon of %u MiB is larger than the "
				      "guest's %llu MiB",
				      amount_mib,
				      (unsigned long long)(d->mem->size >> 20));
	virtio_dev_lock(d);
	if (b->target_pages != (uint32_t)pages) {
		b->target_pages = (uint32_t)pages;
		virtio_dev_config_changed(d);
	}
	virtio_dev_unlock(d);
	log_info("virtio-balloon: target %u MiB", amount_mib);
	return 0;
}

uint32_t balloon_actual_mib(struct virtio_dev *d)
{
	struct balloon *b = balloon_of(d);
	uint32_t mib;

	if (b == NULL)
		return 0;
	virtio_dev_lock(d);
	mib = b->actual_pages / BALLOON_PAGES_PER_MIB;
	virtio_dev_unlock(d);
	return mib;
}

int balloon_set_stats_interval(struct virtio_dev *d, uint32_t seconds,
			       struct kiln_error *err)
{
	struct balloon *b = balloon_of(d);
	uint32_t old;
	int ret;

	if (b == NULL)
		return kiln_error_set(err, EINVAL, "not a virtio-balloon");
	virtio_dev_lock(d);
	/* the statistics queue exists only when enabled at boot (Firecracker) */
	if (b->stats_interval_s == 0 || seconds == 0) {
		virtio_dev_unlock(d);
		return kiln_error_set(err, 0,
				      "balloon statistics can be enabled or "
				      "disabled only before boot");
	}
	old = b->stats_interval_s;
	b->stats_interval_s = seconds;
	ret = balloon_timer_arm(b, err);
	if (ret < 0)
		b->stats_interval_s = old;
	virtio_dev_unlock(d);
	return ret;
}

int balloon_get_stats(struct virtio_dev *d, struct balloon_stats *out,
		      struct kiln_error *err)
{
	struct balloon *b = balloon_of(d);

	if (b == NULL)
		return kiln_error_set(err, EINVAL, "not a virtio-balloon");
	virtio_dev_lock(d);
	if (b->stats_interval_s == 0) {
		virtio_dev_unlock(d);
		return kiln_error_set(err, ENOTSUP,
				      "balloon statistics are not enabled");
	}
	out->target_pages = b->target_pages;
	out->actual_pages = b->actual_pages;
	out->target_mib = b->target_pages / BALLOON_PAGES_PER_MIB;
	out->actual_mib = b->actual_pages / BALLOON_PAGES_PER_MIB;
	out->freed_bytes = b->freed_bytes;
	out->updated_ns = b->stats_ns;
	out->present = b->stats_present;
	memcpy(out->values, b->stats, sizeof(out->values));
	virtio_dev_unlock(d);
	return 0;
}

/* ---- the VMM_DEVICE ---- */

static void balloon_dev_exit(struct vm *vm, void *state)
{
	struct virtio_dev *d = state;
	struct balloon *b;

	if (d == NULL)
		return;
	b = d->priv;
	if (b->timer_fd >= 0) {
		evloop_del(&vm->loop, b->timer_ev);
		close(b->timer_fd);
	}
	virtio_mmio_del(d);
	virtio_dev_destroy(d);
	free(b);
}

static int balloon_dev_init(struct vm *vm, void **state, struct kiln_error *err)
{
	const struct vm_balloon *cfg = &vm->cfg->balloon;
	uint64_t pages = (uint64_t)cfg->amount_mib * BALLOON_PAGES_PER_MIB;
	struct balloon *b;

	*state = NULL;
	if (!cfg->enabled)
		return 0;
	if (pages > vm->mem.size / BALLOON_PAGE)
		return kiln_error_set(err, EINVAL,
				      "balloon of %u MiB is larger than the "
				      "guest's %llu MiB",
				      cfg->amount_mib,
				      (unsigned long long)(vm->mem.size >> 20));
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return kiln_error_set(err, ENOMEM, "virtio-balloon");
	b->vm = vm;
	b->timer_fd = -1;
	b->target_pages = (uint32_t)pages;
	b->stats_interval_s = cfg->stats_interval_s;
	b->ops = balloon_ops;
	b->ops.features = VIRTIO_BIT(VIRTIO_BALLOON_F_REPORTING);
	b->ops.num_queues = 3; /* inflate, deflate, reporting */
	if (cfg->deflate_on_oom)
		b->ops.features |= VIRTIO_BIT(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	if (cfg->stats_interval_s > 0) {
		b->ops.features |= VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ);
		b->ops.num_queues++;
	}
	if (virtio_dev_init(&b->dev, &b->ops, b, &vm->mem, err) < 0) {
		free(b);
		return -1;
	}
	if (virtio_mmio_add(vm, &b->dev, err) < 0) {
		virtio_dev_destroy(&b->dev);
		free(b);
		return -1;
	}
	*state = &b->dev;
	if (cfg->stats_interval_s > 0 && vm->loop.epfd >= 0) {
		b->timer_fd = timerfd_create(CLOCK_MONOTONIC,
					     TFD_NONBLOCK | TFD_CLOEXEC);
		if (b->timer_fd < 0) {
			kiln_error_set(err, errno, "virtio-balloon: timerfd");
			goto fail;
		}
		b->timer_ev = evloop_add(&vm->loop, b->timer_fd, EPOLLIN,
					 balloon_timer, b, err);
		if (b->timer_ev == NULL) {
			close(b->timer_fd);
			b->timer_fd = -1;
			goto fail;
		}
		if (balloon_timer_arm(b, err) < 0)
			goto fail;
	}
	log_debug("virtio-balloon: target %u MiB, features 0x%llx",
		  cfg->amount_mib, (unsigned long long)b->ops.features);
	return 0;
fail:
	balloon_dev_exit(vm, *state);
	*state = NULL;
	return -1;
}

struct virtio_dev *balloon_lookup(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->ndevices; i++)
		if (vm->devices[i].desc->init == balloon_dev_init &&
		    vm->devices[i].state != NULL)
			return vm->devices[i].state;
	return NULL;
}

VMM_DEVICE(virtio_balloon, DEVICE_LEVEL_VIRTIO, balloon_dev_init,
	   balloon_dev_exit);
