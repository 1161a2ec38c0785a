/* SPDX-License-Identifier: Apache-2.0 */
/* Registry settings from <MSB_HOME>/config.json: TLS, insecure hosts, credential metadata. */
#ifndef MSB_IMAGE_REGCONFIG_H
#define MSB_IMAGE_REGCONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

/*
 * struct reg_settings - what config.json says about one registry host.
 * Strings are borrowed from the loaded config and live as long as it does.
 * @store:       "keyring" or "file" when `msb registry login` stored the secret
 * @password_env: environment variable holding the password
 * @secret_name:  file under <MSB_HOME>/secrets/registries/ holding the password
 */
struct reg_settings {
	bool insecure;
	const char *username;
	const char *store;
	const char *password_env;
	const char *secret_name;
};

/*
 * msbcfg_load() - read config.json (a missing file is an empty config).
 * Return: 0 and a new reference in *@out, or -1 with @err.
 */
int msbcfg_load(json_t **out, struct msb_err **err);

/* regcfg_host() - settings for @host ("ghcr.io", "localhost:5050"). */
void regcfg_host(json_t *cfg, const char *host, struct reg_settings *out);

/* regcfg_ca_certs() - registries.ca_certs, a PEM bundle added to the system roots, or NULL. */
const char *regcfg_ca_certs(json_t *cfg);

/*
 * regcfg_stall_timeout() - registries.stall_timeout ("30s", "2m"; at least
 * one second) in milliseconds, STALL_TIMEOUT_DEFAULT when unset.
 * Return: 0, or -1 with @err when the value is not a valid duration.
 */
int regcfg_stall_timeout(json_t *cfg, uint64_t *ms, struct msb_err **err);

/*
 * msbcfg_update() - read-modify-write config.json under a lock, atomically:
 * @fn edits the object in place. Return: 0 or -1 with @err.
 */
int msbcfg_update(int (*fn)(json_t *cfg, void *arg, struct msb_err **err), void *arg,
		  struct msb_err **err);

/* The keys under which a Docker Hub host may appear in configs. */
bool host_is_docker_hub(const char *host);

#endif
