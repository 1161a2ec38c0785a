// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the network policy: addresses and groups, the pin set, rules, verdicts, DNS. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/addr.h"
#include "net/pins.h"
#include "net/policy.h"

/* --- helpers ---------------------------------------------------------- */

/* ip_of() - an address the test spells as text; the parse must succeed. */
static struct ipaddr ip_of(const char *s)
{
	struct ipaddr a;

	memset(&a, 0x5a, sizeof(a));
	if (ip_parse(s, &a) != 0)
		fail_msg("test address %s does not parse", s);
	return a;
}

/* in_prefix() - ip_in_prefix() on addresses the test spells as text. */
static bool in_prefix(const char *a, const char *net, unsigned prefix)
{
	struct ipaddr x = ip_of(a), n = ip_of(net);

	return ip_in_prefix(&x, &n, prefix);
}

/* match_str() - a pins_lookup() matcher: the pinned name is exactly @ctx. */
static bool match_str(const char *name, void *ctx)
{
	return strcmp(name, ctx) == 0;
}

/* pinned() - pins_lookup() of @a with the exact-name matcher. */
static bool pinned(const struct pins *p, struct ipaddr a, uint64_t now, const char *name)
{
	return pins_lookup(p, &a, now, match_str, (void *)name);
}

/* A policy made of @rules (one --net-rule value, or NULL for none), which must parse. */
static void mkpolicy(struct net_policy *p, const char *rules)
{
	char err[512];

	policy_init(p);
	if (rules && policy_add(p, rules, err, sizeof(err)) != 0)
		fail_msg("rules \"%s\": %s", rules, err);
}

/* Expects @arg to fail with exactly @want, leaving the policy as it was. */
static void expect_error(const char *arg, const char *want)
{
	struct net_policy p;
	char err[512];

	mkpolicy(&p, "allow@before.test");
	memset(err, 'x', sizeof(err));
	if (policy_add(&p, arg, err, sizeof(err)) != -EINVAL)
		fail_msg("\"%s\" parsed", arg);
	if (strcmp(err, want) != 0)
		fail_msg("\"%s\":\n got  %s\n want %s", arg, err, want);
	assert_null(strchr(err, '\n'));
	assert_int_equal(p.n, 1);
	policy_free(&p);
}

/* Expects @arg to parse to one rule that formats as @canon, and @canon to parse to it too. */
static void expect_canon(const char *arg, const char *canon)
{
	struct net_policy p, q;
	char buf[600];

	mkpolicy(&p, arg);
	assert_int_equal(p.n, 1);
	policy_rule_format(&p.rules[0], buf, sizeof(buf));
	if (strcmp(buf, canon) != 0)
		fail_msg("\"%s\": formatted \"%s\", want \"%s\"", arg, buf, canon);
	mkpolicy(&q, buf);
	assert_int_equal(q.n, 1);
	assert_true(policy_rule_equal(&p.rules[0], &q.rules[0]));
	policy_free(&p);
	policy_free(&q);
}

/* check() - policy_check() on an address the test spells as text. */
static struct net_verdict check(const struct net_policy *p, unsigned dir, unsigned proto,
				const char *ip, uint16_t port, const struct pins *pins,
				uint64_t now)
{
	struct ipaddr a = ip_of(ip);

	return policy_check(p, dir, proto, &a, port, pins, now);
}

/* Expects the verdict on egress TCP to @ip:@port: @allow, decided by @rule (-1: the default). */
#define EXPECT(p, dir, proto, ip, port, pins, now, allow_, rule_)                                  \
	do {                                                                                       \
		struct net_verdict v_ = check(p, dir, proto, ip, port, pins, now);                 \
		if (v_.allow != (allow_) || v_.rule != (rule_))                                    \
			fail_msg("%s %s:%u: got %s by %d, want %s by %d", #dir, ip, port,          \
				 v_.allow ? "allow" : "deny", v_.rule,                             \
				 (allow_) ? "allow" : "deny", (rule_));                            \
	} while (0)

/* --- addresses -------------------------------------------------------- */

static void test_ip_parse_format(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "192.0.2.1", "192.0.2.1" },
		{ "0.0.0.0", "0.0.0.0" },
		{ "255.255.255.255", "255.255.255.255" },
		{ "2001:db8::1", "2001:db8::1" },
		{ "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1" },
		{ "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1" },
		{ "2001:db8::1:0:0:1", "2001:db8::1:0:0:1" },
		{ "::", "::" },
		{ "::1", "::1" },
		{ "fe80::1", "fe80::1" },
		/* v4-mapped is how IPv4 is held: it prints as IPv4. */
		{ "::ffff:198.51.100.7", "198.51.100.7" },
		{ "::ffff:c633:6407", "198.51.100.7" },
		{ "64:ff9b::10.0.0.1", "64:ff9b::a00:1" },
	};
	static const char *const bad[] = {
		"",	     " 1.2.3.4",   "1.2.3.4 ",	  "1.2.3",	  "1.2.3.4.5",
		"256.1.1.1", "01.2.3.4",   "1.2.3.04",	  "0x1.2.3.4",	  "1.2.3.4/32",
		"[::1]",     "fe80::1%lo", "2001:db8::g", "2001:db8:::1", "1:2:3:4:5:6:7:8:9",
		"localhost", "::1 ",	   "-1.2.3.4",	  "1.2.3.4\n",
	};
	char buf[IP_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct ipaddr a = ip_of(ok[i].in);

		ip_format(&a, buf, sizeof(buf));
		assert_string_equal(buf, ok[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ipaddr a;

		if (ip_parse(bad[i], &a) != -EINVAL)
			fail_msg("\"%s\" parsed", bad[i]);
	}
	/* A short buffer gets a cut, terminated string. */
	{
		struct ipaddr a = ip_of("198.51.100.7");

		ip_format(&a, buf, 5);
		assert_string_equal(buf, "198.");
	}
}

static void test_ip_constructors(void **state)
{
	static const uint8_t four[4] = { 198, 51, 100, 7 };
	static const uint8_t six[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	static const uint8_t mapped[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 1 };
	struct ipaddr a = ip_from4(0xc6336407), b = ip_from4_bytes(four), c = ip_from6(six),
		      d = ip_from6(mapped), e = ip_of("198.51.100.7");

	(void)state;
	assert_true(ip_equal(&a, &b));
	assert_true(ip_equal(&a, &e));
	assert_true(ip_is4(&a));
	assert_int_equal(ip_to4(&a), 0xc6336407);
	assert_false(ip_is4(&c));
	assert_int_equal(ip_to4(&c), 0);
	assert_true(ip_equal(&c, &(struct ipaddr){ .b = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } }));
	assert_true(ip_is4(&d));
	assert_int_equal(ip_to4(&d), 0x0a000001);
	assert_false(ip_equal(&a, &c));
}

static void test_ip_in_prefix(void **state)
{
	struct ipaddr net8 = ip_of("10.0.0.0");

	(void)state;
	assert_true(in_prefix("10.255.255.255", "10.0.0.0", 104));
	assert_false(in_prefix("11.0.0.0", "10.0.0.0", 104));
	assert_false(in_prefix("9.255.255.255", "10.0.0.0", 104));
	/* /0 holds everything, /128 one address, past 128 nothing. */
	assert_true(in_prefix("::1", "10.0.0.0", 0));
	assert_true(ip_in_prefix(&net8, &net8, 128));
	assert_false(in_prefix("10.0.0.1", "10.0.0.0", 128));
	assert_false(ip_in_prefix(&net8, &net8, 129));
	/* A prefix that ends inside a byte: 2001:db8:8000::/33. */
	assert_true(in_prefix("2001:db8:ffff::1", "2001:db8:8000::", 33));
	assert_false(in_prefix("2001:db8:7fff::1", "2001:db8:8000::", 33));
	assert_true(in_prefix("2001:db8:7fff::1", "2001:db8:8000::", 32));
	/* IPv4 /N is 96 + N: every IPv4 address is in ::ffff:0:0/96. */
	assert_true(in_prefix("1.2.3.4", "::ffff:0:0", 96));
	assert_false(in_prefix("::1", "::ffff:0:0", 96));
}

static void test_cidr_parse(void **state)
{
	static const struct {
		const char *in, *net;
		unsigned prefix;
		const char *canon;
	} ok[] = {
		{ "10.0.0.0/8", "10.0.0.0", 104, "10.0.0.0/8" },
		{ "1.2.3.4", "1.2.3.4", 128, "1.2.3.4" },
		{ "1.2.3.4/32", "1.2.3.4", 128, "1.2.3.4" },
		{ "0.0.0.0/0", "0.0.0.0", 96, "0.0.0.0/0" },
		{ "172.16.0.0/12", "172.16.0.0", 108, "172.16.0.0/12" },
		{ "[2001:db8::]/32", "2001:db8::", 32, "[2001:db8::]/32" },
		{ "[::1]", "::1", 128, "[::1]" },
		{ "[::1]/128", "::1", 128, "[::1]" },
		{ "[::]/0", "::", 0, "[::]/0" },
		{ "[2001:DB8:0::]/48", "2001:db8::", 48, "[2001:db8::]/48" },
		{ "[fe80::]/10", "fe80::", 10, "[fe80::]/10" },
		/* A v4-mapped network is an IPv4 one. */
		{ "[::ffff:10.0.0.0]/104", "10.0.0.0", 104, "10.0.0.0/8" },
		{ "[::ffff:0:0]/96", "0.0.0.0", 96, "0.0.0.0/0" },
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "", "empty address" },
		{ "10.0.0.1/8", "host bits set in 10.0.0.1/8 (did you mean 10.0.0.0/8?)" },
		{ "10.0.0.0/33", "invalid prefix length \"/33\" (0-32 for IPv4)" },
		{ "10.0.0.0/", "invalid prefix length \"/\" (0-32 for IPv4)" },
		{ "10.0.0.0/08", "invalid prefix length \"/08\" (0-32 for IPv4)" },
		{ "10.0.0.0/+8", "invalid prefix length \"/+8\" (0-32 for IPv4)" },
		{ "10.0.0.0/8/8", "invalid prefix length \"/8/8\" (0-32 for IPv4)" },
		{ "1.2.3", "invalid IPv4 address \"1.2.3\"" },
		{ "1.2.3.256/24", "invalid IPv4 address \"1.2.3.256\"" },
		{ "2001:db8::/32", "IPv6 addresses must be in brackets, as in [2001:db8::/32]" },
		{ "[1.2.3.4]", "brackets are only for IPv6 addresses (write 1.2.3.4)" },
		{ "[2001:db8::1", "missing \"]\" after the IPv6 address" },
		{ "[2001:db8::1]x", "unexpected \"x\" after \"]\"" },
		{ "[2001:db8::1] ", "unexpected \" \" after \"]\"" },
		{ "[zz::1]", "invalid IPv6 address \"zz::1\"" },
		{ "[]", "invalid IPv6 address \"\"" },
		{ "[2001:db8::]/129", "invalid prefix length \"/129\" (0-128 for IPv6)" },
		{ "[2001:db8::1]/32",
		  "host bits set in [2001:db8::1]/32 (did you mean [2001:db8::]/32?)" },
		{ "[::ffff:10.0.0.1]/104",
		  "host bits set in [::ffff:10.0.0.1]/104 (did you mean 10.0.0.0/8?)" },
	};
	char why[256], buf[CIDR_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct ipaddr net, want = ip_of(ok[i].net);
		unsigned prefix = 999;

		if (cidr_parse(ok[i].in, &net, &prefix) != 0)
			fail_msg("\"%s\" did not parse", ok[i].in);
		assert_true(ip_equal(&net, &want));
		assert_int_equal(prefix, ok[i].prefix);
		cidr_format(&net, prefix, buf, sizeof(buf));
		assert_string_equal(buf, ok[i].canon);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ipaddr net;
		unsigned prefix;

		assert_int_equal(cidr_parse(bad[i].in, &net, &prefix), -EINVAL);
		assert_int_equal(cidr_parse_why(bad[i].in, &net, &prefix, why, sizeof(why)),
				 -EINVAL);
		if (strcmp(why, bad[i].why) != 0)
			fail_msg("\"%s\": got %s, want %s", bad[i].in, why, bad[i].why);
	}
}

/* One row per range and edge: the first and last address, and the neighbours outside. */
static void test_ip_groups(void **state)
{
	enum {
		LO = IPG_LOOPBACK,
		PRIV = IPG_PRIVATE,
		LL = IPG_LINK_LOCAL,
		MC = IPG_MULTICAST,
		META = IPG_METADATA,
		PUB = IPG_PUBLIC,
	};
	static const struct {
		const char *ip;
		unsigned groups;
	} t[] = {
		/* 0.0.0.0/8: the unspecified address reaches the host; the rest is nothing. */
		{ "0.0.0.0", LO },
		{ "0.0.0.1", 0 },
		{ "0.255.255.255", 0 },
		{ "1.0.0.0", PUB },
		{ "8.8.8.8", PUB },
		{ "9.255.255.255", PUB },
		{ "10.0.0.0", PRIV },
		{ "10.20.30.40", PRIV },
		{ "10.255.255.255", PRIV },
		{ "11.0.0.0", PUB },
		{ "100.63.255.255", PUB },
		{ "100.64.0.0", PRIV },
		{ "100.127.255.255", PRIV },
		{ "100.128.0.0", PUB },
		{ "126.255.255.255", PUB },
		{ "127.0.0.0", LO },
		{ "127.0.0.1", LO },
		{ "127.255.255.255", LO },
		{ "128.0.0.0", PUB },
		{ "169.253.255.255", PUB },
		{ "169.254.0.0", LL },
		{ "169.254.169.253", LL },
		{ "169.254.169.254", META | LL },
		{ "169.254.169.255", LL },
		{ "168.63.129.16", META },
		{ "100.100.100.200", META },
		{ "169.254.255.255", LL },
		{ "169.255.0.0", PUB },
		{ "172.15.255.255", PUB },
		{ "172.16.0.0", PRIV },
		{ "172.31.255.255", PRIV },
		{ "172.32.0.0", PUB },
		{ "192.0.0.0", 0 },
		{ "192.0.0.255", 0 },
		{ "192.0.1.255", PUB },
		{ "192.0.2.0", PUB },
		{ "192.0.2.255", PUB },
		{ "192.167.255.255", PUB },
		{ "192.168.0.0", PRIV },
		{ "192.168.255.255", PRIV },
		{ "192.169.0.0", PUB },
		{ "198.17.255.255", PUB },
		{ "198.18.0.0", 0 },
		{ "198.19.255.255", 0 },
		{ "198.20.0.0", PUB },
		{ "198.51.100.0", PUB },
		{ "198.51.100.10", PUB },
		{ "198.51.100.255", PUB },
		{ "203.0.113.0", PUB },
		{ "203.0.113.255", PUB },
		{ "223.255.255.255", PUB },
		{ "224.0.0.0", MC },
		{ "239.255.255.255", MC },
		{ "240.0.0.0", 0 },
		{ "255.255.255.254", 0 },
		{ "255.255.255.255", 0 },
		/* IPv6 */
		{ "::", LO },
		{ "::1", LO },
		{ "::2", 0 },
		{ "::10.0.0.1", 0 },
		{ "::8.8.8.8", 0 },
		{ "::ffff:10.0.0.1", PRIV },
		{ "::ffff:8.8.8.8", PUB },
		{ "::ffff:169.254.169.254", META | LL },
		{ "64:ff9b::8.8.8.8", PUB },
		{ "64:ff9b::10.0.0.1", PRIV },
		{ "64:ff9b::127.0.0.1", LO },
		{ "64:ff9b::169.254.169.254", META | LL },
		{ "64:ff9b::240.0.0.1", 0 },
		{ "64:ff9b:1::1", PRIV },
		{ "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", PRIV },
		{ "64:ff9b:2::1", 0 },
		{ "100::1", 0 },
		{ "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0 },
		{ "2000::", PUB },
		{ "2001::", 0 },
		{ "2001:0:ffff:ffff:ffff:ffff:ffff:ffff", 0 },
		{ "2001:1::1", PUB },
		{ "2001:2::", 0 },
		{ "2001:2:0:ffff:ffff:ffff:ffff:ffff", 0 },
		{ "2001:2:1::", PUB },
		{ "2001:4860:4860::8888", PUB },
		{ "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", PUB },
		{ "2001:db8::", PUB },
		{ "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", PUB },
		{ "2002:808:808::1", PUB },
		{ "2002:a00:1::1", 0 },
		{ "2002:7f00:1::", 0 },
		{ "2002:a9fe:a9fe::", 0 },
		{ "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUB },
		{ "4000::", 0 },
		{ "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0 },
		{ "fc00::", PRIV },
		{ "fd00:ec2::253", PRIV },
		{ "fd00:ec2::254", META | LL },
		{ "fd00:ec2::255", PRIV },
		{ "fd42:6d73:62::1", PRIV },
		{ "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PRIV },
		{ "fe00::", 0 },
		{ "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0 },
		{ "fe80::", LL },
		{ "fe80::1", LL },
		{ "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LL },
		{ "fec0::", PRIV },
		{ "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PRIV },
		{ "ff00::", MC },
		{ "ff02::1", MC },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", MC },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ipaddr a = ip_of(t[i].ip);
		unsigned g = ip_groups(&a);

		if (g != t[i].groups)
			fail_msg("%s: groups %#x, want %#x", t[i].ip, g, t[i].groups);
		/* Public is never combined with another group. */
		assert_true(!(g & IPG_PUBLIC) || g == IPG_PUBLIC);
	}
	assert_string_equal(ip_group_name(IPG_LINK_LOCAL), "link_local");
	assert_string_equal(ip_group_name(IPG_PUBLIC), "public");
	assert_null(ip_group_name(IPG_PUBLIC | IPG_PRIVATE));
	assert_null(ip_group_name(0));
}

static void test_ip_embedded4(void **state)
{
	struct ipaddr v4, a = ip_of("64:ff9b::198.51.100.7"), want = ip_of("198.51.100.7");

	(void)state;
	assert_true(ip_embedded4(&a, &v4));
	assert_true(ip_equal(&v4, &want));
	assert_true(ip_embedded4(&want, &v4));
	assert_true(ip_equal(&v4, &want));
	a = ip_of("2001:db8::c633:6407");
	assert_false(ip_embedded4(&a, &v4));
	a = ip_of("64:ff9b:1::c633:6407");
	assert_false(ip_embedded4(&a, &v4));
}

/* --- pins ------------------------------------------------------------- */

static void test_pins_basic(void **state)
{
	struct pins p = { 0 };
	struct ipaddr a = ip_of("198.51.100.20"), b = ip_of("2001:db8::20");

	(void)state;
	/* A zero-initialised set is empty and usable. */
	assert_false(pins_lookup(&p, &a, 0, match_str, "good.test"));
	pins_expire(&p, 1000);
	pins_free(&p);

	pins_init(&p, 0x1234);
	assert_int_equal(pins_add(&p, "Good.TEST.", &a, 60, 1000), 0);
	assert_int_equal(pins_add(&p, "good.test", &b, 60, 1000), 0);
	assert_int_equal(pins_count(&p), 2);
	assert_true(pins_lookup(&p, &a, 1000, match_str, "good.test"));
	assert_true(pins_lookup(&p, &b, 1000, match_str, "good.test"));
	assert_false(pins_lookup(&p, &a, 1000, match_str, "Good.TEST."));
	assert_false(pins_lookup(&p, &a, 1000, match_str, "other.test"));
	/* Alive for exactly the TTL. */
	assert_true(pins_lookup(&p, &a, 60999, match_str, "good.test"));
	assert_false(pins_lookup(&p, &a, 61000, match_str, "good.test"));
	/* An address nobody pinned, even a v4-mapped spelling of another's neighbour. */
	assert_false(pinned(&p, ip_of("198.51.100.21"), 1000, "good.test"));
	pins_free(&p);
	assert_int_equal(pins_count(&p), 0);
	assert_int_equal(p.seed, 0x1234);
	assert_false(pins_lookup(&p, &a, 1000, match_str, "good.test"));
	pins_free(&p);
}

static void test_pins_ttl_bounds(void **state)
{
	struct pins p;
	struct ipaddr a = ip_of("198.51.100.20"), b = ip_of("198.51.100.21"),
		      c = ip_of("198.51.100.22");
	const uint64_t t0 = 5000;

	(void)state;
	pins_init(&p, 1);
	/* TTL 0 still lets the connection after the answer through: PINS_MIN_TTL_S. */
	assert_int_equal(pins_add(&p, "zero.test", &a, 0, t0), 0);
	assert_true(pins_lookup(&p, &a, t0 + PINS_MIN_TTL_S * 1000 - 1, match_str, "zero.test"));
	assert_false(pins_lookup(&p, &a, t0 + PINS_MIN_TTL_S * 1000, match_str, "zero.test"));
	/* So does any TTL below it. */
	assert_int_equal(pins_add(&p, "short.test", &a, PINS_MIN_TTL_S - 1, t0), 0);
	assert_true(pinned(&p, a, t0 + PINS_MIN_TTL_S * 1000 - 1, "short.test"));
	assert_false(pinned(&p, a, t0 + PINS_MIN_TTL_S * 1000, "short.test"));
	/* A huge TTL is capped at PINS_MAX_TTL_S. */
	assert_int_equal(pins_add(&p, "long.test", &b, UINT32_MAX, t0), 0);
	assert_true(pins_lookup(&p, &b, t0 + PINS_MAX_TTL_S * 1000ull - 1, match_str, "long.test"));
	assert_false(pins_lookup(&p, &b, t0 + PINS_MAX_TTL_S * 1000ull, match_str, "long.test"));
	/* A clock near its end saturates instead of wrapping. */
	assert_int_equal(pins_add(&p, "end.test", &c, 60, UINT64_MAX - 10), 0);
	assert_true(pins_lookup(&p, &c, UINT64_MAX - 1, match_str, "end.test"));
	pins_free(&p);
}

static void test_pins_refresh(void **state)
{
	struct pins p;
	struct ipaddr a = ip_of("198.51.100.20");

	(void)state;
	pins_init(&p, 2);
	assert_int_equal(pins_add(&p, "a.test", &a, 100, 0), 0);
	/* A shorter answer later keeps the longer life... */
	assert_int_equal(pins_add(&p, "a.test", &a, 30, 10000), 0);
	assert_int_equal(pins_count(&p), 1);
	assert_true(pins_lookup(&p, &a, 99999, match_str, "a.test"));
	assert_false(pins_lookup(&p, &a, 100000, match_str, "a.test"));
	/* ...a longer one extends it. */
	assert_int_equal(pins_add(&p, "A.test", &a, 200, 50000), 0);
	assert_int_equal(pins_count(&p), 1);
	assert_true(pins_lookup(&p, &a, 249999, match_str, "a.test"));
	/* Two names on one address: either satisfies its own matcher. */
	assert_int_equal(pins_add(&p, "b.test", &a, 60, 0), 0);
	assert_int_equal(pins_count(&p), 2);
	assert_true(pins_lookup(&p, &a, 0, match_str, "b.test"));
	assert_true(pins_lookup(&p, &a, 0, match_str, "a.test"));
	/* b.test expires, a.test stays. */
	assert_false(pins_lookup(&p, &a, 60000, match_str, "b.test"));
	assert_true(pins_lookup(&p, &a, 60000, match_str, "a.test"));
	pins_free(&p);
}

static void test_pins_expire(void **state)
{
	struct pins p;
	struct ipaddr a = ip_of("198.51.100.1"), b = ip_of("198.51.100.2"),
		      c = ip_of("2001:db8::3");

	(void)state;
	pins_init(&p, 3);
	assert_int_equal(pins_add(&p, "a.test", &a, 30, 0), 0);
	assert_int_equal(pins_add(&p, "b.test", &b, 60, 0), 0);
	assert_int_equal(pins_add(&p, "c.test", &c, 90, 0), 0);
	pins_expire(&p, 29999);
	assert_int_equal(pins_count(&p), 3);
	pins_expire(&p, 30000);
	assert_int_equal(pins_count(&p), 2);
	assert_false(pins_lookup(&p, &a, 0, match_str, "a.test"));
	assert_true(pins_lookup(&p, &b, 0, match_str, "b.test"));
	pins_expire(&p, 90000);
	assert_int_equal(pins_count(&p), 0);
	/* Slots come back: the set takes new pins. */
	assert_int_equal(pins_add(&p, "a.test", &a, 30, 90000), 0);
	assert_true(pins_lookup(&p, &a, 90000, match_str, "a.test"));
	pins_free(&p);
}

static void test_pins_evict(void **state)
{
	struct pins p;
	struct ipaddr extra = ip_of("2001:db8::ffff");

	(void)state;
	pins_init(&p, 4);
	/*
	 * Full: pin i lives 30 + (i + 7) % PINS_MAX seconds, so the nearest
	 * expiry is pin PINS_MAX - 7, neither the first nor the last added.
	 */
	for (uint32_t i = 0; i < PINS_MAX; i++) {
		struct ipaddr a = ip_from4(0xc6336400u + i);

		assert_int_equal(pins_add(&p, "many.test", &a, 30 + (i + 7) % PINS_MAX, 0), 0);
	}
	assert_int_equal(pins_count(&p), PINS_MAX);
	assert_int_equal(pins_add(&p, "extra.test", &extra, 60, 0), 0);
	assert_int_equal(pins_count(&p), PINS_MAX);
	assert_true(pinned(&p, extra, 0, "extra.test"));
	assert_false(pinned(&p, ip_from4(0xc6336400u + PINS_MAX - 7), 0, "many.test"));
	assert_true(pinned(&p, ip_from4(0xc6336400u + PINS_MAX - 6), 0, "many.test"));
	assert_true(pinned(&p, ip_from4(0xc6336400u), 0, "many.test"));
	assert_true(pinned(&p, ip_from4(0xc6336400u + PINS_MAX - 1), 0, "many.test"));
	/* Later, when pins have died, a full set drops all the dead first. */
	assert_int_equal(pins_add(&p, "late.test", &extra, 60, 40000), 0);
	assert_int_equal(pins_count(&p), PINS_MAX - 10 + 1);
	pins_free(&p);
}

/* count_names() - a pins_lookup() matcher that counts the names it is asked about. */
static bool count_names(const char *name, void *ctx)
{
	(void)name;
	(*(unsigned int *)ctx)++;
	return false;
}

/* Many names aimed at one address: a verdict asks about PINS_PER_ADDR of them at most. */
static void test_pins_per_address(void **state)
{
	struct pins p;
	struct ipaddr a = ip_of("198.51.100.7"), b = ip_of("198.51.100.8");
	unsigned int asked = 0;
	char name[32];

	(void)state;
	pins_init(&p, 9);
	assert_int_equal(pins_add(&p, "other.test", &b, 60, 0), 0);
	for (unsigned int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "n%u.test", i);
		/* Later names live longer: the oldest make room. */
		assert_int_equal(pins_add(&p, name, &a, 60 + i, 0), 0);
	}
	assert_int_equal(pins_count(&p), PINS_PER_ADDR + 1);
	assert_false(pins_lookup(&p, &a, 0, count_names, &asked));
	assert_int_equal(asked, PINS_PER_ADDR);
	assert_true(pinned(&p, a, 0, "n999.test"));
	assert_true(pinned(&p, a, 0, "n968.test"));
	assert_false(pinned(&p, a, 0, "n967.test"));
	assert_false(pinned(&p, a, 0, "n0.test"));
	/* Another address keeps its own. */
	assert_true(pinned(&p, b, 0, "other.test"));
	/* Refreshing a name already pinned takes no room. */
	assert_int_equal(pins_add(&p, "n999.test", &a, 600, 0), 0);
	assert_int_equal(pins_count(&p), PINS_PER_ADDR + 1);
	pins_free(&p);
}

static void test_pins_bad_names(void **state)
{
	char longest[PINS_NAME_MAX + 2], toolong[PINS_NAME_MAX + 2];
	struct pins p;
	struct ipaddr a = ip_of("198.51.100.1");

	(void)state;
	pins_init(&p, 5);
	memset(longest, 'a', PINS_NAME_MAX);
	longest[PINS_NAME_MAX] = '.';
	longest[PINS_NAME_MAX + 1] = '\0';
	memset(toolong, 'a', PINS_NAME_MAX + 1);
	toolong[PINS_NAME_MAX + 1] = '\0';
	assert_int_equal(pins_add(&p, "", &a, 60, 0), -EINVAL);
	assert_int_equal(pins_add(&p, ".", &a, 60, 0), -EINVAL);
	assert_int_equal(pins_add(&p, "a b.test", &a, 60, 0), -EINVAL);
	assert_int_equal(pins_add(&p, "a\nb.test", &a, 60, 0), -EINVAL);
	assert_int_equal(pins_add(&p, "caf\xc3\xa9.test", &a, 60, 0), -EINVAL);
	assert_int_equal(pins_add(&p, toolong, &a, 60, 0), -EINVAL);
	assert_int_equal(pins_count(&p), 0);
	assert_int_equal(pins_add(&p, longest, &a, 60, 0), 0);
	longest[PINS_NAME_MAX] = '\0';
	assert_true(pins_lookup(&p, &a, 0, match_str, longest));
	pins_free(&p);
}

/* --- grammar ---------------------------------------------------------- */

static void test_grammar_forms(void **state)
{
	static const struct {
		const char *in, *canon;
	} t[] = {
		{ "allow@example.com", "allow@example.com" },
		{ "ALLOW:EGRESS@Example.COM.", "allow@example.com" },
		{ "allow:egress@example.com", "allow@example.com" },
		{ "deny:ingress@10.0.0.0/8", "deny:ingress@10.0.0.0/8" },
		{ "allow:any@198.51.100.5", "allow:any@198.51.100.5" },
		{ "allow@1.2.3.4/32", "allow@1.2.3.4" },
		{ "allow@0.0.0.0/0", "allow@0.0.0.0/0" },
		{ "allow@[2001:db8::]/32", "allow@[2001:db8::]/32" },
		{ "allow@[2001:DB8:0::1]", "allow@[2001:db8::1]" },
		{ "allow@[::1]/128", "allow@[::1]" },
		{ "allow@[::]/0", "allow@[::]/0" },
		{ "allow@[2001:db8::1]:tcp:443", "allow@[2001:db8::1]:tcp:443" },
		{ "allow@[2001:db8::]/32:udp:53", "allow@[2001:db8::]/32:udp:53" },
		{ "allow@[::ffff:10.0.0.0]/104", "allow@10.0.0.0/8" },
		{ "allow@*.github.com:tcp:443", "allow@*.github.com:tcp:443" },
		{ "allow@suffix=github.com:tcp:443", "allow@*.github.com:tcp:443" },
		{ "allow@SUFFIX=co.uk", "allow@*.co.uk" },
		{ "allow@*.Example.COM.", "allow@*.example.com" },
		{ "allow@domain=public", "allow@domain=public" },
		{ "allow@domain=localhost", "allow@domain=localhost" },
		{ "allow@domain=Example.com", "allow@example.com" },
		{ "allow@domain=1.2.3.4", "allow@domain=1.2.3.4" },
		{ "allow@1a.2b", "allow@1a.2b" },
		{ "allow@under_score.test", "allow@under_score.test" },
		{ "allow@xn--bcher-kva.example", "allow@xn--bcher-kva.example" },
		{ "deny@public", "deny@public" },
		{ "deny@PRIVATE", "deny@private" },
		{ "deny@multicast", "deny@multicast" },
		{ "deny@loopback", "deny@loopback" },
		{ "deny@link_local", "deny@link_local" },
		{ "deny@metadata", "deny@metadata" },
		{ "deny@any", "deny@any" },
		{ "allow@x.test:udp", "allow@x.test:udp" },
		{ "allow@x.test:any", "allow@x.test" },
		{ "allow@x.test:any:any", "allow@x.test" },
		{ "allow@x.test:tcp:any", "allow@x.test:tcp" },
		{ "allow@x.test:TCP:ANY", "allow@x.test:tcp" },
		{ "allow@x.test:any:443", "allow@x.test:any:443" },
		{ "allow@x.test:tcp:1-65535", "allow@x.test:tcp:1-65535" },
		{ "allow@x.test:udp:53-53", "allow@x.test:udp:53" },
		{ "allow@x.test:tcp:8000-8080", "allow@x.test:tcp:8000-8080" },
		{ "allow@x.test:icmpv4", "allow@x.test:icmpv4" },
		{ "allow@x.test:icmpv6:any", "allow@x.test:icmpv6" },
		{ "  allow@a.test\t ", "allow@a.test" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_canon(t[i].in, t[i].canon);
}

static void test_grammar_fields(void **state)
{
	struct net_policy p;
	const struct net_rule *r;

	(void)state;
	mkpolicy(&p, "allow:ingress@[2001:db8::]/32:udp:53-54,deny:any@*.Good.Test,"
		     "deny@metadata:icmpv4,allow@domain=public:any:8080");
	assert_int_equal(p.n, 4);
	r = &p.rules[0];
	assert_true(r->allow);
	assert_int_equal(r->dirs, NET_INGRESS);
	assert_int_equal(r->target, NET_T_CIDR);
	assert_true(ip_equal(&r->net, &(struct ipaddr){ .b = { 0x20, 0x01, 0x0d, 0xb8 } }));
	assert_int_equal(r->prefix, 32);
	assert_int_equal(r->proto, NET_UDP);
	assert_int_equal(r->port_lo, 53);
	assert_int_equal(r->port_hi, 54);
	r = &p.rules[1];
	assert_false(r->allow);
	assert_int_equal(r->dirs, NET_BOTH);
	assert_int_equal(r->target, NET_T_SUFFIX);
	assert_string_equal(r->name, "good.test");
	assert_int_equal(r->proto, NET_PROTO_ANY);
	assert_int_equal(r->port_lo, 0);
	r = &p.rules[2];
	assert_int_equal(r->dirs, NET_EGRESS);
	assert_int_equal(r->target, NET_T_GROUP);
	assert_int_equal(r->groups, IPG_METADATA);
	assert_int_equal(r->proto, NET_ICMP4);
	r = &p.rules[3];
	assert_int_equal(r->target, NET_T_DOMAIN);
	assert_string_equal(r->name, "public");
	assert_int_equal(r->proto, NET_PROTO_ANY);
	assert_int_equal(r->port_lo, 8080);
	assert_int_equal(r->port_hi, 8080);
	policy_free(&p);
	assert_int_equal(p.n, 0);
	assert_null(p.rules);
}

#define TOK(t, why) "invalid --net-rule token \"" t "\": " why

static void test_grammar_errors(void **state)
{
	static const struct {
		const char *in, *err;
	} t[] = {
		{ "",
		  "empty --net-rule value (expected ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]])" },
		{ "  ",
		  "empty --net-rule value (expected ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]])" },
		{ "allow@a.test,,deny@b.test",
		  "invalid --net-rule value \"allow@a.test,,deny@b.test\": empty token" },
		{ "allow@a.test,", "invalid --net-rule value \"allow@a.test,\": empty token" },
		{ ",allow@a.test", "invalid --net-rule value \",allow@a.test\": empty token" },
		{ "allow@a.test, ,allow@b.test",
		  "invalid --net-rule value \"allow@a.test, ,allow@b.test\": empty token" },
		{ "allow", TOK("allow", "expected ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]]") },
		{ "a.test", TOK("a.test", "expected ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]]") },
		{ "permit@a.test",
		  TOK("permit@a.test", "unknown action \"permit\" (use allow or deny)") },
		{ "@a.test", TOK("@a.test", "missing action before \"@\" (use allow or deny)") },
		{ "allow:out@a.test",
		  TOK("allow:out@a.test",
		      "unknown direction \"out\" (use egress, ingress or any)") },
		{ "allow:@a.test",
		  TOK("allow:@a.test", "empty direction (use egress, ingress or any)") },
		{ "allow:egress:tcp@a.test",
		  TOK("allow:egress:tcp@a.test",
		      "unexpected \":tcp\" after the direction (expected "
		      "ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]])") },
		{ "allow@", TOK("allow@", "missing target after \"@\"") },
		{ "allow@:tcp", TOK("allow@:tcp", "missing target after \"@\"") },
		/* Suffixes: two labels at least. */
		{ "deny@*.com", TOK("deny@*.com", "a suffix needs at least two labels") },
		{ "deny@suffix=local",
		  TOK("deny@suffix=local", "a suffix needs at least two labels") },
		{ "deny@suffix=local.",
		  TOK("deny@suffix=local.", "a suffix needs at least two labels") },
		{ "deny@*.com:tcp:443",
		  TOK("deny@*.com:tcp:443", "a suffix needs at least two labels") },
		{ "deny@*.", TOK("deny@*.", "empty domain name") },
		{ "deny@suffix=", TOK("deny@suffix=", "empty domain name") },
		{ "deny@domain=", TOK("deny@domain=", "empty domain name") },
		{ "deny@*", TOK("deny@*", "\"*\" is only allowed as a leading \"*.\"") },
		{ "deny@a.*.test",
		  TOK("deny@a.*.test", "\"*\" is only allowed as a leading \"*.\"") },
		{ "deny@*.*.test",
		  TOK("deny@*.*.test", "\"*\" is only allowed as a leading \"*.\"") },
		{ "deny@suffix=*.a.test",
		  TOK("deny@suffix=*.a.test", "\"*\" is only allowed as a leading \"*.\"") },
		/* One label that is no group: most likely a typo. */
		{ "allow@publc",
		  TOK("allow@publc",
		      "unknown group \"publc\" (groups: public, private, multicast, "
		      "loopback, link_local, metadata, any; write domain=publc for a "
		      "one-label name)") },
		{ "allow@a..test", TOK("allow@a..test", "empty label in domain name \"a..test\"") },
		{ "allow@.a.test", TOK("allow@.a.test", "empty label in domain name \".a.test\"") },
		{ "allow@a.test..",
		  TOK("allow@a.test..", "empty label in domain name \"a.test.\"") },
		{ "allow@a!b.test",
		  TOK("allow@a!b.test", "invalid character '!' in domain name \"a!b.test\"") },
		{ "allow@a test",
		  TOK("allow@a test", "invalid character ' ' in domain name \"a test\"") },
		{ "allow@a.test@b",
		  TOK("allow@a.test@b", "invalid character '@' in domain name \"a.test@b\"") },
		{ "allow@domain=a/b",
		  TOK("allow@domain=a/b", "invalid character '/' in domain name \"a/b\"") },
		/* Addresses. */
		{ "allow@10.0.0.1/8",
		  TOK("allow@10.0.0.1/8",
		      "host bits set in 10.0.0.1/8 (did you mean 10.0.0.0/8?)") },
		{ "allow@10.0.0.0/33",
		  TOK("allow@10.0.0.0/33", "invalid prefix length \"/33\" (0-32 for IPv4)") },
		{ "allow@[2001:db8::]/129",
		  TOK("allow@[2001:db8::]/129",
		      "invalid prefix length \"/129\" (0-128 for IPv6)") },
		{ "allow@[2001:db8::1]/32:tcp",
		  TOK("allow@[2001:db8::1]/32:tcp",
		      "host bits set in [2001:db8::1]/32 (did you mean [2001:db8::]/32?)") },
		{ "allow@1.2.3", TOK("allow@1.2.3", "invalid IPv4 address \"1.2.3\"") },
		{ "allow@1.2.3.256", TOK("allow@1.2.3.256", "invalid IPv4 address \"1.2.3.256\"") },
		{ "allow@01.2.3.4", TOK("allow@01.2.3.4", "invalid IPv4 address \"01.2.3.4\"") },
		{ "allow@example.com/8",
		  TOK("allow@example.com/8", "invalid IPv4 address \"example.com\"") },
		{ "allow@2001:db8::1",
		  TOK("allow@2001:db8::1",
		      "IPv6 addresses must be in brackets, as in [2001:db8::1]:tcp:443") },
		{ "allow@::1",
		  TOK("allow@::1",
		      "IPv6 addresses must be in brackets, as in [2001:db8::1]:tcp:443") },
		{ "allow@2001:db8::/32:tcp",
		  TOK("allow@2001:db8::/32:tcp",
		      "IPv6 addresses must be in brackets, as in [2001:db8::1]:tcp:443") },
		{ "allow@2001:db8:0:0:0:0:0:1",
		  TOK("allow@2001:db8:0:0:0:0:0:1",
		      "IPv6 addresses must be in brackets, as in [2001:db8::1]:tcp:443") },
		{ "allow@[1.2.3.4]",
		  TOK("allow@[1.2.3.4]", "brackets are only for IPv6 addresses (write 1.2.3.4)") },
		{ "allow@[2001:db8::1",
		  TOK("allow@[2001:db8::1", "missing \"]\" after the IPv6 address") },
		{ "allow@[2001:db8::1]x",
		  TOK("allow@[2001:db8::1]x", "unexpected \"x\" after \"]\"") },
		{ "allow@[zz::1]", TOK("allow@[zz::1]", "invalid IPv6 address \"zz::1\"") },
		/* Protocols and ports. */
		{ "allow@a.test:http",
		  TOK("allow@a.test:http",
		      "unknown protocol \"http\" (use tcp, udp, icmpv4, icmpv6 or any)") },
		{ "allow@a.test:icmp",
		  TOK("allow@a.test:icmp",
		      "unknown protocol \"icmp\" (use tcp, udp, icmpv4, icmpv6 or any)") },
		{ "allow@a.test:",
		  TOK("allow@a.test:", "empty protocol (use tcp, udp, icmpv4, icmpv6 or any)") },
		{ "allow@a.test::443",
		  TOK("allow@a.test::443",
		      "empty protocol (use tcp, udp, icmpv4, icmpv6 or any)") },
		{ "allow@a.test:tcp:",
		  TOK("allow@a.test:tcp:", "empty ports (use N, LO-HI or any)") },
		{ "allow@a.test:tcp:0",
		  TOK("allow@a.test:tcp:0", "port 0 out of range (1-65535)") },
		{ "allow@a.test:tcp:65536",
		  TOK("allow@a.test:tcp:65536", "port 65536 out of range (1-65535)") },
		{ "allow@a.test:tcp:99999",
		  TOK("allow@a.test:tcp:99999", "port 99999 out of range (1-65535)") },
		{ "allow@a.test:tcp:123456",
		  TOK("allow@a.test:tcp:123456",
		      "invalid port \"123456\" (use N, LO-HI or any; ports are 1-65535)") },
		{ "allow@a.test:tcp:http",
		  TOK("allow@a.test:tcp:http",
		      "invalid port \"http\" (use N, LO-HI or any; ports are 1-65535)") },
		{ "allow@a.test:tcp:+80",
		  TOK("allow@a.test:tcp:+80",
		      "invalid port \"+80\" (use N, LO-HI or any; ports are 1-65535)") },
		{ "allow@a.test:tcp:443-80",
		  TOK("allow@a.test:tcp:443-80", "port range 443-80 is reversed (write 80-443)") },
		{ "allow@a.test:tcp:80-",
		  TOK("allow@a.test:tcp:80-",
		      "invalid port \"\" (use N, LO-HI or any; ports are 1-65535)") },
		{ "allow@a.test:tcp:-80",
		  TOK("allow@a.test:tcp:-80",
		      "invalid port \"\" (use N, LO-HI or any; ports are 1-65535)") },
		{ "allow@a.test:tcp:1-2-3",
		  TOK("allow@a.test:tcp:1-2-3",
		      "invalid port \"2-3\" (use N, LO-HI or any; ports are 1-65535)") },
		{ "allow@a.test:icmpv4:1",
		  TOK("allow@a.test:icmpv4:1", "ICMP has no ports (leave them out, or use any)") },
		{ "allow@a.test:icmpv6:1-2",
		  TOK("allow@a.test:icmpv6:1-2",
		      "ICMP has no ports (leave them out, or use any)") },
		{ "allow@a.test:tcp:443:x",
		  TOK("allow@a.test:tcp:443:x", "unexpected \":x\" after the ports (expected "
						"ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]])") },
		/* The error names the bad token, not its good neighbours. */
		{ "allow@a.test, deny@*.com ,allow@b.test",
		  TOK("deny@*.com", "a suffix needs at least two labels") },
		/* Control characters never reach the terminal. */
		{ "allow@a\x1b[31m.test",
		  TOK("allow@a?[31m.test",
		      "invalid character '?' in domain name \"a?[31m.test\"") },
		{ "allow@a\nb.test",
		  TOK("allow@a?b.test", "invalid character '?' in domain name \"a?b.test\"") },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_error(t[i].in, t[i].err);
}

static void test_grammar_bounds(void **state)
{
	char label63[64], label64[65], name253[254], name254[255], tok[NET_MAX_TOKEN + 2];
	char arg[NET_MAX_RULES * 16], want[1024], err[1024];
	struct net_policy p;
	size_t at = 0;

	(void)state;
	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'a', 64);
	label64[64] = '\0';
	/* 253 = 63 + 1 + 63 + 1 + 63 + 1 + 61 */
	snprintf(name253, sizeof(name253), "%s.%s.%s.%.61s", label63, label63, label63, label63);
	assert_int_equal(strlen(name253), 253);
	snprintf(name254, sizeof(name254), "%s.%s.%s.%.62s", label63, label63, label63, label63);

	snprintf(tok, sizeof(tok), "allow@%s.test", label63);
	expect_canon(tok, tok);
	snprintf(tok, sizeof(tok), "allow@%s", name253);
	expect_canon(tok, tok);
	snprintf(tok, sizeof(tok), "allow@%s.", name253);
	mkpolicy(&p, tok);
	assert_string_equal(p.rules[0].name, name253);
	policy_free(&p);

	snprintf(tok, sizeof(tok), "allow@%s.test", label64);
	snprintf(want, sizeof(want),
		 "invalid --net-rule token \"%s\": label longer than 63 characters in "
		 "domain name",
		 tok);
	expect_error(tok, want);
	snprintf(tok, sizeof(tok), "allow@%s", name254);
	snprintf(want, sizeof(want),
		 "invalid --net-rule token \"%.80s...\": domain name longer than 253 characters",
		 tok);
	expect_error(tok, want);

	/* A token of 512 bytes is read (and found wrong); 513 is refused as too long. */
	memset(tok, 'a', sizeof(tok));
	memcpy(tok, "allow@", 6);
	tok[NET_MAX_TOKEN] = '\0';
	mkpolicy(&p, NULL);
	assert_int_equal(policy_add(&p, tok, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\": domain name longer than 253 characters"));
	tok[NET_MAX_TOKEN] = 'a';
	tok[NET_MAX_TOKEN + 1] = '\0';
	assert_int_equal(policy_add(&p, tok, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "invalid --net-rule token \"%.80s...\": longer than 512 bytes",
		 tok);
	assert_string_equal(err, want);
	policy_free(&p);

	/* Spaces around a token do not count towards its length. */
	{
		char padded[1200];

		memset(padded, ' ', sizeof(padded));
		memcpy(padded + 600, "allow@a.test", 12);
		padded[sizeof(padded) - 1] = '\0';
		mkpolicy(&p, padded);
		assert_int_equal(p.n, 1);
		policy_free(&p);
	}

	/* 256 rules fit; the 257th is refused, and its whole value with it. */
	for (int i = 0; i < NET_MAX_RULES; i++)
		at += (size_t)snprintf(arg + at, sizeof(arg) - at, "%sdeny@r%d.test", i ? "," : "",
				       i);
	mkpolicy(&p, arg);
	assert_int_equal(p.n, NET_MAX_RULES);
	assert_int_equal(policy_add(&p, "allow@x.test", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, TOK("allow@x.test", "too many rules (at most 256)"));
	assert_int_equal(p.n, NET_MAX_RULES);
	policy_free(&p);
	mkpolicy(&p, "allow@first.test");
	assert_int_equal(policy_add(&p, arg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, TOK("deny@r255.test", "too many rules (at most 256)"));
	assert_int_equal(p.n, 1);
	policy_free(&p);
}

static void test_grammar_all_or_nothing(void **state)
{
	struct net_policy p;
	char err[256];

	(void)state;
	mkpolicy(&p, "allow@a.test");
	assert_int_equal(policy_add(&p, "allow@b.test,allow@c.test,deny@*.com", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.rules[0].name, "a.test");
	/* A tiny error buffer gets a cut, terminated message; none at all is fine too. */
	assert_int_equal(policy_add(&p, "bogus", err, 8), -EINVAL);
	assert_string_equal(err, "invalid");
	assert_int_equal(policy_add(&p, "bogus", NULL, 0), -EINVAL);
	assert_int_equal(policy_add(&p, "allow@b.test,deny@c.test", err, sizeof(err)), 0);
	assert_int_equal(p.n, 3);
	assert_string_equal(err, "");
	policy_free(&p);
}

/* --- defaults --------------------------------------------------------- */

static void test_default_builtin(void **state)
{
	struct net_policy p;

	(void)state;
	mkpolicy(&p, NULL);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.10", 80, NULL, 0, true, -1);
	EXPECT(&p, NET_EGRESS, NET_UDP, "203.0.113.9", 443, NULL, 0, true, -1);
	EXPECT(&p, NET_EGRESS, NET_ICMP4, "198.51.100.10", 0, NULL, 0, true, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "2001:db8::1", 80, NULL, 0, true, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.20.30.40", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "172.16.0.1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "192.168.1.1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "100.64.0.1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "fd00::1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "127.0.0.1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "::1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "0.0.0.0", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "169.254.169.254", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "fd00:ec2::254", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "fe80::1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_UDP, "224.0.0.251", 5353, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_UDP, "255.255.255.255", 67, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "240.0.0.1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "64:ff9b::10.0.0.1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "64:ff9b::198.51.100.10", 80, NULL, 0, true, -1);
	/* Ingress (to published ports) is allowed by default, from anywhere. */
	EXPECT(&p, NET_INGRESS, NET_TCP, "127.0.0.1", 8080, NULL, 0, true, -1);
	EXPECT(&p, NET_INGRESS, NET_UDP, "10.0.0.1", 53, NULL, 0, true, -1);
	policy_free(&p);
}

static void test_default_set(void **state)
{
	struct net_policy p;
	char err[256];

	(void)state;
	/* --no-net: nothing either way, public or not. */
	mkpolicy(&p, NULL);
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.10", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_UDP, "10.0.0.1", 53, NULL, 0, false, -1);
	EXPECT(&p, NET_INGRESS, NET_TCP, "127.0.0.1", 8080, NULL, 0, false, -1);
	/* ...with an allowlist. */
	assert_int_equal(policy_add(&p, "allow@198.51.100.10:tcp:80", err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.10", 80, NULL, 0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.10", 81, NULL, 0, false, -1);
	policy_free(&p);

	/* --net-default allow: everything, private and metadata included. */
	mkpolicy(&p, NULL);
	assert_int_equal(policy_set_default(&p, NET_BOTH, true, err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "169.254.169.254", 80, NULL, 0, true, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 80, NULL, 0, true, -1);
	EXPECT(&p, NET_INGRESS, NET_TCP, "10.0.0.1", 80, NULL, 0, true, -1);
	/* Repeating the same form sets it again. */
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 80, NULL, 0, false, -1);
	/* The both-ways form excludes the one-way forms, in either order. */
	assert_int_equal(policy_set_default(&p, NET_EGRESS, true, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--net-default (or --no-net) cannot be combined with "
				 "--net-default-egress or --net-default-ingress");
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 80, NULL, 0, false, -1);
	policy_free(&p);

	mkpolicy(&p, NULL);
	assert_int_equal(policy_set_default(&p, NET_INGRESS, false, err, sizeof(err)), 0);
	EXPECT(&p, NET_INGRESS, NET_TCP, "127.0.0.1", 8080, NULL, 0, false, -1);
	/* Egress keeps the built-in public-only default. */
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.10", 80, NULL, 0, true, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 80, NULL, 0, false, -1);
	assert_int_equal(policy_set_default(&p, NET_EGRESS, true, err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 80, NULL, 0, true, -1);
	EXPECT(&p, NET_INGRESS, NET_TCP, "127.0.0.1", 8080, NULL, 0, false, -1);
	assert_int_equal(policy_set_default(&p, NET_BOTH, true, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--net-default (or --no-net) cannot be combined with "
				 "--net-default-egress or --net-default-ingress");
	assert_int_equal(policy_set_default(&p, 0, true, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "network default: invalid direction set 0");
	assert_int_equal(policy_set_default(&p, 4, true, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "network default: invalid direction set 0x4");
	policy_free(&p);
}

/* --- matching --------------------------------------------------------- */

static void test_first_match(void **state)
{
	struct net_policy p;
	char err[256];

	(void)state;
	mkpolicy(&p, "deny@10.0.0.0/8,allow@10.1.0.0/16");
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.1.2.3", 80, NULL, 0, false, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.2.0.1", 80, NULL, 0, false, 0);
	policy_free(&p);
	mkpolicy(&p, "allow@10.1.0.0/16,deny@10.0.0.0/8");
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.1.2.3", 80, NULL, 0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.2.0.1", 80, NULL, 0, false, 1);
	/* Later values come later in argv order, and their indices continue. */
	assert_int_equal(policy_add(&p, "allow@private,deny@public", err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "192.168.0.1", 80, NULL, 0, true, 2);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.10", 80, NULL, 0, false, 3);
	EXPECT(&p, NET_EGRESS, NET_TCP, "127.0.0.1", 80, NULL, 0, false, -1);
	policy_free(&p);
	/* A deny ahead of a broad allow: the metadata service stays shut. */
	mkpolicy(&p, "deny@metadata,allow@any");
	EXPECT(&p, NET_EGRESS, NET_TCP, "169.254.169.254", 80, NULL, 0, false, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "169.254.1.1", 80, NULL, 0, true, 1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "240.0.0.1", 80, NULL, 0, true, 1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "::", 80, NULL, 0, true, 1);
	policy_free(&p);
	/* "private" does not open the metadata service, in either family. */
	mkpolicy(&p, "allow@private,allow@link_local:udp");
	EXPECT(&p, NET_EGRESS, NET_TCP, "fd00:ec2::254", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "fd00:ec2::253", 80, NULL, 0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "169.254.169.254", 80, NULL, 0, false, -1);
	/* Nor does link_local, though the address is link-local: metadata must be named. */
	EXPECT(&p, NET_EGRESS, NET_UDP, "169.254.169.254", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_UDP, "169.254.1.1", 80, NULL, 0, true, 1);
	policy_free(&p);
	mkpolicy(&p, "allow@link_local,allow@public,allow@private");
	EXPECT(&p, NET_EGRESS, NET_TCP, "169.254.169.254", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "168.63.129.16", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "100.100.100.200", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "100.100.100.201", 80, NULL, 0, true, 2);
	EXPECT(&p, NET_EGRESS, NET_TCP, "168.63.129.17", 80, NULL, 0, true, 1);
	policy_free(&p);
	/* Named: by its group, by "any", by its address. */
	mkpolicy(&p, "allow@metadata:tcp:80,allow@168.63.129.16/32,allow@any:udp");
	EXPECT(&p, NET_EGRESS, NET_TCP, "169.254.169.254", 80, NULL, 0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "100.100.100.200", 80, NULL, 0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "168.63.129.16", 443, NULL, 0, true, 1);
	EXPECT(&p, NET_EGRESS, NET_UDP, "fd00:ec2::254", 53, NULL, 0, true, 2);
	policy_free(&p);
	/* And the built-in default never allows one. */
	mkpolicy(&p, "allow@198.51.100.0/24");
	EXPECT(&p, NET_EGRESS, NET_TCP, "168.63.129.16", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "100.100.100.200", 80, NULL, 0, false, -1);
	policy_free(&p);
}

static void test_direction(void **state)
{
	struct net_policy p;
	char err[256];

	(void)state;
	mkpolicy(&p, "allow:ingress@private,deny:any@loopback,allow@198.51.100.0/24");
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	EXPECT(&p, NET_INGRESS, NET_TCP, "10.0.0.1", 8080, NULL, 0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 8080, NULL, 0, false, -1);
	EXPECT(&p, NET_INGRESS, NET_TCP, "127.0.0.1", 8080, NULL, 0, false, 1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "127.0.0.1", 8080, NULL, 0, false, 1);
	/* No direction means egress only. */
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.1", 80, NULL, 0, true, 2);
	EXPECT(&p, NET_INGRESS, NET_TCP, "198.51.100.1", 80, NULL, 0, false, -1);
	policy_free(&p);
}

static void test_proto_ports(void **state)
{
	struct net_policy p;
	char err[256];

	(void)state;
	mkpolicy(&p, "allow@private:tcp:443,allow@private:any:53,allow@private:icmpv4,"
		     "allow@private:udp:8000-8080,allow@[fd00::]/8:icmpv6");
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 443, NULL, 0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 442, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 444, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_UDP, "10.0.0.1", 443, NULL, 0, false, -1);
	/* "any" protocol with a port: TCP and UDP only. */
	EXPECT(&p, NET_EGRESS, NET_UDP, "10.0.0.1", 53, NULL, 0, true, 1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 53, NULL, 0, true, 1);
	/* ICMP has no port, so port 53 in the call means nothing to it. */
	EXPECT(&p, NET_EGRESS, NET_ICMP4, "10.0.0.1", 53, NULL, 0, true, 2);
	EXPECT(&p, NET_EGRESS, NET_ICMP6, "10.0.0.1", 0, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_ICMP6, "fd00::1", 0, NULL, 0, true, 4);
	EXPECT(&p, NET_EGRESS, NET_ICMP6, "fe80::1", 0, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_UDP, "10.0.0.1", 7999, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_UDP, "10.0.0.1", 8000, NULL, 0, true, 3);
	EXPECT(&p, NET_EGRESS, NET_UDP, "10.0.0.1", 8080, NULL, 0, true, 3);
	EXPECT(&p, NET_EGRESS, NET_UDP, "10.0.0.1", 8081, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 8000, NULL, 0, false, -1);
	policy_free(&p);
}

static void test_cidr_families(void **state)
{
	struct net_policy p;
	char err[256];

	(void)state;
	mkpolicy(&p, "allow@0.0.0.0/0");
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 80, NULL, 0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "2001:db8::1", 80, NULL, 0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "::1", 80, NULL, 0, false, -1);
	policy_free(&p);
	/* [::]/0 is all of IPv6, not IPv4 as well. */
	mkpolicy(&p, "allow@[::]/0");
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "2001:db8::1", 80, NULL, 0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.0.0.1", 80, NULL, 0, false, -1);
	policy_free(&p);
	/* An IPv4 rule also covers the same host through NAT64. */
	mkpolicy(&p, "deny@10.0.0.0/8,allow@[64:ff9b::]/96");
	assert_int_equal(policy_set_default(&p, NET_BOTH, true, err, sizeof(err)), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "64:ff9b::10.1.2.3", 80, NULL, 0, false, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "64:ff9b::198.51.100.1", 80, NULL, 0, true, 1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "10.1.2.3", 80, NULL, 0, false, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "11.0.0.1", 80, NULL, 0, true, -1);
	policy_free(&p);
	/* Single addresses, both families. */
	mkpolicy(&p, "deny@198.51.100.5,deny@[2001:db8::5]");
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.5", 80, NULL, 0, false, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.6", 80, NULL, 0, true, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "2001:db8::5", 80, NULL, 0, false, 1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "2001:db8::6", 80, NULL, 0, true, -1);
	policy_free(&p);
}

static void test_domain_through_pins(void **state)
{
	struct net_policy p;
	struct pins pins;
	struct ipaddr ip = ip_of("198.51.100.20");
	char err[256];
	const uint64_t t0 = 1000000;

	(void)state;
	pins_init(&pins, 99);
	mkpolicy(&p, "allow@good.test");
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	/* Before the sandbox resolves good.test, its address is just an address. */
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.20", 443, &pins, t0, false, -1);
	/* A pin for another name does not help. */
	assert_int_equal(pins_add(&pins, "bad.test", &ip, 60, t0), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.20", 443, &pins, t0, false, -1);
	/* After the answer, it is good.test's. */
	assert_int_equal(pins_add(&pins, "GOOD.test.", &ip, 60, t0), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.20", 443, &pins, t0, true, 0);
	EXPECT(&p, NET_EGRESS, NET_UDP, "198.51.100.20", 53, &pins, t0 + 59999, true, 0);
	/* Other addresses are not, and without the pin set no domain rule matches. */
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.21", 443, &pins, t0, false, -1);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.20", 443, NULL, t0, false, -1);
	/* After expiry it is not, even before pins_expire() reclaims the pin. */
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.20", 443, &pins, t0 + 60000, false, -1);
	pins_expire(&pins, t0 + 60000);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.20", 443, &pins, t0 + 60000, false, -1);
	policy_free(&p);

	/* Exact names are exact: a subdomain's pin does not match good.test. */
	mkpolicy(&p, "allow@good.test");
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	assert_int_equal(pins_add(&pins, "www.good.test", &ip, 60, t0), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.20", 443, &pins, t0, false, -1);
	policy_free(&p);
	pins_free(&pins);

	/* A domain deny under the public-only default. */
	pins_init(&pins, 7);
	mkpolicy(&p, "deny@evil.test");
	assert_int_equal(pins_add(&pins, "evil.test", &ip, 60, t0), 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.20", 443, &pins, t0, false, 0);
	EXPECT(&p, NET_EGRESS, NET_TCP, "198.51.100.21", 443, &pins, t0, true, -1);
	policy_free(&p);
	pins_free(&pins);
}

static void test_suffix_depth(void **state)
{
	static const struct {
		const char *name;
		bool match;
	} t[] = {
		{ "good.test", true },	   { "a.good.test", true },	{ "a.b.c.good.test", true },
		{ "notgood.test", false }, { "good.test.evil", false }, { "ood.test", false },
		{ "xgood.test", false },   { "test", false },
	};
	struct net_policy p;
	char err[256];

	(void)state;
	mkpolicy(&p, "allow@*.good.test:tcp:443");
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct pins pins;
		struct ipaddr ip = ip_of("203.0.113.7");
		struct net_verdict v;

		pins_init(&pins, i);
		assert_int_equal(pins_add(&pins, t[i].name, &ip, 60, 0), 0);
		v = policy_check(&p, NET_EGRESS, NET_TCP, &ip, 443, &pins, 0);
		if (v.allow != t[i].match)
			fail_msg("%s: %s", t[i].name, v.allow ? "allowed" : "denied");
		assert_int_equal(v.rule, t[i].match ? 0 : -1);
		assert_int_equal(policy_dns_allowed(&p, t[i].name), t[i].match);
		pins_free(&pins);
	}
	policy_free(&p);
}

/* --- DNS -------------------------------------------------------------- */

struct dns_case {
	const char *name;
	bool allowed;
};

/* Checks every name of @t against @rules under the default @def (-1: built-in, 0 deny, 1 allow). */
static void dns_cases(const char *rules, int def, const struct dns_case *t, size_t n)
{
	struct net_policy p;
	char err[256];

	mkpolicy(&p, rules);
	if (def >= 0)
		assert_int_equal(policy_set_default(&p, NET_BOTH, def, err, sizeof(err)), 0);
	for (size_t i = 0; i < n; i++)
		if (policy_dns_allowed(&p, t[i].name) != t[i].allowed)
			fail_msg("rules \"%s\" default %d: %s should be %s", rules ? rules : "",
				 def, t[i].name, t[i].allowed ? "allowed" : "refused");
	policy_free(&p);
}

#define DNS_CASES(rules, def, ...)                                                                 \
	do {                                                                                       \
		const struct dns_case t_[] = { __VA_ARGS__ };                                      \
		dns_cases(rules, def, t_, sizeof(t_) / sizeof(t_[0]));                             \
	} while (0)

static void test_dns(void **state)
{
	char longname[400];

	(void)state;
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';

	/* The built-in default resolves everything: the answers are judged when used. */
	DNS_CASES(NULL, -1, { "example.com", true }, { "x", true }, { longname, true });
	/* --no-net: nothing; an allowlist opens exactly its names. */
	DNS_CASES(NULL, 0, { "example.com", false }, { longname, false });
	DNS_CASES("allow@good.test", 0, { "good.test", true }, { "GOOD.Test.", true },
		  { "bad.test", false }, { "www.good.test", false }, { "good.test.evil", false });
	DNS_CASES("allow@*.good.test", 0, { "good.test", true }, { "a.b.good.test", true },
		  { "notgood.test", false });
	/* A port-limited allow still needs the name. */
	DNS_CASES("allow@good.test:tcp:443", 0, { "good.test", true });
	/* Denies refuse under any default, exact or suffix. */
	DNS_CASES("deny@bad.test", -1, { "bad.test", false }, { "sub.bad.test", true },
		  { "good.test", true });
	DNS_CASES("deny@*.bad.test", 1, { "bad.test", false }, { "x.y.bad.test", false },
		  { "good.test", true });
	/* A deny limited to a protocol or port is per flow; the name still resolves. */
	DNS_CASES("deny@bad.test:tcp:25", -1, { "bad.test", true });
	DNS_CASES("deny@bad.test:any:25", -1, { "bad.test", true });
	DNS_CASES("deny@bad.test:udp", 0, { "bad.test", false });
	DNS_CASES("deny@bad.test:tcp:25,allow@bad.test", 0, { "bad.test", true });
	/* First match wins. */
	DNS_CASES("deny@x.good.test,allow@*.good.test", 0, { "x.good.test", false },
		  { "y.good.test", true });
	DNS_CASES("allow@*.good.test,deny@x.good.test", 0, { "x.good.test", true });
	/* Only rules that cover egress speak for names. */
	DNS_CASES("allow:ingress@good.test", 0, { "good.test", false });
	DNS_CASES("deny:ingress@good.test", -1, { "good.test", true });
	DNS_CASES("allow:any@good.test", 0, { "good.test", true });
	DNS_CASES("deny:any@good.test", 1, { "good.test", false });
	/* Addresses rules do not open names, but where every public address is open anyway
	 * (allow@public, allow@any) names resolve: DNS adds no channel there. */
	DNS_CASES("allow@198.51.100.0/24,allow@private,allow@metadata", 0, { "good.test", false });
	DNS_CASES("allow@public", 0, { "good.test", true });
	DNS_CASES("allow@public:tcp:443", 0, { "good.test", true });
	DNS_CASES("allow@any", 0, { "good.test", true });
	DNS_CASES("allow:ingress@public", 0, { "good.test", false });
	DNS_CASES("deny@bad.test,allow@public", 0, { "bad.test", false }, { "good.test", true });
	DNS_CASES("deny@any,deny@public", -1, { "good.test", true });
	/* domain=public is a name, not the group. */
	DNS_CASES("allow@domain=public", 0, { "public", true }, { "public.", true },
		  { "x.public", false });
}

static void test_dns_one_way_defaults(void **state)
{
	struct net_policy p;
	char err[256];

	(void)state;
	mkpolicy(&p, NULL);
	assert_int_equal(policy_set_default(&p, NET_INGRESS, false, err, sizeof(err)), 0);
	assert_true(policy_dns_allowed(&p, "a.test"));
	assert_int_equal(policy_set_default(&p, NET_EGRESS, false, err, sizeof(err)), 0);
	assert_false(policy_dns_allowed(&p, "a.test"));
	assert_int_equal(policy_set_default(&p, NET_EGRESS, true, err, sizeof(err)), 0);
	assert_true(policy_dns_allowed(&p, "a.test"));
	policy_free(&p);
}

/* --- descriptions and JSON -------------------------------------------- */

static void test_describe(void **state)
{
	struct net_policy p;
	struct net_verdict v;
	struct ipaddr ip;
	char buf[256], err[256];

	(void)state;
	mkpolicy(&p, "allow@a.test,deny@10.0.0.0/8:tcp,allow:any@*.x.test:udp:53-54,"
		     "deny:ingress@[2001:db8::]/32:tcp:22,allow@domain=public");
	policy_rule_describe(&p, 1, buf, sizeof(buf));
	assert_string_equal(buf, "deny egress 10.0.0.0/8 tcp any (rule 2)");
	policy_rule_describe(&p, 0, buf, sizeof(buf));
	assert_string_equal(buf, "allow egress a.test any any (rule 1)");
	policy_rule_describe(&p, 2, buf, sizeof(buf));
	assert_string_equal(buf, "allow any *.x.test udp 53-54 (rule 3)");
	policy_rule_describe(&p, 3, buf, sizeof(buf));
	assert_string_equal(buf, "deny ingress [2001:db8::]/32 tcp 22 (rule 4)");
	policy_rule_describe(&p, 4, buf, sizeof(buf));
	assert_string_equal(buf, "allow egress domain=public any any (rule 5)");
	policy_rule_describe(&p, -1, buf, sizeof(buf));
	assert_string_equal(buf, "the default");
	policy_rule_describe(&p, 5, buf, sizeof(buf));
	assert_string_equal(buf, "the default");

	ip = ip_of("10.1.1.1");
	v = policy_check(&p, NET_EGRESS, NET_TCP, &ip, 80, NULL, 0);
	policy_verdict_describe(&p, NET_EGRESS, &ip, &v, buf, sizeof(buf));
	assert_string_equal(buf, "deny egress 10.0.0.0/8 tcp any (rule 2)");
	v = policy_check(&p, NET_EGRESS, NET_UDP, &ip, 80, NULL, 0);
	policy_verdict_describe(&p, NET_EGRESS, &ip, &v, buf, sizeof(buf));
	assert_string_equal(buf, "deny egress: private address, not public (built-in default: "
				 "public only)");
	ip = ip_of("169.254.169.254");
	v = policy_check(&p, NET_EGRESS, NET_UDP, &ip, 80, NULL, 0);
	policy_verdict_describe(&p, NET_EGRESS, &ip, &v, buf, sizeof(buf));
	assert_string_equal(buf, "deny egress: link_local+metadata address, not public (built-in "
				 "default: public only)");
	ip = ip_of("240.0.0.1");
	v = policy_check(&p, NET_EGRESS, NET_UDP, &ip, 80, NULL, 0);
	policy_verdict_describe(&p, NET_EGRESS, &ip, &v, buf, sizeof(buf));
	assert_string_equal(buf, "deny egress: unroutable address, not public (built-in default: "
				 "public only)");
	ip = ip_of("198.51.100.1");
	v = policy_check(&p, NET_EGRESS, NET_UDP, &ip, 80, NULL, 0);
	policy_verdict_describe(&p, NET_EGRESS, &ip, &v, buf, sizeof(buf));
	assert_string_equal(buf, "allow egress: public address (built-in default: public only)");
	v = policy_check(&p, NET_INGRESS, NET_TCP, &ip, 80, NULL, 0);
	policy_verdict_describe(&p, NET_INGRESS, &ip, &v, buf, sizeof(buf));
	assert_string_equal(buf, "allow ingress (default)");
	assert_int_equal(policy_set_default(&p, NET_BOTH, false, err, sizeof(err)), 0);
	v = policy_check(&p, NET_EGRESS, NET_UDP, &ip, 80, NULL, 0);
	policy_verdict_describe(&p, NET_EGRESS, &ip, &v, buf, sizeof(buf));
	assert_string_equal(buf, "deny egress (default)");
	/* A short buffer: cut and terminated. */
	policy_rule_describe(&p, 1, buf, 10);
	assert_string_equal(buf, "deny egre");
	policy_free(&p);
}

static void test_json_roundtrip(void **state)
{
	static const char *const rules =
		"allow@*.github.com:tcp:443,deny:any@metadata,allow:ingress@10.0.0.0/8,"
		"allow@domain=public,deny@[2001:db8::]/32:udp:53-54,allow@198.51.100.5:icmpv4";
	struct net_policy p, q;
	json_t *j, *k;
	char *s, err[256];

	(void)state;
	mkpolicy(&p, NULL);
	j = policy_to_json(&p);
	assert_non_null(j);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(
		s,
		"{\"egress_default\":\"public-only\",\"ingress_default\":\"allow\",\"rules\":[]}");
	free(s);
	json_decref(j);

	mkpolicy(&p, rules);
	assert_int_equal(policy_set_default(&p, NET_INGRESS, false, err, sizeof(err)), 0);
	j = policy_to_json(&p);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s,
			    "{\"egress_default\":\"public-only\",\"ingress_default\":\"deny\","
			    "\"rules\":[\"allow@*.github.com:tcp:443\",\"deny:any@metadata\","
			    "\"allow:ingress@10.0.0.0/8\",\"allow@domain=public\","
			    "\"deny@[2001:db8::]/32:udp:53-54\",\"allow@198.51.100.5:icmpv4\"]}");
	free(s);
	policy_init(&q);
	assert_int_equal(policy_from_json(j, &q, err, sizeof(err)), 0);
	assert_int_equal(q.n, p.n);
	for (unsigned i = 0; i < p.n; i++)
		assert_true(policy_rule_equal(&p.rules[i], &q.rules[i]));
	assert_int_equal(q.egress, NET_DEF_PUBLIC_ONLY);
	assert_true(q.ingress_deny);
	json_decref(j);
	policy_free(&q);

	/* The other defaults. */
	assert_int_equal(policy_set_default(&p, NET_EGRESS, false, err, sizeof(err)), 0);
	j = policy_to_json(&p);
	policy_init(&q);
	assert_int_equal(policy_from_json(j, &q, err, sizeof(err)), 0);
	assert_int_equal(q.egress, NET_DEF_DENY);
	k = policy_to_json(&q);
	assert_true(json_equal(j, k));
	json_decref(j);
	json_decref(k);
	policy_free(&q);
	policy_free(&p);
	mkpolicy(&p, NULL);
	assert_int_equal(policy_set_default(&p, NET_BOTH, true, err, sizeof(err)), 0);
	j = policy_to_json(&p);
	policy_init(&q);
	assert_int_equal(policy_from_json(j, &q, err, sizeof(err)), 0);
	assert_int_equal(q.egress, NET_DEF_ALLOW);
	assert_false(q.ingress_deny);
	json_decref(j);
	policy_free(&q);
	policy_free(&p);

	/* Missing keys mean the built-in policy. */
	j = json_object();
	policy_init(&q);
	assert_int_equal(policy_from_json(j, &q, err, sizeof(err)), 0);
	assert_int_equal(q.n, 0);
	assert_int_equal(q.egress, NET_DEF_PUBLIC_ONLY);
	assert_false(q.ingress_deny);
	json_decref(j);
	policy_free(&q);
}

static void test_json_errors(void **state)
{
	static const struct {
		const char *json, *err;
	} t[] = {
		{ "[]", "network policy: not a JSON object" },
		{ "{\"egress_default\":\"public\"}",
		  "network policy: egress_default must be \"public-only\", \"allow\" or \"deny\"" },
		{ "{\"egress_default\":1}",
		  "network policy: egress_default must be \"public-only\", \"allow\" or \"deny\"" },
		{ "{\"ingress_default\":\"public-only\"}",
		  "network policy: ingress_default must be \"allow\" or \"deny\"" },
		{ "{\"ingress_default\":null}",
		  "network policy: ingress_default must be \"allow\" or \"deny\"" },
		{ "{\"rules\":\"allow@a.test\"}",
		  "network policy: rules must be an array of strings" },
		{ "{\"rules\":[\"allow@a.test\",7]}", "network policy: rules[1] is not a string" },
		{ "{\"egress_default\":\"deny\",\"rules\":[\"allow@a.test\",\"deny@*.com\"]}",
		  "network policy: rules[1]: invalid --net-rule token \"deny@*.com\": a suffix "
		  "needs at least two labels" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		json_t *j = json_loads(t[i].json, 0, NULL);
		struct net_policy p;
		char err[512];

		assert_non_null(j);
		mkpolicy(&p, "allow@old.test");
		assert_int_equal(policy_from_json(j, &p, err, sizeof(err)), -EINVAL);
		if (strcmp(err, t[i].err) != 0)
			fail_msg("%s:\n got  %s\n want %s", t[i].json, err, t[i].err);
		/* A failed load leaves the built-in policy, not half of the file. */
		assert_int_equal(p.n, 0);
		assert_int_equal(p.egress, NET_DEF_PUBLIC_ONLY);
		assert_false(p.ingress_deny);
		json_decref(j);
		policy_free(&p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ip_parse_format),
		cmocka_unit_test(test_ip_constructors),
		cmocka_unit_test(test_ip_in_prefix),
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_ip_groups),
		cmocka_unit_test(test_ip_embedded4),
		cmocka_unit_test(test_pins_basic),
		cmocka_unit_test(test_pins_ttl_bounds),
		cmocka_unit_test(test_pins_refresh),
		cmocka_unit_test(test_pins_expire),
		cmocka_unit_test(test_pins_evict),
		cmocka_unit_test(test_pins_per_address),
		cmocka_unit_test(test_pins_bad_names),
		cmocka_unit_test(test_grammar_forms),
		cmocka_unit_test(test_grammar_fields),
		cmocka_unit_test(test_grammar_errors),
		cmocka_unit_test(test_grammar_bounds),
		cmocka_unit_test(test_grammar_all_or_nothing),
		cmocka_unit_test(test_default_builtin),
		cmocka_unit_test(test_default_set),
		cmocka_unit_test(test_first_match),
		cmocka_unit_test(test_direction),
		cmocka_unit_test(test_proto_ports),
		cmocka_unit_test(test_cidr_families),
		cmocka_unit_test(test_domain_through_pins),
		cmocka_unit_test(test_suffix_depth),
		cmocka_unit_test(test_dns),
		cmocka_unit_test(test_dns_one_way_defaults),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_json_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
