/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the shim asks the guest's agent itself, over the VM's vsock socket
 * in kiln's state directory:
 * - Stats: the container's cgroup figures from inside its guest (the
 *   agent reads the guest's cgroup v2 files), in containerd's cgroup v2
 *   Metrics type, so that `ctr task metrics` and the CRI show them as for
 *   a runc container on a cgroup v2 host;
 * - OOM kills: one thread per running task waits on the agent's
 *   GetOOMEvent and publishes TaskOOM; it ends when the VM does.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/agent_client.h"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../oci/container.h"
#include "../runtime/kiln.h"
#include "github.com/containerd/cgroups/v2/stats/metrics.pb-c.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "shim.h"

#define STATS_TIMEOUT_NS (10ull * 1000000000)
#define METRICS_TYPE	 "io.containerd.cgroups.v2.Metrics"

/* A client of the agent of kiln's container id (its VM's vsock), and
 * in *guest (malloc'd) the container's id there. */
static struct agent_client *guest_agent(const char *id, uint64_t timeout_ns,
					char **guest, struct kiln_error *err)
{
	char path[64];
	cleanup_close int root = -1, dir = -1;
	struct container_state st;

	root = open(kiln_root_dir(), O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		kiln_error_set(err, errno, "open %s", kiln_root_dir());
		return NULL;
	}
	dir = openat(root, id, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		kiln_error_set(err, errno, "the state of %s", id);
		return NULL;
	}
	if (container_state_load(dir, &st, err) < 0)
		return NULL;
	*guest = strdup(container_guest_id(&st));
	container_state_clear(&st);
	if (*guest == NULL) {
		kiln_error_set(err, ENOMEM, "state of %s", id);
		return NULL;
	}
	/* through the fd: the state directory's path may be too long for a
	 * socket address; once connected, the client needs it no more */
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dir, VM_VSOCK);
	return agent_client_connect(path, 0, timeout_ns, err);
}

/* What the agent says about the container of kiln's state directory id. */
static int guest_stats(const char *id, struct agent_stats *st,
		       struct kiln_error *err)
{
	cleanup_free char *guest = NULL;
	struct agent_client *c = guest_agent(id, STATS_TIMEOUT_NS, &guest, err);
	int r;

	if (!c)
		return -1;
	r = agent_stats(c, guest, st, err);
	agent_client_free(c);
	return r;
}

/*
 * The OOM kills in the guest of the VM task id owns. A pod's other
 * containers share it: their kills are theirs (in the guest under their
 * own ids, the same as their tasks'), its own is KILN_GUEST_ID's.
 */
static void *oom_main(void *arg)
{
	char *id = arg;
	struct kiln_error err = { 0 };
	cleanup_free char *guest = NULL;
	struct agent_client *c =
		guest_agent(id, STATS_TIMEOUT_NS, &guest, &err);
	char *cid = NULL;

	/* a pod's container: its sandbox's task hears for the VM */
	if (c != NULL && strcmp(guest, KILN_GUEST_ID) != 0) {
		agent_client_free(c);
		c = NULL;
	}
	while (c && agent_oom_event(c, &cid, &err) == 0) {
		Containerd__Events__TaskOOM ev =
			CONTAINERD__EVENTS__TASK_OOM__INIT;

		ev.container_id = strcmp(cid, KILN_GUEST_ID) == 0 ? id : cid;
		pthread_mutex_lock(&shim_mu);
		events_publish("/tasks/oom", "TaskOOM", &ev.base);
		pthread_mutex_unlock(&shim_mu);
		free(cid);
		cid = NULL;
	}
	agent_client_free(c);
	free(id);
	return NULL;
}

void shim_watch_oom(const char *id)
{
	pthread_t t;
	char *copy = strdup(id);

	if (!copy || pthread_create(&t, NULL, oom_main, copy) != 0) {
		free(copy);
		log_warn("%s: no OOM events (cannot start a thread)", id);
		return;
	}
	pthread_detach(t);
}

int shim_stats(const char *id, ProtobufCMessage **resp, struct kiln_error *err)
{
	Io__Containerd__Cgroups__V2__Metrics m =
		IO__CONTAINERD__CGROUPS__V2__METRICS__INIT;
	Io__Containerd__Cgroups__V2__PidsStat pids =
		IO__CONTAINERD__CGROUPS__V2__PIDS_STAT__INIT;
	Io__Containerd__Cgroups__V2__CPUStat cpu =
		IO__CONTAINERD__CGROUPS__V2__CPUSTAT__INIT;
	Io__Containerd__Cgroups__V2__MemoryStat mem =
		IO__CONTAINERD__CGROUPS__V2__MEMORY_STAT__INIT;
	Io__Containerd__Cgroups__V2__MemoryEvents ev =
		IO__CONTAINERD__CGROUPS__V2__MEMORY_EVENTS__INIT;
	Io__Containerd__Cgroups__V2__IOStat io =
		IO__CONTAINERD__CGROUPS__V2__IOSTAT__INIT;
	Io__Containerd__Cgroups__V2__IOEntry ioe =
		IO__CONTAINERD__CGROUPS__V2__IOENTRY__INIT;
	Io__Containerd__Cgroups__V2__IOEntry *ioes[1] = { &ioe };
	Containerd__Task__V2__StatsResponse *out;
	Google__Protobuf__Any *any;
	struct agent_stats st;
	size_t len;

	if (guest_stats(id, &st, err) < 0)
		return -1;
	pids.current = st.pids_current;
	pids.limit = st.pids_limit;
	cpu.usage_usec = st.cpu_usage_usec;
	cpu.user_usec = st.cpu_user_usec;
	cpu.system_usec = st.cpu_system_usec;
	mem.usage = st.memory_usage_bytes;
	mem.usage_limit = st.memory_limit_bytes;
	ev.oom_kill = st.memory_oom_kills;
	/* the guest's disks summed: one entry */
	ioe.rbytes = st.blkio_read_bytes;
	ioe.wbytes = st.blkio_write_bytes;
	io.n_usage = 1;
	io.usage = ioes;
	m.pids = &pids;
	m.cpu = &cpu;
	m.memory = &mem;
	m.memory_events = &ev;
	m.io = &io;
	out = (Containerd__Task__V2__StatsResponse *)ttrpc_alloc_msg(
		&containerd__task__v2__stats_response__descriptor);
	any = (Google__Protobuf__Any *)ttrpc_alloc_msg(
		&google__protobuf__any__descriptor);
	len = io__containerd__cgroups__v2__metrics__get_packed_size(&m);
	if (!out || !any || !(any->type_url = strdup(METRICS_TYPE)) ||
	    !(any->value.data = malloc(len + 1))) {
		if (any)
			protobuf_c_message_free_unpacked(&any->base, NULL);
		if (out)
			protobuf_c_message_free_unpacked(&out->base, NULL);
		return kiln_error_set(err, ENOMEM, "stats");
	}
	any->value.len =
		io__containerd__cgroups__v2__metrics__pack(&m, any->value.data);
	out->stats = any;
	*resp = &out->base;
	return 0;
}
