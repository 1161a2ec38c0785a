/* SPDX-License-Identifier: Apache-2.0 */
/* Filesystem helpers: msb's home, directory trees, atomic writes, PATH lookup. */
#ifndef MSB_UTIL_FS_H
#define MSB_UTIL_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

/* msb_home() - $MSB_HOME, else ~/.microsandbox. Return: static string, or NULL. */
const char *msb_home(void);

/* Return: newly allocated "a/b", caller frees; NULL on ENOMEM. */
char *path_join(const char *a, const char *b);

/* mkdir_p() - create @path and missing parents. Return: 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);

/*
 * rm_rf() - remove @path and everything below it without following
 * symlinks out of the tree. A missing @path is success. Return: 0 or -errno.
 */
int rm_rf(const char *path);

/*
 * sweep_unlocked() - remove the entries of directory @root whose names start
 * with @prefix and that nobody holds a flock() on: the temporaries of makers
 * that died (a live maker keeps its temporary locked while it writes). The
 * entry itself is opened without following a symlink. Return: how many went.
 */
int sweep_unlocked(const char *root, const char *prefix);

/* read_file() - whole file, NUL-terminated. Return: 0 or -errno; *@out caller frees. */
int read_file(const char *path, size_t max, char **out, size_t *len);

/*
 * write_file_atomic() - write @len bytes to @path via a temporary file,
 * fsync and rename, so readers see the old or the new file, never a mix.
 */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* write_file_replace() - the same without fsync: atomic, but not durable across a crash. */
int write_file_replace(const char *path, const void *data, size_t len, mode_t mode);

/* fsync_path() - flush a file's data to disk before it is renamed into place. Return: 0 or -errno.
 */
int fsync_path(const char *path);

/* write_all() - write everything, retrying on EINTR/short writes. Return: 0 or -errno. */
int write_all(int fd, const void *p, size_t len);
/*
 * copy_sparse() - copy all of @in to @out (empty, regular): a reflink where
 * the filesystem shares blocks, else only the data, leaving holes as holes.
 * Return: bytes of data copied, or -errno.
 */
long long copy_sparse(int in, int out);
/*
 * copy_at() - copy file @name of directory @from to @to_name in @to (which
 * must not exist): a hard link if @link_ok and possible, else copy_sparse().
 * copy_dir_files_at() - make directory @name in @to with copies of the regular
 * files of @name in @from (nothing if that does not exist).
 * Return: 0 or -errno.
 */
int copy_at(int from, const char *name, int to, const char *to_name, bool link_ok);
int copy_dir_files_at(int from, const char *name, int to);

/* path_has_dotdot() - does @p have a ".." component (a way out of wherever it is resolved)? */
bool path_has_dotdot(const char *p);

/*
 * find_in_path() - locate an executable like execvp would, then in the sbin
 * directories (not on an ordinary user's PATH, but where mkfs and the like live).
 * Return: newly allocated path, or NULL if not found.
 */
char *find_in_path(const char *name);

/* self_dir() - directory holding the running msb binary. Return: static string. */
const char *self_dir(void);

/* Opens /dev/urandom-backed random bytes. Return: 0 or -errno. */
int random_bytes(void *p, size_t n);

#endif
