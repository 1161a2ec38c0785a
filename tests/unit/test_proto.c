// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the host<->guest wire protocol: framing, session rules and payload codecs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"
#include "util/buf.h"

/* --- helpers ---------------------------------------------------------- */

/* Writers for hand-built payloads, so malformed encodings can be expressed byte by byte. */
static void w16(struct buf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	assert_int_equal(buf_append(b, p, sizeof(p)), 0);
}

static void w32(struct buf *b, uint32_t v)
{
	uint8_t p[4];

	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	assert_int_equal(buf_append(b, p, sizeof(p)), 0);
}

static void w64(struct buf *b, uint64_t v)
{
	w32(b, (uint32_t)v);
	w32(b, (uint32_t)(v >> 32));
}

/* A string with an explicit length, so it may contain NULs. */
static void wstrn(struct buf *b, const char *s, uint32_t n)
{
	w32(b, n);
	assert_int_equal(buf_append(b, s, n), 0);
}

static void wstr(struct buf *b, const char *s)
{
	wstrn(b, s, (uint32_t)strlen(s));
}

/* A raw 12-byte header with any field values, valid or not. */
static void whdr(struct buf *b, uint32_t len, uint32_t sid, uint16_t type, uint16_t flags)
{
	w32(b, len);
	w32(b, sid);
	w16(b, type);
	w16(b, flags);
}

/* Exec payload header up to (not including) argv: flags, rows, cols, user, cwd. */
static void wexec_head(struct buf *b, uint32_t flags)
{
	w32(b, flags);
	w16(b, 24);
	w16(b, 80);
	wstr(b, "root");
	wstr(b, "/");
}

/* Parses exactly one frame from @b and checks its header. */
static struct proto_frame expect_frame(const struct buf *b, uint16_t type, uint32_t sid,
				       uint32_t len)
{
	struct proto_frame f;

	memset(&f, 0xaa, sizeof(f));
	assert_int_equal(proto_parse(b, &f), 1);
	assert_int_equal(f.type, type);
	assert_int_equal(f.sid, sid);
	assert_int_equal(f.flags, 0);
	assert_int_equal(f.len, len);
	assert_ptr_equal(f.payload, buf_head(b) + PROTO_HDR_SIZE);
	assert_int_equal(buf_size(b), PROTO_HDR_SIZE + len);
	return f;
}

static char *const full_argv[] = { "/bin/sh", "-c", "echo 'hi there' >&2", NULL };
static char *const full_env[] = { "PATH=/usr/bin:/bin", "HOME=/root", "EMPTY=", NULL };

static void fill_full_exec(struct proto_exec *e)
{
	memset(e, 0, sizeof(*e));
	e->flags = PROTO_EXEC_TTY | PROTO_EXEC_MKCWD;
	e->rows = 43;
	e->cols = 0xffff;
	e->user = "nobody:nogroup";
	e->cwd = "/srv/work dir";
	e->argv = (char **)full_argv;
	e->env = (char **)full_env;
	e->nrlimits = 2;
	e->rlimits[0] = (struct proto_rlimit){ .resource = 7, .soft = 1024, .hard = 4096 };
	e->rlimits[1] =
		(struct proto_rlimit){ .resource = 3, .soft = UINT64_MAX, .hard = UINT64_MAX };
}

/* --- READY ------------------------------------------------------------ */

static void test_ready_roundtrip(void **state)
{
	static const uint8_t want_hdr[PROTO_HDR_SIZE] = {
		20, 0, 0, 0, /* len */
		0,  0, 0, 0, /* sid */
		1,  0,	     /* type READY */
		0,  0,	     /* flags */
	};
	struct proto_ready in = { .version = PROTO_VERSION,
				  .kernel_ns = 0x0102030405060708ull,
				  .ready_ns = UINT64_MAX };
	struct proto_ready out;
	struct buf b = { 0 };
	struct proto_frame f;

	(void)state;
	assert_int_equal(proto_ready_encode(&b, &in), 0);
	assert_memory_equal(buf_head(&b), want_hdr, PROTO_HDR_SIZE);
	/* Little-endian on the wire whatever the host order. */
	assert_int_equal(buf_head(&b)[PROTO_HDR_SIZE + 4], 0x08);
	assert_int_equal(buf_head(&b)[PROTO_HDR_SIZE + 11], 0x01);
	f = expect_frame(&b, PROTO_READY, 0, 20);

	memset(&out, 0x55, sizeof(out));
	assert_int_equal(proto_ready_decode(f.payload, f.len, &out), 0);
	assert_int_equal(out.version, PROTO_VERSION);
	assert_true(out.kernel_ns == 0x0102030405060708ull);
	assert_true(out.ready_ns == UINT64_MAX);
	buf_free(&b);
}

static void test_ready_decode_lengths(void **state)
{
	uint8_t p[24];
	struct proto_ready out;

	(void)state;
	memset(p, 0, sizeof(p));
	p[0] = 2;
	p[4] = 9;
	p[12] = 10;
	for (size_t n = 0; n < 20; n++)
		assert_int_equal(proto_ready_decode(p, n, &out), -EBADMSG);
	/* A later version may append fields; the known ones still decode. */
	p[20] = 0xff;
	assert_int_equal(proto_ready_decode(p, sizeof(p), &out), 0);
	assert_int_equal(out.version, 2);
	assert_true(out.kernel_ns == 9);
	assert_true(out.ready_ns == 10);
}

/* --- EXEC ------------------------------------------------------------- */

static void test_exec_roundtrip(void **state)
{
	struct proto_exec in, out;
	struct buf b = { 0 };
	struct proto_frame f;

	(void)state;
	fill_full_exec(&in);
	assert_int_equal(proto_exec_encode(&b, 7, &in), 0);
	f = expect_frame(&b, PROTO_EXEC, 7, (uint32_t)(buf_size(&b) - PROTO_HDR_SIZE));

	assert_int_equal(proto_exec_decode(f.payload, f.len, &out), 0);
	assert_int_equal(out.flags, PROTO_EXEC_TTY | PROTO_EXEC_MKCWD);
	assert_int_equal(out.rows, 43);
	assert_int_equal(out.cols, 0xffff);
	assert_string_equal(out.user, "nobody:nogroup");
	assert_string_equal(out.cwd, "/srv/work dir");
	assert_string_equal(out.argv[0], "/bin/sh");
	assert_string_equal(out.argv[1], "-c");
	assert_string_equal(out.argv[2], "echo 'hi there' >&2");
	assert_null(out.argv[3]);
	assert_string_equal(out.env[0], "PATH=/usr/bin:/bin");
	assert_string_equal(out.env[1], "HOME=/root");
	assert_string_equal(out.env[2], "EMPTY=");
	assert_null(out.env[3]);
	assert_int_equal(out.nrlimits, 2);
	assert_int_equal(out.rlimits[0].resource, 7);
	assert_true(out.rlimits[0].soft == 1024);
	assert_true(out.rlimits[0].hard == 4096);
	assert_int_equal(out.rlimits[1].resource, 3);
	assert_true(out.rlimits[1].soft == UINT64_MAX);
	assert_true(out.rlimits[1].hard == UINT64_MAX);
	/* The decoded strings live in the struct's own storage, not in the frame. */
	assert_true((const uint8_t *)out.argv[0] < f.payload ||
		    (const uint8_t *)out.argv[0] >= f.payload + f.len);
	proto_exec_free(&out);
	assert_null(out.argv);
	assert_null(out.storage_);
	buf_free(&b);
}

/* Locks the wire layout: a change here breaks every deployed agent. */
static void test_exec_golden_bytes(void **state)
{
	static const uint8_t want[] = {
		0x01, 0, 0,    0,			/* flags TTY */
		0x02, 0, 0x03, 0,			/* rows 2, cols 3 */
		1,    0, 0,    0, 'u',			/* user */
		0,    0, 0,    0,			/* cwd "" */
		1,    0, 0,    0,			/* argc */
		2,    0, 0,    0, 'a', 'b', 0, 0, 0, 0, /* envc */
		1,    0, 0,    0,			/* nrlimits */
		7,    0, 0,    0,			/* resource */
		1,    0, 0,    0, 0,   0,   0, 0, 2, 0, 0, 0, 0, 0, 0, 0x80,
	};
	char *argv[] = { "ab", NULL };
	struct proto_exec in = { .flags = PROTO_EXEC_TTY,
				 .rows = 2,
				 .cols = 3,
				 .user = "u",
				 .cwd = "",
				 .argv = argv,
				 .nrlimits = 1 };
	struct buf b = { 0 };

	(void)state;
	in.rlimits[0] =
		(struct proto_rlimit){ .resource = 7, .soft = 1, .hard = 0x8000000000000002ull };
	assert_int_equal(proto_exec_encode(&b, 0x01020304, &in), 0);
	assert_int_equal(buf_size(&b), PROTO_HDR_SIZE + sizeof(want));
	assert_int_equal(buf_head(&b)[0], sizeof(want));
	assert_int_equal(buf_head(&b)[4], 0x04);
	assert_int_equal(buf_head(&b)[7], 0x01);
	assert_int_equal(buf_head(&b)[8], PROTO_EXEC);
	assert_memory_equal(buf_head(&b) + PROTO_HDR_SIZE, want, sizeof(want));
	buf_free(&b);
}

static void test_exec_null_user_cwd_env(void **state)
{
	char *argv[] = { "true", NULL };
	struct proto_exec in = { .argv = argv }, out;
	struct buf b = { 0 };
	struct proto_frame f;

	(void)state;
	assert_int_equal(proto_exec_encode(&b, 1, &in), 0);
	/* flags, rows, cols, two empty strings, argc + "true", envc, nrlimits */
	f = expect_frame(&b, PROTO_EXEC, 1, 4 + 2 + 2 + 4 + 4 + 4 + 8 + 4 + 4);
	assert_int_equal(proto_exec_decode(f.payload, f.len, &out), 0);
	assert_int_equal(out.flags, 0);
	assert_string_equal(out.user, "");
	assert_string_equal(out.cwd, "");
	assert_string_equal(out.argv[0], "true");
	assert_null(out.argv[1]);
	assert_non_null(out.env);
	assert_null(out.env[0]);
	assert_int_equal(out.nrlimits, 0);
	proto_exec_free(&out);
	buf_free(&b);
}

static void test_exec_encode_rejects(void **state)
{
	char *argv[] = { "true", NULL };
	char *empty[] = { NULL };
	struct proto_exec e = { .argv = argv };
	struct buf b = { 0 };

	(void)state;
	e.argv = NULL;
	assert_int_equal(proto_exec_encode(&b, 1, &e), -EINVAL);
	e.argv = empty;
	assert_int_equal(proto_exec_encode(&b, 1, &e), -EINVAL);
	e.argv = argv;
	e.nrlimits = PROTO_MAX_RLIMITS + 1;
	assert_int_equal(proto_exec_encode(&b, 1, &e), -EINVAL);
	e.nrlimits = 0;
	e.flags = PROTO_EXEC_FLAGS_ALL + 1;
	assert_int_equal(proto_exec_encode(&b, 1, &e), -EINVAL);
	assert_int_equal(buf_size(&b), 0);
	buf_free(&b);
}

/* A failed encode drops its partial frame and leaves earlier frames intact. */
static void test_exec_encode_limits_keep_buffer(void **state)
{
	char **argv = calloc(PROTO_MAX_STRV + 2, sizeof(char *));
	char *big = malloc(PROTO_MAX_STR + 2);
	char *env[6];
	struct proto_exec e = { 0 };
	struct buf b = { 0 };
	struct proto_frame f;
	uint32_t v;

	(void)state;
	assert_non_null(argv);
	assert_non_null(big);
	assert_int_equal(proto_u32_encode(&b, PROTO_ACK, 3, 77), 0);

	for (int i = 0; i < PROTO_MAX_STRV + 1; i++)
		argv[i] = "x";
	e.argv = argv;
	assert_int_equal(proto_exec_encode(&b, 3, &e), -E2BIG);
	assert_int_equal(buf_size(&b), PROTO_HDR_SIZE + 4);

	/* One string above PROTO_MAX_STR. */
	memset(big, 'y', PROTO_MAX_STR + 1);
	big[PROTO_MAX_STR + 1] = '\0';
	argv[0] = big;
	argv[1] = NULL;
	assert_int_equal(proto_exec_encode(&b, 3, &e), -E2BIG);
	assert_int_equal(buf_size(&b), PROTO_HDR_SIZE + 4);

	/* Each string within limits, the whole payload above PROTO_MAX_PAYLOAD. */
	big[PROTO_MAX_STR] = '\0';
	argv[0] = "x";
	for (int i = 0; i < 5; i++)
		env[i] = big;
	env[5] = NULL;
	e.env = env;
	assert_int_equal(proto_exec_encode(&b, 3, &e), -EMSGSIZE);
	assert_int_equal(buf_size(&b), PROTO_HDR_SIZE + 4);

	f = expect_frame(&b, PROTO_ACK, 3, 4);
	assert_int_equal(proto_u32_decode(f.payload, f.len, &v), 0);
	assert_int_equal(v, 77);
	free(big);
	free(argv);
	buf_free(&b);
}

/* Every strict prefix of a valid EXEC payload is malformed, never a shorter request. */
static void test_exec_decode_every_prefix(void **state)
{
	struct proto_exec in, out;
	struct buf b = { 0 };
	struct proto_frame f;
	uint8_t *copy;

	(void)state;
	fill_full_exec(&in);
	assert_int_equal(proto_exec_encode(&b, 9, &in), 0);
	f = expect_frame(&b, PROTO_EXEC, 9, (uint32_t)(buf_size(&b) - PROTO_HDR_SIZE));
	/* Exact-size heap copies, so ASan catches any read past the prefix. */
	for (uint32_t n = 0; n < f.len; n++) {
		copy = malloc(n ? n : 1);
		assert_non_null(copy);
		memcpy(copy, f.payload, n);
		memset(&out, 0x5a, sizeof(out));
		assert_int_equal(proto_exec_decode(copy, n, &out), -EBADMSG);
		assert_null(out.storage_);
		assert_null(out.argv);
		proto_exec_free(&out);
		free(copy);
	}
	copy = malloc(f.len);
	assert_non_null(copy);
	memcpy(copy, f.payload, f.len);
	assert_int_equal(proto_exec_decode(copy, f.len, &out), 0);
	assert_string_equal(out.argv[2], "echo 'hi there' >&2");
	proto_exec_free(&out);
	free(copy);
	buf_free(&b);
}

static void test_exec_decode_trailing_garbage(void **state)
{
	struct proto_exec in, out;
	struct buf b = { 0 };
	uint8_t zero = 0;

	(void)state;
	fill_full_exec(&in);
	assert_int_equal(proto_exec_encode(&b, 9, &in), 0);
	assert_int_equal(buf_append(&b, &zero, 1), 0);
	assert_int_equal(proto_exec_decode(buf_head(&b) + PROTO_HDR_SIZE,
					   buf_size(&b) - PROTO_HDR_SIZE, &out),
			 -EBADMSG);
	assert_null(out.storage_);
	buf_free(&b);
}

static void test_exec_decode_argc_zero(void **state)
{
	struct buf b = { 0 };
	struct proto_exec out;

	(void)state;
	wexec_head(&b, 0);
	w32(&b, 0); /* argc */
	w32(&b, 0); /* envc */
	w32(&b, 0); /* nrlimits */
	assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -EBADMSG);
	assert_null(out.storage_);
	buf_free(&b);
}

/* The same request with a NUL placed in each string field in turn. */
static void test_exec_decode_embedded_nul(void **state)
{
	(void)state;
	for (int field = 0; field < 5; field++) {
		struct buf b = { 0 };
		struct proto_exec out;

		w32(&b, 0);
		w16(&b, 0);
		w16(&b, 0);
		if (field == 0)
			wstrn(&b, "ro\0t", 4);
		else
			wstr(&b, "root");
		if (field == 1)
			wstrn(&b, "/\0", 2);
		else
			wstr(&b, "/");
		w32(&b, 2);
		if (field == 2)
			wstrn(&b, "\0sh", 3);
		else
			wstr(&b, "sh");
		if (field == 3)
			wstrn(&b, "-c\0", 3);
		else
			wstr(&b, "-c");
		w32(&b, 1);
		if (field == 4)
			wstrn(&b, "A=\0B", 4);
		else
			wstr(&b, "A=B");
		w32(&b, 0);
		assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -EBADMSG);
		buf_free(&b);
	}
}

/* The environment must be KEY=VALUE with a non-empty KEY. */
static void test_exec_decode_env_without_key(void **state)
{
	static const char *const bad[] = { "NOEQUALS", "=value", "", "=" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b = { 0 };
		struct proto_exec out;

		wexec_head(&b, 0);
		w32(&b, 1);
		wstr(&b, "sh");
		w32(&b, 2);
		wstr(&b, "OK=1");
		wstr(&b, bad[i]);
		w32(&b, 0);
		assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -EBADMSG);
		assert_null(out.storage_);
		buf_free(&b);
	}
}

/* Control: the builder above without NULs decodes, so the failures are the NULs. */
static void test_exec_decode_handbuilt_valid(void **state)
{
	struct buf b = { 0 };
	struct proto_exec out;

	(void)state;
	wexec_head(&b, PROTO_EXEC_MKCWD);
	w32(&b, 2);
	wstr(&b, "sh");
	wstr(&b, "-c");
	w32(&b, 1);
	wstr(&b, "A=B");
	w32(&b, 1);
	w32(&b, 7);
	w64(&b, 5);
	w64(&b, 6);
	assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), 0);
	assert_int_equal(out.flags, PROTO_EXEC_MKCWD);
	assert_int_equal(out.rows, 24);
	assert_int_equal(out.cols, 80);
	assert_string_equal(out.user, "root");
	assert_string_equal(out.cwd, "/");
	assert_string_equal(out.argv[0], "sh");
	assert_string_equal(out.argv[1], "-c");
	assert_null(out.argv[2]);
	assert_string_equal(out.env[0], "A=B");
	assert_null(out.env[1]);
	assert_int_equal(out.nrlimits, 1);
	assert_int_equal(out.rlimits[0].resource, 7);
	assert_true(out.rlimits[0].soft == 5 && out.rlimits[0].hard == 6);
	proto_exec_free(&out);
	buf_free(&b);
}

static void test_exec_decode_string_past_end(void **state)
{
	static const uint32_t lens[] = {
		11, 12, 1000, PROTO_MAX_STR, PROTO_MAX_STR + 1, 0x80000000u, UINT32_MAX
	};

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct buf b = { 0 };
		struct proto_exec out;

		/* argv[0] claims @lens[i] bytes; only "sh" and two zero counts follow. */
		wexec_head(&b, 0);
		w32(&b, 1);
		w32(&b, lens[i]);
		assert_int_equal(buf_append(&b, "sh", 2), 0);
		w32(&b, 0);
		w32(&b, 0);
		assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -EBADMSG);
		buf_clear(&b);

		/* The same for the first field, the user. */
		w32(&b, 0);
		w16(&b, 0);
		w16(&b, 0);
		w32(&b, lens[i]);
		assert_int_equal(buf_append(&b, "root", 4), 0);
		assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -EBADMSG);
		buf_free(&b);
	}
}

/* A string longer than PROTO_MAX_STR is refused even when every byte is present. */
static void test_exec_decode_string_too_long(void **state)
{
	struct buf b = { 0 };
	struct proto_exec out;
	char *s = malloc(PROTO_MAX_STR + 1);

	(void)state;
	assert_non_null(s);
	memset(s, 'z', PROTO_MAX_STR + 1);
	wexec_head(&b, 0);
	w32(&b, 1);
	wstrn(&b, s, PROTO_MAX_STR + 1);
	w32(&b, 0);
	w32(&b, 0);
	assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -EBADMSG);

	/* Exactly PROTO_MAX_STR is fine. */
	buf_clear(&b);
	wexec_head(&b, 0);
	w32(&b, 1);
	wstrn(&b, s, PROTO_MAX_STR);
	w32(&b, 0);
	w32(&b, 0);
	assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), 0);
	assert_int_equal(strlen(out.argv[0]), PROTO_MAX_STR);
	proto_exec_free(&out);
	free(s);
	buf_free(&b);
}

static void test_exec_decode_strv_limit(void **state)
{
	struct buf b = { 0 };
	struct proto_exec out;

	(void)state;
	/* PROTO_MAX_STRV entries is the limit, inclusive. */
	wexec_head(&b, 0);
	w32(&b, PROTO_MAX_STRV);
	for (int i = 0; i < PROTO_MAX_STRV; i++)
		wstr(&b, i == PROTO_MAX_STRV - 1 ? "last" : "a");
	w32(&b, 0);
	w32(&b, 0);
	assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), 0);
	assert_string_equal(out.argv[0], "a");
	assert_string_equal(out.argv[PROTO_MAX_STRV - 1], "last");
	assert_null(out.argv[PROTO_MAX_STRV]);
	assert_null(out.env[0]);
	proto_exec_free(&out);

	/* One more argv entry, all present. */
	buf_clear(&b);
	wexec_head(&b, 0);
	w32(&b, PROTO_MAX_STRV + 1);
	for (int i = 0; i < PROTO_MAX_STRV + 1; i++)
		wstr(&b, "a");
	w32(&b, 0);
	w32(&b, 0);
	assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -EBADMSG);

	/* Too many env entries, with a huge count and nothing behind it. */
	buf_clear(&b);
	wexec_head(&b, 0);
	w32(&b, 1);
	wstr(&b, "sh");
	w32(&b, UINT32_MAX);
	w32(&b, 0);
	assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -EBADMSG);
	buf_free(&b);
}

static void test_exec_decode_rlimit_limit(void **state)
{
	struct buf b = { 0 };
	struct proto_exec out;

	(void)state;
	for (uint32_t n = PROTO_MAX_RLIMITS; n <= PROTO_MAX_RLIMITS + 1; n++) {
		buf_clear(&b);
		wexec_head(&b, 0);
		w32(&b, 1);
		wstr(&b, "sh");
		w32(&b, 0);
		w32(&b, n);
		for (uint32_t i = 0; i < n; i++) {
			w32(&b, i);
			w64(&b, i);
			w64(&b, (uint64_t)i << 32);
		}
		if (n == PROTO_MAX_RLIMITS) {
			assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), 0);
			assert_int_equal(out.nrlimits, PROTO_MAX_RLIMITS);
			assert_int_equal(out.rlimits[15].resource, 15);
			assert_true(out.rlimits[15].soft == 15);
			assert_true(out.rlimits[15].hard == (uint64_t)15 << 32);
			proto_exec_free(&out);
		} else {
			assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out),
					 -E2BIG);
		}
	}

	/* A huge count with no entries behind it is a limit error, not an over-read. */
	buf_clear(&b);
	wexec_head(&b, 0);
	w32(&b, 1);
	wstr(&b, "sh");
	w32(&b, 0);
	w32(&b, UINT32_MAX);
	assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -E2BIG);
	buf_free(&b);
}

static void test_exec_decode_unknown_flags(void **state)
{
	static const uint32_t bad[] = { 0x4, PROTO_EXEC_TTY | 0x8, 0x80000000u, UINT32_MAX };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b = { 0 };
		struct proto_exec out;

		wexec_head(&b, bad[i]);
		w32(&b, 1);
		wstr(&b, "sh");
		w32(&b, 0);
		w32(&b, 0);
		assert_int_equal(proto_exec_decode(buf_head(&b), buf_size(&b), &out), -EBADMSG);
		buf_free(&b);
	}
}

static void test_exec_free_zeroed(void **state)
{
	struct proto_exec e;

	(void)state;
	memset(&e, 0, sizeof(e));
	proto_exec_free(&e);
	assert_null(e.storage_);
	assert_null(e.argv);
	assert_int_equal(e.nrlimits, 0);
}

/* --- small payloads --------------------------------------------------- */

static void test_u32_roundtrip(void **state)
{
	static const struct {
		uint16_t type;
		uint32_t sid, v;
	} cases[] = {
		{ PROTO_ACK, 1, 65536 },  { PROTO_ACK, UINT32_MAX, 0 },
		{ PROTO_SIGNAL, 42, 15 }, { PROTO_STARTED, 5, 4242 },
		{ PROTO_SHUTDOWN, 0, 0 }, { PROTO_SHUTDOWN, 0, 0xdeadbeef },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = { 0 };
		struct proto_frame f;
		uint32_t v = 0x12345678;

		assert_int_equal(proto_u32_encode(&b, cases[i].type, cases[i].sid, cases[i].v), 0);
		f = expect_frame(&b, cases[i].type, cases[i].sid, 4);
		assert_int_equal(f.payload[0], (uint8_t)cases[i].v);
		assert_int_equal(f.payload[3], (uint8_t)(cases[i].v >> 24));
		assert_int_equal(proto_u32_decode(f.payload, f.len, &v), 0);
		assert_int_equal(v, cases[i].v);
		buf_free(&b);
	}
}

static void test_u32_decode_lengths(void **state)
{
	const uint8_t p[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint32_t v = 99;

	(void)state;
	for (size_t n = 0; n <= sizeof(p); n++) {
		if (n == 4)
			continue;
		assert_int_equal(proto_u32_decode(p, n, &v), -EBADMSG);
		assert_int_equal(v, 99);
	}
	assert_int_equal(proto_u32_decode(p, 4, &v), 0);
	assert_int_equal(v, 0x04030201);
}

static void test_resize_roundtrip(void **state)
{
	struct buf b = { 0 };
	struct proto_frame f;
	uint16_t rows = 0, cols = 0;

	(void)state;
	assert_int_equal(proto_resize_encode(&b, 11, 0xffff, 1), 0);
	f = expect_frame(&b, PROTO_RESIZE, 11, 4);
	assert_int_equal(proto_resize_decode(f.payload, f.len, &rows, &cols), 0);
	assert_int_equal(rows, 0xffff);
	assert_int_equal(cols, 1);
	buf_clear(&b);

	assert_int_equal(proto_resize_encode(&b, 11, 50, 132), 0);
	f = expect_frame(&b, PROTO_RESIZE, 11, 4);
	assert_int_equal(proto_resize_decode(f.payload, f.len, &rows, &cols), 0);
	assert_int_equal(rows, 50);
	assert_int_equal(cols, 132);

	assert_int_equal(proto_resize_decode(f.payload, 3, &rows, &cols), -EBADMSG);
	assert_int_equal(proto_resize_decode(f.payload, 0, &rows, &cols), -EBADMSG);
	assert_int_equal(proto_resize_decode((const uint8_t *)"abcde", 5, &rows, &cols), -EBADMSG);
	buf_free(&b);
}

static void test_exited_roundtrip(void **state)
{
	static const struct proto_exited cases[] = {
		{ 0, 0 }, { 1, 0 }, { 255, 0 }, { 137, 9 }, { 128 + 64, 64 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = { 0 };
		struct proto_frame f;
		struct proto_exited x = { -5, 1234 };

		assert_int_equal(proto_exited_encode(&b, 3, &cases[i]), 0);
		f = expect_frame(&b, PROTO_EXITED, 3, 8);
		assert_int_equal(proto_exited_decode(f.payload, f.len, &x), 0);
		assert_int_equal(x.code, cases[i].code);
		assert_int_equal(x.signal, cases[i].signal);
		buf_free(&b);
	}
}

static void test_exited_decode_rejects(void **state)
{
	static const struct proto_exited bad[] = {
		{ -1, 0 },	  { 256, 0 }, { INT32_MIN, 0 },
		{ INT32_MAX, 0 }, { 0, 65 },  { 128, UINT32_MAX },
	};
	uint8_t p[9] = { 0 };
	struct proto_exited x;

	(void)state;
	for (size_t n = 0; n <= sizeof(p); n++)
		if (n != 8)
			assert_int_equal(proto_exited_decode(p, n, &x), -EBADMSG);
	assert_int_equal(proto_exited_decode(p, 8, &x), 0);
	assert_int_equal(x.code, 0);
	assert_int_equal(x.signal, 0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b = { 0 };

		assert_int_equal(proto_exited_encode(&b, 3, &bad[i]), 0);
		assert_int_equal(proto_exited_decode(buf_head(&b) + PROTO_HDR_SIZE, 8, &x),
				 -EBADMSG);
		buf_free(&b);
	}
}

static void test_failed_roundtrip(void **state)
{
	struct buf b = { 0 };
	struct proto_frame f;
	struct proto_failed x;

	(void)state;
	assert_int_equal(proto_failed_encode(&b, 4, PROTO_FAIL_NOT_FOUND, ENOENT,
					     "exec: \"nosuch\": not found"),
			 0);
	f = expect_frame(&b, PROTO_FAILED, 4, 4 + 4 + 4 + 25);
	memset(&x, 0x7f, sizeof(x));
	assert_int_equal(proto_failed_decode(f.payload, f.len, &x), 0);
	assert_int_equal(x.kind, PROTO_FAIL_NOT_FOUND);
	assert_int_equal(x.err, ENOENT);
	assert_string_equal(x.msg, "exec: \"nosuch\": not found");
	buf_clear(&b);

	/* Negative err, NULL message, the last valid kind. */
	assert_int_equal(proto_failed_encode(&b, 4, PROTO_FAIL_MAX - 1, -22, NULL), 0);
	f = expect_frame(&b, PROTO_FAILED, 4, 12);
	assert_int_equal(proto_failed_decode(f.payload, f.len, &x), 0);
	assert_int_equal(x.kind, PROTO_FAIL_INVALID);
	assert_int_equal(x.err, -22);
	assert_string_equal(x.msg, "");
	buf_free(&b);
}

static void test_failed_decode_rejects(void **state)
{
	static const uint32_t kinds[] = { 0, PROTO_FAIL_MAX, PROTO_FAIL_MAX + 1, UINT32_MAX };
	struct proto_failed x;

	(void)state;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct buf b = { 0 };

		assert_int_equal(proto_failed_encode(&b, 4, kinds[i], 0, "x"), 0);
		assert_int_equal(proto_failed_decode(buf_head(&b) + PROTO_HDR_SIZE,
						     buf_size(&b) - PROTO_HDR_SIZE, &x),
				 -EBADMSG);
		buf_free(&b);
	}

	/* Truncated and padded payloads of a valid message. */
	for (int extra = -14; extra <= 1; extra++) {
		struct buf b = { 0 };
		size_t n;

		if (extra == 0)
			continue;
		assert_int_equal(proto_failed_encode(&b, 4, PROTO_FAIL_USER, 0, "no"), 0);
		n = buf_size(&b) - PROTO_HDR_SIZE;
		if (extra > 0)
			assert_int_equal(buf_append(&b, "!", 1), 0);
		assert_int_equal(proto_failed_decode(buf_head(&b) + PROTO_HDR_SIZE,
						     (size_t)((long)n + extra), &x),
				 -EBADMSG);
		buf_free(&b);
	}

	/* A NUL inside the message. */
	{
		struct buf b = { 0 };

		w32(&b, PROTO_FAIL_CWD);
		w32(&b, 0);
		wstrn(&b, "a\0b", 3);
		assert_int_equal(proto_failed_decode(buf_head(&b), buf_size(&b), &x), -EBADMSG);
		buf_free(&b);
	}
}

static void test_failed_sanitises_message(void **state)
{
	struct buf b = { 0 };
	struct proto_failed x;
	char longmsg[700];

	(void)state;
	w32(&b, PROTO_FAIL_CWD);
	w32(&b, 2);
	wstr(&b, "bad\tcwd\n\x1b[31mred\x7f\x01\x1f ok \xc3\xa9");
	assert_int_equal(proto_failed_decode(buf_head(&b), buf_size(&b), &x), 0);
	/* Bytes >= 0x80 (UTF-8) pass through; C0 controls and DEL do not. */
	assert_string_equal(x.msg, "bad?cwd??[31mred??? ok \xc3\xa9");
	buf_clear(&b);

	/*
	 * C1 controls (raw 0x9b is CSI on 8-bit terminals, and its UTF-8 form
	 * C2 9B), invalid and overlong UTF-8, surrogates and a truncated
	 * sequence all become '?'; valid multi-byte text survives.
	 */
	w32(&b, PROTO_FAIL_CWD);
	w32(&b, 2);
	wstr(&b, "a\x9b"
		 "31m"
		 "b\xc2\x9b"
		 "c\xc0\xaf"
		 "d\xed\xa0\x80"
		 "e\xe2\x82\xac"
		 "f\xf0\x9f\x98\x80"
		 "g\xe2\x82");
	assert_int_equal(proto_failed_decode(buf_head(&b), buf_size(&b), &x), 0);
	assert_string_equal(x.msg, "a?31mb??c??d???e\xe2\x82\xac"
				   "f\xf0\x9f\x98\x80"
				   "g??");
	buf_clear(&b);

	/* Too long for the struct: truncated, still terminated. */
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	assert_int_equal(proto_failed_encode(&b, 4, PROTO_FAIL_INTERNAL, 0, longmsg), 0);
	assert_int_equal(proto_failed_decode(buf_head(&b) + PROTO_HDR_SIZE,
					     buf_size(&b) - PROTO_HDR_SIZE, &x),
			 0);
	assert_int_equal(strlen(x.msg), sizeof(x.msg) - 1);
	assert_int_equal(x.msg[0], 'm');
	buf_free(&b);
}

static void test_error_roundtrip(void **state)
{
	static const uint32_t sids[] = { 0, 1, 0xfffffffe };
	char msg[64];

	(void)state;
	for (size_t i = 0; i < sizeof(sids) / sizeof(sids[0]); i++) {
		struct buf b = { 0 };
		struct proto_frame f;

		assert_int_equal(proto_error_encode(&b, sids[i], "unknown session 9"), 0);
		f = expect_frame(&b, PROTO_ERROR, sids[i], 4 + 17);
		memset(msg, 'x', sizeof(msg));
		assert_int_equal(proto_error_decode(f.payload, f.len, msg, sizeof(msg)), 0);
		assert_string_equal(msg, "unknown session 9");

		/* A small destination truncates. */
		memset(msg, 'x', sizeof(msg));
		assert_int_equal(proto_error_decode(f.payload, f.len, msg, 8), 0);
		assert_string_equal(msg, "unknown");
		assert_int_equal(msg[8], 'x');
		/* Room for the terminator only; no room at all leaves @msg alone. */
		assert_int_equal(proto_error_decode(f.payload, f.len, msg, 1), 0);
		assert_int_equal(msg[0], '\0');
		assert_int_equal(msg[1], 'n');
		msg[0] = 'q';
		assert_int_equal(proto_error_decode(f.payload, f.len, msg, 0), 0);
		assert_int_equal(msg[0], 'q');

		/* Truncated or padded payloads. */
		for (uint32_t n = 0; n < f.len; n++)
			assert_int_equal(proto_error_decode(f.payload, n, msg, sizeof(msg)),
					 -EBADMSG);
		assert_int_equal(buf_append(&b, "", 1), 0);
		assert_int_equal(proto_error_decode(buf_head(&b) + PROTO_HDR_SIZE, f.len + 1, msg,
						    sizeof(msg)),
				 -EBADMSG);
		buf_free(&b);
	}
}

static void test_error_sanitises_message(void **state)
{
	struct buf b = { 0 };
	char msg[32];

	(void)state;
	wstr(&b, "\x1b]0;pwned\x07!");
	assert_int_equal(proto_error_decode(buf_head(&b), buf_size(&b), msg, sizeof(msg)), 0);
	assert_string_equal(msg, "?]0;pwned?!");
	buf_clear(&b);
	wstrn(&b, "a\0", 2);
	assert_int_equal(proto_error_decode(buf_head(&b), buf_size(&b), msg, sizeof(msg)),
			 -EBADMSG);
	buf_free(&b);
}

/* --- framing ---------------------------------------------------------- */

static void test_parse_short_header(void **state)
{
	struct buf full = { 0 };

	(void)state;
	assert_int_equal(proto_u32_encode(&full, PROTO_ACK, 1, 5), 0);
	for (size_t n = 0; n < PROTO_HDR_SIZE; n++) {
		struct buf b = { 0 };
		struct proto_frame f;

		assert_int_equal(buf_append(&b, buf_head(&full), n), 0);
		assert_int_equal(proto_parse(&b, &f), 0);
		buf_free(&b);
	}
	buf_free(&full);
}

static void test_parse_partial_payload(void **state)
{
	struct buf full = { 0 };
	struct proto_frame f;

	(void)state;
	assert_int_equal(proto_error_encode(&full, 2, "partial"), 0);
	for (size_t n = PROTO_HDR_SIZE; n < buf_size(&full); n++) {
		struct buf b = { 0 };

		assert_int_equal(buf_append(&b, buf_head(&full), n), 0);
		assert_int_equal(proto_parse(&b, &f), 0);
		buf_free(&b);
	}
	expect_frame(&full, PROTO_ERROR, 2, 4 + 7);

	/* The header of a maximal frame alone: valid so far, waiting for the payload. */
	buf_clear(&full);
	whdr(&full, PROTO_MAX_PAYLOAD, 1, PROTO_STDOUT, 0);
	assert_int_equal(proto_parse(&full, &f), 0);
	buf_free(&full);
}

static void test_parse_complete_and_back_to_back(void **state)
{
	struct buf b = { 0 };
	struct proto_frame f;
	uint32_t v;

	(void)state;
	assert_int_equal(proto_put_frame(&b, PROTO_STDOUT, 3, "hello", 5), 0);
	assert_int_equal(proto_u32_encode(&b, PROTO_ACK, 4, 5), 0);
	assert_int_equal(proto_put_frame(&b, PROTO_STDIN, 3, NULL, 0), 0);
	assert_int_equal(buf_size(&b), 3 * PROTO_HDR_SIZE + 5 + 4);

	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(f.type, PROTO_STDOUT);
	assert_int_equal(f.sid, 3);
	assert_int_equal(f.len, 5);
	assert_memory_equal(f.payload, "hello", 5);
	buf_consume(&b, PROTO_HDR_SIZE + f.len);

	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(f.type, PROTO_ACK);
	assert_int_equal(f.sid, 4);
	assert_int_equal(proto_u32_decode(f.payload, f.len, &v), 0);
	assert_int_equal(v, 5);
	buf_consume(&b, PROTO_HDR_SIZE + f.len);

	/* An empty STDIN frame is EOF and still a whole frame. */
	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(f.type, PROTO_STDIN);
	assert_int_equal(f.len, 0);
	buf_consume(&b, PROTO_HDR_SIZE + f.len);

	assert_int_equal(buf_size(&b), 0);
	assert_int_equal(proto_parse(&b, &f), 0);
	buf_free(&b);
}

/* A complete frame followed by the first bytes of the next one. */
static void test_parse_frame_then_fragment(void **state)
{
	struct buf b = { 0 };
	struct proto_frame f;

	(void)state;
	assert_int_equal(proto_put_frame(&b, PROTO_STDERR, 8, "ab", 2), 0);
	whdr(&b, 10, 8, PROTO_STDERR, 0);
	assert_int_equal(buf_append(&b, "0123", 4), 0);
	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(f.len, 2);
	assert_memory_equal(f.payload, "ab", 2);
	buf_consume(&b, PROTO_HDR_SIZE + f.len);
	assert_int_equal(proto_parse(&b, &f), 0);
	assert_int_equal(buf_append(&b, "456789", 6), 0);
	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(f.len, 10);
	assert_memory_equal(f.payload, "0123456789", 10);
	buf_free(&b);
}

static void test_parse_oversized(void **state)
{
	static const uint32_t lens[] = { PROTO_MAX_PAYLOAD + 1, 0x80000000u, UINT32_MAX };
	struct proto_frame f;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct buf b = { 0 };

		whdr(&b, lens[i], 1, PROTO_STDOUT, 0);
		assert_int_equal(proto_parse(&b, &f), -EMSGSIZE);
		/* The length is checked before the type. */
		buf_clear(&b);
		whdr(&b, lens[i], 0, 0, 0);
		assert_int_equal(proto_parse(&b, &f), -EMSGSIZE);
		buf_free(&b);
	}
}

static void test_parse_bad_type(void **state)
{
	static const uint16_t types[] = { 0, PROTO_TYPE_MAX, PROTO_TYPE_MAX + 1, 0xffff };
	struct proto_frame f;

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		for (uint32_t sid = 0; sid < 2; sid++) {
			struct buf b = { 0 };

			whdr(&b, 4, sid, types[i], 0);
			w32(&b, 0);
			assert_int_equal(proto_parse(&b, &f), -EPROTO);
			/* Refused from the header alone, without waiting for the payload. */
			b.len -= 4;
			assert_int_equal(proto_parse(&b, &f), -EPROTO);
			buf_free(&b);
		}
	}
}

static void test_parse_bad_flags(void **state)
{
	static const uint16_t flags[] = { 1, 2, 0x8000, 0xffff };
	struct proto_frame f;

	(void)state;
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct buf b = { 0 };

		whdr(&b, 4, 1, PROTO_ACK, flags[i]);
		w32(&b, 0);
		assert_int_equal(proto_parse(&b, &f), -EPROTO);
		buf_clear(&b);
		whdr(&b, 0, 0, PROTO_SHUTDOWN, flags[i]);
		assert_int_equal(proto_parse(&b, &f), -EPROTO);
		buf_free(&b);
	}
}

/* Every type against the control session and a regular one. */
static void test_parse_session_rules(void **state)
{
	(void)state;
	for (uint16_t t = 1; t < PROTO_TYPE_MAX; t++) {
		bool control = t == PROTO_READY || t == PROTO_SHUTDOWN || t == PROTO_CONFIG ||
			       t == PROTO_CONFIGURED || t == PROTO_STATS_REQ || t == PROTO_STATS ||
			       t == PROTO_INFO || t == PROTO_KILL || t == PROTO_QUIESCE ||
			       t == PROTO_QUIESCED || t == PROTO_CTL;

		assert_int_equal(proto_type_is_control(t), control);
		for (int i = 0; i < 3; i++) {
			static const uint32_t sids[] = { 0, 1, UINT32_MAX };
			struct buf b = { 0 };
			struct proto_frame f;
			int want;

			if (t == PROTO_ERROR)
				want = 1;
			else
				want = (sids[i] == 0) == control ? 1 : -EPROTO;
			whdr(&b, 0, sids[i], t, 0);
			assert_int_equal(proto_parse(&b, &f), want);
			if (want == 1) {
				assert_int_equal(f.type, t);
				assert_int_equal(f.sid, sids[i]);
			}
			buf_free(&b);
		}
	}
}

static void test_put_frame(void **state)
{
	static const uint8_t want[] = {
		3, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, PROTO_STDOUT, 0, 0, 0, 'a', 'b', 'c',
	};
	struct buf b = { 0 };
	uint8_t *big;
	struct proto_frame f;

	(void)state;
	assert_int_equal(proto_put_frame(&b, PROTO_STDOUT, 0x11223344, "abc", 3), 0);
	assert_int_equal(buf_size(&b), sizeof(want));
	assert_memory_equal(buf_head(&b), want, sizeof(want));
	buf_clear(&b);

	big = calloc(1, PROTO_MAX_PAYLOAD + 1);
	assert_non_null(big);
	assert_int_equal(proto_put_frame(&b, PROTO_STDOUT, 1, big, PROTO_MAX_PAYLOAD + 1),
			 -EMSGSIZE);
	assert_int_equal(buf_size(&b), 0);
	assert_int_equal(proto_put_frame(&b, PROTO_STDOUT, 1, big, SIZE_MAX), -EMSGSIZE);
	assert_int_equal(buf_size(&b), 0);

	big[PROTO_MAX_PAYLOAD - 1] = 0x5a;
	assert_int_equal(proto_put_frame(&b, PROTO_STDOUT, 1, big, PROTO_MAX_PAYLOAD), 0);
	f = expect_frame(&b, PROTO_STDOUT, 1, PROTO_MAX_PAYLOAD);
	assert_int_equal(f.payload[PROTO_MAX_PAYLOAD - 1], 0x5a);
	free(big);
	buf_free(&b);
}

static void test_type_name(void **state)
{
	(void)state;
	assert_string_equal(proto_type_name(PROTO_READY), "READY");
	assert_string_equal(proto_type_name(PROTO_EXEC), "EXEC");
	assert_string_equal(proto_type_name(PROTO_RESIZE), "RESIZE");
	assert_string_equal(proto_type_name(PROTO_ERROR), "ERROR");
	assert_string_equal(proto_type_name(0), "UNKNOWN");
	assert_string_equal(proto_type_name(PROTO_TYPE_MAX), "UNKNOWN");
	assert_string_equal(proto_type_name(0xffff), "UNKNOWN");
	for (uint16_t t = 1; t < PROTO_TYPE_MAX; t++)
		assert_string_not_equal(proto_type_name(t), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_roundtrip),
		cmocka_unit_test(test_ready_decode_lengths),
		cmocka_unit_test(test_exec_roundtrip),
		cmocka_unit_test(test_exec_golden_bytes),
		cmocka_unit_test(test_exec_null_user_cwd_env),
		cmocka_unit_test(test_exec_encode_rejects),
		cmocka_unit_test(test_exec_encode_limits_keep_buffer),
		cmocka_unit_test(test_exec_decode_every_prefix),
		cmocka_unit_test(test_exec_decode_trailing_garbage),
		cmocka_unit_test(test_exec_decode_argc_zero),
		cmocka_unit_test(test_exec_decode_embedded_nul),
		cmocka_unit_test(test_exec_decode_handbuilt_valid),
		cmocka_unit_test(test_exec_decode_string_past_end),
		cmocka_unit_test(test_exec_decode_string_too_long),
		cmocka_unit_test(test_exec_decode_strv_limit),
		cmocka_unit_test(test_exec_decode_rlimit_limit),
		cmocka_unit_test(test_exec_decode_unknown_flags),
		cmocka_unit_test(test_exec_free_zeroed),
		cmocka_unit_test(test_u32_roundtrip),
		cmocka_unit_test(test_u32_decode_lengths),
		cmocka_unit_test(test_resize_roundtrip),
		cmocka_unit_test(test_exited_roundtrip),
		cmocka_unit_test(test_exited_decode_rejects),
		cmocka_unit_test(test_failed_roundtrip),
		cmocka_unit_test(test_failed_decode_rejects),
		cmocka_unit_test(test_failed_sanitises_message),
		cmocka_unit_test(test_exec_decode_env_without_key),
		cmocka_unit_test(test_error_roundtrip),
		cmocka_unit_test(test_error_sanitises_message),
		cmocka_unit_test(test_parse_short_header),
		cmocka_unit_test(test_parse_partial_payload),
		cmocka_unit_test(test_parse_complete_and_back_to_back),
		cmocka_unit_test(test_parse_frame_then_fragment),
		cmocka_unit_test(test_parse_oversized),
		cmocka_unit_test(test_parse_bad_type),
		cmocka_unit_test(test_parse_bad_flags),
		cmocka_unit_test(test_parse_session_rules),
		cmocka_unit_test(test_put_frame),
		cmocka_unit_test(test_type_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
