/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A file descriptor handed over the API socket (SCM_RIGHTS, ours: PATCH
 * /drives/{id}, docs/api.md): the HTTP server gives it to the request it
 * came with and closes it once answered; the router takes it on PATCH
 * /drives only, one at most; virtio-blk takes it only in the drive's
 * mode, a regular file or a block device.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../vmm/api/api.h"
#include "../../vmm/api/http.h"
#include "../../vmm/virtio/blk.h"
#include "../lib/api_fake.h"
#include "../lib/vblk.h"
#include "tap.h"

static char dir[] = "/tmp/kiln-api-fd-test.XXXXXX";

static char *mkfile(const char *name, size_t n)
{
	char *p;
	int fd;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		exit(1);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)n) < 0)
		exit(1);
	close(fd);
	return p;
}

static ino_t ino_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* ---- the HTTP server: fds go with their request ------------------------ */

struct seen {
	int calls;
	size_t nfds;
	int fd;		 /* the first fd's number, as the handler saw it */
	ino_t ino;	 /* and its file */
	bool open_there; /* open while the handler ran */
};

static void seen_fn(void *opaque, const struct api_request *req,
		    struct api_response *resp)
{
	struct seen *s = opaque;
	struct stat st;

	s->calls++;
	s->nfds = req->nfds;
	s->fd = req->nfds > 0 ? req->fds[0] : -1;
	s->ino = s->fd >= 0 && fstat(s->fd, &st) == 0 ? st.st_ino : 0;
	s->open_there = s->fd >= 0 && fcntl(s->fd, F_GETFD) >= 0;
	resp->status = 204;
}

/* One request on a new connection with n copies of fd (SCM_RIGHTS); the
 * answer's status, 0 when there is none. */
static int send_req(const char *sock, int fd, int n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char msg[] = "PATCH /drives/d1 HTTP/1.1\r\nHost: x\r\n"
		     "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} ctl = { 0 };
	struct iovec iov = { .iov_base = msg, .iov_len = strlen(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	char resp[512] = "";
	size_t got = 0;
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), status = 0;
	ssize_t r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	if (n > 0) {
		struct cmsghdr *cm;

		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
		for (int i = 0; i < n; i++)
			memcpy(CMSG_DATA(cm) + i * sizeof(int), &fd,
			       sizeof(fd));
	}
	if (sendmsg(c, &mh, MSG_NOSIGNAL) != (ssize_t)strlen(msg)) {
		close(c);
		return -1;
	}
	while (got < sizeof(resp) - 1 &&
	       (r = read(c, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)r;
	close(c);
	if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
		return 0;
	return status;
}

static void test_server(void)
{
	struct http_server *srv = NULL;
	struct kiln_error err = { 0 };
	struct seen s = { 0 };
	char sock[128];
	char *img = mkfile("srv.img", 4096);
	int fd = open(img, O_RDONLY | O_CLOEXEC);

	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	is_int(http_server_start(&srv, sock, seen_fn, &s, &err), 0,
	       "server starts: %s", err.msg);

	is_int(send_req(sock, fd, 1), 204, "a request with one fd: answered");
	ok(s.calls == 1 && s.nfds == 1, "  the handler got one fd (%zu)",
	   s.nfds);
	ok(s.open_there && s.ino == ino_of(img), "  open while it ran, and the "
						 "file sent");
	ok(s.fd != fd, "  a fd of its own (%d), not the sender's number", s.fd);
	errno = 0;
	ok(fcntl(s.fd, F_GETFD) < 0 && errno == EBADF, "  closed once "
						       "answered");

	is_int(send_req(sock, -1, 0), 204, "a request without fd: answered");
	ok(s.calls == 2 && s.nfds == 0, "  the handler got none");

	is_int(send_req(sock, fd, HTTP_MAX_FDS + 1), 400,
	       "%d fds with a request: 400", HTTP_MAX_FDS + 1);
	is_int(s.calls, 2, "  the handler was not called");

	is_int(send_req(sock, fd, 2), 204, "two fds: the server passes both");
	is_int(s.nfds, 2, "  (the router refuses them: below)");

	http_server_stop(srv);
	close(fd);
	free(img);
}

/* ---- the router: PATCH /drives only, one fd ------------------------------ */

struct t {
	struct vm_config cfg;
	struct api_ctx ctx;
	struct api_fake fake;
	struct api_response resp;
};

static int call(struct t *t, const char *method, const char *path,
		const char *body, const int *fds, size_t nfds)
{
	struct api_request req = { .fds = fds, .nfds = nfds };

	snprintf(req.method, sizeof(req.method), "%s", method);
	snprintf(req.path, sizeof(req.path), "%s", path);
	req.body = (char *)body;
	req.body_len = strlen(body);
	free(t->resp.body);
	t->resp.body = NULL;
	api_dispatch(&t->ctx, &req, &t->resp);
	return t->resp.status;
}

static void test_router(void)
{
	struct t t = { 0 };
	char *img = mkfile("route.img", 4096), want[256];
	int fd = open(img, O_RDWR | O_CLOEXEC), two[2] = { fd, fd };
	const char *patch = "{\"drive_id\": \"d1\", \"path_on_host\": "
			    "\"/named.img\", \"is_read_only\": false}";

	vm_config_init(&t.cfg);
	api_fake_init(&t.fake, &t.ctx, &t.cfg);
	is_int(call(&t, "PUT", "/drives/d1",
		    "{\"drive_id\": \"d1\", \"path_on_host\": \"/a.img\", "
		    "\"is_root_device\": false, \"is_read_only\": false}",
		    NULL, 0),
	       204, "PUT /drives/d1 before boot");
	is_int(call(&t, "PUT", "/drives/d2",
		    "{\"drive_id\": \"d2\", \"path_on_host\": \"/b.img\", "
		    "\"is_root_device\": false, \"is_read_only\": false}",
		    &fd, 1),
	       400, "PUT /drives with an fd: 400 (only PATCH takes one)");
	ok(t.resp.body != NULL && strstr(t.resp.body, "no file descriptor"),
	   "  and says so: %s", t.resp.body ? t.resp.body : "");
	is_int(call(&t, "PUT", "/boot-source",
		    "{\"kernel_image_path\": \"/k\"}", NULL, 0),
	       204, "PUT /boot-source");
	is_int(call(&t, "PUT", "/actions",
		    "{\"action_type\": \"InstanceStart\"}", NULL, 0),
	       204, "boot");

	api_fake_clear(&t.fake);
	is_int(call(&t, "PATCH", "/drives/d1", patch, &fd, 1), 204,
	       "PATCH /drives/d1 with an fd: 204");
	snprintf(want, sizeof(want),
		 "drive_replace_fd(d1,/named.img,rw,ino=%llu)",
		 (unsigned long long)ino_of(img));
	ok(strcmp(t.fake.last, want) == 0, "  ops->drive_replace_fd: %s",
	   t.fake.last);
	is_int(t.fake.ncalls, 1, "  and nothing else");
	ok(strcmp(t.cfg.drives[0].path, "/named.img") == 0, "  GET /vm/config "
							    "names it by "
							    "path_on_host");

	api_fake_clear(&t.fake);
	is_int(call(&t, "PATCH", "/drives/d1", patch, NULL, 0), 204,
	       "PATCH /drives/d1 without: by path, as Firecracker");
	ok(strcmp(t.fake.last, "drive_replace(d1,/named.img,rw)") == 0,
	   "  ops->drive_replace: %s", t.fake.last);

	api_fake_clear(&t.fake);
	is_int(call(&t, "PATCH", "/drives/d1", patch, two, 2), 400,
	       "PATCH /drives/d1 with two fds: 400");
	is_int(t.fake.ncalls, 0, "  no op called");
	is_int(call(&t, "PATCH", "/drives/d1", "{\"drive_id\": \"d1\"}", &fd,
		    1),
	       400, "an fd without path_on_host: 400");
	is_int(call(&t, "PATCH", "/vm", "{\"state\": \"Paused\"}", &fd, 1), 400,
	       "PATCH /vm with an fd: 400");
	is_int(t.fake.ncalls, 0, "  no op called");
	api_fake_fail(&t.fake, "drive_replace_fd", "refused");
	is_int(call(&t, "PATCH", "/drives/d1", patch, &fd, 1), 400,
	       "a refused fd: 400");
	ok(t.resp.body != NULL && strstr(t.resp.body, "refused"), "  with the "
								  "op's "
								  "message");

	free(t.resp.body);
	vm_config_destroy(&t.cfg);
	close(fd);
	free(img);
}

/* ---- virtio-blk: the fd's mode and kind --------------------------------- */

static const struct vblk_layout layout = {
	.mem_size = 16ULL << 20,
	.desc = 0x1000,
	.avail = 0x2000,
	.used = 0x3000,
	.qsize = 16,
};

static void test_blk(void)
{
	struct kiln_error err = { 0 };
	char *a = mkfile("a.img", 64 * 512), *b = mkfile("b.img", 128 * 512);
	char spec[256];
	const char *specs[2] = { spec, NULL };
	struct vdrv *t;
	int rw = open(b, O_RDWR | O_CLOEXEC),
	    ro = open(b, O_RDONLY | O_CLOEXEC);
	int wo = open(b, O_WRONLY | O_CLOEXEC),
	    path = open(b, O_PATH | O_CLOEXEC);
	int app = open(b, O_RDWR | O_APPEND | O_CLOEXEC);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), sp[2];

	snprintf(spec, sizeof(spec), "id=d1,path=%s", a);
	t = vblk_new(&layout, specs, &err);
	if (t == NULL) {
		ok(0, "a drive: %s", err.msg);
		return;
	}
	/* read-write, and no file */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		exit(1);
	is_int(blk_replace_backing_fd(t->dev, ro, b, 0, &err), -1,
	       "a read-only fd for a read-write drive: refused");
	ok(strstr(err.msg, "read-write") != NULL, "  %s", err.msg);
	is_int(blk_replace_backing_fd(t->dev, wo, b, 0, &err), -1,
	       "a write-only fd: refused");
	is_int(blk_replace_backing_fd(t->dev, rw, b, 1, &err), -1,
	       "a read-write fd for a read-only drive: refused");
	is_int(blk_replace_backing_fd(t->dev, path, b, 0, &err), -1,
	       "an O_PATH fd: refused");
	is_int(blk_replace_backing_fd(t->dev, app, b, 0, &err), -1,
	       "an O_APPEND fd: refused");
	is_int(blk_replace_backing_fd(t->dev, dfd, dir, 1, &err), -1,
	       "a folder: refused");
	is_int(blk_replace_backing_fd(t->dev, sp[0], "socket", 0, &err), -1,
	       "a socket: refused");
	ok(strstr(err.msg, "not a file or block device") != NULL, "  %s",
	   err.msg);
	is_int(blk_capacity(t->dev), 64, "refusals changed nothing");

	memset(&err, 0, sizeof(err));
	is_int(blk_replace_backing_fd(t->dev, rw, b, 0, &err), 0,
	       "a read-write fd for a read-write drive: %s", err.msg);
	is_int(blk_capacity(t->dev), 128, "  the new file's capacity");
	ok(fcntl(rw, F_GETFD) >= 0, "  the caller's fd is still the caller's");
	is_int(blk_replace_backing_fd(t->dev, ro, b, 1, &err), 0,
	       "a read-only fd, the drive read-only: %s", err.msg);
	is_int(blk_replace_backing_fd(t->dev, ro, b, -1, &err), 0,
	       "a read-only fd in the drive's (now read-only) mode");

	vblk_free(t);
	close(rw);
	close(ro);
	close(wo);
	close(path);
	close(app);
	close(dfd);
	close(sp[0]);
	close(sp[1]);
	free(a);
	free(b);
}

int main(void)
{
	char cmd[128];

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL)
		return 1;
	test_server();
	test_router();
	test_blk();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		ok(0, "clean %s", dir);
	return tap_done();
}
