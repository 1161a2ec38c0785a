/* SPDX-License-Identifier: Apache-2.0 */
/* A string -> size_t hash map (open addressing; keys are copied; hashing is seeded per process). */
#ifndef MSB_UTIL_STRMAP_H
#define MSB_UTIL_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap {
	struct strmap_slot *slots;
	size_t cap, len;
	size_t key_bytes; /* bytes held by the copied keys, allocator overhead included */
};

/* strmap_put() - set @key to @val. Return: 0 or -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, size_t val);
/* strmap_get() - Return: true and the value in *@val if @key is present. */
bool strmap_get(const struct strmap *m, const char *key, size_t *val);
void strmap_free(struct strmap *m);

/*
 * Incremental hashing, for looking up every prefix of a string in one pass:
 * start with strmap_hash_init(), feed bytes with strmap_hash_step(); the
 * state after the first @len bytes of a key is what strmap_get_hashed()
 * takes. The seed is random per process, so registry data cannot choose
 * keys that all land in one probe sequence.
 */
uint64_t strmap_hash_init(void);

static inline uint64_t strmap_hash_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * 1099511628211ull; /* FNV-1a */
}

/*
 * strmap_get_hashed() - strmap_get() for the first @len bytes of @key, whose
 * hash state is @h. Keys are compared in full only when their hashes match.
 * Return: true and the value in *@val if present.
 */
bool strmap_get_hashed(const struct strmap *m, const char *key, size_t len, uint64_t h,
		       size_t *val);

/* strmap_bytes() - memory the map holds (slot table and keys), for callers that budget it. */
size_t strmap_bytes(const struct strmap *m);

#endif
