// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for pkt_parse(), which reads every frame the guest sends:
 * whatever it accepts must lie within the input, with lengths that agree
 * with the headers; and what the builders make of a parsed frame (the
 * stack's answers) must parse back to the same fields, with checksums that
 * an independent sum here verifies.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "net/addr.h"
#include "net/frame.h"

static uint8_t out[NET_FRAME_MAX];

static unsigned int be16(const uint8_t *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

/* [@p, @p + @n) lies within [@base, @base + @len). */
static bool within(const uint8_t *base, size_t len, const uint8_t *p, size_t n)
{
	return p >= base && p <= base + len && n <= (size_t)(base + len - p);
}

static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)(p[n - 1] << 8);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

/* The IP and transport checksums of a frame a builder made verify. */
static void check_sums(const uint8_t *f, size_t len)
{
	const uint8_t *iph = f + ETH_HDR, *l4;
	uint8_t ph[8] = { 0 }, proto;
	uint32_t s;
	size_t l4len;

	if (be16(f + 12) == ETH_P_IPV4) {
		CHECK(len >= ETH_HDR + 20 && iph[0] == 0x45 && be16(iph + 2) == len - ETH_HDR);
		CHECK(sum16(0, iph, 20) == 0xffff);
		proto = iph[9];
		l4 = iph + 20;
		l4len = len - ETH_HDR - 20;
		ph[1] = proto;
		ph[2] = (uint8_t)(l4len >> 8);
		ph[3] = (uint8_t)l4len;
		s = proto == IPP_ICMP ? 0 : sum16(sum16(0, iph + 12, 8), ph, 4);
	} else {
		CHECK(be16(f + 12) == ETH_P_IPV6);
		CHECK(len >= ETH_HDR + 40 && iph[0] >> 4 == 6 &&
		      be16(iph + 4) == len - ETH_HDR - 40);
		proto = iph[6];
		l4 = iph + 40;
		l4len = len - ETH_HDR - 40;
		ph[2] = (uint8_t)(l4len >> 8);
		ph[3] = (uint8_t)l4len;
		ph[7] = proto;
		s = sum16(sum16(0, iph + 8, 32), ph, 8);
	}
	CHECK(sum16(s, l4, l4len) == 0xffff);
}

/* The ends of a reply to @p: from where the frame went, to where it came from. */
static void ends(const struct pkt *p, struct frame_ends *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->guest_mac, p->src_mac, 6);
	memcpy(e->gw_mac, p->dst_mac, 6);
	e->guest = p->src;
	e->remote = p->dst;
	e->guest_port = p->sport;
	e->remote_port = p->dport;
}

/* A reply @len bytes long (0: it did not fit) parses back as one from @p's destination. */
static void check_reply(const struct pkt *p, size_t len, size_t need, struct pkt *q)
{
	if (!len) {
		CHECK(need > sizeof(out));
		return;
	}
	CHECK(len == need);
	CHECK(pkt_parse(out, len, q) == 0);
	check_sums(out, len);
	CHECK(!memcmp(q->dst_mac, p->src_mac, 6) && !memcmp(q->src_mac, p->dst_mac, 6));
	CHECK(q->v6 == p->v6 && q->proto == p->proto);
	CHECK(ip_equal(&q->src, &p->dst) && ip_equal(&q->dst, &p->src));
}

static void round_trip(const struct pkt *p)
{
	size_t ih = p->v6 ? 40 : 20, len, opt;
	struct frame_ends e;
	struct pkt q;

	ends(p, &e);
	switch (p->proto) {
	case IPP_TCP:
		opt = (p->mss ? 4 : 0) + (p->wscale >= 0 ? 4 : 0);
		len = frame_tcp(out, sizeof(out), &e, p->seq, p->ack, p->flags, p->window, p->mss,
				p->wscale, p->data, p->dlen);
		check_reply(p, len, ETH_HDR + ih + 20 + opt + p->dlen, &q);
		if (!len)
			return;
		CHECK(q.sport == p->dport && q.dport == p->sport);
		CHECK(q.seq == p->seq && q.ack == p->ack && q.flags == p->flags);
		CHECK(q.window == p->window && q.mss == p->mss && q.wscale == p->wscale);
		break;
	case IPP_UDP:
		len = frame_udp(out, sizeof(out), &e, p->data, p->dlen);
		check_reply(p, len, ETH_HDR + ih + 8 + p->dlen, &q);
		if (!len)
			return;
		CHECK(q.sport == p->dport && q.dport == p->sport);
		CHECK(be16(q.l4 + 6) != 0);
		break;
	case IPP_ICMP:
	case IPP_ICMPV6:
		len = frame_echo_reply(out, sizeof(out), &e, p->icmp_id, p->icmp_seq, p->data,
				       p->dlen);
		check_reply(p, len, ETH_HDR + ih + 8 + p->dlen, &q);
		if (!len)
			return;
		CHECK(q.icmp_type == (p->v6 ? 129 : 0) && q.icmp_code == 0);
		CHECK(q.icmp_id == p->icmp_id && q.icmp_seq == p->icmp_seq);
		break;
	default:
		CHECK(0);
		return;
	}
	CHECK(q.dlen == p->dlen && (!q.dlen || !memcmp(q.data, p->data, q.dlen)));
}

static void check_arp(const struct pkt *p)
{
	static const uint8_t gw_mac[6] = { 0x02, 0x6d, 0x73, 0, 0, 1 };
	struct pkt q;
	size_t len;

	CHECK(p->len >= ETH_HDR + 28);
	CHECK(ip_is4(&p->arp_sender) && ip_is4(&p->arp_target));
	CHECK(!memcmp(p->arp_sender.b + 12, p->eth + ETH_HDR + 14, 4));
	CHECK(!memcmp(p->arp_target.b + 12, p->eth + ETH_HDR + 24, 4));
	CHECK(!p->l4 && !p->l4len && !p->data && !p->dlen);
	len = frame_arp_reply(out, sizeof(out), p->src_mac, &p->arp_sender, gw_mac, &p->arp_target);
	CHECK(len == ETH_HDR + 28);
	CHECK(pkt_parse(out, len, &q) == 0);
	CHECK(q.ethertype == ETH_P_ARP && q.arp_op == 2);
	CHECK(ip_equal(&q.arp_sender, &p->arp_target) && ip_equal(&q.arp_target, &p->arp_sender));
	CHECK(!memcmp(q.dst_mac, p->src_mac, 6) && !memcmp(q.src_mac, gw_mac, 6));
}

/* A neighbour solicitation's answer, for a target that is an IPv6 address. */
static void check_ns(const struct pkt *p)
{
	static const uint8_t gw_mac[6] = { 0x02, 0x6d, 0x73, 0, 0, 1 };
	struct ipaddr target;
	struct pkt q;
	size_t len;

	if (p->icmp_type != 135 || p->l4len < 24)
		return;
	target = ip_from6(p->l4 + 8);
	if (ip_is4(&target))
		return;
	len = frame_neigh_adv(out, sizeof(out), p->src_mac, &p->src, gw_mac, &target);
	CHECK(len == ETH_HDR + 40 + 32);
	CHECK(pkt_parse(out, len, &q) == 0);
	check_sums(out, len);
	CHECK(q.v6 && q.proto == IPP_ICMPV6 && q.icmp_type == 136 && q.hop_limit == 255);
	CHECK(ip_equal(&q.src, &target) && ip_equal(&q.dst, &p->src));
	CHECK(!memcmp(q.l4 + 8, target.b, 16));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkt p;
	size_t ih, off;
	int r = pkt_parse(data, size, &p);
	volatile uint8_t x = 0;

	CHECK(r == 0 || r == -EBADMSG || r == -EPROTONOSUPPORT);
	if (r < 0)
		return 0;
	CHECK(size >= ETH_HDR && size <= NET_FRAME_MAX);
	CHECK(p.eth == data && p.len == size);
	CHECK(p.ethertype == be16(data + 12));
	CHECK(!memcmp(p.dst_mac, data, 6) && !memcmp(p.src_mac, data + 6, 6));
	if (p.ethertype == ETH_P_ARP) {
		check_arp(&p);
		return 0;
	}
	CHECK(p.ethertype == (p.v6 ? ETH_P_IPV6 : ETH_P_IPV4));
	/* The addresses are of the frame's own family: IPv6 is never v4-mapped. */
	CHECK(ip_is4(&p.src) == !p.v6 && ip_is4(&p.dst) == !p.v6);
	ih = p.v6 ? 40 : (size_t)(data[ETH_HDR] & 0xf) * 4;
	CHECK(p.l4 == data + ETH_HDR + ih);
	CHECK(within(data, size, p.l4, p.l4len));
	CHECK(p.l4len == (p.v6 ? be16(data + ETH_HDR + 4) : be16(data + ETH_HDR + 2) - ih));
	CHECK(p.l4len <= NET_MTU);
	CHECK(within(p.l4, p.l4len, p.data, p.dlen));
	CHECK(p.dlen <= p.l4len);
	switch (p.proto) {
	case IPP_TCP:
		off = (size_t)(p.l4[12] >> 4) * 4;
		CHECK(off >= 20 && p.data == p.l4 + off && p.dlen == p.l4len - off);
		CHECK(p.sport == be16(p.l4) && p.dport == be16(p.l4 + 2));
		CHECK(!(p.flags & 0xc0) && p.window == be16(p.l4 + 14));
		CHECK(p.wscale >= -1 && p.wscale <= 14);
		break;
	case IPP_UDP:
		CHECK(p.data == p.l4 + 8 && p.dlen == be16(p.l4 + 4) - 8);
		CHECK(p.sport == be16(p.l4) && p.dport == be16(p.l4 + 2));
		break;
	case IPP_ICMP:
	case IPP_ICMPV6:
		CHECK(p.proto == (p.v6 ? IPP_ICMPV6 : IPP_ICMP));
		CHECK(p.data == p.l4 + 8 && p.dlen == p.l4len - 8);
		CHECK(p.icmp_type == p.l4[0] && p.icmp_id == be16(p.l4 + 4));
		if (p.v6)
			check_ns(&p);
		break;
	default:
		CHECK(0);
	}
	/* Every byte it points at is readable (ASan says so if not). */
	for (size_t i = 0; i < p.dlen; i++)
		x ^= p.data[i];
	(void)x;
	round_trip(&p);
	return 0;
}
