/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shim's command line, as containerd passes it to every v2 shim, and
 * the names it derives from it: the socket's address, kiln's --root.
 */
#include <errno.h>
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

int shim_parse_args(int argc, char **argv, struct shim_opts *o,
		    struct kiln_error *err)
{
	static const struct {
		const char *name;
		size_t off;
	} vals[] = {
		{ "namespace", offsetof(struct shim_opts, ns) },
		{ "address", offsetof(struct shim_opts, address) },
		{ "publish-binary",
		  offsetof(struct shim_opts, publish_binary) },
		{ "id", offsetof(struct shim_opts, id) },
		{ "bundle", offsetof(struct shim_opts, bundle) },
		{ "socket", SIZE_MAX }, /* taken, unused: fd 3 is ours */
	};
	int i;

	memset(o, 0, sizeof(*o));
	o->publish_binary = "containerd";
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i] + (argv[i][1] == '-' ? 2 : 1);
		const char *eq = strchr(a, '=');
		size_t n = eq ? (size_t)(eq - a) : strlen(a);
		bool found = false;

		if ((n == 5 && strncmp(a, "debug", 5) == 0) ||
		    (n == 1 && a[0] == 'v')) {
			bool on = !eq || strcmp(eq + 1, "true") == 0;

			if (a[0] == 'v')
				o->version = on;
			else
				o->debug = on;
			continue;
		}
		for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
			const char *v;

			if (strlen(vals[k].name) != n ||
			    strncmp(a, vals[k].name, n) != 0)
				continue;
			if (eq)
				v = eq + 1;
			else if (i + 1 < argc)
				v = argv[++i];
			else
				return kiln_error_set(err, 0,
						      "flag -%s needs a value",
						      vals[k].name);
			if (vals[k].off != SIZE_MAX)
				*(const char **)((char *)o + vals[k].off) = v;
			found = true;
			break;
		}
		if (!found)
			return kiln_error_set(err, 0, "unknown flag %s",
					      argv[i]);
	}
	if (i < argc)
		o->action = argv[i++];
	if (i < argc)
		return kiln_error_set(err, 0, "unexpected argument %s",
				      argv[i]);
	if (o->action && strcmp(o->action, "start") != 0 &&
	    strcmp(o->action, "delete") != 0)
		return kiln_error_set(err, 0, "unknown action %s", o->action);
	if (o->version)
		return 0;
	if (!o->ns || !*o->ns)
		return kiln_error_set(err, 0, "-namespace is required");
	if (!o->id || !*o->id)
		return kiln_error_set(err, 0, "-id is required");
	if (!o->address)
		o->address = "";
	return 0;
}

int shim_socket_address(const char *address, const char *ns, const char *group,
			char out[SHIM_ADDRESS_MAX], struct kiln_error *err)
{
	/* Go's filepath.Join: cleaned, so "" parts and a trailing / vanish */
	char joined[4096];
	unsigned char d[SHA256_DIGEST_LENGTH];
	size_t n = 0;
	int w;

	w = snprintf(joined, sizeof(joined), "%s%s%s/%s", address,
		     *address ? "/" : "", ns, group);
	if (w < 0 || (size_t)w >= sizeof(joined))
		return kiln_error_set(err, ENAMETOOLONG, "-address");
	/* collapse "//" from an address ending in '/' */
	for (size_t i = 0, j = 0;; i++) {
		if (joined[i] == '/' && j > 0 && joined[j - 1] == '/')
			continue;
		joined[j++] = joined[i];
		if (!joined[i])
			break;
	}
	SHA256((const unsigned char *)joined, strlen(joined), d);
	n = (size_t)snprintf(out, SHIM_ADDRESS_MAX, "unix://%s/",
			     SHIM_SOCKET_DIR);
	for (size_t i = 0; i < sizeof(d); i++)
		n += (size_t)snprintf(out + n, SHIM_ADDRESS_MAX - n, "%02x",
				      d[i]);
	return 0;
}

char *shim_root(const char *ns)
{
	const char *base = getenv("KILN_SHIM_ROOT");
	char *r;

	if (!base || !*base)
		base = SHIM_DEFAULT_ROOT;
	if (asprintf(&r, "%s/%s", base, ns) < 0)
		return NULL;
	return r;
}
