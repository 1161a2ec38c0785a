/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A sandbox's network: a userspace stack in the supervisor that terminates
 * the guest's TCP connections and UDP/ICMP flows and makes ordinary host
 * sockets for them, after the policy allowed it. docs/network.md tells why
 * and how. The supervisor owns one struct net and feeds it epoll events.
 */
#ifndef MSB_NET_NET_H
#define MSB_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/addr.h"
#include "net/policy.h"

#define NET_MAX_PORTS	    64
#define NET_MAX_NAMESERVERS 4

/* A published port: a host listener forwarded to a port of the guest. */
struct net_port {
	bool udp;
	struct ipaddr bind; /* host address to listen on */
	uint16_t host_port, guest_port;
};

#define NET_MAX_SECRETS	  32
#define NET_MAX_TLS_PORTS 16

/* A secret as the network process holds it: the only place its value lives. */
struct net_secret {
	char *name;	   /* the guest's variable */
	char *placeholder; /* what the guest has instead of the value */
	uint8_t *value;
	size_t value_len;
	char **hosts;	/* exact names or "*.suffix", NULL-terminated */
	char **headers; /* NULL: anywhere in a request; else only these headers (lower case) */
};

enum net_violation { NV_BLOCK, NV_BLOCK_AND_LOG, NV_BLOCK_AND_TERMINATE, NV_PASSTHROUGH };

/* TLS interception and secrets (docs/network.md). Absent (NULL) when neither is asked for. */
struct net_tls {
	bool intercept_all; /* --tls-intercept */
	uint16_t ports[NET_MAX_TLS_PORTS];
	size_t nports;
	char **bypass; /* NULL-terminated */
	bool block_quic;
	enum net_violation on_violation;
	char *ca_cert_pem, *ca_key_pem; /* the interception CA */
	char *upstream_pem;		/* extra trusted CAs for upstream servers, or NULL */
	struct net_secret secrets[NET_MAX_SECRETS];
	size_t nsecrets;
};

struct net_config {
	struct ipaddr guest4, gw4;
	unsigned int prefix4; /* 30 */
	struct ipaddr guest6, gw6;
	unsigned int prefix6; /* 64 */
	uint8_t guest_mac[6], gw_mac[6];
	const struct net_policy *policy;
	struct sockaddr_storage dns[NET_MAX_NAMESERVERS]; /* upstream nameservers */
	size_t ndns;
	uint32_t dns_timeout_ms;
	bool rebind_protection;
	unsigned int max_connections; /* 0 = no limit */
	const struct net_port *ports;
	size_t nports;
	const struct net_tls *tls; /* NULL: no interception, no secrets */
};

struct net_stats {
	uint64_t guest_tx_bytes; /* frame bytes the guest sent */
	uint64_t guest_rx_bytes; /* frame bytes the guest received */
	unsigned int tcp_flows, udp_flows;
	uint64_t denied;
	uint64_t dropped;     /* datagrams from the host dropped while the guest's link was full */
	unsigned int fds;     /* host descriptors the flows hold */
	uint64_t fd_refused;  /* new flows refused: their kind's descriptor budget was spent */
	unsigned int dns_tcp; /* DNS-over-TCP flows */
	size_t dns_tcp_held;  /* answer bytes those flows hold for the guest */
	uint64_t dns_tcp_reset; /* of them, reset for going over a bound (answers, idle) */
};

struct net;

/*
 * net_raise_nofile() - raise the soft RLIMIT_NOFILE to the hard limit; the
 * process calls it once at start, before net_new() (which sizes the flows'
 * descriptor budgets from the soft limit). Return: the soft limit now, or -errno.
 */
long net_raise_nofile(void);

/*
 * net_new() - a network for the guest frames on @link_fd (a stream socket:
 * each frame prefixed by its length, 4 bytes big-endian, as QEMU's stream
 * netdev speaks). Published ports are bound now, so a port in use fails here.
 * Takes ownership of @link_fd. Return: 0 and *@out, or -errno with @why.
 */
int net_new(const struct net_config *c, int link_fd, struct net **out, char *why, size_t len);

/*
 * net_watch() - register the network's descriptors in @ep; their events
 * carry @kind in the high 32 bits of data.u64 (the low half is the network's
 * own). Call net_handle() with the low half.
 */
int net_watch(struct net *n, int ep, uint32_t kind);
void net_handle(struct net *n, uint32_t ref, uint32_t events);

/* net_deadline() - when net_timer() wants to run next (monotonic ms), 0 if never. */
uint64_t net_deadline(const struct net *n);
void net_timer(struct net *n, uint64_t now_ms);

void net_stats(const struct net *n, struct net_stats *s);
void net_free(struct net *n);

#endif
