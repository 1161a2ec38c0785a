// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the command-line value parsers: sizes, durations, rlimits, env keys, names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "util/parse.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- parse_size ------------------------------------------------------- */

static void test_size_suffixes(void **state)
{
	static const struct {
		const char *in;
		uint64_t want;
	} cases[] = {
		{ "512M", 512 * MiB },
		{ "1G", GiB },
		{ "1.5G", GiB + GiB / 2 },
		{ "4096K", 4 * MiB },
		{ "2GiB", 2 * GiB },
		{ "100MB", 100 * MiB },
		{ "1b", 1 },
		{ "3B", 3 },
		{ "1k", KiB },
		{ "1kb", KiB },
		{ "1KiB", KiB },
		{ "2mib", 2 * MiB },
		{ "1gb", GiB },
		{ "1T", TiB },
		{ "2TB", 2 * TiB },
		{ "1tib", TiB },
		{ "0M", 0 },
		{ "0.5K", 512 },
		{ ".5K", 512 },
		{ "1.K", KiB },
		{ "0.25M", 256 * KiB },
		{ "1.1K", 1126 }, /* fractions of a byte are dropped */
		{ "16383T", 16383 * TiB },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 12345;

		assert_int_equal(parse_size(cases[i].in, MiB, &v), 0);
		assert_true(v == cases[i].want);
	}
}

static void test_size_bare_unit(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_size("512", MiB, &v), 0);
	assert_true(v == 512 * MiB);
	assert_int_equal(parse_size("4096", 1, &v), 0);
	assert_true(v == 4096);
	assert_int_equal(parse_size("2", GiB, &v), 0);
	assert_true(v == 2 * GiB);
	assert_int_equal(parse_size("1.5", GiB, &v), 0);
	assert_true(v == GiB + GiB / 2);
	assert_int_equal(parse_size("0", MiB, &v), 0);
	assert_true(v == 0);
	/* A suffix overrides the bare unit. */
	assert_int_equal(parse_size("3K", GiB, &v), 0);
	assert_true(v == 3 * KiB);
}

static void test_size_invalid(void **state)
{
	static const char *const bad[] = {
		"",   "M",   "G",    ".",      ".M",  "12X", "12 M",  " 12M", "12M ", "-1",
		"+1", "1e3", "0x10", "1.5.5G", "1MM", "1Mi", "1KIBB", "1PB",  "1,5G", "one",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 777;

		assert_int_equal(parse_size(bad[i], MiB, &v), -EINVAL);
		assert_true(v == 777);
	}
}

static void test_size_overflow(void **state)
{
	static const char *const big[] = {
		"16777216T",		   /* exactly 2^64 */
		"17179869184G",		   /* 2^64 */
		"18446744073709551616",	   /* 2^64 bare, unit 1 */
		"99999999999999999999999", /* the integer part alone overflows */
		"99999999999999999999999.5K",
		"18446744073709551615K",
	};
	uint64_t v = 777;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(big); i++) {
		assert_int_equal(parse_size(big[i], 1, &v), -ERANGE);
		assert_true(v == 777);
	}
	/* A bare number times a large unit. */
	assert_int_equal(parse_size("17179869184", GiB, &v), -ERANGE);
	/* The largest whole numbers of GiB and TiB below 2^64 fit. */
	assert_int_equal(parse_size("17179869183G", 1, &v), 0);
	assert_true(v == 17179869183ull * GiB);
	assert_int_equal(parse_size("16777215T", 1, &v), 0);
	assert_true(v == 16777215ull * TiB);
}

/* --- parse_duration --------------------------------------------------- */

static void test_duration_units(void **state)
{
	static const struct {
		const char *in;
		uint64_t want;
	} cases[] = {
		{ "500ms", 500 },
		{ "30s", 30000 },
		{ "5m", 300000 },
		{ "1h", 3600000 },
		{ "1h30m", 5400000 },
		{ "2d", 172800000 },
		{ "10", 10000 }, /* bare = seconds */
		{ "0", 0 },
		{ "0s", 0 },
		{ "1ms", 1 },
		{ "1m5ms", 60005 },
		{ "1d2h3m4s5ms", 86400000 + 7200000 + 180000 + 4000 + 5 },
		{ "90s", 90000 },
		{ "007s", 7000 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 12345;

		assert_int_equal(parse_duration(cases[i].in, &v), 0);
		assert_true(v == cases[i].want);
	}
}

static void test_duration_invalid(void **state)
{
	static const char *const bad[] = {
		"",    "5x",  "m",   "s",  "ms", "1h30", "h1",	"1.5s", "-1s",	"+1s",
		" 1s", "1s ", "1 s", "5M", "1H", "1S",	 "1hm", "1sec", "1mss", "10 ",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 777;

		assert_int_equal(parse_duration(bad[i], &v), -EINVAL);
		assert_true(v == 777);
	}
}

static void test_duration_overflow(void **state)
{
	static const char *const big[] = {
		"99999999999999999999999", /* digits alone overflow */
		"99999999999999999999999ms",
		"18446744073709552s",			/* n * 1000 overflows */
		"213503982335d",			/* n * 86400000 overflows */
		"10000000000000000s10000000000000000s", /* the sum overflows */
		"18446744073709551s1s",
	};
	uint64_t v = 777;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(big); i++) {
		assert_int_equal(parse_duration(big[i], &v), -ERANGE);
		assert_true(v == 777);
	}
	/* Large values just inside the range. */
	assert_int_equal(parse_duration("18446744073709551s", &v), 0);
	assert_true(v == 18446744073709551000ull);
	assert_int_equal(parse_duration("213503982334d", &v), 0);
	assert_true(v == 213503982334ull * 86400000ull);
}

/* --- format_duration -------------------------------------------------- */

static void test_format_duration(void **state)
{
	static const struct {
		uint64_t ms;
		const char *want;
	} cases[] = {
		{ 0, "0ms" },
		{ 1, "1ms" },
		{ 250, "250ms" },
		{ 999, "999ms" },
		{ 1000, "1s" },
		{ 2000, "2s" },
		{ 1500, "1s500ms" },
		{ 60000, "1m" },
		{ 61000, "1m1s" },
		{ 3600000, "1h" },
		{ 5400000, "1h30m" },
		{ 3601000, "1h1s" },
		{ 86400000, "24h" }, /* no days: hours grow instead */
		{ 90061001, "25h1m1s1ms" },
		{ UINT64_MAX, "5124095576030h25m51s615ms" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char buf[64];
		uint64_t back = 0;

		memset(buf, 'x', sizeof(buf));
		format_duration(cases[i].ms, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
		/* What we print, we parse back to the same value. */
		assert_int_equal(parse_duration(buf, &back), 0);
		assert_true(back == cases[i].ms);
	}
}

/* --- format_ago -------------------------------------------------------- */

static void test_format_ago_plurals(void **state)
{
	static const struct {
		uint64_t secs;
		const char *want;
	} cases[] = {
		{ 0, "0 seconds ago" },
		{ 1, "1 second ago" },
		{ 2, "2 seconds ago" },
		{ 59, "59 seconds ago" },
		{ 60, "1 minute ago" },
		{ 119, "1 minute ago" },
		{ 120, "2 minutes ago" },
		{ 3600, "1 hour ago" },
		{ 7200, "2 hours ago" },
		{ 86400, "1 day ago" },
		{ 86400 * 2, "2 days ago" },
		{ 86400ull * 59, "59 days ago" },
		{ 86400ull * 60, "2 months ago" },
		{ 86400ull * 729, "24 months ago" },
		{ 86400ull * 730, "2 years ago" },
		{ UINT64_MAX, "584942417355 years ago" },
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		format_ago(cases[i].secs, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
	/* Cut to the buffer, always terminated; nothing written without room. */
	format_ago(5, buf, 4);
	assert_string_equal(buf, "5 s");
	buf[0] = 'x';
	format_ago(5, buf, 0);
	assert_int_equal(buf[0], 'x');
}

static void test_format_duration_truncates(void **state)
{
	char buf[8];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	format_duration(5400000, buf, 4);
	assert_string_equal(buf, "1h3");
	assert_int_equal(buf[4], 'x');

	memset(buf, 'x', sizeof(buf));
	format_duration(3723004, buf, 3); /* "1h2m3s4ms" */
	assert_string_equal(buf, "1h");
	assert_int_equal(buf[3], 'x');

	/* Cut inside the first unit: nothing more is written after it. */
	memset(buf, 'x', sizeof(buf));
	format_duration(5400000, buf, 2);
	assert_string_equal(buf, "1");
	assert_memory_equal(buf + 2, "xxxxxx", 6);

	memset(buf, 'x', sizeof(buf));
	format_duration(5400000, buf, 1);
	assert_string_equal(buf, "");
	assert_memory_equal(buf + 1, "xxxxxxx", 7);

	memset(buf, 'x', sizeof(buf));
	format_duration(61001, buf, 1); /* "1m1s1ms" */
	assert_string_equal(buf, "");
	assert_memory_equal(buf + 1, "xxxxxxx", 7);

	memset(buf, 'x', sizeof(buf));
	format_duration(123, buf, 1);
	assert_string_equal(buf, "");
	assert_int_equal(buf[1], 'x');
}

/* --- parse_rlimit ----------------------------------------------------- */

/* Sizes are computed in integers: exact above 2^53, and at the very top. */
static void test_size_exact_large(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(parse_size("9007199254740993", 1, &v), 0);
	assert_true(v == 9007199254740993ull);
	assert_int_equal(parse_size("18446744073709551615", 1, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_size("18446744073709551616", 1, &v), -ERANGE);
	assert_int_equal(parse_size("16777215.999T", 1, &v), 0);
	assert_true(v == 16777215ull * (1ull << 40) + (999ull << 40) / 1000);
	assert_int_equal(parse_size("0.5K", 1, &v), 0);
	assert_true(v == 512);
}

static void test_duration_max(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(parse_duration("18446744073709551615ms", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_duration("18446744073709551616ms", &v), -ERANGE);
}

static void test_format_duration_zero_length(void **state)
{
	char buf[2] = { 'x', 'y' };

	(void)state;
	format_duration(1500, buf, 0);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(buf[1], 'y');
}

static void test_rlimit_valid(void **state)
{
	static const struct {
		const char *in;
		uint32_t res;
		uint64_t soft, hard;
	} cases[] = {
		{ "nofile=1024", RLIMIT_NOFILE, 1024, 1024 },
		{ "nofile=1024:4096", RLIMIT_NOFILE, 1024, 4096 },
		{ "NOFILE=10", RLIMIT_NOFILE, 10, 10 },
		{ "RLIMIT_NOFILE=1:2", RLIMIT_NOFILE, 1, 2 },
		{ "rlimit_nproc=64", RLIMIT_NPROC, 64, 64 },
		{ "nofile=unlimited", RLIMIT_NOFILE, RLIM_INFINITY, RLIM_INFINITY },
		{ "core=0:unlimited", RLIMIT_CORE, 0, RLIM_INFINITY },
		{ "stack=infinity", RLIMIT_STACK, RLIM_INFINITY, RLIM_INFINITY },
		{ "as=0", RLIMIT_AS, 0, 0 },
		{ "cpu=5:5", RLIMIT_CPU, 5, 5 },
		{ "data=1", RLIMIT_DATA, 1, 1 },
		{ "fsize=1", RLIMIT_FSIZE, 1, 1 },
		{ "locks=1", RLIMIT_LOCKS, 1, 1 },
		{ "memlock=65536", RLIMIT_MEMLOCK, 65536, 65536 },
		{ "msgqueue=1", RLIMIT_MSGQUEUE, 1, 1 },
		{ "nice=0", RLIMIT_NICE, 0, 0 },
		{ "rss=1", RLIMIT_RSS, 1, 1 },
		{ "rtprio=99", RLIMIT_RTPRIO, 99, 99 },
		{ "rttime=1", RLIMIT_RTTIME, 1, 1 },
		{ "sigpending=1", RLIMIT_SIGPENDING, 1, 1 },
		{ "nofile=18446744073709551614", RLIMIT_NOFILE, 18446744073709551614ull,
		  18446744073709551614ull },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint32_t res = 999;
		uint64_t soft = 7, hard = 7;

		assert_int_equal(parse_rlimit(cases[i].in, &res, &soft, &hard), 0);
		assert_int_equal(res, cases[i].res);
		assert_true(soft == cases[i].soft);
		assert_true(hard == cases[i].hard);
	}
}

static void test_rlimit_invalid(void **state)
{
	static const char *const bad[] = {
		"nofile",	    /* missing '=' */
		"nofile=",	    /* missing value */
		"=1024",	    /* missing name */
		"nofile=4096:1024", /* soft > hard */
		"nofile=unlimited:1024",
		"bogus=1",
		"RLIMIT_=1",
		"RLIMIT_BOGUS=1",
		"rlimitnofile=1",
		"rlimit-nofile=1", /* the prefix is exactly "RLIMIT_" */
		"XXXXXXXnofile=1",
		"nofile=-1",
		"nofile=+1",
		"nofile= 1",
		"nofile=1 ",
		"nofile=1k",
		"nofile=0x10",
		"nofile=1:",
		"nofile=:1",
		"nofile=1:2:3",
		"nofile=unlimitedx",
		"nofile=Unlimited",
		"nofile=99999999999999999999", /* overflows uint64 */
		"nofile =1",
		"",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint32_t res = 999;
		uint64_t soft = 7, hard = 7;

		assert_int_equal(parse_rlimit(bad[i], &res, &soft, &hard), -EINVAL);
		assert_int_equal(res, 999);
	}
}

static void test_rlimit_too_long(void **state)
{
	char s[200];
	uint32_t res = 999;
	uint64_t soft, hard;

	(void)state;
	/* Valid, but longer than the parser's buffer: refused, not truncated. */
	memcpy(s, "nofile=", 7);
	memset(s + 7, '0', sizeof(s) - 9);
	s[sizeof(s) - 2] = '1';
	s[sizeof(s) - 1] = '\0';
	assert_int_equal(parse_rlimit(s, &res, &soft, &hard), -EINVAL);
	assert_int_equal(res, 999);

	/* 127 characters is the longest accepted. */
	s[127] = '\0';
	s[126] = '9';
	assert_int_equal(parse_rlimit(s, &res, &soft, &hard), 0);
	assert_int_equal(res, RLIMIT_NOFILE);
	assert_true(soft == 9 && hard == 9);
}

/* --- env keys and sandbox names --------------------------------------- */

/* /proc/PID/stat fields as proc(5) numbers them; rsslim (25) is "unlimited" = UINT64_MAX. */
static void test_proc_stat(void **state)
{
	static const char line[] =
		"4242 (qemu) sys) x86) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 567 0 0 20 0 "
		"3 0 55 2143289344 98765 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0\n";
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_proc_stat(line, 14, &v), 0);
	assert_int_equal(v, 1234); /* utime */
	assert_int_equal(parse_proc_stat(line, 15, &v), 0);
	assert_int_equal(v, 567); /* stime */
	assert_int_equal(parse_proc_stat(line, 24, &v), 0);
	assert_int_equal(v, 98765); /* rss, in pages */
	assert_int_equal(parse_proc_stat(line, 25, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_proc_stat(line, 3, &v), -EINVAL); /* "S" is no number */
	assert_int_equal(parse_proc_stat(line, 7, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_proc_stat(line, 8, &v), -EINVAL); /* -1 is no size */
	assert_int_equal(parse_proc_stat(line, 60, &v), -EINVAL);
	assert_int_equal(parse_proc_stat(line, 2, &v), -EINVAL);
	assert_int_equal(parse_proc_stat("no parenthesis 1 2 3", 3, &v), -EINVAL);
	assert_int_equal(parse_proc_stat("1 (x) S 1", 4, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(parse_proc_stat("1 (x) S 1", 5, &v), -EINVAL);
}

static void test_env_has_valid_key(void **state)
{
	(void)state;
	assert_true(env_has_valid_key("A=1"));
	assert_true(env_has_valid_key("PATH=/bin:/usr/bin"));
	assert_true(env_has_valid_key("A="));
	assert_true(env_has_valid_key("A==b"));
	assert_true(env_has_valid_key("lower_case9=x"));
	assert_false(env_has_valid_key(""));
	assert_false(env_has_valid_key("A"));
	assert_false(env_has_valid_key("=1"));
	assert_false(env_has_valid_key("="));
	assert_false(env_has_valid_key("NOEQUALS"));
}

static void test_valid_sandbox_name(void **state)
{
	char name[80];

	(void)state;
	assert_true(valid_sandbox_name("a"));
	assert_true(valid_sandbox_name("Z"));
	assert_true(valid_sandbox_name("0"));
	assert_true(valid_sandbox_name("web-1"));
	assert_true(valid_sandbox_name("my_box.v2"));
	assert_true(valid_sandbox_name("a-_."));
	assert_false(valid_sandbox_name(""));
	assert_false(valid_sandbox_name("-a"));
	assert_false(valid_sandbox_name("_a"));
	assert_false(valid_sandbox_name(".a"));
	assert_false(valid_sandbox_name(".."));
	assert_false(valid_sandbox_name("a/b"));
	assert_false(valid_sandbox_name("../x"));
	assert_false(valid_sandbox_name("a b"));
	assert_false(valid_sandbox_name("a:b"));
	assert_false(valid_sandbox_name("a\n"));
	assert_false(valid_sandbox_name("caf\xc3\xa9"));

	/* 63 characters is the longest name. */
	memset(name, 'n', 63);
	name[63] = '\0';
	assert_true(valid_sandbox_name(name));
	name[63] = 'n';
	name[64] = '\0';
	assert_false(valid_sandbox_name(name));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_size_bare_unit),
		cmocka_unit_test(test_size_invalid),
		cmocka_unit_test(test_size_overflow),
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test(test_duration_invalid),
		cmocka_unit_test(test_duration_overflow),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_format_duration_truncates),
		cmocka_unit_test(test_format_ago_plurals),
		cmocka_unit_test(test_size_exact_large),
		cmocka_unit_test(test_duration_max),
		cmocka_unit_test(test_format_duration_zero_length),
		cmocka_unit_test(test_rlimit_valid),
		cmocka_unit_test(test_rlimit_invalid),
		cmocka_unit_test(test_rlimit_too_long),
		cmocka_unit_test(test_env_has_valid_key),
		cmocka_unit_test(test_valid_sandbox_name),
		cmocka_unit_test(test_proc_stat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
