/* SPDX-License-Identifier: Apache-2.0 */
/* Image archives: OCI image-layout tars and docker-archive tars, saved and loaded. */
#ifndef MSB_IMAGE_ARCHIVE_H
#define MSB_IMAGE_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "image/manifest.h"
#include "store/db.h"
#include "util/err.h"

/* The most members an archive may have, and the largest index.json / manifest.json. */
#define ARCHIVE_MAX_MEMBERS 4096
#define ARCHIVE_MAX_INDEX   (1u << 20)
/* The most images one archive may hold, and names one docker-archive image may have. */
#define ARCHIVE_MAX_IMAGES 64
#define ARCHIVE_MAX_NAMES  16
/* Longest member path accepted. */
#define ARCHIVE_PATH_MAX 1024

enum archive_format { ARCHIVE_OCI, ARCHIVE_DOCKER };

/*
 * struct archive_image - one image an archive's index names.
 * @names:   references (NULL-terminated; may be empty)
 * @desc:    OCI: the manifest (or index) descriptor
 * @config:  docker-archive: the config's member path
 * @layers:  docker-archive: the layers' member paths, bottom first
 */
struct archive_image {
	char **names;
	struct descriptor desc;
	char *config;
	char **layers;
	size_t nlayers;
};

/*
 * archive_member_path() - normalise a member path of an untrusted archive
 * into @out ("./a//b/" -> "a/b"). Return: 0, or -1 when it is empty,
 * absolute, too long for @cap bytes, or has a ".." component.
 */
int archive_member_path(const char *raw, char *out, size_t cap);

/*
 * archive_parse_oci_index() - an OCI image layout's index.json.
 * Return: 0 and *@n images in *@out (caller frees with archive_images_free()),
 * or -1 with @err saying what is malformed.
 */
int archive_parse_oci_index(const char *body, size_t len, struct archive_image **out, size_t *n,
			    struct msb_err **err);

/* archive_parse_docker_manifest() - a docker-archive's manifest.json; as above. */
int archive_parse_docker_manifest(const char *body, size_t len, struct archive_image **out,
				  size_t *n, struct msb_err **err);

void archive_images_free(struct archive_image *v, size_t n);

/*
 * archive_save() - write @n images to @path ("-": stdout) as @fmt. Layers are
 * regenerated from their squashfs images as uncompressed OCI tars, so the
 * saved manifests, configs and diff_ids are msb's own (stable from save to
 * save). A file is written to a temporary name next to @path and renamed
 * only when complete. Once @cancel_fd (-1: none) is readable the save stops,
 * removes what it wrote, and fails with "interrupted" (exit status 130).
 * Return: 0, or -1 with @err.
 */
int archive_save(const struct image_record *imgs, size_t n, const char *path,
		 enum archive_format fmt, int cancel_fd, struct msb_err **err);

/*
 * archive_load() - import every image of the archive at @path ("-": stdin),
 * either format, verified like a pull: every blob's sha256 and size, and
 * each layer's uncompressed digest against the config's diff_ids. Nothing
 * is recorded unless every image is complete, and layers this load made
 * are removed again on failure. @cancel_fd as for archive_save(): an
 * interrupted load leaves nothing either. Sparse members are refused, and
 * the members together may take at most the space free under cache/blobs
 * when the load starts, less a margin (256 MiB), and never over 1 TiB.
 * A name pinned to a digest (name@sha256:...) must be the image's manifest
 * or index digest.
 * Return: 0 and the loaded references, familiar, in *@loaded
 * (NULL-terminated, caller frees), or -1 with @err.
 */
int archive_load(struct db *db, const char *path, int cancel_fd, char ***loaded,
		 struct msb_err **err);

#endif
