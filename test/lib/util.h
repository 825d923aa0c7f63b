/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by the unit tests. */
#ifndef KILN_TEST_UTIL_H
#define KILN_TEST_UTIL_H

#include <stdint.h>

/*
 * How many times needle occurs in the first 8 KiB of the file at path
 * (a log the code under test wrote); -1 if it cannot be read.
 */
int count_in_file(const char *path, const char *needle);

/* Interrupts raised since the last call: read (and so reset) an eventfd. */
uint64_t irqs(int efd);

#endif
