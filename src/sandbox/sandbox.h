/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox model: its spec on disk, its directory, boot and connection. */
#ifndef MSB_SANDBOX_SANDBOX_H
#define MSB_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/netspec.h"
#include "util/err.h"
#include "util/log.h"

#define SBX_DEFAULT_CPUS    1
#define SBX_DEFAULT_MEM_MIB 512
#define SBX_MIN_MEM_MIB	    64
#define SBX_MAX_CPUS	    64

/*
 * A volume of the sandbox (-v SOURCE:DEST[:OPTIONS]): a host directory or
 * file (@source absolute, symlinks resolved when it was given) or a named
 * volume (@source its name).
 */
struct sbx_volume {
	char *source;
	char *dest; /* absolute, clean */
	bool named;
	bool readonly;
	bool noexec;
};

#define SBX_MAX_VOLUMES 64

/* A tmpfs mount of the sandbox (--tmpfs PATH[:SIZE]). */
struct sbx_tmpfs {
	char *path;
	uint64_t size; /* bytes; 0 = the kernel's default */
};

/*
 * struct sbx_spec - everything that makes a sandbox; saved as
 * <sandbox-dir>/config.json, read by the supervisor at every start and by
 * the commands that act on the sandbox. Scripts' bodies are files in
 * <sandbox-dir>/scripts/.
 */
struct sbx_spec {
	char *name;
	bool ephemeral;
	unsigned int cpus;
	unsigned int mem_mib;
	char *hostname;
	char **layers;		/* read-only layer images, bottom first, NULL-terminated */
	unsigned int upper_mib; /* ext4 upper disk of this size; 0 = tmpfs */
	char *image;		/* image reference it was made from, or NULL */
	char *image_digest;	/* manifest digest pinned at creation, or NULL */
	char *rootfs;		/* the --rootfs it was made from, or NULL */
	bool rootfs_bind;	/* --rootfs-bind: @rootfs itself is the guest's root, live */
	/*
	 * A disk image booted as the root instead of layers (absolute path), its
	 * format, and whether the sandbox writes to its own qcow2 overlay
	 * (<sandbox-dir>/disk.qcow2) rather than to the image.
	 */
	char *disk_image;
	char *disk_format;
	bool disk_snapshot;
	char **disk_allow; /* --allow-backing files, resolved (NULL-terminated, may be NULL) */
	enum log_level log_level;
	char *created_at; /* RFC 3339 */
	/* What sessions get unless they say otherwise. */
	char **command; /* the default process (entrypoint + cmd), NULL-terminated, may be empty */
	char **env;	/* KEY=VALUE, NULL-terminated */
	char *workdir;	/* NULL: / */
	char *user;	/* NULL: root */
	char *shell;	/* for `msb shell`; default /bin/sh */
	char **rlimits; /* --rlimit NAME=SOFT[:HARD] of every session, NULL-terminated */
	/* msb run --timeout: the main command's; the supervisor enforces it for run -d. 0 = none */
	uint64_t main_timeout_ms;
	/* Sent to the guest as CONFIG. */
	struct sbx_tmpfs *tmpfs;
	size_t ntmpfs;
	struct sbx_volume *volumes;
	size_t nvolumes;
	char **scripts; /* names, NULL-terminated */
	char *init;	/* --init, or NULL */
	char **init_args;
	char **init_env;
	/* Limits the supervisor enforces; 0 = none. */
	uint64_t max_duration_ms;
	uint64_t idle_timeout_ms;
	struct sbx_net net;
};

void sbx_spec_free(struct sbx_spec *s);

/* sbx_dir() - <MSB_HOME>/sandboxes/<name>. Return: newly allocated, or NULL. */
char *sbx_dir(const char *name);

/*
 * sbx_make_dir() - create the sandbox directory, its logs/ and its lock for
 * a new sandbox, atomically: the directory appears under its name only with
 * the lock already held, so a concurrent sbx_reap() never sees it half-made.
 * Fails if a sandbox of that name exists.
 * Return: the lock fd (held exclusively; hand it to sbx_boot()), or -1 with @err.
 */
int sbx_make_dir(const char *name, struct msb_err **err);

/*
 * sbx_reap() - clean up after sandboxes whose supervisor died without doing
 * so (kill -9, a crash): an ephemeral sandbox's directory and database row
 * are removed. A sandbox is alive exactly while its supervisor holds the
 * lock in its directory. Best effort; never fails.
 */
void sbx_reap(void);

/*
 * sbx_leftover() - is entry @name of the sandboxes directory what sbx_reap()
 * removes (a dead ephemeral sandbox, a half-made one)? Looks without locking.
 */
bool sbx_leftover(const char *name);

/*
 * sbx_reap_one() - remove leftover @name as sbx_reap() does, under its lock
 * (never one whose supervisor took it meanwhile). Return: true if removed.
 */
bool sbx_reap_one(const char *name);

/* sbx_lock_take() - take the sandbox lock on @fd without waiting. Return: 0 or -errno. */
int sbx_lock_take(int fd);
/* sbx_lock_held() - is the lock in the sandbox directory @dirfd held (its supervisor alive)? */
bool sbx_lock_held(int dirfd);

/* sbx_forget() - drop the database row of a sandbox (best effort). */
void sbx_forget(const char *name);

/* sbx_valid_hostname() - letters, digits, '-' and '.', 1 to 64, not starting with '-' or '.'. */
bool sbx_valid_hostname(const char *s);

/* sbx_ephemeral_name() - a fresh random name for an unnamed sandbox. */
void sbx_ephemeral_name(char *buf, size_t len);

int sbx_spec_save(const struct sbx_spec *s, struct msb_err **err);

/*
 * sbx_make_upper() - create the sandbox's writable disk: a sparse ext4
 * image of @mib MiB at <sandbox-dir>/upper.ext4. Return: 0 or -1 with @err.
 */
int sbx_make_upper(const char *name, unsigned int mib, struct msb_err **err);

/*
 * sbx_make_ext4() - create @path (must not exist) as a sparse ext4 image of
 * @bytes with label @label. Nothing is left on failure. Return: 0 or -1 with @err.
 */
int sbx_make_ext4(const char *path, uint64_t bytes, const char *label, struct msb_err **err);
int sbx_spec_load(const char *name, struct sbx_spec *s, struct msb_err **err);
/* sbx_spec_read() - a spec from the config.json at @path (a sandbox's, a snapshot's). */
int sbx_spec_read(const char *path, struct sbx_spec *s, struct msb_err **err);

/* Boot timings the guest reported. */
struct sbx_boot_info {
	pid_t supervisor;
	uint64_t kernel_ns; /* guest clock when agentd started */
	uint64_t ready_ns;  /* guest clock when the agent was ready */
	char accel[8];
};

/*
 * sbx_boot() - start the sandbox's supervisor and wait until the guest agent
 * is ready. With SBX_BOOT_ATTACHED in @flags the supervisor stops the sandbox
 * when the first client to connect (the caller) goes away. The supervisor inherits the
 * sandbox lock @lock_fd (from sbx_make_dir()) and holds it for its life; the
 * caller may close its copy. A terminating signal while waiting tears the
 * half-booted sandbox down. Return: 0 or -1 with @err.
 */
#define SBX_BOOT_ATTACHED 0x1u /* the first client's leaving ends the sandbox */
#define SBX_BOOT_RUN_MAIN 0x2u /* the supervisor runs the spec's command as the main session */
int sbx_boot(const char *name, unsigned int flags, int lock_fd, struct sbx_boot_info *info,
	     struct msb_err **err);

/*
 * sbx_wait_supervisor() - wait for a supervisor process to exit, at most
 * @ms or until SIGINT/SIGTERM/SIGHUP (if blocked by the caller) arrives;
 * then kill it (its VM dies with it).
 */
void sbx_wait_supervisor(pid_t pid, uint64_t ms);

/* sbx_connect() - connect to a running sandbox's relay socket. Return: fd or -1. */
int sbx_connect(const char *name, struct msb_err **err);

/*
 * sbx_shutdown() - ask the sandbox on @fd to stop, giving processes
 * @grace_ms between SIGTERM and SIGKILL. Return: 0 or -errno.
 */
int sbx_shutdown(int fd, uint32_t grace_ms);

/*
 * msb_lib_file() - find a guest artefact (vmlinux, initrd.cpio): in
 * $MSB_LIB_DIR, next to the msb binary (a build tree), in ../lib/msb
 * relative to it (make install), in ../lib relative to it (a release tarball,
 * ~/.microsandbox), or in <MSB_HOME>/lib. Return: 0 and a newly allocated path.
 */
int msb_lib_file(const char *name, char **out, struct msb_err **err);

/*
 * The supervisor's entry point (msb's hidden "__supervise" command); @lock_fd
 * may be -1. @secrets_fd (-1: none) carries the values of the spec's secrets
 * (sbx_secrets_write_fd()); it is read to its end and closed at once. With
 * @run_main it runs the spec's command as the sandbox's main session, and
 * the sandbox ends when that does (msb run -d).
 */
int sbx_supervise(const char *name, int ready_fd, int lock_fd, int secrets_fd, bool attached,
		  bool run_main);

/* Where the supervisor finds the descriptors its starter passes. */
#define SBX_READY_FD 3
/* The lock file in a sandbox directory, held by its live supervisor. */
#define SBX_LOCK_FILE "lock"
#define SBX_LOCK_FD   4
/* A pipe with the values of the sandbox's secrets (sandbox/secrets.h), when it has any. */
#define SBX_SECRETS_FD 5
/* Present while (and after) a run has the spec's command as its main session. */
#define SBX_MAIN_FILE "main-command"

#endif
