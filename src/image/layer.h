/* SPDX-License-Identifier: Apache-2.0 */
/* Converts an OCI layer (a tar, maybe gzip/zstd) into a read-only squashfs image. */
#ifndef MSB_IMAGE_LAYER_H
#define MSB_IMAGE_LAYER_H

#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

/* squashfs compression of layer images: fast to write, fast to read in the guest. */
#define LAYER_COMPRESSOR "lz4"

/* Limits on what one layer may expand to. */
#define LAYER_MAX_ENTRIES (4u << 20)
#define LAYER_MAX_BYTES	  (64ull << 30)

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
 * Return: 0 and the uncompressed size in *@tar_bytes, or -1 with @err; on
 * failure @out_path is removed.
 */
int layer_convert(int blob_fd, const char *diff_id, const char *out_path, uint64_t *tar_bytes,
		  struct msb_err **err);

/*
 * layer_transform() - the same from any stdio stream, writing the tar
 * that would go to tar2sqfs into @tar_out instead (for the fuzzer and tests).
 */
int layer_transform(FILE *in, FILE *tar_out, char *diff_id_out, struct msb_err **err);

#endif
