// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for layer conversion: any blob in, a safe pax tar (or an error) out. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "fuzz.h"
#include "image/digest.h"
#include "image/layer.h"

#define BLOCK 512
/* Output beyond this is refused by the sink: sparse holes expand (up to LAYER_SPARSE_FREE and
 * more). */
#define OUT_CAP (16u << 20)

/* --- the sink: a bounded in-memory file -------------------------------- */

struct sink {
	uint8_t *p;
	size_t n, cap;
};

static ssize_t sink_write(void *cookie, const char *p, size_t n)
{
	struct sink *s = cookie;

	if (n > OUT_CAP - s->n) {
		errno = EFBIG;
		return -1;
	}
	if (s->n + n > s->cap) {
		size_t cap = s->cap ? s->cap : 65536;
		uint8_t *q;

		while (cap < s->n + n)
			cap *= 2;
		q = realloc(s->p, cap);
		if (!q) {
			errno = ENOMEM;
			return -1;
		}
		s->p = q;
		s->cap = cap;
	}
	memcpy(s->p + s->n, p, n);
	s->n += n;
	return (ssize_t)n;
}

/* --- an independent reader for what tarw writes ------------------------ */

static uint64_t octal(const uint8_t *f, size_t len)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < len && f[i] >= '0' && f[i] <= '7')
		v = v * 8 + (uint64_t)(f[i++] - '0');
	CHECK(i == len - 1 && f[i] == '\0');
	return v;
}

static bool bad_path(const char *p, size_t n, bool whiteouts)
{
	size_t i = 0;

	if (n && p[0] == '/')
		return true;
	while (i < n) {
		size_t k = i;

		while (k < n && p[k] != '/')
			k++;
		if (k - i == 2 && p[i] == '.' && p[i + 1] == '.')
			return true;
		if (whiteouts && k - i >= 4 && !memcmp(p + i, ".wh.", 4))
			return true;
		i = k + 1;
	}
	return false;
}

struct member {
	char type;
	char path[4096 + 2], link[4096 + 2];
	size_t plen, llen;
	bool has_path, has_link, has_size;
	uint64_t size;
	int overlay;   /* SCHILY.xattr.trusted.overlay.* records */
	bool opaque_y; /* ... of which trusted.overlay.opaque=y */
};

static int cmp_member(const void *a, const void *b)
{
	const struct member *x = a, *y = b;

	return x->plen != y->plen ? (x->plen < y->plen ? -1 : 1)
				  : memcmp(x->path, y->path, x->plen);
}

/* Checks one pax block (exact record lengths) and notes what it overrides. */
static void pax_block(const uint8_t *p, size_t n, struct member *m)
{
	size_t off = 0;

	while (off < n) {
		size_t len = 0, k = off, klen, vlen;
		const uint8_t *key, *eq, *val;

		while (k < n && p[k] >= '0' && p[k] <= '9' && len < (1u << 30))
			len = len * 10 + (size_t)(p[k++] - '0');
		CHECK(k > off && k < n && p[k] == ' ');
		CHECK(len > k - off + 1 && len <= n - off && p[off + len - 1] == '\n');
		key = p + k + 1;
		eq = memchr(key, '=', (size_t)(p + off + len - key));
		CHECK(eq);
		klen = (size_t)(eq - key);
		val = eq + 1;
		vlen = (size_t)(p + off + len - 1 - val);
		if (klen == 4 && !memcmp(key, "path", 4)) {
			CHECK(vlen < sizeof(m->path));
			memcpy(m->path, val, vlen);
			m->plen = vlen;
			m->has_path = true;
		} else if (klen == 8 && !memcmp(key, "linkpath", 8)) {
			CHECK(vlen < sizeof(m->link));
			memcpy(m->link, val, vlen);
			m->llen = vlen;
			m->has_link = true;
		} else if (klen == 4 && !memcmp(key, "size", 4)) {
			m->size = strtoull((const char *)val, NULL, 10);
			m->has_size = true;
		} else if (klen > 29 && !memcmp(key, "SCHILY.xattr.trusted.overlay.", 29)) {
			m->overlay++;
			m->opaque_y = klen == 35 &&
				      !memcmp(key, "SCHILY.xattr.trusted.overlay.opaque", 35) &&
				      vlen == 1 && val[0] == 'y';
		}
		off += len;
	}
}

static void check_sum(const uint8_t *h)
{
	unsigned sum = 0;

	for (int i = 0; i < BLOCK; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	CHECK(octal(h + 148, 7) == sum);
	CHECK(!memcmp(h + 257,
		      "ustar\0"
		      "00",
		      8));
}

/*
 * Walks the tar byte by byte: ustar headers with valid checksums, pax blocks
 * with exact record lengths, and member names that stay inside the root.
 */
static void check_tar_bytes(const uint8_t *p, size_t n)
{
	static const uint8_t zero[2 * BLOCK];
	struct member *dirs = NULL, *m = malloc(sizeof(*m));
	size_t off = 0, ndirs = 0;
	bool seen_dir = false;

	CHECK(m);
	CHECK(n % BLOCK == 0 && n >= 2 * BLOCK);
	CHECK(!memcmp(p + n - 2 * BLOCK, zero, 2 * BLOCK));
	for (;;) {
		const uint8_t *h;
		uint64_t size;

		memset(m, 0, sizeof(*m));
		CHECK(off + BLOCK <= n);
		h = p + off;
		if (!memcmp(h, zero, BLOCK)) {
			/* The end marker, and nothing after it. */
			CHECK(off == n - 2 * BLOCK);
			break;
		}
		check_sum(h);
		if (h[156] == 'x') {
			size = octal(h + 124, 12);
			CHECK(size > 0 && size <= n - off - BLOCK);
			pax_block(h + BLOCK, (size_t)size, m);
			off += BLOCK + (size + BLOCK - 1) / BLOCK * BLOCK;
			CHECK(off + BLOCK <= n);
			h = p + off;
			check_sum(h);
		}
		CHECK(h[156] && strchr("0123456", h[156]));
		m->type = (char)h[156];
		if (!m->has_path) {
			m->plen = strnlen((const char *)h, 100);
			memcpy(m->path, h, m->plen);
		}
		if (!m->has_link) {
			m->llen = strnlen((const char *)h + 157, 100);
			memcpy(m->link, h + 157, m->llen);
		}
		/* ustar spellings of a directory and of the root. */
		if (m->type == '5' && m->plen && m->path[m->plen - 1] == '/')
			m->plen--;
		if ((m->plen == 1 && m->path[0] == '.') ||
		    (m->plen == 2 && !memcmp(m->path, "./", 2)))
			m->plen = 0;
		/* only a directory may stand for the root */
		CHECK(m->plen || m->type == '5');
		CHECK(!bad_path(m->path, m->plen, true));
		CHECK(!memmem(m->path, m->plen, "//", 2));
		if (m->type == '1')
			CHECK(m->llen && !bad_path(m->link, m->llen, false));
		if (m->type == '2')
			CHECK(m->llen);
		/* Only whiteout conversion sets overlayfs xattrs: opaque=y, on directories. */
		CHECK(m->overlay == 0 || (m->overlay == 1 && m->opaque_y && m->type == '5'));
		/* Directories are held back to the end of the layer. */
		if (m->type == '5')
			seen_dir = true;
		else
			CHECK(!seen_dir);
		size = m->type != '0' ? 0 : m->has_size ? m->size : octal(h + 124, 12);
		CHECK(size <= n - off - BLOCK);
		off += BLOCK + (size + BLOCK - 1) / BLOCK * BLOCK;
		if (m->type == '5') {
			struct member *nd = realloc(dirs, (ndirs + 1) * sizeof(*nd));

			CHECK(nd);
			dirs = nd;
			dirs[ndirs++] = *m;
		}
	}
	/* Each directory once. */
	if (ndirs > 1) {
		qsort(dirs, ndirs, sizeof(*dirs), cmp_member);
		for (size_t i = 1; i < ndirs; i++)
			CHECK(cmp_member(&dirs[i - 1], &dirs[i]) != 0);
	}
	free(dirs);
	free(m);
}

/* libarchive must read the whole output too. */
static void check_tar_libarchive(const uint8_t *p, size_t n)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	int r;

	CHECK(a);
	archive_read_support_format_tar(a);
	CHECK(archive_read_open_memory(a, p, n) == ARCHIVE_OK);
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		const char *path = archive_entry_pathname(ae);

		if (path)
			CHECK(!bad_path(path, strlen(path), true));
		CHECK(archive_entry_uid(ae) >= 0 && archive_entry_uid(ae) <= UINT32_MAX);
		CHECK(archive_entry_gid(ae) >= 0 && archive_entry_gid(ae) <= UINT32_MAX);
	}
	CHECK(r == ARCHIVE_EOF);
	archive_read_free(a);
}

/* sha256 of the blob once decompressed, computed apart from layer.c. */
static bool raw_digest(const uint8_t *data, size_t size, char out[DIGEST_LEN])
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
	unsigned len = 0;
	bool ok = false;
	la_ssize_t n;

	if (!a || !ctx)
		goto out;
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_memory(a, data, size) != ARCHIVE_OK ||
	    archive_read_next_header(a, &ae) != ARCHIVE_OK)
		goto out;
	CHECK(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
	while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
		CHECK(EVP_DigestUpdate(ctx, buf, (size_t)n) == 1);
	if (n < 0)
		goto out;
	CHECK(EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 32);
	strcpy(out, "sha256:");
	for (unsigned i = 0; i < len; i++)
		sprintf(out + 7 + 2 * i, "%02x", md[i]);
	ok = true;
out:
	EVP_MD_CTX_free(ctx);
	if (a)
		archive_read_free(a);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const cookie_io_functions_t io = { .write = sink_write };
	struct sink s = { 0 };
	struct msb_err *err = NULL;
	char diff[DIGEST_LEN] = "", want[DIGEST_LEN];
	FILE *in, *out;
	int r;

	if (size == 0)
		return 0;
	in = fmemopen((void *)data, size, "rb");
	out = fopencookie(&s, "w", io);
	CHECK(in && out);
	r = layer_transform(in, out, diff, &err);
	fclose(in);
	if (fclose(out) != 0)
		CHECK(r < 0);

	if (r == 0) {
		CHECK(!err);
		check_tar_bytes(s.p, s.n);
		check_tar_libarchive(s.p, s.n);
		/* The diff_id is of the decompressed blob, all of it. */
		CHECK(raw_digest(data, size, want));
		CHECK(!strcmp(diff, want));
	} else {
		CHECK(r == -1 && err && err->msg && err->msg[0]);
		CHECK(diff[0] == '\0');
		check_printable(err->msg);
		msb_err_free(err);
	}
	free(s.p);
	return 0;
}
