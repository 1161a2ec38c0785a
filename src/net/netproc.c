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
#include <openssl/crypto.h>
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

static json_t *strv_json(char **v)
{
	json_t *a = json_array();

	for (; a && v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

/* The settings of @t without a value or a key: those follow as messages of their own. */
static json_t *tls_to_json(const struct net_tls *t)
{
	json_t *ports = json_array(), *secrets = json_array();

	for (size_t i = 0; ports && i < t->nports; i++)
		json_array_append_new(ports, json_integer(t->ports[i]));
	for (size_t i = 0; secrets && i < t->nsecrets; i++) {
		const struct net_secret *s = &t->secrets[i];

		json_array_append_new(
			secrets, json_pack("{s:s, s:s, s:o, s:o}", "name", s->name, "placeholder",
					   s->placeholder, "hosts", strv_json(s->hosts), "headers",
					   s->headers ? strv_json(s->headers) : json_null()));
	}
	return json_pack("{s:b, s:o, s:o, s:b, s:i, s:b, s:o}", "intercept_all", t->intercept_all,
			 "ports", ports, "bypass", strv_json(t->bypass), "block_quic",
			 t->block_quic, "on_violation", (int)t->on_violation, "upstream",
			 t->upstream_pem != NULL, "secrets", secrets);
}

int netconf_tls_send(int fd, const struct net_tls *t)
{
	size_t cl = strlen(t->ca_cert_pem), kl = strlen(t->ca_key_pem);
	uint8_t *ca = malloc(cl + 1 + kl);
	int r;

	if (!ca)
		return -ENOMEM;
	memcpy(ca, t->ca_cert_pem, cl);
	ca[cl] = '\0';
	memcpy(ca + cl + 1, t->ca_key_pem, kl);
	r = np_send(fd, NP_TLS_CA, ca, cl + 1 + kl);
	OPENSSL_cleanse(ca, cl + 1 + kl);
	free(ca);
	if (!r && t->upstream_pem)
		r = np_send(fd, NP_TLS_UPSTREAM, t->upstream_pem, strlen(t->upstream_pem));
	for (size_t i = 0; !r && i < t->nsecrets; i++)
		r = np_send(fd, NP_SECRET, t->secrets[i].value, t->secrets[i].value_len);
	return r < 0 ? r : 0;
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
	if (o && c->tls)
		json_object_set_new(o, "tls", tls_to_json(c->tls));
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

/* A JSON array of at most @max strings of at most 253 bytes (names), as a NULL-terminated vector.
 */
static int strv_from(const json_t *a, size_t max, char ***out)
{
	size_t n = json_array_size(a);
	char **v;

	*out = NULL;
	if (!json_is_array(a) || n > max)
		return -EINVAL;
	v = calloc(n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	*out = v;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(a, i));

		if (!s || !*s || strlen(s) > 255 || !(v[i] = strdup(s)))
			return -EINVAL;
	}
	return 0;
}

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static int tls_from_json(const json_t *o, struct netconf *nc)
{
	struct net_tls *t = &nc->tls;
	const json_t *ports = json_object_get(o, "ports"), *secrets = json_object_get(o, "secrets");
	json_int_t viol;

	if (!json_is_object(o) || !json_is_array(ports) ||
	    json_array_size(ports) > NET_MAX_TLS_PORTS || !json_is_array(secrets) ||
	    json_array_size(secrets) > NET_MAX_SECRETS ||
	    get_uint(o, "on_violation", NV_PASSTHROUGH, &viol) < 0)
		return -EINVAL;
	t->intercept_all = json_is_true(json_object_get(o, "intercept_all"));
	t->block_quic = json_is_true(json_object_get(o, "block_quic"));
	t->on_violation = (enum net_violation)viol;
	nc->upstream = json_is_true(json_object_get(o, "upstream"));
	for (size_t i = 0; i < json_array_size(ports); i++) {
		json_int_t p = json_integer_value(json_array_get(ports, i));

		if (p < 1 || p > 65535)
			return -EINVAL;
		t->ports[t->nports++] = (uint16_t)p;
	}
	if (strv_from(json_object_get(o, "bypass"), 256, &t->bypass) < 0)
		return -EINVAL;
	for (size_t i = 0; i < json_array_size(secrets); i++) {
		const json_t *s = json_array_get(secrets, i), *h = json_object_get(s, "headers");
		struct net_secret *ns = &t->secrets[t->nsecrets++];
		const char *name = json_string_value(json_object_get(s, "name"));
		const char *ph = json_string_value(json_object_get(s, "placeholder"));

		if (!name || !ph || strlen(ph) < 16 || strlen(ph) > 64 ||
		    !(ns->name = strdup(name)) || !(ns->placeholder = strdup(ph)) ||
		    strv_from(json_object_get(s, "hosts"), 64, &ns->hosts) < 0 || !ns->hosts[0] ||
		    (!json_is_null(h) && strv_from(h, 64, &ns->headers) < 0))
			return -EINVAL;
	}
	nc->cfg.tls = t;
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
	v = json_object_get(o, "tls");
	if (v && tls_from_json(v, nc) < 0)
		goto bad;
	json_decref(o);
	return 0;
bad:
	json_decref(o);
	snprintf(why, len, "network process: the configuration is not valid");
	return -EINVAL;
}

void netconf_free(struct netconf *nc)
{
	struct net_tls *t = &nc->tls;

	policy_free(&nc->policy);
	strv_free(t->bypass);
	for (size_t i = 0; i < t->nsecrets; i++) {
		free(t->secrets[i].name);
		free(t->secrets[i].placeholder);
		strv_free(t->secrets[i].hosts);
		strv_free(t->secrets[i].headers);
		if (t->secrets[i].value)
			OPENSSL_cleanse(t->secrets[i].value, t->secrets[i].value_len);
		free(t->secrets[i].value);
	}
	if (t->ca_key_pem)
		OPENSSL_cleanse(t->ca_key_pem, strlen(t->ca_key_pem));
	free(t->ca_key_pem);
	free(t->ca_cert_pem);
	free(t->upstream_pem);
	memset(t, 0, sizeof(*t));
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

/* The next message, which must be of type @want; its payload NUL-terminated in @buf. */
static ssize_t next_msg(int ctl, uint8_t want, uint8_t *buf)
{
	struct pollfd pfd = { .fd = ctl, .events = POLLIN };
	uint8_t type = 0;
	size_t n = 0;

	if (poll(&pfd, 1, CONFIG_WAIT_MS) != 1 || np_recv(ctl, buf, NP_MSG_MAX, &type, &n) <= 0 ||
	    type != want)
		return -EPROTO;
	buf[1 + n] = '\0';
	return (ssize_t)n;
}

/* The messages that follow a configuration with "tls": the CA, upstream CAs, the values. */
static int read_tls(int ctl, struct netconf *nc, uint8_t *buf)
{
	struct net_tls *t = &nc->tls;
	ssize_t n = next_msg(ctl, NP_TLS_CA, buf);
	size_t cl;

	if (n < 0)
		return (int)n;
	cl = strnlen((const char *)buf + 1, (size_t)n);
	if (cl >= (size_t)n)
		return -EPROTO;
	t->ca_cert_pem = strndup((const char *)buf + 1, cl);
	t->ca_key_pem = strdup((const char *)buf + 1 + cl + 1);
	if (!t->ca_cert_pem || !t->ca_key_pem)
		return -ENOMEM;
	if (nc->upstream) {
		if ((n = next_msg(ctl, NP_TLS_UPSTREAM, buf)) < 0)
			return (int)n;
		if (!(t->upstream_pem = strndup((const char *)buf + 1, (size_t)n)))
			return -ENOMEM;
	}
	for (size_t i = 0; i < t->nsecrets; i++) {
		if ((n = next_msg(ctl, NP_SECRET, buf)) <= 0)
			return -EPROTO;
		t->secrets[i].value = malloc((size_t)n);
		if (!t->secrets[i].value)
			return -ENOMEM;
		memcpy(t->secrets[i].value, buf + 1, (size_t)n);
		t->secrets[i].value_len = (size_t)n;
	}
	return 0;
}

void netproc_terminate(const char *secret, const char *why)
{
	char text[400];
	int n = snprintf(text, sizeof(text), "secret %s: %s", secret, why);

	if (log_ctl >= 0)
		np_send(log_ctl, NP_TERMINATE, text,
			n < (int)sizeof(text) ? (size_t)n : sizeof(text) - 1);
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
	r = netconf_from_json((const char *)buf + 1, nc, why, len);
	OPENSSL_cleanse(buf, n + 1);
	if (r < 0 || !nc->cfg.tls)
		return r;
	r = read_tls(ctl, nc, buf);
	OPENSSL_cleanse(buf, NP_MSG_MAX + 1);
	if (r < 0)
		snprintf(why, len,
			 "network process: the TLS and secrets configuration did not come");
	return r;
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
