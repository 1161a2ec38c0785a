// SPDX-License-Identifier: Apache-2.0
/*
 * msb df: the disk msb uses under MSB_HOME, by kind, with what could be
 * reclaimed. Sizes are blocks on disk (sparse files count what they hold);
 * a file linked from several places (a layer image a sandbox holds a link
 * to) counts once, under the first kind that reaches it.
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
	const char *suffix; /* what an entry's name ends with to count (NULL: any) */
	uint64_t count, size, reclaim;
	const char *note;
};

/* Entries of MSB_HOME/@dir: each one's size added to @k; @reclaim(name) says which may go. */
static void measure(int home, struct kind *k, struct seen *s, bool (*reclaim)(const char *, void *),
		    void *ctx)
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
		uint64_t u;

		if (e->d_name[0] == '.')
			continue;
		u = usage_at(dirfd(d), e->d_name, s, 0);
		if (!k->suffix ||
		    (strlen(e->d_name) > strlen(k->suffix) &&
		     !strcmp(e->d_name + strlen(e->d_name) - strlen(k->suffix), k->suffix)))
			k->count++;
		k->size += u;
		if (reclaim && reclaim(e->d_name, ctx))
			k->reclaim += u;
	}
	closedir(d);
}

static bool always(const char *name, void *ctx)
{
	(void)name;
	(void)ctx;
	return true;
}

/* A layer image no image record uses (left by an interrupted removal). */
static bool orphan_layer(const char *name, void *ctx)
{
	struct db *db = ctx;
	char id[80];
	size_t n = strspn(name, "0123456789abcdef");

	if (!db || n != 64)
		return false;
	snprintf(id, sizeof(id), "sha256:%.64s", name);
	return db_layer_users(db, id, NULL) == 0;
}

int cmd_df(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kind k[] = {
		{ "layers", "cache/layers", ".sqfs", 0, 0, 0, "not used by any image" },
		{ "downloads", "cache/blobs", NULL, 0, 0, 0, "partial downloads" },
		{ "sandboxes", "sandboxes", NULL, 0, 0, 0, NULL },
		{ "volumes", "volumes", NULL, 0, 0, 0, NULL },
		{ "snapshots", "snapshots", NULL, 0, 0, 0, NULL },
		{ "templates", "templates", NULL, 0, 0, 0,
		  "warm-start templates, made again on demand" },
	};
	const size_t nk = sizeof(k) / sizeof(k[0]);
	_cleanup_err_ struct msb_err *err = NULL;
	struct image_record *imgs = NULL;
	size_t nimg = 0, unused = 0;
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
			       "much of it could be reclaimed.\n");
			return 0;
		} else {
			return cli_bad_flag("df", argv, lo);
		}
	}
	if (optind < argc)
		return cli_error("df: unexpected argument \"%s\"", argv[optind]);
	if (!home)
		return cli_error("df: no home directory (set MSB_HOME)");
	hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (hfd >= 0 && db_open(&db, &err) == 0 && db_image_list(db, &imgs, &nimg, &err) == 0)
		for (size_t i = 0; i < nimg; i++)
			unused += db_sandboxes_using(db, imgs[i].reference, NULL) == 0;
	if (hfd >= 0) {
		measure(hfd, &k[0], &s, orphan_layer, db);
		measure(hfd, &k[1], &s, always, NULL);
		for (size_t i = 2; i < nk; i++)
			measure(hfd, &k[i], &s, i == nk - 1 ? always : NULL, NULL);
		close(hfd);
	}
	image_records_free(imgs, nimg);
	db_close(db);
	free(s.v);
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
	printf("%-10s %6zu %11s %11s  %zu not used by any sandbox (msb rmi)\n", "images", nimg, "-",
	       "-", unused);
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
