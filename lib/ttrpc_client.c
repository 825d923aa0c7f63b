/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ttrpc client: calls from several threads multiplexed over one
 * connection, a reader thread handing each response to its call. The
 * server it talks to may be a hostile guest.
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

/* unpack needs a non-NULL buffer even for an empty payload */
static const uint8_t empty_buf[1];

/* ---- client ----------------------------------------------------------- */

/* A call waiting for its response; lives on the caller's stack. */
struct pending {
	struct pending *next;
	uint32_t id;
	bool done;
	uint8_t *payload;
	size_t len;
	pthread_cond_t cond;
};

struct ttrpc_client {
	int fd;
	pthread_t reader;
	pthread_mutex_t wlock; /* one frame at a time on fd; before lock */
	pthread_mutex_t lock;  /* what follows */
	struct pending *pending;
	uint32_t next_id;
	bool broken;
	char why[KILN_ERROR_MSG_MAX];
};

static void client_unlink(struct ttrpc_client *c, struct pending *p)
{
	for (struct pending **pp = &c->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

/* Fail every pending and future call; called with c->lock held. */
static void client_break(struct ttrpc_client *c, const char *why)
{
	if (!c->broken)
		snprintf(c->why, sizeof(c->why), "%s", why);
	c->broken = true;
	for (struct pending *p = c->pending; p; p = p->next)
		pthread_cond_signal(&p->cond);
}

static void *client_reader(void *arg)
{
	struct ttrpc_client *c = arg;
	struct kiln_error err = { 0 };

	for (;;) {
		struct ttrpc_header h;
		uint8_t *payload;
		struct pending *p;

		if (ttrpc_read_msg(c->fd, &h, &payload, &err) < 0)
			break;
		/* guest-controlled: which stream, what type. A response for
		 * no pending call (one that timed out) is dropped. */
		pthread_mutex_lock(&c->lock);
		for (p = c->pending; p; p = p->next)
			if (p->id == h.stream_id)
				break;
		if (p != NULL && h.type == TTRPC_RESPONSE) {
			p->payload = payload;
			p->len = h.length;
			p->done = true;
			payload = NULL;
			client_unlink(c, p);
			pthread_cond_signal(&p->cond);
		}
		pthread_mutex_unlock(&c->lock);
		free(payload);
	}
	ttrpc_sanitise(err.msg);
	pthread_mutex_lock(&c->lock);
	client_break(c, err.msg);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

struct ttrpc_client *ttrpc_client_new(int fd, struct kiln_error *err)
{
	struct ttrpc_client *c = calloc(1, sizeof(*c));
	int r;

	if (c == NULL) {
		kiln_error_set(err, ENOMEM, "ttrpc client");
		return NULL;
	}
	c->fd = fd;
	c->next_id = 1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	r = pthread_create(&c->reader, NULL, client_reader, c);
	if (r != 0) {
		pthread_mutex_destroy(&c->lock);
		pthread_mutex_destroy(&c->wlock);
		free(c);
		kiln_error_set(err, r, "start ttrpc client thread");
		return NULL;
	}
	return c;
}

void ttrpc_client_free(struct ttrpc_client *c)
{
	if (c == NULL)
		return;
	/* wakes the reader, which fails whatever is still pending */
	shutdown(c->fd, SHUT_RDWR);
	pthread_join(c->reader, NULL);
	close(c->fd);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->wlock);
	free(c);
}

static void set_code(int *code, int v)
{
	if (code != NULL)
		*code = v;
}

/* UNAVAILABLE for a broken connection; called with c->lock held */
static int client_unavailable(struct ttrpc_client *c, const char *method,
			      int *code, struct kiln_error *err)
{
	set_code(code, TTRPC_UNAVAILABLE);
	if (strcmp(c->why, "connection closed") == 0)
		return kiln_error_set(err, 0, "%s: connection closed", method);
	return kiln_error_set(err, 0, "%s: connection broken: %s", method,
			      c->why);
}

/* The Request frame for one call, malloc'd into *out. */
static int pack_request(const char *service, const char *method,
			const ProtobufCMessage *req, uint64_t timeout_ns,
			uint8_t **out, size_t *out_len, struct kiln_error *err)
{
	Ttrpc__Request r = TTRPC__REQUEST__INIT;
	cleanup_free uint8_t *pbuf = NULL;
	size_t plen = protobuf_c_message_get_packed_size(req);
	size_t n;

	if (plen > TTRPC_MAX_MSG)
		return kiln_error_set(err, EMSGSIZE,
				      "%s: request of %zu bytes is too large",
				      method, plen);
	pbuf = malloc(plen ? plen : 1);
	if (pbuf == NULL)
		return kiln_error_set(err, ENOMEM, "%s", method);
	protobuf_c_message_pack(req, pbuf);
	r.service = (char *)service;
	r.method = (char *)method;
	r.payload.data = pbuf;
	r.payload.len = plen;
	r.timeout_nano = timeout_ns > INT64_MAX ? INT64_MAX : timeout_ns;
	n = ttrpc__request__get_packed_size(&r);
	if (n > TTRPC_MAX_MSG)
		return kiln_error_set(err, EMSGSIZE,
				      "%s: request of %zu bytes is too large",
				      method, n);
	*out = malloc(n);
	if (*out == NULL)
		return kiln_error_set(err, ENOMEM, "%s", method);
	ttrpc__request__pack(&r, *out);
	*out_len = n;
	return 0;
}

/* Send the request and wait; 0 with p->payload, or -1 with err and code. */
static int client_roundtrip(struct ttrpc_client *c, const char *method,
			    struct pending *p, const uint8_t *frame, size_t len,
			    uint64_t timeout_ns, int *code,
			    struct kiln_error *err)
{
	struct kiln_error werr;
	struct timespec deadline;
	bool timed_out = false;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ns / 1000000000u;
	deadline.tv_nsec += timeout_ns % 1000000000u;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}

	/* ids must reach the server in increasing order (it refuses one
	 * that goes back): take the id and write under the same wlock */
	pthread_mutex_lock(&c->wlock);
	pthread_mutex_lock(&c->lock);
	if (!c->broken && c->next_id > UINT32_MAX - 2)
		client_break(c, "out of stream ids");
	if (c->broken) {
		r = client_unavailable(c, method, code, err);
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&c->wlock);
		return r;
	}
	p->id = c->next_id;
	c->next_id += 2;
	p->next = c->pending;
	c->pending = p;
	pthread_mutex_unlock(&c->lock);
	r = ttrpc_write_msg(c->fd, p->id, TTRPC_REQUEST, frame, len, &werr);
	pthread_mutex_unlock(&c->wlock);

	pthread_mutex_lock(&c->lock);
	if (r < 0) {
		ttrpc_sanitise(werr.msg);
		client_break(c, werr.msg);
		shutdown(c->fd, SHUT_RDWR);
	}
	while (!p->done && !c->broken && !timed_out) {
		if (timeout_ns == 0)
			pthread_cond_wait(&p->cond, &c->lock);
		else if (pthread_cond_timedwait(&p->cond, &c->lock,
						&deadline) == ETIMEDOUT)
			timed_out = true;
	}
	if (!p->done)
		client_unlink(c, p);
	if (p->done)
		r = 0;
	else if (c->broken)
		r = client_unavailable(c, method, code, err);
	else {
		set_code(code, TTRPC_DEADLINE_EXCEEDED);
		r = kiln_error_set(err, ETIMEDOUT, "%s: no answer in %llu ms",
				   method,
				   (unsigned long long)(timeout_ns / 1000000));
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

int ttrpc_call(struct ttrpc_client *c, const char *service, const char *method,
	       const ProtobufCMessage *req,
	       const ProtobufCMessageDescriptor *resp_desc,
	       ProtobufCMessage **resp, uint64_t timeout_ns, int *code,
	       struct kiln_error *err)
{
	cleanup_free uint8_t *frame = NULL;
	struct pending p = { 0 };
	pthread_condattr_t ca;
	Ttrpc__Response *r;
	size_t len = 0;
	int ret;

	*resp = NULL;
	set_code(code, TTRPC_OK);
	if (pack_request(service, method, req, timeout_ns, &frame, &len, err) <
	    0) {
		set_code(code, TTRPC_RESOURCE_EXHAUSTED);
		return -1;
	}
	/* a deadline beyond a century is no deadline (and no overflow) */
	if (timeout_ns > 100ull * 365 * 86400 * 1000000000)
		timeout_ns = 0;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p.cond, &ca);
	pthread_condattr_destroy(&ca);
	ret = client_roundtrip(c, method, &p, frame, len, timeout_ns, code,
			       err);
	pthread_cond_destroy(&p.cond);
	if (ret < 0)
		return -1;

	/* guest-controlled: the whole Response */
	r = ttrpc__response__unpack(NULL, p.len, p.len ? p.payload : empty_buf);
	free(p.payload);
	if (r == NULL) {
		set_code(code, TTRPC_INTERNAL);
		return kiln_error_set(err, 0, "%s: bad ttrpc.Response message",
				      method);
	}
	if (r->status != NULL && r->status->code != TTRPC_OK) {
		set_code(code, r->status->code);
		ttrpc_sanitise(r->status->message);
		ret = kiln_error_set(err, 0, "%s: %.400s", method,
				     r->status->message);
		ttrpc__response__free_unpacked(r, NULL);
		return ret;
	}
	*resp = protobuf_c_message_unpack(resp_desc, NULL, r->payload.len,
					  r->payload.len ? r->payload.data
							 : empty_buf);
	ttrpc__response__free_unpacked(r, NULL);
	if (*resp == NULL) {
		set_code(code, TTRPC_INTERNAL);
		return kiln_error_set(err, 0, "%s: bad %s message", method,
				      resp_desc->name);
	}
	return 0;
}
