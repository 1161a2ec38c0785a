// SPDX-License-Identifier: Apache-2.0
/* WWW-Authenticate challenges and bearer token responses, parsed with bounds checks. */
#include "image/challenge.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_MAX (64u << 10)

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Reads a token or a quoted string into @out. Return: the position after it, or NULL. */
static const char *read_value(const char *p, char *out, size_t cap)
{
	size_t n = 0;

	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if ((unsigned char)*p < 0x20 || *p == 0x7f || n + 1 >= cap)
				return NULL;
			out[n++] = *p;
		}
		if (*p != '"')
			return NULL;
		p++;
	} else {
		for (; *p && *p != ',' && *p != ' ' && *p != '\t'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f || n + 1 >= cap)
				return NULL;
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	return p;
}

int challenge_parse(const char *hdr, struct challenge *out)
{
	const char *p = skip_ws(hdr);

	memset(out, 0, sizeof(*out));
	if (strncasecmp(p, "Bearer", 6) == 0 && (p[6] == ' ' || p[6] == '\0')) {
		out->scheme = AUTH_BEARER;
		p += 6;
	} else if (strncasecmp(p, "Basic", 5) == 0 && (p[5] == ' ' || p[5] == '\0')) {
		out->scheme = AUTH_BASIC;
		p += 5;
	} else {
		return -EINVAL;
	}
	for (;;) {
		char key[64], val[1024];
		size_t k = 0;

		p = skip_ws(p);
		if (!*p)
			break;
		/* auth-param names are tokens: letters, digits, '_', '-' and '.' */
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.') {
			if (k + 1 >= sizeof(key))
				return -EINVAL;
			key[k++] = *p++;
		}
		key[k] = '\0';
		p = skip_ws(p);
		if (!k || *p != '=')
			return -EINVAL;
		p = read_value(skip_ws(p + 1), val, sizeof(val));
		if (!p)
			return -EINVAL;
		if (!strcasecmp(key, "realm")) {
			if (strlen(val) >= sizeof(out->realm))
				return -EINVAL;
			memcpy(out->realm, val, strlen(val) + 1);
		} else if (!strcasecmp(key, "service")) {
			if (strlen(val) >= sizeof(out->service))
				return -EINVAL;
			memcpy(out->service, val, strlen(val) + 1);
		} else if (!strcasecmp(key, "scope")) {
			if (strlen(val) >= sizeof(out->scope))
				return -EINVAL;
			memcpy(out->scope, val, strlen(val) + 1);
		}
		p = skip_ws(p);
		if (*p == ',')
			p++;
		else if (*p)
			return -EINVAL;
	}
	/* A bearer challenge must say where tokens come from, over http(s). */
	if (out->scheme == AUTH_BEARER && strncmp(out->realm, "https://", 8) != 0 &&
	    strncmp(out->realm, "http://", 7) != 0)
		return -EINVAL;
	return 0;
}

static bool header_safe(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

int token_parse(const char *body, size_t n, char **out)
{
	json_t *o;
	const char *t;
	int r = -EINVAL;

	if (n > TOKEN_MAX)
		return -EINVAL;
	o = json_loadb(body, n, 0, NULL);
	t = json_string_value(json_object_get(o, "token"));
	if (!t || !*t)
		t = json_string_value(json_object_get(o, "access_token"));
	if (t && strlen(t) < TOKEN_MAX && header_safe(t)) {
		*out = strdup(t);
		r = *out ? 0 : -ENOMEM;
	}
	json_decref(o);
	return r;
}
