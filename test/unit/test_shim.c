/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd-shim-kiln-v2 without containerd or a VM: its command line,
 * the socket address containerd computes too, and the Task service's
 * answers to requests it must refuse (unknown ids, bad ids, wrong state,
 * calls kiln does not support), through the same dispatch the server runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../shim/shim.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "github.com/containerd/containerd/api/services/ttrpc/events/v1/events.pb-c.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "lib/ttrpc.pb-c.h"
#include "tap.h"

#define SVC "containerd.task.v2.Task"

static int parse(const char *const *args, struct shim_opts *o,
		 struct kiln_error *err)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = "containerd-shim-kiln-v2";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	return shim_parse_args(argc, argv, o, err);
}

static void test_args(void)
{
	struct shim_opts o;
	struct kiln_error err = { 0 };
	const char *start[] = { "-namespace",
				"k8s.io",
				"-address",
				"/run/containerd/containerd.sock",
				"-publish-binary",
				"/usr/bin/containerd",
				"-id",
				"abc",
				"-debug",
				"start",
				NULL };
	const char *del[] = {
		"--namespace=default", "-id=x", "-bundle", "/b", "delete", NULL
	};
	const char *serve[] = { "-namespace", "n", "-id", "i", NULL };

	is_int(parse(start, &o, &err), 0, "start's flags parse");
	ok(strcmp(o.ns, "k8s.io") == 0 && strcmp(o.id, "abc") == 0 &&
		   strcmp(o.address, "/run/containerd/containerd.sock") == 0 &&
		   strcmp(o.publish_binary, "/usr/bin/containerd") == 0 &&
		   o.debug && strcmp(o.action, "start") == 0,
	   "  namespace, id, address, publish binary, debug, action");
	is_int(parse(del, &o, &err), 0, "delete's flags parse (= and --)");
	ok(strcmp(o.ns, "default") == 0 && strcmp(o.id, "x") == 0 &&
		   strcmp(o.bundle, "/b") == 0 &&
		   strcmp(o.action, "delete") == 0,
	   "  namespace, id, bundle, action");
	is_int(parse(serve, &o, &err), 0, "no action: serve");
	ok(o.action == NULL && strcmp(o.publish_binary, "containerd") == 0,
	   "  and the publish binary defaults to containerd");

	const char *v[] = { "-v", NULL };
	is_int(parse(v, &o, &err), 0, "-v alone");
	ok(o.version, "  asks for the version");

	const struct {
		const char *args[7];
		const char *want;
	} bad[] = {
		{ { "-id", "x", "start", NULL }, "-namespace" },
		{ { "-namespace", "n", "start", NULL }, "-id" },
		{ { "-namespace", "n", "-id", "x", "frob", NULL },
		  "unknown action" },
		{ { "-namespace", "n", "-id", NULL }, "needs a value" },
		{ { "-namespace", "n", "-id", "x", "-nope", NULL },
		  "unknown flag" },
		{ { "-namespace", "n", "-id", "x", "start", "more" },
		  "unexpected argument" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		is_int(parse(bad[i].args, &o, &err), -1, "refused: %s",
		       bad[i].want);
		ok(strstr(err.msg, bad[i].want) != NULL, "  says `%s`: %s",
		   bad[i].want, err.msg);
	}
}

/*
 * The address containerd's own shims compute: sha256 of
 * filepath.Join(address, ns, id). The vector was computed with
 * `printf %s /run/containerd/containerd.sock/default/abc | sha256sum`.
 */
static void test_address(void)
{
	char a[SHIM_ADDRESS_MAX], b[SHIM_ADDRESS_MAX];
	struct kiln_error err = { 0 };

	is_int(shim_socket_address("/run/containerd/containerd.sock", "default",
				   "abc", a, &err),
	       0, "a socket address");
	ok(strcmp(a, "unix:///run/containerd/s/"
		     "8cb244a719603fe00870d5ce1d8e1f1db43a654cb993d107df1f1ae23"
		     "ddffa59") == 0,
	   "  is containerd's: %s", a);
	shim_socket_address("/run/containerd/containerd.sock/", "default",
			    "abc", b, &err);
	ok(strcmp(a, b) == 0, "  a trailing / in the address changes nothing");
	shim_socket_address("/run/containerd/containerd.sock", "default", "abd",
			    b, &err);
	ok(strcmp(a, b) != 0, "  another group, another socket");
}

/* One request through the Task service; its status code (-1: none). */
static int call(const char *method, const ProtobufCMessage *msg, char *message,
		size_t mlen)
{
	Ttrpc__Request r = TTRPC__REQUEST__INIT;
	cleanup_free uint8_t *payload = NULL, *req = NULL, *out = NULL;
	size_t plen = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	size_t out_len;
	Ttrpc__Response *resp;
	int code = -1;

	payload = malloc(plen + 1);
	if (msg)
		protobuf_c_message_pack(msg, payload);
	r.service = SVC;
	r.method = (char *)method;
	r.payload.data = payload;
	r.payload.len = plen;
	req = malloc(ttrpc__request__get_packed_size(&r));
	ttrpc__request__pack(&r, req);
	if (ttrpc_server_dispatch(&task_server, req,
				  ttrpc__request__get_packed_size(&r), &out,
				  &out_len) < 0)
		return -1;
	resp = ttrpc__response__unpack(NULL, out_len, out);
	if (!resp)
		return -1;
	code = resp->status ? resp->status->code : 0;
	if (message)
		snprintf(message, mlen, "%s",
			 resp->status && resp->status->message
				 ? resp->status->message
				 : "");
	ttrpc__response__free_unpacked(resp, NULL);
	return code;
}

static void test_refusals(void)
{
	Containerd__Task__V2__StateRequest st =
		CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
	Containerd__Task__V2__KillRequest kill =
		CONTAINERD__TASK__V2__KILL_REQUEST__INIT;
	Containerd__Task__V2__CreateTaskRequest cr =
		CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
	Containerd__Task__V2__ExecProcessRequest ex =
		CONTAINERD__TASK__V2__EXEC_PROCESS_REQUEST__INIT;
	Containerd__Task__V2__PauseRequest pause =
		CONTAINERD__TASK__V2__PAUSE_REQUEST__INIT;
	Containerd__Task__V2__ShutdownRequest sd =
		CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
	Containerd__Task__V2__WaitRequest w =
		CONTAINERD__TASK__V2__WAIT_REQUEST__INIT;
	Containerd__Task__V2__DeleteRequest d =
		CONTAINERD__TASK__V2__DELETE_REQUEST__INIT;
	char m[256];

	st.id = "nope";
	is_int(call("State", &st.base, m, sizeof(m)), TTRPC_NOT_FOUND,
	       "State of an unknown task: NotFound");
	ok(strstr(m, "nope") != NULL, "  names it: %s", m);
	kill.id = "nope";
	kill.signal = 9;
	is_int(call("Kill", &kill.base, NULL, 0), TTRPC_NOT_FOUND,
	       "Kill of an unknown task: NotFound");
	w.id = "nope";
	is_int(call("Wait", &w.base, NULL, 0), TTRPC_NOT_FOUND,
	       "Wait for an unknown task: NotFound");
	d.id = "nope";
	is_int(call("Delete", &d.base, NULL, 0), TTRPC_NOT_FOUND,
	       "Delete of an unknown task: NotFound");
	ex.id = "nope";
	ex.exec_id = "e1";
	is_int(call("Exec", &ex.base, NULL, 0), TTRPC_NOT_FOUND,
	       "Exec in an unknown task: NotFound");

	cr.id = "../escape";
	cr.bundle = "/tmp";
	is_int(call("Create", &cr.base, m, sizeof(m)), TTRPC_INVALID_ARGUMENT,
	       "Create with an id that is a path");
	ok(strstr(m, "not valid") != NULL, "  says so: %s", m);
	cr.id = "ok";
	cr.bundle = "relative";
	is_int(call("Create", &cr.base, m, sizeof(m)), TTRPC_INVALID_ARGUMENT,
	       "Create with a relative bundle");
	cr.bundle = "/tmp";
	cr.checkpoint = "/tmp/cp";
	is_int(call("Create", &cr.base, m, sizeof(m)), TTRPC_UNIMPLEMENTED,
	       "Create from a checkpoint: not implemented");

	pause.id = "any";
	is_int(call("Pause", &pause.base, m, sizeof(m)), TTRPC_NOT_FOUND,
	       "Pause of an unknown task: NotFound");
	is_int(call("Stats", &st.base, m, sizeof(m)), TTRPC_NOT_FOUND,
	       "Stats of an unknown task: NotFound");
	Containerd__Task__V2__CheckpointTaskRequest cp =
		CONTAINERD__TASK__V2__CHECKPOINT_TASK_REQUEST__INIT;
	cp.id = "any";
	is_int(call("Checkpoint", &cp.base, m, sizeof(m)), TTRPC_UNIMPLEMENTED,
	       "Checkpoint: not implemented");
	ok(strstr(m, "not supported") != NULL, "  says so: %s", m);
	is_int(call("Frobnicate", NULL, NULL, 0), TTRPC_UNIMPLEMENTED,
	       "an unknown method: Unimplemented");
	is_int(call("State", NULL, NULL, 0), TTRPC_NOT_FOUND,
	       "an empty State request: NotFound, no crash");

	ok(!task_shutdown_requested(), "no shutdown before it is asked");
	task_set_listener(-1);
	is_int(call("Shutdown", &sd.base, NULL, 0), 0,
	       "Shutdown with no task answers");
	ok(task_shutdown_requested(), "  and the server stops serving");
}

/* ---- events: a containerd that comes late ------------------------------ */

#define EV_MAX 8

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static char ev_topics[EV_MAX][32], ev_types[EV_MAX][64], ev_ns[32];
static uint32_t ev_exit_status;
static int n_ev;

/* containerd's Events.Forward: records what it was given */
static int h_forward(void *ctx, const ProtobufCMessage *req,
		     ProtobufCMessage **resp, struct kiln_error *err)
{
	const Containerd__Services__Events__Ttrpc__V1__ForwardRequest *r =
		(const void *)req;
	const Containerd__Services__Events__Ttrpc__V1__Envelope *e =
		r->envelope;

	(void)ctx;
	(void)resp;
	(void)err;
	if (!e || !e->event)
		return TTRPC_INVALID_ARGUMENT;
	pthread_mutex_lock(&ev_mu);
	if (n_ev < EV_MAX) {
		snprintf(ev_topics[n_ev], sizeof(ev_topics[0]), "%s", e->topic);
		snprintf(ev_types[n_ev], sizeof(ev_types[0]), "%s",
			 e->event->type_url);
		snprintf(ev_ns, sizeof(ev_ns), "%s", e->namespace_);
		if (strcmp(e->topic, "/tasks/exit") == 0) {
			Containerd__Events__TaskExit *x =
				containerd__events__task_exit__unpack(
					NULL, e->event->value.len,
					e->event->value.data);

			if (x) {
				ev_exit_status = x->exit_status;
				containerd__events__task_exit__free_unpacked(
					x, NULL);
			}
		}
		n_ev++;
	}
	pthread_mutex_unlock(&ev_mu);
	return TTRPC_OK;
}

static const struct ttrpc_method fwd_methods[] = {
	{ "containerd.services.events.ttrpc.v1.Events", "Forward",
	  &containerd__services__events__ttrpc__v1__forward_request__descriptor,
	  h_forward },
};
static const struct ttrpc_server fwd_server = { fwd_methods, 1, NULL };

static void *accept_main(void *arg)
{
	int l = *(int *)arg;

	for (;;) {
		int c = accept(l, NULL, NULL);

		if (c < 0)
			return NULL;
		ttrpc_serve_detached(&fwd_server, c, NULL);
	}
}

static void test_events(void)
{
	static struct shim_opts o = { .ns = "k8s.io",
				      .address = "",
				      .publish_binary = "containerd",
				      .id = "t" };
	char dir[] = "/tmp/kiln-shim-test.XXXXXX", path[108];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	Containerd__Events__TaskCreate cr =
		CONTAINERD__EVENTS__TASK_CREATE__INIT;
	Containerd__Events__TaskStart st = CONTAINERD__EVENTS__TASK_START__INIT;
	Containerd__Events__TaskExit ex = CONTAINERD__EVENTS__TASK_EXIT__INIT;
	static int l;
	pthread_t t;
	int n;

	ok(mkdtemp(dir) != NULL, "a folder for containerd's socket");
	snprintf(path, sizeof(path), "%s/containerd.sock.ttrpc", dir);
	setenv("TTRPC_ADDRESS", path, 1);
	is_int(events_start(&o, NULL), 0, "the events thread starts");
	cr.container_id = st.container_id = ex.container_id = "c1";
	ex.id = "c1";
	ex.exit_status = 3;
	/* containerd is not there yet: the events wait, in order */
	events_publish("/tasks/create", "TaskCreate", &cr.base);
	events_publish("/tasks/start", "TaskStart", &st.base);
	events_publish("/tasks/exit", "TaskExit", &ex.base);
	usleep(300 * 1000);
	pthread_mutex_lock(&ev_mu);
	n = n_ev;
	pthread_mutex_unlock(&ev_mu);
	is_int(n, 0, "nothing is delivered while containerd is away");
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, path);
	ok(l >= 0 && bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		   listen(l, 4) == 0,
	   "containerd comes up");
	pthread_create(&t, NULL, accept_main, &l);
	pthread_detach(t);
	events_flush(20000);
	pthread_mutex_lock(&ev_mu);
	is_int(n_ev, 3, "then every event is delivered once");
	ok(strcmp(ev_topics[0], "/tasks/create") == 0 &&
		   strcmp(ev_topics[1], "/tasks/start") == 0 &&
		   strcmp(ev_topics[2], "/tasks/exit") == 0,
	   "  in the order published: %s %s %s", ev_topics[0], ev_topics[1],
	   ev_topics[2]);
	ok(strcmp(ev_types[2], "containerd.events.TaskExit") == 0,
	   "  typed as containerd's events: %s", ev_types[2]);
	ok(strcmp(ev_ns, "k8s.io") == 0, "  in the shim's namespace");
	is_int((int)ev_exit_status, 3, "  the exit carries its status");
	pthread_mutex_unlock(&ev_mu);
	unlink(path);
	rmdir(dir);
}

/* ---- stdin: a pipe that CloseIO ends -------------------------------------- */

static void test_stdin(void)
{
	char dir[] = "/tmp/kiln-shim-io.XXXXXX", fifo[128], buf[16];
	struct shim_io io;
	struct kiln_error err = { 0 };
	struct pollfd p;
	int r, w;
	ssize_t n;

	ok(mkdtemp(dir) != NULL, "a folder for the FIFO");
	snprintf(fifo, sizeof(fifo), "%s/stdin", dir);
	ok(mkfifo(fifo, 0600) == 0, "containerd's stdin FIFO");
	io_init(&io);
	io.stdin_path = strdup(fifo);
	io.stdout_path = strdup("");
	io.stderr_path = strdup("");
	is_int(io_prepare(&io, dir, "init", &err), 0, "stdio prepared");
	/* what kiln would hold as its stdin */
	r = dup(io.child[0]);
	is_int(io_started(&io, &err), 0,
	       "the copier starts before a writer: %s", err.msg);
	/* once the copier has its end open (ENXIO until then) */
	for (int i = 0; i < 500; i++) {
		w = open(fifo, O_WRONLY | O_NONBLOCK);
		if (w >= 0 || errno != ENXIO)
			break;
		usleep(10000);
	}
	ok(w >= 0, "containerd opens its end late");
	(void)!write(w, "abc", 3);
	p = (struct pollfd){ r, POLLIN, 0 };
	ok(poll(&p, 1, 5000) == 1, "the bytes reach the process");
	n = read(r, buf, sizeof(buf));
	ok(n == 3 && memcmp(buf, "abc", 3) == 0, "  whole: %zd", n);
	io_close_stdin(&io);
	ok(poll(&p, 1, 5000) == 1 && read(r, buf, sizeof(buf)) == 0,
	   "CloseIO: the process reads EOF while containerd's FIFO is open");
	io_destroy(&io);
	close(w);
	close(r);
	unlink(fifo);
	rmdir(dir);
}

int main(void)
{
	test_args();
	test_address();
	test_refusals();
	test_events();
	test_stdin();
	return tap_done();
}
