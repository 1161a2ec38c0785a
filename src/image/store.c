// SPDX-License-Identifier: Apache-2.0
/* The layer cache: paths, shared holds for sandboxes, and deletion under the layer's lock. */
#define _GNU_SOURCE
#include "image/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "image/digest.h"
#include "image/ref.h"
#include "util/cleanup.h"
#include "util/fs.h"

static char *cache_path(const char *diff_id, const char *suffix)
{
	char *p = NULL;

	if (!diff_id || !digest_valid(diff_id) || !msb_home() ||
	    asprintf(&p, "%s/cache/layers/%s%s", msb_home(), diff_id + 7, suffix) < 0)
		return NULL;
	return p;
}

char *layer_file(const char *diff_id)
{
	return cache_path(diff_id, ".sqfs");
}

char *layer_lock_file(const char *diff_id)
{
	return cache_path(diff_id, ".lock");
}

bool image_present(const struct image_record *img)
{
	for (size_t i = 0; i < img->nlayers; i++) {
		_cleanup_free_ char *f = layer_file(img->layers[i].diff_id);

		if (!f || access(f, R_OK) < 0)
			return false;
	}
	return img->nlayers > 0;
}

/* flock() that waits, retrying when a signal interrupts it. Return: 0 or -errno. */
static int lock_wait(int fd, int op)
{
	while (flock(fd, op) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* The name users know the image by, for messages. Return: newly allocated. */
static char *familiar_name(const char *canonical)
{
	struct image_ref r;
	char why[128], *s;

	if (ref_parse(canonical, &r, why, sizeof(why)) < 0)
		return strdup(canonical);
	s = ref_familiar(&r);
	ref_free(&r);
	return s;
}

int image_hold_layers(const struct image_record *img, int **fds, struct msb_err **err)
{
	int *v = malloc((img->nlayers ? img->nlayers : 1) * sizeof(*v));

	*fds = NULL;
	if (!v)
		return msb_err_sys(err, ENOMEM, "image");
	for (size_t i = 0; i < img->nlayers; i++)
		v[i] = -1;
	for (size_t i = 0; i < img->nlayers; i++) {
		const char *diff_id = img->layers[i].diff_id;
		_cleanup_free_ char *lock = layer_lock_file(diff_id), *file = layer_file(diff_id);
		_cleanup_free_ char *name = NULL;
		int r = 0;

		if (!lock || !file) {
			msb_err_set(err, EINVAL, "image %s: invalid layer %s", img->reference,
				    diff_id ? diff_id : "(none)");
			goto fail;
		}
		v[i] = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (v[i] < 0 && errno != ENOENT) {
			msb_err_sys(err, errno, "%s", lock);
			goto fail;
		}
		if (v[i] >= 0)
			r = lock_wait(v[i], LOCK_SH);
		if (r < 0) {
			msb_err_sys(err, -r, "%s", lock);
			goto fail;
		}
		/* No cache directory at all (ENOENT above) means no layer either. */
		if (v[i] >= 0 && access(file, R_OK) == 0)
			continue;
		name = familiar_name(img->reference);
		msb_err_set(err, ENOENT,
			    "image %s: layer %s is missing from the cache (pull it again with 'msb "
			    "pull -f %s')",
			    name ? name : img->reference, diff_id, name ? name : img->reference);
		goto fail;
	}
	*fds = v;
	return 0;
fail:
	image_release_layers(v, img->nlayers);
	return -1;
}

void image_release_layers(int *fds, size_t n)
{
	for (size_t i = 0; fds && i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]); /* releases the flock */
	free(fds);
}

int image_try_lock_layer(const char *diff_id)
{
	_cleanup_free_ char *lock = layer_lock_file(diff_id);
	_cleanup_close_ int fd = -1;

	if (!lock)
		return -EINVAL;
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	return steal_fd(fd);
}

int image_remove_layer_locked(struct db *db, const char *diff_id, struct msb_err **err)
{
	_cleanup_free_ char *file = layer_file(diff_id), *tmp = NULL;
	int used;

	if (!file || asprintf(&tmp, "%s.tmp", file) < 0)
		return msb_err_set(err, EINVAL, "invalid layer %s", diff_id);
	used = db_layer_users(db, diff_id, err);
	if (used < 0)
		return -1;
	if (used > 0)
		return 0;
	if (unlink(file) < 0 && errno != ENOENT)
		return msb_err_sys(err, errno, "%s", file);
	/* Under the exclusive lock a .tmp can only be a crashed conversion's. */
	unlink(tmp);
	return 1;
}

int image_remove_layer(struct db *db, const char *diff_id, struct msb_err **err)
{
	_cleanup_free_ char *lock = layer_lock_file(diff_id);
	_cleanup_close_ int fd = -1;
	int r;

	if (!lock)
		return msb_err_set(err, EINVAL, "invalid layer %s", diff_id);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT)
		return 1; /* no cache directory: nothing to delete */
	if (fd < 0)
		return msb_err_sys(err, errno, "%s", lock);
	/* Wait for sandboxes that are linking it and pulls that are about to record it. */
	r = lock_wait(fd, LOCK_EX);
	if (r < 0)
		return msb_err_sys(err, -r, "%s", lock);
	return image_remove_layer_locked(db, diff_id, err);
}

char *image_now(void)
{
	char buf[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return strdup(buf);
}
