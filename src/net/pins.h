/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pin set: which addresses this sandbox's own DNS answers gave for which
 * names, each for a while after the answer, so that a domain rule can match
 * a destination address without trusting what the guest claims.
 */
#ifndef MSB_NET_PINS_H
#define MSB_NET_PINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"

/* At most this many (name, address) pins; adding one more evicts the nearest expiry. */
#define PINS_MAX 4096
/*
 * A pin lives at least PINS_MIN_TTL_S seconds, whatever the answer's TTL: a
 * TTL of 0 (common behind load balancers) must still let the connection that
 * follows the answer through, and runtimes that cache answers for a fixed
 * time (the JVM: 30 s) connect after the TTL has run out.
 */
#define PINS_MIN_TTL_S 30
/* ...and at most PINS_MAX_TTL_S, so a week-long TTL cannot keep an address forever. */
#define PINS_MAX_TTL_S 86400
/* Longest name (RFC 1035 text form, no trailing dot). */
#define PINS_NAME_MAX 253
/*
 * At most PINS_PER_ADDR names are pinned to one address (the one nearest its
 * expiry makes room): a verdict for an address then asks a rule about at most
 * that many names, however many names a zone points at one address.
 */
#define PINS_PER_ADDR 32

struct pin;

/*
 * struct pins - the pin set. Zero-initialised, it is an empty set (with hash
 * seed 0); pins_init() gives it a seed. Memory is allocated on the first
 * pins_add() and bounded by PINS_MAX.
 */
struct pins {
	struct pin *slot; /* PINS_MAX entries */
	uint32_t *bucket; /* heads of the hash chains, indices into @slot */
	uint32_t free;	  /* head of the free list */
	uint32_t count;	  /* pins in use */
	uint64_t seed;	  /* keys the hash, so that answers cannot be chosen to collide */
};

/*
 * pins_init() - an empty set whose hash is keyed by @seed (from getrandom() in
 * the stack). Not for a set that holds pins: pins_free() that one.
 */
void pins_init(struct pins *p, uint64_t seed);

/*
 * pins_add() - pin @ip to @name from @now_ms for @ttl_s seconds, clamped to
 * [PINS_MIN_TTL_S, PINS_MAX_TTL_S]. @name is compared as DNS does: case is
 * folded and one trailing dot dropped. Pinning an existing (name, address)
 * again keeps the later expiry. A full set first drops expired pins, then
 * the pin that would expire soonest.
 * Return: 0, -EINVAL (@name empty, longer than PINS_NAME_MAX or not
 * printable ASCII) or -ENOMEM.
 */
int pins_add(struct pins *p, const char *name, const struct ipaddr *ip, uint32_t ttl_s,
	     uint64_t now_ms);

/*
 * pins_lookup() - true when some name pinned to @ip, unexpired at @now_ms,
 * satisfies @match (called with the lowercase name and @ctx). A chain walk
 * of the hash bucket of @ip; expired pins are skipped, not removed.
 */
bool pins_lookup(const struct pins *p, const struct ipaddr *ip, uint64_t now_ms,
		 bool (*match)(const char *name, void *ctx), void *ctx);

/* pins_expire() - drop every pin whose life ended at or before @now_ms. */
void pins_expire(struct pins *p, uint64_t now_ms);

/* pins_count() - pins held, expired ones not yet dropped included. */
size_t pins_count(const struct pins *p);

/* pins_free() - drop every pin and the memory; @p is then an empty set with the same seed. */
void pins_free(struct pins *p);

#endif
