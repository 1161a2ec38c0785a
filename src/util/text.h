/* SPDX-License-Identifier: Apache-2.0 */
/* Making untrusted text safe to print on a terminal (shared with agentd). */
#ifndef MSB_UTIL_TEXT_H
#define MSB_UTIL_TEXT_H

#include <stddef.h>

#include "util/buf.h"

/*
 * text_sanitize() - copy @len bytes of @src into @dst (at most @cap - 1,
 * NUL-terminated), replacing C0 controls, DEL, C1 controls and invalid UTF-8
 * with '?', so that a terminal shows the text and obeys none of it.
 */
void text_sanitize(char *dst, size_t cap, const void *src, size_t len);

/* text_sanitize_inplace() - the same on a NUL-terminated string. */
void text_sanitize_inplace(char *s);

/*
 * utf8_prefix() - the length of the longest prefix of @p that is valid
 * UTF-8; *@tail gets the length (1-3) of a sequence cut short at the very
 * end, which more bytes may complete. Return: (size_t)-1 when an invalid
 * sequence comes before the end.
 */
size_t utf8_prefix(const void *p, size_t n, size_t *tail);

/* utf8_lossy() - append @n bytes to @out as UTF-8, each invalid byte as U+FFFD. Return: 0 or
 * -ENOMEM. */
int utf8_lossy(const void *p, size_t n, struct buf *out);

#endif
