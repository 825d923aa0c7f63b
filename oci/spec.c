/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.json: the top level, process, mounts, hooks and annotations. The
 * "linux" section is read by spec_linux.c.
 */
#include "spec_priv.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/file.h"

const char *const oci_hook_names[OCI_HOOK_KINDS] = {
	[OCI_HOOK_PRESTART] = "prestart",
	[OCI_HOOK_CREATE_RUNTIME] = "createRuntime",
	[OCI_HOOK_CREATE_CONTAINER] = "createContainer",
	[OCI_HOOK_START_CONTAINER] = "startContainer",
	[OCI_HOOK_POSTSTART] = "poststart",
	[OCI_HOOK_POSTSTOP] = "poststop",
};

const char *oci_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return buf;
}

void *oci_alloc_array(size_t n, size_t size, const char *path,
		      struct kiln_error *err)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		kiln_error_set(err, ENOMEM, "%s: allocate", path);
	return p;
}

static int parse_u32(yajl_val v, const char *path, uint32_t *out,
		     struct kiln_error *err)
{
	uint64_t n = *out;

	if (json_uint(v, path, UINT32_MAX, &n, err) < 0)
		return -1;
	*out = (uint32_t)n;
	return 0;
}

static int parse_user(struct oci_user *u, yajl_val v, const char *path,
		      struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	yajl_val gids = json_get(v, "additionalGids");
	int n;

	if (json_want_object(v, path, err) < 0 ||
	    parse_u32(json_get(v, "uid"), SUBPATH(p, "%s.uid", path), &u->uid,
		      err) < 0 ||
	    parse_u32(json_get(v, "gid"), SUBPATH(p, "%s.gid", path), &u->gid,
		      err) < 0 ||
	    json_string(json_get(v, "username"),
			SUBPATH(p, "%s.username", path), &u->username, err) < 0)
		return -1;
	if (json_get(v, "umask") != NULL) {
		if (parse_u32(json_get(v, "umask"),
			      SUBPATH(p, "%s.umask", path), &u->umask, err) < 0)
			return -1;
		if (u->umask > 0777)
			return kiln_error_set(err, 0,
					      "%s.umask: %#o is not a "
					      "file mode mask",
					      path, u->umask);
		u->has_umask = true;
	}
	n = json_array_len(gids, SUBPATH(p, "%s.additionalGids", path),
			   OCI_ARRAY_MAX, err);
	if (n < 0)
		return -1;
	u->additional_gids =
		oci_alloc_array((size_t)n, sizeof(uint32_t), p, err);
	if (u->additional_gids == NULL)
		return -1;
	u->n_additional_gids = (size_t)n;
	for (int i = 0; i < n; i++)
		if (parse_u32(gids->u.array.values[i],
			      SUBPATH(p, "%s.additionalGids[%d]", path, i),
			      &u->additional_gids[i], err) < 0)
			return -1;
	return 0;
}

static int parse_capabilities(struct oci_capabilities *c, yajl_val v,
			      const char *path, struct kiln_error *err)
{
	char p[OCI_PATH_MAX];

	if (json_want_object(v, path, err) < 0 ||
	    json_strv(json_get(v, "bounding"), SUBPATH(p, "%s.bounding", path),
		      &c->bounding, &c->n_bounding, err) < 0 ||
	    json_strv(json_get(v, "effective"),
		      SUBPATH(p, "%s.effective", path), &c->effective,
		      &c->n_effective, err) < 0 ||
	    json_strv(json_get(v, "inheritable"),
		      SUBPATH(p, "%s.inheritable", path), &c->inheritable,
		      &c->n_inheritable, err) < 0 ||
	    json_strv(json_get(v, "permitted"),
		      SUBPATH(p, "%s.permitted", path), &c->permitted,
		      &c->n_permitted, err) < 0 ||
	    json_strv(json_get(v, "ambient"), SUBPATH(p, "%s.ambient", path),
		      &c->ambient, &c->n_ambient, err) < 0)
		return -1;
	return 0;
}

static int parse_rlimits(struct oci_process *proc, yajl_val v, const char *path,
			 struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	int n = json_array_len(v, path, OCI_ARRAY_MAX, err);

	if (n < 0)
		return -1;
	proc->rlimits =
		oci_alloc_array((size_t)n, sizeof(*proc->rlimits), path, err);
	if (proc->rlimits == NULL)
		return -1;
	proc->n_rlimits = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct oci_rlimit *r = &proc->rlimits[i];
		yajl_val e = v->u.array.values[i];

		if (json_want_object(e, SUBPATH(p, "%s[%d]", path, i), err) <
			    0 ||
		    json_string(json_get(e, "type"),
				SUBPATH(p, "%s[%d].type", path, i), &r->type,
				err) < 0 ||
		    json_uint(json_get(e, "soft"),
			      SUBPATH(p, "%s[%d].soft", path, i), UINT64_MAX,
			      &r->soft, err) < 0 ||
		    json_uint(json_get(e, "hard"),
			      SUBPATH(p, "%s[%d].hard", path, i), UINT64_MAX,
			      &r->hard, err) < 0)
			return -1;
		if (r->type == NULL || strncmp(r->type, "RLIMIT_", 7) != 0)
			return kiln_error_set(err, 0,
					      "%s[%d].type: must be "
					      "\"RLIMIT_<name>\"",
					      path, i);
		if (json_get(e, "soft") == NULL || json_get(e, "hard") == NULL)
			return kiln_error_set(err, 0,
					      "%s[%d]: soft and hard "
					      "are required",
					      path, i);
		for (int j = 0; j < i; j++)
			if (strcmp(proc->rlimits[j].type, r->type) == 0)
				return kiln_error_set(err, 0,
						      "%s[%d].type: %s given "
						      "twice",
						      path, i, r->type);
	}
	return 0;
}

static int parse_process_into(struct oci_process *proc, yajl_val v,
			      const char *path, struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	yajl_val size = json_get(v, "consoleSize");
	yajl_val caps = json_get(v, "capabilities");
	int64_t adj = 0;

	if (!YAJL_IS_OBJECT(v))
		return kiln_error_set(err, 0, "%s: must be an object", path);
	if (json_bool(json_get(v, "terminal"), SUBPATH(p, "%s.terminal", path),
		      &proc->terminal, err) < 0 ||
	    json_strv(json_get(v, "args"), SUBPATH(p, "%s.args", path),
		      &proc->args, &proc->n_args, err) < 0 ||
	    json_string(json_get(v, "commandLine"),
			SUBPATH(p, "%s.commandLine", path), &proc->command_line,
			err) < 0 ||
	    json_strv(json_get(v, "env"), SUBPATH(p, "%s.env", path),
		      &proc->env, &proc->n_env, err) < 0 ||
	    json_string(json_get(v, "cwd"), SUBPATH(p, "%s.cwd", path),
			&proc->cwd, err) < 0 ||
	    json_bool(json_get(v, "noNewPrivileges"),
		      SUBPATH(p, "%s.noNewPrivileges", path),
		      &proc->no_new_privileges, err) < 0 ||
	    json_string(json_get(v, "apparmorProfile"),
			SUBPATH(p, "%s.apparmorProfile", path),
			&proc->apparmor_profile, err) < 0 ||
	    json_string(json_get(v, "selinuxLabel"),
			SUBPATH(p, "%s.selinuxLabel", path),
			&proc->selinux_label, err) < 0 ||
	    parse_user(&proc->user, json_get(v, "user"),
		       SUBPATH(p, "%s.user", path), err) < 0 ||
	    parse_rlimits(proc, json_get(v, "rlimits"),
			  SUBPATH(p, "%s.rlimits", path), err) < 0)
		return -1;
	if (size != NULL) {
		if (json_want_object(size, SUBPATH(p, "%s.consoleSize", path),
				     err) < 0 ||
		    parse_u32(json_get(size, "width"),
			      SUBPATH(p, "%s.consoleSize.width", path),
			      &proc->console_width, err) < 0 ||
		    parse_u32(json_get(size, "height"),
			      SUBPATH(p, "%s.consoleSize.height", path),
			      &proc->console_height, err) < 0)
			return -1;
		proc->has_console_size = true;
	}
	if (caps != NULL) {
		proc->capabilities = calloc(1, sizeof(*proc->capabilities));
		if (proc->capabilities == NULL)
			return kiln_error_set(err, ENOMEM, "%s.capabilities",
					      path);
		if (parse_capabilities(proc->capabilities, caps,
				       SUBPATH(p, "%s.capabilities", path),
				       err) < 0)
			return -1;
	}
	if (json_get(v, "oomScoreAdj") != NULL) {
		if (json_int(json_get(v, "oomScoreAdj"),
			     SUBPATH(p, "%s.oomScoreAdj", path), -1000, 1000,
			     &adj, err) < 0)
			return -1;
		proc->has_oom_score_adj = true;
		proc->oom_score_adj = (int32_t)adj;
	}
	proc->has_io_priority = json_get(v, "ioPriority") != NULL;
	proc->has_scheduler = json_get(v, "scheduler") != NULL;

	/* what any Linux process needs, whatever runs it */
	if (proc->args == NULL || proc->n_args == 0)
		return kiln_error_set(err, 0, "%s.args: empty", path);
	if (proc->args[0][0] == '\0')
		return kiln_error_set(err, 0, "%s.args[0]: empty", path);
	if (proc->cwd == NULL)
		return kiln_error_set(err, 0, "%s.cwd: missing", path);
	if (proc->cwd[0] != '/')
		return kiln_error_set(err, 0,
				      "%s.cwd: \"%s\" is not an absolute path",
				      path, proc->cwd);
	for (size_t i = 0; i < proc->n_env; i++)
		if (strchr(proc->env[i], '=') == NULL || proc->env[i][0] == '=')
			return kiln_error_set(err, 0,
					      "%s.env[%zu]: \"%s\" is not "
					      "KEY=value",
					      path, i, proc->env[i]);
	return 0;
}

void oci_process_free(struct oci_process *p)
{
	struct oci_capabilities *c;

	if (p == NULL)
		return;
	free(p->user.additional_gids);
	free(p->user.username);
	json_strv_free(p->args);
	free(p->command_line);
	json_strv_free(p->env);
	free(p->cwd);
	c = p->capabilities;
	if (c != NULL) {
		json_strv_free(c->bounding);
		json_strv_free(c->effective);
		json_strv_free(c->inheritable);
		json_strv_free(c->permitted);
		json_strv_free(c->ambient);
		free(c);
	}
	for (size_t i = 0; i < p->n_rlimits; i++)
		free(p->rlimits[i].type);
	free(p->rlimits);
	free(p->apparmor_profile);
	free(p->selinux_label);
	free(p);
}

static struct oci_process *process_from_tree(yajl_val v, const char *path,
					     struct kiln_error *err)
{
	struct oci_process *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		kiln_error_set(err, ENOMEM, "%s", path);
		return NULL;
	}
	if (parse_process_into(p, v, path, err) < 0) {
		oci_process_free(p);
		return NULL;
	}
	return p;
}

struct oci_process *oci_process_parse(const char *text, size_t len,
				      struct kiln_error *err)
{
	yajl_val root = json_parse(text, len, err);
	struct oci_process *p;

	if (root == NULL)
		return NULL;
	p = process_from_tree(root, "process", err);
	yajl_tree_free(root);
	return p;
}

static int parse_mounts(struct oci_spec *s, yajl_val v, struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	int n = json_array_len(v, "mounts", OCI_ARRAY_MAX, err);

	if (n < 0)
		return -1;
	s->mounts =
		oci_alloc_array((size_t)n, sizeof(*s->mounts), "mounts", err);
	if (s->mounts == NULL)
		return -1;
	s->n_mounts = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct oci_mount *m = &s->mounts[i];
		yajl_val e = v->u.array.values[i];

		if (json_want_object(e, SUBPATH(p, "mounts[%d]", i), err) < 0 ||
		    json_string(json_get(e, "destination"),
				SUBPATH(p, "mounts[%d].destination", i),
				&m->destination, err) < 0 ||
		    json_string(json_get(e, "type"),
				SUBPATH(p, "mounts[%d].type", i), &m->type,
				err) < 0 ||
		    json_string(json_get(e, "source"),
				SUBPATH(p, "mounts[%d].source", i), &m->source,
				err) < 0 ||
		    json_strv(json_get(e, "options"),
			      SUBPATH(p, "mounts[%d].options", i), &m->options,
			      &m->n_options, err) < 0)
			return -1;
		if (m->destination == NULL || m->destination[0] != '/')
			return kiln_error_set(err, 0,
					      "mounts[%d].destination: must "
					      "be an absolute path",
					      i);
		m->has_id_mappings = json_get(e, "uidMappings") != NULL ||
				     json_get(e, "gidMappings") != NULL;
	}
	return 0;
}

static int parse_hook_list(struct oci_spec *s, enum oci_hook_kind kind,
			   yajl_val v, struct kiln_error *err)
{
	char p[OCI_PATH_MAX];
	const char *name = oci_hook_names[kind];
	int n = json_array_len(v, SUBPATH(p, "hooks.%s", name), OCI_ARRAY_MAX,
			       err);

	if (n < 0)
		return -1;
	s->hooks[kind] =
		oci_alloc_array((size_t)n, sizeof(struct oci_hook), p, err);
	if (s->hooks[kind] == NULL)
		return -1;
	s->n_hooks[kind] = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct oci_hook *h = &s->hooks[kind][i];
		yajl_val e = v->u.array.values[i];

		if (json_want_object(e, SUBPATH(p, "hooks.%s[%d]", name, i),
				     err) < 0 ||
		    json_string(json_get(e, "path"),
				SUBPATH(p, "hooks.%s[%d].path", name, i),
				&h->path, err) < 0 ||
		    json_strv(json_get(e, "args"),
			      SUBPATH(p, "hooks.%s[%d].args", name, i),
			      &h->args, &h->n_args, err) < 0 ||
		    json_strv(json_get(e, "env"),
			      SUBPATH(p, "hooks.%s[%d].env", name, i), &h->env,
			      &h->n_env, err) < 0)
			return -1;
		if (h->path == NULL || h->path[0] != '/')
			return kiln_error_set(err, 0,
					      "hooks.%s[%d].path: must be an "
					      "absolute path",
					      name, i);
		if (json_get(e, "timeout") != NULL) {
			if (json_int(json_get(e, "timeout"),
				     SUBPATH(p, "hooks.%s[%d].timeout", name,
					     i),
				     1, INT32_MAX, &h->timeout, err) < 0)
				return -1;
			h->has_timeout = true;
		}
	}
	return 0;
}

static int parse_hooks(struct oci_spec *s, yajl_val v, struct kiln_error *err)
{
	if (json_want_object(v, "hooks", err) < 0)
		return -1;
	for (int k = 0; k < OCI_HOOK_KINDS; k++)
		if (parse_hook_list(s, k, json_get(v, oci_hook_names[k]), err) <
		    0)
			return -1;
	return 0;
}

static int parse_root(struct oci_spec *s, yajl_val v, struct kiln_error *err)
{
	if (v == NULL)
		return kiln_error_set(err, 0, "root: missing");
	if (json_want_object(v, "root", err) < 0 ||
	    json_string(json_get(v, "path"), "root.path", &s->root_path, err) <
		    0 ||
	    json_bool(json_get(v, "readonly"), "root.readonly",
		      &s->root_readonly, err) < 0)
		return -1;
	if (s->root_path == NULL || s->root_path[0] == '\0')
		return kiln_error_set(err, 0, "root.path: missing");
	return 0;
}

static int parse_tree(struct oci_spec *s, yajl_val root, struct kiln_error *err)
{
	yajl_val v;

	if (!YAJL_IS_OBJECT(root))
		return kiln_error_set(err, 0, "config.json: must be an object");
	if (json_string(json_get(root, "ociVersion"), "ociVersion",
			&s->oci_version, err) < 0)
		return -1;
	if (s->oci_version == NULL)
		return kiln_error_set(err, 0, "ociVersion: missing");
	/* 1.x only: a 2.0 document may mean things we cannot know */
	if (strncmp(s->oci_version, "1.", 2) != 0)
		return kiln_error_set(err, 0,
				      "ociVersion: \"%s\" is not supported "
				      "(1.x is)",
				      s->oci_version);
	if (parse_root(s, json_get(root, "root"), err) < 0 ||
	    json_string(json_get(root, "hostname"), "hostname", &s->hostname,
			err) < 0 ||
	    json_string(json_get(root, "domainname"), "domainname",
			&s->domainname, err) < 0 ||
	    parse_mounts(s, json_get(root, "mounts"), err) < 0 ||
	    parse_hooks(s, json_get(root, "hooks"), err) < 0 ||
	    json_strmap(json_get(root, "annotations"), "annotations",
			&s->annotation_keys, &s->annotation_values,
			&s->n_annotations, err) < 0)
		return -1;
	v = json_get(root, "process");
	if (v != NULL) {
		s->process = process_from_tree(v, "process", err);
		if (s->process == NULL)
			return -1;
	}
	v = json_get(root, "linux");
	if (v != NULL) {
		s->linux_ = calloc(1, sizeof(*s->linux_));
		if (s->linux_ == NULL)
			return kiln_error_set(err, ENOMEM, "linux");
		if (oci_parse_linux(s->linux_, v, err) < 0)
			return -1;
	}
	s->has_windows = json_get(root, "windows") != NULL;
	s->has_solaris = json_get(root, "solaris") != NULL;
	s->has_vm = json_get(root, "vm") != NULL;
	return 0;
}

struct oci_spec *oci_spec_parse(const char *text, size_t len,
				struct kiln_error *err)
{
	yajl_val root = json_parse(text, len, err);
	struct oci_spec *s;

	if (root == NULL)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		kiln_error_set(err, ENOMEM, "config.json");
	} else if (parse_tree(s, root, err) < 0) {
		oci_spec_free(s);
		s = NULL;
	}
	yajl_tree_free(root);
	return s;
}

struct oci_spec *oci_spec_load(const char *bundle, struct kiln_error *err)
{
	cleanup_free char *path = NULL, *text = NULL;
	struct oci_spec *s;
	size_t len = 0;

	if (asprintf(&path, "%s/config.json", bundle) < 0) {
		path = NULL;
		kiln_error_set(err, ENOMEM, "bundle path");
		return NULL;
	}
	text = file_read(path, OCI_CONFIG_MAX, &len, err);
	if (text == NULL)
		return NULL;
	s = oci_spec_parse(text, len, err);
	if (s == NULL)
		kiln_error_wrap(err, "%s", path);
	return s;
}

const char *oci_spec_annotation(const struct oci_spec *s, const char *key)
{
	for (size_t i = 0; i < s->n_annotations; i++)
		if (strcmp(s->annotation_keys[i], key) == 0)
			return s->annotation_values[i];
	return NULL;
}

void oci_spec_free(struct oci_spec *s)
{
	if (s == NULL)
		return;
	free(s->oci_version);
	free(s->root_path);
	oci_process_free(s->process);
	free(s->hostname);
	free(s->domainname);
	for (size_t i = 0; i < s->n_mounts; i++) {
		free(s->mounts[i].destination);
		free(s->mounts[i].type);
		free(s->mounts[i].source);
		json_strv_free(s->mounts[i].options);
	}
	free(s->mounts);
	for (int k = 0; k < OCI_HOOK_KINDS; k++) {
		for (size_t i = 0; i < s->n_hooks[k]; i++) {
			free(s->hooks[k][i].path);
			json_strv_free(s->hooks[k][i].args);
			json_strv_free(s->hooks[k][i].env);
		}
		free(s->hooks[k]);
	}
	json_strv_free(s->annotation_keys);
	json_strv_free(s->annotation_values);
	if (s->linux_ != NULL) {
		oci_linux_free(s->linux_);
		free(s->linux_);
	}
	free(s);
}
