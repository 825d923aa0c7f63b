/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics registry and its JSON line. Counting never takes a lock:
 * a metric is one relaxed atomic, which a flush reads. The registry lock
 * covers what changes rarely: the list of registered groups, the values
 * last written (for the deltas), the destination fd and the timer.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "evloop.h"

/* ---- the static groups ---- */

static const struct metric_def vmm_defs[VMM_M_COUNT] = {
	[VMM_M_BOOT_TIME_US] = { "boot_time_us", METRIC_GAUGE },
	[VMM_M_UPTIME_MS] = { "uptime_ms", METRIC_GAUGE },
	[VMM_M_METRICS_FAILS] = { "metrics_fails", METRIC_COUNTER },
};

static const struct metric_def api_defs[API_M_COUNT] = {
	[API_M_REQUESTS] = { "requests", METRIC_COUNTER },
	[API_M_GET] = { "get_requests", METRIC_COUNTER },
	[API_M_PUT] = { "put_requests", METRIC_COUNTER },
	[API_M_PATCH] = { "patch_requests", METRIC_COUNTER },
	[API_M_OTHER] = { "other_requests", METRIC_COUNTER },
	[API_M_STATUS_2XX] = { "status_2xx", METRIC_COUNTER },
	[API_M_STATUS_4XX] = { "status_4xx", METRIC_COUNTER },
	[API_M_STATUS_5XX] = { "status_5xx", METRIC_COUNTER },
	[API_M_STATUS_OTHER] = { "status_other", METRIC_COUNTER },
	[API_M_LATENCY_SUM_US] = { "latency_us_sum", METRIC_COUNTER },
	[API_M_LATENCY_MAX_US] = { "latency_us_max", METRIC_MAX },
};

static const struct metric_def vcpu_defs[VCPU_M_COUNT] = {
	[VCPU_M_KVM_RUN] = { "kvm_run_count", METRIC_COUNTER },
	[VCPU_M_EXIT_IO_IN] = { "exit_io_in", METRIC_COUNTER },
	[VCPU_M_EXIT_IO_OUT] = { "exit_io_out", METRIC_COUNTER },
	[VCPU_M_EXIT_MMIO_READ] = { "exit_mmio_read", METRIC_COUNTER },
	[VCPU_M_EXIT_MMIO_WRITE] = { "exit_mmio_write", METRIC_COUNTER },
	[VCPU_M_FAILURES] = { "failures", METRIC_COUNTER },
};

static const struct metric_def uart_defs[UART_M_COUNT] = {
	[UART_M_READ] = { "read_count", METRIC_COUNTER },
	[UART_M_WRITE] = { "write_count", METRIC_COUNTER },
	[UART_M_MISSED_READ] = { "missed_read_count", METRIC_COUNTER },
	[UART_M_MISSED_WRITE] = { "missed_write_count", METRIC_COUNTER },
	[UART_M_ERROR] = { "error_count", METRIC_COUNTER },
};

static const struct metric_def i8042_defs[I8042_M_COUNT] = {
	[I8042_M_READ] = { "read_count", METRIC_COUNTER },
	[I8042_M_WRITE] = { "write_count", METRIC_COUNTER },
	[I8042_M_RESET] = { "reset_count", METRIC_COUNTER },
	[I8042_M_MISSED] = { "missed_count", METRIC_COUNTER },
};

static const struct metric_def vsock_defs[VSOCK_M_COUNT] = {
	[VSOCK_M_RX_BYTES] = { "rx_bytes_count", METRIC_COUNTER },
	[VSOCK_M_RX_PACKETS] = { "rx_packets_count", METRIC_COUNTER },
	[VSOCK_M_TX_BYTES] = { "tx_bytes_count", METRIC_COUNTER },
	[VSOCK_M_TX_PACKETS] = { "tx_packets_count", METRIC_COUNTER },
	[VSOCK_M_TX_INVALID] = { "tx_invalid_count", METRIC_COUNTER },
	[VSOCK_M_CONNS_ADDED] = { "conns_added", METRIC_COUNTER },
	[VSOCK_M_CONNS_KILLED] = { "conns_killed", METRIC_COUNTER },
	[VSOCK_M_CONNS_REMOVED] = { "conns_removed", METRIC_COUNTER },
	[VSOCK_M_TX_WRITE_FAILS] = { "tx_write_fails", METRIC_COUNTER },
	[VSOCK_M_RX_READ_FAILS] = { "rx_read_fails", METRIC_COUNTER },
};

static const struct metric_def balloon_defs[BALLOON_M_COUNT] = {
	[BALLOON_M_INFLATE] = { "inflate_count", METRIC_COUNTER },
	[BALLOON_M_DEFLATE] = { "deflate_count", METRIC_COUNTER },
	[BALLOON_M_REPORT] = { "free_page_report_count", METRIC_COUNTER },
	[BALLOON_M_STATS_UPDATES] = { "stats_updates_count", METRIC_COUNTER },
	[BALLOON_M_STATS_FAILS] = { "stats_update_fails", METRIC_COUNTER },
};

static const struct metric_def entropy_defs[ENTROPY_M_COUNT] = {
	[ENTROPY_M_EVENTS] = { "entropy_event_count", METRIC_COUNTER },
	[ENTROPY_M_BYTES] = { "entropy_bytes", METRIC_COUNTER },
};

const struct metric_def metrics_blk_defs[BLK_M_COUNT] = {
	[BLK_M_READ_BYTES] = { "read_bytes", METRIC_COUNTER },
	[BLK_M_WRITE_BYTES] = { "write_bytes", METRIC_COUNTER },
	[BLK_M_READ_COUNT] = { "read_count", METRIC_COUNTER },
	[BLK_M_WRITE_COUNT] = { "write_count", METRIC_COUNTER },
	[BLK_M_FLUSH_COUNT] = { "flush_count", METRIC_COUNTER },
	[BLK_M_EXECUTE_FAILS] = { "execute_fails", METRIC_COUNTER },
	[BLK_M_INVALID_REQS] = { "invalid_reqs_count", METRIC_COUNTER },
	[BLK_M_QUEUE_EVENTS] = { "queue_event_count", METRIC_COUNTER },
	[BLK_M_UPDATES] = { "update_count", METRIC_COUNTER },
};

const struct metric_def metrics_net_defs[NET_M_COUNT] = {
	[NET_M_RX_BYTES] = { "rx_bytes_count", METRIC_COUNTER },
	[NET_M_RX_PACKETS] = { "rx_packets_count", METRIC_COUNTER },
	[NET_M_RX_DROPPED] = { "rx_dropped_count", METRIC_COUNTER },
	[NET_M_TAP_READ_FAILS] = { "tap_read_fails", METRIC_COUNTER },
	[NET_M_TX_BYTES] = { "tx_bytes_count", METRIC_COUNTER },
	[NET_M_TX_PACKETS] = { "tx_packets_count", METRIC_COUNTER },
	[NET_M_TX_DROPPED] = { "tx_dropped_count", METRIC_COUNTER },
	[NET_M_TAP_WRITE_FAILS] = { "tap_write_fails", METRIC_COUNTER },
};

/* last[] holds 2n: the values last written, then the ones being written */
#define STATIC_GROUP(var, gname, table, cnt, nxt)        \
	static _Atomic uint64_t var##_val[cnt];          \
	static uint64_t var##_last[2 * (cnt)];           \
	struct metrics_group var = { .name = gname,      \
				     .defs = table,      \
				     .n = cnt,           \
				     .val = var##_val,   \
				     .last = var##_last, \
				     .next = nxt }

STATIC_GROUP(metrics_entropy, "entropy", entropy_defs, ENTROPY_M_COUNT, NULL);
STATIC_GROUP(metrics_balloon, "balloon", balloon_defs, BALLOON_M_COUNT,
	     &metrics_entropy);
STATIC_GROUP(metrics_vsock, "vsock", vsock_defs, VSOCK_M_COUNT,
	     &metrics_balloon);
STATIC_GROUP(metrics_i8042, "i8042", i8042_defs, I8042_M_COUNT, &metrics_vsock);
STATIC_GROUP(metrics_uart, "uart", uart_defs, UART_M_COUNT, &metrics_i8042);
STATIC_GROUP(metrics_vcpu, "vcpu", vcpu_defs, VCPU_M_COUNT, &metrics_uart);
STATIC_GROUP(metrics_api, "api_server", api_defs, API_M_COUNT, &metrics_vcpu);
STATIC_GROUP(metrics_vmm, "vmm", vmm_defs, VMM_M_COUNT, &metrics_api);

/* ---- the registry ---- */

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_group *const metrics_static = &metrics_vmm;
static struct metrics_group *metrics_dynamic; /* registration order */
static int metrics_fd = -1;
static int metrics_timer_fd = -1;
static struct evloop *metrics_loop;
static struct evloop_entry *metrics_timer_ev;
static uint64_t metrics_start_ns;

/* uptime counts from process start, before any API request or VM */
__attribute__((constructor)) static void metrics_init_clock(void)
{
	metrics_start_ns = util_now_ns();
}

static bool metrics_name_taken(const char *name)
{
	for (const struct metrics_group *g = metrics_static; g != NULL;
	     g = g->next)
		if (strcmp(g->name, name) == 0)
			return true;
	for (const struct metrics_group *g = metrics_dynamic; g != NULL;
	     g = g->next)
		if (strcmp(g->name, name) == 0)
			return true;
	return false;
}

struct metrics_group *metrics_register(const char *prefix, const char *id,
				       const struct metric_def *defs,
				       unsigned int n, struct kiln_error *err)
{
	/* val, then last: both arrays of uint64_t after the struct */
	size_t size = sizeof(struct metrics_group) + 3 * n * sizeof(uint64_t);
	struct metrics_group *g = calloc(1, size), **tail;
	char base[METRICS_NAME_MAX - 8];
	size_t len;

	if (g == NULL) {
		kiln_error_set(err, ENOMEM, "metrics group %s", prefix);
		return NULL;
	}
	g->defs = defs;
	g->n = n;
	g->val = (_Atomic uint64_t *)(g + 1);
	g->last = (uint64_t *)(g->val + n);
	if (id != NULL)
		snprintf(base, sizeof(base), "%s_%s", prefix, id);
	else
		snprintf(base, sizeof(base), "%s", prefix);
	/*
	 * client-controlled: id (a drive or interface id) becomes a JSON key;
	 * anything but [A-Za-z0-9_.-] becomes '_', so nothing needs escaping.
	 */
	len = strlen(base);
	for (size_t i = 0; i < len; i++) {
		char c = base[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			base[i] = '_';
	}
	pthread_mutex_lock(&metrics_lock);
	snprintf(g->name, sizeof(g->name), "%s", base);
	for (unsigned int k = 2; metrics_name_taken(g->name); k++)
		snprintf(g->name, sizeof(g->name), "%s_%u", base, k);
	for (tail = &metrics_dynamic; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = g;
	pthread_mutex_unlock(&metrics_lock);
	return g;
}

void metrics_unregister(struct metrics_group *g)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&metrics_lock);
	for (struct metrics_group **p = &metrics_dynamic; *p != NULL;
	     p = &(*p)->next) {
		if (*p == g) {
			*p = g->next;
			break;
		}
	}
	pthread_mutex_unlock(&metrics_lock);
	free(g);
}

void metrics_max(struct metrics_group *g, unsigned int i, uint64_t v)
{
	uint64_t cur;

	if (g == NULL)
		return;
	cur = atomic_load_explicit(&g->val[i], memory_order_relaxed);
	while (cur < v && !atomic_compare_exchange_weak_explicit(
				  &g->val[i], &cur, v, memory_order_relaxed,
				  memory_order_relaxed))
		;
}

void metrics_api_request(const char *method, int status, uint64_t latency_ns)
{
	struct metrics_group *g = &metrics_api;
	uint64_t us = latency_ns / 1000;
	unsigned int m = API_M_OTHER, s = API_M_STATUS_OTHER;

	if (method != NULL && strcasecmp(method, "GET") == 0)
		m = API_M_GET;
	else if (method != NULL && strcasecmp(method, "PUT") == 0)
		m = API_M_PUT;
	else if (method != NULL && strcasecmp(method, "PATCH") == 0)
		m = API_M_PATCH;
	if (status >= 200 && status < 300)
		s = API_M_STATUS_2XX;
	else if (status >= 400 && status < 500)
		s = API_M_STATUS_4XX;
	else if (status >= 500 && status < 600)
		s = API_M_STATUS_5XX;
	metrics_inc(g, API_M_REQUESTS);
	metrics_inc(g, m);
	metrics_inc(g, s);
	metrics_add(g, API_M_LATENCY_SUM_US, us);
	metrics_max(g, API_M_LATENCY_MAX_US, us);
}

/* ---- the line ---- */

struct mbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static __attribute__((format(printf, 2, 3))) void
mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		p = realloc(b->p, b->cap * 2 + (size_t)n);

		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = b->cap * 2 + (size_t)n;
	}
}

/* Lock held. Takes the values to write into g->last[n..2n). */
static void metrics_group_json(struct mbuf *b, struct metrics_group *g)
{
	uint64_t *pend = g->last + g->n;

	mbuf_printf(b, ",\"%s\":{", g->name);
	for (unsigned int i = 0; i < g->n; i++) {
		uint64_t v;

		switch (g->defs[i].kind) {
		case METRIC_COUNTER:
			pend[i] = atomic_load_explicit(&g->val[i],
						       memory_order_relaxed);
			v = pend[i] - g->last[i];
			break;
		case METRIC_MAX:
			pend[i] = atomic_exchange_explicit(
				&g->val[i], 0, memory_order_relaxed);
			v = pend[i];
			break;
		default:
			v = atomic_load_explicit(&g->val[i],
						 memory_order_relaxed);
			break;
		}
		mbuf_printf(b, "%s\"%s\":%llu", i > 0 ? "," : "",
			    g->defs[i].name, (unsigned long long)v);
	}
	mbuf_printf(b, "}");
}

/* Lock held: the line was written (commit) or lost (give maxima back). */
static void metrics_group_done(struct metrics_group *g, bool written)
{
	const uint64_t *pend = g->last + g->n;

	for (unsigned int i = 0; i < g->n; i++) {
		if (g->defs[i].kind == METRIC_COUNTER && written)
			g->last[i] = pend[i];
		else if (g->defs[i].kind == METRIC_MAX && !written)
			metrics_max(g, i, pend[i]);
	}
}

static void metrics_each_done(bool written)
{
	for (struct metrics_group *g = metrics_static; g != NULL; g = g->next)
		metrics_group_done(g, written);
	for (struct metrics_group *g = metrics_dynamic; g != NULL; g = g->next)
		metrics_group_done(g, written);
}

/* The whole line, or -1 with errno; a FIFO may take only part of it. */
static int metrics_write(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int metrics_flush_locked(struct kiln_error *err)
{
	struct mbuf b = { .cap = 4096 };
	int ret;

	if (metrics_fd < 0)
		return kiln_error_set(err, 0, "metrics are not configured");
	b.p = malloc(b.cap);
	if (b.p == NULL)
		return kiln_error_set(err, ENOMEM, "metrics line");
	metrics_set(&metrics_vmm, VMM_M_UPTIME_MS,
		    (util_now_ns() - metrics_start_ns) / 1000000);
	mbuf_printf(
		&b, "{\"utc_timestamp_ms\":%llu",
		(unsigned long long)(util_clock_ns(CLOCK_REALTIME) / 1000000));
	for (struct metrics_group *g = metrics_static; g != NULL; g = g->next)
		metrics_group_json(&b, g);
	for (struct metrics_group *g = metrics_dynamic; g != NULL; g = g->next)
		metrics_group_json(&b, g);
	mbuf_printf(&b, "}\n");
	if (b.oom) {
		ret = kiln_error_set(err, ENOMEM, "metrics line");
	} else {
		/* one write(): lines from the timer and FlushMetrics stay whole */
		ret = metrics_write(metrics_fd, b.p, b.len);
		if (ret < 0)
			kiln_error_set(err, errno, "write metrics");
	}
	metrics_each_done(ret == 0);
	if (ret < 0)
		metrics_inc(&metrics_vmm, VMM_M_METRICS_FAILS);
	free(b.p);
	return ret;
}

int metrics_flush(struct kiln_error *err)
{
	int ret;

	pthread_mutex_lock(&metrics_lock);
	ret = metrics_flush_locked(err);
	pthread_mutex_unlock(&metrics_lock);
	return ret;
}

int metrics_open(const char *path, struct kiln_error *err)
{
	int flags = O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC;
	cleanup_close int fd = open(path, flags, 0600);
	struct stat st;

	/*
	 * A FIFO is opened read-write, as Firecracker does: the open does not
	 * fail (ENXIO) while no reader is there yet, and a reader going away
	 * does not make writes fail with EPIPE (or raise SIGPIPE). A full pipe
	 * makes the flush fail with EAGAIN; the deltas then carry over.
	 */
	if ((fd < 0 && errno == ENXIO) ||
	    (fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))) {
		if (fd >= 0)
			close(fd);
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	}
	if (fd < 0)
		return kiln_error_set(err, errno, "open metrics file `%s`",
				      path);
	pthread_mutex_lock(&metrics_lock);
	if (metrics_fd >= 0)
		close(metrics_fd);
	metrics_fd = steal_fd(&fd);
	pthread_mutex_unlock(&metrics_lock);
	return 0;
}

void metrics_close(void)
{
	pthread_mutex_lock(&metrics_lock);
	if (metrics_fd >= 0)
		close(metrics_fd);
	metrics_fd = -1;
	pthread_mutex_unlock(&metrics_lock);
}

/* ---- the period ---- */

static void metrics_on_timer(void *opaque, uint32_t events)
{
	struct kiln_error err = { 0 };
	uint64_t ticks;

	(void)opaque;
	(void)events;
	if (read(metrics_timer_fd, &ticks, sizeof(ticks)) < 0)
		return; /* EAGAIN: nothing expired */
	pthread_mutex_lock(&metrics_lock);
	if (metrics_fd >= 0 && metrics_flush_locked(&err) < 0 &&
	    log_ratelimit()) {
		char buf[KILN_ERROR_MSG_MAX + 64];

		log_warn("%s", kiln_error_str(&err, buf, sizeof(buf)));
	}
	pthread_mutex_unlock(&metrics_lock);
}

int metrics_start_timer(struct evloop *loop, struct kiln_error *err)
{
	struct itimerspec its = {
		.it_value.tv_sec = METRICS_PERIOD_S,
		.it_interval.tv_sec = METRICS_PERIOD_S,
	};
	cleanup_close int fd = -1;

	if (metrics_timer_fd >= 0)
		return 0; /* a second PUT /metrics keeps the period */
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return kiln_error_set(err, errno, "metrics timerfd");
	if (timerfd_settime(fd, 0, &its, NULL) < 0)
		return kiln_error_set(err, errno, "metrics timerfd");
	metrics_timer_ev =
		evloop_add(loop, fd, EPOLLIN, metrics_on_timer, NULL, err);
	if (metrics_timer_ev == NULL)
		return kiln_error_wrap(err, "metrics timer");
	metrics_loop = loop;
	metrics_timer_fd = steal_fd(&fd);
	return 0;
}

void metrics_stop(void)
{
	struct kiln_error err = { 0 };

	if (metrics_timer_fd >= 0) {
		evloop_del(metrics_loop, metrics_timer_ev);
		metrics_timer_ev = NULL;
		close(metrics_timer_fd);
		metrics_timer_fd = -1;
		metrics_loop = NULL;
	}
	/* the last line: what happened since the last period */
	pthread_mutex_lock(&metrics_lock);
	if (metrics_fd >= 0 && metrics_flush_locked(&err) < 0) {
		char buf[KILN_ERROR_MSG_MAX + 64];

		log_warn("%s", kiln_error_str(&err, buf, sizeof(buf)));
	}
	pthread_mutex_unlock(&metrics_lock);
}
