/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics: groups registered and unregistered, counting from several
 * threads, the JSON line read back with yajl (counters as deltas, gauges
 * as values, maxima reset), flushing without a path, a FIFO without a
 * reader, the timer's last line, and a virtio-blk read counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "../../lib/log.h"
#include "../../vmm/evloop.h"
#include "../../vmm/metrics.h"
#include "../../vmm/virtio/blk.h"
#include "../lib/vblk.h"
#include "tap.h"

#define THREADS 4
#define PER	100000

static char dir[] = "/tmp/kiln-metrics-test.XXXXXX";
static char path[256];
static long read_off; /* of the metrics file: lines already checked */

/* The next line the metrics file got, parsed; NULL if none. */
static yajl_val next_line(void)
{
	char buf[16384], err[256];
	FILE *f = fopen(path, "r");
	yajl_val v = NULL;

	if (f == NULL)
		return NULL;
	fseek(f, read_off, SEEK_SET);
	if (fgets(buf, sizeof(buf), f) != NULL) {
		read_off = ftell(f);
		v = yajl_tree_parse(buf, err, sizeof(err));
		if (v == NULL)
			printf("# bad JSON (%s): %s", err, buf);
	}
	fclose(f);
	return v;
}

/* root.group.name as an integer; -1 when missing. */
static long long num(yajl_val root, const char *group, const char *name)
{
	const char *p[] = { group, name, NULL };
	yajl_val v = yajl_tree_get(root, p, yajl_t_number);

	return v != NULL && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : -1;
}

static bool has_group(yajl_val root, const char *group)
{
	const char *p[] = { group, NULL };

	return yajl_tree_get(root, p, yajl_t_object) != NULL;
}

static void *counter_thread(void *arg)
{
	struct metrics_group *g = arg;

	for (int i = 0; i < PER; i++) {
		metrics_inc(g, BLK_M_READ_COUNT);
		metrics_add(g, BLK_M_READ_BYTES, 512);
		metrics_inc(&metrics_vcpu, VCPU_M_EXIT_IO_IN);
	}
	return NULL;
}

static void test_registry(void)
{
	struct kiln_error err = { 0 };
	struct metrics_group *a, *b, *c;
	pthread_t th[THREADS];
	yajl_val root;
	int ret;

	ret = metrics_flush(&err);
	ok(ret < 0 && strcmp(err.msg, "metrics are not configured") == 0,
	   "flush without a path fails: %s", err.msg);

	a = metrics_register("block", "rootfs", metrics_blk_defs, BLK_M_COUNT,
			     &err);
	b = metrics_register("block", "rootfs", metrics_blk_defs, BLK_M_COUNT,
			     &err);
	c = metrics_register("net", "e\"th/0", metrics_net_defs, NET_M_COUNT,
			     &err);
	ok(a != NULL && strcmp(a->name, "block_rootfs") == 0,
	   "group named prefix_id: %s", a ? a->name : "?");
	ok(b != NULL && strcmp(b->name, "block_rootfs_2") == 0,
	   "same name again gets a suffix: %s", b ? b->name : "?");
	ok(c != NULL && strcmp(c->name, "net_e_th_0") == 0,
	   "odd characters of an id become _: %s", c ? c->name : "?");

	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, counter_thread, a);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	metrics_add(c, NET_M_TX_BYTES, 1500);
	metrics_set(&metrics_vmm, VMM_M_BOOT_TIME_US, 123456);
	metrics_api_request("GET", 200, 5000000);
	metrics_api_request("put", 400, 1000000);
	metrics_api_request("DELETE", 500, 2000);

	ok(metrics_open(path, &err) == 0, "open a metrics file");
	ok(metrics_flush(&err) == 0, "flush");
	root = next_line();
	ok(root != NULL && YAJL_IS_OBJECT(root), "the line is a JSON object");
	ok(root != NULL && root->u.object.len > 0 &&
		   strcmp(root->u.object.keys[0], "utc_timestamp_ms") == 0 &&
		   YAJL_IS_INTEGER(root->u.object.values[0]) &&
		   YAJL_GET_INTEGER(root->u.object.values[0]) > 1600000000000LL,
	   "utc_timestamp_ms first, in milliseconds");
	is_int(num(root, "block_rootfs", "read_count"), THREADS * PER,
	       "counts from %d threads, none lost", THREADS);
	is_int(num(root, "block_rootfs", "read_bytes"), THREADS * PER * 512LL,
	       "bytes from %d threads", THREADS);
	is_int(num(root, "block_rootfs_2", "read_count"), 0,
	       "the other group has its own counters");
	is_int(num(root, "vcpu", "exit_io_in"), THREADS * PER,
	       "a static group counted too");
	is_int(num(root, "net_e_th_0", "tx_bytes_count"), 1500, "net tx bytes");
	is_int(num(root, "vmm", "boot_time_us"), 123456, "a gauge");
	ok(num(root, "vmm", "uptime_ms") >= 0, "uptime");
	is_int(num(root, "api_server", "requests"), 3, "api: 3 requests");
	ok(num(root, "api_server", "get_requests") == 1 &&
		   num(root, "api_server", "put_requests") == 1 &&
		   num(root, "api_server", "other_requests") == 1,
	   "api: by method");
	ok(num(root, "api_server", "status_2xx") == 1 &&
		   num(root, "api_server", "status_4xx") == 1 &&
		   num(root, "api_server", "status_5xx") == 1,
	   "api: by status class");
	ok(num(root, "api_server", "latency_us_sum") == 6002 &&
		   num(root, "api_server", "latency_us_max") == 5000,
	   "api: latency sum and max in us");
	ok(has_group(root, "uart") && has_group(root, "i8042") &&
		   has_group(root, "vsock") && has_group(root, "balloon") &&
		   has_group(root, "entropy"),
	   "every static group is written");
	yajl_tree_free(root);

	metrics_inc(a, BLK_M_WRITE_COUNT);
	ok(metrics_flush(&err) == 0, "second flush");
	root = next_line();
	is_int(num(root, "block_rootfs", "read_count"), 0,
	       "second flush: a counter shows its change, 0");
	is_int(num(root, "block_rootfs", "write_count"), 1,
	       "second flush: a counter that moved shows 1");
	is_int(num(root, "vmm", "boot_time_us"), 123456,
	       "second flush: the gauge keeps its value");
	is_int(num(root, "api_server", "latency_us_max"), 0,
	       "second flush: the maximum starts over");
	yajl_tree_free(root);

	metrics_unregister(a);
	metrics_unregister(b);
	metrics_unregister(NULL);
	ok(metrics_flush(&err) == 0, "flush after unregistering");
	root = next_line();
	ok(root != NULL && !has_group(root, "block_rootfs") &&
		   !has_group(root, "block_rootfs_2") &&
		   has_group(root, "net_e_th_0"),
	   "unregistered groups are gone, the others stay");
	yajl_tree_free(root);
	metrics_unregister(c);
}

/* A FIFO nobody reads: opening and flushing never block. */
static void test_fifo(void)
{
	char fifo[300];
	struct kiln_error err = { 0 };
	struct metrics_group *g;
	char buf[65536];
	int ret = 0, i, rfd;
	yajl_val root;
	ssize_t n;

	snprintf(fifo, sizeof(fifo), "%s/metrics.fifo", dir);
	mkfifo(fifo, 0600);
	ok(metrics_open(fifo, &err) == 0, "open a FIFO with no reader: %s",
	   err.msg);
	g = metrics_register("block", "fifo", metrics_blk_defs, BLK_M_COUNT,
			     &err);
	for (i = 0; i < 10000 && (ret = metrics_flush(&err)) == 0; i++)
		;
	ok(ret < 0 && err.errnum == EAGAIN,
	   "flushes into a full pipe fail with EAGAIN after %d lines, no "
	   "block",
	   i);
	metrics_add(g, BLK_M_WRITE_BYTES, 7);
	ok(metrics_flush(&err) < 0, "still full");
	/* drain: the next line must carry the change the lost ones had */
	rfd = open(fifo, O_RDONLY | O_NONBLOCK);
	while (read(rfd, buf, sizeof(buf)) > 0)
		;
	ok(metrics_flush(&err) == 0, "drained: flush works again");
	n = read(rfd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	root = yajl_tree_parse(buf, NULL, 0);
	is_int(num(root, "block_fifo", "write_bytes"), 7,
	       "a lost line's change is written with the next one");
	ok(num(root, "vmm", "metrics_fails") >= 2, "failed writes counted");
	yajl_tree_free(root);
	close(rfd);
	metrics_unregister(g);
	metrics_close();
	ret = metrics_flush(&err);
	ok(ret < 0 && err.errnum == 0, "closed: not configured again");
}

static void test_timer(void)
{
	struct kiln_error err = { 0 };
	struct evloop loop;
	yajl_val root;

	evloop_init(&loop, &err);
	ok(metrics_start_timer(&loop, &err) == 0, "start the timer: %s",
	   err.msg);
	ok(metrics_start_timer(&loop, &err) == 0, "a second start is a no-op");
	metrics_open(path, &err);
	metrics_inc(&metrics_uart, UART_M_WRITE);
	metrics_stop();
	root = next_line();
	is_int(num(root, "uart", "write_count"), 1, "stop writes a last line");
	yajl_tree_free(root);
	metrics_stop();
	root = next_line();
	is_int(num(root, "uart", "write_count"), 0,
	       "a second stop writes one more line, nothing new in it");
	yajl_tree_free(root);
	evloop_destroy(&loop);
}

/* ---- a virtio-blk read through its MMIO registers ---- */

#define MEM_SIZE (16ULL << 20)
#define DESC	 0x1000ULL
#define AVAIL	 0x2000ULL
#define USED	 0x3000ULL
#define HDR	 0x10000ULL
#define DATA	 0x100000ULL
#define STATUS	 0x20000ULL
#define QSIZE	 16

static const struct vblk_layout layout = {
	.mem_size = MEM_SIZE,
	.desc = DESC,
	.avail = AVAIL,
	.used = USED,
	.qsize = QSIZE,
};

static struct vdrv *blk_vm(const char *spec, const char *spec2,
			   struct kiln_error *err)
{
	return vblk_new(&layout, (const char *const[]){ spec, spec2, NULL },
			err);
}

/* A read of len bytes at sector; returns the status byte. */
static uint8_t blk_read(struct vdrv *t, uint64_t sector, uint32_t len)
{
	uint8_t *h = vdrv_gp(t, HDR, 16), *st = vdrv_gp(t, STATUS, 1);
	uint32_t type = 0;

	memset(h, 0, 16);
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
	*st = 0xee;
	vdrv_set_desc(t, 0, 0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(t, 0, 1, DATA, len,
		      VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	vdrv_set_desc(t, 0, 2, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	vdrv_offer(t, 0, 0);
	return *st;
}

static void test_blk(void)
{
	char img[300], spec[400], bad[400];
	struct kiln_error err = { 0 };
	struct vdrv *t;
	yajl_val root;
	uint32_t lo;
	int fd;

	snprintf(img, sizeof(img), "%s/disk.img", dir);
	fd = open(img, O_CREAT | O_WRONLY, 0600);
	if (fd < 0 || ftruncate(fd, 64 * 512) < 0) {
		printf("Bail out! image\n");
		exit(1);
	}
	close(fd);
	snprintf(spec, sizeof(spec), "id=rootfs,path=%s", img);
	snprintf(bad, sizeof(bad), "id=gone,path=%s/missing.img", dir);

	metrics_open(path, &err);
	t = blk_vm(spec, NULL, &err);
	vdrv_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	lo = vdrv_rd(t, VIRTIO_MMIO_DEVICE_FEATURES);
	vdrv_handshake(t, lo, 1, true);
	metrics_flush(&err);
	yajl_tree_free(next_line());
	is_int(blk_read(t, 2, 1024), 0, "blk: a read of 2 sectors");
	is_int(blk_read(t, 1000, 512), 1, "blk: a read out of range fails");
	metrics_flush(&err);
	root = next_line();
	is_int(num(root, "block_rootfs", "read_count"), 1,
	       "blk: the read is counted");
	is_int(num(root, "block_rootfs", "read_bytes"), 1024,
	       "blk: its bytes are counted");
	is_int(num(root, "block_rootfs", "invalid_reqs_count"), 1,
	       "blk: the bad request is counted as invalid");
	is_int(num(root, "block_rootfs", "execute_fails"), 0,
	       "blk: not as an I/O failure");
	ok(num(root, "block_rootfs", "queue_event_count") >= 2, "blk: queue "
								"notifications "
								"counted");
	yajl_tree_free(root);
	vblk_free(t);
	metrics_flush(&err);
	root = next_line();
	ok(root != NULL && !has_group(root, "block_rootfs"), "blk: the group "
							     "goes with the "
							     "device");
	yajl_tree_free(root);

	/* a start that fails half way leaves nothing registered */
	t = blk_vm(spec, bad, &err);
	ok(t == NULL, "blk: second drive missing, init fails: %s", err.msg);
	metrics_flush(&err);
	root = next_line();
	ok(root != NULL && !has_group(root, "block_rootfs") &&
		   !has_group(root, "block_gone"),
	   "blk: a failed init leaves no group behind");
	yajl_tree_free(root);
	metrics_close();
}

int main(void)
{
	char cmd[300];
	int rc;

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/metrics.json", dir);
	test_registry();
	test_fifo();
	test_timer();
	test_blk();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	rc = tap_done();
	if (system(cmd) != 0)
		return 1;
	return rc;
}
