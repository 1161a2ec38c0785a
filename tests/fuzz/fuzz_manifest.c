// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for registry JSON: manifests and indexes, platform choice and image configs. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "image/manifest.h"
#include "image/ref.h"

/*
 * Input: one mode byte, then the JSON body. The mode picks the Content-Type
 * the registry is taken to have sent (mode % 8).
 */
static const char *const ctypes[] = {
	"",
	MT_OCI_INDEX,
	MT_OCI_MANIFEST,
	MT_DOCKER_LIST,
	MT_DOCKER_MANIFEST,
	"application/json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"text/html; charset=utf-8",
};

/* A message msb prints to a terminal: one line, no control characters. */
static void check_err(struct msb_err *err)
{
	CHECK(err && err->msg && err->msg[0]);
	check_printable(err->msg);
	msb_err_free(err);
}

static void check_str(const char *s, size_t cap)
{
	CHECK(strnlen(s, cap) < cap);
}

static void check_desc(const struct descriptor *d)
{
	check_str(d->media_type, sizeof(d->media_type));
	check_str(d->os, sizeof(d->os));
	check_str(d->arch, sizeof(d->arch));
	check_str(d->variant, sizeof(d->variant));
	CHECK(digest_valid(d->digest));
	CHECK(d->size >= 0);
}

static void fuzz_pick(const struct manifest *m)
{
	const char *os, *arch, *variant;
	struct msb_err *err = NULL;
	int i = index_pick(m, &err);

	host_platform(&os, &arch, &variant);
	if (i < 0) {
		CHECK(i == -1);
		check_err(err);
		/* Nothing for this host, not even a variant-less fallback. */
		for (size_t k = 0; k < m->nentries; k++)
			CHECK(strcmp(m->entries[k].os, os) || strcmp(m->entries[k].arch, arch) ||
			      (strcmp(m->entries[k].variant, variant) && m->entries[k].variant[0]));
		return;
	}
	CHECK(!err);
	CHECK((size_t)i < m->nentries);
	CHECK(!strcmp(m->entries[i].os, os) && !strcmp(m->entries[i].arch, arch));
	CHECK(!strcmp(m->entries[i].variant, variant) || !m->entries[i].variant[0]);
	/* An exact variant match, when there is one, is the first one. */
	for (size_t k = 0; k < m->nentries; k++) {
		const struct descriptor *d = &m->entries[k];

		if (!strcmp(d->os, os) && !strcmp(d->arch, arch) && !strcmp(d->variant, variant)) {
			CHECK((size_t)i == k);
			break;
		}
	}
}

static void fuzz_manifest(const char *body, size_t n, const char *ctype)
{
	struct manifest m;
	struct msb_err *err = NULL;
	int r = manifest_parse(body, n, ctype, &m, &err);

	if (r < 0) {
		CHECK(r == -1);
		check_err(err);
		CHECK(!m.entries && !m.layers && !m.nentries && !m.nlayers);
		return;
	}
	CHECK(r == 0 && !err);
	if (m.kind == KIND_INDEX) {
		CHECK(m.entries && !m.layers && !m.nlayers);
		CHECK(m.nentries <= MAX_INDEX_ENTRIES);
		for (size_t i = 0; i < m.nentries; i++)
			check_desc(&m.entries[i]);
		fuzz_pick(&m);
	} else {
		CHECK(m.kind == KIND_MANIFEST);
		CHECK(!m.entries && !m.nentries && m.layers);
		CHECK(m.nlayers >= 1 && m.nlayers <= MAX_LAYERS);
		check_desc(&m.config);
		for (size_t i = 0; i < m.nlayers; i++) {
			enum layer_compression c;

			check_desc(&m.layers[i]);
			CHECK(layer_compression(m.layers[i].media_type, &c) == 0);
			CHECK(c == COMP_NONE || c == COMP_GZIP || c == COMP_ZSTD);
		}
	}
	manifest_free(&m);
	CHECK(!m.entries && !m.layers);
}

static void check_strv(char **v, bool env)
{
	size_t i;

	for (i = 0; v[i]; i++) {
		CHECK(i < 4096);
		if (env)
			CHECK(v[i][0] != '=' && strchr(v[i], '='));
	}
}

static void fuzz_config(const char *body, size_t n)
{
	struct image_config c;
	struct msb_err *err = NULL;
	int r = image_config_parse(body, n, &c, &err);

	if (r < 0) {
		CHECK(r == -1);
		check_err(err);
		CHECK(!c.env && !c.cmd && !c.entrypoint && !c.diff_ids && !c.workdir && !c.user);
		return;
	}
	CHECK(r == 0 && !err);
	CHECK(c.env && c.diff_ids);
	check_strv(c.env, true);
	if (c.cmd)
		check_strv(c.cmd, false);
	if (c.entrypoint)
		check_strv(c.entrypoint, false);
	CHECK(c.ndiff_ids >= 1 && !c.diff_ids[c.ndiff_ids]);
	for (size_t i = 0; i < c.ndiff_ids; i++)
		CHECK(digest_valid(c.diff_ids[i]));
	/* "" is never returned: it means unset. */
	CHECK(!c.workdir || c.workdir[0] == '/');
	CHECK(!c.user || c.user[0]);
	CHECK(!c.os || c.os[0]);
	CHECK(!c.arch || c.arch[0]);
	CHECK(!c.created || c.created[0]);
	image_config_free(&c);
	CHECK(!c.env && !c.diff_ids && !c.ndiff_ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body;
	uint8_t mode;

	if (size == 0)
		return 0;
	mode = data[0];
	/* An exact-size copy, so a read past the end is caught. */
	body = malloc(size - 1 ? size - 1 : 1);
	if (!body)
		return 0;
	memcpy(body, data + 1, size - 1);
	fuzz_manifest(body, size - 1, ctypes[mode % 8]);
	fuzz_config(body, size - 1);
	free(body);
	return 0;
}
