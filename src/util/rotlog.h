/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Size-capped, rotated log files: NAME grows to a cap, then becomes NAME.1
 * (NAME.1 becomes NAME.2, ...) and a fresh NAME starts. Every log msb keeps
 * on disk goes through this, so nothing a guest prints can fill the disk.
 */
#ifndef MSB_UTIL_ROTLOG_H
#define MSB_UTIL_ROTLOG_H

#include <stddef.h>
#include <stdint.h>

struct rotlog {
	int dirfd;     /* directory holding the files (borrowed) */
	char name[64]; /* file name inside it */
	int fd;	       /* the current file, -1 when closed */
	uint64_t size; /* bytes in the current file */
	uint64_t max;  /* rotate before a write would pass this */
	unsigned keep; /* rotated files kept (NAME.1 .. NAME.keep) */
};

/*
 * rotlog_open() - open (append to) @name in @dirfd. Return: 0 or -errno.
 * An existing file already over @max is rotated on the first write.
 */
int rotlog_open(struct rotlog *l, int dirfd, const char *name, uint64_t max, unsigned keep);

/*
 * rotlog_write() - append @n bytes, rotating first if the file would pass
 * its cap. A single write larger than the cap is cut to the cap.
 * Return: 0 or -errno.
 */
int rotlog_write(struct rotlog *l, const void *p, size_t n);

void rotlog_close(struct rotlog *l);

#endif
