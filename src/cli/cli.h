/* SPDX-License-Identifier: Apache-2.0 */
/* Shared pieces of the command-line front end. Commands only parse, call and print. */
#ifndef MSB_CLI_CLI_H
#define MSB_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"
#include "util/version.h"

#define EXIT_MSB 125

/* Which of msb's descriptors 0-2 were closed when it started (they hold /dev/null now). */
extern bool cli_stdio_closed[3];

/* cli_fail() - print "msb: <message>" and return the exit status for @err. */
int cli_fail(const struct msb_err *err);

/* cli_error() - print "msb: <message>" for a usage problem. Return: 125. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * cli_stop_signals() - block SIGINT, SIGTERM and SIGHUP and return a signalfd
 * for them, for a job that stops cleanly when it becomes readable. Call it
 * before any thread starts. Return: the descriptor, or -1 (the signals then
 * keep their default action).
 */
int cli_stop_signals(void);

/*
 * cli_bad_flag() - report what getopt_long() rejected (opterr must be 0).
 * Return: 125.
 */
int cli_bad_flag(const char *cmd, char *const argv[], const struct option *longopts);

#include "util/strv.h"

struct json_t;

/*
 * cli_print_json() - JSON for a terminal: every non-ASCII character escaped
 * (and DEL), so no string in it can drive the terminal. Return: 0 or -1.
 */
int cli_print_json(struct json_t *o);
/* cli_cell() - a table cell for a terminal: sanitised, cut to @width with an ellipsis. */
void cli_cell(char *out, size_t cap, const char *s, size_t width);
/* cli_ago() - "5 minutes ago" for an RFC 3339 time ("-" if unparsable). */
void cli_ago(const char *rfc3339, char *buf, size_t len);
/*
 * cli_wants_help() - is -h or --help among @argv[1..] (before any "--")? For
 * commands that parse their arguments without getopt.
 */
bool cli_wants_help(int argc, char **argv);
/* cli_parse_format() - --format: only "json". Return: 0, or 125 after a one-line error. */
int cli_parse_format(const char *cmd, const char *arg, bool *json);

int cmd_run(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_shell(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_images(int argc, char **argv);
int cmd_volume(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_branch(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_uninstall(int argc, char **argv);
int cmd_alias(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_df(int argc, char **argv);
int cmd_prune(int argc, char **argv);
/* cli_image_prune() - msb image prune (in prune.c). */
int cli_image_prune(int argc, char **argv);
int cmd_self(int argc, char **argv);
int cmd_completion(int argc, char **argv);
int cmd_complete(int argc, char **argv);
/* cli_command_name() - the @i-th user-facing command's name; NULL past the last. */
const char *cli_command_name(size_t i);

/*
 * cli_sandbox_up() - make sure @name runs, starting a stopped sandbox (a
 * crashed one is an error: the user should look first); *@started says
 * whether it was started here. cli_sandbox_down() stops it again if so and
 * returns @r, or -1 with @err if that stop failed while @r was 0.
 */
int cli_sandbox_up(const char *name, bool *started, struct msb_err **err);
int cli_sandbox_down(const char *name, bool started, int r, struct msb_err **err);
int cmd_rmi(int argc, char **argv);
int cmd_registry(int argc, char **argv);
int cmd_supervise(int argc, char **argv);
int cmd_net(int argc, char **argv);

/* What this msb is (release.c, compiled by the Makefile with its release's values). */
extern const char msb_release_version[];
extern const char msb_release_commit[];
extern const unsigned char msb_release_key[32];
extern const bool msb_release_key_set;
extern const bool msb_release_testing;

/* msb self update (update.c); msb --version's long form (update.c). */
int self_update(int argc, char **argv);
int cli_version(void);
/* version_cmp() - <0, 0, >0 as release @a is older than, the same as, newer than @b. */
int version_cmp(const char *a, const char *b);

#endif
