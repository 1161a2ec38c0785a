// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for the whole network stack, without a VM: the test plays the
 * guest on the far end of the link (frames it builds itself, with its own
 * checksums, and checks every frame the stack sends back) and the host on
 * loopback (servers it starts on 127.0.0.1 and ::1), and drives the stack
 * through its epoll events and timers, with fake times where a test needs
 * the clock to move. Nothing is ever sent anywhere but 127.0.0.0/8 and ::1:
 * the guest's frames go to the gateway, which stands for the host's loopback.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/frame.h"
#include "net/net.h"
#include "net/policy.h"
#include "net/stack.h"
#include "util/buf.h"

/* What the test's epoll events carry in their high half. */
#define K_NET	1u
#define K_GUEST 2u
#define K_AUX	3u

#define WAIT_MS	 5000 /* how long a test waits for what must come */
#define QUIET_MS 150  /* how long it watches to see that nothing comes */
#define QMAX	 4096 /* frames held for the test to look at */
#define MAX_GTCP 8
#define MIB	 ((size_t)1 << 20)

static const uint8_t GUEST_MAC[6] = { 0x02, 0x6d, 0x73, 0x00, 0x00, 0x02 };
static const uint8_t GW_MAC[6] = { 0x02, 0x6d, 0x73, 0x00, 0x00, 0x01 };
static const uint8_t V4MAPPED[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static struct ipaddr ip(const char *s)
{
	struct ipaddr a;

	assert_int_equal(ip_parse(s, &a), 0);
	return a;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

/* Byte @i of a stream: not periodic in any power of two, so misordering shows. */
static uint8_t pat(size_t i)
{
	return (uint8_t)((i * 7 + i / 251 + i / 65521) & 0xff);
}

static void fill_pattern(uint8_t *p, size_t n, size_t from)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(from + i);
}

static void check_pattern(const uint8_t *p, size_t n, size_t from)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(from + i))
			fail_msg("stream byte %zu: got %u, expected %u", from + i, p[i],
				 pat(from + i));
}

/* --- checksums, the test's own ------------------------------------------ */

static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)(p[n - 1] << 8);
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* The sum of the pseudo-header of the IP header at @iph for @l4len bytes of @proto. */
static uint32_t pseudo(const uint8_t *iph, uint8_t proto, size_t l4len)
{
	uint8_t ph[8] = { 0 };

	if ((iph[0] >> 4) == 4) {
		ph[1] = proto;
		put16(ph + 2, (uint32_t)l4len);
		return sum16(sum16(0, iph + 12, 8), ph, 4);
	}
	put32(ph, (uint32_t)l4len);
	ph[7] = proto;
	return sum16(sum16(0, iph + 8, 32), ph, 8);
}

/*
 * Every frame the stack sends must be one the guest's kernel takes: to the
 * guest's MAC from the gateway's, lengths that agree, valid checksums, and IP
 * packets only to the guest's own addresses (or, for neighbour discovery, a
 * link-local one).
 */
static void check_frame(const struct net_config *cfg, const uint8_t *f, size_t len)
{
	const uint8_t *iph = f + ETH_HDR, *l4;
	size_t l4len;
	uint8_t proto;

	assert_true(len >= ETH_HDR);
	assert_memory_equal(f, GUEST_MAC, 6);
	assert_memory_equal(f + 6, GW_MAC, 6);
	switch (be16(f + 12)) {
	case ETH_P_ARP:
		assert_int_equal(len, ETH_HDR + 28);
		return;
	case ETH_P_IPV4:
		assert_true(len >= ETH_HDR + 20);
		assert_int_equal(iph[0], 0x45);
		assert_int_equal(be16(iph + 2), len - ETH_HDR);
		assert_int_equal(fold(sum16(0, iph, 20)), 0xffff);
		assert_memory_equal(iph + 16, cfg->guest4.b + 12, 4);
		proto = iph[9];
		l4 = iph + 20;
		l4len = len - ETH_HDR - 20;
		break;
	case ETH_P_IPV6:
		assert_true(len >= ETH_HDR + 40);
		assert_int_equal(iph[0] >> 4, 6);
		assert_int_equal(be16(iph + 4), len - ETH_HDR - 40);
		/* IPv6 on the wire, never an IPv4 address in disguise. */
		assert_false(!memcmp(iph + 8, V4MAPPED, 12) || !memcmp(iph + 24, V4MAPPED, 12));
		assert_true(!memcmp(iph + 24, cfg->guest6.b, 16) ||
			    (iph[24] == 0xfe && (iph[25] & 0xc0) == 0x80));
		proto = iph[6];
		l4 = iph + 40;
		l4len = len - ETH_HDR - 40;
		break;
	default:
		fail_msg("frame of ethertype %#x", be16(f + 12));
		return;
	}
	switch (proto) {
	case IPP_TCP:
		assert_true(l4len >= 20 && (size_t)(l4[12] >> 4) * 4 <= l4len);
		break;
	case IPP_UDP:
		assert_true(l4len >= 8);
		assert_int_equal(be16(l4 + 4), l4len);
		assert_int_not_equal(be16(l4 + 6), 0);
		break;
	case IPP_ICMP:
		assert_true(l4len >= 8);
		assert_int_equal(fold(sum16(0, l4, l4len)), 0xffff);
		return;
	case IPP_ICMPV6:
		assert_true(l4len >= 8);
		break;
	default:
		fail_msg("IP protocol %u to the guest", proto);
	}
	assert_int_equal(fold(sum16(pseudo(iph, proto, l4len), l4, l4len)), 0xffff);
}

/* --- the guest's frames --------------------------------------------------- */

static uint8_t F[NET_FRAME_MAX + 64]; /* where the builders write */

/* Ethernet and IP headers for @l4len bytes of @proto; returns where the transport goes. */
static uint8_t *b_ip(const struct ipaddr *src, const struct ipaddr *dst, uint8_t proto,
		     size_t l4len)
{
	uint8_t *iph = F + ETH_HDR;

	memcpy(F, GW_MAC, 6);
	memcpy(F + 6, GUEST_MAC, 6);
	if (ip_is4(src)) {
		put16(F + 12, ETH_P_IPV4);
		memset(iph, 0, 20);
		iph[0] = 0x45;
		put16(iph + 2, (uint32_t)(20 + l4len));
		put16(iph + 4, 0x1234);
		put16(iph + 6, 0x4000);
		iph[8] = 64;
		iph[9] = proto;
		memcpy(iph + 12, src->b + 12, 4);
		memcpy(iph + 16, dst->b + 12, 4);
		put16(iph + 10, (uint16_t)~fold(sum16(0, iph, 20)));
		return iph + 20;
	}
	put16(F + 12, ETH_P_IPV6);
	memset(iph, 0, 40);
	iph[0] = 0x60;
	put16(iph + 4, (uint32_t)l4len);
	iph[6] = proto;
	iph[7] = 64;
	memcpy(iph + 8, src->b, 16);
	memcpy(iph + 24, dst->b, 16);
	return iph + 40;
}

/* The transport checksum at @off of the transport header; returns the frame's length. */
static size_t b_finish(uint8_t *l4, size_t l4len, size_t off)
{
	const uint8_t *iph = F + ETH_HDR;
	uint8_t proto = (iph[0] >> 4) == 4 ? iph[9] : iph[6];
	uint32_t s = proto == IPP_ICMP ? 0 : pseudo(iph, proto, l4len);

	put16(l4 + off, 0);
	put16(l4 + off, (uint16_t)~fold(sum16(s, l4, l4len)));
	return (size_t)(l4 - F) + l4len;
}

static size_t b_tcp(const struct ipaddr *src, const struct ipaddr *dst, uint16_t sport,
		    uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win,
		    const uint8_t *opt, size_t optlen, const void *data, size_t dlen)
{
	size_t hl = 20 + optlen;
	uint8_t *t = b_ip(src, dst, IPP_TCP, hl + dlen);

	assert_true(optlen % 4 == 0 && hl <= 60);
	put16(t, sport);
	put16(t + 2, dport);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = (uint8_t)(hl / 4 << 4);
	t[13] = flags;
	put16(t + 14, win);
	put32(t + 16, 0);
	if (optlen)
		memcpy(t + 20, opt, optlen);
	if (dlen)
		memcpy(t + hl, data, dlen);
	return b_finish(t, hl + dlen, 16);
}

static size_t b_udp(const struct ipaddr *src, const struct ipaddr *dst, uint16_t sport,
		    uint16_t dport, const void *data, size_t dlen)
{
	uint8_t *u = b_ip(src, dst, IPP_UDP, 8 + dlen);

	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, (uint32_t)(8 + dlen));
	memcpy(u + 8, data, dlen);
	return b_finish(u, 8 + dlen, 6);
}

static size_t b_echo(const struct ipaddr *src, const struct ipaddr *dst, uint16_t id, uint16_t seq,
		     const void *data, size_t dlen)
{
	bool v4 = ip_is4(src);
	uint8_t *m = b_ip(src, dst, v4 ? IPP_ICMP : IPP_ICMPV6, 8 + dlen);

	m[0] = v4 ? 8 : 128;
	m[1] = 0;
	put16(m + 4, id);
	put16(m + 6, seq);
	memcpy(m + 8, data, dlen);
	return b_finish(m, 8 + dlen, 2);
}

static size_t b_arp(uint16_t op, const struct ipaddr *sender, const struct ipaddr *target)
{
	uint8_t *a = F + ETH_HDR;

	memset(F, 0xff, 6);
	memcpy(F + 6, GUEST_MAC, 6);
	put16(F + 12, ETH_P_ARP);
	put16(a, 1);
	put16(a + 2, ETH_P_IPV4);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, GUEST_MAC, 6);
	memcpy(a + 14, sender->b + 12, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, target->b + 12, 4);
	return ETH_HDR + 28;
}

/* A neighbour solicitation for @target from @src (:: for duplicate address detection). */
static size_t b_ns(const struct ipaddr *src, const struct ipaddr *target)
{
	struct ipaddr mc = ip("ff02::1:ff00:0");
	uint8_t *m;

	memcpy(mc.b + 13, target->b + 13, 3);
	m = b_ip(src, &mc, IPP_ICMPV6, 32);
	F[ETH_HDR + 7] = 255;
	memset(m, 0, 32);
	m[0] = 135;
	memcpy(m + 8, target->b, 16);
	m[24] = 1; /* source link-layer address */
	m[25] = 1;
	memcpy(m + 26, GUEST_MAC, 6);
	return b_finish(m, 32, 2);
}

/* A DNS query for @name (a stub's: RD, one question, no EDNS). */
static size_t b_dnsq(uint8_t *out, uint16_t id, const char *name, uint16_t qtype)
{
	size_t n = 12;

	memset(out, 0, 12);
	put16(out, id);
	out[2] = 0x01;
	put16(out + 4, 1);
	while (*name) {
		size_t l = strcspn(name, ".");

		out[n++] = (uint8_t)l;
		memcpy(out + n, name, l);
		n += l;
		name += l + (name[l] == '.');
	}
	out[n++] = 0;
	put16(out + n, qtype);
	put16(out + n + 2, 1);
	return n + 4;
}

/* --- the harness ---------------------------------------------------------- */

struct rxf {
	uint8_t *b;
	size_t len;
	struct pkt p;
};

struct gtcp;
struct dnsd;

struct h {
	struct net_config cfg;
	struct net_policy pol;
	struct net_port ports[2];
	struct net *n;
	int ep, g;
	bool no_read;	 /* the guest takes no frames (as when QEMU stops reading) */
	bool link_eof;	 /* the stack closed the link */
	bool drop_arp;	 /* count ARP replies instead of keeping them */
	size_t arp_seen; /* ARP replies counted */
	struct buf in, out;
	struct rxf *q[QMAX];
	size_t nq;
	struct gtcp *tcp[MAX_GTCP];
	size_t ntcp;
	uint64_t frames;
	uint64_t sent_bytes;
	uint64_t events; /* the stack's epoll events handled: how often it woke */
	struct dnsd *dns;
};

/* The guest's end of a TCP connection. */
struct gtcp {
	struct ipaddr me, peer;
	uint16_t mport, pport;
	uint32_t iss, snd_nxt, snd_una;
	uint32_t irs, rcv_nxt;
	uint32_t right; /* right edge of the window we advertised (highest so far) */
	bool right_set;
	uint16_t wnd;	   /* window field we send */
	int wscale;	   /* ours, offered (-1: none) */
	uint16_t mss;	   /* ours, offered */
	int peer_wscale;   /* offered by the stack (-1: none) */
	uint16_t peer_mss; /* offered by the stack */
	uint32_t peer_wnd; /* in bytes */
	bool auto_ack;
	bool established, syn_in, fin, rst;
	uint32_t fin_seq;
	struct buf rx;	 /* data received in order and not yet taken by the test */
	uint32_t rx_seq; /* sequence number of rx's first byte */
	unsigned int segs, resent, probes, gaps, after_fin, corrupt;
	uint32_t over; /* most bytes seen beyond our window's right edge */
};

static void step(struct h *t, int ms);
static void gc_input(struct h *t, struct gtcp *c, const struct pkt *p);

static void h_init(struct h *t)
{
	memset(t, 0, sizeof(*t));
	policy_init(&t->pol);
	t->cfg.guest4 = ip("10.251.0.2");
	t->cfg.gw4 = ip("10.251.0.1");
	t->cfg.prefix4 = 30;
	t->cfg.guest6 = ip("fd6d:7362::2");
	t->cfg.gw6 = ip("fd6d:7362::1");
	t->cfg.prefix6 = 64;
	memcpy(t->cfg.guest_mac, GUEST_MAC, 6);
	memcpy(t->cfg.gw_mac, GW_MAC, 6);
	t->cfg.policy = &t->pol;
	t->cfg.dns_timeout_ms = 2000;
	t->ep = t->g = -1;
}

static void h_rule(struct h *t, const char *rule)
{
	char err[256];

	if (policy_add(&t->pol, rule, err, sizeof(err)) < 0)
		fail_msg("%s", err);
}

static void h_start(struct h *t)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)K_GUEST << 32 };
	char why[256] = "";
	int sp[2], r;

	/* A test that hangs is a failure, not a stuck build. */
	alarm(60);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(fcntl(sp[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(sp[1], F_SETFL, O_NONBLOCK), 0);
	if (t->cfg.nports)
		t->cfg.ports = t->ports;
	r = net_new(&t->cfg, sp[0], &t->n, why, sizeof(why));
	if (r < 0)
		fail_msg("net_new: %s", why);
	t->g = sp[1];
	t->ep = epoll_create1(EPOLL_CLOEXEC);
	assert_true(t->ep >= 0);
	assert_int_equal(net_watch(t->n, t->ep, K_NET), 0);
	assert_int_equal(epoll_ctl(t->ep, EPOLL_CTL_ADD, t->g, &ev), 0);
}

static void rxf_free(struct rxf *x)
{
	if (x)
		free(x->b);
	free(x);
}

static void h_fini(struct h *t)
{
	net_free(t->n);
	if (t->g >= 0)
		close(t->g);
	if (t->ep >= 0)
		close(t->ep);
	for (size_t i = 0; i < t->nq; i++)
		rxf_free(t->q[i]);
	for (size_t i = 0; i < t->ntcp; i++)
		buf_free(&t->tcp[i]->rx);
	buf_free(&t->in);
	buf_free(&t->out);
	policy_free(&t->pol);
	alarm(0);
}

static void flush_out(struct h *t)
{
	while (buf_size(&t->out)) {
		ssize_t w = send(t->g, buf_head(&t->out), buf_size(&t->out), MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			buf_clear(&t->out); /* the stack dropped the link */
			break;
		}
		if (w < 0) {
			assert_int_equal(errno, EAGAIN);
			break;
		}
		buf_consume(&t->out, (size_t)w);
	}
}

/* Raw bytes onto the link, as they are. */
static void g_raw(struct h *t, const void *p, size_t len)
{
	assert_int_equal(buf_append(&t->out, p, len), 0);
	flush_out(t);
}

/* One frame from the guest: its length, then the frame. */
static void g_frame(struct h *t, const uint8_t *f, size_t len)
{
	uint8_t hdr[4];

	put32(hdr, (uint32_t)len);
	assert_int_equal(buf_append(&t->out, hdr, 4), 0);
	g_raw(t, f, len);
	t->sent_bytes += len;
}

/* What F holds, as a frame from the guest. */
static void g_send(struct h *t, size_t len)
{
	assert_true(len > 0);
	g_frame(t, F, len);
}

static struct gtcp *gtcp_find(struct h *t, const struct pkt *p)
{
	for (size_t i = 0; i < t->ntcp; i++) {
		struct gtcp *c = t->tcp[i];

		if (c->mport == p->dport && c->pport == p->sport &&
		    !memcmp(&c->peer, &p->src, sizeof(p->src)) &&
		    !memcmp(&c->me, &p->dst, sizeof(p->dst)))
			return c;
	}
	return NULL;
}

static void dispatch(struct h *t, const uint8_t *f, size_t len)
{
	struct rxf *x;
	struct gtcp *c;

	t->frames++;
	check_frame(&t->cfg, f, len);
	x = calloc(1, sizeof(*x));
	assert_non_null(x);
	x->b = malloc(len);
	assert_non_null(x->b);
	memcpy(x->b, f, len);
	x->len = len;
	assert_int_equal(pkt_parse(x->b, len, &x->p), 0);
	if (x->p.ethertype != ETH_P_ARP && x->p.proto == IPP_TCP && (c = gtcp_find(t, &x->p))) {
		gc_input(t, c, &x->p);
		rxf_free(x);
		return;
	}
	if (x->p.ethertype == ETH_P_ARP && t->drop_arp) {
		t->arp_seen++;
		rxf_free(x);
		return;
	}
	assert_true(t->nq < QMAX);
	t->q[t->nq++] = x;
}

static void guest_read(struct h *t)
{
	if (t->no_read)
		return;
	for (;;) {
		uint8_t *p = buf_tail(&t->in, 65536);
		ssize_t r;

		assert_non_null(p);
		r = read(t->g, p, 65536);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			t->link_eof = true;
		if (r <= 0)
			break;
		buf_commit(&t->in, (size_t)r);
	}
	while (buf_size(&t->in) >= 4) {
		const uint8_t *hd = buf_head(&t->in);
		size_t len = be32(hd);

		assert_true(len >= ETH_HDR && len <= NET_FRAME_MAX);
		if (buf_size(&t->in) < 4 + len)
			break;
		dispatch(t, hd + 4, len);
		buf_consume(&t->in, 4 + len);
	}
}

/* --- a DNS server on loopback, UDP and TCP on one port --------------------- */

struct dnsd {
	int udp, tl;
	int conn[4];
	struct buf cin[4];
	size_t nconn;
	uint16_t port;
	unsigned int queries, tcp_queries;
};

/* The answer to @q: "example.test" is 93.184.216.34, "inside.test" 10.1.2.3; "silent.test" none. */
static size_t dnsd_answer(const uint8_t *q, size_t n, uint8_t *out)
{
	static const uint8_t example[4] = { 93, 184, 216, 34 }, inside[4] = { 10, 1, 2, 3 };
	char name[256] = "";
	size_t off = 12, nl = 0, alen;
	const uint8_t *addr = NULL;

	if (n < 17 || be16(q + 4) != 1)
		return 0;
	while (off < n && q[off] && q[off] < 64 && off + 1 + q[off] < n && nl + q[off] + 2 < 256) {
		if (nl)
			name[nl++] = '.';
		memcpy(name + nl, q + off + 1, q[off]);
		nl += q[off];
		off += 1 + q[off];
	}
	name[nl] = 0;
	if (off + 5 > n || q[off])
		return 0;
	off += 5;
	if (!strcasecmp(name, "silent.test"))
		return 0;
	if (!strcasecmp(name, "example.test"))
		addr = example;
	else if (!strcasecmp(name, "inside.test"))
		addr = inside;
	memcpy(out, q, off);
	out[2] = (uint8_t)(0x80 | (q[2] & 0x01)); /* QR, RD as asked */
	out[3] = addr ? 0x80 : 0x83;		  /* RA; NXDOMAIN for names it does not know */
	put16(out + 6, 0);
	put16(out + 8, 0);
	put16(out + 10, 0);
	alen = off;
	if (addr && be16(q + off - 4) == 1) {
		uint8_t *rr = out + off;

		put16(rr, 0xc00c);
		put16(rr + 2, 1);
		put16(rr + 4, 1);
		put32(rr + 6, 60);
		put16(rr + 10, 4);
		memcpy(rr + 12, addr, 4);
		put16(out + 6, 1);
		alen += 16;
	}
	return alen;
}

static void dnsd_start(struct h *t, struct dnsd *d)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int one = 1;

	memset(d, 0, sizeof(*d));
	for (int tries = 0;; tries++) {
		assert_true(tries < 20);
		sa.sin_port = 0;
		d->udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(d->udp >= 0);
		assert_int_equal(bind(d->udp, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(getsockname(d->udp, (struct sockaddr *)&sa, &sl), 0);
		d->tl = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(d->tl >= 0);
		setsockopt(d->tl, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(d->tl, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(d->tl, 8) == 0)
			break;
		close(d->tl);
		close(d->udp);
	}
	d->port = ntohs(sa.sin_port);
	memcpy(&t->cfg.dns[0], &sa, sizeof(sa));
	t->cfg.ndns = 1;
	t->dns = d;
}

static void dnsd_stop(struct dnsd *d)
{
	close(d->udp);
	close(d->tl);
	for (size_t i = 0; i < d->nconn; i++) {
		if (d->conn[i] >= 0)
			close(d->conn[i]);
		buf_free(&d->cin[i]);
	}
}

static void dnsd_service(struct dnsd *d)
{
	uint8_t q[4096], a[4096 + 64];
	int fd;

	for (;;) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t r =
			recvfrom(d->udp, q, sizeof(q), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		size_t alen;

		if (r < 0)
			break;
		d->queries++;
		alen = dnsd_answer(q, (size_t)r, a);
		if (alen)
			sendto(d->udp, a, alen, 0, (struct sockaddr *)&from, fl);
	}
	while (d->nconn < 4 && (fd = accept4(d->tl, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		d->conn[d->nconn++] = fd;
	for (size_t i = 0; i < d->nconn; i++) {
		struct buf *b = &d->cin[i];
		ssize_t r;

		if (d->conn[i] < 0)
			continue;
		while ((r = recv(d->conn[i], q, sizeof(q), MSG_DONTWAIT)) > 0)
			buf_append(b, q, (size_t)r);
		while (buf_size(b) >= 2 && buf_size(b) >= 2u + be16(buf_head(b))) {
			size_t len = be16(buf_head(b)), alen;

			d->queries++;
			d->tcp_queries++;
			alen = dnsd_answer(buf_head(b) + 2, len, a + 2);
			if (alen) {
				put16(a, (uint32_t)alen);
				assert_int_equal(send(d->conn[i], a, alen + 2, MSG_NOSIGNAL),
						 (ssize_t)(alen + 2));
			}
			buf_consume(b, 2 + len);
		}
		if (r == 0) {
			close(d->conn[i]);
			d->conn[i] = -1;
		}
	}
}

/* --- the event loop -------------------------------------------------------- */

/* One round: the stack's events (waiting at most @ms), its timer when due, the guest's frames. */
static void step(struct h *t, int ms)
{
	struct epoll_event ev[32];
	uint64_t now = net_now(), dl;
	int k;

	flush_out(t);
	if (buf_size(&t->out))
		ms = ms > 1 ? 1 : ms;
	dl = net_deadline(t->n);
	if (dl && dl <= now)
		ms = 0;
	else if (dl && dl - now < (uint64_t)ms)
		ms = (int)(dl - now);
	k = epoll_wait(t->ep, ev, 32, ms);
	for (int i = 0; i < k; i++)
		if (ev[i].data.u64 >> 32 == K_NET) {
			t->events++;
			net_handle(t->n, (uint32_t)ev[i].data.u64, ev[i].events);
		}
	now = net_now();
	dl = net_deadline(t->n);
	if (dl && dl <= now)
		net_timer(t->n, now);
	guest_read(t);
	if (t->dns)
		dnsd_service(t->dns);
	flush_out(t);
}

static void pump(struct h *t, int ms)
{
	uint64_t end = net_now() + (uint64_t)ms;

	while (net_now() < end)
		step(t, 5);
}

/* Steps until @cond holds or @ms passed; whether it held. @cond is evaluated once a round. */
#define RUN_UNTIL(t, cond, ms)                                                                     \
	({                                                                                         \
		uint64_t end_ = net_now() + (uint64_t)(ms);                                        \
		bool ok_;                                                                          \
		while (!(ok_ = (cond)) && net_now() < end_)                                        \
			step((t), 5);                                                              \
		ok_;                                                                               \
	})

typedef bool (*pred_fn)(const struct rxf *x, const void *ctx);

/* The first frame that satisfies @pred, waiting up to @ms; NULL if none came. Caller frees. */
static struct rxf *take(struct h *t, pred_fn pred, const void *ctx, int ms)
{
	uint64_t end = net_now() + (uint64_t)ms;

	for (;;) {
		for (size_t i = 0; i < t->nq; i++) {
			struct rxf *x = t->q[i];

			if (pred(x, ctx)) {
				memmove(t->q + i, t->q + i + 1, (t->nq - i - 1) * sizeof(*t->q));
				t->nq--;
				return x;
			}
		}
		if (net_now() >= end)
			return NULL;
		step(t, 5);
	}
}

static bool p_any(const struct rxf *x, const void *ctx)
{
	(void)x;
	(void)ctx;
	return true;
}

static bool p_ethertype(const struct rxf *x, const void *ctx)
{
	return x->p.ethertype == *(const uint16_t *)ctx;
}

static bool p_proto(const struct rxf *x, const void *ctx)
{
	return x->p.ethertype != ETH_P_ARP && x->p.proto == *(const uint8_t *)ctx;
}

/* TCP to the guest's port *@ctx. */
static bool p_tcp_to(const struct rxf *x, const void *ctx)
{
	return x->p.ethertype != ETH_P_ARP && x->p.proto == IPP_TCP &&
	       x->p.dport == *(const uint16_t *)ctx;
}

static bool p_udp_to(const struct rxf *x, const void *ctx)
{
	return x->p.ethertype != ETH_P_ARP && x->p.proto == IPP_UDP &&
	       x->p.dport == *(const uint16_t *)ctx;
}

/* Nothing at all comes for a while. */
static void expect_silence(struct h *t, int ms)
{
	struct rxf *x;

	pump(t, ms);
	x = take(t, p_any, NULL, 0);
	if (x)
		fail_msg("unexpected frame: ethertype %#x proto %u %u -> %u flags %#x",
			 x->p.ethertype, x->p.proto, x->p.sport, x->p.dport, x->p.flags);
}

/* --- the guest's TCP ------------------------------------------------------- */

static void gc_init(struct h *t, struct gtcp *c, bool v6, uint16_t mport, uint16_t pport)
{
	memset(c, 0, sizeof(*c));
	c->me = v6 ? t->cfg.guest6 : t->cfg.guest4;
	c->peer = v6 ? t->cfg.gw6 : t->cfg.gw4;
	c->mport = mport;
	c->pport = pport;
	/* Near the top of the sequence space, so every transfer wraps around. */
	c->iss = 0xffff0000u - mport;
	c->snd_una = c->iss;
	c->snd_nxt = c->iss;
	c->wnd = 512;
	c->wscale = 7;
	c->mss = 1460;
	c->peer_wscale = -1;
	c->auto_ack = true;
	assert_true(t->ntcp < MAX_GTCP);
	t->tcp[t->ntcp++] = c;
}

/* The window we advertise, in bytes: scaled once both ends agreed to scale. */
static uint32_t gc_win(const struct gtcp *c)
{
	return c->wscale >= 0 && c->peer_wscale >= 0 ? (uint32_t)c->wnd << c->wscale : c->wnd;
}

static void gc_seg(struct h *t, struct gtcp *c, uint8_t flags, uint32_t seq, const void *data,
		   size_t dlen)
{
	uint8_t opt[20];
	size_t ol = 0;
	uint32_t adv;

	if (flags & TCP_SYN) {
		/* MSS, SACK permitted, a timestamp and window scale, as Linux lays them out. */
		opt[ol++] = 2;
		opt[ol++] = 4;
		put16(opt + ol, c->mss);
		ol += 2;
		opt[ol++] = 4;
		opt[ol++] = 2;
		opt[ol++] = 8;
		opt[ol++] = 10;
		put32(opt + ol, 0x01020304);
		put32(opt + ol + 4, 0);
		ol += 8;
		if (c->wscale >= 0) {
			opt[ol++] = 1;
			opt[ol++] = 3;
			opt[ol++] = 3;
			opt[ol++] = (uint8_t)c->wscale;
		}
	}
	g_send(t, b_tcp(&c->me, &c->peer, c->mport, c->pport, seq,
			(flags & TCP_ACK) ? c->rcv_nxt : 0, flags, c->wnd, opt, ol, data, dlen));
	if (!(flags & TCP_ACK))
		return;
	/* A SYN's window is never scaled. */
	adv = (flags & TCP_SYN) ? c->wnd : gc_win(c);
	if (!c->right_set || seq_lt(c->right, c->rcv_nxt + adv))
		c->right = c->rcv_nxt + adv;
	c->right_set = true;
}

static void gc_ack(struct h *t, struct gtcp *c)
{
	gc_seg(t, c, TCP_ACK, c->snd_nxt, NULL, 0);
}

static void gc_connect(struct h *t, struct gtcp *c)
{
	gc_seg(t, c, TCP_SYN, c->iss, NULL, 0);
	c->snd_nxt = c->iss + 1;
}

static void gc_write(struct h *t, struct gtcp *c, const void *data, size_t len)
{
	gc_seg(t, c, TCP_ACK | TCP_PSH, c->snd_nxt, data, len);
	c->snd_nxt += (uint32_t)len;
}

static void gc_fin(struct h *t, struct gtcp *c)
{
	gc_seg(t, c, TCP_ACK | TCP_FIN, c->snd_nxt, NULL, 0);
	c->snd_nxt++;
}

static void gc_rst(struct h *t, struct gtcp *c)
{
	gc_seg(t, c, TCP_RST | TCP_ACK, c->snd_nxt, NULL, 0);
}

/* Bytes received so far (in the stream, not the buffer). */
static uint32_t gc_got(const struct gtcp *c)
{
	return c->rcv_nxt - c->irs - 1 - (c->fin ? 1 : 0);
}

static void gc_input(struct h *t, struct gtcp *c, const struct pkt *p)
{
	bool probe = false;

	c->segs++;
	if (p->flags & TCP_RST) {
		c->rst = true;
		return;
	}
	if (p->flags & TCP_SYN) {
		c->irs = p->seq;
		c->rcv_nxt = p->seq + 1;
		c->rx_seq = c->rcv_nxt;
		c->peer_wscale = p->wscale;
		c->peer_mss = p->mss;
		c->peer_wnd = p->window; /* never scaled in a SYN */
		if (p->flags & TCP_ACK) {
			assert_int_equal(p->ack, c->iss + 1);
			c->snd_una = p->ack;
			c->established = true;
			gc_ack(t, c);
		} else {
			/* The stack opens a published port's connection: our SYN-ACK. */
			c->syn_in = true;
			gc_seg(t, c, TCP_SYN | TCP_ACK, c->iss, NULL, 0);
			c->snd_nxt = c->iss + 1;
		}
		return;
	}
	if (p->flags & TCP_ACK) {
		if (seq_lt(c->snd_una, p->ack))
			c->snd_una = p->ack;
		c->peer_wnd = c->peer_wscale >= 0 && c->wscale >= 0
				      ? (uint32_t)p->window << c->peer_wscale
				      : p->window;
		if (c->syn_in && p->ack == c->iss + 1)
			c->established = true;
	}
	if (p->dlen && c->right_set && seq_lt(c->right, p->seq + (uint32_t)p->dlen) &&
	    p->seq + (uint32_t)p->dlen - c->right > c->over)
		c->over = p->seq + (uint32_t)p->dlen - c->right;
	if (p->dlen && c->fin && !seq_lt(p->seq, c->fin_seq)) {
		c->after_fin++;
	} else if (p->dlen) {
		uint32_t have = c->rcv_nxt - p->seq;

		if (p->seq == c->rcv_nxt) {
			have = 0;
		} else if (seq_lt(p->seq, c->rcv_nxt)) {
			size_t at = (size_t)(p->seq - c->rx_seq),
			       n = have < p->dlen ? have : p->dlen;

			c->resent++;
			/* What comes again must be what came before. */
			if (!seq_lt(p->seq, c->rx_seq) && at + n <= buf_size(&c->rx) &&
			    memcmp(buf_head(&c->rx) + at, p->data, n))
				c->corrupt++;
		} else {
			c->gaps++;
			have = (uint32_t)p->dlen;
		}
		if (have < p->dlen) {
			assert_int_equal(buf_append(&c->rx, p->data + have, p->dlen - have), 0);
			c->rcv_nxt += (uint32_t)(p->dlen - have);
		}
	} else if (!(p->flags & TCP_FIN) && p->seq == c->rcv_nxt - 1) {
		probe = true;
		c->probes++;
	}
	if ((p->flags & TCP_FIN) && !c->fin && p->seq + (uint32_t)p->dlen == c->rcv_nxt) {
		c->fin = true;
		c->fin_seq = c->rcv_nxt;
		c->rcv_nxt++;
	}
	if (c->auto_ack && (p->dlen || (p->flags & TCP_FIN) || probe))
		gc_ack(t, c);
}

/* Checks and drops what the guest received, as bytes [@from, ...) of the stream. */
static size_t gc_take(struct gtcp *c, size_t from)
{
	size_t n = buf_size(&c->rx);

	check_pattern(buf_head(&c->rx), n, from);
	buf_consume(&c->rx, n);
	c->rx_seq += (uint32_t)n;
	return n;
}

/* Sends the guest's stream up to @total bytes, as far as the stack's window allows. */
static void gc_stream(struct h *t, struct gtcp *c, size_t total, size_t seg)
{
	static uint8_t d[65536];

	for (;;) {
		size_t off = c->snd_nxt - c->iss - 1, n = total - off;
		uint32_t inflight = c->snd_nxt - c->snd_una;

		if (off >= total || inflight >= c->peer_wnd)
			return;
		if (n > c->peer_wnd - inflight)
			n = c->peer_wnd - inflight;
		if (n > seg)
			n = seg;
		fill_pattern(d, n, off);
		gc_write(t, c, d, n);
	}
}

/* --- host sockets ------------------------------------------------------------ */

static socklen_t lo_addr(bool v6, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(port);
		return sizeof(*s6);
	}
	((struct sockaddr_in *)ss)->sin_family = AF_INET;
	((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	((struct sockaddr_in *)ss)->sin_port = htons(port);
	return sizeof(struct sockaddr_in);
}

static uint16_t port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A non-blocking socket bound to loopback (port 0: any), listening if TCP. */
static int lo_socket(bool v6, int type, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl = lo_addr(v6, port, &ss);
	int fd = socket(v6 ? AF_INET6 : AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, sl), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(fd, 16), 0);
	return fd;
}

/* A loopback port nothing listens on (bound a moment, then closed). */
static uint16_t free_port(void)
{
	int fd = lo_socket(false, SOCK_STREAM, 0);
	uint16_t p = port_of(fd);

	close(fd);
	return p;
}

static int lo_connect(bool v6, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl = lo_addr(v6, port, &ss);
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(connect(fd, (struct sockaddr *)&ss, sl) == 0 || errno == EINPROGRESS);
	return fd;
}

static int accept_wait(struct h *t, int l)
{
	int fd = -1;

	RUN_UNTIL(t, (fd = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0, WAIT_MS);
	return fd;
}

/* What recv() on @fd says once it says anything but EAGAIN: bytes, 0 for EOF, -errno. */
static ssize_t recv_wait(struct h *t, int fd, void *p, size_t n)
{
	ssize_t r = -EAGAIN;

	RUN_UNTIL(t, (r = recv(fd, p, n, MSG_DONTWAIT)) >= 0 || (r = -errno, errno != EAGAIN),
		  WAIT_MS);
	return r;
}

/* Writes @fd's stream as far as the kernel takes it, from *@off up to @total. */
static void host_stream(int fd, size_t *off, size_t total)
{
	static uint8_t d[65536];

	while (*off < total) {
		size_t n = total - *off < sizeof(d) ? total - *off : sizeof(d);
		ssize_t w;

		fill_pattern(d, n, *off);
		w = send(fd, d, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w <= 0) {
			assert_true(w < 0 && errno == EAGAIN);
			return;
		}
		*off += (size_t)w;
	}
}

/* Reads what @fd has, checking it as bytes [*@off, ...) of the stream. Return: false at EOF. */
static bool host_drain(int fd, size_t *off)
{
	static uint8_t d[65536];

	for (;;) {
		ssize_t r = recv(fd, d, sizeof(d), MSG_DONTWAIT);

		if (r < 0) {
			assert_int_equal(errno, EAGAIN);
			return true;
		}
		if (r == 0)
			return false;
		check_pattern(d, (size_t)r, *off);
		*off += (size_t)r;
	}
}

static struct tcp_flow *flow_of(struct h *t, const struct gtcp *c)
{
	for (unsigned int i = 0; i < t->n->tcp_hi; i++)
		if (t->n->tcp[i].state != TS_FREE && t->n->tcp[i].e.guest_port == c->mport)
			return &t->n->tcp[i];
	return NULL;
}

static unsigned int tcp_flows(struct h *t)
{
	struct net_stats s;

	net_stats(t->n, &s);
	return s.tcp_flows;
}

/* A connection from the guest to the gateway's @port (through to loopback), accepted on @l. */
static int connect_through(struct h *t, struct gtcp *c, bool v6, uint16_t gport, uint16_t port,
			   int l)
{
	int fd;

	gc_init(t, c, v6, gport, port);
	gc_connect(t, c);
	fd = accept_wait(t, l);
	assert_true(fd >= 0);
	assert_true(RUN_UNTIL(t, c->established, WAIT_MS));
	return fd;
}

/* --- tests: link, neighbours, ping ------------------------------------------ */

static void test_arp_reply_for_gateway(void **state)
{
	struct h t;
	struct rxf *x;
	uint16_t arp = ETH_P_ARP;
	struct ipaddr other;

	(void)state;
	h_init(&t);
	h_start(&t);
	g_send(&t, b_arp(1, &t.cfg.guest4, &t.cfg.gw4));
	x = take(&t, p_ethertype, &arp, WAIT_MS);
	assert_non_null(x);
	assert_int_equal(x->p.arp_op, 2);
	assert_memory_equal(x->b + ETH_HDR + 8, GW_MAC, 6);
	assert_memory_equal(&x->p.arp_sender, &t.cfg.gw4, sizeof(struct ipaddr));
	assert_memory_equal(x->b + ETH_HDR + 18, GUEST_MAC, 6);
	assert_memory_equal(&x->p.arp_target, &t.cfg.guest4, sizeof(struct ipaddr));
	rxf_free(x);

	/* Only the gateway is answered for, and only requests. */
	other = ip("10.251.0.3");
	g_send(&t, b_arp(1, &t.cfg.guest4, &other));
	g_send(&t, b_arp(2, &t.cfg.guest4, &t.cfg.gw4));
	expect_silence(&t, QUIET_MS);
	h_fini(&t);
}

static void test_ndp_advert_for_gateway(void **state)
{
	struct h t;
	struct rxf *x;
	uint8_t icmp6 = IPP_ICMPV6;
	struct ipaddr ll = ip("fe80::2"), unspec = ip("::"), other = ip("fd6d:7362::3");
	const struct ipaddr *from[2] = { &t.cfg.guest6, &ll };

	(void)state;
	h_init(&t);
	h_start(&t);
	for (int i = 0; i < 2; i++) {
		g_send(&t, b_ns(from[i], &t.cfg.gw6));
		x = take(&t, p_proto, &icmp6, WAIT_MS);
		assert_non_null(x);
		assert_int_equal(x->p.icmp_type, 136);
		assert_int_equal(x->p.hop_limit, 255);
		assert_memory_equal(&x->p.src, &t.cfg.gw6, 16);
		assert_memory_equal(&x->p.dst, from[i], 16);
		assert_int_equal(x->p.l4len, 32);
		assert_int_equal(x->p.l4[4] & 0x60, 0x60); /* solicited, override */
		assert_memory_equal(x->p.l4 + 8, t.cfg.gw6.b, 16);
		assert_int_equal(x->p.l4[24], 2); /* target link-layer address: the gateway's */
		assert_memory_equal(x->p.l4 + 26, GW_MAC, 6);
		rxf_free(x);
	}
	/* Duplicate address detection is not answered; nor are other targets. */
	g_send(&t, b_ns(&unspec, &t.cfg.gw6));
	g_send(&t, b_ns(&t.cfg.guest6, &other));
	expect_silence(&t, QUIET_MS);
	h_fini(&t);
}

static void test_ping_gateway(void **state)
{
	static const char data[] = "0123456789abcdefghijklmnopqrstuvwxyz!";
	struct h t;
	struct rxf *x;
	uint8_t icmp4 = IPP_ICMP, icmp6 = IPP_ICMPV6;

	(void)state;
	h_init(&t);
	h_start(&t);
	g_send(&t, b_echo(&t.cfg.guest4, &t.cfg.gw4, 0x4242, 7, data, sizeof(data)));
	x = take(&t, p_proto, &icmp4, WAIT_MS);
	assert_non_null(x);
	assert_int_equal(x->p.icmp_type, 0);
	assert_int_equal(x->p.icmp_id, 0x4242);
	assert_int_equal(x->p.icmp_seq, 7);
	assert_memory_equal(&x->p.src, &t.cfg.gw4, 16);
	assert_int_equal(x->p.dlen, sizeof(data));
	assert_memory_equal(x->p.data, data, sizeof(data));
	rxf_free(x);

	g_send(&t, b_echo(&t.cfg.guest6, &t.cfg.gw6, 0x77, 9, data, 10));
	x = take(&t, p_proto, &icmp6, WAIT_MS);
	assert_non_null(x);
	assert_int_equal(x->p.icmp_type, 129);
	assert_int_equal(x->p.icmp_id, 0x77);
	assert_int_equal(x->p.icmp_seq, 9);
	assert_memory_equal(&x->p.src, &t.cfg.gw6, 16);
	assert_int_equal(x->p.dlen, 10);
	assert_memory_equal(x->p.data, data, 10);
	rxf_free(x);
	expect_silence(&t, QUIET_MS);
	h_fini(&t);
}

/* Frames arrive on the stream in any pieces: one byte at a time still makes a frame. */
static void test_link_reassembles_frames(void **state)
{
	struct h t;
	struct rxf *x;
	uint16_t arp = ETH_P_ARP;
	uint8_t wire[4 + ETH_HDR + 28];
	size_t len;

	(void)state;
	h_init(&t);
	h_start(&t);
	len = b_arp(1, &t.cfg.guest4, &t.cfg.gw4);
	put32(wire, (uint32_t)len);
	memcpy(wire + 4, F, len);
	for (size_t i = 0; i < len + 4; i++) {
		g_raw(&t, wire + i, 1);
		step(&t, 0);
		if (i + 1 < len + 4)
			assert_int_equal(t.nq, 0);
	}
	x = take(&t, p_ethertype, &arp, WAIT_MS);
	assert_non_null(x);
	rxf_free(x);
	/* Two frames in one write. */
	g_raw(&t, wire, sizeof(wire));
	g_raw(&t, wire, sizeof(wire));
	for (int i = 0; i < 2; i++) {
		x = take(&t, p_ethertype, &arp, WAIT_MS);
		assert_non_null(x);
		rxf_free(x);
	}
	h_fini(&t);
}

/* A length no frame can have means the stream is out of step: the link is dropped. */
static void test_link_oversized_frame_drops_link(void **state)
{
	struct h t;
	uint8_t hdr[4];

	(void)state;
	h_init(&t);
	h_start(&t);
	put32(hdr, NET_FRAME_MAX + 1);
	g_raw(&t, hdr, 4);
	assert_true(RUN_UNTIL(&t, t.link_eof, WAIT_MS));
	h_fini(&t);
}

/*
 * A guest that keeps sending but takes nothing (QEMU stops reading when the
 * guest posts no receive buffers): the queue for it stays bounded, because
 * the stack stops reading the guest's frames too, and nothing is lost.
 */
static void test_link_backpressure_bounds_memory(void **state)
{
	enum { N = 150000 };
	struct h t;
	size_t len, queued = 0, most = 0;
	uint8_t *wire;

	(void)state;
	h_init(&t);
	h_start(&t);
	len = b_arp(1, &t.cfg.guest4, &t.cfg.gw4);
	wire = malloc((size_t)N * (len + 4));
	assert_non_null(wire);
	for (size_t i = 0; i < N; i++) {
		put32(wire + i * (len + 4), (uint32_t)len);
		memcpy(wire + i * (len + 4) + 4, F, len);
	}
	t.no_read = true;
	g_raw(&t, wire, (size_t)N * (len + 4));
	free(wire);
	/* Until the stack stops taking frames. */
	for (;;) {
		size_t before = buf_size(&t.out);

		pump(&t, 100);
		queued = buf_size(&t.n->link.tx);
		if (queued > most)
			most = queued;
		if (!buf_size(&t.out) || buf_size(&t.out) == before)
			break;
	}
	assert_true(buf_size(&t.out) > 0); /* it did stop */
	assert_true(most <= ((size_t)5 << 20));
	t.no_read = false;
	t.drop_arp = true;
	assert_true(RUN_UNTIL(&t, t.arp_seen == N, 4 * WAIT_MS));
	assert_int_equal(buf_size(&t.out), 0);
	expect_silence(&t, QUIET_MS);
	h_fini(&t);
}

/* --- tests: TCP --------------------------------------------------------------- */

/* Data both ways intact across a few MB, then each side's FIN. */
static void tcp_bulk(bool v6, size_t total)
{
	struct h t;
	struct gtcp c;
	int l, fd;
	uint16_t port;
	size_t g_off = 0, h_sent = 0, g_got = 0;
	uint64_t end;
	uint32_t una = 0;
	uint64_t progress;

	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	l = lo_socket(v6, SOCK_STREAM, 0);
	port = port_of(l);
	fd = connect_through(&t, &c, v6, 41000, port, l);
	/* Our SYN offered scaling, so the stack's SYN-ACK does too; its MSS fits the MTU. */
	assert_int_equal(c.peer_wscale, TCP_WSCALE);
	assert_int_equal(c.peer_mss, NET_MTU - (v6 ? 60 : 40));
	assert_int_equal(tcp_flows(&t), 1);

	end = net_now() + 20000;
	progress = net_now();
	while ((g_off < total || g_got < total) && net_now() < end) {
		gc_stream(&t, &c, total, 16000);
		host_stream(fd, &h_sent, total);
		step(&t, 5);
		assert_true(host_drain(fd, &g_off));
		g_got += gc_take(&c, g_got);
		if (c.snd_una != una) {
			una = c.snd_una;
			progress = net_now();
		} else if (net_now() - progress > 1000 && c.snd_nxt != c.snd_una) {
			c.snd_nxt = c.snd_una; /* go back: nothing is acknowledged */
			progress = net_now();
		}
	}
	assert_int_equal(g_off, total);
	assert_int_equal(g_got, total);
	assert_int_equal(c.over, 0);
	assert_int_equal(c.corrupt, 0);
	assert_int_equal(c.after_fin, 0);

	/* The guest's FIN: the host reads EOF. */
	gc_fin(&t, &c);
	{
		char b[16];

		assert_int_equal(recv_wait(&t, fd, b, sizeof(b)), 0);
	}
	/* The host closes: the guest gets FIN, acknowledges it, and the flow is gone. */
	close(fd);
	assert_true(RUN_UNTIL(&t, c.fin, WAIT_MS));
	assert_false(c.rst);
	assert_true(RUN_UNTIL(&t, tcp_flows(&t) == 0, WAIT_MS));
	close(l);
	h_fini(&t);
}

static void test_tcp_bulk_v4(void **state)
{
	(void)state;
	tcp_bulk(false, 4 * MIB);
}

static void test_tcp_bulk_v6(void **state)
{
	(void)state;
	tcp_bulk(true, 1 * MIB);
}

static void test_tcp_host_reset(void **state)
{
	struct h t;
	struct gtcp c;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int l, fd;

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);
	fd = connect_through(&t, &c, false, 41001, port_of(l), l);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(fd);
	assert_true(RUN_UNTIL(&t, c.rst, WAIT_MS));
	assert_false(c.fin);
	assert_true(RUN_UNTIL(&t, tcp_flows(&t) == 0, WAIT_MS));
	close(l);
	h_fini(&t);
}

static void test_tcp_guest_reset(void **state)
{
	struct h t;
	struct gtcp c;
	int l, fd;
	char b[8];

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);
	fd = connect_through(&t, &c, false, 41002, port_of(l), l);
	gc_rst(&t, &c);
	assert_int_equal(recv_wait(&t, fd, b, sizeof(b)), -ECONNRESET);
	assert_int_equal(tcp_flows(&t), 0);
	close(fd);
	close(l);
	h_fini(&t);
}

static void test_tcp_closed_port_resets(void **state)
{
	struct h t;
	struct gtcp c;

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	gc_init(&t, &c, false, 41003, free_port());
	gc_connect(&t, &c);
	assert_true(RUN_UNTIL(&t, c.rst, WAIT_MS));
	assert_false(c.established);
	assert_int_equal(tcp_flows(&t), 0);
	h_fini(&t);
}

/* The built-in policy denies loopback: RST, and no host connection is ever made. */
static void test_tcp_denied_resets(void **state)
{
	struct h t;
	struct gtcp c;
	struct net_stats s;
	struct rxf *x;
	uint16_t gport = 41004;
	int l;

	(void)state;
	h_init(&t);
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);
	gc_init(&t, &c, false, gport, port_of(l));
	t.ntcp = 0; /* take the RST as a frame, to check it */
	gc_connect(&t, &c);
	x = take(&t, p_tcp_to, &gport, WAIT_MS);
	assert_non_null(x);
	assert_int_equal(x->p.flags, TCP_RST | TCP_ACK);
	assert_int_equal(x->p.ack, c.iss + 1);
	assert_int_equal(x->p.sport, port_of(l));
	rxf_free(x);
	pump(&t, QUIET_MS);
	assert_int_equal(accept4(l, NULL, NULL, 0), -1);
	assert_int_equal(errno, EAGAIN);
	net_stats(t.n, &s);
	assert_int_equal(s.tcp_flows, 0);
	assert_int_equal(s.denied, 1);
	expect_silence(&t, 0);
	close(l);
	h_fini(&t);
}

/*
 * A guest with a small window that acknowledges nothing: the stack sends no
 * more than the window, holds at most TCP_BUF, and stops reading the host
 * socket; once the guest opens its window everything arrives intact.
 */
static void test_tcp_window_bounds_sending(void **state)
{
	enum { TOTAL = 12 * 1024 * 1024, WND = 4000 };
	struct h t;
	struct gtcp c;
	struct tcp_flow *f;
	size_t h_sent = 0, g_got = 0, stalled;
	int l, fd;

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);
	gc_init(&t, &c, false, 41005, port_of(l));
	c.wscale = -1; /* no scaling: the window is what the field says */
	c.wnd = WND;
	c.mss = 16000;
	gc_connect(&t, &c);
	fd = accept_wait(&t, l);
	assert_true(fd >= 0);
	assert_true(RUN_UNTIL(&t, c.established, WAIT_MS));
	assert_int_equal(c.peer_wscale, -1); /* the stack does not scale when the guest does not */
	c.auto_ack = false;

	/* The host writes until its socket is full. */
	for (int i = 0; i < 50; i++) {
		host_stream(fd, &h_sent, TOTAL);
		pump(&t, 10);
	}
	stalled = h_sent;
	assert_true(stalled < TOTAL);
	assert_true(stalled > TCP_BUF);
	assert_true(gc_got(&c) <= WND);
	assert_true(gc_got(&c) > 0);
	assert_int_equal(c.over, 0);
	f = flow_of(&t, &c);
	assert_non_null(f);
	assert_int_equal(buf_size(&f->h2g), TCP_BUF);
	assert_false(f->ev & EPOLLIN); /* the host socket is not read meanwhile */
	pump(&t, 100);
	host_stream(fd, &h_sent, TOTAL);
	assert_int_equal(h_sent, stalled);

	/* The guest opens its window and acknowledges: the rest flows. */
	c.wnd = 65535;
	c.auto_ack = true;
	gc_ack(&t, &c);
	while (g_got < TOTAL) {
		size_t before = g_got;

		host_stream(fd, &h_sent, TOTAL);
		RUN_UNTIL(&t, buf_size(&c.rx) > 0, WAIT_MS);
		g_got += gc_take(&c, g_got);
		assert_true(g_got > before);
	}
	assert_int_equal(c.over, 0);
	assert_int_equal(c.corrupt, 0);
	close(fd);
	close(l);
	h_fini(&t);
}

/* A window the guest closed is probed after the RTO, forever; opening it lets data through. */
static void test_tcp_zero_window_probe(void **state)
{
	struct h t;
	struct gtcp c;
	static uint8_t d[5000];
	size_t got = 0;
	uint64_t dl;
	int l, fd;

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);
	fd = connect_through(&t, &c, false, 41006, port_of(l), l);
	fill_pattern(d, 1000, 0);
	assert_int_equal(send(fd, d, 1000, 0), 1000);
	c.wnd = 0; /* the acknowledgement closes the window */
	assert_true(RUN_UNTIL(&t, gc_got(&c) == 1000, WAIT_MS));
	got = gc_take(&c, 0);
	pump(&t, 50); /* the stack takes the closed window before the host writes again */
	fill_pattern(d, sizeof(d), 1000);
	assert_int_equal(send(fd, d, sizeof(d), 0), (ssize_t)sizeof(d));
	pump(&t, QUIET_MS);
	assert_int_equal(gc_got(&c), 1000);
	assert_int_equal(c.probes, 0);

	for (unsigned int i = 1; i <= TCP_MAX_RETRIES + 5; i++) {
		dl = net_deadline(t.n);
		assert_true(dl != 0);
		net_timer(t.n, dl);
		assert_true(RUN_UNTIL(&t, c.probes == i, WAIT_MS));
		assert_int_equal(gc_got(&c), 1000);
	}
	assert_false(c.rst); /* a closed window is no failure */
	assert_int_equal(c.over, 0);

	c.wnd = 512;
	gc_ack(&t, &c);
	assert_true(RUN_UNTIL(&t, gc_got(&c) == 1000 + sizeof(d), WAIT_MS));
	got += gc_take(&c, got);
	assert_int_equal(got, 1000 + sizeof(d));
	close(fd);
	close(l);
	h_fini(&t);
}

/* Unacknowledged data comes again after the RTO, backing off; after TCP_MAX_RETRIES, RST. */
static void test_tcp_retransmit(void **state)
{
	struct h t;
	struct gtcp c;
	static uint8_t d[3000];
	uint64_t dl, prev, now;
	uint32_t rto = TCP_RTO_MIN_MS * 3;
	int l, fd;
	char b[8];

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);
	fd = connect_through(&t, &c, false, 41007, port_of(l), l);
	c.auto_ack = false;
	fill_pattern(d, sizeof(d), 0);
	now = net_now();
	assert_int_equal(send(fd, d, sizeof(d), 0), (ssize_t)sizeof(d));
	assert_true(RUN_UNTIL(&t, gc_got(&c) == sizeof(d), WAIT_MS));
	assert_int_equal(c.resent, 0);
	dl = net_deadline(t.n);
	assert_true(dl >= now + rto && dl <= net_now() + rto);

	/* The RTO passes: the same bytes again, from the oldest unacknowledged one. */
	net_timer(t.n, dl);
	assert_true(RUN_UNTIL(&t, c.resent >= 3, WAIT_MS));
	assert_int_equal(c.corrupt, 0);
	assert_int_equal(c.gaps, 0);
	/* Acknowledged: no timer is left. */
	gc_ack(&t, &c);
	pump(&t, 50);
	assert_int_equal(net_deadline(t.n), 0);
	assert_int_equal(gc_take(&c, 0), sizeof(d));

	/* Never acknowledged: resent with the RTO doubling up to its cap, then given up. */
	c.resent = 0;
	assert_int_equal(send(fd, d, 100, 0), 100);
	assert_true(RUN_UNTIL(&t, gc_got(&c) == sizeof(d) + 100, WAIT_MS));
	prev = net_deadline(t.n);
	assert_true(prev != 0);
	for (unsigned int i = 1; i <= TCP_MAX_RETRIES; i++) {
		net_timer(t.n, prev);
		assert_true(RUN_UNTIL(&t, c.resent == i, WAIT_MS));
		rto = rto * 2 > TCP_RTO_MAX_MS ? TCP_RTO_MAX_MS : rto * 2;
		dl = net_deadline(t.n);
		assert_int_equal(dl - prev, rto);
		prev = dl;
	}
	assert_false(c.rst);
	net_timer(t.n, prev);
	assert_true(RUN_UNTIL(&t, c.rst, WAIT_MS));
	assert_int_equal(c.resent, TCP_MAX_RETRIES);
	assert_int_equal(recv_wait(&t, fd, b, sizeof(b)), -ECONNRESET);
	assert_int_equal(tcp_flows(&t), 0);
	close(fd);
	close(l);
	h_fini(&t);
}

static void test_tcp_max_connections(void **state)
{
	struct h t;
	struct gtcp c[3];
	int l, fd[2];

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	t.cfg.max_connections = 2;
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);
	for (int i = 0; i < 2; i++)
		fd[i] = connect_through(&t, &c[i], false, (uint16_t)(41010 + i), port_of(l), l);
	gc_init(&t, &c[2], false, 41012, port_of(l));
	gc_connect(&t, &c[2]);
	assert_true(RUN_UNTIL(&t, c[2].rst, WAIT_MS));
	assert_false(c[2].established);
	pump(&t, QUIET_MS);
	assert_int_equal(accept4(l, NULL, NULL, 0), -1);
	assert_int_equal(tcp_flows(&t), 2);
	/* One ends: there is room again. */
	gc_rst(&t, &c[0]);
	close(fd[0]);
	assert_true(RUN_UNTIL(&t, tcp_flows(&t) == 1, WAIT_MS));
	fd[0] = connect_through(&t, &c[2], false, 41013, port_of(l), l);
	close(fd[0]);
	close(fd[1]);
	close(l);
	h_fini(&t);
}

/*
 * A published port: a host connection becomes the gateway's SYN to the guest;
 * the guest's SYN-ACK window is not scaled (RFC 7323), so the stack sends no
 * more than it says until the guest's next ACK.
 */
static void test_tcp_published_port(void **state)
{
	enum { WND = 1000, TOTAL = 20000 };
	struct h t;
	struct gtcp c;
	struct rxf *x;
	uint16_t gport = 8080;
	size_t h_sent = 0, got = 0, g_off = 0;
	int fd;
	char b[16];

	(void)state;
	h_init(&t);
	t.cfg.nports = 1;
	t.ports[0] = (struct net_port){ .bind = ip("127.0.0.1"),
					.host_port = free_port(),
					.guest_port = gport };
	h_start(&t);
	fd = lo_connect(false, t.ports[0].host_port);
	x = take(&t, p_tcp_to, &gport, WAIT_MS);
	assert_non_null(x);
	assert_int_equal(x->p.flags, TCP_SYN);
	assert_memory_equal(&x->p.src, &t.cfg.gw4, 16);
	assert_memory_equal(&x->p.dst, &t.cfg.guest4, 16);
	assert_true(x->p.sport >= NAT_PORT_BASE);
	assert_int_equal(x->p.mss, NET_MTU - 40);
	assert_int_equal(x->p.wscale, TCP_WSCALE);
	gc_init(&t, &c, false, gport, x->p.sport);
	c.wnd = WND;
	gc_input(&t, &c, &x->p); /* our SYN-ACK */
	rxf_free(x);
	assert_true(RUN_UNTIL(&t, c.established, WAIT_MS));
	c.auto_ack = false;

	host_stream(fd, &h_sent, TOTAL);
	assert_int_equal(h_sent, TOTAL);
	pump(&t, QUIET_MS);
	assert_int_equal(c.over, 0);
	assert_true(gc_got(&c) > 0 && gc_got(&c) <= WND);

	c.wnd = 512;
	c.auto_ack = true;
	gc_ack(&t, &c);
	assert_true(RUN_UNTIL(&t, gc_got(&c) == TOTAL, WAIT_MS));
	got = gc_take(&c, 0);
	assert_int_equal(got, TOTAL);
	assert_int_equal(c.over, 0);

	/* And the other way. */
	fill_pattern((uint8_t *)b, 10, 0);
	gc_write(&t, &c, b, 10);
	assert_true(RUN_UNTIL(&t, (host_drain(fd, &g_off), g_off == 10), WAIT_MS));

	/* The host closes, then the guest: the flow ends. */
	shutdown(fd, SHUT_WR);
	assert_true(RUN_UNTIL(&t, c.fin, WAIT_MS));
	gc_fin(&t, &c);
	assert_int_equal(recv_wait(&t, fd, b, sizeof(b)), 0);
	assert_true(RUN_UNTIL(&t, tcp_flows(&t) == 0, WAIT_MS));
	close(fd);
	h_fini(&t);
}

static void test_tcp_published_port_ingress_denied(void **state)
{
	struct h t;
	struct net_stats s;
	char err[256], b[8];
	int fd;

	(void)state;
	h_init(&t);
	assert_int_equal(policy_set_default(&t.pol, NET_INGRESS, false, err, sizeof(err)), 0);
	t.cfg.nports = 1;
	t.ports[0] = (struct net_port){ .bind = ip("127.0.0.1"),
					.host_port = free_port(),
					.guest_port = 8080 };
	h_start(&t);
	fd = lo_connect(false, t.ports[0].host_port);
	assert_int_equal(recv_wait(&t, fd, b, sizeof(b)), -ECONNRESET);
	expect_silence(&t, QUIET_MS);
	net_stats(t.n, &s);
	assert_int_equal(s.denied, 1);
	assert_int_equal(s.tcp_flows, 0);
	close(fd);
	h_fini(&t);
}

/* --- tests: UDP and DNS --------------------------------------------------------- */

static void udp_flow(bool v6)
{
	struct h t;
	struct rxf *x;
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	uint16_t gport = 5555;
	const struct ipaddr *gw;
	char b[64];
	int s;

	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	gw = v6 ? &t.cfg.gw6 : &t.cfg.gw4;
	s = lo_socket(v6, SOCK_DGRAM, 0);
	g_send(&t, b_udp(v6 ? &t.cfg.guest6 : &t.cfg.guest4, gw, gport, port_of(s), "hello", 5));
	assert_int_equal(RUN_UNTIL(&t,
				   recvfrom(s, b, sizeof(b), MSG_DONTWAIT, (struct sockaddr *)&from,
					    &fl) == 5,
				   WAIT_MS),
			 1);
	assert_memory_equal(b, "hello", 5);
	assert_int_equal(sendto(s, "world!", 6, 0, (struct sockaddr *)&from, fl), 6);
	x = take(&t, p_udp_to, &gport, WAIT_MS);
	assert_non_null(x);
	assert_memory_equal(&x->p.src, gw, 16);
	assert_int_equal(x->p.sport, port_of(s));
	assert_int_equal(x->p.dlen, 6);
	assert_memory_equal(x->p.data, "world!", 6);
	rxf_free(x);
	close(s);
	h_fini(&t);
}

static void test_udp_flow_v4(void **state)
{
	(void)state;
	udp_flow(false);
}

static void test_udp_flow_v6(void **state)
{
	(void)state;
	udp_flow(true);
}

static void test_udp_denied(void **state)
{
	struct h t;
	struct net_stats s;
	char b[8];
	int u;

	(void)state;
	h_init(&t);
	h_start(&t);
	u = lo_socket(false, SOCK_DGRAM, 0);
	g_send(&t, b_udp(&t.cfg.guest4, &t.cfg.gw4, 5555, port_of(u), "hello", 5));
	expect_silence(&t, QUIET_MS);
	assert_int_equal(recv(u, b, sizeof(b), MSG_DONTWAIT), -1);
	net_stats(t.n, &s);
	assert_int_equal(s.denied, 1);
	assert_int_equal(s.udp_flows, 0);
	close(u);
	h_fini(&t);
}

/* One published UDP port, more host peers than a listener has gateway ports: each
 * guest answer goes back to the peer that asked, never to another one. */
static void test_udp_published_port_many_peers(void **state)
{
	enum { PEERS = NAT_PORTS_PER_LISTENER + 44 };
	struct h t;
	struct sockaddr_storage to;
	socklen_t tl;
	uint16_t gport = 7000, nat[2];
	static int peer[PEERS];
	char msg[16], b[32];

	(void)state;
	h_init(&t);
	t.cfg.nports = 1;
	t.ports[0] = (struct net_port){
		.bind = ip("127.0.0.1"), .host_port = free_port(), .guest_port = gport, .udp = true
	};
	h_start(&t);
	tl = lo_addr(false, t.ports[0].host_port, &to);
	for (int i = 0; i < PEERS; i++) {
		struct rxf *x;
		int len = snprintf(msg, sizeof(msg), "peer%d", i);

		peer[i] = lo_socket(false, SOCK_DGRAM, 0);
		assert_int_equal(sendto(peer[i], msg, (size_t)len, 0, (struct sockaddr *)&to, tl),
				 len);
		x = take(&t, p_udp_to, &gport, WAIT_MS);
		assert_non_null(x);
		assert_int_equal(x->p.dlen, len);
		assert_memory_equal(x->p.data, msg, (size_t)len);
		/* The guest answers the gateway port the datagram came from. */
		g_send(&t,
		       b_udp(&t.cfg.guest4, &t.cfg.gw4, gport, x->p.sport, x->p.data, x->p.dlen));
		rxf_free(x);
		assert_true(
			RUN_UNTIL(&t, recv(peer[i], b, sizeof(b), MSG_DONTWAIT) == len, WAIT_MS));
		assert_memory_equal(b, msg, (size_t)len);
	}
	/* No answer went astray. */
	pump(&t, QUIET_MS);
	for (int i = 0; i < PEERS; i++)
		assert_int_equal(recv(peer[i], b, sizeof(b), MSG_DONTWAIT), -1);
	/* Two live peers at once, answered in reverse order: each gets its own. */
	for (int k = 0; k < 2; k++) {
		struct rxf *x;
		int i = PEERS - 2 + k;

		assert_int_equal(sendto(peer[i], "again", 5, 0, (struct sockaddr *)&to, tl), 5);
		x = take(&t, p_udp_to, &gport, WAIT_MS);
		assert_non_null(x);
		nat[k] = x->p.sport;
		rxf_free(x);
	}
	assert_int_not_equal(nat[0], nat[1]);
	for (int k = 1; k >= 0; k--)
		g_send(&t, b_udp(&t.cfg.guest4, &t.cfg.gw4, gport, nat[k], k ? "to-1" : "to-0", 4));
	for (int k = 0; k < 2; k++) {
		assert_true(RUN_UNTIL(
			&t, recv(peer[PEERS - 2 + k], b, sizeof(b), MSG_DONTWAIT) == 4, WAIT_MS));
		assert_memory_equal(b, k ? "to-1" : "to-0", 4);
	}
	for (int i = 0; i < PEERS; i++)
		close(peer[i]);
	h_fini(&t);
}

/* A DNS answer: its id and rcode, and its first A record (zero if none). Return: ANCOUNT. */
static unsigned int dns_read(const uint8_t *m, size_t n, uint16_t *id, int *rcode, uint8_t a[4])
{
	size_t off = 12;
	unsigned int an;

	assert_true(n >= 12);
	*id = be16(m);
	*rcode = m[3] & 0xf;
	assert_true(m[2] & 0x80);
	an = be16(m + 6);
	memset(a, 0, 4);
	assert_int_equal(be16(m + 4), 1);
	while (off < n && m[off])
		off += 1 + m[off];
	off += 5;
	for (unsigned int i = 0; i < an; i++) {
		if (off < n && (m[off] & 0xc0) == 0xc0)
			off += 2;
		else
			while (off < n && m[off])
				off += 1 + m[off];
		assert_true(off + 10 <= n);
		if (be16(m + off) == 1 && be16(m + off + 8) == 4 && !a[0])
			memcpy(a, m + off + 10, 4);
		off += 10 + be16(m + off + 8);
	}
	assert_true(off <= n);
	return an;
}

/* One query over UDP from the guest to @server:53; the answer's rcode and address. */
static int dns_udp(struct h *t, const struct ipaddr *server, uint16_t id, const char *name,
		   uint16_t qtype, uint8_t a[4])
{
	uint8_t q[300];
	uint16_t gport = 33000 + id % 1000, rid;
	size_t qn = b_dnsq(q, id, name, qtype);
	struct rxf *x;
	int rcode;
	const struct ipaddr *from = ip_is4(server) ? &t->cfg.guest4 : &t->cfg.guest6;

	g_send(t, b_udp(from, server, gport, 53, q, qn));
	x = take(t, p_udp_to, &gport, WAIT_MS);
	assert_non_null(x);
	assert_memory_equal(&x->p.src, server, 16);
	assert_int_equal(x->p.sport, 53);
	dns_read(x->p.data, x->p.dlen, &rid, &rcode, a);
	assert_int_equal(rid, id);
	rxf_free(x);
	return rcode;
}

static void test_dns_udp(void **state)
{
	static const uint8_t example[4] = { 93, 184, 216, 34 };
	struct h t;
	struct dnsd d;
	uint8_t a[4];

	(void)state;
	h_init(&t);
	h_rule(&t, "deny@blocked.test,deny@*.blocked.test");
	t.cfg.rebind_protection = true;
	t.cfg.dns_timeout_ms = 400;
	dnsd_start(&t, &d);
	h_start(&t);

	/* Forwarded, answered, with the guest's own id. */
	assert_int_equal(dns_udp(&t, &t.cfg.gw4, 0x1234, "example.test", 1, a), 0);
	assert_memory_equal(a, example, 4);
	assert_int_equal(d.queries, 1);
	assert_int_equal(dns_udp(&t, &t.cfg.gw6, 0x1235, "Example.TEST", 1, a), 0);
	assert_memory_equal(a, example, 4);
	assert_int_equal(d.queries, 2);
	/* The upstream's NXDOMAIN. */
	assert_int_equal(dns_udp(&t, &t.cfg.gw4, 0x1236, "nope.test", 1, a), 3);
	assert_int_equal(d.queries, 3);

	/* Denied by the policy: NXDOMAIN, and nothing asked upstream. */
	assert_int_equal(dns_udp(&t, &t.cfg.gw4, 0x2222, "blocked.test", 1, a), 3);
	assert_int_equal(dns_udp(&t, &t.cfg.gw4, 0x2223, "www.blocked.test", 28, a), 3);
	assert_int_equal(d.queries, 3);

	/* The gateway's own name, answered by us. */
	assert_int_equal(dns_udp(&t, &t.cfg.gw4, 0x3333, "host.microsandbox.internal", 1, a), 0);
	assert_memory_equal(a, t.cfg.gw4.b + 12, 4);
	assert_int_equal(d.queries, 3);

	/* Rebind protection: an answer pointing inside is NXDOMAIN. */
	assert_int_equal(dns_udp(&t, &t.cfg.gw4, 0x4444, "inside.test", 1, a), 3);
	assert_int_equal(d.queries, 4);

	/* No answer within the timeout: SERVFAIL. */
	assert_int_equal(dns_udp(&t, &t.cfg.gw4, 0x5555, "silent.test", 1, a), 2);
	assert_int_equal(d.queries, 5);
	expect_silence(&t, QUIET_MS);
	h_fini(&t);
	dnsd_stop(&d);
}

static void test_dns_udp_no_nameserver(void **state)
{
	struct h t;
	uint8_t a[4];

	(void)state;
	h_init(&t);
	h_start(&t);
	assert_int_equal(dns_udp(&t, &t.cfg.gw4, 0x1234, "example.test", 1, a), 2);
	h_fini(&t);
}

/* One DNS-over-TCP answer from what the guest received: its rcode and address. */
static int dns_tcp_answer(struct gtcp *c, uint16_t id, uint8_t a[4])
{
	size_t len;
	uint16_t rid;
	int rcode;

	assert_true(buf_size(&c->rx) >= 2);
	len = be16(buf_head(&c->rx));
	assert_true(buf_size(&c->rx) >= 2 + len);
	dns_read(buf_head(&c->rx) + 2, len, &rid, &rcode, a);
	assert_int_equal(rid, id);
	buf_consume(&c->rx, 2 + len);
	c->rx_seq += (uint32_t)(2 + len);
	return rcode;
}

static bool have_dns_answer(const struct gtcp *c)
{
	return buf_size(&c->rx) >= 2 && buf_size(&c->rx) >= 2u + be16(buf_head(&c->rx));
}

static void test_dns_tcp(void **state)
{
	static const uint8_t example[4] = { 93, 184, 216, 34 };
	struct h t;
	struct dnsd d;
	struct gtcp c;
	uint8_t q[2 + 300], a[4];
	size_t qn;

	(void)state;
	h_init(&t);
	h_rule(&t, "deny@blocked.test");
	dnsd_start(&t, &d);
	h_start(&t);
	gc_init(&t, &c, false, 41020, 53);
	gc_connect(&t, &c);
	assert_true(RUN_UNTIL(&t, c.established, WAIT_MS));

	qn = b_dnsq(q + 2, 0x1111, "example.test", 1);
	put16(q, (uint32_t)qn);
	gc_write(&t, &c, q, qn + 2);
	assert_true(RUN_UNTIL(&t, have_dns_answer(&c), WAIT_MS));
	assert_int_equal(dns_tcp_answer(&c, 0x1111, a), 0);
	assert_memory_equal(a, example, 4);
	assert_int_equal(d.tcp_queries, 1);

	/* Denied: answered by us at once. Split across two segments on the way. */
	qn = b_dnsq(q + 2, 0x2222, "blocked.test", 1);
	put16(q, (uint32_t)qn);
	gc_write(&t, &c, q, 5);
	gc_write(&t, &c, q + 5, qn + 2 - 5);
	assert_true(RUN_UNTIL(&t, have_dns_answer(&c), WAIT_MS));
	assert_int_equal(dns_tcp_answer(&c, 0x2222, a), 3);
	assert_int_equal(d.tcp_queries, 1);

	gc_fin(&t, &c);
	assert_true(RUN_UNTIL(&t, c.fin, WAIT_MS));
	assert_true(RUN_UNTIL(&t, tcp_flows(&t) == 0, WAIT_MS));
	assert_int_equal(c.after_fin, 0);
	assert_false(c.rst);
	h_fini(&t);
	dnsd_stop(&d);
}

/* A client that sends its query and its FIN at once still gets the answer, then FIN. */
static void test_dns_tcp_half_close(void **state)
{
	static const uint8_t example[4] = { 93, 184, 216, 34 };
	struct h t;
	struct dnsd d;
	struct gtcp c;
	uint8_t q[2 + 300], a[4];
	size_t qn;

	(void)state;
	h_init(&t);
	dnsd_start(&t, &d);
	h_start(&t);
	gc_init(&t, &c, false, 41021, 53);
	gc_connect(&t, &c);
	assert_true(RUN_UNTIL(&t, c.established, WAIT_MS));
	qn = b_dnsq(q + 2, 0x1111, "example.test", 1);
	put16(q, (uint32_t)qn);
	gc_seg(&t, &c, TCP_ACK | TCP_PSH | TCP_FIN, c.snd_nxt, q, qn + 2);
	c.snd_nxt += (uint32_t)(qn + 2 + 1);
	assert_true(RUN_UNTIL(&t, c.fin, WAIT_MS));
	assert_int_equal(c.after_fin, 0);
	assert_true(have_dns_answer(&c));
	assert_int_equal(dns_tcp_answer(&c, 0x1111, a), 0);
	assert_memory_equal(a, example, 4);
	assert_true(RUN_UNTIL(&t, tcp_flows(&t) == 0, WAIT_MS));
	assert_false(c.rst);
	h_fini(&t);
	dnsd_stop(&d);
}

/* A DNS length shorter than a header cannot be DNS: the connection is reset, nothing else. */
static void test_dns_tcp_bad_length_resets(void **state)
{
	struct h t;
	struct gtcp c;

	(void)state;
	h_init(&t);
	h_start(&t);
	gc_init(&t, &c, false, 41022, 53);
	gc_connect(&t, &c);
	assert_true(RUN_UNTIL(&t, c.established, WAIT_MS));
	c.segs = 0;
	gc_write(&t, &c, "\0\5abcde", 7);
	assert_true(RUN_UNTIL(&t, c.rst, WAIT_MS));
	pump(&t, QUIET_MS);
	assert_int_equal(c.segs, 1); /* the RST alone */
	assert_int_equal(tcp_flows(&t), 0);
	expect_silence(&t, 0);
	h_fini(&t);
}

/* --- tests: what is not the guest's, or not well formed ----------------------- */

static void test_foreign_source_ignored(void **state)
{
	static const char data[] = "ping";
	struct h t;
	struct ipaddr other4 = ip("10.251.0.99"), other6 = ip("fd6d:7362::99");
	struct gtcp c;
	struct net_stats s;
	int l, u;
	char b[8];

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);
	u = lo_socket(false, SOCK_DGRAM, 0);
	g_send(&t, b_echo(&other4, &t.cfg.gw4, 1, 1, data, 4));
	g_send(&t, b_echo(&other6, &t.cfg.gw6, 1, 1, data, 4));
	g_send(&t, b_udp(&other4, &t.cfg.gw4, 5555, port_of(u), "hello", 5));
	gc_init(&t, &c, false, 41030, port_of(l));
	c.me = other4;
	gc_connect(&t, &c);
	expect_silence(&t, QUIET_MS);
	assert_false(c.established || c.rst);
	assert_int_equal(accept4(l, NULL, NULL, 0), -1);
	assert_int_equal(recv(u, b, sizeof(b), MSG_DONTWAIT), -1);
	net_stats(t.n, &s);
	assert_int_equal(s.tcp_flows + s.udp_flows, 0);
	assert_int_equal(s.guest_tx_bytes, t.sent_bytes);
	close(l);
	close(u);
	h_fini(&t);
}

/* An echo request to the gateway in F, returned with its length; tests corrupt it. */
static size_t ping4(struct h *t)
{
	return b_echo(&t->cfg.guest4, &t->cfg.gw4, 0x99, 1, "abcdefgh", 8);
}

static void test_malformed_frames_ignored(void **state)
{
	static const uint8_t zero[4] = { 0 };
	struct h t;
	struct rxf *x;
	uint8_t icmp4 = IPP_ICMP, *iph = F + ETH_HDR;
	struct ipaddr mapped = ip("::ffff:10.251.0.1");
	struct gtcp c;
	size_t len;
	int l;

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);

	/* Frames shorter than their headers. */
	len = ping4(&t);
	g_frame(&t, F, 10);
	g_frame(&t, F, ETH_HDR);
	g_frame(&t, F, ETH_HDR + 19);
	g_frame(&t, F, ETH_HDR + 20 + 4);
	g_raw(&t, zero, 4); /* an empty frame */
	/* IPv4 lengths that do not add up. */
	put16(iph + 2, (uint32_t)(len - ETH_HDR + 1));
	g_send(&t, len);
	len = ping4(&t);
	put16(iph + 2, 19);
	g_send(&t, len);
	len = ping4(&t);
	iph[0] = 0x44;
	g_send(&t, len);
	len = ping4(&t);
	iph[0] = 0x4f;
	g_send(&t, len);
	len = ping4(&t);
	iph[0] = 0x65;
	g_send(&t, len);
	/* Fragments: more to come, or an offset. */
	len = ping4(&t);
	put16(iph + 6, 0x2000);
	g_send(&t, len);
	len = ping4(&t);
	put16(iph + 6, 0x0010);
	g_send(&t, len);
	/* TCP: a header offset too small, too large; a truncated header; bad options. */
	len = b_tcp(&t.cfg.guest4, &t.cfg.gw4, 41040, port_of(l), 1, 0, TCP_SYN, 1000, NULL, 0,
		    NULL, 0);
	F[ETH_HDR + 20 + 12] = 0x40;
	g_send(&t, len);
	F[ETH_HDR + 20 + 12] = 0x60;
	g_send(&t, len);
	len = b_tcp(&t.cfg.guest4, &t.cfg.gw4, 41040, port_of(l), 1, 0, TCP_SYN, 1000, NULL, 0,
		    NULL, 0);
	put16(iph + 2, 30);
	g_send(&t, ETH_HDR + 30);
	{
		static const uint8_t bad[][4] = {
			{ 2, 0, 0, 0 }, /* length 0 */
			{ 2, 9, 0, 0 }, /* past the end */
			{ 1, 1, 1, 3 }, /* a kind with no length byte */
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			g_send(&t, b_tcp(&t.cfg.guest4, &t.cfg.gw4, 41040, port_of(l), 1, 0,
					 TCP_SYN, 1000, bad[i], 4, NULL, 0));
	}
	/* UDP lengths: shorter than its header, longer than the packet. */
	len = b_udp(&t.cfg.guest4, &t.cfg.gw4, 5555, 53, "x", 1);
	put16(F + ETH_HDR + 20 + 4, 7);
	g_send(&t, len);
	put16(F + ETH_HDR + 20 + 4, 10);
	g_send(&t, len);
	/* IPv6: a payload longer than the frame, a truncated header, an extension header. */
	len = b_echo(&t.cfg.guest6, &t.cfg.gw6, 1, 1, "abcd", 4);
	put16(iph + 4, 13);
	g_send(&t, len);
	g_frame(&t, F, ETH_HDR + 39);
	len = b_echo(&t.cfg.guest6, &t.cfg.gw6, 1, 1, "abcd", 4);
	iph[6] = 0; /* hop-by-hop options */
	g_send(&t, len);
	/* An IPv4 address dressed as IPv6 is not the guest's IPv6. */
	g_send(&t, b_echo(&t.cfg.guest6, &mapped, 1, 1, "abcd", 4));
	gc_init(&t, &c, true, 41041, port_of(l));
	c.peer = mapped;
	gc_connect(&t, &c);
	/* ICMPv6 in IPv4 (a solicitation for the gateway); ICMP in IPv6 (an echo request). */
	{
		uint8_t *m = b_ip(&t.cfg.guest4, &t.cfg.gw4, IPP_ICMPV6, 32);

		memset(m, 0, 32);
		m[0] = 135;
		memcpy(m + 8, t.cfg.gw6.b, 16);
		g_send(&t, b_finish(m, 32, 2));
		m = b_ip(&t.cfg.guest6, &t.cfg.gw6, IPP_ICMP, 12);
		memset(m, 0, 12);
		m[0] = 128;
		g_send(&t, b_finish(m, 12, 2));
	}
	/* ARP that is not Ethernet/IPv4, or short; an unknown ethertype. */
	len = b_arp(1, &t.cfg.guest4, &t.cfg.gw4);
	g_frame(&t, F, len - 1);
	F[ETH_HDR + 4] = 8;
	g_send(&t, len);
	len = b_arp(1, &t.cfg.guest4, &t.cfg.gw4);
	put16(F + 12, 0x88cc);
	g_send(&t, len);
	/* An ICMP message too short for an echo. */
	len = ping4(&t);
	put16(iph + 2, 24);
	g_frame(&t, F, ETH_HDR + 24);

	expect_silence(&t, QUIET_MS);
	assert_int_equal(accept4(l, NULL, NULL, 0), -1);
	assert_int_equal(tcp_flows(&t), 0);

	/* IPv4 options inside the header length are skipped: this echo is answered. */
	{
		uint8_t *m;

		m = b_ip(&t.cfg.guest4, &t.cfg.gw4, IPP_ICMP, 12);
		iph[0] = 0x46;
		put16(iph + 2, 24 + 12);
		memset(iph + 20, 1, 4); /* NOPs */
		put16(iph + 10, 0);
		put16(iph + 10, (uint16_t)~fold(sum16(0, iph, 24)));
		m = iph + 24;
		m[0] = 8;
		m[1] = 0;
		put16(m + 4, 0x55);
		put16(m + 6, 2);
		memcpy(m + 8, "opts", 4);
		len = b_finish(m, 12, 2);
		g_send(&t, len);
	}
	x = take(&t, p_proto, &icmp4, WAIT_MS);
	assert_non_null(x);
	assert_int_equal(x->p.icmp_id, 0x55);
	assert_memory_equal(x->p.data, "opts", 4);
	rxf_free(x);

	/* The stack is still there, and counted every byte. */
	g_send(&t, ping4(&t));
	x = take(&t, p_proto, &icmp4, WAIT_MS);
	assert_non_null(x);
	assert_int_equal(x->p.icmp_id, 0x99);
	rxf_free(x);
	{
		struct net_stats s;

		net_stats(t.n, &s);
		assert_int_equal(s.guest_tx_bytes, t.sent_bytes);
	}
	close(l);
	h_fini(&t);
}

/* --- tests: descriptors and bounds a guest cannot get around ------------------ */

static struct rlimit saved_nofile;

/* Lowers the soft RLIMIT_NOFILE to @cur; restore_nofile() (also the teardown) undoes it. */
static void lower_nofile(rlim_t cur)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (!saved_nofile.rlim_cur)
		saved_nofile = rl;
	rl.rlim_cur = cur;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static int restore_nofile(void **state)
{
	(void)state;
	if (saved_nofile.rlim_cur)
		setrlimit(RLIMIT_NOFILE, &saved_nofile);
	memset(&saved_nofile, 0, sizeof(saved_nofile));
	return 0;
}

static uint64_t cpu_ms(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* Frames the test does not look at any more. */
static void q_clear(struct h *t)
{
	for (size_t i = 0; i < t->nq; i++)
		rxf_free(t->q[i]);
	t->nq = 0;
}

/* The guest's answer to its SYN from @gport: 1 for SYN-ACK, 0 for RST, -1 for none. */
static int syn_answer(struct h *t, uint16_t gport)
{
	struct rxf *x = take(t, p_tcp_to, &gport, WAIT_MS);
	int r;

	if (!x)
		return -1;
	r = (x->p.flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK) ? 1
	    : (x->p.flags & TCP_RST)				      ? 0
								      : -1;
	rxf_free(x);
	return r;
}

/*
 * With few descriptors (the soft RLIMIT_NOFILE), each kind of flow gets its
 * share and no more: extra UDP flows are dropped, extra SYNs reset, and the
 * stack stays usable (DNS, existing flows, a new flow once one ended) and
 * idle when nothing happens.
 */
static void test_fd_budget(void **state)
{
	enum { EXTRA = 6 };
	static const uint8_t example[4] = { 93, 184, 216, 34 };
	struct h t;
	struct dnsd d;
	struct net_stats s;
	unsigned int udp_max, tcp_max, got = 0, accepted = 0;
	uint64_t ev0, cpu0;
	uint8_t a[4];
	char b[8];
	int u, l, fd;

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	dnsd_start(&t, &d);
	lower_nofile(NET_FD_RESERVE + 64);
	h_start(&t);
	/* The budgets are taken at start; the test's own sockets need no more than the old limit.
	 */
	restore_nofile(NULL);
	udp_max = t.n->fd_max[NFD_UDP];
	tcp_max = t.n->fd_max[NFD_TCP];
	assert_int_equal(tcp_max, 32);
	assert_int_equal(udp_max, 16);
	assert_int_equal(t.n->fd_max[NFD_DNS], 8);
	assert_int_equal(t.n->fd_max[NFD_ICMP], 4);

	/* UDP: one flow (one host socket) per guest port, up to the budget. */
	u = lo_socket(false, SOCK_DGRAM, 0);
	for (unsigned int i = 0; i < udp_max + EXTRA; i++)
		g_send(&t,
		       b_udp(&t.cfg.guest4, &t.cfg.gw4, (uint16_t)(20000 + i), port_of(u), "x", 1));
	assert_true(RUN_UNTIL(&t, (got += recv(u, b, sizeof(b), MSG_DONTWAIT) == 1) >= udp_max,
			      WAIT_MS));
	pump(&t, QUIET_MS);
	while (recv(u, b, sizeof(b), MSG_DONTWAIT) == 1)
		got++;
	assert_int_equal(got, udp_max);
	net_stats(t.n, &s);
	assert_int_equal(s.udp_flows, udp_max);
	assert_int_equal(s.fd_refused, EXTRA);
	assert_int_equal(s.fds, udp_max);
	/* A flow that has its socket goes on. */
	g_send(&t, b_udp(&t.cfg.guest4, &t.cfg.gw4, 20000, port_of(u), "y", 1));
	assert_true(RUN_UNTIL(&t, recv(u, b, sizeof(b), MSG_DONTWAIT) == 1, WAIT_MS));
	assert_int_equal(b[0], 'y');

	/* TCP: SYN-ACK up to the budget, then RST; the host sees only the allowed ones. */
	l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_storage ss;
		socklen_t sl = lo_addr(false, 0, &ss);

		assert_int_equal(bind(l, (struct sockaddr *)&ss, sl), 0);
		assert_int_equal(listen(l, 128), 0);
	}
	for (unsigned int i = 0; i < tcp_max + EXTRA; i++) {
		g_send(&t, b_tcp(&t.cfg.guest4, &t.cfg.gw4, (uint16_t)(30000 + i), port_of(l), 1000,
				 0, TCP_SYN, 512, NULL, 0, NULL, 0));
		assert_int_equal(syn_answer(&t, (uint16_t)(30000 + i)), i < tcp_max ? 1 : 0);
	}
	while ((fd = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		accepted++;
		close(fd);
	}
	assert_int_equal(accepted, tcp_max);
	net_stats(t.n, &s);
	assert_int_equal(s.tcp_flows, tcp_max);
	assert_int_equal(s.fd_refused, 2 * EXTRA);
	assert_int_equal(s.fds, udp_max + tcp_max);

	/* DNS has its own share: the gateway still answers. */
	assert_int_equal(dns_udp(&t, &t.cfg.gw4, 0x1234, "example.test", 1, a), 0);
	assert_memory_equal(a, example, 4);

	/* Idle: the stack does not wake (no busy loop) with every budget spent. */
	q_clear(&t);
	ev0 = t.events;
	cpu0 = cpu_ms();
	pump(&t, 1000);
	assert_true(t.events - ev0 < 20);
	assert_true(cpu_ms() - cpu0 < 300);

	/* One connection ends: its descriptor is free for the next. */
	g_send(&t, b_tcp(&t.cfg.guest4, &t.cfg.gw4, 30000, port_of(l), 1001, 0, TCP_RST, 0, NULL, 0,
			 NULL, 0));
	assert_true(RUN_UNTIL(&t, tcp_flows(&t) == tcp_max - 1, WAIT_MS));
	g_send(&t, b_tcp(&t.cfg.guest4, &t.cfg.gw4, 31000, port_of(l), 1000, 0, TCP_SYN, 512, NULL,
			 0, NULL, 0));
	assert_int_equal(syn_answer(&t, 31000), 1);
	g_send(&t, b_tcp(&t.cfg.guest4, &t.cfg.gw4, 31001, port_of(l), 1000, 0, TCP_SYN, 512, NULL,
			 0, NULL, 0));
	assert_int_equal(syn_answer(&t, 31001), 0);
	/* Every flow gone, every descriptor given back. */
	q_clear(&t);
	net_timer(t.n, net_now() + UDP_IDLE_MS + 1);
	assert_true(RUN_UNTIL(&t, (net_stats(t.n, &s), s.udp_flows == 0), WAIT_MS));
	close(u);
	close(l);
	h_fini(&t);
	dnsd_stop(&d);
}

/*
 * A published port flooded while the process has no descriptor left: accept()
 * fails with EMFILE and the listener rests instead of waking the loop again
 * and again; once descriptors are free the waiting connections get through.
 */
static void test_fd_exhausted_listener_rests(void **state)
{
	enum { K = 20 };
	struct h t;
	uint16_t gport = 8080;
	uint64_t ev0, cpu0, ev, cpu;
	int c[K], hole;

	(void)state;
	h_init(&t);
	t.cfg.nports = 1;
	t.ports[0] = (struct net_port){ .bind = ip("127.0.0.1"),
					.host_port = free_port(),
					.guest_port = gport };
	h_start(&t);
	for (int i = 0; i < K; i++)
		c[i] = lo_connect(false, t.ports[0].host_port);
	/* Every descriptor below the limit taken: the next accept() is EMFILE. */
	hole = dup(0);
	assert_true(hole >= 0);
	lower_nofile((rlim_t)hole + 1);
	ev0 = t.events;
	cpu0 = cpu_ms();
	pump(&t, 1000);
	ev = t.events - ev0;
	cpu = cpu_ms() - cpu0;
	restore_nofile(NULL);
	close(hole);
	print_message("listener without descriptors, 1 s: %llu wakeups, %llu ms of CPU\n",
		      (unsigned long long)ev, (unsigned long long)cpu);
	assert_true(ev < 20);
	assert_true(cpu < 300);
	assert_int_equal(tcp_flows(&t), 0);
	/* Descriptors again: every waiting connection becomes the gateway's SYN to the guest. */
	for (int i = 0; i < K; i++) {
		struct rxf *x = take(&t, p_tcp_to, &gport, WAIT_MS);

		assert_non_null(x);
		assert_int_equal(x->p.flags, TCP_SYN);
		rxf_free(x);
	}
	assert_int_equal(tcp_flows(&t), K);
	for (int i = 0; i < K; i++)
		close(c[i]);
	h_fini(&t);
}

/* A DNS-over-TCP connection to the gateway, established. */
static void dns_conn(struct h *t, struct gtcp *c, uint16_t gport)
{
	gc_init(t, c, false, gport, 53);
	gc_connect(t, c);
	assert_true(RUN_UNTIL(t, c->established, WAIT_MS));
}

/* Writes @count queries for @name on @c, all at once. */
static void dns_ask(struct h *t, struct gtcp *c, uint16_t id, const char *name, int count)
{
	uint8_t q[16 * (2 + 300)];
	size_t off = 0;

	assert_true(count <= 16);
	for (int i = 0; i < count; i++) {
		size_t qn = b_dnsq(q + off + 2, (uint16_t)(id + i), name, 1);

		put16(q + off, (uint32_t)qn);
		off += 2 + qn;
	}
	gc_write(t, c, q, off);
}

/* DNS over TCP is a connection: --max-connections counts it like any other. */
static void test_dns_tcp_max_connections(void **state)
{
	struct h t;
	struct gtcp c[5];
	uint8_t a[4];

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	t.cfg.max_connections = 3;
	h_start(&t);
	for (int i = 0; i < 3; i++)
		dns_conn(&t, &c[i], (uint16_t)(42000 + i));
	/* The next ones are refused at once, however many come. */
	for (int i = 0; i < 20; i++) {
		g_send(&t, b_tcp(&t.cfg.guest4, &t.cfg.gw4, (uint16_t)(42100 + i), 53, 1000, 0,
				 TCP_SYN, 512, NULL, 0, NULL, 0));
		assert_int_equal(syn_answer(&t, (uint16_t)(42100 + i)), 0);
	}
	assert_int_equal(tcp_flows(&t), 3);
	/* Those in are served. */
	dns_ask(&t, &c[0], 0x100, "host.microsandbox.internal", 1);
	assert_true(RUN_UNTIL(&t, have_dns_answer(&c[0]), WAIT_MS));
	assert_int_equal(dns_tcp_answer(&c[0], 0x100, a), 0);
	/* One ends: there is room for the next. */
	gc_rst(&t, &c[1]);
	assert_true(RUN_UNTIL(&t, tcp_flows(&t) == 2, WAIT_MS));
	dns_conn(&t, &c[3], 42003);
	gc_init(&t, &c[4], false, 42004, 53);
	gc_connect(&t, &c[4]);
	assert_true(RUN_UNTIL(&t, c[4].rst, WAIT_MS));
	assert_int_equal(tcp_flows(&t), 3);
	h_fini(&t);
}

/* A length no query has (it would never fit the connection's bounded buffer): reset. */
static void test_dns_tcp_oversized_query_resets(void **state)
{
	struct h t;
	struct gtcp c, ok;
	uint8_t hdr[2], a[4];

	(void)state;
	h_init(&t);
	h_start(&t);
	dns_conn(&t, &ok, 42250);
	dns_ask(&t, &ok, 0x250, "host.microsandbox.internal", 1);
	assert_true(RUN_UNTIL(&t, have_dns_answer(&ok), WAIT_MS));
	assert_int_equal(dns_tcp_answer(&ok, 0x250, a), 0);
	dns_conn(&t, &c, 42251);
	put16(hdr, DNS_TCP_QUERY_MAX + 1);
	gc_write(&t, &c, hdr, 2);
	assert_true(RUN_UNTIL(&t, c.rst, WAIT_MS));
	assert_false(ok.rst);
	assert_int_equal(tcp_flows(&t), 1);
	h_fini(&t);
}

/* A DNS-over-TCP connection that does nothing ends after DNS_TCP_IDLE_MS; others do not. */
static void test_dns_tcp_idle_timeout(void **state)
{
	struct h t;
	struct gtcp c, other;
	struct net_stats s;
	uint8_t a[4];
	uint64_t t0;
	int l, fd;

	(void)state;
	h_init(&t);
	h_rule(&t, "allow@loopback");
	h_start(&t);
	l = lo_socket(false, SOCK_STREAM, 0);
	fd = connect_through(&t, &other, false, 42200, port_of(l), l);
	dns_conn(&t, &c, 42201);
	dns_ask(&t, &c, 0x200, "host.microsandbox.internal", 1);
	assert_true(RUN_UNTIL(&t, have_dns_answer(&c), WAIT_MS));
	assert_int_equal(dns_tcp_answer(&c, 0x200, a), 0);
	pump(&t, QUIET_MS);
	t0 = net_now();
	/* Not yet. */
	net_timer(t.n, t0 + DNS_TCP_IDLE_MS - 2000);
	pump(&t, QUIET_MS);
	assert_false(c.rst);
	assert_int_equal(tcp_flows(&t), 2);
	/* Idle long enough: reset; the connection with a host socket stays. */
	net_timer(t.n, t0 + DNS_TCP_IDLE_MS + 1);
	assert_true(RUN_UNTIL(&t, c.rst, WAIT_MS));
	assert_false(other.rst);
	assert_int_equal(tcp_flows(&t), 1);
	net_stats(t.n, &s);
	assert_int_equal(s.dns_tcp, 0);
	assert_int_equal(s.dns_tcp_reset, 1);
	close(fd);
	close(l);
	h_fini(&t);
}

/*
 * A guest that keeps a zero window while it asks and asks makes the stack
 * hold at most DNS_TCP_OWED answers per connection and dns_tx_max in all;
 * the rest of its queries wait in a bounded buffer; zero-window probing
 * does not keep such a connection forever. A guest that reads gets every answer.
 */
static void test_dns_tcp_zero_window_bounded(void **state)
{
	enum { N = 5, Q = 10 };
	struct h t;
	struct gtcp c[N], good, over;
	struct net_stats s;
	size_t ans, held;
	uint8_t a[4];

	(void)state;
	h_init(&t);
	h_start(&t);

	/* The size of one answer, from a guest that reads: all Q answers come, in order. */
	dns_conn(&t, &good, 42300);
	dns_ask(&t, &good, 0x300, "host.microsandbox.internal", Q);
	for (int i = 0; i < Q; i++) {
		assert_true(RUN_UNTIL(&t, have_dns_answer(&good), WAIT_MS));
		ans = 2 + be16(buf_head(&good.rx));
		assert_int_equal(dns_tcp_answer(&good, (uint16_t)(0x300 + i), a), 0);
		assert_memory_equal(a, t.cfg.gw4.b + 12, 4);
	}
	gc_fin(&t, &good);
	assert_true(RUN_UNTIL(&t, tcp_flows(&t) == 0, WAIT_MS));
	assert_false(good.rst);
	net_stats(t.n, &s);
	assert_int_equal(s.dns_tcp_held, 0);

	/* Zero windows: DNS_TCP_OWED answers held per connection, the rest waits. */
	for (int i = 0; i < N; i++) {
		dns_conn(&t, &c[i], (uint16_t)(42310 + i));
		c[i].wnd = 0;
		gc_ack(&t, &c[i]);
		dns_ask(&t, &c[i], 0x400, "host.microsandbox.internal", Q);
	}
	pump(&t, QUIET_MS);
	net_stats(t.n, &s);
	held = (size_t)N * DNS_TCP_OWED * ans;
	print_message("%d guests with a zero window, %d queries each: %zu answer bytes held\n", N,
		      Q, s.dns_tcp_held);
	assert_int_equal(s.dns_tcp_held, held);
	for (int i = 0; i < N; i++) {
		struct tcp_flow *f = flow_of(&t, &c[i]);

		assert_non_null(f);
		assert_int_equal(f->dns_nans, DNS_TCP_OWED);
		assert_true(buf_size(&f->g2h) <= DNS_TCP_RX);
		assert_int_equal(gc_got(&c[i]), 0);
	}

	/* In all: one more answer fits, the next resets its connection. */
	t.n->dns_tx_max = held + ans;
	dns_conn(&t, &over, 42320);
	over.wnd = 0;
	gc_ack(&t, &over);
	dns_ask(&t, &over, 0x500, "host.microsandbox.internal", 2);
	assert_true(RUN_UNTIL(&t, over.rst, WAIT_MS));
	net_stats(t.n, &s);
	assert_int_equal(s.dns_tcp_held, held);
	assert_int_equal(s.dns_tcp_reset, 1);
	assert_int_equal(s.dns_tcp, N);

	/* Probed, answered with a zero window, and still ended: the timers are all it takes. */
	for (int k = 0; k < 40 && tcp_flows(&t); k++) {
		uint64_t dl = net_deadline(t.n);

		assert_true(dl != 0);
		net_timer(t.n, dl);
		pump(&t, 20);
		q_clear(&t);
	}
	for (int i = 0; i < N; i++)
		assert_true(c[i].rst);
	net_stats(t.n, &s);
	assert_int_equal(s.dns_tcp, 0);
	assert_int_equal(s.dns_tcp_held, 0);
	h_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arp_reply_for_gateway),
		cmocka_unit_test(test_ndp_advert_for_gateway),
		cmocka_unit_test(test_ping_gateway),
		cmocka_unit_test(test_link_reassembles_frames),
		cmocka_unit_test(test_link_oversized_frame_drops_link),
		cmocka_unit_test(test_link_backpressure_bounds_memory),
		cmocka_unit_test(test_tcp_bulk_v4),
		cmocka_unit_test(test_tcp_bulk_v6),
		cmocka_unit_test(test_tcp_host_reset),
		cmocka_unit_test(test_tcp_guest_reset),
		cmocka_unit_test(test_tcp_closed_port_resets),
		cmocka_unit_test(test_tcp_denied_resets),
		cmocka_unit_test(test_tcp_window_bounds_sending),
		cmocka_unit_test(test_tcp_zero_window_probe),
		cmocka_unit_test(test_tcp_retransmit),
		cmocka_unit_test(test_tcp_max_connections),
		cmocka_unit_test(test_tcp_published_port),
		cmocka_unit_test(test_tcp_published_port_ingress_denied),
		cmocka_unit_test(test_udp_flow_v4),
		cmocka_unit_test(test_udp_flow_v6),
		cmocka_unit_test(test_udp_denied),
		cmocka_unit_test(test_udp_published_port_many_peers),
		cmocka_unit_test(test_dns_udp),
		cmocka_unit_test(test_dns_udp_no_nameserver),
		cmocka_unit_test(test_dns_tcp),
		cmocka_unit_test(test_dns_tcp_half_close),
		cmocka_unit_test(test_dns_tcp_bad_length_resets),
		cmocka_unit_test(test_foreign_source_ignored),
		cmocka_unit_test(test_malformed_frames_ignored),
		cmocka_unit_test_teardown(test_fd_budget, restore_nofile),
		cmocka_unit_test_teardown(test_fd_exhausted_listener_rests, restore_nofile),
		cmocka_unit_test(test_dns_tcp_max_connections),
		cmocka_unit_test(test_dns_tcp_oversized_query_resets),
		cmocka_unit_test(test_dns_tcp_idle_timeout),
		cmocka_unit_test(test_dns_tcp_zero_window_bounded),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
