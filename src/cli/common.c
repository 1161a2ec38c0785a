// SPDX-License-Identifier: Apache-2.0
/* Error printing and small helpers shared by the commands. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "util/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Errors quote registries, archives, guests and arguments: never let them drive the terminal. */
static void print_error(const char *msg)
{
	char safe[4096];

	text_sanitize(safe, sizeof(safe), msg, strlen(msg));
	fprintf(stderr, "msb: %s\n", safe);
}

int cli_fail(const struct msb_err *err)
{
	print_error(err && err->msg ? err->msg : "unknown error");
	return err ? err->exit : EXIT_MSB;
}

int cli_error(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_error(msg);
	return EXIT_MSB;
}

int cli_bad_flag(const char *cmd, char *const argv[], const struct option *longopts)
{
	const char *arg = argv[optind - 1];

	(void)longopts;
	if (optopt && strchr("cmewuv", optopt) && arg && arg[0] == '-' && arg[1] == optopt &&
	    !arg[2])
		return cli_error("%s: flag -%c needs a value (see 'msb %s --help')", cmd, optopt,
				 cmd);
	if (arg && strncmp(arg, "--", 2) == 0) {
		char name[64];

		snprintf(name, sizeof(name), "%s", arg);
		name[strcspn(name, "=")] = '\0';
		for (const struct option *o = longopts; o && o->name; o++) {
			if (strcmp(name + 2, o->name) == 0 && o->has_arg == required_argument)
				return cli_error("%s: flag %s needs a value (see 'msb %s --help')",
						 cmd, name, cmd);
		}
		return cli_error("%s: unknown flag %s (see 'msb %s --help')", cmd, name, cmd);
	}
	if (optopt)
		return cli_error("%s: unknown flag -%c (see 'msb %s --help')", cmd, optopt, cmd);
	return cli_error("%s: invalid arguments (see 'msb %s --help')", cmd, cmd);
}

int strv_push(struct strv *s, const char *str)
{
	char **nv = realloc(s->v, (s->n + 2) * sizeof(char *));

	if (!nv)
		return -1;
	s->v = nv;
	s->v[s->n] = strdup(str);
	if (!s->v[s->n])
		return -1;
	s->v[++s->n] = NULL;
	return 0;
}

void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}
