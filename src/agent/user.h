/* SPDX-License-Identifier: Apache-2.0 */
/* Resolves a docker-style user spec against the guest's /etc/passwd and /etc/group. */
#ifndef MSB_AGENT_USER_H
#define MSB_AGENT_USER_H

#include <stdio.h>
#include <sys/types.h>

#define USER_MAX_GROUPS 64

struct user_info {
	uid_t uid;
	gid_t gid;
	char home[256];
	int ngroups;
	gid_t groups[USER_MAX_GROUPS];
};

/*
 * user_resolve() - turn "name", "uid", "name:group", "uid:gid" (any mix)
 * into ids, home and supplementary groups. @passwd and @group may be NULL
 * (files missing); they are rewound as needed. An empty @spec means root.
 * Return: 0, -ENOENT (name not found; @why says which), -EINVAL (malformed).
 */
int user_resolve(const char *spec, FILE *passwd, FILE *group, struct user_info *out, char *why,
		 size_t why_len);

#endif
