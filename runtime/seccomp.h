/* SPDX-License-Identifier: Apache-2.0 */
/* config.json's linux.seccomp as the agent's Process.seccomp. */
#ifndef KILN_RUNTIME_SECCOMP_H
#define KILN_RUNTIME_SECCOMP_H

#include "../oci/spec.h"
#include "kiln.h"

/*
 * out->seccomp from s (NULL: left unset, no filter). The message points
 * into s; what is allocated here is owned by r. The agent judges
 * actions, ops, flags and architectures (it has libseccomp); here only
 * listenerPath is refused, which the agent has no field for: it goes
 * with SCMP_ACT_NOTIFY, which the agent refuses by name.
 */
int request_seccomp(struct agent_request *r, const struct oci_seccomp *s,
		    Kiln__Agent__V1__Process *out, struct kiln_error *err);

#endif
