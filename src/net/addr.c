// SPDX-License-Identifier: Apache-2.0
/*
 * IP addresses, prefixes and the address groups of --net-rule (public,
 * private, loopback, link_local, multicast, metadata).
 *
 * DOC: Address groups
 * Groups come from two tables, most specific entry first; the first entry
 * that contains the address decides. Whatever no IPv4 entry names is public;
 * IPv6 is public only inside 2000::/3, the global unicast space, because
 * everything outside it is unassigned or special. Entries with no group
 * (0.0.0.0/8, 240.0.0.0/4 with the broadcast address, 192.0.0.0/24,
 * 198.18.0.0/15, ::/8, Teredo) are in no group at all: the built-in policy
 * denies them and only the "any" group or a CIDR rule names them.
 *
 * Addresses that carry an IPv4 address inside IPv6 are judged by it, so that
 * a guest cannot dress a private address up as a public one: v4-mapped
 * (::ffff:0:0/96, how IPv4 is stored here anyway) and NAT64 (64:ff9b::/96)
 * take the embedded address's groups; 6to4 (2002::/16) is public only when
 * its embedded address is. The unspecified addresses 0.0.0.0 and :: are
 * loopback, because Linux connects a socket aimed at them to the local host.
 * The metadata addresses (169.254.169.254 and AWS's fd00:ec2::254, which are
 * link-local too; Azure's 168.63.129.16 and Alibaba's 100.100.100.200) are
 * never private or public (fd00:ec2::254 is carved out of the ULA range), so
 * allowing "private" or "public" does not open a cloud metadata service. The documentation ranges
 * (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are public on purpose: tests stand
 * for "the internet" with them.
 */
#include "net/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Longest address text worth handing to inet_pton(): INET6_ADDRSTRLEN plus slack. */
#define ADDR_TEXT_MAX 64

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
static const uint8_t nat64_prefix[12] = { 0x00, 0x64, 0xff, 0x9b };

bool ip_is4(const struct ipaddr *a)
{
	return memcmp(a->b, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0;
}

uint32_t ip_to4(const struct ipaddr *a)
{
	if (!ip_is4(a))
		return 0;
	return (uint32_t)a->b[12] << 24 | (uint32_t)a->b[13] << 16 | (uint32_t)a->b[14] << 8 |
	       a->b[15];
}

struct ipaddr ip_from4(uint32_t host_order)
{
	struct ipaddr a;

	memcpy(a.b, v4mapped_prefix, sizeof(v4mapped_prefix));
	a.b[12] = (uint8_t)(host_order >> 24);
	a.b[13] = (uint8_t)(host_order >> 16);
	a.b[14] = (uint8_t)(host_order >> 8);
	a.b[15] = (uint8_t)host_order;
	return a;
}

struct ipaddr ip_from4_bytes(const uint8_t b[4])
{
	struct ipaddr a;

	memcpy(a.b, v4mapped_prefix, sizeof(v4mapped_prefix));
	memcpy(a.b + 12, b, 4);
	return a;
}

struct ipaddr ip_from6(const uint8_t b[16])
{
	struct ipaddr a;

	memcpy(a.b, b, sizeof(a.b));
	return a;
}

bool ip_equal(const struct ipaddr *a, const struct ipaddr *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

int ip_parse(const char *s, struct ipaddr *out)
{
	uint8_t b[16];

	/* glibc's inet_pton() takes no leading zeros in IPv4, nor scope ids in IPv6. */
	if (inet_pton(AF_INET, s, b) == 1) {
		*out = ip_from4_bytes(b);
		return 0;
	}
	if (inet_pton(AF_INET6, s, b) == 1) {
		*out = ip_from6(b);
		return 0;
	}
	return -EINVAL;
}

void ip_format(const struct ipaddr *a, char *buf, size_t len)
{
	char t[IP_STRLEN];

	if (!len)
		return;
	if (ip_is4(a))
		snprintf(t, sizeof(t), "%u.%u.%u.%u", a->b[12], a->b[13], a->b[14], a->b[15]);
	else if (!inet_ntop(AF_INET6, a->b, t, sizeof(t)))
		t[0] = '\0';
	snprintf(buf, len, "%s", t);
}

bool ip_in_prefix(const struct ipaddr *a, const struct ipaddr *net, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (prefix > 128)
		return false;
	if (memcmp(a->b, net->b, whole) != 0)
		return false;
	if (!rest)
		return true;
	return ((a->b[whole] ^ net->b[whole]) & (uint8_t)(0xff00u >> rest)) == 0;
}

/* mask_host() - @a with every bit after the first @prefix cleared. */
static struct ipaddr mask_host(const struct ipaddr *a, unsigned prefix)
{
	struct ipaddr m = *a;

	for (unsigned i = 0; i < 16; i++) {
		if (prefix >= 8 * (i + 1))
			continue;
		m.b[i] &= prefix > 8 * i ? (uint8_t)(0xff00u >> (prefix - 8 * i)) : 0;
	}
	return m;
}

/*
 * parse_prefix_len() - the decimal after "/": 1 to 3 digits, no sign, no
 * leading zero, at most @max.
 * Return: 0, or -EINVAL.
 */
static int parse_prefix_len(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t n = 0;

	for (; s[n] >= '0' && s[n] <= '9' && n < 4; n++)
		v = v * 10 + (unsigned)(s[n] - '0');
	if (!n || n > 3 || s[n] || (n > 1 && s[0] == '0') || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * why() - a reason for the caller, when it gave room for one: one printable
 * ASCII line, since it quotes the input (any byte outside 0x20-0x7e is '?').
 */
__attribute__((format(printf, 3, 4))) static void why(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	for (; *buf; buf++)
		if ((unsigned char)*buf < 0x20 || (unsigned char)*buf >= 0x7f)
			*buf = '?';
}

/*
 * cidr_bracketed() - "[v6]" or "[v6]/N" at @s (which starts with "[").
 * Return: 0 with *@net and *@prefix set, or -EINVAL with a reason.
 */
static int cidr_bracketed(const char *s, struct ipaddr *net, unsigned *prefix, char *w, size_t wlen)
{
	const char *close = strchr(s, ']');
	char text[ADDR_TEXT_MAX];
	uint8_t b[16];
	size_t n;

	if (!close) {
		why(w, wlen, "missing \"]\" after the IPv6 address");
		return -EINVAL;
	}
	n = (size_t)(close - s - 1);
	if (n >= sizeof(text)) {
		why(w, wlen, "invalid IPv6 address \"%.48s...\"", s + 1);
		return -EINVAL;
	}
	memcpy(text, s + 1, n);
	text[n] = '\0';
	if (inet_pton(AF_INET, text, b) == 1) {
		why(w, wlen, "brackets are only for IPv6 addresses (write %s)", text);
		return -EINVAL;
	}
	if (inet_pton(AF_INET6, text, b) != 1) {
		why(w, wlen, "invalid IPv6 address \"%s\"", text);
		return -EINVAL;
	}
	*net = ip_from6(b);
	*prefix = 128;
	if (!close[1])
		return 0;
	if (close[1] != '/') {
		why(w, wlen, "unexpected \"%.48s\" after \"]\"", close + 1);
		return -EINVAL;
	}
	if (parse_prefix_len(close + 2, 128, prefix) < 0) {
		why(w, wlen, "invalid prefix length \"/%.48s\" (0-128 for IPv6)", close + 2);
		return -EINVAL;
	}
	return 0;
}

/* cidr_plain() - "a.b.c.d" or "a.b.c.d/N". Return: 0, or -EINVAL with a reason. */
static int cidr_plain(const char *s, struct ipaddr *net, unsigned *prefix, char *w, size_t wlen)
{
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	char text[ADDR_TEXT_MAX];
	uint8_t b[4];
	unsigned len = 32;

	if (n >= sizeof(text)) {
		why(w, wlen, "invalid IPv4 address \"%.48s...\"", s);
		return -EINVAL;
	}
	memcpy(text, s, n);
	text[n] = '\0';
	if (strchr(text, ':')) {
		why(w, wlen, "IPv6 addresses must be in brackets, as in [%s]", s);
		return -EINVAL;
	}
	if (inet_pton(AF_INET, text, b) != 1) {
		why(w, wlen, "invalid IPv4 address \"%s\"", text);
		return -EINVAL;
	}
	if (slash && parse_prefix_len(slash + 1, 32, &len) < 0) {
		why(w, wlen, "invalid prefix length \"/%.48s\" (0-32 for IPv4)", slash + 1);
		return -EINVAL;
	}
	*net = ip_from4_bytes(b);
	*prefix = 96 + len;
	return 0;
}

int cidr_parse_why(const char *s, struct ipaddr *net, unsigned *prefix, char *w, size_t wlen)
{
	struct ipaddr a, m;
	unsigned len;
	int rc;

	if (wlen)
		w[0] = '\0';
	if (!*s) {
		why(w, wlen, "empty address");
		return -EINVAL;
	}
	rc = s[0] == '[' ? cidr_bracketed(s, &a, &len, w, wlen) : cidr_plain(s, &a, &len, w, wlen);
	if (rc < 0)
		return rc;
	m = mask_host(&a, len);
	if (!ip_equal(&m, &a)) {
		char fix[CIDR_STRLEN];

		cidr_format(&m, len, fix, sizeof(fix));
		why(w, wlen, "host bits set in %s (did you mean %s?)", s, fix);
		return -EINVAL;
	}
	*net = a;
	*prefix = len;
	return 0;
}

int cidr_parse(const char *s, struct ipaddr *net, unsigned *prefix)
{
	return cidr_parse_why(s, net, prefix, NULL, 0);
}

void cidr_format(const struct ipaddr *net, unsigned prefix, char *buf, size_t len)
{
	char t[IP_STRLEN];

	if (!len)
		return;
	if (ip_is4(net) && prefix >= 96 && prefix <= 128) {
		ip_format(net, t, sizeof(t));
		if (prefix == 128)
			snprintf(buf, len, "%s", t);
		else
			snprintf(buf, len, "%s/%u", t, prefix - 96);
		return;
	}
	if (!inet_ntop(AF_INET6, net->b, t, sizeof(t)))
		t[0] = '\0';
	if (prefix == 128)
		snprintf(buf, len, "[%s]", t);
	else
		snprintf(buf, len, "[%s]/%u", t, prefix);
}

bool ip_embedded4(const struct ipaddr *a, struct ipaddr *v4)
{
	if (ip_is4(a)) {
		*v4 = *a;
		return true;
	}
	if (memcmp(a->b, nat64_prefix, sizeof(nat64_prefix)) == 0) {
		*v4 = ip_from4_bytes(a->b + 12);
		return true;
	}
	return false;
}

/* An IPv4 table entry: @net/@len (host order) and its groups. */
struct range4 {
	uint32_t net;
	unsigned len;
	unsigned groups;
};

#define V4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

/* Most specific first: the first entry containing the address decides; the rest is public. */
static const struct range4 groups4[] = {
	{ V4(169, 254, 169, 254), 32, IPG_METADATA | IPG_LINK_LOCAL },
	/* Other clouds' metadata services: Azure's wire server (a public address)
	 * and Alibaba's (inside carrier-grade NAT space). Only metadata, so that
	 * neither "public" nor "private" opens them. */
	{ V4(168, 63, 129, 16), 32, IPG_METADATA },
	{ V4(100, 100, 100, 200), 32, IPG_METADATA },
	/* connect() to 0.0.0.0 reaches the local host on Linux. */
	{ V4(0, 0, 0, 0), 32, IPG_LOOPBACK },
	{ V4(0, 0, 0, 0), 8, 0 }, /* "this network": not a destination */
	{ V4(127, 0, 0, 0), 8, IPG_LOOPBACK },
	{ V4(10, 0, 0, 0), 8, IPG_PRIVATE },
	{ V4(172, 16, 0, 0), 12, IPG_PRIVATE },
	{ V4(192, 168, 0, 0), 16, IPG_PRIVATE },
	{ V4(100, 64, 0, 0), 10, IPG_PRIVATE }, /* carrier-grade NAT */
	{ V4(169, 254, 0, 0), 16, IPG_LINK_LOCAL },
	{ V4(224, 0, 0, 0), 4, IPG_MULTICAST },
	{ V4(240, 0, 0, 0), 4, 0 },   /* reserved, and 255.255.255.255 */
	{ V4(192, 0, 0, 0), 24, 0 },  /* IETF protocol assignments */
	{ V4(198, 18, 0, 0), 15, 0 }, /* benchmarking */
	/* Documentation ranges: public, so that tests can stand for the internet. */
	{ V4(192, 0, 2, 0), 24, IPG_PUBLIC },
	{ V4(198, 51, 100, 0), 24, IPG_PUBLIC },
	{ V4(203, 0, 113, 0), 24, IPG_PUBLIC },
};

/* groups_v4() - the groups of the IPv4 address @v (host order). */
static unsigned groups_v4(uint32_t v)
{
	for (size_t i = 0; i < sizeof(groups4) / sizeof(groups4[0]); i++) {
		uint32_t mask = groups4[i].len ? ~(uint32_t)0 << (32 - groups4[i].len) : 0;

		if ((v & mask) == groups4[i].net)
			return groups4[i].groups;
	}
	return IPG_PUBLIC;
}

/* An IPv6 table entry: @net/@len and its groups. */
struct range6 {
	uint8_t net[16];
	unsigned len;
	unsigned groups;
};

/* Most specific first, as groups4[]; outside every entry an address is in no group. */
static const struct range6 groups6[] = {
	/* connect() to :: reaches the local host on Linux. */
	{ { 0 }, 128, IPG_LOOPBACK },
	{ { [15] = 1 }, 128, IPG_LOOPBACK },
	{ { 0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54 },
	  128,
	  IPG_METADATA | IPG_LINK_LOCAL },
	{ { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48, IPG_PRIVATE }, /* local-use NAT64 */
	{ { 0 }, 8, 0 },				/* v4-compatible and reserved */
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32, IPG_PUBLIC }, /* documentation */
	{ { 0x20, 0x01 }, 32, 0 },			/* Teredo */
	{ { 0x20, 0x01, 0x00, 0x02 }, 48, 0 },		/* benchmarking */
	{ { 0xfc }, 7, IPG_PRIVATE },			/* unique local */
	{ { 0xfe, 0xc0 }, 10, IPG_PRIVATE },		/* deprecated site-local */
	{ { 0xfe, 0x80 }, 10, IPG_LINK_LOCAL },
	{ { 0xff }, 8, IPG_MULTICAST },
	{ { 0x20 }, 3, IPG_PUBLIC }, /* global unicast */
};

unsigned ip_groups(const struct ipaddr *a)
{
	struct ipaddr v4;

	if (ip_embedded4(a, &v4))
		return groups_v4(ip_to4(&v4));
	if (a->b[0] == 0x20 && a->b[1] == 0x02) {
		/* 6to4: the packet leaves through the relay to the embedded address's site. */
		struct ipaddr e = ip_from4_bytes(a->b + 2);

		return groups_v4(ip_to4(&e)) == IPG_PUBLIC ? IPG_PUBLIC : 0;
	}
	for (size_t i = 0; i < sizeof(groups6) / sizeof(groups6[0]); i++) {
		struct ipaddr net = ip_from6(groups6[i].net);

		if (ip_in_prefix(a, &net, groups6[i].len))
			return groups6[i].groups;
	}
	return 0;
}

const char *ip_group_name(unsigned group)
{
	switch (group) {
	case IPG_LOOPBACK:
		return "loopback";
	case IPG_PRIVATE:
		return "private";
	case IPG_LINK_LOCAL:
		return "link_local";
	case IPG_MULTICAST:
		return "multicast";
	case IPG_METADATA:
		return "metadata";
	case IPG_PUBLIC:
		return "public";
	default:
		return NULL;
	}
}
