/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the cgroup v2 files say about a container: stats, its pids,
 * signals to all of them, and OOM kills (inotify on memory.events, which
 * the kernel touches on every event).
 */
#include "agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"

#define CGROUP_FILE_MAX (1u << 20)
#define PIDS_MAX	65536
#define OOM_QUEUE	64

static char *cg_read(const char *cgroup, const char *file)
{
	char path[256];
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", cgroup, file);
	return sandbox_read_file(-1, path, CGROUP_FILE_MAX, &len, NULL);
}

static uint64_t cg_key(const char *cgroup, const char *file, const char *key)
{
	cleanup_free char *b = cg_read(cgroup, file);
	uint64_t v = 0;

	if (b != NULL)
		spec_kv_get(b, key, &v);
	return v;
}

static uint64_t cg_value(const char *cgroup, const char *file)
{
	cleanup_free char *b = cg_read(cgroup, file);

	return b != NULL ? spec_parse_limit(b) : 0;
}

int stats_container(struct ctr *c, Kiln__Agent__V1__StatsResponse *r,
		    struct kiln_error *err)
{
	cleanup_free char *io = NULL, *net = NULL;
	size_t len;

	r->cpu_usage_usec = cg_key(c->cgroup, "cpu.stat", "usage_usec");
	r->cpu_user_usec = cg_key(c->cgroup, "cpu.stat", "user_usec");
	r->cpu_system_usec = cg_key(c->cgroup, "cpu.stat", "system_usec");
	r->memory_usage_bytes = cg_value(c->cgroup, "memory.current");
	r->memory_limit_bytes = cg_value(c->cgroup, "memory.max");
	r->memory_oom_kills = cg_key(c->cgroup, "memory.events", "oom_kill");
	r->pids_current = cg_value(c->cgroup, "pids.current");
	r->pids_limit = cg_value(c->cgroup, "pids.max");
	io = cg_read(c->cgroup, "io.stat");
	if (io != NULL)
		spec_io_stat_sum(io, &r->blkio_read_bytes,
				 &r->blkio_write_bytes);
	net = sandbox_read_file(-1, "/proc/net/dev", CGROUP_FILE_MAX, &len,
				NULL);
	if (net != NULL)
		spec_net_dev_sum(net, &r->net_rx_bytes, &r->net_tx_bytes);
	return 0;
}

int stats_pids(const char *cgroup, uint32_t **pids, size_t *n,
	       struct kiln_error *err)
{
	cleanup_free char *b = cg_read(cgroup, "cgroup.procs");
	size_t cap = 0;
	char *p, *end;

	*pids = NULL;
	*n = 0;
	if (b == NULL)
		return AGENT_FAIL(err, TTRPC_INTERNAL, errno,
				  "read %s/cgroup.procs", cgroup);
	for (p = b; *p != '\0' && *n < PIDS_MAX; p = end) {
		unsigned long v = strtoul(p, &end, 10);

		if (end == p) {
			end = p + 1;
			continue;
		}
		if (*n == cap) {
			uint32_t *np;

			cap = cap ? cap * 2 : 16;
			np = realloc(*pids, cap * sizeof(**pids));
			if (np == NULL) {
				free(*pids);
				*pids = NULL;
				return AGENT_FAIL(err, TTRPC_INTERNAL, ENOMEM,
						  "pids");
			}
			*pids = np;
		}
		(*pids)[(*n)++] = (uint32_t)v;
	}
	return 0;
}

int stats_signal_all(const char *cgroup, int sig, struct kiln_error *err)
{
	cleanup_free uint32_t *pids = NULL;
	char path[256];
	size_t n;

	if (sig == SIGKILL) {
		snprintf(path, sizeof(path), "%s/cgroup.kill", cgroup);
		if (sandbox_write_file(path, "1", NULL) == 0)
			return 0;
	}
	if (stats_pids(cgroup, &pids, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (kill((pid_t)pids[i], sig) < 0 && errno != ESRCH)
			log_warn("kill %u: %m", pids[i]);
	return 0;
}

/* ---- OOM events ------------------------------------------------------- */

static int oom_fd = -1;
static pthread_mutex_t oom_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t oom_cond = PTHREAD_COND_INITIALIZER;
static char oom_queue[OOM_QUEUE][SPEC_ID_MAX + 1];
static size_t oom_head, oom_len;

static void oom_push(const char *id)
{
	pthread_mutex_lock(&oom_lock);
	if (oom_len == OOM_QUEUE) {
		/* nobody asks: keep the newest */
		oom_head = (oom_head + 1) % OOM_QUEUE;
		oom_len--;
	}
	snprintf(oom_queue[(oom_head + oom_len) % OOM_QUEUE], SPEC_ID_MAX + 1,
		 "%s", id);
	oom_len++;
	pthread_cond_broadcast(&oom_cond);
	pthread_mutex_unlock(&oom_lock);
}

void stats_oom_wait(char id[SPEC_ID_MAX + 1])
{
	pthread_mutex_lock(&oom_lock);
	while (oom_len == 0)
		pthread_cond_wait(&oom_cond, &oom_lock);
	memcpy(id, oom_queue[oom_head], SPEC_ID_MAX + 1);
	oom_head = (oom_head + 1) % OOM_QUEUE;
	oom_len--;
	pthread_mutex_unlock(&oom_lock);
}

/* one event for watch wd: compare oom_kill with what we saw last */
static void oom_check(int wd)
{
	char id[SPEC_ID_MAX + 1] = "", cgroup[128] = "";
	uint64_t kills;
	bool grew = false;
	struct ctr *c;

	if (ctr_find_wd(wd, id, cgroup, sizeof(cgroup)) < 0)
		return;
	kills = cg_key(cgroup, "memory.events", "oom_kill");
	c = ctr_get(id, NULL);
	if (c == NULL)
		return;
	pthread_mutex_lock(&ctr_lock);
	if (kills > c->oom_kills) {
		c->oom_kills = kills;
		grew = true;
	}
	pthread_mutex_unlock(&ctr_lock);
	ctr_put(c);
	if (grew) {
		log_info("container %s: OOM kill", id);
		oom_push(id);
	}
}

static void *oom_main(void *arg)
{
	char buf[4096]
		__attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(oom_fd, buf, sizeof(buf));

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			log_error("inotify: %m; no more OOM events");
			return NULL;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const void *)p;

			if (e->mask & IN_MODIFY)
				oom_check(e->wd);
			p += sizeof(*e) + e->len;
		}
	}
}

int stats_oom_start(struct kiln_error *err)
{
	pthread_t t;
	int r;

	oom_fd = inotify_init1(IN_CLOEXEC);
	if (oom_fd < 0)
		return kiln_error_set(err, errno, "inotify_init1");
	r = pthread_create(&t, NULL, oom_main, NULL);
	if (r != 0)
		return kiln_error_set(err, r, "start the OOM thread");
	pthread_detach(t);
	return 0;
}

int stats_oom_watch(struct ctr *c)
{
	char path[256];
	int wd;

	if (oom_fd < 0) {
		errno = ENOSYS;
		return -1;
	}
	snprintf(path, sizeof(path), "%s/memory.events", c->cgroup);
	wd = inotify_add_watch(oom_fd, path, IN_MODIFY);
	if (wd < 0)
		return -1;
	pthread_mutex_lock(&ctr_lock);
	c->oom_wd = wd;
	pthread_mutex_unlock(&ctr_lock);
	return 0;
}

void stats_oom_unwatch(struct ctr *c)
{
	int wd;

	pthread_mutex_lock(&ctr_lock);
	wd = c->oom_wd;
	c->oom_wd = -1;
	pthread_mutex_unlock(&ctr_lock);
	if (wd >= 0 && oom_fd >= 0)
		inotify_rm_watch(oom_fd, wd);
}
