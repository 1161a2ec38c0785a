// SPDX-License-Identifier: Apache-2.0
/* Unit tests for rotlog: size caps, rotation order, kept files, reopening, cut writes. */
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

#include "util/fs.h"
#include "util/rotlog.h"

/* --- fixture: a fresh directory per test ------------------------------- */

struct dir {
	char path[64];
	int fd;
};

static int dir_setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/msb-test-rotlog.XXXXXX");
	if (!mkdtemp(d->path))
		return -1;
	d->fd = open(d->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0)
		return -1;
	*state = d;
	return 0;
}

static int dir_teardown(void **state)
{
	struct dir *d = *state;

	close(d->fd);
	rm_rf(d->path);
	free(d);
	return 0;
}

/* Size of @name in the test directory, or -1 when it does not exist. */
static long fsize(const struct dir *d, const char *name)
{
	struct stat st;

	if (fstatat(d->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		assert_int_equal(errno, ENOENT);
		return -1;
	}
	return (long)st.st_size;
}

/* Contents of @name (NUL-terminated; the files here are small text). */
static char *slurp(const struct dir *d, const char *name)
{
	static char text[8192];
	int fd = openat(d->fd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	assert_true(n >= 0);
	text[n] = '\0';
	close(fd);
	return text;
}

/* Writes @n copies of @c in one rotlog_write(). */
static void put(struct rotlog *l, char c, size_t n)
{
	char b[4096];

	assert_true(n <= sizeof(b));
	memset(b, c, n);
	assert_int_equal(rotlog_write(l, b, n), 0);
}

static void make_file(const struct dir *d, const char *name, char c, size_t n)
{
	char b[4096];
	int fd = openat(d->fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	memset(b, c, n);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	close(fd);
}

/* --- tests ------------------------------------------------------------ */

static void test_creates_private_file(void **state)
{
	struct dir *d = *state;
	struct rotlog l;
	struct stat st;

	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 100, 2), 0);
	assert_int_equal(l.size, 0);
	assert_int_equal(fstatat(d->fd, "a.log", &st, 0), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(fcntl(l.fd, F_GETFD) & FD_CLOEXEC);
	rotlog_close(&l);
	assert_int_equal(l.fd, -1);
}

static void test_grows_to_the_cap_then_rotates(void **state)
{
	struct dir *d = *state;
	struct rotlog l;

	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 100, 2), 0);
	put(&l, 'a', 60);
	assert_int_equal(fsize(d, "a.log"), 60);
	/* Exactly at the cap is allowed. */
	put(&l, 'b', 40);
	assert_int_equal(fsize(d, "a.log"), 100);
	assert_int_equal(fsize(d, "a.log.1"), -1);
	/* One byte more would pass it: rotate first, whole lines stay in one file. */
	put(&l, 'c', 1);
	assert_int_equal(fsize(d, "a.log"), 1);
	assert_int_equal(fsize(d, "a.log.1"), 100);
	assert_int_equal(l.size, 1);
	assert_string_equal(slurp(d, "a.log"), "c");
	assert_memory_equal(slurp(d, "a.log.1") + 59, "ab", 2);
	rotlog_close(&l);
}

static void test_a_write_that_would_pass_the_cap_goes_to_a_new_file(void **state)
{
	struct dir *d = *state;
	struct rotlog l;

	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 100, 1), 0);
	put(&l, 'a', 60);
	put(&l, 'b', 60);
	assert_int_equal(fsize(d, "a.log.1"), 60);
	assert_int_equal(fsize(d, "a.log"), 60);
	assert_int_equal(slurp(d, "a.log.1")[0], 'a');
	assert_int_equal(slurp(d, "a.log")[0], 'b');
	rotlog_close(&l);
}

static void test_keeps_exactly_keep_files_in_order(void **state)
{
	struct dir *d = *state;
	struct rotlog l;
	char name[32];

	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 10, 3), 0);
	/* Ten full files' worth, each write filling a file: a.log is the newest. */
	for (char c = 'a'; c <= 'j'; c++)
		put(&l, c, 10);
	assert_string_equal(slurp(d, "a.log"), "jjjjjjjjjj");
	assert_string_equal(slurp(d, "a.log.1"), "iiiiiiiiii");
	assert_string_equal(slurp(d, "a.log.2"), "hhhhhhhhhh");
	assert_string_equal(slurp(d, "a.log.3"), "gggggggggg");
	for (int i = 4; i < 12; i++) {
		snprintf(name, sizeof(name), "a.log.%d", i);
		assert_int_equal(fsize(d, name), -1);
	}
	rotlog_close(&l);
}

static void test_keep_zero_keeps_only_the_current_file(void **state)
{
	struct dir *d = *state;
	struct rotlog l;

	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 10, 0), 0);
	put(&l, 'a', 10);
	put(&l, 'b', 5);
	assert_string_equal(slurp(d, "a.log"), "bbbbb");
	assert_int_equal(fsize(d, "a.log.1"), -1);
	assert_int_equal(fsize(d, "a.log.0"), -1);
	rotlog_close(&l);
}

static void test_oversize_write_is_cut_to_the_cap(void **state)
{
	struct dir *d = *state;
	struct rotlog l;
	char b[250];

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (char)('A' + i % 26);
	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 100, 1), 0);
	/* Into an empty file: no rotation needed, the first 100 bytes are kept. */
	assert_int_equal(rotlog_write(&l, b, sizeof(b)), 0);
	assert_int_equal(fsize(d, "a.log"), 100);
	assert_int_equal(fsize(d, "a.log.1"), -1);
	assert_memory_equal(slurp(d, "a.log"), b, 100);
	assert_int_equal(l.size, 100);
	/* Into a non-empty file: rotate, then the cut write. */
	rotlog_close(&l);
	assert_int_equal(rotlog_open(&l, d->fd, "b.log", 100, 1), 0);
	put(&l, 'x', 10);
	assert_int_equal(rotlog_write(&l, b, sizeof(b)), 0);
	assert_int_equal(fsize(d, "b.log"), 100);
	assert_int_equal(fsize(d, "b.log.1"), 10);
	assert_memory_equal(slurp(d, "b.log"), b, 100);
	rotlog_close(&l);
}

static void test_reopen_appends_under_the_cap(void **state)
{
	struct dir *d = *state;
	struct rotlog l;

	make_file(d, "a.log", 'o', 50);
	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 100, 1), 0);
	assert_int_equal(l.size, 50);
	put(&l, 'n', 50);
	assert_int_equal(fsize(d, "a.log"), 100);
	assert_int_equal(fsize(d, "a.log.1"), -1);
	assert_int_equal(slurp(d, "a.log")[49], 'o');
	assert_int_equal(slurp(d, "a.log")[50], 'n');
	/* The size of what was there counts toward the cap. */
	put(&l, 'm', 1);
	assert_int_equal(fsize(d, "a.log.1"), 100);
	assert_string_equal(slurp(d, "a.log"), "m");
	rotlog_close(&l);
}

static void test_reopen_over_the_cap_rotates_on_first_write(void **state)
{
	struct dir *d = *state;
	struct rotlog l;

	make_file(d, "a.log", 'o', 150);
	make_file(d, "a.log.1", 'p', 20);
	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 100, 2), 0);
	assert_int_equal(l.size, 150);
	/* Opening alone changes nothing. */
	assert_int_equal(fsize(d, "a.log"), 150);
	put(&l, 'n', 1);
	assert_string_equal(slurp(d, "a.log"), "n");
	assert_int_equal(fsize(d, "a.log.1"), 150);
	assert_int_equal(fsize(d, "a.log.2"), 20);
	rotlog_close(&l);
}

static void test_name_in_a_subdirectory(void **state)
{
	struct dir *d = *state;
	struct rotlog l;

	/* As the supervisor uses it: "logs/runtime.log" relative to the sandbox directory. */
	assert_int_equal(mkdirat(d->fd, "logs", 0700), 0);
	assert_int_equal(rotlog_open(&l, d->fd, "logs/r.log", 10, 2), 0);
	put(&l, 'a', 10);
	put(&l, 'b', 10);
	put(&l, 'c', 10);
	assert_int_equal(fsize(d, "logs/r.log"), 10);
	assert_int_equal(fsize(d, "logs/r.log.1"), 10);
	assert_int_equal(fsize(d, "logs/r.log.2"), 10);
	assert_int_equal(fsize(d, "r.log"), -1);
	rotlog_close(&l);
}

static void test_refuses_a_symlink(void **state)
{
	struct dir *d = *state;
	struct rotlog l;

	assert_int_equal(symlinkat("/etc/passwd", d->fd, "a.log"), 0);
	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 100, 1), -ELOOP);
	assert_int_equal(l.fd, -1);
}

static void test_name_too_long(void **state)
{
	struct dir *d = *state;
	struct rotlog l;
	char name[100];

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(rotlog_open(&l, d->fd, name, 100, 1), -ENAMETOOLONG);
	assert_int_equal(l.fd, -1);
}

static void test_write_after_close_fails(void **state)
{
	struct dir *d = *state;
	struct rotlog l;

	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 100, 1), 0);
	rotlog_close(&l);
	assert_int_equal(rotlog_write(&l, "x", 1), -EBADF);
	rotlog_close(&l); /* twice is harmless */
}

static void test_zero_max_means_one_byte(void **state)
{
	struct dir *d = *state;
	struct rotlog l;

	/* A cap of 0 would make every write rotate forever; it is taken as 1. */
	assert_int_equal(rotlog_open(&l, d->fd, "a.log", 0, 1), 0);
	assert_int_equal(rotlog_write(&l, "xyz", 3), 0);
	assert_string_equal(slurp(d, "a.log"), "x");
	rotlog_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_creates_private_file, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_grows_to_the_cap_then_rotates, dir_setup,
						dir_teardown),
		cmocka_unit_test_setup_teardown(
			test_a_write_that_would_pass_the_cap_goes_to_a_new_file, dir_setup,
			dir_teardown),
		cmocka_unit_test_setup_teardown(test_keeps_exactly_keep_files_in_order, dir_setup,
						dir_teardown),
		cmocka_unit_test_setup_teardown(test_keep_zero_keeps_only_the_current_file,
						dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_oversize_write_is_cut_to_the_cap, dir_setup,
						dir_teardown),
		cmocka_unit_test_setup_teardown(test_reopen_appends_under_the_cap, dir_setup,
						dir_teardown),
		cmocka_unit_test_setup_teardown(test_reopen_over_the_cap_rotates_on_first_write,
						dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_name_in_a_subdirectory, dir_setup,
						dir_teardown),
		cmocka_unit_test_setup_teardown(test_refuses_a_symlink, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_name_too_long, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_write_after_close_fails, dir_setup,
						dir_teardown),
		cmocka_unit_test_setup_teardown(test_zero_max_means_one_byte, dir_setup,
						dir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
