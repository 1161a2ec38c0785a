/* SPDX-License-Identifier: Apache-2.0 */
/* A sandbox's network settings: the policy, DNS, address pools, published ports. */
#ifndef MSB_SANDBOX_NETSPEC_H
#define MSB_SANDBOX_NETSPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/net.h"
#include "net/policy.h"

#define SBX_NET_POOL4		   "172.16.0.0/12"
#define SBX_NET_POOL6		   "fd42:6d73:62::/48"
#define SBX_NET_DNS_TIMEOUT_MS	   5000
#define SBX_NET_MAX_DNS_TIMEOUT_MS 60000

#define SBX_MAX_SECRETS	       32
#define SBX_SECRET_MAX_VALUE   4096
#define SBX_MAX_TLS_PORTS      16
#define SBX_PLACEHOLDER_PREFIX "msb-secret-"
/* Where the guest finds the interception CA on its own (NODE_EXTRA_CA_CERTS points at it). */
#define SBX_TLS_GUEST_CA "/etc/ssl/certs/msb-interception-ca.pem"
/* The bundle SSL_CERT_FILE, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE point at; the CA is in it. */
#define SBX_TLS_GUEST_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* What happens when a placeholder heads somewhere its secret may not go. */
enum sbx_violation {
	SBX_VIOLATION_BLOCK = 0,	   /* the request gets a 403, the connection closes */
	SBX_VIOLATION_BLOCK_AND_LOG,	   /* also a runtime.log line (names, never values) */
	SBX_VIOLATION_BLOCK_AND_TERMINATE, /* also the sandbox is stopped */
	SBX_VIOLATION_PASSTHROUGH,	   /* the placeholder goes through unchanged, logged */
};

/*
 * A --secret as the spec keeps it: never the value (that lives in the
 * secrets store and, at run time, only in the network process).
 */
struct sbx_secret {
	char *env;	   /* the guest's variable, e.g. OPENAI_API_KEY */
	char *placeholder; /* SBX_PLACEHOLDER_PREFIX + 32 hex, random per sandbox and secret */
	char **hosts;	   /* exact names or "*.suffix", NULL-terminated, at least one */
	char **headers;	   /* NULL: substituted anywhere; else only in these headers (lower case) */
};

/* TLS interception settings (--tls-*). */
struct sbx_tls {
	bool intercept; /* --tls-intercept: all TLS on the ports, except bypassed names */
	uint16_t ports[SBX_MAX_TLS_PORTS]; /* --tls-intercept-port; default {443} */
	size_t nports;
	char **bypass; /* --tls-bypass names ("*.suffix" too), NULL-terminated */
	bool no_block_quic;
	char *ca_cert,
		*ca_key;     /* absolute paths; NULL: the installation's CA (~/.microsandbox/tls) */
	char **upstream_cas; /* absolute paths of --tls-upstream-ca-cert, NULL-terminated */
	enum sbx_violation on_violation;
};

/*
 * struct sbx_net - the network part of a sandbox's spec. Owns everything:
 * sbx_net_free().
 */
struct sbx_net {
	struct net_policy policy;
	char **nameservers; /* as given ("IP", "IP:PORT", "[IPv6]:PORT"); empty: the host's */
	uint32_t dns_timeout_ms;
	bool rebind_protection;
	struct ipaddr pool4, pool6;		 /* where this sandbox's /30 and /64 come from */
	unsigned int pool4_prefix, pool6_prefix; /* in IPv6 bits (96 + N for IPv4) */
	unsigned int max_connections;		 /* 0: no limit */
	struct net_port *ports;
	size_t nports;
	bool trust_host_cas;
	struct sbx_secret *secrets;
	size_t nsecrets;
	/* Where a persistent sandbox's values are: "keyring", "file", or NULL (none kept). */
	char *secrets_store;
	struct sbx_tls tls;
};

/*
 * sbx_net_init() - the defaults: public-only, rebind protection, the default
 * pools, no secrets, no interception (port 443 when it is turned on).
 */
void sbx_net_init(struct sbx_net *n);
void sbx_net_free(struct sbx_net *n);

/* sbx_net_to_json() - for config.json. Return: a new reference or NULL. */
json_t *sbx_net_to_json(const struct sbx_net *n);
/* sbx_net_from_json() - @j may be NULL (an older sandbox): the defaults. Return: 0 or -EINVAL. */
int sbx_net_from_json(const json_t *j, struct sbx_net *n, char *why, size_t len);
/*
 * sbx_net_intercepts() - does the network process terminate TLS for this
 * sandbox (--tls-intercept, or any --secret)? Then it needs a CA (tlsca.h).
 */
bool sbx_net_intercepts(const struct sbx_net *n);
/* sbx_net_copy() - a deep copy. Return: 0 or -ENOMEM. */
int sbx_net_copy(const struct sbx_net *from, struct sbx_net *to);

/*
 * sbx_parse_port() - -p HOST:GUEST, BIND_ADDR:HOST:GUEST, [IPv6]:HOST:GUEST,
 * each with an optional /tcp or /udp. Return: 0, or -EINVAL with one line in @why.
 */
int sbx_parse_port(const char *arg, struct net_port *out, char *why, size_t len);
/* sbx_net_add_port() - append a port, refusing a second one on the same host address and port. */
int sbx_net_add_port(struct sbx_net *n, const struct net_port *p, char *why, size_t len);
/* sbx_format_port() - "127.0.0.1:8080->80/tcp". */
void sbx_format_port(const struct net_port *p, char *buf, size_t len);

/*
 * sbx_parse_nameserver() - IP, IP:PORT, [IPv6] or [IPv6]:PORT (a bare IPv6
 * address too). Return: 0 and @ss, or -EINVAL with @why.
 */
int sbx_parse_nameserver(const char *arg, struct sockaddr_storage *ss, char *why, size_t len);

/*
 * sbx_parse_pool() - --net-ipv4-pool / --net-ipv6-pool: a network with room
 * for at least one /30 (/64). Return: 0 or -EINVAL with @why.
 */
int sbx_parse_pool(const char *arg, bool v6, struct ipaddr *net, unsigned int *prefix, char *why,
		   size_t len);

/*
 * sbx_host_nameservers() - the nameservers of the host's /etc/resolv.conf
 * (at most @max). Return: how many.
 */
size_t sbx_host_nameservers(struct sockaddr_storage *out, size_t max);

#endif
