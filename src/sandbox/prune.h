/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What `msb prune` removes and `msb df` calls reclaimable: one plan for both.
 *
 * DOC: What is reclaimable
 * - sandboxes: leftovers of ephemeral sandboxes whose supervisor died
 *   (kill -9, a crash) and half-made ones (sbx_leftover()); never a named
 *   sandbox, running or stopped;
 * - images: those no kept sandbox (its database row or config.json), no
 *   snapshot and no installed alias refers to;
 * - layers: layer images in the cache that no kept image uses and no kept
 *   sandbox or snapshot names in its config.json;
 * - downloads: everything under cache/blobs (partial layer downloads);
 * - templates: warm-start shapes unused for 14 days (warm_stale()).
 * Volumes and snapshots are never reclaimable. Sizes are the blocks that
 * removing an item frees: a file with links outside what is removed (a layer
 * a sandbox holds a link to) frees nothing.
 *
 * Removal never waits and never races: a layer (and so a download of it, or
 * an image using it) whose lock a pull or a starting sandbox holds is passed
 * over (image/store.h), and each image or layer is checked again for users
 * under its exclusive lock; a leftover sandbox is removed under its own lock.
 */
#ifndef MSB_SANDBOX_PRUNE_H
#define MSB_SANDBOX_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum prune_kind {
	PRUNE_SANDBOX,
	PRUNE_IMAGE,
	PRUNE_LAYER,
	PRUNE_DOWNLOAD,
	PRUNE_TEMPLATE,
};

/* What to consider (prune_plan()'s @what). */
#define PRUNE_SANDBOXES (1u << 0)
#define PRUNE_IMAGES	(1u << 1) /* unused images and unused layers */
#define PRUNE_DOWNLOADS (1u << 2)
#define PRUNE_TEMPLATES (1u << 3)
#define PRUNE_ALL	(PRUNE_SANDBOXES | PRUNE_IMAGES | PRUNE_DOWNLOADS | PRUNE_TEMPLATES)

struct prune_item {
	enum prune_kind kind;
	/* sandbox name, canonical image reference, layer diff_id, download file, template key */
	char *name;
	char *path;    /* what goes on disk; NULL for an image (its layers are items) */
	uint64_t size; /* bytes its removal frees */
};

/* struct prune_plan - items in removal order: sandboxes, images, layers, downloads, templates. */
struct prune_plan {
	struct prune_item *v;
	size_t n;
	uint64_t total;
};

/* prune_kind_name() - "sandbox", "image", "layer", "download", "template". */
const char *prune_kind_name(enum prune_kind k);

/* prune_plan() - what is reclaimable now, of the kinds in @what. Return: 0 or -1 with @err. */
int prune_plan(unsigned int what, struct prune_plan *out, struct msb_err **err);

/*
 * prune_apply() - remove @p's items, each checked again under its lock; those
 * in use by now stay. @removed is called for each item removed.
 * Return: 0, or -1 with @err (the first failure; the other items were tried).
 */
int prune_apply(const struct prune_plan *p, void (*removed)(const struct prune_item *, void *),
		void *ctx, struct msb_err **err);

void prune_plan_free(struct prune_plan *p);

#endif
