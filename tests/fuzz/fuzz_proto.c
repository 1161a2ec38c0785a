// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for the wire protocol: frame parsing, every payload decoder and round trips. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/proto.h"
#include "util/buf.h"

/*
 * Input: one mode byte, then the bytes under test.
 *   mode & MODE_EXEC   the rest is a bare EXEC payload (no frame header)
 *   otherwise          the rest is a frame stream; it is parsed once as a whole and,
 *                      when mode >> 1 is nonzero, again fed in chunks of that many
 *                      bytes, which must yield the same frames and the same end state
 */
#define MODE_EXEC 0x1u

static bool strv_equal(char *const *a, char *const *b)
{
	size_t i;

	for (i = 0; a[i] && b[i]; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return !a[i] && !b[i];
}

static bool exec_equal(const struct proto_exec *a, const struct proto_exec *b)
{
	if (a->flags != b->flags || a->rows != b->rows || a->cols != b->cols ||
	    a->nrlimits != b->nrlimits || strcmp(a->user, b->user) != 0 ||
	    strcmp(a->cwd, b->cwd) != 0 || !strv_equal(a->argv, b->argv) ||
	    !strv_equal(a->env, b->env))
		return false;
	for (uint32_t i = 0; i < a->nrlimits; i++)
		if (a->rlimits[i].resource != b->rlimits[i].resource ||
		    a->rlimits[i].soft != b->rlimits[i].soft ||
		    a->rlimits[i].hard != b->rlimits[i].hard)
			return false;
	return true;
}

/*
 * The EXEC encoding is canonical (fixed fields, length-prefixed strings, no
 * trailing bytes), so a request decoded from @p re-encodes to exactly @p, and
 * decoding that gives the same request back.
 */
static void exec_roundtrip(const uint8_t *p, size_t n, const struct proto_exec *e)
{
	struct buf b = { 0 };
	struct proto_exec again;
	struct proto_frame f;
	int r;

	CHECK(e->argv && e->argv[0] && e->env && e->user && e->cwd);
	CHECK(e->nrlimits <= PROTO_MAX_RLIMITS);
	CHECK(!(e->flags & ~PROTO_EXEC_FLAGS_ALL));

	r = proto_exec_encode(&b, 1, e);
	if (r == -ENOMEM)
		goto out;
	if (n > PROTO_MAX_PAYLOAD) {
		/* Only reachable in bare-payload mode: too big to send. */
		CHECK(r == -EMSGSIZE && buf_size(&b) == 0);
		goto out;
	}
	CHECK(r == 0);
	CHECK(proto_parse(&b, &f) == 1);
	CHECK(f.type == PROTO_EXEC && f.sid == 1 && f.len == n);
	CHECK(buf_size(&b) == PROTO_HDR_SIZE + n);
	CHECK(n == 0 || memcmp(f.payload, p, n) == 0);

	r = proto_exec_decode(f.payload, f.len, &again);
	if (r == -ENOMEM)
		goto out;
	CHECK(r == 0);
	CHECK(exec_equal(e, &again));
	proto_exec_free(&again);
out:
	buf_free(&b);
}

static void fuzz_exec(const uint8_t *p, size_t n)
{
	struct proto_exec e;
	int r = proto_exec_decode(p, n, &e);

	if (r < 0) {
		CHECK(r == -EBADMSG || r == -E2BIG || r == -ENOMEM);
		CHECK(e.storage_ == NULL);
		return;
	}
	CHECK(r == 0);
	exec_roundtrip(p, n, &e);
	proto_exec_free(&e);
	CHECK(e.storage_ == NULL && e.argv == NULL);
}

/* A peer's string after decoding: terminated within @cap, no control bytes. */
static void check_decoded(const char *s, size_t cap)
{
	CHECK(strnlen(s, cap) < cap);
	check_printable(s);
}

/* Re-encodes a fixed-size payload and checks it reproduces the frame byte for byte. */
static void check_reencoded(const struct buf *b, const struct proto_frame *f, int r)
{
	if (r == -ENOMEM)
		return;
	CHECK(r == 0);
	CHECK(buf_size(b) == PROTO_HDR_SIZE + f->len);
	CHECK(memcmp(buf_head(b), f->payload - PROTO_HDR_SIZE, PROTO_HDR_SIZE + f->len) == 0);
}

static void fuzz_frame(const struct proto_frame *f)
{
	struct buf b = { 0 };
	int r;

	/* The header is canonical too: re-framing the payload gives the same bytes. */
	check_reencoded(&b, f, proto_put_frame(&b, f->type, f->sid, f->payload, f->len));
	buf_clear(&b);
	CHECK(strcmp(proto_type_name(f->type), "UNKNOWN") != 0);

	switch (f->type) {
	case PROTO_READY: {
		struct proto_ready rd;

		r = proto_ready_decode(f->payload, f->len, &rd);
		CHECK(r == (f->len < 20 ? -EBADMSG : 0));
		if (r == 0) {
			/* Longer payloads are allowed; the known 20 bytes re-encode. */
			r = proto_ready_encode(&b, &rd);
			if (r == 0)
				CHECK(buf_size(&b) == PROTO_HDR_SIZE + 20 &&
				      memcmp(buf_head(&b) + PROTO_HDR_SIZE, f->payload, 20) == 0);
		}
		break;
	}
	case PROTO_EXEC:
		fuzz_exec(f->payload, f->len);
		break;
	case PROTO_STARTED:
	case PROTO_ACK:
	case PROTO_SIGNAL:
	case PROTO_SHUTDOWN: {
		uint32_t v;

		r = proto_u32_decode(f->payload, f->len, &v);
		CHECK(r == (f->len == 4 ? 0 : -EBADMSG));
		if (r == 0)
			check_reencoded(&b, f, proto_u32_encode(&b, f->type, f->sid, v));
		break;
	}
	case PROTO_RESIZE: {
		uint16_t rows, cols;

		r = proto_resize_decode(f->payload, f->len, &rows, &cols);
		CHECK(r == (f->len == 4 ? 0 : -EBADMSG));
		if (r == 0)
			check_reencoded(&b, f, proto_resize_encode(&b, f->sid, rows, cols));
		break;
	}
	case PROTO_EXITED: {
		struct proto_exited x;

		r = proto_exited_decode(f->payload, f->len, &x);
		CHECK(r == 0 || r == -EBADMSG);
		if (r == 0) {
			CHECK(f->len == 8 && x.code >= 0 && x.code <= 255 && x.signal <= 64);
			check_reencoded(&b, f, proto_exited_encode(&b, f->sid, &x));
		}
		break;
	}
	case PROTO_FAILED: {
		struct proto_failed x;

		r = proto_failed_decode(f->payload, f->len, &x);
		CHECK(r == 0 || r == -EBADMSG);
		if (r == 0) {
			CHECK(x.kind >= PROTO_FAIL_INTERNAL && x.kind < PROTO_FAIL_MAX);
			check_decoded(x.msg, sizeof(x.msg));
		}
		break;
	}
	case PROTO_ERROR: {
		char msg[128], small[8];
		size_t cap = 1 + f->len % sizeof(small);
		int r2;

		r = proto_error_decode(f->payload, f->len, msg, sizeof(msg));
		r2 = proto_error_decode(f->payload, f->len, small, cap);
		CHECK(r == 0 || r == -EBADMSG);
		CHECK(r == r2);
		if (r == 0) {
			check_decoded(msg, sizeof(msg));
			check_decoded(small, cap);
			/* A smaller buffer gets a prefix of the same text. */
			CHECK(strncmp(msg, small, strlen(small)) == 0);
		}
		break;
	}
	case PROTO_CONFIG: {
		struct proto_config c, again;
		struct proto_frame f2;

		r = proto_config_decode(f->payload, f->len, &c);
		CHECK(r == 0 || r == -EBADMSG || r == -E2BIG || r == -ENOMEM);
		if (r == 0) {
			CHECK(c.hostname && c.init && c.init_argv && c.init_env);
			CHECK(c.ntmpfs <= PROTO_MAX_TMPFS && c.nscripts <= PROTO_MAX_SCRIPTS);
			/* What decodes re-encodes, and decodes to the same again. */
			if (proto_config_encode(&b, &c) == 0) {
				CHECK(proto_parse(&b, &f2) == 1 && f2.type == PROTO_CONFIG);
				CHECK(proto_config_decode(f2.payload, f2.len, &again) == 0);
				CHECK(again.flags == c.flags &&
				      !strcmp(again.hostname, c.hostname) &&
				      again.ntmpfs == c.ntmpfs && again.nscripts == c.nscripts &&
				      !strcmp(again.init, c.init) &&
				      strv_equal(again.init_argv, c.init_argv) &&
				      strv_equal(again.init_env, c.init_env));
				for (uint32_t i = 0; i < c.nscripts; i++)
					CHECK(again.scripts[i].len == c.scripts[i].len &&
					      !memcmp(again.scripts[i].body, c.scripts[i].body,
						      c.scripts[i].len));
				proto_config_free(&again);
			}
			proto_config_free(&c);
		}
		break;
	}
	case PROTO_STATS: {
		struct proto_stats st;

		r = proto_stats_decode(f->payload, f->len, &st);
		CHECK(r == 0 || r == -EBADMSG);
		break;
	}
	case PROTO_CONFIGURED: {
		uint64_t v;

		r = proto_u64_decode(f->payload, f->len, &v);
		CHECK(r == 0 || r == -EBADMSG);
		CHECK((r == 0) == (f->len == 8));
		break;
	}
	case PROTO_STDIN:
	case PROTO_STDOUT:
	case PROTO_STDERR:
	case PROTO_STATS_REQ:
	case PROTO_INFO:
	case PROTO_KILL:
	case PROTO_DETACH:
	case PROTO_QUIESCE:
	case PROTO_QUIESCED:
	case PROTO_CTL:
		/* Opaque or empty: nothing to decode (CTL's JSON comes from the host's own user).
		 */
		break;
	default:
		/* proto_parse() let through a type it should have refused. */
		abort();
	}
	buf_free(&b);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* What proto_parse() must say about @have bytes at @h: the rules of proto.h, restated. */
static int expected_parse(const uint8_t *h, size_t have)
{
	uint32_t len, sid;
	uint16_t type, flags;
	bool control;

	if (have < PROTO_HDR_SIZE)
		return 0;
	len = le32(h);
	sid = le32(h + 4);
	type = (uint16_t)(h[8] | h[9] << 8);
	flags = (uint16_t)(h[10] | h[11] << 8);
	if (len > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (type < PROTO_READY || type > PROTO_CTL || flags)
		return -EPROTO;
	control = type == PROTO_READY || type == PROTO_SHUTDOWN || type == PROTO_CONFIG ||
		  type == PROTO_CONFIGURED || type == PROTO_STATS_REQ || type == PROTO_STATS ||
		  type == PROTO_INFO || type == PROTO_KILL || type == PROTO_QUIESCE ||
		  type == PROTO_QUIESCED || type == PROTO_CTL;
	if (type != PROTO_ERROR && control != (sid == 0))
		return -EPROTO;
	return have - PROTO_HDR_SIZE < len ? 0 : 1;
}

struct stream_end {
	size_t frames;
	uint64_t digest; /* of every frame's type, sid and length, in order */
	int last;	 /* the final proto_parse() result: 0 or -errno */
};

/* Feeds @data to a parser @chunk bytes at a time, consuming each complete frame. */
static struct stream_end run_stream(const uint8_t *data, size_t n, size_t chunk, bool decode)
{
	struct stream_end end = { 0 };
	struct buf in = { 0 };
	size_t fed = 0;

	while (fed < n && end.last == 0) {
		size_t k = n - fed < chunk ? n - fed : chunk;

		if (buf_append(&in, data + fed, k) < 0) {
			end.last = -ENOMEM;
			break;
		}
		fed += k;
		for (;;) {
			struct proto_frame f;
			int r = proto_parse(&in, &f);

			CHECK(r == expected_parse(buf_head(&in), buf_size(&in)));
			if (r <= 0) {
				CHECK(r == 0 || r == -EMSGSIZE || r == -EPROTO);
				end.last = r;
				break;
			}
			CHECK(r == 1);
			CHECK(f.len <= PROTO_MAX_PAYLOAD && f.flags == 0);
			CHECK(PROTO_HDR_SIZE + (size_t)f.len <= buf_size(&in));
			CHECK(f.payload == buf_head(&in) + PROTO_HDR_SIZE);
			CHECK(f.type == PROTO_ERROR ||
			      proto_type_is_control(f.type) == (f.sid == 0));
			end.frames++;
			end.digest = end.digest * 1000003u ^
				     ((uint64_t)f.type << 48 ^ (uint64_t)f.sid << 16 ^ f.len);
			if (decode)
				fuzz_frame(&f);
			buf_consume(&in, PROTO_HDR_SIZE + f.len);
		}
	}
	buf_free(&in);
	return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stream_end whole, parts;
	uint8_t mode;

	if (size == 0)
		return 0;
	mode = data[0];
	data++;
	size--;

	if (mode & MODE_EXEC) {
		fuzz_exec(data, size);
		return 0;
	}

	whole = run_stream(data, size, size, true);
	if (mode >> 1) {
		parts = run_stream(data, size, mode >> 1, false);
		/* How the bytes arrive must not change what is parsed. */
		if (whole.last != -ENOMEM && parts.last != -ENOMEM)
			CHECK(whole.frames == parts.frames && whole.digest == parts.digest &&
			      whole.last == parts.last);
	}
	return 0;
}
