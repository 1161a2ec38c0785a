/* SPDX-License-Identifier: Apache-2.0 */
/* What every fuzz target shares: the libFuzzer entry point and invariant checks. */
#ifndef MSB_TESTS_FUZZ_H
#define MSB_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Always on, whatever NDEBUG says: a failed invariant is the finding. */
#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/* Messages msb may print: no C0 control character, no DEL. */
static inline void check_printable(const char *s)
{
	for (; *s; s++)
		CHECK((unsigned char)*s >= 0x20 && *s != 0x7f);
}

/*
 * How a target cuts its input into the pieces it feeds: @kind 0 all at once,
 * 1 one byte at a time, 2 @fixed bytes, 3 sizes drawn from @seed (1 to @mod).
 */
struct split {
	unsigned int kind;
	const uint8_t *seed;
	size_t nseed, at;
	size_t fixed, mod;
};

static inline size_t split_piece(struct split *s, size_t left)
{
	size_t n;

	switch (s->kind) {
	case 0:
		n = left;
		break;
	case 1:
		n = 1;
		break;
	case 2:
		n = s->fixed;
		break;
	default:
		n = s->nseed ? 1 + (size_t)s->seed[s->at++ % s->nseed] % s->mod : left;
		break;
	}
	return n < left ? n : left;
}

#endif
