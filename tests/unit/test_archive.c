// SPDX-License-Identifier: Apache-2.0
/* Unit tests for image archives: member paths, index.json and manifest.json parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "image/archive.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void path_ok(const char *in, const char *want)
{
	char out[ARCHIVE_PATH_MAX];

	assert_int_equal(archive_member_path(in, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void path_bad(const char *in)
{
	char out[ARCHIVE_PATH_MAX];

	assert_int_equal(archive_member_path(in, out, sizeof(out)), -1);
}

static void test_member_paths(void **state)
{
	char small[4];

	(void)state;
	path_ok("index.json", "index.json");
	path_ok("./blobs//sha256/./x/", "blobs/sha256/x");
	path_ok("a..b/..c", "a..b/..c");
	path_bad("");
	path_bad("./");
	path_bad("/etc/passwd");
	path_bad("../x");
	path_bad("a/../../x");
	path_bad("a/..");
	assert_int_equal(archive_member_path("abcd", small, sizeof(small)), -1);
}

/* The limit is the caller's buffer: a load's ARCHIVE_PATH_MAX, a save's PATH_MAX. */
static void test_member_path_length(void **state)
{
	char raw[3000], out[4096], load[ARCHIVE_PATH_MAX];

	(void)state;
	memset(raw, 'a', sizeof(raw) - 1);
	raw[sizeof(raw) - 1] = '\0';
	for (size_t i = 100; i < sizeof(raw) - 1; i += 100)
		raw[i] = '/';
	assert_int_equal(archive_member_path(raw, out, sizeof(out)), 0);
	assert_string_equal(out, raw);
	assert_int_equal(archive_member_path(raw, load, sizeof(load)), -1);
	/* Exactly filling the buffer (with its NUL) fits; one more byte does not. */
	raw[sizeof(load) - 1] = '\0';
	assert_int_equal(archive_member_path(raw, load, sizeof(load)), 0);
	raw[sizeof(load) - 1] = 'a';
	raw[sizeof(load)] = '\0';
	assert_int_equal(archive_member_path(raw, load, sizeof(load)), -1);
}

/* Parsed JSON costs ~40 bytes a value: an index of a million zeros is refused unparsed. */
static void test_index_value_count_bounded(void **state)
{
	static char body[1u << 20];
	struct archive_image *v = NULL;
	struct msb_err *err = NULL;
	size_t n = 9, len = 0;

	(void)state;
	body[len++] = '[';
	while (len + 3 < sizeof(body)) {
		body[len++] = '0';
		body[len++] = ',';
	}
	body[len++] = '0';
	body[len++] = ']';
	assert_int_equal(archive_parse_oci_index(body, len, &v, &n, &err), -1);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "index.json has more than"));
	msb_err_free(err);
	err = NULL;
	assert_int_equal(archive_parse_docker_manifest(body, len, &v, &n, &err), -1);
	assert_non_null(strstr(err->msg, "manifest.json has more than"));
	msb_err_free(err);
}

static void test_oci_index_names(void **state)
{
	static const char body[] = "{\"schemaVersion\":2,\"manifests\":["
				   "{\"digest\":\"sha256:" HEX64 "\",\"size\":5,\"annotations\":"
				   "{\"org.opencontainers.image.ref.name\":\"latest\"}},"
				   "{\"digest\":\"sha256:" HEX64 "\",\"size\":5,\"annotations\":"
				   "{\"org.opencontainers.image.ref.name\":\"localhost/a:1\"}},"
				   "{\"digest\":\"sha256:" HEX64 "\",\"size\":5,\"annotations\":"
				   "{\"org.opencontainers.image.ref.name\":\"latest\","
				   "\"io.containerd.image.name\":\"docker.io/library/b:2\"}}]}";
	struct archive_image *v = NULL;
	struct msb_err *err = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(archive_parse_oci_index(body, strlen(body), &v, &n, &err), 0);
	assert_int_equal(n, 3);
	/* A bare tag names no image. */
	assert_null(v[0].names[0]);
	assert_string_equal(v[1].names[0], "localhost/a:1");
	assert_string_equal(v[2].names[0], "docker.io/library/b:2");
	assert_string_equal(v[1].desc.media_type, "application/vnd.oci.image.manifest.v1+json");
	archive_images_free(v, n);
}

static void test_oci_index_refused(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{\"manifests\":[]}",
		"{\"schemaVersion\":3,\"manifests\":[{\"digest\":\"sha256:" HEX64
		"\",\"size\":1}]}",
		"{\"manifests\":[{\"digest\":\"md5:00\",\"size\":1}]}",
		"{\"manifests\":[{\"digest\":\"sha256:" HEX64 "\",\"size\":-1}]}",
		"{\"manifests\":[{\"digest\":\"sha256:" HEX64
		"\",\"size\":1,\"mediaType\":\"text/html\"}]}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct archive_image *v = NULL;
		struct msb_err *err = NULL;
		size_t n = 9;

		assert_int_equal(archive_parse_oci_index(bad[i], strlen(bad[i]), &v, &n, &err), -1);
		assert_null(v);
		assert_int_equal(n, 0);
		assert_non_null(err);
		msb_err_free(err);
	}
}

static void test_docker_manifest(void **state)
{
	static const char good[] = "[{\"Config\":\"c.json\",\"RepoTags\":[\"a:1\",\"b:2\"],"
				   "\"Layers\":[\"./l1/layer.tar\",\"l2.tar\"]}]";
	static const char escape[] = "[{\"Config\":\"c.json\",\"RepoTags\":null,"
				     "\"Layers\":[\"../l1.tar\"]}]";
	struct archive_image *v = NULL;
	struct msb_err *err = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(archive_parse_docker_manifest(good, strlen(good), &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].config, "c.json");
	assert_int_equal(v[0].nlayers, 2);
	assert_string_equal(v[0].layers[0], "l1/layer.tar");
	assert_string_equal(v[0].names[1], "b:2");
	archive_images_free(v, n);
	assert_int_equal(archive_parse_docker_manifest(escape, strlen(escape), &v, &n, &err), -1);
	assert_non_null(err);
	msb_err_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_member_paths),
		cmocka_unit_test(test_member_path_length),
		cmocka_unit_test(test_index_value_count_bounded),
		cmocka_unit_test(test_oci_index_names),
		cmocka_unit_test(test_oci_index_refused),
		cmocka_unit_test(test_docker_manifest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
