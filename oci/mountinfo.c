/* SPDX-License-Identifier: Apache-2.0 */
#include "mountinfo.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/file.h"

#define MOUNTINFO_MAX (16u << 20) /* a machine with many containers */

void mountinfo_unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r != '\0'; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
		    r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) |
				      ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

void overlay_layers_free(struct overlay_layers *l)
{
	for (size_t i = 0; i < l->n_lower; i++)
		free(l->lower[i]);
	free(l->lower);
	free(l->upper);
	free(l->work);
	memset(l, 0, sizeof(*l));
}

/*
 * The value of key= in a comma-separated option list, copied and
 * unescaped; NULL when absent. Values are escaped (',' appears as \054),
 * so a plain comma always ends one.
 */
static char *option_value(const char *opts, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = opts; p != NULL && *p != '\0';) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > klen && strncmp(p, key, klen) == 0 &&
		    p[klen] == '=') {
			char *v = strndup(p + klen + 1, len - klen - 1);

			if (v != NULL)
				mountinfo_unescape(v);
			return v;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

/* Split lowerdir on ':' that is not escaped as "\:"; unescape "\x". */
static int split_lower(char *v, struct overlay_layers *out,
		       struct kiln_error *err)
{
	size_t n = 1;

	for (char *p = v; *p != '\0'; p++) {
		if (p[0] == '\\' && p[1] != '\0')
			p++;
		else if (*p == ':')
			n++;
	}
	if (n > OVERLAY_MAX_LAYERS)
		return kiln_error_set(err, 0,
				      "overlay: %zu layers, more than %d", n,
				      OVERLAY_MAX_LAYERS);
	out->lower = calloc(n, sizeof(char *));
	if (out->lower == NULL)
		return kiln_error_set(err, ENOMEM, "overlay layers");
	for (char *p = v;;) {
		char *w = p, *r = p;

		while (*r != '\0' && *r != ':') {
			if (r[0] == '\\' && r[1] != '\0')
				r++;
			*w++ = *r++;
		}
		bool last = *r == '\0';

		*w = '\0';
		out->lower[out->n_lower] = strdup(p);
		if (out->lower[out->n_lower] == NULL)
			return kiln_error_set(err, ENOMEM, "overlay layers");
		out->n_lower++;
		if (last)
			break;
		p = r + 1;
	}
	return 0;
}

static bool all_absolute(const struct overlay_layers *l)
{
	for (size_t i = 0; i < l->n_lower; i++)
		if (l->lower[i][0] != '/')
			return false;
	return (l->upper == NULL || l->upper[0] == '/') &&
	       (l->work == NULL || l->work[0] == '/');
}

/*
 * One mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...]
 * - FSTYPE SOURCE SUPEROPTS". Fills the fields it returns pointers to
 * (into line, which it modifies); false for a line of another shape.
 */
static bool split_line(char *line, char **mountpoint, char **fstype,
		       char **superopts)
{
	char *f[6], *save = NULL, *tok;
	int i = 0;

	for (tok = strtok_r(line, " ", &save); tok != NULL && i < 6;
	     tok = strtok_r(NULL, " ", &save))
		f[i++] = tok;
	if (i < 6)
		return false;
	/* optional fields until the lone "-" */
	while (tok != NULL && strcmp(tok, "-") != 0)
		tok = strtok_r(NULL, " ", &save);
	if (tok == NULL)
		return false;
	*fstype = strtok_r(NULL, " ", &save);
	if (*fstype == NULL || strtok_r(NULL, " ", &save) == NULL)
		return false;
	*superopts = strtok_r(NULL, " ", &save);
	if (*superopts == NULL)
		return false;
	*mountpoint = f[4];
	mountinfo_unescape(*mountpoint);
	return true;
}

int overlay_layers_parse(const char *mountinfo, const char *path,
			 struct overlay_layers *out, struct kiln_error *err)
{
	cleanup_free char *text = strdup(mountinfo);
	cleanup_free char *opts = NULL;
	bool is_overlay = false, found = false;
	char *save = NULL;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		return kiln_error_set(err, ENOMEM, "mountinfo");
	/* later lines are mounted on top of earlier ones: keep the last */
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *mp, *fstype, *so;

		if (!split_line(line, &mp, &fstype, &so) ||
		    strcmp(mp, path) != 0)
			continue;
		found = true;
		is_overlay = strcmp(fstype, "overlay") == 0;
		free(opts);
		opts = is_overlay ? strdup(so) : NULL;
		if (is_overlay && opts == NULL)
			return kiln_error_set(err, ENOMEM, "mountinfo");
	}
	if (!found || !is_overlay)
		return 1;
	{
		cleanup_free char *lower = option_value(opts, "lowerdir");

		out->upper = option_value(opts, "upperdir");
		out->work = option_value(opts, "workdir");
		if (lower == NULL) {
			overlay_layers_free(out);
			return kiln_error_set(err, 0,
					      "overlay at `%s` has no lowerdir",
					      path);
		}
		if (split_lower(lower, out, err) < 0) {
			overlay_layers_free(out);
			return -1;
		}
	}
	if (!all_absolute(out)) {
		overlay_layers_free(out);
		return kiln_error_set(err, 0,
				      "overlay at `%s` names its layers by "
				      "relative paths",
				      path);
	}
	return 0;
}

int overlay_layers_at(const char *path, struct overlay_layers *out,
		      struct kiln_error *err)
{
	cleanup_free char *text =
		file_read("/proc/self/mountinfo", MOUNTINFO_MAX, NULL, err);

	if (text == NULL)
		return -1;
	return overlay_layers_parse(text, path, out, err);
}
