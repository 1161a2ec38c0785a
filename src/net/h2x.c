// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/2 between an intercepted guest and its upstream, with the secrets'
 * substitution of hx.c on every stream.
 *
 * DOC: Theory of Operation
 * nghttp2 does the framing, HPACK, flow control and the protocol's checks
 * (pseudo-headers, connection-specific fields, Content-Length against DATA)
 * on both sides: a server session faces the guest, a client session the
 * upstream. Substitution is not written twice: each guest stream gets an hx
 * engine in its "unframed" mode, fed the request as HTTP/1.1 text
 * (":method :path HTTP/1.1", Host from :authority, the fields as "name: value"
 * lines; a body with a Content-Length as it is, one without chunk-encoded).
 * What hx lets through comes out as HTTP/1.1 text too, a head and then the
 * raw body, and its head becomes the upstream request's fields again. The
 * response goes the same way back. So every rule of hx.c holds on HTTP/2 as
 * on HTTP/1.1: the :authority must equal the SNI, placeholders in :path,
 * fields (Basic credentials too) and bodies, values replaced in responses,
 * one audit line per exchange. nghttp2 has refused CR, LF and NUL in field
 * values and upper case in names before hx sees them, so the text is
 * unambiguous both ways. hx's refusal (a 403 for a violation, a 400 or 431
 * for a bad request) is its HTTP/1 response, sent on the stream instead; the
 * upstream stream, if it was opened, is reset. A violation also ends the
 * connection: a GOAWAY, and once the open streams are answered, the close.
 *
 * Response trailers (gRPC's status) are scanned like headers; request
 * trailers go up as sent (hx does the same on HTTP/1.1). Interim (1xx)
 * responses are not passed on: a client must cope with their absence.
 * Server push is refused (SETTINGS_ENABLE_PUSH 0), and so is CONNECT.
 *
 * Bounds: H2X_MAX_STREAMS streams; per stream, a field block (trailers too)
 * of at most HX_MAX_HEAD bytes, and no more than H2X_STREAM_WINDOW bytes of
 * body held per direction: windows are opened again only once what a stream
 * holds has gone on to the other side (the connection windows at once, the
 * streams' bounding both). Substitution can make a request grow past its
 * window (a long value for a placeholder): the caller reads the guest only
 * while h2x_can_take(). Frames are taken from nghttp2 only while the
 * caller's buffer has room.
 */
#include "net/h2x.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#define CONN_WINDOW (1 << 20)
#define MAX_FIELDS  (HX_MAX_HEADERS + 8)

struct stream {
	struct h2x *x;
	struct stream *next, **pprev;
	int32_t gid, uid; /* the guest's stream, the upstream's (0: not yet opened) */
	struct hx *hx;

	/* the request */
	struct buf fields; /* "name: value\r\n" lines of the field block being read */
	char *method, *path, *authority, *host;
	bool big;	 /* the field block went over HX_MAX_HEAD */
	bool has_length; /* it has a content-length field */
	bool chunked_in; /* its body is given to hx chunk-encoded */
	bool has_body;	 /* no END_STREAM on its HEADERS */
	struct buf up;	 /* hx's output: the head, then the body */
	bool up_head, up_eof;
	struct buf up_trailers; /* "name\0value\0" */
	size_t owed_g;		/* body bytes of the guest's not yet given back to its window */

	/* the response */
	struct buf rfields;
	int status;	 /* of the field block being read; 0: trailers */
	struct buf down; /* hx's output (or its refusal): head, then body */
	bool down_head, down_eof, refused;
	struct buf down_trailers;
	size_t owed_u;

	bool g_closed, u_closed;
};

struct h2x {
	struct hx_config c;
	nghttp2_session *g, *u;
	struct stream *streams;
	size_t nstreams;
	bool closing, u_goaway, u_dead, oom;
};

/* --- small helpers -------------------------------------------------------- */

static void put(struct h2x *x, struct buf *b, const void *p, size_t n)
{
	if (n && buf_append(b, p, n) < 0)
		x->oom = true;
}

static void puts_(struct h2x *x, struct buf *b, const char *s)
{
	put(x, b, s, strlen(s));
}

static char *dupn(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* The end of an HTTP/1 head at the front of @b (hx's output): its length, 0 if not whole yet. */
static size_t head_len(const struct buf *b)
{
	const uint8_t *p = buf_head(b);
	size_t n = buf_size(b);

	for (size_t i = 3; i < n; i++)
		if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
			return i + 1;
	return 0;
}

static bool ieq(const char *a, size_t an, const char *b)
{
	return an == strlen(b) && !strncasecmp(a, b, an);
}

/* Fields of HTTP/1.1 that have no place in HTTP/2 (RFC 9113 8.2.2). */
static bool hop_by_hop(const char *n, size_t nl)
{
	return ieq(n, nl, "connection") || ieq(n, nl, "keep-alive") ||
	       ieq(n, nl, "proxy-connection") || ieq(n, nl, "transfer-encoding") ||
	       ieq(n, nl, "upgrade") || ieq(n, nl, "host");
}

/*
 * The head hx wrote, @len bytes at @p, as HTTP/2 fields: the first line
 * becomes the pseudo-headers (a request's, or a response's :status), names
 * are lower-cased in place. @nv has room for MAX_FIELDS + 4.
 * Return: the number of fields, or -1 when the head is not what hx writes.
 */
static int to_nv(char *p, size_t len, bool resp, nghttp2_nv *nv)
{
	char *end = p + len - 2, *eol = memchr(p, '\r', len);
	char *sp1, *sp2, *host = NULL;
	size_t hostlen = 0;
	int n = 0;

	if (!eol)
		return -1;
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2)
		return -1;
	if (resp) {
		if (sp2 - sp1 != 4)
			return -1;
		nv[n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)sp1 + 1, 7, 3, 0 };
	} else {
		nv[n++] =
			(nghttp2_nv){ (uint8_t *)":method", (uint8_t *)p, 7, (size_t)(sp1 - p), 0 };
		nv[n++] = (nghttp2_nv){ (uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0 };
		nv[n++] = (nghttp2_nv){ NULL, NULL, 0, 0, 0 }; /* :authority, below */
		nv[n++] = (nghttp2_nv){ (uint8_t *)":path", (uint8_t *)sp1 + 1, 5,
					(size_t)(sp2 - sp1 - 1), 0 };
	}
	for (char *l = eol + 2; l < end;) {
		char *e = memchr(l, '\r', (size_t)(end - l));
		char *colon = e ? memchr(l, ':', (size_t)(e - l)) : NULL;
		char *v;

		if (!colon)
			return -1;
		v = colon + 1;
		while (v < e && *v == ' ')
			v++;
		for (char *c = l; c < colon; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		if (!resp && ieq(l, (size_t)(colon - l), "host")) {
			host = v;
			hostlen = (size_t)(e - v);
		} else if (!hop_by_hop(l, (size_t)(colon - l)) &&
			   !(ieq(l, (size_t)(colon - l), "te") &&
			     !ieq(v, (size_t)(e - v), "trailers"))) {
			if (n >= MAX_FIELDS + 4)
				return -1;
			nv[n++] = (nghttp2_nv){ (uint8_t *)l, (uint8_t *)v, (size_t)(colon - l),
						(size_t)(e - v), 0 };
		}
		l = e + 2;
	}
	if (!resp) {
		if (!host)
			return -1;
		nv[2] = (nghttp2_nv){ (uint8_t *)":authority", (uint8_t *)host, 10, hostlen, 0 };
	}
	return n;
}

/* "name\0value\0"... in @b as fields. Return: their number (at most @cap). */
static size_t packed_nv(const struct buf *b, nghttp2_nv *nv, size_t cap)
{
	const uint8_t *p = buf_head(b), *e = p + buf_size(b);
	size_t n = 0;

	while (p < e && n < cap) {
		const uint8_t *name = p, *val, *z = memchr(p, 0, (size_t)(e - p));

		if (!z)
			break;
		val = z + 1;
		z = val < e ? memchr(val, 0, (size_t)(e - val)) : NULL;
		if (!z)
			break; /* cut short (out of memory): not a field */
		nv[n++] = (nghttp2_nv){ (uint8_t *)name, (uint8_t *)val, (size_t)(val - 1 - name),
					(size_t)(z - val), 0 };
		p = z + 1;
	}
	return n;
}

/* --- streams -------------------------------------------------------------- */

static struct stream *stream_new(struct h2x *x, int32_t gid)
{
	struct stream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->hx = hx_new(&x->c);
	if (!st->hx) {
		free(st);
		return NULL;
	}
	st->x = x;
	st->gid = gid;
	st->next = x->streams;
	if (st->next)
		st->next->pprev = &st->next;
	st->pprev = &x->streams;
	x->streams = st;
	x->nstreams++;
	return st;
}

static void stream_free(struct stream *st)
{
	*st->pprev = st->next;
	if (st->next)
		st->next->pprev = st->pprev;
	st->x->nstreams--;
	hx_free(st->hx);
	free(st->method);
	free(st->path);
	free(st->authority);
	free(st->host);
	buf_free(&st->fields);
	buf_free(&st->up);
	buf_free(&st->up_trailers);
	buf_free(&st->rfields);
	buf_free(&st->down);
	buf_free(&st->down_trailers);
	free(st);
}

/* Both sides are done with it. */
static void stream_maybe_free(struct stream *st)
{
	if (!st->g_closed || (st->uid && !st->u_closed))
		return;
	if (st->uid)
		nghttp2_session_set_stream_user_data(st->x->u, st->uid, NULL);
	nghttp2_session_set_stream_user_data(st->x->g, st->gid, NULL);
	stream_free(st);
}

/* The guest's stream ends here, without an answer. */
static void reset_guest(struct stream *st, uint32_t code)
{
	if (!st->g_closed)
		nghttp2_submit_rst_stream(st->x->g, NGHTTP2_FLAG_NONE, st->gid, code);
}

static void reset_upstream(struct stream *st)
{
	if (st->uid && !st->u_closed)
		nghttp2_submit_rst_stream(st->x->u, NGHTTP2_FLAG_NONE, st->uid, NGHTTP2_CANCEL);
}

/* --- towards the guest ---------------------------------------------------- */

static ssize_t read_down(nghttp2_session *s, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct stream *st = src->ptr;
	size_t n = buf_size(&st->down) < len ? buf_size(&st->down) : len;

	(void)ud;
	if (n) {
		memcpy(out, buf_head(&st->down), n);
		buf_consume(&st->down, n);
	}
	if (!buf_size(&st->down) && st->owed_u && st->uid && !st->u_closed) {
		nghttp2_session_consume_stream(st->x->u, st->uid, st->owed_u);
		st->owed_u = 0;
	}
	if (!buf_size(&st->down) && st->down_eof) {
		nghttp2_nv nv[MAX_FIELDS];
		size_t k = packed_nv(&st->down_trailers, nv, MAX_FIELDS);

		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (k) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_submit_trailer(s, id, nv, k);
		}
		return (ssize_t)n;
	}
	return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

/* What hx wrote for the guest: its head as the response, then the body as it comes. */
static void down_progress(struct stream *st)
{
	struct h2x *x = st->x;

	if (st->g_closed)
		return;
	if (st->down_head) {
		nghttp2_session_resume_data(x->g, st->gid);
		return;
	}
	size_t hl = head_len(&st->down);
	nghttp2_nv nv[MAX_FIELDS + 4];
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = read_down };
	int n;

	if (!hl)
		return;
	n = to_nv((char *)buf_head(&st->down), hl, true, nv);
	if (n < 0 || nghttp2_submit_response(x->g, st->gid, nv, (size_t)n, &prd) != 0) {
		reset_guest(st, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	buf_consume(&st->down, hl);
	st->down_head = true;
}

/*
 * hx refused the request (its HTTP/1 response is in @st->down) or the
 * upstream failed it: that response goes to the guest instead, the
 * upstream's stream is reset, and a violation ends the connection.
 */
static void refuse(struct stream *st, bool violation)
{
	struct h2x *x = st->x;

	st->refused = true;
	st->down_eof = true;
	buf_clear(&st->down_trailers);
	reset_upstream(st);
	if (st->down_head) /* a response is under way: it cannot turn into another */
		reset_guest(st, NGHTTP2_INTERNAL_ERROR);
	else
		down_progress(st);
	if (violation && !x->closing) {
		nghttp2_submit_goaway(x->g, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(x->g),
				      NGHTTP2_NO_ERROR, NULL, 0);
		x->closing = true;
	}
}

/* An answer of our own, as hx words its refusals: "msb: @msg", text/plain. */
static void answer(struct stream *st, const char *status, const char *msg)
{
	char body[320], len[24];
	int n = snprintf(body, sizeof(body), "msb: %s\n", msg);

	if (n < 0 || (size_t)n >= sizeof(body))
		n = (int)sizeof(body) - 1;
	if (st->down_head || st->refused) {
		reset_guest(st, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	snprintf(len, sizeof(len), "%d", n);
	buf_clear(&st->down);
	puts_(st->x, &st->down, "HTTP/1.1 ");
	puts_(st->x, &st->down, status);
	puts_(st->x, &st->down, "\r\nContent-Type: text/plain\r\nContent-Length: ");
	puts_(st->x, &st->down, len);
	puts_(st->x, &st->down, "\r\n\r\n");
	put(st->x, &st->down, body, (size_t)n);
	refuse(st, false);
}

/* A 502, when the upstream cannot answer a stream. */
static void bad_gateway(struct stream *st, const char *why)
{
	answer(st, "502 Bad Gateway", why);
}

/* The result of feeding hx a request's bytes. */
static void req_rc(struct stream *st, int rc)
{
	if (rc == HX_NOMEM)
		st->x->oom = true;
	else if (rc != HX_OK)
		refuse(st, rc == HX_VIOLATION);
}

/* --- towards the upstream ------------------------------------------------- */

static ssize_t read_up(nghttp2_session *s, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud)
{
	struct stream *st = src->ptr;
	size_t n = buf_size(&st->up) < len ? buf_size(&st->up) : len;

	(void)ud;
	if (n) {
		memcpy(out, buf_head(&st->up), n);
		buf_consume(&st->up, n);
	}
	if (!buf_size(&st->up) && st->owed_g && !st->g_closed) {
		nghttp2_session_consume_stream(st->x->g, st->gid, st->owed_g);
		st->owed_g = 0;
	}
	if (!buf_size(&st->up) && st->up_eof) {
		nghttp2_nv nv[MAX_FIELDS];
		size_t k = packed_nv(&st->up_trailers, nv, MAX_FIELDS);

		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (k) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_submit_trailer(s, id, nv, k);
		}
		return (ssize_t)n;
	}
	return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

/* What hx let through for upstream: its head opens the upstream stream, the body follows. */
static void up_progress(struct stream *st)
{
	struct h2x *x = st->x;

	if (st->refused || st->u_closed)
		return;
	if (st->up_head) {
		nghttp2_session_resume_data(x->u, st->uid);
		return;
	}
	size_t hl = head_len(&st->up);
	nghttp2_nv nv[MAX_FIELDS + 4];
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = read_up };
	int n;
	int32_t id;

	if (!hl)
		return;
	if (x->u_dead || x->u_goaway) {
		bad_gateway(st, "the server takes no more requests on this connection");
		return;
	}
	n = to_nv((char *)buf_head(&st->up), hl, false, nv);
	if (n < 0) {
		bad_gateway(st, "the request could not be carried over HTTP/2");
		return;
	}
	id = nghttp2_submit_request(x->u, NULL, nv, (size_t)n, st->has_body ? &prd : NULL, st);
	if (id < 0) {
		bad_gateway(st, "the server takes no more requests on this connection");
		return;
	}
	buf_consume(&st->up, hl);
	st->uid = id;
	st->up_head = true;
}

/* --- the guest's session ---------------------------------------------------- */

static int g_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2x *x = ud;
	struct stream *st;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
		st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
		if (st)
			buf_clear(&st->fields);
		return 0;
	}
	if (x->closing || x->nstreams >= (size_t)2 * H2X_MAX_STREAMS) {
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
					  NGHTTP2_REFUSED_STREAM);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st = stream_new(x, f->hd.stream_id);
	if (!st)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
	return 0;
}

static int set_pseudo(char **slot, const uint8_t *v, size_t vl)
{
	if (*slot)
		return -1; /* nghttp2 refuses repeats; a second is not ours to pick from */
	*slot = dupn(v, vl);
	return *slot ? 0 : -1;
}

static int g_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		    const uint8_t *val, size_t vl, uint8_t flags, void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	int r = 0;

	(void)flags;
	(void)ud;
	if (!st)
		return 0;
	if (buf_size(&st->fields) + nl + vl + 4 > HX_MAX_HEAD) {
		st->big = true;
		return 0;
	}
	if (nl && name[0] == ':') {
		if (ieq((const char *)name, nl, ":method"))
			r = set_pseudo(&st->method, val, vl);
		else if (ieq((const char *)name, nl, ":path"))
			r = set_pseudo(&st->path, val, vl);
		else if (ieq((const char *)name, nl, ":authority"))
			r = set_pseudo(&st->authority, val, vl);
		return r < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
	}
	if (ieq((const char *)name, nl, "host") && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		r = set_pseudo(&st->host, val, vl);
		return r < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
	}
	if (f->headers.cat != NGHTTP2_HCAT_REQUEST) { /* trailers: up as sent */
		if (buf_size(&st->up_trailers) + nl + vl + 2 > HX_MAX_HEAD)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
		put(st->x, &st->up_trailers, name, nl);
		put(st->x, &st->up_trailers, "", 1);
		put(st->x, &st->up_trailers, val, vl);
		put(st->x, &st->up_trailers, "", 1);
		return 0;
	}
	if (ieq((const char *)name, nl, "content-length"))
		st->has_length = true;
	put(st->x, &st->fields, name, nl);
	puts_(st->x, &st->fields, ": ");
	put(st->x, &st->fields, val, vl);
	puts_(st->x, &st->fields, "\r\n");
	return 0;
}

/* The request's field block is whole: give hx its HTTP/1.1 head. */
static void request_head(struct stream *st, bool end_stream)
{
	struct h2x *x = st->x;
	struct buf t = { 0 };
	int rc;

	if (st->big) {
		answer(st, "431 Request Header Fields Too Large",
		       "bad request: request head too large");
		return;
	}
	if (!st->method || !st->path || !strcmp(st->method, "CONNECT")) {
		answer(st, "400 Bad Request",
		       "bad request: CONNECT is not supported inside intercepted TLS");
		return;
	}
	st->has_body = !end_stream;
	st->chunked_in = st->has_body && !st->has_length;
	puts_(x, &t, st->method);
	puts_(x, &t, " ");
	puts_(x, &t, st->path);
	puts_(x, &t, " HTTP/1.1\r\n");
	/* Both :authority and Host: one Host when they agree, else hx sees two and refuses. */
	if (st->authority) {
		puts_(x, &t, "Host: ");
		puts_(x, &t, st->authority);
		puts_(x, &t, "\r\n");
	}
	if (st->host && (!st->authority || strcasecmp(st->host, st->authority) != 0)) {
		puts_(x, &t, "Host: ");
		puts_(x, &t, st->host);
		puts_(x, &t, "\r\n");
	}
	put(x, &t, buf_head(&st->fields), buf_size(&st->fields));
	buf_free(&st->fields);
	if (st->chunked_in)
		puts_(x, &t, "Transfer-Encoding: chunked\r\n");
	puts_(x, &t, "\r\n");
	if (x->oom) {
		buf_free(&t);
		return;
	}
	rc = hx_request(st->hx, buf_head(&t), buf_size(&t), &st->up, &st->down);
	buf_free(&t);
	req_rc(st, rc);
	if (rc == HX_OK)
		up_progress(st);
}

/* The guest's body has ended. */
static void request_end(struct stream *st)
{
	int rc = HX_OK;

	if (st->refused)
		return;
	if (st->chunked_in)
		rc = hx_request(st->hx, (const uint8_t *)"0\r\n\r\n", 5, &st->up, &st->down);
	if (rc == HX_OK)
		rc = hx_request_end(st->hx, &st->up, &st->down);
	req_rc(st, rc);
	if (rc != HX_OK)
		return;
	st->up_eof = true;
	up_progress(st);
}

static int g_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

	(void)ud;
	if (!st || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		request_head(st, end);
	else if (end && !st->refused && st->has_body)
		request_end(st);
	return 0;
}

static int g_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
		  void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, id);
	char size[24];
	int rc;

	(void)flags;
	(void)ud;
	nghttp2_session_consume_connection(s, n);
	if (!st || st->refused) {
		nghttp2_session_consume_stream(s, id, n);
		return 0;
	}
	st->owed_g += n;
	if (st->chunked_in) {
		snprintf(size, sizeof(size), "%zx\r\n", n);
		rc = hx_request(st->hx, (const uint8_t *)size, strlen(size), &st->up, &st->down);
		if (rc == HX_OK)
			rc = hx_request(st->hx, p, n, &st->up, &st->down);
		if (rc == HX_OK)
			rc = hx_request(st->hx, (const uint8_t *)"\r\n", 2, &st->up, &st->down);
	} else {
		rc = hx_request(st->hx, p, n, &st->up, &st->down);
	}
	req_rc(st, rc);
	if (rc == HX_OK)
		up_progress(st);
	return 0;
}

static int g_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)ud;
	if (!st)
		return 0;
	st->g_closed = true;
	if (code != NGHTTP2_NO_ERROR || !st->down_eof)
		reset_upstream(st); /* the guest gave up on it */
	stream_maybe_free(st);
	return 0;
}

/* --- the upstream's session ------------------------------------------------- */

static int u_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)ud;
	if (st) {
		buf_clear(&st->rfields);
		st->status = 0;
	}
	return 0;
}

static int u_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		    const uint8_t *val, size_t vl, uint8_t flags, void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)flags;
	(void)ud;
	if (!st || st->refused)
		return 0;
	if (ieq((const char *)name, nl, ":status")) {
		st->status =
			vl == 3 ? (val[0] - '0') * 100 + (val[1] - '0') * 10 + (val[2] - '0') : -1;
		return 0;
	}
	if (nl && name[0] == ':')
		return 0;
	if (buf_size(&st->rfields) + nl + vl + 4 > HX_MAX_HEAD)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
	put(st->x, &st->rfields, name, nl);
	puts_(st->x, &st->rfields, ": ");
	put(st->x, &st->rfields, val, vl);
	puts_(st->x, &st->rfields, "\r\n");
	return 0;
}

static void resp_rc(struct stream *st, int rc)
{
	if (rc == HX_NOMEM) {
		st->x->oom = true;
	} else if (rc != HX_OK) {
		/* hx put a 502 in st->down when nothing of the response had gone yet */
		if (st->down_head)
			reset_guest(st, NGHTTP2_INTERNAL_ERROR);
		st->down_eof = true;
		reset_upstream(st);
	}
	down_progress(st);
}

/* Trailers: each value scanned like a header's, kept for the end of the body. */
static void response_trailers(struct stream *st)
{
	const uint8_t *p = buf_head(&st->rfields), *e = p + buf_size(&st->rfields);

	while (p < e) {
		const uint8_t *colon = memchr(p, ':', (size_t)(e - p));
		const uint8_t *eol = colon ? memchr(colon, '\r', (size_t)(e - colon)) : NULL;

		if (!eol)
			break;
		put(st->x, &st->down_trailers, p, (size_t)(colon - p));
		put(st->x, &st->down_trailers, "", 1);
		hx_response_text(st->hx, colon + 2, (size_t)(eol - colon - 2), &st->down_trailers);
		put(st->x, &st->down_trailers, "", 1);
		p = eol + 2;
	}
}

static int u_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct stream *st;
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
	int rc = HX_OK;

	(void)ud;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		((struct h2x *)ud)->u_goaway = true; /* streams it started go on; no new ones */
		return 0;
	}
	st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (!st || st->refused || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS) {
		if (st->status >= 100 && st->status < 200 && !end)
			return 0; /* interim: not passed on */
		if (st->status >= 200) {
			char line[40];
			struct buf t = { 0 };

			snprintf(line, sizeof(line), "HTTP/1.1 %03d X\r\n", st->status);
			puts_(st->x, &t, line);
			put(st->x, &t, buf_head(&st->rfields), buf_size(&st->rfields));
			puts_(st->x, &t, "\r\n");
			rc = st->x->oom
				     ? HX_NOMEM
				     : hx_response(st->hx, buf_head(&t), buf_size(&t), &st->down);
			buf_free(&t);
		} else if (st->status == 0) {
			response_trailers(st);
		} else {
			bad_gateway(st, "malformed response from upstream");
			return 0;
		}
		buf_clear(&st->rfields);
	}
	if (rc == HX_OK && end) {
		rc = hx_response_end(st->hx, &st->down);
		st->down_eof = true;
	}
	resp_rc(st, rc);
	return 0;
}

static int u_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
		  void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)flags;
	(void)ud;
	nghttp2_session_consume_connection(s, n);
	if (!st || st->refused || st->g_closed) {
		nghttp2_session_consume_stream(s, id, n);
		return 0;
	}
	st->owed_u += n;
	resp_rc(st, hx_response(st->hx, p, n, &st->down));
	return 0;
}

static int u_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)ud;
	if (!st)
		return 0;
	st->u_closed = true;
	if (!st->down_eof && !st->refused) {
		if (code == NGHTTP2_REFUSED_STREAM || !st->down_head)
			bad_gateway(st, "the server reset the request");
		else
			reset_guest(st, code ? code : NGHTTP2_INTERNAL_ERROR);
	}
	stream_maybe_free(st);
	return 0;
}

/* A request the upstream session never sent (it went away first). */
static int u_not_sent(nghttp2_session *s, const nghttp2_frame *f, int err, void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)err;
	(void)ud;
	if (!st || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	st->u_closed = true;
	if (!st->refused)
		bad_gateway(st, "the server takes no more requests on this connection");
	stream_maybe_free(st);
	return 0;
}

/* --- the engine ------------------------------------------------------------- */

static nghttp2_session *session(struct h2x *x, bool server)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_session *s = NULL;
	nghttp2_settings_entry set[3];
	size_t nset = 0;
	int r;

	if (nghttp2_session_callbacks_new(&cb))
		return NULL;
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cb);
		return NULL;
	}
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	if (server) {
		nghttp2_session_callbacks_set_on_begin_headers_callback(cb, g_begin_headers);
		nghttp2_session_callbacks_set_on_header_callback(cb, g_header);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb, g_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, g_data);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, g_stream_close);
		r = nghttp2_session_server_new2(&s, cb, x, opt);
		set[nset++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
							H2X_MAX_STREAMS };
	} else {
		nghttp2_session_callbacks_set_on_begin_headers_callback(cb, u_begin_headers);
		nghttp2_session_callbacks_set_on_header_callback(cb, u_header);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb, u_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, u_data);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, u_stream_close);
		nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, u_not_sent);
		r = nghttp2_session_client_new2(&s, cb, x, opt);
		set[nset++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 };
	}
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (r)
		return NULL;
	set[nset++] =
		(nghttp2_settings_entry){ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2X_STREAM_WINDOW };
	set[nset++] =
		(nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 2 * HX_MAX_HEAD };
	if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, set, nset) ||
	    nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW)) {
		nghttp2_session_del(s);
		return NULL;
	}
	return s;
}

struct h2x *h2x_new(const struct hx_config *c)
{
	struct h2x *x = calloc(1, sizeof(*x));
	struct hx *probe;

	if (!x)
		return NULL;
	x->c = *c;
	x->c.unframed = true;
	probe = hx_new(&x->c); /* the config's errors now, not on the first stream */
	if (!probe) {
		free(x);
		return NULL;
	}
	hx_free(probe);
	x->g = session(x, true);
	x->u = x->g ? session(x, false) : NULL;
	if (!x->u) {
		h2x_free(x);
		errno = ENOMEM;
		return NULL;
	}
	return x;
}

void h2x_free(struct h2x *x)
{
	if (!x)
		return;
	nghttp2_session_del(x->g);
	nghttp2_session_del(x->u);
	while (x->streams)
		stream_free(x->streams);
	free(x);
}

int h2x_guest(struct h2x *x, const uint8_t *p, size_t n)
{
	ssize_t r = nghttp2_session_mem_recv(x->g, p, n);

	return r < 0 || (size_t)r != n || x->oom ? -1 : 0;
}

int h2x_upstream(struct h2x *x, const uint8_t *p, size_t n)
{
	ssize_t r;

	if (x->u_dead)
		return 0;
	r = nghttp2_session_mem_recv(x->u, p, n);

	if (r < 0 || (size_t)r != n) {
		h2x_upstream_end(x);
		return x->oom ? -1 : 0;
	}
	return x->oom ? -1 : 0;
}

void h2x_upstream_end(struct h2x *x)
{
	struct stream *st, *next;

	if (x->u_dead && x->closing)
		return;
	x->u_dead = true;
	for (st = x->streams; st; st = next) {
		next = st->next;
		if (st->uid && !st->u_closed) {
			st->u_closed = true;
			if (!st->down_eof && !st->refused)
				bad_gateway(st, "the connection to the server ended");
			stream_maybe_free(st);
		}
	}
	if (!x->closing) {
		nghttp2_submit_goaway(x->g, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(x->g),
				      NGHTTP2_NO_ERROR, NULL, 0);
		x->closing = true;
	}
}

/* Frames of @s appended to @b while it has room. */
static int drain(nghttp2_session *s, struct buf *b, size_t max)
{
	while (buf_size(b) < max) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(s, &p);

		if (n < 0)
			return -1;
		if (!n)
			break;
		if (buf_append(b, p, (size_t)n) < 0)
			return -1;
	}
	return 0;
}

int h2x_send(struct h2x *x, struct buf *up, struct buf *guest, size_t max)
{
	if (x->oom)
		return -1;
	/* Twice: sending one side can open windows, and so data, on the other. */
	for (int i = 0; i < 2; i++) {
		if (!x->u_dead && drain(x->u, up, max) < 0)
			return -1;
		if (drain(x->g, guest, max) < 0)
			return -1;
	}
	return x->oom ? -1 : 0;
}

bool h2x_done(const struct h2x *x)
{
	return x->closing && !nghttp2_session_want_read(x->g) && !nghttp2_session_want_write(x->g);
}

bool h2x_can_take(const struct h2x *x)
{
	size_t held = 0;

	for (const struct stream *st = x->streams; st; st = st->next)
		held += buf_size(&st->up);
	return held < H2X_HOLD_MAX;
}

bool h2x_want_upstream(const struct h2x *x)
{
	return !x->u_dead && (nghttp2_session_want_read(x->u) || nghttp2_session_want_write(x->u));
}
