/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the vhost-user frontend (vmm/vhost_user.c) reading a
 * backend's replies. The backend is another process: every byte it sends,
 * and any file descriptor, is hostile.
 *
 * Input: byte 0 picks the call sequence, byte 1 its options (bit 0:
 * REPLY_ACK already negotiated, bit 1: an eventfd rides with the stream);
 * the rest is what the fake backend wrote before closing its end of a
 * socketpair, so a short stream ends in end-of-file, never a wait.
 *
 * Checks beyond ASan/UBSan: a call that fails for any reason but a
 * refusal leaves the connection down, and every later call then fails
 * with ENOTCONN; a GET_VRING_BASE that succeeds gives a 16-bit base; no
 * file descriptor the backend sent stays open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "../../vmm/vhost_user.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return 0;
}

/* The lowest free fd number: it must not move across one input. */
static int lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd >= 0)
		close(fd);
	return fd;
}

static void send_stream(int peer, const uint8_t *data, size_t size, bool fd)
{
	int efd = fd ? eventfd(0, EFD_CLOEXEC) : -1;

	if (size > 0 && util_send_fds(peer, data, size, &efd, efd >= 0 ? 1 : 0,
				      MSG_DONTWAIT) < 0)
		abort();
	if (efd >= 0)
		close(efd);
}

/* One call; 1 when it failed in a way that must take the connection down. */
static int one_call(struct vhost_user *vu, unsigned int which)
{
	struct kiln_error err = { 0 };
	struct vhost_user_region r = { .gpa = 0, .size = 1 << 20, .fd = 0 };
	struct vhost_user_vring_addr a = { .index = 1 };
	uint32_t base = 0;
	int ret;

	switch (which % 6) {
	case 0:
		ret = vhost_user_handshake(vu, &err);
		break;
	case 1:
		ret = vhost_user_get_vring_base(vu, which % 3, &base, &err);
		if (ret == 0 && base > UINT16_MAX)
			abort();
		break;
	case 2:
		ret = vhost_user_set_mem_table(vu, &r, 1, &err);
		break;
	case 3:
		ret = vhost_user_set_features(vu, 1ULL << 32, &err);
		break;
	case 4:
		ret = vhost_user_set_vring_addr(vu, &a, &err);
		break;
	default:
		ret = vhost_user_set_vring_kick(vu, 0, -1, &err);
		break;
	}
	if (ret == 0)
		return 0;
	if (err.msg[0] == '\0')
		abort(); /* every failure says why */
	return strstr(err.msg, "refused (status") == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_error err = { 0 };
	struct vhost_user vu;
	int sv[2], before = lowest_free_fd();
	uint8_t seq, opt;

	if (size < 2)
		return 0;
	seq = data[0];
	opt = data[1];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	vhost_user_init(&vu, sv[0], 50, "fuzz");
	if (opt & 1)
		vu.protocol = 1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK;
	send_stream(sv[1], data + 2, size - 2, opt & 2);
	shutdown(sv[1], SHUT_WR);
	/* up to four calls, picked by the bits of seq */
	for (unsigned int i = 0; i < 4; i++) {
		unsigned int which = (seq >> (2 * i)) & 3;

		if (i == 0)
			which = seq % 6;
		if (one_call(&vu, which)) {
			if (!vu.down)
				abort();
			if (vhost_user_get_vring_base(&vu, 0, &(uint32_t){ 0 },
						      &err) == 0 ||
			    err.errnum != ENOTCONN)
				abort();
			break;
		}
	}
	vhost_user_close(&vu);
	close(sv[1]);
	if (lowest_free_fd() != before)
		abort(); /* a backend's fd leaked */
	return 0;
}
