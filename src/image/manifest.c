// SPDX-License-Identifier: Apache-2.0
/* Manifest, index and config parsing: every field type-checked, every count bounded. */
#define _GNU_SOURCE
#include "image/manifest.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "image/ref.h"
#include "util/cleanup.h"
#include "util/text.h"

#define MAX_STRV 4096
#define MAX_STR	 (64u << 10)
bool json_values_bounded(const char *body, size_t n, size_t max)
{
	size_t count = 1;
	bool in_str = false;

	for (size_t i = 0; i < n; i++) {
		char ch = body[i];

		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		if (ch == '"')
			in_str = true;
		else if ((ch == ',' || ch == '[' || ch == '{') && ++count > max)
			return false;
	}
	return true;
}

static int copy_str(json_t *o, const char *key, char *dst, size_t cap, bool required)
{
	json_t *v = json_object_get(o, key);
	const char *s = json_string_value(v);

	dst[0] = '\0';
	if (!v)
		return required ? -1 : 0;
	if (!s || strlen(s) >= cap)
		return -1;
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int parse_descriptor(json_t *o, struct descriptor *d, bool platform, struct msb_err **err)
{
	json_t *size = json_object_get(o, "size");

	memset(d, 0, sizeof(*d));
	if (!json_is_object(o))
		return msb_err_set(err, EINVAL, "malformed manifest: descriptor is not an object");
	if (copy_str(o, "mediaType", d->media_type, sizeof(d->media_type), true) < 0)
		return msb_err_set(err, EINVAL,
				   "malformed manifest: descriptor without a media type");
	if (copy_str(o, "digest", d->digest, sizeof(d->digest), true) < 0 ||
	    !digest_valid(d->digest))
		return msb_err_set(err, EINVAL,
				   "malformed manifest: missing or unsupported digest");
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return msb_err_set(err, EINVAL,
				   "malformed manifest: descriptor %s has no valid size",
				   d->digest);
	d->size = json_integer_value(size);
	if (platform) {
		json_t *p = json_object_get(o, "platform");

		if (p && (copy_str(p, "os", d->os, sizeof(d->os), false) < 0 ||
			  copy_str(p, "architecture", d->arch, sizeof(d->arch), false) < 0 ||
			  copy_str(p, "variant", d->variant, sizeof(d->variant), false) < 0))
			return msb_err_set(err, EINVAL, "malformed index: bad platform for %s",
					   d->digest);
	}
	return 0;
}

static int parse_list(json_t *arr, size_t max, bool platform, struct descriptor **out, size_t *n,
		      const char *what, struct msb_err **err)
{
	size_t count = json_array_size(arr);

	if (!json_is_array(arr))
		return msb_err_set(err, EINVAL, "malformed manifest: no %s list", what);
	if (count > max)
		return msb_err_set(err, E2BIG, "manifest has %zu %s, more than the %zu msb accepts",
				   count, what, max);
	*out = calloc(count ? count : 1, sizeof(**out));
	if (!*out)
		return msb_err_sys(err, ENOMEM, "manifest");
	for (size_t i = 0; i < count; i++)
		if (parse_descriptor(json_array_get(arr, i), &(*out)[i], platform, err) < 0)
			return -1;
	*n = count;
	return 0;
}

int layer_compression(const char *mt, enum layer_compression *out)
{
	static const struct {
		const char *type;
		enum layer_compression c;
	} known[] = {
		{ "application/vnd.oci.image.layer.v1.tar", COMP_NONE },
		{ "application/vnd.oci.image.layer.v1.tar+gzip", COMP_GZIP },
		{ "application/vnd.oci.image.layer.v1.tar+zstd", COMP_ZSTD },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip", COMP_GZIP },
		{ "application/vnd.docker.image.rootfs.diff.tar", COMP_NONE },
	};

	for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
		if (!strcmp(mt, known[i].type)) {
			*out = known[i].c;
			return 0;
		}
	}
	return -1;
}

int manifest_parse(const char *body, size_t n, const char *ctype, struct manifest *m,
		   struct msb_err **err)
{
	json_error_t je;
	json_t *o;
	const char *mt, *type;
	int r = -1;

	memset(m, 0, sizeof(*m));
	if (!json_values_bounded(body, n, MAX_JSON_VALUES))
		return msb_err_set(err, E2BIG, "malformed manifest: more than %u JSON values",
				   MAX_JSON_VALUES);
	o = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		return msb_err_set(err, EINVAL, "malformed manifest: %s",
				   o ? "not a JSON object" : je.text);
	}
	mt = json_string_value(json_object_get(o, "mediaType"));
	type = mt ? mt : (ctype && *ctype && strcmp(ctype, "application/json") != 0 ? ctype : NULL);
	if (json_integer_value(json_object_get(o, "schemaVersion")) != 2) {
		msb_err_set(err, ENOTSUP,
			    "unsupported manifest: schema version %lld (msb needs schema 2 or OCI)",
			    (long long)json_integer_value(json_object_get(o, "schemaVersion")));
		goto out;
	}
	/* No declared type: the shape decides, as OCI allows. */
	if (!type)
		type = json_object_get(o, "manifests") ? MT_OCI_INDEX : MT_OCI_MANIFEST;
	if (!strcmp(type, MT_OCI_INDEX) || !strcmp(type, MT_DOCKER_LIST)) {
		m->kind = KIND_INDEX;
		r = parse_list(json_object_get(o, "manifests"), MAX_INDEX_ENTRIES, true,
			       &m->entries, &m->nentries, "manifests", err);
	} else if (!strcmp(type, MT_OCI_MANIFEST) || !strcmp(type, MT_DOCKER_MANIFEST)) {
		m->kind = KIND_MANIFEST;
		r = parse_descriptor(json_object_get(o, "config"), &m->config, false, err);
		if (!r)
			r = parse_list(json_object_get(o, "layers"), MAX_LAYERS, false, &m->layers,
				       &m->nlayers, "layers", err);
		if (!r && m->nlayers == 0)
			r = msb_err_set(err, EINVAL, "malformed manifest: the image has no layers");
		for (size_t i = 0; !r && m->layers && i < m->nlayers; i++) {
			enum layer_compression c;

			if (layer_compression(m->layers[i].media_type, &c) < 0) {
				char safe[130];

				text_sanitize(safe, sizeof(safe), m->layers[i].media_type,
					      strlen(m->layers[i].media_type));
				r = msb_err_set(err, ENOTSUP,
						"unsupported layer type %s (layer %s)", safe,
						m->layers[i].digest);
			}
		}
	} else {
		char safe[130];

		text_sanitize(safe, sizeof(safe), type, strlen(type));
		msb_err_set(err, ENOTSUP, "unsupported manifest type %s", safe);
	}
out:
	json_decref(o);
	if (r < 0)
		manifest_free(m);
	return r;
}

void manifest_free(struct manifest *m)
{
	free(m->entries);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

void host_platform(const char **os, const char **arch, const char **variant)
{
	struct utsname u;

	*os = "linux";
	*arch = "amd64";
	*variant = "";
	if (uname(&u) == 0 && (!strcmp(u.machine, "aarch64") || !strcmp(u.machine, "arm64"))) {
		*arch = "arm64";
		*variant = "v8";
	}
}

int index_pick(const struct manifest *idx, struct msb_err **err)
{
	const char *os, *arch, *variant;
	char have[512] = "";
	size_t off = 0;
	int best = -1;

	host_platform(&os, &arch, &variant);
	for (size_t i = 0; i < idx->nentries; i++) {
		const struct descriptor *d = &idx->entries[i];

		if (strcmp(d->os, os) != 0 || strcmp(d->arch, arch) != 0)
			continue;
		/* An exact variant wins; an entry without one is the fallback. */
		if (!strcmp(d->variant, variant))
			return (int)i;
		if (best < 0 && !d->variant[0])
			best = (int)i;
	}
	if (best >= 0)
		return best;
	for (size_t i = 0; i < idx->nentries && off < sizeof(have) - 1; i++) {
		const struct descriptor *d = &idx->entries[i];

		if (!d->os[0] || !strcmp(d->os, "unknown"))
			continue; /* attestations and the like */
		off += (size_t)snprintf(have + off, sizeof(have) - off, "%s%s/%s%s%s",
					off ? ", " : "", d->os, d->arch, d->variant[0] ? "/" : "",
					d->variant);
	}
	return msb_err_set(err, ENOENT, "no image for %s/%s%s%s in the index (it has: %s)", os,
			   arch, *variant ? "/" : "", variant, *have ? have : "nothing");
}

/* A JSON array of strings, bounded. Return: 0 (NULL when absent or null), or -1. */
static int strv_from(json_t *a, char ***out, bool empty_if_absent)
{
	size_t n = json_array_size(a);
	char **v;

	*out = NULL;
	if (!a || json_is_null(a)) {
		if (!empty_if_absent)
			return 0;
		*out = calloc(1, sizeof(char *));
		return *out ? 0 : -1;
	}
	if (!json_is_array(a) || n > MAX_STRV)
		return -1;
	v = calloc(n + 1, sizeof(char *));
	if (!v)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(a, i));

		if (!s || strlen(s) > MAX_STR || !(v[i] = strdup(s))) {
			cleanup_strvp(&v);
			return -1;
		}
	}
	*out = v;
	return 0;
}

/*
 * Labels as "KEY=VALUE" strings, for display only: anything that is not a
 * string label is skipped rather than failing the image, and at most
 * MAX_STRV are kept. Return: 0 (NULL when there are none), or -1 on ENOMEM.
 */
static int labels_from(json_t *o, char ***out)
{
	size_t n = json_object_size(o), i = 0;
	const char *k;
	json_t *v;
	char **l;

	*out = NULL;
	if (!json_is_object(o) || !n)
		return 0;
	l = calloc((n < MAX_STRV ? n : MAX_STRV) + 1, sizeof(char *));
	if (!l)
		return -1;
	json_object_foreach(o, k, v)
	{
		const char *s = json_string_value(v);

		if (i >= MAX_STRV)
			break;
		if (!s || strlen(k) > MAX_STR || strlen(s) > MAX_STR)
			continue;
		if (asprintf(&l[i], "%s=%s", k, s) < 0) {
			l[i] = NULL;
			cleanup_strvp(&l);
			return -1;
		}
		i++;
	}
	*out = l;
	return 0;
}

static int str_from(json_t *o, const char *key, char **out)
{
	json_t *v = json_object_get(o, key);
	const char *s = json_string_value(v);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!s || strlen(s) > MAX_STR)
		return -1;
	/* "" means unset, as in docker */
	if (!*s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -1;
}

int image_config_parse(const char *body, size_t n, struct image_config *c, struct msb_err **err)
{
	json_error_t je;
	json_t *o, *cfg, *rootfs;
	int r = 0;

	memset(c, 0, sizeof(*c));
	if (!json_values_bounded(body, n, MAX_JSON_VALUES))
		return msb_err_set(err, E2BIG, "malformed image config: more than %u JSON values",
				   MAX_JSON_VALUES);
	o = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		return msb_err_set(err, EINVAL, "malformed image config: %s",
				   o ? "not a JSON object" : je.text);
	}
	cfg = json_object_get(o, "config");
	rootfs = json_object_get(o, "rootfs");
	if ((cfg && !json_is_object(cfg) && !json_is_null(cfg)) ||
	    (rootfs && !json_is_object(rootfs))) {
		json_decref(o);
		return msb_err_set(err, EINVAL,
				   "malformed image config: a field has the wrong type");
	}
	if (strv_from(json_object_get(cfg, "Env"), &c->env, true) < 0 ||
	    strv_from(json_object_get(cfg, "Cmd"), &c->cmd, false) < 0 ||
	    strv_from(json_object_get(cfg, "Entrypoint"), &c->entrypoint, false) < 0 ||
	    str_from(cfg, "WorkingDir", &c->workdir) < 0 || str_from(cfg, "User", &c->user) < 0 ||
	    str_from(o, "os", &c->os) < 0 || str_from(o, "architecture", &c->arch) < 0 ||
	    str_from(o, "created", &c->created) < 0 ||
	    labels_from(json_object_get(cfg, "Labels"), &c->labels) < 0 ||
	    strv_from(json_object_get(rootfs, "diff_ids"), &c->diff_ids, false) < 0) {
		r = msb_err_set(err, EINVAL, "malformed image config: a field has the wrong type");
		goto out;
	}
	if (!c->diff_ids || !c->diff_ids[0]) {
		r = msb_err_set(err, EINVAL, "malformed image config: no rootfs.diff_ids");
		goto out;
	}
	while (c->diff_ids[c->ndiff_ids]) {
		if (!digest_valid(c->diff_ids[c->ndiff_ids])) {
			r = msb_err_set(err, EINVAL, "malformed image config: invalid diff_id");
			goto out;
		}
		c->ndiff_ids++;
	}
	for (char **e = c->env; *e; e++) {
		if ((*e)[0] == '=' || !strchr(*e, '=')) {
			r = msb_err_set(err, EINVAL,
					"malformed image config: Env entry without KEY=");
			goto out;
		}
	}
	if (c->workdir && c->workdir[0] != '/') {
		r = msb_err_set(err, EINVAL, "malformed image config: WorkingDir is not absolute");
		goto out;
	}
out:
	json_decref(o);
	if (r < 0)
		image_config_free(c);
	return r;
}

void image_config_free(struct image_config *c)
{
	cleanup_strvp(&c->env);
	cleanup_strvp(&c->cmd);
	cleanup_strvp(&c->entrypoint);
	cleanup_strvp(&c->diff_ids);
	cleanup_strvp(&c->labels);
	free(c->workdir);
	free(c->user);
	free(c->os);
	free(c->arch);
	free(c->created);
	memset(c, 0, sizeof(*c));
}
