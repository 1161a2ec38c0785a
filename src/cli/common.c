// SPDX-License-Identifier: Apache-2.0
/* Error printing and small helpers shared by the commands. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "util/text.h"

#include <jansson.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/parse.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

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

/*
 * JSON for a terminal: every non-ASCII character escaped (jansson escapes
 * only C0 controls otherwise, so C1 ones like U+009B would pass), and DEL
 * too. Return: 0, or -1 on ENOMEM.
 */
int cli_print_json(json_t *o)
{
	_cleanup_free_ char *s = json_dumps(o, JSON_INDENT(2) | JSON_ENSURE_ASCII);

	if (!s)
		return -1;
	for (const char *p = s; *p; p++) {
		/* Outside strings JSON is printable ASCII: DEL can only be in one. */
		if (*p == 0x7f)
			fputs("\\u007f", stdout);
		else
			putchar(*p);
	}
	putchar('\n');
	return 0;
}

void cli_ago(const char *rfc3339, char *buf, size_t len)
{
	struct tm tm = { 0 };
	time_t t, now = time(NULL);
	long d;

	if (!rfc3339 || !strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, len, "-");
		return;
	}
	t = timegm(&tm);
	d = (long)(now - t);
	format_ago(d < 0 ? 0 : (uint64_t)d, buf, len);
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

int cli_parse_format(const char *cmd, const char *arg, bool *json)
{
	if (strcmp(arg, "json") != 0)
		return cli_error("%s: unsupported --format \"%s\" (use json)", cmd, arg);
	*json = true;
	return 0;
}

void cli_cell(char *out, size_t cap, const char *s, size_t width)
{
	text_sanitize(out, cap, s, strlen(s));
	if (strlen(out) > width && width > 3)
		snprintf(out + width - 3, cap - (width - 3), "...");
}

/*
 * Ctrl-C, SIGTERM and SIGHUP become a readable descriptor a long job (pull,
 * image save/load) polls, so it can stop cleanly (no half-written layer or
 * file, no lock left) instead of dying mid-write. Blocked before any thread starts, so none
 * receives them. Return: the signalfd, or -1 (then the signals keep their default action).
 */
int cli_stop_signals(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -1;
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}
