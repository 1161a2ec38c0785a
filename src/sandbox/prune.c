// SPDX-License-Identifier: Apache-2.0
/* The reclaimable part of MSB_HOME, found and removed (see prune.h). */
#define _GNU_SOURCE
#include "sandbox/prune.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/ref.h"
#include "image/store.h"
#include "sandbox/sandbox.h"
#include "sandbox/warm.h"
#include "store/db.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strmap.h"

#define HEX_LEN 64

const char *prune_kind_name(enum prune_kind k)
{
	switch (k) {
	case PRUNE_SANDBOX:
		return "sandbox";
	case PRUNE_IMAGE:
		return "image";
	case PRUNE_LAYER:
		return "layer";
	case PRUNE_DOWNLOAD:
		return "download";
	case PRUNE_TEMPLATE:
		return "template";
	}
	return "?";
}

/* What must stay: images (canonical references) and layers (diff_ids) someone uses. */
struct refs {
	struct strmap images, layers;
};

static void refs_free(struct refs *r)
{
	strmap_free(&r->images);
	strmap_free(&r->layers);
}

/* <MSB_HOME>/@sub. Return: newly allocated, or NULL. */
static char *home_path(const char *sub)
{
	return msb_home() ? path_join(msb_home(), sub) : NULL;
}

/* Is @s 64 lowercase hex digits followed by @suffix (NULL: anything)? */
static bool hex_name(const char *s, const char *suffix)
{
	return strspn(s, "0123456789abcdef") == HEX_LEN &&
	       (!suffix || !strcmp(s + HEX_LEN, suffix));
}

/* The diff_id of layer file @path if it is one of the cache's, else NULL. Return: newly allocated.
 */
static char *cache_layer_id(const char *layers_dir, const char *path)
{
	size_t n = strlen(layers_dir);
	char *id = NULL;

	if (strncmp(path, layers_dir, n) != 0 || path[n] != '/' || !hex_name(path + n + 1, ".sqfs"))
		return NULL;
	if (asprintf(&id, "sha256:%.64s", path + n + 1) < 0)
		return NULL;
	return id;
}

/* The image and cache layers a config.json (a sandbox's, a snapshot's) or snapshot.json names. */
static int refs_add_file(struct refs *r, int at, const char *file, const char *layers_dir)
{
	_cleanup_close_ int fd = openat(at, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	json_t *o = fd >= 0 ? json_loadfd(fd, 0, NULL) : NULL, *layers;
	const char *image = json_string_value(json_object_get(o, "image"));
	int rc = 0;

	if (image)
		rc = strmap_put(&r->images, image, 0);
	layers = json_object_get(o, "layers");
	for (size_t i = 0; !rc && i < json_array_size(layers); i++) {
		const char *p = json_string_value(json_array_get(layers, i));
		_cleanup_free_ char *id = p ? cache_layer_id(layers_dir, p) : NULL;

		if (id)
			rc = strmap_put(&r->layers, id, 0);
	}
	json_decref(o);
	return rc;
}

/* An installed alias's image, as its record names it (what the user typed). */
static int refs_add_alias(struct refs *r, int at, const char *file)
{
	_cleanup_close_ int fd = openat(at, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	json_t *o = fd >= 0 ? json_loadfd(fd, 0, NULL) : NULL;
	const char *image = json_string_value(json_object_get(o, "image"));
	struct image_ref ref;
	char why[128];
	int rc = 0;

	if (image && ref_parse(image, &ref, why, sizeof(why)) == 0) {
		_cleanup_free_ char *canon = ref_canonical(&ref);

		rc = canon ? strmap_put(&r->images, canon, 0) : -ENOMEM;
		ref_free(&ref);
	}
	json_decref(o);
	return rc;
}

/*
 * Everything kept refers to: sandboxes (all but leftovers when @what takes
 * them), snapshots, aliases; then the layers of every image so referred to.
 * *@imgs gets every image record (caller frees).
 */
static int references(unsigned int what, struct db *db, struct refs *r, struct image_record **imgs,
		      size_t *nimg, struct msb_err **err)
{
	_cleanup_free_ char *sdir = home_path("sandboxes"), *pdir = home_path("snapshots"),
			    *adir = home_path("aliases"), *ldir = home_path("cache/layers");
	_cleanup_closedir_ DIR *d = NULL;
	struct strmap kept = { 0 };
	struct sandbox_row *rows = NULL;
	struct dirent *de;
	size_t nrows = 0;
	int rc = 0;

	*imgs = NULL;
	*nimg = 0;
	memset(r, 0, sizeof(*r));
	if (!sdir || !pdir || !adir || !ldir)
		return msb_err_sys(err, ENOMEM, "prune");
	d = opendir(sdir);
	while (!rc && d && (de = readdir(d))) {
		_cleanup_free_ char *cfg = NULL;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    ((what & PRUNE_SANDBOXES) && sbx_leftover(de->d_name)))
			continue;
		cfg = path_join(de->d_name, "config.json");
		rc = cfg ? strmap_put(&kept, de->d_name, 0) : -ENOMEM;
		if (!rc)
			rc = refs_add_file(r, dirfd(d), cfg, ldir);
	}
	if (d)
		closedir(steal_ptr(d));
	/* A row counts while its sandbox's directory is there and kept. */
	if (!rc && db_sandbox_list(db, &rows, &nrows, err) < 0) {
		strmap_free(&kept);
		refs_free(r);
		return -1;
	}
	for (size_t i = 0; !rc && i < nrows; i++) {
		size_t unused;

		if (rows[i].image && strmap_get(&kept, rows[i].name, &unused))
			rc = strmap_put(&r->images, rows[i].image, 0);
	}
	sandbox_rows_free(rows, nrows);
	strmap_free(&kept);
	d = opendir(pdir);
	while (!rc && d && (de = readdir(d))) {
		_cleanup_free_ char *cfg = path_join(de->d_name, "config.json"),
				    *meta = path_join(de->d_name, "snapshot.json");

		if (de->d_name[0] == '.')
			continue;
		rc = cfg && meta ? refs_add_file(r, dirfd(d), cfg, ldir) : -ENOMEM;
		if (!rc)
			rc = refs_add_file(r, dirfd(d), meta, ldir);
	}
	if (d)
		closedir(steal_ptr(d));
	d = opendir(adir);
	while (!rc && d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (de->d_name[0] != '.' && n > 5 && !strcmp(de->d_name + n - 5, ".json"))
			rc = refs_add_alias(r, dirfd(d), de->d_name);
	}
	if (!rc && db_image_list(db, imgs, nimg, err) < 0) {
		refs_free(r);
		return -1;
	}
	for (size_t i = 0; !rc && i < *nimg; i++) {
		size_t unused;

		if (!strmap_get(&r->images, (*imgs)[i].reference, &unused))
			continue;
		for (size_t k = 0; !rc && k < (*imgs)[i].nlayers; k++)
			rc = strmap_put(&r->layers, (*imgs)[i].layers[k].diff_id, 0);
	}
	if (rc) {
		image_records_free(*imgs, *nimg);
		*imgs = NULL;
		*nimg = 0;
		refs_free(r);
		return msb_err_sys(err, -rc, "prune");
	}
	return 0;
}

static int add_item(struct prune_plan *p, enum prune_kind kind, const char *name, const char *dir,
		    const char *entry)
{
	struct prune_item *v = realloc(p->v, (p->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	p->v = v;
	v[p->n] = (struct prune_item){ .kind = kind, .name = strdup(name) };
	if (!v[p->n].name || (dir && !(v[p->n].path = path_join(dir, entry)))) {
		free(v[p->n].name);
		free(v[p->n].path);
		return -ENOMEM;
	}
	p->n++;
	return 0;
}

/* Entries of @dir that @pick() takes become items of @kind, named by @pick(). */
static int add_dir(struct prune_plan *p, enum prune_kind kind, const char *dir,
		   int (*pick)(int at, const char *entry, const struct refs *r, char **name),
		   const struct refs *r)
{
	_cleanup_closedir_ DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;
	int rc = dir ? 0 : -ENOMEM;

	while (!rc && d && (de = readdir(d))) {
		_cleanup_free_ char *name = NULL;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		rc = pick(dirfd(d), de->d_name, r, &name);
		if (rc > 0)
			rc = add_item(p, kind, name, dir, de->d_name);
	}
	return rc;
}

static int pick_sandbox(int at, const char *entry, const struct refs *r, char **name)
{
	(void)at;
	(void)r;
	if (!sbx_leftover(entry))
		return 0;
	*name = strdup(entry);
	return *name ? 1 : -ENOMEM;
}

static int pick_layer(int at, const char *entry, const struct refs *r, char **name)
{
	size_t unused;

	(void)at;
	if (!hex_name(entry, ".sqfs"))
		return 0;
	if (asprintf(name, "sha256:%.64s", entry) < 0) {
		*name = NULL;
		return -ENOMEM;
	}
	return strmap_get(&r->layers, *name, &unused) ? 0 : 1;
}

static int pick_download(int at, const char *entry, const struct refs *r, char **name)
{
	(void)at;
	(void)r;
	if (entry[0] == '.')
		return 0;
	*name = strdup(entry);
	return *name ? 1 : -ENOMEM;
}

static int pick_template(int at, const char *entry, const struct refs *r, char **name)
{
	struct stat st;

	(void)r;
	if (entry[0] == '.' || fstatat(at, entry, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !warm_stale(&st, time(NULL)))
		return 0;
	*name = strdup(entry);
	return *name ? 1 : -ENOMEM;
}

/* Inodes reached by the plan's items: how many of their links, and which item reached them first.
 */
struct ino {
	dev_t dev;
	ino_t ino;
	uint64_t bytes;
	nlink_t nlink, links;
	size_t item;
	bool dir;
};

struct inos {
	struct ino *v;
	size_t cap, n;
};

static struct ino *ino_find(struct inos *t, const struct stat *st)
{
	if (2 * (t->n + 1) > t->cap) {
		struct inos g = { .cap = t->cap ? 2 * t->cap : 256 };

		g.v = calloc(g.cap, sizeof(*g.v));
		if (!g.v)
			return NULL;
		for (size_t i = 0; i < t->cap; i++) {
			size_t h;

			if (!t->v[i].ino)
				continue;
			h = ((size_t)t->v[i].ino * 0x9e3779b97f4a7c15ull ^ (size_t)t->v[i].dev) &
			    (g.cap - 1);
			while (g.v[h].ino)
				h = (h + 1) & (g.cap - 1);
			g.v[h] = t->v[i];
			g.n++;
		}
		free(t->v);
		*t = g;
	}
	for (size_t h = ((size_t)st->st_ino * 0x9e3779b97f4a7c15ull ^ (size_t)st->st_dev) &
			(t->cap - 1);
	     ; h = (h + 1) & (t->cap - 1)) {
		if (!t->v[h].ino) {
			t->v[h] = (struct ino){ .dev = st->st_dev,
						.ino = st->st_ino,
						.bytes = (uint64_t)st->st_blocks * 512,
						.nlink = st->st_nlink,
						.item = SIZE_MAX,
						.dir = S_ISDIR(st->st_mode) };
			t->n++;
			return &t->v[h];
		}
		if (t->v[h].ino == st->st_ino && t->v[h].dev == st->st_dev)
			return &t->v[h];
	}
}

/* Notes every link under @at/@name (a file or a tree) as reached by item @item. */
static void walk(int at, const char *name, size_t item, struct inos *t, int depth)
{
	struct stat st;
	struct ino *e;
	struct dirent *de;
	DIR *d;
	int fd;

	if (depth > 64 || fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !st.st_ino)
		return;
	e = ino_find(t, &st);
	if (!e)
		return;
	e->links++;
	if (e->item == SIZE_MAX)
		e->item = item;
	if (!S_ISDIR(st.st_mode))
		return;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			walk(dirfd(d), de->d_name, item, t, depth + 1);
	closedir(d);
}

/*
 * Each item's size: the blocks of the inodes it reached first whose every
 * link is among the items. Kinds are walked in `msb df`'s order (layers,
 * downloads, sandboxes, templates), so an inode is credited to the kind df
 * counts its size under.
 */
static void measure(struct prune_plan *p)
{
	static const enum prune_kind order[] = { PRUNE_LAYER, PRUNE_DOWNLOAD, PRUNE_SANDBOX,
						 PRUNE_TEMPLATE };
	struct inos t = { 0 };

	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		for (size_t i = 0; i < p->n; i++)
			if (p->v[i].kind == order[k] && p->v[i].path)
				walk(AT_FDCWD, p->v[i].path, i, &t, 0);
	p->total = 0;
	for (size_t i = 0; i < t.cap; i++) {
		if (!t.v[i].ino || t.v[i].item == SIZE_MAX ||
		    (!t.v[i].dir && t.v[i].links < t.v[i].nlink))
			continue;
		p->v[t.v[i].item].size += t.v[i].bytes;
		p->total += t.v[i].bytes;
	}
	free(t.v);
}

int prune_plan(unsigned int what, struct prune_plan *out, struct msb_err **err)
{
	_cleanup_free_ char *sdir = home_path("sandboxes"), *ldir = home_path("cache/layers"),
			    *bdir = home_path("cache/blobs"), *tdir = home_path("templates");
	struct image_record *imgs = NULL;
	struct refs r = { 0 };
	struct db *db = NULL;
	size_t nimg = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!msb_home())
		return msb_err_set(err, ENOENT, "no home directory (set MSB_HOME)");
	if (db_open(&db, err) < 0)
		return -1;
	if (references(what, db, &r, &imgs, &nimg, err) < 0) {
		db_close(db);
		return -1;
	}
	db_close(db);
	if (what & PRUNE_SANDBOXES)
		rc = add_dir(out, PRUNE_SANDBOX, sdir, pick_sandbox, &r);
	for (size_t i = 0; !rc && (what & PRUNE_IMAGES) && i < nimg; i++) {
		size_t unused;

		if (!strmap_get(&r.images, imgs[i].reference, &unused))
			rc = add_item(out, PRUNE_IMAGE, imgs[i].reference, NULL, NULL);
	}
	if (!rc && (what & PRUNE_IMAGES))
		rc = add_dir(out, PRUNE_LAYER, ldir, pick_layer, &r);
	if (!rc && (what & PRUNE_DOWNLOADS))
		rc = add_dir(out, PRUNE_DOWNLOAD, bdir, pick_download, &r);
	if (!rc && (what & PRUNE_TEMPLATES))
		rc = add_dir(out, PRUNE_TEMPLATE, tdir, pick_template, &r);
	image_records_free(imgs, nimg);
	refs_free(&r);
	if (rc) {
		prune_plan_free(out);
		return msb_err_sys(err, -rc, "prune");
	}
	measure(out);
	return 0;
}

/* Is @name still unused, under the locks the caller holds? Return: 1 yes, 0 no, -1 with @err. */
static int still_unused(struct db *db, const struct prune_item *it, struct msb_err **err)
{
	struct image_record *imgs = NULL;
	struct refs r;
	size_t nimg = 0, unused;
	bool used;

	/* Sandboxes are reaped first: none left over now is one this prune removes. */
	if (references(PRUNE_SANDBOXES, db, &r, &imgs, &nimg, err) < 0)
		return -1;
	used = strmap_get(it->kind == PRUNE_IMAGE ? &r.images : &r.layers, it->name, &unused);
	image_records_free(imgs, nimg);
	refs_free(&r);
	return !used;
}

/* Deletes image @it unless a layer of it is busy or it is used again. Return: 1, 0 or -1. */
static int remove_image(struct db *db, const struct prune_item *it, struct msb_err **err)
{
	struct image_record img;
	int *fds = NULL, rc;
	char **orphans = NULL;
	size_t held = 0;

	rc = db_image_get(db, it->name, &img, err);
	if (rc != 0)
		return rc < 0 ? -1 : 0; /* gone already */
	fds = calloc(img.nlayers + 1, sizeof(*fds));
	if (!fds) {
		image_record_free(&img);
		return msb_err_sys(err, ENOMEM, "prune");
	}
	for (rc = 1; rc > 0 && held < img.nlayers; held++) {
		fds[held] = image_try_lock_layer(img.layers[held].diff_id);
		if (fds[held] == -EBUSY)
			rc = 0; /* a pull or a starting sandbox has it */
		else if (fds[held] < 0 && fds[held] != -ENOENT)
			rc = msb_err_sys(err, -fds[held], "layer %s", img.layers[held].diff_id);
	}
	if (rc > 0)
		rc = still_unused(db, it, err);
	if (rc > 0 && db_image_delete(db, it->name, &orphans, err) < 0)
		rc = -1;
	cleanup_strvp(&orphans); /* the layer items remove them */
	for (size_t i = 0; i < held; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	image_record_free(&img);
	return rc;
}

/* Deletes layer @it under its lock unless it is busy or used. Return: 1, 0 or -1. */
static int remove_layer(struct db *db, const struct prune_item *it, struct msb_err **err)
{
	_cleanup_close_ int fd = image_try_lock_layer(it->name);
	int rc;

	if (fd == -EBUSY || fd == -ENOENT)
		return 0;
	if (fd < 0)
		return msb_err_sys(err, -fd, "layer %s", it->name);
	rc = still_unused(db, it, err);
	return rc > 0 ? image_remove_layer_locked(db, it->name, err) : rc;
}

/* Deletes a download; one of a layer goes under that layer's lock (only its holder writes it). */
static int remove_download(const struct prune_item *it, struct msb_err **err)
{
	_cleanup_close_ int fd = -1;

	if (hex_name(it->name, NULL) && it->name[HEX_LEN] == '-') {
		char id[8 + HEX_LEN];

		snprintf(id, sizeof(id), "sha256:%.64s", it->name);
		fd = image_try_lock_layer(id);
		if (fd == -EBUSY)
			return 0;
	} else {
		/* An image load's or save's directory: flocked while that runs (archive.c). */
		fd = open(it->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		/* Gone already (or not ours to judge): nothing removed here. */
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
			return 0;
	}
	int r = rm_rf(it->path);

	if (r < 0)
		return msb_err_sys(err, -r, "%s", it->path);
	return 1;
}

/* Deletes a template's shape if it is still stale (a start touches it when it uses it). */
static int remove_template(const struct prune_item *it, struct msb_err **err)
{
	struct stat st;

	if (lstat(it->path, &st) < 0 || !warm_stale(&st, time(NULL)))
		return 0;
	int r = rm_rf(it->path);

	if (r < 0)
		return msb_err_sys(err, -r, "%s", it->path);
	return 1;
}

int prune_apply(const struct prune_plan *p, void (*removed)(const struct prune_item *, void *),
		void *ctx, struct msb_err **err)
{
	struct db *db = NULL;
	int failed = 0;

	if (db_open(&db, err) < 0)
		return -1;
	for (size_t i = 0; i < p->n; i++) {
		const struct prune_item *it = &p->v[i];
		struct msb_err *e = NULL;
		int rc = 0;

		switch (it->kind) {
		case PRUNE_SANDBOX:
			rc = sbx_reap_one(it->name);
			break;
		case PRUNE_IMAGE:
			rc = remove_image(db, it, &e);
			break;
		case PRUNE_LAYER:
			rc = remove_layer(db, it, &e);
			break;
		case PRUNE_DOWNLOAD:
			rc = remove_download(it, &e);
			break;
		case PRUNE_TEMPLATE:
			rc = remove_template(it, &e);
			break;
		}
		if (rc > 0 && removed)
			removed(it, ctx);
		if (rc < 0 && !failed) {
			failed = -1;
			if (err)
				*err = steal_ptr(e);
		}
		msb_err_free(e);
	}
	db_close(db);
	return failed;
}

void prune_plan_free(struct prune_plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].name);
		free(p->v[i].path);
	}
	free(p->v);
	memset(p, 0, sizeof(*p));
}
