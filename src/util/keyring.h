/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The desktop's Secret Service keyring through secret-tool(1): what msb keeps
 * there (registry passwords, sandboxes' secrets) travels on the tool's stdin
 * and stdout, never on argv.
 */
#ifndef MSB_UTIL_KEYRING_H
#define MSB_UTIL_KEYRING_H

#include <stdbool.h>
#include <stddef.h>

/*
 * keyring_available() - secret-tool is installed and a D-Bus session is
 * there (a desktop, or a test's own bus); MSB_NO_KEYRING turns it off.
 */
bool keyring_available(void);

/*
 * keyring_store() - store @secret (no newline in it) under the attributes
 * service=@service and @attr=@value, replacing what was there.
 * Return: 0, or -EIO when secret-tool failed, or -errno.
 */
int keyring_store(const char *service, const char *attr, const char *value, const char *label,
		  const char *secret);

/*
 * keyring_lookup() - the secret stored under those attributes, at most @max
 * bytes. Return: 0 and a newly allocated *@out (the caller wipes and frees
 * it), -ENOENT when there is none, or -errno.
 */
int keyring_lookup(const char *service, const char *attr, const char *value, size_t max,
		   char **out);

/* keyring_clear() - forget it (best effort). Return: 0, or -EIO / -errno. */
int keyring_clear(const char *service, const char *attr, const char *value);

#endif
