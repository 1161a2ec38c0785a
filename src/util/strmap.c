// SPDX-License-Identifier: Apache-2.0
/*
 * Open-addressing string map: FNV-1a from a per-process random basis, mixed
 * before it picks a slot, and linear probing. Slots keep each key's length
 * and full hash, so a probe compares strings only on a hash match.
 */
#define _GNU_SOURCE
#include "util/strmap.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* What malloc adds to each allocation, counted so that budgets are honest. */
#define ALLOC_OVERHEAD ((size_t)16)

struct strmap_slot {
	char *key;
	size_t len;
	uint64_t hash;
	size_t val;
};

static _Atomic uint64_t seed;

uint64_t strmap_hash_init(void)
{
	uint64_t s = atomic_load_explicit(&seed, memory_order_relaxed), r = 0, zero = 0;

	if (s)
		return s;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		struct timespec ts;

		/* Early boot without entropy: weaker, still not known in advance. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&ts;
	}
	r ^= 1469598103934665603ull;
	if (!r)
		r = 1;
	/* Every thread ends up with the first seed stored. */
	if (!atomic_compare_exchange_strong(&seed, &zero, r))
		r = zero;
	return r;
}

/* The slot index comes from all 64 bits of the state, not only its low bits. */
static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static uint64_t hash(const char *s, size_t n)
{
	uint64_t h = strmap_hash_init();

	for (size_t i = 0; i < n; i++)
		h = strmap_hash_step(h, (unsigned char)s[i]);
	return h;
}

static struct strmap_slot *find(const struct strmap *m, const char *key, size_t len, uint64_t h)
{
	size_t i = (size_t)mix(h) & (m->cap - 1);

	while (m->slots[i].key && (m->slots[i].hash != h || m->slots[i].len != len ||
				   memcmp(m->slots[i].key, key, len) != 0))
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
			*find(m, old.slots[i].key, old.slots[i].len, old.slots[i].hash) =
				old.slots[i];
	free(old.slots);
	return 0;
}

int strmap_put(struct strmap *m, const char *key, size_t val)
{
	size_t len = strlen(key);
	uint64_t h = hash(key, len);
	struct strmap_slot *s;

	/* keep the load factor under 1/2 */
	if ((m->len + 1) * 2 > m->cap && grow(m) < 0)
		return -ENOMEM;
	s = find(m, key, len, h);
	if (!s->key) {
		s->key = strndup(key, len);
		if (!s->key)
			return -ENOMEM;
		s->len = len;
		s->hash = h;
		m->len++;
		m->key_bytes += len + 1 + ALLOC_OVERHEAD;
	}
	s->val = val;
	return 0;
}

bool strmap_get_hashed(const struct strmap *m, const char *key, size_t len, uint64_t h, size_t *val)
{
	struct strmap_slot *s;

	if (!m->cap)
		return false;
	s = find(m, key, len, h);
	if (!s->key)
		return false;
	if (val)
		*val = s->val;
	return true;
}

bool strmap_get(const struct strmap *m, const char *key, size_t *val)
{
	size_t len = strlen(key);

	return strmap_get_hashed(m, key, len, hash(key, len), val);
}

size_t strmap_bytes(const struct strmap *m)
{
	return m->cap * sizeof(struct strmap_slot) + (m->cap ? ALLOC_OVERHEAD : 0) + m->key_bytes;
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}
