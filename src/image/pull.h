/* SPDX-License-Identifier: Apache-2.0 */
/* Pulling images: resolve, download layers in parallel, verify, convert, record. */
#ifndef MSB_IMAGE_PULL_H
#define MSB_IMAGE_PULL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "image/store.h"
#include "store/db.h"
#include "util/err.h"

enum pull_policy { PULL_IF_MISSING, PULL_ALWAYS, PULL_NEVER };

/* What a pull reports as it goes; rendered by progress.c. */
enum pull_ev {
	PEV_RESOLVED,  /* @ref, @manifest_digest, @nlayers known */
	PEV_CACHED,    /* layer already in the cache */
	PEV_WAITING,   /* another msb process is fetching this layer */
	PEV_DOWNLOAD,  /* download starts (@done = bytes resumed from) */
	PEV_PROGRESS,  /* @done of @total bytes */
	PEV_VERIFIED,  /* digest checked */
	PEV_CONVERTED, /* squashfs image published (@total = its size) */
	PEV_DONE,      /* image recorded */
};

struct pull_event {
	enum pull_ev type;
	const char *ref;
	const char *manifest_digest;
	size_t nlayers;
	size_t layer; /* index, bottom first */
	const char *digest;
	uint64_t done, total;
};

typedef void (*pull_progress_fn)(const struct pull_event *ev, void *ctx);

/*
 * struct pull_opts - how to pull.
 * @cancel_fd: -1, or a descriptor (a signalfd, a pipe) that becomes readable
 *             when the pull must stop; it is polled, never read. Zero is a
 *             descriptor like any other: initialise this field explicitly.
 */
struct pull_opts {
	bool force; /* fetch and convert layers even if cached */
	pull_progress_fn progress;
	void *ctx;
	int cancel_fd;
};

/*
 * image_pull() - fetch @refstr from its registry into the cache and the
 * database. Once o->cancel_fd is readable the pull stops within about
 * 100 ms: downloads are dropped (their .partial files stay, to be resumed),
 * conversions are stopped and their half-written images removed, every lock
 * is released, and the error is "interrupted" with exit status 130 (after
 * the usual "pull REF: " context).
 * Return: 0 and the record in *@out (caller frees), or -1.
 */
int image_pull(struct db *db, json_t *cfg, const char *refstr, const struct pull_opts *o,
	       struct image_record *out, struct msb_err **err);

/*
 * image_get() - the image @refstr names, pulled per @policy.
 * Return: 0 and the record in *@out, or -1 with @err.
 */
int image_get(struct db *db, json_t *cfg, const char *refstr, enum pull_policy policy,
	      const struct pull_opts *o, struct image_record *out, struct msb_err **err);

#endif
