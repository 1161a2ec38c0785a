/* SPDX-License-Identifier: Apache-2.0 */
/* An OCI distribution client for one registry: manifests, blobs, token and basic auth. */
#ifndef MSB_IMAGE_REGISTRY_H
#define MSB_IMAGE_REGISTRY_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdint.h>

#include "image/ref.h"
#include "util/buf.h"
#include "util/err.h"

#define MANIFEST_MAX (4u << 20)
#define CONFIG_MAX   (16u << 20)
/* A transfer moving less than this, averaged over the stall window, is stalled. */
#define STALL_RATE	      1024
#define STALL_TIMEOUT_DEFAULT 30000 /* ms, registries.stall_timeout */
/* Manifests, configs, tokens and auth checks must complete within this many stall windows. */
#define SMALL_REQUEST_WINDOWS 4

struct reg_client;

/*
 * reg_open() - a client for @ref's registry using config.json @cfg
 * (insecure hosts, CA bundle, credentials). Return: 0 or -1 with @err.
 */
int reg_open(json_t *cfg, const struct image_ref *ref, struct reg_client **out,
	     struct msb_err **err);
void reg_close(struct reg_client *c);

/*
 * reg_set_cancel() - make every request of @c stop, with the error
 * "interrupted" (exit status 130), once @fd is readable (-1: never). The fd
 * is only polled, never read. Blob handles are cancelled by the caller's
 * multi loop.
 */
void reg_set_cancel(struct reg_client *c, int fd);

/*
 * reg_login_check() - verify @username/@password against @registry the way
 * `docker login` does (an authenticated GET /v2/). Return: 0 or -1 with @err.
 */
int reg_login_check(json_t *cfg, const char *registry, const char *username, const char *password,
		    struct msb_err **err);

/* Where the credentials came from ("" for anonymous), for messages. */
const char *reg_cred_source(const struct reg_client *c);

/*
 * reg_get_manifest() - GET /v2/<repo>/manifests/<object> accepting OCI and
 * Docker schema-2 manifests and indexes. @ctype gets the Content-Type.
 * Return: 0, or -1 with @err (unknown tag, auth failures, unreachable...).
 */
int reg_get_manifest(struct reg_client *c, const char *repo, const char *object, struct buf *body,
		     char *ctype, size_t ctype_len, struct msb_err **err);

/* reg_get_blob() - a small blob (an image config) into memory, at most @max bytes. */
int reg_get_blob(struct reg_client *c, const char *repo, const char *digest, size_t max,
		 struct buf *body, struct msb_err **err);

/*
 * reg_blob_handle() - a curl easy handle that streams blob @digest from
 * byte @offset to @write_cb, for the caller's multi handle. It aborts
 * itself when stalled (see registries.stall_timeout); reg_blob_status()
 * then says so. Free it with reg_blob_handle_free(). Return: the handle,
 * or NULL on ENOMEM.
 */
CURL *reg_blob_handle(struct reg_client *c, const char *repo, const char *digest, uint64_t offset,
		      curl_write_callback write_cb, void *ctx);
void reg_blob_handle_free(CURL *h);

/*
 * reg_blob_status() - judge a finished blob transfer. Return: 0 on success,
 * 1 when the server ignored the range (start over from 0), -EAGAIN when
 * the token expired (call reg_reauth() and retry), or -1 with @err.
 */
int reg_blob_status(struct reg_client *c, CURL *h, CURLcode res, uint64_t offset,
		    const char *digest, struct msb_err **err);
/* reg_reauth() - get a fresh token for @repo after a 401. Return: 0 or -1. */
int reg_reauth(struct reg_client *c, const char *repo, struct msb_err **err);

#endif
