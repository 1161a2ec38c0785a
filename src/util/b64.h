/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 (RFC 4648, with padding). */
#ifndef MSB_UTIL_B64_H
#define MSB_UTIL_B64_H

#include <stddef.h>

/* b64_encode() - Return: newly allocated NUL-terminated text, or NULL. */
char *b64_encode(const void *p, size_t n);

/* b64_decode() - at most @cap bytes into @out. Return: bytes decoded, or -1 when malformed. */
long b64_decode(const char *s, unsigned char *out, size_t cap);

#endif
