/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VMM interface. The rest of msb sees only this; QEMU (qemu.c) is one
 * backend behind it, so a native KVM VMM can replace it later.
 */
#ifndef MSB_VM_VM_H
#define MSB_VM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

enum vm_accel { VM_ACCEL_TCG, VM_ACCEL_KVM };

/*
 * vm_accel_detect() - kvm when /dev/kvm opens read-write and is backed by
 * kvm_intel or kvm_amd, else tcg; MSB_ACCEL=kvm|tcg overrides.
 * @why gets a short human reason for the choice (for runtime.log).
 * Return: 0, or -1 with @err (MSB_ACCEL invalid, or kvm forced but unusable).
 */
int vm_accel_detect(enum vm_accel *out, char *why, size_t why_len, struct msb_err **err);
const char *vm_accel_name(enum vm_accel a);
/*
 * vm_accel_warn() - say on stderr, with the fix, when software emulation was
 * chosen only because this user may not open a hardware-backed /dev/kvm
 * (not when MSB_ACCEL asked for it; other reasons go to runtime.log).
 */
void vm_accel_warn(enum vm_accel accel, const char *why);

/* One file of a disk's chain, with everything QEMU is to open for it. */
struct vm_disk_node {
	const char *path;
	const char *format;	  /* "raw", "qcow2" or "vmdk" */
	const char *data_file;	  /* a qcow2's external data file, or NULL */
	const char *const *extra; /* further files it opens by name (vmdk extents), or NULL */
};

struct vm_disk {
	const char *path;
	const char *format; /* "raw", "qcow2" or "vmdk"; read-only "vmdk" is the layer disk */
	const char *serial; /* what the guest reads in /sys/block/vdX/serial, or NULL */
	bool readonly;
	/*
	 * A user's disk image: its vetted chain, [0] being @path, each node's
	 * backing the next (the last has none). QEMU gets every file name and
	 * format explicitly and follows no name written in an image.
	 */
	const struct vm_disk_node *chain;
	size_t nchain;
};

/* A host directory or file the guest reaches through the shared-files device. */
struct vm_share {
	const char *path;
	bool readonly;
};

/* microvm's virtio-mmio transports: every device of a VM takes one. */
#define VM_MMIO_SLOTS 8

struct vm_config {
	enum vm_accel accel;
	unsigned int cpus;
	unsigned int mem_mib;
	const char *kernel;
	const char *initrd;
	const char *cmdline_extra; /* msb.* parameters for agentd */
	const struct vm_disk *disks;
	size_t ndisks;
	const char *workdir; /* the VMM's working directory; relative paths are relative to it */
	const char *const
		*files; /* further files the VMM reads (a disk's extents), NULL-terminated */
	/*
	 * Confine the VMM on this empty directory (see jail.h); NULL runs it
	 * unconfined (MSB_JAIL=0 does the same).
	 */
	const char *jail_root;
	/*
	 * Shared host paths: one virtio-9p device exports them all, the guest
	 * sees share i as directory or file "<i>" at the root of PROTO_SHARE_TAG.
	 * Needs the jail (each is bound into its export directory).
	 */
	const struct vm_share *shares;
	size_t nshares;
	/*
	 * The VMM reads and writes the user's own files (shares, a disk image):
	 * as root it keeps uid 0 with only the file capabilities, rather than
	 * running as another uid those files would have to be handed to; and no
	 * file size limit applies.
	 */
	bool user_files;
	/*
	 * The guest's RAM: anonymous memory (NULL), or mapped from this file,
	 * shared (@mem_shared: the guest writes its RAM into it, a template being
	 * made) or private (copy-on-write pages of that file: every clone of a
	 * template shares what it has not written to).
	 */
	const char *mem_file;
	bool mem_shared;
	/* Start paused, waiting for a saved state (vm_restore()) instead of booting. */
	bool incoming;
	/* The VMM will write its state out (vm_save()): its file size limit makes room. */
	bool saves_state;
	int console_fd; /* connected socket; the guest's serial console */
	int agent_fd;	/* connected socket; becomes the "agent" port */
	int stderr_fd;	/* where the VMM's own diagnostics go (a pipe the caller drains) */
	/*
	 * A connected stream socket for the guest's network card, frames with a
	 * 4-byte length in front; -1 for none.
	 */
	int net_fd;
	uint8_t net_mac[6];
	unsigned int net_mtu;
};

struct vm;

/*
 * vm_start() - launch a VM. The VMM dies with the calling process
 * (PR_SET_PDEATHSIG). Return: 0 and *@out (caller frees with vm_free), or -1.
 */
int vm_start(const struct vm_config *cfg, struct vm **out, struct msb_err **err);
pid_t vm_pid(const struct vm *vm);
/* vm_reaped() - record that the VMM process was reaped with wait status @status. */
void vm_reaped(struct vm *vm, int status);
bool vm_running(const struct vm *vm);
/*
 * vm_watch() - register the backend's own control channel (QMP) in epoll
 * @ep with payload @data; call vm_handle() when it fires. Return: 0 or -errno.
 */
int vm_watch(struct vm *vm, int ep, uint64_t data);
/* vm_handle() - serve the control channel after an epoll event (never blocks). */
void vm_handle(struct vm *vm);
/*
 * vm_quit() - ask the VMM to exit now (QMP "quit"). Return: 0 when the
 * request is queued, -errno when the control channel is unusable (kill instead).
 */
int vm_quit(struct vm *vm);
void vm_kill(struct vm *vm);

/*
 * vm_disk_stats() - ask the VMM for the bytes the guest read from and wrote
 * to its disks; @cb runs from vm_handle() with the answer (ok false if none
 * came). Return: 0, or -errno (then @cb never runs).
 */
typedef void (*vm_disk_stats_fn)(void *ctx, bool ok, uint64_t rd_bytes, uint64_t wr_bytes);
int vm_disk_stats(struct vm *vm, vm_disk_stats_fn cb, void *ctx);

/*
 * vm_save() - write the guest's whole state (a migration stream) to @fd:
 * stopped for it and running again after, or with VM_SAVE_PAUSED, one the
 * caller stopped (vm_pause()) and leaves stopped. vm_restore() - load a
 * state written so into a VM started with @incoming, which then runs.
 * vm_pause(), vm_resume() - stop and continue the guest's CPUs in place.
 * @cb runs from vm_handle() when it is over (ok false with a reason if not).
 * One at a time. The VMM gets its own copy of @fd.
 * Return: 0, or -errno (then @cb never runs).
 */
typedef void (*vm_state_fn)(void *ctx, bool ok, const char *why);
#define VM_SAVE_PAUSED 0x1u
/* The RAM is not in the stream: it is the memory file, mapped shared by the saver. */
#define VM_STATE_SHARED_RAM 0x2u
int vm_save(struct vm *vm, int fd, unsigned int flags, vm_state_fn cb, void *ctx);
int vm_restore(struct vm *vm, int fd, unsigned int flags, vm_state_fn cb, void *ctx);
int vm_pause(struct vm *vm, vm_state_fn cb, void *ctx);
int vm_resume(struct vm *vm, vm_state_fn cb, void *ctx);
/*
 * vm_restore_wait() - vm_restore() and wait for it (at most @timeout_ms),
 * without an event loop. The others the same. Return: 0, or -errno with @why.
 */
int vm_restore_wait(struct vm *vm, int fd, unsigned int flags, unsigned int timeout_ms, char *why,
		    size_t len);
int vm_save_wait(struct vm *vm, int fd, unsigned int flags, unsigned int timeout_ms, char *why,
		 size_t len);
int vm_pause_wait(struct vm *vm, unsigned int timeout_ms, char *why, size_t len);
int vm_resume_wait(struct vm *vm, unsigned int timeout_ms, char *why, size_t len);

/*
 * vm_cpu_ns() - CPU time the VMM process has used, all threads, into *@ns.
 * Return: 0, or -errno when it cannot be read (the VMM is gone): unknown, not 0.
 */
int vm_cpu_ns(const struct vm *vm, uint64_t *ns);
/* vm_rss_bytes() - resident memory of the VMM process, into *@bytes. Return: 0 or -errno. */
int vm_rss_bytes(const struct vm *vm, uint64_t *bytes);
void vm_free(struct vm *vm);

/* vmm_binary() - the VMM program: $MSB_QEMU, else found in PATH. Return: newly allocated or NULL.
 */
char *vmm_binary(void);
/* The name users should look for when the VMM is missing, and the package providing it. */
#define VMM_PROGRAM "qemu-system-x86_64"
#define VMM_PACKAGE "qemu-system-x86"

#endif
