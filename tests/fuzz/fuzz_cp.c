// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for msb cp's host half: any byte stream from the guest is
 * extracted by sbx_cp_extract() or refused, and either way nothing appears
 * outside the target, nothing under it is a device, fifo, hard link or set-id
 * file, the stream is read to its end, and no descriptor or working directory
 * change is left behind.
 *
 * Layout, made once per process under /tmp:
 *   BASE/up/work/t   the target, removed after every input
 *   BASE/up/sentinel an empty directory that relative symlinks can name
 *                    ("../../sentinel" from t/l); it must stay empty
 * BASE must hold only "up", BASE/up only "work" and "sentinel", and
 * BASE/up/work nothing once t is gone: that catches "..", absolute names
 * that land in the tree, sibling names and writes through symlinks.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "sandbox/cp.h"
#include "util/fs.h"

static char base[64], up[128], work[128], sentinel[128], target[128], cwd[PATH_MAX];

static void init(void)
{
	snprintf(base, sizeof(base), "/tmp/msb-fuzz-cp.XXXXXX");
	CHECK(mkdtemp(base));
	snprintf(up, sizeof(up), "%s/up", base);
	snprintf(work, sizeof(work), "%s/up/work", base);
	snprintf(sentinel, sizeof(sentinel), "%s/up/sentinel", base);
	snprintf(target, sizeof(target), "%s/up/work/t", base);
	CHECK(mkdir(up, 0700) == 0 && mkdir(work, 0700) == 0 && mkdir(sentinel, 0700) == 0);
	CHECK(getcwd(cwd, sizeof(cwd)));
}

static void cleanup_base(void)
{
	rm_rf(base);
}

/* Every entry of @dir must be one of the @n names in @allowed. */
static void expect_only(const char *dir, const char *const *allowed, size_t n)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	CHECK(d);
	while ((de = readdir(d))) {
		bool ok = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");

		for (size_t i = 0; i < n && !ok; i++)
			ok = !strcmp(de->d_name, allowed[i]);
		CHECK(ok);
	}
	closedir(d);
}

/* What the extraction made: files, directories and symlinks only, no set-id, no hard link. */
static int check_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_NS)
		return 0;
	CHECK(S_ISREG(st->st_mode) || S_ISDIR(st->st_mode) || S_ISLNK(st->st_mode));
	CHECK(!(st->st_mode & (S_ISUID | S_ISGID)));
	if (S_ISREG(st->st_mode))
		CHECK(st->st_nlink == 1);
	return 0;
}

/* Opens up what a copied mode 0 directory closed, for an rm_rf() run as an ordinary user. */
static int unlock_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_D || type == FTW_DNR)
		(void)chmod(path, (st->st_mode & 07777) | S_IRWXU);
	return 0;
}

static int lowest_free_fd(void)
{
	int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);

	CHECK(fd >= 0);
	close(fd);
	return fd;
}

/*
 * The input as the guest's stream: through a pipe, like msb cp, when it fits
 * in one; else from a memfd.
 */
static int open_input(const uint8_t *data, size_t size)
{
	int p[2], fd;

	if (pipe2(p, O_CLOEXEC) == 0) {
		int cap = fcntl(p[1], F_SETPIPE_SZ, size > 4096 ? (int)size : 4096);

		if (cap >= 0 && (size_t)cap >= size && write_all(p[1], data, size) == 0) {
			close(p[1]);
			return p[0];
		}
		close(p[0]);
		close(p[1]);
	}
	fd = memfd_create("fuzz-cp", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(write_all(fd, data, size) == 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const in_base[] = { "up" };
	static const char *const in_up[] = { "work", "sentinel" };
	struct msb_err *err = NULL;
	char here[PATH_MAX], c;
	uint64_t nbytes = 0;
	int fd, free_fd, r;

	if (!base[0]) {
		init();
		atexit(cleanup_base);
	}
	fd = open_input(data, size);
	free_fd = lowest_free_fd();
	r = sbx_cp_extract(fd, target, &nbytes, &err);

	/* Read to the end, nothing held open, the working directory given back. */
	CHECK(read(fd, &c, 1) == 0);
	CHECK(lowest_free_fd() == free_fd);
	close(fd);
	CHECK(getcwd(here, sizeof(here)) && !strcmp(here, cwd));

	CHECK(nbytes <= size);
	if (r == 0) {
		struct stat st;

		CHECK(!err);
		/* Success made the target. */
		CHECK(lstat(target, &st) == 0);
	} else {
		CHECK(r == -1 && err && err->msg && err->msg[0]);
		check_printable(err->msg);
		msb_err_free(err);
	}

	/* Whatever was made, even before a refusal, is below the target and harmless. */
	CHECK(nftw(target, check_one, 16, FTW_PHYS) == 0 || errno == ENOENT);
	/* Each pass opens one more level of unreadable directories (only without root). */
	for (int pass = 0; rm_rf(target) < 0; pass++) {
		CHECK(pass < 256);
		CHECK(nftw(target, unlock_one, 16, FTW_PHYS) == 0);
	}
	expect_only(work, NULL, 0);
	expect_only(sentinel, NULL, 0);
	expect_only(up, in_up, 2);
	expect_only(base, in_base, 1);
	/* What the seed corpus's absolute names and links to /tmp aim at. */
	CHECK(access("/tmp/msb-fuzz-cp-abs", F_OK) < 0 && access("/tmp/msb-fuzz-cp-x", F_OK) < 0);
	return 0;
}
