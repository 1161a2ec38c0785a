// SPDX-License-Identifier: Apache-2.0
/* Filesystem helpers shared by the CLI, the supervisor and the image store. */
#define _GNU_SOURCE
#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"

const char *msb_home(void)
{
	static char home[PATH_MAX];
	const char *env = getenv("MSB_HOME"), *h;

	if (home[0])
		return home;
	if (env && *env) {
		snprintf(home, sizeof(home), "%s", env);
		return home;
	}
	h = getenv("HOME");
	if (!h || !*h) {
		struct passwd *pw = getpwuid(getuid());

		h = pw ? pw->pw_dir : NULL;
	}
	if (!h)
		return NULL;
	snprintf(home, sizeof(home), "%s/.microsandbox", h);
	return home;
}

char *path_join(const char *a, const char *b)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		return NULL;
	return p;
}

int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *tmp = strdup(path);

	if (!tmp)
		return -ENOMEM;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Empties the directory @dfd (consumed). Return: 0 or the first -errno. */
static int rm_children(int dfd, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int r = 0;

	if (!d) {
		close(dfd);
		return -errno;
	}
	if (depth > 256) {
		closedir(d);
		return -ELOOP;
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0) {
				/* An unreadable directory may still be empty: let rmdir decide. */
				if (errno == EACCES)
					(void)!fchmodat(dirfd(d), de->d_name, 0700, 0);
				sub = openat(dirfd(d), de->d_name,
					     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			}
			if (sub >= 0) {
				int rr = rm_children(sub, depth + 1);

				if (rr < 0 && !r)
					r = rr;
			}
			if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT &&
			    !r)
				r = -errno;
		} else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && !r) {
			r = -errno;
		}
	}
	closedir(d);
	return r;
}

int rm_rf(const char *path)
{
	struct stat st;
	int dfd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	r = rm_children(dfd, 0);
	if (rmdir(path) < 0 && errno != ENOENT)
		return r ? r : -errno;
	return r;
}

int read_file(const char *path, size_t max, char **out, size_t *len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 4096;

	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t k;

		if (n + 1 >= cap) {
			char *nb;

			if (cap >= max + 1)
				return -EFBIG;
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			nb = realloc(buf, cap);
			if (!nb)
				return -ENOMEM;
			buf = nb;
		}
		k = read(fd, buf + n, cap - n - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	*out = steal_ptr(buf);
	return 0;
}

int fsync_path(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

int write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_replace(const char *path, const void *data, size_t len, mode_t mode, bool durable)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (asprintf(&tmp, "%s.tmp-%d", path, (int)getpid()) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (!r && durable && fsync(fd) < 0)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	return write_replace(path, data, len, mode, true);
}

int write_file_replace(const char *path, const void *data, size_t len, mode_t mode)
{
	return write_replace(path, data, len, mode, false);
}

char *find_in_path(const char *name)
{
	_cleanup_free_ char *dirs = NULL;
	const char *path = getenv("PATH");
	char *dir, *save = NULL;

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	/*
	 * The sbin directories last: an ordinary user's PATH often lacks them,
	 * and tools msb runs (mkfs.ext4) live there.
	 */
	if (asprintf(&dirs, "%s:/usr/local/sbin:/usr/sbin:/sbin",
		     path && *path ? path : "/usr/local/bin:/usr/bin:/bin") < 0)
		dirs = NULL;
	if (!dirs)
		return NULL;
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *full = path_join(*dir ? dir : ".", name);
		struct stat st;

		if (full && stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
			return full;
		free(full);
	}
	return NULL;
}

const char *self_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n;
	char *slash;

	if (dir[0])
		return dir;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0)
		return ".";
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	return dir;
}

int random_bytes(void *p, size_t n)
{
	uint8_t *c = p;

	while (n) {
		ssize_t k = getrandom(c, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

bool path_has_dotdot(const char *p)
{
	for (const char *c = p; *c;) {
		const char *e = strchrnul(c, '/');

		if (e - c == 2 && c[0] == '.' && c[1] == '.')
			return true;
		c = *e ? e + 1 : e;
	}
	return false;
}

#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int) /* <linux/fs.h>, which musl's headers lack */
#endif

long long copy_sparse(int in, int out)
{
	struct stat st;
	long long copied = 0;
	off_t pos = 0;

	if (fstat(in, &st) < 0)
		return -errno;
	if (ioctl(out, FICLONE, in) == 0)
		return (long long)st.st_size;
	if (ftruncate(out, st.st_size) < 0)
		return -errno;
	while (pos < st.st_size) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (data < 0)
			return -errno;
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		for (off_t at = data; at < hole;) {
			loff_t ri = at, wo = at;
			ssize_t n = copy_file_range(in, &ri, out, &wo, (size_t)(hole - at), 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			if (n == 0)
				return -EIO; /* the file shrank under us */
			at += n;
			copied += n;
		}
		pos = hole;
	}
	return copied;
}

/* Copies @name from directory @from to @to (a hard link where it can be). Return: 0 or -errno. */
int copy_at(int from, const char *name, int to, const char *to_name, bool link_ok)
{
	_cleanup_close_ int in = -1, out = -1;
	long long n;

	if (link_ok && linkat(from, name, to, to_name, 0) == 0)
		return 0;
	in = openat(from, name, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = openat(to, to_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	n = copy_sparse(in, out);
	return n < 0 ? (int)n : 0;
}

/* The files of directory @name in @from (scripts), copied into a new @name in @to. */
int copy_dir_files_at(int from, const char *name, int to)
{
	_cleanup_close_ int src = openat(from, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int dst = -1;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;

	if (src < 0)
		return errno == ENOENT ? 0 : -errno;
	if (mkdirat(to, name, 0700) < 0)
		return -errno;
	dst = openat(to, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fdopendir(dup(src));
	if (dst < 0 || !d)
		return -errno;
	while ((de = readdir(d))) {
		int r;

		if (de->d_name[0] == '.' || de->d_type != DT_REG)
			continue;
		r = copy_at(src, de->d_name, dst, de->d_name, false);
		if (r < 0)
			return r;
	}
	return 0;
}

int sweep_unlocked(const char *root, const char *prefix)
{
	_cleanup_closedir_ DIR *d = opendir(root);
	size_t plen = strlen(prefix);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		_cleanup_close_ int fd = -1;

		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
			continue;
		p = path_join(root, de->d_name);
		if (p && rm_rf(p) == 0)
			n++;
	}
	return n;
}
