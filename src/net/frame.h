/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ethernet frames to and from the guest: parsing into a bounds-checked view,
 * and building replies with correct checksums. Every guest byte is read
 * through pkt_parse(), which checks each header's length against what is
 * really there before anything looks at it.
 */
#ifndef MSB_NET_FRAME_H
#define MSB_NET_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"

#define ETH_HDR	      14
#define NET_MTU	      65520 /* the guest's MTU (virtio-net host_mtu) */
#define NET_FRAME_MAX (ETH_HDR + NET_MTU)
#define ETH_P_IPV4    0x0800
#define ETH_P_ARP     0x0806
#define ETH_P_IPV6    0x86dd

#define IPP_ICMP   1
#define IPP_TCP	   6
#define IPP_UDP	   17
#define IPP_ICMPV6 58

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* struct pkt - a parsed guest frame; every pointer is inside the frame and bounded. */
struct pkt {
	const uint8_t *eth;
	size_t len;
	uint8_t src_mac[6], dst_mac[6];
	uint16_t ethertype;
	/* ARP (ethertype ARP): */
	uint16_t arp_op;
	struct ipaddr arp_sender, arp_target;
	/* IP: */
	bool v6;
	struct ipaddr src, dst;
	uint8_t proto;
	uint8_t hop_limit;
	const uint8_t *l4; /* the transport header */
	size_t l4len;	   /* up to the end of the IP payload, never past the frame */
	/* TCP / UDP: */
	uint16_t sport, dport;
	/* TCP: */
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t window;
	uint16_t mss; /* option, 0 if absent */
	int wscale;   /* option, -1 if absent */
	/* ICMP / ICMPv6: */
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id, icmp_seq;
	/* what the transport carries */
	const uint8_t *data;
	size_t dlen;
};

/*
 * pkt_parse() - parse one frame. IPv4 with options and IPv6 with no
 * extension headers but fragments refused, TCP with options, UDP, ICMP
 * echo and ICMPv6 (neighbour discovery, echo); anything else is -EPROTONOSUPPORT,
 * anything malformed -EBADMSG. Return: 0 with @p filled.
 */
int pkt_parse(const uint8_t *frame, size_t len, struct pkt *p);

/* The two ends of a transport flow, as the guest sees them. */
struct frame_ends {
	uint8_t guest_mac[6], gw_mac[6];
	struct ipaddr guest, remote; /* the guest's address, and the one it talks to */
	uint16_t guest_port, remote_port;
};

/*
 * Builders: each writes a whole frame (Ethernet, IP, transport, payload)
 * from @e's remote end to its guest end into @out, with checksums.
 * Return: the frame's length, 0 if it does not fit in @cap.
 */
size_t frame_tcp(uint8_t *out, size_t cap, const struct frame_ends *e, uint32_t seq, uint32_t ack,
		 uint8_t flags, uint16_t window, uint16_t mss, int wscale, const void *data,
		 size_t dlen);
size_t frame_udp(uint8_t *out, size_t cap, const struct frame_ends *e, const void *data,
		 size_t dlen);
/* ICMP(v6) echo reply (type 0 / 129) from @e->remote, with @id, @seq and @data. */
size_t frame_echo_reply(uint8_t *out, size_t cap, const struct frame_ends *e, uint16_t id,
			uint16_t seq, const void *data, size_t dlen);
/* ARP reply: @ip is at @mac, to the guest. */
size_t frame_arp_reply(uint8_t *out, size_t cap, const uint8_t guest_mac[6],
		       const struct ipaddr *guest_ip, const uint8_t mac[6],
		       const struct ipaddr *ip);
/* Neighbour advertisement: @ip (the gateway) is at @mac, answering the guest's solicitation. */
size_t frame_neigh_adv(uint8_t *out, size_t cap, const uint8_t guest_mac[6],
		       const struct ipaddr *guest_ip, const uint8_t mac[6],
		       const struct ipaddr *ip);

/* The Internet checksum of @n bytes, folded, starting from @sum. */
uint16_t csum_fold(uint32_t sum);
uint32_t csum_add(uint32_t sum, const void *p, size_t n);

#endif
