// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for --net-rule values, addresses and networks: parsing, normal forms, verdicts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/addr.h"
#include "net/pins.h"
#include "net/policy.h"

/* Longer inputs only repeat what shorter ones test: NET_MAX_RULES tokens of NET_MAX_TOKEN. */
#define INPUT_MAX ((size_t)NET_MAX_RULES * (NET_MAX_TOKEN + 1) + 64)

/* A domain as rules hold it: labels of 1-63 of [a-z0-9_-], at most 253, no trailing dot. */
static unsigned check_name(const char *n)
{
	size_t len = strlen(n), label = 0;
	unsigned labels = 1;

	CHECK(len >= 1 && len <= 253);
	for (const char *c = n; *c; c++) {
		if (*c == '.') {
			CHECK(label > 0);
			label = 0;
			labels++;
			continue;
		}
		CHECK((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '_');
		CHECK(++label <= 63);
	}
	CHECK(label > 0);
	return labels;
}

/* The invariants of every rule policy_add() accepts. */
static void check_rule(const struct net_rule *r)
{
	CHECK(r->dirs == NET_EGRESS || r->dirs == NET_INGRESS || r->dirs == NET_BOTH);
	CHECK(r->proto == NET_PROTO_ANY || r->proto == NET_TCP || r->proto == NET_UDP ||
	      r->proto == NET_ICMP4 || r->proto == NET_ICMP6);
	CHECK((r->port_lo == 0) == (r->port_hi == 0));
	CHECK(r->port_lo <= r->port_hi);
	if (r->proto == NET_ICMP4 || r->proto == NET_ICMP6)
		CHECK(r->port_lo == 0);
	switch (r->target) {
	case NET_T_CIDR: {
		struct ipaddr m = r->net;

		CHECK(r->prefix <= 128);
		/* Host bits are zero: clearing them changes nothing. */
		for (unsigned i = r->prefix; i < 128; i++)
			m.b[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
		CHECK(ip_equal(&m, &r->net));
		break;
	}
	case NET_T_GROUP:
		CHECK(r->groups == IPG_ALL || ip_group_name(r->groups));
		break;
	case NET_T_DOMAIN:
		check_name(r->name);
		break;
	case NET_T_SUFFIX:
		CHECK(check_name(r->name) >= 2);
		break;
	default:
		CHECK(0);
	}
}

/* A rule's normal form is a token that parses back to the same rule. */
static void check_rule_roundtrip(const struct net_rule *r)
{
	char tok[NET_MAX_TOKEN + 1], desc[NET_MAX_TOKEN + 64], err[512];
	struct net_policy q;
	int rc;

	policy_rule_format(r, tok, sizeof(tok));
	check_printable(tok);
	CHECK(strlen(tok) < sizeof(tok) - 1);
	CHECK(!strchr(tok, ',') && !strchr(tok, ' '));
	policy_init(&q);
	rc = policy_add(&q, tok, err, sizeof(err));
	if (rc == -ENOMEM)
		return;
	CHECK(rc == 0);
	CHECK(q.n == 1);
	CHECK(policy_rule_equal(r, &q.rules[0]));
	policy_rule_describe(&q, 0, desc, sizeof(desc));
	check_printable(desc);
	policy_free(&q);
}

/* The JSON form loads back into the same policy. */
static void check_json_roundtrip(const struct net_policy *p)
{
	json_t *j = policy_to_json(p);
	struct net_policy q;
	char err[512];

	if (!j)
		return;
	policy_init(&q);
	if (policy_from_json(j, &q, err, sizeof(err)) == 0) {
		CHECK(q.n == p->n && q.egress == p->egress && q.ingress_deny == p->ingress_deny);
		for (unsigned i = 0; i < p->n; i++)
			CHECK(policy_rule_equal(&p->rules[i], &q.rules[i]));
	} else {
		/* Only running out of memory may fail a load of what we wrote. */
		CHECK(strstr(err, "out of memory"));
	}
	policy_free(&q);
	json_decref(j);
}

/* Verdicts on a few addresses, with each rule's own name pinned: defined, and by a real rule. */
static void check_verdicts(const struct net_policy *p)
{
	static const char *const ips[] = { "198.51.100.10", "10.0.0.1", "169.254.169.254",
					   "127.0.0.1",	    "::1",	"2001:db8::1",
					   "fd00:ec2::254", "0.0.0.0",	"64:ff9b::10.0.0.1" };
	static const unsigned protos[] = { NET_TCP, NET_UDP, NET_ICMP4, NET_ICMP6 };
	struct pins pins;
	struct ipaddr a;

	pins_init(&pins, 1);
	CHECK(ip_parse("198.51.100.10", &a) == 0);
	for (unsigned i = 0; i < p->n && i < 16; i++)
		if (p->rules[i].target == NET_T_DOMAIN || p->rules[i].target == NET_T_SUFFIX) {
			int rc = pins_add(&pins, p->rules[i].name, &a, 0, 0);

			CHECK(rc == 0 || rc == -ENOMEM);
			CHECK(policy_dns_allowed(p, p->rules[i].name) || !p->rules[i].allow ||
			      !(p->rules[i].dirs & NET_EGRESS) || i > 0);
		}
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		CHECK(ip_parse(ips[i], &a) == 0);
		for (size_t k = 0; k < sizeof(protos) / sizeof(protos[0]); k++) {
			for (unsigned dir = NET_EGRESS; dir <= NET_INGRESS; dir++) {
				struct net_verdict v =
					policy_check(p, dir, protos[k], &a, 443, &pins, 1);
				char desc[NET_MAX_TOKEN + 128];

				CHECK(v.rule >= -1 && v.rule < (int)p->n);
				if (v.rule >= 0)
					CHECK(v.allow == p->rules[v.rule].allow);
				policy_verdict_describe(p, dir, &a, &v, desc, sizeof(desc));
				check_printable(desc);
			}
		}
	}
	pins_free(&pins);
}

static void fuzz_policy(const char *s)
{
	struct net_policy p;
	char err[512];
	int rc;

	policy_init(&p);
	memset(err, 0x55, sizeof(err));
	rc = policy_add(&p, s, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)));
	if (rc < 0) {
		CHECK(rc == -EINVAL || rc == -ENOMEM);
		CHECK(p.n == 0);
		/* One printable line that says what it is about. */
		check_printable(err);
		if (rc == -EINVAL)
			CHECK(!strncmp(err, "invalid --net-rule token \"", 26) ||
			      !strncmp(err, "invalid --net-rule value \"", 26) ||
			      !strncmp(err, "empty --net-rule value", 22));
		policy_free(&p);
		return;
	}
	CHECK(rc == 0 && err[0] == '\0');
	CHECK(p.n >= 1 && p.n <= NET_MAX_RULES);
	for (unsigned i = 0; i < p.n; i++) {
		check_rule(&p.rules[i]);
		check_rule_roundtrip(&p.rules[i]);
	}
	check_json_roundtrip(&p);
	check_verdicts(&p);
	(void)policy_dns_allowed(&p, s);
	policy_free(&p);
}

static void fuzz_addr(const char *s)
{
	char buf[CIDR_STRLEN], why[256];
	struct ipaddr a, b;
	unsigned prefix, again;

	if (ip_parse(s, &a) == 0) {
		ip_format(&a, buf, sizeof(buf));
		check_printable(buf);
		CHECK(ip_parse(buf, &b) == 0 && ip_equal(&a, &b));
		CHECK(ip_groups(&a) <= IPG_ALL);
		CHECK(!(ip_groups(&a) & IPG_PUBLIC) || ip_groups(&a) == IPG_PUBLIC);
	}
	memset(why, 0x55, sizeof(why));
	if (cidr_parse_why(s, &a, &prefix, why, sizeof(why)) == 0) {
		CHECK(prefix <= 128);
		CHECK(cidr_parse(s, &b, &again) == 0 && ip_equal(&a, &b) && again == prefix);
		cidr_format(&a, prefix, buf, sizeof(buf));
		check_printable(buf);
		CHECK(cidr_parse(buf, &b, &again) == 0 && ip_equal(&a, &b) && again == prefix);
	} else {
		CHECK(memchr(why, '\0', sizeof(why)) && why[0]);
		check_printable(why);
		CHECK(cidr_parse(s, &b, &again) == -EINVAL);
	}
}

static void fuzz_pins(const char *s)
{
	struct pins p;
	struct ipaddr a = ip_from4(0xc6336401);
	int rc;

	pins_init(&p, 7);
	rc = pins_add(&p, s, &a, 60, 0);
	CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	CHECK(pins_count(&p) == (rc == 0));
	pins_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > INPUT_MAX)
		size = INPUT_MAX;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_policy(s);
	fuzz_addr(s);
	fuzz_pins(s);
	free(s);
	return 0;
}
