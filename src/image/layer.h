/* SPDX-License-Identifier: Apache-2.0 */
/* Converts an OCI layer (a tar, maybe gzip/zstd) into a read-only squashfs image. */
#ifndef MSB_IMAGE_LAYER_H
#define MSB_IMAGE_LAYER_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

/* squashfs compression of layer images: fast to write, fast to read in the guest. */
#define LAYER_COMPRESSOR "lz4"

/* Limits on what one layer may expand to. */
#define LAYER_MAX_ENTRIES (4u << 20)
#define LAYER_MAX_BYTES	  (64ull << 30)
/*
 * What the converter holds from one entry to the next (directory records
 * with their paths and xattrs, the symlink set, the directory index), all
 * counted together, allocator overhead included.
 */
#define LAYER_MAX_HELD (64u << 20)
/* xattr names and values of one entry, all together (tar2sqfs takes pax headers up to 64 KiB). */
#define LAYER_MAX_XATTR_BYTES (48u << 10)
/* One entry's headers as libarchive reads them (pax, GNU long names, sparse maps). */
#define LAYER_MAX_HEADER (2u << 20)
/*
 * Holes of sparse files are written out as zeros: a layer may hold up to
 * LAYER_SPARSE_FREE of them, or LAYER_SPARSE_RATIO times its tar bytes if
 * that is more (see docs/images.md).
 */
#define LAYER_SPARSE_FREE  (64ull << 20)
#define LAYER_SPARSE_RATIO 16

/*
 * layer_convert() - read the layer blob at @blob_fd (any compression
 * libarchive knows), check that the uncompressed tar hashes to @diff_id
 * (NULL: skip the check), and write a squashfs image to @out_path.
 *
 * OCI whiteouts become overlayfs ones (".wh.NAME" -> char device 0:0,
 * ".wh..wh..opq" -> trusted.overlay.opaque=y on the directory). Ownership,
 * modes, device nodes, hard and symbolic links, xattrs and mtimes are kept,
 * and nothing is extracted to the host, so it works as any user. Paths that
 * are absolute, contain "..", or pass through a symlink are rejected.
 *
 * @cancel (may be NULL) is polled throughout: once it is true the conversion
 * stops within milliseconds, tar2sqfs is killed, and the error is
 * "interrupted" (exit status 130).
 *
 * Return: 0 and the uncompressed size in *@tar_bytes, or -1 with @err; on
 * failure @out_path is removed.
 */
int layer_convert(int blob_fd, const char *diff_id, const char *out_path, uint64_t *tar_bytes,
		  const atomic_bool *cancel, struct msb_err **err);

/*
 * layer_transform() - the same from any stdio stream, writing the tar
 * that would go to tar2sqfs into @tar_out instead (for the fuzzer and tests).
 */
int layer_transform(FILE *in, FILE *tar_out, char *diff_id_out, struct msb_err **err);

#endif
