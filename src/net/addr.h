/* SPDX-License-Identifier: Apache-2.0 */
/* IP addresses in one 16-byte form (IPv4 as v4-mapped IPv6), prefixes and address groups. */
#ifndef MSB_NET_ADDR_H
#define MSB_NET_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * struct ipaddr - an IPv6 address in network byte order; an IPv4 address
 * a.b.c.d is held as ::ffff:a.b.c.d, so one compare covers both families.
 */
struct ipaddr {
	uint8_t b[16];
};

/* Room for ip_format(): INET6_ADDRSTRLEN. */
#define IP_STRLEN 46
/* Room for cidr_format(): "[" IP "]/128". */
#define CIDR_STRLEN (IP_STRLEN + 6)

/*
 * Address groups, a bit set (ip_groups()). An address may be in more than one:
 * the metadata addresses are also link-local. IPG_PUBLIC is never combined
 * with another bit.
 */
#define IPG_LOOPBACK   (1u << 0)
#define IPG_PRIVATE    (1u << 1)
#define IPG_LINK_LOCAL (1u << 2)
#define IPG_MULTICAST  (1u << 3)
#define IPG_METADATA   (1u << 4)
#define IPG_PUBLIC     (1u << 5)
/* Every group bit; a policy rule uses it for the group "any", which also takes ungrouped addresses.
 */
#define IPG_ALL ((1u << 6) - 1)

/* ip_is4() - true for a v4-mapped address, that is an IPv4 address. */
bool ip_is4(const struct ipaddr *a);

/* ip_to4() - the IPv4 address of a v4-mapped @a, in host byte order (0 for IPv6). */
uint32_t ip_to4(const struct ipaddr *a);

/* ip_from4() - @host_order (0x7f000001 for 127.0.0.1) as a v4-mapped address. */
struct ipaddr ip_from4(uint32_t host_order);

/* ip_from4_bytes() - four bytes in network order (as in a packet) as a v4-mapped address. */
struct ipaddr ip_from4_bytes(const uint8_t b[4]);

/* ip_from6() - sixteen bytes in network order; a v4-mapped one is an IPv4 address. */
struct ipaddr ip_from6(const uint8_t b[16]);

/* ip_equal() - true when @a and @b are the same address. */
bool ip_equal(const struct ipaddr *a, const struct ipaddr *b);

/*
 * ip_parse() - an IPv4 dotted quad ("192.0.2.1", no leading zeros) or IPv6
 * text without brackets ("2001:db8::1"); nothing before or after it.
 * Return: 0, or -EINVAL.
 */
int ip_parse(const char *s, struct ipaddr *out);

/*
 * ip_format() - IPv4 as a dotted quad, IPv6 in the RFC 5952 form inet_ntop()
 * writes. @len should be at least IP_STRLEN; a shorter buffer gets a
 * truncated, NUL-terminated string.
 */
void ip_format(const struct ipaddr *a, char *buf, size_t len);

/*
 * ip_in_prefix() - true when the first @prefix bits of @a and @net agree.
 * @prefix counts IPv6 bits: an IPv4 /N is 96 + N. Over 128 never matches.
 */
bool ip_in_prefix(const struct ipaddr *a, const struct ipaddr *net, unsigned prefix);

/*
 * cidr_parse() - a network as --net-rule writes it: "10.0.0.0/8", "1.2.3.4"
 * (a /32), "[2001:db8::]/32", "[::1]" (a /128). IPv6 must be bracketed.
 * Host bits must be zero ("10.0.0.1/8" is an error naming 10.0.0.0/8): a
 * typo there either widens or narrows the rule, and silently masking would
 * pick for the user. *@prefix counts IPv6 bits (96 + N for IPv4 /N).
 * Return: 0, or -EINVAL.
 */
int cidr_parse(const char *s, struct ipaddr *net, unsigned *prefix);

/*
 * cidr_parse_why() - cidr_parse() that also says what was wrong in @why
 * (@whylen bytes, may be 0): one printable ASCII line, without the whole
 * input in front ("host bits set in 10.0.0.1/8 (did you mean 10.0.0.0/8?)").
 */
int cidr_parse_why(const char *s, struct ipaddr *net, unsigned *prefix, char *why, size_t whylen);

/*
 * cidr_format() - the form cidr_parse() reads back: "10.0.0.0/8", "1.2.3.4",
 * "[2001:db8::]/32", "[::1]". A v4-mapped network shorter than /96 is written
 * as IPv6. @len should be at least CIDR_STRLEN.
 */
void cidr_format(const struct ipaddr *net, unsigned prefix, char *buf, size_t len);

/*
 * ip_embedded4() - the IPv4 address a packet to @a really reaches: @a itself
 * when it is v4-mapped, the low 32 bits of a NAT64 address (64:ff9b::/96).
 * Return: true with *@v4 set (v4-mapped), false for any other address.
 */
bool ip_embedded4(const struct ipaddr *a, struct ipaddr *v4);

/* ip_groups() - the IPG_* groups @a belongs to; 0 for reserved and unroutable addresses. */
unsigned ip_groups(const struct ipaddr *a);

/* ip_group_name() - "public", "private", ... for one IPG_* bit; NULL for anything else. */
const char *ip_group_name(unsigned group);

#endif
