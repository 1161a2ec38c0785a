// SPDX-License-Identifier: Apache-2.0
/* config.json: registry hosts, insecure mode, CA bundle and login metadata. */
#define _GNU_SOURCE
#include "image/regconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "image/registry.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"

#define MSBCFG_MAX (1u << 20)

static char *config_path(void)
{
	const char *home = msb_home();

	return home ? path_join(home, "config.json") : NULL;
}

static int load_path(const char *path, json_t **out, struct msb_err **err)
{
	_cleanup_free_ char *text = NULL;
	json_error_t je;
	size_t n;
	int r = read_file(path, MSBCFG_MAX, &text, &n);
	json_t *o;

	if (r == -ENOENT) {
		*out = json_object();
		return *out ? 0 : msb_err_sys(err, ENOMEM, "%s", path);
	}
	if (r < 0)
		return msb_err_sys(err, -r, "%s", path);
	o = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return msb_err_set(err, EINVAL, "%s: line %d: %s", path, je.line, je.text);
	if (!json_is_object(o)) {
		json_decref(o);
		return msb_err_set(err, EINVAL, "%s: expected a JSON object", path);
	}
	*out = o;
	return 0;
}

int msbcfg_load(json_t **out, struct msb_err **err)
{
	_cleanup_free_ char *path = config_path();

	if (!path)
		return msb_err_set(err, ENOENT, "cannot locate the msb home (set MSB_HOME)");
	return load_path(path, out, err);
}

bool host_is_docker_hub(const char *host)
{
	return !strcmp(host, "docker.io") || !strcmp(host, "index.docker.io") ||
	       !strcmp(host, "registry-1.docker.io") ||
	       !strcmp(host, "https://index.docker.io/v1/");
}

/* Looks @host up in an object keyed by host names, with Docker Hub's aliases. */
static json_t *by_host(json_t *obj, const char *host)
{
	static const char *const hub[] = { "docker.io", "index.docker.io", "registry-1.docker.io",
					   "https://index.docker.io/v1/" };
	json_t *v = json_object_get(obj, host);

	if (v || !host_is_docker_hub(host))
		return v;
	for (size_t i = 0; i < ARRAY_SIZE(hub); i++)
		if ((v = json_object_get(obj, hub[i])))
			return v;
	return NULL;
}

static void read_auth(json_t *auth, struct reg_settings *out)
{
	if (!json_is_object(auth))
		return;
	out->username = json_string_value(json_object_get(auth, "username"));
	out->store = json_string_value(json_object_get(auth, "store"));
	out->password_env = json_string_value(json_object_get(auth, "password_env"));
	out->secret_name = json_string_value(json_object_get(auth, "secret_name"));
}

void regcfg_host(json_t *cfg, const char *host, struct reg_settings *out)
{
	json_t *regs = json_object_get(cfg, "registries");
	json_t *h = by_host(json_object_get(regs, "hosts"), host);

	memset(out, 0, sizeof(*out));
	out->insecure = json_is_true(json_object_get(h, "insecure"));
	read_auth(json_object_get(h, "auth"), out);
	/* registries.auth.<host> is the other place headless setups put credentials. */
	if (!out->username)
		read_auth(by_host(json_object_get(regs, "auth"), host), out);
}

const char *regcfg_ca_certs(json_t *cfg)
{
	return json_string_value(json_object_get(json_object_get(cfg, "registries"), "ca_certs"));
}

int regcfg_stall_timeout(json_t *cfg, uint64_t *ms, struct msb_err **err)
{
	json_t *v = json_object_get(json_object_get(cfg, "registries"), "stall_timeout");
	const char *s = json_string_value(v);

	*ms = STALL_TIMEOUT_DEFAULT;
	if (!v)
		return 0;
	if (!s || parse_duration(s, ms) < 0 || *ms < 1000)
		return msb_err_set(err, EINVAL,
				   "config.json: registries.stall_timeout must be a duration of at "
				   "least 1s, like \"30s\" or \"2m\"");
	return 0;
}

int msbcfg_update(int (*fn)(json_t *cfg, void *arg, struct msb_err **err), void *arg,
		  struct msb_err **err)
{
	_cleanup_free_ char *path = config_path(), *lock = NULL, *text = NULL;
	_cleanup_close_ int lfd = -1;
	json_t *cfg = NULL;
	int r;

	if (!path || asprintf(&lock, "%s.lock", path) < 0)
		return msb_err_sys(err, ENOMEM, "config.json");
	r = mkdir_p(msb_home(), 0700);
	if (r < 0)
		return msb_err_sys(err, -r, "%s", msb_home());
	lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0 || flock(lfd, LOCK_EX) < 0)
		return msb_err_sys(err, errno, "%s", lock);
	if (load_path(path, &cfg, err) < 0)
		return -1;
	r = fn(cfg, arg, err);
	if (r == 0) {
		text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (!text)
			r = msb_err_sys(err, ENOMEM, "%s", path);
		else if ((r = write_file_atomic(path, text, strlen(text), 0600)) < 0)
			r = msb_err_sys(err, -r, "%s", path);
	}
	json_decref(cfg);
	return r < 0 ? -1 : 0;
}
