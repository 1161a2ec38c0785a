/* SPDX-License-Identifier: Apache-2.0 */
/* Streaming sha256 producing OCI digests ("sha256:<hex>"). */
#ifndef MSB_IMAGE_DIGEST_H
#define MSB_IMAGE_DIGEST_H

#include <stddef.h>

#define DIGEST_LEN 72 /* "sha256:" + 64 hex + NUL, rounded */

struct sha256 {
	void *ctx;
};

int sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *p, size_t n);
/* sha256_final() - write the digest to @out and release the context. */
void sha256_final(struct sha256 *h, char out[DIGEST_LEN]);
void sha256_free(struct sha256 *h);
int sha256_digest(const void *p, size_t n, char out[DIGEST_LEN]);

#endif
