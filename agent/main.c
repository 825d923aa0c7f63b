/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln-agent: PID 1 of a kiln microVM. Mounts the guest's file systems,
 * serves kiln.agent.v1.Agent over ttrpc on vsock port 1024 and stdio
 * streams on port 1025, and reaps every child.
 *
 * PID 1 must never exit (the kernel would panic): every error is logged
 * to the console and the agent keeps serving.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"

/* filled in main(): the table's size is known in service.c only */
static struct ttrpc_server server;

/* The kernel starts init with the console as 0, 1 and 2 if it could open
 * it; without them our sockets would become fds 0-2 and logs would land
 * in a host's stream. */
static void ensure_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		int n;

		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		n = open("/dev/console", O_RDWR | O_NOCTTY);
		if (n < 0)
			n = open("/dev/null", O_RDWR);
		if (n >= 0 && n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

static int vsock_listen(unsigned int port, struct kiln_error *err)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK,
				 .svm_port = port,
				 .svm_cid = VMADDR_CID_ANY };
	cleanup_close int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return kiln_error_set(err, errno, "vsock socket");
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return kiln_error_set(err, errno, "bind vsock port %u", port);
	if (listen(fd, 64) < 0)
		return kiln_error_set(err, errno, "listen on vsock port %u",
				      port);
	return steal_fd(&fd);
}

struct listener {
	unsigned int port;
	int fd;
};

static void *accept_main(void *arg)
{
	struct listener *l = arg;
	struct kiln_error err = { 0 };

	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		int r;

		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED &&
			    log_ratelimit())
				log_error("accept on port %u: %m", l->port);
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOMEM || errno == ENOBUFS)
				nanosleep(&(struct timespec){ 0, 100000000 },
					  NULL);
			continue;
		}
		if (l->port == AGENT_RPC_PORT_NUM)
			r = ttrpc_serve_detached(&server, fd, &err);
		else
			r = stdio_serve_detached(fd, &err);
		if (r < 0) {
			if (l->port == AGENT_RPC_PORT_NUM)
				close(fd);
			log_error("port %u: %s", l->port, err.msg);
		}
	}
	return NULL;
}

static void start_listener(struct listener *l)
{
	struct kiln_error err = { 0 };
	pthread_t t;
	int r;

	/* without a vsock device there is nothing to serve, but PID 1 must
	 * stay: keep trying, quietly after the first few */
	while ((l->fd = vsock_listen(l->port, &err)) < 0) {
		if (log_ratelimit())
			log_error("%s: %s", err.msg, strerror(err.errnum));
		sleep(1);
	}
	r = pthread_create(&t, NULL, accept_main, l);
	if (r != 0)
		log_error("port %u: no accept thread: %s", l->port,
			  strerror(r));
	else
		pthread_detach(t);
}

static void reap(void)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);

		if (pid <= 0)
			return;
		/* orphans reparented to us and exec helpers: discarded */
		ctr_reap(pid, st);
	}
}

int main(int argc, char **argv)
{
	static struct listener rpc = { AGENT_RPC_PORT_NUM, -1 },
			       streams = { AGENT_STREAM_PORT_NUM, -1 };
	struct kiln_error err = { 0 };
	bool pid1 = getpid() == 1;
	sigset_t set;

	ensure_std_fds();
	server.methods = svc_methods;
	server.nmethods = svc_nmethods;
	log_set_prog("kiln-agent");
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* blocked before any thread starts, so only sigwaitinfo sees them */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pid1) {
		/* Ctrl-Alt-Del (the API's SendCtrlAltDel) becomes SIGINT:
		 * a clean shutdown instead of an immediate reboot */
		reboot(RB_DISABLE_CAD);
		/* a connection and a few pipes per process: the kernel's
		 * 1024 for init would run out; containers inherit this, as
		 * they inherit dockerd's */
		setrlimit(RLIMIT_NOFILE,
			  &(struct rlimit){ 1u << 20, 1u << 20 });
		if (sandbox_setup_guest(&err) < 0)
			log_error("%s: %s", err.msg, strerror(err.errnum));
	}
	if (stats_oom_start(&err) < 0)
		log_error("%s: %s", err.msg, strerror(err.errnum));
	start_listener(&rpc);
	start_listener(&streams);
	svc_ready_ns = sandbox_boottime_ns();
	if (write(STDOUT_FILENO, "kiln-agent: ready\n", 18) < 0) {
		/* no console: nobody to tell */
	}
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);

		if (sig == SIGCHLD)
			reap();
		else if ((sig == SIGINT || sig == SIGTERM) && pid1)
			svc_shutdown_async();
		else if (sig == SIGINT || sig == SIGTERM)
			return 0;
	}
}
