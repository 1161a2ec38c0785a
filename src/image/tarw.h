/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal POSIX pax tar writer: the stream msb feeds to tar2sqfs. */
#ifndef MSB_IMAGE_TARW_H
#define MSB_IMAGE_TARW_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct tar_xattr {
	const char *name;
	const void *value;
	size_t len;
};

/*
 * struct tar_entry - one member. @path is relative, without "./" or a
 * trailing slash ("" is the root directory). @type is a ustar typeflag:
 * '0' file, '1' hard link, '2' symlink, '3' char dev, '4' block dev,
 * '5' directory, '6' fifo.
 */
struct tar_entry {
	const char *path;
	char type;
	uint32_t mode; /* permission bits, including setuid/setgid/sticky */
	uint64_t uid, gid;
	int64_t mtime;
	uint64_t size;	  /* regular files */
	const char *link; /* hard and symbolic links */
	uint32_t devmajor, devminor;
	const struct tar_xattr *xattrs;
	size_t nxattrs;
};

/* The largest pax extended header tar2sqfs reads (squashfs-tools-ng's TAR_MAX_PAX_LEN). */
#define TARW_MAX_PAX (64u << 10)

/*
 * tarw_header() - append the header(s) for @e. A regular file's content
 * follows, then tarw_pad(out, size). Return: 0, -ENOMEM, -EINVAL, or
 * -E2BIG when its pax header would exceed TARW_MAX_PAX.
 */
int tarw_header(struct buf *out, const struct tar_entry *e);
/* tarw_pad() - zero padding after @size bytes of content. */
int tarw_pad(struct buf *out, uint64_t size);
/* tarw_end() - the two zero blocks that end an archive. */
int tarw_end(struct buf *out);

#endif
