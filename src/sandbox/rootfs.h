/* SPDX-License-Identifier: Apache-2.0 */
/* Root filesystems given as a host path: a directory or a squashfs image. */
#ifndef MSB_SANDBOX_ROOTFS_H
#define MSB_SANDBOX_ROOTFS_H

#include <stddef.h>

#include "util/err.h"

/*
 * rootfs_prepare() - turn --rootfs PATH into one read-only layer image.
 * A directory is packed into @workdir/rootfs.sqfs (ownership, modes, times
 * and xattrs kept); a squashfs image is used in place.
 * Return: 0 and a newly allocated absolute image path in *@layer, or -1.
 */
int rootfs_prepare(const char *path, const char *workdir, char **layer, struct msb_err **err);

/* is_squashfs() - does @path start with the squashfs magic? */
int is_squashfs(const char *path);

/*
 * disk_image_probe() - is @path a disk image msb boots (by content, not by
 * name)? qcow2, vmdk (monolithic sparse), or raw with a partition table or
 * an ext4/xfs filesystem. Sets *@format ("qcow2", "vmdk", "raw").
 * Return: 1 yes, 0 no, -errno if it cannot be read.
 */
int disk_image_probe(const char *path, const char **format);

/*
 * run_tool() - run a helper program, stdin from /dev/null (or @in_fd), and
 * on failure put its last stderr line into @err.
 * Return: 0 or -1 with @err.
 */
int run_tool(char *const argv[], int in_fd, struct msb_err **err);

#endif
