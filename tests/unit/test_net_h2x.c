// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for HTTP/2 interception (net/h2x): a real nghttp2 client stands
 * for the guest, a real nghttp2 server for the upstream (it answers each
 * request with the request: its fields, an empty line, its body), and h2x
 * sits between them.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "net/h2x.h"
#include "util/b64.h"
#include "util/buf.h"

#define PH0 "msb-secret-0123456789abcdef0123456789abcdef"
#define PHX "msb-secret-99999999999999999999999999999999" /* nobody's */
#define V0  "sk-live-42"
#define SNI "api.example.test"

static const struct hx_secret secrets[] = {
	{ "API_KEY", PH0, (const uint8_t *)V0, sizeof(V0) - 1, NULL, true, NULL },
};

#define MAXS 16

/* One side's view of each stream. */
struct rec {
	struct buf head[MAXS]; /* "name: value\n" lines, in order */
	struct buf body[MAXS];
	uint32_t closed[MAXS]; /* 1 + the error code, once closed */
	bool goaway;
};

static struct rec G, U; /* the guest's (responses), the upstream's (requests) */
static nghttp2_session *cli, *srv;
static struct h2x *X;
static size_t naudits, nviolations;
static struct hx_audit last_audit;
static char last_path[HX_AUDIT_PATH];
static bool want_trailer;

static void on_audit(void *ctx, const struct hx_audit *a)
{
	(void)ctx;
	naudits++;
	last_audit = *a;
	snprintf(last_path, sizeof(last_path), "%s", a->path);
}

static void on_violation(void *ctx, const struct hx_violation *v)
{
	(void)ctx;
	(void)v;
	nviolations++;
}

static struct rec *rec_of(nghttp2_session *s)
{
	return s == cli ? &G : &U;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
		     const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
	struct buf *b = &rec_of(s)->head[f->hd.stream_id % MAXS];

	(void)flags;
	(void)ud;
	buf_append(b, n, nl);
	buf_append(b, ": ", 2);
	buf_append(b, v, vl);
	buf_append(b, "\n", 1);
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
		   void *ud)
{
	(void)flags;
	(void)ud;
	buf_append(&rec_of(s)->body[id % MAXS], p, n);
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	(void)ud;
	rec_of(s)->closed[id % MAXS] = 1 + code;
	return 0;
}

/* The upstream's answer: what it got, then (for a request asking for one) a trailer. */
static ssize_t read_echo(nghttp2_session *s, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct buf *b = src->ptr;
	size_t n = buf_size(b) < len ? buf_size(b) : len;

	(void)ud;
	memcpy(out, buf_head(b), n);
	buf_consume(b, n);
	if (!buf_size(b)) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (want_trailer && s == srv) {
			nghttp2_nv t = { (uint8_t *)"x-echo-trailer", (uint8_t *)V0, 14,
					 sizeof(V0) - 1, 0 };

			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_submit_trailer(s, id, &t, 1);
		}
	}
	return (ssize_t)n;
}

static struct buf answers[MAXS];

/* A guest's body that never comes. */
static ssize_t read_never(nghttp2_session *s, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
			  nghttp2_data_source *src, void *ud)
{
	(void)s;
	(void)id;
	(void)out;
	(void)len;
	(void)flags;
	(void)src;
	(void)ud;
	return NGHTTP2_ERR_DEFERRED;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	(void)ud;
	if (f->hd.type == NGHTTP2_GOAWAY)
		rec_of(s)->goaway = true;
	if (s == srv && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA)) {
		int id = f->hd.stream_id;
		struct buf *a = &answers[id % MAXS];
		nghttp2_nv nv[] = {
			{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, 0 },
			{ (uint8_t *)"x-echo", (uint8_t *)V0, 6, sizeof(V0) - 1, 0 },
		};
		nghttp2_data_provider prd = { .source.ptr = a, .read_callback = read_echo };

		buf_clear(a);
		buf_append(a, buf_head(&U.head[id % MAXS]), buf_size(&U.head[id % MAXS]));
		buf_append(a, "\n", 1);
		buf_append(a, buf_head(&U.body[id % MAXS]), buf_size(&U.body[id % MAXS]));
		nghttp2_submit_response(s, id, nv, 2, &prd);
	}
	return 0;
}

static nghttp2_session *peer(bool server)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *s;

	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	if (server)
		assert_int_equal(nghttp2_session_server_new(&s, cb, NULL), 0);
	else
		assert_int_equal(nghttp2_session_client_new(&s, cb, NULL), 0);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0), 0);
	return s;
}

static int setup(void **state)
{
	struct hx_config c = {
		.secrets = secrets,
		.nsecrets = 1,
		.sni = SNI,
		.audit = on_audit,
		.violation = on_violation,
	};

	(void)state;
	memset(&G, 0, sizeof(G));
	memset(&U, 0, sizeof(U));
	memset(answers, 0, sizeof(answers));
	naudits = nviolations = 0;
	want_trailer = false;
	cli = peer(false);
	srv = peer(true);
	X = h2x_new(&c);
	assert_non_null(X);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h2x_free(X);
	nghttp2_session_del(cli);
	nghttp2_session_del(srv);
	for (int i = 0; i < MAXS; i++) {
		buf_free(&G.head[i]);
		buf_free(&G.body[i]);
		buf_free(&U.head[i]);
		buf_free(&U.body[i]);
		buf_free(&answers[i]);
	}
	return 0;
}

/* Moves frames until nobody has anything to say; @piece: the guest's bytes in pieces this big. */
static void pump_pieces(size_t piece)
{
	struct buf up = { 0 }, down = { 0 };

	for (int round = 0; round < 1000; round++) {
		bool moved = false;
		const uint8_t *p;
		ssize_t n;

		while ((n = nghttp2_session_mem_send(cli, &p)) > 0) {
			for (size_t off = 0; off < (size_t)n; off += piece) {
				size_t k = (size_t)n - off < piece ? (size_t)n - off : piece;

				assert_int_equal(h2x_guest(X, p + off, k), 0);
			}
			moved = true;
		}
		while ((n = nghttp2_session_mem_send(srv, &p)) > 0) {
			assert_int_equal(h2x_upstream(X, p, (size_t)n), 0);
			moved = true;
		}
		assert_int_equal(h2x_send(X, &up, &down, 64 << 10), 0);
		if (buf_size(&up)) {
			assert_int_equal(
				nghttp2_session_mem_recv(srv, buf_head(&up), buf_size(&up)),
				(ssize_t)buf_size(&up));
			buf_clear(&up);
			moved = true;
		}
		if (buf_size(&down)) {
			assert_int_equal(
				nghttp2_session_mem_recv(cli, buf_head(&down), buf_size(&down)),
				(ssize_t)buf_size(&down));
			buf_clear(&down);
			moved = true;
		}
		if (!moved)
			break;
	}
	buf_free(&up);
	buf_free(&down);
}

static void pump(void)
{
	pump_pieces(SIZE_MAX);
}

static char *str(const struct buf *b)
{
	char *s = strndup((const char *)buf_head(b), buf_size(b));

	assert_non_null(s);
	return s;
}

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), 0                        \
	}

/* A request from the guest; @body NULL: none. Return: its stream id. */
static int32_t request(const char *method, const char *authority, const char *path,
		       const nghttp2_nv *extra, size_t nextra, struct buf *body)
{
	nghttp2_nv nv[16] = {
		NV(":method", method),
		NV(":scheme", "https"),
		NV(":authority", authority),
		NV(":path", path),
	};
	nghttp2_data_provider prd = { .source.ptr = body, .read_callback = read_echo };
	int32_t id;

	memcpy(nv + 4, extra, nextra * sizeof(*nv));
	id = nghttp2_submit_request(cli, NULL, nv, 4 + nextra, body ? &prd : NULL, NULL);
	assert_true(id > 0);
	return id;
}

static void test_get_substitutes_path_and_header_and_hides_the_echo(void **state)
{
	nghttp2_nv h[] = { NV("authorization", "Bearer " PH0), NV("x-other", PHX) };
	int32_t id;
	char *up, *down, *body;

	(void)state;
	want_trailer = true;
	id = request("GET", SNI, "/v1/things?key=" PH0 "&q=1", h, 2, NULL);
	pump();
	up = str(&U.head[id % MAXS]);
	assert_non_null(strstr(up, ":path: /v1/things?key=" V0 "&q=1\n"));
	assert_non_null(strstr(up, ":authority: " SNI "\n"));
	assert_non_null(strstr(up, "authorization: Bearer " V0 "\n"));
	assert_non_null(strstr(up, "x-other: " PHX "\n")); /* nobody's placeholder: text */
	assert_non_null(strstr(up, "accept-encoding: identity\n"));
	assert_null(strstr(up, PH0));
	down = str(&G.head[id % MAXS]);
	body = str(&G.body[id % MAXS]);
	assert_non_null(strstr(down, ":status: 200\n"));
	assert_non_null(strstr(down, "x-echo: " PH0 "\n"));
	assert_non_null(strstr(down, "x-echo-trailer: " PH0 "\n")); /* the trailer, scanned */
	assert_null(strstr(down, V0));
	assert_null(strstr(body, V0));
	assert_non_null(strstr(body, "authorization: Bearer " PH0));
	assert_int_equal(G.closed[id % MAXS], 1); /* closed without an error */
	assert_int_equal(naudits, 1);
	assert_string_equal(last_path, "/v1/things");
	assert_int_equal(last_audit.status, 200);
	assert_int_equal(last_audit.secrets, 1);
	free(up);
	free(down);
	free(body);
}

static void fill(struct buf *b, const char *prefix, size_t n, const char *suffix)
{
	buf_append(b, prefix, strlen(prefix));
	for (size_t i = 0; i < n; i++)
		buf_append(b, "a", 1);
	buf_append(b, suffix, strlen(suffix));
}

static void test_bodies_with_and_without_length_small_and_large(void **state)
{
	static const size_t sizes[] = { 10, 100000 };

	(void)state;
	for (size_t k = 0; k < 2; k++) {
		for (int with_len = 0; with_len < 2; with_len++) {
			struct buf b = { 0 };
			char len[24];
			nghttp2_nv h[2] = { NV("content-type", "application/json") };
			int32_t id;
			char *up, *body;

			fill(&b, "{\"k\": \"" PH0 "\", \"pad\": \"", sizes[k], "\"}");
			snprintf(len, sizeof(len), "%zu", buf_size(&b));
			h[1] = (nghttp2_nv)NV("content-length", len);
			id = request("POST", SNI, "/post", h, with_len ? 2 : 1, &b);
			pump();
			up = str(&U.body[id % MAXS]);
			assert_int_equal(strncmp(up, "{\"k\": \"" V0 "\"", 8 + strlen(V0)), 0);
			assert_int_equal(strlen(up), 7 + strlen(V0) + 11 + sizes[k] + 2);
			free(up);
			up = str(&U.head[id % MAXS]);
			/* A held body (with a length, small) goes up with its new length. */
			if (with_len && sizes[k] < HX_BODY_BUFFER) {
				char want[64];

				snprintf(want, sizeof(want), "content-length: %zu\n",
					 7 + strlen(V0) + 11 + sizes[k] + 2);
				assert_non_null(strstr(up, want));
			} else {
				assert_null(strstr(up, "content-length"));
			}
			free(up);
			body = str(&G.body[id % MAXS]);
			assert_null(strstr(body, V0));
			assert_non_null(strstr(body, PH0));
			free(body);
			assert_int_equal(G.closed[id % MAXS], 1);
			buf_free(&b);
		}
	}
}

static void test_split_frames_still_match(void **state)
{
	nghttp2_nv h[] = { NV("x-key", PH0) };
	int32_t id;
	char *up;

	(void)state;
	id = nghttp2_submit_request(cli, NULL,
				    (nghttp2_nv[]){ NV(":method", "GET"), NV(":scheme", "https"),
						    NV(":authority", SNI), NV(":path", "/s"),
						    h[0] },
				    5, NULL, NULL);
	pump_pieces(1); /* the guest's bytes one at a time */
	pump();
	up = str(&U.head[id % MAXS]);
	assert_non_null(strstr(up, "x-key: " V0 "\n"));
	free(up);
}

static void test_authority_other_than_the_sni_is_a_violation(void **state)
{
	nghttp2_nv h[] = { NV("authorization", "Bearer " PH0) };
	int32_t id;
	char *down, *body;

	(void)state;
	id = request("GET", "evil.example.test", "/x", h, 1, NULL);
	pump();
	assert_int_equal(buf_size(&U.head[id % MAXS]), 0); /* nothing went up */
	down = str(&G.head[id % MAXS]);
	body = str(&G.body[id % MAXS]);
	assert_non_null(strstr(down, ":status: 403\n"));
	assert_non_null(strstr(body, "API_KEY"));
	assert_non_null(strstr(body, "evil.example.test"));
	assert_true(G.goaway);
	assert_int_equal(nviolations, 1);
	assert_true(h2x_done(X));
	free(down);
	free(body);
}

static void test_a_violation_in_a_streamed_body_resets_upstream(void **state)
{
	struct buf b = { 0 };
	nghttp2_nv h[] = { NV("content-type", "text/plain") };
	int32_t id;
	char *down;
	struct hx_secret s = secrets[0];
	struct hx_config c = {
		.secrets = &s, .nsecrets = 1, .sni = SNI, .violation = on_violation
	};

	(void)state;
	/* The same secret, but not allowed on this connection (a pin that failed). */
	s.allowed = false;
	s.why_not = SNI " was not resolved to 10.0.0.1 by this sandbox's DNS";
	h2x_free(X);
	X = h2x_new(&c);
	assert_non_null(X);
	fill(&b, "", 100000, " " PH0);
	id = request("POST", SNI, "/upload", h, 1, &b);
	pump();
	down = str(&G.head[id % MAXS]);
	assert_non_null(strstr(down, ":status: 403\n"));
	assert_int_equal(nviolations, 1);
	/* The head and part of the body went up before the placeholder: reset, not ended. */
	assert_true(U.closed[id % MAXS] > 1);
	assert_null(strstr((char *)buf_head(&U.body[id % MAXS]) ?: "", PH0));
	free(down);
	buf_free(&b);
}

static void test_basic_credentials_and_many_streams(void **state)
{
	char *cred = b64_encode((const unsigned char *)"user:" PH0, 5 + strlen(PH0));
	char *want = b64_encode((const unsigned char *)"user:" V0, 5 + strlen(V0));
	char auth[128], line[160];
	int32_t ids[8];

	(void)state;
	snprintf(auth, sizeof(auth), "Basic %s", cred);
	for (int i = 0; i < 8; i++) {
		nghttp2_nv h[] = { NV("authorization", auth) };

		ids[i] = nghttp2_submit_request(
			cli, NULL,
			(nghttp2_nv[]){ NV(":method", "GET"), NV(":scheme", "https"),
					NV(":authority", SNI), NV(":path", "/b"), h[0] },
			5, NULL, NULL);
	}
	pump();
	snprintf(line, sizeof(line), "authorization: Basic %s\n", want);
	for (int i = 0; i < 8; i++) {
		char *up = str(&U.head[ids[i] % MAXS]), *body = str(&G.body[ids[i] % MAXS]);

		assert_non_null(strstr(up, line));
		/* The echo of the credential comes back as the guest sent it. */
		assert_null(strstr(body, want));
		assert_non_null(strstr(body, cred));
		free(up);
		free(body);
	}
	assert_int_equal(naudits, 8);
	free(cred);
	free(want);
}

static void test_upstream_end_answers_502(void **state)
{
	int32_t id;
	char *down;

	(void)state;
	/* The request goes up, and the server goes away before answering. */
	id = nghttp2_submit_request(cli, NULL,
				    (nghttp2_nv[]){ NV(":method", "PUT"), NV(":scheme", "https"),
						    NV(":authority", SNI), NV(":path", "/p") },
				    4, &(nghttp2_data_provider){ .read_callback = read_never },
				    NULL);
	pump();
	h2x_upstream_end(X);
	pump();
	down = str(&G.head[id % MAXS]);
	assert_non_null(strstr(down, ":status: 502\n"));
	assert_true(G.goaway);
	free(down);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_get_substitutes_path_and_header_and_hides_the_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bodies_with_and_without_length_small_and_large,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_frames_still_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_authority_other_than_the_sni_is_a_violation,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_violation_in_a_streamed_body_resets_upstream,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_basic_credentials_and_many_streams, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_upstream_end_answers_502, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
