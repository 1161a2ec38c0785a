// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the ClientHello peek: real hellos (from the fuzz corpus), splits, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/sni.h"
#include "util/fs.h"

static char *corpus(const char *name, size_t *len)
{
	char path[512], *data = NULL;

	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/sni/%s",
		 getenv("MSB_SRC_DIR") ? getenv("MSB_SRC_DIR") : ".", name);
	assert_int_equal(read_file(path, 1 << 20, &data, len), 0);
	return data;
}

static void test_real_hellos(void **state)
{
	char name[SNI_NAME_MAX + 1];
	size_t n;
	char *d;

	(void)state;
	d = corpus("api-test", &n);
	assert_int_equal(sni_peek((uint8_t *)d, n, name, sizeof(name)), 1);
	assert_string_equal(name, "api.test");
	/* Every prefix waits for more. */
	for (size_t cut = 0; cut < n; cut++)
		assert_int_equal(sni_peek((uint8_t *)d, cut, name, sizeof(name)), 0);
	free(d);
	d = corpus("tls12", &n);
	assert_int_equal(sni_peek((uint8_t *)d, n, name, sizeof(name)), 1);
	assert_string_equal(name, "other.test");
	free(d);
	d = corpus("two-records", &n);
	assert_int_equal(sni_peek((uint8_t *)d, n, name, sizeof(name)), 1);
	assert_string_equal(name, "x.test");
	free(d);
}

static void test_refusals(void **state)
{
	char name[SNI_NAME_MAX + 1];
	const char *http = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t n;
	char *d;

	(void)state;
	assert_int_equal(sni_peek((const uint8_t *)http, strlen(http), name, sizeof(name)), -1);
	/* A name that does not fit the caller's buffer is refused, not cut. */
	d = corpus("api-test", &n);
	assert_int_equal(sni_peek((uint8_t *)d, n, name, 5), -1);
	/* A lying record length (beyond the peek's bound) is refused. */
	d[3] = 0x7f;
	d[4] = 0xff;
	assert_int_equal(sni_peek((uint8_t *)d, n, name, sizeof(name)), -1);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_hellos),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
