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

#define VM_MAX_DRIVES 8
#define VM_MAX_NETS   8
/*
 * Queue pairs of one virtio-net (ours: Firecracker has no such field).
 * 2 * pairs + 1 queues (the control queue) must fit VIRTIO_MAX_QUEUES,
 * which every device's snapshot state is sized by.
 */
#define VM_MAX_NET_QUEUE_PAIRS 3
#define VM_MAX_FS	       4

/* virtio-fs: the tag's bytes in config space, request queues, ring sizes */
#define VM_FS_TAG_MAX	    36
#define VM_FS_MAX_QUEUES    7
#define VM_FS_DEFAULT_QSIZE 128
#define VM_FS_MAX_QSIZE	    1024

/* boot_args, as Firecracker takes them: Linux x86's 2048 with the NUL */
#define VM_MAX_BOOT_ARGS 2047

/* Firecracker's "drives" entry. */
struct vm_drive {
	char *id;	/* drive_id */
	char *path;	/* path_on_host: a raw image */
	bool read_only; /* is_read_only */
	bool root;	/* is_root_device: root=/dev/vdX on the cmdline */
};

/* Firecracker's "network-interfaces" entry. */
struct vm_net {
	char *id;	/* iface_id */
	char *tap;	/* host_dev_name */
	uint8_t mac[6]; /* guest_mac */
	bool has_mac;
	/* queue_pairs (ours): 0 or 1 is one pair, as Firecracker's; more is
	 * VIRTIO_NET_F_MQ over as many queues of a multi-queue TAP */
	unsigned int queue_pairs;
};

/* Firecracker's "vsock". */
struct vm_vsock {
	bool enabled;
	uint32_t cid;	/* guest_cid, >= 3 */
	char *uds_path; /* host side: CONNECT <port> on this socket */
};

/*
 * kiln's own "fs" entry (Firecracker has none): a virtio-fs device whose
 * rings a vhost-user backend (virtiofsd) serves from its socket.
 */
struct vm_fs {
	char *id;	     /* fs_id */
	char *tag;	     /* what the guest mounts: 1..VM_FS_TAG_MAX bytes */
	char *socket_path;   /* the backend's vhost-user socket */
	uint32_t num_queues; /* request queues, 1..VM_FS_MAX_QUEUES */
	uint32_t queue_size; /* power of 2, 2..VM_FS_MAX_QSIZE */
};

/* Firecracker's "balloon". */
struct vm_balloon {
	bool enabled;
	uint32_t amount_mib; /* target size of the balloon */
	bool deflate_on_oom;
	uint32_t stats_interval_s; /* 0: no statistics queue polling */
};

struct vm_config {
	char *kernel_path; /* vmlinux (ELF) or bzImage, detected */
	char *initrd_path; /* NULL: none */
	char *cmdline;	   /* NULL: VM_DEFAULT_CMDLINE */
	unsigned int vcpu_count;
	uint64_t mem_mib;
	bool track_dirty_pages; /* KVM's dirty log on, for diff snapshots */
	char *console_path;	/* NULL: serial output to stdout */
	bool console_in;	/* feed stdin to the serial port */
	bool entropy;		/* a virtio-rng device ("entropy" key) */
	unsigned int ndrives;
	struct vm_drive drives[VM_MAX_DRIVES];
	unsigned int nnets;
	struct vm_net nets[VM_MAX_NETS];
	struct vm_vsock vsock;
	struct vm_balloon balloon;
	unsigned int nfs;
	struct vm_fs fs[VM_MAX_FS];
	/* Firecracker's "logger" and "metrics": main.c applies them */
	char *log_path;	  /* NULL: keep logging to stderr */
	int log_level;	  /* enum log_level; -1: not set */
	bool show_level;  /* show_level */
	bool show_origin; /* show_log_origin */
	char *metrics_path;
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

/*
 * One section of that JSON, already parsed (the API's PUT bodies):
 * "boot-source", "machine-config", "drives", "network-interfaces",
 * "vsock", "balloon", "entropy", "logger", "metrics", "fs" (kiln's own),
 * or "drive", "network-interface" and "fs-entry" for one entry, which is
 * appended. Fields are set
 * on top of what c holds; parse into a fresh config to replace.
 */
struct yajl_val_s;
int vm_config_parse_section(struct vm_config *c, const char *name,
			    struct yajl_val_s *v, struct kiln_error *err);

/*
 * c as Firecracker's full-config JSON (GET /vm/config): the shape that
 * vm_config_parse_json reads back to the same config. Absent optional
 * sections are null, as Firecracker writes them. malloc'd; NULL when
 * out of memory.
 */
char *vm_config_to_json(const struct vm_config *c);

/* Firecracker's logger levels ("Info", ...) to enum log_level, and back. */
int vm_config_log_level(const char *name, struct kiln_error *err);
const char *vm_config_log_level_name(int level);

/* "aa:bb:cc:dd:ee:ff", unicast only. */
int vm_config_parse_mac(const char *s, uint8_t mac[6], struct kiln_error *err);

/*
 * Guest RAM must be a shared, fd-backed mapping (the memfd) when this is
 * true: a vhost-user backend maps it from the fds we send. Whoever picks
 * the memory backing (anonymous or huge pages for a cold boot) asks this.
 */
static inline bool vm_config_needs_shared_mem(const struct vm_config *c)
{
	return c->nfs > 0;
}

/*
 * Command-line forms of the device sections, key=value lists:
 *   --drive id=ID,path=PATH[,ro][,root]
 *   --net id=ID,tap=NAME[,mac=XX:XX:XX:XX:XX:XX][,queue_pairs=N]
 *   --vsock cid=N,uds=PATH
 *   --balloon amount=MIB[,deflate-on-oom][,stats=SECONDS]
 *   --fs id=ID,tag=TAG,socket=PATH[,queues=N][,queue-size=N]
 */
int vm_config_add_drive(struct vm_config *c, const char *spec,
			struct kiln_error *err);
int vm_config_add_net(struct vm_config *c, const char *spec,
		      struct kiln_error *err);
int vm_config_set_vsock(struct vm_config *c, const char *spec,
			struct kiln_error *err);
int vm_config_set_balloon(struct vm_config *c, const char *spec,
			  struct kiln_error *err);
/* num_queues 1, queue_size VM_FS_DEFAULT_QSIZE */
void vm_config_fs_defaults(struct vm_fs *f);
int vm_config_add_fs(struct vm_config *c, const char *spec,
		     struct kiln_error *err);

/* Check the whole config (kernel given, 1..VM_MAX_VCPUS, memory range). */
int vm_config_validate(const struct vm_config *c, struct kiln_error *err);
/* The same for a fork's config: no boot source (the template's runs). */
int vm_config_validate_fork(const struct vm_config *c, struct kiln_error *err);

/* The parts of vm_config_validate, for the API to answer each request. */
int vm_config_validate_machine(const struct vm_config *c,
			       struct kiln_error *err);
int vm_config_validate_drive(const struct vm_drive *d, struct kiln_error *err);
int vm_config_validate_net(const struct vm_net *n, struct kiln_error *err);
int vm_config_validate_vsock(const struct vm_vsock *v, struct kiln_error *err);
int vm_config_validate_fs(const struct vm_fs *f, struct kiln_error *err);
/* boot_args: printable ASCII, at most VM_MAX_BOOT_ARGS bytes. */
int vm_config_validate_boot_args(const char *args, struct kiln_error *err);

/*
 * What the host must provide, checked when it is configured (an API
 * request, --config-file, flags) rather than at InstanceStart, as
 * Firecracker opens its files at the request (config_host.c). Each opens
 * what it names and closes it again, never blocking; InstanceStart opens
 * them for good, so a file removed in between still fails there.
 */
/* kernel (required) and initrd (NULL: none): readable non-empty files */
int vm_config_check_boot_source(const char *kernel, const char *initrd,
				struct kiln_error *err);
/* path_on_host: a file or block device, opened read-only or read-write */
int vm_config_check_drive_file(const struct vm_drive *d,
			       struct kiln_error *err);
/* host_dev_name: an existing TAP this process may attach to */
int vm_config_check_tap(const struct vm_net *n, struct kiln_error *err);
/* uds_path: free (or a stale socket) in a directory we may create it in */
int vm_config_check_vsock_path(const struct vm_vsock *v,
			       struct kiln_error *err);
/* socket_path: an existing Unix socket (the backend listens on it) */
int vm_config_check_fs_socket(const struct vm_fs *f, struct kiln_error *err);
/* All of the above for what c configures. */
int vm_config_check_host(const struct vm_config *c, struct kiln_error *err);

#endif
