/* SPDX-License-Identifier: Apache-2.0 */
/* A string -> size_t hash map (open addressing; keys are copied). */
#ifndef MSB_UTIL_STRMAP_H
#define MSB_UTIL_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct strmap {
	struct strmap_slot *slots;
	size_t cap, len;
};

/* strmap_put() - set @key to @val. Return: 0 or -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, size_t val);
/* strmap_get() - Return: true and the value in *@val if @key is present. */
bool strmap_get(const struct strmap *m, const char *key, size_t *val);
void strmap_free(struct strmap *m);

#endif
