/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 for the API, over libhttp-parser: a connection's byte stream
 * turned into requests (no I/O, so the fuzzer can drive it), and a server
 * on a Unix socket run by the API thread.
 */
#ifndef KILN_VMM_API_HTTP_H
#define KILN_VMM_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "../../lib/error.h"

#define HTTP_MAX_BODY	51200 /* Firecracker's default payload limit */
#define HTTP_MAX_HEADER 8192  /* request line and headers together */
#define HTTP_MAX_CONNS	64
#define HTTP_MAX_PATH	256
#define HTTP_MAX_OUTPUT (1024 * 1024) /* queued answers per connection */
/* file descriptors received (SCM_RIGHTS) and not yet given to a request */
#define HTTP_MAX_FDS 4

struct api_request {
	char method[16];	  /* "GET", "PUT", "PATCH", ... as received */
	char path[HTTP_MAX_PATH]; /* URL path, query string removed */
	char *body;		  /* NUL-terminated; "" when there is none */
	size_t body_len;
	/*
	 * Ours: the file descriptors that came with the request's bytes
	 * (SCM_RIGHTS over the Unix socket; docs/api.md). The connection
	 * owns them and closes them once the request is answered: a handler
	 * that keeps a file duplicates its fd.
	 */
	const int *fds;
	size_t nfds;
};

struct api_response {
	int status; /* 200, 204, 400, ... */
	char *body; /* malloc'd JSON text, or NULL for no body */
};

/* Called once per complete request; must set resp->status. */
typedef void (*http_request_fn)(void *opaque, const struct api_request *req,
				struct api_response *resp);

/* ---- one connection's bytes ---------------------------------------- */
struct http_conn;

struct http_conn *http_conn_new(void);
void http_conn_free(struct http_conn *c);

/*
 * Feed received bytes. Each complete request is handed to fn and its
 * formatted response appended to the output buffer. Returns 0 to keep
 * reading, 1 when the connection should close once the output is flushed
 * (the client asked for it, or the bytes were not HTTP: a 400/413 answer
 * is queued first).
 *
 * Parsing stops while more than HTTP_MAX_OUTPUT bytes wait to be sent (a
 * client that pipelines but never reads); the rest of data is kept, and
 * http_conn_feed(c, NULL, 0, ...) resumes it once the output has drained.
 */
int http_conn_feed(struct http_conn *c, const char *data, size_t len,
		   http_request_fn fn, void *opaque);

/*
 * File descriptors received on the connection (SCM_RIGHTS), taken: they
 * go with the next request that completes, closed once it is answered
 * (or with the connection). client-controlled: more than HTTP_MAX_FDS
 * waiting, or truncated (too many in one message), closes them all and
 * queues 400: returns 1 then, as http_conn_feed does.
 */
int http_conn_add_fds(struct http_conn *c, const int *fds, size_t n,
		      bool truncated);

/* Part of a request received and not yet answered (for idle timeouts). */
bool http_conn_partial(const struct http_conn *c);

/* Requests answered so far: tells the server when a new one began. */
unsigned long http_conn_answered(const struct http_conn *c);

/*
 * The server gave up waiting for the rest of a request: queue 408 with a
 * fault_message and close once it is sent. Returns false (nothing
 * queued) when no request was partial; the connection closes all the same.
 */
bool http_conn_timeout(struct http_conn *c, const char *why);

/* Bytes waiting to be sent, and dropping the first n of them once sent. */
const char *http_conn_output(const struct http_conn *c, size_t *len);
void http_conn_consume(struct http_conn *c, size_t n);

/* "Bad Request" for 400, ... ("Unknown" for codes we never send). */
const char *http_reason(int status);

/* ---- the server ------------------------------------------------------ */
struct http_server;

/*
 * client-controlled: how long a client may hold a connection slot.
 * idle_ms: a connection with part of a request or unsent answers that
 * makes no progress (no byte either way) for this long is closed.
 * request_ms: a request not complete this long after its first byte is
 * answered 408 and its connection closed, however steadily its bytes
 * trickle in (one byte every 9 s would reset the idle timer forever).
 * An idle keep-alive connection between requests is bounded by neither.
 */
struct http_timeouts {
	unsigned int idle_ms;
	unsigned int request_ms;
};

#define HTTP_IDLE_TIMEOUT_MS	10000
#define HTTP_REQUEST_TIMEOUT_MS 30000

/*
 * Bind and listen on a Unix socket at path (an existing path is an error,
 * as with Firecracker) and start the API thread, which calls fn for each
 * request. The socket accepts connections when this returns.
 */
int http_server_start(struct http_server **out, const char *path,
		      http_request_fn fn, void *opaque, struct kiln_error *err);
/* The same with other timeouts (tests); NULL for the defaults above. */
int http_server_start_timeouts(struct http_server **out, const char *path,
			       http_request_fn fn, void *opaque,
			       const struct http_timeouts *t,
			       struct kiln_error *err);

/* Stop the thread, close every connection, unlink the socket, free. */
void http_server_stop(struct http_server *s);

#endif
