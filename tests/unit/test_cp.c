// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for msb cp's host half (src/sandbox/cp.c): tar streams from a
 * hostile guest are created at the target or refused, and nothing ever
 * appears outside it; sbx_cp_target() follows docker's rule; sbx_cp_archive()
 * and sbx_cp_extract() round-trip a host tree.
 *
 * Every stream goes through a pipe written by a thread, as msb cp's does, so
 * each test also proves that sbx_cp_extract() reads its input to the end
 * (the writer is never cut off), leaks no descriptor and gives the working
 * directory back.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>

#include "sandbox/cp.h"
#include "util/buf.h"
#include "util/fs.h"

#define BLOCK ((size_t)512)
#define MTIME 1600000000
/* Seconds any one test may take: a hang on a short stream is a failure, not a stuck suite. */
#define TEST_ALARM 30

/* --- the fixture: a temp root with the destination and a sentinel beside it --- */

/*
 * struct fx - @root/dst is where targets are made (@target is @root/dst/tgt),
 * @root/outside holds one file, "keep", that no stream may touch.
 */
struct fx {
	char root[64];
	char dst[128];
	char outside[128];
	char target[128];
	char cwd[PATH_MAX];
};

#define KEEP "original\n"

static void write_text(const char *path, const char *s, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, s, strlen(s)), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Return: the file's content (caller frees), or NULL when it cannot be read. */
static char *slurp(const char *path)
{
	char *s = NULL;
	size_t n;

	return read_file(path, 1 << 20, &s, &n) == 0 ? s : NULL;
}

static const char *at(const struct fx *fx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->root, sizeof(fx->root), "/tmp/msb-cp-test.XXXXXX");
	if (!mkdtemp(fx->root) || !getcwd(fx->cwd, sizeof(fx->cwd)))
		return -1;
	snprintf(fx->dst, sizeof(fx->dst), "%s/dst", fx->root);
	snprintf(fx->outside, sizeof(fx->outside), "%s/outside", fx->root);
	snprintf(fx->target, sizeof(fx->target), "%s/dst/tgt", fx->root);
	if (mkdir(fx->dst, 0755) < 0 || mkdir(fx->outside, 0755) < 0)
		return -1;
	*state = fx;
	write_text(at(fx, "outside/keep"), KEEP, 0644);
	alarm(TEST_ALARM);
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	alarm(0);
	if (fx) {
		(void)!chdir(fx->cwd);
		rm_rf(fx->root);
		free(fx);
	}
	return 0;
}

/* Printf-style path under the fixture root; a few live at once. */
static const char *at(const struct fx *fx, const char *fmt, ...)
{
	static char ring[8][PATH_MAX];
	static unsigned next;
	char *p = ring[next++ % 8], rel[PATH_MAX - 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(p, PATH_MAX, "%s/%s", fx->root, rel);
	return p;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Entries in @dir, "." and ".." aside. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/*
 * Nothing new beside the destination (only what the tests made: dst, outside,
 * src, link), and outside holds only "keep", unchanged.
 */
static void assert_untouched(const struct fx *fx)
{
	DIR *d = opendir(fx->root);
	struct dirent *de;
	struct stat st;
	char *s;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, "dst") != 0 && strcmp(de->d_name, "outside") != 0 &&
		    strcmp(de->d_name, "src") != 0 && strcmp(de->d_name, "link") != 0)
			fail_msg("%s/%s appeared outside the target", fx->root, de->d_name);
	closedir(d);
	assert_int_equal(count_entries(fx->outside), 1);
	assert_int_equal(lstat(at(fx, "outside/keep"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_nlink, 1);
	s = slurp(at(fx, "outside/keep"));
	assert_non_null(s);
	assert_string_equal(s, KEEP);
	free(s);
	assert_false(exists("/abs"));
	assert_false(exists("/escape"));
}

/* --- building tar streams -------------------------------------------- */

/*
 * struct ent - one member for tar_build(): @type is AE_IFREG when 0; @data is
 * a regular file's content; @link a symlink's target; @hardlink makes the
 * member a hard link (typeflag '1').
 */
struct ent {
	const char *path;
	mode_t type;
	unsigned perm;
	const char *data;
	const char *link;
	const char *hardlink;
};

static la_ssize_t buf_write_cb(struct archive *a, void *cookie, const void *p, size_t n)
{
	(void)a;
	return buf_append(cookie, p, n) == 0 ? (la_ssize_t)n : -1;
}

/* Appends @n members to @out as a pax tar, as libarchive writes them (evil names and all). */
static void tar_build(struct buf *out, const struct ent *ents, size_t n)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();

	assert_non_null(a);
	assert_non_null(e);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
	assert_int_equal(archive_write_open(a, out, NULL, buf_write_cb, NULL), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		const struct ent *x = &ents[i];
		mode_t type = x->type ? x->type : AE_IFREG;

		archive_entry_clear(e);
		archive_entry_set_pathname(e, x->path);
		archive_entry_set_filetype(e, type);
		archive_entry_set_perm(e, x->perm ? x->perm : 0644);
		archive_entry_set_mtime(e, MTIME, 0);
		archive_entry_set_uid(e, 4242);
		archive_entry_set_gid(e, 4242);
		if (x->link)
			archive_entry_set_symlink(e, x->link);
		if (x->hardlink)
			archive_entry_set_hardlink(e, x->hardlink);
		if (type == AE_IFCHR || type == AE_IFBLK)
			archive_entry_set_rdev(e, makedev(1, 3));
		if (type == AE_IFREG && x->data && !x->hardlink)
			archive_entry_set_size(e, (la_int64_t)strlen(x->data));
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (type == AE_IFREG && x->data && !x->hardlink)
			assert_int_equal(archive_write_data(a, x->data, strlen(x->data)),
					 (la_ssize_t)strlen(x->data));
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	archive_entry_free(e);
}

#define TAR(out, ...)                                                                              \
	do {                                                                                       \
		static const struct ent ents_[] = { __VA_ARGS__ };                                 \
		tar_build(out, ents_, sizeof(ents_) / sizeof(ents_[0]));                           \
	} while (0)

static unsigned header_sum(const char *blk)
{
	unsigned sum = 0;

	for (size_t i = 0; i < BLOCK; i++)
		sum += (i >= 148 && i < 156) ? ' ' : (unsigned char)blk[i];
	return sum;
}

/* @s into a header field of @cap bytes, NUL-padded (not NUL-terminated when it fills it). */
static void put_field(char *f, size_t cap, const char *s)
{
	size_t n = strlen(s);

	assert_true(n <= cap);
	memcpy(f, s, n); // NOLINT(bugprone-not-null-terminated-result)
}

/*
 * A raw ustar header, for what libarchive's writer will not spell: a name
 * split across the prefix field, a size the data does not reach.
 */
static void raw_header(struct buf *b, const char *prefix, const char *name, char type,
		       uint64_t size, const char *link)
{
	char blk[BLOCK];

	memset(blk, 0, sizeof(blk));
	put_field(blk, 100, name);
	snprintf(blk + 100, 8, "%07o", 0644);
	snprintf(blk + 108, 8, "%07o", 0);
	snprintf(blk + 116, 8, "%07o", 0);
	snprintf(blk + 124, 12, "%011llo", (unsigned long long)size);
	snprintf(blk + 136, 12, "%011o", MTIME);
	blk[156] = type;
	if (link)
		put_field(blk + 157, 100, link);
	memcpy(blk + 257, "ustar", 6);
	memcpy(blk + 263, "00", 2); // NOLINT(bugprone-not-null-terminated-result)
	if (prefix)
		put_field(blk + 345, 155, prefix);
	snprintf(blk + 148, 8, "%06o", header_sum(blk));
	blk[155] = ' ';
	assert_int_equal(buf_append(b, blk, BLOCK), 0);
}

static void raw_data(struct buf *b, const char *s, size_t n)
{
	static const char zero[BLOCK];

	assert_int_equal(buf_append(b, s, n), 0);
	assert_int_equal(buf_append(b, zero, (BLOCK - n % BLOCK) % BLOCK), 0);
}

static void raw_end(struct buf *b)
{
	static const char zero[2 * BLOCK];

	assert_int_equal(buf_append(b, zero, sizeof(zero)), 0);
}

/* --- feeding a stream to sbx_cp_extract() through a pipe -------------- */

struct feeder {
	int fd;
	const uint8_t *p;
	size_t n, written;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;

	while (f->written < f->n) {
		ssize_t k = write(f->fd, f->p + f->written, f->n - f->written);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		f->written += (size_t)k;
	}
	close(f->fd);
	return NULL;
}

static int lowest_free_fd(void)
{
	int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);

	assert_true(fd >= 0);
	close(fd);
	return fd;
}

/*
 * struct res - what one sbx_cp_extract() call did: its return, the error's
 * message ("" when none) and the bytes it counted.
 */
struct res {
	int r;
	char msg[1024];
	uint64_t nbytes;
};

/*
 * Runs sbx_cp_extract() on @p through a pipe into @target. Checks the
 * contract around every call: a return of 0 or -1 with an error exactly on
 * failure, the whole stream read, and the working directory given back.
 */
static void extract_to(const void *p, size_t n, const char *target, struct res *res)
{
	struct feeder f = { .p = p, .n = n };
	struct msb_err *err = NULL;
	char before[PATH_MAX], after[PATH_MAX];
	pthread_t t;
	int fds[2];

	memset(res, 0, sizeof(*res));
	assert_non_null(getcwd(before, sizeof(before)));
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	f.fd = fds[1];
	assert_int_equal(pthread_create(&t, NULL, feed, &f), 0);
	res->r = sbx_cp_extract(fds[0], target, &res->nbytes, &err);
	close(fds[0]);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(f.written, n);
	/* Both pipe ends are closed: the lowest free descriptor is the first again. */
	assert_int_equal(lowest_free_fd(), fds[0]);
	assert_non_null(getcwd(after, sizeof(after)));
	assert_string_equal(before, after);
	if (res->r == 0) {
		assert_null(err);
	} else {
		assert_int_equal(res->r, -1);
		assert_non_null(err);
		assert_non_null(err->msg);
		assert_true(err->msg[0] != '\0');
		snprintf(res->msg, sizeof(res->msg), "%s", err->msg);
		msb_err_free(err);
	}
}

static void extract(const struct fx *fx, const struct buf *tar, struct res *res)
{
	extract_to(buf_head(tar), buf_size(tar), fx->target, res);
}

static void assert_refused(const struct res *res, const char *why)
{
	assert_int_equal(res->r, -1);
	if (!strstr(res->msg, why))
		fail_msg("error \"%s\" does not say \"%s\"", res->msg, why);
}

static void assert_mode(const char *path, mode_t type, unsigned perm)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(st.st_mode & S_IFMT, type);
	if (type != S_IFLNK)
		assert_int_equal(st.st_mode & 07777, perm);
}

static void assert_content(const char *path, const char *want)
{
	char *s = slurp(path);

	if (!s)
		fail_msg("%s: cannot read", path);
	assert_string_equal(s, want);
	free(s);
}

static void assert_symlink(const char *path, const char *want)
{
	char got[PATH_MAX];
	ssize_t n = readlink(path, got, sizeof(got) - 1);

	if (n < 0)
		fail_msg("%s: %s", path, strerror(errno));
	else
		got[n] = '\0';
	assert_string_equal(got, want);
}

/* --- good streams ------------------------------------------------------ */

/*
 * A tree (directory, 0750 file, symlinks, nested directories) lands at the
 * target under the target's name, with contents, modes, symlink targets
 * (verbatim, even absolute ones) and mtimes kept; nbytes counts file data.
 */
static void test_extract_good_tree(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;
	struct stat st;

	TAR(&in, { .path = "top", .type = AE_IFDIR, .perm = 0755 },
	    { .path = "top/a", .perm = 0750, .data = "hello\n" },
	    { .path = "top/l", .type = AE_IFLNK, .link = "a" },
	    { .path = "top/abs", .type = AE_IFLNK, .link = "/nonexistent/x" },
	    { .path = "top/d", .type = AE_IFDIR, .perm = 0700 },
	    { .path = "top/d/e", .type = AE_IFDIR, .perm = 0751 },
	    { .path = "top/d/e/f", .perm = 0640, .data = "nested" },
	    { .path = "top/d/empty", .perm = 0600, .data = "" });
	extract(fx, &in, &res);
	assert_int_equal(res.r, 0);
	assert_int_equal(res.nbytes, 12);
	assert_false(exists(at(fx, "dst/top")));
	assert_int_equal(count_entries(fx->dst), 1);
	assert_mode(fx->target, S_IFDIR, 0755);
	assert_mode(at(fx, "dst/tgt/a"), S_IFREG, 0750);
	assert_content(at(fx, "dst/tgt/a"), "hello\n");
	assert_mode(at(fx, "dst/tgt/l"), S_IFLNK, 0);
	assert_symlink(at(fx, "dst/tgt/l"), "a");
	assert_symlink(at(fx, "dst/tgt/abs"), "/nonexistent/x");
	assert_mode(at(fx, "dst/tgt/d"), S_IFDIR, 0700);
	assert_mode(at(fx, "dst/tgt/d/e"), S_IFDIR, 0751);
	assert_mode(at(fx, "dst/tgt/d/e/f"), S_IFREG, 0640);
	assert_content(at(fx, "dst/tgt/d/e/f"), "nested");
	assert_mode(at(fx, "dst/tgt/d/empty"), S_IFREG, 0600);
	assert_content(at(fx, "dst/tgt/d/empty"), "");
	/* Times: files, and directories (set at the end, after their children). */
	const char *timed[] = { fx->target, at(fx, "dst/tgt/a"), at(fx, "dst/tgt/d/e"),
				at(fx, "dst/tgt/d/e/f") };
	for (size_t i = 0; i < sizeof(timed) / sizeof(timed[0]); i++) {
		assert_int_equal(lstat(timed[i], &st), 0);
		assert_int_equal(st.st_mtime, MTIME);
	}
	/* Ownership is never restored (4242 in the stream). */
	assert_int_equal(lstat(at(fx, "dst/tgt/a"), &st), 0);
	assert_int_equal(st.st_uid, geteuid());
	assert_untouched(fx);
	buf_free(&in);
}

/* A stream of one file makes the target that file; names may start with "./". */
static void test_extract_single_file_and_dot_slash(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;

	TAR(&in, { .path = "./name.txt", .perm = 0600, .data = "one" });
	extract(fx, &in, &res);
	assert_int_equal(res.r, 0);
	assert_int_equal(res.nbytes, 3);
	assert_mode(fx->target, S_IFREG, 0600);
	assert_content(fx->target, "one");
	buf_free(&in);

	/* "./top" and "././top/a" are the same tree as "top" and "top/a". */
	assert_int_equal(rm_rf(fx->target), 0);
	memset(&in, 0, sizeof(in));
	TAR(&in, { .path = "./top/", .type = AE_IFDIR, .perm = 0755 },
	    { .path = "././top/a", .data = "x" });
	extract(fx, &in, &res);
	assert_int_equal(res.r, 0);
	assert_content(at(fx, "dst/tgt/a"), "x");
	assert_untouched(fx);
	buf_free(&in);
}

/* Names and symlink targets past ustar's 100 bytes come through pax records. */
static void test_extract_pax_long_names(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;
	char name[400], link[300], want[PATH_MAX];

	memset(link, 'L', sizeof(link) - 1);
	link[sizeof(link) - 1] = '\0';
	snprintf(name, sizeof(name), "top/%0150d/%0150d", 1, 2);

	struct ent ents[] = {
		{ .path = "top", .type = AE_IFDIR, .perm = 0755 },
		{ .path = name, .data = "deep" },
		{ .path = "top/s", .type = AE_IFLNK, .link = link },
	};
	tar_build(&in, ents, 3);
	extract(fx, &in, &res);
	assert_int_equal(res.r, 0);
	snprintf(want, sizeof(want), "dst/tgt/%0150d/%0150d", 1, 2);
	assert_content(at(fx, "%s", want), "deep");
	assert_symlink(at(fx, "dst/tgt/s"), link);
	assert_untouched(fx);
	buf_free(&in);
}

/* --- streams that leave the tree ---------------------------------------- */

/*
 * Every entry must lie under the first entry's name: "other/b" after "top/a"
 * is refused, and so are names that merely start with the same letters.
 */
static void test_extract_outside_tree(void **state)
{
	static const char *const strays[] = { "other/b", "topx/b", "to/b", "topx", "/top/b" };
	struct fx *fx = *state;

	for (size_t i = 0; i < sizeof(strays) / sizeof(strays[0]); i++) {
		struct ent ents[] = {
			{ .path = "top", .type = AE_IFDIR, .perm = 0755 },
			{ .path = "top/a", .data = "a" },
			{ .path = strays[i], .data = "evil" },
		};
		struct buf in = { 0 };
		struct res res;

		tar_build(&in, ents, 3);
		extract(fx, &in, &res);
		assert_refused(&res, "outside the copied tree");
		assert_true(strstr(res.msg, strays[i]) != NULL);
		/* Only the target, never anything for the stray entry. */
		assert_int_equal(count_entries(fx->dst), 1);
		assert_int_equal(count_entries(fx->target), 1);
		assert_false(exists(at(fx, "dst/other")));
		assert_untouched(fx);
		assert_int_equal(rm_rf(fx->target), 0);
		buf_free(&in);
	}
}

/* "..", as a component anywhere, and absolute names are refused, first entry or later. */
static void test_extract_dotdot_and_absolute(void **state)
{
	struct fx *fx = *state;
	char abs_evil[PATH_MAX];
	const char *firsts[] = { "../escape", "..", "/abs/path", "/escape", abs_evil, "", "./" };
	const char *laters[] = { "top/../escape", "top/../../escape",
				 "top/..",	  "top/a/../../escape",
				 "../escape",	  "/abs/path",
				 abs_evil };

	snprintf(abs_evil, sizeof(abs_evil), "%s/pwned", fx->outside);
	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		struct ent ents[] = { { .path = firsts[i], .data = "evil" } };
		struct buf in = { 0 };
		struct res res;

		tar_build(&in, ents, 1);
		extract(fx, &in, &res);
		assert_refused(&res, "outside the copied tree");
		assert_int_equal(count_entries(fx->dst), 0);
		assert_untouched(fx);
		buf_free(&in);
	}
	for (size_t i = 0; i < sizeof(laters) / sizeof(laters[0]); i++) {
		struct ent ents[] = {
			{ .path = "top", .type = AE_IFDIR, .perm = 0755 },
			{ .path = "top/a", .type = AE_IFDIR, .perm = 0755 },
			{ .path = laters[i], .data = "evil" },
		};
		struct buf in = { 0 };
		struct res res;

		tar_build(&in, ents, 3);
		extract(fx, &in, &res);
		assert_refused(&res, "outside the copied tree");
		assert_int_equal(count_entries(fx->dst), 1);
		assert_false(exists(at(fx, "dst/escape")));
		assert_untouched(fx);
		assert_int_equal(rm_rf(fx->target), 0);
		buf_free(&in);
	}
}

/* The same through the ustar prefix field, which libarchive joins to the name. */
static void test_extract_dotdot_in_prefix(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;

	raw_header(&in, NULL, "top/", '5', 0, NULL);
	raw_header(&in, "top/..", "escape", '0', 4, NULL);
	raw_data(&in, "evil", 4);
	raw_end(&in);
	extract(fx, &in, &res);
	assert_refused(&res, "outside the copied tree");
	assert_false(exists(at(fx, "dst/escape")));
	assert_untouched(fx);
	buf_free(&in);
}

/*
 * A symlink in the stream, then an entry through it: "top/l" -> the outside
 * directory (absolute, or "../../outside"), then "top/l/secret". The write
 * must not go through the link: it is refused, or the link is replaced by a
 * real directory inside the target. Either way "outside" is untouched.
 */
static void test_extract_symlink_write_through(void **state)
{
	struct fx *fx = *state;
	const char *links[] = { fx->outside, "../../outside", "../../outside/keep", "/" };

	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		for (int dir_first = 0; dir_first < 2; dir_first++) {
			struct ent ents[] = {
				{ .path = "top", .type = AE_IFDIR, .perm = 0755 },
				{ .path = "top/l", .type = AE_IFLNK, .link = links[i] },
				{ .path = "top/l/sub", .type = AE_IFDIR, .perm = 0755 },
				{ .path = "top/l/secret", .data = "pwned" },
				{ .path = "top/l/keep", .data = "pwned" },
			};
			struct buf in = { 0 };
			struct res res;
			struct stat st;

			/* Without the directory entry, the file is the first thing through. */
			if (!dir_first)
				ents[2] = ents[3];
			tar_build(&in, ents, 5);
			extract(fx, &in, &res);
			assert_untouched(fx);
			assert_false(exists("/secret"));
			assert_false(exists("/sub"));
			if (res.r == 0) {
				assert_int_equal(lstat(at(fx, "dst/tgt/l"), &st), 0);
				assert_true(S_ISDIR(st.st_mode));
				assert_content(at(fx, "dst/tgt/l/secret"), "pwned");
			}
			assert_int_equal(rm_rf(fx->target), 0);
			buf_free(&in);
		}
	}
}

/* The stream's first entry is itself a symlink out, then an entry below it. */
static void test_extract_top_symlink_write_through(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;
	struct stat st;

	struct ent ents[] = {
		{ .path = "top", .type = AE_IFLNK, .link = fx->outside },
		{ .path = "top/secret", .data = "pwned" },
	};
	tar_build(&in, ents, 2);
	extract(fx, &in, &res);
	assert_untouched(fx);
	if (res.r == 0) {
		assert_int_equal(lstat(fx->target, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
	}
	buf_free(&in);
}

/* A symlink already at the target on the host is replaced, not written through. */
static void test_extract_existing_symlink_at_target(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;

	assert_int_equal(symlink(fx->outside, fx->target), 0);
	TAR(&in, { .path = "top", .type = AE_IFDIR, .perm = 0755 },
	    { .path = "top/secret", .data = "pwned" }, { .path = "top/keep", .data = "pwned" });
	extract(fx, &in, &res);
	assert_untouched(fx);
	if (res.r == 0) {
		assert_mode(fx->target, S_IFDIR, 0755);
		assert_content(at(fx, "dst/tgt/keep"), "pwned");
	}
	buf_free(&in);
}

/* Hard links, to a host file or within the tree, are refused and not made. */
static void test_extract_hardlink_refused(void **state)
{
	struct fx *fx = *state;
	const char *links[] = { "/etc/passwd", "top/a", "a", fx->outside };

	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		struct ent ents[] = {
			{ .path = "top", .type = AE_IFDIR, .perm = 0755 },
			{ .path = "top/a", .data = "a" },
			{ .path = "top/h", .hardlink = links[i] },
		};
		struct buf in = { 0 };
		struct res res;

		tar_build(&in, ents, 3);
		extract(fx, &in, &res);
		assert_refused(&res, "not a file, directory or symlink");
		assert_false(exists(at(fx, "dst/tgt/h")));
		assert_untouched(fx);
		assert_int_equal(rm_rf(fx->target), 0);
		buf_free(&in);
	}
}

/* A hand-made typeflag '1' as the very first entry, pointing at a host file. */
static void test_extract_raw_hardlink_first(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;
	char link[PATH_MAX];

	snprintf(link, sizeof(link), "%s/keep", fx->outside);
	raw_header(&in, NULL, "top", '1', 0, link);
	raw_end(&in);
	extract(fx, &in, &res);
	assert_refused(&res, "not a file, directory or symlink");
	assert_false(exists(fx->target));
	assert_untouched(fx);
	buf_free(&in);
}

/* Character and block devices and fifos are refused and not made. */
static void test_extract_special_refused(void **state)
{
	static const mode_t types[] = { AE_IFCHR, AE_IFBLK, AE_IFIFO };
	struct fx *fx = *state;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		for (int first = 0; first < 2; first++) {
			struct ent ents[] = {
				{ .path = "top", .type = AE_IFDIR, .perm = 0755 },
				{ .path = "top/x", .type = types[i], .perm = 0666 },
			};
			struct buf in = { 0 };
			struct res res;

			if (first)
				ents[0] = (struct ent){ .path = "top",
							.type = types[i],
							.perm = 0666 };
			tar_build(&in, ents, first ? 1 : 2);
			extract(fx, &in, &res);
			assert_refused(&res, "not a file, directory or symlink");
			assert_false(exists(at(fx, "dst/tgt/x")));
			if (first)
				assert_false(exists(fx->target));
			assert_untouched(fx);
			assert_int_equal(rm_rf(fx->target), 0);
			buf_free(&in);
		}
	}
}

/* Set-id bits are dropped from files and directories; the sticky bit stays. */
static void test_extract_setid_dropped(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;

	TAR(&in, { .path = "top", .type = AE_IFDIR, .perm = 06755 },
	    { .path = "top/suid", .perm = 04755, .data = "#!/bin/sh\n" },
	    { .path = "top/sgid", .perm = 02755, .data = "x" },
	    { .path = "top/both", .perm = 06777, .data = "x" },
	    { .path = "top/sticky", .type = AE_IFDIR, .perm = 01777 });
	extract(fx, &in, &res);
	assert_int_equal(res.r, 0);
	assert_mode(fx->target, S_IFDIR, 0755);
	assert_mode(at(fx, "dst/tgt/suid"), S_IFREG, 0755);
	assert_mode(at(fx, "dst/tgt/sgid"), S_IFREG, 0755);
	assert_mode(at(fx, "dst/tgt/both"), S_IFREG, 0777);
	assert_mode(at(fx, "dst/tgt/sticky"), S_IFDIR, 01777);
	buf_free(&in);
}

/* --- broken streams ------------------------------------------------------ */

/* A header whose data never comes, or half a header: an error, and the call returns. */
static void test_extract_truncated(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;
	char data[100];

	memset(data, 'd', sizeof(data));
	raw_header(&in, NULL, "top", '0', 4096, NULL);
	assert_int_equal(buf_append(&in, data, sizeof(data)), 0);
	extract(fx, &in, &res);
	assert_int_equal(res.r, -1);
	assert_untouched(fx);
	assert_int_equal(rm_rf(fx->target), 0);

	/* Cut in the middle of the second header. */
	buf_free(&in);
	TAR(&in, { .path = "top", .type = AE_IFDIR, .perm = 0755 },
	    { .path = "top/a", .data = "a" });
	in.len = in.off + BLOCK + 300;
	extract(fx, &in, &res);
	assert_int_equal(res.r, -1);
	assert_untouched(fx);
	assert_int_equal(rm_rf(fx->target), 0);

	/* A whole first member, and no end-of-archive blocks: libarchive takes that as the end. */
	buf_free(&in);
	TAR(&in, { .path = "top", .data = "abc" });
	in.len = in.off + 2 * BLOCK;
	extract(fx, &in, &res);
	assert_int_equal(res.r, 0);
	assert_content(fx->target, "abc");
	buf_free(&in);
}

/* Bytes that are not a tar at all. */
static void test_extract_garbage(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;
	uint32_t x = 2463534242u;

	for (int i = 0; i < 8192; i++) {
		uint8_t c;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		c = (uint8_t)x;
		assert_int_equal(buf_append(&in, &c, 1), 0);
	}
	extract(fx, &in, &res);
	assert_int_equal(res.r, -1);
	assert_int_equal(count_entries(fx->dst), 0);
	assert_untouched(fx);
	buf_free(&in);

	/* A header with a wrong checksum. */
	raw_header(&in, NULL, "top", '0', 0, NULL);
	buf_head(&in)[150] ^= 1;
	raw_end(&in);
	extract(fx, &in, &res);
	assert_int_equal(res.r, -1);
	assert_int_equal(count_entries(fx->dst), 0);
	buf_free(&in);
}

/* Only the end-of-archive blocks: no entry, so "the sandbox sent nothing", and nothing made. */
static void test_extract_no_entries(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;

	raw_end(&in);
	extract(fx, &in, &res);
	assert_refused(&res, "the sandbox sent nothing");
	assert_int_equal(count_entries(fx->dst), 0);
	assert_untouched(fx);
	buf_free(&in);
}

/*
 * A stream of no bytes at all (the guest's tool failed before writing
 * anything) says "the sandbox sent nothing", as a stream with no entries
 * does, not that the format is unknown.
 */
static void test_extract_empty_stream_is_nothing_sent(void **state)
{
	struct fx *fx = *state;
	struct res res;

	extract_to("", 0, fx->target, &res);
	assert_int_equal(res.r, -1);
	assert_int_equal(count_entries(fx->dst), 0);
	assert_untouched(fx);
	assert_refused(&res, "the sandbox sent nothing");
}

/*
 * After a refusal the rest of the stream is still read, so the guest's
 * writer is never cut off: a refused entry followed by a megabyte more.
 */
static void test_extract_refusal_reads_to_end(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;
	char *big = malloc((1 << 20) + 1);

	assert_non_null(big);
	memset(big, 'b', 1 << 20);
	big[1 << 20] = '\0';
	struct ent ents[] = {
		{ .path = "top", .type = AE_IFDIR, .perm = 0755 },
		{ .path = "other", .data = "x" },
		{ .path = "top/big", .data = big },
	};
	tar_build(&in, ents, 3);
	extract(fx, &in, &res); /* checks that the writer got everything out */
	assert_refused(&res, "outside the copied tree");
	assert_false(exists(at(fx, "dst/tgt/big")));
	free(big);
	buf_free(&in);
}

/* A target whose directory is missing: an error, the stream drained, the cwd kept. */
static void test_extract_missing_parent(void **state)
{
	struct fx *fx = *state;
	struct buf in = { 0 };
	struct res res;

	TAR(&in, { .path = "top", .data = "x" });
	extract_to(buf_head(&in), buf_size(&in), at(fx, "missing/tgt"), &res);
	assert_int_equal(res.r, -1);
	assert_false(exists(at(fx, "missing")));
	assert_untouched(fx);
	buf_free(&in);
}

/* --- sbx_cp_target() ------------------------------------------------------ */

static void expect_target(const char *dest, const char *top, const char *want)
{
	struct msb_err *err = NULL;
	char *got = sbx_cp_target(dest, top, &err);

	if (!got)
		fail_msg("sbx_cp_target(%s, %s): %s", dest, top, err ? err->msg : "?");
	assert_null(err);
	assert_string_equal(got, want);
	free(got);
}

static void expect_no_target(const char *dest, const char *top)
{
	struct msb_err *err = NULL;
	char *got = sbx_cp_target(dest, top, &err);

	assert_null(got);
	assert_non_null(err);
	assert_true(err->msg && err->msg[0]);
	msb_err_free(err);
}

/*
 * Docker's rule: into an existing directory (resolved), else the path itself
 * when its parent exists; a missing parent, or a missing "dir/", is an error.
 */
static void test_target(void **state)
{
	struct fx *fx = *state;
	char want[PATH_MAX * 2], real[PATH_MAX];

	assert_non_null(realpath(fx->root, real));
	snprintf(want, sizeof(want), "%s/dst/top", real);
	expect_target(fx->dst, "top", want);
	expect_target(at(fx, "dst/"), "top", want);
	expect_target(at(fx, "outside/../dst"), "top", want);

	/* Through a symlink to a directory: into the directory it names. */
	assert_int_equal(symlink(fx->dst, at(fx, "link")), 0);
	expect_target(at(fx, "link"), "top", want);

	/* A new name in an existing directory, or an existing file: that path. */
	snprintf(want, sizeof(want), "%s/dst/new", real);
	expect_target(at(fx, "dst/new"), "top", want);
	snprintf(want, sizeof(want), "%s/outside/keep", real);
	expect_target(at(fx, "outside/keep"), "top", want);

	expect_no_target(at(fx, "missing/dir/x"), "top");
	expect_no_target(at(fx, "dst/x/"), "top");
	expect_no_target(at(fx, "outside/keep/"), "top");

	/* A parent that is a file is refused here, before any guest work starts. */
	expect_no_target(at(fx, "outside/keep/x"), "top");

	expect_target("/", "top", "/top");

	/* Relative destinations resolve against the working directory. */
	assert_int_equal(chdir(fx->dst), 0);
	snprintf(want, sizeof(want), "%s/dst/rel", real);
	expect_target("rel", "top", want);
	snprintf(want, sizeof(want), "%s/dst/top", real);
	expect_target(".", "top", want);
	assert_int_equal(chdir(fx->cwd), 0);
}

/* --- round trip through sbx_cp_archive() ------------------------------------ */

struct archiver {
	const char *src;
	int fd, r;
	uint64_t nbytes;
	char msg[512];
};

static void *archive_thread(void *arg)
{
	struct archiver *a = arg;
	struct msb_err *err = NULL;

	a->r = sbx_cp_archive(a->src, a->fd, &a->nbytes, &err);
	if (err)
		snprintf(a->msg, sizeof(a->msg), "%s", err->msg);
	msb_err_free(err);
	close(a->fd);
	return NULL;
}

/* sbx_cp_archive(@src) piped straight into sbx_cp_extract() at @target. */
static void round_trip(const char *src, const char *target, uint64_t *sent, uint64_t *got)
{
	struct archiver a = { .src = src };
	struct msb_err *err = NULL;
	char before[PATH_MAX], after[PATH_MAX];
	pthread_t t;
	int fds[2], r;

	assert_non_null(getcwd(before, sizeof(before)));
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	a.fd = fds[1];
	assert_int_equal(pthread_create(&t, NULL, archive_thread, &a), 0);
	r = sbx_cp_extract(fds[0], target, got, &err);
	close(fds[0]);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (a.r)
		fail_msg("sbx_cp_archive: %s", a.msg);
	if (r)
		fail_msg("sbx_cp_extract: %s", err ? err->msg : "?");
	assert_null(err);
	assert_non_null(getcwd(after, sizeof(after)));
	assert_string_equal(before, after);
	*sent = a.nbytes;
}

/*
 * A host tree archived and extracted elsewhere comes back the same: contents
 * (one past a pipe's worth), modes, symlinks, empty files; fifos are not sent.
 */
static void test_round_trip(void **state)
{
	struct fx *fx = *state;
	uint64_t sent = 0, got = 0;
	char *big = malloc(200001);
	struct stat st;

	assert_non_null(big);
	for (int i = 0; i < 200000; i++)
		big[i] = (char)('a' + i % 26);
	big[200000] = '\0';
	assert_int_equal(mkdir(at(fx, "src"), 0755), 0);
	assert_int_equal(mkdir(at(fx, "src/tree"), 0750), 0);
	write_text(at(fx, "src/tree/a"), "alpha\n", 0640);
	write_text(at(fx, "src/tree/x"), "#!/bin/sh\n", 0755);
	write_text(at(fx, "src/tree/empty"), "", 0600);
	assert_int_equal(symlink("a", at(fx, "src/tree/l")), 0);
	assert_int_equal(symlink("/nowhere", at(fx, "src/tree/dangling")), 0);
	assert_int_equal(mkdir(at(fx, "src/tree/sub"), 0700), 0);
	write_text(at(fx, "src/tree/sub/big"), big, 0644);
	assert_int_equal(mkfifo(at(fx, "src/tree/sub/fifo"), 0644), 0);

	round_trip(at(fx, "src/tree"), at(fx, "dst/copy"), &sent, &got);
	assert_int_equal(sent, 6 + 10 + 200000);
	assert_int_equal(got, sent);
	assert_mode(at(fx, "dst/copy"), S_IFDIR, 0750);
	assert_mode(at(fx, "dst/copy/a"), S_IFREG, 0640);
	assert_content(at(fx, "dst/copy/a"), "alpha\n");
	assert_mode(at(fx, "dst/copy/x"), S_IFREG, 0755);
	assert_content(at(fx, "dst/copy/x"), "#!/bin/sh\n");
	assert_mode(at(fx, "dst/copy/empty"), S_IFREG, 0600);
	assert_content(at(fx, "dst/copy/empty"), "");
	assert_symlink(at(fx, "dst/copy/l"), "a");
	assert_symlink(at(fx, "dst/copy/dangling"), "/nowhere");
	assert_mode(at(fx, "dst/copy/sub"), S_IFDIR, 0700);
	assert_content(at(fx, "dst/copy/sub/big"), big);
	assert_false(exists(at(fx, "dst/copy/sub/fifo")));
	assert_int_equal(count_entries(at(fx, "dst/copy")), 6);
	assert_int_equal(count_entries(at(fx, "dst/copy/sub")), 1);
	assert_int_equal(lstat(at(fx, "src/tree/a"), &st), 0);
	{
		struct stat cp;

		assert_int_equal(lstat(at(fx, "dst/copy/a"), &cp), 0);
		assert_int_equal(cp.st_mtime, st.st_mtime);
	}

	/* A single file under a new name; a trailing '/' on a directory is fine. */
	round_trip(at(fx, "src/tree/a"), at(fx, "dst/renamed"), &sent, &got);
	assert_int_equal(sent, 6);
	assert_int_equal(got, 6);
	assert_mode(at(fx, "dst/renamed"), S_IFREG, 0640);
	assert_content(at(fx, "dst/renamed"), "alpha\n");
	round_trip(at(fx, "src/tree/sub/"), at(fx, "dst/sub2"), &sent, &got);
	assert_content(at(fx, "dst/sub2/big"), big);
	assert_untouched(fx);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_extract_good_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_single_file_and_dot_slash, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_extract_pax_long_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_outside_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_dotdot_and_absolute, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_dotdot_in_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_symlink_write_through, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_extract_top_symlink_write_through, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_extract_existing_symlink_at_target, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_extract_hardlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_raw_hardlink_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_special_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_setid_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_no_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_empty_stream_is_nothing_sent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_extract_refusal_reads_to_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extract_missing_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	};

	/* A writer cut off must show as a short write, not kill the suite. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
