/* SPDX-License-Identifier: Apache-2.0 */
/* A growable byte queue: append at the tail, consume from the head. */
#ifndef MSB_UTIL_BUF_H
#define MSB_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

/*
 * struct buf - bytes [off, len) of @data are live.
 * Zero-initialised is an empty buffer. Shared by msb and agentd, so it uses
 * nothing beyond libc.
 */
struct buf {
	uint8_t *data;
	size_t off;
	size_t len;
	size_t cap;
};

static inline size_t buf_size(const struct buf *b)
{
	return b->len - b->off;
}

static inline uint8_t *buf_head(const struct buf *b)
{
	return b->data ? b->data + b->off : b->data; /* never NULL + 0 */
}

/* buf_reserve() - make room for @n more bytes at the tail. Return: 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t n);
/* buf_append() - copy @n bytes to the tail. Return: 0 or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
/* buf_tail() - pointer to @n writable bytes at the tail (commit with buf_commit). */
uint8_t *buf_tail(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
/* buf_consume() - drop @n bytes from the head (clamped to the size). */
void buf_consume(struct buf *b, size_t n);
void buf_clear(struct buf *b);
void buf_free(struct buf *b);

#endif
