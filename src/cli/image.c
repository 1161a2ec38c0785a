// SPDX-License-Identifier: Apache-2.0
/* msb image ls | inspect | rm | save | load (and the images / rmi shorthands). */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sandbox/sandbox.h"
#include "image/archive.h"
#include "image/manifest.h"
#include "image/pull.h"
#include "image/ref.h"
#include "store/db.h"
#include "util/cleanup.h"
#include "util/parse.h"
#include "util/text.h"

enum { OPT_FORMAT = 256, OPT_ARCHIVE_FORMAT };

/* "docker.io/library/alpine:latest" -> "alpine:latest", as users typed it. */
static char *familiar(const char *canonical)
{
	struct image_ref r;
	char why[128], *s;

	if (ref_parse(canonical, &r, why, sizeof(why)) < 0)
		return strdup(canonical);
	s = ref_familiar(&r);
	ref_free(&r);
	return s;
}

/*
 * A registry's text made safe for a terminal (control characters, C1 codes
 * and invalid UTF-8 become '?'). Return: newly allocated, or NULL.
 */
static char *safe(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *o = malloc(n + 1);

	if (o)
		text_sanitize(o, n + 1, s ? s : "", n);
	return o;
}

/* Prints @s sanitised (see safe()). */
static void put_safe(const char *s)
{
	_cleanup_free_ char *t = safe(s);

	fputs(t ? t : "?", stdout);
}

static int64_t fs_size(const struct image_record *img)
{
	int64_t n = 0;

	for (size_t i = 0; i < img->nlayers; i++)
		n += img->layers[i].fs_size;
	return n;
}

static int image_ls(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	struct image_record *v = NULL;
	struct db *db = NULL;
	bool json = false, quiet = false;
	size_t n = 0;
	int c, r = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
		if (c == 'q')
			quiet = true;
		else if (c == OPT_FORMAT) {
			if (cli_parse_format("image ls", optarg, &json))
				return EXIT_MSB;
		} else if (c == 'h') {
			printf("Usage: msb image ls [--format json] [-q]\n\nList cached images.\n");
			return 0;
		} else {
			return cli_bad_flag("image ls", argv, lo);
		}
	}
	if (db_open(&db, &err) < 0 || db_image_list(db, &v, &n, &err) < 0) {
		db_close(db);
		return cli_fail(err);
	}
	if (json) {
		json_t *arr = json_array();

		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *f = familiar(v[i].reference);

			json_array_append_new(
				arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s?, s:s, s:i}",
					       "reference", f ? f : v[i].reference, "canonical",
					       v[i].reference, "digest", v[i].manifest_digest,
					       "size", (json_int_t)fs_size(&v[i]),
					       "compressed_size", (json_int_t)v[i].size, "created",
					       v[i].created, "pulled_at", v[i].pulled_at, "layers",
					       (int)v[i].nlayers));
		}
		r = cli_print_json(arr);
		json_decref(arr);
	} else {
		/* References are copied from here: the column grows to the longest, never cut. */
		int width = 40;

		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *f = familiar(v[i].reference);
			size_t len = strlen(f ? f : v[i].reference);

			if (len > (size_t)width)
				width = len > 1024 ? 1024 : (int)len;
		}
		if (!quiet)
			printf("%-*s %-20s %-10s %s\n", width, "REFERENCE", "DIGEST", "SIZE",
			       "CREATED");
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *f = familiar(v[i].reference);
			_cleanup_free_ char *name = safe(f ? f : v[i].reference),
					    *digest = safe(v[i].manifest_digest);
			char size[32], when[64];

			if (quiet) {
				printf("%s\n", name ? name : "?");
				continue;
			}
			format_size((uint64_t)fs_size(&v[i]), size, sizeof(size));
			cli_ago(v[i].created, when, sizeof(when));
			printf("%-*s %-20.19s %-10s %s\n", width, name ? name : "?",
			       digest ? digest : "?", size, when);
		}
	}
	image_records_free(v, n);
	db_close(db);
	return r < 0 ? cli_error("image ls: out of memory") : 0;
}

/* Finds the image a user named: a reference, or a digest (prefix). */
static int lookup(struct db *db, const char *name, struct image_record *img, struct msb_err **err)
{
	struct image_ref r;
	_cleanup_free_ char *canon = NULL;
	char why[256];
	int rc;

	if (ref_parse(name, &r, why, sizeof(why)) == 0) {
		canon = ref_canonical(&r);
		ref_free(&r);
		rc = canon ? db_image_find(db, canon, img, err) : -1;
		if (rc != 1)
			return rc;
	}
	rc = db_image_find(db, name, img, err);
	if (rc == 1)
		return msb_err_set(err, ENOENT, "image %s not found (see 'msb image ls')", name);
	return rc;
}

static json_t *inspect_json(const struct image_record *img)
{
	json_t *layers = json_array(), *o;
	_cleanup_free_ char *f = familiar(img->reference);

	for (size_t i = 0; i < img->nlayers; i++)
		json_array_append_new(
			layers,
			json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "digest", img->layers[i].digest,
				  "diff_id", img->layers[i].diff_id, "media_type",
				  img->layers[i].media_type, "compressed_size",
				  (json_int_t)img->layers[i].compressed_size, "uncompressed_size",
				  (json_int_t)img->layers[i].tar_size, "fs_size",
				  (json_int_t)img->layers[i].fs_size));
	o = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s?, s:s, s:I, s:o?, s:o?, s:o}", "reference",
		      f ? f : img->reference, "canonical", img->reference, "digest",
		      img->manifest_digest, "index_digest", img->index_digest, "config_digest",
		      img->config_digest, "created", img->created, "pulled_at", img->pulled_at,
		      "size", (json_int_t)fs_size(img), "manifest",
		      json_loads(img->manifest, 0, NULL), "config",
		      json_loads(img->config, 0, NULL), "layers", layers);
	return o;
}

static void print_strv(const char *label, char **v)
{
	printf("  %-12s", label);
	if (!v) {
		printf("-\n");
		return;
	}
	putchar('[');
	for (size_t i = 0; v[i]; i++) {
		printf("%s\"", i ? ", " : "");
		put_safe(v[i]);
		putchar('"');
	}
	printf("]\n");
}

/* "  Label       value" with the value sanitised, "-" when unset. */
static void print_str(const char *label, const char *v)
{
	printf("  %-12s", label);
	put_safe(v ? v : "-");
	putchar('\n');
}

static int image_inspect(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	struct image_record img;
	struct image_config ic;
	struct db *db = NULL;
	bool json = false;
	int c, r;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == OPT_FORMAT) {
			if (cli_parse_format("image inspect", optarg, &json))
				return EXIT_MSB;
		} else if (c == 'h') {
			printf("Usage: msb image inspect IMAGE [--format json]\n\nShow an image's "
			       "manifest, config and layers.\n");
			return 0;
		} else {
			return cli_bad_flag("image inspect", argv, lo);
		}
	}
	if (optind != argc - 1)
		return cli_error("image inspect: expected exactly one image");
	if (db_open(&db, &err) < 0 || lookup(db, argv[optind], &img, &err) < 0) {
		db_close(db);
		return cli_fail(err);
	}
	db_close(db);
	if (json) {
		json_t *o = inspect_json(&img);

		r = o ? cli_print_json(o) : -1;
		json_decref(o);
		image_record_free(&img);
		return r < 0 ? cli_error("image inspect: out of memory") : 0;
	}
	r = image_config_parse(img.config, strlen(img.config), &ic, &err);
	if (r < 0) {
		image_record_free(&img);
		return cli_fail(err);
	}
	{
		_cleanup_free_ char *f = familiar(img.reference);
		char size[32];

		/* Everything below comes from a registry: printed sanitised. */
		format_size((uint64_t)fs_size(&img), size, sizeof(size));
		fputs("Reference:   ", stdout);
		put_safe(f ? f : img.reference);
		fputs("\nDigest:      ", stdout);
		put_safe(img.manifest_digest);
		if (img.index_digest) {
			fputs("\nIndex:       ", stdout);
			put_safe(img.index_digest);
		}
		fputs("\nPlatform:    ", stdout);
		put_safe(ic.os ? ic.os : "?");
		putchar('/');
		put_safe(ic.arch ? ic.arch : "?");
		fputs("\nCreated:     ", stdout);
		put_safe(img.created ? img.created : "-");
		fputs("\nPulled:      ", stdout);
		put_safe(img.pulled_at);
		printf("\nSize:        %s in %zu layer%s\n", size, img.nlayers,
		       img.nlayers == 1 ? "" : "s");
		printf("Config:\n");
		print_strv("Entrypoint", ic.entrypoint);
		print_strv("Cmd", ic.cmd);
		print_strv("Env", ic.env);
		print_str("WorkingDir", ic.workdir);
		print_str("User", ic.user);
		if (ic.labels)
			print_strv("Labels", ic.labels);
		printf("Layers:\n");
		for (size_t i = 0; i < img.nlayers; i++) {
			char a[32], b[32];

			format_size((uint64_t)img.layers[i].compressed_size, a, sizeof(a));
			format_size((uint64_t)img.layers[i].fs_size, b, sizeof(b));
			printf("  %zu  ", i + 1);
			put_safe(img.layers[i].digest);
			printf("  %s compressed, %s squashfs\n", a, b);
		}
	}
	image_config_free(&ic);
	image_record_free(&img);
	return 0;
}

static int image_rm(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct db *db = NULL;
	bool force = false, quiet = false;
	int c, rc = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fqh", lo, NULL)) != -1) {
		if (c == 'f')
			force = true;
		else if (c == 'q')
			quiet = true;
		else if (c == 'h') {
			printf("Usage: msb image rm [-f] [-q] IMAGE...\n\nRemove cached images; "
			       "layers other images use stay.\n");
			return 0;
		} else {
			return cli_bad_flag("image rm", argv, lo);
		}
	}
	if (optind >= argc)
		return cli_error("image rm: expected at least one image");
	/* Sandboxes killed with their msb would count as users for ever otherwise. */
	sbx_reap();
	{
		_cleanup_err_ struct msb_err *err = NULL;

		if (db_open(&db, &err) < 0)
			return cli_fail(err);
	}
	for (int i = optind; i < argc; i++) {
		_cleanup_err_ struct msb_err *err = NULL;
		struct image_record img;
		char **orphans = NULL;
		int users;

		if (lookup(db, argv[i], &img, &err) < 0) {
			rc = cli_fail(err);
			continue;
		}
		users = db_sandboxes_using(db, img.reference, &err);
		if (users > 0 && !force) {
			_cleanup_free_ char *f = familiar(img.reference);

			rc = cli_error(
				"image %s is used by %d sandbox%s (remove %s first, or use -f)",
				f ? f : argv[i], users, users == 1 ? "" : "es",
				users == 1 ? "it" : "them");
			image_record_free(&img);
			continue;
		}
		if (users < 0 || db_image_delete(db, img.reference, &orphans, &err) < 0) {
			rc = cli_fail(err);
			image_record_free(&img);
			continue;
		}
		for (char **o = orphans; *o; o++) {
			_cleanup_err_ struct msb_err *lerr = NULL;
			/* Waits for sandboxes linking it; keeps it if a pull recorded it meanwhile.
			 */
			int d = image_remove_layer(db, *o, &lerr);

			if (d < 0)
				rc = cli_fail(lerr);
			else if (d > 0 && !quiet)
				printf("Deleted layer %s\n", *o);
		}
		if (!quiet) {
			_cleanup_free_ char *f = familiar(img.reference);

			printf("Removed %s\n", f ? f : img.reference);
		}
		cleanup_strvp(&orphans);
		image_record_free(&img);
	}
	db_close(db);
	return rc;
}

static int image_save(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_ARCHIVE_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	enum archive_format fmt = ARCHIVE_OCI;
	struct image_record *imgs = NULL;
	const char *out = NULL;
	struct db *db = NULL;
	size_t n = 0;
	int c, r;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		if (c == 'o') {
			out = optarg;
		} else if (c == OPT_ARCHIVE_FORMAT) {
			if (!strcmp(optarg, "oci-archive"))
				fmt = ARCHIVE_OCI;
			else if (!strcmp(optarg, "docker-archive"))
				fmt = ARCHIVE_DOCKER;
			else
				return cli_error("image save: unknown format \"%s\" (use "
						 "oci-archive or docker-archive)",
						 optarg);
		} else if (c == 'h') {
			printf("Usage: msb image save [--format oci-archive|docker-archive] -o "
			       "FILE "
			       "IMAGE...\n\nWrite images to a tar archive that 'msb image load', "
			       "'podman load' and 'docker load' read (-o - for stdout). Layers are "
			       "rebuilt from the cache, uncompressed.\n");
			return 0;
		} else {
			return cli_bad_flag("image save", argv, lo);
		}
	}
	if (!out || !*out)
		return cli_error("image save: missing -o FILE (where to write the archive, or -o - "
				 "for stdout)");
	if (optind >= argc)
		return cli_error("image save: expected at least one image");
	imgs = calloc((size_t)(argc - optind), sizeof(*imgs));
	if (!imgs)
		return cli_error("image save: out of memory");
	if (db_open(&db, &err) < 0) {
		free(imgs);
		return cli_fail(err);
	}
	r = 0;
	for (int i = optind; r == 0 && i < argc; i++, n++)
		r = lookup(db, argv[i], &imgs[n], &err);
	if (r < 0)
		n--;
	db_close(db);
	if (r == 0) {
		int stop = cli_stop_signals();

		r = archive_save(imgs, n, out, fmt, stop, &err);
		if (stop >= 0)
			close(stop);
	}
	image_records_free(imgs, n);
	return r < 0 ? cli_fail(err) : 0;
}

static int image_load(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	_cleanup_strv_ char **loaded = NULL;
	const char *in = NULL;
	struct db *db = NULL;
	bool quiet = false;
	int c, r, stop;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:qh", lo, NULL)) != -1) {
		if (c == 'i') {
			in = optarg;
		} else if (c == 'q') {
			quiet = true;
		} else if (c == 'h') {
			printf("Usage: msb image load -i FILE [-q]\n\nLoad every image of an OCI "
			       "archive or a docker-archive ('msb image save', 'podman save', "
			       "'docker save'; -i - for stdin), verified like a pull.\n");
			return 0;
		} else {
			return cli_bad_flag("image load", argv, lo);
		}
	}
	if (!in || !*in)
		return cli_error("image load: missing -i FILE (the archive to load, or -i - for "
				 "stdin)");
	if (optind != argc)
		return cli_error("image load: unexpected argument \"%s\" (the archive is given "
				 "with -i)",
				 argv[optind]);
	if (db_open(&db, &err) < 0)
		return cli_fail(err);
	stop = cli_stop_signals();
	r = archive_load(db, in, stop, &loaded, &err);
	if (stop >= 0)
		close(stop);
	db_close(db);
	if (r < 0)
		return cli_fail(err);
	for (size_t i = 0; !quiet && loaded[i]; i++) {
		fputs("Loaded image: ", stdout);
		put_safe(loaded[i]);
		putchar('\n');
	}
	return 0;
}

int cmd_image(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("Usage: msb image COMMAND\n\nCommands:\n"
		       "  ls        List cached images (alias: msb images)\n"
		       "  inspect   Show an image's metadata\n"
		       "  rm        Remove images (alias: msb rmi)\n"
		       "  prune     Remove images no sandbox uses\n"
		       "  save      Write images to an OCI or docker archive\n"
		       "  load      Load images from an OCI or docker archive\n");
		return argc < 2 ? EXIT_MSB : 0;
	}
	if (!strcmp(argv[1], "ls") || !strcmp(argv[1], "list"))
		return image_ls(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inspect"))
		return image_inspect(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm") || !strcmp(argv[1], "remove"))
		return image_rm(argc - 1, argv + 1);
	if (!strcmp(argv[1], "prune"))
		return cli_image_prune(argc - 1, argv + 1);
	if (!strcmp(argv[1], "save"))
		return image_save(argc - 1, argv + 1);
	if (!strcmp(argv[1], "load"))
		return image_load(argc - 1, argv + 1);
	return cli_error("image: unknown command \"%s\" (see 'msb image --help')", argv[1]);
}

int cmd_images(int argc, char **argv)
{
	return image_ls(argc, argv);
}

int cmd_rmi(int argc, char **argv)
{
	return image_rm(argc, argv);
}
