// SPDX-License-Identifier: Apache-2.0
/* Growable byte queue used for frame assembly and output backlogs. */
#include "util/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(struct buf *b, size_t n)
{
	size_t live = b->len - b->off;
	size_t need, cap;
	uint8_t *p;

	if (b->cap - b->len >= n)
		return 0;
	/* Reclaim consumed space before growing. */
	if (b->off && b->cap - live >= n) {
		memmove(b->data, b->data + b->off, live);
		b->off = 0;
		b->len = live;
		return 0;
	}
	if (n > SIZE_MAX / 2 - live)
		return -ENOMEM;
	need = live + n;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	if (live)
		memcpy(p, b->data + b->off, live);
	free(b->data);
	b->data = p;
	b->cap = cap;
	b->off = 0;
	b->len = live;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	int r;

	if (!n)
		return 0;
	r = buf_reserve(b, n);
	if (r < 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

uint8_t *buf_tail(struct buf *b, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return NULL;
	return b->data + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
	if (n > b->cap - b->len)
		n = b->cap - b->len;
	b->len += n;
}

void buf_consume(struct buf *b, size_t n)
{
	size_t live = b->len - b->off;

	if (n >= live) {
		b->off = b->len = 0;
		return;
	}
	b->off += n;
}

void buf_clear(struct buf *b)
{
	b->off = b->len = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}
