/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: kiln-vmm's configuration parsers (vmm/config.c and
 * vmm/config_json.c), the ones a --config-file and the command line reach.
 *
 * Input: either a config file in Firecracker's JSON shape (anything that
 * does not start with a mode letter and a colon), read both from memory
 * (vm_config_parse_json) and from a file (vm_config_load_file), or lines
 * "X:SPEC" applied in order to one config, X one of
 *   d  --drive     n  --net     v  --vsock     b  --balloon
 *   m  a MAC for vm_config_parse_mac     l  a logger level name
 *
 * Checks beyond ASan/UBSan: every refusal says why; no tree that
 * json_parse (lib/json.c) returns nests deeper than its bound; the memory and
 * file readers agree; a config that was accepted and passes
 * vm_config_validate is written as JSON (vm_config_to_json, GET
 * /vm/config) that parses back to a config that writes the same JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "../../lib/log.h"
#include "../../lib/json.h"
#include "../../vmm/config.h"

static int memfd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	memfd = memfd_create("fuzz-config", MFD_CLOEXEC);
	if (memfd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	return 0;
}

/* A refusal must say why. */
static void refused(const struct kiln_error *err)
{
	if (err->msg[0] == '\0')
		abort();
}

/*
 * A valid c as JSON, read back, written again: the same text. (What the
 * VMM runs and GET /vm/config writes is valid; with no kernel yet, "/k"
 * stands in, as the API's PUT /boot-source would set one.)
 */
static void round_trip(struct vm_config *c)
{
	struct kiln_error err = { 0 };
	struct vm_config b;
	char *ja, *jb;

	if (c->kernel_path == NULL && (c->kernel_path = strdup("/k")) == NULL)
		abort();
	if (vm_config_validate(c, &err) < 0) {
		refused(&err);
		return;
	}
	ja = vm_config_to_json(c);
	if (ja == NULL)
		abort();
	vm_config_init(&b);
	memset(&err, 0, sizeof(err));
	if (vm_config_parse_json(&b, ja, strlen(ja), &err) < 0) {
		fprintf(stderr, "written config does not parse back: %s\n%s\n",
			err.msg, ja);
		abort();
	}
	jb = vm_config_to_json(&b);
	if (jb == NULL || strcmp(ja, jb) != 0) {
		fprintf(stderr, "round trip changed the config:\n%s\n%s\n", ja,
			jb ? jb : "(null)");
		abort();
	}
	free(ja);
	free(jb);
	vm_config_destroy(&b);
}

/* Deeper than max below v? Stops descending there. */
static bool too_deep(yajl_val v, unsigned int max)
{
	size_t n = 0;
	yajl_val *kids = NULL;

	if (YAJL_IS_OBJECT(v)) {
		n = v->u.object.len;
		kids = v->u.object.values;
	} else if (YAJL_IS_ARRAY(v)) {
		n = v->u.array.len;
		kids = v->u.array.values;
	} else {
		return false;
	}
	if (max == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (too_deep(kids[i], max - 1))
			return true;
	return false;
}

static void fuzz_json(const uint8_t *data, size_t size)
{
	struct kiln_error err = { 0 }, ferr = { 0 };
	struct vm_config c, f;
	int ret, fret;
	yajl_val tree;

	tree = json_parse((const char *)data, size, &err);
	if (tree != NULL && too_deep(tree, JSON_MAX_DEPTH))
		abort();
	yajl_tree_free(tree);
	memset(&err, 0, sizeof(err));

	vm_config_init(&c);
	ret = vm_config_parse_json(&c, (const char *)data, size, &err);
	if (ret < 0)
		refused(&err);

	/* the same bytes as a --config-file: the same answer */
	vm_config_init(&f);
	if (ftruncate(memfd, 0) < 0 ||
	    pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	fret = vm_config_load_file(&f, path, &ferr);
	if (fret != ret)
		abort();
	if (fret < 0) {
		refused(&ferr);
	} else {
		char *a = vm_config_to_json(&c), *b = vm_config_to_json(&f);

		if (a == NULL || b == NULL || strcmp(a, b) != 0)
			abort();
		free(a);
		free(b);
		round_trip(&c);
	}
	vm_config_destroy(&c);
	vm_config_destroy(&f);
}

static void fuzz_specs(const uint8_t *data, size_t size)
{
	struct vm_config c;
	char *text = strndup((const char *)data, size), *line, *save = NULL;
	bool any = false, failed = false;

	if (text == NULL)
		abort();
	vm_config_init(&c);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		struct kiln_error err = { 0 };
		uint8_t mac[6];
		const char *spec = line + 2;
		int ret;

		if (strlen(line) < 2 || line[1] != ':')
			continue;
		switch (line[0]) {
		case 'd':
			ret = vm_config_add_drive(&c, spec, &err);
			break;
		case 'n':
			ret = vm_config_add_net(&c, spec, &err);
			break;
		case 'v':
			ret = vm_config_set_vsock(&c, spec, &err);
			break;
		case 'b':
			ret = vm_config_set_balloon(&c, spec, &err);
			break;
		case 'm':
			ret = vm_config_parse_mac(spec, mac, &err);
			if (ret == 0 && (mac[0] & 1))
				abort(); /* multicast: never a guest MAC */
			break;
		case 'l':
			ret = vm_config_log_level(spec, &err);
			if (ret >= 0 &&
			    vm_config_log_level(vm_config_log_level_name(ret),
						&err) != ret)
				abort();
			break;
		default:
			continue;
		}
		if (ret < 0) {
			/* kiln-vmm stops at the first bad option */
			refused(&err);
			failed = true;
			break;
		}
		any = true;
	}
	if (any && !failed)
		round_trip(&c);
	vm_config_destroy(&c);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 2 && data[1] == ':' && strchr("dnvbml", data[0]) &&
	    data[0] != '\0')
		fuzz_specs(data, size);
	else
		fuzz_json(data, size);
	return 0;
}
