// SPDX-License-Identifier: Apache-2.0
/* Unit tests for image references: grammar, Docker Hub defaults, canonical and familiar forms. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image/ref.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIG   "sha256:" HEX64

/* --- helpers ---------------------------------------------------------- */

struct want {
	const char *in;
	const char *registry, *repository, *tag, *digest;
	const char *canonical, *familiar, *api_host, *object;
};

static void assert_str_or_null(const char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else
		assert_string_equal(got, want);
}

/* Parses @w->in and checks every field and every derived form. */
static void expect_ref(const struct want *w)
{
	struct image_ref r;
	char why[256] = "untouched";
	char *canon, *fam;

	memset(&r, 0xa5, sizeof(r));
	assert_int_equal(ref_parse(w->in, &r, why, sizeof(why)), 0);
	assert_string_equal(r.registry, w->registry);
	assert_string_equal(r.repository, w->repository);
	assert_str_or_null(r.tag, w->tag);
	assert_str_or_null(r.digest, w->digest);

	canon = ref_canonical(&r);
	fam = ref_familiar(&r);
	assert_non_null(canon);
	assert_non_null(fam);
	assert_string_equal(canon, w->canonical);
	assert_string_equal(fam, w->familiar);
	assert_string_equal(ref_api_host(&r), w->api_host);
	assert_string_equal(ref_object(&r), w->object);
	free(canon);
	free(fam);
	ref_free(&r);
	assert_null(r.registry);
	assert_null(r.repository);
	assert_null(r.tag);
	assert_null(r.digest);
}

/* Parses @in, expects -EINVAL and a reason equal to @why; @out must be left empty. */
static void expect_bad(const char *in, const char *why_want)
{
	struct image_ref r;
	char why[512] = "";

	memset(&r, 0xa5, sizeof(r));
	assert_int_equal(ref_parse(in, &r, why, sizeof(why)), -EINVAL);
	assert_true(why[0] != '\0');
	if (why_want)
		assert_string_equal(why, why_want);
	assert_null(r.registry);
	assert_null(r.repository);
	assert_null(r.tag);
	assert_null(r.digest);
	ref_free(&r);
}

/* Like expect_bad() for inputs whose message quotes the input: checks the prefix. */
static void expect_bad_prefix(const char *in, const char *prefix)
{
	struct image_ref r;
	char why[2048] = "";

	assert_int_equal(ref_parse(in, &r, why, sizeof(why)), -EINVAL);
	assert_true(why[0] != '\0');
	assert_memory_equal(why, prefix, strlen(prefix));
	assert_null(r.registry);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* --- valid references ------------------------------------------------- */

static const struct want valid[] = {
	{ "alpine", "docker.io", "library/alpine", "latest", NULL,
	  "docker.io/library/alpine:latest", "alpine:latest", "registry-1.docker.io", "latest" },
	{ "python:3.11", "docker.io", "library/python", "3.11", NULL,
	  "docker.io/library/python:3.11", "python:3.11", "registry-1.docker.io", "3.11" },
	{ "library/python@" DIG, "docker.io", "library/python", NULL, DIG,
	  "docker.io/library/python@" DIG, "python@" DIG, "registry-1.docker.io", DIG },
	{ "ghcr.io/org/img:v1", "ghcr.io", "org/img", "v1", NULL, "ghcr.io/org/img:v1",
	  "ghcr.io/org/img:v1", "ghcr.io", "v1" },
	{ "localhost:5050/x:y", "localhost:5050", "x", "y", NULL, "localhost:5050/x:y",
	  "localhost:5050/x:y", "localhost:5050", "y" },
	{ "localhost/x", "localhost", "x", "latest", NULL, "localhost/x:latest",
	  "localhost/x:latest", "localhost", "latest" },
	{ "127.0.0.1:5000/a/b:c", "127.0.0.1:5000", "a/b", "c", NULL, "127.0.0.1:5000/a/b:c",
	  "127.0.0.1:5000/a/b:c", "127.0.0.1:5000", "c" },
	{ "[::1]:5000/x", "[::1]:5000", "x", "latest", NULL, "[::1]:5000/x:latest",
	  "[::1]:5000/x:latest", "[::1]:5000", "latest" },
	{ "[::1]/x", "[::1]", "x", "latest", NULL, "[::1]/x:latest", "[::1]/x:latest", "[::1]",
	  "latest" },
	{ "[fe80::1:2]:443/a/b@" DIG, "[fe80::1:2]:443", "a/b", NULL, DIG,
	  "[fe80::1:2]:443/a/b@" DIG, "[fe80::1:2]:443/a/b@" DIG, "[fe80::1:2]:443", DIG },
	{ "docker.io/x", "docker.io", "library/x", "latest", NULL, "docker.io/library/x:latest",
	  "x:latest", "registry-1.docker.io", "latest" },
	{ "docker.io/library/x", "docker.io", "library/x", "latest", NULL,
	  "docker.io/library/x:latest", "x:latest", "registry-1.docker.io", "latest" },
	{ "index.docker.io/library/x", "docker.io", "library/x", "latest", NULL,
	  "docker.io/library/x:latest", "x:latest", "registry-1.docker.io", "latest" },
	{ "index.docker.io/x", "docker.io", "library/x", "latest", NULL,
	  "docker.io/library/x:latest", "x:latest", "registry-1.docker.io", "latest" },
	{ "registry-1.docker.io/x", "docker.io", "library/x", "latest", NULL,
	  "docker.io/library/x:latest", "x:latest", "registry-1.docker.io", "latest" },
	{ "registry-1.docker.io/org/x:1", "docker.io", "org/x", "1", NULL, "docker.io/org/x:1",
	  "org/x:1", "registry-1.docker.io", "1" },
	/* Both: the digest is what gets fetched, the tag is kept for display. */
	{ "name:tag@" DIG, "docker.io", "library/name", "tag", DIG,
	  "docker.io/library/name:tag@" DIG, "name:tag@" DIG, "registry-1.docker.io", DIG },
	{ "ghcr.io/o/n:t@" DIG, "ghcr.io", "o/n", "t", DIG, "ghcr.io/o/n:t@" DIG,
	  "ghcr.io/o/n:t@" DIG, "ghcr.io", DIG },
	{ "user/repo", "docker.io", "user/repo", "latest", NULL, "docker.io/user/repo:latest",
	  "user/repo:latest", "registry-1.docker.io", "latest" },
	/* library/ is only dropped when nothing else is nested under it. */
	{ "docker.io/library/a/b", "docker.io", "library/a/b", "latest", NULL,
	  "docker.io/library/a/b:latest", "library/a/b:latest", "registry-1.docker.io", "latest" },
	/* Without a slash "localhost" is a Docker Hub name and :5050 a tag, as in docker. */
	{ "localhost", "docker.io", "library/localhost", "latest", NULL,
	  "docker.io/library/localhost:latest", "localhost:latest", "registry-1.docker.io",
	  "latest" },
	{ "localhost:5050", "docker.io", "library/localhost", "5050", NULL,
	  "docker.io/library/localhost:5050", "localhost:5050", "registry-1.docker.io", "5050" },
	{ "ghcr.io:443/x", "ghcr.io:443", "x", "latest", NULL, "ghcr.io:443/x:latest",
	  "ghcr.io:443/x:latest", "ghcr.io:443", "latest" },
	{ "localhost:65535/x", "localhost:65535", "x", "latest", NULL, "localhost:65535/x:latest",
	  "localhost:65535/x:latest", "localhost:65535", "latest" },
	{ "localhost:1/x", "localhost:1", "x", "latest", NULL, "localhost:1/x:latest",
	  "localhost:1/x:latest", "localhost:1", "latest" },
	{ "my-reg.example.com/a-b/c.d/e_f/g__h/i---j:T_a.g-1", "my-reg.example.com",
	  "a-b/c.d/e_f/g__h/i---j", "T_a.g-1", NULL,
	  "my-reg.example.com/a-b/c.d/e_f/g__h/i---j:T_a.g-1",
	  "my-reg.example.com/a-b/c.d/e_f/g__h/i---j:T_a.g-1", "my-reg.example.com", "T_a.g-1" },
	{ "x:_", "docker.io", "library/x", "_", NULL, "docker.io/library/x:_", "x:_",
	  "registry-1.docker.io", "_" },
	{ "0/1:2", "docker.io", "0/1", "2", NULL, "docker.io/0/1:2", "0/1:2",
	  "registry-1.docker.io", "2" },
	{ "a.b/c", "a.b", "c", "latest", NULL, "a.b/c:latest", "a.b/c:latest", "a.b", "latest" },
	{ "x@" DIG, "docker.io", "library/x", NULL, DIG, "docker.io/library/x@" DIG, "x@" DIG,
	  "registry-1.docker.io", DIG },
};

static void test_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(valid); i++)
		expect_ref(&valid[i]);
}

/* canonical and familiar forms parse back to the same reference. */
static void test_roundtrip(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(valid); i++) {
		const char *forms[] = { valid[i].canonical, valid[i].familiar };

		for (size_t k = 0; k < ARRAY_SIZE(forms); k++) {
			struct image_ref r;
			char why[128];
			char *c;

			assert_int_equal(ref_parse(forms[k], &r, why, sizeof(why)), 0);
			c = ref_canonical(&r);
			assert_string_equal(c, valid[i].canonical);
			free(c);
			ref_free(&r);
		}
	}
}

/* Every tag character class and the length limit of 128. */
static void test_tag_grammar(void **state)
{
	char in[300];
	char *t128 = repeat('a', 128), *t129 = repeat('a', 129);
	static const char *const good[] = {
		"A", "_", "9", "a.b", "a-b", "a_b", "A..--__", "v1.2.3"
	};
	static const char *const bad[] = { ".a", "-a", "a+b", "a b", "a!", "\xc3\xa9", "a\x01" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct image_ref r;
		char why[128];

		snprintf(in, sizeof(in), "x:%s", good[i]);
		assert_int_equal(ref_parse(in, &r, why, sizeof(why)), 0);
		assert_string_equal(r.tag, good[i]);
		ref_free(&r);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char want[300];

		snprintf(in, sizeof(in), "x:%s", bad[i]);
		snprintf(want, sizeof(want), "invalid tag \"%s\"", bad[i]);
		expect_bad(in, want);
	}

	snprintf(in, sizeof(in), "x:%s", t128);
	{
		struct image_ref r;
		char why[128];

		assert_int_equal(ref_parse(in, &r, why, sizeof(why)), 0);
		assert_string_equal(r.tag, t128);
		ref_free(&r);
	}
	snprintf(in, sizeof(in), "x:%s", t129);
	{
		char want[300];

		snprintf(want, sizeof(want), "invalid tag \"%s\"", t129);
		expect_bad(in, want);
	}
	free(t128);
	free(t129);
}

/* path-component := [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)* */
static void test_component_grammar(void **state)
{
	static const char *const good[] = { "a",     "a.b",	   "a_b", "a__b",	"a-b",
					    "a---b", "a.b-c_d__e", "0",	  "a1/b2/c3/d4" };
	static const char *const bad[] = { "a..b",
					   "a___b",
					   "a_-b",
					   "a-_b",
					   "a.-b",
					   "-a",
					   "a-",
					   ".a",
					   "a.",
					   "_a",
					   "a_",
					   "a//b",
					   "a/-b",
					   "a/b-",
					   "/a",
					   "a/",
					   "a b",
					   "a%b/c",
					   "a\tb",
					   "al\npine",
					   "a/b:c/d",
					   "x:y:z",
					   "foo/bar:baz/qux" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct image_ref r;
		char why[128];

		assert_int_equal(ref_parse(good[i], &r, why, sizeof(why)), 0);
		ref_free(&r);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char want[128];

		snprintf(want, sizeof(want), "invalid reference format \"%s\"", bad[i]);
		expect_bad(bad[i], want);
	}
}

static void test_uppercase_repository(void **state)
{
	(void)state;
	expect_bad("Alpine", "invalid reference \"Alpine\": repository name must be lowercase");
	expect_bad("ghcr.io/Org/img:v1",
		   "invalid reference \"ghcr.io/Org/img:v1\": repository name must be lowercase");
	expect_bad("library/pythoN@" DIG, "invalid reference \"library/pythoN@" DIG
					  "\": repository name must be lowercase");
	/* Tags and registries may have capitals. */
	{
		struct image_ref r;
		char why[128];

		assert_int_equal(ref_parse("GHCR.io/org/img:V1", &r, why, sizeof(why)), 0);
		assert_string_equal(r.registry, "GHCR.io");
		assert_string_equal(r.tag, "V1");
		ref_free(&r);
	}
}

static void test_bad_digests(void **state)
{
	char in[512];
	static const char *const bad[] = {
		"sha512:" HEX64 HEX64,
		"sha256:abc",
		"sha256:" HEX64 "0",
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
		"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
		"SHA256:" HEX64,
		"sha256;" HEX64,
		"sha256:",
		"",
		HEX64,
		"sha256:" HEX64 "@" DIG,
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char want[512];

		snprintf(in, sizeof(in), "alpine@%s", bad[i]);
		snprintf(want, sizeof(want),
			 "invalid digest \"%s\" (expected sha256: and 64 lowercase hex digits)",
			 bad[i]);
		expect_bad(in, want);
	}
	/* No name in front of the digest. */
	expect_bad("@" DIG, "invalid reference format \"@" DIG "\"");
}

static void test_digest_valid(void **state)
{
	(void)state;
	assert_true(digest_valid(DIG));
	assert_true(
		digest_valid("sha256:"
			     "0000000000000000000000000000000000000000000000000000000000000000"));
	assert_false(digest_valid(NULL));
	assert_false(digest_valid(""));
	assert_false(digest_valid("sha256:"));
	assert_false(digest_valid(HEX64));
	assert_false(digest_valid("sha256:" HEX64 "a"));
	assert_false(digest_valid("sha256:" HEX64 "\n"));
	assert_false(digest_valid("sha512:" HEX64));
	assert_false(
		digest_valid("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789A"
			     "bcdef"));
	assert_false(digest_valid(" sha256:" HEX64));
}

static void test_empty_and_degenerate(void **state)
{
	(void)state;
	expect_bad("", "empty image reference");
	expect_bad(NULL, "empty image reference");
	expect_bad("x:", "invalid tag \"\"");
	expect_bad(":tag", "invalid reference format \":tag\"");
	expect_bad(":", "invalid tag \"\"");
	expect_bad("x@", "invalid digest \"\" (expected sha256: and 64 lowercase hex digits)");
	expect_bad("/", "invalid reference format \"/\"");
	expect_bad(" alpine", "invalid reference format \" alpine\"");
	expect_bad("alpine ", "invalid reference format \"alpine \"");
	expect_bad("[::1]:5000", "invalid reference format \"[::1]:5000\"");
}

static void test_registries(void **state)
{
	(void)state;
	expect_bad("localhost:0/x", "invalid registry \"localhost:0\"");
	expect_bad("localhost:00/x", "invalid registry \"localhost:00\"");
	expect_bad("localhost:65536/x", "invalid registry \"localhost:65536\"");
	expect_bad("localhost:99999999999999999999/x",
		   "invalid registry \"localhost:99999999999999999999\"");
	expect_bad("localhost:abc/x", "invalid registry \"localhost:abc\"");
	expect_bad("localhost:-1/x", "invalid registry \"localhost:-1\"");
	expect_bad("localhost:+1/x", "invalid registry \"localhost:+1\"");
	expect_bad("localhost:/x", "invalid registry \"localhost:\"");
	expect_bad("localhost:5000:1/x", "invalid registry \"localhost:5000:1\"");
	expect_bad("a-.com/x", "invalid registry \"a-.com\"");
	expect_bad("-a.com/x", "invalid registry \"-a.com\"");
	expect_bad("a..b/x", "invalid registry \"a..b\"");
	expect_bad("a./x", "invalid registry \"a.\"");
	expect_bad(".a/x", "invalid registry \".a\"");
	expect_bad("a_b.com/x", "invalid registry \"a_b.com\"");
	expect_bad("[::1]x/y", "invalid registry \"[::1]x\"");
	expect_bad("[]/x", "invalid registry \"[]\"");
	expect_bad("[::1/x", "invalid registry \"[::1\"");
	expect_bad("[::g%1]/x", "invalid registry \"[::g%1]\"");
	expect_bad("[::1]:/x", "invalid registry \"[::1]:\"");
	expect_bad("[::1]:70000/x", "invalid registry \"[::1]:70000\"");
}

static void test_long_names(void **state)
{
	char in[2048];
	char *r237 = repeat('a', 237), *r238 = repeat('a', 238);
	char *r247 = repeat('b', 247), *r248 = repeat('b', 248);
	char *huge = repeat('a', 1025), *max = repeat('c', 1024);
	struct image_ref r;
	char why[2048];

	(void)state;
	/* The limit is on the normalised name: "docker.io/library/" + 237 = 255. */
	assert_int_equal(ref_parse(r237, &r, why, sizeof(why)), 0);
	assert_int_equal(strlen(r.registry) + 1 + strlen(r.repository), 255);
	ref_free(&r);
	snprintf(in, sizeof(in), "image name \"%s\" is too long", r238);
	expect_bad(r238, in);

	snprintf(in, sizeof(in), "ghcr.io/%s:v1", r247);
	assert_int_equal(ref_parse(in, &r, why, sizeof(why)), 0);
	assert_string_equal(r.repository, r247);
	ref_free(&r);
	snprintf(in, sizeof(in), "ghcr.io/%s:v1", r248);
	expect_bad_prefix(in, "image name \"ghcr.io/bbbb");

	/* The tag does not count towards the name. */
	snprintf(in, sizeof(in), "%s:%s", r237, "t1234567890123456789012345678901234567890");
	assert_int_equal(ref_parse(in, &r, why, sizeof(why)), 0);
	ref_free(&r);

	expect_bad(huge, "image reference too long");
	/* 1024 characters get past the first check and fail on the name. */
	expect_bad_prefix(max, "image name \"cccc");
	free(r237);
	free(r238);
	free(r247);
	free(r248);
	free(huge);
	free(max);
}

/* A short buffer truncates the reason but never overflows it. */
static void test_why_truncated(void **state)
{
	struct image_ref r;
	char why[9];

	(void)state;
	memset(why, 'x', sizeof(why));
	assert_int_equal(ref_parse("Alpine", &r, why, 8), -EINVAL);
	assert_string_equal(why, "invalid");
	assert_int_equal(why[8], 'x');
	assert_int_equal(ref_parse("", &r, why, 1), -EINVAL);
	assert_int_equal(why[0], '\0');
}

static void test_free_zeroed(void **state)
{
	struct image_ref r = { 0 };

	(void)state;
	ref_free(&r);
	ref_free(&r);
	assert_null(r.registry);
}

/*
 * Regression: ref_familiar() drops "docker.io/" even when the first path
 * component looks like a registry, so the familiar form names another image.
 * "docker.io/localhost/x" -> "localhost/x:latest", which parses as repository
 * "x" on the registry "localhost"; "docker.io/a.b/c" -> "a.b/c:latest" (registry
 * "a.b"). Expected: the familiar form keeps "docker.io/" in those cases.
 */
static void test_bug_familiar_ambiguous(void **state)
{
	static const char *const in[] = { "docker.io/localhost/x", "docker.io/a.b/c",
					  "index.docker.io/localhost/x" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
		struct image_ref r, again;
		char why[128], *fam, *c1, *c2;

		assert_int_equal(ref_parse(in[i], &r, why, sizeof(why)), 0);
		fam = ref_familiar(&r);
		assert_int_equal(ref_parse(fam, &again, why, sizeof(why)), 0);
		c1 = ref_canonical(&r);
		c2 = ref_canonical(&again);
		assert_string_equal(c2, c1);
		free(c1);
		free(c2);
		free(fam);
		ref_free(&r);
		ref_free(&again);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_tag_grammar),
		cmocka_unit_test(test_component_grammar),
		cmocka_unit_test(test_uppercase_repository),
		cmocka_unit_test(test_bad_digests),
		cmocka_unit_test(test_digest_valid),
		cmocka_unit_test(test_empty_and_degenerate),
		cmocka_unit_test(test_registries),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_why_truncated),
		cmocka_unit_test(test_free_zeroed),
		cmocka_unit_test(test_bug_familiar_ambiguous),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
