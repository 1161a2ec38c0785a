/* SPDX-License-Identifier: Apache-2.0 */
/* Making a sandbox: from flags and an image (or a rootfs) to a directory, a spec and a row. */
#ifndef MSB_SANDBOX_CREATE_H
#define MSB_SANDBOX_CREATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/pull.h"
#include "sandbox/sandbox.h"
#include "util/err.h"

#define SBX_NAME_MAX 63
/* A named sandbox keeps its writable layer on a sparse disk of this size unless told. */
#define SBX_DEFAULT_UPPER_MIB 4096

/* A script to put at /.msb/scripts/NAME, with its body already decoded. */
struct sbx_script_src {
	char *name;
	char *body;
	size_t len;
};

/* struct sbx_create_opts - what `msb run` and `msb create` were asked for. Borrowed strings. */
struct sbx_create_opts {
	const char *name; /* NULL: an ephemeral sandbox with a generated name */
	const char *image;
	const char *rootfs;   /* instead of an image */
	bool disk_snapshot;   /* a disk image root: write to a qcow2 overlay, not the image */
	bool rootfs_bind;     /* --rootfs DIR is the guest's root itself, not a snapshot of it */
	char **allow_backing; /* files a disk image may name outside its directory (NULL-terminated)
			       */
	enum pull_policy pull;
	bool quiet;    /* no pull progress */
	int cancel_fd; /* a readable fd stops a pull (-1: none) */
	unsigned int cpus, mem_mib, upper_mib;
	const char *hostname;	/* NULL: the name */
	const char *entrypoint; /* --entrypoint ("" clears the image's) */
	char **cmd;		/* NULL or empty: the image's Cmd */
	char **env;		/* -e KEY=VALUE, over the image's Env */
	const char *workdir, *user, *shell;
	struct sbx_tmpfs *tmpfs;
	size_t ntmpfs;
	const struct sbx_volume *volumes; /* parsed by sbx_parse_volume() */
	size_t nvolumes;
	struct sbx_script_src *scripts;
	size_t nscripts;
	const char *init;
	char **init_args, **init_env;
	uint64_t max_duration_ms, idle_timeout_ms;
	char **rlimits;		  /* --rlimit NAME=SOFT[:HARD] (checked), for every session */
	uint64_t main_timeout_ms; /* msb run --timeout: the main command's */
	enum log_level log_level;
	const struct sbx_net *net; /* NULL: the defaults */
	/* The values of @net's secrets, in their order (never saved in the spec). */
	char *const *secret_values;
	/*
	 * Made from this snapshot (its settings, layers, disk, and with a full
	 * one its memory); @image, if given, must be the snapshot's image.
	 */
	const char *from_snapshot;
	const char *from_snapshot_dir; /* where it is, if not among the snapshots (a branch) */
};

/*
 * struct sbx_made - a sandbox just made: its name, the lock its supervisor
 * will inherit, and the image's layers held until the supervisor has linked
 * them (release with sbx_made_release() once it booted).
 */
struct sbx_made {
	char name[SBX_NAME_MAX + 1];
	int lock;
	int *held;
	size_t nheld;
	bool secrets_stored; /* its secrets' values are in the store (sbx_discard() removes them) */
	bool secrets_keyring; /* ... in the keyring */
};

/*
 * sbx_create() - resolve (pull) the image, then make the sandbox: its
 * directory (with the lock held), root filesystem layers, writable disk,
 * scripts, config.json and database row. On failure nothing is left.
 * Return: 0 and @out, or -1 with @err.
 */
int sbx_create(const struct sbx_create_opts *o, struct sbx_made *out, struct msb_err **err);

/* sbx_made_release() - drop the layer holds and the lock (the supervisor keeps its own). */
void sbx_made_release(struct sbx_made *m);

/* sbx_discard() - remove what sbx_create() made (a failed boot), then release @m. */
void sbx_discard(struct sbx_made *m);

/*
 * sbx_check_name() - a sandbox name: 1 to 63 of [A-Za-z0-9_.-], starting with
 * a letter or digit. Return: 0 or -1 with a one-line @err.
 */
int sbx_check_name(const char *name, struct msb_err **err);

/*
 * sbx_script_decode() - --script NAME=BODY: decodes \n, \t, \r, \\, \", \'
 * (other escapes stay as written) and puts "#!SHELL\n" in front.
 * Return: 0 and a newly allocated body in @out, or -ENOMEM.
 */
int sbx_script_decode(const char *body, const char *shell, struct sbx_script_src *out);

/* sbx_parse_tmpfs() - PATH[:SIZE] (SIZE like 64M). Return: 0 or -EINVAL. */
int sbx_parse_tmpfs(const char *arg, struct sbx_tmpfs *out);

#endif
