/* SPDX-License-Identifier: Apache-2.0 */
/* Unix sockets addressed relative to a directory, so long MSB_HOME paths still fit. */
#ifndef MSB_UTIL_SOCK_H
#define MSB_UTIL_SOCK_H

/* Return: listening, non-blocking, close-on-exec socket, or -errno. */
int unix_listen_at(int dirfd, const char *name);
/* Return: connected close-on-exec socket, or -errno. */
int unix_connect_at(int dirfd, const char *name);

#endif
