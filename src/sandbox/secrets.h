/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --secret: parsing, placeholders, where the values are kept, and how they
 * reach the supervisor.
 *
 * A secret's value never enters the spec (config.json), the database, a log,
 * argv or another process's environment. The spec keeps the variable's name,
 * its placeholder and its hosts; the value lives in the CLI that was given
 * it, in the secrets store of a persistent sandbox (the keyring, else a 0600
 * file), and, while the sandbox runs, in its supervisor (and the network
 * process it hands them to). The CLI passes the values to the supervisor it
 * starts through a pipe, SBX_SECRETS_FD.
 */
#ifndef MSB_SANDBOX_SECRETS_H
#define MSB_SANDBOX_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox/netspec.h"
#include "util/err.h"

/* Hosts of one secret, and headers it may be restricted to. */
#define SBX_SECRET_MAX_HOSTS   64
#define SBX_SECRET_MAX_HEADERS 16
/* The longest host pattern ("*." and a 253-byte name). */
#define SBX_HOST_PATTERN_MAX 256
/* The placeholder: SBX_PLACEHOLDER_PREFIX and 32 lowercase hex digits. */
#define SBX_PLACEHOLDER_LEN (sizeof(SBX_PLACEHOLDER_PREFIX) - 1 + 32)
/* The keyring's service attribute for sandboxes' secrets (attribute "sandbox" = the name). */
#define SBX_SECRETS_KEYRING_SERVICE "microsandbox-sandbox"

/*
 * sbx_host_pattern() - a --secret or --tls-bypass host: an exact name
 * ("api.example.com") or a suffix ("*.example.com", two labels at least),
 * the name syntax --net-rule takes. @out gets it in lower case without a
 * trailing dot (SBX_HOST_PATTERN_MAX bytes). Return: 0, or -EINVAL with a
 * reason in @why.
 */
int sbx_host_pattern(const char *s, char *out, size_t outlen, char *why, size_t len);

/*
 * sbx_host_matches() - does @host (any case, a trailing dot or not) match
 * @pattern (from sbx_host_pattern())? "*.example.com" matches example.com
 * and every name below it, as a --net-rule suffix does.
 */
bool sbx_host_matches(const char *pattern, const char *host);

/*
 * sbx_secret_parse() - one --secret: ENV=VALUE@HOSTS[;header=NAMES] or
 * ENV@HOSTS[;header=NAMES] (the value from this process's $ENV). HOSTS and
 * NAMES are comma lists; the value may hold '@' (the last one splits).
 * Appends to @n->secrets and the parallel array *@values (values owned,
 * wipe with sbx_secret_values_free(*@values, @n->nsecrets)); the same ENV
 * with the same value (and headers) again adds hosts. The placeholder is
 * left NULL (sbx_secrets_placeholders()). Messages name the variable, never
 * the value. Return: 0, or -EINVAL / -E2BIG / -ENOMEM with one line in @why.
 */
int sbx_secret_parse(struct sbx_net *n, char ***values, const char *arg, char *why, size_t len);

/* sbx_violation_parse() - block, block-and-log, block-and-terminate, passthrough. Return: 0 or
 * -EINVAL. */
int sbx_violation_parse(const char *s, enum sbx_violation *out);
/* sbx_violation_name() - the flag's word for @v. */
const char *sbx_violation_name(enum sbx_violation v);

/*
 * sbx_secrets_check() - what can only be judged once every flag is known: a
 * secret's variable also set by -e (@env, KEY=VALUE strings, may be NULL),
 * and a secret host the network policy lets the sandbox reach by no name
 * (--no-net with no --net-rule allowing it, a deny rule for it).
 * Return: 0, or -EINVAL with one line in @why.
 */
int sbx_secrets_check(const struct sbx_net *n, char *const *env, char *why, size_t len);

/*
 * sbx_secrets_placeholders() - give every secret of @n without one a fresh
 * random placeholder. Return: 0 or -errno.
 */
int sbx_secrets_placeholders(struct sbx_net *n);

/* sbx_secrets_file() - <MSB_HOME>/secrets/sandboxes/<name>. Return: newly allocated, or NULL. */
char *sbx_secrets_file(const char *name);

/*
 * sbx_secrets_save() - keep the values of persistent sandbox @name's secrets
 * ({ENV: value}): in the keyring when one is available, else in
 * sbx_secrets_file() (0600, directory 0700, written atomically). Sets
 * @n->secrets_store to "keyring" or "file". Return: 0 or -1 with @err.
 */
int sbx_secrets_save(const char *name, struct sbx_net *n, char *const *values,
		     struct msb_err **err);

/*
 * sbx_secrets_load() - the values sbx_secrets_save() kept, in the order of
 * @n->secrets. A store entry that is gone (or lacks a variable) is the error
 * "sandbox NAME: the values of its secrets are gone from STORE (recreate it
 * with --replace and --secret)". Return: 0 and *@values (wipe with
 * sbx_secret_values_free()), or -1 with @err.
 */
int sbx_secrets_load(const char *name, const struct sbx_net *n, char ***values,
		     struct msb_err **err);

/*
 * sbx_secrets_remove() - forget sandbox @name's values: the file, and with
 * @keyring the keyring's entry too. Best effort.
 */
void sbx_secrets_remove(const char *name, bool keyring);

/*
 * sbx_secrets_write_fd() - the @n values, as a u32 count then per value a
 * u32 length and the bytes (little endian), written to @fd (blocking).
 * Return: 0 or -errno.
 */
int sbx_secrets_write_fd(int fd, char *const *values, size_t n);

/*
 * sbx_secrets_read_fd() - what sbx_secrets_write_fd() wrote, read to the end
 * of @fd; exactly @n values of 1 to SBX_SECRET_MAX_VALUE bytes are accepted.
 * Return: 0 with *@values (NUL-terminated strings) and *@lens, both newly
 * allocated (sbx_secret_values_free(), free()), or -EPROTO / -errno.
 */
int sbx_secrets_read_fd(int fd, size_t n, char ***values, size_t **lens);

/* sbx_secret_values_free() - wipe and free @n values and the array. NULL is fine. */
void sbx_secret_values_free(char **v, size_t n);

/*
 * sbx_secrets_pending() - the values this process was given for sandbox
 * @name (borrowed: they must outlive its sbx_boot()), so that its first boot
 * takes them from here rather than from the store (an ephemeral sandbox has
 * none). sbx_create() calls it; NULL @name forgets.
 */
void sbx_secrets_pending(const char *name, char *const *values, size_t n);

/*
 * sbx_secrets_for_boot() - the values to hand sandbox @name's supervisor (the
 * pending ones, else the store's), and the names of its secrets' variables,
 * which the supervisor's environment must not carry (msb's own $ENV may hold
 * the value). Return: 0 with *@values (NULL when none), *@n and *@names
 * (NULL-terminated, newly allocated), or -1 with @err.
 */
int sbx_secrets_for_boot(const char *name, char ***values, size_t *n, char ***names,
			 struct msb_err **err);

#endif
