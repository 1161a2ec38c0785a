// SPDX-License-Identifier: Apache-2.0
/*
 * TCP: every guest connection is terminated here and carried on an ordinary
 * host socket.
 *
 * DOC: Theory of Operation
 * A SYN from the guest creates a flow only if the policy allows the
 * destination and --max-connections has room; the host socket connects
 * without blocking and only when it has connected does the guest get its
 * SYN-ACK (a refused connection is a RST, as if the remote had refused it).
 * From then on the flow relays two bounded byte queues:
 * - guest -> host (g2h): segments in order are appended and written to the
 *   socket as it takes them; the window advertised to the guest is the room
 *   left in g2h, so the guest never sends more than can be held;
 * - host -> guest (h2g): the socket is read only into the room h2g has;
 *   segments of at most the guest's MSS and within its window are sent, and
 *   kept until the guest acknowledges them (retransmitted after an RTO,
 *   doubling, given up after TCP_MAX_RETRIES).
 * So a flow holds at most TCP_BUF each way whatever the peers do, and a
 * guest that stops reading stalls only its own connection. FINs are relayed
 * as shutdown(SHUT_WR) and EOF; a RST either way ends both sides. Published
 * ports run the same machine the other way round: accept(), the policy for
 * ingress, our SYN to the guest, its SYN-ACK.
 *
 * DNS over TCP (port 53, any address) is a flow without a host socket:
 * whole messages go to the resolver (dnsfwd.c), at most DNS_TCP_OWED
 * queries owed an answer at a time, the others waiting in a g2h of only
 * DNS_TCP_RX; answers the guest does not take count against a global
 * budget; a flow that makes no progress for DNS_TCP_IDLE_MS ends, and its
 * zero-window probes are retries like any other. So a guest holding many
 * such flows with a closed window holds little (docs/network.md, Bounds).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/dns.h"
#include "net/stack.h"
#include "net/tls.h"
#include "util/log.h"

/* A handshake (the host's connect(), the guest's answer to our SYN) ends within this. */
#define CONNECT_TIMEOUT_MS 30000

/* Sequence comparisons modulo 2^32. */
static bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

static uint32_t random32(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint32_t)net_now() * 2654435761u;
	return v;
}

static unsigned int slot_of(const struct net *n, const struct tcp_flow *f)
{
	return (unsigned int)(f - n->tcp);
}

/* The MSS we offer: the MTU minus the headers of the flow's family. */
static uint16_t our_mss(const struct tcp_flow *f)
{
	return (uint16_t)(NET_MTU - (ip_is4(&f->e.guest) ? 40 : 60));
}

/* What g2h may hold: DNS over TCP only ever needs room for a query or two. */
static size_t g2h_cap(const struct tcp_flow *f)
{
	return f->dns ? DNS_TCP_RX : TCP_BUF;
}

/* The window we advertise: the room left in g2h, scaled as agreed. */
static uint16_t adv_window(struct tcp_flow *f)
{
	size_t cap = g2h_cap(f), room = cap > buf_size(&f->g2h) ? cap - buf_size(&f->g2h) : 0;
	uint32_t w = f->g_wscale >= 0 ? (uint32_t)(room >> TCP_WSCALE) : (uint32_t)room;

	if (w > 0xffff)
		w = 0xffff;
	f->last_wnd_adv = f->g_wscale >= 0 ? w << TCP_WSCALE : w;
	return (uint16_t)w;
}

static void send_seg(struct net *n, struct tcp_flow *f, uint32_t seq, uint8_t flags,
		     const void *data, size_t dlen)
{
	bool syn = flags & TCP_SYN;
	size_t len = frame_tcp(net_framebuf(n), NET_FRAME_MAX, &f->e, seq, f->g_next, flags,
			       adv_window(f), syn ? our_mss(f) : 0,
			       syn && f->g_wscale >= 0 ? TCP_WSCALE : -1, data, dlen);

	if (len)
		net_emit(n, len);
}

static void send_ack(struct net *n, struct tcp_flow *f)
{
	send_seg(n, f, f->h_nxt, TCP_ACK, NULL, 0);
}

/* A RST for a segment that belongs to no flow (or one we refuse). */
static void reset_for(struct net *n, const struct pkt *p)
{
	struct tcp_flow tmp = { .g_wscale = -1 };
	uint32_t seq = 0, ack = p->seq + (uint32_t)p->dlen + ((p->flags & TCP_SYN) ? 1 : 0) +
				((p->flags & TCP_FIN) ? 1 : 0);
	uint8_t flags = TCP_RST | TCP_ACK;
	size_t len;

	if (p->flags & TCP_RST)
		return;
	net_ends_from(n, p, &tmp.e);
	if (p->flags & TCP_ACK) {
		seq = p->ack;
		flags = TCP_RST;
		ack = 0;
	}
	len = frame_tcp(net_framebuf(n), NET_FRAME_MAX, &tmp.e, seq, ack, flags, 0, 0, -1, NULL, 0);
	if (len)
		net_emit(n, len);
}

static void rearm(struct net *n, struct tcp_flow *f)
{
	uint32_t want = 0;

	if (f->fd < 0)
		return;
	if (f->state == TS_CONNECTING)
		want = EPOLLOUT;
	else if (f->state == TS_ESTABLISHED && f->ix)
		want = ix_events(f);
	else if (f->state == TS_ESTABLISHED) {
		if (!f->host_eof && buf_size(&f->h2g) < TCP_BUF)
			want |= EPOLLIN;
		if (buf_size(&f->g2h))
			want |= EPOLLOUT;
	}
	net_watch_fd(n, f->fd, NET_REF(NR_TCP, slot_of(n, f)), want, &f->ev);
}

static void hash_del(struct net *n, struct tcp_flow *f);

static void flow_free(struct net *n, struct tcp_flow *f)
{
	unsigned int slot = slot_of(n, f);

	if (f->dns)
		n->dns_tx -= buf_size(&f->h2g);
	ix_detach(f);
	if (f->fd >= 0) {
		if (f->ev)
			epoll_ctl(n->ep, EPOLL_CTL_DEL, f->fd, NULL);
		close(f->fd);
		f->fd = -1;
		net_fd_closed(n, NFD_TCP);
	}
	buf_free(&f->g2h);
	buf_free(&f->h2g);
	if (f->inbound)
		nat_release(n, f->e.remote_port);
	if (f->state != TS_FREE)
		hash_del(n, f);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	n->tcp_gen[slot]++;
	n->ntcp--;
	while (n->tcp_hi && n->tcp[n->tcp_hi - 1].state == TS_FREE)
		n->tcp_hi--;
}

/* Both ways at once: the host socket is reset (not closed gracefully), the guest gets RST. */
static void abort_flow(struct net *n, struct tcp_flow *f, bool tell_guest)
{
	if (f->fd >= 0) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (tell_guest && f->state != TS_FREE)
		send_seg(n, f, f->h_nxt, TCP_RST | TCP_ACK, NULL, 0);
	flow_free(n, f);
}

/* Flows are found by their ends through a chained hash: one bucket per hash, slots linked. */
static unsigned int bucket(const struct ipaddr *remote, uint16_t rport, uint16_t gport)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(remote->b); i++)
		h = (h ^ remote->b[i]) * 16777619u;
	h = (h ^ rport) * 16777619u;
	h = (h ^ gport) * 16777619u;
	return h % TCP_HASH;
}

static void hash_add(struct net *n, struct tcp_flow *f)
{
	unsigned int b = bucket(&f->e.remote, f->e.remote_port, f->e.guest_port);

	f->hnext = n->tcp_hash[b];
	n->tcp_hash[b] = (int32_t)slot_of(n, f);
}

static void hash_del(struct net *n, struct tcp_flow *f)
{
	unsigned int b = bucket(&f->e.remote, f->e.remote_port, f->e.guest_port);
	int32_t *pp = &n->tcp_hash[b], slot = (int32_t)slot_of(n, f);

	while (*pp >= 0) {
		if (*pp == slot) {
			*pp = f->hnext;
			return;
		}
		pp = &n->tcp[*pp].hnext;
	}
}

static struct tcp_flow *lookup(struct net *n, const struct pkt *p)
{
	for (int32_t i = n->tcp_hash[bucket(&p->dst, p->dport, p->sport)]; i >= 0;
	     i = n->tcp[i].hnext) {
		struct tcp_flow *f = &n->tcp[i];

		if (f->e.guest_port == p->sport && f->e.remote_port == p->dport &&
		    !memcmp(&f->e.remote, &p->dst, sizeof(p->dst)) &&
		    !memcmp(&f->e.guest, &p->src, sizeof(p->src)))
			return f;
	}
	return NULL;
}

/* A free slot; hash_add() it once its ends are set. */
static struct tcp_flow *flow_new(struct net *n)
{
	/* The lowest free slot: scans stop at tcp_hi, the end of the used ones. */
	for (unsigned int i = 0; i < TCP_MAX_FLOWS; i++) {
		struct tcp_flow *f = &n->tcp[i];

		if (f->state == TS_FREE) {
			memset(f, 0, sizeof(*f));
			f->fd = -1;
			f->g_wscale = -1;
			f->hnext = -1;
			f->rto_ms = 3 * (uint64_t)TCP_RTO_MIN_MS;
			if (i + 1 > n->tcp_hi)
				n->tcp_hi = i + 1;
			n->ntcp++;
			return f;
		}
	}
	return NULL;
}

static void arm_rto(struct net *n, struct tcp_flow *f)
{
	f->rto_at = seq_lt(f->h_una, f->h_nxt) ? n->now + f->rto_ms : 0;
}

/* Sends what h2g holds beyond what is in flight, within the guest's window; then FIN. */
static void push(struct net *n, struct tcp_flow *f)
{
	if (f->state != TS_ESTABLISHED)
		return;
	for (;;) {
		uint32_t inflight = f->h_nxt - f->h_una - (f->fin_sent ? 1 : 0);
		size_t have = buf_size(&f->h2g), unsent, seg;

		if (n->link_full || inflight >= have)
			break;
		unsent = have - inflight;
		if (inflight >= f->g_wnd)
			break;
		seg = f->g_wnd - inflight;
		if (seg > unsent)
			seg = unsent;
		if (seg > f->g_mss)
			seg = f->g_mss;
		send_seg(n, f, f->h_nxt, TCP_ACK | TCP_PSH, buf_head(&f->h2g) + inflight, seg);
		f->h_nxt += (uint32_t)seg;
		if (!f->rto_at)
			arm_rto(n, f);
	}
	/* Data waits for a closed window: probe it, or a lost window update stalls us forever. */
	if (!f->rto_at && !f->g_wnd &&
	    f->h_nxt - f->h_una - (f->fin_sent ? 1 : 0) < buf_size(&f->h2g))
		f->rto_at = n->now + f->rto_ms;
	/* Everything sent and the host is done: our FIN. */
	if (f->host_eof && !f->fin_sent && !n->link_full &&
	    f->h_nxt - f->h_una == buf_size(&f->h2g)) {
		send_seg(n, f, f->h_nxt, TCP_ACK | TCP_FIN, NULL, 0);
		f->h_nxt++;
		f->fin_sent = true;
		arm_rto(n, f);
	}
}

/* Writes g2h to the socket; after the guest's FIN and the last byte, shuts the socket's writes. */
static int flush_g2h(struct net *n, struct tcp_flow *f)
{
	size_t before = buf_size(&f->g2h);

	while (buf_size(&f->g2h) && f->fd >= 0) {
		ssize_t w = send(f->fd, buf_head(&f->g2h), buf_size(&f->g2h), MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0)
			return -errno;
		buf_consume(&f->g2h, (size_t)w);
	}
	if (f->guest_fin && !f->wr_shut && !buf_size(&f->g2h) && f->fd >= 0) {
		shutdown(f->fd, SHUT_WR);
		f->wr_shut = true;
	}
	/* Room opened up after a stall: tell the guest, or it waits for a timer. */
	if (before && buf_size(&f->g2h) < before && f->last_wnd_adv < TCP_BUF / 4)
		send_ack(n, f);
	return 0;
}

/*
 * The guest's bytes onwards: through the interception or scan when the flow
 * has one (which also reads the host for it), else straight to the socket.
 */
static int carry(struct net *n, struct tcp_flow *f)
{
	if (f->ix) {
		size_t before = buf_size(&f->g2h);

		if (ix_pump(n, f) < 0)
			return -1;
		if (f->ix) {
			if (before && buf_size(&f->g2h) < before && f->last_wnd_adv < TCP_BUF / 4)
				send_ack(n, f);
			return 0;
		}
	}
	return flush_g2h(n, f);
}

/* The answer to the guest's SYN once the host connected. */
static void connected(struct net *n, struct tcp_flow *f)
{
	int err = 0;
	socklen_t sl = sizeof(err);

	if (f->fd >= 0 && getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
		err = errno;
	if (!err && f->fd >= 0) {
		struct sockaddr_storage peer;
		socklen_t pl = sizeof(peer);

		/* Not connected yet (a stale event): wait for the real one. */
		if (getpeername(f->fd, (struct sockaddr *)&peer, &pl) < 0 && errno == ENOTCONN)
			return;
	}
	if (err == EINPROGRESS)
		return;
	if (err) {
		/* Refused, unreachable: the guest hears it as the remote's reset. */
		send_seg(n, f, 0, TCP_RST | TCP_ACK, NULL, 0);
		flow_free(n, f);
		return;
	}
	f->state = TS_SYN_RCVD;
	f->h_una = f->h_isn;
	f->h_nxt = f->h_isn + 1;
	send_seg(n, f, f->h_isn, TCP_SYN | TCP_ACK, NULL, 0);
	arm_rto(n, f);
	rearm(n, f);
}

static int open_host_socket(struct net *n, struct tcp_flow *f)
{
	struct sockaddr_storage ss;
	socklen_t sl = net_sockaddr(n, &f->e.remote, f->e.remote_port, &ss);
	int one = 1;

	f->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0)
		return -errno;
	net_fd_opened(n, NFD_TCP);
	setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(f->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS)
		return -errno;
	return 0;
}

/* A SYN: a new connection, if the policy and the limits allow it. */
static void syn(struct net *n, const struct pkt *p)
{
	bool dns = p->dport == 53;
	struct tcp_flow *f;

	/*
	 * DNS over TCP is answered here (no policy, no host socket) but it is a
	 * connection the guest holds: --max-connections counts it.
	 */
	if (!net_conn_room(n) ||
	    (!dns && (!net_allowed(n, NET_EGRESS, NET_TCP, &p->dst, p->dport) ||
		      !net_fd_room(n, NFD_TCP)))) {
		reset_for(n, p);
		return;
	}
	f = flow_new(n);
	if (!f) {
		reset_for(n, p);
		return;
	}
	net_ends_from(n, p, &f->e);
	f->state = TS_CONNECTING;
	hash_add(n, f);
	f->g_next = p->seq + 1;
	f->g_wscale = p->wscale;
	f->g_mss = p->mss ? p->mss : 536;
	if (f->g_mss > our_mss(f))
		f->g_mss = our_mss(f);
	f->g_wnd = p->window; /* a SYN's window is never scaled */
	f->h_isn = random32();
	f->idle_at = n->now + CONNECT_TIMEOUT_MS;
	if (dns) {
		/* DNS over TCP, to any address: answered by our resolver, no host socket. */
		f->dns = true;
		connected(n, f);
		return;
	}
	if (open_host_socket(n, f) < 0 || ix_attach(n, f) < 0) {
		reset_for(n, p);
		flow_free(n, f);
		return;
	}
	rearm(n, f);
}

/*
 * DNS over TCP after the guest's FIN: our FIN once every query it sent is
 * answered (a client may half-close right after asking).
 */
static void dns_finish(struct net *n, struct tcp_flow *f)
{
	unsigned int slot = slot_of(n, f);

	if (f->guest_fin && !f->host_eof && !buf_size(&f->g2h) &&
	    !dns_pending_tcp(n, (int)slot, n->tcp_gen[slot]) && !f->dns_over) {
		f->host_eof = true;
		push(n, f);
	}
}

/* A DNS-over-TCP flow went over a bound: reset (counted, logged). */
static void dns_over(struct net *n, struct tcp_flow *f, const char *why)
{
	n->stats.dns_tcp_reset++;
	log_warn_rl("network: dns over tcp: %s; connection reset (%llu so far)", why,
		    (unsigned long long)n->stats.dns_tcp_reset);
	abort_flow(n, f, true);
}

/* Queries of DNS flow @f owed an answer: asked upstream, or answered and not acknowledged. */
static unsigned int dns_owed(const struct net *n, const struct tcp_flow *f)
{
	unsigned int slot = slot_of(n, f);

	return dns_pending_tcp(n, (int)slot, n->tcp_gen[slot]) + f->dns_nans;
}

/*
 * DNS over TCP: whole messages (2-byte length, then the message) go to the
 * resolver, while fewer than DNS_TCP_OWED are owed an answer; the rest wait
 * in g2h, whose bounded room is the guest's window. Return: whether any was taken.
 */
static bool dns_stream(struct net *n, struct tcp_flow *f)
{
	unsigned int slot = slot_of(n, f);
	uint32_t gen = n->tcp_gen[slot];
	bool took = false;
	size_t len;
	int r = 0;

	if (f->dns_busy)
		return false; /* an answer inside dns_query(): the loop below goes on by itself */
	f->dns_busy = true;
	/* An empty g2h (a bare FIN) may have no memory: buf_head() is then NULL + 0. */
	while (buf_size(&f->g2h) >= 2 && dns_owed(n, f) < DNS_TCP_OWED && !f->dns_over) {
		if ((size_t)(buf_head(&f->g2h)[0] << 8 | buf_head(&f->g2h)[1]) >
		    DNS_TCP_QUERY_MAX) {
			r = -EMSGSIZE; /* no query is that long, and it would never fit g2h */
			break;
		}
		r = dns_tcp_frame(buf_head(&f->g2h), buf_size(&f->g2h), &len);
		if (r != 1)
			break;
		dns_query(n, buf_head(&f->g2h) + 2, len, &f->e, (int)slot, gen);
		buf_consume(&f->g2h, 2 + len);
		f->idle_at = n->now + DNS_TCP_IDLE_MS;
		took = true;
	}
	f->dns_busy = false;
	if (r < 0) {
		abort_flow(n, f, true);
		return took;
	}
	if (f->dns_over) {
		dns_over(n, f, "answers over their bound");
		return took;
	}
	if (f->guest_fin) {
		/* The guest is done asking: a partial message can never complete. */
		if (buf_size(&f->g2h) < 2 ||
		    dns_tcp_frame(buf_head(&f->g2h), buf_size(&f->g2h), &len) != 1)
			buf_clear(&f->g2h);
		dns_finish(n, f);
	}
	return took;
}

/* More queries may be taken (an answer was acknowledged, a query finished): the window reopens. */
static void dns_resume(struct net *n, struct tcp_flow *f)
{
	if (f->dns_busy || !buf_size(&f->g2h))
		return;
	if (dns_stream(n, f) && f->state != TS_FREE && f->last_wnd_adv < DNS_TCP_RX / 2)
		send_ack(n, f);
}

/* The guest's data and FIN, in order; what does not fit the window is left for a retransmission. */
static void data_in(struct net *n, struct tcp_flow *f, const struct pkt *p)
{
	const uint8_t *d = p->data;
	size_t dlen = p->dlen;
	uint32_t seq = p->seq;
	bool ack = false;

	if (dlen && seq_lt(seq, f->g_next)) {
		/* Partly seen before: skip what we have. */
		uint32_t skip = f->g_next - seq;

		if (skip >= dlen) {
			dlen = 0;
		} else {
			d += skip;
			dlen -= skip;
		}
		seq = f->g_next;
		ack = true;
	}
	if (seq != f->g_next) {
		/* A gap (the virtual link loses nothing; the guest is confused): say where we are.
		 */
		send_ack(n, f);
		return;
	}
	if (dlen && !f->guest_fin) {
		size_t cap = g2h_cap(f),
		       room = cap > buf_size(&f->g2h) ? cap - buf_size(&f->g2h) : 0;
		size_t take = dlen < room ? dlen : room;

		if (take && buf_append(&f->g2h, d, take) == 0) {
			f->g_next += (uint32_t)take;
			ack = true;
		}
		if (take < dlen) {
			send_ack(n, f);
			return; /* the rest, and any FIN, come again */
		}
	}
	if ((p->flags & TCP_FIN) && !f->guest_fin) {
		f->guest_fin = true;
		f->g_next++;
		ack = true;
	}
	if (f->dns) {
		dns_stream(n, f);
		if (f->state == TS_FREE)
			return; /* a malformed stream reset it: the slot is no flow any more */
	} else if (carry(n, f) < 0) {
		abort_flow(n, f, true);
		return;
	}
	if (ack)
		send_ack(n, f);
}

/* The guest acknowledged @a: drop what it has, reopen its window. */
static void ack_in(struct net *n, struct tcp_flow *f, const struct pkt *p)
{
	uint32_t a = p->ack;

	f->g_wnd = f->g_wscale >= 0 ? (uint32_t)p->window << f->g_wscale : p->window;
	if (seq_lt(f->h_una, a) && seq_le(a, f->h_nxt)) {
		uint32_t acked = a - f->h_una;

		if (f->fin_sent && a == f->h_nxt) {
			f->fin_acked = true;
			acked--;
		}
		if (acked > buf_size(&f->h2g))
			acked = (uint32_t)buf_size(&f->h2g);
		buf_consume(&f->h2g, acked);
		f->h_una = a;
		if (f->dns) {
			/* Answers the guest has now: no longer owed, nor held. */
			n->dns_tx -= acked;
			while (f->dns_nans && seq_le(f->dns_ans_end[0], a)) {
				f->dns_ans_end[0] = f->dns_ans_end[1];
				f->dns_nans--;
			}
			if (acked)
				f->idle_at = n->now + DNS_TCP_IDLE_MS;
		}
		f->retries = 0;
		f->rto_ms = 3 * (uint64_t)TCP_RTO_MIN_MS;
		f->rto_at = 0;
		arm_rto(n, f);
	}
}

void tcp_input(struct net *n, const struct pkt *p)
{
	struct tcp_flow *f = lookup(n, p);

	if (!f) {
		if ((p->flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN)
			syn(n, p);
		else
			reset_for(n, p);
		return;
	}
	if (p->flags & TCP_RST) {
		abort_flow(n, f, false);
		return;
	}
	switch (f->state) {
	case TS_CONNECTING:
		return; /* the guest's SYN again: it gets its answer when the host has connected */
	case TS_SYN_SENT:
		/* Published port: the guest's SYN-ACK to our SYN. */
		if ((p->flags & (TCP_SYN | TCP_ACK)) != (TCP_SYN | TCP_ACK) ||
		    p->ack != f->h_isn + 1) {
			abort_flow(n, f, true);
			return;
		}
		f->g_next = p->seq + 1;
		f->g_wscale = p->wscale;
		f->g_mss = p->mss ? p->mss : 536;
		if (f->g_mss > our_mss(f))
			f->g_mss = our_mss(f);
		f->h_una = f->h_nxt = f->h_isn + 1;
		f->state = TS_ESTABLISHED;
		f->idle_at = 0;
		/* A SYN-ACK's window is never scaled (RFC 7323 2.2); ack_in() would scale it. */
		f->g_wnd = p->window;
		f->rto_at = 0;
		send_ack(n, f);
		rearm(n, f);
		return;
	case TS_SYN_RCVD:
		if (p->flags & TCP_SYN) {
			/* Our SYN-ACK was lost? Say it again. */
			send_seg(n, f, f->h_isn, TCP_SYN | TCP_ACK, NULL, 0);
			return;
		}
		if (!(p->flags & TCP_ACK) || p->ack != f->h_isn + 1)
			return;
		f->h_una = f->h_nxt;
		f->rto_at = 0;
		f->state = TS_ESTABLISHED;
		/* DNS over TCP ends when the guest makes no progress; other flows never idle. */
		f->idle_at = f->dns ? n->now + DNS_TCP_IDLE_MS : 0;
		break;
	default:
		break;
	}
	if (p->flags & TCP_ACK)
		ack_in(n, f, p);
	if (p->dlen || (p->flags & TCP_FIN))
		data_in(n, f, p);
	if (f->state == TS_FREE)
		return;
	if (f->dns) {
		dns_resume(n, f);
		if (f->state == TS_FREE)
			return;
	}
	/* The guest took some of what it was sent: an interception may have more for it. */
	if (f->ix && f->state == TS_ESTABLISHED && !(p->dlen || (p->flags & TCP_FIN)) &&
	    carry(n, f) < 0) {
		abort_flow(n, f, true);
		return;
	}
	/* Both directions finished and acknowledged: nothing left to carry. */
	if (f->guest_fin && f->fin_acked && !buf_size(&f->g2h)) {
		flow_free(n, f);
		return;
	}
	push(n, f);
	rearm(n, f);
}

/* The host socket has data: take what h2g has room for. */
int tcp_recv_host(struct tcp_flow *f)
{
	while (!f->host_eof && buf_size(&f->h2g) < TCP_BUF) {
		size_t room = TCP_BUF - buf_size(&f->h2g);
		uint8_t *p = buf_tail(&f->h2g, room);
		ssize_t r;

		if (!p)
			break;
		r = recv(f->fd, p, room, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			break;
		if (r < 0)
			return -1;
		if (r == 0) {
			f->host_eof = true;
			break;
		}
		buf_commit(&f->h2g, (size_t)r);
	}
	return 0;
}

static void host_read(struct net *n, struct tcp_flow *f)
{
	if (tcp_recv_host(f) < 0) {
		abort_flow(n, f, true);
		return;
	}
	push(n, f);
	rearm(n, f);
}

void tcp_event(struct net *n, unsigned int slot, uint32_t events)
{
	struct tcp_flow *f = &n->tcp[slot];

	if (f->state == TS_FREE || f->fd < 0)
		return;
	if (f->state == TS_CONNECTING) {
		connected(n, f);
		return;
	}
	if (f->ix) {
		if (carry(n, f) < 0) {
			abort_flow(n, f, true);
			return;
		}
		if (f->ix) {
			push(n, f);
			rearm(n, f);
			return;
		}
	}
	if ((events & EPOLLOUT) && flush_g2h(n, f) < 0) {
		abort_flow(n, f, true);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		host_read(n, f);
	else
		rearm(n, f);
}

void tcp_dns_answer(struct net *n, int slot, uint32_t gen, const uint8_t *msg, size_t len)
{
	struct tcp_flow *f;
	uint8_t hdr[2] = { (uint8_t)(len >> 8), (uint8_t)len };

	if (slot < 0 || slot >= TCP_MAX_FLOWS || n->tcp_gen[slot] != gen)
		return; /* the connection is gone */
	f = &n->tcp[slot];
	/* Nothing goes after our FIN (host_eof): it would be sent beyond it. */
	if (f->state != TS_ESTABLISHED || f->host_eof || f->dns_over)
		return;
	/*
	 * A guest that does not take its answers (a zero window) makes us hold
	 * them: at most DNS_TCP_OWED per flow (dns_stream() takes no more
	 * queries) and dns_tx_max in all; past that the flow is reset.
	 */
	if (f->dns_nans >= DNS_TCP_OWED || buf_size(&f->h2g) + len + 2 > TCP_BUF ||
	    n->dns_tx + len + 2 > n->dns_tx_max || buf_reserve(&f->h2g, len + 2) < 0) {
		if (f->dns_busy)
			f->dns_over = true; /* dns_stream() resets it once dns_query() is back */
		else
			dns_over(n, f, "answers the guest does not take are over their bound");
		return;
	}
	buf_append(&f->h2g, hdr, 2);
	buf_append(&f->h2g, msg, len);
	n->dns_tx += len + 2;
	f->dns_ans_end[f->dns_nans++] = f->h_una + (uint32_t)buf_size(&f->h2g);
	f->idle_at = n->now + DNS_TCP_IDLE_MS;
	push(n, f);
}

void tcp_dns_done(struct net *n, int slot, uint32_t gen)
{
	if (slot < 0 || slot >= TCP_MAX_FLOWS || n->tcp_gen[slot] != gen ||
	    n->tcp[slot].state != TS_ESTABLISHED || !n->tcp[slot].dns)
		return;
	dns_resume(n, &n->tcp[slot]);
	if (n->tcp_gen[slot] == gen && n->tcp[slot].state == TS_ESTABLISHED)
		dns_finish(n, &n->tcp[slot]);
}

/* A connection to a published port: our SYN to the guest, from the gateway. */
int tcp_inbound(struct net *n, int fd, const struct net_port *port, uint16_t nat_port)
{
	struct tcp_flow *f = flow_new(n);
	bool v6 = !ip_is4(&port->bind);

	if (!f)
		return -EMFILE;
	memcpy(f->e.guest_mac, n->cfg.guest_mac, 6);
	memcpy(f->e.gw_mac, n->cfg.gw_mac, 6);
	/* The guest is reached on the family it listens on: v4 unless the host side is v6. */
	f->e.guest = v6 ? n->cfg.guest6 : n->cfg.guest4;
	f->e.remote = v6 ? n->cfg.gw6 : n->cfg.gw4;
	f->e.guest_port = port->guest_port;
	f->e.remote_port = nat_port;
	f->fd = fd;
	net_fd_opened(n, NFD_TCP);
	f->inbound = true;
	f->g_wscale = TCP_WSCALE; /* offered in our SYN; the guest's SYN-ACK says what it uses */
	f->g_mss = 536;
	f->h_isn = random32();
	f->h_una = f->h_isn;
	f->h_nxt = f->h_isn + 1;
	f->state = TS_SYN_SENT;
	hash_add(n, f);
	f->idle_at = n->now + CONNECT_TIMEOUT_MS;
	send_seg(n, f, f->h_isn, TCP_SYN, NULL, 0);
	arm_rto(n, f);
	rearm(n, f);
	return 0;
}

void tcp_link_drained(struct net *n)
{
	for (unsigned int i = 0; i < n->tcp_hi && !n->link_full; i++)
		if (n->tcp[i].state == TS_ESTABLISHED)
			push(n, &n->tcp[i]);
}

/* Go back to the oldest unacknowledged byte (or SYN, or FIN) and send again. */
static void retransmit(struct net *n, struct tcp_flow *f)
{
	if (++f->retries > TCP_MAX_RETRIES) {
		abort_flow(n, f, true);
		return;
	}
	f->rto_ms = f->rto_ms * 2 > TCP_RTO_MAX_MS ? TCP_RTO_MAX_MS : f->rto_ms * 2;
	switch (f->state) {
	case TS_SYN_RCVD:
		send_seg(n, f, f->h_isn, TCP_SYN | TCP_ACK, NULL, 0);
		break;
	case TS_SYN_SENT:
		send_seg(n, f, f->h_isn, TCP_SYN, NULL, 0);
		break;
	case TS_ESTABLISHED:
		f->h_nxt = f->h_una;
		f->fin_sent = false; /* push() sends it again after the data */
		if (!f->g_wnd) {
			/* A zero window: an old sequence number makes the guest say its window. */
			send_seg(n, f, f->h_una - 1, TCP_ACK, NULL, 0);
			/*
			 * A closed window is the guest's right, not a failure, for a
			 * connection it holds a host socket for; answers from our own
			 * resolver are not worth keeping for it: its probes count.
			 */
			if (!f->dns)
				f->retries = 0;
		}
		push(n, f);
		break;
	default:
		break;
	}
	f->rto_at = n->now + f->rto_ms;
}

void tcp_timer(struct net *n)
{
	for (unsigned int i = 0; i < n->tcp_hi; i++) {
		struct tcp_flow *f = &n->tcp[i];

		if (f->state == TS_FREE)
			continue;
		if (f->idle_at && n->now >= f->idle_at) {
			/* DNS over TCP: a query still asked upstream has its own deadline. */
			if (f->dns && f->state == TS_ESTABLISHED &&
			    dns_pending_tcp(n, (int)i, n->tcp_gen[i])) {
				f->idle_at = n->now + DNS_TCP_IDLE_MS;
			} else {
				if (f->dns && f->state == TS_ESTABLISHED)
					n->stats.dns_tcp_reset++;
				abort_flow(n, f, true);
				continue;
			}
		}
		if (f->rto_at && n->now >= f->rto_at)
			retransmit(n, f);
	}
}

uint64_t tcp_deadline(const struct net *n)
{
	uint64_t d = 0;

	for (unsigned int i = 0; i < n->tcp_hi; i++) {
		const struct tcp_flow *f = &n->tcp[i];

		if (f->state == TS_FREE)
			continue;
		if (f->rto_at && (!d || f->rto_at < d))
			d = f->rto_at;
		if (f->idle_at && (!d || f->idle_at < d))
			d = f->idle_at;
	}
	return d;
}

void tcp_free_all(struct net *n)
{
	for (unsigned int i = 0; i < n->tcp_hi; i++)
		if (n->tcp[i].state != TS_FREE)
			flow_free(n, &n->tcp[i]);
}
