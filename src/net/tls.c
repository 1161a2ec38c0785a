// SPDX-License-Identifier: Apache-2.0
/*
 * TLS interception and the secrets' guard, per TCP flow of the guest.
 *
 * A flow to an intercept port starts by peeking at the ClientHello (never
 * sent on before it is complete): its name decides. Bypassed names, names
 * no secret is for (without --tls-intercept) and hellos without a name are
 * relayed untouched, end to end. The others are terminated here with a leaf
 * certificate for the name, minted by the sandbox's CA; our own TLS
 * connection goes to the address the guest dialled, asks for the same name
 * and must verify for it. Only then does plaintext flow, through hx.c, which
 * substitutes the secrets this connection may carry.
 *
 * Every other flow of a sandbox with secrets is scanned for placeholders as
 * it leaves (plain HTTP, any protocol): one found is a violation.
 *
 * Bounds: the peek holds at most SNI_PEEK_MAX bytes; each direction holds at
 * most TLS_PLAIN_MAX plaintext and the guest's TLS bytes are taken in only
 * while OpenSSL's input holds less than that; the leaf cache TLS_LEAF_CACHE.
 */
#define _GNU_SOURCE
#include "net/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net/h2x.h"
#include "net/hx.h"
#include "net/netproc.h"
#include "net/sni.h"
#include "net/stack.h"
#include "util/log.h"

/* The host's bundle of trusted CAs, read before confinement (Debian's place, then others). */
static const char *const host_bundles[] = {
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/cert.pem",
};

struct leaf {
	char name[SNI_NAME_MAX + 1];
	X509 *cert;
	time_t until;
	uint64_t used; /* for least-recently-used eviction */
};

struct tls_global {
	const struct net_tls *cfg;
	X509 *ca;
	EVP_PKEY *ca_key;
	EVP_PKEY *leaf_key; /* one key for every leaf of this sandbox */
	SSL_CTX *srv;	    /* the guest side */
	SSL_CTX *cli;	    /* the upstream side */
	struct leaf leaves[TLS_LEAF_CACHE];
	uint64_t tick;
};

enum ix_mode {
	IX_PEEK,    /* waiting for the whole ClientHello */
	IX_SCAN,    /* plaintext: scanned for placeholders, relayed */
	IX_CONNECT, /* a proxy's CONNECT: its head goes up, then the tunnel is peeked at */
	IX_TLS,	    /* intercepted */
	IX_CLOSING  /* a refusal is on its way to the guest; nothing else moves */
};

struct ix {
	enum ix_mode mode;
	char sni[SNI_NAME_MAX + 1];
	/* A CONNECT tunnel through a proxy: the name it asked for (the SNI must be it). */
	bool tunnel;
	char target[SNI_NAME_MAX + 1];
	/* IX_SCAN */
	size_t scanned;	   /* bytes at the head of g2h already scanned */
	uint8_t carry[96]; /* the end of what was scanned before, for split placeholders */
	size_t ncarry;
	bool http; /* the stream began like an HTTP request */
	bool started;
	/* IX_TLS */
	SSL *g, *u;
	BIO *g_in, *g_out;
	bool g_done, u_done, u_failed, u_want_write;
	bool g_eof, u_eof, g_shut, u_shut;
	char u_err[600];
	/* ALPN: what the guest offered (the upstream is offered the same), HTTP/2 agreed */
	bool alpn_seen, guest_h2, guest_h11, h2;
	struct hx *hx;
	struct h2x *h2x;
	struct hx_secret hs[NET_MAX_SECRETS];
	char why[NET_MAX_SECRETS][600];
	struct buf up, down; /* plaintext after hx, for upstream and for the guest */
};

static struct tls_global *G;	  /* the process has one sandbox, one set of TLS state */
static const struct net_tls *CFG; /* its settings */

static X509 *leaf_for(struct tls_global *g, const char *name);

static bool fatal_err(SSL *s, int r)
{
	int e = SSL_get_error(s, r);

	return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

static void ssl_why(char *why, size_t len, const char *what)
{
	unsigned long e = ERR_get_error();
	char b[160] = "";

	if (e)
		ERR_error_string_n(e, b, sizeof(b));
	ERR_clear_error();
	snprintf(why, len, "%s%s%s", what, *b ? ": " : "", b);
}

bool tls_name_match(const char *pattern, const char *name)
{
	size_t pn, nn = strlen(name);

	if (!strncmp(pattern, "*.", 2)) {
		pattern += 2;
		pn = strlen(pattern);
		if (nn == pn)
			return !strcasecmp(name, pattern);
		return nn > pn && name[nn - pn - 1] == '.' && !strcasecmp(name + nn - pn, pattern);
	}
	return !strcasecmp(pattern, name);
}

bool tls_is_port(const struct net_tls *t, uint16_t port)
{
	for (size_t i = 0; t && i < t->nports; i++)
		if (t->ports[i] == port)
			return true;
	return false;
}

static X509_STORE *upstream_store(const struct net_tls *t, char *why, size_t len)
{
	X509_STORE *st = X509_STORE_new();
	bool any = false;

	if (!st)
		return NULL;
	for (size_t i = 0; i < sizeof(host_bundles) / sizeof(host_bundles[0]) && !any; i++)
		if (access(host_bundles[i], R_OK) == 0 && X509_STORE_load_file(st, host_bundles[i]))
			any = true;
	ERR_clear_error();
	if (t->upstream_pem) {
		BIO *b = BIO_new_mem_buf(t->upstream_pem, -1);
		X509 *x;
		int n = 0;

		while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
			X509_STORE_add_cert(st, x);
			X509_free(x);
			n++;
		}
		BIO_free(b);
		ERR_clear_error();
		if (!n) {
			snprintf(why, len,
				 "--tls-upstream-ca-cert: no certificate in the files given");
			X509_STORE_free(st);
			return NULL;
		}
	}
	return st;
}

/* Does the ALPN list @in (RFC 7301 wire form, @inlen bytes) hold @proto? Sets *@at to it. */
static bool alpn_has(const unsigned char *in, size_t inlen, const char *proto,
		     const unsigned char **at)
{
	size_t pl = strlen(proto);

	for (size_t i = 0; i < inlen;) {
		size_t l = in[i];

		if (i + 1 + l > inlen)
			break;
		if (l == pl && !memcmp(in + i + 1, proto, pl)) {
			if (at)
				*at = in + i + 1;
			return true;
		}
		i += 1 + l;
	}
	return false;
}

/*
 * The guest's ClientHello, before our answer: what it offers by ALPN is what
 * the upstream is offered. A guest offering HTTP/2 waits here (the handshake
 * is resumed) until the upstream's handshake has chosen: HTTP/2 is spoken to
 * the guest only when the server speaks it too.
 */
static int hello_cb(SSL *s, int *al, void *arg)
{
	struct ix *x = SSL_get_app_data(s);
	const unsigned char *p;
	size_t n;

	(void)al;
	(void)arg;
	if (!x)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (!x->alpn_seen) {
		unsigned char protos[12];
		unsigned int k = 0;

		x->alpn_seen = true;
		if (SSL_client_hello_get0_ext(s, TLSEXT_TYPE_application_layer_protocol_negotiation,
					      &p, &n) == 1 &&
		    n >= 2 && ((size_t)p[0] << 8 | p[1]) == n - 2) {
			x->guest_h2 = alpn_has(p + 2, n - 2, "h2", NULL);
			x->guest_h11 = alpn_has(p + 2, n - 2, "http/1.1", NULL);
		}
		if (x->guest_h2) {
			static const unsigned char h2[] = { 2, 'h', '2' };

			memcpy(protos, h2, sizeof(h2));
			k = sizeof(h2);
		}
		if (x->guest_h11) {
			static const unsigned char h11[] = { 8,	  'h', 't', 't', 'p',
							     '/', '1', '.', '1' };

			memcpy(protos + k, h11, sizeof(h11));
			k += sizeof(h11);
		}
		if (k)
			SSL_set_alpn_protos(x->u, protos, k);
	}
	if (x->guest_h2 && !x->u_done && !x->u_failed)
		return SSL_CLIENT_HELLO_RETRY;
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* ALPN, guest side: what the upstream chose (HTTP/2 or HTTP/1.1), else HTTP/1.1. */
static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	struct ix *x = SSL_get_app_data(s);
	const unsigned char *up = NULL, *at = NULL;
	unsigned int upn = 0;

	(void)arg;
	if (x && x->u_done)
		SSL_get0_alpn_selected(x->u, &up, &upn);
	if (x && upn == 2 && !memcmp(up, "h2", 2) && alpn_has(in, inlen, "h2", &at)) {
		x->h2 = true;
		*out = at;
		*outlen = 2;
		return SSL_TLSEXT_ERR_OK;
	}
	if (alpn_has(in, inlen, "http/1.1", &at)) {
		*out = at;
		*outlen = 8;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* Moves what each side of a memory handshake wrote to the other. */
static void shuttle(SSL *from, SSL *to)
{
	char b[16384];
	int n;

	while ((n = BIO_read(SSL_get_wbio(from), b, sizeof(b))) > 0)
		BIO_write(SSL_get_rbio(to), b, n);
}

/*
 * One handshake with ourselves, in memory, before confinement: OpenSSL loads
 * some of what it needs on first use (algorithm implementations, and files),
 * which the confined process could not. Both ways the interception works:
 * a client trusting our CA (succeeds) and our upstream context, which does
 * not trust it (its verification runs and fails).
 */
static void warm_up(struct tls_global *g, X509 *leaf)
{
	SSL_CTX *trusting = SSL_CTX_new(TLS_client_method());
	SSL_CTX *ctxs[2] = { trusting, g->cli };

	if (trusting) {
		X509_STORE_add_cert(SSL_CTX_get_cert_store(trusting), g->ca);
		SSL_CTX_set_verify(trusting, SSL_VERIFY_PEER, NULL);
	}
	for (size_t i = 0; i < 2; i++) {
		SSL *c = ctxs[i] ? SSL_new(ctxs[i]) : NULL, *s = SSL_new(g->srv);

		if (c && s) {
			SSL_set_bio(c, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
			SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
			SSL_use_certificate(s, leaf);
			SSL_use_PrivateKey(s, g->leaf_key);
			SSL_set_tlsext_host_name(c, "warm-up.msb.invalid");
			SSL_set1_host(c, "warm-up.msb.invalid");
			SSL_set_connect_state(c);
			SSL_set_accept_state(s);
			for (int k = 0; k < 8; k++) {
				int rc = SSL_do_handshake(c), rs = SSL_do_handshake(s);

				shuttle(c, s);
				shuttle(s, c);
				if ((rc == 1 && rs == 1) || (rc <= 0 && fatal_err(c, rc)))
					break;
			}
		}
		SSL_free(c);
		SSL_free(s);
	}
	SSL_CTX_free(trusting);
	ERR_clear_error();
}

int tls_global_new(const struct net_tls *t, struct tls_global **out, char *why, size_t len)
{
	struct tls_global *g = calloc(1, sizeof(*g));
	X509_STORE *st = NULL;
	BIO *b;

	*out = NULL;
	if (!g)
		return -ENOMEM;
	g->cfg = t;
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	b = BIO_new_mem_buf(t->ca_cert_pem ? t->ca_cert_pem : "", -1);
	g->ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	b = BIO_new_mem_buf(t->ca_key_pem ? t->ca_key_pem : "", -1);
	g->ca_key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!g->ca || !g->ca_key || X509_check_private_key(g->ca, g->ca_key) != 1) {
		ssl_why(why, len, "the interception CA's certificate and key do not load or match");
		goto fail;
	}
	g->leaf_key = EVP_EC_gen("P-256");
	g->srv = SSL_CTX_new(TLS_server_method());
	g->cli = SSL_CTX_new(TLS_client_method());
	st = upstream_store(t, why, len);
	if (!g->leaf_key || !g->srv || !g->cli || !st) {
		if (!why[0])
			ssl_why(why, len, "TLS interception: set-up");
		X509_STORE_free(st);
		goto fail;
	}
	SSL_CTX_set_min_proto_version(g->srv, TLS1_2_VERSION);
	SSL_CTX_set_min_proto_version(g->cli, TLS1_2_VERSION);
	SSL_CTX_set_alpn_select_cb(g->srv, alpn_select, NULL);
	SSL_CTX_set_client_hello_cb(g->srv, hello_cb, NULL);
	SSL_CTX_set_mode(g->srv,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_mode(g->cli,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(g->srv, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_options(g->cli, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(g->srv, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_cert_store(g->cli, st); /* owns it now */
	SSL_CTX_set_verify(g->cli, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_alpn_protos(g->cli, (const unsigned char *)"\x08http/1.1", 9);
	/* Seed now: after confinement only getrandom() is there, and it is what OpenSSL uses. */
	{
		unsigned char seed[16];

		RAND_bytes(seed, sizeof(seed));
	}
	G = g;
	CFG = t;
	warm_up(g, leaf_for(g, "warm-up.msb.invalid"));
	*out = g;
	return 0;
fail:
	tls_global_free(g);
	return -EINVAL;
}

void tls_global_free(struct tls_global *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < TLS_LEAF_CACHE; i++)
		X509_free(g->leaves[i].cert);
	SSL_CTX_free(g->srv);
	SSL_CTX_free(g->cli);
	EVP_PKEY_free(g->leaf_key);
	EVP_PKEY_free(g->ca_key);
	X509_free(g->ca);
	if (G == g) {
		G = NULL;
		CFG = NULL;
	}
	free(g);
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!e)
		return -1;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/* A leaf for @name, valid for TLS_LEAF_LIFE_S from an hour ago (clocks differ). */
static X509 *mint(struct tls_global *g, const char *name)
{
	X509 *x = X509_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char san[SNI_NAME_MAX + 8];
	X509_NAME *subj;

	if (!x || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto fail;
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), TLS_LEAF_LIFE_S);
	X509_set_pubkey(x, g->leaf_key);
	subj = X509_get_subject_name(x);
	if (strlen(name) <= 64)
		X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)name,
					   -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(g->ca));
	snprintf(san, sizeof(san), "DNS:%s", name);
	if (add_ext(x, g->ca, NID_subject_alt_name, san) < 0 ||
	    add_ext(x, g->ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, g->ca, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
	    add_ext(x, g->ca, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, g->ca, NID_authority_key_identifier, "keyid:always") < 0 ||
	    !X509_sign(x, g->ca_key, EVP_sha256()))
		goto fail;
	BN_free(bn);
	return x;
fail:
	ERR_clear_error();
	BN_free(bn);
	X509_free(x);
	return NULL;
}

/* The cached leaf for @name, or a new one in the least recently used slot. */
static X509 *leaf_for(struct tls_global *g, const char *name)
{
	time_t now = time(NULL);
	struct leaf *victim = &g->leaves[0];

	for (size_t i = 0; i < TLS_LEAF_CACHE; i++) {
		struct leaf *l = &g->leaves[i];

		if (l->cert && !strcmp(l->name, name) && l->until > now + 600) {
			l->used = ++g->tick;
			return l->cert;
		}
		if (!l->cert || l->used < victim->used)
			victim = l;
		if (!victim->cert)
			break;
	}
	X509_free(victim->cert);
	victim->cert = mint(g, name);
	if (!victim->cert)
		return NULL;
	snprintf(victim->name, sizeof(victim->name), "%s", name);
	victim->until = now + TLS_LEAF_LIFE_S;
	victim->used = ++g->tick;
	return victim->cert;
}

/* --- deciding ------------------------------------------------------------------------ */

static bool secret_for(const struct net_secret *s, const char *name)
{
	for (char **h = s->hosts; h && *h; h++)
		if (tls_name_match(*h, name))
			return true;
	return false;
}

static bool bypassed(const char *name)
{
	for (char **b = CFG->bypass; b && *b; b++)
		if (tls_name_match(*b, name))
			return true;
	return false;
}

static bool any_secret_for(const char *name)
{
	for (size_t i = 0; i < CFG->nsecrets; i++)
		if (secret_for(&CFG->secrets[i], name))
			return true;
	return false;
}

static bool pin_is(const char *name, void *ctx)
{
	return !strcasecmp(name, ctx);
}

int ix_attach(struct net *n, struct tcp_flow *f)
{
	struct ix *x;

	if (!G || f->dns || f->inbound)
		return 0;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	(void)n;
	x->mode = tls_is_port(CFG, f->e.remote_port) ? IX_PEEK : IX_SCAN;
	f->ix = x;
	return 1;
}

void ix_detach(struct tcp_flow *f)
{
	struct ix *x = f->ix;

	if (!x)
		return;
	hx_free(x->hx);
	h2x_free(x->h2x);
	SSL_free(x->g); /* frees its BIOs */
	SSL_free(x->u);
	buf_free(&x->up);
	buf_free(&x->down);
	OPENSSL_cleanse(x, sizeof(*x));
	free(x);
	f->ix = NULL;
}

bool ix_passing(const struct tcp_flow *f)
{
	return !f->ix;
}

/* --- refusals ------------------------------------------------------------------------- */

static const char *violation_mode(void)
{
	switch (CFG->on_violation) {
	case NV_BLOCK_AND_LOG:
		return "block-and-log";
	case NV_BLOCK_AND_TERMINATE:
		return "block-and-terminate";
	case NV_PASSTHROUGH:
		return "passthrough";
	default:
		return "block";
	}
}

/* One line for the log, names only; block-and-terminate also asks for the sandbox to stop. */
static void report_violation(const struct tcp_flow *f, const char *secret, const char *sni,
			     const char *host, const char *why)
{
	char dst[IP_STRLEN];

	ip_format(&f->e.remote, dst, sizeof(dst));
	if (CFG->on_violation == NV_BLOCK)
		return;
	log_warn("net: secret %s: violation (%s): %s; sni %s, host %s, destination %s:%u", secret,
		 violation_mode(), why, sni && *sni ? sni : "-", host && *host ? host : "-", dst,
		 f->e.remote_port);
	if (CFG->on_violation == NV_BLOCK_AND_TERMINATE)
		netproc_terminate(secret, why);
}

/* A complete HTTP response for the guest, then the end of the stream. */
static void refuse(struct tcp_flow *f, struct buf *to, int code, const char *reason,
		   const char *body)
{
	char head[256];
	int hn = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nConnection: close\r\n"
			  "Content-Length: %zu\r\n\r\n",
			  code, reason, strlen(body));

	buf_append(to, head, (size_t)hn);
	buf_append(to, body, strlen(body));
	f->ix->mode = IX_CLOSING;
}

/* --- plaintext flows --------------------------------------------------------------------- */

static bool looks_http(const uint8_t *p, size_t n)
{
	static const char *const m[] = { "GET ",   "POST ",    "PUT ",	   "HEAD ", "DELETE ",
					 "PATCH ", "OPTIONS ", "CONNECT ", "TRACE " };

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		size_t l = strlen(m[i]);

		if (!memcmp(p, m[i], n < l ? n : l))
			return true;
	}
	return false;
}

/* The secret whose placeholder occurs in carry + @p, or -1. Keeps the tail as the new carry. */
static int scan(struct ix *x, const uint8_t *p, size_t n)
{
	uint8_t win[sizeof(x->carry) + 4096];
	int found = -1;

	while (n && found < 0) {
		size_t take = n < 4096 ? n : 4096, w = x->ncarry + take, keep;

		memcpy(win, x->carry, x->ncarry);
		memcpy(win + x->ncarry, p, take);
		for (size_t i = 0; i < CFG->nsecrets && found < 0; i++) {
			const char *ph = CFG->secrets[i].placeholder;

			if (memmem(win, w, ph, strlen(ph)))
				found = (int)i;
		}
		keep = w < sizeof(x->carry) ? w : sizeof(x->carry);
		memcpy(x->carry, win + w - keep, keep);
		x->ncarry = keep;
		p += take;
		n -= take;
	}
	return found;
}

#define CONNECT_HEAD_MAX 8192

/*
 * "CONNECT host:port HTTP/1.1" to a proxy (HTTPS_PROXY): the head goes up as
 * it is (after the placeholder scan), and what the guest sends next, in the
 * tunnel, is peeked at like a connection to an intercept port, with the name
 * the tunnel was asked for: the ClientHello's must be the same to be looked into.
 */
static int pump_connect(struct tcp_flow *f)
{
	struct ix *x = f->ix;
	const uint8_t *h = buf_head(&f->g2h);
	size_t have = buf_size(&f->g2h), head, i, n;
	const uint8_t *end = have >= 4 ? memmem(h, have, "\r\n\r\n", 4) : NULL;

	if (!end) {
		if (have > CONNECT_HEAD_MAX || f->guest_fin)
			return -1;
		return 0;
	}
	head = (size_t)(end - h) + 4;
	/* CONNECT SP host ":" port: the name, lower case, a plausible one. */
	for (i = 8, n = 0; i < head && h[i] != ':' && h[i] != ' ' && n < SNI_NAME_MAX; i++)
		x->target[n++] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] + 32 : h[i]);
	x->target[n] = '\0';
	if (i >= head || h[i] != ':' || !n)
		return -1;
	int s = scan(x, h, head);

	if (s >= 0) {
		report_violation(f, CFG->secrets[s].name, NULL, x->target,
				 "its placeholder was in a CONNECT request to a proxy");
		if (CFG->on_violation != NV_PASSTHROUGH)
			return -1;
	}
	x->ncarry = 0;
	/* The head is small and the socket fresh: it goes at once, or the flow is reset. */
	for (size_t off = 0; off < head;) {
		ssize_t w = send(f->fd, h + off, head - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	buf_consume(&f->g2h, head);
	x->tunnel = true;
	x->mode = IX_PEEK;
	return 0;
}

static int pump_scan(struct tcp_flow *f)
{
	struct ix *x = f->ix;
	size_t have = buf_size(&f->g2h);

	if (!x->started && have) {
		if (have < 8 && !memcmp(buf_head(&f->g2h), "CONNECT ", have))
			return 0; /* perhaps a CONNECT: its first bytes decide */
		x->started = true;
		x->http = looks_http(buf_head(&f->g2h), have);
		if (have >= 8 && !memcmp(buf_head(&f->g2h), "CONNECT ", 8)) {
			x->mode = IX_CONNECT;
			return pump_connect(f);
		}
	}
	if (x->scanned < have) {
		int s = scan(x, buf_head(&f->g2h) + x->scanned, have - x->scanned);

		x->scanned = have;
		if (s >= 0) {
			const char *name = CFG->secrets[s].name;
			char body[300];

			report_violation(f, name, NULL, NULL,
					 "its placeholder was sent outside intercepted TLS");
			if (CFG->on_violation != NV_PASSTHROUGH) {
				if (!x->http)
					return -1;
				snprintf(body, sizeof(body),
					 "msb: secret %s blocked: its placeholder was sent outside "
					 "intercepted TLS (plain HTTP or another protocol)\n",
					 name);
				buf_consume(&f->g2h, buf_size(&f->g2h));
				x->scanned = 0;
				refuse(f, &f->h2g, 403, "Forbidden", body);
				shutdown(f->fd, SHUT_RDWR);
				f->host_eof = true;
				return 0;
			}
		}
	}
	while (buf_size(&f->g2h)) {
		ssize_t w = send(f->fd, buf_head(&f->g2h), buf_size(&f->g2h), MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0)
			return -1;
		buf_consume(&f->g2h, (size_t)w);
		x->scanned -= (size_t)w;
	}
	if (f->guest_fin && !f->wr_shut && !buf_size(&f->g2h)) {
		shutdown(f->fd, SHUT_WR);
		f->wr_shut = true;
	}
	return tcp_recv_host(f);
}

/* --- intercepted flows --------------------------------------------------------------- */

static void audit(void *ctx, const struct hx_audit *a)
{
	const struct tcp_flow *f = ctx;
	char names[NET_MAX_SECRETS * 40] = "";
	size_t k = 0;

	for (size_t i = 0; i < CFG->nsecrets && k + 40 < sizeof(names); i++)
		if (a->secrets & (1ull << i))
			k += (size_t)snprintf(names + k, sizeof(names) - k, "%s%s", k ? "," : "",
					      CFG->secrets[i].name);
	log_info("net: https %s %s %s -> %d, %llu bytes up, %llu down%s%s", a->method, f->ix->sni,
		 a->path, a->status, (unsigned long long)a->request_body,
		 (unsigned long long)a->response_body, k ? "; secrets " : "", names);
}

static void on_violation(void *ctx, const struct hx_violation *v)
{
	const struct tcp_flow *f = ctx;

	report_violation(f, v->name, f->ix->sni, v->host, v->reason);
}

/* What each secret may do on this connection, now that the upstream is known. */
static int start_hx(struct net *n, struct tcp_flow *f)
{
	struct ix *x = f->ix;
	/*
	 * Through a proxy's tunnel the proxy chose the address: the name the tunnel
	 * was asked for (the SNI's, checked) and the certificate bind it instead.
	 */
	bool pinned = x->tunnel || pins_lookup(&n->pins, &f->e.remote, n->now, pin_is, x->sni);
	char dst[IP_STRLEN];
	struct hx_config c = {
		.secrets = x->hs,
		.nsecrets = CFG->nsecrets,
		.sni = x->sni,
		.passthrough = CFG->on_violation == NV_PASSTHROUGH,
		.audit = audit,
		.violation = on_violation,
		.ctx = f,
	};

	ip_format(&f->e.remote, dst, sizeof(dst));
	for (size_t i = 0; i < CFG->nsecrets; i++) {
		const struct net_secret *s = &CFG->secrets[i];
		struct hx_secret *h = &x->hs[i];

		*h = (struct hx_secret){
			.name = s->name,
			.placeholder = s->placeholder,
			.value = s->value,
			.value_len = s->value_len,
			.headers = (const char *const *)s->headers,
		};
		if (!secret_for(s, x->sni))
			snprintf(x->why[i], sizeof(x->why[i]), "%s is not a host of %s", x->sni,
				 s->name);
		else if (!pinned)
			snprintf(x->why[i], sizeof(x->why[i]),
				 "%s was not resolved to %s by this sandbox's DNS", x->sni, dst);
		else if (x->u_failed)
			snprintf(x->why[i], sizeof(x->why[i]),
				 "the server's certificate did not verify for %s", x->sni);
		else
			h->allowed = true;
		h->why_not = h->allowed ? NULL : x->why[i];
	}
	if (x->h2) {
		x->h2x = h2x_new(&c);
		return x->h2x ? 0 : -1;
	}
	x->hx = hx_new(&c);
	return x->hx ? 0 : -1;
}

/* The ClientHello is whole: intercept, or relay untouched from now on. */
static int decide(struct tcp_flow *f)
{
	struct ix *x = f->ix;
	int r = sni_peek(buf_head(&f->g2h), buf_size(&f->g2h), x->sni, sizeof(x->sni));
	X509 *leaf;

	if (r == 0 && buf_size(&f->g2h) < SNI_PEEK_MAX && !f->guest_fin)
		return 0; /* more to come */
	if (x->tunnel && r != 1) {
		x->mode = IX_SCAN; /* plaintext in the tunnel: scanned as any other */
		x->started = true;
		return 1;
	}
	if (x->tunnel && r == 1 && strcmp(x->sni, x->target) != 0) {
		log_info("net: https through a proxy: the tunnel to %s carries TLS for %s: not "
			 "looked into",
			 x->target, x->sni[0] ? x->sni : "(no name)");
		ix_detach(f);
		return 1;
	}
	if (r != 1 || !x->sni[0] || bypassed(x->sni) ||
	    (!CFG->intercept_all && !any_secret_for(x->sni))) {
		/* Not ours to look into: from now on a scanned (secrets) or plain relay. */
		if (CFG->nsecrets && r != 1) {
			x->mode = IX_SCAN;
			return 1;
		}
		ix_detach(f);
		return 1;
	}
	leaf = leaf_for(G, x->sni);
	x->g = SSL_new(G->srv);
	x->u = SSL_new(G->cli);
	x->g_in = BIO_new(BIO_s_mem());
	x->g_out = BIO_new(BIO_s_mem());
	if (!leaf || !x->g || !x->u || !x->g_in || !x->g_out) {
		BIO_free(x->g_in);
		BIO_free(x->g_out);
		x->g_in = x->g_out = NULL;
		log_warn("net: TLS interception of %s: out of memory", x->sni);
		return -1;
	}
	SSL_set_bio(x->g, x->g_in, x->g_out);
	SSL_set_app_data(x->g, x);
	SSL_set_accept_state(x->g);
	if (SSL_use_certificate(x->g, leaf) != 1 || SSL_use_PrivateKey(x->g, G->leaf_key) != 1 ||
	    SSL_set_fd(x->u, f->fd) != 1 || SSL_set_tlsext_host_name(x->u, x->sni) != 1 ||
	    SSL_set1_host(x->u, x->sni) != 1) {
		ERR_clear_error();
		return -1;
	}
	SSL_set_connect_state(x->u);
	x->mode = IX_TLS;
	return 1;
}

static bool fatal(SSL *s, int r)
{
	int e = SSL_get_error(s, r);

	return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE &&
	       e != SSL_ERROR_WANT_CLIENT_HELLO_CB;
}

static void upstream_handshake(struct tcp_flow *f)
{
	struct ix *x = f->ix;
	int r;

	if (x->u_done || x->u_failed)
		return;
	r = SSL_do_handshake(x->u);
	x->u_want_write = false;
	if (r == 1) {
		x->u_done = true;
		return;
	}
	if (!fatal(x->u, r)) {
		x->u_want_write = SSL_get_error(x->u, r) == SSL_ERROR_WANT_WRITE;
		return;
	}
	if (SSL_get_verify_result(x->u) != X509_V_OK)
		snprintf(x->u_err, sizeof(x->u_err), "the certificate of %s did not verify: %s",
			 x->sni, X509_verify_cert_error_string(SSL_get_verify_result(x->u)));
	else
		ssl_why(x->u_err, sizeof(x->u_err), "the TLS handshake with the server failed");
	ERR_clear_error();
	x->u_failed = true;
	log_warn("net: https %s: %s", x->sni, x->u_err);
}

/* Guest plaintext -> hx -> x->up, while the upstream is ready for it. */
static int guest_plain(struct net *n, struct tcp_flow *f)
{
	struct ix *x = f->ix;
	uint8_t tmp[16384];

	while (x->mode == IX_TLS && x->g_done && (x->u_done || x->u_failed) && !x->g_eof &&
	       buf_size(&x->up) < TLS_PLAIN_MAX && buf_size(&x->down) < TLS_PLAIN_MAX &&
	       (!x->h2x || h2x_can_take(x->h2x))) {
		int r = SSL_read(x->g, tmp, sizeof(tmp));

		if (r <= 0) {
			int e = SSL_get_error(x->g, r);

			if (e == SSL_ERROR_WANT_READ) {
				/* The guest's FIN with nothing left to read: the end of its stream.
				 */
				if (f->guest_fin && !buf_size(&f->g2h) &&
				    !BIO_ctrl_pending(x->g_in))
					x->g_eof = true;
				break;
			}
			if (e == SSL_ERROR_ZERO_RETURN) {
				x->g_eof = true;
				break;
			}
			ERR_clear_error();
			return -1;
		}
		if (!x->hx && !x->h2x && start_hx(n, f) < 0)
			return -1;
		if (x->h2x) {
			if (h2x_guest(x->h2x, tmp, (size_t)r) < 0 ||
			    h2x_send(x->h2x, &x->up, &x->down, TLS_PLAIN_MAX) < 0)
				return -1;
			continue;
		}
		if (x->u_failed) {
			char body[640];

			snprintf(body, sizeof(body), "msb: %s\n", x->u_err);
			refuse(f, &x->down, 502, "Bad Gateway", body);
			return 0;
		}
		switch (hx_request(x->hx, tmp, (size_t)r, &x->up, &x->down)) {
		case HX_OK:
			break;
		case HX_VIOLATION:
		case HX_BAD:
			/*
			 * A refusal is queued for the guest; what went upstream of that
			 * request must not finish: the upstream is reset, not closed.
			 */
			x->mode = IX_CLOSING;
			if (hx_violation(x->hx) && hx_violation(x->hx)->upstream_dirty) {
				struct linger lg = { .l_onoff = 1, .l_linger = 0 };

				setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			}
			return 0;
		default:
			return -1;
		}
	}
	if (x->g_eof && x->hx && x->mode == IX_TLS)
		hx_request_end(x->hx, &x->up, &x->down);
	if (x->h2x && x->mode == IX_TLS && h2x_done(x->h2x))
		x->mode = IX_CLOSING;
	return 0;
}

/* x->up -> the upstream; the upstream -> hx -> x->down. */
static int upstream_io(struct tcp_flow *f)
{
	struct ix *x = f->ix;
	uint8_t tmp[16384];

	if (!x->u_done || x->mode != IX_TLS)
		return 0;
	x->u_want_write = false;
	if (x->h2x && h2x_send(x->h2x, &x->up, &x->down, TLS_PLAIN_MAX) < 0)
		return -1;
	while (buf_size(&x->up)) {
		size_t len = buf_size(&x->up) < INT32_MAX ? buf_size(&x->up) : INT32_MAX;
		int w = SSL_write(x->u, buf_head(&x->up), (int)len);

		if (w <= 0) {
			if (fatal(x->u, w)) {
				ERR_clear_error();
				return -1;
			}
			x->u_want_write = SSL_get_error(x->u, w) == SSL_ERROR_WANT_WRITE;
			break;
		}
		buf_consume(&x->up, (size_t)w);
	}
	if (x->g_eof && !buf_size(&x->up) && !x->u_shut) {
		SSL_shutdown(x->u);
		shutdown(f->fd, SHUT_WR);
		x->u_shut = true;
	}
	while (!x->u_eof && buf_size(&x->down) < TLS_PLAIN_MAX && (x->h2x || !x->h2)) {
		int r = SSL_read(x->u, tmp, sizeof(tmp));

		if (r <= 0) {
			int e = SSL_get_error(x->u, r);

			if (e == SSL_ERROR_WANT_READ)
				break;
			if (e == SSL_ERROR_WANT_WRITE) {
				x->u_want_write = true;
				break;
			}
			/* close_notify, or a server that just closed: the end either way. */
			ERR_clear_error();
			x->u_eof = true;
			if (x->hx)
				hx_response_end(x->hx, &x->down);
			if (x->h2x) {
				h2x_upstream_end(x->h2x);
				if (h2x_send(x->h2x, &x->up, &x->down, TLS_PLAIN_MAX) < 0)
					return -1;
			}
			break;
		}
		if (x->h2x) {
			if (h2x_upstream(x->h2x, tmp, (size_t)r) < 0 ||
			    h2x_send(x->h2x, &x->up, &x->down, TLS_PLAIN_MAX) < 0)
				return -1;
			continue;
		}
		if (!x->hx)
			continue; /* nothing asked: nothing to answer */
		switch (hx_response(x->hx, tmp, (size_t)r, &x->down)) {
		case HX_OK:
			break;
		case HX_BAD:
			x->mode = IX_CLOSING; /* a 502 went to the guest when it could */
			return 0;
		default:
			return -1;
		}
		/* Bytes the guest sent after an Upgrade request wait for this response. */
		if (hx_request(x->hx, NULL, 0, &x->up, &x->down) != HX_OK) {
			x->mode = IX_CLOSING;
			return 0;
		}
	}
	return 0;
}

/* x->down -> guest TLS -> f->h2g; the guest's stream ends once ours has. */
static void guest_out(struct tcp_flow *f)
{
	struct ix *x = f->ix;

	/* Broken, or over: a violation's GOAWAY, or the server's end, is out. */
	if (x->h2x && x->mode == IX_TLS &&
	    (h2x_send(x->h2x, &x->up, &x->down, TLS_PLAIN_MAX) < 0 || h2x_done(x->h2x)))
		x->mode = IX_CLOSING;
	while (x->g_done && buf_size(&x->down) && BIO_ctrl_pending(x->g_out) < TLS_PLAIN_MAX) {
		size_t len = buf_size(&x->down) < 16384 ? buf_size(&x->down) : 16384;
		int w = SSL_write(x->g, buf_head(&x->down), (int)len);

		if (w <= 0) {
			ERR_clear_error();
			break;
		}
		buf_consume(&x->down, (size_t)w);
	}
	if (x->g_done && !buf_size(&x->down) && !x->g_shut &&
	    ((x->u_eof && !x->h2x) || x->mode == IX_CLOSING)) {
		SSL_shutdown(x->g);
		ERR_clear_error();
		x->g_shut = true;
	}
	while (BIO_ctrl_pending(x->g_out) && buf_size(&f->h2g) < TCP_BUF) {
		size_t room = TCP_BUF - buf_size(&f->h2g);
		uint8_t *p = buf_tail(&f->h2g, room);
		int r;

		if (!p)
			break;
		r = BIO_read(x->g_out, p, (int)room);
		if (r <= 0)
			break;
		buf_commit(&f->h2g, (size_t)r);
	}
	if (x->g_shut && !BIO_ctrl_pending(x->g_out))
		f->host_eof = true;
}

/* The guest's handshake, as far as it goes. Return: 0, or 1 when it failed (answered or reset). */
static int guest_handshake(struct tcp_flow *f)
{
	struct ix *x = f->ix;
	int r;

	if (x->g_done)
		return 0;
	r = SSL_do_handshake(x->g);
	if (r == 1) {
		x->g_done = true;
	} else if (fatal(x->g, r)) {
		char why[200];

		ssl_why(why, sizeof(why), "handshake");
		log_info("net: https %s: the guest's TLS handshake failed (%s)", x->sni, why);
		guest_out(f); /* its alert, if any */
		return 1;
	}
	return 0;
}

static int pump_tls(struct net *n, struct tcp_flow *f)
{
	struct ix *x = f->ix;

	/* The guest's TLS bytes in, while OpenSSL has room for them. */
	while (buf_size(&f->g2h) && BIO_ctrl_pending(x->g_in) < TLS_PLAIN_MAX) {
		size_t len = buf_size(&f->g2h) < 16384 ? buf_size(&f->g2h) : 16384;
		int w = BIO_write(x->g_in, buf_head(&f->g2h), (int)len);

		if (w <= 0)
			return -1;
		buf_consume(&f->g2h, (size_t)w);
	}
	/* Twice: a guest offering HTTP/2 waits on the upstream's handshake (hello_cb). */
	if (guest_handshake(f))
		return buf_size(&f->h2g) ? 0 : -1;
	upstream_handshake(f);
	if (guest_handshake(f))
		return buf_size(&f->h2g) ? 0 : -1;
	/* HTTP/2 both ways: the engine starts now, before either side's first frame is read. */
	if (x->g_done && x->h2 && !x->h2x && start_hx(n, f) < 0)
		return -1;
	if (x->mode == IX_TLS && guest_plain(n, f) < 0)
		return -1;
	if (upstream_io(f) < 0) {
		if (!x->g_done || x->h2x)
			return -1;
		refuse(f, &x->down, 502, "Bad Gateway",
		       "msb: the connection to the server failed\n");
	}
	if (x->mode == IX_TLS && x->u_done && !x->u_eof)
		(void)guest_plain(n, f); /* room upstream may have let more through */
	guest_out(f);
	if (x->mode == IX_CLOSING && f->fd >= 0 && !x->u_shut) {
		shutdown(f->fd, SHUT_RDWR);
		x->u_shut = true;
	}
	return 0;
}

int ix_pump(struct net *n, struct tcp_flow *f)
{
	struct ix *x = f->ix;

	if (x->mode == IX_CONNECT)
		return pump_connect(f) < 0 || tcp_recv_host(f) < 0 ? -1 : 0;
	if (x->mode == IX_PEEK && x->tunnel && tcp_recv_host(f) < 0)
		return -1; /* the proxy's answer to CONNECT, for the guest */
	if (x->mode == IX_PEEK) {
		int r = decide(f);

		if (r <= 0)
			return r;
		if (!f->ix)
			return 0; /* a plain relay now: tcp.c carries on */
		x = f->ix;
	}
	if (x->mode == IX_SCAN)
		return pump_scan(f);
	if (x->mode == IX_CLOSING && !x->g) {
		buf_consume(&f->g2h, buf_size(&f->g2h));
		return 0;
	}
	return pump_tls(n, f);
}

uint32_t ix_events(const struct tcp_flow *f)
{
	const struct ix *x = f->ix;
	uint32_t want = 0;

	switch (x->mode) {
	case IX_PEEK:
		return x->tunnel && !f->host_eof && buf_size(&f->h2g) < TCP_BUF ? EPOLLIN : 0;
	case IX_CONNECT:
		return 0;
	case IX_SCAN:
		if (!f->host_eof && buf_size(&f->h2g) < TCP_BUF)
			want |= EPOLLIN;
		if (buf_size(&f->g2h))
			want |= EPOLLOUT;
		return want;
	case IX_CLOSING:
		return 0;
	case IX_TLS:
		break;
	}
	if (!x->u_done && !x->u_failed)
		return x->u_want_write ? EPOLLOUT : EPOLLIN;
	if (!x->u_eof && buf_size(&x->down) < TLS_PLAIN_MAX)
		want |= EPOLLIN;
	if (x->u_want_write || (x->u_done && buf_size(&x->up)))
		want |= EPOLLOUT;
	return want;
}
