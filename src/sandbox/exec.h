/* SPDX-License-Identifier: Apache-2.0 */
/* Running one command in a sandbox over its relay socket, wired to local stdio. */
#ifndef MSB_SANDBOX_EXEC_H
#define MSB_SANDBOX_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"
#include "util/err.h"

/*
 * struct sbx_exec - what to run and how. Strings are borrowed.
 * @forward_stdin: read local stdin and forward it (EOF closes the
 *                 command's stdin); when false the command sees EOF at once.
 */
struct sbx_exec {
	char **argv;
	char **env;
	const char *cwd;
	const char *user;
	bool tty;
	bool mkcwd;
	bool forward_stdin;
	/* The caller's stdout / stderr was closed: output for it is an error (EBADF). */
	bool stdout_closed, stderr_closed;
	bool main; /* the sandbox's main command: the sandbox ends when it does */
	/* With a tty: these keys typed in a row detach (the command runs on). */
	uint8_t detach_keys[16];
	size_t ndetach_keys;
	uint64_t timeout_ms;
	uint32_t nrlimits;
	struct proto_rlimit rlimits[PROTO_MAX_RLIMITS];
};

/*
 * sbx_exec_rlimits() - a session's resource limits: the sandbox's (@spec,
 * its --rlimit strings), then the session's own @own over them (one entry
 * per resource, the session's winning). Return: 0, -EINVAL (an entry of
 * @spec does not parse) or -E2BIG (more than PROTO_MAX_RLIMITS resources).
 */
int sbx_exec_rlimits(char *const *spec, const struct proto_rlimit *own, uint32_t nown,
		     struct proto_rlimit *out, uint32_t *nout);

/*
 * sbx_exec_run() - run @x on the relay connection @fd with local fds 0/1/2.
 * Ctrl-C and other terminating signals are forwarded; with a tty the local
 * terminal is in raw mode and window-size changes follow.
 * Return: 0 and the command's exit status (128+N if killed by signal N) in
 * *@status, or -1 with @err (its exit field says 125, 126 or 127).
 */
int sbx_exec_run(int fd, const struct sbx_exec *x, int *status, struct msb_err **err);

/* What *status holds when the user detached with the detach keys. */
#define SBX_EXEC_DETACHED (-1)

/*
 * sbx_parse_detach_keys() - docker's --detach-keys: comma-separated keys,
 * each "ctrl-X" (X a letter or one of @[\]^_) or one character; default
 * "ctrl-]". Return: 0, or -EINVAL.
 */
int sbx_parse_detach_keys(const char *s, uint8_t *out, size_t cap, size_t *len);

#endif
