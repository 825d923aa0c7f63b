/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: Firecracker's API, from client bytes to the router
 * and back, over a fresh vm_config and the fake ops.
 *
 * Input: one control byte, then either
 *   - (control bit 0 clear) raw HTTP fed to http_conn_feed in pieces
 *     whose sizes come from the control byte, so keep-alive sequences of
 *     requests reach api_dispatch through the real parser; or
 *   - (bit 0 set) lines "METHOD PATH BODY...", one request each, handed
 *     to api_dispatch directly (the body is the rest of the line).
 * Bits 4-7 pick one fake op that fails (0: none).
 *
 * Checks beyond ASan/UBSan: every answer is 200 with a JSON body, 204
 * with none, or 400/500 with exactly {"fault_message": "..."}; and GET
 * /vm/config always reads back as a --config-file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "../../lib/log.h"
#include "../../vmm/api/api.h"
#include "../lib/api_fake.h"

static const char *const fail_ops[16] = {
	NULL,
	"boot",
	"pause",
	"resume",
	"ctrl_alt_del",
	"logger",
	"metrics_open",
	"metrics_flush",
	"drive_replace",
	"balloon_set_target",
	"balloon_stats",
	"balloon_set_interval",
	"check_boot_source",
	"check_drive",
	"check_net",
	"check_vsock",
};

struct fuzz {
	struct vm_config cfg;
	struct api_ctx ctx;
	struct api_fake fake;
	unsigned int answered; /* requests answered since the output drained */
};

static void check(const struct api_request *req,
		  const struct api_response *resp)
{
	char errbuf[128];
	yajl_val v;

	if (resp->status == 204) {
		if (resp->body != NULL)
			abort();
		return;
	}
	if (resp->body == NULL)
		abort(); /* out of memory is the only excuse, not here */
	v = yajl_tree_parse(resp->body, errbuf, sizeof(errbuf));
	if (v == NULL || !YAJL_IS_OBJECT(v))
		abort();
	if (resp->status == 400 || resp->status == 500) {
		if (v->u.object.len != 1 ||
		    strcmp(v->u.object.keys[0], "fault_message") != 0 ||
		    !YAJL_IS_STRING(v->u.object.values[0]) ||
		    v->u.object.values[0]->u.string[0] == '\0')
			abort();
	} else if (resp->status != 200) {
		abort();
	}
	yajl_tree_free(v);
	if (resp->status == 200 && strstr(req->path, "vm/config") != NULL) {
		struct kiln_error err;
		struct vm_config c;
		int ret;

		vm_config_init(&c);
		ret = vm_config_parse_json(&c, resp->body, strlen(resp->body),
					   &err);
		vm_config_destroy(&c);
		if (ret < 0)
			abort();
	}
}

static void on_request(void *opaque, const struct api_request *req,
		       struct api_response *resp)
{
	struct fuzz *f = opaque;

	api_dispatch(&f->ctx, req, resp);
	check(req, resp);
	f->answered++;
}

static void run_lines(struct fuzz *f, const char *data, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) : len;
		struct api_request req;
		struct api_response resp;
		char *line = strndup(data, n), *sp, *body;

		data += n + (nl != NULL);
		len -= n + (nl != NULL);
		if (line == NULL)
			return;
		memset(&req, 0, sizeof(req));
		sp = strchr(line, ' ');
		body = "";
		if (sp != NULL) {
			*sp++ = '\0';
			body = strchr(sp, ' ');
			if (body != NULL)
				*body++ = '\0';
			else
				body = "";
			snprintf(req.path, sizeof(req.path), "%s", sp);
		}
		snprintf(req.method, sizeof(req.method), "%s", line);
		req.body = body;
		req.body_len = strlen(body);
		on_request(f, &req, &resp);
		free(resp.body);
		free(line);
	}
}

static void run_http(struct fuzz *f, uint8_t ctl, const char *data, size_t len)
{
	struct http_conn *c = http_conn_new();
	size_t piece = 1 + (ctl >> 1) * 7, out_len;

	if (c == NULL)
		return;
	while (len > 0) {
		size_t n = len < piece ? len : piece;

		int ret = http_conn_feed(c, data, n, on_request, f);

		/* only once something is queued: http.c hands out NULL + 0
		 * before that */
		if (f->answered > 0) {
			http_conn_output(c, &out_len);
			http_conn_consume(c, out_len);
			f->answered = 0;
		}
		if (ret != 0)
			break;
		data += n;
		len -= n;
	}
	http_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz f;
	static bool quiet;
	uint8_t ctl;

	if (!quiet) {
		log_set_level(LOG_OFF);
		quiet = true;
	}
	if (size < 1)
		return 0;
	ctl = data[0];
	vm_config_init(&f.cfg);
	api_fake_init(&f.fake, &f.ctx, &f.cfg);
	f.answered = 0;
	if (fail_ops[ctl >> 4] != NULL)
		api_fake_fail(&f.fake, fail_ops[ctl >> 4], "fuzz says no");
	if (ctl & 1)
		run_lines(&f, (const char *)data + 1, size - 1);
	else
		run_http(&f, ctl, (const char *)data + 1, size - 1);
	vm_config_destroy(&f.cfg);
	return 0;
}
