/* SPDX-License-Identifier: Apache-2.0 */
/* Per-thread seccomp filters and capability drop: see seccomp.h. */
#include "seccomp.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/cleanup.h"

/*
 * What every thread needs whatever its kind: glibc's own (locks, memory,
 * thread exit, abort), the log (write) and the clock. mmap and mprotect
 * never with PROT_EXEC: no thread of ours maps code after start.
 */
/* clang-format off */
static const struct seccomp_rule common_rules[] = {
	SC_ALLOW(futex),
	SC_ALLOW(write),
	SC_ALLOW(clock_gettime),
	SC_ALLOW(gettid),
	SC_ALLOW(getpid),
	SC_ALLOW(rt_sigreturn),
	SC_ALLOW(rt_sigprocmask),
	SC_ALLOW(restart_syscall),
	SC_ALLOW(sched_yield),
	SC_ALLOW(getrandom),
	SC_ALLOW(brk),
	SC_ALLOW(madvise),
	SC_ALLOW(munmap),
	SC_ALLOW(mremap),
	SC_NOT(mmap, 2, PROT_EXEC),
	SC_NOT(mprotect, 2, PROT_EXEC),
	SC_SELF_PID(tgkill, 0), /* abort(), and pthread_kill's kicks */
	SC_ALLOW(exit),
	SC_ALLOW(exit_group),
};
/* clang-format on */

/* Written once by main() before any thread starts; read-only after. */
static enum seccomp_mode mode = SECCOMP_OFF;

/* SECCOMP_LOG: syscall names by number, resolved before any filter. */
#define SC_NAMES 512
static const char *sc_names[SC_NAMES];
/* the calling thread's kind, for the handler (no syscall may ask) */
static __thread const char *sc_kind;

enum seccomp_mode vmm_seccomp_mode(void)
{
	return mode;
}

static size_t sc_strlen(const char *s)
{
	size_t n = 0;

	while (s[n] != '\0')
		n++;
	return n;
}

static char *sc_utoa(char *p, unsigned long v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

static char *sc_hex(char *p, unsigned long v)
{
	char tmp[16];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v != 0);
	*p++ = '0';
	*p++ = 'x';
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

static char *sc_cat(char *p, const char *end, const char *s)
{
	size_t n = sc_strlen(s);

	if (n > (size_t)(end - p))
		n = (size_t)(end - p);
	memcpy(p, s, n);
	return p + n;
}

/*
 * SECCOMP_LOG: a forbidden syscall arrives here instead of being run.
 * Async-signal-safe only: it may have interrupted malloc (a forbidden mmap)
 * or the log's own lock, so the line is built on the stack and written
 * with one write(2). Then the same syscall is made again with the same
 * arguments: SIGSYS is blocked inside its handler, so the kernel resets it
 * to its default action and the process dies by SIGSYS, as it would have
 * without the log.
 */
static void sc_sigsys(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *r = uc->uc_mcontext.gregs;
	char line[256];
	char *p = line, *end = line + sizeof(line) - 1;
	int nr = si->si_syscall;

	(void)sig;
	p = sc_cat(p, end, "kiln-vmm: seccomp: the ");
	p = sc_cat(p, end, sc_kind ? sc_kind : "?");
	p = sc_cat(p, end, " thread made a forbidden syscall ");
	p = sc_cat(p, end,
		   nr >= 0 && nr < SC_NAMES && sc_names[nr] ? sc_names[nr]
							    : "?");
	p = sc_cat(p, end, " (");
	p = sc_utoa(p, (unsigned long)(unsigned int)nr);
	/* which ioctl request, socket family, fcntl command... */
	p = sc_cat(p, end, ", args ");
	p = sc_hex(p, (unsigned long)r[REG_RDI]);
	p = sc_cat(p, end, " ");
	p = sc_hex(p, (unsigned long)r[REG_RSI]);
	p = sc_cat(p, end, "): killing the process\n");
	if (write(log_fileno(), line, (size_t)(p - line)) < 0) {
		/* nowhere else to say it */
	}
	syscall(nr, r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10], r[REG_R8],
		r[REG_R9]);
	_exit(128 + SIGSYS); /* not reached */
}

int vmm_seccomp_setup(enum seccomp_mode m, struct kiln_error *err)
{
	struct sigaction sa = { .sa_sigaction = sc_sigsys,
				.sa_flags = SA_SIGINFO };

	mode = m;
	if (m != SECCOMP_LOG)
		return 0;
	/* libseccomp returns a copy to free: kept for the process's life */
	for (int i = 0; i < SC_NAMES; i++)
		sc_names[i] =
			seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return kiln_error_set(err, errno, "install the SIGSYS handler");
	return 0;
}

/* Every capability of the calling thread, the bounding set where it may. */
static int drop_caps(struct kiln_error *err)
{
	cap_t none = cap_init();
	int ret = 0;

	if (none == NULL)
		return kiln_error_set(err, errno, "cap_init");
	/* the bounding set first: dropping it needs CAP_SETPCAP */
	if (CAP_IS_SUPPORTED(CAP_SETPCAP)) {
		for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++) {
			if (cap_get_bound(c) != 1)
				continue;
			/* an unprivileged kiln-vmm may not: it has nothing */
			if (cap_drop_bound(c) < 0 && errno != EPERM) {
				ret = kiln_error_set(err, errno,
						     "drop capability %d from "
						     "the bounding set",
						     (int)c);
				goto out;
			}
		}
	}
	if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() < 0) {
		ret = kiln_error_set(err, errno, "clear ambient capabilities");
		goto out;
	}
	if (cap_set_proc(none) < 0)
		ret = kiln_error_set(err, errno, "drop capabilities");
out:
	cap_free(none);
	return ret;
}

static int add_rule(scmp_filter_ctx ctx, const struct seccomp_rule *r,
		    uint32_t self, struct kiln_error *err)
{
	struct scmp_arg_cmp cmp = { .arg = r->arg, .op = SCMP_CMP_EQ };
	int ret;

	switch (r->op) {
	case SC_ANY:
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 0);
		break;
	case SC_EQ:
		cmp.datum_a = r->val;
		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r->nr, 1,
					     &cmp);
		break;
	case SC_MASKED:
		cmp.op = SCMP_CMP_MASKED_EQ;
		cmp.datum_a = r->mask;
		cmp.datum_b = r->val;
		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r->nr, 1,
					     &cmp);
		break;
	case SC_SELF:
		cmp.datum_a = self;
		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r->nr, 1,
					     &cmp);
		break;
	default:
		ret = -EINVAL;
	}
	if (ret < 0) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE,
							      r->nr);

		kiln_error_set(err, -ret, "seccomp rule for %s",
			       name ? name : "?");
		free(name);
		return -1;
	}
	return 0;
}

#ifdef KILN_SECCOMP_SELFTEST
/*
 * Test builds only (build/test/kiln-vmm-selftest): the thread kind named by
 * KILN_VMM_SECCOMP_SELFTEST makes a syscall no thread may make, right
 * after its filter is loaded. The production kiln-vmm has no such path.
 */
#include <sys/socket.h>
static void selftest(const char *kind)
{
	const char *want = getenv("KILN_VMM_SECCOMP_SELFTEST");

	if (want != NULL && strcmp(want, kind) == 0)
		syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
}
#else
static void selftest(const char *kind)
{
	(void)kind;
}
#endif

/* l's filter with the common rules, SC_SELF against self. */
static scmp_filter_ctx build(const struct seccomp_list *l, uint32_t action,
			     uint32_t self, struct kiln_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(action);

	if (ctx == NULL) {
		kiln_error_set(err, ENOMEM, "seccomp_init");
		return NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(common_rules); i++)
		if (add_rule(ctx, &common_rules[i], self, err) < 0)
			goto fail;
	for (size_t i = 0; i < l->n; i++)
		if (add_rule(ctx, &l->rules[i], self, err) < 0)
			goto fail;
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}

static void loaded(const struct seccomp_list *l)
{
	log_debug("%s thread: seccomp filter of %u syscalls loaded", l->kind,
		  vmm_seccomp_count(l));
	selftest(l->kind);
}

/*
 * l's filter from the generated table, our pid put in: 0 loaded, 1 not
 * in the table (generate it), -1 with err.
 */
static int load_built(const struct seccomp_list *l, struct kiln_error *err)
{
	const struct seccomp_bpf *b = vmm_seccomp_bpf;
	cleanup_free struct sock_filter *f = NULL;
	struct sock_fprog prog;

	if (b == NULL)
		return 1;
	while (b->list != NULL && b->list != l)
		b++;
	if (b->list == NULL)
		return 1;
	f = malloc(b->len * sizeof(*f));
	if (f == NULL)
		return kiln_error_set(err, ENOMEM, "%s thread's filter",
				      l->kind);
	memcpy(f, b->insns, b->len * sizeof(*f));
	/* the generator checked the stand-in is only ever a JEQ's operand */
	for (unsigned int i = 0; i < b->len; i++)
		if (f[i].code == (BPF_JMP | BPF_JEQ | BPF_K) &&
		    f[i].k == SECCOMP_SELF_STANDIN)
			f[i].k = (uint32_t)getpid();
	prog = (struct sock_fprog){ .len = b->len, .filter = f };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return kiln_error_set(err, errno,
				      "load the %s thread's seccomp filter",
				      l->kind);
	loaded(l);
	return 0;
}

int vmm_lockdown(const struct seccomp_list *l, struct kiln_error *err)
{
	scmp_filter_ctx ctx;
	int ret;

	if (mode == SECCOMP_OFF)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return kiln_error_set(err, errno, "set no_new_privs");
	if (drop_caps(err) < 0)
		return -1;
	if (mode == SECCOMP_LOG) {
		sigset_t sys;

		/* threads block signals not theirs: this one must arrive */
		sigemptyset(&sys);
		sigaddset(&sys, SIGSYS);
		pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
		sc_kind = l->kind;
	}
	if (mode == SECCOMP_KILL) {
		ret = load_built(l, err);
		if (ret <= 0)
			return ret;
	}
	ctx = build(l,
		    mode == SECCOMP_LOG ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS,
		    (uint32_t)getpid(), err);
	if (ctx == NULL)
		return -1;
	ret = seccomp_load(ctx);
	if (ret < 0) {
		kiln_error_set(err, -ret, "load the %s thread's seccomp filter",
			       l->kind);
		goto fail;
	}
	seccomp_release(ctx);
	loaded(l);
	return 0;
fail:
	seccomp_release(ctx);
	return -1;
}

int vmm_seccomp_export(const struct seccomp_list *l, uint32_t pid, int fd,
		       struct kiln_error *err)
{
	scmp_filter_ctx ctx = build(l, SCMP_ACT_KILL_PROCESS, pid, err);
	int ret;

	if (ctx == NULL)
		return -1;
	ret = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (ret < 0)
		return kiln_error_set(err, -ret,
				      "export the %s thread's filter", l->kind);
	return 0;
}

static bool seen(const struct seccomp_rule *rules, size_t n, int nr)
{
	for (size_t i = 0; i < n; i++)
		if (rules[i].nr == nr)
			return true;
	return false;
}

unsigned int vmm_seccomp_count_args(const struct seccomp_list *l, int nr)
{
	unsigned int count = 0;

	for (size_t i = 0; i < l->n; i++)
		if (l->rules[i].nr == nr && l->rules[i].op == SC_EQ)
			count++;
	return count;
}

unsigned int vmm_seccomp_count(const struct seccomp_list *l)
{
	unsigned int count = 0;

	for (size_t i = 0; i < ARRAY_SIZE(common_rules); i++)
		if (!seen(common_rules, i, common_rules[i].nr))
			count++;
	for (size_t i = 0; i < l->n; i++)
		if (!seen(common_rules, ARRAY_SIZE(common_rules),
			  l->rules[i].nr) &&
		    !seen(l->rules, i, l->rules[i].nr))
			count++;
	return count;
}
