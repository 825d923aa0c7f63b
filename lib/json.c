/* SPDX-License-Identifier: Apache-2.0 */
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

/*
 * caller-controlled: bound the nesting before yajl sees the text. yajl
 * takes comments, so a quote inside one must not start a string here.
 */
static bool json_depth_ok(const char *s, size_t len)
{
	unsigned int depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		const char *end;

		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '/' && i + 1 < len && s[i + 1] == '/') {
			end = memchr(s + i, '\n', len - i);
			i = end ? (size_t)(end - s) : len;
		} else if (ch == '/' && i + 1 < len && s[i + 1] == '*') {
			end = memmem(s + i + 2, len - i - 2, "*/", 2);
			i = end ? (size_t)(end - s) + 1 : len;
		} else if (ch == '[' || ch == '{') {
			if (++depth > JSON_MAX_DEPTH)
				return false;
		} else if ((ch == ']' || ch == '}') && depth > 0) {
			depth--;
		}
	}
	return true;
}

yajl_val json_parse(const char *text, size_t len, struct kiln_error *err)
{
	cleanup_free char *buf = NULL;
	char errbuf[256] = "";
	yajl_val root;

	if (memchr(text, '\0', len) != NULL) {
		kiln_error_set(err, 0, "invalid JSON: NUL byte in JSON");
		return NULL;
	}
	if (!json_depth_ok(text, len)) {
		kiln_error_set(err, 0, "invalid JSON: nested deeper than %d",
			       JSON_MAX_DEPTH);
		return NULL;
	}
	buf = strndup(text, len);
	if (buf == NULL) {
		kiln_error_set(err, ENOMEM, "copy JSON");
		return NULL;
	}
	root = yajl_tree_parse(buf, errbuf, sizeof(errbuf));
	if (root == NULL) {
		/* yajl's message continues with a picture of the input */
		errbuf[strcspn(errbuf, "\n")] = '\0';
		kiln_error_set(err, 0, "invalid JSON: %s",
			       errbuf[0] ? errbuf : "parse error");
	}
	return root;
}

yajl_val json_get(yajl_val obj, const char *key)
{
	if (obj == NULL || !YAJL_IS_OBJECT(obj))
		return NULL;
	for (size_t i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return obj->u.object.values[i];
	return NULL;
}

int json_string(yajl_val v, const char *path, char **out,
		struct kiln_error *err)
{
	char *s;

	if (v == NULL)
		return 0;
	if (!YAJL_IS_STRING(v))
		return kiln_error_set(err, 0, "%s: must be a string", path);
	s = strdup(v->u.string);
	if (s == NULL)
		return kiln_error_set(err, ENOMEM, "%s: copy", path);
	free(*out);
	*out = s;
	return 0;
}

int json_bool(yajl_val v, const char *path, bool *out, struct kiln_error *err)
{
	if (v == NULL)
		return 0;
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
		return kiln_error_set(err, 0, "%s: must be true or false",
				      path);
	*out = YAJL_IS_TRUE(v);
	return 0;
}

int json_int(yajl_val v, const char *path, int64_t min, int64_t max,
	     int64_t *out, struct kiln_error *err)
{
	long long n;

	if (v == NULL)
		return 0;
	/* yajl gives a number that does not fit a long long as a double */
	if (!YAJL_IS_INTEGER(v))
		return kiln_error_set(err, 0,
				      "%s: must be an integer from "
				      "%lld to %lld",
				      path, (long long)min, (long long)max);
	n = YAJL_GET_INTEGER(v);
	if (n < min || n > max)
		return kiln_error_set(err, 0,
				      "%s: %lld is out of range %lld..%lld",
				      path, n, (long long)min, (long long)max);
	*out = n;
	return 0;
}

int json_uint(yajl_val v, const char *path, uint64_t max, uint64_t *out,
	      struct kiln_error *err)
{
	unsigned long long n;
	char *end;

	if (v == NULL)
		return 0;
	/* the raw text: a value above LLONG_MAX is not an integer to yajl */
	if (!YAJL_IS_NUMBER(v) || v->u.number.r == NULL ||
	    !(v->u.number.r[0] >= '0' && v->u.number.r[0] <= '9'))
		return kiln_error_set(err, 0,
				      "%s: must be an integer from 0 to %llu",
				      path, (unsigned long long)max);
	errno = 0;
	n = strtoull(v->u.number.r, &end, 10);
	if (*end != '\0' || errno != 0 || n > max)
		return kiln_error_set(err, 0, "%s: %s is out of range 0..%llu",
				      path, v->u.number.r,
				      (unsigned long long)max);
	*out = n;
	return 0;
}

int json_want_object(yajl_val v, const char *path, struct kiln_error *err)
{
	if (v != NULL && !YAJL_IS_OBJECT(v))
		return kiln_error_set(err, 0, "%s: must be an object", path);
	return 0;
}

int json_array_len(yajl_val v, const char *path, size_t max,
		   struct kiln_error *err)
{
	if (v == NULL)
		return 0;
	if (!YAJL_IS_ARRAY(v))
		return kiln_error_set(err, 0, "%s: must be an array", path);
	if (v->u.array.len > max)
		return kiln_error_set(err, 0, "%s: more than %zu entries", path,
				      max);
	return (int)v->u.array.len;
}

void json_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

/* JSON arrays in a config: more entries than this is a mistake or abuse */
#define JSON_STRV_MAX 65536

int json_strv(yajl_val v, const char *path, char ***out, size_t *n,
	      struct kiln_error *err)
{
	char **vec;
	int len = json_array_len(v, path, JSON_STRV_MAX, err);

	if (len < 0 || v == NULL)
		return len < 0 ? -1 : 0;
	vec = calloc((size_t)len + 1, sizeof(*vec));
	if (vec == NULL)
		return kiln_error_set(err, ENOMEM, "%s: copy", path);
	for (int i = 0; i < len; i++) {
		yajl_val s = v->u.array.values[i];

		if (!YAJL_IS_STRING(s)) {
			json_strv_free(vec);
			return kiln_error_set(
				err, 0, "%s[%d]: must be a string", path, i);
		}
		vec[i] = strdup(s->u.string);
		if (vec[i] == NULL) {
			json_strv_free(vec);
			return kiln_error_set(err, ENOMEM, "%s: copy", path);
		}
	}
	json_strv_free(*out);
	*out = vec;
	if (n != NULL)
		*n = (size_t)len;
	return 0;
}

int json_strmap(yajl_val v, const char *path, char ***keys, char ***values,
		size_t *n, struct kiln_error *err)
{
	char **k = NULL, **val = NULL;
	size_t len;

	if (v == NULL)
		return 0;
	if (!YAJL_IS_OBJECT(v))
		return kiln_error_set(err, 0, "%s: must be an object", path);
	len = v->u.object.len;
	if (len > JSON_STRV_MAX)
		return kiln_error_set(err, 0, "%s: more than %d entries", path,
				      JSON_STRV_MAX);
	k = calloc(len + 1, sizeof(*k));
	val = calloc(len + 1, sizeof(*val));
	if (k == NULL || val == NULL)
		goto nomem;
	for (size_t i = 0; i < len; i++) {
		yajl_val s = v->u.object.values[i];

		if (!YAJL_IS_STRING(s)) {
			kiln_error_set(err, 0, "%s.%s: must be a string", path,
				       v->u.object.keys[i]);
			goto fail;
		}
		k[i] = strdup(v->u.object.keys[i]);
		val[i] = strdup(s->u.string);
		if (k[i] == NULL || val[i] == NULL) {
			free(k[i]); /* the pair is not both in the vectors */
			free(val[i]);
			k[i] = val[i] = NULL;
			goto nomem;
		}
	}
	json_strv_free(*keys);
	json_strv_free(*values);
	*keys = k;
	*values = val;
	*n = len;
	return 0;
nomem:
	kiln_error_set(err, ENOMEM, "%s: copy", path);
fail:
	json_strv_free(k);
	json_strv_free(val);
	return -1;
}
