// SPDX-License-Identifier: Apache-2.0
/* Unit tests for --secret and TLS interception: parsing, the spec, the store, the handoff, the CA.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sandbox/netspec.h"
#include "sandbox/secrets.h"
#include "sandbox/tlsca.h"
#include "util/fs.h"
#include "util/le.h"

static char home[] = "/tmp/msb-test-secrets-XXXXXX";

static int setup_home(void **state)
{
	(void)state;
	if (!mkdtemp(home))
		return -1;
	setenv("MSB_HOME", home, 1);
	setenv("MSB_NO_KEYRING", "1", 1);
	return msb_home() && !strcmp(msb_home(), home) ? 0 : -1;
}

static int teardown_home(void **state)
{
	(void)state;
	rm_rf(home);
	return 0;
}

struct parsed_net {
	struct sbx_net n;
	char **values;
};

static int parse_all(struct parsed_net *p, const char *const *args, char *why, size_t len)
{
	sbx_net_init(&p->n);
	p->values = NULL;
	for (; *args; args++) {
		int r = sbx_secret_parse(&p->n, &p->values, *args, why, len);

		if (r < 0)
			return r;
	}
	return 0;
}

static void parsed_free(struct parsed_net *p)
{
	sbx_secret_values_free(p->values, p->n.nsecrets);
	sbx_net_free(&p->n);
}

static void test_parse_good(void **state)
{
	static const char *const args[] = {
		"API_KEY=s3cr@t@Api.Example.com,other.test.",
		"API_KEY=s3cr@t@third.test,api.example.com",
		"TOKEN=tok;en=1@*.Example.ORG;header=Authorization,X-Api-Key",
		"FROM_ENV@from.test",
		NULL,
	};
	struct parsed_net p;
	char why[512] = "";

	(void)state;
	setenv("FROM_ENV", "value-from-env", 1);
	assert_int_equal(parse_all(&p, args, why, sizeof(why)), 0);
	assert_int_equal(p.n.nsecrets, 3);
	/* Split at the last '@'; hosts normalised; a repeat adds hosts once. */
	assert_string_equal(p.n.secrets[0].env, "API_KEY");
	assert_string_equal(p.values[0], "s3cr@t");
	assert_string_equal(p.n.secrets[0].hosts[0], "api.example.com");
	assert_string_equal(p.n.secrets[0].hosts[1], "other.test");
	assert_string_equal(p.n.secrets[0].hosts[2], "third.test");
	assert_null(p.n.secrets[0].hosts[3]);
	assert_null(p.n.secrets[0].headers);
	assert_null(p.n.secrets[0].placeholder);
	assert_string_equal(p.values[1], "tok;en=1");
	assert_string_equal(p.n.secrets[1].hosts[0], "*.example.org");
	assert_string_equal(p.n.secrets[1].headers[0], "authorization");
	assert_string_equal(p.n.secrets[1].headers[1], "x-api-key");
	assert_null(p.n.secrets[1].headers[2]);
	assert_string_equal(p.values[2], "value-from-env");
	assert_string_equal(p.n.secrets[2].hosts[0], "from.test");
	parsed_free(&p);
}

static void test_parse_bad(void **state)
{
	static const struct {
		const char *arg;
		const char *why;
	} bad[] = {
		{ "NOHOST=topsecret", "no host" },
		{ "1BAD=topsecret@x.test", "the variable's name" },
		{ "BAD-NAME=topsecret@x.test", "the variable's name" },
		{ "EMPTY=@x.test", "the value is empty" },
		{ "K=topsecret@", "no host after '@'" },
		{ "K=topsecret@bad:host", "not a host name" },
		{ "K=topsecret@*.com", "at least two labels" },
		{ "K=topsecret@a.test;header=", "empty header list" },
		{ "K=topsecret@a.test;header=bad header", "not an HTTP header name" },
		{ "K=topsecret@a.test;what=1", "unknown option" },
		{ "K=top\nsecret@a.test", "line break" },
		{ "K=top\rsecret@a.test", "line break" },
		{ "MSB_TEST_UNSET_VAR@a.test", "$MSB_TEST_UNSET_VAR is not set" },
	};
	char big[SBX_SECRET_MAX_VALUE + 32];

	(void)state;
	unsetenv("MSB_TEST_UNSET_VAR");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[] = { bad[i].arg, NULL };
		struct parsed_net p;
		char why[512] = "";

		assert_int_not_equal(parse_all(&p, args, why, sizeof(why)), 0);
		if (!strstr(why, bad[i].why))
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].arg, why, bad[i].why);
		/* A message never shows the value. */
		assert_null(strstr(why, "topsecret"));
		assert_int_equal(p.n.nsecrets, 0);
		parsed_free(&p);
	}
	/* Too long a value. */
	memcpy(big, "K=", 2);
	memset(big + 2, 'v', SBX_SECRET_MAX_VALUE + 1);
	snprintf(big + 3 + SBX_SECRET_MAX_VALUE, sizeof(big) - 3 - SBX_SECRET_MAX_VALUE, "@a.test");
	{
		const char *args[] = { big, NULL };
		struct parsed_net p;
		char why[512] = "";

		assert_int_equal(parse_all(&p, args, why, sizeof(why)), -E2BIG);
		assert_non_null(strstr(why, "longer than"));
		parsed_free(&p);
	}
	/* The same variable with another value, or other headers. */
	{
		const char *args[] = { "K=valueone@a.test", "K=valuetwo@b.test", NULL };
		struct parsed_net p;
		char why[512] = "";

		assert_int_equal(parse_all(&p, args, why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "different values"));
		assert_null(strstr(why, "valueone"));
		assert_null(strstr(why, "valuetwo"));
		parsed_free(&p);
	}
	{
		const char *args[] = { "K=one@a.test;header=x", "K=one@b.test", NULL };
		struct parsed_net p;
		char why[512] = "";

		assert_int_equal(parse_all(&p, args, why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "header"));
		parsed_free(&p);
	}
	/* At most SBX_MAX_SECRETS. */
	{
		struct parsed_net p;
		char why[512] = "", arg[64];
		int r = 0;

		sbx_net_init(&p.n);
		p.values = NULL;
		for (int i = 0; i <= SBX_MAX_SECRETS && !r; i++) {
			snprintf(arg, sizeof(arg), "K%d=v@a.test", i);
			r = sbx_secret_parse(&p.n, &p.values, arg, why, sizeof(why));
		}
		assert_int_equal(r, -E2BIG);
		assert_int_equal(p.n.nsecrets, SBX_MAX_SECRETS);
		parsed_free(&p);
	}
}

static void test_host_patterns(void **state)
{
	char out[SBX_HOST_PATTERN_MAX], why[256];

	(void)state;
	assert_int_equal(sbx_host_pattern("API.example.com.", out, sizeof(out), why, sizeof(why)),
			 0);
	assert_string_equal(out, "api.example.com");
	assert_int_equal(sbx_host_pattern("localhost", out, sizeof(out), why, sizeof(why)), 0);
	assert_int_equal(sbx_host_pattern("*.a.b", out, sizeof(out), why, sizeof(why)), 0);
	assert_string_equal(out, "*.a.b");
	assert_int_equal(sbx_host_pattern("a.*.b", out, sizeof(out), why, sizeof(why)), -EINVAL);
	assert_int_equal(sbx_host_pattern("", out, sizeof(out), why, sizeof(why)), -EINVAL);
	assert_int_equal(sbx_host_pattern("a,b", out, sizeof(out), why, sizeof(why)), -EINVAL);
	assert_int_equal(sbx_host_pattern("a..b", out, sizeof(out), why, sizeof(why)), -EINVAL);
	assert_true(sbx_host_matches("*.example.com", "example.com"));
	assert_true(sbx_host_matches("*.example.com", "a.b.Example.COM."));
	assert_false(sbx_host_matches("*.example.com", "badexample.com"));
	assert_true(sbx_host_matches("api.example.com", "API.example.com"));
	assert_false(sbx_host_matches("api.example.com", "x.api.example.com"));
}

static void test_check(void **state)
{
	static const char *const args[] = { "K=v@api.test", NULL };
	char *env[] = { "A=1", "K=2", NULL };
	struct parsed_net p;
	char why[512] = "";

	(void)state;
	assert_int_equal(parse_all(&p, args, why, sizeof(why)), 0);
	assert_int_equal(sbx_secrets_check(&p.n, NULL, why, sizeof(why)), 0);
	assert_int_equal(sbx_secrets_check(&p.n, env, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "--env K"));
	/* --no-net: deny-all, no rule for the host. */
	assert_int_equal(policy_set_default(&p.n.policy, NET_BOTH, false, why, sizeof(why)), 0);
	assert_int_equal(sbx_secrets_check(&p.n, NULL, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "--net-rule allow@api.test"));
	/* A rule allowing it makes it fine. */
	assert_int_equal(policy_add(&p.n.policy, "allow@api.test:tcp:443", why, sizeof(why)), 0);
	assert_int_equal(sbx_secrets_check(&p.n, NULL, why, sizeof(why)), 0);
	parsed_free(&p);
	/* A deny rule for the host, under the default policy. */
	{
		static const char *const a2[] = { "K=v@*.bad.test", NULL };

		assert_int_equal(parse_all(&p, a2, why, sizeof(why)), 0);
		assert_int_equal(sbx_secrets_check(&p.n, NULL, why, sizeof(why)), 0);
		assert_int_equal(policy_add(&p.n.policy, "deny@*.bad.test", why, sizeof(why)), 0);
		assert_int_equal(sbx_secrets_check(&p.n, NULL, why, sizeof(why)), -EINVAL);
		parsed_free(&p);
	}
}

static void test_json_roundtrip(void **state)
{
	static const char *const args[] = { "API_KEY=sk-VERYSECRETVALUE@api.test,*.api2.test",
					    "H=HEADERSECRET@h.test;header=authorization", NULL };
	struct parsed_net p;
	struct sbx_net back;
	char why[512] = "", *dump;
	json_t *j;

	(void)state;
	assert_int_equal(parse_all(&p, args, why, sizeof(why)), 0);
	assert_int_equal(sbx_secrets_placeholders(&p.n), 0);
	for (size_t i = 0; i < p.n.nsecrets; i++) {
		const char *ph = p.n.secrets[i].placeholder;

		assert_int_equal(strlen(ph), SBX_PLACEHOLDER_LEN);
		assert_memory_equal(ph, SBX_PLACEHOLDER_PREFIX, strlen(SBX_PLACEHOLDER_PREFIX));
	}
	assert_string_not_equal(p.n.secrets[0].placeholder, p.n.secrets[1].placeholder);
	p.n.tls.intercept = true;
	p.n.tls.ports[0] = 8443;
	p.n.tls.ports[1] = 443;
	p.n.tls.nports = 2;
	p.n.tls.no_block_quic = true;
	p.n.tls.on_violation = SBX_VIOLATION_BLOCK_AND_TERMINATE;
	p.n.tls.ca_cert = strdup("/ca/cert.pem");
	p.n.tls.ca_key = strdup("/ca/key.pem");
	p.n.secrets_store = strdup("file");
	j = sbx_net_to_json(&p.n);
	assert_non_null(j);
	dump = json_dumps(j, JSON_COMPACT);
	assert_non_null(dump);
	/* The spec keeps names and placeholders, never a value. */
	assert_null(strstr(dump, "VERYSECRETVALUE"));
	assert_null(strstr(dump, "HEADERSECRET"));
	assert_non_null(strstr(dump, p.n.secrets[0].placeholder));
	assert_int_equal(sbx_net_from_json(j, &back, why, sizeof(why)), 0);
	assert_int_equal(back.nsecrets, 2);
	assert_string_equal(back.secrets[0].env, "API_KEY");
	assert_string_equal(back.secrets[0].placeholder, p.n.secrets[0].placeholder);
	assert_string_equal(back.secrets[0].hosts[1], "*.api2.test");
	assert_null(back.secrets[0].headers);
	assert_string_equal(back.secrets[1].headers[0], "authorization");
	assert_true(back.tls.intercept);
	assert_int_equal(back.tls.nports, 2);
	assert_int_equal(back.tls.ports[0], 8443);
	assert_true(back.tls.no_block_quic);
	assert_int_equal(back.tls.on_violation, SBX_VIOLATION_BLOCK_AND_TERMINATE);
	assert_string_equal(back.tls.ca_key, "/ca/key.pem");
	assert_string_equal(back.secrets_store, "file");
	sbx_net_free(&back);
	/* A hostile config: a bad placeholder is refused. */
	json_object_set_new(json_array_get(json_object_get(j, "secrets"), 0), "placeholder",
			    json_string("msb-secret-XYZ"));
	assert_int_equal(sbx_net_from_json(j, &back, why, sizeof(why)), -EINVAL);
	sbx_net_free(&back);
	/* An older sandbox: no secrets, port 443 by default. */
	{
		json_t *old = json_object();

		assert_int_equal(sbx_net_from_json(old, &back, why, sizeof(why)), 0);
		assert_int_equal(back.nsecrets, 0);
		assert_int_equal(back.tls.nports, 1);
		assert_int_equal(back.tls.ports[0], 443);
		assert_int_equal(back.tls.on_violation, SBX_VIOLATION_BLOCK);
		sbx_net_free(&back);
		json_decref(old);
	}
	free(dump);
	json_decref(j);
	parsed_free(&p);
}

static void test_store(void **state)
{
	static const char *const args[] = { "A=alpha@a.test", "B=be\"ta\\@b.test", NULL };
	struct parsed_net p;
	char why[512] = "", **loaded = NULL, *path, *data = NULL;
	struct msb_err *err = NULL;
	struct stat st;

	(void)state;
	assert_int_equal(parse_all(&p, args, why, sizeof(why)), 0);
	assert_int_equal(sbx_secrets_save("box1", &p.n, p.values, &err), 0);
	assert_null(err);
	assert_string_equal(p.n.secrets_store, "file");
	path = sbx_secrets_file("box1");
	assert_non_null(path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(read_file(path, 1 << 20, &data, NULL), 0);
	assert_non_null(strstr(data, "alpha"));
	free(data);
	{
		char *dir = strdup(path);

		*strrchr(dir, '/') = '\0';
		assert_int_equal(stat(dir, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
		free(dir);
	}
	assert_int_equal(sbx_secrets_load("box1", &p.n, &loaded, &err), 0);
	assert_string_equal(loaded[0], "alpha");
	assert_string_equal(loaded[1], "be\"ta\\");
	sbx_secret_values_free(loaded, p.n.nsecrets);
	/* Readable by others: refused. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(sbx_secrets_load("box1", &p.n, &loaded, &err), -1);
	assert_non_null(strstr(err->msg, "chmod 600"));
	msb_err_free(err);
	err = NULL;
	assert_int_equal(chmod(path, 0600), 0);
	/* Removed: gone, and the message says how to recover. */
	sbx_secrets_remove("box1", false);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(sbx_secrets_load("box1", &p.n, &loaded, &err), -1);
	assert_non_null(strstr(err->msg, "sandbox box1: the values of its secrets are gone from"));
	assert_non_null(strstr(err->msg, "--replace and --secret"));
	msb_err_free(err);
	free(path);
	parsed_free(&p);
}

static void test_fd_handoff(void **state)
{
	char *vals[] = { "first", "sec@nd\tvalue", NULL };
	char **got = NULL;
	size_t *lens = NULL;
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(sbx_secrets_write_fd(p[1], vals, 2), 0);
	close(p[1]);
	assert_int_equal(sbx_secrets_read_fd(p[0], 2, &got, &lens), 0);
	close(p[0]);
	assert_string_equal(got[0], "first");
	assert_string_equal(got[1], "sec@nd\tvalue");
	assert_int_equal(lens[1], strlen("sec@nd\tvalue"));
	sbx_secret_values_free(got, 2);
	free(lens);
	/* Another count than the spec's, or a cut stream: refused. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(sbx_secrets_write_fd(p[1], vals, 2), 0);
	close(p[1]);
	assert_int_equal(sbx_secrets_read_fd(p[0], 3, &got, &lens), -EPROTO);
	close(p[0]);
	assert_null(got);
	{
		uint8_t cut[10];

		put_le32(cut, 1);
		put_le32(cut + 4, 100);
		cut[8] = 'a';
		cut[9] = 'b';
		assert_int_equal(pipe(p), 0);
		assert_int_equal(write(p[1], cut, sizeof(cut)), (ssize_t)sizeof(cut));
		close(p[1]);
		assert_int_equal(sbx_secrets_read_fd(p[0], 1, &got, &lens), -EPROTO);
		close(p[0]);
	}
}

static char *slurp(const char *path)
{
	char *s = NULL;

	assert_int_equal(read_file(path, 1 << 20, &s, NULL), 0);
	return s;
}

static void test_ca(void **state)
{
	char *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL, *pem1, *pem2, other[512];
	struct msb_err *err = NULL;
	struct stat st;

	(void)state;
	assert_int_equal(sbx_tls_ca_paths(NULL, &c1, &k1, &err), 0);
	assert_null(err);
	assert_int_equal(stat(k1, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(sbx_tls_check_ca(c1, k1, &err), 0);
	/* A second use finds the same CA. */
	assert_int_equal(sbx_tls_ca_paths(NULL, &c2, &k2, &err), 0);
	assert_string_equal(c1, c2);
	pem1 = slurp(c1);
	pem2 = slurp(c2);
	assert_string_equal(pem1, pem2);
	free(pem1);
	free(pem2);
	assert_int_equal(sbx_tls_check_certs(c1, &err), 0);
	/* A key of another pair does not match. */
	{
		EVP_PKEY *pk = EVP_EC_gen("P-256");
		FILE *f;

		snprintf(other, sizeof(other), "%s/other-key.pem", home);
		f = fopen(other, "w");
		assert_non_null(pk);
		assert_non_null(f);
		assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
		fclose(f);
		EVP_PKEY_free(pk);
	}
	assert_int_equal(sbx_tls_check_ca(c1, other, &err), -1);
	assert_non_null(strstr(err->msg, "does not match"));
	msb_err_free(err);
	err = NULL;
	/* A key is no certificate; a certificate file with none is refused. */
	assert_int_equal(sbx_tls_check_ca(other, k1, &err), -1);
	assert_non_null(strstr(err->msg, "not a PEM certificate"));
	msb_err_free(err);
	err = NULL;
	assert_int_equal(sbx_tls_check_certs(other, &err), -1);
	msb_err_free(err);
	err = NULL;
	/* The user's pair is used as given. */
	{
		struct sbx_tls t = { .ca_cert = "/x/c.pem", .ca_key = "/x/k.pem" };
		char *c = NULL, *k = NULL;

		assert_int_equal(sbx_tls_ca_paths(&t, &c, &k, &err), 0);
		assert_string_equal(c, "/x/c.pem");
		assert_string_equal(k, "/x/k.pem");
		free(c);
		free(k);
	}
	free(c1);
	free(k1);
	free(c2);
	free(k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),     cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_host_patterns),  cmocka_unit_test(test_check),
		cmocka_unit_test(test_json_roundtrip), cmocka_unit_test(test_store),
		cmocka_unit_test(test_fd_handoff),     cmocka_unit_test(test_ca),
	};

	return cmocka_run_group_tests(tests, setup_home, teardown_home);
}
