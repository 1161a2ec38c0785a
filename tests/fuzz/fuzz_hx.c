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
 */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "net/hx.h"

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

struct split {
	unsigned int kind;
	const uint8_t *seed;
	size_t nseed, at;
};

static size_t piece(struct split *s, size_t left)
{
	size_t n;

	switch (s->kind) {
	case 0:
		n = left;
		break;
	case 1:
		n = 1;
		break;
	case 2:
		n = 7;
		break;
	default:
		n = s->nseed ? 1 + (size_t)s->seed[s->at++ % s->nseed] % 97 : left;
		break;
	}
	return n < left ? n : left;
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

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	c.passthrough = mode & 0x10;
	c.sni = mode & 0x20 ? NULL : SNI;
	sp = (struct split){ (mode >> 2) & 3, data, size > 64 ? 64 : size, 0 };
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

	h = hx_new(&c);
	CHECK(h);
	if ((mode & 3) == 1)
		CHECK(hx_request(h, (const uint8_t *)prime, sizeof(prime) - 1, &up, &guest) ==
		      HX_OK);
	while (nrq || nrs) {
		if (nrq) {
			size_t n = piece(&sp, nrq);

			rc1 = hx_request(h, rq, n, &up, &guest);
			CHECK(rc1 == HX_OK || rc1 == HX_VIOLATION || rc1 == HX_BAD);
			rq += n;
			nrq -= n;
		}
		if (nrs) {
			size_t n = piece(&sp, nrs);

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
	for (size_t i = 0; i < NSECRETS; i++) {
		const struct hx_secret *s = &secrets[i];

		if (!memmem(data, size, s->value, s->value_len)) {
			if (!s->allowed || !c.sni)
				CHECK(!contains(&up, s->value, s->value_len));
			/* error replies echo the guest's Host header, nothing else */
			CHECK(!contains(&guest, s->value, s->value_len));
		}
		if (!hx_opaque(h))
			CHECK(!contains(&resp, s->value, s->value_len));
	}
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
