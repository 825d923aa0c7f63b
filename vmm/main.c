/* SPDX-License-Identifier: Apache-2.0 */
/* kiln-vmm: one KVM microVM per process. */
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <ucontext.h>
#include <unistd.h>

#include "../lib/error.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "api/api.h"
#include "api/vm_ops.h"
#include "config.h"
#include "fork.h"
#include "jail.h"
#include "metrics.h"
#include "snapshot.h"
#include "seccomp.h"
#include "vm.h"

/* RLIMIT_NOFILE: see main() */
#define VMM_MAX_FILES 1024

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kiln-vmm [options]\n"
		"  --config-file PATH   Firecracker-style JSON: boot-source, "
		"machine-config\n"
		"  --kernel PATH        vmlinux (ELF, PVH entry) or bzImage\n"
		"  --initrd PATH        initramfs\n"
		"  --cmdline STR        kernel command line (default: \"%s\")\n"
		"  --vcpus N            1 to %d (default 1)\n"
		"  --mem MIB            guest memory in MiB (default 128)\n"
		"  --console PATH       serial output to PATH instead of "
		"stdout\n"
		"  --console-in         feed stdin to the serial port\n"
		"  --entropy            add a virtio-rng device\n"
		"  --drive id=ID,path=PATH[,ro][,root]     a virtio-blk drive "
		"(repeatable)\n"
		"  --net id=ID,tap=NAME[,mac=MAC][,queue_pairs=N]\n"
		"                       a virtio-net interface (repeatable); "
		"N pairs (1 to %d)\n"
		"                       need a multi-queue TAP\n"
		"  --vsock cid=N,uds=PATH                  virtio-vsock, host "
		"side on PATH\n"
		"  --balloon amount=MIB[,deflate-on-oom][,stats=SECONDS]\n"
		"  --fs id=ID,tag=TAG,socket=PATH[,queues=N][,queue-size=N]\n"
		"                       virtio-fs served by a vhost-user "
		"backend "
		"(virtiofsd)\n"
		"                       on PATH (repeatable)\n"
		"  --api-sock PATH      serve Firecracker's HTTP API on this "
		"Unix socket;\n"
		"                       the VM starts on InstanceStart (or at "
		"once with\n"
		"                       --config-file)\n"
		"  --fork-from PATH     start as a fork of the template "
		"serving PATH\n"
		"                       (no boot source; its shape and device "
		"ids)\n"
		"  --fork-prefault FILE with --fork-from: copy the pages "
		"FILE lists\n"
		"                       (lib/prefault.h) before the guest "
		"runs; a list\n"
		"                       that cannot be read is logged and "
		"ignored\n"
		"  --id ID              instance id reported by GET /\n"
		"  --jail root=DIR,uid=N,gid=N[,keep-fds=N:M]\n"
		"                       run in namespaces, pivot_rooted into "
		"DIR, as\n"
		"                       uid/gid N (started as root; "
		"docs/jail.md)\n"
		"  --level LEVEL        log level: error, warning, info, "
		"debug\n"
		"  --log-path PATH      log to PATH instead of stderr\n"
		"  --show-level, --show-log-origin  add the level / source "
		"file:line to log lines\n"
		"  --metrics-path PATH  write metrics (JSON lines) to PATH\n"
		"  --no-seccomp         load no seccomp filter and keep "
		"capabilities\n"
		"                       (debugging only)\n"
		"  --seccomp-log        a forbidden syscall is logged by name "
		"before the\n"
		"                       process dies (default: killed at "
		"once)\n"
		"  --print-seccomp-counts  syscalls each thread kind may make, "
		"then exit\n"
		"  --no-api, --boot-timer  accepted for Firecracker "
		"compatibility\n"
		"  --rebase-snap BASE-MEM DIFF-MEM  copy a diff snapshot's "
		"pages onto\n"
		"                       its base's memory file, and exit\n"
		"  --version, --help\n"
		"Flags given after --config-file override its values.\n",
		VM_DEFAULT_CMDLINE, VM_MAX_VCPUS, VM_MAX_NET_QUEUE_PAIRS);
}

static int parse_u64(const char *s, const char *what, uint64_t *out,
		     struct kiln_error *err)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (s[0] < '0' || s[0] > '9')
		return kiln_error_set(err, 0, "%s `%s`: not a number", what, s);
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return kiln_error_set(err, 0, "%s `%s`: not a number", what, s);
	*out = v;
	return 0;
}

static int set_level(const char *s, struct kiln_error *err)
{
	int level = log_level_parse(s);

	if (level < 0)
		return kiln_error_set(err, 0, "unknown log level `%s`", s);
	log_set_level(level);
	return 0;
}

static int set_path(char **dst, const char *s)
{
	free(*dst);
	*dst = strdup(s);
	return *dst == NULL ? -1 : 0;
}

enum {
	OPT_CONFIG = 256,
	OPT_KERNEL,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_VCPUS,
	OPT_MEM,
	OPT_CONSOLE,
	OPT_CONSOLE_IN,
	OPT_ENTROPY,
	OPT_DRIVE,
	OPT_NET,
	OPT_VSOCK,
	OPT_BALLOON,
	OPT_FS,
	OPT_LEVEL,
	OPT_LOG_PATH,
	OPT_SHOW_LEVEL,
	OPT_SHOW_ORIGIN,
	OPT_METRICS_PATH,
	OPT_API_SOCK,
	OPT_ID,
	OPT_FORK_FROM,
	OPT_FORK_PREFAULT,
	OPT_JAIL,
	OPT_NO_SECCOMP,
	OPT_SECCOMP_LOG,
	OPT_SECCOMP_COUNTS,
	OPT_NOOP,
	OPT_VERSION,
	OPT_HELP,
};

static const struct option options[] = {
	{ "config-file", required_argument, NULL, OPT_CONFIG },
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "vcpus", required_argument, NULL, OPT_VCPUS },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "console-in", no_argument, NULL, OPT_CONSOLE_IN },
	{ "entropy", no_argument, NULL, OPT_ENTROPY },
	{ "drive", required_argument, NULL, OPT_DRIVE },
	{ "net", required_argument, NULL, OPT_NET },
	{ "vsock", required_argument, NULL, OPT_VSOCK },
	{ "balloon", required_argument, NULL, OPT_BALLOON },
	{ "fs", required_argument, NULL, OPT_FS },
	{ "level", required_argument, NULL, OPT_LEVEL },
	{ "log-path", required_argument, NULL, OPT_LOG_PATH },
	{ "show-level", no_argument, NULL, OPT_SHOW_LEVEL },
	{ "show-log-origin", no_argument, NULL, OPT_SHOW_ORIGIN },
	{ "metrics-path", required_argument, NULL, OPT_METRICS_PATH },
	{ "api-sock", required_argument, NULL, OPT_API_SOCK },
	{ "id", required_argument, NULL, OPT_ID },
	{ "fork-from", required_argument, NULL, OPT_FORK_FROM },
	{ "fork-prefault", required_argument, NULL, OPT_FORK_PREFAULT },
	{ "jail", required_argument, NULL, OPT_JAIL },
	{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
	{ "seccomp-log", no_argument, NULL, OPT_SECCOMP_LOG },
	{ "print-seccomp-counts", no_argument, NULL, OPT_SECCOMP_COUNTS },
	{ "no-api", no_argument, NULL, OPT_NOOP },
	{ "boot-timer", no_argument, NULL, OPT_NOOP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, OPT_HELP },
	{ 0 },
};

/* What the flags say beyond the VM's own configuration. */
struct vmm_opts {
	const char *api_sock;
	const char *id;
	const char *fork_from;	   /* a template's socket */
	const char *fork_prefault; /* its forks' prefault list */
	bool config_file; /* the VM is fully described before any request */
	enum seccomp_mode seccomp;
	struct jail_opts jail; /* enabled: --jail given */
};

/* fork_connect, its fds added to those the jail keeps open */
static int jail_keep_fork(struct jail_opts *j, const char *sock,
			  struct kiln_error *err)
{
	int fds[3];

	if (j->nkeep + 3 > JAIL_MAX_KEEP_FDS)
		return kiln_error_set(err, 0,
				      "--jail keep-fds: at most %d fds with "
				      "--fork-from",
				      JAIL_MAX_KEEP_FDS - 3);
	if (fork_connect(sock, fds, err) < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		j->keep_fds[j->nkeep++] = fds[i];
	return 0;
}

static void print_seccomp_counts(void)
{
	const struct seccomp_list *lists[] = { &api_seccomp, &vmm_seccomp,
					       &vcpu_seccomp };

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		printf("%s syscalls=%u ioctls=%u socket_families=%u "
		       "fcntl_cmds=%u\n",
		       lists[i]->kind, vmm_seccomp_count(lists[i]),
		       vmm_seccomp_count_args(lists[i], SCMP_SYS(ioctl)),
		       vmm_seccomp_count_args(lists[i], SCMP_SYS(socket)),
		       vmm_seccomp_count_args(lists[i], SCMP_SYS(fcntl)));
}

static int parse_args(int argc, char **argv, struct vm_config *cfg,
		      struct vmm_opts *o, struct kiln_error *err)
{
	uint64_t n;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		int ret = 0;

		switch (c) {
		case OPT_CONFIG:
			ret = vm_config_load_file(cfg, optarg, err);
			o->config_file = true;
			break;
		case OPT_KERNEL:
			ret = set_path(&cfg->kernel_path, optarg);
			break;
		case OPT_INITRD:
			ret = set_path(&cfg->initrd_path, optarg);
			break;
		case OPT_CMDLINE:
			ret = set_path(&cfg->cmdline, optarg);
			break;
		case OPT_CONSOLE:
			ret = set_path(&cfg->console_path, optarg);
			break;
		case OPT_VCPUS:
			ret = parse_u64(optarg, "--vcpus", &n, err);
			if (ret == 0 && n > VM_MAX_VCPUS)
				ret = kiln_error_set(err, 0,
						     "--vcpus %s: must be 1 to "
						     "%d",
						     optarg, VM_MAX_VCPUS);
			cfg->vcpu_count = (unsigned int)n;
			break;
		case OPT_MEM:
			ret = parse_u64(optarg, "--mem", &n, err);
			cfg->mem_mib = n;
			break;
		case OPT_CONSOLE_IN:
			cfg->console_in = true;
			break;
		case OPT_ENTROPY:
			cfg->entropy = true;
			break;
		case OPT_DRIVE:
			ret = vm_config_add_drive(cfg, optarg, err);
			break;
		case OPT_NET:
			ret = vm_config_add_net(cfg, optarg, err);
			break;
		case OPT_VSOCK:
			ret = vm_config_set_vsock(cfg, optarg, err);
			break;
		case OPT_BALLOON:
			ret = vm_config_set_balloon(cfg, optarg, err);
			break;
		case OPT_FS:
			ret = vm_config_add_fs(cfg, optarg, err);
			break;
		case OPT_LEVEL:
			ret = set_level(optarg, err);
			break;
		case OPT_LOG_PATH:
			if (log_open(optarg) < 0)
				ret = kiln_error_set(err, errno,
						     "open log `%s`", optarg);
			break;
		case OPT_SHOW_LEVEL:
			cfg->show_level = true;
			break;
		case OPT_SHOW_ORIGIN:
			cfg->show_origin = true;
			break;
		case OPT_METRICS_PATH:
			ret = set_path(&cfg->metrics_path, optarg);
			break;
		case OPT_API_SOCK:
			o->api_sock = optarg;
			break;
		case OPT_ID:
			o->id = optarg;
			break;
		case OPT_FORK_FROM:
			o->fork_from = optarg;
			break;
		case OPT_FORK_PREFAULT:
			o->fork_prefault = optarg;
			break;
		case OPT_JAIL:
			ret = jail_parse(&o->jail, optarg, err);
			break;
		case OPT_NO_SECCOMP:
			o->seccomp = SECCOMP_OFF;
			break;
		case OPT_SECCOMP_LOG:
			if (o->seccomp != SECCOMP_OFF)
				o->seccomp = SECCOMP_LOG;
			break;
		case OPT_SECCOMP_COUNTS:
			print_seccomp_counts();
			exit(0);
		case OPT_NOOP:
			break;
		case OPT_VERSION:
			printf("kiln-vmm %s\n", KILN_VERSION);
			exit(0);
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			return kiln_error_set(err, 0,
					      "unknown or incomplete option "
					      "`%s` (see --help)",
					      argv[optind - 1]);
		}
		if (ret < 0)
			return ret;
	}
	if (optind < argc)
		return kiln_error_set(err, 0, "unexpected argument `%s`",
				      argv[optind]);
	if (o->fork_prefault != NULL && o->fork_from == NULL)
		return kiln_error_set(err, 0,
				      "--fork-prefault is for a fork: it "
				      "needs --fork-from");
	return 0;
}

/* The logger and metrics settings of a config file or flags. */
static int apply_observability(struct vm *vm, const struct vm_config *cfg,
			       struct kiln_error *err)
{
	/* without a logger section the default format stays (level shown) */
	if ((cfg->log_path != NULL || cfg->log_level >= 0 ||
	     cfg->show_origin) &&
	    vm_ops_apply_logger(cfg->log_path, cfg->log_level, cfg->show_level,
				cfg->show_origin, err) < 0)
		return -1;
	if (cfg->metrics_path == NULL)
		return 0;
	if (metrics_open(cfg->metrics_path, err) < 0)
		return -1;
	return metrics_start_timer(&vm->loop, err);
}

/* v as 0x... into p (async-signal-safe); returns the end. */
static char *crash_hex(char *p, uintptr_t v)
{
	int shift = (int)sizeof(v) * 8 - 4;

	*p++ = '0';
	*p++ = 'x';
	while (shift > 0 && ((v >> shift) & 0xf) == 0)
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		*p++ = "0123456789abcdef"[(v >> shift) & 0xf];
	return p;
}

/* The first byte of our ELF image (the linker's): where it was loaded */
extern const char __ehdr_start[];

/*
 * A crash names where it happened: the signal, the faulting address and
 * instruction, where kiln-vmm was loaded, then the return addresses, then
 * dies of the signal as it would have. kiln-vmm is a static PIE (its
 * addresses differ each run): `addr2line -f -e kiln-vmm` takes an
 * address minus the base. The first line goes out before the unwinder
 * runs, which may fault again on a broken stack. Only async-signal-safe
 * calls (backtrace is warmed up in main).
 */
static void on_crash(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	char line[160], *p = line;
	void *pcs[32];
	int n;

	memcpy(p, "kiln-vmm: fatal signal ", 23);
	p += 23;
	*p++ = (char)('0' + sig / 10);
	*p++ = (char)('0' + sig % 10);
	memcpy(p, ", address ", 10);
	p = crash_hex(p + 10, (uintptr_t)si->si_addr);
	memcpy(p, ", rip ", 6);
	p = crash_hex(p + 6, (uintptr_t)uc->uc_mcontext.gregs[REG_RIP]);
	memcpy(p, ", base ", 7);
	p = crash_hex(p + 7, (uintptr_t)__ehdr_start);
	memcpy(p, ", backtrace:\n", 13);
	p += 13;
	if (write(STDERR_FILENO, line, (size_t)(p - line)) > 0) {
		n = backtrace(pcs, 32);
		backtrace_symbols_fd(pcs, n, STDERR_FILENO);
	}
	/* SA_RESETHAND made it SIG_DFL: no syscall the filters refuse */
	raise(sig);
}

static void crash_handlers(void)
{
	struct sigaction sa = { .sa_sigaction = on_crash,
				.sa_flags = SA_RESETHAND | SA_SIGINFO };
	void *warm[1];

	/* the first backtrace() loads the unwinder: not in the handler */
	backtrace(warm, 1);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
}

int main(int argc, char **argv)
{
	uint64_t start_ns = util_now_ns();
	struct kiln_error err = { 0 };
	struct vmm_opts opts = { .seccomp = SECCOMP_KILL };
	struct api_server *api = NULL;
	struct api_ctx ctx;
	struct vm_config cfg;
	struct vm vm;
	int status = 0;

	/* a crashing VMM must not leave a core with guest memory in it */
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	/*
	 * No memory locked (guest RAM is a memfd the host may swap), and no
	 * more files than the most the devices and the API hold (256 vsock
	 * connections, 32 handshakes, the API's clients, a few per device).
	 */
	setrlimit(RLIMIT_MEMLOCK, &(struct rlimit){ 0, 0 });
	setrlimit(RLIMIT_NOFILE,
		  &(struct rlimit){ VMM_MAX_FILES, VMM_MAX_FILES });
	/* a closed console pipe is an EPIPE the serial device handles */
	signal(SIGPIPE, SIG_IGN);
	crash_handlers();
	log_set_prog("kiln-vmm");
	/* a tool, not a VM: merge a diff snapshot's memory onto its base */
	if (argc >= 2 && strcmp(argv[1], "--rebase-snap") == 0) {
		if (argc != 4) {
			fprintf(stderr, "kiln-vmm: usage: kiln-vmm "
					"--rebase-snap BASE-MEM DIFF-MEM\n");
			return 2;
		}
		if (snapshot_rebase(argv[2], argv[3], &err) < 0) {
			kiln_error_print(&err, "kiln-vmm");
			return 1;
		}
		return 0;
	}
	vm_config_init(&cfg);
	/*
	 * A VM described before any request is checked as the API checks
	 * each request (vm_config_check_host): the same errors, before KVM.
	 */
	if (parse_args(argc, argv, &cfg, &opts, &err) < 0 ||
	    (opts.fork_from != NULL &&
	     (vm_config_validate_fork(&cfg, &err) < 0 ||
	      vm_config_check_host(&cfg, &err) < 0)) ||
	    (opts.fork_from == NULL &&
	     (opts.api_sock == NULL || opts.config_file) &&
	     (vm_config_validate(&cfg, &err) < 0 ||
	      vm_config_check_host(&cfg, &err) < 0))) {
		kiln_error_print(&err, "kiln-vmm");
		vm_config_destroy(&cfg);
		jail_opts_destroy(&opts.jail);
		return 2;
	}
	/* the runtime's file, read before the jail hides it */
	if (opts.fork_prefault != NULL)
		fork_prefault_read(opts.fork_prefault);
	/*
	 * A jailed fork takes its template's answer first, as root (the
	 * template's socket need not be reachable by the jail's uid, and
	 * the template serves root or its own uid only); it is parsed only
	 * jailed, in fork_load.
	 */
	if (opts.jail.enabled && opts.fork_from != NULL &&
	    jail_keep_fork(&opts.jail, opts.fork_from, &err) < 0) {
		kiln_error_print(&err, "kiln-vmm");
		vm_config_destroy(&cfg);
		jail_opts_destroy(&opts.jail);
		return 1;
	}
	/* before any thread, device or guest byte; the waiter stays in it */
	if (opts.jail.enabled &&
	    jail_enter(&opts.jail, &cfg, opts.api_sock, NULL, &err) < 0) {
		kiln_error_print(&err, "kiln-vmm");
		vm_config_destroy(&cfg);
		jail_opts_destroy(&opts.jail);
		return 1;
	}
	jail_opts_destroy(&opts.jail);
	/* the mode each thread's filter takes, before any thread starts */
	if (vmm_seccomp_setup(opts.seccomp, &err) < 0 ||
	    vm_init(&vm, &cfg, start_ns, &err) < 0 ||
	    apply_observability(&vm, &cfg, &err) < 0)
		goto fail_init;
	ctx = (struct api_ctx){
		.cfg = &cfg,
		.state = API_NOT_STARTED,
		.ops = &vm_api_ops,
		.vmm = &vm,
		.instance_id = opts.id ? opts.id : "anonymous-instance",
	};
	/* the API first: a client may connect while the guest boots */
	if (opts.api_sock != NULL &&
	    api_server_start(&api, opts.api_sock, &vm.loop, &ctx, &err) < 0)
		goto fail_init;
	if (opts.fork_from != NULL) {
		if (fork_load(&vm, &cfg, opts.fork_from, &err) < 0 ||
		    vm_resume(&vm, &err) < 0)
			goto fail_init;
		ctx.state = API_RUNNING;
	} else if (opts.api_sock == NULL || opts.config_file) {
		if (vm_boot(&vm, &err) < 0)
			goto fail_init;
		ctx.state = API_RUNNING;
	}
	if (vm_run(&vm, &err) < 0) {
		kiln_error_print(&err, "kiln-vmm");
		status = 1;
	} else if (vm.exit_reason == VM_EXIT_SIGNAL) {
		log_info("%s", vm.exit_msg);
		status = 128 + vm.exit_signal;
	} else {
		log_info("%s", vm.exit_msg);
	}
	goto out;
fail_init:
	kiln_error_print(&err, "kiln-vmm");
	status = 1;
out:
	if (api != NULL)
		api_server_stop(api);
	vm_ops_stop();
	metrics_stop();
	vm_destroy(&vm);
	vm_config_destroy(&cfg);
	return status;
}
