// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for image references: parsing, normal forms and their round trips. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "image/ref.h"

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static bool streq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* path-component := [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*, restated for the check. */
static bool repo_chars_ok(const char *r)
{
	if (!*r || *r == '/' || r[strlen(r) - 1] == '/' || strstr(r, "//"))
		return false;
	for (; *r; r++)
		if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || strchr("._-/", *r)))
			return false;
	return true;
}

static void check_parsed(const struct image_ref *r)
{
	CHECK(r->registry && r->repository);
	CHECK(r->tag || r->digest);
	CHECK(*r->registry && printable(r->registry));
	CHECK(repo_chars_ok(r->repository));
	CHECK(strlen(r->registry) + 1 + strlen(r->repository) <= 255);
	if (r->tag)
		CHECK(*r->tag && strlen(r->tag) <= 128 && printable(r->tag) && r->tag[0] != '.' &&
		      r->tag[0] != '-');
	if (r->digest)
		CHECK(digest_valid(r->digest));
	/* Docker Hub's aliases are folded into one name, bare names into library/. */
	CHECK(strcmp(r->registry, "index.docker.io") && strcmp(r->registry, DOCKER_HUB_API));
	if (!strcmp(r->registry, DOCKER_HUB))
		CHECK(strchr(r->repository, '/'));
	CHECK(!strcmp(ref_api_host(r),
		      strcmp(r->registry, DOCKER_HUB) ? r->registry : DOCKER_HUB_API));
	CHECK(ref_object(r) == (r->digest ? r->digest : r->tag));
}

/* Parses @s, which must succeed, and checks it names the same image as @want. */
static void check_reparse(const char *s, const struct image_ref *want, const char *want_canon)
{
	struct image_ref again;
	char why[256] = "";
	char *c;
	int rc = ref_parse(s, &again, why, sizeof(why));

	if (rc == -ENOMEM)
		return;
	CHECK(rc == 0);
	check_parsed(&again);
	CHECK(!strcmp(again.registry, want->registry));
	CHECK(!strcmp(again.repository, want->repository));
	CHECK(streq(again.tag, want->tag));
	CHECK(streq(again.digest, want->digest));
	c = ref_canonical(&again);
	if (c)
		CHECK(!strcmp(c, want_canon));
	free(c);
	ref_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), why[256];
	struct image_ref r;
	int rc;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	memset(why, 0, sizeof(why));
	rc = ref_parse(s, &r, why, sizeof(why));
	if (rc < 0) {
		CHECK(rc == -EINVAL || rc == -ENOMEM);
		CHECK(!r.registry && !r.repository && !r.tag && !r.digest);
		if (rc == -EINVAL)
			CHECK(why[0] != '\0' && memchr(why, '\0', sizeof(why)));
	} else {
		char *canon, *fam;

		CHECK(rc == 0);
		check_parsed(&r);
		canon = ref_canonical(&r);
		fam = ref_familiar(&r);
		if (canon && fam) {
			CHECK(printable(canon) && printable(fam));
			CHECK(strlen(fam) <= strlen(canon));
			/* Normal forms are fixed points. */
			check_reparse(canon, &r, canon);
			check_reparse(fam, &r, canon);
		}
		free(canon);
		free(fam);
		ref_free(&r);
		CHECK(!r.registry && !r.repository && !r.tag && !r.digest);
	}

	/* The same bytes as a bare digest. */
	if (digest_valid(s))
		CHECK(strlen(s) == 71 && !strncmp(s, "sha256:", 7));
	free(s);
	return 0;
}
