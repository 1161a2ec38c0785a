/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the network stack shared by stack.c, tcp.c, udp.c and dnsfwd.c. */
#ifndef MSB_NET_STACK_H
#define MSB_NET_STACK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/frame.h"
#include "net/hostaddr.h"
#include "net/net.h"
#include "net/pins.h"
#include "util/buf.h"
#include "util/conn.h"

#define TCP_MAX_FLOWS	4096
#define TCP_HASH	8192
#define UDP_MAX_FLOWS	1024
#define ICMP_MAX_FLOWS	64
#define DNS_MAX_PENDING 256
#define TCP_BUF		((size_t)256 << 10) /* per direction, per connection */
#define TCP_WSCALE	7		    /* ours: 256 KiB fits in 16 bits of 128-byte units */
#define TCP_RTO_MIN_MS	300
#define TCP_RTO_MAX_MS	8000
#define TCP_MAX_RETRIES 10
#define UDP_IDLE_MS	60000
#define ICMP_IDLE_MS	10000
/*
 * DNS over TCP to the gateway holds no host socket, only what the guest makes
 * us keep: its unread queries (at most DNS_TCP_RX bytes, and no message over
 * DNS_TCP_QUERY_MAX), at most DNS_TCP_OWED queries owed an answer (asked
 * upstream, or answered and not yet acknowledged), at most DNS_TCP_TX_TOTAL
 * answer bytes over all such flows, and nothing at all once it made no
 * progress for DNS_TCP_IDLE_MS.
 */
#define DNS_TCP_QUERY_MAX (512 + 4096)
#define DNS_TCP_RX	  ((size_t)8 << 10)
#define DNS_TCP_OWED	  2
#define DNS_TCP_TX_TOTAL  ((size_t)2 << 20)
#define DNS_TCP_IDLE_MS	  30000
/*
 * Host descriptors: the flows of each kind get a share of the soft
 * RLIMIT_NOFILE left after NET_FD_RESERVE for everything else the process
 * holds (the link, epoll, listeners, logs, the supervisor's own), in
 * sixteenths: TCP 8, UDP 4, DNS upstream 2, ping 1 (the last one stays
 * free), each capped by its table and at least 1.
 */
#define NET_FD_RESERVE 128
/* A listener whose accept() failed for want of descriptors rests this long (or until one frees). */
#define LISTEN_BACKOFF_MS 250
/* Ports the stack uses as the gateway's side of published-port connections:
 * each listener its own range of NAT_PORTS_PER_LISTENER. */
#define NAT_PORT_BASE	       40000
#define NAT_PORTS_PER_LISTENER 256

/* What the low 32 bits of an epoll payload name: a type and a slot. */
enum net_ref { NR_LINK = 1, NR_TCP, NR_UDP, NR_ICMP, NR_DNS, NR_LISTEN, NR_HOSTADDR };
#define NET_REF(t, i) ((uint32_t)(t) << 24 | (uint32_t)(i))

/* The kinds of flow that hold host descriptors, each within its own budget. */
enum net_fd_kind { NFD_TCP, NFD_UDP, NFD_DNS, NFD_ICMP, NFD_KINDS };

enum tcp_state {
	TS_FREE = 0,
	TS_CONNECTING, /* guest's SYN in, host connect() in progress */
	TS_SYN_RCVD,   /* our SYN-ACK out, waiting for the guest's ACK */
	TS_SYN_SENT,   /* published port: our SYN to the guest out */
	TS_ESTABLISHED,
};

struct ix;
struct tls_global;

struct tcp_flow {
	enum tcp_state state;
	int fd;	      /* the host socket, -1 for DNS over TCP to the gateway */
	uint32_t ev;  /* epoll interest registered */
	bool dns;     /* the guest talks DNS to us: no host socket */
	bool inbound; /* a published port's connection */
	struct frame_ends e;
	uint32_t g_next;       /* the next sequence number expected from the guest */
	uint32_t h_isn, h_una; /* ours: first, oldest not acknowledged by the guest */
	uint32_t h_nxt;	       /* ours: next to send */
	uint32_t g_wnd;	       /* the guest's window, in bytes */
	int g_wscale;	       /* -1: the guest did not offer scaling (then neither do we) */
	uint16_t g_mss;
	struct buf g2h, h2g; /* guest -> host not yet written; host -> guest not yet acknowledged */
	bool guest_fin;	     /* the guest sent FIN (counted in g_next) */
	bool wr_shut;	     /* shutdown(SHUT_WR) done */
	bool host_eof;	     /* the host side ended its stream */
	bool fin_sent, fin_acked;
	uint64_t rto_at, rto_ms, idle_at;
	unsigned int retries;
	uint32_t last_wnd_adv; /* window last advertised, to know when an update is due */
	/* DNS over TCP: the end (sequence number) of each answer not yet acknowledged. */
	uint32_t dns_ans_end[DNS_TCP_OWED];
	unsigned int dns_nans;
	bool dns_busy; /* dns_stream() runs: answers come back inside it */
	bool dns_over; /* an answer did not fit the bounds: reset once dns_stream() is done */
	int32_t hnext; /* the next flow in this flow's hash bucket, -1 at the end */
	struct ix *ix; /* TLS interception or the placeholder scan (tls.c), or NULL */
};

struct udp_flow {
	bool used;
	int fd;	      /* connected to the remote; for published ports, the listener's */
	bool inbound; /* reply path of a published UDP port */
	int listener; /* for inbound: index of the listener */
	struct sockaddr_storage peer; /* for inbound: the host peer */
	socklen_t peer_len;
	struct frame_ends e;
	uint64_t idle_at;
};

struct icmp_flow {
	bool used;
	int fd;
	struct frame_ends e;
	uint16_t guest_id;
	uint64_t idle_at;
};

struct listener {
	int fd;
	struct net_port port;
	uint16_t nat_next;
	uint32_t ev;	    /* epoll interest registered */
	uint64_t resume_at; /* accept() failed for want of descriptors: rests until then */
	/* Which of this listener's gateway ports a live flow holds: never two flows on one. */
	uint64_t nat_used[NAT_PORTS_PER_LISTENER / 64];
};

struct dns_pending {
	bool used;
	int fd; /* to the upstream nameserver */
	bool upstream_tcp;
	uint32_t ev; /* epoll interest registered for @fd */
	unsigned int server;
	uint64_t deadline;     /* of the try with @server */
	uint64_t deadline_all; /* of the query (--dns-query-timeout-ms) */
	uint16_t guest_id, up_id;
	/* where the answer goes: a UDP datagram from @e, or TCP flow @tcp (with @tcp_gen). */
	bool via_tcp;
	struct frame_ends e;
	int tcp;
	uint32_t tcp_gen;
	uint8_t query[512 + 4096]; /* the guest's query, for another server */
	size_t qlen;
	struct buf rx; /* upstream TCP answer being assembled */
	size_t tx_off; /* upstream TCP: bytes of the framed query written */
	char name[256];
};

struct net {
	struct net_config cfg;
	struct net_port ports[NET_MAX_PORTS];
	struct conn link;
	int ep;
	uint32_t kind;
	bool link_full;	  /* frames for the guest wait: host sockets are not read meanwhile */
	bool host_warned; /* the host-address overflow was logged */
	struct tcp_flow *tcp;
	uint32_t *tcp_gen;
	int32_t tcp_hash[TCP_HASH];
	unsigned int ntcp, tcp_hi;
	struct udp_flow udp[UDP_MAX_FLOWS];
	unsigned int nudp;
	struct icmp_flow icmp[ICMP_MAX_FLOWS];
	unsigned int nicmp;
	struct listener listen[NET_MAX_PORTS];
	size_t nlisten;
	struct dns_pending dns[DNS_MAX_PENDING];
	unsigned int ndns; /* slots in use: scans of the tables stop once they have seen them all */
	struct pins pins;
	struct hostaddrs host; /* the host's own addresses: the host, never public */
	uint8_t frame[NET_FRAME_MAX + 4];
	struct net_stats stats;
	uint64_t now;
	unsigned int fd_max[NFD_KINDS], fd_used[NFD_KINDS]; /* host descriptors, per kind */
	unsigned int nresting;				    /* listeners resting */
	size_t dns_tx, dns_tx_max; /* answer bytes DNS-over-TCP flows hold; the bound */
	struct tls_global *tls;	   /* interception and secrets, or NULL */
};

/* stack.c */
uint64_t net_now(void);
/* Queues @n bytes of frame (in @f, which has 4 bytes of room before it) for the guest. */
void net_emit(struct net *n, size_t len);
/* The buffer a builder writes a frame into (after the 4-byte length). */
static inline uint8_t *net_framebuf(struct net *n)
{
	return n->frame + 4;
}
/* Registers or updates @fd's epoll interest. */
void net_watch_fd(struct net *n, int fd, uint32_t ref, uint32_t want, uint32_t *cur);
/* Policy for a new flow; logs (rate-limited) what is denied. Return: true if allowed. */
bool net_allowed(struct net *n, unsigned int dir, unsigned int proto, const struct ipaddr *ip,
		 uint16_t port);
/* The guest's side of a flow from frame @p (guest -> remote). */
void net_ends_from(const struct net *n, const struct pkt *p, struct frame_ends *e);
/* Is @ip the gateway (v4 or v6)? */
bool net_is_gateway(const struct net *n, const struct ipaddr *ip);
/* A host sockaddr for @ip:@port; the gateway means the host's loopback. */
socklen_t net_sockaddr(const struct net *n, const struct ipaddr *ip, uint16_t port,
		       struct sockaddr_storage *ss);
/* How many connections may still be opened (--max-connections). */
bool net_conn_room(const struct net *n);
/*
 * Is there a descriptor left in @k's budget? If not, the new flow is refused
 * and that is counted and logged (rate-limited).
 */
bool net_fd_room(struct net *n, enum net_fd_kind k);
/* A host descriptor of kind @k was opened, or closed (which may wake a resting listener). */
void net_fd_opened(struct net *n, enum net_fd_kind k);
void net_fd_closed(struct net *n, enum net_fd_kind k);

/* tcp.c */
void tcp_input(struct net *n, const struct pkt *p);
void tcp_event(struct net *n, unsigned int slot, uint32_t events);
void tcp_timer(struct net *n);
void tcp_link_drained(struct net *n);
/* The host socket into f->h2g, up to TCP_BUF (host_eof at its end). Return: 0, or -1 on an error.
 */
int tcp_recv_host(struct tcp_flow *f);
int tcp_inbound(struct net *n, int fd, const struct net_port *port, uint16_t nat_port);
/* DNS over TCP: @len bytes of answer for TCP flow @slot of generation @gen. */
void tcp_dns_answer(struct net *n, int slot, uint32_t gen, const uint8_t *msg, size_t len);
/* DNS over TCP: a query of flow @slot (generation @gen) is no longer pending. */
void tcp_dns_done(struct net *n, int slot, uint32_t gen);
uint64_t tcp_deadline(const struct net *n);
void tcp_free_all(struct net *n);

/* udp.c */
void udp_input(struct net *n, const struct pkt *p);
void udp_event(struct net *n, unsigned int slot, uint32_t events);
void icmp_input(struct net *n, const struct pkt *p);
void icmp_event(struct net *n, unsigned int slot, uint32_t events);
void listen_event(struct net *n, unsigned int idx, uint32_t events);
/* Listeners that rested for want of descriptors are watched again (all, or those due). */
void listen_resume(struct net *n, bool all);
uint64_t listen_deadline(const struct net *n);
/* A published port's flow ended: its gateway port @port is free again. */
void nat_release(struct net *n, uint16_t port);
void udp_timer(struct net *n);
uint64_t udp_deadline(const struct net *n);
void udp_free_all(struct net *n);

/* dnsfwd.c */
/* A query from the guest, by UDP (reply through @e) or by TCP flow @tcp (gen @gen). */
void dns_query(struct net *n, const uint8_t *q, size_t len, const struct frame_ends *e, int tcp,
	       uint32_t gen);
void dns_event(struct net *n, unsigned int slot, uint32_t events);
/* How many queries of TCP flow @tcp (generation @gen) still wait for an answer. */
unsigned int dns_pending_tcp(const struct net *n, int tcp, uint32_t gen);
void dns_timer(struct net *n);
uint64_t dns_deadline(const struct net *n);
void dns_free_all(struct net *n);

#endif
