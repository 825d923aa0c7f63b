/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kiln, the OCI runtime CLI: what every verb shares. main.c parses runc's
 * global flags into a struct kiln_cli and calls the verb, one file each.
 */
#ifndef KILN_RUNTIME_KILN_H
#define KILN_RUNTIME_KILN_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/error.h"
#include "../oci/spec.h"
#include "agent/proto/agent.pb-c.h"

#define KILN_DEFAULT_ROOT      "/run/kiln"
#define KILN_CONFIG_PATH       "/etc/kiln/config.json"
#define KILN_DEFAULT_CACHE     "/var/lib/kiln/images"
#define KILN_DEFAULT_VIRTIOFSD "/usr/lib/qemu/virtiofsd"
#define KILN_DEFAULT_MEM_MIB   256
#define KILN_MEM_OVERHEAD_MIB  64 /* guest kernel and agent, beyond a limit */
#define KILN_MAX_VCPUS	       32
#define KILN_MAX_MEM_MIB       (1u << 20)

struct kiln_cli {
	const char *root; /* --root: state directories */
	const char *log;  /* --log FILE, or NULL */
	bool log_json;	  /* --log-format json */
	bool debug;
	bool systemd_cgroup;
	bool no_jail;	  /* --no-jail: kiln-vmm unjailed (debugging) */
	uint64_t main_ns; /* util_now_ns() as main() began ($KILN_TIMING) */
};

/*
 * A verb: argv[0] is its name, argv[1..] its own flags and arguments.
 * Returns the process's exit status; errors go into err (status 1).
 */
typedef int (*kiln_verb_fn)(const struct kiln_cli *cli, int argc, char **argv,
			    struct kiln_error *err);

int verb_create(const struct kiln_cli *cli, int argc, char **argv,
		struct kiln_error *err);
int verb_delete(const struct kiln_cli *cli, int argc, char **argv,
		struct kiln_error *err);
int verb_exec(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err);
int verb_features(const struct kiln_cli *cli, int argc, char **argv,
		  struct kiln_error *err);
int verb_kill(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err);
int verb_pause(const struct kiln_cli *cli, int argc, char **argv,
	       struct kiln_error *err);
int verb_resume(const struct kiln_cli *cli, int argc, char **argv,
		struct kiln_error *err);
int verb_ps(const struct kiln_cli *cli, int argc, char **argv,
	    struct kiln_error *err);
int verb_run(const struct kiln_cli *cli, int argc, char **argv,
	     struct kiln_error *err);
int verb_start(const struct kiln_cli *cli, int argc, char **argv,
	       struct kiln_error *err);
int verb_list(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err);
int verb_spec(const struct kiln_cli *cli, int argc, char **argv,
	      struct kiln_error *err);
/* The config.json `kiln spec` writes (runc's example, hostname kiln). */
const char *kiln_default_spec(void);
int verb_state(const struct kiln_cli *cli, int argc, char **argv,
	       struct kiln_error *err);
int verb_update(const struct kiln_cli *cli, int argc, char **argv,
		struct kiln_error *err);

/*
 * runc's flag syntax (urfave/cli): -name and --name, the value as the next
 * argument or after '='. Matches argv[*i] against name; a flag with a
 * value stores it in *value and steps *i past it. 1 when matched, 0 when
 * not, -1 with err when the value is missing.
 */
int cli_flag(int argc, char **argv, int *i, const char *name,
	     const char **value, struct kiln_error *err);
/* The same for a boolean flag (no value; "--name=true|false" accepted). */
int cli_bool(char **argv, int i, const char *name, bool *out);

struct container_state;
/* Open ROOT/ID (its fd) and load its state; -1 with err. */
int container_open(const struct kiln_cli *cli, const char *id,
		   struct container_state *s, struct kiln_error *err);

/* delete: whatever is left of the container killed, poststop hooks run,
 * its state gone. Not while it runs unless force. */
int container_remove(const struct kiln_cli *cli, const char *id, bool force,
		     struct kiln_error *err);

/* "KILL", "SIGKILL" or "9"; -1 with err. */
int cli_signal(const char *s, struct kiln_error *err);

/* ---- where the VM comes from (vmconf.c) ------------------------------- */

struct vm_config {
	char *vmm, *kernel, *initramfs; /* absolute paths */
	char *virtiofsd;		/* serves writable host directories */
	char *cache_dir;		/* layer images (oci/layer.c) */
	uint32_t vcpus, memory_mib;
	uint32_t boot_timeout_s; /* until the agent answers */
	bool templates;		 /* fork from warm templates (template.c) */
	bool jail;		 /* kiln-vmm --jail (jail.c); default true */
	bool pod_volumes;	 /* pods' VMs share host dirs (podfs.c) */
	char *template_dir;	 /* NULL: <--root>/templates */
};

/* Defaults, then KILN_CONFIG or /etc/kiln/config.json when present. */
int vm_config_load(struct vm_config *c, struct kiln_error *err);
/* A container's own size: linux.resources, then io.kiln.* annotations. */
int vm_config_size(struct vm_config *c, const struct oci_spec *spec,
		   struct kiln_error *err);
/* kiln-vmm, kernel and initramfs are there: else one error naming it. */
int vm_config_check(const struct vm_config *c, struct kiln_error *err);
void vm_config_clear(struct vm_config *c);

/* ---- the VM (vm.c) ------------------------------------------------------ */

/*
 * files of a VM in its state directory (the pid process's cwd). The
 * sockets kiln-vmm makes live in VM_DIR, a folder of their own (the jail
 * uid's: the only one of the state directory bound into its jail);
 * VM_VSOCK and VM_API in the state directory are symlinks to them.
 */
#define VM_DIR	      "vm"
#define VM_JAIL_ROOT  "jailroot" /* --jail root: gone once kiln-vmm pivoted */
#define VM_VSOCK      "vsock.sock"
#define VM_LOG	      "vmm.log"
#define VM_LOG_SUP    "kiln.log" /* the pid process's own */
#define VM_DRIVES_MAX 8		 /* kiln-vmm's VM_MAX_DRIVES */
#define VM_NETS_MAX   8		 /* kiln-vmm's VM_MAX_NETS */
#define VM_FS_MAX     4		 /* kiln-vmm's VM_MAX_FS */
#define VM_FS_TAG     "kilnfs"	 /* fs i's tag in the guest: kilnfs<i> */
/* a pod's shared folder's tag (podfs.c), the agent's AGENT_PODFS_TAG */
#define VM_PODFS_TAG "kilnpod"
/* image layers + the writable one; more layers are flattened into one */
#define VM_ROOTFS_DRIVES_MAX 6
#define KILN_UPPER_NAME	     "kiln-upper.ext4"
#define KILN_UPPER_MIB	     8192 /* sparse: costs what is written */

/* ---- host-side confinement of kiln-vmm (confine.c) -------------------- */

struct confine {
	const char *apparmor; /* profile for kiln-vmm's exec, or NULL */
	const char *selinux;  /* label for kiln-vmm's exec, or NULL */
	bool has_oom_score_adj;
	int32_t oom_score_adj;
};

bool confine_apparmor_enabled(void);
bool confine_selinux_enabled(void);
/* What p asks; refused by field where the host cannot give it. */
int confine_plan(const struct oci_process *p, struct confine *c,
		 struct kiln_error *err);
/* In the child about to exec kiln-vmm; -1 with a message on stderr. */
int confine_apply(const struct confine *c);

/* A VM's jail uid (= gid), reserved (jail.c); uid 0: unjailed. */
struct vm_jail {
	uid_t uid;
	int lock_fd; /* JAIL_LOCK_DIR/UID.kiln, held while we live */
};

/* Pick a free uid of the range and hold it; -1 with err when none. */
int vm_jail_reserve(struct vm_jail *j, struct kiln_error *err);
void vm_jail_release(struct vm_jail *j);
/* Does a kiln-vmm hold uid's lock? */
bool vm_jail_uid_busy(uid_t uid);
/* Wait up to ms until no kiln-vmm holds uid; 0 when free. */
int vm_jail_wait_free(uid_t uid, unsigned int ms);
/* In the state directory dirfd: VM_DIR (the jail uid's), the VM_VSOCK
 * and VM_API symlinks into it, and the uid's record for delete. */
int vm_jail_dir(const struct vm_jail *j, int dirfd, struct kiln_error *err);
/* path (a socket we made for kiln-vmm) the jail uid's; 0 unjailed. */
int vm_jail_own(const struct vm_jail *j, const char *path,
		struct kiln_error *err);
/* A drive file usable by the jail uid: a writable one its own, a
 * read-only one readable by all. */
int vm_jail_drive(const struct vm_jail *j, const char *path, bool readonly,
		  struct kiln_error *err);
/* The jailed kiln-vmm: the only child of its waiter; -1 when none. */
pid_t vm_jail_vmm_pid(pid_t waiter);
/* kiln delete: wait for the VM's uid to be free, remove VM_DIR and the
 * jail folder if left. */
void vm_jail_remove(int dirfd);
/* Remove folder name of parent with the files in it (one level). */
void vm_dir_remove(int parent, const char *name);
/* Unlink the files in folder name (under parent) whose names start with
 * prefix ("": all). */
void vm_dir_unlink(int parent, const char *name, const char *prefix);
/* Tests: another folder for the locks; NULL: JAIL_LOCK_DIR. */
void vm_jail_set_lock_dir(const char *dir);

struct vm_plan {
	const struct vm_config *conf;
	struct vm_jail jail; /* uid 0: kiln-vmm unjailed */
	struct confine confine;
	/* drive i: its file, mode, size, and its name in the guest (a
	 * string of the request that names it) */
	char *drive_path[VM_DRIVES_MAX];
	bool drive_ro[VM_DRIVES_MAX];
	uint64_t drive_bytes[VM_DRIVES_MAX];
	char *drive_dev[VM_DRIVES_MAX];
	size_t n_drives;
	bool pod;    /* a pod's sandbox: an API socket, spare drive slots */
	bool member; /* its drives go into its pod sandbox's spare slots */
	char *nets[VM_NETS_MAX]; /* --net arguments (net.c) */
	size_t n_nets;
	/* host directory i, served by a virtiofsd of its own as the
	 * virtio-fs device tagged VM_FS_TAG<i> */
	char *fs_source[VM_FS_MAX];
	size_t n_fs;
	/* io.kiln.volume-cache: fast: virtiofsd's 1 s attribute and entry
	 * timeouts, not 0 (request.c, vm.c fs_start) */
	bool fs_fast;
	/*
	 * Pod volumes (podfs.c): the pod's folder (absolute) that its
	 * sandbox's VM shares over virtio-fs, where this container's host
	 * directories are bound as <podfs_id>/<i>; NULL: the pod has none.
	 * podfs_dev: fs 0 is that share (a sandbox's), tagged VM_PODFS_TAG.
	 */
	char *podfs;
	const char *podfs_id;
	bool podfs_dev;
	const char *console; /* serial output file, NULL: none */
	char *template_dir;  /* fork from the template there; NULL: boot */
	bool prefault;	     /* the template has its prefault list */
	dev_t template_dev;  /* its fork socket's, when picked: which */
	ino_t template_ino;  /* template of that folder it was */
};

/* Owned by the pid process's main thread. */
struct vm {
	pid_t pid; /* kiln-vmm, a child of the pid process */
	uint64_t start;
	pid_t fs_pid[VM_FS_MAX]; /* virtiofsd i, a child too; 0: none */
	size_t n_fs;
};

#define VM_GUEST_CMDLINE                                         \
	"console=ttyS0 reboot=k panic=1 pci=off nomodule quiet " \
	"rdinit=/sbin/kiln-agent"

struct agent_request;
/* Add a drive: its name in the guest ("/dev/vdc", kept in r), or NULL
 * with err. */
char *vm_plan_drive(struct vm_plan *p, struct agent_request *r,
		    const char *path, bool readonly, struct kiln_error *err);
/* Add a host directory shared over virtio-fs: its tag in the guest
 * (kept in r), or NULL with err. */
/*
 * After a kill -9 of the pid process: the pid files its virtiofsd daemons
 * left in /var/run/virtiofsd (named after their sockets in state_dir).
 */
void vm_fs_leftovers_remove(const char *state_dir);
char *vm_plan_fs(struct vm_plan *p, struct agent_request *r, const char *dir,
		 struct kiln_error *err);
/* The guest's names when the drives sit in slots[i] of another's VM. */
void vm_plan_move(struct vm_plan *p, const size_t *slots);
void vm_plan_clear(struct vm_plan *p);
void vm_drive_name(size_t i, char out[16]);
/*
 * kiln-vmm's flags for where c's VM comes from (a fork of fork_sock, or
 * a boot of c's kernel) and its size, into argv (at most 10); b holds
 * their numbers. Returns how many.
 */
struct vm_argv_buf {
	char vcpus[16], mem[16];
};
size_t vm_argv_source(const struct vm_config *c, const char *fork_sock,
		      struct vm_argv_buf *b, char **argv);
/* One request to kiln-vmm's API at sock (waiting for the socket to
 * appear), a JSON body; 0 on a 2xx answer, else -1 with err. */
int vm_api_call(const char *sock, const char *method, const char *path,
		const char *body, struct kiln_error *err);
/* The same with file_fd handed over along (SCM_RIGHTS; ours, for PATCH
 * /drives: docs/api.md); file_fd stays the caller's. */
int vm_api_call_fd(const char *sock, const char *method, const char *path,
		   const char *body, int file_fd, struct kiln_error *err);
#define VM_API	      "api.sock" /* a pod sandbox's kiln-vmm API */
#define VM_SLOT	      "slot.img" /* the placeholder in a spare drive slot */
#define VM_PREFAULT   "prefault" /* a template's list (lib/prefault.h) */
#define VM_SLOT_BYTES (1 << 20)
/* Start the VM in the current directory; it dies with the caller. */
int vm_start(const struct vm_plan *p, struct vm *vm, struct kiln_error *err);
/* Wait up to grace_ms for it to end, then SIGKILL; its wait status.
 * Its virtiofsd daemons end with it. */
int vm_stop(struct vm *vm, unsigned int grace_ms);
/* A child the pid process reaped (waitpid(-1)): true when it was one of
 * vm's virtiofsd daemons, now forgotten. */
bool vm_fs_reaped(struct vm *vm, pid_t pid);
void vm_last_log_line(char *buf, size_t len);

/* ---- warm templates (template.c) --------------------------------------- */

/* The drive slots of p's template: part of its shape. */
size_t template_slots(const struct vm_plan *p);
/* A built template of p's shape: p->template_dir set, 0; else -1. */
int template_pick(struct vm_plan *p, const char *root);
/* The picked template did not serve: forget it (a new one may be built). */
void template_forget(struct vm_plan *p);
/* Build p's template in the background, out of the caller's cgroup and
 * network namespace (host_netns: the runtime's), unless there is one. */
void template_spawn(const struct vm_plan *p, const char *root, int host_netns);
/*
 * The picked template has no prefault list yet and vmm (a fork of it,
 * the jail's waiter or kiln-vmm itself) has just created its container:
 * list the pages of guest RAM the fork has written so far (copied from
 * the template), for the template's later forks to copy before they run.
 * Best effort: what fails is logged, and forks go on without a list.
 */
void template_prefault_record(const struct vm_plan *p, pid_t vmm);
/* The MAC of a template's network interface i (a fork's until told). */
void template_mac(size_t i, uint8_t mac[6]);
int verb_templates(const struct kiln_cli *cli, int argc, char **argv,
		   struct kiln_error *err);

/* ---- requests to the agent (request.c, rootfs.c) ----------------------- */

/* the guest's directory of a pod's emptyDir volumes (the agent's
 * AGENT_VOLUMES_DIR: a bind from a directory there makes it) */
#define AGENT_VOLUMES	  "/run/kiln/volumes"
#define REQUEST_OWNED_MAX 256
#define REQUEST_FILE_MAX  (1u << 20) /* bytes of one carried file */
#define REQUEST_FILES_MAX (3u << 20) /* ... of all (a ttrpc message: 4 MiB) */

/* What a request allocated; it points into the oci_spec otherwise. */
struct agent_request {
	void *owned[REQUEST_OWNED_MAX];
	size_t n_owned;
	size_t file_bytes;
};

void agent_request_free(struct agent_request *r);
int request_process(struct agent_request *r, const struct oci_process *p,
		    Kiln__Agent__V1__Process *out, struct kiln_error *err);
/*
 * The container's annotation io.kiln.volume-cache: `coherent` (its
 * absence too) or `fast`, into plan->fs_fast; anything else refused.
 */
#define VOLUME_CACHE_ANNOTATION "io.kiln.volume-cache"
int request_volume_cache(const struct oci_spec *spec, struct vm_plan *plan,
			 struct kiln_error *err);
/* virtiofsd's cache options for a plan: NULL-terminated, static */
const char *const *vm_fs_cache_args(const struct vm_plan *p);
int request_mounts(struct agent_request *r, const struct oci_spec *spec,
		   struct vm_plan *plan, const char *cache_dir,
		   Kiln__Agent__V1__CreateContainerRequest *req,
		   struct kiln_error *err);
Kiln__Agent__V1__Mount *request_file_mount(struct agent_request *r, size_t i,
					   const struct oci_mount *m,
					   struct kiln_error *err);
/* BUNDLE/root.path, absolute */
char *rootfs_path(const struct oci_spec *spec, const char *bundle,
		  struct kiln_error *err);
int rootfs_plan(struct agent_request *r, const struct oci_spec *spec,
		const char *rootfs, struct vm_plan *plan, const char *cache_dir,
		Kiln__Agent__V1__Rootfs *out, struct kiln_error *err);

/* linux.resources for CreateContainer (none: req->resources stays NULL) */
int request_resources(struct agent_request *r, const struct oci_spec *spec,
		      Kiln__Agent__V1__CreateContainerRequest *req,
		      struct kiln_error *err);

/* ---- linux.resources for the agent (resources.c) ----------------------- */

void resources_init(Kiln__Agent__V1__Resources *out);
/* Free the cpuset strings (malloc'd here) and reset. */
void resources_clear(Kiln__Agent__V1__Resources *r);
bool resources_empty(const Kiln__Agent__V1__Resources *r);
/* config.json's, at create: what is set, or one error naming a field the
 * guest cannot apply */
int resources_from_oci(const struct oci_resources *o,
		       Kiln__Agent__V1__Resources *out, struct kiln_error *err);
/* docker's sizes ("64m", "1.5g", "1024") and "-1" */
int resources_parse_bytes(const char *s, int64_t *out, struct kiln_error *err);
/* One of runc update's flags (name without dashes): 0 when taken, 1 when
 * not one of them, -1 with err. 0 leaves a value, -1 lifts a limit. */
int resources_flag(const char *flag, const char *value,
		   Kiln__Agent__V1__Resources *r, struct kiln_error *err);
/* runc update -r: an OCI LinuxResources object, added into r */
int resources_from_json(const char *text, size_t len,
			Kiln__Agent__V1__Resources *r, struct kiln_error *err);

/* ---- a guest process's stdio on the host (stdio.c) -------------------- */

struct agent_client;

struct stdio_relay {
	int from, to;
	bool to_guest; /* half-close `to` when `from` ends */
	int done_fd;
};

struct stdio_set {
	struct stdio_relay relays[3];
	size_t n_relays, n_outputs, n_ended;
	int done_pipe[2];
	int pty;	 /* the slave we relay, with a console socket; or -1 */
	bool streams[3]; /* stdin, stdout, stderr relayed (stdio_request) */
	/* each stream's connection made ahead, by a thread of its own until
	 * stdio_attach joins it (stdio_preconnect) */
	struct stdio_pre {
		const char *uds;
		int fd;
		pthread_t thread;
		bool running;
	} pre[3];
};

int stdio_init(struct stdio_set *io, struct kiln_error *err);
/* Connect to --console-socket PATH; the fd, or -1 with err. */
int stdio_console_connect(const char *path, struct kiln_error *err);
/* A pty whose master goes to console_fd (closed); we keep the slave,
 * as our controlling terminal so that a resize is a SIGWINCH. */
int stdio_pty_open(struct stdio_set *io, int console_fd,
		   struct kiln_error *err);
/*
 * The streams a guest process gets, into p and io: with a terminal, the
 * pty's (stdin and stdout); else each of our fds 0-2 but one that is
 * /dev/null, which the guest's own /dev/null stands for (the same bytes,
 * none, without a vsock connection and a copy thread at each end).
 */
void stdio_request(struct stdio_set *io, bool terminal,
		   Kiln__Agent__V1__Process *p);
/*
 * The connections of those streams, begun now on threads of their own,
 * while the agent creates the process (they wait there for their attach
 * line): stdio_attach then spends one round trip to the guest per
 * stream, not two.
 */
void stdio_preconnect(struct stdio_set *io, struct agent_client *c);
/* Attach the streams stdio_request asked for of guest container ctr's
 * process and start copying (exec_id "": its init). */
int stdio_attach(struct stdio_set *io, struct agent_client *c, const char *ctr,
		 const char *exec_id, struct kiln_error *err);
/* Wait until the output streams ended, at most ms. */
void stdio_drain(struct stdio_set *io, unsigned int ms);
/* The pty's size to the guest's. */
void stdio_resize(struct stdio_set *io, struct agent_client *c, const char *ctr,
		  const char *exec_id);

/* ---- the host cgroup (cgroup.c, cgroup_limits.c) ----------------------- */

/* Beyond the guest's RAM, what the VM's cgroup may hold: kiln-vmm's own
 * heap, stacks and KVM structures, the pid process, virtiofsd, page cache
 * of the drive images (see docs/threat-model.md "Cgroup quotas"). */
#define KILN_HOST_MEM_OVERHEAD_MIB 64
/* Beyond the container's CPU quota, in % of one CPU: the guest's kernel and
 * agent and kiln-vmm's device work, else a busy container (held to its
 * quota in the guest as well) leaves its agent no time to answer. */
#define KILN_HOST_CPU_OVERHEAD_PCT 5
/* Tasks of the VM's cgroup: the pid process and its threads and hooks,
 * kiln-vmm's non-vCPU threads; plus one per vCPU, plus a virtiofsd with
 * its thread pool (64) per shared directory. */
#define KILN_HOST_PIDS_BASE   128
#define KILN_HOST_PIDS_PER_FS 80
#define CGROUP_RECORD	      "cgroup" /* in the state dir: the path */
#define CGROUP_WRITES_MAX     8

/* Host limits for a whole VM; 0 leaves a value as it is. */
struct cgroup_limits {
	int64_t cpu_quota;   /* µs per period, -1: none ("max") */
	uint64_t cpu_period; /* µs */
	uint64_t cpu_shares; /* v1's; v2 gets runc's weight for it */
	int64_t memory_max;  /* bytes */
	int64_t pids_max;
};

/* One file to write: v1 finds it in the controller's hierarchy. */
struct cgroup_write {
	const char *ctrl, *file;
	char value[32];
	char old[64]; /* what it held, to put back; "" unknown */
};

/* runc's (1.1, as the guest agent's): shares 2..262144 to 1..10000. */
uint64_t cgroup_shares_to_weight(uint64_t shares);
/* cgroup v2's cpu.max: "QUOTA PERIOD", "max PERIOD", "QUOTA" or "max". */
void cgroup_cpu_max(int64_t quota, uint64_t period, char *out, size_t len);
/* The host quota for a container's: + KILN_HOST_CPU_OVERHEAD_PCT of the
 * period (0: the kernel's default, 100 ms); -1 stays none. */
int64_t cgroup_host_quota(int64_t quota, uint64_t period);
/* The host memory.max of a VM of memory_mib: + KILN_HOST_MEM_OVERHEAD_MIB */
int64_t cgroup_vm_memory_max(uint32_t memory_mib);
/* The host pids.max of a VM of vcpus vCPUs. */
int64_t cgroup_vm_pids_max(uint32_t vcpus);
/* A VM's host limits from config.json and its size (c): CPU quota, period
 * and shares as asked, memory.max when a memory limit is set, pids.max. */
int cgroup_limits_vm(const struct oci_spec *spec, const struct vm_config *c,
		     struct cgroup_limits *l, struct kiln_error *err);
/* What `kiln update` changes on the host: the CPU's (the VM's memory and
 * tasks are fixed at create). */
int cgroup_limits_update(const Kiln__Agent__V1__Resources *r,
			 struct cgroup_limits *l, struct kiln_error *err);
/* The files and values for l, in writing order; their number. */
size_t cgroup_plan(const struct cgroup_limits *l, bool v2,
		   struct cgroup_write *w);

/* The cgroup a container's VM goes to, below each hierarchy's root:
 * linux.cgroupsPath as runc maps it, or /kiln/ID when there is none. */
int cgroup_rel(const struct oci_spec *spec, bool systemd, const char *id,
	       char *out, size_t len, struct kiln_error *err);
/* Record rel in the state dir, make the cgroup, write l (all or none),
 * then move the caller in. */
int cgroup_enter(int dirfd, const char *rel, const struct cgroup_limits *l,
		 struct kiln_error *err);
/*
 * cgroup_enter without the move, for a process to be born in the cgroup
 * (clone3's CLONE_INTO_CGROUP): the cgroup's directory, open; -1 on a
 * cgroup v1 host (nothing done: cgroup_enter it), -2 with err (nothing
 * left).
 */
int cgroup_make(int dirfd, const char *rel, const struct cgroup_limits *l,
		struct kiln_error *err);
/* Write l to the recorded cgroup, all or none; w keeps what was there. */
int cgroup_limit(int dirfd, const struct cgroup_limits *l,
		 struct cgroup_write *w, size_t *n, struct kiln_error *err);
/* Put back what cgroup_limit replaced. */
void cgroup_undo(int dirfd, const struct cgroup_write *w, size_t n);
/* Move the caller into cgroup rel (made if missing) of every hierarchy. */
int cgroup_join_path(const char *rel, struct kiln_error *err);
/* Kill what is left in the recorded cgroup and remove it (delete); else
 * the one config.json names, when the state has no record. */
void cgroup_remove(int dirfd, const struct oci_spec *spec, bool systemd);
/* Tests: another root (a plain folder) and layout; NULL: the real one. */
void cgroup_set_root(const char *root, int v2);

/* ---- the network (net.c) ------------------------------------------------ */

/* files in the state directory: what was made, and the namespace */
#define NET_RECORD     "net"
#define NET_NS	       "netns"
#define NET_IFACES_MAX VM_NETS_MAX
#define NET_OWNED_MAX  (8 + NET_IFACES_MAX * 140)

struct nl_addr;
struct nl_route;

struct net_iface {
	int index, tap_index;
	char name[16], tap[16];
	uint8_t mac[6];
	uint8_t now_mac[6]; /* a fork's: its template's, until set to mac */
	uint32_t mtu;
	bool has_qdisc;
};

/* The pid process's: the interfaces it wired and what the guest is told. */
struct net_plan {
	struct net_iface ifs[NET_IFACES_MAX];
	size_t n;
	struct nl_addr *addrs;
	size_t n_addrs;
	struct nl_route *routes;
	size_t n_routes;
	Kiln__Agent__V1__ConfigureNetworkRequest req;
	void *owned[NET_OWNED_MAX];
	size_t n_owned;
};

/*
 * In the container's namespace, the current directory its state
 * directory: wire every interface but lo to a TAP (multi-queue for a VM
 * of several vCPUs, net_queue_pairs) and add the --net arguments to
 * plan. On error nothing is left (no TAP, no qdisc).
 */
int net_setup(struct net_plan *np, const char *id, struct vm_plan *plan,
	      uint32_t vcpus, struct kiln_error *err);
/*
 * virtio-net queue pairs of each interface of a VM of vcpus vCPUs: one
 * per vCPU, at most NET_QUEUE_PAIRS_MAX (kiln-vmm's bound); with more
 * than one the TAP is multi-queue. Templates use the same.
 */
#define NET_QUEUE_PAIRS_MAX 3
unsigned int net_queue_pairs(uint32_t vcpus);
/* ConfigureNetwork, when there is an interface; a fork's interfaces
 * still have their template's MACs. */
int net_configure_guest(struct net_plan *np, struct agent_client *c,
			bool forked, struct kiln_error *err);
/* The persistent TAP name owned by uid and its group (TUNSETOWNER,
 * TUNSETGROUP), so that a jailed kiln-vmm attaches it; uid 0: nothing. */
int net_tap_own(const char *name, bool multi_queue, uid_t uid,
		struct kiln_error *err);
/* Remove the TAPs and qdiscs net_setup made (the pid process). */
void net_teardown(struct net_plan *np);
void net_plan_free(struct net_plan *np);
/* The same from `kiln delete`, by the state directory's NET_NS. */
void net_remove(int dirfd);

/*
 * dns.c: when spec's resolv.conf names a loopback nameserver, relay the
 * guest's streams to host port RESOLV_RELAY_PORT (kiln-vmm's socket
 * "<uds>_1053") to that nameserver's TCP port (53; tests pick another)
 * in our network namespace. 0 also when there is nothing to relay.
 */
int dns_host_relay(const struct oci_spec *spec, const char *uds, uint16_t port,
		   struct kiln_error *err);

/* ---- OCI hooks (hooks.c) ------------------------------------------------ */

/*
 * Run spec's hooks of one kind with state (the OCI state JSON) on stdin,
 * in the network namespace host_netns (an fd; -1: ours). A failure is an
 * error, except for poststart and poststop, which only log it.
 */
int hooks_run(const struct oci_spec *spec, enum oci_hook_kind kind,
	      const char *state, int host_netns, struct kiln_error *err);

/* ---- pods: one VM for a Kubernetes pod's containers (pod.c) ---------- */

#define POD_ID_MAX 64 /* a container's id inside the guest (the agent's) */

/* The sandbox whose VM spec's container joins (CRI's annotations), or
 * NULL: a VM of its own. */
const char *pod_sandbox_id(const struct oci_spec *spec);
/* CRI's sandbox: its VM keeps spare drive slots for the pod. */
bool pod_is_sandbox(const struct oci_spec *spec);

/* The sandbox pid process's: who holds which of its VM's drive slots. */
struct pod_slots {
	char owner[VM_DRIVES_MAX][POD_ID_MAX + 1]; /* "": free */
	size_t first; /* the slots below are the sandbox's own */
	char placeholder[PATH_MAX];
	bool placeholder_ro;
};

void pod_slots_init(struct pod_slots *ps, const struct vm_plan *plan);
/* "slots N ID" and "release ID" from the control socket: 1 with the
 * reply, 0 when line is neither, -1 with err. */
int pod_ctl(struct pod_slots *ps, const char *line, char *reply, size_t len,
	    struct kiln_error *err);
/* Drive d<slot> of the VM whose API is api reads path from now on. */
int pod_drive_swap(const char *api, size_t slot, const char *path, bool ro,
		   struct kiln_error *err);
/*
 * A member's pid process (in its state directory dirfd): link to the
 * sandbox's agent, take slots of its VM for plan's drives and swap them
 * in; plan's guest names are the slots' then.
 */
int pod_join(struct vm_plan *plan, const char *sandbox, const char *id,
	     int dirfd, struct kiln_error *err);
/* Give id's slots back to its sandbox (after its container left). */
void pod_leave(int dirfd, const char *sandbox, const char *id);
/* kiln delete of a member: its container out of the guest, its slots
 * back. */
void pod_remove(const struct container_state *s, int dirfd);

/* ---- pod volumes: host directories in a pod's VM (podfs.c) ---------- */

#define POD_FS_DIR  "podfs"	      /* in the sandbox's state directory */
#define AGENT_PODFS "/run/kiln/podfs" /* the agent's AGENT_PODFS_DIR */

/* Whether the sandbox spec's VM gets the pod's share: the config's
 * pod_volumes, or its io.kiln.pod-volumes annotation; members: false. */
int podfs_wanted(const struct vm_config *c, const struct oci_spec *spec,
		 bool *out, struct kiln_error *err);
/* The sandbox's pid process, in its state directory: POD_FS_DIR made a
 * shared mount of its own, p's fs 0. */
int podfs_prepare(struct vm_plan *p, struct kiln_error *err);
/* A member (state directory dirfd): p->podfs when sandbox has one. */
int podfs_find(struct vm_plan *p, int dirfd, const char *sandbox,
	       struct kiln_error *err);
/* Bind host directory source as p->podfs/<podfs_id>/<i> (read-only when
 * ro, with its sub-mounts when rec): its path in the guest (malloc'd). */
char *podfs_bind(const struct vm_plan *p, size_t i, const char *source,
		 bool rec, bool ro, struct kiln_error *err);
/* Unbind and remove podfs/<id>: a member's binds. */
void podfs_unbind(const char *podfs, const char *id);
/* The same, from a member's state directory dirfd (kiln delete). */
void podfs_unbind_member(int dirfd, const char *sandbox, const char *id);
/* The sandbox's end: every bind under state_dir/POD_FS_DIR, the folder's
 * own mount, and the folders (rmdir only: never a file). */
void podfs_remove(const char *state_dir);

/* ---- the pid process and its control socket (supervisor.c, ctl.c) ----- */

#define CTL_SOCK     "ctl.sock"
#define CTL_LINE_MAX 1024

/* What create hands its pid process. */
struct sup_args {
	const struct kiln_cli *cli;
	const char *id;
	const char *bundle, *rootfs; /* absolute */
	const struct oci_spec *spec;
	struct vm_config *conf;
	int dirfd;	 /* ROOT/ID */
	int console_fd;	 /* --console-socket, connected; or -1 */
	bool foreground; /* run: our own stdio, exit with init */
	bool start;	 /* run: started before it reports ready */
	bool in_cgroup;	 /* the pid process was born in its host cgroup */
	/* run: called in the caller with the pid process's pid, as soon
	 * as it exists (before it reports ready) */
	void (*spawned)(pid_t pid);
};

/*
 * Fork the pid process. Returns its pid once it reported the container
 * created (with a->start: created and started), or -1 with the error it
 * reported (it has ended then, its VM too).
 */
pid_t supervisor_spawn(struct sup_args *a, struct kiln_error *err);

/* Send one request line to ID's pid process; its answer ("ok ..."). */
int ctl_call(int dirfd, const char *req, char *reply, size_t len,
	     struct kiln_error *err);

#endif
