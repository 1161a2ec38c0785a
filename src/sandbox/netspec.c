// SPDX-License-Identifier: Apache-2.0
/* A sandbox's network settings: parsing the flags, config.json, the host's resolvers. */
#define _GNU_SOURCE
#include "sandbox/netspec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/secrets.h"
#include "util/cleanup.h"

void sbx_net_init(struct sbx_net *n)
{
	char why[128];

	memset(n, 0, sizeof(*n));
	policy_init(&n->policy);
	n->nameservers = calloc(1, sizeof(char *));
	n->dns_timeout_ms = SBX_NET_DNS_TIMEOUT_MS;
	n->rebind_protection = true;
	sbx_parse_pool(SBX_NET_POOL4, false, &n->pool4, &n->pool4_prefix, why, sizeof(why));
	sbx_parse_pool(SBX_NET_POOL6, true, &n->pool6, &n->pool6_prefix, why, sizeof(why));
	n->tls.ports[0] = 443;
	n->tls.nports = 1;
	n->tls.bypass = calloc(1, sizeof(char *));
	n->tls.upstream_cas = calloc(1, sizeof(char *));
	n->tls.on_violation = SBX_VIOLATION_BLOCK;
}

static void secret_free(struct sbx_secret *s)
{
	free(s->env);
	free(s->placeholder);
	cleanup_strvp(&s->hosts);
	cleanup_strvp(&s->headers);
}

void sbx_net_free(struct sbx_net *n)
{
	policy_free(&n->policy);
	cleanup_strvp(&n->nameservers);
	free(n->ports);
	for (size_t i = 0; i < n->nsecrets; i++)
		secret_free(&n->secrets[i]);
	free(n->secrets);
	free(n->secrets_store);
	cleanup_strvp(&n->tls.bypass);
	cleanup_strvp(&n->tls.upstream_cas);
	free(n->tls.ca_cert);
	free(n->tls.ca_key);
	memset(n, 0, sizeof(*n));
}

bool sbx_net_intercepts(const struct sbx_net *n)
{
	return n->tls.intercept || n->nsecrets > 0;
}

static bool parse_port_num(const char *s, size_t n, uint16_t *out)
{
	unsigned long v = 0;

	if (!n || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

void sbx_format_port(const struct net_port *p, char *buf, size_t len)
{
	char a[IP_STRLEN];
	bool v4 = ip_is4(&p->bind);

	ip_format(&p->bind, a, sizeof(a));
	snprintf(buf, len, "%s%s%s:%u->%u/%s", v4 ? "" : "[", a, v4 ? "" : "]", p->host_port,
		 p->guest_port, p->udp ? "udp" : "tcp");
}

int sbx_parse_port(const char *arg, struct net_port *out, char *why, size_t len)
{
	_cleanup_free_ char *s = strdup(arg);
	char *proto, *rest, *colon;
	const char *bind = "127.0.0.1";

	memset(out, 0, sizeof(*out));
	if (!s) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	proto = strrchr(s, '/');
	if (proto) {
		*proto++ = '\0';
		if (!strcmp(proto, "udp"))
			out->udp = true;
		else if (strcmp(proto, "tcp") != 0) {
			snprintf(why, len, "-p %s: the protocol must be tcp or udp", arg);
			return -EINVAL;
		}
	}
	rest = s;
	if (s[0] == '[') {
		char *end = strchr(s, ']');

		if (!end || end[1] != ':') {
			snprintf(why, len, "-p %s: expected [IPv6]:HOST:GUEST", arg);
			return -EINVAL;
		}
		*end = '\0';
		bind = s + 1;
		rest = end + 2;
	} else if ((colon = strchr(s, ':')) && strchr(colon + 1, ':')) {
		*colon = '\0';
		bind = s;
		rest = colon + 1;
	}
	colon = strchr(rest, ':');
	if (!colon || strchr(colon + 1, ':')) {
		snprintf(why, len,
			 "-p %s: expected HOST:GUEST or BIND_ADDR:HOST:GUEST (e.g. 8080:80)", arg);
		return -EINVAL;
	}
	if (ip_parse(bind, &out->bind) < 0) {
		snprintf(why, len, "-p %s: \"%s\" is not an IP address to bind to", arg, bind);
		return -EINVAL;
	}
	if (!parse_port_num(rest, (size_t)(colon - rest), &out->host_port) ||
	    !parse_port_num(colon + 1, strlen(colon + 1), &out->guest_port)) {
		snprintf(why, len, "-p %s: ports are numbers from 1 to 65535", arg);
		return -EINVAL;
	}
	return 0;
}

int sbx_net_add_port(struct sbx_net *n, const struct net_port *p, char *why, size_t len)
{
	struct net_port *v;

	for (size_t i = 0; i < n->nports; i++) {
		const struct net_port *q = &n->ports[i];

		if (q->udp == p->udp && q->host_port == p->host_port &&
		    ip_equal(&q->bind, &p->bind)) {
			char a[80];

			sbx_format_port(p, a, sizeof(a));
			snprintf(why, len, "-p %s: host port %u/%s is published twice", a,
				 p->host_port, p->udp ? "udp" : "tcp");
			return -EINVAL;
		}
	}
	if (n->nports >= NET_MAX_PORTS) {
		snprintf(why, len, "-p: at most %d published ports", NET_MAX_PORTS);
		return -E2BIG;
	}
	v = realloc(n->ports, (n->nports + 1) * sizeof(*v));
	if (!v) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	v[n->nports++] = *p;
	n->ports = v;
	return 0;
}

static void to_sockaddr(const struct ipaddr *ip, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ip_is4(ip)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, ip->b + 12, 4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, ip->b, 16);
	}
}

int sbx_parse_nameserver(const char *arg, struct sockaddr_storage *ss, char *why, size_t len)
{
	char addr[IP_STRLEN + 1];
	const char *port = NULL, *a = arg;
	size_t alen;
	uint16_t pn = 53;
	struct ipaddr ip;

	if (arg[0] == '[') {
		const char *end = strchr(arg, ']');

		if (!end || (end[1] && end[1] != ':')) {
			snprintf(why, len, "--dns-nameserver %s: expected [IPv6] or [IPv6]:PORT",
				 arg);
			return -EINVAL;
		}
		a = arg + 1;
		alen = (size_t)(end - a);
		port = end[1] ? end + 2 : NULL;
	} else {
		const char *c = strchr(arg, ':');

		alen = strlen(arg);
		if (c && !strchr(c + 1, ':')) {
			alen = (size_t)(c - arg);
			port = c + 1;
		}
	}
	if (alen >= sizeof(addr)) {
		snprintf(why, len, "--dns-nameserver %s: not an IP address", arg);
		return -EINVAL;
	}
	memcpy(addr, a, alen);
	addr[alen] = '\0';
	if (ip_parse(addr, &ip) < 0) {
		snprintf(why, len, "--dns-nameserver %s: \"%s\" is not an IP address", arg, addr);
		return -EINVAL;
	}
	if (port && !parse_port_num(port, strlen(port), &pn)) {
		snprintf(why, len, "--dns-nameserver %s: the port must be a number from 1 to 65535",
			 arg);
		return -EINVAL;
	}
	to_sockaddr(&ip, pn, ss);
	return 0;
}

int sbx_parse_pool(const char *arg, bool v6, struct ipaddr *net, unsigned int *prefix, char *why,
		   size_t len)
{
	const char *flag = v6 ? "--net-ipv6-pool" : "--net-ipv4-pool";
	char buf[CIDR_STRLEN + 4], err[160];

	/* The IPv6 pool is written without brackets, as --net-rule needs them. */
	if (v6 && arg[0] != '[' && strchr(arg, '/') && strlen(arg) + 3 <= sizeof(buf)) {
		const char *slash = strchr(arg, '/');

		snprintf(buf, sizeof(buf), "[%.*s]%s", (int)(slash - arg), arg, slash);
	} else {
		snprintf(buf, sizeof(buf), "%s", arg);
	}
	if (!strchr(arg, '/')) {
		snprintf(why, len, "%s %s: expected a network, such as %s", flag, arg,
			 v6 ? SBX_NET_POOL6 : SBX_NET_POOL4);
		return -EINVAL;
	}
	if (cidr_parse_why(buf, net, prefix, err, sizeof(err)) < 0) {
		snprintf(why, len, "%s %s: %s", flag, arg, err);
		return -EINVAL;
	}
	if (ip_is4(net) != !v6 || (v6 && *prefix > 64) ||
	    (!v6 && (*prefix < 96 || *prefix > 126))) {
		snprintf(why, len, "%s %s: expected an IPv%c network with room for a /%d", flag,
			 arg, v6 ? '6' : '4', v6 ? 64 : 30);
		return -EINVAL;
	}
	return 0;
}

size_t sbx_host_nameservers(struct sockaddr_storage *out, size_t max)
{
	_cleanup_fclose_ FILE *f = fopen("/etc/resolv.conf", "re");
	char line[512];
	size_t n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char addr[128], *pct;
		char why[160];

		if (sscanf(line, " nameserver %127s", addr) != 1)
			continue;
		/* fe80::1%eth0: the scope means nothing to a sandbox. */
		if ((pct = strchr(addr, '%')))
			*pct = '\0';
		if (strchr(addr, ':') && addr[0] != '[') {
			struct ipaddr ip;

			if (ip_parse(addr, &ip) == 0)
				to_sockaddr(&ip, 53, &out[n++]);
			continue;
		}
		if (sbx_parse_nameserver(addr, &out[n], why, sizeof(why)) == 0)
			n++;
	}
	return n;
}

/* A NULL-terminated array (NULL: empty) as a JSON array of strings. */
static json_t *strv_to_json(char *const *v)
{
	json_t *a = json_array();

	for (; a && v && *v; v++) {
		if (json_array_append_new(a, json_string(*v)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* The secrets as the spec keeps them: names, placeholders, hosts; never a value. */
static json_t *secrets_to_json(const struct sbx_net *n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n->nsecrets; i++) {
		const struct sbx_secret *s = &n->secrets[i];
		json_t *o = json_pack("{s:s, s:s?, s:o}", "env", s->env, "placeholder",
				      s->placeholder, "hosts", strv_to_json(s->hosts));

		if (o && s->headers &&
		    json_object_set_new(o, "headers", strv_to_json(s->headers)) < 0) {
			json_decref(o);
			o = NULL;
		}
		if (!o || json_array_append_new(a, o) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *tls_to_json(const struct sbx_tls *t)
{
	json_t *ports = json_array();

	for (size_t i = 0; ports && i < t->nports; i++)
		json_array_append_new(ports, json_integer(t->ports[i]));
	return json_pack("{s:b, s:o, s:o, s:b, s:s?, s:s?, s:o, s:s}", "intercept", t->intercept,
			 "ports", ports, "bypass", strv_to_json(t->bypass), "no_block_quic",
			 t->no_block_quic, "ca_cert", t->ca_cert, "ca_key", t->ca_key,
			 "upstream_cas", strv_to_json(t->upstream_cas), "on_secret_violation",
			 sbx_violation_name(t->on_violation));
}

json_t *sbx_net_to_json(const struct sbx_net *n)
{
	json_t *o, *ports = json_array(), *ns = json_array();
	char p4[CIDR_STRLEN], p6[CIDR_STRLEN], a[IP_STRLEN];

	for (size_t i = 0; ports && i < n->nports; i++) {
		ip_format(&n->ports[i].bind, a, sizeof(a));
		json_array_append_new(ports,
				      json_pack("{s:s, s:i, s:i, s:s}", "bind", a, "host_port",
						n->ports[i].host_port, "guest_port",
						n->ports[i].guest_port, "protocol",
						n->ports[i].udp ? "udp" : "tcp"));
	}
	for (char **s = n->nameservers; ns && s && *s; s++)
		json_array_append_new(ns, json_string(*s));
	cidr_format(&n->pool4, n->pool4_prefix, p4, sizeof(p4));
	cidr_format(&n->pool6, n->pool6_prefix, p6, sizeof(p6));
	o = json_pack("{s:o, s:o, s:I, s:b, s:s, s:s, s:I, s:o, s:b}", "policy",
		      policy_to_json(&n->policy), "nameservers", ns, "dns_query_timeout_ms",
		      (json_int_t)n->dns_timeout_ms, "dns_rebind_protection", n->rebind_protection,
		      "ipv4_pool", p4, "ipv6_pool", p6, "max_connections",
		      (json_int_t)n->max_connections, "ports", ports, "trust_host_cas",
		      n->trust_host_cas);
	if (o && (json_object_set_new(o, "secrets", secrets_to_json(n)) < 0 ||
		  json_object_set_new(o, "tls", tls_to_json(&n->tls)) < 0 ||
		  (n->secrets_store &&
		   json_object_set_new(o, "secrets_store", json_string(n->secrets_store)) < 0))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * A JSON array of strings into a NULL-terminated array, each checked by @ok
 * (NULL: any). Return: 0, or -EINVAL (not such an array, more than @max).
 */
static int strv_from_json(const json_t *a, size_t max, bool (*ok)(const char *), char ***out)
{
	char **v;
	json_t *s;
	size_t i;

	*out = NULL;
	if (!json_is_array(a) || json_array_size(a) > max)
		return -EINVAL;
	v = calloc(json_array_size(a) + 1, sizeof(char *));
	if (!v)
		return -ENOMEM;
	json_array_foreach(a, i, s)
	{
		if (!json_is_string(s) || (ok && !ok(json_string_value(s))) ||
		    !(v[i] = strdup(json_string_value(s)))) {
			cleanup_strvp(&v);
			return -EINVAL;
		}
	}
	*out = v;
	return 0;
}

/* A host pattern exactly as sbx_host_pattern() writes it. */
static bool pattern_ok(const char *s)
{
	char norm[SBX_HOST_PATTERN_MAX], w[256];

	return sbx_host_pattern(s, norm, sizeof(norm), w, sizeof(w)) == 0 && !strcmp(norm, s);
}

static bool header_ok(const char *s)
{
	size_t n = strlen(s);

	return n && n < SBX_HOST_PATTERN_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789"
			 "!#$%&'*+-.^_`|~") == n;
}

static bool abs_path_ok(const char *s)
{
	return s[0] == '/' && strlen(s) < 4096;
}

static bool placeholder_ok(const char *s)
{
	size_t p = sizeof(SBX_PLACEHOLDER_PREFIX) - 1;

	return strlen(s) == SBX_PLACEHOLDER_LEN && !strncmp(s, SBX_PLACEHOLDER_PREFIX, p) &&
	       strspn(s + p, "0123456789abcdef") == 32;
}

static bool env_ok(const char *s)
{
	size_t n = strlen(s);

	return n && n < 256 && !(s[0] >= '0' && s[0] <= '9') &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

static int secrets_from_json(const json_t *a, struct sbx_net *n)
{
	json_t *o;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) > SBX_MAX_SECRETS)
		return -EINVAL;
	n->secrets = calloc(json_array_size(a) + 1, sizeof(*n->secrets));
	if (!n->secrets)
		return -ENOMEM;
	json_array_foreach(a, i, o)
	{
		struct sbx_secret *s = &n->secrets[i];
		const char *env = json_string_value(json_object_get(o, "env"));
		const char *ph = json_string_value(json_object_get(o, "placeholder"));
		json_t *headers = json_object_get(o, "headers");

		n->nsecrets = i + 1;
		if (!env || !env_ok(env) || (ph && !placeholder_ok(ph)))
			return -EINVAL;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(n->secrets[k].env, env))
				return -EINVAL;
		s->env = strdup(env);
		s->placeholder = ph ? strdup(ph) : NULL;
		if (!s->env || (ph && !s->placeholder))
			return -ENOMEM;
		if (strv_from_json(json_object_get(o, "hosts"), SBX_SECRET_MAX_HOSTS, pattern_ok,
				   &s->hosts) < 0 ||
		    !s->hosts[0])
			return -EINVAL;
		if (headers &&
		    (strv_from_json(headers, SBX_SECRET_MAX_HEADERS, header_ok, &s->headers) < 0 ||
		     !s->headers[0]))
			return -EINVAL;
	}
	return 0;
}

static int tls_from_json(const json_t *j, struct sbx_tls *t)
{
	const json_t *ports = json_object_get(j, "ports"), *v, *p;
	const char *s;
	size_t i;

	if (!json_is_object(j))
		return -EINVAL;
	t->intercept = json_is_true(json_object_get(j, "intercept"));
	t->no_block_quic = json_is_true(json_object_get(j, "no_block_quic"));
	if (ports) {
		if (!json_is_array(ports) || json_array_size(ports) > SBX_MAX_TLS_PORTS)
			return -EINVAL;
		t->nports = 0;
		json_array_foreach(ports, i, p)
		{
			json_int_t k = json_integer_value(p);

			if (!json_is_integer(p) || k < 1 || k > 65535)
				return -EINVAL;
			t->ports[t->nports++] = (uint16_t)k;
		}
		if (!t->nports) {
			t->ports[0] = 443;
			t->nports = 1;
		}
	}
	if ((v = json_object_get(j, "bypass"))) {
		cleanup_strvp(&t->bypass);
		if (strv_from_json(v, 1024, pattern_ok, &t->bypass) < 0)
			return -EINVAL;
	}
	if ((v = json_object_get(j, "upstream_cas"))) {
		cleanup_strvp(&t->upstream_cas);
		if (strv_from_json(v, 64, abs_path_ok, &t->upstream_cas) < 0)
			return -EINVAL;
	}
	s = json_string_value(json_object_get(j, "ca_cert"));
	if (s && !(abs_path_ok(s) && (t->ca_cert = strdup(s))))
		return -EINVAL;
	s = json_string_value(json_object_get(j, "ca_key"));
	if (s && !(abs_path_ok(s) && (t->ca_key = strdup(s))))
		return -EINVAL;
	if (!t->ca_cert != !t->ca_key)
		return -EINVAL;
	s = json_string_value(json_object_get(j, "on_secret_violation"));
	if (s && sbx_violation_parse(s, &t->on_violation) < 0)
		return -EINVAL;
	return 0;
}

int sbx_net_from_json(const json_t *j, struct sbx_net *n, char *why, size_t len)
{
	json_t *v;
	size_t i;

	sbx_net_init(n);
	if (!j)
		return 0;
	if (!json_is_object(j))
		goto bad;
	if ((v = json_object_get(j, "policy")) && policy_from_json(v, &n->policy, why, len) < 0)
		return -EINVAL;
	v = json_object_get(j, "nameservers");
	if (v) {
		char **ns = calloc(json_array_size(v) + 1, sizeof(char *));
		json_t *s;

		if (!ns || !json_is_array(v)) {
			free(ns);
			goto bad;
		}
		cleanup_strvp(&n->nameservers);
		n->nameservers = ns;
		json_array_foreach(v, i, s)
		{
			struct sockaddr_storage ss;

			if (!json_is_string(s) ||
			    sbx_parse_nameserver(json_string_value(s), &ss, why, len) < 0 ||
			    !(ns[i] = strdup(json_string_value(s))))
				goto bad;
		}
	}
	if ((v = json_object_get(j, "dns_query_timeout_ms")))
		n->dns_timeout_ms = (uint32_t)json_integer_value(v);
	if ((v = json_object_get(j, "dns_rebind_protection")))
		n->rebind_protection = json_is_true(v);
	if ((v = json_object_get(j, "max_connections")))
		n->max_connections = (unsigned int)json_integer_value(v);
	n->trust_host_cas = json_is_true(json_object_get(j, "trust_host_cas"));
	if ((v = json_object_get(j, "ipv4_pool")) &&
	    (!json_is_string(v) || sbx_parse_pool(json_string_value(v), false, &n->pool4,
						  &n->pool4_prefix, why, len) < 0))
		goto bad;
	if ((v = json_object_get(j, "ipv6_pool")) &&
	    (!json_is_string(v) ||
	     sbx_parse_pool(json_string_value(v), true, &n->pool6, &n->pool6_prefix, why, len) < 0))
		goto bad;
	v = json_object_get(j, "ports");
	if (v) {
		json_t *p;

		if (!json_is_array(v))
			goto bad;
		json_array_foreach(v, i, p)
		{
			struct net_port port = { 0 };
			const char *b = json_string_value(json_object_get(p, "bind"));
			const char *proto = json_string_value(json_object_get(p, "protocol"));
			json_int_t hp = json_integer_value(json_object_get(p, "host_port"));
			json_int_t gp = json_integer_value(json_object_get(p, "guest_port"));

			if (!b || ip_parse(b, &port.bind) < 0 || hp < 1 || hp > 65535 || gp < 1 ||
			    gp > 65535 || !proto ||
			    (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0))
				goto bad;
			port.host_port = (uint16_t)hp;
			port.guest_port = (uint16_t)gp;
			port.udp = !strcmp(proto, "udp");
			if (sbx_net_add_port(n, &port, why, len) < 0)
				return -EINVAL;
		}
	}
	if (n->dns_timeout_ms < 1 || n->dns_timeout_ms > SBX_NET_MAX_DNS_TIMEOUT_MS)
		goto bad;
	if ((v = json_object_get(j, "secrets")) && secrets_from_json(v, n) < 0)
		goto bad;
	if ((v = json_object_get(j, "tls")) && tls_from_json(v, &n->tls) < 0)
		goto bad;
	if ((v = json_object_get(j, "secrets_store"))) {
		const char *st = json_string_value(v);

		if (!st || (strcmp(st, "keyring") != 0 && strcmp(st, "file") != 0) ||
		    !(n->secrets_store = strdup(st)))
			goto bad;
	}
	return 0;
bad:
	if (!why[0] || 1)
		snprintf(why, len, "the network settings are not valid");
	return -EINVAL;
}

int sbx_net_copy(const struct sbx_net *from, struct sbx_net *to)
{
	json_t *j = sbx_net_to_json(from);
	char why[256] = "";
	int r;

	if (!j) {
		sbx_net_init(to);
		return -ENOMEM;
	}
	r = sbx_net_from_json(j, to, why, sizeof(why));
	json_decref(j);
	return r < 0 ? -ENOMEM : 0;
}
