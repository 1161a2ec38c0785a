// SPDX-License-Identifier: Apache-2.0
/* A sandbox's spec: <sandbox-dir>/config.json, written once at creation, read at every start. */
#define _GNU_SOURCE
#include "sandbox/sandbox.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

static void strv_release(char ***v)
{
	cleanup_strvp(v);
	*v = NULL;
}

void sbx_spec_free(struct sbx_spec *s)
{
	free(s->name);
	free(s->hostname);
	free(s->image);
	free(s->image_digest);
	free(s->rootfs);
	free(s->created_at);
	free(s->workdir);
	free(s->user);
	free(s->shell);
	free(s->init);
	strv_release(&s->layers);
	strv_release(&s->command);
	strv_release(&s->env);
	strv_release(&s->scripts);
	strv_release(&s->init_args);
	strv_release(&s->init_env);
	strv_release(&s->rlimits);
	for (size_t i = 0; i < s->ntmpfs; i++)
		free(s->tmpfs[i].path);
	free(s->tmpfs);
	for (size_t i = 0; i < s->nvolumes; i++) {
		free(s->volumes[i].source);
		free(s->volumes[i].dest);
	}
	free(s->volumes);
	free(s->disk_image);
	free(s->disk_format);
	cleanup_strvp(&s->disk_allow);
	sbx_net_free(&s->net);
	memset(s, 0, sizeof(*s));
}

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();

	for (; a && v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

int sbx_spec_save(const struct sbx_spec *s, struct msb_err **err)
{
	_cleanup_free_ char *dir = sbx_dir(s->name), *path = NULL, *text = NULL;
	json_t *o, *tmpfs = json_array(), *vols = json_array();
	int r;

	if (!dir || !(path = path_join(dir, "config.json")) || !tmpfs || !vols) {
		json_decref(tmpfs);
		json_decref(vols);
		return msb_err_sys(err, ENOMEM, "sandbox %s", s->name);
	}
	for (size_t i = 0; i < s->nvolumes; i++) {
		const struct sbx_volume *v = &s->volumes[i];

		json_array_append_new(vols, json_pack("{s:s, s:s, s:s, s:b, s:b}", "type",
						      v->named ? "volume" : "bind", "source",
						      v->source, "target", v->dest, "readonly",
						      v->readonly, "noexec", v->noexec));
	}
	for (size_t i = 0; i < s->ntmpfs; i++)
		json_array_append_new(tmpfs, json_pack("{s:s, s:I}", "path", s->tmpfs[i].path,
						       "size", (json_int_t)s->tmpfs[i].size));
	o = json_pack("{s:s, s:b, s:i, s:i, s:i, s:s, s:o, s:s?, s:s?, s:s?, s:s, s:s?,"
		      " s:o, s:o, s:s?, s:s?, s:s?, s:o, s:o, s:o, s:s?, s:o, s:o, s:I, s:I, s:o}",
		      "name", s->name, "ephemeral", s->ephemeral, "cpus", (int)s->cpus,
		      "memory_mib", (int)s->mem_mib, "upper_mib", (int)s->upper_mib, "hostname",
		      s->hostname, "layers", strv_json(s->layers), "image", s->image,
		      "image_digest", s->image_digest, "rootfs", s->rootfs, "log_level",
		      log_level_name(s->log_level), "created_at", s->created_at, "command",
		      strv_json(s->command), "env", strv_json(s->env), "workdir", s->workdir,
		      "user", s->user, "shell", s->shell, "tmpfs", tmpfs, "volumes", vols,
		      "scripts", strv_json(s->scripts), "init", s->init, "init_args",
		      strv_json(s->init_args), "init_env", strv_json(s->init_env),
		      "max_duration_ms", (json_int_t)s->max_duration_ms, "idle_timeout_ms",
		      (json_int_t)s->idle_timeout_ms, "network", sbx_net_to_json(&s->net));
	if (o)
		json_object_set_new(o, "rlimits", strv_json(s->rlimits));
	if (o && s->main_timeout_ms)
		json_object_set_new(o, "main_timeout_ms",
				    json_integer((json_int_t)s->main_timeout_ms));
	if (o && s->rootfs_bind)
		json_object_set_new(o, "rootfs_bind", json_true());
	if (o && s->disk_image)
		json_object_set_new(o, "disk",
				    json_pack("{s:s, s:s, s:b, s:o}", "image", s->disk_image,
					      "format", s->disk_format ? s->disk_format : "raw",
					      "snapshot", s->disk_snapshot, "allow_backing",
					      strv_json(s->disk_allow)));
	if (!o)
		return msb_err_set(err, EINVAL, "sandbox %s: cannot encode config", s->name);
	text = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	if (!text)
		return msb_err_sys(err, ENOMEM, "sandbox %s", s->name);
	/* An ephemeral sandbox does not survive a crash anyway: skip the fsync. */
	r = s->ephemeral ? write_file_replace(path, text, strlen(text), 0600)
			 : write_file_atomic(path, text, strlen(text), 0600);
	if (r < 0)
		return msb_err_sys(err, -r, "%s", path);
	return 0;
}

static char *json_strdup(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? strdup(s) : NULL;
}

/* Return: a NULL-terminated copy of a string array (empty if absent), or NULL on a bad type. */
static char **json_strv(json_t *o, const char *key)
{
	json_t *a = json_object_get(o, key), *v;
	size_t i, n = json_array_size(a);
	char **out;

	if (a && !json_is_array(a))
		return NULL;
	out = calloc(n + 1, sizeof(char *));
	if (!out)
		return NULL;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || !(out[i] = strdup(json_string_value(v)))) {
			cleanup_strvp(&out);
			return NULL;
		}
	}
	return out;
}

int sbx_spec_load(const char *name, struct sbx_spec *s, struct msb_err **err)
{
	_cleanup_free_ char *dir = sbx_dir(name), *path = NULL;

	memset(s, 0, sizeof(*s));
	if (!dir || !(path = path_join(dir, "config.json")))
		return msb_err_sys(err, ENOMEM, "sandbox %s", name);
	if (access(path, F_OK) < 0)
		return msb_err_set(err, ENOENT, "sandbox %s: not found", name);
	return sbx_spec_read(path, s, err);
}

int sbx_spec_read(const char *path, struct sbx_spec *s, struct msb_err **err)
{
	json_error_t je;
	json_t *o, *t, *v;
	const char *lvl;
	char why[256] = "";
	bool bad = false;
	size_t i;

	memset(s, 0, sizeof(*s));
	o = json_load_file(path, 0, &je);
	if (!o)
		return msb_err_set(err, EINVAL, "%s: %s (line %d)", path, je.text, je.line);
	s->name = json_strdup(o, "name");
	s->hostname = json_strdup(o, "hostname");
	s->image = json_strdup(o, "image");
	s->image_digest = json_strdup(o, "image_digest");
	s->rootfs = json_strdup(o, "rootfs");
	s->created_at = json_strdup(o, "created_at");
	s->workdir = json_strdup(o, "workdir");
	s->user = json_strdup(o, "user");
	s->shell = json_strdup(o, "shell");
	s->init = json_strdup(o, "init");
	s->ephemeral = json_is_true(json_object_get(o, "ephemeral"));
	s->cpus = (unsigned int)json_integer_value(json_object_get(o, "cpus"));
	s->mem_mib = (unsigned int)json_integer_value(json_object_get(o, "memory_mib"));
	s->upper_mib = (unsigned int)json_integer_value(json_object_get(o, "upper_mib"));
	s->max_duration_ms = (uint64_t)json_integer_value(json_object_get(o, "max_duration_ms"));
	s->idle_timeout_ms = (uint64_t)json_integer_value(json_object_get(o, "idle_timeout_ms"));
	lvl = json_string_value(json_object_get(o, "log_level"));
	if (!lvl || log_level_parse(lvl, &s->log_level) < 0)
		s->log_level = LOG_INFO;
	s->layers = json_strv(o, "layers");
	s->rootfs_bind = json_is_true(json_object_get(o, "rootfs_bind"));
	t = json_object_get(o, "disk");
	if (t) {
		s->disk_image = json_strdup(t, "image");
		s->disk_format = json_strdup(t, "format");
		s->disk_snapshot = json_is_true(json_object_get(t, "snapshot"));
		s->disk_allow = json_strv(t, "allow_backing");
		bad |= !s->disk_allow;
		bad |= !s->disk_image || !s->disk_format ||
		       (strcmp(s->disk_format, "raw") != 0 &&
			strcmp(s->disk_format, "qcow2") != 0 &&
			strcmp(s->disk_format, "vmdk") != 0);
	}
	s->command = json_strv(o, "command");
	s->env = json_strv(o, "env");
	s->scripts = json_strv(o, "scripts");
	s->init_args = json_strv(o, "init_args");
	s->init_env = json_strv(o, "init_env");
	s->rlimits = json_strv(o, "rlimits");
	s->main_timeout_ms = (uint64_t)json_integer_value(json_object_get(o, "main_timeout_ms"));
	t = json_object_get(o, "tmpfs");
	s->tmpfs = calloc(json_array_size(t) + 1, sizeof(*s->tmpfs));
	json_array_foreach(t, i, v)
	{
		const char *p = json_string_value(json_object_get(v, "path"));

		if (!s->tmpfs || !p || !(s->tmpfs[i].path = strdup(p))) {
			bad = true;
			break;
		}
		s->tmpfs[i].size = (uint64_t)json_integer_value(json_object_get(v, "size"));
		s->ntmpfs++;
	}
	t = json_object_get(o, "volumes");
	s->volumes = calloc(json_array_size(t) + 1, sizeof(*s->volumes));
	json_array_foreach(t, i, v)
	{
		const char *type = json_string_value(json_object_get(v, "type"));
		const char *src = json_string_value(json_object_get(v, "source"));
		const char *dst = json_string_value(json_object_get(v, "target"));
		struct sbx_volume *vol = s->volumes ? &s->volumes[i] : NULL;

		if (bad || !vol || !type || !src || !dst || i >= SBX_MAX_VOLUMES ||
		    (strcmp(type, "bind") != 0 && strcmp(type, "volume") != 0) ||
		    !(vol->source = strdup(src)) || !(vol->dest = strdup(dst))) {
			if (vol) {
				free(vol->source);
				vol->source = NULL;
			}
			bad = true;
			break;
		}
		vol->named = !strcmp(type, "volume");
		vol->readonly = json_is_true(json_object_get(v, "readonly"));
		vol->noexec = json_is_true(json_object_get(v, "noexec"));
		s->nvolumes++;
	}
	if (!bad &&
	    sbx_net_from_json(json_object_get(o, "network"), &s->net, why, sizeof(why)) < 0) {
		json_decref(o);
		sbx_spec_free(s);
		return msb_err_set(err, EINVAL, "%s: %s", path, why);
	}
	json_decref(o);
	if (bad || !s->name || !s->hostname || !s->layers ||
	    (!s->layers[0] && !s->disk_image && !(s->rootfs_bind && s->rootfs)) || !s->command ||
	    !s->env || !s->scripts || !s->init_args || !s->init_env || !s->rlimits || !s->tmpfs ||
	    !s->volumes || s->cpus < 1 || s->cpus > SBX_MAX_CPUS || s->mem_mib < SBX_MIN_MEM_MIB) {
		sbx_spec_free(s);
		return msb_err_set(err, EINVAL, "%s: incomplete or invalid sandbox config", path);
	}
	if (!s->shell)
		s->shell = strdup("/bin/sh");
	return 0;
}
