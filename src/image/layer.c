// SPDX-License-Identifier: Apache-2.0
/*
 * OCI layer -> squashfs. libarchive decompresses the blob into a raw tar
 * stream (hashed on the way for the diff_id) and a second libarchive reader
 * parses that stream; each member is checked and rewritten as pax and piped
 * into tar2sqfs. Directories are held back to the end of the layer so an
 * opaque marker can still reach them (tar2sqfs lets a late directory entry
 * set the attributes of one it created implicitly).
 *
 * DOC: Cost of a layer
 * Everything a layer makes the converter do is bounded by what the layer
 * itself contains, so a small blob cannot buy a lot of memory or time:
 *
 * - what is held across entries (directory records with their paths and
 *   xattrs, the symlink set, the directory index) is counted in one budget,
 *   LAYER_MAX_HELD, allocator overhead included;
 * - one entry's xattrs are capped in total (LAYER_MAX_XATTR_BYTES) and its
 *   headers as libarchive reads them (LAYER_MAX_HEADER: pax records, GNU long
 *   names and sparse maps, which libarchive turns into a list of ~50 bytes a
 *   region) are capped while libarchive reads them;
 * - the holes of sparse files cost writing zeros (tar2sqfs would expand them
 *   itself, at about 0.25 s of CPU a GiB), so they are bounded relative to
 *   the layer's own bytes (LAYER_SPARSE_FREE, LAYER_SPARSE_RATIO);
 * - per-entry work is linear in the entry: parent directories are checked
 *   against the symlink set with one incremental hash over the path, and the
 *   maps are seeded per process so that chosen names cannot collide.
 */
#define _GNU_SOURCE
#include "image/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/digest.h"
#include "image/tarw.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"
#include "util/strmap.h"

#define PATH_LEN	4096
#define XATTR_MAX_VALUE (64u << 10)
#define XATTR_MAX_COUNT 64
#define FLUSH_AT	(1u << 20)
#define CHUNK		((size_t)64 * 1024)
/* What malloc adds to each allocation, counted so that the budget is honest. */
#define ALLOC_OVERHEAD ((size_t)16)
#define WAIT_POLL_MS   20

struct xattr_copy {
	char *name;
	void *value;
	size_t len;
};

/* A directory held back until the end of the layer. */
struct dir_rec {
	char *path;
	uint32_t mode;
	uint64_t uid, gid;
	int64_t mtime;
	bool opaque;
	struct xattr_copy *xattrs;
	size_t nxattrs;
	size_t cost; /* bytes of @path and @xattrs, as counted in conv.held */
};

struct conv {
	struct archive *outer, *inner;
	struct sha256 h;
	uint64_t tar_bytes;
	uint64_t out_bytes; /* regular file bytes written, holes included */
	uint64_t holes;	    /* zeros written for holes of sparse files */
	uint64_t entries;
	bool in_header;	       /* libarchive is reading the next entry's headers */
	uint64_t header_bytes; /* ... and has read this much for them */
	uint8_t rbuf[64 * 1024];
	struct buf out;
	int (*sink)(void *ctx, const void *p, size_t n);
	void *sink_ctx;
	const atomic_bool *cancel;
	struct strmap links; /* symlinks seen in this layer */
	struct strmap dir_index;
	struct dir_rec *dirs;
	size_t ndirs, cap;
	size_t held; /* bytes of the directory records' paths and xattrs */
	struct msb_err **err;
};

/* Return: true (with the error set) once the caller asked the conversion to stop. */
static bool cancelled(struct conv *c)
{
	if (!c->cancel || !atomic_load_explicit(c->cancel, memory_order_relaxed))
		return false;
	msb_err_set(c->err, EINTR, "interrupted");
	msb_err_exit(c->err, 130);
	return true;
}

static int flush(struct conv *c, bool all)
{
	if (buf_size(&c->out) < (all ? 1 : FLUSH_AT))
		return 0;
	if (cancelled(c))
		return -1;
	if (c->sink(c->sink_ctx, buf_head(&c->out), buf_size(&c->out)) < 0)
		return msb_err_set(c->err, EPIPE, "tar2sqfs stopped reading");
	buf_clear(&c->out);
	return 0;
}

/*
 * Normalises an archive path: strips "./" and empty components. Absolute
 * paths and ".." are refused. Return: 0 ("" is the root) or -1 with @err.
 */
static int norm_path(const char *in, char *out, struct msb_err **err)
{
	size_t o = 0;
	const char *p = in;

	if (*p == '/')
		return msb_err_set(err, EINVAL, "layer contains an absolute path \"%.200s\"", in);
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return msb_err_set(err, EINVAL,
					   "layer path \"%.200s\" escapes the root (..)", in);
		if (n > 255)
			return msb_err_set(err, EINVAL,
					   "layer path \"%.200s\" has a name over 255 bytes", in);
		if (n && !(n == 1 && p[0] == '.')) {
			if (o + n + 2 > PATH_LEN)
				return msb_err_set(err, ENAMETOOLONG,
						   "layer path too long: \"%.200s...\"", in);
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p = e ? e + 1 : p + n;
	}
	out[o] = '\0';
	return 0;
}

/*
 * Refuses a path whose parent directories include a symlink of this layer.
 * One pass: the hash of each '/'-prefix is the running hash of the path so
 * far, and a string comparison happens only when a stored hash matches.
 */
static int check_parents(struct conv *c, const char *path, const char *orig)
{
	uint64_t h;

	if (!c->links.len)
		return 0;
	h = strmap_hash_init();
	for (size_t i = 0; path[i]; i++) {
		if (path[i] == '/' && strmap_get_hashed(&c->links, path, i, h, NULL))
			return msb_err_set(
				c->err, EINVAL,
				"layer path \"%.200s\" goes through the symlink \"%.*s\"", orig,
				(int)(i < 200 ? i : 200), path);
		h = strmap_hash_step(h, (unsigned char)path[i]);
	}
	return 0;
}

static void free_xattrs(struct xattr_copy *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(x[i].name);
		free(x[i].value);
	}
	free(x);
}

/* What one held xattr costs in memory. */
static size_t xattr_cost(const struct xattr_copy *x)
{
	return sizeof(*x) + strlen(x->name) + 1 + x->len + 2 * ALLOC_OVERHEAD;
}

/*
 * Collects a member's xattrs. Overlayfs's own (trusted.overlay.*) are
 * dropped: only whiteout conversion may set those.
 */
static int read_xattrs(struct conv *c, struct archive_entry *ae, struct xattr_copy **out, size_t *n)
{
	const char *name;
	const void *val;
	size_t len, total = 0;

	*out = NULL;
	*n = 0;
	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &name, &val, &len) == ARCHIVE_OK) {
		struct xattr_copy *nx;

		if (!strncmp(name, "trusted.overlay.", 16))
			continue;
		if (!*name || strlen(name) > 255 || strchr(name, '=') || len > XATTR_MAX_VALUE ||
		    *n >= XATTR_MAX_COUNT)
			return msb_err_set(c->err, EINVAL,
					   "layer entry \"%.200s\" has an invalid xattr",
					   archive_entry_pathname(ae));
		for (const char *q = name; *q; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f)
				return msb_err_set(c->err, EINVAL,
						   "layer has an invalid xattr name");
		total += strlen(name) + len;
		if (total > LAYER_MAX_XATTR_BYTES)
			return msb_err_set(c->err, E2BIG,
					   "layer entry \"%.200s\" has more than %u KiB of xattrs",
					   archive_entry_pathname(ae), LAYER_MAX_XATTR_BYTES >> 10);
		nx = realloc(*out, sizeof(**out) * (*n + 1));
		if (!nx)
			return msb_err_sys(c->err, ENOMEM, "layer");
		*out = nx;
		nx[*n].name = strdup(name);
		nx[*n].value = malloc(len ? len : 1);
		nx[*n].len = len;
		if (!nx[*n].name || !nx[*n].value) {
			(*n)++;
			return msb_err_sys(c->err, ENOMEM, "layer");
		}
		memcpy(nx[*n].value, val, len);
		(*n)++;
	}
	return 0;
}

static struct dir_rec *dir_get(struct conv *c, const char *path)
{
	size_t i;

	if (strmap_get(&c->dir_index, path, &i))
		return &c->dirs[i];
	if (c->ndirs == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct dir_rec *nd = realloc(c->dirs, cap * sizeof(*nd));

		if (!nd)
			return NULL;
		c->dirs = nd;
		c->cap = cap;
	}
	c->dirs[c->ndirs] = (struct dir_rec){ .path = strdup(path), .mode = 0755 };
	if (!c->dirs[c->ndirs].path || strmap_put(&c->dir_index, path, c->ndirs) < 0) {
		free(c->dirs[c->ndirs].path);
		return NULL;
	}
	c->dirs[c->ndirs].cost = strlen(path) + 1 + ALLOC_OVERHEAD;
	c->held += c->dirs[c->ndirs].cost;
	return &c->dirs[c->ndirs++];
}

/* Gives @d the xattrs @x (taking them over), keeping conv.held exact. */
static void dir_set_xattrs(struct conv *c, struct dir_rec *d, struct xattr_copy *x, size_t n)
{
	for (size_t i = 0; i < d->nxattrs; i++) {
		size_t k = xattr_cost(&d->xattrs[i]);

		d->cost -= k;
		c->held -= k;
	}
	free_xattrs(d->xattrs, d->nxattrs);
	d->xattrs = x;
	d->nxattrs = n;
	for (size_t i = 0; i < n; i++) {
		size_t k = xattr_cost(&x[i]);

		d->cost += k;
		c->held += k;
	}
}

/* Everything held across entries, in bytes. */
static size_t held_total(const struct conv *c)
{
	return c->held + c->cap * sizeof(struct dir_rec) + strmap_bytes(&c->links) +
	       strmap_bytes(&c->dir_index);
}

static int emit(struct conv *c, const struct tar_entry *e)
{
	int r = tarw_header(&c->out, e);

	if (r == -E2BIG)
		return msb_err_set(c->err, E2BIG,
				   "layer entry \"%.200s\" has more metadata than one tar header "
				   "holds (%u KiB)",
				   e->path, TARW_MAX_PAX >> 10);
	if (r < 0)
		return msb_err_sys(c->err, -r, "layer entry \"%.200s\"", e->path);
	return flush(c, false);
}

/* The most hole bytes the layer may have written once it has read its first @tar_bytes. */
static uint64_t holes_allowed(uint64_t tar_bytes)
{
	uint64_t ratio = tar_bytes > UINT64_MAX / LAYER_SPARSE_RATIO
				 ? UINT64_MAX
				 : tar_bytes * LAYER_SPARSE_RATIO;

	return ratio > LAYER_SPARSE_FREE ? ratio : LAYER_SPARSE_FREE;
}

static int too_sparse(struct conv *c, const char *name)
{
	return msb_err_set(c->err, E2BIG,
			   "layer entry \"%.200s\" is sparse beyond what msb expands (more than "
			   "%llu MiB of holes and %u times the layer's data)",
			   name, (unsigned long long)(LAYER_SPARSE_FREE >> 20), LAYER_SPARSE_RATIO);
}

/* Appends @n zero bytes of a sparse file's hole. */
static int zeros(struct conv *c, uint64_t n, const char *name)
{
	uint64_t allowed = holes_allowed(c->tar_bytes);

	if (n > allowed || c->holes > allowed - n)
		return too_sparse(c, name);
	c->holes += n;
	while (n) {
		size_t k = n < CHUNK ? (size_t)n : CHUNK;
		uint8_t *p = buf_tail(&c->out, k);

		if (!p)
			return msb_err_sys(c->err, ENOMEM, "layer");
		memset(p, 0, k);
		buf_commit(&c->out, k);
		n -= k;
		if (flush(c, false) < 0)
			return -1;
	}
	return 0;
}

/*
 * The holes a sparse member declares (its size less its data regions), so
 * that a layer that would blow the hole budget is refused before any zero
 * is written. Return: hole bytes (0 for an ordinary member).
 */
static uint64_t declared_holes(struct archive_entry *ae, uint64_t size)
{
	la_int64_t off, len;
	uint64_t data = 0;

	if (archive_entry_sparse_reset(ae) <= 0)
		return 0;
	while (archive_entry_sparse_next(ae, &off, &len) == ARCHIVE_OK) {
		if (off < 0 || len < 0 || (uint64_t)off >= size)
			continue;
		data += (uint64_t)len < size - (uint64_t)off ? (uint64_t)len : size - (uint64_t)off;
		if (data >= size)
			return 0;
	}
	return size - data;
}

/*
 * Copies a member's content. Data comes in blocks at offsets; the gaps of a
 * sparse file (and its tail) are holes, written out as zeros.
 */
static int copy_data(struct conv *c, struct archive_entry *ae, uint64_t size)
{
	uint64_t done = 0;

	for (;;) {
		const void *blk;
		size_t n;
		la_int64_t off;
		int r;

		if (cancelled(c))
			return -1;
		r = archive_read_data_block(c->inner, &blk, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return msb_err_set(c->err, EIO, "layer entry \"%.200s\": %s",
					   archive_entry_pathname(ae),
					   archive_error_string(c->inner));
		if (off < 0 || (uint64_t)off < done || (uint64_t)off > size ||
		    n > size - (uint64_t)off)
			return msb_err_set(c->err, EINVAL,
					   "layer entry \"%.200s\" has data outside its size",
					   archive_entry_pathname(ae));
		if (zeros(c, (uint64_t)off - done, archive_entry_pathname(ae)) < 0)
			return -1;
		if (buf_append(&c->out, blk, n) < 0)
			return msb_err_sys(c->err, ENOMEM, "layer");
		done = (uint64_t)off + n;
		if (flush(c, false) < 0)
			return -1;
	}
	if (zeros(c, size - done, archive_entry_pathname(ae)) < 0)
		return -1;
	if (tarw_pad(&c->out, size) < 0)
		return msb_err_sys(c->err, ENOMEM, "layer");
	return flush(c, false);
}

static int whiteout(struct conv *c, struct archive_entry *ae, const char *path, const char *base)
{
	char target[PATH_LEN] = "";
	size_t dlen = (size_t)(base - path);
	struct tar_entry e = { .type = '3', .mode = 0, .mtime = archive_entry_mtime(ae) };

	if (!strcmp(base, ".wh..wh..opq")) {
		/* Everything of the directory below this layer is hidden. */
		struct dir_rec *d;

		memcpy(target, path, dlen ? dlen - 1 : 0);
		target[dlen ? dlen - 1 : 0] = '\0';
		d = dir_get(c, target);
		if (!d)
			return msb_err_sys(c->err, ENOMEM, "layer");
		d->opaque = true;
		return 0;
	}
	if (!strncmp(base, ".wh..wh.", 8))
		return 0; /* aufs bookkeeping, meaningless here */
	if (!base[4] || !strcmp(base + 4, ".") || !strcmp(base + 4, ".."))
		return msb_err_set(c->err, EINVAL, "layer has an invalid whiteout \"%.200s\"",
				   path);
	memcpy(target, path, dlen);
	memcpy(target + dlen, base + 4, strlen(base + 4) + 1);
	e.path = target;
	return emit(c, &e);
}

static int entry(struct conv *c, struct archive_entry *ae)
{
	const char *raw = archive_entry_pathname(ae), *hl = archive_entry_hardlink(ae);
	char path[PATH_LEN] = "", link[PATH_LEN] = "";
	struct xattr_copy *xa = NULL;
	struct tar_xattr tx[XATTR_MAX_COUNT];
	size_t nxa = 0;
	const char *base;
	mode_t type = archive_entry_filetype(ae);
	struct tar_entry e = { 0 };
	int r = -1;

	if (!raw)
		return msb_err_set(c->err, EINVAL, "layer entry without a name");
	if (++c->entries > LAYER_MAX_ENTRIES)
		return msb_err_set(c->err, E2BIG, "layer has more than %u entries",
				   LAYER_MAX_ENTRIES);
	if (norm_path(raw, path, c->err) < 0 || check_parents(c, path, raw) < 0)
		return -1;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	/* Linear: each step starts after the '/' the previous one found. */
	for (const char *p = path; p < base; p = strchr(p, '/') + 1)
		if (!strncmp(p, ".wh.", 4))
			return msb_err_set(c->err, EINVAL,
					   "layer path \"%.200s\" is inside a whiteout", raw);
	if (!strncmp(base, ".wh.", 4))
		return whiteout(c, ae, path, base);
	/* Only a directory may stand for the root ("", ".", "./"). */
	if (!*path && (hl || type != AE_IFDIR))
		return msb_err_set(c->err, EINVAL,
				   "layer entry \"%.200s\" names the root but is not a directory",
				   raw);
	if (archive_entry_uid(ae) < 0 || archive_entry_uid(ae) > UINT32_MAX ||
	    archive_entry_gid(ae) < 0 || archive_entry_gid(ae) > UINT32_MAX)
		return msb_err_set(c->err, EINVAL, "layer entry \"%.200s\" has an invalid owner",
				   raw);
	if (read_xattrs(c, ae, &xa, &nxa) < 0)
		goto out;
	for (size_t i = 0; i < nxa; i++)
		tx[i] = (struct tar_xattr){ xa[i].name, xa[i].value, xa[i].len };
	e = (struct tar_entry){ .path = path,
				.mode = archive_entry_perm(ae) & 07777,
				.uid = (uint64_t)archive_entry_uid(ae),
				.gid = (uint64_t)archive_entry_gid(ae),
				.mtime = archive_entry_mtime(ae),
				.xattrs = tx,
				.nxattrs = nxa };

	if (hl) {
		if (norm_path(hl, link, c->err) < 0 || check_parents(c, link, hl) < 0)
			goto out;
		if (!*link) {
			r = msb_err_set(c->err, EINVAL,
					"layer hard link \"%.200s\" points at the root", raw);
			goto out;
		}
		e.type = '1';
		e.link = link;
		r = emit(c, &e);
		goto out;
	}
	switch (type) {
	case AE_IFDIR: {
		struct dir_rec *d = dir_get(c, path);

		if (!d) {
			r = msb_err_sys(c->err, ENOMEM, "layer");
			goto out;
		}
		d->mode = e.mode;
		d->uid = e.uid;
		d->gid = e.gid;
		d->mtime = e.mtime;
		dir_set_xattrs(c, d, steal_ptr(xa), nxa);
		nxa = 0;
		r = 0;
		goto out;
	}
	case AE_IFREG:
		if (archive_entry_size(ae) < 0) {
			r = msb_err_set(c->err, EINVAL,
					"layer entry \"%.200s\" has a negative size", raw);
			goto out;
		}
		e.type = '0';
		e.size = (uint64_t)archive_entry_size(ae);
		/* A sparse member expands beyond its bytes in the stream: count what is written. */
		c->out_bytes += e.size;
		if (e.size > LAYER_MAX_BYTES || c->out_bytes > LAYER_MAX_BYTES) {
			r = msb_err_set(c->err, E2BIG,
					"layer expands to more than 64 GiB (entry \"%.200s\")",
					raw);
			goto out;
		}
		{
			uint64_t holes = declared_holes(ae, e.size),
				 allowed = holes_allowed(c->tar_bytes);

			if (holes > allowed || c->holes > allowed - holes) {
				r = too_sparse(c, raw);
				goto out;
			}
		}
		r = emit(c, &e);
		if (!r)
			r = copy_data(c, ae, e.size);
		goto out;
	case AE_IFLNK:
		e.type = '2';
		e.link = archive_entry_symlink(ae);
		if (!e.link || !*e.link || strlen(e.link) >= PATH_LEN) {
			r = msb_err_set(c->err, EINVAL,
					"layer symlink \"%.200s\" has no valid target", raw);
			goto out;
		}
		if (strmap_put(&c->links, path, 0) < 0) {
			r = msb_err_sys(c->err, ENOMEM, "layer");
			goto out;
		}
		r = emit(c, &e);
		goto out;
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
		e.type = type == AE_IFCHR ? '3' : type == AE_IFBLK ? '4' : '6';
		e.devmajor = (uint32_t)archive_entry_rdevmajor(ae);
		e.devminor = (uint32_t)archive_entry_rdevminor(ae);
		r = emit(c, &e);
		goto out;
	case AE_IFSOCK:
		r = 0; /* a socket in an image means nothing once copied */
		goto out;
	default:
		r = msb_err_set(c->err, EINVAL, "layer entry \"%.200s\" has an unknown type", raw);
	}
out:
	free_xattrs(xa, nxa);
	return r < 0 ? -1 : 0;
}

static int emit_dirs(struct conv *c)
{
	static const char opaque_val[] = "y";

	for (size_t i = 0; i < c->ndirs; i++) {
		struct dir_rec *d = &c->dirs[i];
		struct tar_xattr tx[XATTR_MAX_COUNT + 1];
		size_t n = 0;
		struct tar_entry e = { .path = d->path,
				       .type = '5',
				       .mode = d->mode,
				       .uid = d->uid,
				       .gid = d->gid,
				       .mtime = d->mtime,
				       .xattrs = tx };

		for (size_t k = 0; k < d->nxattrs; k++)
			tx[n++] = (struct tar_xattr){ d->xattrs[k].name, d->xattrs[k].value,
						      d->xattrs[k].len };
		if (d->opaque)
			tx[n++] = (struct tar_xattr){ "trusted.overlay.opaque", opaque_val, 1 };
		e.nxattrs = n;
		if (emit(c, &e) < 0)
			return -1;
	}
	return 0;
}

static la_ssize_t inner_read(struct archive *a, void *arg, const void **buf)
{
	struct conv *c = arg;
	la_ssize_t n;

	if (cancelled(c)) {
		archive_set_error(a, EINTR, "interrupted");
		return -1;
	}
	n = archive_read_data(c->outer, c->rbuf, sizeof(c->rbuf));
	if (n > 0) {
		sha256_update(&c->h, c->rbuf, (size_t)n);
		c->tar_bytes += (uint64_t)n;
		if (c->tar_bytes > LAYER_MAX_BYTES) {
			archive_set_error(a, E2BIG, "layer expands to more than 64 GiB");
			return -1;
		}
		/* One read of slack: libarchive reads ahead of what it parses. */
		if (c->in_header &&
		    (c->header_bytes += (uint64_t)n) > LAYER_MAX_HEADER + sizeof(c->rbuf)) {
			msb_err_set(c->err, E2BIG, "layer has a tar header over %u MiB",
				    LAYER_MAX_HEADER >> 20);
			archive_set_error(a, E2BIG, "tar header too large");
			return -1;
		}
	}
	*buf = c->rbuf;
	return n;
}

static void conv_free(struct conv *c)
{
	if (c->inner)
		archive_read_free(c->inner);
	if (c->outer)
		archive_read_free(c->outer);
	sha256_free(&c->h);
	buf_free(&c->out);
	strmap_free(&c->links);
	strmap_free(&c->dir_index);
	for (size_t i = 0; i < c->ndirs; i++) {
		free(c->dirs[i].path);
		free_xattrs(c->dirs[i].xattrs, c->dirs[i].nxattrs);
	}
	free(c->dirs);
}

/* Runs the whole transformation on the blob attached to c->outer. */
static int run(struct conv *c, char *diff_id_out)
{
	struct archive_entry *ae;
	int r;

	if (sha256_init(&c->h) < 0)
		return msb_err_sys(c->err, ENOMEM, "sha256");
	if (archive_read_next_header(c->outer, &ae) != ARCHIVE_OK)
		return msb_err_set(c->err, EIO, "layer: %s", archive_error_string(c->outer));
	c->inner = archive_read_new();
	if (!c->inner)
		return msb_err_sys(c->err, ENOMEM, "libarchive");
	archive_read_support_format_tar(c->inner);
	archive_read_support_format_gnutar(c->inner);
	if (archive_read_open(c->inner, c, NULL, inner_read, NULL) != ARCHIVE_OK)
		return msb_err_set(c->err, EIO, "layer is not a tar archive: %s",
				   archive_error_string(c->inner));
	for (;;) {
		/* Bytes read for the headers are counted: see LAYER_MAX_HEADER. */
		c->in_header = true;
		c->header_bytes = 0;
		r = archive_read_next_header(c->inner, &ae);
		c->in_header = false;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			break;
		if (entry(c, ae) < 0)
			return -1;
		/* Content nobody read (directories with a size...) goes now, outside the header
		 * count. */
		if (archive_read_data_skip(c->inner) != ARCHIVE_OK)
			return msb_err_set(c->err, EIO, "layer tar: %s",
					   archive_error_string(c->inner));
		if (held_total(c) > LAYER_MAX_HELD)
			return msb_err_set(c->err, E2BIG,
					   "layer holds more than %u MiB of directory and link "
					   "metadata",
					   LAYER_MAX_HELD >> 20);
	}
	if (r != ARCHIVE_EOF)
		return msb_err_set(c->err, EIO, "layer tar: %s", archive_error_string(c->inner));
	if (emit_dirs(c) < 0)
		return -1;
	if (tarw_end(&c->out) < 0)
		return msb_err_sys(c->err, ENOMEM, "layer");
	if (flush(c, true) < 0)
		return -1;
	/* The diff_id covers the whole stream, padding after the end marker too. */
	for (;;) {
		la_ssize_t n;

		if (cancelled(c))
			return -1;
		n = archive_read_data(c->outer, c->rbuf, sizeof(c->rbuf));
		if (n < 0)
			return msb_err_set(c->err, EIO, "layer: %s",
					   archive_error_string(c->outer));
		if (n == 0)
			break;
		sha256_update(&c->h, c->rbuf, (size_t)n);
		c->tar_bytes += (uint64_t)n;
		if (c->tar_bytes > LAYER_MAX_BYTES)
			return msb_err_set(c->err, E2BIG, "layer expands to more than 64 GiB");
	}
	sha256_final(&c->h, diff_id_out);
	return 0;
}

static int outer_open(struct conv *c)
{
	c->outer = archive_read_new();
	if (!c->outer)
		return msb_err_sys(c->err, ENOMEM, "libarchive");
	/*
	 * Only the compressions OCI layers use: "all" would let registry data
	 * choose decoders, some of which run external programs.
	 */
	archive_read_support_filter_gzip(c->outer);
	archive_read_support_filter_zstd(c->outer);
	archive_read_support_format_raw(c->outer);
	return 0;
}

static int sink_fd(void *ctx, const void *p, size_t n)
{
	return write_all(*(int *)ctx, p, n);
}

static int sink_file(void *ctx, const void *p, size_t n)
{
	return fwrite(p, 1, n, ctx) == n ? 0 : -EIO;
}

int layer_transform(FILE *in, FILE *tar_out, char *diff_id_out, struct msb_err **err)
{
	struct conv *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return msb_err_sys(err, ENOMEM, "layer");
	c->err = err;
	c->sink = sink_file;
	c->sink_ctx = tar_out;
	r = outer_open(c);
	if (!r && archive_read_open_FILE(c->outer, in) != ARCHIVE_OK)
		r = msb_err_set(err, EIO, "layer: %s", archive_error_string(c->outer));
	if (!r)
		r = run(c, diff_id_out);
	conv_free(c);
	free(c);
	return r;
}

/* Hands the error in *@from to @err (unless @err already holds one: the first wins). */
static void take_err(struct msb_err **err, struct msb_err **from)
{
	if (err && !*err && *from) {
		*err = *from;
		*from = NULL;
	}
}

/* Starts tar2sqfs writing @out with stdin from @in_fd and stderr to @err_fd. */
static int spawn_tar2sqfs(const char *out, int in_fd, int err_fd, pid_t *pid)
{
	char jobs[16];
	char *argv[] = { "tar2sqfs",	 "--quiet",
			 "--force",	 "--no-skip",
			 "--compressor", LAYER_COMPRESSOR,
			 "--num-jobs",	 jobs,
			 "--defaults",	 "uid=0,gid=0,mode=0755,mtime=0",
			 (char *)out,	 NULL };
	struct spawn_opts o = spawn_opts_stdio(argv, in_fd, SPAWN_NULL, err_fd);

	snprintf(jobs, sizeof(jobs), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
	return spawn(&o, pid);
}

/*
 * Collects tar2sqfs's first stderr line into @msg and reaps it. While it
 * finishes (it may compress for a while after its input ended), @cancel is
 * polled and the child killed when it turns true. Return: the wait status.
 */
static int finish_tar2sqfs(pid_t pid, int errfd, const atomic_bool *cancel, char *msg, size_t cap)
{
	size_t have = 0;
	int st = 0;

	for (;;) {
		struct pollfd pfd = { .fd = errfd, .events = POLLIN };
		char junk[512];
		ssize_t n;

		if (cancel && atomic_load(cancel))
			kill(pid, SIGKILL);
		if (poll(&pfd, 1, WAIT_POLL_MS) == 0)
			continue;
		/* Keep the start; drain the rest so tar2sqfs never blocks on a full pipe. */
		n = have < cap - 1 ? read(errfd, msg + have, cap - 1 - have)
				   : read(errfd, junk, sizeof(junk));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		if (have < cap - 1)
			have += (size_t)n;
	}
	msg[have] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	spawn_wait(pid, &st);
	return st;
}

int layer_convert(int blob_fd, const char *diff_id, const char *out_path, uint64_t *tar_bytes,
		  const atomic_bool *cancel, struct msb_err **err)
{
	struct conv *c = calloc(1, sizeof(*c));
	struct msb_err *run_err = NULL;
	int in[2] = { -1, -1 }, errp[2] = { -1, -1 }, st = 0, r;
	char got[DIGEST_LEN] = "", msg[512] = "";
	pid_t pid = -1;

	if (!c)
		return msb_err_sys(err, ENOMEM, "layer");
	c->err = &run_err;
	c->sink = sink_fd;
	c->cancel = cancel;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		r = msb_err_sys(err, errno, "pipe");
		goto out;
	}
	r = spawn_tar2sqfs(out_path, in[0], errp[1], &pid);
	if (r < 0) {
		r = msb_err_sys(err, -r, "tar2sqfs (install squashfs-tools-ng)");
		goto out;
	}
	close(steal_fd(in[0]));
	close(steal_fd(errp[1]));
	c->sink_ctx = &in[1];
	r = outer_open(c);
	if (!r && archive_read_open_fd(c->outer, blob_fd, 2 * CHUNK) != ARCHIVE_OK)
		r = msb_err_set(&run_err, EIO, "layer: %s", archive_error_string(c->outer));
	if (!r)
		r = run(c, got);
	close(steal_fd(in[1]));
	/* A refused layer needs no squashfs: do not wait for tar2sqfs to notice. */
	if (r < 0 && !(run_err && run_err->code == EPIPE))
		kill(pid, SIGKILL);
	st = finish_tar2sqfs(pid, errp[0], cancel, msg, sizeof(msg));
	pid = -1;
	if (r < 0 && run_err && run_err->code == EPIPE && *msg) {
		/* tar2sqfs gave up first: its reason is the one to tell. */
		r = msb_err_set(err, EIO, "tar2sqfs failed: %s", msg);
	} else if (r < 0) {
		take_err(err, &run_err);
	} else if (cancel && atomic_load(cancel)) {
		/* Cancelled while tar2sqfs was finishing: it has been killed. */
		msb_err_set(err, EINTR, "interrupted");
		msb_err_exit(err, 130);
		r = -1;
	}
	if (!r && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		r = msb_err_set(err, EIO, "tar2sqfs failed: %s", *msg ? msg : "unknown error");
	if (!r && diff_id && strcmp(got, diff_id) != 0)
		r = msb_err_set(err, EBADMSG,
				"layer content does not match its diff_id %s (got %s): corrupt or "
				"tampered image",
				diff_id, got);
	if (!r && tar_bytes)
		*tar_bytes = c->tar_bytes;
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		spawn_wait(pid, NULL);
	}
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	msb_err_free(run_err);
	conv_free(c);
	free(c);
	if (r < 0)
		unlink(out_path);
	return r < 0 ? -1 : 0;
}
