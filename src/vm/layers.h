/* SPDX-License-Identifier: Apache-2.0 */
/* Builds the guest's single read-only layer disk from cached layer images, without copying. */
#ifndef MSB_VM_LAYERS_H
#define MSB_VM_LAYERS_H

/* The size the guest sees of every layer disk (images past it get their own). */
#define VM_LAYER_DISK_BYTES (64ull << 30)

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/*
 * vm_layers_disk() - write @dir/layers.table and @dir/layers.vmdk, a VMDK
 * descriptor concatenating the table and @layers (bottom first) by
 * reference. The images are linked as @dir/layers/N so paths stay short.
 * Return: 0, the descriptor path in *@out and the files it refers to in
 * *@extents (NULL-terminated; both newly allocated), or -1.
 */
int vm_layers_disk(const char *dir, char *const *layers, size_t n, char **out, char ***extents,
		   struct msb_err **err);

/*
 * vm_vmdk_size() - the size the guest sees of the VMDK disk @path (a
 * descriptor of flat and zero extents). Return: 0 and *@out, or -errno.
 */
int vm_vmdk_size(const char *path, uint64_t *out);

#endif
