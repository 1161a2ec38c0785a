// SPDX-License-Identifier: Apache-2.0
/* Unit tests for disk image headers (the names they make QEMU open) and the vetting of chains. */
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

#include "sandbox/diskchain.h"
#include "sandbox/diskimg.h"
#include "util/err.h"
#include "util/fs.h"

static char dir[64];

struct mem {
	const uint8_t *p;
	size_t n;
};

static ssize_t mem_pread(void *ctx, void *buf, size_t n, uint64_t off)
{
	const struct mem *m = ctx;

	if (off >= m->n)
		return 0;
	if (n > m->n - off)
		n = m->n - (size_t)off;
	memcpy(buf, m->p + off, n);
	return (ssize_t)n;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

/*
 * A qcow2 v3 header (64 KiB clusters, 1 MiB) with, when given, a backing
 * format and data file extension and a backing name at 0x400.
 */
static size_t qcow2(uint8_t *b, size_t cap, const char *backing, const char *fmt,
		    const char *data_file)
{
	size_t off = 112;

	memset(b, 0, cap);
	memcpy(b, "QFI\xfb", 4);
	put_be32(b + 4, 3);
	put_be32(b + 20, 16);
	put_be64(b + 24, 1 << 20);
	put_be32(b + 100, 112);
	if (fmt) {
		put_be32(b + off, 0xe2792aca);
		put_be32(b + off + 4, (uint32_t)strlen(fmt));
		memcpy(b + off + 8, fmt, strlen(fmt));
		off += 8 + ((strlen(fmt) + 7) & ~(size_t)7);
	}
	if (data_file) {
		put_be64(b + 72, 1 << 2);
		put_be32(b + off, 0x44415441);
		put_be32(b + off + 4, (uint32_t)strlen(data_file));
		memcpy(b + off + 8, data_file, strlen(data_file));
	}
	if (backing) {
		put_be64(b + 8, 0x400);
		put_be32(b + 16, (uint32_t)strlen(backing));
		memcpy(b + 0x400, backing, strlen(backing));
	}
	return 0x800;
}

static int parse(const uint8_t *b, size_t n, enum dimg_format f, struct dimg_info *i)
{
	struct mem m = { b, n };
	struct dimg_reader rd = { .pread = mem_pread, .ctx = &m, .size = n };

	return dimg_parse(&rd, f, i);
}

static void test_qcow2_header(void **state)
{
	static uint8_t b[4096];
	static struct dimg_info i;
	size_t n;

	(void)state;
	n = qcow2(b, sizeof(b), NULL, NULL, NULL);
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), 0);
	assert_false(i.has_backing);
	assert_false(i.has_data_file);
	assert_int_equal(i.size, 1 << 20);

	n = qcow2(b, sizeof(b), "../base.raw", "raw", "data.bin");
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), 0);
	assert_true(i.has_backing);
	assert_string_equal(i.backing, "../base.raw");
	assert_string_equal(i.backing_format, "raw");
	assert_true(i.has_data_file);
	assert_string_equal(i.data_file, "data.bin");

	/* A name beyond the cluster, too long, or with a NUL inside: refused. */
	n = qcow2(b, sizeof(b), "x", NULL, NULL);
	put_be64(b + 8, 1 << 16);
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), -EINVAL);
	n = qcow2(b, sizeof(b), "x", NULL, NULL);
	put_be32(b + 16, 1024);
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), -EINVAL);
	n = qcow2(b, sizeof(b), "ab", NULL, NULL);
	b[0x401] = '\0';
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), -EINVAL);
	/* An extension longer than the space before the backing name. */
	n = qcow2(b, sizeof(b), "x", "raw", NULL);
	put_be32(b + 116, 0x1000);
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), -EINVAL);
	/* The data file bit without a name: QEMU would want an option msb never gives. */
	n = qcow2(b, sizeof(b), NULL, NULL, NULL);
	put_be64(b + 72, 1 << 2);
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), -EINVAL);
	/* Version 1 (qcow), 4, encryption, a bad cluster size. */
	n = qcow2(b, sizeof(b), NULL, NULL, NULL);
	put_be32(b + 4, 4);
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), -ENOTSUP);
	put_be32(b + 4, 3);
	put_be32(b + 32, 1);
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), -ENOTSUP);
	put_be32(b + 32, 0);
	put_be32(b + 20, 30);
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), -EINVAL);
	/* A truncated file reads as zeros past its end: the name has a NUL in it then. */
	n = qcow2(b, sizeof(b), "base", NULL, NULL);
	assert_int_equal(parse(b, 0x402, DIMG_QCOW2, &i), -EINVAL);
	assert_int_equal(parse(b, n, DIMG_QCOW2, &i), 0);
}

static void test_vmdk_descriptor(void **state)
{
	static struct dimg_info i;
	static uint8_t b[16384];
	const char *d = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
			"RW 2048 FLAT \"flat.raw\" 0\nRDONLY 10 SPARSE \"/abs/x.vmdk\"\n"
			"RW 5 ZERO\nparentFileNameHint=\"parent.vmdk\"\n";
	enum dimg_format f;
	struct mem m = { (const uint8_t *)d, strlen(d) };
	struct dimg_reader rd = { .pread = mem_pread, .ctx = &m, .size = strlen(d) };

	(void)state;
	assert_int_equal(dimg_detect(&rd, &f), 0);
	assert_int_equal(f, DIMG_VMDK);
	assert_int_equal(parse((const uint8_t *)d, strlen(d), DIMG_VMDK, &i), 0);
	assert_int_equal(i.nextents, 2);
	assert_string_equal(i.extents[0], "flat.raw");
	assert_string_equal(i.extents[1], "/abs/x.vmdk");
	assert_true(i.has_backing);
	assert_string_equal(i.backing, "parent.vmdk");
	assert_int_equal(i.size, (uint64_t)(2048 + 10) << 9);

	/* A sparse header with capacity 0 reads its embedded descriptor's extents. */
	memset(b, 0, sizeof(b));
	memcpy(b, "KDMV", 4);
	b[28] = 1; /* descriptor at sector 1 */
	memcpy(b + 512, d, strlen(d));
	assert_int_equal(parse(b, sizeof(b), DIMG_VMDK, &i), 0);
	assert_int_equal(i.nextents, 2);
	assert_string_equal(i.backing, "parent.vmdk");
	/* With a capacity, QEMU ignores the extents but still reads the parent. */
	b[12] = 8;
	assert_int_equal(parse(b, sizeof(b), DIMG_VMDK, &i), 0);
	assert_int_equal(i.nextents, 0);
	assert_true(i.has_backing);
	assert_int_equal(i.size, 8 << 9);
	/* A parent hint without its closing quote. */
	memset(b + 512, 0, 4096);
	memcpy(b + 512, "parentFileNameHint=\"x", 21);
	assert_int_equal(parse(b, sizeof(b), DIMG_VMDK, &i), -EINVAL);
}

static void test_detect(void **state)
{
	static uint8_t b[4096];
	struct mem m = { b, sizeof(b) };
	struct dimg_reader rd = { .pread = mem_pread, .ctx = &m, .size = sizeof(b) };
	enum dimg_format f;

	(void)state;
	qcow2(b, sizeof(b), NULL, NULL, NULL);
	assert_int_equal(dimg_detect(&rd, &f), 0);
	assert_int_equal(f, DIMG_QCOW2);
	put_be32(b + 4, 1);
	assert_int_equal(dimg_detect(&rd, &f), -ENOTSUP);
	memset(b, 0, sizeof(b));
	assert_int_equal(dimg_detect(&rd, &f), 0);
	assert_int_equal(f, DIMG_RAW);
}

/* --- chains on real files ------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/msb-test-disk.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return rm_rf(dir);
}

static void write_at(const char *name, const void *p, size_t n)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static void write_qcow2(const char *name, const char *backing, const char *fmt)
{
	static uint8_t b[4096];
	size_t n = qcow2(b, sizeof(b), backing, fmt, NULL);

	write_at(name, b, n);
}

/* Vets @name; Return: 0, or -1 with the error's message in @msg. */
static int vet(const char *name, char *const *allow, struct dchain *c, char *msg, size_t cap)
{
	char path[256];
	struct msb_err *err = NULL;
	int r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	r = dchain_open(path, DIMG_QCOW2, allow, c, &err);
	msg[0] = '\0';
	if (err)
		snprintf(msg, cap, "%s", err->msg);
	msb_err_free(err);
	return r;
}

static void expect_refused(const char *name, const char *what)
{
	struct dchain c;
	char msg[1024];

	assert_int_equal(vet(name, NULL, &c, msg, sizeof(msg)), -1);
	if (!strstr(msg, what))
		fail_msg("%s: \"%s\" does not say \"%s\"", name, msg, what);
	assert_null(strchr(msg, '\n'));
	assert_int_equal(c.n, 0);
}

static void test_chain(void **state)
{
	char sub[256], msg[1024], path[512], *allow[2] = { NULL, NULL };
	struct dchain c;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/img", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	write_at("outside.raw", "secret", 6);
	write_at("img/base.raw", "base", 4);
	write_qcow2("img/mid.qcow2", "base.raw", "raw");
	write_qcow2("img/top.qcow2", "mid.qcow2", NULL);
	assert_int_equal(symlink("base.raw", strcat(strcpy(path, sub), "/inside-link")), 0);
	assert_int_equal(symlink("../outside.raw", strcat(strcpy(path, sub), "/out-link")), 0);

	/* base.raw <- mid.qcow2 <- top.qcow2, all beside each other. */
	assert_int_equal(vet("img/top.qcow2", NULL, &c, msg, sizeof(msg)), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.node[1].format, DIMG_QCOW2);
	assert_int_equal(c.node[2].format, DIMG_RAW);
	assert_non_null(strstr(c.node[2].path, "/img/base.raw"));
	assert_int_equal(c.size, 1 << 20);
	dchain_free(&c);
	/* A symlink that stays inside is fine. */
	write_qcow2("img/via-link.qcow2", "inside-link", "raw");
	assert_int_equal(vet("img/via-link.qcow2", NULL, &c, msg, sizeof(msg)), 0);
	dchain_free(&c);

	snprintf(path, sizeof(path), "%s/outside.raw", dir);
	write_qcow2("img/abs.qcow2", path, "raw");
	expect_refused("img/abs.qcow2", "is outside the image's directory");
	expect_refused("img/abs.qcow2", "add --allow-backing /");
	write_qcow2("img/rel.qcow2", "../outside.raw", "raw");
	expect_refused("img/rel.qcow2", "backing file \"../outside.raw\" is outside");
	write_qcow2("img/link.qcow2", "out-link", "raw");
	expect_refused("img/link.qcow2", "backing file \"out-link\" is outside");
	write_qcow2("img/json.qcow2", "json:{\"driver\":\"raw\"}", "raw");
	expect_refused("img/json.qcow2", "is not a file name");
	write_qcow2("img/nbd.qcow2", "nbd:127.0.0.1:1", "raw");
	expect_refused("img/nbd.qcow2", "is not a file name");
	write_qcow2("img/dir.qcow2", ".", "raw");
	expect_refused("img/dir.qcow2", "is not a regular file");
	write_qcow2("img/fmt.qcow2", "base.raw", "nbd");
	expect_refused("img/fmt.qcow2", "backing format \"nbd\" is not one msb opens");
	write_qcow2("img/loop.qcow2", "loop.qcow2", "qcow2");
	expect_refused("img/loop.qcow2", "more than 16 backing files");
	write_qcow2("img/ctl.qcow2", "\x1b[2Jx", "raw");
	expect_refused("img/ctl.qcow2", "\"?[2Jx\"");

	/* --allow-backing admits exactly the file named. */
	allow[0] = realpath(path, NULL);
	assert_int_equal(vet("img/rel.qcow2", allow, &c, msg, sizeof(msg)), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.node[1].path, allow[0]);
	dchain_free(&c);
	assert_int_equal(vet("img/link.qcow2", allow, &c, msg, sizeof(msg)), 0);
	dchain_free(&c);
	free(allow[0]);
}

static void test_chain_vmdk_extents(void **state)
{
	const char *in = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
			 "RW 2048 FLAT \"flat.raw\" 0\n";
	const char *out = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
			  "RW 2048 FLAT \"../outside.raw\" 0\n";
	static uint8_t b[8192];
	char sub[256], msg[1024], path[512];
	struct msb_err *err = NULL;
	struct dchain c;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/img", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	write_at("outside.raw", "secret", 6);
	write_at("img/flat.raw", "flat", 4);
	memcpy(b, "KDMV", 4);
	b[28] = 1;
	memcpy(b + 512, in, strlen(in));
	write_at("img/in.vmdk", b, sizeof(b));
	memset(b + 512, 0, 1024);
	memcpy(b + 512, out, strlen(out));
	write_at("img/out.vmdk", b, sizeof(b));

	snprintf(path, sizeof(path), "%s/in.vmdk", sub);
	assert_int_equal(dchain_open(path, DIMG_VMDK, NULL, &c, &err), 0);
	assert_non_null(c.node[0].extra[0]);
	assert_non_null(strstr(c.node[0].extra[0], "/img/flat.raw"));
	assert_null(c.node[0].extra[1]);
	dchain_free(&c);
	snprintf(path, sizeof(path), "%s/out.vmdk", sub);
	assert_int_equal(dchain_open(path, DIMG_VMDK, NULL, &c, &err), -1);
	assert_non_null(strstr(err->msg, "extent \"../outside.raw\" is outside"));
	msb_err_free(err);
	(void)msg;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qcow2_header),
		cmocka_unit_test(test_vmdk_descriptor),
		cmocka_unit_test(test_detect),
		cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_vmdk_extents, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
