// SPDX-License-Identifier: Apache-2.0
/* msb volume create | ls | inspect | rm (and the volumes shorthand). */
#define _GNU_SOURCE
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sandbox/volume.h"
#include "util/cleanup.h"
#include "util/parse.h"

enum { OPT_FORMAT = 256, OPT_SIZE };

static int volume_create(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	uint64_t size = 0;
	bool quiet = false;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
		if (c == OPT_SIZE) {
			if (parse_size(optarg, 1, &size) < 0 || size == 0)
				return cli_error(
					"invalid --size \"%s\" (use a size like 512M or 5G)",
					optarg);
		} else if (c == 'q') {
			quiet = true;
		} else if (c == 'h') {
			printf("Usage: msb volume create NAME [--size SIZE]\n\n"
			       "Create a named volume: a directory, or with --size an ext4 disk "
			       "whose quota the guest cannot exceed.\n");
			return 0;
		} else {
			return cli_bad_flag("volume create", argv, lo);
		}
	}
	if (optind != argc - 1)
		return cli_error("volume create: expected one volume name");
	if (vol_create(argv[optind], size, &err) < 0)
		return cli_fail(err);
	if (!quiet)
		printf("%s\n", argv[optind]);
	return 0;
}

static json_t *volume_json(const struct vol_info *v, bool with_users)
{
	_cleanup_free_ char *path = vol_data(v);
	uint64_t used = vol_usage(v);
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s?}", "name", v->name, "kind",
			      v->quota ? "quota" : "dir", "size",
			      (json_int_t)(v->quota ? v->size : used), "used_bytes",
			      (json_int_t)used, "quota_bytes", (json_int_t)v->size, "created_at",
			      v->created_at, "path", path);

	if (o && with_users) {
		_cleanup_strv_ char **users = vol_users(v->name);
		json_t *a = json_array();

		for (char **u = users; a && u && *u; u++)
			json_array_append_new(a, json_string(*u));
		json_object_set_new(o, "sandboxes", a ? a : json_array());
	}
	return o;
}

static int volume_ls(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	_cleanup_free_ struct vol_info *v = NULL;
	bool json = false, quiet = false;
	size_t n = 0;
	int c, r = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
		if (c == 'q') {
			quiet = true;
		} else if (c == OPT_FORMAT) {
			if (cli_parse_format("volume ls", optarg, &json))
				return EXIT_MSB;
		} else if (c == 'h') {
			printf("Usage: msb volume ls [--format json] [-q]\n\nList named "
			       "volumes.\n");
			return 0;
		} else {
			return cli_bad_flag("volume ls", argv, lo);
		}
	}
	if (optind < argc)
		return cli_error("volume ls: unexpected argument \"%s\"", argv[optind]);
	if (vol_list(&v, &n, &err) < 0)
		return cli_fail(err);
	if (json) {
		json_t *arr = json_array();

		for (size_t i = 0; arr && i < n; i++)
			json_array_append_new(arr, volume_json(&v[i], false));
		r = arr ? cli_print_json(arr) : cli_error("out of memory");
		json_decref(arr);
		return r;
	}
	if (!quiet)
		printf("%-24s %-6s %-10s %s\n", "NAME", "KIND", "SIZE", "CREATED");
	for (size_t i = 0; i < n; i++) {
		char size[32], when[64];

		if (quiet) {
			printf("%s\n", v[i].name);
			continue;
		}
		format_size(v[i].quota ? v[i].size : vol_usage(&v[i]), size, sizeof(size));
		cli_ago(v[i].created_at, when, sizeof(when));
		printf("%-24s %-6s %-10s %s\n", v[i].name, v[i].quota ? "quota" : "dir", size,
		       when);
	}
	return 0;
}

static int volume_inspect(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	int c, rc = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == OPT_FORMAT) {
			if (cli_parse_format("volume inspect", optarg, &json))
				return EXIT_MSB;
		} else if (c == 'h') {
			printf("Usage: msb volume inspect NAME... [--format json]\n\nShow a volume "
			       "and the sandboxes that use it.\n");
			return 0;
		} else {
			return cli_bad_flag("volume inspect", argv, lo);
		}
	}
	if (optind >= argc)
		return cli_error("volume inspect: expected a volume name");
	for (int i = optind; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;
		struct vol_info v;
		json_t *o;

		if (vol_load(argv[i], &v, &err) < 0) {
			rc = cli_fail(err);
			continue;
		}
		o = volume_json(&v, true);
		if (!o) {
			rc = cli_error("out of memory");
			continue;
		}
		if (json) {
			if (cli_print_json(o) < 0)
				rc = EXIT_MSB;
		} else {
			json_t *u;
			size_t k;
			char used[32], quota[32];

			format_size((uint64_t)json_integer_value(json_object_get(o, "used_bytes")),
				    used, sizeof(used));
			format_size(v.size, quota, sizeof(quota));
			printf("Name:        %s\nKind:        %s\nPath:        %s\n", v.name,
			       v.quota ? "quota (ext4 disk)" : "dir",
			       json_string_value(json_object_get(o, "path")));
			printf("Used:        %s\n", used);
			if (v.quota)
				printf("Quota:       %s\n", quota);
			printf("Created:     %s\nSandboxes:  ", v.created_at);
			json_t *users = json_object_get(o, "sandboxes");

			json_array_foreach(users, k, u)
			{
				printf(" %s", json_string_value(u));
			}
			printf("%s\n",
			       json_array_size(json_object_get(o, "sandboxes")) ? "" : " -");
		}
		json_decref(o);
	}
	return rc;
}

static int volume_rm(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool force = false, quiet = false;
	int c, rc = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fqh", lo, NULL)) != -1) {
		if (c == 'f') {
			force = true;
		} else if (c == 'q') {
			quiet = true;
		} else if (c == 'h') {
			printf("Usage: msb volume rm [-f] NAME...\n\nRemove named volumes and "
			       "their data. A volume a stopped sandbox names is kept\n"
			       "unless -f; one a running sandbox uses is kept even with -f "
			       "(stop the sandbox first).\n");
			return 0;
		} else {
			return cli_bad_flag("volume rm", argv, lo);
		}
	}
	if (optind >= argc)
		return cli_error("volume rm: expected at least one volume name");
	for (int i = optind; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;

		if (vol_remove(argv[i], force, &err) < 0)
			rc = cli_fail(err);
		else if (!quiet)
			printf("%s\n", argv[i]);
	}
	return rc;
}

int cmd_volume(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("Usage: msb volume COMMAND\n\nCommands:\n"
		       "  create    Create a named volume (--size for a quota)\n"
		       "  ls        List volumes\n"
		       "  inspect   Show a volume and the sandboxes using it\n"
		       "  rm        Remove volumes\n");
		return argc < 2 ? EXIT_MSB : 0;
	}
	if (!strcmp(argv[1], "create"))
		return volume_create(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ls") || !strcmp(argv[1], "list"))
		return volume_ls(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inspect"))
		return volume_inspect(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm") || !strcmp(argv[1], "remove"))
		return volume_rm(argc - 1, argv + 1);
	return cli_error("volume: unknown command \"%s\" (see 'msb volume --help')", argv[1]);
}
