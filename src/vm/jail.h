/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VMM's box: what a guest that escapes through a QEMU bug finds around
 * it. The VMM starts in its own mount, PID, network, IPC and UTS namespaces
 * (and, for an ordinary user, its own user namespace), on a root that holds
 * only the system files QEMU needs (/usr, the loader cache, a few device
 * nodes) and the files of this one sandbox it was given, at their usual
 * paths; with no capabilities (as root with the user's files: only those of
 * file access), no_new_privs, msb's own seccomp filter (vm/seccomp.h),
 * resource limits, and (when msb runs as root) an unprivileged uid of its
 * own, not shared with any other process.
 * docs/security.md describes the boundary.
 */
#ifndef MSB_VM_JAIL_H
#define MSB_VM_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JAIL_MAX_PATHS	80
#define JAIL_MAX_SHARES 65 /* every volume and a live root */
/* Where the directories and files shared with the guest are bound inside: <dir>/<index>. */
#define JAIL_SHARE_DIR "/msb-share"
/*
 * As root, each VMM runs as a uid (and gid of the same number) of its own
 * from this range, unless MSB_VMM_IDS=FIRST:COUNT names another. Not in
 * systemd's container range (0x80000-0x6fffffff), below 2^31.
 */
#define JAIL_IDS_FIRST 0x70000000u
#define JAIL_IDS_COUNT 65536u
/* Held while an id is chosen and until the VMM runs as it (see jail_init()). */
#define JAIL_IDS_LOCK "/run/msb-vmm-ids.lock"

struct jail_path {
	char *path; /* absolute, symlinks resolved: what is bound */
	char *link; /* the symlink that led there (recreated inside), or NULL */
	bool rw;
};

struct jail {
	char *root; /* an empty host directory the jail's root is mounted on */
	char *cwd;  /* the VMM's working directory inside (also created there) */
	struct jail_path paths[JAIL_MAX_PATHS];
	size_t n;
	struct jail_path shares[JAIL_MAX_SHARES]; /* bound at JAIL_SHARE_DIR/<index> */
	size_t nshares;
	bool keep_root; /* as root: stay uid 0 with only the file capabilities */
	bool kvm;	/* expose /dev/kvm */
	uint64_t fsize; /* RLIMIT_FSIZE: the largest file the VMM may write */
	bool userns;	/* an ordinary user: build the jail in a new user namespace */
	bool bare;	/* no namespaces could be had: limits and no_new_privs only */
	uid_t uid;	/* who the VMM runs as, outside the jail */
	gid_t gid;
	int ids_lock; /* JAIL_IDS_LOCK, held from jail_init() to jail_free(), or -1 */
};

/*
 * jail_init() - a jail on @root (created if missing) with working directory
 * @cwd. As root the VMM will run as a uid:gid of its own: the first of the
 * range (JAIL_IDS_FIRST, or MSB_VMM_IDS), counted from a hash of @cwd, that
 * has no passwd or group entry and that no process uses (as any of its
 * uids or gids). The choice holds because the VMM uses it from the moment it
 * starts: call jail_free() only once it runs (or failed), which releases
 * the lock. MSB_VMM_UID (and MSB_VMM_GID) force one id for every VMM, shared.
 * An ordinary user's VMM runs as the caller inside a user namespace.
 * Return: 0 or -errno (-EUSERS: every id of the range is taken).
 */
int jail_init(struct jail *j, const char *root, const char *cwd);

/*
 * jail_pick_id() - a uid (and gid of the same number) of the unprivileged
 * range that no account and no process holds, for one confined process of
 * root's: the VMM, or a sandbox's network process. The choice starts from a
 * hash of @key. The range's lock stays held in *@lock until the caller has
 * a process running as the id (then the id shows as in use): close it then.
 * Return: 0, or -errno (-EUSERS when every id is taken).
 */
int jail_pick_id(const char *key, uint32_t *id, int *lock);

/*
 * jail_hold_ids() - this process keeps the range's @lock (from jail_pick_id())
 * past the pick, for @reserved, whose process is not running as it yet: later
 * picks in this process share the lock instead of waiting for it (a dup of the
 * same open file) and never choose @reserved. jail_release_ids() ends that,
 * once @reserved shows as in use; the caller closes @lock.
 */
void jail_hold_ids(int lock, uint32_t reserved);
void jail_release_ids(void);

/*
 * jail_add() - make @path (a file or directory; relative to the current
 * directory or absolute) visible inside at its absolute path, read-only
 * unless @rw. A symlink is resolved: its target is what is exposed, at both
 * paths. As root, a writable file is handed to the VMM's uid.
 * Return: 0 or -errno.
 */
int jail_add(struct jail *j, const char *path, bool rw);

/*
 * jail_add_exe() - make the VMM binary @path visible inside when it is not
 * under one of the system paths the jail always has (a test's stand-in, a
 * QEMU under /opt). It must be readable and executable by everyone: it is
 * never chowned. Return: 0 or -errno.
 */
int jail_add_exe(struct jail *j, const char *path);

/*
 * jail_add_share() - make the directory or file @path (absolute, without a
 * symlink in any component: -ELOOP otherwise) visible inside at
 * JAIL_SHARE_DIR/<its index>, read-only unless @rw. The jail binds the
 * descriptor it opens without following symlinks, never the name.
 * Return: 0 or -errno.
 */
int jail_add_share(struct jail *j, const char *path, bool rw);

/*
 * jail_open_nofollow() - an O_PATH descriptor of absolute @path, resolved
 * without following any symlink (openat2 RESOLVE_NO_SYMLINKS).
 * Return: the fd, or -errno (-ELOOP: a component is a symlink).
 */
int jail_open_nofollow(const char *path);

/*
 * jail_readable() - can the VMM read @path when it runs as another uid
 * (msb as root)? Sets *@uid to that uid (MSB_VMM_UID, or the first of the
 * range). A file msb cannot hand over (one shared with others) must be
 * world-readable.
 */
bool jail_readable(const char *path, unsigned int *uid);

/* jail_clone_flags() - the namespaces spawn() must create for the VMM. */
unsigned long jail_clone_flags(const struct jail *j);

/*
 * jail_enter() - spawn()'s pre_exec hook (@arg is the struct jail): builds
 * the root, switches into it and drops what the VMM must not keep. Runs in
 * the child; reports the failing step on stderr. Return: 0 or -errno.
 */
int jail_enter(void *arg);

void jail_free(struct jail *j);

#endif
