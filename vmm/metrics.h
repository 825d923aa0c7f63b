/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics, Firecracker-style: named groups of counters, written as one
 * JSON line per flush to the metrics path (PUT /metrics), on FlushMetrics
 * and every METRICS_PERIOD_S. Counters are written as the change since
 * the last flush, as Firecracker's; gauges as their current value.
 * Counting is lock-free (relaxed atomics) from any thread.
 *
 * Groups. The singletons (vmm, api_server, vcpu, uart, i8042, vsock,
 * balloon, entropy) are static and always written, as in Firecracker:
 * nothing to register, nothing left dangling when a device goes away, and
 * every file of a device (vsock.c and vsock_conn.c) can count into it.
 * Devices with several instances register one group each, named by their
 * id ("block_rootfs", "net_eth0"), and unregister it before they free it.
 *
 * A line: {"utc_timestamp_ms":N,"vmm":{...},"api_server":{...},...}
 */
#ifndef KILN_VMM_METRICS_H
#define KILN_VMM_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "../lib/error.h"

#define METRICS_PERIOD_S 60
#define METRICS_NAME_MAX 64

struct evloop;

/* Open (append, O_NONBLOCK for a FIFO) the metrics destination. */
int metrics_open(const char *path, struct kiln_error *err);
/* Write one line now; -1 with err when no path is set or the write fails. */
int metrics_flush(struct kiln_error *err);
/* Flush every METRICS_PERIOD_S from loop (a timerfd) once a path is set. */
int metrics_start_timer(struct evloop *loop, struct kiln_error *err);
/* Remove the timer and write a last line (if a path is set). */
void metrics_stop(void);
/* Forget the path (tests; a later flush fails as unconfigured). */
void metrics_close(void);

/* An API request answered: its method, status and round trip. */
void metrics_api_request(const char *method, int status, uint64_t latency_ns);

/* ---- groups ---- */

enum metric_kind {
	METRIC_COUNTER, /* written as the change since the last flush */
	METRIC_GAUGE,	/* written as is */
	METRIC_MAX,	/* the largest value since the last flush */
};

struct metric_def {
	const char *name;
	enum metric_kind kind;
};

struct metrics_group {
	char name[METRICS_NAME_MAX];
	const struct metric_def *defs;
	unsigned int n;
	_Atomic uint64_t *val;
	uint64_t *last; /* counters at the last flush, under the registry lock */
	struct metrics_group *next;
};

/*
 * A group "prefix_id" (or "prefix" when id is NULL) of n metrics, written
 * until metrics_unregister(). A second group of the same name gets a
 * "_2", "_3"... suffix: JSON keys stay unique.
 */
struct metrics_group *metrics_register(const char *prefix, const char *id,
				       const struct metric_def *defs,
				       unsigned int n, struct kiln_error *err);
/* Stop writing g and free it; NULL is fine. No one may count into g after. */
void metrics_unregister(struct metrics_group *g);

/* g may be NULL (a device built without its group): nothing is counted. */
static inline void metrics_add(struct metrics_group *g, unsigned int i,
			       uint64_t v)
{
	if (g != NULL)
		atomic_fetch_add_explicit(&g->val[i], v, memory_order_relaxed);
}

static inline void metrics_inc(struct metrics_group *g, unsigned int i)
{
	metrics_add(g, i, 1);
}

static inline void metrics_set(struct metrics_group *g, unsigned int i,
			       uint64_t v)
{
	if (g != NULL)
		atomic_store_explicit(&g->val[i], v, memory_order_relaxed);
}

/* For METRIC_MAX. */
void metrics_max(struct metrics_group *g, unsigned int i, uint64_t v);

/* Read one value as it is now (tests, GET handlers). */
static inline uint64_t metrics_get(const struct metrics_group *g,
				   unsigned int i)
{
	return atomic_load_explicit(&g->val[i], memory_order_relaxed);
}

/* ---- the static groups and the metrics of each kind of group ---- */

enum vmm_metric {
	VMM_M_BOOT_TIME_US, /* gauge: start to the guest's boot timer write */
	VMM_M_UPTIME_MS,    /* gauge, set at each flush */
	VMM_M_METRICS_FAILS,
	VMM_M_COUNT
};

enum api_metric {
	API_M_REQUESTS,
	API_M_GET,
	API_M_PUT,
	API_M_PATCH,
	API_M_OTHER,
	API_M_STATUS_2XX,
	API_M_STATUS_4XX,
	API_M_STATUS_5XX,
	API_M_STATUS_OTHER,
	API_M_LATENCY_SUM_US,
	API_M_LATENCY_MAX_US, /* max */
	API_M_COUNT
};

enum vcpu_metric {
	VCPU_M_KVM_RUN, /* KVM_RUN returns, EINTR included */
	VCPU_M_EXIT_IO_IN,
	VCPU_M_EXIT_IO_OUT,
	VCPU_M_EXIT_MMIO_READ,
	VCPU_M_EXIT_MMIO_WRITE,
	VCPU_M_FAILURES, /* KVM_RUN errors, failed entries, unknown exits */
	VCPU_M_COUNT
};

enum uart_metric {
	UART_M_READ,	     /* bytes the guest read */
	UART_M_WRITE,	     /* bytes the guest wrote */
	UART_M_MISSED_READ,  /* bytes lost: receive FIFO full */
	UART_M_MISSED_WRITE, /* bytes lost: oldest dropped, console gone */
	UART_M_ERROR,	     /* console output failures */
	UART_M_COUNT
};

enum i8042_metric {
	I8042_M_READ,
	I8042_M_WRITE,
	I8042_M_RESET,
	I8042_M_MISSED, /* accesses of the wrong width or port */
	I8042_M_COUNT
};

enum vsock_metric {
	VSOCK_M_RX_BYTES, /* payload to the guest */
	VSOCK_M_RX_PACKETS,
	VSOCK_M_TX_BYTES, /* payload from the guest */
	VSOCK_M_TX_PACKETS,
	VSOCK_M_TX_INVALID, /* malformed or misaddressed guest packets */
	VSOCK_M_CONNS_ADDED,
	VSOCK_M_CONNS_KILLED, /* reset by us */
	VSOCK_M_CONNS_REMOVED,
	VSOCK_M_TX_WRITE_FAILS, /* host socket write errors */
	VSOCK_M_RX_READ_FAILS,	/* host socket read errors */
	VSOCK_M_COUNT
};

enum balloon_metric {
	BALLOON_M_INFLATE,
	BALLOON_M_DEFLATE,
	BALLOON_M_REPORT, /* free page reports */
	BALLOON_M_STATS_UPDATES,
	BALLOON_M_STATS_FAILS,
	BALLOON_M_COUNT
};

enum entropy_metric {
	ENTROPY_M_EVENTS, /* buffers filled */
	ENTROPY_M_BYTES,
	ENTROPY_M_COUNT
};

/* block_<drive id> */
enum blk_metric {
	BLK_M_READ_BYTES,
	BLK_M_WRITE_BYTES,
	BLK_M_READ_COUNT,
	BLK_M_WRITE_COUNT,
	BLK_M_FLUSH_COUNT,
	BLK_M_EXECUTE_FAILS, /* I/O errors of the backing file */
	BLK_M_INVALID_REQS,  /* malformed, out of range or unsupported */
	BLK_M_QUEUE_EVENTS,
	BLK_M_UPDATES, /* PATCH /drives */
	BLK_M_COUNT
};

/* net_<iface id> */
enum net_metric {
	NET_M_RX_BYTES,
	NET_M_RX_PACKETS,
	NET_M_RX_DROPPED, /* no room in the guest's buffers, bad frames */
	NET_M_TAP_READ_FAILS,
	NET_M_TX_BYTES,
	NET_M_TX_PACKETS,
	NET_M_TX_DROPPED, /* the TAP's queue was full */
	NET_M_TAP_WRITE_FAILS,
	NET_M_COUNT
};

extern struct metrics_group metrics_vmm, metrics_api, metrics_vcpu,
	metrics_uart, metrics_i8042, metrics_vsock, metrics_balloon,
	metrics_entropy;
extern const struct metric_def metrics_blk_defs[BLK_M_COUNT];
extern const struct metric_def metrics_net_defs[NET_M_COUNT];

#endif
