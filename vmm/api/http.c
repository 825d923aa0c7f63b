/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One API connection's byte stream: libhttp-parser does the parsing; this
 * file collects each request's method, path and body within our limits,
 * hands the request to the caller and formats the answer.
 *
 * Flow: the parser is paused after every complete request, so requests are
 * answered one at a time and in order, and we can stop between two
 * pipelined requests (after "Connection: close", or while the output is
 * over HTTP_MAX_OUTPUT). Bytes not parsed yet wait in c->in; they are
 * bounded because the server reads no more while output is pending, and
 * http_conn_feed() refuses to keep more than HTTP_MAX_PENDING_IN.
 *
 * Errors (malformed bytes, limits) queue one error answer with a
 * fault_message and "Connection: close"; everything after is ignored.
 */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* client-controlled: unparsed input kept while the output is blocked */
#define HTTP_MAX_PENDING_IN (256 * 1024)
#define HTTP_EXPECT_MAX	    32

struct http_conn {
	http_parser p;
	bool in_message; /* between message_begin and message_complete */
	bool complete;	 /* a request waits to be answered */
	bool closing;	 /* no more requests: answer queued, then close */
	unsigned long answered; /* requests answered so far */

	/* the request being received */
	size_t hdr_bytes; /* request line and headers so far */
	char url[HTTP_MAX_HEADER];
	size_t url_len;
	char path[HTTP_MAX_PATH]; /* url's path, once the headers are in */
	char *body;
	size_t body_len, body_cap;
	enum {
		CB_NONE,
		CB_FIELD,
		CB_VALUE
	} last_cb;
	size_t name_len;     /* bytes of the field name so far */
	bool name_is_expect; /* the current field is Expect */
	char expect[HTTP_EXPECT_MAX];
	size_t expect_len;
	bool want_continue; /* Expect: 100-continue seen */
	int fail_status;    /* set by a callback that refuses the request */
	char fail_msg[96];

	/* file descriptors received, for the next request answered */
	int fds[HTTP_MAX_FDS];
	size_t nfds;

	/* input kept while the output is over HTTP_MAX_OUTPUT */
	char *in;
	size_t in_len;

	/* answers waiting to be sent: out[out_off, out_len) */
	char *out;
	size_t out_off, out_len, out_cap;
};

const char *http_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

/* ---- output ---------------------------------------------------------- */

static int out_reserve(struct http_conn *c, size_t n)
{
	size_t cap;
	char *p;

	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_cap - c->out_len >= n)
		return 0;
	cap = c->out_cap ? c->out_cap : 1024;
	while (cap - c->out_len < n)
		cap *= 2;
	p = realloc(c->out, cap);
	if (p == NULL)
		return -1;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

static void out_append(struct http_conn *c, const char *data, size_t n)
{
	if (out_reserve(c, n) < 0) {
		/* no memory for the answer: all we can still do is hang up */
		c->closing = true;
		return;
	}
	memcpy(c->out + c->out_len, data, n);
	c->out_len += n;
}

/* Queue one answer; body (JSON text or NULL) is not freed here. */
static void queue_response(struct http_conn *c, int status, const char *body,
			   bool close)
{
	char head[256];
	size_t body_len = 0;
	int n;

	/* 1xx and 204 never carry a body (RFC 9110 6.4.1) */
	if (status < 200 || status == 204)
		body = NULL;
	if (body != NULL)
		body_len = strlen(body);
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nServer: kiln-vmm\r\n", status,
		     http_reason(status));
	if (status != 204)
		n += snprintf(head + n, sizeof(head) - n,
			      "Content-Length: %zu\r\n", body_len);
	if (body != NULL)
		n += snprintf(head + n, sizeof(head) - n,
			      "Content-Type: application/json\r\n");
	if (close)
		n += snprintf(head + n, sizeof(head) - n,
			      "Connection: close\r\n");
	n += snprintf(head + n, sizeof(head) - n, "\r\n");
	out_append(c, head, n);
	if (body_len > 0)
		out_append(c, body, body_len);
}

/* {"fault_message": "msg"}, escaped: msg may quote the parser's words. */
static void queue_fault(struct http_conn *c, int status, const char *msg)
{
	char json[512];
	size_t n = 0;
	const char *prefix = "{\"fault_message\": \"", *suffix = "\"}";

	memcpy(json, prefix, strlen(prefix));
	n = strlen(prefix);
	for (const char *p = msg; *p != '\0' && n < sizeof(json) - 16; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '"' || ch == '\\') {
			json[n++] = '\\';
			json[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += snprintf(json + n, sizeof(json) - n, "\\u%04x",
				      ch);
		} else {
			json[n++] = (char)ch;
		}
	}
	memcpy(json + n, suffix, strlen(suffix) + 1);
	queue_response(c, status, json, true);
	c->closing = true;
}

const char *http_conn_output(const struct http_conn *c, size_t *len)
{
	*len = c->out_len - c->out_off;
	/* nothing queued yet: out may be NULL, and NULL + 0 is undefined */
	return *len == 0 ? "" : c->out + c->out_off;
}

void http_conn_consume(struct http_conn *c, size_t n)
{
	if (n > c->out_len - c->out_off)
		n = c->out_len - c->out_off;
	c->out_off += n;
	if (c->out_off < c->out_len)
		return;
	c->out_off = c->out_len = 0;
	/* a burst of answers should not pin its buffer for the connection's
	 * whole life */
	if (c->out_cap > 64 * 1024) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
}

static size_t out_pending(const struct http_conn *c)
{
	return c->out_len - c->out_off;
}

/* ---- parser callbacks -------------------------------------------------- */

static __attribute__((format(printf, 3, 4))) int
fail(struct http_conn *c, int status, const char *fmt, ...)
{
	va_list ap;

	c->fail_status = status;
	va_start(ap, fmt);
	vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * client-controlled: URL, names and values count against HTTP_MAX_HEADER
 * (the parser's own limit, 80 KiB, bounds the whitespace around them).
 */
static int count_header(struct http_conn *c, size_t len)
{
	c->hdr_bytes += len;
	if (c->hdr_bytes > HTTP_MAX_HEADER)
		return fail(c, 431,
			    "request headers exceed the limit of %d bytes",
			    HTTP_MAX_HEADER);
	return 0;
}

/* A header's value ended: remember an Expect: 100-continue. */
static void header_done(struct http_conn *c)
{
	if (c->last_cb == CB_VALUE && c->name_is_expect &&
	    strcasecmp(c->expect, "100-continue") == 0)
		c->want_continue = true;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = p->data;

	c->in_message = true;
	c->hdr_bytes = 0;
	c->url_len = 0;
	c->body_len = 0;
	c->last_cb = CB_NONE;
	c->want_continue = false;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	/* client-controlled: the URL is bounded by the header limit */
	if (len > sizeof(c->url) - c->url_len)
		return fail(c, 414,
			    "request URL exceeds the limit of %zu bytes",
			    sizeof(c->url));
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	return count_header(c, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	static const char expect[] = "expect";

	/* names and values may arrive in pieces */
	if (c->last_cb != CB_FIELD) {
		header_done(c);
		c->name_len = 0;
		c->name_is_expect = true;
	}
	c->last_cb = CB_FIELD;
	if (c->name_is_expect &&
	    (len > sizeof(expect) - 1 - c->name_len ||
	     strncasecmp(at, expect + c->name_len, len) != 0))
		c->name_is_expect = false;
	c->name_len += len;
	return count_header(c, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	if (c->last_cb != CB_VALUE) {
		c->name_is_expect = c->name_is_expect && c->name_len == 6;
		c->expect_len = 0;
		c->expect[0] = '\0';
	}
	c->last_cb = CB_VALUE;
	if (c->name_is_expect) {
		size_t n = len;

		if (n > sizeof(c->expect) - 1 - c->expect_len)
			n = sizeof(c->expect) - 1 - c->expect_len;
		memcpy(c->expect + c->expect_len, at, n);
		c->expect_len += n;
		c->expect[c->expect_len] = '\0';
	}
	return count_header(c, len);
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = p->data;
	bool chunked = p->flags & F_CHUNKED;
	struct http_parser_url u;
	size_t plen;

	header_done(c);
	http_parser_url_init(&u);
	if (http_parser_parse_url(c->url, c->url_len, p->method == HTTP_CONNECT,
				  &u) != 0)
		return fail(c, 400, "invalid request URL");
	plen = (u.field_set & (1 << UF_PATH)) ? u.field_data[UF_PATH].len : 0;
	if (plen >= HTTP_MAX_PATH)
		return fail(c, 414,
			    "request path exceeds the limit of %d bytes",
			    HTTP_MAX_PATH - 1);
	if (plen == 0) {
		strcpy(c->path, "/"); /* absolute-form without a path */
	} else {
		memcpy(c->path, c->url + u.field_data[UF_PATH].off, plen);
		c->path[plen] = '\0';
	}
	/* client-controlled: refuse a declared body before reading it */
	if (!chunked && p->content_length != UINT64_MAX &&
	    p->content_length > HTTP_MAX_BODY)
		return fail(c, 413,
			    "request body exceeds the limit of %d bytes",
			    HTTP_MAX_BODY);
	if (!chunked && p->content_length != UINT64_MAX &&
	    p->content_length > 0) {
		c->body = malloc(p->content_length + 1);
		if (c->body == NULL)
			return fail(c, 500,
				    "out of memory for the request body");
		c->body_cap = p->content_length + 1;
	}
	/* HTTP/1.0 clients do not know 100 Continue (RFC 9110 10.1.1) */
	if (c->want_continue && (p->http_major > 1 || p->http_minor > 0) &&
	    (chunked ||
	     (p->content_length != UINT64_MAX && p->content_length > 0))) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		out_append(c, cont, sizeof(cont) - 1);
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	/* client-controlled: chunked bodies declare no length up front */
	if (len > HTTP_MAX_BODY - c->body_len)
		return fail(c, 413,
			    "request body exceeds the limit of %d bytes",
			    HTTP_MAX_BODY);
	if (c->body_len + len + 1 > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap : 1024;
		char *b;

		while (cap < c->body_len + len + 1)
			cap *= 2;
		if (cap > HTTP_MAX_BODY + 1)
			cap = HTTP_MAX_BODY + 1;
		b = realloc(c->body, cap);
		if (b == NULL)
			return fail(c, 500,
				    "out of memory for the request body");
		c->body = b;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, at, len);
	c->body_len += len;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = p->data;

	c->in_message = false;
	c->complete = true;
	/* stop here: the caller answers before the next request is parsed */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* ---- requests ------------------------------------------------------------ */

struct http_conn *http_conn_new(void)
{
	struct http_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	http_parser_init(&c->p, HTTP_REQUEST);
	c->p.data = c;
	return c;
}

static void close_fds(struct http_conn *c)
{
	for (size_t i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
}

int http_conn_add_fds(struct http_conn *c, const int *fds, size_t n,
		      bool truncated)
{
	if (n == 0 && !truncated)
		return c->closing ? 1 : 0;
	if (truncated || n > HTTP_MAX_FDS - c->nfds || c->closing) {
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		close_fds(c);
		if (!c->closing)
			queue_fault(c, 400,
				    "too many file descriptors with the "
				    "request");
		c->closing = true;
		return 1;
	}
	memcpy(c->fds + c->nfds, fds, n * sizeof(*fds));
	c->nfds += n;
	return 0;
}

void http_conn_free(struct http_conn *c)
{
	if (c == NULL)
		return;
	close_fds(c);
	free(c->body);
	free(c->in);
	free(c->out);
	free(c);
}

bool http_conn_partial(const struct http_conn *c)
{
	return !c->closing && (c->in_message || c->in_len > 0);
}

unsigned long http_conn_answered(const struct http_conn *c)
{
	return c->answered;
}

bool http_conn_timeout(struct http_conn *c, const char *why)
{
	bool partial = http_conn_partial(c);

	if (partial)
		queue_fault(c, 408, why);
	c->closing = true;
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	return partial;
}

static void answer(struct http_conn *c, http_request_fn fn, void *opaque)
{
	struct api_request req = { .body = c->body ? c->body : "" };
	struct api_response resp = { 0 };
	const http_parser *p = &c->p;

	snprintf(req.method, sizeof(req.method), "%s",
		 http_method_str(p->method));
	memcpy(req.path, c->path, sizeof(req.path));
	if (c->body != NULL)
		c->body[c->body_len] = '\0';
	req.body_len = c->body_len;
	req.fds = c->fds;
	req.nfds = c->nfds;
	/* the rest of an upgraded connection would be another protocol */
	if (!http_should_keep_alive(p) || p->upgrade)
		c->closing = true;
	c->answered++;
	fn(opaque, &req, &resp);
	/* closed before the answer goes: a client that reads it may count
	 * on the VMM holding no more than the handler kept */
	close_fds(c);
	if (resp.status < 100 || resp.status > 599)
		resp.status = 500;
	queue_response(c, resp.status, resp.body, c->closing);
	free(resp.body);
	free(c->body);
	c->body = NULL;
	c->body_len = c->body_cap = 0;
}

/* Parse buf[0, len); returns how many bytes were used. */
static size_t parse(struct http_conn *c, const char *buf, size_t len,
		    http_request_fn fn, void *opaque)
{
	size_t off = 0;

	while (off < len && !c->closing && out_pending(c) < HTTP_MAX_OUTPUT) {
		enum http_errno e;

		size_t n = http_parser_execute(&c->p, &settings, buf + off,
					       len - off);

		off += n;
		e = HTTP_PARSER_ERRNO(&c->p);
		/* nothing used and no error: the parser would spin (it never
		 * does for a request; refuse rather than loop) */
		if (n == 0 && e == HPE_OK && !c->complete)
			e = HPE_UNKNOWN;
		if (e == HPE_PAUSED)
			http_parser_pause(&c->p, 0);
		if (c->complete) {
			c->complete = false;
			answer(c, fn, opaque);
		} else if (e != HPE_OK && e != HPE_PAUSED) {
			char msg[160];

			if (c->fail_status != 0) {
				queue_fault(c, c->fail_status, c->fail_msg);
			} else {
				snprintf(msg, sizeof(msg),
					 "malformed HTTP request: %s",
					 http_errno_description(e));
				queue_fault(c, 400, msg);
			}
		}
	}
	return off;
}

int http_conn_feed(struct http_conn *c, const char *data, size_t len,
		   http_request_fn fn, void *opaque)
{
	size_t used;

	if (c->closing)
		return 1; /* whatever follows the last request is ignored */
	if (c->in_len > 0 && len > 0) {
		char *in;

		/* client-controlled: pipelining without reading answers */
		if (len > HTTP_MAX_PENDING_IN - c->in_len) {
			c->closing = true;
			return 1;
		}
		in = realloc(c->in, c->in_len + len);
		if (in == NULL) {
			c->closing = true;
			return 1;
		}
		memcpy(in + c->in_len, data, len);
		c->in = in;
		c->in_len += len;
	}
	if (c->in_len > 0) {
		used = parse(c, c->in, c->in_len, fn, opaque);
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	} else if (len > 0) {
		used = parse(c, data, len, fn, opaque);
		if (used < len && !c->closing) {
			if (len - used > HTTP_MAX_PENDING_IN) {
				c->closing = true;
				return 1;
			}
			c->in = malloc(len - used);
			if (c->in == NULL) {
				c->closing = true;
				return 1;
			}
			memcpy(c->in, data + used, len - used);
			c->in_len = len - used;
		}
	}
	if (c->closing || c->in_len == 0) {
		free(c->in);
		c->in = NULL;
		c->in_len = 0;
	}
	return c->closing ? 1 : 0;
}
