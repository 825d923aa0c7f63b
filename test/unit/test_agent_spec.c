/* SPDX-License-Identifier: Apache-2.0 */
/* kiln-agent's pure parts: ids, names, /etc files, mount options, the
 * stdio attach line, sysctl names and the stats file parsers. */
#include <linux/capability.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "../../agent/spec.h"
#include "tap.h"

static void test_ids(void)
{
	char long_id[80];
	struct kiln_error err = { 0 };

	ok(spec_id_valid("abc"), "plain id");
	ok(spec_id_valid("a.b-c_D9"), "id with . - _");
	ok(!spec_id_valid(""), "empty id");
	ok(!spec_id_valid(NULL), "NULL id");
	ok(!spec_id_valid("-abc"), "leading -");
	ok(!spec_id_valid(".."), "..");
	ok(!spec_id_valid("a/b"), "slash");
	ok(!spec_id_valid("a b"), "space");
	memset(long_id, 'a', 64);
	long_id[64] = '\0';
	ok(spec_id_valid(long_id), "64 bytes");
	long_id[64] = 'a';
	long_id[65] = '\0';
	ok(!spec_id_valid(long_id), "65 bytes");
	is_int(spec_check_id("exec_id", "", true, &err), 0, "empty allowed");
	is_int(spec_check_id("container_id", "", false, &err), -1,
	       "empty refused");
	ok(strstr(err.msg, "container_id is empty") != NULL, "names it: %s",
	   err.msg);
}

static void test_paths(void)
{
	struct kiln_error err = { 0 };

	is_int(spec_check_path("cwd", "/", &err), 0, "/");
	is_int(spec_check_path("cwd", "/usr/local/bin", &err), 0, "deep");
	is_int(spec_check_path("cwd", "rel", &err), -1, "relative");
	is_int(spec_check_path("cwd", "/a/../b", &err), -1, "..");
	is_int(spec_check_path("cwd", "/a/./b", &err), -1, ".");
	is_int(spec_check_path("cwd", "/a\nb", &err), -1, "control char");
	is_int(spec_check_path("cwd", "/a..b/c.", &err), 0, "dots in names");
}

static void test_names(void)
{
	struct kiln_error err = { 0 };
	char *good[] = { "CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN" };
	char *bad[] = { "CAP_CHOWN", "CAP_NOPE" };
	char *lower[] = { "cap_chown" };
	char *numeric[] = { "12" };
	uint64_t m;

	is_int(spec_rlimit_from_name("RLIMIT_NOFILE"), RLIMIT_NOFILE,
	       "RLIMIT_NOFILE");
	is_int(spec_rlimit_from_name("RLIMIT_RTTIME"), RLIMIT_RTTIME,
	       "RLIMIT_RTTIME");
	is_int(spec_rlimit_from_name("NOFILE"), -1, "no prefix");
	is_int(spec_rlimit_from_name("RLIMIT_NOPE"), -1, "unknown rlimit");
	is_int(spec_cap_from_name("CAP_CHOWN"), CAP_CHOWN, "CAP_CHOWN");
	is_int(spec_cap_from_name("CAP_SYS_ADMIN"), CAP_SYS_ADMIN,
	       "CAP_SYS_ADMIN");
	is_int(spec_cap_from_name("CAP_NOPE"), -1, "unknown cap");
	is_int(spec_caps_mask(good, 3, &m, &err), 0, "three caps");
	ok(m == ((1ull << CAP_CHOWN) | (1ull << CAP_NET_ADMIN) |
		 (1ull << CAP_SYS_ADMIN)),
	   "their mask");
	is_int(spec_caps_mask(bad, 2, &m, &err), -1, "unknown cap refused");
	ok(strstr(err.msg, "CAP_NOPE") != NULL, "names it: %s", err.msg);
	is_int(spec_caps_mask(lower, 1, &m, &err), -1, "lower case refused");
	is_int(spec_caps_mask(numeric, 1, &m, &err), -1, "number refused");
	m = spec_cap_default_mask();
	is_int(__builtin_popcountll(m), 14, "OCI default set has 14");
	ok((m & (1ull << CAP_SYS_ADMIN)) == 0, "without SYS_ADMIN");
	ok((m & (1ull << CAP_NET_BIND_SERVICE)) != 0, "with NET_BIND_SERVICE");
}

static void test_passwd(void)
{
	const char pw[] = "root:x:0:0:root:/root:/bin/sh\n"
			  "broken line\n"
			  "bad:x:notanumber:1::/:/bin/sh\n"
			  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
			  "alice:x:1000:100:Alice:/home/alice:/bin/sh";
	const char gr[] = "root:x:0:\n"
			  "wheel:x:10:root,alice\n"
			  "audio:x:29:bob,alice\n"
			  "junk\n"
			  "users:x:100:\n";
	struct kiln_error err = { 0 };
	uint32_t uid = 99, gid = 99, g[8];

	is_int(spec_passwd_lookup(pw, strlen(pw), "alice", &uid, &gid, &err), 0,
	       "alice found (last line, no newline)");
	is_int(uid, 1000, "alice's uid");
	is_int(gid, 100, "alice's gid");
	is_int(spec_passwd_lookup(pw, strlen(pw), "daemon", &uid, &gid, &err),
	       0, "daemon found");
	is_int(uid, 1, "daemon's uid");
	is_int(spec_passwd_lookup(pw, strlen(pw), "bob", &uid, &gid, &err), -1,
	       "unknown user");
	ok(strstr(err.msg, "unknown user `bob`") != NULL, "names it: %s",
	   err.msg);
	is_int(spec_passwd_lookup(pw, strlen(pw), "bad", &uid, &gid, &err), -1,
	       "entry with a bad uid skipped");
	is_int(spec_passwd_lookup(pw, strlen(pw), "1000", &uid, &gid, &err), 0,
	       "numeric user in passwd");
	is_int(gid, 100, "its gid from passwd");
	is_int(spec_passwd_lookup(pw, strlen(pw), "4242", &uid, &gid, &err), 0,
	       "numeric user not in passwd");
	is_int(uid, 4242, "uid as given");
	is_int(spec_passwd_lookup("", 0, "root", &uid, &gid, &err), -1,
	       "empty passwd");
	is_int(spec_group_lookup(gr, strlen(gr), "alice", g, 8), 2,
	       "alice in two groups");
	ok(g[0] == 10 && g[1] == 29, "wheel and audio");
	is_int(spec_group_lookup(gr, strlen(gr), "alice", g, 1), 1,
	       "bounded by max");
	is_int(spec_group_lookup(gr, strlen(gr), "nobody", g, 8), 0,
	       "nobody in none");
}

static void test_mount_opts(void)
{
	char *o1[] = { "ro", "nosuid", "nodev", "size=64m", "mode=755" };
	char *o2[] = { "rbind", "rprivate", "rw" };
	char *o3[] = { "a,b" };
	struct spec_mount_opts m;
	struct kiln_error err = { 0 };

	is_int(spec_mount_opts_parse(o1, 5, &m, &err), 0, "flags and data");
	ok(m.flags == (MS_RDONLY | MS_NOSUID | MS_NODEV), "flags");
	ok(strcmp(m.data, "size=64m,mode=755") == 0, "data `%s`", m.data);
	ok(!m.bind, "not a bind");
	is_int(spec_mount_opts_parse(o2, 3, &m, &err), 0, "rbind");
	ok(m.bind && m.recursive, "recursive bind");
	ok(m.propagation == (MS_PRIVATE | MS_REC), "rprivate");
	ok(m.flags == 0 && m.data[0] == '\0', "rw clears, no data");
	is_int(spec_mount_opts_parse(o3, 1, &m, &err), -1, "comma refused");
}

static void test_stream_header(void)
{
	struct spec_stream_hdr h;
	struct kiln_error err = { 0 };
	const char *l;

	l = "c1 - stdin";
	is_int(spec_stream_header_parse(l, strlen(l), &h, &err), 0, "init");
	ok(strcmp(h.container_id, "c1") == 0 && h.exec_id[0] == '\0' &&
		   h.stream == SPEC_STDIN,
	   "c1, init, stdin");
	l = "c1 e.2 stderr";
	is_int(spec_stream_header_parse(l, strlen(l), &h, &err), 0, "exec");
	ok(strcmp(h.exec_id, "e.2") == 0 && h.stream == SPEC_STDERR, "e.2 "
								     "stderr");
	l = "c1 - stdio";
	is_int(spec_stream_header_parse(l, strlen(l), &h, &err), -1,
	       "unknown stream");
	l = "c1 -";
	is_int(spec_stream_header_parse(l, strlen(l), &h, &err), -1,
	       "two fields");
	l = "c1 - stdout x";
	is_int(spec_stream_header_parse(l, strlen(l), &h, &err), -1,
	       "four fields");
	l = "../x - stdout";
	is_int(spec_stream_header_parse(l, strlen(l), &h, &err), -1, "bad id");
	is_int(spec_stream_header_parse("c1\0- stdout", 11, &h, &err), -1,
	       "NUL byte");
	char big[400];
	memset(big, 'a', sizeof(big));
	is_int(spec_stream_header_parse(big, sizeof(big), &h, &err), -1,
	       "too long");
}

static void test_sandbox_names(void)
{
	char p[128];
	struct kiln_error err = { 0 };

	is_int(spec_sysctl_path("net.ipv4.ip_forward", p, sizeof(p), &err), 0,
	       "dotted sysctl");
	ok(strcmp(p, "/proc/sys/net/ipv4/ip_forward") == 0, "%s", p);
	is_int(spec_sysctl_path("net/ipv4/conf/eth0.100/forwarding", p,
				sizeof(p), &err),
	       0, "slashed sysctl");
	ok(strcmp(p, "/proc/sys/net/ipv4/conf/eth0.100/forwarding") == 0, "%s",
	   p);
	is_int(spec_sysctl_path("net..x", p, sizeof(p), &err), -1, "..");
	is_int(spec_sysctl_path("../../etc/x", p, sizeof(p), &err), -1,
	       "escape");
	is_int(spec_sysctl_path("kernel.x y", p, sizeof(p), &err), -1, "space");
	ok(spec_hostname_valid("web-1.example"), "hostname");
	ok(!spec_hostname_valid("-x"), "leading -");
	ok(!spec_hostname_valid("a b"), "space");
	ok(!spec_hostname_valid(""), "empty");
}

static void test_stats_parsers(void)
{
	const char cpu[] = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
	const char io[] = "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n"
			  "254:16 rbytes=1 wbytes=2 rios=3 wios=4\n";
	const char net[] = "Inter-|   Receive   |  Transmit\n"
			   " face |bytes    packets errs drop fifo frame "
			   "compressed "
			   "multicast|bytes    packets errs drop fifo colls "
			   "carrier "
			   "compressed\n"
			   "    lo:  100 1 0 0 0 0 0 0  100 1 0 0 0 0 0 0\n"
			   "  eth0: 2000 5 0 0 0 0 0 0 3000 6 0 0 0 0 0 0\n"
			   "  eth1:   10 1 0 0 0 0 0 0   20 1 0 0 0 0 0 0\n";
	uint64_t v = 0, r, w;

	is_int(spec_kv_get(cpu, "user_usec", &v), 0, "user_usec found");
	is_int(v, 1000, "its value");
	is_int(spec_kv_get(cpu, "system_usec", &v), 0, "last key");
	is_int(v, 500, "its value");
	is_int(spec_kv_get(cpu, "usage", &v), -1, "prefix is not a key");
	spec_io_stat_sum(io, &r, &w);
	is_int(r, 4097, "rbytes summed");
	is_int(w, 8194, "wbytes summed");
	spec_net_dev_sum(net, &r, &w);
	is_int(r, 2010, "rx without lo");
	is_int(w, 3020, "tx without lo");
	is_int(spec_parse_limit("max\n"), 0, "max is 0");
	is_int(spec_parse_limit("1048576\n"), 1048576, "a limit");
}

int main(void)
{
	test_ids();
	test_paths();
	test_names();
	test_passwd();
	test_mount_opts();
	test_stream_header();
	test_sandbox_names();
	test_stats_parsers();
	return tap_done();
}
