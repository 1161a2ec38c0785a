/* SPDX-License-Identifier: Apache-2.0 */
/* A growable NULL-terminated vector of owned strings. */
#ifndef MSB_UTIL_STRV_H
#define MSB_UTIL_STRV_H

#include <stddef.h>

/* Zero-initialised is empty; v is NULL until the first push. */
struct strv {
	char **v;
	size_t n;
};

/* strv_push() - append a copy of @str. Return: 0 or -1 (out of memory). */
int strv_push(struct strv *s, const char *str);
/* strv_push_all() - append copies of every string of NULL-terminated @v. */
int strv_push_all(struct strv *s, char *const *v);
/*
 * strv_steal() - the NULL-terminated array (an empty one if nothing was
 * pushed), now the caller's; @s is empty afterwards. Return: NULL on ENOMEM.
 */
char **strv_steal(struct strv *s);
void strv_free(struct strv *s);

#endif
