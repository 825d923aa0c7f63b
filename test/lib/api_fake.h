/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fake struct api_ops for the router's tests and fuzzer: each op
 * records its call ("drive_replace(rootfs,/new.img)") and succeeds, or
 * fails with a message when told to.
 */
#ifndef KILN_TEST_API_FAKE_H
#define KILN_TEST_API_FAKE_H

#include <stdbool.h>

#include "../../vmm/api/api.h"
#include "../../vmm/virtio/balloon.h"

#define API_FAKE_LOG 2048

struct api_fake {
	char log[API_FAKE_LOG]; /* every call, "op(args);" each, truncated */
	char last[256];		/* the last call */
	unsigned int ncalls;
	const char *fail_op; /* op name to fail, NULL: none */
	char fail_msg[128];
	struct balloon_stats stats; /* what balloon_stats answers */
};

extern const struct api_ops api_fake_ops;

/* Fresh fake; ctx (may be NULL) gets cfg, the ops and this fake. */
void api_fake_init(struct api_fake *f, struct api_ctx *ctx,
		   struct vm_config *cfg);
/* Make op ("boot", "pause", ...) fail with msg until told otherwise. */
void api_fake_fail(struct api_fake *f, const char *op, const char *msg);
/* Forget the calls so far. */
void api_fake_clear(struct api_fake *f);

#endif
