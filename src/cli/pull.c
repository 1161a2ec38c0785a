// SPDX-License-Identifier: Apache-2.0
/* msb pull: fetch an image into the local cache. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "image/progress.h"
#include "image/pull.h"
#include "image/regconfig.h"
#include "store/db.h"

static const struct option pull_longopts[] = {
	{ "force", no_argument, NULL, 'f' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void pull_usage(void)
{
	printf("Usage: msb pull [OPTIONS] IMAGE\n\n"
	       "Fetch an image and its layers into the local cache.\n\n"
	       "Options:\n"
	       "  -f, --force   Download and convert again even if cached\n"
	       "  -q, --quiet   Print nothing but errors\n");
}

int cmd_pull(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct pull_opts o = { .cancel_fd = -1 };
	struct image_record img;
	struct progress *pr = NULL;
	struct db *db = NULL;
	json_t *cfg = NULL;
	bool quiet = false;
	int c, r;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fqh", pull_longopts, NULL)) != -1) {
		if (c == 'f')
			o.force = true;
		else if (c == 'q')
			quiet = true;
		else if (c == 'h')
			return pull_usage(), 0;
		else
			return cli_bad_flag("pull", argv, pull_longopts);
	}
	if (optind != argc - 1)
		return cli_error("pull: expected exactly one image (see 'msb pull --help')");
	if (!quiet) {
		pr = progress_new(stdout);
		o.progress = progress_event;
		o.ctx = pr;
	}
	o.cancel_fd = cli_stop_signals();
	r = msbcfg_load(&cfg, &err);
	if (!r)
		r = db_open(&db, &err);
	if (!r)
		r = image_pull(db, cfg, argv[optind], &o, &img, &err);
	if (!r)
		image_record_free(&img);
	progress_free(pr);
	db_close(db);
	json_decref(cfg);
	if (o.cancel_fd >= 0)
		close(o.cancel_fd);
	return r < 0 ? cli_fail(err) : 0;
}
