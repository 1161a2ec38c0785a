/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The file names a disk image makes QEMU open: a qcow2's backing file and
 * external data file, a vmdk's extents and parentFileNameHint. A disk image
 * is untrusted input, like a layer: these names are read here, with bounds,
 * from the bytes QEMU would read them from, so that msb can vet every file
 * before QEMU or qemu-img opens anything (diskchain.h).
 */
#ifndef MSB_SANDBOX_DISKIMG_H
#define MSB_SANDBOX_DISKIMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* QEMU's own limits: a qcow2 backing name is at most 1023 bytes, a vmdk extent name 511. */
#define DIMG_NAME_MAX	 1023
#define DIMG_MAX_EXTENTS 16

enum dimg_format { DIMG_RAW, DIMG_QCOW2, DIMG_VMDK };

/*
 * struct dimg_reader - the image's bytes: @pread reads up to @n bytes at @off
 * and returns how many (0 at the end), or -errno. @size is the file's size.
 */
struct dimg_reader {
	ssize_t (*pread)(void *ctx, void *buf, size_t n, uint64_t off);
	void *ctx;
	uint64_t size;
};

struct dimg_info {
	enum dimg_format format;
	uint64_t size; /* the guest-visible size in bytes; 0 if the image does not say */
	bool has_backing;
	char backing[DIMG_NAME_MAX + 1];
	char backing_format[32]; /* "" when the image names none */
	bool has_data_file;
	char data_file[DIMG_NAME_MAX + 1];
	size_t nextents; /* vmdk extents QEMU opens by name (only from a descriptor) */
	char extents[DIMG_MAX_EXTENTS][512];
};

/*
 * dimg_detect() - the format QEMU's probe would pick from the first bytes:
 * qcow2 (magic and version 2 or 3), vmdk (sparse magic or a text
 * descriptor), else raw. Return: 0, or -errno (-ENOTSUP: a qcow2 magic with
 * another version, or qcow version 1, which msb does not open).
 */
int dimg_detect(const struct dimg_reader *rd, enum dimg_format *out);

/*
 * dimg_parse() - read the names an image of @format (qcow2 or vmdk; raw has
 * none) makes QEMU open, and its size. Every offset and length is checked
 * against the file and against QEMU's own limits; a header QEMU would
 * refuse, or one msb cannot vouch for, is an error.
 * Return: 0, or -errno: -EINVAL malformed, -ENOTSUP a feature msb does not
 * follow (encryption, more extents than DIMG_MAX_EXTENTS), or a read error.
 */
int dimg_parse(const struct dimg_reader *rd, enum dimg_format format, struct dimg_info *out);

/* dimg_format_name() - "raw", "qcow2" or "vmdk". */
const char *dimg_format_name(enum dimg_format f);

/* dimg_format_parse() - the reverse. Return: 0, or -ENOTSUP for anything else. */
int dimg_format_parse(const char *s, enum dimg_format *out);

#endif
