/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshots of sandboxes, under <MSB_HOME>/snapshots/<name>/: the writable
 * disk (always), the guest's memory and processes (--full), the sandbox's
 * configuration and its read-only layers (hard links, so a snapshot outlives
 * `msb rmi` of its image). Branches are full snapshots made into a new sandbox
 * at once. See docs/snapshots.md.
 */
#ifndef MSB_SANDBOX_SNAPSHOT_H
#define MSB_SANDBOX_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "util/err.h"

/* What taking a snapshot cost the sandbox. */
struct snap_result {
	bool live;	       /* taken of a running sandbox (else of a stopped one's disk) */
	uint64_t pause_ms;     /* the guest was stopped this long */
	uint64_t quiesce_ms;   /* before that, flushing its disks */
	uint64_t memory_bytes; /* with --full */
	uint64_t disk_bytes;   /* data copied of the writable disk */
};

/* snap_check_name() - as sandbox names: 1 to 63 of [A-Za-z0-9_.-], starting alphanumeric. */
int snap_check_name(const char *name, struct msb_err **err);

/* snap_dir() - <MSB_HOME>/snapshots/<name>. Return: newly allocated, or NULL. */
char *snap_dir(const char *name);

/*
 * snap_create() - snapshot sandbox @sandbox as @name: its writable disk and,
 * with @full, its memory (it must be running). A running sandbox pauses while
 * its state is copied. Nothing is left on failure.
 * Return: 0 and @res, or -1 with a one-line @err.
 */
int snap_create(const char *name, const char *sandbox, bool full, struct snap_result *res,
		struct msb_err **err);

/* snap_info() - the snapshot's record (snapshot.json). Return: 0 and a new reference, or -1. */
int snap_info(const char *name, json_t **out, struct msb_err **err);

/* snap_info_at() - the same for the snapshot in directory @dir (@name for messages). */
int snap_info_at(const char *name, const char *dir, json_t **out, struct msb_err **err);

/*
 * snap_branch() - fork running sandbox @sandbox into a new persistent sandbox
 * @new_name: a full snapshot (the pause is in @res) made into @new_name and
 * started, resuming where @sandbox was. Both run on independently.
 * Return: 0, or -1 with a one-line @err (nothing of @new_name is left).
 */
int snap_branch(const char *sandbox, const char *new_name, struct snap_result *res,
		struct msb_err **err);

/* snap_list() - every snapshot's record, by name. Return: 0 and a new array, or -1. */
int snap_list(json_t **out, struct msb_err **err);

/* snap_remove() - delete a snapshot (sandboxes made from it keep their own copies). */
int snap_remove(const char *name, struct msb_err **err);

#endif
