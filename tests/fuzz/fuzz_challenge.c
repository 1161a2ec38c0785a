// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for WWW-Authenticate challenges and token responses from registries. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "image/challenge.h"

/* A parsed field: terminated inside its array, no control characters. */
static void check_field(const char *f, size_t cap)
{
	size_t n = strnlen(f, cap);

	CHECK(n < cap);
	for (size_t i = 0; i < n; i++) {
		CHECK((unsigned char)f[i] >= 0x20 && f[i] != 0x7f);
	}
}

/* Writes @v as a quoted-string, escaping '"' and '\'. */
static size_t quote(char *out, const char *v)
{
	size_t o = 0;

	out[o++] = '"';
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			out[o++] = '\\';
		out[o++] = *v;
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}

/* The parsed challenge, written back canonically, parses to the same fields. */
static void check_roundtrip(const struct challenge *c)
{
	static char hdr[2 * (1024 + 256 + 512) + 64];
	struct challenge again;
	size_t o;

	o = (size_t)sprintf(hdr, "%s realm=", c->scheme == AUTH_BEARER ? "Bearer" : "Basic");
	o += quote(hdr + o, c->realm);
	o += (size_t)sprintf(hdr + o, ", service=");
	o += quote(hdr + o, c->service);
	o += (size_t)sprintf(hdr + o, ",scope=");
	quote(hdr + o, c->scope);
	CHECK(challenge_parse(hdr, &again) == 0);
	CHECK(again.scheme == c->scheme);
	CHECK(!strcmp(again.realm, c->realm));
	CHECK(!strcmp(again.service, c->service));
	CHECK(!strcmp(again.scope, c->scope));
}

static void fuzz_challenge(const uint8_t *data, size_t size)
{
	char *hdr = malloc(size + 1);
	struct challenge c;
	int r;

	if (!hdr)
		return;
	memcpy(hdr, data, size);
	hdr[size] = '\0';
	r = challenge_parse(hdr, &c);
	CHECK(r == 0 || r == -EINVAL);
	if (r == 0) {
		CHECK(c.scheme == AUTH_BASIC || c.scheme == AUTH_BEARER);
		check_field(c.realm, sizeof(c.realm));
		check_field(c.service, sizeof(c.service));
		check_field(c.scope, sizeof(c.scope));
		if (c.scheme == AUTH_BEARER)
			CHECK(!strncmp(c.realm, "https://", 8) || !strncmp(c.realm, "http://", 7));
		check_roundtrip(&c);
	}
	free(hdr);
}

static void fuzz_token(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so a read past @size is caught. */
	char *body = malloc(size ? size : 1), *tok = (char *)&body;
	int r;

	if (!body)
		return;
	memcpy(body, data, size);
	r = token_parse(body, size, &tok);
	CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
	if (r == 0) {
		size_t n = strlen(tok);

		/* Goes into an HTTP header as is: visible ASCII only. */
		CHECK(n > 0 && n < (64u << 10) && n <= size);
		for (size_t i = 0; i < n; i++)
			CHECK(tok[i] > 0x20 && tok[i] < 0x7f);
		free(tok);
	} else {
		CHECK(tok == (char *)&body);
	}
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_challenge(data, size);
	fuzz_token(data, size);
	return 0;
}
