// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the ClientHello peek (src/net/sni.c): the first bytes
 * a guest sends on a connection to an intercept port. Every prefix of the
 * input is tried too, as the bytes arrive piecemeal: a prefix never gives a
 * name the whole would not, and a name is always a plausible DNS name.
 */
#include <ctype.h>
#include <string.h>

#include "fuzz.h"
#include "net/sni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char whole[SNI_NAME_MAX + 1], part[SNI_NAME_MAX + 1];
	int rw = sni_peek(data, size, whole, sizeof(whole));

	CHECK(rw >= -1 && rw <= 1);
	if (rw == 1) {
		size_t n = strlen(whole);

		CHECK(n <= SNI_NAME_MAX);
		for (size_t i = 0; i < n; i++)
			CHECK(islower((unsigned char)whole[i]) ||
			      isdigit((unsigned char)whole[i]) || strchr("-._", whole[i]));
	}
	/* A prefix: incomplete (0), the same verdict, or already refused; never another name. */
	for (size_t cut = size > 64 ? size - 64 : 0; cut < size; cut++) {
		int rp = sni_peek(data, cut, part, sizeof(part));

		if (rp == 1 && rw == 1)
			CHECK(!strcmp(part, whole));
	}
	/* A short buffer for the name is refused, never overrun. */
	(void)sni_peek(data, size, part, 4);
	return 0;
}
