/* SPDX-License-Identifier: Apache-2.0 */
/* The layer cache on disk: layer images, the lock each one has, and who may delete them. */
#ifndef MSB_IMAGE_STORE_H
#define MSB_IMAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "store/db.h"
#include "util/err.h"

/*
 * DOC: Layer locks
 * Every layer image <MSB_HOME>/cache/layers/<hex>.sqfs has a lock file
 * <hex>.lock next to it (flock; the lock files themselves are never
 * removed). Exclusive: a pull downloading and converting the layer, and
 * `msb image rm` deleting it. Shared: a pull that found the layer (or just
 * made it) until the image is recorded in the database, and a sandbox
 * between resolving its image and hard-linking the layer files
 * (image_hold_layers()). So a layer is never deleted while a pull is about
 * to record an image that uses it, nor between a run's lookup and its link.
 */

/* layer_file() - <MSB_HOME>/cache/layers/<hex>.sqfs for @diff_id. Return: newly allocated. */
char *layer_file(const char *diff_id);

/* image_now() - the time an image record is stamped with: RFC 3339, UTC, seconds. */
char *image_now(void);

/* layer_lock_file() - <MSB_HOME>/cache/layers/<hex>.lock for @diff_id. Return: newly allocated. */
char *layer_lock_file(const char *diff_id);

/* image_present() - are all of @img's layer images in the cache? */
bool image_present(const struct image_record *img);

/*
 * image_hold_layers() - take a shared lock on each of @img's layers (waiting
 * while a pull converts one or `msb image rm` deletes one) and check that
 * each layer image exists. Hold them until the files are hard-linked
 * elsewhere, then call image_release_layers().
 * Return: 0 and img->nlayers lock descriptors in *@fds (caller releases),
 * or -1 with @err ("image REF: layer DIFF_ID is missing from the cache
 * (pull it again with 'msb pull -f REF')"), holding nothing.
 */
int image_hold_layers(const struct image_record *img, int **fds, struct msb_err **err);

/* image_release_layers() - drop the locks image_hold_layers() took and free @fds. */
void image_release_layers(int *fds, size_t n);

/*
 * image_remove_layer() - delete the layer image of @diff_id, which the
 * database no longer lists: under its exclusive lock (so after every
 * holder let go), and only if no image has come to use it meanwhile.
 * Return: 1 deleted, 0 kept (an image uses it again), -1 with @err.
 */
int image_remove_layer(struct db *db, const char *diff_id, struct msb_err **err);

/*
 * image_try_lock_layer() - take @diff_id's lock exclusively without waiting
 * (`msb prune` passes over what a pull or a starting sandbox holds).
 * Return: the lock's descriptor (closing it releases the lock), -EBUSY when
 * someone holds it, or another -errno.
 */
int image_try_lock_layer(const char *diff_id);

/*
 * image_remove_layer_locked() - image_remove_layer() for a caller that holds
 * @diff_id's lock exclusively already. Return: 1 deleted, 0 kept, -1 with @err.
 */
int image_remove_layer_locked(struct db *db, const char *diff_id, struct msb_err **err);

#endif
