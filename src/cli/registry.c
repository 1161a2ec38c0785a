// SPDX-License-Identifier: Apache-2.0
/* msb registry login | logout | ls: credentials, never printed, never on argv. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "image/auth.h"
#include "image/ref.h"
#include "image/regconfig.h"
#include "image/registry.h"
#include "util/cleanup.h"
#include "util/text.h"

enum { OPT_USERNAME = 256, OPT_PASSWORD_STDIN };

/* Reads the password: all of stdin, or a prompt without echo on a terminal. */
static char *read_password(bool from_stdin)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (from_stdin) {
		size_t len = 0;
		char chunk[4096];

		for (;;) {
			ssize_t k = read(0, chunk, sizeof(chunk));
			char *nl;

			if (k <= 0)
				break;
			if (len + (size_t)k > 16384) {
				free(line);
				return NULL;
			}
			nl = realloc(line, len + (size_t)k + 1);
			if (!nl) {
				free(line);
				return NULL;
			}
			line = nl;
			memcpy(line + len, chunk, (size_t)k);
			len += (size_t)k;
			line[len] = '\0';
		}
		while (line && len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		return line;
	}
	{
		struct termios old, quiet;
		bool tty = tcgetattr(0, &old) == 0;

		fputs("Password: ", stderr);
		if (tty) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(0, TCSANOW, &quiet);
		}
		n = getline(&line, &cap, stdin);
		if (tty) {
			tcsetattr(0, TCSANOW, &old);
			fputc('\n', stderr);
		}
	}
	if (n < 0) {
		free(line);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	return line;
}

/* A registry as users write it: "ghcr.io", "localhost:5050", "https://x/" all work. */
static int normalise_host(const char *in, char *out, size_t len)
{
	struct image_ref r;
	char tmp[600], why[256];
	const char *p = in;

	if (!strncmp(p, "https://", 8))
		p += 8;
	else if (!strncmp(p, "http://", 7))
		p += 7;
	snprintf(tmp, sizeof(tmp), "%s", p);
	tmp[strcspn(tmp, "/")] = '\0';
	if (!strcmp(tmp, "index.docker.io") || !strcmp(tmp, "registry-1.docker.io"))
		snprintf(tmp, sizeof(tmp), "docker.io");
	{
		char probe[700];

		snprintf(probe, sizeof(probe), "%s/x", tmp);
		if (!strcmp(tmp, "docker.io"))
			snprintf(probe, sizeof(probe), "x");
		if (ref_parse(probe, &r, why, sizeof(why)) < 0)
			return -1;
	}
	snprintf(out, len, "%s", r.registry);
	ref_free(&r);
	return 0;
}

static int login(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "username", required_argument, NULL, OPT_USERNAME },
		{ "password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	const char *user = NULL, *store = NULL;
	bool from_stdin = false;
	char host[512];
	char *pass;
	json_t *cfg = NULL;
	int c, r;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "u:h", lo, NULL)) != -1) {
		if (c == OPT_USERNAME || c == 'u')
			user = optarg;
		else if (c == OPT_PASSWORD_STDIN)
			from_stdin = true;
		else if (c == 'h') {
			printf("Usage: msb registry login REGISTRY --username USER "
			       "[--password-stdin]\n");
			return 0;
		} else {
			return cli_bad_flag("registry login", argv, lo);
		}
	}
	if (optind != argc - 1)
		return cli_error("registry login: expected one registry (e.g. ghcr.io)");
	if (normalise_host(argv[optind], host, sizeof(host)) < 0)
		return cli_error("registry login: invalid registry \"%s\"", argv[optind]);
	if (!user || !*user)
		return cli_error("registry login: --username is required");
	if (!from_stdin && !isatty(0))
		return cli_error("registry login: stdin is not a terminal (pipe the password in "
				 "with --password-stdin)");
	pass = read_password(from_stdin);
	if (!pass || !*pass) {
		free(pass);
		return cli_error("registry login: no password given");
	}
	r = msbcfg_load(&cfg, &err);
	if (!r)
		r = reg_login_check(cfg, host, user, pass, &err);
	if (!r)
		r = auth_login(host, user, pass, &store, &err);
	explicit_bzero(pass, strlen(pass));
	free(pass);
	json_decref(cfg);
	if (r < 0)
		return cli_fail(err);
	printf("Login succeeded: %s as %s (secret in the %s store)\n", host, user, store);
	return 0;
}

static int logout_cmd(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	char host[512];

	if (cli_wants_help(argc, argv)) {
		printf("Usage: msb registry logout REGISTRY\n\nRemove the credentials stored for "
		       "REGISTRY.\n");
		return 0;
	}
	if (argc != 2)
		return cli_error("registry logout: expected one registry");
	if (normalise_host(argv[1], host, sizeof(host)) < 0)
		return cli_error("registry logout: invalid registry \"%s\"", argv[1]);
	if (auth_logout(host, &err) < 0)
		return cli_fail(err);
	printf("Logged out of %s\n", host);
	return 0;
}

static int list(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct reg_entry *e = NULL;
	json_t *cfg = NULL;
	int n;

	if (cli_wants_help(argc, argv)) {
		printf("Usage: msb registry ls\n\nList the registries msb has credentials for "
		       "(never a secret).\n");
		return 0;
	}
	if (argc != 1)
		return cli_error("registry ls: takes no arguments");
	if (msbcfg_load(&cfg, &err) < 0)
		return cli_fail(err);
	n = auth_list(cfg, &e, &err);
	json_decref(cfg);
	if (n < 0)
		return cli_fail(err);
	printf("%-32s %-20s %s\n", "REGISTRY", "USERNAME", "SOURCE");
	for (int i = 0; i < n; i++) {
		/* Names from Docker's config and credential helpers: shown, never obeyed. */
		char host[512], user[512], src[512];

		text_sanitize(host, sizeof(host), e[i].host, strlen(e[i].host));
		text_sanitize(user, sizeof(user), e[i].username, strlen(e[i].username));
		text_sanitize(src, sizeof(src), e[i].source, strlen(e[i].source));
		printf("%-32s %-20s %s\n", host, *user ? user : "-", src);
	}
	auth_list_free(e, n);
	return 0;
}

int cmd_registry(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("Usage: msb registry COMMAND\n\nCommands:\n"
		       "  login     Store credentials for a registry\n"
		       "  logout    Remove stored credentials\n"
		       "  ls        List configured registries (alias: list)\n");
		return argc < 2 ? EXIT_MSB : 0;
	}
	if (!strcmp(argv[1], "login"))
		return login(argc - 1, argv + 1);
	if (!strcmp(argv[1], "logout"))
		return logout_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ls") || !strcmp(argv[1], "list"))
		return list(argc - 1, argv + 1);
	return cli_error("registry: unknown command \"%s\" (see 'msb registry --help')", argv[1]);
}
