/* SPDX-License-Identifier: Apache-2.0 */
/*
 * msb cp, the host's half: tar streams to and from agentd's copy tool
 * (src/agent/cp.c). What comes from the guest is untrusted: every entry must
 * lie under the stream's first name, and is created below the destination
 * without "..", absolute names, links through symlinks, hard links, devices,
 * set-id bits or ownership.
 */
#ifndef MSB_SANDBOX_CP_H
#define MSB_SANDBOX_CP_H

#include <stdint.h>

#include "util/err.h"

/*
 * sbx_cp_target() - where a copy named @top lands for destination @dest
 * (docker's rule): @dest/@top if @dest is an existing directory, else @dest,
 * whose parent must exist. Return: newly allocated absolute path, or NULL with @err.
 */
char *sbx_cp_target(const char *dest, const char *top, struct msb_err **err);

/*
 * sbx_cp_extract() - read a tar stream from @fd and create it at @target
 * (from sbx_cp_target()): the stream's first name becomes @target. @nbytes
 * gets the bytes of file data written. Reads @fd to its end even after an
 * error. Return: 0 or -1 with @err.
 */
int sbx_cp_extract(int fd, const char *target, uint64_t *nbytes, struct msb_err **err);

/*
 * sbx_cp_archive() - write @src (a file, directory tree or symlink, not
 * followed) to @fd as a pax tar stream named after @src's last component.
 * Return: 0 or -1 with @err.
 */
int sbx_cp_archive(const char *src, int fd, uint64_t *nbytes, struct msb_err **err);

#endif
