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
#include "supervisor/netproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/frame.h"
#include "net/netproc.h"
#include "store/db.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/spawn.h"
#include "vm/jail.h"

#define NETPROC_START_MS 30000 /* READY or ERROR, or the start fails */
#define NETPROC_STATS_MS 1000  /* it answers at once; a stuck one is not waited for */
#define NETPROC_CTL	 3     /* the process's descriptors: control socket... */
#define NETPROC_LINK	 4     /* ...and the stack's end of the guest's link */

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

/* The interception CA's files: the user's (--tls-intercept-ca-cert/-key) or the installation's. */
#define TLS_PEM_MAX ((size_t)64 << 10)

static int read_pem(const char *what, const char *path, char **out, char *why, size_t len)
{
	size_t n;
	int r = read_file(path, TLS_PEM_MAX, out, &n);

	if (r < 0)
		snprintf(why, len, "%s %s: %s", what, path, strerror(-r));
	return r;
}

/*
 * @run->tls from the spec: names point into @spec, values at @values; the
 * CA's files and the extra upstream CAs are read now (the process cannot).
 */
static int build_tls(const struct sbx_spec *spec, struct sbx_netrun *run, char *const *values,
		     const size_t *lens, char *why, size_t len)
{
	const struct sbx_tls *st = &spec->net.tls;
	struct net_tls *t = &run->tls;
	_cleanup_free_ char *dcert = NULL, *dkey = NULL;
	const char *cert = st->ca_cert, *key = st->ca_key;
	size_t up = 0;
	int r;

	if (!spec->net.nsecrets && !st->intercept)
		return 0;
	if (spec->net.nsecrets && !values) {
		snprintf(why, len, "the values of its secrets did not come");
		return -ENOENT;
	}
	t->intercept_all = st->intercept;
	t->nports = st->nports < NET_MAX_TLS_PORTS ? st->nports : NET_MAX_TLS_PORTS;
	memcpy(t->ports, st->ports, t->nports * sizeof(t->ports[0]));
	if (!t->nports)
		t->ports[t->nports++] = 443;
	t->bypass = st->bypass;
	t->block_quic = !st->no_block_quic;
	t->on_violation = (enum net_violation)st->on_violation;
	for (size_t i = 0; i < spec->net.nsecrets && i < NET_MAX_SECRETS; i++) {
		const struct sbx_secret *s = &spec->net.secrets[i];

		t->secrets[i] = (struct net_secret){
			.name = s->env,
			.placeholder = s->placeholder,
			.value = (uint8_t *)values[i],
			.value_len = lens[i],
			.hosts = s->hosts,
			.headers = s->headers,
		};
		t->nsecrets++;
	}
	if (!cert || !key) {
		const char *home = msb_home();

		if (!home || asprintf(&dcert, "%s/tls/ca.pem", home) < 0 ||
		    asprintf(&dkey, "%s/tls/ca-key.pem", home) < 0) {
			snprintf(why, len, "out of memory");
			return -ENOMEM;
		}
		cert = dcert;
		key = dkey;
	}
	r = read_pem("the interception CA", cert, &t->ca_cert_pem, why, len);
	if (!r)
		r = read_pem("the interception CA's key", key, &t->ca_key_pem, why, len);
	if (r < 0)
		return r;
	run->ica = strdup(t->ca_cert_pem);
	run->ica_len = run->ica ? strlen(run->ica) : 0;
	for (char **p = st->upstream_cas; p && *p; p++) {
		_cleanup_free_ char *pem = NULL;
		size_t n;
		char *grown;

		r = read_pem("--tls-upstream-ca-cert", *p, &pem, why, len);
		if (r < 0)
			return r;
		n = strlen(pem);
		if (up + n + 2 > NP_UPSTREAM_MAX) {
			snprintf(why, len,
				 "--tls-upstream-ca-cert: more than %u KiB of certificates",
				 NP_UPSTREAM_MAX >> 10);
			return -E2BIG;
		}
		grown = realloc(t->upstream_pem, up + n + 2);
		if (!grown)
			return -ENOMEM;
		t->upstream_pem = grown;
		memcpy(grown + up, pem, n);
		grown[up + n] = '\n';
		up += n + 1;
		grown[up] = '\0';
	}
	return 0;
}

/* What the supervisor held of the secrets and the CA's key, once the process has them. */
static void drop_tls_secrets(struct sbx_netrun *run)
{
	struct net_tls *t = &run->tls;

	if (t->ca_key_pem) {
		explicit_bzero(t->ca_key_pem, strlen(t->ca_key_pem));
		free(t->ca_key_pem);
		t->ca_key_pem = NULL;
	}
	for (size_t i = 0; i < t->nsecrets; i++) {
		t->secrets[i].value = NULL; /* the caller's: it wipes them */
		t->secrets[i].value_len = 0;
	}
}

/*
 * The identity the network process takes when msb runs as root: never root,
 * never shared: an id of the VMM range of its own (jail_pick_id()), so that no
 * other process, its own sandbox's QEMU included, can trace the process that
 * holds the sandbox's network (and, later, its secrets). The range's lock is
 * held in *@lock until the process runs as the id. MSB_NET_UID forces one.
 * Return: 0, or -errno with @why.
 */
static int net_identity(const char *name, uid_t *uid, gid_t *gid, int *lock, char *why, size_t len)
{
	const char *u = getenv("MSB_NET_UID");
	char key[300];
	uint32_t id = 0;
	int r;

	*lock = -1;
	*uid = getuid();
	*gid = getgid();
	if (geteuid() != 0)
		return 0;
	if (u && *u && strtoul(u, NULL, 10) > 0) {
		*uid = (uid_t)strtoul(u, NULL, 10);
		*gid = (gid_t)*uid;
		return 0;
	}
	snprintf(key, sizeof(key), "net:%s", name);
	r = jail_pick_id(key, &id, lock);
	if (r < 0) {
		snprintf(why, len,
			 "network process: no free uid in the VMM range: %s (MSB_VMM_IDS)",
			 strerror(-r));
		return r;
	}
	*uid = id;
	*gid = id;
	return 0;
}

/* Text the network process sent, made safe for one log line: no controls, bounded. */
static void clean_text(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 1 < cap; i++)
		out[k++] = (p[i] < 0x20 || p[i] >= 0x7f) ? '?' : (char)p[i];
	out[k] = '\0';
}

/* One message from the process (already read into @buf): a log line is relayed. */
static void relay_log(const uint8_t *buf, size_t len)
{
	char line[2100];
	enum log_level lvl;

	if (len < 1)
		return;
	lvl = buf[1] <= LOG_DEBUG ? (enum log_level)buf[1] : LOG_DEBUG;
	clean_text(buf + 2, len - 1, line, sizeof(line));
	msb_log(lvl, "%s", line);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Wait (up to @ms) for a message of type @want, relaying log lines meanwhile;
 * @buf holds it afterwards. Return: its payload length, or -errno (-EPIPE when
 * the process ended, -ETIMEDOUT).
 */
static ssize_t await_msg(struct sbx_netrun *run, uint8_t want, uint8_t *buf, size_t cap,
			 unsigned int ms, uint8_t *got)
{
	uint64_t end = mono_ms() + ms;

	for (;;) {
		struct pollfd pfd = { .fd = run->ctl, .events = POLLIN };
		uint64_t now = mono_ms();
		uint8_t type = 0;
		size_t len = 0;
		int r;

		if (now >= end)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)(end - now));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		r = np_recv(run->ctl, buf, cap, &type, &len);
		if (r == -EAGAIN || r == -EMSGSIZE)
			continue;
		if (r <= 0)
			return -EPIPE;
		if (type == NP_LOG) {
			relay_log(buf, len);
			continue;
		}
		*got = type;
		if (type == want || type == NP_ERROR)
			return (ssize_t)len;
	}
}

/* The process runs as its id (or never will): other picks see it from now on. */
static void release_ids(struct sbx_netrun *run)
{
	run->pending = false;
	if (run->id_lock < 0)
		return;
	jail_release_ids();
	close(run->id_lock);
	run->id_lock = -1;
}

/*
 * Start the network process on the stack's end of the link (@link_fd, kept by
 * the caller) and send its configuration; netproc_await() waits for it. As
 * root, the range's lock stays held (run->id_lock) until then, shared with the
 * VMM's own pick, which boots meanwhile (jail_hold_ids()).
 */
static int netproc_start(struct sbx_netrun *run, const char *name, const struct net_config *c,
			 int link_fd, char *why, size_t len)
{
	char *argv[] = { "msb", "__net", NULL };
	_cleanup_free_ char *conf = NULL;
	struct spawn_opts so;
	int ctl[2], r;
	uid_t uid;
	gid_t gid;

	run->ctl = -1;
	r = net_identity(name, &uid, &gid, &run->id_lock, why, len);
	if (r < 0)
		return r;
	conf = netconf_to_json(c, uid, gid);
	if (!conf) {
		snprintf(why, len, "network process: out of memory");
		return -ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
		r = -errno;
		snprintf(why, len, "network process: socketpair: %s", strerror(-r));
		return r;
	}
	so = spawn_opts_stdio(argv, SPAWN_NULL, SPAWN_NULL, SPAWN_NULL);
	so.path = "/proc/self/exe";
	so.fds[NETPROC_CTL] = ctl[1];
	so.fds[NETPROC_LINK] = link_fd;
	so.nfds = NETPROC_LINK + 1;
	so.die_with_parent = true;
	r = spawn(&so, &run->pid);
	close(ctl[1]);
	if (r < 0) {
		close(ctl[0]);
		run->pid = 0;
		snprintf(why, len, "start the network process: %s", strerror(-r));
		return r;
	}
	run->ctl = ctl[0];
	r = np_send(run->ctl, NP_CONFIG, conf, strlen(conf));
	if (!r && c->tls)
		r = netconf_tls_send(run->ctl, c->tls);
	drop_tls_secrets(run);
	if (r < 0) {
		snprintf(why, len, "network process: send its configuration: %s", strerror(-r));
		return r;
	}
	if (run->id_lock >= 0)
		jail_hold_ids(run->id_lock, uid);
	run->pending = true;
	return 0;
}

/* Until the process said READY (it runs confined, as its id) or failed. */
static int netproc_await(struct sbx_netrun *run, char *why, size_t len)
{
	_cleanup_free_ uint8_t *buf = malloc(4096);
	uint8_t type = 0;
	ssize_t n;
	int r;

	if (!buf) {
		snprintf(why, len, "network process: out of memory");
		return -ENOMEM;
	}
	n = await_msg(run, NP_READY, buf, 4096, NETPROC_START_MS, &type);
	release_ids(run);
	if (n < 0) {
		snprintf(why, len, "the network process did not start: %s",
			 n == -ETIMEDOUT ? "no answer" : "it exited");
		return (int)n;
	}
	if (type == NP_ERROR) {
		clean_text(buf + 1, (size_t)n, why, len);
		return strstr(why, "in use") ? -EADDRINUSE : -EIO;
	}
	if (fcntl(run->ctl, F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		snprintf(why, len, "network process: %s", strerror(-r));
		return r;
	}
	log_info("network: stack running in process %d, confined", (int)run->pid);
	return 0;
}

int sbx_netrun_event(struct sbx_netrun *run)
{
	uint8_t buf[2 + 2048];
	int ret = 0;

	for (int k = 0; k < 64 && run->ctl >= 0; k++) {
		uint8_t type = 0;
		size_t len = 0;
		int r = np_recv(run->ctl, buf, sizeof(buf), &type, &len);

		if (r == -EAGAIN)
			return ret;
		if (r == -EMSGSIZE)
			continue;
		if (r <= 0) {
			close(run->ctl);
			run->ctl = -1;
			return ret ? ret : -1;
		}
		if (type == NP_LOG)
			relay_log(buf, len);
		if (type == NP_TERMINATE && !run->terminate[0]) {
			clean_text(buf + 1, len, run->terminate, sizeof(run->terminate));
			ret = 1;
		}
	}
	return ret;
}

int sbx_netrun_stats(struct sbx_netrun *run, struct net_stats *s)
{
	uint8_t buf[2 + 2048], type = 0;
	struct np_stats_wire w;
	ssize_t n;

	if (run->ctl < 0 || np_send(run->ctl, NP_STATS_REQ, NULL, 0) < 0)
		return -1;
	n = await_msg(run, NP_STATS, buf, sizeof(buf), NETPROC_STATS_MS, &type);
	if (n != (ssize_t)sizeof(w) || type != NP_STATS)
		return -1;
	memcpy(&w, buf + 1, sizeof(w));
	*s = (struct net_stats){
		.guest_tx_bytes = w.guest_tx_bytes,
		.guest_rx_bytes = w.guest_rx_bytes,
		.tcp_flows = w.tcp_flows,
		.udp_flows = w.udp_flows,
		.denied = w.denied,
		.dropped = w.dropped,
	};
	return 0;
}

bool sbx_netrun_reaped(struct sbx_netrun *run, pid_t pid, int status)
{
	if (run->pid <= 0 || pid != run->pid)
		return false;
	run->pid = 0;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		log_error("network: the network process made a system call outside its allowlist "
			  "and was killed (SIGSYS); the sandbox has no network now");
	else if (WIFSIGNALED(status))
		log_error("network: the network process was killed by signal %d; the sandbox has "
			  "no network now",
			  WTERMSIG(status));
	else
		log_error("network: the network process exited (status %d); the sandbox has no "
			  "network now",
			  WEXITSTATUS(status));
	return true;
}

int sbx_netrun_start(const struct sbx_spec *spec, struct sbx_netrun *run, char *const *values,
		     const size_t *lens, struct msb_err **err)
{
	const struct sbx_net *n = &spec->net;
	struct net_config *c = &run->cfg;
	struct ipaddr net4, net6;
	struct db *db = NULL;
	int sp[2], r;
	char why[320];

	memset(run, 0, sizeof(*run));
	run->vmm_fd = -1;
	run->ctl = -1;
	run->id_lock = -1;
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
	/* Read now, so that a missing bundle fails the start before the VM boots. */
	if (n->trust_host_cas && host_ca_bundle(&run->ca, &run->ca_len, why, sizeof(why)) < 0)
		return msb_err_set(err, ENOENT, "sandbox %s: %s", spec->name, why);
	why[0] = '\0';
	r = build_tls(spec, run, values, lens, why, sizeof(why));
	if (r < 0) {
		sbx_netrun_free(run);
		return msb_err_set(err, -r, "sandbox %s: %s", spec->name, why);
	}
	if (run->tls.ca_cert_pem)
		c->tls = &run->tls;
	/* The stack's end never blocks; QEMU's does (it waits for us, not the other way round). */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return msb_err_sys(err, errno, "network: socketpair");
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) < 0) {
		r = errno;
		close(sp[0]);
		close(sp[1]);
		return msb_err_sys(err, r, "network: socketpair");
	}
	r = netproc_start(run, spec->name, c, sp[0], why, sizeof(why));
	close(sp[0]);
	if (r < 0) {
		close(sp[1]);
		sbx_netrun_free(run);
		return msb_err_set(err, -r, "sandbox %s: %s", spec->name, why);
	}
	run->vmm_fd = sp[1];
	return 0;
}

int sbx_netrun_ready(const struct sbx_spec *spec, struct sbx_netrun *run, struct msb_err **err)
{
	char why[320];
	int r;

	if (!run->pending)
		return 0;
	r = netproc_await(run, why, sizeof(why));
	if (r < 0) {
		sbx_netrun_free(run);
		return msb_err_set(err, -r, "sandbox %s: %s", spec->name, why);
	}
	describe(spec, run);
	return 0;
}

void sbx_netrun_free(struct sbx_netrun *run)
{
	release_ids(run);
	drop_tls_secrets(run);
	free(run->tls.ca_cert_pem);
	free(run->tls.upstream_pem);
	memset(&run->tls, 0, sizeof(run->tls));
	free(run->ica);
	run->ica = NULL;
	free(run->ca);
	run->ca = NULL;
	if (run->ctl >= 0)
		close(run->ctl); /* it exits when its control socket ends */
	run->ctl = -1;
	if (run->pid > 0) {
		int st;

		kill(run->pid, SIGKILL);
		spawn_wait(run->pid, &st);
	}
	run->pid = 0;
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
	/* The interception CA: in every bundle of the image, and as a file of its own (Node). */
	if (!r && run->ica) {
		char *a = strdup(run->ica), *b = strdup(run->ica);

		if (!a || !b) {
			free(a);
			free(b);
			r = -ENOMEM;
		} else if ((r = add_file(c, NULL, 0644, PROTO_FILE_CA_BUNDLE, a, run->ica_len)) ==
			   0) {
			r = add_file(c, SBX_TLS_GUEST_CA, 0644, 0, b, run->ica_len);
		} else {
			free(b);
		}
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
