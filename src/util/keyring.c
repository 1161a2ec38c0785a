// SPDX-License-Identifier: Apache-2.0
/* The Secret Service keyring through secret-tool: secrets on its stdin and stdout only. */
#define _GNU_SOURCE
#include "util/keyring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"

bool keyring_available(void)
{
	_cleanup_free_ char *tool = find_in_path("secret-tool");
	const char *bus = getenv("DBUS_SESSION_BUS_ADDRESS");

	return tool && bus && *bus && !getenv("MSB_NO_KEYRING");
}

int keyring_store(const char *service, const char *attr, const char *value, const char *label,
		  const char *secret)
{
	char *argv[] = { "secret-tool",	  "store",	"--label",     (char *)label, "service",
			 (char *)service, (char *)attr, (char *)value, NULL };
	int r = spawn_io(argv, secret, NULL, 0);

	return r < 0 ? r : r ? -EIO : 0;
}

int keyring_lookup(const char *service, const char *attr, const char *value, size_t max, char **out)
{
	char *argv[] = { "secret-tool", "lookup",      "service", (char *)service,
			 (char *)attr,	(char *)value, NULL };
	char *buf = malloc(max + 2);
	size_t n;
	int r;

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	r = spawn_io(argv, NULL, buf, max + 2);
	n = strlen(buf);
	if (r != 0 || n > max) {
		explicit_bzero(buf, max + 2);
		free(buf);
		return r < 0 ? r : r == 1 ? -ENOENT : n > max ? -EFBIG : -EIO;
	}
	/* secret-tool ends what it prints with a newline when it goes to a terminal only. */
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	*out = buf;
	return 0;
}

int keyring_clear(const char *service, const char *attr, const char *value)
{
	char *argv[] = { "secret-tool", "clear",       "service", (char *)service,
			 (char *)attr,	(char *)value, NULL };
	int r = spawn_io(argv, NULL, NULL, 0);

	return r < 0 ? r : r ? -EIO : 0;
}
