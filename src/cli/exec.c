// SPDX-License-Identifier: Apache-2.0
/* msb exec and msb shell: a command in a persistent sandbox, from any terminal. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sbxflags.h"
#include "sandbox/exec.h"
#include "sandbox/lifecycle.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/parse.h"

/* A sandbox exec started gets this long to stop again afterwards (its processes' grace). */
#define EXEC_STOP_GRACE_S 10

enum { OPT_TIMEOUT = 256, OPT_RLIMIT, OPT_DETACH_KEYS };

struct exec_opts {
	bool tty, quiet;
	struct strv env;
	const char *workdir, *user, *detach_keys;
	uint64_t timeout_ms;
	uint32_t nrlimits;
	struct proto_rlimit rlimits[PROTO_MAX_RLIMITS];
};

static const struct option exec_longopts[] = {
	{ "tty", no_argument, NULL, 't' },
	{ "env", required_argument, NULL, 'e' },
	{ "workdir", required_argument, NULL, 'w' },
	{ "user", required_argument, NULL, 'u' },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "rlimit", required_argument, NULL, OPT_RLIMIT },
	{ "detach-keys", required_argument, NULL, OPT_DETACH_KEYS },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int exec_opt(struct exec_opts *o, int c, const char *arg)
{
	switch (c) {
	case 't':
		o->tty = true;
		return 0;
	case 'q':
		o->quiet = true;
		return 0;
	case 'e':
		return cli_add_env(&o->env, arg, "--env");
	case 'w':
		if (arg[0] != '/')
			return cli_error("invalid --workdir \"%s\" (use an absolute path)", arg);
		o->workdir = arg;
		return 0;
	case 'u':
		if (!*arg)
			return cli_error("invalid --user \"\" (use NAME, UID, or UID:GID)");
		o->user = arg;
		return 0;
	case OPT_TIMEOUT:
		return cli_duration("--timeout", arg, &o->timeout_ms, false);
	case OPT_RLIMIT:
		return cli_add_rlimit(o->rlimits, &o->nrlimits, arg);
	case OPT_DETACH_KEYS:
		o->detach_keys = arg;
		return 0;
	default:
		return EXIT_MSB;
	}
}

/* The sandbox's environment with the session's -e on top. */
static int merge_env(char **base, const struct strv *extra, struct strv *out)
{
	for (char **e = base; e && *e; e++) {
		size_t k = strcspn(*e, "=");
		bool over = false;

		for (size_t i = 0; i < extra->n && !over; i++)
			over = !strncmp(extra->v[i], *e, k) && extra->v[i][k] == '=';
		if (!over && strv_push(out, *e) < 0)
			return -1;
	}
	return strv_push_all(out, extra->v);
}

int cli_sandbox_up(const char *name, bool *started, struct msb_err **err)
{
	struct sbx_boot_info info;
	struct sandbox_row row;
	bool crashed;

	*started = false;
	if (sbx_alive(name))
		return 0;
	if (sbx_get(name, &row, err) < 0)
		return -1;
	crashed = !strcmp(row.status, "crashed");
	sandbox_row_free(&row);
	/* Not started behind the user's back: they should know it crashed. */
	if (crashed)
		return msb_err_set(err, EIO,
				   "sandbox %s crashed (see 'msb logs --source system %s'; "
				   "start it again with 'msb start %s')",
				   name, name, name);
	if (sbx_start(name, 0, &info, err) < 0)
		return -1;
	*started = true;
	return 0;
}

int cli_sandbox_down(const char *name, bool started, int r, struct msb_err **err)
{
	_cleanup_err_ struct msb_err *stop_err = NULL;

	if (!started)
		return r;
	if (sbx_stop(name, EXEC_STOP_GRACE_S, false, &stop_err) < 0 && r == 0) {
		*err = steal_ptr(stop_err);
		return -1;
	}
	return r;
}

/*
 * Runs @argv in @name. A stopped sandbox is started for the command and
 * stopped again afterwards, as `msb exec` promises.
 */
static int exec_in(const char *name, char **argv, const struct exec_opts *o, int *status,
		   struct msb_err **err)
{
	struct sbx_spec spec;
	struct strv env = { 0 };
	bool started = false;
	int fd, r;

	if (sbx_spec_load(name, &spec, err) < 0)
		return -1;
	if (cli_sandbox_up(name, &started, err) < 0) {
		sbx_spec_free(&spec);
		return -1;
	}
	fd = sbx_connect(name, err);
	if (fd < 0 || merge_env(spec.env, &o->env, &env) < 0) {
		if (fd >= 0)
			close(fd);
		r = fd < 0 ? -1 : msb_err_sys(err, ENOMEM, "exec");
		goto out;
	}
	{
		struct sbx_exec x = {
			.argv = argv,
			.env = env.v,
			.cwd = o->workdir ? o->workdir : spec.workdir,
			.user = o->user ? o->user : spec.user,
			.tty = o->tty,
			.mkcwd = o->workdir != NULL,
			.forward_stdin = o->tty || !isatty(0),
			.stdout_closed = cli_stdio_closed[1],
			.stderr_closed = cli_stdio_closed[2],
			.timeout_ms = o->timeout_ms,
		};
		char *none[] = { NULL };

		if (!x.env)
			x.env = none;
		/* The sandbox's --rlimits, with this session's over them. */
		if (sbx_exec_rlimits(spec.rlimits, o->rlimits, o->nrlimits, x.rlimits,
				     &x.nrlimits) < 0) {
			close(fd);
			r = msb_err_set(
				err, EINVAL,
				"too many --rlimit resources with the sandbox's (at most %d)",
				PROTO_MAX_RLIMITS);
			goto out;
		}
		if (o->tty && sbx_parse_detach_keys(o->detach_keys, x.detach_keys,
						    sizeof(x.detach_keys), &x.ndetach_keys) < 0) {
			close(fd);
			r = msb_err_set(
				err, EINVAL,
				"invalid --detach-keys \"%s\" (use e.g. ctrl-] or ctrl-p,ctrl-q)",
				o->detach_keys);
			goto out;
		}
		r = sbx_exec_run(fd, &x, status, err);
	}
	close(fd);
	if (r == 0 && *status == SBX_EXEC_DETACHED) {
		fprintf(stderr, "\r\nmsb: detached from the command in %s (still running)\n", name);
		*status = 0;
		started = false; /* the command goes on: so does the sandbox */
	}
out:
	r = cli_sandbox_down(name, started, r, err);
	strv_free(&env);
	sbx_spec_free(&spec);
	return r;
}

static int parse(const char *cmd, int argc, char **argv, struct exec_opts *o, int *first)
{
	int c, r;

	opterr = 0;
	optind = 1;
	/* Flags stop at the sandbox name: everything after it is the command. */
	while ((c = getopt_long(argc, argv, "+te:w:u:qh", exec_longopts, NULL)) != -1) {
		if (c == 'h') {
			if (!strcmp(cmd, "exec"))
				printf("Usage: msb exec [OPTIONS] NAME [--] COMMAND [ARG...]\n\n"
				       "Run a command in a sandbox (a stopped one is started for "
				       "it and "
				       "stopped again).\n\n");
			else
				printf("Usage: msb shell [OPTIONS] NAME\n\nAn interactive shell in "
				       "a "
				       "sandbox (its --shell, default /bin/sh).\n\n");
			printf("Options:\n"
			       "  -t, --tty               Allocate a pseudo-terminal\n"
			       "  -e, --env KEY=VALUE     Set an environment variable\n"
			       "  -w, --workdir DIR       Working directory (created if missing)\n"
			       "  -u, --user USER         Run as USER\n"
			       "      --timeout DURATION  Kill the command after DURATION\n"
			       "      --rlimit NAME=N[:M] Set a resource limit\n"
			       "      --detach-keys KEYS  Keys that detach a -t session (default "
			       "ctrl-])\n"
			       "  -q, --quiet             Suppress progress output\n");
			return -1;
		}
		if (c == '?' || c == ':')
			return cli_bad_flag(cmd, argv, exec_longopts);
		r = exec_opt(o, c, optarg);
		if (r)
			return r;
	}
	if (optind >= argc)
		return cli_error("%s: expected a sandbox name (see 'msb %s --help')", cmd, cmd);
	*first = optind;
	return 0;
}

int cmd_exec(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct exec_opts o = { 0 };
	int first = 0, r, status = 0;
	char **cmd;

	r = parse("exec", argc, argv, &o, &first);
	if (r) {
		strv_free(&o.env);
		return r < 0 ? 0 : r;
	}
	cmd = argv + first + 1;
	if (*cmd && !strcmp(*cmd, "--"))
		cmd++;
	if (!*cmd) {
		strv_free(&o.env);
		return cli_error("exec: no command given (use: msb exec NAME -- COMMAND)");
	}
	if (o.detach_keys && !o.tty) {
		strv_free(&o.env);
		return cli_error("exec: --detach-keys needs -t");
	}
	cli_block_signals();
	r = exec_in(argv[first], cmd, &o, &status, &err) < 0 ? cli_fail(err) : status;
	strv_free(&o.env);
	return r;
}

int cmd_shell(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct exec_opts o = { .tty = true };
	struct sbx_spec spec;
	int first = 0, r, status = 0;

	r = parse("shell", argc, argv, &o, &first);
	if (!r && first + 1 < argc)
		r = cli_error("shell: unexpected argument \"%s\" (use 'msb exec' to run a command)",
			      argv[first + 1]);
	if (r) {
		strv_free(&o.env);
		return r < 0 ? 0 : r;
	}
	/* A shell is interactive: a tty when there is a terminal, plain pipes otherwise. */
	o.tty = isatty(0) && isatty(1);
	if (sbx_spec_load(argv[first], &spec, &err) < 0) {
		strv_free(&o.env);
		return cli_fail(err);
	}
	{
		char *sh[] = { spec.shell, NULL };

		cli_block_signals();
		r = exec_in(argv[first], sh, &o, &status, &err) < 0 ? cli_fail(err) : status;
	}
	sbx_spec_free(&spec);
	strv_free(&o.env);
	return r;
}
