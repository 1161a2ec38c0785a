/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A non-blocking stream connection with bounded queues, shared by every
 * event loop of msb and agentd (supervisor links, agent port, CLI client).
 *
 * DOC: Theory of Operation
 * Nothing here ever blocks: reads take what is there, up to a per-call
 * budget (so one busy peer cannot starve the loop) and never beyond @rx_max
 * bytes held; writes take what the kernel accepts and keep the rest queued.
 * The queue has a high-water mark: producers ask conn_tx_full() before
 * adding more and hold back (stop reading their own source) while it is
 * true, so memory follows the peer's speed instead of growing with it.
 * EPOLLOUT is wanted only while bytes are queued, EPOLLIN only while the
 * owner wants input and there is room for it.
 */
#ifndef MSB_UTIL_CONN_H
#define MSB_UTIL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

struct conn {
	int fd;
	struct buf rx; /* read, not yet consumed by the owner */
	struct buf tx; /* queued, not yet written */
	size_t tx_hwm; /* conn_tx_full() above this */
	size_t rx_max; /* never hold more than this unconsumed */
	uint32_t ev;   /* epoll interest currently registered */
	bool eof;      /* the peer closed its sending side */
	bool sock;     /* a socket (send() with MSG_NOSIGNAL), else a pipe or device */
	int error;     /* first fatal error (-errno), 0 if none */
};

/* conn_init() - wrap @fd (made non-blocking). Takes ownership of @fd. */
void conn_init(struct conn *c, int fd, size_t tx_hwm, size_t rx_max);

/*
 * conn_fill() - read what is available, at most @budget bytes this call.
 * Return: bytes read (0 when nothing was available or rx is full), or
 * -errno on a fatal error; a closed peer sets @c->eof and returns 0 once
 * nothing is left to read.
 */
ssize_t conn_fill(struct conn *c, size_t budget);

/*
 * conn_flush() - write as much queued data as the kernel takes.
 * Return: 0 (bytes may remain queued), or -errno (also kept in @c->error).
 */
int conn_flush(struct conn *c);

/* conn_tx_full() - true while the queue is at or above its high-water mark. */
static inline bool conn_tx_full(const struct conn *c)
{
	return buf_size(&c->tx) >= c->tx_hwm;
}

/* conn_rx_room() - true while reading more is allowed. */
static inline bool conn_rx_room(const struct conn *c)
{
	return !c->eof && buf_size(&c->rx) < c->rx_max;
}

/* conn_consume() - drop @n bytes the owner has handled from the head of rx. */
void conn_consume(struct conn *c, size_t n);

/* conn_events() - EPOLLIN/EPOLLOUT the connection needs, given whether the owner wants input. */
uint32_t conn_events(const struct conn *c, bool want_input);

/*
 * conn_watch() - keep @c's registration in epoll @ep equal to
 * conn_events(@c, @want_input), with @data as the event's payload.
 * Return: 0 or -errno.
 */
int conn_watch(struct conn *c, int ep, uint64_t data, bool want_input);

/* conn_close() - unregister nothing (close() does that), close the fd and free the queues. */
void conn_close(struct conn *c);

#endif
