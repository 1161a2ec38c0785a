// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for HTTP/2 interception (net/h2x): hostile frames from
 * the guest and from the server, through nghttp2 and the per-stream hx
 * engines.
 *
 * Input: a mode byte, a 2-byte big-endian length L, L bytes the guest sends
 * after the client preface, then what the server sends after an empty
 * SETTINGS frame. Mode & 1: passthrough mode; (mode >> 1) & 3 picks the
 * split (whole, 1 byte, 13 bytes, sizes drawn from the input); bit 3: the
 * server's bytes come before the guest's last piece.
 *
 * Beyond the sanitizers: what reaches the guest, decoded by a real nghttp2
 * client (fields and bodies), never holds an allowed secret's value, unless
 * the guest sent that value itself (it may, and then see it in a refusal).
 */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "fuzz.h"
#include "net/h2x.h"

#define SNI "api.example.test"
#define V0  "S3cr#t/V@l\"ue"

static const struct hx_secret secrets[] = {
	{ "API_KEY", "msb-secret-0123456789abcdef0123456789abcdef", (const uint8_t *)V0,
	  sizeof(V0) - 1, NULL, true, NULL },
	{ "OTHER", "msb-secret-ffffffffffffffffffffffffffffffff", (const uint8_t *)"Xo!ther", 7,
	  NULL, false, "api.example.test is not a host of OTHER" },
};

/* Every field and body byte: the guest's decoder got (@seen), the guest sent (@sent). */
static struct buf seen, sent;

static void on_audit(void *ctx, const struct hx_audit *a)
{
	(void)ctx;
	check_printable(a->method);
	check_printable(a->host);
	check_printable(a->path);
}

static void on_violation(void *ctx, const struct hx_violation *v)
{
	(void)ctx;
	CHECK(v->secret < 2);
	check_printable(v->reason);
	check_printable(v->host);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
		     const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
	struct buf *b = ud;

	(void)s;
	(void)f;
	(void)flags;
	CHECK(buf_append(b, n, nl) == 0);
	CHECK(buf_append(b, "\n", 1) == 0);
	CHECK(buf_append(b, v, vl) == 0);
	CHECK(buf_append(b, "\n", 1) == 0);
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
		   void *ud)
{
	(void)s;
	(void)flags;
	(void)id;
	CHECK(buf_append(ud, p, n) == 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	static const uint8_t settings[] = { 0, 0, 0, 4, 0, 0, 0, 0, 0 };
	struct hx_config c = {
		.secrets = secrets,
		.nsecrets = 2,
		.sni = SNI,
		.audit = on_audit,
		.violation = on_violation,
	};
	struct buf guest_in = { 0 }, up = { 0 }, down = { 0 };
	nghttp2_session_callbacks *cb;
	nghttp2_session *dec, *enc;
	struct h2x *x;
	struct split sp;
	size_t glen, off;
	bool dead = false;

	if (size < 3)
		return 0;
	glen = (size_t)data[1] << 8 | data[2];
	if (glen > size - 3)
		glen = size - 3;
	c.passthrough = data[0] & 1;
	sp = (struct split){ (data[0] >> 1) & 3, data + 3, size - 3, 0, 13, 211 };
	x = h2x_new(&c);
	CHECK(x);
	CHECK(nghttp2_session_callbacks_new(&cb) == 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	CHECK(nghttp2_session_client_new(&dec, cb, &seen) == 0);
	CHECK(nghttp2_session_server_new(&enc, cb, &sent) == 0);
	nghttp2_session_callbacks_del(cb);
	buf_clear(&seen);
	buf_clear(&sent);

	CHECK(buf_append(&guest_in, preface, sizeof(preface) - 1) == 0);
	CHECK(buf_append(&guest_in, data + 3, glen) == 0);
	/* The guest's bytes, then the server's (or the two interleaved, mode bit 3). */
	for (off = 0; off < buf_size(&guest_in) && !dead;) {
		size_t n = split_piece(&sp, buf_size(&guest_in) - off);

		if ((data[0] & 8) && off + n == buf_size(&guest_in))
			break;
		dead = h2x_guest(x, buf_head(&guest_in) + off, n) < 0;
		off += n;
		dead = dead || h2x_send(x, &up, &down, 64 << 10) < 0;
	}
	if (!dead)
		dead = h2x_upstream(x, settings, sizeof(settings)) < 0;
	for (size_t u = 3 + glen; u < size && !dead;) {
		size_t n = split_piece(&sp, size - u);

		dead = h2x_upstream(x, data + u, n) < 0 || h2x_send(x, &up, &down, 64 << 10) < 0;
		u += n;
	}
	if (!dead && off < buf_size(&guest_in))
		dead = h2x_guest(x, buf_head(&guest_in) + off, buf_size(&guest_in) - off) < 0;
	if (!dead) {
		h2x_upstream_end(x);
		(void)h2x_send(x, &up, &down, 64 << 10);
		(void)h2x_done(x);
	}
	/* What the guest was sent, decoded: no value it did not send itself. */
	if (buf_size(&down))
		(void)nghttp2_session_mem_recv(dec, buf_head(&down), buf_size(&down));
	(void)nghttp2_session_mem_recv(enc, buf_head(&guest_in), buf_size(&guest_in));
	if (!memmem(data + 3, glen, V0, sizeof(V0) - 1) &&
	    (!buf_size(&sent) || !memmem(buf_head(&sent), buf_size(&sent), V0, sizeof(V0) - 1)))
		CHECK(!buf_size(&seen) ||
		      !memmem(buf_head(&seen), buf_size(&seen), V0, sizeof(V0) - 1));
	nghttp2_session_del(dec);
	nghttp2_session_del(enc);
	h2x_free(x);
	buf_free(&guest_in);
	buf_free(&up);
	buf_free(&down);
	return 0;
}
