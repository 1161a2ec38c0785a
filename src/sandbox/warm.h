/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Warm start: templates of booted guests, one per machine shape, under
 * <MSB_HOME>/templates/. A template is a guest saved as soon as agentd is
 * up and waiting for its configuration, before anything of a sandbox reached
 * it; every later start of the same shape restores it and then configures
 * it as a cold boot would. See docs/snapshots.md.
 */
#ifndef MSB_SANDBOX_WARM_H
#define MSB_SANDBOX_WARM_H

#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "vm/vm.h"

#define WARM_KEY_LEN 17 /* 16 hex digits and a NUL */

/*
 * warm_key() - the shape of the VM @c would start with VMM @qemu: the VMM,
 * kernel and initramfs (by identity: path, inode, size, time), accelerator,
 * vCPUs, memory, and every device with what the guest learns of it at boot
 * (a disk's size, format, mode and serial; shares; network and MTU).
 * Return: 0, or -errno (a file could not be examined: no warm start).
 */
int warm_key(const struct vm_config *c, const char *qemu, char key[WARM_KEY_LEN]);

/*
 * warm_ram_mapped() - MSB_WARM_RAM=map: a template's RAM is a file its clones
 * map privately, rather than part of its state (see docs/snapshots.md).
 */
bool warm_ram_mapped(void);

/* warm_wanted() - neither MSB_WARM=0 nor a shape warm start cannot serve (a disk image root). */
bool warm_wanted(const struct vm_config *c);

/*
 * warm_open() - the template for @key: its state, and in *@ram (allocated)
 * the file to map the guest's RAM from privately, or NULL when the RAM is in
 * the state. Its checksum is being verified in the background meanwhile:
 * warm_verified() with *@check says how that went before the template is used.
 * Return: an fd at the state's start, -ENOENT when there is none, or another
 * -errno with @why.
 */
struct warm_check;
int warm_open(const char *key, char **ram, struct warm_check **check, char *why, size_t len);
/*
 * warm_verified() - wait for the check warm_open() started and free it.
 * Return: 0, or -EBADMSG with @why (a damaged template, which is removed).
 */
int warm_verified(struct warm_check *check, char *why, size_t len);

/*
 * warm_make() - make @key's template for a VM like @real: boot one with
 * placeholder disks of the same sizes (and an empty share), wait for
 * agentd's READY, save it, publish it. Nothing of the sandbox reaches it.
 * Return: 0, or -errno with @why.
 */
int warm_make(const struct vm_config *real, const char *key, char *why, size_t len);

/*
 * warm_stale() - is the shape directory <MSB_HOME>/templates/KEY, of status
 * @st, stale: no start has used its template for 14 days (its time is the
 * last use)? Stale shapes go when another template is made, and with `msb prune`.
 */
bool warm_stale(const struct stat *st, time_t now);

#endif
