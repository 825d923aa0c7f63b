/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttrpc: framing (containerd/ttrpc PROTOCOL.md), a server that runs each
 * request on its own thread, and a client that multiplexes calls from
 * several threads over one connection with a reader thread.
 *
 * The peer is hostile on both sides: the agent's client is the host, but
 * the host's server is the guest. Every length is checked against
 * TTRPC_MAX_MSG before anything is allocated, status messages from the
 * peer are sanitised before they reach a log line.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "ttrpc.h"
#include "lib/ttrpc.pb-c.h"

/* requests in flight on one server connection; more get RESOURCE_EXHAUSTED */
#define TTRPC_MAX_INFLIGHT 128
/* gRPC's last status code (UNAUTHENTICATED) */
#define TTRPC_CODE_MAX 16

static const uint8_t empty_buf[1];

/* ---- framing ---------------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

void ttrpc_header_encode(const struct ttrpc_header *h,
			 uint8_t out[TTRPC_HEADER_LEN])
{
	put_be32(out, h->length);
	put_be32(out + 4, h->stream_id);
	out[8] = h->type;
	out[9] = h->flags;
}

int ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_LEN],
			struct ttrpc_header *h, struct kiln_error *err)
{
	/* guest-controlled: every field; h is filled even on failure */
	h->length = get_be32(in);
	h->stream_id = get_be32(in + 4);
	h->type = in[8];
	h->flags = in[9];
	if (h->length > TTRPC_MAX_MSG)
		return kiln_error_set(err, 0,
				      "ttrpc message of %u bytes is over the "
				      "%u-byte limit",
				      h->length, TTRPC_MAX_MSG);
	if (h->type < TTRPC_REQUEST || h->type > TTRPC_DATA)
		return kiln_error_set(err, 0, "unknown ttrpc message type %u",
				      h->type);
	return 0;
}

/* 0 when len bytes were read, 1 on EOF first (*got says how many), -1 */
static int read_full(int fd, uint8_t *buf, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = read(fd, buf + *got, len - *got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 1;
		*got += n;
	}
	return 0;
}

static int read_header(int fd, struct ttrpc_header *h, struct kiln_error *err)
{
	uint8_t hdr[TTRPC_HEADER_LEN];
	size_t got;
	int r;

	r = read_full(fd, hdr, sizeof(hdr), &got);
	if (r < 0)
		return kiln_error_set(err, errno, "read ttrpc header");
	if (r > 0 && got == 0)
		return kiln_error_set(err, 0, "connection closed");
	if (r > 0)
		return kiln_error_set(err, 0,
				      "connection closed after %zu bytes of a "
				      "ttrpc header",
				      got);
	return ttrpc_header_decode(hdr, h, err);
}

/* the h->length bytes after a header, malloc'd */
static int read_payload(int fd, const struct ttrpc_header *h, uint8_t **payload,
			struct kiln_error *err)
{
	cleanup_free uint8_t *buf = NULL;
	size_t got;
	int r;

	/* length <= TTRPC_MAX_MSG: checked by the decode */
	buf = malloc(h->length ? h->length : 1);
	if (buf == NULL)
		return kiln_error_set(err, ENOMEM, "ttrpc message of %u bytes",
				      h->length);
	r = read_full(fd, buf, h->length, &got);
	if (r < 0)
		return kiln_error_set(err, errno, "read ttrpc message");
	if (r > 0)
		return kiln_error_set(err, 0,
				      "connection closed after %zu of %u bytes "
				      "of a ttrpc message",
				      got, h->length);
	*payload = steal_ptr(&buf);
	return 0;
}

/* read the h->length bytes after a header into nothing: the frame is
 * consumed, so the next header is where the peer put it */
static int skip_payload(int fd, const struct ttrpc_header *h,
			struct kiln_error *err)
{
	uint8_t buf[4096];
	size_t left = h->length, got;
	int r;

	while (left > 0) {
		size_t n = left < sizeof(buf) ? left : sizeof(buf);

		r = read_full(fd, buf, n, &got);
		if (r < 0)
			return kiln_error_set(err, errno, "read ttrpc message");
		if (r > 0)
			return kiln_error_set(err, 0,
					      "connection closed inside a "
					      "ttrpc message of %u bytes",
					      h->length);
		left -= n;
	}
	return 0;
}

int ttrpc_read_msg(int fd, struct ttrpc_header *h, uint8_t **payload,
		   struct kiln_error *err)
{
	*payload = NULL;
	if (read_header(fd, h, err) < 0)
		return -1;
	return read_payload(fd, h, payload, err);
}

int ttrpc_write_msg(int fd, uint32_t stream_id, uint8_t type,
		    const uint8_t *payload, size_t len, struct kiln_error *err)
{
	struct ttrpc_header h = { .stream_id = stream_id, .type = type };
	uint8_t hdr[TTRPC_HEADER_LEN];
	struct iovec iov[2];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	bool sock = true;

	if (len > TTRPC_MAX_MSG)
		return kiln_error_set(err, EMSGSIZE,
				      "ttrpc message of %zu bytes is over the "
				      "%u-byte limit",
				      len, TTRPC_MAX_MSG);
	h.length = len;
	ttrpc_header_encode(&h, hdr);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ (void *)payload, len };
	if (len == 0)
		mh.msg_iovlen = 1;
	while (mh.msg_iovlen > 0) {
		ssize_t n;

		/* sendmsg for MSG_NOSIGNAL: a peer gone away is an error
		 * here, not a SIGPIPE that kills the agent or the runtime */
		if (sock) {
			n = sendmsg(fd, &mh, MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK) {
				sock = false;
				continue;
			}
		} else {
			n = writev(fd, mh.msg_iov, mh.msg_iovlen);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kiln_error_set(err, errno,
					      "write ttrpc message");
		}
		while (mh.msg_iovlen > 0 && (size_t)n >= mh.msg_iov->iov_len) {
			n -= mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen > 0) {
			mh.msg_iov->iov_base =
				(uint8_t *)mh.msg_iov->iov_base + n;
			mh.msg_iov->iov_len -= n;
		}
	}
	return 0;
}

/*
 * Status messages cross to the other side and into its logs: keep them
 * printable ASCII (a Go peer also rejects a proto3 string that is not
 * UTF-8, so a method name echoed back must not break its decoding).
 */
void ttrpc_sanitise(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* ---- server ----------------------------------------------------------- */

ProtobufCMessage *ttrpc_alloc_msg(const ProtobufCMessageDescriptor *desc)
{
	ProtobufCMessage *m = malloc(desc->sizeof_message);

	if (m != NULL)
		protobuf_c_message_init(desc, m);
	return m;
}

static int pack_response(int code, char *msg, const uint8_t *data, size_t len,
			 uint8_t **out, size_t *out_len)
{
	Ttrpc__Status st = TTRPC__STATUS__INIT;
	Ttrpc__Response r = TTRPC__RESPONSE__INIT;
	uint8_t *buf;
	size_t n;

	if (msg != NULL)
		ttrpc_sanitise(msg);
	st.code = code;
	st.message = msg != NULL ? msg : (char *)protobuf_c_empty_string;
	r.status = &st;
	r.payload.data = (uint8_t *)data;
	r.payload.len = len;
	n = ttrpc__response__get_packed_size(&r);
	buf = malloc(n ? n : 1);
	if (buf == NULL)
		return -1;
	ttrpc__response__pack(&r, buf);
	*out = buf;
	*out_len = n;
	return 0;
}

static const struct ttrpc_method *find_method(const struct ttrpc_server *s,
					      const char *service,
					      const char *method)
{
	for (size_t i = 0; i < s->nmethods; i++)
		if (strcmp(s->methods[i].service, service) == 0 &&
		    strcmp(s->methods[i].method, method) == 0)
			return &s->methods[i];
	return NULL;
}

/* call the handler; *code and msg on error, *resp (maybe NULL) on OK */
static void run_handler(const struct ttrpc_server *s,
			const struct ttrpc_method *m,
			const ProtobufCMessage *in, ProtobufCMessage **resp,
			int *code, char *msg, size_t msglen)
{
	struct kiln_error herr = { 0 };

	*resp = NULL;
	*code = m->fn(s->ctx, in, resp, &herr);
	if (*code == TTRPC_OK)
		return;
	if (*resp != NULL) {
		protobuf_c_message_free_unpacked(*resp, NULL);
		*resp = NULL;
	}
	/* a handler that returned kiln_error_set()'s -1 means "failed" */
	if (*code < 0 || *code > TTRPC_CODE_MAX)
		*code = TTRPC_UNKNOWN;
	if (herr.msg[0] == '\0' && herr.errnum == 0)
		snprintf(msg, msglen, "%s failed", m->method);
	else
		kiln_error_str(&herr, msg, msglen);
}

int ttrpc_server_dispatch(const struct ttrpc_server *s, const uint8_t *payload,
			  size_t len, uint8_t **out, size_t *out_len)
{
	char msg[KILN_ERROR_MSG_MAX] = "";
	Ttrpc__Request *req = NULL;
	const struct ttrpc_method *m;
	ProtobufCMessage *in = NULL, *resp = NULL;
	cleanup_free uint8_t *rbuf = NULL;
	size_t rlen = 0;
	int code, r;

	*out = NULL;
	*out_len = 0;
	/* client-controlled: the whole payload */
	if (len > TTRPC_MAX_MSG) {
		code = TTRPC_RESOURCE_EXHAUSTED;
		snprintf(msg, sizeof(msg), "request of %zu bytes is too large",
			 len);
		goto reply;
	}
	req = ttrpc__request__unpack(NULL, len, len ? payload : empty_buf);
	if (req == NULL) {
		code = TTRPC_INVALID_ARGUMENT;
		snprintf(msg, sizeof(msg), "bad ttrpc.Request message");
		goto reply;
	}
	m = find_method(s, req->service, req->method);
	if (m == NULL) {
		code = TTRPC_UNIMPLEMENTED;
		snprintf(msg, sizeof(msg), "unknown method %.200s/%.200s",
			 req->service, req->method);
		goto reply;
	}
	in = protobuf_c_message_unpack(m->req_desc, NULL, req->payload.len,
				       req->payload.len ? req->payload.data
							: empty_buf);
	if (in == NULL) {
		code = TTRPC_INVALID_ARGUMENT;
		snprintf(msg, sizeof(msg), "bad %s message", m->req_desc->name);
		goto reply;
	}
	run_handler(s, m, in, &resp, &code, msg, sizeof(msg));
	if (code != TTRPC_OK || resp == NULL)
		goto reply;
	rlen = protobuf_c_message_get_packed_size(resp);
	/* leave room for the Response around it */
	if (rlen > TTRPC_MAX_MSG - 64) {
		code = TTRPC_RESOURCE_EXHAUSTED;
		snprintf(msg, sizeof(msg),
			 "%s: response of %zu bytes is too large", m->method,
			 rlen);
		rlen = 0;
		goto reply;
	}
	rbuf = malloc(rlen ? rlen : 1);
	if (rbuf == NULL) {
		r = -1;
		goto out;
	}
	protobuf_c_message_pack(resp, rbuf);
reply:
	r = pack_response(code, code == TTRPC_OK ? NULL : msg, rbuf, rlen, out,
			  out_len);
out:
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	if (in != NULL)
		protobuf_c_message_free_unpacked(in, NULL);
	if (req != NULL)
		ttrpc__request__free_unpacked(req, NULL);
	return r;
}

/*
 * One served connection. The reader and every request thread hold a
 * reference; the last one out closes fd, so a response can still be
 * written after the client shut its sending side down, and fd is never
 * reused under a request thread's feet.
 */
struct srv_conn {
	const struct ttrpc_server *s;
	int fd;
	pthread_mutex_t lock; /* refs, inflight, inflight_bytes */
	unsigned int refs;
	unsigned int inflight;
	size_t inflight_bytes; /* payloads of the requests in flight */
	pthread_mutex_t wlock; /* one frame at a time on fd; dead */
	bool dead;
};

struct srv_call {
	struct srv_conn *conn;
	uint32_t stream_id;
	uint8_t *payload;
	size_t len;
};

static void conn_put(struct srv_conn *c)
{
	bool last;

	pthread_mutex_lock(&c->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	close(c->fd);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->wlock);
	free(c);
}

/* A failed write ends the connection: shutdown wakes the reader too. */
static void conn_kill(struct srv_conn *c)
{
	c->dead = true;
	shutdown(c->fd, SHUT_RDWR);
}

static void conn_send(struct srv_conn *c, uint32_t id, const uint8_t *buf,
		      size_t len)
{
	struct kiln_error err;

	pthread_mutex_lock(&c->wlock);
	if (!c->dead &&
	    ttrpc_write_msg(c->fd, id, TTRPC_RESPONSE, buf, len, &err) < 0) {
		log_debug("ttrpc: %s", err.msg);
		conn_kill(c);
	}
	pthread_mutex_unlock(&c->wlock);
}

static void conn_send_status(struct srv_conn *c, uint32_t id, int code,
			     const char *msg)
{
	char m[KILN_ERROR_MSG_MAX];
	cleanup_free uint8_t *out = NULL;
	size_t len;

	snprintf(m, sizeof(m), "%s", msg);
	if (pack_response(code, m, NULL, 0, &out, &len) < 0) {
		pthread_mutex_lock(&c->wlock);
		conn_kill(c);
		pthread_mutex_unlock(&c->wlock);
		return;
	}
	conn_send(c, id, out, len);
}

static void *srv_call_main(void *arg)
{
	struct srv_call *call = arg;
	struct srv_conn *c = call->conn;
	cleanup_free uint8_t *out = NULL;
	size_t len;

	if (ttrpc_server_dispatch(c->s, call->payload, call->len, &out, &len) <
	    0)
		conn_send_status(c, call->stream_id, TTRPC_RESOURCE_EXHAUSTED,
				 "out of memory");
	else
		conn_send(c, call->stream_id, out, len);
	free(call->payload);
	pthread_mutex_lock(&c->lock);
	c->inflight--;
	c->inflight_bytes -= call->len;
	pthread_mutex_unlock(&c->lock);
	free(call);
	conn_put(c);
	return NULL;
}

/*
 * Room for one more request of len bytes, or the status message that
 * refuses it. Taken before its payload is read, so that what a client
 * has in flight never costs more than the caps.
 */
static const char *conn_reserve(struct srv_conn *c, size_t len)
{
	const char *refused = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->inflight >= TTRPC_MAX_INFLIGHT)
		refused = "too many requests in flight";
	else if (len > TTRPC_MAX_INFLIGHT_BYTES - c->inflight_bytes)
		refused = "too many bytes of requests in flight";
	if (refused == NULL) {
		c->inflight++;
		c->inflight_bytes += len;
		c->refs++;
	}
	pthread_mutex_unlock(&c->lock);
	return refused;
}

static void conn_unreserve(struct srv_conn *c, size_t len)
{
	pthread_mutex_lock(&c->lock);
	c->inflight--;
	c->inflight_bytes -= len;
	c->refs--; /* the reader's own reference keeps c alive */
	pthread_mutex_unlock(&c->lock);
}

/* Start a thread for one reserved request; false when it could not be
 * started (the reservation is then given back). */
static bool conn_start_call(struct srv_conn *c, uint32_t id, uint8_t **payload,
			    size_t len)
{
	struct srv_call *call;
	pthread_attr_t attr;
	pthread_t t;
	bool started;

	call = malloc(sizeof(*call));
	started = call != NULL && pthread_attr_init(&attr) == 0;
	if (started) {
		*call = (struct srv_call){ c, id, *payload, len };
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&t, &attr, srv_call_main, call) == 0;
		pthread_attr_destroy(&attr);
	}
	if (started) {
		*payload = NULL; /* the thread owns it now */
		return true;
	}
	free(call);
	conn_unreserve(c, len);
	return false;
}

void ttrpc_serve_conn(const struct ttrpc_server *s, int fd)
{
	struct srv_conn *c = calloc(1, sizeof(*c));
	uint32_t last_id = 0;

	if (c == NULL) {
		log_error("ttrpc: out of memory for a connection");
		close(fd);
		return;
	}
	c->s = s;
	c->fd = fd;
	c->refs = 1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->wlock, NULL);

	for (;;) {
		struct kiln_error err = { 0 };
		struct ttrpc_header h;
		cleanup_free uint8_t *payload = NULL;
		const char *refused = NULL;
		int code = TTRPC_INVALID_ARGUMENT;

		if (read_header(fd, &h, &err) < 0) {
			if (strcmp(err.msg, "connection closed") != 0)
				log_debug("ttrpc: %s", err.msg);
			break;
		}
		/* client-controlled: the header. The spec asks a peer to
		 * ignore what it does not know, for future compatibility;
		 * we have no streaming methods, so DATA is ignored too.
		 * Whatever is not run is skipped unread, never held. */
		if (h.type != TTRPC_REQUEST) {
			if (skip_payload(fd, &h, &err) < 0) {
				log_debug("ttrpc: %s", err.msg);
				break;
			}
			continue;
		}
		if (h.stream_id % 2 == 0) {
			refused = "StreamID must be odd for client initiated "
				  "streams";
		} else if (h.stream_id <= last_id) {
			refused = "StreamID cannot be re-used and must "
				  "increment";
		} else {
			last_id = h.stream_id;
			refused = conn_reserve(c, h.length);
			code = TTRPC_RESOURCE_EXHAUSTED;
		}
		if (refused != NULL) {
			if (skip_payload(fd, &h, &err) < 0) {
				log_debug("ttrpc: %s", err.msg);
				break;
			}
			conn_send_status(c, h.stream_id, code, refused);
			continue;
		}
		if (read_payload(fd, &h, &payload, &err) < 0) {
			log_debug("ttrpc: %s", err.msg);
			conn_unreserve(c, h.length);
			break;
		}
		if (!conn_start_call(c, h.stream_id, &payload, h.length))
			conn_send_status(c, h.stream_id,
					 TTRPC_RESOURCE_EXHAUSTED,
					 "cannot start a thread for the "
					 "request");
	}
	conn_put(c);
}

struct serve_arg {
	const struct ttrpc_server *s;
	int fd;
};

static void *serve_main(void *arg)
{
	struct serve_arg a = *(struct serve_arg *)arg;

	free(arg);
	ttrpc_serve_conn(a.s, a.fd);
	return NULL;
}

int ttrpc_serve_detached(const struct ttrpc_server *s, int fd,
			 struct kiln_error *err)
{
	struct serve_arg *a = malloc(sizeof(*a));
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (a == NULL)
		return kiln_error_set(err, ENOMEM, "ttrpc connection");
	*a = (struct serve_arg){ s, fd };
	r = pthread_attr_init(&attr);
	if (r == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		r = pthread_create(&t, &attr, serve_main, a);
		pthread_attr_destroy(&attr);
	}
	if (r != 0) {
		free(a);
		return kiln_error_set(err, r, "start ttrpc connection thread");
	}
	return 0;
}
