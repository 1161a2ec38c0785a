// SPDX-License-Identifier: Apache-2.0
/*
 * msb install / msb uninstall: an image's program as a command on the host.
 *
 * `msb install IMAGE` writes two things: the record $MSB_HOME/aliases/NAME.json
 * (image, options, kind, the image's default command) and the executable
 * $MSB_HOME/bin/NAME, a two-line shell script that runs
 * `msb __alias NAME -- "$@"` with the msb that installed it (by absolute
 * path, so an update in place keeps it working). `msb __alias` runs the
 * image's default command (Entrypoint + Cmd) with the caller's arguments
 * appended, stdin, stdout, stderr and the exit code passed through, a
 * terminal when both ends are one:
 *  - persistent (default): in the sandbox "alias-NAME", created on first use
 *    and started when stopped (under a lock, so concurrent first calls make
 *    one), then kept running: files persist between calls;
 *  - --tmp: a fresh sandbox per call (`msb run`), gone when the call ends.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sbxflags.h"
#include "image/manifest.h"
#include "image/pull.h"
#include "image/regconfig.h"
#include "sandbox/lifecycle.h"
#include "sandbox/sandbox.h"
#include "store/db.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/parse.h"

#define ALIAS_PREFIX "alias-"

static void sv_cleanup(struct strv *s)
{
	strv_free(s);
}
#define _cleanup_sv_ __attribute__((cleanup(sv_cleanup)))

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum { OPT_SHELL = 256, OPT_NO_PULL, OPT_TMP };

static const struct option install_longopts[] = {
	{ "name", required_argument, NULL, 'n' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "memory", required_argument, NULL, 'm' },
	{ "volume", required_argument, NULL, 'v' },
	{ "workdir", required_argument, NULL, 'w' },
	{ "shell", required_argument, NULL, OPT_SHELL },
	{ "env", required_argument, NULL, 'e' },
	{ "force", no_argument, NULL, 'f' },
	{ "no-pull", no_argument, NULL, OPT_NO_PULL },
	{ "tmp", no_argument, NULL, OPT_TMP },
	{ "list", no_argument, NULL, 'l' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void install_usage(void)
{
	printf("Usage: msb install [OPTIONS] IMAGE\n"
	       "       msb install --list\n\n"
	       "Install an image's program as a command: an executable in ~/.microsandbox/bin/\n"
	       "that runs the image's default command with its arguments in a sandbox.\n\n"
	       "Options:\n"
	       "  -n, --name NAME      Command name (default: the image's repository name)\n"
	       "  -c, --cpus N         Virtual CPUs\n"
	       "  -m, --memory SIZE    Memory (e.g. 512M, 1G)\n"
	       "  -v, --volume SRC:DST Mount a host path or named volume (repeatable)\n"
	       "  -w, --workdir DIR    Working directory in the sandbox\n"
	       "      --shell PATH     Shell for interactive sessions\n"
	       "  -e, --env KEY=VALUE  Environment variable (repeatable)\n"
	       "  -f, --force          Replace an existing alias or shadow a command of that name\n"
	       "      --no-pull        Do not pull the image now (it is pulled on first use)\n"
	       "      --tmp            A fresh sandbox on every call (no state kept)\n"
	       "  -l, --list           List installed commands\n");
}

/* --- where things are ---------------------------------------------------- */

static char *aliases_dir(void)
{
	const char *h = msb_home();

	return h ? path_join(h, "aliases") : NULL;
}

static char *bin_dir(void)
{
	const char *h = msb_home();

	return h ? path_join(h, "bin") : NULL;
}

static char *record_path(const char *name)
{
	_cleanup_free_ char *d = aliases_dir();
	char *p = NULL;

	if (d && asprintf(&p, "%s/%s.json", d, name) < 0)
		p = NULL;
	return p;
}

static char *exe_path(const char *name)
{
	_cleanup_free_ char *d = bin_dir();

	return d ? path_join(d, name) : NULL;
}

/* The default name: the last path component of the repository, without tag or digest. */
static char *default_name(const char *image)
{
	const char *slash = strrchr(image, '/'), *s = slash ? slash + 1 : image;
	size_t n = strcspn(s, ":@");

	return strndup(s, n);
}

/* --- the record ------------------------------------------------------------ */

/*
 * Loads the record of @name: its JSON, or NULL with a one-line message
 * printed (exit status 125 then).
 */
static json_t *record_load(const char *name)
{
	_cleanup_free_ char *p = record_path(name);
	json_error_t je;
	json_t *r;

	if (!p)
		return NULL;
	r = json_load_file(p, 0, &je);
	if (!r) {
		if (access(p, F_OK) < 0)
			cli_error("no installed command %s (see 'msb install --list')", name);
		else
			cli_error("%s: %s", p, je.text);
	}
	return r;
}

static int record_save(const char *name, json_t *r)
{
	_cleanup_free_ char *p = record_path(name), *d = aliases_dir();
	char *s = json_dumps(r, JSON_INDENT(2) | JSON_SORT_KEYS);
	int k;

	if (!p || !d || !s || mkdir_p(d, 0700) < 0) {
		free(s);
		return -1;
	}
	k = write_file_atomic(p, s, strlen(s), 0600);
	free(s);
	return k;
}

/* The image's default process (Entrypoint + Cmd), pulled per @policy. */
static int image_command(const char *image, enum pull_policy policy, json_t **out,
			 struct msb_err **err)
{
	struct image_record img = { 0 };
	struct image_config ic = { 0 };
	struct db *db = NULL;
	json_t *cfg = NULL, *cmd;
	int r;

	r = msbcfg_load(&cfg, err);
	if (!r)
		r = db_open(&db, err);
	if (!r)
		r = image_get(db, cfg, image, policy, NULL, &img, err);
	if (!r)
		r = image_config_parse(img.config, strlen(img.config), &ic, err);
	if (!r) {
		cmd = json_array();
		for (char **e = ic.entrypoint; cmd && e && *e; e++)
			json_array_append_new(cmd, json_string(*e));
		for (char **c = ic.cmd; cmd && c && *c; c++)
			json_array_append_new(cmd, json_string(*c));
		if (!cmd)
			r = msb_err_sys(err, ENOMEM, "image %s", image);
		*out = cmd;
		image_config_free(&ic);
	}
	image_record_free(&img);
	db_close(db);
	json_decref(cfg);
	return r < 0 ? -1 : 0;
}

/* --- msb install ----------------------------------------------------------- */

static int list(void)
{
	_cleanup_free_ char *d = aliases_dir();
	_cleanup_sv_ struct strv names = { 0 };
	DIR *dir = d ? opendir(d) : NULL;
	struct dirent *e;

	while (dir && (e = readdir(dir))) {
		size_t n = strlen(e->d_name);

		if (n > 5 && !strcmp(e->d_name + n - 5, ".json") && e->d_name[0] != '.') {
			_cleanup_free_ char *nm = strndup(e->d_name, n - 5);

			if (nm && strv_push(&names, nm) < 0)
				break;
		}
	}
	if (dir)
		closedir(dir);
	if (names.n)
		qsort(names.v, names.n, sizeof(*names.v), cmp_str);
	printf("%-16s %-40s %-10s %s\n", "NAME", "IMAGE", "KIND", "OPTIONS");
	for (size_t i = 0; i < names.n; i++) {
		json_t *r = record_load(names.v[i]), *opts;
		char cell[2][64], o[256] = "";
		size_t k = 0;

		if (!r)
			continue;
		opts = json_object_get(r, "options");
		for (size_t j = 0; j < json_array_size(opts); j++) {
			const char *s = json_string_value(json_array_get(opts, j));

			if (s && k + strlen(s) + 2 < sizeof(o))
				k += (size_t)snprintf(o + k, sizeof(o) - k, "%s%s", k ? " " : "",
						      s);
		}
		cli_cell(cell[0], sizeof(cell[0]), names.v[i], 16);
		cli_cell(cell[1], sizeof(cell[1]), json_string_value(json_object_get(r, "image")),
			 40);
		printf("%-16s %-40s %-10s %s\n", cell[0], cell[1],
		       json_is_true(json_object_get(r, "tmp")) ? "tmp" : "persistent", o);
		json_decref(r);
	}
	return 0;
}

/* Single quotes for a shell: 'it'\''s'. */
static int shell_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	}
	return fputc('\'', f) == EOF ? -1 : 0;
}

/*
 * The msb an alias runs: setup.sh's $MSB_HOME/bin/msb when that is this msb
 * (a link that `msb self update` moves to each new release), else this one.
 */
static char *installed_msb(void)
{
	char *self = realpath("/proc/self/exe", NULL);
	const char *home = msb_home();
	_cleanup_free_ char *inst = home ? path_join(home, "bin/msb") : NULL;
	_cleanup_free_ char *real = inst ? realpath(inst, NULL) : NULL;

	if (self && real && !strcmp(self, real)) {
		free(self);
		return steal_ptr(inst);
	}
	return self;
}

static int write_exe(const char *name, const char *path)
{
	_cleanup_free_ char *self = installed_msb(), *d = bin_dir();
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	const char *home = getenv("MSB_HOME");
	int r;

	if (!f || !self || !d || mkdir_p(d, 0755) < 0) {
		if (f)
			fclose(f);
		free(text);
		return -1;
	}
	fprintf(f, "#!/bin/sh\n# msb install: %s (remove with: msb uninstall %s)\n", name, name);
	if (home && *home) {
		fputs("MSB_HOME=", f);
		shell_quote(f, home);
		fputs(" export MSB_HOME\n", f);
	}
	fputs("exec ", f);
	shell_quote(f, self);
	fputs(" __alias ", f);
	shell_quote(f, name);
	fputs(" -- \"$@\"\n", f);
	if (fclose(f) != 0) {
		free(text);
		return -1;
	}
	r = write_file_atomic(path, text, len, 0755);
	free(text);
	return r;
}

int cmd_install(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	_cleanup_free_ char *name = NULL, *exe = NULL, *rec = NULL, *found = NULL;
	_cleanup_sv_ struct strv opts = { 0 };
	_cleanup_sv_ struct strv check = { 0 };
	bool force = false, no_pull = false, tmp = false, lst = false, named;
	const char *image;
	json_t *r, *jopts, *cmd = NULL;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+n:c:m:v:w:e:flh", install_longopts, NULL)) != -1) {
		static const char *const flag[] = { ['c'] = "--cpus",
						    ['m'] = "--memory",
						    ['v'] = "--volume",
						    ['w'] = "--workdir",
						    ['e'] = "--env" };

		switch (c) {
		case 'n':
			free(name);
			name = strdup(optarg);
			break;
		case 'v':
			/* A host path is the caller's now: made absolute, for calls from anywhere.
			 */
			if (optarg[0] == '.') {
				_cleanup_free_ char *cwd = getcwd(NULL, 0), *abs = NULL;

				if (!cwd || asprintf(&abs, "%s/%s", cwd,
						     optarg + (optarg[1] == '/' ? 2 : 0)) < 0)
					return cli_error("out of memory");
				if (strv_push(&opts, "--volume") < 0 || strv_push(&opts, abs) < 0)
					return cli_error("out of memory");
				break;
			}
			/* fall through */
		case 'c':
		case 'm':
		case 'w':
		case 'e':
			if (strv_push(&opts, flag[c]) < 0 || strv_push(&opts, optarg) < 0)
				return cli_error("out of memory");
			break;
		case OPT_SHELL:
			if (strv_push(&opts, "--shell") < 0 || strv_push(&opts, optarg) < 0)
				return cli_error("out of memory");
			break;
		case 'f':
			force = true;
			break;
		case OPT_NO_PULL:
			no_pull = true;
			break;
		case OPT_TMP:
			tmp = true;
			break;
		case 'l':
			lst = true;
			break;
		case 'h':
			install_usage();
			return 0;
		default:
			return cli_bad_flag("install", argv, install_longopts);
		}
	}
	if (lst) {
		if (optind < argc)
			return cli_error("install: --list takes no image");
		return list();
	}
	if (optind != argc - 1)
		return cli_error(optind == argc ? "install: no image given (use: msb install IMAGE)"
						: "install: expected one image, got \"%s\" too",
				 optind == argc ? "" : argv[optind + 1]);
	image = argv[optind];
	named = name != NULL;
	if (!name)
		name = default_name(image);
	if (!name)
		return cli_error("out of memory");
	if (!valid_sandbox_name(name) || strlen(name) + strlen(ALIAS_PREFIX) > SBX_NAME_MAX ||
	    !strcmp(name, "msb"))
		return cli_error("install: invalid command name \"%s\" (use letters, digits, '_', "
				 "'.' and '-', starting with a letter or digit; not msb)%s",
				 name, named ? "" : "; give one with -n NAME");
	/* The options are run's: checked by run's parser now, not at the first call. */
	{
		struct sbx_flags f;
		int k;

		if (strv_push(&check, "install") < 0 || strv_push_all(&check, opts.v) < 0 ||
		    strv_push(&check, image) < 0)
			return cli_error("out of memory");
		k = sbxflags_parse("install", (int)check.n, check.v, &f);
		sbxflags_free(&f);
		if (k)
			return k < 0 ? EXIT_MSB : k;
	}
	exe = exe_path(name);
	rec = record_path(name);
	if (!exe || !rec)
		return cli_error("out of memory");
	if (!force && access(exe, F_OK) == 0)
		return cli_error("install: %s already exists (use -f to replace it, or -n for "
				 "another name)",
				 exe);
	found = find_in_path(name);
	if (!force && found && strcmp(found, exe) != 0)
		return cli_error("install: %s would shadow %s (use -f to install anyway, or -n for "
				 "another name)",
				 name, found);
	if (!no_pull) {
		if (image_command(image, PULL_IF_MISSING, &cmd, &err) < 0)
			return cli_fail(err);
	}
	r = json_object();
	jopts = json_array();
	for (size_t i = 0; r && jopts && i < opts.n; i++)
		json_array_append_new(jopts, json_string(opts.v[i]));
	if (!r || !jopts || json_object_set_new(r, "image", json_string(image)) < 0 ||
	    json_object_set_new(r, "options", jopts) < 0 ||
	    json_object_set_new(r, "tmp", json_boolean(tmp)) < 0 ||
	    (cmd && json_object_set_new(r, "command", cmd) < 0)) {
		json_decref(r);
		return cli_error("out of memory");
	}
	/* Replacing an alias: its old sandbox goes (it was made with the old options). */
	if (force) {
		_cleanup_free_ char *sn = NULL;

		if (asprintf(&sn, ALIAS_PREFIX "%s", name) >= 0 && sbx_exists(sn) &&
		    sbx_remove(sn, true, &err) < 0) {
			json_decref(r);
			return cli_fail(err);
		}
	}
	if (record_save(name, r) < 0 || write_exe(name, exe) < 0) {
		json_decref(r);
		unlink(rec);
		return cli_error("install: cannot write %s or %s", rec, exe);
	}
	json_decref(r);
	printf("%s\n", exe);
	{
		_cleanup_free_ char *d = bin_dir();
		const char *path = getenv("PATH");
		bool on_path = false;

		for (const char *p = path; d && p && *p;) {
			size_t n = strcspn(p, ":");

			if (n == strlen(d) && !strncmp(p, d, n))
				on_path = true;
			p += n + (p[n] == ':');
		}
		if (d && !on_path)
			fprintf(stderr,
				"msb: %s is not on PATH (add it: export PATH=\"%s:$PATH\")\n", d,
				d);
	}
	return 0;
}

/* --- msb uninstall ----------------------------------------------------------- */

int cmd_uninstall(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	int rc = 0;

	if (cli_wants_help(argc, argv)) {
		printf("Usage: msb uninstall NAME...\n\nRemove installed commands and their "
		       "sandboxes.\n");
		return 0;
	}
	if (argc < 2)
		return cli_error("uninstall: no command given (use: msb uninstall NAME; see 'msb "
				 "install --list')");
	for (int i = 1; i < argc; i++) {
		const char *name = argv[i];
		_cleanup_free_ char *exe = NULL, *rec = NULL, *sn = NULL;
		json_t *r;

		if (!valid_sandbox_name(name)) {
			rc = cli_error("uninstall: invalid command name \"%s\"", name);
			continue;
		}
		r = record_load(name);
		if (!r) {
			rc = EXIT_MSB;
			continue;
		}
		json_decref(r);
		exe = exe_path(name);
		rec = record_path(name);
		if (!exe || !rec || asprintf(&sn, ALIAS_PREFIX "%s", name) < 0)
			return cli_error("out of memory");
		if (sbx_exists(sn) && sbx_remove(sn, true, &err) < 0) {
			rc = cli_fail(err);
			msb_err_free(err);
			err = NULL;
			continue;
		}
		unlink(exe);
		unlink(rec);
	}
	return rc;
}

/* --- msb __alias NAME -- ARGS: what the installed command runs ------------------- */

/* The strings of JSON array @arr from index @from on, appended to @a. */
static void push_strings(struct strv *a, json_t *arr, size_t from)
{
	for (size_t k = from; k < json_array_size(arr); k++) {
		const char *s = json_string_value(json_array_get(arr, k));

		if (s)
			strv_push(a, s);
	}
}

static int run_cli(int (*fn)(int, char **), struct strv *a)
{
	optind = 0; /* each command parses afresh */
	return fn((int)a->n, a->v);
}

int cmd_alias(int argc, char **argv)
{
	_cleanup_err_ struct msb_err *err = NULL;
	_cleanup_free_ char *sn = NULL, *lockp = NULL, *dir = NULL;
	_cleanup_sv_ struct strv a = { 0 };
	const char *name, *image;
	json_t *r, *cmd;
	bool tty = isatty(0) && isatty(1), tmp;
	int k, lock;

	if (argc < 3 || strcmp(argv[2], "--") != 0)
		return cli_error("__alias: use msb __alias NAME -- ARGS");
	name = argv[1];
	if (!valid_sandbox_name(name))
		return cli_error("__alias: invalid command name \"%s\"", name);
	r = record_load(name);
	if (!r)
		return EXIT_MSB;
	image = json_string_value(json_object_get(r, "image"));
	tmp = json_is_true(json_object_get(r, "tmp"));
	cmd = json_object_get(r, "command");
	if (!image) {
		json_decref(r);
		return cli_error("%s: the record has no image (install it again)", name);
	}
	/* Installed with --no-pull: the command is learnt (and the image pulled) now. */
	if (!json_is_array(cmd)) {
		json_t *c = NULL;

		if (image_command(image, PULL_IF_MISSING, &c, &err) < 0) {
			json_decref(r);
			return cli_fail(err);
		}
		json_object_set_new(r, "command", c);
		record_save(name, r);
		cmd = c;
	}
	if (!json_array_size(cmd)) {
		json_decref(r);
		return cli_error("%s: image %s has no default command (Entrypoint or Cmd)", name,
				 image);
	}
	if (tmp) {
		/* run OPTS --entrypoint CMD0 IMAGE -- CMD1... ARGS...: the command, args appended
		 */
		strv_push(&a, "run");
		strv_push(&a, "-q");
		if (tty)
			strv_push(&a, "-t");
		push_strings(&a, json_object_get(r, "options"), 0);
		strv_push(&a, "--entrypoint");
		strv_push(&a, json_string_value(json_array_get(cmd, 0)));
		strv_push(&a, image);
		strv_push(&a, "--");
		push_strings(&a, cmd, 1);
		for (int j = 3; j < argc; j++)
			strv_push(&a, argv[j]);
		json_decref(r);
		return run_cli(cmd_run, &a);
	}
	if (asprintf(&sn, ALIAS_PREFIX "%s", name) < 0 || !(dir = aliases_dir()) ||
	    asprintf(&lockp, "%s/.%s.lock", dir, name) < 0) {
		json_decref(r);
		return cli_error("out of memory");
	}
	/* One caller makes or starts the sandbox; the others wait for it, then all exec. */
	lock = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX) < 0) {
		json_decref(r);
		if (lock >= 0)
			close(lock);
		return cli_error("%s: cannot lock %s: %s", name, lockp, strerror(errno));
	}
	k = 0;
	if (!sbx_exists(sn)) {
		strv_push(&a, "create");
		strv_push(&a, "-q");
		strv_push(&a, "--name");
		strv_push(&a, sn);
		push_strings(&a, json_object_get(r, "options"), 0);
		strv_push(&a, image);
		k = run_cli(cmd_create, &a);
	} else if (!sbx_alive(sn)) {
		strv_push(&a, "start");
		strv_push(&a, sn);
		k = run_cli(cmd_start, &a);
	}
	close(lock);
	strv_free(&a);
	if (k) {
		json_decref(r);
		return k;
	}
	strv_push(&a, "exec");
	if (tty)
		strv_push(&a, "-t");
	strv_push(&a, sn);
	strv_push(&a, "--");
	push_strings(&a, cmd, 0);
	for (int j = 3; j < argc; j++)
		strv_push(&a, argv[j]);
	json_decref(r);
	return run_cli(cmd_exec, &a);
}
