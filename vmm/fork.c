/* SPDX-License-Identifier: Apache-2.0 */
/* Templates and copy-on-write forks: see fork.h. */
#include "fork.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/file.h"
#include "../lib/log.h"
#include "../lib/prefault.h"
#include "../lib/util.h"
#include "evloop.h"
#include "snapshot.h"
#include "virtio/blk.h"
#include "virtio/mmio.h"
#include "vm.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

/* what a template's fds must be sealed against */
#define FORK_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)
/* a fork waits this long for its template's answer */
#define FORK_RECV_TIMEOUT_S 10

/* A fork alive: its connection, open until the fork's process ends. */
struct fork_conn {
	struct fork_template *t;
	struct evloop_entry *entry;
	int fd;
	struct fork_conn *prev, *next;
};

/* Owner: the VMM thread (the event loop's callbacks and the API's). */
struct fork_template {
	struct evloop *loop;
	struct evloop_entry *entry;
	int listen_fd;
	int state_fd;
	int mem_fd;
	uint64_t state_size;
	uint64_t mem_size;
	uint64_t forks;
	unsigned int live, max_live;
	struct fork_conn *conns; /* the live forks' */
	char *path;
};

/* ---- the template ---------------------------------------------------- */

/* A sealed memfd holding buf. */
static int sealed_memfd(const char *name, const void *buf, size_t len,
			struct kiln_error *err)
{
	cleanup_close int fd =
		memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return kiln_error_set(err, errno, "memfd_create");
	if (util_pwrite_all(fd, buf, len, 0) < 0)
		return kiln_error_set(err, errno, "write the template's state");
	if (fcntl(fd, F_ADD_SEALS, FORK_SEALS | F_SEAL_SEAL) < 0)
		return kiln_error_set(err, errno, "seal the template's state");
	return steal_fd(&fd);
}

static int template_listen(const char *path, struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return kiln_error_set(err, ENAMETOOLONG,
				      "template socket `%s`: longer than %zu "
				      "bytes",
				      path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kiln_error_set(err, errno, "socket");
	if (unlink(path) < 0 && errno != ENOENT)
		return kiln_error_set(err, errno, "template socket `%s`", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 128) < 0)
		return kiln_error_set(err, errno, "template socket `%s`", path);
	return steal_fd(&fd);
}

static void fork_conn_close(struct fork_conn *fc)
{
	struct fork_template *t = fc->t;

	evloop_del(t->loop, fc->entry);
	close(fc->fd);
	if (fc->prev != NULL)
		fc->prev->next = fc->next;
	else
		t->conns = fc->next;
	if (fc->next != NULL)
		fc->next->prev = fc->prev;
	t->live--;
	free(fc);
}

/* A fork's end of its connection closed (it ended), or it wrote: either
 * way the connection goes, and its place with it. */
static void template_on_conn(void *opaque, uint32_t events)
{
	(void)events;
	fork_conn_close(opaque);
}

/* Count conn as a live fork until it closes; false if it cannot be. */
static bool template_keep(struct fork_template *t, int conn)
{
	struct kiln_error err = { 0 };
	struct fork_conn *fc = calloc(1, sizeof(*fc));

	if (fc == NULL)
		return false;
	fc->t = t;
	fc->fd = conn;
	fc->entry = evloop_add(t->loop, conn, EPOLLIN | EPOLLRDHUP,
			       template_on_conn, fc, &err);
	if (fc->entry == NULL) {
		log_warn("template: keep a fork's connection: %s", err.msg);
		free(fc);
		return false;
	}
	fc->next = t->conns;
	if (t->conns != NULL)
		t->conns->prev = fc;
	t->conns = fc;
	t->live++;
	return true;
}

/*
 * At the limit, before refusing: forks that ended but whose hang-up the
 * loop has not delivered yet (it may come in the same batch as this
 * accept) give their places back now. One recv per live fork, only here.
 */
static void template_reap(struct fork_template *t)
{
	struct fork_conn *fc = t->conns;

	while (fc != NULL) {
		struct fork_conn *next = fc->next;
		char c;

		if (recv(fc->fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) >= 0 ||
		    (errno != EAGAIN && errno != EINTR))
			fork_conn_close(fc);
		fc = next;
	}
}

/*
 * One fork asks: the hello and both fds, to our own uid (or root) only;
 * or, with max_live forks alive, the hello alone. True when conn is now
 * a live fork's (kept open), false when the caller closes it.
 */
static bool template_serve(struct fork_template *t, int conn)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct fork_hello hello = {
		.version = FORK_VERSION,
		.max_live = t->max_live,
		.state_size = t->state_size,
		.mem_size = t->mem_size,
		.forks = t->forks,
	};
	int fds[2] = { t->state_fd, t->mem_fd };
	bool full;

	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		log_warn("template: a fork from uid %d refused", (int)cred.uid);
		return false;
	}
	memcpy(hello.magic, FORK_MAGIC, sizeof(hello.magic));
	if (t->live >= t->max_live)
		template_reap(t);
	full = t->live >= t->max_live;
	if (full) {
		hello.state_size = 0;
		log_warn("template: a fork refused, %u forks are alive "
			 "(max_forks)",
			 t->live);
	}
	if (util_send_fds(conn, &hello, sizeof(hello), fds, full ? 0 : 2,
			  MSG_NOSIGNAL) != (ssize_t)sizeof(hello)) {
		log_warn("template: send to a fork: %s", strerror(errno));
		return false;
	}
	if (full)
		return false;
	t->forks++;
	return template_keep(t, conn);
}

static void template_on_accept(void *opaque, uint32_t events)
{
	struct fork_template *t = opaque;

	(void)events;
	for (;;) {
		int conn = accept4(t->listen_fd, NULL, NULL,
				   SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (conn < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("template: accept: %s",
					 strerror(errno));
			if (errno != EINTR && errno != ECONNABORTED)
				return;
			continue;
		}
		if (!template_serve(t, conn))
			close(conn);
	}
}

/*
 * The template's RAM in 2 MiB pages where it is all there: a fork's reads
 * of such a run (the guest kernel's code and read-only data) then map
 * 2 MiB at once, in the fork's page table and in KVM's, one nested page
 * fault instead of up to 512, and the fork's end unmaps one entry instead
 * of 512. A fork's write still copies 4 KiB: the kernel splits a private
 * mapping's huge entry. Only runs with every page present: a hole (a zero
 * page, guest_mem_copy skips them) would be filled, and the template
 * grow. MADV_COLLAPSE makes them now, whatever the host's shmem_enabled
 * says; it answers 0 only once our own mapping maps the huge page, so
 * the run is read in first. Best effort: a kernel without it for shmem
 * (before 6.1), or short of free huge pages, leaves 4 KiB pages.
 */
static void template_huge(int fd, uint64_t size)
{
	const uint64_t run = 2ULL << 20;
	uint64_t start = util_now_ns();
	unsigned char vec[512];
	unsigned int full = 0, made = 0;
	int why = 0;
	uint8_t *p = guest_mem_map_huge(fd, size, PROT_READ, MAP_SHARED);

	if (p == MAP_FAILED)
		return;
	for (uint64_t off = 0; off + run <= size; off += run) {
		size_t n = 0;

		if (mincore(p + off, run, vec) < 0)
			break;
		while (n < sizeof(vec) && (vec[n] & 1))
			n++;
		if (n < sizeof(vec))
			continue;
		full++;
		if (madvise(p + off, run, MADV_POPULATE_READ) == 0 &&
		    madvise(p + off, run, MADV_COLLAPSE) == 0)
			made++;
		else if (why == 0)
			why = errno;
	}
	guest_mem_unmap_huge(p, size);
	log_info("template: %u of %u full 2 MiB runs of RAM in huge pages%s%s, "
		 "%.1f ms",
		 made, full, why ? ", the others: " : "",
		 why ? strerror(why) : "",
		 (double)(util_now_ns() - start) / 1e6);
}

int fork_template_make(struct vm *vm, const char *sock_path,
		       unsigned int max_live, struct fork_template **out,
		       struct kiln_error *err)
{
	cleanup_free uint8_t *state = NULL;
	struct fork_template *t;
	uint64_t copy_ns;
	size_t len = 0;
	int mem_fd;

	if (!vm->booted || !vm->paused)
		return kiln_error_set(err, 0,
				      "a template is made of a paused VM: "
				      "PATCH /vm {\"state\": \"Paused\"} "
				      "first");
	if (vm->mem.private_map)
		return kiln_error_set(err, EINVAL,
				      "a restored VM cannot be a template: "
				      "its RAM is a private mapping");
	if (max_live > FORK_MAX_LIVE)
		return kiln_error_set(err, EINVAL,
				      "max_forks %u: at most %u forks alive",
				      max_live, FORK_MAX_LIVE);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return kiln_error_set(err, ENOMEM, "template");
	t->listen_fd = t->state_fd = t->mem_fd = -1;
	t->max_live = max_live > 0 ? max_live : FORK_MAX_LIVE_DEFAULT;
	t->loop = &vm->loop;
	if ((t->path = strdup(sock_path)) == NULL) {
		kiln_error_set(err, ENOMEM, "template");
		goto fail;
	}
	if (snapshot_state(vm, &state, &len, err) < 0)
		goto fail;
	t->state_size = len;
	t->mem_size = vm->mem.size;
	t->state_fd = sealed_memfd("kiln-template-state", state, len, err);
	if (t->state_fd < 0)
		goto fail;
	t->listen_fd = template_listen(sock_path, err);
	if (t->listen_fd < 0)
		goto fail;
	/* a memfd, not hugetlbfs: a fork's copy-on-write is per 4 KiB page */
	copy_ns = util_now_ns();
	mem_fd = guest_mem_share_fd(&vm->mem, err);
	if (mem_fd < 0)
		goto fail;
	t->mem_fd = mem_fd;
	if (vm->mem.backing != GUEST_MEM_MEMFD)
		log_info("template: RAM copied into a 4 KiB memfd in %.1f ms",
			 (double)(util_now_ns() - copy_ns) / 1e6);
	/*
	 * From here the VM is gone whatever happens: its RAM must be
	 * unmapped (and KVM's hold on it dropped) before it can be sealed.
	 */
	vm_end(vm);
	template_huge(t->mem_fd, t->mem_size);
	if (fcntl(t->mem_fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		kiln_error_set(err, errno, "seal the template's RAM");
		goto fail;
	}
	t->entry = evloop_add(t->loop, t->listen_fd, EPOLLIN,
			      template_on_accept, t, err);
	if (t->entry == NULL)
		goto fail;
	log_info("template: %zu bytes of state, %llu MiB of RAM, forks on "
		 "`%s`, at most %u alive",
		 len, (unsigned long long)(t->mem_size >> 20), sock_path,
		 t->max_live);
	*out = t;
	return 0;
fail:
	fork_template_stop(t);
	return -1;
}

uint64_t fork_template_count(const struct fork_template *t)
{
	return t->forks;
}

unsigned int fork_template_live(const struct fork_template *t)
{
	return t->live;
}

void fork_template_stop(struct fork_template *t)
{
	if (t == NULL)
		return;
	while (t->conns != NULL)
		fork_conn_close(t->conns);
	if (t->entry != NULL)
		evloop_del(t->loop, t->entry);
	if (t->listen_fd >= 0) {
		close(t->listen_fd);
		unlink(t->path);
	}
	if (t->state_fd >= 0)
		close(t->state_fd);
	if (t->mem_fd >= 0)
		close(t->mem_fd);
	free(t->path);
	free(t);
}

/* ---- the fork ------------------------------------------------------- */

static void close_rights(struct msghdr *msg)
{
	int fds[UTIL_MAX_SEND_FDS];
	bool extra;
	size_t n = util_recv_rights(msg, fds, UTIL_MAX_SEND_FDS, &extra);

	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/*
 * The fork's connection to its template, open for the process's life:
 * the template counts its live forks by them. The VMM thread's.
 */
static int template_conn = -1;

/* fork_connect's answer, until fork_load takes it. main()'s thread. */
static struct {
	bool have;
	struct fork_hello hello;
	int state_fd, mem_fd, conn;
} pre = { .state_fd = -1, .mem_fd = -1, .conn = -1 };

/* fork_prefault_read's list, until fork_load uses it. main()'s thread. */
static struct {
	uint32_t *pages;
	size_t n;
} prefault;

void fork_prefault_read(const char *path)
{
	struct kiln_error err = { 0 };
	size_t len = 0;
	cleanup_free char *buf = file_read(path, PREFAULT_FILE_MAX, &len, &err);

	free(prefault.pages);
	prefault.pages = NULL;
	prefault.n = 0;
	if (buf == NULL ||
	    prefault_parse(buf, len, &prefault.pages, &prefault.n, &err) < 0)
		log_warn("prefault list `%s`: %s; forking without it", path,
			 err.msg);
}

/*
 * Write the listed pages of the fork's RAM (MAP_PRIVATE over the
 * template's): each is copied now, one run of pages per madvise, instead
 * of by a nested page fault and a host fault once the guest writes it.
 */
static void prefault_apply(struct guest_mem *m)
{
	uint64_t t0 = util_now_ns();
	size_t done = 0, calls = 0;

	for (size_t i = 0; i < prefault.n;) {
		size_t j = i + 1;
		uint64_t off = (uint64_t)prefault.pages[i] << 12, len;

		while (j < prefault.n &&
		       prefault.pages[j] == prefault.pages[j - 1] + 1)
			j++;
		len = (uint64_t)(j - i) << 12;
		/* ascending: the rest is past the end too */
		if (off >= m->size || len > m->size - off)
			break;
		calls++;
		if (madvise(m->host + off, len, MADV_POPULATE_WRITE) < 0) {
			log_warn("prefault: madvise: %s", strerror(errno));
			break;
		}
		done += j - i;
		i = j;
	}
	log_info("prefaulted %zu of %zu listed pages in %zu calls, %.1f ms",
		 done, prefault.n, calls, (double)(util_now_ns() - t0) / 1e6);
	free(prefault.pages);
	prefault.pages = NULL;
	prefault.n = 0;
}

/* The hello and the two fds of the template on path. */
static int fork_fetch(const char *path, struct fork_hello *hello, int *state_fd,
		      int *mem_fd, int *conn, struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = FORK_RECV_TIMEOUT_S };
	cleanup_close int fd = -1;
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { hello, sizeof(*hello) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c;
	ssize_t n;

	if (strlen(path) >= sizeof(sa.sun_path))
		return kiln_error_set(err, ENAMETOOLONG,
				      "template socket `%s`: too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kiln_error_set(err, errno, "socket");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return kiln_error_set(err, errno, "template `%s`", path);
	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return kiln_error_set(err, errno, "template `%s`: receive",
				      path);
	c = CMSG_FIRSTHDR(&msg);
	if (n == (ssize_t)sizeof(*hello) && c == NULL &&
	    memcmp(hello->magic, FORK_MAGIC, sizeof(hello->magic)) == 0 &&
	    hello->version == FORK_VERSION && hello->state_size == 0)
		return kiln_error_set(err, EAGAIN,
				      "template `%s`: %u of its forks are "
				      "alive, its limit (max_forks)",
				      path, hello->max_live);
	if (n != (ssize_t)sizeof(*hello) || (msg.msg_flags & MSG_CTRUNC) ||
	    c == NULL || c->cmsg_level != SOL_SOCKET ||
	    c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(2 * sizeof(int)) ||
	    CMSG_NXTHDR(&msg, c) != NULL) {
		close_rights(&msg);
		return kiln_error_set(err, EPROTO,
				      "template `%s`: not a template's "
				      "answer",
				      path);
	}
	memcpy(state_fd, CMSG_DATA(c), sizeof(int));
	memcpy(mem_fd, CMSG_DATA(c) + sizeof(int), sizeof(int));
	if (memcmp(hello->magic, FORK_MAGIC, sizeof(hello->magic)) != 0 ||
	    hello->version != FORK_VERSION) {
		close(*state_fd);
		close(*mem_fd);
		return kiln_error_set(err, EPROTO,
				      "template `%s`: version %u, want %u",
				      path, hello->version, FORK_VERSION);
	}
	*conn = steal_fd(&fd);
	return 0;
}

/* A memfd of size bytes that no one can write, grow or shrink. */
static int check_sealed(int fd, uint64_t size, const char *what,
			struct kiln_error *err)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0 || (seals & FORK_SEALS) != FORK_SEALS)
		return kiln_error_set(err, EPERM,
				      "the template's %s is not sealed "
				      "against writes",
				      what);
	if (fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "stat the template's %s",
				      what);
	if ((uint64_t)st.st_size != size)
		return kiln_error_set(err, EINVAL,
				      "the template's %s is %lld bytes, it "
				      "announced %llu",
				      what, (long long)st.st_size,
				      (unsigned long long)size);
	return 0;
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

/* The fork's config must have the template's shape; its host sides are its own. */
static int check_shape(const struct vm_config *c, const struct vm_config *t,
		       struct kiln_error *err)
{
	if (c->vcpu_count != t->vcpu_count || c->mem_mib != t->mem_mib)
		return kiln_error_set(err, EINVAL,
				      "the template has %u vCPUs and %llu "
				      "MiB, the fork %u and %llu",
				      t->vcpu_count,
				      (unsigned long long)t->mem_mib,
				      c->vcpu_count,
				      (unsigned long long)c->mem_mib);
	if (c->ndrives != t->ndrives || c->nnets != t->nnets)
		return kiln_error_set(err, EINVAL,
				      "the template has %u drives and %u "
				      "network interfaces, the fork %u and "
				      "%u",
				      t->ndrives, t->nnets, c->ndrives,
				      c->nnets);
	for (unsigned int i = 0; i < c->ndrives; i++)
		if (!same_str(c->drives[i].id, t->drives[i].id) ||
		    c->drives[i].root != t->drives[i].root)
			return kiln_error_set(err, EINVAL,
					      "drive %u is `%s` in the "
					      "template, `%s` in the fork",
					      i, t->drives[i].id,
					      c->drives[i].id);
	for (unsigned int i = 0; i < c->nnets; i++)
		if (!same_str(c->nets[i].id, t->nets[i].id))
			return kiln_error_set(err, EINVAL,
					      "network interface %u is `%s` "
					      "in the template, `%s` in the "
					      "fork",
					      i, t->nets[i].id, c->nets[i].id);
	for (unsigned int i = 0; i < c->nnets; i++) {
		unsigned int tp =
			t->nets[i].queue_pairs > 1 ? t->nets[i].queue_pairs : 1;
		unsigned int cp =
			c->nets[i].queue_pairs > 1 ? c->nets[i].queue_pairs : 1;

		/* the guest's driver set up the template's queues */
		if (tp != cp)
			return kiln_error_set(err, EINVAL,
					      "network interface `%s` has %u "
					      "queue pairs in the template, "
					      "%u in the fork",
					      c->nets[i].id, tp, cp);
	}
	if (c->vsock.enabled != t->vsock.enabled ||
	    c->vsock.cid != t->vsock.cid || c->entropy != t->entropy ||
	    c->balloon.enabled != t->balloon.enabled)
		return kiln_error_set(err, EINVAL,
				      "the template's vsock (cid), entropy "
				      "and balloon devices differ from the "
				      "fork's");
	return 0;
}

/* The template's boot source, for GET /vm/config. */
static void take_boot_source(struct vm_config *c, struct vm_config *t)
{
	c->kernel_path = t->kernel_path;
	c->initrd_path = t->initrd_path;
	c->cmdline = t->cmdline;
	t->kernel_path = t->initrd_path = t->cmdline = NULL;
}

int fork_connect(const char *sock_path, int fds[3], struct kiln_error *err)
{
	if (pre.have)
		return kiln_error_set(err, EALREADY, "fork: connected already");
	if (fork_fetch(sock_path, &pre.hello, &pre.state_fd, &pre.mem_fd,
		       &pre.conn, err) < 0)
		return kiln_error_wrap(err, "fork of `%s`", sock_path);
	pre.have = true;
	fds[0] = pre.conn;
	fds[1] = pre.state_fd;
	fds[2] = pre.mem_fd;
	return 0;
}

int fork_load(struct vm *vm, struct vm_config *cfg, const char *sock_path,
	      struct kiln_error *err)
{
	cleanup_free struct snap_image *img = calloc(1, sizeof(*img));
	struct fork_hello hello;
	struct vm_config tcfg;
	int state_fd = -1, mem_fd = -1, conn = -1, ret = -1;
	void *state = MAP_FAILED;

	if (img == NULL)
		return kiln_error_set(err, ENOMEM, "fork");
	if (vm->cfg != cfg)
		return kiln_error_set(err, EINVAL, "not this VM's config");
	vm_config_init(&tcfg);
	if (pre.have) {
		/* received before the jail; checked from here on */
		hello = pre.hello;
		state_fd = pre.state_fd;
		mem_fd = pre.mem_fd;
		conn = pre.conn;
		pre.have = false;
		pre.state_fd = pre.mem_fd = pre.conn = -1;
	} else if (fork_fetch(sock_path, &hello, &state_fd, &mem_fd, &conn,
			      err) < 0) {
		goto out;
	}
	if (hello.state_size == 0 || hello.state_size > SNAP_MAX_FILE) {
		kiln_error_set(err, EINVAL, "template state of %llu bytes",
			       (unsigned long long)hello.state_size);
		goto out;
	}
	if (check_sealed(state_fd, hello.state_size, "state", err) < 0 ||
	    check_sealed(mem_fd, hello.mem_size, "RAM", err) < 0)
		goto out;
	state = mmap(NULL, hello.state_size, PROT_READ, MAP_PRIVATE, state_fd,
		     0);
	if (state == MAP_FAILED) {
		kiln_error_set(err, errno, "map the template's state");
		goto out;
	}
	if (snap_parse(state, hello.state_size, img, err) < 0 ||
	    snap_parse_config(img, &tcfg, err) < 0 ||
	    check_shape(cfg, &tcfg, err) < 0)
		goto out;
	if (img->hdr.mem_size != hello.mem_size) {
		kiln_error_set(err, EINVAL,
			       "the template's RAM is %llu bytes, its state "
			       "says %llu",
			       (unsigned long long)hello.mem_size,
			       (unsigned long long)img->hdr.mem_size);
		goto out;
	}
	take_boot_source(cfg, &tcfg);
	vm->fork = true;
	ret = vm_restore(vm, img, steal_fd(&mem_fd), err);
	if (ret < 0) {
		vm->fork = false;
		goto out;
	}
	for (unsigned int slot = 0; slot < VIRTIO_MMIO_SLOTS; slot++) {
		struct virtio_dev *d = virtio_mmio_slot_dev(vm, slot);

		if (d != NULL && d->ops->device_id == VIRTIO_ID_BLOCK)
			blk_fork_resized(d);
	}
	if (prefault.n > 0)
		prefault_apply(&vm->mem);
	if (template_conn >= 0)
		close(template_conn);
	template_conn = steal_fd(&conn);
	log_info("forked from `%s` (fork %llu of it), %llu us after the "
		 "VMM started",
		 sock_path, (unsigned long long)hello.forks + 1,
		 (unsigned long long)((util_now_ns() - vm->start_ns) / 1000));
out:
	if (ret < 0)
		kiln_error_wrap(err, "fork of `%s`", sock_path);
	if (state != MAP_FAILED)
		munmap(state, hello.state_size);
	if (state_fd >= 0)
		close(state_fd);
	if (mem_fd >= 0)
		close(mem_fd);
	if (conn >= 0)
		close(conn);
	vm_config_destroy(&tcfg);
	return ret;
}
