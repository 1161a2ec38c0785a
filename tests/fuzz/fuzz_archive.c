// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for image archives: index.json, manifest.json and member paths. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "image/archive.h"
#include "image/ref.h"

static void check_err(struct msb_err *err)
{
	CHECK(err && err->msg && err->msg[0]);
	check_printable(err->msg);
	msb_err_free(err);
}

/* A normalised member path: relative, no empty, "." or ".." component. */
static void check_path(const char *p)
{
	CHECK(p[0] && p[0] != '/' && strlen(p) < ARCHIVE_PATH_MAX);
	CHECK(p[strlen(p) - 1] != '/' && !strstr(p, "//"));
	for (const char *c = p; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL) {
		size_t n = strcspn(c, "/");

		CHECK(n && !(n == 1 && c[0] == '.') && !(n == 2 && c[0] == '.' && c[1] == '.'));
	}
}

static void fuzz_index(const char *body, size_t n, bool oci)
{
	struct archive_image *v = NULL;
	struct msb_err *err = NULL;
	size_t cnt = 7;
	int r = oci ? archive_parse_oci_index(body, n, &v, &cnt, &err)
		    : archive_parse_docker_manifest(body, n, &v, &cnt, &err);

	if (r < 0) {
		CHECK(r == -1 && !v && !cnt);
		check_err(err);
		return;
	}
	CHECK(r == 0 && !err && v && cnt >= 1 && cnt <= ARCHIVE_MAX_IMAGES);
	for (size_t i = 0; i < cnt; i++) {
		CHECK(v[i].names);
		for (size_t k = 0; v[i].names[k]; k++)
			CHECK(k < ARCHIVE_MAX_NAMES && v[i].names[k][0]);
		if (oci) {
			CHECK(digest_valid(v[i].desc.digest) && v[i].desc.size >= 0);
			CHECK(!v[i].config && !v[i].layers && v[i].desc.media_type[0]);
			/* OCI names are full references, never bare tags. */
			for (size_t k = 0; v[i].names[k]; k++)
				CHECK(strchr(v[i].names[k], '/') || strchr(v[i].names[k], ':'));
		} else {
			check_path(v[i].config);
			CHECK(v[i].nlayers >= 1 && v[i].nlayers <= MAX_LAYERS);
			CHECK(!v[i].layers[v[i].nlayers]);
			for (size_t k = 0; k < v[i].nlayers; k++)
				check_path(v[i].layers[k]);
		}
	}
	archive_images_free(v, cnt);
}

static void fuzz_path(const char *s)
{
	char out[ARCHIVE_PATH_MAX];

	if (archive_member_path(s, out, sizeof(out)) == 0) {
		check_path(out);
		/* Normalising is idempotent. */
		char again[ARCHIVE_PATH_MAX];

		CHECK(archive_member_path(out, again, sizeof(again)) == 0 && !strcmp(out, again));
	}
}

/* Input: one mode byte (0: index.json, 1: manifest.json, 2: a member path), then the body. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body;

	if (size == 0)
		return 0;
	/* An exact-size copy (NUL-terminated for the path mode), so overreads are caught. */
	body = malloc(size);
	if (!body)
		return 0;
	memcpy(body, data + 1, size - 1);
	body[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		fuzz_index(body, size - 1, true);
		break;
	case 1:
		fuzz_index(body, size - 1, false);
		break;
	default:
		fuzz_path(body);
	}
	free(body);
	return 0;
}
