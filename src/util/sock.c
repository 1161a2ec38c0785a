// SPDX-License-Identifier: Apache-2.0
/* Unix socket helpers that name the socket through /proc/self/fd/N/NAME. */
#include "util/sock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* sun_path holds 108 bytes; the directory fd keeps the path short whatever it is. */
static int fill_addr(struct sockaddr_un *sa, int dirfd, const char *name)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd, name);
	return (n < 0 || (size_t)n >= sizeof(sa->sun_path)) ? -ENAMETOOLONG : 0;
}

int unix_listen_at(int dirfd, const char *name)
{
	struct sockaddr_un sa;
	int fd, r = fill_addr(&sa, dirfd, name);

	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlinkat(dirfd, name, 0);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int unix_connect_at(int dirfd, const char *name)
{
	struct sockaddr_un sa;
	int fd, r = fill_addr(&sa, dirfd, name);

	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}
