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
 * cli_bad_flag() - report what getopt_long() rejected (opterr must be 0).
 * Return: 125.
 */
int cli_bad_flag(const char *cmd, char *const argv[], const struct option *longopts);

/* A growable NULL-terminated string vector. */
struct strv {
	char **v;
	size_t n;
};
int strv_push(struct strv *s, const char *str);
void strv_free(struct strv *s);

int cmd_run(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_images(int argc, char **argv);
int cmd_rmi(int argc, char **argv);
int cmd_registry(int argc, char **argv);
int cmd_supervise(int argc, char **argv);

#endif
