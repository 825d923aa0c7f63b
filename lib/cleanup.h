/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scope cleanup with __attribute__((cleanup)). Ownership leaves a scope
 * only through an explicit steal: return steal_ptr(&p); / steal_fd(&fd).
 * Descriptors start at -1 so an early return closes nothing.
 */
#ifndef KILN_CLEANUP_H
#define KILN_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static inline void cleanup_freep(void *p)
{
	void **pp = p;

	free(*pp);
}

static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;

		close(*fd);
		errno = saved;
	}
}

static inline void cleanup_fclosep(FILE **f)
{
	if (*f != NULL)
		fclose(*f);
}

#define cleanup_free   __attribute__((cleanup(cleanup_freep)))
#define cleanup_close  __attribute__((cleanup(cleanup_closep)))
#define cleanup_fclose __attribute__((cleanup(cleanup_fclosep)))

static inline void *steal_ptr_impl(void *p)
{
	void **pp = p;
	void *v = *pp;

	*pp = NULL;
	return v;
}

#define steal_ptr(pp) ((__typeof__(*(pp)))steal_ptr_impl(pp))

static inline int steal_fd(int *fd)
{
	int v = *fd;

	*fd = -1;
	return v;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
