/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the ttrpc server's side of a connection. The input is
 * the byte stream a client sends: frames read with ttrpc_read_msg (from a
 * memfd, so short input is an EOF mid-frame), each Request dispatched
 * through a method table built from the agent's service descriptor, so
 * every request message type of the agent API gets unpacked. Handlers
 * re-pack what they got and answer OK (empty or Empty) or an error.
 * Every answer must be a Response that decodes, with a printable status
 * message.
 *
 * Input: one byte of handler mode, then frames.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/ttrpc.h"
#include "agent/proto/agent.pb-c.h"
#include "lib/ttrpc.pb-c.h"

static struct ttrpc_method *methods;
static struct ttrpc_server server;
static uint8_t mode;
static int memfd = -1;

static int fuzz_handler(void *ctx, const ProtobufCMessage *req,
			ProtobufCMessage **resp, struct kiln_error *err)
{
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(n ? n : 1);

	/* what a real handler does with the message: read every field */
	if (buf == NULL || protobuf_c_message_pack(req, buf) != n)
		abort();
	free(buf);
	switch (mode & 3) {
	case 0:
		return TTRPC_OK; /* NULL: an empty message */
	case 1:
		*resp = ttrpc_alloc_msg(&kiln__agent__v1__empty__descriptor);
		return TTRPC_OK;
	case 2:
		kiln_error_set(err, 0, "no such container \x01\xff");
		return mode >> 2; /* any code, valid or not */
	default:
		return kiln_error_set(err, 2, "open `%s`", "/x");
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const ProtobufCServiceDescriptor *d =
		&kiln__agent__v1__agent__descriptor;

	log_set_level(LOG_ERROR);
	methods = calloc(d->n_methods, sizeof(*methods));
	if (methods == NULL)
		abort();
	for (unsigned int i = 0; i < d->n_methods; i++)
		methods[i] = (struct ttrpc_method){ d->name, d->methods[i].name,
						    d->methods[i].input,
						    fuzz_handler };
	server = (struct ttrpc_server){ methods, d->n_methods, NULL };
	memfd = memfd_create("fuzz_ttrpc", 0);
	if (memfd < 0)
		abort();
	return 0;
}

static void check_response(const uint8_t *out, size_t len)
{
	Ttrpc__Response *r = ttrpc__response__unpack(NULL, len, out);

	if (r == NULL || r->status == NULL || len > TTRPC_MAX_MSG)
		abort();
	for (const char *s = r->status->message; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			abort();
	if (r->status->code < 0 || r->status->code > 16)
		abort();
	ttrpc__response__free_unpacked(r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_error err;
	struct ttrpc_header h;
	uint8_t *payload;

	if (size < 1)
		return 0;
	mode = data[0];
	if (ftruncate(memfd, 0) < 0 ||
	    pwrite(memfd, data + 1, size - 1, 0) != (ssize_t)(size - 1) ||
	    lseek(memfd, 0, SEEK_SET) != 0)
		abort();
	/* the server's reader loop: stop at the first framing error */
	while (ttrpc_read_msg(memfd, &h, &payload, &err) == 0) {
		uint8_t *out;
		size_t out_len;

		if (h.type == TTRPC_REQUEST) {
			if (ttrpc_server_dispatch(&server, payload, h.length,
						  &out, &out_len) < 0)
				abort();
			check_response(out, out_len);
			free(out);
		}
		free(payload);
	}
	return 0;
}
