// SPDX-License-Identifier: Apache-2.0
/*
 * A persistent sandbox's life: start, stop, remove, and its status as users
 * see it. The database row says what the supervisor last recorded; the lock
 * in the sandbox directory says whether a supervisor is alive right now. A
 * row that says starting or running without a live supervisor is a crash
 * (kill -9, the host rebooted): it is shown, and recorded, as crashed.
 */
#define _GNU_SOURCE
#include "sandbox/lifecycle.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "sandbox/create.h"
#include "sandbox/secrets.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* Beyond the grace: the agent's power-off, QMP quit, SIGKILL (supervisor.c's steps). */
#define STOP_SLACK_MS 10000

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool sbx_alive(const char *name)
{
	_cleanup_free_ char *dir = sbx_dir(name);
	_cleanup_close_ int dfd = dir ? open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;

	return dfd >= 0 && sbx_lock_held(dfd);
}

bool sbx_exists(const char *name)
{
	_cleanup_free_ char *dir = sbx_dir(name), *cfg = dir ? path_join(dir, "config.json") : NULL;

	return cfg && access(cfg, F_OK) == 0;
}

bool sbx_runs_command(const char *name)
{
	_cleanup_free_ char *dir = sbx_dir(name), *f = dir ? path_join(dir, SBX_MAIN_FILE) : NULL;

	return f && access(f, F_OK) == 0;
}

/* A row whose supervisor is gone cannot be starting or running. */
static void correct(struct db *db, struct sandbox_row *r)
{
	bool live_status =
		r->status && (!strcmp(r->status, "starting") || !strcmp(r->status, "running") ||
			      !strcmp(r->status, "paused"));

	if (!live_status || sbx_alive(r->name))
		return;
	free(r->status);
	r->status = strdup("crashed");
	if (!r->reason)
		r->reason = strdup("crashed");
	r->pid = 0;
	db_sandbox_set_status(db, r->name, "crashed", "crashed", NULL);
}

int sbx_get(const char *name, struct sandbox_row *row, struct msb_err **err)
{
	struct db *db = NULL;
	int r;

	memset(row, 0, sizeof(*row));
	if (db_open(&db, err) < 0)
		return -1;
	r = db_sandbox_get(db, name, row, err);
	if (r == 0)
		correct(db, row);
	db_close(db);
	if (r == 1 || (r == 0 && !sbx_exists(name))) {
		sandbox_row_free(row);
		return msb_err_set(err, ENOENT, "sandbox %s: not found", name);
	}
	return r < 0 ? -1 : 0;
}

int sbx_list(struct sandbox_row **rows, size_t *n, struct msb_err **err)
{
	struct db *db = NULL;
	int r;

	sbx_reap();
	if (db_open(&db, err) < 0)
		return -1;
	r = db_sandbox_list(db, rows, n, err);
	for (size_t i = 0; r == 0 && i < *n; i++)
		correct(db, &(*rows)[i]);
	db_close(db);
	return r;
}

int sbx_start(const char *name, unsigned int flags, struct sbx_boot_info *info,
	      struct msb_err **err)
{
	_cleanup_free_ char *dir = sbx_dir(name);
	_cleanup_close_ int dfd = -1, lock = -1;
	struct sbx_spec spec;
	int r;

	if (sbx_check_name(name, err) < 0)
		return -1;
	dfd = dir ? open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd < 0 || sbx_spec_load(name, &spec, NULL) < 0)
		return msb_err_set(err, ENOENT, "sandbox %s: not found", name);
	sbx_spec_free(&spec);
	lock = openat(dfd, SBX_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0)
		return msb_err_sys(err, errno, "sandbox %s: lock", name);
	r = sbx_lock_take(lock);
	if (r == -EAGAIN || r == -EACCES)
		return msb_err_set(err, EBUSY, "sandbox %s is already running or starting", name);
	if (r < 0)
		return msb_err_sys(err, -r, "sandbox %s: lock", name);
	return sbx_boot(name, flags, lock, info, err);
}

/* Waits until the supervisor let go of the lock. Return: true if it did within @ms. */
static bool wait_gone(const char *name, uint64_t ms)
{
	uint64_t until = mono_ms() + ms;

	while (sbx_alive(name)) {
		if (mono_ms() >= until)
			return false;
		usleep(20000);
	}
	return true;
}

int sbx_stop(const char *name, uint32_t timeout_s, bool force, struct msb_err **err)
{
	return sbx_stop_ms(name, (uint64_t)timeout_s * 1000, force, err);
}

int sbx_stop_ms(const char *name, uint64_t timeout_ms, bool force, struct msb_err **err)
{
	struct sandbox_row row;
	struct buf b = { 0 };
	int fd, r;

	if (timeout_ms > UINT32_MAX)
		timeout_ms = UINT32_MAX;
	if (sbx_get(name, &row, err) < 0)
		return -1;
	/* Already stopped: what was asked for is done (docker stop does the same). */
	if (!sbx_alive(name)) {
		sandbox_row_free(&row);
		return 0;
	}
	fd = sbx_connect(name, NULL);
	r = fd < 0  ? -ENOTCONN
	    : force ? proto_put_frame(&b, PROTO_KILL, 0, NULL, 0)
		    : proto_u32_encode(&b, PROTO_SHUTDOWN, 0, (uint32_t)timeout_ms);
	if (!r)
		r = write_all(fd, buf_head(&b), buf_size(&b));
	buf_free(&b);
	/* Still booting (no relay socket yet), or it does not listen: its supervisor is told
	 * directly. */
	if (r < 0 && row.pid > 0)
		kill((pid_t)row.pid, force ? SIGKILL : SIGTERM);
	if (!wait_gone(name, force ? 5000 : timeout_ms + STOP_SLACK_MS)) {
		if (row.pid > 0)
			kill((pid_t)row.pid, SIGKILL);
		if (!wait_gone(name, 5000)) {
			if (fd >= 0)
				close(fd);
			sandbox_row_free(&row);
			return msb_err_set(err, ETIMEDOUT, "sandbox %s did not stop", name);
		}
		/* Killed before it could say so itself. */
		{
			struct db *db = NULL;

			if (db_open(&db, NULL) == 0)
				db_sandbox_set_status(db, name, "stopped", "killed", NULL);
			db_close(db);
		}
	}
	if (fd >= 0)
		close(fd);
	sandbox_row_free(&row);
	return 0;
}

int sbx_remove(const char *name, bool force, struct msb_err **err)
{
	_cleanup_free_ char *dir = sbx_dir(name);
	_cleanup_close_ int dfd = -1, lock = -1;
	struct db *db = NULL;

	if (sbx_check_name(name, err) < 0)
		return -1;
	if (!dir)
		return msb_err_sys(err, ENOMEM, "sandbox %s", name);
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		/* No directory: a row may still be left. */
		struct sandbox_row row;
		int r;

		if (db_open(&db, err) < 0)
			return -1;
		r = db_sandbox_get(db, name, &row, NULL);
		if (r == 0) {
			sandbox_row_free(&row);
			db_sandbox_delete(db, name, NULL);
		}
		db_close(db);
		sbx_secrets_remove(name, false);
		return r == 0 ? 0 : msb_err_set(err, ENOENT, "sandbox %s: not found", name);
	}
	if (sbx_lock_held(dfd)) {
		if (!force)
			return msb_err_set(
				err, EBUSY,
				"sandbox %s is running (stop it first with 'msb stop %s', or "
				"use 'msb rm -f %s')",
				name, name, name);
		if (sbx_stop(name, 0, true, err) < 0)
			return -1;
	}
	lock = openat(dfd, SBX_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0 && errno == ENOENT) {
		/* An ephemeral sandbox's supervisor removed it as it stopped. */
		sbx_forget(name);
		return 0;
	}
	if (lock < 0 || sbx_lock_take(lock) < 0)
		return msb_err_set(err, EBUSY, "sandbox %s was started again meanwhile", name);
	{
		/* Its secrets' values go with it; an unreadable spec may have had some too. */
		struct sbx_spec spec;
		bool stored = true, keyring = true;

		if (sbx_spec_load(name, &spec, NULL) == 0) {
			stored = spec.net.secrets_store != NULL;
			keyring = stored && !strcmp(spec.net.secrets_store, "keyring");
			sbx_spec_free(&spec);
		}
		rm_rf(dir);
		sbx_forget(name);
		if (stored)
			sbx_secrets_remove(name, keyring);
	}
	return 0;
}

int sbx_ask(const char *name, uint16_t type, const char *payload, json_t **out,
	    struct msb_err **err)
{
	_cleanup_close_ int fd = -1;
	struct buf rx = { 0 }, tx = { 0 };
	json_t *o = NULL;
	char msg[512] = "";
	int r;

	*out = NULL;
	if (!sbx_alive(name))
		return msb_err_set(err, EINVAL, "sandbox %s is not running", name);
	fd = sbx_connect(name, err);
	if (fd < 0)
		return -1;
	r = proto_put_frame(&tx, type, 0, payload, payload ? strlen(payload) : 0);
	if (!r)
		r = write_all(fd, buf_head(&tx), buf_size(&tx));
	buf_free(&tx);
	if (r < 0)
		return msb_err_set(err, EIO, "sandbox %s: not answering", name);
	for (;;) {
		struct proto_frame f;
		uint8_t *p = buf_tail(&rx, 65536);
		ssize_t k;

		if (!p)
			break;
		k = read(fd, p, 65536);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		buf_commit(&rx, (size_t)k);
		r = proto_parse(&rx, &f);
		if (r < 0)
			break;
		if (r == 0)
			continue;
		if (f.type == type)
			o = json_loadb((const char *)f.payload, f.len, 0, NULL);
		else if (f.type == PROTO_ERROR)
			proto_error_decode(f.payload, f.len, msg, sizeof(msg));
		break;
	}
	buf_free(&rx);
	if (!o)
		return msb_err_set(err, EIO, "sandbox %s: %s", name, *msg ? msg : "not answering");
	if (json_is_string(json_object_get(o, "error"))) {
		msb_err_set(err, EINVAL, "%s", json_string_value(json_object_get(o, "error")));
		json_decref(o);
		return -1;
	}
	*out = o;
	return 0;
}

static int ctl_simple(const char *name, const char *op, struct msb_err **err)
{
	_cleanup_free_ char *req = NULL;
	json_t *o = json_pack("{s:s}", "op", op), *reply = NULL;
	int r;

	req = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!req)
		return msb_err_sys(err, ENOMEM, "sandbox %s", name);
	if (!sbx_exists(name))
		return msb_err_set(err, ENOENT, "sandbox %s: not found", name);
	r = sbx_ask(name, PROTO_CTL, req, &reply, err);
	json_decref(reply);
	return r;
}

int sbx_pause(const char *name, struct msb_err **err)
{
	return ctl_simple(name, "pause", err);
}

int sbx_resume(const char *name, struct msb_err **err)
{
	return ctl_simple(name, "resume", err);
}
