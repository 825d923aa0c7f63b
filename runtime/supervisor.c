/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pid process: the host process whose pid `create` writes to
 * --pid-file. It lives exactly as long as the container's init, owns the
 * container's VM and exits with the init's status (128+N when a signal
 * N killed it), so that docker, containerd's runc shim and conmon wait on
 * it as they wait on runc's init.
 *
 * Threads, and what each owns:
 *  - main: the state file, the VM, the agent connection `agent`, the
 *    control socket and every signal (a signalfd; all are blocked);
 *  - wait (from the container's creation on): its own agent connection,
 *    blocked in WaitProcess; it writes the exit status to exit_pipe once;
 *  - one relay per stdio stream, each with its two fds: bytes between
 *    the caller's stdio (or the pty) and the agent's stream, blocking;
 *  - the DNS relay's, when the container's resolv.conf names a loopback
 *    nameserver (dns.c): its accept thread and one per guest stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../lib/agent_client.h"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/resolv.h"
#include "../lib/util.h"
#include "../oci/container.h"
#include "kiln.h"
#include "seccomp.h"

#define DRAIN_MS     5000 /* output that may still come after the exit */
#define SHUTDOWN_MS  3000 /* the guest powering off before SIGKILL */
#define CALL_TIMEOUT (30ull * 1000000000)
#define VM_DIED_EXIT 137

enum {
	T_MAIN,	    /* the CLI's main() began */
	T_BEGIN,    /* the pid process began */
	T_SETUP,    /* netns, cgroup, hooks, jail uid, TAPs done */
	T_ROOTFS,   /* images of the rootfs and mounts are ready */
	T_VMM,	    /* kiln-vmm spawned */
	T_AGENT,    /* the guest's agent answered */
	T_IDENTITY, /* its clock, RNG, network and CPU quota set */
	T_CREATED,  /* the container exists in the guest */
	T_ATTACHED, /* its stdio streams are attached */
	T_START,    /* start asked */
	T_STARTED,  /* the init runs */
	T_EXIT,	    /* the init's exit is known */
	T_END,	    /* output drained, VM gone */
	T_COUNT
};

struct sup {
	struct sup_args *a;
	struct container_state st;
	struct vm_plan plan;
	struct vm vm;
	struct net_plan net; /* the TAPs we made, what the guest is told */
	struct agent_client *agent;
	const char *guest;	/* the container's id in its guest */
	const char *pod;	/* a pod's container: its sandbox, whose VM */
	struct pod_slots slots; /* a pod's sandbox: its VM's spare slots */
	int ready_fd;
	int ctl_fd, sig_fd;
	int host_netns;	  /* the runtime's, for hooks; -1 */
	int exit_pipe[2]; /* wait thread -> main: the status, 4 bytes */
	struct stdio_set io;
	struct cgroup_limits cg; /* the VM's host limits; a pod's member: 0 */
	bool started;
	/* where the time goes (CLOCK_MONOTONIC ns), for test/bench/start */
	uint64_t t[T_COUNT];
};

static void say_ready(struct sup *s, const struct kiln_error *err)
{
	char line[KILN_ERROR_MSG_MAX + 160];

	if (s->ready_fd < 0)
		return;
	if (err != NULL) {
		kiln_error_str(err, line + 4, sizeof(line) - 5);
		memcpy(line, "err ", 4);
	} else {
		snprintf(line, sizeof(line), "ok");
	}
	strcat(line, "\n");
	util_write_all(s->ready_fd, line, strlen(line));
	close(s->ready_fd);
	s->ready_fd = -1;
}

static int save(struct sup *s, enum container_status status)
{
	struct kiln_error err = { 0 };

	s->st.status = status;
	if (container_state_save(s->a->dirfd, &s->st, &err) < 0) {
		char msg[KILN_ERROR_MSG_MAX + 64];

		log_error("%s", kiln_error_str(&err, msg, sizeof(msg)));
		return -1;
	}
	return 0;
}

/* ---- the init's exit ---------------------------------------------------- */

static void *wait_main(void *arg)
{
	struct sup *s = arg;
	struct kiln_error err = { 0 };
	struct agent_client *c;
	struct agent_exit ex = { 0 };
	int32_t status = VM_DIED_EXIT;
	int fd;

	/* the agent answered the main connection's Check already: no
	 * second one, a round trip the guest's vCPU would also spend */
	fd = agent_vsock_connect(VM_VSOCK, AGENT_RPC_PORT,
				 agent_deadline_ms(30000), &err);
	c = fd >= 0 ? agent_client_new(fd, VM_VSOCK, CALL_TIMEOUT, &err) : NULL;
	if (c != NULL && agent_wait(c, s->guest, "", &ex, &err) == 0)
		status = ex.status;
	else
		log_error("wait for the container's init: %s", err.msg);
	agent_client_free(c);
	util_write_all(s->exit_pipe[1], &status, sizeof(status));
	return NULL;
}

/*
 * The wait thread, once the container exists in the guest: its agent
 * connection and its WaitProcess are made while the caller is still to
 * come with start, instead of after it (the agent answers a wait on an
 * init that has not started yet when it ends, as on any other).
 */
static int wait_thread_start(struct sup *s, struct kiln_error *err)
{
	pthread_t t;
	int e = pthread_create(&t, NULL, wait_main, s);

	if (e != 0)
		return kiln_error_set(err, e, "wait thread");
	pthread_detach(t);
	return 0;
}

/*
 * With $KILN_TIMING set, one JSON line per container appended to that
 * file: milliseconds per phase (test/bench/start reads them).
 */
static void timings(struct sup *s)
{
	static const char *const names[T_COUNT] = {
		"main",	 "begin",    "setup",	 "rootfs", "vmm_spawn",
		"boot",	 "identity", "create",	 "attach", "created_to_start",
		"start", "run",	     "teardown",
	};
	const char *path = getenv("KILN_TIMING");
	char line[512];
	size_t n = 0;
	int fd;

	if (path == NULL || path[0] == '\0')
		return;
	n += (size_t)snprintf(line, sizeof(line), "{\"id\": \"%s\"", s->st.id);
	for (int i = 1; i < T_COUNT && n < sizeof(line); i++)
		n += (size_t)snprintf(
			line + n, sizeof(line) - n, ", \"%s_ms\": %.1f",
			names[i],
			s->t[i] && s->t[i - 1]
				? (double)(s->t[i] - s->t[i - 1]) / 1e6
				: -1.0);
	if (n + 3 >= sizeof(line))
		return;
	strcpy(line + n, "}\n");
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		util_write_all(fd, line, strlen(line));
		close(fd);
	}
}

static bool writable_drive(const struct vm_plan *p)
{
	for (size_t i = 0; i < p->n_drives; i++)
		if (!p->drive_ro[i])
			return true;
	return false;
}

/* The end: output drained, state written, VM gone; exits the process. */
static __attribute__((noreturn)) void finish(struct sup *s, int status,
					     bool vm_alive)
{
	struct kiln_error err = { 0 };

	s->t[T_EXIT] = util_now_ns();
	if (s->started)
		stdio_drain(&s->io, vm_alive ? DRAIN_MS : 0);
	s->st.has_exit_status = true;
	s->st.exit_status = status;
	save(s, CONTAINER_STOPPED);
	if (s->pod != NULL) {
		/* out of the pod's guest, then its slots free */
		if (vm_alive && s->agent != NULL &&
		    agent_remove(s->agent, s->guest, &err) < 0)
			log_warn("remove from the pod's guest: %s", err.msg);
		pod_leave(s->a->dirfd, s->pod, s->st.id);
		podfs_unbind(s->plan.podfs, s->st.id);
	} else {
		/*
		 * The guest's Remove returns once what the container wrote
		 * is on its drives (the agent syncs them), so a VM with
		 * nothing else of the container in it can be killed at once
		 * instead of waiting for the guest kernel to reboot; with
		 * no drive it may write, at once without the Remove. A
		 * pod's sandbox still holds its members; a virtio-fs share
		 * may hold dirty pages of the guest's: those power off.
		 */
		bool quick = vm_alive && s->agent != NULL && !s->plan.pod &&
			     s->plan.n_fs == 0 &&
			     (!writable_drive(&s->plan) ||
			      agent_remove(s->agent, s->guest, &err) == 0);

		if (vm_alive && !quick && s->agent != NULL &&
		    agent_shutdown(s->agent, &err) < 0)
			log_warn("shut the guest down: %s", err.msg);
		vm_stop(&s->vm, vm_alive && !quick ? SHUTDOWN_MS : 0);
		net_teardown(&s->net);
		if (s->plan.podfs_dev)
			podfs_remove(".");
	}
	s->t[T_END] = util_now_ns();
	timings(s);
	unlinkat(s->a->dirfd, CTL_SOCK, 0);
	exit(status & 0xff);
}

static int run_hooks(struct sup *s, enum oci_hook_kind kind,
		     struct kiln_error *err)
{
	char *state;
	int res;

	if (s->a->spec->n_hooks[kind] == 0)
		return 0;
	state = oci_state_json(&s->st, err);
	if (state == NULL)
		return -1;
	res = hooks_run(s->a->spec, kind, state, s->host_netns, err);
	free(state);
	return res;
}

/* ---- requests from other kiln commands ---------------------------------- */

static int do_start(struct sup *s, struct kiln_error *err)
{
	uint32_t pid = 0;

	if (s->started)
		return kiln_error_set(err, 0, "container already started");
	s->t[T_START] = util_now_ns();
	if (run_hooks(s, OCI_HOOK_START_CONTAINER, err) < 0 ||
	    agent_start(s->agent, s->guest, &pid, err) < 0)
		return -1;
	s->t[T_STARTED] = util_now_ns();
	s->started = true;
	stdio_resize(&s->io, s->agent, s->guest, "");
	if (save(s, CONTAINER_RUNNING) < 0)
		return kiln_error_set(err, errno, "write state");
	return run_hooks(s, OCI_HOOK_POSTSTART, err);
}

/* Before start the init has not run: a signal that would end it ends
 * the container, as with runc's init waiting on its exec FIFO. */
static bool ends_created(int sig)
{
	return sig == SIGKILL || sig == SIGTERM || sig == SIGINT ||
	       sig == SIGHUP || sig == SIGQUIT;
}

/*
 * pause: kiln-vmm stopped whole, every thread of it; resume: again.
 * Jailed, it is pid 1 of its pid namespace: SIGSTOP from here stops it
 * all the same (a namespace's init cannot ignore SIGSTOP or SIGKILL sent
 * from an ancestor namespace), and SIGCONT resumes it even unhandled.
 */
static int do_pause(struct sup *s, bool pause, struct kiln_error *err)
{
	bool paused = s->st.status == CONTAINER_PAUSED;
	pid_t target = s->vm.pid;

	if (!s->started || s->st.status == CONTAINER_STOPPED)
		return kiln_error_set(err, 0, "the container is not running");
	if (s->pod != NULL)
		return kiln_error_set(err, 0,
				      "a pod's container runs in its "
				      "sandbox's VM: pause the sandbox `%s`",
				      s->pod);
	if (paused == pause)
		return kiln_error_set(err, 0, "the container is %s paused",
				      pause ? "already" : "not");
	/* jailed, vm.pid is its waiter: the VMM is the waiter's child */
	if (s->plan.jail.uid != 0) {
		target = vm_jail_vmm_pid(s->vm.pid);
		if (target < 0)
			return kiln_error_set(err, ESRCH,
					      "the jailed kiln-vmm of waiter "
					      "%d",
					      (int)s->vm.pid);
	}
	if (kill(target, pause ? SIGSTOP : SIGCONT) < 0)
		return kiln_error_set(err, errno, "%s kiln-vmm",
				      pause ? "stop" : "continue");
	if (save(s, pause ? CONTAINER_PAUSED : CONTAINER_RUNNING) < 0)
		return kiln_error_set(err, errno, "write state");
	return 0;
}

/*
 * A signal that would end the init came while we created (kiln run's own
 * caller gave up while the VM booted, say): run does not start it. The
 * signal, still pending, ends the container as created (do_kill), as a
 * kill before start would.
 */
static bool end_pending(void)
{
	sigset_t p;

	if (sigpending(&p) < 0)
		return false;
	for (int sig = 1; sig < NSIG; sig++)
		if (ends_created(sig) && sigismember(&p, sig) == 1)
			return true;
	return false;
}

static int do_kill(struct sup *s, int sig, bool all, struct kiln_error *err)
{
	if (!s->started) {
		if (ends_created(sig))
			finish(s, 128 + sig, true);
		return 0;
	}
	/* a stopped VM hears nothing: SIGKILL resumes it, others wait */
	if (s->st.status == CONTAINER_PAUSED) {
		if (sig != SIGKILL)
			return kiln_error_set(err, 0,
					      "the container is paused: "
					      "resume it first");
		if (do_pause(s, false, err) < 0)
			return -1;
	}
	return agent_signal(s->agent, s->guest, "", (uint32_t)sig, all, err);
}

static void ctl_serve(struct sup *s)
{
	cleanup_close int c = accept4(s->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
	struct kiln_error err = { 0 };
	char line[CTL_LINE_MAX], reply[KILN_ERROR_MSG_MAX + 160];
	ssize_t n = 0;
	size_t got;
	int res = -1, sig = 0, all = 0, pod = 0;

	if (c < 0)
		return;
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = 5 },
		   sizeof(struct timeval));
	/* the whole line, or the close would reset what is unread */
	for (got = 0; got < sizeof(line) - 1 && !memchr(line, '\n', got);
	     got += (size_t)n) {
		n = recv(c, line + got, sizeof(line) - 1 - got, 0);
		if (n <= 0)
			return;
	}
	line[got] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, "start") == 0)
		res = do_start(s, &err);
	else if (strcmp(line, "pause") == 0 || strcmp(line, "resume") == 0)
		res = do_pause(s, line[0] == 'p', &err);
	else if (sscanf(line, "kill %d %d", &sig, &all) == 2 && sig > 0 &&
		 sig < 65)
		res = do_kill(s, sig, all != 0, &err);
	else if (s->plan.pod && (pod = pod_ctl(&s->slots, line, reply,
					       sizeof(reply), &err)) != 0)
		res = pod < 0 ? -1 : 1; /* its reply written */
	else
		kiln_error_set(&err, 0, "unknown request `%.64s`", line);
	if (res < 0)
		snprintf(reply, sizeof(reply), "err %s\n", err.msg);
	else if (res == 0)
		snprintf(reply, sizeof(reply), "ok\n");
	util_write_all(c, reply, strlen(reply));
}

static int ctl_listen(struct sup *s, struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	s->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->ctl_fd < 0)
		return kiln_error_set(err, errno, "socket");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", CTL_SOCK);
	unlink(CTL_SOCK);
	if (bind(s->ctl_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s->ctl_fd, 16) < 0)
		return kiln_error_set(err, errno, "listen on " CTL_SOCK);
	return 0;
}

static void on_signal(struct sup *s)
{
	struct signalfd_siginfo si;
	struct kiln_error err = { 0 };
	int status;

	while (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGCHLD) {
			pid_t p;

			while ((p = waitpid(-1, &status, WNOHANG)) > 0)
				if (vm_fs_reaped(&s->vm, p)) {
					/* The guest's requests to it would
					 * never complete: its FUSE waits
					 * uninterruptibly for the answer, so
					 * the container's processes would
					 * hang, unkillable (seen in
					 * t_kiln_vol.sh). Fail-stop instead:
					 * the container ends as when its VM
					 * dies. When the VM ended first (it
					 * closed the daemon's connection)
					 * this is that same end. */
					log_error("the virtiofsd of a volume "
						  "(pid %d) ended with status "
						  "%#x: the container loses "
						  "the volume, so it ends",
						  (int)p, status);
					finish(s, VM_DIED_EXIT, false);
				} else if (p == s->vm.pid) {
					char last[256];

					s->vm.pid = 0;
					vm_last_log_line(last, sizeof(last));
					log_error("the VM ended: %s", last);
					finish(s, VM_DIED_EXIT, false);
				}
		} else if (sig == SIGWINCH) {
			if (s->started)
				stdio_resize(&s->io, s->agent, s->guest, "");
		} else if (do_kill(s, sig, false, &err) < 0) {
			log_warn("forward signal %d: %s", sig, err.msg);
		}
	}
}

static __attribute__((noreturn)) void loop(struct sup *s)
{
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = s->ctl_fd, .events = POLLIN },
			{ .fd = s->sig_fd, .events = POLLIN },
			{ .fd = s->exit_pipe[0], .events = POLLIN },
		};

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %m");
			finish(s, VM_DIED_EXIT, true);
		}
		if (p[2].revents) {
			int32_t status = VM_DIED_EXIT;

			if (read(s->exit_pipe[0], &status, sizeof(status)) !=
			    sizeof(status))
				status = VM_DIED_EXIT;
			finish(s, status, true);
		}
		if (p[1].revents)
			on_signal(s);
		if (p[0].revents)
			ctl_serve(s);
	}
}

/* ---- setting the container up -------------------------------------------- */

/* The network namespace config.json names, or a new one: the pid
 * process sits there, so hooks and CNI configure the container's. */
/*
 * The container's network namespace, never the host's: every interface
 * in it is handed to the guest (net.c), and a VM cannot share the host's
 * network stack (docker and podman --network host, hostNetwork pods).
 */
#define HOST_NET_REFUSED                                          \
	"the container would share the host's network namespace " \
	"(--network host): a VM cannot share the host's network stack"

static int enter_netns(const struct oci_spec *spec, int host_netns,
		       struct kiln_error *err)
{
	const struct oci_linux *l = spec->linux_;
	struct stat host, ours;

	for (size_t i = 0; l != NULL && i < l->n_namespaces; i++) {
		const struct oci_namespace *ns = &l->namespaces[i];
		cleanup_close int fd = -1;

		if (ns->type != OCI_NS_NETWORK)
			continue;
		if (ns->path == NULL)
			return unshare(CLONE_NEWNET) < 0
				       ? kiln_error_set(err, errno,
							"new network namespace")
				       : 0;
		fd = open(ns->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
			return kiln_error_set(err, errno,
					      "linux.namespaces[%zu]: join "
					      "network namespace `%s`",
					      i, ns->path);
		if (host_netns >= 0 && fstat(host_netns, &host) == 0 &&
		    fstat(fd, &ours) == 0 && host.st_dev == ours.st_dev &&
		    host.st_ino == ours.st_ino)
			return kiln_error_set(err, 0,
					      "linux.namespaces[%zu] `%s`: "
					      "%s",
					      i, ns->path, HOST_NET_REFUSED);
		return 0;
	}
	return kiln_error_set(err, 0, "linux.namespaces: no network: %s",
			      HOST_NET_REFUSED);
}

/*
 * The agent answers, or the VM ended, or the boot took too long. A fork's
 * agent was serving when its template was made, and its CONNECT is
 * answered once the agent has accepted (kiln-vmm's vsock holds it until
 * the guest has handled its reset): the fork's first call (SetIdentity)
 * is its check, one round trip fewer. A cold boot's agent is asked Check
 * until it is set up.
 */
static struct agent_client *agent_try(bool forked, struct kiln_error *err)
{
	int fd;

	if (!forked)
		return agent_client_connect(VM_VSOCK, agent_deadline_ms(500),
					    CALL_TIMEOUT, err);
	fd = agent_vsock_connect(VM_VSOCK, AGENT_RPC_PORT,
				 agent_deadline_ms(500), err);
	return fd < 0 ? NULL
		      : agent_client_new(fd, VM_VSOCK, CALL_TIMEOUT, err);
}

static int agent_up(struct sup *s, struct kiln_error *err)
{
	uint64_t deadline =
		agent_deadline_ms((uint64_t)s->a->conf->boot_timeout_s * 1000);

	for (;;) {
		int status;

		s->agent = agent_try(s->plan.template_dir != NULL, err);
		if (s->agent != NULL)
			return 0;
		if (waitpid(s->vm.pid, &status, WNOHANG) == s->vm.pid) {
			char last[256];

			s->vm.pid = 0;
			vm_last_log_line(last, sizeof(last));
			return kiln_error_set(err, 0,
					      "kiln-vmm ended while booting: "
					      "%s",
					      last[0] ? last : "(no message)");
		}
		if (util_now_ns() >= deadline)
			return kiln_error_set(err, ETIMEDOUT,
					      "the guest's agent did not "
					      "answer within %u s",
					      s->a->conf->boot_timeout_s);
	}
}

/* Start the VM (forked when s->plan names a template), up to its agent. */
static int vm_up(struct sup *s, struct kiln_error *err)
{
	unlink(VM_DIR "/" VM_VSOCK);
	if (vm_start(&s->plan, &s->vm, err) < 0)
		return -1;
	s->t[T_VMM] = util_now_ns();
	s->st.vmm_pid = s->vm.pid;
	s->st.vmm_start = s->vm.start;
	save(s, CONTAINER_CREATING);
	/* with an API socket, a boot waits for the word to start */
	if (s->plan.pod && s->plan.template_dir == NULL &&
	    vm_api_call(VM_API, "PUT", "/actions",
			"{\"action_type\": \"InstanceStart\"}", err) < 0) {
		vm_stop(&s->vm, 0);
		return -1;
	}
	if (agent_up(s, err) == 0) {
		pod_slots_init(&s->slots, &s->plan);
		return 0;
	}
	vm_stop(&s->vm, 0);
	return -1;
}

/*
 * The guest's clock to now and fresh bytes for its RNG (a fork's would
 * repeat its template's), in one call.
 */
static int identity(struct agent_client *c, struct kiln_error *err)
{
	struct timespec now;
	uint8_t seed[64];

	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		return kiln_error_set(err, errno, "getrandom");
	clock_gettime(CLOCK_REALTIME, &now);
	return agent_set_identity(c, now.tv_sec, now.tv_nsec, seed,
				  sizeof(seed), err);
}

/* A pod's container: its drives into the sandbox's VM, its agent ours. */
static int pod_up(struct sup *s, struct kiln_error *err)
{
	if (pod_join(&s->plan, s->pod, s->st.id, s->a->dirfd, err) < 0)
		return -1;
	s->agent = agent_client_connect(VM_VSOCK, agent_deadline_ms(10000),
					CALL_TIMEOUT, err);
	if (s->agent != NULL)
		return 0;
	pod_leave(s->a->dirfd, s->pod, s->st.id);
	return kiln_error_wrap(err, "the agent of pod sandbox `%s`", s->pod);
}

/*
 * The container's host cgroup (rel), its limits (cg), and those written
 * when it is made (now): the CPU quota waits for the guest (cpu_quota).
 */
static int host_cgroup_plan(const struct sup_args *a, char *rel, size_t len,
			    struct cgroup_limits *cg, struct cgroup_limits *now,
			    struct kiln_error *err)
{
	memset(cg, 0, sizeof(*cg));
	if (cgroup_rel(a->spec, a->cli->systemd_cgroup, a->id, rel, len, err) <
		    0 ||
	    (pod_sandbox_id(a->spec) == NULL &&
	     cgroup_limits_vm(a->spec, a->conf, cg, err) < 0))
		return -1;
	*now = *cg;
	now->cpu_quota = 0;
	now->cpu_period = 0;
	return 0;
}

/* The VM's host cgroup, limited (but for the CPU quota: cpu_quota()),
 * and we in it, so that kiln-vmm starts there (on cgroup v2 the CLI made
 * it and we were born in it: supervisor_spawn). A pod's container: the
 * sandbox's cgroup holds the VM, this one only the pid process. */
static int host_cgroup(struct sup *s, struct kiln_error *err)
{
	struct cgroup_limits now;
	char rel[1024];

	if (host_cgroup_plan(s->a, rel, sizeof(rel), &s->cg, &now, err) < 0)
		return -1;
	/* born in it: supervisor_spawn made it */
	if (s->a->in_cgroup)
		return 0;
	return cgroup_enter(s->a->dirfd, rel, &now, err);
}

/* The CPU quota, once the guest is up and before the container's process
 * exists: a cold boot is the runtime's own work (cgroup.c). */
static int cpu_quota(struct sup *s, struct kiln_error *err)
{
	struct cgroup_limits q = { .cpu_quota = s->cg.cpu_quota,
				   .cpu_period = s->cg.cpu_period };
	struct cgroup_write w[CGROUP_WRITES_MAX];
	size_t n;

	if (q.cpu_quota == 0 && q.cpu_period == 0)
		return 0;
	return cgroup_limit(s->a->dirfd, &q, w, &n, err);
}

/* Its own VM: a fork of a warm template, else a cold boot. */
static int own_vm_up(struct sup *s, bool *forked, struct kiln_error *err)
{
	*forked = template_pick(&s->plan, s->a->cli->root) == 0;
	if (vm_up(s, err) < 0) {
		if (!*forked)
			return -1;
		/* the template did not serve: boot cold, and build a new one
		 * unless it serves but has its most forks alive */
		log_warn("fork of %s: %s; booting cold", s->plan.template_dir,
			 err->msg);
		if (strstr(err->msg, "(max_forks)") == NULL) {
			template_forget(&s->plan);
		} else {
			free(s->plan.template_dir);
			s->plan.template_dir = NULL;
		}
		memset(err, 0, sizeof(*err));
		*forked = false;
		if (vm_up(s, err) < 0)
			return -1;
	}
	s->t[T_AGENT] = util_now_ns();
	/*
	 * A fork's guest has its template's clock and random state: both
	 * are renewed before anything of the container runs.
	 */
	if (identity(s->agent, err) < 0 ||
	    net_configure_guest(&s->net, s->agent, *forked, err) < 0)
		return -1;
	return 0;
}

/* Pod volumes (podfs.c): a sandbox that gets them makes the pod's
 * folder, its VM's fs 0; a member finds its sandbox's. */
static int pod_volumes(struct sup *s, struct kiln_error *err)
{
	bool want = false;

	s->plan.podfs_id = s->st.id;
	if (s->pod != NULL)
		return podfs_find(&s->plan, s->a->dirfd, s->pod, err);
	if (podfs_wanted(s->a->conf, s->a->spec, &want, err) < 0)
		return -1;
	return want ? podfs_prepare(&s->plan, err) : 0;
}

static int create_container(struct sup *s, struct kiln_error *err)
{
	const struct oci_spec *spec = s->a->spec;
	Kiln__Agent__V1__CreateContainerRequest req =
		KILN__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	Kiln__Agent__V1__Process proc;
	Kiln__Agent__V1__Rootfs rootfs;
	struct agent_request r = { 0 };
	bool forked = false;
	int res = -1;

	s->plan.conf = s->a->conf;
	s->plan.member = s->pod != NULL;
	s->plan.pod = s->pod == NULL && pod_is_sandbox(spec);
	s->t[T_SETUP] = util_now_ns();
	if (confine_plan(spec->process, &s->plan.confine, err) < 0 ||
	    request_process(&r, spec->process, &proc, err) < 0 ||
	    request_seccomp(&r, spec->linux_ ? spec->linux_->seccomp : NULL,
			    &proc, err) < 0 ||
	    rootfs_plan(&r, spec, s->a->rootfs, &s->plan, s->a->conf->cache_dir,
			&rootfs, err) < 0 ||
	    pod_volumes(s, err) < 0 ||
	    request_mounts(&r, spec, &s->plan, s->a->conf->cache_dir, &req,
			   err) < 0 ||
	    request_resources(&r, spec, &req, err) < 0)
		goto out;
	stdio_request(&s->io, spec->process->terminal, &proc);
	s->t[T_ROOTFS] = util_now_ns();
	if (s->pod != NULL
		    ? pod_up(s, err) < 0
		    : own_vm_up(s, &forked, err) < 0 || cpu_quota(s, err) < 0)
		goto out;
	s->t[T_IDENTITY] = util_now_ns();
	req.container_id = (char *)s->guest;
	/* a pod's containers share its IPC and UTS, as Kubernetes' do */
	if (s->pod != NULL)
		req.share_ns_of = KILN_GUEST_ID;
	req.process = &proc;
	req.rootfs = &rootfs;
	req.hostname = spec->hostname != NULL ? spec->hostname : "";
	req.readonly_rootfs = spec->root_readonly;
	if (spec->linux_ != NULL) {
		req.masked_paths = spec->linux_->masked_paths;
		req.n_masked_paths = spec->linux_->n_masked_paths;
		req.readonly_paths = spec->linux_->readonly_paths;
		req.n_readonly_paths = spec->linux_->n_readonly_paths;
	}
	stdio_preconnect(&s->io, s->agent);
	res = agent_create_container(s->agent, &req, err);
	s->t[T_CREATED] = util_now_ns();
	if (res < 0 && s->pod != NULL)
		pod_leave(s->a->dirfd, s->pod, s->st.id);
	/* the template's first fork lists what its later ones copy ahead */
	if (res == 0 && forked && !s->plan.prefault)
		template_prefault_record(&s->plan, s->vm.pid);
	/* the next container of this shape forks */
	if (res == 0 && !forked && s->pod == NULL && !s->plan.podfs_dev)
		template_spawn(&s->plan, s->a->cli->root, s->host_netns);
out:
	agent_request_free(&r);
	return res;
}

/* The dns relay's listener (dns.c), beside kiln-vmm's vsock socket. */
#define DNS_SUFFIX   "_" KILN_STR(RESOLV_RELAY_PORT)
#define KILN_STR(x)  KILN_STR_(x)
#define KILN_STR_(x) #x

/*
 * A VM of its own runs jailed (docs/jail.md) unless the config or
 * --no-jail says not; a pod's sandbox too: its members' drives come in
 * over the API as open fds (pod_drive_swap). Either way its sockets go
 * in VM_DIR, made here.
 */
static int jail_up(struct sup *s, struct kiln_error *err)
{
	bool jail = s->a->conf->jail && !s->a->cli->no_jail;

	if (jail && vm_jail_reserve(&s->plan.jail, err) < 0)
		return -1;
	return vm_jail_dir(&s->plan.jail, s->a->dirfd, err);
}

static int setup(struct sup *s, struct kiln_error *err)
{
	sigset_t all;
	const struct oci_process *p = s->a->spec->process;

	signal(SIGPIPE, SIG_IGN);
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGPIPE);
	sigprocmask(SIG_BLOCK, &all, NULL);
	s->sig_fd = signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sig_fd < 0 || pipe2(s->exit_pipe, O_CLOEXEC) < 0)
		return kiln_error_set(err, errno, "signalfd");
	if (stdio_init(&s->io, err) < 0)
		return -1;
	s->host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (enter_netns(s->a->spec, s->host_netns, err) < 0 ||
	    ctl_listen(s, err) < 0)
		return -1;
	if (host_cgroup(s, err) < 0)
		return -1;
	save(s, CONTAINER_CREATING);
	if (run_hooks(s, OCI_HOOK_PRESTART, err) < 0 ||
	    run_hooks(s, OCI_HOOK_CREATE_RUNTIME, err) < 0 ||
	    run_hooks(s, OCI_HOOK_CREATE_CONTAINER, err) < 0)
		return -1;
	/* after the hooks: CNI in a hook made the interfaces; a pod's
	 * sandbox took them for the pod's VM */
	if (s->pod == NULL) {
		uint32_t vcpus = s->a->conf->vcpus;

		if (jail_up(s, err) < 0 ||
		    net_setup(&s->net, s->a->id, &s->plan, vcpus, err) < 0 ||
		    dns_host_relay(s->a->spec, VM_DIR "/" VM_VSOCK, 53, err) <
			    0 ||
		    (access(VM_DIR "/" VM_VSOCK DNS_SUFFIX, F_OK) == 0 &&
		     vm_jail_own(&s->plan.jail, VM_DIR "/" VM_VSOCK DNS_SUFFIX,
				 err) < 0))
			return -1;
	}
	if (p->terminal && s->a->console_fd >= 0) {
		if (stdio_pty_open(&s->io, s->a->console_fd, err) < 0)
			return -1;
		s->a->console_fd = -1;
	}
	if (create_container(s, err) < 0 || wait_thread_start(s, err) < 0)
		return -1;
	if (stdio_attach(&s->io, s->agent, s->guest, "", err) < 0)
		return -1;
	s->t[T_ATTACHED] = util_now_ns();
	return save(s, CONTAINER_CREATED) < 0
		       ? kiln_error_set(err, errno, "write state")
		       : 0;
}

static __attribute__((noreturn)) void supervise(struct sup_args *a,
						int ready_fd)
{
	struct sup s = { .a = a,
			 .ready_fd = ready_fd,
			 .ctl_fd = -1,
			 .sig_fd = -1,
			 .host_netns = -1 };
	struct kiln_error err = { 0 };

	/* stderr is the container's now: our own log goes beside the VM's */
	if (fchdir(a->dirfd) < 0 || log_open(VM_LOG_SUP) < 0)
		log_set_level(LOG_ERROR);
	s.t[T_MAIN] = a->cli->main_ns;
	s.t[T_BEGIN] = util_now_ns();
	s.st.id = (char *)a->id;
	s.st.bundle = (char *)a->bundle;
	s.st.rootfs = (char *)a->rootfs;
	s.st.owner = "";
	s.st.pid = getpid();
	s.st.pid_start = proc_start_time(s.st.pid);
	s.st.annotation_keys = a->spec->annotation_keys;
	s.st.annotation_values = a->spec->annotation_values;
	s.st.n_annotations = a->spec->n_annotations;
	s.pod = pod_sandbox_id(a->spec);
	s.st.sandbox = (char *)s.pod;
	s.guest = container_guest_id(&s.st);
	{
		const char *what = "create";
		char created[40];
		int res;

		rfc3339_now(created);
		s.st.created = created;
		res = setup(&s, &err);
		/* run: the start is ours too, without a round trip to the
		 * caller and back (a failed one ends the container, as a
		 * failed create does) */
		if (res == 0 && a->start && !end_pending()) {
			what = "start";
			res = do_start(&s, &err);
		}
		if (res < 0) {
			log_error("%s: %s", what, err.msg);
			say_ready(&s, &err);
			vm_stop(&s.vm, 0);
			net_teardown(&s.net);
			if (s.plan.podfs_dev)
				podfs_remove(".");
			else
				podfs_unbind(s.plan.podfs, s.st.id);
			unlinkat(a->dirfd, CTL_SOCK, 0);
			_exit(1);
		}
		s.st.created = strdup(created);
	}
	say_ready(&s, NULL);
	loop(&s);
}

pid_t supervisor_spawn(struct sup_args *a, struct kiln_error *err)
{
	int fds[2], cgfd = -1;
	char line[KILN_ERROR_MSG_MAX + 160];
	struct cgroup_limits cg, now;
	char rel[1024];
	size_t got = 0;
	bool born;
	pid_t pid;

	/* on cgroup v2, the host cgroup first: the pid process is born in it */
	if (host_cgroup_plan(a, rel, sizeof(rel), &cg, &now, err) < 0)
		return -1;
	cgfd = cgroup_make(a->dirfd, rel, &now, err);
	if (cgfd == -2)
		return -1;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		if (cgfd >= 0)
			close(cgfd);
		return kiln_error_set(err, errno, "pipe");
	}
	/* born in its cgroup, if it can be; we are one thread here */
	pid = util_clone_into(SIGCHLD, cgfd, &born);
	if (cgfd >= 0)
		close(cgfd);
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return kiln_error_set(err, errno, "fork the pid process");
	}
	if (pid == 0) {
		close(fds[0]);
		a->in_cgroup = born;
		supervise(a, fds[1]);
	}
	close(fds[1]);
	if (a->spawned != NULL)
		a->spawned(pid);
	for (;;) {
		ssize_t n = read(fds[0], line + got, sizeof(line) - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(line) - 1)
			break;
	}
	close(fds[0]);
	line[got] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, "ok") == 0)
		return pid;
	if (strncmp(line, "err ", 4) == 0)
		kiln_error_set(err, 0, "%s", line + 4);
	else
		kiln_error_set(err, 0,
			       "the pid process ended before the "
			       "container was created");
	/* it exits after saying so; reap it unless a subreaper will */
	waitpid(pid, NULL, 0);
	return -1;
}
