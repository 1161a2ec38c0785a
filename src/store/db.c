// SPDX-License-Identifier: Apache-2.0
/* The sqlite store: schema, and the few queries msb needs, all parameterised. */
#define _GNU_SOURCE
#include "store/db.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#define SCHEMA_VERSION 1

struct db {
	sqlite3 *h;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS images("
	"  reference TEXT PRIMARY KEY,"
	"  manifest_digest TEXT NOT NULL,"
	"  index_digest TEXT,"
	"  config_digest TEXT NOT NULL,"
	"  manifest TEXT NOT NULL,"
	"  config TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  created TEXT,"
	"  pulled_at TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS layers("
	"  diff_id TEXT PRIMARY KEY,"
	"  digest TEXT NOT NULL,"
	"  media_type TEXT NOT NULL,"
	"  compressed_size INTEGER NOT NULL,"
	"  tar_size INTEGER NOT NULL,"
	"  fs_size INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS image_layers("
	"  reference TEXT NOT NULL REFERENCES images(reference) ON DELETE CASCADE,"
	"  position INTEGER NOT NULL,"
	"  diff_id TEXT NOT NULL REFERENCES layers(diff_id),"
	"  PRIMARY KEY(reference, position));"
	"CREATE INDEX IF NOT EXISTS image_layers_diff ON image_layers(diff_id);"
	"CREATE TABLE IF NOT EXISTS sandboxes("
	"  name TEXT PRIMARY KEY,"
	"  image TEXT,"
	"  manifest_digest TEXT,"
	"  status TEXT NOT NULL,"
	"  created_at TEXT NOT NULL);";

static int fail(struct db *db, struct msb_err **err, const char *what)
{
	return msb_err_set(err, EIO, "database: %s: %s", what, sqlite3_errmsg(db->h));
}

static int exec(struct db *db, const char *sql, struct msb_err **err)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		msb_err_set(err, EIO, "database: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Return: an fd holding an exclusive lock on <dir>/msb.db.lock, or -1 (then no lock). */
static int open_lock(const char *dir)
{
	_cleanup_free_ char *p = path_join(dir, "msb.db.lock");
	int fd = p ? open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;

	if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int db_open(struct db **out, struct msb_err **err)
{
	_cleanup_free_ char *dir = NULL, *path = NULL;
	const char *home = msb_home();
	struct db *db;
	int r, lock;

	if (!home || !(dir = path_join(home, "db")) || !(path = path_join(dir, "msb.db")))
		return msb_err_set(err, ENOMEM, "cannot locate the msb home (set MSB_HOME)");
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return msb_err_sys(err, -r, "%s", dir);
	db = calloc(1, sizeof(*db));
	if (!db)
		return msb_err_sys(err, ENOMEM, "database");
	if (sqlite3_open_v2(path, &db->h,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		msb_err_set(err, EIO, "%s: %s", path,
			    db->h ? sqlite3_errmsg(db->h) : "cannot open");
		db_close(db);
		return -1;
	}
	/* Concurrent msb processes wait for each other instead of failing. */
	sqlite3_busy_timeout(db->h, 30000);
	/*
	 * Turning on WAL and creating the schema take locks sqlite's busy
	 * handler does not wait for: one process at a time does it.
	 */
	lock = open_lock(dir);
	r = exec(db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;",
		 err);
	if (!r)
		r = exec(db, schema, err);
	if (!r)
		r = exec(db, "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '1');", err);
	if (lock >= 0)
		close(lock);
	if (r < 0) {
		db_close(db);
		return msb_err_prefix(err, "%s", path);
	}
	*out = db;
	return 0;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	sqlite3_close(db->h);
	free(db);
}

static sqlite3_stmt *prep(struct db *db, const char *sql, struct msb_err **err)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
		fail(db, err, "prepare");
		return NULL;
	}
	return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? strdup((const char *)s) : NULL;
}

int db_image_put(struct db *db, const struct image_record *img, struct msb_err **err)
{
	sqlite3_stmt *st = NULL;
	int r = -1;

	if (exec(db, "BEGIN IMMEDIATE;", err) < 0)
		return -1;
	st = prep(db, "DELETE FROM images WHERE reference = ?1;", err);
	if (!st)
		goto out;
	bind_text(st, 1, img->reference);
	if (sqlite3_step(st) != SQLITE_DONE && fail(db, err, "delete image"))
		goto out;
	sqlite3_finalize(st);
	st = prep(
		db,
		"INSERT INTO images(reference, manifest_digest, index_digest, config_digest,"
		" manifest, config, size, created, pulled_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9);",
		err);
	if (!st)
		goto out;
	bind_text(st, 1, img->reference);
	bind_text(st, 2, img->manifest_digest);
	bind_text(st, 3, img->index_digest);
	bind_text(st, 4, img->config_digest);
	bind_text(st, 5, img->manifest);
	bind_text(st, 6, img->config);
	sqlite3_bind_int64(st, 7, img->size);
	bind_text(st, 8, img->created);
	bind_text(st, 9, img->pulled_at);
	if (sqlite3_step(st) != SQLITE_DONE && fail(db, err, "insert image"))
		goto out;
	for (size_t i = 0; i < img->nlayers; i++) {
		const struct layer_record *l = &img->layers[i];

		sqlite3_finalize(st);
		st = prep(
			db,
			"INSERT INTO layers(diff_id, digest, media_type, compressed_size, tar_size,"
			" fs_size) VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT(diff_id) DO UPDATE SET"
			" fs_size = excluded.fs_size;",
			err);
		if (!st)
			goto out;
		bind_text(st, 1, l->diff_id);
		bind_text(st, 2, l->digest);
		bind_text(st, 3, l->media_type);
		sqlite3_bind_int64(st, 4, l->compressed_size);
		sqlite3_bind_int64(st, 5, l->tar_size);
		sqlite3_bind_int64(st, 6, l->fs_size);
		if (sqlite3_step(st) != SQLITE_DONE && fail(db, err, "insert layer"))
			goto out;
		sqlite3_finalize(st);
		st = prep(
			db,
			"INSERT INTO image_layers(reference, position, diff_id) VALUES(?1,?2,?3);",
			err);
		if (!st)
			goto out;
		bind_text(st, 1, img->reference);
		sqlite3_bind_int(st, 2, (int)i);
		bind_text(st, 3, l->diff_id);
		if (sqlite3_step(st) != SQLITE_DONE && fail(db, err, "insert image layer"))
			goto out;
	}
	r = exec(db, "COMMIT;", err);
out:
	sqlite3_finalize(st);
	if (r < 0)
		exec(db, "ROLLBACK;", NULL);
	return r;
}

static int load_layers(struct db *db, struct image_record *img, struct msb_err **err)
{
	sqlite3_stmt *st =
		prep(db,
		     "SELECT l.diff_id, l.digest, l.media_type, l.compressed_size,"
		     " l.tar_size, l.fs_size FROM image_layers il JOIN layers l"
		     " ON l.diff_id = il.diff_id WHERE il.reference = ?1 ORDER BY il.position;",
		     err);
	int rc;

	if (!st)
		return -1;
	bind_text(st, 1, img->reference);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct layer_record *nl = realloc(img->layers, sizeof(*nl) * (img->nlayers + 1)),
				    *l;

		if (!nl) {
			sqlite3_finalize(st);
			return msb_err_sys(err, ENOMEM, "database");
		}
		img->layers = nl;
		l = &nl[img->nlayers++];
		*l = (struct layer_record){ col_dup(st, 0),
					    col_dup(st, 1),
					    col_dup(st, 2),
					    sqlite3_column_int64(st, 3),
					    sqlite3_column_int64(st, 4),
					    sqlite3_column_int64(st, 5) };
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : fail(db, err, "layers");
}

#define IMAGE_COLS                                                                                 \
	"SELECT reference, manifest_digest, index_digest, config_digest, manifest, config, size,"  \
	" created, pulled_at FROM images "

static void row_to_image(sqlite3_stmt *st, struct image_record *img)
{
	memset(img, 0, sizeof(*img));
	img->reference = col_dup(st, 0);
	img->manifest_digest = col_dup(st, 1);
	img->index_digest = col_dup(st, 2);
	img->config_digest = col_dup(st, 3);
	img->manifest = col_dup(st, 4);
	img->config = col_dup(st, 5);
	img->size = sqlite3_column_int64(st, 6);
	img->created = col_dup(st, 7);
	img->pulled_at = col_dup(st, 8);
}

static int get_where(struct db *db, const char *where, const char *key, struct image_record *out,
		     struct msb_err **err)
{
	_cleanup_free_ char *sql = NULL;
	sqlite3_stmt *st;
	int rc, found = 0;

	if (asprintf(&sql, IMAGE_COLS "WHERE %s;", where) < 0)
		return msb_err_sys(err, ENOMEM, "database");
	st = prep(db, sql, err);
	if (!st)
		return -1;
	bind_text(st, 1, key);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (found++) {
			image_record_free(out);
			break; /* ambiguous */
		}
		row_to_image(st, out);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail(db, err, "images");
	if (found > 1)
		return msb_err_set(err, EINVAL, "%s matches several images", key);
	if (!found)
		return 1;
	return load_layers(db, out, err) < 0 ? -1 : 0;
}

int db_image_get(struct db *db, const char *reference, struct image_record *out,
		 struct msb_err **err)
{
	return get_where(db, "reference = ?1", reference, out, err);
}

int db_image_find(struct db *db, const char *key, struct image_record *out, struct msb_err **err)
{
	_cleanup_free_ char *prefix = NULL;
	int r = db_image_get(db, key, out, err);

	if (r != 1)
		return r;
	/* A digest, or a unique prefix of one (with or without "sha256:"). */
	if (strlen(key) < 4 || strspn(key, "sha256:0123456789abcdef") != strlen(key))
		return 1;
	if (asprintf(&prefix, "%s%s%%", strncmp(key, "sha256:", 7) ? "sha256:" : "", key) < 0)
		return msb_err_sys(err, ENOMEM, "database");
	return get_where(db, "manifest_digest LIKE ?1", prefix, out, err);
}

int db_image_list(struct db *db, struct image_record **out, size_t *n, struct msb_err **err)
{
	sqlite3_stmt *st = prep(db, IMAGE_COLS "ORDER BY pulled_at DESC, reference;", err);
	struct image_record *v = NULL;
	size_t k = 0;
	int rc;

	if (!st)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct image_record *nv = realloc(v, sizeof(*v) * (k + 1));

		if (!nv) {
			sqlite3_finalize(st);
			image_records_free(v, k);
			return msb_err_sys(err, ENOMEM, "database");
		}
		v = nv;
		row_to_image(st, &v[k++]);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		image_records_free(v, k);
		return fail(db, err, "images");
	}
	for (size_t i = 0; i < k; i++) {
		if (load_layers(db, &v[i], err) < 0) {
			image_records_free(v, k);
			return -1;
		}
	}
	*out = v;
	*n = k;
	return 0;
}

int db_image_delete(struct db *db, const char *reference, char ***orphans, struct msb_err **err)
{
	sqlite3_stmt *st = NULL;
	char **v = NULL;
	size_t k = 0;
	int r = -1, rc;

	*orphans = NULL;
	if (exec(db, "BEGIN IMMEDIATE;", err) < 0)
		return -1;
	st = prep(db, "DELETE FROM images WHERE reference = ?1;", err);
	if (!st)
		goto out;
	bind_text(st, 1, reference);
	if (sqlite3_step(st) != SQLITE_DONE && fail(db, err, "delete image"))
		goto out;
	sqlite3_finalize(st);
	/* Layers still used by another image stay. */
	st = prep(db,
		  "SELECT diff_id FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM "
		  "image_layers);",
		  err);
	if (!st)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **nv = realloc(v, sizeof(char *) * (k + 2));

		if (!nv) {
			msb_err_sys(err, ENOMEM, "database");
			goto out;
		}
		v = nv;
		v[k++] = col_dup(st, 0);
		v[k] = NULL;
	}
	if (rc != SQLITE_DONE && fail(db, err, "layers"))
		goto out;
	sqlite3_finalize(st);
	st = prep(db, "DELETE FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers);",
		  err);
	if (!st || (sqlite3_step(st) != SQLITE_DONE && fail(db, err, "delete layers")))
		goto out;
	r = exec(db, "COMMIT;", err);
out:
	sqlite3_finalize(st);
	if (r < 0) {
		exec(db, "ROLLBACK;", NULL);
		cleanup_strvp(&v);
		return -1;
	}
	if (!v)
		v = calloc(1, sizeof(char *));
	*orphans = v;
	return 0;
}

int db_layer_users(struct db *db, const char *diff_id, struct msb_err **err)
{
	sqlite3_stmt *st = prep(
		db, "SELECT count(DISTINCT reference) FROM image_layers WHERE diff_id = ?1;", err);
	int n = -1;

	if (!st)
		return -1;
	bind_text(st, 1, diff_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	else
		fail(db, err, "image layers");
	sqlite3_finalize(st);
	return n;
}

void image_record_free(struct image_record *img)
{
	free(img->reference);
	free(img->manifest_digest);
	free(img->index_digest);
	free(img->config_digest);
	free(img->manifest);
	free(img->config);
	free(img->created);
	free(img->pulled_at);
	for (size_t i = 0; i < img->nlayers; i++) {
		free(img->layers[i].diff_id);
		free(img->layers[i].digest);
		free(img->layers[i].media_type);
	}
	free(img->layers);
	memset(img, 0, sizeof(*img));
}

void image_records_free(struct image_record *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		image_record_free(&v[i]);
	free(v);
}

int db_sandbox_put(struct db *db, const char *name, const char *image, const char *digest,
		   const char *status, struct msb_err **err)
{
	sqlite3_stmt *st =
		prep(db,
		     "INSERT INTO sandboxes(name, image, manifest_digest, status, created_at)"
		     " VALUES(?1,?2,?3,?4,strftime('%Y-%m-%dT%H:%M:%SZ','now'))"
		     " ON CONFLICT(name) DO UPDATE SET status = excluded.status;",
		     err);
	int rc;

	if (!st)
		return -1;
	bind_text(st, 1, name);
	bind_text(st, 2, image);
	bind_text(st, 3, digest);
	bind_text(st, 4, status);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : fail(db, err, "sandbox");
}

int db_sandbox_delete(struct db *db, const char *name, struct msb_err **err)
{
	sqlite3_stmt *st = prep(db, "DELETE FROM sandboxes WHERE name = ?1;", err);
	int rc;

	if (!st)
		return -1;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : fail(db, err, "sandbox");
}

int db_sandboxes_using(struct db *db, const char *reference, struct msb_err **err)
{
	sqlite3_stmt *st = prep(db, "SELECT count(*) FROM sandboxes WHERE image = ?1;", err);
	int n = -1;

	if (!st)
		return -1;
	bind_text(st, 1, reference);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	else
		fail(db, err, "sandboxes");
	sqlite3_finalize(st);
	return n;
}

int db_sandbox_names(struct db *db, char ***out, struct msb_err **err)
{
	sqlite3_stmt *st = prep(db, "SELECT name FROM sandboxes ORDER BY name;", err);
	char **v = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (!st)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		char **nv = realloc(v, (n + 2) * sizeof(char *));

		if (!nv || !name || !(nv[n] = strdup(name))) {
			v = nv ? nv : v;
			rc = SQLITE_NOMEM;
			break;
		}
		v = nv;
		v[++n] = NULL;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		if (v)
			v[n] = NULL;
		cleanup_strvp(&v);
		return rc == SQLITE_NOMEM ? msb_err_sys(err, ENOMEM, "sandboxes")
					  : fail(db, err, "sandboxes");
	}
	if (!v)
		v = calloc(1, sizeof(char *));
	if (!v)
		return msb_err_sys(err, ENOMEM, "sandboxes");
	*out = v;
	return 0;
}
