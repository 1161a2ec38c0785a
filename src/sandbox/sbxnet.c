// SPDX-License-Identifier: Apache-2.0
/*
 * A sandbox's network as its supervisor runs it.
 *
 * DOC: Addresses
 * Each sandbox leases a /30 from its IPv4 pool and a /64 from its IPv6 pool
 * (db_sandbox_lease(): unique among sandboxes, kept across starts). In the
 * /30 N: N+1 is the gateway, N+2 the guest; in the /64 P: P::1 and P::2.
 * The gateway is the guest's DNS server and host.microsandbox.internal;
 * connections to it reach the host's loopback if the policy allows them.
 * MACs are locally administered and derived from the lease.
 */
#define _GNU_SOURCE
#include "sandbox/sbxnet.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/frame.h"
#include "store/db.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#define HOST_CA_MAX PROTO_MAX_FILE

static struct ipaddr plus(const struct ipaddr *a, uint8_t k)
{
	struct ipaddr r = *a;

	r.b[15] = (uint8_t)(r.b[15] + k);
	return r;
}

static void describe(const struct sbx_spec *spec, const struct sbx_netrun *run)
{
	char g4[IP_STRLEN], g6[IP_STRLEN], gw4[IP_STRLEN], ns[160] = "", p[64];
	size_t off = 0;
	json_t *pj = policy_to_json(&spec->net.policy);
	_cleanup_free_ char *pol = pj ? json_dumps(pj, JSON_COMPACT) : NULL;

	json_decref(pj);
	ip_format(&run->cfg.guest4, g4, sizeof(g4));
	ip_format(&run->cfg.guest6, g6, sizeof(g6));
	ip_format(&run->cfg.gw4, gw4, sizeof(gw4));
	for (char **s = spec->net.nameservers; *s && off < sizeof(ns); s++)
		off += (size_t)snprintf(ns + off, sizeof(ns) - off, "%s%s", off ? ", " : "", *s);
	log_info("network: guest %s/30 and %s/64, gateway %s; dns via %s; policy %s", g4, g6, gw4,
		 off ? ns : "the host's resolv.conf", pol ? pol : "?");
	for (size_t i = 0; i < spec->net.nports; i++) {
		sbx_format_port(&spec->net.ports[i], p, sizeof(p));
		log_info("network: port %s published", p);
	}
}

/* The host's CA bundle: $SSL_CERT_FILE, else the first of the usual places. */
static int host_ca_bundle(char **data, size_t *len, char *why, size_t wlen)
{
	static const char *const places[] = {
		"/etc/ssl/certs/ca-certificates.crt",
		"/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/cert.pem",
	};
	const char *env = getenv("SSL_CERT_FILE");
	int r = -ENOENT;

	if (env && *env) {
		r = read_file(env, HOST_CA_MAX, data, len);
		if (r < 0)
			snprintf(why, wlen, "--trust-host-cas: %s: %s", env, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		r = read_file(places[i], HOST_CA_MAX, data, len);
		if (r != -ENOENT) {
			if (r < 0)
				snprintf(why, wlen, "--trust-host-cas: %s: %s", places[i],
					 strerror(-r));
			return r;
		}
	}
	snprintf(why, wlen,
		 "--trust-host-cas: the host has no CA bundle (looked in %s, %s, %s; set "
		 "SSL_CERT_FILE)",
		 places[0], places[1], places[2]);
	return r;
}

int sbx_netrun_start(const struct sbx_spec *spec, struct sbx_netrun *run, struct msb_err **err)
{
	const struct sbx_net *n = &spec->net;
	struct net_config *c = &run->cfg;
	struct ipaddr net4, net6;
	struct db *db = NULL;
	int sp[2], r;
	char why[320];

	memset(run, 0, sizeof(*run));
	run->vmm_fd = -1;
	r = db_open(&db, err);
	if (!r)
		r = db_sandbox_lease(db, spec->name, &n->pool4, n->pool4_prefix, &n->pool6,
				     n->pool6_prefix, &net4, &net6, err);
	db_close(db);
	if (r < 0)
		return -1;
	c->gw4 = plus(&net4, 1);
	c->guest4 = plus(&net4, 2);
	c->prefix4 = 30;
	c->gw6 = plus(&net6, 1);
	c->guest6 = plus(&net6, 2);
	c->prefix6 = 64;
	/* Locally administered, unicast; the guest's from its lease, the gateway's fixed. */
	memcpy(c->guest_mac, (uint8_t[]){ 0x02, 0x6d, 0x73, net4.b[13], net4.b[14], net4.b[15] },
	       6);
	c->guest_mac[5] = (uint8_t)(c->guest_mac[5] + 2);
	memcpy(c->gw_mac, (uint8_t[]){ 0x02, 0x6d, 0x73, 0x00, 0x00, 0x01 }, 6);
	c->policy = &n->policy;
	for (char **s = n->nameservers; *s && c->ndns < NET_MAX_NAMESERVERS; s++)
		if (sbx_parse_nameserver(*s, &c->dns[c->ndns], why, sizeof(why)) == 0)
			c->ndns++;
	if (!n->nameservers[0])
		c->ndns = sbx_host_nameservers(c->dns, NET_MAX_NAMESERVERS);
	if (!c->ndns)
		log_warn("network: no nameserver (none in /etc/resolv.conf; use --dns-nameserver): "
			 "names will not resolve");
	c->dns_timeout_ms = n->dns_timeout_ms;
	c->rebind_protection = n->rebind_protection;
	c->max_connections = n->max_connections;
	c->ports = n->ports;
	c->nports = n->nports;
	/* Our end never blocks; QEMU's does (it waits for us, not the other way round). */
	/* Read now, so that a missing bundle fails the start before the VM boots. */
	if (n->trust_host_cas && host_ca_bundle(&run->ca, &run->ca_len, why, sizeof(why)) < 0)
		return msb_err_set(err, ENOENT, "sandbox %s: %s", spec->name, why);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return msb_err_sys(err, errno, "network: socketpair");
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) < 0) {
		r = errno;
		close(sp[0]);
		close(sp[1]);
		return msb_err_sys(err, r, "network: socketpair");
	}
	r = net_new(c, sp[0], &run->net, why, sizeof(why));
	if (r < 0) {
		close(sp[1]);
		return msb_err_set(err, -r, "sandbox %s: %s", spec->name, why);
	}
	run->vmm_fd = sp[1];
	describe(spec, run);
	return 0;
}

void sbx_netrun_free(struct sbx_netrun *run)
{
	free(run->ca);
	run->ca = NULL;
	net_free(run->net);
	run->net = NULL;
	if (run->vmm_fd >= 0)
		close(run->vmm_fd);
	run->vmm_fd = -1;
}

static int add_file(struct proto_config *c, const char *path, uint32_t mode, uint32_t flags,
		    char *data, size_t len)
{
	struct proto_file *f;

	if (c->nfiles >= PROTO_MAX_FILES || len > PROTO_MAX_FILE) {
		free(data);
		return -E2BIG;
	}
	f = &c->files[c->nfiles++];
	f->path = path ? strdup(path) : NULL;
	f->mode = mode;
	f->flags = flags;
	f->data = (uint8_t *)data;
	f->len = (uint32_t)len;
	return path && !f->path ? -ENOMEM : 0;
}

int sbx_netrun_config(const struct sbx_spec *spec, const struct sbx_netrun *run,
		      struct proto_config *c, char *why, size_t len)
{
	const struct net_config *nc = &run->cfg;
	char g4[IP_STRLEN], g6[IP_STRLEN], gw4[IP_STRLEN], gw6[IP_STRLEN];
	char *hosts = NULL, *resolv = NULL;
	int r;

	c->flags |= PROTO_CONFIG_NET;
	memcpy(c->net.mac, nc->guest_mac, 6);
	memcpy(c->net.addr4, nc->guest4.b + 12, 4);
	memcpy(c->net.gw4, nc->gw4.b + 12, 4);
	c->net.prefix4 = nc->prefix4;
	memcpy(c->net.addr6, nc->guest6.b, 16);
	memcpy(c->net.gw6, nc->gw6.b, 16);
	c->net.prefix6 = nc->prefix6;
	c->net.mtu = NET_MTU;
	ip_format(&nc->guest4, g4, sizeof(g4));
	ip_format(&nc->guest6, g6, sizeof(g6));
	ip_format(&nc->gw4, gw4, sizeof(gw4));
	ip_format(&nc->gw6, gw6, sizeof(gw6));
	if (asprintf(&hosts,
		     "127.0.0.1\tlocalhost\n"
		     "::1\tlocalhost ip6-localhost ip6-loopback\n"
		     "%s\t%s\n"
		     "%s\t%s\n"
		     "%s\thost.microsandbox.internal\n"
		     "%s\thost.microsandbox.internal\n",
		     g4, spec->hostname, g6, spec->hostname, gw4, gw6) < 0)
		hosts = NULL;
	/* The gateway answers every query; its IPv6 address is the second to try. */
	if (asprintf(&resolv, "nameserver %s\nnameserver %s\noptions edns0\n", gw4, gw6) < 0)
		resolv = NULL;
	if (!hosts || !resolv) {
		free(hosts);
		free(resolv);
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	r = add_file(c, "/etc/hosts", 0644, 0, hosts, strlen(hosts));
	if (!r)
		r = add_file(c, "/etc/resolv.conf", 0644, 0, resolv, strlen(resolv));
	else
		free(resolv);
	if (!r && run->ca) {
		char *ca = malloc(run->ca_len ? run->ca_len : 1);

		if (ca)
			memcpy(ca, run->ca, run->ca_len);
		r = ca ? add_file(c, NULL, 0644, PROTO_FILE_CA_BUNDLE, ca, run->ca_len) : -ENOMEM;
	}
	if (r < 0 && !why[0])
		snprintf(why, len, "network configuration: %s", strerror(-r));
	return r;
}

void sbx_netrun_config_free(struct proto_config *c)
{
	for (uint32_t i = 0; i < c->nfiles; i++) {
		free(c->files[i].path);
		free(c->files[i].data);
	}
	c->nfiles = 0;
}
