// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the HTTP secret-substitution engine (net/hx). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/hx.h"
#include "util/b64.h"
#include "util/buf.h"

#define PH0 "msb-secret-0123456789abcdef0123456789abcdef"
#define PH1 "msb-secret-ffffffffffffffffffffffffffffffff"
#define PH2 "msb-secret-2222222222222222222222222222222a"
#define PHX "msb-secret-99999999999999999999999999999999" /* nobody's */
#define V0  "sk-live/42 \"x\""
#define SNI "api.example.test"

static const char *const tok_headers[] = { "x-token", "authorization", NULL };

static const struct hx_secret secrets[] = {
	{ "API_KEY", PH0, (const uint8_t *)V0, sizeof(V0) - 1, NULL, true, NULL },
	{ "OTHER", PH1, (const uint8_t *)"other-value", 11, NULL, false,
	  "api.example.test is not a host of OTHER" },
	{ "TOKEN", PH2, (const uint8_t *)"tok123", 6, tok_headers, true, NULL },
};

/* What the callbacks saw. */
static struct hx_audit audits[8];
static char audit_paths[8][HX_AUDIT_PATH], audit_hosts[8][HX_AUDIT_HOST];
static size_t naudits, nviolations;
static struct hx_violation last_violation;

static void on_audit(void *ctx, const struct hx_audit *a)
{
	(void)ctx;
	assert_true(naudits < 8);
	audits[naudits] = *a;
	snprintf(audit_paths[naudits], HX_AUDIT_PATH, "%s", a->path);
	snprintf(audit_hosts[naudits], HX_AUDIT_HOST, "%s", a->host);
	naudits++;
}

static void on_violation(void *ctx, const struct hx_violation *v)
{
	(void)ctx;
	nviolations++;
	last_violation = *v;
}

static struct hx *mk(const char *sni, bool passthrough)
{
	struct hx_config c = {
		.secrets = secrets,
		.nsecrets = 3,
		.sni = sni,
		.passthrough = passthrough,
		.audit = on_audit,
		.violation = on_violation,
	};
	struct hx *h = hx_new(&c);

	assert_non_null(h);
	naudits = nviolations = 0;
	return h;
}

static char *str(struct buf *b)
{
	char *s = malloc(buf_size(b) + 1);

	assert_non_null(s);
	if (buf_size(b))
		memcpy(s, buf_head(b), buf_size(b));
	s[buf_size(b)] = '\0';
	return s;
}

/* Feeds @in in pieces of @step bytes (0: all at once). Return: what went up. */
static char *req(struct hx *h, const char *in, size_t step, int want, struct buf *guest)
{
	struct buf up = { 0 };
	size_t n = strlen(in), off = 0;
	int rc = HX_OK;
	char *s;

	do {
		size_t take = step && n - off > step ? step : n - off;

		rc = hx_request(h, (const uint8_t *)in + off, take, &up, guest);
		off += take;
	} while (off < n && rc == HX_OK);
	assert_int_equal(rc, want);
	s = str(&up);
	buf_free(&up);
	return s;
}

static char *req1(const char *in, int want)
{
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 };
	char *s = req(h, in, 0, want, &guest);

	buf_free(&guest);
	hx_free(h);
	return s;
}

static char *resp(struct hx *h, const char *in, size_t step, int want)
{
	struct buf g = { 0 };
	size_t n = strlen(in), off = 0;
	int rc = HX_OK;
	char *s;

	do {
		size_t take = step && n - off > step ? step : n - off;

		rc = hx_response(h, (const uint8_t *)in + off, take, &g);
		off += take;
	} while (off < n && rc == HX_OK);
	assert_int_equal(rc, want);
	s = str(&g);
	buf_free(&g);
	return s;
}

/* The body after a head, de-chunked when the head says chunked. */
static char *body_of(const char *msg)
{
	const char *b = strstr(msg, "\r\n\r\n");
	struct buf out = { 0 };
	char *s;

	assert_non_null(b);
	b += 4;
	if (!strstr(msg, "Transfer-Encoding: chunked") || strstr(msg, "Transfer-Encoding") > b) {
		assert_int_equal(buf_append(&out, b, strlen(b)), 0);
	} else {
		for (;;) {
			char *end;
			unsigned long n = strtoul(b, &end, 16);

			assert_true(end > b && end[0] == '\r' && end[1] == '\n');
			b = end + 2;
			if (!n)
				break;
			assert_true(strlen(b) >= n + 2);
			assert_int_equal(buf_append(&out, b, n), 0);
			b += n;
			assert_memory_equal(b, "\r\n", 2);
			b += 2;
		}
	}
	s = str(&out);
	buf_free(&out);
	return s;
}

static long content_length(const char *msg)
{
	const char *c = strstr(msg, "Content-Length: ");

	return c ? strtol(c + 16, NULL, 10) : -1;
}

/* --- substitution sites ------------------------------------------------- */

static void test_target_percent(void **state)
{
	(void)state;
	char *up = req1("GET /v1/x?key=" PH0 "&n=1 HTTP/1.1\r\nHost: " SNI "\r\n\r\n", HX_OK);

	assert_string_equal(up, "GET /v1/x?key=sk-live%2F42%20%22x%22&n=1 HTTP/1.1\r\n"
				"Host: " SNI "\r\nAccept-Encoding: identity\r\n\r\n");
	free(up);
}

static void test_header_raw_and_accept_encoding(void **state)
{
	(void)state;
	char *up = req1("GET / HTTP/1.1\r\nHost: API.Example.Test.:443\r\nX-Key: Bearer " PH0
			"\r\nAccept-Encoding: gzip, br\r\n\r\n",
			HX_OK);

	assert_string_equal(up, "GET / HTTP/1.1\r\nHost: API.Example.Test.:443\r\n"
				"X-Key: Bearer " V0 "\r\nAccept-Encoding: identity\r\n\r\n");
	free(up);
}

static void test_percent_and_json_encoded_placeholders(void **state)
{
	(void)state;
	/* any mix of %XX (either case) and \u00XX per character */
	char *up = req1("GET /a/%6Dsb%2dsecret-0123456789ABCDEF-wrong%6d%73b-secret-"
			"0123456789abcdef0123456789abcde%66 HTTP/1.1\r\nHost: " SNI
			"\r\nX-J: \\u006dsb-secret\\u002D0123456789abcdef0123456789abcdef\r\n\r\n",
			HX_OK);

	assert_non_null(
		strstr(up, "GET /a/%6Dsb%2dsecret-0123456789ABCDEF-wrongsk-live%2F42%20%22x%22 "));
	assert_non_null(strstr(up, "X-J: " V0 "\r\n"));
	free(up);
}

static void test_json_body(void **state)
{
	(void)state;
	char *up = req1("POST /j HTTP/1.1\r\nHost: " SNI "\r\nContent-Type: application/json\r\n"
			"Content-Length: 51\r\n\r\n{\"k\":\"" PH0 "\"}",
			HX_OK);
	char *b = body_of(up);

	assert_string_equal(b, "{\"k\":\"sk-live/42 \\\"x\\\"\"}");
	assert_int_equal(content_length(up), (long)strlen(b));
	free(b);
	free(up);
}

static void test_form_and_raw_body(void **state)
{
	(void)state;
	char *up = req1("POST /f HTTP/1.1\r\nHost: " SNI
			"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
			"Content-Length: 45\r\n\r\na=" PH0,
			HX_OK);
	char *b = body_of(up);

	assert_string_equal(b, "a=sk-live%2F42%20%22x%22");
	assert_int_equal(content_length(up), 24);
	free(b);
	free(up);

	up = req1("PUT /r HTTP/1.1\r\nHost: " SNI "\r\nContent-Length: 43\r\n\r\n" PH0, HX_OK);
	b = body_of(up);
	assert_string_equal(b, V0);
	assert_int_equal(content_length(up), (long)strlen(V0));
	free(b);
	free(up);
}

static void test_basic_auth(void **state)
{
	(void)state;
	char *cred = b64_encode("user:" PH0, strlen("user:" PH0));
	char *want = b64_encode("user:" V0, strlen("user:" V0));
	char in[512], line[256];
	char *up;

	snprintf(in, sizeof(in),
		 "GET / HTTP/1.1\r\nHost: " SNI "\r\nAuthorization: Basic %s\r\n\r\n", cred);
	up = req1(in, HX_OK);
	snprintf(line, sizeof(line), "Authorization: Basic %s\r\n", want);
	assert_non_null(strstr(up, line));
	free(up);
	free(cred);
	free(want);

	/* a header-restricted secret named "authorization" is substituted there too */
	cred = b64_encode(PH2 ":x", strlen(PH2 ":x"));
	want = b64_encode("tok123:x", 8);
	snprintf(in, sizeof(in),
		 "GET / HTTP/1.1\r\nHost: " SNI "\r\nAuthorization: Basic %s\r\n\r\n", cred);
	up = req1(in, HX_OK);
	snprintf(line, sizeof(line), "Authorization: Basic %s\r\n", want);
	assert_non_null(strstr(up, line));
	free(up);
	free(cred);
	free(want);
}

static void test_header_restricted(void **state)
{
	(void)state;
	char *up = req1("GET /?t=" PH2 " HTTP/1.1\r\nHost: " SNI "\r\nX-Token: " PH2
			"\r\nX-Other: " PH2 "\r\n\r\n",
			HX_OK);

	assert_non_null(strstr(up, "GET /?t=" PH2 " HTTP/1.1"));
	assert_non_null(strstr(up, "X-Token: tok123\r\n"));
	assert_non_null(strstr(up, "X-Other: " PH2 "\r\n"));
	assert_int_equal(nviolations, 0);
	free(up);
}

static void test_unknown_placeholder_ignored(void **state)
{
	(void)state;
	struct hx *h = mk(NULL, false); /* plain HTTP: only known placeholders count */
	struct buf guest = { 0 };
	char *up = req(h, "GET /" PHX " HTTP/1.1\r\nHost: x\r\n\r\n", 0, HX_OK, &guest);

	assert_non_null(strstr(up, "GET /" PHX " HTTP/1.1"));
	assert_int_equal(buf_size(&guest), 0);
	free(up);
	buf_free(&guest);
	hx_free(h);
}

/* --- splits ------------------------------------------------------------- */

static const char *split_reqs[] = {
	"GET /a?k=" PH0 " HTTP/1.1\r\nHost: " SNI
	"\r\nX-A: %6d%73b-secret-0123456789abcdef0123456789"
	"abcdef\r\n\r\n",
	"POST /b HTTP/1.1\r\nHost: " SNI "\r\nContent-Type: application/json\r\nContent-Length: 98"
	"\r\n\r\n[\"" PH0 "\",\"\\u006Dsb-secret-0123456789abcdef0123456789abcdef\"]",
	"POST /c HTTP/1.1\r\nHost: " SNI "\r\nTransfer-Encoding: chunked\r\n\r\n"
	"2d;ext=1\r\nxx" PH0 "\r\n2e\r\n" PH0 "abc\r\n0\r\nX-Trailer: 1\r\n\r\n"
	"GET /d HTTP/1.1\r\nHost: " SNI "\r\n\r\n",
};

static void test_every_split(void **state)
{
	(void)state;
	for (size_t r = 0; r < sizeof(split_reqs) / sizeof(split_reqs[0]); r++) {
		const char *in = split_reqs[r];
		size_t n = strlen(in);
		char *whole = req1(in, HX_OK), *one;
		struct buf guest = { 0 };
		struct hx *h;

		assert_null(strstr(whole, PH0));
		for (size_t k = 1; k < n; k++) {
			struct buf up = { 0 };
			char *s;

			h = mk(SNI, false);
			assert_int_equal(hx_request(h, (const uint8_t *)in, k, &up, &guest), HX_OK);
			assert_int_equal(hx_request(h, (const uint8_t *)in + k, n - k, &up, &guest),
					 HX_OK);
			s = str(&up);
			/* chunk boundaries may differ; what they carry may not */
			if (r == 2) {
				char *b1 = body_of(whole), *b2 = body_of(s);

				assert_string_equal(b1, b2);
				assert_non_null(strstr(s, "\r\n\r\nGET /d HTTP/1.1\r\n"));
				free(b1);
				free(b2);
			} else {
				assert_string_equal(s, whole);
			}
			free(s);
			buf_free(&up);
			hx_free(h);
		}
		h = mk(SNI, false);
		one = req(h, in, 1, HX_OK, &guest);
		if (r != 2)
			assert_string_equal(one, whole);
		else
			assert_null(strstr(one, PH0));
		assert_int_equal(buf_size(&guest), 0);
		free(one);
		hx_free(h);
		free(whole);
		buf_free(&guest);
	}
}

/* --- re-framing --------------------------------------------------------- */

static void test_chunked_request_rechunked(void **state)
{
	(void)state;
	char *up = req1(split_reqs[2], HX_OK);
	char *b = body_of(up);

	assert_string_equal(b, "xx" V0 V0 "abc");
	assert_non_null(strstr(up, "\r\n0\r\nX-Trailer: 1\r\n\r\nGET /d HTTP/1.1\r\n"));
	assert_null(strstr(up, "ext=1"));
	free(b);
	free(up);
}

static void test_large_body_becomes_chunked(void **state)
{
	(void)state;
	size_t blen = HX_BODY_BUFFER + 100;
	char *in = malloc(blen + 256), *up, *b;
	int off = snprintf(in, 256,
			   "POST /big HTTP/1.1\r\nHost: " SNI "\r\nContent-Length: %zu\r\n\r\n",
			   blen);

	memset(in + off, 'a', blen);
	memcpy(in + off + 1000, PH0, 43);
	memcpy(in + off + blen - 43, PH0, 43);
	in[off + blen] = '\0';
	up = req1(in, HX_OK);
	assert_non_null(strstr(up, "Transfer-Encoding: chunked\r\n"));
	assert_int_equal(content_length(up), -1);
	b = body_of(up);
	assert_int_equal(strlen(b), blen - 2 * 43 + 2 * strlen(V0));
	assert_memory_equal(b + 1000, V0, strlen(V0));
	assert_string_equal(b + strlen(b) - strlen(V0), V0);
	free(b);
	free(up);

	/* HTTP/1.0 cannot be chunked */
	in[17] = '0';
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 };

	up = req(h, in, 0, HX_BAD, &guest);
	assert_string_equal(up, "");
	free(up);
	up = str(&guest);
	assert_non_null(strstr(up, "HTTP/1.1 413 "));
	free(up);
	buf_free(&guest);
	hx_free(h);
	free(in);
}

static void test_expect_continue(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 };
	char *up = req(h,
		       "PUT /u HTTP/1.1\r\nHost: " SNI "\r\nExpect: 100-continue\r\n"
		       "Content-Length: 43\r\n\r\n",
		       0, HX_OK, &guest);
	char *g;

	/* the head goes up at once: the guest waits for the 100 */
	assert_non_null(strstr(up, "Expect: 100-continue\r\n"));
	assert_non_null(strstr(up, "Transfer-Encoding: chunked\r\n\r\n"));
	free(up);
	g = resp(h, "HTTP/1.1 100 Continue\r\n\r\n", 0, HX_OK);
	assert_string_equal(g, "HTTP/1.1 100 Continue\r\n\r\n");
	free(g);
	up = req(h, PH0, 0, HX_OK, &guest);
	assert_string_equal(up, "e\r\n" V0 "\r\n0\r\n\r\n");
	free(up);
	g = resp(h, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 0, HX_OK);
	assert_int_equal(naudits, 1);
	assert_int_equal(audits[0].status, 201);
	assert_int_equal(audits[0].request_body, 43);
	assert_int_equal(audits[0].secrets, 1);
	free(g);
	buf_free(&guest);
	hx_free(h);
}

/* --- responses ---------------------------------------------------------- */

static void test_response_values_replaced(void **state)
{
	(void)state;
	const char *in = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Echo: tok123\r\n"
			 "Content-Length: 56\r\n\r\n{\"a\":\"sk-live/42 "
			 "\\\"x\\\"\",\"b\":\"other-value\",\"c\":\"sk-"
			 "live\"}";
	size_t n = strlen(in);
	char *whole;

	for (size_t step = 0; step <= n; step += step < 8 ? 1 : 13) {
		struct hx *h = mk(SNI, false);
		struct buf guest = { 0 };
		char *up = req(h, "GET / HTTP/1.1\r\nHost: " SNI "\r\n\r\n", 0, HX_OK, &guest), *b;

		free(up);
		whole = resp(h, in, step, HX_OK);
		assert_non_null(strstr(whole, "X-Echo: " PH2 "\r\n"));
		b = body_of(whole);
		assert_string_equal(b, "{\"a\":\"" PH0 "\",\"b\":\"" PH1 "\",\"c\":\"sk-live\"}");
		assert_int_equal(content_length(whole), (long)strlen(b));
		assert_int_equal(naudits, 1);
		assert_int_equal(audits[0].response_body, 56);
		free(b);
		free(whole);
		buf_free(&guest);
		hx_free(h);
	}
}

/* PHP's json_encode writes "/" as "\/": that form of a value is found too. */
static void test_response_value_with_escaped_slash(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 };
	char *up = req(h, "GET / HTTP/1.1\r\nHost: " SNI "\r\n\r\n", 0, HX_OK, &guest), *whole, *b;

	free(up);
	whole = resp(
		h,
		"HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\n{\"a\":\"sk-live\\/42 \\\"x\\\"\"}",
		0, HX_OK);
	b = body_of(whole);
	assert_string_equal(b, "{\"a\":\"" PH0 "\"}");
	free(b);
	free(whole);
	buf_free(&guest);
	hx_free(h);
}

static void test_response_chunked_split_value(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 };
	char *up = req(h, "GET / HTTP/1.1\r\nHost: " SNI "\r\n\r\n", 0, HX_OK, &guest);
	char *g, *b;

	free(up);
	/* the value is split across two chunks */
	g = resp(h,
		 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "7\r\n<sk-liv\r\n8\r\ne/42 \"x\"\r\n1\r\n>\r\n0\r\n\r\n",
		 1, HX_OK);
	b = body_of(g);
	assert_string_equal(b, "<" PH0 ">");
	free(b);
	free(g);
	assert_int_equal(naudits, 1);
	assert_int_equal(audits[0].response_body, 16);
	buf_free(&guest);
	hx_free(h);
}

static void test_response_large_and_close(void **state)
{
	(void)state;
	for (int v10 = 0; v10 < 2; v10++) {
		struct hx *h = mk(SNI, false);
		struct buf guest = { 0 }, g = { 0 };
		size_t blen = HX_BODY_BUFFER + 10;
		char head[128], *body = malloc(blen), *s, *b;
		int hl;

		s = req(h,
			v10 ? "GET / HTTP/1.0\r\nHost: " SNI "\r\n\r\n"
			    : "GET / HTTP/1.1\r\nHost: " SNI "\r\n\r\n",
			0, HX_OK, &guest);
		free(s);
		memset(body, 'z', blen);
		memcpy(body + 5, "tok123", 6);
		hl = snprintf(
			head, sizeof(head),
			"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: %zu\r\n\r\n",
			blen);
		assert_int_equal(hx_response(h, (const uint8_t *)head, (size_t)hl, &g), HX_OK);
		assert_int_equal(hx_response(h, (const uint8_t *)body, blen, &g), HX_OK);
		assert_int_equal(hx_response_end(h, &g), HX_OK);
		s = str(&g);
		if (v10) {
			assert_non_null(strstr(s, "Connection: close\r\n"));
			assert_null(strstr(s, "keep-alive"));
			assert_null(strstr(s, "Transfer-Encoding"));
		} else {
			assert_non_null(strstr(s, "Transfer-Encoding: chunked\r\n"));
		}
		assert_int_equal(content_length(s), -1);
		b = body_of(s);
		assert_int_equal(strlen(b), blen - 6 + 43);
		assert_memory_equal(b + 5, PH2, 43);
		free(b);
		free(s);
		free(body);
		buf_free(&g);
		buf_free(&guest);
		hx_free(h);
	}
}

static void test_response_close_delimited(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 }, g = { 0 };
	char *s = req(h, "GET / HTTP/1.1\r\nHost: " SNI "\r\n\r\n", 0, HX_OK, &guest);

	free(s);
	s = resp(h, "HTTP/1.1 200 OK\r\n\r\nxx tok1", 0, HX_OK);
	assert_string_equal(s, "HTTP/1.1 200 OK\r\n\r\nxx ");
	free(s);
	assert_int_equal(hx_response(h, (const uint8_t *)"23", 2, &g), HX_OK);
	assert_int_equal(hx_response_end(h, &g), HX_OK);
	s = str(&g);
	assert_string_equal(s, PH2);
	free(s);
	assert_int_equal(naudits, 1);
	buf_free(&g);
	buf_free(&guest);
	hx_free(h);
}

/* Every split point of a response stream: what the guest gets never changes. */
static void test_response_every_split(void **state)
{
	(void)state;
	static const char in[] =
		"HTTP/1.1 200 OK\r\nX-V: <sk-live/42 \"x\">\r\nContent-Length: 24\r\n\r\n"
		"[sk-live/42 \\\"x\\\"tok123]HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		"4\r\ntok1\r\n2\r\n23\r\n0\r\n\r\n";
	size_t n = sizeof(in) - 1;
	char *whole = NULL;

	for (size_t k = 0; k < n; k++) {
		struct hx *h = mk(SNI, false);
		struct buf guest = { 0 }, g = { 0 };
		char *s = req(h,
			      "GET / HTTP/1.1\r\nHost: " SNI "\r\n\r\nGET / HTTP/1.1\r\nHost: " SNI
			      "\r\n\r\n",
			      0, HX_OK, &guest);

		free(s);
		assert_int_equal(hx_response(h, (const uint8_t *)in, k, &g), HX_OK);
		assert_int_equal(hx_response(h, (const uint8_t *)in + k, n - k, &g), HX_OK);
		s = str(&g);
		assert_null(strstr(s, "sk-live/"));
		assert_null(strstr(s, "tok123"));
		assert_int_equal(naudits, 2);
		if (!whole) {
			whole = s;
			assert_non_null(strstr(s, "X-V: <" PH0 ">\r\n"));
			assert_non_null(strstr(s, "Content-Length: 88\r\n\r\n[" PH0 PH2 "]"));
		} else {
			/* chunk boundaries may move; the de-chunked body may not */
			char *b1 = body_of(strstr(whole, "]HTTP") + 1),
			     *b2 = body_of(strstr(s, "]HTTP") + 1);

			assert_string_equal(b1, PH2);
			assert_string_equal(b2, PH2);
			assert_memory_equal(s, whole, (size_t)(strstr(whole, "]HTTP") - whole));
			free(b1);
			free(b2);
			free(s);
		}
		buf_free(&g);
		buf_free(&guest);
		hx_free(h);
	}
	free(whole);
}

/* --- violations --------------------------------------------------------- */

static void check_403(struct hx *h, const char *in, const char *body)
{
	struct buf guest = { 0 };
	char *up = req(h, in, 0, HX_VIOLATION, &guest), *g = str(&guest), want[512];

	assert_string_equal(up, "");
	snprintf(want, sizeof(want),
		 "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 strlen(body), body);
	assert_string_equal(g, want);
	free(up);
	free(g);
	buf_free(&guest);
	/* sticky: nothing more goes anywhere */
	up = req(h, "GET / HTTP/1.1\r\nHost: " SNI "\r\n\r\n", 0, HX_VIOLATION, &guest);
	assert_string_equal(up, "");
	assert_int_equal(buf_size(&guest), 0);
	free(up);
}

static void test_not_allowed_403(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);

	check_403(h, "GET / HTTP/1.1\r\nHost: " SNI "\r\nX-A: " PH1 "\r\n\r\n",
		  "msb: secret OTHER blocked: api.example.test is not a host of OTHER\n");
	assert_int_equal(nviolations, 1);
	assert_non_null(hx_violation(h));
	assert_int_equal(hx_violation(h)->secret, 1);
	assert_true(hx_violation(h)->blocked);
	assert_false(hx_violation(h)->upstream_dirty);
	assert_string_equal(hx_violation(h)->host, SNI);
	hx_free(h);
}

static void test_host_mismatch(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);

	check_403(h, "GET /" PH0 " HTTP/1.1\r\nHost: evil.test:8443\r\n\r\n",
		  "msb: secret API_KEY blocked: Host header evil.test:8443 differs from the TLS "
		  "name api.example.test\n");
	hx_free(h);

	h = mk(SNI, false);
	check_403(h, "GET /" PH0 " HTTP/1.1\r\n\r\n",
		  "msb: secret API_KEY blocked: the request has no Host header\n");
	hx_free(h);

	h = mk(SNI, false);
	check_403(h, "GET https://evil.test/" PH0 " HTTP/1.1\r\nHost: " SNI "\r\n\r\n",
		  "msb: secret API_KEY blocked: request target host evil.test differs from the "
		  "TLS name api.example.test\n");
	hx_free(h);
}

static void test_plain_http(void **state)
{
	(void)state;
	struct hx *h = mk(NULL, false);

	check_403(h, "POST / HTTP/1.1\r\nHost: " SNI "\r\nContent-Length: 43\r\n\r\n" PH0,
		  "msb: secret API_KEY blocked: the connection is plain HTTP, secrets only go "
		  "over TLS\n");
	assert_false(hx_violation(h)->upstream_dirty);
	assert_null(hx_violation(h)->sni);
	hx_free(h);
}

static void test_mid_body_violation_dirty(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 };
	char *up = req(h,
		       "POST / HTTP/1.1\r\nHost: " SNI "\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "2b\r\n" PH1 "\r\n0\r\n\r\n",
		       0, HX_VIOLATION, &guest);

	assert_non_null(strstr(up, "POST / HTTP/1.1\r\n"));
	assert_null(strstr(up, PH1));
	assert_true(hx_violation(h)->upstream_dirty);
	free(up);
	up = str(&guest);
	assert_non_null(strstr(up, "403 Forbidden"));
	free(up);
	buf_free(&guest);
	hx_free(h);
}

static void test_passthrough(void **state)
{
	(void)state;
	struct hx *h = mk("evil.test", true);
	struct buf guest = { 0 };
	char *up = req(h, "GET /" PH0 " HTTP/1.1\r\nHost: " SNI "\r\nX: " PH1 "\r\n\r\n", 0, HX_OK,
		       &guest);

	assert_non_null(strstr(up, "GET /" PH0 " HTTP/1.1"));
	assert_non_null(strstr(up, "X: " PH1 "\r\n"));
	assert_int_equal(buf_size(&guest), 0);
	assert_int_equal(nviolations, 2);
	assert_false(last_violation.blocked);
	free(up);
	buf_free(&guest);
	hx_free(h);
}

static void test_header_value_with_crlf(void **state)
{
	(void)state;
	static const struct hx_secret bad[] = {
		{ "NL", PH0, (const uint8_t *)"a\r\nX-Evil: 1", 12, NULL, true, NULL },
	};
	struct hx_config c = { .secrets = bad, .nsecrets = 1, .sni = SNI };
	struct hx *h = hx_new(&c);
	struct buf guest = { 0 };
	char *up;

	up = req(h, "GET / HTTP/1.1\r\nHost: " SNI "\r\nX: " PH0 "\r\n\r\n", 0, HX_VIOLATION,
		 &guest);
	assert_string_equal(hx_violation(h)->reason, "value not valid in a header");
	free(up);
	buf_free(&guest);
	hx_free(h);
	/* in the target it is percent-encoded: fine */
	h = hx_new(&c);
	up = req(h, "GET /" PH0 " HTTP/1.1\r\nHost: " SNI "\r\n\r\n", 0, HX_OK, &guest);
	assert_non_null(strstr(up, "GET /a%0D%0AX-Evil%3A%201 "));
	free(up);
	buf_free(&guest);
	hx_free(h);
}

/* --- connection behaviour ----------------------------------------------- */

static void test_pipelining_and_audit(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 };
	char *up = req(h,
		       "GET /one?secret=" PH0 " HTTP/1.1\r\nHost: " SNI "\r\n\r\n"
		       "POST /two HTTP/1.1\r\nHost: " SNI "\r\nContent-Length: 3\r\n\r\nabc"
		       "HEAD /three HTTP/1.1\r\nHost: " SNI "\r\n\r\n",
		       0, HX_OK, &guest);
	char *g;

	assert_non_null(strstr(up, "GET /one?secret=sk-live"));
	assert_non_null(strstr(up, "Content-Length: 3\r\n\r\nabcHEAD /three"));
	free(up);
	g = resp(h,
		 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n"
		 "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
		 0, HX_OK);
	assert_int_equal(naudits, 3);
	assert_string_equal(audits[0].method, "GET");
	assert_string_equal(audit_paths[0], "/one");
	assert_string_equal(audit_hosts[0], SNI);
	assert_int_equal(audits[0].status, 200);
	assert_int_equal(audits[0].response_body, 2);
	assert_int_equal(audits[0].secrets, 1);
	assert_int_equal(audits[1].status, 204);
	assert_int_equal(audits[1].request_body, 3);
	assert_int_equal(audits[1].secrets, 0);
	assert_int_equal(audits[2].status, 200);
	assert_int_equal(audits[2].response_body, 0);
	/* the HEAD response kept its Content-Length and had no body */
	assert_true(strlen(g) > 22);
	assert_string_equal(g + strlen(g) - 22, "Content-Length: 10\r\n\r\n");
	free(g);
	/* a response that answers nothing */
	g = resp(h, "HTTP/1.1 200 OK\r\n\r\n", 0, HX_BAD);
	assert_non_null(strstr(g, "502 Bad Gateway"));
	free(g);
	buf_free(&guest);
	hx_free(h);
}

static void test_upgrade_passthrough(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 }, up = { 0 };
	char *s = req(h,
		      "GET /ws HTTP/1.1\r\nHost: " SNI "\r\nUpgrade: websocket\r\n"
		      "Connection: Upgrade\r\n\r\n\x81\x05" PH0,
		      0, HX_OK, &guest);

	/* the frame waits for the answer */
	assert_null(strstr(s, "\x81"));
	free(s);
	s = resp(h,
		 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi tok123",
		 0, HX_OK);
	assert_true(hx_opaque(h));
	assert_non_null(strstr(s, "\r\n\r\n\x81\x02hi tok123"));
	free(s);
	assert_int_equal(hx_request(h, NULL, 0, &up, &guest), HX_OK);
	assert_int_equal(buf_size(&up), 2 + 43);
	assert_memory_equal(buf_head(&up), "\x81\x05" PH0, 45);
	assert_int_equal(hx_request(h, (const uint8_t *)"GET", 3, &up, &guest), HX_OK);
	assert_int_equal(buf_size(&up), 48);
	assert_int_equal(naudits, 1);
	assert_int_equal(audits[0].status, 101);
	buf_free(&up);
	buf_free(&guest);
	hx_free(h);
}

static void test_upgrade_declined(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 }, up = { 0 };
	char *s = req(h,
		      "GET /ws HTTP/1.1\r\nHost: " SNI "\r\nUpgrade: websocket\r\n\r\n"
		      "GET /next?" PH0 " HTTP/1.1\r\nHost: " SNI "\r\n\r\n",
		      0, HX_OK, &guest);

	free(s);
	s = resp(h, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 0, HX_OK);
	free(s);
	assert_false(hx_opaque(h));
	assert_int_equal(hx_request(h, NULL, 0, &up, &guest), HX_OK);
	s = str(&up);
	assert_non_null(strstr(s, "GET /next?sk-live"));
	free(s);
	buf_free(&up);
	buf_free(&guest);
	hx_free(h);
}

static void test_bounds(void **state)
{
	(void)state;
	struct hx *h = mk(SNI, false);
	struct buf guest = { 0 }, up = { 0 };
	char *big = malloc(HX_MAX_HEAD + 100), *g;

	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'a', HX_MAX_HEAD + 80);
	for (size_t i = 0; i < HX_MAX_HEAD + 100; i += 4096) {
		size_t n = HX_MAX_HEAD + 100 - i < 4096 ? HX_MAX_HEAD + 100 - i : 4096;
		int rc = hx_request(h, (const uint8_t *)big + i, n, &up, &guest);

		assert_int_equal(rc, i + n < HX_MAX_HEAD ? HX_OK : HX_BAD);
	}
	assert_int_equal(hx_request(h, (const uint8_t *)"x", 1, &up, &guest), HX_BAD);
	assert_int_equal(buf_size(&up), 0);
	g = str(&guest);
	assert_non_null(strstr(g, "HTTP/1.1 431 "));
	free(g);
	buf_free(&guest);
	hx_free(h);
	free(big);

	/* 101 headers */
	struct buf in = { 0 };

	h = mk(SNI, false);
	assert_int_equal(buf_append(&in, "GET / HTTP/1.1\r\n", 16), 0);
	for (int i = 0; i <= HX_MAX_HEADERS; i++)
		assert_int_equal(buf_append(&in, "A: b\r\n", 6), 0);
	assert_int_equal(buf_append(&in, "\r\n", 2), 0);
	assert_int_equal(hx_request(h, buf_head(&in), buf_size(&in), &up, &guest), HX_BAD);
	assert_int_equal(buf_size(&up), 0);
	buf_free(&in);
	buf_free(&guest);
	hx_free(h);

	const char *bad[] = {
		"CONNECT api.example.test:443 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
		"GET / HTTP/1.1\r\nX : y\r\n\r\n",
		"GET / HTTP/1.1\r\nX: y\r\n z\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *s = req1(bad[i], HX_BAD);

		assert_true(!strncmp(s, "", 1) || !strncmp(bad[i], "POST", 4));
		free(s);
	}
}

/* --- echoed Basic credentials ------------------------------------------- */

/* @s percent-encoded as hx encodes: all but RFC 3986 unreserved. */
static char *pct(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = malloc(3 * strlen(s) + 1), *p = o;

	assert_non_null(o);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~", c)) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return o;
}

/* base64 of @user ":" @pass, newly allocated. */
static char *basic(const char *user, const char *pass)
{
	char plain[256];
	int n = snprintf(plain, sizeof(plain), "%s:%s", user, pass);

	assert_true(n > 0 && (size_t)n < sizeof(plain));
	return b64_encode(plain, (size_t)n);
}

/* Sends a GET with "Authorization: Basic @cred"; asserts it went up as @want. */
static void basic_req(struct hx *h, const char *cred, const char *want, int rc)
{
	struct buf guest = { 0 };
	char in[512], line[256], *up;

	snprintf(in, sizeof(in),
		 "GET /e HTTP/1.1\r\nHost: " SNI "\r\nAuthorization: Basic %s\r\n\r\n", cred);
	up = req(h, in, 0, rc, &guest);
	if (want) {
		snprintf(line, sizeof(line), "Authorization: Basic %s\r\n", want);
		assert_non_null(strstr(up, line));
	} else {
		char *g = str(&guest);

		assert_string_equal(up, "");
		assert_non_null(strstr(g, "HTTP/1.1 400 "));
		assert_non_null(strstr(g, "too many Basic credentials awaiting their responses"));
		free(g);
	}
	free(up);
	buf_free(&guest);
}

/* An echo of the credential as it went up, in a header and in bodies, split anywhere. */
static void test_basic_echo_every_split(void **state)
{
	(void)state;
	char *cred = basic("user", PH0), *want = basic("user", V0);
	char *pcred = pct(cred), *pwant = pct(want);
	char in[2048], body[512], exp_body[512], exp_head[1024], chunked[512];
	size_t n, half;

	/* a debug page: the header echoed, and JSON and form bodies holding it */
	snprintf(body, sizeof(body), "{\"authorization\":\"Basic %s\",\"q\":\"a=%s&b=1\"}", want,
		 pwant);
	snprintf(exp_body, sizeof(exp_body), "{\"authorization\":\"Basic %s\",\"q\":\"a=%s&b=1\"}",
		 cred, pcred);
	half = strlen(want) / 2;
	snprintf(chunked, sizeof(chunked), "%zx\r\n<%.*s\r\n%zx\r\n%s>\r\n0\r\n\r\n", half + 1,
		 (int)half, want, strlen(want) - half + 1, want + half);
	snprintf(in, sizeof(in),
		 "HTTP/1.1 200 OK\r\nX-Echo: Basic %s\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%sHTTP/1.1 404 Not Found\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n%s",
		 want, strlen(body), body, chunked);
	snprintf(exp_head, sizeof(exp_head),
		 "HTTP/1.1 200 OK\r\nX-Echo: Basic %s\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 cred, strlen(exp_body), exp_body);
	n = strlen(in);
	/* the lengths differ, so the framing must follow */
	assert_true(strlen(cred) != strlen(want));
	for (size_t k = 0; k <= n; k++) {
		struct hx *h = mk(SNI, false);
		struct buf g = { 0 };
		char *s, *b;

		basic_req(h, cred, want, HX_OK);
		basic_req(h, cred, want, HX_OK);
		assert_int_equal(hx_response(h, (const uint8_t *)in, k, &g), HX_OK);
		assert_int_equal(hx_response(h, (const uint8_t *)in + k, n - k, &g), HX_OK);
		s = str(&g);
		assert_null(strstr(s, want));
		assert_null(strstr(s, pwant));
		assert_memory_equal(s, exp_head, strlen(exp_head));
		assert_int_equal(content_length(s), (long)strlen(exp_body));
		b = body_of(s + strlen(exp_head));
		assert_int_equal(strlen(b), strlen(cred) + 2);
		assert_true(b[0] == '<' && b[strlen(cred) + 1] == '>');
		assert_memory_equal(b + 1, cred, strlen(cred));
		assert_int_equal(naudits, 2);
		free(b);
		free(s);
		buf_free(&g);
		hx_free(h);
	}
	free(cred);
	free(want);
	free(pcred);
	free(pwant);
}

/* At most HX_MAX_CREDS remembered; only answered ones are forgotten, oldest first. */
static void test_basic_echo_bounds(void **state)
{
	(void)state;
	char user[16], *cred[HX_MAX_CREDS + 1], *want[HX_MAX_CREDS + 1];
	struct hx *h = mk(SNI, false);

	for (size_t i = 0; i <= HX_MAX_CREDS; i++) {
		snprintf(user, sizeof(user), "user%zu", i);
		cred[i] = basic(user, PH0);
		want[i] = basic(user, V0);
	}
	/* pipelined: the ninth would evict one whose echo may still come */
	for (size_t i = 0; i < HX_MAX_CREDS; i++)
		basic_req(h, cred[i], want[i], HX_OK);
	basic_req(h, cred[HX_MAX_CREDS], NULL, HX_BAD);
	hx_free(h);

	/* one credential sent again and again takes one slot */
	h = mk(SNI, false);
	for (size_t i = 0; i < HX_MAX_PENDING; i++)
		basic_req(h, cred[0], want[0], HX_OK);
	hx_free(h);

	/* answered in turn: the ninth forgets the first, and only it */
	h = mk(SNI, false);
	for (size_t i = 0; i <= HX_MAX_CREDS; i++) {
		char *s;

		basic_req(h, cred[i], want[i], HX_OK);
		s = resp(h, "HTTP/1.1 204 No Content\r\n\r\n", 0, HX_OK);
		free(s);
		naudits = 0;
	}
	for (size_t i = 0; i <= HX_MAX_CREDS; i++) {
		char in[256], out[256], *s;

		basic_req(h, "eA==", "eA==", HX_OK); /* "x": nothing substituted, nothing kept */
		snprintf(in, sizeof(in), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
			 strlen(want[i]), want[i]);
		snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
			 strlen(i ? cred[i] : want[i]), i ? cred[i] : want[i]);
		s = resp(h, in, 0, HX_OK);
		assert_string_equal(s, out);
		free(s);
		naudits = 0;
	}
	hx_free(h);
	for (size_t i = 0; i <= HX_MAX_CREDS; i++) {
		free(cred[i]);
		free(want[i]);
	}

	/* a credential longer than HX_MAX_CRED is refused, not forgotten */
	struct buf guest = { 0 }, up = { 0 }, in = { 0 };
	size_t ulen = HX_MAX_CRED * 3 / 4;
	char *plain = malloc(ulen + 1 + 43 + 1), *big, *g;

	memset(plain, 'u', ulen);
	memcpy(plain + ulen, ":" PH0, 45);
	big = b64_encode(plain, strlen(plain));
	h = mk(SNI, false);
	assert_int_equal(
		buf_append(&in, "GET / HTTP/1.1\r\nHost: " SNI "\r\nAuthorization: Basic ",
			   strlen("GET / HTTP/1.1\r\nHost: " SNI "\r\nAuthorization: Basic ")),
		0);
	assert_int_equal(buf_append(&in, big, strlen(big)), 0);
	assert_int_equal(buf_append(&in, "\r\n\r\n", 4), 0);
	assert_int_equal(hx_request(h, buf_head(&in), buf_size(&in), &up, &guest), HX_BAD);
	assert_int_equal(buf_size(&up), 0);
	g = str(&guest);
	assert_non_null(strstr(g, "HTTP/1.1 431 "));
	assert_non_null(strstr(g, "Basic credential too large"));
	free(g);
	free(big);
	free(plain);
	buf_free(&in);
	buf_free(&guest);
	hx_free(h);
}

static void test_bad_config(void **state)
{
	(void)state;
	struct hx_secret s = secrets[0];
	struct hx_config c = { .secrets = &s, .nsecrets = 1 };

	s.placeholder = "msb-secret-0123456789ABCDEF0123456789abcdef";
	assert_null(hx_new(&c));
	s = secrets[0];
	s.value_len = 0;
	assert_null(hx_new(&c));
	s = secrets[0];
	c.nsecrets = HX_MAX_SECRETS + 1;
	assert_null(hx_new(&c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_target_percent),
		cmocka_unit_test(test_header_raw_and_accept_encoding),
		cmocka_unit_test(test_percent_and_json_encoded_placeholders),
		cmocka_unit_test(test_json_body),
		cmocka_unit_test(test_response_value_with_escaped_slash),
		cmocka_unit_test(test_form_and_raw_body),
		cmocka_unit_test(test_basic_auth),
		cmocka_unit_test(test_header_restricted),
		cmocka_unit_test(test_unknown_placeholder_ignored),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_chunked_request_rechunked),
		cmocka_unit_test(test_large_body_becomes_chunked),
		cmocka_unit_test(test_expect_continue),
		cmocka_unit_test(test_response_values_replaced),
		cmocka_unit_test(test_response_chunked_split_value),
		cmocka_unit_test(test_response_large_and_close),
		cmocka_unit_test(test_response_close_delimited),
		cmocka_unit_test(test_response_every_split),
		cmocka_unit_test(test_not_allowed_403),
		cmocka_unit_test(test_host_mismatch),
		cmocka_unit_test(test_plain_http),
		cmocka_unit_test(test_mid_body_violation_dirty),
		cmocka_unit_test(test_passthrough),
		cmocka_unit_test(test_header_value_with_crlf),
		cmocka_unit_test(test_pipelining_and_audit),
		cmocka_unit_test(test_upgrade_passthrough),
		cmocka_unit_test(test_upgrade_declined),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_basic_echo_every_split),
		cmocka_unit_test(test_basic_echo_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
