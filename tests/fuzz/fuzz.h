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

#endif
