// SPDX-License-Identifier: Apache-2.0
/* sha256 over OpenSSL's EVP interface. */
#include "image/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>

int sha256_init(struct sha256 *h)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		h->ctx = NULL;
		return -ENOMEM;
	}
	h->ctx = c;
	return 0;
}

void sha256_update(struct sha256 *h, const void *p, size_t n)
{
	if (h->ctx && n)
		EVP_DigestUpdate(h->ctx, p, n);
}

void sha256_final(struct sha256 *h, char out[DIGEST_LEN])
{
	unsigned char md[32];
	unsigned int n = 0;

	out[0] = '\0';
	if (h->ctx && EVP_DigestFinal_ex(h->ctx, md, &n) == 1 && n == 32) {
		snprintf(out, DIGEST_LEN, "sha256:");
		for (int i = 0; i < 32; i++)
			snprintf(out + 7 + 2 * (size_t)i, 3, "%02x", md[i]);
	}
	sha256_free(h);
}

void sha256_free(struct sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

int sha256_digest(const void *p, size_t n, char out[DIGEST_LEN])
{
	struct sha256 h;
	int r = sha256_init(&h);

	if (r < 0)
		return r;
	sha256_update(&h, p, n);
	sha256_final(&h, out);
	return out[0] ? 0 : -EIO;
}
