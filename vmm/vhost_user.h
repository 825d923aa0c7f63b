/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frontend half of the vhost-user protocol (QEMU's
 * docs/interop/vhost-user.rst): messages over a Unix stream socket to a
 * backend process (virtiofsd) that serves a virtio device's rings straight
 * from guest memory, which we hand it as file descriptors.
 *
 * Only what a frontend of a virtio-mmio device with no migration needs:
 * owner, features, protocol features (REPLY_ACK only), the memory table,
 * and the vring calls. Every exchange is bounded by a timeout, so a dead
 * or silent backend costs one error, never a wedged thread; a reply is
 * accepted only when its request code, flags, size and file descriptor
 * count are exactly what the request calls for. The backend is another
 * process: everything it sends is untrusted.
 *
 * Owner: whoever holds the connection. kiln's virtio-fs device calls these
 * with its device lock held, from a vCPU thread (activate, reset) or the
 * VMM thread (init); none of them keeps state beyond struct vhost_user.
 */
#ifndef KILN_VMM_VHOST_USER_H
#define KILN_VMM_VHOST_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/error.h"

/* request codes (frontend to backend) */
enum vhost_user_request {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_SET_VRING_ENABLE = 18,
};

#define VHOST_USER_VERSION	   0x1
#define VHOST_USER_FLAG_REPLY	   (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY (1u << 3)

/* feature bit 30 of GET_FEATURES: the backend speaks protocol features */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
/* protocol feature: every request with NEED_REPLY is answered (u64 0 = ok) */
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3

/* SET_VRING_KICK/CALL payload: index in bits 0-7, no fd when bit 8 */
#define VHOST_USER_VRING_IDX_MASK 0xff
#define VHOST_USER_VRING_NOFD	  (1u << 8)

#define VHOST_USER_MAX_REGIONS 8
/* the largest payload any message we send or accept has */
#define VHOST_USER_PAYLOAD_MAX (8 + VHOST_USER_MAX_REGIONS * 32)

struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size; /* payload bytes after the header */
} __attribute__((packed));

struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc; /* frontend virtual addresses, as the table maps */
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

/* One guest RAM region: its fd is sent with SET_MEM_TABLE (SCM_RIGHTS). */
struct vhost_user_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;	      /* where the frontend maps it */
	uint64_t mmap_offset; /* of the region in fd */
	int fd;
};

/* Owner: see the top of this file. */
struct vhost_user {
	int fd;			 /* the connection, -1 when closed */
	bool down;		 /* shut down: every call fails at once */
	unsigned int timeout_ms; /* per exchange, whole */
	uint64_t features;	 /* what GET_FEATURES answered */
	uint64_t protocol;	 /* protocol features both sides use */
	char what[64];		 /* "virtio-fs `shared`": for messages */
};

/* A connection over fd (taken), already connected; for connect and tests. */
void vhost_user_init(struct vhost_user *vu, int fd, unsigned int timeout_ms,
		     const char *what);
/* Connect to the backend listening on path. */
int vhost_user_connect(struct vhost_user *vu, const char *path,
		       unsigned int timeout_ms, const char *what,
		       struct kiln_error *err);
void vhost_user_close(struct vhost_user *vu);
/*
 * Stop using the connection without closing its fd (shutdown both ways):
 * the backend sees the end, and an owner that polls fd hears of it too.
 */
void vhost_user_shutdown(struct vhost_user *vu);

/*
 * SET_OWNER, GET_FEATURES, and when the backend offers them,
 * GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES (REPLY_ACK if offered).
 * vu->features holds the backend's features after it.
 */
int vhost_user_handshake(struct vhost_user *vu, struct kiln_error *err);
/* SET_FEATURES: adds VHOST_USER_F_PROTOCOL_FEATURES when it was offered. */
int vhost_user_set_features(struct vhost_user *vu, uint64_t features,
			    struct kiln_error *err);
/* SET_MEM_TABLE: 1..VHOST_USER_MAX_REGIONS regions, one fd each. */
int vhost_user_set_mem_table(struct vhost_user *vu,
			     const struct vhost_user_region *r, unsigned int n,
			     struct kiln_error *err);
int vhost_user_set_vring_num(struct vhost_user *vu, unsigned int index,
			     unsigned int num, struct kiln_error *err);
int vhost_user_set_vring_addr(struct vhost_user *vu,
			      const struct vhost_user_vring_addr *a,
			      struct kiln_error *err);
int vhost_user_set_vring_base(struct vhost_user *vu, unsigned int index,
			      unsigned int base, struct kiln_error *err);
/* Stops the ring in the backend; *base is where it stopped. */
int vhost_user_get_vring_base(struct vhost_user *vu, unsigned int index,
			      uint32_t *base, struct kiln_error *err);
/* fd < 0: no fd (the NOFD flag). */
int vhost_user_set_vring_kick(struct vhost_user *vu, unsigned int index, int fd,
			      struct kiln_error *err);
int vhost_user_set_vring_call(struct vhost_user *vu, unsigned int index, int fd,
			      struct kiln_error *err);
int vhost_user_set_vring_enable(struct vhost_user *vu, unsigned int index,
				bool enable, struct kiln_error *err);

#endif
