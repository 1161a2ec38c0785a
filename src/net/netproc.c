// SPDX-License-Identifier: Apache-2.0
/*
 * The network process: its configuration, its wire to the supervisor, and its
 * event loop (see netproc.h; confinement is in confine.c).
 *
 * DOC: Theory of Operation
 * The supervisor spawns `msb __net` with two descriptors: the stack's end of
 * the guest's link (QEMU's stream netdev) and a SOCK_SEQPACKET control
 * socket. Everything the process may need from the file system or the
 * environment is done first, while it still can: the configuration arrives
 * as one JSON message (addresses, MACs, nameservers already resolved by the
 * supervisor, the policy, the ports), net_new() binds the published ports
 * and makes its sockets, the epoll instance and the timer exist. Only then
 * does it confine itself (confine.c) and say READY, or ERROR with one line;
 * the supervisor waits for that answer before it boots the VM, so a port in
 * use is still a one-line error before boot.
 *
 * From then on the process owns every host socket a guest flow makes. Its
 * log lines travel to the supervisor as NP_LOG messages (it cannot open
 * runtime.log, nor rotate it), sent without blocking: a supervisor that
 * stops reading loses lines, never stalls the stack. When the control
 * socket ends (the supervisor exited or closed it) the process exits; so it
 * does if the supervisor dies (PR_SET_PDEATHSIG from spawn()). It leaves with
 * _exit(): nothing registered with atexit() runs after confinement.
 */
#define _GNU_SOURCE
#include "net/netproc.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "net/addr.h"
#include "util/cleanup.h"
#include "util/log.h"

#define CONFIG_WAIT_MS 30000 /* the supervisor sends the configuration at once */
#define EVENTS	       64

enum np_kind { NPK_NET = 1, NPK_CTL, NPK_TIMER };

/* --- the wire ---------------------------------------------------------------- */

int np_send(int fd, uint8_t type, const void *data, size_t len)
{
	struct iovec iov[2] = { { .iov_base = &type, .iov_len = 1 },
				{ .iov_base = (void *)data, .iov_len = len } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (len > NP_MSG_MAX - 1)
		return -EMSGSIZE;
	for (;;) {
		ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (r >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int np_recv(int fd, uint8_t *buf, size_t cap, uint8_t *type, size_t *len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	do
		r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	if (m.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	*type = buf[0];
	*len = (size_t)r - 1;
	return 1;
}

/* --- the configuration --------------------------------------------------------- */

static void fmt_mac(const uint8_t m[6], char *out)
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static int parse_mac(const char *s, uint8_t m[6])
{
	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (size_t i = 0; i < 6; i++) {
		char hex[3] = { s[3 * i], s[3 * i + 1], '\0' }, *end;
		unsigned long v = strtoul(hex, &end, 16);

		if (*end || !hex[0] || hex[0] == '-' || hex[0] == '+' ||
		    (i < 5 && s[3 * i + 2] != ':'))
			return -EINVAL;
		m[i] = (uint8_t)v;
	}
	return 0;
}

/* A nameserver's socket address as text: "IP PORT" (a space: IPv6 has colons). */
static json_t *fmt_ns(const struct sockaddr_storage *ss)
{
	struct ipaddr ip;
	uint16_t port;
	char a[IP_STRLEN], t[IP_STRLEN + 8];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		ip = ip_from4_bytes((const uint8_t *)&s4->sin_addr);
		port = ntohs(s4->sin_port);
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		ip = ip_from6(s6->sin6_addr.s6_addr);
		port = ntohs(s6->sin6_port);
	}
	ip_format(&ip, a, sizeof(a));
	snprintf(t, sizeof(t), "%s %u", a, port);
	return json_string(t);
}

static int parse_ns(const char *s, struct sockaddr_storage *ss)
{
	char a[IP_STRLEN + 8], *end;
	unsigned long port;
	struct ipaddr ip;
	char *sp;

	if (!s || strlen(s) >= sizeof(a))
		return -EINVAL;
	memcpy(a, s, strlen(s) + 1);
	sp = strchr(a, ' ');
	if (!sp || sp[1] < '1' || sp[1] > '9')
		return -EINVAL;
	port = strtoul(sp + 1, &end, 10);
	if (*end || port > 65535)
		return -EINVAL;
	*sp = '\0';
	if (ip_parse(a, &ip) < 0)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (ip_is4(&ip)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		memcpy(&s4->sin_addr, ip.b + 12, 4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		memcpy(s6->sin6_addr.s6_addr, ip.b, 16);
	}
	return 0;
}

char *netconf_to_json(const struct net_config *c, uid_t uid, gid_t gid)
{
	char g4[IP_STRLEN], w4[IP_STRLEN], g6[IP_STRLEN], w6[IP_STRLEN], gm[18], wm[18];
	json_t *ports = json_array(), *dns = json_array(), *o;
	char *text;

	for (size_t i = 0; ports && i < c->nports; i++) {
		char b[IP_STRLEN];

		ip_format(&c->ports[i].bind, b, sizeof(b));
		json_array_append_new(ports,
				      json_pack("{s:s, s:i, s:i, s:b}", "bind", b, "host_port",
						c->ports[i].host_port, "guest_port",
						c->ports[i].guest_port, "udp", c->ports[i].udp));
	}
	for (size_t i = 0; dns && i < c->ndns; i++)
		json_array_append_new(dns, fmt_ns(&c->dns[i]));
	ip_format(&c->guest4, g4, sizeof(g4));
	ip_format(&c->gw4, w4, sizeof(w4));
	ip_format(&c->guest6, g6, sizeof(g6));
	ip_format(&c->gw6, w6, sizeof(w6));
	fmt_mac(c->guest_mac, gm);
	fmt_mac(c->gw_mac, wm);
	o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:s, s:o, s:o, s:I, s:b, s:I, s:o, "
		      "s:I, s:I}",
		      "guest4", g4, "gw4", w4, "prefix4", (int)c->prefix4, "guest6", g6, "gw6", w6,
		      "prefix6", (int)c->prefix6, "guest_mac", gm, "gw_mac", wm, "policy",
		      policy_to_json(c->policy), "dns", dns, "dns_timeout_ms",
		      (json_int_t)c->dns_timeout_ms, "rebind_protection", c->rebind_protection,
		      "max_connections", (json_int_t)c->max_connections, "ports", ports, "uid",
		      (json_int_t)uid, "gid", (json_int_t)gid);
	if (!o)
		return NULL;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static int get_ip(const json_t *o, const char *key, struct ipaddr *ip)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? ip_parse(s, ip) : -EINVAL;
}

static int get_uint(const json_t *o, const char *key, json_int_t max, json_int_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return -EINVAL;
	*out = json_integer_value(v);
	return 0;
}

int netconf_from_json(const char *text, struct netconf *nc, char *why, size_t len)
{
	json_error_t je;
	json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je), *v;
	struct net_config *c = &nc->cfg;
	json_int_t p4, p6, tmo, maxc, uid, gid;
	size_t i;

	memset(nc, 0, sizeof(*nc));
	policy_init(&nc->policy);
	c->policy = &nc->policy;
	c->ports = nc->ports;
	if (!json_is_object(o))
		goto bad;
	if (get_ip(o, "guest4", &c->guest4) < 0 || get_ip(o, "gw4", &c->gw4) < 0 ||
	    get_ip(o, "guest6", &c->guest6) < 0 || get_ip(o, "gw6", &c->gw6) < 0 ||
	    get_uint(o, "prefix4", 32, &p4) < 0 || get_uint(o, "prefix6", 128, &p6) < 0 ||
	    parse_mac(json_string_value(json_object_get(o, "guest_mac")), c->guest_mac) < 0 ||
	    parse_mac(json_string_value(json_object_get(o, "gw_mac")), c->gw_mac) < 0 ||
	    get_uint(o, "dns_timeout_ms", UINT32_MAX, &tmo) < 0 ||
	    get_uint(o, "max_connections", UINT32_MAX, &maxc) < 0 ||
	    get_uint(o, "uid", UINT32_MAX - 1, &uid) < 0 ||
	    get_uint(o, "gid", UINT32_MAX - 1, &gid) < 0)
		goto bad;
	c->prefix4 = (unsigned int)p4;
	c->prefix6 = (unsigned int)p6;
	c->dns_timeout_ms = (uint32_t)tmo;
	c->max_connections = (unsigned int)maxc;
	c->rebind_protection = json_is_true(json_object_get(o, "rebind_protection"));
	nc->uid = (uid_t)uid;
	nc->gid = (gid_t)gid;
	if (policy_from_json(json_object_get(o, "policy"), &nc->policy, why, len) < 0) {
		json_decref(o);
		return -EINVAL;
	}
	v = json_object_get(o, "dns");
	if (!json_is_array(v) || json_array_size(v) > NET_MAX_NAMESERVERS)
		goto bad;
	for (i = 0; i < json_array_size(v); i++)
		if (parse_ns(json_string_value(json_array_get(v, i)), &c->dns[i]) < 0)
			goto bad;
	c->ndns = i;
	v = json_object_get(o, "ports");
	if (!json_is_array(v) || json_array_size(v) > NET_MAX_PORTS)
		goto bad;
	for (i = 0; i < json_array_size(v); i++) {
		json_t *p = json_array_get(v, i);
		json_int_t hp, gp;

		if (get_ip(p, "bind", &nc->ports[i].bind) < 0 ||
		    get_uint(p, "host_port", 65535, &hp) < 0 ||
		    get_uint(p, "guest_port", 65535, &gp) < 0 || !hp || !gp)
			goto bad;
		nc->ports[i].host_port = (uint16_t)hp;
		nc->ports[i].guest_port = (uint16_t)gp;
		nc->ports[i].udp = json_is_true(json_object_get(p, "udp"));
	}
	c->nports = i;
	json_decref(o);
	return 0;
bad:
	json_decref(o);
	snprintf(why, len, "network process: the configuration is not valid");
	return -EINVAL;
}

void netconf_free(struct netconf *nc)
{
	policy_free(&nc->policy);
}

/* --- the process ------------------------------------------------------------------ */

static int log_ctl = -1;

/* Log lines go to the supervisor; a full socket drops them rather than block. */
static void log_to_ctl(enum log_level lvl, const char *msg, void *ctx)
{
	uint8_t b[1 + 2048];
	size_t n = strnlen(msg, sizeof(b) - 1);

	uint8_t type = NP_LOG;
	struct iovec iov[2] = { { .iov_base = &type, .iov_len = 1 },
				{ .iov_base = b, .iov_len = 1 + n } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };

	(void)ctx;
	b[0] = (uint8_t)lvl;
	memcpy(b + 1, msg, n);
	(void)!sendmsg(log_ctl, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void arm_timer(int tfd, uint64_t deadline_ms)
{
	struct itimerspec it = { 0 };

	if (deadline_ms) {
		/* 0 would disarm: a deadline already past fires at once. */
		it.it_value.tv_sec = (time_t)(deadline_ms / 1000);
		it.it_value.tv_nsec = (long)(deadline_ms % 1000) * 1000000 + 1;
	}
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &it, NULL);
}

/* The configuration: the first message, waited for with a bound. */
static int read_config(int ctl, struct netconf *nc, char *why, size_t len)
{
	_cleanup_free_ uint8_t *buf = malloc(NP_MSG_MAX + 1);
	struct pollfd pfd = { .fd = ctl, .events = POLLIN };
	uint8_t type = 0;
	size_t n = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	if (poll(&pfd, 1, CONFIG_WAIT_MS) != 1) {
		snprintf(why, len, "network process: no configuration came");
		return -ETIMEDOUT;
	}
	r = np_recv(ctl, buf, NP_MSG_MAX, &type, &n);
	if (r <= 0 || type != NP_CONFIG) {
		snprintf(why, len, "network process: no configuration came");
		return -EPROTO;
	}
	buf[1 + n] = '\0';
	return netconf_from_json((const char *)buf + 1, nc, why, len);
}

static void stats_reply(int ctl, const struct net *n)
{
	struct net_stats s;
	struct np_stats_wire w;

	net_stats(n, &s);
	w = (struct np_stats_wire){
		.guest_tx_bytes = s.guest_tx_bytes,
		.guest_rx_bytes = s.guest_rx_bytes,
		.denied = s.denied,
		.dropped = s.dropped,
		.tcp_flows = s.tcp_flows,
		.udp_flows = s.udp_flows,
	};
	np_send(ctl, NP_STATS, &w, sizeof(w));
}

/* Requests from the supervisor. Return: false once the control socket has ended. */
static bool ctl_event(int ctl, struct net *n, uint32_t events)
{
	uint8_t buf[64];

	for (int k = 0; k < 16; k++) {
		uint8_t type = 0;
		size_t len = 0;
		int r = np_recv(ctl, buf, sizeof(buf), &type, &len);

		if (r == -EAGAIN || r == -EMSGSIZE)
			break;
		if (r <= 0)
			return false;
		if (type == NP_STATS_REQ)
			stats_reply(ctl, n);
	}
	return !(events & (EPOLLHUP | EPOLLERR)) || (events & EPOLLIN);
}

static int loop(int ctl, struct net *n, int ep, int tfd)
{
	struct epoll_event ev[EVENTS];

	for (;;) {
		int k = epoll_wait(ep, ev, EVENTS, -1);

		if (k < 0 && errno != EINTR)
			return 1;
		for (int i = 0; i < k; i++) {
			uint32_t kind = (uint32_t)(ev[i].data.u64 >> 32);

			switch (kind) {
			case NPK_NET:
				net_handle(n, (uint32_t)ev[i].data.u64, ev[i].events);
				break;
			case NPK_TIMER: {
				uint64_t x;

				(void)!read(tfd, &x, sizeof(x));
				net_timer(n, mono_ms());
				break;
			}
			case NPK_CTL:
				if (!ctl_event(ctl, n, ev[i].events))
					return 0;
				break;
			default:
				break;
			}
		}
		arm_timer(tfd, net_deadline(n));
	}
}

static int add_fd(int ep, int fd, uint32_t kind)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = (uint64_t)kind << 32 };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

int netproc_main(int ctl, int link_fd)
{
	struct netconf nc;
	struct net *n = NULL;
	char why[320] = "";
	int ep = -1, tfd = -1, r;

	signal(SIGPIPE, SIG_IGN);
	log_ctl = ctl;
	log_setup_sink(log_to_ctl, NULL, LOG_INFO);
	netproc_set_sigsys_fd(ctl);
	/* Every guest flow holds a host socket: the whole hard limit is ours to budget
	 * (net_new() shares it out among the kinds of flow). */
	net_raise_nofile();
	r = read_config(ctl, &nc, why, sizeof(why));
	if (r < 0)
		goto fail_noconf;
	/* From here on the loop only ever reads what is there: a blocking read would stall
	 * the guest's whole network. */
	if (fcntl(ctl, F_SETFL, O_NONBLOCK) < 0) {
		snprintf(why, sizeof(why), "network process: %s", strerror(errno));
		goto fail;
	}
	r = net_new(&nc.cfg, link_fd, &n, why, sizeof(why));
	link_fd = -1;
	if (r < 0)
		goto fail;
	ep = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ep < 0 || tfd < 0 || net_watch(n, ep, NPK_NET) < 0 || add_fd(ep, ctl, NPK_CTL) < 0 ||
	    add_fd(ep, tfd, NPK_TIMER) < 0) {
		snprintf(why, sizeof(why), "network process: epoll: %s", strerror(errno));
		goto fail;
	}
	r = netproc_confine(nc.uid, nc.gid, why, sizeof(why));
	if (r < 0)
		goto fail;
	if (np_send(ctl, NP_READY, NULL, 0) < 0)
		_exit(1);
	arm_timer(tfd, net_deadline(n));
	_exit(loop(ctl, n, ep, tfd));
fail:
	netconf_free(&nc);
fail_noconf:
	if (link_fd >= 0)
		close(link_fd);
	np_send(ctl, NP_ERROR, why, strlen(why));
	_exit(1);
}
