/* SPDX-License-Identifier: Apache-2.0 */
/* Parses a registry's WWW-Authenticate challenge and its token response (both untrusted). */
#ifndef MSB_IMAGE_CHALLENGE_H
#define MSB_IMAGE_CHALLENGE_H

#include <stddef.h>

enum auth_scheme { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct challenge {
	enum auth_scheme scheme;
	char realm[1024];
	char service[256];
	char scope[512];
};

/*
 * challenge_parse() - `Bearer realm="...",service="...",scope="..."` or
 * `Basic realm="..."`. Quoted strings may contain escaped quotes; unknown
 * parameters are skipped. Return: 0, or -EINVAL when malformed or unsupported.
 */
int challenge_parse(const char *hdr, struct challenge *out);

/*
 * token_parse() - the token endpoint's JSON ("token" or "access_token").
 * The token must be a plain header-safe string. Return: 0 and a newly
 * allocated token in *@out, or -EINVAL.
 */
int token_parse(const char *body, size_t n, char **out);

#endif
