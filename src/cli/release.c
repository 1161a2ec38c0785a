// SPDX-License-Identifier: Apache-2.0
/*
 * What this msb is: its release version and commit, and the Ed25519 public
 * key that `msb self update` trusts. The Makefile compiles this file alone
 * with these set (a normal build: scripts/version.sh, git's HEAD and
 * keys/release-ed25519.pub; `make dist`: DIST_VERSION and TRUST_KEY), so a
 * release differs from another in this object only.
 */
#include <stdbool.h>

#include "cli/cli.h"
#include "util/version.h"

#ifndef MSB_RELEASE_VERSION
#define MSB_RELEASE_VERSION MSB_VERSION
#endif
#ifndef MSB_RELEASE_COMMIT
#define MSB_RELEASE_COMMIT "unknown"
#endif
#ifndef MSB_RELEASE_TESTING
#define MSB_RELEASE_TESTING 0
#endif

const char msb_release_version[] = MSB_RELEASE_VERSION;
const char msb_release_commit[] = MSB_RELEASE_COMMIT;

#ifdef MSB_RELEASE_KEY
/* Exactly 32 bytes: fewer would be zero-filled, a key nobody signed with. */
_Static_assert(sizeof((const unsigned char[]){ MSB_RELEASE_KEY }) == 32,
	       "MSB_RELEASE_KEY must be 32 bytes (scripts/keybytes.sh)");
const unsigned char msb_release_key[32] = { MSB_RELEASE_KEY };
const bool msb_release_key_set = true;
#else
/* Built without the Makefile: no key, so no update verifies. */
const unsigned char msb_release_key[32];
const bool msb_release_key_set = false;
#endif

/* Only a test release (make RELEASE_TESTING=1) obeys MSB_TEST_UPDATE_KILL. */
const bool msb_release_testing = MSB_RELEASE_TESTING;
