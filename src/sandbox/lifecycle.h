/* SPDX-License-Identifier: Apache-2.0 */
/* A persistent sandbox's life: status, start, stop, remove. */
#ifndef MSB_SANDBOX_LIFECYCLE_H
#define MSB_SANDBOX_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sandbox/sandbox.h"
#include "store/db.h"
#include "util/err.h"

/* sbx_alive() - is a supervisor running this sandbox now (its lock held)? */
bool sbx_alive(const char *name);

/* sbx_exists() - does the sandbox (its directory and config) exist? */
bool sbx_exists(const char *name);

/*
 * sbx_runs_command() - does the sandbox's current (or last) run have its
 * spec's command as main session (msb run), rather than nothing (msb
 * create, msb start)? The supervisor says so in SBX_MAIN_FILE.
 */
bool sbx_runs_command(const char *name);

/*
 * sbx_get() - the sandbox's row, its status corrected by liveness (a run
 * without a live supervisor is "crashed", and recorded so).
 * Return: 0, or -1 with @err ("sandbox N: not found").
 */
int sbx_get(const char *name, struct sandbox_row *row, struct msb_err **err);

/* sbx_list() - every sandbox, after reaping the dead ephemeral ones, statuses corrected. */
int sbx_list(struct sandbox_row **rows, size_t *n, struct msb_err **err);

/*
 * sbx_start() - boot a stopped (or crashed) sandbox and wait until it is
 * ready. Two at once: one boots, the other is told it is already starting.
 * Return: 0, or -1 with @err.
 */
int sbx_start(const char *name, unsigned int flags, struct sbx_boot_info *info,
	      struct msb_err **err);

/*
 * sbx_stop() - graceful: processes get SIGTERM, then SIGKILL after
 * @timeout_s, the guest syncs and powers off; @force: the VM is killed at
 * once. Waits until the supervisor is gone (killing it if it does not go).
 * A sandbox that is not running is already where it was asked to be.
 * Return: 0, or -1 with @err (not found, did not stop, ...).
 */
int sbx_stop(const char *name, uint32_t timeout_s, bool force, struct msb_err **err);
/* sbx_stop_ms() - sbx_stop() with the grace in milliseconds (at most UINT32_MAX). */
int sbx_stop_ms(const char *name, uint64_t timeout_ms, bool force, struct msb_err **err);

/*
 * sbx_remove() - delete the sandbox: directory, disk, logs, row. A running
 * one is refused unless @force, which kills it first.
 */
int sbx_remove(const char *name, bool force, struct msb_err **err);

/*
 * sbx_ask() - send a running sandbox's supervisor one request (INFO: no
 * payload; CTL: a JSON object's text) and wait for its JSON answer. A CTL
 * answer with "error" becomes @err.
 * Return: 0 and a new reference in *@out, or -1 with @err.
 */
int sbx_ask(const char *name, uint16_t type, const char *payload, json_t **out,
	    struct msb_err **err);

/* sbx_pause(), sbx_resume() - stop a running sandbox's vCPUs in place, and let them go on. */
int sbx_pause(const char *name, struct msb_err **err);
int sbx_resume(const char *name, struct msb_err **err);

#endif
