// SPDX-License-Identifier: Apache-2.0
/*
 * The network stack's frame: the link to QEMU, ARP and neighbour discovery
 * for the gateway, dispatch to TCP, UDP, ICMP and DNS, timers, policy.
 *
 * DOC: Theory of Operation
 * The guest's virtio-net frames arrive on a stream socket from QEMU, each
 * prefixed by its length. No frame reaches the host as a frame: the stack
 * answers for the gateway itself (ARP, neighbour discovery, ping, DNS) and
 * terminates every TCP connection and UDP flow, making an ordinary host
 * socket for it only after the policy allowed the destination
 * (net_allowed(), with the pin set of this sandbox's own DNS answers for
 * domain rules). The gateway's address means the host's loopback, reached
 * only when a rule allows it. Frames for the guest are queued on the link
 * with a high-water mark; above it the stack stops producing (flows keep what
 * they read, within their bounded buffers) until QEMU has taken them.
 * Host descriptors are budgeted per kind of flow from the soft
 * RLIMIT_NOFILE (fd_budgets()), so the guest cannot exhaust the process's
 * descriptors; a listener whose accept() cannot make progress rests
 * (unwatched) instead of being retried in a loop.
 */
#define _GNU_SOURCE
#include "net/stack.h"
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

/* Frames queued for QEMU above which the stack holds back. */
#define LINK_TX_HWM ((size_t)4 << 20)
#define LINK_RX_MAX ((size_t)4 + NET_FRAME_MAX + (64u << 10))
#define LINK_BUDGET ((size_t)512 << 10)
/* Denials logged per 10 s; more are counted, and the next line says how many. */
#define NET_DENY_LOG_BURST 100

uint64_t net_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void net_watch_fd(struct net *n, int fd, uint32_t ref, uint32_t want, uint32_t *cur)
{
	struct epoll_event ev = { .events = want, .data.u64 = (uint64_t)n->kind << 32 | ref };
	int op;

	if (fd < 0 || n->ep < 0 || want == *cur)
		return;
	op = !want ? EPOLL_CTL_DEL : *cur ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(n->ep, op, fd, &ev) == 0)
		*cur = want;
}

static void link_rearm(struct net *n)
{
	/*
	 * Above the high-water mark the guest's own frames wait in the socket:
	 * most ask for an answer (ARP, ping, an ACK), and a guest that sends
	 * without taking its answers would otherwise grow the queue without bound.
	 */
	conn_watch(&n->link, n->ep, (uint64_t)n->kind << 32 | NET_REF(NR_LINK, 0), !n->link_full);
}

void net_emit(struct net *n, size_t len)
{
	uint8_t *f = n->frame;

	f[0] = (uint8_t)(len >> 24);
	f[1] = (uint8_t)(len >> 16);
	f[2] = (uint8_t)(len >> 8);
	f[3] = (uint8_t)len;
	if (buf_append(&n->link.tx, f, len + 4) < 0)
		return; /* out of memory: the guest's TCP recovers, UDP is lossy anyway */
	n->stats.guest_rx_bytes += len;
	if (conn_tx_full(&n->link))
		n->link_full = true;
}

bool net_is_gateway(const struct net *n, const struct ipaddr *ip)
{
	return !memcmp(ip, &n->cfg.gw4, sizeof(*ip)) || !memcmp(ip, &n->cfg.gw6, sizeof(*ip));
}

void net_ends_from(const struct net *n, const struct pkt *p, struct frame_ends *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->guest_mac, n->cfg.guest_mac, 6);
	memcpy(e->gw_mac, n->cfg.gw_mac, 6);
	e->guest = p->src;
	e->remote = p->dst;
	e->guest_port = p->sport;
	e->remote_port = p->dport;
}

socklen_t net_sockaddr(const struct net *n, const struct ipaddr *ip, uint16_t port,
		       struct sockaddr_storage *ss)
{
	struct ipaddr a = *ip;

	memset(ss, 0, sizeof(*ss));
	/* The gateway is where the guest reaches the host's loopback. */
	if (net_is_gateway(n, ip))
		ip_parse(ip_is4(ip) ? "127.0.0.1" : "::1", &a);
	if (ip_is4(&a)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, a.b + 12, 4);
		return sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, a.b, 16);
		return sizeof(*s6);
	}
}

bool net_conn_room(const struct net *n)
{
	unsigned int max = n->cfg.max_connections;

	return !max || n->ntcp + n->nudp < max;
}

long net_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
	}
	return rl.rlim_cur > (rlim_t)LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
}

/*
 * Each kind of flow gets its share of the descriptors the soft limit leaves
 * after NET_FD_RESERVE: the guest's flows must never be what makes the
 * process's own accept() or open() fail (EMFILE), whatever the guest opens.
 */
static void fd_budgets(struct net *n)
{
	static const unsigned int share[NFD_KINDS] = { 8, 4, 2, 1 }; /* sixteenths */
	static const unsigned int table[NFD_KINDS] = { TCP_MAX_FLOWS, UDP_MAX_FLOWS,
						       DNS_MAX_PENDING, ICMP_MAX_FLOWS };
	struct rlimit rl = { .rlim_cur = 1024 };
	uint64_t avail;

	getrlimit(RLIMIT_NOFILE, &rl);
	avail = rl.rlim_cur > NET_FD_RESERVE + n->nlisten
			? (uint64_t)rl.rlim_cur - NET_FD_RESERVE - n->nlisten
			: 0;
	for (int k = 0; k < NFD_KINDS; k++) {
		uint64_t b = avail / 16 * share[k] + avail % 16 * share[k] / 16;

		n->fd_max[k] = b < 1 ? 1 : b > table[k] ? table[k] : (unsigned int)b;
	}
}

bool net_fd_room(struct net *n, enum net_fd_kind k)
{
	static const char *const what[NFD_KINDS] = { "TCP connections", "UDP flows", "DNS queries",
						     "ping flows" };

	if (n->fd_used[k] < n->fd_max[k])
		return true;
	n->stats.fd_refused++;
	log_warn_rl("network: %u host descriptors for %s are in use (RLIMIT_NOFILE); new ones "
		    "refused (%llu so far)",
		    n->fd_max[k], what[k], (unsigned long long)n->stats.fd_refused);
	return false;
}

void net_fd_opened(struct net *n, enum net_fd_kind k)
{
	n->fd_used[k]++;
}

void net_fd_closed(struct net *n, enum net_fd_kind k)
{
	if (n->fd_used[k])
		n->fd_used[k]--;
	/* A descriptor is free: a listener that could not accept may now. */
	if (n->nresting)
		listen_resume(n, true);
}

/*
 * Resolvers other than ours are not reached around it: DNS over TLS and over
 * QUIC (port 853) and multicast DNS (5353) would answer names the policy and
 * the pin set never see. Plain DNS to any address is answered by ours.
 */
static const char *refused_service(unsigned int dir, unsigned int proto, uint16_t port)
{
	if (dir != NET_EGRESS)
		return NULL;
	if (port == 853 && (proto == NET_TCP || proto == NET_UDP))
		return proto == NET_TCP
			       ? "DNS over TLS is refused: names resolve through the gateway"
			       : "DNS over QUIC is refused: names resolve through the gateway";
	if (port == 5353 && proto == NET_UDP)
		return "multicast DNS is refused: names resolve through the gateway";
	return NULL;
}

bool net_allowed(struct net *n, unsigned int dir, unsigned int proto, const struct ipaddr *ip,
		 uint16_t port)
{
	struct ipaddr target = *ip;
	struct net_verdict v = { 0 };
	const char *why = refused_service(dir, proto, port);
	bool host = false;
	char addr[IP_STRLEN], rule[200];

	/*
	 * The gateway stands for the host's loopback: rules see it as that, and
	 * as the name the guest knows it by, so allow@host.microsandbox.internal
	 * works as well as allow@loopback.
	 */
	if (net_is_gateway(n, ip)) {
		ip_parse(ip_is4(ip) ? "127.0.0.1" : "::1", &target);
		pins_add(&n->pins, "host.microsandbox.internal", &target, PINS_MIN_TTL_S, n->now);
	} else if (hostaddr_is_host(&n->host, ip) && !(ip_groups(ip) & IPG_LOOPBACK)) {
		/*
		 * One of the host's own addresses (any interface): a wildcard listener of
		 * the host answers there as on its loopback, so the policy sees the
		 * loopback; rules for loopback (or host.microsandbox.internal) open it.
		 */
		ip_parse(ip_is4(ip) ? "127.0.0.1" : "::1", &target);
		host = true;
	}
	if (!why) {
		v = policy_check(n->cfg.policy, dir, proto, &target, port, &n->pins, n->now);
		if (v.allow)
			return true;
		policy_verdict_describe(n->cfg.policy, dir, &target, &v, rule, sizeof(rule));
		why = rule;
	}
	n->stats.denied++;
	ip_format(ip, addr, sizeof(addr));
	log_rl_burst(LOG_INFO, NET_DENY_LOG_BURST, "network: denied %s %s %s%s%s%s%.0u: %s%s",
		     dir == NET_INGRESS ? "ingress from" : "egress to",
		     proto == NET_TCP	? "tcp"
		     : proto == NET_UDP ? "udp"
					: "icmp",
		     ip_is4(ip) ? "" : "[", addr, ip_is4(ip) ? "" : "]",
		     proto == NET_TCP || proto == NET_UDP ? ":" : "",
		     proto == NET_TCP || proto == NET_UDP ? port : 0,
		     host ? "an address of the host itself, " : "", why);
	return false;
}

/* ARP for the gateway, and neighbour discovery for its IPv6 address. */
static void neighbour(struct net *n, const struct pkt *p)
{
	size_t len = 0;

	if (p->ethertype == ETH_P_ARP) {
		if (p->arp_op == 1 && !memcmp(&p->arp_target, &n->cfg.gw4, sizeof(p->arp_target)))
			len = frame_arp_reply(net_framebuf(n), NET_FRAME_MAX, n->cfg.guest_mac,
					      &p->arp_sender, n->cfg.gw_mac, &n->cfg.gw4);
	} else if (p->icmp_type == 135 && p->l4len >= 24 && !memcmp(p->l4 + 8, n->cfg.gw6.b, 16)) {
		/* A neighbour solicitation for the gateway (from a real address, not DAD). */
		struct ipaddr unspec = { 0 };

		if (memcmp(&p->src, &unspec, sizeof(unspec)) != 0)
			len = frame_neigh_adv(net_framebuf(n), NET_FRAME_MAX, n->cfg.guest_mac,
					      &p->src, n->cfg.gw_mac, &n->cfg.gw6);
	}
	if (len)
		net_emit(n, len);
}

/* One frame from the guest. */
static void frame_in(struct net *n, const uint8_t *f, size_t len)
{
	struct pkt p;

	n->stats.guest_tx_bytes += len;
	if (pkt_parse(f, len, &p) < 0)
		return; /* what we do not understand goes nowhere */
	if (p.ethertype == ETH_P_ARP) {
		neighbour(n, &p);
		return;
	}
	/* Only what the guest sends from its own addresses is forwarded. */
	if (memcmp(&p.src, p.v6 ? &n->cfg.guest6 : &n->cfg.guest4, sizeof(p.src)) != 0) {
		if (p.v6 && p.proto == IPP_ICMPV6)
			neighbour(n, &p); /* solicitations may come from link-local */
		return;
	}
	switch (p.proto) {
	case IPP_TCP:
		tcp_input(n, &p);
		break;
	case IPP_UDP:
		udp_input(n, &p);
		break;
	case IPP_ICMP:
		icmp_input(n, &p);
		break;
	case IPP_ICMPV6:
		if (p.icmp_type == 135)
			neighbour(n, &p);
		else
			icmp_input(n, &p);
		break;
	default:
		break;
	}
}

static void link_read(struct net *n)
{
	const uint8_t *h;

	if (conn_fill(&n->link, LINK_BUDGET) < 0)
		return;
	while (buf_size(&n->link.rx) >= 4) {
		size_t len;

		h = buf_head(&n->link.rx);
		len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
		if (len > NET_FRAME_MAX) {
			/* QEMU never sends this: the stream cannot be trusted any more. */
			log_error_rl("network: oversized frame from the VMM; link dropped");
			conn_close(&n->link);
			return;
		}
		if (buf_size(&n->link.rx) < 4 + len)
			break;
		frame_in(n, h + 4, len);
		conn_consume(&n->link, 4 + len);
	}
}

/*
 * Writes what the link takes; once the queue is below its mark again, flows
 * that held back go on (whoever drained it: with the guest's input paused, a
 * drain nobody noticed would leave the link watched for nothing).
 */
static void link_sync(struct net *n)
{
	bool was_full = n->link_full;

	if (n->link.fd < 0)
		return;
	conn_flush(&n->link);
	n->link_full = conn_tx_full(&n->link);
	if (was_full && !n->link_full)
		tcp_link_drained(n);
	link_rearm(n);
}

void net_handle(struct net *n, uint32_t ref, uint32_t events)
{
	unsigned int type = ref >> 24, idx = ref & 0xffffff;

	n->now = net_now();
	switch (type) {
	case NR_LINK:
		if (events & EPOLLOUT)
			link_sync(n);
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			link_read(n);
		break;
	case NR_TCP:
		if (idx < TCP_MAX_FLOWS)
			tcp_event(n, idx, events);
		break;
	case NR_UDP:
		if (idx < UDP_MAX_FLOWS)
			udp_event(n, idx, events);
		break;
	case NR_ICMP:
		if (idx < ICMP_MAX_FLOWS)
			icmp_event(n, idx, events);
		break;
	case NR_DNS:
		if (idx < DNS_MAX_PENDING)
			dns_event(n, idx, events);
		break;
	case NR_LISTEN:
		if (idx < n->nlisten)
			listen_event(n, idx, events);
		break;
	case NR_HOSTADDR:
		hostaddr_event(&n->host);
		if (n->host.overflow && !n->host_warned) {
			n->host_warned = true;
			log_warn("network: more host addresses than msb tracks (%d), or changes "
				 "missed: addresses beyond them are judged by their ranges",
				 HOSTADDR_MAX);
		}
		break;
	default:
		break;
	}
	/* Whatever happened may have queued frames. */
	link_sync(n);
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

uint64_t net_deadline(const struct net *n)
{
	return earliest(earliest(earliest(tcp_deadline(n), udp_deadline(n)), dns_deadline(n)),
			listen_deadline(n));
}

void net_timer(struct net *n, uint64_t now)
{
	n->now = now;
	tcp_timer(n);
	udp_timer(n);
	dns_timer(n);
	listen_resume(n, false);
	pins_expire(&n->pins, now);
	link_sync(n);
}

void net_stats(const struct net *n, struct net_stats *s)
{
	*s = n->stats;
	s->tcp_flows = n->ntcp;
	s->udp_flows = n->nudp;
	s->fds = 0;
	for (int k = 0; k < NFD_KINDS; k++)
		s->fds += n->fd_used[k];
	s->dns_tcp = 0;
	for (unsigned int i = 0; i < n->tcp_hi; i++)
		if (n->tcp[i].state != TS_FREE && n->tcp[i].dns)
			s->dns_tcp++;
	s->dns_tcp_held = n->dns_tx;
}

/* Binds one published port's listener. Return: 0 or -errno (with @why). */
static int bind_port(struct net *n, const struct net_port *p, char *why, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct listener *l = &n->listen[n->nlisten];
	char addr[64];
	int one = 1, r;

	ip_format(&p->bind, addr, sizeof(addr));
	sl = net_sockaddr(n, &p->bind, p->host_port, &ss);
	/* net_sockaddr maps the gateway: a bind address is never one, use it as is. */
	l->fd = socket(ss.ss_family,
		       (p->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return -errno;
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&ss, sl) < 0 || (!p->udp && listen(l->fd, 128) < 0)) {
		r = -errno;
		snprintf(why, len, "port %s%s%s:%u/%s: %s%s", ip_is4(&p->bind) ? "" : "[", addr,
			 ip_is4(&p->bind) ? "" : "]", p->host_port, p->udp ? "udp" : "tcp",
			 strerror(-r), r == -EADDRINUSE ? " (choose another host port)" : "");
		close(l->fd);
		return r;
	}
	l->port = *p;
	l->nat_next = 0;
	l->ev = 0;
	l->resume_at = 0;
	n->nlisten++;
	return 0;
}

int net_new(const struct net_config *c, int link_fd, struct net **out, char *why, size_t len)
{
	struct net *n = calloc(1, sizeof(*n));
	int r;

	if (!n) {
		close(link_fd);
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	n->cfg = *c;
	if (c->nports > NET_MAX_PORTS) {
		close(link_fd);
		free(n);
		snprintf(why, len, "too many published ports (at most %d)", NET_MAX_PORTS);
		return -E2BIG;
	}
	/* With no ports @ports may be NULL, and memcpy() from NULL is undefined even for 0 bytes.
	 */
	if (c->nports)
		memcpy(n->ports, c->ports, c->nports * sizeof(*c->ports));
	n->cfg.ports = n->ports;
	n->ep = -1;
	n->tcp = calloc(TCP_MAX_FLOWS, sizeof(*n->tcp));
	n->tcp_gen = calloc(TCP_MAX_FLOWS, sizeof(*n->tcp_gen));
	conn_init(&n->link, link_fd, LINK_TX_HWM, LINK_RX_MAX);
	if (!n->tcp || !n->tcp_gen) {
		net_free(n);
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	/*
	 * The flow tables stay zero (untouched pages): a slot's fd is set when it
	 * is taken, and only slots in use are ever closed.
	 */
	for (size_t i = 0; i < TCP_HASH; i++)
		n->tcp_hash[i] = -1;
	n->now = net_now();
	{
		uint64_t seed = 0;

		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
			seed = n->now ^ (uint64_t)(uintptr_t)n;
		pins_init(&n->pins, seed);
	}
	for (size_t i = 0; i < c->nports; i++) {
		r = bind_port(n, &c->ports[i], why, len);
		if (r < 0) {
			net_free(n);
			return r;
		}
	}
	/* Before confinement: the network process cannot open this socket later. */
	if (hostaddr_open(&n->host) < 0)
		log_warn("network: the host's own addresses cannot be followed (%s): only those "
			 "known now count as the host",
			 strerror(errno));
	/* Before confinement too: the CA, the host's trusted CAs, OpenSSL's own set-up. */
	if (c->tls && (c->tls->intercept_all || c->tls->nsecrets)) {
		r = tls_global_new(c->tls, &n->tls, why, len);
		if (r < 0) {
			net_free(n);
			return r;
		}
	}
	fd_budgets(n);
	n->dns_tx_max = DNS_TCP_TX_TOTAL;
	*out = n;
	return 0;
}

int net_watch(struct net *n, int ep, uint32_t kind)
{
	n->ep = ep;
	n->kind = kind;
	link_rearm(n);
	for (size_t i = 0; i < n->nlisten; i++) {
		n->listen[i].ev = 0;
		if (!n->listen[i].resume_at)
			net_watch_fd(n, n->listen[i].fd, NET_REF(NR_LISTEN, i), EPOLLIN,
				     &n->listen[i].ev);
	}
	if (n->host.fd >= 0) {
		uint32_t cur = 0;

		net_watch_fd(n, n->host.fd, NET_REF(NR_HOSTADDR, 0), EPOLLIN, &cur);
	}
	return 0;
}

void net_free(struct net *n)
{
	if (!n)
		return;
	if (n->tcp)
		tcp_free_all(n);
	udp_free_all(n);
	dns_free_all(n);
	for (size_t i = 0; i < n->nlisten; i++)
		close(n->listen[i].fd);
	conn_close(&n->link);
	hostaddr_close(&n->host);
	pins_free(&n->pins);
	tls_global_free(n->tls);
	free(n->tcp);
	free(n->tcp_gen);
	free(n);
}
