/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task events to containerd, in the order they happened.
 *
 * events_publish packs each event into containerd's envelope (a
 * ForwardRequest: timestamp, namespace, topic, the event as an Any whose
 * type is "containerd.events.<Name>") and queues it; one thread sends
 * them one at a time, the next only after the last was taken, retrying
 * with a growing pause while containerd does not answer (it restarts, or
 * is slow), so none is lost or overtaken. Sent over ttrpc to containerd's
 * Events.Forward at $TTRPC_ADDRESS, as containerd 1.6's shims do; without
 * that variable, through `<publish-binary> publish` with the event on its
 * stdin, as older ones did.
 *
 * Threads: the queue is under ev_mu; only the events thread touches the
 * ttrpc client.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "github.com/containerd/containerd/api/services/ttrpc/events/v1/events.pb-c.h"
#include "shim.h"

#define EVENTS_SERVICE	"containerd.services.events.ttrpc.v1.Events"
#define FORWARD_TIMEOUT (5ull * 1000000000)
#define RETRY_MAX_MS	2000

struct event {
	char *topic;
	uint8_t *any; /* the packed Any, for the publish binary */
	size_t any_len;
	uint8_t *fwd; /* the packed ForwardRequest */
	size_t fwd_len;
	struct event *next;
};

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cv = PTHREAD_COND_INITIALIZER;
static struct event *head, **tail = &head; /* under ev_mu */
static bool sending;			   /* under ev_mu */

static const struct shim_opts *opts;
static const char *ttrpc_address;   /* NULL: the publish binary */
static struct ttrpc_client *client; /* the events thread's */

static void event_free(struct event *e)
{
	free(e->topic);
	free(e->any);
	free(e->fwd);
	free(e);
}

void events_publish(const char *topic, const char *type_name,
		    const ProtobufCMessage *msg)
{
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Containerd__Services__Events__Ttrpc__V1__Envelope env =
		CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
	Containerd__Services__Events__Ttrpc__V1__ForwardRequest fwd =
		CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
	char type_url[128];
	struct timespec now;
	struct event *e = calloc(1, sizeof(*e));
	size_t len = protobuf_c_message_get_packed_size(msg);
	cleanup_free uint8_t *value = malloc(len + 1);

	if (!e || !value)
		goto oom;
	protobuf_c_message_pack(msg, value);
	snprintf(type_url, sizeof(type_url), "containerd.events.%s", type_name);
	any.type_url = type_url;
	any.value.data = value;
	any.value.len = len;
	clock_gettime(CLOCK_REALTIME, &now);
	ts.seconds = now.tv_sec;
	ts.nanos = (int32_t)now.tv_nsec;
	env.timestamp = &ts;
	env.namespace_ = (char *)opts->ns;
	env.topic = (char *)topic;
	env.event = &any;
	fwd.envelope = &env;
	e->topic = strdup(topic);
	e->any_len = google__protobuf__any__get_packed_size(&any);
	e->any = malloc(e->any_len + 1);
	e->fwd_len = protobuf_c_message_get_packed_size(&fwd.base);
	e->fwd = malloc(e->fwd_len + 1);
	if (!e->topic || !e->any || !e->fwd)
		goto oom;
	google__protobuf__any__pack(&any, e->any);
	protobuf_c_message_pack(&fwd.base, e->fwd);
	pthread_mutex_lock(&ev_mu);
	*tail = e;
	tail = &e->next;
	pthread_cond_broadcast(&ev_cv);
	pthread_mutex_unlock(&ev_mu);
	log_debug("event %s queued", topic);
	return;
oom:
	if (e)
		event_free(e);
	log_error("event %s lost: out of memory", topic);
}

static int forward(const struct event *e, struct kiln_error *err)
{
	ProtobufCMessage *req, *resp = NULL;
	int code = 0, r;

	if (!client) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd;

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ttrpc_address);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return kiln_error_set(err, errno, "socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			kiln_error_set(err, errno, "connect %s", sa.sun_path);
			close(fd);
			return -1;
		}
		client = ttrpc_client_new(fd, err);
		if (!client)
			return -1;
	}
	req = protobuf_c_message_unpack(
		&containerd__services__events__ttrpc__v1__forward_request__descriptor,
		NULL, e->fwd_len, e->fwd);
	if (!req)
		return kiln_error_set(err, ENOMEM, "unpack");
	r = ttrpc_call(client, EVENTS_SERVICE, "Forward", req,
		       &google__protobuf__empty__descriptor, &resp,
		       FORWARD_TIMEOUT, &code, err);
	protobuf_c_message_free_unpacked(req, NULL);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	if (r < 0 && code == TTRPC_UNAVAILABLE) {
		ttrpc_client_free(client);
		client = NULL;
	}
	return r;
}

/* `<publish-binary> --address A publish --topic T --namespace NS` */
static int publish_binary(const struct event *e, struct kiln_error *err)
{
	int p[2];
	pid_t pid;
	int code;

	if (pipe2(p, O_CLOEXEC) < 0)
		return kiln_error_set(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return kiln_error_set(err, errno, "fork");
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		sigset_t none;

		dup2(p[0], 0);
		dup2(null, 1);
		dup2(null, 2);
		syscall(SYS_close_range, 3, ~0u, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execlp(opts->publish_binary, opts->publish_binary, "--address",
		       opts->address, "publish", "--topic", e->topic,
		       "--namespace", opts->ns, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	(void)util_write_all(p[1], e->any, e->any_len);
	close(p[1]);
	code = reaper_wait(pid);
	if (code)
		return kiln_error_set(err, 0, "%s publish: exit status %d",
				      opts->publish_binary, code);
	return 0;
}

static void *events_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct event *e;
		unsigned int pause_ms = 50;
		unsigned int tries = 0;

		pthread_mutex_lock(&ev_mu);
		while (!head)
			pthread_cond_wait(&ev_cv, &ev_mu);
		e = head;
		sending = true;
		pthread_mutex_unlock(&ev_mu);
		for (;;) {
			struct kiln_error err = { 0 };
			int r = ttrpc_address ? forward(e, &err)
					      : publish_binary(e, &err);

			if (r == 0)
				break;
			/* containerd may be restarting: it reconnects to us
			 * and takes what we kept */
			if (tries++ % 20 == 0)
				log_warn("event %s: %s (retrying)", e->topic,
					 err.msg);
			usleep(pause_ms * 1000);
			pause_ms = pause_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
							       : pause_ms * 2;
		}
		pthread_mutex_lock(&ev_mu);
		head = e->next;
		if (!head)
			tail = &head;
		sending = false;
		pthread_cond_broadcast(&ev_cv);
		pthread_mutex_unlock(&ev_mu);
		log_debug("event %s sent", e->topic);
		event_free(e);
	}
	return NULL;
}

int events_start(const struct shim_opts *o, struct kiln_error *err)
{
	pthread_t t;
	const char *a = getenv("TTRPC_ADDRESS");
	int r;

	opts = o;
	if (a && *a)
		ttrpc_address = strncmp(a, "unix://", 7) == 0 ? a + 7 : a;
	r = pthread_create(&t, NULL, events_main, NULL);
	if (r)
		return kiln_error_set(err, r, "start the events thread");
	pthread_detach(t);
	return 0;
}

void events_flush(unsigned int timeout_ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&ev_mu);
	while (head || sending)
		if (pthread_cond_timedwait(&ev_cv, &ev_mu, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&ev_mu);
}
