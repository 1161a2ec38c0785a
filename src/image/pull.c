// SPDX-License-Identifier: Apache-2.0
/*
 * Pull: the main thread drives every layer download through one curl multi
 * handle, hashing as bytes arrive; verified blobs go to worker threads that
 * convert them to squashfs. A layer is published by rename only once its
 * blob digest and its diff_id have both been checked.
 *
 * Each layer has a lock (image/store.h): this pull takes it shared when the
 * layer is already there, exclusive while it downloads and converts it
 * (downgrading to shared once published), and keeps it until the image is
 * recorded, so `msb image rm` cannot delete a layer the new record will
 * name. Waiting for a lock never blocks the loop: a busy layer is retried.
 * The download of a layer lives in cache/blobs/<diff_id>-<digest>.partial,
 * keyed like its lock, so only the lock holder ever writes it.
 */
#define _GNU_SOURCE
#include "image/pull.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/digest.h"
#include "image/layer.h"
#include "image/manifest.h"
#include "image/ref.h"
#include "image/registry.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define MAX_DOWNLOADS	  4
#define PROGRESS_EVERY_MS 100
#define LOCK_POLL_MS	  200
/* A compressed layer a little larger than LAYER_MAX_BYTES could still be valid (stored blocks). */
#define LAYER_BLOB_MAX (LAYER_MAX_BYTES + (LAYER_MAX_BYTES >> 6))
/* Re-hashing a partial download checks for cancellation this often. */
#define RESUME_CANCEL_EVERY (16u << 20)

enum jstate { J_PENDING, J_WAITING, J_DOWNLOADING, J_CONVERTING, J_DONE, J_FAILED };

struct job {
	size_t idx;
	const struct descriptor *desc;
	const char *diff_id;
	struct job *same; /* an earlier layer of the image with this diff_id: follow it */
	enum jstate state;
	int lock_fd; /* the layer's lock (see image/store.h) */
	int fd;	     /* the .partial blob */
	char *partial;
	struct sha256 h;
	uint64_t have, resumed;
	CURL *easy;
	bool reauthed;
	pthread_t thread;
	bool thread_live;
	int64_t tar_size, fs_size;
	struct msb_err *err;
	struct pull *p;
};

struct pull {
	struct reg_client *reg;
	const char *repo;
	const struct pull_opts *o;
	const char *ref;
	struct job *jobs;
	size_t njobs;
	CURLM *multi;
	int done_pipe[2]; /* workers write a job index when they finish */
	unsigned int converting, max_convert;
	char *cache_layers, *cache_blobs;
	atomic_bool cancel; /* tells converters to stop */
};

static void emit(struct pull *p, enum pull_ev type, const struct job *j, uint64_t done,
		 uint64_t total)
{
	struct pull_event ev = { .type = type,
				 .ref = p->ref,
				 .layer = j ? j->idx : 0,
				 .nlayers = p->njobs,
				 .digest = j ? j->desc->digest : NULL,
				 .done = done,
				 .total = total };

	if (p->o && p->o->progress)
		p->o->progress(&ev, p->o->ctx);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int interrupted(struct msb_err **err)
{
	msb_err_set(err, EINTR, "interrupted");
	msb_err_exit(err, 130);
	return -1;
}

/* Return: true once the caller's cancel fd is readable. */
static bool cancel_requested(const struct pull *p)
{
	struct pollfd pfd = { .fd = p->o->cancel_fd, .events = POLLIN };

	return p->o->cancel_fd >= 0 && poll(&pfd, 1, 0) > 0;
}

/* Ends a download (the .partial file stays). */
static void job_stop(struct job *j)
{
	if (j->easy) {
		curl_multi_remove_handle(j->p->multi, j->easy);
		reg_blob_handle_free(j->easy);
		j->easy = NULL;
	}
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	sha256_free(&j->h);
}

static void job_unlock(struct job *j)
{
	if (j->lock_fd >= 0)
		close(j->lock_fd); /* releases the flock */
	j->lock_fd = -1;
}

static size_t on_data(char *buf, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	size_t len = size * n;

	/* A registry may not send more than the descriptor promised. */
	if (j->have + len > (uint64_t)j->desc->size) {
		msb_err_set(&j->err, EFBIG, "blob %s is larger than its %lld-byte descriptor",
			    j->desc->digest, (long long)j->desc->size);
		return 0;
	}
	if (write_all(j->fd, buf, len) < 0) {
		msb_err_sys(&j->err, errno, "%s", j->partial);
		return 0;
	}
	sha256_update(&j->h, buf, len);
	j->have += len;
	return len;
}

/* Re-hashes what an earlier, interrupted pull left. Return: bytes kept, or -1 if cancelled. */
static int64_t resume_point(struct pull *p, struct job *j)
{
	uint8_t buf[1 << 16];
	struct stat st;
	uint64_t have = 0;

	if (fstat(j->fd, &st) < 0 || st.st_size <= 0 || st.st_size > j->desc->size) {
		if (ftruncate(j->fd, 0) < 0)
			return 0;
		return 0;
	}
	lseek(j->fd, 0, SEEK_SET);
	for (;;) {
		ssize_t n = read(j->fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		sha256_update(&j->h, buf, (size_t)n);
		have += (uint64_t)n;
		if (have % RESUME_CANCEL_EVERY < (uint64_t)n && cancel_requested(p))
			return -1;
	}
	return (int64_t)have;
}

static int start_convert(struct pull *p, struct job *j);

static int start_download(struct pull *p, struct job *j, struct msb_err **err)
{
	int64_t have;

	if (sha256_init(&j->h) < 0)
		return msb_err_sys(err, ENOMEM, "sha256");
	if (!j->partial && asprintf(&j->partial, "%s/%s-%s.partial", p->cache_blobs, j->diff_id + 7,
				    j->desc->digest + 7) < 0) {
		j->partial = NULL;
		return msb_err_sys(err, ENOMEM, "pull");
	}
	j->fd = open(j->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0)
		return msb_err_sys(err, errno, "%s", j->partial);
	have = resume_point(p, j);
	if (have < 0)
		return interrupted(err);
	j->have = j->resumed = (uint64_t)have;
	lseek(j->fd, (off_t)j->have, SEEK_SET);
	j->state = J_DOWNLOADING;
	emit(p, PEV_DOWNLOAD, j, j->have, (uint64_t)j->desc->size);
	if (j->have == (uint64_t)j->desc->size)
		return 1; /* complete already: verify it */
	j->easy = reg_blob_handle(p->reg, p->repo, j->desc->digest, j->have, on_data, j);
	if (!j->easy || curl_multi_add_handle(p->multi, j->easy) != CURLM_OK)
		return msb_err_sys(err, ENOMEM, "curl");
	return 0;
}

/* A download ended: verify it and hand it to a converter. */
static int finish_download(struct pull *p, struct job *j, CURLcode res, struct msb_err **err)
{
	char got[DIGEST_LEN];
	int r = 0;

	if (j->easy) {
		if (j->err) {
			/* our write callback refused the data */
			msb_err_set(err, j->err->code, "%s", j->err->msg);
			msb_err_free(steal_ptr(j->err));
			if (j->partial)
				unlink(j->partial);
			return -1;
		}
		r = reg_blob_status(p->reg, j->easy, res, j->resumed, j->desc->digest, err);
		curl_multi_remove_handle(p->multi, j->easy);
		reg_blob_handle_free(j->easy);
		j->easy = NULL;
	}
	if (r == 1 || (r == -EAGAIN && !j->reauthed)) {
		/* The range was ignored, or the token expired: start this blob again. */
		if (r == -EAGAIN) {
			j->reauthed = true;
			if (reg_reauth(p->reg, p->repo, err) < 0)
				return -1;
		} else if (ftruncate(j->fd, 0) < 0) {
			return msb_err_sys(err, errno, "%s", j->partial);
		}
		close(j->fd);
		j->fd = -1;
		sha256_free(&j->h);
		return start_download(p, j, err) < 0 ? -1 : 0;
	}
	if (r < 0)
		return r == -EAGAIN ? msb_err_set(err, EACCES, "blob %s: not authorized",
						  j->desc->digest)
				    : -1;
	sha256_final(&j->h, got);
	if (j->have != (uint64_t)j->desc->size || strcmp(got, j->desc->digest) != 0) {
		/* Never keep, never use, never resume from corrupt bytes. */
		unlink(j->partial);
		if (j->have != (uint64_t)j->desc->size)
			return msb_err_set(err, EBADMSG,
					   "blob %s: got %llu bytes, the manifest says %lld",
					   j->desc->digest, (unsigned long long)j->have,
					   (long long)j->desc->size);
		return msb_err_set(err, EBADMSG, "blob %s: digest mismatch (got %s)",
				   j->desc->digest, got);
	}
	emit(p, PEV_VERIFIED, j, j->have, j->have);
	return start_convert(p, j);
}

static void *convert_thread(void *arg)
{
	struct job *j = arg;
	struct pull *p = j->p;
	_cleanup_free_ char *out = NULL, *tmp = NULL;
	uint64_t tar_bytes = 0;
	struct stat st;
	size_t idx = j->idx;
	bool keep_blob = false;

	if (asprintf(&out, "%s/%s.sqfs", p->cache_layers, j->diff_id + 7) < 0 ||
	    asprintf(&tmp, "%s.tmp", out) < 0) {
		msb_err_sys(&j->err, ENOMEM, "layer");
	} else if (lseek(j->fd, 0, SEEK_SET) < 0) {
		msb_err_sys(&j->err, errno, "%s", j->partial);
	} else if (layer_convert(j->fd, j->diff_id, tmp, &tar_bytes, &p->cancel, &j->err) == 0) {
		if (fsync_path(tmp) < 0 || rename(tmp, out) < 0) {
			msb_err_sys(&j->err, errno, "%s", out);
			unlink(tmp);
		} else {
			j->tar_size = (int64_t)tar_bytes;
			j->fs_size = stat(out, &st) == 0 ? st.st_size : 0;
		}
	} else {
		/* Stopped, not refused: the verified blob is kept for the next pull. */
		keep_blob = j->err && j->err->code == EINTR;
	}
	if (j->err)
		msb_err_prefix(&j->err, "layer %s", j->desc->digest);
	/* The blob has served its purpose (or is useless): either way it goes. */
	if (!keep_blob)
		unlink(j->partial);
	(void)!write(p->done_pipe[1], &idx, sizeof(idx));
	return NULL;
}

static int start_convert(struct pull *p, struct job *j)
{
	j->state = J_CONVERTING;
	p->converting++;
	j->thread_live = pthread_create(&j->thread, NULL, convert_thread, j) == 0;
	if (!j->thread_live) {
		p->converting--;
		return msb_err_set(&j->err, EAGAIN, "cannot start a conversion thread");
	}
	return 0;
}

/* The layer is there (found, or just made by someone): done, holding its lock shared. */
static void job_cached(struct pull *p, struct job *j, const char *out)
{
	struct stat st;

	j->state = J_DONE;
	j->fs_size = stat(out, &st) == 0 ? st.st_size : 0;
	emit(p, PEV_CACHED, j, 0, 0);
}

static void job_waiting(struct pull *p, struct job *j)
{
	if (j->state != J_WAITING)
		emit(p, PEV_WAITING, j, 0, 0);
	j->state = J_WAITING;
}

/*
 * Takes the layer's lock without waiting: shared if the layer is there
 * (and not forced), else exclusive to fetch it. A busy lock leaves the job
 * waiting, to be retried.
 */
static int try_lock(struct pull *p, struct job *j, struct msb_err **err)
{
	_cleanup_free_ char *lock = NULL, *out = NULL, *tmp = NULL;

	if (asprintf(&lock, "%s/%s.lock", p->cache_layers, j->diff_id + 7) < 0 ||
	    asprintf(&out, "%s/%s.sqfs", p->cache_layers, j->diff_id + 7) < 0 ||
	    asprintf(&tmp, "%s.tmp", out) < 0)
		return msb_err_sys(err, ENOMEM, "pull");
	if (j->lock_fd < 0) {
		j->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (j->lock_fd < 0)
			return msb_err_sys(err, errno, "%s", lock);
	}
	if (!p->o->force) {
		if (flock(j->lock_fd, LOCK_SH | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK)
				return msb_err_sys(err, errno, "%s", lock);
			/* Being converted, or deleted: look again later. */
			job_waiting(p, j);
			return 0;
		}
		if (access(out, R_OK) == 0) {
			job_cached(p, j, out);
			return 0;
		}
	}
	/* Converting a shared lock drops it first: the layer may appear meanwhile. */
	if (flock(j->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			return msb_err_sys(err, errno, "%s", lock);
		flock(j->lock_fd, LOCK_UN);
		job_waiting(p, j);
		return 0;
	}
	/* We own the layer now. A leftover .tmp is an earlier crash's. */
	unlink(tmp);
	if (!p->o->force && access(out, R_OK) == 0) {
		if (flock(j->lock_fd, LOCK_SH | LOCK_NB) < 0)
			job_unlock(j);
		job_cached(p, j, out);
		return 0;
	}
	return start_download(p, j, err) == 1 ? finish_download(p, j, CURLE_OK, err) : 0;
}

/* A conversion published its layer: keep it from `msb image rm` until the image is recorded. */
static void job_converted(struct pull *p, struct job *j)
{
	/*
	 * A forced pull lets go at once: holding its layers shared while it
	 * waits for others' exclusively could deadlock two forced pulls. The
	 * check after recording catches a layer deleted meanwhile.
	 */
	if (p->o->force || flock(j->lock_fd, LOCK_SH | LOCK_NB) < 0)
		job_unlock(j);
	j->state = J_DONE;
	emit(p, PEV_CONVERTED, j, (uint64_t)j->fs_size, (uint64_t)j->fs_size);
}

static int drain_workers(struct pull *p, bool block, struct msb_err **err)
{
	int r = 0;

	while (p->converting) {
		struct pollfd pfd = { .fd = p->done_pipe[0], .events = POLLIN };
		size_t idx;
		struct job *j;

		if (poll(&pfd, 1, block ? -1 : 0) <= 0)
			break;
		if (read(p->done_pipe[0], &idx, sizeof(idx)) != sizeof(idx) || idx >= p->njobs)
			break;
		j = &p->jobs[idx];
		pthread_join(j->thread, NULL);
		j->thread_live = false;
		p->converting--;
		job_stop(j);
		if (j->err) {
			j->state = J_FAILED;
			if (!r) {
				msb_err_set(err, j->err->code, "%s", j->err->msg);
				r = -1;
			}
			msb_err_free(steal_ptr(j->err));
			job_unlock(j);
		} else {
			job_converted(p, j);
		}
	}
	return r;
}

/* A layer listed twice in one image is fetched once: the later one follows the first. */
static void follow(struct pull *p, struct job *j)
{
	if (j->state == J_DONE || j->same->state != J_DONE)
		return;
	j->state = J_DONE;
	j->tar_size = j->same->tar_size;
	j->fs_size = j->same->fs_size;
	emit(p, PEV_CACHED, j, 0, 0);
}

static int run_jobs(struct pull *p, struct msb_err **err)
{
	uint64_t last_progress = 0;
	int r = 0;

	for (;;) {
		size_t active = 0, left = 0;
		struct curl_waitfd wfd[2] = {
			{ .fd = p->done_pipe[0], .events = CURL_WAIT_POLLIN },
			{ .fd = p->o->cancel_fd, .events = CURL_WAIT_POLLIN },
		};
		CURLMsg *msg;
		int running, nq;

		if (cancel_requested(p)) {
			interrupted(err);
			break;
		}
		for (size_t i = 0; i < p->njobs; i++)
			active += p->jobs[i].state == J_DOWNLOADING;
		for (size_t i = 0; r == 0 && i < p->njobs; i++) {
			struct job *j = &p->jobs[i];

			if (j->same) {
				follow(p, j);
				continue;
			}
			if ((j->state == J_PENDING || j->state == J_WAITING) &&
			    active < MAX_DOWNLOADS && p->converting < p->max_convert + 1) {
				r = try_lock(p, j, err);
				active += j->state == J_DOWNLOADING;
			}
		}
		if (r == 0)
			curl_multi_perform(p->multi, &running);
		while (r == 0 && (msg = curl_multi_info_read(p->multi, &nq))) {
			struct job *j = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			for (size_t i = 0; i < p->njobs; i++)
				if (p->jobs[i].easy == msg->easy_handle)
					j = &p->jobs[i];
			if (j)
				r = finish_download(p, j, msg->data.result, err);
		}
		if (r == 0)
			r = drain_workers(p, false, err);
		if (r < 0)
			break;
		if (now_ms() - last_progress >= PROGRESS_EVERY_MS) {
			last_progress = now_ms();
			for (size_t i = 0; i < p->njobs; i++)
				if (p->jobs[i].state == J_DOWNLOADING)
					emit(p, PEV_PROGRESS, &p->jobs[i], p->jobs[i].have,
					     (uint64_t)p->jobs[i].desc->size);
		}
		for (size_t i = 0; i < p->njobs; i++)
			left += p->jobs[i].state != J_DONE;
		if (!left)
			return 0;
		curl_multi_poll(p->multi, wfd, p->o->cancel_fd >= 0 ? 2 : 1, LOCK_POLL_MS, NULL);
	}
	/*
	 * Failure: stop downloads (partials stay for a resume). Converters run
	 * to the end, unless the pull was interrupted: then they stop now.
	 */
	if (cancel_requested(p))
		atomic_store(&p->cancel, true);
	for (size_t i = 0; i < p->njobs; i++)
		if (p->jobs[i].state != J_CONVERTING)
			job_stop(&p->jobs[i]);
	drain_workers(p, true, NULL);
	return -1;
}

static int fetch_manifest(struct reg_client *reg, const struct image_ref *ref, struct buf *body,
			  struct manifest *m, char *digest, char **index_digest,
			  struct msb_err **err)
{
	char ctype[256], got[DIGEST_LEN];

	if (reg_get_manifest(reg, ref->repository, ref_object(ref), body, ctype, sizeof(ctype),
			     err) < 0)
		return -1;
	sha256_digest(buf_head(body), buf_size(body), got);
	if (ref->digest && strcmp(got, ref->digest) != 0)
		return msb_err_set(err, EBADMSG, "manifest digest mismatch: asked for %s, got %s",
				   ref->digest, got);
	if (manifest_parse((const char *)buf_head(body), buf_size(body), ctype, m, err) < 0)
		return -1;
	if (m->kind == KIND_INDEX) {
		int i = index_pick(m, err);
		struct descriptor d;

		if (i < 0)
			return -1;
		d = m->entries[i];
		manifest_free(m);
		if (d.size > MANIFEST_MAX)
			return msb_err_set(
				err, EFBIG,
				"platform manifest %s is %lld bytes, more than the %u MiB "
				"msb accepts",
				d.digest, (long long)d.size, MANIFEST_MAX >> 20);
		*index_digest = strdup(got);
		if (!*index_digest)
			return msb_err_sys(err, ENOMEM, "pull");
		if (reg_get_manifest(reg, ref->repository, d.digest, body, ctype, sizeof(ctype),
				     err) < 0)
			return -1;
		sha256_digest(buf_head(body), buf_size(body), got);
		if (strcmp(got, d.digest) != 0 || (int64_t)buf_size(body) != d.size)
			return msb_err_set(err, EBADMSG,
					   "platform manifest does not match the index (digest %s)",
					   d.digest);
		if (manifest_parse((const char *)buf_head(body), buf_size(body), ctype, m, err) < 0)
			return -1;
		if (m->kind != KIND_MANIFEST)
			return msb_err_set(err, EINVAL, "malformed index: entry is not a manifest");
	}
	memcpy(digest, got, DIGEST_LEN);
	return 0;
}

/* Sizes a registry declares are checked before anything is fetched. */
static int check_sizes(const struct manifest *m, struct msb_err **err)
{
	if (m->config.size > CONFIG_MAX)
		return msb_err_set(
			err, EFBIG,
			"image config %s is %lld bytes, more than the %u MiB msb accepts",
			m->config.digest, (long long)m->config.size, CONFIG_MAX >> 20);
	for (size_t i = 0; i < m->nlayers; i++)
		if ((uint64_t)m->layers[i].size > LAYER_BLOB_MAX)
			return msb_err_set(err, EFBIG,
					   "layer %s is %lld bytes, more than a layer may expand "
					   "to (%llu GiB)",
					   m->layers[i].digest, (long long)m->layers[i].size,
					   (unsigned long long)(LAYER_MAX_BYTES >> 30));
	return 0;
}

static int make_dirs(struct pull *p, struct msb_err **err)
{
	int r;

	if (asprintf(&p->cache_layers, "%s/cache/layers", msb_home()) < 0 ||
	    asprintf(&p->cache_blobs, "%s/cache/blobs", msb_home()) < 0)
		return msb_err_sys(err, ENOMEM, "pull");
	r = mkdir_p(p->cache_layers, 0700);
	if (!r)
		r = mkdir_p(p->cache_blobs, 0700);
	return r < 0 ? msb_err_sys(err, -r, "%s/cache", msb_home()) : 0;
}

/* Sets up one job per layer; a diff_id seen before follows its first job. */
static void make_jobs(struct pull *p, const struct manifest *m, const struct image_config *ic)
{
	for (size_t i = 0; i < p->njobs; i++) {
		p->jobs[i] = (struct job){ .idx = i,
					   .desc = &m->layers[i],
					   .diff_id = ic->diff_ids[i],
					   .lock_fd = -1,
					   .fd = -1,
					   .p = p };
		for (size_t k = 0; k < i && !p->jobs[i].same; k++)
			if (!strcmp(p->jobs[k].diff_id, p->jobs[i].diff_id))
				p->jobs[i].same = &p->jobs[k];
	}
}

int image_pull(struct db *db, json_t *cfg, const char *refstr, const struct pull_opts *o,
	       struct image_record *out, struct msb_err **err)
{
	static const struct pull_opts no_opts = { .cancel_fd = -1 };
	struct image_ref ref;
	struct manifest m = { 0 };
	struct image_config ic = { 0 };
	struct buf mbody = { 0 }, cbody = { 0 };
	struct pull p = { .o = o ? o : &no_opts, .done_pipe = { -1, -1 } };
	struct image_record img = { 0 };
	_cleanup_free_ char *canon = NULL, *familiar = NULL;
	char mdigest[DIGEST_LEN], got[DIGEST_LEN], why[256];
	int r = -1;

	memset(out, 0, sizeof(*out));
	if (ref_parse(refstr, &ref, why, sizeof(why)) < 0)
		return msb_err_set(err, EINVAL, "%s", why);
	canon = ref_canonical(&ref);
	familiar = ref_familiar(&ref);
	p.ref = familiar;
	p.repo = ref.repository;
	if (!canon || !familiar || make_dirs(&p, err) < 0 || reg_open(cfg, &ref, &p.reg, err) < 0)
		goto out;
	reg_set_cancel(p.reg, p.o->cancel_fd);
	if (fetch_manifest(p.reg, &ref, &mbody, &m, mdigest, &img.index_digest, err) < 0 ||
	    check_sizes(&m, err) < 0)
		goto out;
	if (reg_get_blob(p.reg, ref.repository, m.config.digest, CONFIG_MAX, &cbody, err) < 0)
		goto out;
	sha256_digest(buf_head(&cbody), buf_size(&cbody), got);
	if (strcmp(got, m.config.digest) != 0) {
		msb_err_set(err, EBADMSG, "image config %s: digest mismatch (got %s)",
			    m.config.digest, got);
		goto out;
	}
	if ((int64_t)buf_size(&cbody) != m.config.size) {
		msb_err_set(err, EBADMSG, "image config %s: got %zu bytes, the manifest says %lld",
			    m.config.digest, buf_size(&cbody), (long long)m.config.size);
		goto out;
	}
	if (image_config_parse((const char *)buf_head(&cbody), buf_size(&cbody), &ic, err) < 0)
		goto out;
	if (ic.ndiff_ids != m.nlayers) {
		msb_err_set(err, EINVAL, "malformed image: %zu layers but %zu diff_ids", m.nlayers,
			    ic.ndiff_ids);
		goto out;
	}
	{
		struct pull_event ev = { .type = PEV_RESOLVED,
					 .ref = familiar,
					 .manifest_digest = mdigest,
					 .nlayers = m.nlayers };

		if (p.o->progress)
			p.o->progress(&ev, p.o->ctx);
	}

	p.njobs = m.nlayers;
	p.jobs = calloc(p.njobs ? p.njobs : 1, sizeof(*p.jobs));
	p.multi = curl_multi_init();
	p.max_convert = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (!p.jobs || !p.multi || pipe2(p.done_pipe, O_CLOEXEC) < 0) {
		msb_err_sys(err, ENOMEM, "pull");
		goto out;
	}
	make_jobs(&p, &m, &ic);
	if (run_jobs(&p, err) < 0)
		goto out;

	img.reference = steal_ptr(canon);
	img.manifest_digest = strdup(mdigest);
	img.config_digest = strdup(m.config.digest);
	img.manifest = strndup((const char *)buf_head(&mbody), buf_size(&mbody));
	img.config = strndup((const char *)buf_head(&cbody), buf_size(&cbody));
	img.created = ic.created ? strdup(ic.created) : NULL;
	img.pulled_at = image_now();
	img.nlayers = m.nlayers;
	img.layers = calloc(m.nlayers ? m.nlayers : 1, sizeof(*img.layers));
	if (!img.reference || !img.manifest_digest || !img.config_digest || !img.manifest ||
	    !img.config || !img.pulled_at || !img.layers) {
		msb_err_sys(err, ENOMEM, "pull");
		goto out;
	}
	for (size_t i = 0; i < m.nlayers; i++) {
		img.size += m.layers[i].size;
		img.layers[i] = (struct layer_record){ .diff_id = strdup(ic.diff_ids[i]),
						       .digest = strdup(m.layers[i].digest),
						       .media_type = strdup(m.layers[i].media_type),
						       .compressed_size = m.layers[i].size,
						       .tar_size = p.jobs[i].tar_size,
						       .fs_size = p.jobs[i].fs_size };
		if (!img.layers[i].diff_id || !img.layers[i].digest || !img.layers[i].media_type) {
			msb_err_sys(err, ENOMEM, "pull");
			goto out;
		}
	}
	if (db_image_put(db, &img, err) < 0)
		goto out;
	/* Only a layer this pull could not hold (a forced one) may have gone meanwhile. */
	if (!image_present(&img)) {
		msb_err_set(err, ENOENT,
			    "a layer was deleted (msb image rm) while the image was being pulled: "
			    "pull it again");
		goto out;
	}
	{
		struct pull_event ev = { .type = PEV_DONE,
					 .ref = familiar,
					 .manifest_digest = mdigest,
					 .nlayers = m.nlayers };

		if (p.o->progress)
			p.o->progress(&ev, p.o->ctx);
	}
	*out = img;
	memset(&img, 0, sizeof(img));
	r = 0;
out:
	if (r < 0)
		msb_err_prefix(err, "pull %s", refstr);
	for (size_t i = 0; p.jobs && i < p.njobs; i++) {
		job_stop(&p.jobs[i]);
		job_unlock(&p.jobs[i]);
		free(p.jobs[i].partial);
		msb_err_free(p.jobs[i].err);
	}
	free(p.jobs);
	if (p.multi)
		curl_multi_cleanup(p.multi);
	for (int i = 0; i < 2; i++)
		if (p.done_pipe[i] >= 0)
			close(p.done_pipe[i]);
	free(p.cache_layers);
	free(p.cache_blobs);
	reg_close(p.reg);
	image_record_free(&img);
	image_config_free(&ic);
	manifest_free(&m);
	buf_free(&mbody);
	buf_free(&cbody);
	ref_free(&ref);
	return r;
}

int image_get(struct db *db, json_t *cfg, const char *refstr, enum pull_policy policy,
	      const struct pull_opts *o, struct image_record *out, struct msb_err **err)
{
	struct image_ref ref;
	_cleanup_free_ char *canon = NULL, *familiar = NULL;
	char why[256];
	int r;

	if (ref_parse(refstr, &ref, why, sizeof(why)) < 0)
		return msb_err_set(err, EINVAL, "%s", why);
	canon = ref_canonical(&ref);
	familiar = ref_familiar(&ref);
	ref_free(&ref);
	if (!canon || !familiar)
		return msb_err_sys(err, ENOMEM, "image");
	if (policy != PULL_ALWAYS) {
		r = db_image_get(db, canon, out, err);
		if (r < 0)
			return -1;
		if (r == 0 && image_present(out))
			return 0;
		if (r == 0)
			image_record_free(out);
		if (policy == PULL_NEVER)
			return msb_err_set(err, ENOENT,
					   "image %s is not in the local cache (pull it with 'msb "
					   "pull %s', or drop --pull never)",
					   familiar, familiar);
	}
	return image_pull(db, cfg, refstr, o, out, err);
}
