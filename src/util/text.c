// SPDX-License-Identifier: Apache-2.0
/* Printable-text filter for bytes that came from guests, registries or archives. */
#include "util/text.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/*
 * Length of the valid UTF-8 sequence at @s (at most @n bytes), or 0 if
 * invalid (or cut short by @n). C1 controls count as invalid unless @c1.
 */
static size_t utf8_seq(const uint8_t *s, size_t n, bool c1)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond Unicode, and C1 controls */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (!c1 && cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

/* The length a sequence starting with @b would have, or 0 for a byte that cannot start one. */
static size_t lead_len(uint8_t b)
{
	return b < 0x80			? 1
	       : b >= 0xc2 && b <= 0xdf ? 2
	       : b >= 0xe0 && b <= 0xef ? 3
	       : b >= 0xf0 && b <= 0xf4 ? 4
					: 0;
}

size_t utf8_prefix(const void *p, size_t n, size_t *tail)
{
	const uint8_t *s = p;
	size_t i = 0;

	*tail = 0;
	while (i < n) {
		size_t k = utf8_seq(s + i, n - i, true), want = lead_len(s[i]);

		if (k) {
			i += k;
			continue;
		}
		/* Cut short at the very end, and valid so far: the rest may come. */
		if (want && i + want > n) {
			bool ok = true;

			for (size_t j = i + 1; j < n && ok; j++)
				ok = (s[j] & 0xc0) == 0x80;
			if (ok) {
				*tail = n - i;
				return i;
			}
		}
		return (size_t)-1;
	}
	return i;
}

int utf8_lossy(const void *p, size_t n, struct buf *out)
{
	static const uint8_t replacement[] = { 0xef, 0xbf, 0xbd };
	const uint8_t *s = p;

	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(s + i, n - i, true);
		int r = k ? buf_append(out, s + i, k) : buf_append(out, replacement, 3);

		if (r < 0)
			return r;
		i += k ? k : 1;
	}
	return 0;
}

void text_sanitize(char *dst, size_t cap, const void *src, size_t len)
{
	const uint8_t *s = src;
	size_t i = 0, o = 0;

	if (!cap)
		return;
	while (i < len && o + 1 < cap) {
		size_t k = utf8_seq(s + i, len - i, false);

		if (k == 0 || (k == 1 && (s[i] < 0x20 || s[i] == 0x7f))) {
			dst[o++] = '?';
			i++;
			continue;
		}
		if (o + k >= cap)
			break;
		memmove(dst + o, s + i, k);
		o += k;
		i += k;
	}
	dst[o] = '\0';
}

void text_sanitize_inplace(char *s)
{
	/* Output never grows: every input byte yields at most one output byte. */
	text_sanitize(s, strlen(s) + 1, s, strlen(s));
}
