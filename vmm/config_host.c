/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host side of a config, checked when it is configured: Firecracker
 * opens the kernel, initrd, drive files and TAP, and binds the vsock
 * socket, while it answers the request that names them, so its clients
 * get the error from that request and not from InstanceStart. kiln-vmm
 * opens them here and closes them again (the devices, made at
 * InstanceStart, open them for good); the API reaches these through
 * api_ops.check_*, main() for --config-file and flags.
 *
 * client-controlled: every path. Nothing here may block the VMM thread
 * (a FIFO, a terminal) or touch a device by opening it (a watchdog):
 * the type is checked with stat() before anything is opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "config.h"
#include "virtio/tap.h"

#define OPEN_FLAGS (O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

/* A regular file with something in it, readable. */
static int check_image(const char *what, const char *path,
		       struct kiln_error *err)
{
	cleanup_close int fd = -1;
	struct stat st;

	if (stat(path, &st) < 0)
		return kiln_error_set(err, errno, "open %s `%s`", what, path);
	if (!S_ISREG(st.st_mode))
		return kiln_error_set(err, 0, "%s `%s` is not a file", what,
				      path);
	fd = open(path, O_RDONLY | OPEN_FLAGS);
	if (fd < 0)
		return kiln_error_set(err, errno, "open %s `%s`", what, path);
	if (fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "stat %s `%s`", what, path);
	if (!S_ISREG(st.st_mode))
		return kiln_error_set(err, 0, "%s `%s` is not a file", what,
				      path);
	if (st.st_size == 0)
		return kiln_error_set(err, 0, "%s `%s` is empty", what, path);
	return 0;
}

int vm_config_check_boot_source(const char *kernel, const char *initrd,
				struct kiln_error *err)
{
	if (kernel == NULL || kernel[0] == '\0')
		return kiln_error_set(err, 0, "no kernel_image_path");
	if (check_image("kernel", kernel, err) < 0)
		return -1;
	if (initrd != NULL && check_image("initrd", initrd, err) < 0)
		return -1;
	return 0;
}

int vm_config_check_drive_file(const struct vm_drive *d, struct kiln_error *err)
{
	int mode = d->read_only ? O_RDONLY : O_RDWR;
	cleanup_close int fd = -1;
	struct stat st;

	if (stat(d->path, &st) < 0)
		return kiln_error_set(err, errno, "drive %s: open `%s`", d->id,
				      d->path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return kiln_error_set(err, 0,
				      "drive %s: `%s` is not a file or block "
				      "device",
				      d->id, d->path);
	/* the mode the drive will use: a read-only file fails here */
	fd = open(d->path, mode | OPEN_FLAGS);
	if (fd < 0)
		return kiln_error_set(err, errno, "drive %s: open `%s`%s",
				      d->id, d->path,
				      d->read_only ? "" : " read-write");
	if (fstat(fd, &st) < 0)
		return kiln_error_set(err, errno, "drive %s: stat `%s`", d->id,
				      d->path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return kiln_error_set(err, 0,
				      "drive %s: `%s` is not a file or block "
				      "device",
				      d->id, d->path);
	return 0;
}

int vm_config_check_tap(const struct vm_net *n, struct kiln_error *err)
{
	struct tap t;

	/* attach and let go: the TAP is persistent (tap_open insists) */
	if (tap_open(&t, n->tap, n->queue_pairs > 1, err) < 0)
		return kiln_error_wrap(err, "network interface %s", n->id);
	tap_close(&t);
	return 0;
}

/* Does a process accept on the socket at sa? */
static bool uds_listening(const struct sockaddr_un *sa)
{
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	return connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
	       errno != ECONNREFUSED;
}

int vm_config_check_vsock_path(const struct vm_vsock *v, struct kiln_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_free char *copy = NULL;
	const char *dir;
	struct stat st;

	if (v->uds_path == NULL || strlen(v->uds_path) >= sizeof(sa.sun_path))
		return kiln_error_set(err, ENAMETOOLONG,
				      "vsock uds_path `%s`: not a Unix socket "
				      "path",
				      v->uds_path ? v->uds_path : "");
	strcpy(sa.sun_path, v->uds_path);
	if (lstat(v->uds_path, &st) == 0) {
		/* InstanceStart replaces only a socket nobody listens on */
		if (!S_ISSOCK(st.st_mode))
			return kiln_error_set(err, 0,
					      "vsock uds_path `%s` exists and "
					      "is not a socket",
					      v->uds_path);
		if (uds_listening(&sa))
			return kiln_error_set(err, 0,
					      "vsock uds_path `%s`: another "
					      "process listens there",
					      v->uds_path);
		return 0;
	}
	if (errno != ENOENT)
		return kiln_error_set(err, errno, "vsock uds_path `%s`",
				      v->uds_path);
	copy = strdup(v->uds_path);
	if (copy == NULL)
		return kiln_error_set(err, ENOMEM, "vsock uds_path");
	dir = dirname(copy);
	if (stat(dir, &st) < 0)
		return kiln_error_set(err, errno,
				      "vsock uds_path `%s`: directory `%s`",
				      v->uds_path, dir);
	if (!S_ISDIR(st.st_mode))
		return kiln_error_set(err, 0,
				      "vsock uds_path `%s`: `%s` is not a "
				      "directory",
				      v->uds_path, dir);
	if (access(dir, W_OK | X_OK) < 0)
		return kiln_error_set(err, errno,
				      "vsock uds_path `%s`: cannot create it "
				      "in `%s`",
				      v->uds_path, dir);
	return 0;
}

int vm_config_check_fs_socket(const struct vm_fs *f, struct kiln_error *err)
{
	struct stat st;

	/*
	 * stat only: virtiofsd serves the first connection and exits when
	 * it ends, so a trial connect here would use the backend up.
	 */
	if (stat(f->socket_path, &st) < 0)
		return kiln_error_set(err, errno, "fs %s: socket_path `%s`",
				      f->id, f->socket_path);
	if (!S_ISSOCK(st.st_mode))
		return kiln_error_set(err, 0,
				      "fs %s: socket_path `%s` is not a "
				      "socket",
				      f->id, f->socket_path);
	return 0;
}

int vm_config_check_host(const struct vm_config *c, struct kiln_error *err)
{
	if (c->kernel_path != NULL &&
	    vm_config_check_boot_source(c->kernel_path, c->initrd_path, err) <
		    0)
		return -1;
	for (unsigned int i = 0; i < c->ndrives; i++)
		if (vm_config_check_drive_file(&c->drives[i], err) < 0)
			return -1;
	for (unsigned int i = 0; i < c->nnets; i++)
		if (vm_config_check_tap(&c->nets[i], err) < 0)
			return -1;
	if (c->vsock.enabled && vm_config_check_vsock_path(&c->vsock, err) < 0)
		return -1;
	for (unsigned int i = 0; i < c->nfs; i++)
		if (vm_config_check_fs_socket(&c->fs[i], err) < 0)
			return -1;
	return 0;
}
