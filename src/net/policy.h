/* SPDX-License-Identifier: Apache-2.0 */
/* The network policy: --net-rule parsing, defaults, and the verdict on each connection and name. */
#ifndef MSB_NET_POLICY_H
#define MSB_NET_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"
#include "net/pins.h"

/* Directions, a bit set in rules; policy_check() takes exactly one. */
#define NET_EGRESS  1u
#define NET_INGRESS 2u
#define NET_BOTH    (NET_EGRESS | NET_INGRESS)

/* Protocols: the IP protocol numbers, so a packet's own byte can be passed. 0 is "any". */
#define NET_PROTO_ANY 0u
#define NET_ICMP4     1u
#define NET_TCP	      6u
#define NET_UDP	      17u
#define NET_ICMP6     58u

/* Bounds: rules per policy, bytes per token. */
#define NET_MAX_RULES 256
#define NET_MAX_TOKEN 512

/* Rule targets. */
enum net_target {
	NET_T_CIDR,   /* @net/@prefix */
	NET_T_GROUP,  /* @groups: one IPG_* bit, or IPG_ALL for "any" */
	NET_T_DOMAIN, /* @name exactly */
	NET_T_SUFFIX, /* @name and every name below it */
};

/*
 * struct net_rule - one parsed token.
 * @allow:   the action
 * @dirs:    NET_EGRESS, NET_INGRESS or NET_BOTH
 * @target:  what @net/@prefix, @groups or @name mean
 * @net:     the network (NET_T_CIDR), host bits zero
 * @prefix:  its length in IPv6 bits (96 + N for IPv4)
 * @groups:  NET_T_GROUP: one IPG_* bit, or IPG_ALL for "any"
 * @proto:   NET_PROTO_ANY, NET_TCP, NET_UDP, NET_ICMP4 or NET_ICMP6
 * @port_lo: first port, 0 when the rule has none ("any")
 * @port_hi: last port, 0 when the rule has none
 * @name:    NET_T_DOMAIN/NET_T_SUFFIX: lowercase, no trailing dot
 */
struct net_rule {
	bool allow;
	unsigned dirs;
	enum net_target target;
	struct ipaddr net;
	unsigned prefix;
	unsigned groups;
	unsigned proto;
	uint16_t port_lo;
	uint16_t port_hi;
	char name[254];
};

/* Default actions. NET_DEF_PUBLIC_ONLY: allow public addresses, deny the rest (egress only). */
enum net_default {
	NET_DEF_PUBLIC_ONLY = 0,
	NET_DEF_ALLOW,
	NET_DEF_DENY,
};

/*
 * struct net_policy - rules in argv order and the two defaults.
 * Zero-initialised (or policy_init()), it is the built-in policy: egress to
 * public addresses only, ingress allowed. Owns @rules (policy_free()).
 */
struct net_policy {
	struct net_rule *rules;
	unsigned n;
	unsigned cap;
	enum net_default egress; /* NET_DEF_PUBLIC_ONLY, NET_DEF_ALLOW or NET_DEF_DENY */
	bool ingress_deny;	 /* ingress default: false = allow */
	unsigned set_by;	 /* which policy_set_default() forms were used (exclusion) */
};

/*
 * struct net_verdict - the outcome of policy_check().
 * @allow: let it through
 * @rule:  index of the deciding rule in @rules (argv order, 0 = first), or -1
 *         when the default for the direction decided
 */
struct net_verdict {
	bool allow;
	int rule;
};

/* policy_init() - the built-in policy, no rules. */
void policy_init(struct net_policy *p);

/* policy_free() - release the rules; @p is the built-in policy again. */
void policy_free(struct net_policy *p);

/*
 * policy_add() - parse one --net-rule value (comma-separated tokens,
 * ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]]) and append its rules in order.
 * All tokens or none are added. Spaces around a token are ignored.
 * Return: 0, -EINVAL with one line in @err naming the bad token
 * ("invalid --net-rule token \"deny@*.com\": a suffix needs at least two
 * labels"), or -ENOMEM.
 */
int policy_add(struct net_policy *p, const char *arg, char *err, size_t errlen);

/*
 * policy_set_default() - the default action for @dirs: NET_BOTH for
 * --net-default / --no-net, NET_EGRESS or NET_INGRESS for
 * --net-default-egress / --net-default-ingress. Mixing the both-ways form
 * with a one-way form on the same policy is refused, as the spec makes the
 * flags mutually exclusive; repeating a form sets it again.
 * Return: 0, or -EINVAL with one line in @err.
 */
int policy_set_default(struct net_policy *p, unsigned dirs, bool allow, char *err, size_t errlen);

/*
 * policy_check() - may a connection or datagram pass?
 * @dir:   NET_EGRESS (the guest reaches out) or NET_INGRESS (the host side
 *         connects to a published port)
 * @proto: NET_TCP, NET_UDP, NET_ICMP4 or NET_ICMP6
 * @ip:    the remote party: the destination for egress, the source for ingress
 * @port:  the destination port: the remote service for egress, the guest's
 *         port for ingress; ignored for ICMP
 * @pins:  this sandbox's pin set, through which domain rules match; NULL: none do
 * @now_ms: the pins' clock
 * First matching rule wins; none matching, the default for @dir decides.
 */
struct net_verdict policy_check(const struct net_policy *p, unsigned dir, unsigned proto,
				const struct ipaddr *ip, uint16_t port, const struct pins *pins,
				uint64_t now_ms);

/*
 * policy_dns_allowed() - may the guest resolve @name (any case, trailing dot
 * or not)? False means the stack answers NXDOMAIN. See "DNS" in policy.c.
 */
bool policy_dns_allowed(const struct net_policy *p, const char *name);

/*
 * policy_rule_format() - @r as a token policy_add() reads back into the same
 * rule, defaults left out: "allow@*.github.com:tcp:443", "deny:any@metadata",
 * "allow@domain=public", "deny@[2001:db8::]/32:udp:53-54".
 */
void policy_rule_format(const struct net_rule *r, char *buf, size_t len);

/* policy_rule_equal() - true when @a and @b match exactly the same traffic the same way. */
bool policy_rule_equal(const struct net_rule *a, const struct net_rule *b);

/*
 * policy_rule_describe() - rule @rule (an index, as in struct net_verdict)
 * in one line for runtime.log: "deny egress 10.0.0.0/8 tcp any (rule 2)",
 * rules counted from 1 as users count their tokens; the direction is the
 * rule's (egress, ingress or any). An index that is no rule (-1) gives
 * "the default".
 */
void policy_rule_describe(const struct net_policy *p, int rule, char *buf, size_t len);

/*
 * policy_verdict_describe() - one line for runtime.log on what decided @v
 * for traffic in @dir to or from @ip: policy_rule_describe() for a rule,
 * else "deny egress (default)", "deny egress: private address, not public
 * (built-in default: public only)".
 */
void policy_verdict_describe(const struct net_policy *p, unsigned dir, const struct ipaddr *ip,
			     const struct net_verdict *v, char *buf, size_t len);

/*
 * policy_to_json() - {"egress_default": "public-only"|"allow"|"deny",
 * "ingress_default": "allow"|"deny", "rules": ["allow@*.github.com:tcp:443", ...]},
 * for config.json and msb inspect. Return: a new reference, or NULL (no memory).
 */
json_t *policy_to_json(const struct net_policy *p);

/*
 * policy_from_json() - the policy policy_to_json() wrote, into @p (which
 * policy_init() made). Return: 0, -EINVAL with one line in @err, or -ENOMEM;
 * on failure @p is left as the built-in policy.
 */
int policy_from_json(const json_t *j, struct net_policy *p, char *err, size_t errlen);

#endif
