// SPDX-License-Identifier: Apache-2.0
/*
 * msb df: the disk msb uses under MSB_HOME, by kind, with what could be
 * reclaimed. Sizes are blocks on disk (sparse files count what they hold);
 * a file linked from several places (a layer image a sandbox holds a link
 * to) counts once, under the first kind that reaches it. What is reclaimable
 * is what `msb prune` removes: the same plan (sandbox/prune.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sandbox/prune.h"
#include "store/db.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"

/* Inodes already counted: open addressing, grown as needed. */
struct seen {
	struct {
		dev_t dev;
		ino_t ino;
	} * v;
	size_t cap, n;
};

static bool seen_add(struct seen *s, dev_t dev, ino_t ino)
{
	if (2 * (s->n + 1) > s->cap) {
		struct seen g = { .cap = s->cap ? 2 * s->cap : 1024 };

		g.v = calloc(g.cap, sizeof(*g.v));
		if (!g.v)
			return true; /* out of memory: count it (an over-estimate) */
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i].ino)
				seen_add(&g, s->v[i].dev, s->v[i].ino);
		free(s->v);
		*s = g;
	}
	for (size_t h = ((size_t)ino * 0x9e3779b97f4a7c15ull ^ (size_t)dev) & (s->cap - 1);;
	     h = (h + 1) & (s->cap - 1)) {
		if (!s->v[h].ino) {
			s->v[h].dev = dev;
			s->v[h].ino = ino;
			s->n++;
			return true;
		}
		if (s->v[h].ino == ino && s->v[h].dev == dev)
			return false;
	}
}

/* Blocks under @dirfd/@name (a file or a tree), each inode once. */
static uint64_t usage_at(int at, const char *name, struct seen *s, int depth)
{
	struct stat st;
	uint64_t total = 0;
	int fd;
	DIR *d;
	struct dirent *e;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || depth > 64)
		return 0;
	if (st.st_ino && seen_add(s, st.st_dev, st.st_ino))
		total += (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return total;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return total;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			total += usage_at(dirfd(d), e->d_name, s, depth + 1);
	closedir(d);
	return total;
}

struct kind {
	const char *name;
	const char *dir;    /* under MSB_HOME */
	int prune;	    /* the enum prune_kind of its reclaimable items, or -1 */
	const char *suffix; /* what an entry's name ends with to count (NULL: any) */
	uint64_t count, size, reclaim;
	const char *note;
};

/* Entries of MSB_HOME/@dir: each one's size added to @k (a dot-named one is not counted). */
static void measure(int home, struct kind *k, struct seen *s)
{
	int fd = openat(home, k->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		k->size += usage_at(dirfd(d), e->d_name, s, 0);
		if (e->d_name[0] != '.' &&
		    (!k->suffix ||
		     (strlen(e->d_name) > strlen(k->suffix) &&
		      !strcmp(e->d_name + strlen(e->d_name) - strlen(k->suffix), k->suffix))))
			k->count++;
	}
	closedir(d);
}

int cmd_df(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kind k[] = {
		{ "layers", "cache/layers", PRUNE_LAYER, ".sqfs", 0, 0, 0,
		  "not used by any image kept" },
		{ "downloads", "cache/blobs", PRUNE_DOWNLOAD, NULL, 0, 0, 0, "partial downloads" },
		{ "sandboxes", "sandboxes", PRUNE_SANDBOX, NULL, 0, 0, 0,
		  "left by killed ephemeral runs" },
		{ "volumes", "volumes", -1, NULL, 0, 0, 0, NULL },
		{ "snapshots", "snapshots", -1, NULL, 0, 0, 0, NULL },
		{ "templates", "templates", PRUNE_TEMPLATE, NULL, 0, 0, 0,
		  "warm-start templates unused for 14 days" },
	};
	const size_t nk = sizeof(k) / sizeof(k[0]);
	_cleanup_err_ struct msb_err *err = NULL;
	struct image_record *imgs = NULL;
	size_t nimg = 0, unused = 0;
	struct prune_plan plan = { 0 };
	struct seen s = { 0 };
	struct db *db = NULL;
	const char *home = msb_home();
	uint64_t total = 0, reclaim = 0;
	bool json = false;
	int c, hfd;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'F') {
			if (cli_parse_format("df", optarg, &json))
				return EXIT_MSB;
		} else if (c == 'h') {
			printf("Usage: msb df [--format json]\n\nDisk used under MSB_HOME by "
			       "layers, "
			       "downloads, sandboxes, volumes, snapshots and templates,\nand how "
			       "much of it could be reclaimed (what 'msb prune' removes).\n");
			return 0;
		} else {
			return cli_bad_flag("df", argv, lo);
		}
	}
	if (optind < argc)
		return cli_error("df: unexpected argument \"%s\"", argv[optind]);
	if (!home)
		return cli_error("df: no home directory (set MSB_HOME)");
	if (prune_plan(PRUNE_ALL, &plan, &err) < 0 || db_open(&db, &err) < 0 ||
	    db_image_list(db, &imgs, &nimg, &err) < 0) {
		db_close(db);
		prune_plan_free(&plan);
		return cli_fail(err);
	}
	image_records_free(imgs, nimg);
	db_close(db);
	hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; hfd >= 0 && i < nk; i++)
		measure(hfd, &k[i], &s);
	if (hfd >= 0)
		close(hfd);
	free(s.v);
	for (size_t i = 0; i < plan.n; i++) {
		unused += plan.v[i].kind == PRUNE_IMAGE;
		for (size_t j = 0; j < nk; j++)
			if (k[j].prune == (int)plan.v[i].kind)
				k[j].reclaim += plan.v[i].size;
	}
	prune_plan_free(&plan);
	for (size_t i = 0; i < nk; i++) {
		total += k[i].size;
		reclaim += k[i].reclaim;
	}
	if (json) {
		json_t *o =
			json_pack("{s:s, s:I, s:I, s:{s:I, s:I}}", "home", home, "size",
				  (json_int_t)total, "reclaimable", (json_int_t)reclaim, "images",
				  "count", (json_int_t)nimg, "unused", (json_int_t)unused);
		json_t *a = json_array();

		for (size_t i = 0; o && a && i < nk; i++)
			json_array_append_new(
				a, json_pack("{s:s, s:I, s:I, s:I}", "kind", k[i].name, "count",
					     (json_int_t)k[i].count, "size", (json_int_t)k[i].size,
					     "reclaimable", (json_int_t)k[i].reclaim));
		if (!o || !a || json_object_set_new(o, "kinds", a) < 0 || cli_print_json(o) < 0) {
			json_decref(o);
			return cli_error("df: out of memory");
		}
		json_decref(o);
		return 0;
	}
	printf("%-10s %6s %11s %11s\n", "KIND", "COUNT", "SIZE", "RECLAIMABLE");
	printf("%-10s %6zu %11s %11s  %zu not used by any sandbox, snapshot or alias (msb prune)\n",
	       "images", nimg, "-", "-", unused);
	for (size_t i = 0; i < nk; i++) {
		char a[32], b[32];

		format_size(k[i].size, a, sizeof(a));
		format_size(k[i].reclaim, b, sizeof(b));
		printf("%-10s %6llu %11s %11s%s%s\n", k[i].name, (unsigned long long)k[i].count, a,
		       b, k[i].reclaim && k[i].note ? "  " : "",
		       k[i].reclaim && k[i].note ? k[i].note : "");
	}
	{
		char a[32], b[32];

		format_size(total, a, sizeof(a));
		format_size(reclaim, b, sizeof(b));
		printf("%-10s %6s %11s %11s\n", "total", "", a, b);
	}
	return 0;
}
