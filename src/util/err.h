/* SPDX-License-Identifier: Apache-2.0 */
/* Error objects for high-level calls: a message that callers extend with context. */
#ifndef MSB_UTIL_ERR_H
#define MSB_UTIL_ERR_H

#include <stdarg.h>

/*
 * struct msb_err - what failed and why.
 * @msg:    one line, no "msb: " prefix, no trailing newline
 * @code:   errno-style cause (positive), 0 when none applies
 * @exit:   process exit status the CLI should use (125 unless a more
 *          specific one is known, e.g. 126/127 for exec failures)
 */
struct msb_err {
	char *msg;
	int code;
	int exit;
};

/*
 * msb_err_set() - record a failure.
 * Does nothing if @err is NULL or already holds an error (the first, most
 * specific, cause wins). Return: always -1, so callers can `return msb_err_set(...)`.
 */
int msb_err_set(struct msb_err **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* msb_err_sys() - like msb_err_set() with ": strerror(code)" appended. */
int msb_err_sys(struct msb_err **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* msb_err_prefix() - add context in front: "ctx: old message". Return: -1. */
int msb_err_prefix(struct msb_err **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* msb_err_exit() - set the exit status the CLI reports for this error. */
void msb_err_exit(struct msb_err **err, int exit_code);

void msb_err_free(struct msb_err *err);

static inline void cleanup_errp(struct msb_err **e)
{
	msb_err_free(*e);
}
#define _cleanup_err_ __attribute__((cleanup(cleanup_errp)))

#endif
