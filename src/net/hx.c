// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/1.x secret substitution between an intercepted guest and its upstream.
 *
 * DOC: Theory of Operation
 * The guest holds placeholders ("msb-secret-" and 32 lowercase hex digits),
 * never values. A request head is held whole (at most HX_MAX_HEAD) until it
 * has been parsed and checked, so nothing of a request that turns out to
 * violate the policy has gone upstream by then. Placeholders are looked for
 * in the request target, in header values and in bodies, written raw,
 * percent-encoded or as JSON \u escapes, any mix per character, and inside
 * "Basic" credentials (decoded, substituted, encoded again). A placeholder
 * is replaced in the encoding of its site: percent-encoding of everything but
 * RFC 3986 unreserved characters in the target and form bodies, a JSON
 * string's escapes in JSON bodies, raw elsewhere. A value that would put CR,
 * LF or NUL into a header is a violation rather than a smuggled header.
 * A string that looks like a placeholder but is nobody's is left alone.
 *
 * A placeholder may only be substituted on a TLS connection whose name the
 * caller verified (@allowed), and the request must be addressed to that
 * name: its Host header, port and trailing dot aside, and an absolute-form
 * target's authority must equal the SNI. Otherwise the placeholder is a
 * violation: in block mode a 403 goes to the guest and nothing more upstream;
 * in passthrough mode it goes upstream as it is (a placeholder reveals
 * nothing) and is reported. A secret restricted to some headers is only
 * looked for there; elsewhere its placeholder is just text.
 *
 * Bodies stream: the scanner keeps back at most the longest encoded
 * placeholder (HX_PLACEHOLDER_LEN escapes of 6 bytes) when the tail could
 * start one, so a placeholder split anywhere still matches. Substitution
 * changes lengths, so bodies are framed again: a Content-Length body up to
 * HX_BODY_BUFFER is held and sent with its new length (a violation in it is
 * caught before anything went up); a larger one, or one the guest waits on
 * with "Expect: 100-continue", goes up chunked, as do chunked bodies (one
 * chunk per piece of output; chunk extensions dropped, trailers kept but not
 * scanned). An HTTP/1.0 request cannot be chunked, so a large 1.0 body is
 * refused (413). Accept-Encoding becomes "identity" so responses stay
 * scannable; a server that compresses anyway is scanned all the same, and
 * what it compressed is not seen.
 *
 * Responses are paired with requests in order (pipelining). The real values,
 * raw, JSON-escaped (with "/" as "\/" too) and percent-encoded, are replaced by their placeholders
 * in header values, the reason phrase and bodies, framed again by the same rules (a large body of
 * an HTTP/1.0 exchange becomes close-delimited). HEAD, 1xx, 204 and 304 responses have no body. A
 * 101 to a request that asked for an Upgrade makes the connection opaque both ways (hx_opaque()).
 *
 * A Basic credential is base64 of "user:password", so a server that echoes
 * the Authorization header (echo endpoints, debug and error pages) would
 * hand the guest base64 of the real value. Each credential substituted into
 * a request is remembered with the text the guest sent (at most HX_MAX_CREDS,
 * each at most HX_MAX_CRED bytes), and its upstream text, raw or
 * percent-encoded (a JSON string holds base64 as it is), is replaced by the
 * guest's wherever it comes back, by the same rules as a value. When more
 * are needed, the oldest whose response has completed is forgotten; a
 * request that would need to forget one whose response is still to come,
 * or whose credential is too large, is refused (400, 431). Only that exact
 * text is recognised: a value inside other base64 (a body that is base64 of
 * JSON holding it) is not. There it sits at one of three alignments, its
 * first and last characters share bits with its neighbours, and replacing
 * it changes the length, so every later character of the text would have
 * to be decoded and encoded again; a whole-body base64 codec is not
 * worth what it would guess wrong.
 *
 * What is not scanned, and why: the status code and Content-Length digits
 * (rewriting them would break the framing msb relies on), request trailers
 * (a placeholder left there reveals nothing), and everything after a 101.
 *
 * Every count is bounded: heads (also once substituted, 4 * HX_MAX_HEAD),
 * lines, headers, pipelined requests, the scanner's tail and the held body.
 * An error response goes to the guest at once, after whatever the caller
 * already queued there; the caller sends it and closes, so earlier pipelined
 * responses still in flight are lost with the connection.
 */
#include "net/hx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/b64.h"

#define PH_PREFIX     "msb-secret-"
#define PH_PREFIX_LEN 11
#define PH_HOLD	      (HX_PLACEHOLDER_LEN * 6) /* every character as \u00XX */
#define SLICE	      16384		       /* body bytes scanned per step */
#define MAX_LINE      8192		       /* a chunk-size or trailer line */
#define MAX_TRAILERS  HX_MAX_HEAD

enum { M_NO, M_YES, M_PART };
/* BASIC: raw, then base64. JSON_SLASH: JSON with "/" as "\/" too (PHP's json_encode). */
enum { ENC_RAW, ENC_PCT, ENC_JSON, ENC_BASIC, ENC_JSON_SLASH };
enum { SITE_TARGET, SITE_HEADER, SITE_BODY };
enum { B_NONE, B_LEN, B_CHUNKED, B_CLOSE };
enum { CK_SIZE, CK_DATA, CK_DATA_END, CK_TRAILER };
enum { RQ_HEAD, RQ_BUFFER, RQ_BODY, RQ_WAIT, RQ_OPAQUE, RQ_DEAD };
enum { RS_HEAD, RS_BUFFER, RS_BODY, RS_OPAQUE, RS_DEAD };

/* A value as it may appear in a response, and the secret it belongs to. */
struct needle {
	uint8_t *p;
	size_t n;
	size_t secret;
};

/*
 * A Basic credential that went up with a value in it: [0] its base64 text,
 * [1] percent-encoded (empty when the same). @seq counts the request that
 * last sent it from the connection's first; it may be forgotten once that
 * request's response has completed (@seq < hx.nresp).
 */
struct cred {
	struct buf up[2];
	struct buf guest[2];
	uint64_t seq;
	bool used;
};

/* One direction's body in flight. */
struct body {
	int in;		/* B_LEN, B_CHUNKED or B_CLOSE */
	bool chunk_out; /* re-chunked; else raw (close-delimited or buffered) */
	uint64_t left;	/* B_LEN: bytes to come; B_CHUNKED: of this chunk */
	int ck;		/* chunk decoder state */
	struct buf line;
	struct buf trailers;
	struct buf hold; /* the scanner's kept-back tail */
	int enc;
	uint64_t bytes;
};

/* A request sent up and awaiting its response. */
struct pending {
	char method[24];
	char host[HX_AUDIT_HOST];
	char path[HX_AUDIT_PATH];
	bool head, v11, upgrade;
	uint64_t body;
	uint64_t secrets;
};

/* Where a match is: what decides the replacement's encoding and its eligibility. */
struct site {
	bool resp;
	int kind;
	const char *hname;
	size_t hlen;
	int enc;
};

/* Parsed head: a view into the held bytes. */
struct hdr {
	const char *name, *val;
	size_t nlen, vlen;
};

struct head {
	const char *f[3]; /* method, target, version; or version, status, reason */
	size_t flen[3];
	int minor;
	size_t n;
	struct hdr h[HX_MAX_HEADERS];
};

struct hx {
	struct hx_config c;
	struct needle *needles;
	size_t nneedles;
	struct cred creds[HX_MAX_CREDS];
	uint64_t nresp; /* responses completed */

	/* requests */
	struct buf rin;	 /* the head being read, the held body, or bytes held in RQ_WAIT */
	struct buf rout; /* a head waiting for its buffered body */
	size_t rscan;	 /* head end searched up to here */
	struct body rb;
	/* the request being read */
	size_t cur; /* its slot in @pend */
	uint64_t reported;

	struct pending pend[HX_MAX_PENDING];
	size_t phead, pcount;

	/* responses */
	struct buf sin;
	struct buf sout;
	size_t sscan;
	struct body sb;

	struct buf tmp;
	struct hx_violation viol;
	int rq, rq_rc, rs, status;
	bool blocked, has_host, host_ok, headers_sent, declined, oom, have_viol;
	uint8_t first[256]; /* bytes a needle or a credential starts with */
	char host[HX_AUDIT_HOST];
	char host_reason[HX_AUDIT_HOST + 64];
};

/* --- small helpers -------------------------------------------------------- */

static void put(struct hx *h, struct buf *b, const void *p, size_t n)
{
	if (n && buf_append(b, p, n) < 0)
		h->oom = true;
}

static void puts_(struct hx *h, struct buf *b, const char *s)
{
	put(h, b, s, strlen(s));
}

static void putf(struct hx *h, struct buf *b, const char *fmt, unsigned long long v)
{
	char s[32];
	int len = snprintf(s, sizeof(s), fmt, v);

	put(h, b, s, (size_t)len);
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool ieq(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);

	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
			return false;
	return true;
}

/* @b (NUL-terminated, lowercase) occurs in @a, case-insensitively. */
static bool icontains(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);

	for (size_t i = 0; i + bn <= an; i++)
		if (ieq(a + i, bn, b))
			return true;
	return false;
}

/* Printable ASCII from hostile bytes, for log lines and audit records. */
static void sanitize(char *dst, size_t cap, const char *s, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; i < n && j + 1 < cap; i++) {
		uint8_t c = (uint8_t)s[i];

		dst[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[j] = '\0';
}

static bool tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* --- placeholder and value matching ------------------------------------- */

/*
 * One character of a placeholder at @p: raw, %XX or \u00XX.
 * Return: bytes it takes, 0 when not an encoding of an ASCII character, -1
 * when @n ends before it could be told.
 */
static int dec1(const uint8_t *p, size_t n, uint8_t *c)
{
	if (!n)
		return -1;
	if (p[0] == '%') {
		for (size_t i = 1; i < 3; i++) {
			if (i >= n)
				return -1;
			if (hexval(p[i]) < 0)
				return 0;
		}
		*c = (uint8_t)(hexval(p[1]) << 4 | hexval(p[2]));
		return 3;
	}
	if (p[0] == '\\') {
		static const char pre[] = "\\u00";

		for (size_t i = 1; i < 6; i++) {
			if (i >= n)
				return -1;
			if (i < 4 ? lower(p[i]) != (uint8_t)pre[i] : hexval(p[i]) < 0)
				return 0;
		}
		*c = (uint8_t)(hexval(p[4]) << 4 | hexval(p[5]));
		return 6;
	}
	*c = p[0];
	return 1;
}

/* A known placeholder at @p? Sets *@len (encoded bytes) and *@idx. */
static int match_ph(const struct hx *h, const uint8_t *p, size_t n, size_t *len, size_t *idx)
{
	char d[HX_PLACEHOLDER_LEN];
	size_t off = 0;

	for (size_t k = 0; k < HX_PLACEHOLDER_LEN; k++) {
		uint8_t c = 0;
		int r = dec1(p + off, n - off, &c);

		if (r < 0)
			return M_PART;
		if (r == 0)
			return M_NO;
		if (k < PH_PREFIX_LEN ? c != (uint8_t)PH_PREFIX[k]
				      : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return M_NO;
		d[k] = (char)c;
		off += (size_t)r;
	}
	for (size_t i = 0; i < h->c.nsecrets; i++) {
		if (!memcmp(h->c.secrets[i].placeholder, d, HX_PLACEHOLDER_LEN)) {
			*len = off;
			*idx = i;
			return M_YES;
		}
	}
	return M_NO;
}

static int match_at(const uint8_t *p, size_t n, const uint8_t *w, size_t wn)
{
	if (n >= wn)
		return memcmp(p, w, wn) ? M_NO : M_YES;
	return memcmp(p, w, n) ? M_NO : M_PART;
}

/*
 * What a response may carry at @p: a remembered credential (tried first:
 * a value inside its text must not break it up) or a value. Sets *@len and
 * what replaces it, *@rep and *@rn.
 */
static int match_resp(const struct hx *h, const uint8_t *p, size_t n, size_t *len,
		      const uint8_t **rep, size_t *rn)
{
	bool part = false;

	if (!h->first[p[0]])
		return M_NO;
	for (size_t i = 0; i < HX_MAX_CREDS; i++) {
		const struct cred *c = &h->creds[i];

		for (size_t f = 0; c->used && f < 2; f++) {
			size_t cn = buf_size(&c->up[f]);
			int m = cn ? match_at(p, n, buf_head(&c->up[f]), cn) : M_NO;

			if (m == M_YES) {
				*len = cn;
				*rep = buf_head(&c->guest[f]);
				*rn = buf_size(&c->guest[f]);
				return M_YES;
			}
			part |= m == M_PART;
		}
	}
	for (size_t i = 0; i < h->nneedles; i++) {
		const struct needle *nd = &h->needles[i];
		int m = match_at(p, n, nd->p, nd->n);

		if (m == M_YES) {
			*len = nd->n;
			*rep = (const uint8_t *)h->c.secrets[nd->secret].placeholder;
			*rn = HX_PLACEHOLDER_LEN;
			return M_YES;
		}
		part |= m == M_PART;
	}
	return part ? M_PART : M_NO;
}

static bool unreserved(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static void put_encoded(struct hx *h, struct buf *out, const uint8_t *v, size_t n, int enc)
{
	static const char hx[] = "0123456789ABCDEF";

	if (enc == ENC_RAW || enc == ENC_BASIC) {
		put(h, out, v, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t c = v[i];
		char e[6];

		if (enc == ENC_PCT) {
			if (unreserved(c)) {
				put(h, out, &c, 1);
			} else {
				e[0] = '%';
				e[1] = hx[c >> 4];
				e[2] = hx[c & 15];
				put(h, out, e, 3);
			}
		} else if (c == '"' || c == '\\' || (c == '/' && enc == ENC_JSON_SLASH)) {
			e[0] = '\\';
			e[1] = (char)c;
			put(h, out, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			e[0] = '\\';
			e[1] = 'u';
			e[2] = '0';
			e[3] = '0';
			e[4] = hx[c >> 4];
			e[5] = hx[c & 15];
			put(h, out, e, 6);
		} else {
			put(h, out, &c, 1);
		}
	}
}

/* --- violations --------------------------------------------------------- */

static bool host_eq(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);

	if (an && a[0] == '[') {
		const char *e = memchr(a, ']', an);

		if (e)
			an = (size_t)(e - a) + 1;
	} else {
		const char *colon = memchr(a, ':', an);

		if (colon)
			an = (size_t)(colon - a);
	}
	while (an && a[an - 1] == '.')
		an--;
	while (bn && b[bn - 1] == '.')
		bn--;
	if (!an || an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
			return false;
	return true;
}

static void report(struct hx *h, size_t idx, const char *reason)
{
	struct hx_violation *v = &h->viol;
	uint64_t bit = 1ull << idx;

	if (h->reported & bit)
		return;
	h->reported |= bit;
	memset(v, 0, sizeof(*v));
	v->secret = idx;
	v->name = h->c.secrets[idx].name;
	sanitize(v->reason, sizeof(v->reason), reason, strlen(reason));
	v->sni = h->c.sni;
	snprintf(v->host, sizeof(v->host), "%s", h->host);
	v->blocked = !h->c.passthrough;
	v->upstream_dirty = v->blocked && h->headers_sent;
	h->have_viol = true;
	if (h->c.violation)
		h->c.violation(h->c.ctx, v);
}

/* Why secret @idx may not go into the request at @s; NULL when it may. */
static const char *refusal(const struct hx *h, size_t idx, const struct site *s)
{
	const struct hx_secret *sec = &h->c.secrets[idx];

	if (!h->c.sni)
		return "the connection is plain HTTP, secrets only go over TLS";
	if (!sec->allowed)
		return sec->why_not ? sec->why_not : "not allowed on this connection";
	if (!h->has_host)
		return "the request has no Host header";
	if (!h->host_ok)
		return h->host_reason;
	if (s->kind == SITE_HEADER && s->enc == ENC_RAW &&
	    (memchr(sec->value, '\r', sec->value_len) || memchr(sec->value, '\n', sec->value_len) ||
	     memchr(sec->value, '\0', sec->value_len)))
		return "value not valid in a header";
	return NULL;
}

static bool eligible(const struct hx *h, size_t idx, const struct site *s)
{
	const char *const *hs = h->c.secrets[idx].headers;

	if (!hs)
		return true;
	if (s->kind != SITE_HEADER)
		return false;
	for (; *hs; hs++)
		if (ieq(s->hname, s->hlen, *hs))
			return true;
	return false;
}

/* --- the scanner -------------------------------------------------------- */

/*
 * Copies @p to @out with substitutions. Without @final, stops before a tail
 * that could still become a match. Sets *@used to the bytes dealt with.
 * Return: 0, or -1 when a violation blocks the request.
 */
static int scan(struct hx *h, const struct site *s, const uint8_t *p, size_t n, bool final,
		struct buf *out, size_t *used, bool *changed)
{
	size_t i = 0, from = 0;

	if (!p)
		p = (const uint8_t
			     *)""; /* nothing to scan: no arithmetic on a null pointer either */

	while (i < n) {
		size_t len = 0, idx = 0, rn = 0;
		const uint8_t *rep = NULL;
		int m;

		if (s->resp)
			m = match_resp(h, p + i, n - i, &len, &rep, &rn);
		else if (p[i] == 'm' || p[i] == '%' || p[i] == '\\')
			m = match_ph(h, p + i, n - i, &len, &idx);
		else
			m = M_NO;
		if (m == M_PART && !final)
			break;
		if (m != M_YES) {
			i++;
			continue;
		}
		put(h, out, p + from, i - from);
		if (s->resp) {
			put(h, out, rep, rn);
			if (changed)
				*changed = true;
		} else if (!eligible(h, idx, s)) {
			put(h, out, p + i, len);
		} else {
			const char *why = refusal(h, idx, s);

			if (why) {
				report(h, idx, why);
				if (!h->c.passthrough) {
					h->blocked = true;
					return -1;
				}
				put(h, out, p + i, len);
			} else {
				const struct hx_secret *sec = &h->c.secrets[idx];

				put_encoded(h, out, sec->value, sec->value_len, s->enc);
				h->pend[h->cur].secrets |= 1ull << idx;
				if (changed)
					*changed = true;
			}
		}
		i += len;
		from = i;
	}
	put(h, out, p + from, i - from);
	*used = i;
	return 0;
}

/* Streams @n body bytes through the scanner, output framed into @out. */
static int body_data(struct hx *h, const struct site *s, struct body *b, const uint8_t *p, size_t n,
		     bool final, struct buf *out)
{
	do {
		size_t take = n < SLICE ? n : SLICE, used = 0;
		int rc;

		put(h, &b->hold, p, take);
		if (h->oom)
			return 0;
		buf_clear(&h->tmp);
		rc = scan(h, s, buf_head(&b->hold), buf_size(&b->hold), final && take == n, &h->tmp,
			  &used, NULL);
		if (rc < 0)
			return rc;
		buf_consume(&b->hold, used);
		if (buf_size(&h->tmp)) {
			if (b->chunk_out)
				putf(h, out, "%llx\r\n", buf_size(&h->tmp));
			put(h, out, buf_head(&h->tmp), buf_size(&h->tmp));
			if (b->chunk_out)
				puts_(h, out, "\r\n");
		}
		if (take)
			p += take;
		n -= take;
	} while (n);
	return 0;
}

static int body_end(struct hx *h, const struct site *s, struct body *b, struct buf *out)
{
	int rc = body_data(h, s, b, NULL, 0, true, out);

	if (rc == 0 && b->chunk_out) {
		puts_(h, out, "0\r\n");
		put(h, out, buf_head(&b->trailers), buf_size(&b->trailers));
		puts_(h, out, "\r\n");
	}
	return rc;
}

static void body_reset(struct body *b, int in, uint64_t len, bool chunk_out, int enc)
{
	buf_clear(&b->line);
	buf_clear(&b->trailers);
	buf_clear(&b->hold);
	b->in = in;
	b->left = len;
	b->chunk_out = chunk_out;
	b->ck = CK_SIZE;
	b->enc = enc;
	b->bytes = 0;
}

/*
 * Reads one line into @b->line. Return: 1 with the line there (no CR LF),
 * 0 when more is needed, -1 when longer than @max.
 */
static int read_line(struct hx *h, struct body *b, const uint8_t *p, size_t n, size_t *i,
		     size_t max)
{
	const uint8_t *nl = memchr(p + *i, '\n', n - *i);
	size_t take = nl ? (size_t)(nl - (p + *i)) : n - *i;

	if (buf_size(&b->line) + take > max)
		return -1;
	put(h, &b->line, p + *i, take);
	*i += take;
	if (!nl)
		return 0;
	(*i)++;
	if (buf_size(&b->line) && buf_head(&b->line)[buf_size(&b->line) - 1] == '\r')
		b->line.len--;
	return 1;
}

/*
 * Feeds body bytes; *@used says how many were the body's.
 * Return: 1 when the body ended, 0 when more is to come, -1 blocked, -2 malformed.
 */
static int body_feed(struct hx *h, const struct site *s, struct body *b, const uint8_t *p, size_t n,
		     size_t *used, struct buf *out)
{
	size_t i = 0;

	while (i < n || (b->in == B_LEN && !b->left)) {
		if (h->oom)
			return -2;
		if (b->in == B_CLOSE) {
			b->bytes += n - i;
			*used = n;
			return body_data(h, s, b, p + i, n - i, false, out);
		}
		if (b->in == B_LEN) {
			size_t take = n - i < b->left ? n - i : (size_t)b->left;

			if (body_data(h, s, b, p + i, take, false, out) < 0)
				return -1;
			i += take;
			b->left -= take;
			b->bytes += take;
			if (!b->left) {
				*used = i;
				return body_end(h, s, b, out) < 0 ? -1 : 1;
			}
			continue;
		}
		/* chunked */
		if (b->ck == CK_DATA) {
			size_t take = n - i < b->left ? n - i : (size_t)b->left;

			if (body_data(h, s, b, p + i, take, false, out) < 0)
				return -1;
			i += take;
			b->left -= take;
			b->bytes += take;
			if (!b->left)
				b->ck = CK_DATA_END;
			continue;
		}
		int r = read_line(h, b, p, n, &i, b->ck == CK_TRAILER ? MAX_LINE : 1024);

		if (r < 0)
			return -2;
		if (r == 0)
			break;
		const char *l = (const char *)buf_head(&b->line);
		size_t ln = buf_size(&b->line);

		if (b->ck == CK_DATA_END) {
			if (ln)
				return -2;
			b->ck = CK_SIZE;
		} else if (b->ck == CK_SIZE) {
			uint64_t v = 0;
			size_t k = 0;

			for (; k < ln && hexval((uint8_t)l[k]) >= 0; k++) {
				if (v >> 56)
					return -2;
				v = v << 4 | (uint64_t)hexval((uint8_t)l[k]);
			}
			/* extensions are dropped: they describe the chunk as it was */
			while (k < ln && (l[k] == ' ' || l[k] == '\t'))
				k++;
			if (!k || (k < ln && l[k] != ';'))
				return -2;
			b->left = v;
			b->ck = v ? CK_DATA : CK_TRAILER;
		} else if (!ln) {
			*used = i;
			buf_clear(&b->line);
			return body_end(h, s, b, out) < 0 ? -1 : 1;
		} else {
			size_t tused;

			if (buf_size(&b->trailers) + ln + 2 > MAX_TRAILERS)
				return -2;
			/* a response's trailers may echo a value; a request's go up as sent */
			if (s->resp)
				scan(h, s, (const uint8_t *)l, ln, true, &b->trailers, &tused,
				     NULL);
			else
				put(h, &b->trailers, l, ln);
			puts_(h, &b->trailers, "\r\n");
		}
		buf_clear(&b->line);
	}
	*used = i;
	return 0;
}

/* --- heads -------------------------------------------------------------- */

/* Looks for the blank line ending a head. Return: its end offset, or 0. */
static size_t head_end(const struct buf *b, size_t *scanned)
{
	const uint8_t *p = buf_head(b);
	size_t n = buf_size(b);

	for (size_t i = *scanned; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < n && p[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 3;
	}
	*scanned = n > 3 ? n - 3 : 0;
	return 0;
}

static bool fieldchar(uint8_t c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Parses the @n bytes of a head (blank line included). Return: NULL or what is wrong. */
static const char *parse_head(const char *p, size_t n, bool resp, struct head *hd)
{
	size_t i = 0, line = 0;

	memset(hd, 0, offsetof(struct head, h));
	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t e = nl ? (size_t)(nl - p) : n, len = e - i;
		const char *l = p + i;

		if (len && l[len - 1] == '\r')
			len--;
		i = e + 1;
		for (size_t k = 0; k < len; k++)
			if (!fieldchar((uint8_t)l[k]))
				return "control character in the head";
		if (line++ == 0) {
			const char *sp1 = memchr(l, ' ', len), *sp2;

			if (!sp1)
				return "malformed start line";
			sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - l));
			if (!sp2 && !resp)
				return "malformed request line";
			hd->f[0] = l;
			hd->flen[0] = (size_t)(sp1 - l);
			hd->f[1] = sp1 + 1;
			hd->flen[1] = (sp2 ? (size_t)(sp2 - sp1) : len - (size_t)(sp1 - l)) - 1;
			hd->f[2] = sp2 ? sp2 + 1 : l + len;
			hd->flen[2] = sp2 ? len - (size_t)(sp2 + 1 - l) : 0;
			const char *ver = resp ? hd->f[0] : hd->f[2];
			size_t vlen = resp ? hd->flen[0] : hd->flen[2];

			if (vlen != 8 || memcmp(ver, "HTTP/1.", 7) != 0 ||
			    (ver[7] != '0' && ver[7] != '1'))
				return "not HTTP/1.0 or HTTP/1.1";
			hd->minor = ver[7] - '0';
			if (resp) {
				if (hd->flen[1] != 3)
					return "malformed status line";
				for (size_t k = 0; k < 3; k++)
					if (hd->f[1][k] < '0' || hd->f[1][k] > '9')
						return "malformed status line";
			} else {
				if (!hd->flen[0] || !hd->flen[1] ||
				    memchr(hd->f[2], ' ', hd->flen[2]))
					return "malformed request line";
				for (size_t k = 0; k < hd->flen[0]; k++)
					if (!tchar((uint8_t)hd->f[0][k]))
						return "malformed method";
				if (memchr(hd->f[1], '\t', hd->flen[1]))
					return "malformed request target";
			}
			continue;
		}
		if (!len)
			break;
		if (l[0] == ' ' || l[0] == '\t')
			return "obsolete line folding";
		const char *colon = memchr(l, ':', len);

		if (!colon || colon == l)
			return "malformed header";
		for (const char *c = l; c < colon; c++)
			if (!tchar((uint8_t)*c))
				return "malformed header name";
		if (hd->n >= HX_MAX_HEADERS)
			return "too many headers";
		struct hdr *x = &hd->h[hd->n++];
		const char *v = colon + 1, *ve = l + len;

		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		x->name = l;
		x->nlen = (size_t)(colon - l);
		x->val = v;
		x->vlen = (size_t)(ve - v);
	}
	return NULL;
}

/* Content-Length, or -1 when absent, -2 when malformed or contradictory. */
static int64_t content_length(const struct head *hd)
{
	int64_t len = -1;

	for (size_t i = 0; i < hd->n; i++) {
		const struct hdr *x = &hd->h[i];
		int64_t v = 0;

		if (!ieq(x->name, x->nlen, "content-length"))
			continue;
		if (!x->vlen || x->vlen > 15)
			return -2;
		for (size_t k = 0; k < x->vlen; k++) {
			if (x->val[k] < '0' || x->val[k] > '9')
				return -2;
			v = v * 10 + (x->val[k] - '0');
		}
		if (len >= 0 && len != v)
			return -2;
		len = v;
	}
	return len;
}

static const struct hdr *find(const struct head *hd, const char *name, size_t *count)
{
	const struct hdr *f = NULL;

	*count = 0;
	for (size_t i = 0; i < hd->n; i++) {
		if (ieq(hd->h[i].name, hd->h[i].nlen, name)) {
			if (!f)
				f = &hd->h[i];
			(*count)++;
		}
	}
	return f;
}

static bool framing(const struct hdr *x)
{
	return ieq(x->name, x->nlen, "content-length") ||
	       ieq(x->name, x->nlen, "transfer-encoding");
}

/* Queues an error response for the guest and makes the request side dead. */
static int fail(struct hx *h, struct buf *guest, int rc, const char *status, const char *msg)
{
	char body[512];
	int len = snprintf(body, sizeof(body), "%s\n", msg);

	if (len < 0 || (size_t)len >= sizeof(body))
		len = (int)sizeof(body) - 1;
	puts_(h, guest, "HTTP/1.1 ");
	puts_(h, guest, status);
	puts_(h, guest, "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: ");
	putf(h, guest, "%llu\r\n\r\n", (unsigned long long)len);
	put(h, guest, body, (size_t)len);
	h->rq = RQ_DEAD;
	h->rq_rc = rc;
	buf_clear(&h->rin);
	buf_clear(&h->rout);
	return rc;
}

static int fail_bad(struct hx *h, struct buf *guest, const char *status, const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "msb: bad request: %s", why);
	return fail(h, guest, HX_BAD, status, msg);
}

static int fail_blocked(struct hx *h, struct buf *guest)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "msb: secret %s blocked: %s", h->viol.name, h->viol.reason);
	sanitize(msg, sizeof(msg), msg, strlen(msg));
	return fail(h, guest, HX_VIOLATION, "403 Forbidden", msg);
}

static void first_bytes(struct hx *h)
{
	memset(h->first, 0, sizeof(h->first));
	for (size_t i = 0; i < h->nneedles; i++)
		h->first[h->needles[i].p[0]] = 1;
	for (size_t i = 0; i < HX_MAX_CREDS; i++)
		if (h->creds[i].used)
			h->first[buf_head(&h->creds[i].up[0])[0]] = 1;
}

/* The same text again, else a free slot, else the oldest answered one, else NULL. */
static struct cred *cred_slot(struct hx *h, const char *u, size_t un)
{
	struct cred *old = NULL;

	for (size_t i = 0; i < HX_MAX_CREDS; i++)
		if (h->creds[i].used && buf_size(&h->creds[i].up[0]) == un &&
		    !memcmp(buf_head(&h->creds[i].up[0]), u, un))
			return &h->creds[i];
	for (size_t i = 0; i < HX_MAX_CREDS; i++)
		if (!h->creds[i].used)
			return &h->creds[i];
	for (size_t i = 0; i < HX_MAX_CREDS; i++) {
		struct cred *x = &h->creds[i];

		if (x->seq < h->nresp && (!old || x->seq < old->seq))
			old = x;
	}
	return old;
}

/*
 * Remembers that the guest's Basic credential @g went up as @u, for the
 * responses. Return: 0, or -1 with *@status and *@why set: the request is refused.
 */
static int remember(struct hx *h, const char *u, size_t un, const char *g, size_t gn,
		    const char **status, const char **why)
{
	uint64_t seq = h->nresp + h->pcount; /* this request, not yet counted in pcount */
	struct cred *c;

	if (un > HX_MAX_CRED || gn > HX_MAX_CRED) {
		*status = "431 Request Header Fields Too Large";
		*why = "Basic credential too large once substituted";
		return -1;
	}
	c = cred_slot(h, u, un);
	if (!c) {
		*status = "400 Bad Request";
		*why = "too many Basic credentials awaiting their responses";
		return -1;
	}
	for (size_t f = 0; f < 2; f++) {
		buf_clear(&c->up[f]);
		buf_clear(&c->guest[f]);
	}
	put(h, &c->up[0], u, un);
	put(h, &c->guest[0], g, gn);
	put_encoded(h, &c->up[1], (const uint8_t *)u, un, ENC_PCT);
	if (buf_size(&c->up[1]) == un) {
		buf_clear(&c->up[1]); /* nothing to escape: the same text */
	} else {
		put_encoded(h, &c->guest[1], (const uint8_t *)g, gn, ENC_PCT);
	}
	c->seq = seq;
	c->used = !h->oom;
	first_bytes(h);
	return 0;
}

/*
 * Substitutes in one header value (Basic credentials decoded first).
 * Return: 0, -1 when a violation blocks the request, -2 when the request is
 * refused with *@status and *@why.
 */
static int subst_header(struct hx *h, const struct hdr *x, struct buf *out, const char **status,
			const char **why)
{
	struct site s = { false, SITE_HEADER, x->name, x->nlen, ENC_RAW };
	size_t used;

	if ((ieq(x->name, x->nlen, "authorization") ||
	     ieq(x->name, x->nlen, "proxy-authorization")) &&
	    x->vlen > 6 && ieq(x->val, 6, "basic ")) {
		size_t k = 6;
		char *enc;
		unsigned char *dec;
		long dn;

		while (k < x->vlen && x->val[k] == ' ')
			k++;
		enc = strndup(x->val + k, x->vlen - k);
		dec = malloc(x->vlen);
		if (!enc || !dec) {
			free(enc);
			free(dec);
			h->oom = true;
			return 0;
		}
		dn = b64_decode(enc, dec, x->vlen);
		free(enc);
		if (dn > 0) {
			struct buf plain = { 0 };
			bool changed = false;
			int rc;

			/* CR and LF are harmless once base64-encoded */
			s.enc = ENC_BASIC;
			rc = scan(h, &s, dec, (size_t)dn, true, &plain, &used, &changed);
			s.enc = ENC_RAW;
			free(dec);
			if (rc < 0 || h->oom) {
				buf_free(&plain);
				return rc;
			}
			if (changed) {
				char *b = b64_encode(buf_head(&plain), buf_size(&plain));

				if (!b) {
					h->oom = true;
				} else if (remember(h, b, strlen(b), x->val + k, x->vlen - k,
						    status, why) < 0) {
					rc = -2;
				} else {
					put(h, out, x->val, k);
					puts_(h, out, b);
				}
				free(b);
				buf_free(&plain);
				return rc;
			}
			buf_free(&plain);
		} else {
			free(dec);
		}
	}
	return scan(h, &s, (const uint8_t *)x->val, x->vlen, true, out, &used, NULL);
}

static void request_host(struct hx *h, const struct head *hd, size_t nhost, const struct hdr *hx)
{
	const char *t = hd->f[1];
	size_t tn = hd->flen[1];

	h->has_host = hx && nhost == 1;
	h->host[0] = '\0';
	if (hx)
		sanitize(h->host, sizeof(h->host), hx->val, hx->vlen);
	h->host_ok = h->has_host && h->c.sni && host_eq(hx->val, hx->vlen, h->c.sni);
	if (h->has_host && !h->host_ok)
		snprintf(h->host_reason, sizeof(h->host_reason),
			 "Host header %s differs from the TLS name %s", h->host,
			 h->c.sni ? h->c.sni : "(none)");
	/* An absolute-form target names the host the server goes by. */
	if (h->host_ok && tn > 8 && (ieq(t, 7, "http://") || ieq(t, 8, "https://"))) {
		size_t a = t[4] == ':' ? 7 : 8, e = a;
		char auth[HX_AUDIT_HOST];

		while (e < tn && t[e] != '/' && t[e] != '?' && t[e] != '#')
			e++;
		const char *at = memchr(t + a, '@', e - a);

		if (at)
			a = (size_t)(at - t) + 1;
		if (!host_eq(t + a, e - a, h->c.sni)) {
			sanitize(auth, sizeof(auth), t + a, e - a);
			h->host_ok = false;
			snprintf(h->host_reason, sizeof(h->host_reason),
				 "request target host %s differs from the TLS name %s", auth,
				 h->c.sni);
		}
	}
}

static int body_enc(const struct head *hd)
{
	size_t c;
	const struct hdr *ct = find(hd, "content-type", &c);

	if (!ct)
		return ENC_RAW;
	if (icontains(ct->val, ct->vlen, "json"))
		return ENC_JSON;
	if (icontains(ct->val, ct->vlen, "application/x-www-form-urlencoded"))
		return ENC_PCT;
	return ENC_RAW;
}

/* A complete request head in h->rin: check, rewrite, decide the body's framing. */
static int request_head(struct hx *h, struct buf *up, struct buf *guest)
{
	struct head *hd = malloc(sizeof(*hd));
	const char *why;
	size_t nhost, nte, nexp, nup;
	const struct hdr *hhost, *te, *exp;
	int64_t cl;
	struct pending *pd;
	struct buf *out = &h->rout;
	int rc = HX_OK;

	if (!hd) {
		h->oom = true;
		return HX_NOMEM;
	}
	why = parse_head((const char *)buf_head(&h->rin), buf_size(&h->rin), false, hd);
	if (why) {
		rc = fail_bad(h, guest,
			      strcmp(why, "too many headers")
				      ? "400 Bad Request"
				      : "431 Request Header Fields Too Large",
			      why);
		goto out;
	}
	if (ieq(hd->f[0], hd->flen[0], "CONNECT")) {
		rc = fail_bad(h, guest, "400 Bad Request",
			      "CONNECT is not supported inside intercepted TLS");
		goto out;
	}
	cl = content_length(hd);
	te = find(hd, "transfer-encoding", &nte);
	hhost = find(hd, "host", &nhost);
	exp = find(hd, "expect", &nexp);
	find(hd, "upgrade", &nup);
	if (cl == -2 || (te && cl >= 0) || nte > 1 || (te && !ieq(te->val, te->vlen, "chunked")) ||
	    nhost > 1) {
		rc = fail_bad(h, guest, "400 Bad Request", "ambiguous message framing or Host");
		goto out;
	}
	if (h->pcount >= HX_MAX_PENDING) {
		rc = fail_bad(h, guest, "400 Bad Request", "too many pipelined requests");
		goto out;
	}
	request_host(h, hd, nhost, hhost);
	h->reported = 0;
	h->headers_sent = false;

	h->cur = (h->phead + h->pcount) % HX_MAX_PENDING;
	pd = &h->pend[h->cur];
	memset(pd, 0, sizeof(*pd));
	sanitize(pd->method, sizeof(pd->method), hd->f[0], hd->flen[0]);
	snprintf(pd->host, sizeof(pd->host), "%s", h->host);
	size_t plen = 0;

	while (plen < hd->flen[1] && hd->f[1][plen] != '?' && hd->f[1][plen] != '#')
		plen++;
	sanitize(pd->path, sizeof(pd->path), hd->f[1], plen);
	pd->head = ieq(hd->f[0], hd->flen[0], "HEAD");
	pd->v11 = hd->minor == 1;
	pd->upgrade = nup > 0;

	/* The rewritten head, without its framing header and the blank line. */
	buf_clear(out);
	put(h, out, hd->f[0], hd->flen[0]);
	puts_(h, out, " ");
	size_t used;
	struct site st = { false, SITE_TARGET, NULL, 0, ENC_PCT };

	if (scan(h, &st, (const uint8_t *)hd->f[1], hd->flen[1], true, out, &used, NULL) < 0)
		goto blocked;
	puts_(h, out, hd->minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
	for (size_t i = 0; i < hd->n; i++) {
		const struct hdr *x = &hd->h[i];

		if (framing(x) || ieq(x->name, x->nlen, "accept-encoding"))
			continue;
		const char *status = NULL, *why_bad = NULL;
		int r;

		put(h, out, x->name, x->nlen);
		puts_(h, out, ": ");
		r = subst_header(h, x, out, &status, &why_bad);
		if (r == -1)
			goto blocked;
		if (r < 0) {
			rc = fail_bad(h, guest, status, why_bad);
			goto out;
		}
		puts_(h, out, "\r\n");
	}
	puts_(h, out, "Accept-Encoding: identity\r\n");
	/* values are bounded, but 1500 placeholders of long values are not a head */
	if (buf_size(out) > (size_t)4 * HX_MAX_HEAD) {
		rc = fail_bad(h, guest, "431 Request Header Fields Too Large",
			      "request head too large once substituted");
		goto out;
	}
	h->pcount++;

	int enc = body_enc(hd);
	bool expect = exp && hd->minor == 1 && ieq(exp->val, exp->vlen, "100-continue");

	buf_clear(&h->rin);
	if (te || (cl > 0 && (cl > HX_BODY_BUFFER || expect))) {
		if (!hd->minor) {
			h->pcount--;
			rc = fail_bad(h, guest, "413 Content Too Large",
				      "an HTTP/1.0 body this large cannot be re-framed");
			goto out;
		}
		if (!h->c.unframed)
			puts_(h, out, "Transfer-Encoding: chunked\r\n");
		puts_(h, out, "\r\n");
		put(h, up, buf_head(out), buf_size(out));
		buf_clear(out);
		h->headers_sent = true;
		body_reset(&h->rb, te ? B_CHUNKED : B_LEN, te ? 0 : (uint64_t)cl, !h->c.unframed,
			   enc);
		h->rq = RQ_BODY;
	} else if (cl > 0) {
		body_reset(&h->rb, B_LEN, (uint64_t)cl, false, enc);
		h->rq = RQ_BUFFER;
	} else {
		if (cl == 0)
			puts_(h, out, "Content-Length: 0\r\n");
		puts_(h, out, "\r\n");
		put(h, up, buf_head(out), buf_size(out));
		buf_clear(out);
		h->rq = pd->upgrade ? RQ_WAIT : RQ_HEAD;
	}
	goto out;
blocked:
	rc = fail_blocked(h, guest);
out:
	free(hd);
	return rc;
}

/* The held Content-Length body is complete: substitute, send head and body. */
static int request_buffered(struct hx *h, struct buf *up, struct buf *guest)
{
	struct site s = { false, SITE_BODY, NULL, 0, h->rb.enc };
	struct pending *pd = &h->pend[h->cur];
	size_t used;

	buf_clear(&h->tmp);
	if (scan(h, &s, buf_head(&h->rin), buf_size(&h->rin), true, &h->tmp, &used, NULL) < 0)
		return fail_blocked(h, guest);
	pd->body = buf_size(&h->rin);
	putf(h, &h->rout, "Content-Length: %llu\r\n\r\n", buf_size(&h->tmp));
	put(h, up, buf_head(&h->rout), buf_size(&h->rout));
	put(h, up, buf_head(&h->tmp), buf_size(&h->tmp));
	buf_clear(&h->rout);
	buf_clear(&h->rin);
	h->rq = pd->upgrade ? RQ_WAIT : RQ_HEAD;
	return HX_OK;
}

static int request_feed(struct hx *h, const uint8_t *p, size_t n, struct buf *up, struct buf *guest)
{
	size_t i = 0;

	while (i < n && !h->oom) {
		switch (h->rq) {
		case RQ_DEAD:
			return h->rq_rc;
		case RQ_OPAQUE:
			put(h, up, p + i, n - i);
			return HX_OK;
		case RQ_WAIT:
			if (buf_size(&h->rin) + (n - i) > HX_MAX_HEAD)
				return fail_bad(h, guest, "400 Bad Request",
						"too much data before the upgrade's answer");
			put(h, &h->rin, p + i, n - i);
			return HX_OK;
		case RQ_HEAD: {
			size_t have, take, end;

			/* RFC 9112 2.2: empty lines before a request are ignored */
			if (!buf_size(&h->rin) && (p[i] == '\r' || p[i] == '\n')) {
				i++;
				continue;
			}
			have = buf_size(&h->rin);
			take = n - i < HX_MAX_HEAD - have ? n - i : HX_MAX_HEAD - have;
			if (!take)
				return fail_bad(h, guest, "431 Request Header Fields Too Large",
						"request head too large");
			put(h, &h->rin, p + i, take);
			if (h->oom)
				break;
			end = head_end(&h->rin, &h->rscan);
			if (!end) {
				i += take;
				if (buf_size(&h->rin) >= HX_MAX_HEAD)
					return fail_bad(h, guest,
							"431 Request Header Fields Too Large",
							"request head too large");
				continue;
			}
			i += take - (buf_size(&h->rin) - end);
			h->rin.len = h->rin.off + end;
			h->rscan = 0;
			int rc = request_head(h, up, guest);

			if (rc != HX_OK)
				return rc;
			break;
		}
		case RQ_BUFFER: {
			size_t take = n - i < h->rb.left ? n - i : (size_t)h->rb.left;

			put(h, &h->rin, p + i, take);
			i += take;
			h->rb.left -= take;
			if (!h->rb.left) {
				int rc = request_buffered(h, up, guest);

				if (rc != HX_OK)
					return rc;
			}
			break;
		}
		case RQ_BODY: {
			struct site s = { false, SITE_BODY, NULL, 0, h->rb.enc };
			size_t used = 0;
			int r;

			r = body_feed(h, &s, &h->rb, p + i, n - i, &used, up);
			h->pend[h->cur].body = h->rb.bytes;
			if (r == -1)
				return fail_blocked(h, guest);
			if (r == -2)
				return fail_bad(h, guest, "400 Bad Request",
						"malformed chunked body");
			i += used;
			if (r == 1)
				h->rq = h->pend[h->cur].upgrade ? RQ_WAIT : RQ_HEAD;
			break;
		}
		}
	}
	return h->oom ? HX_NOMEM : HX_OK;
}

int hx_request(struct hx *h, const uint8_t *p, size_t n, struct buf *up, struct buf *guest)
{
	int rc;

	if (h->oom)
		return HX_NOMEM;
	if (h->rq == RQ_DEAD)
		return h->rq_rc;
	if (h->rq == RQ_WAIT && (h->rs == RS_OPAQUE || h->declined)) {
		struct buf held = h->rin;

		memset(&h->rin, 0, sizeof(h->rin));
		h->rq = h->rs == RS_OPAQUE ? RQ_OPAQUE : RQ_HEAD;
		h->declined = false;
		rc = request_feed(h, buf_head(&held), buf_size(&held), up, guest);
		buf_free(&held);
		if (rc != HX_OK)
			return rc;
	}
	if (!n)
		return h->oom ? HX_NOMEM : HX_OK;
	return request_feed(h, p, n, up, guest);
}

int hx_request_end(struct hx *h, struct buf *up, struct buf *guest)
{
	if (h->oom)
		return HX_NOMEM;
	if (h->rq == RQ_DEAD)
		return h->rq_rc;
	if (h->rq == RQ_BODY) {
		/* the held tail goes up: an unfinished placeholder is no placeholder */
		struct site s = { false, SITE_BODY, NULL, 0, h->rb.enc };

		if (body_data(h, &s, &h->rb, NULL, 0, true, up) < 0)
			return fail_blocked(h, guest);
	}
	if (h->rq == RQ_WAIT && h->rs == RS_OPAQUE) {
		put(h, up, buf_head(&h->rin), buf_size(&h->rin));
		buf_clear(&h->rin);
	}
	return h->oom ? HX_NOMEM : HX_OK;
}

/* --- responses ---------------------------------------------------------- */

static int resp_bad(struct hx *h, struct buf *guest, bool nothing_sent)
{
	static const char r502[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
				   "Connection: close\r\nContent-Length: 39\r\n\r\n"
				   "msb: malformed response from upstream\n";

	if (nothing_sent)
		puts_(h, guest, r502);
	h->rs = RS_DEAD;
	return HX_BAD;
}

static void audit(struct hx *h, const struct pending *pd, uint64_t body)
{
	struct hx_audit a = {
		.method = pd->method,
		.host = pd->host,
		.path = pd->path,
		.status = h->status,
		.request_body = pd->body,
		.response_body = body,
		.secrets = pd->secrets,
	};

	if (h->c.audit)
		h->c.audit(h->c.ctx, &a);
}

static void response_done(struct hx *h)
{
	struct pending *pd = &h->pend[h->phead];

	audit(h, pd, h->sb.bytes);
	if (pd->upgrade)
		h->declined = true;
	h->phead = (h->phead + 1) % HX_MAX_PENDING;
	h->pcount--;
	h->nresp++;
	h->rs = RS_HEAD;
}

static int response_head(struct hx *h, struct buf *guest)
{
	struct head *hd = malloc(sizeof(*hd));
	struct site s = { true, SITE_HEADER, NULL, 0, ENC_RAW };
	struct buf *out = &h->sout;
	const struct hdr *te;
	struct pending *pd;
	size_t nte, used;
	int64_t cl;
	int rc = HX_OK, body = B_CLOSE;
	bool v11;

	if (!hd) {
		h->oom = true;
		return HX_NOMEM;
	}
	if (parse_head((const char *)buf_head(&h->sin), buf_size(&h->sin), true, hd) ||
	    !h->pcount) {
		rc = resp_bad(h, guest, true);
		goto out;
	}
	pd = &h->pend[h->phead];
	h->status = (hd->f[1][0] - '0') * 100 + (hd->f[1][1] - '0') * 10 + (hd->f[1][2] - '0');
	cl = content_length(hd);
	te = find(hd, "transfer-encoding", &nte);
	if (cl == -2 || (te && cl >= 0) || h->status < 100 || (h->status == 101 && !pd->upgrade)) {
		rc = resp_bad(h, guest, true);
		goto out;
	}
	v11 = pd->v11 && hd->minor == 1;
	if (pd->head || h->status / 100 == 1 || h->status == 204 || h->status == 304)
		body = B_NONE;
	else if (te)
		body = te->vlen >= 7 && ieq(te->val + te->vlen - 7, 7, "chunked") ? B_CHUNKED
										  : B_CLOSE;
	else if (cl >= 0)
		body = B_LEN;

	buf_clear(out);
	put(h, out, hd->f[0], hd->flen[0]);
	puts_(h, out, " ");
	put(h, out, hd->f[1], 3);
	puts_(h, out, " ");
	scan(h, &s, (const uint8_t *)hd->f[2], hd->flen[2], true, out, &used, NULL);
	puts_(h, out, "\r\n");
	bool reframe_close = body == B_LEN && cl > HX_BODY_BUFFER && !v11;

	for (size_t i = 0; i < hd->n; i++) {
		const struct hdr *x = &hd->h[i];

		/* a chunked body is chunked again: its Transfer-Encoding stays */
		if (framing(x) && (body == B_LEN || (h->c.unframed && body != B_NONE)))
			continue;
		if (reframe_close &&
		    (ieq(x->name, x->nlen, "connection") || ieq(x->name, x->nlen, "keep-alive")))
			continue;
		/*
		 * Names too: a placeholder is a valid token. Content-Length is
		 * digits msb checked; rewriting it would break the framing.
		 */
		scan(h, &s, (const uint8_t *)x->name, x->nlen, true, out, &used, NULL);
		puts_(h, out, ": ");
		if (ieq(x->name, x->nlen, "content-length"))
			put(h, out, x->val, x->vlen);
		else
			scan(h, &s, (const uint8_t *)x->val, x->vlen, true, out, &used, NULL);
		puts_(h, out, "\r\n");
	}
	buf_clear(&h->sin);
	s.kind = SITE_BODY;
	if (body == B_NONE || (body == B_LEN && cl == 0)) {
		if (body == B_LEN)
			puts_(h, out, "Content-Length: 0\r\n");
		puts_(h, out, "\r\n");
		put(h, guest, buf_head(out), buf_size(out));
		buf_clear(out);
		h->sb.bytes = 0;
		if (h->status == 101) {
			audit(h, pd, 0);
			h->phead = (h->phead + 1) % HX_MAX_PENDING;
			h->pcount--;
			h->nresp++;
			h->rs = RS_OPAQUE;
		} else if (h->status / 100 != 1) {
			response_done(h);
		}
		goto out;
	}
	if (body == B_LEN && cl <= HX_BODY_BUFFER) {
		body_reset(&h->sb, B_LEN, (uint64_t)cl, false, ENC_RAW);
		h->rs = RS_BUFFER;
		goto out;
	}
	if (reframe_close)
		puts_(h, out, "Connection: close\r\n");
	else if (body == B_LEN && !h->c.unframed)
		puts_(h, out, "Transfer-Encoding: chunked\r\n");
	puts_(h, out, "\r\n");
	put(h, guest, buf_head(out), buf_size(out));
	buf_clear(out);
	body_reset(&h->sb, body, body == B_LEN ? (uint64_t)cl : 0,
		   body != B_CLOSE && !reframe_close && !h->c.unframed, ENC_RAW);
	h->rs = RS_BODY;
out:
	free(hd);
	return rc;
}

int hx_response(struct hx *h, const uint8_t *p, size_t n, struct buf *guest)
{
	size_t i = 0;

	while (i < n && !h->oom) {
		switch (h->rs) {
		case RS_DEAD:
			return HX_BAD;
		case RS_OPAQUE:
			put(h, guest, p + i, n - i);
			i = n;
			break;
		case RS_HEAD: {
			size_t have = buf_size(&h->sin), take, end;

			take = n - i < HX_MAX_HEAD - have ? n - i : HX_MAX_HEAD - have;
			if (!take)
				return resp_bad(h, guest, true);
			put(h, &h->sin, p + i, take);
			if (h->oom)
				break;
			end = head_end(&h->sin, &h->sscan);
			if (!end) {
				i += take;
				if (buf_size(&h->sin) >= HX_MAX_HEAD)
					return resp_bad(h, guest, true);
				continue;
			}
			i += take - (buf_size(&h->sin) - end);
			h->sin.len = h->sin.off + end;
			h->sscan = 0;
			int rc = response_head(h, guest);

			if (rc != HX_OK)
				return rc;
			break;
		}
		case RS_BUFFER: {
			size_t take = n - i < h->sb.left ? n - i : (size_t)h->sb.left;

			put(h, &h->sin, p + i, take);
			i += take;
			h->sb.left -= take;
			if (!h->sb.left) {
				struct site s = { true, SITE_BODY, NULL, 0, ENC_RAW };
				size_t used;

				buf_clear(&h->tmp);
				scan(h, &s, buf_head(&h->sin), buf_size(&h->sin), true, &h->tmp,
				     &used, NULL);
				putf(h, &h->sout, "Content-Length: %llu\r\n\r\n",
				     buf_size(&h->tmp));
				put(h, guest, buf_head(&h->sout), buf_size(&h->sout));
				put(h, guest, buf_head(&h->tmp), buf_size(&h->tmp));
				h->sb.bytes = buf_size(&h->sin);
				buf_clear(&h->sout);
				buf_clear(&h->sin);
				response_done(h);
			}
			break;
		}
		case RS_BODY: {
			struct site s = { true, SITE_BODY, NULL, 0, ENC_RAW };
			size_t used = 0;
			int r = body_feed(h, &s, &h->sb, p + i, n - i, &used, guest);

			if (r < 0)
				return resp_bad(h, guest, false);
			i += used;
			if (r == 1)
				response_done(h);
			break;
		}
		}
	}
	return h->oom ? HX_NOMEM : HX_OK;
}

int hx_response_end(struct hx *h, struct buf *guest)
{
	if (h->oom)
		return HX_NOMEM;
	if (h->rs == RS_BODY && h->sb.in == B_CLOSE) {
		struct site s = { true, SITE_BODY, NULL, 0, ENC_RAW };

		body_end(h, &s, &h->sb, guest);
		response_done(h);
		h->rs = RS_DEAD;
		return h->oom ? HX_NOMEM : HX_OK;
	}
	if (h->rs == RS_OPAQUE)
		return HX_OK;
	if (h->rs == RS_HEAD && !buf_size(&h->sin)) {
		h->rs = RS_DEAD;
		return HX_OK;
	}
	if (h->rs == RS_DEAD)
		return HX_OK;
	return resp_bad(h, guest, h->rs == RS_HEAD);
}

void hx_response_text(struct hx *h, const uint8_t *p, size_t n, struct buf *out)
{
	struct site s = { true, SITE_HEADER, NULL, 0, ENC_RAW };
	size_t used;

	scan(h, &s, p, n, true, out, &used, NULL);
}

/* --- lifetime ----------------------------------------------------------- */

static bool valid_placeholder(const char *p)
{
	if (!p || strlen(p) != HX_PLACEHOLDER_LEN || memcmp(p, PH_PREFIX, PH_PREFIX_LEN) != 0)
		return false;
	for (size_t i = PH_PREFIX_LEN; i < HX_PLACEHOLDER_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

static int add_needle(struct hx *h, const struct hx_secret *s, size_t idx, int enc)
{
	struct buf b = { 0 };
	struct needle *nd;

	put_encoded(h, &b, s->value, s->value_len, enc);
	if (h->oom)
		return -ENOMEM;
	for (size_t i = 0; i < h->nneedles; i++) {
		if (h->needles[i].p && h->needles[i].n == buf_size(&b) &&
		    !memcmp(h->needles[i].p, buf_head(&b), buf_size(&b))) {
			buf_free(&b);
			return 0;
		}
	}
	nd = &h->needles[h->nneedles++];
	nd->p = b.data; /* off is 0: nothing was consumed */
	nd->n = buf_size(&b);
	nd->secret = idx;
	h->first[nd->p[0]] = 1;
	return 0;
}

struct hx *hx_new(const struct hx_config *c)
{
	struct hx *h;

	if (c->nsecrets > HX_MAX_SECRETS || (c->nsecrets && !c->secrets)) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < c->nsecrets; i++) {
		const struct hx_secret *s = &c->secrets[i];

		if (!s->name || !valid_placeholder(s->placeholder) || !s->value || !s->value_len ||
		    s->value_len > HX_MAX_VALUE) {
			errno = EINVAL;
			return NULL;
		}
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->c = *c;
	h->needles = calloc(4 * c->nsecrets + 1, sizeof(*h->needles));
	if (!h->needles) {
		free(h);
		return NULL;
	}
	for (size_t i = 0; i < c->nsecrets; i++) {
		if (add_needle(h, &c->secrets[i], i, ENC_RAW) < 0 ||
		    add_needle(h, &c->secrets[i], i, ENC_JSON) < 0 ||
		    add_needle(h, &c->secrets[i], i, ENC_JSON_SLASH) < 0 ||
		    add_needle(h, &c->secrets[i], i, ENC_PCT) < 0) {
			hx_free(h);
			errno = ENOMEM;
			return NULL;
		}
	}
	return h;
}

static void body_free(struct body *b)
{
	buf_free(&b->line);
	buf_free(&b->trailers);
	buf_free(&b->hold);
}

void hx_free(struct hx *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nneedles; i++)
		free(h->needles[i].p);
	free(h->needles);
	for (size_t i = 0; i < HX_MAX_CREDS; i++) {
		for (size_t f = 0; f < 2; f++) {
			buf_free(&h->creds[i].up[f]);
			buf_free(&h->creds[i].guest[f]);
		}
	}
	buf_free(&h->rin);
	buf_free(&h->rout);
	buf_free(&h->sin);
	buf_free(&h->sout);
	buf_free(&h->tmp);
	body_free(&h->rb);
	body_free(&h->sb);
	free(h);
}

const struct hx_violation *hx_violation(const struct hx *h)
{
	return h->have_viol ? &h->viol : NULL;
}

bool hx_opaque(const struct hx *h)
{
	return h->rs == RS_OPAQUE;
}
