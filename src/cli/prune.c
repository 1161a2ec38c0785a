// SPDX-License-Identifier: Apache-2.0
/* msb prune and msb image prune: remove what msb df calls reclaimable (sandbox/prune.h). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "image/ref.h"
#include "sandbox/prune.h"
#include "util/cleanup.h"
#include "util/parse.h"
#include "util/text.h"

enum { OPT_DRY_RUN = 256 };

/* An item's name as users know it, safe for a terminal. Return: newly allocated, or NULL. */
static char *shown_name(const struct prune_item *it)
{
	_cleanup_free_ char *f = NULL;
	const char *s = it->name;
	struct image_ref r;
	char why[128], *o;
	size_t n;

	if (it->kind == PRUNE_IMAGE && ref_parse(it->name, &r, why, sizeof(why)) == 0) {
		f = ref_familiar(&r);
		ref_free(&r);
		if (f)
			s = f;
	}
	n = strlen(s);
	o = malloc(n + 1);
	if (o)
		text_sanitize(o, n + 1, s, n);
	return o;
}

/* "[PREFIX]KIND NAME (SIZE)"; an image frees nothing itself (its layers are lines of their own). */
static void print_item(const char *prefix, const struct prune_item *it)
{
	_cleanup_free_ char *name = shown_name(it);
	char size[32];

	format_size(it->size, size, sizeof(size));
	if (it->kind == PRUNE_IMAGE)
		printf("%s%s %s\n", prefix, prune_kind_name(it->kind), name ? name : "?");
	else
		printf("%s%s %s (%s)\n", prefix, prune_kind_name(it->kind), name ? name : "?",
		       size);
}

struct progress {
	uint64_t reclaimed;
};

static void removed(const struct prune_item *it, void *ctx)
{
	struct progress *p = ctx;

	p->reclaimed += it->size;
	print_item("Removed ", it);
	fflush(stdout);
}

/* Reads y or yes from the terminal. */
static bool confirm(void)
{
	char line[64];

	printf("Continue? [y/N] ");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	line[strcspn(line, "\r\n")] = '\0';
	return !strcasecmp(line, "y") || !strcasecmp(line, "yes");
}

/* The command: @cmd for messages, @what to remove, @about for --help. */
static int prune(const char *cmd, unsigned int what, const char *about, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	struct prune_plan plan = { 0 };
	struct progress prog = { 0 };
	bool dry = false, force = false;
	char total[32];
	int c, rc;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", lo, NULL)) != -1) {
		if (c == OPT_DRY_RUN) {
			dry = true;
		} else if (c == 'f') {
			force = true;
		} else if (c == 'h') {
			printf("Usage: msb %s [--dry-run] [-f]\n\n%s\n\n"
			       "Options:\n"
			       "      --dry-run   List what would be removed and the space, remove "
			       "nothing\n"
			       "  -f, --force     Do not ask for confirmation\n",
			       cmd, about);
			return 0;
		} else {
			return cli_bad_flag(cmd, argv, lo);
		}
	}
	if (optind < argc)
		return cli_error("%s: unexpected argument \"%s\"", cmd, argv[optind]);
	/* Decided before looking: whether it asks never depends on what there is. */
	if (!dry && !force && !isatty(0))
		return cli_error("%s: no terminal to confirm on (use -f to remove without asking)",
				 cmd);
	if (prune_plan(what, &plan, &err) < 0)
		return cli_fail(err);
	if (dry || !force) {
		if (!dry && plan.n)
			printf("This will remove:\n");
		for (size_t i = 0; i < plan.n; i++)
			print_item(dry ? "Would remove " : "  ", &plan.v[i]);
	}
	if (dry) {
		format_size(plan.total, total, sizeof(total));
		printf("Total reclaimable space: %s\n", total);
		prune_plan_free(&plan);
		return 0;
	}
	if (!force && plan.n && !confirm()) {
		prune_plan_free(&plan);
		printf("Nothing removed.\n");
		return 0;
	}
	rc = prune_apply(&plan, removed, &prog, &err);
	prune_plan_free(&plan);
	format_size(prog.reclaimed, total, sizeof(total));
	printf("Total reclaimed space: %s\n", total);
	return rc < 0 ? cli_fail(err) : 0;
}

int cmd_prune(int argc, char **argv)
{
	return prune("prune", PRUNE_ALL,
		     "Remove what 'msb df' calls reclaimable: leftovers of killed ephemeral runs,\n"
		     "images no sandbox, snapshot or installed command uses, layers no kept image\n"
		     "uses, partial downloads, and warm-start templates unused for 14 days. Named\n"
		     "sandboxes (even stopped), volumes and snapshots are never removed; what a "
		     "pull\nor a starting sandbox holds at that moment is left for next time.",
		     argc, argv);
}

int cli_image_prune(int argc, char **argv)
{
	return prune("image prune", PRUNE_IMAGES,
		     "Remove images no sandbox, snapshot or installed command uses, and layers no\n"
		     "kept image uses. (msb has no untagged images: pulling a tag again replaces\n"
		     "its record, and the layers only the old one used become unused layers.)",
		     argc, argv);
}
