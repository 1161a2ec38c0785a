/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Named volumes (<MSB_HOME>/volumes/<name>/) and the -v option.
 *
 * A volume is a directory that outlives the sandboxes using it: either a
 * plain directory (data/), shared with the guest like a bind mount, or, made
 * with a size, an ext4 image (disk.ext4) the guest gets as a disk, so that
 * the quota holds whatever the guest writes. volume.json records its kind,
 * size and creation time. See docs/volumes.md.
 */
#ifndef MSB_SANDBOX_VOLUME_H
#define MSB_SANDBOX_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/sandbox.h"
#include "util/err.h"

#define VOL_NAME_MAX 63
/* The smallest quota: what mkfs.ext4 needs for its journal and tables. */
#define VOL_MIN_QUOTA (8ull << 20)

struct vol_info {
	char name[VOL_NAME_MAX + 1];
	bool quota;    /* an ext4 image of @size bytes; else a directory */
	uint64_t size; /* the quota, 0 for a directory */
	char created_at[40];
};

/* vol_check_name() - 1 to 63 of [A-Za-z0-9_.-], starting with a letter or digit. */
int vol_check_name(const char *name, struct msb_err **err);

/* vol_create() - a new volume; @size 0: a directory. Nothing is left on failure. */
int vol_create(const char *name, uint64_t size, struct msb_err **err);

/* vol_load() - read a volume's record. Return: 0, or -1 with @err ("no such volume"). */
int vol_load(const char *name, struct vol_info *out, struct msb_err **err);

/* vol_list() - every volume, sorted by name. Return: 0 (@out freed with free()) or -1. */
int vol_list(struct vol_info **out, size_t *n, struct msb_err **err);

/* vol_data() - the host path of the volume's contents (data/ or disk.ext4). Newly allocated. */
char *vol_data(const struct vol_info *v);

/* vol_usage() - bytes the volume holds on the host (allocated blocks). */
uint64_t vol_usage(const struct vol_info *v);

/* vol_users() - names of the sandboxes whose config mounts @name (NULL-terminated). */
char **vol_users(const char *name);

/*
 * vol_remove() - delete a volume msb created. One a stopped sandbox names is
 * refused unless @force; one a running sandbox uses, always.
 * Return: 0 or -1 with @err.
 */
int vol_remove(const char *name, bool force, struct msb_err **err);

/*
 * sbx_parse_volume() - -v SOURCE:DEST[:OPTIONS]. A SOURCE starting with '/'
 * or '.' is a host path, which must exist and must not be a symlink itself
 * (it is stored resolved); anything else names a volume, which must exist.
 * OPTIONS: a comma list of ro, rw, noexec. Return: 0, or -1 with a one-line @err.
 */
int sbx_parse_volume(const char *arg, struct sbx_volume *out, struct msb_err **err);

/* sbx_volume_free() - release what sbx_parse_volume() allocated. */
void sbx_volume_free(struct sbx_volume *v);

/*
 * struct vol_plan - how a sandbox's volumes reach its VM at start: host paths
 * shared through the shared-files device, quota volumes as extra disks, and
 * the locks that keep a quota volume to one writer.
 */
struct vol_plan {
	const char *share[SBX_MAX_VOLUMES + 1]; /* host paths, owned; [0] a live root */
	bool share_ro[SBX_MAX_VOLUMES + 1];
	size_t nshares;
	char *disk[SBX_MAX_VOLUMES]; /* image paths */
	bool disk_ro[SBX_MAX_VOLUMES];
	size_t ndisks;
	/* For each volume of the spec: share or disk index, and whether it is a disk. */
	uint32_t index[SBX_MAX_VOLUMES];
	bool is_disk[SBX_MAX_VOLUMES];
	int locks[SBX_MAX_VOLUMES];
	size_t nlocks;
};

/*
 * vol_plan() - check that every source of @s still exists and take the quota
 * volumes' locks (exclusive for a writer, shared for readers): a second
 * writer is refused with the name of the sandbox that holds it.
 * Return: 0 or -1 with @err; vol_plan_free() in both cases.
 */
int vol_plan(const struct sbx_spec *s, struct vol_plan *p, struct msb_err **err);
void vol_plan_free(struct vol_plan *p);

#endif
