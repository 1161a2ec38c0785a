/* SPDX-License-Identifier: Apache-2.0 */
/* Making untrusted text safe to print on a terminal (shared with agentd). */
#ifndef MSB_UTIL_TEXT_H
#define MSB_UTIL_TEXT_H

#include <stddef.h>

/*
 * text_sanitize() - copy @len bytes of @src into @dst (at most @cap - 1,
 * NUL-terminated), replacing C0 controls, DEL, C1 controls and invalid UTF-8
 * with '?', so that a terminal shows the text and obeys none of it.
 */
void text_sanitize(char *dst, size_t cap, const void *src, size_t len);

/* text_sanitize_inplace() - the same on a NUL-terminated string. */
void text_sanitize_inplace(char *s);

#endif
