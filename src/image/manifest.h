/* SPDX-License-Identifier: Apache-2.0 */
/* OCI / Docker schema-2 manifests, indexes and image configs: parsing untrusted JSON. */
#ifndef MSB_IMAGE_MANIFEST_H
#define MSB_IMAGE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/digest.h"
#include "util/err.h"

#define MT_OCI_INDEX	   "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST	   "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG	   "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_LIST	   "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"

#define MAX_LAYERS	  250
#define MAX_INDEX_ENTRIES 256

/*
 * jansson spends ~40 bytes on each value: 16 MiB of "[0,0,...]" would take
 * 320 MiB. Real manifests and configs hold a few thousand values.
 */
#define MAX_JSON_VALUES (256u << 10)

/*
 * json_values_bounded() - whether @body (JSON, not yet parsed) holds at most
 * @max values: every value or member after the first in a container follows
 * a comma, so commas and opening brackets outside strings bound them.
 */
bool json_values_bounded(const char *body, size_t n, size_t max);

enum layer_compression { COMP_NONE, COMP_GZIP, COMP_ZSTD };

struct descriptor {
	char media_type[128];
	char digest[DIGEST_LEN];
	int64_t size;
	/* index entries only */
	char os[32], arch[32], variant[32];
};

enum manifest_kind { KIND_INDEX, KIND_MANIFEST };

struct manifest {
	enum manifest_kind kind;
	/* KIND_INDEX */
	struct descriptor *entries;
	size_t nentries;
	/* KIND_MANIFEST */
	struct descriptor config;
	struct descriptor *layers;
	size_t nlayers;
};

/*
 * manifest_parse() - an index/manifest list or a manifest. @ctype is the
 * Content-Type the registry sent (may be empty: then the body decides).
 * Return: 0, or -1 with @err saying what is malformed or unsupported.
 */
int manifest_parse(const char *body, size_t n, const char *ctype, struct manifest *m,
		   struct msb_err **err);
void manifest_free(struct manifest *m);

/* layer_compression() - from a layer media type. Return: 0, or -1 if unsupported. */
int layer_compression(const char *media_type, enum layer_compression *out);

/* The platform msb runs guests for: linux/amd64, or linux/arm64/v8. */
void host_platform(const char **os, const char **arch, const char **variant);

/*
 * index_pick() - the entry for the host platform. Return: its index, or -1
 * with @err listing the platforms the image has.
 */
int index_pick(const struct manifest *idx, struct msb_err **err);

struct image_config {
	char **env;	   /* NULL-terminated; empty array when unset */
	char **cmd;	   /* NULL when unset */
	char **entrypoint; /* NULL when unset */
	char *workdir;	   /* NULL when unset */
	char *user;	   /* NULL when unset */
	char **diff_ids;   /* NULL-terminated */
	size_t ndiff_ids;
	char *os, *arch;
	char *created; /* RFC 3339, or NULL */
	char **labels; /* "KEY=VALUE", NULL-terminated; NULL when unset */
};

int image_config_parse(const char *body, size_t n, struct image_config *c, struct msb_err **err);
void image_config_free(struct image_config *c);

#endif
