// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the HTTP secret-substitution engine (net/hx).
 *
 * Input: a mode byte, then the bytes. Mode & 3:
 *   0  a request stream from the guest;
 *   1  a response stream, after three pipelined GETs (one of them HEAD);
 *   2  a 2-byte big-endian length L, L bytes of requests, then responses,
 *      fed alternately in pieces.
 * (mode >> 2) & 3 picks the split: all at once, 1 byte, 7 bytes, or sizes
 * drawn from the input's own bytes. Bit 4: passthrough mode. Bit 5: plain
 * HTTP (no SNI).
 *
 * The config has three secrets: one allowed, one not, one allowed only in
 * X-Token. Their values start with bytes no placeholder holds, so no
 * replacement can make one up out of its neighbours, and hold no CR, LF or
 * ": " (which msb refuses in values anyway), so none spans the structure of a
 * head that msb writes itself.
 *
 * A Basic credential that went up with a value in it (its base64 text, raw
 * or percent-encoded) never comes back to the guest either, while no more
 * than HX_MAX_CREDS were sent. Replacements are what the guest sent, which
 * the fuzzer chooses, so a value or a credential may still show up across
 * one (the server sent only the rest of it): an occurrence that overlaps a
 * placeholder or a Basic credential of the guest's is not a finding.
 */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "net/hx.h"
#include "util/b64.h"

#define SNI "api.example.test"

static const char *const tok_headers[] = { "x-token", NULL };

static const struct hx_secret secrets[] = {
	{ "API_KEY", "msb-secret-0123456789abcdef0123456789abcdef",
	  (const uint8_t *)"S3cr#t/V@l\"ue", 13, NULL, true, NULL },
	{ "OTHER", "msb-secret-ffffffffffffffffffffffffffffffff", (const uint8_t *)"Xo!ther", 7,
	  NULL, false, "api.example.test is not a host of OTHER" },
	{ "TOKEN", "msb-secret-2222222222222222222222222222222a", (const uint8_t *)"Tk_9~", 5,
	  tok_headers, true, NULL },
};
#define NSECRETS (sizeof(secrets) / sizeof(secrets[0]))

static void on_audit(void *ctx, const struct hx_audit *a)
{
	(void)ctx;
	check_printable(a->method);
	check_printable(a->host);
	check_printable(a->path);
	CHECK(strlen(a->path) < HX_AUDIT_PATH);
	CHECK(a->status >= 100 && a->status <= 999);
	CHECK((a->secrets & ~((1ull << NSECRETS) - 1)) == 0);
}

static void on_violation(void *ctx, const struct hx_violation *v)
{
	(void)ctx;
	CHECK(v->secret < NSECRETS);
	CHECK(v->name == secrets[v->secret].name);
	check_printable(v->reason);
	check_printable(v->host);
}

static bool contains(const struct buf *b, const void *needle, size_t n)
{
	return buf_size(b) >= n && memmem(buf_head(b), buf_size(b), needle, n);
}

/* A text hx may put in place of another. */
struct text {
	const uint8_t *p;
	size_t n;
};

static bool b64char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '=';
}

/* The base64 text after each "basic " (any case) in @p, then spaces; *@nt counts them. */
static struct text *basic_tokens(const uint8_t *p, size_t n, size_t *nt)
{
	struct text *t = NULL;

	*nt = 0;
	for (size_t i = 0; i + 6 <= n; i++) {
		size_t k = i + 6, e;
		struct text *grown;

		if (strncasecmp((const char *)p + i, "basic ", 6) != 0)
			continue;
		while (k < n && p[k] == ' ')
			k++;
		for (e = k; e < n && b64char(p[e]);)
			e++;
		grown = realloc(t, (*nt + 1) * sizeof(*t));
		CHECK(grown);
		t = grown;
		t[(*nt)++] = (struct text){ p + k, e - k };
	}
	return t;
}

/* @p percent-encoded as hx does (all but RFC 3986 unreserved), appended to @b. */
static void pct(struct buf *b, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		char e[3] = { '%', hex[c >> 4], hex[c & 15] };

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			CHECK(buf_append(b, &c, 1) == 0);
		else
			CHECK(buf_append(b, e, 3) == 0);
	}
}

/* Every occurrence of @w in @b overlaps an occurrence of one of @r there. */
static bool excused(const struct buf *b, const void *w, size_t wn, const struct text *r, size_t nr)
{
	const uint8_t *s = buf_head(b), *end = s + buf_size(b), *at = s;

	if (!wn)
		return true;
	while (at < end && (at = memmem(at, (size_t)(end - at), w, wn))) {
		bool ok = false;

		for (size_t k = 0; k < nr && !ok; k++) {
			size_t rn = r[k].n;
			const uint8_t *from = (size_t)(at - s) >= rn ? at - rn + 1 : s;
			const uint8_t *to =
				(size_t)(end - at) >= wn + rn - 1 ? at + wn + rn - 1 : end;

			ok = rn && memmem(from, (size_t)(to - from), r[k].p, rn);
		}
		if (!ok)
			return false;
		at++;
	}
	return true;
}

/* Whether @t, once decoded, holds an allowed secret's value. */
static bool holds_value(const struct text *t, const struct hx_config *c)
{
	char *s = strndup((const char *)t->p, t->n);
	unsigned char *d = malloc(t->n + 1);
	long dn;
	bool yes = false;

	CHECK(s && d);
	dn = b64_decode(s, d, t->n + 1);
	for (size_t i = 0; dn > 0 && i < NSECRETS; i++)
		if (secrets[i].allowed && c->sni &&
		    memmem(d, (size_t)dn, secrets[i].value, secrets[i].value_len))
			yes = true;
	free(s);
	free(d);
	return yes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char prime[] = "GET /a HTTP/1.1\r\nHost: " SNI "\r\n\r\n"
				    "HEAD /b HTTP/1.1\r\nHost: " SNI "\r\n\r\n"
				    "GET /c HTTP/1.0\r\nHost: " SNI "\r\n\r\n";
	struct hx_config c = { .secrets = secrets,
			       .nsecrets = NSECRETS,
			       .audit = on_audit,
			       .violation = on_violation };
	struct buf up = { 0 }, guest = { 0 }, resp = { 0 };
	const uint8_t *rq = NULL, *rs = NULL;
	size_t nrq = 0, nrs = 0;
	struct split sp;
	unsigned int mode;
	struct hx *h;
	int rc1 = HX_OK, rc2 = HX_OK;
	const uint8_t *rq_all;
	size_t nrq_all;
	struct text *g, *u, *r;
	struct buf *enc;
	size_t ng, nu, nr;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	c.passthrough = mode & 0x10;
	c.sni = mode & 0x20 ? NULL : SNI;
	sp = (struct split){ (mode >> 2) & 3, data, size > 64 ? 64 : size, 0, 7, 97 };
	switch (mode & 3) {
	case 0:
		rq = data;
		nrq = size;
		break;
	case 1:
		rs = data;
		nrs = size;
		break;
	default:
		if (size < 2)
			return 0;
		nrq = (size_t)data[0] << 8 | data[1];
		if (nrq > size - 2)
			nrq = size - 2;
		rq = data + 2;
		rs = rq + nrq;
		nrs = size - 2 - nrq;
		break;
	}

	rq_all = rq;
	nrq_all = nrq;
	g = basic_tokens(rq, nrq, &ng);
	h = hx_new(&c);
	CHECK(h);
	if ((mode & 3) == 1)
		CHECK(hx_request(h, (const uint8_t *)prime, sizeof(prime) - 1, &up, &guest) ==
		      HX_OK);
	while (nrq || nrs) {
		if (nrq) {
			size_t n = split_piece(&sp, nrq);

			rc1 = hx_request(h, rq, n, &up, &guest);
			CHECK(rc1 == HX_OK || rc1 == HX_VIOLATION || rc1 == HX_BAD);
			rq += n;
			nrq -= n;
		}
		if (nrs) {
			size_t n = split_piece(&sp, nrs);

			rc2 = hx_response(h, rs, n, &resp);
			CHECK(rc2 == HX_OK || rc2 == HX_BAD);
			CHECK(hx_request(h, NULL, 0, &up, &guest) != HX_NOMEM);
			rs += n;
			nrs -= n;
		}
	}
	CHECK(hx_request_end(h, &up, &guest) != HX_NOMEM);
	CHECK(hx_response_end(h, &resp) != HX_NOMEM);

	/* Output stays in proportion to input. */
	CHECK(buf_size(&up) <= 16 * size + 4096);
	CHECK(buf_size(&resp) <= 16 * size + 4096);
	CHECK(buf_size(&guest) <= 4096);
	/* Values go up only where allowed, and never come back to the guest. */
	/* what replaces: placeholders, and the guest's credentials raw and percent-encoded */
	r = calloc(NSECRETS + 2 * ng + 1, sizeof(*r));
	enc = calloc(ng + 1, sizeof(*enc));
	CHECK(r && enc);
	nr = 0;
	for (size_t i = 0; i < NSECRETS; i++)
		r[nr++] = (struct text){ (const uint8_t *)secrets[i].placeholder,
					 HX_PLACEHOLDER_LEN };
	for (size_t i = 0; i < ng; i++) {
		pct(&enc[i], g[i].p, g[i].n);
		r[nr++] = g[i];
		r[nr++] = (struct text){ buf_head(&enc[i]), buf_size(&enc[i]) };
	}
	for (size_t i = 0; i < NSECRETS; i++) {
		const struct hx_secret *s = &secrets[i];

		if (!memmem(data, size, s->value, s->value_len)) {
			if (!s->allowed || !c.sni)
				CHECK(!contains(&up, s->value, s->value_len));
			/* error replies echo the guest's Host header, nothing else */
			CHECK(!contains(&guest, s->value, s->value_len));
		}
		if (!hx_opaque(h))
			CHECK(excused(&resp, s->value, s->value_len, r, nr));
	}
	/* the credentials that went up with a value, while none had to be forgotten */
	u = basic_tokens(buf_head(&up), buf_size(&up), &nu);
	for (size_t i = 0; i < nu && ng <= HX_MAX_CREDS && !hx_opaque(h); i++) {
		struct buf e = { 0 };

		/* the guest may send what it knows itself */
		if (!u[i].n || (nrq_all && memmem(rq_all, nrq_all, u[i].p, u[i].n)) ||
		    !holds_value(&u[i], &c))
			continue;
		pct(&e, u[i].p, u[i].n);
		CHECK(excused(&resp, u[i].p, u[i].n, r, nr));
		CHECK(excused(&resp, buf_head(&e), buf_size(&e), r, nr));
		buf_free(&e);
	}
	for (size_t i = 0; i < ng; i++)
		buf_free(&enc[i]);
	free(enc);
	free(r);
	free(u);
	free(g);
	if (hx_violation(h)) {
		check_printable(hx_violation(h)->reason);
		check_printable(hx_violation(h)->host);
	}
	buf_free(&up);
	buf_free(&guest);
	buf_free(&resp);
	hx_free(h);
	return 0;
}
