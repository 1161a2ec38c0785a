// SPDX-License-Identifier: Apache-2.0
/* Open-addressing string map with FNV-1a hashing and linear probing. */
#include "util/strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strmap_slot {
	char *key;
	size_t val;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct strmap_slot *find(const struct strmap *m, const char *key)
{
	size_t i = (size_t)hash(key) & (m->cap - 1);

	while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

static int grow(struct strmap *m)
{
	struct strmap old = *m;

	m->cap = old.cap ? old.cap * 2 : 64;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots) {
		*m = old;
		return -ENOMEM;
	}
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].key)
			*find(m, old.slots[i].key) = old.slots[i];
	free(old.slots);
	return 0;
}

int strmap_put(struct strmap *m, const char *key, size_t val)
{
	struct strmap_slot *s;

	/* keep the load factor under 1/2 */
	if ((m->len + 1) * 2 > m->cap && grow(m) < 0)
		return -ENOMEM;
	s = find(m, key);
	if (!s->key) {
		s->key = strdup(key);
		if (!s->key)
			return -ENOMEM;
		m->len++;
	}
	s->val = val;
	return 0;
}

bool strmap_get(const struct strmap *m, const char *key, size_t *val)
{
	struct strmap_slot *s;

	if (!m->cap)
		return false;
	s = find(m, key);
	if (!s->key)
		return false;
	if (val)
		*val = s->val;
	return true;
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}
