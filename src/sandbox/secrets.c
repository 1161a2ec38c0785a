// SPDX-License-Identifier: Apache-2.0
/* --secret: parsing, placeholders, the values' store and their handoff to the supervisor. */
#define _GNU_SOURCE
#include "sandbox/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/policy.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/keyring.h"
#include "util/le.h"
#include "util/parse.h"
#include "util/strv.h"

/* A store entry: {ENV: value} with JSON escapes; generous for 32 values of 4 KiB. */
#define STORE_MAX ((size_t)1 << 20)
/* What the fd handoff carries at most: the count, then a length and a value per secret. */
#define FD_MAX (4 + (size_t)SBX_MAX_SECRETS * (4 + SBX_SECRET_MAX_VALUE))

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void sbx_secret_values_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		wipe_free(v[i]);
	free(v);
}

/* --- names ------------------------------------------------------------- */

int sbx_host_pattern(const char *s, char *out, size_t outlen, char *why, size_t len)
{
	bool suffix = s[0] == '*' && s[1] == '.';
	const char *name = suffix ? s + 2 : s;
	char tok[SBX_HOST_PATTERN_MAX + 16], w[256];
	struct net_policy p;
	int r;

	/* Only name characters: the rule grammar's ':', ',' and '@' would mean more to it. */
	if (!*name || strlen(name) > 254 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789.-_") != strlen(name)) {
		snprintf(why, len,
			 "\"%.80s\" is not a host name (use an exact name such as api.example.com, "
			 "or *.example.com)",
			 s);
		return -EINVAL;
	}
	/* The --net-rule parser's name rules, so a secret's host is a name a rule could name. */
	snprintf(tok, sizeof(tok), "allow@%s%s", suffix ? "*." : "domain=", name);
	policy_init(&p);
	r = policy_add(&p, tok, w, sizeof(w));
	if (r == 0 && (p.n != 1 || strlen(p.rules[0].name) + 3 > outlen))
		r = -EINVAL;
	if (r == 0)
		snprintf(out, outlen, "%s%s", suffix ? "*." : "", p.rules[0].name);
	policy_free(&p);
	if (r == -ENOMEM) {
		snprintf(why, len, "out of memory");
		return r;
	}
	if (r < 0) {
		const char *reason = strstr(w, "\": ");

		snprintf(why, len, "\"%.80s\" is not a host name (%s)", s,
			 reason ? reason + 3
				: "use a name such as api.example.com or *.example.com");
		return -EINVAL;
	}
	return 0;
}

bool sbx_host_matches(const char *pattern, const char *host)
{
	size_t h = strlen(host), s;
	const char *suf;

	if (h && host[h - 1] == '.')
		h--;
	if (pattern[0] != '*')
		return strlen(pattern) == h && !strncasecmp(pattern, host, h);
	suf = pattern + 2;
	s = strlen(suf);
	if (h == s)
		return !strncasecmp(suf, host, h);
	return h > s && host[h - s - 1] == '.' && !strncasecmp(suf, host + h - s, s);
}

static bool env_name_ok(const char *s, size_t n)
{
	if (!n || n > 255 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return true;
}

/* An HTTP header name (RFC 9110 token), in lower case into @out. */
static bool header_name(const char *s, size_t n, char *out, size_t outlen)
{
	if (!n || n >= outlen)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + ('a' - 'A'));
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return false;
		out[i] = c;
	}
	out[n] = '\0';
	return true;
}

static size_t strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static bool strv_has(char *const *v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

/* Appends a copy of @s to NULL-terminated *@v unless it is there. Return: 0 or -ENOMEM. */
static int strv_add_unique(char ***v, const char *s)
{
	size_t n = strv_len(*v);
	char **nv;

	if (strv_has(*v, s))
		return 0;
	nv = realloc(*v, (n + 2) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[n] = strdup(s);
	nv[n + 1] = NULL;
	return nv[n] ? 0 : -ENOMEM;
}

static bool same_set(char *const *a, char *const *b)
{
	if (strv_len(a) != strv_len(b))
		return false;
	for (; a && *a; a++)
		if (!strv_has(b, *a))
			return false;
	return true;
}

/* --- --secret ---------------------------------------------------------- */

/* A secret being parsed: what the spec will keep, and its value. */
struct parsed {
	char env[256];
	char *value;	  /* owned */
	char **hosts;	  /* NULL-terminated, owned */
	char **headers;	  /* NULL: anywhere */
	bool value_owned; /* from the flag (not getenv) */
};

static void parsed_free(struct parsed *p)
{
	if (p->value_owned)
		wipe_free(p->value);
	cleanup_strvp(&p->hosts);
	cleanup_strvp(&p->headers);
}

/* HOSTS[;header=NAMES]... after the last '@'. */
static int parse_targets(struct parsed *p, const char *spec, char *why, size_t len)
{
	_cleanup_free_ char *s = strdup(spec);
	char *part, *save = NULL;
	bool first = true;
	size_t nh = 0;

	if (!s) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	for (part = strtok_r(s, ";", &save); part;
	     part = strtok_r(NULL, ";", &save), first = false) {
		bool headers = !first;
		char *item, *isave = NULL;

		if (headers) {
			if (strncasecmp(part, "header=", 7) != 0) {
				snprintf(why, len,
					 "--secret %s@...: unknown option \"%.40s\" after ';' (use "
					 ";header=NAME)",
					 p->env, part);
				return -EINVAL;
			}
			part += 7;
		}
		if (!*part) {
			snprintf(why, len, "--secret %s: %s", p->env,
				 headers ? "an empty header list after ;header="
					 : "no host after '@' (use ENV@HOST, e.g. "
					   "API_KEY@api.example.com)");
			return -EINVAL;
		}
		for (item = strtok_r(part, ",", &isave); item; item = strtok_r(NULL, ",", &isave)) {
			char buf[SBX_HOST_PATTERN_MAX], w[320];
			int r;

			if (headers) {
				if (!header_name(item, strlen(item), buf, sizeof(buf))) {
					snprintf(
						why, len,
						"--secret %s: \"%.60s\" is not an HTTP header name",
						p->env, item);
					return -EINVAL;
				}
				if (strv_len(p->headers) >= SBX_SECRET_MAX_HEADERS) {
					snprintf(why, len, "--secret %s: at most %d headers",
						 p->env, SBX_SECRET_MAX_HEADERS);
					return -E2BIG;
				}
				r = strv_add_unique(&p->headers, buf);
			} else {
				r = sbx_host_pattern(item, buf, sizeof(buf), w, sizeof(w));
				if (r < 0) {
					snprintf(why, len, "--secret %s: %s", p->env, w);
					return r;
				}
				if (++nh > SBX_SECRET_MAX_HOSTS) {
					snprintf(why, len, "--secret %s: at most %d hosts", p->env,
						 SBX_SECRET_MAX_HOSTS);
					return -E2BIG;
				}
				r = strv_add_unique(&p->hosts, buf);
			}
			if (r < 0) {
				snprintf(why, len, "out of memory");
				return r;
			}
		}
	}
	if (!p->hosts) {
		snprintf(why, len, "--secret %s: no host after '@' (use ENV@HOST)", p->env);
		return -EINVAL;
	}
	return 0;
}

static int parse_one(struct parsed *p, const char *arg, char *why, size_t len)
{
	const char *at = strrchr(arg, '@');
	size_t left = at ? (size_t)(at - arg) : strlen(arg);
	const char *eq = memchr(arg, '=', left);
	size_t elen = eq ? (size_t)(eq - arg) : left;
	size_t vlen;

	memset(p, 0, sizeof(*p));
	if (!env_name_ok(arg, elen)) {
		snprintf(why, len,
			 "invalid --secret \"%.*s%s\": the variable's name must be letters, digits "
			 "and '_', not starting with a digit (use ENV=VALUE@HOST or ENV@HOST)",
			 (int)(elen > 60 ? 60 : elen), arg, eq ? "=..." : "");
		return -EINVAL;
	}
	memcpy(p->env, arg, elen);
	p->env[elen] = '\0';
	if (!at) {
		snprintf(why, len,
			 "--secret %s: no host (use %s@HOST, e.g. %s%s@api.example.com: the value "
			 "goes only there)",
			 p->env, eq ? "ENV=VALUE" : "ENV", p->env, eq ? "=VALUE" : "");
		return -EINVAL;
	}
	if (eq) {
		vlen = (size_t)(at - eq - 1);
		if (vlen > SBX_SECRET_MAX_VALUE) {
			snprintf(why, len, "--secret %s: the value is longer than %d bytes", p->env,
				 SBX_SECRET_MAX_VALUE);
			return -E2BIG;
		}
		p->value = strndup(eq + 1, vlen);
		p->value_owned = true;
		if (!p->value) {
			snprintf(why, len, "out of memory");
			return -ENOMEM;
		}
	} else {
		const char *v = getenv(p->env);

		if (!v) {
			snprintf(why, len,
				 "--secret %s@...: $%s is not set in msb's environment (export it, "
				 "or give %s=VALUE@HOST)",
				 p->env, p->env, p->env);
			return -EINVAL;
		}
		vlen = strlen(v);
		if (vlen > SBX_SECRET_MAX_VALUE) {
			snprintf(why, len, "--secret %s: $%s is longer than %d bytes", p->env,
				 p->env, SBX_SECRET_MAX_VALUE);
			return -E2BIG;
		}
		p->value = strdup(v);
		p->value_owned = true;
		if (!p->value) {
			snprintf(why, len, "out of memory");
			return -ENOMEM;
		}
	}
	if (!vlen) {
		snprintf(why, len, "--secret %s: the value is empty", p->env);
		return -EINVAL;
	}
	if (strpbrk(p->value, "\r\n")) {
		snprintf(why, len,
			 "--secret %s: the value has a line break (a secret is one line of text)",
			 p->env);
		return -EINVAL;
	}
	return parse_targets(p, at + 1, why, len);
}

int sbx_secret_parse(struct sbx_net *n, char ***values, const char *arg, char *why, size_t len)
{
	struct parsed p;
	struct sbx_secret *s, *nv;
	char **vv;
	int r = parse_one(&p, arg, why, len);

	if (r < 0)
		goto out;
	for (size_t i = 0; i < n->nsecrets; i++) {
		s = &n->secrets[i];
		if (strcmp(s->env, p.env) != 0)
			continue;
		if (!*values || strcmp((*values)[i], p.value) != 0) {
			snprintf(why, len,
				 "--secret %s: given twice with different values (one variable has "
				 "one "
				 "value; give its hosts as a list, %s@a.example,b.example)",
				 p.env, p.env);
			r = -EINVAL;
			goto out;
		}
		if (!same_set(s->headers, p.headers)) {
			snprintf(why, len,
				 "--secret %s: given twice with different ;header= restrictions "
				 "(give them once)",
				 p.env);
			r = -EINVAL;
			goto out;
		}
		for (char **h = p.hosts; h && *h; h++) {
			if (!strv_has(s->hosts, *h) && strv_len(s->hosts) >= SBX_SECRET_MAX_HOSTS) {
				snprintf(why, len, "--secret %s: at most %d hosts", p.env,
					 SBX_SECRET_MAX_HOSTS);
				r = -E2BIG;
				goto out;
			}
			if ((r = strv_add_unique(&s->hosts, *h)) < 0) {
				snprintf(why, len, "out of memory");
				goto out;
			}
		}
		goto out;
	}
	if (n->nsecrets >= SBX_MAX_SECRETS) {
		snprintf(why, len, "--secret %s: at most %d secrets", p.env, SBX_MAX_SECRETS);
		r = -E2BIG;
		goto out;
	}
	nv = realloc(n->secrets, (n->nsecrets + 1) * sizeof(*nv));
	if (nv)
		n->secrets = nv;
	vv = nv ? realloc(*values, (n->nsecrets + 1) * sizeof(char *)) : NULL;
	if (vv)
		*values = vv;
	if (!nv || !vv) {
		snprintf(why, len, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	s = &n->secrets[n->nsecrets];
	memset(s, 0, sizeof(*s));
	s->env = strdup(p.env);
	if (!s->env) {
		snprintf(why, len, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	s->hosts = steal_ptr(p.hosts);
	s->headers = steal_ptr(p.headers);
	(*values)[n->nsecrets++] = steal_ptr(p.value);
out:
	parsed_free(&p);
	return r;
}

static const char *const violation_names[] = {
	[SBX_VIOLATION_BLOCK] = "block",
	[SBX_VIOLATION_BLOCK_AND_LOG] = "block-and-log",
	[SBX_VIOLATION_BLOCK_AND_TERMINATE] = "block-and-terminate",
	[SBX_VIOLATION_PASSTHROUGH] = "passthrough",
};

int sbx_violation_parse(const char *s, enum sbx_violation *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(violation_names); i++) {
		if (!strcmp(s, violation_names[i])) {
			*out = (enum sbx_violation)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *sbx_violation_name(enum sbx_violation v)
{
	return (size_t)v < ARRAY_SIZE(violation_names) ? violation_names[v] : "block";
}

/* Can the sandbox reach some name @pattern covers, by name? */
static bool reachable(const struct net_policy *p, const char *pattern)
{
	const char *suf = pattern + 2;
	size_t s = strlen(suf);

	if (pattern[0] != '*')
		return policy_dns_allowed(p, pattern);
	if (policy_dns_allowed(p, suf))
		return true;
	/* allow@api.example.com lets *.example.com's secret reach that one. */
	for (unsigned i = 0; i < p->n; i++) {
		const struct net_rule *r = &p->rules[i];
		size_t k = strlen(r->name);

		if (r->allow && (r->dirs & NET_EGRESS) &&
		    (r->target == NET_T_DOMAIN || r->target == NET_T_SUFFIX) && k > s &&
		    r->name[k - s - 1] == '.' && !strcmp(r->name + k - s, suf) &&
		    policy_dns_allowed(p, r->name))
			return true;
	}
	return false;
}

int sbx_secrets_check(const struct sbx_net *n, char *const *env, char *why, size_t len)
{
	for (size_t i = 0; i < n->nsecrets; i++) {
		const struct sbx_secret *s = &n->secrets[i];
		size_t k = strlen(s->env);

		for (char *const *e = env; e && *e; e++) {
			if (!strncmp(*e, s->env, k) && (*e)[k] == '=') {
				snprintf(
					why, len,
					"--secret %s and --env %s set the same variable (the guest "
					"sees the secret's placeholder in $%s: drop the --env)",
					s->env, s->env, s->env);
				return -EINVAL;
			}
		}
		for (char **h = s->hosts; h && *h; h++) {
			if (reachable(&n->policy, *h))
				continue;
			snprintf(why, len,
				 "--secret %s@%s: the network policy%s lets the sandbox reach no "
				 "such "
				 "host (add --net-rule allow@%s, or drop the secret)",
				 s->env, *h,
				 n->policy.egress == NET_DEF_DENY
					 ? " (--no-net or a default of deny)"
					 : "",
				 *h);
			return -EINVAL;
		}
	}
	return 0;
}

int sbx_secrets_placeholders(struct sbx_net *n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n->nsecrets; i++) {
		uint8_t rnd[16];
		char *p;
		size_t o = sizeof(SBX_PLACEHOLDER_PREFIX) - 1;
		int r;

		if (n->secrets[i].placeholder)
			continue;
		r = random_bytes(rnd, sizeof(rnd));
		if (r < 0)
			return r;
		p = malloc(SBX_PLACEHOLDER_LEN + 1);
		if (!p)
			return -ENOMEM;
		memcpy(p, SBX_PLACEHOLDER_PREFIX, o);
		for (size_t k = 0; k < sizeof(rnd); k++) {
			p[o++] = hex[rnd[k] >> 4];
			p[o++] = hex[rnd[k] & 15];
		}
		p[o] = '\0';
		n->secrets[i].placeholder = p;
	}
	return 0;
}

/* --- the store ---------------------------------------------------------- */

char *sbx_secrets_file(const char *name)
{
	const char *home = msb_home();
	char *p = NULL;

	if (!home || !valid_sandbox_name(name) ||
	    asprintf(&p, "%s/secrets/sandboxes/%s", home, name) < 0)
		return NULL;
	return p;
}

/* {ENV: value}, compact. Return: newly allocated (wipe it), or NULL. */
static char *store_blob(const struct sbx_net *n, char *const *values)
{
	json_t *o = json_object();
	char *s;

	for (size_t i = 0; o && i < n->nsecrets; i++) {
		if (json_object_set_new(o, n->secrets[i].env, json_string(values[i])) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	/* jansson's strings hold copies of the values: wipe them before they go back. */
	if (o) {
		const char *k;
		json_t *v;

		json_object_foreach(o, k, v)
		{
			char *c = (char *)json_string_value(v);

			if (c)
				explicit_bzero(c, json_string_length(v));
		}
		json_decref(o);
	}
	return s;
}

int sbx_secrets_save(const char *name, struct sbx_net *n, char *const *values, struct msb_err **err)
{
	_cleanup_free_ char *path = sbx_secrets_file(name), *dir = NULL;
	char *blob;
	const char *store = NULL;
	int r = 0;

	if (!path)
		return msb_err_sys(err, ENOMEM, "sandbox %s: secrets", name);
	blob = store_blob(n, values);
	if (!blob)
		return msb_err_sys(err, ENOMEM, "sandbox %s: secrets", name);
	if (keyring_available()) {
		char label[128];

		snprintf(label, sizeof(label), "msb sandbox %s secrets", name);
		if (keyring_store(SBX_SECRETS_KEYRING_SERVICE, "sandbox", name, label, blob) == 0)
			store = "keyring";
	}
	if (!store) {
		dir = strdup(path);
		if (!dir)
			r = -ENOMEM;
		if (!r) {
			*strrchr(dir, '/') = '\0';
			r = mkdir_p(dir, 0700);
		}
		/* An older, looser directory is tightened. */
		if (!r && chmod(dir, 0700) < 0)
			r = -errno;
		if (!r)
			r = write_file_atomic(path, blob, strlen(blob), 0600);
		store = "file";
	}
	wipe_free(blob);
	if (r < 0)
		return msb_err_sys(err, -r, "sandbox %s: storing its secrets in %s", name, path);
	free(n->secrets_store);
	n->secrets_store = strdup(store);
	if (!n->secrets_store) {
		sbx_secrets_remove(name, !strcmp(store, "keyring"));
		return msb_err_sys(err, ENOMEM, "sandbox %s: secrets", name);
	}
	return 0;
}

/* The store file, refused when others may read it (as ssh does with keys). */
static int read_store_file(const char *path, char **out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	size_t n = 0;
	char *buf;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_mode & 077)
		return -EPERM;
	if ((size_t)st.st_size > STORE_MAX)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (n < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static int gone(const char *name, const char *where, struct msb_err **err)
{
	return msb_err_set(err, ENOENT,
			   "sandbox %s: the values of its secrets are gone from %s (recreate it "
			   "with --replace and --secret)",
			   name, where);
}

int sbx_secrets_load(const char *name, const struct sbx_net *n, char ***values,
		     struct msb_err **err)
{
	_cleanup_free_ char *path = sbx_secrets_file(name);
	bool keyring = n->secrets_store && !strcmp(n->secrets_store, "keyring");
	char *blob = NULL, **v;
	json_error_t je;
	json_t *o;
	int r;

	*values = NULL;
	if (!path)
		return msb_err_sys(err, ENOMEM, "sandbox %s: secrets", name);
	if (keyring) {
		if (!keyring_available())
			return msb_err_set(
				err, ENOENT,
				"sandbox %s: the values of its secrets are in the keyring, "
				"which is not available here (start it from the desktop "
				"session, or recreate it with --replace and --secret)",
				name);
		r = keyring_lookup(SBX_SECRETS_KEYRING_SERVICE, "sandbox", name, STORE_MAX, &blob);
		if (r == -ENOENT)
			return gone(name, "the keyring", err);
		if (r < 0)
			return msb_err_sys(
				err, -r, "sandbox %s: reading its secrets from the keyring", name);
	} else {
		r = read_store_file(path, &blob);
		if (r == -ENOENT)
			return gone(name, path, err);
		if (r == -EPERM)
			return msb_err_set(err, EPERM,
					   "sandbox %s: %s is readable by others (chmod 600 it)",
					   name, path);
		if (r < 0)
			return msb_err_sys(err, -r, "sandbox %s: %s", name, path);
	}
	o = json_loads(blob, 0, &je);
	wipe_free(blob);
	if (!json_is_object(o)) {
		json_decref(o);
		return msb_err_set(err, EINVAL,
				   "sandbox %s: its secrets' store entry (%s) is garbled", name,
				   keyring ? "the keyring" : path);
	}
	v = calloc(n->nsecrets + 1, sizeof(char *));
	r = v ? 0 : -ENOMEM;
	for (size_t i = 0; !r && i < n->nsecrets; i++) {
		json_t *j = json_object_get(o, n->secrets[i].env);
		const char *s = json_string_value(j);
		size_t k = s ? json_string_length(j) : 0;

		if (!s) {
			r = -ENOENT;
			break;
		}
		if (!k || k > SBX_SECRET_MAX_VALUE || strlen(s) != k || strpbrk(s, "\r\n")) {
			r = -EINVAL;
			break;
		}
		v[i] = strdup(s);
		if (!v[i])
			r = -ENOMEM;
	}
	/* The parsed copies go back wiped. */
	{
		const char *k;
		json_t *j;

		json_object_foreach(o, k, j)
		{
			char *c = (char *)json_string_value(j);

			if (c)
				explicit_bzero(c, json_string_length(j));
		}
	}
	json_decref(o);
	if (r < 0) {
		sbx_secret_values_free(v, n->nsecrets);
		if (r == -ENOENT)
			return gone(name, keyring ? "the keyring" : path, err);
		if (r == -EINVAL)
			return msb_err_set(err, EINVAL,
					   "sandbox %s: its secrets' store entry (%s) is garbled",
					   name, keyring ? "the keyring" : path);
		return msb_err_sys(err, -r, "sandbox %s: secrets", name);
	}
	*values = v;
	return 0;
}

void sbx_secrets_remove(const char *name, bool keyring)
{
	_cleanup_free_ char *path = sbx_secrets_file(name);

	if (path)
		unlink(path);
	if (keyring && keyring_available())
		keyring_clear(SBX_SECRETS_KEYRING_SERVICE, "sandbox", name);
}

/* --- the handoff to the supervisor ------------------------------------- */

int sbx_secrets_write_fd(int fd, char *const *values, size_t n)
{
	size_t total = 4, o = 0;
	uint8_t *buf;
	int r;

	if (n > SBX_MAX_SECRETS)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(values[i]);

		if (k > SBX_SECRET_MAX_VALUE)
			return -E2BIG;
		total += 4 + k;
	}
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	put_le32(buf, (uint32_t)n);
	o = 4;
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(values[i]);

		put_le32(buf + o, (uint32_t)k);
		memcpy(buf + o + 4, values[i], k);
		o += 4 + k;
	}
	r = write_all(fd, buf, total);
	explicit_bzero(buf, total);
	free(buf);
	return r;
}

int sbx_secrets_read_fd(int fd, size_t n, char ***values, size_t **lens)
{
	uint8_t *buf = malloc(FD_MAX + 1);
	size_t got = 0, o = 4;
	char **v = NULL;
	size_t *l = NULL;
	int r = 0;

	*values = NULL;
	*lens = NULL;
	if (!buf)
		return -ENOMEM;
	while (got <= FD_MAX) {
		ssize_t k = read(fd, buf + got, FD_MAX + 1 - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			goto out;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	if (got > FD_MAX || got < 4 || get_le32(buf) != n || n > SBX_MAX_SECRETS) {
		r = -EPROTO;
		goto out;
	}
	v = calloc(n + 1, sizeof(char *));
	l = calloc(n + 1, sizeof(size_t));
	if (!v || !l) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t k;

		if (got - o < 4) {
			r = -EPROTO;
			goto out;
		}
		k = get_le32(buf + o);
		o += 4;
		if (!k || k > SBX_SECRET_MAX_VALUE || got - o < k || memchr(buf + o, '\0', k)) {
			r = -EPROTO;
			goto out;
		}
		v[i] = strndup((const char *)buf + o, k);
		if (!v[i]) {
			r = -ENOMEM;
			goto out;
		}
		l[i] = k;
		o += k;
	}
	if (o != got)
		r = -EPROTO;
out:
	explicit_bzero(buf, got < FD_MAX + 1 ? got : FD_MAX + 1);
	free(buf);
	if (r < 0) {
		sbx_secret_values_free(v, n);
		free(l);
		return r;
	}
	*values = v;
	*lens = l;
	return 0;
}

static struct {
	char name[64];
	char *const *values;
	size_t n;
} pending;

void sbx_secrets_pending(const char *name, char *const *values, size_t n)
{
	memset(&pending, 0, sizeof(pending));
	if (name && n && strlen(name) < sizeof(pending.name)) {
		snprintf(pending.name, sizeof(pending.name), "%s", name);
		pending.values = values;
		pending.n = n;
	}
}

int sbx_secrets_for_boot(const char *name, char ***values, size_t *n, char ***names,
			 struct msb_err **err)
{
	struct sbx_spec spec;
	struct strv nv = { 0 };
	int r = 0;

	*values = NULL;
	*n = 0;
	*names = NULL;
	if (sbx_spec_load(name, &spec, err) < 0)
		return -1;
	for (size_t i = 0; !r && i < spec.net.nsecrets; i++)
		r = strv_push(&nv, spec.net.secrets[i].env);
	if (r < 0 || !(*names = strv_steal(&nv))) {
		strv_free(&nv);
		sbx_spec_free(&spec);
		return msb_err_sys(err, ENOMEM, "sandbox %s: secrets", name);
	}
	if (!spec.net.nsecrets) {
		sbx_spec_free(&spec);
		sbx_secrets_pending(NULL, NULL, 0);
		return 0;
	}
	if (pending.n == spec.net.nsecrets && !strcmp(pending.name, name)) {
		char **v = calloc(pending.n + 1, sizeof(char *));

		for (size_t i = 0; v && i < pending.n; i++) {
			v[i] = strdup(pending.values[i]);
			if (!v[i]) {
				sbx_secret_values_free(v, pending.n);
				v = NULL;
			}
		}
		sbx_secrets_pending(NULL, NULL, 0);
		if (!v)
			r = msb_err_sys(err, ENOMEM, "sandbox %s: secrets", name);
		*values = v;
	} else if (spec.ephemeral) {
		r = msb_err_set(err, ENOENT,
				"sandbox %s: the values of its secrets were never stored (an "
				"ephemeral sandbox starts only once)",
				name);
	} else {
		r = sbx_secrets_load(name, &spec.net, values, err);
	}
	if (!r)
		*n = spec.net.nsecrets;
	else
		cleanup_strvp(names);
	sbx_spec_free(&spec);
	return r;
}
