/* SPDX-License-Identifier: Apache-2.0 */
/* Registry credentials: msb's own store, config.json, Docker's config, or anonymous. */
#ifndef MSB_IMAGE_AUTH_H
#define MSB_IMAGE_AUTH_H

#include <jansson.h>
#include <stdbool.h>

#include "util/err.h"

/*
 * struct reg_cred - credentials for one registry.
 * @source: where they came from ("keyring", "file", "env:VAR", "secret:NAME",
 *          "docker", "docker-credential-NAME", or "" for anonymous)
 */
struct reg_cred {
	char *username;
	char *password;
	char source[160];
};

/*
 * auth_resolve() - credentials for @host in the documented order: stored by
 * `msb registry login`, registries auth in config.json, Docker's config,
 * anonymous. Anonymous is success with NULL username. Return: 0 or -1.
 */
int auth_resolve(json_t *cfg, const char *host, struct reg_cred *out, struct msb_err **err);
void auth_cred_free(struct reg_cred *c);

/*
 * auth_login() - store @password for @host: in the Secret Service keyring
 * when one is running, else in a 0600 file; config.json gets the username
 * and where the secret is, never the secret. Return: 0 or -1.
 */
int auth_login(const char *host, const char *username, const char *password, const char **store,
	       struct msb_err **err);
/* auth_logout() - forget what auth_login() stored. Return: 0, or -1 (e.g. not logged in). */
int auth_logout(const char *host, struct msb_err **err);

/* One configured registry, for `msb registry ls`. */
struct reg_entry {
	char *host;
	char *username;
	char *source;
};
/* auth_list() - registries with credentials configured anywhere. Return: count or -1. */
int auth_list(json_t *cfg, struct reg_entry **out, struct msb_err **err);
void auth_list_free(struct reg_entry *e, int n);

/* b64_encode() and b64_decode() are in util/b64.h. */
#include "util/b64.h"

#endif
