// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the file helpers snapshots use (sparse copies, links) and the VMDK size. */
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
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/fs.h"
#include "vm/layers.h"

static char dir[64];
static int dfd = -1;

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/msb-test-fs.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	close(dfd);
	return rm_rf(dir);
}

static int make_file(const char *name, off_t size)
{
	int fd = openat(dfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	return fd;
}

/* Data is copied where it is, holes stay holes, the size is the same. */
static void test_copy_sparse(void **state)
{
	int in = make_file("in", 64 << 20), out;
	char a[4096], b[4096];
	struct stat st;
	long long n;

	(void)state;
	memset(a, 'x', sizeof(a));
	assert_int_equal(pwrite(in, a, sizeof(a), 0), sizeof(a));
	assert_int_equal(pwrite(in, a, sizeof(a), 32 << 20), sizeof(a));
	assert_int_equal(pwrite(in, "end", 3, (64 << 20) - 3), 3);
	out = openat(dfd, "out", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(out >= 0);
	n = copy_sparse(in, out);
	assert_true(n >= (long long)(2 * sizeof(a) + 3));
	assert_int_equal(fstat(out, &st), 0);
	assert_int_equal(st.st_size, 64 << 20);
	/* Far less than 64 MiB allocated: the holes were not written. */
	assert_true(st.st_blocks * 512 < (8 << 20));
	assert_int_equal(pread(out, b, sizeof(b), 32 << 20), sizeof(b));
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(pread(out, b, 3, (64 << 20) - 3), 3);
	assert_memory_equal(b, "end", 3);
	assert_int_equal(pread(out, b, 16, 16 << 20), 16);
	for (int i = 0; i < 16; i++)
		assert_int_equal(b[i], 0);
	close(in);
	close(out);
}

/* An empty file, and a file that is all hole. */
static void test_copy_sparse_empty(void **state)
{
	int in = make_file("e", 0), out = openat(dfd, "e2", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	struct stat st;

	(void)state;
	assert_int_equal(copy_sparse(in, out), 0);
	close(in);
	close(out);
	in = make_file("h", 1 << 20);
	out = openat(dfd, "h2", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(copy_sparse(in, out), 0);
	assert_int_equal(fstat(out, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	close(in);
	close(out);
}

/* A link when allowed, a copy otherwise; never over an existing file. */
static void test_copy_at(void **state)
{
	struct stat a, b;

	(void)state;
	close(make_file("src", 8192));
	assert_int_equal(copy_at(dfd, "src", dfd, "linked", true), 0);
	assert_int_equal(copy_at(dfd, "src", dfd, "copied", false), 0);
	assert_int_equal(fstatat(dfd, "src", &a, 0), 0);
	assert_int_equal(fstatat(dfd, "linked", &b, 0), 0);
	assert_true(a.st_ino == b.st_ino);
	assert_int_equal(fstatat(dfd, "copied", &b, 0), 0);
	assert_true(a.st_ino != b.st_ino);
	assert_int_equal(b.st_size, 8192);
	assert_int_equal(copy_at(dfd, "src", dfd, "copied", false), -EEXIST);
	assert_int_equal(copy_at(dfd, "missing", dfd, "x", false), -ENOENT);
}

/* The regular files of a directory, not its subdirectories; a missing one is nothing. */
static void test_copy_dir_files(void **state)
{
	int sub;

	(void)state;
	assert_int_equal(mkdirat(dfd, "scripts", 0700), 0);
	sub = openat(dfd, "scripts", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(openat(sub, "one", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	assert_int_equal(mkdirat(sub, "nested", 0700), 0);
	close(sub);
	assert_int_equal(mkdirat(dfd, "to", 0700), 0);
	sub = openat(dfd, "to", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(copy_dir_files_at(dfd, "scripts", sub), 0);
	assert_int_equal(faccessat(sub, "scripts/one", F_OK, 0), 0);
	assert_int_equal(faccessat(sub, "scripts/nested", F_OK, 0), -1);
	assert_int_equal(copy_dir_files_at(dfd, "none", sub), 0);
	assert_int_equal(faccessat(sub, "none", F_OK, 0), -1);
	close(sub);
}

static void write_desc(const char *text)
{
	int fd = openat(dfd, "d.vmdk", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

/* The size a VMDK descriptor gives its disk: flat and zero extents added up. */
static void test_vmdk_size(void **state)
{
	char path[128];
	uint64_t size;

	(void)state;
	snprintf(path, sizeof(path), "%s/d.vmdk", dir);
	write_desc("# Disk DescriptorFile\nversion=1\nRW 8 FLAT \"t\" 0\nRW 2048 FLAT \"l/0\" 0\n"
		   "RW 134215680 ZERO\n");
	assert_int_equal(vm_vmdk_size(path, &size), 0);
	assert_true(size == (8ull + 2048 + 134215680) * 512);
	write_desc("RW x FLAT \"t\" 0\n");
	assert_int_equal(vm_vmdk_size(path, &size), -EINVAL);
	write_desc("RW 36028797018963968 ZERO\nRW 36028797018963968 ZERO\n");
	assert_int_equal(vm_vmdk_size(path, &size), -EINVAL);
	snprintf(path, sizeof(path), "%s/none.vmdk", dir);
	assert_int_equal(vm_vmdk_size(path, &size), -ENOENT);
}

/* Temporaries of dead makers go; one a live maker holds locked stays, and so does the rest. */
static void test_sweep_unlocked(void **state)
{
	int held, f;

	(void)state;
	assert_int_equal(mkdirat(dfd, ".tmp-live", 0700), 0);
	assert_int_equal(mkdirat(dfd, ".tmp-dead", 0700), 0);
	close(make_file(".tmp-dead/inner", 10));
	close(make_file(".tmp-file-dead", 10));
	close(make_file("keep", 10));
	assert_int_equal(mkdirat(dfd, "tmp-keep", 0700), 0);
	assert_int_equal(symlinkat("/etc", dfd, ".tmp-link"), 0);
	held = openat(dfd, ".tmp-live", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(held >= 0);
	assert_int_equal(flock(held, LOCK_EX), 0);
	assert_int_equal(sweep_unlocked(dir, ".tmp-"), 2);
	assert_int_equal(faccessat(dfd, ".tmp-live", F_OK, 0), 0);
	assert_int_equal(faccessat(dfd, ".tmp-dead", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(faccessat(dfd, ".tmp-file-dead", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(faccessat(dfd, "keep", F_OK, 0), 0);
	assert_int_equal(faccessat(dfd, "tmp-keep", F_OK, 0), 0);
	/* A symlink is never followed (and so never taken for its target). */
	assert_int_equal(faccessat(dfd, ".tmp-link", F_OK, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(access("/etc/passwd", F_OK), 0);
	close(held);
	/* Its maker gone, the last one goes too. */
	assert_int_equal(sweep_unlocked(dir, ".tmp-"), 1);
	f = openat(dfd, ".tmp-live", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(f, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_copy_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_sparse_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_at, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_dir_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vmdk_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_unlocked, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
