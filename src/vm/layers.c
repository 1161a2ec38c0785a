// SPDX-License-Identifier: Apache-2.0
/*
 * The layer disk: QEMU's VMDK driver concatenates flat extents, so one
 * virtio-blk device carries every layer however many there are (microvm has
 * only 8 virtio-mmio slots), and the cached images are shared, not copied.
 */
#define _GNU_SOURCE
#include "vm/layers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/layers.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/le.h"

int vm_layers_disk(const char *dir, char *const *layers, size_t n, char **out, char ***extents,
		   struct msb_err **err)
{
	_cleanup_strv_ char **ext = NULL;
	_cleanup_free_ char *ldir = path_join(dir, "layers"),
			    *tpath = path_join(dir, "layers.table");
	_cleanup_free_ char *vpath = path_join(dir, "layers.vmdk");
	_cleanup_free_ uint8_t *table = calloc(1, LAYERS_TABLE_SIZE);
	_cleanup_fclose_ FILE *desc = NULL;
	_cleanup_free_ char *text = NULL;
	size_t text_len = 0;
	uint64_t off = LAYERS_TABLE_SIZE;
	int r;

	if (!ldir || !tpath || !vpath || !table)
		return msb_err_sys(err, ENOMEM, "layer disk");
	if (n == 0 || n > LAYERS_MAX)
		return msb_err_set(err, E2BIG, "an image may have 1 to %u layers, not %zu",
				   LAYERS_MAX, n);
	if (mkdir(ldir, 0700) < 0 && errno != EEXIST)
		return msb_err_sys(err, errno, "%s", ldir);
	ext = calloc(n + 2, sizeof(char *));
	if (!ext || !(ext[0] = strdup(tpath)))
		return msb_err_sys(err, ENOMEM, "layer disk");
	desc = open_memstream(&text, &text_len);
	if (!desc)
		return msb_err_sys(err, errno, "layer disk");
	/* No blank lines: QEMU's parser would read the next extent twice. */
	fprintf(desc, "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
		      "createType=\"twoGbMaxExtentFlat\"\n");
	fprintf(desc, "RW %u FLAT \"layers.table\" 0\n", LAYERS_TABLE_SIZE / 512);

	/* An 8-byte magic, not a string. */
	memcpy(table, LAYERS_MAGIC, 8); // NOLINT(bugprone-not-null-terminated-result)
	put_le32(table + 8, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		char name[64];
		struct stat st;
		uint64_t sectors;

		if (stat(layers[i], &st) < 0)
			return msb_err_sys(err, errno, "layer %s", layers[i]);
		if (st.st_size <= 0)
			return msb_err_set(err, EINVAL, "layer %s is empty", layers[i]);
		snprintf(name, sizeof(name), "layers/%zu", i);
		{
			_cleanup_free_ char *lp = path_join(dir, name);

			if (!lp)
				return msb_err_sys(err, ENOMEM, "layer disk");
			ext[i + 1] = strdup(lp);
			if (!ext[i + 1])
				return msb_err_sys(err, ENOMEM, "layer disk");
			unlink(lp);
			/*
			 * A hard link: the sandbox keeps its layers whatever happens
			 * to the cache (msb rmi), and a confined VMM needs no path
			 * into it. Across filesystems, a symlink has to do.
			 */
			if (link(layers[i], lp) < 0 &&
			    ((errno != EXDEV && errno != EPERM) || symlink(layers[i], lp) < 0))
				return msb_err_sys(err, errno, "%s", lp);
		}
		/* Extents are whole sectors; QEMU reads zeros past the end of a file. */
		sectors = ((uint64_t)st.st_size + 511) / 512;
		put_le64(table + 16 + i * 16, off);
		put_le64(table + 24 + i * 16, (uint64_t)st.st_size);
		fprintf(desc, "RW %llu FLAT \"%s\" 0\n", (unsigned long long)sectors, name);
		off += sectors * 512;
	}
	/*
	 * Every layer disk is the same size to the guest, whatever the image:
	 * a guest saved with one disk is restored with another (warm start), and
	 * its kernel read the size when it booted.
	 */
	if (off < VM_LAYER_DISK_BYTES)
		fprintf(desc, "RW %llu ZERO\n",
			(unsigned long long)((VM_LAYER_DISK_BYTES - off) / 512));
	if (fclose(steal_ptr(desc)) != 0)
		return msb_err_sys(err, ENOMEM, "layer disk");
	r = write_file_replace(tpath, table, LAYERS_TABLE_SIZE, 0600);
	if (!r)
		r = write_file_replace(vpath, text, text_len, 0600);
	if (r < 0)
		return msb_err_sys(err, -r, "%s", dir);
	*out = steal_ptr(vpath);
	*extents = steal_ptr(ext);
	return 0;
}

int vm_vmdk_size(const char *path, uint64_t *out)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[512];

	*out = 0;
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *end;
		unsigned long long sectors;

		if (strncmp(line, "RW ", 3) != 0)
			continue;
		errno = 0;
		sectors = strtoull(line + 3, &end, 10);
		if (errno || end == line + 3 || sectors > (UINT64_MAX - *out) / 512)
			return -EINVAL;
		*out += sectors * 512;
	}
	return 0;
}
