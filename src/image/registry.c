// SPDX-License-Identifier: Apache-2.0
/*
 * Registry client over libcurl. Everything a registry sends is untrusted:
 * bodies are size-capped, headers parsed with bounds, tokens checked before
 * they go into a header, error texts sanitised before they are printed, and
 * no transfer may stall: less than STALL_RATE bytes a second over a stall
 * window (registries.stall_timeout) ends it, and small requests (manifests,
 * configs, tokens, auth checks) must also finish within a few windows.
 */
#define _GNU_SOURCE
#include "image/registry.h"

#include <errno.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "image/auth.h"
#include "image/challenge.h"
#include "image/regconfig.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"
#include "util/text.h"
#include "util/version.h"

#define ERROR_BODY_MAX (64u << 10)
#define TOKEN_BODY_MAX (1u << 20)
#define CA_BUNDLE_MAX  (16u << 20)

static const char *const manifest_accept =
	"Accept: application/vnd.oci.image.index.v1+json, "
	"application/vnd.oci.image.manifest.v1+json, "
	"application/vnd.docker.distribution.manifest.list.v2+json, "
	"application/vnd.docker.distribution.manifest.v2+json";

struct reg_client {
	char *host;
	char *base;
	bool insecure;
	struct reg_cred cred;
	char *auth; /* "Authorization: ..." for every request, or NULL */
	bool tried_auth;
	char *ca; /* PEM bundle (system + registries.ca_certs), or NULL */
	size_t ca_len;
	char *ca_file, *ca_dir; /* OpenSSL's default roots, as its environment variables say */
	uint64_t stall_ms;	/* registries.stall_timeout */
	int cancel_fd;
	/* Why the credentials were kept from the token service (for the 401 that may follow). */
	char withheld[1200];
};

/*
 * Watches one transfer from curl's progress callback: stalled when fewer
 * than STALL_RATE bytes a second moved over a whole window, too slow when
 * a small request outlives its total limit.
 */
struct watch {
	uint64_t window_ms, total_ms; /* total_ms 0: no total limit */
	uint64_t start, win_start;
	curl_off_t win_bytes;
	enum { WATCH_OK, WATCH_STALLED, WATCH_TOO_LONG } why;
};

/* One response: status, capped body, and the headers msb looks at. */
struct resp {
	long status;
	struct buf *body;
	size_t max;
	bool too_big;
	bool https_redirects; /* credentials go with this request: never redirect to http */
	char www_auth[2048];
	char ctype[256];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *reg_cred_source(const struct reg_client *c)
{
	return c->cred.source;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The trusted roots: OpenSSL's default file and directory (SSL_CERT_FILE and
 * SSL_CERT_DIR when set, as OpenSSL itself honours them), plus
 * registries.ca_certs, which is added to them, not put in their place.
 */
static int load_ca(struct reg_client *c, const char *extra, struct msb_err **err)
{
	_cleanup_free_ char *sys = NULL, *add = NULL;
	const char *file = getenv(X509_get_default_cert_file_env());
	const char *dir = getenv(X509_get_default_cert_dir_env());
	size_t ns = 0, na = 0;
	int r;

	if (!file || !*file)
		file = X509_get_default_cert_file();
	if (!dir || !*dir)
		dir = X509_get_default_cert_dir();
	c->ca_file = strdup(file);
	c->ca_dir = strdup(dir);
	if (!c->ca_file || !c->ca_dir)
		return msb_err_sys(err, ENOMEM, "CA bundle");
	if (!extra)
		return 0;
	r = read_file(extra, CA_BUNDLE_MAX, &add, &na);
	if (r < 0)
		return msb_err_sys(err, -r, "registries.ca_certs %s", extra);
	if (!strstr(add, "-----BEGIN CERTIFICATE-----"))
		return msb_err_set(err, EINVAL, "registries.ca_certs %s: no PEM certificate in it",
				   extra);
	if (read_file(c->ca_file, CA_BUNDLE_MAX, &sys, &ns) < 0)
		ns = 0;
	c->ca = malloc(ns + na + 2);
	if (!c->ca)
		return msb_err_sys(err, ENOMEM, "CA bundle");
	if (ns)
		memcpy(c->ca, sys, ns);
	c->ca[ns] = '\n';
	memcpy(c->ca + ns + 1, add, na);
	c->ca_len = ns + 1 + na;
	c->ca[c->ca_len] = '\0';
	return 0;
}

/* A client for @registry ("docker.io", "host:port"); @cred overrides the configured credentials. */
static int open_host(json_t *cfg, const char *registry, const struct reg_cred *cred,
		     struct reg_client **out, struct msb_err **err)
{
	struct reg_client *c;
	struct reg_settings s;

	pthread_once(&curl_once, curl_init_once);
	c = calloc(1, sizeof(*c));
	if (!c)
		return msb_err_sys(err, ENOMEM, "registry");
	c->cancel_fd = -1;
	if (regcfg_stall_timeout(cfg, &c->stall_ms, err) < 0) {
		reg_close(c);
		return -1;
	}
	c->host = strdup(strcmp(registry, DOCKER_HUB) ? registry : DOCKER_HUB_API);
	regcfg_host(cfg, registry, &s);
	c->insecure = s.insecure;
	if (!c->host ||
	    asprintf(&c->base, "%s://%s", c->insecure ? "http" : "https", c->host) < 0) {
		c->base = NULL;
		reg_close(c);
		return msb_err_sys(err, ENOMEM, "registry");
	}
	if (load_ca(c, regcfg_ca_certs(cfg), err) < 0) {
		reg_close(c);
		return -1;
	}
	if (cred) {
		c->cred.username = strdup(cred->username);
		c->cred.password = strdup(cred->password);
		if (!c->cred.username || !c->cred.password) {
			reg_close(c);
			return msb_err_sys(err, ENOMEM, "registry");
		}
	} else if (auth_resolve(cfg, registry, &c->cred, err) < 0) {
		reg_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

int reg_open(json_t *cfg, const struct image_ref *ref, struct reg_client **out,
	     struct msb_err **err)
{
	return open_host(cfg, ref->registry, NULL, out, err);
}

void reg_close(struct reg_client *c)
{
	if (!c)
		return;
	free(c->host);
	free(c->base);
	auth_cred_free(&c->cred);
	if (c->auth) {
		explicit_bzero(c->auth, strlen(c->auth));
		free(c->auth);
	}
	free(c->ca);
	free(c->ca_file);
	free(c->ca_dir);
	free(c);
}

void reg_set_cancel(struct reg_client *c, int fd)
{
	c->cancel_fd = fd;
}

/* Return: true once the cancel fd is readable. */
static bool cancel_requested(const struct reg_client *c)
{
	struct pollfd p = { .fd = c->cancel_fd, .events = POLLIN };

	return c->cancel_fd >= 0 && poll(&p, 1, 0) > 0;
}

static int interrupted(struct msb_err **err)
{
	msb_err_set(err, EINTR, "interrupted");
	msb_err_exit(err, 130);
	return -1;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct watch *w = arg;
	uint64_t now = now_ms();
	curl_off_t bytes = dlnow + ulnow;

	(void)dltotal;
	(void)ultotal;
	/* A redirect starts the counts again. */
	if (bytes < w->win_bytes)
		w->win_bytes = bytes;
	if (w->total_ms && now - w->start >= w->total_ms) {
		w->why = WATCH_TOO_LONG;
		return 1;
	}
	if (now - w->win_start >= w->window_ms) {
		/* Averaged over the whole window: a drip of a few bytes does not reset it. */
		if ((uint64_t)(bytes - w->win_bytes) * 1000 <
		    (uint64_t)STALL_RATE * (now - w->win_start)) {
			w->why = WATCH_STALLED;
			return 1;
		}
		w->win_start = now;
		w->win_bytes = bytes;
	}
	return 0;
}

/* Arms @w on @h: small requests also get a total limit. */
static void watch_start(const struct reg_client *c, CURL *h, struct watch *w, bool small)
{
	*w = (struct watch){ .window_ms = c->stall_ms,
			     .total_ms = small ? c->stall_ms * SMALL_REQUEST_WINDOWS : 0,
			     .start = now_ms() };
	w->win_start = w->start;
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
}

/* The error for a transfer its watch ended. Return: -1, or 0 when the watch did not end it. */
static int watch_error(const struct reg_client *c, const struct watch *w, struct msb_err **err)
{
	char d[32];

	if (w->why == WATCH_STALLED) {
		format_duration(w->window_ms, d, sizeof(d));
		return msb_err_set(err, ETIMEDOUT,
				   "registry %s: transfer stalled (less than %u KiB/s for %s)",
				   c->host, STALL_RATE >> 10, d);
	}
	if (w->why == WATCH_TOO_LONG) {
		format_duration(w->total_ms, d, sizeof(d));
		return msb_err_set(err, ETIMEDOUT,
				   "registry %s: request not done after %s (the limit for "
				   "manifests, configs and tokens: %d stall windows)",
				   c->host, d, SMALL_REQUEST_WINDOWS);
	}
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n;

	if (buf_size(r->body) + len > r->max) {
		r->too_big = true;
		return 0;
	}
	return buf_append(r->body, p, len) == 0 ? len : 0;
}

/* Keeps the headers of the last response only (redirects produce several). */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n;
	char line[2048];
	size_t k = len < sizeof(line) - 1 ? len : sizeof(line) - 1;

	memcpy(line, p, k);
	line[k] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (!strncmp(line, "HTTP/", 5)) {
		r->www_auth[0] = r->ctype[0] = '\0';
	} else if (!strncasecmp(line, "WWW-Authenticate:", 17)) {
		snprintf(r->www_auth, sizeof(r->www_auth), "%s", line + 17);
	} else if (!strncasecmp(line, "Content-Type:", 13)) {
		const char *v = line + 13;

		while (*v == ' ')
			v++;
		snprintf(r->ctype, sizeof(r->ctype), "%.*s", (int)strcspn(v, ";"), v);
	}
	return len;
}

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void setup(struct reg_client *c, CURL *h, const char *url, bool https_redirects)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	/* Blob storage may redirect to a CDN; never from https down to http. */
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR,
			 c->insecure && !https_redirects ? "http,https" : "https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "msb/" MSB_VERSION);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "identity");
	if (c->ca) {
		struct curl_blob blob = { .data = c->ca,
					  .len = c->ca_len,
					  .flags = CURL_BLOB_NOCOPY };

		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	} else if (c->ca_file) {
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	}
	if (c->ca_dir && is_dir(c->ca_dir))
		curl_easy_setopt(h, CURLOPT_CAPATH, c->ca_dir);
}

static struct curl_slist *headers(struct reg_client *c, const char *accept)
{
	struct curl_slist *l = NULL;

	if (accept)
		l = curl_slist_append(l, accept);
	if (c->auth)
		l = curl_slist_append(l, c->auth);
	return l;
}

/* Describes a transport failure the way a user can act on it. */
static int transport_error(struct reg_client *c, CURLcode res, const char *errbuf,
			   struct msb_err **err)
{
	const char *why = *errbuf ? errbuf : curl_easy_strerror(res);

	switch (res) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
		return msb_err_set(err, EHOSTUNREACH, "registry %s is unreachable: %s", c->host,
				   why);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return msb_err_set(err, EPROTO,
				   "registry %s: TLS certificate not trusted: %s (add its CA with "
				   "registries.ca_certs in config.json)",
				   c->host, why);
	case CURLE_SSL_CONNECT_ERROR:
		return msb_err_set(err, EPROTO,
				   "registry %s: TLS handshake failed: %s (if it serves plain "
				   "HTTP, mark it insecure in config.json)",
				   c->host, why);
	default:
		return msb_err_set(err, EIO, "registry %s: %s", c->host, why);
	}
}

/* The registry's own explanation of an error: "MANIFEST_UNKNOWN: manifest unknown". */
static void error_text(const struct buf *body, char *out, size_t cap)
{
	json_t *o = json_loadb((const char *)buf_head(body), buf_size(body), 0, NULL);
	json_t *e = json_array_get(json_object_get(o, "errors"), 0);
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	out[0] = '\0';
	if (code || msg)
		snprintf(out, cap, "%s%s%s", code ? code : "", code && msg ? ": " : "",
			 msg ? msg : "");
	json_decref(o);
	text_sanitize_inplace(out);
}

/*
 * Runs @h to completion on a private multi handle, so that the cancel fd
 * can wake it at once. Return: 0 with the transfer's result in *@res, or
 * -1 (interrupted, or curl failed) with @err.
 */
static int run_transfer(const struct reg_client *c, CURL *h, CURLcode *res, struct msb_err **err)
{
	CURLM *m = curl_multi_init();
	int rc = 0;
	bool done = false;

	if (!m || curl_multi_add_handle(m, h) != CURLM_OK) {
		if (m)
			curl_multi_cleanup(m);
		return msb_err_sys(err, ENOMEM, "curl");
	}
	while (!done) {
		struct curl_waitfd w = { .fd = c->cancel_fd, .events = CURL_WAIT_POLLIN };
		CURLMsg *msg;
		int running, nq;

		if (cancel_requested(c)) {
			rc = interrupted(err);
			break;
		}
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			rc = msb_err_set(err, EIO, "registry %s: curl failed", c->host);
			break;
		}
		while ((msg = curl_multi_info_read(m, &nq))) {
			if (msg->msg == CURLMSG_DONE) {
				*res = msg->data.result;
				done = true;
			}
		}
		if (!done)
			curl_multi_poll(m, c->cancel_fd >= 0 ? &w : NULL, c->cancel_fd >= 0 ? 1 : 0,
					1000, NULL);
	}
	curl_multi_remove_handle(m, h);
	curl_multi_cleanup(m);
	return rc;
}

static int perform(struct reg_client *c, const char *url, const char *accept, struct resp *r,
		   bool with_auth, struct msb_err **err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = curl_easy_init();
	struct curl_slist *hl;
	struct watch w;
	CURLcode res = CURLE_OK;
	int rc;

	if (!h)
		return msb_err_sys(err, ENOMEM, "curl");
	buf_clear(r->body);
	r->too_big = false;
	setup(c, h, url, r->https_redirects);
	watch_start(c, h, &w, true);
	hl = with_auth ? headers(c, accept) : (accept ? curl_slist_append(NULL, accept) : NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	rc = run_transfer(c, h, &res, err);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	if (rc < 0)
		return -1;
	if (r->too_big)
		return msb_err_set(err, EFBIG, "registry %s: response larger than %zu bytes",
				   c->host, r->max);
	if (res == CURLE_ABORTED_BY_CALLBACK && watch_error(c, &w, err) < 0)
		return -1;
	if (res != CURLE_OK)
		return transport_error(c, res, errbuf, err);
	return 0;
}

static char *url_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0), *out;

	if (!e)
		return NULL;
	out = strdup(e);
	curl_free(e);
	return out;
}

static void set_auth(struct reg_client *c, char *header)
{
	if (c->auth) {
		explicit_bzero(c->auth, strlen(c->auth));
		free(c->auth);
	}
	c->auth = header;
}

static char *basic_header(const struct reg_cred *cred)
{
	_cleanup_free_ char *pair = NULL, *enc = NULL;
	char *h = NULL;

	if (asprintf(&pair, "%s:%s", cred->username, cred->password) < 0)
		return NULL;
	enc = b64_encode(pair, strlen(pair));
	explicit_bzero(pair, strlen(pair));
	if (!enc || asprintf(&h, "Authorization: Basic %s", enc) < 0)
		h = NULL;
	if (enc)
		explicit_bzero(enc, strlen(enc));
	return h;
}

static int not_authorized(struct reg_client *c, struct msb_err **err)
{
	if (c->cred.username && c->withheld[0])
		return msb_err_set(
			err, EACCES,
			"registry %s: authentication required, and the credentials of %s "
			"were not sent to its token service %s",
			c->host, c->cred.username, c->withheld);
	/* Credentials with no source are the ones a login is checking. */
	if (c->cred.username && !c->cred.source[0])
		return msb_err_set(
			err, EACCES,
			"registry %s: login failed for user %s: wrong username or password",
			c->host, c->cred.username);
	if (c->cred.username)
		return msb_err_set(err, EACCES,
				   "registry %s: authentication failed for user %s (credentials "
				   "from %s; check them with 'msb registry login %s')",
				   c->host, c->cred.username, c->cred.source, c->host);
	return msb_err_set(
		err, EACCES,
		"registry %s: authentication required (log in with 'msb registry login %s')",
		c->host, c->host);
}

/* The host part of @url, lower-cased, without port or brackets. Return: 0, or -1 if unparsable. */
static int url_host(const char *url, char *scheme, size_t scap, char *host, size_t hcap)
{
	CURLU *u = curl_url();
	char *s = NULL, *h = NULL;
	int r = -1;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &s, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK && strlen(s) < scap &&
	    strlen(h) < hcap) {
		snprintf(scheme, scap, "%s", s);
		snprintf(host, hcap, "%s", h);
		for (char *p = host; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		r = 0;
	}
	curl_free(s);
	curl_free(h);
	curl_url_cleanup(u);
	return r;
}

/*
 * Whether the user's credentials may go to the token service at @realm:
 * over https, yes; over plain http only when the registry itself is an
 * insecure one on the same host (a test or LAN setup the user chose).
 * Docker sends them to any realm a registry names, which lets a registry,
 * or anyone who can change its answer on a plain-http hop, collect the
 * password in clear text from another host. Return: true, or false with
 * the reason in @why.
 */
static bool realm_trusted(const struct reg_client *c, const char *realm, char *why, size_t cap)
{
	char rs[16], rh[256], bs[16], bh[256];

	if (url_host(realm, rs, sizeof(rs), rh, sizeof(rh)) < 0) {
		snprintf(why, cap, "%.200s (not a valid URL)", realm);
		return false;
	}
	if (!strcmp(rs, "https"))
		return true;
	if (c->insecure && url_host(c->base, bs, sizeof(bs), bh, sizeof(bh)) == 0 &&
	    !strcmp(rh, bh))
		return true;
	snprintf(why, cap, "%.800s (plain HTTP on %s, not the registry's host)", realm, rh);
	return false;
}

/* Answers a 401's challenge: fetches a bearer token, or switches to Basic. */
static int authorize(struct reg_client *c, const char *repo, const char *www_auth,
		     struct msb_err **err)
{
	struct challenge ch;
	_cleanup_free_ char *svc = NULL, *scope = NULL, *url = NULL, *token = NULL;
	struct buf body = { 0 };
	struct resp r = { .body = &body, .max = TOKEN_BODY_MAX };
	char *saved_auth, *hdr = NULL;
	bool send_cred;
	int rc;

	if (challenge_parse(www_auth, &ch) < 0)
		return msb_err_set(err, EPROTO, "registry %s: unsupported authentication challenge",
				   c->host);
	if (ch.scheme == AUTH_BASIC) {
		if (!c->cred.username)
			return not_authorized(c, err);
		hdr = basic_header(&c->cred);
		if (!hdr)
			return msb_err_sys(err, ENOMEM, "auth");
		set_auth(c, hdr);
		return 0;
	}
	/* Bearer: ask the token service for pull access to this repository (none: a login check).
	 */
	{
		char want[600];

		snprintf(want, sizeof(want), "repository:%s:pull", repo ? repo : "");
		svc = url_escape(ch.service);
		scope = url_escape(want);
	}
	if (!svc || !scope ||
	    asprintf(&url, "%s%sservice=%s%s%s", ch.realm, strchr(ch.realm, '?') ? "&" : "?", svc,
		     repo ? "&scope=" : "", repo ? scope : "") < 0)
		return msb_err_sys(err, ENOMEM, "auth");
	c->withheld[0] = '\0';
	send_cred =
		c->cred.username && realm_trusted(c, ch.realm, c->withheld, sizeof(c->withheld));
	/* A login must check the credentials: an anonymous token would prove nothing. */
	if (c->cred.username && !send_cred && !c->cred.source[0])
		return msb_err_set(err, EACCES,
				   "registry %s: cannot check the credentials: msb does not send "
				   "them to the token service %s",
				   c->host, c->withheld);
	saved_auth = c->auth;
	c->auth = send_cred ? basic_header(&c->cred) : NULL;
	r.https_redirects = send_cred;
	rc = perform(c, url, NULL, &r, true, err);
	set_auth(c, saved_auth);
	if (rc == 0 && (r.status == 401 || r.status == 403))
		rc = not_authorized(c, err);
	else if (rc == 0 && r.status != 200)
		rc = msb_err_set(err, EPROTO, "registry %s: token service answered HTTP %ld",
				 c->host, r.status);
	else if (rc == 0 && token_parse((const char *)buf_head(&body), buf_size(&body), &token) < 0)
		rc = msb_err_set(err, EPROTO, "registry %s: malformed token response", c->host);
	buf_free(&body);
	if (rc < 0 || !token)
		return -1;
	if (asprintf(&hdr, "Authorization: Bearer %s", token) < 0)
		return msb_err_sys(err, ENOMEM, "auth");
	explicit_bzero(token, strlen(token));
	set_auth(c, hdr);
	return 0;
}

int reg_reauth(struct reg_client *c, const char *repo, struct msb_err **err)
{
	struct buf body = { 0 };
	struct resp r = { .body = &body, .max = ERROR_BODY_MAX };
	_cleanup_free_ char *url = NULL;
	int rc;

	set_auth(c, NULL);
	if (asprintf(&url, "%s/v2/", c->base) < 0)
		return msb_err_sys(err, ENOMEM, "auth");
	rc = perform(c, url, NULL, &r, false, err);
	buf_free(&body);
	if (rc < 0)
		return -1;
	if (r.status != 401)
		return 0;
	return authorize(c, repo, r.www_auth, err);
}

int reg_login_check(json_t *cfg, const char *registry, const char *username, const char *password,
		    struct msb_err **err)
{
	struct reg_cred cred = { .username = (char *)username, .password = (char *)password };
	struct reg_client *c = NULL;
	struct buf body = { 0 };
	struct resp r = { .body = &body, .max = ERROR_BODY_MAX };
	_cleanup_free_ char *url = NULL;
	int rc = -1;

	if (open_host(cfg, registry, &cred, &c, err) < 0 || !c)
		return -1;
	if (asprintf(&url, "%s/v2/", c->base) < 0) {
		msb_err_sys(err, ENOMEM, "login");
		goto out;
	}
	if (perform(c, url, NULL, &r, false, err) < 0)
		goto out;
	if (r.status == 401) {
		if (authorize(c, NULL, r.www_auth, err) < 0 ||
		    perform(c, url, NULL, &r, true, err) < 0)
			goto out;
		if (r.status == 401) {
			not_authorized(c, err);
			goto out;
		}
	}
	if (r.status != 200) {
		msb_err_set(err, EIO, "registry %s: HTTP %ld for /v2/ (is it an OCI registry?)",
			    c->host, r.status);
		goto out;
	}
	rc = 0;
out:
	buf_free(&body);
	reg_close(c);
	return rc;
}

/* GET with one retry after answering an auth challenge. */
static int get(struct reg_client *c, const char *repo, const char *url, const char *accept,
	       struct resp *r, struct msb_err **err)
{
	if (perform(c, url, accept, r, true, err) < 0)
		return -1;
	if (r->status == 401) {
		if (c->tried_auth)
			return not_authorized(c, err);
		c->tried_auth = true;
		if (authorize(c, repo, r->www_auth, err) < 0)
			return -1;
		if (perform(c, url, accept, r, true, err) < 0)
			return -1;
		if (r->status == 401)
			return not_authorized(c, err);
	}
	return 0;
}

static int status_error(struct reg_client *c, const struct resp *r, const char *what,
			struct msb_err **err)
{
	char text[512];

	error_text(r->body, text, sizeof(text));
	if (r->status == 403)
		return msb_err_set(err, EACCES, "registry %s: access to %s denied%s%s", c->host,
				   what, *text ? ": " : "", text);
	if (r->status == 404)
		return msb_err_set(err, ENOENT, "%s not found%s%s%s", what, *text ? " (" : "", text,
				   *text ? ")" : "");
	return msb_err_set(err, EIO, "registry %s: HTTP %ld for %s%s%s", c->host, r->status, what,
			   *text ? ": " : "", text);
}

int reg_get_manifest(struct reg_client *c, const char *repo, const char *object, struct buf *body,
		     char *ctype, size_t ctype_len, struct msb_err **err)
{
	_cleanup_free_ char *url = NULL;
	struct resp r = { .body = body, .max = MANIFEST_MAX };
	char what[600];

	if (asprintf(&url, "%s/v2/%s/manifests/%s", c->base, repo, object) < 0)
		return msb_err_sys(err, ENOMEM, "manifest");
	if (get(c, repo, url, manifest_accept, &r, err) < 0)
		return -1;
	if (r.status != 200) {
		snprintf(what, sizeof(what), "manifest %s:%s in %s", repo, object, c->host);
		return status_error(c, &r, what, err);
	}
	snprintf(ctype, ctype_len, "%s", r.ctype);
	return 0;
}

int reg_get_blob(struct reg_client *c, const char *repo, const char *digest, size_t max,
		 struct buf *body, struct msb_err **err)
{
	_cleanup_free_ char *url = NULL;
	struct resp r = { .body = body, .max = max };
	char what[600];

	if (asprintf(&url, "%s/v2/%s/blobs/%s", c->base, repo, digest) < 0)
		return msb_err_sys(err, ENOMEM, "blob");
	if (get(c, repo, url, NULL, &r, err) < 0)
		return -1;
	if (r.status != 200) {
		snprintf(what, sizeof(what), "blob %s in %s", digest, repo);
		return status_error(c, &r, what, err);
	}
	return 0;
}

/* The per-handle state of a streaming download, freed with the handle. */
struct blob_xfer {
	struct curl_slist *hl;
	struct resp r;
	struct buf errbody;
	curl_write_callback user_cb;
	void *user_ctx;
	struct watch w;
	char errbuf[CURL_ERROR_SIZE];
};

/* Error responses are kept (small) for the message; data goes to the caller. */
static size_t on_blob(char *p, size_t size, size_t n, void *arg)
{
	struct blob_xfer *x = arg;

	if (x->r.status == 200 || x->r.status == 206)
		return x->user_cb(p, size, n, x->user_ctx);
	return on_body(p, size, n, &x->r);
}

static size_t on_blob_header(char *p, size_t size, size_t n, void *arg)
{
	struct blob_xfer *x = arg;
	size_t len = on_header(p, size, n, &x->r);

	if (len >= 12 && !strncmp(p, "HTTP/", 5)) {
		const char *sp = memchr(p, ' ', len);

		x->r.status = sp ? strtol(sp + 1, NULL, 10) : 0;
		/* A redirect's status is not the final one. */
		if (x->r.status >= 300 && x->r.status < 400)
			x->r.status = 0;
	}
	return len;
}

CURL *reg_blob_handle(struct reg_client *c, const char *repo, const char *digest, uint64_t offset,
		      curl_write_callback write_cb, void *ctx)
{
	_cleanup_free_ char *url = NULL;
	struct blob_xfer *x = calloc(1, sizeof(*x));
	CURL *h = curl_easy_init();

	if (!x || !h || asprintf(&url, "%s/v2/%s/blobs/%s", c->base, repo, digest) < 0) {
		free(x);
		curl_easy_cleanup(h);
		return NULL;
	}
	x->r.body = &x->errbody;
	x->r.max = ERROR_BODY_MAX;
	x->user_cb = write_cb;
	x->user_ctx = ctx;
	setup(c, h, url, false);
	watch_start(c, h, &x->w, false);
	x->hl = headers(c, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hl);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_blob);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_blob_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_PRIVATE, x);
	if (offset)
		curl_easy_setopt(h, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)offset);
	return h;
}

void reg_blob_handle_free(CURL *h)
{
	struct blob_xfer *x = NULL;

	if (!h)
		return;
	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&x);
	curl_easy_cleanup(h);
	if (x) {
		curl_slist_free_all(x->hl);
		buf_free(&x->errbody);
		free(x);
	}
}

int reg_blob_status(struct reg_client *c, CURL *h, CURLcode res, uint64_t offset,
		    const char *digest, struct msb_err **err)
{
	struct blob_xfer *x = NULL;
	long status = 0;
	char what[200];

	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&x);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (res == CURLE_RANGE_ERROR || (offset && status == 200))
		return 1; /* the server sent the whole blob: start again from 0 */
	if (status == 416 && offset)
		return 1;
	if (status == 401)
		return -EAGAIN;
	if (res == CURLE_ABORTED_BY_CALLBACK && x && watch_error(c, &x->w, err) < 0)
		return -1;
	if (res != CURLE_OK && res != CURLE_WRITE_ERROR)
		return transport_error(c, res, x ? x->errbuf : "", err);
	if (res == CURLE_WRITE_ERROR && (status == 200 || status == 206))
		return msb_err_set(err, EIO, "blob %s: cannot store the download", digest);
	if (status != 200 && status != 206) {
		struct resp r = { .status = status, .body = x ? &x->errbody : NULL };
		struct buf empty = { 0 };

		if (!r.body)
			r.body = &empty;
		snprintf(what, sizeof(what), "blob %s", digest);
		return status_error(c, &r, what, err);
	}
	return 0;
}
