/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "../../vmm/config.h"
#include "tap.h"

static int parse(struct vm_config *c, const char *json, struct kiln_error *err)
{
	vm_config_destroy(c);
	vm_config_init(c);
	return vm_config_parse_json(c, json, strlen(json), err);
}

static void bad(const char *json, const char *want)
{
	struct kiln_error err = { 0 };
	struct vm_config c;

	vm_config_init(&c);
	is_int(vm_config_parse_json(&c, json, strlen(json), &err), -1,
	       "rejected: %s", json);
	ok(strstr(err.msg, want) != NULL, "  message `%s` has `%s`", err.msg,
	   want);
	vm_config_destroy(&c);
}

int main(void)
{
	struct kiln_error err = { 0 };
	struct vm_config c;

	vm_config_init(&c);
	is_int(parse(&c,
		     "{\"boot-source\": {\"kernel_image_path\": \"/k\","
		     " \"boot_args\": \"console=ttyS0\", \"initrd_path\": "
		     "\"/i\"},"
		     " \"machine-config\": {\"vcpu_count\": 2, "
		     "\"mem_size_mib\": 256,"
		     " \"smt\": false}, \"drives\": []}",
		     &err),
	       0, "Firecracker's shape parses");
	ok(c.kernel_path && strcmp(c.kernel_path, "/k") == 0, "kernel path");
	ok(c.initrd_path && strcmp(c.initrd_path, "/i") == 0, "initrd path");
	ok(c.cmdline && strcmp(c.cmdline, "console=ttyS0") == 0, "boot args");
	is_int(c.vcpu_count, 2, "vcpu_count");
	is_int(c.mem_mib, 256, "mem_size_mib");
	is_int(vm_config_validate(&c, &err), 0, "valid");

	c.vcpu_count = 0;
	is_int(vm_config_validate(&c, &err), -1, "0 vCPUs invalid");
	c.vcpu_count = VM_MAX_VCPUS + 1;
	is_int(vm_config_validate(&c, &err), -1, "too many vCPUs invalid");
	c.vcpu_count = 1;
	c.mem_mib = 8;
	is_int(vm_config_validate(&c, &err), -1, "8 MiB invalid");
	vm_config_destroy(&c);
	vm_config_init(&c);
	is_int(vm_config_validate(&c, &err), -1, "no kernel invalid");
	ok(strstr(err.msg, "no kernel") != NULL, "  says so: %s", err.msg);
	vm_config_destroy(&c);

	bad("{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"bogus\": 1}",
	    "unknown key `bogus`");
	bad("{\"boot-source\": {\"kernel_image_path\": \"/k\", \"x\": 1}}",
	    "unknown key `boot-source.x`");
	bad("{\"machine-config\": {\"vcpu_count\": \"2\"}}", "must be an "
							     "integer");
	bad("{\"machine-config\": {\"vcpu_count\": -1}}", "out of range");
	bad("{\"machine-config\": {\"mem_size_mib\": 1.5}}", "must be an "
							     "integer");
	bad("{\"machine-config\": {\"smt\": true}}", "not supported");
	bad("{\"boot-source\": {}}", "kernel_image_path` is missing");
	bad("{\"boot-source\": {\"kernel_image_path\": 5}}", "must be a "
							     "string");
	bad("{\"drives\": [{\"drive_id\": \"rootfs\"}]}", "not supported yet");
	bad("{\"entropy\": {\"rate_limiter\": {}}}", "not supported yet");
	bad("{\"entropy\": 1}", "must be an object");
	is_int(parse(&c, "{\"entropy\": {}}", &err), 0, "entropy {} parses");
	ok(c.entropy, "entropy enables virtio-rng");
	vm_config_destroy(&c);
	bad("{\"boot-source\": ", "invalid JSON");
	bad("[1, 2]", "top level must be an object");
	bad("", "invalid JSON");
	bad("{\"boot-source\": {\"kernel_image_path\": \"/k\"}} trailing", "inv"
									   "ali"
									   "d "
									   "JSO"
									   "N");
	{
		const char nul[] = "{\"a\":\0 1}";

		vm_config_init(&c);
		is_int(vm_config_parse_json(&c, nul, sizeof(nul) - 1, &err), -1,
		       "NUL byte refused");
		vm_config_destroy(&c);
	}
	vm_config_init(&c);
	is_int(vm_config_load_file(&c, "/nonexistent.json", &err), -1,
	       "missing file");
	ok(strstr(err.msg, "/nonexistent.json") != NULL, "  names it: %s",
	   err.msg);
	is_int(vm_config_load_file(&c, "/dev/null", &err), -1,
	       "not a regular file");
	vm_config_destroy(&c);
	return tap_done();
}
