// SPDX-License-Identifier: Apache-2.0
/*
 * Image archives. Loading reads the whole (untrusted) tar once into a
 * private directory under cache/blobs, hashing every member as it is
 * written, then follows the archive's index: OCI image layouts name blobs
 * by digest (checked against the hash), docker-archives name files whose
 * hashes become the digests. Every blob of every image is checked before
 * any layer is converted; layers then go through layer_convert(), which
 * checks the config's diff_ids, under the same layer locks a pull takes.
 *
 * Saving turns each layer's squashfs image back into an OCI tar (sqfs2tar,
 * overlayfs whiteouts back to ".wh." files) because the store keeps no
 * blobs; the configs get the new diff_ids and the manifests are msb's own.
 */
#define _GNU_SOURCE
#include "image/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/digest.h"
#include "image/layer.h"
#include "image/ref.h"
#include "image/registry.h"
#include "image/store.h"
#include "image/tarw.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"
#include "util/strv.h"

#define ANN_REF_NAME	  "org.opencontainers.image.ref.name"
#define ANN_CONTAINERD	  "io.containerd.image.name"
#define MT_OCI_LAYER_TAR  "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define OCI_LAYOUT	  "{\"imageLayoutVersion\":\"1.0.0\"}"
#define LAYER_BLOB_MAX	  (LAYER_MAX_BYTES + (LAYER_MAX_BYTES >> 6))
/* Layers converted at once by a load. */
#define LOAD_MAX_CONVERT 16
/* Copies look at the cancel descriptor this often. */
#define CANCEL_EVERY (1u << 20)
#define COPY_CHUNK   (1u << 16)
/* The most extended attributes one saved file may carry. */
#define SAVE_MAX_XATTRS 64
/*
 * A load writes the archive's members to cache/blobs, at most the space free
 * there when it starts less this margin (what the layers' conversion, the
 * database and everything else on that disk need), and never above
 * LOAD_MAX_TOTAL however free the disk is.
 */
#define LOAD_FREE_MARGIN (256ull << 20)
#define LOAD_MAX_TOTAL	 (1ull << 40)
/* Layers a concurrent msb is converting or deleting are looked at again this often (ms). */
#define LOCK_RETRY_MS 50
/* Tries at a private directory that a concurrent sweep removed as it was made. */
#define PRIVATE_DIR_TRIES 4

int archive_member_path(const char *raw, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = raw;

	if (!raw || !cap || *raw == '/')
		return -1;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return -1;
		if (n && !(n == 1 && p[0] == '.')) {
			if (o + (o ? 1 : 0) + n + 1 > cap)
				return -1;
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	if (!o)
		return -1;
	out[o] = '\0';
	return 0;
}

void archive_images_free(struct archive_image *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		cleanup_strvp(&v[i].names);
		free(v[i].config);
		cleanup_strvp(&v[i].layers);
	}
	free(v);
}

/* A string member of @o no longer than @max, or NULL. */
static const char *str_member(json_t *o, const char *key, size_t max)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

/* A name an index may give: a full reference, not a bare tag ("latest"). */
static bool full_ref(const char *s)
{
	struct image_ref r;
	char why[64];

	if (!s || (!strchr(s, '/') && !strchr(s, ':')) || ref_parse(s, &r, why, sizeof(why)) < 0)
		return false;
	ref_free(&r);
	return true;
}

static int load_json(const char *body, size_t len, const char *what, json_t **root,
		     struct msb_err **err)
{
	json_error_t je;

	if (len > ARCHIVE_MAX_INDEX)
		return msb_err_set(err, EFBIG, "%s is over %u MiB", what, ARCHIVE_MAX_INDEX >> 20);
	if (!json_values_bounded(body, len, MAX_JSON_VALUES))
		return msb_err_set(err, E2BIG, "%s has more than %u JSON values", what,
				   MAX_JSON_VALUES);
	*root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!*root)
		return msb_err_set(err, EINVAL, "%s is not valid JSON (line %d: %.80s)", what,
				   je.line, je.text);
	return 0;
}

static int oci_entry(json_t *e, size_t i, struct archive_image *img, struct msb_err **err)
{
	const char *mt = str_member(e, "mediaType", sizeof(img->desc.media_type) - 1);
	const char *dg = str_member(e, "digest", DIGEST_LEN - 1);
	json_t *size = json_object_get(e, "size"), *ann = json_object_get(e, "annotations");
	const char *names[2] = { NULL, NULL };
	struct strv sv = { 0 };

	if (!json_is_object(e) || !dg || !digest_valid(dg) || !json_is_integer(size) ||
	    json_integer_value(size) < 0 || json_integer_value(size) > MANIFEST_MAX)
		return msb_err_set(err, EINVAL,
				   "index.json: manifest %zu is not a valid descriptor", i);
	if (!mt)
		mt = MT_OCI_MANIFEST;
	if (strcmp(mt, MT_OCI_MANIFEST) != 0 && strcmp(mt, MT_OCI_INDEX) != 0 &&
	    strcmp(mt, MT_DOCKER_MANIFEST) != 0 && strcmp(mt, MT_DOCKER_LIST) != 0)
		return msb_err_set(err, EINVAL,
				   "index.json: manifest %zu has media type \"%.100s\"", i, mt);
	snprintf(img->desc.media_type, sizeof(img->desc.media_type), "%s", mt);
	snprintf(img->desc.digest, sizeof(img->desc.digest), "%s", dg);
	img->desc.size = json_integer_value(size);
	if (ann && !json_is_object(ann))
		return msb_err_set(err, EINVAL, "index.json: manifest %zu: bad annotations", i);
	if (ann) {
		names[0] = str_member(ann, ANN_CONTAINERD, ARCHIVE_PATH_MAX);
		names[1] = str_member(ann, ANN_REF_NAME, ARCHIVE_PATH_MAX);
	}
	/* ref.name may be a bare tag (the spec's meaning): only a full reference names an image. */
	for (size_t k = 0; k < 2; k++) {
		if (!full_ref(names[k]))
			continue;
		if (strv_push(&sv, names[k]) < 0) {
			strv_free(&sv);
			return msb_err_sys(err, ENOMEM, "index.json");
		}
		break;
	}
	img->names = strv_steal(&sv);
	return img->names ? 0 : msb_err_sys(err, ENOMEM, "index.json");
}

int archive_parse_oci_index(const char *body, size_t len, struct archive_image **out, size_t *n,
			    struct msb_err **err)
{
	json_t *root = NULL, *ms, *sv;
	struct archive_image *v = NULL;
	size_t cnt = 0;
	int r = -1;

	*out = NULL;
	*n = 0;
	if (load_json(body, len, "index.json", &root, err) < 0)
		return -1;
	sv = json_object_get(root, "schemaVersion");
	ms = json_object_get(root, "manifests");
	if (!json_is_object(root) ||
	    (sv && (!json_is_integer(sv) || json_integer_value(sv) != 2))) {
		msb_err_set(err, EINVAL, "index.json is not an OCI image index");
		goto out;
	}
	if (!json_is_array(ms) || json_array_size(ms) == 0 ||
	    json_array_size(ms) > ARCHIVE_MAX_IMAGES) {
		msb_err_set(err, EINVAL, "index.json must list 1 to %d manifests",
			    ARCHIVE_MAX_IMAGES);
		goto out;
	}
	cnt = json_array_size(ms);
	v = calloc(cnt, sizeof(*v));
	if (!v) {
		msb_err_sys(err, ENOMEM, "index.json");
		goto out;
	}
	for (size_t i = 0; i < cnt; i++)
		if (oci_entry(json_array_get(ms, i), i, &v[i], err) < 0)
			goto out;
	*out = steal_ptr(v);
	*n = cnt;
	r = 0;
out:
	archive_images_free(v, cnt);
	json_decref(root);
	return r;
}

/* @arr's strings, each a path (or a name when @paths is false), at most @max of them. */
static char **str_array(json_t *arr, size_t max, bool paths)
{
	struct strv sv = { 0 };
	char norm[ARCHIVE_PATH_MAX];

	if (!json_is_array(arr) || json_array_size(arr) > max)
		return NULL;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *s = json_array_get(arr, i);
		const char *v = json_is_string(s) ? json_string_value(s) : NULL;

		if (!v || strlen(v) != json_string_length(s) ||
		    (paths && archive_member_path(v, norm, sizeof(norm)) < 0) ||
		    (!paths && strlen(v) > ARCHIVE_PATH_MAX) ||
		    strv_push(&sv, paths ? norm : v) < 0) {
			strv_free(&sv);
			return NULL;
		}
	}
	return strv_steal(&sv);
}

static int docker_entry(json_t *e, size_t i, struct archive_image *img, struct msb_err **err)
{
	const char *cfg = json_is_object(e) ? str_member(e, "Config", ARCHIVE_PATH_MAX) : NULL;
	json_t *tags = json_is_object(e) ? json_object_get(e, "RepoTags") : NULL;
	char norm[ARCHIVE_PATH_MAX];

	if (!cfg || archive_member_path(cfg, norm, sizeof(norm)) < 0)
		return msb_err_set(err, EINVAL, "manifest.json: image %zu has no valid Config", i);
	img->config = strdup(norm);
	img->layers = str_array(json_object_get(e, "Layers"), MAX_LAYERS, true);
	if (!img->config || !img->layers)
		return msb_err_set(err, EINVAL,
				   "manifest.json: image %zu has invalid Layers (1 to %d paths)", i,
				   MAX_LAYERS);
	for (img->nlayers = 0; img->layers[img->nlayers]; img->nlayers++)
		;
	if (!img->nlayers)
		return msb_err_set(err, EINVAL, "manifest.json: image %zu has no layers", i);
	if (!tags || json_is_null(tags)) {
		img->names = calloc(1, sizeof(char *));
	} else {
		img->names = str_array(tags, ARCHIVE_MAX_NAMES, false);
		if (!img->names)
			return msb_err_set(err, EINVAL,
					   "manifest.json: image %zu has invalid RepoTags", i);
	}
	return img->names ? 0 : msb_err_sys(err, ENOMEM, "manifest.json");
}

int archive_parse_docker_manifest(const char *body, size_t len, struct archive_image **out,
				  size_t *n, struct msb_err **err)
{
	json_t *root = NULL;
	struct archive_image *v = NULL;
	size_t cnt = 0;
	int r = -1;

	*out = NULL;
	*n = 0;
	if (load_json(body, len, "manifest.json", &root, err) < 0)
		return -1;
	if (!json_is_array(root) || json_array_size(root) == 0 ||
	    json_array_size(root) > ARCHIVE_MAX_IMAGES) {
		msb_err_set(err, EINVAL, "manifest.json must list 1 to %d images",
			    ARCHIVE_MAX_IMAGES);
		goto out;
	}
	cnt = json_array_size(root);
	v = calloc(cnt, sizeof(*v));
	if (!v) {
		msb_err_sys(err, ENOMEM, "manifest.json");
		goto out;
	}
	for (size_t i = 0; i < cnt; i++)
		if (docker_entry(json_array_get(root, i), i, &v[i], err) < 0)
			goto out;
	*out = steal_ptr(v);
	*n = cnt;
	r = 0;
out:
	archive_images_free(v, cnt);
	json_decref(root);
	return r;
}

/* Return: true once @fd (a signalfd, a pipe; -1: none) is readable. */
static bool cancel_requested(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return fd >= 0 && poll(&pfd, 1, 0) > 0;
}

static int interrupted(struct msb_err **err)
{
	msb_err_set(err, EINTR, "interrupted");
	msb_err_exit(err, 130);
	return -1;
}

/*
 * A private directory cache/blobs/<prefix>XXXXXX, flocked in *@lock_fd while
 * in use: the next load or save sweeps those a killed msb left.
 * Return: 0 and the path in *@dir (caller frees), or -1 with @err.
 */
static int private_dir(const char *prefix, char **dir, int *lock_fd, struct msb_err **err)
{
	_cleanup_free_ char *blobs = NULL;
	int r;

	*dir = NULL;
	*lock_fd = -1;
	if (asprintf(&blobs, "%s/cache/blobs", msb_home()) < 0)
		return msb_err_sys(err, ENOMEM, "%s", prefix);
	r = mkdir_p(blobs, 0700);
	if (r < 0)
		return msb_err_sys(err, -r, "%s", blobs);
	sweep_unlocked(blobs, prefix);
	for (int tries = 0; tries < PRIVATE_DIR_TRIES; tries++) {
		struct stat st;

		if (asprintf(dir, "%s/%sXXXXXX", blobs, prefix) < 0) {
			*dir = NULL;
			return msb_err_sys(err, ENOMEM, "%s", prefix);
		}
		if (!mkdtemp(*dir)) {
			r = errno;
			free(steal_ptr(*dir));
			return msb_err_sys(err, r, "%s", blobs);
		}
		*lock_fd = open(*dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX) < 0 || fstat(*lock_fd, &st) < 0) {
			r = errno;
			rm_rf(*dir);
			free(steal_ptr(*dir));
			if (*lock_fd >= 0)
				close(*lock_fd);
			*lock_fd = -1;
			return msb_err_sys(err, r, "%s", blobs);
		}
		/* A concurrent sweep may have locked and removed it before us: make another. */
		if (st.st_nlink > 0)
			return 0;
		free(steal_ptr(*dir));
		close(*lock_fd);
		*lock_fd = -1;
	}
	return msb_err_set(err, EAGAIN, "%s: private directories kept vanishing as they were made",
			   blobs);
}

/* ---- loading ---- */

enum mtype { M_FILE, M_SYMLINK, M_HARDLINK };

struct member {
	char *path;
	enum mtype type;
	char *link; /* links: the target, normalised from the archive's root */
	uint64_t size;
	char digest[DIGEST_LEN];
};

struct loader {
	const char *src; /* for messages */
	char *dir;	 /* members are files <dir>/<index> */
	int dir_lock;
	int cancel_fd;
	struct member *m;
	size_t n;
	uint64_t written, budget; /* bytes written to @dir, and the most it may take */
};

static void loader_free(struct loader *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->m[i].path);
		free(l->m[i].link);
	}
	free(l->m);
	if (l->dir)
		rm_rf(l->dir);
	free(l->dir);
	if (l->dir_lock >= 0)
		close(l->dir_lock);
}

static struct member *member_get(const struct loader *l, const char *path)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->m[i].path, path))
			return &l->m[i];
	return NULL;
}

/* @path's file, following links inside the archive only. Return: the member, or NULL. */
static struct member *member_find(const struct loader *l, const char *path)
{
	struct member *m = member_get(l, path);

	for (int hops = 0; m && m->type != M_FILE; hops++) {
		if (hops >= 8 || !m->link)
			return NULL;
		m = member_get(l, m->link);
	}
	return m;
}

/* "a/b" + "../c" -> "a/c", never above the root. Return: 0, or -1. */
static int join_rel(const char *member, const char *target, char *out, size_t cap)
{
	char buf[2 * ARCHIVE_PATH_MAX + 2];
	const char *slash = strrchr(member, '/');
	size_t dlen = slash ? (size_t)(slash - member) : 0, o = 0;
	char *save = NULL;

	if (*target == '/' || dlen + strlen(target) + 2 > sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%.*s/%s", (int)dlen, member, target);
	for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		size_t n = strlen(c);

		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			if (!o)
				return -1;
			while (o && out[o - 1] != '/')
				o--;
			if (o)
				o--;
			continue;
		}
		if (o + n + 2 > cap)
			return -1;
		if (o)
			out[o++] = '/';
		memcpy(out + o, c, n);
		o += n;
	}
	if (!o)
		return -1;
	out[o] = '\0';
	return 0;
}

static int read_member(struct loader *l, struct archive *a, struct member *m, size_t idx,
		       struct msb_err **err)
{
	_cleanup_free_ char *file = NULL;
	_cleanup_close_ int fd = -1;
	struct sha256 h;
	uint8_t buf[COPY_CHUNK];
	la_ssize_t got;

	if (asprintf(&file, "%s/%zu", l->dir, idx) < 0)
		return msb_err_sys(err, ENOMEM, "load");
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return msb_err_sys(err, errno, "%s", file);
	if (sha256_init(&h) < 0)
		return msb_err_sys(err, ENOMEM, "sha256");
	while ((got = archive_read_data(a, buf, sizeof(buf))) > 0) {
		m->size += (uint64_t)got;
		l->written += (uint64_t)got;
		if (m->size > LAYER_BLOB_MAX) {
			sha256_free(&h);
			return msb_err_set(err, EFBIG,
					   "member %.200s is larger than any blob may be", m->path);
		}
		if (l->written > l->budget) {
			sha256_free(&h);
			return msb_err_set(
				err, ENOSPC,
				"the members add up to more than the %llu MiB this load "
				"may write to cache/blobs (its free space less %llu MiB)",
				(unsigned long long)(l->budget >> 20),
				(unsigned long long)(LOAD_FREE_MARGIN >> 20));
		}
		if (write_all(fd, buf, (size_t)got) < 0) {
			sha256_free(&h);
			return msb_err_sys(err, errno, "%s", file);
		}
		sha256_update(&h, buf, (size_t)got);
		if (m->size % CANCEL_EVERY < (uint64_t)got && cancel_requested(l->cancel_fd)) {
			sha256_free(&h);
			return interrupted(err);
		}
	}
	if (got < 0) {
		sha256_free(&h);
		if (cancel_requested(l->cancel_fd))
			return interrupted(err);
		return msb_err_set(err, EINVAL, "member %.200s: %s", m->path,
				   archive_error_string(a) ? archive_error_string(a)
							   : "read error");
	}
	sha256_final(&h, m->digest);
	return 0;
}

static int add_member(struct loader *l, struct archive *a, struct archive_entry *ae,
		      struct msb_err **err)
{
	const char *raw = archive_entry_pathname(ae), *hl = archive_entry_hardlink(ae);
	mode_t type = archive_entry_filetype(ae);
	char path[ARCHIVE_PATH_MAX], link[ARCHIVE_PATH_MAX];
	struct member *m;

	/* The root directory ("./") is no member anything refers to. */
	if (raw && type == AE_IFDIR && !hl && *raw && *raw != '/' &&
	    strspn(raw, "./") == strlen(raw) && !strstr(raw, ".."))
		return 0;
	if (!raw || archive_member_path(raw, path, sizeof(path)) < 0)
		return msb_err_set(err, EINVAL,
				   "member \"%.200s\" has an unsafe path (absolute, empty or with "
				   "\"..\")",
				   raw ? raw : "");
	if (type == AE_IFDIR && !hl)
		return 0;
	if (member_get(l, path))
		return msb_err_set(err, EINVAL, "member %.200s appears twice", path);
	if (l->n >= ARCHIVE_MAX_MEMBERS)
		return msb_err_set(err, E2BIG, "more than %d members", ARCHIVE_MAX_MEMBERS);
	m = &l->m[l->n];
	*m = (struct member){ 0 };
	if (hl) {
		if (archive_member_path(hl, link, sizeof(link)) < 0)
			return msb_err_set(err, EINVAL, "member %.200s links outside the archive",
					   path);
		m->type = M_HARDLINK;
	} else if (type == AE_IFLNK) {
		if (!archive_entry_symlink(ae) ||
		    join_rel(path, archive_entry_symlink(ae), link, sizeof(link)) < 0)
			return msb_err_set(err, EINVAL, "member %.200s links outside the archive",
					   path);
		m->type = M_SYMLINK;
	} else if (type != AE_IFREG) {
		return msb_err_set(err, EINVAL, "member %.200s is not a file, directory or link",
				   path);
	} else if (archive_entry_sparse_count(ae) > 0) {
		/* Its holes would be written out in full: no image archive has one. */
		return msb_err_set(err, EINVAL, "member %.200s is a sparse file", path);
	}
	m->path = strdup(path);
	if (m->type != M_FILE)
		m->link = strdup(link);
	if (!m->path || (m->type != M_FILE && !m->link)) {
		free(m->path);
		free(m->link);
		return msb_err_sys(err, ENOMEM, "load");
	}
	l->n++;
	return m->type == M_FILE ? read_member(l, a, m, l->n - 1, err) : 0;
}

/* The archive's bytes, read from @fd while the caller's cancel descriptor stays quiet. */
struct src {
	int fd, cancel_fd;
	uint8_t buf[COPY_CHUNK];
};

static la_ssize_t src_read(struct archive *a, void *arg, const void **buf)
{
	struct src *s = arg;

	*buf = s->buf;
	for (;;) {
		struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
				       { .fd = s->cancel_fd, .events = POLLIN } };
		ssize_t n;

		/* A stalled pipe on stdin must not make Ctrl-C wait for it. */
		if (poll(p, s->cancel_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
			archive_set_error(a, errno, "poll");
			return -1;
		}
		if (p[1].revents & POLLIN) {
			archive_set_error(a, EINTR, "interrupted");
			return -1;
		}
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(s->fd, s->buf, sizeof(s->buf));
		if (n >= 0)
			return n;
		if (errno != EINTR && errno != EAGAIN) {
			archive_set_error(a, errno, "read");
			return -1;
		}
	}
}

static int read_archive(struct loader *l, const char *path, struct msb_err **err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ struct src *src = NULL;
	int r = 0;

	l->m = calloc(ARCHIVE_MAX_MEMBERS, sizeof(*l->m));
	if (!a || !l->m) {
		archive_read_free(a);
		return msb_err_sys(err, ENOMEM, "load");
	}
	if (private_dir("load-", &l->dir, &l->dir_lock, err) < 0) {
		archive_read_free(a);
		return -1;
	}
	{
		struct statvfs sv;
		uint64_t avail = statvfs(l->dir, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize
							   : LOAD_MAX_TOTAL;

		l->budget = avail > LOAD_FREE_MARGIN ? avail - LOAD_FREE_MARGIN : 0;
		if (l->budget > LOAD_MAX_TOTAL)
			l->budget = LOAD_MAX_TOTAL;
	}
	/*
	 * Decompressors in libarchive itself only: no external programs on
	 * untrusted input (ARCHIVE_WARN means libarchive would run one).
	 */
	if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
	    archive_read_support_filter_xz(a) != ARCHIVE_OK) {
		archive_read_free(a);
		return msb_err_set(err, ENOTSUP,
				   "this libarchive lacks built-in gzip, zstd or xz support");
	}
	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = msb_err_sys(err, errno, "cannot read it");
			archive_read_free(a);
			return r;
		}
	}
	src = malloc(sizeof(*src));
	if (!src) {
		archive_read_free(a);
		return msb_err_sys(err, ENOMEM, "load");
	}
	src->fd = fd >= 0 ? fd : STDIN_FILENO;
	src->cancel_fd = l->cancel_fd;
	if (archive_read_open(a, src, NULL, src_read, NULL) != ARCHIVE_OK) {
		const char *why = archive_error_string(a) ? archive_error_string(a) : "?";

		/* A system error is about the file; anything else is about its content. */
		r = cancel_requested(l->cancel_fd) ? interrupted(err)
		    : archive_errno(a) > 0 && archive_errno(a) != EILSEQ
			    ? msb_err_sys(err, archive_errno(a), "cannot read it")
			    : msb_err_set(err, EINVAL, "not a tar archive (%s)", why);
		archive_read_free(a);
		return r;
	}
	for (;;) {
		int s = archive_read_next_header(a, &ae);

		if (s == ARCHIVE_EOF)
			break;
		if (s != ARCHIVE_OK && s != ARCHIVE_WARN && cancel_requested(l->cancel_fd)) {
			r = interrupted(err);
			break;
		}
		if (s != ARCHIVE_OK && s != ARCHIVE_WARN) {
			r = msb_err_set(err, EINVAL, "not a tar archive (%s)",
					archive_error_string(a) ? archive_error_string(a) : "?");
			break;
		}
		r = add_member(l, a, ae, err);
		if (r < 0)
			break;
	}
	archive_read_free(a);
	return r < 0 ? -1 : 0;
}

/* A member's content, at most @max bytes. Return: 0 (caller frees *@out), or -1. */
static int member_read(const struct loader *l, const struct member *m, size_t max, char **out,
		       size_t *len, struct msb_err **err)
{
	_cleanup_free_ char *file = NULL;
	int r;

	if (m->size > max)
		return msb_err_set(err, EFBIG, "%.200s is over %zu KiB", m->path, max >> 10);
	if (asprintf(&file, "%s/%zu", l->dir, (size_t)(m - l->m)) < 0)
		return msb_err_sys(err, ENOMEM, "load");
	r = read_file(file, max, out, len);
	return r < 0 ? msb_err_sys(err, -r, "%s", file) : 0;
}

/* The blob @d names in an OCI layout, checked against its digest and size. */
static struct member *oci_blob(const struct loader *l, const struct descriptor *d,
			       struct msb_err **err)
{
	char path[DIGEST_LEN + 16];
	struct member *m;

	snprintf(path, sizeof(path), "blobs/sha256/%s", d->digest + 7);
	m = member_find(l, path);
	if (!m) {
		msb_err_set(err, ENOENT, "blob %s is missing", d->digest);
		return NULL;
	}
	if (strcmp(m->digest, d->digest) != 0) {
		msb_err_set(err, EBADMSG, "blob %s: digest mismatch (got %s)", d->digest,
			    m->digest);
		return NULL;
	}
	if (d->size >= 0 && m->size != (uint64_t)d->size) {
		msb_err_set(err, EBADMSG, "blob %s: %llu bytes, its descriptor says %lld",
			    d->digest, (unsigned long long)m->size, (long long)d->size);
		return NULL;
	}
	return m;
}

/* One image of the archive, checked and ready to record under each of its names. */
struct limage {
	char **refs; /* canonical */
	char *manifest, *config;
	size_t mlen, clen;
	char mdigest[DIGEST_LEN], cdigest[DIGEST_LEN];
	char *index_digest;
	struct image_config ic;
	struct descriptor *layers;
	const struct member **blobs;
	size_t nlayers;
};

static void limage_free(struct limage *li)
{
	cleanup_strvp(&li->refs);
	free(li->manifest);
	free(li->config);
	free(li->index_digest);
	image_config_free(&li->ic);
	free(li->layers);
	free(li->blobs);
}

static int limage_names(struct limage *li, size_t i, char **names, struct msb_err **err)
{
	struct strv sv = { 0 };

	for (size_t k = 0; names && names[k]; k++) {
		struct image_ref r;
		_cleanup_free_ char *c = NULL;
		char why[256];

		if (ref_parse(names[k], &r, why, sizeof(why)) < 0) {
			strv_free(&sv);
			return msb_err_set(err, EINVAL, "image %zu: invalid name \"%.200s\" (%s)",
					   i + 1, names[k], why);
		}
		/* A digest-pinned name must be this image's: `msb run` trusts it as one. */
		if (r.digest && strcmp(r.digest, li->mdigest) != 0 &&
		    (!li->index_digest || strcmp(r.digest, li->index_digest) != 0)) {
			msb_err_set(err, EINVAL,
				    "image %zu: name \"%.200s\" pins %s, but the image is %s",
				    i + 1, names[k], r.digest,
				    li->index_digest ? li->index_digest : li->mdigest);
			ref_free(&r);
			strv_free(&sv);
			return -1;
		}
		c = ref_canonical(&r);
		ref_free(&r);
		if (!c || strv_push(&sv, c) < 0) {
			strv_free(&sv);
			return msb_err_sys(err, ENOMEM, "load");
		}
	}
	if (!sv.n)
		return msb_err_set(err, EINVAL,
				   "image %zu has no name (msb keeps images by name: tag it before "
				   "saving)",
				   i + 1);
	li->refs = strv_steal(&sv);
	return li->refs ? 0 : msb_err_sys(err, ENOMEM, "load");
}

static int limage_config(struct limage *li, size_t nlayers, struct msb_err **err)
{
	if (image_config_parse(li->config, li->clen, &li->ic, err) < 0)
		return msb_err_prefix(err, "image config %s", li->cdigest);
	if (li->ic.ndiff_ids != nlayers)
		return msb_err_set(err, EINVAL, "malformed image: %zu layers but %zu diff_ids",
				   nlayers, li->ic.ndiff_ids);
	li->nlayers = nlayers;
	li->layers = calloc(nlayers, sizeof(*li->layers));
	li->blobs = calloc(nlayers, sizeof(const void *)); /* pointers to members */
	return li->layers && li->blobs ? 0 : msb_err_sys(err, ENOMEM, "load");
}

static int oci_image(const struct loader *l, const struct archive_image *ai, size_t i,
		     struct limage *li, struct msb_err **err)
{
	struct manifest m = { 0 };
	struct descriptor d = ai->desc;
	const struct member *b;
	int r = -1;

	for (int depth = 0;; depth++) {
		b = oci_blob(l, &d, err);
		if (!b || member_read(l, b, MANIFEST_MAX, &li->manifest, &li->mlen, err) < 0 ||
		    manifest_parse(li->manifest, li->mlen, d.media_type, &m, err) < 0)
			goto out;
		if (m.kind == KIND_MANIFEST)
			break;
		if (depth) {
			msb_err_set(err, EINVAL, "malformed index %s: entry is not a manifest",
				    d.digest);
			goto out;
		}
		r = index_pick(&m, err);
		if (r < 0)
			goto out;
		li->index_digest = strdup(d.digest);
		d = m.entries[r];
		r = -1;
		manifest_free(&m);
		free(steal_ptr(li->manifest));
		if (!li->index_digest) {
			msb_err_sys(err, ENOMEM, "load");
			goto out;
		}
	}
	memcpy(li->mdigest, d.digest, DIGEST_LEN);
	b = oci_blob(l, &m.config, err);
	if (!b || member_read(l, b, CONFIG_MAX, &li->config, &li->clen, err) < 0)
		goto out;
	memcpy(li->cdigest, m.config.digest, DIGEST_LEN);
	if (limage_config(li, m.nlayers, err) < 0)
		goto out;
	for (size_t k = 0; k < m.nlayers; k++) {
		enum layer_compression comp;

		li->layers[k] = m.layers[k];
		if (layer_compression(m.layers[k].media_type, &comp) < 0) {
			msb_err_set(err, EINVAL, "layer %s has unsupported media type \"%.100s\"",
				    m.layers[k].digest, m.layers[k].media_type);
			goto out;
		}
		li->blobs[k] = oci_blob(l, &m.layers[k], err);
		if (!li->blobs[k])
			goto out;
	}
	r = limage_names(li, i, ai->names, err);
out:
	manifest_free(&m);
	return r;
}

/* The media type of a docker-archive layer, from its first bytes. */
static const char *sniff_layer(const struct loader *l, const struct member *m)
{
	_cleanup_free_ char *file = NULL;
	_cleanup_close_ int fd = -1;
	uint8_t b[4] = { 0 };

	if (asprintf(&file, "%s/%zu", l->dir, (size_t)(m - l->m)) < 0)
		return NULL;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, b, sizeof(b)) < 0)
		return NULL;
	if (b[0] == 0x1f && b[1] == 0x8b)
		return MT_OCI_LAYER_GZIP;
	if (b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd)
		return MT_OCI_LAYER_ZSTD;
	return MT_OCI_LAYER_TAR;
}

/* msb's record of a docker-archive image: an OCI manifest for its config and layers. */
static char *docker_manifest(const struct limage *li)
{
	json_t *layers = json_array(), *o;
	char *s;

	for (size_t k = 0; k < li->nlayers; k++)
		json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType",
							li->layers[k].media_type, "digest",
							li->layers[k].digest, "size",
							(json_int_t)li->layers[k].size));
	o = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
		      MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG, "digest", li->cdigest,
		      "size", (json_int_t)li->clen, "layers", layers);
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

static int docker_image(const struct loader *l, const struct archive_image *ai, size_t i,
			struct limage *li, struct msb_err **err)
{
	const struct member *b = member_find(l, ai->config);

	if (!b)
		return msb_err_set(err, ENOENT, "config %.200s is missing", ai->config);
	if (member_read(l, b, CONFIG_MAX, &li->config, &li->clen, err) < 0)
		return -1;
	memcpy(li->cdigest, b->digest, DIGEST_LEN);
	if (limage_config(li, ai->nlayers, err) < 0)
		return -1;
	for (size_t k = 0; k < ai->nlayers; k++) {
		const char *mt;

		b = member_find(l, ai->layers[k]);
		if (!b)
			return msb_err_set(err, ENOENT, "layer %.200s is missing", ai->layers[k]);
		mt = sniff_layer(l, b);
		if (!mt)
			return msb_err_sys(err, errno ? errno : EIO, "layer %.200s", ai->layers[k]);
		li->blobs[k] = b;
		snprintf(li->layers[k].media_type, sizeof(li->layers[k].media_type), "%s", mt);
		memcpy(li->layers[k].digest, b->digest, DIGEST_LEN);
		li->layers[k].size = (int64_t)b->size;
	}
	li->manifest = docker_manifest(li);
	if (!li->manifest)
		return msb_err_sys(err, ENOMEM, "load");
	li->mlen = strlen(li->manifest);
	sha256_digest(li->manifest, li->mlen, li->mdigest);
	return limage_names(li, i, ai->names, err);
}

/* One distinct layer of the load, and the lock it holds while the images are recorded. */
struct llayer {
	const char *diff_id;
	const struct member *blob;
	int lock_fd;
	bool made;
	int64_t tar_size, fs_size;
};

/* Sleeps LOCK_RETRY_MS. Return: true once the caller asked the load to stop. */
static bool wait_retry(int cancel_fd, const atomic_bool *cancel)
{
	struct pollfd pfd = { .fd = cancel_fd, .events = POLLIN };

	if (atomic_load(cancel))
		return true;
	/* A negative fd is ignored: a plain sleep. */
	return poll(&pfd, 1, LOCK_RETRY_MS) > 0 || atomic_load(cancel);
}

/* Converts @ll's blob to @out, under the layer's exclusive lock. */
static int convert_locked(const struct loader *l, struct llayer *ll, const char *out,
			  const atomic_bool *cancel, struct msb_err **err)
{
	_cleanup_free_ char *tmp = NULL, *blob = NULL;
	_cleanup_close_ int bfd = -1;
	uint64_t tar_bytes = 0;
	int r;

	if (asprintf(&tmp, "%s.tmp", out) < 0 ||
	    asprintf(&blob, "%s/%zu", l->dir, (size_t)(ll->blob - l->m)) < 0)
		return msb_err_sys(err, ENOMEM, "load");
	unlink(tmp); /* an earlier crash's, under the exclusive lock */
	bfd = open(blob, O_RDONLY | O_CLOEXEC);
	if (bfd < 0)
		return msb_err_sys(err, errno, "%s", blob);
	if (layer_convert(bfd, ll->diff_id, tmp, &tar_bytes, cancel, err) < 0)
		return msb_err_prefix(err, "layer %s", ll->blob->digest);
	if (fsync_path(tmp) < 0 || rename(tmp, out) < 0) {
		r = msb_err_sys(err, errno, "%s", out);
		unlink(tmp);
		return r;
	}
	ll->made = true;
	ll->tar_size = (int64_t)tar_bytes;
	return 0;
}

/*
 * Holds @ll shared, converting it first unless the cache has it (see
 * store.h). As a pull does, it never waits for a lock: a layer that is there
 * is used under a shared lock; only a missing one is taken exclusively, and
 * a busy lock is let go and tried again, so two loads holding each other's
 * layers cannot deadlock, and Ctrl-C stops the wait.
 */
static int load_layer(const struct loader *l, struct llayer *ll, const atomic_bool *cancel,
		      struct msb_err **err)
{
	_cleanup_free_ char *lock = layer_lock_file(ll->diff_id), *out = layer_file(ll->diff_id);
	struct stat st;

	if (!lock || !out)
		return msb_err_set(err, EINVAL, "invalid layer %s", ll->diff_id);
	ll->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ll->lock_fd < 0)
		return msb_err_sys(err, errno, "%s", lock);
	for (;;) {
		if (flock(ll->lock_fd, LOCK_SH | LOCK_NB) == 0) {
			/* Checked under the shared lock: nobody deletes it while we hold that. */
			if (access(out, R_OK) == 0)
				break;
			/* Missing: ours to convert once no one else holds the lock. */
			if (flock(ll->lock_fd, LOCK_EX | LOCK_NB) == 0) {
				/* Someone may have made it between the two locks. */
				if (access(out, R_OK) != 0 &&
				    convert_locked(l, ll, out, cancel, err) < 0)
					return -1;
				/*
				 * Exclusive -> shared lets go for a moment (prune may
				 * delete the unused layer then): the loop looks again.
				 */
				continue;
			}
		}
		if (errno != EWOULDBLOCK)
			return msb_err_sys(err, errno, "%s", lock);
		/* Being converted or deleted by another msb: look again soon. */
		flock(ll->lock_fd, LOCK_UN);
		if (wait_retry(l->cancel_fd, cancel))
			return interrupted(err);
	}
	ll->fs_size = stat(out, &st) == 0 ? st.st_size : 0;
	return 0;
}

struct lwork {
	const struct loader *l;
	struct llayer *ll;
	atomic_bool *cancel;
	struct msb_err *err;
	int r;
	atomic_bool done;
};

static void *load_thread(void *arg)
{
	struct lwork *w = arg;

	w->r = load_layer(w->l, w->ll, w->cancel, &w->err);
	atomic_store(&w->done, true);
	return NULL;
}

/*
 * Converts the layers as a pull does, several at once (one per CPU); a batch
 * ends before the next starts, and none starts after a failure. Return: 0,
 * or -1 with the first failure in @err.
 */
static int load_layers(const struct loader *l, struct llayer *lls, size_t nll, struct msb_err **err)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t batch = cpus < 1 ? 1 : cpus > LOAD_MAX_CONVERT ? LOAD_MAX_CONVERT : (size_t)cpus;
	int r = 0;

	atomic_bool cancel = false;

	for (size_t at = 0; r == 0 && at < nll; at += batch) {
		size_t k = nll - at < batch ? nll - at : batch, busy = k;
		struct lwork w[LOAD_MAX_CONVERT];
		pthread_t th[LOAD_MAX_CONVERT];
		bool live[LOAD_MAX_CONVERT];

		for (size_t i = 0; i < k; i++) {
			w[i] = (struct lwork){ .l = l, .ll = &lls[at + i], .cancel = &cancel };
			atomic_init(&w[i].done, false);
			live[i] = pthread_create(&th[i], NULL, load_thread, &w[i]) == 0;
			if (!live[i])
				load_thread(&w[i]);
		}
		/* Converters poll @cancel: pass the caller's request on while they run. */
		while (busy) {
			struct pollfd pfd = { .fd = l->cancel_fd, .events = POLLIN };

			busy = 0;
			for (size_t i = 0; i < k; i++)
				busy += !atomic_load(&w[i].done);
			if (busy && poll(&pfd, l->cancel_fd >= 0 ? 1 : 0, 50) > 0)
				atomic_store(&cancel, true);
		}
		for (size_t i = 0; i < k; i++) {
			if (live[i])
				pthread_join(th[i], NULL);
			if (w[i].r < 0 && r == 0) {
				if (!*err)
					*err = steal_ptr(w[i].err);
				r = -1;
			}
			msb_err_free(w[i].err);
		}
	}
	return r;
}

static const struct llayer *llayer_of(const struct llayer *v, size_t n, const char *diff_id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].diff_id, diff_id))
			return &v[i];
	return NULL;
}

static int record(struct db *db, const struct limage *li, const char *ref, const struct llayer *lls,
		  size_t nll, struct msb_err **err)
{
	struct image_record img = {
		.reference = strdup(ref),
		.manifest_digest = strdup(li->mdigest),
		.index_digest = li->index_digest ? strdup(li->index_digest) : NULL,
		.config_digest = strdup(li->cdigest),
		.manifest = strndup(li->manifest, li->mlen),
		.config = strndup(li->config, li->clen),
		.created = li->ic.created ? strdup(li->ic.created) : NULL,
		.pulled_at = image_now(),
		.nlayers = li->nlayers,
		.layers = calloc(li->nlayers, sizeof(struct layer_record)),
	};
	int r = -1;

	if (!img.reference || !img.manifest_digest || !img.config_digest || !img.manifest ||
	    !img.config || !img.pulled_at || !img.layers) {
		msb_err_sys(err, ENOMEM, "load");
		goto out;
	}
	for (size_t k = 0; k < li->nlayers; k++) {
		const struct llayer *ll = llayer_of(lls, nll, li->ic.diff_ids[k]);

		img.size += li->layers[k].size;
		img.layers[k] =
			(struct layer_record){ .diff_id = strdup(li->ic.diff_ids[k]),
					       .digest = strdup(li->layers[k].digest),
					       .media_type = strdup(li->layers[k].media_type),
					       .compressed_size = li->layers[k].size,
					       .tar_size = ll ? ll->tar_size : 0,
					       .fs_size = ll ? ll->fs_size : 0 };
		if (!img.layers[k].diff_id || !img.layers[k].digest || !img.layers[k].media_type) {
			msb_err_sys(err, ENOMEM, "load");
			goto out;
		}
	}
	r = db_image_put(db, &img, err);
out:
	image_record_free(&img);
	return r;
}

/* Converts every distinct layer, then records every image under every name. */
static int import(struct db *db, const struct loader *l, const struct limage *lis, size_t n,
		  struct strv *loaded, struct msb_err **err)
{
	struct llayer *lls = NULL;
	_cleanup_free_ char *layers_dir = NULL;
	size_t nll = 0, cap = 0;
	int r = -1;

	for (size_t i = 0; i < n; i++)
		cap += lis[i].nlayers;
	lls = calloc(cap ? cap : 1, sizeof(*lls));
	if (!lls || asprintf(&layers_dir, "%s/cache/layers", msb_home()) < 0) {
		free(lls);
		return msb_err_sys(err, ENOMEM, "load");
	}
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < lis[i].nlayers; k++)
			if (!llayer_of(lls, nll, lis[i].ic.diff_ids[k]))
				lls[nll++] = (struct llayer){ .diff_id = lis[i].ic.diff_ids[k],
							      .blob = lis[i].blobs[k],
							      .lock_fd = -1 };
	r = mkdir_p(layers_dir, 0700);
	if (r < 0) {
		msb_err_sys(err, -r, "%s", layers_dir);
		goto out;
	}
	r = load_layers(l, lls, nll, err);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; lis[i].refs[k]; k++) {
			struct image_ref ref;
			_cleanup_free_ char *fam = NULL;
			char why[64];

			r = record(db, &lis[i], lis[i].refs[k], lls, nll, err);
			if (r < 0)
				goto out;
			if (ref_parse(lis[i].refs[k], &ref, why, sizeof(why)) == 0) {
				fam = ref_familiar(&ref);
				ref_free(&ref);
			}
			if (strv_push(loaded, fam ? fam : lis[i].refs[k]) < 0) {
				r = msb_err_sys(err, ENOMEM, "load");
				goto out;
			}
		}
out:
	for (size_t i = 0; i < nll; i++)
		if (lls[i].lock_fd >= 0)
			close(lls[i].lock_fd);
	/* Layers made for images that were never recorded go again (kept if one was). */
	for (size_t i = 0; r < 0 && i < nll; i++)
		if (lls[i].made)
			image_remove_layer(db, lls[i].diff_id, NULL);
	free(lls);
	return r < 0 ? -1 : 0;
}

int archive_load(struct db *db, const char *path, int cancel_fd, char ***loaded,
		 struct msb_err **err)
{
	struct loader l = { .src = path, .dir_lock = -1, .cancel_fd = cancel_fd };
	struct archive_image *ais = NULL;
	struct limage *lis = NULL;
	struct strv names = { 0 };
	const struct member *idx;
	char *body = NULL;
	size_t len = 0, n = 0;
	bool oci;
	int r = -1;

	*loaded = NULL;
	if (read_archive(&l, path, err) < 0)
		goto out;
	if (cancel_requested(cancel_fd)) {
		interrupted(err);
		goto out;
	}
	idx = member_find(&l, "index.json");
	oci = idx && member_find(&l, "oci-layout");
	if (!oci)
		idx = member_find(&l, "manifest.json");
	if (!idx) {
		msb_err_set(
			err, EINVAL,
			"not an image archive (no oci-layout and index.json, nor manifest.json; "
			"make it with 'msb image save' or 'podman save')");
		goto out;
	}
	if (member_read(&l, idx, ARCHIVE_MAX_INDEX, &body, &len, err) < 0 ||
	    (oci ? archive_parse_oci_index(body, len, &ais, &n, err)
		 : archive_parse_docker_manifest(body, len, &ais, &n, err)) < 0)
		goto out;
	lis = calloc(n, sizeof(*lis));
	if (!lis) {
		msb_err_sys(err, ENOMEM, "load");
		goto out;
	}
	/* Every blob of every image is checked before anything reaches the store. */
	for (size_t i = 0; i < n; i++)
		if ((oci ? oci_image(&l, &ais[i], i, &lis[i], err)
			 : docker_image(&l, &ais[i], i, &lis[i], err)) < 0)
			goto out;
	if (import(db, &l, lis, n, &names, err) < 0)
		goto out;
	*loaded = strv_steal(&names);
	r = *loaded ? 0 : msb_err_sys(err, ENOMEM, "load");
out:
	if (r < 0)
		msb_err_prefix(err, "load %s", strcmp(path, "-") ? path : "(stdin)");
	for (size_t i = 0; lis && i < n; i++)
		limage_free(&lis[i]);
	free(lis);
	archive_images_free(ais, n);
	free(body);
	strv_free(&names);
	loader_free(&l);
	return r;
}

/* ---- saving ---- */

/* A tar being written to @fd, hashed on the way when @hash is set. */
struct tw {
	int fd;
	struct buf b;
	struct sha256 h;
	bool hash;
	uint64_t bytes;
	const char *what; /* for messages */
	int cancel_fd;
};

static int tw_data(struct tw *t, const void *p, size_t n, struct msb_err **err)
{
	if (write_all(t->fd, p, n) < 0)
		return msb_err_sys(err, errno, "%s", t->what);
	if (t->hash)
		sha256_update(&t->h, p, n);
	t->bytes += n;
	if (t->bytes % CANCEL_EVERY < n && cancel_requested(t->cancel_fd))
		return interrupted(err);
	return 0;
}

static int tw_flush(struct tw *t, struct msb_err **err)
{
	int r = tw_data(t, buf_head(&t->b), buf_size(&t->b), err);

	buf_clear(&t->b);
	return r;
}

static int tw_header(struct tw *t, const struct tar_entry *e, struct msb_err **err)
{
	int r = tarw_header(&t->b, e);

	if (r < 0)
		return msb_err_sys(err, -r, "%s: member %.200s", t->what, e->path);
	return tw_flush(t, err);
}

static int tw_pad(struct tw *t, uint64_t size, struct msb_err **err)
{
	if (tarw_pad(&t->b, size) < 0)
		return msb_err_sys(err, ENOMEM, "%s", t->what);
	return tw_flush(t, err);
}

/* An empty regular file @dir/@name: the OCI form of a whiteout. */
static int tw_marker(struct tw *t, const char *dir, size_t dlen, const char *name, int64_t mtime,
		     struct msb_err **err)
{
	char p[PATH_MAX + 16];
	struct tar_entry e = { .path = p, .type = '0', .mode = 0, .mtime = mtime };

	if (dlen + strlen(name) + 2 > sizeof(p))
		return msb_err_set(err, ENAMETOOLONG, "%s: path too long", t->what);
	snprintf(p, sizeof(p), "%.*s%s%s", (int)dlen, dir, dlen ? "/" : "", name);
	return tw_header(t, &e, err);
}

/* One member of sqfs2tar's output, with overlayfs whiteouts turned back into OCI ones. */
static int regen_entry(struct tw *t, struct archive *a, struct archive_entry *ae,
		       struct msb_err **err)
{
	char path[PATH_MAX], link[PATH_MAX];
	const char *raw = archive_entry_pathname(ae), *hl = archive_entry_hardlink(ae), *base;
	struct tar_xattr tx[SAVE_MAX_XATTRS];
	struct tar_entry e = { .path = path };
	mode_t type = archive_entry_filetype(ae);
	const char *xn;
	const void *xv;
	size_t xl, nx = 0;
	bool opaque = false;

	/* The root ("./", "") is no member: a layer's tar starts with what is in it. */
	if (raw && strspn(raw, "./") == strlen(raw) && !strstr(raw, ".."))
		return 0;
	if (!raw || archive_member_path(raw, path, sizeof(path)) < 0)
		return msb_err_set(err, EINVAL, "%s: member \"%.200s\" has a path msb cannot save",
				   t->what, raw ? raw : "");
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	e.mode = archive_entry_perm(ae);
	e.uid = (uint64_t)archive_entry_uid(ae);
	e.gid = (uint64_t)archive_entry_gid(ae);
	e.mtime = archive_entry_mtime(ae);
	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &xn, &xv, &xl) == ARCHIVE_OK) {
		if (!strncmp(xn, "trusted.overlay.", 16)) {
			opaque |= !strcmp(xn, "trusted.overlay.opaque") && xl == 1 &&
				  *(const char *)xv == 'y';
			continue;
		}
		if (nx >= sizeof(tx) / sizeof(tx[0]))
			return msb_err_set(err, E2BIG,
					   "%s: %.200s has more than %d extended attributes",
					   t->what, path, SAVE_MAX_XATTRS);
		tx[nx++] = (struct tar_xattr){ xn, xv, xl };
	}
	e.xattrs = tx;
	e.nxattrs = nx;
	if (hl) {
		if (archive_member_path(hl, link, sizeof(link)) < 0)
			return msb_err_set(err, EINVAL, "%s: bad hard link %.200s", t->what, path);
		e.type = '1';
		e.link = link;
		return tw_header(t, &e, err);
	}
	switch (type) {
	case AE_IFREG: {
		uint8_t buf[COPY_CHUNK];
		la_ssize_t got;
		uint64_t left;

		e.type = '0';
		e.size = (uint64_t)archive_entry_size(ae);
		if (tw_header(t, &e, err) < 0)
			return -1;
		left = e.size;
		while (left && (got = archive_read_data(a, buf, sizeof(buf))) > 0) {
			if ((uint64_t)got > left)
				got = (la_ssize_t)left;
			if (tw_data(t, buf, (size_t)got, err) < 0)
				return -1;
			left -= (uint64_t)got;
		}
		if (left)
			return msb_err_set(err, EIO, "%s: %.200s is short", t->what, path);
		return tw_pad(t, e.size, err);
	}
	case AE_IFDIR:
		e.type = '5';
		if (tw_header(t, &e, err) < 0)
			return -1;
		return opaque ? tw_marker(t, path, strlen(path), ".wh..wh..opq", e.mtime, err) : 0;
	case AE_IFLNK:
		e.type = '2';
		e.link = archive_entry_symlink(ae);
		return tw_header(t, &e, err);
	case AE_IFCHR:
		if (!archive_entry_rdevmajor(ae) && !archive_entry_rdevminor(ae)) {
			char wh[PATH_MAX + 8];

			snprintf(wh, sizeof(wh), ".wh.%s", base);
			return tw_marker(t, path, base > path ? (size_t)(base - path - 1) : 0, wh,
					 e.mtime, err);
		}
		/* fallthrough */
	case AE_IFBLK:
	case AE_IFIFO:
		e.type = type == AE_IFCHR ? '3' : type == AE_IFBLK ? '4' : '6';
		e.devmajor = (uint32_t)archive_entry_rdevmajor(ae);
		e.devminor = (uint32_t)archive_entry_rdevminor(ae);
		return tw_header(t, &e, err);
	default:
		return 0;
	}
}

/* The OCI tar of the layer image @sqfs, written to @out. Return: 0 with its digest and size. */
static int regen_layer(const char *sqfs, const char *out, int cancel_fd, char *digest,
		       uint64_t *size, struct msb_err **err)
{
	char *argv[] = { "sqfs2tar", "--no-skip", (char *)sqfs, NULL };
	struct tw t = { .fd = -1, .hash = true, .what = sqfs, .cancel_fd = cancel_fd };
	struct archive *a = NULL;
	struct archive_entry *ae;
	int pfd[2] = { -1, -1 }, st = 0, r = -1;
	pid_t pid = -1;

	t.fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (t.fd < 0)
		return msb_err_sys(err, errno, "%s", out);
	if (sha256_init(&t.h) < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
		msb_err_sys(err, errno ? errno : ENOMEM, "save");
		goto out;
	}
	{
		struct spawn_opts o = spawn_opts_stdio(argv, SPAWN_NULL, pfd[1], SPAWN_NULL);
		int s = spawn(&o, &pid);

		close(pfd[1]);
		pfd[1] = -1;
		if (s < 0) {
			msb_err_sys(err, -s, "sqfs2tar (install squashfs-tools-ng)");
			goto out;
		}
	}
	a = archive_read_new();
	if (!a || archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_open_fd(a, pfd[0], COPY_CHUNK) != ARCHIVE_OK) {
		msb_err_set(err, EIO, "%s: cannot read sqfs2tar's output", sqfs);
		goto out;
	}
	for (;;) {
		int s = archive_read_next_header(a, &ae);

		if (s == ARCHIVE_EOF)
			break;
		if (s != ARCHIVE_OK && s != ARCHIVE_WARN) {
			msb_err_set(err, EIO, "%s: %s", sqfs,
				    archive_error_string(a) ? archive_error_string(a) : "bad tar");
			goto out;
		}
		if (regen_entry(&t, a, ae, err) < 0)
			goto out;
	}
	if (tarw_end(&t.b) < 0 || tw_flush(&t, err) < 0)
		goto out;
	r = 0;
out:
	archive_read_free(a);
	if (pfd[0] >= 0)
		close(pfd[0]); /* sqfs2tar dies of SIGPIPE if we stopped early */
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (pid > 0 && spawn_wait(pid, &st) == 0 && r == 0 &&
	    !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		r = msb_err_set(err, EIO, "sqfs2tar %s failed (status %d)", sqfs, st);
	if (r == 0) {
		sha256_final(&t.h, digest);
		*size = t.bytes;
	} else {
		sha256_free(&t.h);
	}
	buf_free(&t.b);
	if (close(t.fd) < 0 && r == 0)
		r = msb_err_sys(err, errno, "%s", out);
	return r;
}

/* A distinct layer being saved: regenerated to <tmpdir>/<index>. */
struct slayer {
	const char *diff_id;
	char digest[DIGEST_LEN];
	uint64_t size;
	char *file;
};

/* One image being saved: its config (with the new diff_ids) and manifest. */
struct simage {
	char *name; /* familiar */
	char *config, *manifest;
	char cdigest[DIGEST_LEN], mdigest[DIGEST_LEN];
	const struct slayer **layers;
	size_t nlayers;
};

static const struct slayer *slayer_of(const struct slayer *v, size_t n, const char *diff_id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].diff_id, diff_id))
			return &v[i];
	return NULL;
}

/* The image's config with rootfs.diff_ids replaced, and an OCI manifest for it. */
static int simage_make(struct simage *si, const struct image_record *img, const struct slayer *sls,
		       size_t nsl, struct msb_err **err)
{
	json_t *cfg = json_loads(img->config, 0, NULL), *rootfs, *ids = json_array(), *layers;
	json_t *man = NULL;
	struct image_ref ref;
	char why[64];
	int r = -1;

	rootfs = json_object_get(cfg, "rootfs");
	layers = json_array();
	si->layers = calloc(img->nlayers ? img->nlayers : 1, sizeof(const void *));
	si->nlayers = img->nlayers;
	if (!json_is_object(rootfs) || !ids || !layers || !si->layers) {
		msb_err_set(err, EINVAL, "image %s: bad config in the store", img->reference);
		goto out;
	}
	for (size_t k = 0; k < img->nlayers; k++) {
		si->layers[k] = slayer_of(sls, nsl, img->layers[k].diff_id);
		json_array_append_new(ids, json_string(si->layers[k]->digest));
		json_array_append_new(layers,
				      json_pack("{s:s, s:s, s:I}", "mediaType", MT_OCI_LAYER_TAR,
						"digest", si->layers[k]->digest, "size",
						(json_int_t)si->layers[k]->size));
	}
	json_object_set(rootfs, "diff_ids", ids);
	si->config = json_dumps(cfg, JSON_COMPACT);
	if (!si->config) {
		msb_err_sys(err, ENOMEM, "save");
		goto out;
	}
	sha256_digest(si->config, strlen(si->config), si->cdigest);
	man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:O}", "schemaVersion", 2, "mediaType",
			MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG, "digest",
			si->cdigest, "size", (json_int_t)strlen(si->config), "layers", layers);
	si->manifest = man ? json_dumps(man, JSON_COMPACT) : NULL;
	if (!si->manifest) {
		msb_err_sys(err, ENOMEM, "save");
		goto out;
	}
	sha256_digest(si->manifest, strlen(si->manifest), si->mdigest);
	if (ref_parse(img->reference, &ref, why, sizeof(why)) == 0) {
		si->name = ref_familiar(&ref);
		ref_free(&ref);
	} else {
		si->name = strdup(img->reference);
	}
	r = si->name ? 0 : msb_err_sys(err, ENOMEM, "save");
out:
	json_decref(cfg);
	json_decref(ids);
	json_decref(layers);
	json_decref(man);
	return r;
}

static int tw_blob_mem(struct tw *t, const char *path, const char *data, struct msb_err **err)
{
	struct tar_entry e = { .path = path, .type = '0', .mode = 0644, .size = strlen(data) };

	if (tw_header(t, &e, err) < 0 || tw_data(t, data, e.size, err) < 0)
		return -1;
	return tw_pad(t, e.size, err);
}

static int tw_blob_file(struct tw *t, const char *path, const struct slayer *sl,
			struct msb_err **err)
{
	struct tar_entry e = { .path = path, .type = '0', .mode = 0644, .size = sl->size };
	_cleanup_close_ int fd = open(sl->file, O_RDONLY | O_CLOEXEC);
	uint8_t buf[COPY_CHUNK];
	uint64_t left = sl->size;

	if (fd < 0)
		return msb_err_sys(err, errno, "%s", sl->file);
	if (tw_header(t, &e, err) < 0)
		return -1;
	while (left) {
		ssize_t n = read(fd, buf, left < sizeof(buf) ? left : sizeof(buf));

		if (n <= 0)
			return msb_err_sys(err, n < 0 ? errno : EIO, "%s", sl->file);
		if (tw_data(t, buf, (size_t)n, err) < 0)
			return -1;
		left -= (uint64_t)n;
	}
	return tw_pad(t, sl->size, err);
}

/* Has an image of @sis before @i the manifest (or config) digest @d? */
static bool seen(const struct simage *sis, size_t i, const char *d, bool manifest)
{
	for (size_t k = 0; k < i; k++)
		if (!strcmp(manifest ? sis[k].mdigest : sis[k].cdigest, d))
			return true;
	return false;
}

static int write_oci(struct tw *t, const struct simage *sis, size_t n, const struct slayer *sls,
		     size_t nsl, struct msb_err **err)
{
	json_t *ms = json_array(), *idx;
	char path[DIGEST_LEN + 16];
	_cleanup_free_ char *body = NULL;
	struct tar_entry d = { .type = '5', .mode = 0755 };

	for (size_t i = 0; i < n; i++)
		json_array_append_new(ms, json_pack("{s:s, s:s, s:I, s:{s:s, s:s}}", "mediaType",
						    MT_OCI_MANIFEST, "digest", sis[i].mdigest,
						    "size", (json_int_t)strlen(sis[i].manifest),
						    "annotations", ANN_CONTAINERD, sis[i].name,
						    ANN_REF_NAME, sis[i].name));
	idx = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
			"manifests", ms);
	body = idx ? json_dumps(idx, JSON_COMPACT) : NULL;
	json_decref(idx);
	if (!body)
		return msb_err_sys(err, ENOMEM, "save");
	if (tw_blob_mem(t, "oci-layout", OCI_LAYOUT, err) < 0 ||
	    tw_blob_mem(t, "index.json", body, err) < 0)
		return -1;
	d.path = "blobs";
	if (tw_header(t, &d, err) < 0)
		return -1;
	d.path = "blobs/sha256";
	if (tw_header(t, &d, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!seen(sis, i, sis[i].mdigest, true)) {
			snprintf(path, sizeof(path), "blobs/sha256/%s", sis[i].mdigest + 7);
			if (tw_blob_mem(t, path, sis[i].manifest, err) < 0)
				return -1;
		}
		if (!seen(sis, i, sis[i].cdigest, false)) {
			snprintf(path, sizeof(path), "blobs/sha256/%s", sis[i].cdigest + 7);
			if (tw_blob_mem(t, path, sis[i].config, err) < 0)
				return -1;
		}
	}
	for (size_t i = 0; i < nsl; i++) {
		snprintf(path, sizeof(path), "blobs/sha256/%s", sls[i].digest + 7);
		if (tw_blob_file(t, path, &sls[i], err) < 0)
			return -1;
	}
	return 0;
}

static int write_docker(struct tw *t, const struct simage *sis, size_t n, const struct slayer *sls,
			size_t nsl, struct msb_err **err)
{
	json_t *root = json_array();
	char path[DIGEST_LEN + 16];
	_cleanup_free_ char *body = NULL;

	for (size_t i = 0; i < n; i++) {
		json_t *layers = json_array();

		for (size_t k = 0; k < sis[i].nlayers; k++) {
			snprintf(path, sizeof(path), "%s.tar", sis[i].layers[k]->digest + 7);
			json_array_append_new(layers, json_string(path));
		}
		snprintf(path, sizeof(path), "%s.json", sis[i].cdigest + 7);
		json_array_append_new(root, json_pack("{s:s, s:[s], s:o}", "Config", path,
						      "RepoTags", sis[i].name, "Layers", layers));
	}
	body = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!body)
		return msb_err_sys(err, ENOMEM, "save");
	if (tw_blob_mem(t, "manifest.json", body, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s.json", sis[i].cdigest + 7);
		if (!seen(sis, i, sis[i].cdigest, false) &&
		    tw_blob_mem(t, path, sis[i].config, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < nsl; i++) {
		snprintf(path, sizeof(path), "%s.tar", sls[i].digest + 7);
		if (tw_blob_file(t, path, &sls[i], err) < 0)
			return -1;
	}
	return 0;
}

/* Regenerates every distinct layer of @imgs into @dir, holding the layers meanwhile. */
static int regen_all(const struct image_record *imgs, size_t n, const char *dir, int cancel_fd,
		     struct slayer *sls, size_t *nsl, struct msb_err **err)
{
	for (size_t i = 0; i < n; i++) {
		int *fds = NULL;
		int r = 0;

		if (image_hold_layers(&imgs[i], &fds, err) < 0)
			return -1;
		for (size_t k = 0; r == 0 && k < imgs[i].nlayers; k++) {
			struct slayer *sl = &sls[*nsl];
			_cleanup_free_ char *sqfs = NULL;

			if (slayer_of(sls, *nsl, imgs[i].layers[k].diff_id))
				continue;
			sl->diff_id = imgs[i].layers[k].diff_id;
			sqfs = layer_file(sl->diff_id);
			if (!sqfs || asprintf(&sl->file, "%s/%zu.tar", dir, *nsl) < 0) {
				sl->file = NULL;
				r = msb_err_sys(err, ENOMEM, "save");
				break;
			}
			(*nsl)++;
			r = regen_layer(sqfs, sl->file, cancel_fd, sl->digest, &sl->size, err);
		}
		image_release_layers(fds, imgs[i].nlayers);
		if (r < 0)
			return -1;
	}
	return 0;
}

int archive_save(const struct image_record *imgs, size_t n, const char *path,
		 enum archive_format fmt, int cancel_fd, struct msb_err **err)
{
	struct slayer *sls = NULL;
	struct simage *sis = calloc(n ? n : 1, sizeof(*sis));
	struct tw t = { .fd = -1, .what = path, .cancel_fd = cancel_fd };
	_cleanup_free_ char *dir = NULL, *tmp = NULL;
	size_t nsl = 0, cap = 0;
	bool to_stdout = !strcmp(path, "-");
	int r = -1, dir_lock = -1;

	for (size_t i = 0; i < n; i++)
		cap += imgs[i].nlayers;
	sls = calloc(cap ? cap : 1, sizeof(*sls));
	if (!sis || !sls) {
		msb_err_sys(err, ENOMEM, "save");
		goto out;
	}
	if (to_stdout && isatty(STDOUT_FILENO)) {
		msb_err_set(err, EINVAL,
			    "refusing to write an archive to a terminal (use -o FILE)");
		goto out;
	}
	if (private_dir("save-", &dir, &dir_lock, err) < 0)
		goto out;
	if (regen_all(imgs, n, dir, cancel_fd, sls, &nsl, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (simage_make(&sis[i], &imgs[i], sls, nsl, err) < 0)
			goto out;
	if (to_stdout) {
		t.fd = STDOUT_FILENO;
		t.what = "(stdout)";
	} else {
		if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) {
			msb_err_sys(err, ENOMEM, "save");
			goto out;
		}
		t.fd = mkostemp(tmp, O_CLOEXEC);
		if (t.fd < 0) {
			msb_err_sys(err, errno, "%s", path);
			free(steal_ptr(tmp));
			goto out;
		}
		(void)!fchmod(t.fd, 0644);
	}
	if ((fmt == ARCHIVE_OCI ? write_oci(&t, sis, n, sls, nsl, err)
				: write_docker(&t, sis, n, sls, nsl, err)) < 0)
		goto out;
	if (tarw_end(&t.b) < 0 || tw_flush(&t, err) < 0)
		goto out;
	if (!to_stdout && (fsync(t.fd) < 0 || rename(tmp, path) < 0)) {
		msb_err_sys(err, errno, "%s", path);
		goto out;
	}
	r = 0;
out:
	if (r < 0)
		msb_err_prefix(err, "save");
	if (!to_stdout && t.fd >= 0)
		close(t.fd);
	if (r < 0 && tmp)
		unlink(tmp);
	buf_free(&t.b);
	for (size_t i = 0; sis && i < n; i++) {
		free(sis[i].name);
		free(sis[i].config);
		free(sis[i].manifest);
		free(sis[i].layers);
	}
	for (size_t i = 0; i < nsl; i++)
		free(sls[i].file);
	free(sis);
	free(sls);
	if (dir)
		rm_rf(dir);
	if (dir_lock >= 0)
		close(dir_lock);
	return r;
}
