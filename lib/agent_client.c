/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's host side: Firecracker's vsock handshake over kiln-vmm's
 * Unix socket, ttrpc calls, stdio stream attachment (see agent_client.h
 * and agent/proto/agent.proto).
 */
#include "agent_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"
#include "ttrpc.h"

/* Between tries while a guest boots: short, as the benchmark times the
 * moment the agent first answers. */
#define RETRY_SLEEP_NS (10 * 1000 * 1000ull)
/* A try made at or after the deadline still gets this long to answer. */
#define MIN_TRY_NS (1000 * 1000 * 1000ull)

uint64_t agent_deadline_ms(uint64_t ms)
{
	return util_now_ns() + ms * 1000000ull;
}

bool agent_id_valid(const char *id)
{
	size_t i;

	if (id == NULL || id[0] == '\0')
		return false;
	for (i = 0; id[i] != '\0'; i++) {
		char ch = id[i];
		bool alnum = (ch >= 'a' && ch <= 'z') ||
			     (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');

		if (i >= AGENT_ID_MAX)
			return false;
		if (!alnum && (i == 0 || (ch != '_' && ch != '.' && ch != '-')))
			return false;
	}
	return true;
}

/* ms left until deadline for poll(), at least 0 */
static int ms_left(uint64_t deadline)
{
	uint64_t now = util_now_ns();

	if (now >= deadline)
		return 0;
	if (deadline - now > 3600ull * 1000000000ull)
		return 3600 * 1000;
	return (int)((deadline - now + 999999) / 1000000);
}

/*
 * Read one "\n"-ended line until deadline, consuming nothing after it:
 * each read takes what a peek showed up to and with the newline (a line
 * comes in one piece, in one peek and one read, not a syscall a byte).
 * Returns its length without the newline, or -1 with err; *eof tells an
 * EOF (the peer closed before the newline).
 */
static int read_line(int fd, char *buf, size_t len, uint64_t deadline,
		     bool *eof, struct kiln_error *err)
{
	size_t n = 0;

	*eof = false;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char *nl;
		ssize_t r;
		int pr;

		/* guest/VMM-controlled: a bounded line */
		if (n + 1 >= len)
			return kiln_error_set(err, 0, "answer line too long");
		pr = poll(&p, 1, ms_left(deadline));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return kiln_error_set(err, errno, "poll");
		if (pr == 0)
			return kiln_error_set(err, ETIMEDOUT,
					      "no answer line in time");
		r = recv(fd, buf + n, len - 1 - n, MSG_PEEK | MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return kiln_error_set(err, errno, "read");
		if (r == 0) {
			*eof = true;
			return kiln_error_set(err, 0,
					      "connection closed after %zu "
					      "bytes of its answer",
					      n);
		}
		nl = memchr(buf + n, '\n', (size_t)r);
		if (nl != NULL)
			r = nl - (buf + n) + 1;
		/* what the peek showed is there: this read takes it all */
		if (recv(fd, buf + n, (size_t)r, MSG_DONTWAIT) != r)
			return kiln_error_set(err, errno, "read");
		n += (size_t)r;
		if (nl != NULL) {
			n--;
			break;
		}
	}
	buf[n] = '\0';
	/* guest/VMM-controlled: the line ends up in error messages and
	 * logs, as ttrpc status messages do */
	ttrpc_sanitise(buf);
	return (int)n;
}

/*
 * One try. *retry says whether a later try may succeed (the guest is
 * still booting) or the failure is final.
 */
static int vsock_try(const char *uds_path, uint32_t port, uint64_t deadline,
		     bool *retry, struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;
	char line[AGENT_LINE_MAX];
	char *end;
	bool eof;
	int n;

	*retry = false;
	if (strlen(uds_path) >= sizeof(sa.sun_path))
		return kiln_error_set(err, ENAMETOOLONG, "`%s`", uds_path);
	memcpy(sa.sun_path, uds_path, strlen(uds_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kiln_error_set(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		*retry = errno == ENOENT || errno == ECONNREFUSED ||
			 errno == EAGAIN;
		return kiln_error_set(err, errno, "connect `%s`", uds_path);
	}
	n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (util_write_all(fd, line, (size_t)n) < 0) {
		kiln_error_set(err, errno, "write");
		*retry = err == NULL || err->errnum == EPIPE ||
			 err->errnum == ECONNRESET;
		return -1;
	}
	n = read_line(fd, line, sizeof(line), deadline, &eof, err);
	if (n < 0) {
		/* the VMM closes the socket when the guest resets the
		 * connection: nothing listens on the port yet */
		*retry = eof || (err != NULL && err->errnum == ECONNRESET);
		if (eof)
			kiln_error_set(err, ECONNREFUSED,
				       "`%s`: guest port %u closed the "
				       "connection",
				       uds_path, port);
		return -1;
	}
	/* VMM-controlled: "OK <port>" */
	end = line;
	if (strncmp(line, "OK ", 3) == 0 && line[3] >= '0' && line[3] <= '9')
		strtoul(line + 3, &end, 10);
	if (end == line || *end != '\0')
		return kiln_error_set(err, 0,
				      "`%s`: unexpected answer to CONNECT %u: "
				      "\"%.64s\"",
				      uds_path, port, line);
	return steal_fd(&fd);
}

int agent_vsock_connect(const char *uds_path, uint32_t port,
			uint64_t deadline_ns, struct kiln_error *err)
{
	struct kiln_error last = { 0 };
	unsigned int tries = 0;

	for (;;) {
		uint64_t now = util_now_ns();
		uint64_t try_deadline = deadline_ns;
		bool retry;
		int fd;

		if (try_deadline < now + MIN_TRY_NS)
			try_deadline = now + MIN_TRY_NS;
		tries++;
		fd = vsock_try(uds_path, port, try_deadline, &retry, &last);
		if (fd >= 0)
			return fd;
		if (!retry)
			break;
		if (util_now_ns() + RETRY_SLEEP_NS >= deadline_ns) {
			if (tries == 1)
				break;
			if (err != NULL)
				*err = last;
			return kiln_error_wrap(err,
					       "guest port %u not reachable "
					       "in time (%u tries)",
					       port, tries);
		}
		nanosleep(&(struct timespec){ .tv_nsec = RETRY_SLEEP_NS },
			  NULL);
	}
	if (err != NULL)
		*err = last;
	return -1;
}

struct agent_client *agent_client_new(int fd, const char *uds_path,
				      uint64_t timeout_ns,
				      struct kiln_error *err)
{
	struct agent_client *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		close(fd);
		kiln_error_set(err, ENOMEM, "agent client");
		return NULL;
	}
	c->uds_path = strdup(uds_path != NULL ? uds_path : "");
	if (c->uds_path == NULL) {
		close(fd);
		free(c);
		kiln_error_set(err, ENOMEM, "agent client");
		return NULL;
	}
	c->timeout_ns = timeout_ns;
	c->rpc = ttrpc_client_new(fd, err);
	if (c->rpc == NULL) {
		agent_client_free(c);
		return NULL;
	}
	return c;
}

void agent_client_free(struct agent_client *c)
{
	if (c == NULL)
		return;
	if (c->rpc != NULL)
		ttrpc_client_free(c->rpc);
	free(c->uds_path);
	free(c);
}

static int check_call(struct agent_client *c, struct agent_check_info *info,
		      int *code, struct kiln_error *err);

struct agent_client *agent_client_connect(const char *uds_path,
					  uint64_t deadline_ns,
					  uint64_t timeout_ns,
					  struct kiln_error *err)
{
	for (;;) {
		struct agent_check_info info;
		struct agent_client *c;
		int fd, code = TTRPC_OK;
		uint64_t now;

		fd = agent_vsock_connect(uds_path, AGENT_RPC_PORT, deadline_ns,
					 err);
		if (fd < 0)
			return NULL;
		c = agent_client_new(fd, uds_path, timeout_ns, err);
		if (c == NULL)
			return NULL;
		/* the first Check may wait for the agent to finish setting up,
		 * but not past the deadline */
		now = util_now_ns();
		c->timeout_ns = deadline_ns > now + MIN_TRY_NS
					? deadline_ns - now
					: MIN_TRY_NS;
		if (check_call(c, &info, &code, err) == 0) {
			c->timeout_ns = timeout_ns;
			return c;
		}
		agent_client_free(c);
		/* a listener that accepted and then went away (an agent that
		 * restarts) is worth another try; an error status is not */
		if (code != TTRPC_UNAVAILABLE ||
		    util_now_ns() + RETRY_SLEEP_NS >= deadline_ns)
			return NULL;
		nanosleep(&(struct timespec){ .tv_nsec = RETRY_SLEEP_NS },
			  NULL);
	}
}

/* ---- calls ------------------------------------------------------------ */

static int call(struct agent_client *c, const char *method,
		const ProtobufCMessage *req,
		const ProtobufCMessageDescriptor *resp_desc,
		ProtobufCMessage **resp, uint64_t timeout_ns, int *code,
		struct kiln_error *err)
{
	int dummy;

	*resp = NULL;
	if (code == NULL)
		code = &dummy;
	*code = TTRPC_OK;
	return ttrpc_call(c->rpc, AGENT_SERVICE, method, req, resp_desc, resp,
			  timeout_ns, code, err);
}

/* A call whose answer is Empty. */
static int call_empty(struct agent_client *c, const char *method,
		      const ProtobufCMessage *req, uint64_t timeout_ns,
		      int *code, struct kiln_error *err)
{
	ProtobufCMessage *resp;

	if (call(c, method, req, &kiln__agent__v1__empty__descriptor, &resp,
		 timeout_ns, code, err) < 0)
		return -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

static int check_id(const char *what, const char *id, bool may_be_empty,
		    struct kiln_error *err)
{
	if (may_be_empty && (id == NULL || id[0] == '\0'))
		return 0;
	if (!agent_id_valid(id))
		return kiln_error_set(err, 0, "invalid %s `%.80s`", what,
				      id != NULL ? id : "(null)");
	return 0;
}

/* A process's ids: the container's always, the exec's unless the init's. */
static int check_proc_ids(const char *container_id, const char *exec_id,
			  bool exec_may_be_empty, struct kiln_error *err)
{
	if (check_id("container id", container_id, false, err) < 0)
		return -1;
	return check_id("exec id", exec_id, exec_may_be_empty, err);
}

/* protobuf-c takes char *; it only reads them when packing */
#define STR(s) ((char *)((s) != NULL ? (s) : ""))

static int check_call(struct agent_client *c, struct agent_check_info *info,
		      int *code, struct kiln_error *err)
{
	Kiln__Agent__V1__Empty req = KILN__AGENT__V1__EMPTY__INIT;
	Kiln__Agent__V1__CheckResponse *resp;

	if (call(c, "Check", &req.base,
		 &kiln__agent__v1__check_response__descriptor,
		 (ProtobufCMessage **)&resp, c->timeout_ns, code, err) < 0)
		return -1;
	memset(info, 0, sizeof(*info));
	/* guest-controlled: cut to fit */
	snprintf(info->version, sizeof(info->version), "%s",
		 resp->version != NULL ? resp->version : "");
	info->uptime_ns = resp->uptime_ns;
	info->ready_ns = resp->ready_ns;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int agent_check(struct agent_client *c, struct agent_check_info *info,
		struct kiln_error *err)
{
	return check_call(c, info, NULL, err);
}

int agent_create_sandbox(struct agent_client *c,
			 const Kiln__Agent__V1__CreateSandboxRequest *req,
			 struct kiln_error *err)
{
	return call_empty(c, "CreateSandbox", &req->base, c->timeout_ns, NULL,
			  err);
}

int agent_create_container(struct agent_client *c,
			   const Kiln__Agent__V1__CreateContainerRequest *req,
			   struct kiln_error *err)
{
	if (check_id("container id", req->container_id, false, err) < 0)
		return -1;
	return call_empty(c, "CreateContainer", &req->base, c->timeout_ns, NULL,
			  err);
}

int agent_start(struct agent_client *c, const char *container_id, uint32_t *pid,
		struct kiln_error *err)
{
	Kiln__Agent__V1__ContainerRequest req =
		KILN__AGENT__V1__CONTAINER_REQUEST__INIT;
	Kiln__Agent__V1__StartResponse *resp;

	if (check_id("container id", container_id, false, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	if (call(c, "StartContainer", &req.base,
		 &kiln__agent__v1__start_response__descriptor,
		 (ProtobufCMessage **)&resp, c->timeout_ns, NULL, err) < 0)
		return -1;
	if (pid != NULL)
		*pid = resp->pid;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int agent_exec(struct agent_client *c, const char *container_id,
	       const char *exec_id, const Kiln__Agent__V1__Process *process,
	       uint32_t *pid, struct kiln_error *err)
{
	Kiln__Agent__V1__ExecProcessRequest req =
		KILN__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
	Kiln__Agent__V1__StartResponse *resp;

	if (check_proc_ids(container_id, exec_id, false, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	req.exec_id = STR(exec_id);
	req.process = (Kiln__Agent__V1__Process *)process;
	if (call(c, "ExecProcess", &req.base,
		 &kiln__agent__v1__start_response__descriptor,
		 (ProtobufCMessage **)&resp, c->timeout_ns, NULL, err) < 0)
		return -1;
	if (pid != NULL)
		*pid = resp->pid;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int agent_signal(struct agent_client *c, const char *container_id,
		 const char *exec_id, uint32_t signal, bool all,
		 struct kiln_error *err)
{
	Kiln__Agent__V1__SignalProcessRequest req =
		KILN__AGENT__V1__SIGNAL_PROCESS_REQUEST__INIT;

	if (check_proc_ids(container_id, exec_id, true, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	req.exec_id = STR(exec_id);
	req.signal = signal;
	req.all = all;
	return call_empty(c, "SignalProcess", &req.base, c->timeout_ns, NULL,
			  err);
}

int agent_wait(struct agent_client *c, const char *container_id,
	       const char *exec_id, struct agent_exit *exit,
	       struct kiln_error *err)
{
	Kiln__Agent__V1__ProcessRequest req =
		KILN__AGENT__V1__PROCESS_REQUEST__INIT;
	Kiln__Agent__V1__WaitProcessResponse *resp;

	if (check_proc_ids(container_id, exec_id, true, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	req.exec_id = STR(exec_id);
	if (call(c, "WaitProcess", &req.base,
		 &kiln__agent__v1__wait_process_response__descriptor,
		 (ProtobufCMessage **)&resp, 0, NULL, err) < 0)
		return -1;
	exit->status = resp->status;
	exit->signaled = resp->signaled;
	exit->exit_code = resp->exit_code;
	exit->signal = resp->signal;
	exit->exited_at_ns = resp->exited_at_ns;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int agent_resize(struct agent_client *c, const char *container_id,
		 const char *exec_id, uint32_t cols, uint32_t rows,
		 struct kiln_error *err)
{
	Kiln__Agent__V1__ResizeTtyRequest req =
		KILN__AGENT__V1__RESIZE_TTY_REQUEST__INIT;

	if (check_proc_ids(container_id, exec_id, true, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	req.exec_id = STR(exec_id);
	req.width = cols;
	req.height = rows;
	return call_empty(c, "ResizeTty", &req.base, c->timeout_ns, NULL, err);
}

int agent_close_stdin(struct agent_client *c, const char *container_id,
		      const char *exec_id, struct kiln_error *err)
{
	Kiln__Agent__V1__ProcessRequest req =
		KILN__AGENT__V1__PROCESS_REQUEST__INIT;

	if (check_proc_ids(container_id, exec_id, true, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	req.exec_id = STR(exec_id);
	return call_empty(c, "CloseStdin", &req.base, c->timeout_ns, NULL, err);
}

int agent_ps(struct agent_client *c, const char *container_id, uint32_t **pids,
	     size_t *n, struct kiln_error *err)
{
	Kiln__Agent__V1__ContainerRequest req =
		KILN__AGENT__V1__CONTAINER_REQUEST__INIT;
	Kiln__Agent__V1__PsResponse *resp;

	*pids = NULL;
	*n = 0;
	if (check_id("container id", container_id, false, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	if (call(c, "Ps", &req.base, &kiln__agent__v1__ps_response__descriptor,
		 (ProtobufCMessage **)&resp, c->timeout_ns, NULL, err) < 0)
		return -1;
	/* guest-controlled: n_pids is bounded by the message's size */
	if (resp->n_pids > 0) {
		*pids = calloc(resp->n_pids, sizeof(**pids));
		if (*pids == NULL) {
			protobuf_c_message_free_unpacked(&resp->base, NULL);
			return kiln_error_set(err, ENOMEM, "Ps");
		}
		memcpy(*pids, resp->pids, resp->n_pids * sizeof(**pids));
		*n = resp->n_pids;
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int agent_stats(struct agent_client *c, const char *container_id,
		struct agent_stats *st, struct kiln_error *err)
{
	Kiln__Agent__V1__ContainerRequest req =
		KILN__AGENT__V1__CONTAINER_REQUEST__INIT;
	Kiln__Agent__V1__StatsResponse *r;

	if (check_id("container id", container_id, false, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	if (call(c, "StatsContainer", &req.base,
		 &kiln__agent__v1__stats_response__descriptor,
		 (ProtobufCMessage **)&r, c->timeout_ns, NULL, err) < 0)
		return -1;
	*st = (struct agent_stats){
		.cpu_usage_usec = r->cpu_usage_usec,
		.cpu_user_usec = r->cpu_user_usec,
		.cpu_system_usec = r->cpu_system_usec,
		.memory_usage_bytes = r->memory_usage_bytes,
		.memory_limit_bytes = r->memory_limit_bytes,
		.memory_oom_kills = r->memory_oom_kills,
		.pids_current = r->pids_current,
		.pids_limit = r->pids_limit,
		.blkio_read_bytes = r->blkio_read_bytes,
		.blkio_write_bytes = r->blkio_write_bytes,
		.net_rx_bytes = r->net_rx_bytes,
		.net_tx_bytes = r->net_tx_bytes,
	};
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int agent_remove(struct agent_client *c, const char *container_id,
		 struct kiln_error *err)
{
	Kiln__Agent__V1__ContainerRequest req =
		KILN__AGENT__V1__CONTAINER_REQUEST__INIT;

	if (check_id("container id", container_id, false, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	return call_empty(c, "RemoveContainer", &req.base, c->timeout_ns, NULL,
			  err);
}

int agent_update(struct agent_client *c, const char *container_id,
		 const Kiln__Agent__V1__Resources *resources,
		 struct kiln_error *err)
{
	Kiln__Agent__V1__UpdateContainerRequest req =
		KILN__AGENT__V1__UPDATE_CONTAINER_REQUEST__INIT;

	if (check_id("container id", container_id, false, err) < 0)
		return -1;
	req.container_id = STR(container_id);
	req.resources = (Kiln__Agent__V1__Resources *)resources;
	return call_empty(c, "UpdateContainer", &req.base, c->timeout_ns, NULL,
			  err);
}

int agent_oom_event(struct agent_client *c, char **container_id,
		    struct kiln_error *err)
{
	Kiln__Agent__V1__Empty req = KILN__AGENT__V1__EMPTY__INIT;
	Kiln__Agent__V1__GetOOMEventResponse *resp;

	*container_id = NULL;
	if (call(c, "GetOOMEvent", &req.base,
		 &kiln__agent__v1__get_oomevent_response__descriptor,
		 (ProtobufCMessage **)&resp, 0, NULL, err) < 0)
		return -1;
	*container_id =
		strdup(resp->container_id != NULL ? resp->container_id : "");
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	if (*container_id == NULL)
		return kiln_error_set(err, ENOMEM, "GetOOMEvent");
	return 0;
}

int agent_set_time(struct agent_client *c, int64_t sec, int64_t nsec,
		   struct kiln_error *err)
{
	Kiln__Agent__V1__SetTimeRequest req =
		KILN__AGENT__V1__SET_TIME_REQUEST__INIT;

	req.sec = sec;
	req.nsec = nsec;
	return call_empty(c, "SetTime", &req.base, c->timeout_ns, NULL, err);
}

int agent_reseed(struct agent_client *c, const void *data, size_t len,
		 struct kiln_error *err)
{
	Kiln__Agent__V1__ReseedRandomRequest req =
		KILN__AGENT__V1__RESEED_RANDOM_REQUEST__INIT;

	req.data.data = (uint8_t *)data;
	req.data.len = len;
	return call_empty(c, "ReseedRandom", &req.base, c->timeout_ns, NULL,
			  err);
}

int agent_set_identity(struct agent_client *c, int64_t sec, int64_t nsec,
		       const void *seed, size_t len, struct kiln_error *err)
{
	Kiln__Agent__V1__SetIdentityRequest req =
		KILN__AGENT__V1__SET_IDENTITY_REQUEST__INIT;
	int code = TTRPC_OK;

	req.sec = sec;
	req.nsec = nsec;
	req.seed.data = (uint8_t *)seed;
	req.seed.len = len;
	if (call_empty(c, "SetIdentity", &req.base, c->timeout_ns, &code,
		       err) == 0)
		return 0;
	/* an agent from before SetIdentity */
	if (code != TTRPC_UNIMPLEMENTED)
		return -1;
	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if (agent_reseed(c, seed, len, err) < 0)
		return -1;
	return agent_set_time(c, sec, nsec, err);
}

int agent_shutdown(struct agent_client *c, struct kiln_error *err)
{
	Kiln__Agent__V1__Empty req = KILN__AGENT__V1__EMPTY__INIT;
	int code = TTRPC_OK;

	if (call_empty(c, "Shutdown", &req.base, c->timeout_ns, &code, err) ==
	    0)
		return 0;
	return code == TTRPC_UNAVAILABLE ? 0 : -1;
}

/* ---- stdio streams ---------------------------------------------------- */

int agent_stream_header(char *buf, size_t len, const char *container_id,
			const char *exec_id, const char *stream,
			struct kiln_error *err)
{
	int n;

	if (check_proc_ids(container_id, exec_id, true, err) < 0)
		return -1;
	if (stream == NULL ||
	    (strcmp(stream, "stdin") != 0 && strcmp(stream, "stdout") != 0 &&
	     strcmp(stream, "stderr") != 0))
		return kiln_error_set(err, 0, "unknown stream `%s`",
				      stream != NULL ? stream : "(null)");
	n = snprintf(buf, len, "%s %s %s\n", container_id,
		     exec_id != NULL && exec_id[0] != '\0' ? exec_id : "-",
		     stream);
	if (n < 0 || (size_t)n >= len)
		return kiln_error_set(err, ENOBUFS, "stream header");
	return n;
}

/* When an attach gives up: the client's call timeout from now, or 30 s. */
static uint64_t attach_deadline(const struct agent_client *c)
{
	return util_now_ns() +
	       (c->timeout_ns != 0 ? c->timeout_ns : 30 * MIN_TRY_NS);
}

int agent_attach_stream(struct agent_client *c, const char *container_id,
			const char *exec_id, const char *stream,
			struct kiln_error *err)
{
	int fd = agent_vsock_connect(c->uds_path, AGENT_STREAM_PORT,
				     attach_deadline(c), err);

	if (fd < 0)
		return kiln_error_wrap(err, "attach %s", stream);
	return agent_attach_stream_on(c, fd, container_id, exec_id, stream,
				      err);
}

int agent_attach_stream_on(struct agent_client *c, int conn,
			   const char *container_id, const char *exec_id,
			   const char *stream, struct kiln_error *err)
{
	char line[AGENT_LINE_MAX];
	cleanup_close int fd = conn;
	uint64_t deadline;
	bool eof;
	int n;

	n = agent_stream_header(line, sizeof(line), container_id, exec_id,
				stream, err);
	if (n < 0)
		return -1;
	deadline = attach_deadline(c);
	if (util_write_all(fd, line, (size_t)n) < 0)
		n = kiln_error_set(err, errno, "write");
	else
		n = read_line(fd, line, sizeof(line), deadline, &eof, err);
	if (n < 0)
		return kiln_error_wrap(
			err, "attach %s of %s/%s", stream, container_id,
			exec_id != NULL && exec_id[0] != '\0' ? exec_id : "-");
	/* guest-controlled: "OK" or "ERR <message>", shown cut and
	 * sanitised (read_line) */
	if (strcmp(line, "OK") == 0)
		return steal_fd(&fd);
	if (strncmp(line, "ERR", 3) == 0 && (line[3] == '\0' || line[3] == ' '))
		return kiln_error_set(err, 0, "attach %s of %s: %.200s", stream,
				      container_id,
				      line[3] == ' ' ? line + 4 : "refused");
	return kiln_error_set(err, 0,
			      "attach %s of %s: unexpected answer \"%.64s\"",
			      stream, container_id, line);
}

const char *agent_client_uds(const struct agent_client *c)
{
	return c->uds_path;
}

int agent_configure_network(struct agent_client *c,
			    const Kiln__Agent__V1__ConfigureNetworkRequest *req,
			    struct kiln_error *err)
{
	return call_empty(c, "ConfigureNetwork", &req->base, c->timeout_ns,
			  NULL, err);
}
