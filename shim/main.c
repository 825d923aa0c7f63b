/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd-shim-kiln-v2 [flags] start|delete, or [flags] to serve: see
 * shim.h. Flags as containerd passes them to every v2 shim: -namespace,
 * -address, -publish-binary, -id, -bundle, -debug, -v.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/file.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "shim.h"

#define LISTEN_FD 3
/* annotations that put containers in one shim, as containerd's runc shim */
static const char *const group_keys[] = { "io.containerd.runc.v2.group",
					  "io.kubernetes.cri.sandbox-id" };

/* The grouping annotation in ./config.json, else the id. */
static char *group_of(const char *id)
{
	cleanup_free char *text = NULL;
	size_t len;
	yajl_val root, ann;
	char *g = NULL;

	text = file_read("config.json", 16u << 20, &len, NULL);
	if (!text)
		return strdup(id);
	root = json_parse(text, len, NULL);
	ann = root ? json_get(root, "annotations") : NULL;
	for (size_t k = 0; ann && !g && k < 2; k++) {
		yajl_val v = json_get(ann, group_keys[k]);
		const char *s = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;

		if (s && *s)
			g = strdup(s);
	}
	yajl_tree_free(root);
	return g ? g : strdup(id);
}

static int sock_path(const char *address, struct sockaddr_un *sa,
		     struct kiln_error *err)
{
	const char *p = address + strlen("unix://");

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(p) >= sizeof(sa->sun_path))
		return kiln_error_set(err, ENAMETOOLONG, "socket %s", p);
	strcpy(sa->sun_path, p);
	return 0;
}

static bool can_connect(const struct sockaddr_un *sa)
{
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	return fd >= 0 &&
	       connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
}

static int write_file(const char *name, const char *text,
		      struct kiln_error *err)
{
	char tmp[64];
	cleanup_close int fd = -1;

	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || util_write_all(fd, text, strlen(text)) < 0 ||
	    rename(tmp, name) < 0)
		return kiln_error_set(err, errno, "write %s", name);
	return 0;
}

/*
 * start: the server for this id's group, or the one already serving it;
 * its address on stdout. containerd reads stdout and stderr to their end,
 * so the server keeps neither.
 */
static int do_start(const struct shim_opts *o, char **argv,
		    struct kiln_error *err)
{
	cleanup_free char *group = group_of(o->id);
	char address[SHIM_ADDRESS_MAX], buf[4096];
	struct sockaddr_un sa;
	cleanup_close int fd = -1;
	pid_t pid;

	if (!group)
		return kiln_error_set(err, ENOMEM, "start");
	if (shim_socket_address(o->address, o->ns, group, address, err) < 0 ||
	    sock_path(address, &sa, err) < 0)
		return -1;
	if (mkdir(SHIM_SOCKET_DIR, 0711) < 0 && errno != EEXIST)
		return kiln_error_set(err, errno, "mkdir %s", SHIM_SOCKET_DIR);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return kiln_error_set(err, errno, "socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EADDRINUSE)
			return kiln_error_set(err, errno, "bind %s",
					      sa.sun_path);
		if (can_connect(&sa)) {
			/* a later container of the pod: its shim serves */
			if (write_file("address", address, err) < 0)
				return -1;
			fputs(address, stdout);
			return 0;
		}
		unlink(sa.sun_path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return kiln_error_set(err, errno, "bind %s",
					      sa.sun_path);
	}
	if (listen(fd, 64) < 0 || write_file("address", address, err) < 0) {
		kiln_error_set(err, errno, "listen %s", sa.sun_path);
		unlink(sa.sun_path);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		unlink(sa.sun_path);
		return kiln_error_set(err, errno, "fork");
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		char *args[16], self[PATH_MAX];
		ssize_t self_len;
		size_t n = 0;

		setsid();
		dup2(fd, LISTEN_FD);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		args[n++] = argv[0];
		args[n++] = "-namespace";
		args[n++] = (char *)o->ns;
		args[n++] = "-id";
		args[n++] = (char *)o->id;
		args[n++] = "-address";
		args[n++] = (char *)o->address;
		args[n++] = "-publish-binary";
		args[n++] = (char *)o->publish_binary;
		if (o->debug)
			args[n++] = "-debug";
		args[n] = NULL;
		/* by its own path: its name in ps is the shim's, not "exe" */
		self_len = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (self_len > 0) {
			self[self_len] = '\0';
			execv(self, args);
		}
		execv("/proc/self/exe", args);
		_exit(127);
	}
	/* containerd writes the runtime's options on stdin: not used yet */
	while (read(0, buf, sizeof(buf)) > 0)
		;
	fputs(address, stdout);
	return 0;
}

/*
 * delete: containerd could not reach the server (it died, or never
 * started): whatever is left of the container goes, and a DeleteResponse
 * on stdout says it was killed.
 */
static int do_delete(const struct shim_opts *o, struct kiln_error *err)
{
	Containerd__Task__V2__DeleteResponse r =
		CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
	Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	cleanup_free char *root = shim_root(o->ns);
	const char *args[] = { "delete", "--force", o->id, NULL };
	cleanup_free char *pidtext = NULL;
	cleanup_free uint8_t *out = NULL;
	struct kiln_error kerr = { 0 };
	struct timespec now;
	size_t len;

	if (o->bundle && chdir(o->bundle) < 0)
		return kiln_error_set(err, errno, "chdir %s", o->bundle);
	if (!root)
		return kiln_error_set(err, ENOMEM, "delete");
	kiln_init(root);
	if (kiln_run("log.json", args, -1, -1, -1, &kerr) < 0)
		log_warn("kiln delete --force %s: %s", o->id, kerr.msg);
	if (umount2("rootfs", MNT_DETACH) < 0 && errno != EINVAL &&
	    errno != ENOENT)
		log_warn("umount rootfs: %s", strerror(errno));
	pidtext = file_read("init.pid", 64, &len, NULL);
	if (pidtext)
		r.pid = (uint32_t)strtoul(pidtext, NULL, 10);
	clock_gettime(CLOCK_REALTIME, &now);
	at.seconds = now.tv_sec;
	at.nanos = (int32_t)now.tv_nsec;
	r.exit_status = 128 + SIGKILL;
	r.exited_at = &at;
	len = containerd__task__v2__delete_response__get_packed_size(&r);
	out = malloc(len + 1);
	if (!out)
		return kiln_error_set(err, ENOMEM, "delete");
	containerd__task__v2__delete_response__pack(&r, out);
	if (util_write_all(1, out, len) < 0)
		return kiln_error_set(err, errno, "write the response");
	return 0;
}

/* The log FIFO containerd reads in the bundle, as our stderr. */
static void open_log(void)
{
	int fd = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
}

/* mkdir -p, each new level 0711 */
static int mkdir_p(const char *path)
{
	char p[4096];

	if (strlen(path) >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(p, path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(p, 0711) < 0 && errno != EEXIST)
			return -1;
		if (!c)
			return 0;
		*s = c;
	}
}

static int serve(const struct shim_opts *o, struct kiln_error *err)
{
	cleanup_free char *root = shim_root(o->ns);
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);
	sigset_t set;

	open_log();
	log_set_prog("containerd-shim-kiln-v2");
	log_set_level(o->debug ? LOG_DEBUG : LOG_INFO);
	if (!root)
		return kiln_error_set(err, ENOMEM, "serve");
	if (getsockname(LISTEN_FD, (struct sockaddr *)&sa, &salen) < 0)
		return kiln_error_set(err, errno,
				      "no listening socket on fd 3 (run "
				      "through `start`)");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return kiln_error_set(err, errno, "PR_SET_CHILD_SUBREAPER");
	signal(SIGPIPE, SIG_IGN);
	/* every thread: SIGCHLD only for the reaper's sigwait */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (mkdir_p(root) < 0)
		return kiln_error_set(err, errno, "mkdir %s", root);
	kiln_init(root);
	task_set_opts(o);
	task_set_listener(LISTEN_FD);
	if (reaper_start(err) < 0 || events_start(o, err) < 0)
		return -1;
	log_info("serving %s for %s/%s", sa.sun_path, o->ns, o->id);
	while (!task_shutdown_requested()) {
		int c = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
		struct kiln_error cerr = { 0 };

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (task_shutdown_requested())
				break;
			return kiln_error_set(err, errno, "accept");
		}
		if (ttrpc_serve_detached(&task_server, c, &cerr) < 0) {
			log_error("serve a connection: %s", cerr.msg);
			close(c);
		}
	}
	unlink(sa.sun_path);
	events_flush(10000);
	/* the Shutdown answer on its way out */
	usleep(20000);
	log_info("shut down");
	return 0;
}

int main(int argc, char **argv)
{
	struct shim_opts o;
	struct kiln_error err = { 0 };
	int r;

	if (shim_parse_args(argc, argv, &o, &err) < 0) {
		kiln_error_print(&err, "containerd-shim-kiln-v2");
		return 1;
	}
	if (o.version) {
		printf("containerd-shim-kiln-v2:\n  Version: %s\n",
		       KILN_VERSION);
		return 0;
	}
	if (o.action && strcmp(o.action, "start") == 0)
		r = do_start(&o, argv, &err);
	else if (o.action)
		r = do_delete(&o, &err);
	else
		r = serve(&o, &err);
	if (r < 0) {
		kiln_error_print(&err, "containerd-shim-kiln-v2");
		return 1;
	}
	return 0;
}
