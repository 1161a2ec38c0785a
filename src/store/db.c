// SPDX-License-Identifier: Apache-2.0
/* The sqlite store: schema, and the few queries msb needs, all parameterised. */
#define _GNU_SOURCE
#include "store/db.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#define SCHEMA_VERSION 3

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
	"  created_at TEXT NOT NULL,"
	"  pid INTEGER, run_id INTEGER, started_at TEXT, ended_at TEXT, reason TEXT,"
	"  exit_code INTEGER, accel TEXT, kernel_ms REAL, ready_ms REAL, accel_reason TEXT,"
	"  net4 TEXT, net6 TEXT);"
	"CREATE UNIQUE INDEX IF NOT EXISTS sandboxes_net4 ON sandboxes(net4);"
	"CREATE UNIQUE INDEX IF NOT EXISTS sandboxes_net6 ON sandboxes(net6);"
	"CREATE TABLE IF NOT EXISTS runs("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  sandbox TEXT NOT NULL,"
	"  started_at TEXT NOT NULL,"
	"  ended_at TEXT,"
	"  reason TEXT,"
	"  exit_code INTEGER);"
	"CREATE INDEX IF NOT EXISTS runs_sandbox ON runs(sandbox);";

/* Schema 1 -> 2: sandboxes gained their lifecycle columns. */
static const char migrate_1_2[] = "ALTER TABLE sandboxes ADD COLUMN pid INTEGER;"
				  "ALTER TABLE sandboxes ADD COLUMN run_id INTEGER;"
				  "ALTER TABLE sandboxes ADD COLUMN started_at TEXT;"
				  "ALTER TABLE sandboxes ADD COLUMN ended_at TEXT;"
				  "ALTER TABLE sandboxes ADD COLUMN reason TEXT;"
				  "ALTER TABLE sandboxes ADD COLUMN exit_code INTEGER;"
				  "ALTER TABLE sandboxes ADD COLUMN accel TEXT;"
				  "ALTER TABLE sandboxes ADD COLUMN kernel_ms REAL;"
				  "ALTER TABLE sandboxes ADD COLUMN ready_ms REAL;"
				  "ALTER TABLE sandboxes ADD COLUMN accel_reason TEXT;"
				  "UPDATE meta SET value = '2' WHERE key = 'schema';";

/* Schema 2 -> 3: sandboxes lease their network addresses. */
static const char migrate_2_3[] = "ALTER TABLE sandboxes ADD COLUMN net4 TEXT;"
				  "ALTER TABLE sandboxes ADD COLUMN net6 TEXT;"
				  "UPDATE meta SET value = '3' WHERE key = 'schema';";

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

static sqlite3_stmt *prep(struct db *db, const char *sql, struct msb_err **err);

/* Creates the schema, or brings an older database up to this version. */
static int migrate(struct db *db, struct msb_err **err)
{
	sqlite3_stmt *st;
	bool fresh = true, v1 = false, v2 = false;
	int r;

	/* Before the schema: a database of version 1 has a sandboxes table without the new columns.
	 */
	st = prep(db, "SELECT value FROM meta WHERE key = 'schema';", NULL);
	if (st && sqlite3_step(st) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		fresh = false;
		v1 = v && !strcmp(v, "1");
		v2 = v && !strcmp(v, "2");
		if (v && strtol(v, NULL, 10) > SCHEMA_VERSION) {
			sqlite3_finalize(st);
			return msb_err_set(err, EPROTO,
					   "database schema %s is newer than this msb knows (%d): "
					   "upgrade msb",
					   v, SCHEMA_VERSION);
		}
	}
	sqlite3_finalize(st);
	r = exec(db, "BEGIN IMMEDIATE;", err);
	if (!r && v1)
		r = exec(db, migrate_1_2, err);
	if (!r && (v1 || v2))
		r = exec(db, migrate_2_3, err);
	if (!r)
		r = exec(db, schema, err);
	if (!r && fresh)
		r = exec(db, "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '3');", err);
	if (!r)
		r = exec(db, "COMMIT;", err);
	else
		exec(db, "ROLLBACK;", NULL);
	return r;
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
		r = migrate(db, err);
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

int db_sandbox_create(struct db *db, const char *name, const char *image, const char *digest,
		      struct msb_err **err)
{
	sqlite3_stmt *st = prep(
		db,
		"INSERT INTO sandboxes(name, image, manifest_digest, status, created_at)"
		" VALUES(?1,?2,?3,'created',strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
		" ON CONFLICT(name) DO UPDATE SET image = excluded.image,"
		" manifest_digest = excluded.manifest_digest, status = 'created',"
		" created_at = excluded.created_at, pid = NULL, run_id = NULL, started_at = NULL,"
		" ended_at = NULL, reason = NULL, exit_code = NULL, accel = NULL,"
		" kernel_ms = NULL, ready_ms = NULL;",
		err);
	int rc;

	if (!st)
		return -1;
	bind_text(st, 1, name);
	bind_text(st, 2, image);
	bind_text(st, 3, digest);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : fail(db, err, "sandbox");
}

/* Runs one statement with text/integer parameters given as a printf-like list. */
static int run_stmt(struct db *db, const char *sql, const char *what, struct msb_err **err,
		    int nparams, const char *types, ...)
{
	sqlite3_stmt *st = prep(db, sql, err);
	va_list ap;
	int rc;

	if (!st)
		return -1;
	va_start(ap, types);
	for (int i = 0; i < nparams; i++) {
		switch (types[i]) {
		case 's':
			bind_text(st, i + 1, va_arg(ap, const char *));
			break;
		case 'i':
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
			break;
		case 'd':
			sqlite3_bind_double(st, i + 1, va_arg(ap, double));
			break;
		default: /* 'n': NULL */
			(void)va_arg(ap, int);
			sqlite3_bind_null(st, i + 1);
		}
	}
	va_end(ap);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : fail(db, err, what);
}

int db_run_begin(struct db *db, const char *name, int64_t pid, int64_t *run_id,
		 struct msb_err **err)
{
	int r;

	if (exec(db, "BEGIN IMMEDIATE;", err) < 0)
		return -1;
	r = run_stmt(db,
		     "INSERT INTO runs(sandbox, started_at)"
		     " VALUES(?1, strftime('%Y-%m-%dT%H:%M:%fZ','now'));",
		     "run", err, 1, "s", name);
	*run_id = sqlite3_last_insert_rowid(db->h);
	if (!r)
		r = run_stmt(db,
			     "UPDATE sandboxes SET status = 'starting', pid = ?2, run_id = ?3,"
			     " started_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), ended_at = NULL,"
			     " reason = NULL, exit_code = NULL, accel = NULL, kernel_ms = NULL,"
			     " ready_ms = NULL WHERE name = ?1;",
			     "sandbox", err, 3, "sii", name, pid, *run_id);
	if (!r)
		r = exec(db, "COMMIT;", err);
	else
		exec(db, "ROLLBACK;", NULL);
	return r;
}

int db_run_ready(struct db *db, const char *name, const char *accel, const char *accel_reason,
		 double kernel_ms, double ready_ms, struct msb_err **err)
{
	return run_stmt(db,
			"UPDATE sandboxes SET status = 'running', accel = ?2, kernel_ms = ?3,"
			" ready_ms = ?4, accel_reason = ?5 WHERE name = ?1;",
			"sandbox", err, 5, "ssdds", name, accel, kernel_ms, ready_ms, accel_reason);
}

int db_run_end(struct db *db, const char *name, int64_t run_id, const char *status,
	       const char *reason, int exit_code, struct msb_err **err)
{
	int r;

	if (exec(db, "BEGIN IMMEDIATE;", err) < 0)
		return -1;
	r = run_stmt(db,
		     "UPDATE runs SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), reason = ?2,"
		     " exit_code = ?3 WHERE id = ?1;",
		     "run", err, 3, exit_code >= 0 ? "isi" : "isn", run_id, reason,
		     exit_code >= 0 ? (int64_t)exit_code : (int64_t)0);
	if (!r)
		r = run_stmt(
			db,
			"UPDATE sandboxes SET status = ?2, reason = ?3, exit_code = ?4, pid = NULL,"
			" ended_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE name = ?1;",
			"sandbox", err, 4, exit_code >= 0 ? "sssi" : "sssn", name, status, reason,
			exit_code >= 0 ? (int64_t)exit_code : (int64_t)0);
	if (!r)
		r = exec(db, "COMMIT;", err);
	else
		exec(db, "ROLLBACK;", NULL);
	return r;
}

static void row_read(sqlite3_stmt *st, struct sandbox_row *r)
{
	memset(r, 0, sizeof(*r));
	r->name = col_dup(st, 0);
	r->image = col_dup(st, 1);
	r->digest = col_dup(st, 2);
	r->status = col_dup(st, 3);
	r->created_at = col_dup(st, 4);
	r->pid = sqlite3_column_int64(st, 5);
	r->run_id = sqlite3_column_int64(st, 6);
	r->started_at = col_dup(st, 7);
	r->ended_at = col_dup(st, 8);
	r->reason = col_dup(st, 9);
	r->has_exit = sqlite3_column_type(st, 10) != SQLITE_NULL;
	r->exit_code = sqlite3_column_int(st, 10);
	r->accel = col_dup(st, 11);
	r->kernel_ms = sqlite3_column_double(st, 12);
	r->ready_ms = sqlite3_column_double(st, 13);
	r->accel_reason = col_dup(st, 14);
	r->net4 = col_dup(st, 15);
	r->net6 = col_dup(st, 16);
}

#define ROW_COLUMNS                                                                                \
	"name, image, manifest_digest, status, created_at, pid, run_id, started_at, ended_at,"     \
	" reason, exit_code, accel, kernel_ms, ready_ms, accel_reason, net4, net6"

int db_sandbox_get(struct db *db, const char *name, struct sandbox_row *out, struct msb_err **err)
{
	sqlite3_stmt *st = prep(db, "SELECT " ROW_COLUMNS " FROM sandboxes WHERE name = ?1;", err);
	int rc;

	if (!st)
		return -1;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_read(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return out->name ? 0 : msb_err_sys(err, ENOMEM, "sandbox");
	return rc == SQLITE_DONE ? 1 : fail(db, err, "sandbox");
}

int db_sandbox_list(struct db *db, struct sandbox_row **out, size_t *n, struct msb_err **err)
{
	sqlite3_stmt *st =
		prep(db, "SELECT " ROW_COLUMNS " FROM sandboxes ORDER BY created_at, name;", err);
	struct sandbox_row *v = NULL;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct sandbox_row *nv = realloc(v, (k + 1) * sizeof(*v));

		if (!nv) {
			rc = SQLITE_NOMEM;
			break;
		}
		v = nv;
		row_read(st, &v[k++]);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		sandbox_rows_free(v, k);
		return fail(db, err, "sandboxes");
	}
	*out = v;
	*n = k;
	return 0;
}

int db_sandbox_set_status(struct db *db, const char *name, const char *status, const char *reason,
			  struct msb_err **err)
{
	return run_stmt(
		db,
		"UPDATE sandboxes SET status = ?2, reason = COALESCE(?3, reason), pid = NULL"
		" WHERE name = ?1;",
		"sandbox", err, 3, "sss", name, status, reason);
}

int db_sandbox_set_paused(struct db *db, const char *name, bool paused, struct msb_err **err)
{
	return run_stmt(db,
			"UPDATE sandboxes SET status = ?2 WHERE name = ?1 AND status IN "
			"('running', 'paused');",
			"sandbox", err, 2, "ss", name, paused ? "paused" : "running");
}

void sandbox_row_free(struct sandbox_row *r)
{
	free(r->name);
	free(r->image);
	free(r->digest);
	free(r->status);
	free(r->created_at);
	free(r->started_at);
	free(r->ended_at);
	free(r->reason);
	free(r->accel);
	free(r->accel_reason);
	free(r->net4);
	free(r->net6);
	memset(r, 0, sizeof(*r));
}

void sandbox_rows_free(struct sandbox_row *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sandbox_row_free(&v[i]);
	free(v);
}

int db_sandbox_delete(struct db *db, const char *name, struct msb_err **err)
{
	int r = run_stmt(db, "DELETE FROM runs WHERE sandbox = ?1;", "runs", err, 1, "s", name);

	return r ? r
		 : run_stmt(db, "DELETE FROM sandboxes WHERE name = ?1;", "sandbox", err, 1, "s",
			    name);
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

/* Is @text (a network address as ip_format() writes it) leased in column @col by another sandbox?
 */
static int lease_taken(struct db *db, const char *col, const char *text, struct msb_err **err)
{
	char sql[96];
	sqlite3_stmt *st;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT 1 FROM sandboxes WHERE %s = ?1;", col);
	st = prep(db, sql, err);
	if (!st)
		return -1;
	bind_text(st, 1, text);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail(db, err, "leases");
	return rc == SQLITE_ROW;
}

/* The @idx-th subnet of @sub_prefix bits (IPv6 bits) in the pool starting at @pool. */
static struct ipaddr subnet(const struct ipaddr *pool, unsigned int sub_prefix, uint64_t idx)
{
	unsigned int shift = 128 - sub_prefix;
	uint64_t hi = 0, lo = 0, add_hi, add_lo;
	struct ipaddr a;

	for (int i = 0; i < 8; i++) {
		hi = hi << 8 | pool->b[i];
		lo = lo << 8 | pool->b[8 + i];
	}
	if (shift >= 64) {
		add_hi = idx << (shift - 64);
		add_lo = 0;
	} else {
		add_lo = idx << shift;
		add_hi = shift ? idx >> (64 - shift) : 0;
	}
	lo += add_lo;
	hi += add_hi + (lo < add_lo);
	for (int i = 7; i >= 0; i--) {
		a.b[i] = (uint8_t)hi;
		a.b[8 + i] = (uint8_t)lo;
		hi >>= 8;
		lo >>= 8;
	}
	return a;
}

/* A free subnet of @sub_prefix bits in @pool (@prefix bits), starting the search at random. */
static int lease_pick(struct db *db, const char *col, const struct ipaddr *pool,
		      unsigned int prefix, unsigned int sub_prefix, struct ipaddr *out,
		      struct msb_err **err)
{
	unsigned int bits = sub_prefix - prefix;
	uint64_t n = bits >= 64 ? UINT64_MAX : (uint64_t)1 << bits, start = 0;
	char text[IP_STRLEN], pooltext[IP_STRLEN + 8];

	if (getrandom(&start, sizeof(start), GRND_NONBLOCK) != sizeof(start))
		start = (uint64_t)time(NULL) * 2654435761u;
	/* Linear probing: never more tries than there are sandboxes, plus one. */
	for (uint64_t k = 0; k < n && k < (1u << 20); k++) {
		uint64_t idx = (start + k) % n;
		int r;

		*out = subnet(pool, sub_prefix, idx);
		ip_format(out, text, sizeof(text));
		r = lease_taken(db, col, text, err);
		if (r < 0)
			return -1;
		if (!r)
			return 0;
	}
	cidr_format(pool, prefix, pooltext, sizeof(pooltext));
	return msb_err_set(err, EADDRNOTAVAIL,
			   "no free %s subnet left in the pool %s: other sandboxes hold them "
			   "(remove some, or choose a larger --net-ipv%c-pool)",
			   sub_prefix == 126 ? "/30" : "/64", pooltext,
			   sub_prefix == 126 ? '4' : '6');
}

int db_sandbox_lease(struct db *db, const char *name, const struct ipaddr *pool4,
		     unsigned int prefix4, const struct ipaddr *pool6, unsigned int prefix6,
		     struct ipaddr *net4, struct ipaddr *net6, struct msb_err **err)
{
	sqlite3_stmt *st;
	bool have4 = false, have6 = false;
	char t4[IP_STRLEN], t6[IP_STRLEN];
	int r;

	if (exec(db, "BEGIN IMMEDIATE;", err) < 0)
		return -1;
	st = prep(db, "SELECT net4, net6 FROM sandboxes WHERE name = ?1;", err);
	r = st ? 0 : -1;
	if (st) {
		bind_text(st, 1, name);
		if (sqlite3_step(st) != SQLITE_ROW) {
			r = msb_err_set(err, ENOENT, "sandbox %s: not in the database", name);
		} else {
			const char *a = (const char *)sqlite3_column_text(st, 0);
			const char *b = (const char *)sqlite3_column_text(st, 1);

			/* A lease is kept across starts while it still lies in the pool. */
			have4 = a && ip_parse(a, net4) == 0 && ip_in_prefix(net4, pool4, prefix4);
			have6 = b && ip_parse(b, net6) == 0 && ip_in_prefix(net6, pool6, prefix6);
		}
		sqlite3_finalize(st);
	}
	if (!r && !have4)
		r = lease_pick(db, "net4", pool4, prefix4, 126, net4, err);
	if (!r && !have6)
		r = lease_pick(db, "net6", pool6, prefix6, 64, net6, err);
	if (!r && (!have4 || !have6)) {
		ip_format(net4, t4, sizeof(t4));
		ip_format(net6, t6, sizeof(t6));
		r = run_stmt(db, "UPDATE sandboxes SET net4 = ?2, net6 = ?3 WHERE name = ?1;",
			     "leases", err, 3, "sss", name, t4, t6);
	}
	if (!r)
		r = exec(db, "COMMIT;", err);
	else
		exec(db, "ROLLBACK;", NULL);
	return r;
}
