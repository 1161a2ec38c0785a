/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A disk image's chain of files (backing files, data files, vmdk extents),
 * vetted before QEMU or qemu-img opens any of them. A name the image gives
 * is followed only when it is a plain file name that stays in the directory
 * of the file naming it (symlinks may not lead out of it), and leads to a
 * regular file the user can read; or when the user named that file with
 * --allow-backing. QEMU is then given every node with its own file name and
 * format, so that it never follows a name itself.
 */
#ifndef MSB_SANDBOX_DISKCHAIN_H
#define MSB_SANDBOX_DISKCHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "sandbox/diskimg.h"
#include "util/err.h"

/* Backing files followed at most (as docs/volumes.md promises). */
#define DCHAIN_MAX_DEPTH 16

struct dchain_node {
	char *path; /* absolute, vetted */
	enum dimg_format format;
	char *data_file; /* a qcow2's external data file, vetted, or NULL */
	char **extra;	 /* vmdk extents it opens by name, vetted; NULL-terminated */
};

struct dchain {
	struct dchain_node node[DCHAIN_MAX_DEPTH + 1]; /* [0] the image, then its backing files */
	size_t n;
	uint64_t size; /* the image's guest-visible size in bytes */
};

/*
 * dchain_open() - vet the chain of @image (an absolute path the user named)
 * of format @format. @allow: absolute, resolved paths the user admitted with
 * --allow-backing (NULL-terminated, may be NULL).
 * Return: 0 with @out filled (free with dchain_free()), or -1 with a
 * one-line @err naming the file, the name it gives and the fix.
 */
int dchain_open(const char *image, enum dimg_format format, char *const *allow, struct dchain *out,
		struct msb_err **err);

void dchain_free(struct dchain *c);

/*
 * dchain_allow_path() - check an --allow-backing PATH (an existing regular
 * file the user can read) and resolve it. Return: 0 and a newly allocated
 * path in *@out, or -1 with @err.
 */
int dchain_allow_path(const char *path, char **out, struct msb_err **err);

#endif
