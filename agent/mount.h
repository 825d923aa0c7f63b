/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container's file systems: the rootfs block device (with a tmpfs
 * overlay when it is read-only) mounted by the agent, and the mounts its
 * init makes in its own mount namespace before pivot_root.
 */
#ifndef KILN_AGENT_MOUNT_H
#define KILN_AGENT_MOUNT_H

#include <stdint.h>
#include <sys/stat.h>

#include "agent.h"

struct mount_one {
	const char *source, *destination, *type; /* into the request */
	struct spec_mount_opts opts;
	/* a file carried in (Mount.has_data): written to file, which is
	 * then the bind's source */
	const uint8_t *data; /* into the request; NULL: none */
	size_t len;
	mode_t mode;
	char file[128]; /* <dir>/files/<index> */
	/* Mount.device_size: not 0, source is a device under /dev that
	 * mount_files_write waits for (mount_device_wait) */
	uint64_t device_size;
	/* a bind from AGENT_VOLUMES_DIR/NAME: made on first use */
	bool volume;
	/* a bind from AGENT_PODFS_DIR/<id>/<n>: the pod's share mounted */
	bool podfs;
};

/* Everything the init child needs, checked before the clone. */
struct mount_plan {
	char root[160]; /* /run/kiln/c/<id>/rootfs */
	struct mount_one *mounts;
	size_t nmounts;
	size_t nfiles;	   /* mounts with data */
	size_t files_size; /* their bytes */
	bool readonly;
	const char *hostname; /* NULL: keep the guest's */
	char *const *masked;  /* into the request */
	size_t nmasked;
	char *const *ro_paths; /* into the request */
	size_t nro_paths;
};

#define MOUNTS_MAX	 128
#define MOUNT_PATHS_MAX	 128 /* masked_paths, readonly_paths: each */
#define MOUNT_LAYERS_MAX 64
#define MOUNT_FILE_MAX	 (1u << 20)
/* every file of one request; a ttrpc message is at most 4 MiB */
#define MOUNT_FILES_TOTAL_MAX (3u << 20)

/* A path below AGENT_PODFS_DIR a runtime may name: "<id>/<n>". */
bool mount_podfs_path_ok(const char *rel);
/* The pod's share at AGENT_PODFS_DIR, mounted once, when a mount of plan
 * binds from it; in the agent's namespace, before the init's clone. */
int mount_podfs_ensure(const struct mount_plan *plan, struct kiln_error *err);

/* Check the request's mounts and hostname into plan (mounts malloc'd). */
int mount_plan_init(struct mount_plan *plan, const char *dir,
		    const Kiln__Agent__V1__CreateContainerRequest *req,
		    struct kiln_error *err);
void mount_plan_free(struct mount_plan *plan);

/*
 * What mount_rootfs checks before it touches anything: the fields, the
 * devices' names (not whether they exist), the fstypes, the options
 * (into *o). No system call.
 */
int mount_rootfs_check(const Kiln__Agent__V1__Rootfs *r,
		       struct spec_mount_opts *o, struct kiln_error *err);

/*
 * overlayfs's options for layers <dir>/l0 (the top) .. l<n-1> over
 * upper and work: "lowerdir=A:B...,upperdir=U,workdir=W" into data of
 * size bytes; with fds, each layer i is /proc/self/fd/<fds[i]> instead
 * (overlayfs resolves it when it mounts). -1 when it does not fit.
 */
int mount_overlay_data(char *data, size_t size, const char *dir, size_t n,
		       const int *fds, const char *upper, const char *work);

/* ---- rootfs.c: in the agent, before the init is cloned ---- */

/*
 * Mount the rootfs at <dir>/rootfs: one device, or (readonly) the device
 * under a tmpfs overlay, or layers stacked under an ext4 or tmpfs upper.
 * On failure nothing it mounted is left mounted.
 */
int mount_rootfs(struct ctr *c, const Kiln__Agent__V1__Rootfs *r,
		 struct kiln_error *err);
/*
 * Wait for the devices the plan's mounts give a size (device_size), as
 * mount_device_wait does; then write the plan's carried-in files into a
 * tmpfs at <dir>/files (only when there are any); mount_rootfs_remove
 * undoes it.
 */
int mount_files_write(struct ctr *c, struct mount_plan *plan,
		      struct kiln_error *err);
/*
 * Wait (2 s at most in all, polling every 10 ms) until dev exists and is
 * a block device and, when size is not 0, until the guest sees it at
 * exactly size bytes (the host may have just swapped its backing file);
 * then drop the guest's cache of it (BLKFLSBUF). Messages name it as
 * what ("rootfs.device"). Fails NOT_FOUND (never there),
 * INVALID_ARGUMENT (not a block device), FAILED_PRECONDITION (another
 * size, with both in the message) or INTERNAL.
 */
int mount_device_wait(const char *what, const char *dev, uint64_t size,
		      struct kiln_error *err);
/*
 * The size half of it: size_of(arg, &bytes) (0, or -1 with errno) read
 * polls times at most (once at least), 10 ms apart, until it gives want.
 */
int mount_size_wait(const char *what, const char *dev, uint64_t want,
		    unsigned int polls,
		    int (*size_of)(void *arg, uint64_t *bytes), void *arg,
		    struct kiln_error *err);
/* Undo mount_rootfs and mount_files_write and remove <dir>; best effort,
 * logs what is left. */
void mount_rootfs_remove(struct ctr *c);

enum mount_create {
	MOUNT_OPEN,   /* every component must exist */
	MOUNT_MKDIR,  /* missing ones become directories */
	MOUNT_MKFILE, /* ... and the last an empty file (a file's bind) */
};

/*
 * An O_PATH descriptor of path (absolute, no . or ..) inside the
 * directory rootfd, every symlink of the image resolved as if rootfd were
 * "/" (openat2 RESOLVE_IN_ROOT), creating what is missing as told, never
 * outside rootfd. Returns -1 with errno set. No malloc: the init child
 * calls it.
 */
int mount_resolve(int rootfd, const char *path, enum mount_create create);

/*
 * The agent's one way to open a file under a container's root (a dir fd
 * of it): path is resolved as mount_resolve does, never outside rootfd,
 * and only once the result is known to be of type (S_IFREG, S_IFCHR...;
 * a device must also be rdev) is it opened, with flags plus O_NOCTTY and
 * O_CLOEXEC, through /proc/self/fd. A FIFO, a directory or a device that
 * a container put where the agent looks is refused before any open(2)
 * could block on it or run a driver's open. *st (when not NULL) gets its
 * stat. Returns the fd, or -1 with err (errnum ENOENT: it does not exist).
 */
int mount_open_in_root(int rootfd, const char *path, int flags, mode_t type,
		       dev_t rdev, struct stat *st, struct kiln_error *err);
/*
 * In the init child, in its new mount namespace: make every mount
 * private, mount the defaults and plan's mounts under the root, then its
 * read-only and masked paths, pivot_root into it, set the hostname. Reports on `report` and returns
 * -1 on failure. No malloc.
 */
int mount_setup_child(const struct mount_plan *plan, int report);

#endif
