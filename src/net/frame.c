// SPDX-License-Identifier: Apache-2.0
/*
 * Guest frames: parsing (bounds-checked) and building (checksummed).
 *
 * DOC: Theory of Operation
 * A frame from the guest is read once, front to back, through a cursor that
 * refuses to step past what is there: the Ethernet header, then ARP or IP
 * (the IP header's own lengths are checked against the frame, and the
 * transport header against the IP payload), then TCP/UDP/ICMP headers and
 * TCP options. Fragments, IPv6 extension headers and IPv4 options beyond
 * the header length are refused rather than half-understood: the guest's
 * kernel does not send them to a gateway with an MTU this large, and a guest
 * that does is misbehaving. Frames to the guest are built in one buffer with
 * the checksums the guest verifies (the backend has no offloads).
 */
#include "net/frame.h"

#include <errno.h>
#include <string.h>

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t csum_add(uint32_t sum, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t s = sum;

	while (n >= 2) {
		s += (uint32_t)(b[0] << 8 | b[1]);
		b += 2;
		n -= 2;
	}
	if (n)
		s += (uint32_t)(b[0] << 8);
	while (s >> 32)
		s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* TCP options: MSS (2) and window scale (3); others are skipped, a malformed list refused. */
static int tcp_options(const uint8_t *o, size_t n, struct pkt *p)
{
	size_t i = 0;

	while (i < n) {
		uint8_t kind = o[i];

		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= n || o[i + 1] < 2 || o[i + 1] > n - i)
			return -EBADMSG;
		if (kind == 2 && o[i + 1] == 4)
			p->mss = be16(o + i + 2);
		else if (kind == 3 && o[i + 1] == 3)
			p->wscale = o[i + 2] > 14 ? 14 : o[i + 2];
		i += o[i + 1];
	}
	return 0;
}

static int transport(struct pkt *p)
{
	const uint8_t *t = p->l4;
	size_t n = p->l4len;

	switch (p->proto) {
	case IPP_TCP: {
		size_t off;

		if (n < 20)
			return -EBADMSG;
		off = (size_t)(t[12] >> 4) * 4;
		if (off < 20 || off > n)
			return -EBADMSG;
		p->sport = be16(t);
		p->dport = be16(t + 2);
		p->seq = be32(t + 4);
		p->ack = be32(t + 8);
		p->flags = t[13] & 0x3f;
		p->window = be16(t + 14);
		if (tcp_options(t + 20, off - 20, p) < 0)
			return -EBADMSG;
		p->data = t + off;
		p->dlen = n - off;
		return 0;
	}
	case IPP_UDP: {
		size_t ulen;

		if (n < 8)
			return -EBADMSG;
		ulen = be16(t + 4);
		if (ulen < 8 || ulen > n)
			return -EBADMSG;
		p->sport = be16(t);
		p->dport = be16(t + 2);
		p->data = t + 8;
		p->dlen = ulen - 8;
		return 0;
	}
	case IPP_ICMP:
	case IPP_ICMPV6:
		/* Each family's own ICMP only: answers are built for the frame's family. */
		if (p->proto != (p->v6 ? IPP_ICMPV6 : IPP_ICMP))
			return -EPROTONOSUPPORT;
		if (n < 8)
			return -EBADMSG;
		p->icmp_type = t[0];
		p->icmp_code = t[1];
		p->icmp_id = be16(t + 4);
		p->icmp_seq = be16(t + 6);
		p->data = t + 8;
		p->dlen = n - 8;
		return 0;
	default:
		return -EPROTONOSUPPORT;
	}
}

static int ipv4(const uint8_t *h, size_t n, struct pkt *p)
{
	size_t ihl, total;
	uint16_t frag;

	if (n < 20 || (h[0] >> 4) != 4)
		return -EBADMSG;
	ihl = (size_t)(h[0] & 0xf) * 4;
	total = be16(h + 2);
	if (ihl < 20 || total < ihl || total > n)
		return -EBADMSG;
	frag = be16(h + 6);
	/* More fragments, or an offset: not reassembled here. */
	if ((frag & 0x2000) || (frag & 0x1fff))
		return -EPROTONOSUPPORT;
	p->v6 = false;
	p->hop_limit = h[8];
	p->proto = h[9];
	p->src = ip_from4_bytes(h + 12);
	p->dst = ip_from4_bytes(h + 16);
	p->l4 = h + ihl;
	p->l4len = total - ihl;
	return transport(p);
}

static int ipv6(const uint8_t *h, size_t n, struct pkt *p)
{
	size_t plen;

	if (n < 40 || (h[0] >> 4) != 6)
		return -EBADMSG;
	plen = be16(h + 4);
	if (plen > n - 40)
		return -EBADMSG;
	p->v6 = true;
	p->proto = h[6];
	p->hop_limit = h[7];
	p->src = ip_from6(h + 8);
	p->dst = ip_from6(h + 24);
	/*
	 * A v4-mapped address is IPv4 to everything after this (struct ipaddr),
	 * so replies would be built as IPv4 inside an IPv6 frame; on the wire it
	 * is nobody's address (RFC 4291 2.5.5.2).
	 */
	if (ip_is4(&p->src) || ip_is4(&p->dst))
		return -EBADMSG;
	p->l4 = h + 40;
	p->l4len = plen;
	/* No extension headers: a guest talking to its gateway needs none. */
	return transport(p);
}

static int arp(const uint8_t *a, size_t n, struct pkt *p)
{
	/* Ethernet/IPv4 ARP only: hardware 1, protocol 0x0800, lengths 6 and 4. */
	if (n < 28 || be16(a) != 1 || be16(a + 2) != ETH_P_IPV4 || a[4] != 6 || a[5] != 4)
		return -EBADMSG;
	p->arp_op = be16(a + 6);
	p->arp_sender = ip_from4_bytes(a + 14);
	p->arp_target = ip_from4_bytes(a + 24);
	return 0;
}

int pkt_parse(const uint8_t *frame, size_t len, struct pkt *p)
{
	memset(p, 0, sizeof(*p));
	p->wscale = -1;
	if (len < ETH_HDR || len > NET_FRAME_MAX)
		return -EBADMSG;
	p->eth = frame;
	p->len = len;
	memcpy(p->dst_mac, frame, 6);
	memcpy(p->src_mac, frame + 6, 6);
	p->ethertype = be16(frame + 12);
	switch (p->ethertype) {
	case ETH_P_ARP:
		return arp(frame + ETH_HDR, len - ETH_HDR, p);
	case ETH_P_IPV4:
		return ipv4(frame + ETH_HDR, len - ETH_HDR, p);
	case ETH_P_IPV6:
		return ipv6(frame + ETH_HDR, len - ETH_HDR, p);
	default:
		return -EPROTONOSUPPORT;
	}
}

/* --- building ------------------------------------------------------------ */

static size_t eth(uint8_t *out, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(out, dst, 6);
	memcpy(out + 6, src, 6);
	put_be16(out + 12, type);
	return ETH_HDR;
}

/* The IP header for @l4len bytes of @proto from @src to @dst; returns its length. */
static size_t ip_header(uint8_t *out, const struct ipaddr *src, const struct ipaddr *dst,
			uint8_t proto, size_t l4len)
{
	if (ip_is4(src)) {
		memset(out, 0, 20);
		out[0] = 0x45;
		put_be16(out + 2, (uint16_t)(20 + l4len));
		put_be16(out + 6, 0x4000); /* don't fragment */
		out[8] = 64;
		out[9] = proto;
		memcpy(out + 12, src->b + 12, 4);
		memcpy(out + 16, dst->b + 12, 4);
		put_be16(out + 10, csum_fold(csum_add(0, out, 20)));
		return 20;
	}
	memset(out, 0, 40);
	out[0] = 0x60;
	put_be16(out + 4, (uint16_t)l4len);
	out[6] = proto;
	out[7] = 64;
	memcpy(out + 8, src->b, 16);
	memcpy(out + 24, dst->b, 16);
	return 40;
}

/* The transport checksum over the pseudo-header and @l4. */
static uint16_t l4_csum(const struct ipaddr *src, const struct ipaddr *dst, uint8_t proto,
			const uint8_t *l4, size_t n)
{
	uint8_t ph[8];
	uint32_t s;

	if (ip_is4(src)) {
		s = csum_add(0, src->b + 12, 4);
		s = csum_add(s, dst->b + 12, 4);
		ph[0] = 0;
		ph[1] = proto;
		put_be16(ph + 2, (uint16_t)n);
		s = csum_add(s, ph, 4);
	} else {
		s = csum_add(0, src->b, 16);
		s = csum_add(s, dst->b, 16);
		put_be32(ph, (uint32_t)n);
		ph[4] = ph[5] = ph[6] = 0;
		ph[7] = proto;
		s = csum_add(s, ph, 8);
	}
	return csum_fold(csum_add(s, l4, n));
}

static size_t ip_hlen(const struct ipaddr *a)
{
	return ip_is4(a) ? 20 : 40;
}

size_t frame_tcp(uint8_t *out, size_t cap, const struct frame_ends *e, uint32_t seq, uint32_t ack,
		 uint8_t flags, uint16_t window, uint16_t mss, int wscale, const void *data,
		 size_t dlen)
{
	size_t ih = ip_hlen(&e->guest), optlen = (mss ? 4 : 0) + (wscale >= 0 ? 4 : 0);
	size_t tl = 20 + optlen + dlen, n = ETH_HDR + ih + tl;
	uint8_t *t, *o;

	if (n > cap || tl > NET_MTU)
		return 0;
	eth(out, e->guest_mac, e->gw_mac, ip_is4(&e->guest) ? ETH_P_IPV4 : ETH_P_IPV6);
	ip_header(out + ETH_HDR, &e->remote, &e->guest, IPP_TCP, tl);
	t = out + ETH_HDR + ih;
	put_be16(t, e->remote_port);
	put_be16(t + 2, e->guest_port);
	put_be32(t + 4, seq);
	put_be32(t + 8, ack);
	t[12] = (uint8_t)(((20 + optlen) / 4) << 4);
	t[13] = flags;
	put_be16(t + 14, window);
	put_be32(t + 16, 0); /* checksum, urgent */
	o = t + 20;
	if (mss) {
		o[0] = 2;
		o[1] = 4;
		put_be16(o + 2, mss);
		o += 4;
	}
	if (wscale >= 0) {
		o[0] = 1; /* NOP, then window scale */
		o[1] = 3;
		o[2] = 3;
		o[3] = (uint8_t)wscale;
		o += 4;
	}
	if (dlen)
		memmove(o, data,
			dlen); /* the payload may already be in place (received into the frame) */
	put_be16(t + 16, l4_csum(&e->remote, &e->guest, IPP_TCP, t, tl));
	return n;
}

size_t frame_udp(uint8_t *out, size_t cap, const struct frame_ends *e, const void *data,
		 size_t dlen)
{
	size_t ih = ip_hlen(&e->guest), ul = 8 + dlen, n = ETH_HDR + ih + ul;
	uint8_t *u;
	uint16_t c;

	if (n > cap || ul > NET_MTU)
		return 0;
	eth(out, e->guest_mac, e->gw_mac, ip_is4(&e->guest) ? ETH_P_IPV4 : ETH_P_IPV6);
	ip_header(out + ETH_HDR, &e->remote, &e->guest, IPP_UDP, ul);
	u = out + ETH_HDR + ih;
	put_be16(u, e->remote_port);
	put_be16(u + 2, e->guest_port);
	put_be16(u + 4, (uint16_t)ul);
	put_be16(u + 6, 0);
	memmove(u + 8, data, dlen);
	c = l4_csum(&e->remote, &e->guest, IPP_UDP, u, ul);
	put_be16(u + 6, c ? c : 0xffff);
	return n;
}

size_t frame_echo_reply(uint8_t *out, size_t cap, const struct frame_ends *e, uint16_t id,
			uint16_t seq, const void *data, size_t dlen)
{
	bool v4 = ip_is4(&e->guest);
	size_t ih = ip_hlen(&e->guest), l = 8 + dlen, n = ETH_HDR + ih + l;
	uint8_t *m;

	if (n > cap || l > NET_MTU)
		return 0;
	eth(out, e->guest_mac, e->gw_mac, v4 ? ETH_P_IPV4 : ETH_P_IPV6);
	ip_header(out + ETH_HDR, &e->remote, &e->guest, v4 ? IPP_ICMP : IPP_ICMPV6, l);
	m = out + ETH_HDR + ih;
	m[0] = v4 ? 0 : 129;
	m[1] = 0;
	put_be16(m + 2, 0);
	put_be16(m + 4, id);
	put_be16(m + 6, seq);
	memmove(m + 8, data, dlen);
	put_be16(m + 2, v4 ? csum_fold(csum_add(0, m, l))
			   : l4_csum(&e->remote, &e->guest, IPP_ICMPV6, m, l));
	return n;
}

size_t frame_arp_reply(uint8_t *out, size_t cap, const uint8_t guest_mac[6],
		       const struct ipaddr *guest_ip, const uint8_t mac[6], const struct ipaddr *ip)
{
	uint8_t *a = out + ETH_HDR;

	if (cap < ETH_HDR + 28)
		return 0;
	eth(out, guest_mac, mac, ETH_P_ARP);
	put_be16(a, 1);
	put_be16(a + 2, ETH_P_IPV4);
	a[4] = 6;
	a[5] = 4;
	put_be16(a + 6, 2);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, ip->b + 12, 4);
	memcpy(a + 18, guest_mac, 6);
	memcpy(a + 24, guest_ip->b + 12, 4);
	return ETH_HDR + 28;
}

size_t frame_neigh_adv(uint8_t *out, size_t cap, const uint8_t guest_mac[6],
		       const struct ipaddr *guest_ip, const uint8_t mac[6], const struct ipaddr *ip)
{
	size_t l = 32, n = ETH_HDR + 40 + l;
	uint8_t *m;

	if (n > cap)
		return 0;
	eth(out, guest_mac, mac, ETH_P_IPV6);
	ip_header(out + ETH_HDR, ip, guest_ip, IPP_ICMPV6, l);
	out[ETH_HDR + 7] = 255; /* neighbour discovery insists on hop limit 255 */
	m = out + ETH_HDR + 40;
	memset(m, 0, l);
	m[0] = 136;
	m[4] = 0x60; /* solicited, override */
	memcpy(m + 8, ip->b, 16);
	m[24] = 2; /* target link-layer address option */
	m[25] = 1;
	memcpy(m + 26, mac, 6);
	put_be16(m + 2, l4_csum(ip, guest_ip, IPP_ICMPV6, m, l));
	return n;
}
