// SPDX-License-Identifier: Apache-2.0
/*
 * DOC: Theory of Operation
 *
 * Vets a disk image's chain before anything opens it. Each name an image
 * gives (diskimg.c reads them) is opened by msb itself, as the user, with
 * openat2(RESOLVE_BENEATH) from the directory of the file that names it:
 * an absolute name, a ".." that climbs out or a symlink leading out fails
 * there, and json: or protocol names are refused before any lookup. The
 * next file is then parsed from that very descriptor. Files the user named
 * with --allow-backing are admitted by their resolved path. The result is
 * the list of nodes QEMU gets, each with its own file name and format.
 */
#define _GNU_SOURCE
#include "sandbox/diskchain.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/strv.h"
#include "util/text.h"

/* Extents of extents (a sparse extent with a descriptor of its own), at most this deep. */
#define MAX_EXTENT_DEPTH 4

static ssize_t fd_pread(void *ctx, void *buf, size_t n, uint64_t off)
{
	ssize_t k;

	do
		k = pread(*(int *)ctx, buf, n, (off_t)off);
	while (k < 0 && errno == EINTR);
	return k < 0 ? -errno : k;
}

/* The name as it may be printed: an image's bytes never reach a terminal raw. */
static void shown(char *dst, size_t cap, const char *name)
{
	text_sanitize(dst, cap, name, strlen(name));
}

/* QEMU takes "proto:..." (json:, nbd:, file:) as a protocol, not a file name. */
static bool has_protocol(const char *name)
{
	return name[strcspn(name, ":/\\")] == ':';
}

static char *dir_of(const char *path)
{
	char *d = path ? strdup(path) : NULL, *slash = d ? strrchr(d, '/') : NULL;

	if (slash)
		*(slash == d ? slash + 1 : slash) = '\0';
	return d;
}

static char *fd_path(int fd)
{
	char proc[64], buf[PATH_MAX];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, buf, sizeof(buf) - 1);
	if (n <= 0 || buf[0] != '/')
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static bool allowed(const char *path, char *const *allow)
{
	for (; allow && *allow; allow++)
		if (!strcmp(path, *allow))
			return true;
	return false;
}

/*
 * Opens @name, given by the file @from as its @what, as the user: beneath
 * @from's directory, or anywhere if it resolves to a file in @allow.
 * Return: an fd and its resolved path in *@path, or -1 with @err.
 */
static int open_named(const char *from, const char *what, const char *name, char *const *allow,
		      char **path, struct msb_err **err)
{
	_cleanup_free_ char *dir = dir_of(from), *cand = NULL, *real = NULL;
	_cleanup_close_ int dfd = -1;
	char nm[256];
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	struct stat st;
	int fd;

	shown(nm, sizeof(nm), name);
	if (!dir)
		return msb_err_sys(err, ENOMEM, "%s", from);
	if (!strncmp(name, "json:", 5) || has_protocol(name))
		return msb_err_set(err, EPERM,
				   "%s: %s \"%s\" is not a file name (msb follows no json: or "
				   "protocol names; give the disk a plain file name)",
				   from, what, nm);
	if (asprintf(&cand, "%s%s%s", name[0] == '/' ? "" : dir,
		     name[0] == '/' || !strcmp(dir, "/") ? "" : "/", name) < 0)
		return msb_err_sys(err, ENOMEM, "%s", from);
	real = realpath(cand, NULL);
	if (real && allowed(real, allow)) {
		fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	} else {
		dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return msb_err_sys(err, errno, "%s: %s", from, dir);
		fd = (int)syscall(SYS_openat2, dfd, name, &how, sizeof(how));
		if (fd < 0 && errno == EXDEV)
			return msb_err_set(err, EPERM,
					   "%s: %s \"%s\" is outside the image's directory (msb "
					   "follows only files beside the image; if you trust it, "
					   "add --allow-backing %s)",
					   from, what, nm, real ? real : cand);
		if (fd < 0 && errno == ENOSYS)
			return msb_err_set(err, ENOSYS,
					   "%s: %s \"%s\": following it safely needs Linux 5.6 "
					   "or later (openat2)",
					   from, what, nm);
	}
	if (fd < 0)
		return msb_err_set(err, errno, "%s: %s \"%s\": %s", from, what, nm,
				   strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return msb_err_set(err, EINVAL, "%s: %s \"%s\" is not a regular file", from, what,
				   nm);
	}
	*path = fd_path(fd);
	if (!*path) {
		close(fd);
		return msb_err_sys(err, ENOMEM, "%s", from);
	}
	return fd;
}

static int parse_error(const char *path, enum dimg_format f, int r, struct msb_err **err)
{
	if (r == -ENOTSUP)
		return msb_err_set(err, ENOTSUP,
				   "%s: a %s image with a feature msb does not open (encryption, "
				   "or a name or extent list beyond QEMU's limits)",
				   path, dimg_format_name(f));
	if (r == -EINVAL)
		return msb_err_set(err, EINVAL,
				   "%s: not a valid %s image (its header is malformed)", path,
				   dimg_format_name(f));
	return msb_err_set(err, -r, "%s: %s", path, strerror(-r));
}

static int parse_fd(int fd, const char *path, enum dimg_format f, struct dimg_info *info,
		    struct msb_err **err)
{
	struct stat st;
	struct dimg_reader rd = { .pread = fd_pread, .ctx = &fd };
	int r;

	if (fstat(fd, &st) < 0)
		return msb_err_sys(err, errno, "%s", path);
	rd.size = (uint64_t)st.st_size;
	r = dimg_parse(&rd, f, info);
	return r < 0 ? parse_error(path, f, r, err) : 0;
}

/* A vmdk's extents (and theirs), each vetted against @dir_from's directory, as QEMU resolves them.
 */
static int vet_extents(const char *dir_from, const struct dimg_info *info, char *const *allow,
		       struct strv *extra, int depth, struct msb_err **err)
{
	for (size_t i = 0; i < info->nextents; i++) {
		_cleanup_free_ struct dimg_info *sub = NULL;
		_cleanup_free_ char *path = NULL;
		_cleanup_close_ int fd =
			open_named(dir_from, "extent", info->extents[i], allow, &path, err);
		enum dimg_format f;
		struct dimg_reader rd = { .pread = fd_pread, .ctx = &fd };
		struct stat st;

		if (fd < 0)
			return -1;
		if (strv_push(extra, path) < 0)
			return msb_err_sys(err, ENOMEM, "%s", dir_from);
		/* A sparse extent with capacity 0 is read as a descriptor naming more extents. */
		if (fstat(fd, &st) < 0)
			return msb_err_sys(err, errno, "%s", path);
		rd.size = (uint64_t)st.st_size;
		if (dimg_detect(&rd, &f) < 0 || f != DIMG_VMDK)
			continue;
		sub = calloc(1, sizeof(*sub));
		if (!sub)
			return msb_err_sys(err, ENOMEM, "%s", path);
		if (parse_fd(fd, path, DIMG_VMDK, sub, err) < 0)
			return -1;
		if (sub->nextents && depth >= MAX_EXTENT_DEPTH)
			return msb_err_set(err, ENOTSUP, "%s: extents nested too deep", path);
		if (sub->nextents && vet_extents(dir_from, sub, allow, extra, depth + 1, err) < 0)
			return -1;
	}
	return 0;
}

int dchain_open(const char *image, enum dimg_format format, char *const *allow, struct dchain *out,
		struct msb_err **err)
{
	_cleanup_free_ struct dimg_info *info = calloc(1, sizeof(*info));
	char *path = strdup(image);
	int fd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	enum dimg_format f = format;
	int r = -1;

	memset(out, 0, sizeof(*out));
	if (!info || !path) {
		msb_err_sys(err, ENOMEM, "%s", image);
		goto done;
	}
	if (fd < 0) {
		msb_err_sys(err, errno, "%s", image);
		goto done;
	}
	for (;;) {
		struct dchain_node *n = &out->node[out->n];
		struct strv extra = { 0 };

		n->path = path;
		n->format = f;
		out->n++;
		path = NULL;
		if (parse_fd(fd, n->path, f, info, err) < 0)
			goto done;
		if (out->n == 1)
			out->size = info->size;
		if (info->has_data_file) {
			_cleanup_close_ int dfd = open_named(n->path, "data file", info->data_file,
							     allow, &n->data_file, err);

			if (dfd < 0)
				goto done;
		}
		if (vet_extents(n->path, info, allow, &extra, 0, err) < 0) {
			strv_free(&extra);
			goto done;
		}
		n->extra = strv_steal(&extra);
		if (!n->extra) {
			msb_err_sys(err, ENOMEM, "%s", n->path);
			goto done;
		}
		if (!info->has_backing)
			break;
		if (out->n > DCHAIN_MAX_DEPTH) {
			msb_err_set(err, ELOOP, "%s: more than %d backing files", image,
				    DCHAIN_MAX_DEPTH);
			goto done;
		}
		close(fd);
		fd = open_named(n->path, "backing file", info->backing, allow, &path, err);
		if (fd < 0)
			goto done;
		if (info->backing_format[0]) {
			if (dimg_format_parse(info->backing_format, &f) < 0) {
				char fm[64];

				shown(fm, sizeof(fm), info->backing_format);
				msb_err_set(err, ENOTSUP,
					    "%s: backing format \"%s\" is not one msb opens (raw, "
					    "qcow2, vmdk)",
					    n->path, fm);
				goto done;
			}
		} else {
			struct stat st;
			struct dimg_reader rd = { .pread = fd_pread, .ctx = &fd };
			int e = fstat(fd, &st) < 0 ? -errno : 0;

			rd.size = e ? 0 : (uint64_t)st.st_size;
			if (!e)
				e = dimg_detect(&rd, &f);
			if (e < 0) {
				parse_error(path, DIMG_QCOW2, e, err);
				goto done;
			}
		}
	}
	r = 0;
done:
	free(path);
	if (fd >= 0)
		close(fd);
	if (r < 0)
		dchain_free(out);
	return r;
}

void dchain_free(struct dchain *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->node[i].path);
		free(c->node[i].data_file);
		if (c->node[i].extra)
			for (char **e = c->node[i].extra; *e; e++)
				free(*e);
		free(c->node[i].extra);
	}
	memset(c, 0, sizeof(*c));
}

int dchain_allow_path(const char *path, char **out, struct msb_err **err)
{
	_cleanup_free_ char *real = realpath(path, NULL);
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (!real)
		return msb_err_set(err, errno, "--allow-backing %s: %s", path, strerror(errno));
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return msb_err_set(err, errno, "--allow-backing %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return msb_err_set(err, EINVAL, "--allow-backing %s: not a regular file", path);
	*out = steal_ptr(real);
	return 0;
}
