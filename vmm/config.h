/* SPDX-License-Identifier: Apache-2.0 */
/* What a VM is made of: from command-line flags or --config-file JSON. */
#ifndef KILN_VMM_CONFIG_H
#define KILN_VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "../lib/error.h"

#define VM_MAX_VCPUS	   32
#define VM_MIN_MEM_MIB	   16
#define VM_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=1 pci=off nomodule"

struct vm_config {
	char *kernel_path; /* vmlinux (ELF) or bzImage, detected */
	char *initrd_path; /* NULL: none */
	char *cmdline;	   /* NULL: VM_DEFAULT_CMDLINE */
	unsigned int vcpu_count;
	uint64_t mem_mib;
	char *console_path; /* NULL: serial output to stdout */
	bool console_in;    /* feed stdin to the serial port */
	bool entropy;	    /* a virtio-rng device ("entropy" key) */
};

void vm_config_init(struct vm_config *c);
void vm_config_destroy(struct vm_config *c);

/*
 * Parse Firecracker's JSON shape ("boot-source", "machine-config", ...)
 * into c. Unknown keys, wrong types and out-of-range values are errors.
 */
int vm_config_parse_json(struct vm_config *c, const char *json, size_t len,
			 struct kiln_error *err);
int vm_config_load_file(struct vm_config *c, const char *path,
			struct kiln_error *err);

/* Check the whole config (kernel given, 1..VM_MAX_VCPUS, memory range). */
int vm_config_validate(const struct vm_config *c, struct kiln_error *err);

#endif
