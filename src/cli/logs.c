// SPDX-License-Identifier: Apache-2.0
/* msb logs: a sandbox's captured output, from its files; running or stopped. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sbxflags.h"
#include "sandbox/lifecycle.h"
#include "sandbox/logs.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"
#include "util/text.h"

#define FOLLOW_POLL_MS 200

enum {
	OPT_TAIL = 256,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_TIMESTAMPS,
	OPT_SOURCE,
	OPT_GREP,
	OPT_JSON,
	OPT_RAW,
	OPT_SHOW_ID,
	OPT_COLOR_SESSIONS,
	OPT_COLOR,
	OPT_NO_COLOR,
};

struct logs_opts {
	struct log_query q;
	long tail; /* -1: all */
	bool follow, timestamps, json, raw, show_id, color_sessions, color;
	regex_t re;
	bool have_re;
	/* Output is written line-wise with prefixes: where each stream stands. */
	bool at_line_start[2];
};

static const struct option longopts[] = {
	{ "tail", required_argument, NULL, OPT_TAIL },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "follow", no_argument, NULL, 'f' },
	{ "timestamps", no_argument, NULL, OPT_TIMESTAMPS },
	{ "source", required_argument, NULL, OPT_SOURCE },
	{ "grep", required_argument, NULL, OPT_GREP },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "raw", no_argument, NULL, OPT_RAW },
	{ "show-id", no_argument, NULL, OPT_SHOW_ID },
	{ "color-sessions", no_argument, NULL, OPT_COLOR_SESSIONS },
	{ "color", required_argument, NULL, OPT_COLOR },
	{ "no-color", no_argument, NULL, OPT_NO_COLOR },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void usage(void)
{
	printf("Usage: msb logs [OPTIONS] NAME\n\n"
	       "Show what a sandbox's sessions printed (logs/exec.log), and with --source\n"
	       "system its lifecycle and runtime/kernel diagnostics. Works on running and\n"
	       "stopped sandboxes.\n\n"
	       "Options:\n"
	       "      --tail N            Only the last N entries\n"
	       "      --since TIME        Entries at or after TIME (RFC 3339, or 5m, 2h, 1d ago)\n"
	       "      --until TIME        Entries before TIME\n"
	       "  -f, --follow            Keep printing new entries\n"
	       "      --timestamps        Prefix lines with the entry's time\n"
	       "      --source LIST       stdout,stderr,output,system,net,all (default "
	       "stdout,stderr,output); net: the network's\n"
	       "                          lines of runtime.log (intercepted requests,\n"
	       "                          refusals), also part of system\n"
	       "      --grep REGEX        Only entries matching REGEX (extended)\n"
	       "      --json              One JSON object per entry\n"
	       "      --raw               Exact bytes (base64 in JSON) for output that is not "
	       "UTF-8\n"
	       "      --show-id           Prefix lines with [id:N], the session\n"
	       "      --color-sessions    A color per session (implies --show-id)\n"
	       "      --color WHEN        auto (default), always, never\n"
	       "      --no-color          Same as --color never\n");
}

static int parse(int argc, char **argv, struct logs_opts *o, const char **name)
{
	const char *color = "auto";
	unsigned int sources = 0;
	int c;

	memset(o, 0, sizeof(*o));
	o->tail = -1;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", longopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'h':
			usage();
			return -1;
		case OPT_TAIL:
			o->tail = strtol(optarg, &end, 10);
			if (*end || end == optarg || o->tail < 0)
				return cli_error(
					"logs: invalid --tail \"%s\" (a number of entries)",
					optarg);
			break;
		case OPT_SINCE:
		case OPT_UNTIL:
			if (logs_parse_time(optarg, c == OPT_SINCE ? o->q.since : o->q.until,
					    sizeof(o->q.since)) < 0)
				return cli_error("logs: invalid %s \"%s\" (use RFC 3339, e.g. "
						 "2026-04-30T20:32:59Z, or 5m, 2h, 1d)",
						 c == OPT_SINCE ? "--since" : "--until", optarg);
			break;
		case 'f':
			o->follow = true;
			break;
		case OPT_TIMESTAMPS:
			o->timestamps = true;
			break;
		case OPT_SOURCE:
			if (logs_parse_sources(optarg, &sources) < 0)
				return cli_error(
					"logs: invalid --source \"%s\" (use stdout, stderr, "
					"output, system, net or all, comma-separated)",
					optarg);
			break;
		case OPT_GREP:
			if (o->have_re)
				regfree(&o->re);
			if (regcomp(&o->re, optarg, REG_EXTENDED | REG_NOSUB) != 0)
				return cli_error("logs: invalid --grep \"%s\" (an extended regular "
						 "expression)",
						 optarg);
			o->have_re = true;
			o->q.grep = &o->re;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_RAW:
			o->raw = true;
			break;
		case OPT_SHOW_ID:
			o->show_id = true;
			break;
		case OPT_COLOR_SESSIONS:
			o->color_sessions = o->show_id = true;
			break;
		case OPT_COLOR:
			if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "always") != 0 &&
			    strcmp(optarg, "never") != 0)
				return cli_error(
					"logs: invalid --color \"%s\" (use auto, always or never)",
					optarg);
			color = optarg;
			break;
		case OPT_NO_COLOR:
			color = "never";
			break;
		default:
			return cli_bad_flag("logs", argv, longopts);
		}
	}
	if (optind >= argc)
		return cli_error("logs: expected a sandbox name (see 'msb logs --help')");
	if (optind + 1 < argc)
		return cli_error("logs: unexpected argument \"%s\"", argv[optind + 1]);
	*name = argv[optind];
	o->q.sources = sources ? sources : LOGS_DEFAULT;
	o->color = !strcmp(color, "always") || (!strcmp(color, "auto") && isatty(1));
	o->at_line_start[0] = o->at_line_start[1] = true;
	return 0;
}

/* The prefix each new line of an entry gets: time, session id (colored per session). */
static void prefix(const struct logs_opts *o, const struct log_entry *e, FILE *f)
{
	if (o->timestamps)
		fprintf(f, "%s ", e->t[0] ? e->t : "-");
	if (o->show_id && e->id) {
		if (o->color_sessions && o->color)
			fprintf(f, "\033[%dm[id:%u]\033[0m ", 31 + (int)(e->id % 6), e->id);
		else
			fprintf(f, "[id:%u] ", e->id);
	}
}

static void print_entry(struct logs_opts *o, const struct log_entry *e)
{
	/* Like `docker logs`: what went to stderr comes out on stderr. */
	int k = e->src == LOGS_STDERR ? 1 : 0;
	FILE *f = k ? stderr : stdout;
	struct buf text = { 0 };
	const uint8_t *p = e->d;
	size_t n = e->len;

	/* Both may go to one place (2>&1): keep them in the order they happened. */
	fflush(k ? stdout : stderr);
	if (o->json) {
		_cleanup_free_ char *line = logs_entry_json(e, o->raw);

		if (line)
			printf("%s\n", line);
		return;
	}
	if (!e->utf8 && !o->raw && utf8_lossy(e->d, e->len, &text) == 0) {
		p = buf_head(&text);
		n = buf_size(&text);
	}
	if (e->src == LOGS_SYSTEM || e->src == LOGS_NET) {
		char safe[4096];

		/* System lines come from logs msb wrote about the guest: keep them printable. */
		text_sanitize(safe, sizeof(safe), p, n);
		prefix(o, e, f);
		fprintf(f, "%s\n", safe);
		buf_free(&text);
		return;
	}
	for (size_t i = 0; i < n;) {
		const uint8_t *nl = memchr(p + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - p) + 1 : n;

		if (o->at_line_start[k])
			prefix(o, e, f);
		fwrite(p + i, 1, end - i, f);
		o->at_line_start[k] = nl != NULL;
		i = end;
	}
	buf_free(&text);
}

static void print_all(struct logs_opts *o, struct log_entry *v, size_t n, size_t from)
{
	for (size_t i = from; i < n; i++)
		print_entry(o, &v[i]);
	fflush(stdout);
	fflush(stderr);
}

/* Prints new entries every 200 ms until the sandbox stops (and all is read) or Ctrl-C. */
static void follow(struct logs_opts *o, struct logs *l, const char *name)
{
	_cleanup_close_ int sfd = cli_cancel_fd();
	int quiet_rounds = 0;

	for (;;) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };
		struct log_entry *v = NULL;
		size_t n = 0;

		if (poll(&p, 1, FOLLOW_POLL_MS) > 0)
			return;
		if (logs_read_new(l, &o->q, &v, &n) == 0) {
			print_all(o, v, n, 0);
			logs_entries_free(v, n);
		}
		/* `docker logs -f` ends with the container: so does this, once it read the end. */
		if (sbx_alive(name) || n)
			quiet_rounds = 0;
		else if (++quiet_rounds >= 2)
			return;
	}
}

int cmd_logs(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	_cleanup_free_ char *dir = NULL;
	struct logs_opts o;
	struct log_entry *v = NULL;
	struct logs l;
	const char *name = NULL;
	size_t n = 0;
	int r = parse(argc, argv, &o, &name);

	if (r) {
		if (o.have_re)
			regfree(&o.re);
		return r < 0 ? 0 : r;
	}
	if (!valid_sandbox_name(name) || !sbx_exists(name)) {
		if (o.have_re)
			regfree(&o.re);
		return cli_error("logs: sandbox %s: not found", name);
	}
	dir = sbx_dir(name);
	cli_block_signals();
	if (!dir || logs_read_all(&l, dir, &o.q, &v, &n, &err) < 0) {
		if (o.have_re)
			regfree(&o.re);
		return err ? cli_fail(err) : cli_error("out of memory");
	}
	print_all(&o, v, n, o.tail >= 0 && (size_t)o.tail < n ? n - (size_t)o.tail : 0);
	logs_entries_free(v, n);
	if (o.follow)
		follow(&o, &l, name);
	logs_close(&l);
	if (o.have_re)
		regfree(&o.re);
	return 0;
}
