// SPDX-License-Identifier: Apache-2.0
/* msb snapshot create | ls | inspect | rm, msb branch, msb pause, msb resume. */
#define _GNU_SOURCE
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sandbox/create.h"
#include "sandbox/lifecycle.h"
#include "sandbox/snapshot.h"
#include "util/cleanup.h"
#include "util/parse.h"

enum { OPT_FORMAT = 256, OPT_FROM, OPT_FULL };

/* "paused 212 ms" and what was saved, for people (stderr: stdout is the name). */
static void report(const char *what, const struct snap_result *r)
{
	char mem[32], disk[32];

	format_size(r->memory_bytes, mem, sizeof(mem));
	format_size(r->disk_bytes, disk, sizeof(disk));
	if (r->live)
		fprintf(stderr,
			"%s: sandbox paused %llu ms (after %llu ms flushing its disks); %s%s%s%s "
			"of disk\n",
			what, (unsigned long long)r->pause_ms, (unsigned long long)r->quiesce_ms,
			r->memory_bytes ? "memory " : "", r->memory_bytes ? mem : "",
			r->memory_bytes ? ", " : "", disk);
	else
		fprintf(stderr, "%s: taken of the stopped sandbox's disk (%s of data)\n", what,
			disk);
}

static int snapshot_create(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "from", required_argument, NULL, OPT_FROM },
		{ "full", no_argument, NULL, OPT_FULL },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	const char *from = NULL;
	bool full = false, quiet = false;
	struct snap_result res;
	char what[128];
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
		if (c == OPT_FROM) {
			from = optarg;
		} else if (c == OPT_FULL) {
			full = true;
		} else if (c == 'q') {
			quiet = true;
		} else if (c == 'h') {
			printf("Usage: msb snapshot create NAME --from SANDBOX [--full]\n\n"
			       "Snapshot a sandbox: its writable disk, and with --full its memory "
			       "and running\nprocesses too (it must be running). A running sandbox "
			       "pauses while it is saved.\n");
			return 0;
		} else {
			return cli_bad_flag("snapshot create", argv, lo);
		}
	}
	if (optind != argc - 1)
		return cli_error("snapshot create: expected one snapshot name (msb snapshot create "
				 "NAME --from SANDBOX)");
	if (!from)
		return cli_error("snapshot create: --from SANDBOX is required");
	if (snap_create(argv[optind], from, full, &res, &err) < 0)
		return cli_fail(err);
	snprintf(what, sizeof(what), "snapshot %s", argv[optind]);
	if (!quiet)
		report(what, &res);
	printf("%s\n", argv[optind]);
	return 0;
}

static int snapshot_ls(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	bool json = false, quiet = false;
	json_t *all = NULL, *o;
	size_t i;
	int c, r = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
		if (c == 'q') {
			quiet = true;
		} else if (c == OPT_FORMAT) {
			if (cli_parse_format("snapshot ls", optarg, &json))
				return EXIT_MSB;
		} else if (c == 'h') {
			printf("Usage: msb snapshot ls [--format json] [-q]\n\nList snapshots.\n");
			return 0;
		} else {
			return cli_bad_flag("snapshot ls", argv, lo);
		}
	}
	if (optind < argc)
		return cli_error("snapshot ls: unexpected argument \"%s\"", argv[optind]);
	if (snap_list(&all, &err) < 0)
		return cli_fail(err);
	if (json) {
		r = cli_print_json(all) < 0 ? EXIT_MSB : 0;
		json_decref(all);
		return r;
	}
	if (!quiet)
		printf("%-24s %-5s %-20s %-24s %-10s %s\n", "NAME", "KIND", "FROM", "IMAGE", "SIZE",
		       "CREATED");
	json_array_foreach(all, i, o)
	{
		char size[32], when[64], from[96], image[96];
		const char *img = json_string_value(json_object_get(o, "image"));

		if (quiet) {
			printf("%s\n", json_string_value(json_object_get(o, "name")));
			continue;
		}
		format_size((uint64_t)json_integer_value(json_object_get(o, "memory_bytes")) +
				    (uint64_t)json_integer_value(json_object_get(o, "disk_bytes")),
			    size, sizeof(size));
		cli_ago(json_string_value(json_object_get(o, "created_at")), when, sizeof(when));
		cli_cell(from, sizeof(from),
			 json_string_value(json_object_get(o, "sandbox")) ?: "-", 20);
		cli_cell(image, sizeof(image), img ? img : "-", 24);
		printf("%-24s %-5s %-20s %-24s %-10s %s\n",
		       json_string_value(json_object_get(o, "name")),
		       json_string_value(json_object_get(o, "kind")), from, image, size, when);
	}
	json_decref(all);
	return 0;
}

static int snapshot_inspect(int argc, char **argv)
{
	int rc = 0;

	if (cli_wants_help(argc, argv)) {
		printf("Usage: msb snapshot inspect NAME...\n\nShow snapshots (JSON): what they "
		       "were taken of, their image, and what taking them cost.\n");
		return 0;
	}
	if (argc < 2)
		return cli_error("snapshot inspect: expected a snapshot name");
	for (int i = 1; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;
		json_t *o = NULL;

		if (snap_info(argv[i], &o, &err) < 0) {
			rc = cli_fail(err);
			continue;
		}
		if (cli_print_json(o) < 0)
			rc = EXIT_MSB;
		json_decref(o);
	}
	return rc;
}

static int snapshot_rm(int argc, char **argv)
{
	int rc = 0, first = 1;
	bool quiet = false;

	if (cli_wants_help(argc, argv)) {
		printf("Usage: msb snapshot rm [-q] NAME...\n\nRemove snapshots. Sandboxes made "
		       "from them keep their own copies.\n");
		return 0;
	}
	if (argc >= 2 && (!strcmp(argv[1], "-q") || !strcmp(argv[1], "--quiet"))) {
		quiet = true;
		first = 2;
	}
	if (argc <= first)
		return cli_error("snapshot rm: expected at least one snapshot name");
	for (int i = first; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;

		if (snap_remove(argv[i], &err) < 0)
			rc = cli_fail(err);
		else if (!quiet)
			printf("%s\n", argv[i]);
	}
	return rc;
}

int cmd_snapshot(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("Usage: msb snapshot COMMAND\n\nCommands:\n"
		       "  create    Snapshot a sandbox (NAME --from SANDBOX [--full])\n"
		       "  ls        List snapshots\n"
		       "  inspect   Show snapshots\n"
		       "  rm        Remove snapshots\n\n"
		       "Make a sandbox from one with 'msb run|create --from-snapshot NAME'.\n");
		return argc < 2 ? EXIT_MSB : 0;
	}
	if (!strcmp(argv[1], "create"))
		return snapshot_create(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ls") || !strcmp(argv[1], "list"))
		return snapshot_ls(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inspect"))
		return snapshot_inspect(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm") || !strcmp(argv[1], "remove"))
		return snapshot_rm(argc - 1, argv + 1);
	return cli_error("snapshot: unknown command \"%s\" (see 'msb snapshot --help')", argv[1]);
}

int cmd_branch(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct snap_result res;
	char what[160];
	bool quiet = false;
	int first = 1;

	if (cli_wants_help(argc, argv)) {
		printf("Usage: msb branch [-q] SANDBOX NEW_NAME\n\nFork a running sandbox: "
		       "NEW_NAME "
		       "starts as a copy of its memory, processes\nand writable disk, and both run "
		       "on independently. SANDBOX pauses while it is copied.\n");
		return 0;
	}
	if (argc >= 2 && (!strcmp(argv[1], "-q") || !strcmp(argv[1], "--quiet"))) {
		quiet = true;
		first = 2;
	}
	if (argc - first != 2)
		return cli_error("branch: expected a running sandbox and a new name (msb branch "
				 "SANDBOX NEW_NAME)");
	if (snap_branch(argv[first], argv[first + 1], &res, &err) < 0)
		return cli_fail(err);
	snprintf(what, sizeof(what), "branch %s of %s", argv[first + 1], argv[first]);
	if (!quiet)
		report(what, &res);
	printf("%s\n", argv[first + 1]);
	return 0;
}

static int pause_resume(int argc, char **argv, bool pause)
{
	const char *cmd = pause ? "pause" : "resume";
	int rc = 0;

	if (cli_wants_help(argc, argv)) {
		printf(pause ? "Usage: msb pause NAME...\n\nSuspend running sandboxes in place: "
			       "their vCPUs stop, memory and\nprocesses stay as they are. 'msb "
			       "resume' continues them.\n"
			     : "Usage: msb resume NAME...\n\nContinue paused sandboxes.\n");
		return 0;
	}
	if (argc < 2)
		return cli_error("%s: expected at least one sandbox name", cmd);
	for (int i = 1; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;

		if (sbx_check_name(argv[i], &err) < 0 ||
		    (pause ? sbx_pause(argv[i], &err) : sbx_resume(argv[i], &err)) < 0)
			rc = cli_fail(err);
		else
			printf("%s\n", argv[i]);
	}
	return rc;
}

int cmd_pause(int argc, char **argv)
{
	return pause_resume(argc, argv, true);
}

int cmd_resume(int argc, char **argv)
{
	return pause_resume(argc, argv, false);
}
