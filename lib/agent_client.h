/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host side of kiln-agent (agent/proto/agent.proto): reach a guest's
 * vsock port through kiln-vmm's Firecracker-style Unix socket, call the
 * agent over ttrpc, attach a process's stdio streams. Used by the shim,
 * the runtime and test/tools/agentctl.c.
 *
 * Requests that carry much (a container, a process) are the protobuf-c
 * messages themselves; answers are plain C structs. Errors carry the
 * agent's status message: "CreateContainer: mount /dev/vdb: ...".
 */
#ifndef KILN_LIB_AGENT_CLIENT_H
#define KILN_LIB_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/proto/agent.pb-c.h"
#include "error.h"

#define AGENT_SERVICE	  "kiln.agent.v1.Agent"
#define AGENT_RPC_PORT	  1024
#define AGENT_STREAM_PORT 1025
#define AGENT_ID_MAX	  64
/* "CONNECT <port>\n" and "OK <port>\n", "OK\n" and "ERR <message>\n" */
#define AGENT_LINE_MAX 512

struct ttrpc_client;

struct agent_client {
	struct ttrpc_client *rpc;
	char *uds_path;
	/* per call, but for the calls that block by design (WaitProcess,
	 * GetOOMEvent); 0: none */
	uint64_t timeout_ns;
};

/*
 * Connect to guest port `port` through the VMM's vsock socket: connect,
 * "CONNECT <port>\n", wait for "OK <hostport>\n". Until the deadline
 * (CLOCK_MONOTONIC ns; 0: one try) it retries what a booting guest causes:
 * the socket not there yet, refused, or closed without OK because nothing
 * listens on the port yet. Returns a blocking fd positioned just after the
 * OK line, or -1 with err.
 */
int agent_vsock_connect(const char *uds_path, uint32_t port,
			uint64_t deadline_ns, struct kiln_error *err);

/* util_now_ns() + ms, for deadlines. */
uint64_t agent_deadline_ms(uint64_t ms);

/*
 * Connect to the agent (port 1024) and wait until it answers Check,
 * retrying until the deadline (0: one try). timeout_ns: the default
 * per-call timeout. Free with agent_client_free.
 */
struct agent_client *agent_client_connect(const char *uds_path,
					  uint64_t deadline_ns,
					  uint64_t timeout_ns,
					  struct kiln_error *err);
/* Without a Check: for tests and callers that own a connected fd. */
struct agent_client *agent_client_new(int fd, const char *uds_path,
				      uint64_t timeout_ns,
				      struct kiln_error *err);
void agent_client_free(struct agent_client *c);

/* [A-Za-z0-9][A-Za-z0-9_.-]*, at most AGENT_ID_MAX bytes */
bool agent_id_valid(const char *id);

/* ---- calls ------------------------------------------------------------ */

struct agent_check_info {
	char version[64];
	uint64_t uptime_ns; /* guest CLOCK_BOOTTIME when it answered */
	uint64_t ready_ns;  /* ... when it began serving */
};

struct agent_exit {
	int32_t status; /* exit code, or 128+N when killed by signal N */
	bool signaled;
	uint32_t exit_code;
	uint32_t signal;
	uint64_t exited_at_ns; /* CLOCK_REALTIME */
};

struct agent_stats {
	uint64_t cpu_usage_usec, cpu_user_usec, cpu_system_usec;
	uint64_t memory_usage_bytes, memory_limit_bytes, memory_oom_kills;
	uint64_t pids_current, pids_limit;
	uint64_t blkio_read_bytes, blkio_write_bytes;
	uint64_t net_rx_bytes, net_tx_bytes;
};

int agent_check(struct agent_client *c, struct agent_check_info *info,
		struct kiln_error *err);
int agent_create_sandbox(struct agent_client *c,
			 const Kiln__Agent__V1__CreateSandboxRequest *req,
			 struct kiln_error *err);
int agent_configure_network(struct agent_client *c,
			    const Kiln__Agent__V1__ConfigureNetworkRequest *req,
			    struct kiln_error *err);
int agent_create_container(struct agent_client *c,
			   const Kiln__Agent__V1__CreateContainerRequest *req,
			   struct kiln_error *err);
/* *pid (may be NULL): the init's pid in the guest */
int agent_start(struct agent_client *c, const char *container_id, uint32_t *pid,
		struct kiln_error *err);
int agent_exec(struct agent_client *c, const char *container_id,
	       const char *exec_id, const Kiln__Agent__V1__Process *process,
	       uint32_t *pid, struct kiln_error *err);
/* exec_id "" or NULL: the container's init */
int agent_signal(struct agent_client *c, const char *container_id,
		 const char *exec_id, uint32_t signal, bool all,
		 struct kiln_error *err);
/* Blocks until the process exits: no timeout. */
int agent_wait(struct agent_client *c, const char *container_id,
	       const char *exec_id, struct agent_exit *exit,
	       struct kiln_error *err);
int agent_resize(struct agent_client *c, const char *container_id,
		 const char *exec_id, uint32_t cols, uint32_t rows,
		 struct kiln_error *err);
int agent_close_stdin(struct agent_client *c, const char *container_id,
		      const char *exec_id, struct kiln_error *err);
/* *pids is malloc'd (free it), *n its length */
int agent_ps(struct agent_client *c, const char *container_id, uint32_t **pids,
	     size_t *n, struct kiln_error *err);
int agent_stats(struct agent_client *c, const char *container_id,
		struct agent_stats *st, struct kiln_error *err);
int agent_remove(struct agent_client *c, const char *container_id,
		 struct kiln_error *err);
/* New cgroup limits (runc update): the fields resources has set */
int agent_update(struct agent_client *c, const char *container_id,
		 const Kiln__Agent__V1__Resources *resources,
		 struct kiln_error *err);
/* Blocks until an OOM kill: no timeout. *container_id is malloc'd. */
int agent_oom_event(struct agent_client *c, char **container_id,
		    struct kiln_error *err);
int agent_set_time(struct agent_client *c, int64_t sec, int64_t nsec,
		   struct kiln_error *err);
int agent_reseed(struct agent_client *c, const void *data, size_t len,
		 struct kiln_error *err);
/* Both in one call (SetIdentity); as two with an agent that lacks it. */
int agent_set_identity(struct agent_client *c, int64_t sec, int64_t nsec,
		       const void *seed, size_t len, struct kiln_error *err);
/*
 * The guest powers off, possibly before its answer leaves: a connection
 * that breaks during the call counts as done.
 */
int agent_shutdown(struct agent_client *c, struct kiln_error *err);

/* ---- stdio streams ---------------------------------------------------- */

/*
 * Attach one stdio stream of a process (exec_id "" or NULL: the init):
 * connect to port 1025, send "<container_id> <exec_id|-> <stream>\n",
 * read "OK\n" (or "ERR <message>\n": -1 with that message). Returns the
 * connected fd, a raw byte stream from then on. stream: "stdin",
 * "stdout" or "stderr". Half-close stdin with shutdown(fd, SHUT_WR).
 */
int agent_attach_stream(struct agent_client *c, const char *container_id,
			const char *exec_id, const char *stream,
			struct kiln_error *err);
/*
 * The same over conn, a connection to port 1025 made ahead (with
 * agent_vsock_connect), taken over (closed on failure). The agent waits
 * 10 s for the line on a new connection, then closes it.
 */
int agent_attach_stream_on(struct agent_client *c, int conn,
			   const char *container_id, const char *exec_id,
			   const char *stream, struct kiln_error *err);
/* The VMM's vsock socket c connects through. */
const char *agent_client_uds(const struct agent_client *c);

/*
 * The attach line for those arguments into buf (validated: ids as
 * agent_id_valid, a known stream). Returns its length or -1 with err.
 */
int agent_stream_header(char *buf, size_t len, const char *container_id,
			const char *exec_id, const char *stream,
			struct kiln_error *err);

#endif
