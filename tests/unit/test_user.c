// SPDX-License-Identifier: Apache-2.0
/* Unit tests for user_resolve(): docker-style user specs against in-memory passwd/group files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/user.h"

static const char passwd_text[] = "root:x:0:0:root:/root:/bin/bash\n"
				  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
				  "# a comment\n"
				  "\n"
				  "garbage\n"
				  "short:x:5:5\n"
				  "alice:x:1000:1000:Alice,,,:/home/alice:/bin/sh\n"
				  "badid:x:notanumber:100::/home/bad:/bin/sh\n"
				  "badgid:x:1500:-1::/home/badgid:/bin/sh\n"
				  "signed:x:+1600:1600::/home/signed:/bin/sh\n"
				  "nohome:x:1001:1001:::/bin/sh\n"
				  "bob:x:1002:100:Bob:/home/bob:/bin/sh\n"
				  "alice:x:2000:2000::/home/alice2:/bin/sh\n"
				  "carol:x:1003:1003::/home/carol:/bin/sh\n"
				  "six:x:1700:1700:six fields:/home/six\n"
				  "zed:x:3000:3000::/home/zed:/bin/sh"; /* no newline at EOF */

static const char group_text[] = "root:x:0:\n"
				 "wheel:x:10:alice,bob\n"
				 "users:x:100:bob\n"
				 "staff:x:50:carol,alice\n"
				 "alice:x:1000:\n"
				 "bad:x:xx:alice\n"
				 "short:alice\n"
				 "nomembers:x:60\n"
				 "similar:x:70:alice2,malice,ALICE\n"
				 "docker:x:999:bob,alice,dave\n"
				 "zedgrp:x:3001:zed\n"
				 "dupes:x:80:bob,bob";

struct files {
	FILE *passwd;
	FILE *group;
};

static FILE *open_text(const char *s)
{
	FILE *f = fmemopen((void *)s, strlen(s), "r");

	assert_non_null(f);
	return f;
}

static int setup(void **state)
{
	struct files *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -1;
	fs->passwd = fmemopen((void *)passwd_text, strlen(passwd_text), "r");
	fs->group = fmemopen((void *)group_text, strlen(group_text), "r");
	if (!fs->passwd || !fs->group)
		return -1;
	*state = fs;
	return 0;
}

static int teardown(void **state)
{
	struct files *fs = *state;

	fclose(fs->passwd);
	fclose(fs->group);
	free(fs);
	return 0;
}

/*
 * Resolves @spec and checks ids, home and the exact supplementary group list;
 * @ngroups -1 leaves the groups unchecked (with an explicit group, see test_name_group).
 */
static void expect_user(struct files *fs, const char *spec, uid_t uid, gid_t gid, const char *home,
			int ngroups, const gid_t *groups)
{
	struct user_info u;
	char why[256] = "untouched";

	memset(&u, 0xa5, sizeof(u));
	assert_int_equal(user_resolve(spec, fs->passwd, fs->group, &u, why, sizeof(why)), 0);
	assert_int_equal(u.uid, uid);
	assert_int_equal(u.gid, gid);
	assert_string_equal(u.home, home);
	if (ngroups >= 0)
		assert_int_equal(u.ngroups, ngroups);
	for (int i = 0; i < ngroups; i++)
		assert_int_equal(u.groups[i], groups[i]);
	assert_string_equal(why, "untouched");
}

static void expect_error(struct files *fs, const char *spec, int err, const char *want_why)
{
	struct user_info u;
	char why[256] = "";

	assert_int_equal(user_resolve(spec, fs->passwd, fs->group, &u, why, sizeof(why)), err);
	assert_string_equal(why, want_why);
}

static const gid_t alice_groups[] = { 10, 50, 999 };

static void test_by_name(void **state)
{
	static const gid_t bob_groups[] = { 10, 999, 80 }; /* 100 is his primary group */
	static const gid_t carol_groups[] = { 50 };

	expect_user(*state, "alice", 1000, 1000, "/home/alice", 3, alice_groups);
	expect_user(*state, "bob", 1002, 100, "/home/bob", 3, bob_groups);
	expect_user(*state, "carol", 1003, 1003, "/home/carol", 1, carol_groups);
	expect_user(*state, "daemon", 1, 1, "/usr/sbin", 0, NULL);
}

static void test_by_uid(void **state)
{
	expect_user(*state, "1000", 1000, 1000, "/home/alice", 3, alice_groups);
	expect_user(*state, "0", 0, 0, "/root", 0, NULL);
	/* Leading zeros are still decimal, not octal. */
	expect_user(*state, "0010", 10, 0, "/", 0, NULL);
	expect_user(*state, "01002", 1002, 100, "/home/bob", 3, (const gid_t[]){ 10, 999, 80 });
}

static void test_uid_gid(void **state)
{
	expect_user(*state, "1000:2000", 1000, 2000, "/home/alice", 0, NULL);
	expect_user(*state, "0:0", 0, 0, "/root", 0, NULL);
	expect_user(*state, "4242:7", 4242, 7, "/", 0, NULL);
}

static void test_name_group(void **state)
{
	/* With an explicit group, as with docker (runc), /etc/group memberships are dropped. */
	expect_user(*state, "bob:wheel", 1002, 10, "/home/bob", 0, NULL);
	expect_user(*state, "alice:staff", 1000, 50, "/home/alice", 0, NULL);
	expect_user(*state, "daemon:nomembers", 1, 60, "/usr/sbin", 0, NULL);
	/* Group names resolve whatever the user: a numeric uid with a named group. */
	expect_user(*state, "4242:docker", 4242, 999, "/", 0, NULL);
}

static void test_name_gid(void **state)
{
	expect_user(*state, "alice:999", 1000, 999, "/home/alice", 0, NULL);
	expect_user(*state, "daemon:0", 1, 0, "/usr/sbin", 0, NULL);
	/* A numeric group need not exist in the group file. */
	expect_user(*state, "daemon:31337", 1, 31337, "/usr/sbin", 0, NULL);
}

static void test_unknown_user(void **state)
{
	expect_error(*state, "nosuch", -ENOENT,
		     "unable to find user nosuch: no matching entries in passwd file");
	expect_error(*state, "nosuch:wheel", -ENOENT,
		     "unable to find user nosuch: no matching entries in passwd file");
	/* Names are case-sensitive. */
	expect_error(*state, "Alice", -ENOENT,
		     "unable to find user Alice: no matching entries in passwd file");
	/* Not numeric ids, so looked up (and not found) as names. */
	expect_error(*state, "-1", -ENOENT,
		     "unable to find user -1: no matching entries in passwd file");
	expect_error(*state, "4294967295", -ENOENT,
		     "unable to find user 4294967295: no matching entries in passwd file");
	expect_error(*state, "99999999999999999999", -ENOENT,
		     "unable to find user 99999999999999999999: "
		     "no matching entries in passwd file");
	expect_error(*state, " 1000", -ENOENT,
		     "unable to find user  1000: no matching entries in passwd file");
}

static void test_unknown_group(void **state)
{
	expect_error(*state, "alice:nogroup", -ENOENT,
		     "unable to find group nogroup: no matching entries in group file");
	expect_error(*state, "0:nogroup", -ENOENT,
		     "unable to find group nogroup: no matching entries in group file");
	/* Malformed group lines are not matched by name. */
	expect_error(*state, "alice:bad", -ENOENT,
		     "unable to find group bad: no matching entries in group file");
	expect_error(*state, "alice:short", -ENOENT,
		     "unable to find group short: no matching entries in group file");
	expect_error(*state, "alice:-5", -ENOENT,
		     "unable to find group -5: no matching entries in group file");
	expect_error(*state, "alice:staff:x", -ENOENT,
		     "unable to find group staff:x: no matching entries in group file");
}

static void test_uid_not_in_passwd(void **state)
{
	expect_user(*state, "4242", 4242, 0, "/", 0, NULL);
	expect_user(*state, "4294967294", 4294967294u, 0, "/", 0, NULL);
	/* 1500 appears only on a line with a bad gid, which does not count. */
	expect_user(*state, "1500", 1500, 0, "/", 0, NULL);
}

static void test_empty_spec_is_root(void **state)
{
	struct files *fs = *state;
	struct user_info u;
	char why[16];

	expect_user(fs, "", 0, 0, "/root", 0, NULL);
	memset(&u, 0xa5, sizeof(u));
	assert_int_equal(user_resolve(NULL, fs->passwd, fs->group, &u, why, sizeof(why)), 0);
	assert_int_equal(u.uid, 0);
	assert_int_equal(u.gid, 0);
	assert_string_equal(u.home, "/root");
	assert_int_equal(u.ngroups, 0);
}

static void test_malformed_specs(void **state)
{
	static const char *const bad[] = { ":", "a:", ":b", "alice:", ":0", "0:", "::" };
	char want[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want), "invalid user \"%s\" (use NAME, UID, or UID:GID)",
			 bad[i]);
		expect_error(*state, bad[i], -EINVAL, want);
	}
}

static void test_spec_too_long(void **state)
{
	char spec[300], want[256];

	memset(spec, 'a', sizeof(spec) - 1);
	spec[sizeof(spec) - 1] = '\0';
	expect_error(*state, spec, -EINVAL, "user spec too long");
	spec[256] = '\0';
	expect_error(*state, spec, -EINVAL, "user spec too long");
	/* 255 characters still fit the parser's buffer; the message is cut to @why's size. */
	spec[255] = '\0';
	memcpy(want, "unable to find user ", 20);
	memset(want + 20, 'a', sizeof(want) - 21);
	want[sizeof(want) - 1] = '\0';
	expect_error(*state, spec, -ENOENT, want);
}

static void test_malformed_lines_skipped(void **state)
{
	static const char *const names[] = { "garbage", "short", "badid",      "badgid",
					     "signed",	"six",	 "# a comment" };
	char want[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(want, sizeof(want),
			 "unable to find user %s: no matching entries in passwd file", names[i]);
		expect_error(*state, names[i], -ENOENT, want);
	}
	/* Entries after the malformed ones are still found. */
	expect_user(*state, "zed", 3000, 3000, "/home/zed", 1, (const gid_t[]){ 3001 });
}

static void test_empty_home_is_root_dir(void **state)
{
	expect_user(*state, "nohome", 1001, 1001, "/", 0, NULL);
}

static void test_first_entry_wins(void **state)
{
	expect_user(*state, "alice", 1000, 1000, "/home/alice", 3, alice_groups);
	/* The second "alice" entry is reachable by its uid. */
	expect_user(*state, "2000", 2000, 2000, "/home/alice2", 3, alice_groups);
}

/* The same FILEs serve several lookups: each one rewinds them. */
static void test_files_rewound(void **state)
{
	struct files *fs = *state;
	char line[64];

	/* Leave both files at EOF. */
	while (fgets(line, sizeof(line), fs->passwd))
		;
	while (fgets(line, sizeof(line), fs->group))
		;
	expect_user(fs, "zed", 3000, 3000, "/home/zed", 1, (const gid_t[]){ 3001 });
	expect_user(fs, "root", 0, 0, "/root", 0, NULL);
	expect_user(fs, "alice", 1000, 1000, "/home/alice", 3, alice_groups);
	expect_user(fs, "bob", 1002, 100, "/home/bob", 3, (const gid_t[]){ 10, 999, 80 });
}

static void test_null_files(void **state)
{
	struct files none = { NULL, NULL };
	struct files only_passwd = { ((struct files *)*state)->passwd, NULL };

	expect_user(&none, "", 0, 0, "/", 0, NULL);
	expect_user(&none, "1000", 1000, 0, "/", 0, NULL);
	expect_user(&none, "1000:1000", 1000, 1000, "/", 0, NULL);
	expect_error(&none, "alice", -ENOENT,
		     "unable to find user alice: no matching entries in passwd file");
	expect_error(&none, "0:wheel", -ENOENT,
		     "unable to find group wheel: no matching entries in group file");

	/* passwd present, group missing: no supplementary groups, named groups fail. */
	expect_user(&only_passwd, "alice", 1000, 1000, "/home/alice", 0, NULL);
	expect_user(&only_passwd, "alice:5", 1000, 5, "/home/alice", 0, NULL);
	expect_error(&only_passwd, "alice:staff", -ENOENT,
		     "unable to find group staff: no matching entries in group file");
}

static void test_empty_files(void **state)
{
	struct files fs;

	(void)state;
	fs.passwd = tmpfile();
	fs.group = tmpfile();
	assert_non_null(fs.passwd);
	assert_non_null(fs.group);
	expect_user(&fs, "", 0, 0, "/", 0, NULL);
	expect_user(&fs, "7:8", 7, 8, "/", 0, NULL);
	expect_error(&fs, "root", -ENOENT,
		     "unable to find user root: no matching entries in passwd file");
	fclose(fs.passwd);
	fclose(fs.group);
}

/* More memberships than USER_MAX_GROUPS: the list is capped, not overrun. */
static void test_group_cap(void **state)
{
	struct files fs;
	char *text = NULL;
	size_t len = 0;
	FILE *w;
	struct user_info u;
	char why[64];

	(void)state;
	w = open_memstream(&text, &len);
	assert_non_null(w);
	for (int i = 0; i < USER_MAX_GROUPS + 10; i++)
		fprintf(w, "g%d:x:%d:someone,u\n", i, 5000 + i);
	fclose(w);

	fs.passwd = open_text("u:x:42:5003::/home/u:/bin/sh\n");
	fs.group = open_text(text);
	memset(&u, 0, sizeof(u));
	assert_int_equal(user_resolve("u", fs.passwd, fs.group, &u, why, sizeof(why)), 0);
	assert_int_equal(u.uid, 42);
	assert_int_equal(u.gid, 5003);
	assert_int_equal(u.ngroups, USER_MAX_GROUPS);
	/* Primary group 5003 skipped, so entry 3 is g4. */
	assert_int_equal(u.groups[0], 5000);
	assert_int_equal(u.groups[2], 5002);
	assert_int_equal(u.groups[3], 5004);
	assert_int_equal(u.groups[USER_MAX_GROUPS - 1], 5000 + USER_MAX_GROUPS);
	fclose(fs.passwd);
	fclose(fs.group);
	free(text);
}

/* A NULL @why with zero length is allowed on the error paths. */
static void test_null_why(void **state)
{
	struct files *fs = *state;
	struct user_info u;

	assert_int_equal(user_resolve("nosuch", fs->passwd, fs->group, &u, NULL, 0), -ENOENT);
	assert_int_equal(user_resolve(":", fs->passwd, fs->group, &u, NULL, 0), -EINVAL);
	assert_int_equal(user_resolve("alice", fs->passwd, fs->group, &u, NULL, 0), 0);
	assert_int_equal(u.uid, 1000);
}

/* A line longer than any buffer must not be split into a second, forged entry. */
static void test_long_lines_are_not_split(void **state)
{
	size_t pad = 5000;
	char *pw = malloc(pad + 256), *gr = malloc(pad + 256);
	struct files fs;
	char *p;

	(void)state;
	assert_non_null(pw);
	assert_non_null(gr);
	p = pw + sprintf(pw, "bob:x:1002:1002:");
	memset(p, 'x', pad);
	p += pad;
	p += sprintf(p, "root2:x:0:0::/:/bin/sh:/home/bob:/bin/sh\n");
	p = gr + sprintf(gr, "big:x:77:");
	for (size_t i = 0; i < pad / 8; i++)
		p += sprintf(p, "u%06zu,", i);
	sprintf(p, "bob\n");
	fs.passwd = open_text(pw);
	fs.group = open_text(gr);
	expect_error(&fs, "root2", -ENOENT,
		     "unable to find user root2: no matching entries in passwd file");
	/* The long line is one entry: uid 1002, its 6th field ("x") as home. */
	expect_user(&fs, "1002", 1002, 1002, "x", 1, (const gid_t[]){ 77 });
	fclose(fs.passwd);
	fclose(fs.group);
	free(pw);
	free(gr);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_by_name),
		T(test_by_uid),
		T(test_uid_gid),
		T(test_name_group),
		T(test_name_gid),
		T(test_unknown_user),
		T(test_unknown_group),
		T(test_uid_not_in_passwd),
		T(test_empty_spec_is_root),
		T(test_malformed_specs),
		T(test_spec_too_long),
		T(test_malformed_lines_skipped),
		T(test_empty_home_is_root_dir),
		T(test_first_entry_wins),
		T(test_files_rewound),
		T(test_null_files),
		cmocka_unit_test(test_empty_files),
		cmocka_unit_test(test_group_cap),
		T(test_null_why),
		cmocka_unit_test(test_long_lines_are_not_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
