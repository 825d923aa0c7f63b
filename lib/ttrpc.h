/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttrpc (containerd's lightweight gRPC): a 10-byte header (length, stream
 * id, type, flags; big-endian) in front of each protobuf message, several
 * calls in flight on one connection, client streams odd-numbered. One
 * implementation, client and server, for the agent, its host client and
 * the shim. Messages are protobuf-c.
 */
#ifndef KILN_LIB_TTRPC_H
#define KILN_LIB_TTRPC_H

#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TTRPC_HEADER_LEN 10
#define TTRPC_MAX_MSG	 (4u << 20) /* ttrpc's message length limit */

enum ttrpc_type {
	TTRPC_REQUEST = 1,
	TTRPC_RESPONSE = 2,
	TTRPC_DATA = 3,
};

/* gRPC status codes the agent and shim answer with */
enum ttrpc_code {
	TTRPC_OK = 0,
	TTRPC_CANCELLED = 1,
	TTRPC_UNKNOWN = 2,
	TTRPC_INVALID_ARGUMENT = 3,
	TTRPC_DEADLINE_EXCEEDED = 4,
	TTRPC_NOT_FOUND = 5,
	TTRPC_ALREADY_EXISTS = 6,
	TTRPC_PERMISSION_DENIED = 7,
	TTRPC_RESOURCE_EXHAUSTED = 8,
	TTRPC_FAILED_PRECONDITION = 9,
	TTRPC_UNIMPLEMENTED = 12,
	TTRPC_INTERNAL = 13,
	TTRPC_UNAVAILABLE = 14,
};

struct ttrpc_header {
	uint32_t length; /* of the message after the header */
	uint32_t stream_id;
	uint8_t type;
	uint8_t flags;
};

void ttrpc_header_encode(const struct ttrpc_header *h,
			 uint8_t out[TTRPC_HEADER_LEN]);
/* guest/peer-controlled: -1 with err for a length over TTRPC_MAX_MSG or an
 * unknown type (h is filled either way). */
int ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_LEN],
			struct ttrpc_header *h, struct kiln_error *err);

/*
 * Blocking I/O of one framed message. read: *payload is malloc'd (length
 * bytes); returns 0, or -1 with err (errnum 0 and message "connection
 * closed" on a clean EOF before a header; EOF inside a frame is another
 * error). write: header and payload in one sendmsg (MSG_NOSIGNAL: a closed
 * peer is EPIPE, not SIGPIPE), or writev when fd is not a socket.
 */
int ttrpc_read_msg(int fd, struct ttrpc_header *h, uint8_t **payload,
		   struct kiln_error *err);
int ttrpc_write_msg(int fd, uint32_t stream_id, uint8_t type,
		    const uint8_t *payload, size_t len, struct kiln_error *err);

/* ---- server ----------------------------------------------------------- */

/*
 * A method handler. Returns TTRPC_OK and sets *resp (a message of the
 * method's response type, or NULL for an empty one), or a ttrpc_code with
 * err's message (plus strerror(errnum) when set) as the status message; a
 * return outside 1..16 (kiln_error_set's -1) is sent as TTRPC_UNKNOWN.
 * The server frees *resp with protobuf_c_message_free_unpacked(resp,
 * NULL), so the message and everything it points to must be malloc'd:
 * start from ttrpc_alloc_msg, and set string fields to strdup'd copies
 * (or leave them at their default), bytes, repeated arrays and
 * sub-messages to malloc'd memory. Never a string literal or a pointer
 * into req. req is freed after the handler returns.
 * May block (a wait for exit): every request runs on its own thread, so
 * handlers run concurrently and must lock what they share.
 */
typedef int (*ttrpc_handler)(void *ctx, const ProtobufCMessage *req,
			     ProtobufCMessage **resp, struct kiln_error *err);

struct ttrpc_method {
	const char *service; /* "kiln.agent.v1.Agent" */
	const char *method;  /* "CreateContainer" */
	const ProtobufCMessageDescriptor *req_desc;
	ttrpc_handler fn;
};

struct ttrpc_server {
	const struct ttrpc_method *methods;
	size_t nmethods;
	void *ctx;
};

/*
 * Decode one Request payload, find its method, unpack its message, call
 * the handler and encode the Response (status + payload) into *out
 * (malloc'd, *out_len bytes). Never fails on bad input: a malformed
 * Request, unknown method or bad payload becomes an error status. Pure
 * apart from the handler: what the fuzzer drives. -1 only on ENOMEM.
 */
int ttrpc_server_dispatch(const struct ttrpc_server *s, const uint8_t *payload,
			  size_t len, uint8_t **out, size_t *out_len);

/*
 * Payload bytes of the requests in flight on one server connection. The
 * agent is PID 1 of a small guest: 128 requests of 4 MiB each (and what
 * protobuf-c unpacks them into) could take all its memory. Four
 * requests of the largest size fit, so any single request is served on
 * an otherwise idle connection.
 */
#define TTRPC_MAX_INFLIGHT_BYTES (16u << 20)

/*
 * Serve one connection until EOF or a framing error: a reader loop that
 * starts a thread per request. At most 128 requests and
 * TTRPC_MAX_INFLIGHT_BYTES of their payloads are in flight: a request
 * past either cap is read into nothing (its payload is never held) and
 * answered RESOURCE_EXHAUSTED at once, which the client may retry. The
 * socket is not left unread instead (back-pressure): ttrpc has no flow
 * control of its own, and a request stuck behind one that cannot fit
 * would wait for calls (a WaitProcess) that may only end through it (a
 * KillProcess). Responses are written under a lock, so they may go out
 * in any order. Returns when the reader ends; fd is closed once the
 * last in-flight request has answered. Blocking: run it on its own thread
 * (ttrpc_serve_detached does that; on failure it leaves fd open).
 */
void ttrpc_serve_conn(const struct ttrpc_server *s, int fd);
int ttrpc_serve_detached(const struct ttrpc_server *s, int fd,
			 struct kiln_error *err);

/* A zeroed, initialised message of type desc (for handler responses). */
ProtobufCMessage *ttrpc_alloc_msg(const ProtobufCMessageDescriptor *desc);

/* Make a peer's text printable ASCII, in place: a status message, the
 * agent client's answer lines. */
void ttrpc_sanitise(char *s);

/* ---- client ----------------------------------------------------------- */
struct ttrpc_client;

/*
 * Take over a connected, blocking fd (closed by ttrpc_client_free); starts
 * a reader thread. ttrpc_client_free: no call may still be running.
 */
struct ttrpc_client *ttrpc_client_new(int fd, struct kiln_error *err);
void ttrpc_client_free(struct ttrpc_client *c);

/*
 * One call; thread-safe, and calls from several threads share the
 * connection (each waits for its own stream's response). *resp is
 * unpacked with resp_desc; free it with protobuf_c_message_free_unpacked.
 * An error status gives -1 with err "<method>: <status message>" and
 * *code set (when code is not NULL); a broken connection gives -1 with
 * *code TTRPC_UNAVAILABLE (for this and every later call). timeout_ns 0:
 * no timeout; otherwise sent as Request.timeout_nano and, when it
 * passes, -1 with *code TTRPC_DEADLINE_EXCEEDED (a late answer is
 * dropped). A response that does not decode: TTRPC_INTERNAL.
 */
int ttrpc_call(struct ttrpc_client *c, const char *service, const char *method,
	       const ProtobufCMessage *req,
	       const ProtobufCMessageDescriptor *resp_desc,
	       ProtobufCMessage **resp, uint64_t timeout_ns, int *code,
	       struct kiln_error *err);

#endif
