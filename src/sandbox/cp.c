// SPDX-License-Identifier: Apache-2.0
/*
 * msb cp, the host's half (see cp.h).
 *
 * DOC: Theory of Operation
 * Extraction runs in the destination's parent directory with relative names,
 * so that libarchive's secure modes (no "..", no absolute names, nothing
 * through a symlink) apply to exactly the part the guest chose. Each entry is
 * checked here first: it must lie under the first entry's name (which is
 * renamed to the target's), be a file, directory or symlink, and lose any
 * set-id bits; ownership is never restored, so copied files belong to the
 * user who ran msb.
 */
#define _GNU_SOURCE
#include "sandbox/cp.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define CP_BLOCK (64u << 10)

char *sbx_cp_target(const char *dest, const char *top, struct msb_err **err)
{
	_cleanup_free_ char *copy = strdup(dest), *parent = NULL;
	struct stat st;
	char *out = NULL;
	size_t n;

	if (!copy) {
		msb_err_sys(err, ENOMEM, "cp");
		return NULL;
	}
	if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
		_cleanup_free_ char *real = realpath(dest, NULL);

		if (!real || asprintf(&out, "%s/%s", strcmp(real, "/") ? real : "", top) < 0) {
			msb_err_sys(err, errno ? errno : ENOMEM, "%s", dest);
			return NULL;
		}
		return out;
	}
	n = strlen(copy);
	if (n && copy[n - 1] == '/') {
		msb_err_set(err, ENOENT, "%s: no such directory", dest);
		return NULL;
	}
	parent = realpath(dirname(copy), NULL);
	if (!parent || stat(parent, &st) < 0 || !S_ISDIR(st.st_mode)) {
		msb_err_set(err, parent ? ENOTDIR : errno, "%s: its parent directory: %s", dest,
			    strerror(parent ? ENOTDIR : errno));
		return NULL;
	}
	free(copy);
	copy = strdup(dest); /* dirname() wrote into the first copy */
	if (!copy ||
	    asprintf(&out, "%s/%s", strcmp(parent, "/") ? parent : "", basename(copy)) < 0) {
		msb_err_sys(err, ENOMEM, "cp");
		return NULL;
	}
	return out;
}

/* No "..", not absolute, not empty. */
static bool safe_rel(const char *p)
{
	return *p && *p != '/' && !path_has_dotdot(p);
}

static void drain(int fd)
{
	char buf[CP_BLOCK];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Checks and renames one entry. Return: 0, or -1 with @err. */
static int vet(struct archive_entry *e, char **top, const char *tname, struct msb_err **err)
{
	const char *p = archive_entry_pathname(e);
	_cleanup_free_ char *mapped = NULL;
	mode_t type = archive_entry_filetype(e);
	size_t tl;

	if (!p)
		return msb_err_set(err, EBADMSG, "the sandbox sent an entry without a name");
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	tl = strcspn(p, "/");
	if (!*top && !(*top = strndup(p, tl)))
		return msb_err_sys(err, ENOMEM, "cp");
	if (!safe_rel(p) || strlen(*top) != tl || strncmp(p, *top, tl) != 0)
		return msb_err_set(
			err, EPERM,
			"the sandbox sent \"%.200s\", outside the copied tree; copy stopped", p);
	if (archive_entry_hardlink(e) || (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK))
		return msb_err_set(err, EPERM,
				   "the sandbox sent \"%.200s\", which is not a file, directory or "
				   "symlink; copy stopped",
				   p);
	if (asprintf(&mapped, "%s%s", tname, p + tl) < 0)
		return msb_err_sys(err, ENOMEM, "cp");
	archive_entry_copy_pathname(e, mapped);
	archive_entry_set_perm(e, archive_entry_perm(e) & 01777);
	return 0;
}

int sbx_cp_extract(int fd, const char *target, uint64_t *nbytes, struct msb_err **err)
{
	_cleanup_free_ char *copy = strdup(target), *copy2 = strdup(target), *top = NULL;
	struct archive *in = archive_read_new(), *out = archive_write_disk_new();
	struct archive_entry *e;
	int here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC), r = 0, ar;
	const char *tname;

	*nbytes = 0;
	if (!copy || !copy2 || !in || !out || here < 0) {
		r = msb_err_sys(err, errno ? errno : ENOMEM, "cp");
		goto out;
	}
	tname = basename(copy2);
	if (chdir(dirname(copy)) < 0) {
		r = msb_err_sys(err, errno, "%s", target);
		goto out;
	}
	archive_read_support_format_tar(in);
	/* Nothing at all (the guest's half failed first) is "nothing sent", not a bad format. */
	archive_read_support_format_empty(in);
	archive_write_disk_set_options(
		out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
			     ARCHIVE_EXTRACT_SECURE_NODOTDOT |
			     ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_UNLINK);
	if (archive_read_open_fd(in, fd, CP_BLOCK) != ARCHIVE_OK) {
		r = msb_err_set(err, EIO, "reading the copy: %s", archive_error_string(in));
		goto out;
	}
	while ((ar = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
		const void *buf;
		size_t len;
		la_int64_t off;

		if (vet(e, &top, tname, err) < 0) {
			r = -1;
			break;
		}
		if (archive_write_header(out, e) != ARCHIVE_OK) {
			r = msb_err_set(err, EIO, "%s: %s", archive_entry_pathname(e),
					archive_error_string(out));
			break;
		}
		while ((ar = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK) {
			if (archive_write_data_block(out, buf, len, off) < 0) {
				r = msb_err_set(err, EIO, "%s: %s", archive_entry_pathname(e),
						archive_error_string(out));
				break;
			}
			*nbytes += len;
		}
		if (r < 0)
			break;
		if (ar != ARCHIVE_EOF) {
			r = msb_err_set(err, EIO, "reading the copy: %s", archive_error_string(in));
			break;
		}
		if (archive_write_finish_entry(out) != ARCHIVE_OK) {
			r = msb_err_set(err, EIO, "%s: %s", archive_entry_pathname(e),
					archive_error_string(out));
			break;
		}
	}
	if (!r && ar != ARCHIVE_EOF)
		r = msb_err_set(err, EIO, "reading the copy: %s", archive_error_string(in));
	if (!r && !top)
		r = msb_err_set(err, EIO, "the sandbox sent nothing");
	/* Directory times and modes are set at close. */
	if (archive_write_close(out) != ARCHIVE_OK && !r)
		r = msb_err_set(err, EIO, "%s: %s", target, archive_error_string(out));
out:
	drain(fd);
	if (in)
		archive_read_free(in);
	if (out)
		archive_write_free(out);
	if (here >= 0) {
		(void)!fchdir(here);
		close(here);
	}
	return r;
}

static int write_all_cb(const char *what, struct archive *w, const void *p, size_t n,
			struct msb_err **err)
{
	if (archive_write_data(w, p, n) < 0)
		return msb_err_set(err, EIO, "%s: %s", what, archive_error_string(w));
	return 0;
}

int sbx_cp_archive(const char *src, int fd, uint64_t *nbytes, struct msb_err **err)
{
	_cleanup_free_ char *abs = NULL, *copy = NULL;
	struct archive *disk = archive_read_disk_new(), *w = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	struct stat st;
	size_t prefix;
	int r = 0, ar;

	*nbytes = 0;
	if (!disk || !w || !e) {
		r = msb_err_sys(err, ENOMEM, "cp");
		goto out;
	}
	if (lstat(src, &st) < 0) {
		r = msb_err_set(err, errno, "%s: %s", src, strerror(errno));
		goto out;
	}
	/* The name is the last component as given; its directory is resolved. */
	copy = strdup(src);
	while (copy && strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	if (!copy) {
		r = msb_err_sys(err, ENOMEM, "cp");
		goto out;
	}
	{
		_cleanup_free_ char *d = strdup(copy), *b = strdup(copy);
		_cleanup_free_ char *real = d ? realpath(dirname(d), NULL) : NULL;

		if (!real || !b ||
		    asprintf(&abs, "%s/%s", strcmp(real, "/") ? real : "", basename(b)) < 0) {
			abs = NULL;
			r = msb_err_sys(err, errno ? errno : ENOMEM, "%s", src);
			goto out;
		}
		prefix = strlen(real) + (strcmp(real, "/") ? 1 : 0);
	}
	archive_read_disk_set_symlink_physical(disk);
	archive_write_set_format_pax_restricted(w);
	archive_write_set_bytes_in_last_block(w, 1);
	if (archive_write_open_fd(w, fd) != ARCHIVE_OK ||
	    archive_read_disk_open(disk, abs) != ARCHIVE_OK) {
		r = msb_err_set(err, EIO, "%s: %s", src,
				archive_error_string(archive_errno(w) ? w : disk));
		goto out;
	}
	while ((ar = archive_read_next_header2(disk, e)) == ARCHIVE_OK) {
		const char *p = archive_entry_sourcepath(e);
		mode_t type = archive_entry_filetype(e);
		const void *buf;
		size_t len;
		la_int64_t off;

		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
			continue; /* devices, fifos, sockets: not copied */
		if (!p || strlen(p) < prefix) {
			r = msb_err_set(err, EIO, "%s: unexpected entry", src);
			break;
		}
		archive_entry_copy_pathname(e, p + prefix);
		archive_read_disk_descend(disk);
		if (archive_write_header(w, e) != ARCHIVE_OK) {
			r = msb_err_set(err, EIO, "%s: %s", p, archive_error_string(w));
			break;
		}
		while (type == AE_IFREG &&
		       (ar = archive_read_data_block(disk, &buf, &len, &off)) == ARCHIVE_OK) {
			if (write_all_cb(p, w, buf, len, err) < 0) {
				r = -1;
				break;
			}
			*nbytes += len;
		}
		if (r < 0)
			break;
		if (type == AE_IFREG && ar != ARCHIVE_EOF) {
			r = msb_err_set(err, EIO, "%s: %s", p, archive_error_string(disk));
			break;
		}
	}
	if (!r && ar != ARCHIVE_EOF)
		r = msb_err_set(err, EIO, "%s: %s", src, archive_error_string(disk));
	if (archive_write_close(w) != ARCHIVE_OK && !r)
		r = msb_err_set(err, EIO, "sending %s: %s", src, archive_error_string(w));
out:
	if (e)
		archive_entry_free(e);
	if (disk)
		archive_read_free(disk);
	if (w)
		archive_write_free(w);
	return r;
}
