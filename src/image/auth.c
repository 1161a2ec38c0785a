// SPDX-License-Identifier: Apache-2.0
/* Credential lookup and storage for registries. Secrets never travel on argv. */
#define _GNU_SOURCE
#include "image/auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/regconfig.h"
#include "util/b64.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/keyring.h"
#include "util/spawn.h"

#define SECRET_MAX	16384
#define KEYRING_SERVICE "microsandbox-registry"

void auth_cred_free(struct reg_cred *c)
{
	free(c->username);
	if (c->password) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	memset(c, 0, sizeof(*c));
}

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* --- msb's own store ---------------------------------------------------- */

/* A host as a file name: [A-Za-z0-9.-] kept, everything else as _XX. */
static char *secret_file(const char *name)
{
	const char *home = msb_home();
	char enc[512];
	size_t o = 0;
	char *p = NULL;

	for (const char *c = name; *c && o + 4 < sizeof(enc); c++) {
		if (isalnum((unsigned char)*c) || *c == '.' || *c == '-')
			enc[o++] = *c;
		else
			o += (size_t)snprintf(enc + o, sizeof(enc) - o, "_%02x", (unsigned char)*c);
	}
	enc[o] = '\0';
	if (!home || !o || !strcmp(enc, ".") || !strcmp(enc, "..") ||
	    asprintf(&p, "%s/secrets/registries/%s", home, enc) < 0)
		return NULL;
	return p;
}

static int read_secret_file(const char *path, char **out)
{
	_cleanup_free_ char *s = NULL;
	struct stat st;
	int r = read_file(path, SECRET_MAX, &s, NULL);

	if (r < 0)
		return r;
	/* A secret others can read is refused, as ssh does with keys. */
	if (stat(path, &st) == 0 && (st.st_mode & 077)) {
		explicit_bzero(s, strlen(s));
		return -EPERM;
	}
	chomp(s);
	*out = steal_ptr(s);
	return 0;
}

static int cred_set(struct reg_cred *c, const char *user, char *pass_owned, const char *fmt,
		    const char *arg)
{
	c->username = strdup(user);
	c->password = pass_owned;
	snprintf(c->source, sizeof(c->source), fmt, arg);
	return c->username ? 0 : -ENOMEM;
}

static int from_msb(json_t *cfg, const char *host, struct reg_cred *c, struct msb_err **err)
{
	struct reg_settings s;
	char *pass = NULL;
	int r;

	regcfg_host(cfg, host, &s);
	if (!s.username)
		return 0;
	if (s.store && !strcmp(s.store, "keyring")) {
		if (!keyring_available() ||
		    keyring_lookup(KEYRING_SERVICE, "registry", host, SECRET_MAX - 1, &pass) < 0)
			return msb_err_set(err, ENOENT,
					   "credentials for %s are in the keyring, which is not "
					   "available (log in again with 'msb registry login %s')",
					   host, host);
		return cred_set(c, s.username, pass, "%s", "keyring");
	}
	if (s.store && !strcmp(s.store, "file")) {
		_cleanup_free_ char *path = secret_file(host);

		r = path ? read_secret_file(path, &pass) : -ENOMEM;
		if (r == -EPERM)
			return msb_err_set(err, EPERM, "%s: readable by others (chmod 600 it)",
					   path);
		if (r < 0)
			return msb_err_sys(err, -r, "credentials for %s: %s", host, path);
		return cred_set(c, s.username, pass, "%s", "file");
	}
	if (s.password_env) {
		const char *v = getenv(s.password_env);

		if (!v)
			return msb_err_set(
				err, ENOENT,
				"config.json: credentials for %s come from $%s, which is not set",
				host, s.password_env);
		pass = strdup(v);
		return pass ? cred_set(c, s.username, pass, "env:%s", s.password_env) : -ENOMEM;
	}
	if (s.secret_name) {
		_cleanup_free_ char *path = NULL;

		if (strchr(s.secret_name, '/') || !strcmp(s.secret_name, "..") ||
		    !strcmp(s.secret_name, "."))
			return msb_err_set(err, EINVAL, "config.json: invalid secret_name \"%s\"",
					   s.secret_name);
		if (asprintf(&path, "%s/secrets/registries/%s", msb_home(), s.secret_name) < 0)
			return -ENOMEM;
		r = read_secret_file(path, &pass);
		if (r == -EPERM)
			return msb_err_set(err, EPERM, "%s: readable by others (chmod 600 it)",
					   path);
		if (r < 0)
			return msb_err_sys(err, -r, "config.json: secret for %s: %s", host, path);
		return cred_set(c, s.username, pass, "secret:%s", s.secret_name);
	}
	return 0;
}

/* --- Docker's config ---------------------------------------------------- */

static json_t *docker_config(void)
{
	const char *dir = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
	_cleanup_free_ char *path = NULL;

	if (dir && *dir)
		path = path_join(dir, "config.json");
	else if (home && *home && asprintf(&path, "%s/.docker/config.json", home) < 0)
		path = NULL;
	return path ? json_load_file(path, 0, NULL) : NULL;
}

static json_t *docker_by_host(json_t *obj, const char *host)
{
	json_t *v = json_object_get(obj, host);
	char alt[600];

	if (v)
		return v;
	if (host_is_docker_hub(host))
		return json_object_get(obj, "https://index.docker.io/v1/");
	snprintf(alt, sizeof(alt), "https://%s", host);
	return json_object_get(obj, alt);
}

static int from_helper(const char *helper, const char *host, struct reg_cred *c)
{
	char prog[128], out[SECRET_MAX];
	const char *server = host_is_docker_hub(host) ? "https://index.docker.io/v1/" : host;
	json_t *o;
	const char *u, *p;
	int r;

	if (strlen(helper) > 64 || strchr(helper, '/'))
		return 0;
	snprintf(prog, sizeof(prog), "docker-credential-%s", helper);
	{
		char *argv[] = { prog, "get", NULL };

		r = spawn_io(argv, server, out, sizeof(out));
	}
	if (r != 0)
		return 0; /* not found in the helper: anonymous */
	o = json_loads(out, 0, NULL);
	explicit_bzero(out, sizeof(out));
	u = json_string_value(json_object_get(o, "Username"));
	p = json_string_value(json_object_get(o, "Secret"));
	if (u && p && strcmp(u, "<token>") != 0) {
		char *pass = strdup(p);

		r = pass ? cred_set(c, u, pass, "%s", prog) : -ENOMEM;
	}
	json_decref(o);
	return r < 0 ? r : 0;
}

static int from_docker(const char *host, struct reg_cred *c)
{
	json_t *d = docker_config(), *entry;
	const char *helper, *a;
	int r = 0;

	if (!d)
		return 0;
	helper = json_string_value(docker_by_host(json_object_get(d, "credHelpers"), host));
	if (!helper)
		helper = json_string_value(json_object_get(d, "credsStore"));
	entry = docker_by_host(json_object_get(d, "auths"), host);
	a = json_string_value(json_object_get(entry, "auth"));
	if (a && strlen(a) < SECRET_MAX) {
		unsigned char dec[SECRET_MAX];
		long n = b64_decode(a, dec, sizeof(dec) - 1);
		char *colon;

		if (n > 0) {
			dec[n] = '\0';
			colon = strchr((char *)dec, ':');
			if (colon && !memchr(dec, '\0', (size_t)n)) {
				char *pass;

				*colon = '\0';
				pass = strdup(colon + 1);
				r = pass ? cred_set(c, (char *)dec, pass, "%s", "docker") : -ENOMEM;
			}
		}
		explicit_bzero(dec, sizeof(dec));
	}
	if (!c->username && helper)
		r = from_helper(helper, host, c);
	json_decref(d);
	return r;
}

int auth_resolve(json_t *cfg, const char *host, struct reg_cred *out, struct msb_err **err)
{
	int r;

	memset(out, 0, sizeof(*out));
	r = from_msb(cfg, host, out, err);
	if (r < 0) {
		if (r == -ENOMEM)
			msb_err_sys(err, ENOMEM, "credentials");
		return -1;
	}
	if (!out->username && (r = from_docker(host, out)) < 0)
		return msb_err_sys(err, -r, "credentials");
	return 0;
}

/* --- login / logout ----------------------------------------------------- */

struct meta {
	const char *host, *username, *store;
};

/*
 * Returns @parent's object member @key, created empty if absent. Return:
 * NULL with @err when it exists but is not an object (or on ENOMEM).
 */
static json_t *object_member(json_t *parent, const char *key, const char *what,
			     struct msb_err **err)
{
	json_t *v = json_object_get(parent, key);

	if (v && !json_is_object(v)) {
		msb_err_set(err, EINVAL, "config.json: %s is not an object", what);
		return NULL;
	}
	if (v)
		return v;
	v = json_object();
	/* json_object_set_new() takes the reference even when it fails. */
	if (!v || json_object_set_new(parent, key, v) < 0) {
		msb_err_sys(err, ENOMEM, "config.json");
		return NULL;
	}
	return v;
}

static int set_meta(json_t *cfg, void *arg, struct msb_err **err)
{
	struct meta *m = arg;
	json_t *regs, *hosts, *h, *auth;
	char what[600];

	regs = object_member(cfg, "registries", "registries", err);
	hosts = regs ? object_member(regs, "hosts", "registries.hosts", err) : NULL;
	if (!hosts)
		return -1;
	if (!m->username) {
		h = json_object_get(hosts, m->host);
		if (!json_is_object(h) || !json_object_get(h, "auth"))
			return msb_err_set(err, ENOENT, "not logged in to %s", m->host);
		json_object_del(h, "auth");
		if (json_object_size(h) == 0)
			json_object_del(hosts, m->host);
		return 0;
	}
	snprintf(what, sizeof(what), "registries.hosts.%s", m->host);
	h = object_member(hosts, m->host, what, err);
	if (!h)
		return -1;
	auth = json_pack("{s:s, s:s}", "username", m->username, "store", m->store);
	if (!auth || json_object_set_new(h, "auth", auth) < 0)
		return msb_err_sys(err, ENOMEM, "config.json");
	return 0;
}

int auth_login(const char *host, const char *username, const char *password, const char **store,
	       struct msb_err **err)
{
	struct meta m = { .host = host, .username = username };

	if (keyring_available()) {
		char label[300];

		snprintf(label, sizeof(label), "msb registry %s", host);
		if (keyring_store(KEYRING_SERVICE, "registry", host, label, password) == 0)
			m.store = "keyring";
	}
	if (!m.store) {
		_cleanup_free_ char *path = secret_file(host), *dir = NULL;
		int r;

		if (!path || !(dir = strdup(path)))
			return msb_err_sys(err, ENOMEM, "login");
		*strrchr(dir, '/') = '\0';
		r = mkdir_p(dir, 0700);
		if (!r)
			r = write_file_atomic(path, password, strlen(password), 0600);
		if (r < 0)
			return msb_err_sys(err, -r, "%s", path);
		m.store = "file";
	}
	*store = m.store;
	return msbcfg_update(set_meta, &m, err);
}

int auth_logout(const char *host, struct msb_err **err)
{
	_cleanup_free_ char *path = secret_file(host);
	struct meta m = { .host = host };
	json_t *cfg = NULL;
	struct reg_settings s;

	if (msbcfg_load(&cfg, err) < 0)
		return -1;
	regcfg_host(cfg, host, &s);
	if (s.store && !strcmp(s.store, "keyring") && keyring_available()) {
		keyring_clear(KEYRING_SERVICE, "registry", host);
	}
	json_decref(cfg);
	if (path)
		unlink(path);
	return msbcfg_update(set_meta, &m, err);
}

/* --- listing ------------------------------------------------------------ */

static int add_entry(struct reg_entry **v, int *n, const char *host, const char *user,
		     const char *source)
{
	struct reg_entry *nv;

	for (int i = 0; i < *n; i++)
		if (!strcmp((*v)[i].host, host))
			return 0; /* the first source in resolution order wins */
	nv = realloc(*v, sizeof(**v) * (size_t)(*n + 1));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = (struct reg_entry){ strdup(host), strdup(user ? user : ""), strdup(source) };
	if (!nv[*n].host || !nv[*n].username || !nv[*n].source)
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct reg_entry *)a)->host, ((const struct reg_entry *)b)->host);
}

int auth_list(json_t *cfg, struct reg_entry **out, struct msb_err **err)
{
	json_t *regs = json_object_get(cfg, "registries"), *d = docker_config(), *v;
	const char *host;
	struct reg_entry *e = NULL;
	int n = 0, r = 0;

	json_object_foreach(json_object_get(regs, "hosts"), host, v)
	{
		struct reg_settings s;
		char src[128];

		regcfg_host(cfg, host, &s);
		if (!s.username && !s.insecure)
			continue;
		if (s.store)
			snprintf(src, sizeof(src), "%s", s.store);
		else if (s.password_env)
			snprintf(src, sizeof(src), "env:%s", s.password_env);
		else if (s.secret_name)
			snprintf(src, sizeof(src), "secret:%s", s.secret_name);
		else
			snprintf(src, sizeof(src), "anonymous (insecure)");
		if (r == 0)
			r = add_entry(&e, &n, host, s.username, src);
	}
	json_object_foreach(json_object_get(regs, "auth"), host, v)
	{
		struct reg_settings s;
		char src[128];

		regcfg_host(cfg, host, &s);
		snprintf(src, sizeof(src), "%s%s", s.password_env ? "env:" : "secret:",
			 s.password_env	 ? s.password_env
			 : s.secret_name ? s.secret_name
					 : "?");
		if (r == 0 && s.username)
			r = add_entry(&e, &n, host, s.username, src);
	}
	json_object_foreach(json_object_get(d, "auths"), host, v)
	{
		/* The username is not a secret: show it, drop the password at once. */
		const char *a = json_string_value(json_object_get(v, "auth"));
		unsigned char dec[1024];
		long k = a && strlen(a) < 1300 ? b64_decode(a, dec, sizeof(dec) - 1) : -1;
		char *colon;

		if (k < 0)
			k = 0;
		dec[k] = '\0';
		colon = strchr((char *)dec, ':');
		if (colon)
			*colon = '\0';
		if (r == 0)
			r = add_entry(&e, &n, host, colon ? (char *)dec : "", "docker");
		explicit_bzero(dec, sizeof(dec));
	}
	json_object_foreach(json_object_get(d, "credHelpers"), host, v)
	{
		char src[128];

		snprintf(src, sizeof(src), "docker-credential-%s", json_string_value(v) ?: "?");
		if (r == 0)
			r = add_entry(&e, &n, host, "", src);
	}
	json_decref(d);
	if (r < 0) {
		auth_list_free(e, n);
		return msb_err_sys(err, -r, "registry list");
	}
	if (n > 1)
		qsort(e, (size_t)n, sizeof(*e), entry_cmp);
	*out = e;
	return n;
}

void auth_list_free(struct reg_entry *e, int n)
{
	for (int i = 0; i < n; i++) {
		free(e[i].host);
		free(e[i].username);
		free(e[i].source);
	}
	free(e);
}
