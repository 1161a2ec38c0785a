// SPDX-License-Identifier: Apache-2.0
/* Error objects: creation, context prefixing and release. */
#define _GNU_SOURCE
#include "util/err.h"
#include "util/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int err_vset(struct msb_err **err, int code, const char *suffix, const char *fmt, va_list ap)
{
	struct msb_err *e;
	char *msg = NULL;

	if (!err || *err)
		return -1;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	if (vasprintf(&msg, fmt, ap) < 0) {
		free(e);
		return -1;
	}
	if (suffix) {
		char *full = NULL;

		if (asprintf(&full, "%s: %s", msg, suffix) >= 0) {
			free(msg);
			msg = full;
		}
	}
	/* Messages quote registries, archives and guests: keep them printable everywhere. */
	text_sanitize_inplace(msg);
	e->msg = msg;
	e->code = code;
	e->exit = 125;
	*err = e;
	return -1;
}

int msb_err_set(struct msb_err **err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(err, code, NULL, fmt, ap);
	va_end(ap);
	return -1;
}

int msb_err_sys(struct msb_err **err, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	va_start(ap, fmt);
	err_vset(err, code, strerror(code), fmt, ap);
	va_end(ap);
	return -1;
}

int msb_err_prefix(struct msb_err **err, const char *fmt, ...)
{
	char *ctx = NULL, *full = NULL;
	va_list ap;

	if (!err || !*err)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&ctx, fmt, ap) < 0)
		ctx = NULL;
	va_end(ap);
	if (ctx)
		text_sanitize_inplace(ctx);
	if (ctx && asprintf(&full, "%s: %s", ctx, (*err)->msg) >= 0) {
		free((*err)->msg);
		(*err)->msg = full;
	}
	free(ctx);
	return -1;
}

void msb_err_exit(struct msb_err **err, int exit_code)
{
	if (err && *err)
		(*err)->exit = exit_code;
}

void msb_err_free(struct msb_err *err)
{
	if (!err)
		return;
	free(err->msg);
	free(err);
}
