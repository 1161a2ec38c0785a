// SPDX-License-Identifier: Apache-2.0
/*
 * The pin set: (name, address, expiry) triples from this sandbox's own DNS
 * answers, looked up by address when a connection starts.
 *
 * DOC: Theory of Operation
 * A domain rule ("allow@good.test") cannot match a packet by itself: packets
 * carry addresses, and the guest could claim any name. So the DNS side of the
 * stack pins every address its answer for a name carried, and the policy
 * asks "is this destination pinned to a name the rule matches?". Which name
 * to pin is the stack's choice; it should be the name the guest asked for
 * (the one the policy let through), not the targets of CNAMEs along the way.
 *
 * The set is a fixed slot table of PINS_MAX entries with a free list, and a
 * power-of-two array of hash chains keyed by address; the hash is seeded so
 * that a guest steering answers (a domain it controls) cannot aim them all at
 * one chain, and a chain is bounded by PINS_MAX anyway. Nothing grows past
 * the table: a full set drops expired pins, then evicts the pin nearest to
 * its expiry (a scan of the table, microseconds, paid only while full).
 * One address holds at most PINS_PER_ADDR names, so the cost of a verdict is
 * bounded however many names a zone aims at one address.
 * Expiry is lazy: lookups skip dead pins, pins_expire() reclaims them.
 */
#include "net/pins.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PINS_BUCKETS 8192u /* a power of two, twice PINS_MAX */
#define NIL	     UINT32_MAX

_Static_assert((PINS_BUCKETS & (PINS_BUCKETS - 1)) == 0, "buckets must be a power of two");
_Static_assert(PINS_MAX < NIL, "slot indices must fit below NIL");

/*
 * struct pin - one slot.
 * @ip:      the pinned address
 * @expires: first instant (ms) at which the pin no longer counts
 * @name:    lowercase, no trailing dot; NULL while the slot is free
 * @next:    next slot in the hash chain, or in the free list
 */
struct pin {
	struct ipaddr ip;
	uint64_t expires;
	char *name;
	uint32_t next;
};

void pins_init(struct pins *p, uint64_t seed)
{
	memset(p, 0, sizeof(*p));
	p->seed = seed;
}

/* mix64() - the splitmix64 finaliser: every input bit reaches every output bit. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* pin_hash() - the chain of @ip. */
static uint32_t pin_hash(const struct pins *p, const struct ipaddr *ip)
{
	uint64_t hi, lo;

	memcpy(&hi, ip->b, sizeof(hi));
	memcpy(&lo, ip->b + 8, sizeof(lo));
	return (uint32_t)(mix64(mix64(p->seed ^ hi) ^ lo) & (PINS_BUCKETS - 1));
}

/*
 * pins_alloc() - the table, on first use.
 * Return: 0 or -ENOMEM.
 */
static int pins_alloc(struct pins *p)
{
	p->slot = calloc(PINS_MAX, sizeof(*p->slot));
	p->bucket = malloc(PINS_BUCKETS * sizeof(*p->bucket));
	if (!p->slot || !p->bucket) {
		free(p->slot);
		free(p->bucket);
		p->slot = NULL;
		p->bucket = NULL;
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < PINS_BUCKETS; i++)
		p->bucket[i] = NIL;
	for (uint32_t i = 0; i < PINS_MAX; i++)
		p->slot[i].next = i + 1 < PINS_MAX ? i + 1 : NIL;
	p->free = 0;
	p->count = 0;
	return 0;
}

/* pin_release() - put slot @i, already unlinked from its chain, on the free list. */
static void pin_release(struct pins *p, uint32_t i)
{
	free(p->slot[i].name);
	p->slot[i].name = NULL;
	p->slot[i].next = p->free;
	p->free = i;
	p->count--;
}

/* pin_remove() - unlink slot @i from its chain and free it. */
static void pin_remove(struct pins *p, uint32_t i)
{
	uint32_t *link = &p->bucket[pin_hash(p, &p->slot[i].ip)];

	while (*link != i)
		link = &p->slot[*link].next;
	*link = p->slot[i].next;
	pin_release(p, i);
}

void pins_expire(struct pins *p, uint64_t now_ms)
{
	if (!p->slot)
		return;
	for (uint32_t b = 0; b < PINS_BUCKETS; b++) {
		uint32_t *link = &p->bucket[b];

		while (*link != NIL) {
			uint32_t i = *link;

			if (p->slot[i].expires > now_ms) {
				link = &p->slot[i].next;
				continue;
			}
			*link = p->slot[i].next;
			pin_release(p, i);
		}
	}
}

/* pins_evict() - make room in a full table: the dead first, else the nearest expiry. */
static void pins_evict(struct pins *p, uint64_t now_ms)
{
	uint32_t victim = NIL;

	pins_expire(p, now_ms);
	if (p->free != NIL)
		return;
	for (uint32_t i = 0; i < PINS_MAX; i++)
		if (victim == NIL || p->slot[i].expires < p->slot[victim].expires)
			victim = i;
	pin_remove(p, victim);
}

/*
 * pin_name() - @name as pins hold it, in @out (PINS_NAME_MAX + 1 bytes):
 * lowercase, one trailing dot dropped.
 * Return: 0, or -EINVAL for an empty or overlong name or one with a byte
 * outside printable ASCII.
 */
static int pin_name(const char *name, char *out)
{
	size_t n = strnlen(name, PINS_NAME_MAX + 2);

	if (n && name[n - 1] == '.')
		n--;
	if (!n || n > PINS_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c <= 0x20 || c >= 0x7f)
			return -EINVAL;
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	out[n] = '\0';
	return 0;
}

int pins_add(struct pins *p, const char *name, const struct ipaddr *ip, uint32_t ttl_s,
	     uint64_t now_ms)
{
	char norm[PINS_NAME_MAX + 1];
	uint64_t life = ttl_s, expires;
	uint32_t h, i, same_ip = 0, oldest = NIL;
	char *dup;

	if (pin_name(name, norm) < 0)
		return -EINVAL;
	if (life < PINS_MIN_TTL_S)
		life = PINS_MIN_TTL_S;
	if (life > PINS_MAX_TTL_S)
		life = PINS_MAX_TTL_S;
	life *= 1000;
	expires = now_ms > UINT64_MAX - life ? UINT64_MAX : now_ms + life;

	if (!p->slot && pins_alloc(p) < 0)
		return -ENOMEM;
	h = pin_hash(p, ip);
	for (i = p->bucket[h]; i != NIL; i = p->slot[i].next) {
		if (!ip_equal(&p->slot[i].ip, ip))
			continue;
		if (strcmp(p->slot[i].name, norm) != 0) {
			same_ip++;
			if (oldest == NIL || p->slot[i].expires < p->slot[oldest].expires)
				oldest = i;
			continue;
		}
		if (p->slot[i].expires < expires)
			p->slot[i].expires = expires;
		return 0;
	}
	if (same_ip >= PINS_PER_ADDR)
		pin_remove(p, oldest);

	dup = strdup(norm);
	if (!dup)
		return -ENOMEM;
	if (p->free == NIL)
		pins_evict(p, now_ms);
	i = p->free;
	p->free = p->slot[i].next;
	p->slot[i].ip = *ip;
	p->slot[i].expires = expires;
	p->slot[i].name = dup;
	p->slot[i].next = p->bucket[h];
	p->bucket[h] = i;
	p->count++;
	return 0;
}

bool pins_lookup(const struct pins *p, const struct ipaddr *ip, uint64_t now_ms,
		 bool (*match)(const char *name, void *ctx), void *ctx)
{
	if (!p->slot)
		return false;
	for (uint32_t i = p->bucket[pin_hash(p, ip)]; i != NIL; i = p->slot[i].next) {
		const struct pin *e = &p->slot[i];

		if (e->expires > now_ms && ip_equal(&e->ip, ip) && match(e->name, ctx))
			return true;
	}
	return false;
}

size_t pins_count(const struct pins *p)
{
	return p->count;
}

void pins_free(struct pins *p)
{
	uint64_t seed = p->seed;

	if (p->slot)
		for (uint32_t i = 0; i < PINS_MAX; i++)
			free(p->slot[i].name);
	free(p->slot);
	free(p->bucket);
	pins_init(p, seed);
}
