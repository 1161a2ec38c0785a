/* SPDX-License-Identifier: Apache-2.0 */
/* msb's state database (<MSB_HOME>/db/msb.db, sqlite in WAL mode): images, layers, sandboxes. */
#ifndef MSB_STORE_DB_H
#define MSB_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"
#include "util/err.h"

struct db;

struct layer_record {
	char *diff_id; /* sha256 of the uncompressed tar; names the cached image */
	char *digest;  /* the compressed blob it came from */
	char *media_type;
	int64_t compressed_size;
	int64_t tar_size;
	int64_t fs_size; /* bytes of the squashfs image */
};

struct image_record {
	char *reference;       /* canonical: docker.io/library/alpine:latest */
	char *manifest_digest; /* the platform manifest */
	char *index_digest;    /* the index it was chosen from, or NULL */
	char *config_digest;
	char *manifest; /* JSON as served */
	char *config;	/* JSON as served */
	char *created;	/* from the image config, or NULL */
	char *pulled_at;
	int64_t size;		     /* compressed layer bytes */
	struct layer_record *layers; /* bottom first */
	size_t nlayers;
};

/* db_open() - open (creating if needed) the database. Return: 0 or -1 with @err. */
int db_open(struct db **out, struct msb_err **err);
void db_close(struct db *db);

/* db_image_put() - record an image and its layers, replacing an older record. */
int db_image_put(struct db *db, const struct image_record *img, struct msb_err **err);
/* db_image_get() - Return: 0 found, 1 not found, -1 error. */
int db_image_get(struct db *db, const char *reference, struct image_record *out,
		 struct msb_err **err);
/* db_image_find() - by reference, or by manifest digest ("sha256:..." or a unique prefix). */
int db_image_find(struct db *db, const char *key, struct image_record *out, struct msb_err **err);
/* db_image_list() - every image, newest pull first. Return: 0 or -1. */
int db_image_list(struct db *db, struct image_record **out, size_t *n, struct msb_err **err);
/*
 * db_image_delete() - remove an image; *@orphans gets the diff_ids no other
 * image uses any more (NULL-terminated, caller frees). Return: 0 or -1.
 */
int db_image_delete(struct db *db, const char *reference, char ***orphans, struct msb_err **err);
/* db_layer_users() - how many images use layer @diff_id. Return: count, or -1 with @err. */
int db_layer_users(struct db *db, const char *diff_id, struct msb_err **err);
void image_record_free(struct image_record *img);
void image_records_free(struct image_record *v, size_t n);

/*
 * struct sandbox_row - a sandbox's row: what it was made from, its status
 * (created, starting, running, stopped, crashed) and its current or last
 * run (started, ended, why, exit code, accelerator, boot timings).
 */
struct sandbox_row {
	char *name, *image, *digest, *status, *created_at;
	int64_t pid; /* the supervisor while it runs, else 0 */
	int64_t run_id;
	char *started_at, *ended_at, *reason;
	bool has_exit;
	int exit_code;
	char *accel, *accel_reason;
	double kernel_ms, ready_ms;
	char *net4, *net6; /* the leased /30 and /64 (network addresses), NULL before a start */
};

/* db_sandbox_create() - a new sandbox row with status "created" (replacing a stale one). */
int db_sandbox_create(struct db *db, const char *name, const char *image, const char *digest,
		      struct msb_err **err);
/* db_sandbox_get() - Return: 0 found, 1 not found, -1 error. */
int db_sandbox_get(struct db *db, const char *name, struct sandbox_row *out, struct msb_err **err);
/* db_sandbox_list() - every sandbox, oldest first. */
int db_sandbox_list(struct db *db, struct sandbox_row **out, size_t *n, struct msb_err **err);
/* db_sandbox_set_paused() - a running sandbox's status between "running" and "paused". */
int db_sandbox_set_paused(struct db *db, const char *name, bool paused, struct msb_err **err);
int db_sandbox_set_status(struct db *db, const char *name, const char *status, const char *reason,
			  struct msb_err **err);
void sandbox_row_free(struct sandbox_row *r);
void sandbox_rows_free(struct sandbox_row *v, size_t n);
/* A run: the supervisor @pid starts it; it becomes ready; it ends (exit_code -1: none). */
int db_run_begin(struct db *db, const char *name, int64_t pid, int64_t *run_id,
		 struct msb_err **err);
int db_run_ready(struct db *db, const char *name, const char *accel, const char *accel_reason,
		 double kernel_ms, double ready_ms, struct msb_err **err);
int db_run_end(struct db *db, const char *name, int64_t run_id, const char *status,
	       const char *reason, int exit_code, struct msb_err **err);
int db_sandbox_delete(struct db *db, const char *name, struct msb_err **err);
/* db_sandbox_names() - every sandbox row's name (NULL-terminated, caller frees). */
int db_sandbox_names(struct db *db, char ***out, struct msb_err **err);
/*
 * db_sandbox_lease() - the sandbox's IPv4 /30 (@net4, its network address)
 * from @pool4 and IPv6 /64 (@net6) from @pool6, prefixes in IPv6 bits: kept
 * from an earlier start while still in the pools, else newly picked, unique
 * among all sandboxes. Return: 0 or -1 with @err.
 */
int db_sandbox_lease(struct db *db, const char *name, const struct ipaddr *pool4,
		     unsigned int prefix4, const struct ipaddr *pool6, unsigned int prefix6,
		     struct ipaddr *net4, struct ipaddr *net6, struct msb_err **err);
/* db_sandboxes_using() - how many sandboxes use @reference. Return: count or -1. */
int db_sandboxes_using(struct db *db, const char *reference, struct msb_err **err);

#endif
