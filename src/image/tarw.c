// SPDX-License-Identifier: Apache-2.0
/* pax tar writer: ustar headers, with a pax extended header for anything that does not fit. */
#include "image/tarw.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define BLOCK ((size_t)512)

/* Writes @v as NUL-terminated octal in @len bytes. Return: false if it does not fit. */
static bool octal(char *dst, size_t len, uint64_t v)
{
	dst[len - 1] = '\0';
	for (size_t i = len - 1; i-- > 0;) {
		dst[i] = (char)('0' + (v & 7));
		v >>= 3;
	}
	return v == 0;
}

/* Appends one "LEN key=value\n" record; LEN counts the whole record. */
static int pax_record(struct buf *b, const char *key, const void *val, size_t vlen)
{
	size_t base = strlen(key) + vlen + 3, len = base, digits;
	char head[32];
	int n;

	/* The length field includes its own digits. */
	do {
		digits = (size_t)snprintf(NULL, 0, "%zu", len);
		len = base + digits;
	} while ((size_t)snprintf(NULL, 0, "%zu", len) != digits);
	n = snprintf(head, sizeof(head), "%zu ", len);
	if (n < 0 || (size_t)n >= sizeof(head) || buf_append(b, head, (size_t)n) < 0 ||
	    buf_append(b, key, strlen(key)) < 0 || buf_append(b, "=", 1) < 0 ||
	    buf_append(b, val, vlen) < 0 || buf_append(b, "\n", 1) < 0)
		return -ENOMEM;
	return 0;
}

static void checksum(char *h)
{
	unsigned sum = 0;

	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < BLOCK; i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum);
	h[155] = ' ';
}

static int block_header(struct buf *out, const char *name, char type, uint32_t mode, uint64_t uid,
			uint64_t gid, uint64_t size, uint64_t mtime, const char *link, uint32_t maj,
			uint32_t min)
{
	char *h = (char *)buf_tail(out, BLOCK);

	if (!h)
		return -ENOMEM;
	memset(h, 0, BLOCK);
	snprintf(h, 100, "%s", name);
	octal(h + 100, 8, mode & 07777);
	octal(h + 108, 8, uid);
	octal(h + 116, 8, gid);
	octal(h + 124, 12, size);
	octal(h + 136, 12, mtime);
	h[156] = type;
	/* A long target is in the pax header; its start goes here too, as GNU tar does. */
	if (link)
		snprintf(h + 157, 100, "%s", link);
	/* magic "ustar\0" then version "00": fixed-width fields, not strings */
	// NOLINTNEXTLINE(bugprone-not-null-terminated-result)
	memcpy(h + 257, "ustar", 6);
	// NOLINTNEXTLINE(bugprone-not-null-terminated-result)
	memcpy(h + 263, "00", 2);
	octal(h + 329, 8, maj);
	octal(h + 337, 8, min);
	checksum(h);
	buf_commit(out, BLOCK);
	return 0;
}

int tarw_pad(struct buf *out, uint64_t size)
{
	size_t pad = (BLOCK - size % BLOCK) % BLOCK;
	uint8_t *p;

	if (!pad)
		return 0;
	p = buf_tail(out, pad);
	if (!p)
		return -ENOMEM;
	memset(p, 0, pad);
	buf_commit(out, pad);
	return 0;
}

int tarw_header(struct buf *out, const struct tar_entry *e)
{
	struct buf pax = { 0 };
	char name[256], num[32];
	size_t plen = strlen(e->path), llen = e->link ? strlen(e->link) : 0;
	bool dir = e->type == '5';
	uint64_t mtime = e->mtime < 0 ? 0 : (uint64_t)e->mtime;
	int r = 0;

	if (!e->type || !strchr("0123456", e->type) || plen > 4095 || llen > 4095)
		return -EINVAL;
	if (plen == 0)
		snprintf(name, sizeof(name), "./");
	else
		snprintf(name, sizeof(name), "%.*s%s", 99 - (dir ? 1 : 0), e->path, dir ? "/" : "");
	/* Anything ustar cannot hold exactly goes into the pax header. */
	if (plen + (dir ? 1 : 0) > 99)
		r = pax_record(&pax, "path", e->path, plen);
	if (!r && llen > 99)
		r = pax_record(&pax, "linkpath", e->link, llen);
	if (!r && e->size > 077777777777ull) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)e->size);
		r = pax_record(&pax, "size", num, strlen(num));
	}
	if (!r && e->uid > 07777777) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)e->uid);
		r = pax_record(&pax, "uid", num, strlen(num));
	}
	if (!r && e->gid > 07777777) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)e->gid);
		r = pax_record(&pax, "gid", num, strlen(num));
	}
	if (!r && mtime > 077777777777ull) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)mtime);
		r = pax_record(&pax, "mtime", num, strlen(num));
	}
	for (size_t i = 0; !r && i < e->nxattrs; i++) {
		char key[300];

		if (snprintf(key, sizeof(key), "SCHILY.xattr.%s", e->xattrs[i].name) >=
		    (int)sizeof(key))
			r = -EINVAL;
		else
			r = pax_record(&pax, key, e->xattrs[i].value, e->xattrs[i].len);
	}
	if (!r && buf_size(&pax) > TARW_MAX_PAX)
		r = -E2BIG;
	if (!r && buf_size(&pax)) {
		r = block_header(out, "PaxHeader", 'x', 0644, 0, 0, buf_size(&pax), mtime, NULL, 0,
				 0);
		if (!r)
			r = buf_append(out, buf_head(&pax), buf_size(&pax));
		if (!r)
			r = tarw_pad(out, buf_size(&pax));
	}
	buf_free(&pax);
	if (r)
		return r;
	return block_header(out, name, e->type, e->mode, e->uid > 07777777 ? 0 : e->uid,
			    e->gid > 07777777 ? 0 : e->gid,
			    e->type == '0' && e->size <= 077777777777ull ? e->size : 0,
			    mtime > 077777777777ull ? 0 : mtime, e->link, e->devmajor, e->devminor);
}

int tarw_end(struct buf *out)
{
	uint8_t *p = buf_tail(out, 2 * BLOCK);

	if (!p)
		return -ENOMEM;
	memset(p, 0, 2 * BLOCK);
	buf_commit(out, 2 * BLOCK);
	return 0;
}
