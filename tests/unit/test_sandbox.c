// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the sandbox model's pure parts: names, scripts, tmpfs, detach keys, logs. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

#include "proto/proto.h"
#include "sandbox/create.h"
#include "sandbox/exec.h"
#include "sandbox/logs.h"
#include "sandbox/snapshot.h"
#include "util/text.h"

static void test_names(void **state)
{
	static const char *const good[] = { "a", "dev", "my-box_1.2", "0x", NULL };
	static const char *const bad[] = { "", "../x", "a/b", "-x", ".x", "_x", "a b", "ä", NULL };
	char long_name[80];

	(void)state;
	for (size_t i = 0; good[i]; i++) {
		struct msb_err *err = NULL;

		assert_int_equal(sbx_check_name(good[i], &err), 0);
		assert_null(err);
	}
	for (size_t i = 0; bad[i]; i++) {
		struct msb_err *err = NULL;

		assert_int_equal(sbx_check_name(bad[i], &err), -1);
		assert_non_null(strstr(err->msg, "invalid sandbox name"));
		msb_err_free(err);
	}
	memset(long_name, 'a', 63);
	long_name[63] = '\0';
	assert_int_equal(sbx_check_name(long_name, NULL), 0);
	long_name[63] = 'a';
	long_name[64] = '\0';
	{
		struct msb_err *err = NULL;

		assert_int_equal(sbx_check_name(long_name, &err), -1);
		assert_non_null(strstr(err->msg, "at most 63 characters"));
		msb_err_free(err);
	}
}

static void test_script_decode(void **state)
{
	struct sbx_script_src s = { 0 };

	(void)state;
	assert_int_equal(
		sbx_script_decode("echo \"a\\tb\"\\necho \\'q\\' \\\\ \\x \\", "/bin/bash", &s), 0);
	/* Known escapes decode, unknown ones pass through, a lone trailing backslash stays. */
	assert_string_equal(s.body, "#!/bin/bash\necho \"a\tb\"\necho 'q' \\ \\x \\");
	assert_int_equal(s.len, strlen(s.body));
	free(s.body);
	assert_int_equal(sbx_script_decode("", "/bin/sh", &s), 0);
	assert_string_equal(s.body, "#!/bin/sh\n");
	free(s.body);
	assert_int_equal(sbx_script_decode("a\\r\\n", "/bin/sh", &s), 0);
	assert_string_equal(s.body, "#!/bin/sh\na\r\n");
	free(s.body);
}

static void test_tmpfs(void **state)
{
	static const char *const bad[] = { "relative", "/",	 "/x:0",  "/x:abc",
					   "/a/../b",  "/a/./b", "/a/..", "/a,b",
					   "",	       ":1M",	 NULL };
	struct sbx_tmpfs t;

	(void)state;
	assert_int_equal(sbx_parse_tmpfs("/scratch", &t), 0);
	assert_string_equal(t.path, "/scratch");
	assert_int_equal(t.size, 0);
	free(t.path);
	assert_int_equal(sbx_parse_tmpfs("/var/cache:64M", &t), 0);
	assert_string_equal(t.path, "/var/cache");
	assert_int_equal(t.size, 64ull << 20);
	free(t.path);
	for (size_t i = 0; bad[i]; i++)
		assert_int_equal(sbx_parse_tmpfs(bad[i], &t), -EINVAL);
}

static void test_detach_keys(void **state)
{
	uint8_t k[16];
	size_t n = 0;

	(void)state;
	assert_int_equal(sbx_parse_detach_keys(NULL, k, sizeof(k), &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(k[0], 0x1d);
	assert_int_equal(sbx_parse_detach_keys("ctrl-p,ctrl-q", k, sizeof(k), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(k[0], 0x10);
	assert_int_equal(k[1], 0x11);
	assert_int_equal(sbx_parse_detach_keys("ctrl-@,ctrl-\\,x,ctrl-A", k, sizeof(k), &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(k[0], 0x00);
	assert_int_equal(k[1], 0x1c);
	assert_int_equal(k[2], 'x');
	assert_int_equal(k[3], 0x01);
	assert_int_equal(sbx_parse_detach_keys("ctrl-1", k, sizeof(k), &n), -EINVAL);
	assert_int_equal(sbx_parse_detach_keys("ab", k, sizeof(k), &n), -EINVAL);
	assert_int_equal(sbx_parse_detach_keys("a,", k, sizeof(k), &n), -EINVAL);
	assert_int_equal(sbx_parse_detach_keys("a,b,c", k, 2, &n), -EINVAL);
}

static void test_log_sources(void **state)
{
	unsigned int s = 0;

	(void)state;
	assert_int_equal(logs_parse_sources("stdout,system", &s), 0);
	assert_int_equal(s, LOGS_STDOUT | LOGS_SYSTEM);
	assert_int_equal(logs_parse_sources("stderr", &s), 0); /* repeated flags add up */
	assert_int_equal(s, LOGS_STDOUT | LOGS_SYSTEM | LOGS_STDERR);
	s = 0;
	assert_int_equal(logs_parse_sources("all", &s), 0);
	assert_int_equal(s, LOGS_ALL);
	assert_int_equal(logs_parse_sources("stdout,bogus", &s), -EINVAL);
	assert_int_equal(logs_parse_sources("", &s), -EINVAL);
}

/* Every source renders under its own name in --json: the table follows the LOGS_* bits. */
static void test_log_json_source_names(void **state)
{
	static const struct {
		unsigned int src;
		const char *json;
	} cases[] = {
		{ LOGS_STDOUT, "{\"t\":\"T\",\"s\":\"stdout\",\"d\":\"x\",\"id\":7}" },
		{ LOGS_STDERR, "{\"t\":\"T\",\"s\":\"stderr\",\"d\":\"x\",\"id\":7}" },
		{ LOGS_OUTPUT, "{\"t\":\"T\",\"s\":\"output\",\"d\":\"x\",\"id\":7}" },
		{ LOGS_SYSTEM, "{\"t\":\"T\",\"s\":\"system\",\"d\":\"x\",\"id\":7}" },
	};
	uint8_t d[] = { 'x' };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct log_entry e = {
			.t = "T", .src = cases[i].src, .id = 7, .d = d, .len = 1, .utf8 = true
		};
		char *line = logs_entry_json(&e, false);

		assert_non_null(line);
		assert_string_equal(line, cases[i].json);
		free(line);
	}
	{
		struct log_entry e = {
			.t = "T", .src = LOGS_STDOUT | LOGS_SYSTEM, .d = d, .len = 1
		};

		assert_null(logs_entry_json(&e, false)); /* one source per entry */
	}
}

/* A session's limits: the sandbox's --rlimits, then its own over them, one per resource. */
static void test_session_rlimits(void **state)
{
	char *spec[] = { "nofile=99", "nproc=50:60", NULL }, *bad[] = { "nofile", NULL };
	struct proto_rlimit own[] = { { .resource = RLIMIT_NOFILE, .soft = 10, .hard = 20 },
				      { .resource = RLIMIT_CORE, .soft = 0, .hard = 0 } };
	struct proto_rlimit out[PROTO_MAX_RLIMITS];
	uint32_t n = 0;

	(void)state;
	assert_int_equal(sbx_exec_rlimits(spec, NULL, 0, out, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].resource, RLIMIT_NOFILE);
	assert_int_equal(out[0].soft, 99);
	assert_int_equal(out[0].hard, 99);
	assert_int_equal(out[1].resource, RLIMIT_NPROC);
	assert_int_equal(out[1].hard, 60);
	assert_int_equal(sbx_exec_rlimits(spec, own, 2, out, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(out[0].soft, 10); /* the session's own wins */
	assert_int_equal(out[0].hard, 20);
	assert_int_equal(out[2].resource, RLIMIT_CORE);
	assert_int_equal(sbx_exec_rlimits(NULL, own, 1, out, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(sbx_exec_rlimits(bad, NULL, 0, out, &n), -EINVAL);
}

static void test_log_times(void **state)
{
	char t[32], now[32];
	time_t sec = time(NULL);
	struct tm tm;

	(void)state;
	assert_int_equal(logs_parse_time("2026-04-30T20:32:59Z", t, sizeof(t)), 0);
	assert_string_equal(t, "2026-04-30T20:32:59.000Z");
	assert_int_equal(logs_parse_time("2026-04-30T20:32:59.68812Z", t, sizeof(t)), 0);
	assert_string_equal(t, "2026-04-30T20:32:59.688Z");
	assert_int_equal(logs_parse_time("2026-04-30T22:32:59+02:00", t, sizeof(t)), 0);
	assert_string_equal(t, "2026-04-30T20:32:59.000Z");
	assert_int_equal(logs_parse_time("2026-04-30T18:02:59.5-02:30", t, sizeof(t)), 0);
	assert_string_equal(t, "2026-04-30T20:32:59.500Z");
	assert_int_equal(logs_parse_time("2026-04-30T20:32:59", t, sizeof(t)), -EINVAL);
	assert_int_equal(logs_parse_time("yesterday", t, sizeof(t)), -EINVAL);
	assert_int_equal(logs_parse_time("2026-04-30T20:32:59Zjunk", t, sizeof(t)), -EINVAL);
	/* Relative: that long before now. */
	assert_int_equal(logs_parse_time("2h", t, sizeof(t)), 0);
	sec -= 7200;
	gmtime_r(&sec, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M", &tm);
	assert_memory_equal(t, now, strlen(now));
}

static void test_utf8_prefix(void **state)
{
	size_t tail;

	(void)state;
	assert_int_equal(utf8_prefix("abc", 3, &tail), 3);
	assert_int_equal(tail, 0);
	/* "é" cut after its first byte: carried. */
	assert_int_equal(utf8_prefix("ab\xc3", 3, &tail), 2);
	assert_int_equal(tail, 1);
	/* A 4-byte character cut after 3. */
	assert_int_equal(utf8_prefix("\xf0\x9f\x98", 3, &tail), 0);
	assert_int_equal(tail, 3);
	assert_int_equal(utf8_prefix("\xf0\x9f\x98\x80z", 5, &tail), 5);
	/* Invalid before the end, a lone continuation byte, an overlong form, a surrogate. */
	assert_int_equal(utf8_prefix("a\xffz", 3, &tail), (size_t)-1);
	assert_int_equal(utf8_prefix("\x80", 1, &tail), (size_t)-1);
	assert_int_equal(utf8_prefix("\xc0\xaf", 2, &tail), (size_t)-1);
	assert_int_equal(utf8_prefix("\xed\xa0\x80", 3, &tail), (size_t)-1);
	/* Cut short, but what is there is already wrong. */
	assert_int_equal(utf8_prefix("\xe2\x41", 2, &tail), (size_t)-1);
	/* C1 controls are valid UTF-8 (text_sanitize is what refuses them for terminals). */
	assert_int_equal(utf8_prefix("\xc2\x9b", 2, &tail), 2);
}

static void test_utf8_lossy(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(utf8_lossy("a\xff\xc3\xa9\xc3", 5, &b), 0);
	assert_int_equal(buf_size(&b), 1 + 3 + 2 + 3);
	assert_memory_equal(buf_head(&b), "a\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd", 9);
	buf_free(&b);
}

static void test_config_roundtrip(void **state)
{
	char *argv[] = { "/sbin/init", "--x", NULL }, *env[] = { "A=1", NULL };
	uint8_t body[] = { '#', '!', 0, 1, 2 };
	struct proto_config c = { .flags = PROTO_CONFIG_UPPER_DISK,
				  .hostname = "h",
				  .ntmpfs = 1,
				  .nscripts = 1,
				  .init = "/sbin/init",
				  .init_argv = argv,
				  .init_env = env },
			    d;
	struct proto_frame f;
	struct buf b = { 0 };

	(void)state;
	c.tmpfs[0] = (struct proto_tmpfs){ "/t", 4096 };
	c.scripts[0] = (struct proto_script){ "s", body, sizeof(body) };
	c.flags |= PROTO_CONFIG_NET;
	c.net = (struct proto_net){ .addr4 = { 172, 16, 0, 2 },
				    .gw4 = { 172, 16, 0, 1 },
				    .prefix4 = 30,
				    .addr6 = { 0xfd, 0x42, [15] = 2 },
				    .gw6 = { 0xfd, 0x42, [15] = 1 },
				    .prefix6 = 64,
				    .mtu = 65520 };
	c.nfiles = 2;
	c.files[0] = (struct proto_file){ "/etc/hosts", 0644, 0, body, sizeof(body) };
	c.files[1] = (struct proto_file){ NULL, 0644, PROTO_FILE_CA_BUNDLE, body, 2 };
	memcpy(c.net.mac, (uint8_t[]){ 0x02, 0x6d, 0x73, 1, 2, 3 }, 6);
	for (size_t i = 0; i < sizeof(c.seed); i++)
		c.seed[i] = (uint8_t)(i * 7 + 1);
	c.wall_ns = 1796000000123456789ull;
	for (size_t i = 0; i < sizeof(c.resync); i++)
		c.resync[i] = (uint8_t)(0xa0 + i);
	c.nmounts = 2;
	c.mounts[0] = (struct proto_mount){ "/app", 0, 0 };
	c.mounts[1] = (struct proto_mount){ "/data", 3, PROTO_MOUNT_RO | PROTO_MOUNT_NOEXEC };
	assert_int_equal(proto_config_encode(&b, &c), 0);
	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(f.type, PROTO_CONFIG);
	assert_int_equal(f.sid, 0);
	assert_int_equal(proto_config_decode(f.payload, f.len, &d), 0);
	assert_int_equal(d.flags, PROTO_CONFIG_UPPER_DISK | PROTO_CONFIG_NET);
	assert_memory_equal(&d.net, &c.net, sizeof(d.net));
	assert_int_equal(d.nfiles, 2);
	assert_string_equal(d.files[0].path, "/etc/hosts");
	assert_int_equal(d.files[0].mode, 0644);
	assert_memory_equal(d.files[0].data, body, sizeof(body));
	assert_string_equal(d.files[1].path, "");
	assert_int_equal(d.files[1].flags, PROTO_FILE_CA_BUNDLE);
	assert_int_equal(d.files[1].len, 2);
	assert_memory_equal(d.seed, c.seed, sizeof(c.seed));
	assert_true(d.wall_ns == c.wall_ns);
	assert_memory_equal(d.resync, c.resync, sizeof(c.resync));
	assert_int_equal(d.nmounts, 2);
	assert_string_equal(d.mounts[0].path, "/app");
	assert_string_equal(d.mounts[1].path, "/data");
	assert_int_equal(d.mounts[1].index, 3);
	assert_int_equal(d.mounts[1].flags, PROTO_MOUNT_RO | PROTO_MOUNT_NOEXEC);
	assert_string_equal(d.hostname, "h");
	assert_string_equal(d.tmpfs[0].path, "/t");
	assert_int_equal(d.tmpfs[0].size, 4096);
	assert_string_equal(d.scripts[0].name, "s");
	assert_int_equal(d.scripts[0].len, sizeof(body));
	assert_memory_equal(d.scripts[0].body, body, sizeof(body));
	assert_string_equal(d.init, "/sbin/init");
	assert_string_equal(d.init_argv[1], "--x");
	assert_null(d.init_argv[2]);
	assert_string_equal(d.init_env[0], "A=1");
	proto_config_free(&d);
	/* Every truncation is refused, never half-decoded. */
	for (uint32_t n = 0; n < f.len; n++)
		assert_int_equal(proto_config_decode(f.payload, n, &d), -EBADMSG);
	buf_free(&b);
	/* A relative path, a prefix over 32 or 128, too many files: refused. */
	c.files[0].path = "etc/hosts";
	assert_int_equal(proto_config_encode(&b, &c), 0);
	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(proto_config_decode(f.payload, f.len, &d), -EBADMSG);
	buf_free(&b);
	c.files[0].path = "/etc/hosts";
	c.net.prefix4 = 33;
	assert_int_equal(proto_config_encode(&b, &c), 0);
	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(proto_config_decode(f.payload, f.len, &d), -EBADMSG);
	buf_free(&b);
	c.net.prefix4 = 30;
	c.nfiles = PROTO_MAX_FILES + 1;
	assert_int_equal(proto_config_encode(&b, &c), -EINVAL);
	buf_free(&b);
	c.nfiles = 2;
	/* A relative mount path, a share index out of range, an unknown mount flag: refused. */
	c.mounts[1].path = "data";
	assert_int_equal(proto_config_encode(&b, &c), 0);
	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(proto_config_decode(f.payload, f.len, &d), -EBADMSG);
	buf_free(&b);
	c.mounts[1].path = "/data";
	c.mounts[1].index = PROTO_MAX_MOUNTS + 1;
	assert_int_equal(proto_config_encode(&b, &c), 0);
	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(proto_config_decode(f.payload, f.len, &d), -EBADMSG);
	buf_free(&b);
	c.mounts[1].index = 3;
	c.mounts[1].flags = 0x80;
	assert_int_equal(proto_config_encode(&b, &c), -EINVAL);
	buf_free(&b);
	c.mounts[1].flags = 0;
	c.nmounts = PROTO_MAX_MOUNTS + 1;
	assert_int_equal(proto_config_encode(&b, &c), -EINVAL);
	buf_free(&b);
	c.nmounts = 2;
	/* An unknown flag is refused. */
	c.flags = 0x80;
	assert_int_equal(proto_config_encode(&b, &c), -EINVAL);
	buf_free(&b);
}

/* A restored guest's refresh: the same frame with PROTO_CONFIG_REFRESH; a cut marker is refused. */
static void test_config_refresh(void **state)
{
	char *none[] = { NULL };
	struct proto_config c = { .flags = PROTO_CONFIG_REFRESH | PROTO_CONFIG_UPPER_DISK,
				  .hostname = "child",
				  .init = "",
				  .init_argv = none,
				  .init_env = none },
			    d;
	struct proto_frame f;
	struct buf b = { 0 };

	(void)state;
	memset(c.resync, 0x5a, sizeof(c.resync));
	assert_int_equal(proto_config_encode(&b, &c), 0);
	assert_int_equal(proto_parse(&b, &f), 1);
	assert_int_equal(proto_config_decode(f.payload, f.len, &d), 0);
	assert_int_equal(d.flags, PROTO_CONFIG_REFRESH | PROTO_CONFIG_UPPER_DISK);
	assert_memory_equal(d.resync, c.resync, sizeof(c.resync));
	proto_config_free(&d);
	/* Without its whole marker the frame is malformed. */
	assert_int_equal(proto_config_decode(f.payload, f.len - 1, &d), -EBADMSG);
	buf_free(&b);
}

/* Snapshot names follow sandbox names. */
static void test_snapshot_names(void **state)
{
	struct msb_err *e = NULL;

	(void)state;
	assert_int_equal(snap_check_name("base-1.0_x", NULL), 0);
	assert_int_equal(snap_check_name("9lives", NULL), 0);
	assert_int_equal(snap_check_name("", NULL), -1);
	assert_int_equal(snap_check_name(".hidden", NULL), -1);
	assert_int_equal(snap_check_name("-x", NULL), -1);
	assert_int_equal(snap_check_name("a/b", NULL), -1);
	assert_int_equal(snap_check_name("..", NULL), -1);
	assert_int_equal(snap_check_name("a b", &e), -1);
	assert_non_null(strstr(e->msg, "invalid snapshot name \"a b\""));
	msb_err_free(e);
	{
		char long_name[SBX_NAME_MAX + 2];

		memset(long_name, 'a', sizeof(long_name) - 1);
		long_name[sizeof(long_name) - 1] = '\0';
		assert_int_equal(snap_check_name(long_name, NULL), -1);
		long_name[SBX_NAME_MAX] = '\0';
		assert_int_equal(snap_check_name(long_name, NULL), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_script_decode),
		cmocka_unit_test(test_tmpfs),
		cmocka_unit_test(test_detach_keys),
		cmocka_unit_test(test_log_sources),
		cmocka_unit_test(test_log_times),
		cmocka_unit_test(test_utf8_prefix),
		cmocka_unit_test(test_utf8_lossy),
		cmocka_unit_test(test_config_roundtrip),
		cmocka_unit_test(test_config_refresh),
		cmocka_unit_test(test_snapshot_names),
		cmocka_unit_test(test_log_json_source_names),
		cmocka_unit_test(test_session_rlimits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
