/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "../../vmm/api/api.h"
#include "../../vmm/api/http.h"
#include "../../vmm/evloop.h"
#include "../../vmm/metrics.h"
#include "tap.h"

/* ---- http_conn without I/O ---------------------------------------------- */

struct rec {
	int calls;
	char method[16], path[HTTP_MAX_PATH];
	char body[HTTP_MAX_BODY + 1];
	size_t body_len;
	int status;	    /* to answer with; 200 when 0 */
	const char *answer; /* JSON body to answer with, or NULL */
	size_t big;	    /* answer with this many bytes when non-zero */
	char paths[64][HTTP_MAX_PATH]; /* every path, in order */
};

static void rec_fn(void *opaque, const struct api_request *req,
		   struct api_response *resp)
{
	struct rec *r = opaque;

	if (r->calls < 64)
		snprintf(r->paths[r->calls], HTTP_MAX_PATH, "%s", req->path);
	r->calls++;
	snprintf(r->method, sizeof(r->method), "%s", req->method);
	snprintf(r->path, sizeof(r->path), "%s", req->path);
	memcpy(r->body, req->body, req->body_len + 1);
	r->body_len = req->body_len;
	resp->status = r->status ? r->status : 200;
	if (r->big > 0) {
		resp->body = malloc(r->big + 1);
		memset(resp->body, 'x', r->big);
		resp->body[r->big] = '\0';
	} else if (r->answer != NULL) {
		resp->body = strdup(r->answer);
	}
}

static int feed(struct http_conn *c, struct rec *r, const char *s)
{
	return http_conn_feed(c, s, strlen(s), rec_fn, r);
}

/* The queued output as a string (consumed); free it. */
static char *output(struct http_conn *c)
{
	size_t len;
	const char *o = http_conn_output(c, &len);
	char *s = strndup(o, len);

	http_conn_consume(c, len);
	return s;
}

static int count_str(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void test_basic(void)
{
	struct rec r = { .answer = "{\"a\": 1}" };
	struct http_conn *c = http_conn_new();
	char *o;

	is_int(feed(c, &r, "GET /machine-config HTTP/1.1\r\nHost: x\r\n\r\n"),
	       0, "GET: keep reading");
	is_int(r.calls, 1, "GET: one request");
	ok(!strcmp(r.method, "GET") && !strcmp(r.path, "/machine-config"),
	   "GET: method %s path %s", r.method, r.path);
	ok(r.body_len == 0 && r.body[0] == '\0', "GET: empty body is \"\"");
	o = output(c);
	ok(!strcmp(o, "HTTP/1.1 200 OK\r\nServer: kiln-vmm\r\n"
		      "Content-Length: 8\r\nContent-Type: application/json\r\n"
		      "\r\n{\"a\": 1}"),
	   "GET: the whole answer, byte for byte");
	free(o);

	r.status = 204;
	is_int(feed(c, &r,
		    "PUT /drives/rootfs HTTP/1.1\r\nContent-Length: 17\r\n"
		    "Content-Type: application/json\r\n\r\n{\"drive_id\": "
		    "\"r\"}"),
	       0, "PUT on the same connection");
	ok(r.calls == 2 && !strcmp(r.method, "PUT") &&
		   !strcmp(r.path, "/drives/rootfs") && r.body_len == 17 &&
		   !strcmp(r.body, "{\"drive_id\": \"r\"}"),
	   "PUT: method, path and body");
	o = output(c);
	ok(!strcmp(o, "HTTP/1.1 204 No Content\r\nServer: kiln-vmm\r\n\r\n"),
	   "204: no body, no Content-Length, no Content-Type");
	free(o);

	r.status = 0;
	r.answer = NULL;
	is_int(feed(c, &r,
		    "PATCH /vm?x=1&y=2#frag HTTP/1.1\r\nContent-Length: 19\r\n"
		    "\r\n{\"state\": \"Paused\"}"),
	       0, "PATCH with a query string");
	ok(!strcmp(r.method, "PATCH") && !strcmp(r.path, "/vm") &&
		   !strcmp(r.body, "{\"state\": \"Paused\"}"),
	   "PATCH: query and fragment stripped (%s), body kept", r.path);
	o = output(c);
	ok(strstr(o, "HTTP/1.1 200 OK\r\n") == o &&
		   strstr(o, "Content-Length: 0\r\n") &&
		   !strstr(o, "Content-Type"),
	   "200 without a body: Content-Length 0, no Content-Type");
	free(o);
	ok(!http_conn_partial(c), "nothing partial between requests");
	http_conn_free(c);
}

static void test_pipeline_and_split(void)
{
	struct rec r = { 0 };
	struct http_conn *c = http_conn_new();
	const char *two = "GET /a HTTP/1.1\r\n\r\n"
			  "PUT /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz";
	const char *req = "PUT /actions HTTP/1.1\r\nHost: localhost\r\n"
			  "Content-Length: 32\r\n\r\n"
			  "{\"action_type\": \"InstanceStart\"}";
	char *o;
	int ret = 0;

	is_int(feed(c, &r, two), 0, "two pipelined requests in one buffer");
	ok(r.calls == 2 && !strcmp(r.paths[0], "/a") &&
		   !strcmp(r.paths[1], "/b") && !strcmp(r.body, "xyz"),
	   "both handled, in order");
	o = output(c);
	is_int(count_str(o, "HTTP/1.1 200 OK"), 2, "two answers queued");
	free(o);

	memset(&r, 0, sizeof(r));
	for (size_t i = 0; req[i] != '\0' && ret == 0; i++) {
		ret = http_conn_feed(c, req + i, 1, rec_fn, &r);
		if (req[i + 1] != '\0' && r.calls != 0)
			break;
		if (i == 10)
			ok(http_conn_partial(c), "partial after 11 bytes");
	}
	ok(ret == 0 && r.calls == 1 && !strcmp(r.path, "/actions") &&
		   !strcmp(r.body, "{\"action_type\": \"InstanceStart\"}"),
	   "a request fed byte by byte: one call, only at the end");
	o = output(c);
	is_int(count_str(o, "HTTP/1.1 200 OK"), 1, "one answer");
	free(o);

	memset(&r, 0, sizeof(r));
	is_int(feed(c, &r,
		    "PUT /mmds HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"),
	       0, "chunked body");
	ok(r.calls == 1 && r.body_len == 11 && !strcmp(r.body, "hello world"),
	   "chunked body reassembled (%s)", r.body);
	free(output(c));
	http_conn_free(c);
}

static void test_expect(void)
{
	struct rec r = { 0 };
	struct http_conn *c = http_conn_new();
	char body[2001], *o;

	memset(body, 'b', 2000);
	body[2000] = '\0';
	is_int(feed(c, &r,
		    "PUT /boot-source HTTP/1.1\r\nX-Empty:\r\n"
		    "Expect: 100-continue\r\nContent-Length: 2000\r\n\r\n"),
	       0, "headers with Expect: 100-continue (not the last one)");
	o = output(c);
	ok(!strcmp(o, "HTTP/1.1 100 Continue\r\n\r\n"), "100 Continue sent "
							"before the body, and "
							"nothing else");
	free(o);
	is_int(r.calls, 0, "no request yet");
	is_int(feed(c, &r, body), 0, "the body");
	ok(r.calls == 1 && r.body_len == 2000, "request with its 2000 bytes");
	o = output(c);
	ok(strstr(o, "HTTP/1.1 200 OK") == o, "then the answer");
	free(o);

	is_int(feed(c, &r,
		    "PUT /x HTTP/1.1\r\nContent-Length: 99999\r\n"
		    "eXpEcT: 100-continue\r\n\r\n"),
	       1, "Expect with a body over the limit: close");
	o = output(c);
	ok(strstr(o, "HTTP/1.1 413 Payload Too Large\r\n") == o &&
		   !strstr(o, "100 Continue"),
	   "413 at once, no 100 Continue");
	free(o);
	http_conn_free(c);
}

static void check_fault(struct http_conn *c, struct rec *r, const char *req,
			const char *status_line, const char *needle,
			const char *what)
{
	char *o;
	int calls = r->calls;
	size_t len;

	is_int(feed(c, r, req), 1, "%s: close", what);
	o = output(c);
	ok(strstr(o, status_line) == o, "%s: %.*s", what,
	   (int)strcspn(status_line, "\r"), status_line);
	ok(strstr(o, "Connection: close\r\n") &&
		   strstr(o, "{\"fault_message\": \"") && strstr(o, needle),
	   "%s: fault_message naming `%s`", what, needle);
	is_int(r->calls, calls, "%s: never reaches the handler", what);
	is_int(feed(c, r, "GET / HTTP/1.1\r\n\r\n"), 1,
	       "%s: anything after is ignored", what);
	http_conn_output(c, &len);
	ok(len == 0 && r->calls == calls, "%s: and not answered", what);
	free(o);
	http_conn_free(c);
}

static void test_faults(void)
{
	struct rec r = { 0 };
	char big[HTTP_MAX_HEADER + 200], path[400], *chunked;
	char desc[128];
	int n;

	check_fault(http_conn_new(), &r,
		    "PUT /drives/x HTTP/1.1\r\nContent-Length: 51201\r\n\r\n",
		    "HTTP/1.1 413 Payload Too Large\r\n", "51200",
		    "Content-Length over the limit");

	/* one byte over, in two chunks */
	chunked = malloc(HTTP_MAX_BODY + 400);
	n = sprintf(chunked,
		    "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
		    "\r\n1\r\nc\r\n%x\r\n",
		    HTTP_MAX_BODY);
	memset(chunked + n, 'c', HTTP_MAX_BODY);
	chunked[n + HTTP_MAX_BODY] = '\0';
	check_fault(http_conn_new(), &r, chunked,
		    "HTTP/1.1 413 Payload Too Large\r\n", "51200",
		    "chunked body over the limit");
	free(chunked);

	snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n",
		 HTTP_MAX_HEADER, 0);
	check_fault(http_conn_new(), &r, big,
		    "HTTP/1.1 431 Request Header Fields Too Large\r\n", "8192",
		    "headers over the limit");

	memset(path, 'p', sizeof(path));
	memcpy(path, "GET /", 5);
	strcpy(path + 300, " HTTP/1.1\r\n\r\n");
	check_fault(http_conn_new(), &r, path, "HTTP/1.1 414 URI Too Long\r\n",
		    "255", "path over the limit");

	snprintf(desc, sizeof(desc), "%s",
		 http_errno_description(HPE_INVALID_METHOD));
	check_fault(http_conn_new(), &r, "\x01\x02garbage\r\n\r\n",
		    "HTTP/1.1 400 Bad Request\r\n", desc, "garbage");
	check_fault(http_conn_new(), &r,
		    "GET / HTTP/1.1\r\nContent-Length: 1\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n",
		    "HTTP/1.1 400 Bad Request\r\n", "malformed HTTP request",
		    "Content-Length with chunked (smuggling)");
}

static void test_close(void)
{
	struct rec r = { .status = 204 };
	struct http_conn *c = http_conn_new();
	char *o;

	is_int(feed(c, &r,
		    "PUT /actions HTTP/1.1\r\nConnection: close\r\n"
		    "Content-Length: 2\r\n\r\n{}GET /next HTTP/1.1\r\n\r\n"),
	       1, "Connection: close: close after the answer");
	is_int(r.calls, 1, "the request after it is not handled");
	o = output(c);
	ok(!strcmp(o, "HTTP/1.1 204 No Content\r\nServer: kiln-vmm\r\n"
		      "Connection: close\r\n\r\n"),
	   "answer says Connection: close");
	free(o);
	http_conn_free(c);

	c = http_conn_new();
	is_int(feed(c, &r, "GET / HTTP/1.0\r\n\r\n"), 1,
	       "HTTP/1.0 without keep-alive: close");
	free(output(c));
	http_conn_free(c);

	/* a handler that forgets the status */
	c = http_conn_new();
	r.status = -1;
	feed(c, &r, "GET / HTTP/1.1\r\n\r\n");
	o = output(c);
	ok(strstr(o, "HTTP/1.1 500 Internal Server Error\r\n") == o, "an "
								     "invalid "
								     "status "
								     "becomes "
								     "500");
	free(o);
	http_conn_free(c);
	is_int(strcmp(http_reason(431), "Request Header Fields Too Large"), 0,
	       "reason for 431");
	is_int(strcmp(http_reason(299), "Unknown"), 0, "unknown reason");
}

/* The server's timeouts: 408 for a partial request, nothing otherwise. */
static void test_timeout(void)
{
	struct rec r = { 0 };
	struct http_conn *c = http_conn_new();
	size_t len;
	char *o;

	is_int(feed(c, &r, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), 0,
	       "two requests");
	is_int((int)http_conn_answered(c), 2, "two answered");
	free(output(c));
	ok(!http_conn_timeout(c, "idle"), "timeout between requests: no "
					  "answer");
	http_conn_output(c, &len);
	is_int((int)len, 0, "nothing queued");
	is_int(feed(c, &r, "GET /c HTTP/1.1\r\n\r\n"), 1,
	       "closed: later requests ignored");
	is_int(r.calls, 2, "and never handled");
	http_conn_free(c);

	c = http_conn_new();
	memset(&r, 0, sizeof(r));
	feed(c, &r, "PUT /drives/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nab");
	ok(http_conn_timeout(c, "too \"slow\""), "partial request: 408 queued");
	o = output(c);
	ok(strstr(o, "HTTP/1.1 408 Request Timeout\r\n") == o &&
		   strstr(o, "Connection: close\r\n") &&
		   strstr(o, "{\"fault_message\": \"too \\\"slow\\\"\"}"),
	   "408, Connection: close, escaped fault_message");
	free(o);
	is_int(r.calls, 0, "the partial request never reached the handler");
	is_int(feed(c, &r, "cdefghij"), 1, "the rest of it is ignored");
	is_int(r.calls, 0, "still not handled");
	http_conn_free(c);
}

/* Pipelined requests with big answers: parsing stops at HTTP_MAX_OUTPUT. */
static void test_output_bound(void)
{
	struct rec r = { .big = 100 * 1024 };
	struct http_conn *c = http_conn_new();
	char reqs[40 * 24 + 1] = "";
	size_t len, most = 0;
	int ret;

	for (int i = 0; i < 40; i++)
		strcat(reqs, "GET /big HTTP/1.1\r\n\r\n");
	ret = feed(c, &r, reqs);
	http_conn_output(c, &len);
	ok(ret == 0 && r.calls < 40 && r.calls >= 10,
	   "parsing stopped with output full (%d of 40 answered)", r.calls);
	ok(len <= HTTP_MAX_OUTPUT + r.big + 256,
	   "queued output bounded (%zu bytes)", len);
	ok(http_conn_partial(c), "the rest is kept");
	is_int(http_conn_feed(c, NULL, 0, rec_fn, &r), 0,
	       "resume without draining");
	for (int i = 0; i < 100 && r.calls < 40; i++) {
		http_conn_output(c, &len);
		if (len > most)
			most = len;
		http_conn_consume(c, len);
		http_conn_feed(c, NULL, 0, rec_fn, &r);
	}
	is_int(r.calls, 40, "all 40 answered once the output drains");
	ok(most <= HTTP_MAX_OUTPUT + r.big + 256, "never more than the bound");
	ok(!http_conn_partial(c), "nothing left");
	http_conn_free(c);
}

/* ---- a real server on a Unix socket --------------------------------------- */

static char sock_path[108];

static int client(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int send_str(int fd, const char *s)
{
	size_t len = strlen(s);

	return send(fd, s, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/*
 * Read exactly one answer (never into the next): its status, and its body
 * into body (may be NULL). 0 on EOF before an answer, -1 on error.
 */
static int read_answer(int fd, char *body, size_t cap)
{
	char head[1024], *cl;
	size_t len = 0, clen;
	int status;

	while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0) {
		ssize_t n;

		if (len == sizeof(head) - 1)
			return -1;
		n = recv(fd, head + len, 1, 0);
		if (n == 0 && len == 0)
			return 0;
		if (n <= 0)
			return -1;
		len++;
	}
	head[len] = '\0';
	if (sscanf(head, "HTTP/1.1 %d", &status) != 1)
		return -1;
	cl = strcasestr(head, "Content-Length: ");
	clen = cl ? strtoul(cl + 16, NULL, 10) : 0;
	for (size_t got = 0; got < clen;) {
		char b[65536];
		size_t want = clen - got < sizeof(b) ? clen - got : sizeof(b);
		ssize_t n = recv(fd, b, want, 0);

		if (n <= 0)
			return -1;
		if (body != NULL && got < cap - 1)
			memcpy(body + got, b,
			       (size_t)n < cap - 1 - got ? (size_t)n
							 : cap - 1 - got);
		got += n;
		if (body != NULL)
			body[got < cap - 1 ? got : cap - 1] = '\0';
	}
	if (body != NULL && clen == 0)
		body[0] = '\0';
	return status;
}

/* EOF within ms milliseconds (answers before it are skipped). */
static bool sees_eof(int fd, int ms)
{
	char b[4096];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, ms) != 1)
			return false;
		n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EAGAIN)
			return false;
	}
}

struct srv {
	atomic_int calls;
	atomic_int big; /* answer /big with this many bytes */
};

static void srv_fn(void *opaque, const struct api_request *req,
		   struct api_response *resp)
{
	struct srv *s = opaque;
	int n = atomic_fetch_add(&s->calls, 1) + 1;
	size_t big = atomic_load(&s->big);

	resp->status = 200;
	if (!strcmp(req->path, "/big") && big > 0) {
		resp->body = malloc(big + 1);
		memset(resp->body, 'x', big);
		resp->body[big] = '\0';
	} else if (asprintf(&resp->body, "{\"path\": \"%s\", \"n\": %d}",
			    req->path, n) < 0) {
		resp->body = NULL;
	}
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* A request on a new connection; its status (503 when refused). */
static int one_request(const char *path)
{
	char req[256];
	int fd = client(), st;

	if (fd < 0)
		return -1;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", path);
	send_str(fd, req);
	st = read_answer(fd, NULL, 0);
	close(fd);
	return st;
}

static void test_server(void)
{
	struct kiln_error err = { 0 };
	struct http_server *srv = NULL, *dup = NULL;
	struct srv s = { 0 };
	char body[512], longpath[200];
	int stalled, fds[100], nok = 0, nbusy = 0, other = 0;
	uint64_t t0;
	struct stat st;

	is_int(http_server_start(&srv, sock_path, srv_fn, &s, &err), 0,
	       "server starts on %s", sock_path);
	ok(stat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode), "the socket "
							      "exists");
	is_int(http_server_start(&dup, sock_path, srv_fn, &s, &err), -1,
	       "a second server on the same path fails");
	ok(strstr(err.msg, "API socket `") && strstr(err.msg, "` exists"),
	   "error: %s", err.msg);
	ok(stat(sock_path, &st) == 0, "and leaves the first one's socket");
	memset(longpath, 'l', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	is_int(http_server_start(&dup, longpath, srv_fn, &s, &err), -1,
	       "a path too long for sun_path fails");
	ok(strstr(err.msg, "at most 107"), "error: %s", err.msg);

	/* stalls with half a request: timed out at the end of this test */
	stalled = client();
	send_str(stalled, "PUT /drives/x HTTP/1.1\r\nContent-Length: 10\r\n"
			  "\r\nabc");
	t0 = ms_now();

	fds[0] = client();
	ok(send_str(fds[0], "GET /one HTTP/1.1\r\n\r\n") == 0 &&
		   read_answer(fds[0], body, sizeof(body)) == 200 &&
		   strstr(body, "\"path\": \"/one\""),
	   "a second client is answered while one stalls (%s)", body);
	ok(send_str(fds[0], "GET /two HTTP/1.1\r\n\r\n") == 0 &&
		   read_answer(fds[0], body, sizeof(body)) == 200 &&
		   strstr(body, "/two"),
	   "keep-alive: a second request on the connection");
	close(fds[0]);

	/* 100 at once: 64 slots (the stalled client holds one) */
	for (int i = 0; i < 100; i++)
		fds[i] = client();
	for (int i = 99; i >= 0; i--) {
		int r = -1;

		/* refused ones may be closed already: the send may fail */
		if (fds[i] >= 0) {
			send_str(fds[i], "GET /many HTTP/1.1\r\n\r\n");
			r = read_answer(fds[i], NULL, 0);
		}
		nok += r == 200;
		nbusy += r == 503;
		other += r != 200 && r != 503;
	}
	/* the slot of the client closed just before may not be free yet */
	ok(nok >= HTTP_MAX_CONNS - 2 && nok <= HTTP_MAX_CONNS - 1 &&
		   nbusy == 100 - nok && other == 0,
	   "100 clients: %d answered, %d refused with 503 (%d else)", nok,
	   nbusy, other);
	for (int i = 0; i < 100; i++)
		close(fds[i]);
	{
		int r = -1;

		for (int i = 0; i < 200 && r != 200; i++) {
			r = one_request("/after");
			if (r != 200)
				usleep(10000);
		}
		is_int(r, 200, "slots freed once those clients are gone");
	}

	/* disconnecting mid-request frees the slot */
	for (int i = 0; i < HTTP_MAX_CONNS - 1; i++)
		fds[i] = client();
	is_int(one_request("/full"), 503, "all slots taken: 503");
	send_str(fds[0], "PUT /x HTTP/1.1\r\nContent-Length: 50\r\n\r\n{");
	close(fds[0]);
	{
		int r = -1;

		for (int i = 0; i < 200 && r != 200; i++) {
			r = one_request("/freed");
			if (r != 200)
				usleep(10000);
		}
		is_int(r, 200, "a client gone mid-request gives its slot back");
	}
	for (int i = 1; i < HTTP_MAX_CONNS - 1; i++)
		close(fds[i]);

	/* a client that pipelines and never reads */
	{
		char reqs[24 * 200 + 1] = "";
		int fd = client(), before, r = 200;

		atomic_store(&s.big, 64 * 1024);
		for (int i = 0; i < 200; i++)
			strcat(reqs, "GET /big HTTP/1.1\r\n\r\n");
		before = atomic_load(&s.calls);
		ok(send_str(fd, reqs) == 0, "200 pipelined requests sent");
		usleep(300000);
		ok(atomic_load(&s.calls) - before < 60,
		   "unread: the server stopped at %d answers",
		   atomic_load(&s.calls) - before);
		is_int(one_request("/meanwhile"), 200,
		       "another client is served meanwhile");
		for (int i = 0; i < 200 && r == 200; i++)
			r = read_answer(fd, NULL, 0);
		is_int(r, 200, "all 200 answered once the client reads");
		close(fd);
		atomic_store(&s.big, 0);
	}

	ok(sees_eof(stalled, 12000), "the stalled client is closed");
	ok(ms_now() - t0 >= 9500, "after the idle timeout (%llu ms)",
	   (unsigned long long)(ms_now() - t0));
	close(stalled);

	/* stop with clients connected: idle, mid-request, unread answers */
	fds[0] = client();
	fds[1] = client();
	fds[2] = client();
	send_str(fds[1], "PUT /x HTTP/1.1\r\nContent-Length: 9\r\n\r\n{");
	atomic_store(&s.big, 512 * 1024);
	send_str(fds[2], "GET /big HTTP/1.1\r\n\r\nGET /big HTTP/1.1\r\n\r\n");
	usleep(100000);
	t0 = ms_now();
	http_server_stop(srv);
	ok(ms_now() - t0 < 2000, "stop returns with clients connected");
	ok(sees_eof(fds[0], 1000) && sees_eof(fds[1], 1000) &&
		   sees_eof(fds[2], 1000),
	   "every client sees the connection closed");
	ok(stat(sock_path, &st) < 0 && errno == ENOENT, "the socket is "
							"unlinked");
	is_int(client(), -1, "nobody listens any more");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

/*
 * Timeouts, short ones injected so this runs in about two seconds: a
 * client trickling a byte every 50 ms never trips the idle timeout but is
 * cut off at the request timeout; an idle keep-alive connection is not.
 */
static void test_server_timeouts(void)
{
	const struct http_timeouts t = { .idle_ms = 300, .request_ms = 800 };
	struct kiln_error err = { 0 };
	struct http_server *srv = NULL;
	struct srv s = { 0 };
	char body[512];
	int fd, keep, st, sent = 0;
	uint64_t t0, dt;

	is_int(http_server_start_timeouts(&srv, sock_path, srv_fn, &s, &t,
					  &err),
	       0, "server with a 300 ms idle and 800 ms request timeout");

	keep = client();
	ok(send_str(keep, "GET /k1 HTTP/1.1\r\n\r\n") == 0 &&
		   read_answer(keep, NULL, 0) == 200,
	   "keep-alive: first request answered");

	/* one byte every 50 ms: progress every time, never complete */
	fd = client();
	t0 = ms_now();
	send_str(fd, "GET /");
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 50) != 0 || ms_now() - t0 > 4000)
			break;
		if (send_str(fd, "a") < 0)
			break;
		sent++;
	}
	dt = ms_now() - t0;
	st = read_answer(fd, body, sizeof(body));
	ok(st == 408 && strstr(body, "request timeout"),
	   "trickling client answered 408 (%d: %s)", st, body);
	ok(dt >= 750 && dt < 2500,
	   "at the request timeout, not the idle one (%llu ms, %d bytes)",
	   (unsigned long long)dt, sent);
	ok(sent >= 10, "it kept sending until then (%d bytes)", sent);
	ok(sees_eof(fd, 1000), "and its connection is closed");
	close(fd);

	/* half a request, then silence: the idle timeout, shorter, cuts */
	fd = client();
	t0 = ms_now();
	send_str(fd, "PUT /x HTTP/1.1\r\nContent-Length: 9\r\n\r\n{");
	st = read_answer(fd, body, sizeof(body));
	dt = ms_now() - t0;
	ok(st == 408 && strstr(body, "idle timeout") && dt >= 250 && dt < 750,
	   "silent client: 408 at the idle timeout (%d after %llu ms: %s)", st,
	   (unsigned long long)dt, body);
	ok(sees_eof(fd, 1000), "and closed");
	close(fd);

	/* the keep-alive connection waited past both: still served */
	ok(send_str(keep, "GET /k2 HTTP/1.1\r\n\r\n") == 0 &&
		   read_answer(keep, body, sizeof(body)) == 200 &&
		   strstr(body, "/k2"),
	   "idle keep-alive connection kept past both timeouts (%s)", body);
	close(keep);
	http_server_stop(srv);
}

/* ---- the bridge: requests answered on the VMM thread ---------------------- */

struct vmm_side {
	struct evloop loop;
	pthread_t thread;
	atomic_int calls;
	atomic_bool wrong_thread;
};

static struct vmm_side vmm;

static void *vmm_thread(void *arg)
{
	struct kiln_error err;

	evloop_run(&vmm.loop, &err);
	return NULL;
}

static void test_dispatch(struct api_ctx *ctx, const struct api_request *req,
			  struct api_response *resp)
{
	if (!pthread_equal(pthread_self(), vmm.thread))
		atomic_store(&vmm.wrong_thread, true);
	atomic_fetch_add(&vmm.calls, 1);
	resp->status = 200;
	if (asprintf(&resp->body, "{\"id\": \"%s\", \"path\": \"%s\"}",
		     ctx->instance_id, req->path) < 0)
		resp->body = NULL;
}

static void *bridge_client(void *arg)
{
	int k = (int)(intptr_t)arg, fd = client(), good = 0;

	for (int i = 0; i < 25 && fd >= 0; i++) {
		char req[64], want[64], body[256];

		snprintf(req, sizeof(req), "GET /t%d/%d HTTP/1.1\r\n\r\n", k,
			 i);
		snprintf(want, sizeof(want), "\"path\": \"/t%d/%d\"", k, i);
		if (send_str(fd, req) == 0 &&
		    read_answer(fd, body, sizeof(body)) == 200 &&
		    strstr(body, want) && strstr(body, "\"id\": \"vm-7\""))
			good++;
	}
	if (fd >= 0)
		close(fd);
	return (void *)(intptr_t)good;
}

static void test_bridge(void)
{
	struct kiln_error err = { 0 };
	struct api_ctx ctx = { .instance_id = "vm-7" };
	struct api_server *a = NULL;
	pthread_t th[4];
	int good = 0, fd;
	char body[256];
	struct pollfd p;
	uint64_t reqs0 = metrics_get(&metrics_api, API_M_REQUESTS),
		 gets0 = metrics_get(&metrics_api, API_M_GET),
		 e5xx0 = metrics_get(&metrics_api, API_M_STATUS_5XX);

	is_int(evloop_init(&vmm.loop, &err), 0, "VMM loop");
	is_int(api_server_start_with(&a, sock_path, &vmm.loop, &ctx,
				     test_dispatch, &err),
	       0, "bridge starts");
	pthread_create(&vmm.thread, NULL, vmm_thread, NULL);
	for (int k = 0; k < 4; k++)
		pthread_create(&th[k], NULL, bridge_client,
			       (void *)(intptr_t)k);
	for (int k = 0; k < 4; k++) {
		void *r;

		pthread_join(th[k], &r);
		good += (int)(intptr_t)r;
	}
	is_int(good, 100,
	       "4 clients x 25 requests answered through the bridge");
	is_int(atomic_load(&vmm.calls), 100, "each dispatched once");
	ok(!atomic_load(&vmm.wrong_thread), "dispatch runs on the thread that "
					    "runs the loop");
	ok(metrics_get(&metrics_api, API_M_REQUESTS) - reqs0 == 100 &&
		   metrics_get(&metrics_api, API_M_GET) - gets0 == 100,
	   "metrics: 100 GET requests counted");

	/* the VMM thread stops running the loop with a request in flight */
	evloop_stop(&vmm.loop);
	pthread_join(vmm.thread, NULL);
	fd = client();
	send_str(fd, "PUT /actions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	is_int(poll(&p, 1, 200), 0, "no answer while the loop is not run");
	api_server_stop(a);
	ok(read_answer(fd, body, sizeof(body)) == 503 && strstr(body, "the VMM "
								      "is "
								      "shutting"
								      " down"),
	   "stop answers the waiting request 503 (%s)", body);
	ok(sees_eof(fd, 1000), "and closes the connection");
	close(fd);
	is_int(atomic_load(&vmm.calls), 100,
	       "the late request never reached dispatch");
	ok(metrics_get(&metrics_api, API_M_REQUESTS) - reqs0 == 101 &&
		   metrics_get(&metrics_api, API_M_STATUS_5XX) - e5xx0 == 1,
	   "metrics: the 503 counted too");

	/* a path that exists: the loop is left as it was */
	close(open(sock_path, O_CREAT | O_WRONLY, 0600));
	is_int(api_server_start_with(&a, sock_path, &vmm.loop, &ctx,
				     test_dispatch, &err),
	       -1, "bridge on an existing path fails");
	ok(strstr(err.msg, "exists") != NULL, "error: %s", err.msg);
	ok(access(sock_path, F_OK) == 0, "the existing file is left alone");
	unlink(sock_path);
	evloop_destroy(&vmm.loop);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(sock_path, sizeof(sock_path), "/tmp/kiln-test-api-%d.sock",
		 (int)getpid());
	unlink(sock_path);
	test_basic();
	test_pipeline_and_split();
	test_expect();
	test_faults();
	test_close();
	test_output_bound();
	test_timeout();
	test_server();
	test_server_timeouts();
	test_bridge();
	unlink(sock_path);
	return tap_done();
}
