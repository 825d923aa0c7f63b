/* SPDX-License-Identifier: Apache-2.0 */
/* runc's flag syntax, for the global flags and every verb's own. */
#include <string.h>

#include "kiln.h"

int cli_flag(int argc, char **argv, int *i, const char *name,
	     const char **value, struct kiln_error *err)
{
	const char *a = argv[*i];
	size_t n = strlen(name);

	if (a[0] != '-')
		return 0;
	a += a[1] == '-' ? 2 : 1;
	if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
		return 0;
	if (a[n] == '=') {
		*value = a + n + 1;
		return 1;
	}
	if (*i + 1 >= argc)
		return kiln_error_set(err, 0, "flag --%s needs a value", name);
	*value = argv[++*i];
	return 1;
}

int cli_bool(char **argv, int i, const char *name, bool *out)
{
	const char *a = argv[i];
	size_t n = strlen(name);

	if (a[0] != '-')
		return 0;
	a += a[1] == '-' ? 2 : 1;
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '\0')
		*out = true;
	else if (strcmp(a + n, "=true") == 0)
		*out = true;
	else if (strcmp(a + n, "=false") == 0)
		*out = false;
	else
		return 0;
	return 1;
}
