// SPDX-License-Identifier: Apache-2.0
/*
 * The gateway's resolver: every DNS query the guest makes, to whatever
 * address, is answered here.
 *
 * DOC: Theory of Operation
 * A query (a UDP datagram to port 53, or a message on a TCP connection to
 * port 53) is parsed by dns_parse_query(); what is not a plain query gets
 * FORMERR or NOTIMP from us and goes nowhere. Then, in order:
 * - host.microsandbox.internal is answered by us: the gateway's address;
 * - a name the policy does not let resolve (policy_dns_allowed()) gets
 *   NXDOMAIN, and the denial is logged: nothing about it leaves the host;
 * - anything else is forwarded to the configured nameservers (the user's
 *   --dns-nameserver, else the host's resolv.conf), one at a time, from a
 *   fresh socket with a random query id, over UDP for a UDP query and over
 *   TCP for a TCP one. The query's whole life is --dns-query-timeout-ms,
 *   shared among the servers still to try; a server that fails or says
 *   nothing in its share passes the query to the next; when none is left,
 *   SERVFAIL.
 * An answer must be the answer to that query (dns_filter_response()); its
 * address records pointing at private, loopback or link-local addresses are
 * removed under rebind protection (NXDOMAIN if nothing is left), and the
 * addresses that remain are pinned to the name for the policy's domain
 * rules. At most DNS_MAX_PENDING queries are in flight; more are refused
 * (SERVFAIL), so a guest cannot make the host hold more.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/dns.h"
#include "net/stack.h"
#include "util/log.h"

#define HOST_NAME_INTERNAL "host.microsandbox.internal"
#define OWN_TTL		   60

static void deliver(struct net *n, const struct frame_ends *e, int tcp, uint32_t gen,
		    const uint8_t *msg, size_t len)
{
	size_t flen;

	if (tcp >= 0) {
		tcp_dns_answer(n, tcp, gen, msg, len);
		return;
	}
	flen = frame_udp(net_framebuf(n), NET_FRAME_MAX, e, msg, len);
	if (flen)
		net_emit(n, flen);
}

/* Our own answer without records: @rcode for @qq, no EDNS (we need none). */
static void answer_rcode(struct net *n, const uint8_t *q, size_t len, const struct dns_question *qq,
			 int rcode, const struct frame_ends *e, int tcp, uint32_t gen)
{
	uint8_t out[DNS_HDR_SIZE + DNS_MAX_NAME_WIRE + 4 + 16];
	size_t olen = dns_build_reply(q, len, qq, rcode, out, sizeof(out));

	if (olen)
		deliver(n, e, tcp, gen, out, olen);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* host.microsandbox.internal: the gateway, A or AAAA; other types get an empty answer. */
static void answer_host(struct net *n, const uint8_t *q, size_t len, struct dns_question qq,
			const struct frame_ends *e, int tcp, uint32_t gen)
{
	uint8_t out[DNS_HDR_SIZE + DNS_MAX_NAME_WIRE + 4 + 12 + 16];
	const struct ipaddr *gw = qq.qtype == DNS_TYPE_A ? &n->cfg.gw4 : &n->cfg.gw6;
	size_t rdlen = qq.qtype == DNS_TYPE_A ? 4 : 16, olen;
	uint8_t *rr;

	qq.edns = false; /* no OPT record: the answer goes last without moving it */
	olen = dns_build_reply(q, len, &qq, DNS_RCODE_NOERROR, out, sizeof(out));
	if (!olen)
		return;
	if ((qq.qtype == DNS_TYPE_A || qq.qtype == DNS_TYPE_AAAA) &&
	    olen + 12 + rdlen <= sizeof(out)) {
		rr = out + olen;
		put16(rr, 0xc000 | DNS_HDR_SIZE); /* the question's name */
		put16(rr + 2, qq.qtype);
		put16(rr + 4, DNS_CLASS_IN);
		put16(rr + 6, 0);
		put16(rr + 8, OWN_TTL);
		put16(rr + 10, (uint16_t)rdlen);
		memcpy(rr + 12, qq.qtype == DNS_TYPE_A ? gw->b + 12 : gw->b, rdlen);
		olen += 12 + rdlen;
		put16(out + 6, 1); /* ANCOUNT */
		out[2] |= DNS_F_AA >> 8;
	}
	deliver(n, e, tcp, gen, out, olen);
}

static void pending_close_fd(struct net *n, struct dns_pending *d)
{
	if (d->fd >= 0) {
		epoll_ctl(n->ep, EPOLL_CTL_DEL, d->fd, NULL);
		close(d->fd);
		d->fd = -1;
		net_fd_closed(n, NFD_DNS);
	}
	d->ev = 0;
	buf_free(&d->rx);
	d->tx_off = 0;
}

static void pending_free(struct net *n, struct dns_pending *d)
{
	int tcp = d->used && d->via_tcp ? d->tcp : -1;
	uint32_t gen = d->tcp_gen;

	pending_close_fd(n, d);
	if (d->used)
		n->ndns--;
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	/* A TCP client that half-closed waits for its last answer; then our FIN. */
	if (tcp >= 0)
		tcp_dns_done(n, tcp, gen);
}

unsigned int dns_pending_tcp(const struct net *n, int tcp, uint32_t gen)
{
	unsigned int count = 0;

	for (unsigned int i = 0, seen = 0; i < DNS_MAX_PENDING && seen < n->ndns; i++) {
		const struct dns_pending *d = &n->dns[i];

		if (!d->used)
			continue;
		seen++;
		if (d->via_tcp && d->tcp == tcp && d->tcp_gen == gen)
			count++;
	}
	return count;
}

static void pending_fail(struct net *n, struct dns_pending *d, int rcode)
{
	struct dns_question qq;

	put16(d->query, d->guest_id);
	if (dns_parse_query(d->query, d->qlen, &qq) == 0)
		answer_rcode(n, d->query, d->qlen, &qq, rcode, &d->e, d->via_tcp ? d->tcp : -1,
			     d->tcp_gen);
	pending_free(n, d);
}

/* Sends the query to server @d->server (a fresh socket); false if it could not be sent. */
static bool send_upstream(struct net *n, struct dns_pending *d)
{
	const struct sockaddr_storage *ss = &n->cfg.dns[d->server];
	socklen_t sl =
		ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	unsigned int left = (unsigned int)(n->cfg.ndns - d->server);
	uint64_t budget = d->deadline_all > n->now ? d->deadline_all - n->now : 0;
	uint32_t cur = 0;

	pending_close_fd(n, d);
	d->upstream_tcp = d->via_tcp;
	d->fd = socket(ss->ss_family,
		       (d->upstream_tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (d->fd < 0)
		return false;
	net_fd_opened(n, NFD_DNS);
	if (connect(d->fd, (const struct sockaddr *)ss, sl) < 0 && errno != EINPROGRESS)
		return false;
	/* A fresh id for every try: answers to an earlier try are not taken. */
	if (getrandom(&d->up_id, sizeof(d->up_id), GRND_NONBLOCK) != sizeof(d->up_id))
		d->up_id = (uint16_t)(n->now * 40503u);
	put16(d->query, d->up_id);
	if (!d->upstream_tcp) {
		if (send(d->fd, d->query, d->qlen, MSG_DONTWAIT) < 0)
			return false;
		net_watch_fd(n, d->fd, NET_REF(NR_DNS, d - n->dns), EPOLLIN, &cur);
	} else {
		net_watch_fd(n, d->fd, NET_REF(NR_DNS, d - n->dns), EPOLLOUT, &cur);
	}
	d->ev = cur;
	d->deadline = n->now + (left ? budget / left : budget);
	return true;
}

/* The current server failed: the next one, or SERVFAIL when none is left or time is up. */
static void next_server(struct net *n, struct dns_pending *d)
{
	while (++d->server < n->cfg.ndns && n->now < d->deadline_all)
		if (send_upstream(n, d))
			return;
	log_debug_rl("network: dns: no answer for %s", d->name);
	pending_fail(n, d, DNS_RCODE_SERVFAIL);
}

struct answer_ctx {
	struct net *n;
};

/* Rebind protection: names may not lead inside (private, loopback, link-local, unroutable). */
static bool rebind_drop(const struct ipaddr *ip, void *ctx)
{
	unsigned int g = ip_groups(ip);

	(void)ctx;
	return !g || (g & (IPG_LOOPBACK | IPG_PRIVATE | IPG_LINK_LOCAL | IPG_METADATA));
}

static void pin(const char *name, const struct ipaddr *ip, uint32_t ttl, void *ctx)
{
	struct answer_ctx *a = ctx;

	pins_add(&a->n->pins, name, ip, ttl, a->n->now);
}

/* An empty answer with TC set, which sends the guest to TCP; the query is done. */
static void send_truncated(struct net *n, struct dns_pending *d, struct dns_question *qq)
{
	uint8_t tc[DNS_HDR_SIZE + DNS_MAX_NAME_WIRE + 4 + 16];
	size_t tl;

	put16(d->query, d->guest_id);
	qq->id = d->guest_id;
	tl = dns_build_reply(d->query, d->qlen, qq, DNS_RCODE_NOERROR, tc, sizeof(tc));
	if (tl) {
		tc[2] |= DNS_F_TC >> 8;
		deliver(n, &d->e, -1, 0, tc, tl);
	}
	pending_free(n, d);
}

/* An upstream answer (@p, @len bytes, in a buffer we may rewrite): checked, filtered, passed on. */
static void got_answer(struct net *n, struct dns_pending *d, uint8_t *p, size_t len)
{
	struct answer_ctx a = { .n = n };
	struct dns_question qq;
	size_t out_len = 0;
	int r;

	if (len < DNS_HDR_SIZE || (uint16_t)(p[0] << 8 | p[1]) != d->up_id)
		return; /* not the answer to this try: ignored, the deadline stands */
	if (dns_parse_query(d->query, d->qlen, &qq) < 0) {
		pending_free(n, d);
		return;
	}
	r = dns_filter_response(p, len, &qq, n->cfg.rebind_protection ? rebind_drop : NULL, pin, &a,
				&out_len);
	if (r < 0 && !d->via_tcp && (p[2] & (DNS_F_TC >> 8))) {
		/* Cut off by the server's own truncation: the guest asks again over TCP. */
		send_truncated(n, d, &qq);
		return;
	}
	if (r < 0) {
		log_warn_rl("network: dns: malformed answer for %s from nameserver %u; SERVFAIL",
			    d->name, d->server + 1);
		pending_fail(n, d, DNS_RCODE_SERVFAIL);
		return;
	}
	if (r == 1) {
		log_rl(LOG_INFO,
		       "network: dns: %s resolves to internal addresses only; answered NXDOMAIN "
		       "(rebind protection; --no-dns-rebind-protection allows it)",
		       d->name);
		pending_fail(n, d, DNS_RCODE_NXDOMAIN);
		return;
	}
	if (!d->via_tcp && out_len > qq.udp_size) {
		/* Too big for the guest's UDP: it asks again over TCP. */
		send_truncated(n, d, &qq);
		return;
	}
	put16(p, d->guest_id);
	deliver(n, &d->e, d->via_tcp ? d->tcp : -1, d->tcp_gen, p, out_len);
	pending_free(n, d);
}

void dns_query(struct net *n, const uint8_t *q, size_t len, const struct frame_ends *e, int tcp,
	       uint32_t gen)
{
	struct dns_question qq;
	struct dns_pending *d = NULL;
	int r = dns_parse_query(q, len, &qq);

	if (r == -EPROTONOSUPPORT) {
		answer_rcode(n, q, len, &qq, DNS_RCODE_NOTIMP, e, tcp, gen);
		return;
	}
	if (r < 0) {
		/* Malformed: FORMERR when there was a header to answer to. */
		if (len >= DNS_HDR_SIZE)
			answer_rcode(n, q, len, &qq, DNS_RCODE_FORMERR, e, tcp, gen);
		return;
	}
	if (!strcmp(qq.name, HOST_NAME_INTERNAL)) {
		answer_host(n, q, len, qq, e, tcp, gen);
		return;
	}
	if (!policy_dns_allowed(n->cfg.policy, qq.name)) {
		n->stats.denied++;
		log_rl_burst(LOG_INFO, 100,
			     "network: denied dns %s (policy: the name may not resolve)", qq.name);
		answer_rcode(n, q, len, &qq, DNS_RCODE_NXDOMAIN, e, tcp, gen);
		return;
	}
	/*
	 * HTTPS and SVCB records advertise HTTP/3, which QUIC would carry past the
	 * interception: with QUIC blocked they get no records, so that clients go
	 * to TCP at once instead of trying QUIC first and timing out.
	 */
	if ((qq.qtype == 64 || qq.qtype == 65) && n->tls && n->cfg.tls->block_quic) {
		answer_rcode(n, q, len, &qq, DNS_RCODE_NOERROR, e, tcp, gen);
		return;
	}
	if (!n->cfg.ndns) {
		log_warn_rl("network: dns: no nameserver to ask (--dns-nameserver)");
		answer_rcode(n, q, len, &qq, DNS_RCODE_SERVFAIL, e, tcp, gen);
		return;
	}
	for (unsigned int i = 0; i < DNS_MAX_PENDING && !d; i++)
		if (!n->dns[i].used)
			d = &n->dns[i];
	if (!d)
		log_warn_rl("network: dns: too many queries at once; SERVFAIL");
	/* Each query in flight holds a host socket, from DNS's share of the descriptors. */
	if (!d || !net_fd_room(n, NFD_DNS)) {
		answer_rcode(n, q, len, &qq, DNS_RCODE_SERVFAIL, e, tcp, gen);
		return;
	}
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	/* What goes upstream is rebuilt from what was checked, never the guest's bytes. */
	d->qlen = dns_build_query(q, len, &qq, qq.id, d->query, sizeof(d->query));
	if (!d->qlen) {
		answer_rcode(n, q, len, &qq, DNS_RCODE_SERVFAIL, e, tcp, gen);
		return;
	}
	d->used = true;
	n->ndns++;
	d->e = *e;
	d->via_tcp = tcp >= 0;
	d->tcp = tcp;
	d->tcp_gen = gen;
	d->guest_id = qq.id;
	snprintf(d->name, sizeof(d->name), "%s", qq.name);
	d->deadline_all = n->now + (n->cfg.dns_timeout_ms ? n->cfg.dns_timeout_ms : 5000);
	d->server = 0;
	if (!send_upstream(n, d))
		next_server(n, d);
}

/* Upstream TCP: the framed query out, then the framed answer in. */
static void tcp_progress(struct net *n, struct dns_pending *d, uint32_t events)
{
	if (events & EPOLLOUT && d->tx_off < d->qlen + 2) {
		uint8_t hdr[2] = { (uint8_t)(d->qlen >> 8), (uint8_t)d->qlen };

		while (d->tx_off < d->qlen + 2) {
			const uint8_t *p =
				d->tx_off < 2 ? hdr + d->tx_off : d->query + d->tx_off - 2;
			size_t want = d->tx_off < 2 ? 2 - d->tx_off : d->qlen + 2 - d->tx_off;
			ssize_t w = send(d->fd, p, want, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w < 0 && errno == EAGAIN)
				return;
			if (w <= 0) {
				next_server(n, d);
				return;
			}
			d->tx_off += (size_t)w;
		}
		net_watch_fd(n, d->fd, NET_REF(NR_DNS, d - n->dns), EPOLLIN, &d->ev);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			size_t room = 2 + DNS_MAX_MSG - buf_size(&d->rx), mlen;
			uint8_t *p = room ? buf_tail(&d->rx, room) : NULL;
			ssize_t r;
			int f;

			if (!p) {
				next_server(n, d);
				return;
			}
			r = recv(d->fd, p, room, MSG_DONTWAIT);
			if (r < 0 && errno == EAGAIN)
				return;
			if (r <= 0) {
				next_server(n, d);
				return;
			}
			buf_commit(&d->rx, (size_t)r);
			f = dns_tcp_frame(buf_head(&d->rx), buf_size(&d->rx), &mlen);
			if (f < 0) {
				next_server(n, d);
				return;
			}
			if (f == 1) {
				got_answer(n, d, buf_head(&d->rx) + 2, mlen);
				/* A stray answer (another id) is not ours: this server is done. */
				if (d->used)
					next_server(n, d);
				return;
			}
		}
	}
}

void dns_event(struct net *n, unsigned int slot, uint32_t events)
{
	struct dns_pending *d = &n->dns[slot];

	if (!d->used || d->fd < 0)
		return;
	if (d->upstream_tcp) {
		tcp_progress(n, d, events);
		return;
	}
	/* UDP: answers until ours; a refused port (ICMP) passes the query on. */
	for (int k = 0; k < 8 && d->used; k++) {
		static uint8_t ans[DNS_MAX_MSG];
		ssize_t r = recv(d->fd, ans, sizeof(ans), MSG_DONTWAIT);

		if (r < 0 && errno == EAGAIN)
			return;
		if (r < 0) {
			next_server(n, d);
			return;
		}
		got_answer(n, d, ans, (size_t)r);
	}
}

void dns_timer(struct net *n)
{
	for (unsigned int i = 0; i < DNS_MAX_PENDING; i++) {
		struct dns_pending *d = &n->dns[i];

		if (d->used && n->now >= d->deadline) {
			log_debug_rl("network: dns: nameserver %u did not answer for %s in time",
				     d->server + 1, d->name);
			next_server(n, d);
		}
	}
}

uint64_t dns_deadline(const struct net *n)
{
	uint64_t t = 0;

	for (unsigned int i = 0, seen = 0; i < DNS_MAX_PENDING && seen < n->ndns; i++) {
		if (!n->dns[i].used)
			continue;
		seen++;
		if (!t || n->dns[i].deadline < t)
			t = n->dns[i].deadline;
	}
	return t;
}

void dns_free_all(struct net *n)
{
	for (unsigned int i = 0; i < DNS_MAX_PENDING; i++)
		if (n->dns[i].used)
			pending_free(n, &n->dns[i]);
}
