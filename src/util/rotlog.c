// SPDX-License-Identifier: Apache-2.0
/* Size-capped, rotated log files (see rotlog.h). */
#define _GNU_SOURCE
#include "util/rotlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"

int rotlog_open(struct rotlog *l, int dirfd, const char *name, uint64_t max, unsigned keep)
{
	struct stat st;

	*l = (struct rotlog){ .dirfd = dirfd, .fd = -1, .max = max ? max : 1, .keep = keep };
	if (strlen(name) >= sizeof(l->name) - 4)
		return -ENAMETOOLONG;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0)
		return -errno;
	if (fstat(l->fd, &st) == 0)
		l->size = (uint64_t)st.st_size;
	return 0;
}

/* NAME.keep-1 -> NAME.keep, ..., NAME -> NAME.1, then a fresh NAME. */
static int rotate(struct rotlog *l)
{
	char from[80], to[80];
	int fd;

	for (unsigned i = l->keep; i >= 1; i--) {
		if (i == 1)
			snprintf(from, sizeof(from), "%s", l->name);
		else
			snprintf(from, sizeof(from), "%s.%u", l->name, i - 1);
		snprintf(to, sizeof(to), "%s.%u", l->name, i);
		renameat(l->dirfd, from, l->dirfd, to);
	}
	if (!l->keep)
		unlinkat(l->dirfd, l->name, 0);
	fd = openat(l->dirfd, l->name,
		    O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	l->size = 0;
	return 0;
}

int rotlog_write(struct rotlog *l, const void *p, size_t n)
{
	int r;

	if (l->fd < 0)
		return -EBADF;
	if (n > l->max)
		n = (size_t)l->max;
	if (l->size + n > l->max) {
		r = rotate(l);
		if (r < 0)
			return r;
	}
	r = write_all(l->fd, p, n);
	if (r < 0)
		return r;
	l->size += n;
	return 0;
}

void rotlog_close(struct rotlog *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}
