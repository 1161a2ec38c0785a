// SPDX-License-Identifier: Apache-2.0
/* Image reference parsing and normalisation, following the distribution grammar. */
#define _GNU_SOURCE
#include "image/ref.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN  128

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

bool digest_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* tag := [\w][\w.-]{0,127} */
static bool tag_valid(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > TAG_MAX_LEN || !(is_alnum(t[0]) || t[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(is_alnum(t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
			return false;
	return true;
}

/* path-component := [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)* */
static bool component_valid(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return false;
	while (i < n) {
		if (is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
		} else if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i >= n || !is_lower_alnum(s[i]))
			return false;
	}
	return true;
}

/* domain := component(.component)*[:port], or [ipv6][:port], or localhost[:port] */
static bool domain_valid(const char *s)
{
	const char *host_end, *colon;
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	if (s[0] == '[') {
		host_end = strchr(s, ']');
		if (!host_end || host_end == s + 1)
			return false;
		for (const char *p = s + 1; p < host_end; p++)
			if (!(is_alnum(*p) || *p == ':' || *p == '.'))
				return false;
		colon = host_end[1] ? host_end + 1 : NULL;
		if (colon && *colon != ':')
			return false;
	} else {
		colon = strchr(s, ':');
		host_end = colon ? colon : s + n;
		for (const char *p = s; p < host_end;) {
			const char *dot = memchr(p, '.', (size_t)(host_end - p));
			const char *e = dot ? dot : host_end;

			if (e == p || !is_alnum(p[0]) || !is_alnum(e[-1]))
				return false;
			for (const char *q = p; q < e; q++)
				if (!(is_alnum(*q) || *q == '-'))
					return false;
			p = dot ? dot + 1 : host_end;
			if (dot && p == host_end)
				return false;
		}
	}
	if (colon) {
		long port = 0;
		const char *p = colon + 1;

		if (!*p)
			return false;
		for (; *p; p++) {
			if (*p < '0' || *p > '9' || (port = port * 10 + (*p - '0')) > 65535)
				return false;
		}
		if (port == 0)
			return false;
	}
	return true;
}

static int fail(char *why, size_t len, const char *fmt, const char *s)
{
	snprintf(why, len, fmt, s);
	return -EINVAL;
}

int ref_parse(const char *s, struct image_ref *out, char *why, size_t why_len)
{
	char *buf = NULL, *name, *at, *colon, *slash, *tag = NULL, *digest = NULL;
	const char *registry = NULL, *path;
	char *repo = NULL;
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return fail(why, why_len, "empty image reference%s", "");
	if (strlen(s) > 1024)
		return fail(why, why_len, "image reference too long%s", "");
	buf = strdup(s);
	if (!buf)
		return -ENOMEM;
	name = buf;

	at = strchr(name, '@');
	if (at) {
		*at = '\0';
		digest = at + 1;
		if (!digest_valid(digest)) {
			r = fail(why, why_len,
				 "invalid digest \"%s\" (expected sha256: and 64 lowercase hex "
				 "digits)",
				 digest);
			goto out;
		}
	}
	/* A tag's colon comes after the last slash; a port's before it. */
	slash = strrchr(name, '/');
	colon = strrchr(slash ? slash : name, ':');
	if (colon) {
		*colon = '\0';
		tag = colon + 1;
		if (!tag_valid(tag)) {
			r = fail(why, why_len, "invalid tag \"%s\"", tag);
			goto out;
		}
	}

	slash = strchr(name, '/');
	if (slash) {
		size_t dn = (size_t)(slash - name);

		/* The first component is a registry if it looks like a host. */
		if (memchr(name, '.', dn) || memchr(name, ':', dn) ||
		    (dn == 9 && strncmp(name, "localhost", 9) == 0) || name[0] == '[') {
			*slash = '\0';
			registry = name;
			path = slash + 1;
			if (!domain_valid(registry)) {
				r = fail(why, why_len, "invalid registry \"%s\"", registry);
				goto out;
			}
		} else {
			path = name;
		}
	} else {
		path = name;
	}
	if (!registry || !strcmp(registry, "index.docker.io") || !strcmp(registry, DOCKER_HUB_API))
		registry = DOCKER_HUB;

	for (const char *p = path; *p; p++) {
		if (*p >= 'A' && *p <= 'Z') {
			r = fail(why, why_len,
				 "invalid reference \"%s\": repository name must be lowercase", s);
			goto out;
		}
	}
	for (const char *p = path;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (!component_valid(p, n)) {
			r = fail(why, why_len, "invalid reference format \"%s\"", s);
			goto out;
		}
		if (!e)
			break;
		p = e + 1;
	}
	if (!strcmp(registry, DOCKER_HUB) && !strchr(path, '/')) {
		if (asprintf(&repo, "library/%s", path) < 0)
			repo = NULL;
	} else {
		repo = strdup(path);
	}
	if (!repo || strlen(registry) + 1 + strlen(repo) > NAME_MAX_LEN) {
		r = repo ? fail(why, why_len, "image name \"%s\" is too long", s) : -ENOMEM;
		free(repo);
		goto out;
	}
	out->registry = strdup(registry);
	out->repository = repo;
	out->tag = tag ? strdup(tag) : digest ? NULL : strdup("latest");
	out->digest = digest ? strdup(digest) : NULL;
	if (!out->registry || (!out->tag && !out->digest)) {
		ref_free(out);
		r = -ENOMEM;
	}
out:
	free(buf);
	return r;
}

void ref_free(struct image_ref *r)
{
	free(r->registry);
	free(r->repository);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

static char *format_ref(const char *registry, const char *repo, const struct image_ref *r)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s%s%s%s%s%s", registry ? registry : "", registry ? "/" : "", repo,
		     r->tag ? ":" : "", r->tag ? r->tag : "", r->digest ? "@" : "",
		     r->digest ? r->digest : "") < 0)
		return NULL;
	return s;
}

char *ref_canonical(const struct image_ref *r)
{
	return format_ref(r->registry, r->repository, r);
}

char *ref_familiar(const struct image_ref *r)
{
	if (!strcmp(r->registry, DOCKER_HUB)) {
		const char *repo = r->repository;
		size_t first = strcspn(repo, "/");

		if (!strncmp(repo, "library/", 8) && !strchr(repo + 8, '/'))
			repo += 8;
		/* "docker.io/localhost/x" must not come out as another registry's "localhost/x". */
		else if (repo[first] == '/' &&
			 (memchr(repo, '.', first) || memchr(repo, ':', first) ||
			  (first == 9 && !strncmp(repo, "localhost", 9))))
			return format_ref(r->registry, r->repository, r);
		return format_ref(NULL, repo, r);
	}
	return format_ref(r->registry, r->repository, r);
}

const char *ref_api_host(const struct image_ref *r)
{
	return strcmp(r->registry, DOCKER_HUB) == 0 ? DOCKER_HUB_API : r->registry;
}

const char *ref_object(const struct image_ref *r)
{
	return r->digest ? r->digest : r->tag;
}
