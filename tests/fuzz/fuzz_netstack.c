// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the whole network stack: a sequence of guest frames
 * into a stack whose policy denies everything both ways and that has no
 * nameserver and no published port, so that no host socket can ever exist
 * (socket(), connect() and bind() abort in this binary to prove it). What
 * is left to reach is everything the gateway answers itself: ARP, neighbour
 * discovery, ping, DNS over UDP and TCP (a whole TCP machine with no host
 * socket behind it), refusals, timers.
 *
 * Input: records, each a 2-byte big-endian header H and then:
 *   H & 0x8000: no bytes; the clock moves (H & 0x7fff) * 10 ms and the timers run;
 *   else a frame of H & 0x3fff bytes; with H & 0x4000 its TCP acknowledgement
 *   number is taken as an offset from the end of the stack's last segment to
 *   that guest port (the stack's sequence numbers are random, so a fuzzer
 *   could not guess them), so handshakes and data acknowledgements get through.
 * Every frame the stack sends must parse and be addressed to the guest, and
 * net_free() must leave no descriptor or memory behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "net/frame.h"
#include "net/net.h"
#include "net/policy.h"
#include "net/stack.h"

/*
 * These replace libc's for the whole binary: with this configuration, reaching one is the bug.
 * The one exception is the stack's own netlink socket for the host's addresses (hostaddr.c),
 * made once by net_new(): refused here, as on a host without it.
 */
int socket(int domain, int type, int protocol)
{
	(void)type;
	(void)protocol;
	if (domain == AF_NETLINK) {
		errno = EPERM;
		return -1;
	}
	abort();
}

int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	(void)fd;
	(void)addr;
	(void)len;
	abort();
}

int bind(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	(void)fd;
	(void)addr;
	(void)len;
	abort();
}

#define PORTS 16

struct run {
	struct net *n;
	int ep, g;
	uint64_t now;
	uint8_t in[4 + NET_FRAME_MAX];
	size_t inlen;
	/* the end of the stack's last TCP segment, by guest port */
	uint16_t port[PORTS];
	uint32_t end[PORTS];
	unsigned int nports;
	uint32_t last_end;
};

static const uint8_t guest_mac[6] = { 0x02, 0x6d, 0x73, 0x00, 0x00, 0x02 };
static const uint8_t gw_mac[6] = { 0x02, 0x6d, 0x73, 0x00, 0x00, 0x01 };
static struct net_config cfg;
static struct net_policy pol;

static unsigned int be16(const uint8_t *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void setup(void)
{
	char err[256];

	policy_init(&pol);
	CHECK(policy_set_default(&pol, NET_BOTH, false, err, sizeof(err)) == 0);
	CHECK(ip_parse("10.251.0.2", &cfg.guest4) == 0);
	CHECK(ip_parse("10.251.0.1", &cfg.gw4) == 0);
	CHECK(ip_parse("fd6d:7362::2", &cfg.guest6) == 0);
	CHECK(ip_parse("fd6d:7362::1", &cfg.gw6) == 0);
	cfg.prefix4 = 30;
	cfg.prefix6 = 64;
	memcpy(cfg.guest_mac, guest_mac, 6);
	memcpy(cfg.gw_mac, gw_mac, 6);
	cfg.policy = &pol;
	cfg.ndns = 0;
	cfg.nports = 0;
	cfg.dns_timeout_ms = 2000;
	cfg.rebind_protection = true;
}

/* A frame the stack sent: the guest can parse it and it is for the guest. */
static void check_out(struct run *r, const uint8_t *f, size_t len)
{
	struct pkt p;

	CHECK(len >= ETH_HDR && len <= NET_FRAME_MAX);
	CHECK(pkt_parse(f, len, &p) == 0);
	CHECK(!memcmp(p.dst_mac, guest_mac, 6) && !memcmp(p.src_mac, gw_mac, 6));
	if (p.ethertype == ETH_P_ARP) {
		CHECK(p.arp_op == 2 && ip_equal(&p.arp_sender, &cfg.gw4));
		return;
	}
	if (!p.v6)
		CHECK(ip_equal(&p.dst, &cfg.guest4));
	else if (!(p.proto == IPP_ICMPV6 && p.icmp_type == 136))
		CHECK(ip_equal(&p.dst, &cfg.guest6));
	if (p.proto == IPP_TCP) {
		uint32_t end =
			p.seq + (uint32_t)p.dlen + !!(p.flags & TCP_SYN) + !!(p.flags & TCP_FIN);
		unsigned int i;

		for (i = 0; i < r->nports && r->port[i] != p.dport; i++)
			;
		if (i == r->nports && r->nports < PORTS)
			r->port[r->nports++] = p.dport;
		if (i < PORTS)
			r->end[i] = end;
		r->last_end = end;
	}
}

/* Takes every frame the stack queued for the guest. */
static void drain(struct run *r)
{
	for (;;) {
		ssize_t n = read(r->g, r->in + r->inlen, sizeof(r->in) - r->inlen);
		size_t off = 0;

		if (n <= 0)
			return;
		r->inlen += (size_t)n;
		while (r->inlen - off >= 4) {
			size_t len = be32(r->in + off);

			CHECK(len <= NET_FRAME_MAX);
			if (r->inlen - off < 4 + len)
				break;
			check_out(r, r->in + off + 4, len);
			off += 4 + len;
		}
		memmove(r->in, r->in + off, r->inlen - off);
		r->inlen -= off;
	}
}

/* The stack's events, as its epoll reports them, until it has nothing more to do. */
static void events(struct run *r)
{
	for (int round = 0; round < 16; round++) {
		struct epoll_event ev[16];
		int k = epoll_wait(r->ep, ev, 16, 0);

		if (k <= 0)
			break;
		for (int i = 0; i < k; i++)
			net_handle(r->n, (uint32_t)ev[i].data.u64, ev[i].events);
		drain(r);
	}
	drain(r);
}

static void timer(struct run *r, uint64_t ms)
{
	r->now += ms;
	net_timer(r->n, r->now);
	events(r);
}

/* The frame @f (@len bytes, a copy we may change) from the guest. */
static void frame(struct run *r, uint8_t *f, size_t len, bool patch)
{
	uint8_t hdr[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			   (uint8_t)len };
	struct pkt p;

	if (patch && pkt_parse(f, len, &p) == 0 && p.proto == IPP_TCP) {
		uint8_t *t = f + (p.l4 - f); /* p.l4, writable */
		uint32_t base = r->last_end, ack;

		for (unsigned int i = 0; i < r->nports; i++)
			if (r->port[i] == p.sport)
				base = r->end[i];
		ack = base + p.ack;
		t[8] = (uint8_t)(ack >> 24);
		t[9] = (uint8_t)(ack >> 16);
		t[10] = (uint8_t)(ack >> 8);
		t[11] = (uint8_t)ack;
	}
	/* The socket pair has room for any one frame: the stack is drained after each. */
	CHECK(write(r->g, hdr, 4) == 4);
	CHECK(!len || write(r->g, f, len) == (ssize_t)len);
	events(r);
	if (net_deadline(r->n) && net_deadline(r->n) <= r->now)
		timer(r, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static uint8_t f[0x4000];
	static struct run r;
	char why[256];
	int sp[2], probe, fd_mark;

	if (!ready) {
		setup();
		ready = true;
	}
	/*
	 * The lowest free descriptor now and at the end must be the same. Marked
	 * per input: between inputs libFuzzer itself opens some (the pipes to its
	 * symbolizer when it first reports a new function).
	 */
	fd_mark = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(fd_mark >= 0);
	close(fd_mark);
	memset(&r, 0, sizeof(r));
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
	CHECK(fcntl(sp[0], F_SETFL, O_NONBLOCK) == 0 && fcntl(sp[1], F_SETFL, O_NONBLOCK) == 0);
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(r.ep >= 0);
	CHECK(net_new(&cfg, sp[0], &r.n, why, sizeof(why)) == 0);
	r.g = sp[1];
	CHECK(net_watch(r.n, r.ep, 1) == 0);
	r.now = net_now();

	while (size >= 2) {
		unsigned int h = be16(data);
		size_t len = h & 0x3fff;

		data += 2;
		size -= 2;
		if (h & 0x8000) {
			timer(&r, (uint64_t)(h & 0x7fff) * 10);
			continue;
		}
		if (len > size)
			len = size;
		memcpy(f, data, len);
		frame(&r, f, len, h & 0x4000);
		data += len;
		size -= len;
	}
	/* Whatever waits for a timer meets it: retransmissions, give-ups, idle ends. */
	for (int i = 0; i < 24; i++)
		timer(&r, 5000);

	net_free(r.n);
	close(r.g);
	close(r.ep);
	/* Nothing left open: the lowest free descriptor is where it was. */
	probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(probe >= 0);
	close(probe);
	CHECK(probe == fd_mark);
	return 0;
}
