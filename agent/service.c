/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln.agent.v1.Agent: the ttrpc method table and one small handler per
 * method. Handlers run on the server's per-request threads; the layers
 * below return a negated ttrpc code, turned into the status here.
 */
#include "agent.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"

#define SVC "kiln.agent.v1.Agent"

uint64_t svc_ready_ns;

#define NEW(type, desc) ((type *)ttrpc_alloc_msg(&(desc)))

static int code(int res)
{
	return res < 0 ? -res : TTRPC_OK;
}

static int empty(ProtobufCMessage **resp, struct kiln_error *err)
{
	*resp = (ProtobufCMessage *)NEW(Kiln__Agent__V1__Empty,
					kiln__agent__v1__empty__descriptor);
	if (*resp == NULL)
		return kiln_error_set(err, ENOMEM, "response"), TTRPC_INTERNAL;
	return TTRPC_OK;
}

static int oom(struct kiln_error *err)
{
	kiln_error_set(err, ENOMEM, "response");
	return TTRPC_INTERNAL;
}

static int h_check(void *ctx, const ProtobufCMessage *in,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	Kiln__Agent__V1__CheckResponse *r =
		NEW(Kiln__Agent__V1__CheckResponse,
		    kiln__agent__v1__check_response__descriptor);

	if (r == NULL)
		return oom(err);
	*resp = &r->base;
	r->version = strdup(KILN_VERSION);
	if (r->version == NULL)
		return oom(err);
	r->uptime_ns = sandbox_boottime_ns();
	r->ready_ns = svc_ready_ns;
	return TTRPC_OK;
}

static int h_create_sandbox(void *ctx, const ProtobufCMessage *in,
			    ProtobufCMessage **resp, struct kiln_error *err)
{
	int res = sandbox_create(
		(const Kiln__Agent__V1__CreateSandboxRequest *)in, err);

	return res < 0 ? code(res) : empty(resp, err);
}

static int h_create_container(void *ctx, const ProtobufCMessage *in,
			      ProtobufCMessage **resp, struct kiln_error *err)
{
	int res = ctr_create(
		(const Kiln__Agent__V1__CreateContainerRequest *)in, err);

	return res < 0 ? code(res) : empty(resp, err);
}

static int start_response(pid_t pid, ProtobufCMessage **resp,
			  struct kiln_error *err)
{
	Kiln__Agent__V1__StartResponse *r =
		NEW(Kiln__Agent__V1__StartResponse,
		    kiln__agent__v1__start_response__descriptor);

	if (r == NULL)
		return oom(err);
	r->pid = (uint32_t)pid;
	*resp = &r->base;
	return TTRPC_OK;
}

static int h_start(void *ctx, const ProtobufCMessage *in,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__ContainerRequest *req = (const void *)in;
	pid_t pid = 0;
	int res = ctr_start(req->container_id, &pid, err);

	return res < 0 ? code(res) : start_response(pid, resp, err);
}

static int h_exec(void *ctx, const ProtobufCMessage *in,
		  ProtobufCMessage **resp, struct kiln_error *err)
{
	pid_t pid = 0;
	int res = ctr_exec((const Kiln__Agent__V1__ExecProcessRequest *)in,
			   &pid, err);

	return res < 0 ? code(res) : start_response(pid, resp, err);
}

static int h_signal(void *ctx, const ProtobufCMessage *in,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__SignalProcessRequest *req = (const void *)in;
	struct proc *p;
	struct ctr *c;
	int res = 0;

	/* client-controlled */
	if (req->signal >= (uint32_t)NSIG)
		return kiln_error_set(err, 0, "signal %u is out of range",
				      req->signal),
		       TTRPC_INVALID_ARGUMENT;
	if (req->all) {
		c = ctr_get(req->container_id, err);
		if (c == NULL)
			return TTRPC_NOT_FOUND;
		res = stats_signal_all(c->cgroup, (int)req->signal, err);
		ctr_put(c);
		return res < 0 ? TTRPC_INTERNAL : empty(resp, err);
	}
	p = proc_get(req->container_id, req->exec_id, err);
	if (p == NULL)
		return TTRPC_NOT_FOUND;
	pthread_mutex_lock(&ctr_lock);
	/* while the table holds the unreaped pid it cannot be reused */
	if (p->state == PROC_EXITED)
		res = AGENT_FAIL(err, TTRPC_NOT_FOUND, 0,
				 "process `%s` has already exited", p->exec_id);
	else if (kill(p->pid, (int)req->signal) < 0)
		res = AGENT_FAIL(err, TTRPC_INTERNAL, errno, "kill %d", p->pid);
	pthread_mutex_unlock(&ctr_lock);
	proc_put(p);
	return res < 0 ? code(res) : empty(resp, err);
}

static int h_wait(void *ctx, const ProtobufCMessage *in,
		  ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__ProcessRequest *req = (const void *)in;
	Kiln__Agent__V1__WaitProcessResponse *r;
	struct proc *p = proc_get(req->container_id, req->exec_id, err);
	int st;

	if (p == NULL)
		return TTRPC_NOT_FOUND;
	r = NEW(Kiln__Agent__V1__WaitProcessResponse,
		kiln__agent__v1__wait_process_response__descriptor);
	if (r == NULL) {
		proc_put(p);
		return oom(err);
	}
	pthread_mutex_lock(&ctr_lock);
	while (p->state != PROC_EXITED)
		pthread_cond_wait(&ctr_cond, &ctr_lock);
	st = p->wstatus;
	r->exited_at_ns = p->exited_at_ns;
	pthread_mutex_unlock(&ctr_lock);
	proc_put(p);
	if (WIFSIGNALED(st)) {
		r->signaled = true;
		r->signal = WTERMSIG(st);
		r->status = 128 + WTERMSIG(st);
	} else {
		r->exit_code = WEXITSTATUS(st);
		r->status = WEXITSTATUS(st);
	}
	*resp = &r->base;
	return TTRPC_OK;
}

static int h_resize(void *ctx, const ProtobufCMessage *in,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__ResizeTtyRequest *req = (const void *)in;
	struct winsize ws = {
		.ws_row = req->height > 0xffff ? 0xffff : req->height,
		.ws_col = req->width > 0xffff ? 0xffff : req->width
	};
	struct proc *p = proc_get(req->container_id, req->exec_id, err);
	int res = 0;

	if (p == NULL)
		return TTRPC_NOT_FOUND;
	pthread_mutex_lock(&ctr_lock);
	if (!p->terminal)
		res = AGENT_FAIL(err, TTRPC_FAILED_PRECONDITION, 0,
				 "process has no terminal");
	else if (ioctl(p->pty_master, TIOCSWINSZ, &ws) < 0)
		res = AGENT_FAIL(err, TTRPC_INTERNAL, errno, "TIOCSWINSZ");
	pthread_mutex_unlock(&ctr_lock);
	proc_put(p);
	return res < 0 ? code(res) : empty(resp, err);
}

static int h_close_stdin(void *ctx, const ProtobufCMessage *in,
			 ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__ProcessRequest *req = (const void *)in;
	struct proc *p = proc_get(req->container_id, req->exec_id, err);

	if (p == NULL)
		return TTRPC_NOT_FOUND;
	stdio_close_stdin(p, err);
	proc_put(p);
	return empty(resp, err);
}

static int h_ps(void *ctx, const ProtobufCMessage *in, ProtobufCMessage **resp,
		struct kiln_error *err)
{
	const Kiln__Agent__V1__ContainerRequest *req = (const void *)in;
	Kiln__Agent__V1__PsResponse *r;
	struct ctr *c = ctr_get(req->container_id, err);
	int res;

	if (c == NULL)
		return TTRPC_NOT_FOUND;
	r = NEW(Kiln__Agent__V1__PsResponse,
		kiln__agent__v1__ps_response__descriptor);
	if (r == NULL) {
		ctr_put(c);
		return oom(err);
	}
	*resp = &r->base;
	res = stats_pids(c->cgroup, &r->pids, &r->n_pids, err);
	ctr_put(c);
	return code(res);
}

static int h_stats(void *ctx, const ProtobufCMessage *in,
		   ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__ContainerRequest *req = (const void *)in;
	Kiln__Agent__V1__StatsResponse *r;
	struct ctr *c = ctr_get(req->container_id, err);
	int res;

	if (c == NULL)
		return TTRPC_NOT_FOUND;
	r = NEW(Kiln__Agent__V1__StatsResponse,
		kiln__agent__v1__stats_response__descriptor);
	if (r == NULL) {
		ctr_put(c);
		return oom(err);
	}
	*resp = &r->base;
	res = stats_container(c, r, err);
	ctr_put(c);
	return code(res);
}

static int h_remove(void *ctx, const ProtobufCMessage *in,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__ContainerRequest *req = (const void *)in;
	int res = ctr_remove(req->container_id, err);

	return res < 0 ? code(res) : empty(resp, err);
}

static int h_oom(void *ctx, const ProtobufCMessage *in, ProtobufCMessage **resp,
		 struct kiln_error *err)
{
	Kiln__Agent__V1__GetOOMEventResponse *r;
	char id[SPEC_ID_MAX + 1];

	stats_oom_wait(id);
	r = NEW(Kiln__Agent__V1__GetOOMEventResponse,
		kiln__agent__v1__get_oomevent_response__descriptor);
	if (r == NULL)
		return oom(err);
	*resp = &r->base;
	r->container_id = strdup(id);
	return r->container_id == NULL ? oom(err) : TTRPC_OK;
}

static int h_set_time(void *ctx, const ProtobufCMessage *in,
		      ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__SetTimeRequest *req = (const void *)in;
	int res = sandbox_set_time(req->sec, req->nsec, err);

	return res < 0 ? code(res) : empty(resp, err);
}

static int h_reseed(void *ctx, const ProtobufCMessage *in,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__ReseedRandomRequest *req = (const void *)in;
	int res = sandbox_reseed(req->data.data, req->data.len, err);

	return res < 0 ? code(res) : empty(resp, err);
}

static int h_set_identity(void *ctx, const ProtobufCMessage *in,
			  ProtobufCMessage **resp, struct kiln_error *err)
{
	const Kiln__Agent__V1__SetIdentityRequest *req = (const void *)in;
	int res = sandbox_reseed(req->seed.data, req->seed.len, err);

	if (res == 0)
		res = sandbox_set_time(req->sec, req->nsec, err);
	return res < 0 ? code(res) : empty(resp, err);
}

static void *shutdown_main(void *arg)
{
	/* let the answer leave first (the host waits for the VM to end
	 * anyway: a lost answer costs nothing) */
	nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	sandbox_power_off();
}

int svc_shutdown_async(void)
{
	static int once;
	pthread_t t;

	/* off the reaper's thread: removing containers waits for exits */
	if (__atomic_exchange_n(&once, 1, __ATOMIC_SEQ_CST) == 0 &&
	    pthread_create(&t, NULL, shutdown_main, NULL) != 0) {
		__atomic_store_n(&once, 0, __ATOMIC_SEQ_CST);
		return -1;
	}
	return 0;
}

static int h_shutdown(void *ctx, const ProtobufCMessage *in,
		      ProtobufCMessage **resp, struct kiln_error *err)
{
	if (svc_shutdown_async() < 0)
		return kiln_error_set(err, EAGAIN, "shutdown thread"),
		       TTRPC_INTERNAL;
	return empty(resp, err);
}

static int h_configure_network(void *ctx, const ProtobufCMessage *in,
			       ProtobufCMessage **resp, struct kiln_error *err)
{
	int res = net_configure((const void *)in, err);

	return res < 0 ? code(res) : empty(resp, err);
}

static int h_update(void *ctx, const ProtobufCMessage *in,
		    ProtobufCMessage **resp, struct kiln_error *err)
{
	int res = res_update(
		(const Kiln__Agent__V1__UpdateContainerRequest *)in, err);

	return res < 0 ? code(res) : empty(resp, err);
}

#define M(name, req, fn)                                             \
	{                                                            \
		SVC, name, &kiln__agent__v1__##req##__descriptor, fn \
	}

const struct ttrpc_method svc_methods[] = {
	M("Check", empty, h_check),
	M("CreateSandbox", create_sandbox_request, h_create_sandbox),
	M("CreateContainer", create_container_request, h_create_container),
	M("StartContainer", container_request, h_start),
	M("ExecProcess", exec_process_request, h_exec),
	M("SignalProcess", signal_process_request, h_signal),
	M("WaitProcess", process_request, h_wait),
	M("ResizeTty", resize_tty_request, h_resize),
	M("CloseStdin", process_request, h_close_stdin),
	M("Ps", container_request, h_ps),
	M("StatsContainer", container_request, h_stats),
	M("RemoveContainer", container_request, h_remove),
	M("GetOOMEvent", empty, h_oom),
	M("SetTime", set_time_request, h_set_time),
	M("ReseedRandom", reseed_random_request, h_reseed),
	M("SetIdentity", set_identity_request, h_set_identity),
	M("Shutdown", empty, h_shutdown),
	M("ConfigureNetwork", configure_network_request, h_configure_network),
	M("UpdateContainer", update_container_request, h_update),
};

const size_t svc_nmethods = ARRAY_SIZE(svc_methods);
