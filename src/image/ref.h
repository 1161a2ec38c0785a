/* SPDX-License-Identifier: Apache-2.0 */
/* Image references as docker writes them: [registry[:port]/]path[:tag][@digest]. */
#ifndef MSB_IMAGE_REF_H
#define MSB_IMAGE_REF_H

#include <stdbool.h>
#include <stddef.h>

#define DOCKER_HUB     "docker.io"
#define DOCKER_HUB_API "registry-1.docker.io"

/*
 * struct image_ref - a parsed, normalised reference.
 * @registry:   "docker.io", "ghcr.io", "localhost:5050", "127.0.0.1:5000"
 * @repository: "library/alpine", "org/img"
 * @tag:        "latest" when neither tag nor digest was given; NULL with only a digest
 * @digest:     "sha256:<64 hex>" or NULL
 */
struct image_ref {
	char *registry;
	char *repository;
	char *tag;
	char *digest;
};

/*
 * ref_parse() - parse @s. Bare names mean Docker Hub's library/, default tag
 * "latest". Return: 0, or -EINVAL with a reason in @why.
 */
int ref_parse(const char *s, struct image_ref *out, char *why, size_t why_len);
void ref_free(struct image_ref *r);

/* "docker.io/library/alpine:latest" (tag and/or @digest). Return: newly allocated. */
char *ref_canonical(const struct image_ref *r);
/* What users type: "alpine:latest", "ghcr.io/org/img:v1". Return: newly allocated. */
char *ref_familiar(const struct image_ref *r);
/* The host to talk to: registry-1.docker.io for Docker Hub. */
const char *ref_api_host(const struct image_ref *r);
/* The tag or digest to ask the registry for. */
const char *ref_object(const struct image_ref *r);

/* digest_valid() - "sha256:" + 64 lowercase hex (the only algorithm msb accepts). */
bool digest_valid(const char *d);

#endif
