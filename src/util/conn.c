// SPDX-License-Identifier: Apache-2.0
/* Non-blocking stream connections with bounded queues (see conn.h). */
#include "util/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* One read() asks for at most this much. */
#define CONN_CHUNK ((size_t)64 * 1024)
/* An idle queue that grew beyond this gives its memory back. */
#define CONN_SHRINK_AT ((size_t)1 << 20)

void conn_init(struct conn *c, int fd, size_t tx_hwm, size_t rx_max)
{
	int fl = fcntl(fd, F_GETFL);
	struct stat st;

	*c = (struct conn){ .fd = fd, .tx_hwm = tx_hwm, .rx_max = rx_max };
	c->sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

ssize_t conn_fill(struct conn *c, size_t budget)
{
	size_t got = 0;

	if (c->error)
		return c->error;
	while (got < budget && conn_rx_room(c)) {
		size_t want = c->rx_max - buf_size(&c->rx);
		uint8_t *p;
		ssize_t n;

		if (want > CONN_CHUNK)
			want = CONN_CHUNK;
		if (want > budget - got)
			want = budget - got;
		p = buf_tail(&c->rx, want);
		if (!p)
			return c->error = -ENOMEM;
		n = read(c->fd, p, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return c->error = -errno;
		if (n == 0) {
			c->eof = true;
			break;
		}
		buf_commit(&c->rx, (size_t)n);
		got += (size_t)n;
		if ((size_t)n < want)
			break; /* drained: do not pay for an EAGAIN round trip */
	}
	return (ssize_t)got;
}

int conn_flush(struct conn *c)
{
	if (c->error)
		return c->error;
	while (buf_size(&c->tx)) {
		ssize_t n = c->sock ? send(c->fd, buf_head(&c->tx), buf_size(&c->tx), MSG_NOSIGNAL)
				    : write(c->fd, buf_head(&c->tx), buf_size(&c->tx));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return c->error = -errno;
		buf_consume(&c->tx, (size_t)n);
	}
	if (!buf_size(&c->tx) && c->tx.cap > CONN_SHRINK_AT)
		buf_free(&c->tx);
	return 0;
}

void conn_consume(struct conn *c, size_t n)
{
	buf_consume(&c->rx, n);
	if (!buf_size(&c->rx) && c->rx.cap > CONN_SHRINK_AT)
		buf_free(&c->rx);
}

uint32_t conn_events(const struct conn *c, bool want_input)
{
	uint32_t ev = 0;

	if (c->error)
		return 0;
	if (want_input && conn_rx_room(c))
		ev |= EPOLLIN;
	if (buf_size(&c->tx))
		ev |= EPOLLOUT;
	return ev;
}

int conn_watch(struct conn *c, int ep, uint64_t data, bool want_input)
{
	struct epoll_event e = { .events = conn_events(c, want_input), .data.u64 = data };
	int op;

	if (c->fd < 0 || e.events == c->ev)
		return 0;
	op = !e.events ? EPOLL_CTL_DEL : c->ev ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(ep, op, c->fd, &e) < 0)
		return -errno;
	c->ev = e.events;
	return 0;
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->ev = 0;
	buf_free(&c->rx);
	buf_free(&c->tx);
}
