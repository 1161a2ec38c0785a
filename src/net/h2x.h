/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/2 on an intercepted connection: the guest's HTTP/2 connection is
 * answered by an nghttp2 server session, the upstream is reached by an
 * nghttp2 client session, and each stream's request and response go through
 * a secret-substitution engine of their own (hx.h). A pure engine over
 * plaintext, like hx: tls.c moves its bytes; h2x.c explains the mapping.
 */
#ifndef MSB_NET_H2X_H
#define MSB_NET_H2X_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/hx.h"
#include "util/buf.h"

/* Streams the guest may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
#define H2X_MAX_STREAMS 32
/*
 * Each stream's flow-control window, both sessions: the most a stream holds
 * in msb before its peer must wait. Larger than HX_BODY_BUFFER, which a
 * request body with a Content-Length is held whole up to.
 */
#define H2X_STREAM_WINDOW (256u << 10)
/*
 * What the streams' requests together may hold before the guest is read no
 * more: a value longer than its placeholder makes a request grow as it is
 * substituted, beyond what the windows count. (Responses only shrink, and
 * the windows bound them; the server is read on, its WINDOW_UPDATEs too.)
 */
#define H2X_HOLD_MAX ((size_t)4 << 20)

struct h2x;

/*
 * h2x_new() - an engine for one connection; each stream gets an hx engine
 * made from @c (copied; what it points to must outlive the engine, as for
 * hx_new()). Return: the engine, or NULL (ENOMEM, or EINVAL from hx).
 */
struct h2x *h2x_new(const struct hx_config *c);
void h2x_free(struct h2x *x);

/*
 * h2x_guest() / h2x_upstream() - @n plaintext bytes from that side.
 * Return: 0, or -1 when the connection is broken (a protocol error of the
 * guest's or the server's, out of memory): close both sides.
 */
int h2x_guest(struct h2x *x, const uint8_t *p, size_t n);
int h2x_upstream(struct h2x *x, const uint8_t *p, size_t n);

/* h2x_upstream_end() - the server closed: streams still waiting get a 502 or a reset. */
void h2x_upstream_end(struct h2x *x);

/*
 * h2x_send() - frames for each side, appended to @up and @guest while each
 * holds less than @max bytes. Return: 0 or -1 (as h2x_guest()).
 */
int h2x_send(struct h2x *x, struct buf *up, struct buf *guest, size_t max);

/*
 * h2x_done() - the connection is over: a violation or the server's end sent
 * the guest a GOAWAY, and every stream it left open has been answered.
 */
bool h2x_done(const struct h2x *x);

/* h2x_can_take() - the requests hold less than H2X_HOLD_MAX: read the guest on. */
bool h2x_can_take(const struct h2x *x);

/* h2x_want_upstream() - the upstream session still reads or writes. */
bool h2x_want_upstream(const struct h2x *x);

#endif
