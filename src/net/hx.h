/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.x secret substitution on an intercepted connection: placeholders in
 * the guest's requests become the real values upstream, real values in the
 * responses become placeholders again. A pure, streaming, bounded engine over
 * plaintext; hx.c explains the rules.
 */
#ifndef MSB_NET_HX_H
#define MSB_NET_HX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Limits: a larger head is refused (431), more headers too (400). */
#define HX_MAX_HEAD	   65536 /* request line or status line + headers + blank line */
#define HX_MAX_HEADERS	   100
#define HX_BODY_BUFFER	   65536 /* Content-Length bodies up to this are re-framed exactly */
#define HX_MAX_SECRETS	   64	 /* hx_audit.secrets is a bit set */
#define HX_MAX_VALUE	   8192	 /* bytes of one secret's value */
#define HX_MAX_PENDING	   16	 /* pipelined requests awaiting their response */
#define HX_AUDIT_PATH	   512	 /* hx_audit.path is cut to this (NUL included) */
#define HX_AUDIT_HOST	   256
#define HX_PLACEHOLDER_LEN 43	 /* "msb-secret-" and 32 lowercase hex digits */
#define HX_MAX_CREDS	   8	 /* Basic credentials remembered for the responses */
#define HX_MAX_CRED	   16384 /* base64 bytes of one, as sent and as it went up */

/* What hx_request() and friends return. */
enum hx_rc {
	HX_OK = 0,
	HX_VIOLATION = 1, /* block mode: a 403 went to @guest; send it, then close both sides */
	HX_BAD = 2,	  /* malformed or too large: a 400/413/431/502 went to @guest; close */
	HX_NOMEM = 3,	  /* out of memory: close both sides */
};

/*
 * struct hx_secret - one secret as the connection's policy sees it.
 * @name:	 the environment variable's name (logs and 403 bodies only)
 * @placeholder: what the guest holds: "msb-secret-" + 32 lowercase hex digits
 * @value:	 the real value, @value_len bytes (never logged); at most
 *		 HX_MAX_VALUE, never empty
 * @headers:	 NULL: substituted in the target, every header and bodies;
 *		 else a NULL-terminated list of lowercase header names, the only
 *		 places it is substituted (Basic credentials in them included)
 * @allowed:	 this connection may carry it (the caller checked SNI, the DNS
 *		 pin and the upstream certificate)
 * @why_not:	 when !@allowed, the reason, e.g. "api.other.test is not a host of API_KEY"
 */
struct hx_secret {
	const char *name;
	const char *placeholder;
	const uint8_t *value;
	size_t value_len;
	const char *const *headers;
	bool allowed;
	const char *why_not;
};

/*
 * struct hx_violation - a placeholder that may not go where the guest sent it.
 * @secret:	    index in hx_config.secrets
 * @name:	    that secret's name
 * @reason:	    why, printable ASCII ("Host header a.test differs from the TLS name b.test")
 * @sni:	    the connection's TLS name, NULL for plain HTTP
 * @host:	    the request's Host header, printable ASCII, "" when it had none
 * @blocked:	    block mode: a 403 is queued for the guest and nothing more goes upstream
 * @upstream_dirty: blocked after part of the request went upstream (mid-body):
 *		    the caller must reset the upstream connection, not just close it
 */
struct hx_violation {
	size_t secret;
	const char *name;
	char reason[320];
	const char *sni;
	char host[HX_AUDIT_HOST];
	bool blocked;
	bool upstream_dirty;
};

/*
 * struct hx_audit - one completed exchange, for the audit log. Never headers,
 * bodies or values.
 * @method, @host: the request's (printable ASCII; @host "" when none)
 * @path:	   the request target without its query, cut to HX_AUDIT_PATH - 1
 * @status:	   the final response's status code (101 for an upgrade)
 * @request_body:  body bytes the guest sent (payload, before substitution)
 * @response_body: body bytes upstream sent (payload, before substitution)
 * @secrets:	   bit i: hx_config.secrets[i] was substituted into the request
 */
struct hx_audit {
	const char *method;
	const char *host;
	const char *path;
	int status;
	uint64_t request_body;
	uint64_t response_body;
	uint64_t secrets;
};

/*
 * struct hx_config - what one connection's engine works with.
 * @secrets, @nsecrets: at most HX_MAX_SECRETS
 * @sni:	 the TLS server name; NULL for plain HTTP, where every known
 *		 placeholder is a violation
 * @passthrough: --on-secret-violation passthrough: a violating placeholder
 *		 goes upstream unchanged (and is reported) instead of blocking
 * @audit:	 called once per completed response (may be NULL)
 * @violation:	 called for each violation, in both modes, once per secret
 *		 and request (may be NULL)
 * @ctx:	 passed to both callbacks
 * @unframed:	 HTTP/2 (h2x.c): bodies come out without HTTP/1 framing, no
 *		 chunked encoding and no Transfer-Encoding line, the caller
 *		 frames them; a body held whole still gets its Content-Length
 */
struct hx_config {
	const struct hx_secret *secrets;
	size_t nsecrets;
	const char *sni;
	bool passthrough;
	bool unframed;
	void (*audit)(void *ctx, const struct hx_audit *a);
	void (*violation)(void *ctx, const struct hx_violation *v);
	void *ctx;
};

struct hx;

/*
 * hx_new() - an engine for one connection. @c is copied; the strings, values
 * and header lists it points to are not and must outlive the engine.
 * Return: newly allocated (free with hx_free()), or NULL with errno EINVAL
 * (a malformed placeholder, an empty or too long value, too many secrets) or ENOMEM.
 */
struct hx *hx_new(const struct hx_config *c);
void hx_free(struct hx *h);

/*
 * hx_request() - @n bytes the guest sent (any split). Rewritten requests are
 * appended to @up; a request head goes up only once it is complete and
 * checked. HX_VIOLATION and HX_BAD append a complete error response to
 * @guest and are sticky: later calls discard their input and return the same.
 * Call it with @n 0 after hx_response() too: bytes the guest sent after an
 * Upgrade request are held until the response decides what they are.
 * Return: enum hx_rc.
 */
int hx_request(struct hx *h, const uint8_t *p, size_t n, struct buf *up, struct buf *guest);

/*
 * hx_response() - @n bytes upstream sent (any split). Responses, with every
 * secret's value (raw, JSON-escaped or percent-encoded) replaced by its
 * placeholder, and the base64 text of each of the last HX_MAX_CREDS Basic
 * credentials that went up with a value in it replaced by the text the guest
 * sent, are appended to @guest. HX_BAD appends a 502 when nothing of the
 * broken response reached @guest yet. Return: enum hx_rc.
 */
int hx_response(struct hx *h, const uint8_t *p, size_t n, struct buf *guest);

/* hx_request_end() - the guest closed its side: held bytes of a body go up. Return: enum hx_rc. */
int hx_request_end(struct hx *h, struct buf *up, struct buf *guest);

/*
 * hx_response_end() - upstream closed: a close-delimited body ends here.
 * Return: HX_BAD when a response was cut short, else enum hx_rc.
 */
int hx_response_end(struct hx *h, struct buf *guest);

/*
 * hx_response_text() - @n bytes of a response field that travels outside the
 * message the engine frames (an HTTP/2 trailer's value), with every value
 * and remembered credential replaced as in a response, appended to @out.
 */
void hx_response_text(struct hx *h, const uint8_t *p, size_t n, struct buf *out);

/* hx_violation() - the last violation, NULL if none yet. Valid until the next call. */
const struct hx_violation *hx_violation(const struct hx *h);

/*
 * hx_opaque() - a 101 response switched the connection to another protocol:
 * from now on bytes pass both ways unchanged, with no substitution and no
 * scanning (WebSocket frames are masked or length-prefixed, so neither can
 * be rewritten in place).
 */
bool hx_opaque(const struct hx *h);

#endif
