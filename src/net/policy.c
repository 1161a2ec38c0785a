// SPDX-License-Identifier: Apache-2.0
/*
 * The network policy of a sandbox: --net-rule tokens, the defaults, and the
 * verdicts the userspace stack asks for on every new flow and every name.
 *
 * DOC: Theory of Operation
 * A policy is a list of rules in argv order plus one default per direction.
 * Each --net-rule value is a comma-separated list of tokens
 * ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]]; a value is added whole or not at
 * all, and an error names the token it stopped at. Keywords are read in any
 * case, domain names are folded to lowercase. The stack decides once per
 * flow, before any host socket exists (policy_check()):
 *
 * - The first rule that matches decides. A rule matches when its direction
 *   covers the flow's, its protocol is "any" or the flow's, its ports (if it
 *   has any: then only TCP and UDP can match) contain the flow's destination
 *   port, and its target contains the remote address.
 * - Targets: a CIDR of one family matches only that family (IPv4 rules also
 *   match NAT64 addresses, 64:ff9b::a.b.c.d, which reach the same IPv4 host;
 *   "[::]/0" is all of IPv6, not IPv4 as well). A group matches the
 *   addresses ip_groups() puts in it; "any" matches every address, grouped
 *   or not. A domain or suffix rule matches an address only through the pin
 *   set: when this sandbox's own DNS answered with that address for a name
 *   the rule names, and the pin has not expired. Before the guest resolves
 *   good.test, no address matches allow@good.test, whatever it is.
 * - No rule matching, the default decides. Ingress (the host side connecting
 *   to a published port): allowed unless set to deny. Egress: allow, deny,
 *   or the built-in public-only default, which allows an address exactly
 *   when ip_groups() calls it public (private, loopback, link-local,
 *   multicast, metadata and unroutable addresses are denied). DNS to the
 *   sandbox's gateway is the stack's own business and never asked about.
 *   --no-net is --net-default deny: both directions denied.
 *
 * DOC: Reading a target
 * TARGET is read as the first of these that fits: "domain=NAME" (an exact
 * name, even one spelt like a group or an address), "suffix=NAME" or
 * "*.NAME" (NAME and every name below it, at any depth; two labels at least,
 * so *.com and suffix=local are refused), "[IPv6]" or "[IPv6]/N" (brackets
 * keep the address's colons out of the field split), anything with a "/" or
 * made only of digits and dots (IPv4 or IPv4/N, so that "1.2.3" is an error,
 * not a name), a group keyword, and last a domain name. A bare one-label
 * name is refused as a likely misspelt group ("publc"); domain=NAME takes
 * one. Networks with host bits set are refused (cidr_parse()). Names are
 * labels of [a-z0-9_-], 63 bytes each, 253 in all, one trailing dot
 * dropped. Ports are 1-65535, N or LO-HI; ICMP rules take none. A policy
 * holds at most NET_MAX_RULES rules and a token is at most NET_MAX_TOKEN
 * bytes, so neither the CLI nor a config file can make it grow without end.
 *
 * DOC: DNS
 * policy_dns_allowed() says whether the gateway may resolve a name for the
 * guest; when it may not, the stack answers NXDOMAIN, so a denied resolver
 * path cannot carry data out. Only rules whose target is a domain or suffix
 * and whose direction covers egress speak for names, in argv order:
 *
 * - the first such rule that matches the name and allows (whatever its
 *   protocol and ports: allow@good.test:tcp:443 needs good.test resolved)
 *   lets the name resolve;
 * - the first such rule that matches the name and denies all traffic
 *   (protocol and ports "any") refuses it; a deny limited to a protocol or
 *   port does not (deny@bad.test:tcp:25 still lets bad.test's web site be
 *   reached); it is enforced per flow and skipped here;
 * - no rule speaking, the name resolves unless the egress default is deny;
 *   under a deny default it still resolves when an allow rule opens the
 *   public group (allow@public, allow@any, whatever protocol and ports):
 *   the guest can reach any public address then, so answering names opens
 *   no channel that is not open already.
 *
 * IP and CIDR rules never make names resolve: the answer's addresses are
 * judged when the guest connects to them. So "--net-default deny
 * --net-rule allow@good.test" resolves good.test only, "--no-net
 * --net-rule allow@198.51.100.7" resolves nothing, and "--no-net
 * --net-rule allow@public" resolves names as the built-in default does.
 */
#include "net/policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GRAMMAR "ACTION[:DIRECTION]@TARGET[:PROTO[:PORTS]]"
/* Bytes of a token quoted in an error message before it is cut with "...". */
#define ERR_TOKEN_MAX 80
/* Label and name limits of RFC 1035. */
#define LABEL_MAX    63
#define NAME_MAX_LEN 253

/* policy_set_default() forms seen, for the mutual exclusion of the flags. */
#define SET_BOTH 1u
#define SET_ONE	 2u

_Static_assert(sizeof(((struct net_rule *)0)->name) == NAME_MAX_LEN + 1, "name room");

static const struct {
	const char *name;
	unsigned groups;
} group_names[] = {
	{ "public", IPG_PUBLIC },
	{ "private", IPG_PRIVATE },
	{ "multicast", IPG_MULTICAST },
	{ "loopback", IPG_LOOPBACK },
	{ "link_local", IPG_LINK_LOCAL },
	{ "metadata", IPG_METADATA },
	{ "any", IPG_ALL },
};

static const struct {
	const char *name;
	unsigned proto;
} proto_names[] = {
	{ "any", NET_PROTO_ANY }, { "tcp", NET_TCP },	   { "udp", NET_UDP },
	{ "icmpv4", NET_ICMP4 },  { "icmpv6", NET_ICMP6 },
};

/*
 * printable_line() - make @s one printable ASCII line in place: every byte
 * outside 0x20-0x7e becomes '?', so a token with a newline or an escape
 * sequence cannot break or steer the terminal that shows the error.
 */
static void printable_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* errf() - one line in @err, if there is room for any. */
__attribute__((format(printf, 3, 4))) static void errf(char *err, size_t errlen, const char *fmt,
						       ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	printable_line(err);
}

/* quote_cut() - the first @len bytes of @s for an error message, cut with "..." when long. */
static void quote_cut(const char *s, size_t len, char out[ERR_TOKEN_MAX + 4])
{
	if (len > ERR_TOKEN_MAX) {
		memcpy(out, s, ERR_TOKEN_MAX);
		memcpy(out + ERR_TOKEN_MAX, "...", 4);
	} else {
		memcpy(out, s, len);
		out[len] = '\0';
	}
}

/* token_err() - "invalid --net-rule token "TOKEN": REASON" in @err. */
static void token_err(char *err, size_t errlen, const char *tok, size_t toklen, const char *why)
{
	char q[ERR_TOKEN_MAX + 4];

	quote_cut(tok, toklen, q);
	errf(err, errlen, "invalid --net-rule token \"%s\": %s", q, why);
}

/* why() - a reason into @w (@wlen bytes). */
__attribute__((format(printf, 3, 4))) static void why(char *w, size_t wlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w, wlen, fmt, ap);
	va_end(ap);
}

/*
 * domain_norm() - a domain name as rules hold it, in @out (NAME_MAX_LEN + 1
 * bytes): labels of 1 to 63 of [a-z0-9_-] (any case in, lowercase out), at
 * most 253 bytes, one trailing dot dropped. *@labels gets the label count.
 * Return: 0, or -EINVAL with a reason in @w.
 */
static int domain_norm(const char *s, char *out, unsigned *labels, char *w, size_t wlen)
{
	size_t n = strlen(s), label = 0;

	if (n && s[n - 1] == '.')
		n--;
	if (!n) {
		why(w, wlen, "empty domain name");
		return -EINVAL;
	}
	if (n > NAME_MAX_LEN) {
		why(w, wlen, "domain name longer than %d characters", NAME_MAX_LEN);
		return -EINVAL;
	}
	*labels = 1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (!label) {
				why(w, wlen, "empty label in domain name \"%.*s\"", (int)n, s);
				return -EINVAL;
			}
			label = 0;
			++*labels;
			out[i] = '.';
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + ('a' - 'A'));
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
			if (c == '*')
				why(w, wlen, "\"*\" is only allowed as a leading \"*.\"");
			else
				why(w, wlen, "invalid character '%c' in domain name \"%.*s\"", c,
				    (int)n, s);
			return -EINVAL;
		}
		if (++label > LABEL_MAX) {
			why(w, wlen, "label longer than %d characters in domain name", LABEL_MAX);
			return -EINVAL;
		}
		out[i] = c;
	}
	if (!label) {
		why(w, wlen, "empty label in domain name \"%.*s\"", (int)n, s);
		return -EINVAL;
	}
	out[n] = '\0';
	return 0;
}

/* target_suffix() - "*.NAME" or "suffix=NAME" after the marker. Return: 0 or -EINVAL. */
static int target_suffix(const char *name, struct net_rule *r, char *w, size_t wlen)
{
	unsigned labels;

	if (domain_norm(name, r->name, &labels, w, wlen) < 0)
		return -EINVAL;
	if (labels < 2) {
		why(w, wlen, "a suffix needs at least two labels");
		return -EINVAL;
	}
	r->target = NET_T_SUFFIX;
	return 0;
}

/* all_digits_dots() - true when @s has only digits and dots: an IPv4 address or a typo of one. */
static bool all_digits_dots(const char *s)
{
	return strspn(s, "0123456789.") == strlen(s);
}

/*
 * parse_target() - the TARGET field @t into @r.
 * Return: 0, or -EINVAL with a reason in @w.
 */
static int parse_target(const char *t, struct net_rule *r, char *w, size_t wlen)
{
	unsigned labels;

	if (!*t) {
		why(w, wlen, "missing target after \"@\"");
		return -EINVAL;
	}
	if (!strncasecmp(t, "domain=", 7)) {
		r->target = NET_T_DOMAIN;
		return domain_norm(t + 7, r->name, &labels, w, wlen);
	}
	if (!strncasecmp(t, "suffix=", 7))
		return target_suffix(t + 7, r, w, wlen);
	if (t[0] == '*' && t[1] == '.')
		return target_suffix(t + 2, r, w, wlen);
	if (t[0] == '[' || strchr(t, '/') || all_digits_dots(t)) {
		r->target = NET_T_CIDR;
		return cidr_parse_why(t, &r->net, &r->prefix, w, wlen);
	}
	for (size_t i = 0; i < sizeof(group_names) / sizeof(group_names[0]); i++) {
		if (strcasecmp(t, group_names[i].name) != 0)
			continue;
		r->target = NET_T_GROUP;
		r->groups = group_names[i].groups;
		return 0;
	}
	if (domain_norm(t, r->name, &labels, w, wlen) < 0)
		return -EINVAL;
	if (labels < 2) {
		/* Most likely a misspelt group: a one-label name must say it is one. */
		why(w, wlen,
		    "unknown group \"%s\" (groups: public, private, multicast, loopback, "
		    "link_local, metadata, any; write domain=%s for a one-label name)",
		    t, r->name);
		return -EINVAL;
	}
	r->target = NET_T_DOMAIN;
	return 0;
}

/*
 * parse_port() - a port number of 1 to 5 digits, 1-65535, at @s up to @end.
 * Return: 0, or -EINVAL with a reason in @w.
 */
static int parse_port(const char *s, const char *end, uint16_t *out, char *w, size_t wlen)
{
	unsigned long v = 0;

	if (s == end || end - s > 5) {
		why(w, wlen, "invalid port \"%.*s\" (use N, LO-HI or any; ports are 1-65535)",
		    (int)(end - s > 16 ? 16 : end - s), s);
		return -EINVAL;
	}
	for (const char *c = s; c < end; c++) {
		if (*c < '0' || *c > '9') {
			why(w, wlen,
			    "invalid port \"%.*s\" (use N, LO-HI or any; ports are 1-65535)",
			    (int)(end - s), s);
			return -EINVAL;
		}
		v = v * 10 + (unsigned long)(*c - '0');
	}
	if (v < 1 || v > 65535) {
		why(w, wlen, "port %lu out of range (1-65535)", v);
		return -EINVAL;
	}
	*out = (uint16_t)v;
	return 0;
}

/* parse_ports() - "any", "N" or "LO-HI". Return: 0, or -EINVAL with a reason in @w. */
static int parse_ports(const char *s, struct net_rule *r, char *w, size_t wlen)
{
	const char *dash = strchr(s, '-'), *end = s + strlen(s);

	if (!*s) {
		why(w, wlen, "empty ports (use N, LO-HI or any)");
		return -EINVAL;
	}
	if (!strcasecmp(s, "any")) {
		r->port_lo = r->port_hi = 0;
		return 0;
	}
	if (parse_port(s, dash ? dash : end, &r->port_lo, w, wlen) < 0)
		return -EINVAL;
	r->port_hi = r->port_lo;
	if (!dash)
		return 0;
	if (parse_port(dash + 1, end, &r->port_hi, w, wlen) < 0)
		return -EINVAL;
	if (r->port_hi < r->port_lo) {
		why(w, wlen, "port range %u-%u is reversed (write %u-%u)", r->port_lo, r->port_hi,
		    r->port_hi, r->port_lo);
		return -EINVAL;
	}
	return 0;
}

/* parse_proto() - tcp, udp, icmpv4, icmpv6 or any. Return: 0, or -EINVAL with a reason. */
static int parse_proto(const char *s, struct net_rule *r, char *w, size_t wlen)
{
	for (size_t i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++) {
		if (!strcasecmp(s, proto_names[i].name)) {
			r->proto = proto_names[i].proto;
			return 0;
		}
	}
	if (!*s)
		why(w, wlen, "empty protocol (use tcp, udp, icmpv4, icmpv6 or any)");
	else
		why(w, wlen, "unknown protocol \"%s\" (use tcp, udp, icmpv4, icmpv6 or any)", s);
	return -EINVAL;
}

/*
 * parse_head() - ACTION[:DIRECTION], the part before "@", into @r.
 * Return: 0, or -EINVAL with a reason in @w.
 */
static int parse_head(char *head, struct net_rule *r, char *w, size_t wlen)
{
	char *dir = strchr(head, ':');

	if (dir)
		*dir++ = '\0';
	if (!strcasecmp(head, "allow")) {
		r->allow = true;
	} else if (!strcasecmp(head, "deny")) {
		r->allow = false;
	} else {
		if (*head)
			why(w, wlen, "unknown action \"%s\" (use allow or deny)", head);
		else
			why(w, wlen, "missing action before \"@\" (use allow or deny)");
		return -EINVAL;
	}
	r->dirs = NET_EGRESS;
	if (!dir)
		return 0;
	if (strchr(dir, ':')) {
		why(w, wlen, "unexpected \"%s\" after the direction (expected %s)",
		    strchr(dir, ':'), GRAMMAR);
		return -EINVAL;
	}
	if (!*dir) {
		why(w, wlen, "empty direction (use egress, ingress or any)");
		return -EINVAL;
	}
	if (!strcasecmp(dir, "egress")) {
		r->dirs = NET_EGRESS;
	} else if (!strcasecmp(dir, "ingress")) {
		r->dirs = NET_INGRESS;
	} else if (!strcasecmp(dir, "any")) {
		r->dirs = NET_BOTH;
	} else {
		why(w, wlen, "unknown direction \"%s\" (use egress, ingress or any)", dir);
		return -EINVAL;
	}
	return 0;
}

/*
 * unbracketed_v6() - true when @rest (everything after "@") is an IPv6
 * address or network written without brackets, which the colons of
 * PROTO:PORTS would otherwise cut into pieces.
 */
static bool unbracketed_v6(const char *rest)
{
	char text[NET_MAX_TOKEN + 1];
	size_t n = strcspn(rest, "/");
	struct ipaddr a;

	if (rest[0] == '[')
		return false;
	/* "::" after hex digits only: "::1", "2001:db8::/32", not "x.test::443". */
	if (strstr(rest, "::") && strspn(rest, "0123456789abcdefABCDEF") == strcspn(rest, ":"))
		return true;
	if (n >= sizeof(text))
		return false;
	memcpy(text, rest, n);
	text[n] = '\0';
	return ip_parse(text, &a) == 0 && !ip_is4(&a);
}

/*
 * parse_token() - one token (NUL-terminated, at most NET_MAX_TOKEN bytes,
 * already trimmed) into @r.
 * Return: 0, or -EINVAL with a reason in @w.
 */
static int parse_token(char *t, struct net_rule *r, char *w, size_t wlen)
{
	char *at = strchr(t, '@'), *rest, *fields, *ports;

	memset(r, 0, sizeof(*r));
	if (!at) {
		why(w, wlen, "expected %s", GRAMMAR);
		return -EINVAL;
	}
	*at = '\0';
	rest = at + 1;
	if (parse_head(t, r, w, wlen) < 0)
		return -EINVAL;
	if (unbracketed_v6(rest)) {
		why(w, wlen, "IPv6 addresses must be in brackets, as in [2001:db8::1]:tcp:443");
		return -EINVAL;
	}
	/* Brackets protect an IPv6 address's colons from the field split. */
	fields = rest[0] == '[' && strchr(rest, ']') ? strchr(strchr(rest, ']'), ':')
						     : strchr(rest, ':');
	if (fields)
		*fields++ = '\0';
	if (parse_target(rest, r, w, wlen) < 0)
		return -EINVAL;
	if (!fields)
		return 0;
	ports = strchr(fields, ':');

	if (ports)
		*ports++ = '\0';
	if (parse_proto(fields, r, w, wlen) < 0)
		return -EINVAL;
	if (!ports)
		return 0;
	if (strchr(ports, ':')) {
		why(w, wlen, "unexpected \"%s\" after the ports (expected %s)", strchr(ports, ':'),
		    GRAMMAR);
		return -EINVAL;
	}
	if (parse_ports(ports, r, w, wlen) < 0)
		return -EINVAL;
	if (r->port_lo && (r->proto == NET_ICMP4 || r->proto == NET_ICMP6)) {
		why(w, wlen, "ICMP has no ports (leave them out, or use any)");
		return -EINVAL;
	}
	return 0;
}

/* rules_reserve() - room for one more rule. Return: 0 or -ENOMEM. */
static int rules_reserve(struct net_policy *p)
{
	struct net_rule *more;
	unsigned cap;

	if (p->n < p->cap)
		return 0;
	cap = p->cap ? p->cap * 2 : 8;
	if (cap > NET_MAX_RULES)
		cap = NET_MAX_RULES;
	more = realloc(p->rules, cap * sizeof(*more));
	if (!more)
		return -ENOMEM;
	p->rules = more;
	p->cap = cap;
	return 0;
}

/* is_blank() - a space or a tab, which may surround a token. */
static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

void policy_init(struct net_policy *p)
{
	memset(p, 0, sizeof(*p));
}

void policy_free(struct net_policy *p)
{
	free(p->rules);
	policy_init(p);
}

int policy_add(struct net_policy *p, const char *arg, char *err, size_t errlen)
{
	unsigned n0 = p->n;
	const char *s = arg;

	if (errlen)
		err[0] = '\0';
	if (!arg || !arg[strspn(arg, " \t")]) {
		errf(err, errlen, "empty --net-rule value (expected %s)", GRAMMAR);
		return -EINVAL;
	}
	for (;;) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		char tok[NET_MAX_TOKEN + 1], w[256];

		while (len && is_blank(*s)) {
			s++;
			len--;
		}
		while (len && is_blank(s[len - 1]))
			len--;
		if (!len) {
			char q[ERR_TOKEN_MAX + 4];

			quote_cut(arg, strlen(arg), q);
			errf(err, errlen, "invalid --net-rule value \"%s\": empty token", q);
			goto fail;
		}
		if (len > NET_MAX_TOKEN) {
			why(w, sizeof(w), "longer than %d bytes", NET_MAX_TOKEN);
			token_err(err, errlen, s, len, w);
			goto fail;
		}
		if (p->n >= NET_MAX_RULES) {
			why(w, sizeof(w), "too many rules (at most %d)", NET_MAX_RULES);
			token_err(err, errlen, s, len, w);
			goto fail;
		}
		if (rules_reserve(p) < 0) {
			p->n = n0;
			errf(err, errlen, "--net-rule: out of memory");
			return -ENOMEM;
		}
		memcpy(tok, s, len);
		tok[len] = '\0';
		if (parse_token(tok, &p->rules[p->n], w, sizeof(w)) < 0) {
			token_err(err, errlen, s, len, w);
			goto fail;
		}
		p->n++;
		if (!end)
			return 0;
		s = end + 1;
	}
fail:
	p->n = n0;
	return -EINVAL;
}

int policy_set_default(struct net_policy *p, unsigned dirs, bool allow, char *err, size_t errlen)
{
	unsigned form = dirs == NET_BOTH ? SET_BOTH : SET_ONE;

	if (errlen)
		err[0] = '\0';
	if (dirs != NET_BOTH && dirs != NET_EGRESS && dirs != NET_INGRESS) {
		errf(err, errlen, "network default: invalid direction set %#x", dirs);
		return -EINVAL;
	}
	if (p->set_by & ~form) {
		errf(err, errlen,
		     "--net-default (or --no-net) cannot be combined with --net-default-egress or "
		     "--net-default-ingress");
		return -EINVAL;
	}
	p->set_by |= form;
	if (dirs & NET_EGRESS)
		p->egress = allow ? NET_DEF_ALLOW : NET_DEF_DENY;
	if (dirs & NET_INGRESS)
		p->ingress_deny = !allow;
	return 0;
}

/* name_matches() - does the rule's domain or suffix cover @name (normalised, @n bytes)? */
static bool name_matches(const struct net_rule *r, const char *name, size_t n)
{
	size_t rn = strlen(r->name);

	if (n == rn && !memcmp(name, r->name, n))
		return true;
	if (r->target != NET_T_SUFFIX || n <= rn)
		return false;
	return name[n - rn - 1] == '.' && !memcmp(name + n - rn, r->name, rn);
}

/* pin_matches() - pins_lookup() callback: @ctx is the rule. */
static bool pin_matches(const char *name, void *ctx)
{
	return name_matches(ctx, name, strlen(name));
}

/* cidr_matches() - does the rule's network, in its own family, contain @ip? */
static bool cidr_matches(const struct net_rule *r, const struct ipaddr *ip)
{
	struct ipaddr v4;

	if (ip_is4(&r->net) && r->prefix >= 96)
		return ip_embedded4(ip, &v4) && ip_in_prefix(&v4, &r->net, r->prefix);
	return !ip_is4(ip) && ip_in_prefix(ip, &r->net, r->prefix);
}

/* rule_matches() - does @r cover this flow? See the Theory of Operation. */
static bool rule_matches(const struct net_rule *r, unsigned dir, unsigned proto,
			 const struct ipaddr *ip, uint16_t port, const struct pins *pins,
			 uint64_t now_ms)
{
	if (!(r->dirs & dir))
		return false;
	if (r->proto != NET_PROTO_ANY && r->proto != proto)
		return false;
	if (r->port_lo) {
		if (proto != NET_TCP && proto != NET_UDP)
			return false;
		if (port < r->port_lo || port > r->port_hi)
			return false;
	}
	/* A metadata service is allowed only by a rule that names it: its group, "any",
	 * or its address; never by link_local or private around it, nor by a name whose
	 * zone answered with it. Denials match it as ever. */
	if (r->allow && r->target != NET_T_CIDR && r->groups != IPG_ALL &&
	    !(r->groups & IPG_METADATA) && (ip_groups(ip) & IPG_METADATA))
		return false;
	switch (r->target) {
	case NET_T_CIDR:
		return cidr_matches(r, ip);
	case NET_T_GROUP:
		return r->groups == IPG_ALL || (ip_groups(ip) & r->groups);
	case NET_T_DOMAIN:
	case NET_T_SUFFIX:
		return pins && pins_lookup(pins, ip, now_ms, pin_matches, (void *)r);
	default:
		return false;
	}
}

/* default_allows() - the default's verdict for @dir and @ip. */
static bool default_allows(const struct net_policy *p, unsigned dir, const struct ipaddr *ip)
{
	if (dir != NET_EGRESS)
		return !p->ingress_deny;
	switch (p->egress) {
	case NET_DEF_ALLOW:
		return true;
	case NET_DEF_DENY:
		return false;
	case NET_DEF_PUBLIC_ONLY:
	default:
		return ip_groups(ip) == IPG_PUBLIC;
	}
}

struct net_verdict policy_check(const struct net_policy *p, unsigned dir, unsigned proto,
				const struct ipaddr *ip, uint16_t port, const struct pins *pins,
				uint64_t now_ms)
{
	struct net_verdict v = { .allow = false, .rule = -1 };

	for (unsigned i = 0; i < p->n; i++) {
		if (rule_matches(&p->rules[i], dir, proto, ip, port, pins, now_ms)) {
			v.allow = p->rules[i].allow;
			v.rule = (int)i;
			return v;
		}
	}
	v.allow = default_allows(p, dir, ip);
	return v;
}

bool policy_dns_allowed(const struct net_policy *p, const char *name)
{
	char norm[NAME_MAX_LEN + 1];
	size_t n = strnlen(name, NAME_MAX_LEN + 2);
	bool usable;

	if (n && name[n - 1] == '.')
		n--;
	/* A name no rule can spell (too long, odd bytes) is left to the default. */
	usable = n && n <= NAME_MAX_LEN;
	for (size_t i = 0; usable && i < n; i++) {
		char c = name[i];

		norm[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	for (unsigned i = 0; usable && i < p->n; i++) {
		const struct net_rule *r = &p->rules[i];

		if (!(r->dirs & NET_EGRESS) ||
		    (r->target != NET_T_DOMAIN && r->target != NET_T_SUFFIX))
			continue;
		if (!name_matches(r, norm, n))
			continue;
		if (r->allow)
			return true;
		if (r->proto == NET_PROTO_ANY && !r->port_lo)
			return false;
	}
	if (p->egress != NET_DEF_DENY)
		return true;
	/* Denied by default, but every public address open: names leak nothing more. */
	for (unsigned i = 0; i < p->n; i++) {
		const struct net_rule *r = &p->rules[i];

		if (r->allow && (r->dirs & NET_EGRESS) && r->target == NET_T_GROUP &&
		    (r->groups & IPG_PUBLIC))
			return true;
	}
	return false;
}

/* proto_name() - the keyword of a NET_* protocol. */
static const char *proto_name(unsigned proto)
{
	for (size_t i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++)
		if (proto_names[i].proto == proto)
			return proto_names[i].name;
	return "?";
}

/* group_name() - the keyword of a group rule's set. */
static const char *group_name(unsigned groups)
{
	for (size_t i = 0; i < sizeof(group_names) / sizeof(group_names[0]); i++)
		if (group_names[i].groups == groups)
			return group_names[i].name;
	return "?";
}

/* target_format() - the TARGET field of @r as the parser reads it back. */
static void target_format(const struct net_rule *r, char *buf, size_t len)
{
	switch (r->target) {
	case NET_T_CIDR:
		cidr_format(&r->net, r->prefix, buf, len);
		break;
	case NET_T_GROUP:
		snprintf(buf, len, "%s", group_name(r->groups));
		break;
	case NET_T_SUFFIX:
		snprintf(buf, len, "*.%s", r->name);
		break;
	case NET_T_DOMAIN:
	default:
		/* Bare only where the parser cannot take it for a group or an address. */
		if (strchr(r->name, '.') && !all_digits_dots(r->name))
			snprintf(buf, len, "%s", r->name);
		else
			snprintf(buf, len, "domain=%s", r->name);
		break;
	}
}

/* ports_format() - "any", "443" or "8000-8080". */
static void ports_format(const struct net_rule *r, char *buf, size_t len)
{
	if (!r->port_lo)
		snprintf(buf, len, "any");
	else if (r->port_lo == r->port_hi)
		snprintf(buf, len, "%u", r->port_lo);
	else
		snprintf(buf, len, "%u-%u", r->port_lo, r->port_hi);
}

void policy_rule_format(const struct net_rule *r, char *buf, size_t len)
{
	static const char *const dir_sfx[] = { "", "", ":ingress", ":any" };
	char target[NAME_MAX_LEN + 16], ports[16];

	target_format(r, target, sizeof(target));
	ports_format(r, ports, sizeof(ports));
	if (r->port_lo)
		snprintf(buf, len, "%s%s@%s:%s:%s", r->allow ? "allow" : "deny",
			 dir_sfx[r->dirs & 3], target, proto_name(r->proto), ports);
	else if (r->proto != NET_PROTO_ANY)
		snprintf(buf, len, "%s%s@%s:%s", r->allow ? "allow" : "deny", dir_sfx[r->dirs & 3],
			 target, proto_name(r->proto));
	else
		snprintf(buf, len, "%s%s@%s", r->allow ? "allow" : "deny", dir_sfx[r->dirs & 3],
			 target);
}

bool policy_rule_equal(const struct net_rule *a, const struct net_rule *b)
{
	if (a->allow != b->allow || a->dirs != b->dirs || a->target != b->target ||
	    a->proto != b->proto || a->port_lo != b->port_lo || a->port_hi != b->port_hi)
		return false;
	switch (a->target) {
	case NET_T_CIDR:
		return a->prefix == b->prefix && ip_equal(&a->net, &b->net);
	case NET_T_GROUP:
		return a->groups == b->groups;
	case NET_T_DOMAIN:
	case NET_T_SUFFIX:
		return strcmp(a->name, b->name) == 0;
	default:
		return false;
	}
}

/* groups_format() - "private", "metadata+link_local", or "unroutable" for none. */
static void groups_format(unsigned groups, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = '\0';
	for (unsigned bit = 1; bit & IPG_ALL; bit <<= 1) {
		const char *name = ip_group_name(bit);
		int n;

		if (!(groups & bit) || !name || at >= len)
			continue;
		n = snprintf(buf + at, len - at, "%s%s", at ? "+" : "", name);
		if (n > 0)
			at += (size_t)n;
	}
	if (!at)
		snprintf(buf, len, "unroutable");
}

void policy_rule_describe(const struct net_policy *p, int rule, char *buf, size_t len)
{
	static const char *const dirs[] = { "egress", "egress", "ingress", "any" };
	char target[NAME_MAX_LEN + 16], ports[16];
	const struct net_rule *r;

	if (!len)
		return;
	if (rule < 0 || (unsigned)rule >= p->n) {
		snprintf(buf, len, "the default");
		return;
	}
	r = &p->rules[rule];
	target_format(r, target, sizeof(target));
	ports_format(r, ports, sizeof(ports));
	snprintf(buf, len, "%s %s %s %s %s (rule %d)", r->allow ? "allow" : "deny",
		 dirs[r->dirs & 3], target, proto_name(r->proto), ports, rule + 1);
}

void policy_verdict_describe(const struct net_policy *p, unsigned dir, const struct ipaddr *ip,
			     const struct net_verdict *v, char *buf, size_t len)
{
	const char *act = v->allow ? "allow" : "deny";
	const char *dname = dir == NET_INGRESS ? "ingress" : "egress";
	char groups[96];

	if (!len)
		return;
	if (v->rule >= 0 && (unsigned)v->rule < p->n)
		policy_rule_describe(p, v->rule, buf, len);
	else if (dir == NET_EGRESS && p->egress == NET_DEF_PUBLIC_ONLY) {
		groups_format(ip_groups(ip), groups, sizeof(groups));
		snprintf(buf, len, "%s %s: %s address%s (built-in default: public only)", act,
			 dname, groups, v->allow ? "" : ", not public");
	} else {
		snprintf(buf, len, "%s %s (default)", act, dname);
	}
}

json_t *policy_to_json(const struct net_policy *p)
{
	static const char *const egress[] = { "public-only", "allow", "deny" };
	json_t *o = json_object(), *rules = json_array();

	if (!o || !rules)
		goto fail;
	for (unsigned i = 0; i < p->n; i++) {
		char tok[NET_MAX_TOKEN + 1];

		policy_rule_format(&p->rules[i], tok, sizeof(tok));
		if (json_array_append_new(rules, json_string(tok)) < 0)
			goto fail;
	}
	/* json_object_set_new() takes the reference even when it fails. */
	if (json_object_set_new(o, "rules", rules) < 0) {
		json_decref(o);
		return NULL;
	}
	if (json_object_set_new(o, "egress_default",
				json_string(egress[p->egress <= NET_DEF_DENY ? p->egress : 0])) <
		    0 ||
	    json_object_set_new(o, "ingress_default",
				json_string(p->ingress_deny ? "deny" : "allow")) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
fail:
	json_decref(rules);
	json_decref(o);
	return NULL;
}

int policy_from_json(const json_t *j, struct net_policy *p, char *err, size_t errlen)
{
	const json_t *eg, *in, *rules, *v;
	char e[512];
	size_t i;
	int rc;

	policy_free(p);
	if (errlen)
		err[0] = '\0';
	if (!json_is_object(j)) {
		errf(err, errlen, "network policy: not a JSON object");
		return -EINVAL;
	}
	eg = json_object_get(j, "egress_default");
	in = json_object_get(j, "ingress_default");
	rules = json_object_get(j, "rules");
	if (eg) {
		const char *s = json_string_value(eg);

		if (s && !strcmp(s, "public-only"))
			p->egress = NET_DEF_PUBLIC_ONLY;
		else if (s && !strcmp(s, "allow"))
			p->egress = NET_DEF_ALLOW;
		else if (s && !strcmp(s, "deny"))
			p->egress = NET_DEF_DENY;
		else
			goto bad_egress;
	}
	if (in) {
		const char *s = json_string_value(in);

		if (!s || (strcmp(s, "allow") != 0 && strcmp(s, "deny") != 0)) {
			errf(err, errlen,
			     "network policy: ingress_default must be \"allow\" or \"deny\"");
			goto fail;
		}
		p->ingress_deny = !strcmp(s, "deny");
	}
	if (rules && !json_is_array(rules)) {
		errf(err, errlen, "network policy: rules must be an array of strings");
		goto fail;
	}
	json_array_foreach(rules, i, v)
	{
		if (!json_is_string(v)) {
			errf(err, errlen, "network policy: rules[%zu] is not a string", i);
			goto fail;
		}
		rc = policy_add(p, json_string_value(v), e, sizeof(e));
		if (rc < 0) {
			errf(err, errlen, "network policy: rules[%zu]: %s", i, e);
			policy_free(p);
			return rc;
		}
	}
	return 0;
bad_egress:
	errf(err, errlen,
	     "network policy: egress_default must be \"public-only\", \"allow\" or \"deny\"");
fail:
	policy_free(p);
	return -EINVAL;
}
