/* SPDX-License-Identifier: Apache-2.0 */
/* A read cursor over untrusted bytes (shared with agentd): protocol frames, DNS messages. */
#ifndef MSB_UTIL_RD_H
#define MSB_UTIL_RD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Once @bad is set every read fails: callers check once, at the end. */
struct rd {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

/* The next @k bytes, or NULL (and @bad) when fewer are left. */
static inline const uint8_t *rd_take(struct rd *r, size_t k)
{
	const uint8_t *p;

	if (r->bad || k > r->n - r->off) {
		r->bad = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += k;
	return p;
}

#endif
