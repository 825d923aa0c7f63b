/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttrpc: framing, dispatch, and a client and server talking over a
 * socketpair. The test methods take and return ttrpc.KeyValue, so no
 * test-only .proto is needed.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/ttrpc.h"
#include "lib/ttrpc.pb-c.h"
#include "tap.h"

#define SVC "test.Svc"

/* ---- test methods ------------------------------------------------------ */

/* "Block" waits until the test opens the gate */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static unsigned int blocked;

static void gate_set(bool open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static unsigned int gate_waiters(void)
{
	unsigned int n;

	pthread_mutex_lock(&gate_lock);
	n = blocked;
	pthread_mutex_unlock(&gate_lock);
	return n;
}

static void msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Echo: value back as key and value; sleeps atoi(key) ms first */
static int h_echo(void *ctx, const ProtobufCMessage *req,
		  ProtobufCMessage **resp, struct kiln_error *err)
{
	const Ttrpc__KeyValue *in = (const Ttrpc__KeyValue *)req;
	Ttrpc__KeyValue *out;

	msleep(atoi(in->key));
	out = (Ttrpc__KeyValue *)ttrpc_alloc_msg(&ttrpc__key_value__descriptor);
	if (out == NULL)
		return TTRPC_INTERNAL;
	out->key = strdup(in->value);
	out->value = strdup(in->value);
	*resp = &out->base;
	return TTRPC_OK;
}

/* Fail: code atoi(key), message value; sets *resp to check it is freed */
static int h_fail(void *ctx, const ProtobufCMessage *req,
		  ProtobufCMessage **resp, struct kiln_error *err)
{
	const Ttrpc__KeyValue *in = (const Ttrpc__KeyValue *)req;

	*resp = ttrpc_alloc_msg(&ttrpc__key_value__descriptor);
	kiln_error_set(err, 0, "%s", in->value);
	return atoi(in->key);
}

static int h_errno(void *ctx, const ProtobufCMessage *req,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	return kiln_error_set(err, ENOENT, "open `%s`", "/x");
}

static int h_nil(void *ctx, const ProtobufCMessage *req,
		 ProtobufCMessage **resp, struct kiln_error *err)
{
	return TTRPC_OK;
}

static int h_block(void *ctx, const ProtobufCMessage *req,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	pthread_mutex_lock(&gate_lock);
	blocked++;
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	blocked--;
	pthread_mutex_unlock(&gate_lock);
	return h_echo(ctx, req, resp, err);
}

/* Hold: like Block, but answers nothing (its request may be large) */
static int h_hold(void *ctx, const ProtobufCMessage *req,
		  ProtobufCMessage **resp, struct kiln_error *err)
{
	pthread_mutex_lock(&gate_lock);
	blocked++;
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	blocked--;
	pthread_mutex_unlock(&gate_lock);
	return TTRPC_OK;
}

static const struct ttrpc_method methods[] = {
	{ SVC, "Echo", &ttrpc__key_value__descriptor, h_echo },
	{ SVC, "Fail", &ttrpc__key_value__descriptor, h_fail },
	{ SVC, "Errno", &ttrpc__key_value__descriptor, h_errno },
	{ SVC, "Nil", &ttrpc__key_value__descriptor, h_nil },
	{ SVC, "Block", &ttrpc__key_value__descriptor, h_block },
	{ SVC, "Hold", &ttrpc__key_value__descriptor, h_hold },
};
static const struct ttrpc_server server = { methods, ARRAY_SIZE(methods),
					    NULL };

/* ---- helpers ----------------------------------------------------------- */

static size_t pack_req(const char *service, const char *method,
		       const uint8_t *payload, size_t plen, uint8_t *buf)
{
	Ttrpc__Request r = TTRPC__REQUEST__INIT;

	r.service = (char *)service;
	r.method = (char *)method;
	r.payload.data = (uint8_t *)payload;
	r.payload.len = plen;
	return ttrpc__request__pack(&r, buf);
}

static size_t pack_kv(const char *key, const char *value, uint8_t *buf)
{
	Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT;

	kv.key = (char *)key;
	kv.value = (char *)value;
	return ttrpc__key_value__pack(&kv, buf);
}

/* dispatch one request; the unpacked Response (caller frees) */
static Ttrpc__Response *dispatch(const char *method, const uint8_t *payload,
				 size_t plen)
{
	uint8_t req[1024];
	size_t n = pack_req(SVC, method, payload, plen, req);
	cleanup_free uint8_t *out = NULL;
	size_t out_len;

	if (ttrpc_server_dispatch(&server, req, n, &out, &out_len) < 0)
		return NULL;
	return ttrpc__response__unpack(NULL, out_len, out);
}

static int call_kv(struct ttrpc_client *c, const char *method, const char *key,
		   const char *value, uint64_t timeout_ns, char **got,
		   int *code, struct kiln_error *err)
{
	Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT;
	ProtobufCMessage *resp;

	kv.key = (char *)key;
	kv.value = (char *)value;
	*got = NULL;
	if (ttrpc_call(c, SVC, method, &kv.base, &ttrpc__key_value__descriptor,
		       &resp, timeout_ns, code, err) < 0)
		return -1;
	*got = strdup(((Ttrpc__KeyValue *)resp)->value);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

/* ---- framing ----------------------------------------------------------- */

static void test_header(void)
{
	struct ttrpc_header h = { 0x123456, 0x89abcdef, TTRPC_RESPONSE, 0x5 };
	struct ttrpc_header g;
	struct kiln_error err = { 0 };
	uint8_t b[TTRPC_HEADER_LEN];
	static const uint8_t want[] = { 0,    0x12, 0x34, 0x56, 0x89,
					0xab, 0xcd, 0xef, 2,	5 };

	ttrpc_header_encode(&h, b);
	ok(memcmp(b, want, sizeof(want)) == 0, "header is big-endian");
	ok(ttrpc_header_decode(b, &g, &err) == 0 && g.length == h.length &&
		   g.stream_id == h.stream_id && g.type == h.type &&
		   g.flags == h.flags,
	   "header round trip");

	h.length = TTRPC_MAX_MSG;
	ttrpc_header_encode(&h, b);
	ok(ttrpc_header_decode(b, &g, &err) == 0, "4 MiB is allowed");
	h.length = TTRPC_MAX_MSG + 1;
	ttrpc_header_encode(&h, b);
	ok(ttrpc_header_decode(b, &g, &err) < 0 && strstr(err.msg, "limit"),
	   "4 MiB + 1 rejected: %s", err.msg);
	h.length = 1;
	h.type = 4;
	ttrpc_header_encode(&h, b);
	ok(ttrpc_header_decode(b, &g, &err) < 0 && strstr(err.msg, "unknown "
								   "ttrpc "
								   "message "
								   "type 4"),
	   "type 4 rejected: %s", err.msg);
	h.type = 0;
	ttrpc_header_encode(&h, b);
	ok(ttrpc_header_decode(b, &g, &err) < 0, "type 0 rejected");
}

struct split_arg {
	int fd;
	const uint8_t *buf;
	size_t len;
};

/* write one byte at a time, with pauses, to force short reads */
static void *split_writer(void *arg)
{
	struct split_arg *a = arg;

	for (size_t i = 0; i < a->len; i++) {
		if (write(a->fd, a->buf + i, 1) != 1)
			break;
		if (i % 4 == 0)
			msleep(1);
	}
	return NULL;
}

struct big_arg {
	int fd;
	const uint8_t *buf;
	int r;
};

static void *big_writer(void *arg)
{
	struct big_arg *a = arg;
	struct kiln_error e;

	a->r = ttrpc_write_msg(a->fd, 9, TTRPC_DATA, a->buf, 1 << 20, &e);
	return NULL;
}

static void test_read_write(void)
{
	int sv[2];
	struct kiln_error err = { 0 };
	struct ttrpc_header h;
	uint8_t *p;
	uint8_t frame[TTRPC_HEADER_LEN + 5];
	struct ttrpc_header fh = { 5, 7, TTRPC_REQUEST, 0 };
	pthread_t t;
	cleanup_free uint8_t *big = malloc(1 << 20);

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	ok(ttrpc_write_msg(sv[0], 3, TTRPC_RESPONSE, (const uint8_t *)"hello",
			   5, &err) == 0,
	   "write a frame");
	ok(ttrpc_read_msg(sv[1], &h, &p, &err) == 0 && h.length == 5 &&
		   h.stream_id == 3 && h.type == TTRPC_RESPONSE &&
		   memcmp(p, "hello", 5) == 0,
	   "read it back");
	free(p);
	ok(ttrpc_write_msg(sv[0], 5, TTRPC_REQUEST, NULL, 0, &err) == 0 &&
		   ttrpc_read_msg(sv[1], &h, &p, &err) == 0 && h.length == 0 &&
		   h.stream_id == 5,
	   "empty payload");
	free(p);

	/* 1 MiB: more than the socket buffer, so partial writes happen
	 * while the reader drains the other end */
	memset(big, 0xa5, 1 << 20);
	big[12345] = 1;
	struct big_arg ba = { .fd = sv[0], .buf = big };
	uint8_t *got = NULL;

	pthread_create(&t, NULL, big_writer, &ba);
	ok(ttrpc_read_msg(sv[1], &h, &got, &err) == 0 && h.length == 1u << 20 &&
		   got[12345] == 1 && got[(1 << 20) - 1] == 0xa5,
	   "1 MiB frame through a small socket buffer");
	pthread_join(t, NULL);
	ok(ba.r == 0, "1 MiB write");
	free(got);

	ttrpc_header_encode(&fh, frame);
	memcpy(frame + TTRPC_HEADER_LEN, "abcde", 5);
	struct split_arg a = { sv[0], frame, sizeof(frame) };
	pthread_create(&t, NULL, split_writer, &a);
	ok(ttrpc_read_msg(sv[1], &h, &p, &err) == 0 && h.length == 5 &&
		   memcmp(p, "abcde", 5) == 0,
	   "frame written a byte at a time");
	pthread_join(t, NULL);
	free(p);

	/* EOF inside the payload */
	if (write(sv[0], frame, sizeof(frame) - 2) < 0)
		ok(0, "write");
	shutdown(sv[0], SHUT_WR);
	ok(ttrpc_read_msg(sv[1], &h, &p, &err) < 0 && p == NULL &&
		   strstr(err.msg, "3 of 5 bytes"),
	   "EOF mid-message: %s", err.msg);
	close(sv[0]);
	close(sv[1]);

	/* EOF inside the header, and a clean EOF */
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	if (write(sv[0], frame, 4) < 0)
		ok(0, "write");
	shutdown(sv[0], SHUT_WR);
	ok(ttrpc_read_msg(sv[1], &h, &p, &err) < 0 && strstr(err.msg, "4 bytes "
								      "of a "
								      "ttrpc "
								      "header"),
	   "EOF mid-header: %s", err.msg);
	ok(ttrpc_read_msg(sv[1], &h, &p, &err) < 0 && err.errnum == 0 &&
		   strcmp(err.msg, "connection closed") == 0,
	   "clean EOF: %s", err.msg);
	/* peer gone: EPIPE, not SIGPIPE */
	close(sv[1]);
	ok(ttrpc_write_msg(sv[0], 1, TTRPC_REQUEST, frame, 5, &err) < 0 &&
		   err.errnum == EPIPE,
	   "write to a closed peer: EPIPE");
	close(sv[0]);
	ok(ttrpc_write_msg(sv[0], 1, TTRPC_REQUEST, big, TTRPC_MAX_MSG + 1,
			   &err) < 0,
	   "oversized write refused");
}

/* ---- dispatch ---------------------------------------------------------- */

static void test_dispatch(void)
{
	uint8_t kv[256];
	size_t n = pack_kv("0", "v1", kv);
	Ttrpc__Response *r;
	Ttrpc__KeyValue *out;
	cleanup_free uint8_t *o = NULL;
	size_t olen;

	r = dispatch("Echo", kv, n);
	out = r ? ttrpc__key_value__unpack(NULL, r->payload.len,
					   r->payload.data)
		: NULL;
	ok(r && r->status && r->status->code == 0 && out &&
		   strcmp(out->value, "v1") == 0,
	   "Echo answers");
	if (out)
		ttrpc__key_value__free_unpacked(out, NULL);
	ttrpc__response__free_unpacked(r, NULL);

	r = dispatch("Nope", kv, n);
	ok(r && r->status && r->status->code == TTRPC_UNIMPLEMENTED &&
		   strcmp(r->status->message, "unknown method test.Svc/Nope") ==
			   0,
	   "unknown method: %s", r ? r->status->message : "?");
	ttrpc__response__free_unpacked(r, NULL);

	r = dispatch("Echo", (const uint8_t *)"\xff\xff\xff", 3);
	ok(r && r->status && r->status->code == TTRPC_INVALID_ARGUMENT &&
		   strcmp(r->status->message, "bad ttrpc.KeyValue message") ==
			   0,
	   "bad payload: %s", r ? r->status->message : "?");
	ttrpc__response__free_unpacked(r, NULL);

	n = pack_kv("5", "no such thing\n\x01", kv);
	r = dispatch("Fail", kv, n);
	ok(r && r->status && r->status->code == TTRPC_NOT_FOUND &&
		   strcmp(r->status->message, "no such thing??") == 0 &&
		   r->payload.len == 0,
	   "handler error code and (sanitised) message: %s",
	   r ? r->status->message : "?");
	ttrpc__response__free_unpacked(r, NULL);

	n = pack_kv("99", "x", kv);
	r = dispatch("Fail", kv, n);
	ok(r && r->status && r->status->code == TTRPC_UNKNOWN, "code out of "
							       "range -> "
							       "UNKNOWN");
	ttrpc__response__free_unpacked(r, NULL);

	r = dispatch("Errno", kv, n);
	ok(r && r->status && r->status->code == TTRPC_UNKNOWN &&
		   strstr(r->status->message, "open `/x`: No such file"),
	   "handler -1 with errno: %s", r ? r->status->message : "?");
	ttrpc__response__free_unpacked(r, NULL);

	r = dispatch("Nil", NULL, 0);
	ok(r && r->status && r->status->code == 0 && r->payload.len == 0,
	   "NULL response is an empty message");
	ttrpc__response__free_unpacked(r, NULL);

	ok(ttrpc_server_dispatch(&server, (const uint8_t *)"\x0a\xff", 2, &o,
				 &olen) == 0 &&
		   (r = ttrpc__response__unpack(NULL, olen, o)) != NULL &&
		   r->status->code == TTRPC_INVALID_ARGUMENT,
	   "garbage Request -> INVALID_ARGUMENT");
	if (r)
		ttrpc__response__free_unpacked(r, NULL);
	free(o);
	o = NULL;
	ok(ttrpc_server_dispatch(&server, kv, TTRPC_MAX_MSG + 1, &o, &olen) ==
			   0 &&
		   (r = ttrpc__response__unpack(NULL, olen, o)) != NULL &&
		   r->status->code == TTRPC_RESOURCE_EXHAUSTED,
	   "oversized Request -> RESOURCE_EXHAUSTED");
	if (r)
		ttrpc__response__free_unpacked(r, NULL);
}

/* ---- client and server over a socketpair ------------------------------- */

static struct ttrpc_client *start_pair(void)
{
	struct kiln_error err = { 0 };
	int sv[2];

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	if (ttrpc_serve_detached(&server, sv[1], &err) < 0)
		return NULL;
	return ttrpc_client_new(sv[0], &err);
}

#define NCALLS	 50
#define NTHREADS 8

struct worker {
	struct ttrpc_client *c;
	int idx;
	int good;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int j = w->idx; j < NCALLS; j += NTHREADS) {
		char key[16], value[32];
		cleanup_free char *got = NULL;
		struct kiln_error err = { 0 };
		int code;

		/* later calls sleep less: answers come back out of order */
		snprintf(key, sizeof(key), "%d", (NCALLS - j) % 7 * 3);
		snprintf(value, sizeof(value), "call-%d", j);
		if (call_kv(w->c, "Echo", key, value, 0, &got, &code, &err) ==
			    0 &&
		    strcmp(got, value) == 0)
			w->good++;
	}
	return NULL;
}

static void test_concurrent(void)
{
	struct ttrpc_client *c = start_pair();
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	int good = 0;

	ok(c != NULL, "client and server on a socketpair");
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ c, i, 0 };
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		good += w[i].good;
	}
	is_int(good, NCALLS, "%d calls from %d threads each got their answer",
	       NCALLS, NTHREADS);
	ttrpc_client_free(c);
}

struct bg_call {
	struct ttrpc_client *c;
	const char *method;
	uint64_t timeout_ns;
	int r, code;
	char *got;
	struct kiln_error err;
};

static void *bg_call_main(void *arg)
{
	struct bg_call *b = arg;

	b->r = call_kv(b->c, b->method, "0", "bg", b->timeout_ns, &b->got,
		       &b->code, &b->err);
	return NULL;
}

static bool wait_waiters(unsigned int n)
{
	for (int i = 0; i < 500; i++) {
		if (gate_waiters() == n)
			return true;
		msleep(10);
	}
	return false;
}

static void test_blocking(void)
{
	struct ttrpc_client *c = start_pair();
	struct bg_call b = { .c = c, .method = "Block" };
	struct kiln_error err = { 0 };
	char *got = NULL;
	int code = -1;
	pthread_t t;
	struct timespec t0, t1;

	gate_set(false);
	pthread_create(&t, NULL, bg_call_main, &b);
	ok(wait_waiters(1), "Block is in its handler");
	ok(call_kv(c, "Echo", "0", "quick", 0, &got, &code, &err) == 0 &&
		   strcmp(got, "quick") == 0,
	   "a call completes while another blocks on the same connection");
	free(got);
	gate_set(true);
	pthread_join(t, NULL);
	ok(b.r == 0 && strcmp(b.got, "bg") == 0, "the blocked call answers");
	free(b.got);
	gate_set(false);

	/* error status through the client */
	int r = call_kv(c, "Fail", "9", "not now", 0, &got, &code, &err);

	ok(r < 0 && code == TTRPC_FAILED_PRECONDITION &&
		   strcmp(err.msg, "Fail: not now") == 0,
	   "error status: code %d, %s", code, err.msg);
	ok(call_kv(c, "Zap", "0", "", 0, &got, &code, &err) < 0 &&
		   code == TTRPC_UNIMPLEMENTED,
	   "unknown method: %s", err.msg);

	/* timeout: DEADLINE_EXCEEDED, the late answer is dropped */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = call_kv(c, "Block", "0", "late", 100000000, &got, &code, &err);
	ok(r < 0 && code == TTRPC_DEADLINE_EXCEEDED, "timeout: code %d, %s",
	   code, err.msg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		  (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ok(ms >= 100 && ms < 2000, "waited %ld ms for a 100 ms timeout", ms);
	gate_set(true);
	ok(wait_waiters(0), "the late call finishes on the server");
	ok(call_kv(c, "Echo", "0", "after", 0, &got, &code, &err) == 0 &&
		   strcmp(got, "after") == 0,
	   "next call gets its own answer, not the late one");
	free(got);
	gate_set(false);
	ttrpc_client_free(c);
}

/* a raw peer on one end, to break the rules */
static int raw_request(int fd, uint32_t id, const char *method,
		       const char *value)
{
	uint8_t kv[128], req[256];
	struct kiln_error err;
	size_t n = pack_kv("0", value, kv);

	n = pack_req(SVC, method, kv, n, req);
	return ttrpc_write_msg(fd, id, TTRPC_REQUEST, req, n, &err);
}

/* read one response; its status code, or -1 */
static int raw_response(int fd, uint32_t *id)
{
	struct kiln_error err;
	struct ttrpc_header h;
	cleanup_free uint8_t *p = NULL;
	Ttrpc__Response *r;
	int code;

	if (ttrpc_read_msg(fd, &h, &p, &err) < 0 || h.type != TTRPC_RESPONSE)
		return -1;
	*id = h.stream_id;
	r = ttrpc__response__unpack(NULL, h.length, p);
	if (r == NULL)
		return -1;
	code = r->status ? r->status->code : 0;
	ttrpc__response__free_unpacked(r, NULL);
	return code;
}

static void test_server_rules(void)
{
	struct kiln_error err = { 0 };
	struct ttrpc_header h;
	uint8_t *p;
	uint32_t id = 0;
	int sv[2], code, good = 0;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	ttrpc_serve_detached(&server, sv[1], &err);
	raw_request(sv[0], 2, "Echo", "x");
	code = raw_response(sv[0], &id);
	ok(code == TTRPC_INVALID_ARGUMENT && id == 2, "even stream id refused");
	ttrpc_write_msg(sv[0], 5, TTRPC_DATA, (const uint8_t *)"zz", 2, &err);
	raw_request(sv[0], 5, "Echo", "x");
	code = raw_response(sv[0], &id);
	ok(code == TTRPC_OK && id == 5, "DATA ignored, request answered");
	raw_request(sv[0], 3, "Echo", "x");
	code = raw_response(sv[0], &id);
	ok(code == TTRPC_INVALID_ARGUMENT && id == 3, "stream id going back "
						      "refused");

	/* 128 in flight, the 129th is refused */
	gate_set(false);
	for (uint32_t i = 0; i < 129; i++)
		raw_request(sv[0], 7 + 2 * i, "Block", "b");
	code = raw_response(sv[0], &id);
	ok(code == TTRPC_RESOURCE_EXHAUSTED && id == 7 + 2 * 128,
	   "129th request in flight: RESOURCE_EXHAUSTED (code %d id %u)", code,
	   id);
	ok(wait_waiters(128), "128 handlers blocked at once");
	gate_set(true);
	for (int i = 0; i < 128; i++)
		good += raw_response(sv[0], &id) == TTRPC_OK;
	is_int(good, 128, "then all 128 answer");
	ok(wait_waiters(0), "handlers done");
	gate_set(false);

	/* an oversized frame ends the connection */
	h = (struct ttrpc_header){ TTRPC_MAX_MSG + 1, 1001, TTRPC_REQUEST, 0 };
	uint8_t hb[TTRPC_HEADER_LEN];

	ttrpc_header_encode(&h, hb);
	if (write(sv[0], hb, sizeof(hb)) < 0)
		ok(0, "write");
	ok(ttrpc_read_msg(sv[0], &h, &p, &err) < 0 && strcmp(err.msg, "connecti"
								      "on "
								      "close"
								      "d") == 0,
	   "oversized request frame: server closes the connection");
	close(sv[0]);
}

/* a Hold request of about len bytes */
static int raw_big_request(int fd, uint32_t id, size_t len)
{
	Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT;
	cleanup_free char *value = malloc(len + 1);
	cleanup_free uint8_t *kvb = malloc(len + 64);
	cleanup_free uint8_t *req = malloc(len + 256);
	struct kiln_error err;
	size_t n;

	if (value == NULL || kvb == NULL || req == NULL)
		return -1;
	memset(value, 'v', len);
	value[len] = '\0';
	kv.key = "0";
	kv.value = value;
	n = ttrpc__key_value__pack(&kv, kvb);
	n = pack_req(SVC, "Hold", kvb, n, req);
	return ttrpc_write_msg(fd, id, TTRPC_REQUEST, req, n, &err);
}

/* one response within ms: its code, message and id; -2 when none came */
static int raw_status_within(int fd, int ms, uint32_t *id, char *msg,
			     size_t msglen)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct kiln_error err;
	struct ttrpc_header h;
	cleanup_free uint8_t *b = NULL;
	Ttrpc__Response *r;
	int code;

	if (poll(&p, 1, ms) != 1)
		return -2;
	if (ttrpc_read_msg(fd, &h, &b, &err) < 0 || h.type != TTRPC_RESPONSE)
		return -1;
	*id = h.stream_id;
	r = ttrpc__response__unpack(NULL, h.length, b);
	if (r == NULL)
		return -1;
	code = r->status ? r->status->code : 0;
	snprintf(msg, msglen, "%s",
		 r->status && r->status->message ? r->status->message : "");
	ttrpc__response__free_unpacked(r, NULL);
	return code;
}

/*
 * Four requests of nearly 4 MiB fill TTRPC_MAX_INFLIGHT_BYTES; a fifth is
 * answered RESOURCE_EXHAUSTED at once (its handler never runs), a small
 * one still fits, and once the four answer a large one runs again.
 */
static void test_inflight_bytes(void)
{
	const size_t big = TTRPC_MAX_MSG - 1024;
	struct kiln_error err = { 0 };
	char msg[256] = "";
	uint32_t id = 0;
	int sv[2], code, good = 0;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	ttrpc_serve_detached(&server, sv[1], &err);
	gate_set(false);
	for (uint32_t i = 0; i < 4; i++)
		raw_big_request(sv[0], 1 + 2 * i, big);
	ok(wait_waiters(4), "4 requests of %zu bytes held at once", big);
	raw_big_request(sv[0], 9, big);
	code = raw_status_within(sv[0], 5000, &id, msg, sizeof(msg));
	ok(code == TTRPC_RESOURCE_EXHAUSTED && id == 9 &&
		   strstr(msg, "bytes of requests in flight") != NULL,
	   "a fifth over %u bytes in flight: RESOURCE_EXHAUSTED at once "
	   "(code %d id %u: %s)",
	   TTRPC_MAX_INFLIGHT_BYTES, code, id, msg);
	is_int(gate_waiters(), 4, "its handler never ran");
	raw_request(sv[0], 11, "Echo", "small");
	code = raw_status_within(sv[0], 5000, &id, msg, sizeof(msg));
	ok(code == TTRPC_OK && id == 11, "a small request still fits (%d)",
	   code);
	gate_set(true);
	for (int i = 0; i < 4; i++)
		good += raw_status_within(sv[0], 5000, &id, msg, sizeof(msg)) ==
			TTRPC_OK;
	is_int(good, 4, "the four answer");
	ok(wait_waiters(0), "handlers done");
	raw_big_request(sv[0], 13, big);
	code = raw_status_within(sv[0], 5000, &id, msg, sizeof(msg));
	ok(code == TTRPC_OK && id == 13, "their bytes are free again (%d)",
	   code);
	gate_set(false);
	close(sv[0]);
}

static void test_client_broken(void)
{
	struct kiln_error err = { 0 };
	struct bg_call b[3];
	pthread_t t[3];
	struct ttrpc_client *c;
	struct ttrpc_header h;
	uint8_t *p;
	char *got;
	int sv[2], code, bad = 0;

	/* the server reads three requests and goes away */
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	c = ttrpc_client_new(sv[0], &err);
	for (int i = 0; i < 3; i++) {
		b[i] = (struct bg_call){ .c = c,
					 .method = "Echo",
					 .timeout_ns = 0 };
		pthread_create(&t[i], NULL, bg_call_main, &b[i]);
	}
	for (int i = 0; i < 3; i++) {
		if (ttrpc_read_msg(sv[1], &h, &p, &err) == 0)
			free(p);
		/* stream ids: odd, increasing */
		bad += h.stream_id != 1u + 2 * i;
	}
	close(sv[1]);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		bad += !(b[i].r < 0 && b[i].code == TTRPC_UNAVAILABLE);
	}
	is_int(bad, 0,
	       "peer closes: every pending call fails UNAVAILABLE "
	       "(%s)",
	       b[0].err.msg);
	ok(call_kv(c, "Echo", "0", "x", 0, &got, &code, &err) < 0 &&
		   code == TTRPC_UNAVAILABLE,
	   "and so does the next one: %s", err.msg);
	ttrpc_client_free(c);

	/* a hostile server: a stray response, garbage, an oversized frame */
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	c = ttrpc_client_new(sv[0], &err);
	b[0] = (struct bg_call){ .c = c,
				 .method = "Echo",
				 .timeout_ns = 5000000000ull };
	pthread_create(&t[0], NULL, bg_call_main, &b[0]);
	Ttrpc__Request *req = NULL;

	if (ttrpc_read_msg(sv[1], &h, &p, &err) == 0) {
		req = ttrpc__request__unpack(NULL, h.length, p);
		free(p);
	}
	ok(req && req->timeout_nano == 5000000000 &&
		   strcmp(req->service, SVC) == 0 &&
		   strcmp(req->method, "Echo") == 0,
	   "Request carries service, method and timeout_nano");
	if (req)
		ttrpc__request__free_unpacked(req, NULL);
	ttrpc_write_msg(sv[1], 99, TTRPC_RESPONSE, (const uint8_t *)"\x0a", 1,
			&err);
	ttrpc_write_msg(sv[1], h.stream_id, TTRPC_RESPONSE,
			(const uint8_t *)"\x0a\x05", 2, &err);
	pthread_join(t[0], NULL);
	ok(b[0].r < 0 && b[0].code == TTRPC_INTERNAL,
	   "garbage response: INTERNAL (%s)", b[0].err.msg);

	b[0] = (struct bg_call){ .c = c, .method = "Echo", .timeout_ns = 0 };
	pthread_create(&t[0], NULL, bg_call_main, &b[0]);
	if (ttrpc_read_msg(sv[1], &h, &p, &err) == 0)
		free(p);
	h = (struct ttrpc_header){ TTRPC_MAX_MSG + 1, h.stream_id,
				   TTRPC_RESPONSE, 0 };
	uint8_t hb[TTRPC_HEADER_LEN];

	ttrpc_header_encode(&h, hb);
	if (write(sv[1], hb, sizeof(hb)) < 0)
		ok(0, "write");
	pthread_join(t[0], NULL);
	ok(b[0].r < 0 && b[0].code == TTRPC_UNAVAILABLE &&
		   strstr(b[0].err.msg, "limit"),
	   "oversized response frame: UNAVAILABLE (%s)", b[0].err.msg);
	close(sv[1]);
	ttrpc_client_free(c);
}

int main(void)
{
	test_header();
	test_read_write();
	test_dispatch();
	test_concurrent();
	test_blocking();
	test_server_rules();
	test_inflight_bytes();
	test_client_broken();
	return tap_done();
}
