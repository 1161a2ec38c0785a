// SPDX-License-Identifier: Apache-2.0
/* Base64 (RFC 4648, with padding): registry Basic auth, exec.log's non-UTF-8 output. */
#include "util/b64.h"

#include <stdlib.h>
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const void *p, size_t n)
{
	const unsigned char *s = p;
	char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
			     (i + 2 < n ? s[i + 2] : 0);

		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

long b64_decode(const char *s, unsigned char *out, size_t cap)
{
	unsigned v = 0;
	int bits = 0;
	size_t n = 0;

	for (; *s && *s != '='; s++) {
		const char *c = strchr(b64, *s);

		if (!c || !*s)
			return -1;
		v = v << 6 | (unsigned)(c - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -1;
			out[n++] = (unsigned char)(v >> bits);
		}
	}
	while (*s == '=')
		s++;
	return *s ? -1 : (long)n;
}
