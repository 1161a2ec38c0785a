// SPDX-License-Identifier: Apache-2.0
/*
 * DOC: Theory of Operation
 *
 * The names a disk image makes QEMU 7.2 open, read the way QEMU reads them
 * (block/qcow2.c qcow2_do_open()/qcow2_read_extensions(), block/vmdk.c
 * vmdk_open()/vmdk_parse_extents()/vmdk_parent_open()), so that what msb
 * vets is what QEMU would have followed. Where QEMU's reading is loose, this
 * one is a superset: a name QEMU might follow is always reported. Bytes past
 * the end of the file read as zeros, as QEMU's file driver reads them.
 */
#define _GNU_SOURCE
#include "sandbox/diskimg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QCOW2_MAGIC		"QFI\xfb"
#define QCOW2_EXT_END		0x00000000u
#define QCOW2_EXT_BACKING_FMT	0xe2792acau
#define QCOW2_EXT_DATA_FILE	0x44415441u
#define QCOW2_INCOMPAT_DATA	(1ull << 2)
#define QCOW2_V2_HEADER_LEN	72u
#define QCOW2_V3_HEADER_MIN	104u
#define QCOW2_BACKING_FMT_MAX	16u		/* sizeof(bs->backing_format) */
#define VMDK_DESC_SIZE		((size_t)10240) /* 20 sectors */
#define VMDK_SPARSE_DESC_OFFSET 0x200u
#define VMDK_DESC_MAX		((1u << 20) - 1u) /* vmdk_read_desc() reads at most this */

/* Reads exactly @n bytes at @off; what lies past the end of the file reads as zeros. */
static int read_at(const struct dimg_reader *rd, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	size_t got = 0;

	memset(buf, 0, n);
	if (off > INT64_MAX || n > INT64_MAX - off)
		return -EINVAL;
	while (got < n && off + got < rd->size) {
		ssize_t k = rd->pread(rd->ctx, p + got, n - got, off + got);

		if (k < 0)
			return (int)k;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p + 4) << 32 | le32(p);
}

/* A name read as @n raw bytes: an embedded NUL would make QEMU see a different name. */
static int take_name(char *dst, size_t cap, const uint8_t *src, size_t n)
{
	if (n >= cap)
		return -ENOTSUP;
	if (memchr(src, '\0', n))
		return -EINVAL;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

static int parse_qcow2(const struct dimg_reader *rd, struct dimg_info *out)
{
	uint8_t h[QCOW2_V3_HEADER_MIN];
	uint32_t version, cluster_bits, header_len, name_len;
	uint64_t cluster_size, backing_off, incompat = 0, off, end;
	int r;

	if ((r = read_at(rd, h, sizeof(h), 0)) < 0)
		return r;
	if (memcmp(h, QCOW2_MAGIC, 4) != 0)
		return -EINVAL;
	version = be32(h + 4);
	backing_off = be64(h + 8);
	name_len = be32(h + 16);
	cluster_bits = be32(h + 20);
	out->size = be64(h + 24);
	if (version < 2 || version > 3)
		return -ENOTSUP;
	if (cluster_bits < 9 || cluster_bits > 21)
		return -EINVAL;
	cluster_size = 1ull << cluster_bits;
	if (be32(h + 32) != 0)
		return -ENOTSUP; /* encrypted: msb has no key to give */
	header_len = QCOW2_V2_HEADER_LEN;
	if (version == 3) {
		incompat = be64(h + 72);
		header_len = be32(h + 100);
		if (header_len < QCOW2_V3_HEADER_MIN || header_len > cluster_size)
			return -EINVAL;
	}
	if (backing_off) {
		uint8_t name[DIMG_NAME_MAX];

		if (backing_off > cluster_size || name_len > DIMG_NAME_MAX ||
		    name_len > cluster_size - backing_off)
			return -EINVAL;
		if ((r = read_at(rd, name, name_len, backing_off)) < 0)
			return r;
		if ((r = take_name(out->backing, sizeof(out->backing), name, name_len)) < 0)
			return r;
		out->has_backing = name_len > 0;
	}
	/* Header extensions: from the end of the header to the backing name, or the cluster's end.
	 */
	off = header_len;
	end = backing_off ? backing_off : cluster_size;
	while (off < end) {
		uint8_t eh[8];
		uint32_t type, len;

		if (end - off < sizeof(eh))
			return -EINVAL;
		if ((r = read_at(rd, eh, sizeof(eh), off)) < 0)
			return r;
		off += sizeof(eh);
		type = be32(eh);
		len = be32(eh + 4);
		if (len > end - off)
			return -EINVAL;
		if (type == QCOW2_EXT_END)
			break;
		if (type == QCOW2_EXT_BACKING_FMT || type == QCOW2_EXT_DATA_FILE) {
			uint8_t v[DIMG_NAME_MAX];

			if (len > (type == QCOW2_EXT_BACKING_FMT ? QCOW2_BACKING_FMT_MAX - 1
								 : DIMG_NAME_MAX))
				return type == QCOW2_EXT_BACKING_FMT ? -EINVAL : -ENOTSUP;
			if ((r = read_at(rd, v, len, off)) < 0)
				return r;
			if (type == QCOW2_EXT_BACKING_FMT) {
				r = take_name(out->backing_format, sizeof(out->backing_format), v,
					      len);
			} else {
				r = take_name(out->data_file, sizeof(out->data_file), v, len);
				out->has_data_file = true;
			}
			if (r < 0)
				return r;
		}
		off += ((uint64_t)len + 7) & ~7ull;
	}
	/* QEMU opens the data file only with the feature bit; msb vets it either way. */
	if ((incompat & QCOW2_INCOMPAT_DATA) && !out->has_data_file)
		return -EINVAL; /* QEMU would ask for a data-file option msb never gives */
	if (out->has_data_file && !out->data_file[0])
		return -EINVAL;
	return 0;
}

/*
 * The extent lines of a descriptor, read with the very sscanf() QEMU uses.
 * Every line that names a file counts, whatever its access or type (QEMU
 * opens only some of them; reporting more is safe).
 */
static int parse_extents(const char *desc, struct dimg_info *out, uint64_t *sectors_sum)
{
	const char *p = desc;

	*sectors_sum = 0;
	while (*p) {
		char access[11], type[11], fname[512];
		int64_t sectors = 0, flat_offset = -1;
		/* QEMU's very conversion, overflow and all, on purpose. */
		// NOLINTNEXTLINE(cert-err34-c)
		int matches = sscanf(p, "%10s %" SCNd64 " %10s \"%511[^\n\r\"]\" %" SCNd64, access,
				     &sectors, type, fname, &flat_offset);

		if (matches >= 4) {
			if (out->nextents >= DIMG_MAX_EXTENTS)
				return -ENOTSUP;
			memcpy(out->extents[out->nextents++], fname, sizeof(fname));
			if (sectors > 0) {
				if ((uint64_t)sectors > (UINT64_MAX >> 9) - *sectors_sum)
					return -EINVAL;
				*sectors_sum += (uint64_t)sectors;
			}
		}
		while (*p)
			if (*p++ == '\n')
				break;
	}
	return 0;
}

/* vmdk_parent_open(): "parentFileNameHint" anywhere in 10 KiB at @off; the name follows 2 bytes on.
 */
static int parse_parent(const struct dimg_reader *rd, uint64_t off, struct dimg_info *out)
{
	char *desc = calloc(1, VMDK_DESC_SIZE + 1);
	const char *hint, *q = NULL;
	size_t at;
	int r;

	if (!desc)
		return -ENOMEM;
	r = read_at(rd, desc, VMDK_DESC_SIZE, off);
	hint = r < 0 ? NULL : strstr(desc, "parentFileNameHint");
	if (hint) {
		/* QEMU skips the key and two bytes (="), whatever they are. */
		at = (size_t)(hint - desc) + sizeof("parentFileNameHint") + 1;
		if (at <= VMDK_DESC_SIZE)
			q = strchr(desc + at, '"');
		if (!q)
			r = -EINVAL;
		else
			r = take_name(out->backing, sizeof(out->backing),
				      (const uint8_t *)desc + at, (size_t)(q - (desc + at)));
		out->has_backing = r == 0 && q > desc + at;
		if (out->has_backing)
			snprintf(out->backing_format, sizeof(out->backing_format), "vmdk");
	}
	free(desc);
	return r;
}

static int parse_desc_at(const struct dimg_reader *rd, uint64_t off, struct dimg_info *out)
{
	size_t n = rd->size < VMDK_DESC_MAX ? (size_t)rd->size : VMDK_DESC_MAX;
	char *desc;
	uint64_t sectors;
	int r;

	if (rd->size < 4)
		return -EINVAL;
	desc = malloc(n + 1);
	if (!desc)
		return -ENOMEM;
	r = read_at(rd, desc, n, off);
	desc[n] = '\0';
	if (!r)
		r = parse_extents(desc, out, &sectors);
	if (!r && !out->size)
		out->size = sectors << 9;
	free(desc);
	return r;
}

static int parse_vmdk(const struct dimg_reader *rd, struct dimg_info *out)
{
	uint8_t h[80];
	int r;

	if ((r = read_at(rd, h, sizeof(h), 0)) < 0)
		return r;
	if (!memcmp(h, "KDMV", 4)) {
		uint64_t capacity = le64(h + 12), desc_off = le64(h + 28);

		if (capacity > (UINT64_MAX >> 9))
			return -EINVAL;
		out->size = capacity << 9;
		/* A sparse file with capacity 0 is a descriptor file in disguise. */
		if (capacity == 0 && desc_off) {
			if (desc_off > (UINT64_MAX >> 9))
				return -EINVAL;
			if ((r = parse_desc_at(rd, desc_off << 9, out)) < 0)
				return r;
		}
		return parse_parent(rd, VMDK_SPARSE_DESC_OFFSET, out);
	}
	if (!memcmp(h, "COWD", 4)) {
		out->size = (uint64_t)le32(h + 12) << 9;
		return parse_parent(rd, VMDK_SPARSE_DESC_OFFSET, out);
	}
	if ((r = parse_desc_at(rd, 0, out)) < 0)
		return r;
	return parse_parent(rd, 0, out);
}

/* vmdk_probe(): comments and blank lines, then a "version=N" line. */
static bool vmdk_text_probe(const char *p, const char *end)
{
	while (p < end) {
		if (*p == '#') {
			while (p < end && *p != '\n')
				p++;
			p++;
			continue;
		}
		if (*p == ' ') {
			while (p < end && *p == ' ')
				p++;
			if (p < end && *p == '\r')
				p++;
			if (p == end || *p != '\n')
				return false;
			p++;
			continue;
		}
		for (int v = '1'; v <= '3'; v++) {
			char lf[] = { 'v', 'e', 'r', 's', 'i', 'o', 'n', '=', (char)v, '\n' };
			char crlf[] = {
				'v', 'e', 'r', 's', 'i', 'o', 'n', '=', (char)v, '\r', '\n'
			};

			if ((size_t)(end - p) >= sizeof(lf) && !memcmp(p, lf, sizeof(lf)))
				return true;
			if ((size_t)(end - p) >= sizeof(crlf) && !memcmp(p, crlf, sizeof(crlf)))
				return true;
		}
		return false;
	}
	return false;
}

int dimg_detect(const struct dimg_reader *rd, enum dimg_format *out)
{
	char b[2048];
	size_t n = rd->size < sizeof(b) ? (size_t)rd->size : sizeof(b);
	int r = read_at(rd, b, sizeof(b), 0);

	if (r < 0)
		return r;
	*out = DIMG_RAW;
	if (n >= 8 && !memcmp(b, QCOW2_MAGIC, 4)) {
		uint32_t v = be32((const uint8_t *)b + 4);

		if (v < 2 || v > 3)
			return -ENOTSUP; /* qcow (version 1) has a backing file of its own */
		*out = DIMG_QCOW2;
	} else if ((n >= 4 && (!memcmp(b, "KDMV", 4) || !memcmp(b, "COWD", 4))) ||
		   vmdk_text_probe(b, b + n)) {
		*out = DIMG_VMDK;
	}
	return 0;
}

int dimg_parse(const struct dimg_reader *rd, enum dimg_format format, struct dimg_info *out)
{
	memset(out, 0, sizeof(*out));
	out->format = format;
	switch (format) {
	case DIMG_QCOW2:
		return parse_qcow2(rd, out);
	case DIMG_VMDK:
		return parse_vmdk(rd, out);
	case DIMG_RAW:
		out->size = rd->size;
		return 0;
	}
	return -EINVAL;
}

const char *dimg_format_name(enum dimg_format f)
{
	return f == DIMG_QCOW2 ? "qcow2" : f == DIMG_VMDK ? "vmdk" : "raw";
}

int dimg_format_parse(const char *s, enum dimg_format *out)
{
	if (!strcmp(s, "raw") || !strcmp(s, "file"))
		*out = DIMG_RAW;
	else if (!strcmp(s, "qcow2"))
		*out = DIMG_QCOW2;
	else if (!strcmp(s, "vmdk"))
		*out = DIMG_VMDK;
	else
		return -ENOTSUP;
	return 0;
}
