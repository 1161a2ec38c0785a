// SPDX-License-Identifier: Apache-2.0
/*
 * UDP flows, ICMP echo and published ports.
 *
 * DOC: Theory of Operation
 * A guest datagram to a new (port, remote) pair opens a flow if the policy
 * allows the remote: a host UDP socket connect()ed to it, which also only
 * lets that remote's answers in. Datagrams to port 53 are not sent anywhere:
 * our resolver answers them (dnsfwd.c). Echo requests go through the host's
 * unprivileged ping sockets (where net.ipv4.ping_group_range allows them;
 * elsewhere pings are dropped and that is logged once); the gateway answers
 * its own pings. Published ports are host listeners: a TCP connection
 * becomes a connection to the guest (tcp_inbound()), a UDP peer a flow whose
 * answers go back to that peer. Idle flows expire.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/stack.h"
#include "net/tls.h"
#include "util/log.h"

#define UDP_READ_BUDGET 64 /* datagrams per event */

/* A datagram from the host that the guest's full link cannot take. */
static void drop(struct net *n)
{
	n->stats.dropped++;
	log_warn_rl("network: the guest is not taking its frames: datagrams from the host "
		    "dropped (%llu so far)",
		    (unsigned long long)n->stats.dropped);
}

static void udp_close(struct net *n, struct udp_flow *u)
{
	if (u->fd >= 0 && !u->inbound) {
		epoll_ctl(n->ep, EPOLL_CTL_DEL, u->fd, NULL);
		close(u->fd);
		net_fd_closed(n, NFD_UDP);
	}
	if (u->inbound)
		nat_release(n, u->e.remote_port);
	memset(u, 0, sizeof(*u));
	u->fd = -1;
	n->nudp--;
}

static struct udp_flow *udp_lookup(struct net *n, const struct pkt *p)
{
	for (unsigned int i = 0; i < UDP_MAX_FLOWS; i++) {
		struct udp_flow *u = &n->udp[i];

		if (u->used && u->e.guest_port == p->sport && u->e.remote_port == p->dport &&
		    !memcmp(&u->e.remote, &p->dst, sizeof(p->dst)) &&
		    !memcmp(&u->e.guest, &p->src, sizeof(p->src)))
			return u;
	}
	return NULL;
}

static struct udp_flow *udp_new(struct net *n)
{
	for (unsigned int i = 0; i < UDP_MAX_FLOWS; i++) {
		if (!n->udp[i].used) {
			memset(&n->udp[i], 0, sizeof(n->udp[i]));
			n->udp[i].used = true;
			n->udp[i].fd = -1;
			n->nudp++;
			return &n->udp[i];
		}
	}
	return NULL;
}

void udp_input(struct net *n, const struct pkt *p)
{
	struct udp_flow *u;

	/* DNS, to the gateway or to any resolver: answered by ours, under the policy. */
	if (p->dport == 53) {
		struct frame_ends e;

		net_ends_from(n, p, &e);
		dns_query(n, p->data, p->dlen, &e, -1, 0);
		return;
	}
	u = udp_lookup(n, p);
	if (!u) {
		struct sockaddr_storage ss;
		socklen_t sl;

		if (!net_conn_room(n) || !net_allowed(n, NET_EGRESS, NET_UDP, &p->dst, p->dport) ||
		    !net_fd_room(n, NFD_UDP))
			return;
		/*
		 * QUIC to an intercept port would carry past the interception: refused,
		 * so that clients fall back to TCP at once (--no-block-quic lets it be).
		 */
		if (n->tls && n->cfg.tls->block_quic && tls_is_port(n->cfg.tls, p->dport)) {
			log_rl(LOG_INFO,
			       "net: UDP to port %u refused: QUIC past TLS interception "
			       "(--no-block-quic allows it)",
			       p->dport);
			n->stats.denied++;
			return;
		}
		u = udp_new(n);
		if (!u)
			return;
		net_ends_from(n, p, &u->e);
		sl = net_sockaddr(n, &p->dst, p->dport, &ss);
		u->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (u->fd >= 0)
			net_fd_opened(n, NFD_UDP);
		if (u->fd < 0 || connect(u->fd, (struct sockaddr *)&ss, sl) < 0) {
			udp_close(n, u);
			return;
		}
		{
			uint32_t cur = 0;

			net_watch_fd(n, u->fd, NET_REF(NR_UDP, u - n->udp), EPOLLIN, &cur);
		}
	}
	u->idle_at = n->now + UDP_IDLE_MS;
	if (u->inbound) {
		/* A published UDP port's answer: back to the host peer. */
		sendto(n->listen[u->listener].fd, p->data, p->dlen, MSG_DONTWAIT,
		       (struct sockaddr *)&u->peer, u->peer_len);
		return;
	}
	send(u->fd, p->data, p->dlen, MSG_DONTWAIT);
}

void udp_event(struct net *n, unsigned int slot, uint32_t events)
{
	struct udp_flow *u = &n->udp[slot];

	(void)events;
	if (!u->used || u->inbound)
		return;
	for (int k = 0; k < UDP_READ_BUDGET; k++) {
		uint8_t *f = net_framebuf(n);
		/* Receive straight into the frame's payload: headers go in front. */
		size_t hdr = ETH_HDR + (ip_is4(&u->e.guest) ? 20 : 40) + 8;
		ssize_t r = recv(u->fd, f + hdr, NET_FRAME_MAX - hdr, MSG_DONTWAIT);
		size_t len;

		if (r < 0)
			break;
		if (n->link_full) {
			/* Dropped, as by a full NIC: unread, it would wake us again and again. */
			drop(n);
			continue;
		}
		len = frame_udp(f, NET_FRAME_MAX, &u->e, f + hdr, (size_t)r);
		if (len)
			net_emit(n, len);
		u->idle_at = n->now + UDP_IDLE_MS;
	}
}

/* --- ICMP echo ---------------------------------------------------------------- */

void icmp_input(struct net *n, const struct pkt *p)
{
	bool v4 = !p->v6;
	struct frame_ends e;
	struct icmp_flow *c = NULL;
	uint8_t req[8 + 1500];
	size_t dlen = p->dlen < sizeof(req) - 8 ? p->dlen : sizeof(req) - 8;

	if (p->icmp_type != (v4 ? 8 : 128) || p->icmp_code != 0)
		return; /* only echo requests leave the guest */
	net_ends_from(n, p, &e);
	if (net_is_gateway(n, &p->dst)) {
		size_t len = frame_echo_reply(net_framebuf(n), NET_FRAME_MAX, &e, p->icmp_id,
					      p->icmp_seq, p->data, p->dlen);

		if (len)
			net_emit(n, len);
		return;
	}
	for (unsigned int i = 0; i < ICMP_MAX_FLOWS && !c; i++)
		if (n->icmp[i].used && n->icmp[i].guest_id == p->icmp_id &&
		    !memcmp(&n->icmp[i].e.remote, &p->dst, sizeof(p->dst)))
			c = &n->icmp[i];
	if (!c) {
		struct sockaddr_storage ss;
		socklen_t sl;

		if (!net_allowed(n, NET_EGRESS, v4 ? NET_ICMP4 : NET_ICMP6, &p->dst, 0) ||
		    !net_fd_room(n, NFD_ICMP))
			return;
		for (unsigned int i = 0; i < ICMP_MAX_FLOWS && !c; i++)
			if (!n->icmp[i].used)
				c = &n->icmp[i];
		if (!c)
			return;
		sl = net_sockaddr(n, &p->dst, 0, &ss);
		c->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);
		if (c->fd < 0) {
			log_warn_rl("network: ping sockets are not allowed for this user here "
				    "(net.ipv4.ping_group_range): %s",
				    strerror(errno));
			c->fd = -1;
			return;
		}
		if (connect(c->fd, (struct sockaddr *)&ss, sl) < 0) {
			close(c->fd);
			c->fd = -1;
			return;
		}
		net_fd_opened(n, NFD_ICMP);
		c->used = true;
		n->nicmp++;
		c->e = e;
		c->guest_id = p->icmp_id;
		{
			uint32_t cur = 0;

			net_watch_fd(n, c->fd, NET_REF(NR_ICMP, c - n->icmp), EPOLLIN, &cur);
		}
	}
	c->idle_at = n->now + ICMP_IDLE_MS;
	/* The kernel sets the identifier (the socket's) and the checksum. */
	req[0] = v4 ? 8 : 128;
	req[1] = 0;
	req[2] = req[3] = req[4] = req[5] = 0;
	req[6] = (uint8_t)(p->icmp_seq >> 8);
	req[7] = (uint8_t)p->icmp_seq;
	memcpy(req + 8, p->data, dlen);
	send(c->fd, req, 8 + dlen, MSG_DONTWAIT);
}

void icmp_event(struct net *n, unsigned int slot, uint32_t events)
{
	struct icmp_flow *c = &n->icmp[slot];
	uint8_t rep[8 + 1500];

	(void)events;
	if (!c->used)
		return;
	for (int k = 0; k < UDP_READ_BUDGET; k++) {
		ssize_t r = recv(c->fd, rep, sizeof(rep), MSG_DONTWAIT);
		size_t len;

		if (r < 0)
			break;
		if (r < 8 || n->link_full) {
			drop(n);
			continue;
		}
		len = frame_echo_reply(net_framebuf(n), NET_FRAME_MAX, &c->e, c->guest_id,
				       (uint16_t)(rep[6] << 8 | rep[7]), rep + 8, (size_t)r - 8);
		if (len)
			net_emit(n, len);
	}
}

/* --- published ports ------------------------------------------------------------ */

/*
 * A gateway port for a new flow of listener @idx, held until nat_release(): each
 * listener has its own range, and within it a port is never given to two live
 * flows (a guest's answer is matched to its peer by this port). Return: the port,
 * or 0 when every port of the range is held.
 */
static uint16_t nat_port(struct listener *l, unsigned int idx)
{
	for (unsigned int k = 0; k < NAT_PORTS_PER_LISTENER; k++) {
		unsigned int i = (l->nat_next + k) % NAT_PORTS_PER_LISTENER;

		if (l->nat_used[i / 64] & (UINT64_C(1) << (i % 64)))
			continue;
		l->nat_used[i / 64] |= UINT64_C(1) << (i % 64);
		l->nat_next = (uint16_t)((i + 1) % NAT_PORTS_PER_LISTENER);
		return (uint16_t)(NAT_PORT_BASE + idx * NAT_PORTS_PER_LISTENER + i);
	}
	return 0;
}

void nat_release(struct net *n, uint16_t port)
{
	unsigned int off, idx, i;

	if (port < NAT_PORT_BASE)
		return;
	off = port - NAT_PORT_BASE;
	idx = off / NAT_PORTS_PER_LISTENER;
	i = off % NAT_PORTS_PER_LISTENER;
	if (idx < n->nlisten)
		n->listen[idx].nat_used[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

/* Every gateway port of listener @idx is held by a UDP peer: the one idle longest goes. */
static void udp_evict_lru(struct net *n, unsigned int idx)
{
	struct udp_flow *old = NULL;

	for (unsigned int i = 0; i < UDP_MAX_FLOWS; i++) {
		struct udp_flow *u = &n->udp[i];

		if (u->used && u->inbound && u->listener == (int)idx &&
		    (!old || u->idle_at < old->idle_at))
			old = u;
	}
	if (old)
		udp_close(n, old);
}

static bool peer_allowed(struct net *n, const struct sockaddr_storage *ss, unsigned int proto,
			 uint16_t guest_port)
{
	struct ipaddr ip;

	if (ss->ss_family == AF_INET)
		ip = ip_from4_bytes((const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr);
	else
		ip = ip_from6((const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return net_allowed(n, NET_INGRESS, proto, &ip, guest_port);
}

/*
 * A listener whose accept() cannot make progress (no descriptor: EMFILE,
 * ENFILE; no memory) rests: unwatched, a level-triggered listener with a
 * backlog would otherwise wake the loop at once, again and again. It is
 * watched again after LISTEN_BACKOFF_MS, or as soon as a flow frees a
 * descriptor; the connections wait in the kernel's backlog meanwhile.
 */
static void listen_rest(struct net *n, unsigned int idx, int err)
{
	struct listener *l = &n->listen[idx];

	if (!l->resume_at)
		n->nresting++;
	l->resume_at = n->now + LISTEN_BACKOFF_MS;
	net_watch_fd(n, l->fd, NET_REF(NR_LISTEN, idx), 0, &l->ev);
	log_warn_rl("network: port %u: cannot accept connections: %s; retrying", l->port.host_port,
		    strerror(err));
}

void listen_resume(struct net *n, bool all)
{
	for (size_t i = 0; i < n->nlisten && n->nresting; i++) {
		struct listener *l = &n->listen[i];

		if (!l->resume_at || (!all && n->now < l->resume_at))
			continue;
		l->resume_at = 0;
		n->nresting--;
		net_watch_fd(n, l->fd, NET_REF(NR_LISTEN, i), EPOLLIN, &l->ev);
	}
}

uint64_t listen_deadline(const struct net *n)
{
	uint64_t d = 0;

	for (size_t i = 0; i < n->nlisten && n->nresting; i++)
		if (n->listen[i].resume_at && (!d || n->listen[i].resume_at < d))
			d = n->listen[i].resume_at;
	return d;
}

static void accept_tcp(struct net *n, unsigned int idx)
{
	struct listener *l = &n->listen[idx];

	for (int k = 0; k < 64; k++) {
		struct sockaddr_storage ss = { 0 };
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		uint16_t np = 0;

		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue; /* that connection is gone; the next one may be there */
		if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			listen_rest(n, idx, errno);
		if (fd < 0)
			return;
		/*
		 * Over the limit, denied, out of gateway ports or out of TCP's descriptors:
		 * refused at once, not queued.
		 */
		if (!net_conn_room(n) || !peer_allowed(n, &ss, NET_TCP, l->port.guest_port) ||
		    !net_fd_room(n, NFD_TCP) || !(np = nat_port(l, idx)) ||
		    tcp_inbound(n, fd, &l->port, np) < 0) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			if (np)
				nat_release(n, np);
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(fd);
		}
	}
}

static void recv_udp_port(struct net *n, unsigned int idx)
{
	struct listener *l = &n->listen[idx];

	for (int k = 0; k < UDP_READ_BUDGET; k++) {
		struct sockaddr_storage ss = { 0 };
		socklen_t sl = sizeof(ss);
		uint8_t *f = net_framebuf(n);
		bool v6 = !ip_is4(&l->port.bind);
		size_t hdr = ETH_HDR + (v6 ? 40 : 20) + 8, len;
		ssize_t r = recvfrom(l->fd, f + hdr, NET_FRAME_MAX - hdr, MSG_DONTWAIT,
				     (struct sockaddr *)&ss, &sl);
		struct udp_flow *u = NULL;

		if (r < 0)
			return;
		if (n->link_full) {
			drop(n);
			continue;
		}
		for (unsigned int i = 0; i < UDP_MAX_FLOWS && !u; i++)
			if (n->udp[i].used && n->udp[i].inbound && n->udp[i].listener == (int)idx &&
			    n->udp[i].peer_len == sl && !memcmp(&n->udp[i].peer, &ss, sl))
				u = &n->udp[i];
		if (!u) {
			uint16_t np;

			if (!net_conn_room(n) || !peer_allowed(n, &ss, NET_UDP, l->port.guest_port))
				continue;
			np = nat_port(l, idx);
			if (!np) {
				udp_evict_lru(n, idx);
				np = nat_port(l, idx);
			}
			u = np ? udp_new(n) : NULL;
			if (!u) {
				if (np)
					nat_release(n, np);
				continue;
			}
			u->inbound = true;
			u->listener = (int)idx;
			u->fd = l->fd;
			u->peer = ss;
			u->peer_len = sl;
			memcpy(u->e.guest_mac, n->cfg.guest_mac, 6);
			memcpy(u->e.gw_mac, n->cfg.gw_mac, 6);
			u->e.guest = v6 ? n->cfg.guest6 : n->cfg.guest4;
			u->e.remote = v6 ? n->cfg.gw6 : n->cfg.gw4;
			u->e.guest_port = l->port.guest_port;
			u->e.remote_port = np;
		}
		u->idle_at = n->now + UDP_IDLE_MS;
		len = frame_udp(f, NET_FRAME_MAX, &u->e, f + hdr, (size_t)r);
		if (len)
			net_emit(n, len);
	}
}

void listen_event(struct net *n, unsigned int idx, uint32_t events)
{
	(void)events;
	if (n->listen[idx].port.udp)
		recv_udp_port(n, idx);
	else
		accept_tcp(n, idx);
}

void udp_timer(struct net *n)
{
	for (unsigned int i = 0, seen = 0, all = n->nudp; i < UDP_MAX_FLOWS && seen < all; i++) {
		if (!n->udp[i].used)
			continue;
		seen++;
		if (n->now >= n->udp[i].idle_at)
			udp_close(n, &n->udp[i]);
	}
	for (unsigned int i = 0; i < ICMP_MAX_FLOWS && n->nicmp; i++) {
		struct icmp_flow *c = &n->icmp[i];

		if (c->used && n->now >= c->idle_at) {
			epoll_ctl(n->ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			memset(c, 0, sizeof(*c));
			c->fd = -1;
			n->nicmp--;
			net_fd_closed(n, NFD_ICMP);
		}
	}
}

uint64_t udp_deadline(const struct net *n)
{
	uint64_t d = 0;

	/* Called after every event: stop once every flow in use has been seen. */
	for (unsigned int i = 0, seen = 0; i < UDP_MAX_FLOWS && seen < n->nudp; i++) {
		if (!n->udp[i].used)
			continue;
		seen++;
		if (!d || n->udp[i].idle_at < d)
			d = n->udp[i].idle_at;
	}
	for (unsigned int i = 0, seen = 0; i < ICMP_MAX_FLOWS && seen < n->nicmp; i++) {
		if (!n->icmp[i].used)
			continue;
		seen++;
		if (!d || n->icmp[i].idle_at < d)
			d = n->icmp[i].idle_at;
	}
	return d;
}

void udp_free_all(struct net *n)
{
	for (unsigned int i = 0; i < UDP_MAX_FLOWS; i++)
		if (n->udp[i].used)
			udp_close(n, &n->udp[i]);
	for (unsigned int i = 0; i < ICMP_MAX_FLOWS; i++)
		if (n->icmp[i].used) {
			close(n->icmp[i].fd);
			n->fd_used[NFD_ICMP]--;
		}
	n->nicmp = 0;
}
