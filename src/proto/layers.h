/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The layer table at the start of the guest's layer disk: where each
 * read-only layer image lies on that one disk. Shared by msb and agentd.
 *
 * The disk is the 4 KiB table followed by the layer images, each starting
 * on a 512-byte boundary; msb builds it without copying (a VMDK descriptor
 * whose flat extents are the cached layer files), agentd maps each layer
 * with a read-only loop device.
 */
#ifndef MSB_PROTO_LAYERS_H
#define MSB_PROTO_LAYERS_H

#include <stdint.h>

#define LAYERS_MAGIC	  "MSBLAYR1"
#define LAYERS_TABLE_SIZE 4096u
#define LAYERS_MAX	  250u

struct layers_entry {
	uint64_t offset; /* bytes from the start of the disk, little-endian */
	uint64_t size;	 /* bytes of the image */
};

struct layers_table {
	char magic[8];
	uint32_t count; /* layers, bottom first */
	uint32_t reserved;
	struct layers_entry layer[LAYERS_MAX];
};

_Static_assert(sizeof(struct layers_entry) == 16, "layer entry is 16 bytes");
_Static_assert(sizeof(struct layers_table) <= LAYERS_TABLE_SIZE, "table fits its extent");

#endif
