/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading JSON documents (config.json, state.json, kiln's own config) as
 * yajl trees, with typed getters whose errors name the value's path:
 * "process.args[2]: must be a string". The text may come from anyone:
 * json_parse() bounds its nesting and refuses NUL bytes before yajl sees
 * it.
 */
#ifndef KILN_JSON_H
#define KILN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "error.h"

/* yajl builds trees iteratively but frees them recursively */
#define JSON_MAX_DEPTH 32

/* Parse text (len bytes, no NUL needed); NULL with err on bad JSON. */
yajl_val json_parse(const char *text, size_t len, struct kiln_error *err);

/* Member key of object obj, or NULL when absent or obj is no object. */
yajl_val json_get(yajl_val obj, const char *key);

/*
 * Typed getters: v must have the type (or be NULL for an absent member,
 * which leaves *out as it is and returns 0). path names v in errors.
 */
int json_string(yajl_val v, const char *path, char **out,
		struct kiln_error *err);
int json_bool(yajl_val v, const char *path, bool *out, struct kiln_error *err);
int json_int(yajl_val v, const char *path, int64_t min, int64_t max,
	     int64_t *out, struct kiln_error *err);
/* An unsigned integer up to max, all 64 bits of it (yajl's long long
 * holds only 63). */
int json_uint(yajl_val v, const char *path, uint64_t max, uint64_t *out,
	      struct kiln_error *err);
/* An array of strings as a NULL-terminated vector of n strings. */
int json_strv(yajl_val v, const char *path, char ***out, size_t *n,
	      struct kiln_error *err);
/* An object of string values as two parallel vectors of n strings. */
int json_strmap(yajl_val v, const char *path, char ***keys, char ***values,
		size_t *n, struct kiln_error *err);
/* v must be an object (or absent): 0, else -1 naming path. */
int json_want_object(yajl_val v, const char *path, struct kiln_error *err);
/* v must be an array (or absent): its length, else -1 naming path. */
int json_array_len(yajl_val v, const char *path, size_t max,
		   struct kiln_error *err);

/* Free a NULL-terminated vector and its strings. */
void json_strv_free(char **v);

#endif
