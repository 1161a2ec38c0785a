// SPDX-License-Identifier: Apache-2.0
/*
 * Making a sandbox. The image is resolved (and pulled) first, its layers held
 * so that `msb rmi` cannot remove them before the supervisor links them; then
 * the directory appears atomically with its lock held (sbx_make_dir()), and
 * the rest is made inside it. Anything that fails removes everything made.
 */
#define _GNU_SOURCE
#include "sandbox/create.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "image/manifest.h"
#include "proto/proto.h"
#include "image/progress.h"
#include "image/regconfig.h"
#include "image/store.h"
#include "sandbox/diskchain.h"
#include "sandbox/rootfs.h"
#include "sandbox/secrets.h"
#include "sandbox/snapshot.h"
#include "sandbox/tlsca.h"
#include "store/db.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"
#include "util/strv.h"

int sbx_check_name(const char *name, struct msb_err **err)
{
	size_t n = strlen(name);

	if (valid_sandbox_name(name))
		return 0;
	if (n > SBX_NAME_MAX)
		return msb_err_set(err, EINVAL,
				   "invalid sandbox name \"%.40s...\" (at most %d characters)",
				   name, SBX_NAME_MAX);
	return msb_err_set(err, EINVAL,
			   "invalid sandbox name \"%s\" (use letters, digits, '_', '.' and '-', "
			   "starting with a letter or digit)",
			   name);
}

int sbx_script_decode(const char *body, const char *shell, struct sbx_script_src *out)
{
	size_t n = strlen(body), o = 0;
	char *d = malloc(strlen(shell) + n + 5);

	if (!d)
		return -ENOMEM;
	o = (size_t)sprintf(d, "#!%s\n", shell);
	for (size_t i = 0; i < n; i++) {
		char c = body[i];

		if (c == '\\' && i + 1 < n) {
			char e = body[i + 1];
			char dec = e == 'n'    ? '\n'
				   : e == 't'  ? '\t'
				   : e == 'r'  ? '\r'
				   : e == '\\' ? '\\'
				   : e == '"'  ? '"'
				   : e == '\'' ? '\''
					       : 0;

			if (dec) {
				d[o++] = dec;
				i++;
				continue;
			}
		}
		d[o++] = c;
	}
	d[o] = '\0';
	out->body = d;
	out->len = o;
	return 0;
}

int sbx_parse_tmpfs(const char *arg, struct sbx_tmpfs *out)
{
	const char *colon = strchr(arg, ':');
	uint64_t size = 0;
	char *path;

	if (arg[0] != '/')
		return -EINVAL;
	if (colon && (parse_size(colon + 1, 1, &size) < 0 || size == 0))
		return -EINVAL;
	path = colon ? strndup(arg, (size_t)(colon - arg)) : strdup(arg);
	if (!path)
		return -ENOMEM;
	if (!strcmp(path, "/") || strstr(path, "/../") || strstr(path, "/./") ||
	    (strlen(path) >= 3 && !strcmp(path + strlen(path) - 3, "/..")) || strchr(path, ',')) {
		free(path);
		return -EINVAL;
	}
	out->path = path;
	out->size = size;
	return 0;
}

/* Replaces KEY's entry in @env (or appends it). */
static int env_set(struct strv *env, const char *kv)
{
	size_t klen = (size_t)(strchr(kv, '=') - kv);

	for (size_t i = 0; i < env->n; i++) {
		if (!strncmp(env->v[i], kv, klen) && env->v[i][klen] == '=') {
			char *dup = strdup(kv);

			if (!dup)
				return -1;
			free(env->v[i]);
			env->v[i] = dup;
			return 0;
		}
	}
	return strv_push(env, kv);
}

/*
 * What sessions run by default: docker's rules. A command replaces the
 * image's Cmd and keeps its Entrypoint; --entrypoint replaces the Entrypoint
 * and drops the Cmd; with neither, the default is empty (a shell is chosen
 * by whoever runs).
 */
static int plan(const struct sbx_create_opts *o, const struct image_config *ic, struct sbx_spec *s)
{
	char **entry = ic && !o->entrypoint ? ic->entrypoint : NULL;
	char **cmd = o->cmd && o->cmd[0] ? o->cmd : NULL;
	struct strv argv = { 0 }, env = { 0 };
	int r = 0;

	if (!cmd && ic && !o->entrypoint)
		cmd = ic->cmd;
	if (o->entrypoint && *o->entrypoint)
		r |= strv_push(&argv, o->entrypoint);
	r |= strv_push_all(&argv, entry);
	r |= strv_push_all(&argv, cmd);
	for (char **e = ic ? ic->env : NULL; e && *e; e++)
		r |= env_set(&env, *e);
	for (char **e = o->env; e && *e; e++)
		r |= env_set(&env, *e);
	if (o->net)
		r |= sbx_net_copy(o->net, &s->net);
	else
		sbx_net_init(&s->net);
	/* A secret's variable holds its placeholder, over the image's (-e may not name it). */
	r |= sbx_secrets_placeholders(&s->net);
	for (size_t i = 0; !r && i < s->net.nsecrets; i++) {
		_cleanup_free_ char *kv = NULL;

		if (asprintf(&kv, "%s=%s", s->net.secrets[i].env, s->net.secrets[i].placeholder) <
		    0)
			kv = NULL;
		r |= !kv || env_set(&env, kv) < 0;
	}
	/*
	 * The interception CA is in the image's bundles (agentd appends it) and in a
	 * file of its own; the variables clients read point at them: OpenSSL's,
	 * Python requests', curl's, Node's (which only adds). Go and Python's ssl
	 * read the bundle itself. A variable the user set (-e) is theirs.
	 */
	if (!r && sbx_net_intercepts(&s->net)) {
		static const char *const vars[] = {
			"SSL_CERT_FILE=" SBX_TLS_GUEST_BUNDLE,
			"REQUESTS_CA_BUNDLE=" SBX_TLS_GUEST_BUNDLE,
			"CURL_CA_BUNDLE=" SBX_TLS_GUEST_BUNDLE,
			"NODE_EXTRA_CA_CERTS=" SBX_TLS_GUEST_CA,
		};

		for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
			size_t k = (size_t)(strchr(vars[i], '=') - vars[i]);
			bool user = false;

			for (char **e = o->env; e && *e && !user; e++)
				user = !strncmp(*e, vars[i], k) && (*e)[k] == '=';
			if (!user)
				r |= env_set(&env, vars[i]) < 0;
		}
	}
	s->command = strv_steal(&argv);
	s->env = strv_steal(&env);
	s->workdir = o->workdir		 ? strdup(o->workdir)
		     : ic && ic->workdir ? strdup(ic->workdir)
					 : NULL;
	s->user = o->user ? strdup(o->user) : ic && ic->user ? strdup(ic->user) : NULL;
	strv_free(&argv);
	strv_free(&env);
	return r || !s->command || !s->env ? -ENOMEM : 0;
}

/* Resolves the image, pulling per the policy, and holds its layers. */
static int resolve_image(const struct sbx_create_opts *o, struct image_record *img,
			 struct image_config *ic, struct sbx_made *m, struct msb_err **err)
{
	struct progress *pr = NULL;
	struct pull_opts po = { .cancel_fd = o->cancel_fd };
	struct db *db = NULL;
	json_t *cfg = NULL;
	int r;

	if (!o->quiet) {
		/* stdout belongs to the command: progress goes to stderr */
		pr = progress_new(stderr);
		po.progress = progress_event;
		po.ctx = pr;
	}
	r = msbcfg_load(&cfg, err);
	if (!r)
		r = db_open(&db, err);
	if (!r)
		r = image_get(db, cfg, o->image, o->pull, &po, img, err);
	if (!r && image_hold_layers(img, &m->held, NULL) < 0) {
		/* Removed between the lookup and the hold: fetch it again, once. */
		image_record_free(img);
		r = image_get(db, cfg, o->image, o->pull == PULL_NEVER ? PULL_NEVER : PULL_ALWAYS,
			      &po, img, err);
		if (!r)
			r = image_hold_layers(img, &m->held, err);
	}
	if (!r) {
		m->nheld = img->nlayers;
		r = image_config_parse(img->config, strlen(img->config), ic, err);
	}
	progress_free(pr);
	db_close(db);
	json_decref(cfg);
	return r < 0 ? -1 : 0;
}

static int write_scripts(const char *dir, const struct sbx_create_opts *o, struct sbx_spec *s,
			 struct msb_err **err)
{
	_cleanup_free_ char *sdir = path_join(dir, "scripts");
	struct strv names = { 0 };

	if (!sdir)
		return msb_err_sys(err, ENOMEM, "scripts");
	if (o->nscripts && mkdir(sdir, 0700) < 0)
		return msb_err_sys(err, errno, "%s", sdir);
	for (size_t i = 0; i < o->nscripts; i++) {
		const struct sbx_script_src *sc = &o->scripts[i];
		_cleanup_free_ char *p = path_join(sdir, sc->name);
		int r;

		if (o->scripts[i].len > PROTO_MAX_STR) {
			strv_free(&names);
			return msb_err_set(err, E2BIG, "script %s: larger than %u KiB", sc->name,
					   PROTO_MAX_STR >> 10);
		}
		r = p ? write_file_replace(p, sc->body, sc->len, 0600) : -ENOMEM;
		if (r < 0 || strv_push(&names, sc->name) < 0) {
			strv_free(&names);
			return msb_err_sys(err, r < 0 ? -r : ENOMEM, "script %s", sc->name);
		}
	}
	s->scripts = strv_steal(&names);
	return s->scripts ? 0 : msb_err_sys(err, ENOMEM, "scripts");
}

static char *now_rfc3339(void)
{
	char ts[40];

	log_timestamp(ts, sizeof(ts));
	return strdup(ts);
}

/* Copies what the spec keeps of the options (everything but what plan() sets). */
static int fill_spec(const struct sbx_create_opts *o, const struct sbx_made *m,
		     const struct image_record *img, struct sbx_spec *s)
{
	struct strv a = { 0 }, e = { 0 }, rl = { 0 };
	int r = 0;

	s->name = strdup(m->name);
	s->ephemeral = !o->name;
	s->cpus = o->cpus;
	s->mem_mib = o->mem_mib;
	/* A named sandbox keeps its files across stop and start: on a disk. */
	s->upper_mib = o->upper_mib ? o->upper_mib : o->name ? SBX_DEFAULT_UPPER_MIB : 0;
	s->hostname = strdup(o->hostname ? o->hostname : m->name);
	s->image = img && img->reference ? strdup(img->reference) : NULL;
	s->image_digest = img && img->manifest_digest ? strdup(img->manifest_digest) : NULL;
	s->rootfs = o->rootfs ? realpath(o->rootfs, NULL) : NULL;
	s->log_level = o->log_level;
	s->created_at = now_rfc3339();
	s->shell = strdup(o->shell ? o->shell : "/bin/sh");
	s->init = o->init ? strdup(o->init) : NULL;
	r |= strv_push_all(&a, o->init_args);
	r |= strv_push_all(&e, o->init_env);
	s->init_args = strv_steal(&a);
	s->init_env = strv_steal(&e);
	s->max_duration_ms = o->max_duration_ms;
	s->idle_timeout_ms = o->idle_timeout_ms;
	s->main_timeout_ms = o->main_timeout_ms;
	r |= strv_push_all(&rl, o->rlimits);
	s->rlimits = strv_steal(&rl);
	s->tmpfs = calloc(o->ntmpfs + 1, sizeof(*s->tmpfs));
	for (size_t i = 0; s->tmpfs && i < o->ntmpfs; i++) {
		s->tmpfs[i].path = strdup(o->tmpfs[i].path);
		s->tmpfs[i].size = o->tmpfs[i].size;
		s->ntmpfs++;
		r |= !s->tmpfs[i].path;
	}
	s->volumes = calloc(o->nvolumes + 1, sizeof(*s->volumes));
	for (size_t i = 0; s->volumes && i < o->nvolumes; i++) {
		s->volumes[i] = o->volumes[i];
		s->volumes[i].source = strdup(o->volumes[i].source);
		s->volumes[i].dest = strdup(o->volumes[i].dest);
		s->nvolumes++;
		r |= !s->volumes[i].source || !s->volumes[i].dest;
	}
	return r || !s->volumes || !s->name || !s->hostname || !s->created_at || !s->shell ||
			       !s->init_args || !s->init_env || !s->rlimits || !s->tmpfs
		       ? -ENOMEM
		       : 0;
}

/*
 * Is the sandbox's root a disk image (IMAGE given as a path to one, or
 * --rootfs naming one)? Return: 1 with its resolved path and format, 0 if
 * not, -1 with @err for a path that is no bootable disk.
 */
static int disk_source(const struct sbx_create_opts *o, char **path, const char **fmt,
		       struct msb_err **err)
{
	const char *p = o->image ? o->image : o->rootfs;
	bool named_as_path;
	struct stat st;
	int r;

	if (!p)
		return 0;
	named_as_path = p[0] == '/' || p[0] == '.';
	if (o->rootfs && (stat(p, &st) < 0 || !S_ISREG(st.st_mode)))
		return 0; /* a directory: rootfs_prepare() */
	if (o->image && !named_as_path && access(p, F_OK) < 0)
		return 0; /* an image reference */
	r = disk_image_probe(p, fmt);
	if (r < 0)
		return msb_err_set(err, -r, "%s: %s", p, strerror(-r));
	if (r == 0) {
		if (o->rootfs || !named_as_path)
			return 0; /* squashfs, or a reference that happens to name a file */
		return msb_err_set(err, EINVAL,
				   "%s is not a disk image msb can boot (qcow2, vmdk, or raw with "
				   "a partition table or an ext4/xfs filesystem)",
				   p);
	}
	*path = realpath(p, NULL);
	return *path ? 1 : msb_err_sys(err, errno, "%s", p);
}

/*
 * The image is untrusted input: every file its chain names is vetted now,
 * before anything is made (diskchain.h), and again at each start.
 * --allow-backing files are resolved into *@allow for the spec.
 */
static int disk_vet(const struct sbx_create_opts *o, const char *image, const char *fmt,
		    char ***allow, uint64_t *size, struct msb_err **err)
{
	struct strv a = { 0 };
	struct dchain chain = { 0 };
	enum dimg_format f;

	for (char **p = o->allow_backing; p && *p; p++) {
		_cleanup_free_ char *real = NULL;

		if (dchain_allow_path(*p, &real, err) < 0 || strv_push(&a, real) < 0) {
			strv_free(&a);
			return real ? msb_err_sys(err, ENOMEM, "--allow-backing") : -1;
		}
	}
	*allow = strv_steal(&a);
	if (!*allow)
		return msb_err_sys(err, ENOMEM, "--allow-backing");
	if (dimg_format_parse(fmt, &f) < 0 || dchain_open(image, f, *allow, &chain, err) < 0) {
		cleanup_strvp(allow);
		*allow = NULL;
		/* Only when dchain_open() did not say why: the first cause is kept. */
		return msb_err_set(err, EINVAL, "%s: unknown disk format %s", image, fmt);
	}
	*size = chain.size;
	dchain_free(&chain);
	return 0;
}

/*
 * With --disk-snapshot, the sandbox writes to a qcow2 overlay of the image in
 * its directory. -u: qemu-img writes the overlay's header and opens nothing
 * else, not even the vetted image (its size is given).
 */
static int disk_attach(const char *dir, const char *image, const char *fmt, uint64_t size,
		       bool snapshot, struct msb_err **err)
{
	_cleanup_free_ char *overlay = path_join(dir, "disk.qcow2");
	char sz[32];
	char *argv[] = { "qemu-img",  "create", "-q",	       "-f",	"qcow2", "-u", "-F",
			 (char *)fmt, "-b",	(char *)image, overlay, sz,	 NULL };

	if (!snapshot)
		return 0;
	if (!overlay)
		return msb_err_sys(err, ENOMEM, "disk snapshot");
	if (!size)
		return msb_err_set(err, EINVAL, "%s: the image does not say its size", image);
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	if (run_tool(argv, -1, err) < 0)
		return msb_err_prefix(err, "creating the disk snapshot (is qemu-img installed? "
					   "apt-get install qemu-utils)");
	return 0;
}

/* The last steps of making a sandbox: its config.json, then its database row. */
static int register_sandbox(const struct sbx_spec *spec, struct msb_err **err)
{
	struct db *db = NULL;
	int r = sbx_spec_save(spec, err);

	if (!r)
		r = db_open(&db, err);
	if (!r)
		r = db_sandbox_create(db, spec->name, spec->image, spec->image_digest, err);
	db_close(db);
	return r < 0 ? -1 : 0;
}

/*
 * A sandbox from a snapshot: the snapshot's settings, layers (its own links)
 * and writable disk, each copied; with a full snapshot, its memory is restored
 * at the first start. The new sandbox shares nothing with the snapshot but
 * read-only layers, so either may be removed.
 */
static int create_from_snapshot(const struct sbx_create_opts *o, struct sbx_made *m,
				struct msb_err **err)
{
	_cleanup_free_ char *sdir = NULL, *cfgp = NULL, *dir = NULL;
	_cleanup_close_ int sfd = -1, dfd = -1;
	struct sbx_spec spec = { 0 };
	struct image_record img = { 0 };
	struct image_config ic = { 0 };
	struct strv layers = { 0 }, env = { 0 }, rl = { 0 };
	json_t *meta = NULL;
	const char *digest;
	bool full;
	int r = -1, k;

	sdir = o->from_snapshot_dir ? strdup(o->from_snapshot_dir) : snap_dir(o->from_snapshot);
	if (!sdir)
		return msb_err_sys(err, ENOMEM, "snapshot %s", o->from_snapshot);
	if (o->from_snapshot_dir ? snap_info_at(o->from_snapshot, sdir, &meta, err) < 0
				 : snap_info(o->from_snapshot, &meta, err) < 0)
		return -1;
	digest = json_string_value(json_object_get(meta, "image_digest"));
	full = !strcmp(json_string_value(json_object_get(meta, "kind")) ?: "", "full");
	cfgp = sdir ? path_join(sdir, "config.json") : NULL;
	if (!cfgp) {
		msb_err_sys(err, ENOMEM, "snapshot %s", o->from_snapshot);
		goto fail;
	}
	if (o->image) {
		if (resolve_image(o, &img, &ic, m, err) < 0)
			goto fail;
		if (!digest || !img.manifest_digest || strcmp(digest, img.manifest_digest) != 0) {
			msb_err_set(err, EINVAL,
				    "snapshot %s was taken of %s (%s), not of %s (%s): a snapshot "
				    "restores only onto its own image",
				    o->from_snapshot,
				    json_string_value(json_object_get(meta, "image")) ?: "a rootfs",
				    digest ? digest : "no image", o->image,
				    img.manifest_digest ? img.manifest_digest : "?");
			goto fail;
		}
	}
	if (sbx_spec_read(cfgp, &spec, err) < 0)
		goto fail;
	/* Values are never part of a snapshot: a sandbox made from it could not start. */
	if (spec.net.nsecrets) {
		msb_err_set(err, EINVAL,
			    "snapshot %s is of a sandbox with --secret, whose values snapshots do "
			    "not keep (make the sandbox with its image and --secret instead)",
			    o->from_snapshot);
		goto fail;
	}
	m->lock = sbx_make_dir(m->name, err);
	if (m->lock < 0)
		goto fail;
	dir = sbx_dir(m->name);
	sfd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (sfd < 0 || dfd < 0) {
		msb_err_sys(err, errno, "snapshot %s", o->from_snapshot);
		goto fail_dir;
	}
	/* This sandbox's own identity and defaults over the snapshot's. */
	free(spec.name);
	spec.name = strdup(m->name);
	spec.ephemeral = !o->name;
	free(spec.hostname);
	spec.hostname = strdup(o->hostname ? o->hostname : m->name);
	free(spec.created_at);
	spec.created_at = now_rfc3339();
	/* The sandbox's own links to the layers: it outlives the snapshot. */
	if (mkdirat(dfd, "base", 0700) < 0) {
		msb_err_sys(err, errno, "sandbox %s", m->name);
		goto fail_dir;
	}
	for (size_t i = 0; spec.layers[i]; i++) {
		char name[32], to[32];
		_cleanup_free_ char *lp = NULL;

		snprintf(name, sizeof(name), "layers/%zu", i);
		snprintf(to, sizeof(to), "base/%zu", i);
		k = copy_at(sfd, name, dfd, to, true);
		if (k < 0) {
			msb_err_sys(err, -k, "snapshot %s: %s", o->from_snapshot, name);
			goto fail_dir;
		}
		lp = path_join(dir, to);
		if (!lp || strv_push(&layers, lp) < 0) {
			msb_err_sys(err, ENOMEM, "sandbox %s", m->name);
			goto fail_dir;
		}
	}
	cleanup_strvp(&spec.layers);
	spec.layers = strv_steal(&layers);
	if (o->cmd && o->cmd[0]) {
		struct strv cmd = { 0 };

		if (strv_push_all(&cmd, o->cmd) < 0) {
			msb_err_sys(err, ENOMEM, "sandbox %s", m->name);
			goto fail_dir;
		}
		cleanup_strvp(&spec.command);
		spec.command = strv_steal(&cmd);
	}
	k = strv_push_all(&env, spec.env);
	for (char **e = o->env; !k && e && *e; e++)
		k = env_set(&env, *e);
	cleanup_strvp(&spec.env);
	spec.env = strv_steal(&env);
	/* This run's limits over the snapshot's (a later one of a resource wins). */
	if (!k)
		k = strv_push_all(&rl, spec.rlimits);
	if (!k)
		k = strv_push_all(&rl, o->rlimits);
	cleanup_strvp(&spec.rlimits);
	spec.rlimits = strv_steal(&rl);
	spec.main_timeout_ms = o->main_timeout_ms;
	if (k < 0 || !spec.name || !spec.hostname || !spec.created_at || !spec.layers ||
	    !spec.env || !spec.rlimits) {
		msb_err_sys(err, ENOMEM, "sandbox %s", m->name);
		goto fail_dir;
	}
	k = copy_dir_files_at(sfd, "scripts", dfd);
	if (!k && spec.upper_mib)
		k = copy_at(sfd, "upper.ext4", dfd, "upper.ext4", false);
	/* The memory is only read, once: a link costs nothing. */
	if (!k && full)
		k = copy_at(sfd, "memory.state", dfd, "restore.state", true);
	if (k < 0) {
		msb_err_sys(err, -k, "sandbox %s from snapshot %s", m->name, o->from_snapshot);
		goto fail_dir;
	}
	if (register_sandbox(&spec, err) < 0)
		goto fail_dir;
	r = 0;
	goto out;
fail_dir:
	rm_rf(dir);
fail:
	sbx_made_release(m);
out:
	json_decref(meta);
	strv_free(&layers);
	strv_free(&env);
	strv_free(&rl);
	sbx_spec_free(&spec);
	image_config_free(&ic);
	image_record_free(&img);
	return r;
}

int sbx_create(const struct sbx_create_opts *o, struct sbx_made *m, struct msb_err **err)
{
	_cleanup_free_ char *dir = NULL, *layer = NULL, *disk_path = NULL;
	_cleanup_strv_ char **disk_allow = NULL;
	const char *disk_fmt = NULL;
	uint64_t disk_size = 0;
	int disk;
	struct image_record img = { 0 };
	struct image_config ic = { 0 };
	struct strv layers = { 0 };
	struct sbx_spec spec = { 0 };
	int r = -1;

	memset(m, 0, sizeof(*m));
	m->lock = -1;
	if (o->name) {
		if (sbx_check_name(o->name, err) < 0)
			return -1;
		snprintf(m->name, sizeof(m->name), "%s", o->name);
	} else {
		sbx_ephemeral_name(m->name, sizeof(m->name));
	}
	if (o->hostname && !sbx_valid_hostname(o->hostname))
		return msb_err_set(
			err, EINVAL,
			"invalid hostname \"%s\" (letters, digits, '-' and '.', at most 64)",
			o->hostname);
	/* The interception CA exists (made now, on first use) before anything else is. */
	if (o->net && sbx_net_intercepts(o->net)) {
		_cleanup_free_ char *cert = NULL, *key = NULL;

		if (sbx_tls_ca_paths(&o->net->tls, &cert, &key, err) < 0)
			return -1;
	}
	if (o->from_snapshot)
		return create_from_snapshot(o, m, err);
	disk = disk_source(o, &disk_path, &disk_fmt, err);
	if (disk < 0)
		goto fail;
	if (o->rootfs_bind) {
		struct stat st;

		if (!o->rootfs || disk || stat(o->rootfs, &st) < 0 || !S_ISDIR(st.st_mode)) {
			msb_err_set(err, EINVAL, "--rootfs-bind needs --rootfs DIR (a directory)");
			goto fail;
		}
	}
	if (o->allow_backing && o->allow_backing[0] && !disk) {
		msb_err_set(err, EINVAL,
			    "--allow-backing needs a disk image (msb run IMAGE.qcow2|.raw|.vmdk)");
		goto fail;
	}
	if (disk && disk_vet(o, disk_path, disk_fmt, &disk_allow, &disk_size, err) < 0)
		goto fail;
	if (o->disk_snapshot && !disk) {
		msb_err_set(err, EINVAL,
			    "--disk-snapshot needs a disk image (msb run IMAGE.qcow2|.raw|.vmdk)");
		goto fail;
	}
	/* Their root is written in place: there is no upper layer to size. */
	if (o->upper_mib && (disk || o->rootfs_bind)) {
		msb_err_set(err, EINVAL, "--oci-upper-size cannot be used with %s (%s)",
			    disk ? "a disk image" : "--rootfs-bind",
			    disk ? "the disk itself is the writable root"
				 : "the directory itself is the writable root");
		goto fail;
	}
	if (!disk && o->image && resolve_image(o, &img, &ic, m, err) < 0)
		goto fail;
	if (plan(o, o->image && !disk ? &ic : NULL, &spec) < 0) {
		msb_err_sys(err, ENOMEM, "sandbox %s", m->name);
		goto fail;
	}
	m->lock = sbx_make_dir(m->name, err);
	if (m->lock < 0)
		goto fail;
	dir = sbx_dir(m->name);
	if (!dir) {
		msb_err_sys(err, ENOMEM, "sandbox %s", m->name);
		goto fail_dir;
	}
	if (disk) {
		if (disk_attach(dir, disk_path, disk_fmt, disk_size, o->disk_snapshot, err) < 0)
			goto fail_dir;
	} else if (o->rootfs_bind) {
		/* Nothing to prepare: the directory is shared as it is. */
	} else if (o->rootfs) {
		if (rootfs_prepare(o->rootfs, dir, &layer, err) < 0 ||
		    strv_push(&layers, layer) < 0)
			goto fail_dir;
	} else {
		for (size_t i = 0; i < img.nlayers; i++) {
			_cleanup_free_ char *f = layer_file(img.layers[i].diff_id);

			if (!f || strv_push(&layers, f) < 0) {
				msb_err_sys(err, ENOMEM, "sandbox %s", m->name);
				goto fail_dir;
			}
		}
	}
	if (fill_spec(o, m, o->image ? &img : NULL, &spec) < 0) {
		msb_err_sys(err, ENOMEM, "sandbox %s", m->name);
		goto fail_dir;
	}
	spec.layers = strv_steal(&layers);
	if (o->rootfs_bind) {
		spec.rootfs_bind = true;
		spec.upper_mib = 0; /* the directory is the writable root */
	}
	if (disk) {
		free(spec.rootfs);
		spec.rootfs = NULL;
		spec.upper_mib = 0; /* the disk is the writable root */
		spec.disk_image = steal_ptr(disk_path);
		spec.disk_format = strdup(disk_fmt);
		spec.disk_snapshot = o->disk_snapshot;
		spec.disk_allow = steal_ptr(disk_allow);
		if (!spec.disk_format) {
			msb_err_sys(err, ENOMEM, "sandbox %s", m->name);
			goto fail_dir;
		}
	}
	if (!spec.layers || write_scripts(dir, o, &spec, err) < 0)
		goto fail_dir;
	if (spec.upper_mib && sbx_make_upper(m->name, spec.upper_mib, err) < 0)
		goto fail_dir;
	/* A persistent sandbox keeps its secrets' values for its next start; a run has them. */
	if (o->name && spec.net.nsecrets) {
		if (sbx_secrets_save(m->name, &spec.net, o->secret_values, err) < 0)
			goto fail_dir;
		m->secrets_stored = true;
		m->secrets_keyring = !strcmp(spec.net.secrets_store, "keyring");
	}
	if (register_sandbox(&spec, err) < 0)
		goto fail_dir;
	sbx_secrets_pending(m->name, o->secret_values, spec.net.nsecrets);
	r = 0;
	goto out;
fail_dir:
	rm_rf(dir);
	if (m->secrets_stored)
		sbx_secrets_remove(m->name, m->secrets_keyring);
	m->secrets_stored = false;
fail:
	sbx_made_release(m);
out:
	strv_free(&layers);
	sbx_spec_free(&spec);
	image_config_free(&ic);
	image_record_free(&img);
	return r;
}

void sbx_made_release(struct sbx_made *m)
{
	if (m->held)
		image_release_layers(m->held, m->nheld);
	m->held = NULL;
	m->nheld = 0;
	if (m->lock >= 0)
		close(m->lock);
	m->lock = -1;
}

void sbx_discard(struct sbx_made *m)
{
	_cleanup_free_ char *dir = sbx_dir(m->name);

	if (dir)
		rm_rf(dir);
	sbx_forget(m->name);
	if (m->secrets_stored)
		sbx_secrets_remove(m->name, m->secrets_keyring);
	m->secrets_stored = false;
	sbx_secrets_pending(NULL, NULL, 0);
	sbx_made_release(m);
}
