/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/agent_client.c against a fake kiln-vmm vsock socket: the CONNECT
 * handshake and its retries while a guest boots, ttrpc calls to a stub
 * agent (lib/ttrpc.c's server), stream attachment and its "ERR" answers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../lib/agent_client.h"
#include "../../lib/cleanup.h"
#include "../../lib/ttrpc.h"
#include "../../lib/util.h"
#include "tap.h"

/* ---- the stub agent ----------------------------------------------------- */

static int stub_check(void *ctx, const ProtobufCMessage *req,
		      ProtobufCMessage **resp, struct kiln_error *err)
{
	Kiln__Agent__V1__CheckResponse *r = (void *)ttrpc_alloc_msg(
		&kiln__agent__v1__check_response__descriptor);

	r->version = strdup("stub-1.0");
	r->uptime_ns = 2000;
	r->ready_ns = 1000;
	*resp = &r->base;
	return TTRPC_OK;
}

static int stub_start(void *ctx, const ProtobufCMessage *req,
		      ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__ContainerRequest *q = (const void *)req;
	Kiln__Agent__V1__StartResponse *r;

	if (strcmp(q->container_id, "c1") != 0) {
		kiln_error_set(err, 0, "no container `%s`", q->container_id);
		return TTRPC_NOT_FOUND;
	}
	r = (void *)ttrpc_alloc_msg(
		&kiln__agent__v1__start_response__descriptor);
	r->pid = 42;
	*resp = &r->base;
	return TTRPC_OK;
}

static int stub_wait(void *ctx, const ProtobufCMessage *req,
		     ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__ProcessRequest *q = (const void *)req;
	Kiln__Agent__V1__WaitProcessResponse *r = (void *)ttrpc_alloc_msg(
		&kiln__agent__v1__wait_process_response__descriptor);

	/* "-" never reaches the agent: the init is exec_id "" */
	r->status = strcmp(q->exec_id, "") == 0 ? 143 : 7;
	r->signaled = r->status == 143;
	r->signal = r->signaled ? 15 : 0;
	r->exit_code = r->signaled ? 0 : 7;
	*resp = &r->base;
	return TTRPC_OK;
}

static int stub_ps(void *ctx, const ProtobufCMessage *req,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	Kiln__Agent__V1__PsResponse *r = (void *)ttrpc_alloc_msg(
		&kiln__agent__v1__ps_response__descriptor);

	r->pids = malloc(3 * sizeof(*r->pids));
	r->n_pids = 3;
	r->pids[0] = 1;
	r->pids[1] = 20;
	r->pids[2] = 300;
	*resp = &r->base;
	return TTRPC_OK;
}

static int stub_stats(void *ctx, const ProtobufCMessage *req,
		      ProtobufCMessage **resp, struct kiln_error *err)
{
	Kiln__Agent__V1__StatsResponse *r = (void *)ttrpc_alloc_msg(
		&kiln__agent__v1__stats_response__descriptor);

	r->memory_usage_bytes = 1 << 20;
	r->cpu_usage_usec = 1234;
	r->net_tx_bytes = 99;
	*resp = &r->base;
	return TTRPC_OK;
}

static int stub_empty(void *ctx, const ProtobufCMessage *req,
		      ProtobufCMessage **resp, struct kiln_error *err)
{
	*resp = ttrpc_alloc_msg(&kiln__agent__v1__empty__descriptor);
	return TTRPC_OK;
}

static int stub_signal(void *ctx, const ProtobufCMessage *req,
		       ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__SignalProcessRequest *q = (const void *)req;

	if (q->signal != 15 || !q->all || strcmp(q->exec_id, "") != 0) {
		kiln_error_set(err, 0, "unexpected signal %u all=%d exec `%s`",
			       q->signal, q->all, q->exec_id);
		return TTRPC_INVALID_ARGUMENT;
	}
	return stub_empty(ctx, req, resp, err);
}

/* What the identity calls brought; SetIdentity as an older agent answers
 * it (UNIMPLEMENTED) unless identity_known. */
static bool identity_known = true;
static int64_t got_sec;
static size_t got_seed;
static unsigned int identity_calls, time_calls, reseed_calls;

static int stub_identity(void *ctx, const ProtobufCMessage *req,
			 ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__SetIdentityRequest *q = (const void *)req;

	if (!__atomic_load_n(&identity_known, __ATOMIC_SEQ_CST)) {
		kiln_error_set(err, 0, "no method SetIdentity");
		return TTRPC_UNIMPLEMENTED;
	}
	__atomic_add_fetch(&identity_calls, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&got_sec, q->sec, __ATOMIC_SEQ_CST);
	__atomic_store_n(&got_seed, q->seed.len, __ATOMIC_SEQ_CST);
	return stub_empty(ctx, req, resp, err);
}

static int stub_time(void *ctx, const ProtobufCMessage *req,
		     ProtobufCMessage **resp, struct kiln_error *err)
{
	__atomic_add_fetch(&time_calls, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&got_sec,
			 ((const Kiln__Agent__V1__SetTimeRequest *)req)->sec,
			 __ATOMIC_SEQ_CST);
	return stub_empty(ctx, req, resp, err);
}

static int stub_reseed(void *ctx, const ProtobufCMessage *req,
		       ProtobufCMessage **resp, struct kiln_error *err)
{
	reseed_calls++;
	got_seed =
		((const Kiln__Agent__V1__ReseedRandomRequest *)req)->data.len;
	return stub_empty(ctx, req, resp, err);
}

/* The guest powers off before it answers: the connection just ends. */
static int stub_conn_fd = -1;
static int stub_shutdown(void *ctx, const ProtobufCMessage *req,
			 ProtobufCMessage **resp, struct kiln_error *err)
{
	shutdown(stub_conn_fd, SHUT_RDWR);
	usleep(100 * 1000);
	return stub_empty(ctx, req, resp, err);
}

#define M(name, desc, fn)                      \
	{                                      \
		AGENT_SERVICE, name, &desc, fn \
	}
static const struct ttrpc_method stub_methods[] = {
	M("Check", kiln__agent__v1__empty__descriptor, stub_check),
	M("StartContainer", kiln__agent__v1__container_request__descriptor,
	  stub_start),
	M("WaitProcess", kiln__agent__v1__process_request__descriptor,
	  stub_wait),
	M("Ps", kiln__agent__v1__container_request__descriptor, stub_ps),
	M("StatsContainer", kiln__agent__v1__container_request__descriptor,
	  stub_stats),
	M("SignalProcess", kiln__agent__v1__signal_process_request__descriptor,
	  stub_signal),
	M("SetTime", kiln__agent__v1__set_time_request__descriptor, stub_time),
	M("ReseedRandom", kiln__agent__v1__reseed_random_request__descriptor,
	  stub_reseed),
	M("SetIdentity", kiln__agent__v1__set_identity_request__descriptor,
	  stub_identity),
	M("Shutdown", kiln__agent__v1__empty__descriptor, stub_shutdown),
};
static const struct ttrpc_server stub_server = {
	.methods = stub_methods,
	.nmethods = ARRAY_SIZE(stub_methods),
};

/* ---- the fake VMM socket ------------------------------------------------ */

struct fake_vmm {
	char path[108];
	int lfd;
	unsigned int delay_ms; /* before it binds: a VMM still starting */
	unsigned int refuse;   /* first N CONNECTs closed: nothing listens */
	const char *ok_line;   /* answer to CONNECT, "OK 1234\n" */
	unsigned int conns;    /* connections accepted */
	char last_connect[64]; /* the last CONNECT line seen */
	char last_header[128]; /* the last stream header seen */
	pthread_t thread;
};

static int read_line_raw(int fd, char *buf, size_t len)
{
	size_t n = 0;
	char ch;

	while (n + 1 < len && read(fd, &ch, 1) == 1) {
		buf[n++] = ch;
		if (ch == '\n')
			break;
	}
	buf[n] = '\0';
	return (int)n;
}

static void write_str(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		perror("fake vmm write");
}

/* The guest side of port 1025: answers from the header it reads. */
static void fake_stream(struct fake_vmm *v, int fd)
{
	read_line_raw(fd, v->last_header, sizeof(v->last_header));
	if (strcmp(v->last_header, "c1 - stdout\n") == 0)
		write_str(fd, "OK\nhello from the guest");
	else if (strcmp(v->last_header, "c1 e1 stdin\n") == 0)
		write_str(fd, "ERR no process e1 in c1\n");
	else if (strcmp(v->last_header, "c1 e2 stdin\n") == 0)
		/* a guest that writes to the host's terminal and logs */
		write_str(fd, "ERR gone\x1b]0;owned\x07 \xff\xfe\r\x7f end\n");
	else if (strcmp(v->last_header, "c1 e3 stdin\n") == 0)
		write_str(fd, "\x1b[2JHUH\n");
	else
		write_str(fd, "WHAT\n");
	close(fd);
}

static void *fake_vmm_main(void *arg)
{
	struct fake_vmm *v = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	usleep(v->delay_ms * 1000);
	memcpy(sa.sun_path, v->path, strlen(v->path) + 1);
	/* atomic: fake_vmm_stop polls it from the test's thread */
	__atomic_store_n(&v->lfd,
			 socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
			 __ATOMIC_RELEASE);
	if (bind(v->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(v->lfd, 8) < 0) {
		perror("fake vmm bind");
		return NULL;
	}
	for (;;) {
		int fd = accept4(v->lfd, NULL, NULL, SOCK_CLOEXEC);
		char line[64];

		if (fd < 0)
			break;
		__atomic_fetch_add(&v->conns, 1, __ATOMIC_RELAXED);
		read_line_raw(fd, line, sizeof(line));
		snprintf(v->last_connect, sizeof(v->last_connect), "%s", line);
		if (v->refuse > 0) {
			v->refuse--;
			close(fd);
			continue;
		}
		write_str(fd, v->ok_line);
		if (strcmp(line, "CONNECT 1025\n") == 0) {
			fake_stream(v, fd);
		} else if (strcmp(line, "CONNECT 1024\n") == 0) {
			stub_conn_fd = fd;
			ttrpc_serve_detached(&stub_server, fd, NULL);
		} else {
			close(fd);
		}
	}
	return NULL;
}

static void fake_vmm_start(struct fake_vmm *v, const char *name)
{
	snprintf(v->path, sizeof(v->path), "/tmp/kiln-test-agent-%d-%s.sock",
		 (int)getpid(), name);
	unlink(v->path);
	if (v->ok_line == NULL)
		v->ok_line = "OK 1234\n";
	v->lfd = -1;
	pthread_create(&v->thread, NULL, fake_vmm_main, v);
}

static void fake_vmm_stop(struct fake_vmm *v)
{
	/* wait for a late bind, then wake accept() */
	usleep(10 * 1000);
	while (__atomic_load_n(&v->lfd, __ATOMIC_ACQUIRE) < 0)
		usleep(10 * 1000);
	shutdown(v->lfd, SHUT_RDWR);
	pthread_join(v->thread, NULL);
	close(v->lfd);
	unlink(v->path);
}

/* ---- tests -------------------------------------------------------------- */

/* printable ASCII only: nothing that a terminal or a log would act on */
static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static void test_ids_and_headers(void)
{
	char buf[AGENT_LINE_MAX], id64[65], id65[66];
	struct kiln_error err = { 0 };

	memset(id64, 'a', 64);
	id64[64] = '\0';
	memset(id65, 'a', 65);
	id65[65] = '\0';
	ok(agent_id_valid("c1") && agent_id_valid("A.b_c-9") &&
		   agent_id_valid(id64),
	   "valid ids accepted (64 bytes too)");
	ok(!agent_id_valid("") && !agent_id_valid(NULL) &&
		   !agent_id_valid("-x") && !agent_id_valid("a b") &&
		   !agent_id_valid("a\nb") && !agent_id_valid("a/b") &&
		   !agent_id_valid(id65),
	   "bad ids refused: empty, leading '-', space, newline, '/', 65 "
	   "bytes");
	is_int(agent_stream_header(buf, sizeof(buf), "c1", NULL, "stdout",
				   &err),
	       12, "init's stream header length");
	ok(strcmp(buf, "c1 - stdout\n") == 0, "init's stream named \"-\"");
	agent_stream_header(buf, sizeof(buf), "c1", "", "stderr", &err);
	ok(strcmp(buf, "c1 - stderr\n") == 0, "exec_id \"\" is the init");
	agent_stream_header(buf, sizeof(buf), "ctr.2", "e-1", "stdin", &err);
	ok(strcmp(buf, "ctr.2 e-1 stdin\n") == 0, "exec stream header");
	ok(agent_stream_header(buf, sizeof(buf), "c1", NULL, "stdfoo", &err) <
			   0 &&
		   strstr(err.msg, "stdfoo") != NULL,
	   "unknown stream refused: %s", err.msg);
	ok(agent_stream_header(buf, sizeof(buf), "c 1", NULL, "stdin", &err) <
			   0 &&
		   strstr(err.msg, "container id") != NULL,
	   "an id with a space cannot inject a header: %s", err.msg);
	ok(agent_stream_header(buf, sizeof(buf), "c1", "e\n1", "stdin", &err) <
		   0,
	   "an exec id with a newline refused");
	ok(agent_stream_header(buf, 8, "c1", NULL, "stdout", &err) < 0, "a "
									"short "
									"buffer"
									" refus"
									"ed");
}

static void test_calls(void)
{
	struct fake_vmm v = { 0 };
	struct kiln_error err = { 0 };
	struct agent_check_info info;
	struct agent_client *c;
	struct agent_exit ex;
	struct agent_stats st;
	uint32_t pid = 0, *pids = NULL;
	size_t n = 0;
	char buf[64];
	ssize_t got;
	int fd;

	fake_vmm_start(&v, "calls");
	c = agent_client_connect(v.path, agent_deadline_ms(5000), 5000000000ull,
				 &err);
	ok(c != NULL, "connect and Check: %s", c ? "ok" : err.msg);
	if (c == NULL) {
		fake_vmm_stop(&v);
		return;
	}
	ok(strcmp(v.last_connect, "CONNECT 1024\n") == 0, "the handshake line "
							  "is \"CONNECT "
							  "1024\\n\"");
	ok(agent_check(c, &info, &err) == 0 &&
		   strcmp(info.version, "stub-1.0") == 0 &&
		   info.uptime_ns == 2000 && info.ready_ns == 1000,
	   "Check answers version and times");
	ok(agent_start(c, "c1", &pid, &err) == 0 && pid == 42, "StartContainer "
							       "returns the "
							       "pid");
	ok(agent_start(c, "c2", &pid, &err) < 0 && strcmp(err.msg, "StartContai"
								   "ner: no "
								   "container "
								   "`c2`") == 0,
	   "an error status becomes the error message: %s", err.msg);
	ok(agent_start(c, "bad id", &pid, &err) < 0 &&
		   strstr(err.msg, "invalid container id") != NULL,
	   "a bad id never leaves the host: %s", err.msg);
	ok(agent_wait(c, "c1", NULL, &ex, &err) == 0 && ex.status == 143 &&
		   ex.signaled && ex.signal == 15,
	   "WaitProcess of the init (exec_id \"\")");
	ok(agent_wait(c, "c1", "e1", &ex, &err) == 0 && ex.status == 7 &&
		   !ex.signaled && ex.exit_code == 7,
	   "WaitProcess of an exec");
	ok(agent_ps(c, "c1", &pids, &n, &err) == 0 && n == 3 && pids[2] == 300,
	   "Ps returns the pids");
	free(pids);
	ok(agent_stats(c, "c1", &st, &err) == 0 &&
		   st.memory_usage_bytes == 1 << 20 &&
		   st.cpu_usage_usec == 1234 && st.net_tx_bytes == 99,
	   "StatsContainer fields");
	ok(agent_signal(c, "c1", "", 15, true, &err) == 0, "SignalProcess "
							   "carries signal and "
							   "all");
	ok(agent_set_time(c, 1700000000, 5, &err) == 0, "SetTime");
	{
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
		__atomic_store_n(&time_calls, 0, __ATOMIC_SEQ_CST);
		memset(&err, 0, sizeof(err));
		ok(agent_set_identity(c, 1700000001, 5, "0123456789", 10,
				      &err) == 0 &&
			   LOAD(identity_calls) == 1 && LOAD(time_calls) == 0 &&
			   LOAD(reseed_calls) == 0 &&
			   LOAD(got_sec) == 1700000001 && LOAD(got_seed) == 10,
		   "SetIdentity: clock and seed in one call: %s", err.msg);
		__atomic_store_n(&identity_known, false, __ATOMIC_SEQ_CST);
		ok(agent_set_identity(c, 1700000002, 5, "0123456789ab", 12,
				      &err) == 0 &&
			   LOAD(identity_calls) == 1 && LOAD(time_calls) == 1 &&
			   LOAD(reseed_calls) == 1 &&
			   LOAD(got_sec) == 1700000002 && LOAD(got_seed) == 12,
		   "an agent without SetIdentity: ReseedRandom and SetTime: "
		   "%s",
		   err.msg);
		__atomic_store_n(&identity_known, true, __ATOMIC_SEQ_CST);
#undef LOAD
	}
	ok(agent_remove(c, "c1", &err) < 0 && strstr(err.msg, "RemoveContaine"
							      "r") != NULL,
	   "an unknown method is an error naming it: %s", err.msg);

	fd = agent_attach_stream(c, "c1", NULL, "stdout", &err);
	ok(fd >= 0, "attach stdout: %s", fd >= 0 ? "ok" : err.msg);
	ok(strcmp(v.last_header, "c1 - stdout\n") == 0, "the attach header "
							"reaches the guest as "
							"is");
	if (fd >= 0) {
		size_t total = 0;

		while ((got = read(fd, buf + total, sizeof(buf) - 1 - total)) >
		       0)
			total += (size_t)got;
		buf[total] = '\0';
		ok(strcmp(buf, "hello from the guest") == 0,
		   "the stream starts right after \"OK\\n\": \"%s\"", buf);
		close(fd);
	}
	/* a connection made ahead, its line sent later */
	fd = agent_vsock_connect(agent_client_uds(c), AGENT_STREAM_PORT,
				 agent_deadline_ms(2000), &err);
	usleep(20 * 1000);
	fd = fd >= 0 ? agent_attach_stream_on(c, fd, "c1", NULL, "stdout", &err)
		     : -1;
	ok(fd >= 0 && strcmp(v.last_header, "c1 - stdout\n") == 0,
	   "attach stdout on a connection made ahead: %s",
	   fd >= 0 ? "ok" : err.msg);
	if (fd >= 0) {
		got = read(fd, buf, sizeof(buf) - 1);
		buf[got > 0 ? got : 0] = '\0';
		ok(strncmp(buf, "hello", 5) == 0,
		   "and its stream follows: \"%s\"", buf);
		close(fd);
	}
	fd = agent_attach_stream(c, "c1", "e1", "stdin", &err);
	ok(fd < 0 && strstr(err.msg, "no process e1 in c1") != NULL,
	   "\"ERR <message>\" becomes the error: %s", err.msg);
	fd = agent_attach_stream(c, "c1", NULL, "stderr", &err);
	ok(fd < 0 && strstr(err.msg, "unexpected answer") != NULL,
	   "another answer is an error: %s", err.msg);
	fd = agent_attach_stream(c, "c1", "e2", "stdin", &err);
	ok(fd < 0 && strstr(err.msg, "gone?]0;owned? ???? end") != NULL &&
		   printable(err.msg),
	   "an \"ERR\" line is sanitised: %s", err.msg);
	fd = agent_attach_stream(c, "c1", "e3", "stdin", &err);
	ok(fd < 0 && strstr(err.msg, "\"?[2JHUH\"") != NULL &&
		   printable(err.msg),
	   "and so is another answer: %s", err.msg);

	ok(agent_shutdown(c, &err) == 0, "Shutdown: a connection that ends is "
					 "a guest powering off");
	ok(agent_check(c, &info, &err) < 0,
	   "calls after the connection ended fail: %s", err.msg);
	agent_client_free(c);
	fake_vmm_stop(&v);
}

/* A VMM not up yet, and a guest whose agent does not listen yet. */
static void test_retry(void)
{
	struct fake_vmm v = { .delay_ms = 300, .refuse = 3 };
	struct kiln_error err = { 0 };
	struct agent_client *c;
	uint64_t t0 = util_now_ns();

	fake_vmm_start(&v, "retry");
	c = agent_client_connect(v.path, agent_deadline_ms(5000), 5000000000ull,
				 &err);
	ok(c != NULL,
	   "connect retries until the socket exists and the port "
	   "answers: %s",
	   c ? "ok" : err.msg);
	ok(util_now_ns() - t0 >= 300000000ull, "it waited for the socket");
	is_int(v.conns, 4, "three CONNECTs closed without OK, then one OK");
	agent_client_free(c);
	fake_vmm_stop(&v);
}

static void test_deadline(void)
{
	struct fake_vmm v = { .refuse = 1000000 };
	struct kiln_error err = { 0 };
	char path[108];
	uint64_t t0, dt;
	int fd;

	snprintf(path, sizeof(path), "/tmp/kiln-test-agent-%d-none.sock",
		 (int)getpid());
	unlink(path);
	t0 = util_now_ns();
	fd = agent_vsock_connect(path, 1024, agent_deadline_ms(300), &err);
	dt = util_now_ns() - t0;
	ok(fd < 0 && strstr(err.msg, "not reachable in time") != NULL &&
		   strstr(err.msg, path) != NULL,
	   "no socket: fails at the deadline naming it: %s", err.msg);
	ok(dt >= 280000000ull && dt < 3000000000ull,
	   "after about 300 ms (%llu ms)", (unsigned long long)(dt / 1000000));

	fd = agent_vsock_connect(path, 1024, 0, &err);
	ok(fd < 0 && err.errnum == ENOENT, "deadline 0: one try: %s", err.msg);

	fake_vmm_start(&v, "deadline");
	/* long enough for the fake's late bind on a loaded host: the
	 * error must be the port's, not the missing socket's */
	usleep(50 * 1000);
	fd = agent_vsock_connect(v.path, 1024, agent_deadline_ms(2000), &err);
	ok(fd < 0 && strstr(err.msg, "closed the connection") != NULL,
	   "a port that never listens: %s", err.msg);
	ok(__atomic_load_n(&v.conns, __ATOMIC_RELAXED) >= 2,
	   "it was retried (%u tries)",
	   __atomic_load_n(&v.conns, __ATOMIC_RELAXED));
	fake_vmm_stop(&v);
}

static void test_bad_answer(void)
{
	struct fake_vmm v = { .ok_line = "HELLO\n" };
	struct kiln_error err = { 0 };
	int fd;

	fake_vmm_start(&v, "bad");
	usleep(50 * 1000);
	fd = agent_vsock_connect(v.path, 1024, agent_deadline_ms(2000), &err);
	ok(fd < 0 &&
		   strstr(err.msg, "unexpected answer to CONNECT 1024") != NULL,
	   "a VMM that does not answer OK: %s", err.msg);
	is_int(v.conns, 1, "and no retry");
	fake_vmm_stop(&v);
}

/* a VMM-controlled line is bounded: one past AGENT_LINE_MAX is refused */
static void test_long_answer(void)
{
	static char line[AGENT_LINE_MAX + 2];
	struct fake_vmm v = { .ok_line = line };
	struct kiln_error err = { 0 };
	int fd;

	memset(line, 'A', AGENT_LINE_MAX);
	line[AGENT_LINE_MAX] = '\n';
	fake_vmm_start(&v, "long");
	usleep(50 * 1000);
	fd = agent_vsock_connect(v.path, 1024, agent_deadline_ms(2000), &err);
	ok(fd < 0 && strstr(err.msg, "too long") != NULL,
	   "an answer line longer than %d bytes: %s", AGENT_LINE_MAX, err.msg);
	fake_vmm_stop(&v);
}

int main(void)
{
	test_ids_and_headers();
	test_calls();
	test_retry();
	test_deadline();
	test_bad_answer();
	test_long_answer();
	return tap_done();
}
